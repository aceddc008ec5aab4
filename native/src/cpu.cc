// cpu.cc: CPUID/XGETBV probing (the OS must enable the AVX/AVX-512 register state, not just the CPU) and the
// thread setting shared by our kernels and oneDNN.
#include "cpu.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#include <xmmintrin.h>
#define PT_X86 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace pt {

#ifdef PT_X86
static uint64_t Xgetbv0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}
#endif

static CpuFeatures Probe() {
  CpuFeatures f;
#ifdef PT_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  unsigned maxLeaf = a;
  char vendor[13];
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  vendor[12] = 0;
  f.vendor = vendor;
  __get_cpuid(1, &a, &b, &c, &d);
  f.sse42 = c & (1u << 20);
  bool osxsave = c & (1u << 27);
  bool avxCpu = c & (1u << 28);
  f.fma = c & (1u << 12);
  f.f16c = c & (1u << 29);
  uint64_t xcr0 = osxsave ? Xgetbv0() : 0;
  bool osAvx = (xcr0 & 0x6) == 0x6;
  bool osAvx512 = (xcr0 & 0xe6) == 0xe6;
  bool osAmx = (xcr0 & (3ull << 17)) == (3ull << 17);
  f.avx = avxCpu && osAvx;
  f.fma = f.fma && f.avx;
  f.f16c = f.f16c && f.avx;
  if (maxLeaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = f.avx && (b & (1u << 5));
    f.avx512f = osAvx512 && (b & (1u << 16));
    f.avx512dq = f.avx512f && (b & (1u << 17));
    f.avx512bw = f.avx512f && (b & (1u << 30));
    f.avx512vl = f.avx512f && (b & (1u << 31));
    f.amxBf16 = osAmx && (d & (1u << 22));
    unsigned maxSub = a;
    if (maxSub >= 1) {
      __cpuid_count(7, 1, a, b, c, d);
      f.avx512bf16 = f.avx512f && (a & (1u << 5));
    }
  }
  char brand[49] = {0};
  if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
    for (unsigned i = 0; i < 3; i++) {
      __get_cpuid(0x80000002 + i, &a, &b, &c, &d);
      std::memcpy(brand + 16 * i, &a, 4);
      std::memcpy(brand + 16 * i + 4, &b, 4);
      std::memcpy(brand + 16 * i + 8, &c, 4);
      std::memcpy(brand + 16 * i + 12, &d, 4);
    }
  }
  f.brand = brand;
  size_t s = f.brand.find_first_not_of(' ');
  f.brand = s == std::string::npos ? "" : f.brand.substr(s);
  while (!f.brand.empty() && f.brand.back() == ' ') f.brand.pop_back();
#endif
  return f;
}

const CpuFeatures& Cpu() {
  static const CpuFeatures f = Probe();
  return f;
}

Isa DetectedIsa() {
  const CpuFeatures& f = Cpu();
  bool avx512 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.fma;
  if (avx512 && f.avx512bf16) return Isa::Avx512Bf16;
  if (avx512) return Isa::Avx512;
  if (f.avx2 && f.fma && f.f16c) return Isa::Avx2;
  return Isa::Scalar;
}

static std::atomic<int> gIsaLimit{-1};

static int InitialLimit() {
  const char* env = std::getenv("PAJAMA_CPU_ISA");
  Isa isa;
  if (env && ParseIsa(env, &isa)) return int(isa);
  return int(Isa::Avx512Bf16);
}

Isa ActiveIsa() {
  int lim = gIsaLimit.load();
  if (lim < 0) {
    lim = InitialLimit();
    gIsaLimit.store(lim);
  }
  int det = int(DetectedIsa());
  return Isa(det < lim ? det : lim);
}

void SetIsaLimit(Isa limit) { gIsaLimit.store(int(limit)); }

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Avx512Bf16: return "avx512_bf16";
  }
  return "?";
}

bool ParseIsa(const std::string& s, Isa* out) {
  for (Isa i : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Avx512Bf16}) {
    if (s == IsaName(i)) {
      *out = i;
      return true;
    }
  }
  return false;
}

static int DefaultThreads() {
#ifdef _OPENMP
  static const int n = omp_get_max_threads();  // honours OMP_NUM_THREADS
  return n;
#else
  return 1;
#endif
}

static std::atomic<int> gThreads{0};

int Threads() {
  int n = gThreads.load();
  return n > 0 ? n : DefaultThreads();
}

void SetThreads(int n) { gThreads.store(n > 0 ? n : 0); }

#ifdef PT_X86
static constexpr unsigned kFtzDaz = 0x8040;  // MXCSR bit 15 (flush to zero) | bit 6 (denormals are zero)
#endif

bool FlushesDenormals() {
#ifdef PT_X86
  return true;
#else
  return false;
#endif
}

void SetKernelFpMode() {
#ifdef PT_X86
  _mm_setcsr(_mm_getcsr() | kFtzDaz);
#endif
}

KernelFpScope::KernelFpScope() {
#ifdef PT_X86
  saved_ = _mm_getcsr();
  _mm_setcsr(saved_ | kFtzDaz);
#endif
}

KernelFpScope::~KernelFpScope() {
#ifdef PT_X86
  _mm_setcsr(saved_);
#endif
}

void ApplyThreads() {
  SetKernelFpMode();
#ifdef _OPENMP
  const int n = Threads();
  omp_set_num_threads(n);
  // Pool threads are created by the thread that opens a parallel region and copy its MXCSR, which is already
  // in kernel mode then; setting it here once per pool size as well keeps that true for threads that existed
  // before (a pool the calling thread opened outside our kernels). libgomp keeps a pool per calling thread,
  // so the flag is per thread too.
  thread_local int fpModeThreads = 0;
  if (fpModeThreads != n) {
#pragma omp parallel num_threads(n)
    SetKernelFpMode();
    fpModeThreads = n;
  }
#endif
}

bool InParallel() {
#ifdef _OPENMP
  return omp_in_parallel();
#else
  return false;
#endif
}

int ThreadIndex() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

void SerialInside() {
#ifdef _OPENMP
  omp_set_num_threads(1);
#endif
}

}  // namespace pt
