// Kernel microbenchmarks: GEMM at the transformer shapes, attention, LayerNorm, cross-entropy and AdamW.
// Each result is reported against a peak measured in the same run (a large square GEMM of that dtype), so
// ratios stay meaningful on a noisy machine.
//
//   npm run bench:kernels               table
//   npm run bench:kernels -- --json     JSON on stdout (and the table on stderr)
//   options: --quick (smaller repeat counts), --threads N, --out FILE (also write the JSON there)
import * as os from 'node:os';
import { Tensor, backendInfo, ops, setThreads, type DType } from '../lib/index';
import { alibiSlopes } from '../lib/model/alibi';
import { benchCli } from './cli';

interface Result {
  name: string;
  dtype: DType;
  shape: string;
  ms: number; // median wall time of one call
  gflops?: number;
  gbps?: number;
  peakShare?: number; // gflops / the same-dtype square GEMM rate of this run
}

const { flag, opt, log, writeReport } = benchCli('bench:kernels', { flags: ['--quick'], options: ['--threads'] });
const quick = flag('--quick');
if (opt('--threads')) setThreads(Number(opt('--threads')));

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
  const share = r.peakShare !== undefined ? `${(100 * r.peakShare).toFixed(1)}% of peak` : '';
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

function benchAttention(dtype: DType, B: number, H: number, T: number, D: number): void {
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
  record({ name: 'attention forward', dtype, shape, ms: fwd, gflops: fwdFlops / fwd / 1e6 });
  const bwd = time(() => ops.attentionBackward(dqkv, dout, qkv, out, lse, slopes, H));
  record({ name: 'attention backward', dtype, shape, ms: bwd, gflops: (2.5 * fwdFlops) / bwd / 1e6 });
  record({ name: 'attention fwd+bwd', dtype, shape, ms: fwd + bwd, gflops: (3.5 * fwdFlops) / (fwd + bwd) / 1e6 });
  for (const x of [qkv, out, lse, dout, dqkv, slopes]) x.dispose();
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
  record({ name: 'layernorm forward', dtype, shape, ms: fwd, gbps: (2 * N * C * el) / fwd / 1e6 });
  const bwd = time(() => ops.layerNormBackward(dinp, dw, dout, inp, w, mean, rstd));
  record({ name: 'layernorm backward', dtype, shape, ms: bwd, gbps: (3 * N * C * el) / bwd / 1e6 });
  for (const x of [inp, w, out, mean, rstd, dout, dinp, dw]) x.dispose();
}

function benchGelu(dtype: DType, n: number): void {
  const x = rand(dtype, [n], 3);
  const y = Tensor.zeros(dtype, [n]);
  const dx = Tensor.zeros(dtype, [n]);
  const el = dtype === 'bf16' ? 2 : 4;
  const fwd = time(() => ops.geluForward(y, x));
  record({ name: 'gelu forward', dtype, shape: `${n}`, ms: fwd, gbps: (2 * n * el) / fwd / 1e6 });
  const bwd = time(() => ops.geluBackward(dx, x, y));
  record({ name: 'gelu backward', dtype, shape: `${n}`, ms: bwd, gbps: (3 * n * el) / bwd / 1e6 });
  for (const t of [x, y, dx]) t.dispose();
}

function benchCrossEntropy(dtype: DType, N: number, C: number, V: number, vocab: number): void {
  const inp = rand(dtype, [N, C]);
  const wte = rand(dtype, [V, C], 0.05);
  const losses = Tensor.zeros('f32', [N]);
  const dinp = Tensor.zeros(dtype, [N, C]);
  const dwte = Tensor.zeros('f32', [V, C]);
  const targets = Tensor.from(Int32Array.from({ length: N }, () => Math.floor(Math.random() * vocab)));
  const ms = time(() => ops.crossEntropyForwardBackward(losses, dinp, dwte, inp, wte, targets, vocab, -100, 1 / N));
  record({ name: 'lm head + cross-entropy f+b', dtype, shape: `${N}x${C}x${V}`, ms, gflops: (6 * N * C * V) / ms / 1e6 });
  for (const x of [inp, wte, losses, dinp, dwte, targets]) x.dispose();
}

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
  record({ name: 'adamw (+bf16 copy)', dtype: 'f32', shape: `${P}`, ms, gbps: (P * (4 * 7 + 2)) / ms / 1e6 });
  for (const x of [p, g, m, v, pb]) x.dispose();
}

function main(): void {
  const info = backendInfo();
  log(`pajama-train kernel benchmark: ${info.cpu.brand}, ${info.threads} threads, ISA ${info.cpu.activeIsa}, ${info.gemm.description}`);
  const sq = quick ? 2048 : 3072;
  for (const dtype of ['bf16', 'f32'] as DType[]) {
    const r = benchGemm('gemm peak (square)', dtype, sq, sq, sq);
    peak[dtype] = r.gflops;
    record(r);
  }
  for (const dtype of ['bf16', 'f32'] as DType[]) {
    record(benchGemm('gemm qkv', dtype, 4096, 512, 1536));
    record(benchGemm('gemm mlp down', dtype, 4096, 2048, 512));
    record(benchGemm('gemm lm head', dtype, 4096, 512, 50432));
  }
  for (const dtype of ['bf16', 'f32'] as DType[]) benchAttention(dtype, 8, 8, 512, 64);
  for (const dtype of ['bf16', 'f32'] as DType[]) benchLayerNorm(dtype, 4096, 512);
  for (const dtype of ['bf16', 'f32'] as DType[]) benchGelu(dtype, 4096 * 2048);
  for (const dtype of ['bf16', 'f32'] as DType[]) benchCrossEntropy(dtype, quick ? 512 : 2048, 512, 50432, 50277);
  benchAdamW(quick ? 4_000_000 : 16_000_000);

  const report = {
    benchmark: 'kernels',
    date: new Date().toISOString(),
    machine: { cpu: info.cpu.brand, cores: os.cpus().length, threads: info.threads, isa: info.cpu.activeIsa },
    gemm: info.gemm.description,
    quick,
    peakGflops: peak,
    results,
  };
  writeReport(report);
}

main();
