// planner.ts: the cluster planner behind `pajama plan`: per-GPU memory, step time, tokens/s per GPU and MFU of
// bf16 data-parallel training of an MPT model on N GPUs, from a documented cost model. Pure functions of their
// inputs: no native code, no clock, no files.
//
// The cost model:
//   memory per GPU   f32 master weights (4 B/param), bf16 compute copy (2), f32 gradients (4), AdamW m and v
//                    (4 + 4), each whole or divided by the N ranks as the sharding mode says (below); the
//                    activations of one micro-batch, counted tensor by tensor as lib/model/mpt.ts allocates
//                    them (`mptActivationBytes`, checked against MptModel.activationBytes by the tests); the
//                    communication buffers of the mode; a cross-entropy workspace (512 MiB: the two 256 MiB
//                    chunk budgets of native/src/cuda/cross_entropy.cu); and a 2 GiB reserve for the CUDA
//                    context, NCCL and cuBLAS workspaces and allocator slack. It fits when the sum is at most
//                    the GPU's memory.
//     none           (DDP) everything whole; gradients all-reduced in place over the one gradient arena.
//     optimizer      (ZeRO-2 / SHARD_GRAD_OP) master weights, gradients and moments in 1/N shards; the bf16
//                    copy whole; buffers: two units' f32 gradients (reduce-scatter double buffering).
//     full           (FSDP FULL_SHARD) the bf16 copy sharded too; buffers: two units' bf16 weights (the one in
//                    use and the prefetched next) and two units' f32 gradients.
//                    A unit is one transformer block, or the tied embedding with the final LayerNorm.
//                    A world of one runs no collectives and has no buffers.
//   compute          model FLOPs per token = flopsPerToken(config, seqLen) (model/config.ts, llm-foundry's
//                    count: 6N + 12·L·d·T, the one the trainer's MFU uses); forward 1/3 of them, backward 2/3;
//                    activation checkpointing recomputes the forward: x 4/3 (an upper bound for MptModel, whose
//                    recompute stops before down_proj and skips the last block). Time = FLOPs / (peak x fraction).
//   collectives      ring algorithms at the bandwidth B of the slowest link the ring crosses: NVLink when all
//                    N GPUs share a node, else the inter-node bandwidth per GPU. All-reduce 2(N-1)/N x bytes / B,
//                    reduce-scatter and all-gather (N-1)/N x bytes / B (bytes: the whole unsharded buffer).
//                    Gradients travel in f32 (4 B/param), weights in bf16 (2). Latency terms are left out.
//     none           one all-reduce of the gradients per step (micro-batches accumulate locally).
//     optimizer      a reduce-scatter of the gradients per micro-batch; an all-gather of the updated bf16
//                    weights per step.
//     full           per micro-batch an all-gather of the weights before the forward, another before the
//                    backward (they were freed after use), and a reduce-scatter of the gradients.
//   overlap          communication runs beside compute, unit by unit: the forward's all-gathers hide behind the
//                    forward, the backward's all-gathers and gradient collectives behind the backward (with its
//                    recompute), the step's weight all-gather behind the next step's first forward. Exposed
//                    time of a phase = max(communication - compute of the phase, the one unit that has nothing
//                    to hide behind: the first unit's all-gather, the last unit's gradient collective).
//   optimizer step   AdamW + the norm stream 34 B per local parameter (read master, m, v, gradient, and the
//                    gradient again for the norm; write master, m, v, bf16 copy) at the datasheet HBM bandwidth;
//                    not overlapped.
//   step time        compute + exposed communication + optimizer step; tokens/s per GPU = tokens per step / N /
//                    step time; MFU = tokens/s per GPU x flopsPerToken / peak (model FLOPs only, no recompute:
//                    the definition of the paper's Table 12 and llm-foundry); HFU = MFU x 4/3 with
//                    checkpointing.
// The achieved fraction of peak is one number for every GPU and run (DEFAULT_COMPUTE_FRACTION, below).
import { invalidArg } from '../core/errors';
import { flopsPerToken, mptConfig, parameterCount, PRESETS, type MptConfig } from '../model/config';

export type ShardingMode = 'none' | 'optimizer' | 'full';
export const SHARDING_MODES: readonly ShardingMode[] = ['none', 'optimizer', 'full'];

export type GpuKind = 'a100-40g' | 'a100-80g' | 'h100-sxm' | 'h200';

export interface GpuSpec {
  /** What the kind names. */
  description: string;
  /** Dense (no structured sparsity) bf16 tensor-core peak, TFLOP/s. */
  bf16Tflops: number;
  /** Memory, GiB (NVIDIA's "GB" for HBM capacity is binary: an A100 80GB reports 81,920 MiB). */
  memoryGiB: number;
  /** HBM bandwidth, GB/s (1e9 bytes). */
  hbmGBps: number;
  /** NVLink bandwidth per GPU in one direction, GB/s: what a ring inside a node moves per GPU. */
  intraNodeGBps: number;
  /** Network bandwidth per GPU in one direction in a typical node of 8 (one NIC per GPU), GB/s. */
  interNodeGBps: number;
}

/** Datasheet numbers; every one is sourced on its line. */
export const GPU_SPECS: Readonly<Record<GpuKind, Readonly<GpuSpec>>> = {
  'a100-40g': {
    description: 'NVIDIA A100 SXM4 40GB',
    bf16Tflops: 312, // A100 datasheet: BF16 Tensor Core 312 TFLOPS (624 is "with sparsity")
    memoryGiB: 40, // A100 datasheet: 40GB HBM2 (the driver reports 40,960 MiB)
    hbmGBps: 1555, // A100 datasheet: 1,555 GB/s
    intraNodeGBps: 300, // A100 datasheet: NVLink 600 GB/s per GPU, both directions together
    interNodeGBps: 25, // DGX A100 datasheet: eight 200 Gb/s HDR InfiniBand ports for eight GPUs
  },
  'a100-80g': {
    description: 'NVIDIA A100 SXM4 80GB',
    bf16Tflops: 312, // A100 datasheet: BF16 Tensor Core 312 TFLOPS (624 is "with sparsity")
    memoryGiB: 80, // A100 datasheet: 80GB HBM2e (the driver reports 81,920 MiB)
    hbmGBps: 2039, // A100 datasheet: 2,039 GB/s (SXM)
    intraNodeGBps: 300, // A100 datasheet: NVLink 600 GB/s per GPU, both directions together
    interNodeGBps: 25, // DGX A100 datasheet: eight 200 Gb/s HDR InfiniBand ports for eight GPUs
  },
  'h100-sxm': {
    description: 'NVIDIA H100 SXM5 80GB',
    bf16Tflops: 989, // H100 datasheet: BF16 Tensor Core 1,979 TFLOPS "with sparsity"; dense is half
    memoryGiB: 80, // H100 datasheet: 80GB HBM3
    hbmGBps: 3350, // H100 datasheet: 3.35 TB/s (SXM)
    intraNodeGBps: 450, // H100 datasheet: NVLink 900 GB/s per GPU, both directions together
    interNodeGBps: 50, // DGX H100 datasheet: eight 400 Gb/s ConnectX-7 (NDR) ports for eight GPUs
  },
  h200: {
    description: 'NVIDIA H200 SXM 141GB',
    bf16Tflops: 989, // H200 datasheet: BF16 Tensor Core 1,979 TFLOPS "with sparsity"; dense is half
    memoryGiB: 141, // H200 datasheet: 141GB HBM3e
    hbmGBps: 4800, // H200 datasheet: 4.8 TB/s
    intraNodeGBps: 450, // H200 datasheet: NVLink 900 GB/s per GPU, both directions together
    interNodeGBps: 50, // DGX H200 datasheet: eight 400 Gb/s ConnectX-7 ports for eight GPUs
  },
};

export const GPU_KINDS = Object.keys(GPU_SPECS) as GpuKind[];

/**
 * The achieved fraction of the bf16 peak that compute runs at, counting the FLOPs actually done (recompute
 * included): 0.67. It is llm-foundry's published HFU for MPT-7B at sequence 2048 with FULL_SHARD and activation
 * checkpointing on 8 to 128 A100s (66.85% to 68.73%, scripts/train/benchmarking/README.md), rounded. It is a
 * calibration from measured runs, not a first-principles number, and it also reproduces the paper's LBS-7B row
 * of Table 12 to within 1% (test/dist/planner.test.ts). Hopper GPUs reach less of their peak in the same
 * benchmark (the 7B on 8 H100s: 46% HFU at sequence 2048, 38% to 57% over the other lengths): pass a lower
 * computeFraction for them.
 */
export const DEFAULT_COMPUTE_FRACTION = 0.67;
/** Memory kept back for the CUDA context, NCCL and cuBLAS workspaces and allocator slack. */
export const DEFAULT_RESERVE_GIB = 2;
/** The cross-entropy op's scratch on a GPU: two chunk buffers of at most 256 MiB (native/src/cuda/cross_entropy.cu). */
export const CROSS_ENTROPY_WORKSPACE_BYTES = 512 * 2 ** 20;
/** Bytes the optimizer step streams per local parameter: see the header. */
export const OPTIMIZER_BYTES_PER_PARAM = 34;

const GIB = 2 ** 30;

export interface PlanOptions {
  /** A preset of model/config.ts PRESETS ('mpt-7b'), or a config (completed and validated by mptConfig). */
  model: string | Partial<MptConfig>;
  /** A kind of GPU_SPECS. */
  gpu: GpuKind;
  /** GPUs (= data-parallel ranks). */
  gpus: number;
  /** GPUs in one node: collectives of more GPUs cross the network. Defaults to 8. */
  gpusPerNode?: number;
  /**
   * Tokens per optimizer step over all GPUs; rounded to whole sequences per GPU (14.3M over 232 GPUs at 2048
   * is 30 sequences per GPU: 14,254,080 tokens). Defaults to one micro-batch per GPU.
   */
  globalBatchTokens?: number;
  /** Defaults to the model's maxSeqLen. */
  seqLen?: number;
  /** Sequences per micro-batch; must divide the sequences per GPU. Defaults to the largest that fits and divides. */
  microBatch?: number;
  /** Activation checkpointing of every block (checkpointEvery 1). Defaults to true. */
  checkpointing?: boolean;
  /** One mode, or every mode when left out. */
  sharding?: ShardingMode;
  /** Achieved fraction of the bf16 peak, in (0, 1]. Defaults to DEFAULT_COMPUTE_FRACTION. */
  computeFraction?: number;
  /** Overrides the GPU's intraNodeGBps. */
  intraNodeGBps?: number;
  /** Overrides the GPU's interNodeGBps. */
  interNodeGBps?: number;
  /** Memory kept back, GiB. Defaults to DEFAULT_RESERVE_GIB. */
  reserveGiB?: number;
}

/** Bytes per GPU, by what holds them. */
export interface MemoryBreakdown {
  masterWeights: number;
  computeWeights: number;
  gradients: number;
  adamMoments: number;
  activations: number;
  commBuffers: number;
  workspace: number;
  reserve: number;
  total: number;
}

export interface ModePlan {
  sharding: ShardingMode;
  /** Whether memory.total is within the GPU's memory. */
  fits: boolean;
  microBatch: number;
  accumulation: number;
  /** The largest micro-batch whose memory fits (any size, divisor or not); 0 when not even one sequence fits. */
  maxMicroBatch: number;
  memory: MemoryBreakdown;
  /** Activation bytes of this micro-batch with and without checkpointing (memory.activations is one of them). */
  activationsPerMicroBatch: { checkpointing: number; noCheckpointing: number };
  /** Bytes each GPU sends per step, all collectives together. */
  commBytesPerStep: number;
  time: {
    /** Forward, backward and recompute of every micro-batch. */
    computeS: number;
    /** All communication, as if nothing overlapped. */
    commS: number;
    /** The part of commS not hidden behind compute. */
    exposedCommS: number;
    optimizerS: number;
    stepS: number;
  };
  tokensPerSecPerGpu: number;
  /** Model FLOPs (no recompute) per second per GPU over the bf16 peak. */
  mfu: number;
  /** FLOPs done (recompute included) per second per GPU over the bf16 peak. */
  hfu: number;
}

export interface ClusterPlan {
  model: { preset: string | null; config: MptConfig; parameters: number; flopsPerToken: number };
  gpu: { kind: GpuKind } & GpuSpec;
  gpus: number;
  gpusPerNode: number;
  nodes: number;
  seqLen: number;
  checkpointing: boolean;
  computeFraction: number;
  /** The bandwidth the collectives run at, GB/s per GPU, and the link it is; null for one GPU. */
  collective: { link: 'nvlink' | 'network'; GBps: number } | null;
  /** As asked, before rounding to whole sequences; null when left out. */
  requestedGlobalBatchTokens: number | null;
  /** Sequences per GPU per step; null when the global batch was left out (then it is each mode's micro-batch). */
  sequencesPerGpu: number | null;
  /** The global batch every mode uses, tokens; null when it follows each mode's micro-batch. */
  globalBatchTokens: number | null;
  modes: ModePlan[];
}

/** How errors name an option: the API's key by default; the CLI passes its --flag names. */
export type PlanOptionNamer = (key: keyof PlanOptions) => string;

const apiName: PlanOptionNamer = (key) => `plan: '${key}'`;

/** A count with an optional K/M/B/G suffix (thousand, million, billion): '14.3M' -> 14300000. Commas and underscores are ignored. */
export function parseTokenCount(text: string): number {
  const m = /^\s*([0-9][0-9_,]*(?:\.[0-9]+)?|\.[0-9]+)\s*([kKmMbBgG]?)\s*$/.exec(text);
  if (!m) throw invalidArg(`'${text}' is not a count of tokens (a number with an optional K, M, B or G suffix, e.g. 14.3M)`);
  const scale = { '': 1, k: 1e3, m: 1e6, b: 1e9, g: 1e9 }[m[2].toLowerCase() as '' | 'k' | 'm' | 'b' | 'g'];
  // Scaled through the decimal string, not the float, so that 14.3M is exactly 14300000.
  const [whole, frac = ''] = m[1].replace(/[_,]/g, '').split('.');
  const digits = Math.round(Math.log10(scale));
  const fracUsed = frac.slice(0, digits).padEnd(digits, '0');
  if (/[1-9]/.test(frac.slice(digits))) throw invalidArg(`'${text}' is not a whole number of tokens`);
  const value = Number(whole + fracUsed);
  if (!Number.isSafeInteger(value) || value < 1) throw invalidArg(`'${text}' must be a positive whole number of tokens below 2^53`);
  return value;
}

/**
 * Activation bytes of one micro-batch of (B, T) in MptModel, tensor by tensor as mpt.ts's #buffers allocates
 * them: the residual stream x0..xL, the saved tensors of every block (#blockActs: ln1, qkv, att, h, ln2, fc,
 * act in the activation dtype; LayerNorm mean and rstd in f32; attention's lse (B, H, T) in f32) or, with
 * checkpointing, of one shared recompute scratch block; the final LayerNorm and its statistics, the per-token
 * losses, the token ids and targets, and the activation-gradient buffers (dx, dtmp, dln, dqkv, dff).
 */
export function mptActivationBytes(config: MptConfig, B: number, T: number, options: { checkpointing: boolean; precision?: 'bf16' | 'fp32' }): number {
  for (const [k, v] of [['B', B], ['T', T]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw invalidArg(`mptActivationBytes: ${k} must be a positive integer, got ${JSON.stringify(v)}`);
  }
  const precision = options.precision ?? 'bf16';
  if (precision !== 'bf16' && precision !== 'fp32') throw invalidArg(`mptActivationBytes: precision must be 'bf16' or 'fp32', got ${JSON.stringify(precision)}`);
  const { dModel: C, nHeads: H, nLayers: L } = config;
  const F = config.expansionRatio * C;
  const e = precision === 'bf16' ? 2 : 4;
  const blockPerToken = e * (7 * C + 2 * F) + 4 * 4 + 4 * H; // ln1 qkv att h ln2 (7C), fc act (2F); mean/rstd x2; lse
  const savedBlocks = options.checkpointing ? 1 : L; // checkpointing: every block's acts are null, one scratch
  const perToken =
    4 + 4 + // ids, targets (i32)
    (L + 1) * e * C + // xs
    savedBlocks * blockPerToken +
    e * C + 4 + 4 + 4 + // lnf, meanf, rstdf, losses
    3 * e * C + 3 * e * C + e * F; // dx, dtmp, dln; dqkv; dff
  return B * T * perToken;
}

interface Resolved {
  preset: string | null;
  config: MptConfig;
  spec: GpuSpec & { kind: GpuKind };
  gpus: number;
  gpusPerNode: number;
  seqLen: number;
  requestedTokens: number | null;
  sequencesPerGpu: number | null;
  microBatch: number | null;
  checkpointing: boolean;
  modes: ShardingMode[];
  fraction: number;
  reserveBytes: number;
}

function resolve(o: PlanOptions, name: PlanOptionNamer): Resolved {
  if (o === null || typeof o !== 'object') throw invalidArg('plan: options must be an object');
  const posInt = (key: keyof PlanOptions, v: unknown): number => {
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw invalidArg(`${name(key)} must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const positive = (key: keyof PlanOptions, v: unknown, max = Infinity): number => {
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0 || v > max) {
      throw invalidArg(`${name(key)} must be a number above 0${max < Infinity ? ` and at most ${max}` : ''}, got ${JSON.stringify(v)}`);
    }
    return v;
  };
  let config: MptConfig;
  let preset: string | null = null;
  if (typeof o.model === 'string') {
    if (!Object.hasOwn(PRESETS, o.model)) throw invalidArg(`${name('model')}: '${o.model}' is not a preset (presets: ${Object.keys(PRESETS).join(', ')})`);
    preset = o.model;
    config = mptConfig(o.model);
  } else if (o.model !== null && typeof o.model === 'object') {
    try {
      config = mptConfig(o.model);
    } catch (e) {
      throw invalidArg(`${name('model')}: ${(e as Error).message}`);
    }
  } else {
    throw invalidArg(`${name('model')} must be a preset name or a model config, got ${JSON.stringify(o.model)}`);
  }
  if (typeof o.gpu !== 'string' || !Object.hasOwn(GPU_SPECS, o.gpu)) {
    throw invalidArg(`${name('gpu')} must be one of ${GPU_KINDS.join(', ')}, got ${JSON.stringify(o.gpu)}`);
  }
  const spec = { kind: o.gpu, ...GPU_SPECS[o.gpu] };
  if (o.intraNodeGBps !== undefined) spec.intraNodeGBps = positive('intraNodeGBps', o.intraNodeGBps);
  if (o.interNodeGBps !== undefined) spec.interNodeGBps = positive('interNodeGBps', o.interNodeGBps);
  const gpus = posInt('gpus', o.gpus);
  const gpusPerNode = o.gpusPerNode === undefined ? 8 : posInt('gpusPerNode', o.gpusPerNode);
  const seqLen = o.seqLen === undefined ? config.maxSeqLen : posInt('seqLen', o.seqLen);
  if (seqLen > config.maxSeqLen) throw invalidArg(`${name('seqLen')} ${seqLen} is above the model's maxSeqLen ${config.maxSeqLen}`);
  let requestedTokens: number | null = null;
  let sequencesPerGpu: number | null = null;
  if (o.globalBatchTokens !== undefined) {
    requestedTokens = posInt('globalBatchTokens', o.globalBatchTokens);
    sequencesPerGpu = Math.round(requestedTokens / (seqLen * gpus));
    if (sequencesPerGpu < 1) {
      throw invalidArg(`${name('globalBatchTokens')} ${requestedTokens} is less than one sequence of ${seqLen} per GPU (${seqLen * gpus} tokens over ${gpus} GPUs)`);
    }
  }
  let microBatch: number | null = null;
  if (o.microBatch !== undefined) {
    microBatch = posInt('microBatch', o.microBatch);
    if (sequencesPerGpu !== null && sequencesPerGpu % microBatch !== 0) {
      throw invalidArg(`${name('microBatch')} ${microBatch} does not divide the ${sequencesPerGpu} sequences per GPU of the global batch`);
    }
  }
  if (o.checkpointing !== undefined && typeof o.checkpointing !== 'boolean') throw invalidArg(`${name('checkpointing')} must be true or false, got ${JSON.stringify(o.checkpointing)}`);
  if (o.sharding !== undefined && !SHARDING_MODES.includes(o.sharding)) {
    throw invalidArg(`${name('sharding')} must be one of ${SHARDING_MODES.join(', ')}, got ${JSON.stringify(o.sharding)}`);
  }
  const fraction = o.computeFraction === undefined ? DEFAULT_COMPUTE_FRACTION : positive('computeFraction', o.computeFraction, 1);
  const reserveGiB = o.reserveGiB === undefined ? DEFAULT_RESERVE_GIB : o.reserveGiB;
  if (typeof reserveGiB !== 'number' || !Number.isFinite(reserveGiB) || reserveGiB < 0) throw invalidArg(`${name('reserveGiB')} must be a number >= 0, got ${JSON.stringify(reserveGiB)}`);
  return {
    preset,
    config,
    spec,
    gpus,
    gpusPerNode,
    seqLen,
    requestedTokens,
    sequencesPerGpu,
    microBatch,
    checkpointing: o.checkpointing ?? true,
    modes: o.sharding === undefined ? [...SHARDING_MODES] : [o.sharding],
    fraction,
    reserveBytes: reserveGiB * GIB,
  };
}

/** Parameters of each unit that sharding gathers and reduces as one: the embedding with norm_f, then every block. */
function unitParams(config: MptConfig): { first: number; last: number; largest: number } {
  const C = config.dModel;
  const F = config.expansionRatio * C;
  const embedding = config.vocabSize * C + C; // wte (tied LM head) + norm_f
  const block = 3 * C * C + C * C + 2 * F * C + 2 * C; // Wqkv, out_proj, up_proj, down_proj, norm_1, norm_2
  // The embedding's weights are gathered first in the forward; its gradient is complete last in the backward.
  return { first: embedding, last: embedding, largest: Math.max(embedding, block) };
}

/**
 * Plans data-parallel training of a model on N GPUs for each sharding mode (or the one asked): memory per GPU,
 * whether it fits, micro-batch and accumulation, step time, tokens/s per GPU and MFU. See the header for the
 * cost model. Throws a TypeError (ERR_PAJAMA_INVALID_ARG) naming the bad option.
 */
export function planCluster(options: PlanOptions, optionName: PlanOptionNamer = apiName): ClusterPlan {
  const r = resolve(options, optionName);
  const { config, spec, gpus: n, seqLen: T } = r;
  const P = parameterCount(config);
  const fpt = flopsPerToken(config, T);
  const peak = spec.bf16Tflops * 1e12;
  const achieved = peak * r.fraction;
  const recompute = r.checkpointing ? 4 / 3 : 1;
  const collective = n === 1 ? null : n <= r.gpusPerNode ? { link: 'nvlink' as const, GBps: spec.intraNodeGBps } : { link: 'network' as const, GBps: spec.interNodeGBps };
  const bw = (collective?.GBps ?? Infinity) * 1e9;
  const ring = (n - 1) / n;
  const allReduceS = (bytes: number) => (2 * ring * bytes) / bw;
  const gatherS = (bytes: number) => (ring * bytes) / bw; // all-gather and reduce-scatter alike
  const units = unitParams(config);
  const shard = Math.ceil(P / n);
  const capacity = spec.memoryGiB * GIB;
  const actPerSeq = (ckpt: boolean) => mptActivationBytes(config, 1, T, { checkpointing: ckpt });

  const modes = r.modes.map((sharding): ModePlan => {
    const sharded = sharding !== 'none';
    const fixed = {
      masterWeights: 4 * (sharded ? shard : P),
      computeWeights: 2 * (sharding === 'full' ? shard : P),
      gradients: 4 * (sharded ? shard : P),
      adamMoments: 8 * (sharded ? shard : P),
      commBuffers: n === 1 ? 0 : sharding === 'optimizer' ? 2 * 4 * units.largest : sharding === 'full' ? 2 * 2 * units.largest + 2 * 4 * units.largest : 0,
      workspace: CROSS_ENTROPY_WORKSPACE_BYTES,
      reserve: r.reserveBytes,
    };
    const fixedTotal = Object.values(fixed).reduce((a, b) => a + b, 0);
    const perSeq = actPerSeq(r.checkpointing);
    const maxMicroBatch = Math.max(0, Math.floor((capacity - fixedTotal) / perSeq));
    let microBatch: number;
    if (r.microBatch !== null) microBatch = r.microBatch;
    else if (r.sequencesPerGpu === null) microBatch = Math.max(1, maxMicroBatch);
    else {
      // The largest divisor of the sequences per GPU that fits, so that micro x accumulation is the batch exactly.
      microBatch = 1;
      for (let b = Math.min(r.sequencesPerGpu, maxMicroBatch); b >= 1; b--) {
        if (r.sequencesPerGpu % b === 0) {
          microBatch = b;
          break;
        }
      }
    }
    const accumulation = r.sequencesPerGpu === null ? 1 : r.sequencesPerGpu / microBatch;
    const activations = microBatch * perSeq;
    const memory: MemoryBreakdown = { ...fixed, activations, total: fixedTotal + activations };

    // Compute: model FLOPs of one micro-batch split 1/3 forward, 2/3 backward; the recompute joins the backward.
    const microModelS = (microBatch * T * fpt) / achieved;
    const forwardS = microModelS / 3;
    const backwardS = (2 * microModelS) / 3 + (r.checkpointing ? microModelS / 3 : 0);
    const computeS = accumulation * (forwardS + backwardS);
    const exposed = (commS: number, windowS: number, unitS: number) => Math.max(commS - windowS, unitS);

    let commS = 0;
    let exposedCommS = 0;
    let commBytesPerStep = 0;
    if (n > 1) {
      if (sharding === 'none') {
        const ar = allReduceS(4 * P);
        commS = ar;
        exposedCommS = exposed(ar, backwardS, allReduceS(4 * units.last));
        commBytesPerStep = 2 * ring * 4 * P;
      } else if (sharding === 'optimizer') {
        const rs = gatherS(4 * P);
        const ag = gatherS(2 * P);
        commS = accumulation * rs + ag;
        exposedCommS = accumulation * exposed(rs, backwardS, gatherS(4 * units.last)) + exposed(ag, forwardS, gatherS(2 * units.first));
        commBytesPerStep = ring * (accumulation * 4 * P + 2 * P);
      } else {
        const ag = gatherS(2 * P);
        const rs = gatherS(4 * P);
        commS = accumulation * (2 * ag + rs);
        exposedCommS = accumulation * (exposed(ag, forwardS, gatherS(2 * units.first)) + exposed(ag + rs, backwardS, gatherS(4 * units.last)));
        commBytesPerStep = ring * accumulation * (2 * 2 * P + 4 * P);
      }
    }
    const optimizerS = (OPTIMIZER_BYTES_PER_PARAM * (sharded ? shard : P)) / (spec.hbmGBps * 1e9);
    const stepS = computeS + exposedCommS + optimizerS;
    const tokensPerSecPerGpu = (accumulation * microBatch * T) / stepS;
    const mfu = (tokensPerSecPerGpu * fpt) / peak;
    return {
      sharding,
      fits: memory.total <= capacity,
      microBatch,
      accumulation,
      maxMicroBatch,
      memory,
      activationsPerMicroBatch: { checkpointing: microBatch * actPerSeq(true), noCheckpointing: microBatch * actPerSeq(false) },
      commBytesPerStep,
      time: { computeS, commS, exposedCommS, optimizerS, stepS },
      tokensPerSecPerGpu,
      mfu,
      hfu: mfu * recompute,
    };
  });

  const sequencesPerGpu = r.sequencesPerGpu;
  return {
    model: { preset: r.preset, config, parameters: P, flopsPerToken: fpt },
    gpu: spec,
    gpus: n,
    gpusPerNode: r.gpusPerNode,
    nodes: Math.ceil(n / r.gpusPerNode),
    seqLen: T,
    checkpointing: r.checkpointing,
    computeFraction: r.fraction,
    collective,
    requestedGlobalBatchTokens: r.requestedTokens,
    sequencesPerGpu,
    globalBatchTokens: sequencesPerGpu === null ? null : sequencesPerGpu * T * n,
    modes,
  };
}

const gib = (bytes: number): string => (bytes / GIB).toFixed(2);
const grouped = (v: number): string => Math.round(v).toLocaleString('en-US');

/** The plan as a compact table, one column per sharding mode, for `pajama plan`. */
export function formatPlan(plan: ClusterPlan): string {
  const { model, gpu } = plan;
  const name = model.preset ?? `a ${model.config.nLayers}-layer, d ${model.config.dModel} model`;
  const lines: string[] = [];
  lines.push(`${name}: ${(model.parameters / 1e9).toFixed(2)} B parameters, ${(model.flopsPerToken / 1e9).toFixed(1)} GFLOP per token at sequence ${plan.seqLen}`);
  const link = plan.collective === null ? 'no collectives (one GPU)' : `collectives over ${plan.collective.link === 'nvlink' ? 'NVLink' : 'the network'} at ${plan.collective.GBps} GB/s per GPU`;
  lines.push(
    `${plan.gpus} x ${gpu.description} (${plan.nodes} node${plan.nodes > 1 ? 's' : ''}, ${plan.gpusPerNode} GPUs per node): ${gpu.bf16Tflops} TFLOP/s bf16 at ${plan.computeFraction} achieved, ${gpu.memoryGiB} GiB; ${link}`,
  );
  if (plan.sequencesPerGpu !== null && plan.globalBatchTokens !== null) {
    const asked = plan.requestedGlobalBatchTokens !== plan.globalBatchTokens ? ` (asked ${grouped(plan.requestedGlobalBatchTokens ?? 0)})` : '';
    lines.push(`global batch ${grouped(plan.globalBatchTokens)} tokens${asked}: ${plan.sequencesPerGpu} sequences of ${plan.seqLen} per GPU; activation checkpointing ${plan.checkpointing ? 'on' : 'off'}`);
  } else {
    lines.push(`global batch: one micro-batch per GPU (the largest that fits); activation checkpointing ${plan.checkpointing ? 'on' : 'off'}`);
  }
  const perSeq = plan.modes[0].activationsPerMicroBatch;
  const b = plan.modes[0].microBatch;
  lines.push(`activations per sequence: ${gib(perSeq.checkpointing / b)} GiB with checkpointing, ${gib(perSeq.noCheckpointing / b)} GiB without`);
  lines.push('');
  const rows: [string, (m: ModePlan) => string][] = [
    ['f32 master weights, GiB', (m) => gib(m.memory.masterWeights)],
    ['bf16 compute weights, GiB', (m) => gib(m.memory.computeWeights)],
    ['f32 gradients, GiB', (m) => gib(m.memory.gradients)],
    ['AdamW m and v, GiB', (m) => gib(m.memory.adamMoments)],
    ['activations, GiB', (m) => gib(m.memory.activations)],
    ['communication buffers, GiB', (m) => gib(m.memory.commBuffers)],
    ['workspace + reserve, GiB', (m) => gib(m.memory.workspace + m.memory.reserve)],
    [`total, GiB (of ${gpu.memoryGiB})`, (m) => gib(m.memory.total)],
    ['fits', (m) => (m.fits ? 'yes' : 'no')],
    ['micro-batch x accumulation', (m) => `${m.microBatch} x ${m.accumulation}`],
    ['largest micro-batch that fits', (m) => String(m.maxMicroBatch)],
    ['compute, s', (m) => m.time.computeS.toFixed(3)],
    ['communication (exposed), s', (m) => `${m.time.commS.toFixed(3)} (${m.time.exposedCommS.toFixed(3)})`],
    ['optimizer step, s', (m) => m.time.optimizerS.toFixed(3)],
    ['step, s', (m) => m.time.stepS.toFixed(3)],
    ['tokens/s per GPU', (m) => grouped(m.tokensPerSecPerGpu)],
    ['MFU', (m) => m.mfu.toFixed(4)],
    ['HFU (recompute counted)', (m) => m.hfu.toFixed(4)],
  ];
  const width = 16;
  lines.push(`${'sharding'.padEnd(32)}${plan.modes.map((m) => m.sharding.padEnd(width)).join('')}`.trimEnd());
  for (const [label, cell] of rows) lines.push(`${label.padEnd(32)}${plan.modes.map((m) => cell(m).padEnd(width)).join('')}`.trimEnd());
  return lines.join('\n');
}
