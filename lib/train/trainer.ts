// trainer.ts: the training loop of the paper's recipe over the native core: gradient accumulation to a
// global batch given in tokens, bf16 autocast, clipping at 1.0, AdamW with warmup + cosine to 10%, PTWD,
// per-source validation loss, metrics (tokens/s, MFU as llm-foundry counts it), HF-compatible checkpoints
// and exact resume. Every native op runs on the worker thread, so the event loop stays free during a step.
//
// Data: either data.train (a list of shards, drawn in proportion to size) with data.validation, or
// data.manifest (lib/data/manifest.ts) with data.mixture: the loader then draws per source by the mixture's
// weights (lib/data/mixture.ts), every source with a validation shard is evaluated, the expected epochs per
// source are logged at start (a 'plan' record and event, a process warning for sources that repeat more than
// REPEAT_WARNING_EPOCHS times), and every step reports tokens drawn and epochs per source.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ops } from '../core/ops';
import { Tensor } from '../core/tensor';
import { setThreads } from '../core/backend';
import { invalidArg } from '../core/errors';
import { MptModel } from '../model/mpt';
import { flopsPerToken, mptConfig, type MptConfig } from '../model/config';
import { AdamW, clipGradNormAsync, cosineWithWarmup, PtwdController, type PtwdControllerState } from '../optim/index';
import { openShard } from '../data/shard';
import { TokenLoader, evalBatches, evalBatchCount, type MixtureSource, type TokenLoaderMixtureState, type TokenLoaderState } from '../data/loader';
import { readDataManifest } from '../data/manifest';
import { resolveMixture, type MixturePlan } from '../data/mixture';
import { latestCheckpoint, loadCheckpoint, loadModelWeights, mptHfConfig, saveCheckpoint } from './checkpoint';
import { planBatch, resolveTrainConfig, type BatchPlan, type TrainConfig } from './config';

export interface StepMetrics {
  /** Optimizer steps completed (1 after the first). */
  step: number;
  /** Mean training loss of the step's global batch. */
  loss: number;
  lr: number;
  weightDecay: number;
  ptwdStage: number;
  /** Global gradient norm before clipping. */
  gradNorm: number;
  /** True when the gradients held NaN/Inf and the update was skipped. */
  skipped: boolean;
  tokens: number;
  tokensPerSec: number;
  /** Model FLOPs utilisation against peakFlops. */
  mfu: number;
  stepSec: number;
  elapsedSec: number;
  /** Per training source (the manifest's, or 'all' for data.train): tokens trained on so far and epochs. */
  sources: Record<string, { tokensDrawn: number; epochs: number }>;
}

/** What the run is expected to draw from each source, reported at start. */
export interface DataPlan extends MixturePlan {
  /** The manifest the data comes from (absolute), or null for data.train. */
  manifest: string | null;
  /** The mixture preset, or null (weights given in the config, or proportional to size). */
  preset: string | null;
  /** Where the preset's proportions come from, or null. */
  citation: string | null;
}

export interface EvalMetrics {
  step: number;
  /** Mean validation loss per source. */
  losses: Record<string, number>;
}

export interface TrainerEvents {
  step: [StepMetrics];
  eval: [EvalMetrics];
  checkpoint: [{ step: number; dir: string }];
  /** At the start of fit(). */
  plan: [DataPlan];
}

interface TrainerState {
  step: number;
  elapsedSec: number;
  tokens: number;
  loader: TokenLoaderState | TokenLoaderMixtureState;
  ptwd: PtwdControllerState;
  optimizerStep: number;
  seed: number;
  [k: string]: unknown;
}

/** Peak FLOP/s of a square GEMM of the training dtype, measured now (the denominator of MFU). */
export async function measurePeakFlops(dtype: 'f32' | 'bf16', size = 2048): Promise<number> {
  const a = Tensor.zeros(dtype, [size, size]);
  const b = Tensor.zeros(dtype, [size, size]);
  const c = Tensor.zeros(dtype, [size, size]);
  a.fill(0.5);
  b.fill(0.25);
  try {
    await ops.matmulForwardAsync(c, a, b);
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      await ops.matmulForwardAsync(c, a, b);
      best = Math.min(best, performance.now() - t0);
    }
    return (2 * size ** 3) / (best / 1e3);
  } finally {
    for (const t of [a, b, c]) t.dispose();
  }
}

/** Where the training and validation shards come from, per the config's data keys. */
interface TrainingData {
  /** The loader's sources, or null to use data.train as a list of shards. */
  sources: MixtureSource[] | null;
  validation: Record<string, string>;
  /** Manifest sources the loader leaves out (weight 0, or no training shards). */
  notInLoader: string[];
  manifest: string | null;
  preset: string | null;
  citation: string | null;
}

/**
 * data.train + data.validation as they are, or the manifest's sources (sorted by name, so rewriting the
 * manifest in another key order keeps resume working) weighed by data.mixture, by default in proportion to
 * their training tokens.
 */
function resolveTrainingData(config: TrainConfig): TrainingData {
  const d = config.data;
  if (d.manifest === null) {
    if (d.train.length === 0) throw invalidArg("config: 'data.train' lists no token shards and 'data.manifest' is not set");
    return { sources: null, validation: { ...d.validation }, notInLoader: [], manifest: null, preset: null, citation: null };
  }
  const manifest = readDataManifest(d.manifest);
  const names = Object.keys(manifest.sources).sort();
  const bySize = Object.fromEntries(names.map((n) => [n, manifest.sources[n].tokens.train]));
  const mixture = resolveMixture(d.mixture ?? bySize, names);
  const empty = names.filter((n) => mixture.weights[n] > 0 && manifest.sources[n].train.length === 0);
  if (empty.length > 0) {
    throw invalidArg(`config: the mixture draws from ${empty.join(', ')}, which ${manifest.file} lists without training shards`);
  }
  const drawn = names.filter((n) => mixture.weights[n] > 0);
  const validation: Record<string, string> = {};
  for (const n of names) {
    const v = manifest.sources[n].validation;
    if (v !== null) validation[n] = v;
  }
  return {
    sources: drawn.map((n) => ({ name: n, shards: manifest.sources[n].train, weight: mixture.weights[n] })),
    validation,
    notInLoader: names.filter((n) => !drawn.includes(n)),
    manifest: manifest.file,
    preset: mixture.preset,
    citation: mixture.citation,
  };
}

/**
 * The validation shards that hold at least one evaluation batch. A shard named in data.validation that is
 * too small is an error (the user asked for it); a manifest source's is left out with a warning, so one
 * tiny source does not stop a run, and the loss table says which sources are missing.
 */
function usableValidation(data: TrainingData, seqLen: number, batchSize: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, shard] of Object.entries(data.validation)) {
    const r = openShard(shard);
    const tokens = r.tokenCount;
    r.close();
    if (evalBatchCount(tokens, seqLen, batchSize) > 0) {
      out[name] = shard;
      continue;
    }
    const why = `the validation shard of '${name}' (${shard}) holds ${tokens} tokens, fewer than one evaluation batch of ${batchSize} windows of ${seqLen} + 1`;
    if (data.manifest === null) throw invalidArg(`config: ${why}; use a smaller batch.microBatchSize or batch.seqLen, or a larger shard`);
    process.emitWarning(`pajama train: ${why}; '${name}' is not evaluated (hold out more of it: split.validation or split.minValidationDocuments)`, {
      code: 'PAJAMA_VALIDATION_TOO_SMALL',
    });
  }
  return out;
}

export interface TrainerOptions {
  /** Resume from the run directory's latest checkpoint when there is one. Defaults to true. */
  resume?: boolean;
  /** Draw a progress bar on stderr. Defaults to whether stderr is a TTY. */
  progress?: boolean;
}

export class Trainer extends EventEmitter<TrainerEvents> {
  readonly config: TrainConfig;
  readonly modelConfig: MptConfig;
  readonly plan: BatchPlan;
  readonly model: MptModel;
  readonly optimizer: AdamW;
  readonly loader: TokenLoader;
  /** Validation shards by source: data.validation, or each manifest source's validation shard. */
  readonly validation: Readonly<Record<string, string>>;
  /** Expected tokens and epochs per source over the whole run. */
  readonly dataPlan: DataPlan;
  readonly ptwd: PtwdController;
  readonly peakFlops: number;
  readonly flopsPerToken: number;
  #step = 0;
  #elapsedSec = 0;
  #tokens = 0;
  #metricsFile: string;
  #progress: boolean;
  #disposed = false;
  #stopRequested = false;
  #busy = false;

  private constructor(config: TrainConfig, peakFlops: number, options: TrainerOptions) {
    super();
    this.config = config;
    this.modelConfig = mptConfig(config.model.preset, config.model.overrides);
    this.plan = planBatch(config, this.modelConfig);
    const data = resolveTrainingData(config);
    this.validation = usableValidation(data, this.plan.seqLen, this.plan.microBatchSize);
    const common = { seqLen: this.plan.seqLen, batchSize: this.plan.microBatchSize, seed: config.seed };
    this.loader = new TokenLoader(data.sources ? { ...common, sources: data.sources } : { ...common, shards: config.data.train });
    if (this.loader.vocabSize > this.modelConfig.vocabSize) {
      this.loader.close();
      throw invalidArg(
        `config: the training shards' vocab size ${this.loader.vocabSize} exceeds the model's vocabSize ${this.modelConfig.vocabSize} (another tokenizer?)`,
      );
    }
    const totalSequences = (config.steps * this.plan.globalBatchTokens) / this.plan.seqLen;
    const mixturePlan = this.loader.plan(totalSequences);
    this.dataPlan = {
      ...mixturePlan,
      notDrawn: [...mixturePlan.notDrawn, ...data.notInLoader],
      manifest: data.manifest,
      preset: data.preset,
      citation: data.citation,
    };
    this.model = new MptModel(this.modelConfig, {
      precision: config.model.precision,
      checkpointEvery: config.model.checkpointEvery,
      seed: config.seed,
    });
    this.optimizer = new AdamW(this.model.params, this.model.grads, {
      beta1: config.optimizer.beta1,
      beta2: config.optimizer.beta2,
      eps: config.optimizer.eps,
      decayEmbeddings: config.optimizer.decayEmbeddings,
      computeCopy: this.model.computeParams ?? false,
    });
    const wd = config.weightDecay;
    this.ptwd = new PtwdController({
      values: wd.mode === 'constant' ? [wd.value] : wd.stages,
      ...(wd.mode === 'ptwd' && wd.boundaries ? { boundaries: wd.boundaries } : {}),
      totalSteps: config.steps,
      ...(wd.mode === 'ptwd' && wd.plateau ? { plateau: {} } : {}),
    });
    this.peakFlops = peakFlops;
    this.flopsPerToken = flopsPerToken(this.modelConfig, this.plan.seqLen);
    this.#metricsFile = path.join(config.runDir, 'metrics.jsonl');
    this.#progress = options.progress ?? Boolean(process.stderr.isTTY);
  }

  /** Builds a trainer from a (partial) config: validates it, sets threads, measures the peak, resumes. */
  static async create(input: unknown, options: TrainerOptions = {}): Promise<Trainer> {
    const config = resolveTrainConfig(input);
    if (config.threads) setThreads(config.threads);
    const peak = config.peakFlops ?? (await measurePeakFlops(config.model.precision === 'bf16' ? 'bf16' : 'f32'));
    const t = new Trainer(config, peak, options);
    fs.mkdirSync(config.runDir, { recursive: true });
    const latest = options.resume === false ? null : latestCheckpoint(config.runDir);
    if (latest) t.#restore(latest.dir);
    else if (config.model.init) {
      loadModelWeights(config.model.init, t.model.params);
      t.model.syncComputeParams();
    }
    t.#log({ type: 'plan', step: t.#step, ...t.dataPlan });
    for (const w of t.dataPlan.warnings) process.emitWarning(`pajama train: ${w}`, { code: 'PAJAMA_MIXTURE_REPEAT' });
    return t;
  }

  /** Optimizer steps completed so far. */
  get stepsDone(): number {
    return this.#step;
  }

  get done(): boolean {
    return this.#step >= this.config.steps;
  }

  #restore(dir: string): void {
    const loaded = loadCheckpoint(dir, { params: this.model.params, m: this.optimizer.m, v: this.optimizer.v });
    const s = loaded.trainerState as TrainerState;
    this.model.syncComputeParams();
    this.optimizer.loadState({ step: s.optimizerStep, m: this.optimizer.m, v: this.optimizer.v });
    try {
      this.loader.restore(s.loader);
    } catch (e) {
      throw invalidArg(`cannot resume from ${dir}: ${(e as Error).message} (start a new runDir, or train without resuming, to use other data)`);
    }
    this.ptwd.restore(s.ptwd);
    this.#step = s.step;
    this.#elapsedSec = s.elapsedSec;
    this.#tokens = s.tokens;
  }

  /** One optimizer step over the whole global batch. */
  async step(): Promise<StepMetrics> {
    if (this.#disposed) throw invalidArg('Trainer: used after dispose()');
    if (this.done) throw invalidArg(`Trainer: all ${this.config.steps} steps are done`);
    if (this.#busy) throw invalidArg('Trainer: step() called while another step is running; await it first');
    this.#busy = true;
    try {
      return await this.#step1();
    } finally {
      this.#busy = false;
    }
  }

  async #step1(): Promise<StepMetrics> {
    const t0 = performance.now();
    const { seqLen: T, microBatchSize: B, accumulationSteps } = this.plan;
    const tokens = B * T * accumulationSteps;
    this.model.grads.zero();
    let lossSum = 0;
    for (let i = 0; i < accumulationSteps; i++) {
      const batch = this.loader.next();
      const r = await this.model.forwardBackward(batch.inputs, batch.targets, B, T, 1 / tokens);
      lossSum += r.lossSum;
    }
    const loss = lossSum / tokens;
    const clip = await clipGradNormAsync(this.model.grads, this.config.optimizer.gradClip || Infinity);
    const stepIndex = this.#step; // 0-based index of this update in the schedules
    const o = this.config.optimizer;
    const lr = cosineWithWarmup(stepIndex, { peakLr: o.lr, warmupSteps: o.warmupSteps, totalSteps: this.config.steps, minLrRatio: o.minLrRatio });
    const weightDecay = this.ptwd.weightDecay(stepIndex);
    const ptwdStage = this.ptwd.stageAt(stepIndex);
    const skipped = clip.nonFinite > 0 || !Number.isFinite(loss);
    if (!skipped) {
      await this.optimizer.stepAsync({ lr, weightDecay, gradScale: clip.scale });
      this.ptwd.observe(stepIndex, loss);
    }
    this.#step++;
    this.#tokens += tokens;
    const stepSec = (performance.now() - t0) / 1e3;
    this.#elapsedSec += stepSec;
    const tokensPerSec = tokens / stepSec;
    const m: StepMetrics = {
      step: this.#step,
      loss,
      lr,
      weightDecay,
      ptwdStage,
      gradNorm: clip.norm,
      skipped,
      tokens: this.#tokens,
      tokensPerSec,
      mfu: (tokensPerSec * this.flopsPerToken) / this.peakFlops,
      stepSec,
      elapsedSec: this.#elapsedSec,
      sources: Object.fromEntries(this.loader.sourceReport().map((r) => [r.name, { tokensDrawn: r.tokensDrawn, epochs: r.epochs }])),
    };
    this.#log({ type: 'step', ...m });
    if (this.#progress) this.#drawProgress(m);
    this.emit('step', m);
    return m;
  }

  /** Mean loss on each validation source (see `validation`), eval.batches batches each. */
  async evaluate(): Promise<EvalMetrics> {
    const losses: Record<string, number> = {};
    const { seqLen: T, microBatchSize: B } = this.plan;
    for (const [name, shard] of Object.entries(this.validation)) {
      let sum = 0;
      let count = 0;
      for (const batch of evalBatches(shard, T, B, this.config.eval.batches)) {
        const r = await this.model.evaluate(batch.inputs, batch.targets, B, T);
        sum += r.lossSum;
        count += r.tokens;
      }
      losses[name] = sum / count;
    }
    const e = { step: this.#step, losses };
    this.#log({ type: 'eval', ...e });
    this.emit('eval', e);
    return e;
  }

  /** Writes a checkpoint of the current state into the run directory. */
  saveCheckpoint(): string {
    const state: TrainerState = {
      step: this.#step,
      elapsedSec: this.#elapsedSec,
      tokens: this.#tokens,
      loader: this.loader.state(),
      ptwd: this.ptwd.state(),
      optimizerStep: this.optimizer.stepCount,
      seed: this.config.seed,
      trainConfig: JSON.parse(JSON.stringify(this.config)),
    };
    const info = saveCheckpoint(this.config.runDir, this.#step, {
      config: mptHfConfig(this.modelConfig),
      params: this.model.params,
      optimizerState: { m: this.optimizer.m, v: this.optimizer.v },
      trainerState: state,
      keepLast: this.config.checkpoint.keepLast,
    });
    this.#log({ type: 'checkpoint', step: this.#step, dir: info.dir });
    this.emit('checkpoint', { step: this.#step, dir: info.dir });
    return info.dir;
  }

  /** Makes fit() return after the step in flight (with a checkpoint), e.g. on Ctrl-C. */
  requestStop(): void {
    this.#stopRequested = true;
  }

  /**
   * Trains to config.steps (or until requestStop()), evaluating and checkpointing on schedule, and at the
   * end evaluating every validation source and saving a checkpoint.
   */
  async fit(): Promise<{ steps: number; finalLoss: number; eval: EvalMetrics | null; checkpoint: string; stopped: boolean }> {
    let last: StepMetrics | null = null;
    const { eval: ev, checkpoint: ck } = this.config;
    this.emit('plan', this.dataPlan);
    while (!this.done && !this.#stopRequested) {
      last = await this.step();
      if (ev.every > 0 && this.#step % ev.every === 0 && !this.done) await this.evaluate();
      if (ck.every > 0 && this.#step % ck.every === 0 && !this.done) this.saveCheckpoint();
    }
    if (this.#progress) process.stderr.write('\n');
    const evalResult = Object.keys(this.validation).length > 0 ? await this.evaluate() : null;
    const dir = this.saveCheckpoint();
    return { steps: this.#step, finalLoss: last ? last.loss : NaN, eval: evalResult, checkpoint: dir, stopped: !this.done };
  }

  #log(record: Record<string, unknown>): void {
    fs.appendFileSync(this.#metricsFile, JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n');
  }

  #drawProgress(m: StepMetrics): void {
    const width = 24;
    const done = Math.round((width * m.step) / this.config.steps);
    const bar = '#'.repeat(done) + '-'.repeat(width - done);
    process.stderr.write(
      `\r[${bar}] ${m.step}/${this.config.steps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} wd ${m.weightDecay} ` +
        `${Math.round(m.tokensPerSec)} tok/s MFU ${(100 * m.mfu).toFixed(1)}%   `,
    );
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.optimizer.dispose();
    this.model.dispose();
    this.loader.close();
  }
}
