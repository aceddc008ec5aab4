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
// Make the calling thread's OpenMP team size match Threads(), and put every thread of its OpenMP pool in the
// kernel floating-point mode (below). Called on the thread that is about to run a kernel.
void ApplyThreads();
// True inside an OpenMP parallel region. SerialInside() makes the calling thread's own OpenMP regions (and
// oneDNN's) one thread wide for the rest of its current task: for per-thread library calls from a kernel's
// parallel region.
bool InParallel();
int ThreadIndex();  // the calling thread's number in its OpenMP team (0 outside one)
void SerialInside();

// Kernel floating-point mode: flush-to-zero and denormals-are-zero (x86 MXCSR FTZ and DAZ). Denormal
// operands cost ~100x a normal one in x86 float units, and a diverging run fills its activations with them;
// like the GPU kernels of every trainer, ours treat them as zero. Set on the native worker thread for its
// lifetime, on the JS thread only for the duration of a synchronous op (KernelFpScope restores the caller's
// mode, so JavaScript arithmetic keeps IEEE denormals), and on every OpenMP pool thread (which oneDNN uses
// too) by ApplyThreads.
bool FlushesDenormals();    // false where the CPU has no such mode (non-x86): denormals are then computed
void SetKernelFpMode();     // the calling thread, until changed
class KernelFpScope {       // the calling thread, until the scope ends
 public:
  KernelFpScope();
  ~KernelFpScope();
  KernelFpScope(const KernelFpScope&) = delete;
  KernelFpScope& operator=(const KernelFpScope&) = delete;

 private:
  unsigned saved_ = 0;
};

}  // namespace pt
