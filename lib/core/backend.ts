// backend.ts: what the native core found on this machine, and its run-time settings.
import { native, type BackendInfo, type IsaLevel } from '../native';
import { invalidArg } from './errors';

export type { BackendInfo, IsaLevel } from '../native';

/** CPU features, the SIMD level in use, the GEMM engine, threads and the build's CUDA status. */
export function backendInfo(): BackendInfo {
  return native().backendInfo();
}

/** Threads for every parallel op; 0 restores the default (OMP_NUM_THREADS, else all cores). */
export function setThreads(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > 1024) throw invalidArg(`setThreads: ${n} is not a thread count in [0, 1024]`);
  return native().setThreads(n);
}

const ISA_LEVELS: readonly IsaLevel[] = ['scalar', 'avx2', 'avx512', 'avx512_bf16'];

/**
 * Caps the SIMD code paths the kernels pick (the CPU's own level is never exceeded). Tests use it to run
 * every path on one machine. Returns the level now in force. Also settable with PAJAMA_CPU_ISA.
 */
export function setIsaLimit(level: IsaLevel): IsaLevel {
  if (!ISA_LEVELS.includes(level)) throw invalidArg(`setIsaLimit: '${level}' is not one of ${ISA_LEVELS.join(', ')}`);
  return native().setIsaLimit(level);
}

/** 'onednn' (when built with it) or 'portable' (always there). Also settable with PAJAMA_GEMM=portable. */
export function setGemmEngine(engine: 'onednn' | 'portable'): void {
  if (engine !== 'onednn' && engine !== 'portable') throw invalidArg(`setGemmEngine: '${engine}' is not 'onednn' or 'portable'`);
  native().setGemmEngine(engine);
}
