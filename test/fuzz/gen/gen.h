/* gen.h: shared helpers of the seed-corpus generator (gen_corpus.c, gen_storage.c). */
#ifndef MC_FUZZ_GEN_H
#define MC_FUZZ_GEN_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#define GEN_CHECK(expr)                                                                            \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0) {                                                                            \
            fprintf(stderr, "gen_corpus: %s failed: %d at %s:%d\n", #expr, rc_, __FILE__,          \
                    __LINE__);                                                                     \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Write [prefix byte if >= 0] + data to ROOT/target/name. */
void gen_emit(const char *target, const char *name, int prefix, const void *data, size_t len);
/* Storage seeds (wal, snap); tmp is a scratch directory. Weak: gen_storage.c is only linked
 * when the storage module exists. */
void gen_storage(const char *tmp) __attribute__((weak));

#endif
