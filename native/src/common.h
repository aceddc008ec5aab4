// common.h: error type, argument checks, dtypes and bf16 conversion shared by every native file.
// Nothing in the addon exits or aborts: every failure is a PtError, turned into a JS error at the boundary.
#pragma once
#include <cstdint>
#include <cstring>
#include <sstream>
#include <stdexcept>
#include <string>

namespace pt {

// Kinds map onto the three JS error kinds: API misuse (TypeError), lifetime misuse, engine failure.
enum class ErrorKind { Argument, Disposed, Engine };

struct PtError : std::runtime_error {
  ErrorKind kind;
  PtError(ErrorKind k, const std::string& msg) : std::runtime_error(msg), kind(k) {}
};

template <typename... Args>
std::string Concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

[[noreturn]] inline void FailAt(ErrorKind kind, const char* file, int line, const std::string& msg) {
  // file:line is kept (basename only) so a report points at the failing check.
  const char* base = std::strrchr(file, '/');
  throw PtError(kind, Concat(msg, " [", base ? base + 1 : file, ":", line, "]"));
}

}  // namespace pt

// Argument/shape check: throws a TypeError-kind error naming the op and what was wrong.
#define PT_CHECK_ARG(cond, ...)                                                          \
  do {                                                                                 \
    if (!(cond)) ::pt::FailAt(::pt::ErrorKind::Argument, __FILE__, __LINE__, ::pt::Concat(__VA_ARGS__)); \
  } while (0)

// Engine check: a library call (oneDNN, CUDA, allocation) that failed.
#define PT_CHECK_ENGINE(cond, ...)                                                       \
  do {                                                                                 \
    if (!(cond)) ::pt::FailAt(::pt::ErrorKind::Engine, __FILE__, __LINE__, ::pt::Concat(__VA_ARGS__)); \
  } while (0)

namespace pt {

enum class DType : int { F32 = 0, BF16 = 1, I32 = 2 };

inline const char* DTypeName(DType d) {
  switch (d) {
    case DType::F32: return "f32";
    case DType::BF16: return "bf16";
    case DType::I32: return "i32";
  }
  return "?";
}

inline size_t DTypeSize(DType d) { return d == DType::BF16 ? 2 : 4; }

// bf16 is stored as the upper 16 bits of an IEEE float.
using bf16 = uint16_t;

// __builtin_bit_cast rather than memcpy: GCC's vectoriser does not see through the memcpy temporaries.
inline float Bf16ToF32(bf16 h) { return __builtin_bit_cast(float, uint32_t(h) << 16); }

// Round to nearest even; NaN stays NaN (quiet bit set), Inf stays Inf. Branch-free so that element loops
// converting to bf16 vectorise.
inline bf16 F32ToBf16(float f) {
  uint32_t u = __builtin_bit_cast(uint32_t, f);
  uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  uint32_t quietNan = (u >> 16) | 0x40u;
  return bf16((u & 0x7fffffffu) > 0x7f800000u ? quietNan : rounded);
}

// Load/store helpers so one templated kernel serves f32 and bf16 tensors.
inline float Ld(const float* p) { return *p; }
inline float Ld(const bf16* p) { return Bf16ToF32(*p); }
inline void St(float* p, float v) { *p = v; }
inline void St(bf16* p, float v) { *p = F32ToBf16(v); }

}  // namespace pt
