// adamw.ts: AdamW over a whole parameter arena (torch.optim.AdamW semantics: decoupled weight decay
// p -= lr * wd * p, then Adam with bias correction), one native adamwUpdate call per step that also applies
// the clipping scale (gradScale) and writes the bf16 compute copy in the same pass.
//
// The f32 master parameters, their f32 gradients and the two f32 moments are arenas of one layout; weight
// decay is per arena entry, chosen by a predicate (by default: every matrix decays, every vector does not).
// The addon takes [offset, length, decay] segments as Int32, so an arena above 2^31 - 1 elements (a 7B model)
// is updated in a few calls over consecutive ranges of at most that many elements; below that it is one call.
import { DisposedError, invalidArg } from '../core/errors';
import { ops } from '../core/ops';
import { checkArena, sameLayout } from '../core/arena-checks';
import { Arena, type ArenaEntry, type Tensor } from '../core/tensor';
import * as schema from '../core/config-schema';
import type { ObjectField } from '../core/config-schema';
import { checkInteger, checkKeys, checkNumber, resolveOptions, show } from './options';

/** The most elements one adamwUpdate call can address: its segments are Int32. */
export const MAX_ELEMENTS_PER_CALL = 2 ** 31 - 1;

/** Whether an entry is an embedding table (MPT's tied `transformer.wte.weight`, or a `wpe`/`*embed*` one). */
export function isEmbedding(entry: ArenaEntry): boolean {
  return entry.name.split('.').some((part) => part === 'wte' || part === 'wpe' || /embed/i.test(part));
}

/**
 * The default decay rule: weight matrices decay (ndim >= 2: in MPT every Linear weight and the tied
 * embedding wte), vectors do not (LayerNorm weights, and biases where a model has them).
 */
export function defaultDecay(entry: ArenaEntry): boolean {
  return entry.shape.length >= 2;
}

/** AdamW's options. The defaults stated here are checked against ADAMW_OPTIONS_SCHEMA by a test. */
export interface AdamWOptions {
  /** Defaults to 0.9 (SlimPajama-DC). */
  beta1?: number;
  /** Defaults to 0.95 (SlimPajama-DC). */
  beta2?: number;
  /** Defaults to 1e-8. */
  eps?: number;
  /** Which entries get weight decay. Defaults to defaultDecay (matrices only). Not with decayEmbeddings. */
  decay?: (entry: ArenaEntry) => boolean;
  /** With the default rule: whether embedding matrices (isEmbedding) decay too. Defaults to true. */
  decayEmbeddings?: boolean;
  /**
   * The bf16 compute copy written in the same pass: true makes one (owned by the optimizer, initialised to
   * bf16(params)); an Arena (bf16, the params' layout) has that one written (the caller owns it); false,
   * none. Defaults to false.
   */
  computeCopy?: boolean | Arena;
  /** The most elements per native call. Defaults to MAX_ELEMENTS_PER_CALL; set lower only to test the split. */
  maxElementsPerCall?: number;
}

/** AdamWOptions as the constructor reads them: the scalars with their defaults, the rest as given. */
interface AdamWOptionValues {
  beta1: number;
  beta2: number;
  eps: number;
  decay: AdamWOptions['decay'];
  decayEmbeddings: AdamWOptions['decayEmbeddings'];
  computeCopy: AdamWOptions['computeCopy'];
  maxElementsPerCall: number;
}
const sameKeys: schema.SameKeys<AdamWOptionValues, AdamWOptions> = true;
void sameKeys;

/** Passed through as given; the constructor checks it against the arenas. */
const given = <T>(typeName: string, defaultDoc: string, doc: string) => schema.custom<T>({ typeName, defaultDoc, doc, parse: (v) => v as T });
// decay and decayEmbeddings have no default of their own: the constructor needs to know whether each was given.

/** AdamW's options: their kinds, ranges and defaults (SlimPajama-DC's betas), stated once. */
export const ADAMW_OPTIONS_SCHEMA: ObjectField<AdamWOptionValues> = schema.object<AdamWOptionValues>(
  {
    beta1: schema.number({ min: 0, max: 1, maxOpen: true, default: 0.9, doc: 'First-moment decay.' }),
    beta2: schema.number({ min: 0, max: 1, maxOpen: true, default: 0.95, doc: 'Second-moment decay.' }),
    eps: schema.number({ min: 0, default: 1e-8, doc: 'Added to the root of the second moment.' }),
    decay: given('(entry) => boolean', 'defaultDecay (matrices only)', 'Which entries get weight decay. Not with decayEmbeddings.'),
    decayEmbeddings: given('boolean', 'true', 'With the default rule: whether embeddings decay too.'),
    computeCopy: schema.custom<AdamWOptions['computeCopy']>({
      typeName: 'boolean | Arena',
      default: false,
      doc: 'The bf16 compute copy written in the same pass (checked against the params by the constructor).',
      parse: (v) => v as AdamWOptions['computeCopy'],
    }),
    maxElementsPerCall: schema.integer({
      min: 1,
      safe: true,
      default: MAX_ELEMENTS_PER_CALL,
      defaultDoc: 'MAX_ELEMENTS_PER_CALL',
      doc: 'The most elements per native call.',
      check: (n, ctx) => {
        if (n > MAX_ELEMENTS_PER_CALL) ctx.fail(`option 'maxElementsPerCall' must be <= ${MAX_ELEMENTS_PER_CALL}, got ${n}`);
      },
    }),
  },
  { doc: 'AdamW options.' },
);

export interface AdamWStepArgs {
  /** This step's learning rate (e.g. cosineWithWarmup(step, ...)), finite and >= 0. */
  lr: number;
  /** This step's weight decay (e.g. PtwdController.weightDecay(step)), applied to decayed entries only. */
  weightDecay: number;
  /**
   * Factor on the gradients before the update: the clipping scale from clipGradNorm, times any
   * accumulation factor. Finite and > 0. Defaults to 1. Skip the step instead when gradients are not finite.
   */
  gradScale?: number;
}

/** What a checkpoint needs of the optimizer: the live moment arenas (not copies) and the step count. */
export interface AdamWState {
  /** Updates applied so far; the next uses step + 1 for bias correction. */
  step: number;
  beta1: number;
  beta2: number;
  eps: number;
  m: Arena;
  v: Arena;
}

export interface AdamWLoadState {
  step: number;
  /** The first moment: an f32 arena of the params' layout, or its whole contents. */
  m: Arena | Float32Array;
  v: Arena | Float32Array;
  /** Accepted (state() has them) but not applied: the hyperparameters are the constructor's. */
  beta1?: number;
  beta2?: number;
  eps?: number;
}

// One native call: a range of the arenas and its segments relative to the range's start.
interface Call {
  params: Tensor;
  grads: Tensor;
  m: Tensor;
  v: Tensor;
  paramsBf16: Tensor | null;
  segments: Int32Array;
}

/** `value` as a live `dtype` Arena with the layout of `params`; errors name `what` (and `where`). */
function checkLayoutArena(where: string, what: string, value: unknown, params: Arena, dtype: 'f32' | 'bf16'): Arena {
  const a = checkArena(value, what, where, { show });
  if (a.dtype !== dtype) throw invalidArg(`${where}: ${what} must be ${dtype === 'f32' ? 'an' : 'a'} ${dtype} arena, got ${a.dtype}`);
  if (!sameLayout(a, params)) {
    throw invalidArg(`${where}: ${what} must have the params' layout (${params.entries.length} entries, ${params.numel} elements)`);
  }
  return a;
}

export class AdamW {
  readonly params: Arena;
  readonly grads: Arena;
  readonly m: Arena;
  readonly v: Arena;
  /** The bf16 compute copy written with every step, or null. */
  readonly computeCopy: Arena | null;
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  #ownsCopy: boolean;
  #decay: ReadonlyMap<string, boolean>;
  #segments: Int32Array;
  #calls: Call[] = [];
  #views: Tensor[] = [];
  #step = 0;
  #busy = false;
  #disposed = false;

  /** `params`: the f32 master weights; `grads`: their f32 gradients (same layout), read by every step. */
  constructor(params: Arena, grads: Arena, options: AdamWOptions = {}) {
    const where = 'AdamW';
    checkKeys(where, options, Object.keys(ADAMW_OPTIONS_SCHEMA.fields));
    checkArena(params, 'params', where, { show });
    if (params.dtype !== 'f32') throw invalidArg(`${where}: params must be an f32 arena (master weights), got ${params.dtype}`);
    checkLayoutArena(where, 'grads', grads, params, 'f32');
    if (grads === params) throw invalidArg(`${where}: grads and params must be different arenas`);
    const o = resolveOptions(where, ADAMW_OPTIONS_SCHEMA, options);
    this.beta1 = o.beta1;
    this.beta2 = o.beta2;
    this.eps = o.eps;
    const maxPerCall = o.maxElementsPerCall;

    let rule: (e: ArenaEntry) => boolean;
    if (options.decay !== undefined) {
      if (typeof options.decay !== 'function') {
        throw invalidArg(`${where}: option 'decay' must be a function (entry) => boolean, got ${show(options.decay)}`);
      }
      if (options.decayEmbeddings !== undefined) {
        throw invalidArg(`${where}: give option 'decay' or option 'decayEmbeddings', not both (a custom rule decides embeddings too)`);
      }
      rule = options.decay;
    } else {
      const decayEmbeddings = options.decayEmbeddings ?? true;
      if (typeof decayEmbeddings !== 'boolean') {
        throw invalidArg(`${where}: option 'decayEmbeddings' must be a boolean, got ${show(decayEmbeddings)}`);
      }
      rule = decayEmbeddings ? defaultDecay : (e) => defaultDecay(e) && !isEmbedding(e);
    }
    const decay = new Map<string, boolean>();
    for (const e of params.entries) {
      const d = rule(e);
      if (typeof d !== 'boolean') {
        throw invalidArg(`${where}: the decay rule must return a boolean; for '${e.name}' it returned ${show(d)}`);
      }
      decay.set(e.name, d);
    }
    this.#decay = decay;
    this.#segments = Int32Array.from(params.entries.flatMap((e) => [e.offset, e.numel, decay.get(e.name) ? 1 : 0]));

    const copy = o.computeCopy;
    if (copy instanceof Arena) {
      checkLayoutArena(where, "option 'computeCopy'", copy, params, 'bf16');
    } else if (typeof copy !== 'boolean') {
      throw invalidArg(`${where}: option 'computeCopy' must be a boolean or a bf16 Arena, got ${show(copy)}`);
    }

    this.params = params;
    this.grads = grads;
    this.m = params.like('f32');
    this.v = params.like('f32');
    this.#ownsCopy = copy === true;
    this.computeCopy = copy === true ? params.like('bf16') : copy === false ? null : copy;
    try {
      if (this.#ownsCopy) this.syncComputeCopy();
      this.#planCalls(maxPerCall);
    } catch (e) {
      this.dispose();
      throw e;
    }
  }

  // Splits the arena into consecutive ranges of at most `max` elements (one call each; entries may straddle
  // two ranges, the update being elementwise). One range uses the whole buffers, more use views of them.
  #planCalls(max: number): void {
    const n = this.params.numel;
    const bf16 = this.computeCopy?.buffer ?? null;
    if (n <= max) {
      this.#calls = [
        { params: this.params.buffer, grads: this.grads.buffer, m: this.m.buffer, v: this.v.buffer, paramsBf16: bf16, segments: this.#segments },
      ];
      return;
    }
    const view = (t: Tensor, lo: number, len: number): Tensor => {
      const x = t.view(lo, [len]);
      this.#views.push(x);
      return x;
    };
    for (let lo = 0; lo < n; lo += max) {
      const hi = Math.min(n, lo + max);
      const segs: number[] = [];
      for (const e of this.params.entries) {
        const a = Math.max(lo, e.offset);
        const b = Math.min(hi, e.offset + e.numel);
        if (a < b) segs.push(a - lo, b - a, this.#decay.get(e.name) ? 1 : 0);
      }
      this.#calls.push({
        params: view(this.params.buffer, lo, hi - lo),
        grads: view(this.grads.buffer, lo, hi - lo),
        m: view(this.m.buffer, lo, hi - lo),
        v: view(this.v.buffer, lo, hi - lo),
        paramsBf16: bf16 ? view(bf16, lo, hi - lo) : null,
        segments: Int32Array.from(segs),
      });
    }
  }

  /** [offset, length, decay] for every entry, in layout order (a copy). */
  get segments(): Int32Array {
    return this.#segments.slice();
  }

  /** Whether the entry `name` gets weight decay. */
  decays(name: string): boolean {
    const d = this.#decay.get(name);
    if (d === undefined) throw invalidArg(`AdamW.decays: no entry '${name}' in the params arena`);
    return d;
  }

  /** Updates applied so far (the next one is bias-corrected as step stepCount + 1). */
  get stepCount(): number {
    return this.#step;
  }

  /** Native calls per step (1 unless the arena exceeds maxElementsPerCall). */
  get callsPerStep(): number {
    return this.#calls.length;
  }

  get disposed(): boolean {
    return this.#disposed;
  }

  #begin(where: string, args: AdamWStepArgs): [number, number, number] {
    if (this.#disposed) throw new DisposedError(`${where} after dispose()`);
    if (this.#busy) throw invalidArg(`${where}: the previous stepAsync() has not finished; await it first`);
    checkKeys(where, args, ['lr', 'weightDecay', 'gradScale']);
    const lr = checkNumber(where, "'lr'", args.lr, { min: 0 });
    const wd = checkNumber(where, "'weightDecay'", args.weightDecay, { min: 0 });
    const gs = args.gradScale ?? 1;
    if (!(typeof gs === 'number' && Number.isFinite(gs) && gs > 0)) {
      throw invalidArg(
        `${where}: 'gradScale' must be a finite number > 0, got ${show(gs)} (when the gradients are not finite, skip the step)`,
      );
    }
    return [lr, wd, gs];
  }

  /** One update, run at once on the calling thread. */
  step(args: AdamWStepArgs): void {
    const [lr, wd, gs] = this.#begin('AdamW.step', args);
    const t = this.#step + 1;
    for (const c of this.#calls) {
      ops.adamwUpdate(c.params, c.grads, c.m, c.v, c.paramsBf16, c.segments, lr, this.beta1, this.beta2, this.eps, wd, t, gs);
    }
    this.#step = t;
  }

  /** One update on the native worker thread; the event loop stays free. Await it before the next. */
  async stepAsync(args: AdamWStepArgs): Promise<void> {
    const [lr, wd, gs] = this.#begin('AdamW.stepAsync', args);
    const t = this.#step + 1;
    this.#busy = true;
    try {
      await Promise.all(
        this.#calls.map((c) =>
          ops.adamwUpdateAsync(c.params, c.grads, c.m, c.v, c.paramsBf16, c.segments, lr, this.beta1, this.beta2, this.eps, wd, t, gs),
        ),
      );
      this.#step = t;
    } finally {
      this.#busy = false;
    }
  }

  /** Writes bf16(params) into the compute copy (after loading parameters from a checkpoint). */
  syncComputeCopy(): void {
    if (this.#disposed) throw new DisposedError('AdamW.syncComputeCopy after dispose()');
    if (this.computeCopy) ops.cast(this.computeCopy.buffer, this.params.buffer);
  }

  /** The step count and the live moment arenas, for a checkpoint. */
  state(): AdamWState {
    if (this.#disposed) throw new DisposedError('AdamW.state after dispose()');
    return { step: this.#step, beta1: this.beta1, beta2: this.beta2, eps: this.eps, m: this.m, v: this.v };
  }

  /** Restores the step count and copies in both moments (from arenas of the params' layout, or raw f32). */
  loadState(state: AdamWLoadState): void {
    const where = 'AdamW.loadState';
    if (this.#disposed) throw new DisposedError(`${where} after dispose()`);
    if (this.#busy) throw invalidArg(`${where}: a stepAsync() is running; await it first`);
    checkKeys(where, state, ['step', 'm', 'v', 'beta1', 'beta2', 'eps']);
    const step = checkInteger(where, "'step'", state.step, 0);
    // Check both before writing either.
    const sources = (['m', 'v'] as const).map((what) => {
      const src: unknown = state[what];
      if (src instanceof Float32Array) {
        if (src.length !== this.params.numel) {
          throw invalidArg(`${where}: '${what}' must hold ${this.params.numel} elements, got a Float32Array of ${src.length}`);
        }
        return src;
      }
      return checkLayoutArena(where, `'${what}'`, src, this.params, 'f32');
    });
    [this.m, this.v].forEach((dst, i) => {
      const src = sources[i];
      if (src instanceof Float32Array) dst.buffer.copyFrom(src);
      else if (src !== dst) ops.cast(dst.buffer, src.buffer); // f32 to f32: a copy
    });
    this.#step = step;
  }

  /** Frees the moments (and the compute copy when the optimizer made it). Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const x of this.#views) x.dispose();
    this.#views = [];
    this.#calls = [];
    this.m.dispose();
    this.v.dispose();
    if (this.#ownsCopy) this.computeCopy?.dispose();
  }
}
