// cross_entropy.cc: the fused LM head and softmax cross-entropy, forward and forward+backward in one pass.
//   logits (N, V) = inp (N, C) @ wte[:V]^T          V = vocabSize, the real vocabulary (wte has Vp >= V rows)
//   loss_i = logsumexp(logits_i) - logits_i[target_i]
//   dlogits = (softmax(logits) - onehot(target)) * gradScale
//   dinp = dlogits @ wte[:V],  dwte[:V] += dlogits^T @ inp
// Accumulation rule: dwte (a parameter gradient, always f32) accumulates (+=); dinp (an activation gradient,
// in inp's dtype) is overwritten.
//
// Padded vocabulary rows (ids >= vocabSize) take no part at all: their logits count as -inf, so they are
// never predicted, and their dwte rows receive nothing. Rows whose target is ignoreIndex have loss 0 and zero
// gradient; any other target outside [0, vocabSize) is an argument error, raised before anything is written.
//
// Memory stays bounded: the whole (N, V) logits never exist, only an f32 logits chunk and (with backward, in
// bf16) a dlogits block of at most 128 MiB each (128 rows where V passes 262,144), in the calling thread's
// scratch (scratch.h) with one row of exp per OpenMP thread. The
// backward runs a block of rows at a time (ChunkPlan): the block's dlogits (blockRows, V) in the input dtype
// are filled a chunk of logitRows rows at a time (one pt::Gemm into an f32 logits chunk, then the softmax of
// each row), and then two pt::Gemm products take the whole block: dinp, and dwte += with beta = 1 straight
// into the f32 dwte. The block is as large as the byte budget allows, because the dwte product reads and
// writes all of the f32 dwte once per block: bf16 blocks of 1024 rows halve that traffic against 512-row
// chunks. f32 logits are written into the block itself and the softmax is done in place.
//
// The softmax of a row reads its f32 logits from memory once (the max), then works from cache: exp(l - max)
// into a per-thread row of scratch with its sum (a double), then dlogits = e / sum * gradScale stored in the
// input dtype (rounded to bf16 once, as autocast does; dwte still accumulates in f32). Nothing is written
// back into the f32 logits of a bf16 run. exp is FastExp (~2 ulp), lane-wise on AVX-512 (vecmath_avx512.h),
// otherwise vecmath.h's multiversioned loops; both round dlogits to bf16 exactly as F32ToBf16 does.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>

#include "../cpu.h"
#include "../gemm.h"
#include "../op.h"
#include "../scratch.h"
#include "../vecmath.h"
#include "../vecmath_avx512.h"
#include "ops.h"

namespace pt {

namespace {

template <typename T>
constexpr DType DTypeOf() {
  return std::is_same_v<T, float> ? DType::F32 : DType::BF16;
}

// Rows of the logits scratch are padded to a multiple of 64 floats: an odd leading dimension (V = 50,277)
// misaligns every row and costs oneDNN much of its speed.
int64_t PaddedVocab(int64_t V) { return (V + 63) / 64 * 64; }

// How many rows each product takes: the most of 128, 256, 512 (logits) or 1024 (block) rows whose buffer fits
// 128 MiB (never fewer than 128 rows, never more than N). benchmarks/kernels.ts times the same products at
// the same plan (its GEMM-only row), so a change here goes there too.
//   logitRows: rows of one logits product, f32 logits (logitRows, ldV).
//   blockRows: rows of one dinp and dwte product, dlogits (blockRows, ldV) in the input dtype. f32 logits are
//     the block itself (logitRows = blockRows); bf16 blocks hold several logits chunks. Forward-only runs
//     have no block. At V = 50,277 in bf16: logits chunks of 512 rows (103 MB) and blocks of 1024 (103 MB).
constexpr int64_t kBudgetBytes = int64_t(128) << 20;
struct ChunkPlan {
  int64_t logitRows, blockRows;
};
int64_t RowsWithin(int64_t maxRows, int64_t rowBytes) {
  int64_t rows = 128;
  while (rows < maxRows && 2 * rows * rowBytes <= kBudgetBytes) rows *= 2;
  return rows;
}
ChunkPlan PlanChunks(int64_t N, int64_t V, size_t elemBytes, bool backward) {
  const int64_t ldV = PaddedVocab(V);
  ChunkPlan p;
  p.logitRows = std::min(RowsWithin(512, ldV * int64_t(sizeof(float))), N);
  p.blockRows = p.logitRows;
  if (backward && elemBytes != sizeof(float)) p.blockRows = std::min(RowsWithin(1024, ldV * int64_t(elemBytes)), N);
  return p;
}

// ---------------------------------------------------------------------------------------------------------
// Row kernels. row (V) f32 logits of one row; e (V) f32 scratch; out (V) dlogits in the input dtype (may be
// row itself for f32). Multiversioned loops first (see vecmath.h), then their AVX-512 twins.

PT_CLONES float RowMax(const float* row, int64_t V) {
  float m = -std::numeric_limits<float>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < V; j++) m = std::max(m, row[j]);
  return m;
}
// sum_j exp(row[j] - maxv); the sum is kept in double so V in the hundreds of thousands loses nothing.
PT_CLONES double RowExpSum(const float* row, int64_t V, float maxv) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < V; j++) sum += FastExp(row[j] - maxv);
  return sum;
}
// The same, leaving exp(row[j] - maxv) in e.
PT_CLONES double RowExpTo(float* e, const float* row, int64_t V, float maxv) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < V; j++) {
    float x = FastExp(row[j] - maxv);
    e[j] = x;
    sum += x;
  }
  return sum;
}
// out (V) = e (V) * k, in the output dtype.
PT_CLONES void RowScale(float* out, const float* e, int64_t V, float k) {
  for (int64_t j = 0; j < V; j++) out[j] = e[j] * k;
}
PT_CLONES void RowScale(bf16* out, const float* e, int64_t V, float k) {
  for (int64_t j = 0; j < V; j++) out[j] = F32ToBf16(e[j] * k);
}

#ifdef PT_HAVE_EW_AVX512
// GCC 12's _mm512_max_ps trips -W(maybe-)uninitialized through _mm512_undefined_ps (GCC bug 105593).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
PT_EW_AVX512 float RowMaxAvx512(const float* row, int64_t V) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  __m512 m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;  // four chains: the loop is bound by load bandwidth
  int64_t j = 0;
  for (; j + 64 <= V; j += 64) {
    m0 = _mm512_max_ps(m0, avx512::Load(row + j));
    m1 = _mm512_max_ps(m1, avx512::Load(row + j + 16));
    m2 = _mm512_max_ps(m2, avx512::Load(row + j + 32));
    m3 = _mm512_max_ps(m3, avx512::Load(row + j + 48));
  }
  for (; j < V; j += 16) m0 = _mm512_max_ps(m0, _mm512_mask_loadu_ps(ninf, avx512::TailMask(V - j), row + j));
  // Through memory rather than _mm512_reduce_max_ps (GCC bug 105593, see vecmath_avx512.h).
  alignas(64) float t[16];
  _mm512_store_ps(t, _mm512_max_ps(_mm512_max_ps(m0, m1), _mm512_max_ps(m2, m3)));
  return *std::max_element(t, t + 16);
}

// sum_j exp(row[j] - maxv), with exp(row[j] - maxv) left in e when kStore. Each lane sums up to 256 values
// (each <= 1) in f32, then the partial sums are added in double.
template <bool kStore>
PT_EW_AVX512 double RowExpAvx512(float* e, const float* row, int64_t V, float maxv) {
  const __m512 mx = _mm512_set1_ps(maxv);
  __m512d total = _mm512_setzero_pd();
  int64_t j = 0;
  while (j < V) {
    const int64_t end = std::min(V, j + 256);
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
    for (; j + 32 <= end; j += 32) {
      const __m512 x0 = avx512::FastExp(_mm512_sub_ps(avx512::Load(row + j), mx));
      const __m512 x1 = avx512::FastExp(_mm512_sub_ps(avx512::Load(row + j + 16), mx));
      if constexpr (kStore) {
        avx512::Store(e + j, x0);
        avx512::Store(e + j + 16, x1);
      }
      s0 = _mm512_add_ps(s0, x0);
      s1 = _mm512_add_ps(s1, x1);
    }
    for (; j < end; j += 16) {
      const __mmask16 k = avx512::TailMask(end - j);
      const __m512 x = _mm512_maskz_mov_ps(k, avx512::FastExp(_mm512_sub_ps(avx512::Load(row + j, k), mx)));
      if constexpr (kStore) avx512::Store(e + j, k, x);
      s0 = _mm512_add_ps(s0, x);
    }
    const __m512 s = _mm512_add_ps(s0, s1);
    total = _mm512_add_pd(total, _mm512_add_pd(avx512::WidenLo(s), avx512::WidenHi(s)));
  }
  return avx512::ReduceAdd(total);
}

// kHw: round with vcvtneps2bf16 (AVX512-BF16); the same bits here, where the products are never denormal
// (flush-to-zero kernel mode, see vecmath_avx512.h).
template <bool kHw, typename T>
PT_EW_AVX512 void RowScaleAvx512(T* out, const float* e, int64_t V, float k) {
  const __m512 kv = _mm512_set1_ps(k);
  int64_t j = 0;
  for (; j + 16 <= V; j += 16) {
    const __m512 x = _mm512_mul_ps(avx512::Load(e + j), kv);
    if constexpr (std::is_same_v<T, float>) avx512::Store(out + j, x);
    else avx512::StoreComputed<kHw>(out + j, x);
  }
  if (j < V) {
    const __mmask16 m = avx512::TailMask(V - j);
    const __m512 x = _mm512_mul_ps(avx512::Load(e + j, m), kv);
    if constexpr (std::is_same_v<T, float>) avx512::Store(out + j, m, x);
    else avx512::StoreComputed<kHw>(out + j, m, x);
  }
}
#pragma GCC diagnostic pop
#endif

// The row kernels of one ISA level, picked once per call.
template <typename T>
struct RowKernels {
  float (*max)(const float*, int64_t);
  double (*expSum)(const float*, int64_t, float);
  double (*expTo)(float*, const float*, int64_t, float);
  void (*scale)(T*, const float*, int64_t, float);
};

template <typename T>
RowKernels<T> PickRowKernels() {
#ifdef PT_HAVE_EW_AVX512
  if (ActiveIsa() >= Isa::Avx512) {
    return {&RowMaxAvx512, [](const float* row, int64_t V, float m) { return RowExpAvx512<false>(nullptr, row, V, m); },
            &RowExpAvx512<true>, ActiveIsa() >= Isa::Avx512Bf16 ? &RowScaleAvx512<true, T> : &RowScaleAvx512<false, T>};
  }
#endif
  return {&RowMax, &RowExpSum, &RowExpTo, [](T* out, const float* e, int64_t V, float k) { RowScale(out, e, V, k); }};
}

// Checks every target before anything is computed: ignoreIndex or an id in [0, V).
void CheckTargets(const std::string& op, const int32_t* targets, int64_t N, int64_t V, int32_t ignoreIndex) {
  for (int64_t i = 0; i < N; i++) {
    int32_t t = targets[i];
    PT_CHECK_ARG(t == ignoreIndex || (t >= 0 && t < V), op, ": targets[", i, "] = ", t,
                 " is outside the vocabulary [0, ", V, ") and is not ignoreIndex (", ignoreIndex, ")");
  }
}

// The softmax of `rows` rows of f32 logits (rows, ldV): losses (rows) written; with dlogits (rows, ldV), the
// rows' dlogits too (dlogits may be logits itself), through expRows (threads, ldV), a row of exp(l - max) per
// thread: a few hundred KiB that stay in the thread's cache until scaled. targets (rows).
template <typename T>
void SoftmaxRows(float* losses, T* dlogits, float* expRows, const float* logits, const int32_t* targets, int64_t rows,
                 int64_t V, int64_t ldV, int32_t ignoreIndex, float gradScale, int threads, const RowKernels<T>& k) {
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t i = 0; i < rows; i++) {
    const int32_t target = targets[i];
    const float* row = logits + i * ldV;                  // (V)
    T* drow = dlogits ? dlogits + i * ldV : nullptr;      // (V)
    if (target == ignoreIndex) {
      losses[i] = 0.0f;
      if (drow) std::fill(drow, drow + V, T{});
      continue;
    }
    const float maxv = k.max(row, V);
    const float xt = row[target];
    if (!drow) {
      losses[i] = float(std::log(k.expSum(row, V, maxv)) + double(maxv) - double(xt));
      continue;
    }
    float* e = expRows + ThreadIndex() * ldV;  // (V)
    const double sum = k.expTo(e, row, V, maxv);
    losses[i] = float(std::log(sum) + double(maxv) - double(xt));
    const float inv = float(1.0 / sum);
    k.scale(drow, e, V, inv * gradScale);
    St(drow + target, (e[target] * inv - 1.0f) * gradScale);
  }
}

// The calling thread's logits chunk, dlogits block and exp rows, kept between calls.
thread_local ScratchBuffer tScratch;

// logits (rows, ldV) f32 = inp (rows, C) @ wte[:V]^T
template <typename T>
void LogitsProduct(float* logits, const T* inp, const T* wte, int64_t rows, int64_t C, int64_t V, int64_t ldV) {
  GemmArgs g;
  g.M = rows, g.N = V, g.K = C;
  g.A = inp, g.lda = C;
  g.B = wte, g.ldb = C, g.transB = true;
  g.abType = DTypeOf<T>();
  g.C = logits, g.ldc = ldV, g.cType = DType::F32;
  Gemm(g);
}

// The whole op over N rows. losses (N) f32, inp (N, C), wte (Vp, C) of which the first V rows are used,
// targets (N). With backward: dinp (N, C) overwritten, dwte (Vp, C) f32 accumulated (rows >= V untouched).
// Returns the sum of the losses of the rows not ignored.
template <typename T>
double CrossEntropy(float* losses, T* dinp, float* dwte, const T* inp, const T* wte, const int32_t* targets,
                    int64_t N, int64_t C, int64_t V, int32_t ignoreIndex, float gradScale, bool backward) {
  if (N == 0) return 0.0;
  const int64_t ldV = PaddedVocab(V);
  const ChunkPlan plan = PlanChunks(N, V, sizeof(T), backward);
  const RowKernels<T> kernels = PickRowKernels<T>();
  const int threads = std::max(1, Threads());
  // Scratch is the calling thread's and kept between calls (a fresh 100 MB allocation per call is
  // page-faulted in every time); every element is written before it is read. Two passes over one layout:
  // the first sizes the reservation, the second binds the pointers.
  constexpr bool kF32 = std::is_same_v<T, float>;
  float* logits = nullptr;   // (logitRows, ldV); for f32 with backward, the block itself
  T* block = nullptr;        // (blockRows, ldV) dlogits, with backward
  float* expRows = nullptr;  // (threads, ldV), with backward
  Carver cv;
  for (int pass = 0; pass < 2; pass++) {
    if (pass == 1) cv.Bind(tScratch.Reserve(cv.used(), "crossEntropy"));
    block = backward ? cv.Take<T>(size_t(plan.blockRows * ldV)) : nullptr;
    expRows = backward ? cv.Take<float>(size_t(threads) * ldV) : nullptr;
    if constexpr (kF32) logits = backward ? block : cv.Take<float>(size_t(plan.logitRows * ldV));
    else logits = cv.Take<float>(size_t(plan.logitRows * ldV));
  }

  for (int64_t b0 = 0; b0 < N; b0 += plan.blockRows) {
    const int64_t bRows = std::min(plan.blockRows, N - b0);
    for (int64_t r0 = b0; r0 < b0 + bRows; r0 += plan.logitRows) {
      const int64_t rows = std::min(plan.logitRows, b0 + bRows - r0);
      T* drows = backward ? block + (r0 - b0) * ldV : nullptr;  // (rows, ldV) of the block
      float* lg = logits;
      if constexpr (kF32) {
        if (backward) lg = drows;
      }
      LogitsProduct(lg, inp + r0 * C, wte, rows, C, V, ldV);
      SoftmaxRows(losses + r0, drows, expRows, lg, targets + r0, rows, V, ldV, ignoreIndex, gradScale, threads,
                  kernels);
    }
    if (!backward) continue;

    GemmArgs di;  // dinp (bRows, C) = dlogits (bRows, V) @ wte[:V] (V, C)
    di.M = bRows, di.N = C, di.K = V;
    di.A = block, di.lda = ldV;
    di.B = wte, di.ldb = C;
    di.abType = DTypeOf<T>();
    di.C = dinp + b0 * C, di.ldc = C, di.cType = DTypeOf<T>();
    Gemm(di);

    GemmArgs dw;  // dwte[:V] (V, C) += dlogits^T (V, bRows) @ inp block (bRows, C)
    dw.M = V, dw.N = C, dw.K = bRows;
    dw.A = block, dw.lda = ldV, dw.transA = true;
    dw.B = inp + b0 * C, dw.ldb = C;
    dw.abType = DTypeOf<T>();
    dw.C = dwte, dw.ldc = C, dw.cType = DType::F32;
    dw.beta = 1.0f;
    Gemm(dw);
  }

  // Summed in row order, so the result does not depend on the thread count.
  double total = 0.0;
  for (int64_t i = 0; i < N; i++)
    if (targets[i] != ignoreIndex) total += losses[i];
  return total;
}

struct CeArgs {
  Tensor losses, inp, wte, targets;
  int64_t N = 0, C = 0, V = 0;
  int32_t ignoreIndex = -100;
};

// Shared checks of both forms; `first` is the index of the 'inp' argument.
CeArgs ReadCeArgs(OpArgs& a, size_t first) {
  CeArgs c;
  c.losses = a.tensor(0, "losses");
  c.inp = a.tensor(first, "inp");
  c.wte = a.tensor(first + 1, "wte");
  c.targets = a.tensor(first + 2, "targets");
  int64_t vocabSize = a.integer(first + 3, "vocabSize");
  int64_t ignoreIndex = a.integer(first + 4, "ignoreIndex");
  const std::string& op = a.op();
  ExpectFloat(op, "inp", c.inp);
  ExpectSameDType(op, "wte", c.wte, "inp", c.inp);
  ExpectDType(op, "targets", c.targets, DType::I32);
  ExpectDType(op, "losses", c.losses, DType::F32);
  PT_CHECK_ARG(c.wte.ndim() == 2 && c.wte.dim(0) >= 1 && c.wte.dim(1) >= 1, op,
               ": 'wte' must have shape (Vp, C) with Vp, C >= 1, got ", c.wte.Describe());
  c.C = c.wte.dim(1);
  c.N = c.targets.numel;
  PT_CHECK_ARG(vocabSize >= 1 && vocabSize <= c.wte.dim(0), op, ": vocabSize ", vocabSize,
               " must be in [1, ", c.wte.dim(0), "] (the rows of 'wte' ", c.wte.Describe(), ")");
  PT_CHECK_ARG(ignoreIndex >= std::numeric_limits<int32_t>::min() && ignoreIndex <= std::numeric_limits<int32_t>::max(),
               op, ": ignoreIndex ", ignoreIndex, " is not an int32");
  c.V = vocabSize;
  c.ignoreIndex = int32_t(ignoreIndex);
  PT_CHECK_ARG(c.inp.ndim() >= 1 && c.inp.dim(-1) == c.C && c.inp.numel == CheckedMul(c.N, c.C, op + ": N * C"), op, ": 'inp' must have shape ",
               ShapeStr({c.N, c.C}), " (one row of C = wte's columns per target), got ", c.inp.Describe());
  ExpectNumel(op, "losses", c.losses, c.N);
  ExpectNoOverlap(op, "losses", c.losses, "inp", c.inp);
  ExpectNoOverlap(op, "losses", c.losses, "wte", c.wte);
  ExpectNoOverlap(op, "losses", c.losses, "targets", c.targets);
  return c;
}

// The launcher arguments of either form.
CrossEntropyArgs Launch(const CeArgs& c, void* dinp, float* dwte, float gradScale, bool backward) {
  CrossEntropyArgs ce;
  ce.losses = c.losses.ptr<float>(), ce.dinp = dinp, ce.dwte = dwte;
  ce.inp = c.inp.raw(), ce.wte = c.wte.raw(), ce.targets = c.targets.ptr<int32_t>();
  ce.dtype = c.inp.dtype, ce.n = c.N, ce.c = c.C, ce.v = c.V, ce.ignoreIndex = c.ignoreIndex;
  ce.gradScale = gradScale, ce.backward = backward;
  return ce;
}

// Both forms return the sum of the losses.
Kernel CrossEntropyOn(OpArgs& a, const CrossEntropyArgs& ce) {
  const std::string op = a.op();
  return ForDevice(
      a, [ce, op]() { return OpResult{{cpu::CrossEntropy(ce, op)}}; },
      PT_CUDA_LAUNCH(return OpResult{{cuda::CrossEntropy(ce, op, stream)}};));
}

// crossEntropyForward(losses, inp, wte, targets, vocabSize, ignoreIndex) -> sum of losses
Kernel BuildCrossEntropyForward(OpArgs& a) {
  CeArgs c = ReadCeArgs(a, 1);
  ExpectCublas(a);
  const CrossEntropyArgs ce = Launch(c, nullptr, nullptr, 0.0f, false);
  return CrossEntropyOn(a, ce);
}

// crossEntropyForwardBackward(losses, dinp, dwte, inp, wte, targets, vocabSize, ignoreIndex, gradScale)
//   -> sum of losses; dinp overwritten, dwte accumulated
Kernel BuildCrossEntropyForwardBackward(OpArgs& a) {
  CeArgs c = ReadCeArgs(a, 3);
  Tensor dinp = a.tensor(1, "dinp"), dwte = a.tensor(2, "dwte");
  double gradScale = a.number(8, "gradScale");
  const std::string& op = a.op();
  PT_CHECK_ARG(std::isfinite(gradScale), op, ": gradScale must be finite, got ", gradScale);
  ExpectSameDType(op, "dinp", dinp, "inp", c.inp);
  ExpectNumel(op, "dinp", dinp, c.inp.numel);
  ExpectDType(op, "dwte", dwte, DType::F32);
  PT_CHECK_ARG(dwte.numel == c.wte.numel && dwte.dim(-1) == c.C, op, ": 'dwte' must have shape ",
               ShapeStr(c.wte.shape), " (like 'wte'), got ", dwte.Describe());
  const std::pair<const char*, const Tensor*> all[] = {{"losses", &c.losses}, {"dinp", &dinp},
                                                       {"dwte", &dwte},         {"inp", &c.inp},
                                                       {"wte", &c.wte},         {"targets", &c.targets}};
  for (size_t i = 1; i < 3; i++)  // the two outputs against every other argument
    for (size_t j = 0; j < 6; j++)
      if (i != j) ExpectNoOverlap(op, all[i].first, *all[i].second, all[j].first, *all[j].second);
  ExpectCublas(a);
  const CrossEntropyArgs ce = Launch(c, dinp.raw(), dwte.ptr<float>(), float(gradScale), true);
  return CrossEntropyOn(a, ce);
}

}  // namespace

double cpu::CrossEntropy(const CrossEntropyArgs& ce, const std::string& op) {
  CheckTargets(op, ce.targets, ce.n, ce.v, ce.ignoreIndex);
  double total = 0.0;
  DispatchFloat(ce.dtype, [&](auto t) {
    using T = decltype(t);
    total = pt::CrossEntropy<T>(ce.losses, static_cast<T*>(ce.dinp), ce.dwte, static_cast<const T*>(ce.inp),
                                static_cast<const T*>(ce.wte), ce.targets, ce.n, ce.c, ce.v, ce.ignoreIndex,
                                ce.gradScale, ce.backward);
  });
  return total;
}

void RegisterCrossEntropy(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "crossEntropyForward", BuildCrossEntropyForward);
  RegisterOp(env, exports, "crossEntropyForwardBackward", BuildCrossEntropyForwardBackward);
}

}  // namespace pt
