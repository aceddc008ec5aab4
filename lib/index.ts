// pajama-train: pretrain MPT-style language models from Node.js with a native core.
export { Tensor, Arena, numelOf, type ArenaEntry, type DType } from './core/tensor';
export { ops, OP_NAMES, type Ops } from './core/ops';
export { backendInfo, setThreads, setIsaLimit, setGemmEngine, type BackendInfo, type IsaLevel } from './core/backend';
export { DisposedError, PajamaEngineError } from './core/errors';
