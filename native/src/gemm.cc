// gemm.cc: oneDNN matmul (primitives cached by shape) and the portable blocked fallback.
#include "gemm.h"

#include <atomic>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "cpu.h"

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
// Portable engine: pack a K-block of op(B) into f32 panels, then a register-blocked micro-kernel written so
// the compiler vectorises it at the baseline ISA. Accumulates in f32.

namespace {

constexpr int kMr = 4, kNr = 16, kKc = 256, kNc = 512;

inline float LoadAt(const void* p, DType t, int64_t i) {
  return t == DType::BF16 ? Bf16ToF32(static_cast<const bf16*>(p)[i]) : static_cast<const float*>(p)[i];
}

}  // namespace

void GemmPortable(const GemmArgs& g) {
  const int64_t M = g.M, N = g.N, K = g.K;
  if (M == 0 || N == 0) return;
  // Scale or clear C first, then accumulate alpha * A @ B into an f32 view of each C tile.
  const int64_t nBlocks = (N + kNc - 1) / kNc;
  const int64_t mTiles = (M + kMr - 1) / kMr;
#pragma omp parallel num_threads(Threads())
  {
    std::vector<float> bpack(size_t(kKc) * kNc);
    std::vector<float> apack(size_t(kMr) * kKc);
    for (int64_t nb = 0; nb < nBlocks; nb++) {
      const int64_t n0 = nb * kNc, nc = std::min<int64_t>(kNc, N - n0);
      const int64_t nPanels = (nc + kNr - 1) / kNr;
      // Each thread owns a range of M tiles and keeps an f32 accumulator for them across the K loop.
#pragma omp for schedule(static)
      for (int64_t mt = 0; mt < mTiles; mt++) {
        const int64_t m0 = mt * kMr, mr = std::min<int64_t>(kMr, M - m0);
        std::vector<float> acc(size_t(kMr) * nc, 0.0f);
        for (int64_t k0 = 0; k0 < K; k0 += kKc) {
          const int64_t kc = std::min<int64_t>(kKc, K - k0);
          // Pack B panel (kc, nc) for this thread (small, L2-resident).
          for (int64_t p = 0; p < nPanels; p++) {
            for (int64_t k = 0; k < kc; k++) {
              float* dst = &bpack[(size_t(p) * kc + k) * kNr];
              for (int j = 0; j < kNr; j++) {
                int64_t n = n0 + p * kNr + j;
                if (n >= N) { dst[j] = 0.0f; continue; }
                int64_t idx = g.transB ? n * g.ldb + (k0 + k) : (k0 + k) * g.ldb + n;
                dst[j] = LoadAt(g.B, g.abType, idx);
              }
            }
          }
          for (int i = 0; i < kMr; i++) {
            for (int64_t k = 0; k < kc; k++) {
              float v = 0.0f;
              if (i < mr) {
                int64_t m = m0 + i;
                int64_t idx = g.transA ? (k0 + k) * g.lda + m : m * g.lda + (k0 + k);
                v = LoadAt(g.A, g.abType, idx);
              }
              apack[size_t(i) * kc + k] = v;
            }
          }
          for (int64_t p = 0; p < nPanels; p++) {
            float c[kMr][kNr] = {};
            const float* bp = &bpack[size_t(p) * kc * kNr];
            for (int64_t k = 0; k < kc; k++) {
              const float* brow = bp + k * kNr;
              for (int i = 0; i < kMr; i++) {
                const float a = apack[size_t(i) * kc + k];
#pragma omp simd
                for (int j = 0; j < kNr; j++) c[i][j] += a * brow[j];
              }
            }
            for (int i = 0; i < kMr; i++)
              for (int j = 0; j < kNr; j++) {
                int64_t n = p * kNr + j;
                if (n < nc) acc[size_t(i) * nc + n] += c[i][j];
              }
          }
        }
        for (int i = 0; i < mr; i++) {
          for (int64_t j = 0; j < nc; j++) {
            int64_t idx = (m0 + i) * g.ldc + n0 + j;
            float old = g.beta == 0.0f ? 0.0f : LoadAt(g.C, g.cType, idx) * g.beta;
            float v = g.alpha * acc[size_t(i) * nc + j] + old;
            if (g.cType == DType::BF16) static_cast<bf16*>(g.C)[idx] = F32ToBf16(v);
            else static_cast<float*>(g.C)[idx] = v;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------------------
#ifdef PT_HAVE_DNNL
namespace {

using Key = std::tuple<bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, float, float>;

struct DnnlState {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  std::mutex mu;
  std::map<Key, std::shared_ptr<dnnl::matmul>> cache;
};

DnnlState& State() {
  static DnnlState s;
  return s;
}

dnnl::memory::data_type DnnlType(DType t) {
  return t == DType::BF16 ? dnnl::memory::data_type::bf16 : dnnl::memory::data_type::f32;
}

void GemmOneDnn(const GemmArgs& g) {
  DnnlState& s = State();
  using dims = dnnl::memory::dims;
  dnnl::memory::desc aDesc(dims{g.M, g.K}, DnnlType(g.abType), g.transA ? dims{1, g.lda} : dims{g.lda, 1});
  dnnl::memory::desc bDesc(dims{g.K, g.N}, DnnlType(g.abType), g.transB ? dims{1, g.ldb} : dims{g.ldb, 1});
  dnnl::memory::desc cDesc(dims{g.M, g.N}, DnnlType(g.cType), dims{g.ldc, 1});
  Key key{g.transA, g.transB, g.M, g.N, g.K, g.lda, g.ldb, g.ldc, int(g.abType), int(g.cType), g.alpha, g.beta};
  std::shared_ptr<dnnl::matmul> prim;
  {
    std::lock_guard<std::mutex> lock(s.mu);
    auto it = s.cache.find(key);
    if (it != s.cache.end()) prim = it->second;
  }
  if (!prim) {
    dnnl::primitive_attr attr;
    if (g.alpha != 1.0f) attr.set_output_scales(0, {g.alpha});
    if (g.beta != 0.0f) {
      dnnl::post_ops po;
      po.append_sum(g.beta);
      attr.set_post_ops(po);
    }
    dnnl::matmul::desc md(aDesc, bDesc, cDesc);
    dnnl::matmul::primitive_desc pd(md, attr, s.engine);
    prim = std::make_shared<dnnl::matmul>(pd);
    std::lock_guard<std::mutex> lock(s.mu);
    if (s.cache.size() > 512) s.cache.clear();
    s.cache[key] = prim;
  }
  dnnl::stream stream(s.engine);
  dnnl::memory a(aDesc, s.engine, const_cast<void*>(g.A));
  dnnl::memory b(bDesc, s.engine, const_cast<void*>(g.B));
  dnnl::memory c(cDesc, s.engine, g.C);
  prim->execute(stream, {{DNNL_ARG_SRC, a}, {DNNL_ARG_WEIGHTS, b}, {DNNL_ARG_DST, c}});
  stream.wait();
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
  GemmOneDnn(w);
}

}  // namespace
#endif

void Gemm(const GemmArgs& g) {
  if (g.M == 0 || g.N == 0) return;
#ifdef PT_HAVE_DNNL
  if (ActiveGemmEngine() == GemmEngine::OneDnn) {
    try {
      if (g.abType == DType::BF16 && !Bf16GemmNative()) GemmWidened(g);
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
