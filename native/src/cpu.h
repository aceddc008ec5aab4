// cpu.h: run-time CPU feature detection, the ISA level kernels dispatch on, and the thread count.
// Kernels with hand-written SIMD pick a path with Isa(); a lower level can be forced (tests exercise every
// path on one machine, users can work around a bad path) but never a higher one than the CPU has.
#pragma once
#include <string>

namespace pt {

struct CpuFeatures {
  bool sse42 = false, avx = false, avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false;
  bool avx512bf16 = false, amxBf16 = false;
  std::string vendor, brand;
};

// Dispatch levels, lowest first.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2, Avx512Bf16 = 3 };

const CpuFeatures& Cpu();
Isa DetectedIsa();            // what the CPU (and OS) supports
Isa ActiveIsa();              // min(detected, limit)
void SetIsaLimit(Isa limit);  // tests and users may lower the level
const char* IsaName(Isa isa);
bool ParseIsa(const std::string& s, Isa* out);

int Threads();            // threads each parallel op uses
void SetThreads(int n);   // n <= 0 restores the default (OMP_NUM_THREADS or all cores)
void ApplyThreads();      // make the calling thread's OpenMP team size match Threads()

}  // namespace pt
