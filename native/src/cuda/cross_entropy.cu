// cross_entropy.cu: the fused LM head and softmax cross-entropy on the GPU, the twin of ops/cross_entropy.cc
// (same contract, launch.h's CrossEntropyArgs; same chunking):
//   logits (N, V) = inp (N, C) @ wte[:V]^T          V = vocabSize, the real vocabulary (wte has Vp >= V rows)
//   loss_i = logsumexp(logits_i) - logits_i[target_i]
//   dlogits = (softmax(logits) - onehot(target)) * gradScale
//   dinp = dlogits @ wte[:V],  dwte[:V] += dlogits^T @ inp
// Accumulation rule: dwte (a parameter gradient, always f32) accumulates (+=); dinp (an activation gradient,
// in inp's dtype) is overwritten. Padded vocabulary rows (>= V) take no part; rows whose target is
// ignoreIndex have loss 0 and zero gradient; any other target outside [0, V) is an argument error, raised
// before anything is written.
//
// The launch, all on the device's stream:
//   1. the targets are checked on the device (the first bad position, by atomicMin) and that one number is
//      read back, so this op waits for the GPU: a bad target throws the CPU op's error;
//   2. blocks of blockRows rows, each filled a chunk of logitRows rows at a time: one cuBLASLt product into an
//      f32 logits chunk (rows padded to ldV = V rounded up to 64), then SoftmaxRowsKernel, one thread block per
//      row, writing the row's loss and (with backward) its dlogits in the input dtype into the block; f32
//      runs use the block itself as the logits chunk (softmax in place). Then two products take the whole
//      block: dinp, and dwte += with beta = 1 straight into the f32 dwte;
//   3. the losses are summed in double by one thread block in a fixed order (deterministic) and read back.
// Chunk sizes follow the CPU's plan with a GPU budget: the most of 128, 256, 512, 1024 (logits) or 2048
// (block) rows whose buffer fits 256 MiB. At V = 50,277 in bf16: logits chunks of 1024 rows (206 MB f32) and
// blocks of 2048 rows (206 MB bf16); larger blocks mean fewer passes over the f32 dwte.
//
// The kernels need only the CUDA runtime and are compiled in every build; the launcher refuses to run in a
// build without cuBLASLt (its products are cuBLASLt's).
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "../launch.h"
#include "blas.h"
#include "check.h"
#include "kernels.cuh"
#include "runtime.h"

namespace pt {
namespace cuda {

namespace {

constexpr float kNegInf = -__builtin_huge_valf();

// Threads per row of the softmax: at V = 50,277, 25 packs of 4 logits per thread.
constexpr int kSoftmaxThreads = 512;
// Threads of the one block that sums the losses.
constexpr int kSumThreads = 1024;
// No bad target: the first-bad-position slot keeps this value.
constexpr unsigned long long kNoBadTarget = ~0ull;

// ---------------------------------------------------------------------------------------------------------
// Kernels

// *firstBad = min over i of the positions whose target is neither ignoreIndex nor in [0, V) (left untouched,
// at kNoBadTarget, when there is none). targets (n).
__global__ void CheckTargetsKernel(unsigned long long* firstBad, const int32_t* targets, int64_t n, int64_t v,
                                   int32_t ignoreIndex) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int32_t t = targets[i];
    if (t != ignoreIndex && (t < 0 || int64_t(t) >= v)) atomicMin(firstBad, (unsigned long long)i);
  }
}

// Online softmax statistics: (m, s) stands for s * exp(m), the sum of exp over the values seen, m their max.
__device__ __forceinline__ void Push(float& m, float& s, float x) {
  if (x > m) {
    s = s * expf(m - x) + 1.0f;  // m = -inf at the start: s = 0 * 0 + 1
    m = x;
  } else {
    s += expf(x - m);
  }
}
// (m, s) += (m2, s2); symmetric in its two operands, bit for bit, so a butterfly leaves every lane equal.
__device__ __forceinline__ void Merge(float& m, float& s, float m2, float s2) {
  const float mx = fmaxf(m, m2);
  if (mx == kNegInf) return;  // both empty
  s = s * expf(m - mx) + s2 * expf(m2 - mx);
  m = mx;
}

// One thread block per row of `rows`: losses (rows) f32 written; with dlogits (rows, ldV) in the input dtype
// T, the row's dlogits too (dlogits may be logits itself, for f32). logits (rows, ldV) f32, of which the first
// V columns are read; targets (rows), none of them out of range (checked first). logits and dlogits rows are
// 16- and 8-byte aligned (ldV is a multiple of 64 and the buffers come from the caching allocator), so they
// move as packs of 4.
template <typename T>
__global__ void __launch_bounds__(kSoftmaxThreads)
    SoftmaxRowsKernel(float* losses, T* dlogits, const float* logits, const int32_t* targets, int64_t V,
                      int64_t ldV, int32_t ignoreIndex, float gradScale) {
  __shared__ float sharedM[kSoftmaxThreads / 32], sharedS[kSoftmaxThreads / 32];
  __shared__ float rowMax, rowSum, targetLogit;
  const int64_t r = blockIdx.x;
  const int32_t target = targets[r];
  const float* row = logits + r * ldV;                 // (V)
  T* drow = dlogits ? dlogits + r * ldV : nullptr;     // (V)
  const int64_t packs = V / 4;
  const int tid = threadIdx.x;

  if (target == ignoreIndex) {  // the same branch for the whole block
    if (tid == 0) losses[r] = 0.0f;
    if (drow) {
      Pack<T, 4> zero;
#pragma unroll
      for (int k = 0; k < 4; k++) zero.v[k] = StoreAs<T>(0.0f);
      for (int64_t p = tid; p < packs; p += blockDim.x) StorePack<4>(drow + p * 4, zero);
      for (int64_t j = packs * 4 + tid; j < V; j += blockDim.x) drow[j] = StoreAs<T>(0.0f);
    }
    return;
  }

  // Max and sum of exp in one pass over the row.
  float m = kNegInf, s = 0.0f;
  for (int64_t p = tid; p < packs; p += blockDim.x) {
    const Pack<float, 4> x = LoadPack<4>(row + p * 4);
#pragma unroll
    for (int k = 0; k < 4; k++) Push(m, s, x.v[k]);
  }
  for (int64_t j = packs * 4 + tid; j < V; j += blockDim.x) Push(m, s, row[j]);
  for (int o = 16; o > 0; o >>= 1) Merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
  const int lane = tid % 32, warp = tid / 32, warps = blockDim.x / 32;
  if (lane == 0) {
    sharedM[warp] = m;
    sharedS[warp] = s;
  }
  __syncthreads();
  if (warp == 0) {
    m = lane < warps ? sharedM[lane] : kNegInf;
    s = lane < warps ? sharedS[lane] : 0.0f;
    for (int o = 16; o > 0; o >>= 1)
      Merge(m, s, __shfl_xor_sync(0xffffffffu, m, o), __shfl_xor_sync(0xffffffffu, s, o));
    if (lane == 0) {
      const float xt = row[target];
      rowMax = m;
      rowSum = s;
      targetLogit = xt;
      losses[r] = float(log(double(s)) + double(m) - double(xt));
    }
  }
  __syncthreads();  // every read of the row is done before dlogits (maybe the row itself) is written
  if (!drow) return;

  // dlogits = exp(x - max) / sum * gradScale, then the target's own (p_t - 1) * gradScale, as the CPU rounds.
  const float maxv = rowMax;
  const float inv = float(1.0 / double(rowSum));
  const float k = inv * gradScale;
  for (int64_t p = tid; p < packs; p += blockDim.x) {
    const Pack<float, 4> x = LoadPack<4>(row + p * 4);
    Pack<T, 4> y;
#pragma unroll
    for (int q = 0; q < 4; q++) y.v[q] = StoreAs<T>(expf(x.v[q] - maxv) * k);
    StorePack<4>(drow + p * 4, y);
  }
  for (int64_t j = packs * 4 + tid; j < V; j += blockDim.x) drow[j] = StoreAs<T>(expf(row[j] - maxv) * k);
  __syncthreads();  // the target's element, written above by some thread, is overwritten after it
  if (tid == 0) drow[target] = StoreAs<T>((expf(targetLogit - maxv) * inv - 1.0f) * gradScale);
}

// *total = the sum of losses (n) in double, in a fixed order whatever the values: one block of kSumThreads.
__global__ void __launch_bounds__(kSumThreads) SumLossesKernel(double* total, const float* losses, int64_t n) {
  __shared__ double shared[kSumThreads / 32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += double(losses[i]);
  s = BlockSum(s, shared);
  if (threadIdx.x == 0) *total = s;
}

// ---------------------------------------------------------------------------------------------------------
// Launcher

// Rows of the logits scratch are padded to a multiple of 64 floats (256 bytes), as on the CPU: aligned rows for
// cuBLASLt and for the packs of the softmax.
int64_t PaddedVocab(int64_t V) { return (V + 63) / 64 * 64; }

constexpr int64_t kBudgetBytes = int64_t(256) << 20;
struct ChunkPlan {
  int64_t logitRows, blockRows;
};
int64_t RowsWithin(int64_t maxRows, int64_t rowBytes) {
  int64_t rows = 128;
  while (rows < maxRows && 2 * rows * rowBytes <= kBudgetBytes) rows *= 2;
  return rows;
}
ChunkPlan PlanChunks(int64_t N, int64_t V, size_t elemBytes, bool backward) {
  const int64_t ldV = PaddedVocab(V);
  ChunkPlan p;
  p.logitRows = std::min(RowsWithin(1024, ldV * int64_t(sizeof(float))), N);
  p.blockRows = p.logitRows;
  if (backward && elemBytes != sizeof(float)) p.blockRows = std::min(RowsWithin(2048, ldV * int64_t(elemBytes)), N);
  return p;
}

template <typename T>
constexpr DType DTypeOf() {
  return std::is_same_v<T, float> ? DType::F32 : DType::BF16;
}

// Throws the CPU op's argument error (ops/cross_entropy.cc, CheckTargets) for the first target that is
// neither ignoreIndex nor in [0, V). `slot` is one device word of scratch. Waits for the GPU.
void CheckTargets(const CrossEntropyArgs& a, unsigned long long* slot, int device, cudaStream_t stream,
                  const std::string& op) {
  PT_CUDA_CHECK(op, cudaMemsetAsync(slot, 0xff, sizeof(*slot), stream));  // kNoBadTarget
  CheckTargetsKernel<<<GridBlocks(a.n, kThreads), kThreads, 0, stream>>>(slot, a.targets, a.n, a.v, a.ignoreIndex);
  PT_CUDA_LAUNCHED(op, "CheckTargetsKernel");
  unsigned long long first = 0;
  Copy(device, &first, slot, sizeof(first), CopyKind::DeviceToHost, op);
  if (first == kNoBadTarget) return;
  int32_t t = 0;
  Copy(device, &t, a.targets + first, sizeof(t), CopyKind::DeviceToHost, op);
  FailAt(ErrorKind::Argument, __FILE__, __LINE__,
         Concat(op, ": targets[", first, "] = ", t, " is outside the vocabulary [0, ", a.v,
                ") and is not ignoreIndex (", a.ignoreIndex, ")"));
}

// The whole op for inputs of type T (float or __nv_bfloat16). losses (N) f32, inp (N, C), wte (Vp, C) of
// which the first V rows are used, targets (N); with backward, dinp (N, C) T and dwte (Vp, C) f32.
template <typename T>
double Run(const CrossEntropyArgs& a, int device, cudaStream_t stream, const std::string& op) {
  const int64_t N = a.n, C = a.c, V = a.v;
  const T* inp = static_cast<const T*>(a.inp);
  const T* wte = static_cast<const T*>(a.wte);
  T* dinp = static_cast<T*>(a.dinp);
  const bool backward = a.backward;
  constexpr bool kF32 = std::is_same_v<T, float>;

  // One word for the first bad target, then the loss sum (double).
  Buffer small(device, 2 * sizeof(double), op);
  CheckTargets(a, small.get<unsigned long long>(), device, stream, op);

  const int64_t ldV = PaddedVocab(V);
  const ChunkPlan plan = PlanChunks(N, V, sizeof(T), backward);
  // (blockRows, ldV) dlogits, with backward; (logitRows, ldV) f32 logits unless the block is the logits (f32).
  Buffer blockBuf(device, backward ? size_t(plan.blockRows * ldV) * sizeof(T) : 0, op);
  Buffer logitsBuf(device, kF32 && backward ? 0 : size_t(plan.logitRows * ldV) * sizeof(float), op);
  T* block = blockBuf.get<T>();

  for (int64_t b0 = 0; b0 < N; b0 += plan.blockRows) {
    const int64_t bRows = std::min(plan.blockRows, N - b0);
    for (int64_t r0 = b0; r0 < b0 + bRows; r0 += plan.logitRows) {
      const int64_t rows = std::min(plan.logitRows, b0 + bRows - r0);
      T* drows = backward ? block + (r0 - b0) * ldV : nullptr;  // (rows, ldV) of the block
      float* lg = logitsBuf.get<float>();
      if constexpr (kF32) {
        if (backward) lg = drows;
      }
      GemmArgs g;  // logits (rows, V) f32, ld ldV = inp rows (rows, C) @ wte[:V]^T
      g.M = rows, g.N = V, g.K = C;
      g.A = inp + r0 * C, g.lda = C;
      g.B = wte, g.ldb = C, g.transB = true;
      g.abType = DTypeOf<T>();
      g.C = lg, g.ldc = ldV, g.cType = DType::F32;
      GemmFor(g, stream, op);
      SoftmaxRowsKernel<T><<<unsigned(rows), kSoftmaxThreads, 0, stream>>>(a.losses + r0, drows, lg, a.targets + r0,
                                                                          V, ldV, a.ignoreIndex, a.gradScale);
      PT_CUDA_LAUNCHED(op, "SoftmaxRowsKernel");
    }
    if (!backward) continue;

    GemmArgs di;  // dinp (bRows, C) = dlogits (bRows, V) @ wte[:V] (V, C)
    di.M = bRows, di.N = C, di.K = V;
    di.A = block, di.lda = ldV;
    di.B = wte, di.ldb = C;
    di.abType = DTypeOf<T>();
    di.C = dinp + b0 * C, di.ldc = C, di.cType = DTypeOf<T>();
    GemmFor(di, stream, op);

    GemmArgs dw;  // dwte[:V] (V, C) += dlogits^T (V, bRows) @ inp block (bRows, C)
    dw.M = V, dw.N = C, dw.K = bRows;
    dw.A = block, dw.lda = ldV, dw.transA = true;
    dw.B = inp + b0 * C, dw.ldb = C;
    dw.abType = DTypeOf<T>();
    dw.C = a.dwte, dw.ldc = C, dw.cType = DType::F32;
    dw.beta = 1.0f;
    GemmFor(dw, stream, op);
  }

  // Ignored rows hold a loss of 0, so the sum over all rows is the sum over the others.
  double* total = small.get<double>() + 1;
  SumLossesKernel<<<1, kSumThreads, 0, stream>>>(total, a.losses, N);
  PT_CUDA_LAUNCHED(op, "SumLossesKernel");
  double sum = 0.0;
  Copy(device, &sum, total, sizeof(sum), CopyKind::DeviceToHost, op);
  return sum;
}

}  // namespace

double CrossEntropy(const CrossEntropyArgs& a, const std::string& op, cudaStream_t stream) {
  if (!HaveCublas()) FailWithoutCublas(op, __FILE__, __LINE__);
  PT_CHECK_ARG(a.n >= 0 && a.c >= 1 && a.v >= 1, op, ": crossEntropy sizes must be N >= 0, C >= 1, V >= 1, got N ",
               a.n, " C ", a.c, " V ", a.v);
  PT_CHECK_ARG(!a.backward || (a.dinp && a.dwte), op, ": the backward form needs dinp and dwte");
  if (a.n == 0) return 0.0;
  const int device = StreamDevice(stream);
  double total = 0.0;
  ForFloatType(a.dtype, op.c_str(), "inp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    total = Run<T>(a, device, stream, op);
  });
  return total;
}

}  // namespace cuda
}  // namespace pt
