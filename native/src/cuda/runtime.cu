// runtime.cu: the CUDA runtime layer of runtime.h: devices, one stream each, the caching allocator, copies,
// fills and synchronisation. Every CUDA call's status is checked (check.h); nothing here aborts.
#include <cuda_runtime.h>

#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "check.h"
#include "cuda_info.h"
#include "runtime.h"

namespace pt::cuda {

namespace {

constexpr size_t kSmallGranule = 512;
constexpr size_t kLargeGranule = size_t(2) << 20;
constexpr size_t kSmallLimit = size_t(1) << 20;

size_t RoundBytes(size_t bytes) {
  if (bytes == 0) bytes = 1;
  const size_t g = bytes < kSmallLimit ? kSmallGranule : kLargeGranule;
  return (bytes + g - 1) / g * g;
}

// A cached block may serve a request up to this factor smaller (large blocks only), so a slightly smaller
// activation reuses a freed one instead of calling cudaMalloc.
constexpr size_t kReuseSlack = 2;

struct DeviceState {
  std::mutex mu;
  cudaStream_t stream = nullptr;
  std::multimap<size_t, void*> cache;          // block size -> free block
  std::unordered_map<void*, size_t> live;      // allocated block -> its size
  MemoryStats stats;
};

struct Runtime {
  CudaStatus status = QueryCuda();
  std::vector<std::unique_ptr<DeviceState>> devices;
  Runtime() {
    for (size_t i = 0; i < status.devices.size(); i++) devices.push_back(std::make_unique<DeviceState>());
  }
};

Runtime& R() {
  static Runtime* r = new Runtime();  // never destroyed: blocks may be released during process teardown
  return *r;
}

DeviceState& D(int device) {
  Runtime& r = R();
  PT_CHECK_ARG(device >= 0 && size_t(device) < r.devices.size(), "cuda:", device, " does not exist (",
               r.devices.size(), " CUDA device(s) usable)");
  return *r.devices[size_t(device)];
}

// Returns every cached block of `s` to the driver; the caller holds s.mu and has synchronised the device.
void FreeCached(DeviceState& s) {
  for (auto& [bytes, p] : s.cache) {
    cudaFree(p);
    s.stats.cached -= bytes;
  }
  s.cache.clear();
}

__global__ void Fill32(uint32_t* p, size_t n, uint32_t v) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) p[i] = v;
}
__global__ void Fill16(uint16_t* p, size_t n, uint16_t v) {
  for (size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x) p[i] = v;
}

}  // namespace

int DeviceCount() { return int(R().devices.size()); }

std::string UnavailableReason() {
  const CudaStatus& s = R().status;
  if (!s.devices.empty()) return "";
  if (!s.error.empty()) return s.error;
  return "no CUDA device found";
}

void SetDevice(int device, const std::string& op) {
  D(device);
  int current = -1;
  PT_CUDA_CHECK(op, cudaGetDevice(&current));
  if (current != device) PT_CUDA_CHECK(op, cudaSetDevice(device));
}

cudaStream_t Stream(int device) {
  DeviceState& s = D(device);
  SetDevice(device, "cuda stream");
  std::lock_guard<std::mutex> lock(s.mu);
  if (!s.stream) PT_CUDA_CHECK("cuda stream", cudaStreamCreateWithFlags(&s.stream, cudaStreamNonBlocking));
  return s.stream;
}

int StreamDevice(cudaStream_t stream) {
  Runtime& r = R();
  for (size_t i = 0; i < r.devices.size(); i++) {
    std::lock_guard<std::mutex> lock(r.devices[i]->mu);
    if (r.devices[i]->stream == stream) return int(i);
  }
  FailAt(ErrorKind::Engine, __FILE__, __LINE__, "cuda: a launcher was given a stream that no device owns");
}

void* Allocate(int device, size_t bytes, const std::string& op) {
  DeviceState& s = D(device);
  const size_t want = RoundBytes(bytes);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.cache.lower_bound(want);
  if (it != s.cache.end() && (want < kSmallLimit ? it->first == want : it->first <= want * kReuseSlack)) {
    void* p = it->second;
    const size_t got = it->first;
    s.cache.erase(it);
    s.stats.cached -= got;
    s.live.emplace(p, got);
    s.stats.allocated += got;
    if (s.stats.allocated > s.stats.peak) s.stats.peak = s.stats.allocated;
    return p;
  }
  SetDevice(device, op);
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, want);
  if (err == cudaErrorMemoryAllocation && !s.cache.empty()) {
    cudaGetLastError();
    if (s.stream) PT_CUDA_CHECK(op, cudaStreamSynchronize(s.stream));
    FreeCached(s);
    err = cudaMalloc(&p, want);
  }
  if (err == cudaErrorMemoryAllocation) {
    cudaGetLastError();
    FailAt(ErrorKind::Engine, __FILE__, __LINE__,
           Concat(op, ": out of GPU memory allocating ", bytes, " bytes on cuda:", device, " (", s.stats.allocated,
                  " bytes in use by tensors)"));
  }
  if (err != cudaSuccess) Fail(op, "cudaMalloc", err, __FILE__, __LINE__);
  s.stats.driverAllocs++;
  s.live.emplace(p, want);
  s.stats.allocated += want;
  if (s.stats.allocated > s.stats.peak) s.stats.peak = s.stats.allocated;
  return p;
}

void Release(int device, void* p, size_t) {
  if (!p) return;
  DeviceState& s = D(device);
  std::lock_guard<std::mutex> lock(s.mu);
  auto it = s.live.find(p);
  if (it == s.live.end()) return;  // not ours: nothing to do (never happens for pointers from Allocate)
  const size_t bytes = it->second;
  s.live.erase(it);
  s.stats.allocated -= bytes;
  s.cache.emplace(bytes, p);
  s.stats.cached += bytes;
}

void EmptyCache(int device) {
  DeviceState& s = D(device);
  SetDevice(device, "emptyCudaCache");
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.stream) PT_CUDA_CHECK("emptyCudaCache", cudaStreamSynchronize(s.stream));
  FreeCached(s);
}

MemoryStats Stats(int device) {
  DeviceState& s = D(device);
  std::lock_guard<std::mutex> lock(s.mu);
  return s.stats;
}

void Copy(int device, void* dst, const void* src, size_t bytes, CopyKind kind, const std::string& op) {
  if (bytes == 0) return;
  cudaStream_t stream = Stream(device);
  const cudaMemcpyKind k = kind == CopyKind::HostToDevice   ? cudaMemcpyHostToDevice
                           : kind == CopyKind::DeviceToHost ? cudaMemcpyDeviceToHost
                                                            : cudaMemcpyDeviceToDevice;
  PT_CUDA_CHECK(op, cudaMemcpyAsync(dst, src, bytes, k, stream));
  if (kind != CopyKind::DeviceToDevice) PT_CUDA_CHECK(op, cudaStreamSynchronize(stream));
}

void Fill(int device, void* dst, size_t count, uint32_t pattern, size_t elementSize, const std::string& op) {
  if (count == 0) return;
  cudaStream_t stream = Stream(device);
  if (pattern == 0) {
    PT_CUDA_CHECK(op, cudaMemsetAsync(dst, 0, count * elementSize, stream));
    return;
  }
  const unsigned threads = 256;
  const size_t blocks = std::min<size_t>((count + threads - 1) / threads, 65535);
  if (elementSize == 4) Fill32<<<unsigned(blocks), threads, 0, stream>>>(static_cast<uint32_t*>(dst), count, pattern);
  else Fill16<<<unsigned(blocks), threads, 0, stream>>>(static_cast<uint16_t*>(dst), count, uint16_t(pattern));
  PT_CUDA_LAUNCHED(op, "fill");
}

void Synchronize(int device, const std::string& op) {
  cudaStream_t stream = Stream(device);
  PT_CUDA_CHECK(op, cudaStreamSynchronize(stream));
}

}  // namespace pt::cuda
