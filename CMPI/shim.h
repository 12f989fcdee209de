// Open MPI exposes its handles (MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM, MPI_IN_PLACE, ...) as macros
// that expand to casts of global addresses; Swift cannot import those, so they are returned by
// static inline functions here. Calling them before MPI_Init is fine: they are only addresses.
#ifndef QDIST_CMPI_SHIM_H
#define QDIST_CMPI_SHIM_H
#include <mpi.h>

static inline MPI_Comm qdist_mpi_comm_world(void) { return MPI_COMM_WORLD; }
static inline MPI_Datatype qdist_mpi_byte(void) { return MPI_BYTE; }
static inline MPI_Datatype qdist_mpi_float(void) { return MPI_FLOAT; }
static inline MPI_Datatype qdist_mpi_double(void) { return MPI_DOUBLE; }
static inline MPI_Datatype qdist_mpi_int32(void) { return MPI_INT32_T; }
static inline MPI_Datatype qdist_mpi_int64(void) { return MPI_INT64_T; }
static inline MPI_Datatype qdist_mpi_uint8(void) { return MPI_UINT8_T; }
static inline MPI_Datatype qdist_mpi_uint16(void) { return MPI_UINT16_T; }
static inline MPI_Datatype qdist_mpi_uint32(void) { return MPI_UINT32_T; }
static inline MPI_Comm qdist_mpi_comm_null(void) { return MPI_COMM_NULL; }
static inline MPI_Info qdist_mpi_info_null(void) { return MPI_INFO_NULL; }
static inline MPI_Errhandler qdist_mpi_errors_return(void) { return MPI_ERRORS_RETURN; }
static inline int qdist_mpi_comm_type_shared(void) { return MPI_COMM_TYPE_SHARED; }
static inline int qdist_mpi_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
static inline int qdist_mpi_max_library_version_string(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
static inline int qdist_mpi_max_processor_name(void) { return MPI_MAX_PROCESSOR_NAME; }
static inline int qdist_mpi_thread_single(void) { return MPI_THREAD_SINGLE; }
static inline int qdist_mpi_thread_funneled(void) { return MPI_THREAD_FUNNELED; }
static inline int qdist_mpi_thread_serialized(void) { return MPI_THREAD_SERIALIZED; }
static inline int qdist_mpi_thread_multiple(void) { return MPI_THREAD_MULTIPLE; }
static inline MPI_Op qdist_mpi_sum(void) { return MPI_SUM; }
static inline MPI_Op qdist_mpi_max(void) { return MPI_MAX; }
static inline MPI_Op qdist_mpi_min(void) { return MPI_MIN; }
static inline void *qdist_mpi_in_place(void) { return MPI_IN_PLACE; }
static inline MPI_Status *qdist_mpi_status_ignore(void) { return MPI_STATUS_IGNORE; }
static inline int qdist_mpi_any_source(void) { return MPI_ANY_SOURCE; }
static inline int qdist_ompi_major(void) { return OMPI_MAJOR_VERSION; }
static inline int qdist_ompi_minor(void) { return OMPI_MINOR_VERSION; }
static inline int qdist_ompi_release(void) { return OMPI_RELEASE_VERSION; }

#endif
