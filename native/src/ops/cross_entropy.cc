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
// Rows are processed a chunk at a time, so at most (rows per chunk, V) f32 logits exist at once (never the
// whole (N, V)). Each chunk is three pt::Gemm products with the softmax between them, in f32 with max
// subtraction (exp is vecmath.h's FastExp, ~2 ulp; row sums in double). With bf16 inputs the logits are still
// f32, and the chunk's dlogits are rounded to bf16 before the two backward products, as autocast does; dwte
// still accumulates in f32.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <type_traits>
#include <vector>

#include "../cpu.h"
#include "../gemm.h"
#include "../op.h"
#include "../vecmath.h"
#include "ops.h"

namespace pt {

namespace {

// A chunk holds up to kMaxChunkRows rows, fewer when V is so large that its f32 logits would pass
// kChunkBytes (never fewer than kMinChunkRows). 512 rows amortise the read-modify-write of dwte per chunk.
constexpr int64_t kMaxChunkRows = 512, kMinChunkRows = 128;
constexpr int64_t kChunkBytes = int64_t(128) << 20;

int64_t ChunkRows(int64_t N, int64_t V) {
  int64_t rows = std::clamp<int64_t>(kChunkBytes / (V * int64_t(sizeof(float))), kMinChunkRows, kMaxChunkRows);
  return std::min(rows, N);
}

template <typename T>
constexpr DType DTypeOf() {
  return std::is_same_v<T, float> ? DType::F32 : DType::BF16;
}

// Row kernels, multiversioned (see vecmath.h). row (V) f32 logits of one row.
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
// The same, leaving exp(row[j] - maxv) in row.
PT_CLONES double RowExpInPlace(float* row, int64_t V, float maxv) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t j = 0; j < V; j++) {
    float e = FastExp(row[j] - maxv);
    row[j] = e;
    sum += e;
  }
  return sum;
}
// out (V) = e (V) * k, in the output dtype; out may be e itself.
PT_CLONES void RowScale(float* out, const float* e, int64_t V, float k) {
  for (int64_t j = 0; j < V; j++) out[j] = e[j] * k;
}
PT_CLONES void RowScale(bf16* out, const float* e, int64_t V, float k) {
  for (int64_t j = 0; j < V; j++) out[j] = F32ToBf16(e[j] * k);
}

// Checks every target before anything is computed: ignoreIndex or an id in [0, V).
void CheckTargets(const std::string& op, const int32_t* targets, int64_t N, int64_t V, int32_t ignoreIndex) {
  for (int64_t i = 0; i < N; i++) {
    int32_t t = targets[i];
    PT_CHECK_ARG(t == ignoreIndex || (t >= 0 && t < V), op, ": targets[", i, "] = ", t,
                 " is outside the vocabulary [0, ", V, ") and is not ignoreIndex (", ignoreIndex, ")");
  }
}

// The whole op over N rows. losses (N) f32, inp (N, C), wte (Vp, C) of which the first V rows are used,
// targets (N). With backward: dinp (N, C) overwritten, dwte (Vp, C) f32 accumulated (rows >= V untouched).
// Returns the sum of the losses of the rows not ignored.
template <typename T>
double CrossEntropy(float* losses, T* dinp, float* dwte, const T* inp, const T* wte, const int32_t* targets,
                    int64_t N, int64_t C, int64_t V, int32_t ignoreIndex, float gradScale, bool backward) {
  if (N == 0) return 0.0;
  const int64_t R = ChunkRows(N, V);
  // Rows of the logits scratch are padded to a multiple of 64 floats: an odd leading dimension (V = 50,277)
  // misaligns every row and costs oneDNN much of its speed.
  const int64_t ldV = (V + 63) / 64 * 64;
  // Scratch is kept per calling thread and reused (a fresh 100 MB allocation per call is page-faulted in
  // every time); every element is written before it is read.
  thread_local std::vector<float> logitsScratch;
  thread_local std::vector<bf16> dlogitsScratch;
  if (logitsScratch.size() < size_t(R) * ldV) logitsScratch.resize(size_t(R) * ldV);
  float* logits = logitsScratch.data();  // (R, ldV); with backward, exp(l - max) in place
  // dlogits (R, ldV) in the input dtype: the logits buffer itself for f32, a bf16 copy for bf16.
  T* dlogits = nullptr;
  if constexpr (std::is_same_v<T, float>) {
    dlogits = logits;
  } else {
    if (backward && dlogitsScratch.size() < size_t(R) * ldV) dlogitsScratch.resize(size_t(R) * ldV);
    dlogits = dlogitsScratch.data();
  }
  for (int64_t r0 = 0; r0 < N; r0 += R) {
    const int64_t rows = std::min(R, N - r0);
    const T* inpChunk = inp + r0 * C;  // (rows, C)

    GemmArgs lg;  // logits (rows, V) = inpChunk (rows, C) @ wte[:V]^T
    lg.M = rows, lg.N = V, lg.K = C;
    lg.A = inpChunk, lg.lda = C;
    lg.B = wte, lg.ldb = C, lg.transB = true;
    lg.abType = DTypeOf<T>();
    lg.C = logits, lg.ldc = ldV, lg.cType = DType::F32;
    Gemm(lg);

#pragma omp parallel for num_threads(Threads()) schedule(static)
    for (int64_t i = 0; i < rows; i++) {
      const int32_t target = targets[r0 + i];
      float* row = logits + i * ldV;  // (V)
      T* drow = dlogits + i * ldV;          // (V)
      if (target == ignoreIndex) {
        losses[r0 + i] = 0.0f;
        if (backward) std::fill(drow, drow + V, T{});
        continue;
      }
      const float maxv = RowMax(row, V);
      const float xt = row[target];
      const double sum = backward ? RowExpInPlace(row, V, maxv) : RowExpSum(row, V, maxv);
      losses[r0 + i] = float(std::log(sum) + double(maxv) - double(xt));
      if (backward) {
        const float inv = float(1.0 / sum);
        const float pt = row[target] * inv;  // before RowScale, which may overwrite row
        RowScale(drow, row, V, inv * gradScale);
        St(drow + target, (pt - 1.0f) * gradScale);
      }
    }
    if (!backward) continue;

    GemmArgs di;  // dinp (rows, C) = dlogits (rows, V) @ wte[:V] (V, C)
    di.M = rows, di.N = C, di.K = V;
    di.A = dlogits, di.lda = ldV;
    di.B = wte, di.ldb = C;
    di.abType = DTypeOf<T>();
    di.C = dinp + r0 * C, di.ldc = C, di.cType = DTypeOf<T>();
    Gemm(di);

    GemmArgs dw;  // dwte[:V] (V, C) += dlogits^T (V, rows) @ inpChunk (rows, C)
    dw.M = V, dw.N = C, dw.K = rows;
    dw.A = dlogits, dw.lda = ldV, dw.transA = true;
    dw.B = inpChunk, dw.ldb = C;
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

// crossEntropyForward(losses, inp, wte, targets, vocabSize, ignoreIndex) -> sum of losses
Kernel BuildCrossEntropyForward(OpArgs& a) {
  CeArgs c = ReadCeArgs(a, 1);
  std::string op = a.op();
  return [=]() {
    CheckTargets(op, c.targets.ptr<int32_t>(), c.N, c.V, c.ignoreIndex);
    double total = 0.0;
    DispatchFloat(c.inp.dtype, [&](auto t) {
      using T = decltype(t);
      total = CrossEntropy<T>(c.losses.ptr<float>(), nullptr, nullptr, c.inp.ptr<T>(), c.wte.ptr<T>(),
                              c.targets.ptr<int32_t>(), c.N, c.C, c.V, c.ignoreIndex, 0.0f, false);
    });
    return OpResult{{total}};
  };
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
  std::string opName = op;
  float scale = float(gradScale);
  return [=]() {
    CheckTargets(opName, c.targets.ptr<int32_t>(), c.N, c.V, c.ignoreIndex);
    double total = 0.0;
    DispatchFloat(c.inp.dtype, [&](auto t) {
      using T = decltype(t);
      total = CrossEntropy<T>(c.losses.ptr<float>(), dinp.ptr<T>(), dwte.ptr<float>(), c.inp.ptr<T>(),
                              c.wte.ptr<T>(), c.targets.ptr<int32_t>(), c.N, c.C, c.V, c.ignoreIndex, scale, true);
    });
    return OpResult{{total}};
  };
}

}  // namespace

void RegisterCrossEntropy(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "crossEntropyForward", BuildCrossEntropyForward);
  RegisterOp(env, exports, "crossEntropyForwardBackward", BuildCrossEntropyForwardBackward);
}

}  // namespace pt
