/* checksum.c: XXH3-64 from libxxhash (Debian libxxhash-dev). */
#include "util/checksum.h"
#include "metacenter/error.h"

#include <xxhash.h>

uint64_t mc_checksum64(const void *data, size_t len)
{
    return XXH3_64bits(data, len);
}

uint64_t mc_checksum64_seed(const void *data, size_t len, uint64_t seed)
{
    return XXH3_64bits_withSeed(data, len, seed);
}

int mc_digest_init(struct mc_digest *d)
{
    XXH3_state_t *s = XXH3_createState();
    if (!s) {
        return MC_ENOMEM;
    }
    XXH3_64bits_reset(s);
    d->state = s;
    return 0;
}

void mc_digest_update(struct mc_digest *d, const void *data, size_t len)
{
    XXH3_64bits_update(d->state, data, len);
}

uint64_t mc_digest_final(struct mc_digest *d)
{
    uint64_t h = XXH3_64bits_digest(d->state);
    mc_digest_free(d);
    return h;
}

void mc_digest_free(struct mc_digest *d)
{
    if (d->state) {
        XXH3_freeState(d->state);
        d->state = NULL;
    }
}
