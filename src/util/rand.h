/* rand.h: small seeded PRNG (xoshiro256**) for the simulator, tests and election jitter. */
#ifndef MC_UTIL_RAND_H
#define MC_UTIL_RAND_H

#include <stdint.h>

struct mc_rand {
    uint64_t s[4];
};

void mc_rand_seed(struct mc_rand *r, uint64_t seed);
uint64_t mc_rand_next(struct mc_rand *r);
/* Uniform in [0, n); n > 0. */
uint64_t mc_rand_below(struct mc_rand *r, uint64_t n);
/* True with probability num/den. */
int mc_rand_chance(struct mc_rand *r, uint64_t num, uint64_t den);

#endif
