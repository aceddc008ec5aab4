// device.h: where a tensor's memory lives ('cpu', or 'cuda:N'), and the memory operations that differ by
// device: allocation (zero-filled), freeing, copies between any two devices, and fills. Host memory comes from
// tensor.cc's allocator; CUDA memory from cuda/runtime.cu's caching allocator, only in builds with CUDA
// (PT_HAVE_CUDA). In a build without CUDA, or on a machine without a usable GPU, naming a CUDA device is an
// argument error carrying the reason (backendInfo().cuda says the same).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "common.h"

namespace pt {

enum class DeviceKind : int { Cpu = 0, Cuda = 1 };

struct Device {
  DeviceKind kind = DeviceKind::Cpu;
  int index = 0;
  bool IsCpu() const { return kind == DeviceKind::Cpu; }
  bool IsCuda() const { return kind == DeviceKind::Cuda; }
  bool operator==(const Device& o) const { return kind == o.kind && (kind == DeviceKind::Cpu || index == o.index); }
  bool operator!=(const Device& o) const { return !(*this == o); }
  std::string Name() const { return IsCpu() ? "cpu" : "cuda:" + std::to_string(index); }
};

// 'cpu', 'cuda' (device 0) or 'cuda:N'; `where` names the caller in errors. A CUDA device must exist.
Device ParseDevice(const std::string& s, const char* where);

// CUDA as this process sees it: compiled into the build, and at least one usable device.
bool CudaCompiled();
int CudaDeviceCount();
std::string CudaUnavailableReason();  // "" when CudaDeviceCount() > 0

// Zero-filled memory of `bytes` (the CPU path rounds and aligns; see tensor.cc). `what` names the caller.
void* DeviceAllocate(Device d, size_t bytes, const std::string& what);
void DeviceFree(Device d, void* p, size_t bytes);
// Copies `bytes` from src on `from` to dst on `to`. A copy that reads or writes host memory has finished when
// this returns; one between CUDA devices is queued on the destination's stream.
void DeviceCopy(Device to, void* dst, Device from, const void* src, size_t bytes, const std::string& what);
// Sets `count` elements of `elementSize` (2 or 4) bytes to `pattern`.
void DeviceFill(Device d, void* dst, size_t count, uint32_t pattern, size_t elementSize, const std::string& what);
// Waits for everything queued on the device (a no-op on the CPU, whose ops finish before they report).
void DeviceSynchronize(Device d, const std::string& what);

}  // namespace pt
