// addon.cc: the module's registration, in one place: the tensor class, backend queries and settings, and
// every op (sync and Async forms, see op.h).
#include <napi.h>

#include <algorithm>
#include <functional>
#include <string>
#include <vector>

#include "cpu.h"
#include "gemm.h"
#include "op.h"
#include "ops/attention.h"
#include "ops/ops.h"
#include "tensor.h"
#include "device.h"
#include "dist/comm.h"
#include "dist/nccl.h"
#ifdef PT_HAVE_CUDA
#include "cuda/cuda_info.h"
#include "cuda/runtime.h"
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace pt {
namespace {

Napi::Object MpiStatusJs(Napi::Env env, const MpiStatus& m);

Napi::Value BackendInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const CpuFeatures& f = Cpu();
  Napi::Object cpu = Napi::Object::New(env);
  cpu.Set("vendor", f.vendor);
  cpu.Set("brand", f.brand);
  Napi::Object feats = Napi::Object::New(env);
  feats.Set("sse42", f.sse42);
  feats.Set("avx", f.avx);
  feats.Set("avx2", f.avx2);
  feats.Set("fma", f.fma);
  feats.Set("f16c", f.f16c);
  feats.Set("avx512f", f.avx512f);
  feats.Set("avx512bw", f.avx512bw);
  feats.Set("avx512vl", f.avx512vl);
  feats.Set("avx512dq", f.avx512dq);
  feats.Set("avx512bf16", f.avx512bf16);
  feats.Set("amxBf16", f.amxBf16);
  cpu.Set("features", feats);
  cpu.Set("detectedIsa", IsaName(DetectedIsa()));
  cpu.Set("activeIsa", IsaName(ActiveIsa()));

  Napi::Object gemm = Napi::Object::New(env);
  gemm.Set("engine", ActiveGemmEngine() == GemmEngine::OneDnn ? "onednn" : "portable");
  gemm.Set("oneDnnAvailable", HaveOneDnn());
  gemm.Set("bf16Native", Bf16GemmNative());
  gemm.Set("description", GemmEngineDescription());

  Napi::Object attention = Napi::Object::New(env);
  attention.Set("engine", AttentionEngineName(ActiveAttentionEngine()));

  Napi::Object cuda = Napi::Object::New(env);
#ifdef PT_HAVE_CUDA
  CudaStatus cs = QueryCuda();
  cuda.Set("compiled", true);
  cuda.Set("runtimeVersion", cs.runtimeVersion);
  cuda.Set("driverVersion", cs.driverVersion);
  Napi::Array devs = Napi::Array::New(env, cs.devices.size());
  for (size_t i = 0; i < cs.devices.size(); i++) {
    Napi::Object d = Napi::Object::New(env);
    d.Set("name", cs.devices[i].name);
    d.Set("computeCapability", std::to_string(cs.devices[i].major) + "." + std::to_string(cs.devices[i].minor));
    d.Set("totalMemory", double(cs.devices[i].totalMemory));
    devs.Set(uint32_t(i), d);
  }
  cuda.Set("devices", devs);
  if (!cs.error.empty()) cuda.Set("error", cs.error);
  cuda.Set("cublas", cuda::HaveCublas());
  if (!cuda::HaveCublas()) cuda.Set("cublasReason", cuda::CublasReason());
#else
  cuda.Set("compiled", false);
  cuda.Set("devices", Napi::Array::New(env, 0));
  cuda.Set("cublas", false);
#endif
  cuda.Set("available", CudaDeviceCount() > 0);
  if (CudaDeviceCount() == 0) cuda.Set("reason", CudaUnavailableReason());

  Napi::Object out = Napi::Object::New(env);
  out.Set("cpu", cpu);
  out.Set("gemm", gemm);
  out.Set("attention", attention);
  out.Set("threads", Threads());
  out.Set("denormals", FlushesDenormals() ? "flush-to-zero" : "ieee");
#ifdef _OPENMP
  out.Set("openmp", true);
#else
  out.Set("openmp", false);
#endif
  out.Set("cuda", cuda);
  out.Set("mpi", MpiStatusJs(env, GetMpiStatus()));
#ifdef PT_BUILD_SYSTEM
  out.Set("buildSystem", PT_BUILD_SYSTEM);
#endif
  return out;
}

Napi::Value SetThreadsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() != 1 || !info[0].IsNumber()) {
    ThrowJs(env, PtError(ErrorKind::Argument, "setThreads: expected a thread count (0 restores the default)"));
    return env.Undefined();
  }
  double n = info[0].As<Napi::Number>().DoubleValue();
  if (!(n >= 0 && n <= 1024 && n == double(int(n)))) {
    ThrowJs(env, PtError(ErrorKind::Argument, Concat("setThreads: ", n, " is not a thread count in [0, 1024]")));
    return env.Undefined();
  }
  SetThreads(int(n));
  return Napi::Number::New(env, Threads());
}

Napi::Value SetIsaLimitJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Isa isa;
  if (info.Length() != 1 || !info[0].IsString() || !ParseIsa(info[0].As<Napi::String>(), &isa)) {
    ThrowJs(env, PtError(ErrorKind::Argument,
                         "setIsaLimit: expected one of 'scalar', 'avx2', 'avx512', 'avx512_bf16'"));
    return env.Undefined();
  }
  SetIsaLimit(isa);
  return Napi::String::New(env, IsaName(ActiveIsa()));
}

// A setting that takes one of `choices` by name: `apply` gets its index; anything else is an argument error
// naming the setting and the choices.
Napi::Value SetChoice(const Napi::CallbackInfo& info, const char* name, std::vector<std::string> choices,
                      const std::function<void(size_t)>& apply) {
  Napi::Env env = info.Env();
  try {
    const std::string s = info.Length() == 1 && info[0].IsString() ? std::string(info[0].As<Napi::String>()) : "";
    const auto it = std::find(choices.begin(), choices.end(), s);
    std::string expected;
    for (size_t i = 0; i < choices.size(); i++)
      expected += (i == 0 ? "'" : i + 1 == choices.size() ? " or '" : ", '") + choices[i] + "'";
    PT_CHECK_ARG(it != choices.end(), name, ": expected ", expected);
    apply(size_t(it - choices.begin()));
  } catch (const PtError& e) {
    ThrowJs(env, e);
  }
  return env.Undefined();
}

Napi::Value SetGemmEngineJs(const Napi::CallbackInfo& info) {
  return SetChoice(info, "setGemmEngine", {"onednn", "portable"},
                   [](size_t i) { SetGemmEngine(i == 0 ? GemmEngine::OneDnn : GemmEngine::Portable); });
}

Napi::Value SetAttentionEngineJs(const Napi::CallbackInfo& info) {
  return SetChoice(info, "setAttentionEngine", {"tiles", "gemm"},
                   [](size_t i) { SetAttentionEngine(i == 0 ? AttentionEngine::Tiles : AttentionEngine::Gemm); });
}

Napi::Object MpiStatusJs(Napi::Env env, const MpiStatus& m) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("built", m.built);
  if (!m.built) o.Set("reason", m.reason);
  o.Set("launched", !m.launcher.empty());
  if (!m.launcher.empty()) o.Set("launcher", m.launcher);
  o.Set("initialized", m.initialized);
  o.Set("rank", m.rank);
  o.Set("worldSize", m.size);
  o.Set("localRank", m.localRank);
  o.Set("nccl", nccl::Built());  // collectives on CUDA tensors (dist/nccl.h)
  if (!nccl::Built()) o.Set("ncclReason", nccl::Reason());
  if (m.initialized) {
    o.Set("threadLevel", m.threadLevel);
    o.Set("library", m.library);
  }
  return o;
}

// commInit(): starts MPI when an MPI launcher started this process; returns backendInfo().mpi.
Napi::Value CommInitJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    return MpiStatusJs(env, InitMpi());
  } catch (const PtError& e) {
    ThrowJs(env, e);
  }
  return env.Undefined();
}

// commAbort(code): ends every rank of the run (MPI_Abort); a no-op where MPI was not started.
Napi::Value CommAbortJs(const Napi::CallbackInfo& info) {
  const int code = info.Length() >= 1 && info[0].IsNumber() ? info[0].As<Napi::Number>().Int32Value() : 1;
  AbortMpi(code);
  return info.Env().Undefined();
}

// commFinalize(): MPI_Finalize, once every rank is done (the CLI calls it before exiting).
Napi::Value CommFinalizeJs(const Napi::CallbackInfo& info) {
  FinalizeMpi();
  return info.Env().Undefined();
}

// The device named by the optional first argument of the device housekeeping calls, `fallback` when it is
// omitted or undefined.
Device DeviceArg(const Napi::CallbackInfo& info, const char* where, const char* fallback) {
  std::string name = fallback;
  if (info.Length() >= 1 && !info[0].IsUndefined()) {
    PT_CHECK_ARG(info[0].IsString(), where, ": device must be a string ('cpu', 'cuda' or 'cuda:N')");
    name = info[0].As<Napi::String>();
  }
  return ParseDevice(name, where);
}

// DeviceArg for the CUDA-only calls: 'cuda' when omitted, and a CPU device is an argument error.
Device CudaDeviceArg(const Napi::CallbackInfo& info, const char* where) {
  const Device d = DeviceArg(info, where, "cuda");
  PT_CHECK_ARG(d.IsCuda(), where, ": '", d.Name(), "' is not a CUDA device");
  return d;
}

// synchronize(device?): waits for everything queued on the device ('cpu' returns at once).
Napi::Value SynchronizeJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    DeviceSynchronize(DeviceArg(info, "synchronize", "cpu"), "synchronize");
  } catch (const PtError& e) {
    ThrowJs(env, e);
  }
  return env.Undefined();
}

// cudaMemoryStats(device?) -> { allocated, cached, peak, driverAllocs } in bytes (driverAllocs: a count).
Napi::Value CudaMemoryStatsJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    [[maybe_unused]] const Device d = CudaDeviceArg(info, "cudaMemoryStats");  // used by CUDA builds only
    Napi::Object o = Napi::Object::New(env);
#ifdef PT_HAVE_CUDA
    const cuda::MemoryStats s = cuda::Stats(d.index);
    o.Set("allocated", double(s.allocated));
    o.Set("cached", double(s.cached));
    o.Set("peak", double(s.peak));
    o.Set("driverAllocs", double(s.driverAllocs));
#endif
    return o;
  } catch (const PtError& e) {
    ThrowJs(env, e);
  }
  return env.Undefined();
}

// emptyCudaCache(device?): waits for the device, then returns its cached blocks to the driver.
Napi::Value EmptyCudaCacheJs(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  try {
    [[maybe_unused]] const Device d = CudaDeviceArg(info, "emptyCudaCache");  // used by CUDA builds only
#ifdef PT_HAVE_CUDA
    cuda::EmptyCache(d.index);
#endif
  } catch (const PtError& e) {
    ThrowJs(env, e);
  }
  return env.Undefined();
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("Tensor", TensorHandle::Init(env));
  exports.Set("backendInfo", Napi::Function::New(env, BackendInfo, "backendInfo"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreadsJs, "setThreads"));
  exports.Set("setIsaLimit", Napi::Function::New(env, SetIsaLimitJs, "setIsaLimit"));
  exports.Set("setGemmEngine", Napi::Function::New(env, SetGemmEngineJs, "setGemmEngine"));
  exports.Set("setAttentionEngine", Napi::Function::New(env, SetAttentionEngineJs, "setAttentionEngine"));
  exports.Set("synchronize", Napi::Function::New(env, SynchronizeJs, "synchronize"));
  exports.Set("cudaMemoryStats", Napi::Function::New(env, CudaMemoryStatsJs, "cudaMemoryStats"));
  exports.Set("emptyCudaCache", Napi::Function::New(env, EmptyCudaCacheJs, "emptyCudaCache"));
  exports.Set("commInit", Napi::Function::New(env, CommInitJs, "commInit"));
  exports.Set("commAbort", Napi::Function::New(env, CommAbortJs, "commAbort"));
  exports.Set("commFinalize", Napi::Function::New(env, CommFinalizeJs, "commFinalize"));
  StartWorker(env);
  RegisterGelu(env, exports);
  RegisterEmbedding(env, exports);
  RegisterLayerNorm(env, exports);
  RegisterLinear(env, exports);
  RegisterResidual(env, exports);
  RegisterCrossEntropy(env, exports);
  RegisterAdamW(env, exports);
  RegisterReduce(env, exports);
  RegisterCast(env, exports);
  RegisterAttention(env, exports);
  RegisterAttentionCached(env, exports);
  RegisterMinHash(env, exports);
  RegisterComm(env, exports);
  return exports;
}

}  // namespace pt

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return pt::Init(env, exports); }

NODE_API_MODULE(pajama_native, InitModule)
