// comm.h: the MPI side of data-parallel runs (comm.cc): whether this build and process have MPI, starting it,
// and the collective ops.
#pragma once
#include <napi.h>

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
void RegisterComm(Napi::Env env, Napi::Object exports);

}  // namespace pt
