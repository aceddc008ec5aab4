// layernorm.cc: LayerNorm without bias (MPT's no_bias), y = (x - mean) * rstd * weight over the last dim,
// forward and backward. rstd = 1 / sqrt(var + eps) with the biased (population) variance.
// Accumulation rule: parameter gradients accumulate (dweight +=, always f32); activation gradients are
// overwritten (dinp =, in the activation dtype).
// Tensors are f32, or bf16 under autocast (inp, out, weight, dout, dinp share the activation dtype); the
// statistics are always computed in f32/f64 and saved as f32. Mean and variance use two passes with f64
// sums, so rows with a large common offset (x ~ 1000 + N(0, 1)) keep full precision. The f32 mean loses
// that offset's low bits; both passes subtract it first and then its f64 remainder (see RowShift).
// dweight is reduced deterministically: per-row-block partial sums (block size depends only on N), added
// in block order, so the result is the same for every thread count.
// bf16 rows take a hand-written AVX-512 path when ActiveIsa() allows it (the multiversioned row functions
// widen bf16 one element at a time and ran bf16 slower per element than f32): the same passes over 16 lanes
// widened in registers, the mean summed in f64 and the other row sums in f32 (accuracy below, before
// ForwardRowsBf16Avx512). f32 rows, and bf16 rows below AVX-512, keep the multiversioned functions.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../cpu.h"
#include "../op.h"
#include "../vecmath.h"
#include "../vecmath_avx2.h"
#include "../vecmath_avx512.h"
#include "ops.h"

namespace pt {

namespace {

// x - mean computed as (x - meanF32) - remainder: the first difference is exact in f32 for x near the mean
// (Sterbenz), the remainder restores the bits the f32 mean lost.
struct RowShift {
  float mean;       // the f32 mean (what is saved)
  float remainder;  // exact mean - mean
};

// One row: y (C), x (C), weight (C); writes the row's saved statistics. The row functions are
// multiversioned (AVX-512, AVX2, baseline; see vecmath.h) so their loops vectorise for the running CPU.
template <typename T>
PT_CLONES void ForwardRow(T* y, float* mean, float* rstd, const T* x, const T* weight, float eps, int64_t c) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < c; j++) sum += double(Ld(x + j));
  const double m = sum / double(c);
  double sq = 0.0;
#pragma omp simd reduction(+ : sq)
  for (int64_t j = 0; j < c; j++) {
    const double d = double(Ld(x + j)) - m;
    sq += d * d;
  }
  const float r = float(1.0 / std::sqrt(sq / double(c) + double(eps)));
  const RowShift s{float(m), float(m - double(float(m)))};
  // y may be x itself: each x[j] is read before y[j] is written
#pragma omp simd
  for (int64_t j = 0; j < c; j++) St(y + j, ((Ld(x + j) - s.mean) - s.remainder) * r * Ld(weight + j));
  *mean = s.mean;
  *rstd = r;
}

// One row: dx (C) =, part (C) += dout * norm, g = dout (C), x (C), weight (C), with the row's saved mu, r.
template <typename T>
PT_CLONES void BackwardRow(T* dx, float* part, const T* g, const T* x, const T* weight, float mu, float r,
                          int64_t c) {
  // The saved mean is f32; the f64 mean of (x - mu) recovers what it rounded away (see RowShift).
  double sumD = 0.0, sumDn = 0.0, sumDnD = 0.0;
#pragma omp simd reduction(+ : sumD, sumDn, sumDnD)
  for (int64_t j = 0; j < c; j++) {
    const double d = double(Ld(x + j) - mu);
    const double dn = double(Ld(g + j)) * double(Ld(weight + j));
    sumD += d;
    sumDn += dn;
    sumDnD += dn * d;
  }
  const double shift = sumD / double(c);
  const float meanDnorm = float(sumDn / double(c));
  const float meanDnormNorm = float(double(r) * (sumDnD - shift * sumDn) / double(c));
  const float remainder = float(shift);
  // dx may be g or x itself: both are read at j before dx[j] is written
#pragma omp simd
  for (int64_t j = 0; j < c; j++) {
    const float norm = ((Ld(x + j) - mu) - remainder) * r;
    const float gj = Ld(g + j);
    const float dnorm = gj * Ld(weight + j);
    part[j] += gj * norm;
    St(dx + j, (dnorm - meanDnorm - norm * meanDnormNorm) * r);
  }
}

#ifdef PT_HAVE_EW_AVX512
// bf16 rows on AVX-512: 16 lanes widened in registers, the weight widened to f32 once per call (w below). Only
// the mean keeps an f64 sum (of f32 sums of 4 bf16 values, exact unless their exponents span more than 14
// binades), so it is the multiversioned function's to within that; the other row sums run in f32 over four
// vectors of accumulators, where f64 conversions made these rows slower per element than the f32 ones:
//   - the variance sums squared deviations from that mean, whose f32 rounding adds ~C/64 roundings per lane;
//   - backward: g * w is exact in f32 (8-bit significands); sum(x - mean), sum(g * w) and sum(g * w * (x - mean))
//     are f32 sums of f32 terms.
// Relative errors are ~1e-7 at C = 4096 (rstd, dweight) against the f64 reference, far inside bf16's 2^-9
// rounding of the outputs, and the saved f32 statistics meet the f32 bounds of the float64 tests. kHw: round
// with vcvtneps2bf16 (AVX512-BF16), the same bits on results computed in the kernel floating-point mode
// (vecmath_avx512.h).

// Lanes of x (16 from p, k of them when masked) minus a constant, masked-off lanes 0.
PT_EW_AVX512 PT_EW_INLINE __m512 Centred(const bf16* p, __m512 k0) { return _mm512_sub_ps(avx512::Load(p), k0); }
PT_EW_AVX512 PT_EW_INLINE __m512 Centred(const bf16* p, __mmask16 k, __m512 k0) {
  return _mm512_maskz_sub_ps(k, avx512::Load(p, k), k0);
}

// Row sums run over 64 elements per step into four vectors of accumulators per sum (the add and FMA latencies,
// not the loads, bound a pass with fewer), then the masked vectors of the tail.
struct Acc4 {
  __m512 a[4];
};
PT_EW_AVX512 PT_EW_INLINE Acc4 Zero4() {
  const __m512 z = _mm512_setzero_ps();
  return {{z, z, z, z}};
}
PT_EW_AVX512 PT_EW_INLINE float Sum(const Acc4& s) {
  return avx512::ReduceAdd(_mm512_add_ps(_mm512_add_ps(s.a[0], s.a[1]), _mm512_add_ps(s.a[2], s.a[3])));
}

// The forward runs kRows rows at once (4: measured ~8% faster than 2, ~25% faster than 1): a row's three
// passes depend on each other through its sums, so interleaving independent rows overlaps one row's reductions
// and scalar maths with another's loads.

// kRows rows i (C each, stride C): y, x; w (C, f32); writes each row's saved statistics. A row of y may be the
// same row of x (each vector of x is read before y's is written).
template <bool kHw, int kRows>
PT_EW_AVX512 void ForwardRowsBf16Avx512(bf16* y, float* mean, float* rstd, const bf16* x, const float* w, float eps,
                                        int64_t c) {
  __m512d s0[kRows], s1[kRows];
  for (int i = 0; i < kRows; i++) s0[i] = s1[i] = _mm512_setzero_pd();
  int64_t j = 0;
  for (; j + 64 <= c; j += 64) {
    for (int i = 0; i < kRows; i++) {
      const bf16* p = x + i * c + j;
      const __m512 t = _mm512_add_ps(_mm512_add_ps(avx512::Load(p), avx512::Load(p + 16)),
                                     _mm512_add_ps(avx512::Load(p + 32), avx512::Load(p + 48)));
      s0[i] = _mm512_add_pd(s0[i], avx512::WidenLo(t));
      s1[i] = _mm512_add_pd(s1[i], avx512::WidenHi(t));
    }
  }
  for (; j < c; j += 16) {
    const __mmask16 k = avx512::TailMask(c - j);
    for (int i = 0; i < kRows; i++) {
      const __m512 v = avx512::Load(x + i * c + j, k);  // masked lanes read 0
      s0[i] = _mm512_add_pd(s0[i], avx512::WidenLo(v));
      s1[i] = _mm512_add_pd(s1[i], avx512::WidenHi(v));
    }
  }
  __m512 mu[kRows], rem[kRows], rv[kRows];
  Acc4 sq[kRows];
  for (int i = 0; i < kRows; i++) {
    const double m = avx512::ReduceAdd(_mm512_add_pd(s0[i], s1[i])) / double(c);
    const RowShift shift{float(m), float(m - double(float(m)))};
    mean[i] = shift.mean;
    mu[i] = _mm512_set1_ps(shift.mean);
    rem[i] = _mm512_set1_ps(shift.remainder);
    sq[i] = Zero4();
  }
  for (j = 0; j + 64 <= c; j += 64) {
    for (int i = 0; i < kRows; i++) {
      for (int u = 0; u < 4; u++) {
        const __m512 d = _mm512_sub_ps(Centred(x + i * c + j + 16 * u, mu[i]), rem[i]);
        sq[i].a[u] = _mm512_fmadd_ps(d, d, sq[i].a[u]);
      }
    }
  }
  for (; j < c; j += 16) {
    const __mmask16 k = avx512::TailMask(c - j);
    for (int i = 0; i < kRows; i++) {
      const __m512 d = _mm512_maskz_sub_ps(k, Centred(x + i * c + j, k, mu[i]), rem[i]);
      sq[i].a[0] = _mm512_fmadd_ps(d, d, sq[i].a[0]);
    }
  }
  for (int i = 0; i < kRows; i++) {
    const float r = float(1.0 / std::sqrt(double(Sum(sq[i])) / double(c) + double(eps)));
    rstd[i] = r;
    rv[i] = _mm512_set1_ps(r);
  }
  for (j = 0; j + 16 <= c; j += 16) {
    const __m512 wv = avx512::Load(w + j);
    for (int i = 0; i < kRows; i++) {
      const __m512 d = _mm512_sub_ps(Centred(x + i * c + j, mu[i]), rem[i]);
      avx512::StoreComputed<kHw>(y + i * c + j, _mm512_mul_ps(_mm512_mul_ps(d, rv[i]), wv));
    }
  }
  if (j < c) {
    const __mmask16 k = avx512::TailMask(c - j);
    const __m512 wv = avx512::Load(w + j, k);
    for (int i = 0; i < kRows; i++) {
      const __m512 d = _mm512_sub_ps(Centred(x + i * c + j, k, mu[i]), rem[i]);
      avx512::StoreComputed<kHw>(y + i * c + j, k, _mm512_mul_ps(_mm512_mul_ps(d, rv[i]), wv));
    }
  }
}

// One row: dx (C) =, part (C) += dout * norm, g = dout (C), x (C), w (C, f32), with the row's saved mu, r. dx
// may be g or x itself (both vectors are read before dx's is written). One row at a time: interleaving two rows
// (as the forward does) measured no faster here, with their 24 accumulators or with 12.
template <bool kHw>
PT_EW_AVX512 void BackwardRowBf16Avx512(bf16* dx, float* part, const bf16* g, const bf16* x, const float* w, float mu,
                                        float r, int64_t c) {
  const __m512 muv = _mm512_set1_ps(mu);
  Acc4 sD = Zero4(), sN = Zero4(), sND = Zero4();
  int64_t j = 0;
  for (; j + 64 <= c; j += 64) {
    for (int u = 0; u < 4; u++) {
      const int64_t o = j + 16 * u;
      const __m512 d = Centred(x + o, muv);
      const __m512 dn = _mm512_mul_ps(avx512::Load(g + o), avx512::Load(w + o));  // exact
      sD.a[u] = _mm512_add_ps(sD.a[u], d);
      sN.a[u] = _mm512_add_ps(sN.a[u], dn);
      sND.a[u] = _mm512_fmadd_ps(dn, d, sND.a[u]);
    }
  }
  for (; j < c; j += 16) {
    const __mmask16 k = avx512::TailMask(c - j);
    const __m512 d = Centred(x + j, k, muv);
    const __m512 dn = _mm512_mul_ps(avx512::Load(g + j, k), avx512::Load(w + j, k));  // 0 in masked-off lanes
    sD.a[0] = _mm512_add_ps(sD.a[0], d);
    sN.a[0] = _mm512_add_ps(sN.a[0], dn);
    sND.a[0] = _mm512_fmadd_ps(dn, d, sND.a[0]);
  }
  const double sumD = Sum(sD), sumDn = Sum(sN), sumDnD = Sum(sND);
  const double shift = sumD / double(c);  // what the saved f32 mean rounded away (see RowShift)
  const __m512 meanDnorm = _mm512_set1_ps(float(sumDn / double(c)));
  const __m512 meanDnormNorm = _mm512_set1_ps(float(double(r) * (sumDnD - shift * sumDn) / double(c)));
  const __m512 rem = _mm512_set1_ps(float(shift)), rv = _mm512_set1_ps(r);
  for (j = 0; j < c; j += 16) {
    const __mmask16 k = j + 16 <= c ? __mmask16(0xffff) : avx512::TailMask(c - j);
    const __m512 norm = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(avx512::Load(x + j, k), muv), rem), rv);
    const __m512 gv = avx512::Load(g + j, k);
    const __m512 dnormCentred = _mm512_fmsub_ps(gv, avx512::Load(w + j, k), meanDnorm);
    avx512::Store(part + j, k, _mm512_fmadd_ps(gv, norm, avx512::Load(part + j, k)));
    avx512::StoreComputed<kHw>(dx + j, k, _mm512_mul_ps(_mm512_fnmadd_ps(norm, meanDnormNorm, dnormCentred), rv));
  }
}
#endif

#ifdef PT_HAVE_EW_AVX2
// The bf16 rows on AVX2 (ActiveIsa() avx2), one row at a time: the AVX-512 rows' algorithm, sums and accuracy
// over 8 lanes (vecmath_avx2.h), 32 elements per step into four vectors of accumulators per sum, the last
// partial vector through a zero-padded copy, and F32ToBf16's rounding.

PT_EW_AVX2 PT_EW_AVX2_INLINE float Sum4(const __m256* a) {
  return avx2::ReduceAdd(_mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3])));
}

// One row: y (C), x (C), w (C, f32); writes the row's saved statistics. y may be x itself.
PT_EW_AVX2 void ForwardRowBf16Avx2(bf16* y, float* mean, float* rstd, const bf16* x, const float* w, float eps,
                                   int64_t c) {
  const int64_t full = c / 8 * 8, rest = c - full;
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t j = 0;
  for (; j + 32 <= c; j += 32) {
    const __m256 t = _mm256_add_ps(_mm256_add_ps(avx2::Load(x + j), avx2::Load(x + j + 8)),
                                   _mm256_add_ps(avx2::Load(x + j + 16), avx2::Load(x + j + 24)));
    s0 = _mm256_add_pd(s0, avx2::WidenLo(t));
    s1 = _mm256_add_pd(s1, avx2::WidenHi(t));
  }
  for (; j < c; j += 8) {
    const __m256 v = j < full ? avx2::Load(x + j) : avx2::LoadPartial(x + j, rest);
    s0 = _mm256_add_pd(s0, avx2::WidenLo(v));
    s1 = _mm256_add_pd(s1, avx2::WidenHi(v));
  }
  const double m = avx2::ReduceAdd(_mm256_add_pd(s0, s1)) / double(c);
  const RowShift shift{float(m), float(m - double(float(m)))};
  const __m256 mu = _mm256_set1_ps(shift.mean), rem = _mm256_set1_ps(shift.remainder);
  __m256 sq[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
  for (j = 0; j + 32 <= c; j += 32) {
    for (int u = 0; u < 4; u++) {
      const __m256 d = _mm256_sub_ps(_mm256_sub_ps(avx2::Load(x + j + 8 * u), mu), rem);
      sq[u] = _mm256_fmadd_ps(d, d, sq[u]);
    }
  }
  for (; j < full; j += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_sub_ps(avx2::Load(x + j), mu), rem);
    sq[0] = _mm256_fmadd_ps(d, d, sq[0]);
  }
  float tail = 0.0f;  // the last partial vector's squares, summed in order
  for (j = full; j < c; j++) {
    const float d = (Bf16ToF32(x[j]) - shift.mean) - shift.remainder;
    tail += d * d;
  }
  const float sumSq = Sum4(sq) + tail;
  const float r = float(1.0 / std::sqrt(double(sumSq) / double(c) + double(eps)));
  const __m256 rv = _mm256_set1_ps(r);
  for (j = 0; j < full; j += 8) {
    const __m256 d = _mm256_sub_ps(_mm256_sub_ps(avx2::Load(x + j), mu), rem);
    avx2::Store(y + j, _mm256_mul_ps(_mm256_mul_ps(d, rv), avx2::Load(w + j)));
  }
  if (rest > 0) {
    const __m256 d = _mm256_sub_ps(_mm256_sub_ps(avx2::LoadPartial(x + full, rest), mu), rem);
    avx2::StorePartial(y + full, rest, _mm256_mul_ps(_mm256_mul_ps(d, rv), avx2::LoadPartial(w + full, rest)));
  }
  *mean = shift.mean;
  *rstd = r;
}

// One row: dx (C) =, part (C) += dout * norm, g = dout (C), x (C), w (C, f32), with the row's saved mu, r. dx
// may be g or x itself.
PT_EW_AVX2 void BackwardRowBf16Avx2(bf16* dx, float* part, const bf16* g, const bf16* x, const float* w, float mu,
                                    float r, int64_t c) {
  const int64_t full = c / 8 * 8, rest = c - full;
  const __m256 muv = _mm256_set1_ps(mu);
  __m256 sD[4], sN[4], sND[4];
  for (int u = 0; u < 4; u++) sD[u] = sN[u] = sND[u] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 32 <= c; j += 32) {
    for (int u = 0; u < 4; u++) {
      const int64_t o = j + 8 * u;
      const __m256 d = _mm256_sub_ps(avx2::Load(x + o), muv);
      const __m256 dn = _mm256_mul_ps(avx2::Load(g + o), avx2::Load(w + o));  // exact
      sD[u] = _mm256_add_ps(sD[u], d);
      sN[u] = _mm256_add_ps(sN[u], dn);
      sND[u] = _mm256_fmadd_ps(dn, d, sND[u]);
    }
  }
  for (; j < c; j += 8) {
    const int64_t len = j < full ? 8 : rest;
    // lanes past the row read x = 0: their x - mu must be 0 too, not -mu
    const __m256 live = _mm256_castsi256_ps(
        _mm256_cmpgt_epi32(_mm256_set1_epi32(int(len)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)));
    const __m256 dc = _mm256_and_ps(_mm256_sub_ps(avx2::LoadPartial(x + j, len), muv), live);
    const __m256 dn = _mm256_mul_ps(avx2::LoadPartial(g + j, len), avx2::LoadPartial(w + j, len));
    sD[0] = _mm256_add_ps(sD[0], dc);
    sN[0] = _mm256_add_ps(sN[0], dn);
    sND[0] = _mm256_fmadd_ps(dn, dc, sND[0]);
  }
  const double sumD = Sum4(sD), sumDn = Sum4(sN), sumDnD = Sum4(sND);
  const double shift = sumD / double(c);  // what the saved f32 mean rounded away (see RowShift)
  const __m256 meanDnorm = _mm256_set1_ps(float(sumDn / double(c)));
  const __m256 meanDnormNorm = _mm256_set1_ps(float(double(r) * (sumDnD - shift * sumDn) / double(c)));
  const __m256 rem = _mm256_set1_ps(float(shift)), rv = _mm256_set1_ps(r);
  for (j = 0; j < c; j += 8) {
    const int64_t len = j < full ? 8 : rest;
    const bool whole = len == 8;
    const __m256 xv = whole ? avx2::Load(x + j) : avx2::LoadPartial(x + j, len);
    const __m256 gv = whole ? avx2::Load(g + j) : avx2::LoadPartial(g + j, len);
    const __m256 wv = whole ? avx2::Load(w + j) : avx2::LoadPartial(w + j, len);
    const __m256 pv = whole ? avx2::Load(part + j) : avx2::LoadPartial(part + j, len);
    const __m256 norm = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(xv, muv), rem), rv);
    const __m256 dnormCentred = _mm256_fmsub_ps(gv, wv, meanDnorm);
    const __m256 p = _mm256_fmadd_ps(gv, norm, pv);
    const __m256 d = _mm256_mul_ps(_mm256_fnmadd_ps(norm, meanDnormNorm, dnormCentred), rv);
    if (whole) {
      avx2::Store(part + j, p);
      avx2::Store(dx + j, d);
    } else {
      avx2::StorePartial(part + j, len, p);
      avx2::StorePartial(dx + j, len, d);
    }
  }
}
#endif

// The weight (C) in f32, for the bf16 AVX-512 and AVX2 rows.
std::vector<float> WidenWeight(const bf16* weight, int64_t c) {
  std::vector<float> w(static_cast<size_t>(c));
  for (int64_t j = 0; j < c; j++) w[size_t(j)] = Bf16ToF32(weight[j]);
  return w;
}

// out (N, C), mean (N), rstd (N), inp (N, C), weight (C)
template <typename T>
void LayerNormForward(T* out, float* mean, float* rstd, const T* inp, const T* weight, float eps, int64_t n,
                      int64_t c) {
#ifdef PT_HAVE_EW_AVX512
  if constexpr (std::is_same_v<T, bf16>) {
    if (ActiveIsa() >= Isa::Avx512) {
      const bool hw = ActiveIsa() >= Isa::Avx512Bf16;
      constexpr int64_t kGroup = 4;  // rows per call of the row function
      const auto group = hw ? &ForwardRowsBf16Avx512<true, kGroup> : &ForwardRowsBf16Avx512<false, kGroup>;
      const auto single = hw ? &ForwardRowsBf16Avx512<true, 1> : &ForwardRowsBf16Avx512<false, 1>;
      const std::vector<float> w = WidenWeight(weight, c);
      const int64_t groups = (n + kGroup - 1) / kGroup;
#pragma omp parallel for num_threads(Threads()) schedule(static)
      for (int64_t p = 0; p < groups; p++) {
        const int64_t lo = p * kGroup, hi = std::min(n, lo + kGroup);
        if (hi - lo == kGroup) {
          group(out + lo * c, mean + lo, rstd + lo, inp + lo * c, w.data(), eps, c);
        } else {
          for (int64_t i = lo; i < hi; i++) single(out + i * c, mean + i, rstd + i, inp + i * c, w.data(), eps, c);
        }
      }
      return;
    }
  }
#endif
#ifdef PT_HAVE_EW_AVX2
  if constexpr (std::is_same_v<T, bf16>) {
    if (ActiveIsa() >= Isa::Avx2) {
      const std::vector<float> w = WidenWeight(weight, c);
#pragma omp parallel for num_threads(Threads()) schedule(static)
      for (int64_t i = 0; i < n; i++) {
        ForwardRowBf16Avx2(out + i * c, mean + i, rstd + i, inp + i * c, w.data(), eps, c);
      }
      return;
    }
  }
#endif
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t i = 0; i < n; i++) ForwardRow(out + i * c, mean + i, rstd + i, inp + i * c, weight, eps, c);
}

// Rows per dweight partial: a function of N only, so the reduction order never depends on the thread count;
// at most 256 partials (256 * C floats of scratch).
int64_t RowBlock(int64_t n) { return std::max<int64_t>(32, (n + 255) / 256); }

// dinp (N, C) =, dweight (C) +=, dout (N, C), inp (N, C), weight (C), mean (N), rstd (N)
//   norm = (x - mean) * rstd, dnorm = dout * weight
//   dinp = rstd * (dnorm - mean_j(dnorm) - norm * mean_j(dnorm * norm)),  dweight += sum_i dout * norm
template <typename T>
void LayerNormBackward(T* dinp, float* dweight, const T* dout, const T* inp, const T* weight, const float* mean,
                       const float* rstd, int64_t n, int64_t c) {
  const int64_t rowBlock = RowBlock(n), blocks = (n + rowBlock - 1) / rowBlock;
  std::vector<float> partial(size_t(blocks) * size_t(c), 0.0f);  // (blocks, C)
  // rows(part, lo, hi) runs rows [lo, hi) of one block, adding into that block's partial.
  const auto forBlocks = [&](auto&& rows) {
#pragma omp parallel for num_threads(Threads()) schedule(static)
    for (int64_t b = 0; b < blocks; b++) rows(partial.data() + b * c, b * rowBlock, std::min(n, (b + 1) * rowBlock));
  };
  // bf16 rows on AVX-512 or AVX2 take the weight widened to f32 once; every other case runs BackwardRow.
  using SimdRow = void (*)(bf16*, float*, const bf16*, const bf16*, const float*, float, float, int64_t);
  SimdRow simd = nullptr;
  if constexpr (std::is_same_v<T, bf16>) {
#ifdef PT_HAVE_EW_AVX512
    if (ActiveIsa() >= Isa::Avx512)
      simd = ActiveIsa() >= Isa::Avx512Bf16 ? &BackwardRowBf16Avx512<true> : &BackwardRowBf16Avx512<false>;
#endif
#ifdef PT_HAVE_EW_AVX2
    if (!simd && ActiveIsa() >= Isa::Avx2) simd = &BackwardRowBf16Avx2;
#endif
    if (simd) {
      const std::vector<float> w = WidenWeight(weight, c);
      forBlocks([&](float* part, int64_t lo, int64_t hi) {
        for (int64_t i = lo; i < hi; i++) {
          simd(dinp + i * c, part, dout + i * c, inp + i * c, w.data(), mean[i], rstd[i], c);
        }
      });
    }
  }
  if (!simd) {
    forBlocks([&](float* part, int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; i++) {
        BackwardRow(dinp + i * c, part, dout + i * c, inp + i * c, weight, mean[i], rstd[i], c);
      }
    });
  }
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t j = 0; j < c; j++) {
    float s = 0.0f;
    for (int64_t b = 0; b < blocks; b++) s += partial[size_t(b) * c + j];
    dweight[j] += s;
  }
}

// Rows and columns of a (..., C) activation whose last dim must match weight (C).
void RowsCols(const std::string& op, const Tensor& inp, const Tensor& weight, int64_t* n, int64_t* c) {
  *c = weight.numel;
  PT_CHECK_ARG(*c >= 1 && inp.ndim() >= 1 && inp.dim(-1) == *c, op, ": 'inp' ", inp.Describe(),
               " must end in the size of 'weight' ", weight.Describe());
  *n = inp.numel / *c;
}

// layerNormForward(out, mean, rstd, inp, weight, eps)
Kernel BuildLayerNormForward(OpArgs& a) {
  Tensor out = a.tensor(0, "out"), mean = a.tensor(1, "mean"), rstd = a.tensor(2, "rstd");
  Tensor inp = a.tensor(3, "inp"), weight = a.tensor(4, "weight");
  const double eps = a.number(5, "eps");
  const std::string& op = a.op();
  ExpectFloat(op, "inp", inp);
  ExpectSameDType(op, "weight", weight, "inp", inp);
  ExpectSameDType(op, "out", out, "inp", inp);
  ExpectDType(op, "mean", mean, DType::F32);
  ExpectDType(op, "rstd", rstd, DType::F32);
  PT_CHECK_ARG(std::isfinite(eps) && eps >= 0.0, op, ": eps must be a finite number >= 0, got ", eps);
  int64_t n, c;
  RowsCols(op, inp, weight, &n, &c);
  ExpectNumel(op, "out", out, inp.numel);
  ExpectNumel(op, "mean", mean, n);
  ExpectNumel(op, "rstd", rstd, n);
  ExpectSameOrNoOverlap(op, "out", out, "inp", inp);
  ExpectNoOverlap(op, "out", out, "weight", weight);
  const std::pair<const char*, const Tensor*> others[] = {{"out", &out}, {"inp", &inp}, {"weight", &weight}};
  for (const auto& [name, t] : others) {
    ExpectNoOverlap(op, "mean", mean, name, *t);
    ExpectNoOverlap(op, "rstd", rstd, name, *t);
  }
  ExpectNoOverlap(op, "mean", mean, "rstd", rstd);
  LayerNormArgs l;
  l.out = out.raw(), l.mean = mean.ptr<float>(), l.rstd = rstd.ptr<float>();
  l.inp = inp.raw(), l.weight = weight.raw(), l.dtype = inp.dtype, l.eps = float(eps), l.n = n, l.c = c;
  return LaunchOn(a, l, &cpu::LayerNormForward, PT_CUDA_FN(LayerNormForward));
}

// layerNormBackward(dinp, dweight, dout, inp, weight, mean, rstd)
Kernel BuildLayerNormBackward(OpArgs& a) {
  Tensor dinp = a.tensor(0, "dinp"), dweight = a.tensor(1, "dweight"), dout = a.tensor(2, "dout");
  Tensor inp = a.tensor(3, "inp"), weight = a.tensor(4, "weight");
  Tensor mean = a.tensor(5, "mean"), rstd = a.tensor(6, "rstd");
  const std::string& op = a.op();
  ExpectFloat(op, "inp", inp);
  ExpectSameDType(op, "weight", weight, "inp", inp);
  ExpectSameDType(op, "dout", dout, "inp", inp);
  ExpectSameDType(op, "dinp", dinp, "inp", inp);
  ExpectDType(op, "dweight", dweight, DType::F32);
  ExpectDType(op, "mean", mean, DType::F32);
  ExpectDType(op, "rstd", rstd, DType::F32);
  int64_t n, c;
  RowsCols(op, inp, weight, &n, &c);
  ExpectNumel(op, "dinp", dinp, inp.numel);
  ExpectNumel(op, "dout", dout, inp.numel);
  ExpectNumel(op, "dweight", dweight, c);
  ExpectNumel(op, "mean", mean, n);
  ExpectNumel(op, "rstd", rstd, n);
  ExpectSameOrNoOverlap(op, "dinp", dinp, "dout", dout);
  ExpectSameOrNoOverlap(op, "dinp", dinp, "inp", inp);
  const std::pair<const char*, const Tensor*> others[] = {{"weight", &weight}, {"mean", &mean}, {"rstd", &rstd}};
  for (const auto& [name, t] : others) ExpectNoOverlap(op, "dinp", dinp, name, *t);
  const std::pair<const char*, const Tensor*> all[] = {{"dinp", &dinp},     {"dout", &dout}, {"inp", &inp},
                                                       {"weight", &weight}, {"mean", &mean}, {"rstd", &rstd}};
  for (const auto& [name, t] : all) ExpectNoOverlap(op, "dweight", dweight, name, *t);
  LayerNormArgs l;
  l.out = dinp.raw(), l.dweight = dweight.ptr<float>(), l.mean = mean.ptr<float>(), l.rstd = rstd.ptr<float>();
  l.inp = inp.raw(), l.weight = weight.raw(), l.dout = dout.raw(), l.dtype = inp.dtype, l.n = n, l.c = c;
  return LaunchOn(a, l, &cpu::LayerNormBackward, PT_CUDA_FN(LayerNormBackward));
}

}  // namespace

void cpu::LayerNormForward(const LayerNormArgs& l) {
  DispatchFloat(l.dtype, [&](auto t) {
    using T = decltype(t);
    pt::LayerNormForward(static_cast<T*>(l.out), l.mean, l.rstd, static_cast<const T*>(l.inp),
                         static_cast<const T*>(l.weight), l.eps, l.n, l.c);
  });
}

void cpu::LayerNormBackward(const LayerNormArgs& l) {
  DispatchFloat(l.dtype, [&](auto t) {
    using T = decltype(t);
    pt::LayerNormBackward(static_cast<T*>(l.out), l.dweight, static_cast<const T*>(l.dout),
                          static_cast<const T*>(l.inp), static_cast<const T*>(l.weight), l.mean, l.rstd, l.n, l.c);
  });
}

void RegisterLayerNorm(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "layerNormForward", BuildLayerNormForward);
  RegisterOp(env, exports, "layerNormBackward", BuildLayerNormBackward);
}

}  // namespace pt
