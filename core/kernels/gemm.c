#include <cblas.h>

#include "core/kernels/gemm.h"

void mn_gemm(float *c, const float *a, const float *b, int m, int n, int k, int lda, int ldb, int ldc,
             bool trans_a, bool trans_b, bool accumulate)
{
    if (m <= 0 || n <= 0) return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k,
                1.0f, a, lda, b, ldb, accumulate ? 1.0f : 0.0f, c, ldc);
}

void mn_gemm_ref(float *c, const float *a, const float *b, int m, int n, int k, int lda, int ldb, int ldc,
                 bool trans_a, bool trans_b, bool accumulate)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                float av = trans_a ? a[(long)p * lda + i] : a[(long)i * lda + p];
                float bv = trans_b ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
                s += (double)av * bv;
            }
            float *cij = &c[(long)i * ldc + j];
            *cij = accumulate ? *cij + (float)s : (float)s;
        }
}
