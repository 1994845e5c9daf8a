/* gen.h: generator of realistic concurrent register histories for testing the checker. */
#ifndef MC_LINCHECK_GEN_H
#define MC_LINCHECK_GEN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct mc_lincheck_gen_opts {
    uint64_t seed;
    size_t ops;            /* completed (ok/fail/info) operations to emit */
    unsigned keys;         /* default 10 */
    unsigned processes;    /* default 8 */
    unsigned info_percent; /* ops whose outcome is reported as unknown */
    int violation;         /* append a stale read of key k0 at the end */
};

/* Write a JSONL history (linearizable unless violation is set). 0 or MC_EIO/MC_ENOMEM/MC_EINVAL. */
int mc_lincheck_generate(FILE *out, const struct mc_lincheck_gen_opts *o);

#endif
