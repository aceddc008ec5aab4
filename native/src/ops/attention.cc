// attention.cc: causal multi-head self-attention with ALiBi on the CPU, forward and backward (flash style).
//
// Math (per batch b, head h; q, k, v, dout are (T, D) slices of the tensors below):
//   s[i,j] = q_i.k_j / sqrt(D) + slopes[h] * (j - i)   for j <= i (j > i masked)
//   out_i  = sum_j softmax_j(s[i,:]) v_j,              lse_i = log sum_j exp(s[i,j])
//   backward: P = exp(s - lse), Di = dout_i.out_i, dS = P * (dout V^T - Di),
//             dq = dS k / sqrt(D), dk = dS^T q / sqrt(D), dv = P^T dout
// Accumulation rule: dqkv is an activation gradient and is overwritten, never accumulated.
//
// How: the T x T score matrix is never materialised. Queries and keys are cut into 64-wide tiles; one
// (64 keys x 64 queries) score block at a time is computed with queries in SIMD lanes ("transposed" scores,
// so row maxima and sums are vertical, no horizontal reductions), turned into probabilities with an online
// softmax (forward) or from the saved lse (backward), and multiplied into fp32 accumulators. Each batch element
// is first split into per-head, zero-padded rows by one streaming pass over its rows, then packed into the
// layouts the microkernels stream. D is padded to a multiple of 16 and T to a multiple of 64 (padding
// contributes exact zeros), so any T >= 1 and 1 <= D <= 256 take the same path. Within a batch element the
// forward is parallel over (head, query tile) and the backward over heads: a backward task owns its head's
// dq accumulator and loops key tiles outer (dk, dv accumulate per key tile) and query tiles inner, so it is
// race free without atomics. Statistics and accumulators are fp32 on every path.
//
// Paths, picked at run time from ActiveIsa() (the addon is compiled for baseline x86-64; only functions with a
// target attribute use AVX-512):
//   Avx512Bf16: bf16 tensors; products with vdpbf16ps on bf16 pairs. P and dS are rounded to bf16 for their
//               second product, as GPU flash attention does. f32 tensors take the Avx512 path at this level.
//   Avx512:     fp32 FMA; bf16 tensors are widened to fp32 when packed.
//   Scalar:     plain C++ (auto-vectorised at the baseline ISA); also used at the Avx2 level.
// Both AVX-512 paths are one template of block kernels over a word trait (how a packed word is loaded and
// which instruction multiplies it), so the tile loops are written once for both.
// Files: this one holds the scratch memory, the drivers (the tile loops over a sequence, one per direction,
// shared by every path), the entry points and the op registration (attentionForward / attentionBackward, at
// the bottom); attention_tiles.h the block contract every path meets, the portable packing and the scalar
// path; attention_avx512.h the AVX-512 paths, whose block kernels are one template (attention_avx512_tiles.inc).
// Limits: the backward runs at most H tasks at a time, so with H < threads some cores idle. Scratch, about
// 5*H*T*D elements plus 6*T*D per thread, is cached per calling thread and kept at its largest size; the
// entry points throw PtError (engine) only when it cannot be allocated.
#include "attention.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>

#include "../cpu.h"
#include "../gemm.h"
#include "../op.h"
#include "../scratch.h"
#include "attention_avx512.h"
#include "attention_tiles.h"
#include "ops.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace pt {
namespace attention {
namespace {

inline int RoundUp(int x, int m) { return (x + m - 1) / m * m; }

thread_local ScratchBuffer tScratch;

// ---- Drivers (one per direction, shared by every path) ----

// Both drivers take one batch element at a time: a streaming pass splits its rows into per-head padded rows
// (reading whole rows in order: per-head strided reads are bound by memory latency), the heads are then
// packed and processed. Scratch is therefore proportional to one batch element, not the whole batch.
constexpr int kRowChunk = 16;  // rows per task of the streaming pass

template <class Path, class T>
void ForwardImpl(T* out, float* lse, const T* qkv, const float* slopes, int B, int Tn, int H, int D) {
  using E = typename Path::E;
  constexpr int P = Path::kPair;
  const int Dp = RoundUp(D, kLanes), Tp = RoundUp(Tn, kTile), nTiles = Tp / kTile, kw = Dp / P;
  const long C = long(H) * D, rs = 3 * C;  // qkv row stride
  const size_t head = size_t(Tp) * Dp;
  const float scale = 1.0f / std::sqrt(float(D));
  const int nThreads = std::max(1, Threads());
  // Two passes over one layout: the first sizes the reservation, the second binds the pointers.
  Carver cv;
  E *qRows, *kRows, *vRows, *qLanes, *vPairs, *pBuf;
  float *sBuf, *oBuf, *statBuf;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) cv.Bind(tScratch.Reserve(cv.used(), "attention"));
    qRows = cv.Take<E>(3 * H * head);                          // (3, H, Tp, Dp): q, k, v rows
    kRows = qRows + H * head;
    vRows = kRows + H * head;
    qLanes = cv.Take<E>(H * head);                             // (H, Tp/16, Dp/P, 16, P)
    vPairs = P == 1 ? vRows : cv.Take<E>(H * head);            // (H, Tp/P, Dp, P)
    pBuf = cv.Take<E>(size_t(nThreads) * kTile * kTile);       // per thread (64/P, 64, P)
    sBuf = cv.Take<float>(size_t(nThreads) * kTile * kTile);   // per thread (64 keys, 64 queries)
    oBuf = cv.Take<float>(size_t(nThreads) * kTile * Dp);      // per thread (64, Dp)
    statBuf = cv.Take<float>(size_t(nThreads) * 3 * kTile);    // per thread m, l, alpha (64) each
  }

#pragma omp parallel num_threads(nThreads)
  {
    const int tid = ThreadIndex();
    E* p = pBuf + size_t(tid) * kTile * kTile;
    float* s = sBuf + size_t(tid) * kTile * kTile;
    float* o = oBuf + size_t(tid) * kTile * Dp;
    float* m = statBuf + size_t(tid) * 3 * kTile;
    float* l = m + kTile;
    float* alpha = l + kTile;
    for (int b = 0; b < B; b++) {
      const T* qkvB = qkv + long(b) * Tn * rs;  // (T, 3, H, D)
#pragma omp for schedule(static)
      for (int t0 = 0; t0 < Tp; t0 += kRowChunk) {
        const int n = std::max(0, std::min(kRowChunk, Tn - t0));
        Path::LoadHeads(qRows + size_t(t0) * Dp, H * head, head, qkvB + (n ? t0 : 0) * rs, rs, n, kRowChunk, 3, H,
                        D, Dp);
      }
#pragma omp for schedule(static)
      for (int h = 0; h < H; h++) {
        Path::Transpose(qLanes + h * head, qRows + h * head, Tp, Dp);
        if constexpr (P == 2) Path::Interleave(vPairs + h * head, vRows + h * head, Tp, Dp);
      }
      // Consecutive tasks share a head, so its packed K and V stay in cache; within a head the largest query
      // tiles (the causal work per tile grows with its index) come first.
#pragma omp for schedule(dynamic, 1)
      for (int task = 0; task < H * nTiles; task++) {
        const int h = task / nTiles, qt = nTiles - 1 - task % nTiles;
        const int q0 = qt * kTile, nq = std::min(kTile, Tn - q0);
        std::fill(m, m + kTile, -std::numeric_limits<float>::infinity());
        std::fill(l, l + kTile, 0.0f);
        std::fill(o, o + size_t(kTile) * Dp, 0.0f);
        for (int kt = 0; kt <= qt; kt++) {
          const bool diag = kt == qt;
          const size_t kOff = h * head + size_t(kt) * kTile * Dp;
          Path::Scores(s, kRows + kOff, qLanes + h * head + size_t(q0) * Dp, kw, diag);
          Path::SoftmaxStep(p, s, m, l, alpha, scale, slopes[h], (kt - qt) * kTile, diag);
          Path::Accum(o, Dp, alpha, p, 1, kTile, vPairs + kOff, Dp, kTile / P, Dp, diag ? 1 : 0);
        }
        const long bh = long(b) * H + h;
        for (int r = 0; r < nq; r++) {
          lse[bh * Tn + q0 + r] = m[r] + std::log(l[r]);
          alpha[r] = 1.0f / l[r];
        }
        Path::StoreRows(out + (long(b) * Tn + q0) * C + long(h) * D, C, o, Dp, alpha, nq, D);
      }
    }
  }
}

template <class Path, class T>
void BackwardImpl(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, const float* slopes,
                  int B, int Tn, int H, int D) {
  using E = typename Path::E;
  constexpr int P = Path::kPair;
  const int Dp = RoundUp(D, kLanes), Tp = RoundUp(Tn, kTile), nTiles = Tp / kTile, kw = Dp / P;
  const long C = long(H) * D, rs = 3 * C;
  const size_t head = size_t(Tp) * Dp, blk = size_t(kTile) * kTile;
  const float scale = 1.0f / std::sqrt(float(D));
  const int nThreads = std::max(1, Threads());
  // Per batch element: q, k, v, dout rows of every head and di. Per thread: 5 packed copies of one head,
  // 3 block buffers (64*64), dq, dk, dv, s, dp, lse.
  const size_t packPer = 5 * head + 3 * blk, accPer = head + 2 * kTile * Dp + 2 * blk + 2 * Tp;
  Carver cv;
  E *qRows, *kRows, *vRows, *doRows, *packBuf;
  float *diAll, *accBuf;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) cv.Bind(tScratch.Reserve(cv.used(), "attention"));
    qRows = cv.Take<E>(3 * H * head);               // (3, H, Tp, Dp): q, k, v rows
    kRows = qRows + H * head;
    vRows = kRows + H * head;
    doRows = cv.Take<E>(H * head);                  // (H, Tp, Dp)
    diAll = cv.Take<float>(size_t(H) * Tp);         // (H, Tp)
    packBuf = cv.Take<E>(nThreads * packPer);
    accBuf = cv.Take<float>(nThreads * accPer);
  }

#pragma omp parallel num_threads(nThreads)
  {
    const int tid = ThreadIndex();
    E* qLanes = packBuf + tid * packPer;                              // (Tp/16, Dp/P, 16, P)
    E* doLanes = qLanes + head;                                       // (Tp/16, Dp/P, 16, P)
    E* kPairs = doLanes + head;                                       // (Tp/P, Dp, P)
    E* qPairs = kPairs + head;                                        // (Tp/P, Dp, P)
    E* doPairs = qPairs + head;                                       // (Tp/P, Dp, P)
    E* pt = doPairs + head;                                           // (64 keys, 64 queries)
    E* dst = pt + blk;                                                // (64 keys, 64 queries)
    E* dsp = dst + blk;                                               // (64/P, 64 queries, P)
    float* dq = accBuf + tid * accPer;                                // (Tp, Dp)
    float* dk = dq + head;                                            // (64, Dp)
    float* dv = dk + kTile * Dp;                                      // (64, Dp)
    float* s = dv + kTile * Dp;                                       // (64 keys, 64 queries)
    float* dp = s + blk;                                              // (64 keys, 64 queries)
    float* lseP = dp + blk;                                           // (Tp), +inf padding zeroes P
    float* di = lseP + Tp;                                            // (Tp)
    for (int b = 0; b < B; b++) {
      const T* qkvB = qkv + long(b) * Tn * rs;  // (T, 3, H, D)
      const T* doB = dout + long(b) * Tn * C;   // (T, H, D)
      const T* oB = out + long(b) * Tn * C;     // (T, H, D)
#pragma omp for schedule(static)
      for (int t0 = 0; t0 < Tp; t0 += kRowChunk) {
        const int n = std::max(0, std::min(kRowChunk, Tn - t0));
        const long t = n ? t0 : 0;
        Path::LoadHeads(qRows + size_t(t0) * Dp, H * head, head, qkvB + t * rs, rs, n, kRowChunk, 3, H, D, Dp);
        Path::LoadHeads(doRows + size_t(t0) * Dp, 0, head, doB + t * C, C, n, kRowChunk, 1, H, D, Dp);
        Path::RowDotsHeads(diAll + t0, Tp, doB + t * C, oB + t * C, C, n, H, D);
      }
#pragma omp for schedule(dynamic, 1)
      for (int h = 0; h < H; h++) {
        const long bh = long(b) * H + h;
        E* qR = qRows + h * head;
        E* kR = kRows + h * head;
        E* vR = vRows + h * head;
        E* doR = doRows + h * head;
        Path::Transpose(qLanes, qR, Tp, Dp);
        Path::Transpose(doLanes, doR, Tp, Dp);
        const E* kP = kR;
        const E* qP = qR;
        const E* doP = doR;
        if constexpr (P == 2) {
          Path::Interleave(kPairs, kR, Tp, Dp);
          Path::Interleave(qPairs, qR, Tp, Dp);
          Path::Interleave(doPairs, doR, Tp, Dp);
          kP = kPairs, qP = qPairs, doP = doPairs;
        }
        for (int t = 0; t < Tp; t++) {
          di[t] = t < Tn ? diAll[h * Tp + t] : 0.0f;
          lseP[t] = t < Tn ? lse[bh * Tn + t] : std::numeric_limits<float>::infinity();
        }
        std::fill(dq, dq + head, 0.0f);
        for (int kt = 0; kt < nTiles; kt++) {
          std::fill(dk, dk + 2 * kTile * Dp, 0.0f);  // dk and dv
          const size_t kOff = size_t(kt) * kTile * Dp;
          for (int qt = kt; qt < nTiles; qt++) {
            const bool diag = qt == kt;
            const size_t qOff = size_t(qt) * kTile * Dp;
            Path::Scores(s, kR + kOff, qLanes + qOff, kw, diag);
            Path::Scores(dp, vR + kOff, doLanes + qOff, kw, diag);
            Path::GradStep(pt, dst, dsp, s, dp, lseP + qt * kTile, di + qt * kTile, scale, slopes[h],
                           (kt - qt) * kTile, diag);
            Path::Accum(dv, Dp, nullptr, pt, kTile / P, 1, doP + qOff, Dp, kTile / P, Dp, diag ? 2 : 0);
            Path::Accum(dk, Dp, nullptr, dst, kTile / P, 1, qP + qOff, Dp, kTile / P, Dp, diag ? 2 : 0);
            Path::Accum(dq + qOff, Dp, nullptr, dsp, 1, kTile, kP + kOff, Dp, kTile / P, Dp, diag ? 1 : 0);
          }
          const int nk = std::min(kTile, Tn - kt * kTile);
          T* dkRows = dqkv + ((long(b) * Tn + kt * kTile) * 3 + 1) * C + long(h) * D;  // rows 3*C apart
          Path::StoreRows(dkRows, rs, dk, Dp, nullptr, nk, D);
          Path::StoreRows(dkRows + C, rs, dv, Dp, nullptr, nk, D);
        }
        Path::StoreRows(dqkv + (long(b) * Tn * 3) * C + long(h) * D, rs, dq, Dp, nullptr, Tn, D);
      }
    }
  }
}

}  // namespace
}  // namespace attention

using attention::Avx512Path;
using attention::BackwardImpl;
using attention::Bf16Path;
using attention::ForwardImpl;
using attention::ScalarPath;

namespace {
std::atomic<int> gAttentionEngine{-1};
}

AttentionEngine ActiveAttentionEngine() {
  int e = gAttentionEngine.load();
  if (e < 0) {
    const char* env = std::getenv("PAJAMA_ATTENTION");
    const std::string choice = env ? env : "";
    bool gemm = Cpu().amxBf16 && ActiveGemmEngine() == GemmEngine::OneDnn;  // our tiles do not use AMX
    if (choice == "gemm" || choice == "tiles") gemm = choice == "gemm";
    e = int(gemm ? AttentionEngine::Gemm : AttentionEngine::Tiles);
    gAttentionEngine.store(e);
  }
  return AttentionEngine(e);
}

void SetAttentionEngine(AttentionEngine e) { gAttentionEngine.store(int(e)); }

const char* AttentionEngineName(AttentionEngine e) { return e == AttentionEngine::Gemm ? "gemm" : "tiles"; }

void AttentionForwardF32(float* out, float* lse, const float* qkv, const float* slopes, int B, int T, int H,
                         int D) {
  if (ActiveAttentionEngine() == AttentionEngine::Gemm) AttentionForwardGemm(out, lse, qkv, slopes, B, T, H, D);
  else if (ActiveIsa() >= Isa::Avx512) ForwardImpl<Avx512Path>(out, lse, qkv, slopes, B, T, H, D);
  else ForwardImpl<ScalarPath>(out, lse, qkv, slopes, B, T, H, D);
}

void AttentionForwardBf16(bf16* out, float* lse, const bf16* qkv, const float* slopes, int B, int T, int H,
                          int D) {
  const Isa isa = ActiveIsa();
  if (ActiveAttentionEngine() == AttentionEngine::Gemm) AttentionForwardGemm(out, lse, qkv, slopes, B, T, H, D);
  else if (isa >= Isa::Avx512Bf16) ForwardImpl<Bf16Path>(out, lse, qkv, slopes, B, T, H, D);
  else if (isa >= Isa::Avx512) ForwardImpl<Avx512Path>(out, lse, qkv, slopes, B, T, H, D);
  else ForwardImpl<ScalarPath>(out, lse, qkv, slopes, B, T, H, D);
}

void AttentionBackwardF32(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                          const float* slopes, int B, int T, int H, int D) {
  if (ActiveAttentionEngine() == AttentionEngine::Gemm)
    AttentionBackwardGemm(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
  else if (ActiveIsa() >= Isa::Avx512) BackwardImpl<Avx512Path>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
  else BackwardImpl<ScalarPath>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
}

void AttentionBackwardBf16(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* out, const float* lse,
                           const float* slopes, int B, int T, int H, int D) {
  const Isa isa = ActiveIsa();
  if (ActiveAttentionEngine() == AttentionEngine::Gemm)
    AttentionBackwardGemm(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
  else if (isa >= Isa::Avx512Bf16) BackwardImpl<Bf16Path>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
  else if (isa >= Isa::Avx512) BackwardImpl<Avx512Path>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
  else BackwardImpl<ScalarPath>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
}

// ---- Registration: attentionForward(out, lse, qkv, slopes, nHeads) and
//      attentionBackward(dqkv, dout, qkv, out, lse, slopes, nHeads) ----
namespace {

constexpr int64_t kMaxHeadDim = 256;

struct AttnDims {
  int64_t B, T, H, D;
};

// qkv is (B, T, 3*C) or (B, T, 3, H, D); C = H * D with 1 <= D <= 256.
AttnDims QkvDims(const std::string& op, const Tensor& qkv, int64_t nHeads) {
  ExpectFloat(op, "qkv", qkv);
  PT_CHECK_ARG(nHeads >= 1 && nHeads <= (1 << 20), op, ": nHeads must be a positive integer, got ", nHeads);
  PT_CHECK_ARG(qkv.ndim() == 3 || qkv.ndim() == 5, op, ": 'qkv' must be (B, T, 3*C) or (B, T, 3, H, D), got ",
               qkv.Describe());
  const int64_t B = qkv.dim(0), T = qkv.dim(1), threeC = qkv.numel / std::max<int64_t>(1, B * T);
  if (qkv.ndim() == 5)
    PT_CHECK_ARG(qkv.dim(2) == 3 && qkv.dim(3) == nHeads, op, ": 'qkv' must be (B, T, 3, H=", nHeads,
                 ", D), got ", qkv.Describe());
  PT_CHECK_ARG(threeC % (3 * nHeads) == 0, op, ": 'qkv' last dims (", threeC, ") must be 3 * nHeads (", nHeads,
               ") * head dim, got ", qkv.Describe());
  const int64_t D = threeC / (3 * nHeads);
  PT_CHECK_ARG(D >= 1 && D <= kMaxHeadDim, op, ": head dim C / nHeads must be in 1..", kMaxHeadDim, ", got ", D,
               " (qkv ", qkv.Describe(), ", nHeads ", nHeads, ")");
  PT_CHECK_ARG(B <= INT32_MAX && T <= INT32_MAX && B * nHeads <= INT32_MAX, op, ": 'qkv' ", qkv.Describe(),
               " is too large");
  return {B, T, nHeads, D};
}

// attentionForward(out, lse, qkv, slopes, nHeads): out (B, T, C) like qkv; lse (B, H, T) f32; slopes (H) f32.
Kernel BuildAttentionForward(OpArgs& a) {
  Tensor out = a.tensor(0, "out"), lse = a.tensor(1, "lse"), qkv = a.tensor(2, "qkv");
  Tensor slopes = a.tensor(3, "slopes");
  const std::string& op = a.op();
  const AttnDims d = QkvDims(op, qkv, a.integer(4, "nHeads"));
  ExpectSameDType(op, "out", out, "qkv", qkv);
  ExpectDType(op, "lse", lse, DType::F32);
  ExpectDType(op, "slopes", slopes, DType::F32);
  ExpectShape(op, "out", out, {d.B, d.T, d.H * d.D});
  ExpectShape(op, "lse", lse, {d.B, d.H, d.T});
  ExpectShape(op, "slopes", slopes, {d.H});
  const std::pair<const char*, const Tensor*> outputs[] = {{"out", &out}, {"lse", &lse}};
  const std::pair<const char*, const Tensor*> inputs[] = {{"qkv", &qkv}, {"slopes", &slopes}};
  for (const auto& [on, o] : outputs)
    for (const auto& [in, i] : inputs) ExpectNoOverlap(op, on, *o, in, *i);
  ExpectNoOverlap(op, "out", out, "lse", lse);
  AttentionArgs at;
  at.out = out.raw(), at.lse = lse.ptr<float>(), at.qkv = qkv.raw(), at.slopes = slopes.ptr<float>();
  at.dtype = qkv.dtype, at.b = int(d.B), at.t = int(d.T), at.h = int(d.H), at.d = int(d.D);
  return LaunchOn(a, at, &cpu::AttentionForward, PT_CUDA_FN(AttentionForward));
}

// attentionBackward(dqkv, dout, qkv, out, lse, slopes, nHeads): dqkv like qkv (overwritten); dout, out
// (B, T, C) like qkv; lse (B, H, T) f32 from the forward; slopes (H) f32.
Kernel BuildAttentionBackward(OpArgs& a) {
  Tensor dqkv = a.tensor(0, "dqkv"), dout = a.tensor(1, "dout"), qkv = a.tensor(2, "qkv");
  Tensor out = a.tensor(3, "out"), lse = a.tensor(4, "lse"), slopes = a.tensor(5, "slopes");
  const std::string& op = a.op();
  const AttnDims d = QkvDims(op, qkv, a.integer(6, "nHeads"));
  ExpectSameDType(op, "dqkv", dqkv, "qkv", qkv);
  ExpectSameDType(op, "dout", dout, "qkv", qkv);
  ExpectSameDType(op, "out", out, "qkv", qkv);
  ExpectDType(op, "lse", lse, DType::F32);
  ExpectDType(op, "slopes", slopes, DType::F32);
  ExpectShape(op, "dqkv", dqkv, qkv.shape);
  ExpectShape(op, "dout", dout, {d.B, d.T, d.H * d.D});
  ExpectShape(op, "out", out, {d.B, d.T, d.H * d.D});
  ExpectShape(op, "lse", lse, {d.B, d.H, d.T});
  ExpectShape(op, "slopes", slopes, {d.H});
  const std::pair<const char*, const Tensor*> inputs[] = {
      {"dout", &dout}, {"qkv", &qkv}, {"out", &out}, {"lse", &lse}, {"slopes", &slopes}};
  for (const auto& [in, i] : inputs) ExpectNoOverlap(op, "dqkv", dqkv, in, *i);
  AttentionArgs at;
  at.out = dqkv.raw(), at.lse = lse.ptr<float>(), at.qkv = qkv.raw(), at.fwdOut = out.raw(), at.dout = dout.raw();
  at.slopes = slopes.ptr<float>();
  at.dtype = qkv.dtype, at.b = int(d.B), at.t = int(d.T), at.h = int(d.H), at.d = int(d.D);
  return LaunchOn(a, at, &cpu::AttentionBackward, PT_CUDA_FN(AttentionBackward));
}

}  // namespace

void cpu::AttentionForward(const AttentionArgs& a) {
  if (a.b == 0 || a.t == 0) return;
  if (a.dtype == DType::F32)
    AttentionForwardF32(static_cast<float*>(a.out), a.lse, static_cast<const float*>(a.qkv), a.slopes, a.b, a.t, a.h,
                        a.d);
  else
    AttentionForwardBf16(static_cast<bf16*>(a.out), a.lse, static_cast<const bf16*>(a.qkv), a.slopes, a.b, a.t, a.h,
                         a.d);
}

void cpu::AttentionBackward(const AttentionArgs& a) {
  if (a.b == 0 || a.t == 0) return;
  if (a.dtype == DType::F32)
    AttentionBackwardF32(static_cast<float*>(a.out), static_cast<const float*>(a.dout),
                         static_cast<const float*>(a.qkv), static_cast<const float*>(a.fwdOut), a.lse, a.slopes, a.b,
                         a.t, a.h, a.d);
  else
    AttentionBackwardBf16(static_cast<bf16*>(a.out), static_cast<const bf16*>(a.dout), static_cast<const bf16*>(a.qkv),
                          static_cast<const bf16*>(a.fwdOut), a.lse, a.slopes, a.b, a.t, a.h, a.d);
}

void RegisterAttention(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "attentionForward", BuildAttentionForward);
  RegisterOp(env, exports, "attentionBackward", BuildAttentionBackward);
}

}  // namespace pt
