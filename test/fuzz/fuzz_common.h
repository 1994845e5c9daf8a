/* fuzz_common.h: assertion and byte-comparison helpers shared by the libFuzzer targets. */
#ifndef MC_FUZZ_COMMON_H
#define MC_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/codec.h"

/* A broken invariant is a finding: print why and abort so libFuzzer saves the input. */
#define FUZZ_ASSERT(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "FUZZ ASSERTION FAILED at %s:%d: %s: ", __FILE__, __LINE__, #cond);    \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Index of the first differing byte of two buffers, or -1 when equal (lengths included). */
static inline long fuzz_first_diff(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i]) {
            return (long)i;
        }
    }
    return alen == blen ? -1 : (long)n;
}

/* Assert that what an encoder wrote into w is byte-identical to the accepted input. */
#define FUZZ_ASSERT_SAME_BYTES(what, w, in, inlen)                                                 \
    do {                                                                                           \
        long d_ = fuzz_first_diff((w)->data, (w)->len, (in), (inlen));                             \
        FUZZ_ASSERT(d_ < 0,                                                                        \
                    "%s: re-encoding (%zu bytes) differs from the accepted input "                 \
                    "(%zu bytes) at byte %ld",                                                     \
                    (what), (w)->len, (size_t)(inlen), d_);                                        \
    } while (0)

/*
 * Known open bugs (test/fuzz/BUGS.md) that only make a decoder lenient, not unsafe, are
 * tolerated so fuzzing can go on looking for other bugs; MC_FUZZ_STRICT=1 in the environment
 * turns the tolerance off (to confirm a fix, or replay test/fuzz/regressions/<target>/open-*).
 */
static inline int fuzz_strict(void)
{
    static int strict = -1;
    if (strict < 0) {
        const char *e = getenv("MC_FUZZ_STRICT");
        strict = e && *e && *e != '0';
    }
    return strict;
}

/* Two possibly-NULL C strings are equal (NULL == NULL only). */
static inline int fuzz_str_eq(const char *a, const char *b)
{
    if (!a || !b) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

#endif
