// tensor.cc: Storage, the JS-facing TensorHandle class, copies in and out of TypedArrays (through a host buffer
// for a CUDA tensor).
#include "tensor.h"

#include "js_error.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

namespace pt {

Storage::Storage(size_t nbytes, Device d, const std::string& what) : bytes(nbytes), device(d) {
  PT_CHECK_ARG(nbytes <= kMaxTensorBytes, what, ": ", nbytes, " bytes is more than this build supports (",
               kMaxTensorBytes, ")");
  data = DeviceAllocate(device, nbytes, what);
}

void Storage::Free() {
  if (!data) return;
  DeviceFree(device, data, bytes);
  data = nullptr;
}

Storage::~Storage() { Free(); }

void Storage::ReleaseIfUnused() {
  if (disposed && pins == 0) Free();
}

static std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

bool TryShapeNumel(const std::vector<int64_t>& shape, int64_t* numel) {
  int64_t nonzero = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0 || d > kMaxTensorElements) return false;
    if (d == 0) {
      empty = true;
      continue;
    }
    if (__builtin_mul_overflow(nonzero, d, &nonzero) || nonzero > kMaxTensorElements) return false;
  }
  *numel = empty ? 0 : nonzero;
  return true;
}

int64_t ShapeNumel(const std::vector<int64_t>& shape, const char* where) {
  int64_t n = 0;
  PT_CHECK_ARG(TryShapeNumel(shape, &n), where, ": shape ", ShapeText(shape),
               " has more elements than this build supports (", kMaxTensorElements,
               "; every dimension and their product must be at most that)");
  return n;
}

int64_t CheckedMul(int64_t a, int64_t b, const std::string& what) {
  int64_t r = 0;
  PT_CHECK_ARG(a >= 0 && b >= 0 && !__builtin_mul_overflow(a, b, &r) && r <= kMaxTensorElements, what, ": ", a,
               " * ", b, " is more than this build supports (", kMaxTensorElements, ")");
  return r;
}

std::string Tensor::Describe() const {
  std::string s = DTypeName(dtype);
  s += "[";
  for (size_t i = 0; i < shape.size(); i++) s += (i ? "," : "") + std::to_string(shape[i]);
  return s + "]";
}

AddonState& State(Napi::Env env) {
  AddonState* s = env.GetInstanceData<AddonState>();
  if (!s) {
    s = new AddonState();
    env.SetInstanceData<AddonState>(s);
  }
  return *s;
}

static DType ParseDType(const Napi::Value& v) {
  PT_CHECK_ARG(v.IsString(), "Tensor: dtype must be 'f32', 'bf16' or 'i32'");
  std::string s = v.As<Napi::String>();
  if (s == "f32") return DType::F32;
  if (s == "bf16") return DType::BF16;
  if (s == "i32") return DType::I32;
  PT_CHECK_ARG(false, "Tensor: unknown dtype '", s, "' (expected 'f32', 'bf16' or 'i32')");
}

static std::vector<int64_t> ParseShape(const Napi::Value& v, const char* where) {
  PT_CHECK_ARG(v.IsArray(), where, ": shape must be an array of non-negative integers");
  Napi::Array a = v.As<Napi::Array>();
  std::vector<int64_t> shape;
  for (uint32_t i = 0; i < a.Length(); i++) {
    Napi::Value e = a.Get(i);
    PT_CHECK_ARG(e.IsNumber(), where, ": shape[", i, "] is not a number");
    double d = e.As<Napi::Number>().DoubleValue();
    PT_CHECK_ARG(d >= 0 && std::isfinite(d) && d == std::floor(d), where, ": shape[", i, "] = ", d,
                 " is not a non-negative integer");
    // Exact digits for the integer (2^53 + 2, not 9.0072e+15).
    PT_CHECK_ARG(d <= double(kMaxTensorElements), where, ": shape[", i, "] = ",
                 d < 1.8e19 ? std::to_string(uint64_t(d)) : std::to_string(d), " is larger than this build supports (",
                 kMaxTensorElements, ")");
    shape.push_back(int64_t(d));
  }
  return shape;
}

Napi::Function TensorHandle::Init(Napi::Env env) {
  Napi::Function ctor = DefineClass(
      env, "NativeTensor",
      {InstanceMethod("dispose", &TensorHandle::Dispose), InstanceMethod("view", &TensorHandle::View),
       InstanceMethod("copyFrom", &TensorHandle::CopyFrom), InstanceMethod("copyTo", &TensorHandle::CopyTo),
       InstanceMethod("fill", &TensorHandle::Fill), InstanceAccessor("dtype", &TensorHandle::GetDType, nullptr),
       InstanceAccessor("shape", &TensorHandle::GetShape, nullptr),
       InstanceAccessor("numel", &TensorHandle::GetNumel, nullptr),
       InstanceAccessor("byteLength", &TensorHandle::GetByteLength, nullptr),
       InstanceAccessor("byteOffset", &TensorHandle::GetByteOffset, nullptr),
       InstanceAccessor("disposed", &TensorHandle::GetDisposed, nullptr),
       InstanceAccessor("isView", &TensorHandle::GetIsView, nullptr),
       InstanceAccessor("device", &TensorHandle::GetDevice, nullptr)});
  State(env).tensorCtor = Napi::Persistent(ctor);
  return ctor;
}

bool TensorHandle::IsTensor(Napi::Env env, Napi::Value v) {
  AddonState& s = State(env);
  return v.IsObject() && !s.tensorCtor.IsEmpty() && v.As<Napi::Object>().InstanceOf(s.tensorCtor.Value());
}

// new NativeTensor(dtype, shape) allocates zeroed memory. new NativeTensor(parent, elementOffset, shape) is
// the internal form used by view().
TensorHandle::TensorHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<TensorHandle>(info) {
  Napi::Env env = info.Env();
  try {
    if (info.Length() == 3 && IsTensor(env, info[0])) {
      TensorHandle* parent = Unwrap(info[0].As<Napi::Object>());
      const Tensor& p = parent->Get("view parent");
      PT_CHECK_ARG(info[1].IsNumber(), "Tensor.view: elementOffset must be a number");
      double off = info[1].As<Napi::Number>().DoubleValue();
      std::vector<int64_t> shape = ParseShape(info[2], "Tensor.view");
      int64_t n = ShapeNumel(shape, "Tensor.view");
      PT_CHECK_ARG(off >= 0 && off < 9.0e15 && off == double(int64_t(off)), "Tensor.view: offset ", off,
                   " is not a non-negative integer");
      PT_CHECK_ARG(int64_t(off) + n <= p.numel, "Tensor.view: elements [", int64_t(off), ", ", int64_t(off) + n,
                   ") exceed parent ", p.Describe(), " of ", p.numel, " elements");
      tensor_ = p;
      tensor_.byteOffset = p.byteOffset + size_t(off) * DTypeSize(p.dtype);
      tensor_.shape = shape;
      tensor_.numel = n;
      owner_ = false;
      return;
    }
    PT_CHECK_ARG(info.Length() == 2 || info.Length() == 3, "Tensor: expected (dtype, shape[, device])");
    DType dt = ParseDType(info[0]);
    std::vector<int64_t> shape = ParseShape(info[1], "Tensor");
    int64_t n = ShapeNumel(shape, "Tensor");
    Device device;
    if (info.Length() == 3 && !info[2].IsUndefined()) {
      PT_CHECK_ARG(info[2].IsString(), "Tensor: device must be a string ('cpu', 'cuda' or 'cuda:N')");
      device = ParseDevice(info[2].As<Napi::String>(), "Tensor");
    }
    tensor_.dtype = dt;
    tensor_.shape = shape;
    tensor_.numel = n;
    tensor_.storage = std::make_shared<Storage>(size_t(n) * DTypeSize(dt), device);
    owner_ = true;
    reported_ = int64_t(tensor_.nbytes());
    Napi::MemoryManagement::AdjustExternalMemory(env, reported_);
  } catch (const PtError& e) {
    ThrowJs(env, e);
  }
}

TensorHandle::~TensorHandle() {
  // GC finalizer path: free what we own (deferred if an async op still pins it).
  if (owner_ && tensor_.storage && !tensor_.storage->disposed) {
    tensor_.storage->disposed = true;
    tensor_.storage->ReleaseIfUnused();
  }
  if (reported_) {
    Napi::MemoryManagement::AdjustExternalMemory(Env(), -reported_);
    reported_ = 0;
  }
}

const Tensor& TensorHandle::Get(const std::string& what) const {
  if (disposed()) throw PtError(ErrorKind::Disposed, Concat(what, ": tensor ", tensor_.Describe(),
                                                             " was disposed"));
  return tensor_;
}

void TensorHandle::DisposeImpl(Napi::Env env) {
  if (disposed_) return;
  disposed_ = true;
  if (owner_ && tensor_.storage) {
    tensor_.storage->disposed = true;
    tensor_.storage->ReleaseIfUnused();
  }
  if (reported_) {
    Napi::MemoryManagement::AdjustExternalMemory(env, -reported_);
    reported_ = 0;
  }
  if (tensor_.storage) disposedDevice_ = tensor_.storage->device;
  tensor_.storage.reset();
}

Napi::Value TensorHandle::Dispose(const Napi::CallbackInfo& info) {
  DisposeImpl(info.Env());
  return info.Env().Undefined();
}


Napi::Value TensorHandle::View(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    Get("Tensor.view");
    PT_CHECK_ARG(info.Length() == 2 && info[0].IsNumber(), "Tensor.view: expected (elementOffset, shape)");
    return State(env).tensorCtor.New({Value(), info[0], info[1]});
  } catch (const PtError& e) {
    ThrowJs(env, e);
    return env.Undefined();
  }
}

// The JS typed array that matches a dtype: Float32Array for f32, Uint16Array (raw bits) or Float32Array
// (converted, round-to-nearest-even) for bf16, Int32Array for i32.
static void CheckTypedArray(const Tensor& t, const Napi::TypedArray& a, const char* op) {
  napi_typedarray_type ty = a.TypedArrayType();
  bool ok = (t.dtype == DType::F32 && ty == napi_float32_array) ||
            (t.dtype == DType::I32 && ty == napi_int32_array) ||
            (t.dtype == DType::BF16 && (ty == napi_uint16_array || ty == napi_float32_array));
  PT_CHECK_ARG(ok, op, ": a ", DTypeName(t.dtype), " tensor takes ",
               t.dtype == DType::F32   ? "a Float32Array"
               : t.dtype == DType::I32 ? "an Int32Array"
                                       : "a Uint16Array (bits) or Float32Array",
               "");
  PT_CHECK_ARG(int64_t(a.ElementLength()) == t.numel, op, ": array has ", a.ElementLength(),
               " elements, tensor ", t.Describe(), " has ", t.numel);
}

Napi::Value TensorHandle::CopyFrom(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const Tensor& t = Get("Tensor.copyFrom");
    PT_CHECK_ARG(info.Length() == 1 && info[0].IsTypedArray(), "Tensor.copyFrom: expected a TypedArray");
    Napi::TypedArray a = info[0].As<Napi::TypedArray>();
    CheckTypedArray(t, a, "Tensor.copyFrom");
    const char* src = static_cast<const char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    if (t.dtype == DType::BF16 && a.TypedArrayType() == napi_float32_array) {
      const float* s = reinterpret_cast<const float*>(src);
      std::vector<bf16> staged(t.device().IsCpu() ? 0 : size_t(t.numel));
      bf16* d = t.device().IsCpu() ? t.ptr<bf16>() : staged.data();
      for (int64_t i = 0; i < t.numel; i++) d[i] = F32ToBf16(s[i]);
      if (!t.device().IsCpu()) DeviceCopy(t.device(), t.raw(), Device{}, d, t.nbytes(), "Tensor.copyFrom");
    } else {
      DeviceCopy(t.device(), t.raw(), Device{}, src, t.nbytes(), "Tensor.copyFrom");
    }
  } catch (const PtError& e) {
    ThrowJs(env, e);
  }
  return env.Undefined();
}

Napi::Value TensorHandle::CopyTo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const Tensor& t = Get("Tensor.copyTo");
    PT_CHECK_ARG(info.Length() == 1 && info[0].IsTypedArray(), "Tensor.copyTo: expected a TypedArray");
    Napi::TypedArray a = info[0].As<Napi::TypedArray>();
    CheckTypedArray(t, a, "Tensor.copyTo");
    char* dst = static_cast<char*>(a.ArrayBuffer().Data()) + a.ByteOffset();
    if (t.dtype == DType::BF16 && a.TypedArrayType() == napi_float32_array) {
      float* d = reinterpret_cast<float*>(dst);
      std::vector<bf16> staged(t.device().IsCpu() ? 0 : size_t(t.numel));
      if (!t.device().IsCpu()) DeviceCopy(Device{}, staged.data(), t.device(), t.raw(), t.nbytes(), "Tensor.copyTo");
      const bf16* s = t.device().IsCpu() ? t.ptr<bf16>() : staged.data();
      for (int64_t i = 0; i < t.numel; i++) d[i] = Bf16ToF32(s[i]);
    } else {
      DeviceCopy(Device{}, dst, t.device(), t.raw(), t.nbytes(), "Tensor.copyTo");
    }
  } catch (const PtError& e) {
    ThrowJs(env, e);
  }
  return env.Undefined();
}

Napi::Value TensorHandle::Fill(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    const Tensor& t = Get("Tensor.fill");
    PT_CHECK_ARG(info.Length() == 1 && info[0].IsNumber(), "Tensor.fill: expected a number");
    double v = info[0].As<Napi::Number>().DoubleValue();
    if (!t.device().IsCpu()) {
      uint32_t pattern = 0;
      if (t.dtype == DType::F32) pattern = __builtin_bit_cast(uint32_t, float(v));
      else if (t.dtype == DType::BF16) pattern = F32ToBf16(float(v));
      else {
        PT_CHECK_ARG(v == double(int32_t(v)), "Tensor.fill: ", v, " is not an int32 value");
        pattern = uint32_t(int32_t(v));
      }
      DeviceFill(t.device(), t.raw(), size_t(t.numel), pattern, DTypeSize(t.dtype), "Tensor.fill");
    } else if (v == 0.0) {
      std::memset(t.raw(), 0, t.nbytes());
    } else if (t.dtype == DType::F32) {
      float* p = t.ptr<float>();
      for (int64_t i = 0; i < t.numel; i++) p[i] = float(v);
    } else if (t.dtype == DType::BF16) {
      bf16* p = t.ptr<bf16>();
      bf16 h = F32ToBf16(float(v));
      for (int64_t i = 0; i < t.numel; i++) p[i] = h;
    } else {
      PT_CHECK_ARG(v == double(int32_t(v)), "Tensor.fill: ", v, " is not an int32 value");
      int32_t* p = t.ptr<int32_t>();
      for (int64_t i = 0; i < t.numel; i++) p[i] = int32_t(v);
    }
  } catch (const PtError& e) {
    ThrowJs(env, e);
  }
  return env.Undefined();
}

Napi::Value TensorHandle::GetDType(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), DTypeName(tensor_.dtype));
}
Napi::Value TensorHandle::GetShape(const Napi::CallbackInfo& info) {
  Napi::Array a = Napi::Array::New(info.Env(), tensor_.shape.size());
  for (size_t i = 0; i < tensor_.shape.size(); i++) a.Set(uint32_t(i), double(tensor_.shape[i]));
  return a;
}
Napi::Value TensorHandle::GetNumel(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(tensor_.numel));
}
Napi::Value TensorHandle::GetByteLength(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(tensor_.nbytes()));
}
Napi::Value TensorHandle::GetByteOffset(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), double(tensor_.byteOffset));
}
Napi::Value TensorHandle::GetDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), disposed());
}
Napi::Value TensorHandle::GetIsView(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !owner_);
}
Napi::Value TensorHandle::GetDevice(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), (tensor_.storage ? tensor_.storage->device : disposedDevice_).Name());
}

}  // namespace pt
