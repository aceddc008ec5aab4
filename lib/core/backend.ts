// backend.ts: what the native core found on this machine, its run-time settings, and what it can do (the
// peak FLOP/s that MFU is counted against).
import { native, type BackendInfo, type CudaMemoryStats, type DeviceSpec, type IsaLevel } from '../native';
import { fromNative, invalidArg } from './errors';
import { ops } from './ops';
import { checkDevice, Tensor } from './tensor';

export type { BackendInfo, CudaMemoryStats, IsaLevel } from '../native';

/** CPU features, the SIMD level in use, the GEMM engine, threads and the build's CUDA status. */
export function backendInfo(): BackendInfo {
  return native().backendInfo();
}

/**
 * Waits until everything queued on `device` has run (ops on a GPU settle once queued). A GPU kernel's failure
 * surfaces here or at the next op that waits. 'cpu' (the default) returns at once: CPU ops finish before they
 * settle.
 */
export function synchronize(device: DeviceSpec = 'cpu'): void {
  try {
    native().synchronize(checkDevice(device, 'synchronize'));
  } catch (e) {
    throw fromNative(e);
  }
}

/** The CUDA caching allocator's counters for `device` (default 'cuda'); an argument error without CUDA. */
export function cudaMemoryStats(device: DeviceSpec = 'cuda'): CudaMemoryStats {
  try {
    return native().cudaMemoryStats(checkDevice(device, 'cudaMemoryStats'));
  } catch (e) {
    throw fromNative(e);
  }
}

/** Waits for `device` (default 'cuda'), then hands its cached free blocks back to the driver. */
export function emptyCudaCache(device: DeviceSpec = 'cuda'): void {
  try {
    native().emptyCudaCache(checkDevice(device, 'emptyCudaCache'));
  } catch (e) {
    throw fromNative(e);
  }
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

/**
 * 'tiles' (our flash-attention tiles) or 'gemm' (the attention's products through the GEMM engine, on AMX
 * where the CPU has it); both compute the same function to the same float64-checked bounds. Also settable
 * with PAJAMA_ATTENTION=tiles|gemm; backendInfo().attention says which is in force.
 */
export function setAttentionEngine(engine: 'tiles' | 'gemm'): void {
  if (engine !== 'tiles' && engine !== 'gemm') throw invalidArg(`setAttentionEngine: '${engine}' is not 'tiles' or 'gemm'`);
  native().setAttentionEngine(engine);
}

/**
 * Peak FLOP/s of a square GEMM of `dtype` (size x size times size x size), measured now: the best of three
 * timed products after one warm-up. The denominator of MFU; it counts what this backend reaches with its
 * threads and GEMM engine at this moment, so measure it in the process that trains.
 */
export async function measurePeakFlops(dtype: 'f32' | 'bf16', size = 2048): Promise<number> {
  if (dtype !== 'f32' && dtype !== 'bf16') throw invalidArg(`measurePeakFlops: dtype must be 'f32' or 'bf16', got ${JSON.stringify(dtype)}`);
  if (!Number.isSafeInteger(size) || size < 1) throw invalidArg(`measurePeakFlops: size must be a positive integer, got ${size}`);
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
