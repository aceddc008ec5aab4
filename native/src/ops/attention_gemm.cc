// attention_gemm.cc: the "gemm" attention engine: causal multi-head attention with ALiBi whose four score and
// value products (forward) and five products (backward) are pt::Gemm calls, so they run on whatever matrix
// unit oneDNN finds at run time (AMX tiles, AVX512-BF16 dot products, AVX2/FMA) or on the portable GEMM. The
// math, the saved statistic (lse) and the accumulation rule are attention.h's; what stays ours is the fused
// part between the products: the ALiBi bias, the causal mask, the online softmax and the gradient of the
// softmax, one pass over each block of scores.
//
// How (per batch element b and group of G heads, with heads of a group batched into one product):
//   forward: queries in blocks of kQBlock; each block meets the keys up to its own last query (blocks above
//     the diagonal are never computed), kKeyChunk keys at a time: S = scale * Q K^T (f32), then one pass adds
//     the bias, masks, updates the running max m and sum l (online softmax across chunks), rescales the
//     output accumulator and writes P; then O += P V (f32 accumulator). out = O / l, lse = m + log l.
//   backward: key chunks outer; for each query block at or below the chunk: S = scale * Q K^T and
//     dP = dout V^T, then one pass writes P = exp(S + bias - lse) and dS = P * (dP - Di), Di = dout.out;
//     then dV += P^T dout, dK += scale * dS^T Q, dQ += scale * dS K, all f32 accumulators per task.
// With bf16 tensors the products take bf16 operands and return f32; P and dS are rounded to bf16 for their
// products, as the tiles engine and GPU flash attention do. Statistics and accumulators are f32 throughout.
// Parallel over tasks (forward: batch x query block x head group; backward: batch x head group), each task on
// one thread with its products run on that thread (pt::Gemm inside a parallel region); G is chosen so that
// there are at least two tasks per thread where the batch allows it, and a block of scores stays within
// kGroupScores. Scratch is cached per calling thread like the tiles engine's.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>

#include "../cpu.h"
#include "../gemm.h"
#include "../scratch.h"
#include "../vecmath.h"
#include "attention.h"
#include "attention_avx512.h"
#ifdef _OPENMP
#include <omp.h>
#endif

namespace pt {
namespace {

constexpr int kQBlock = 64;               // queries per block
constexpr int kKeyChunk = 512;            // keys per product; longer rows take several (online softmax)
constexpr int64_t kGroupScores = 1 << 17;  // f32 scores of one block of a head group (512 KiB)

template <class T>
constexpr DType DTypeOf() {
  return std::is_same_v<T, float> ? DType::F32 : DType::BF16;
}

inline float ToF32(float x) { return x; }
inline float ToF32(bf16 x) { return Bf16ToF32(x); }
template <class T>
inline T FromF32(float x) {
  if constexpr (std::is_same_v<T, float>) return x;
  else return F32ToBf16(x);
}

thread_local ScratchBuffer tScratch;

// One region per thread of the calling thread's scratch, laid out by `carve` (a Carver -> that thread's
// buffers; run unbound first to size a region).
struct PerThread {
  char* base;
  size_t per;
  // The calling thread's buffers, from inside the parallel region; its own library calls run single-threaded.
  template <class Carve>
  auto Mine(Carve carve) const {
    SerialInside();
    Carver cv;
    cv.Bind(base + per * ThreadIndex());
    return carve(cv);
  }
};
template <class Carve>
PerThread ReservePerThread(Carve carve, int nThreads) {
  Carver sizing;
  carve(sizing);
  return {tScratch.Reserve(sizing.used() * nThreads, "attention"), sizing.used()};
}

// Heads per group: as many as keep a block of scores within kGroupScores, but few enough that the tasks
// (`perGroup` of them per group) keep every thread busy twice over where the batch allows.
int GroupSize(int B, int H, int64_t perGroup, int64_t blockScores) {
  const int64_t byMemory = std::max<int64_t>(1, kGroupScores / std::max<int64_t>(1, blockScores));
  const int64_t wantTasks = 2 * int64_t(std::max(1, Threads()));
  const int64_t byTasks = std::max<int64_t>(1, int64_t(B) * H * perGroup / wantTasks);
  return int(std::min<int64_t>({H, byMemory, byTasks}));
}

// Products of one head group: batch over its heads, operands `stride`d head by head.
struct Product {
  GemmArgs g;
  Product(DType ab, int heads) {
    g.abType = ab;
    g.cType = DType::F32;
    g.batch = heads;
  }
  Product& A(const void* p, int64_t ld, int64_t stride, bool trans = false) {
    g.A = p, g.lda = ld, g.strideA = stride, g.transA = trans;
    return *this;
  }
  Product& B(const void* p, int64_t ld, int64_t stride, bool trans = false) {
    g.B = p, g.ldb = ld, g.strideB = stride, g.transB = trans;
    return *this;
  }
  Product& C(float* p, int64_t ld, int64_t stride) {
    g.C = p, g.ldc = ld, g.strideC = stride;
    return *this;
  }
  void Run(int64_t M, int64_t N, int64_t K, float alpha, float beta) {
    g.M = M, g.N = N, g.K = K, g.alpha = alpha, g.beta = beta;
    Gemm(g);
  }
};

// ---- The fused passes between the products (one row of one head: n keys, of which the first `live` are
//      at or before the query; bias(j) = slope * (j + delta), delta = first key - query) ----

// Online softmax step: adds the bias to raw scores s, masks, updates m and l, writes p (zero past `live`)
// and returns the factor that rescales the earlier output of this row.
template <class T>
PT_INLINE float SoftmaxRowBody(T* p, float* s, int n, int live, float slope, float delta, float* m, float* l) {
  float mx = *m;
#pragma omp simd reduction(max : mx)
  for (int j = 0; j < live; j++) {
    const float x = s[j] + slope * (float(j) + delta);
    s[j] = x;
    mx = x > mx ? x : mx;  // (std::max keeps this loop scalar)
  }
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < live; j++) {
    const float e = FastExp(s[j] - mx);
    p[j] = FromF32<T>(e);
    sum += e;
  }
  for (int j = live; j < n; j++) p[j] = FromF32<T>(0.0f);
  const float alpha = *m == -std::numeric_limits<float>::infinity() ? 0.0f : FastExp(*m - mx);
  *l = *l * alpha + sum;
  *m = mx;
  return alpha;
}

// Backward step: from raw scores s and dp = dout.v writes P = exp(s + bias - lse) and dS = P * (dp - di).
template <class T>
PT_INLINE void GradRowBody(T* p, T* ds, const float* s, const float* dp, int n, int live, float slope, float delta,
                           float lse, float di) {
#pragma omp simd
  for (int j = 0; j < live; j++) {
    const float e = FastExp(s[j] + slope * (float(j) + delta) - lse);
    p[j] = FromF32<T>(e);
    ds[j] = FromF32<T>(e * (dp[j] - di));
  }
  for (int j = live; j < n; j++) p[j] = ds[j] = FromF32<T>(0.0f);
}

PT_CLONES void ScaleRow(float* o, int n, float a) {
#pragma omp simd
  for (int j = 0; j < n; j++) o[j] *= a;
}

template <class T>
PT_INLINE void StoreRowBody(T* dst, const float* src, int n, float a) {
#pragma omp simd
  for (int j = 0; j < n; j++) dst[j] = FromF32<T>(src[j] * a);
}

template <class T>
PT_INLINE float DotRowBody(const T* a, const T* b, int n) {
  float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
  for (int j = 0; j < n; j++) sum += ToF32(a[j]) * ToF32(b[j]);
  return sum;
}

// The same two passes on AVX-512, 16 keys at a time, with the tiles engine's exp and bf16 rounding of the
// P and dS operands (attention_avx512.h). Picked when ActiveIsa() allows AVX-512.
// (GCC 12's AVX-512 headers trip -W(maybe-)uninitialized: GCC bug 105593, as in attention_avx512.h.)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
namespace simd {
using attention::Exp512;
using attention::LaneIndex;
using attention::RoundFastBf16Hi;
using avx512::TailMask;

PT_AVX512 PT_INLINE void StoreOperand(float* p, __mmask16 k, __m512 x) { _mm512_mask_storeu_ps(p, k, x); }
PT_AVX512 PT_INLINE void StoreOperand(bf16* p, __mmask16 k, __m512 x) {
  _mm256_mask_storeu_epi16(p, k, _mm512_cvtepi32_epi16(_mm512_srli_epi32(RoundFastBf16Hi(x), 16)));
}
template <class T>
PT_AVX512 PT_INLINE void ZeroTail(T* p, int from, int n) {
  for (int j = from; j < n; j += 16) StoreOperand(p + j, TailMask(n - j), _mm512_setzero_ps());
}
// slope * (j + lane + delta) for the 16 keys from j.
PT_AVX512 PT_INLINE __m512 Bias(__m512 slope, int j, float delta) {
  return _mm512_mul_ps(slope, _mm512_add_ps(LaneIndex(), _mm512_set1_ps(float(j) + delta)));
}

template <class T>
PT_AVX512 float SoftmaxRow(T* p, float* s, int n, int live, float slope, float delta, float* m, float* l) {
  const __m512 vs = _mm512_set1_ps(slope);
  __m512 vmx = _mm512_set1_ps(*m);
  for (int j = 0; j < live; j += 16) {
    const __mmask16 k = TailMask(live - j);
    const __m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(k, s + j), Bias(vs, j, delta));
    _mm512_mask_storeu_ps(s + j, k, x);
    vmx = _mm512_mask_max_ps(vmx, k, vmx, x);
  }
  const float mx = _mm512_reduce_max_ps(vmx);
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 sum = _mm512_setzero_ps();
  for (int j = 0; j < live; j += 16) {
    const __mmask16 k = TailMask(live - j);
    const __m512 e = _mm512_maskz_mov_ps(k, Exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, s + j), vm)));
    sum = _mm512_add_ps(sum, e);
    StoreOperand(p + j, k, e);
  }
  ZeroTail(p, live, n);
  const float alpha = *m == -std::numeric_limits<float>::infinity() ? 0.0f : std::exp(*m - mx);
  *l = *l * alpha + _mm512_reduce_add_ps(sum);
  *m = mx;
  return alpha;
}

template <class T>
PT_AVX512 void GradRow(T* p, T* ds, const float* s, const float* dp, int n, int live, float slope, float delta,
                       float lse, float di) {
  const __m512 vs = _mm512_set1_ps(slope), vl = _mm512_set1_ps(lse), vd = _mm512_set1_ps(di);
  for (int j = 0; j < live; j += 16) {
    const __mmask16 k = TailMask(live - j);
    const __m512 x = _mm512_add_ps(_mm512_maskz_loadu_ps(k, s + j), Bias(vs, j, delta));
    const __m512 e = Exp512(_mm512_sub_ps(x, vl));
    StoreOperand(p + j, k, e);
    StoreOperand(ds + j, k, _mm512_mul_ps(e, _mm512_sub_ps(_mm512_maskz_loadu_ps(k, dp + j), vd)));
  }
  ZeroTail(p, live, n);
  ZeroTail(ds, live, n);
}

template <class T>
PT_AVX512 void StoreRow(T* dst, const float* src, int n, float a) {
  const __m512 va = _mm512_set1_ps(a);
  for (int j = 0; j < n; j += 16) {
    const __mmask16 k = TailMask(n - j);
    avx512::Store(dst + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, src + j), va));
  }
}

template <class T>
PT_AVX512 float DotRow(const T* a, const T* b, int n) {
  __m512 sum = _mm512_setzero_ps();
  for (int j = 0; j < n; j += 16) {
    const __mmask16 k = TailMask(n - j);
    sum = _mm512_fmadd_ps(avx512::Load(a + j, k), avx512::Load(b + j, k), sum);
  }
  return _mm512_reduce_add_ps(sum);
}

PT_AVX512 void ScaleRow(float* o, int n, float a) {
  const __m512 va = _mm512_set1_ps(a);
  for (int j = 0; j < n; j += 16) {
    const __mmask16 k = TailMask(n - j);
    _mm512_mask_storeu_ps(o + j, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, o + j), va));
  }
}
}  // namespace simd
#pragma GCC diagnostic pop

// The multiversioned instances (PT_CLONES is not applied to templates).
#define PT_ATTENTION_ROWS(T)                                                                                  \
  PT_CLONES float SoftmaxRow(T* p, float* s, int n, int live, float slope, float delta, float* m, float* l) { \
    return SoftmaxRowBody(p, s, n, live, slope, delta, m, l);                                                 \
  }                                                                                                           \
  PT_CLONES void GradRow(T* p, T* ds, const float* s, const float* dp, int n, int live, float slope,          \
                         float delta, float lse, float di) {                                                  \
    GradRowBody(p, ds, s, dp, n, live, slope, delta, lse, di);                                                \
  }                                                                                                           \
  PT_CLONES void StoreRow(T* dst, const float* src, int n, float a) { StoreRowBody(dst, src, n, a); }         \
  PT_CLONES float DotRow(const T* a, const T* b, int n) { return DotRowBody(a, b, n); }
PT_ATTENTION_ROWS(float)
PT_ATTENTION_ROWS(bf16)
#undef PT_ATTENTION_ROWS

// The row kernels of one element type, AVX-512 or portable as ActiveIsa() allows.
template <class T>
struct Rows {
  float (*softmax)(T*, float*, int, int, float, float, float*, float*);
  void (*grad)(T*, T*, const float*, const float*, int, int, float, float, float, float);
  void (*store)(T*, const float*, int, float);
  float (*dot)(const T*, const T*, int);
  void (*scale)(float*, int, float);
};

template <class T>
Rows<T> PickRows() {
  if (ActiveIsa() >= Isa::Avx512)
    return {simd::SoftmaxRow<T>, simd::GradRow<T>, simd::StoreRow<T>, simd::DotRow<T>, simd::ScaleRow};
  return {SoftmaxRow, GradRow, StoreRow, DotRow, ScaleRow};
}

}  // namespace

template <class T>
void AttentionForwardGemm(T* out, float* lse, const T* qkv, const float* slopes, int B, int Tn, int H, int D) {
  const int64_t C = int64_t(H) * D, rs = 3 * C;
  const int nQ = (Tn + kQBlock - 1) / kQBlock;
  const int kcMax = std::min(kKeyChunk, nQ * kQBlock);
  const int G = GroupSize(B, H, nQ, int64_t(kQBlock) * kcMax);
  const int nG = (H + G - 1) / G;
  const float scale = 1.0f / std::sqrt(float(D));
  const int nThreads = std::max(1, Threads());
  const size_t block = size_t(G) * kQBlock;  // rows of one task: (G, kQBlock)
  // Per thread: scores s (f32) and probabilities p of a task's block, its output accumulator o, and m, l, alpha.
  struct Buffers {
    float* s;
    T* p;
    float *o, *m;
  };
  auto carve = [&](Carver& cv) {
    Buffers b;
    b.s = cv.Take<float>(block * kcMax);
    b.p = cv.Take<T>(block * kcMax);
    b.o = cv.Take<float>(block * D);
    b.m = cv.Take<float>(3 * block);
    return b;
  };
  const PerThread scratch = ReservePerThread(carve, nThreads);
  const int64_t tasks = int64_t(B) * nQ * nG;
  const Rows<T> rows = PickRows<T>();

#pragma omp parallel num_threads(nThreads)
  {
    const Buffers mine = scratch.Mine(carve);
    float *s = mine.s, *o = mine.o, *m = mine.m, *l = m + block;
    T* p = mine.p;
    float* alpha = l + block;
    // Largest query blocks (most keys) first.
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) {
      const int qi = nQ - 1 - int(task / (int64_t(B) * nG));
      const int b = int(task % (int64_t(B) * nG) / nG), h0 = int(task % nG) * G, gn = std::min(G, H - h0);
      const int q0 = qi * kQBlock, nq = std::min(kQBlock, Tn - q0), end = q0 + nq;
      const T* qkvB = qkv + int64_t(b) * Tn * rs;
      std::fill(m, m + block, -std::numeric_limits<float>::infinity());
      std::fill(l, l + block, 0.0f);
      for (int c0 = 0; c0 < end; c0 += kKeyChunk) {
        const int kc = std::min(kKeyChunk, end - c0);
        Product(DTypeOf<T>(), gn)
            .A(qkvB + int64_t(q0) * rs + h0 * D, rs, D)
            .B(qkvB + int64_t(c0) * rs + C + h0 * D, rs, D, true)
            .C(s, kc, int64_t(nq) * kc)
            .Run(nq, kc, D, scale, 0.0f);
        for (int g = 0; g < gn; g++)
          for (int i = 0; i < nq; i++) {
            const size_t r = size_t(g) * nq + i;
            const int live = std::clamp(q0 + i - c0 + 1, 0, kc);
            const float slope = slopes[h0 + g], delta = float(c0 - q0 - i);
            alpha[r] = rows.softmax(p + r * kc, s + r * kc, kc, live, slope, delta, m + r, l + r);
            if (c0 > 0) rows.scale(o + r * D, D, alpha[r]);
          }
        Product(DTypeOf<T>(), gn)
            .A(p, kc, int64_t(nq) * kc)
            .B(qkvB + int64_t(c0) * rs + 2 * C + h0 * D, rs, D)
            .C(o, D, int64_t(nq) * D)
            .Run(nq, D, kc, 1.0f, c0 > 0 ? 1.0f : 0.0f);
      }
      for (int g = 0; g < gn; g++)
        for (int i = 0; i < nq; i++) {
          const size_t r = size_t(g) * nq + i;
          lse[(int64_t(b) * H + h0 + g) * Tn + q0 + i] = m[r] + std::log(l[r]);
          rows.store(out + (int64_t(b) * Tn + q0 + i) * C + int64_t(h0 + g) * D, o + r * D, D, 1.0f / l[r]);
        }
    }
  }
}

template <class T>
void AttentionBackwardGemm(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse,
                           const float* slopes, int B, int Tn, int H, int D) {
  const int64_t C = int64_t(H) * D, rs = 3 * C;
  const int nQ = (Tn + kQBlock - 1) / kQBlock;
  const int kcMax = std::min(kKeyChunk, nQ * kQBlock);
  const int G = GroupSize(B, H, 1, int64_t(kQBlock) * kcMax);
  const int nG = (H + G - 1) / G;
  const float scale = 1.0f / std::sqrt(float(D));
  const int nThreads = std::max(1, Threads());
  const size_t scores = size_t(G) * kQBlock * kcMax;
  // Per thread: s and dp (f32 scores of a block), P and dS, the dK and dV accumulators of a key chunk, dQ of
  // the sequence, and Di.
  struct Buffers {
    float* s;
    T* p;
    float *dk, *dq, *di;
  };
  auto carve = [&](Carver& cv) {
    Buffers b;
    b.s = cv.Take<float>(2 * scores);
    b.p = cv.Take<T>(2 * scores);
    b.dk = cv.Take<float>(2 * size_t(G) * kcMax * D);
    b.dq = cv.Take<float>(size_t(G) * Tn * D);
    b.di = cv.Take<float>(size_t(G) * Tn);
    return b;
  };
  const PerThread scratch = ReservePerThread(carve, nThreads);
  const int64_t tasks = int64_t(B) * nG;
  const Rows<T> rows = PickRows<T>();

#pragma omp parallel num_threads(nThreads)
  {
    const Buffers mine = scratch.Mine(carve);
    float *s = mine.s, *dk = mine.dk, *dq = mine.dq, *di = mine.di;
    T* p = mine.p;
    float* dp = s + scores;
    T* ds = p + scores;
    float* dv = dk + size_t(G) * kcMax * D;
#pragma omp for schedule(dynamic, 1)
    for (int64_t task = 0; task < tasks; task++) {
      const int b = int(task / nG), h0 = int(task % nG) * G, gn = std::min(G, H - h0);
      const T* qkvB = qkv + int64_t(b) * Tn * rs;
      const T* doB = dout + int64_t(b) * Tn * C;
      T* dqkvB = dqkv + int64_t(b) * Tn * rs;
      for (int g = 0; g < gn; g++)
        for (int t = 0; t < Tn; t++) {
          const int64_t at = int64_t(t) * C + int64_t(h0 + g) * D;
          di[size_t(g) * Tn + t] = rows.dot(doB + at, out + int64_t(b) * Tn * C + at, D);
        }
      std::fill(dq, dq + size_t(gn) * Tn * D, 0.0f);
      for (int c0 = 0; c0 < Tn; c0 += kKeyChunk) {
        const int kc = std::min(kKeyChunk, Tn - c0);
        std::fill(dk, dk + 2 * size_t(G) * kcMax * D, 0.0f);  // dk and dv
        for (int qi = c0 / kQBlock; qi < nQ; qi++) {
          const int q0 = qi * kQBlock, nq = std::min(kQBlock, Tn - q0);
          const int kn = std::min(kc, q0 + nq - c0);  // keys of the chunk at or before the block's last query
          const int64_t sb = int64_t(nq) * kn;       // one head's block of scores
          Product(DTypeOf<T>(), gn)
              .A(qkvB + int64_t(q0) * rs + h0 * D, rs, D)
              .B(qkvB + int64_t(c0) * rs + C + h0 * D, rs, D, true)
              .C(s, kn, sb)
              .Run(nq, kn, D, scale, 0.0f);
          Product(DTypeOf<T>(), gn)
              .A(doB + int64_t(q0) * C + h0 * D, C, D)
              .B(qkvB + int64_t(c0) * rs + 2 * C + h0 * D, rs, D, true)
              .C(dp, kn, sb)
              .Run(nq, kn, D, 1.0f, 0.0f);
          for (int g = 0; g < gn; g++)
            for (int i = 0; i < nq; i++) {
              const size_t r = (size_t(g) * nq + i) * kn;
              const int live = std::clamp(q0 + i - c0 + 1, 0, kn);
              const float slope = slopes[h0 + g], delta = float(c0 - q0 - i);
              const float rowLse = lse[(int64_t(b) * H + h0 + g) * Tn + q0 + i], rowDi = di[size_t(g) * Tn + q0 + i];
              rows.grad(p + r, ds + r, s + r, dp + r, kn, live, slope, delta, rowLse, rowDi);
            }
          Product(DTypeOf<T>(), gn)  // dV (kn, D) += P^T dout
              .A(p, kn, sb, true)
              .B(doB + int64_t(q0) * C + h0 * D, C, D)
              .C(dv, D, int64_t(kcMax) * D)
              .Run(kn, D, nq, 1.0f, 1.0f);
          Product(DTypeOf<T>(), gn)  // dK (kn, D) += scale * dS^T Q
              .A(ds, kn, sb, true)
              .B(qkvB + int64_t(q0) * rs + h0 * D, rs, D)
              .C(dk, D, int64_t(kcMax) * D)
              .Run(kn, D, nq, scale, 1.0f);
          Product(DTypeOf<T>(), gn)  // dQ (nq, D) += scale * dS K
              .A(ds, kn, sb)
              .B(qkvB + int64_t(c0) * rs + C + h0 * D, rs, D)
              .C(dq + int64_t(q0) * D, D, int64_t(Tn) * D)
              .Run(nq, D, kn, scale, 1.0f);
        }
        for (int g = 0; g < gn; g++)
          for (int j = 0; j < kc; j++) {
            T* row = dqkvB + int64_t(c0 + j) * rs + int64_t(h0 + g) * D;
            rows.store(row + C, dk + (size_t(g) * kcMax + j) * D, D, 1.0f);
            rows.store(row + 2 * C, dv + (size_t(g) * kcMax + j) * D, D, 1.0f);
          }
      }
      for (int g = 0; g < gn; g++)
        for (int t = 0; t < Tn; t++)
          rows.store(dqkvB + int64_t(t) * rs + int64_t(h0 + g) * D, dq + (size_t(g) * Tn + t) * D, D, 1.0f);
    }
  }
}

template void AttentionForwardGemm<float>(float*, float*, const float*, const float*, int, int, int, int);
template void AttentionForwardGemm<bf16>(bf16*, float*, const bf16*, const float*, int, int, int, int);
template void AttentionBackwardGemm<float>(float*, const float*, const float*, const float*, const float*,
                                           const float*, int, int, int, int);
template void AttentionBackwardGemm<bf16>(bf16*, const bf16*, const bf16*, const bf16*, const float*,
                                          const float*, int, int, int, int);

}  // namespace pt
