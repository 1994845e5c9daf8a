/* raft_test_util.h: shared set-up for the Raft core's unit tests. */
#ifndef MC_RAFT_TEST_UTIL_H
#define MC_RAFT_TEST_UTIL_H

#include "metacenter/raft.h"

#include <string.h>

/* A config for node `id` of the voters {1, 2, 3}, everything else default. */
static inline struct mc_raft_config cfg3(uint64_t id)
{
    static const uint64_t voters[] = {1, 2, 3};
    struct mc_raft_config c;
    memset(&c, 0, sizeof(c));
    c.id = id;
    c.initial_voters = voters;
    c.n_initial_voters = 3;
    return c;
}

#endif
