// Training-step benchmark: full optimizer steps of the `bench-45m` MPT (6 layers, d_model 512, 8 heads,
// seq 512, vocab 50,304) on a micro-batch of 8 x 512 synthetic tokens, one optimizer step per micro-batch:
// zero the gradients, forwardBackward (gradScale 1/tokens), clipGradNorm (1.0), AdamW. Four configurations:
// fp32 and bf16 autocast, each with activation checkpointing off and on (every block).
//
// MFU = tokens/s x flopsPerToken (llm-foundry's count, no recompute) / the peak of a square GEMM of the same
// dtype measured in the same process (measurePeakFlops, best of before and after the steps). Each
// configuration runs in its own child process so its peak RSS is its own.
//
//   npm run bench:train                          table
//   npm run bench:train -- --json                JSON on stdout (and the table on stderr)
//   options: --quick (3 timed steps), --steps N (timed steps, default 5), --warmup N (default 2),
//            --configs fp32,bf16-ckpt (a subset), --threads N, --seed N, --out FILE (also write the JSON),
//            --profile (time every native op call and report where a step goes),
//            --repeat R (run every configuration R times, round-robin, and keep the run of median step
//            time: on a shared machine), --in-process (no child processes; peak RSS is then the whole run's),
//            --torch (after our configurations, the same model, settings and threads in PyTorch,
//            benchmarks/torch_mpt.py, each configuration as often as --repeat says: torch's tokens/s and
//            ours/torch go into the table and the JSON; needs PyTorch and an optimized BLAS:
//            apt-get install -y python3-torch libopenblas0-pthread; PAJAMA_PYTHON picks the interpreter,
//            else python3 on PATH, then /usr/bin/python3)
//   internal: --config NAME runs one configuration in this process (what each child does)
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backendInfo, ops, setThreads, Tensor, type BackendInfo } from '../lib/index';
import { flopsPerToken, mptConfig, parameterCount, type MptConfig } from '../lib/model/config';
import { MptModel, type Precision } from '../lib/model/mpt';
import { AdamW, clipGradNormAsync } from '../lib/optim/index';
import { measurePeakFlops } from '../lib/core/backend';
import { Xoshiro128 } from '../lib/core/rng';
import { benchCli, type BenchCli } from './cli';

const PRESET = 'bench-45m';
const MICRO_BATCH = 8;
const SEQ_LEN = 512;
const LR = 3e-4;
const WEIGHT_DECAY = 0.1;
const MAX_NORM = 1.0;

interface BenchConfig {
  name: string;
  precision: Precision;
  checkpointEvery: number;
}

const CONFIGS: BenchConfig[] = [
  { name: 'fp32', precision: 'fp32', checkpointEvery: 0 },
  { name: 'fp32-ckpt', precision: 'fp32', checkpointEvery: 1 },
  { name: 'bf16', precision: 'bf16', checkpointEvery: 0 },
  { name: 'bf16-ckpt', precision: 'bf16', checkpointEvery: 1 },
];

/** Milliseconds of each phase of a step (medians over the timed steps in a result); `step` is the whole. */
interface Phases {
  step: number;
  zeroGrad: number;
  forwardBackward: number;
  clip: number;
  adamw: number;
}

/** One row of the op profile: every call of one op at one shape (or role), per step. */
interface ProfileRow {
  category: string;
  op: string;
  what: string;
  callsPerStep: number;
  msPerStep: number;
  shareOfStep: number;
  gflops?: number;
  gbps?: number;
  peakShare?: number;
}

interface ConfigResult {
  config: string;
  precision: Precision;
  checkpointEvery: number;
  microBatch: number;
  seqLen: number;
  tokensPerStep: number;
  warmupSteps: number;
  timedSteps: number;
  stepMs: number; // median
  stepMsMin: number;
  stepMsAll: number[];
  stepMsRepeats?: number[]; // with --repeat: the median step of every run of this configuration
  tokensPerSec: number;
  flopsPerToken: number;
  peakGflops: number; // the max of the two measurements below
  peakGflopsBefore: number;
  peakGflopsAfter: number;
  achievedGflops: number;
  mfu: number;
  phasesMs: Phases; // medians, each over the timed steps
  lossFirst: number;
  lossLast: number;
  parameterCount: number;
  activationBytes: number;
  stateBytes: number; // params + grads + two moments (+ the bf16 compute copy)
  rssAfterBytes: number;
  maxRssBytes: number; // this process's peak (one configuration when run as a child)
  loadAverage: number[]; // os.loadavg() after the steps: other processes on the machine slow every number
  torch?: TorchResult; // with --torch: the same configuration in PyTorch (benchmarks/torch_mpt.py)
  speedupVsTorch?: number; // with --torch: our tokens/s over torch's
  profile?: {
    stepMs: number; // mean over the timed steps
    opMs: number; // native op calls, from call to resolved Promise
    zeroGradMs: number; // grads.zero(), a synchronous fill outside the ops
    jsOverheadMs: number; // the rest: JavaScript and dispatch between the ops
    rows: ProfileRow[];
    categories: Record<string, number>;
    crossEntropyParts: CrossEntropyPart[];
  };
}

/** What benchmarks/torch_mpt.py reports for one configuration (the fields this benchmark reads; it has more). */
interface TorchResult {
  torchVersion: string;
  python: string;
  threads: number;
  precision: Precision;
  checkpointEvery: number;
  attention: string;
  stepMs: number; // median
  stepMsAll: number[];
  stepMsRepeats?: number[]; // with --repeat: the median step of every torch run of this configuration
  tokensPerSec: number;
  parameterCount: number;
  flopsPerToken: number;
  profiledMatmulFlopsPerToken?: number; // torch.profiler's count of one step's mm/bmm/addmm
  expectedMatmulFlopsPerToken?: number; // what the model's shapes say those products are
  lossFirst: number;
  lossLast: number;
  glibcTunables?: string; // the malloc settings the torch child ran with (TORCH_MALLOC_TUNABLES by default)
  [more: string]: unknown;
}

/** One part of the fused LM head + cross-entropy, timed on its own for the whole micro-batch. */
interface CrossEntropyPart {
  part: string;
  shape: string;
  ms: number;
  gflops?: number;
  peakShare?: number;
}

// Annotated, so that cli.usageError (never returns) narrows types where it is called.
const cli: BenchCli = benchCli('bench:train', {
  flags: ['--quick', '--profile', '--in-process', '--torch'],
  options: ['--steps', '--warmup', '--seed', '--threads', '--configs', '--config', '--repeat'],
});
const { flag, opt, intOpt, log, writeReport } = cli;

const quick = flag('--quick');
const json = flag('--json');
const profile = flag('--profile');
const timedSteps = intOpt('--steps', quick ? 3 : 5, 1);
const warmupSteps = intOpt('--warmup', 2, 0);
const seed = intOpt('--seed', 0, 0);
const repeat = intOpt('--repeat', 1, 1);
const threads = opt('--threads');
if (threads !== undefined) setThreads(intOpt('--threads', 0, 1));

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Synthetic batches: uniform random ids over the real vocabulary, targets the next id of the same stream. */
function syntheticBatches(cfg: MptConfig, count: number): { inputs: Int32Array; targets: Int32Array }[] {
  const rng = Xoshiro128.fromSeed(seed);
  const out = [];
  for (let b = 0; b < count; b++) {
    const inputs = new Int32Array(MICRO_BATCH * SEQ_LEN);
    const targets = new Int32Array(MICRO_BATCH * SEQ_LEN);
    for (let s = 0; s < MICRO_BATCH; s++) {
      let prev = rng.below(cfg.realVocabSize);
      for (let t = 0; t < SEQ_LEN; t++) {
        const next = rng.below(cfg.realVocabSize);
        inputs[s * SEQ_LEN + t] = prev;
        targets[s * SEQ_LEN + t] = next;
        prev = next;
      }
    }
    out.push({ inputs, targets });
  }
  return out;
}

// ---- op profiler: wraps every `ops.*Async` in this process and sums wall time per op and shape ----

interface OpStat {
  category: string;
  op: string;
  what: string;
  calls: number;
  ms: number;
  flops: number; // summed over the calls
  bytes: number;
}

const opStats = new Map<string, OpStat>();
let profiling = false;

function elBytes(t: Tensor): number {
  return t.dtype === 'bf16' ? 2 : 4;
}

/** Category, label, FLOPs and bytes of one op call, from its arguments (see lib/native.ts for the layouts). */
function describe(op: string, a: unknown[], cfg: MptConfig): Omit<OpStat, 'calls' | 'ms'> {
  const T = (i: number) => a[i] as Tensor;
  const C = cfg.dModel;
  const F = cfg.expansionRatio * C;
  const linearName = (inC: number, outC: number): string => {
    if (inC === C && outC === 3 * C) return 'attn Wqkv';
    if (inC === C && outC === C) return 'attn out_proj';
    if (inC === C && outC === F) return 'ffn up_proj';
    if (inC === F && outC === C) return 'ffn down_proj';
    return `${inC}->${outC}`;
  };
  const base = (category: string, what: string, flops: number, bytes: number) => ({ category, op, what, flops, bytes });
  switch (op) {
    case 'matmulForward': {
      const [inp, w] = [T(1), T(2)];
      const N = inp.numel / w.shape[1];
      return base('gemm', `${linearName(w.shape[1], w.shape[0])} fwd ${N}x${w.shape[1]}x${w.shape[0]}`, 2 * N * w.numel, 0);
    }
    case 'matmulBackward': {
      const [dinp, dw, , inp, w] = [a[0] as Tensor | null, a[1] as Tensor | null, T(2), T(3), T(4)];
      const N = inp.numel / w.shape[1];
      const products = (dinp ? 1 : 0) + (dw ? 1 : 0);
      return base('gemm', `${linearName(w.shape[1], w.shape[0])} bwd ${N}x${w.shape[1]}x${w.shape[0]}`, 2 * products * N * w.numel, 0);
    }
    case 'attentionForward':
    case 'attentionBackward': {
      const qkv = T(2); // (B, T, 3C) in both
      const [B, Tq] = qkv.shape;
      const fwd = 2 * B * C * Tq * (Tq + 1); // 4·B·H·D·T(T+1)/2, causal lower triangle
      const fb = op === 'attentionForward' ? 'fwd' : 'bwd';
      return base('attention', `${fb} B${B} T${Tq} H${cfg.nHeads}`, op === 'attentionForward' ? fwd : 2.5 * fwd, 0);
    }
    case 'crossEntropyForwardBackward':
    case 'crossEntropyForward': {
      // the kernel multiplies by the first vocabSize rows of wte only (padded rows take no part)
      const [inp, V] = op === 'crossEntropyForward' ? [T(1), a[4] as number] : [T(3), a[6] as number];
      const N = inp.numel / C;
      const products = op === 'crossEntropyForward' ? 1 : 3;
      return base('lm head + cross-entropy', `${N}x${C}x${V}`, 2 * products * N * C * V, 0);
    }
    case 'layerNormForward':
      return base('layernorm', 'fwd', 0, 2 * T(3).numel * elBytes(T(3)));
    case 'layerNormBackward':
      return base('layernorm', 'bwd', 0, 3 * T(3).numel * elBytes(T(3)));
    case 'geluForward':
      return base('gelu', 'fwd', 0, 2 * T(1).numel * elBytes(T(1)));
    case 'geluBackward':
      return base('gelu', 'bwd', 0, 3 * T(1).numel * elBytes(T(1)));
    case 'residualForward':
      return base('residual', 'add', 0, T(0).numel * (elBytes(T(0)) + elBytes(T(1)) + elBytes(T(2))));
    case 'embeddingForward':
      return base('embedding', 'fwd', 0, 2 * T(0).numel * elBytes(T(0)));
    case 'embeddingBackward': // read dout, read-modify-write the f32 dwte rows
      return base('embedding', 'bwd', 0, T(2).numel * (elBytes(T(2)) + 8));
    case 'adamwUpdate': // reads p, g, m, v; writes p, m, v (f32) and the bf16 copy
      return base('adamw', `${T(0).numel} params`, 0, T(0).numel * (28 + (a[4] ? 2 : 0)));
    case 'sumSquares':
      return base('clip (sumSquares)', `${T(0).numel}`, 0, T(0).numel * elBytes(T(0)));
    default:
      return base('other', op, 0, 0);
  }
}

let profilerInstalled = false;

function installProfiler(cfg: MptConfig): void {
  opStats.clear();
  if (profilerInstalled) return;
  profilerInstalled = true;
  const table = ops as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
  for (const name of Object.keys(table)) {
    if (!name.endsWith('Async')) continue;
    const op = name.slice(0, -'Async'.length);
    const orig = table[name];
    table[name] = async (...a: unknown[]) => {
      if (!profiling) return orig(...a);
      const d = describe(op, a, cfg); // before the call: tensors may be disposed after it
      const t0 = performance.now();
      try {
        return await orig(...a);
      } finally {
        const ms = performance.now() - t0;
        const key = `${d.category}|${d.op}|${d.what}`;
        const s = opStats.get(key);
        if (s) {
          s.calls++;
          s.ms += ms;
          s.flops += d.flops;
          s.bytes += d.bytes;
        } else opStats.set(key, { ...d, calls: 1, ms });
      }
    };
  }
}

function profileReport(
  steps: number,
  stepMsMean: number,
  zeroGradMs: number,
  peakGflops: number,
): Omit<NonNullable<ConfigResult['profile']>, 'crossEntropyParts'> {
  const rows: ProfileRow[] = [];
  const categories: Record<string, number> = {};
  let opMs = 0;
  for (const s of opStats.values()) {
    const ms = s.ms / steps;
    opMs += ms;
    categories[s.category] = (categories[s.category] ?? 0) + ms;
    const r: ProfileRow = {
      category: s.category,
      op: s.op,
      what: s.what,
      callsPerStep: s.calls / steps,
      msPerStep: ms,
      shareOfStep: ms / stepMsMean,
    };
    if (s.flops > 0) {
      r.gflops = s.flops / s.ms / 1e6;
      r.peakShare = r.gflops / peakGflops;
    }
    if (s.bytes > 0) r.gbps = s.bytes / s.ms / 1e6;
    rows.push(r);
  }
  rows.sort((x, y) => y.msPerStep - x.msPerStep);
  const jsOverheadMs = stepMsMean - opMs - zeroGradMs;
  categories['zero grads (fill)'] = zeroGradMs;
  categories['js + dispatch between ops'] = jsOverheadMs;
  return { stepMs: stepMsMean, opMs, zeroGradMs, jsOverheadMs, rows, categories };
}

/**
 * The fused LM head + cross-entropy (native/src/ops/cross_entropy.cc) split into its parts: its three GEMMs
 * run alone through ops.gemm at the kernel's chunk shapes (512 rows; logits f32 at the padded row stride,
 * dlogits in the activation dtype, dwte f32 accumulated), summed over the micro-batch's chunks, next to the
 * whole fused op; what the GEMMs leave is the softmax and loss passes over the (rows, V) logits. Each is the
 * best of a few interleaved rounds.
 */
async function crossEntropyParts(cfg: MptConfig, dtype: 'f32' | 'bf16', peakGflops: number): Promise<CrossEntropyPart[]> {
  const N = MICRO_BATCH * SEQ_LEN;
  const C = cfg.dModel;
  const V = cfg.realVocabSize;
  const Vp = cfg.vocabSize; // = V rounded up to 128 here: the kernel's logits row stride (V rounded up to 64)
  const R = Math.min(512, N); // kMaxChunkRows: (512, V) f32 logits are under the 128 MiB chunk budget
  const chunks = Math.ceil(N / R);
  const mk = (d: 'f32' | 'bf16', shape: number[], value: number) => {
    const t = Tensor.zeros(d, shape);
    t.fill(value);
    return t;
  };
  const inp = mk(dtype, [N, C], 0.5);
  const wte = mk(dtype, [Vp, C], 0.01);
  const losses = Tensor.zeros('f32', [N]);
  const dinp = Tensor.zeros(dtype, [N, C]);
  const dwte = Tensor.zeros('f32', [Vp, C]);
  const targets = Tensor.from(Int32Array.from({ length: N }, (_, i) => (i * 7919) % V));
  const inpChunk = mk(dtype, [R, C], 0.5);
  const logits = Tensor.zeros('f32', [R, Vp]);
  const dlogits = mk(dtype, [R, Vp], 1e-5);
  const dinpChunk = Tensor.zeros(dtype, [R, C]);
  // Rounds that time every part once each, the best of the rounds kept: contention from other processes
  // only ever adds time, and interleaving keeps the parts comparable with each other.
  const rounds = quick ? 2 : 4;
  const part = (name: string, shape: string, ms: number, flops?: number): CrossEntropyPart => {
    const p: CrossEntropyPart = { part: name, shape, ms };
    if (flops) {
      p.gflops = flops / ms / 1e6;
      p.peakShare = p.gflops / peakGflops;
    }
    return p;
  };
  try {
    const runs: (() => Promise<unknown>)[] = [
      () => ops.crossEntropyForwardBackwardAsync(losses, dinp, dwte, inp, wte, targets, V, -100, 1 / N),
      () => ops.crossEntropyForwardAsync(losses, inp, wte, targets, V, -100),
      async () => {
        for (let c = 0; c < chunks; c++) await ops.gemmAsync(logits, inpChunk, wte, false, true, 1, 0);
      },
      async () => {
        for (let c = 0; c < chunks; c++) await ops.gemmAsync(dinpChunk, dlogits, wte, false, false, 1, 0);
      },
      async () => {
        for (let c = 0; c < chunks; c++) await ops.gemmAsync(dwte, dlogits, inpChunk, true, false, 1, 1);
      },
      async () => {
        for (let c = 0; c < chunks; c++) await ops.gemmAsync(dwte, dlogits, inpChunk, true, false, 1, 0);
      },
    ];
    const best = runs.map(() => Infinity);
    for (let r = 0; r <= rounds; r++) {
      for (let k = 0; k < runs.length; k++) {
        const t0 = performance.now();
        await runs[k]();
        if (r > 0) best[k] = Math.min(best[k], performance.now() - t0); // round 0 warms up
      }
    }
    const [fused, fwdOnly, lg, di, dw, dw0] = best;
    const perChunk = 2 * R * C * Vp;
    const flops = 6 * N * C * V;
    return [
      part('fused forward+backward', `${N}x${C}x${V}`, fused, flops),
      part('fused forward only', `${N}x${C}x${V}`, fwdOnly, flops / 3),
      part('logits GEMM (f32 out)', `${chunks} x ${R}x${C}x${Vp}`, lg, chunks * perChunk),
      part('dinp GEMM', `${chunks} x ${R}x${Vp}x${C}`, di, chunks * perChunk),
      part('dwte GEMM (+=, f32)', `${chunks} x ${Vp}x${R}x${C}`, dw, chunks * perChunk),
      part('dwte GEMM (=, f32; for scale)', `${chunks} x ${Vp}x${R}x${C}`, dw0, chunks * perChunk),
      part('softmax + loss, forward (fwd only - logits)', `${N}x${V}`, fwdOnly - lg),
      part('softmax + loss + rest (fused - 3 GEMMs)', `${N}x${V}`, fused - lg - di - dw),
    ];
  } finally {
    for (const t of [inp, wte, losses, dinp, dwte, targets, inpChunk, logits, dlogits, dinpChunk]) t.dispose();
  }
}

// ---- one configuration, in this process ----

async function runConfig(bc: BenchConfig): Promise<ConfigResult> {
  const cfg = mptConfig(PRESET);
  const dtype = bc.precision === 'bf16' ? 'bf16' : 'f32';
  const peakBefore = (await measurePeakFlops(dtype)) / 1e9;
  const model = new MptModel(cfg, { precision: bc.precision, checkpointEvery: bc.checkpointEvery, seed });
  const optimizer = new AdamW(model.params, model.grads, { computeCopy: model.computeParams ?? false });
  if (profile) installProfiler(cfg);
  try {
    const tokens = MICRO_BATCH * SEQ_LEN;
    const batches = syntheticBatches(cfg, Math.min(warmupSteps + timedSteps, 4));
    const activationBytes = model.activationBytes(MICRO_BATCH, SEQ_LEN);
    const P = model.parameterCount;
    const stateBytes = P * 4 * 4 + (model.computeParams ? P * 2 : 0);
    const phases: Phases[] = [];
    const losses: number[] = [];
    let profiledMs = 0;
    for (let i = 0; i < warmupSteps + timedSteps; i++) {
      const timed = i >= warmupSteps;
      profiling = profile && timed;
      const batch = batches[i % batches.length];
      const t0 = performance.now();
      model.grads.zero();
      const t1 = performance.now();
      const r = await model.forwardBackward(batch.inputs, batch.targets, MICRO_BATCH, SEQ_LEN, 1 / tokens);
      const t2 = performance.now();
      const clip = await clipGradNormAsync(model.grads, MAX_NORM);
      const t3 = performance.now();
      if (clip.nonFinite > 0) throw new Error(`${bc.name}: non-finite gradients at step ${i}`);
      await optimizer.stepAsync({ lr: LR, weightDecay: WEIGHT_DECAY, gradScale: clip.scale });
      const t4 = performance.now();
      profiling = false;
      losses.push(r.lossSum / r.tokens);
      const p: Phases = { step: t4 - t0, zeroGrad: t1 - t0, forwardBackward: t2 - t1, clip: t3 - t2, adamw: t4 - t3 };
      log(
        `  ${bc.name} step ${i + 1}/${warmupSteps + timedSteps}${timed ? '' : ' (warm-up)'}: ${p.step.toFixed(0)} ms, loss ${losses[i].toFixed(4)}`,
      );
      if (timed) {
        phases.push(p);
        profiledMs += p.step;
      }
    }
    const peakAfter = (await measurePeakFlops(dtype)) / 1e9;
    const peak = Math.max(peakBefore, peakAfter);
    const stepMs = median(phases.map((p) => p.step));
    const tokensPerSec = tokens / (stepMs / 1e3);
    const fpt = flopsPerToken(cfg, SEQ_LEN);
    const med = (k: keyof Phases) => median(phases.map((p) => p[k]));
    const result: ConfigResult = {
      config: bc.name,
      precision: bc.precision,
      checkpointEvery: bc.checkpointEvery,
      microBatch: MICRO_BATCH,
      seqLen: SEQ_LEN,
      tokensPerStep: tokens,
      warmupSteps,
      timedSteps,
      stepMs,
      stepMsMin: Math.min(...phases.map((p) => p.step)),
      stepMsAll: phases.map((p) => p.step),
      tokensPerSec,
      flopsPerToken: fpt,
      peakGflops: peak,
      peakGflopsBefore: peakBefore,
      peakGflopsAfter: peakAfter,
      achievedGflops: (tokensPerSec * fpt) / 1e9,
      mfu: (tokensPerSec * fpt) / (peak * 1e9),
      phasesMs: { step: stepMs, zeroGrad: med('zeroGrad'), forwardBackward: med('forwardBackward'), clip: med('clip'), adamw: med('adamw') },
      lossFirst: losses[0],
      lossLast: losses[losses.length - 1],
      parameterCount: P,
      activationBytes,
      stateBytes,
      rssAfterBytes: process.memoryUsage().rss,
      maxRssBytes: process.resourceUsage().maxRSS * 1024,
      loadAverage: os.loadavg(),
    };
    if (profile) {
      result.profile = {
        ...profileReport(phases.length, profiledMs / phases.length, phases.reduce((n, p) => n + p.zeroGrad, 0) / phases.length, peak),
        crossEntropyParts: await crossEntropyParts(cfg, dtype, peak),
      };
    }
    return result;
  } finally {
    optimizer.dispose();
    model.dispose();
  }
}

// ---- driver ----

function spawnConfig(name: string): ConfigResult {
  const childArgs = [__filename, '--config', name, '--json', '--steps', String(timedSteps), '--warmup', String(warmupSteps), '--seed', String(seed)];
  if (threads !== undefined) childArgs.push('--threads', threads);
  if (profile) childArgs.push('--profile');
  if (quick) childArgs.push('--quick');
  const r = spawnSync(process.execPath, childArgs, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'] });
  if (r.status !== 0) {
    process.stderr.write(r.stderr ?? '');
    throw new Error(`configuration ${name}: child exited with ${r.status ?? r.signal}`);
  }
  // the child's progress lines (its stderr) are echoed so a long run shows it is alive
  for (const line of (r.stderr ?? '').split('\n')) if (line.startsWith('  ')) log(line);
  return (JSON.parse(r.stdout) as { results: ConfigResult[] }).results[0];
}

// ---- --torch: the same model in PyTorch, in a python child process ----

/** The exit status torch_mpt.py gives when `import torch` fails. */
const TORCH_MISSING_EXIT = 3;
/** ... and when that torch would multiply fp32 with netlib's reference BLAS (a few GFLOP/s). */
const REFERENCE_BLAS_EXIT = 4;
// Debian's python3-torch calls libblas.so.3 for fp32 products: netlib's reference BLAS unless another is installed.
const TORCH_INSTALL = 'apt-get install -y python3-torch libopenblas0-pthread';

/** A Python interpreter that imports torch, with the script that runs the PyTorch model. */
interface TorchRunner {
  python: string;
  version: string;
  blas: string[]; // the BLAS libraries mapped into that python with torch
  script: string;
}

/**
 * Finds the interpreter for --torch before any step is timed: PAJAMA_PYTHON if set, else python3 on PATH,
 * then /usr/bin/python3 (Debian's python3-torch installs for the system interpreter, which a python3 from
 * pyenv or a virtual environment on PATH does not see). Exits with a message saying how to install PyTorch
 * when none of them imports torch: --torch is never skipped silently.
 */
function findTorch(): TorchRunner {
  const fail = (message: string): never => {
    process.stderr.write(`bench:train: ${message}\n`);
    process.exit(1);
  };
  // benchmarks/torch_mpt.py beside this file (run from source) or two levels up from dist/benchmarks/
  const scripts = [path.resolve(__dirname, 'torch_mpt.py'), path.resolve(__dirname, '../../benchmarks/torch_mpt.py')];
  const script = scripts.find((s) => fs.existsSync(s));
  if (!script) return fail(`--torch: the PyTorch side of the benchmark is missing (looked for ${scripts.join(' and ')})`);
  const env = process.env.PAJAMA_PYTHON;
  const candidates = env ? [env] : ['python3', '/usr/bin/python3'];
  const tried: string[] = [];
  for (const python of candidates) {
    const r = spawnSync(python, [script, '--check'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    if (r.error) {
      tried.push(`${python}: ${(r.error as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : r.error.message}`);
    } else if (r.status === 0) {
      const c = JSON.parse(r.stdout) as { torchVersion: string; blas: string[] };
      return { python, version: c.torchVersion, blas: c.blas, script };
    } else if (r.status === TORCH_MISSING_EXIT) {
      tried.push(`${python}: no module named torch`);
    } else if (r.status === REFERENCE_BLAS_EXIT) {
      return fail(`--torch: ${python} has PyTorch, but ${(r.stderr ?? '').trim().replace(/^torch_mpt\.py: /, '')}`);
    } else {
      const lines = (r.stderr ?? '').trim().split('\n');
      tried.push(`${python}: ${lines[lines.length - 1] || `exit status ${r.status ?? r.signal}`}`);
    }
  }
  return fail(
    `--torch needs PyTorch, and no interpreter here imports it (${tried.join('; ')}). ` +
      `Install Debian's packages with \`${TORCH_INSTALL}\` (they install for /usr/bin/python3), ` +
      `or set PAJAMA_PYTHON to a python that has torch, then run again.`,
  );
}

/**
 * glibc's malloc for the torch child, unless GLIBC_TUNABLES is set: no mmap for large blocks and no trimming,
 * so freed memory is reused. PyTorch on CPU allocates its (4096, 50257) logits and (8, 8, 512, 512) scores
 * afresh every step; by default glibc maps and unmaps each, and the page faults of touching new pages cost a
 * 2-core machine two thirds of torch's step (16.1 s against 5.1 s for one bf16 step, 2026-12-05). This is
 * the effect of the jemalloc or tcmalloc that PyTorch's CPU tuning guides preload, without a package.
 */
const TORCH_MALLOC_TUNABLES = 'glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736';

/** Runs one configuration in PyTorch with this run's shapes, steps, seed and threads. */
function runTorch(runner: TorchRunner, bc: BenchConfig, cfg: MptConfig, threadCount: number): TorchResult {
  const a = [
    runner.script,
    ...['--precision', bc.precision, '--checkpoint-every', String(bc.checkpointEvery)],
    ...['--warmup', String(warmupSteps), '--steps', String(timedSteps), '--threads', String(threadCount), '--seed', String(seed)],
    ...['--micro-batch', String(MICRO_BATCH), '--seq-len', String(SEQ_LEN)],
    ...['--d-model', String(cfg.dModel), '--n-heads', String(cfg.nHeads), '--n-layers', String(cfg.nLayers)],
    ...['--expansion-ratio', String(cfg.expansionRatio), '--vocab-size', String(cfg.vocabSize), '--real-vocab-size', String(cfg.realVocabSize)],
    ...['--alibi-bias-max', String(cfg.alibiBiasMax), '--layer-norm-eps', String(cfg.layerNormEps)],
    ...['--lr', String(LR), '--weight-decay', String(WEIGHT_DECAY), '--max-norm', String(MAX_NORM)],
    // the PyTorch model must be ours: the same parameter count and the same counted FLOPs per token
    ...['--expect-params', String(parameterCount(cfg)), '--expect-flops-per-token', String(flopsPerToken(cfg, SEQ_LEN))],
    '--count-flops', // one more step, untimed, under torch.profiler: the products the PyTorch model really runs
  ];
  const glibcTunables = process.env.GLIBC_TUNABLES ?? TORCH_MALLOC_TUNABLES;
  const env = { ...process.env, GLIBC_TUNABLES: glibcTunables };
  const r = spawnSync(runner.python, a, { encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'], env });
  if (r.error) throw new Error(`--torch ${bc.name}: cannot start ${runner.python}: ${r.error.message}`);
  if (r.status !== 0) {
    process.stderr.write(r.stderr ?? '');
    if (r.status === TORCH_MISSING_EXIT || r.status === REFERENCE_BLAS_EXIT) throw new Error(`--torch ${bc.name}: ${runner.python} cannot import torch or has no optimized BLAS: install them with \`${TORCH_INSTALL}\``);
    throw new Error(`--torch ${bc.name}: ${runner.python} ${runner.script} exited with ${r.status ?? r.signal}`);
  }
  for (const line of (r.stderr ?? '').split('\n')) if (line.startsWith('  ')) log(line);
  return { ...(JSON.parse(r.stdout) as TorchResult), glibcTunables };
}

const MiB = (b: number) => `${(b / 2 ** 20).toFixed(0)} MiB`;

function printTable(results: ConfigResult[]): void {
  const withTorch = results.some((r) => r.torch);
  log('');
  log(
    `${'config'.padEnd(10)} ${'step ms'.padStart(8)} ${'tokens/s'.padStart(9)} ${'GFLOP/s'.padStart(8)} ${'peak'.padStart(6)} ${'MFU'.padStart(6)}  ` +
      `${'fwd+bwd'.padStart(8)} ${'clip'.padStart(5)} ${'adamw'.padStart(6)} ${'zero'.padStart(5)}  ${'activations'.padStart(11)} ${'max RSS'.padStart(9)} ${'RSS after'.padStart(9)}` +
      (withTorch ? `  ${'torch ms'.padStart(8)} ${'torch tok/s'.padStart(11)} ${'vs torch'.padStart(8)}` : ''),
  );
  for (const r of results) {
    const ph = r.phasesMs;
    log(
      `${r.config.padEnd(10)} ${r.stepMs.toFixed(0).padStart(8)} ${r.tokensPerSec.toFixed(0).padStart(9)} ${r.achievedGflops.toFixed(0).padStart(8)} ` +
        `${r.peakGflops.toFixed(0).padStart(6)} ${(100 * r.mfu).toFixed(1).padStart(5)}%  ` +
        `${ph.forwardBackward.toFixed(0).padStart(8)} ${ph.clip.toFixed(1).padStart(5)} ${ph.adamw.toFixed(1).padStart(6)} ${ph.zeroGrad.toFixed(1).padStart(5)}  ` +
        `${MiB(r.activationBytes).padStart(11)} ${MiB(r.maxRssBytes).padStart(9)} ${MiB(r.rssAfterBytes).padStart(9)}` +
        (r.torch && r.speedupVsTorch !== undefined
          ? `  ${r.torch.stepMs.toFixed(0).padStart(8)} ${r.torch.tokensPerSec.toFixed(0).padStart(11)} ${`${r.speedupVsTorch.toFixed(2)}x`.padStart(8)}`
          : ''),
    );
  }
  const torchRow = results.find((r) => r.torch)?.torch;
  if (torchRow) {
    log(
      `torch: PyTorch ${torchRow.torchVersion} (${torchRow.python}), ${torchRow.threads} threads, attention ${torchRow.attention}, ` +
        `GLIBC_TUNABLES=${torchRow.glibcTunables}; ` +
        `vs torch = our tokens/s / torch's, same model and steps, measured in this run`,
    );
  }
  for (const r of results) {
    const t = r.torch;
    if (t?.profiledMatmulFlopsPerToken === undefined || t.expectedMatmulFlopsPerToken === undefined) continue;
    log(
      `${r.config} torch: loss ${t.lossFirst.toFixed(3)} -> ${t.lossLast.toFixed(3)} (ours ${r.lossFirst.toFixed(3)} -> ${r.lossLast.toFixed(3)}); ` +
        `torch.profiler counts ${(t.profiledMatmulFlopsPerToken / 1e6).toFixed(2)} MFLOP/token in matrix products, ` +
        `the shapes say ${(t.expectedMatmulFlopsPerToken / 1e6).toFixed(2)}`,
    );
  }
  for (const r of results) {
    if (r.torch?.stepMsRepeats) log(`${r.config} torch: median step of each run ${r.torch.stepMsRepeats.map((x) => x.toFixed(0)).join(', ')} ms`);
  }
  for (const r of results) {
    if (r.stepMsRepeats) log(`${r.config}: median step of each run ${r.stepMsRepeats.map((x) => x.toFixed(0)).join(', ')} ms`);
  }
  for (const r of results) {
    if (!r.profile) continue;
    const p = r.profile;
    log('');
    log(
      `profile of ${r.config}: mean step ${p.stepMs.toFixed(0)} ms over ${r.timedSteps} steps; native ops ${p.opMs.toFixed(0)} ms, ` +
        `zeroing the gradients ${p.zeroGradMs.toFixed(1)} ms, JS + dispatch ${p.jsOverheadMs.toFixed(1)} ms`,
    );
    const cats = Object.entries(p.categories).sort((x, y) => y[1] - x[1]);
    for (const [c, ms] of cats) log(`  ${c.padEnd(28)} ${ms.toFixed(1).padStart(8)} ms  ${((100 * ms) / p.stepMs).toFixed(1).padStart(5)}%`);
    log(`  ${'op'.padEnd(28)} ${'what'.padEnd(34)} ${'calls'.padStart(5)} ${'ms/step'.padStart(8)} ${'share'.padStart(6)} ${'rate'.padStart(16)}  of peak`);
    for (const row of p.rows) {
      const rate = row.gflops !== undefined ? `${row.gflops.toFixed(0)} GFLOP/s` : row.gbps !== undefined ? `${row.gbps.toFixed(1)} GB/s` : '';
      const share = row.peakShare !== undefined ? `${(100 * row.peakShare).toFixed(0)}%` : '';
      log(
        `  ${row.op.padEnd(28)} ${row.what.padEnd(34)} ${String(row.callsPerStep).padStart(5)} ${row.msPerStep.toFixed(1).padStart(8)} ` +
          `${(100 * row.shareOfStep).toFixed(1).padStart(5)}% ${rate.padStart(16)}  ${share}`,
      );
    }
    log(`  the LM head + cross-entropy in parts (each alone, best of interleaved rounds, summed over the micro-batch's chunks):`);
    for (const c of p.crossEntropyParts) {
      const rate = c.gflops !== undefined ? `${c.gflops.toFixed(0)} GFLOP/s` : '';
      const share = c.peakShare !== undefined ? `${(100 * c.peakShare).toFixed(0)}%` : '';
      log(`    ${c.part.padEnd(40)} ${c.shape.padEnd(24)} ${c.ms.toFixed(1).padStart(8)} ms ${rate.padStart(16)}  ${share}`);
    }
  }
}

function machine(info: BackendInfo) {
  return {
    cpu: info.cpu.brand,
    cores: os.cpus().length,
    threads: info.threads,
    isa: info.cpu.activeIsa,
    features: info.cpu.features, // AMX-BF16 or AVX512-BF16 decides which kernels run
    gemm: info.gemm.description,
    bf16Native: info.gemm.bf16Native,
    attentionEngine: info.attention.engine,
    loadAverage: os.loadavg(),
  };
}

async function main(): Promise<void> {
  const info = backendInfo();
  const single = opt('--config');
  let selected: BenchConfig[];
  if (single !== undefined) {
    const c = CONFIGS.find((x) => x.name === single);
    if (!c) cli.usageError(`--config: '${single}' is not one of ${CONFIGS.map((x) => x.name).join(', ')}`);
    selected = [c];
  } else {
    const names = opt('--configs')?.split(',') ?? CONFIGS.map((c) => c.name);
    selected = names.map((n) => {
      const c = CONFIGS.find((x) => x.name === n);
      if (!c) cli.usageError(`--configs: '${n}' is not one of ${CONFIGS.map((x) => x.name).join(', ')}`);
      return c;
    });
  }
  const cfg = mptConfig(PRESET);
  // before minutes of our steps, so a machine without PyTorch fails at once
  if (single !== undefined && flag('--torch')) cli.usageError('--torch runs in the driver, after every configuration: not with --config');
  const torchRunner = single === undefined && flag('--torch') ? findTorch() : null;
  if (single === undefined) {
    log(
      `pajama-train training-step benchmark: ${PRESET} (${(parameterCount(cfg) / 1e6).toFixed(1)}M params, ` +
        `${(flopsPerToken(cfg, SEQ_LEN) / 1e6).toFixed(1)} MFLOP/token), micro-batch ${MICRO_BATCH} x ${SEQ_LEN}, ` +
        `${warmupSteps} warm-up + median of ${timedSteps} steps`,
    );
    log(`machine: ${info.cpu.brand}, ${info.threads} threads, ISA ${info.cpu.activeIsa}, ${info.gemm.description}, attention engine ${info.attention.engine}`);
    if (repeat > 1) log(`every configuration runs ${repeat} times round-robin; each row is its run of median step time`);
    if (torchRunner) {
      log(
        `then in PyTorch ${torchRunner.version} (${torchRunner.python} ${path.relative(process.cwd(), torchRunner.script)}), ${info.threads} threads, ` +
          `BLAS ${torchRunner.blas.join(', ') || 'none mapped'}`,
      );
    }
  }
  const inProcess = single !== undefined || flag('--in-process');
  const runs = new Map<string, ConfigResult[]>(selected.map((c) => [c.name, []]));
  for (let r = 0; r < repeat; r++) {
    for (const c of selected) runs.get(c.name)!.push(inProcess ? await runConfig(c) : spawnConfig(c.name));
  }
  const results = selected.map((c) => {
    const all = runs.get(c.name)!;
    if (all.length === 1) return all[0];
    const byStep = [...all].sort((x, y) => x.stepMs - y.stepMs);
    return { ...byStep[(byStep.length - 1) >> 1], stepMsRepeats: all.map((x) => x.stepMs) };
  });
  if (torchRunner) {
    const torchRuns = new Map<string, TorchResult[]>(selected.map((c) => [c.name, []]));
    for (let r = 0; r < repeat; r++) {
      for (const c of selected) torchRuns.get(c.name)!.push(runTorch(torchRunner, c, cfg, info.threads));
    }
    for (const res of results) {
      const all = torchRuns.get(res.config)!;
      const byStep = [...all].sort((x, y) => x.stepMs - y.stepMs);
      const torch: TorchResult = all.length === 1 ? all[0] : { ...byStep[(byStep.length - 1) >> 1], stepMsRepeats: all.map((x) => x.stepMs) };
      if (torch.parameterCount !== res.parameterCount) {
        throw new Error(`--torch ${res.config}: the PyTorch model has ${torch.parameterCount} parameters, ours ${res.parameterCount}`);
      }
      res.torch = torch;
      res.speedupVsTorch = res.tokensPerSec / torch.tokensPerSec;
    }
  }
  if (single === undefined || !json) printTable(results);

  const report = {
    benchmark: 'train',
    date: new Date().toISOString(),
    machine: machine(info),
    preset: PRESET,
    model: cfg,
    microBatch: MICRO_BATCH,
    seqLen: SEQ_LEN,
    optimizer: { lr: LR, weightDecay: WEIGHT_DECAY, maxNorm: MAX_NORM },
    childProcesses: !inProcess,
    repeat,
    quick,
    results,
  };
  writeReport(report);
}

main().catch((e) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exitCode = 1;
});
