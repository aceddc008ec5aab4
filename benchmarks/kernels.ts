// Kernel microbenchmarks: GEMM at the transformer shapes, attention (and one decode step over a KV cache), the LM
// head, and the element-wise kernels (LayerNorm, GELU, residual, casts, AdamW). Each result is reported against a
// reference measured in the same run, so ratios stay meaningful on a noisy machine: GEMM-like rows against a
// large square GEMM of their dtype
// (peakShare), element-wise rows against a native copy of the same bytes (memcpyShare: the row's GB/s over
// the copy's, both counting bytes read plus bytes written). Element-wise rows also give elements per second,
// so bf16 and f32 compare per element.
//
//   npm run bench:kernels               table
//   npm run bench:kernels -- --json     JSON on stdout (and the table on stderr)
//   options: --quick (smaller repeat counts), --threads N, --out FILE (also write the JSON there),
//            --lm-plan LOGITROWS,BLOCKROWS (the row plan at which the LM head's GEMMs are timed alone),
//            --only GROUPS (comma-separated: gemm, attention, layernorm, gelu, residual, cast, lmhead, adamw;
//            the square GEMM peaks run only with gemm, attention or lmhead)
import * as os from 'node:os';
import { Tensor, backendInfo, ops, setAttentionEngine, setThreads, type DType } from '../lib/index';
import { alibiSlopes } from '../lib/model/alibi';
import { benchCli } from './cli';

interface Result {
  name: string;
  dtype: DType;
  shape: string;
  ms: number; // median wall time of one call
  gflops?: number;
  gbps?: number; // bytes read + bytes written, per second
  gelems?: number; // element-wise rows: G elements per second
  memcpyGbps?: number; // element-wise rows: the copy of the same bytes (memcpy row), GB/s
  memcpyShare?: number; // gbps / memcpyGbps
  peakShare?: number; // gflops / the same-dtype square GEMM rate of this run
}

const { flag, opt, log, writeReport, usageError } = benchCli('bench:kernels', {
  flags: ['--quick'],
  options: ['--threads', '--only', '--lm-plan'],
});
const quick = flag('--quick');
if (opt('--threads')) setThreads(Number(opt('--threads')));
const GROUPS = ['gemm', 'attention', 'layernorm', 'gelu', 'residual', 'cast', 'lmhead', 'adamw'] as const;
type Group = (typeof GROUPS)[number];
const only = opt('--only')?.split(',');
for (const g of only ?? []) {
  if (!(GROUPS as readonly string[]).includes(g)) usageError(`--only: unknown group '${g}' (groups: ${GROUPS.join(', ')})`);
}
const runs = (g: Group) => !only || only.includes(g);
const lmPlanGiven = opt('--lm-plan')?.split(',').map(Number);
const lmPlanOk = (p: number[]) => p.length === 2 && Number.isInteger(p[0]) && p[0] >= 1 && Number.isInteger(p[1] / p[0]) && p[1] >= p[0];
if (lmPlanGiven && !lmPlanOk(lmPlanGiven)) {
  usageError(`--lm-plan: expected LOGITROWS,BLOCKROWS with BLOCKROWS a multiple of LOGITROWS, got '${opt('--lm-plan')}'`);
}

function rand(dtype: DType, shape: number[], scale = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (Math.random() * 2 - 1) * scale;
  return Tensor.from(a, shape, dtype);
}

/** Median milliseconds of fn over repeats after a warm-up, repeating until ~minMs have passed. */
function time(fn: () => void, minMs = quick ? 150 : 600, maxReps = 50): number {
  fn();
  const times: number[] = [];
  const t0 = performance.now();
  while (times.length < 3 || (performance.now() - t0 < minMs && times.length < maxReps)) {
    const s = performance.now();
    fn();
    times.push(performance.now() - s);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}

const results: Result[] = [];
const peak: Partial<Record<DType, number>> = {};

function record(r: Result): void {
  if (r.gflops !== undefined && peak[r.dtype]) r.peakShare = r.gflops / peak[r.dtype]!;
  results.push(r);
  const rate = r.gflops !== undefined ? `${r.gflops.toFixed(1)} GFLOP/s` : `${r.gbps!.toFixed(1)} GB/s`;
  const elems = r.gelems !== undefined ? `${r.gelems.toFixed(2)} Gelem/s` : '';
  const share =
    r.peakShare !== undefined
      ? `${(100 * r.peakShare).toFixed(1)}% of peak`
      : r.memcpyShare !== undefined
        ? `${elems.padStart(14)}  ${(100 * r.memcpyShare).toFixed(1)}% of memcpy`
        : elems.padStart(14);
  log(`${r.name.padEnd(28)} ${r.dtype.padEnd(5)} ${r.shape.padEnd(26)} ${r.ms.toFixed(3).padStart(10)} ms  ${rate.padStart(18)}  ${share}`);
}

function benchGemm(name: string, dtype: DType, M: number, K: number, N: number): Result {
  // out (M, N) = inp (M, K) @ weight (N, K)^T: the matmulForward layout
  const a = rand(dtype, [M, K]);
  const w = rand(dtype, [N, K]);
  const c = Tensor.zeros(dtype, [M, N]);
  const ms = time(() => ops.matmulForward(c, a, w));
  for (const x of [a, w, c]) x.dispose();
  return { name, dtype, shape: `${M}x${K}x${N}`, ms, gflops: (2 * M * N * K) / ms / 1e6 };
}

/** One engine's rows ('tiles' or 'gemm', see setAttentionEngine); the engine in force is restored after. */
function benchAttention(engine: 'tiles' | 'gemm', dtype: DType, B: number, H: number, T: number, D: number): void {
  const before = backendInfo().attention.engine;
  setAttentionEngine(engine);
  const C = H * D;
  const qkv = rand(dtype, [B, T, 3 * C]);
  const out = Tensor.zeros(dtype, [B, T, C]);
  const lse = Tensor.zeros('f32', [B, H, T]);
  const dout = rand(dtype, [B, T, C]);
  const dqkv = Tensor.zeros(dtype, [B, T, 3 * C]);
  const slopes = Tensor.from(alibiSlopes(H), [H]);
  const fwdFlops = (4 * B * H * D * T * (T + 1)) / 2; // causal: QK^T and PV over the lower triangle
  const shape = `B${B} H${H} T${T} D${D}`;
  const fwd = time(() => ops.attentionForward(out, lse, qkv, slopes, H));
  record({ name: `attention forward (${engine})`, dtype, shape, ms: fwd, gflops: fwdFlops / fwd / 1e6 });
  const bwd = time(() => ops.attentionBackward(dqkv, dout, qkv, out, lse, slopes, H));
  record({ name: `attention backward (${engine})`, dtype, shape, ms: bwd, gflops: (2.5 * fwdFlops) / bwd / 1e6 });
  record({ name: `attention fwd+bwd (${engine})`, dtype, shape, ms: fwd + bwd, gflops: (3.5 * fwdFlops) / (fwd + bwd) / 1e6 });
  for (const x of [qkv, out, lse, dout, dqkv, slopes]) x.dispose();
  setAttentionEngine(before);
}

/**
 * One decode step of attention over a K/V cache (attentionCachedForward): B sequences, one new position after
 * `past` cached ones. Memory-bound: GB/s counts the cached K and V it reads.
 */
function benchAttentionDecode(dtype: DType, B: number, H: number, past: number, D: number): void {
  const C = H * D;
  const L = past + 1;
  const qkv = rand(dtype, [B, 1, 3 * C]);
  const out = Tensor.zeros(dtype, [B, 1, C]);
  const kCache = rand(dtype, [B, H, L, D]);
  const vCache = rand(dtype, [B, H, L, D]);
  const slopes = Tensor.from(alibiSlopes(H), [H]);
  const ms = time(() => ops.attentionCachedForward(out, kCache, vCache, qkv, slopes, H, past));
  const bytes = 2 * B * H * L * D * (dtype === 'bf16' ? 2 : 4);
  record({ name: 'attention decode (cached)', dtype, shape: `B${B} H${H} past${past} D${D}`, ms, gbps: bytes / ms / 1e6 });
  for (const x of [qkv, out, kCache, vCache, slopes]) x.dispose();
}

const copyGbps = new Map<number, number>();

/** GB/s (read + write) of the native copy of `bytes` bytes (cast between two f32 tensors), one row per size. */
function memcpyGbps(bytes: number): number {
  const n = Math.max(1, Math.round(bytes / 4));
  let gbps = copyGbps.get(n);
  if (gbps === undefined) {
    const src = rand('f32', [n]);
    const dst = Tensor.zeros('f32', [n]);
    const ms = time(() => ops.cast(dst, src));
    gbps = (2 * n * 4) / ms / 1e6;
    copyGbps.set(n, gbps);
    record({ name: 'memcpy (cast f32->f32)', dtype: 'f32', shape: `${n * 4} bytes`, ms, gbps });
    for (const t of [src, dst]) t.dispose();
  }
  return gbps;
}

/** An element-wise row: `bytes` read + written per call over `elems` elements, against a copy of as many bytes. */
function elementwise(name: string, dtype: DType, shape: string, ms: number, elems: number, bytes: number): void {
  const ref = memcpyGbps(bytes / 2);
  const gbps = bytes / ms / 1e6;
  record({ name, dtype, shape, ms, gbps, gelems: elems / ms / 1e6, memcpyGbps: ref, memcpyShare: gbps / ref });
}

function benchLayerNorm(dtype: DType, N: number, C: number): void {
  const inp = rand(dtype, [N, C]);
  const w = rand(dtype, [C]);
  const out = Tensor.zeros(dtype, [N, C]);
  const mean = Tensor.zeros('f32', [N]);
  const rstd = Tensor.zeros('f32', [N]);
  const dout = rand(dtype, [N, C]);
  const dinp = Tensor.zeros(dtype, [N, C]);
  const dw = Tensor.zeros('f32', [C]);
  const el = dtype === 'bf16' ? 2 : 4;
  const shape = `${N}x${C}`;
  const fwd = time(() => ops.layerNormForward(out, mean, rstd, inp, w, 1e-5));
  elementwise('layernorm forward', dtype, shape, fwd, N * C, 2 * N * C * el);
  const bwd = time(() => ops.layerNormBackward(dinp, dw, dout, inp, w, mean, rstd));
  elementwise('layernorm backward', dtype, shape, bwd, N * C, 3 * N * C * el);
  for (const x of [inp, w, out, mean, rstd, dout, dinp, dw]) x.dispose();
}

function benchGelu(dtype: DType, n: number): void {
  const x = rand(dtype, [n], 3);
  const y = Tensor.zeros(dtype, [n]);
  const dx = Tensor.zeros(dtype, [n]);
  const el = dtype === 'bf16' ? 2 : 4;
  const fwd = time(() => ops.geluForward(y, x));
  elementwise('gelu forward', dtype, `${n}`, fwd, n, 2 * n * el);
  const bwd = time(() => ops.geluBackward(dx, x, y));
  elementwise('gelu backward', dtype, `${n}`, bwd, n, 3 * n * el);
  for (const t of [x, y, dx]) t.dispose();
}

function benchResidual(dtype: DType, n: number): void {
  const a = rand(dtype, [n]);
  const b = rand(dtype, [n]);
  const out = Tensor.zeros(dtype, [n]);
  const el = dtype === 'bf16' ? 2 : 4;
  const ms = time(() => ops.residualForward(out, a, b));
  elementwise('residual add', dtype, `${n}`, ms, n, 3 * n * el);
  for (const t of [a, b, out]) t.dispose();
}

/** Casts are reported under their output dtype. */
function benchCast(from: DType, to: DType, n: number): void {
  const inp = rand(from, [n]);
  const out = Tensor.zeros(to, [n]);
  const ms = time(() => ops.cast(out, inp));
  elementwise(`cast ${from}->${to}`, to, `${n}`, ms, n, 6 * n);
  for (const t of [inp, out]) t.dispose();
}

/**
 * The row plan of crossEntropyForwardBackward (PlanChunks in native/src/ops/cross_entropy.cc, kept in step by
 * hand): f32 logits products of `logitRows` rows, dinp and dwte products over blocks of `blockRows` rows.
 * --lm-plan LOGITROWS,BLOCKROWS times the GEMMs at another plan (a build whose op chunks otherwise).
 */
function lmHeadPlan(dtype: DType, N: number, V: number): { logitRows: number; blockRows: number } {
  if (lmPlanGiven) return { logitRows: Math.min(lmPlanGiven[0], N), blockRows: Math.min(lmPlanGiven[1], N) };
  const ldV = Math.ceil(V / 64) * 64; // the op's row width of logits and dlogits
  const rowsWithin = (maxRows: number, rowBytes: number) => {
    let rows = 128;
    while (rows < maxRows && 2 * rows * rowBytes <= 128 * 2 ** 20) rows *= 2;
    return Math.min(rows, N);
  };
  const logitRows = rowsWithin(512, 4 * ldV);
  return { logitRows, blockRows: dtype === 'f32' ? logitRows : rowsWithin(1024, 2 * ldV) };
}

/**
 * The op's three products alone, at its plan, through the gemm op (the same pt::Gemm calls): logits
 * (rows, V) f32 = inp @ wte[:V]^T, dinp (block, C) = dlogits @ wte[:V], dwte[:V] f32 += dlogits^T @ inp. The
 * gemm op's rows are as wide as its shape, so V must be a multiple of 64 (the op's padded row width) for these
 * to be the op's products exactly. Returns one call of all of them.
 */
function lmHeadGemms(
  dtype: DType,
  N: number,
  C: number,
  V: number,
  wte: Tensor,
  inp: Tensor,
): { run: () => void; plan: string; dispose: () => void } {
  const { logitRows, blockRows } = lmHeadPlan(dtype, N, V);
  const w = wte.view(0, [V, C]);
  const logits = Tensor.zeros('f32', [logitRows, V]);
  const dlogits = rand(dtype, [blockRows, V], 1e-4);
  const dinp = Tensor.zeros(dtype, [blockRows, C]);
  const dwte = Tensor.zeros('f32', [V, C]);
  const made: Tensor[] = [w, logits, dlogits, dinp, dwte];
  const view = (t: Tensor, offset: number, rows: number, cols: number) => {
    const v = t.view(offset, [rows, cols]);
    made.push(v);
    return v;
  };
  const steps: (() => void)[] = [];
  for (let b0 = 0; b0 < N; b0 += blockRows) {
    const bRows = Math.min(blockRows, N - b0);
    for (let r0 = b0; r0 < b0 + bRows; r0 += logitRows) {
      const rows = Math.min(logitRows, b0 + bRows - r0);
      const a = view(inp, r0 * C, rows, C);
      const c = view(logits, 0, rows, V);
      steps.push(() => ops.gemm(c, a, w, false, true, 1, 0));
    }
    const d = view(dlogits, 0, bRows, V);
    const di = view(dinp, 0, bRows, C);
    const x = view(inp, b0 * C, bRows, C);
    steps.push(() => ops.gemm(di, d, w, false, false, 1, 0));
    steps.push(() => ops.gemm(dwte, d, x, true, false, 1, 1));
  }
  return {
    run: () => steps.forEach((f) => f()),
    plan: `logits ${logitRows} rows, dinp/dwte ${blockRows} rows`,
    dispose: () => made.forEach((t) => t.dispose()),
  };
}

/** Medians of a and b called alternately (a, b, b, a, ...), and the median of their paired differences. */
function timeAlternating(
  a: () => void,
  b: () => void,
  minMs = quick ? 300 : 1200,
  maxPairs = 25,
): { a: number; b: number; diff: number } {
  a();
  b();
  const ta: number[] = [], tb: number[] = [];
  const t0 = performance.now();
  const once = (f: () => void, into: number[]) => {
    const s = performance.now();
    f();
    into.push(performance.now() - s);
  };
  while (ta.length < 3 || (performance.now() - t0 < minMs && ta.length < maxPairs)) {
    if (ta.length % 2) {
      once(b, tb);
      once(a, ta);
    } else {
      once(a, ta);
      once(b, tb);
    }
  }
  const med = (x: number[]) => [...x].sort((p, q) => p - q)[Math.floor(x.length / 2)];
  return { a: med(ta), b: med(tb), diff: med(ta.map((v, i) => v - tb[i])) };
}

function benchCrossEntropy(dtype: DType, N: number, C: number, V: number, vocab: number): void {
  const inp = rand(dtype, [N, C]);
  const wte = rand(dtype, [V, C], 0.05);
  const losses = Tensor.zeros('f32', [N]);
  const dinp = Tensor.zeros(dtype, [N, C]);
  const dwte = Tensor.zeros('f32', [V, C]);
  const targets = Tensor.from(Int32Array.from({ length: N }, () => Math.floor(Math.random() * vocab)));
  const op = (v: number) => () =>
    void ops.crossEntropyForwardBackward(losses, dinp, dwte, inp, wte, targets, v, -100, 1 / N);
  const ms = time(op(vocab));
  const flops = 6 * N * C * V; // counted over the padded vocabulary V, as since this row began
  const shape = `${N}x${C}x${V}`;
  record({ name: 'lm head + cross-entropy f+b', dtype, shape, ms, gflops: flops / ms / 1e6 });
  // The op split in two: its GEMMs alone, and the rest (softmax passes, dlogits stores, scratch). The split
  // runs the op at a vocabulary of a multiple of 64 (vocab rounded up) so that the gemm op can run its very
  // products; op and GEMMs alternate call by call and the rest is the median of their paired differences.
  const vocab64 = Math.min(V, Math.ceil(vocab / 64) * 64);
  const gemms = lmHeadGemms(dtype, N, C, vocab64, wte, inp);
  const split = timeAlternating(op(vocab64), gemms.run);
  gemms.dispose();
  const splitShape = `${N}x${C}x${vocab64}`;
  const splitFlops = 6 * N * C * vocab64;
  const splitRow = (name: string, ms: number) => record({ name, dtype, shape: splitShape, ms, gflops: splitFlops / ms / 1e6 });
  splitRow('lm head f+b (split run)', split.a);
  splitRow('lm head f+b: GEMMs alone', split.b);
  const restMs = split.diff;
  const square = peak[dtype];
  // With the GEMMs at the square rate R, the op would take flops / R + rest: a projection, not a measurement
  // (the rest is this machine's; where the matrix unit is faster, the same rest weighs more).
  const projected = square && restMs >= 0 ? splitFlops / (splitFlops / (square * 1e6) + restMs) / 1e6 : undefined;
  const projection =
    projected && square
      ? `; projection with the GEMMs at the square rate: ${projected.toFixed(1)} GFLOP/s = ` +
        `${((100 * projected) / square).toFixed(1)}% of peak`
      : restMs < 0
        ? ' (noise: no projection)'
        : '';
  const restShare = ((100 * restMs) / split.a).toFixed(1);
  log(`  ${dtype} plan: ${gemms.plan}; rest (not GEMM) ${restMs.toFixed(3)} ms = ${restShare}% of the op${projection}`);
  lmHeadBreakdown.push({
    dtype,
    shape: splitShape,
    plan: gemms.plan,
    opMs: split.a,
    gemmMs: split.b,
    restMs,
    squareGflops: square,
    projectedGflops: projected,
    projectedShare: projected && square ? projected / square : undefined,
  });
  for (const x of [inp, wte, losses, dinp, dwte, targets]) x.dispose();
}

/** The LM-head split of each dtype: total, its GEMMs alone, the rest, and the projection at the square rate. */
const lmHeadBreakdown: Record<string, unknown>[] = [];

function benchAdamW(P: number): void {
  const p = rand('f32', [P]);
  const g = rand('f32', [P]);
  const m = Tensor.zeros('f32', [P]);
  const v = Tensor.zeros('f32', [P]);
  const pb = Tensor.zeros('bf16', [P]);
  const segs = new Int32Array([0, P, 1]);
  let step = 1;
  const ms = time(() => ops.adamwUpdate(p, g, m, v, pb, segs, 1e-4, 0.9, 0.95, 1e-8, 0.1, step++, 1));
  // reads p, g, m, v; writes p, m, v (f32) and the bf16 copy
  elementwise('adamw (+bf16 copy)', 'f32', `${P}`, ms, P, P * (4 * 7 + 2));
  const msF32 = time(() => ops.adamwUpdate(p, g, m, v, null, segs, 1e-4, 0.9, 0.95, 1e-8, 0.1, step++, 1));
  elementwise('adamw (f32 only)', 'f32', `${P}`, msF32, P, P * 4 * 7);
  for (const x of [p, g, m, v, pb]) x.dispose();
}

function main(): void {
  const info = backendInfo();
  log(`pajama-train kernel benchmark: ${info.cpu.brand}, ${info.threads} threads, ISA ${info.cpu.activeIsa}, ${info.gemm.description}, attention engine ${info.attention.engine}`);
  const sq = quick ? 2048 : 3072;
  const dtypes = ['bf16', 'f32'] as DType[];
  if (runs('gemm') || runs('attention') || runs('lmhead')) {
    for (const dtype of dtypes) {
      const r = benchGemm('gemm peak (square)', dtype, sq, sq, sq);
      peak[dtype] = r.gflops;
      record(r);
    }
  }
  if (runs('gemm')) {
    for (const dtype of dtypes) {
      record(benchGemm('gemm qkv', dtype, 4096, 512, 1536));
      record(benchGemm('gemm mlp down', dtype, 4096, 2048, 512));
      record(benchGemm('gemm lm head', dtype, 4096, 512, 50432));
    }
  }
  if (runs('attention')) {
    for (const engine of ['tiles', 'gemm'] as const) for (const dtype of dtypes) benchAttention(engine, dtype, 8, 8, 512, 64);
    for (const dtype of dtypes) benchAttentionDecode(dtype, 1, 8, 511, 64);
  }
  if (runs('layernorm')) for (const dtype of dtypes) benchLayerNorm(dtype, 4096, 512);
  if (runs('gelu')) for (const dtype of dtypes) benchGelu(dtype, 4096 * 2048);
  if (runs('residual')) for (const dtype of dtypes) benchResidual(dtype, 4096 * 512);
  if (runs('cast')) {
    benchCast('f32', 'bf16', 4096 * 2048);
    benchCast('bf16', 'f32', 4096 * 2048);
  }
  if (runs('lmhead')) for (const dtype of dtypes) benchCrossEntropy(dtype, quick ? 512 : 2048, 512, 50432, 50277);
  if (runs('adamw')) benchAdamW(quick ? 4_000_000 : 16_000_000);

  const report = {
    benchmark: 'kernels',
    date: new Date().toISOString(),
    machine: { cpu: info.cpu.brand, cores: os.cpus().length, threads: info.threads, isa: info.cpu.activeIsa, features: info.cpu.features },
    gemm: info.gemm.description,
    attentionEngine: info.attention.engine,
    quick,
    peakGflops: peak,
    results,
    lmHeadBreakdown,
  };
  writeReport(report);
}

main();
