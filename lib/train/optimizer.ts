// optimizer.ts: the optimizer part of a run: AdamW over the model's arenas and the two schedules that drive
// it step by step (the learning rate, and the weight decay with its PTWD stages), as the trainer is handed
// them. optimizerFromConfig builds the paper's recipe from a training config: warmup + cosine to
// optimizer.minLrRatio of the peak, and PTWD stages (or one constant stage for weightDecay.mode 'constant').
import { AdamW, PtwdController, cosineWithWarmup } from '../optim/index';
import type { MptModel } from '../model/mpt';
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
}

/** AdamW, the learning-rate schedule and the weight-decay controller that `config` describes, for `model`. */
export function optimizerFromConfig(config: TrainConfig, model: MptModel): TrainOptimizer {
  const o = config.optimizer;
  const wd = config.weightDecay;
  // The controller first: it only checks its options, while AdamW allocates two arenas of the model's size.
  const ptwd = new PtwdController({
    values: wd.mode === 'constant' ? [wd.value] : wd.stages,
    ...(wd.mode === 'ptwd' && wd.boundaries ? { boundaries: wd.boundaries } : {}),
    totalSteps: config.steps,
    ...(wd.mode === 'ptwd' && wd.plateau ? { plateau: {} } : {}),
  });
  const adamw = new AdamW(model.params, model.grads, {
    beta1: o.beta1,
    beta2: o.beta2,
    eps: o.eps,
    decayEmbeddings: o.decayEmbeddings,
    computeCopy: model.computeParams ?? false,
  });
  const schedule = { peakLr: o.lr, warmupSteps: o.warmupSteps, totalSteps: config.steps, minLrRatio: o.minLrRatio };
  return { adamw, ptwd, lr: (step) => cosineWithWarmup(step, schedule) };
}
