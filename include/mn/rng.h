/* Explicit, seedable, splittable random number generator (xoshiro256**, seeded by splitmix64).
 *
 * There is no global generator: every function that draws random numbers takes an mn_rng.
 * mn_rng_split derives an independent stream from a parent and a stream id without advancing
 * the parent, so per-thread or per-sample generators are deterministic whatever the schedule. */
#ifndef MN_RNG_H
#define MN_RNG_H

#include <stdint.h>
#include "error.h"

typedef struct mn_rng {
    uint64_t s[4];
} mn_rng;

MN_API void mn_rng_seed(mn_rng *r, uint64_t seed);
/* A child stream determined by (parent state, stream); the parent is not advanced. */
MN_API mn_rng mn_rng_split(const mn_rng *parent, uint64_t stream);
MN_API uint64_t mn_rng_u64(mn_rng *r);
MN_API uint32_t mn_rng_u32(mn_rng *r);
/* Uniform in [0, 1) with 24 random bits. */
MN_API float mn_rng_uniform(mn_rng *r);
/* Uniform in [lo, hi). */
MN_API float mn_rng_range(mn_rng *r, float lo, float hi);
/* Uniform integer in [lo, hi], both ends included; unbiased. */
MN_API int mn_rng_int(mn_rng *r, int lo, int hi);
/* Standard normal (Box-Muller on two uniforms; one value per call). */
MN_API float mn_rng_normal(mn_rng *r);
/* Fisher-Yates shuffle of n ints. */
MN_API void mn_rng_shuffle(mn_rng *r, int *v, int n);

#endif
