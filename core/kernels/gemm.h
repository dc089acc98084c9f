/* Single-precision GEMM: a thin wrapper over cblas_sgemm and its plain reference twin.
 *
 * Row-major throughout. C = op(A) op(B), or C += op(A) op(B) when accumulate is set, where
 * op(X) is X or its transpose. Leading dimensions are in elements and may exceed the used
 * width, so a channel-prefix view of a full-width weight is passed as-is with the full
 * row stride. Dimensions fit in int because that is what CBLAS takes. */
#ifndef MN_KERNELS_GEMM_H
#define MN_KERNELS_GEMM_H

#include <stdbool.h>

#include "mn/error.h"

/* c (M, N), row stride ldc;
 * a (M, K) with row stride lda, or (K, M) when trans_a;
 * b (K, N) with row stride ldb, or (N, K) when trans_b.
 * Called inside an OpenMP parallel region, OpenBLAS runs single-threaded, so callers either
 * parallelise their own loop around small GEMMs or make one large call and let BLAS thread. */
void mn_gemm(float *c, const float *a, const float *b, int m, int n, int k, int lda, int ldb, int ldc,
                    bool trans_a, bool trans_b, bool accumulate);
/* The same by three plain loops with a double accumulator (tests and checks only). */
void mn_gemm_ref(float *c, const float *a, const float *b, int m, int n, int k, int lda, int ldb, int ldc,
                        bool trans_a, bool trans_b, bool accumulate);

#endif
