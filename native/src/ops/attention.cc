// attention.cc: causal multi-head self-attention with ALiBi on the CPU, forward and backward (flash style).
//
// Math (per batch b, head h; q, k, v, dout are (T, D) slices of the tensors below):
//   s[i,j] = q_i.k_j / sqrt(D) + slopes[h] * (j - i)   for j <= i (j > i masked)
//   out_i  = sum_j softmax_j(s[i,:]) v_j,              lse_i = log sum_j exp(s[i,j])
//   backward: P = exp(s - lse), Di = dout_i.out_i, dS = P * (dout V^T - Di),
//             dq = dS k / sqrt(D), dk = dS^T q / sqrt(D), dv = P^T dout
// Accumulation rule: dqkv is an activation gradient and is overwritten, never accumulated.
//
// How: the T x T score matrix is never materialised. Queries and keys are cut into 64-wide tiles; one
// (64 keys x 64 queries) score block at a time is computed with queries in SIMD lanes ("transposed" scores,
// so row maxima and sums are vertical, no horizontal reductions), turned into probabilities with an online
// softmax (forward) or from the saved lse (backward), and multiplied into fp32 accumulators. Each batch element
// is first split into per-head, zero-padded rows by one streaming pass over its rows, then packed into the
// layouts the microkernels stream. D is padded to a multiple of 16 and T to a multiple of 64 (padding
// contributes exact zeros), so any T >= 1 and 1 <= D <= 256 take the same path. Within a batch element the
// forward is parallel over (head, query tile) and the backward over heads: a backward task owns its head's
// dq accumulator and loops key tiles outer (dk, dv accumulate per key tile) and query tiles inner, so it is
// race free without atomics. Statistics and accumulators are fp32 on every path.
//
// Paths, picked at run time from ActiveIsa() (the file is compiled for baseline x86-64; only functions with a
// target attribute use AVX-512):
//   Avx512Bf16: bf16 tensors; products with vdpbf16ps on bf16 pairs. P and dS are rounded to bf16 for their
//               second product, as GPU flash attention does. f32 tensors take the Avx512 path at this level.
//   Avx512:     fp32 FMA; bf16 tensors are widened to fp32 when packed.
//   Scalar:     plain C++ (auto-vectorised at the baseline ISA); also used at the Avx2 level.
// The op registration (attentionForward / attentionBackward) is at the bottom of the file.
// Limits: the backward runs at most H tasks at a time, so with H < threads some cores idle. Scratch, about
// 5*H*T*D elements plus 6*T*D per thread, is cached per calling thread and kept at its largest size; the
// entry points throw PtError (engine) only when it cannot be allocated.
#include "attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

#include "../cpu.h"
#include "../op.h"
#include "ops.h"
#ifdef _OPENMP
#include <omp.h>
#endif

// GCC 12's AVX-512 headers trip -W(maybe-)uninitialized through _mm512_undefined_* (GCC bug 105593).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#define PT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma")))
#define PT_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))
#define PT_INLINE inline __attribute__((always_inline))

namespace pt {
namespace {

constexpr int kTile = 64;   // queries per query tile and keys per key tile; tiles start at multiples of 64
constexpr int kLanes = 16;  // fp32 lanes of a 512-bit vector; packed layouts group 16 rows

inline int RoundUp(int x, int m) { return (x + m - 1) / m * m; }

inline int ThreadId() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Scratch memory, cached per calling thread and grown to the largest call: a fresh multi-megabyte
// allocation per call costs more in page faults than the attention itself at training sizes.
class Scratch {
 public:
  // Room for `bytes`; pointers from earlier calls are invalidated.
  char* Reserve(size_t bytes) {
    if (bytes > size_) {
      std::unique_ptr<char[]> fresh(new (std::nothrow) char[bytes + 64]);
      PT_CHECK_ENGINE(fresh != nullptr, "attention: cannot allocate ", bytes, " bytes of scratch memory");
      buf_ = std::move(fresh);
      size_ = bytes;
    }
    return buf_.get() + (64 - reinterpret_cast<uintptr_t>(buf_.get()) % 64) % 64;
  }

 private:
  std::unique_ptr<char[]> buf_;
  size_t size_ = 0;
};

// Carves 64-byte aligned typed regions out of one reservation.
class Carver {
 public:
  template <class X>
  X* Take(size_t n) {
    X* p = reinterpret_cast<X*>(base_ ? base_ + used_ : nullptr);
    used_ += (n * sizeof(X) + 63) / 64 * 64;
    return p;
  }
  size_t used() const { return used_; }
  void Bind(char* base) { base_ = base, used_ = 0; }

 private:
  char* base_ = nullptr;
  size_t used_ = 0;
};

thread_local Scratch tScratch;

// Conversions between tensor elements and packed elements (f32 or bf16).
template <class E>
inline E FromF32(float x);
template <>
inline float FromF32<float>(float x) { return x; }
template <>
inline bf16 FromF32<bf16>(float x) { return F32ToBf16(x); }
template <class E, class T>
inline E Convert(T x) {
  if constexpr (std::is_same_v<E, T>) return x;
  else return FromF32<E>(Ld(&x));
}

// ---- Packing (per head) ----
// A "word" is P packed elements: one f32 (P = 1), or two bf16 (P = 2) that vdpbf16ps multiplies as a pair.
// Every layout is built from zero-padded rows (np, Dp). The portable versions below serve the scalar path;
// the AVX-512 paths have vector twins further down (per-row library calls and scalar gathers cost more
// than the attention math at small D).

// Split rows of a (n, parts*H*D) slice (rows rs elements apart) into per-head zero-padded rows: part p, head h
// of row t goes to rows + p*ps + h*hs + t*Dp; rows n..np-1 are zero. Reads whole input rows in order, so the
// hardware prefetcher streams them (per-head strided reads are bound by memory latency).
template <class E, class T>
void LoadHeadsPortable(E* rows, size_t ps, size_t hs, const T* src, long rs, int n, int np, int parts, int H,
                       int D, int Dp) {
  for (int t = 0; t < np; t++)
    for (int ph = 0; ph < parts * H; ph++) {
      E* dst = rows + (ph / H) * ps + (ph % H) * hs + size_t(t) * Dp;
      const T* row = src + t * rs + ph * D;
      for (int d = 0; d < Dp; d++) dst[d] = t < n && d < D ? Convert<E>(row[d]) : E(0);
    }
}

// lanes (np/16, Dp/P, 16, P): 16 rows side by side in lanes, one word per lane (scores operand).
template <class E>
void TransposePortable(E* lanes, const E* rows, int np, int Dp) {
  constexpr int P = sizeof(E) == 2 ? 2 : 1;
  const int kw = Dp / P;
  const uint32_t* in = reinterpret_cast<const uint32_t*>(rows);
  uint32_t* out = reinterpret_cast<uint32_t*>(lanes);
  for (int blk = 0; blk < np / kLanes; blk++) {
    const uint32_t* src = in + size_t(blk) * kLanes * kw;
    uint32_t* dst = out + size_t(blk) * kLanes * kw;
    for (int w = 0; w < kw; w++)
      for (int l = 0; l < kLanes; l++) dst[w * kLanes + l] = src[l * kw + w];
  }
}

// di[h*ds + t] = a_t . b_t over head h's D columns, for (n, H*D) slices with rows rs apart.
template <class T>
void RowDotsHeadsPortable(float* di, size_t ds, const T* a, const T* b, long rs, int n, int H, int D) {
  for (int t = 0; t < n; t++)
    for (int h = 0; h < H; h++) {
      float acc = 0;
      for (int d = 0; d < D; d++) acc += Ld(a + t * rs + h * D + d) * Ld(b + t * rs + h * D + d);
      di[h * ds + t] = acc;
    }
}

// dst (n, D) rows rs apart = src (n, lds) f32 times rowScale (if given), rounded to T.
template <class T>
void StoreRowsPortable(T* dst, long rs, const float* src, int lds, const float* rowScale, int n, int D) {
  for (int t = 0; t < n; t++) {
    const float sc = rowScale ? rowScale[t] : 1.0f;
    for (int d = 0; d < D; d++) St(dst + t * rs + d, src[size_t(t) * lds + d] * sc);
  }
}

// ---- Paths ----
// Each path provides, over one (64 keys x 64 queries) block:
//   Scores(s, a, b, kw, diag): s (64, 64) f32, s[r][c] = sum_w a[r][w] . b[c/16][w][c%16] over kw words;
//     a (64, kw) words, b (4, kw, 16) words. diag: the key and query tiles coincide, and entries with r > c
//     (masked) may be left unwritten.
//   Accum(c, ldc, rowScale, a, ars, aks, b, ldb, kw, n, causal): c (64, n) f32 rows ldc apart,
//     c[r][:] = rowScale[r] * c[r][:] (if rowScale) + sum_w a(r, w) . b[w][:n], a(r, w) the word at
//     r*ars + w*aks, b (kw, ldb) words. causal 1: a(r, w) = 0 for words past row r (skipped);
//     causal 2: a(r, w) = 0 for words before row r.
//   SoftmaxStep(p, s, m, l, alpha, scale, slope, delta, diag): online-softmax update for query tile stats
//     m, l (64) from raw dot products s (64 keys, 64 queries); writes probabilities p (64/P, 64, P) and the
//     factor alpha (64) that rescales earlier output. delta = first key - first query.
//   GradStep(pt, dst, dsp, s, dp, lse, di, scale, slope, delta, diag): from raw s and dp = dout.v (64 keys,
//     64 queries) writes P^T and dS^T (64, 64) row major and dS^T as (64/P, 64, P) (dS pairs over keys),
//     dS already multiplied by `scale`.
// and the packing steps LoadHeads, Transpose (rows -> lanes), RowDotsHeads and StoreRows with the contracts of
// the portable versions above, plus Interleave (rows -> pairs) on the bf16 path.

// ----- Scalar -----
struct ScalarPath {
  using E = float;
  static constexpr int kPair = 1;

  template <class T>
  static void LoadHeads(float* rows, size_t ps, size_t hs, const T* src, long rs, int n, int np, int parts, int H,
                        int D, int Dp) {
    LoadHeadsPortable(rows, ps, hs, src, rs, n, np, parts, H, D, Dp);
  }
  static void Transpose(float* lanes, const float* rows, int np, int Dp) { TransposePortable(lanes, rows, np, Dp); }
  template <class T>
  static void RowDotsHeads(float* di, size_t ds, const T* a, const T* b, long rs, int n, int H, int D) {
    RowDotsHeadsPortable(di, ds, a, b, rs, n, H, D);
  }
  template <class T>
  static void StoreRows(T* dst, long rs, const float* src, int lds, const float* rowScale, int n, int D) {
    StoreRowsPortable(dst, rs, src, lds, rowScale, n, D);
  }

  static void Scores(float* s, const float* a, const float* b, int kw, bool diag) {
    for (int r = 0; r < kTile; r++) {
      for (int v = diag ? r / kLanes : 0; v < kTile / kLanes; v++) {
        float acc[kLanes] = {};
        for (int w = 0; w < kw; w++) {
          const float av = a[size_t(r) * kw + w];
          const float* bw = b + (size_t(v) * kw + w) * kLanes;
          for (int l = 0; l < kLanes; l++) acc[l] += av * bw[l];
        }
        std::memcpy(s + r * kTile + v * kLanes, acc, sizeof(acc));
      }
    }
  }

  static void Accum(float* c, int ldc, const float* rowScale, const float* a, long ars, long aks,
                    const float* b, int ldb, int kw, int n, int causal) {
    for (int r = 0; r < kTile; r++) {
      float* cr = c + size_t(r) * ldc;
      if (rowScale)
        for (int d = 0; d < n; d++) cr[d] *= rowScale[r];
      const int w0 = causal == 2 ? r : 0, w1 = causal == 1 ? std::min(kw, r + 1) : kw;
      for (int w = w0; w < w1; w++) {
        const float av = a[r * ars + w * aks];
        const float* bw = b + size_t(w) * ldb;
        for (int d = 0; d < n; d++) cr[d] += av * bw[d];
      }
    }
  }

  static void SoftmaxStep(float* p, float* s, float* m, float* l, float* alpha, float scale, float slope,
                          int delta, bool diag) {
    const float ninf = -std::numeric_limits<float>::infinity();
    for (int c = 0; c < kTile; c++) {
      float mx = m[c];
      for (int r = 0; r < kTile; r++) {
        float x = diag && r > c ? ninf : s[r * kTile + c] * scale + slope * float(delta + r - c);
        s[r * kTile + c] = x;
        mx = std::max(mx, x);
      }
      float sum = 0;
      for (int r = 0; r < kTile; r++) {
        const float e = std::exp(s[r * kTile + c] - mx);
        p[r * kTile + c] = e;
        sum += e;
      }
      alpha[c] = std::exp(m[c] - mx);
      l[c] = l[c] * alpha[c] + sum;
      m[c] = mx;
    }
  }

  static void GradStep(float* pt, float* dst, float* dsp, const float* s, const float* dp, const float* lse,
                       const float* di, float scale, float slope, int delta, bool diag) {
    for (int r = 0; r < kTile; r++) {
      for (int c = 0; c < kTile; c++) {
        float pv = 0, ds = 0;
        if (!(diag && r > c)) {
          pv = std::exp(s[r * kTile + c] * scale + slope * float(delta + r - c) - lse[c]);
          ds = pv * (dp[r * kTile + c] - di[c]) * scale;
        }
        pt[r * kTile + c] = pv;
        dst[r * kTile + c] = ds;
        dsp[r * kTile + c] = ds;
      }
    }
  }
};

// ----- AVX-512 helpers (inlined into both AVX-512 paths) -----

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

// x rounded to bf16 (nearest even) in the upper 16 bits of each 32-bit lane; finite inputs. For outputs.
PT_AVX512 PT_INLINE __m512i RoundBf16Hi(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  return _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff)));
}

// The same with ties away from zero, one instruction: for the intermediate P and dS operands only, where an
// exact tie (the low 16 bits exactly 0x8000) is vanishingly rare.
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

// Online softmax step shared by both AVX-512 paths (E = packed element of the probabilities).
template <class E>
PT_AVX512 PT_INLINE void SoftmaxStep512(E* p, float* s, float* m, float* l, float* alpha, float scale,
                                        float slope, int delta, bool diag) {
  constexpr int P = sizeof(E) == 2 ? 2 : 1;
  const __m512 vscale = _mm512_set1_ps(scale), vslope = _mm512_set1_ps(slope);
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512i lanei = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int c0 = 0; c0 < kTile; c0 += kLanes) {
    // key r vs query c0 + lane: j - i = delta + r - c0 - lane (small integers, exact in fp32)
    const __m512 rel0 = _mm512_sub_ps(_mm512_set1_ps(float(delta - c0)), LaneIndex());
    const int rEnd = diag ? c0 + kLanes : kTile;  // rows past rEnd are masked for every lane
    const __m512 mOld = _mm512_loadu_ps(m + c0);
    __m512 mx0 = mOld, mx1 = mOld;
    for (int r = 0; r < rEnd; r++) {
      const __m512 rel = _mm512_add_ps(rel0, _mm512_set1_ps(float(r)));
      __m512 x = _mm512_fmadd_ps(rel, vslope, _mm512_mul_ps(_mm512_loadu_ps(s + r * kTile + c0), vscale));
      if (diag) {
        const __mmask16 keep = _mm512_cmp_epi32_mask(lanei, _mm512_set1_epi32(r - c0), _MM_CMPINT_NLT);
        x = _mm512_mask_mov_ps(ninf, keep, x);
      }
      _mm512_storeu_ps(s + r * kTile + c0, x);
      if (r & 1) mx1 = _mm512_max_ps(mx1, x);
      else mx0 = _mm512_max_ps(mx0, x);
    }
    const __m512 mx = _mm512_max_ps(mx0, mx1);
    __m512 sum0 = _mm512_setzero_ps(), sum1 = _mm512_setzero_ps();
    for (int r = 0; r < kTile; r += 2) {
      __m512 e0 = _mm512_setzero_ps(), e1 = _mm512_setzero_ps();
      if (r < rEnd) {
        e0 = Exp512(_mm512_sub_ps(_mm512_loadu_ps(s + r * kTile + c0), mx));
        e1 = Exp512(_mm512_sub_ps(_mm512_loadu_ps(s + (r + 1) * kTile + c0), mx));
        sum0 = _mm512_add_ps(sum0, e0);
        sum1 = _mm512_add_ps(sum1, e1);
      }
      if constexpr (P == 2) {
        StorePair(p + ((r / 2) * kTile + c0) * 2, e0, e1);
      } else {
        _mm512_storeu_ps(p + r * kTile + c0, e0);
        _mm512_storeu_ps(p + (r + 1) * kTile + c0, e1);
      }
    }
    const __m512 a = Exp512(_mm512_sub_ps(mOld, mx));
    _mm512_storeu_ps(alpha + c0, a);
    _mm512_storeu_ps(l + c0, _mm512_fmadd_ps(_mm512_loadu_ps(l + c0), a, _mm512_add_ps(sum0, sum1)));
    _mm512_storeu_ps(m + c0, mx);
  }
}

// Backward elementwise step shared by both AVX-512 paths: two key rows x 64 queries at a time.
template <class E>
PT_AVX512 PT_INLINE void GradStep512(E* pt, E* dst, E* dsp, const float* s, const float* dp, const float* lse,
                                     const float* di, float scale, float slope, int delta, bool diag) {
  const __m512 vscale = _mm512_set1_ps(scale), vslope = _mm512_set1_ps(slope);
  const __m512i lanei = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512 rel0[4], vlse[4], vdi[4];
  for (int v = 0; v < 4; v++) {
    rel0[v] = _mm512_sub_ps(_mm512_set1_ps(float(delta - v * kLanes)), LaneIndex());
    vlse[v] = _mm512_loadu_ps(lse + v * kLanes);
    vdi[v] = _mm512_loadu_ps(di + v * kLanes);
  }
  for (int r = 0; r < kTile; r += 2) {
    __m512 pv[2][4], ds[2][4];
    for (int k = 0; k < 2; k++) {
      const int rr = r + k;
      const __m512 rowRel = _mm512_set1_ps(float(rr));
      for (int v = 0; v < 4; v++) {
        pv[k][v] = ds[k][v] = _mm512_setzero_ps();
        if (diag && rr >= (v + 1) * kLanes) continue;  // every query of this vector is before key rr
        const float* sp = s + rr * kTile + v * kLanes;
        const __m512 rel = _mm512_add_ps(rel0[v], rowRel);
        const __m512 x = _mm512_fmadd_ps(rel, vslope, _mm512_mul_ps(_mm512_loadu_ps(sp), vscale));
        const __m512 g = _mm512_mul_ps(_mm512_sub_ps(_mm512_loadu_ps(dp + rr * kTile + v * kLanes), vdi[v]), vscale);
        pv[k][v] = Exp512(_mm512_sub_ps(x, vlse[v]));
        if (diag) {  // masked entries may hold garbage in s and dp: select, never multiply
          const __mmask16 keep = _mm512_cmp_epi32_mask(lanei, _mm512_set1_epi32(rr - v * kLanes), _MM_CMPINT_NLT);
          pv[k][v] = _mm512_maskz_mov_ps(keep, pv[k][v]);
          ds[k][v] = _mm512_maskz_mul_ps(keep, pv[k][v], g);
        } else {
          ds[k][v] = _mm512_mul_ps(pv[k][v], g);
        }
      }
      Store32(pt + rr * kTile, pv[k][0], pv[k][1]);
      Store32(pt + rr * kTile + 32, pv[k][2], pv[k][3]);
      Store32(dst + rr * kTile, ds[k][0], ds[k][1]);
      Store32(dst + rr * kTile + 32, ds[k][2], ds[k][3]);
    }
    if constexpr (sizeof(E) == 2) {
      for (int v = 0; v < 4; v++) StorePair(dsp + ((r / 2) * kTile + v * kLanes) * 2, ds[0][v], ds[1][v]);
    } else {
      Store32(dsp + r * kTile, ds[0][0], ds[0][1]);
      Store32(dsp + r * kTile + 32, ds[0][2], ds[0][3]);
      Store32(dsp + (r + 1) * kTile, ds[1][0], ds[1][1]);
      Store32(dsp + (r + 1) * kTile + 32, ds[1][2], ds[1][3]);
    }
  }
}

// ----- AVX-512 packing (shared by both AVX-512 paths) -----

// The first n lanes (none for n <= 0).
PT_AVX512 PT_INLINE __mmask16 TailMask16(int n) {
  return n >= 16 ? __mmask16(0xffff) : n <= 0 ? __mmask16(0) : __mmask16((1u << n) - 1);
}
PT_AVX512 PT_INLINE __mmask32 TailMask32(int n) {
  return n >= 32 ? __mmask32(~0u) : n <= 0 ? __mmask32(0) : __mmask32((1u << n) - 1);
}

PT_AVX512 PT_INLINE __m512 Load16(const float* p, __mmask16 k) { return _mm512_maskz_loadu_ps(k, p); }
PT_AVX512 PT_INLINE __m512 Load16(const bf16* p, __mmask16 k) {
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(k, p)), 16));
}
PT_AVX512 PT_INLINE void Store16(float* p, __mmask16 k, __m512 x) { _mm512_mask_storeu_ps(p, k, x); }
PT_AVX512 PT_INLINE void Store16(bf16* p, __mmask16 k, __m512 x) {  // nearest even, NaN stays NaN
  __m512i h = _mm512_srli_epi32(RoundBf16Hi(x), 16);
  const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
  h = _mm512_mask_or_epi32(h, nan, _mm512_srli_epi32(_mm512_castps_si512(x), 16), _mm512_set1_epi32(0x40));
  _mm256_mask_storeu_epi16(p, k, _mm512_cvtepi32_epi16(h));
}

template <class E, class T>
PT_AVX512 PT_INLINE void LoadHeads512(E* rows, size_t ps, size_t hs, const T* src, long rs, int n, int np,
                                      int parts, int H, int D, int Dp) {
  static_assert(std::is_same_v<E, T> || std::is_same_v<E, float>, "bf16 packing needs bf16 tensors");
  for (int t = 0; t < np; t++)
    for (int ph = 0; ph < parts * H; ph++) {
      E* dst = rows + (ph / H) * ps + (ph % H) * hs + size_t(t) * Dp;
      const T* row = src + t * rs + ph * D;
      const int valid = t < n ? D : 0;
      if constexpr (std::is_same_v<E, bf16>) {  // bf16 -> bf16: 32 at a time
        for (int c0 = 0; c0 < Dp; c0 += 32) {
          const __m512i x = _mm512_maskz_loadu_epi16(TailMask32(valid - c0), row + c0);
          if (Dp - c0 >= 32) _mm512_storeu_si512(dst + c0, x);
          else _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + c0), _mm512_castsi512_si256(x));
        }
      } else {
        for (int c0 = 0; c0 < Dp; c0 += 16) _mm512_storeu_ps(dst + c0, Load16(row + c0, TailMask16(valid - c0)));
      }
    }
}

template <class E>
PT_AVX512 PT_INLINE void Transpose512(E* lanes, const E* rows, int np, int Dp) {
  constexpr int P = sizeof(E) == 2 ? 2 : 1;
  const int kw = Dp / P;
  const __m512i idx = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                         _mm512_set1_epi32(kw));
  for (int blk = 0; blk < np / kLanes; blk++) {
    const E* src = rows + size_t(blk) * kLanes * Dp;
    E* dst = lanes + size_t(blk) * kLanes * Dp;
    for (int w = 0; w < kw; w++)
      _mm512_storeu_si512(dst + w * kLanes * P, _mm512_i32gather_epi32(idx, src + w * P, 4));
  }
}

template <class T>
PT_AVX512 PT_INLINE void RowDotsHeads512(float* di, size_t ds, const T* a, const T* b, long rs, int n, int H,
                                         int D) {
  for (int t = 0; t < n; t++)
    for (int h = 0; h < H; h++) {
      const T* ar = a + t * rs + h * D;
      const T* br = b + t * rs + h * D;
      __m512 acc = _mm512_setzero_ps();
      for (int c0 = 0; c0 < D; c0 += 16) {
        const __mmask16 k = TailMask16(D - c0);
        acc = _mm512_fmadd_ps(Load16(ar + c0, k), Load16(br + c0, k), acc);
      }
      di[h * ds + t] = _mm512_reduce_add_ps(acc);
    }
}

template <class T>
PT_AVX512 PT_INLINE void StoreRows512(T* dst, long rs, const float* src, int lds, const float* rowScale, int n,
                                      int D) {
  for (int t = 0; t < n; t++) {
    const __m512 sc = _mm512_set1_ps(rowScale ? rowScale[t] : 1.0f);
    for (int c0 = 0; c0 < D; c0 += 16)
      Store16(dst + t * rs + c0, TailMask16(D - c0), _mm512_mul_ps(_mm512_loadu_ps(src + size_t(t) * lds + c0), sc));
  }
}

// Members every AVX-512 path shares (TARGET: the path's target attribute).
#define PT_AVX512_PACKING(TARGET)                                                                              \
  template <class T>                                                                                           \
  TARGET static void LoadHeads(E* rows, size_t ps, size_t hs, const T* src, long rs, int n, int np, int parts,  \
                               int H, int D, int Dp) {                                                         \
    LoadHeads512(rows, ps, hs, src, rs, n, np, parts, H, D, Dp);                                               \
  }                                                                                                            \
  TARGET static void Transpose(E* lanes, const E* rows, int np, int Dp) { Transpose512(lanes, rows, np, Dp); } \
  template <class T>                                                                                           \
  TARGET static void RowDotsHeads(float* di, size_t ds, const T* a, const T* b, long rs, int n, int H, int D) { \
    RowDotsHeads512(di, ds, a, b, rs, n, H, D);                                                                \
  }                                                                                                            \
  template <class T>                                                                                           \
  TARGET static void StoreRows(T* dst, long rs, const float* src, int lds, const float* rowScale, int n,        \
                               int D) {                                                                        \
    StoreRows512(dst, rs, src, lds, rowScale, n, D);                                                           \
  }

inline int32_t LoadWord(const void* p) {
  int32_t w;
  std::memcpy(&w, p, 4);
  return w;
}

// ----- AVX-512 fp32 FMA -----
struct Avx512Path {
  using E = float;
  static constexpr int kPair = 1;
  PT_AVX512_PACKING(PT_AVX512)

  // 4 key rows x (4 - V0) query vectors; query vectors below V0 are fully masked on the diagonal.
  template <int V0>
  PT_AVX512 PT_INLINE static void ScoresTile(float* s, const float* a, const float* b, int kw) {
    constexpr int NV = 4 - V0;
    __m512 acc[4][NV];
    for (int r = 0; r < 4; r++)
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int w = 0; w < kw; w++) {
      __m512 bv[NV];
      for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + (size_t(V0 + v) * kw + w) * kLanes);
      for (int r = 0; r < 4; r++) {
        const __m512 av = _mm512_set1_ps(a[size_t(r) * kw + w]);
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
      }
    }
    for (int r = 0; r < 4; r++)
      for (int v = 0; v < NV; v++) _mm512_storeu_ps(s + r * kTile + (V0 + v) * kLanes, acc[r][v]);
  }

  PT_AVX512 static void Scores(float* s, const float* a, const float* b, int kw, bool diag) {
    for (int r0 = 0; r0 < kTile; r0 += 4) {
      const float* ar = a + size_t(r0) * kw;
      float* sr = s + r0 * kTile;
      switch (diag ? r0 / kLanes : 0) {
        case 0: ScoresTile<0>(sr, ar, b, kw); break;
        case 1: ScoresTile<1>(sr, ar, b, kw); break;
        case 2: ScoresTile<2>(sr, ar, b, kw); break;
        default: ScoresTile<3>(sr, ar, b, kw); break;
      }
    }
  }

  template <int NV>
  PT_AVX512 PT_INLINE static void AccumTile(float* c, int ldc, const float* rowScale, const float* a, long ars,
                                            long aks, const float* b, int ldb, int w0, int w1) {
    __m512 acc[4][NV];
    for (int r = 0; r < 4; r++) {
      const __m512 sc = _mm512_set1_ps(rowScale ? rowScale[r] : 1.0f);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_mul_ps(_mm512_loadu_ps(c + r * ldc + v * kLanes), sc);
    }
    for (int w = w0; w < w1; w++) {
      __m512 bv[NV];
      for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_ps(b + size_t(w) * ldb + v * kLanes);
      for (int r = 0; r < 4; r++) {
        const __m512 av = _mm512_set1_ps(a[r * ars + w * aks]);
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
      }
    }
    for (int r = 0; r < 4; r++)
      for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * ldc + v * kLanes, acc[r][v]);
  }

  PT_AVX512 static void Accum(float* c, int ldc, const float* rowScale, const float* a, long ars, long aks,
                              const float* b, int ldb, int kw, int n, int causal) {
    for (int r0 = 0; r0 < kTile; r0 += 4) {
      const int w0 = causal == 2 ? r0 : 0, w1 = causal == 1 ? std::min(kw, r0 + 4) : kw;
      const float* ar = a + r0 * ars;
      const float* rs = rowScale ? rowScale + r0 : nullptr;
      for (int c0 = 0; c0 < n; c0 += 4 * kLanes) {
        float* cr = c + size_t(r0) * ldc + c0;
        switch (std::min(4, (n - c0) / kLanes)) {
          case 1: AccumTile<1>(cr, ldc, rs, ar, ars, aks, b + c0, ldb, w0, w1); break;
          case 2: AccumTile<2>(cr, ldc, rs, ar, ars, aks, b + c0, ldb, w0, w1); break;
          case 3: AccumTile<3>(cr, ldc, rs, ar, ars, aks, b + c0, ldb, w0, w1); break;
          default: AccumTile<4>(cr, ldc, rs, ar, ars, aks, b + c0, ldb, w0, w1); break;
        }
      }
    }
  }

  PT_AVX512 static void SoftmaxStep(float* p, float* s, float* m, float* l, float* alpha, float scale,
                                    float slope, int delta, bool diag) {
    SoftmaxStep512<float>(p, s, m, l, alpha, scale, slope, delta, diag);
  }

  PT_AVX512 static void GradStep(float* pt, float* dst, float* dsp, const float* s, const float* dp,
                                 const float* lse, const float* di, float scale, float slope, int delta,
                                 bool diag) {
    GradStep512<float>(pt, dst, dsp, s, dp, lse, di, scale, slope, delta, diag);
  }
};

// ----- AVX-512 BF16: vdpbf16ps on bf16 pairs, fp32 accumulators -----
struct Bf16Path {
  using E = bf16;
  static constexpr int kPair = 2;
  PT_AVX512_PACKING(PT_AVX512BF16)

  // pairs (np/2, Dp, 2): rows 2m and 2m+1 interleaved per column.
  PT_AVX512BF16 static void Interleave(bf16* pairs, const bf16* rows, int np, int Dp) {
    const __m512i lo = _mm512_setr_epi32(0x200000, 0x210001, 0x220002, 0x230003, 0x240004, 0x250005, 0x260006,
                                         0x270007, 0x280008, 0x290009, 0x2a000a, 0x2b000b, 0x2c000c, 0x2d000d,
                                         0x2e000e, 0x2f000f);  // (r0[d], r1[d]) for d = 0..15
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    for (int m = 0; m < np / 2; m++) {
      const bf16* r0 = rows + size_t(2 * m) * Dp;
      bf16* dst = pairs + size_t(2 * m) * Dp;
      for (int c0 = 0; c0 < Dp; c0 += 32) {
        const __mmask32 k = TailMask32(Dp - c0);
        const __m512i a = _mm512_maskz_loadu_epi16(k, r0 + c0), b = _mm512_maskz_loadu_epi16(k, r0 + Dp + c0);
        _mm512_storeu_si512(dst + 2 * c0, _mm512_permutex2var_epi16(a, lo, b));
        if (Dp - c0 > 16) _mm512_storeu_si512(dst + 2 * c0 + 32, _mm512_permutex2var_epi16(a, hi, b));
      }
    }
  }

  PT_AVX512BF16 PT_INLINE static __m512 Dot(__m512 acc, __m512i a, __m512i b) {
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
  }

  template <int V0>
  PT_AVX512BF16 PT_INLINE static void ScoresTile(float* s, const bf16* a, const bf16* b, int kw) {
    constexpr int NV = 4 - V0;
    __m512 acc[4][NV];
    for (int r = 0; r < 4; r++)
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int w = 0; w < kw; w++) {
      __m512i bv[NV];
      for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_si512(b + ((size_t(V0 + v) * kw + w) * kLanes) * 2);
      for (int r = 0; r < 4; r++) {
        const __m512i av = _mm512_set1_epi32(LoadWord(a + (size_t(r) * kw + w) * 2));
        for (int v = 0; v < NV; v++) acc[r][v] = Dot(acc[r][v], av, bv[v]);
      }
    }
    for (int r = 0; r < 4; r++)
      for (int v = 0; v < NV; v++) _mm512_storeu_ps(s + r * kTile + (V0 + v) * kLanes, acc[r][v]);
  }

  PT_AVX512BF16 static void Scores(float* s, const bf16* a, const bf16* b, int kw, bool diag) {
    for (int r0 = 0; r0 < kTile; r0 += 4) {
      const bf16* ar = a + size_t(r0) * kw * 2;
      float* sr = s + r0 * kTile;
      switch (diag ? r0 / kLanes : 0) {
        case 0: ScoresTile<0>(sr, ar, b, kw); break;
        case 1: ScoresTile<1>(sr, ar, b, kw); break;
        case 2: ScoresTile<2>(sr, ar, b, kw); break;
        default: ScoresTile<3>(sr, ar, b, kw); break;
      }
    }
  }

  template <int NV>
  PT_AVX512BF16 PT_INLINE static void AccumTile(float* c, int ldc, const float* rowScale, const bf16* a,
                                                long ars, long aks, const bf16* b, int ldb, int w0, int w1) {
    __m512 acc[4][NV];
    for (int r = 0; r < 4; r++) {
      const __m512 sc = _mm512_set1_ps(rowScale ? rowScale[r] : 1.0f);
      for (int v = 0; v < NV; v++) acc[r][v] = _mm512_mul_ps(_mm512_loadu_ps(c + r * ldc + v * kLanes), sc);
    }
    for (int w = w0; w < w1; w++) {
      __m512i bv[NV];
      for (int v = 0; v < NV; v++) bv[v] = _mm512_loadu_si512(b + (size_t(w) * ldb + v * kLanes) * 2);
      for (int r = 0; r < 4; r++) {
        const __m512i av = _mm512_set1_epi32(LoadWord(a + (r * ars + w * aks) * 2));
        for (int v = 0; v < NV; v++) acc[r][v] = Dot(acc[r][v], av, bv[v]);
      }
    }
    for (int r = 0; r < 4; r++)
      for (int v = 0; v < NV; v++) _mm512_storeu_ps(c + r * ldc + v * kLanes, acc[r][v]);
  }

  PT_AVX512BF16 static void Accum(float* c, int ldc, const float* rowScale, const bf16* a, long ars, long aks,
                                  const bf16* b, int ldb, int kw, int n, int causal) {
    for (int r0 = 0; r0 < kTile; r0 += 4) {
      const int w0 = causal == 2 ? r0 / 2 : 0, w1 = causal == 1 ? std::min(kw, (r0 + 3) / 2 + 1) : kw;
      const bf16* ar = a + r0 * ars * 2;
      const float* rs = rowScale ? rowScale + r0 : nullptr;
      for (int c0 = 0; c0 < n; c0 += 4 * kLanes) {
        float* cr = c + size_t(r0) * ldc + c0;
        const bf16* bc = b + c0 * 2;
        switch (std::min(4, (n - c0) / kLanes)) {
          case 1: AccumTile<1>(cr, ldc, rs, ar, ars, aks, bc, ldb, w0, w1); break;
          case 2: AccumTile<2>(cr, ldc, rs, ar, ars, aks, bc, ldb, w0, w1); break;
          case 3: AccumTile<3>(cr, ldc, rs, ar, ars, aks, bc, ldb, w0, w1); break;
          default: AccumTile<4>(cr, ldc, rs, ar, ars, aks, bc, ldb, w0, w1); break;
        }
      }
    }
  }

  PT_AVX512BF16 static void SoftmaxStep(bf16* p, float* s, float* m, float* l, float* alpha, float scale,
                                        float slope, int delta, bool diag) {
    SoftmaxStep512<bf16>(p, s, m, l, alpha, scale, slope, delta, diag);
  }

  PT_AVX512BF16 static void GradStep(bf16* pt, bf16* dst, bf16* dsp, const float* s, const float* dp,
                                     const float* lse, const float* di, float scale, float slope, int delta,
                                     bool diag) {
    GradStep512<bf16>(pt, dst, dsp, s, dp, lse, di, scale, slope, delta, diag);
  }
};

// ---- Drivers (one per direction, shared by every path) ----

// Both drivers take one batch element at a time: a streaming pass splits its rows into per-head padded rows
// (reading whole rows in order: per-head strided reads are bound by memory latency), the heads are then
// packed and processed. Scratch is therefore proportional to one batch element, not the whole batch.
constexpr int kRowChunk = 16;  // rows per task of the streaming pass

template <class Path, class T>
void ForwardImpl(T* out, float* lse, const T* qkv, const float* slopes, int B, int Tn, int H, int D) {
  using E = typename Path::E;
  constexpr int P = Path::kPair;
  const int Dp = RoundUp(D, kLanes), Tp = RoundUp(Tn, kTile), nTiles = Tp / kTile, kw = Dp / P;
  const long C = long(H) * D, rs = 3 * C;  // qkv row stride
  const size_t head = size_t(Tp) * Dp;
  const float scale = 1.0f / std::sqrt(float(D));
  const int nThreads = std::max(1, Threads());
  // Two passes over one layout: the first sizes the reservation, the second binds the pointers.
  Carver cv;
  E *qRows, *kRows, *vRows, *qLanes, *vPairs, *pBuf;
  float *sBuf, *oBuf, *statBuf;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) cv.Bind(tScratch.Reserve(cv.used()));
    qRows = cv.Take<E>(3 * H * head);                          // (3, H, Tp, Dp): q, k, v rows
    kRows = qRows + H * head;
    vRows = kRows + H * head;
    qLanes = cv.Take<E>(H * head);                             // (H, Tp/16, Dp/P, 16, P)
    vPairs = P == 1 ? vRows : cv.Take<E>(H * head);            // (H, Tp/P, Dp, P)
    pBuf = cv.Take<E>(size_t(nThreads) * kTile * kTile);       // per thread (64/P, 64, P)
    sBuf = cv.Take<float>(size_t(nThreads) * kTile * kTile);   // per thread (64 keys, 64 queries)
    oBuf = cv.Take<float>(size_t(nThreads) * kTile * Dp);      // per thread (64, Dp)
    statBuf = cv.Take<float>(size_t(nThreads) * 3 * kTile);    // per thread m, l, alpha (64) each
  }

#pragma omp parallel num_threads(nThreads)
  {
    const int tid = ThreadId();
    E* p = pBuf + size_t(tid) * kTile * kTile;
    float* s = sBuf + size_t(tid) * kTile * kTile;
    float* o = oBuf + size_t(tid) * kTile * Dp;
    float* m = statBuf + size_t(tid) * 3 * kTile;
    float* l = m + kTile;
    float* alpha = l + kTile;
    for (int b = 0; b < B; b++) {
      const T* qkvB = qkv + long(b) * Tn * rs;  // (T, 3, H, D)
#pragma omp for schedule(static)
      for (int t0 = 0; t0 < Tp; t0 += kRowChunk) {
        const int n = std::max(0, std::min(kRowChunk, Tn - t0));
        Path::LoadHeads(qRows + size_t(t0) * Dp, H * head, head, qkvB + (n ? t0 : 0) * rs, rs, n, kRowChunk, 3, H,
                        D, Dp);
      }
#pragma omp for schedule(static)
      for (int h = 0; h < H; h++) {
        Path::Transpose(qLanes + h * head, qRows + h * head, Tp, Dp);
        if constexpr (P == 2) Path::Interleave(vPairs + h * head, vRows + h * head, Tp, Dp);
      }
      // Consecutive tasks share a head, so its packed K and V stay in cache; within a head the largest query
      // tiles (the causal work per tile grows with its index) come first.
#pragma omp for schedule(dynamic, 1)
      for (int task = 0; task < H * nTiles; task++) {
        const int h = task / nTiles, qt = nTiles - 1 - task % nTiles;
        const int q0 = qt * kTile, nq = std::min(kTile, Tn - q0);
        std::fill(m, m + kTile, -std::numeric_limits<float>::infinity());
        std::fill(l, l + kTile, 0.0f);
        std::fill(o, o + size_t(kTile) * Dp, 0.0f);
        for (int kt = 0; kt <= qt; kt++) {
          const bool diag = kt == qt;
          const size_t kOff = h * head + size_t(kt) * kTile * Dp;
          Path::Scores(s, kRows + kOff, qLanes + h * head + size_t(q0) * Dp, kw, diag);
          Path::SoftmaxStep(p, s, m, l, alpha, scale, slopes[h], (kt - qt) * kTile, diag);
          Path::Accum(o, Dp, alpha, p, 1, kTile, vPairs + kOff, Dp, kTile / P, Dp, diag ? 1 : 0);
        }
        const long bh = long(b) * H + h;
        for (int r = 0; r < nq; r++) {
          lse[bh * Tn + q0 + r] = m[r] + std::log(l[r]);
          alpha[r] = 1.0f / l[r];
        }
        Path::StoreRows(out + (long(b) * Tn + q0) * C + long(h) * D, C, o, Dp, alpha, nq, D);
      }
    }
  }
}

template <class Path, class T>
void BackwardImpl(T* dqkv, const T* dout, const T* qkv, const T* out, const float* lse, const float* slopes,
                  int B, int Tn, int H, int D) {
  using E = typename Path::E;
  constexpr int P = Path::kPair;
  const int Dp = RoundUp(D, kLanes), Tp = RoundUp(Tn, kTile), nTiles = Tp / kTile, kw = Dp / P;
  const long C = long(H) * D, rs = 3 * C;
  const size_t head = size_t(Tp) * Dp, blk = size_t(kTile) * kTile;
  const float scale = 1.0f / std::sqrt(float(D));
  const int nThreads = std::max(1, Threads());
  // Per batch element: q, k, v, dout rows of every head and di. Per thread: 5 packed copies of one head,
  // 3 block buffers (64*64), dq, dk, dv, s, dp, lse.
  const size_t packPer = 5 * head + 3 * blk, accPer = head + 2 * kTile * Dp + 2 * blk + 2 * Tp;
  Carver cv;
  E *qRows, *kRows, *vRows, *doRows, *packBuf;
  float *diAll, *accBuf;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) cv.Bind(tScratch.Reserve(cv.used()));
    qRows = cv.Take<E>(3 * H * head);               // (3, H, Tp, Dp): q, k, v rows
    kRows = qRows + H * head;
    vRows = kRows + H * head;
    doRows = cv.Take<E>(H * head);                  // (H, Tp, Dp)
    diAll = cv.Take<float>(size_t(H) * Tp);         // (H, Tp)
    packBuf = cv.Take<E>(nThreads * packPer);
    accBuf = cv.Take<float>(nThreads * accPer);
  }

#pragma omp parallel num_threads(nThreads)
  {
    const int tid = ThreadId();
    E* qLanes = packBuf + tid * packPer;                              // (Tp/16, Dp/P, 16, P)
    E* doLanes = qLanes + head;                                       // (Tp/16, Dp/P, 16, P)
    E* kPairs = doLanes + head;                                       // (Tp/P, Dp, P)
    E* qPairs = kPairs + head;                                        // (Tp/P, Dp, P)
    E* doPairs = qPairs + head;                                       // (Tp/P, Dp, P)
    E* pt = doPairs + head;                                           // (64 keys, 64 queries)
    E* dst = pt + blk;                                                // (64 keys, 64 queries)
    E* dsp = dst + blk;                                               // (64/P, 64 queries, P)
    float* dq = accBuf + tid * accPer;                                // (Tp, Dp)
    float* dk = dq + head;                                            // (64, Dp)
    float* dv = dk + kTile * Dp;                                      // (64, Dp)
    float* s = dv + kTile * Dp;                                       // (64 keys, 64 queries)
    float* dp = s + blk;                                              // (64 keys, 64 queries)
    float* lseP = dp + blk;                                           // (Tp), +inf padding zeroes P
    float* di = lseP + Tp;                                            // (Tp)
    for (int b = 0; b < B; b++) {
      const T* qkvB = qkv + long(b) * Tn * rs;  // (T, 3, H, D)
      const T* doB = dout + long(b) * Tn * C;   // (T, H, D)
      const T* oB = out + long(b) * Tn * C;     // (T, H, D)
#pragma omp for schedule(static)
      for (int t0 = 0; t0 < Tp; t0 += kRowChunk) {
        const int n = std::max(0, std::min(kRowChunk, Tn - t0));
        const long t = n ? t0 : 0;
        Path::LoadHeads(qRows + size_t(t0) * Dp, H * head, head, qkvB + t * rs, rs, n, kRowChunk, 3, H, D, Dp);
        Path::LoadHeads(doRows + size_t(t0) * Dp, 0, head, doB + t * C, C, n, kRowChunk, 1, H, D, Dp);
        Path::RowDotsHeads(diAll + t0, Tp, doB + t * C, oB + t * C, C, n, H, D);
      }
#pragma omp for schedule(dynamic, 1)
      for (int h = 0; h < H; h++) {
        const long bh = long(b) * H + h;
        E* qR = qRows + h * head;
        E* kR = kRows + h * head;
        E* vR = vRows + h * head;
        E* doR = doRows + h * head;
        Path::Transpose(qLanes, qR, Tp, Dp);
        Path::Transpose(doLanes, doR, Tp, Dp);
        const E* kP = kR;
        const E* qP = qR;
        const E* doP = doR;
        if constexpr (P == 2) {
          Path::Interleave(kPairs, kR, Tp, Dp);
          Path::Interleave(qPairs, qR, Tp, Dp);
          Path::Interleave(doPairs, doR, Tp, Dp);
          kP = kPairs, qP = qPairs, doP = doPairs;
        }
        for (int t = 0; t < Tp; t++) {
          di[t] = t < Tn ? diAll[h * Tp + t] : 0.0f;
          lseP[t] = t < Tn ? lse[bh * Tn + t] : std::numeric_limits<float>::infinity();
        }
        std::fill(dq, dq + head, 0.0f);
        for (int kt = 0; kt < nTiles; kt++) {
          std::fill(dk, dk + 2 * kTile * Dp, 0.0f);  // dk and dv
          const size_t kOff = size_t(kt) * kTile * Dp;
          for (int qt = kt; qt < nTiles; qt++) {
            const bool diag = qt == kt;
            const size_t qOff = size_t(qt) * kTile * Dp;
            Path::Scores(s, kR + kOff, qLanes + qOff, kw, diag);
            Path::Scores(dp, vR + kOff, doLanes + qOff, kw, diag);
            Path::GradStep(pt, dst, dsp, s, dp, lseP + qt * kTile, di + qt * kTile, scale, slopes[h],
                           (kt - qt) * kTile, diag);
            Path::Accum(dv, Dp, nullptr, pt, kTile / P, 1, doP + qOff, Dp, kTile / P, Dp, diag ? 2 : 0);
            Path::Accum(dk, Dp, nullptr, dst, kTile / P, 1, qP + qOff, Dp, kTile / P, Dp, diag ? 2 : 0);
            Path::Accum(dq + qOff, Dp, nullptr, dsp, 1, kTile, kP + kOff, Dp, kTile / P, Dp, diag ? 1 : 0);
          }
          const int nk = std::min(kTile, Tn - kt * kTile);
          T* dkRows = dqkv + ((long(b) * Tn + kt * kTile) * 3 + 1) * C + long(h) * D;  // rows 3*C apart
          Path::StoreRows(dkRows, rs, dk, Dp, nullptr, nk, D);
          Path::StoreRows(dkRows + C, rs, dv, Dp, nullptr, nk, D);
        }
        Path::StoreRows(dqkv + (long(b) * Tn * 3) * C + long(h) * D, rs, dq, Dp, nullptr, Tn, D);
      }
    }
  }
}

}  // namespace

void AttentionForwardF32(float* out, float* lse, const float* qkv, const float* slopes, int B, int T, int H,
                         int D) {
  if (ActiveIsa() >= Isa::Avx512) ForwardImpl<Avx512Path>(out, lse, qkv, slopes, B, T, H, D);
  else ForwardImpl<ScalarPath>(out, lse, qkv, slopes, B, T, H, D);
}

void AttentionForwardBf16(bf16* out, float* lse, const bf16* qkv, const float* slopes, int B, int T, int H,
                          int D) {
  const Isa isa = ActiveIsa();
  if (isa >= Isa::Avx512Bf16) ForwardImpl<Bf16Path>(out, lse, qkv, slopes, B, T, H, D);
  else if (isa >= Isa::Avx512) ForwardImpl<Avx512Path>(out, lse, qkv, slopes, B, T, H, D);
  else ForwardImpl<ScalarPath>(out, lse, qkv, slopes, B, T, H, D);
}

void AttentionBackwardF32(float* dqkv, const float* dout, const float* qkv, const float* out, const float* lse,
                          const float* slopes, int B, int T, int H, int D) {
  if (ActiveIsa() >= Isa::Avx512) BackwardImpl<Avx512Path>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
  else BackwardImpl<ScalarPath>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
}

void AttentionBackwardBf16(bf16* dqkv, const bf16* dout, const bf16* qkv, const bf16* out, const float* lse,
                           const float* slopes, int B, int T, int H, int D) {
  const Isa isa = ActiveIsa();
  if (isa >= Isa::Avx512Bf16) BackwardImpl<Bf16Path>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
  else if (isa >= Isa::Avx512) BackwardImpl<Avx512Path>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
  else BackwardImpl<ScalarPath>(dqkv, dout, qkv, out, lse, slopes, B, T, H, D);
}

// ---- Registration: attentionForward(out, lse, qkv, slopes, nHeads) and
//      attentionBackward(dqkv, dout, qkv, out, lse, slopes, nHeads) ----
namespace {

constexpr int64_t kMaxHeadDim = 256;

struct AttnDims {
  int64_t B, T, H, D;
};

// qkv is (B, T, 3*C) or (B, T, 3, H, D); C = H * D with 1 <= D <= 256.
AttnDims QkvDims(const std::string& op, const Tensor& qkv, int64_t nHeads) {
  ExpectFloat(op, "qkv", qkv);
  PT_CHECK_ARG(nHeads >= 1 && nHeads <= (1 << 20), op, ": nHeads must be a positive integer, got ", nHeads);
  PT_CHECK_ARG(qkv.ndim() == 3 || qkv.ndim() == 5, op, ": 'qkv' must be (B, T, 3*C) or (B, T, 3, H, D), got ",
               qkv.Describe());
  const int64_t B = qkv.dim(0), T = qkv.dim(1), threeC = qkv.numel / std::max<int64_t>(1, B * T);
  if (qkv.ndim() == 5)
    PT_CHECK_ARG(qkv.dim(2) == 3 && qkv.dim(3) == nHeads, op, ": 'qkv' must be (B, T, 3, H=", nHeads,
                 ", D), got ", qkv.Describe());
  PT_CHECK_ARG(threeC % (3 * nHeads) == 0, op, ": 'qkv' last dims (", threeC, ") must be 3 * nHeads (", nHeads,
               ") * head dim, got ", qkv.Describe());
  const int64_t D = threeC / (3 * nHeads);
  PT_CHECK_ARG(D >= 1 && D <= kMaxHeadDim, op, ": head dim C / nHeads must be in 1..", kMaxHeadDim, ", got ", D,
               " (qkv ", qkv.Describe(), ", nHeads ", nHeads, ")");
  PT_CHECK_ARG(B <= INT32_MAX && T <= INT32_MAX && B * nHeads <= INT32_MAX, op, ": 'qkv' ", qkv.Describe(),
               " is too large");
  return {B, T, nHeads, D};
}

// attentionForward(out, lse, qkv, slopes, nHeads): out (B, T, C) like qkv; lse (B, H, T) f32; slopes (H) f32.
Kernel BuildAttentionForward(OpArgs& a) {
  Tensor out = a.tensor(0, "out"), lse = a.tensor(1, "lse"), qkv = a.tensor(2, "qkv");
  Tensor slopes = a.tensor(3, "slopes");
  const std::string& op = a.op();
  const AttnDims d = QkvDims(op, qkv, a.integer(4, "nHeads"));
  ExpectSameDType(op, "out", out, "qkv", qkv);
  ExpectDType(op, "lse", lse, DType::F32);
  ExpectDType(op, "slopes", slopes, DType::F32);
  ExpectShape(op, "out", out, {d.B, d.T, d.H * d.D});
  ExpectShape(op, "lse", lse, {d.B, d.H, d.T});
  ExpectShape(op, "slopes", slopes, {d.H});
  const std::pair<const char*, const Tensor*> outputs[] = {{"out", &out}, {"lse", &lse}};
  const std::pair<const char*, const Tensor*> inputs[] = {{"qkv", &qkv}, {"slopes", &slopes}};
  for (const auto& [on, o] : outputs)
    for (const auto& [in, i] : inputs) ExpectNoOverlap(op, on, *o, in, *i);
  ExpectNoOverlap(op, "out", out, "lse", lse);
  return [=]() {
    if (d.B * d.T == 0) return OpResult{};
    if (qkv.dtype == DType::F32)
      AttentionForwardF32(out.ptr<float>(), lse.ptr<float>(), qkv.ptr<float>(), slopes.ptr<float>(), int(d.B),
                          int(d.T), int(d.H), int(d.D));
    else
      AttentionForwardBf16(out.ptr<bf16>(), lse.ptr<float>(), qkv.ptr<bf16>(), slopes.ptr<float>(), int(d.B),
                           int(d.T), int(d.H), int(d.D));
    return OpResult{};
  };
}

// attentionBackward(dqkv, dout, qkv, out, lse, slopes, nHeads): dqkv like qkv (overwritten); dout, out
// (B, T, C) like qkv; lse (B, H, T) f32 from the forward; slopes (H) f32.
Kernel BuildAttentionBackward(OpArgs& a) {
  Tensor dqkv = a.tensor(0, "dqkv"), dout = a.tensor(1, "dout"), qkv = a.tensor(2, "qkv");
  Tensor out = a.tensor(3, "out"), lse = a.tensor(4, "lse"), slopes = a.tensor(5, "slopes");
  const std::string& op = a.op();
  const AttnDims d = QkvDims(op, qkv, a.integer(6, "nHeads"));
  ExpectSameDType(op, "dqkv", dqkv, "qkv", qkv);
  ExpectSameDType(op, "dout", dout, "qkv", qkv);
  ExpectSameDType(op, "out", out, "qkv", qkv);
  ExpectDType(op, "lse", lse, DType::F32);
  ExpectDType(op, "slopes", slopes, DType::F32);
  ExpectShape(op, "dqkv", dqkv, qkv.shape);
  ExpectShape(op, "dout", dout, {d.B, d.T, d.H * d.D});
  ExpectShape(op, "out", out, {d.B, d.T, d.H * d.D});
  ExpectShape(op, "lse", lse, {d.B, d.H, d.T});
  ExpectShape(op, "slopes", slopes, {d.H});
  const std::pair<const char*, const Tensor*> inputs[] = {
      {"dout", &dout}, {"qkv", &qkv}, {"out", &out}, {"lse", &lse}, {"slopes", &slopes}};
  for (const auto& [in, i] : inputs) ExpectNoOverlap(op, "dqkv", dqkv, in, *i);
  return [=]() {
    if (d.B * d.T == 0) return OpResult{};
    if (qkv.dtype == DType::F32)
      AttentionBackwardF32(dqkv.ptr<float>(), dout.ptr<float>(), qkv.ptr<float>(), out.ptr<float>(),
                           lse.ptr<float>(), slopes.ptr<float>(), int(d.B), int(d.T), int(d.H), int(d.D));
    else
      AttentionBackwardBf16(dqkv.ptr<bf16>(), dout.ptr<bf16>(), qkv.ptr<bf16>(), out.ptr<bf16>(),
                            lse.ptr<float>(), slopes.ptr<float>(), int(d.B), int(d.T), int(d.H), int(d.D));
    return OpResult{};
  };
}

}  // namespace

void RegisterAttention(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "attentionForward", BuildAttentionForward);
  RegisterOp(env, exports, "attentionBackward", BuildAttentionBackward);
}

}  // namespace pt
