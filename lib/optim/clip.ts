// clip.ts: the global gradient norm and the clipping scale, from one native sumSquares over the whole
// gradient arena (accumulated in double; NaN and +-Inf elements counted, not summed).
//
// clipGradNorm does not touch the gradients: it returns the scale, and the optimizer applies it as
// AdamW's gradScale in the same pass that reads the gradients anyway, which saves a full read and write of
// the arena per step. The returned norm is the one before clipping (what gets logged). When any element is
// not finite, norm and scale are NaN and nonFinite counts them: the trainer skips the step (AdamW rejects a
// NaN gradScale, so a forgotten check fails loudly instead of poisoning the weights).
import { Arena, Tensor } from '../core/tensor';
import { ops } from '../core/ops';
import { invalidArg } from '../core/errors';
import * as schema from '../core/config-schema';
import type { ObjectField } from '../core/config-schema';
import { checkNumber, resolveOptions, show } from './options';

export interface GradNorm {
  /** The L2 norm over every element (times preScale); NaN when any element is not finite. */
  norm: number;
  /** How many elements are NaN or +-Inf. */
  nonFinite: number;
}

export interface ClipResult extends GradNorm {
  /** The factor to pass as AdamW's gradScale: preScale * min(1, maxNorm / (norm + 1e-6)); NaN when nonFinite > 0. */
  scale: number;
}

export interface ClipOptions {
  /**
   * A factor the gradients are to be multiplied by anyway (e.g. 1 / micro-batches when the loss was not
   * averaged over them). The norm is that of the scaled gradients and the scale includes it. Defaults to 1.
   */
  preScale?: number;
}

export const CLIP_OPTIONS_SCHEMA: ObjectField<Required<ClipOptions>> = schema.object<Required<ClipOptions>>(
  { preScale: schema.number({ min: 0, minOpen: true, default: 1, doc: 'A factor the gradients are multiplied by anyway.' }) },
  { doc: 'clipGradNorm options.' },
);

function bufferOf(where: string, grads: unknown): Tensor {
  if (grads instanceof Arena) return grads.buffer;
  if (grads instanceof Tensor) return grads;
  throw invalidArg(`${where}: grads must be an Arena or a Tensor, got ${show(grads)}`);
}

function normOf([sumSquares, nonFinite]: [number, number], preScale: number): GradNorm {
  return { norm: nonFinite > 0 ? NaN : Math.sqrt(sumSquares) * preScale, nonFinite };
}

function checkClip(where: string, maxNorm: unknown, options: ClipOptions): [number, number] {
  const max = checkNumber(where, 'maxNorm', maxNorm, { min: 0, minOpen: true });
  return [max, resolveOptions(where, CLIP_OPTIONS_SCHEMA, options).preScale];
}

function clipOf(n: GradNorm, maxNorm: number, preScale: number): ClipResult {
  return { ...n, scale: preScale * Math.min(1, maxNorm / (n.norm + 1e-6)) };
}

/**
 * The norm and the clipping scale from a sum of squares and a count of non-finite elements gathered elsewhere
 * (e.g. summed over the ranks that each hold a shard of the gradients).
 */
export function clipFromSums(sumSquares: number, nonFinite: number, maxNorm = 1.0): ClipResult {
  const [max, pre] = checkClip('clipFromSums', maxNorm, {});
  return clipOf(normOf([sumSquares, nonFinite], pre), max, pre);
}

/** The global L2 norm of the gradients (f32 or bf16), and how many elements are not finite. */
export function gradNorm(grads: Arena | Tensor): GradNorm {
  return normOf(ops.sumSquares(bufferOf('gradNorm', grads)), 1);
}

export async function gradNormAsync(grads: Arena | Tensor): Promise<GradNorm> {
  return normOf(await ops.sumSquaresAsync(bufferOf('gradNormAsync', grads)), 1);
}

/**
 * The norm and the clipping scale for `maxNorm` (defaults to 1.0, the usual LLM setting). The gradients are
 * left as they are: pass `scale` as AdamW's gradScale.
 */
export function clipGradNorm(grads: Arena | Tensor, maxNorm = 1.0, options: ClipOptions = {}): ClipResult {
  const where = 'clipGradNorm';
  const buf = bufferOf(where, grads);
  const [max, pre] = checkClip(where, maxNorm, options);
  return clipOf(normOf(ops.sumSquares(buf), pre), max, pre);
}

export async function clipGradNormAsync(grads: Arena | Tensor, maxNorm = 1.0, options: ClipOptions = {}): Promise<ClipResult> {
  const where = 'clipGradNormAsync';
  const buf = bufferOf(where, grads);
  const [max, pre] = checkClip(where, maxNorm, options);
  return clipOf(normOf(await ops.sumSquaresAsync(buf), pre), max, pre);
}
