// op.h: how an op crosses the boundary. Each op file provides a builder that reads and checks its JS
// arguments on the JS thread and returns a Kernel (a closure over the checked tensors). RegisterOp exposes
// the builder twice: `name(...)` runs the kernel now (for tests and tiny work), `nameAsync(...)` queues it
// on the native worker thread and returns a Promise. Queued kernels run one at a time in call order, and
// every tensor they use is pinned until they finish, so dispose() during an op is safe.
// Devices: every tensor of an op must be on one device (OpArgs checks as it reads them). The builder fills
// the op's launcher arguments (launch.h) and returns ForDevice(args, cpu kernel, PT_CUDA_LAUNCH(...)): on CUDA
// the kernel queues the work on the device's stream, so an Async op's promise settles once the work is queued
// and only ops that return numbers wait for the GPU.
#pragma once
#include <napi.h>

#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <vector>

#include "common.h"
#include "js_error.h"
#include "launch.h"
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
  bool isTensor(size_t i) const { return i < info_.Length() && TensorHandle::IsTensor(info_.Env(), info_[i]); }
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
  // The device of every tensor read so far (the CPU for an op without tensors).
  const Device& device() const { return device_; }
  // For ops that move data between devices (copy): their tensors may be on different devices.
  void allowMixedDevices() { mixed_ = true; }
  // Set by ForDevice; an op whose tensors are on a GPU and whose builder did not route through it is refused.
  void markRouted() { routed_ = true; }
  bool routed() const { return routed_; }

 private:
  const Napi::CallbackInfo& info_;
  std::string op_;
  std::vector<std::shared_ptr<Storage>> pins_;
  Device device_;
  std::string firstTensor_;  // the argument whose device the others must match
  bool mixed_ = false, routed_ = false;
};

// A CUDA launch: queues the op on `stream` (its device is current) and returns what the op returns.
using CudaLaunch = std::function<OpResult(cudaStream_t stream)>;
// The kernel for the op's device: `cpu` when its tensors are on the host, `cuda` on a GPU (an argument error
// naming the op when it has no CUDA launch).
Kernel ForDevice(OpArgs& args, Kernel cpu, CudaLaunch launch);
// PT_CUDA_LAUNCH(statements): a CudaLaunch capturing by value, with `stream` in scope; empty in builds without
// CUDA, where no tensor can be on a GPU.
#ifdef PT_HAVE_CUDA
#define PT_CUDA_LAUNCH(...) ::pt::CudaLaunch([=](cudaStream_t stream) -> ::pt::OpResult { __VA_ARGS__ })
#define PT_CUDA_FN(name) (&::pt::cuda::name)
#else
#define PT_CUDA_LAUNCH(...) ::pt::CudaLaunch()
#define PT_CUDA_FN(name) nullptr
#endif

// Ops whose CUDA launchers are cuBLASLt products (linear, gemm, the LM head) refuse GPU tensors in builds
// without cuBLASLt, with the build's reason. A no-op for CPU tensors.
void ExpectCublas(const OpArgs& args);

// ForDevice for an op that returns nothing and has one launcher per device over the same argument struct:
// LaunchOn(args, a, &cpu::Op, PT_CUDA_FN(Op)).
template <typename A>
struct CudaLauncher {
  using type = void (*)(const A&, cudaStream_t);  // a non-deduced context, so nullptr is accepted
};
template <typename A>
Kernel LaunchOn(OpArgs& args, const A& a, void (*cpuFn)(const A&), typename CudaLauncher<A>::type cudaFn) {
  return ForDevice(
      args,
      [a, cpuFn]() {
        cpuFn(a);
        return OpResult{};
      },
      cudaFn ? CudaLaunch([a, cudaFn](cudaStream_t stream) {
        cudaFn(a, stream);
        return OpResult{};
      })
             : CudaLaunch());
}

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
