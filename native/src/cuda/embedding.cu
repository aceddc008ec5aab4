// embedding.cu: token embedding on the GPU, the twin of ops/embedding.cc: the forward gathers wte rows, the
// backward scatter-adds dout rows into dwte.
// Accumulation rule: parameter gradients accumulate (dwte +=, always f32); no activation gradients (ids are
// integers).
// Ids are checked on the device before anything is written: a kernel finds the first position whose id is
// outside [0, vocabLimit) (atomicMin over positions), the launcher reads that one number back and synchronises
// the stream, and a bad id becomes the CPU op's argument error (same wording, naming position and value). So
// both ops wait for the GPU; out/dwte are untouched after a bad batch.
// Forward: one block per row (grid-stride over rows), the row copied in the widest unit (16, 8, 4 or 2 bytes)
// that the row size and both pointers allow; a pure copy, so any dtype's bits come through unchanged.
// Backward, deterministic without float atomics: the ids are sorted with their positions (CUB's stable radix
// sort over the bits V needs), and the first position of each run of equal ids owns that dwte row: its block
// adds the run's dout rows in position order, starting from dwte's value. That is the CPU kernel's order of
// additions for every element, so dwte gets the CPU's bits (f32 dout) for any grid.
#include <cub/device/device_radix_sort.cuh>

#include <algorithm>
#include <climits>

#include "../launch.h"
#include "check.h"
#include "kernels.cuh"
#include "runtime.h"

namespace pt {
namespace cuda {

namespace {

constexpr unsigned long long kNoBadId = ~0ull;

// ids (n): firstBad (1) = min(firstBad, the lowest position whose id is outside [0, limit)). Each thread visits
// its positions in increasing order, so its first bad one is its lowest: one atomic per thread at most.
__global__ void FirstBadIdKernel(unsigned long long* firstBad, const int32_t* ids, int64_t n, int64_t limit) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    const int32_t id = ids[i];
    if (id < 0 || id >= limit) {
      atomicMin(firstBad, static_cast<unsigned long long>(i));
      return;
    }
  }
}

// out (n, rowUnits), ids (n), table (V, rowUnits), in units U of the row's bytes.
template <typename U>
__global__ void GatherRowsKernel(U* out, const int32_t* ids, const U* table, int64_t n, int64_t rowUnits) {
  for (int64_t r = blockIdx.x; r < n; r += gridDim.x) {
    const U* src = table + int64_t(ids[r]) * rowUnits;
    U* dst = out + r * rowUnits;
    for (int64_t j = threadIdx.x; j < rowUnits; j += blockDim.x) dst[j] = src[j];
  }
}

// positions (n) = 0, 1, ..., n - 1
__global__ void IotaKernel(int32_t* positions, int64_t n) {
  const int64_t stride = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) positions[i] = int32_t(i);
}

// dwte (V, C) +=, keys (n) the sorted ids, positions (n) their positions in dout (ascending within a run of
// equal ids: the sort is stable), dout (N, C). W > 1: C % W == 0 and dwte, dout are Pack-aligned.
template <int W, typename T>
__global__ void EmbeddingBackwardKernel(float* dwte, const uint32_t* keys, const int32_t* positions, const T* dout,
                                        int64_t n, int64_t c) {
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    const uint32_t key = keys[i];
    if (i > 0 && keys[i - 1] == key) continue;  // not the first of its run; the same for the whole block
    float* dst = dwte + int64_t(key) * c;
    for (int64_t j = int64_t(threadIdx.x) * W; j < c; j += int64_t(blockDim.x) * W) {
      Pack<float, W> acc = LoadPack<W>(dst + j);
      for (int64_t k = i; k < n && keys[k] == key; k++) {
        const Pack<T, W> g = LoadPack<W>(dout + int64_t(positions[k]) * c + j);
#pragma unroll
        for (int w = 0; w < W; w++) acc.v[w] += LoadF32(g.v[w]);
      }
      StorePack<W>(dst + j, acc);
    }
  }
}

// Threads for a block that walks one row of `units` elements: a whole number of warps, 32 to 256.
unsigned RowThreads(int64_t units) {
  const int64_t warps = (units + 31) / 32;
  return unsigned(32 * std::min<int64_t>(std::max<int64_t>(warps, 1), kThreads / 32));
}

// ids (n) on the device: throws the CPU op's argument error for the first id outside [0, limit). Waits for the
// stream (the answer decides whether the op goes on).
void CheckIds(const std::string& op, const int32_t* ids, int64_t n, int64_t limit, cudaStream_t stream) {
  Buffer scratch(StreamDevice(stream), sizeof(unsigned long long), op);
  unsigned long long* firstBad = scratch.get<unsigned long long>();
  PT_CUDA_CHECK(op, cudaMemsetAsync(firstBad, 0xff, sizeof(unsigned long long), stream));  // kNoBadId
  FirstBadIdKernel<<<GridBlocks(n, kThreads), kThreads, 0, stream>>>(firstBad, ids, n, limit);
  PT_CUDA_LAUNCHED(op, "FirstBadIdKernel");
  unsigned long long first = kNoBadId;
  PT_CUDA_CHECK(op, cudaMemcpyAsync(&first, firstBad, sizeof first, cudaMemcpyDeviceToHost, stream));
  PT_CUDA_CHECK(op, cudaStreamSynchronize(stream));
  if (first == kNoBadId) return;
  int32_t id = 0;
  PT_CUDA_CHECK(op, cudaMemcpyAsync(&id, ids + first, sizeof id, cudaMemcpyDeviceToHost, stream));
  PT_CUDA_CHECK(op, cudaStreamSynchronize(stream));
  PT_CHECK_ARG(false, op, ": ids[", int64_t(first), "] = ", id, " is outside the vocabulary [0, ", limit, ")");
}

template <typename U>
void GatherRows(void* out, const int32_t* ids, const void* table, int64_t n, size_t rowBytes, cudaStream_t stream) {
  const int64_t rowUnits = int64_t(rowBytes / sizeof(U));
  GatherRowsKernel<U><<<GridBlocks(n, 1), RowThreads(rowUnits), 0, stream>>>(
      static_cast<U*>(out), ids, static_cast<const U*>(table), n, rowUnits);
}

template <typename T>
void ScatterAdd(float* dwte, const int32_t* ids, const T* dout, int64_t n, int64_t c, int64_t v,
                const std::string& op, cudaStream_t stream) {
  PT_CHECK_ARG(n <= INT32_MAX, op, ": ", n, " ids are more than the CUDA backward sorts (2^31 - 1)");
  int bits = 1;  // every id is below v <= 2^bits (ids are int32, so 31 bits always suffice)
  while (bits < 31 && (int64_t(1) << bits) < v) bits++;
  const int device = StreamDevice(stream);
  Buffer keys(device, size_t(n) * sizeof(uint32_t), op);        // (n) the ids, sorted
  Buffer unsorted(device, size_t(n) * sizeof(int32_t), op);     // (n) 0, 1, ..., n - 1
  Buffer positions(device, size_t(n) * sizeof(int32_t), op);    // (n) the positions, in the ids' sorted order
  int32_t* positionsIn = unsorted.get<int32_t>();
  int32_t* positionsOut = positions.get<int32_t>();
  // The ids are checked non-negative, so sorting their bits as unsigned sorts them as ids.
  const uint32_t* keysIn = reinterpret_cast<const uint32_t*>(ids);
  IotaKernel<<<GridBlocks(n, kThreads), kThreads, 0, stream>>>(positionsIn, n);
  PT_CUDA_LAUNCHED(op, "IotaKernel");
  size_t tempBytes = 0;
  PT_CUDA_CHECK(op, cub::DeviceRadixSort::SortPairs(nullptr, tempBytes, keysIn, keys.get<uint32_t>(), positionsIn,
                                                    positionsOut, int(n), 0, bits, stream));
  Buffer temp(device, tempBytes, op);
  PT_CUDA_CHECK(op, cub::DeviceRadixSort::SortPairs(temp.get(), tempBytes, keysIn, keys.get<uint32_t>(),
                                                    positionsIn, positionsOut, int(n), 0, bits, stream));
  constexpr int W = 16 / sizeof(T);  // one 16-byte pack of dout
  if (c % W == 0 && PackAligned<float, W>(dwte) && PackAligned<T, W>(dout)) {
    EmbeddingBackwardKernel<W, T><<<GridBlocks(n, 1), RowThreads(c / W), 0, stream>>>(
        dwte, keys.get<uint32_t>(), positionsOut, dout, n, c);
  } else {
    EmbeddingBackwardKernel<1, T><<<GridBlocks(n, 1), RowThreads(c), 0, stream>>>(
        dwte, keys.get<uint32_t>(), positionsOut, dout, n, c);
  }
  PT_CUDA_LAUNCHED(op, "EmbeddingBackwardKernel");
}

}  // namespace

// out (N, C), ids (N), wte (V, C)
void EmbeddingForward(const EmbeddingArgs& a, const std::string& op, cudaStream_t stream) {
  if (a.n == 0) return;
  CheckIds(op, a.ids, a.n, a.vocabLimit, stream);
  if (a.c == 0) return;
  const size_t rowBytes = size_t(a.c) * DTypeSize(a.dtype);
  const auto fits = [&](size_t unit) {
    return rowBytes % unit == 0 && reinterpret_cast<uintptr_t>(a.out) % unit == 0 &&
           reinterpret_cast<uintptr_t>(a.table) % unit == 0;
  };
  if (fits(16)) GatherRows<uint4>(a.out, a.ids, a.table, a.n, rowBytes, stream);
  else if (fits(8)) GatherRows<uint2>(a.out, a.ids, a.table, a.n, rowBytes, stream);
  else if (fits(4)) GatherRows<uint32_t>(a.out, a.ids, a.table, a.n, rowBytes, stream);
  else GatherRows<uint16_t>(a.out, a.ids, a.table, a.n, rowBytes, stream);
  PT_CUDA_LAUNCHED(op, "GatherRowsKernel");
}

// dwte (V, C) +=, ids (N), dout (N, C)
void EmbeddingBackward(const EmbeddingArgs& a, const std::string& op, cudaStream_t stream) {
  if (a.n == 0) return;
  CheckIds(op, a.ids, a.n, a.v, stream);
  if (a.c == 0) return;
  ForFloatType(a.dtype, op.c_str(), "dout", [&](auto tag) {
    using T = typename decltype(tag)::type;
    ScatterAdd(static_cast<float*>(a.out), a.ids, static_cast<const T*>(a.table), a.n, a.c, a.v, op, stream);
  });
}

}  // namespace cuda
}  // namespace pt
