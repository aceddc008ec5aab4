// gelu.cu: exact GELU on the GPU, the twin of ops/gelu.cc: y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)),
// forward and backward, f32 math on f32 or bf16 tensors.
// Accumulation rule: activation gradients are overwritten (dinp = dout * gelu'(x)).
// The formula is the CPU f32 path's: Phi(x) = 0.5 erfc(|x| / sqrt 2) per sign (relative accuracy for x << 0),
// gelu'(x) = Phi(x) + x phi(x), with CUDA's erfcf and expf (a few ulp) in place of vecmath.h's polynomials, so
// results agree with the CPU op to f32 rounding (and to the bf16 rounding of that). One grid-stride map over
// the elements (kernels.cuh), 16-byte packs when the pointers allow; out/dinp may be inp or dout.
#include "../launch.h"
#include "check.h"
#include "kernels.cuh"

namespace pt {
namespace cuda {

namespace {

constexpr float kInvSqrt2 = 0.70710678118654752440f;
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;

__device__ __forceinline__ float NormalCdf(float x) {
  const float h = 0.5f * erfcf(fabsf(x) * kInvSqrt2);
  return x < 0.0f ? h : 1.0f - h;
}

struct GeluOp {
  __device__ float operator()(float x) const { return x * NormalCdf(x); }
};

// (x, dout) -> dout * gelu'(x)
struct GeluGradOp {
  __device__ float operator()(float x, float g) const {
    return g * (NormalCdf(x) + x * kInvSqrt2Pi * expf(-0.5f * x * x));
  }
};

}  // namespace

// out (n), inp (n)
void GeluForward(const GeluArgs& a, cudaStream_t stream) {
  if (a.n == 0) return;
  ForFloatType(a.dtype, "geluForward", "inp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    LaunchMap1(static_cast<T*>(a.out), static_cast<const T*>(a.inp), a.n, GeluOp{}, stream);
    PT_CUDA_LAUNCHED("geluForward", "Map1Kernel<GeluOp>");
  });
}

// dinp (n), inp (n), dout (n)
void GeluBackward(const GeluArgs& a, cudaStream_t stream) {
  if (a.n == 0) return;
  ForFloatType(a.dtype, "geluBackward", "inp", [&](auto tag) {
    using T = typename decltype(tag)::type;
    LaunchMap2(static_cast<T*>(a.out), static_cast<const T*>(a.inp), static_cast<const T*>(a.dout), a.n,
               GeluGradOp{}, stream);
    PT_CUDA_LAUNCHED("geluBackward", "Map2Kernel<GeluGradOp>");
  });
}

}  // namespace cuda
}  // namespace pt
