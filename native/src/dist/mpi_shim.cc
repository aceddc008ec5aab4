// mpi_shim.cc: pajama_mpi.so, the only code that links MPI (see mpi_api.h). Built by CMake when it finds an
// MPI (Debian: libopenmpi-dev); loaded by the addon only in processes started by an MPI launcher.
// The C interface only: the C++ bindings of some MPIs would need their own library.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <cstring>

#include "mpi_api.h"

namespace {

void Text(int code, char* err, size_t errLen) {
  if (!err || errLen == 0) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, msg, &len) != MPI_SUCCESS) std::snprintf(msg, sizeof msg, "MPI error %d", code);
  std::snprintf(err, errLen, "%s", msg);
}

#define PT_MPI(call)                  \
  do {                                \
    int pt_rc_ = (call);              \
    if (pt_rc_ != MPI_SUCCESS) {      \
      Text(pt_rc_, err, errLen);      \
      return pt_rc_;                  \
    }                                 \
  } while (0)

MPI_Datatype Type(int dtype) {
  switch (dtype) {
    case PT_MPI_F32: return MPI_FLOAT;
    case PT_MPI_F64: return MPI_DOUBLE;
    case PT_MPI_I32: return MPI_INT32_T;
    case PT_MPI_U8: return MPI_UINT8_T;
    case PT_MPI_I64: return MPI_INT64_T;
    case PT_MPI_U16: return MPI_UINT16_T;
  }
  return MPI_DATATYPE_NULL;
}

size_t Size(int dtype) {
  return dtype == PT_MPI_F64 || dtype == PT_MPI_I64 ? 8 : dtype == PT_MPI_U8 ? 1 : dtype == PT_MPI_U16 ? 2 : 4;
}

MPI_Op Op(int op) { return op == PT_MPI_MAX ? MPI_MAX : op == PT_MPI_MIN ? MPI_MIN : MPI_SUM; }

int BadCount(const char* what, int64_t n, char* err, size_t errLen) {
  std::snprintf(err, errLen, "%s: %lld elements per rank is more than one MPI call can move (%d)", what,
                static_cast<long long>(n), INT_MAX);
  return MPI_ERR_COUNT;
}

// Pieces of at most this many elements (a multiple of 64) per MPI call.
constexpr int64_t kPiece = (int64_t(INT_MAX) / 64) * 64;

int Init(int* rank, int* size, int* localRank, int* threadLevel, char* err, size_t errLen) {
  int inited = 0;
  PT_MPI(MPI_Initialized(&inited));
  if (!inited) {
    int provided = 0;
    PT_MPI(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided));
    *threadLevel = provided;
  } else {
    PT_MPI(MPI_Query_thread(threadLevel));
  }
  PT_MPI(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  PT_MPI(MPI_Comm_rank(MPI_COMM_WORLD, rank));
  PT_MPI(MPI_Comm_size(MPI_COMM_WORLD, size));
  MPI_Comm node;
  PT_MPI(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, *rank, MPI_INFO_NULL, &node));
  PT_MPI(MPI_Comm_set_errhandler(node, MPI_ERRORS_RETURN));
  PT_MPI(MPI_Comm_rank(node, localRank));
  PT_MPI(MPI_Comm_free(&node));
  if (*threadLevel < MPI_THREAD_SERIALIZED) {
    std::snprintf(err, errLen, "the MPI library provides thread level %d; MPI_THREAD_SERIALIZED (%d) is needed",
                  *threadLevel, MPI_THREAD_SERIALIZED);
    return MPI_ERR_OTHER;
  }
  return 0;
}

int AllReduce(void* buf, int64_t count, int dtype, int op, char* err, size_t errLen) {
  char* p = static_cast<char*>(buf);
  for (int64_t done = 0; done < count; done += kPiece) {
    const int n = int(count - done < kPiece ? count - done : kPiece);
    PT_MPI(MPI_Allreduce(MPI_IN_PLACE, p + done * Size(dtype), n, Type(dtype), Op(op), MPI_COMM_WORLD));
  }
  return 0;
}

int ReduceScatter(const void* in, void* out, int64_t countPerRank, int dtype, int op, char* err, size_t errLen) {
  if (countPerRank > INT_MAX) return BadCount("reduceScatter", countPerRank, err, errLen);
  PT_MPI(MPI_Reduce_scatter_block(in, out, int(countPerRank), Type(dtype), Op(op), MPI_COMM_WORLD));
  return 0;
}

int AllGather(const void* in, void* out, int64_t countPerRank, int dtype, char* err, size_t errLen) {
  if (countPerRank > INT_MAX) return BadCount("allGather", countPerRank, err, errLen);
  // `in` already at this rank's place in `out` (a shard gathered into the arena it is a view of): MPI must be
  // told (MPI_IN_PLACE), as buffers may not overlap otherwise.
  int rank = 0;
  PT_MPI(MPI_Comm_rank(MPI_COMM_WORLD, &rank));
  const bool inPlace = in == static_cast<const char*>(out) + int64_t(rank) * countPerRank * int64_t(Size(dtype));
  PT_MPI(MPI_Allgather(inPlace ? MPI_IN_PLACE : in, int(countPerRank), Type(dtype), out, int(countPerRank), Type(dtype),
                       MPI_COMM_WORLD));
  return 0;
}

int Broadcast(void* buf, int64_t bytes, int root, char* err, size_t errLen) {
  char* p = static_cast<char*>(buf);
  for (int64_t done = 0; done < bytes; done += kPiece) {
    const int n = int(bytes - done < kPiece ? bytes - done : kPiece);
    PT_MPI(MPI_Bcast(p + done, n, MPI_BYTE, root, MPI_COMM_WORLD));
  }
  return 0;
}

int Barrier(char* err, size_t errLen) {
  PT_MPI(MPI_Barrier(MPI_COMM_WORLD));
  return 0;
}

void Abort(int code) { MPI_Abort(MPI_COMM_WORLD, code); }

int Finalize() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  return finalized ? 0 : MPI_Finalize();
}

void LibraryVersion(char* out, size_t outLen) {
  char v[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  if (MPI_Get_library_version(v, &len) != MPI_SUCCESS) v[0] = 0;
  char* nl = std::strchr(v, '\n');
  if (nl) *nl = 0;
  char* comma = std::strchr(v, ',');  // "Open MPI v4.1.4, package: ..." -> "Open MPI v4.1.4"
  if (comma) *comma = 0;
  std::snprintf(out, outLen, "%s", v);
}

const PtMpiApi kApi = {PT_MPI_API_VERSION, Init, AllReduce, ReduceScatter, AllGather, Broadcast, Barrier,
                       Abort,              Finalize, LibraryVersion};

}  // namespace

extern "C" __attribute__((visibility("default"))) const PtMpiApi* pt_mpi_api(void) { return &kApi; }
