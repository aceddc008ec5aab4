// attention_cached.cu: attention of new positions over a key/value cache on NVIDIA GPUs (inference, forward
// only); the CUDA twin of ops/attention_cached.cc, with the contract of launch.h's AttentionCachedArgs.
//
// Math (as in ops/attention_cached.cc): the Tq new positions p = past + i append their k and v to the caches
// (B, H, maxLen, D); out_i = softmax_j(q_i.K[j] / sqrt(D) + slopes[h] * (j - p)) V[j] over j in [0, p].
// Accumulation rule: no gradients; out is overwritten, the caches are written at the new positions only.
//
// Kernels: AppendKv copies the new k and v (one thread per element, grid-stride). With past == 0 the op is a
// prefill and runs attention.cu's AttentionForward over the packed qkv (its lse goes to a scratch buffer from
// the caching allocator), so a prefill is what the training forward computes. Otherwise CachedRows runs one
// warp per query row (b, h, i), f32 math: the row's keys 32 at a time (each lane one key's dot product against
// q held in shared memory), the warp's online softmax, and out += p_j v_j with p_j broadcast by shuffle, each
// lane owning the head dims d = lane + 32 e. Written to be right (decode reads each cached row once per query;
// the cache, not arithmetic, bounds it). No host synchronisation.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../launch.h"
#include "check.h"
#include "kernels.cuh"
#include "runtime.h"

namespace pt {
namespace cuda {
namespace {

using bf16x = __nv_bfloat16;

constexpr const char* kOp = "attentionCachedForward";
constexpr unsigned kFullMask = 0xffffffffu;
constexpr int kWarps = 4;  // rows per block (one per warp)
constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;

// kCache/vCache[b, h, past + t, d] = qkv[b, t, 1/2, h, d] for every (b, t, h, d).
template <class T>
__global__ void AppendKv(T* kc, T* vc, const T* qkv, int Tq, int H, int D, int L, int past, int64_t n) {
  const int64_t C = int64_t(H) * D;
  for (int64_t e = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; e < n; e += int64_t(gridDim.x) * blockDim.x) {
    const int d = int(e % D);
    const int h = int(e / D % H);
    const int64_t bt = e / C, b = bt / Tq, t = bt % Tq;
    const T* src = qkv + bt * 3 * C + int64_t(h) * D + d;
    const int64_t at = ((b * H + h) * L + past + t) * D + d;
    kc[at] = src[C];
    vc[at] = src[2 * C];
  }
}

// One warp per query row r of the (B, H, Tq) enumeration.
template <class T>
__global__ void __launch_bounds__(kWarps * 32)
    CachedRows(T* out, const T* kc, const T* vc, const T* qkv, const float* slopes, int Tq, int H, int D, int L,
               int past, int64_t rows, float scale) {
  __shared__ float qShared[kWarps][kMaxHeadDim];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t C = int64_t(H) * D;
  float* q = qShared[warp];
  for (int64_t row = int64_t(blockIdx.x) * kWarps + warp; row < rows; row += int64_t(gridDim.x) * kWarps) {
    const int i = int(row % Tq);
    const int64_t bh = row / Tq, b = bh / H;
    const int h = int(bh % H);
    const int last = past + i;
    const T* k = kc + bh * L * D;
    const T* v = vc + bh * L * D;
    const float slope = slopes[h];
    __syncwarp();  // the previous row's reads of q are done
    const T* qRow = qkv + (b * Tq + i) * 3 * C + int64_t(h) * D;
    for (int d = lane; d < D; d += 32) q[d] = LoadF32(qRow[d]);
    __syncwarp();
    float m = -INFINITY, l = 0.0f, acc[kPerLane];
#pragma unroll
    for (int e = 0; e < kPerLane; e++) acc[e] = 0.0f;
    for (int j0 = 0; j0 <= last; j0 += 32) {
      const int j = j0 + lane;
      float s = -INFINITY;
      if (j <= last) {
        const T* kr = k + int64_t(j) * D;
        float dot = 0.0f;
        for (int d = 0; d < D; d++) dot = fmaf(q[d], LoadF32(kr[d]), dot);
        s = dot * scale + slope * float(j - last);
      }
      const float mNew = fmaxf(m, WarpMax(s));  // finite: key j0 <= last is never masked
      const float p = j <= last ? expf(s - mNew) : 0.0f;
      const float alpha = expf(m - mNew);       // 0 on the first chunk (m = -inf)
      l = l * alpha + WarpSum(p);
      m = mNew;
      const int n = min(32, last - j0 + 1);
#pragma unroll
      for (int e = 0; e < kPerLane; e++) acc[e] *= alpha;
      for (int jj = 0; jj < n; jj++) {
        const float pj = __shfl_sync(kFullMask, p, jj);
        const T* vr = v + int64_t(j0 + jj) * D;
#pragma unroll
        for (int e = 0; e < kPerLane; e++) {
          const int d = lane + 32 * e;
          if (d < D) acc[e] = fmaf(pj, LoadF32(vr[d]), acc[e]);
        }
      }
    }
    const float inv = 1.0f / l;
    T* o = out + (b * Tq + i) * C + int64_t(h) * D;
#pragma unroll
    for (int e = 0; e < kPerLane; e++) {
      const int d = lane + 32 * e;
      if (d < D) o[d] = StoreAs<T>(acc[e] * inv);
    }
  }
}

unsigned Blocks(int64_t work, int perBlock) {
  return unsigned(std::min<int64_t>((work + perBlock - 1) / perBlock, int64_t(1) << 20));
}

template <class T>
void Launch(const AttentionCachedArgs& a, cudaStream_t stream) {
  T* kc = static_cast<T*>(a.kCache);
  T* vc = static_cast<T*>(a.vCache);
  const T* qkv = static_cast<const T*>(a.qkv);
  const int64_t n = int64_t(a.b) * a.tq * a.h * a.d;
  AppendKv<T><<<Blocks(n, 256), 256, 0, stream>>>(kc, vc, qkv, a.tq, a.h, a.d, a.maxLen, a.past, n);
  PT_CUDA_LAUNCHED(kOp, "AppendKv");
  if (a.past == 0) {
    // A prefill: the training forward's kernels over the packed qkv; lse is computed and dropped.
    Buffer lse(StreamDevice(stream), size_t(a.b) * a.h * a.tq * sizeof(float), kOp);  // (B, H, Tq)
    AttentionArgs f;
    f.out = a.out, f.lse = lse.get<float>(), f.qkv = a.qkv, f.slopes = a.slopes, f.dtype = a.dtype;
    f.b = a.b, f.t = a.tq, f.h = a.h, f.d = a.d;
    AttentionForward(f, stream);
    return;
  }
  const int64_t rows = int64_t(a.b) * a.h * a.tq;
  CachedRows<T><<<Blocks(rows, kWarps), kWarps * 32, 0, stream>>>(static_cast<T*>(a.out), kc, vc, qkv, a.slopes,
                                                                   a.tq, a.h, a.d, a.maxLen, a.past, rows,
                                                                   1.0f / std::sqrt(float(a.d)));
  PT_CUDA_LAUNCHED(kOp, "CachedRows");
}

}  // namespace

void AttentionCachedForward(const AttentionCachedArgs& a, cudaStream_t stream) {
  if (int64_t(a.b) * a.tq * a.h == 0) return;  // nothing to write (as the CPU op)
  PT_CHECK_ARG(a.d >= 1 && a.d <= kMaxHeadDim, kOp, ": head dim must be in 1..", kMaxHeadDim, ", got ", a.d);
  if (a.dtype == DType::BF16) Launch<bf16x>(a, stream);
  else Launch<float>(a, stream);
}

}  // namespace cuda
}  // namespace pt
