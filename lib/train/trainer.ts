// trainer.ts: the training loop of the paper's recipe over the native core: gradient accumulation to a
// global batch given in tokens, bf16 autocast, clipping at 1.0, AdamW with warmup + cosine to 10%, PTWD,
// per-source validation loss, metrics (tokens/s, MFU as llm-foundry counts it), HF-compatible checkpoints
// and exact resume. Every native op runs on the worker thread, so the event loop stays free during a step.
//
// The trainer is handed its parts (Trainer.create(parts)): the model, the optimizer with its schedules
// (optimizer.ts), the training data with its validation sets (data.ts), a communicator (communicator.ts, a
// world of one by default) and the metric sinks (metrics.ts, metrics.jsonl by default). Trainer.fromConfig
// assembles them from a training config. It reports through its sinks and its events ('plan', 'step',
// 'eval', 'checkpoint') and draws nothing: `pajama train`'s progress bar listens to the events.
//
// Data parallel (dist.sharding 'none', DDP): every rank runs this same loop on its share of each global
// batch (the loader's rank split: rank r's micro-batch k is micro-batch k * worldSize + r of one rank), with
// the gradient scaled by 1 / (global batch tokens); after the last backward the gradient arena is summed
// over the ranks (dist/ddp.ts), so every rank holds the gradient of the whole global batch, and the global
// norm, clipping, the non-finite skip and AdamW run identically everywhere (identical weights follow). The
// loss sum, the token count and a stop request are summed in the same round, so the logged loss is the
// global batch's and every rank stops after the same step. Rank 0 alone takes the run-directory lock,
// writes the sinks and the checkpoints (every rank waits at a barrier after each write); every rank resumes
// from checkpoints/latest and evaluates its share of the validation batches, the sums reduced.
//
// Sharded state (dist.sharding 'optimizer', ZeRO-2, dist/zero.ts; 'full', FSDP, dist/fsdp.ts): instead of the
// all-reduce the gradient is reduce-scattered (under 'full' unit by unit during the backward, the model's
// weights being gathered unit by unit too), so each rank holds the global batch's gradient for its shard
// only; the global norm is the sum of the shards' sums of squares (reduced with the loss), AdamW updates the
// shard, and under 'optimizer' the updated compute weights are all-gathered. A checkpoint gathers the master
// weights and the moments first, so it is the same full file set as DDP's and resumes with any number of
// ranks and any mode, each rank taking its part.
import { EventEmitter } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidArg } from '../core/errors';
import { withFsContext } from '../core/fs-errors';
import type { MptModel } from '../model/mpt';
import { flopsPerToken, type MptConfig } from '../model/config';
import { clipFromSums, clipGradNormAsync, type AdamW, type ClipResult, type PtwdController } from '../optim/index';
import { ops } from '../core/ops';
import { Arena } from '../core/tensor';
import { CHECKPOINTS_DIR, CheckpointError, checkpointName, latestCheckpoint, listCheckpoints, loadCheckpoint, loadModelWeights, mptHfConfig, saveCheckpoint, TRAINER_STATE_FILE } from './checkpoint';
import { resolveTrainConfig, type BatchPlan, type TrainConfig } from './config';
import { RunLock } from './lock';
import { WorldOfOne, checkCommunicator, initCommunicator, type Communicator } from '../dist/communicator';
import { GradientAllReduce } from '../dist/ddp';
import { loadShardMaster, type TrainingShard } from '../dist/zero';
import { parameterLayout } from '../model/config';
import { checkSameRun } from '../dist/identity';
import type { DataPlan, TrainingData, TrainingLoader } from './data';
import { JsonlMetricSink, METRICS_FILE, lastFiniteLossInMetrics, type MemoryReport, type EvalMetrics, type FiniteLoss, type MetricRecord, type MetricSink, type StepMetrics } from './metrics';
import { checkParts, isTrainerParts, partsFromConfig, peakFlopsFor, releaseParts, type TrainerParts } from './parts';
import { runIdentity } from './identity';
import { checkResumeConfig, checkTrainerState, type TrainerState } from './resume';

export type { StepMetrics, EvalMetrics, MetricRecord, MetricSink, MemoryReport } from './metrics';
export type { DataPlan } from './data';
export type { TrainerParts } from './parts';

export interface TrainerEvents {
  step: [StepMetrics];
  eval: [EvalMetrics];
  checkpoint: [{ step: number; dir: string }];
  /** At the start of fit(). */
  plan: [DataPlan];
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

export interface FitResult {
  steps: number;
  /** The last finite training loss and its step; null when no step had a finite loss. */
  finalLoss: FiniteLoss | null;
  eval: EvalMetrics | null;
  /** The checkpoint written at the end (or, for a run already finished, the one it resumed from). */
  checkpoint: string;
  /** requestStop() ended the run before config.steps. */
  stopped: boolean;
  /** The run had already reached config.steps: nothing was trained, evaluated or written. */
  alreadyDone: boolean;
}

export interface TrainerOptions {
  /** Resume from the run directory's latest checkpoint when there is one. Defaults to true. */
  resume?: boolean;
  /**
   * No longer used: the trainer draws nothing. `pajama train` draws its progress bar from the 'step' events
   * (cli/progress.ts); a program can do the same. Accepted so that existing callers keep compiling.
   */
  progress?: boolean;
  /** Sinks that receive every record besides metrics.jsonl (fromConfig). Defaults to none. */
  sinks?: MetricSink[];
  /**
   * The ranks of the run. Defaults to initCommunicator({ timeoutMs: dist.timeoutSeconds * 1000 }): the MPI
   * ranks in a process started by mpirun or srun, else a world of one.
   */
  communicator?: Communicator;
}

/** Creates the run directory, with an error naming it when it cannot be (a file in the way, read-only...). */
function makeRunDir(runDir: string): void {
  withFsContext('creating the run directory', runDir, () => fs.mkdirSync(runDir, { recursive: true }));
}

export class Trainer extends EventEmitter<TrainerEvents> {
  readonly config: TrainConfig;
  readonly modelConfig: MptConfig;
  readonly plan: BatchPlan;
  readonly model: MptModel;
  /** AdamW of the optimizer part. */
  readonly optimizer: AdamW;
  readonly ptwd: PtwdController;
  readonly data: TrainingData;
  /** The data's loader: a TokenLoader (token shards) or, for instruction tuning, a ChatLoader. */
  readonly loader: TrainingLoader;
  /** Validation shards by source: data.validation, or each manifest source's validation shard. */
  readonly validation: Readonly<Record<string, string>>;
  /** Expected tokens and epochs per source over the whole run. */
  readonly dataPlan: DataPlan;
  /** The ranks of the run. */
  readonly communicator: Communicator;
  readonly peakFlops: number;
  readonly flopsPerToken: number;
  readonly #lr: (step: number) => number;
  readonly #sinks: readonly MetricSink[];
  #step = 0;
  #elapsedSec = 0;
  #tokens = 0;
  #disposed = false;
  #stopRequested = false;
  /** Every rank asked to stop after the last step (the stop requests are summed with the loss). */
  #stopAgreed = false;
  /** The all-reduce of sharding 'none'; null under sharding 'optimizer'. */
  readonly #gradReduce: GradientAllReduce | null;
  readonly #shard: TrainingShard | null;
  #busy = false;
  #lock: RunLock | null = null;
  #lastFiniteLoss: FiniteLoss | null = null;
  #consecutiveSkips = 0;
  /** The checkpoint the trainer resumed from, or null. */
  #resumedFrom: string | null = null;

  private constructor(config: TrainConfig, plan: BatchPlan, parts: Required<TrainerParts>) {
    super();
    this.config = config;
    this.plan = plan;
    this.model = parts.model;
    this.modelConfig = parts.model.config;
    this.optimizer = parts.optimizer.adamw;
    this.ptwd = parts.optimizer.ptwd;
    this.#lr = parts.optimizer.lr;
    this.data = parts.data;
    this.loader = parts.data.loader;
    this.validation = parts.data.validation;
    this.dataPlan = parts.data.plan((config.steps * plan.globalBatchTokens) / plan.seqLen);
    this.communicator = parts.communicator;
    this.#sinks = [...parts.sinks];
    this.peakFlops = parts.peakFlops;
    this.flopsPerToken = flopsPerToken(this.modelConfig, plan.seqLen);
    this.#shard = parts.optimizer.shard ?? null;
    this.#gradReduce = this.#shard ? null : new GradientAllReduce(this.communicator, this.model.grads.buffer, config.dist.bucketMB);
  }

  /** This process leads the run: it alone writes the sinks, the lock and the checkpoints. */
  get #leader(): boolean {
    return this.communicator.rank === 0;
  }

  /**
   * A trainer of the given parts (see TrainerParts): takes the run directory's lock, resumes from its latest
   * checkpoint (unless options.resume is false) or loads config.model.init, and records the data plan.
   */
  static create(parts: TrainerParts, options?: { resume?: boolean }): Promise<Trainer>;
  /** A trainer from a (partial) training config: the same as Trainer.fromConfig(config, options). */
  static create(config: unknown, options?: TrainerOptions): Promise<Trainer>;
  static async create(input: unknown, options: TrainerOptions = {}): Promise<Trainer> {
    if (!isTrainerParts(input)) return Trainer.fromConfig(input, options);
    if (options.sinks !== undefined || options.communicator !== undefined) {
      throw invalidArg('Trainer.create: give sinks and communicator among the parts, not in the options');
    }
    return Trainer.#assemble(input, options.resume ?? true);
  }

  /**
   * Builds a trainer from a (partial) config: validates it, sets threads, measures the peak, opens the data
   * (TrainingData.fromConfig), builds the model and optimizer (optimizerFromConfig), then as create(parts)
   * with metrics.jsonl and options.sinks as the sinks. Whatever it built is released when it fails.
   */
  static async fromConfig(input: unknown, options: TrainerOptions = {}): Promise<Trainer> {
    const config = resolveTrainConfig(input);
    const communicator = checkCommunicator(options.communicator ?? initCommunicator({ timeoutMs: config.dist.timeoutSeconds * 1000 }), 'Trainer.fromConfig');
    const parts = await partsFromConfig(config, communicator, [JsonlMetricSink.inRunDir(config.runDir), ...(options.sinks ?? [])]);
    try {
      return await Trainer.#assemble(parts, options.resume ?? true);
    } catch (e) {
      releaseParts(parts);
      throw e;
    }
  }

  static async #assemble(parts: TrainerParts, resume: boolean): Promise<Trainer> {
    const where = 'Trainer.create';
    const config = resolveTrainConfig(parts.config);
    const communicator = checkCommunicator(parts.communicator ?? new WorldOfOne(), where);
    const plan = checkParts(parts, config, communicator.worldSize, where, communicator.rank);
    // Before anything is written: ranks started with different configs, code or data stop here, together.
    await checkSameRun(communicator, runIdentity(config, parts.data));
    const sinks = parts.sinks ?? [JsonlMetricSink.inRunDir(config.runDir)];
    sinks.forEach((s, i) => {
      if (s === null || typeof s !== 'object' || typeof s.write !== 'function') throw invalidArg(`${where}: sinks[${i}] must be a MetricSink (an object with write(record))`);
    });
    const given = parts.peakFlops ?? config.peakFlops;
    if (given !== undefined && given !== null && !(Number.isFinite(given) && given > 0)) throw invalidArg(`${where}: peakFlops must be a positive number, got ${given}`);
    const peakFlops = given ?? (await peakFlopsFor(config));
    const t = new Trainer(config, plan, { ...parts, communicator, sinks, peakFlops });
    try {
      if (t.#leader) {
        makeRunDir(config.runDir);
        t.#lock = RunLock.acquire(config.runDir);
      }
      const latest = resume ? latestCheckpoint(config.runDir) : null;
      await t.#agreeOnCheckpoint(latest?.step ?? -1);
      if (latest) t.#restore(latest.dir);
      else if (config.model.init) {
        const init = config.model.init;
        t.#loadWeights((params) => loadModelWeights(init, params));
      }
      t.#record({ type: 'plan', step: t.#step, ...t.dataPlan, memory: t.memory() });
    } catch (e) {
      t.#lock?.release();
      t.#gradReduce?.dispose();
      throw e;
    }
    if (t.#leader) for (const w of t.dataPlan.warnings) process.emitWarning(`pajama train: ${w}`, { code: 'PAJAMA_MIXTURE_REPEAT' });
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
  get lastFiniteLoss(): FiniteLoss | null {
    return this.#lastFiniteLoss ? { ...this.#lastFiniteLoss } : null;
  }

  /**
   * Every rank must resume from the checkpoint rank 0 resumes from (`step`, -1 for none): ranks that see
   * another one (a run directory not shared by every rank) stop, together, naming what each saw.
   */
  async #agreeOnCheckpoint(step: number): Promise<void> {
    const c = this.communicator;
    if (c.worldSize === 1) return;
    const steps = new Float64Array(c.worldSize);
    await c.allGather(steps, Float64Array.of(step));
    if (steps.every((s) => s === steps[0])) return;
    const seen = [...steps].map((s, r) => `rank ${r}: ${s < 0 ? 'none' : checkpointName(s)}`).join(', ');
    throw invalidArg(
      `the ranks see different checkpoints to resume from in ${path.join(this.config.runDir, CHECKPOINTS_DIR)} (${seen}); ` +
        'every rank must see the run directory rank 0 writes (put it on a file system all ranks share)',
    );
  }

  /** Bytes this rank holds for training, by kind (see MemoryReport); allocates the activations if no step has yet. */
  memory(): MemoryReport {
    const bytes = (a: Arena | null | undefined) => a?.buffer.byteLength ?? 0;
    const sh = this.#shard;
    const own = this.model.arenaBytes;
    const r = {
      weights: own.weights + (sh ? sh.bytes.weights : 0),
      gradients: own.gradients + (sh ? sh.bytes.gradients : 0),
      optimizerState: bytes(this.optimizer.m) + bytes(this.optimizer.v),
      activations: this.model.activationBytes(this.plan.microBatchSize, this.plan.seqLen),
      communication: sh ? sh.bytes.communication : 0,
    };
    // a sharded checkpoint gathers the moments (and master weights that exist only in shards) into full f32 arenas
    const full = 4 * this.model.parameterCount;
    return { ...r, checkpointGather: !sh ? 0 : sh.ownsMaster ? 3 * full : 2 * full, total: r.weights + r.gradients + r.optimizerState + r.activations + r.communication };
  }

  /** A full f32 arena of the model's layout, for gathering or loading the sharded state. */
  #fullArena(): Arena {
    return new Arena('f32', parameterLayout(this.modelConfig), this.model.device);
  }

  /**
   * Loads master weights with `load` (given a full f32 arena): into the model's own arena, or, where they
   * exist only in the shards, into a scratch one of which this rank keeps its part; then refreshes the bf16 copy.
   */
  #loadWeights(load: (params: Arena) => void): void {
    const sh = this.#shard;
    if (!sh?.ownsMaster) {
      load(this.model.params);
      this.model.syncComputeParams(); // under 'optimizer' (fp32) the shard's master is a view of these
      return;
    }
    loadShardMaster(sh, this.modelConfig, load);
  }

  #restore(dir: string): void {
    // Sharded: the checkpoint's full moments are read into scratch arenas and each rank keeps its part, so any
    // number of ranks resumes any checkpoint.
    const sh = this.#shard;
    const m = sh ? this.#fullArena() : this.optimizer.m;
    const v = sh ? this.#fullArena() : this.optimizer.v;
    try {
      this.#restoreFrom(dir, m, v);
    } finally {
      if (sh) for (const a of [m, v]) a.dispose();
    }
  }

  #restoreFrom(dir: string, m: Arena, v: Arena): void {
    let loaded: ReturnType<typeof loadCheckpoint> | undefined;
    this.#loadWeights((params) => (loaded = loadCheckpoint(dir, { params, m, v })));
    const stateFile = path.join(dir, TRAINER_STATE_FILE);
    const s: TrainerState = checkTrainerState(loaded!.trainerState, stateFile);
    checkResumeConfig(s, this.config, stateFile);
    const sh = this.#shard;
    if (sh) {
      sh.takeShard(m.buffer, this.optimizer.m.buffer);
      sh.takeShard(v.buffer, this.optimizer.v.buffer);
    }
    const restoring = (key: string, fn: () => void) => {
      try {
        fn();
      } catch (e) {
        throw new CheckpointError(stateFile, `cannot resume from key '${key}': ${(e as Error).message}`);
      }
    };
    restoring('optimizerStep', () => this.optimizer.loadState({ step: s.optimizerStep, m: this.optimizer.m, v: this.optimizer.v }));
    try {
      this.data.restoreLoader(s.loader);
    } catch (e) {
      throw invalidArg(`cannot resume from ${dir}: ${(e as Error).message} (start a new runDir, or train without resuming, to use other data)`);
    }
    restoring('ptwd', () => this.ptwd.restore(s.ptwd));
    this.#step = s.step;
    this.#elapsedSec = s.elapsedSec;
    this.#tokens = s.tokens;
    this.#consecutiveSkips = s.consecutiveSkips ?? 0;
    this.#lastFiniteLoss = s.lastFiniteLoss !== undefined ? s.lastFiniteLoss : lastFiniteLossInMetrics(path.join(this.config.runDir, METRICS_FILE), s.step);
    this.#resumedFrom = dir;
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
    const { seqLen: T, microBatchSize: B, accumulationSteps, worldSize } = this.plan;
    // Every rank scales by the global batch's tokens that carry a loss: the sum over ranks is then the global
    // batch's mean gradient. Pretraining: every position (B x T x accumulation x ranks). Instruction tuning:
    // the trained (assistant) tokens of every rank's rows, which each chat batch reports for its whole block.
    const tokens = B * T * accumulationSteps * worldSize;
    const batches = Array.from({ length: accumulationSteps }, () => this.loader.next());
    const lossScale = batches.reduce((a, b) => a + ('blockTrainedTokens' in b ? b.blockTrainedTokens : B * T * worldSize), 0);
    if (lossScale === 0) throw invalidArg(`Trainer: the global batch of step ${this.#step + 1} has no target that carries a loss`);
    if (this.#shard) this.#shard.zeroGradients();
    else this.model.grads.zero();
    let lossSum = 0;
    let lossTokens = 0;
    for (const batch of batches) {
      const r = await this.model.forwardBackward(batch.inputs, batch.targets, B, T, 1 / lossScale);
      lossSum += r.lossSum;
      lossTokens += r.tokens;
    }
    const sh = this.#shard;
    // The gradient: all-reduced (sharding 'none') or reduce-scattered (each rank gets its shard's sum).
    let commSeconds = sh ? await sh.reduceGradients() : await this.#gradReduce!.reduce();
    // A shard's sum of squares and non-finite count: summed over the ranks below, they make the global norm.
    const [sumSquares, nonFinite] = sh ? await ops.sumSquaresAsync(sh.grads.buffer) : [0, 0];
    const sums = Float64Array.of(lossSum, lossTokens, this.#stopRequested ? 1 : 0, sumSquares, nonFinite);
    if (worldSize > 1) {
      // [loss sum, tokens, stop requests, sum of squares, non-finite] (a NaN on any rank makes every rank's
      // sum NaN, so every rank skips the step; a stop asked of any rank stops every rank after this step).
      const c0 = performance.now();
      await this.communicator.allReduce(sums, 'sum');
      commSeconds += (performance.now() - c0) / 1e3;
      [lossSum, lossTokens] = [sums[0], sums[1]];
      if (sums[2] > 0) this.#stopAgreed = true;
    }
    const loss = lossSum / lossTokens;
    const maxNorm = this.config.optimizer.gradClip || Infinity;
    const clip: ClipResult = sh ? clipFromSums(sums[3], sums[4], maxNorm) : await clipGradNormAsync(this.model.grads, maxNorm);
    const stepIndex = this.#step; // 0-based index of this update in the schedules
    const lr = this.#lr(stepIndex);
    const weightDecay = this.ptwd.weightDecay(stepIndex);
    const ptwdStage = this.ptwd.stageAt(stepIndex);
    const skipped = clip.nonFinite > 0 || !Number.isFinite(loss);
    if (!skipped) {
      await this.optimizer.stepAsync({ lr, weightDecay, gradScale: clip.scale });
      // every rank's updated shard into every rank's compute weights (a skipped step changes none)
      if (sh) commSeconds += await sh.gatherWeights();
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
      mfu: (tokensPerSec * this.flopsPerToken) / (this.peakFlops * worldSize),
      stepSec,
      commSeconds,
      elapsedSec: this.#elapsedSec,
      sources: Object.fromEntries(this.loader.sourceReport().map((r) => [r.name, { tokensDrawn: r.tokensDrawn, epochs: r.epochs }])),
    };
    this.#record({ type: 'step', ...m });
    this.emit('step', m);
    const max = this.config.divergence.maxConsecutiveSkips;
    if (max > 0 && this.#consecutiveSkips >= max) throw this.#diverged(m);
    return m;
  }

  #diverged(m: StepMetrics): TrainingDivergedError {
    const n = this.#consecutiveSkips;
    const what = [
      ...(Number.isFinite(m.loss) ? [] : [`the loss was ${m.loss}`]),
      ...(m.nonFiniteGradients > 0 ? [`${m.nonFiniteGradients} of ${this.model.parameterCount} gradient values were NaN/Inf`] : []),
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
    this.#record({ type: 'diverged', step: m.step, consecutiveSkips: n, loss: m.loss, nonFiniteGradients: m.nonFiniteGradients, lastFiniteLoss: this.#lastFiniteLoss });
    return new TrainingDivergedError(m.step, n, msg);
  }

  /**
   * Mean loss on each validation source (see `validation`), eval.batches batches each. With several ranks,
   * rank r evaluates batches r, r + worldSize, ... of each source and the sums are reduced: every rank gets
   * the losses one rank would (up to the order of the float64 additions).
   */
  async evaluate(): Promise<EvalMetrics> {
    const losses: Record<string, number> = {};
    const { seqLen: T, microBatchSize: B } = this.plan;
    const { rank, worldSize } = this.communicator;
    const names = Object.keys(this.validation);
    const sums = new Float64Array(2 * names.length); // [loss sum, tokens] per source
    for (const [i, name] of names.entries()) {
      const batches = this.data.evalBatches(name, this.config.eval.batches);
      // Under sharding 'full' every forward gathers weights from every rank: each rank runs as many forwards
      // as the busiest one, and a rank without a batch left runs one of the batches again, not counted.
      for (let k = 0; k < Math.ceil(batches.length / worldSize); k++) {
        const b = k * worldSize + rank;
        if (b >= batches.length && !this.model.store) break;
        const batch = batches[b < batches.length ? b : 0];
        const r = await this.model.evaluate(batch.inputs, batch.targets, B, T);
        if (b >= batches.length) continue;
        sums[2 * i] += r.lossSum;
        sums[2 * i + 1] += r.tokens;
      }
    }
    if (worldSize > 1) await this.communicator.allReduce(sums, 'sum');
    names.forEach((name, i) => (losses[name] = sums[2 * i] / sums[2 * i + 1]));
    const e = { step: this.#step, losses };
    this.#record({ type: 'eval', ...e });
    this.emit('eval', e);
    return e;
  }

  /**
   * Writes a checkpoint of the current state into the run directory; on a rank other than 0 writes nothing
   * and returns the directory rank 0 writes (fit() has every rank wait at a barrier after the write). Under
   * dist.sharding 'optimizer' or 'full' the state must be gathered first: use saveCheckpointAsync().
   */
  saveCheckpoint(): string {
    if (this.#shard) {
      throw invalidArg(`Trainer.saveCheckpoint: with dist.sharding '${this.#shard.mode}' the weights and moments are gathered from every rank first; call every rank's await trainer.saveCheckpointAsync()`);
    }
    return this.#write(this.model.params, this.optimizer.m, this.optimizer.v);
  }

  #write(params: Arena, m: Arena, v: Arena): string {
    if (!this.#leader) return path.join(this.config.runDir, CHECKPOINTS_DIR, checkpointName(this.#step));
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
      params,
      optimizerState: { m, v },
      trainerState: state,
      keepLast: this.config.checkpoint.keepLast,
      tokenizer: this.data.tokenizer,
    });
    this.#record({ type: 'checkpoint', step: this.#step, dir: info.dir });
    this.emit('checkpoint', { step: this.#step, dir: info.dir });
    return info.dir;
  }

  /**
   * Writes a checkpoint on every rank's call (each rank must call it): under dist.sharding 'optimizer' or
   * 'full' the master weights and the moments are gathered first (into full f32 arenas held while rank 0
   * writes: the two moments, and under 'full' the weights too); then a barrier, so no rank runs ahead of a
   * checkpoint being written.
   */
  async saveCheckpointAsync(): Promise<string> {
    if (this.#disposed) throw invalidArg('Trainer: used after dispose()');
    const sh = this.#shard;
    let dir: string;
    if (sh) {
      const scratch: Arena[] = [];
      const full = () => {
        const a = this.#fullArena();
        scratch.push(a);
        return a;
      };
      try {
        // an fp32 model's master weights are whole after every step (its compute weights, gathered)
        let params = this.model.hasMasterWeights ? this.model.params : null;
        if (!params) await sh.gatherFull(sh.master, (params = full()));
        const [m, v] = [full(), full()];
        await sh.gatherFull(this.optimizer.m, m);
        await sh.gatherFull(this.optimizer.v, v);
        dir = this.#write(params, m, v);
      } finally {
        for (const a of scratch) a.dispose();
      }
    } else dir = this.saveCheckpoint();
    // Rank 0's write may take longer than a collective: the others wait up to ten watchdog periods (at least
    // 10 minutes) before they give up on it.
    if (this.communicator.worldSize > 1) await this.communicator.barrier({ timeoutMs: Math.max(600_000, 10_000 * this.config.dist.timeoutSeconds) });
    return dir;
  }

  /**
   * Makes fit() return after the step in flight (with a checkpoint), e.g. on Ctrl-C. With several ranks,
   * every rank stops after the first step that ends after any rank asked.
   */
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
    // Ranks decide to stop only on the agreed flag, so they all run the same steps and collectives.
    const stopping = () => (this.communicator.worldSize > 1 ? this.#stopAgreed : this.#stopRequested);
    while (!this.done && !stopping()) {
      await this.step();
      if (ev.every > 0 && this.#step % ev.every === 0 && !this.done) await this.evaluate();
      if (ck.every > 0 && this.#step % ck.every === 0 && !this.done) await this.saveCheckpointAsync();
    }
    const evalResult = Object.keys(this.validation).length > 0 ? await this.evaluate() : null;
    const dir = await this.saveCheckpointAsync();
    return { steps: this.#step, finalLoss: this.lastFiniteLoss, eval: evalResult, checkpoint: dir, stopped: !this.done, alreadyDone: false };
  }

  /** Hands a record to every sink, in order (rank 0 alone writes records). */
  #record(record: MetricRecord): void {
    if (!this.#leader) return;
    for (const s of this.#sinks) s.write(record);
  }

  /** Releases the run lock, the optimizer, the model and the data. Idempotent. */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#lock?.release();
    this.#gradReduce?.dispose();
    this.optimizer.dispose();
    this.#shard?.dispose();
    this.model.dispose();
    this.data.close();
  }
}
