// nccl.h (ours, not NVIDIA's <nccl.h>, which nccl.cc includes with angle brackets): collectives on CUDA
// tensors over NCCL, for comm.cc's builders. Compiled in every build; the NCCL calls only where CMake found
// CUDA and NCCL (PT_HAVE_NCCL), elsewhere Built() is false and Reason() says why.
//
// One NCCL communicator per process, made at the first CUDA collective (on the worker thread, where every
// collective runs): rank 0 makes the unique id, MPI broadcasts it (comm.cc), and every rank joins with
// ncclCommInitRank on its device (Device()). Each collective is queued on the communicator's own stream,
// ordered with the compute stream of the device by events on both sides (nccl.cc), and returns once queued.
#pragma once
#include <cstdint>
#include <string>

#include "../common.h"

typedef struct CUstream_st* cudaStream_t;

namespace pt::nccl {

bool Built();
const char* Reason();  // "" when Built()

// The CUDA device this rank's communicator uses: cuda:localRank, or cuda:0 when the process sees exactly one
// device (a launcher that gives each rank its own GPU through CUDA_VISIBLE_DEVICES). An argument error naming
// `op` when neither holds.
int Device(const std::string& op);

enum class Reduce { Sum, Max, Min };

// All four take element counts and the tensors' dtype (f32, bf16 or i32); `compute` is the device's compute
// stream (cuda::Stream(device)), which waits for the collective before running anything queued after it.
// Failures are Engine PtErrors naming `op` and NCCL's error text.
void AllReduce(const std::string& op, cudaStream_t compute, void* buf, int64_t count, DType dt, Reduce r);
// inp: worldSize * countPerRank elements, out: countPerRank.
void ReduceScatter(const std::string& op, cudaStream_t compute, const void* inp, void* out, int64_t countPerRank,
                   DType dt, Reduce r);
// inp: countPerRank elements, out: worldSize * countPerRank.
void AllGather(const std::string& op, cudaStream_t compute, const void* inp, void* out, int64_t countPerRank,
               DType dt);
void Broadcast(const std::string& op, cudaStream_t compute, void* buf, int64_t count, DType dt, int root);

// ncclCommAbort of the communicator, if one was made: unblocks NCCL kernels waiting for a rank that is gone
// (comm.cc's abort path calls it before MPI_Abort). Safe from any thread, and without NCCL.
void Abort();
// Waits for the communicator's stream and destroys it (before MPI_Finalize); a no-op without one.
void Destroy();

}  // namespace pt::nccl
