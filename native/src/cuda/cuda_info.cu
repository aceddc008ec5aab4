// cuda_info.cu: asks the CUDA runtime which devices exist. A machine without a GPU or driver is a normal
// answer (an empty list and the runtime's reason), never a failure.
#include <cuda_runtime.h>

#include "cuda_info.h"

namespace pt {

CudaStatus QueryCuda() {
  CudaStatus s;
  cudaRuntimeGetVersion(&s.runtimeVersion);
  cudaDriverGetVersion(&s.driverVersion);
  int n = 0;
  cudaError_t err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess) {
    s.error = cudaGetErrorString(err);
    cudaGetLastError();  // clear the sticky error so later calls start clean
    return s;
  }
  for (int i = 0; i < n; i++) {
    cudaDeviceProp p;
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    s.devices.push_back(CudaDevice{p.name, p.major, p.minor, p.totalGlobalMem});
  }
  return s;
}

}  // namespace pt
