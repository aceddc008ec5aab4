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
// widen bf16 one element at a time and ran bf16 slower per element than f32): the same passes and the same
// f64 sums over 16 lanes widened in registers (vecmath_avx512.h). f32 rows keep the multiversioned functions.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "../cpu.h"
#include "../op.h"
#include "../vecmath.h"
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
// ForwardRow for bf16 rows on AVX-512. The f64 sums of bf16 values are exact for any order (8-bit
// significands), so mean is the multiversioned function's to the bit; the squared deviations may round in
// another order in their last f64 bit. kHw: round the outputs with vcvtneps2bf16 (AVX512-BF16), the same bits
// on results computed in the kernel floating-point mode (vecmath_avx512.h).
template <bool kHw>
PT_EW_AVX512 void ForwardRowBf16Avx512(bf16* y, float* mean, float* rstd, const bf16* x, const bf16* weight,
                                       float eps, int64_t c) {
  __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
  int64_t j = 0;
  for (; j + 16 <= c; j += 16) {
    const __m512 v = avx512::Load(x + j);
    s0 = _mm512_add_pd(s0, avx512::WidenLo(v));
    s1 = _mm512_add_pd(s1, avx512::WidenHi(v));
  }
  const __mmask16 tail = avx512::TailMask(c - j);
  if (j < c) {
    const __m512 v = avx512::Load(x + j, tail);  // masked lanes read 0
    s0 = _mm512_add_pd(s0, avx512::WidenLo(v));
    s1 = _mm512_add_pd(s1, avx512::WidenHi(v));
  }
  const double m = avx512::ReduceAdd(_mm512_add_pd(s0, s1)) / double(c);
  const __m512d mv = _mm512_set1_pd(m);
  s0 = _mm512_setzero_pd();
  s1 = _mm512_setzero_pd();
  for (j = 0; j + 16 <= c; j += 16) {
    const __m512 v = avx512::Load(x + j);
    const __m512d d0 = _mm512_sub_pd(avx512::WidenLo(v), mv), d1 = _mm512_sub_pd(avx512::WidenHi(v), mv);
    s0 = _mm512_fmadd_pd(d0, d0, s0);
    s1 = _mm512_fmadd_pd(d1, d1, s1);
  }
  if (j < c) {
    const __m512 v = avx512::Load(x + j, tail);
    const __m512d d0 = _mm512_maskz_sub_pd(__mmask8(tail), avx512::WidenLo(v), mv);
    const __m512d d1 = _mm512_maskz_sub_pd(__mmask8(tail >> 8), avx512::WidenHi(v), mv);
    s0 = _mm512_fmadd_pd(d0, d0, s0);
    s1 = _mm512_fmadd_pd(d1, d1, s1);
  }
  const double sq = avx512::ReduceAdd(_mm512_add_pd(s0, s1));
  const float r = float(1.0 / std::sqrt(sq / double(c) + double(eps)));
  const RowShift s{float(m), float(m - double(float(m)))};
  const __m512 mu = _mm512_set1_ps(s.mean), rem = _mm512_set1_ps(s.remainder), rv = _mm512_set1_ps(r);
  // y may be x itself: each vector of x is read before y's is written
  for (j = 0; j + 16 <= c; j += 16) {
    const __m512 v = _mm512_sub_ps(_mm512_sub_ps(avx512::Load(x + j), mu), rem);
    avx512::StoreComputed<kHw>(y + j, _mm512_mul_ps(_mm512_mul_ps(v, rv), avx512::Load(weight + j)));
  }
  if (j < c) {
    const __m512 v = _mm512_sub_ps(_mm512_sub_ps(avx512::Load(x + j, tail), mu), rem);
    avx512::StoreComputed<kHw>(y + j, tail, _mm512_mul_ps(_mm512_mul_ps(v, rv), avx512::Load(weight + j, tail)));
  }
  *mean = s.mean;
  *rstd = r;
}

// BackwardRow for bf16 rows on AVX-512: dx (C) =, part (C) +=, g (C), x (C), weight (C).
template <bool kHw>
PT_EW_AVX512 void BackwardRowBf16Avx512(bf16* dx, float* part, const bf16* g, const bf16* x, const bf16* weight,
                                        float mu, float r, int64_t c) {
  const __m512 muv = _mm512_set1_ps(mu);
  __m512d sD0 = _mm512_setzero_pd(), sD1 = _mm512_setzero_pd(), sN0 = _mm512_setzero_pd(),
          sN1 = _mm512_setzero_pd(), sND0 = _mm512_setzero_pd(), sND1 = _mm512_setzero_pd();
  const __mmask16 tail = avx512::TailMask(c % 16);
  for (int64_t j = 0; j < c; j += 16) {
    const __mmask16 k = j + 16 <= c ? __mmask16(0xffff) : tail;
    const __m512 d = _mm512_maskz_sub_ps(k, avx512::Load(x + j, k), muv);  // 0 in masked-off lanes
    const __m512 gv = avx512::Load(g + j, k), wv = avx512::Load(weight + j, k);
    const __m512d d0 = avx512::WidenLo(d), d1 = avx512::WidenHi(d);
    const __m512d dn0 = _mm512_mul_pd(avx512::WidenLo(gv), avx512::WidenLo(wv));  // exact: 8-bit significands
    const __m512d dn1 = _mm512_mul_pd(avx512::WidenHi(gv), avx512::WidenHi(wv));
    sD0 = _mm512_add_pd(sD0, d0);
    sD1 = _mm512_add_pd(sD1, d1);
    sN0 = _mm512_add_pd(sN0, dn0);
    sN1 = _mm512_add_pd(sN1, dn1);
    sND0 = _mm512_fmadd_pd(dn0, d0, sND0);
    sND1 = _mm512_fmadd_pd(dn1, d1, sND1);
  }
  const double sumD = avx512::ReduceAdd(_mm512_add_pd(sD0, sD1));
  const double sumDn = avx512::ReduceAdd(_mm512_add_pd(sN0, sN1));
  const double sumDnD = avx512::ReduceAdd(_mm512_add_pd(sND0, sND1));
  const double shift = sumD / double(c);
  const __m512 meanDnorm = _mm512_set1_ps(float(sumDn / double(c)));
  const __m512 meanDnormNorm = _mm512_set1_ps(float(double(r) * (sumDnD - shift * sumDn) / double(c)));
  const __m512 rem = _mm512_set1_ps(float(shift)), rv = _mm512_set1_ps(r);
  // dx may be g or x itself: both vectors are read before dx's is written
  for (int64_t j = 0; j < c; j += 16) {
    const __mmask16 k = j + 16 <= c ? __mmask16(0xffff) : tail;
    const __m512 norm = _mm512_mul_ps(_mm512_sub_ps(_mm512_sub_ps(avx512::Load(x + j, k), muv), rem), rv);
    const __m512 gv = avx512::Load(g + j, k);
    const __m512 dnormCentred = _mm512_fmsub_ps(gv, avx512::Load(weight + j, k), meanDnorm);
    avx512::Store(part + j, k, _mm512_fmadd_ps(gv, norm, avx512::Load(part + j, k)));
    avx512::StoreComputed<kHw>(dx + j, k, _mm512_mul_ps(_mm512_fnmadd_ps(norm, meanDnormNorm, dnormCentred), rv));
  }
}
#endif

// The row functions of this run: the AVX-512 ones for bf16 when ActiveIsa() allows them.
template <typename T>
struct Rows {
  decltype(&ForwardRow<T>) forward = &ForwardRow<T>;
  decltype(&BackwardRow<T>) backward = &BackwardRow<T>;
};
template <typename T>
Rows<T> RowsFor() {
  Rows<T> rows;
#ifdef PT_HAVE_EW_AVX512
  if constexpr (std::is_same_v<T, bf16>) {
    if (ActiveIsa() >= Isa::Avx512Bf16) {
      rows.forward = &ForwardRowBf16Avx512<true>;
      rows.backward = &BackwardRowBf16Avx512<true>;
    } else if (ActiveIsa() >= Isa::Avx512) {
      rows.forward = &ForwardRowBf16Avx512<false>;
      rows.backward = &BackwardRowBf16Avx512<false>;
    }
  }
#endif
  return rows;
}

// out (N, C), mean (N), rstd (N), inp (N, C), weight (C)
template <typename T>
void LayerNormForward(T* out, float* mean, float* rstd, const T* inp, const T* weight, float eps, int64_t n,
                      int64_t c) {
  const auto forwardRow = RowsFor<T>().forward;
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t i = 0; i < n; i++) forwardRow(out + i * c, mean + i, rstd + i, inp + i * c, weight, eps, c);
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
  const auto backwardRow = RowsFor<T>().backward;
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t b = 0; b < blocks; b++) {
    float* part = partial.data() + b * c;
    for (int64_t i = b * rowBlock; i < std::min(n, (b + 1) * rowBlock); i++) {
      backwardRow(dinp + i * c, part, dout + i * c, inp + i * c, weight, mean[i], rstd[i], c);
    }
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
  return [=]() {
    DispatchFloat(inp.dtype, [&](auto t) {
      using T = decltype(t);
      LayerNormForward(out.ptr<T>(), mean.ptr<float>(), rstd.ptr<float>(), inp.ptr<T>(), weight.ptr<T>(),
                       float(eps), n, c);
    });
    return OpResult{};
  };
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
  return [=]() {
    DispatchFloat(inp.dtype, [&](auto t) {
      using T = decltype(t);
      LayerNormBackward(dinp.ptr<T>(), dweight.ptr<float>(), dout.ptr<T>(), inp.ptr<T>(), weight.ptr<T>(),
                        mean.ptr<float>(), rstd.ptr<float>(), n, c);
    });
    return OpResult{};
  };
}

}  // namespace

void RegisterLayerNorm(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "layerNormForward", BuildLayerNormForward);
  RegisterOp(env, exports, "layerNormBackward", BuildLayerNormBackward);
}

}  // namespace pt
