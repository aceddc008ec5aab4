// runtime.h: the CUDA side of the device layer: which GPUs exist, one stream per device, the caching
// allocator, copies, and scratch buffers for launchers. Compiled only when CMake finds a CUDA compiler
// (PT_HAVE_CUDA); tensor.cc and op.cc call it for CUDA storage, the launchers in cuda/*.cu for scratch.
//
// Ordering: every op on a device is queued on that device's one stream, in call order, so memory freed back
// to the cache after an op was queued can be handed to a later op without waiting: the stream runs them in
// order. Memory goes back to the driver (cudaFree) only in EmptyCache, after the device is synchronised.
#pragma once
#include <cstddef>
#include <string>

#include "../common.h"

typedef struct CUstream_st* cudaStream_t;

namespace pt::cuda {

// The number of usable devices (0 without a driver or GPU), and why there are none.
int DeviceCount();
std::string UnavailableReason();  // "" when DeviceCount() > 0

// The device's stream (created on first use; the device is made current on the calling thread).
cudaStream_t Stream(int device);
// Makes `device` current on the calling thread (cheap when it already is).
void SetDevice(int device, const std::string& op);

// Caching allocator: sizes are rounded up (512 B granularity below 1 MiB, 2 MiB above) and freed blocks are
// kept per device and size for reuse. Throws an Engine PtError naming `op` when the device is out of memory
// even after emptying the cache.
void* Allocate(int device, size_t bytes, const std::string& op);
void Release(int device, void* p, size_t bytes);
// Waits for the device, then returns every cached block to the driver.
void EmptyCache(int device);
struct MemoryStats {
  size_t allocated = 0;  // bytes in live allocations (rounded sizes)
  size_t cached = 0;     // bytes held for reuse
  size_t peak = 0;       // highest `allocated` so far
  size_t driverAllocs = 0;  // cudaMalloc calls so far (steady-state training adds none)
};
MemoryStats Stats(int device);

// Scratch memory for one launch, from the caching allocator, returned when the Buffer goes out of scope
// (safe while the stream still uses it: see Ordering above).
class Buffer {
 public:
  Buffer(int device, size_t bytes, const std::string& op) : device_(device), bytes_(bytes) {
    if (bytes_) ptr_ = Allocate(device_, bytes_, op);
  }
  ~Buffer() {
    if (ptr_) Release(device_, ptr_, bytes_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  template <typename T = void>
  T* get() const { return static_cast<T*>(ptr_); }

 private:
  int device_;
  size_t bytes_;
  void* ptr_ = nullptr;
};

// The device whose stream is `stream` (launchers use it to allocate scratch on the right device).
int StreamDevice(cudaStream_t stream);

enum class CopyKind { HostToDevice, DeviceToHost, DeviceToDevice };
// Copies `bytes` queued on the device's stream; HostToDevice and DeviceToHost wait for the copy to finish
// (the host memory belongs to JavaScript), DeviceToDevice does not.
void Copy(int device, void* dst, const void* src, size_t bytes, CopyKind kind, const std::string& op);
// Sets `bytes` to the repeated 4-byte or 2-byte pattern (fill), queued on the stream.
void Fill(int device, void* dst, size_t count, uint32_t pattern, size_t elementSize, const std::string& op);
// Waits until everything queued on the device has run; a failure of any earlier kernel surfaces here.
void Synchronize(int device, const std::string& op);

}  // namespace pt::cuda
