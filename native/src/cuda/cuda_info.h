// cuda_info.h: what the CUDA side of the build can see. Only compiled when CMake found a CUDA compiler; the
// CUDA kernels (the twins of the CPU ops) come in a later change and will register next to these.
#pragma once
#include <string>
#include <vector>

namespace pt {
struct CudaDevice {
  std::string name;
  int major = 0, minor = 0;
  size_t totalMemory = 0;
};
struct CudaStatus {
  int runtimeVersion = 0;  // 13000 for CUDA 13.0
  int driverVersion = 0;   // 0 when no driver is installed
  std::string error;       // why no device is usable, if none is
  std::vector<CudaDevice> devices;
};
CudaStatus QueryCuda();
}  // namespace pt
