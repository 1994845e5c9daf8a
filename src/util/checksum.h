/* checksum.h: 64-bit checksums (XXH3) for WAL records, snapshots and state hashes. */
#ifndef MC_UTIL_CHECKSUM_H
#define MC_UTIL_CHECKSUM_H

#include <stddef.h>
#include <stdint.h>

uint64_t mc_checksum64(const void *data, size_t len);
uint64_t mc_checksum64_seed(const void *data, size_t len, uint64_t seed);

/* Streaming digest, for large files and the engine state hash. */
struct mc_digest {
    void *state; /* XXH3_state_t */
};
int mc_digest_init(struct mc_digest *d);
void mc_digest_update(struct mc_digest *d, const void *data, size_t len);
uint64_t mc_digest_final(struct mc_digest *d); /* also frees; d must be re-inited to reuse */
void mc_digest_free(struct mc_digest *d);

#endif
