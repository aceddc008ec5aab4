// nccl.cc: collectives on CUDA tensors over NCCL (nccl.h), for comm.cc's builders.
//
// The communicator: one per process, made at the first CUDA collective on the worker thread (where every
// collective runs, so MPI is only ever called from one thread at a time): rank 0 calls ncclGetUniqueId and
// MPI broadcasts the id together with whether that worked (so a failure on rank 0 fails every rank instead
// of leaving them waiting), then each rank makes its device current and calls ncclCommInitRank (blocking:
// every rank must reach it, under the JavaScript watchdog of the collective that triggered it).
//
// Ordering with compute, without a host sync: ops on a device run in order on its one compute stream
// (cuda/runtime.h). A collective records `before` on the compute stream and makes the communicator's stream
// wait for it (the buffers hold what the ops queued before the collective wrote), runs on the communicator's
// stream, records `after` there, and makes the compute stream wait for `after` at once, so every op queued
// later sees the result. Because the compute stream itself waits, the caching allocator's rule (a block freed
// after an op was queued may serve a later op on the same stream) still holds for the buffers NCCL uses. The
// two events are reused: cudaStreamWaitEvent waits for the record made before it was called, not later ones.
//
// Errors: every NCCL call's result is checked and becomes an Engine PtError naming the collective, the call,
// the rank and NCCL's text (ncclGetErrorString, plus ncclGetLastError's detail). After a failed call, or when
// ncclCommGetAsyncError (asked before and after each collective is queued) reports an error of an earlier one
// (a peer that died, a network failure), the communicator is aborted and every later collective fails at
// once: NCCL makes no promise about its state after an error. A rank that never arrives leaves the others'
// NCCL kernels spinning on the GPU; the JavaScript watchdog sees it at the next collective or host wait it
// times, and the abort path (comm.cc) calls Abort() before MPI_Abort.
#include "nccl.h"

#include "comm.h"

#ifdef PT_HAVE_NCCL
#include <cuda_runtime.h>
#include <nccl.h>  // NVIDIA's: angle brackets never find this directory's nccl.h

#include <atomic>
#include <mutex>

#include "../cuda/check.h"
#include "../cuda/runtime.h"

#if NCCL_VERSION_CODE < NCCL_VERSION(2, 14, 0)
#error "pajama needs NCCL 2.14 or newer (bf16, ncclCommFinalize, ncclGetLastError)"
#endif
#endif

namespace pt::nccl {

#ifndef PT_HAVE_NCCL

bool Built() { return false; }
const char* Reason() { return PT_NCCL_REASON; }
int Device(const std::string& op) {
  FailAt(ErrorKind::Argument, __FILE__, __LINE__,
         Concat(op, ": collectives on CUDA tensors need NCCL, which this build lacks (", PT_NCCL_REASON, ")"));
}
static void Refuse(const std::string& op) { Device(op); }
void AllReduce(const std::string& op, cudaStream_t, void*, int64_t, DType, Reduce) { Refuse(op); }
void ReduceScatter(const std::string& op, cudaStream_t, const void*, void*, int64_t, DType, Reduce) { Refuse(op); }
void AllGather(const std::string& op, cudaStream_t, const void*, void*, int64_t, DType) { Refuse(op); }
void Broadcast(const std::string& op, cudaStream_t, void*, int64_t, DType, int) { Refuse(op); }
void Abort() {}
void Destroy() {}

#else

bool Built() { return true; }
const char* Reason() { return ""; }

namespace {

struct Communicator {
  std::mutex mu;                          // creation and Destroy (the worker thread and the JS thread)
  ncclComm_t comm = nullptr;              // used by the worker thread only
  std::atomic<ncclComm_t> live{nullptr};  // the same, for Abort from any thread
  std::atomic<bool> failed{false};
  std::string failure;                    // why, once failed (written before `failed` is set)
  int device = -1, rank = 0, size = 1;
  cudaStream_t stream = nullptr;          // the communicator's stream, on `device`
  cudaEvent_t before = nullptr, after = nullptr;
};

Communicator& S() {
  static Communicator* c = new Communicator();  // process-wide, like MPI; never destroyed
  return *c;
}

std::string Where(const Communicator& c) { return Concat(" on rank ", c.rank, " of ", c.size); }

// Aborts the communicator after an error and remembers why; later collectives fail with that text.
[[noreturn]] void Fail(Communicator& c, const std::string& op, const std::string& msg) {
  if (!c.failed.load()) {
    c.failure = msg;
    c.failed.store(true);
  }
  if (ncclComm_t live = c.live.exchange(nullptr)) ncclCommAbort(live);
  FailAt(ErrorKind::Engine, __FILE__, __LINE__,
         Concat(op, ": ", msg, "; the NCCL communicator was aborted, so this run cannot use NCCL any more"));
}

void Check(Communicator& c, const std::string& op, const char* call, ncclResult_t rc) {
  if (rc == ncclSuccess) return;
  const char* detail = ncclGetLastError(c.comm);
  Fail(c, op, Concat("NCCL ", call, " failed", Where(c), ": ", ncclGetErrorString(rc),
                     detail && *detail ? Concat(" (", detail, ")") : std::string()));
}

// An error left by an earlier collective (NCCL reports those asynchronously).
void CheckAsync(Communicator& c, const std::string& op) {
  ncclResult_t async = ncclSuccess;
  const ncclResult_t rc = ncclCommGetAsyncError(c.comm, &async);
  Check(c, op, "ncclCommGetAsyncError", rc);
  if (async != ncclSuccess && async != ncclInProgress) {
    const char* detail = ncclGetLastError(c.comm);
    Fail(c, op, Concat("NCCL reported an error of an earlier collective", Where(c), ": ", ncclGetErrorString(async),
                       detail && *detail ? Concat(" (", detail, ")") : std::string()));
  }
}

// Makes the communicator (every rank calls this at its first CUDA collective). Runs on the worker thread,
// with c.mu held.
void Create(Communicator& c, const std::string& op) {
  const MpiStatus m = GetMpiStatus();
  PT_CHECK_ARG(m.initialized, op, ": MPI is not initialised in this process; the NCCL communicator is made over "
               "MPI (commInit() starts it in a process launched by mpirun or srun)");
  const int device = Device(op);
  c.rank = m.rank, c.size = m.size, c.device = device;

  // Rank 0's id and whether making it worked, in one broadcast.
  struct {
    int32_t ok;
    ncclResult_t rc;
    ncclUniqueId id;
  } root{};
  if (m.rank == 0) {
    root.rc = ncclGetUniqueId(&root.id);
    root.ok = root.rc == ncclSuccess;
  }
  MpiBroadcast(&root, sizeof root, 0, op);
  if (!root.ok) {
    Fail(c, op, Concat("NCCL ncclGetUniqueId failed on rank 0 of ", m.size, ": ", ncclGetErrorString(root.rc)));
  }

  cuda::SetDevice(device, op);
  PT_CUDA_CHECK(op, cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking));
  PT_CUDA_CHECK(op, cudaEventCreateWithFlags(&c.before, cudaEventDisableTiming));
  PT_CUDA_CHECK(op, cudaEventCreateWithFlags(&c.after, cudaEventDisableTiming));
  ncclComm_t comm = nullptr;
  const ncclResult_t rc = ncclCommInitRank(&comm, m.size, root.id, m.rank);
  if (rc != ncclSuccess) {
    const char* detail = ncclGetLastError(nullptr);
    Fail(c, op, Concat("NCCL ncclCommInitRank failed", Where(c), " (cuda:", device, "): ", ncclGetErrorString(rc),
                       detail && *detail ? Concat(" (", detail, ")") : std::string()));
  }
  c.comm = comm;
  c.live.store(comm);
}

// The communicator, made on first use. A failure while making it is final: the ranks would no longer agree on
// which broadcast carries the id.
Communicator& Get(const std::string& op) {
  Communicator& c = S();
  PT_CHECK_ENGINE(!c.failed.load(), op, ": the NCCL communicator failed earlier (", c.failure,
                  "); this run cannot use NCCL any more");
  std::lock_guard<std::mutex> lock(c.mu);
  if (c.comm) return c;
  try {
    Create(c, op);
  } catch (const PtError& e) {
    if (!c.failed.load()) {
      c.failure = e.what();
      c.failed.store(true);
    }
    throw;
  }
  return c;
}

ncclDataType_t Type(DType dt) {
  return dt == DType::F32 ? ncclFloat32 : dt == DType::BF16 ? ncclBfloat16 : ncclInt32;
}

ncclRedOp_t Op(Reduce r) { return r == Reduce::Sum ? ncclSum : r == Reduce::Max ? ncclMax : ncclMin; }

// Queues one NCCL call between the two events (see the top of the file). `call` gets the communicator and its
// stream and returns the NCCL result.
template <typename F>
void Run(const std::string& op, const char* name, cudaStream_t compute, F call) {
  Communicator& c = Get(op);
  CheckAsync(c, op);
  PT_CUDA_CHECK(op, cudaEventRecord(c.before, compute));
  PT_CUDA_CHECK(op, cudaStreamWaitEvent(c.stream, c.before, 0));
  Check(c, op, name, call(c.comm, c.stream));
  PT_CUDA_CHECK(op, cudaEventRecord(c.after, c.stream));
  PT_CUDA_CHECK(op, cudaStreamWaitEvent(compute, c.after, 0));
  CheckAsync(c, op);
}

}  // namespace

int Device(const std::string& op) {
  const int local = GetMpiStatus().localRank, count = cuda::DeviceCount();
  PT_CHECK_ARG(count > 0, op, ": NCCL needs a CUDA device: ", cuda::UnavailableReason());
  if (local < count) return local;
  PT_CHECK_ARG(count == 1, op, ": this rank's NCCL device is cuda:", local, " (its local rank), but the process sees ",
               count, " CUDA devices; start at most ", count,
               " ranks per machine, or give each rank one GPU with CUDA_VISIBLE_DEVICES");
  return 0;
}

void AllReduce(const std::string& op, cudaStream_t compute, void* buf, int64_t count, DType dt, Reduce r) {
  Run(op, "ncclAllReduce", compute, [&](ncclComm_t comm, cudaStream_t s) {
    return ncclAllReduce(buf, buf, size_t(count), Type(dt), Op(r), comm, s);  // in place
  });
}

void ReduceScatter(const std::string& op, cudaStream_t compute, const void* inp, void* out, int64_t countPerRank,
                   DType dt, Reduce r) {
  Run(op, "ncclReduceScatter", compute, [&](ncclComm_t comm, cudaStream_t s) {
    return ncclReduceScatter(inp, out, size_t(countPerRank), Type(dt), Op(r), comm, s);
  });
}

void AllGather(const std::string& op, cudaStream_t compute, const void* inp, void* out, int64_t countPerRank,
               DType dt) {
  Run(op, "ncclAllGather", compute, [&](ncclComm_t comm, cudaStream_t s) {
    return ncclAllGather(inp, out, size_t(countPerRank), Type(dt), comm, s);
  });
}

void Broadcast(const std::string& op, cudaStream_t compute, void* buf, int64_t count, DType dt, int root) {
  Run(op, "ncclBroadcast", compute, [&](ncclComm_t comm, cudaStream_t s) {
    return ncclBroadcast(buf, buf, size_t(count), Type(dt), root, comm, s);  // in place
  });
}

void Abort() {
  Communicator& c = S();
  if (ncclComm_t live = c.live.exchange(nullptr)) {
    if (!c.failed.load()) {
      c.failure = "the run was aborted";
      c.failed.store(true);
    }
    ncclCommAbort(live);
  }
}

// At the end of a run: best effort and silent, since nothing can be reported once the process is exiting;
// a communicator that cannot be finalised is aborted instead.
void Destroy() {
  Communicator& c = S();
  std::lock_guard<std::mutex> lock(c.mu);
  ncclComm_t live = c.live.exchange(nullptr);
  if (live) {
    int current = -1;
    if (cudaGetDevice(&current) == cudaSuccess && current != c.device) cudaSetDevice(c.device);
    const bool flushed = cudaStreamSynchronize(c.stream) == cudaSuccess && ncclCommFinalize(live) == ncclSuccess;
    if (flushed) ncclCommDestroy(live);
    else ncclCommAbort(live);
    cudaGetLastError();
  }
  if (c.comm) {
    c.comm = nullptr;
    if (c.before) cudaEventDestroy(c.before);
    if (c.after) cudaEventDestroy(c.after);
    if (c.stream) cudaStreamDestroy(c.stream);
    c.before = c.after = nullptr;
    c.stream = nullptr;
    c.failure = "the NCCL communicator was destroyed (commFinalize)";
    c.failed.store(true);
  }
}

#endif  // PT_HAVE_NCCL

}  // namespace pt::nccl
