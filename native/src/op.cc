// op.cc: argument readers, the shared shape/dtype checks, and sync/async registration of ops.
#include "op.h"

#include "cpu.h"

namespace pt {

Napi::Error MakeJsError(Napi::Env env, const PtError& e) {
  Napi::Error err = e.kind == ErrorKind::Argument ? Napi::Error(Napi::TypeError::New(env, e.what()))
                                                   : Napi::Error::New(env, e.what());
  err.Set("code", e.kind == ErrorKind::Argument   ? "ERR_PAJAMA_INVALID_ARG"
                  : e.kind == ErrorKind::Disposed ? "ERR_PAJAMA_DISPOSED"
                                                  : "ERR_PAJAMA_ENGINE");
  return err;
}

void ThrowJs(Napi::Env env, const PtError& e) { MakeJsError(env, e).ThrowAsJavaScriptException(); }

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
  pins_.push_back(t.storage);
  return t;
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
  PT_CHECK_ARG(ShapeNumel(shape) == t.numel && (t.shape == shape || t.numel == ShapeNumel(shape)), op, ": '",
               name, "' must have shape ", ShapeStr(shape), ", got ", t.Describe());
}

void ExpectNumel(const std::string& op, const char* name, const Tensor& t, int64_t numel) {
  PT_CHECK_ARG(t.numel == numel, op, ": '", name, "' must have ", numel, " elements, got ", t.Describe());
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

static Napi::Value RunSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto* e = static_cast<OpEntry*>(info.Data());
  try {
    OpArgs args(info, e->name);
    Kernel k = e->builder(args);
    ApplyThreads();
    return ResultToJs(env, k());
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
    Kernel k = e->builder(args);
    return EnqueueKernel(env, std::move(k), args.pins());
  } catch (const PtError& err) {
    // Argument errors reject the promise rather than throw, so callers handle one failure path.
    Napi::Promise::Deferred d = Napi::Promise::Deferred::New(env);
    d.Reject(MakeJsError(env, err).Value());
    return d.Promise();
  }
}

void RegisterOp(Napi::Env env, Napi::Object exports, const char* name, OpBuilder builder) {
  auto* entry = new OpEntry{name, builder};  // lives as long as the module
  exports.Set(name, Napi::Function::New(env, RunSync, name, entry));
  std::string asyncName = std::string(name) + "Async";
  exports.Set(asyncName, Napi::Function::New(env, RunAsync, asyncName, entry));
}

}  // namespace pt
