// gemm.h: the one matrix-product entry point every op uses.
//   C (M, N) = alpha * op(A) (M, K) @ op(B) (K, N) + beta * C       (row-major, leading dimensions given)
// or a batch of such products, the b-th at A + b*strideA, B + b*strideB, C + b*strideC (elements).
// op(X) = X or X^T. A and B share a dtype (f32 or bf16); C is f32 or bf16; accumulation is always f32.
// Engines: oneDNN's matmul when the build found it (bf16 inputs run natively where the CPU has AVX512-BF16
// or AMX, and are widened to f32 otherwise), else a portable blocked GEMM.
#pragma once
#include <cstdint>
#include <string>

#include "common.h"

namespace pt {

struct GemmArgs {
  bool transA = false, transB = false;
  int64_t M = 0, N = 0, K = 0;
  float alpha = 1.0f, beta = 0.0f;
  const void* A = nullptr;
  int64_t lda = 0;
  const void* B = nullptr;
  int64_t ldb = 0;
  DType abType = DType::F32;
  void* C = nullptr;
  int64_t ldc = 0;
  DType cType = DType::F32;
  int64_t batch = 1, strideA = 0, strideB = 0, strideC = 0;  // batched products (strides in elements)
};

void Gemm(const GemmArgs& g);

enum class GemmEngine { OneDnn, Portable };
bool HaveOneDnn();
GemmEngine ActiveGemmEngine();
void SetGemmEngine(GemmEngine e);  // Portable is always available; OneDnn only when built with it
std::string GemmEngineDescription();  // e.g. "onednn 2.6.3 (bf16 native)"
bool Bf16GemmNative();  // bf16 products run without widening to f32

// Gemm called from inside an OpenMP parallel region runs on the calling thread alone (each thread may call
// it for its own products at once); primitives are cached per thread count, so the two uses never share one.

// The portable engine, exposed for tests of its own.
void GemmPortable(const GemmArgs& g);

}  // namespace pt
