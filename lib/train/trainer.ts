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
import { CheckpointError, TRAINER_STATE_FILE, latestCheckpoint, listCheckpoints, loadCheckpoint, loadModelWeights, mptHfConfig, saveCheckpoint } from './checkpoint';
import { DEFAULT_TRAIN_CONFIG, planBatch, resolveTrainConfig, type BatchPlan, type TrainConfig } from './config';
import { withFsContext } from '../core/fs-errors';
import { writeAll } from '../core/atomic';
import { RunLock } from './lock';

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
  /** True when the loss or the gradients held NaN/Inf and the update was skipped. */
  skipped: boolean;
  /** Gradient elements that were NaN or +-Inf (0 on a normal step). */
  nonFiniteGradients: number;
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
  /** The loss of the last step that was not skipped, and its step (null before the first). */
  lastFiniteLoss?: { step: number; loss: number } | null;
  /** Skipped steps in a row just before this checkpoint. */
  consecutiveSkips?: number;
  [k: string]: unknown;
}

/** The run stopped: too many consecutive steps had a non-finite loss or gradients (divergence.maxConsecutiveSkips). */
export class TrainingDivergedError extends Error {
  readonly code = 'ERR_PAJAMA_DIVERGED';
  constructor(
    /** The last step run (1-based, as logged). */
    readonly step: number,
    readonly consecutiveSkips: number,
    message: string,
  ) {
    super(message);
    this.name = 'TrainingDivergedError';
  }
}

/**
 * What a resumed run must share with the run that wrote the checkpoint, as effective values (a preset and
 * its overrides as the architecture they give, a null seqLen as the model's maxSeqLen): the seed (data
 * order), the model and the batch decide what the saved state means. Keys name where to change each.
 */
function resumeIdentity(c: Pick<TrainConfig, 'seed' | 'model' | 'batch'>): Record<string, unknown> {
  const model = mptConfig(c.model.preset, c.model.overrides);
  const seqLen = c.batch.seqLen ?? model.maxSeqLen;
  return {
    seed: c.seed,
    ...Object.fromEntries(Object.entries(model).map(([k, v]) => [`model (${k}, from 'model.preset' and 'model.overrides')`, v])),
    'batch.seqLen': seqLen,
    'batch.microBatchSize': c.batch.microBatchSize,
    'batch.globalBatchTokens': c.batch.globalBatchTokens ?? c.batch.microBatchSize * seqLen,
  };
}

/** Settings that may change on resume but change the run (the schedules, the numerics): a warning names them. */
const WARN_ON_RESUME = ['steps', 'model.precision', 'optimizer', 'weightDecay'] as const;

/** JSON with object keys sorted, so that key order never reads as a change. */
function canonical(v: unknown): string {
  if (v === undefined) return 'unset';
  if (v === null || typeof v !== 'object') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonical(o[k])}`)
    .join(',')}}`;
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
  /** Sources the mixture names that the manifest lacks (data.mixtureMissing 'renormalize'). */
  missing?: { name: string; weight: number }[];
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
  const mixture = resolveMixture(d.mixture ?? bySize, names, { missing: d.mixtureMissing });
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
    missing: mixture.missing,
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

export interface FitResult {
  steps: number;
  /** The last finite training loss and its step; null when no step had a finite loss. */
  finalLoss: { step: number; loss: number } | null;
  eval: EvalMetrics | null;
  /** The checkpoint written at the end (or, for a run already finished, the one it resumed from). */
  checkpoint: string;
  /** requestStop() ended the run before config.steps. */
  stopped: boolean;
  /** The run had already reached config.steps: nothing was trained, evaluated or written. */
  alreadyDone: boolean;
}

/** Creates the run directory, with an error naming it when it cannot be (a file in the way, read-only...). */
function makeRunDir(runDir: string): void {
  withFsContext('creating the run directory', runDir, () => fs.mkdirSync(runDir, { recursive: true }));
}

/** trainer_state.json's fields, checked: a corrupt one names the file and key instead of resuming wrong. */
function checkTrainerState(raw: Record<string, unknown>, file: string): TrainerState {
  const fail = (key: string, what: string) => new CheckpointError(file, `'${key}' must be ${what}, got ${JSON.stringify(raw[key]) ?? 'nothing'}`);
  const int = (key: string) => {
    const v = raw[key];
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw fail(key, 'a non-negative integer');
  };
  for (const k of ['step', 'tokens', 'optimizerStep', 'seed']) int(k);
  if (typeof raw.elapsedSec !== 'number' || !Number.isFinite(raw.elapsedSec) || raw.elapsedSec < 0) throw fail('elapsedSec', 'a non-negative number');
  for (const k of ['loader', 'ptwd']) {
    if (raw[k] === null || typeof raw[k] !== 'object' || Array.isArray(raw[k])) throw fail(k, 'an object');
  }
  if (raw.consecutiveSkips !== undefined) int('consecutiveSkips');
  const l = raw.lastFiniteLoss as { step?: unknown; loss?: unknown } | null | undefined;
  if (l !== undefined && l !== null && !(Number.isSafeInteger(l.step) && typeof l.loss === 'number' && Number.isFinite(l.loss))) {
    throw fail('lastFiniteLoss', 'null or { step, loss } with a finite loss');
  }
  return raw as TrainerState;
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
  #lock: RunLock | null = null;
  #lastFiniteLoss: { step: number; loss: number } | null = null;
  #consecutiveSkips = 0;
  /** The checkpoint the trainer resumed from, or null. */
  #resumedFrom: string | null = null;

  private constructor(config: TrainConfig, peakFlops: number, options: TrainerOptions) {
    super();
    this.config = config;
    this.modelConfig = mptConfig(config.model.preset, config.model.overrides);
    this.plan = planBatch(config, this.modelConfig);
    const data = resolveTrainingData(config);
    this.validation = usableValidation(data, this.plan.seqLen, this.plan.microBatchSize);
    if (config.eval.every > 0 && Object.keys(this.validation).length === 0) {
      throw invalidArg(`config: 'eval.every' is ${config.eval.every} but no source of ${data.manifest} has a usable validation shard; set 'eval.every' to 0 or hold out validation data`);
    }
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
      missing: data.missing ?? [],
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
    try {
      makeRunDir(config.runDir);
      t.#lock = RunLock.acquire(config.runDir);
      const latest = options.resume === false ? null : latestCheckpoint(config.runDir);
      if (latest) t.#restore(latest.dir);
      else if (config.model.init) {
        loadModelWeights(config.model.init, t.model.params);
        t.model.syncComputeParams();
      }
      t.#log({ type: 'plan', step: t.#step, ...t.dataPlan });
    } catch (e) {
      t.dispose();
      throw e;
    }
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

  /** The last finite training loss and its step, or null when no step had one. */
  get lastFiniteLoss(): { step: number; loss: number } | null {
    return this.#lastFiniteLoss ? { ...this.#lastFiniteLoss } : null;
  }

  #restore(dir: string): void {
    const loaded = loadCheckpoint(dir, { params: this.model.params, m: this.optimizer.m, v: this.optimizer.v });
    const stateFile = path.join(dir, TRAINER_STATE_FILE);
    const s = checkTrainerState(loaded.trainerState, stateFile);
    this.#checkResumeConfig(s, stateFile);
    this.model.syncComputeParams();
    const restoring = (key: string, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        throw new CheckpointError(stateFile, `cannot resume from key '${key}': ${(e as Error).message}`);
      }
    };
    restoring('optimizerStep', () => this.optimizer.loadState({ step: s.optimizerStep, m: this.optimizer.m, v: this.optimizer.v }));
    try {
      this.loader.restore(s.loader);
    } catch (e) {
      throw invalidArg(`cannot resume from ${dir}: ${(e as Error).message} (start a new runDir, or train without resuming, to use other data)`);
    }
    restoring('ptwd', () => this.ptwd.restore(s.ptwd));
    this.#step = s.step;
    this.#elapsedSec = s.elapsedSec;
    this.#tokens = s.tokens;
    this.#consecutiveSkips = s.consecutiveSkips ?? 0;
    this.#lastFiniteLoss = s.lastFiniteLoss !== undefined ? s.lastFiniteLoss : this.#lastFiniteLossFromMetrics(s.step);
    this.#resumedFrom = dir;
  }

  /** Errors for settings that cannot change on resume, warnings for those that change the run. */
  #checkResumeConfig(s: TrainerState, stateFile: string): void {
    const raw = s.trainConfig;
    if (raw === null || typeof raw !== 'object') return; // a checkpoint written without its config
    // The saved config as it was resolved then, over today's defaults (keys added since are not compared).
    const before = raw as Partial<TrainConfig>;
    const d = DEFAULT_TRAIN_CONFIG;
    let was: Record<string, unknown>;
    try {
      was = resumeIdentity({ seed: before.seed ?? d.seed, model: { ...d.model, ...before.model }, batch: { ...d.batch, ...before.batch } });
    } catch (e) {
      throw new CheckpointError(stateFile, `'trainConfig' does not describe a model: ${(e as Error).message}`);
    }
    const is = resumeIdentity(this.config);
    for (const key of Object.keys(is)) {
      if (canonical(was[key]) !== canonical(is[key])) {
        throw invalidArg(
          `cannot resume from ${stateFile}: ${key.startsWith('model') ? key : `'${key}'`} was ${canonical(was[key])} in that run and is ${canonical(is[key])} now, ` +
            `which would not continue the same run; change it back, or start a new runDir (or --no-resume) to train with it`,
        );
      }
    }
    for (const key of WARN_ON_RESUME) {
      const a = canonical(key.split('.').reduce<unknown>((o, k) => (o !== null && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), before));
      if (a === 'unset') continue;
      const b = canonical(key.split('.').reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], this.config));
      if (a !== b) {
        process.emitWarning(`pajama train: resuming with '${key}' changed from ${a} to ${b} (checkpoint ${stateFile}); the run is no longer the one that was started`, {
          code: 'PAJAMA_RESUME_CONFIG_CHANGED',
        });
      }
    }
  }

  /** For checkpoints that predate lastFiniteLoss: the last finite step loss up to `step` in metrics.jsonl. */
  #lastFiniteLossFromMetrics(step: number): { step: number; loss: number } | null {
    let text: string;
    try {
      text = fs.readFileSync(this.#metricsFile, 'utf8');
    } catch {
      return null;
    }
    let found: { step: number; loss: number } | null = null;
    for (const line of text.split('\n')) {
      if (!line.includes('"type":"step"')) continue;
      try {
        const r = JSON.parse(line) as { step?: unknown; loss?: unknown; skipped?: unknown };
        if (typeof r.step === 'number' && r.step <= step && typeof r.loss === 'number' && Number.isFinite(r.loss) && r.skipped !== true) {
          found = { step: r.step, loss: r.loss };
        }
      } catch {
        // a torn last line of a killed run
      }
    }
    return found;
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
    if (skipped) this.#consecutiveSkips++;
    else {
      this.#consecutiveSkips = 0;
      this.#lastFiniteLoss = { step: this.#step, loss };
    }
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
      nonFiniteGradients: clip.nonFinite,
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
    const max = this.config.divergence.maxConsecutiveSkips;
    if (max > 0 && this.#consecutiveSkips >= max) throw this.#diverged(m);
    return m;
  }

  #diverged(m: StepMetrics): TrainingDivergedError {
    const n = this.#consecutiveSkips;
    const what = [
      ...(Number.isFinite(m.loss) ? [] : [`the loss was ${m.loss}`]),
      ...(m.nonFiniteGradients > 0 ? [`${m.nonFiniteGradients} of ${this.model.grads.numel} gradient values were NaN/Inf`] : []),
    ].join(' and ');
    const last = this.#lastFiniteLoss ? `the last finite loss was ${this.#lastFiniteLoss.loss.toFixed(4)} at step ${this.#lastFiniteLoss.step}` : 'no step had a finite loss';
    // Checkpoints saved during the skipped steps hold finite weights (a skipped step changes none), but the
    // ones the run diverged from: name the last checkpoint from before the streak too.
    const firstSkipped = m.step - n + 1;
    const all = listCheckpoints(this.config.runDir);
    const before = all.filter((c) => c.step < firstSkipped).pop();
    const where = all.length === 0 ? 'No checkpoint was written' : `The latest checkpoint is ${all[all.length - 1].dir}` + (before ? `; the last one before the skipped steps is ${before.dir}` : '');
    const msg =
      `training diverged: ${n} consecutive steps (${firstSkipped}-${m.step}) were skipped for non-finite values ` +
      `('divergence.maxConsecutiveSkips' is ${this.config.divergence.maxConsecutiveSkips}); at step ${m.step} ${what}; ${last}. ` +
      `${where}. Lower 'optimizer.lr' (or raise 'optimizer.warmupSteps') and start again, or resume from an earlier checkpoint.`;
    this.#log({ type: 'diverged', step: m.step, consecutiveSkips: n, loss: m.loss, nonFiniteGradients: m.nonFiniteGradients, lastFiniteLoss: this.#lastFiniteLoss });
    return new TrainingDivergedError(m.step, n, msg);
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
      lastFiniteLoss: this.#lastFiniteLoss,
      consecutiveSkips: this.#consecutiveSkips,
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
  async fit(): Promise<FitResult> {
    if (this.done && this.#resumedFrom !== null) {
      // A finished run: nothing to train, and its last checkpoint stays as it is.
      return { steps: this.#step, finalLoss: this.lastFiniteLoss, eval: null, checkpoint: this.#resumedFrom, stopped: false, alreadyDone: true };
    }
    const { eval: ev, checkpoint: ck } = this.config;
    this.emit('plan', this.dataPlan);
    while (!this.done && !this.#stopRequested) {
      await this.step();
      if (ev.every > 0 && this.#step % ev.every === 0 && !this.done) await this.evaluate();
      if (ck.every > 0 && this.#step % ck.every === 0 && !this.done) this.saveCheckpoint();
    }
    if (this.#progress) process.stderr.write('\n');
    const evalResult = Object.keys(this.validation).length > 0 ? await this.evaluate() : null;
    const dir = this.saveCheckpoint();
    return { steps: this.#step, finalLoss: this.lastFiniteLoss, eval: evalResult, checkpoint: dir, stopped: !this.done, alreadyDone: false };
  }

  /** Appends one record as one whole line; a failed write is cut back so metrics.jsonl never holds a torn line. */
  #log(record: Record<string, unknown>): void {
    const line = Buffer.from(JSON.stringify({ time: new Date().toISOString(), ...record }) + '\n', 'utf8');
    withFsContext('writing metrics to', this.#metricsFile, () => {
      const fd = fs.openSync(this.#metricsFile, 'a');
      try {
        const size = fs.fstatSync(fd).size;
        try {
          writeAll(fd, line);
        } catch (e) {
          try {
            fs.ftruncateSync(fd, size);
          } catch {
            // a device that cannot be truncated (e.g. /dev/full) holds no torn line either
          }
          throw e;
        }
      } finally {
        fs.closeSync(fd);
      }
    });
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
    this.#lock?.release();
    this.optimizer.dispose();
    this.model.dispose();
    this.loader.close();
  }
}
