// optim: what turns gradients into parameter updates: the learning-rate and weight-decay schedules (pure
// functions of the step, plus the PTWD plateau controller), gradient-norm clipping, and AdamW over arenas.
export {
  cosineWithWarmup,
  constantWeightDecay,
  ptwdStage,
  ptwdWeightDecay,
  resolvePtwd,
  PtwdController,
  PTWD_DEFAULT_VALUES,
  type CosineWithWarmupOptions,
  type ConstantWeightDecayOptions,
  type PtwdOptions,
  type ResolvedPtwd,
  type PtwdPlateauOptions,
  type PtwdControllerOptions,
  type PtwdControllerState,
  type PtwdTransition,
} from './schedule';
export {
  AdamW,
  defaultDecay,
  isEmbedding,
  MAX_ELEMENTS_PER_CALL,
  type AdamWOptions,
  type AdamWStepArgs,
  type AdamWState,
  type AdamWLoadState,
} from './adamw';
export { gradNorm, gradNormAsync, clipGradNorm, clipGradNormAsync, clipFromSums, type GradNorm, type ClipResult, type ClipOptions } from './clip';
