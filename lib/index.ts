// pajama-train: pretrain MPT-style language models from Node.js with a native core.
export { Tensor, Arena, numelOf, type ArenaEntry, type DType, type DeviceSpec } from './core/tensor';
export { ops, OP_NAMES, type Ops } from './core/ops';
export {
  backendInfo,
  setThreads,
  setIsaLimit,
  setGemmEngine,
  setAttentionEngine,
  measurePeakFlops,
  synchronize,
  cudaMemoryStats,
  emptyCudaCache,
  type BackendInfo,
  type CudaMemoryStats,
  type IsaLevel,
} from './core/backend';
export { DisposedError, PajamaEngineError } from './core/errors';
export * from './model/config';
export { MptModel, initializeMptWeights, initializeMptWeightsFromSeed, type MptModelOptions, type ParameterStore, type Precision } from './model/mpt';
export { alibiSlopes } from './model/alibi';
export { MptKvCache, type KvCacheOptions, type AppendOptions } from './model/kv-cache';
export * from './optim/index';
export * from './data/index';
export { Trainer, type StepMetrics, type EvalMetrics, type TrainerOptions, type TrainerParts, type DataPlan, type MemoryReport } from './train/trainer';
export { TrainingData, manifestTokenizer, chatTokenizerSpec, splitChatValidation, type TrainingDataOptions, type TrainingLoader, type TrainingLoaderState, type ChatDataStats } from './train/data';
export { optimizerFromConfig, type TrainOptimizer } from './train/optimizer';
export { expandGrid, runSweep, sweepRunConfig, parseSeeds, SweepStoppedError, SWEEP_FILE, SWEEP_RUNS_DIR, RUN_CONFIG_FILE, GROUPS_KEY, type SweepRun, type SweepSpec, type SweepProgress, type SweepOptions } from './train/sweep';
export {
  WorldOfOne,
  MpiCommunicator,
  initCommunicator,
  type Communicator,
  type CommBuffer,
  type MpiCommunicatorOptions,
  type ReduceOp,
} from './dist/communicator';
export { GradientAllReduce, gradientBuckets, type GradientBucket } from './dist/ddp';
export { OptimizerShard, ShardCollectives, loadShardMaster, shardRange, shardLayout, type ShardRange, type ShardedModel, type TrainingShard } from './dist/zero';
export { FullShard, type FullShardOptions, type ShardedUnit } from './dist/fsdp';
export { checkSameRun, RankMismatchError, type RunIdentity } from './dist/identity';
export {
  planCluster,
  formatPlan,
  mptActivationBytes,
  parseTokenCount,
  GPU_SPECS,
  GPU_KINDS,
  SHARDING_MODES,
  DEFAULT_COMPUTE_FRACTION,
  type PlanOptions,
  type ClusterPlan,
  type ModePlan,
  type MemoryBreakdown,
  type GpuSpec,
  type GpuKind,
  type ShardingMode,
  type PlanOptionNamer,
} from './dist/planner';
export { JsonlMetricSink, type MetricSink, type MetricRecord } from './train/metrics';
export { resolveTrainConfig, planBatch, applyOverrides, DEFAULT_TRAIN_CONFIG, TRAIN_SHARDING_MODES, type TrainConfig, type BatchPlan, type TrainShardingMode, type TrainChatConfig } from './train/config';
export {
  saveCheckpoint,
  loadCheckpoint,
  latestCheckpoint,
  listCheckpoints,
  loadModelWeights,
  checkpointTokenizer,
  CheckpointError,
} from './train/checkpoint';
export { mptHfConfig } from './model/hf';
export { writeSafetensors, readSafetensorsHeader, saveArenaSafetensors, loadArenaSafetensors, SafetensorsError } from './train/safetensors';
export * from './eval/index';
