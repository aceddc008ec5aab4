// blas.h: the cuBLASLt side of the CUDA backend, for the launchers in blas.cu and cross_entropy.cu.
// Builds with cuBLASLt define PT_HAVE_CUBLAS (CMake found cublasLt.h and libcublasLt); in builds without it
// the same functions exist and throw an Engine PtError with the build's reason (cuda::CublasReason()), so
// every .cu file compiles and links either way.
#pragma once
#include <string>

#include "../common.h"
#include "../gemm.h"

typedef struct CUstream_st* cudaStream_t;

namespace pt::cuda {

// cuda::Gemm (launch.h) with `op`, the JS name of the calling op, in its error messages. The same contract as
// pt::Gemm (gemm.h): row-major, f32 accumulation (CUBLAS_COMPUTE_32F for f32 and bf16 inputs alike: f32
// products are exact f32, never TF32). Queued on `stream`, whose device is current.
void GemmFor(const GemmArgs& g, cudaStream_t stream, const std::string& op);

// The Engine error of a cuBLASLt launcher in a build without cuBLASLt, naming `op` and the build's reason.
[[noreturn]] void FailWithoutCublas(const std::string& op, const char* file, int line);

}  // namespace pt::cuda

#ifdef PT_HAVE_CUBLAS
#include <cublasLt.h>

namespace pt::cuda {

// `call` is the failed call's source text; its function name (the text before the first '(') is reported.
[[noreturn]] inline void FailCublas(const std::string& op, const char* call, cublasStatus_t status,
                                    const char* file, int line) {
  const std::string text(call);
  FailAt(ErrorKind::Engine, file, line,
         Concat(op, ": ", text.substr(0, text.find('(')), " failed: ", cublasLtGetStatusName(status), " (",
                cublasLtGetStatusString(status), ")"));
}

}  // namespace pt::cuda

// expr is a cublasStatus_t-returning cuBLASLt call; op names the op (a std::string or const char*).
#define PT_CUBLAS_CHECK(op, expr)                                                                    \
  do {                                                                                               \
    cublasStatus_t pt_cublas_status_ = (expr);                                                       \
    if (pt_cublas_status_ != CUBLAS_STATUS_SUCCESS)                                                  \
      ::pt::cuda::FailCublas((op), #expr, pt_cublas_status_, __FILE__, __LINE__);                    \
  } while (0)
#endif
