// check.h: CUDA failures as PtErrors. Every CUDA runtime call and kernel launch in the backend goes through
// PT_CUDA_CHECK (or PT_CUDA_LAUNCHED right after a <<<...>>> launch), so a failure becomes a JS error naming
// the op and the call instead of an abort or a silently wrong result. Included by .cu files and by the .cc
// files compiled only with CUDA (PT_HAVE_CUDA).
#pragma once
#include <cuda_runtime.h>

#include <string>

#include "../common.h"

namespace pt::cuda {

[[noreturn]] inline void Fail(const std::string& op, const char* what, cudaError_t err, const char* file,
                              int line) {
  cudaGetLastError();  // clear a non-sticky error so the next op starts clean
  FailAt(ErrorKind::Engine, file, line,
         Concat(op, ": CUDA ", what, " failed: ", cudaGetErrorName(err), " (", cudaGetErrorString(err), ")"));
}

}  // namespace pt::cuda

// expr is a cudaError_t-returning call; op names the op (a std::string or const char*).
#define PT_CUDA_CHECK(op, expr)                                               \
  do {                                                                        \
    cudaError_t pt_cuda_err_ = (expr);                                        \
    if (pt_cuda_err_ != cudaSuccess) ::pt::cuda::Fail((op), #expr, pt_cuda_err_, __FILE__, __LINE__); \
  } while (0)

// After a kernel launch: a bad configuration (grid, shared memory) shows up here, not at the launch.
#define PT_CUDA_LAUNCHED(op, kernelName)                                      \
  do {                                                                        \
    cudaError_t pt_cuda_err_ = cudaGetLastError();                            \
    if (pt_cuda_err_ != cudaSuccess) ::pt::cuda::Fail((op), "launch of " kernelName, pt_cuda_err_, __FILE__, __LINE__); \
  } while (0)
