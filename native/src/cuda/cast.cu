// cast.cu: dtype conversion on the GPU, the twin of ops/cast.cc: f32 -> bf16 rounds to nearest even bit for bit
// like F32ToBf16 (NaN stays NaN with its quiet bit set, +-Inf stays +-Inf, finite values past bf16's range become
// +-Inf); bf16 -> f32 is exact; the same dtype on both sides (any dtype) is a device-to-device copy queued with
// cudaMemcpyAsync. out and inp do not overlap (the builder checks). One grid-stride map (kernels.cuh), 16-byte
// packs when the pointers allow.
#include "../launch.h"
#include "check.h"
#include "kernels.cuh"

namespace pt {
namespace cuda {

namespace {

// The conversion itself is the map's load (exact widening) and store (rounding).
struct IdentityOp {
  __device__ float operator()(float x) const { return x; }
};

}  // namespace

// out (n), inp (n)
void Cast(const CastArgs& a, cudaStream_t stream) {
  if (a.n == 0) return;
  if (a.outType == a.inpType) {
    PT_CUDA_CHECK("cast", cudaMemcpyAsync(a.out, a.inp, size_t(a.n) * DTypeSize(a.inpType), cudaMemcpyDeviceToDevice,
                                          stream));
    return;
  }
  if (a.outType == DType::BF16 && a.inpType == DType::F32) {
    LaunchMap1(static_cast<__nv_bfloat16*>(a.out), static_cast<const float*>(a.inp), a.n, IdentityOp{}, stream);
    PT_CUDA_LAUNCHED("cast", "Map1Kernel<f32 -> bf16>");
  } else if (a.outType == DType::F32 && a.inpType == DType::BF16) {
    LaunchMap1(static_cast<float*>(a.out), static_cast<const __nv_bfloat16*>(a.inp), a.n, IdentityOp{}, stream);
    PT_CUDA_LAUNCHED("cast", "Map1Kernel<bf16 -> f32>");
  } else {
    PT_CHECK_ARG(false, "cast: cannot convert ", DTypeName(a.inpType), " to ", DTypeName(a.outType),
                 " (only f32 <-> bf16, or a copy between equal dtypes)");
  }
}

}  // namespace cuda
}  // namespace pt
