// gelu.cc: exact GELU, y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), forward and backward.
// Accumulation rule: activation gradients are overwritten (dinp = dout * gelu'(x)).
// f32 math on f32 or bf16 tensors, parallel over chunks; erf/exp are the vectorisable ones of vecmath.h.
// bf16 tensors take a hand-written AVX-512 path when ActiveIsa() allows it (the multiversioned loops below
// convert one element at a time and ran bf16 slower per element than f32): 16 lanes widened in registers,
// the same f32 math lane-wise (vecmath_avx512.h), rounded back as F32ToBf16 does. f32 tensors keep the
// multiversioned loops.
#include <algorithm>

#include "../cpu.h"
#include "../op.h"
#include "../vecmath.h"
#include "../vecmath_avx512.h"
#include "ops.h"

namespace pt {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;
constexpr int64_t kChunk = 8192;  // elements per parallel work item

// Phi(x) = 0.5 erfc(-x / sqrt 2), written per sign so the result keeps relative accuracy for x << 0.
inline float NormalCdf(float x) {
  float h = 0.5f * ErfcNonNeg((x < 0 ? -x : x) * kInvSqrt2);
  return x < 0 ? h : 1.0f - h;
}

inline float Gelu(float x) { return x * NormalCdf(x); }
inline float GeluGrad(float x) { return NormalCdf(x) + x * kInvSqrt2Pi * FastExp(-0.5f * x * x); }

// One chunk each, multiversioned (see vecmath.h). out/dinp (n), inp (n), dout (n).
PT_CLONES void GeluForwardF32(float* out, const float* inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = Gelu(inp[i]);
}
PT_CLONES void GeluForwardBf16(bf16* out, const bf16* inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = F32ToBf16(Gelu(Bf16ToF32(inp[i])));
}
PT_CLONES void GeluBackwardF32(float* dinp, const float* inp, const float* dout, int64_t n) {
  for (int64_t i = 0; i < n; i++) dinp[i] = dout[i] * GeluGrad(inp[i]);
}
PT_CLONES void GeluBackwardBf16(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n) {
  for (int64_t i = 0; i < n; i++) dinp[i] = F32ToBf16(Bf16ToF32(dout[i]) * GeluGrad(Bf16ToF32(inp[i])));
}

#ifdef PT_HAVE_EW_AVX512
PT_EW_AVX512 PT_EW_INLINE __m512 NormalCdf16(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 h = _mm512_mul_ps(_mm512_set1_ps(0.5f), avx512::ErfcNonNeg(_mm512_mul_ps(ax, _mm512_set1_ps(kInvSqrt2))));
  const __mmask16 neg = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_LT_OQ);
  return _mm512_mask_blend_ps(neg, _mm512_sub_ps(_mm512_set1_ps(1.0f), h), h);
}
PT_EW_AVX512 PT_EW_INLINE __m512 GeluGrad16(__m512 x) {
  const __m512 e = avx512::FastExp(_mm512_mul_ps(_mm512_mul_ps(_mm512_set1_ps(-0.5f), x), x));
  return _mm512_fmadd_ps(_mm512_mul_ps(x, _mm512_set1_ps(kInvSqrt2Pi)), e, NormalCdf16(x));
}

// kHw: round with vcvtneps2bf16 (AVX512-BF16), bit for bit the same here (see vecmath_avx512.h).
template <bool kHw>
PT_EW_AVX512 void GeluForwardBf16Avx512(bf16* out, const bf16* inp, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = avx512::Load(inp + i);
    avx512::StoreComputed<kHw>(out + i, _mm512_mul_ps(x, NormalCdf16(x)));
  }
  if (i < n) {
    const __mmask16 k = avx512::TailMask(n - i);
    const __m512 x = avx512::Load(inp + i, k);
    avx512::StoreComputed<kHw>(out + i, k, _mm512_mul_ps(x, NormalCdf16(x)));
  }
}
template <bool kHw>
PT_EW_AVX512 void GeluBackwardBf16Avx512(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 x = avx512::Load(inp + i), g = avx512::Load(dout + i);
    avx512::StoreComputed<kHw>(dinp + i, _mm512_mul_ps(g, GeluGrad16(x)));
  }
  if (i < n) {
    const __mmask16 k = avx512::TailMask(n - i);
    const __m512 x = avx512::Load(inp + i, k), g = avx512::Load(dout + i, k);
    avx512::StoreComputed<kHw>(dinp + i, k, _mm512_mul_ps(g, GeluGrad16(x)));
  }
}
#endif

template <typename F>
void ForChunks(int64_t n, F&& f) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    int64_t i = c * kChunk;
    f(i, std::min(kChunk, n - i));
  }
}

void GeluForward(float* out, const float* inp, int64_t n) {
  ForChunks(n, [&](int64_t i, int64_t len) { GeluForwardF32(out + i, inp + i, len); });
}
void GeluForward(bf16* out, const bf16* inp, int64_t n) {
#ifdef PT_HAVE_EW_AVX512
  if (ActiveIsa() >= Isa::Avx512) {
    const auto chunk = ActiveIsa() >= Isa::Avx512Bf16 ? &GeluForwardBf16Avx512<true> : &GeluForwardBf16Avx512<false>;
    ForChunks(n, [&](int64_t i, int64_t len) { chunk(out + i, inp + i, len); });
    return;
  }
#endif
  ForChunks(n, [&](int64_t i, int64_t len) { GeluForwardBf16(out + i, inp + i, len); });
}
void GeluBackward(float* dinp, const float* inp, const float* dout, int64_t n) {
  ForChunks(n, [&](int64_t i, int64_t len) { GeluBackwardF32(dinp + i, inp + i, dout + i, len); });
}
void GeluBackward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n) {
#ifdef PT_HAVE_EW_AVX512
  if (ActiveIsa() >= Isa::Avx512) {
    const auto chunk =
        ActiveIsa() >= Isa::Avx512Bf16 ? &GeluBackwardBf16Avx512<true> : &GeluBackwardBf16Avx512<false>;
    ForChunks(n, [&](int64_t i, int64_t len) { chunk(dinp + i, inp + i, dout + i, len); });
    return;
  }
#endif
  ForChunks(n, [&](int64_t i, int64_t len) { GeluBackwardBf16(dinp + i, inp + i, dout + i, len); });
}

// geluForward(out, inp)
Kernel BuildGeluForward(OpArgs& a) {
  Tensor out = a.tensor(0, "out"), inp = a.tensor(1, "inp");
  ExpectFloat(a.op(), "inp", inp);
  ExpectSameDType(a.op(), "out", out, "inp", inp);
  ExpectNumel(a.op(), "out", out, inp.numel);
  return [=]() {
    DispatchFloat(inp.dtype, [&](auto t) {
      using T = decltype(t);
      GeluForward(out.ptr<T>(), inp.ptr<T>(), inp.numel);
    });
    return OpResult{};
  };
}

// geluBackward(dinp, inp, dout); dinp may alias dout.
Kernel BuildGeluBackward(OpArgs& a) {
  Tensor dinp = a.tensor(0, "dinp"), inp = a.tensor(1, "inp"), dout = a.tensor(2, "dout");
  ExpectFloat(a.op(), "inp", inp);
  ExpectSameDType(a.op(), "dinp", dinp, "inp", inp);
  ExpectSameDType(a.op(), "dout", dout, "inp", inp);
  ExpectNumel(a.op(), "dinp", dinp, inp.numel);
  ExpectNumel(a.op(), "dout", dout, inp.numel);
  return [=]() {
    DispatchFloat(inp.dtype, [&](auto t) {
      using T = decltype(t);
      GeluBackward(dinp.ptr<T>(), inp.ptr<T>(), dout.ptr<T>(), inp.numel);
    });
    return OpResult{};
  };
}

}  // namespace

void RegisterGelu(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "geluForward", BuildGeluForward);
  RegisterOp(env, exports, "geluBackward", BuildGeluBackward);
}

}  // namespace pt
