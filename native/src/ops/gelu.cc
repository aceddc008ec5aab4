// gelu.cc: exact GELU, y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), forward and backward.
// Accumulation rule: activation gradients are overwritten (dinp = dout * gelu'(x)).
// f32 math on f32 or bf16 tensors, parallel over chunks; erf/exp are the vectorisable ones of vecmath.h.
#include <algorithm>

#include "../cpu.h"
#include "../op.h"
#include "../vecmath.h"
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
  ForChunks(n, [&](int64_t i, int64_t len) { GeluForwardBf16(out + i, inp + i, len); });
}
void GeluBackward(float* dinp, const float* inp, const float* dout, int64_t n) {
  ForChunks(n, [&](int64_t i, int64_t len) { GeluBackwardF32(dinp + i, inp + i, dout + i, len); });
}
void GeluBackward(bf16* dinp, const bf16* inp, const bf16* dout, int64_t n) {
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
