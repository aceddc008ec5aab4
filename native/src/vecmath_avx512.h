// vecmath_avx512.h: AVX-512 helpers for the element-wise kernels (layernorm, gelu, ...): 16 f32 lanes loaded
// from f32 or bf16 memory, stored back with bf16's round to nearest even, tail masks, and FastExp/ErfcNonNeg
// of vecmath.h written lane-wise with the same constants and the same order of operations.
//
// The addon is compiled for baseline x86-64: every function here carries PT_EW_AVX512 and may only be called
// from a function with that target (or a superset), which a kernel reaches only when ActiveIsa() >=
// Isa::Avx512 (cpu.h); its fallback is the multiversioned loop of the op (vecmath.h's PT_CLONES).
//
// bf16 -> f32 is exact (a 16-bit shift). f32 -> bf16 rounds with integer arithmetic, bit for bit the scalar
// F32ToBf16 of common.h (nearest even, NaN stays NaN with the quiet bit set, denormals kept), rather than with
// vcvtneps2bf16, which flushes denormal inputs to zero.
#pragma once
#if defined(__GNUC__) && defined(__x86_64__)
#define PT_HAVE_EW_AVX512 1
#include <immintrin.h>

#include <cstdint>

#include "common.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized through _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define PT_EW_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define PT_EW_INLINE inline __attribute__((always_inline))

namespace pt {
namespace avx512 {

// The first n lanes (none for n <= 0).
PT_EW_AVX512 PT_EW_INLINE __mmask16 TailMask(int64_t n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1u);
}

PT_EW_AVX512 PT_EW_INLINE __m512 Load(const float* p) { return _mm512_loadu_ps(p); }
PT_EW_AVX512 PT_EW_INLINE __m512 Load(const bf16* p) {
  const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}
// Masked-off lanes read as 0 and touch no memory.
PT_EW_AVX512 PT_EW_INLINE __m512 Load(const float* p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
PT_EW_AVX512 PT_EW_INLINE __m512 Load(const bf16* p, __mmask16 k) {
  const __m256i h = _mm256_maskz_loadu_epi16(k, p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

// 16 lanes rounded to bf16 as F32ToBf16 does, packed to 16-bit words.
PT_EW_AVX512 PT_EW_INLINE __m256i ToBf16(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
  const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)),
                                                _mm512_set1_epi32(0x7f800000));
  const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
  return _mm512_cvtepi32_epi16(_mm512_mask_blend_epi32(nan, rounded, quiet));
}

// The same with vcvtneps2bf16 (AVX512-BF16: run only when ActiveIsa() >= Isa::Avx512Bf16), one instruction
// instead of nine. It treats a denormal input as zero, so it is F32ToBf16 bit for bit only on results of
// arithmetic done in the kernel floating-point mode (cpu.h: flush-to-zero, so never denormal), not on a copy
// of arbitrary f32 data. Inline assembly: GCC inlines the intrinsic only into functions compiled for
// avx512bf16, and the kernels calling this are compiled once for AVX-512 and choose it by a template flag.
PT_EW_AVX512 PT_EW_INLINE __m256i ToBf16Hw(__m512 x) {
  __m256i h;
  __asm__("vcvtneps2bf16 %1, %0" : "=v"(h) : "v"(x));
  return h;
}

// Stores of computed results: kHw picks ToBf16Hw (see above) over ToBf16.
template <bool kHw>
PT_EW_AVX512 PT_EW_INLINE void StoreComputed(bf16* p, __m512 x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), kHw ? ToBf16Hw(x) : ToBf16(x));
}
template <bool kHw>
PT_EW_AVX512 PT_EW_INLINE void StoreComputed(bf16* p, __mmask16 k, __m512 x) {
  _mm256_mask_storeu_epi16(p, k, kHw ? ToBf16Hw(x) : ToBf16(x));
}

PT_EW_AVX512 PT_EW_INLINE void Store(float* p, __m512 x) { _mm512_storeu_ps(p, x); }
PT_EW_AVX512 PT_EW_INLINE void Store(bf16* p, __m512 x) {
  _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), ToBf16(x));
}
PT_EW_AVX512 PT_EW_INLINE void Store(float* p, __mmask16 k, __m512 x) { _mm512_mask_storeu_ps(p, k, x); }
PT_EW_AVX512 PT_EW_INLINE void Store(bf16* p, __mmask16 k, __m512 x) { _mm256_mask_storeu_epi16(p, k, ToBf16(x)); }

// The 16 lanes widened to two f64 vectors (lanes 0-7, 8-15).
PT_EW_AVX512 PT_EW_INLINE __m512d WidenLo(__m512 x) { return _mm512_cvtps_pd(_mm512_castps512_ps256(x)); }
PT_EW_AVX512 PT_EW_INLINE __m512d WidenHi(__m512 x) { return _mm512_cvtps_pd(_mm512_extractf32x8_ps(x, 1)); }

// The sum of the 8 lanes in a fixed order (a tree). Through memory rather than _mm512_reduce_add_pd, whose
// _mm256_undefined_pd trips GCC 12's -Wuninitialized in every caller (GCC bug 105593).
PT_EW_AVX512 PT_EW_INLINE double ReduceAdd(__m512d x) {
  alignas(64) double t[8];
  _mm512_store_pd(t, x);
  return ((t[0] + t[4]) + (t[2] + t[6])) + ((t[1] + t[5]) + (t[3] + t[7]));
}

// The sum of the 16 lanes in a fixed order (a tree), in registers: two-operand shuffles only, so nothing
// undefined for GCC 12 to warn about.
PT_EW_AVX512 PT_EW_INLINE float ReduceAdd(__m512 x) {
  x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0x4e));  // + the other 256-bit half
  x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0xb1));  // + the neighbouring 128-bit lane
  x = _mm512_add_ps(x, _mm512_shuffle_ps(x, x, 0x4e));     // + the other 64-bit half of the lane
  x = _mm512_add_ps(x, _mm512_shuffle_ps(x, x, 0xb1));     // + the neighbouring element
  return _mm512_cvtss_f32(x);
}

// vecmath.h's FastExp, lane-wise.
PT_EW_AVX512 PT_EW_INLINE __m512 FastExp(__m512 x) {
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  const __m512 t = _mm512_fmadd_ps(x, _mm512_set1_ps(1.44269504088896341f), _mm512_set1_ps(0.5f));  // x log2e + 0.5
  const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 f = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
  f = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.42860682030941723212e-6f), f);
  __m512 p = _mm512_set1_ps(1.0f / 720.0f);
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 120.0f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 24.0f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f / 6.0f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
  const __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  return _mm512_mul_ps(p, _mm512_castsi512_ps(e));
}

// vecmath.h's ErfcNonNeg, lane-wise (z >= 0).
PT_EW_AVX512 PT_EW_INLINE __m512 ErfcNonNeg(__m512 z) {
  const __m512 t = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_fmadd_ps(_mm512_set1_ps(0.5f), z, _mm512_set1_ps(1.0f)));
  __m512 p = _mm512_set1_ps(0.17087277f);
  p = _mm512_fmadd_ps(t, p, _mm512_set1_ps(-0.82215223f));
  p = _mm512_fmadd_ps(t, p, _mm512_set1_ps(1.48851587f));
  p = _mm512_fmadd_ps(t, p, _mm512_set1_ps(-1.13520398f));
  p = _mm512_fmadd_ps(t, p, _mm512_set1_ps(0.27886807f));
  p = _mm512_fmadd_ps(t, p, _mm512_set1_ps(-0.18628806f));
  p = _mm512_fmadd_ps(t, p, _mm512_set1_ps(0.09678418f));
  p = _mm512_fmadd_ps(t, p, _mm512_set1_ps(0.37409196f));
  p = _mm512_fmadd_ps(t, p, _mm512_set1_ps(1.00002368f));
  p = _mm512_fmadd_ps(t, p, _mm512_set1_ps(-1.26551223f));
  return _mm512_mul_ps(t, FastExp(_mm512_fnmadd_ps(z, z, p)));
}

}  // namespace avx512
}  // namespace pt

#pragma GCC diagnostic pop
#endif
