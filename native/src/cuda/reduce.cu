// reduce.cu: whole-tensor reductions and scaling on the GPU, the twins of ops/reduce.cc, for global-norm
// clipping and NaN/Inf detection:
//   sumSquares(t) -> [sum of x^2 over the finite elements (in double), number of NaN/Inf elements]
//   scaleInPlace(t, factor): t *= factor (f32 math, rounded once to t's dtype like F32ToBf16)
// f32 or bf16 tensors. sumSquares is deterministic: a grid whose size depends only on the element count (and
// on whether the pointer allows 16-byte packs) writes one partial per block (each thread sums its grid-stride
// elements in order, then a fixed-order block sum), and one block adds the partials in a fixed order. It is
// the only op here that waits for the GPU: it reads the 16-byte result back and synchronises the stream,
// because it returns numbers to JavaScript.
#include <algorithm>

#include "../launch.h"
#include "check.h"
#include "kernels.cuh"
#include "runtime.h"

namespace pt {
namespace cuda {

namespace {

constexpr int64_t kMaxPartials = 1024;  // blocks of the first pass, at most

struct SumSquaresOut {
  double sum;
  unsigned long long nonFinite;
};

// sums (blocks), bad (blocks), x (n)
template <int W, typename T>
__global__ void SumSquaresPartialsKernel(double* sums, unsigned long long* bad, const T* x, int64_t n) {
  __shared__ double sharedSum[32];
  __shared__ unsigned long long sharedBad[32];
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = n / W;
  double s = 0.0;
  unsigned long long nb = 0;
  const auto add = [&](float f) {
    const bool ok = isfinite(f);
    const double d = ok ? double(f) : 0.0;
    s += d * d;
    nb += ok ? 0 : 1;
  };
  for (int64_t p = tid; p < packs; p += stride) {
    const Pack<T, W> v = LoadPack<W>(x + p * W);
#pragma unroll
    for (int k = 0; k < W; k++) add(LoadF32(v.v[k]));
  }
  const int64_t i = packs * W + tid;  // the tail: fewer than W elements
  if (i < n) add(LoadF32(x[i]));
  s = BlockSum(s, sharedSum);
  nb = BlockSum(nb, sharedBad);
  if (threadIdx.x == 0) {
    sums[blockIdx.x] = s;
    bad[blockIdx.x] = nb;
  }
}

// out (1) = the sums of sums (blocks) and bad (blocks); one block.
__global__ void SumSquaresFinalKernel(SumSquaresOut* out, const double* sums, const unsigned long long* bad,
                                      int blocks) {
  __shared__ double sharedSum[32];
  __shared__ unsigned long long sharedBad[32];
  double s = 0.0;
  unsigned long long nb = 0;
  for (int b = threadIdx.x; b < blocks; b += blockDim.x) {
    s += sums[b];
    nb += bad[b];
  }
  s = BlockSum(s, sharedSum);
  nb = BlockSum(nb, sharedBad);
  if (threadIdx.x == 0) {
    out->sum = s;
    out->nonFinite = nb;
  }
}

struct ScaleOp {
  float factor;
  __device__ float operator()(float x) const { return x * factor; }
};

template <typename T>
SumSquaresResult SumSquaresOf(const T* x, int64_t n, cudaStream_t stream) {
  constexpr int W = 16 / sizeof(T);  // one 16-byte pack
  const bool packed = PackAligned<T, W>(x);
  const int64_t items = packed ? n / W : n;
  const unsigned blocks = unsigned(std::min<int64_t>(GridBlocks(items, kThreads), kMaxPartials));
  // (1) result, then sums (blocks), then bad (blocks): 16-byte and 8-byte aligned pieces of one buffer.
  Buffer scratch(StreamDevice(stream), sizeof(SumSquaresOut) + size_t(blocks) * 16, "sumSquares");
  SumSquaresOut* result = scratch.get<SumSquaresOut>();
  double* sums = reinterpret_cast<double*>(result + 1);
  unsigned long long* bad = reinterpret_cast<unsigned long long*>(sums + blocks);
  if (packed) {
    SumSquaresPartialsKernel<W><<<blocks, kThreads, 0, stream>>>(sums, bad, x, n);
  } else {
    SumSquaresPartialsKernel<1><<<blocks, kThreads, 0, stream>>>(sums, bad, x, n);
  }
  PT_CUDA_LAUNCHED("sumSquares", "SumSquaresPartialsKernel");
  SumSquaresFinalKernel<<<1, kThreads, 0, stream>>>(result, sums, bad, int(blocks));
  PT_CUDA_LAUNCHED("sumSquares", "SumSquaresFinalKernel");
  SumSquaresOut host{};
  PT_CUDA_CHECK("sumSquares", cudaMemcpyAsync(&host, result, sizeof host, cudaMemcpyDeviceToHost, stream));
  PT_CUDA_CHECK("sumSquares", cudaStreamSynchronize(stream));
  return SumSquaresResult{host.sum, int64_t(host.nonFinite)};
}

}  // namespace

// x (n) -> sum of squares of its finite elements, and the count of the others
SumSquaresResult SumSquares(const ReduceArgs& a, cudaStream_t stream) {
  if (a.n == 0) return SumSquaresResult{};
  SumSquaresResult r;
  ForFloatType(a.dtype, "sumSquares", "t", [&](auto tag) {
    using T = typename decltype(tag)::type;
    r = SumSquaresOf(static_cast<const T*>(a.x), a.n, stream);
  });
  return r;
}

// x (n) *= factor
void ScaleInPlace(const ReduceArgs& a, cudaStream_t stream) {
  if (a.n == 0) return;
  ForFloatType(a.dtype, "scaleInPlace", "t", [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* x = static_cast<T*>(a.x);
    LaunchMap1(x, x, a.n, ScaleOp{a.factor}, stream);
    PT_CUDA_LAUNCHED("scaleInPlace", "Map1Kernel<ScaleOp>");
  });
}

}  // namespace cuda
}  // namespace pt
