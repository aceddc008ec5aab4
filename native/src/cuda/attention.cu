// attention.cu: causal multi-head self-attention with ALiBi on NVIDIA GPUs, forward and backward; the CUDA twin of
// ops/attention.cc, with the contract of launch.h's AttentionArgs.
//
// Math (per batch b, head h; q, k, v, dout are (T, D) slices of the tensors below; as in ops/attention.cc):
//   s[i,j] = q_i.k_j / sqrt(D) - slopes[h] * (i - j)   for j <= i (j > i masked)
//   out_i  = sum_j softmax_j(s[i,:]) v_j,              lse_i = log sum_j exp(s[i,j])   (natural log)
//   backward: P = exp(s - lse), Di = dout_i.out_i, dS = P * (dout V^T - Di),
//             dq = dS k / sqrt(D), dk = dS^T q / sqrt(D), dv = P^T dout
// Accumulation rule: dqkv is an activation gradient and is overwritten, never accumulated (every element of it
// is written by exactly one thread of one kernel). Statistics and accumulators are f32 on every path.
//
// Buffers: qkv (B, T, 3, H, D), out (B, T, H, D), lse (B, H, T) f32, slopes (H) f32, dout (B, T, H, D),
// dqkv (B, T, 3, H, D); one scratch buffer Di (B, H, T) f32 for the backward.
//
// Paths, picked per call by the launchers at the bottom:
//   Tensor cores (bf16, D = 64 or 128, every tensor 16-byte aligned): FlashAttention-2's scheme written with
//     mma.sync.m16n8k16 (bf16 in, f32 accumulate) and ldmatrix, templated on D. Queries and keys are cut into
//     64-row tiles (tile starts are multiples of 64, so only the diagonal tile needs the causal mask and key
//     tiles after the diagonal are never visited). A CTA is 4 warps, each owning 16 rows of the CTA's tile; the
//     tiles it streams are staged in shared memory by cp.async, two stages deep (the next tile loads while the
//     current one is multiplied), rows padded by 16 bytes so ldmatrix is free of bank conflicts; rows past T
//     are zero-filled (cp.async with a source size of 0), so padding contributes exact zeros.
//     Forward: one CTA per (b*h, query tile), the largest query tiles first; online softmax in registers
//       (log2 domain: scores are pre-multiplied by log2(e) so exp2f does the exponentials), the ALiBi bias
//       -slope * (i - j) computed in registers from the row and column of each accumulator; P is rounded to
//       bf16 for the P.V product (as the CPU bf16 path does); lse is saved in natural log.
//     Backward, deterministic (no atomics), three kernels: RowDots computes Di; DkDv runs one CTA per (b*h, key
//       tile), keeps K and V of its 64 keys in shared memory and dK, dV in registers, and streams the query
//       tiles from the diagonal on (S^T = K Q^T and dP^T = V dO^T, then dV += P^T dO and dK += dS^T Q); Dq runs
//       one CTA per (b*h, query tile), keeps Q and dO in shared memory and dQ in registers, and streams the key
//       tiles up to the diagonal (S = Q K^T, dP = dO V^T, dQ += dS K). Recomputing S and dP in the Dq pass
//       costs 2 of the 7 products, the price of having no f32 atomics and no dQ scratch: the result is the
//       same bit for bit on every run.
//   FMA (every other case: f32 tensors of any D, bf16 with another D or unaligned pointers): plain CUDA cores,
//     f32 math. One warp per row: forward and Dq take one query row and stream its keys 32 at a time (each
//     lane one key's dot product, then the warp's online softmax and a shuffle-broadcast P.V); DkDv takes one
//     key row and streams the queries from it on. Deterministic as well. Written to be right, not fast.
//   PAJAMA_CUDA_ATTENTION=fma forces the FMA path for every call (read once), so both paths can be checked
//   against each other and against the CPU on a GPU.
// Limits: 1 <= D <= 256 (the builder checks); B * H * T and every index product are int64. No host sync; the
// backward's scratch comes from the caching allocator (runtime.h's Buffer).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "../launch.h"
#include "check.h"
#include "runtime.h"

namespace pt {
namespace cuda {
namespace {

using bf16x = __nv_bfloat16;

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
constexpr unsigned kFullMask = 0xffffffffu;

__device__ __forceinline__ float LoadF(const float* p) { return *p; }
__device__ __forceinline__ float LoadF(const bf16x* p) { return __bfloat162float(*p); }
__device__ __forceinline__ void StoreF(float* p, float v) { *p = v; }
__device__ __forceinline__ void StoreF(bf16x* p, float v) { *p = __float2bfloat16_rn(v); }

__device__ __forceinline__ float WarpMax(float v) {
#pragma unroll
  for (int o = 16; o; o >>= 1) v = fmaxf(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o; o >>= 1) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// =====================================================================================================
// FMA path (any dtype, any D <= 256)
// =====================================================================================================

constexpr int kFmaWarps = 4;                   // rows per block (one per warp)
constexpr int kMaxHeadDim = 256;
constexpr int kPerLane = kMaxHeadDim / 32;     // accumulator elements per lane: d = lane + 32 * e

// Row r of a (B*H*T) enumeration in (b, h, t) order, so neighbouring warps share a head's K and V in cache.
struct RowIndex {
  int64_t b, bh;
  int h, t;
};
__device__ __forceinline__ RowIndex SplitRow(int64_t row, int Tn, int H) {
  RowIndex r;
  r.t = int(row % Tn);
  r.bh = row / Tn;
  r.h = int(r.bh % H);
  r.b = r.bh / H;
  return r;
}

// One warp per query row i: keys j0..j0+31 at a time, lane l scoring key j0 + l against q_i (held in shared
// memory), then the warp's online-softmax update and out_i += p_j v_j with p_j broadcast by shuffle.
template <class T>
__global__ void __launch_bounds__(kFmaWarps * 32)
    AttnFwdFma(T* out, float* lse, const T* qkv, const float* slopes, int Tn, int H, int D, int64_t rows,
               float scale) {
  __shared__ float qShared[kFmaWarps][kMaxHeadDim];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t C = int64_t(H) * D, rs = 3 * C;  // qkv row stride
  float* q = qShared[warp];
  for (int64_t row = int64_t(blockIdx.x) * kFmaWarps + warp; row < rows;
       row += int64_t(gridDim.x) * kFmaWarps) {
    const RowIndex x = SplitRow(row, Tn, H);
    const int i = x.t;
    const T* base = qkv + x.b * Tn * rs + int64_t(x.h) * D;  // q of token t at base + t*rs, k at +C, v at +2C
    const float slope = slopes[x.h];
    __syncwarp();  // the previous row's reads of q are done
    for (int d = lane; d < D; d += 32) q[d] = LoadF(base + int64_t(i) * rs + d);
    __syncwarp();
    float m = -INFINITY, l = 0.0f, acc[kPerLane];
#pragma unroll
    for (int e = 0; e < kPerLane; e++) acc[e] = 0.0f;
    for (int j0 = 0; j0 <= i; j0 += 32) {
      const int j = j0 + lane;
      float s = -INFINITY;
      if (j <= i) {
        const T* kr = base + int64_t(j) * rs + C;
        float dot = 0.0f;
        for (int d = 0; d < D; d++) dot = fmaf(q[d], LoadF(kr + d), dot);
        s = dot * scale - slope * float(i - j);
      }
      const float mNew = fmaxf(m, WarpMax(s));  // finite: lane 0's key j0 <= i is never masked
      const float p = j <= i ? expf(s - mNew) : 0.0f;
      const float alpha = expf(m - mNew);      // 0 on the first chunk (m = -inf)
      l = l * alpha + WarpSum(p);
      m = mNew;
      const int n = min(32, i - j0 + 1);        // unmasked keys of this chunk (warp-uniform)
#pragma unroll
      for (int e = 0; e < kPerLane; e++) acc[e] *= alpha;
      for (int jj = 0; jj < n; jj++) {
        const float pj = __shfl_sync(kFullMask, p, jj);
        const T* vr = base + int64_t(j0 + jj) * rs + 2 * C;
#pragma unroll
        for (int e = 0; e < kPerLane; e++) {
          const int d = lane + 32 * e;
          if (d < D) acc[e] = fmaf(pj, LoadF(vr + d), acc[e]);
        }
      }
    }
    const float inv = 1.0f / l;
    T* o = out + (x.b * Tn + i) * C + int64_t(x.h) * D;
#pragma unroll
    for (int e = 0; e < kPerLane; e++) {
      const int d = lane + 32 * e;
      if (d < D) StoreF(o + d, acc[e] * inv);
    }
    if (lane == 0) lse[x.bh * Tn + i] = m + logf(l);
  }
}

// Di (B, H, T) = rowsum(dout * out) per (b, t, h) row of D elements; one warp per row, rows in memory order.
// Shared by both backward paths.
template <class T>
__global__ void __launch_bounds__(256)
    AttnBwdRowDots(float* di, const T* dout, const T* out, int Tn, int H, int D, int64_t rows) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  for (int64_t row = int64_t(blockIdx.x) * 8 + warp; row < rows; row += int64_t(gridDim.x) * 8) {
    const T* a = dout + row * D;
    const T* o = out + row * D;
    float acc = 0.0f;
    for (int d = lane; d < D; d += 32) acc = fmaf(LoadF(a + d), LoadF(o + d), acc);
    acc = WarpSum(acc);
    if (lane == 0) {
      const int h = int(row % H);
      const int64_t bt = row / H;  // b * T + t
      const int t = int(bt % Tn);
      const int64_t b = bt / Tn;
      di[(b * H + h) * Tn + t] = acc;
    }
  }
}

// dq_i = scale * sum_{j <= i} dS_ij k_j: one warp per query row, keys 32 at a time (lane l recomputes s and
// dp for key j0 + l), dS broadcast by shuffle.
template <class T>
__global__ void __launch_bounds__(kFmaWarps * 32)
    AttnBwdDqFma(T* dqkv, const T* dout, const T* qkv, const float* lse, const float* di, const float* slopes,
                 int Tn, int H, int D, int64_t rows, float scale) {
  __shared__ float rowShared[kFmaWarps][2][kMaxHeadDim];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t C = int64_t(H) * D, rs = 3 * C;
  float* q = rowShared[warp][0];
  float* g = rowShared[warp][1];
  for (int64_t row = int64_t(blockIdx.x) * kFmaWarps + warp; row < rows;
       row += int64_t(gridDim.x) * kFmaWarps) {
    const RowIndex x = SplitRow(row, Tn, H);
    const int i = x.t;
    const T* base = qkv + x.b * Tn * rs + int64_t(x.h) * D;
    const T* gi = dout + (x.b * Tn + i) * C + int64_t(x.h) * D;
    const float slope = slopes[x.h], lseI = lse[x.bh * Tn + i], diI = di[x.bh * Tn + i];
    __syncwarp();
    for (int d = lane; d < D; d += 32) {
      q[d] = LoadF(base + int64_t(i) * rs + d);
      g[d] = LoadF(gi + d);
    }
    __syncwarp();
    float acc[kPerLane];
#pragma unroll
    for (int e = 0; e < kPerLane; e++) acc[e] = 0.0f;
    for (int j0 = 0; j0 <= i; j0 += 32) {
      const int j = j0 + lane;
      float ds = 0.0f;
      if (j <= i) {
        const T* kr = base + int64_t(j) * rs + C;
        const T* vr = kr + C;
        float s = 0.0f, dp = 0.0f;
        for (int d = 0; d < D; d++) {
          s = fmaf(q[d], LoadF(kr + d), s);
          dp = fmaf(g[d], LoadF(vr + d), dp);
        }
        const float p = expf(s * scale - slope * float(i - j) - lseI);
        ds = p * (dp - diI);
      }
      const int n = min(32, i - j0 + 1);
      for (int jj = 0; jj < n; jj++) {
        const float dsj = __shfl_sync(kFullMask, ds, jj);
        const T* kr = base + int64_t(j0 + jj) * rs + C;
#pragma unroll
        for (int e = 0; e < kPerLane; e++) {
          const int d = lane + 32 * e;
          if (d < D) acc[e] = fmaf(dsj, LoadF(kr + d), acc[e]);
        }
      }
    }
    T* dq = dqkv + (x.b * Tn + i) * rs + int64_t(x.h) * D;
#pragma unroll
    for (int e = 0; e < kPerLane; e++) {
      const int d = lane + 32 * e;
      if (d < D) StoreF(dq + d, acc[e] * scale);
    }
  }
}

// dk_j = scale * sum_{i >= j} dS_ij q_i, dv_j = sum_{i >= j} P_ij dout_i: one warp per key row, queries 32 at
// a time (lane l recomputes s and dp for query i0 + l), P and dS broadcast by shuffle.
template <class T>
__global__ void __launch_bounds__(kFmaWarps * 32)
    AttnBwdDkDvFma(T* dqkv, const T* dout, const T* qkv, const float* lse, const float* di, const float* slopes,
                   int Tn, int H, int D, int64_t rows, float scale) {
  __shared__ float rowShared[kFmaWarps][2][kMaxHeadDim];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int64_t C = int64_t(H) * D, rs = 3 * C;
  float* k = rowShared[warp][0];
  float* v = rowShared[warp][1];
  for (int64_t row = int64_t(blockIdx.x) * kFmaWarps + warp; row < rows;
       row += int64_t(gridDim.x) * kFmaWarps) {
    const RowIndex x = SplitRow(row, Tn, H);
    const int j = x.t;
    const T* base = qkv + x.b * Tn * rs + int64_t(x.h) * D;
    const T* gBase = dout + x.b * Tn * C + int64_t(x.h) * D;  // dout of token t at gBase + t*C
    const float* lseRow = lse + x.bh * Tn;
    const float* diRow = di + x.bh * Tn;
    const float slope = slopes[x.h];
    __syncwarp();
    for (int d = lane; d < D; d += 32) {
      k[d] = LoadF(base + int64_t(j) * rs + C + d);
      v[d] = LoadF(base + int64_t(j) * rs + 2 * C + d);
    }
    __syncwarp();
    float accK[kPerLane], accV[kPerLane];
#pragma unroll
    for (int e = 0; e < kPerLane; e++) accK[e] = accV[e] = 0.0f;
    for (int i0 = j; i0 < Tn; i0 += 32) {
      const int i = i0 + lane;
      float p = 0.0f, ds = 0.0f;
      if (i < Tn) {
        const T* qr = base + int64_t(i) * rs;
        const T* gr = gBase + int64_t(i) * C;
        float s = 0.0f, dp = 0.0f;
        for (int d = 0; d < D; d++) {
          s = fmaf(LoadF(qr + d), k[d], s);
          dp = fmaf(LoadF(gr + d), v[d], dp);
        }
        p = expf(s * scale - slope * float(i - j) - lseRow[i]);
        ds = p * (dp - diRow[i]);
      }
      const int n = min(32, Tn - i0);
      for (int ii = 0; ii < n; ii++) {
        const float pi = __shfl_sync(kFullMask, p, ii);
        const float dsi = __shfl_sync(kFullMask, ds, ii);
        const T* qr = base + int64_t(i0 + ii) * rs;
        const T* gr = gBase + int64_t(i0 + ii) * C;
#pragma unroll
        for (int e = 0; e < kPerLane; e++) {
          const int d = lane + 32 * e;
          if (d < D) {
            accV[e] = fmaf(pi, LoadF(gr + d), accV[e]);
            accK[e] = fmaf(dsi, LoadF(qr + d), accK[e]);
          }
        }
      }
    }
    T* dk = dqkv + (x.b * Tn + j) * rs + C + int64_t(x.h) * D;
#pragma unroll
    for (int e = 0; e < kPerLane; e++) {
      const int d = lane + 32 * e;
      if (d < D) {
        StoreF(dk + d, accK[e] * scale);
        StoreF(dk + C + d, accV[e]);
      }
    }
  }
}

// =====================================================================================================
// Tensor-core path (bf16, D = 64 or 128)
// =====================================================================================================
//
// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32, per the PTX ISA ("Matrix Fragments for mma.m16n8k16
// with floating point type"); g = lane >> 2 (groupID), c = lane & 3 (threadID_in_group). Each .b32 register
// holds two bf16, the lower column (A) or lower k (B) in the low 16 bits.
//   A (16 x 16, row major): a[0] = A[g][2c, 2c+1]      a[1] = A[g+8][2c, 2c+1]
//                           a[2] = A[g][2c+8, 2c+9]    a[3] = A[g+8][2c+8, 2c+9]
//   B (16 x 8, "col"):      b[0] = B[2c, 2c+1][g]      b[1] = B[2c+8, 2c+9][g]          (B[k][n])
//   C, D (16 x 8, f32):     d[0] = C[g][2c]  d[1] = C[g][2c+1]  d[2] = C[g+8][2c]  d[3] = C[g+8][2c+1]
// ldmatrix.m8n8.x4.b16: lanes 8q..8q+7 give the addresses of rows 0..7 of matrix q (16 contiguous bytes each);
// register q of every lane receives matrix q, lane holding row g, elements 2c and 2c+1 (without .trans), or
// elements [2c][g] and [2c+1][g] (with .trans: the transposed matrix). So, for 16 x 16 bf16 blocks in shared
// memory (row major, padded stride):
//   LdsmA    (rows r0..r0+15, cols k0..k0+15), lane's address row r0 + (lane & 15), col k0 + 8 * (lane >> 4):
//            matrices (rows 0-7, cols 0-7), (rows 8-15, cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 8-15)
//            = exactly a[0..3] above for A = the block.
//   LdsmBRow (rows n0..n0+15 of an (n, k) array, cols k0..k0+15), address row n0 + (lane & 7) + 8 * (lane >> 4),
//            col k0 + 8 * ((lane >> 3) & 1): matrices (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7),
//            (n 8-15, k 8-15); lane gets X[n0 + g][k0 + 2c, +1] etc. = B[k][n] = X[n][k], i.e. b[0], b[1] of the
//            n block n0..n0+7 in r[0], r[1] and of n0+8..n0+15 in r[2], r[3]  (B = X^T; used for K in Q K^T).
//   LdsmBCol (rows k0..k0+15 of a (k, n) array, cols n0..n0+15) with .trans, address row k0 + (lane & 7) +
//            8 * ((lane >> 3) & 1), col n0 + 8 * (lane >> 4): matrices (k 0-7, n 0-7), (k 8-15, n 0-7),
//            (k 0-7, n 8-15), (k 8-15, n 8-15), transposed, so lane gets X[k0 + 2c, +1][n0 + g] = b[0] etc.:
//            b[0], b[1] of the n block n0..n0+7 in r[0], r[1], of n0+8..n0+15 in r[2], r[3] (B = X; V in P V).
// An f32 accumulator pair of n blocks 2kk, 2kk+1 (rows g, g+8; cols 16kk + 2c + {0, 1} and 16kk + 8 + 2c +
// {0, 1}) is, packed to bf16, exactly the A fragment of the 16 x 16 block with k = 16kk..16kk+15 (FlashAttention-2's
// register reuse of P): a[0] = (d0, d1) of block 2kk, a[1] = (d2, d3) of 2kk, a[2] = (d0, d1) of 2kk+1, a[3] = (d2, d3)
// of 2kk+1. See AccToA.

constexpr int kTileRows = 64;  // query / key rows per tile; 16 per warp
constexpr int kMmaThreads = 128;

template <int D>
struct TileShape {
  static constexpr int kStride = D + 8;                // shared row stride (elements): +16 bytes per row
  static constexpr int kElems = kTileRows * kStride;   // one staged (64, D) tile
  static constexpr int kChunks = D / 8;                // 16-byte chunks per row
};

__device__ __forceinline__ uint32_t SmemAddr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global -> shared, asynchronously; with valid false the 16 bytes are zero-filled and nothing is read.
__device__ __forceinline__ void CpAsync16(uint32_t dst, const void* src, bool valid) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void CpAsyncCommit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void CpAsyncWait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void Ldsm4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void Ldsm4Trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// d (16 x 8 f32) += a (16 x 16 bf16) * b (16 x 8 bf16)
__device__ __forceinline__ void Mma(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two floats as a bf16 pair, `lo` in the low 16 bits (round to nearest even).
__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  uint32_t r;
  memcpy(&r, &v, sizeof(r));
  return r;
}

// The A fragment of the 16 x 16 block whose columns are accumulator n blocks 2kk and 2kk+1 (see above).
__device__ __forceinline__ void AccToA(uint32_t (&a)[4], const float (&lo)[4], const float (&hi)[4]) {
  a[0] = PackBf16(lo[0], lo[1]);  // row g,   cols 16kk + 2c, +1
  a[1] = PackBf16(lo[2], lo[3]);  // row g+8, cols 16kk + 2c, +1
  a[2] = PackBf16(hi[0], hi[1]);  // row g,   cols 16kk + 8 + 2c, +1
  a[3] = PackBf16(hi[2], hi[3]);  // row g+8, cols 16kk + 8 + 2c, +1
}

// Lane addresses (bytes, shared space) of the three ldmatrix patterns over a padded (rows, D) tile.
template <int D>
__device__ __forceinline__ uint32_t LdsmAAddr(const bf16x* tile, int r0, int k0, int lane) {
  return SmemAddr(tile + (r0 + (lane & 15)) * TileShape<D>::kStride + k0 + 8 * (lane >> 4));
}
template <int D>
__device__ __forceinline__ uint32_t LdsmBRowAddr(const bf16x* tile, int n0, int k0, int lane) {
  return SmemAddr(tile + (n0 + (lane & 7) + 8 * (lane >> 4)) * TileShape<D>::kStride + k0 + 8 * ((lane >> 3) & 1));
}
template <int D>
__device__ __forceinline__ uint32_t LdsmBColAddr(const bf16x* tile, int k0, int n0, int lane) {
  return SmemAddr(tile + (k0 + (lane & 7) + 8 * ((lane >> 3) & 1)) * TileShape<D>::kStride + n0 + 8 * (lane >> 4));
}

// Queues the copy of rows row0..row0+63 of a (T, D) slice (row t at g + t * rowStride) into a padded shared
// tile; rows at or past Tn are zero-filled. All 128 threads take part.
template <int D>
__device__ __forceinline__ void LoadTile(bf16x* tile, const bf16x* g, int64_t rowStride, int row0, int Tn,
                                         int tid) {
  constexpr int kChunks = TileShape<D>::kChunks;
#pragma unroll
  for (int c = tid; c < kTileRows * kChunks; c += kMmaThreads) {
    const int r = c / kChunks, cc = c % kChunks;
    const int t = row0 + r;
    const bool valid = t < Tn;
    const bf16x* src = valid ? g + int64_t(t) * rowStride + cc * 8 : g;  // g: a valid address, never read
    CpAsync16(SmemAddr(tile + r * TileShape<D>::kStride + cc * 8), src, valid);
  }
}

// acc (16 rows of the warp x 64 columns, 8 n blocks) = A rows r0..r0+15 of tile `a` times B^T, B the 64 rows
// n0..n0+63 of tile `b`, over the D columns of both: S = Q K^T (a = Q, b = K) and its kin.
template <int D>
__device__ __forceinline__ void MmaRowsByRows(float (&acc)[8][4], const bf16x* a, int r0, const bf16x* b, int n0,
                                              int lane) {
#pragma unroll
  for (int nb = 0; nb < 8; nb++)
#pragma unroll
    for (int e = 0; e < 4; e++) acc[nb][e] = 0.0f;
#pragma unroll
  for (int ks = 0; ks < D / 16; ks++) {
    uint32_t af[4];
    Ldsm4(af, LdsmAAddr<D>(a, r0, ks * 16, lane));
#pragma unroll
    for (int np = 0; np < 4; np++) {
      uint32_t bf[4];
      Ldsm4(bf, LdsmBRowAddr<D>(b, n0 + np * 16, ks * 16, lane));
      Mma(acc[2 * np], af, bf[0], bf[1]);
      Mma(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

// acc (16 x D, D/8 n blocks) += P (16 x 16*KB, the accumulator blocks p[0..2*KB-1]) times rows k0..k0+16*KB-1
// of tile `b` (all D columns): O += P V and its kin.
template <int D, int KB>
__device__ __forceinline__ void MmaAccByRows(float (&acc)[D / 8][4], const float (&p)[2 * KB][4], const bf16x* b,
                                             int k0, int lane) {
#pragma unroll
  for (int kk = 0; kk < KB; kk++) {
    uint32_t af[4];
    AccToA(af, p[2 * kk], p[2 * kk + 1]);
#pragma unroll
    for (int np = 0; np < D / 16; np++) {
      uint32_t bf[4];
      Ldsm4Trans(bf, LdsmBColAddr<D>(b, k0 + kk * 16, np * 16, lane));
      Mma(acc[2 * np], af, bf[0], bf[1]);
      Mma(acc[2 * np + 1], af, bf[2], bf[3]);
    }
  }
}

// ---- Forward ----
// Grid: nTiles * B*H CTAs of 128 threads; CTA x takes query tile qt = nTiles - 1 - x / BH (the longest rows
// first) of head bh = x % BH. Shared: Q tile, then 2 stages of (K tile, V tile).
template <int D>
__global__ void __launch_bounds__(kMmaThreads)
    AttnFwdMma(bf16x* out, float* lse, const bf16x* qkv, const float* slopes, int Tn, int H, int64_t BH,
               int nTiles, float scaleLog2) {
  using S = TileShape<D>;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16x* qTile = reinterpret_cast<bf16x*>(smem);
  bf16x* kvTiles = qTile + S::kElems;  // stage st: K at kvTiles + 2*st*kElems, V right after it

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int64_t bh = int64_t(blockIdx.x) % BH;
  const int qt = nTiles - 1 - int(int64_t(blockIdx.x) / BH);
  const int h = int(bh % H);
  const int64_t b = bh / H;
  const int64_t C = int64_t(H) * D, rs = 3 * C;
  const bf16x* qBase = qkv + b * Tn * rs + int64_t(h) * D;  // token t's q at qBase + t*rs
  const bf16x* kBase = qBase + C;
  const bf16x* vBase = qBase + 2 * C;
  const int q0 = qt * kTileRows;
  const float slopeLog2 = slopes[h] * kLog2e;

  LoadTile<D>(qTile, qBase, rs, q0, Tn, tid);
  LoadTile<D>(kvTiles, kBase, rs, 0, Tn, tid);
  LoadTile<D>(kvTiles + S::kElems, vBase, rs, 0, Tn, tid);
  CpAsyncCommit();

  // This thread's rows: r = 0 for query q0 + 16*warp + g, r = 1 for 8 rows further (accumulator d[2r], d[2r+1]).
  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  float o[D / 8][4];  // O (16 x D): block nb holds cols 8nb + 2c, +1 of rows g (d0, d1) and g+8 (d2, d3)
#pragma unroll
  for (int nb = 0; nb < D / 8; nb++)
#pragma unroll
    for (int e = 0; e < 4; e++) o[nb][e] = 0.0f;
  float mRow[2] = {-INFINITY, -INFINITY};  // running max, log2 domain (same in the 4 lanes of a quad)
  float lRow[2] = {0.0f, 0.0f};            // this lane's part of the running sum (the quad's sum at the end)

  for (int kt = 0; kt <= qt; kt++) {
    const int st = kt & 1;
    if (kt < qt) {
      bf16x* next = kvTiles + 2 * (st ^ 1) * S::kElems;
      LoadTile<D>(next, kBase, rs, (kt + 1) * kTileRows, Tn, tid);
      LoadTile<D>(next + S::kElems, vBase, rs, (kt + 1) * kTileRows, Tn, tid);
      CpAsyncCommit();
      CpAsyncWait<1>();  // everything but the group just queued has landed
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const bf16x* kTile = kvTiles + 2 * st * S::kElems;
    const bf16x* vTile = kTile + S::kElems;

    float s[8][4];  // S (16 queries x 64 keys): block nb, d[e] = key k0 + 8nb + 2c + (e & 1), row[e >> 1]
    MmaRowsByRows<D>(s, qTile, warp * 16, kTile, 0, lane);

    const int k0 = kt * kTileRows;
    const bool diag = kt == qt;
    float mx[2] = {mRow[0], mRow[1]};
#pragma unroll
    for (int nb = 0; nb < 8; nb++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = e >> 1, j = k0 + nb * 8 + 2 * c + (e & 1);
        float x = s[nb][e] * scaleLog2 - slopeLog2 * float(row[r] - j);
        if (diag && j > row[r]) x = -INFINITY;
        s[nb][e] = x;
        mx[r] = fmaxf(mx[r], x);
      }
    float alpha[2], sum[2] = {0.0f, 0.0f};
#pragma unroll
    for (int r = 0; r < 2; r++) {
      // The quad (lanes 4g..4g+3) holds row r's 64 scores; key k0 (kt = 0) is unmasked for every row, so the
      // max is finite from the first tile on.
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 1));
      mx[r] = fmaxf(mx[r], __shfl_xor_sync(kFullMask, mx[r], 2));
      alpha[r] = exp2f(mRow[r] - mx[r]);  // 0 on the first tile
      mRow[r] = mx[r];
    }
#pragma unroll
    for (int nb = 0; nb < 8; nb++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const float p = exp2f(s[nb][e] - mRow[e >> 1]);  // masked: exp2(-inf) = 0
        s[nb][e] = p;
        sum[e >> 1] += p;
      }
#pragma unroll
    for (int r = 0; r < 2; r++) lRow[r] = lRow[r] * alpha[r] + sum[r];
#pragma unroll
    for (int nb = 0; nb < D / 8; nb++) {
      o[nb][0] *= alpha[0];
      o[nb][1] *= alpha[0];
      o[nb][2] *= alpha[1];
      o[nb][3] *= alpha[1];
    }
    MmaAccByRows<D, 4>(o, s, vTile, 0, lane);  // O += P (16 x 64, bf16) V (64 x D)
    __syncthreads();                            // this stage's K and V are free for the load two tiles on
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    float l = lRow[r];
    l += __shfl_xor_sync(kFullMask, l, 1);
    l += __shfl_xor_sync(kFullMask, l, 2);
    if (row[r] >= Tn) continue;
    const float inv = 1.0f / l;
    bf16x* orow = out + (b * Tn + row[r]) * C + int64_t(h) * D;
#pragma unroll
    for (int nb = 0; nb < D / 8; nb++)
      *reinterpret_cast<__nv_bfloat162*>(orow + nb * 8 + 2 * c) =
          __floats2bfloat162_rn(o[nb][2 * r] * inv, o[nb][2 * r + 1] * inv);
    if (c == 0) lse[bh * Tn + row[r]] = (mRow[r] + log2f(l)) * kLn2;
  }
}

// ---- Backward: dK, dV ----
// Grid: nTiles * B*H CTAs of 128 threads; CTA x takes key tile kt = x / BH (the longest columns first) of head
// bh = x % BH, and streams query tiles kt..nTiles-1 in steps of kSub queries. Shared: K tile, V tile, then 2
// stages of (Q tile, dO tile), then 2 stages of (lse * log2e, Di) for the 64 queries of a tile.
template <int D>
struct DkDvShape {
  static constexpr int kSub = D == 128 ? 32 : 64;  // queries per inner step (bounds the S^T, dP^T registers)
  static constexpr size_t kSmem =
      size_t(6) * TileShape<D>::kElems * sizeof(bf16x) + size_t(2) * 2 * kTileRows * sizeof(float);
};

template <int D>
__global__ void __launch_bounds__(kMmaThreads)
    AttnBwdDkDvMma(bf16x* dqkv, const bf16x* dout, const bf16x* qkv, const float* lse, const float* di,
                   const float* slopes, int Tn, int H, int64_t BH, int nTiles, float scaleLog2, float scale) {
  using S = TileShape<D>;
  constexpr int kSub = DkDvShape<D>::kSub, kNb = kSub / 8;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16x* kTile = reinterpret_cast<bf16x*>(smem);
  bf16x* vTile = kTile + S::kElems;
  bf16x* qgTiles = vTile + S::kElems;  // stage st: Q at qgTiles + 2*st*kElems, dO right after it
  float* stats = reinterpret_cast<float*>(qgTiles + 4 * S::kElems);  // stage st: lse2 at stats + 2*st*64, Di after

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int64_t bh = int64_t(blockIdx.x) % BH;
  const int kt = int(int64_t(blockIdx.x) / BH);
  const int h = int(bh % H);
  const int64_t b = bh / H;
  const int64_t C = int64_t(H) * D, rs = 3 * C;
  const bf16x* qBase = qkv + b * Tn * rs + int64_t(h) * D;
  const bf16x* gBase = dout + b * Tn * C + int64_t(h) * D;  // token t's dout at gBase + t*C
  const float* lseRow = lse + bh * Tn;
  const float* diRow = di + bh * Tn;
  const int k0 = kt * kTileRows;
  const float slopeLog2 = slopes[h] * kLog2e;

  // Stage `st` of query tile qt: Q and dO by cp.async (the caller commits), lse and Di by plain stores
  // (visible after the __syncthreads that precedes their use); rows past T get lse = +inf, so P = 0 there.
  auto loadQueries = [&](int qt, int st) {
    bf16x* qT = qgTiles + 2 * st * S::kElems;
    LoadTile<D>(qT, qBase, rs, qt * kTileRows, Tn, tid);
    LoadTile<D>(qT + S::kElems, gBase, C, qt * kTileRows, Tn, tid);
    if (tid < kTileRows) {
      const int i = qt * kTileRows + tid;
      float* sl = stats + 2 * st * kTileRows;
      sl[tid] = i < Tn ? lseRow[i] * kLog2e : INFINITY;
      sl[kTileRows + tid] = i < Tn ? diRow[i] : 0.0f;
    }
  };

  LoadTile<D>(kTile, qBase + C, rs, k0, Tn, tid);
  LoadTile<D>(vTile, qBase + 2 * C, rs, k0, Tn, tid);
  loadQueries(kt, 0);
  CpAsyncCommit();

  // This thread's keys (rows of S^T): r = 0 for key k0 + 16*warp + g, r = 1 for 8 keys further.
  const int key[2] = {k0 + warp * 16 + g, k0 + warp * 16 + g + 8};
  float dk[D / 8][4], dv[D / 8][4];  // (16 keys x D) each, accumulator layout
#pragma unroll
  for (int nb = 0; nb < D / 8; nb++)
#pragma unroll
    for (int e = 0; e < 4; e++) dk[nb][e] = dv[nb][e] = 0.0f;

  for (int qt = kt; qt < nTiles; qt++) {
    const int st = (qt - kt) & 1;
    if (qt + 1 < nTiles) {
      loadQueries(qt + 1, st ^ 1);
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const bf16x* qTile = qgTiles + 2 * st * S::kElems;
    const bf16x* gTile = qTile + S::kElems;
    const float* lse2 = stats + 2 * st * kTileRows;
    const float* diS = lse2 + kTileRows;
    const bool diag = qt == kt;

#pragma unroll 1
    for (int sub = 0; sub < kTileRows; sub += kSub) {
      // S^T (16 keys x kSub queries) = K Q^T and dP^T = V dO^T; block nb, d[e]: key[e >> 1], query
      // column sub + 8nb + 2c + (e & 1) of the tile.
      float sT[kNb][4], dpT[kNb][4];
#pragma unroll
      for (int nb = 0; nb < kNb; nb++)
#pragma unroll
        for (int e = 0; e < 4; e++) sT[nb][e] = dpT[nb][e] = 0.0f;
#pragma unroll
      for (int ks = 0; ks < D / 16; ks++) {
        uint32_t kf[4], vf[4];
        Ldsm4(kf, LdsmAAddr<D>(kTile, warp * 16, ks * 16, lane));
        Ldsm4(vf, LdsmAAddr<D>(vTile, warp * 16, ks * 16, lane));
#pragma unroll
        for (int np = 0; np < kNb / 2; np++) {
          uint32_t qf[4], gf[4];
          Ldsm4(qf, LdsmBRowAddr<D>(qTile, sub + np * 16, ks * 16, lane));
          Ldsm4(gf, LdsmBRowAddr<D>(gTile, sub + np * 16, ks * 16, lane));
          Mma(sT[2 * np], kf, qf[0], qf[1]);
          Mma(sT[2 * np + 1], kf, qf[2], qf[3]);
          Mma(dpT[2 * np], vf, gf[0], gf[1]);
          Mma(dpT[2 * np + 1], vf, gf[2], gf[3]);
        }
      }
      // P^T = exp2(S^T * scale * log2e + bias * log2e - lse * log2e), 0 where query < key; dS^T = P^T (dP^T - Di).
#pragma unroll
      for (int nb = 0; nb < kNb; nb++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
          const int col = sub + nb * 8 + 2 * c + (e & 1), i = qt * kTileRows + col, j = key[e >> 1];
          float p = exp2f(sT[nb][e] * scaleLog2 - slopeLog2 * float(i - j) - lse2[col]);
          if (diag && i < j) p = 0.0f;
          sT[nb][e] = p;
          dpT[nb][e] = p * (dpT[nb][e] - diS[col]);
        }
      MmaAccByRows<D, kSub / 16>(dv, sT, gTile, sub, lane);   // dV += P^T dO
      MmaAccByRows<D, kSub / 16>(dk, dpT, qTile, sub, lane);  // dK += dS^T Q
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (key[r] >= Tn) continue;
    bf16x* dkRow = dqkv + (b * Tn + key[r]) * rs + C + int64_t(h) * D;
    bf16x* dvRow = dkRow + C;
#pragma unroll
    for (int nb = 0; nb < D / 8; nb++) {
      *reinterpret_cast<__nv_bfloat162*>(dkRow + nb * 8 + 2 * c) =
          __floats2bfloat162_rn(dk[nb][2 * r] * scale, dk[nb][2 * r + 1] * scale);
      *reinterpret_cast<__nv_bfloat162*>(dvRow + nb * 8 + 2 * c) =
          __floats2bfloat162_rn(dv[nb][2 * r], dv[nb][2 * r + 1]);
    }
  }
}

// ---- Backward: dQ ----
// Grid: nTiles * B*H CTAs of 128 threads; CTA x takes query tile qt = nTiles - 1 - x / BH of head bh = x % BH
// and streams key tiles 0..qt. Shared: Q tile, dO tile, then 2 stages of (K tile, V tile).
template <int D>
__global__ void __launch_bounds__(kMmaThreads)
    AttnBwdDqMma(bf16x* dqkv, const bf16x* dout, const bf16x* qkv, const float* lse, const float* di,
                 const float* slopes, int Tn, int H, int64_t BH, int nTiles, float scaleLog2, float scale) {
  using S = TileShape<D>;
  extern __shared__ __align__(16) unsigned char smem[];
  bf16x* qTile = reinterpret_cast<bf16x*>(smem);
  bf16x* gTile = qTile + S::kElems;
  bf16x* kvTiles = gTile + S::kElems;  // stage st: K at kvTiles + 2*st*kElems, V right after it

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, c = lane & 3;
  const int64_t bh = int64_t(blockIdx.x) % BH;
  const int qt = nTiles - 1 - int(int64_t(blockIdx.x) / BH);
  const int h = int(bh % H);
  const int64_t b = bh / H;
  const int64_t C = int64_t(H) * D, rs = 3 * C;
  const bf16x* qBase = qkv + b * Tn * rs + int64_t(h) * D;
  const bf16x* kBase = qBase + C;
  const bf16x* vBase = qBase + 2 * C;
  const bf16x* gBase = dout + b * Tn * C + int64_t(h) * D;
  const int q0 = qt * kTileRows;
  const float slopeLog2 = slopes[h] * kLog2e;

  LoadTile<D>(qTile, qBase, rs, q0, Tn, tid);
  LoadTile<D>(gTile, gBase, C, q0, Tn, tid);
  LoadTile<D>(kvTiles, kBase, rs, 0, Tn, tid);
  LoadTile<D>(kvTiles + S::kElems, vBase, rs, 0, Tn, tid);
  CpAsyncCommit();

  const int row[2] = {q0 + warp * 16 + g, q0 + warp * 16 + g + 8};
  float lse2[2], diR[2];  // rows past T: lse +inf (P = 0), Di 0
#pragma unroll
  for (int r = 0; r < 2; r++) {
    lse2[r] = row[r] < Tn ? lse[bh * Tn + row[r]] * kLog2e : INFINITY;
    diR[r] = row[r] < Tn ? di[bh * Tn + row[r]] : 0.0f;
  }
  float dq[D / 8][4];
#pragma unroll
  for (int nb = 0; nb < D / 8; nb++)
#pragma unroll
    for (int e = 0; e < 4; e++) dq[nb][e] = 0.0f;

  for (int kt = 0; kt <= qt; kt++) {
    const int st = kt & 1;
    if (kt < qt) {
      bf16x* next = kvTiles + 2 * (st ^ 1) * S::kElems;
      LoadTile<D>(next, kBase, rs, (kt + 1) * kTileRows, Tn, tid);
      LoadTile<D>(next + S::kElems, vBase, rs, (kt + 1) * kTileRows, Tn, tid);
      CpAsyncCommit();
      CpAsyncWait<1>();
    } else {
      CpAsyncWait<0>();
    }
    __syncthreads();
    const bf16x* kTile = kvTiles + 2 * st * S::kElems;
    const bf16x* vTile = kTile + S::kElems;

    float s[8][4], dp[8][4];  // S = Q K^T, dP = dO V^T (16 queries x 64 keys)
    MmaRowsByRows<D>(s, qTile, warp * 16, kTile, 0, lane);
    MmaRowsByRows<D>(dp, gTile, warp * 16, vTile, 0, lane);
    const int k0 = kt * kTileRows;
    const bool diag = kt == qt;
#pragma unroll
    for (int nb = 0; nb < 8; nb++)
#pragma unroll
      for (int e = 0; e < 4; e++) {
        const int r = e >> 1, j = k0 + nb * 8 + 2 * c + (e & 1);
        float p = exp2f(s[nb][e] * scaleLog2 - slopeLog2 * float(row[r] - j) - lse2[r]);
        if (diag && j > row[r]) p = 0.0f;
        s[nb][e] = p * (dp[nb][e] - diR[r]);  // dS
      }
    MmaAccByRows<D, 4>(dq, s, kTile, 0, lane);  // dQ += dS K
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 2; r++) {
    if (row[r] >= Tn) continue;
    bf16x* dqRow = dqkv + (b * Tn + row[r]) * rs + int64_t(h) * D;
#pragma unroll
    for (int nb = 0; nb < D / 8; nb++)
      *reinterpret_cast<__nv_bfloat162*>(dqRow + nb * 8 + 2 * c) =
          __floats2bfloat162_rn(dq[nb][2 * r] * scale, dq[nb][2 * r + 1] * scale);
  }
}

// =====================================================================================================
// Launchers
// =====================================================================================================

constexpr const char* kFwdOp = "attentionForward";
constexpr const char* kBwdOp = "attentionBackward";

bool ForceFma() {
  static const bool force = [] {
    const char* env = std::getenv("PAJAMA_CUDA_ATTENTION");
    return env && std::strcmp(env, "fma") == 0;
  }();
  return force;
}

bool Aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// The tensor-core kernels need bf16, D of 64 or 128 and 16-byte aligned tensors (cp.async and the bf16 pair
// stores; row strides are then multiples of 16 bytes too).
bool UseMma(const AttentionArgs& a, bool backward) {
  if (ForceFma() || a.dtype != DType::BF16 || (a.d != 64 && a.d != 128)) return false;
  bool ok = Aligned16(a.qkv) && Aligned16(a.out);
  if (backward) ok = ok && Aligned16(a.fwdOut) && Aligned16(a.dout);
  return ok;
}

// Blocks for a grid-stride kernel over `rows` rows, `perBlock` at a time.
unsigned FmaBlocks(int64_t rows, int perBlock) {
  const int64_t blocks = (rows + perBlock - 1) / perBlock;
  return unsigned(std::min<int64_t>(blocks, int64_t(1) << 20));
}

// One CTA per (tile, head): nTiles * BH must fit a grid's x dimension.
unsigned TileBlocks(const char* op, int64_t nTiles, int64_t bh) {
  const int64_t blocks = nTiles * bh;
  PT_CHECK_ARG(blocks <= INT32_MAX, op, ": ", nTiles, " tiles x ", bh, " heads is too many CTAs for one launch");
  return unsigned(blocks);
}

template <int D>
void LaunchFwdMma(const AttentionArgs& a, cudaStream_t stream) {
  const size_t smem = size_t(5) * TileShape<D>::kElems * sizeof(bf16x);
  PT_CUDA_CHECK(kFwdOp, cudaFuncSetAttribute(AttnFwdMma<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  const int nTiles = (a.t + kTileRows - 1) / kTileRows;
  const int64_t bh = int64_t(a.b) * a.h;
  const float scaleLog2 = kLog2e / std::sqrt(float(D));
  AttnFwdMma<D><<<TileBlocks(kFwdOp, nTiles, bh), kMmaThreads, smem, stream>>>(
      static_cast<bf16x*>(a.out), a.lse, static_cast<const bf16x*>(a.qkv), a.slopes, a.t, a.h, bh, nTiles,
      scaleLog2);
  PT_CUDA_LAUNCHED(kFwdOp, "AttnFwdMma");
}

template <class T>
void LaunchFwdFma(const AttentionArgs& a, cudaStream_t stream) {
  const int64_t rows = int64_t(a.b) * a.h * a.t;
  AttnFwdFma<T><<<FmaBlocks(rows, kFmaWarps), kFmaWarps * 32, 0, stream>>>(
      static_cast<T*>(a.out), a.lse, static_cast<const T*>(a.qkv), a.slopes, a.t, a.h, a.d, rows,
      1.0f / std::sqrt(float(a.d)));
  PT_CUDA_LAUNCHED(kFwdOp, "AttnFwdFma");
}

template <int D>
void LaunchBwdMma(const AttentionArgs& a, const float* di, cudaStream_t stream) {
  const size_t smemDq = size_t(6) * TileShape<D>::kElems * sizeof(bf16x);
  const size_t smemDkDv = DkDvShape<D>::kSmem;
  PT_CUDA_CHECK(kBwdOp,
                cudaFuncSetAttribute(AttnBwdDkDvMma<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smemDkDv)));
  PT_CUDA_CHECK(kBwdOp,
                cudaFuncSetAttribute(AttnBwdDqMma<D>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smemDq)));
  const int nTiles = (a.t + kTileRows - 1) / kTileRows;
  const int64_t bh = int64_t(a.b) * a.h;
  const unsigned blocks = TileBlocks(kBwdOp, nTiles, bh);
  const float scale = 1.0f / std::sqrt(float(D)), scaleLog2 = kLog2e * scale;
  bf16x* dqkv = static_cast<bf16x*>(a.out);
  const bf16x* dout = static_cast<const bf16x*>(a.dout);
  const bf16x* qkv = static_cast<const bf16x*>(a.qkv);
  AttnBwdDkDvMma<D><<<blocks, kMmaThreads, smemDkDv, stream>>>(dqkv, dout, qkv, a.lse, di, a.slopes, a.t, a.h, bh,
                                                             nTiles, scaleLog2, scale);
  PT_CUDA_LAUNCHED(kBwdOp, "AttnBwdDkDvMma");
  AttnBwdDqMma<D><<<blocks, kMmaThreads, smemDq, stream>>>(dqkv, dout, qkv, a.lse, di, a.slopes, a.t, a.h, bh,
                                                         nTiles, scaleLog2, scale);
  PT_CUDA_LAUNCHED(kBwdOp, "AttnBwdDqMma");
}

template <class T>
void LaunchBwdFma(const AttentionArgs& a, const float* di, cudaStream_t stream) {
  const int64_t rows = int64_t(a.b) * a.h * a.t;
  const unsigned blocks = FmaBlocks(rows, kFmaWarps);
  const float scale = 1.0f / std::sqrt(float(a.d));
  T* dqkv = static_cast<T*>(a.out);
  const T* dout = static_cast<const T*>(a.dout);
  const T* qkv = static_cast<const T*>(a.qkv);
  AttnBwdDqFma<T><<<blocks, kFmaWarps * 32, 0, stream>>>(dqkv, dout, qkv, a.lse, di, a.slopes, a.t, a.h, a.d, rows,
                                                         scale);
  PT_CUDA_LAUNCHED(kBwdOp, "AttnBwdDqFma");
  AttnBwdDkDvFma<T><<<blocks, kFmaWarps * 32, 0, stream>>>(dqkv, dout, qkv, a.lse, di, a.slopes, a.t, a.h, a.d,
                                                           rows, scale);
  PT_CUDA_LAUNCHED(kBwdOp, "AttnBwdDkDvFma");
}

template <class T>
void LaunchRowDots(const AttentionArgs& a, float* di, cudaStream_t stream) {
  const int64_t rows = int64_t(a.b) * a.t * a.h;
  AttnBwdRowDots<T><<<FmaBlocks(rows, 8), 256, 0, stream>>>(di, static_cast<const T*>(a.dout),
                                                            static_cast<const T*>(a.fwdOut), a.t, a.h, a.d, rows);
  PT_CUDA_LAUNCHED(kBwdOp, "AttnBwdRowDots");
}

// The FMA kernels hold a row of up to kMaxHeadDim elements per warp; the builder guarantees 1 <= D <= 256.
void CheckHeadDim(const char* op, int d) {
  PT_CHECK_ARG(d >= 1 && d <= kMaxHeadDim, op, ": head dim must be in 1..", kMaxHeadDim, ", got ", d);
}

}  // namespace

void AttentionForward(const AttentionArgs& a, cudaStream_t stream) {
  if (int64_t(a.b) * a.t * a.h == 0) return;  // nothing to write (as the CPU op)
  CheckHeadDim(kFwdOp, a.d);
  if (UseMma(a, false)) {
    if (a.d == 64) LaunchFwdMma<64>(a, stream);
    else LaunchFwdMma<128>(a, stream);
  } else if (a.dtype == DType::BF16) {
    LaunchFwdFma<bf16x>(a, stream);
  } else {
    LaunchFwdFma<float>(a, stream);
  }
}

void AttentionBackward(const AttentionArgs& a, cudaStream_t stream) {
  if (int64_t(a.b) * a.t * a.h == 0) return;
  CheckHeadDim(kBwdOp, a.d);
  Buffer di(StreamDevice(stream), size_t(a.b) * a.h * a.t * sizeof(float), "attentionBackward");  // (B, H, T)
  if (a.dtype == DType::BF16) LaunchRowDots<bf16x>(a, di.get<float>(), stream);
  else LaunchRowDots<float>(a, di.get<float>(), stream);
  if (UseMma(a, true)) {
    if (a.d == 64) LaunchBwdMma<64>(a, di.get<float>(), stream);
    else LaunchBwdMma<128>(a, di.get<float>(), stream);
  } else if (a.dtype == DType::BF16) {
    LaunchBwdFma<bf16x>(a, di.get<float>(), stream);
  } else {
    LaunchBwdFma<float>(a, di.get<float>(), stream);
  }
}

}  // namespace cuda
}  // namespace pt
