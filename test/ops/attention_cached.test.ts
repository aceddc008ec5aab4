// attentionCachedForward: attention of new positions over a K/V cache (inference), against the float64 reference
// of causal ALiBi attention over the whole sequence (attentionForwardRef): the rows of the new positions, in f32
// and bf16, at every ISA level the CPU has, with odd sizes; the caches hold the new k and v exactly at their
// positions and nothing else changes; a prefill (past 0) is bit for bit attentionForward on both engines; a
// decode loop of one token at a time gives every row of the full attention; bad arguments name the op.
import t from 'tap';
import { ops, Tensor, setIsaLimit, setAttentionEngine, backendInfo, type IsaLevel } from '../../lib/index';
import { alibiSlopes } from '../../lib/model/alibi';
import { attentionForwardRef } from '../helpers/op-references';
import { randn, relErr, seed, tensorOf, toF64, TOL } from '../helpers/reference';

t.comment(`seed ${seed}`);

const ALL: IsaLevel[] = ['scalar', 'avx2', 'avx512', 'avx512_bf16'];
const detected = backendInfo().cpu.detectedIsa;
const levels = ALL.slice(0, ALL.indexOf(detected) + 1);
const defaultEngine = backendInfo().attention.engine;

/** Rows [t0, t1) of x (B, T, W) as (B, t1 - t0, W). */
function rows(x: Float64Array, B: number, T: number, W: number, t0: number, t1: number): Float64Array {
  const out = new Float64Array(B * (t1 - t0) * W);
  for (let b = 0; b < B; b++) out.set(x.subarray((b * T + t0) * W, (b * T + t1) * W), b * (t1 - t0) * W);
  return out;
}

/** The cache layout (B, H, L, D) holding k (s = 1) or v (s = 2) of positions [0, n) of qkv (B, T, 3, H, D); NaN elsewhere. */
function cacheOf(qkv: Float64Array, B: number, T: number, H: number, D: number, L: number, n: number, s: number): Float64Array {
  const out = new Float64Array(B * H * L * D).fill(NaN);
  for (let b = 0; b < B; b++)
    for (let h = 0; h < H; h++)
      for (let p = 0; p < n; p++)
        for (let d = 0; d < D; d++) out[((b * H + h) * L + p) * D + d] = qkv[(((b * T + p) * 3 + s) * H + h) * D + d];
  return out;
}

const sameBits = (a: Float32Array, b: Float32Array) => a.length === b.length && a.every((x, i) => Object.is(x, b[i]));

// [B, past, Tq, H, D, maxLen]: decode steps (Tq 1) at short and long pasts, several new tokens at once,
// odd head dims, a cache exactly full, and past 0 (a prefill).
const cases: [number, number, number, number, number, number][] = [
  [1, 1, 1, 2, 16, 4],
  [2, 6, 1, 3, 20, 9],
  [1, 130, 1, 4, 64, 131],
  [2, 37, 5, 3, 32, 50],
  [1, 70, 9, 2, 128, 79],
  [1, 0, 7, 6, 20, 11],
  [2, 0, 70, 2, 64, 100],
];

for (const [B, past, Tq, H, D, L] of cases) {
  for (const dtype of ['f32', 'bf16'] as const) {
    t.test(`attentionCachedForward ${dtype} B=${B} past=${past} Tq=${Tq} H=${H} D=${D} maxLen=${L}`, async (t) => {
      const C = H * D;
      const T = past + Tq;
      const slopes = alibiSlopes(H);
      const { x: full } = tensorOf(randn(B * T * 3 * C), [B, T, 3 * C], dtype);
      const ref = attentionForwardRef(full, slopes, B, T, H, D);
      const want = rows(ref.out, B, T, C, past, T);
      const newQkv = rows(full, B, T, 3 * C, past, T);
      const kWant = cacheOf(full, B, T, H, D, L, T, 1);
      const vWant = cacheOf(full, B, T, H, D, L, T, 2);
      const slopesT = Tensor.from(slopes, [H], 'f32');
      const qkv = Tensor.from(Float32Array.from(newQkv), [B, Tq, 3 * C], dtype);
      for (const level of levels) {
        setIsaLimit(level);
        // The cache holds [0, past) and NaN after it: a read past the new positions would show.
        const kCache = Tensor.from(Float32Array.from(cacheOf(full, B, T, H, D, L, past, 1)), [B, H, L, D], dtype);
        const vCache = Tensor.from(Float32Array.from(cacheOf(full, B, T, H, D, L, past, 2)), [B, H, L, D], dtype);
        const out = Tensor.zeros(dtype, [B, Tq, C]);
        out.fill(7); // overwritten
        await ops.attentionCachedForwardAsync(out, kCache, vCache, qkv, slopesT, H, past);
        const e = relErr(toF64(out), want);
        t.ok(e <= TOL[dtype], `${level}: out rel err ${e}`);
        t.ok(sameBits(kCache.toFloat32(), Float32Array.from(kWant)), `${level}: kCache holds k at [0, ${T}) exactly, NaN after`);
        t.ok(sameBits(vCache.toFloat32(), Float32Array.from(vWant)), `${level}: vCache holds v at [0, ${T}) exactly, NaN after`);
        for (const x of [kCache, vCache, out]) x.dispose();
      }
      setIsaLimit(detected);
      for (const x of [qkv, slopesT]) x.dispose();
    });
  }
}

t.test('a prefill (past 0) is bit for bit attentionForward, on both engines and every ISA level', async (t) => {
  const [B, T, H, D, L] = [2, 75, 3, 24, 90];
  const C = H * D;
  const slopesT = Tensor.from(alibiSlopes(H), [H], 'f32');
  for (const dtype of ['f32', 'bf16'] as const) {
    const { t: qkv } = tensorOf(randn(B * T * 3 * C), [B, T, 3 * C], dtype);
    for (const engine of ['tiles', 'gemm'] as const) {
      setAttentionEngine(engine);
      for (const level of levels) {
        setIsaLimit(level);
        const out = Tensor.zeros(dtype, [B, T, C]);
        const lse = Tensor.zeros('f32', [B, H, T]);
        ops.attentionForward(out, lse, qkv, slopesT, H);
        const cached = Tensor.zeros(dtype, [B, T, C]);
        const kCache = Tensor.zeros(dtype, [B, H, L, D]);
        const vCache = Tensor.zeros(dtype, [B, H, L, D]);
        ops.attentionCachedForward(cached, kCache, vCache, qkv, slopesT, H, 0);
        t.ok(sameBits(cached.toFloat32(), out.toFloat32()), `${dtype} ${engine} ${level}`);
        for (const x of [out, lse, cached, kCache, vCache]) x.dispose();
      }
    }
    qkv.dispose();
  }
  setIsaLimit(detected);
  setAttentionEngine(defaultEngine);
  slopesT.dispose();
});

t.test('decoding one position at a time gives every row of the whole-sequence attention', async (t) => {
  const [T, H, D] = [40, 4, 16];
  const C = H * D;
  const slopes = alibiSlopes(H);
  const slopesT = Tensor.from(slopes, [H], 'f32');
  for (const dtype of ['f32', 'bf16'] as const) {
    const { x: full } = tensorOf(randn(T * 3 * C), [1, T, 3 * C], dtype);
    const ref = attentionForwardRef(full, slopes, 1, T, H, D);
    const kCache = Tensor.zeros(dtype, [1, H, T, D]);
    const vCache = Tensor.zeros(dtype, [1, H, T, D]);
    const got = new Float64Array(T * C);
    const out = Tensor.zeros(dtype, [1, 1, C]);
    for (let p = 0; p < T; p++) {
      const qkv = Tensor.from(Float32Array.from(full.subarray(p * 3 * C, (p + 1) * 3 * C)), [1, 1, 3 * C], dtype);
      await ops.attentionCachedForwardAsync(out, kCache, vCache, qkv, slopesT, H, p);
      got.set(toF64(out), p * C);
      qkv.dispose();
    }
    const e = relErr(got, ref.out);
    t.ok(e <= TOL[dtype], `${dtype}: rel err ${e} over ${T} steps`);
    for (const x of [kCache, vCache, out]) x.dispose();
  }
  slopesT.dispose();
});

t.test('attentionCachedForward rejects bad arguments, naming the op', async (t) => {
  const [B, Tq, H, D, L] = [2, 3, 2, 8, 10];
  const C = H * D;
  const qkv = Tensor.zeros('f32', [B, Tq, 3 * C]);
  const out = Tensor.zeros('f32', [B, Tq, C]);
  const k = Tensor.zeros('f32', [B, H, L, D]);
  const v = Tensor.zeros('f32', [B, H, L, D]);
  const slopes = Tensor.zeros('f32', [H]);
  const kBf16 = Tensor.zeros('bf16', [B, H, L, D]);
  const kShort = Tensor.zeros('f32', [B, H, L, D + 1]);
  const k3 = Tensor.zeros('f32', [B, H, L * D]);
  const badOut = Tensor.zeros('f32', [B, Tq, C + 1]);
  const wide = Tensor.zeros('f32', [1, 1, 3 * 257]);
  const op = ops.attentionCachedForward;
  t.throws(() => op(out, k, v, qkv, slopes, H, 8), /attentionCachedForward: past \(8\) \+ new positions \(3\) must be within the cache's maxLen \(10\)/);
  t.throws(() => op(out, k, v, qkv, slopes, H, -1), /attentionCachedForward: past \(-1\)/);
  t.throws(() => op(out, kBf16, v, qkv, slopes, H, 0), /attentionCachedForward: .*'kCache'/);
  t.throws(() => op(out, kShort, v, qkv, slopes, H, 0), /attentionCachedForward: 'kCache' must have shape \[2, ?2, ?10, ?8\]/);
  t.throws(() => op(out, k3, v, qkv, slopes, H, 0), /attentionCachedForward: 'kCache' must be \(B, H, maxLen, D\)/);
  t.throws(() => op(out, k, k, qkv, slopes, H, 0), /attentionCachedForward: 'kCache' and 'vCache' overlap/);
  t.throws(() => op(badOut, k, v, qkv, slopes, H, 0), /attentionCachedForward: 'out' must have shape/);
  t.throws(() => op(out, k, v, qkv, slopes, 5, 0), /attentionCachedForward: 'qkv' last dims \(48\) must be 3 \* nHeads \(5\)/);
  t.throws(() => op(out, k, v, wide, slopes, 1, 0), /attentionCachedForward: head dim C \/ nHeads must be in 1\.\.256, got 257/);
  t.throws(() => op(out, k, v, qkv, Tensor.zeros('f32', [H + 1]), H, 0), /attentionCachedForward: 'slopes' must have shape \[2\]/);
  await t.rejects(ops.attentionCachedForwardAsync(out, k, v, qkv, slopes, H, 9), /attentionCachedForward: past \(9\)/);
  for (const x of [qkv, out, k, v, slopes, kBf16, kShort, k3, badOut, wide]) x.dispose();
});
