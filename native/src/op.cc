// op.cc: argument readers, the shared shape/dtype checks, and sync/async registration of ops.
#include "op.h"

#include <thread>

#include "cpu.h"
#ifdef PT_HAVE_CUDA
#include "cuda/runtime.h"
#endif

namespace pt {

Napi::Value ResultToJs(Napi::Env env, const OpResult& r) {
  if (r.values.empty()) return env.Undefined();
  if (r.values.size() == 1) return Napi::Number::New(env, r.values[0]);
  Napi::Array a = Napi::Array::New(env, r.values.size());
  for (size_t i = 0; i < r.values.size(); i++) a.Set(uint32_t(i), r.values[i]);
  return a;
}

std::string ShapeStr(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

Tensor OpArgs::tensor(size_t i, const char* name) {
  Napi::Env env = info_.Env();
  PT_CHECK_ARG(i < info_.Length() && TensorHandle::IsTensor(env, info_[i]), op_, ": argument '", name,
               "' (#", i, ") must be a Tensor");
  TensorHandle* h = TensorHandle::Unwrap(info_[i].As<Napi::Object>());
  Tensor t = h->Get(op_ + ": argument '" + name + "'");
  if (!mixed_) {
    if (firstTensor_.empty()) {
      firstTensor_ = name;
      device_ = t.device();
    } else {
      PT_CHECK_ARG(t.device() == device_, op_, ": '", name, "' is on ", t.device().Name(), " but '", firstTensor_,
                   "' is on ", device_.Name(), ": an op's tensors must be on one device (copy with tensor.to())");
    }
  }
  pins_.push_back(t.storage);
  return t;
}

Kernel ForDevice(OpArgs& args, Kernel cpu, CudaLaunch launch) {
  args.markRouted();
  const Device d = args.device();
  if (d.IsCpu()) return cpu;
  PT_CHECK_ARG(bool(launch), args.op(), ": has no CUDA kernel; its tensors are on ", d.Name());
#ifdef PT_HAVE_CUDA
  const std::string op = args.op();
  return [d, op, launch]() {
    cuda::SetDevice(d.index, op);
    return launch(cuda::Stream(d.index));
  };
#else
  return cpu;  // unreachable: without CUDA no tensor is on a GPU
#endif
}

std::optional<Tensor> OpArgs::optTensor(size_t i, const char* name) {
  if (i >= info_.Length() || info_[i].IsNull() || info_[i].IsUndefined()) return std::nullopt;
  return tensor(i, name);
}

double OpArgs::number(size_t i, const char* name) {
  PT_CHECK_ARG(i < info_.Length() && info_[i].IsNumber(), op_, ": argument '", name, "' (#", i,
               ") must be a number");
  return info_[i].As<Napi::Number>().DoubleValue();
}

double OpArgs::number(size_t i, const char* name, double fallback) {
  if (i >= info_.Length() || info_[i].IsUndefined()) return fallback;
  return number(i, name);
}

int64_t OpArgs::integer(size_t i, const char* name) {
  double d = number(i, name);
  PT_CHECK_ARG(d == double(int64_t(d)), op_, ": argument '", name, "' must be an integer, got ", d);
  return int64_t(d);
}

int64_t OpArgs::integer(size_t i, const char* name, int64_t fallback) {
  if (i >= info_.Length() || info_[i].IsUndefined()) return fallback;
  return integer(i, name);
}

bool OpArgs::boolean(size_t i, const char* name, bool fallback) {
  if (i >= info_.Length() || info_[i].IsUndefined()) return fallback;
  PT_CHECK_ARG(info_[i].IsBoolean(), op_, ": argument '", name, "' must be a boolean");
  return info_[i].As<Napi::Boolean>().Value();
}

std::vector<int32_t> OpArgs::int32s(size_t i, const char* name) {
  PT_CHECK_ARG(i < info_.Length(), op_, ": argument '", name, "' is missing");
  Napi::Value v = info_[i];
  std::vector<int32_t> out;
  if (v.IsTypedArray() && v.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array) {
    Napi::Int32Array a = v.As<Napi::Int32Array>();
    out.assign(a.Data(), a.Data() + a.ElementLength());
    return out;
  }
  PT_CHECK_ARG(v.IsArray(), op_, ": argument '", name, "' must be an Int32Array or an array of integers");
  Napi::Array a = v.As<Napi::Array>();
  for (uint32_t k = 0; k < a.Length(); k++) {
    Napi::Value e = a.Get(k);
    PT_CHECK_ARG(e.IsNumber(), op_, ": argument '", name, "'[", k, "] is not a number");
    double d = e.As<Napi::Number>().DoubleValue();
    PT_CHECK_ARG(d == double(int32_t(d)), op_, ": argument '", name, "'[", k, "] = ", d, " is not an int32");
    out.push_back(int32_t(d));
  }
  return out;
}

size_t ArrayArg::elementSize() const {
  switch (type) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array: return 1;
    case napi_int16_array:
    case napi_uint16_array: return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array: return 4;
    case napi_float64_array:
    case napi_bigint64_array:
    case napi_biguint64_array: return 8;
#ifdef NODE_API_HAS_FLOAT16_ARRAY
    case napi_float16_array: return 2;
#endif
  }
  return 0;
}

const char* TypedArrayName(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array: return "Int8Array";
    case napi_uint8_array: return "Uint8Array";
    case napi_uint8_clamped_array: return "Uint8ClampedArray";
    case napi_int16_array: return "Int16Array";
    case napi_uint16_array: return "Uint16Array";
    case napi_int32_array: return "Int32Array";
    case napi_uint32_array: return "Uint32Array";
    case napi_float32_array: return "Float32Array";
    case napi_float64_array: return "Float64Array";
    case napi_bigint64_array: return "BigInt64Array";
    case napi_biguint64_array: return "BigUint64Array";
#ifdef NODE_API_HAS_FLOAT16_ARRAY
    case napi_float16_array: return "Float16Array";
#endif
  }
  return "TypedArray";
}

// What an argument is, for error messages: "Int32Array", "number", "null", ...
static std::string DescribeJs(const Napi::Value& v) {
  if (v.IsTypedArray()) return TypedArrayName(v.As<Napi::TypedArray>().TypedArrayType());
  if (v.IsNull()) return "null";
  if (v.IsUndefined()) return "undefined";
  if (v.IsArray()) return "Array";
  if (v.IsArrayBuffer()) return "ArrayBuffer";
  if (v.IsNumber()) return "number";
  if (v.IsString()) return "string";
  if (v.IsBoolean()) return "boolean";
  if (v.IsBigInt()) return "bigint";
  return "object";
}

namespace {

// Keeps a typed array alive while an async kernel reads or writes it. The worker hands pins back as Storage
// handles and drops them on the JS thread (worker.cc), so the JS reference rides on an aliasing
// shared_ptr<Storage>: `placeholder` is an empty Storage that is never disposed, and dropping the last handle
// deletes the reference.
struct TypedArrayPin {
  Storage placeholder{0};
  napi_env env = nullptr;
  napi_ref ref = nullptr;
  std::thread::id jsThread = std::this_thread::get_id();
  ~TypedArrayPin() {
    // References belong to the JS thread. A job dropped on the worker thread (only while the environment
    // shuts down, see worker.cc) leaves its reference to the environment's own teardown.
    if (ref && std::this_thread::get_id() == jsThread) napi_delete_reference(env, ref);
  }
};

}  // namespace

ArrayArg OpArgs::typedArray(size_t i, const char* name, std::initializer_list<napi_typedarray_type> allowed) {
  std::string want;
  for (napi_typedarray_type t : allowed) want += std::string(want.empty() ? "" : " or ") + TypedArrayName(t);
  PT_CHECK_ARG(i < info_.Length(), op_, ": argument '", name, "' (#", i, ") is missing (expected a ", want, ")");
  Napi::Value v = info_[i];
  bool ok = false;
  if (v.IsTypedArray()) {
    napi_typedarray_type t = v.As<Napi::TypedArray>().TypedArrayType();
    for (napi_typedarray_type a : allowed) ok = ok || a == t;
  }
  PT_CHECK_ARG(ok, op_, ": argument '", name, "' (#", i, ") must be a ", want, ", got ", DescribeJs(v));
  Napi::Env env = info_.Env();
  ArrayArg r;
  napi_value buffer;
  size_t byteOffset;
  PT_CHECK_ENGINE(napi_get_typedarray_info(env, v, &r.type, &r.length, &r.data, &buffer, &byteOffset) == napi_ok,
                  op_, ": could not read argument '", name, "'");
  auto pin = std::make_shared<TypedArrayPin>();
  pin->env = env;
  PT_CHECK_ENGINE(napi_create_reference(env, v, 1, &pin->ref) == napi_ok, op_, ": could not pin argument '", name,
                  "'");
  pins_.push_back(std::shared_ptr<Storage>(pin, &pin->placeholder));
  return r;
}

std::string OpArgs::string(size_t i, const char* name) {
  PT_CHECK_ARG(i < info_.Length() && info_[i].IsString(), op_, ": argument '", name, "' must be a string");
  return info_[i].As<Napi::String>();
}

void ExpectDType(const std::string& op, const char* name, const Tensor& t, DType want) {
  PT_CHECK_ARG(t.dtype == want, op, ": '", name, "' must be ", DTypeName(want), ", got ", t.Describe());
}

void ExpectFloat(const std::string& op, const char* name, const Tensor& t) {
  PT_CHECK_ARG(t.dtype == DType::F32 || t.dtype == DType::BF16, op, ": '", name, "' must be f32 or bf16, got ",
               t.Describe());
}

void ExpectSameDType(const std::string& op, const char* nameA, const Tensor& a, const char* nameB,
                     const Tensor& b) {
  PT_CHECK_ARG(a.dtype == b.dtype, op, ": '", nameA, "' ", a.Describe(), " and '", nameB, "' ", b.Describe(),
               " must have the same dtype");
}

void ExpectShape(const std::string& op, const char* name, const Tensor& t, const std::vector<int64_t>& shape) {
  int64_t n = 0;
  PT_CHECK_ARG(TryShapeNumel(shape, &n), op, ": '", name, "' would need shape ", ShapeStr(shape),
               ", which has more elements than this build supports (", kMaxTensorElements, ")");
  PT_CHECK_ARG(n == t.numel, op, ": '", name, "' must have shape ", ShapeStr(shape), ", got ", t.Describe());
}

void ExpectNumel(const std::string& op, const char* name, const Tensor& t, int64_t numel) {
  PT_CHECK_ARG(t.numel == numel, op, ": '", name, "' must have ", numel, " elements, got ", t.Describe());
}

void ExpectNoOverlap(const std::string& op, const char* nameA, const ArrayArg& a, const char* nameB,
                     const ArrayArg& b) {
  if (a.length == 0 || b.length == 0) return;
  uintptr_t a0 = uintptr_t(a.data), a1 = a0 + a.byteLength(), b0 = uintptr_t(b.data), b1 = b0 + b.byteLength();
  PT_CHECK_ARG(a1 <= b0 || b1 <= a0, op, ": '", nameA, "' and '", nameB, "' share memory (views of one buffer)");
}

void ExpectNoOverlap(const std::string& op, const char* nameA, const Tensor& a, const char* nameB,
                     const Tensor& b) {
  if (a.storage != b.storage) return;
  size_t a0 = a.byteOffset, a1 = a0 + a.nbytes(), b0 = b.byteOffset, b1 = b0 + b.nbytes();
  PT_CHECK_ARG(a1 <= b0 || b1 <= a0, op, ": '", nameA, "' and '", nameB, "' overlap in memory");
}

void ExpectSameOrNoOverlap(const std::string& op, const char* nameA, const Tensor& a, const char* nameB,
                           const Tensor& b) {
  if (a.storage != b.storage) return;
  if (a.byteOffset == b.byteOffset && a.dtype == b.dtype && a.numel == b.numel) return;
  size_t a0 = a.byteOffset, a1 = a0 + a.nbytes(), b0 = b.byteOffset, b1 = b0 + b.nbytes();
  PT_CHECK_ARG(a1 <= b0 || b1 <= a0, op, ": '", nameA, "' ", a.Describe(), " partly overlaps '", nameB, "' ",
               b.Describe(), " (it may be the very same tensor, or separate memory)");
}

struct OpEntry {
  std::string name;
  OpBuilder builder;
};

AddonState::AddonState() = default;
AddonState::~AddonState() = default;

void ExpectCublas(const OpArgs& args) {
  if (args.device().IsCpu()) return;
#ifdef PT_HAVE_CUDA
  PT_CHECK_ARG(cuda::HaveCublas(), args.op(), ": its CUDA kernel needs cuBLASLt, which this build lacks (",
               cuda::CublasReason(), ")");
#endif
}

// The builder's kernel, once it is known to run where the op's tensors are.
static Kernel Routed(const OpArgs& args, Kernel k) {
  PT_CHECK_ARG(args.device().IsCpu() || args.routed(), args.op(), ": has no CUDA kernel; its tensors are on ",
               args.device().Name());
  return k;
}

static Napi::Value RunSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* e = static_cast<OpEntry*>(info.Data());
  try {
    OpArgs args(info, e->name);
    Kernel k = Routed(args, e->builder(args));
    OpResult r;
    {
      KernelFpScope fp;  // the JS thread's own float mode comes back before any JS runs
      ApplyThreads();
      r = k();
    }
    return ResultToJs(env, r);
  } catch (const PtError& err) {
    ThrowJs(env, err);
  } catch (const std::exception& err) {
    ThrowJs(env, PtError(ErrorKind::Engine, e->name + ": " + err.what()));
  }
  return env.Undefined();
}

static Napi::Value RunAsync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* e = static_cast<OpEntry*>(info.Data());
  try {
    OpArgs args(info, e->name);
    Kernel k = Routed(args, e->builder(args));
    return EnqueueKernel(env, std::move(k), args.pins());
  } catch (const PtError& err) {
    // Argument errors reject the promise rather than throw, so callers handle one failure path.
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Reject(MakeJsError(env, err).Value());
    return d.Promise();
  }
}

void RegisterOp(Napi::Env env, Napi::Object exports, const char* name, OpBuilder builder) {
  // Lives as long as the environment, whose teardown deletes its AddonState.
  OpEntry* entry = State(env).ops.emplace_back(new OpEntry{name, builder}).get();
  exports.Set(name, Napi::Function::New(env, RunSync, name, entry));
  std::string asyncName = std::string(name) + "Async";
  exports.Set(asyncName, Napi::Function::New(env, RunAsync, asyncName, entry));
}

}  // namespace pt
