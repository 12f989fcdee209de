// OpenBLAS's cblas.h (with openblas_set_num_threads, openblas_get_corename) and LAPACKE.
// Debian points liblapack.so.3 at OpenBLAS, so LAPACKE's factorizations run in OpenBLAS too.
#ifndef QDIST_CBLAS_SHIM_H
#define QDIST_CBLAS_SHIM_H
#include <cblas.h>
#include <lapacke.h>
#endif
