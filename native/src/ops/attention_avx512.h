// attention_avx512.h: the AVX-512 attention paths. The block kernels of the path contract (attention_tiles.h)
// are written once, as Avx512Tiles<W> in attention_avx512_tiles.inc, and instantiated over two word traits W:
//   Avx512Path = Avx512Tiles<F32Words>:  fp32 words, products with FMA; bf16 tensors are widened when packed.
//   Bf16Path   = Avx512Tiles<Bf16Words>: bf16 pairs, products with vdpbf16ps into fp32 accumulators.
// A word trait says what a packed element is, how 16 words are loaded and one is broadcast, and which
// instruction multiplies them into the accumulators; the register tiles, the online-softmax and gradient
// steps and the packing are shared. Included only by attention.cc, which picks a path from ActiveIsa(): the
// addon is compiled for baseline x86-64, and only functions with a PT_AVX512 or PT_AVX512BF16 target attribute
// use AVX-512 (or AVX512-BF16).
#pragma once
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../vecmath_avx512.h"
#include "attention_tiles.h"

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized through _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define PT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define PT_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define PT_INLINE inline __attribute__((always_inline))

namespace pt {
namespace attention {
namespace {  // internal linkage: see attention_tiles.h

// ----- Helpers (inlined into both paths) -----

// exp(x) with ~1e-7 relative error (Cephes expf polynomial); 0 for x <= -87.3 (incl. -inf), saturating
// near 88.7.
PT_AVX512 PT_INLINE __m512 Exp512(__m512 x) {
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.3f), _CMP_GT_OQ);
  x = _mm512_min_ps(x, _mm512_set1_ps(88.7f));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);  // x - n ln2 in two parts
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);  // e^r ~ 1 + r + r^2 p(r) on |r| <= ln2/2
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_maskz_scalef_ps(live, p, n);
}

// x rounded to bf16 in the upper 16 bits of each 32-bit lane, ties away from zero, one instruction: for the
// intermediate P and dS operands only, where an exact tie (the low 16 bits exactly 0x8000) is vanishingly
// rare (outputs are stored with vecmath_avx512.h's nearest-even Store).
PT_AVX512 PT_INLINE __m512i RoundFastBf16Hi(__m512 x) {
  return _mm512_add_epi32(_mm512_castps_si512(x), _mm512_set1_epi32(0x8000));
}

// 32 values (a then b) to 32 consecutive packed elements.
PT_AVX512 PT_INLINE void Store32(float* dst, __m512 a, __m512 b) {
  _mm512_storeu_ps(dst, a);
  _mm512_storeu_ps(dst + 16, b);
}
PT_AVX512 PT_INLINE void Store32(bf16* dst, __m512 a, __m512 b) {
  const __m512i odd = _mm512_setr_epi32(0x30001, 0x70005, 0xb0009, 0xf000d, 0x130011, 0x170015, 0x1b0019,
                                        0x1f001d, 0x230021, 0x270025, 0x2b0029, 0x2f002d, 0x330031, 0x370035,
                                        0x3b0039, 0x3f003d);  // element e takes bf16 half 2e+1
  _mm512_storeu_si512(dst, _mm512_permutex2var_epi16(RoundFastBf16Hi(a), odd, RoundFastBf16Hi(b)));
}
// Two rows interleaved lane by lane as bf16 pairs (lo_0, hi_0, lo_1, hi_1, ...): 16 words.
PT_AVX512 PT_INLINE void StorePair(bf16* dst, __m512 lo, __m512 hi) {
  const __m512i zip = _mm512_setr_epi32(0x210001, 0x230003, 0x250005, 0x270007, 0x290009, 0x2b000b, 0x2d000d,
                                        0x2f000f, 0x310011, 0x330013, 0x350015, 0x370017, 0x390019, 0x3b001b,
                                        0x3d001d, 0x3f001f);  // (lo_e, hi_e) upper halves
  _mm512_storeu_si512(dst, _mm512_permutex2var_epi16(RoundFastBf16Hi(lo), zip, RoundFastBf16Hi(hi)));
}

PT_AVX512 PT_INLINE __m512 LaneIndex() {
  return _mm512_setr_ps(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

// Masked loads and stores of up to 16 tensor elements as fp32 lanes (rows whose length is not a multiple of 16)
// are vecmath_avx512.h's: TailMask, Load and Store (bf16 rounded to nearest even, NaN kept).
using ::pt::avx512::Load;
using ::pt::avx512::Store;
using ::pt::avx512::TailMask;

// The first n 16-bit lanes (none for n <= 0).
PT_AVX512 PT_INLINE __mmask32 TailMask32(int n) {
  return n >= 32 ? __mmask32(~0u) : n <= 0 ? __mmask32(0) : __mmask32((1u << n) - 1);
}

// The 32-bit word at p (a bf16 pair).
inline int32_t LoadWord(const void* p) {
  int32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// ----- Word traits -----
// E: the packed element; kPair: elements per 32-bit word; Vec: 16 words in a vector. Load(p): the 16 words at
// p; Broadcast(p): the word at p in every lane; Dot(acc, a, b): acc plus, in each lane, the product of a's and
// b's words (for bf16 pairs, the sum of the pair's two products).

struct F32Words {
  using E = float;
  using Vec = __m512;
  static constexpr int kPair = 1;
  PT_AVX512 PT_INLINE static __m512 Load(const float* p) { return _mm512_loadu_ps(p); }
  PT_AVX512 PT_INLINE static __m512 Broadcast(const float* p) { return _mm512_set1_ps(*p); }
  PT_AVX512 PT_INLINE static __m512 Dot(__m512 acc, __m512 a, __m512 b) { return _mm512_fmadd_ps(a, b, acc); }
};

struct Bf16Words {
  using E = bf16;
  using Vec = __m512i;
  static constexpr int kPair = 2;
  PT_AVX512 PT_INLINE static __m512i Load(const bf16* p) { return _mm512_loadu_si512(p); }
  PT_AVX512 PT_INLINE static __m512i Broadcast(const bf16* p) { return _mm512_set1_epi32(LoadWord(p)); }
  PT_AVX512BF16 PT_INLINE static __m512 Dot(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
  }
};

// ----- The block kernels: one template over the word trait, compiled once per target -----
// Avx512Tiles<W> (attention_avx512_tiles.inc) holds every block kernel. Each path instantiates it in a
// namespace whose copy is compiled for the path's target, so the bf16 path's vdpbf16ps is inlined into its
// tile loops like any other intrinsic.
namespace avx512 {
#define PT_TILES_TARGET PT_AVX512
#include "attention_avx512_tiles.inc"
#undef PT_TILES_TARGET
}  // namespace avx512

namespace avx512bf16 {
#define PT_TILES_TARGET PT_AVX512BF16
#include "attention_avx512_tiles.inc"
#undef PT_TILES_TARGET
}  // namespace avx512bf16

using Avx512Path = avx512::Avx512Tiles<F32Words>;
using Bf16Path = avx512bf16::Avx512Tiles<Bf16Words>;

}  // namespace
}  // namespace attention
}  // namespace pt

#pragma GCC diagnostic pop
