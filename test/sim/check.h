/* check.h: the cluster-wide safety checker (Raft paper Figure 3 properties plus read freshness). */
#ifndef MC_SIM_CHECK_H
#define MC_SIM_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest violation message kept. */
#define SIM_CHECK_MSG_BYTES 256

struct sim_kv; /* u64/u128 -> u64 open-addressing map, private to check.c */

struct sim_committed {
    uint64_t term;        /* the entry's term */
    uint64_t commit_term; /* lowest term in which any node reported it committed (>= the term
                             whose leader committed it) */
    uint64_t chain;       /* hash of the whole log prefix 1..index (Log Matching makes it unique) */
};

/*
 * Every property is checked incrementally as the cluster reports events, so the cost per step is
 * O(events in the step), never O(log length x nodes).
 */
struct sim_check {
    struct sim_kv *term_leader; /* term -> leader id: Election Safety */
    struct sim_kv *entry_chain; /* (index, term) -> prefix chain: Log Matching */
    struct sim_committed
        *committed; /* [index]: what the cluster has committed (State Machine Safety) */
    size_t committed_cap;
    uint64_t commit_max;      /* highest index known committed anywhere */
    uint64_t acked_write_max; /* highest log index of a write acknowledged to a client */
    uint64_t violations;
    char msg[SIM_CHECK_MSG_BYTES]; /* first violation */
};

void sim_check_init(struct sim_check *c);
void sim_check_free(struct sim_check *c);

/* Chain hash of a prefix: chain(i) = H(chain(i-1), index, term, payload hash). chain(0) = 0. */
uint64_t sim_chain_next(uint64_t prev_chain, uint64_t index, uint64_t term, uint64_t payload_hash);

/* Each returns true when the property holds; otherwise records the first violation in c->msg. */
bool sim_check_leader(struct sim_check *c, uint64_t term, uint32_t id);
bool sim_check_log_entry(struct sim_check *c, uint32_t id, uint64_t index, uint64_t term,
                         uint64_t chain);
/* Node `id`, in term node_term, learned that index (term, chain) is committed (its commit index
 * moved, or it applied it). */
bool sim_check_committed(struct sim_check *c, uint32_t id, uint64_t node_term, uint64_t index,
                         uint64_t term, uint64_t chain, const char *how);
/* Highest committed index that every leader of term leader_term must hold (Leader Completeness:
 * entries committed in an earlier term), or 0. */
uint64_t sim_check_must_hold(const struct sim_check *c, uint64_t leader_term);
/* Committed entry at index, or NULL when not known committed. */
const struct sim_committed *sim_check_get_committed(const struct sim_check *c, uint64_t index);
/* Record a failure found by the caller (e.g. liveness, read freshness). printf-style. */
bool sim_check_fail(struct sim_check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
