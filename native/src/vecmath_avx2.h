// vecmath_avx2.h: AVX2 helpers for the bf16 element-wise kernels below AVX-512 (layernorm): 8 f32 lanes loaded
// from bf16 memory, stored back with bf16's round to nearest even, bit for bit the scalar F32ToBf16 of common.h
// (NaN stays NaN with the quiet bit set, denormals kept), partial vectors through a zero-padded copy (AVX2 has no
// 16-bit masked loads or stores), and lane sums in a fixed order.
//
// The addon is compiled for baseline x86-64: every function here carries PT_EW_AVX2 and may only be called from a
// function with that target (or a superset), which a kernel reaches only when ActiveIsa() >= Isa::Avx2 (cpu.h:
// AVX2, FMA and F16C).
#pragma once
#if defined(__GNUC__) && defined(__x86_64__)
#define PT_HAVE_EW_AVX2 1
#include <immintrin.h>

#include <cstdint>
#include <cstring>

#include "common.h"

#define PT_EW_AVX2 __attribute__((target("avx2,fma,f16c")))
#define PT_EW_AVX2_INLINE inline __attribute__((always_inline))

namespace pt {
namespace avx2 {

PT_EW_AVX2 PT_EW_AVX2_INLINE __m256 Load(const float* p) { return _mm256_loadu_ps(p); }
PT_EW_AVX2 PT_EW_AVX2_INLINE __m256 Load(const bf16* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}
// The first n (0..8) elements, the other lanes 0.
PT_EW_AVX2 PT_EW_AVX2_INLINE __m256 LoadPartial(const bf16* p, int64_t n) {
  bf16 t[8] = {};
  std::memcpy(t, p, size_t(n) * sizeof(bf16));
  return Load(t);
}
PT_EW_AVX2 PT_EW_AVX2_INLINE __m256 LoadPartial(const float* p, int64_t n) {
  float t[8] = {};
  std::memcpy(t, p, size_t(n) * sizeof(float));
  return Load(t);
}

// 8 lanes rounded to bf16 as F32ToBf16 does, packed to 8 words in order.
PT_EW_AVX2 PT_EW_AVX2_INLINE __m128i ToBf16(__m256 x) {
  const __m256i u = _mm256_castps_si256(x);
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
  const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))), 16);
  // |u| > Inf as signed compare: both sides are below 2^31 once the sign bit is cleared
  const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)),
                                         _mm256_set1_epi32(0x7f800000));
  const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40));
  const __m256i words = _mm256_blendv_epi8(rounded, quiet, nan);  // each lane < 2^16: packus keeps it
  const __m256i packed = _mm256_packus_epi32(words, words);       // per 128-bit half: w0..3 w0..3 | w4..7 w4..7
  return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));  // qwords 0 and 2: w0..7
}
PT_EW_AVX2 PT_EW_AVX2_INLINE void Store(bf16* p, __m256 x) {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), ToBf16(x));
}
PT_EW_AVX2 PT_EW_AVX2_INLINE void Store(float* p, __m256 x) { _mm256_storeu_ps(p, x); }
// The first n (0..8) lanes only.
PT_EW_AVX2 PT_EW_AVX2_INLINE void StorePartial(bf16* p, int64_t n, __m256 x) {
  bf16 t[8];
  Store(t, x);
  std::memcpy(p, t, size_t(n) * sizeof(bf16));
}
PT_EW_AVX2 PT_EW_AVX2_INLINE void StorePartial(float* p, int64_t n, __m256 x) {
  float t[8];
  Store(t, x);
  std::memcpy(p, t, size_t(n) * sizeof(float));
}

// The sum of the 8 lanes in a fixed order (a tree).
PT_EW_AVX2 PT_EW_AVX2_INLINE float ReduceAdd(__m256 x) {
  __m128 q = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
  q = _mm_add_ps(q, _mm_movehl_ps(q, q));
  q = _mm_add_ss(q, _mm_movehdup_ps(q));
  return _mm_cvtss_f32(q);
}
PT_EW_AVX2 PT_EW_AVX2_INLINE double ReduceAdd(__m256d x) {
  __m128d q = _mm_add_pd(_mm256_castpd256_pd128(x), _mm256_extractf128_pd(x, 1));
  q = _mm_add_sd(q, _mm_unpackhi_pd(q, q));
  return _mm_cvtsd_f64(q);
}

// The 8 lanes widened to two f64 vectors (lanes 0-3, 4-7).
PT_EW_AVX2 PT_EW_AVX2_INLINE __m256d WidenLo(__m256 x) { return _mm256_cvtps_pd(_mm256_castps256_ps128(x)); }
PT_EW_AVX2 PT_EW_AVX2_INLINE __m256d WidenHi(__m256 x) { return _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)); }

}  // namespace avx2
}  // namespace pt
#endif
