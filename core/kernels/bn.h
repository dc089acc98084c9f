/* Batch-norm kernels. x is viewed as (N, C, S) with S = H * W (S = 1 for (N, C) inputs).
 *
 * Statistics are per channel over the N * S values of that channel. gamma and beta may be
 * NULL (no affine: gamma = 1, beta = 0). Backward kernels accumulate (+=) into whichever of
 * dx, dgamma, dbeta is non-NULL. Each optimised kernel has a plain `_ref` twin. */
#ifndef MN_KERNELS_BN_H
#define MN_KERNELS_BN_H

#include <stdint.h>

#include "mn/error.h"

/* Training forward: batch mean and biased variance per channel, invstd = 1 / sqrt(var + eps),
 * y = (x - mean) * invstd * gamma + beta. */
void mn_bn_forward_train(float *y /* (N, C, S) */, float *mean /* (C) */, float *invstd /* (C) */,
                                float *var /* (C), biased */, const float *x /* (N, C, S) */,
                                const float *gamma /* (C) or NULL */, const float *beta /* (C) or NULL */,
                                int64_t n, int64_t c, int64_t s, float eps);
void mn_bn_forward_train_ref(float *y /* (N, C, S) */, float *mean /* (C) */, float *invstd /* (C) */,
                                    float *var /* (C), biased */, const float *x /* (N, C, S) */,
                                    const float *gamma /* (C) or NULL */, const float *beta /* (C) or NULL */,
                                    int64_t n, int64_t c, int64_t s, float eps);

/* The two passes of mn_bn_forward_train's statistics, for synchronised BN to add up over ranks:
 * sum (C) per channel, each image's row summed in float blocks and the rows added in double in
 * image order; sq (C) the same of (x - mean)^2 around the float mean. mn_bn_forward_train's are
 * mean = (float)(sum / M), var = (float)(sq / M) with M = N S, to the bit (tests/test_dist.c). */
void mn_bn_channel_sums(double *sum /* (C) */, const float *x /* (N, C, S) */, int64_t n, int64_t c, int64_t s);
void mn_bn_channel_sqdev(double *sq /* (C) */, const float *x /* (N, C, S) */, const float *mean /* (C) */, int64_t n,
                         int64_t c, int64_t s);

/* Normalisation with given statistics (eval mode): y = (x - mean) * invstd * gamma + beta. */
void mn_bn_forward_eval(float *y /* (N, C, S) */, const float *x /* (N, C, S) */,
                               const float *mean /* (C) */, const float *invstd /* (C) */,
                               const float *gamma /* (C) or NULL */, const float *beta /* (C) or NULL */,
                               int64_t n, int64_t c, int64_t s);
void mn_bn_forward_eval_ref(float *y /* (N, C, S) */, const float *x /* (N, C, S) */,
                                   const float *mean /* (C) */, const float *invstd /* (C) */,
                                   const float *gamma /* (C) or NULL */, const float *beta /* (C) or NULL */,
                                   int64_t n, int64_t c, int64_t s);

/* Training backward (mean and invstd are the batch statistics of the forward pass):
 * dx += gamma invstd (dy - mean(dy) - xhat mean(dy xhat)), dgamma += sum(dy xhat), dbeta += sum(dy). */
void mn_bn_backward_train(float *dx /* (N, C, S) or NULL */, float *dgamma /* (C) or NULL */,
                                 float *dbeta /* (C) or NULL */, const float *mean /* (C) */,
                                 const float *invstd /* (C) */, const float *dy /* (N, C, S) */,
                                 const float *x /* (N, C, S) */, const float *gamma /* (C) or NULL */,
                                 int64_t n, int64_t c, int64_t s);
void mn_bn_backward_train_ref(float *dx /* (N, C, S) or NULL */, float *dgamma /* (C) or NULL */,
                                     float *dbeta /* (C) or NULL */, const float *mean /* (C) */,
                                     const float *invstd /* (C) */, const float *dy /* (N, C, S) */,
                                     const float *x /* (N, C, S) */, const float *gamma /* (C) or NULL */,
                                     int64_t n, int64_t c, int64_t s);

/* Eval backward (fixed statistics, a per-channel affine map):
 * dx += dy gamma invstd, dgamma += sum(dy xhat), dbeta += sum(dy). */
void mn_bn_backward_eval(float *dx /* (N, C, S) or NULL */, float *dgamma /* (C) or NULL */,
                                float *dbeta /* (C) or NULL */, const float *mean /* (C) */,
                                const float *invstd /* (C) */, const float *dy /* (N, C, S) */,
                                const float *x /* (N, C, S) */, const float *gamma /* (C) or NULL */,
                                int64_t n, int64_t c, int64_t s);
void mn_bn_backward_eval_ref(float *dx /* (N, C, S) or NULL */, float *dgamma /* (C) or NULL */,
                                    float *dbeta /* (C) or NULL */, const float *mean /* (C) */,
                                    const float *invstd /* (C) */, const float *dy /* (N, C, S) */,
                                    const float *x /* (N, C, S) */, const float *gamma /* (C) or NULL */,
                                    int64_t n, int64_t c, int64_t s);

/* ---- batch norm followed by a clamp (ReLU: lo = 0, hi = INFINITY; ReLU6: lo = 0, hi = 6) ----
 * One pass instead of two: the forward kernels write y = clamp(bn(x), lo, hi); the backward
 * kernels take that y and let dy through where lo < y < hi (zero at both ends, as ReLU and
 * ReLU6 backward), so neither the pre-activation nor its gradient is ever stored. */

void mn_bn_forward_train_clamp(float *y /* (N, C, S) */, float *mean /* (C) */, float *invstd /* (C) */,
                                      float *var /* (C), biased */, const float *x /* (N, C, S) */,
                                      const float *gamma /* (C) or NULL */, const float *beta /* (C) or NULL */,
                                      float lo, float hi, int64_t n, int64_t c, int64_t s, float eps);
void mn_bn_forward_train_clamp_ref(float *y /* (N, C, S) */, float *mean /* (C) */, float *invstd /* (C) */,
                                          float *var /* (C), biased */, const float *x /* (N, C, S) */,
                                          const float *gamma /* (C) or NULL */, const float *beta /* (C) or NULL */,
                                          float lo, float hi, int64_t n, int64_t c, int64_t s, float eps);
void mn_bn_forward_eval_clamp(float *y /* (N, C, S) */, const float *x /* (N, C, S) */,
                                     const float *mean /* (C) */, const float *invstd /* (C) */,
                                     const float *gamma /* (C) or NULL */, const float *beta /* (C) or NULL */,
                                     float lo, float hi, int64_t n, int64_t c, int64_t s);
void mn_bn_forward_eval_clamp_ref(float *y /* (N, C, S) */, const float *x /* (N, C, S) */,
                                         const float *mean /* (C) */, const float *invstd /* (C) */,
                                         const float *gamma /* (C) or NULL */, const float *beta /* (C) or NULL */,
                                         float lo, float hi, int64_t n, int64_t c, int64_t s);
void mn_bn_backward_train_masked(float *dx /* (N, C, S) or NULL */, float *dgamma /* (C) or NULL */,
                                        float *dbeta /* (C) or NULL */, const float *mean /* (C) */,
                                        const float *invstd /* (C) */, const float *dy /* (N, C, S) */,
                                        const float *y /* (N, C, S), the clamped output */,
                                        const float *x /* (N, C, S) */, const float *gamma /* (C) or NULL */,
                                        float lo, float hi, int64_t n, int64_t c, int64_t s);
void mn_bn_backward_train_masked_ref(float *dx /* (N, C, S) or NULL */, float *dgamma /* (C) or NULL */,
                                            float *dbeta /* (C) or NULL */, const float *mean /* (C) */,
                                            const float *invstd /* (C) */, const float *dy /* (N, C, S) */,
                                            const float *y /* (N, C, S), the clamped output */,
                                            const float *x /* (N, C, S) */, const float *gamma /* (C) or NULL */,
                                            float lo, float hi, int64_t n, int64_t c, int64_t s);
void mn_bn_backward_eval_masked(float *dx /* (N, C, S) or NULL */, float *dgamma /* (C) or NULL */,
                                       float *dbeta /* (C) or NULL */, const float *mean /* (C) */,
                                       const float *invstd /* (C) */, const float *dy /* (N, C, S) */,
                                       const float *y /* (N, C, S), the clamped output */,
                                       const float *x /* (N, C, S) */, const float *gamma /* (C) or NULL */,
                                       float lo, float hi, int64_t n, int64_t c, int64_t s);
void mn_bn_backward_eval_masked_ref(float *dx /* (N, C, S) or NULL */, float *dgamma /* (C) or NULL */,
                                           float *dbeta /* (C) or NULL */, const float *mean /* (C) */,
                                           const float *invstd /* (C) */, const float *dy /* (N, C, S) */,
                                           const float *y /* (N, C, S), the clamped output */,
                                           const float *x /* (N, C, S) */, const float *gamma /* (C) or NULL */,
                                           float lo, float hi, int64_t n, int64_t c, int64_t s);

#endif
