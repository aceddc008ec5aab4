// residual.cc: the residual add, out = a + b elementwise, in f32 arithmetic on f32 or bf16 tensors (each of
// out, a and b has its own dtype, e.g. bf16 + bf16 -> f32 for an f32 residual stream under autocast).
// out may be a or b itself (the in-place residual x += f(x)); any partial overlap is refused.
// Accumulation rule: activation gradients are overwritten; there are no parameters. The backward needs no
// kernel: d(a + b) passes dout to both branches unchanged, and where two gradients meet (the residual
// stream and a block's input gradient) their sum is this same op, residualForward(dx, dx, dblock).
#include <algorithm>

#include "../cpu.h"
#include "../op.h"
#include "../vecmath.h"
#include "ops.h"

namespace pt {

namespace {

constexpr int64_t kChunk = 16384;  // elements per parallel work item

// One chunk: out (n), a (n), b (n). Multiversioned (AVX-512, AVX2, baseline; see vecmath.h).
template <typename TO, typename TA, typename TB>
PT_CLONES void AddChunk(TO* out, const TA* a, const TB* b, int64_t n) {
  for (int64_t i = 0; i < n; i++) St(out + i, Ld(a + i) + Ld(b + i));
}

// out (N), a (N), b (N)
template <typename TO, typename TA, typename TB>
void ResidualForward(TO* out, const TA* a, const TB* b, int64_t n) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t i = c * kChunk;
    AddChunk(out + i, a + i, b + i, std::min(kChunk, n - i));
  }
}

// residualForward(out, a, b)
Kernel BuildResidualForward(OpArgs& args) {
  Tensor out = args.tensor(0, "out"), a = args.tensor(1, "a"), b = args.tensor(2, "b");
  const std::string& op = args.op();
  ExpectFloat(op, "out", out);
  ExpectFloat(op, "a", a);
  ExpectFloat(op, "b", b);
  ExpectNumel(op, "b", b, a.numel);
  ExpectNumel(op, "out", out, a.numel);
  ExpectSameOrNoOverlap(op, "out", out, "a", a);
  ExpectSameOrNoOverlap(op, "out", out, "b", b);
  return [=]() {
    DispatchFloat(out.dtype, [&](auto to) {
      DispatchFloat(a.dtype, [&](auto ta) {
        DispatchFloat(b.dtype, [&](auto tb) {
          using TO = decltype(to);
          using TA = decltype(ta);
          using TB = decltype(tb);
          ResidualForward(out.ptr<TO>(), a.ptr<TA>(), b.ptr<TB>(), a.numel);
        });
      });
    });
    return OpResult{};
  };
}

}  // namespace

void RegisterResidual(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "residualForward", BuildResidualForward);
}

}  // namespace pt
