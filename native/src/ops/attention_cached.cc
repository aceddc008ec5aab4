// attention_cached.cc: causal multi-head attention with ALiBi over a key/value cache, forward only (inference:
// prefill and decode). The contract is launch.h's AttentionCachedArgs; the CUDA twin is cuda/attention_cached.cu.
//
// Math (per sequence b, head h; new positions p = past + i for i in [0, Tq)):
//   K[b, h, p, :] = k_i, V[b, h, p, :] = v_i                    (the new keys and values appended to the cache)
//   s[i, j] = q_i . K[j] / sqrt(D) + slopes[h] * (j - p)        for j in [0, p]
//   out_i   = sum_j softmax_j(s[i, :]) V[j]
// which is exactly what attentionForward computes for query p of the whole sequence [0, past + Tq): ALiBi's
// bias depends on j - p alone, so the cache holds K and V only (no position ids).
// Accumulation rule: no gradients (forward only); out is overwritten, the caches are written at the new
// positions only.
//
// How: past == 0 (a prefill from an empty cache) runs the attentionForward engines themselves (tiles or gemm,
// attention.h) over the packed qkv, so a prefill is bit for bit the training forward's attention, then copies K
// and V into the cache. past > 0 (decode, or appending to a cache) takes one task per query row, parallel over
// (b, h, i): the row's scores against its p + 1 cached keys, a max, exp and sum, then the probability-weighted
// sum of cached values, all in f32 (P is not rounded to bf16), in multiversioned loops (PT_CLONES: AVX-512,
// AVX2 or baseline code for the running CPU). Scratch per thread: p + 1 scores and 2 * D accumulators.
// Limits: the builder checks 1 <= D <= 256 and past + Tq <= maxLen; caches must not overlap any other argument.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../cpu.h"
#include "../op.h"
#include "../scratch.h"
#include "../vecmath.h"
#include "attention.h"
#include "ops.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace pt {
namespace {

thread_local ScratchBuffer tScratch;

// ---- Row kernels (one query row against n cached keys of one head) ----

// s[j] = q . k_j + slope * (j - last) for j < n (q already scaled by 1/sqrt(D)); returns max_j s[j].
template <class T>
inline float ScoreRowBody(float* s, const float* q, const T* k, int n, int d, float slope, int last) {
  float mx = -std::numeric_limits<float>::infinity();
  for (int j = 0; j < n; j++) {
    const T* kj = k + int64_t(j) * d;
    float dot = 0.0f;
#pragma omp simd reduction(+ : dot)
    for (int e = 0; e < d; e++) dot += q[e] * Ld(kj + e);
    const float x = dot + slope * float(j - last);
    s[j] = x;
    mx = x > mx ? x : mx;
  }
  return mx;
}

// s[j] = exp(s[j] - mx); returns the sum.
inline float ExpRowBody(float* s, int n, float mx) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < n; j++) {
    const float e = FastExp(s[j] - mx);
    s[j] = e;
    sum += e;
  }
  return sum;
}

// acc (D) = sum_j p[j] v_j.
template <class T>
inline void WeightedSumBody(float* acc, const float* p, const T* v, int n, int d) {
  std::fill(acc, acc + d, 0.0f);
  for (int j = 0; j < n; j++) {
    const float pj = p[j];
    const T* vj = v + int64_t(j) * d;
#pragma omp simd
    for (int e = 0; e < d; e++) acc[e] += pj * Ld(vj + e);
  }
}

template <class T>
inline void StoreRowBody(T* out, const float* acc, int d, float inv) {
#pragma omp simd
  for (int e = 0; e < d; e++) St(out + e, acc[e] * inv);
}

// The multiversioned instances (PT_CLONES is not applied to templates).
#define PT_CACHED_ROWS(T)                                                                                  \
  PT_CLONES float ScoreRow(float* s, const float* q, const T* k, int n, int d, float slope, int last) {     \
    return ScoreRowBody(s, q, k, n, d, slope, last);                                                       \
  }                                                                                                        \
  PT_CLONES void WeightedSum(float* acc, const float* p, const T* v, int n, int d) {                       \
    WeightedSumBody(acc, p, v, n, d);                                                                      \
  }                                                                                                        \
  PT_CLONES void StoreRow(T* out, const float* acc, int d, float inv) { StoreRowBody(out, acc, d, inv); }
PT_CACHED_ROWS(float)
PT_CACHED_ROWS(bf16)
#undef PT_CACHED_ROWS
PT_CLONES float ExpRow(float* s, int n, float mx) { return ExpRowBody(s, n, mx); }

// K and V of the Tq new positions into the caches: kCache[b, h, past + t] = qkv[b, t, 1, h], V likewise.
template <class T>
void AppendKv(const AttentionCachedArgs& a) {
  const int64_t D = a.d, C = int64_t(a.h) * D, rs = 3 * C, L = a.maxLen;
  const T* qkv = static_cast<const T*>(a.qkv);
  T* kc = static_cast<T*>(a.kCache);
  T* vc = static_cast<T*>(a.vCache);
  const int64_t rows = int64_t(a.b) * a.tq;
#pragma omp parallel for num_threads(Threads()) schedule(static) if (rows * C > 16384)
  for (int64_t r = 0; r < rows; r++) {
    const int64_t b = r / a.tq, t = r % a.tq;
    const T* src = qkv + r * rs;
    for (int h = 0; h < a.h; h++) {
      const int64_t at = ((b * a.h + h) * L + a.past + t) * D;
      std::memcpy(kc + at, src + C + h * D, size_t(D) * sizeof(T));
      std::memcpy(vc + at, src + 2 * C + h * D, size_t(D) * sizeof(T));
    }
  }
}

// Attention of each new query row over the cache (past > 0).
template <class T>
void CachedRows(const AttentionCachedArgs& a) {
  const int D = a.d, H = a.h, Tq = a.tq;
  const int64_t C = int64_t(H) * D, rs = 3 * C, L = a.maxLen;
  const T* qkv = static_cast<const T*>(a.qkv);
  const T* kc = static_cast<const T*>(a.kCache);
  const T* vc = static_cast<const T*>(a.vCache);
  T* out = static_cast<T*>(a.out);
  const float scale = 1.0f / std::sqrt(float(D));
  const int nThreads = std::max(1, Threads());
  const int nMax = a.past + Tq;  // keys of the last row
  auto carve = [&](Carver& cv) {
    struct {
      float *s, *q, *acc;
    } b;
    b.s = cv.Take<float>(size_t(nMax));
    b.q = cv.Take<float>(size_t(D));
    b.acc = cv.Take<float>(size_t(D));
    return b;
  };
  Carver sizing;
  carve(sizing);
  const size_t per = sizing.used();
  char* base = tScratch.Reserve(per * size_t(nThreads), "attentionCachedForward");
  const int64_t rows = int64_t(a.b) * H * Tq;  // (b, h, i): consecutive rows share a head's cache
#pragma omp parallel num_threads(nThreads)
  {
    Carver cv;
    cv.Bind(base + per * size_t(ThreadIndex()));
    const auto mine = carve(cv);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; r++) {
      const int i = int(r % Tq);
      const int64_t bh = r / Tq, b = bh / H;
      const int h = int(bh % H);
      const int last = a.past + i, n = last + 1;
      const T* q = qkv + (b * Tq + i) * rs + int64_t(h) * D;
      for (int e = 0; e < D; e++) mine.q[e] = Ld(q + e) * scale;
      const T* k = kc + bh * L * D;
      const T* v = vc + bh * L * D;
      const float mx = ScoreRow(mine.s, mine.q, k, n, D, a.slopes[h], last);
      const float sum = ExpRow(mine.s, n, mx);
      WeightedSum(mine.acc, mine.s, v, n, D);
      StoreRow(out + (b * Tq + i) * C + int64_t(h) * D, mine.acc, D, 1.0f / sum);
    }
  }
}

template <class T>
void CachedForward(const AttentionCachedArgs& a) {
  AppendKv<T>(a);
  if (a.past > 0) {
    CachedRows<T>(a);
    return;
  }
  // A prefill from an empty cache: the training forward's own engines (lse is computed and dropped).
  float* lse = reinterpret_cast<float*>(
      tScratch.Reserve(size_t(a.b) * a.h * a.tq * sizeof(float), "attentionCachedForward"));
  if constexpr (std::is_same_v<T, float>)
    AttentionForwardF32(static_cast<float*>(a.out), lse, static_cast<const float*>(a.qkv), a.slopes, a.b, a.tq,
                        a.h, a.d);
  else
    AttentionForwardBf16(static_cast<bf16*>(a.out), lse, static_cast<const bf16*>(a.qkv), a.slopes, a.b, a.tq, a.h,
                         a.d);
}

// ---- Registration: attentionCachedForward(out, kCache, vCache, qkv, slopes, nHeads, past) ----

constexpr int64_t kMaxHeadDim = 256;

Kernel BuildAttentionCachedForward(OpArgs& a) {
  Tensor out = a.tensor(0, "out"), kCache = a.tensor(1, "kCache"), vCache = a.tensor(2, "vCache");
  Tensor qkv = a.tensor(3, "qkv"), slopes = a.tensor(4, "slopes");
  const int64_t H = a.integer(5, "nHeads"), past = a.integer(6, "past");
  const std::string& op = a.op();
  ExpectFloat(op, "qkv", qkv);
  PT_CHECK_ARG(H >= 1 && H <= (1 << 20), op, ": nHeads must be a positive integer, got ", H);
  PT_CHECK_ARG(qkv.ndim() == 3 || qkv.ndim() == 5, op, ": 'qkv' must be (B, Tq, 3*C) or (B, Tq, 3, H, D), got ",
               qkv.Describe());
  const int64_t B = qkv.dim(0), Tq = qkv.dim(1), threeC = qkv.numel / std::max<int64_t>(1, B * Tq);
  if (qkv.ndim() == 5)
    PT_CHECK_ARG(qkv.dim(2) == 3 && qkv.dim(3) == H, op, ": 'qkv' must be (B, Tq, 3, H=", H, ", D), got ",
                 qkv.Describe());
  PT_CHECK_ARG(threeC % (3 * H) == 0, op, ": 'qkv' last dims (", threeC, ") must be 3 * nHeads (", H,
               ") * head dim, got ", qkv.Describe());
  const int64_t D = threeC / (3 * H);
  PT_CHECK_ARG(D >= 1 && D <= kMaxHeadDim, op, ": head dim C / nHeads must be in 1..", kMaxHeadDim, ", got ", D,
               " (qkv ", qkv.Describe(), ", nHeads ", H, ")");
  PT_CHECK_ARG(kCache.ndim() == 4, op, ": 'kCache' must be (B, H, maxLen, D), got ", kCache.Describe());
  const int64_t L = kCache.dim(2);
  ExpectSameDType(op, "out", out, "qkv", qkv);
  ExpectSameDType(op, "kCache", kCache, "qkv", qkv);
  ExpectSameDType(op, "vCache", vCache, "qkv", qkv);
  ExpectDType(op, "slopes", slopes, DType::F32);
  ExpectShape(op, "out", out, {B, Tq, H * D});
  ExpectShape(op, "kCache", kCache, {B, H, L, D});
  ExpectShape(op, "vCache", vCache, {B, H, L, D});
  ExpectShape(op, "slopes", slopes, {H});
  PT_CHECK_ARG(past >= 0 && past + Tq <= L, op, ": past (", past, ") + new positions (", Tq,
               ") must be within the cache's maxLen (", L, "), past >= 0");
  PT_CHECK_ARG(B <= INT32_MAX && L <= INT32_MAX && B * H <= INT32_MAX, op, ": 'kCache' ", kCache.Describe(),
               " is too large");
  const std::pair<const char*, const Tensor*> written[] = {{"out", &out}, {"kCache", &kCache}, {"vCache", &vCache}};
  const std::pair<const char*, const Tensor*> all[] = {
      {"out", &out}, {"kCache", &kCache}, {"vCache", &vCache}, {"qkv", &qkv}, {"slopes", &slopes}};
  for (const auto& [wn, w] : written)
    for (const auto& [n, t] : all)
      if (w != t) ExpectNoOverlap(op, wn, *w, n, *t);
  AttentionCachedArgs at;
  at.out = out.raw(), at.kCache = kCache.raw(), at.vCache = vCache.raw(), at.qkv = qkv.raw();
  at.slopes = slopes.ptr<float>(), at.dtype = qkv.dtype;
  at.b = int(B), at.tq = int(Tq), at.h = int(H), at.d = int(D), at.maxLen = int(L), at.past = int(past);
  return LaunchOn(a, at, &cpu::AttentionCachedForward, PT_CUDA_FN(AttentionCachedForward));
}

}  // namespace

void cpu::AttentionCachedForward(const AttentionCachedArgs& a) {
  if (a.b == 0 || a.tq == 0) return;
  if (a.dtype == DType::F32) CachedForward<float>(a);
  else CachedForward<bf16>(a);
}

void RegisterAttentionCached(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "attentionCachedForward", BuildAttentionCachedForward);
}

}  // namespace pt
