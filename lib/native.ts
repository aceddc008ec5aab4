// native.ts: the one file that types the whole native surface (the contract between TypeScript and the
// addon) and loads the binary. Nothing else in lib/ touches the addon object directly.
//
// Conventions of every op: outputs (and saved statistics) first, then inputs and weights, then sizes and
// scalars. `name(...)` runs at once on the calling thread; `nameAsync(...)` runs on the native worker thread
// and resolves when done (ops queue in call order). Parameter gradients accumulate (+=), activation
// gradients are overwritten.
import * as path from 'node:path';
import * as fs from 'node:fs';

export type DType = 'f32' | 'bf16' | 'i32';
/**
 * Where a tensor lives: 'cpu', or a CUDA device ('cuda' is 'cuda:0'). Tensors report the normalised name
 * ('cpu' or 'cuda:N').
 */
export type DeviceSpec = 'cpu' | 'cuda' | `cuda:${number}`;
export type IsaLevel = 'scalar' | 'avx2' | 'avx512' | 'avx512_bf16';

/** A native-owned buffer. JS never sees its pointer. */
export interface NativeTensor {
  readonly dtype: DType;
  readonly shape: number[];
  readonly numel: number;
  readonly byteLength: number;
  readonly byteOffset: number;
  readonly disposed: boolean;
  readonly isView: boolean;
  /** 'cpu' or 'cuda:N'. */
  readonly device: string;
  dispose(): void;
  view(elementOffset: number, shape: number[]): NativeTensor;
  copyFrom(src: Float32Array | Uint16Array | Int32Array): void;
  copyTo(dst: Float32Array | Uint16Array | Int32Array): void;
  fill(value: number): void;
}

export interface BackendInfo {
  cpu: {
    vendor: string;
    brand: string;
    features: Record<
      'sse42' | 'avx' | 'avx2' | 'fma' | 'f16c' | 'avx512f' | 'avx512bw' | 'avx512vl' | 'avx512dq' | 'avx512bf16' | 'amxBf16',
      boolean
    >;
    detectedIsa: IsaLevel;
    activeIsa: IsaLevel;
  };
  gemm: { engine: 'onednn' | 'portable'; oneDnnAvailable: boolean; bf16Native: boolean; description: string };
  /**
   * Which attention kernels run: 'tiles' (our flash-attention tiles on AVX512-BF16 / AVX-512 / portable code)
   * or 'gemm' (the score and value products through the GEMM engine, so oneDNN puts them on AMX where the CPU
   * has it). The default is 'gemm' on CPUs with AMX-BF16 when oneDNN is there, 'tiles' elsewhere.
   */
  attention: { engine: 'tiles' | 'gemm' };
  threads: number;
  /**
   * How kernels treat denormal floats: 'flush-to-zero' (x86: FTZ and DAZ on every thread that runs a kernel,
   * as GPU kernels do; JavaScript's own arithmetic is untouched) or 'ieee' (computed exactly, and slowly).
   */
  denormals: 'flush-to-zero' | 'ieee';
  openmp: boolean;
  cuda: {
    compiled: boolean;
    /** At least one usable CUDA device; when false, `reason` says why ('cuda: unavailable (reason)'). */
    available: boolean;
    reason?: string;
    /** Whether this build has the cuBLASLt ops (linear, gemm, the LM head) on CUDA; `cublasReason` if not. */
    cublas: boolean;
    cublasReason?: string;
    runtimeVersion?: number;
    driverVersion?: number;
    devices: { name: string; computeCapability: string; totalMemory: number }[];
    error?: string;
  };
  buildSystem?: string;
  mpi: MpiInfo;
}

/** MPI as this build and process see it (native/src/dist/comm.cc). */
export interface MpiInfo {
  /** pajama_mpi.so was built (CMake found MPI); `reason` says why not. */
  built: boolean;
  reason?: string;
  /** An MPI launcher started this process (`launcher`: the environment variable that shows it). */
  launched: boolean;
  launcher?: string;
  /** commInit() has started MPI (only ever in a launched process). */
  initialized: boolean;
  rank: number;
  worldSize: number;
  localRank: number;
  threadLevel?: number;
  library?: string;
  /** Collectives on CUDA tensors go through NCCL (CMake found CUDA and NCCL); `ncclReason` says why not. */
  nccl: boolean;
  ncclReason?: string;
}

type CommBuf = NativeTensor | Float32Array | Float64Array | Int32Array | Uint8Array | BigInt64Array;

/** A CUDA device's caching allocator, in bytes (driverAllocs: cudaMalloc calls so far). */
export interface CudaMemoryStats {
  allocated: number;
  cached: number;
  peak: number;
  driverAllocs: number;
}

type T = NativeTensor;
type Sync<A extends unknown[], R = void> = (...args: A) => R;

/** Every op: [its arguments, its return]. The addon exports `name` and `nameAsync` for each. */
export interface NativeOpSignatures {
  // gelu.cc
  geluForward: [[out: T, inp: T]];
  geluBackward: [[dinp: T, inp: T, dout: T]];
  // embedding.cc: ids (N) i32 in [0, vocabLimit); wte (V, C)
  embeddingForward: [[out: T, ids: T, wte: T, vocabLimit: number]];
  embeddingBackward: [[dwte: T, ids: T, dout: T]];
  // layernorm.cc: inp (N, C), weight (C), mean/rstd (N) f32
  layerNormForward: [[out: T, mean: T, rstd: T, inp: T, weight: T, eps: number]];
  layerNormBackward: [[dinp: T, dweight: T, dout: T, inp: T, weight: T, mean: T, rstd: T]];
  // linear.cc: out (N, OC) = inp (N, C) @ weight (OC, C)^T
  matmulForward: [[out: T, inp: T, weight: T]];
  matmulBackward: [[dinp: T | null, dweight: T | null, dout: T, inp: T, weight: T]];
  // C = alpha * op(A) @ op(B) + beta * C on 2-D tensors
  gemm: [[c: T, a: T, b: T, transA: boolean, transB: boolean, alpha: number, beta: number]];
  // residual.cc: out = a + b (any float dtypes, same numel)
  residualForward: [[out: T, a: T, b: T]];
  // attention.cc: qkv (B, T, 3, H, D); out (B, T, H, D); lse (B, H, T) f32; slopes (H) f32
  attentionForward: [[out: T, lse: T, qkv: T, slopes: T, nHeads: number]];
  attentionBackward: [[dqkv: T, dout: T, qkv: T, out: T, lse: T, slopes: T, nHeads: number]];
  // attention_cached.cc: inference over a K/V cache; qkv (B, Tq, 3, H, D) of new positions [past, past + Tq);
  // kCache, vCache (B, H, maxLen, D) get their k, v there; out (B, Tq, H, D)
  attentionCachedForward: [[out: T, kCache: T, vCache: T, qkv: T, slopes: T, nHeads: number, past: number]];
  // cross_entropy.cc: fused LM head + softmax cross-entropy; see ops.ts for the contract
  crossEntropyForward: [[losses: T, inp: T, wte: T, targets: T, vocabSize: number, ignoreIndex: number], number];
  crossEntropyForwardBackward: [
    [losses: T, dinp: T, dwte: T, inp: T, wte: T, targets: T, vocabSize: number, ignoreIndex: number, gradScale: number],
    number,
  ];
  // adamw.cc: segments = [offset, length, decay(0|1)] triples over the arena
  adamwUpdate: [
    [params: T, grads: T, m: T, v: T, paramsBf16: T | null, segments: Int32Array, lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number, gradScale: number],
  ];
  // reduce.cc
  sumSquares: [[t: T], [sumSquares: number, nonFinite: number]];
  scaleInPlace: [[t: T, factor: number]];
  // cast.cc: f32 <-> bf16, round to nearest even
  cast: [[out: T, inp: T]];
  /** The same dtype and element count, between any two devices (the one op whose tensors may differ in device). */
  copy: [[out: T, inp: T]];
  // minhash.cc (typed arrays, not tensors; pinned until an Async run is done, so do not transfer or resize
  // their buffers meanwhile). Document i is text[offsets[i], offsets[i+1]) of UTF-8; offsets (n + 1) are
  // non-decreasing, Uint32Array for text under 4 GiB, else Float64Array of exact integers.
  // signatures (n, numPerm) u32; bandKeys (n, bands) u64; numPerm in [1, 1024], shingleChars in [1, 1024],
  // bands * rows <= numPerm, seed a safe integer. See lib/data/corpus/minhash.ts for the algorithm's contract.
  minhashSignatures: [
    [
      signatures: Uint32Array,
      bandKeys: BigUint64Array,
      text: Uint8Array,
      offsets: Uint32Array | Float64Array,
      numPerm: number,
      shingleChars: number,
      bands: number,
      rows: number,
      seed: number,
    ],
  ];
  // keys (m) u64, ids (m) u32: sorted together in place by (key, id) ascending
  sortKeyIds: [[keys: BigUint64Array, ids: Uint32Array]];
}

export type NativeOps = {
  [K in keyof NativeOpSignatures]: Sync<NativeOpSignatures[K][0], NativeOpSignatures[K] extends [unknown[], infer R] ? R : void>;
} & {
  [K in keyof NativeOpSignatures as `${K & string}Async`]: Sync<
    NativeOpSignatures[K][0],
    Promise<NativeOpSignatures[K] extends [unknown[], infer R] ? R : void>
  >;
};

export interface NativeAddon extends NativeOps {
  Tensor: new (dtype: DType, shape: number[], device?: DeviceSpec) => NativeTensor;
  backendInfo(): BackendInfo;
  /** Waits for everything queued on the device ('cpu': returns at once). */
  synchronize(device?: DeviceSpec): void;
  cudaMemoryStats(device?: DeviceSpec): CudaMemoryStats;
  emptyCudaCache(device?: DeviceSpec): void;
  /** 0 restores the default (OMP_NUM_THREADS, else every core). Returns the count now in force. */
  setThreads(n: number): number;
  /** Lower the SIMD level kernels may use (never above what the CPU has). Returns the level now in force. */
  setIsaLimit(level: IsaLevel): IsaLevel;
  setGemmEngine(engine: 'onednn' | 'portable'): void;
  setAttentionEngine(engine: 'tiles' | 'gemm'): void;
  /** Starts MPI when an MPI launcher started this process (else a world of one); idempotent. */
  commInit(): MpiInfo;
  /** MPI_Abort of every rank; a no-op where MPI was not started. */
  commAbort(code: number): void;
  commFinalize(): void;
  // The collectives (native/src/dist/comm.cc), on the worker thread in order with the ops.
  commAllReduceAsync(buf: CommBuf, op: 'sum' | 'max' | 'min'): Promise<void>;
  commReduceScatterAsync(out: CommBuf, inp: CommBuf, op: 'sum' | 'max' | 'min'): Promise<void>;
  commAllGatherAsync(out: CommBuf, inp: CommBuf): Promise<void>;
  commBroadcastAsync(buf: CommBuf, root: number): Promise<void>;
  commBarrierAsync(): Promise<void>;
}

function locate(): string {
  const override = process.env.PAJAMA_ADDON;
  if (override) return path.resolve(override);
  // lib/ in a checkout (tests run the .ts sources) or dist/lib/ once compiled.
  for (const rel of ['../build/Release/pajama_native.node', '../../build/Release/pajama_native.node']) {
    const p = path.resolve(__dirname, rel);
    if (fs.existsSync(p)) return p;
  }
  throw new Error(
    'pajama-train: native addon not built (build/Release/pajama_native.node is missing); run `npm run build:native`',
  );
}

let loaded: NativeAddon | undefined;

/** The addon, loaded on first use. */
export function native(): NativeAddon {
  if (!loaded) {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    loaded = require(locate()) as NativeAddon;
    const info = loaded.backendInfo();
    if (info.gemm.engine === 'portable' && !info.gemm.oneDnnAvailable) {
      process.emitWarning(
        'pajama-train was built without oneDNN: matrix products use the portable blocked GEMM (slower). ' +
          'Install libdnnl-dev and rebuild for full speed.',
        { code: 'PAJAMA_NO_ONEDNN' },
      );
    }
  }
  return loaded;
}
