// gelu.cc: exact GELU, y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), forward and backward.
// Accumulation rule: activation gradients are overwritten (dinp = dout * gelu'(x)).
// f32 math on f32 or bf16 tensors, parallel over chunks; erf/exp are the vectorisable ones of vecmath.h.
// f32 tensors run the multiversioned loops. bf16 tensors look GELU and GELU' up in two tables of all 65536
// bf16 inputs, filled once by those same f32 loops (GeluTables below): the same bits as computing them, at the
// cost of a lookup per element (scalar loads: AVX-512 gathers measured slower on Zen 5).
#include <algorithm>
#include <vector>

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

// bf16 by table. A bf16 input has 65536 bit patterns, so GELU and GELU' of every one are computed once per
// process, by the f32 loops above in the kernel floating-point mode (cpu.h), and the kernels look them up:
// forward out = fwd[x] (the rounded bf16, 128 KiB), backward dinp = bf16(dout * grad[x]) (grad in f32, 256 KiB).
// The bits are those of the loops above on every input (and of the lane-wise AVX-512 evaluation this replaced,
// up to the sign of a NaN); the cost per element is a lookup instead of ~40 operations.
struct GeluTables {
  std::vector<bf16> fwd;    // (65536)
  std::vector<float> grad;  // (65536)
};

const GeluTables& Tables() {
  static const GeluTables tables = [] {
    constexpr int64_t kPatterns = 65536;
    GeluTables t;
    std::vector<bf16> x(kPatterns);
    std::vector<float> xf(kPatterns);
    for (int64_t i = 0; i < kPatterns; i++) {
      x[size_t(i)] = bf16(i);
      xf[size_t(i)] = Bf16ToF32(bf16(i));
    }
    t.fwd.assign(kPatterns, 0);
    t.grad.assign(kPatterns, 0.0f);
    GeluForwardBf16(t.fwd.data(), x.data(), kPatterns);
    std::vector<float> ones(kPatterns, 1.0f);
    GeluBackwardF32(t.grad.data(), xf.data(), ones.data(), kPatterns);  // 1 * GeluGrad(x), exact
    return t;
  }();
  return tables;
}

// One chunk by table, portable. out/dinp (n), inp (n), dout (n).
void GeluForwardTable(bf16* out, const bf16* inp, int64_t n, const GeluTables& t) {
  for (int64_t i = 0; i < n; i++) out[i] = t.fwd[inp[i]];
}
void GeluBackwardTable(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n, const GeluTables& t) {
  for (int64_t i = 0; i < n; i++) dinp[i] = F32ToBf16(Bf16ToF32(dout[i]) * t.grad[inp[i]]);
}

#ifdef PT_HAVE_EW_AVX512
// The backward on AVX-512. grad[x] is looked up by scalar loads into a block buffer, then multiplied by dout and
// rounded 16 lanes at a time. kHw: round with vcvtneps2bf16 (AVX512-BF16), the same bits on results computed in
// the kernel floating-point mode (vecmath_avx512.h).
template <bool kHw>
PT_EW_AVX512 void GeluBackwardTableAvx512(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n,
                                          const GeluTables& t) {
  constexpr int64_t kBlock = 512;
  alignas(64) float d[kBlock];
  for (int64_t lo = 0; lo < n; lo += kBlock) {
    const int64_t len = std::min(kBlock, n - lo);
    for (int64_t i = 0; i < len; i++) d[i] = t.grad[inp[lo + i]];
    int64_t i = 0;
    for (; i + 16 <= len; i += 16) {
      avx512::StoreComputed<kHw>(dinp + lo + i, _mm512_mul_ps(avx512::Load(dout + lo + i), _mm512_load_ps(d + i)));
    }
    if (i < len) {
      const __mmask16 k = avx512::TailMask(len - i);
      const __m512 v = _mm512_mul_ps(avx512::Load(dout + lo + i, k), avx512::Load(d + i, k));
      avx512::StoreComputed<kHw>(dinp + lo + i, k, v);
    }
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
  const GeluTables& t = Tables();
  ForChunks(n, [&](int64_t i, int64_t len) { GeluForwardTable(out + i, inp + i, len, t); });
}
void GeluBackward(float* dinp, const float* inp, const float* dout, int64_t n) {
  ForChunks(n, [&](int64_t i, int64_t len) { GeluBackwardF32(dinp + i, inp + i, dout + i, len); });
}
void GeluBackward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n) {
  const GeluTables& t = Tables();
#ifdef PT_HAVE_EW_AVX512
  if (ActiveIsa() >= Isa::Avx512) {
    const auto chunk =
        ActiveIsa() >= Isa::Avx512Bf16 ? &GeluBackwardTableAvx512<true> : &GeluBackwardTableAvx512<false>;
    ForChunks(n, [&](int64_t i, int64_t len) { chunk(dinp + i, inp + i, dout + i, len, t); });
    return;
  }
#endif
  ForChunks(n, [&](int64_t i, int64_t len) { GeluBackwardTable(dinp + i, inp + i, dout + i, len, t); });
}

// geluForward(out, inp)
Kernel BuildGeluForward(OpArgs& a) {
  Tensor out = a.tensor(0, "out"), inp = a.tensor(1, "inp");
  ExpectFloat(a.op(), "inp", inp);
  ExpectSameDType(a.op(), "out", out, "inp", inp);
  ExpectNumel(a.op(), "out", out, inp.numel);
  const GeluArgs g{out.raw(), inp.raw(), nullptr, inp.dtype, inp.numel};
  return LaunchOn(a, g, &cpu::GeluForward, PT_CUDA_FN(GeluForward));
}

// geluBackward(dinp, inp, dout); dinp may alias dout.
Kernel BuildGeluBackward(OpArgs& a) {
  Tensor dinp = a.tensor(0, "dinp"), inp = a.tensor(1, "inp"), dout = a.tensor(2, "dout");
  ExpectFloat(a.op(), "inp", inp);
  ExpectSameDType(a.op(), "dinp", dinp, "inp", inp);
  ExpectSameDType(a.op(), "dout", dout, "inp", inp);
  ExpectNumel(a.op(), "dinp", dinp, inp.numel);
  ExpectNumel(a.op(), "dout", dout, inp.numel);
  const GeluArgs g{dinp.raw(), inp.raw(), dout.raw(), inp.dtype, inp.numel};
  return LaunchOn(a, g, &cpu::GeluBackward, PT_CUDA_FN(GeluBackward));
}

}  // namespace

void cpu::GeluForward(const GeluArgs& g) {
  if (g.dtype == DType::F32) pt::GeluForward(static_cast<float*>(g.out), static_cast<const float*>(g.inp), g.n);
  else pt::GeluForward(static_cast<bf16*>(g.out), static_cast<const bf16*>(g.inp), g.n);
}

void cpu::GeluBackward(const GeluArgs& g) {
  if (g.dtype == DType::F32)
    pt::GeluBackward(static_cast<float*>(g.out), static_cast<const float*>(g.inp), static_cast<const float*>(g.dout),
                     g.n);
  else
    pt::GeluBackward(static_cast<bf16*>(g.out), static_cast<const bf16*>(g.inp), static_cast<const bf16*>(g.dout), g.n);
}

void RegisterGelu(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "geluForward", BuildGeluForward);
  RegisterOp(env, exports, "geluBackward", BuildGeluBackward);
}

}  // namespace pt
