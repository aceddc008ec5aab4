// GPU benchmark (CUDA): flash attention with ALiBi, the GEMMs of mpt-1b, and full mpt-1b training steps.
//
//   attention   forward, backward and forward+backward at B4 H16 T2048 D128, causal, bf16 (and D64 with 32
//               heads), FLOPs counted as benchmarks/kernels.ts counts them: forward 4·B·H·D·T(T+1)/2 (QK^T and
//               PV over the causal lower triangle), backward 2.5x that, forward+backward 3.5x.
//   gemm        a square 8192 bf16 product (the measured peak every MFU below is also counted against), then
//               mpt-1b's products at N = micro-batch x 2048 tokens: Wqkv, out_proj, up_proj, down_proj forward
//               (2·N·C·OC) and backward (dinp and dweight, 4·N·C·OC), and the fused LM head + cross-entropy
//               (6·N·C·V over the real vocabulary).
//   train       full optimizer steps of mpt-1b (T 2048, bf16 autocast, micro-batch 8 by default), activation
//               checkpointing off and on every block: zero the gradients, forwardBackward, clipGradNorm,
//               AdamW, synchronize. tokens/s and MFU = tokens/s x flopsPerToken (llm-foundry's count) over
//               the square GEMM rate measured here, and over the device's datasheet bf16 dense peak.
//
// Every time is wall time around a loop of calls closed by synchronize() (ops on a GPU settle once queued),
// the median of several rounds. Inputs are random (a tiled pool of seeded values: zeros run faster than data).
//
//   npm run bench:gpu                       table
//   npm run bench:gpu -- --json             JSON on stdout (and the table on stderr)
//   options: --quick (fewer rounds and steps), --only attention,gemm,train, --micro-batch N (default 8),
//            --steps N (timed training steps, default 4), --warmup N (default 2), --out FILE
// Without a usable GPU it exits 2 with the reason.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  AdamW,
  MptModel,
  Tensor,
  alibiSlopes,
  backendInfo,
  clipGradNormAsync,
  cudaMemoryStats,
  emptyCudaCache,
  ops,
  synchronize,
  type DType,
  type DeviceSpec,
  type MptModelOptions,
} from '../lib/index';
import { flopsPerToken, mptConfig, parameterCount, type MptConfig } from '../lib/model/config';
import { Xoshiro128, seededNormal } from '../lib/core/rng';
import { benchCli, type BenchCli } from './cli';
import { cudaUnavailable } from './gpu-checks';

const DEVICE: DeviceSpec = 'cuda';
const PRESET = 'mpt-1b';
const SEQ_LEN = 2048;

const cli: BenchCli = benchCli('bench:gpu', {
  flags: ['--quick'],
  options: ['--only', '--micro-batch', '--steps', '--warmup'],
});
const { flag, opt, intOpt, log, writeReport, usageError } = cli;
const quick = flag('--quick');
const microBatch = intOpt('--micro-batch', 8, 1);
const timedSteps = intOpt('--steps', quick ? 2 : 4, 1);
const warmupSteps = intOpt('--warmup', 2, 1);
const PARTS = ['attention', 'gemm', 'train'] as const;
type Part = (typeof PARTS)[number];
const only = opt('--only')?.split(',');
for (const p of only ?? []) if (!(PARTS as readonly string[]).includes(p)) usageError(`--only: unknown part '${p}' (parts: ${PARTS.join(', ')})`);
const runs = (p: Part) => !only || only.includes(p);

/**
 * Datasheet bf16 tensor-core peaks without sparsity, TFLOP/s, by the device name CUDA reports (first match).
 * NVL and other variants not listed give null rather than a guess.
 */
const DATASHEET_BF16_TFLOPS: [pattern: RegExp, tflops: number | null, what: string][] = [
  [/H100.*PCIe/i, 756, 'H100 PCIe'],
  [/NVL/i, null, 'NVL variant (not in the table)'],
  [/H100/i, 989, 'H100 SXM'],
  [/H200/i, 989, 'H200 SXM'],
  [/A100/i, 312, 'A100'],
];

function datasheetBf16Tflops(deviceName: string): { tflops: number | null; matched: string | null } {
  for (const [re, tflops, what] of DATASHEET_BF16_TFLOPS) if (re.test(deviceName)) return { tflops, matched: what };
  return { tflops: null, matched: null };
}

// ---- data and timing ----

const POOL = 1_048_583; // a prime count of seeded values, tiled: rows of any width do not repeat in step
let pool: Float32Array | null = null;

/** A tensor on the GPU holding the seeded pool tiled, times `scale`. */
function randomTensor(dtype: DType, shape: number[], scale = 1): Tensor {
  if (!pool) {
    const rand = seededNormal(11);
    pool = Float32Array.from({ length: POOL }, () => rand());
  }
  const n = shape.reduce((a, b) => a * b, 1);
  const scaled = pool.map((v) => v * scale);
  const data = new Float32Array(n);
  for (let o = 0; o < n; o += POOL) data.set(scaled.subarray(0, Math.min(POOL, n - o)), o);
  return Tensor.from(data, shape, dtype, DEVICE);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/**
 * Milliseconds per call of `fn` (which queues GPU work): after a warm-up call, rounds of `reps` calls between
 * two synchronize() calls, reps chosen so a round lasts about `roundMs`; the median and the best round.
 */
function timeGpu(fn: () => void, roundMs = quick ? 60 : 200, rounds = quick ? 3 : 7): { ms: number; msMin: number } {
  fn();
  synchronize(DEVICE);
  let t0 = performance.now();
  fn();
  synchronize(DEVICE);
  const once = Math.max(performance.now() - t0, 1e-3);
  const reps = Math.max(1, Math.min(1000, Math.round(roundMs / once)));
  const per: number[] = [];
  for (let r = 0; r < rounds; r++) {
    synchronize(DEVICE);
    t0 = performance.now();
    for (let i = 0; i < reps; i++) fn();
    synchronize(DEVICE);
    per.push((performance.now() - t0) / reps);
  }
  return { ms: median(per), msMin: Math.min(...per) };
}

interface KernelRow {
  name: string;
  shape: string;
  ms: number;
  msMin: number;
  tflops: number;
  peakShare?: number; // of the square GEMM measured here
  datasheetShare?: number; // of the device's datasheet bf16 peak
}

const rows: KernelRow[] = [];
const train: TrainResult[] = [];
const skipped: Record<string, string> = {};
let peakTflops: number | null = null;
let datasheet: number | null = null;

function record(name: string, shape: string, flops: number, t: { ms: number; msMin: number }): KernelRow {
  const tflops = flops / t.ms / 1e9;
  const row: KernelRow = { name, shape, ms: t.ms, msMin: t.msMin, tflops };
  if (peakTflops) row.peakShare = tflops / peakTflops;
  if (datasheet) row.datasheetShare = tflops / datasheet;
  rows.push(row);
  const shares = [row.peakShare !== undefined ? `${(100 * row.peakShare).toFixed(1)}% of measured` : '', row.datasheetShare !== undefined ? `${(100 * row.datasheetShare).toFixed(1)}% of datasheet` : '']
    .filter(Boolean)
    .join(', ');
  log(`${name.padEnd(38)} ${shape.padEnd(24)} ${t.ms.toFixed(3).padStart(9)} ms ${tflops.toFixed(1).padStart(8)} TFLOP/s  ${shares}`);
  return row;
}

// ---- attention ----

function benchAttention(B: number, H: number, T: number, D: number): void {
  const C = H * D;
  const qkv = randomTensor('bf16', [B, T, 3 * C]);
  const dout = randomTensor('bf16', [B, T, C]);
  const out = Tensor.zeros('bf16', [B, T, C], DEVICE);
  const lse = Tensor.zeros('f32', [B, H, T], DEVICE);
  const dqkv = Tensor.zeros('bf16', [B, T, 3 * C], DEVICE);
  const slopes = Tensor.from(alibiSlopes(H), [H], 'f32', DEVICE);
  try {
    const fwdFlops = (4 * B * H * D * T * (T + 1)) / 2;
    const shape = `B${B} H${H} T${T} D${D}`;
    record('attention forward', shape, fwdFlops, timeGpu(() => ops.attentionForward(out, lse, qkv, slopes, H)));
    record('attention backward', shape, 2.5 * fwdFlops, timeGpu(() => ops.attentionBackward(dqkv, dout, qkv, out, lse, slopes, H)));
    record(
      'attention forward+backward',
      shape,
      3.5 * fwdFlops,
      timeGpu(() => {
        ops.attentionForward(out, lse, qkv, slopes, H);
        ops.attentionBackward(dqkv, dout, qkv, out, lse, slopes, H);
      }),
    );
  } finally {
    for (const x of [qkv, dout, out, lse, dqkv, slopes]) x.dispose();
  }
}

// ---- GEMMs ----

/** out (M, N) = inp (M, K) @ weight (N, K)^T, the matmulForward layout. */
function benchMatmul(name: string, M: number, K: number, N: number, backward: boolean): KernelRow {
  const inp = randomTensor('bf16', [M, K]);
  const w = randomTensor('bf16', [N, K], 1 / Math.sqrt(K));
  const out = Tensor.zeros('bf16', [M, N], DEVICE);
  const made = [inp, w, out];
  try {
    if (!backward) return record(`${name} forward`, `${M}x${K}x${N}`, 2 * M * N * K, timeGpu(() => ops.matmulForward(out, inp, w)));
    const dinp = Tensor.zeros('bf16', [M, K], DEVICE);
    const dw = Tensor.zeros('f32', [N, K], DEVICE);
    made.push(dinp, dw);
    return record(`${name} backward (dinp+dweight)`, `${M}x${K}x${N}`, 4 * M * N * K, timeGpu(() => ops.matmulBackward(dinp, dw, out, inp, w)));
  } finally {
    for (const x of made) x.dispose();
  }
}

function benchLmHead(cfg: MptConfig, N: number): void {
  const C = cfg.dModel;
  const V = cfg.realVocabSize;
  const inp = randomTensor('bf16', [N, C]);
  const wte = randomTensor('bf16', [cfg.vocabSize, C], 0.02);
  const losses = Tensor.zeros('f32', [N], DEVICE);
  const dinp = Tensor.zeros('bf16', [N, C], DEVICE);
  const dwte = Tensor.zeros('f32', [cfg.vocabSize, C], DEVICE);
  const rng = Xoshiro128.fromSeed(5);
  const targets = Tensor.from(Int32Array.from({ length: N }, () => rng.below(V)), [N], 'i32', DEVICE);
  try {
    // it returns the loss, so every call waits for the GPU: the timing is the same either way
    record('lm head + cross-entropy f+b', `${N}x${C}x${V}`, 6 * N * C * V, timeGpu(() => void ops.crossEntropyForwardBackward(losses, dinp, dwte, inp, wte, targets, V, -100, 1 / N)));
  } finally {
    for (const x of [inp, wte, losses, dinp, dwte, targets]) x.dispose();
  }
}

// ---- training steps ----

/**
 * mpt-1b with a fast initialisation: MPT's init (MptModel.initializeWith), each weight matrix tiling a pool of
 * 2^20 + 7 seeded normals at its scale. A step's work does not depend on the values, and
 * MptModel.initialize draws its 1.3 billion normals one by one in JavaScript, which takes minutes.
 */
class BenchMpt extends MptModel {
  override initialize(seed: number): void {
    const rand = seededNormal(seed);
    const n0 = 2 ** 20 + 7;
    const base = Float32Array.from({ length: n0 }, () => rand());
    this.initializeWith((out, std) => {
      const scaled = base.map((v) => v * std);
      for (let o = 0; o < out.length; o += n0) out.set(scaled.subarray(0, Math.min(n0, out.length - o)), o);
    });
  }
}

interface TrainResult {
  config: string;
  checkpointEvery: number;
  microBatch: number;
  seqLen: number;
  tokensPerStep: number;
  stepMs: number; // median of the timed steps
  stepMsAll: number[];
  tokensPerSec: number;
  flopsPerToken: number;
  achievedTflops: number;
  mfuMeasured: number | null; // against the square GEMM of this run
  mfuDatasheet: number | null; // against the datasheet bf16 peak
  phasesMs: { forwardBackward: number; clip: number; adamw: number };
  losses: number[];
  allocatedBytes: number; // the caching allocator's live bytes after the steps
  peakBytes: number; // the most ever allocated in this process so far
  error?: string;
}

async function benchTrain(cfg: MptConfig, checkpointEvery: number): Promise<TrainResult> {
  const name = `bf16${checkpointEvery ? '-ckpt' : ''}`;
  const tokens = microBatch * SEQ_LEN;
  const fpt = flopsPerToken(cfg, SEQ_LEN);
  const base = { config: name, checkpointEvery, microBatch, seqLen: SEQ_LEN, tokensPerStep: tokens, flopsPerToken: fpt };
  const t0 = performance.now();
  const options: MptModelOptions = { precision: 'bf16', checkpointEvery, seed: 0, device: DEVICE };
  let model: BenchMpt | null = null;
  let optimizer: AdamW | null = null;
  try {
    model = new BenchMpt(cfg, options);
    optimizer = new AdamW(model.params, model.grads, { computeCopy: model.computeParams ?? false });
    log(`  ${name}: model and optimizer ready in ${((performance.now() - t0) / 1e3).toFixed(1)} s`);
    const rng = Xoshiro128.fromSeed(1);
    const batches = Array.from({ length: 2 }, () => {
      const ids = Int32Array.from({ length: tokens }, () => rng.below(cfg.realVocabSize));
      const targets = Int32Array.from({ length: tokens }, (_, i) => (i + 1 < tokens ? ids[i + 1] : rng.below(cfg.realVocabSize)));
      return { ids, targets };
    });
    const steps: { step: number; fb: number; clip: number; adamw: number }[] = [];
    const losses: number[] = [];
    for (let i = 0; i < warmupSteps + timedSteps; i++) {
      const b = batches[i % batches.length];
      synchronize(DEVICE);
      const s0 = performance.now();
      model.grads.zero();
      const r = await model.forwardBackward(b.ids, b.targets, microBatch, SEQ_LEN, 1 / tokens);
      const s1 = performance.now();
      const clip = await clipGradNormAsync(model.grads, 1.0);
      const s2 = performance.now();
      if (clip.nonFinite > 0) throw new Error(`${name}: non-finite gradients at step ${i + 1}`);
      await optimizer.stepAsync({ lr: 2e-4, weightDecay: 0.1, gradScale: clip.scale });
      synchronize(DEVICE);
      const s3 = performance.now();
      losses.push(r.lossSum / r.tokens);
      log(`  ${name} step ${i + 1}/${warmupSteps + timedSteps}${i < warmupSteps ? ' (warm-up)' : ''}: ${(s3 - s0).toFixed(0)} ms, loss ${losses[i].toFixed(4)}`);
      if (i >= warmupSteps) steps.push({ step: s3 - s0, fb: s1 - s0, clip: s2 - s1, adamw: s3 - s2 });
    }
    const stepMs = median(steps.map((s) => s.step));
    const tokensPerSec = tokens / (stepMs / 1e3);
    const achieved = (tokensPerSec * fpt) / 1e12;
    const stats = cudaMemoryStats(DEVICE);
    return {
      ...base,
      stepMs,
      stepMsAll: steps.map((s) => s.step),
      tokensPerSec,
      achievedTflops: achieved,
      mfuMeasured: peakTflops ? achieved / peakTflops : null,
      mfuDatasheet: datasheet ? achieved / datasheet : null,
      phasesMs: { forwardBackward: median(steps.map((s) => s.fb)), clip: median(steps.map((s) => s.clip)), adamw: median(steps.map((s) => s.adamw)) },
      losses,
      allocatedBytes: stats.allocated,
      peakBytes: stats.peak,
    };
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    log(`  ${name}: FAILED: ${message}`);
    return { ...base, stepMs: NaN, stepMsAll: [], tokensPerSec: NaN, achievedTflops: NaN, mfuMeasured: null, mfuDatasheet: null, phasesMs: { forwardBackward: NaN, clip: NaN, adamw: NaN }, losses: [], allocatedBytes: NaN, peakBytes: NaN, error: message };
  } finally {
    optimizer?.dispose();
    model?.dispose();
    emptyCudaCache(DEVICE);
  }
}

// ---- driver ----

async function main(): Promise<void> {
  const why = cudaUnavailable();
  if (why) {
    process.stderr.write(`bench:gpu: needs an NVIDIA GPU with the CUDA backend; CUDA is not available here: ${why}\n`);
    process.exit(2);
  }
  const info = backendInfo();
  const dev = info.cuda.devices[0];
  const sheet = datasheetBf16Tflops(dev.name);
  datasheet = sheet.tflops;
  const cfg = mptConfig(PRESET);
  log(
    `pajama-train GPU benchmark: ${dev.name} (sm ${dev.computeCapability}, ${(dev.totalMemory / 2 ** 30).toFixed(0)} GiB), ` +
      `datasheet bf16 ${datasheet ?? 'unknown'} TFLOP/s${sheet.matched ? ` (${sheet.matched})` : ''}, cuBLASLt ${info.cuda.cublas ? 'yes' : `no (${info.cuda.cublasReason})`}`,
  );
  const needsCublas = (part: Part): boolean => {
    if (info.cuda.cublas) return true;
    skipped[part] = `this build has no cuBLASLt: ${info.cuda.cublasReason ?? 'unknown reason'}`;
    log(`${part}: skipped (${skipped[part]})`);
    return false;
  };
  if ((runs('gemm') || runs('train')) && info.cuda.cublas) {
    peakTflops = record('gemm peak (square)', '8192x8192x8192', 2 * 8192 ** 3, (() => {
      const a = randomTensor('bf16', [8192, 8192]);
      const b = randomTensor('bf16', [8192, 8192], 1 / 90);
      const c = Tensor.zeros('bf16', [8192, 8192], DEVICE);
      try {
        return timeGpu(() => ops.matmulForward(c, a, b));
      } finally {
        for (const x of [a, b, c]) x.dispose();
      }
    })()).tflops;
    rows[rows.length - 1].peakShare = 1;
  }
  if (runs('attention')) {
    benchAttention(4, 16, 2048, 128);
    benchAttention(4, 32, 2048, 64);
    writePartial();
  }
  if (runs('gemm') && needsCublas('gemm')) {
    const N = microBatch * SEQ_LEN;
    const C = cfg.dModel;
    const F = cfg.expansionRatio * C;
    const shapes: [string, number, number][] = [
      ['attn Wqkv', C, 3 * C],
      ['attn out_proj', C, C],
      ['ffn up_proj', C, F],
      ['ffn down_proj', F, C],
    ];
    for (const [name, inC, outC] of shapes) {
      benchMatmul(name, N, inC, outC, false);
      benchMatmul(name, N, inC, outC, true);
    }
    benchLmHead(cfg, N);
    writePartial();
  }
  if (runs('train') && needsCublas('train')) {
    log(
      `${PRESET}: ${(parameterCount(cfg) / 1e6).toFixed(0)}M parameters, ${(flopsPerToken(cfg, SEQ_LEN) / 1e9).toFixed(2)} GFLOP/token, ` +
        `micro-batch ${microBatch} x ${SEQ_LEN}, ${warmupSteps} warm-up + median of ${timedSteps} steps`,
    );
    for (const ck of [0, 1]) {
      train.push(await benchTrain(cfg, ck));
      writePartial();
    }
    log('');
    log(`${'config'.padEnd(10)} ${'step ms'.padStart(8)} ${'tokens/s'.padStart(9)} ${'TFLOP/s'.padStart(8)} ${'MFU meas'.padStart(9)} ${'MFU sheet'.padStart(9)} ${'fwd+bwd'.padStart(8)} ${'clip'.padStart(6)} ${'adamw'.padStart(6)} ${'GiB'.padStart(6)}`);
    const pct = (x: number | null) => (x === null ? 'n/a' : `${(100 * x).toFixed(1)}%`);
    for (const r of train) {
      if (r.error) {
        log(`${r.config.padEnd(10)} failed: ${r.error}`);
        continue;
      }
      log(
        `${r.config.padEnd(10)} ${r.stepMs.toFixed(0).padStart(8)} ${r.tokensPerSec.toFixed(0).padStart(9)} ${r.achievedTflops.toFixed(1).padStart(8)} ` +
          `${pct(r.mfuMeasured).padStart(9)} ${pct(r.mfuDatasheet).padStart(9)} ${r.phasesMs.forwardBackward.toFixed(0).padStart(8)} ` +
          `${r.phasesMs.clip.toFixed(1).padStart(6)} ${r.phasesMs.adamw.toFixed(1).padStart(6)} ${(r.allocatedBytes / 2 ** 30).toFixed(1).padStart(6)}`,
      );
    }
  }
  writeReport(report(true));
  if (train.some((r) => r.error)) process.exitCode = 1;
}

/** Everything measured so far; written to --out after each part too, in case a later part hangs. */
function report(complete: boolean) {
  const info = backendInfo();
  const dev = info.cuda.devices[0];
  const sheet = datasheetBf16Tflops(dev.name);
  return {
    benchmark: 'gpu',
    date: new Date().toISOString(),
    machine: {
      gpu: dev.name,
      computeCapability: dev.computeCapability,
      gpuMemory: dev.totalMemory,
      cudaRuntime: info.cuda.runtimeVersion,
      cudaDriver: info.cuda.driverVersion,
      cublas: info.cuda.cublas,
      cpu: info.cpu.brand,
      cores: os.cpus().length,
    },
    complete,
    quick,
    peak: { measuredGemmTflops: peakTflops, datasheetBf16Tflops: datasheet, datasheetMatched: sheet.matched },
    kernels: rows,
    train: { preset: PRESET, model: mptConfig(PRESET), microBatch, seqLen: SEQ_LEN, warmupSteps, timedSteps, results: train },
    skipped,
  };
}

function writePartial(): void {
  const out = opt('--out');
  if (!out) return;
  fs.mkdirSync(path.dirname(path.resolve(out)), { recursive: true });
  fs.writeFileSync(out, JSON.stringify(report(false), null, 2) + '\n');
}

main().catch((e) => {
  process.stderr.write(`bench:gpu: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
