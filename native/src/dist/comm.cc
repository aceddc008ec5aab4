// comm.cc: collectives across the processes of a data-parallel run, over MPI (issue #12).
//
// The addon does not link MPI: when the process was started by an MPI launcher (mpirun/mpiexec, or srun with
// PMI/PMIx), commInit() dlopen()s pajama_mpi.so from the addon's own directory (mpi_api.h) and initialises
// MPI; a process started any other way is a world of one and never loads MPI. The collectives are ops
// (op.h), so their Async forms run on the native worker thread in call order with every other op: a
// gradient all-reduce queued after the backward's last op runs after it, and the event loop stays free.
//   commAllReduce(buf, op)              in place; op 'sum' | 'max' | 'min'
//   commReduceScatter(out, inp, op)     inp: worldSize * out's elements; out: this rank's block of the reduction
//   commAllGather(out, inp)             out: worldSize * inp's elements, rank r's block at r * inp.numel; inp
//                                       may be this rank's block of out (in place)
//   commBroadcast(buf, root)            root's bytes to every rank
//   commBarrier()
// buf, out and inp are CPU tensors (f32 or i32; bf16 too for allGather and broadcast, which only move it) or
// typed arrays (Float32Array, Float64Array, Int32Array, Uint8Array, BigInt64Array): MPI moves them. Or they are all CUDA tensors (f32, bf16 or i32) on this rank's
// device: NCCL moves them (nccl.h), queued on the communicator's stream in order with the device's compute
// stream, and the promise settles once queued like any CUDA op's; a build without NCCL refuses them with its
// reason. MPI errors return (never abort) and become Engine errors naming the collective.
#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <string>

#include "../op.h"
#include "comm.h"
#include "mpi_api.h"
#include "nccl.h"

namespace pt {

namespace {

struct Comm {
  std::mutex mu;
  const PtMpiApi* api = nullptr;
  bool initialized = false;
  int rank = 0, size = 1, localRank = 0, threadLevel = 0;
  std::string library;
};

Comm& C() {
  static Comm* c = new Comm();  // process-wide like MPI itself; never destroyed
  return *c;
}

// The directory this addon was loaded from (pajama_mpi.so is built beside it).
std::string AddonDirectory() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&AddonDirectory), &info) == 0 || !info.dli_fname) return ".";
  std::string path = info.dli_fname;
  const size_t slash = path.rfind('/');
  return slash == std::string::npos ? "." : path.substr(0, slash);
}

const PtMpiApi* Api(const std::string& op) {
  Comm& c = C();
  PT_CHECK_ARG(c.initialized, op, ": MPI is not initialised in this process (commInit() starts it in a process "
               "launched by mpirun or srun; a process started otherwise is a world of one)");
  return c.api;
}

void Check(const std::string& op, int rc, const char* err) {
  PT_CHECK_ENGINE(rc == 0, op, ": MPI failed on rank ", C().rank, " of ", C().size, ": ", err);
}

// A buffer argument: a CPU tensor (f32 or i32) or a typed array for MPI; a CUDA tensor for NCCL.
struct Buf {
  void* data = nullptr;
  int64_t count = 0;
  int dtype = PT_MPI_F32;
  std::string what;  // for errors: "f32 tensor" or "Float64Array"
  bool cuda = false;            // a CUDA tensor: NCCL's, with its dtype in tensorDtype
  DType tensorDtype = DType::F32;
};

// A CUDA tensor argument (OpArgs has checked it is on the device of the op's other tensors).
Buf ReadCudaBuf(OpArgs& a, const Tensor& t, const char* name) {
  PT_CHECK_ARG(nccl::Built(), a.op(), ": '", name, "' is ", t.Describe(), " on ", t.device().Name(),
               "; collectives on CUDA tensors need NCCL, which this build lacks (", nccl::Reason(), ")");
  PT_CHECK_ARG(t.dtype == DType::F32 || t.dtype == DType::BF16 || t.dtype == DType::I32, a.op(), ": '", name,
               "' must be an f32, bf16 or i32 tensor, got ", t.Describe());
  Buf b;
  b.data = t.raw();
  b.count = t.numel;
  b.dtype = -1;  // not MPI's: tensorDtype says
  b.what = t.Describe();
  b.cuda = true;
  b.tensorDtype = t.dtype;
  return b;
}

Buf ReadBuf(OpArgs& a, size_t i, const char* name) {
  Buf b;
  if (a.isTensor(i)) {
    Tensor t = a.tensor(i, name);
    if (t.device().IsCuda()) return ReadCudaBuf(a, t, name);
    PT_CHECK_ARG(t.dtype == DType::F32 || t.dtype == DType::I32 || t.dtype == DType::BF16, a.op(), ": '", name,
                 "' must be an f32, bf16 or i32 tensor, got ", t.Describe());
    b.data = t.raw();
    b.count = t.numel;
    b.dtype = t.dtype == DType::F32 ? PT_MPI_F32 : t.dtype == DType::BF16 ? PT_MPI_U16 : PT_MPI_I32;
    b.what = t.Describe();
    return b;
  }
  ArrayArg arr = a.typedArray(i, name,
                              {napi_float32_array, napi_float64_array, napi_int32_array, napi_uint8_array,
                               napi_bigint64_array});
  b.data = arr.data;
  b.count = int64_t(arr.length);
  b.dtype = arr.type == napi_float32_array   ? PT_MPI_F32
            : arr.type == napi_float64_array ? PT_MPI_F64
            : arr.type == napi_int32_array   ? PT_MPI_I32
            : arr.type == napi_uint8_array   ? PT_MPI_U8
                                             : PT_MPI_I64;
  b.what = TypedArrayName(arr.type);
  return b;
}

// MPI moves bf16 CPU tensors (allGather, broadcast) as 16-bit words but cannot add them: reductions refuse them.
void ExpectReducible(const OpArgs& a, const Buf& b, const char* name) {
  PT_CHECK_ARG(b.dtype != PT_MPI_U16, a.op(), ": '", name, "' is a ", b.what,
               "; MPI reduces f32 or i32 CPU tensors (reduce gradients in f32; bf16 is only gathered or broadcast)");
}

int64_t ElementBytes(int dtype) {
  return dtype == PT_MPI_F64 || dtype == PT_MPI_I64 ? 8 : dtype == PT_MPI_U8 ? 1 : dtype == PT_MPI_U16 ? 2 : 4;
}

int ReadOp(OpArgs& a, size_t i) {
  const std::string s = a.string(i, "op");
  if (s == "sum") return PT_MPI_SUM;
  if (s == "max") return PT_MPI_MAX;
  PT_CHECK_ARG(s == "min", a.op(), ": op must be 'sum', 'max' or 'min', got '", s, "'");
  return PT_MPI_MIN;
}

// A collective's buffers are all CUDA tensors (NCCL) or all host memory (MPI): a typed array beside a CUDA
// tensor is refused (two tensors on different devices already are, by OpArgs).
void ExpectOneKind(OpArgs& a, const Buf& x, const char* nameX, const Buf& y, const char* nameY) {
  if (x.cuda == y.cuda) return;
  const Buf& host = x.cuda ? y : x;
  PT_CHECK_ARG(false, a.op(), ": '", x.cuda ? nameY : nameX, "' is a ", host.what, " but '", x.cuda ? nameX : nameY,
               "' is a CUDA tensor: a collective's buffers are all CUDA tensors (NCCL) or all host memory (MPI)");
}

// The NCCL path of a collective over CUDA tensors, on this rank's NCCL device; MPI must be started (it carries
// NCCL's unique id). `launch` queues the collective given the device's compute stream; ForDevice runs it with
// that device current (and marks the op routed to its CUDA path).
Kernel NcclKernel(OpArgs& a, CudaLaunch launch) {
  Api(a.op());
  const int device = nccl::Device(a.op());
  PT_CHECK_ARG(a.device().index == device, a.op(), ": this rank's NCCL device is cuda:", device,
               " (from its local rank), but the buffers are on ", a.device().Name());
  return ForDevice(a, Kernel(), std::move(launch));
}

// A CudaLaunch over the captured values (ForDevice's contract); never made in a build without NCCL, where
// ReadCudaBuf refuses CUDA tensors first.
#ifdef PT_HAVE_NCCL
nccl::Reduce NcclReduce(int op) {
  return op == PT_MPI_SUM ? nccl::Reduce::Sum : op == PT_MPI_MAX ? nccl::Reduce::Max : nccl::Reduce::Min;
}
#define PT_NCCL_LAUNCH(...) ::pt::CudaLaunch([=](cudaStream_t stream) -> ::pt::OpResult { __VA_ARGS__ return {}; })
#else
#define PT_NCCL_LAUNCH(...) ::pt::CudaLaunch()
#endif

Kernel BuildAllReduce(OpArgs& a) {
  const Buf b = ReadBuf(a, 0, "buf");
  const int op = ReadOp(a, 1);
  const std::string name = a.op();
  if (b.cuda) {
    return NcclKernel(a, PT_NCCL_LAUNCH(nccl::AllReduce(name, stream, b.data, b.count, b.tensorDtype, NcclReduce(op));));
  }
  ExpectReducible(a, b, "buf");
  const PtMpiApi* api = Api(a.op());
  return [=]() {
    char err[512] = {0};
    Check(name, api->allreduce(b.data, b.count, b.dtype, op, err, sizeof err), err);
    return OpResult{};
  };
}

// reduceScatter (inp is the whole) and allGather (out is the whole): one element type, and the whole buffer
// holds worldSize blocks the size of the other.
void ExpectWorldBlocks(const OpArgs& a, const Buf& out, const Buf& inp, bool outIsWhole) {
  PT_CHECK_ARG(out.dtype == inp.dtype && out.tensorDtype == inp.tensorDtype, a.op(), ": 'out' (", out.what,
               ") and 'inp' (", inp.what, ") must hold the same element type");
  const Buf& whole = outIsWhole ? out : inp;
  const Buf& block = outIsWhole ? inp : out;
  const char* wholeName = outIsWhole ? "out" : "inp";
  const char* blockName = outIsWhole ? "inp" : "out";
  const int size = C().size;
  PT_CHECK_ARG(whole.count == block.count * size, a.op(), ": '", wholeName, "' must have worldSize (", size, ") x ",
               block.count, " = ", block.count * size, " elements ('", blockName, "' has ", block.count, "), got ",
               whole.count);
}

Kernel BuildReduceScatter(OpArgs& a) {
  const Buf out = ReadBuf(a, 0, "out"), inp = ReadBuf(a, 1, "inp");
  ExpectOneKind(a, out, "out", inp, "inp");
  const int op = ReadOp(a, 2);
  const PtMpiApi* api = Api(a.op());
  ExpectWorldBlocks(a, out, inp, false);
  const std::string name = a.op();
  if (out.cuda || inp.cuda) {
    return NcclKernel(a, PT_NCCL_LAUNCH(nccl::ReduceScatter(name, stream, inp.data, out.data, out.count,
                                                            out.tensorDtype, NcclReduce(op));));
  }
  ExpectReducible(a, inp, "inp");
  return [=]() {
    char err[512] = {0};
    Check(name, api->reduce_scatter(inp.data, out.data, out.count, out.dtype, op, err, sizeof err), err);
    return OpResult{};
  };
}

Kernel BuildAllGather(OpArgs& a) {
  const Buf out = ReadBuf(a, 0, "out"), inp = ReadBuf(a, 1, "inp");
  ExpectOneKind(a, out, "out", inp, "inp");
  const PtMpiApi* api = Api(a.op());
  ExpectWorldBlocks(a, out, inp, true);
  const std::string name = a.op();
  if (out.cuda || inp.cuda) {
    return NcclKernel(a,
                      PT_NCCL_LAUNCH(nccl::AllGather(name, stream, inp.data, out.data, inp.count, inp.tensorDtype);));
  }
  return [=]() {
    char err[512] = {0};
    Check(name, api->allgather(inp.data, out.data, inp.count, inp.dtype, err, sizeof err), err);
    return OpResult{};
  };
}

Kernel BuildBroadcast(OpArgs& a) {
  const Buf b = ReadBuf(a, 0, "buf");
  const int64_t root = a.integer(1, "root");
  const PtMpiApi* api = Api(a.op());
  PT_CHECK_ARG(root >= 0 && root < C().size, a.op(), ": root ", root, " is not a rank in [0, ", C().size, ")");
  if (b.cuda) {
    const std::string name = a.op();
    return NcclKernel(a,
                      PT_NCCL_LAUNCH(nccl::Broadcast(name, stream, b.data, b.count, b.tensorDtype, int(root));));
  }
  const int64_t bytes = b.count * ElementBytes(b.dtype);
  const std::string name = a.op();
  return [=]() {
    char err[512] = {0};
    Check(name, api->broadcast(b.data, bytes, int(root), err, sizeof err), err);
    return OpResult{};
  };
}

Kernel BuildBarrier(OpArgs& a) {
  const PtMpiApi* api = Api(a.op());
  const std::string name = a.op();
  return [=]() {
    char err[512] = {0};
    Check(name, api->barrier(err, sizeof err), err);
    return OpResult{};
  };
}

}  // namespace

std::string MpiLauncher() {
  // OpenMPI's mpirun, MPICH/Intel MPI's hydra (PMI), Slurm's srun with PMIx or PMI2.
  for (const char* v : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE", "PMI_RANK"}) {
    if (std::getenv(v)) return v;
  }
  return "";
}

MpiStatus GetMpiStatus() {
  Comm& c = C();
  std::lock_guard<std::mutex> lock(c.mu);
  MpiStatus s;
#ifdef PT_HAVE_MPI
  s.built = true;
#else
  s.reason = PT_MPI_REASON;
#endif
  s.launcher = MpiLauncher();
  s.initialized = c.initialized;
  s.rank = c.rank, s.size = c.size, s.localRank = c.localRank, s.threadLevel = c.threadLevel;
  s.library = c.library;
  return s;
}

MpiStatus InitMpi() {
  Comm& c = C();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    if (!c.initialized && !MpiLauncher().empty()) {
#ifdef PT_HAVE_MPI
      const std::string path = AddonDirectory() + "/pajama_mpi.so";
      // RTLD_GLOBAL: MPI libraries load their own plugins, which look up MPI's symbols globally.
      void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL);
      PT_CHECK_ENGINE(h != nullptr, "commInit: this process was started by an MPI launcher (", MpiLauncher(),
                      " is set) but ", path, " could not be loaded: ", dlerror());
      auto get = reinterpret_cast<const PtMpiApi* (*)()>(dlsym(h, "pt_mpi_api"));
      PT_CHECK_ENGINE(get != nullptr, "commInit: ", path, " has no pt_mpi_api");
      const PtMpiApi* api = get();
      PT_CHECK_ENGINE(api && api->version == PT_MPI_API_VERSION, "commInit: ", path,
                      " is from another build (interface version ", api ? api->version : -1, ", expected ",
                      PT_MPI_API_VERSION, "); rebuild the addon");
      char err[512] = {0};
      const int rc = api->init(&c.rank, &c.size, &c.localRank, &c.threadLevel, err, sizeof err);
      PT_CHECK_ENGINE(rc == 0, "commInit: MPI_Init_thread failed: ", err);
      char lib[256] = {0};
      api->library_version(lib, sizeof lib);
      c.library = lib;
      c.api = api;
      c.initialized = true;
#else
      PT_CHECK_ARG(false, "commInit: this process was started by an MPI launcher (", MpiLauncher(),
                   " is set) but this build has no MPI support (", PT_MPI_REASON, ")");
#endif
    }
  }
  return GetMpiStatus();
}

void AbortMpi(int code) {
  Comm& c = C();
  nccl::Abort();  // first: NCCL kernels waiting for a rank that is gone would keep the GPU busy
  if (c.initialized) c.api->abort(code);
}

void FinalizeMpi() {
  nccl::Destroy();  // NCCL's communicator was made over MPI: it goes first
  Comm& c = C();
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.initialized) c.api->finalize();
}

void MpiBroadcast(void* buf, int64_t bytes, int root, const std::string& op) {
  const PtMpiApi* api = Api(op);
  char err[512] = {0};
  Check(op, api->broadcast(buf, bytes, root, err, sizeof err), err);
}

void RegisterComm(Napi::Env env, Napi::Object exports) {
  RegisterOp(env, exports, "commAllReduce", BuildAllReduce);
  RegisterOp(env, exports, "commReduceScatter", BuildReduceScatter);
  RegisterOp(env, exports, "commAllGather", BuildAllGather);
  RegisterOp(env, exports, "commBroadcast", BuildBroadcast);
  RegisterOp(env, exports, "commBarrier", BuildBarrier);
}

}  // namespace pt
