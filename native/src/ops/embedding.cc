// embedding.cc: token embedding lookup (a gather of wte rows) and its backward (a scatter-add into dwte).
// Accumulation rule: parameter gradients accumulate (dwte +=, always f32); activation gradients are
// overwritten (this op has none: ids are integers).
// Every id is checked against [0, vocabLimit) before anything is written, so a bad batch leaves out/dwte
// untouched. vocabLimit <= V lets a padded embedding table (V rounded up for the GEMMs) refuse the pad rows.
// The backward is race-free and deterministic without atomics: threads own disjoint column ranges of dwte
// and each walks the ids in order, so every element sums its contributions in the same order for any
// thread count.
#include <algorithm>
#include <cstring>

#include "../cpu.h"
#include "../op.h"
#include "ops.h"

namespace pt {

namespace {

// Columns per work item of the backward: 64 f32 = four cache lines of a dwte row, so threads rarely share one.
constexpr int64_t kColumnBlock = 64;

// ids (N): throws naming the op, the first bad position and its id.
void CheckIds(const std::string& op, const int32_t* ids, int64_t n, int64_t vocabLimit) {
  int64_t bad = n;
#pragma omp parallel for num_threads(Threads()) schedule(static) reduction(min : bad)
  for (int64_t i = 0; i < n; i++) {
    if ((ids[i] < 0 || ids[i] >= vocabLimit) && i < bad) bad = i;
  }
  PT_CHECK_ARG(bad == n, op, ": ids[", bad, "] = ", bad < n ? ids[bad] : 0, " is outside the vocabulary [0, ",
               vocabLimit, ")");
}

// out (N, C), ids (N), wte (V, C)
template <typename T>
void EmbeddingForward(T* out, const int32_t* ids, const T* wte, int64_t n, int64_t c) {
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    std::memcpy(out + i * c, wte + int64_t(ids[i]) * c, size_t(c) * sizeof(T));
  }
}

// dwte (V, C) +=, ids (N), dout (N, C)
template <typename T>
void EmbeddingBackward(float* dwte, const int32_t* ids, const T* dout, int64_t n, int64_t c) {
  const int64_t blocks = (c + kColumnBlock - 1) / kColumnBlock;
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t b = 0; b < blocks; b++) {
    const int64_t c0 = b * kColumnBlock, c1 = std::min(c, c0 + kColumnBlock);
    for (int64_t i = 0; i < n; i++) {
      float* dst = dwte + int64_t(ids[i]) * c;
      const T* src = dout + i * c;
#pragma omp simd
      for (int64_t j = c0; j < c1; j++) dst[j] += Ld(src + j);
    }
  }
}

// LaunchOn (op.h) for the embedding launchers, which also take the op's name for their id errors.
Kernel LaunchEmbedding(OpArgs& a, const EmbeddingArgs& e, void (*cpuFn)(const EmbeddingArgs&, const std::string&),
                       void (*cudaFn)(const EmbeddingArgs&, const std::string&, cudaStream_t)) {
  const std::string op = a.op();
  return ForDevice(
      a,
      [e, op, cpuFn]() {
        cpuFn(e, op);
        return OpResult{};
      },
      cudaFn ? CudaLaunch([e, op, cudaFn](cudaStream_t stream) {
        cudaFn(e, op, stream);
        return OpResult{};
      })
             : CudaLaunch());
}

// embeddingForward(out, ids, wte, vocabLimit)
Kernel BuildEmbeddingForward(OpArgs& a) {
  Tensor out = a.tensor(0, "out"), ids = a.tensor(1, "ids"), wte = a.tensor(2, "wte");
  ExpectDType(a.op(), "ids", ids, DType::I32);
  ExpectFloat(a.op(), "wte", wte);
  ExpectSameDType(a.op(), "out", out, "wte", wte);
  PT_CHECK_ARG(wte.ndim() == 2, a.op(), ": 'wte' must be 2-D (V, C), got ", wte.Describe());
  const int64_t v = wte.dim(0), c = wte.dim(1), n = ids.numel;
  ExpectShape(a.op(), "out", out, {n, c});
  const int64_t vocabLimit = a.integer(3, "vocabLimit");
  PT_CHECK_ARG(vocabLimit >= 1 && vocabLimit <= v, a.op(), ": vocabLimit ", vocabLimit,
               " must be in [1, V] for 'wte' ", wte.Describe());
  ExpectNoOverlap(a.op(), "out", out, "wte", wte);
  ExpectNoOverlap(a.op(), "out", out, "ids", ids);
  const EmbeddingArgs e{out.raw(), ids.ptr<int32_t>(), wte.raw(), wte.dtype, n, c, v, vocabLimit};
  return LaunchEmbedding(a, e, &cpu::EmbeddingForward, PT_CUDA_FN(EmbeddingForward));
}

// embeddingBackward(dwte, ids, dout)
Kernel BuildEmbeddingBackward(OpArgs& a) {
  Tensor dwte = a.tensor(0, "dwte"), ids = a.tensor(1, "ids"), dout = a.tensor(2, "dout");
  ExpectDType(a.op(), "dwte", dwte, DType::F32);
  ExpectDType(a.op(), "ids", ids, DType::I32);
  ExpectFloat(a.op(), "dout", dout);
  PT_CHECK_ARG(dwte.ndim() == 2, a.op(), ": 'dwte' must be 2-D (V, C), got ", dwte.Describe());
  const int64_t v = dwte.dim(0), c = dwte.dim(1), n = ids.numel;
  ExpectShape(a.op(), "dout", dout, {n, c});
  ExpectNoOverlap(a.op(), "dwte", dwte, "dout", dout);
  ExpectNoOverlap(a.op(), "dwte", dwte, "ids", ids);
  const EmbeddingArgs e{dwte.raw(), ids.ptr<int32_t>(), dout.raw(), dout.dtype, n, c, v, v};
  return LaunchEmbedding(a, e, &cpu::EmbeddingBackward, PT_CUDA_FN(EmbeddingBackward));
}

}  // namespace

void cpu::EmbeddingForward(const EmbeddingArgs& e, const std::string& op) {
  CheckIds(op, e.ids, e.n, e.vocabLimit);
  DispatchFloat(e.dtype, [&](auto t) {
    using T = decltype(t);
    pt::EmbeddingForward(static_cast<T*>(e.out), e.ids, static_cast<const T*>(e.table), e.n, e.c);
  });
}

void cpu::EmbeddingBackward(const EmbeddingArgs& e, const std::string& op) {
  CheckIds(op, e.ids, e.n, e.vocabLimit);
  DispatchFloat(e.dtype, [&](auto t) {
    using T = decltype(t);
    pt::EmbeddingBackward(static_cast<float*>(e.out), e.ids, static_cast<const T*>(e.table), e.n, e.c);
  });
}

void RegisterEmbedding(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "embeddingForward", BuildEmbeddingForward);
  RegisterOp(env, exports, "embeddingBackward", BuildEmbeddingBackward);
}

}  // namespace pt
