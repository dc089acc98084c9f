/* xoshiro256** (Blackman & Vigna), seeded and split through splitmix64. */
#include <math.h>

#include "mn/rng.h"

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void mn_rng_seed(mn_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

mn_rng mn_rng_split(const mn_rng *parent, uint64_t stream)
{
    /* hash the parent's whole state with the stream id; distinct ids give unrelated streams */
    uint64_t x = stream * 0xd1342543de82ef95ull;
    for (int i = 0; i < 4; i++) {
        x ^= parent->s[i];
        x = splitmix64(&x);
    }
    mn_rng c;
    mn_rng_seed(&c, x);
    return c;
}

uint64_t mn_rng_u64(mn_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t mn_rng_u32(mn_rng *r) { return (uint32_t)(mn_rng_u64(r) >> 32); }

float mn_rng_uniform(mn_rng *r) { return (float)(mn_rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

float mn_rng_range(mn_rng *r, float lo, float hi) { return lo + (hi - lo) * mn_rng_uniform(r); }

int mn_rng_int(mn_rng *r, int lo, int hi)
{
    if (hi <= lo) return lo;
    uint64_t span = (uint64_t)((int64_t)hi - lo) + 1;
    uint64_t limit = UINT64_MAX - UINT64_MAX % span; /* reject the biased tail */
    uint64_t v;
    do v = mn_rng_u64(r);
    while (v >= limit);
    return (int)((int64_t)lo + (int64_t)(v % span));
}

float mn_rng_normal(mn_rng *r)
{
    double u1 = ((double)(mn_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double u2 = (double)(mn_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void mn_rng_shuffle(mn_rng *r, int *v, int n)
{
    for (int i = n - 1; i > 0; i--) {
        int j = mn_rng_int(r, 0, i);
        int tmp = v[i];
        v[i] = v[j];
        v[j] = tmp;
    }
}
