// parts.ts: what a Trainer is made of (TrainerParts), the checks that the parts are the ones the config
// describes, and partsFromConfig, which builds them from a training config: the data (TrainingData.fromConfig),
// the model, the optimizer (optimizerFromConfig) and the peak FLOP/s (measured by the backend unless the
// config gives it).
import { measurePeakFlops, setThreads } from '../core/backend';
import { invalidArg } from '../core/errors';
import { normalDevice } from '../core/tensor';
import { MptModel } from '../model/mpt';
import { mptConfig, type MptConfig } from '../model/config';
import { AdamW, PtwdController } from '../optim/index';
import { planBatch, type BatchPlan, type TrainConfig } from './config';
import type { Communicator } from '../dist/communicator';
import { TrainingData, checkEvalPolicy, checkVocab } from './data';
import type { MetricSink } from './metrics';
import { optimizerFromConfig, type TrainOptimizer } from './optimizer';
import { OptimizerShard } from '../dist/zero';
import { FullShard } from '../dist/fsdp';

/**
 * What a trainer is made of. The config says what the run is (steps, evaluation and checkpoint cadence, run
 * directory, seed, the divergence rule) and is saved in every checkpoint's trainer_state.json, so the parts
 * must be the ones it describes: create() checks the model's architecture and precision, the optimizer's
 * arenas, the loader's batch shape, seed and vocabulary, and the validation sets against it. On success the
 * trainer owns the model, the optimizer and the data (dispose() releases them); on failure the caller still does.
 */
export interface TrainerParts {
  /** A training config, resolved (resolveTrainConfig) or as JSON gives it; it is validated again. */
  config: TrainConfig;
  model: MptModel;
  optimizer: TrainOptimizer;
  data: TrainingData;
  /**
   * The ranks of the run (data parallel): the loader must draw this rank's share (TrainingData.fromConfig
   * with the rank and world size) and, under dist.sharding 'optimizer', the optimizer must hold this rank's
   * shard (optimizerFromConfig with the communicator). Defaults to a world of one.
   */
  communicator?: Communicator;
  /** Where the records go, in order. Defaults to metrics.jsonl in config.runDir; a list replaces that (add JsonlMetricSink.inRunDir(runDir) to keep it). */
  sinks?: MetricSink[];
  /** FLOP/s that MFU is counted against. Defaults to config.peakFlops, else measured now (measurePeakFlops). */
  peakFlops?: number;
}

export function isTrainerParts(v: unknown): v is TrainerParts {
  const o = v as Partial<TrainerParts> | null;
  return typeof o === 'object' && o !== null && (o.model instanceof MptModel || o.data instanceof TrainingData);
}

/**
 * Each part is of its kind and is the one `config` describes (errors name the part and the config key);
 * returns the batch plan of `worldSize` ranks, as seen from `rank`.
 */
export function checkParts(parts: TrainerParts, config: TrainConfig, worldSize: number, where: string, rank = 0): BatchPlan {
  const { model, optimizer, data } = parts;
  if (!(model instanceof MptModel)) throw invalidArg(`${where}: model must be an MptModel`);
  if (!(data instanceof TrainingData)) throw invalidArg(`${where}: data must be a TrainingData`);
  const o = optimizer as Partial<TrainOptimizer> | null;
  if (o === null || typeof o !== 'object' || !(o.adamw instanceof AdamW) || !(o.ptwd instanceof PtwdController) || typeof o.lr !== 'function') {
    throw invalidArg(`${where}: optimizer must be { adamw: AdamW, ptwd: PtwdController, lr(step) } (see optimizerFromConfig)`);
  }
  const expected = mptConfig(config.model.preset, config.model.overrides);
  const differ = (Object.keys(expected) as (keyof MptConfig)[]).filter((k) => expected[k] !== model.config[k]);
  if (differ.length > 0) {
    const show = (c: MptConfig) => differ.map((k) => `${k} ${JSON.stringify(c[k])}`).join(', ');
    throw invalidArg(`${where}: the model has ${show(model.config)} but 'model.preset' and 'model.overrides' give ${show(expected)}`);
  }
  if (model.precision !== config.model.precision) throw invalidArg(`${where}: the model's precision is '${model.precision}' but 'model.precision' is '${config.model.precision}'`);
  if (model.device !== normalDevice(config.model.device)) {
    throw invalidArg(`${where}: the model is on '${model.device}' but 'model.device' is '${config.model.device}'`);
  }
  if (model.checkpointEvery !== config.model.checkpointEvery) {
    throw invalidArg(`${where}: the model's checkpointEvery is ${model.checkpointEvery} but 'model.checkpointEvery' is ${config.model.checkpointEvery}`);
  }
  const a = optimizer.adamw;
  const shard = o.shard ?? null;
  const mode = config.dist.sharding;
  if ((mode === 'full') !== (model.store !== null)) {
    throw invalidArg(`${where}: 'dist.sharding' is '${mode}' but the model ${model.store ? 'keeps its parameters in a store (sharding \'full\')' : 'holds its own parameters'} (build the parts with partsFromConfig)`);
  }
  if (mode === 'none') {
    if (shard !== null) throw invalidArg(`${where}: optimizer.shard is set but 'dist.sharding' is 'none' (build the optimizer with optimizerFromConfig)`);
    if (a.params !== model.params || a.grads !== model.grads) throw invalidArg(`${where}: optimizer.adamw must update the model's params from the model's grads`);
    if (a.computeCopy !== model.computeParams) {
      throw invalidArg(`${where}: optimizer.adamw must write the model's bf16 compute copy (computeCopy: model.computeParams), and only for a bf16 model`);
    }
  } else {
    const kind = mode === 'full' ? FullShard : OptimizerShard;
    if (!(shard instanceof kind) || shard.disposed || (mode === 'full' && shard !== model.store)) {
      throw invalidArg(`${where}: 'dist.sharding' is '${mode}' but optimizer.shard is not the live ${kind.name} of this model (build the optimizer with optimizerFromConfig(config, model, communicator))`);
    }
    if (shard.rank !== rank || shard.worldSize !== worldSize) {
      throw invalidArg(`${where}: optimizer.shard is rank ${shard.rank} of ${shard.worldSize}'s shard, but the communicator is rank ${rank} of ${worldSize}`);
    }
    if (a.params !== shard.master || a.grads !== shard.grads || a.computeCopy !== shard.computeCopy) {
      throw invalidArg(`${where}: optimizer.adamw must update optimizer.shard's master weights from its gradients (and write its bf16 copy)`);
    }
    if ((shard.computeCopy === null) !== (model.precision === 'fp32')) throw invalidArg(`${where}: optimizer.shard was cut for a model of another precision`);
  }
  const plan = planBatch(config, model.config, worldSize);
  const loader = data.loader;
  if (loader.seqLen !== plan.seqLen || loader.batchSize !== plan.microBatchSize) {
    throw invalidArg(
      `${where}: the loader draws batches of ${loader.batchSize} x ${loader.seqLen} but 'batch' gives microBatchSize ${plan.microBatchSize} x seqLen ${plan.seqLen}`,
    );
  }
  if (loader.worldSize !== worldSize || loader.rank !== rank) {
    throw invalidArg(
      `${where}: the loader draws the share of rank ${loader.rank} of ${loader.worldSize} but the communicator is rank ${rank} of ${worldSize} ` +
        '(open the data with TrainingData.fromConfig(config, plan, model, rank))',
    );
  }
  if (loader.seed !== config.seed) throw invalidArg(`${where}: the loader's seed is ${loader.seed} but 'seed' is ${config.seed}`);
  checkEvalPolicy(config, data.validation, data.manifest);
  checkVocab(loader, model.config.vocabSize);
  return plan;
}

/** The peak FLOP/s of the config's training dtype: config.peakFlops, else measured now. */
export async function peakFlopsFor(config: TrainConfig): Promise<number> {
  return config.peakFlops ?? (await measurePeakFlops(config.model.precision === 'bf16' ? 'bf16' : 'f32'));
}

/**
 * The parts a resolved config describes, for `communicator`'s ranks, with `sinks`. Applies config.threads
 * (process-wide) before measuring the peak; opens the data before building the model, so data errors come
 * before the allocation. Whatever it built is released when it fails.
 */
export async function partsFromConfig(config: TrainConfig, communicator: Communicator, sinks: MetricSink[]): Promise<Required<TrainerParts>> {
  if (config.threads) setThreads(config.threads);
  const peakFlops = await peakFlopsFor(config);
  const modelConfig = mptConfig(config.model.preset, config.model.overrides);
  const plan = planBatch(config, modelConfig, communicator.worldSize);
  const data = TrainingData.fromConfig(config, plan, modelConfig, communicator.rank);
  let model: MptModel | null = null;
  let store: FullShard | null = null;
  try {
    if (config.dist.sharding === 'full') {
      // the weights live in this rank's shard from the start (optimizerFromConfig initialises them)
      store = new FullShard(communicator, modelConfig, { precision: config.model.precision, device: config.model.device, bucketMB: config.dist.bucketMB });
    }
    model = new MptModel(modelConfig, {
      precision: config.model.precision,
      checkpointEvery: config.model.checkpointEvery,
      seed: config.seed,
      device: config.model.device,
      ...(store ? { store } : {}),
      // a bf16 model under sharding 'optimizer' computes with its bf16 copy: each rank's shard keeps its f32 master range
      ...(config.dist.sharding === 'optimizer' && config.model.precision === 'bf16' ? { masterWeights: false } : {}),
    });
    const optimizer = optimizerFromConfig(config, model, communicator);
    return { config, model, optimizer, data, communicator, sinks, peakFlops };
  } catch (e) {
    model?.dispose();
    store?.dispose();
    data.close();
    throw e;
  }
}

/** Disposes the optimizer and the model and closes the data. */
export function releaseParts(parts: Pick<TrainerParts, 'model' | 'optimizer' | 'data'>): void {
  parts.optimizer.adamw.dispose();
  parts.optimizer.shard?.dispose();
  parts.model.dispose();
  parts.data.close();
}
