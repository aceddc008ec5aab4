// gelu.cc: exact GELU, y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)), forward and backward.
// Accumulation rule: activation gradients are overwritten (dinp = dout * gelu'(x)).
// Elementwise and memory-bound: f32 math on f32 or bf16 tensors, parallel over elements.
#include <cmath>

#include "../cpu.h"
#include "../op.h"
#include "ops.h"

namespace pt {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

// out (N), inp (N)
template <typename T>
void GeluForward(T* out, const T* inp, int64_t n) {
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float x = Ld(inp + i);
    St(out + i, 0.5f * x * (1.0f + std::erf(x * kInvSqrt2)));
  }
}

// dinp (N), inp (N), dout (N); gelu'(x) = Phi(x) + x * phi(x)
template <typename T>
void GeluBackward(T* dinp, const T* inp, const T* dout, int64_t n) {
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    float x = Ld(inp + i);
    float cdf = 0.5f * (1.0f + std::erf(x * kInvSqrt2));
    float pdf = kInvSqrt2Pi * std::exp(-0.5f * x * x);
    St(dinp + i, Ld(dout + i) * (cdf + x * pdf));
  }
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
