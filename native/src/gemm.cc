// gemm.cc: oneDNN matmul (primitives cached by shape) and the portable blocked fallback.
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "cpu.h"
#include "scratch.h"

#ifdef PT_HAVE_DNNL
#include <oneapi/dnnl/dnnl.hpp>
#endif

namespace pt {

bool HaveOneDnn() {
#ifdef PT_HAVE_DNNL
  return true;
#else
  return false;
#endif
}

static std::atomic<int> gEngine{-1};

GemmEngine ActiveGemmEngine() {
  int e = gEngine.load();
  if (e < 0) {
    const char* env = std::getenv("PAJAMA_GEMM");
    bool portable = !HaveOneDnn() || (env && std::string(env) == "portable");
    e = int(portable ? GemmEngine::Portable : GemmEngine::OneDnn);
    gEngine.store(e);
  }
  return GemmEngine(e);
}

void SetGemmEngine(GemmEngine e) {
  PT_CHECK_ARG(e == GemmEngine::Portable || HaveOneDnn(),
               "setGemmEngine: this build has no oneDNN (install libdnnl-dev and rebuild)");
  gEngine.store(int(e));
}

bool Bf16GemmNative() {
  return ActiveGemmEngine() == GemmEngine::OneDnn && (Cpu().avx512bf16 || Cpu().amxBf16) &&
         ActiveIsa() >= Isa::Avx512Bf16;
}

std::string GemmEngineDescription() {
  if (ActiveGemmEngine() == GemmEngine::Portable) return "portable blocked GEMM (f32 accumulate)";
#ifdef PT_HAVE_DNNL
  const dnnl_version_t* v = dnnl_version();
  return Concat("onednn ", v->major, ".", v->minor, ".", v->patch,
                Bf16GemmNative() ? " (bf16 native)" : " (bf16 widened to f32)");
#else
  return "portable";
#endif
}

// ---------------------------------------------------------------------------------------------------------
// Portable engine (GotoBLAS-style, no library): C is walked in (kMc, kNc) blocks; for each K block of kKc, op(B)
// is packed once into f32 panels of nr columns shared by all threads, each thread packs a kMr-row strip of
// op(A) and runs a register-tiled micro-kernel over a group of panels, adding into an f32 accumulator of
// the C block. The block is written to C (alpha, beta, dtype) once its K loop ends. Accumulates in f32.
// The micro-kernel is compiled three times (baseline SSE2, AVX2+FMA, AVX-512) and picked by ActiveIsa(), so
// setIsaLimit() exercises each one; builds for other CPUs get the baseline one. Each C element sums its K
// blocks in order whatever the thread count, so results are the same bits for any number of threads.

namespace {

constexpr int kMr = 6;                                  // rows of the register tile
constexpr int64_t kKc = 256, kNc = 512, kMc = 16 * kMr;  // block sizes (kNc is a multiple of every nr)
constexpr int64_t kGroupCols = 128;                     // columns of one work item

inline float LoadAt(const void* p, DType t, int64_t i) {
  return t == DType::BF16 ? Bf16ToF32(static_cast<const bf16*>(p)[i]) : static_cast<const float*>(p)[i];
}

// acc (mr, nrUsed) += apack (kc, kMr)^T @ bpack (kc, NR); the tile lives in registers over the k loop.
template <int NR>
__attribute__((always_inline)) inline void MicroTileBody(int64_t kc, const float* ap, const float* bp, float* acc,
                                                         int64_t ldacc, int mr, int nrUsed) {
  float c[kMr][NR] = {};
  for (int64_t k = 0; k < kc; k++) {
    const float* a = ap + k * kMr;
    const float* b = bp + k * NR;
    for (int i = 0; i < kMr; i++) {
#pragma omp simd
      for (int j = 0; j < NR; j++) c[i][j] += a[i] * b[j];
    }
  }
  for (int i = 0; i < mr; i++)
    for (int j = 0; j < nrUsed; j++) acc[i * ldacc + j] += c[i][j];
}

using MicroTileFn = void (*)(int64_t, const float*, const float*, float*, int64_t, int, int);

void MicroTile8(int64_t kc, const float* ap, const float* bp, float* acc, int64_t ldacc, int mr, int nrUsed) {
  MicroTileBody<8>(kc, ap, bp, acc, ldacc, mr, nrUsed);
}
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma"))) void MicroTile16(int64_t kc, const float* ap, const float* bp, float* acc,
                                                     int64_t ldacc, int mr, int nrUsed) {
  MicroTileBody<16>(kc, ap, bp, acc, ldacc, mr, nrUsed);
}
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma"))) void MicroTile32(
    int64_t kc, const float* ap, const float* bp, float* acc, int64_t ldacc, int mr, int nrUsed) {
  MicroTileBody<32>(kc, ap, bp, acc, ldacc, mr, nrUsed);
}
#endif

// bpack (kc, nr) for columns [n0, n0 + nr) of op(B), rows [k0, k0 + kc); columns past N are zero.
template <typename T>
void PackB(float* dst, const T* b, int64_t ldb, bool transB, int64_t k0, int64_t kc, int64_t n0, int nr, int64_t N) {
  const int used = int(std::min<int64_t>(nr, N - n0));
  if (transB) {  // op(B)(k, n) = b[n * ldb + k]: read each column's run of k contiguously
    for (int j = 0; j < used; j++) {
      const T* src = b + (n0 + j) * ldb + k0;
      for (int64_t k = 0; k < kc; k++) dst[k * nr + j] = Ld(src + k);
    }
  } else {
    for (int64_t k = 0; k < kc; k++) {
      const T* src = b + (k0 + k) * ldb + n0;
      for (int j = 0; j < used; j++) dst[k * nr + j] = Ld(src + j);
    }
  }
  for (int64_t k = 0; k < kc; k++)
    for (int j = used; j < nr; j++) dst[k * nr + j] = 0.0f;
}

// apack (kc, kMr) for rows [m0, m0 + mr) of op(A), columns [k0, k0 + kc); rows past mr are zero.
template <typename T>
void PackA(float* dst, const T* a, int64_t lda, bool transA, int64_t m0, int mr, int64_t k0, int64_t kc) {
  if (transA) {  // op(A)(m, k) = a[k * lda + m]
    for (int64_t k = 0; k < kc; k++) {
      const T* src = a + (k0 + k) * lda + m0;
      for (int i = 0; i < mr; i++) dst[k * kMr + i] = Ld(src + i);
    }
  } else {
    for (int i = 0; i < mr; i++) {
      const T* src = a + (m0 + i) * lda + k0;
      for (int64_t k = 0; k < kc; k++) dst[k * kMr + i] = Ld(src + k);
    }
  }
  for (int64_t k = 0; k < kc; k++)
    for (int i = mr; i < kMr; i++) dst[k * kMr + i] = 0.0f;
}

template <typename T>
void GemmPortableTyped(const GemmArgs& g) {
  const int64_t M = g.M, N = g.N, K = g.K;
  const T* A = static_cast<const T*>(g.A);
  const T* B = static_cast<const T*>(g.B);
  int nr = 8;
  MicroTileFn micro = MicroTile8;
#if defined(__x86_64__) && defined(__GNUC__)
  if (ActiveIsa() >= Isa::Avx512) nr = 32, micro = MicroTile32;
  else if (ActiveIsa() >= Isa::Avx2) nr = 16, micro = MicroTile16;
#endif
  std::vector<float> bpack(size_t(kKc) * kNc);  // (nc / nr panels, kc, nr), shared
  std::vector<float> acc(size_t(kMc) * kNc);    // (mc, nc) f32 accumulator of the C block, shared
#pragma omp parallel num_threads(Threads())
  {
    std::vector<float> apack(size_t(kKc) * kMr);  // (kc, kMr), per thread
    for (int64_t m0 = 0; m0 < M; m0 += kMc) {
      const int64_t mc = std::min(kMc, M - m0), mTiles = (mc + kMr - 1) / kMr;
      for (int64_t n0 = 0; n0 < N; n0 += kNc) {
        const int64_t nc = std::min(kNc, N - n0), nPanels = (nc + nr - 1) / nr;
        const int64_t panelsPerGroup = kGroupCols / nr, groups = (nPanels + panelsPerGroup - 1) / panelsPerGroup;
#pragma omp for schedule(static)
        for (int64_t i = 0; i < mc; i++) std::fill_n(&acc[size_t(i) * nc], nc, 0.0f);
        for (int64_t k0 = 0; k0 < K; k0 += kKc) {
          const int64_t kc = std::min(kKc, K - k0);
#pragma omp for schedule(static)
          for (int64_t p = 0; p < nPanels; p++)
            PackB(&bpack[size_t(p) * kc * nr], B, g.ldb, g.transB, k0, kc, n0 + p * nr, nr, N);
          // (the implicit barrier above publishes bpack; the one below keeps it until every tile is done)
#pragma omp for schedule(static)
          for (int64_t item = 0; item < mTiles * groups; item++) {
            const int64_t mt = item / groups, grp = item % groups;
            const int mr = int(std::min<int64_t>(kMr, mc - mt * kMr));
            PackA(apack.data(), A, g.lda, g.transA, m0 + mt * kMr, mr, k0, kc);
            const int64_t p1 = std::min(nPanels, (grp + 1) * panelsPerGroup);
            for (int64_t p = grp * panelsPerGroup; p < p1; p++) {
              micro(kc, apack.data(), &bpack[size_t(p) * kc * nr], &acc[size_t(mt) * kMr * nc + p * nr], nc, mr,
                    int(std::min<int64_t>(nr, nc - p * nr)));
            }
          }
        }
#pragma omp for schedule(static)
        for (int64_t i = 0; i < mc; i++) {
          for (int64_t j = 0; j < nc; j++) {
            const int64_t idx = (m0 + i) * g.ldc + n0 + j;
            const float old = g.beta == 0.0f ? 0.0f : LoadAt(g.C, g.cType, idx) * g.beta;
            const float v = g.alpha * acc[size_t(i) * nc + j] + old;
            if (g.cType == DType::BF16) static_cast<bf16*>(g.C)[idx] = F32ToBf16(v);
            else static_cast<float*>(g.C)[idx] = v;
          }
        }
      }
    }
  }
}

// Runs `one` on each product of a batch in turn.
template <class F>
void ForEachProduct(const GemmArgs& g, F one) {
  if (g.batch == 1) return one(g);
  const size_t ab = g.abType == DType::BF16 ? sizeof(bf16) : sizeof(float);
  const size_t c = g.cType == DType::BF16 ? sizeof(bf16) : sizeof(float);
  GemmArgs p = g;
  p.batch = 1;
  for (int64_t i = 0; i < g.batch; i++) {
    p.A = static_cast<const char*>(g.A) + i * g.strideA * ab;
    p.B = static_cast<const char*>(g.B) + i * g.strideB * ab;
    p.C = static_cast<char*>(g.C) + i * g.strideC * c;
    one(p);
  }
}

}  // namespace

void GemmPortable(const GemmArgs& g) {
  if (g.M == 0 || g.N == 0) return;
  ForEachProduct(g, [](const GemmArgs& p) {
    if (p.abType == DType::BF16) GemmPortableTyped<bf16>(p);
    else GemmPortableTyped<float>(p);
  });
}

// ---------------------------------------------------------------------------------------------------------
#ifdef PT_HAVE_DNNL
namespace {

// (transA, transB, M, N, K, lda, ldb, ldc, abType, cType, alpha, beta, batch, strideA, strideB, strideC, threads)
using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, float, float,
                       int64_t, int64_t, int64_t, int64_t, int>;

// A primitive and the scratchpad it needs. Scratchpads are ours (scratchpad_mode::user), one per calling
// thread: oneDNN's library-managed scratchpad is shared between primitives unless it was built for concurrent
// execution, and attention runs products from several threads at once (widened bf16 products there gave
// wrong results with the shared one).
struct Planned {
  dnnl::matmul prim;
  dnnl::memory::desc a, b, c, scratch;
};

struct DnnlState {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::mutex mu;
  std::map<Key, std::shared_ptr<Planned>> cache;
};

void* ThreadScratchpad(size_t bytes) {
  thread_local ScratchBuffer pad;
  return pad.Reserve(bytes, "matrix product");
}

DnnlState& State() {
  static DnnlState s;
  return s;
}

dnnl::memory::data_type DnnlType(DType t) {
  return t == DType::BF16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

void GemmOneDnn(const GemmArgs& g) {
  DnnlState& s = State();
  const bool batched = g.batch > 1;
  // Inside a parallel region oneDNN runs on the calling thread, so a primitive is planned for that count.
  const int threads = InParallel() ? 1 : Threads();
  Key key{g.transA, g.transB, g.M, g.N, g.K, g.lda, g.ldb, g.ldc, int(g.abType), int(g.cType), g.alpha, g.beta,
          batched ? g.batch : 1, batched ? g.strideA : 0, batched ? g.strideB : 0, batched ? g.strideC : 0,
          threads};
  std::shared_ptr<Planned> plan;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.cache.find(key);
    if (it != s.cache.end()) plan = it->second;
  }
  if (!plan) {
    using dims = dnnl::memory::dims;
    // A batch is a leading dimension; a single product stays 2-D, as it always was.
    auto desc = [&](int64_t rows, int64_t cols, DType t, dims strides, int64_t batchStride) {
      if (!batched) return dnnl::memory::desc(dims{rows, cols}, DnnlType(t), strides);
      return dnnl::memory::desc(dims{g.batch, rows, cols}, DnnlType(t), dims{batchStride, strides[0], strides[1]});
    };
    dnnl::memory::desc aDesc = desc(g.M, g.K, g.abType, g.transA ? dims{1, g.lda} : dims{g.lda, 1}, g.strideA);
    dnnl::memory::desc bDesc = desc(g.K, g.N, g.abType, g.transB ? dims{1, g.ldb} : dims{g.ldb, 1}, g.strideB);
    dnnl::memory::desc cDesc = desc(g.M, g.N, g.cType, dims{g.ldc, 1}, g.strideC);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (g.alpha != 1.0f) attr.set_output_scales(0, {g.alpha});
    if (g.beta != 0.0f) {
      dnnl::post_ops po;
      po.append_sum(g.beta);
      attr.set_post_ops(po);
    }
    dnnl::matmul::desc md(aDesc, bDesc, cDesc);
    dnnl::matmul::primitive_desc pd(md, attr, s.engine);
    plan = std::make_shared<Planned>(Planned{dnnl::matmul(pd), aDesc, bDesc, cDesc, pd.scratchpad_desc()});
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.cache.size() > 512) s.cache.clear();
    s.cache[key] = plan;
  }
  thread_local dnnl::stream stream(s.engine);
  dnnl::memory a(plan->a, s.engine, const_cast<void*>(g.A));
  dnnl::memory b(plan->b, s.engine, const_cast<void*>(g.B));
  dnnl::memory c(plan->c, s.engine, g.C);
  dnnl::memory scratch(plan->scratch, s.engine, ThreadScratchpad(plan->scratch.get_size()));
  plan->prim.execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c},
                              {DNNL_ARG_SCRATCHPAD, scratch}});
  stream.wait();
}

// oneDNN 2.x has no f32 x f32 -> bf16 matmul (primitive creation fails): run it into an f32 copy of C (holding
// C itself when beta != 0, for the sum post-op) and round that into C.
void GemmOneDnnAnyC(const GemmArgs& g) {
  if (!(g.abType == DType::F32 && g.cType == DType::BF16)) return GemmOneDnn(g);
  std::vector<float> c(size_t(g.M) * g.N);
  bf16* dst = static_cast<bf16*>(g.C);
  if (g.beta != 0.0f) {
#pragma omp parallel for num_threads(Threads()) schedule(static)
    for (int64_t m = 0; m < g.M; m++)
      for (int64_t n = 0; n < g.N; n++) c[size_t(m) * g.N + n] = Bf16ToF32(dst[m * g.ldc + n]);
  }
  GemmArgs w = g;
  w.C = c.data();
  w.ldc = g.N;
  w.cType = DType::F32;
  GemmOneDnn(w);
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t m = 0; m < g.M; m++)
    for (int64_t n = 0; n < g.N; n++) dst[m * g.ldc + n] = F32ToBf16(c[size_t(m) * g.N + n]);
}

// Without native bf16 products, widen the bf16 operands to f32 once and multiply in f32.
void GemmWidened(const GemmArgs& g) {
  auto widen = [](const void* p, int64_t rows, int64_t cols, int64_t ld, std::vector<float>& out) {
    out.resize(size_t(rows) * cols);
    const bf16* src = static_cast<const bf16*>(p);
#pragma omp parallel for num_threads(Threads()) schedule(static)
    for (int64_t r = 0; r < rows; r++)
      for (int64_t c = 0; c < cols; c++) out[size_t(r) * cols + c] = Bf16ToF32(src[r * ld + c]);
  };
  std::vector<float> a, b;
  GemmArgs w = g;
  widen(g.A, g.transA ? g.K : g.M, g.transA ? g.M : g.K, g.lda, a);
  widen(g.B, g.transB ? g.N : g.K, g.transB ? g.K : g.N, g.ldb, b);
  w.A = a.data();
  w.lda = g.transA ? g.M : g.K;
  w.B = b.data();
  w.ldb = g.transB ? g.K : g.N;
  w.abType = DType::F32;
  GemmOneDnnAnyC(w);
}

}  // namespace
#endif

// An empty product (K == 0): C = beta * C, with beta == 0 clearing C (NaN included), as BLAS does. Handled
// here so every engine agrees; oneDNN would otherwise be handed zero-sized operands.
static void ScaleC(const GemmArgs& g) {
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t m = 0; m < g.M; m++) {
    for (int64_t n = 0; n < g.N; n++) {
      const int64_t idx = m * g.ldc + n;
      const float old = g.beta == 0.0f ? 0.0f : LoadAt(g.C, g.cType, idx) * g.beta;
      if (g.cType == DType::BF16) static_cast<bf16*>(g.C)[idx] = F32ToBf16(old);
      else static_cast<float*>(g.C)[idx] = old;
    }
  }
}

void Gemm(const GemmArgs& g) {
  if (g.M == 0 || g.N == 0 || g.batch == 0) return;
  if (g.K == 0) return ForEachProduct(g, ScaleC);
#ifdef PT_HAVE_DNNL
  if (ActiveGemmEngine() == GemmEngine::OneDnn) {
    try {
      if (g.abType == DType::BF16 && !Bf16GemmNative()) ForEachProduct(g, GemmWidened);
      else if (g.abType == DType::F32 && g.cType == DType::BF16) ForEachProduct(g, GemmOneDnnAnyC);
      else GemmOneDnn(g);
    } catch (const dnnl::error& e) {
      PT_CHECK_ENGINE(false, "oneDNN matmul failed (", e.what(), ", status ", int(e.status), ") for M=", g.M,
                      " N=", g.N, " K=", g.K);
    }
    return;
  }
#endif
  GemmPortable(g);
}

}  // namespace pt
