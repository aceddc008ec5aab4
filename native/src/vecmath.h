// vecmath.h: exp and erfc written as straight-line float arithmetic so that loops calling them vectorise
// (std::exp/std::erf are opaque library calls that keep a loop scalar). Accuracy: FastExp ~2 ulp over the
// finite range; Erfc has a relative error below 1.2e-7 everywhere (Numerical Recipes' Chebyshev fit), so
// GELU keeps full f32 relative accuracy even deep in its negative tail.
//
// PT_CLONES marks element loops for function multiversioning: GCC builds AVX-512, AVX2 and baseline copies
// and the loader picks one for the running CPU (no SIGILL on older CPUs).
#pragma once
#include <cstdint>
#include <cstring>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PT_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define PT_CLONES
#endif

namespace pt {

inline float BitsToFloat(uint32_t u) { return __builtin_bit_cast(float, u); }

// e^x for x in about [-87, 88]; below that it flushes to 0, above it saturates at 2^127 (callers clamp).
inline float FastExp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float kLog2e = 1.44269504088896341f;
  float t = x * kLog2e;
  float n = __builtin_floorf(t + 0.5f);
  float f = x - n * 0.693145751953125f - n * 1.42860682030941723212e-6f;  // x - n ln2, two-part ln2
  // e^f on |f| <= ln2/2, degree-6 Taylor/minimax blend (rel err < 2e-7)
  float p = 1.0f / 720.0f;
  p = p * f + 1.0f / 120.0f;
  p = p * f + 1.0f / 24.0f;
  p = p * f + 1.0f / 6.0f;
  p = p * f + 0.5f;
  p = p * f + 1.0f;
  p = p * f + 1.0f;
  int32_t e = int32_t(n) + 127;
  return p * BitsToFloat(uint32_t(e) << 23);
}

// erfc(z) for z >= 0.
inline float ErfcNonNeg(float z) {
  float t = 1.0f / (1.0f + 0.5f * z);
  float poly = -1.26551223f +
               t * (1.00002368f +
                    t * (0.37409196f +
                         t * (0.09678418f +
                              t * (-0.18628806f +
                                   t * (0.27886807f +
                                        t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
  return t * FastExp(-z * z + poly);
}

}  // namespace pt
