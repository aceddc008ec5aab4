// scratch.h: working memory that kernels keep from call to call. A ScratchBuffer is owned by one thread
// (declare it thread_local) and grows to the largest reservation asked of it: a fresh multi-megabyte
// allocation per call costs more in page faults than the kernels that use it at training sizes. A Carver cuts
// 64-byte aligned typed regions out of one reservation, and sizes it when run unbound first.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>

#include "common.h"

namespace pt {

class ScratchBuffer {
 public:
  // Room for `bytes`, 64-byte aligned; pointers from earlier calls are invalidated. `who` names the kernel in
  // the error raised when the memory cannot be had.
  char* Reserve(size_t bytes, const char* who) {
    if (bytes > size_) {
      std::unique_ptr<char[]> fresh(new (std::nothrow) char[bytes + 64]);
      PT_CHECK_ENGINE(fresh != nullptr, who, ": cannot allocate ", bytes, " bytes of scratch memory");
      buf_ = std::move(fresh);
      size_ = bytes;
    }
    return buf_.get() + (64 - reinterpret_cast<uintptr_t>(buf_.get()) % 64) % 64;
  }

 private:
  std::unique_ptr<char[]> buf_;
  size_t size_ = 0;
};

class Carver {
 public:
  // The next region of n elements (nullptr while unbound: a sizing pass).
  template <class X>
  X* Take(size_t n) {
    X* p = reinterpret_cast<X*>(base_ ? base_ + used_ : nullptr);
    used_ += (n * sizeof(X) + 63) / 64 * 64;
    return p;
  }
  size_t used() const { return used_; }
  void Bind(char* base) { base_ = base, used_ = 0; }

 private:
  char* base_ = nullptr;
  size_t used_ = 0;
};

}  // namespace pt
