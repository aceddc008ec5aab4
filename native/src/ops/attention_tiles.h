// attention_tiles.h: what every attention path provides over one (64 keys x 64 queries) block, and the
// portable path (plain C++, auto-vectorised at the baseline ISA). The AVX-512 paths are in attention_avx512.h;
// the drivers that run the tile loops over a sequence, and the design note, are in attention.cc.
// This header and attention_avx512.h are parts of attention.cc, included by it and by no other file, so their
// contents have internal linkage like the rest of it (an unnamed namespace): GCC then specialises the packing
// and block kernels for their call sites (IPA constant propagation) as it did when they were one file, which
// it does not do as freely for functions with external linkage.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "../common.h"

namespace pt {
namespace attention {
namespace {

constexpr int kTile = 64;   // queries per query tile and keys per key tile; tiles start at multiples of 64
constexpr int kLanes = 16;  // fp32 lanes of a 512-bit vector; packed layouts group 16 rows

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

// ---- Paths ----
// A path is a struct of static functions that the drivers (ForwardImpl, BackwardImpl in attention.cc) are
// instantiated over. It names its packed element E (float or bf16) and kPair = P, the elements in one 32-bit
// word (see Packing below), and provides, over one (64 keys x 64 queries) block:
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
// the portable versions below, plus Interleave (rows -> pairs) when P = 2.
// The paths: ScalarPath (below), and Avx512Path and Bf16Path, one template over two word traits
// (attention_avx512.h).

// ---- Packing (per head) ----
// A "word" is P packed elements: one f32 (P = 1), or two bf16 (P = 2) that vdpbf16ps multiplies as a pair.
// Every layout is built from zero-padded rows (np, Dp). The portable versions below serve the scalar path;
// the AVX-512 paths have vector twins in attention_avx512.h (per-row library calls and scalar gathers cost
// more than the attention math at small D).

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

}  // namespace
}  // namespace attention
}  // namespace pt
