// residual.cc: the residual add, out = a + b elementwise, in f32 arithmetic on f32 or bf16 tensors (each of
// out, a and b has its own dtype, e.g. bf16 + bf16 -> f32 for an f32 residual stream under autocast).
// out may be a or b itself (the in-place residual x += f(x)); any partial overlap is refused.
// Accumulation rule: activation gradients are overwritten; there are no parameters. The backward needs no
// kernel: d(a + b) passes dout to both branches unchanged, and where two gradients meet (the residual
// stream and a block's input gradient) their sum is this same op, residualForward(dx, dx, dblock).
// On AVX-512 (ActiveIsa()) every dtype combination runs a hand-written loop over 16 lanes that widens bf16
// in registers (vecmath_avx512.h); one f32 add per element and the same rounding, so it is bit for bit the
// multiversioned loop, which remains the path below AVX-512.
#include <algorithm>

#include "../cpu.h"
#include "../op.h"
#include "../vecmath.h"
#include "../vecmath_avx512.h"
#include "ops.h"

namespace pt {

namespace {

constexpr int64_t kChunk = 16384;  // elements per parallel work item

// One chunk: out (n), a (n), b (n). Multiversioned (AVX-512, AVX2, baseline; see vecmath.h).
template <typename TO, typename TA, typename TB>
PT_CLONES void AddChunk(TO* out, const TA* a, const TB* b, int64_t n) {
  for (int64_t i = 0; i < n; i++) St(out + i, Ld(a + i) + Ld(b + i));
}

#ifdef PT_HAVE_EW_AVX512
// The sum stored to f32, or to bf16 (kHw: with vcvtneps2bf16, the same bits on a sum computed in the kernel
// floating-point mode; see vecmath_avx512.h).
template <bool kHw>
PT_EW_AVX512 PT_EW_INLINE void StoreSum(float* p, __m512 x) { avx512::Store(p, x); }
template <bool kHw>
PT_EW_AVX512 PT_EW_INLINE void StoreSum(bf16* p, __m512 x) { avx512::StoreComputed<kHw>(p, x); }
template <bool kHw>
PT_EW_AVX512 PT_EW_INLINE void StoreSum(float* p, __mmask16 k, __m512 x) { avx512::Store(p, k, x); }
template <bool kHw>
PT_EW_AVX512 PT_EW_INLINE void StoreSum(bf16* p, __mmask16 k, __m512 x) { avx512::StoreComputed<kHw>(p, k, x); }

// AddChunk on AVX-512. out may be a or b: each vector is read before it is written.
template <bool kHw, typename TO, typename TA, typename TB>
PT_EW_AVX512 void AddChunkAvx512(TO* out, const TA* a, const TB* b, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) StoreSum<kHw>(out + i, _mm512_add_ps(avx512::Load(a + i), avx512::Load(b + i)));
  if (i < n) {
    const __mmask16 k = avx512::TailMask(n - i);
    StoreSum<kHw>(out + i, k, _mm512_add_ps(avx512::Load(a + i, k), avx512::Load(b + i, k)));
  }
}
#endif

// out (N), a (N), b (N)
template <typename TO, typename TA, typename TB>
void ResidualForward(TO* out, const TA* a, const TB* b, int64_t n) {
  auto chunk = &AddChunk<TO, TA, TB>;
#ifdef PT_HAVE_EW_AVX512
  if (ActiveIsa() >= Isa::Avx512Bf16) chunk = &AddChunkAvx512<true, TO, TA, TB>;
  else if (ActiveIsa() >= Isa::Avx512) chunk = &AddChunkAvx512<false, TO, TA, TB>;
#endif
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t c = 0; c < chunks; c++) {
    const int64_t i = c * kChunk;
    chunk(out + i, a + i, b + i, std::min(kChunk, n - i));
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
  const ResidualArgs r{out.raw(), a.raw(), b.raw(), out.dtype, a.dtype, b.dtype, a.numel};
  return LaunchOn(args, r, &cpu::ResidualForward, PT_CUDA_FN(ResidualForward));
}

}  // namespace

void cpu::ResidualForward(const ResidualArgs& r) {
  DispatchFloat(r.outType, [&](auto to) {
    DispatchFloat(r.aType, [&](auto ta) {
      DispatchFloat(r.bType, [&](auto tb) {
        using TO = decltype(to);
        using TA = decltype(ta);
        using TB = decltype(tb);
        pt::ResidualForward(static_cast<TO*>(r.out), static_cast<const TA*>(r.a), static_cast<const TB*>(r.b), r.n);
      });
    });
  });
}

void RegisterResidual(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "residualForward", BuildResidualForward);
}

}  // namespace pt
