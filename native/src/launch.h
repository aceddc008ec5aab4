// launch.h: the launchers of every tensor op, one argument struct per op shared by all devices.
//
// An op is three parts (llm.c's kernels-then-launchers layout):
//   1. its builder in ops/<op>.cc reads the JS arguments, checks dtypes, shapes, overlaps and that every tensor
//      lives on one device (op.h), and fills the op's argument struct below with raw pointers;
//   2. cpu::<Op>(args) in ops/<op>.cc runs it on the host (OpenMP, ISA dispatch);
//   3. cuda::<Op>(args, stream) in cuda/<op>.cu queues it on the device's stream.
// Both launchers take the same struct, so the semantics live in one place: the comments here, and the CPU
// kernels with their float64 reference tests. Pointers are device pointers for CUDA and host pointers for CPU.
// Launchers throw PtError naming the op on failure (cuda/check.h turns CUDA and cuBLAS status codes into one);
// nothing aborts. This header includes no CUDA or Node header, so both compilers read it.
#pragma once
#include <cstdint>
#include <vector>

#include "common.h"
#include "gemm.h"

typedef struct CUstream_st* cudaStream_t;  // the CUDA runtime's own typedef, repeated so no CUDA header is needed

namespace pt {

// geluForward: out = x * Phi(x) (exact GELU, erf form); geluBackward: dinp = dout * (Phi(x) + x * phi(x)).
// All of out/dinp, inp, dout have `dtype` (f32 or bf16), n elements; math in f32. out may be inp; dinp may be
// dout (elementwise: each element is read before it is written).
struct GeluArgs {
  void* out = nullptr;        // forward: out; backward: dinp
  const void* inp = nullptr;  // x
  const void* dout = nullptr; // backward only
  DType dtype = DType::F32;
  int64_t n = 0;
};

// embeddingForward: out[i, :] = wte[ids[i], :], N = n rows of C; out and wte share `dtype`.
// Every id must be in [0, vocabLimit): an id outside it is an argument error naming its position and value
// (the CUDA launcher checks on the device and reads back one count, so the op waits for the GPU).
// embeddingBackward: dwte[ids[i], :] += dout[i, :] (dwte f32 (V, C), accumulated; ids in [0, V)).
struct EmbeddingArgs {
  void* out = nullptr;         // forward: out (N, C), dtype;   backward: dwte (V, C), f32
  const int32_t* ids = nullptr;
  const void* table = nullptr; // forward: wte (V, C), dtype;   backward: dout (N, C), dtype
  DType dtype = DType::F32;
  int64_t n = 0, c = 0, v = 0;
  int64_t vocabLimit = 0;      // forward: ids must be below this (<= V); backward: V
};

// layerNormForward: per row r of C: mean[r], rstd[r] = 1 / sqrt(var + eps) (biased variance), out = (x - mean)
// * rstd * weight. No bias. inp, weight, out share `dtype`; mean and rstd are f32 (N). out may be inp.
// layerNormBackward: dinp overwritten (may be dout or inp), dweight (C, f32) accumulated.
struct LayerNormArgs {
  void* out = nullptr;  // forward: out; backward: dinp
  float* dweight = nullptr;  // backward only
  float* mean = nullptr;
  float* rstd = nullptr;
  const void* inp = nullptr;
  const void* weight = nullptr;
  const void* dout = nullptr;  // backward only
  DType dtype = DType::F32;
  float eps = 1e-5f;
  int64_t n = 0, c = 0;
};

// matmulForward: out (N, OC) = inp (N, C) @ weight (OC, C)^T, no bias; all `dtype`, f32 accumulation.
// matmulBackward: dinp (N, C) = dout @ weight (overwritten, `dtype`; null: skipped); dweight (OC, C) f32 +=
// dout^T @ inp (null: skipped).
struct MatmulArgs {
  void* out = nullptr;      // forward: out; backward: dinp or null
  float* dweight = nullptr; // backward only, may be null
  const void* inp = nullptr;
  const void* weight = nullptr;
  const void* dout = nullptr;  // backward only
  DType dtype = DType::F32;
  int64_t n = 0, c = 0, oc = 0;
};

// residualForward: out = a + b elementwise in f32, each with its own dtype; out may be a or b.
struct ResidualArgs {
  void* out = nullptr;
  const void* a = nullptr;
  const void* b = nullptr;
  DType outType = DType::F32, aType = DType::F32, bType = DType::F32;
  int64_t n = 0;
};

// attentionForward: causal multi-head attention with ALiBi over a packed qkv (B, T, 3, H, D) (q, k, v each
// (B, T, H, D) inside it); out (B, T, H, D); lse (B, H, T) f32 = log-sum-exp of each query's scaled, biased
// scores (scale 1/sqrt(D), bias -slope[h] * (query - key) for key <= query, keys after the query masked).
// attentionBackward: dqkv (like qkv, overwritten) from dout, qkv, out and lse. qkv, out, dout, dqkv share
// `dtype`; slopes (H) f32.
struct AttentionArgs {
  void* out = nullptr;  // forward: out; backward: dqkv
  float* lse = nullptr; // forward: written; backward: read
  const void* qkv = nullptr;
  const void* fwdOut = nullptr;  // backward only: the forward's out
  const void* dout = nullptr;    // backward only
  const float* slopes = nullptr;
  DType dtype = DType::F32;
  int b = 0, t = 0, h = 0, d = 0;
};

// attentionCachedForward: attention of Tq new positions [past, past + Tq) of each of B sequences over a key/value
// cache, for inference (forward only). qkv (B, Tq, 3, H, D) is the packed projection of the new tokens, as for
// attentionForward. First their k and v are written into kCache and vCache (B, H, maxLen, D) at positions
// [past, past + Tq); then out (B, Tq, H, D) row i = softmax over the cached keys j in [0, past + i] of
// q_i.k_j / sqrt(D) + slope[h] * (j - (past + i)), times the cached values: exactly attentionForward's query
// past + i of the whole sequence (ALiBi needs no position ids). qkv, out and both caches share `dtype`
// (f32 or bf16; the caches hold the values of qkv exactly); slopes (H) f32; math in f32. Positions >= past + Tq of
// the caches are neither read nor written; past == 0 runs attentionForward's engine (the same bits as it).
// 0 <= past and past + Tq <= maxLen; no argument overlaps another.
struct AttentionCachedArgs {
  void* out = nullptr;     // (B, Tq, H, D)
  void* kCache = nullptr;  // (B, H, maxLen, D)
  void* vCache = nullptr;  // (B, H, maxLen, D)
  const void* qkv = nullptr;  // (B, Tq, 3, H, D)
  const float* slopes = nullptr;  // (H)
  DType dtype = DType::F32;
  int b = 0, tq = 0, h = 0, d = 0, maxLen = 0, past = 0;
};

// crossEntropy: the LM head fused with the loss. For each of N rows: logits = inp[r] (C) @ wte (Vp, C)^T over
// the first V rows of wte only; losses[r] = logsumexp(logits) - logits[target] (f32), or 0 where target ==
// ignoreIndex. Returns the sum of the losses (double). Every target must be in [0, V) or be ignoreIndex (an
// argument error naming its position otherwise). With backward: dlogits = gradScale * (softmax - onehot) (zero
// on ignored rows); dinp (N, C) = dlogits @ wte (overwritten, `dtype`); dwte (Vp, C) f32 += dlogits^T @ inp
// (rows V..Vp untouched). The logits never exist for all N rows at once.
struct CrossEntropyArgs {
  float* losses = nullptr;
  void* dinp = nullptr;   // null in the forward-only form
  float* dwte = nullptr;  // null in the forward-only form
  const void* inp = nullptr;
  const void* wte = nullptr;
  const int32_t* targets = nullptr;
  DType dtype = DType::F32;
  int64_t n = 0, c = 0, v = 0;
  int32_t ignoreIndex = -100;
  float gradScale = 1.0f;
  bool backward = false;
};

// adamwUpdate over one f32 arena of P elements: for each segment [offset, offset + length), with decay or not:
//   g = grad * gradScale; m = beta1 m + (1 - beta1) g; v = beta2 v + (1 - beta2) g^2;
//   p = p * decayFactor (decayed segments only) - stepSize * m / (sqrt(v) * invSqrtBc2 + eps);
//   paramsBf16 (when not null) = bf16(p), rounded to nearest even.
// (The exact order of operations is AdamWElement in ops/adamw.cc; the CUDA twin follows it.)
struct AdamWSegment {
  int64_t offset = 0, length = 0;
  bool decay = false;
};
struct AdamWArgs {
  float* params = nullptr;
  const float* grads = nullptr;
  float* m = nullptr;
  float* v = nullptr;
  bf16* paramsBf16 = nullptr;  // may be null
  int64_t p = 0;
  std::vector<AdamWSegment> segments;  // host memory, sorted, tiling [0, P)
  float beta1 = 0.9f, beta2 = 0.95f, oneMinusBeta1 = 0.1f, oneMinusBeta2 = 0.05f;
  float decayFactor = 1.0f;  // 1 - lr * weightDecay
  float stepSize = 0.0f;     // lr / (1 - beta1^step)
  float invSqrtBc2 = 1.0f;   // 1 / sqrt(1 - beta2^step)
  float eps = 1e-8f, gradScale = 1.0f;
};

// sumSquares: the sum of x^2 over the finite elements (accumulated in double) and the count of NaN/Inf ones.
// scaleInPlace: x *= factor (f32 math, rounded once to the dtype).
struct ReduceArgs {
  void* x = nullptr;
  DType dtype = DType::F32;
  int64_t n = 0;
  float factor = 1.0f;  // scaleInPlace only
};
struct SumSquaresResult {
  double sum = 0.0;
  int64_t nonFinite = 0;
};

// cast: out = inp converted (f32 <-> bf16, round to nearest even, NaN kept quiet), or a plain copy when the
// dtypes match (any dtype). out and inp do not overlap.
struct CastArgs {
  void* out = nullptr;
  const void* inp = nullptr;
  DType outType = DType::F32, inpType = DType::F32;
  int64_t n = 0;
};

namespace cpu {
void GeluForward(const GeluArgs& a);
void GeluBackward(const GeluArgs& a);
void EmbeddingForward(const EmbeddingArgs& a, const std::string& op);
void EmbeddingBackward(const EmbeddingArgs& a, const std::string& op);
void LayerNormForward(const LayerNormArgs& a);
void LayerNormBackward(const LayerNormArgs& a);
void MatmulForward(const MatmulArgs& a);
void MatmulBackward(const MatmulArgs& a);
void ResidualForward(const ResidualArgs& a);
void AttentionForward(const AttentionArgs& a);
void AttentionBackward(const AttentionArgs& a);
void AttentionCachedForward(const AttentionCachedArgs& a);
double CrossEntropy(const CrossEntropyArgs& a, const std::string& op);
void AdamWUpdate(const AdamWArgs& a);
SumSquaresResult SumSquares(const ReduceArgs& a);
void ScaleInPlace(const ReduceArgs& a);
void Cast(const CastArgs& a);
}  // namespace cpu

namespace cuda {
// `op` is the JS name of the op, for error messages. Each queues its work on `stream` and returns; only the
// ones that return a value (or check ids or targets on the device) wait for it.
void GeluForward(const GeluArgs& a, cudaStream_t stream);
void GeluBackward(const GeluArgs& a, cudaStream_t stream);
void EmbeddingForward(const EmbeddingArgs& a, const std::string& op, cudaStream_t stream);
void EmbeddingBackward(const EmbeddingArgs& a, const std::string& op, cudaStream_t stream);
void LayerNormForward(const LayerNormArgs& a, cudaStream_t stream);
void LayerNormBackward(const LayerNormArgs& a, cudaStream_t stream);
void MatmulForward(const MatmulArgs& a, cudaStream_t stream);   // cuBLASLt
void MatmulBackward(const MatmulArgs& a, cudaStream_t stream);  // cuBLASLt
void Gemm(const GemmArgs& g, cudaStream_t stream);              // cuBLASLt; the same contract as pt::Gemm
void ResidualForward(const ResidualArgs& a, cudaStream_t stream);
void AttentionForward(const AttentionArgs& a, cudaStream_t stream);
void AttentionBackward(const AttentionArgs& a, cudaStream_t stream);
void AttentionCachedForward(const AttentionCachedArgs& a, cudaStream_t stream);
double CrossEntropy(const CrossEntropyArgs& a, const std::string& op, cudaStream_t stream);  // cuBLASLt
void AdamWUpdate(const AdamWArgs& a, cudaStream_t stream);
SumSquaresResult SumSquares(const ReduceArgs& a, cudaStream_t stream);
void ScaleInPlace(const ReduceArgs& a, cudaStream_t stream);
void Cast(const CastArgs& a, cudaStream_t stream);
// Whether this build has the cuBLASLt launchers (Matmul*, Gemm, CrossEntropy); without them those ops refuse
// CUDA tensors with the build's reason.
bool HaveCublas();
const char* CublasReason();  // why not, when HaveCublas() is false ("" otherwise)
}  // namespace cuda

}  // namespace pt
