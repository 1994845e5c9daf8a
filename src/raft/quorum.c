/* quorum.c: majority arithmetic over a configuration, joint-aware (thesis §4.3), learners excluded.
 */
#include "raft/raft_int.h"

/* Majority value of one voter set: the largest v such that a majority has value >= v. */
static uint64_t majority_value(const struct mc_raft *r, const uint64_t *ids, uint32_t n,
                               quorum_value_fn fn)
{
    uint64_t v[MC_RAFT_MAX_NODES];
    if (n == 0) {
        return UINT64_MAX; /* an empty half imposes no constraint (joint with empty outgoing) */
    }
    assert(n <= MC_RAFT_MAX_NODES);
    for (uint32_t i = 0; i < n; i++) {
        v[i] = fn(r, ids[i]);
    }
    /* Insertion sort, descending: n <= 16. */
    for (uint32_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        uint32_t j = i;
        while (j > 0 && v[j - 1] < x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return v[n / 2]; /* the (n/2+1)-th largest: held by a majority */
}

uint64_t quorum_committed(const struct mc_raft *r, const struct mc_raft_conf *c, quorum_value_fn fn)
{
    if (c->n_voters == 0) {
        return 0;
    }
    uint64_t a = majority_value(r, c->voters, c->n_voters, fn);
    uint64_t b = majority_value(r, c->voters_outgoing, c->n_voters_outgoing, fn);
    return a < b ? a : b;
}

static enum vote_result half_result(const uint64_t *ids, uint32_t n, const uint64_t *granted,
                                    uint32_t n_granted, const uint64_t *rejected,
                                    uint32_t n_rejected)
{
    if (n == 0) {
        return VOTE_WON;
    }
    uint32_t yes = 0, no = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (conf_contains(granted, n_granted, ids[i])) {
            yes++;
        } else if (conf_contains(rejected, n_rejected, ids[i])) {
            no++;
        }
    }
    uint32_t q = n / 2 + 1;
    if (yes >= q) {
        return VOTE_WON;
    }
    if (n - no < q) {
        return VOTE_LOST;
    }
    return VOTE_PENDING;
}

enum vote_result quorum_vote_result(const struct mc_raft_conf *c, const uint64_t *granted,
                                    uint32_t n_granted, const uint64_t *rejected,
                                    uint32_t n_rejected)
{
    if (c->n_voters == 0) {
        return VOTE_LOST;
    }
    enum vote_result a =
        half_result(c->voters, c->n_voters, granted, n_granted, rejected, n_rejected);
    enum vote_result b = half_result(c->voters_outgoing, c->n_voters_outgoing, granted, n_granted,
                                     rejected, n_rejected);
    if (a == VOTE_LOST || b == VOTE_LOST) {
        return VOTE_LOST;
    }
    if (a == VOTE_WON && b == VOTE_WON) {
        return VOTE_WON;
    }
    return VOTE_PENDING;
}

bool quorum_has(const struct mc_raft_conf *c, const uint64_t *ids, uint32_t n)
{
    return quorum_vote_result(c, ids, n, NULL, 0) == VOTE_WON;
}
