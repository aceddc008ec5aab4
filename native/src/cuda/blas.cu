// blas.cu: matrix products on the GPU through cuBLASLt: cuda::Gemm (pt::Gemm's contract, gemm.h), the linear
// layer's launchers (cuda::MatmulForward / MatmulBackward, the twins of ops/linear.cc) and GemmFor, which the
// fused LM head (cross_entropy.cu) uses.
// Accumulation rule: dweight (a parameter gradient, f32) accumulates (+=, a beta = 1 product straight into
// it); dinp (an activation gradient, in the activation dtype) is overwritten.
//
// Row-major products on a column-major library: a row-major X (r, c) with leading dimension ld is the
// column-major X^T (c, r) with the same ld, so C = op(A) op(B) is computed as C^T = op(B)^T op(A)^T: cuBLASLt's
// "A" is our B and its "B" is our A, with m = N, n = M, k = K and the transposes kept.
// Types: A/B f32 or bf16, C f32 or bf16, always CUBLAS_COMPUTE_32F with f32 alpha/beta (cuBLASLt runs A/B bf16
// with C/D bf16 or f32, and A/B f32 with C/D f32; f32 inputs with a bf16 C go through an f32 copy of C).
// f32 products are exact f32 (not TF32): the tests hold them to the CPU's float64 bounds.
//
// State, per device: one cuBLASLt handle (created on first use) and a cache of plans (matmul descriptor, the
// three layouts, the heuristic's algorithm and its workspace size) keyed by shape, leading dimensions,
// strides, dtypes and the alignment of the pointers (cuBLASLt assumes 256-byte aligned matrices unless told
// otherwise, so the alignment the heuristic is given is the pointers' own). The workspace an algorithm asks
// for is a cuda::Buffer from the caching allocator for the one call (stream-ordered, see runtime.h). Handles
// and plans live for the process: the addon is never unloaded, and destroying cuBLASLt objects from static
// destructors would run after the CUDA runtime is gone.
// Builds without cuBLASLt (PT_HAVE_CUBLAS undefined) compile the small kernels below but no cuBLASLt call:
// HaveCublas() is false and the launchers throw an Engine error with the build's reason.
#include <cuda_runtime.h>

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "../launch.h"
#include "blas.h"
#include "check.h"
#include "kernels.cuh"
#include "runtime.h"

#ifndef PT_CUBLAS_REASON
#define PT_CUBLAS_REASON "this build was configured without cuBLASLt"
#endif

namespace pt {
namespace cuda {

// ---------------------------------------------------------------------------------------------------------
// Kernels: the corner cases cuBLASLt does not take. Dtypes are run-time arguments (uniform branches): these
// run rarely, and being plain functions they are compiled in every build.

__device__ __forceinline__ float LoadAs(const void* p, DType t, int64_t i) {
  return t == DType::F32 ? static_cast<const float*>(p)[i] : LoadF32(static_cast<const __nv_bfloat16*>(p)[i]);
}
__device__ __forceinline__ void StoreTo(void* p, DType t, int64_t i, float v) {
  if (t == DType::F32) static_cast<float*>(p)[i] = v;
  else static_cast<__nv_bfloat16*>(p)[i] = StoreAs<__nv_bfloat16>(v);
}

// An empty product (K == 0): C = beta * C over batch matrices (M, N), ldc, strideC; beta == 0 clears C (NaN
// included), as BLAS and pt::Gemm do.
__global__ void GemmScaleKernel(void* c, DType cType, int64_t m, int64_t n, int64_t ldc, int64_t strideC,
                                int64_t batch, float beta) {
  const int64_t total = batch * m * n;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t b = i / (m * n), r = (i / n) % m, col = i % n;
    const int64_t at = b * strideC + r * ldc + col;
    StoreTo(c, cType, at, beta == 0.0f ? 0.0f : beta * LoadAs(c, cType, at));
  }
}

// dst (batch, M, N) = src (batch, M, N), converted between dtypes (bf16 rounded like F32ToBf16), each with its
// own leading dimension and batch stride.
__global__ void GemmConvertKernel(void* dst, DType dstType, int64_t ldd, int64_t strideD, const void* src,
                                  DType srcType, int64_t lds, int64_t strideS, int64_t m, int64_t n,
                                  int64_t batch) {
  const int64_t total = batch * m * n;
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t b = i / (m * n), r = (i / n) % m, col = i % n;
    StoreTo(dst, dstType, b * strideD + r * ldd + col, LoadAs(src, srcType, b * strideS + r * lds + col));
  }
}

namespace {

// Checks of the launcher's own contract (the builders check shapes first; this turns a bad call into a clear
// error instead of a cuBLASLt INVALID_VALUE or an out-of-bounds access). Returns false for an empty product
// (nothing to do); leading dimensions are checked only for the matrices a product reads or writes.
bool CheckGemmArgs(const GemmArgs& g, const std::string& op) {
  PT_CHECK_ARG(g.M >= 0 && g.N >= 0 && g.K >= 0 && g.batch >= 0, op, ": GEMM sizes must be >= 0, got M ", g.M,
               " N ", g.N, " K ", g.K, " batch ", g.batch);
  PT_CHECK_ARG(g.abType == DType::F32 || g.abType == DType::BF16, op, ": GEMM inputs must be f32 or bf16, got ",
               DTypeName(g.abType));
  PT_CHECK_ARG(g.cType == DType::F32 || g.cType == DType::BF16, op, ": GEMM output must be f32 or bf16, got ",
               DTypeName(g.cType));
  if (g.M == 0 || g.N == 0 || g.batch == 0) return false;
  PT_CHECK_ARG(g.ldc >= g.N, op, ": GEMM ldc ", g.ldc, " is below the N ", g.N, " columns of C");
  PT_CHECK_ARG(g.batch <= std::numeric_limits<int32_t>::max(), op, ": GEMM batch ", g.batch,
               " exceeds cuBLASLt's int32 batch count");
  PT_CHECK_ARG(g.batch == 1 || (g.strideA >= 0 && g.strideB >= 0 && g.strideC >= 0), op,
               ": GEMM batch strides must be >= 0");
  if (g.K == 0) return true;
  PT_CHECK_ARG(g.lda >= (g.transA ? g.M : g.K), op, ": GEMM lda ", g.lda, " is below the ", g.transA ? "M " : "K ",
               g.transA ? g.M : g.K, " columns of A");
  PT_CHECK_ARG(g.ldb >= (g.transB ? g.K : g.N), op, ": GEMM ldb ", g.ldb, " is below the ", g.transB ? "K " : "N ",
               g.transB ? g.K : g.N, " columns of B");
  return true;
}

// Blocks for a grid-stride kernel over `items` elements.
unsigned ElementBlocks(int64_t items) { return GridBlocks(items, kThreads); }

void ScaleC(const GemmArgs& g, cudaStream_t stream, const std::string& op) {
  GemmScaleKernel<<<ElementBlocks(g.batch * g.M * g.N), kThreads, 0, stream>>>(g.C, g.cType, g.M, g.N, g.ldc,
                                                                               g.strideC, g.batch, g.beta);
  PT_CUDA_LAUNCHED(op, "GemmScaleKernel");
}

}  // namespace

#ifdef PT_HAVE_CUBLAS

bool HaveCublas() { return true; }
const char* CublasReason() { return ""; }

namespace {

// The most workspace an algorithm may ask for: what NVIDIA recommends for Hopper (32 MiB; 4 MiB would do on
// Ampere). Only what the chosen algorithm needs is allocated, per call.
constexpr uint64_t kMaxWorkspaceBytes = uint64_t(32) << 20;

cudaDataType_t CudaType(DType t) { return t == DType::BF16 ? CUDA_R_16BF : CUDA_R_32F; }

// The largest power of two (at most 256) dividing the address of every matrix of a batch.
uint32_t Alignment(const void* p, int64_t batch, int64_t stride, DType t) {
  uint64_t bits = uint64_t(reinterpret_cast<uintptr_t>(p));
  if (batch > 1) bits |= uint64_t(stride) * DTypeSize(t);
  uint32_t a = 256;
  while (a > 1 && bits % a != 0) a >>= 1;
  return a;
}

// A matmul descriptor, the layouts of cuBLASLt's A (our B), B (our A) and C = D (our C), and the algorithm
// the heuristic chose for them.
struct Plan {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
  cublasLtMatmulAlgo_t algo{};
  size_t workspace = 0;
  Plan() = default;
  Plan(const Plan&) = delete;
  Plan& operator=(const Plan&) = delete;
  ~Plan() {  // statuses ignored: nothing useful can be done about a failed destroy
    if (c) cublasLtMatrixLayoutDestroy(c);
    if (b) cublasLtMatrixLayoutDestroy(b);
    if (a) cublasLtMatrixLayoutDestroy(a);
    if (desc) cublasLtMatmulDescDestroy(desc);
  }
};

// device, transA, transB, M, N, K, lda, ldb, ldc, abType, cType, batch, strideA, strideB, strideC, and the
// alignments of A, B and C.
using PlanKey = std::array<int64_t, 18>;

// Plans kept per process: enough for every shape of a model's step several times over; when full the cache is
// cleared (plans in use stay alive through their shared_ptr).
constexpr size_t kMaxPlans = 1024;

struct LtState {
  std::mutex mu;
  std::map<int, cublasLtHandle_t> handles;
  std::map<PlanKey, std::shared_ptr<const Plan>> plans;
};

LtState& Lt() {
  static LtState* state = new LtState();  // never destroyed: see the file header
  return *state;
}

// Caller holds Lt().mu.
cublasLtHandle_t HandleLocked(LtState& s, int device, const std::string& op) {
  auto it = s.handles.find(device);
  if (it != s.handles.end()) return it->second;
  cublasLtHandle_t h = nullptr;
  PT_CUBLAS_CHECK(op, cublasLtCreate(&h));
  s.handles.emplace(device, h);
  return h;
}

void SetLayoutBatch(cublasLtMatrixLayout_t layout, int64_t batch, int64_t stride, const std::string& op) {
  if (batch <= 1) return;
  const int32_t count = int32_t(batch);
  PT_CUBLAS_CHECK(op, cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count,
                                                       sizeof(count)));
  PT_CUBLAS_CHECK(op, cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET,
                                                       &stride, sizeof(stride)));
}

// The descriptors of C^T (N, M) = op(B)^T (N, K) @ op(A)^T (K, M) in column-major terms, and the heuristic's
// first algorithm for them. cType is the type of the C that cuBLASLt reads and writes (f32 for the f32-input,
// bf16-output case, whose f32 copy of C has ldc = N and stride M * N).
std::shared_ptr<const Plan> MakePlan(cublasLtHandle_t handle, const GemmArgs& g, DType cType, int64_t ldc,
                                     int64_t strideC, const uint32_t align[3], const std::string& op) {
  auto plan = std::make_shared<Plan>();
  PT_CUBLAS_CHECK(op, cublasLtMatmulDescCreate(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t opA = g.transB ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's A is our B
  const cublasOperation_t opB = g.transA ? CUBLAS_OP_T : CUBLAS_OP_N;  // cuBLASLt's B is our A
  PT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &opA, sizeof(opA)));
  PT_CUBLAS_CHECK(op, cublasLtMatmulDescSetAttribute(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &opB, sizeof(opB)));

  // Layouts describe the matrices as stored (before the op): our B in memory is column-major (N, K) with ldb,
  // or (K, N) when transB; our A is (K, M) with lda, or (M, K) when transA; our C is (N, M) with ldc.
  const cudaDataType_t ab = CudaType(g.abType);
  PT_CUBLAS_CHECK(op, cublasLtMatrixLayoutCreate(&plan->a, ab, uint64_t(g.transB ? g.K : g.N),
                                                 uint64_t(g.transB ? g.N : g.K), g.ldb));
  PT_CUBLAS_CHECK(op, cublasLtMatrixLayoutCreate(&plan->b, ab, uint64_t(g.transA ? g.M : g.K),
                                                 uint64_t(g.transA ? g.K : g.M), g.lda));
  PT_CUBLAS_CHECK(op, cublasLtMatrixLayoutCreate(&plan->c, CudaType(cType), uint64_t(g.N), uint64_t(g.M), ldc));
  SetLayoutBatch(plan->a, g.batch, g.strideB, op);
  SetLayoutBatch(plan->b, g.batch, g.strideA, op);
  SetLayoutBatch(plan->c, g.batch, strideC, op);

  // The preference is only needed for the query: destroyed on every path out of this function.
  struct Preference {
    cublasLtMatmulPreference_t p = nullptr;
    ~Preference() {
      if (p) cublasLtMatmulPreferenceDestroy(p);
    }
  } preference;
  PT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceCreate(&preference.p));
  cublasLtMatmulPreference_t pref = preference.p;
  const uint64_t maxWorkspace = kMaxWorkspaceBytes;
  PT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                           &maxWorkspace, sizeof(maxWorkspace)));
  const uint32_t alignA = align[1], alignB = align[0], alignC = align[2];  // cuBLASLt's A is our B
  PT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                           &alignA, sizeof(alignA)));
  PT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                           &alignB, sizeof(alignB)));
  PT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                           &alignC, sizeof(alignC)));
  PT_CUBLAS_CHECK(op, cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                           &alignC, sizeof(alignC)));

  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  PT_CUBLAS_CHECK(op, cublasLtMatmulAlgoGetHeuristic(handle, plan->desc, plan->a, plan->b, plan->c, plan->c, pref,
                                                     1, &result, &found));
  PT_CHECK_ENGINE(found > 0 && result.state == CUBLAS_STATUS_SUCCESS, op, ": cuBLASLt has no algorithm for the ",
                  DTypeName(g.abType), " -> ", DTypeName(cType), " product M ", g.M, " N ", g.N, " K ", g.K,
                  " (transA ", g.transA, ", transB ", g.transB, ", lda ", g.lda, ", ldb ", g.ldb, ", ldc ", ldc,
                  ", batch ", g.batch, ", alignments A ", align[0], " B ", align[1], " C ", align[2], " bytes)");
  plan->algo = result.algo;
  plan->workspace = result.workspaceSize;
  return plan;
}

// The cached plan of this product on `device`, made on first use.
std::shared_ptr<const Plan> PlanFor(int device, const GemmArgs& g, DType cType, int64_t ldc, int64_t strideC,
                                    const void* c, cublasLtHandle_t* handle, const std::string& op) {
  const uint32_t align[3] = {Alignment(g.A, g.batch, g.strideA, g.abType),
                             Alignment(g.B, g.batch, g.strideB, g.abType), Alignment(c, g.batch, strideC, cType)};
  const PlanKey key{device,  g.transA, g.transB,           g.M,       g.N,      g.K,      g.lda,    g.ldb,   ldc,
                    int64_t(g.abType), int64_t(cType), g.batch, g.strideA, g.strideB, strideC, align[0], align[1],
                    align[2]};
  LtState& s = Lt();
  std::lock_guard<std::mutex> lock(s.mu);
  *handle = HandleLocked(s, device, op);
  auto it = s.plans.find(key);
  if (it != s.plans.end()) return it->second;
  std::shared_ptr<const Plan> plan = MakePlan(*handle, g, cType, ldc, strideC, align, op);
  if (s.plans.size() >= kMaxPlans) s.plans.clear();
  s.plans.emplace(key, plan);
  return plan;
}

// C (or the f32 copy standing in for it) = alpha op(A) op(B) + beta C through cuBLASLt.
void LtMatmul(int device, const GemmArgs& g, void* c, DType cType, int64_t ldc, int64_t strideC,
              cudaStream_t stream, const std::string& op) {
  cublasLtHandle_t handle = nullptr;
  std::shared_ptr<const Plan> plan = PlanFor(device, g, cType, ldc, strideC, c, &handle, op);
  Buffer workspace(device, plan->workspace, op);
  const float alpha = g.alpha, beta = g.beta;
  PT_CUBLAS_CHECK(op, cublasLtMatmul(handle, plan->desc, &alpha, g.B, plan->a, g.A, plan->b, &beta, c, plan->c, c,
                                     plan->c, &plan->algo, workspace.get(), plan->workspace, stream));
}

}  // namespace

void GemmFor(const GemmArgs& g, cudaStream_t stream, const std::string& op) {
  if (!CheckGemmArgs(g, op)) return;
  if (g.K == 0) return ScaleC(g, stream, op);
  const int device = StreamDevice(stream);
  if (g.abType == DType::BF16 || g.cType == DType::F32) {
    return LtMatmul(device, g, g.C, g.cType, g.ldc, g.strideC, stream, op);
  }

  // f32 inputs, bf16 output: cuBLASLt has no such combination, so the product goes into an f32 copy of C
  // (batch, M, N), contiguous, then is rounded into C once.
  const int64_t elems = g.batch * g.M * g.N;
  Buffer tmp(device, size_t(elems) * sizeof(float), op);
  const int64_t strideT = g.M * g.N;
  if (g.beta != 0.0f) {
    GemmConvertKernel<<<ElementBlocks(elems), kThreads, 0, stream>>>(tmp.get(), DType::F32, g.N, strideT, g.C,
                                                                     DType::BF16, g.ldc, g.strideC, g.M, g.N,
                                                                     g.batch);
    PT_CUDA_LAUNCHED(op, "GemmConvertKernel");
  }
  LtMatmul(device, g, tmp.get(), DType::F32, g.N, strideT, stream, op);
  GemmConvertKernel<<<ElementBlocks(elems), kThreads, 0, stream>>>(g.C, DType::BF16, g.ldc, g.strideC, tmp.get(),
                                                                   DType::F32, g.N, strideT, g.M, g.N, g.batch);
  PT_CUDA_LAUNCHED(op, "GemmConvertKernel");
}

#else  // no cuBLASLt in this build

bool HaveCublas() { return false; }
const char* CublasReason() { return PT_CUBLAS_REASON; }

void GemmFor(const GemmArgs& g, cudaStream_t stream, const std::string& op) {
  if (!CheckGemmArgs(g, op)) return;
  if (g.K == 0) return ScaleC(g, stream, op);  // needs no cuBLASLt
  FailWithoutCublas(op, __FILE__, __LINE__);
}

#endif  // PT_HAVE_CUBLAS

void FailWithoutCublas(const std::string& op, const char* file, int line) {
  FailAt(ErrorKind::Engine, file, line,
         Concat(op, ": this build has no cuBLASLt (", CublasReason(),
                "); rebuild with the CUDA toolkit's cuBLAS, or with PAJAMA_CUBLAS_ROOT set to a directory that "
                "holds include/cublasLt.h and lib/libcublasLt.so*"));
}

void Gemm(const GemmArgs& g, cudaStream_t stream) { GemmFor(g, stream, "gemm"); }

// out (N, OC) = inp (N, C) @ weight (OC, C)^T
void MatmulForward(const MatmulArgs& a, cudaStream_t stream) {
  GemmArgs g;
  g.transB = true;
  g.M = a.n, g.N = a.oc, g.K = a.c;
  g.A = a.inp, g.lda = a.c;
  g.B = a.weight, g.ldb = a.c;
  g.C = a.out, g.ldc = a.oc;
  g.abType = g.cType = a.dtype;
  GemmFor(g, stream, "matmulForward");
}

// dinp (N, C) = dout (N, OC) @ weight (OC, C), overwritten; dweight (OC, C) f32 += dout^T @ inp (N, C).
// Either output may be null (skipped).
void MatmulBackward(const MatmulArgs& a, cudaStream_t stream) {
  if (a.dweight) {
    GemmArgs g;
    g.transA = true;
    g.M = a.oc, g.N = a.c, g.K = a.n;
    g.A = a.dout, g.lda = a.oc;
    g.B = a.inp, g.ldb = a.c;
    g.abType = a.dtype;
    g.C = a.dweight, g.ldc = a.c, g.cType = DType::F32;
    g.beta = 1.0f;
    GemmFor(g, stream, "matmulBackward");
  }
  if (a.out) {
    GemmArgs g;
    g.M = a.n, g.N = a.c, g.K = a.oc;
    g.A = a.dout, g.lda = a.oc;
    g.B = a.weight, g.ldb = a.c;
    g.abType = g.cType = a.dtype;
    g.C = a.out, g.ldc = a.c;
    GemmFor(g, stream, "matmulBackward");
  }
}

}  // namespace cuda
}  // namespace pt
