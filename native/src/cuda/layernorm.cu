// layernorm.cu: LayerNorm without bias on the GPU, the twin of ops/layernorm.cc: y = (x - mean) * rstd * weight
// over the last dim, rstd = 1 / sqrt(var + eps) with the biased (population) variance.
// Accumulation rule: parameter gradients accumulate (dweight +=, always f32); activation gradients are
// overwritten (dinp =, in the activation dtype).
// The arithmetic is the CPU's portable row functions' (ForwardRow, BackwardRow), operation for operation: two
// passes with f64 sums for the mean and the variance, the saved f32 mean's lost bits restored by its f64
// remainder (RowShift), backward row sums in f64. Tensors are f32, or bf16 (inp, out, weight, dout, dinp share
// the dtype); mean and rstd are f32.
// Forward: one warp per row (grid-stride over rows), three passes over the row (the later ones hit L1/L2),
// 16-byte packs when C and the pointers allow. out may be inp: each lane reads its own elements before it
// writes them, and no lane reads another's.
// Backward, three kernels, so that dinp may be dout or inp and dweight is deterministic:
//   1. one warp per row: the row sums (x - mean, dout * weight, their product) -> three f32 row constants;
//   2. one thread per column (pack) and row block: walks the block's rows in order, writes dinp element-wise
//      (each element read, then written, by one thread) and sums dout * norm into the block's dweight partial;
//   3. one thread per column: dweight += the partials added in row-block order.
// The row-block size depends on N only, so the order of dweight's additions is the same on any GPU.
#include <algorithm>

#include "../launch.h"
#include "check.h"
#include "kernels.cuh"
#include "runtime.h"

namespace pt {
namespace cuda {

namespace {

constexpr int kRowsPerBlock = kThreads / 32;  // warps (rows at a time) per block of the row kernels
constexpr int kColumnThreads = 128;           // threads per block of the row-block kernel
constexpr int64_t kMaxRowBlocks = 512;        // dweight partials, at most (512 * C f32 of scratch)

// Rows per dweight partial: a function of N only.
int64_t RowBlock(int64_t n) { return std::max<int64_t>(8, (n + kMaxRowBlocks - 1) / kMaxRowBlocks); }

// out (N, C), mean (N), rstd (N), inp (N, C), weight (C). W > 1: C % W == 0 and every pointer is Pack-aligned.
template <int W, typename T>
__global__ void LayerNormForwardKernel(T* out, float* mean, float* rstd, const T* inp, const T* weight, float eps,
                                       int64_t n, int64_t c) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < n; row += warps) {
    const T* x = inp + row * c;
    T* y = out + row * c;
    double sum = 0.0;
    for (int64_t j = int64_t(lane) * W; j < c; j += 32 * W) {
      const Pack<T, W> p = LoadPack<W>(x + j);
#pragma unroll
      for (int k = 0; k < W; k++) sum += double(LoadF32(p.v[k]));
    }
    const double m = WarpSum(sum) / double(c);
    double sq = 0.0;
    for (int64_t j = int64_t(lane) * W; j < c; j += 32 * W) {
      const Pack<T, W> p = LoadPack<W>(x + j);
#pragma unroll
      for (int k = 0; k < W; k++) {
        const double d = double(LoadF32(p.v[k])) - m;
        sq += d * d;
      }
    }
    const float r = float(1.0 / sqrt(WarpSum(sq) / double(c) + double(eps)));
    const float mu = float(m), remainder = float(m - double(mu));  // RowShift
    for (int64_t j = int64_t(lane) * W; j < c; j += 32 * W) {
      const Pack<T, W> p = LoadPack<W>(x + j);
      const Pack<T, W> w = LoadPack<W>(weight + j);
      Pack<T, W> o;
#pragma unroll
      for (int k = 0; k < W; k++) o.v[k] = StoreAs<T>(((LoadF32(p.v[k]) - mu) - remainder) * r * LoadF32(w.v[k]));
      StorePack<W>(y + j, o);
    }
    if (lane == 0) {
      mean[row] = mu;
      rstd[row] = r;
    }
  }
}

// Per-row constants of the backward, from the row sums (BackwardRow's):
//   x = remainder (the f64 mean of x - mean: what the saved f32 mean rounded away), y = mean_j(dnorm),
//   z = rstd * mean_j(dnorm * (x - mean - remainder)), w unused.
// stats (N), dout (N, C), inp (N, C), weight (C), mean (N), rstd (N).
template <int W, typename T>
__global__ void LayerNormRowStatsKernel(float4* stats, const T* dout, const T* inp, const T* weight,
                                        const float* mean, const float* rstd, int64_t n, int64_t c) {
  const int lane = threadIdx.x % 32;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; row < n; row += warps) {
    const T* x = inp + row * c;
    const T* g = dout + row * c;
    const float mu = mean[row];
    double sumD = 0.0, sumDn = 0.0, sumDnD = 0.0;
    for (int64_t j = int64_t(lane) * W; j < c; j += 32 * W) {
      const Pack<T, W> xp = LoadPack<W>(x + j);
      const Pack<T, W> gp = LoadPack<W>(g + j);
      const Pack<T, W> wp = LoadPack<W>(weight + j);
#pragma unroll
      for (int k = 0; k < W; k++) {
        const double d = double(LoadF32(xp.v[k]) - mu);
        const double dn = double(LoadF32(gp.v[k])) * double(LoadF32(wp.v[k]));
        sumD += d;
        sumDn += dn;
        sumDnD += dn * d;
      }
    }
    sumD = WarpSum(sumD);
    sumDn = WarpSum(sumDn);
    sumDnD = WarpSum(sumDnD);
    if (lane == 0) {
      const double shift = sumD / double(c);
      const float r = rstd[row];
      stats[row] = make_float4(float(shift), float(sumDn / double(c)),
                               float(double(r) * (sumDnD - shift * sumDn) / double(c)), 0.0f);
    }
  }
}

// dinp (N, C) =, partial (rowBlocks, C) = this block's sum of dout * norm, dout (N, C), inp (N, C), weight (C),
// mean (N), rstd (N), stats (N). Blocks (., y) cover rows [y * rowBlock, (y + 1) * rowBlock), each thread W
// columns at a time (grid-stride over the columns). dinp may be dout or inp: each element is read, then
// written, by one thread. W > 1: C % W == 0 and every pointer is Pack-aligned.
template <int W, typename T>
__global__ void LayerNormBackwardKernel(T* dinp, float* partial, const T* dout, const T* inp, const T* weight,
                                        const float* mean, const float* rstd, const float4* stats, int64_t n,
                                        int64_t c, int64_t rowBlock) {
  const int64_t lo = int64_t(blockIdx.y) * rowBlock, hi = lo + rowBlock < n ? lo + rowBlock : n;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x * W;
  for (int64_t j = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * W; j < c; j += stride) {
    const Pack<T, W> wp = LoadPack<W>(weight + j);
    float w[W], part[W];
#pragma unroll
    for (int k = 0; k < W; k++) {
      w[k] = LoadF32(wp.v[k]);
      part[k] = 0.0f;
    }
    for (int64_t i = lo; i < hi; i++) {
      const float mu = mean[i], r = rstd[i];
      const float4 s = stats[i];
      const Pack<T, W> xp = LoadPack<W>(inp + i * c + j);
      const Pack<T, W> gp = LoadPack<W>(dout + i * c + j);
      Pack<T, W> o;
#pragma unroll
      for (int k = 0; k < W; k++) {
        const float norm = ((LoadF32(xp.v[k]) - mu) - s.x) * r;
        const float gj = LoadF32(gp.v[k]);
        const float dnorm = gj * w[k];
        part[k] += gj * norm;
        o.v[k] = StoreAs<T>((dnorm - s.y - norm * s.z) * r);
      }
      StorePack<W>(dinp + i * c + j, o);
    }
    Pack<float, W> pp;
#pragma unroll
    for (int k = 0; k < W; k++) pp.v[k] = part[k];
    StorePack<W>(partial + int64_t(blockIdx.y) * c + j, pp);
  }
}

// dweight (C) += the partials (blocks, C) added in block order.
__global__ void LayerNormDweightKernel(float* dweight, const float* partial, int64_t blocks, int64_t c) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t j = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; j < c; j += stride) {
    float s = 0.0f;
    for (int64_t b = 0; b < blocks; b++) s += partial[b * c + j];
    dweight[j] += s;
  }
}

template <int W, typename T>
void Forward(const LayerNormArgs& a, cudaStream_t stream) {
  LayerNormForwardKernel<W, T><<<GridBlocks(a.n, kRowsPerBlock), kThreads, 0, stream>>>(
      static_cast<T*>(a.out), a.mean, a.rstd, static_cast<const T*>(a.inp), static_cast<const T*>(a.weight), a.eps,
      a.n, a.c);
}

// stats (N) and partial (blocks, C) are scratch; blocks = ceil(N / rowBlock).
template <int W, typename T>
void Backward(const LayerNormArgs& a, float4* stats, float* partial, int64_t rowBlock, int64_t blocks,
              cudaStream_t stream) {
  T* dinp = static_cast<T*>(a.out);
  const T* dout = static_cast<const T*>(a.dout);
  const T* inp = static_cast<const T*>(a.inp);
  const T* weight = static_cast<const T*>(a.weight);
  LayerNormRowStatsKernel<W, T><<<GridBlocks(a.n, kRowsPerBlock), kThreads, 0, stream>>>(stats, dout, inp, weight,
                                                                                        a.mean, a.rstd, a.n, a.c);
  PT_CUDA_LAUNCHED("layerNormBackward", "LayerNormRowStatsKernel");
  const dim3 grid(GridBlocks(a.c / W, kColumnThreads), unsigned(blocks));
  LayerNormBackwardKernel<W, T><<<grid, kColumnThreads, 0, stream>>>(dinp, partial, dout, inp, weight, a.mean,
                                                                     a.rstd, stats, a.n, a.c, rowBlock);
  PT_CUDA_LAUNCHED("layerNormBackward", "LayerNormBackwardKernel");
  LayerNormDweightKernel<<<GridBlocks(a.c, kThreads), kThreads, 0, stream>>>(a.dweight, partial, blocks, a.c);
  PT_CUDA_LAUNCHED("layerNormBackward", "LayerNormDweightKernel");
}

// Whether every T tensor of the op (and the f32 partials) may be read in 16-byte packs of W elements.
template <typename T, int W>
bool Packable(const LayerNormArgs& a, bool backward) {
  bool ok = a.c % W == 0 && PackAligned<T, W>(a.out) && PackAligned<T, W>(a.inp) && PackAligned<T, W>(a.weight);
  if (backward) ok = ok && PackAligned<T, W>(a.dout);
  return ok;
}

}  // namespace

// out (N, C), mean (N), rstd (N), inp (N, C), weight (C)
void LayerNormForward(const LayerNormArgs& a, cudaStream_t stream) {
  if (a.n == 0 || a.c == 0) return;
  ForFloatType(a.dtype, "layerNormForward", "inp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int W = 16 / sizeof(T);
    if (Packable<T, W>(a, false)) Forward<W, T>(a, stream);
    else Forward<1, T>(a, stream);
    PT_CUDA_LAUNCHED("layerNormForward", "LayerNormForwardKernel");
  });
}

// dinp (N, C) =, dweight (C) +=, dout (N, C), inp (N, C), weight (C), mean (N), rstd (N)
void LayerNormBackward(const LayerNormArgs& a, cudaStream_t stream) {
  if (a.n == 0 || a.c == 0) return;
  ForFloatType(a.dtype, "layerNormBackward", "inp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    constexpr int W = 16 / sizeof(T);
    const int device = StreamDevice(stream);
    const int64_t rowBlock = RowBlock(a.n), blocks = (a.n + rowBlock - 1) / rowBlock;  // blocks <= kMaxRowBlocks
    Buffer stats(device, size_t(a.n) * sizeof(float4), "layerNormBackward");                  // (N)
    Buffer partial(device, size_t(blocks) * size_t(a.c) * sizeof(float), "layerNormBackward");  // (blocks, C)
    // C % W == 0 keeps every row of the partials aligned when their start is.
    if (Packable<T, W>(a, true) && PackAligned<float, W>(partial.get())) {
      Backward<W, T>(a, stats.get<float4>(), partial.get<float>(), rowBlock, blocks, stream);
    } else {
      Backward<1, T>(a, stats.get<float4>(), partial.get<float>(), rowBlock, blocks, stream);
    }
  });
}

}  // namespace cuda
}  // namespace pt
