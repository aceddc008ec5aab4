// op.h: how an op crosses the boundary. Each op file provides a builder that reads and checks its JS
// arguments on the JS thread and returns a Kernel (a closure over the checked tensors). RegisterOp exposes
// the builder twice: `name(...)` runs the kernel now (for tests and tiny work), `nameAsync(...)` queues it
// on the native worker thread and returns a Promise. Queued kernels run one at a time in call order, and
// every tensor they use is pinned until they finish, so dispose() during an op is safe.
#pragma once
#include <napi.h>

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "js_error.h"
#include "tensor.h"

namespace pt {

// A typed-array argument: where its elements are and how many. For async runs the array is pinned (a JS
// reference keeps it alive until the kernel is done); its buffer must not be detached (transferred) or resized
// meanwhile. Ops that read offsets or indices out of one must copy them first, since JS may change them.
struct ArrayArg {
  void* data = nullptr;
  size_t length = 0;  // elements
  napi_typedarray_type type = napi_uint8_array;
  size_t elementSize() const;
  size_t byteLength() const { return length * elementSize(); }
  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }
};
const char* TypedArrayName(napi_typedarray_type t);  // "Uint32Array"

// What a kernel hands back to JS: nothing (undefined), one number, or several (a plain array).
struct OpResult {
  std::vector<double> values;
};
using Kernel = std::function<OpResult()>;

class OpArgs {
 public:
  OpArgs(const Napi::CallbackInfo& info, std::string op) : info_(info), op_(std::move(op)) {}
  const std::string& op() const { return op_; }
  size_t count() const { return info_.Length(); }
  // A live tensor argument; pinned for async runs.
  Tensor tensor(size_t i, const char* name);
  // null/undefined give nullopt.
  std::optional<Tensor> optTensor(size_t i, const char* name);
  double number(size_t i, const char* name);
  double number(size_t i, const char* name, double fallback);  // undefined -> fallback
  int64_t integer(size_t i, const char* name);
  int64_t integer(size_t i, const char* name, int64_t fallback);
  bool boolean(size_t i, const char* name, bool fallback);
  std::vector<int32_t> int32s(size_t i, const char* name);  // Int32Array or array of integers
  std::string string(size_t i, const char* name);
  // A typed array of one of the `allowed` element types (e.g. {napi_uint32_array, napi_float64_array}).
  ArrayArg typedArray(size_t i, const char* name, std::initializer_list<napi_typedarray_type> allowed);
  const std::vector<std::shared_ptr<Storage>>& pins() const { return pins_; }

 private:
  const Napi::CallbackInfo& info_;
  std::string op_;
  std::vector<std::shared_ptr<Storage>> pins_;
};

using OpBuilder = Kernel (*)(OpArgs& args);

void RegisterOp(Napi::Env env, Napi::Object exports, const char* name, OpBuilder builder);
Napi::Value ResultToJs(Napi::Env env, const OpResult& r);

// Checks shared by op builders; each names the op, the argument and both shapes.
void ExpectDType(const std::string& op, const char* name, const Tensor& t, DType want);
void ExpectFloat(const std::string& op, const char* name, const Tensor& t);  // f32 or bf16
void ExpectSameDType(const std::string& op, const char* nameA, const Tensor& a, const char* nameB, const Tensor& b);
void ExpectShape(const std::string& op, const char* name, const Tensor& t, const std::vector<int64_t>& shape);
void ExpectNumel(const std::string& op, const char* name, const Tensor& t, int64_t numel);
// Typed arrays that a kernel writes must not share bytes with any other argument of the op.
void ExpectNoOverlap(const std::string& op, const char* nameA, const ArrayArg& a, const char* nameB,
                     const ArrayArg& b);
void ExpectNoOverlap(const std::string& op, const char* nameA, const Tensor& a, const char* nameB, const Tensor& b);
// a is exactly b (same bytes, dtype and shape size: an in-place elementwise op) or does not overlap it.
void ExpectSameOrNoOverlap(const std::string& op, const char* nameA, const Tensor& a, const char* nameB,
                           const Tensor& b);
std::string ShapeStr(const std::vector<int64_t>& shape);

// Dispatch a templated kernel body on a float tensor's dtype: T is float or bf16.
template <typename F>
void DispatchFloat(DType dt, F&& f) {
  if (dt == DType::F32) f(float{});
  else f(bf16{});
}

// Native worker queue (worker.cc).
void StartWorker(Napi::Env env);
Napi::Value EnqueueKernel(Napi::Env env, Kernel kernel, std::vector<std::shared_ptr<Storage>> pins);

}  // namespace pt
