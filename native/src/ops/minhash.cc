// minhash.cc: MinHash signatures and LSH band keys of many documents at once, for near-duplicate removal as
// SlimPajama-DC did it (13-code-point shingles, 128 permutations, 9 bands of 13 rows), and the (key, id) sort
// that builds LSH runs. No gradients here: both ops only write their output arrays.
//
//   minhashSignatures(signatures, bandKeys, text, offsets, numPerm, shingleChars, bands, rows, seed)
//     text      (bytes)            u8   UTF-8 of n documents, document i = text[offsets[i], offsets[i+1])
//     offsets   (n + 1)            u32 (text under 4 GiB) or f64 (exact integers, any size); non-decreasing,
//                                       within text; copied before the kernel runs
//     signatures (n, numPerm)      u32
//     bandKeys   (n, bands)        u64
//   sortKeyIds(keys, ids): keys (m) u64, ids (m) u32, sorted together in place by (key, id) ascending
//
// The algorithm is a stored format (signatures and keys are compared across runs and machines), so every
// step below is fixed and the test holds an exact BigInt reference of it:
//  - Code points: every byte that is not a UTF-8 continuation byte (10xxxxxx) starts one, as does the first
//    byte of a document. For valid UTF-8 these are exactly the Unicode code points; invalid input still splits
//    deterministically.
//  - Shingles: every window of shingleChars consecutive code points. A document with fewer code points (but
//    at least one) is a single shingle of all of it.
//  - Shingle hash: HashBytes(window bytes, shingleKey), 64 bits (below).
//  - Permutation i: p_i(h) = a_i * h + b_i mod 2^64 with a_i odd; signatures[i] = the high 32 bits of the
//    minimum of p_i over the document's shingles (equal to the minimum of the high 32 bits).
//  - Band key j: HashBytes(the 4 * rows little-endian bytes of signatures[j*rows, (j+1)*rows), bandKey + j *
//    kBandStep). Keys equal to kEmptyBandKey are moved to kEmptyBandKey - 1.
//  - Empty documents: every signature value is 0xFFFFFFFF (the minimum over no shingles) and every band key
//    is kEmptyBandKey = 2^64 - 1, a key no non-empty document gets: consumers treat it as "in no bucket", so
//    an empty document is never a candidate duplicate of anything (see lib/data/minhash.ts).
//  - Keys: a SplitMix64 stream from the seed (as u64) gives shingleKey (2 words), bandKey (2 words), then
//    (a_i | 1, b_i) for i = 0, 1, ...; so a signature with fewer permutations is a prefix of a longer one.
// Every ISA path and thread count gives the same bits (integer arithmetic, one document per work item).
//
// Speed (Zen 5, one core, English text): ~170 MB/s on the AVX-512 path, 45-50 on AVX2, 8 on baseline x86-64;
// the permutations (16 vpmullq a shingle) are two thirds of the time. Documents are spread over threads
// (OpenMP, dynamic), so one huge document runs on one thread. Limits: numPerm and shingleChars up to 1024;
// the sort needs 12 bytes of scratch per record.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sys/mman.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

#include "../cpu.h"
#include "../op.h"
#include "ops.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "minhash.cc reads bytes as little-endian words");

namespace pt {

namespace {

constexpr uint64_t kEmptyBandKey = ~uint64_t(0);
constexpr uint64_t kLenMul = 0xa2a3747bc883be15ull;  // mixes a window's byte length into the hash
constexpr uint64_t kMixA = 0x33ad28ad2accfa6full;
constexpr uint64_t kMixB = 0x9055752ed3dee093ull;
constexpr uint64_t kBandStep = 0x25dc1ed285f78105ull;
constexpr int kMaxNumPerm = 1024;
constexpr int kMaxShingleChars = 1024;
constexpr size_t kBatch = 256;  // shingle hashes gathered before a pass of the permutation kernel

struct SplitMix64 {
  uint64_t s;
  uint64_t Next() {
    s += 0x9e3779b97f4a7c15ull;
    uint64_t z = s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
};

struct HashKey {
  uint64_t k0, k1;
};

inline uint64_t Load64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
inline uint64_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

// The 128-bit product's halves xor-ed: every input bit reaches the middle of the result.
inline uint64_t Fold(uint64_t a, uint64_t b) {
  unsigned __int128 p = static_cast<unsigned __int128>(a) * b;
  return uint64_t(p) ^ uint64_t(p >> 64);
}

// A bijection, so it adds no collisions; spreads Fold's result over all 64 bits.
inline uint64_t Avalanche(uint64_t z) {
  z ^= z >> 31;
  z *= kMixA;
  z ^= z >> 29;
  z *= kMixB;
  return z ^ (z >> 32);
}

// The last step of HashBytes: x, y are the (last) two words of input, acc what came before.
inline uint64_t HashFinish(uint64_t x, uint64_t y, uint64_t acc, const HashKey& key) {
  return Avalanche(Fold(x ^ key.k1, y ^ acc));
}

// HashBytes for 8 <= n <= 16 (every 13-character ASCII shingle): two overlapping loads and one multiply.
inline uint64_t HashMid(const uint8_t* p, size_t n, const HashKey& key) {
  return HashFinish(Load64(p), Load64(p + n - 8), key.k0 ^ (uint64_t(n) * kLenMul), key);
}

// 64-bit keyed hash of p[0, n). Longer input is folded 16 bytes at a time, ending on its last 16 bytes.
inline uint64_t HashBytes(const uint8_t* p, size_t n, const HashKey& key) {
  if (n >= 8 && n <= 16) return HashMid(p, n, key);
  uint64_t acc = key.k0 ^ (uint64_t(n) * kLenMul);
  if (n < 8) {
    uint64_t x = 0, y = 0;
    if (n >= 4) {
      x = Load32(p);
      y = Load32(p + n - 4);
    } else if (n > 0) {
      x = (uint64_t(p[0]) << 16) | (uint64_t(p[n >> 1]) << 8) | p[n - 1];
    }
    return HashFinish(x, y, acc, key);
  }
  for (size_t i = 0; n - i > 16; i += 16) acc = Fold(Load64(p + i) ^ key.k1, Load64(p + i + 8) ^ acc);
  return HashFinish(Load64(p + n - 16), Load64(p + n - 8), acc, key);
}

// True when p[0, n) is all ASCII, so that every byte is a code point.
bool IsAscii(const uint8_t* p, size_t n) {
  uint8_t any = 0;
  for (size_t i = 0; i < n; i++) any |= p[i];
  return any < 0x80;
}

// ---- The permutation kernel: state[i] = min(state[i], p_i(h)) over a batch of shingle hashes -------------
// a, b, state (P) with P a multiple of 16 (the tail permutations are padding). Every path leaves the minimum
// of hi32(p_i) in the high 32 bits of state[i]; the low 32 bits are the path's own business.

using UpdateFn = void (*)(uint64_t* state, const uint64_t* a, const uint64_t* b, size_t P, const uint64_t* h,
                          size_t m);

// Baseline: the full 64-bit minimum.
void UpdateScalar(uint64_t* state, const uint64_t* a, const uint64_t* b, size_t P, const uint64_t* h, size_t m) {
  for (size_t j = 0; j < P; j++) {
    const uint64_t aj = a[j], bj = b[j];
    uint64_t mj = state[j];
    for (size_t s = 0; s < m; s++) {
      const uint64_t v = aj * h[s] + bj;
      mj = v < mj ? v : mj;
    }
    state[j] = mj;
  }
}

#if defined(__x86_64__)
#define PT_TARGET_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw")))
#define PT_TARGET_AVX2 __attribute__((target("avx2")))

// GCC 12 flags the "undefined" pass-through operand inside _mm512_min_epu64 as maybe-uninitialized.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
// V vectors of 8 permutations stay in registers while the batch streams past: a (V), b (V), min (V).
template <int V>
PT_TARGET_AVX512 inline void MinBlockAvx512(uint64_t* state, const uint64_t* a, const uint64_t* b,
                                            const uint64_t* h, size_t m) {
  __m512i A[V], B[V], M[V];
#pragma GCC unroll 8
  for (int k = 0; k < V; k++) {
    A[k] = _mm512_loadu_si512(a + 8 * k);
    B[k] = _mm512_loadu_si512(b + 8 * k);
    M[k] = _mm512_loadu_si512(state + 8 * k);
  }
  for (size_t s = 0; s < m; s++) {
    const __m512i H = _mm512_set1_epi64(int64_t(h[s]));
#pragma GCC unroll 8
    for (int k = 0; k < V; k++) M[k] = _mm512_min_epu64(M[k], _mm512_add_epi64(_mm512_mullo_epi64(A[k], H), B[k]));
  }
#pragma GCC unroll 8
  for (int k = 0; k < V; k++) _mm512_storeu_si512(state + 8 * k, M[k]);
}

PT_TARGET_AVX512 void UpdateAvx512(uint64_t* state, const uint64_t* a, const uint64_t* b, size_t P,
                                   const uint64_t* h, size_t m) {
  size_t j = 0;
  for (; j + 64 <= P; j += 64) MinBlockAvx512<8>(state + j, a + j, b + j, h, m);
  for (; j < P; j += 16) MinBlockAvx512<2>(state + j, a + j, b + j, h, m);
}
#pragma GCC diagnostic pop

// AVX2 has no 64-bit multiply or unsigned 64-bit min, but only the high 32 bits are wanted:
//   hi32(a*h + b) = hi32(aL*hL + b) + lo32(aL*hH + aH*hL)  (mod 2^32)
// aL*hL + b is a 32x32->64 multiply and a 64-bit add; both cross terms come from one 32-bit multiply by h
// with its halves swapped, summed into the high 32-bit lane, where the minimum is then taken (the low lane
// of each state word holds junk).
PT_TARGET_AVX2 void UpdateAvx2(uint64_t* state, const uint64_t* a, const uint64_t* b, size_t P, const uint64_t* h,
                               size_t m) {
  for (size_t j = 0; j < P; j += 16) {
    __m256i A[4], B[4], M[4];
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) {
      A[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + j + 4 * k));
      B[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + j + 4 * k));
      M[k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(state + j + 4 * k));
    }
    for (size_t s = 0; s < m; s++) {
      const __m256i H = _mm256_set1_epi64x(int64_t(h[s]));
      const __m256i Hswap = _mm256_shuffle_epi32(H, 0xB1);
#pragma GCC unroll 4
      for (int k = 0; k < 4; k++) {
        const __m256i lo = _mm256_add_epi64(_mm256_mul_epu32(A[k], H), B[k]);
        const __m256i crossTerms = _mm256_mullo_epi32(A[k], Hswap);  // lanes (aL*hH, aH*hL) mod 2^32
        const __m256i cross = _mm256_add_epi32(crossTerms, _mm256_slli_epi64(crossTerms, 32));
        M[k] = _mm256_min_epu32(M[k], _mm256_add_epi32(lo, cross));
      }
    }
#pragma GCC unroll 4
    for (int k = 0; k < 4; k++) _mm256_storeu_si256(reinterpret_cast<__m256i*>(state + j + 4 * k), M[k]);
  }
}
#endif

UpdateFn PickUpdate() {
#if defined(__x86_64__)
  const Isa isa = ActiveIsa();
  if (isa >= Isa::Avx512) return UpdateAvx512;
  if (isa >= Isa::Avx2) return UpdateAvx2;
#endif
  return UpdateScalar;
}

// ---- Signatures ------------------------------------------------------------------------------------------

struct MinHashParams {
  int numPerm, shingleChars, bands, rows;
  size_t permPadded;  // numPerm rounded up to 16
  HashKey shingleKey, bandKey;
  std::vector<uint64_t> a, b;  // (permPadded); padding: a = 1, b = 0
};

MinHashParams MakeParams(int numPerm, int shingleChars, int bands, int rows, uint64_t seed) {
  MinHashParams p;
  p.numPerm = numPerm;
  p.shingleChars = shingleChars;
  p.bands = bands;
  p.rows = rows;
  p.permPadded = (size_t(numPerm) + 15) / 16 * 16;
  SplitMix64 rng{seed};
  p.shingleKey.k0 = rng.Next();
  p.shingleKey.k1 = rng.Next();
  p.bandKey.k0 = rng.Next();
  p.bandKey.k1 = rng.Next();
  p.a.assign(p.permPadded, 1);
  p.b.assign(p.permPadded, 0);
  for (int i = 0; i < numPerm; i++) {
    p.a[size_t(i)] = rng.Next() | 1;
    p.b[size_t(i)] = rng.Next();
  }
  return p;
}

// One thread's working memory, allocated before the parallel region (nothing may throw inside it).
struct Scratch {
  uint64_t* state;   // (permPadded)
  uint64_t* hashes;  // (kBatch)
  uint64_t* ring;    // (ringSize) byte offsets of the latest code point starts
};

// Document text[begin, end) -> sig (numPerm), keys (bands).
void SignDocument(const uint8_t* text, uint64_t begin, uint64_t end, const MinHashParams& p, UpdateFn update,
                  size_t ringMask, Scratch& sc, uint32_t* sig, uint64_t* keys) {
  if (begin == end) {
    std::fill(sig, sig + p.numPerm, ~uint32_t(0));
    std::fill(keys, keys + p.bands, kEmptyBandKey);
    return;
  }
  std::fill(sc.state, sc.state + p.permPadded, ~uint64_t(0));
  const uint64_t K = uint64_t(p.shingleChars);
  const uint8_t* doc = text + begin;
  const uint64_t len = end - begin;
  if (len >= K && IsAscii(doc, size_t(len))) {
    // Fast path: window i is doc[i, i + K), the same bytes the general path below would find.
    const size_t windows = size_t(len - K) + 1;
    const bool mid = K >= 8 && K <= 16;
    for (size_t i0 = 0; i0 < windows; i0 += kBatch) {
      const size_t m = std::min(kBatch, windows - i0);
      if (mid) {
        for (size_t t = 0; t < m; t++) sc.hashes[t] = HashMid(doc + i0 + t, size_t(K), p.shingleKey);
      } else {
        for (size_t t = 0; t < m; t++) sc.hashes[t] = HashBytes(doc + i0 + t, size_t(K), p.shingleKey);
      }
      update(sc.state, p.a.data(), p.b.data(), p.permPadded, sc.hashes, m);
    }
  } else {
    size_t nh = 0;
    auto emit = [&](uint64_t from, uint64_t to) {
      sc.hashes[nh++] = HashBytes(text + from, size_t(to - from), p.shingleKey);
      if (nh == kBatch) {
        update(sc.state, p.a.data(), p.b.data(), p.permPadded, sc.hashes, nh);
        nh = 0;
      }
    };
    // c counts code points; on reaching the start of code point c >= K, window [start(c-K), start(c)) is done.
    uint64_t c = 0;
    for (uint64_t pos = begin; pos < end; pos++) {
      if ((text[pos] & 0xC0) != 0x80 || pos == begin) {
        if (c >= K) emit(sc.ring[(c - K) & ringMask], pos);
        sc.ring[c & ringMask] = pos;
        c++;
      }
    }
    if (c >= K) emit(sc.ring[(c - K) & ringMask], end);
    else emit(begin, end);  // fewer than K code points: one shingle of all of it
    if (nh > 0) update(sc.state, p.a.data(), p.b.data(), p.permPadded, sc.hashes, nh);
  }

  for (int i = 0; i < p.numPerm; i++) sig[i] = uint32_t(sc.state[i] >> 32);
  for (int j = 0; j < p.bands; j++) {
    const HashKey bk{p.bandKey.k0 + uint64_t(j) * kBandStep, p.bandKey.k1};
    const uint64_t key = HashBytes(reinterpret_cast<const uint8_t*>(sig + size_t(j) * p.rows), size_t(p.rows) * 4, bk);
    keys[j] = key == kEmptyBandKey ? kEmptyBandKey - 1 : key;
  }
}

// text (bytes), offsets (n+1) -> signatures (n, numPerm), keys (n, bands)
void MinHashDocuments(uint32_t* signatures, uint64_t* keys, const uint8_t* text, const std::vector<uint64_t>& offsets,
                      const MinHashParams& p) {
  const int64_t n = int64_t(offsets.size()) - 1;
  if (n <= 0) return;
  const UpdateFn update = PickUpdate();
  size_t ringSize = 1;
  while (ringSize < size_t(p.shingleChars) + 1) ringSize <<= 1;
  const int threads = int(std::min<int64_t>(Threads(), n));
  const size_t stride = p.permPadded + kBatch + ringSize;
  std::vector<uint64_t> scratch(size_t(threads) * stride);
#pragma omp parallel num_threads(threads)
  {
#ifdef _OPENMP
    const size_t t = size_t(omp_get_thread_num());
#else
    const size_t t = 0;
#endif
    uint64_t* base = scratch.data() + t * stride;
    Scratch sc{base, base + p.permPadded, base + p.permPadded + kBatch};
#pragma omp for schedule(dynamic, 8)
    for (int64_t i = 0; i < n; i++) {
      SignDocument(text, offsets[size_t(i)], offsets[size_t(i) + 1], p, update, ringSize - 1, sc,
                   signatures + size_t(i) * size_t(p.numPerm), keys + size_t(i) * size_t(p.bands));
    }
  }
}

// ---- (key, id) sort --------------------------------------------------------------------------------------
// MSD radix sort on the key's bytes, most significant first, skipping bytes on which a range agrees; ranges
// of at most kSmallSort records finish by insertion sort, runs of one key by sorting their ids. Records move
// between the caller's arrays and a scratch pair; each range ends where the caller wants it.

// Uninitialised scratch of n T's for large temporaries, on transparent huge pages where the system allows:
// first-touch page faults otherwise cost more than the sort itself (measured: 40% of a 10M-record sort).
template <typename T>
class HugeScratch {
 public:
  explicit HugeScratch(size_t n) {
    constexpr size_t kHuge = size_t(2) << 20;
    const size_t bytes = std::max<size_t>(n * sizeof(T), 1);
    const size_t rounded = bytes >= kHuge ? (bytes + kHuge - 1) / kHuge * kHuge : (bytes + 63) / 64 * 64;
    p_ = static_cast<T*>(std::aligned_alloc(bytes >= kHuge ? kHuge : 64, rounded));
    PT_CHECK_ENGINE(p_ != nullptr, "out of memory allocating ", bytes, " bytes of scratch");
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (bytes >= kHuge) madvise(p_, rounded, MADV_HUGEPAGE);  // advice only; failure is harmless
#endif
  }
  ~HugeScratch() { std::free(p_); }
  HugeScratch(const HugeScratch&) = delete;
  HugeScratch& operator=(const HugeScratch&) = delete;
  T* data() const { return p_; }

 private:
  T* p_;
};

constexpr size_t kSmallSort = 48;
constexpr int kDigitBits = 8;  // 256 buckets a level: more thrash the caches, fewer add levels
constexpr size_t kParallelSort = size_t(1) << 16;  // below this, one thread

inline bool Before(uint64_t ka, uint32_t ia, uint64_t kb, uint32_t ib) { return ka < kb || (ka == kb && ia < ib); }

void InsertionSort(uint64_t* k, uint32_t* id, size_t n) {
  for (size_t i = 1; i < n; i++) {
    const uint64_t kk = k[i];
    const uint32_t ii = id[i];
    size_t j = i;
    for (; j > 0 && Before(kk, ii, k[j - 1], id[j - 1]); j--) {
      k[j] = k[j - 1];
      id[j] = id[j - 1];
    }
    k[j] = kk;
    id[j] = ii;
  }
}

// Sorts the n records in (k, id), whose keys agree on their top `done` bits. (k2, id2) is scratch of the same
// size; the sorted records end in (k, id) when inPlace, else in (k2, id2).
void MsdSort(uint64_t* k, uint32_t* id, uint64_t* k2, uint32_t* id2, size_t n, int done, bool inPlace) {
  for (;;) {
    if (n <= kSmallSort || done >= 64) {
      if (done >= 64) std::sort(id, id + n);  // one key: order by id
      else InsertionSort(k, id, n);
      if (!inPlace) {
        std::memcpy(k2, k, n * sizeof(uint64_t));
        std::memcpy(id2, id, n * sizeof(uint32_t));
      }
      return;
    }
    const int w = std::min(kDigitBits, 64 - done);
    const int shift = 64 - done - w;
    const uint64_t mask = (uint64_t(1) << w) - 1;
    const size_t buckets = size_t(1) << w;
    size_t count[size_t(1) << kDigitBits];
    std::fill(count, count + buckets, 0);
    for (size_t i = 0; i < n; i++) count[(k[i] >> shift) & mask]++;
    if (count[(k[0] >> shift) & mask] == n) {
      done += w;
      continue;
    }
    size_t start[size_t(1) << kDigitBits];
    size_t sum = 0;
    for (size_t d = 0; d < buckets; d++) {
      start[d] = sum;
      sum += count[d];
    }
    size_t pos[size_t(1) << kDigitBits];
    std::memcpy(pos, start, buckets * sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
      const size_t dst = pos[(k[i] >> shift) & mask]++;
      k2[dst] = k[i];
      id2[dst] = id[i];
    }
    // The buckets now sit in (k2, id2); each must end in (k, id) when inPlace. Small ones are finished here,
    // without a call (most buckets deep in the sort hold a record or two).
    for (size_t d = 0; d < buckets; d++) {
      const size_t c = count[d], s = start[d];
      if (c > kSmallSort) {
        MsdSort(k2 + s, id2 + s, k + s, id + s, c, done + w, !inPlace);
        continue;
      }
      if (c > 1) InsertionSort(k2 + s, id2 + s, c);
      if (inPlace) {
        for (size_t i = s; i < s + c; i++) {
          k[i] = k2[i];
          id[i] = id2[i];
        }
      }
    }
    return;
  }
}

// keys (n), ids (n) sorted in place: the top-level digit is split in parallel, then its buckets are sorted
// in parallel.
void SortKeyIds(uint64_t* keys, uint32_t* ids, size_t n) {
  if (n < 2) return;
  HugeScratch<uint64_t> scratchKeys(n);
  HugeScratch<uint32_t> scratchIds(n);
  uint64_t* const tk = scratchKeys.data();
  uint32_t* const tid = scratchIds.data();
  const int threads = Threads();
  if (n < kParallelSort || threads == 1) {
    MsdSort(keys, ids, tk, tid, n, 0, true);
    return;
  }
  uint64_t diff = 0;
#pragma omp parallel for num_threads(threads) reduction(| : diff) schedule(static)
  for (size_t i = 0; i < n; i++) diff |= keys[i] ^ keys[0];
  if (diff == 0) {
    std::sort(ids, ids + n);
    return;
  }
  // The top-level digit: the 8 bits from the highest bit on which keys differ down.
  const int shift = std::max(0, 63 - __builtin_clzll(diff) - 7);
  // Per-thread histograms over contiguous chunks give a stable parallel scatter.
  std::vector<size_t> hist(size_t(threads) * 256, 0);
  std::vector<size_t> bucketStart(257, 0);
#pragma omp parallel num_threads(threads)
  {
#ifdef _OPENMP
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    const int t = 0, nt = 1;
#endif
    const size_t lo = n * size_t(t) / size_t(nt), hi = n * size_t(t + 1) / size_t(nt);
    size_t* h = hist.data() + size_t(t) * 256;
    for (size_t i = lo; i < hi; i++) h[(keys[i] >> shift) & 255]++;
#pragma omp barrier
#pragma omp single
    {
      size_t sum = 0;
      for (int d = 0; d < 256; d++) {
        bucketStart[size_t(d)] = sum;
        for (int u = 0; u < nt; u++) {
          const size_t c = hist[size_t(u) * 256 + size_t(d)];
          hist[size_t(u) * 256 + size_t(d)] = sum;  // now where thread u writes its first record of bucket d
          sum += c;
        }
      }
      bucketStart[256] = sum;
    }
    for (size_t i = lo; i < hi; i++) {
      const size_t dst = h[(keys[i] >> shift) & 255]++;
      tk[dst] = keys[i];
      tid[dst] = ids[i];
    }
#pragma omp barrier
#pragma omp for schedule(dynamic, 1)
    for (int d = 0; d < 256; d++) {
      const size_t s = bucketStart[size_t(d)], c = bucketStart[size_t(d) + 1] - s;
      if (c > 0) MsdSort(tk + s, tid + s, keys + s, ids + s, c, 64 - shift, false);
    }
  }
}

// ---- Builders --------------------------------------------------------------------------------------------

// offsets (n + 1) -> a checked copy: integers, non-decreasing, at most textLength.
std::vector<uint64_t> ReadOffsets(const std::string& op, const ArrayArg& offsets, size_t textLength) {
  PT_CHECK_ARG(offsets.length >= 1, op, ": 'offsets' must hold n + 1 >= 1 byte offsets (n documents), got an empty ",
               TypedArrayName(offsets.type));
  std::vector<uint64_t> out(offsets.length);
  uint64_t prev = 0;
  for (size_t i = 0; i < offsets.length; i++) {
    uint64_t v;
    if (offsets.type == napi_uint32_array) {
      v = offsets.ptr<const uint32_t>()[i];
    } else {
      const double d = offsets.ptr<const double>()[i];
      PT_CHECK_ARG(d >= 0 && d <= 9007199254740991.0 && d == double(uint64_t(d)), op, ": 'offsets'[", i, "] = ", d,
                   " is not a non-negative integer");
      v = uint64_t(d);
    }
    PT_CHECK_ARG(i == 0 || v >= prev, op, ": 'offsets' must be non-decreasing, but offsets[", i, "] = ", v,
                 " < offsets[", i - 1, "] = ", prev);
    PT_CHECK_ARG(v <= textLength, op, ": 'offsets'[", i, "] = ", v, " is past the end of 'text' (", textLength,
                 " bytes)");
    out[i] = v;
    prev = v;
  }
  return out;
}

int IntIn(OpArgs& a, size_t i, const char* name, int64_t lo, int64_t hi) {
  const int64_t v = a.integer(i, name);
  PT_CHECK_ARG(v >= lo && v <= hi, a.op(), ": '", name, "' must be an integer in [", lo, ", ", hi, "], got ", v);
  return int(v);
}

// minhashSignatures(signatures, bandKeys, text, offsets, numPerm, shingleChars, bands, rows, seed)
Kernel BuildMinHashSignatures(OpArgs& a) {
  const std::string& op = a.op();
  ArrayArg sigs = a.typedArray(0, "signatures", {napi_uint32_array});
  ArrayArg keys = a.typedArray(1, "bandKeys", {napi_biguint64_array});
  ArrayArg text = a.typedArray(2, "text", {napi_uint8_array});
  ArrayArg offsetsArg = a.typedArray(3, "offsets", {napi_uint32_array, napi_float64_array});
  const int numPerm = IntIn(a, 4, "numPerm", 1, kMaxNumPerm);
  const int shingleChars = IntIn(a, 5, "shingleChars", 1, kMaxShingleChars);
  const int bands = IntIn(a, 6, "bands", 1, numPerm);
  const int rows = IntIn(a, 7, "rows", 1, numPerm);
  PT_CHECK_ARG(int64_t(bands) * rows <= numPerm, op, ": bands * rows = ", bands, " * ", rows, " = ", bands * rows,
               " must be at most numPerm = ", numPerm);
  const double seed = a.number(8, "seed");
  PT_CHECK_ARG(seed == double(int64_t(seed)) && seed >= -9007199254740991.0 && seed <= 9007199254740991.0, op,
               ": 'seed' must be a safe integer, got ", seed);
  PT_CHECK_ARG(a.count() <= 9, op, ": expected 9 arguments, got ", a.count());
  ExpectNoOverlap(op, "signatures", sigs, "bandKeys", keys);
  ExpectNoOverlap(op, "signatures", sigs, "text", text);
  ExpectNoOverlap(op, "signatures", sigs, "offsets", offsetsArg);
  ExpectNoOverlap(op, "bandKeys", keys, "text", text);
  ExpectNoOverlap(op, "bandKeys", keys, "offsets", offsetsArg);
  auto offsets = std::make_shared<const std::vector<uint64_t>>(ReadOffsets(op, offsetsArg, text.length));
  const uint64_t n = offsets->size() - 1;
  PT_CHECK_ARG(sigs.length == n * uint64_t(numPerm), op, ": 'signatures' must hold n * numPerm = ", n, " * ",
               numPerm, " = ", n * uint64_t(numPerm), " values, got ", sigs.length);
  PT_CHECK_ARG(keys.length == n * uint64_t(bands), op, ": 'bandKeys' must hold n * bands = ", n, " * ", bands, " = ",
               n * uint64_t(bands), " keys, got ", keys.length);
  auto params = std::make_shared<const MinHashParams>(
      MakeParams(numPerm, shingleChars, bands, rows, uint64_t(int64_t(seed))));
  return [=]() {
    MinHashDocuments(sigs.ptr<uint32_t>(), keys.ptr<uint64_t>(), text.ptr<const uint8_t>(), *offsets, *params);
    return OpResult{};
  };
}

// sortKeyIds(keys, ids)
Kernel BuildSortKeyIds(OpArgs& a) {
  const std::string& op = a.op();
  ArrayArg keys = a.typedArray(0, "keys", {napi_biguint64_array});
  ArrayArg ids = a.typedArray(1, "ids", {napi_uint32_array});
  PT_CHECK_ARG(a.count() <= 2, op, ": expected 2 arguments, got ", a.count());
  PT_CHECK_ARG(keys.length == ids.length, op, ": 'keys' (", keys.length, ") and 'ids' (", ids.length,
               ") must have the same length");
  ExpectNoOverlap(op, "keys", keys, "ids", ids);
  return [=]() {
    SortKeyIds(keys.ptr<uint64_t>(), ids.ptr<uint32_t>(), keys.length);
    return OpResult{};
  };
}

}  // namespace

void RegisterMinHash(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "minhashSignatures", BuildMinHashSignatures);
  RegisterOp(env, exports, "sortKeyIds", BuildSortKeyIds);
}

}  // namespace pt
