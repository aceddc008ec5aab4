// residual.cu: the residual add on the GPU, the twin of ops/residual.cc: out = a + b element-wise in f32, each
// of out, a and b f32 or bf16 on its own (e.g. bf16 + bf16 -> f32 for an f32 residual stream under autocast),
// rounded once to out's dtype exactly like F32ToBf16.
// Accumulation rule: activation gradients are overwritten; no parameters. The backward is this same op (see
// residual.cc). out may be a or b itself: one grid-stride map (kernels.cuh) where each thread reads its
// elements before writing them; 16-byte packs when the pointers allow.
#include "../launch.h"
#include "check.h"
#include "kernels.cuh"

namespace pt {
namespace cuda {

namespace {

struct AddOp {
  __device__ float operator()(float a, float b) const { return a + b; }
};

}  // namespace

// out (n), a (n), b (n)
void ResidualForward(const ResidualArgs& r, cudaStream_t stream) {
  if (r.n == 0) return;
  ForFloatType(r.outType, "residualForward", "out", [&](auto to) {
    ForFloatType(r.aType, "residualForward", "a", [&](auto ta) {
      ForFloatType(r.bType, "residualForward", "b", [&](auto tb) {
        using TO = typename decltype(to)::type;
        using TA = typename decltype(ta)::type;
        using TB = typename decltype(tb)::type;
        LaunchMap2(static_cast<TO*>(r.out), static_cast<const TA*>(r.a), static_cast<const TB*>(r.b), r.n, AddOp{},
                   stream);
        PT_CUDA_LAUNCHED("residualForward", "Map2Kernel<AddOp>");
      });
    });
  });
}

}  // namespace cuda
}  // namespace pt
