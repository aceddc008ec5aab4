// cast.cc: dtype conversion between same-sized tensors, and copies between devices.
//   cast(out, inp): f32 -> bf16 rounds to nearest even (NaN stays NaN, +-Inf stays +-Inf, finite values past
//   bf16's range become +-Inf); bf16 -> f32 is exact; the same dtype on both sides is a copy.
// Memory-bound and elementwise: parallel over fixed blocks of elements. On AVX-512 (ActiveIsa()) the
// conversions run a hand-written loop over 16 lanes (vecmath_avx512.h), bit for bit the multiversioned loops,
// which remain the path below AVX-512.
#include <algorithm>
#include <cstring>

#include "../cpu.h"
#include "../op.h"
#include "../vecmath.h"
#include "../vecmath_avx512.h"
#include "ops.h"

namespace pt {

namespace {

constexpr int64_t kBlock = int64_t(1) << 15;  // elements per parallel work item

// One block each, multiversioned (see vecmath.h). out (n), inp (n).
PT_CLONES void ConvertBlock(bf16* __restrict out, const float* __restrict inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = F32ToBf16(inp[i]);
}
PT_CLONES void ConvertBlock(float* __restrict out, const bf16* __restrict inp, int64_t n) {
  for (int64_t i = 0; i < n; i++) out[i] = Bf16ToF32(inp[i]);
}

#ifdef PT_HAVE_EW_AVX512
template <typename O, typename I>
PT_EW_AVX512 void ConvertBlockAvx512(O* __restrict out, const I* __restrict inp, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) avx512::Store(out + i, avx512::Load(inp + i));
  if (i < n) {
    const __mmask16 k = avx512::TailMask(n - i);
    avx512::Store(out + i, k, avx512::Load(inp + i, k));
  }
}
#endif

template <typename O, typename I>
void Convert(O* out, const I* inp, int64_t n) {
  void (*block)(O*, const I*, int64_t) = &ConvertBlock;
#ifdef PT_HAVE_EW_AVX512
  if (ActiveIsa() >= Isa::Avx512) block = &ConvertBlockAvx512<O, I>;
#endif
  const int64_t nBlocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t b = 0; b < nBlocks; b++) {
    const int64_t lo = b * kBlock;
    block(out + lo, inp + lo, std::min(kBlock, n - lo));
  }
}

// out (bytes), inp (bytes)
void Copy(void* out, const void* inp, size_t bytes) {
  const size_t blockBytes = size_t(kBlock) * 4;
  const int64_t nBlocks = int64_t((bytes + blockBytes - 1) / blockBytes);
#pragma omp parallel for num_threads(Threads()) schedule(static)
  for (int64_t b = 0; b < nBlocks; b++) {
    size_t lo = size_t(b) * blockBytes, len = std::min(blockBytes, bytes - lo);
    std::memcpy(static_cast<char*>(out) + lo, static_cast<const char*>(inp) + lo, len);
  }
}

// cast(out, inp)
Kernel BuildCast(OpArgs& a) {
  const std::string& op = a.op();
  Tensor out = a.tensor(0, "out"), inp = a.tensor(1, "inp");
  ExpectNumel(op, "out", out, inp.numel);
  const CastArgs c{out.raw(), inp.raw(), out.dtype, inp.dtype, inp.numel};
  if (out.dtype == inp.dtype) {
    if (out.storage == inp.storage && out.byteOffset == inp.byteOffset) {
      return ForDevice(
          a, []() { return OpResult{}; }, PT_CUDA_LAUNCH(return OpResult{};));
    }
    ExpectNoOverlap(op, "out", out, "inp", inp);
    return LaunchOn(a, c, &cpu::Cast, PT_CUDA_FN(Cast));
  }
  ExpectFloat(op, "out", out);
  ExpectFloat(op, "inp", inp);
  ExpectNoOverlap(op, "out", out, "inp", inp);
  return LaunchOn(a, c, &cpu::Cast, PT_CUDA_FN(Cast));
}

}  // namespace

void cpu::Cast(const CastArgs& c) {
  if (c.outType == c.inpType) Copy(c.out, c.inp, size_t(c.n) * DTypeSize(c.inpType));
  else if (c.outType == DType::BF16) Convert(static_cast<bf16*>(c.out), static_cast<const float*>(c.inp), c.n);
  else Convert(static_cast<float*>(c.out), static_cast<const bf16*>(c.inp), c.n);
}

namespace {

// copy(out, inp): the same dtype and element count, on any two devices (the one op whose tensors may be on
// different devices: it is how data moves between them). A copy that reads or writes host memory has finished
// when the op settles; one between two CUDA tensors is queued on the destination's stream.
Kernel BuildCopy(OpArgs& a) {
  a.allowMixedDevices();
  const std::string op = a.op();
  Tensor out = a.tensor(0, "out"), inp = a.tensor(1, "inp");
  ExpectSameDType(op, "out", out, "inp", inp);
  ExpectNumel(op, "out", out, inp.numel);
  ExpectSameOrNoOverlap(op, "out", out, "inp", inp);
  a.markRouted();
  const Device to = out.device(), from = inp.device();
  void* dst = out.raw();
  const void* src = inp.raw();
  const size_t bytes = inp.nbytes();
  if (dst == src && to == from) return []() { return OpResult{}; };
  if (to.IsCpu() && from.IsCpu()) {
    const CastArgs c{dst, src, out.dtype, inp.dtype, inp.numel};
    return [c]() {
      cpu::Cast(c);
      return OpResult{};
    };
  }
  return [=]() {
    DeviceCopy(to, dst, from, src, bytes, op);
    return OpResult{};
  };
}

}  // namespace

void RegisterCast(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "cast", BuildCast);
  RegisterOp(env, exports, "copy", BuildCopy);
}

}  // namespace pt
