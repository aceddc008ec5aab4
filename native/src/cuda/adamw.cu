// adamw.cu: the fused AdamW step on the GPU, the twin of ops/adamw.cc (torch.optim.AdamW's semantics):
//   g = grad * gradScale;  m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
//   p = p * decayFactor (decayed segments only) - stepSize * m / (sqrt(v) * invSqrtBc2 + eps)
// and, in the same pass, paramsBf16 = bf16(p) rounded like F32ToBf16 when a bf16 compute copy is given. Each
// element follows AdamWElement's operations in its order, in f32 (IEEE sqrt and division).
// The segments come in host memory. Adjacent segments with the same decay are merged into runs, each run is cut
// into chunks of kChunk elements, and one block updates one chunk; the run table (at most kMaxRuns runs per
// launch, more runs take more launches) travels in the kernel's parameters, so no copy to the device and no
// wait. A block finds its run by binary search over the table's first-block indices. One pass over memory,
// 16-byte accesses when the arenas allow (an unaligned head and tail of a chunk go one element per thread).
#include <algorithm>
#include <vector>

#include "../launch.h"
#include "check.h"
#include "kernels.cuh"

namespace pt {
namespace cuda {

namespace {

constexpr int64_t kChunk = 8192;  // elements per block
constexpr int kMaxRuns = 64;      // runs per launch (the table is ~1.8 KB of the 4 KB of kernel parameters)
constexpr int kVec = 4;           // f32 elements per 16-byte access

struct AdamWScalars {
  float beta1, beta2, oneMinusBeta1, oneMinusBeta2;
  float stepSize, invSqrtBc2, eps, gradScale;
};

// Runs [start[r], end[r]) of one launch; run r owns blocks [firstBlock[r], firstBlock[r + 1]).
struct RunTable {
  int64_t firstBlock[kMaxRuns + 1];
  int64_t start[kMaxRuns];
  int64_t end[kMaxRuns];
  float decayFactor[kMaxRuns];  // 1 where the run does not decay
  int count;
};

// AdamWElement of adamw.cc; returns the new parameter.
__device__ __forceinline__ float AdamWElement(float param, float grad, float& m, float& v, const AdamWScalars& s,
                                              float decayFactor) {
  const float g = grad * s.gradScale;
  m = s.beta1 * m + s.oneMinusBeta1 * g;
  v = s.beta2 * v + s.oneMinusBeta2 * g * g;
  const float p = param * decayFactor;
  return p - s.stepSize * m / (sqrtf(v) * s.invSqrtBc2 + s.eps);
}

template <bool kBf16>
__device__ __forceinline__ void UpdateOne(float* params, const float* grads, float* m, float* v,
                                          __nv_bfloat16* paramsBf16, int64_t i, const AdamWScalars& s, float decay) {
  float mi = m[i], vi = v[i];
  const float p = AdamWElement(params[i], grads[i], mi, vi, s, decay);
  m[i] = mi;
  v[i] = vi;
  params[i] = p;
  if (kBf16) paramsBf16[i] = StoreAs<__nv_bfloat16>(p);
}

// params, grads, m, v (P) f32; paramsBf16 (P) or null. kPacked: params, grads, m, v are 16-byte aligned and
// paramsBf16 8-byte aligned, so element indices that are multiples of kVec may be accessed as packs.
template <bool kBf16, bool kPacked>
__global__ void AdamWKernel(float* params, const float* grads, float* m, float* v, __nv_bfloat16* paramsBf16,
                            const __grid_constant__ RunTable table, const AdamWScalars s) {
  const int64_t b = blockIdx.x;
  int lo = 0, hi = table.count - 1;  // the last run whose firstBlock <= b
  while (lo < hi) {
    const int mid = (lo + hi + 1) / 2;
    if (table.firstBlock[mid] <= b) lo = mid;
    else hi = mid - 1;
  }
  const int64_t begin = table.start[lo] + (b - table.firstBlock[lo]) * kChunk;
  const int64_t end = begin + kChunk < table.end[lo] ? begin + kChunk : table.end[lo];
  const float decay = table.decayFactor[lo];
  int64_t packedBegin = end, packedEnd = end;  // [packedBegin, packedEnd): whole packs
  if (kPacked) {
    packedBegin = (begin + kVec - 1) / kVec * kVec;
    if (packedBegin > end) packedBegin = end;
    packedEnd = packedBegin + (end - packedBegin) / kVec * kVec;
    for (int64_t p = packedBegin + int64_t(threadIdx.x) * kVec; p < packedEnd; p += int64_t(blockDim.x) * kVec) {
      Pack<float, kVec> pp = LoadPack<kVec>(params + p);
      const Pack<float, kVec> gp = LoadPack<kVec>(grads + p);
      Pack<float, kVec> mp = LoadPack<kVec>(m + p);
      Pack<float, kVec> vp = LoadPack<kVec>(v + p);
      Pack<__nv_bfloat16, kVec> bp;
#pragma unroll
      for (int k = 0; k < kVec; k++) {
        pp.v[k] = AdamWElement(pp.v[k], gp.v[k], mp.v[k], vp.v[k], s, decay);
        bp.v[k] = StoreAs<__nv_bfloat16>(pp.v[k]);
      }
      StorePack<kVec>(params + p, pp);
      StorePack<kVec>(m + p, mp);
      StorePack<kVec>(v + p, vp);
      if (kBf16) StorePack<kVec>(paramsBf16 + p, bp);
    }
  }
  // The head [begin, packedBegin) and tail [packedEnd, end) (all of [begin, end) without packs), fewer than
  // kVec elements each with packs.
  for (int64_t i = begin + threadIdx.x; i < packedBegin; i += blockDim.x) {
    UpdateOne<kBf16>(params, grads, m, v, paramsBf16, i, s, decay);
  }
  for (int64_t i = packedEnd + threadIdx.x; i < end; i += blockDim.x) {
    UpdateOne<kBf16>(params, grads, m, v, paramsBf16, i, s, decay);
  }
}

struct Run {
  int64_t start, end;
  bool decay;
};

template <bool kBf16, bool kPacked>
void Launch(const AdamWArgs& a, const RunTable& table, int64_t blocks, const AdamWScalars& s, cudaStream_t stream) {
  AdamWKernel<kBf16, kPacked><<<unsigned(blocks), kThreads, 0, stream>>>(
      a.params, a.grads, a.m, a.v, reinterpret_cast<__nv_bfloat16*>(a.paramsBf16), table, s);
}

}  // namespace

// params, grads, m, v (P) f32, paramsBf16 (P) bf16 or null; segments tile [0, P)
void AdamWUpdate(const AdamWArgs& a, cudaStream_t stream) {
  if (a.p == 0) return;
  std::vector<Run> runs;
  for (const AdamWSegment& sg : a.segments) {
    if (sg.length <= 0) continue;
    if (!runs.empty() && runs.back().decay == sg.decay && runs.back().end == sg.offset) {
      runs.back().end = sg.offset + sg.length;
    } else {
      runs.push_back({sg.offset, sg.offset + sg.length, sg.decay});
    }
  }
  // The builder checked the tiling; the kernel relies on it, so a broken contract is an error, not a skipped range.
  PT_CHECK_ARG(!runs.empty() && runs.front().start == 0 && runs.back().end == a.p,
               "adamwUpdate: the segments must tile [0, ", a.p, ")");
  for (size_t r = 1; r < runs.size(); r++) {
    PT_CHECK_ARG(runs[r].start == runs[r - 1].end, "adamwUpdate: the segments must tile [0, ", a.p,
                 "), got a gap or an overlap at element ", runs[r].start);
  }
  const AdamWScalars s{a.beta1, a.beta2, a.oneMinusBeta1, a.oneMinusBeta2, a.stepSize, a.invSqrtBc2, a.eps,
                       a.gradScale};
  const bool bf16Copy = a.paramsBf16 != nullptr;
  const bool packed = PackAligned<float, kVec>(a.params) && PackAligned<float, kVec>(a.grads) &&
                      PackAligned<float, kVec>(a.m) && PackAligned<float, kVec>(a.v) &&
                      (!bf16Copy || PackAligned<__nv_bfloat16, kVec>(a.paramsBf16));
  for (size_t first = 0; first < runs.size(); first += kMaxRuns) {
    RunTable table{};
    table.count = int(std::min<size_t>(kMaxRuns, runs.size() - first));
    int64_t blocks = 0;
    for (int r = 0; r < table.count; r++) {
      const Run& run = runs[first + size_t(r)];
      table.firstBlock[r] = blocks;
      table.start[r] = run.start;
      table.end[r] = run.end;
      table.decayFactor[r] = run.decay ? a.decayFactor : 1.0f;
      blocks += (run.end - run.start + kChunk - 1) / kChunk;
    }
    table.firstBlock[table.count] = blocks;
    // blocks <= P / kChunk + kMaxRuns: far below gridDim.x's 2^31 - 1 for any arena that fits in memory.
    if (bf16Copy) {
      if (packed) Launch<true, true>(a, table, blocks, s, stream);
      else Launch<true, false>(a, table, blocks, s, stream);
    } else {
      if (packed) Launch<false, true>(a, table, blocks, s, stream);
      else Launch<false, false>(a, table, blocks, s, stream);
    }
    PT_CUDA_LAUNCHED("adamwUpdate", "AdamWKernel");
  }
}

}  // namespace cuda
}  // namespace pt
