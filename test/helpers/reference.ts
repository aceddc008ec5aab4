// reference.ts: float64 helpers shared by the kernel tests: a seeded RNG (the seed is fresh each run and
// printed, so a failure can be replayed with PAJAMA_TEST_SEED), bf16 rounding, erf, and relative error.
import { Tensor, type DType } from '../../lib/index';
import { Mulberry32, uniform } from '../../lib/core/rng';

const envSeed = process.env.PAJAMA_TEST_SEED;
export const seed = envSeed ? Number(envSeed) : (Date.now() ^ (process.pid << 8)) >>> 0;

/** Uniform doubles in [0, 1) from Mulberry32(s) (lib/core/rng.ts): small, fast, good enough for test data. */
export function makeRng(s = seed): () => number {
  const source = new Mulberry32(s);
  return () => uniform(source);
}

const rng = makeRng();

export function randn(n: number, scale = 1): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i += 2) {
    const u = Math.max(rng(), 1e-12);
    const v = rng();
    const r = Math.sqrt(-2 * Math.log(u)) * scale;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

export function randInt(n: number, hi: number): Int32Array {
  const out = new Int32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rng() * hi);
  return out;
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** Rounds to bf16 (nearest even), returned as a double. */
export function roundBf16(x: number): number {
  f32buf[0] = x;
  let u = u32buf[0];
  if ((u & 0x7fffffff) > 0x7f800000) return NaN;
  u = (u + 0x7fff + ((u >>> 16) & 1)) >>> 0;
  u32buf[0] = (u >>> 16) << 16;
  return f32buf[0];
}

/** The 16 bits of bf16 that roundBf16(x) stands for. */
export function bf16Bits(x: number): number {
  f32buf[0] = roundBf16(x);
  return u32buf[0] >>> 16;
}

/** The values a tensor of `dtype` will actually hold for `x`. */
export function quantize(x: Float64Array, dtype: DType): Float64Array {
  if (dtype === 'bf16') return x.map(roundBf16);
  return Float64Array.from(Float32Array.from(x));
}

/** A tensor holding x (rounded to the dtype), and the float64 copy of exactly those values. */
export function tensorOf(x: Float64Array, shape: number[], dtype: DType): { t: Tensor; x: Float64Array } {
  const q = quantize(x, dtype);
  const t = Tensor.from(Float32Array.from(q), shape, dtype);
  return { t, x: q };
}

export function toF64(t: Tensor): Float64Array {
  return Float64Array.from(t.toFloat32());
}

/** float64 erf by its Taylor series (|x| < 3) and the continued fraction of erfc beyond; ~1e-15. */
export function erf(x: number): number {
  const ax = Math.abs(x);
  if (ax < 3) {
    let sum = x;
    let term = x;
    for (let n = 1; n < 200; n++) {
      term *= (-x * x) / n;
      const add = term / (2 * n + 1);
      sum += add;
      if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
    }
    return (2 / Math.sqrt(Math.PI)) * sum;
  }
  let f = 0;
  for (let n = 60; n >= 1; n--) f = n / 2 / (ax + f);
  const erfc = Math.exp(-ax * ax) / Math.sqrt(Math.PI) / (ax + f);
  return Math.sign(x) * (1 - erfc);
}

/** ||a - b||_2 / ||b||_2 (0 when both are zero). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`relErr: lengths ${a.length} and ${b.length}`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    const d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
  }
  if (den === 0) return Math.sqrt(num);
  return Math.sqrt(num / den);
}

/** fp32 and bf16 bounds every kernel test uses (issue #2). */
export const TOL: Record<'f32' | 'bf16', number> = { f32: 1e-5, bf16: 2e-2 };
