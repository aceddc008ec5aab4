// comm.h: the MPI side of data-parallel runs (comm.cc): whether this build and process have MPI, starting it,
// and the collective ops (those on CUDA tensors go through nccl.h).
#pragma once
#include <napi.h>

#include <cstdint>
#include <string>

namespace pt {

struct MpiStatus {
  bool built = false;      // pajama_mpi.so was built (CMake found MPI)
  std::string reason;      // why not, when !built
  std::string launcher;    // the environment variable that shows an MPI launcher started us, or ""
  bool initialized = false;
  int rank = 0, size = 1, localRank = 0, threadLevel = 0;
  std::string library;     // e.g. "Open MPI v4.1.4"
};

std::string MpiLauncher();
MpiStatus GetMpiStatus();
// Starts MPI when an MPI launcher started this process (idempotent); otherwise a world of one.
MpiStatus InitMpi();
void AbortMpi(int code);
void FinalizeMpi();
// MPI_Bcast of `bytes` from `root` on the calling thread (nccl.cc sends its unique id with it); an argument
// error naming `op` where MPI is not initialised, an Engine error when MPI fails.
void MpiBroadcast(void* buf, int64_t bytes, int root, const std::string& op);
void RegisterComm(Napi::Env env, Napi::Object exports);

}  // namespace pt
