// kernels.cuh: device-side helpers shared by the CUDA launchers (cuda/*.cu), first written for the element-wise,
// normalisation and reduction ops (gelu, embedding, layernorm, residual, cast, adamw, reduce):
//   - f32/bf16 loads and stores; the bf16 store rounds exactly like F32ToBf16 in common.h (nearest even, NaN
//     kept quiet with its sign and top payload bits), so a CUDA result rounds to the same bits as the CPU's;
//   - Pack<T, W>: W consecutive elements moved by one (or two) 16-byte accesses when the pointers allow it;
//   - grid sizing for grid-stride loops, warp and block sums, and the f32/bf16 dispatch of the launchers.
// Element indices are int64_t everywhere (a tensor may hold more than 2^31 elements).
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "../common.h"

namespace pt::cuda {

// Threads per block of the element-wise kernels, and the most blocks a grid-stride launch asks for: 2^15 blocks
// of 256 threads keep every SM of an H200 busy many times over while staying far inside gridDim.x's limit.
constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = int64_t(1) << 15;

// Blocks for `items` work items at `perBlock` per block: at least 1, at most kMaxBlocks (the kernels loop).
inline unsigned GridBlocks(int64_t items, int64_t perBlock) {
  int64_t b = (items + perBlock - 1) / perBlock;
  if (b < 1) b = 1;
  if (b > kMaxBlocks) b = kMaxBlocks;
  return unsigned(b);
}

// ---- element access ----

__device__ __forceinline__ float LoadF32(float x) { return x; }
__device__ __forceinline__ float LoadF32(__nv_bfloat16 x) {
  return __uint_as_float(uint32_t(__bfloat16_as_ushort(x)) << 16);  // exact
}

// common.h's F32ToBf16, bit for bit (cvt.rn.bf16.f32 would canonicalise NaNs instead).
__device__ __forceinline__ uint16_t F32ToBf16Bits(float f) {
  const uint32_t u = __float_as_uint(f);
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  const uint32_t quietNan = (u >> 16) | 0x40u;
  return uint16_t((u & 0x7fffffffu) > 0x7f800000u ? quietNan : rounded);
}

template <typename T>
__device__ __forceinline__ T StoreAs(float v);
template <>
__device__ __forceinline__ float StoreAs<float>(float v) { return v; }
template <>
__device__ __forceinline__ __nv_bfloat16 StoreAs<__nv_bfloat16>(float v) {
  return __ushort_as_bfloat16(F32ToBf16Bits(v));
}

// W consecutive elements, aligned so that one access (two for 8 f32) moves them: 16 bytes at most.
template <typename T, int W>
struct alignas(sizeof(T) * W > 16 ? 16 : sizeof(T) * W) Pack {
  T v[W];
};

template <int W, typename T>
__device__ __forceinline__ Pack<T, W> LoadPack(const T* p) {
  return *reinterpret_cast<const Pack<T, W>*>(p);
}
template <int W, typename T>
__device__ __forceinline__ void StorePack(T* p, const Pack<T, W>& x) {
  *reinterpret_cast<Pack<T, W>*>(p) = x;
}

// Whether p may be accessed as Pack<T, W> (host side: pick the vector kernel or the scalar one).
template <typename T, int W>
inline bool PackAligned(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % alignof(Pack<T, W>) == 0;
}

// ---- reductions ----

// Butterfly sum over the warp: every lane ends with the same bits (each step adds the same two values, and
// IEEE addition commutes exactly), so lanes that go on to use the sum agree.
template <typename T>
__device__ __forceinline__ T WarpSum(T x) {
  for (int o = 16; o > 0; o >>= 1) x += __shfl_xor_sync(0xffffffffu, x, o);
  return x;
}

// Butterfly maximum over the warp: every lane ends with the same value.
__device__ __forceinline__ float WarpMax(float x) {
  for (int o = 16; o > 0; o >>= 1) x = fmaxf(x, __shfl_xor_sync(0xffffffffu, x, o));
  return x;
}

// Block sum in a fixed order (warp butterflies, then warp 0 over the warps' sums in warp order); the result is
// valid in thread 0. `shared` holds one T per warp; blockDim.x is a multiple of 32, at most 1024. Every thread
// of the block must call it.
template <typename T>
__device__ __forceinline__ T BlockSum(T x, T* shared) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, warps = blockDim.x / 32;
  x = WarpSum(x);
  if (lane == 0) shared[warp] = x;
  __syncthreads();
  T total = T(0);
  if (warp == 0) {
    total = lane < warps ? shared[lane] : T(0);
    total = WarpSum(total);
  }
  __syncthreads();  // shared may be reused by the caller
  return total;
}

// ---- element-wise maps ----

// out[i] = f(a[i]) or f(a[i], b[i]) in f32, stored rounded to out's dtype. W > 1: every pointer is
// Pack-aligned, so W-element packs are moved whole and the last n % W elements go one per thread. out may be a
// or b itself: each element is read before it is written, by the thread that writes it.
template <int W, typename F, typename TO, typename TA>
__global__ void Map1Kernel(TO* out, const TA* a, int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = n / W;
  for (int64_t p = tid; p < packs; p += stride) {
    const Pack<TA, W> x = LoadPack<W>(a + p * W);
    Pack<TO, W> y;
#pragma unroll
    for (int k = 0; k < W; k++) y.v[k] = StoreAs<TO>(f(LoadF32(x.v[k])));
    StorePack<W>(out + p * W, y);
  }
  const int64_t i = packs * W + tid;  // the tail: fewer than W elements, stride >= W
  if (i < n) out[i] = StoreAs<TO>(f(LoadF32(a[i])));
}

template <int W, typename F, typename TO, typename TA, typename TB>
__global__ void Map2Kernel(TO* out, const TA* a, const TB* b, int64_t n, F f) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  const int64_t tid = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = n / W;
  for (int64_t p = tid; p < packs; p += stride) {
    const Pack<TA, W> x = LoadPack<W>(a + p * W);
    const Pack<TB, W> z = LoadPack<W>(b + p * W);
    Pack<TO, W> y;
#pragma unroll
    for (int k = 0; k < W; k++) y.v[k] = StoreAs<TO>(f(LoadF32(x.v[k]), LoadF32(z.v[k])));
    StorePack<W>(out + p * W, y);
  }
  const int64_t i = packs * W + tid;
  if (i < n) out[i] = StoreAs<TO>(f(LoadF32(a[i]), LoadF32(b[i])));
}

// Elements per pack of the maps: 8 (16 bytes of bf16, 32 of f32).
constexpr int kMapWidth = 8;

// Queue out = f(a) (n > 0); the caller checks the launch with PT_CUDA_LAUNCHED naming its op.
template <typename F, typename TO, typename TA>
void LaunchMap1(TO* out, const TA* a, int64_t n, F f, cudaStream_t stream) {
  if (PackAligned<TO, kMapWidth>(out) && PackAligned<TA, kMapWidth>(a)) {
    Map1Kernel<kMapWidth><<<GridBlocks(n / kMapWidth, kThreads), kThreads, 0, stream>>>(out, a, n, f);
  } else {
    Map1Kernel<1><<<GridBlocks(n, kThreads), kThreads, 0, stream>>>(out, a, n, f);
  }
}

template <typename F, typename TO, typename TA, typename TB>
void LaunchMap2(TO* out, const TA* a, const TB* b, int64_t n, F f, cudaStream_t stream) {
  if (PackAligned<TO, kMapWidth>(out) && PackAligned<TA, kMapWidth>(a) && PackAligned<TB, kMapWidth>(b)) {
    Map2Kernel<kMapWidth><<<GridBlocks(n / kMapWidth, kThreads), kThreads, 0, stream>>>(out, a, b, n, f);
  } else {
    Map2Kernel<1><<<GridBlocks(n, kThreads), kThreads, 0, stream>>>(out, a, b, n, f);
  }
}

// ---- dtype dispatch on the host ----

template <typename T>
struct TypeTag {
  using type = T;
};

// f(TypeTag<float>) or f(TypeTag<__nv_bfloat16>) by dtype; any other dtype is an argument error naming op and
// the tensor (the builders check dtypes first, so this only guards the launcher's own contract).
template <typename F>
void ForFloatType(DType d, const char* op, const char* what, F&& f) {
  if (d == DType::F32) {
    f(TypeTag<float>{});
  } else if (d == DType::BF16) {
    f(TypeTag<__nv_bfloat16>{});
  } else {
    PT_CHECK_ARG(false, op, ": '", what, "' must be f32 or bf16, got ", DTypeName(d));
  }
}

}  // namespace pt::cuda
