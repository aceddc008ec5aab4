// optimizer.ts: the optimizer part of a run: AdamW over the model's arenas and the two schedules that drive
// it step by step (the learning rate, and the weight decay with its PTWD stages), as the trainer is handed
// them. optimizerFromConfig builds the paper's recipe from a training config: warmup + cosine to
// optimizer.minLrRatio of the peak, and PTWD stages (or one constant stage for weightDecay.mode 'constant').
//
// With dist.sharding 'optimizer' (ZeRO-2, dist/zero.ts) or 'full' (FSDP, dist/fsdp.ts: the model's store) AdamW
// updates this rank's shard only: its master weights, gradients and moments are the shard's arenas, and the
// shard's pieces decay as their full entries do.
import { AdamW, PtwdController, cosineWithWarmup, defaultDecay, isEmbedding } from '../optim/index';
import type { MptModel } from '../model/mpt';
import { WorldOfOne, type Communicator } from '../dist/communicator';
import { OptimizerShard, loadShardMaster, type TrainingShard } from '../dist/zero';
import { initializeMptWeightsFromSeed } from '../model/mpt';
import { FullShard } from '../dist/fsdp';
import { invalidArg } from '../core/errors';
import type { TrainConfig } from './config';

export interface TrainOptimizer {
  /**
   * AdamW over the model's parameter and gradient arenas (with the model's bf16 compute copy, when it has
   * one, written in the same pass). Its moments and step count are checkpointed.
   */
  readonly adamw: AdamW;
  /** The learning rate of the update with 0-based index `step`: a pure function of the step. */
  lr(step: number): number;
  /** The weight decay of each update and its stage; it observes each step's loss (PTWD's plateau rule) and is checkpointed. */
  readonly ptwd: PtwdController;
  /**
   * This rank's shard of the training state (dist.sharding 'optimizer': an OptimizerShard; 'full': the model's
   * FullShard): AdamW runs over its arenas; null when every rank holds the whole state (sharding 'none').
   */
  readonly shard?: TrainingShard | null;
}

/**
 * AdamW, the learning-rate schedule and the weight-decay controller that `config` describes, for `model`, on
 * this rank of `communicator` (a world of one by default; it decides the shard under sharding 'optimizer').
 */
export function optimizerFromConfig(config: TrainConfig, model: MptModel, communicator: Communicator = new WorldOfOne()): TrainOptimizer {
  const o = config.optimizer;
  const wd = config.weightDecay;
  // The controller first: it only checks its options, while AdamW allocates two arenas of the model's size.
  const ptwd = new PtwdController({
    values: wd.mode === 'constant' ? [wd.value] : wd.stages,
    ...(wd.mode === 'ptwd' && wd.boundaries ? { boundaries: wd.boundaries } : {}),
    totalSteps: config.steps,
    ...(wd.mode === 'ptwd' && wd.plateau ? { plateau: {} } : {}),
  });
  const schedule = { peakLr: o.lr, warmupSteps: o.warmupSteps, totalSteps: config.steps, minLrRatio: o.minLrRatio };
  const lr = (step: number) => cosineWithWarmup(step, schedule);
  const betas = { beta1: o.beta1, beta2: o.beta2, eps: o.eps };
  if (config.dist.sharding === 'none') {
    const adamw = new AdamW(model.params, model.grads, { ...betas, decayEmbeddings: o.decayEmbeddings, computeCopy: model.computeParams ?? false });
    return { adamw, ptwd, lr, shard: null };
  }
  let shard: TrainingShard;
  if (config.dist.sharding === 'full') {
    if (!(model.store instanceof FullShard)) throw invalidArg("optimizerFromConfig: 'dist.sharding' is 'full' but the model holds its own parameters (build it with store: a FullShard)");
    shard = model.store;
  } else {
    const own = model.hasMasterWeights;
    shard = new OptimizerShard(communicator, { params: own ? model.params : null, grads: model.grads, computeParams: model.computeParams }, { bucketMB: config.dist.bucketMB });
  }
  try {
    // Master weights that exist only in the shards start here, from the seed the model would have used.
    if (shard.ownsMaster) loadShardMaster(shard, model.config, (full) => initializeMptWeightsFromSeed(full, model.config.nLayers, config.seed));
    // A shard's pieces are flat: each decays as its whole entry in the model's layout does.
    const full = new Map((shard instanceof FullShard ? shard.layout : model.grads.entries).map((e) => [e.name, e]));
    const decays = (name: string) => {
      const e = full.get(name)!;
      return defaultDecay(e) && (o.decayEmbeddings || !isEmbedding(e));
    };
    const adamw = new AdamW(shard.master, shard.grads, { ...betas, decay: (e) => decays(e.name), computeCopy: shard.computeCopy ?? false });
    return { adamw, ptwd, lr, shard };
  } catch (e) {
    // the optimizer's own shard; a FullShard is the model's store, released with the parts
    if (shard.mode === 'optimizer') shard.dispose();
    throw e;
  }
}
