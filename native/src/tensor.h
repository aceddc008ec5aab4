// tensor.h: native-owned memory. A Storage is one allocation on one device (device.h: host memory, or a
// CUDA device's); a Tensor is a typed, shaped window into a Storage (the whole of it, or a named view into an
// arena). JS holds TensorHandle objects, never pointers.
//
// Lifetime: the owning handle's dispose() marks the storage disposed; the bytes are freed at once unless an
// async op still uses them (pinned), in which case the last op to finish frees them. Pins and frees happen on
// the JS thread only, so no atomics are needed.
#pragma once
#include <napi.h>

#include <memory>
#include <string>
#include <vector>

#include "common.h"
#include "device.h"

namespace pt {

struct Storage {
  void* data = nullptr;
  size_t bytes = 0;
  Device device;
  bool disposed = false;
  int pins = 0;
  // Zero-filled; `what` names the caller in errors.
  explicit Storage(size_t nbytes, Device d = Device{}, const std::string& what = "Tensor");
  ~Storage();
  void ReleaseIfUnused();
  void Free();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Tensor {
  std::shared_ptr<Storage> storage;
  size_t byteOffset = 0;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  int64_t numel = 0;

  void* raw() const { return static_cast<char*>(storage->data) + byteOffset; }
  template <typename T>
  T* ptr() const { return reinterpret_cast<T*>(raw()); }
  int64_t dim(int i) const { return shape[i < 0 ? shape.size() + i : i]; }
  int ndim() const { return int(shape.size()); }
  const Device& device() const { return storage->device; }
  size_t nbytes() const { return size_t(numel) * DTypeSize(dtype); }
  std::string Describe() const;  // e.g. "bf16[8,512,1536]"
};

// Size limits. Every dimension, and the product of a shape's dimensions with zeros counted as ones, is at most
// kMaxTensorElements, so any product of one tensor's dimensions (B * T, N * C, a row count) fits in int64_t and
// every byte count or offset inside a tensor fits in size_t with room to spare; products across tensors go
// through CheckedMul.
constexpr int64_t kMaxTensorElements = int64_t(1) << 40;
constexpr size_t kMaxTensorBytes = size_t(kMaxTensorElements) * 4;

// The element count of `shape`, or false when it breaks the limits above (negative dims, overflow).
bool TryShapeNumel(const std::vector<int64_t>& shape, int64_t* numel);
// The element count; an argument error naming `where` when the shape breaks the limits.
int64_t ShapeNumel(const std::vector<int64_t>& shape, const char* where = "shape");
// a * b for non-negative sizes; an argument error naming `what` when the product passes kMaxTensorElements.
int64_t CheckedMul(int64_t a, int64_t b, const std::string& what);

// Per-environment state (the main thread and each worker_thread that loads the addon get their own).
struct Worker;
struct OpEntry;
struct AddonState {
  AddonState();
  ~AddonState();
  Napi::FunctionReference tensorCtor;
  Worker* worker = nullptr;
  // The registered ops' data (name, builder), owned here so that each environment (a worker_thread that loads
  // the addon) frees its own when it ends.
  std::vector<std::unique_ptr<OpEntry>> ops;
};
AddonState& State(Napi::Env env);

class TensorHandle : public Napi::ObjectWrap<TensorHandle> {
 public:
  static Napi::Function Init(Napi::Env env);
  static bool IsTensor(Napi::Env env, Napi::Value v);
  explicit TensorHandle(const Napi::CallbackInfo& info);
  ~TensorHandle() override;

  // The tensor, checked to be alive; `what` names the argument in the error.
  const Tensor& Get(const std::string& what) const;
  bool disposed() const { return disposed_ || !tensor_.storage || tensor_.storage->disposed; }

 private:
  Napi::Value Dispose(const Napi::CallbackInfo& info);
  Napi::Value View(const Napi::CallbackInfo& info);
  Napi::Value CopyFrom(const Napi::CallbackInfo& info);
  Napi::Value CopyTo(const Napi::CallbackInfo& info);
  Napi::Value Fill(const Napi::CallbackInfo& info);
  Napi::Value GetDType(const Napi::CallbackInfo& info);
  Napi::Value GetShape(const Napi::CallbackInfo& info);
  Napi::Value GetNumel(const Napi::CallbackInfo& info);
  Napi::Value GetByteLength(const Napi::CallbackInfo& info);
  Napi::Value GetByteOffset(const Napi::CallbackInfo& info);
  Napi::Value GetDisposed(const Napi::CallbackInfo& info);
  Napi::Value GetIsView(const Napi::CallbackInfo& info);
  Napi::Value GetDevice(const Napi::CallbackInfo& info);
  void DisposeImpl(Napi::Env env);

  Tensor tensor_;
  bool owner_ = false;
  bool disposed_ = false;
  Device disposedDevice_;  // the device, remembered when dispose() drops the storage
  int64_t reported_ = 0;  // bytes reported to V8 as external memory
};

}  // namespace pt
