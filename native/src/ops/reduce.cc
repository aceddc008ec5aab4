// reduce.cc: whole-tensor reductions and scaling for global-norm clipping and NaN/Inf detection.
//   sumSquares(t) -> [sum of x^2 over the finite elements, number of NaN/Inf elements]
//   scaleInPlace(t, factor): t *= factor (f32 math, rounded once to t's dtype)
// f32 or bf16 tensors. Squares are accumulated in double (a finite f32 squared cannot overflow a double), over
// fixed blocks whose partials are then added in block order: the result is the same for every thread count.
// Non-finite elements are counted, not summed, so the finite part's norm stays usable for logging.
#include <algorithm>
#include <cmath>
#include <vector>

#include "../cpu.h"
#include "../op.h"
#include "../vecmath.h"
#include "ops.h"

namespace pt {

namespace {

constexpr int64_t kBlock = int64_t(1) << 14;  // elements per parallel work item

// One block each, multiversioned (see vecmath.h). x (n); returns the sum, adds the non-finite count to *bad.
template <typename T>
inline double SumSquaresSpan(const T* x, int64_t n, int64_t* bad) {
  double s = 0.0;
  int64_t nb = 0;
#pragma omp simd reduction(+ : s, nb)
  for (int64_t i = 0; i < n; i++) {
    float f = Ld(x + i);
    bool ok = std::isfinite(f);
    double d = ok ? double(f) : 0.0;
    s += d * d;
    nb += ok ? 0 : 1;
  }
  *bad += nb;
  return s;
}
PT_CLONES double SumSquaresBlock(const float* x, int64_t n, int64_t* bad) { return SumSquaresSpan(x, n, bad); }
PT_CLONES double SumSquaresBlock(const bf16* x, int64_t n, int64_t* bad) { return SumSquaresSpan(x, n, bad); }

PT_CLONES void ScaleBlock(float* x, int64_t n, float factor) {
  for (int64_t i = 0; i < n; i++) x[i] *= factor;
}
PT_CLONES void ScaleBlock(bf16* x, int64_t n, float factor) {
  for (int64_t i = 0; i < n; i++) x[i] = F32ToBf16(Bf16ToF32(x[i]) * factor);
}

// x (n) -> sum of squares of its finite elements, and the count of the others
template <typename T>
void SumSquares(const T* x, int64_t n, double* sumOut, int64_t* nonFiniteOut) {
  const int64_t nBlocks = (n + kBlock - 1) / kBlock;
  std::vector<double> sums(size_t(nBlocks), 0.0);
  std::vector<int64_t> bad(size_t(nBlocks), 0);
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t b = 0; b < nBlocks; b++) {
    const int64_t lo = b * kBlock;
    sums[size_t(b)] = SumSquaresBlock(x + lo, std::min(kBlock, n - lo), &bad[size_t(b)]);
  }
  double total = 0.0;
  int64_t totalBad = 0;
  for (int64_t b = 0; b < nBlocks; b++) {
    total += sums[size_t(b)];
    totalBad += bad[size_t(b)];
  }
  *sumOut = total;
  *nonFiniteOut = totalBad;
}

// x (n) *= factor
template <typename T>
void ScaleInPlace(T* x, int64_t n, float factor) {
  const int64_t nBlocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t b = 0; b < nBlocks; b++) {
    const int64_t lo = b * kBlock;
    ScaleBlock(x + lo, std::min(kBlock, n - lo), factor);
  }
}

// sumSquares(t) -> [sumSquares, nonFinite]
Kernel BuildSumSquares(OpArgs& a) {
  Tensor t = a.tensor(0, "t");
  ExpectFloat(a.op(), "t", t);
  const ReduceArgs r{t.raw(), t.dtype, t.numel, 1.0f};
  return ForDevice(
      a,
      [r]() {
        const SumSquaresResult s = cpu::SumSquares(r);
        return OpResult{{s.sum, double(s.nonFinite)}};
      },
      PT_CUDA_LAUNCH(const SumSquaresResult s = cuda::SumSquares(r, stream);
                     return OpResult{{s.sum, double(s.nonFinite)}};));
}

// scaleInPlace(t, factor)
Kernel BuildScaleInPlace(OpArgs& a) {
  Tensor t = a.tensor(0, "t");
  double factor = a.number(1, "factor");
  ExpectFloat(a.op(), "t", t);
  PT_CHECK_ARG(std::isfinite(factor), a.op(), ": factor must be finite, got ", factor);
  const ReduceArgs r{t.raw(), t.dtype, t.numel, float(factor)};
  return LaunchOn(a, r, &cpu::ScaleInPlace, PT_CUDA_FN(ScaleInPlace));
}

}  // namespace

SumSquaresResult cpu::SumSquares(const ReduceArgs& r) {
  SumSquaresResult out;
  DispatchFloat(r.dtype, [&](auto tag) {
    using T = decltype(tag);
    pt::SumSquares(static_cast<const T*>(r.x), r.n, &out.sum, &out.nonFinite);
  });
  return out;
}

void cpu::ScaleInPlace(const ReduceArgs& r) {
  DispatchFloat(r.dtype, [&](auto tag) {
    using T = decltype(tag);
    pt::ScaleInPlace(static_cast<T*>(r.x), r.n, r.factor);
  });
}

void RegisterReduce(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "sumSquares", BuildSumSquares);
  RegisterOp(env, exports, "scaleInPlace", BuildScaleInPlace);
}

}  // namespace pt
