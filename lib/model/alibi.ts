// alibi.ts: ALiBi head slopes exactly as MPT's reference (llm-foundry's gen_slopes, alibi_bias_max = 8).
// With n = the next power of two >= heads, slope_i = 2^(-alibiBiasMax * i / n) for i = 1..n; when heads is
// not a power of two MPT keeps the odd-indexed slopes first, then the even-indexed ones, and takes the first
// `heads` of that interleaving.
import { invalidArg } from '../core/errors';

export function alibiSlopes(nHeads: number, alibiBiasMax = 8): Float32Array {
  if (!Number.isInteger(nHeads) || nHeads < 1) throw invalidArg(`alibiSlopes: nHeads must be a positive integer, got ${nHeads}`);
  if (!(alibiBiasMax > 0)) throw invalidArg(`alibiSlopes: alibiBiasMax must be positive, got ${alibiBiasMax}`);
  const n = 2 ** Math.ceil(Math.log2(nHeads));
  const all = Array.from({ length: n }, (_, i) => 1 / 2 ** (((i + 1) * alibiBiasMax) / n));
  const ordered = n === nHeads ? all : [...all.filter((_, i) => i % 2 === 1), ...all.filter((_, i) => i % 2 === 0)];
  return Float32Array.from(ordered.slice(0, nHeads));
}
