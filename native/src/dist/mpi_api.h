// mpi_api.h: the C interface between the addon and pajama_mpi.so, the small library that links MPI.
// The addon never links MPI itself: a process started without mpirun/srun loads no MPI at all, and a
// machine without the MPI runtime still loads the addon. When the process was launched by an MPI launcher,
// comm.cc dlopen()s pajama_mpi.so (built next to the addon when CMake finds MPI) and calls through this table.
// Every function returns 0 on success, or an MPI error code with its text in `err` (NUL-terminated).
#pragma once
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// PT_MPI_U16 moves 16-bit elements (bf16 tensors) in allgather and broadcast; it is never reduced.
enum PtMpiDType { PT_MPI_F32 = 0, PT_MPI_F64 = 1, PT_MPI_I32 = 2, PT_MPI_U8 = 3, PT_MPI_I64 = 4, PT_MPI_U16 = 5 };
enum PtMpiOp { PT_MPI_SUM = 0, PT_MPI_MAX = 1, PT_MPI_MIN = 2 };

#define PT_MPI_API_VERSION 2

typedef struct PtMpiApi {
  int version;  // PT_MPI_API_VERSION
  // MPI_Init_thread (MPI_THREAD_MULTIPLE wanted, MPI_THREAD_SERIALIZED required: collectives run on the addon's
  // worker thread, abort may come from the JavaScript thread); errors return instead of aborting.
  int (*init)(int* rank, int* size, int* localRank, int* threadLevel, char* err, size_t errLen);
  // In place over `count` elements (any count: split into int-sized pieces).
  int (*allreduce)(void* buf, int64_t count, int dtype, int op, char* err, size_t errLen);
  // in: size * countPerRank elements, out: countPerRank (this rank's block of the reduction).
  int (*reduce_scatter)(const void* in, void* out, int64_t countPerRank, int dtype, int op, char* err, size_t errLen);
  // in: countPerRank elements, out: size * countPerRank (rank r's block at r * countPerRank); `in` may be this
  // rank's block of `out` (in place), but may not overlap it otherwise.
  int (*allgather)(const void* in, void* out, int64_t countPerRank, int dtype, char* err, size_t errLen);
  int (*broadcast)(void* buf, int64_t bytes, int root, char* err, size_t errLen);
  int (*barrier)(char* err, size_t errLen);
  void (*abort)(int code);
  int (*finalize)(void);
  // The MPI library's own version string (MPI_Get_library_version), first line.
  void (*library_version)(char* out, size_t outLen);
} PtMpiApi;

// The one exported symbol of pajama_mpi.so.
const PtMpiApi* pt_mpi_api(void);

#ifdef __cplusplus
}
#endif
