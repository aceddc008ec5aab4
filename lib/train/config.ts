// config.ts: the training configuration: a typed object (TrainConfig) described once by TRAIN_CONFIG_SCHEMA
// (core/config-schema.ts: each key's kind, range, default and doc), validated at the edge by that schema
// (unknown keys, wrong types and batch sizes that do not divide are errors naming the key), and the
// `--set key=value` overrides of the CLI. The "Defaults to" of TrainConfig's comments, DEFAULT_TRAIN_CONFIG
// and the README's table are checked against the schema by test/core/config-docs.test.ts.
import { invalidArg } from '../core/errors';
import * as schema from '../core/config-schema';
import { defaultsOf, resolveConfig, type CheckContext, type ConfigDialect, type ObjectField } from '../core/config-schema';
import type { DeviceSpec } from '../core/tensor';
import { PRESETS, mptConfig, type MptConfig } from '../model/config';
import { MIXTURE_MISSING, MIXTURE_PRESETS, isMixturePreset, normaliseWeights } from '../data/mixture';
import { ADAMW_OPTIONS_SCHEMA } from '../optim/adamw';
import { COSINE_OPTIONS_SCHEMA, PTWD_DEFAULT_VALUES } from '../optim/schedule';
import { DEFAULT_SYSTEM_PROMPT } from '../data/chat';
import { CHAT_OVERFLOW_RULES, type ChatOverflow } from '../data/chat-loader';

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
    /** Where the model trains: 'cpu', 'cuda' or 'cuda:N'. Defaults to 'cpu'. */
    device: DeviceSpec;
    /** Start from these weights (a checkpoint directory or a model.safetensors). Defaults to null (none). */
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
     * evaluated as one metric per source. Defaults to null (none).
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
    /** Instruction tuning on ShareGPT conversations (lib/data/chat.ts, chat-loader.ts); not with `train` or `manifest`. */
    chat: TrainChatConfig;
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
  dist: {
    /**
     * How the training state is split over data-parallel ranks: 'none' (DDP: every rank holds all weights,
     * gradients and optimizer moments, and gradients are all-reduced) or 'optimizer' (ZeRO-2, FSDP's
     * SHARD_GRAD_OP: gradients are reduce-scattered, each rank keeps the f32 master weights and AdamW moments
     * of its 1/N shard and updates it, and the updated compute weights are all-gathered) or 'full' (FSDP
     * FULL_SHARD: parameters sharded too; each block's weights are all-gathered before its forward and again
     * before its backward, its gradient reduce-scattered after). Defaults to 'none'.
     */
    sharding: TrainShardingMode;
    /** Size in MiB of each bucket of the gradient all-reduce (sharding 'none') or reduce-scatter ('optimizer', 'full'), run after the backward (no overlap on the CPU). Defaults to 25. */
    bucketMB: number;
    /**
     * A collective (gradient all-reduce, loss reduction, checkpoint barrier) that does not complete within this
     * many seconds ends every rank. Defaults to 60.
     */
    timeoutSeconds: number;
  };
}

/** data.chat: conversations for instruction tuning (`pajama sft`). */
export interface TrainChatConfig {
  /** ShareGPT files (a JSON array of {"conversations": [...]} or JSON Lines) to train on. Defaults to [] (not a chat run). */
  train: string[];
  /** A ShareGPT file of validation conversations. Defaults to null (none, or `validationFraction` of `train`). */
  validation: string | null;
  /** Share of the training conversations held out for validation when `validation` is null. Defaults to 0. */
  validationFraction: number;
  /** The system line of conversations without a system turn ('' for none). Defaults to Vicuna's (DEFAULT_SYSTEM_PROMPT). */
  system: string;
  /** A conversation longer than a row: 'split' at exchange boundaries, or 'truncate'. Defaults to 'split'. */
  overflow: ChatOverflow;
  /** Pack whole conversations greedily into each row (else one a row, padded). Defaults to true. */
  pack: boolean;
  /** 'gpt2', a tokenizer.json, or null: the tokenizer that model.init's checkpoint records. Defaults to null. */
  tokenizer: string | null;
}

/** The sharding modes the trainer runs. */
export const TRAIN_SHARDING_MODES = ['none', 'optimizer', 'full'] as const;
export type TrainShardingMode = (typeof TRAIN_SHARDING_MODES)[number];

/** The training config's dialect: `config: 'optimizer.lr' must be a positive number, got -1`. */
const TRAIN_DIALECT: ConfigDialect = {
  mismatch: (key, must, value) => `config: '${key || '(root)'}' must ${must}, got ${showValue(value)}`,
  unknownKey: (key, _parent, known) => `config: unknown key '${key}' (known here: ${known.join(', ')})`,
  notObject: (key, value) => `config: '${key || '(root)'}' must be an object, got ${JSON.stringify(value)}`,
  fail: (message) => `config: ${message}`,
};

/** A config value as the user wrote it; JSON.stringify would print Infinity and NaN (1e999 in JSON) as null. */
function showValue(value: unknown): string {
  if (typeof value === 'number' && !Number.isFinite(value)) return `${value} (not a finite number)`;
  return JSON.stringify(value) ?? String(value);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The model the config's model section names (mptConfig validates the preset and the overrides). */
function modelOf(model: TrainConfig['model']): MptConfig {
  return mptConfig(model.preset, model.overrides);
}

const boundariesWant = (stages: unknown) => `null or ${Array.isArray(stages) ? stages.length - 1 : NaN} positive step numbers`;

/**
 * The training config: every key's kind, range, default and meaning, stated once. DEFAULT_TRAIN_CONFIG, the
 * validation of resolveTrainConfig and the README's table all come from it.
 */
export const TRAIN_CONFIG_SCHEMA: ObjectField<TrainConfig> = schema.object<TrainConfig>(
  {
    model: schema.object(
      {
        preset: schema.string({ default: 'tiny', expected: 'a preset name', doc: `A model preset: ${Object.keys(PRESETS).join(', ')}.` }),
        overrides: schema.custom<Partial<MptConfig>>({
          typeName: 'object',
          freeForm: true,
          default: {},
          doc: 'Fields over the preset (dModel, nHeads, nLayers, vocabSize, maxSeqLen, ...); checked by mptConfig.',
          parse: (v, ctx) => (isPlainObject(v) ? { ...v } : ctx.mismatch('be an object', v)),
        }),
        precision: schema.oneOf(['fp32', 'bf16'], { default: 'bf16', expected: "'fp32' or 'bf16'", doc: "'fp32', or 'bf16' autocast (f32 master weights, bf16 compute copy)." }),
        checkpointEvery: schema.integer({ min: 0, default: 0, doc: 'Activation checkpointing: 0 off, 1 every block, k every k-th block.' }),
        device: schema.custom<DeviceSpec>({
          typeName: 'string',
          default: 'cpu',
          doc: "Where the model trains: 'cpu', 'cuda' or 'cuda:N' (checkpoints are the same on every device).",
          parse: (v, ctx) =>
            v === 'cpu' || v === 'cuda' || (typeof v === 'string' && /^cuda:[0-9]{1,4}$/.test(v))
              ? (v as DeviceSpec)
              : ctx.mismatch("be 'cpu', 'cuda' or 'cuda:N'", v),
        }),
        init: schema.nullable(schema.pathField({}), { default: null, expected: 'a path or null', doc: 'Start from these weights: a checkpoint directory or a model.safetensors.' }),
      },
      { doc: 'The model.', check: (model) => void modelOf(model) },
    ),
    batch: schema.object(
      {
        seqLen: schema.nullable(schema.integer({ min: 1 }), {
          default: null,
          defaultDoc: "the model's maxSeqLen",
          doc: 'Sequence length T; at most the model\'s maxSeqLen.',
          check: (seqLen, ctx) => {
            const max = modelOf(ctx.root.model as TrainConfig['model']).maxSeqLen;
            if (seqLen !== null && seqLen > max) ctx.fail(`'batch.seqLen' ${seqLen} exceeds the model's maxSeqLen ${max}`);
          },
        }),
        microBatchSize: schema.integer({ min: 1, default: 8, doc: 'Sequences per micro-batch.' }),
        globalBatchTokens: schema.nullable(schema.integer({ min: 1 }), {
          default: null,
          defaultDoc: 'one micro-batch',
          doc: 'Tokens per optimizer step: a multiple of microBatchSize x seqLen x ranks (the rest is accumulation).',
        }),
      },
      { doc: 'The batch.' },
    ),
    optimizer: schema.object(
      {
        lr: schema.number({ min: 0, minOpen: true, default: 6e-4, doc: 'Peak learning rate.' }),
        warmupSteps: schema.integer({ min: 0, default: COSINE_OPTIONS_SCHEMA.fields.warmupSteps.default, doc: 'Linear warmup steps; below `steps`.' }),
        minLrRatio: schema.number({ min: 0, max: 1, default: COSINE_OPTIONS_SCHEMA.fields.minLrRatio.default, doc: 'Final learning rate as a share of the peak (cosine decay).' }),
        beta1: schema.number({ min: 0, max: 1, maxOpen: true, default: ADAMW_OPTIONS_SCHEMA.fields.beta1.default, doc: "AdamW's first-moment decay." }),
        beta2: schema.number({ min: 0, max: 1, maxOpen: true, default: ADAMW_OPTIONS_SCHEMA.fields.beta2.default, doc: "AdamW's second-moment decay." }),
        eps: schema.number({ min: 0, minOpen: true, default: ADAMW_OPTIONS_SCHEMA.fields.eps.default, doc: "AdamW's epsilon." }),
        gradClip: schema.number({ min: 0, default: 1.0, doc: 'Clip the global gradient norm to this; 0 disables.' }),
        decayEmbeddings: schema.boolean({ default: true, doc: 'Decay the tied embedding too (it is a weight matrix).' }),
      },
      { doc: 'AdamW and the learning-rate schedule.' },
    ),
    weightDecay: schema.object(
      {
        mode: schema.oneOf(['ptwd', 'constant'], { default: 'ptwd', expected: "'ptwd' or 'constant'", doc: "'ptwd' (progressive, the paper's) or 'constant'." }),
        value: schema.number({ min: 0, default: 0.1, doc: "Constant mode's weight decay." }),
        stages: schema.array(schema.number({ min: 0 }), {
          minLength: 1,
          default: [...PTWD_DEFAULT_VALUES],
          expected: 'a non-empty array of non-negative numbers',
          doc: 'PTWD stage values.',
        }),
        boundaries: schema.nullable(schema.array(schema.integer({ min: 1 }), {}), {
          default: null,
          defaultDoc: 'equal thirds',
          expected: (w) => boundariesWant(w.stages),
          doc: 'PTWD steps where stages 2, 3, ... start: one fewer than `stages`, increasing, below `steps`.',
          check: (b, ctx) => {
            const stages = ctx.parent.stages as number[];
            if (b !== null && b.length !== stages.length - 1) ctx.mismatch(`be ${boundariesWant(stages)}`, b);
          },
        }),
        plateau: schema.boolean({ default: false, doc: 'Also move to the next stage when the loss plateaus (boundaries then cap each stage).' }),
      },
      { doc: 'Weight decay.' },
    ),
    steps: schema.integer({
      min: 2,
      default: 20000,
      doc: 'Optimizer steps.',
      check: (steps, ctx) => {
        const warmup = (ctx.root.optimizer as TrainConfig['optimizer']).warmupSteps;
        if (warmup >= steps) ctx.fail(`'optimizer.warmupSteps' ${warmup} must be below 'steps' ${steps} (warmup then cosine decay)`);
      },
    }),
    data: schema.object(
      {
        train: schema.array(schema.pathField({}), { default: [], expected: 'an array of shard paths', doc: 'Token shards, drawn in proportion to their size. Not with `manifest`.' }),
        validation: schema.record(schema.pathField({ expected: 'a shard path' }), {
          default: {},
          doc: 'Validation shards by source name. Not with `manifest`, which lists its own.',
        }),
        manifest: schema.nullable(schema.pathField({ nonEmpty: true }), {
          default: null,
          expected: 'a manifest path or null',
          doc: 'A data manifest: training shards by source and one validation shard per source.',
        }),
        mixture: schema.custom<string | Record<string, number> | null>({
          typeName: 'preset | { [source]: weight } | null',
          default: null,
          defaultDoc: 'null (by training tokens)',
          doc: `How much of each manifest source to draw: a preset (${Object.keys(MIXTURE_PRESETS).join(', ')}) or weights by source. Needs \`manifest\`.`,
          parse: parseMixture,
        }),
        mixtureMissing: schema.oneOf(MIXTURE_MISSING, {
          default: 'error',
          doc: "When the mixture names sources the manifest lacks: 'error', or 'renormalize' over the sources present.",
        }),
        chat: schema.object<TrainChatConfig>(
          {
            train: schema.array(schema.pathField({}), {
              default: [],
              expected: 'an array of ShareGPT file paths',
              doc: 'ShareGPT conversation files (JSON array or JSON Lines) to instruction-tune on (`pajama sft`). Not with `train` or `manifest`.',
            }),
            validation: schema.nullable(schema.pathField({ nonEmpty: true }), {
              default: null,
              expected: 'a ShareGPT file path or null',
              doc: 'A ShareGPT file of validation conversations, evaluated as source `chat`.',
            }),
            validationFraction: schema.number({ min: 0, max: 1, maxOpen: true, default: 0, doc: 'Share of the `train` conversations held out for validation (a fixed split) when `validation` is null.' }),
            system: schema.string({ default: DEFAULT_SYSTEM_PROMPT, defaultDoc: "Vicuna's", doc: "The system line of conversations without a system turn ('' for none)." }),
            overflow: schema.oneOf(CHAT_OVERFLOW_RULES, {
              default: 'split',
              expected: "'split' or 'truncate'",
              doc: "A conversation longer than seqLen + 1 tokens: 'split' at exchange boundaries (each piece with the system line), or 'truncate'.",
            }),
            pack: schema.boolean({ default: true, doc: 'Pack whole conversations greedily into each sequence (the rest EOS padding, not trained); false: one a sequence.' }),
            tokenizer: schema.nullable(schema.pathField({ nonEmpty: true, literals: ['gpt2'] }), {
              default: null,
              defaultDoc: "null (model.init's)",
              expected: "'gpt2', a tokenizer.json path or null",
              doc: "The tokenizer of the template: 'gpt2' or a tokenizer.json; null takes the one model.init's checkpoint records.",
            }),
          },
          { doc: 'Instruction tuning.' },
        ),
      },
      { doc: 'The training data.', check: checkDataSources },
    ),
    eval: schema.object(
      {
        every: schema.integer({ min: 0, default: 0, doc: 'Evaluate every this many steps (0: only at the end).' }),
        batches: schema.integer({ min: 1, default: 4, doc: 'Validation batches per source.' }),
      },
      { doc: 'Evaluation.' },
    ),
    checkpoint: schema.object(
      {
        every: schema.integer({ min: 0, default: 0, doc: 'Save every this many steps (0: only at the end).' }),
        keepLast: schema.integer({ min: 1, default: 2, doc: 'Checkpoints kept.' }),
      },
      { doc: 'Checkpoints.' },
    ),
    runDir: schema.pathField({ nonEmpty: true, default: 'runs/default', expected: 'a directory path', doc: 'Run directory: checkpoints, metrics.jsonl, the lock.' }),
    seed: schema.integer({ min: 0, default: 1234, doc: 'Seed of the initialisation and of the data order.' }),
    threads: schema.integer({ min: 0, default: 0, doc: 'Native threads (0: OMP_NUM_THREADS or all cores).' }),
    peakFlops: schema.nullable(schema.number({ min: 0, minOpen: true }), {
      default: null,
      defaultDoc: 'null (measured)',
      doc: 'Peak FLOP/s for MFU; null measures a GEMM of the training dtype at start.',
    }),
    logEvery: schema.integer({ min: 1, default: 1, doc: 'Log a step line every this many steps.' }),
    divergence: schema.object(
      {
        maxConsecutiveSkips: schema.integer({
          min: 0,
          default: 5,
          expected: 'a non-negative integer (0: never stop)',
          doc: 'Stop with ERR_PAJAMA_DIVERGED after this many steps in a row skipped for non-finite values (0: never).',
        }),
      },
      { doc: 'Divergence.' },
    ),
    dist: schema.object(
      {
        sharding: schema.oneOf(TRAIN_SHARDING_MODES, {
          default: 'none',
          expected: `${TRAIN_SHARDING_MODES.slice(0, -1).map((m) => `'${m}'`).join(', ')} or '${TRAIN_SHARDING_MODES[TRAIN_SHARDING_MODES.length - 1]}'`,
          doc: "How training state is split over ranks: 'none' (DDP: every rank holds everything; gradients are all-reduced), 'optimizer' (ZeRO-2: each rank keeps the master weights and AdamW moments of its 1/N shard; gradients are reduce-scattered, weights all-gathered) or 'full' (FSDP FULL_SHARD: weights sharded too, each block gathered before its forward and its backward).",
        }),
        bucketMB: schema.number({ min: 0, minOpen: true, default: 25, doc: "Size in MiB of each bucket of the gradient all-reduce (sharding 'none') or reduce-scatter ('optimizer', 'full'), after the backward (no overlap on the CPU)." }),
        timeoutSeconds: schema.number({
          min: 0,
          minOpen: true,
          default: 60,
          doc: 'A collective that does not complete in this many seconds ends every rank (a rank died or hangs).',
        }),
      },
      { doc: 'Data-parallel training over MPI ranks (mpirun -np N pajama train).' },
    ),
  },
  {
    doc: 'The training config.',
    check: (c) => {
      checkPtwdFitsSteps(c);
      const chatValidation = c.data.chat.validation !== null || c.data.chat.validationFraction > 0;
      if (c.eval.every > 0 && c.data.manifest === null && Object.keys(c.data.validation).length === 0 && !chatValidation) {
        throw invalidArg(`config: 'eval.every' is ${c.eval.every} but there is no validation data ('data.validation' is empty); set 'eval.every' to 0 or name validation shards`);
      }
    },
  },
);

/** Every default, from the schema. */
export const DEFAULT_TRAIN_CONFIG: TrainConfig = defaultsOf(TRAIN_CONFIG_SCHEMA);

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A complete, validated config from a partial JSON object. */
export function resolveTrainConfig(input: unknown = {}): TrainConfig {
  return resolveConfig(TRAIN_CONFIG_SCHEMA, input, { dialect: TRAIN_DIALECT });
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

/** data.mixture: a preset name, a non-empty object of weights by source name, or null. */
function parseMixture(m: unknown, ctx: CheckContext): string | Record<string, number> | null {
  if (typeof m === 'string') {
    if (!isMixturePreset(m)) ctx.fail(`'data.mixture' '${m}' is not a preset (presets: ${Object.keys(MIXTURE_PRESETS).join(', ')})`);
    return m;
  }
  if (isPlainObject(m)) {
    const names = Object.keys(m);
    if (names.length === 0) ctx.mismatch('be a preset name or an object of weights by source name', m);
    normaliseWeights(Object.values(m) as number[], names, "config: 'data.mixture'");
    return { ...(m as Record<string, number>) };
  }
  if (m !== null) ctx.mismatch('be a preset name, an object of weights by source name, or null', m);
  return null;
}

/** The data keys that contradict each other. */
function checkDataSources(d: TrainConfig['data']): void {
  const chat = d.chat;
  if (chat.train.length > 0) {
    const other = d.manifest !== null ? 'data.manifest' : d.train.length > 0 ? 'data.train' : Object.keys(d.validation).length > 0 ? 'data.validation' : null;
    if (other !== null) throw invalidArg(`config: 'data.chat.train' (instruction tuning) and '${other}' (token shards) both name data; give one`);
  } else if (chat.validation !== null || chat.validationFraction > 0) {
    throw invalidArg(`config: 'data.chat.${chat.validation !== null ? 'validation' : 'validationFraction'}' needs 'data.chat.train' (the conversations to train on)`);
  }
  if (chat.validation !== null && chat.validationFraction > 0) {
    throw invalidArg(`config: 'data.chat.validation' and 'data.chat.validationFraction' both give validation conversations; give one`);
  }
  if (d.manifest !== null) {
    if (d.train.length > 0) {
      throw invalidArg(`config: 'data.train' and 'data.manifest' both name training shards; give one (the manifest lists shards by source)`);
    }
    if (Object.keys(d.validation).length > 0) {
      throw invalidArg(`config: 'data.validation' and 'data.manifest' both name validation shards; give one (the manifest lists one per source)`);
    }
  } else if (d.mixture !== null) {
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
