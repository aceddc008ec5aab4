// device.cc: device names and the per-device memory operations of device.h.
#include "device.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

#ifdef PT_HAVE_CUDA
#include "cuda/runtime.h"
#endif

namespace pt {

namespace {

constexpr size_t kAlign = 64;

// Host allocations of at least this many bytes are mapped straight from the kernel, smaller ones come from
// the heap. glibc's malloc moves its mmap threshold up to the largest block freed so far (up to 32 MiB), after
// which tensor-sized blocks are carved from the heap; aligned_alloc over-allocates and splits them, and the
// small long-lived objects placed in the gaps (wrappers waiting for GC) keep the heap from ever shrinking or
// reusing the holes: a synchronous allocate/dispose loop then grows RSS by a whole tensor per iteration.
// A mapping is returned to the kernel by munmap at dispose(), whatever else lives on the heap, and arrives
// zero-filled, so it needs no memset. 128 KiB is glibc's own initial threshold.
constexpr size_t kMapBytes = size_t(128) << 10;

size_t RoundedBytes(size_t nbytes) {
  size_t rounded = (nbytes + kAlign - 1) / kAlign * kAlign;
  return rounded == 0 ? kAlign : rounded;
}

void* HostAllocateZeroed(size_t nbytes) {
  const size_t rounded = RoundedBytes(nbytes);
  if (rounded >= kMapBytes) {
    void* p = mmap(nullptr, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? nullptr : p;
  }
  void* p = std::aligned_alloc(kAlign, rounded);
  if (p) std::memset(p, 0, rounded);
  return p;
}

void HostFree(void* p, size_t nbytes) {
  const size_t rounded = RoundedBytes(nbytes);
  if (rounded >= kMapBytes) munmap(p, rounded);
  else std::free(p);
}

}  // namespace

bool CudaCompiled() {
#ifdef PT_HAVE_CUDA
  return true;
#else
  return false;
#endif
}

int CudaDeviceCount() {
#ifdef PT_HAVE_CUDA
  return cuda::DeviceCount();
#else
  return 0;
#endif
}

std::string CudaUnavailableReason() {
#ifdef PT_HAVE_CUDA
  return cuda::UnavailableReason();
#else
  return "this build has no CUDA backend (no CUDA compiler was found when it was built, or PAJAMA_CUDA=OFF)";
#endif
}

Device ParseDevice(const std::string& s, const char* where) {
  if (s == "cpu") return Device{};
  const bool isCuda = s == "cuda" || s.rfind("cuda:", 0) == 0;
  PT_CHECK_ARG(isCuda, where, ": unknown device '", s, "' (expected 'cpu', 'cuda' or 'cuda:N')");
  int index = 0;
  if (s.size() > 5) {
    const std::string digits = s.substr(5);
    PT_CHECK_ARG(digits.size() <= 4 && digits.find_first_not_of("0123456789") == std::string::npos, where,
                 ": unknown device '", s, "' (expected 'cpu', 'cuda' or 'cuda:N')");
    index = std::stoi(digits);
  }
  PT_CHECK_ARG(CudaDeviceCount() > 0, where, ": device '", s, "': cuda: unavailable (", CudaUnavailableReason(),
               ")");
  PT_CHECK_ARG(index < CudaDeviceCount(), where, ": device '", s, "' does not exist (", CudaDeviceCount(),
               " CUDA device(s): cuda:0", CudaDeviceCount() > 1 ? Concat("..cuda:", CudaDeviceCount() - 1) : "",
               ")");
  return Device{DeviceKind::Cuda, index};
}

void* DeviceAllocate(Device d, size_t bytes, const std::string& what) {
  if (d.IsCpu()) {
    void* p = HostAllocateZeroed(bytes);
    PT_CHECK_ENGINE(p != nullptr, "out of memory allocating ", bytes, " bytes of native tensor memory");
    return p;
  }
#ifdef PT_HAVE_CUDA
  void* p = cuda::Allocate(d.index, bytes, what);
  cuda::Fill(d.index, p, bytes, 0, 1, what);
  return p;
#else
  FailAt(ErrorKind::Argument, __FILE__, __LINE__, Concat(what, ": cuda: unavailable (", CudaUnavailableReason(), ")"));
#endif
}

void DeviceFree(Device d, void* p, size_t bytes) {
  if (!p) return;
  if (d.IsCpu()) return HostFree(p, bytes);
#ifdef PT_HAVE_CUDA
  cuda::Release(d.index, p, bytes);
#endif
}

void DeviceCopy(Device to, void* dst, Device from, const void* src, size_t bytes, const std::string& what) {
  if (bytes == 0) return;
  if (to.IsCpu() && from.IsCpu()) {
    std::memmove(dst, src, bytes);
    return;
  }
#ifdef PT_HAVE_CUDA
  if (from.IsCpu()) return cuda::Copy(to.index, dst, src, bytes, cuda::CopyKind::HostToDevice, what);
  if (to.IsCpu()) return cuda::Copy(from.index, dst, src, bytes, cuda::CopyKind::DeviceToHost, what);
  if (to.index != from.index) cuda::Synchronize(from.index, what);  // the source's queued writes land first
  cuda::Copy(to.index, dst, src, bytes, cuda::CopyKind::DeviceToDevice, what);
#else
  FailAt(ErrorKind::Argument, __FILE__, __LINE__, Concat(what, ": cuda: unavailable (", CudaUnavailableReason(), ")"));
#endif
}

void DeviceFill(Device d, void* dst, size_t count, uint32_t pattern, size_t elementSize, const std::string& what) {
  if (d.IsCpu()) {
    if (pattern == 0) {
      std::memset(dst, 0, count * elementSize);
    } else if (elementSize == 4) {
      uint32_t* p = static_cast<uint32_t*>(dst);
      for (size_t i = 0; i < count; i++) p[i] = pattern;
    } else {
      uint16_t* p = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < count; i++) p[i] = uint16_t(pattern);
    }
    return;
  }
#ifdef PT_HAVE_CUDA
  cuda::Fill(d.index, dst, count, pattern, elementSize, what);
#endif
}

void DeviceSynchronize(Device d, const std::string& what) {
#ifdef PT_HAVE_CUDA
  if (d.IsCuda()) cuda::Synchronize(d.index, what);
#endif
}

}  // namespace pt
