// config.ts: the training configuration: a typed object with documented defaults, validated at the edge
// (unknown keys, wrong types and batch sizes that do not divide are errors naming the key), and the
// `--set key=value` overrides of the CLI.
import { invalidArg } from '../core/errors';
import { mptConfig, type MptConfig } from '../model/config';
import { MIXTURE_MISSING, MIXTURE_PRESETS, isMixturePreset, normaliseWeights } from '../data/mixture';

export interface TrainConfig {
  model: {
    /** A preset (tiny, bench-45m, mpt-125m, mpt-1b, mpt-7b). Defaults to 'tiny'. */
    preset: string;
    /** Fields overriding the preset (dModel, nHeads, nLayers, vocabSize, ...). */
    overrides: Partial<MptConfig>;
    /** 'fp32' or 'bf16' autocast. Defaults to 'bf16'. */
    precision: 'fp32' | 'bf16';
    /** Activation checkpointing: 0 off, 1 every block, k every k-th block. Defaults to 0. */
    checkpointEvery: number;
    /** Start from these weights (a checkpoint directory or a model.safetensors). Defaults to none. */
    init: string | null;
  };
  batch: {
    /** Sequence length T. Defaults to the model's maxSeqLen. */
    seqLen: number | null;
    /** Sequences per micro-batch. Defaults to 8. */
    microBatchSize: number;
    /** Global batch in tokens; must be a multiple of microBatchSize * seqLen * worldSize. Defaults to one micro-batch. */
    globalBatchTokens: number | null;
  };
  optimizer: {
    /** Peak learning rate. Defaults to 6e-4. */
    lr: number;
    /** Linear warmup steps; must be below `steps`. Defaults to 2000. */
    warmupSteps: number;
    /** Final learning rate as a share of the peak. Defaults to 0.1. */
    minLrRatio: number;
    beta1: number;
    beta2: number;
    eps: number;
    /** Clip the global gradient norm to this. Defaults to 1.0; 0 disables. */
    gradClip: number;
    /** Decay the tied embedding too (it is a weight matrix). Defaults to true. */
    decayEmbeddings: boolean;
  };
  weightDecay: {
    /** 'ptwd' (progressive, the paper's) or 'constant'. Defaults to 'ptwd'. */
    mode: 'ptwd' | 'constant';
    /** Constant mode's value. Defaults to 0.1. */
    value: number;
    /** PTWD stage values. Defaults to [0, 0.5, 0.1]. */
    stages: number[];
    /** PTWD steps where stages 2, 3, ... start. Defaults to equal thirds. */
    boundaries: number[] | null;
    /** Move to the next stage when the loss plateaus (boundaries then cap each stage). Defaults to false. */
    plateau: boolean;
  };
  /** Optimizer steps. Defaults to 20000. */
  steps: number;
  data: {
    /** Token shards to train on, drawn in proportion to their size. Not with `manifest`. */
    train: string[];
    /** Validation shards by source name. Not with `manifest`, which lists its own. */
    validation: Record<string, string>;
    /**
     * A data manifest (lib/data/manifest.ts): training shards by source, and each source's validation shard,
     * evaluated as one metric per source. Defaults to none.
     */
    manifest: string | null;
    /**
     * How much of each manifest source to draw: a preset of lib/data/mixture.ts ('slimpajama', 'redpajama',
     * 'llama-1', 'refinedweb', 'slimpajama-dc-7b') or weights by source name. Defaults to null: each source
     * in proportion to its training tokens. Needs `manifest`.
     */
    mixture: string | Record<string, number> | null;
    /**
     * When the mixture names sources the manifest lacks: 'error', or 'renormalize' (draw from the sources
     * present in proportion to their weights; the plan prints the effective shares). Defaults to 'error'.
     */
    mixtureMissing: 'error' | 'renormalize';
  };
  eval: {
    /** Evaluate every this many steps (0: only at the end). Defaults to 0. */
    every: number;
    /** Batches per source. Defaults to 4. */
    batches: number;
  };
  checkpoint: {
    /** Save every this many steps (0: only at the end). Defaults to 0. */
    every: number;
    /** Checkpoints kept. Defaults to 2. */
    keepLast: number;
  };
  /** Run directory (checkpoints, metrics.jsonl). Defaults to 'runs/default'. */
  runDir: string;
  /** Seed of the initialisation and of the data order. Defaults to 1234. */
  seed: number;
  /** Native threads (0: OMP_NUM_THREADS or all cores). Defaults to 0. */
  threads: number;
  /** Peak FLOP/s for MFU; null measures a GEMM of the training dtype at start. Defaults to null. */
  peakFlops: number | null;
  /** Log a step line every this many steps. Defaults to 1. */
  logEvery: number;
  divergence: {
    /**
     * Stop the run with ERR_PAJAMA_DIVERGED after this many consecutive steps skipped for a non-finite loss
     * or gradients (0: never stop). Defaults to 5. A skipped step leaves the weights as they were, so an
     * isolated spike costs one batch; several in a row mean the weights or the learning rate are bad and
     * every further step would be wasted. Megatron-LM's --check-for-nan-in-loss-and-grad stops at the first
     * non-finite loss; mixed-precision loss scalers (torch.amp, DeepSpeed) skip steps while they back off
     * and tolerate a few in a row; 5 keeps the tolerance of the latter and the certainty of the former.
     */
    maxConsecutiveSkips: number;
  };
}

export const DEFAULT_TRAIN_CONFIG: TrainConfig = {
  model: { preset: 'tiny', overrides: {}, precision: 'bf16', checkpointEvery: 0, init: null },
  batch: { seqLen: null, microBatchSize: 8, globalBatchTokens: null },
  optimizer: { lr: 6e-4, warmupSteps: 2000, minLrRatio: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, gradClip: 1.0, decayEmbeddings: true },
  weightDecay: { mode: 'ptwd', value: 0.1, stages: [0, 0.5, 0.1], boundaries: null, plateau: false },
  steps: 20000,
  data: { train: [], validation: {}, manifest: null, mixture: null, mixtureMissing: 'error' },
  eval: { every: 0, batches: 4 },
  checkpoint: { every: 0, keepLast: 2 },
  runDir: 'runs/default',
  seed: 1234,
  threads: 0,
  peakFlops: null,
  logEvery: 1,
  divergence: { maxConsecutiveSkips: 5 },
};

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Merges `input` over the defaults, key by key, rejecting keys the defaults do not have and values whose
 * type differs from the default's (null defaults accept null or the documented type; free-form maps
 * are model.overrides and data.validation).
 */
function merge(defaults: unknown, input: unknown, path: string): unknown {
  if (input === undefined) return structuredClone(defaults);
  const freeForm = path === 'model.overrides' || path === 'data.validation';
  if (freeForm) {
    if (!isPlainObject(input)) throw invalidArg(`config: '${path}' must be an object, got ${JSON.stringify(input)}`);
    return { ...input };
  }
  if (isPlainObject(defaults)) {
    if (!isPlainObject(input)) throw invalidArg(`config: '${path || '(root)'}' must be an object, got ${JSON.stringify(input)}`);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(input)) {
      if (!Object.prototype.hasOwnProperty.call(defaults, k)) { // not `in`: 'constructor', '__proto__' are inherited
        const where = path ? `${path}.${k}` : k;
        throw invalidArg(`config: unknown key '${where}' (known here: ${Object.keys(defaults).join(', ')})`);
      }
    }
    for (const [k, d] of Object.entries(defaults)) out[k] = merge(d, input[k], path ? `${path}.${k}` : k);
    return out;
  }
  return input;
}

/** A config value as the user wrote it; JSON.stringify would print Infinity and NaN (1e999 in JSON) as null. */
function showValue(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return `${value} (not a finite number)`;
  return JSON.stringify(value) ?? String(value);
}

function expect(cond: boolean, key: string, what: string, value: unknown): void {
  if (!cond) throw invalidArg(`config: '${key}' must be ${what}, got ${showValue(value)}`);
}

const isInt = (v: unknown, min = 0) => typeof v === 'number' && Number.isInteger(v) && v >= min;
const isNum = (v: unknown) => typeof v === 'number' && Number.isFinite(v);

/** A complete, validated config from a partial JSON object. */
export function resolveTrainConfig(input: unknown = {}): TrainConfig {
  const c = merge(DEFAULT_TRAIN_CONFIG, input, '') as TrainConfig;
  expect(typeof c.model.preset === 'string', 'model.preset', 'a preset name', c.model.preset);
  expect(c.model.precision === 'fp32' || c.model.precision === 'bf16', 'model.precision', "'fp32' or 'bf16'", c.model.precision);
  expect(isInt(c.model.checkpointEvery), 'model.checkpointEvery', 'a non-negative integer', c.model.checkpointEvery);
  expect(c.model.init === null || typeof c.model.init === 'string', 'model.init', 'a path or null', c.model.init);
  const model = mptConfig(c.model.preset, c.model.overrides); // validates the model itself
  expect(c.batch.seqLen === null || isInt(c.batch.seqLen, 1), 'batch.seqLen', 'a positive integer or null', c.batch.seqLen);
  if (c.batch.seqLen !== null && c.batch.seqLen > model.maxSeqLen) {
    throw invalidArg(`config: 'batch.seqLen' ${c.batch.seqLen} exceeds the model's maxSeqLen ${model.maxSeqLen}`);
  }
  expect(isInt(c.batch.microBatchSize, 1), 'batch.microBatchSize', 'a positive integer', c.batch.microBatchSize);
  expect(c.batch.globalBatchTokens === null || isInt(c.batch.globalBatchTokens, 1), 'batch.globalBatchTokens', 'a positive integer or null', c.batch.globalBatchTokens);
  const o = c.optimizer;
  expect(isNum(o.lr) && o.lr > 0, 'optimizer.lr', 'a positive number', o.lr);
  expect(isInt(o.warmupSteps), 'optimizer.warmupSteps', 'a non-negative integer', o.warmupSteps);
  expect(isNum(o.minLrRatio) && o.minLrRatio >= 0 && o.minLrRatio <= 1, 'optimizer.minLrRatio', 'a number in [0, 1]', o.minLrRatio);
  expect(isNum(o.beta1) && o.beta1 >= 0 && o.beta1 < 1, 'optimizer.beta1', 'a number in [0, 1)', o.beta1);
  expect(isNum(o.beta2) && o.beta2 >= 0 && o.beta2 < 1, 'optimizer.beta2', 'a number in [0, 1)', o.beta2);
  expect(isNum(o.eps) && o.eps > 0, 'optimizer.eps', 'a positive number', o.eps);
  expect(isNum(o.gradClip) && o.gradClip >= 0, 'optimizer.gradClip', 'a non-negative number', o.gradClip);
  expect(typeof o.decayEmbeddings === 'boolean', 'optimizer.decayEmbeddings', 'a boolean', o.decayEmbeddings);
  const w = c.weightDecay;
  expect(w.mode === 'ptwd' || w.mode === 'constant', 'weightDecay.mode', "'ptwd' or 'constant'", w.mode);
  expect(isNum(w.value) && w.value >= 0, 'weightDecay.value', 'a non-negative number', w.value);
  expect(Array.isArray(w.stages) && w.stages.length >= 1 && w.stages.every((v) => isNum(v) && v >= 0), 'weightDecay.stages', 'a non-empty array of non-negative numbers', w.stages);
  expect(
    w.boundaries === null || (Array.isArray(w.boundaries) && w.boundaries.length === w.stages.length - 1 && w.boundaries.every((b) => isInt(b, 1))),
    'weightDecay.boundaries',
    `null or ${w.stages.length - 1} positive step numbers`,
    w.boundaries,
  );
  expect(typeof w.plateau === 'boolean', 'weightDecay.plateau', 'a boolean', w.plateau);
  expect(isInt(c.steps, 2), 'steps', 'an integer >= 2', c.steps);
  if (o.warmupSteps >= c.steps) {
    throw invalidArg(`config: 'optimizer.warmupSteps' ${o.warmupSteps} must be below 'steps' ${c.steps} (warmup then cosine decay)`);
  }
  expect(Array.isArray(c.data.train) && c.data.train.every((s) => typeof s === 'string'), 'data.train', 'an array of shard paths', c.data.train);
  for (const [k, v] of Object.entries(c.data.validation)) expect(typeof v === 'string', `data.validation.${k}`, 'a shard path', v);
  checkDataSources(c.data);
  expect(isInt(c.eval.every), 'eval.every', 'a non-negative integer', c.eval.every);
  expect(isInt(c.eval.batches, 1), 'eval.batches', 'a positive integer', c.eval.batches);
  expect(isInt(c.checkpoint.every), 'checkpoint.every', 'a non-negative integer', c.checkpoint.every);
  expect(isInt(c.checkpoint.keepLast, 1), 'checkpoint.keepLast', 'a positive integer', c.checkpoint.keepLast);
  expect(typeof c.runDir === 'string' && c.runDir.length > 0, 'runDir', 'a directory path', c.runDir);
  expect(isInt(c.seed), 'seed', 'a non-negative integer', c.seed);
  expect(isInt(c.threads), 'threads', 'a non-negative integer', c.threads);
  expect(c.peakFlops === null || (isNum(c.peakFlops) && c.peakFlops > 0), 'peakFlops', 'a positive number or null', c.peakFlops);
  expect(isInt(c.logEvery, 1), 'logEvery', 'a positive integer', c.logEvery);
  expect(isInt(c.divergence.maxConsecutiveSkips), 'divergence.maxConsecutiveSkips', 'a non-negative integer (0: never stop)', c.divergence.maxConsecutiveSkips);
  checkPtwdFitsSteps(c);
  if (c.eval.every > 0 && c.data.manifest === null && Object.keys(c.data.validation).length === 0) {
    throw invalidArg(`config: 'eval.every' is ${c.eval.every} but there is no validation data ('data.validation' is empty); set 'eval.every' to 0 or name validation shards`);
  }
  return c;
}

/** The PTWD stages must each get at least one step: steps >= stages, boundaries below steps. */
function checkPtwdFitsSteps(c: TrainConfig): void {
  const w = c.weightDecay;
  if (w.mode !== 'ptwd') return;
  if (w.boundaries === null) {
    if (c.steps < w.stages.length) {
      throw invalidArg(`config: 'steps' ${c.steps} is fewer than the ${w.stages.length} PTWD stages of 'weightDecay.stages' (each stage needs a step); train longer or use fewer stages`);
    }
    return;
  }
  w.boundaries.forEach((b, k) => {
    if (k > 0 && b <= w.boundaries![k - 1]) {
      throw invalidArg(`config: 'weightDecay.boundaries[${k}]' ${b} must be above 'weightDecay.boundaries[${k - 1}]' ${w.boundaries![k - 1]}`);
    }
    if (b >= c.steps) throw invalidArg(`config: 'weightDecay.boundaries[${k}]' ${b} must be below 'steps' ${c.steps}, or stage ${k + 1} never runs`);
  });
}

/** The data keys' types, and the combinations that contradict each other. */
function checkDataSources(d: TrainConfig['data']): void {
  expect(d.manifest === null || (typeof d.manifest === 'string' && d.manifest.length > 0), 'data.manifest', 'a manifest path or null', d.manifest);
  const m = d.mixture;
  if (typeof m === 'string') {
    if (!isMixturePreset(m)) throw invalidArg(`config: 'data.mixture' '${m}' is not a preset (presets: ${Object.keys(MIXTURE_PRESETS).join(', ')})`);
  } else if (isPlainObject(m)) {
    const names = Object.keys(m);
    expect(names.length > 0, 'data.mixture', 'a preset name or an object of weights by source name', m);
    normaliseWeights(Object.values(m), names, "config: 'data.mixture'");
  } else {
    expect(m === null, 'data.mixture', 'a preset name, an object of weights by source name, or null', m);
  }
  expect(MIXTURE_MISSING.includes(d.mixtureMissing), 'data.mixtureMissing', `one of ${MIXTURE_MISSING.join(', ')}`, d.mixtureMissing);
  if (d.manifest !== null) {
    if (d.train.length > 0) {
      throw invalidArg(`config: 'data.train' and 'data.manifest' both name training shards; give one (the manifest lists shards by source)`);
    }
    if (Object.keys(d.validation).length > 0) {
      throw invalidArg(`config: 'data.validation' and 'data.manifest' both name validation shards; give one (the manifest lists one per source)`);
    }
  } else if (m !== null) {
    throw invalidArg(`config: 'data.mixture' weighs sources by name and needs 'data.manifest'; 'data.train' is a plain list of shards`);
  }
}

export interface BatchPlan {
  seqLen: number;
  microBatchSize: number;
  /** Micro-batches accumulated per optimizer step, per rank. */
  accumulationSteps: number;
  worldSize: number;
  /** Tokens per optimizer step over all ranks = microBatchSize * seqLen * accumulationSteps * worldSize. */
  globalBatchTokens: number;
}

/** Resolves the global batch (in tokens) into micro-batch x sequence length x accumulation steps. */
export function planBatch(config: TrainConfig, model: MptConfig, worldSize = 1): BatchPlan {
  const seqLen = config.batch.seqLen ?? model.maxSeqLen;
  const micro = config.batch.microBatchSize;
  const perStep = micro * seqLen * worldSize;
  const global = config.batch.globalBatchTokens ?? perStep;
  if (global % perStep !== 0) {
    throw invalidArg(
      `config: 'batch.globalBatchTokens' ${global} is not a multiple of microBatchSize ${micro} x seqLen ${seqLen} x ranks ${worldSize} = ${perStep} tokens`,
    );
  }
  return { seqLen, microBatchSize: micro, accumulationSteps: global / perStep, worldSize, globalBatchTokens: global };
}

/**
 * Applies `key=value` overrides (`optimizer.lr=3e-4`, `model.overrides.nLayers=4`, `data.train=["a.bin"]`).
 * Values are parsed as JSON when they parse, else taken as strings.
 */
export function applyOverrides(input: Record<string, unknown>, sets: string[]): Record<string, unknown> {
  const out = structuredClone(input) as Record<string, Json>;
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw invalidArg(`--set '${s}': expected key=value`);
    const key = s.slice(0, eq);
    const raw = s.slice(eq + 1);
    let value: Json;
    try {
      value = JSON.parse(raw) as Json;
    } catch {
      value = raw;
    }
    const parts = key.split('.');
    let node: Record<string, Json> = out;
    for (const p of parts.slice(0, -1)) {
      if (node[p] === undefined) node[p] = {};
      if (!isPlainObject(node[p])) throw invalidArg(`--set '${s}': '${p}' is not an object in the config`);
      node = node[p] as Record<string, Json>;
    }
    node[parts[parts.length - 1]] = value;
  }
  return out;
}
