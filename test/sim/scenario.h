/* scenario.h: small helpers for the Criterion scenario tests (test/unit/test_scenario_*.c). */
#ifndef MC_SIM_SCENARIO_H
#define MC_SIM_SCENARIO_H

#include "cluster.h"

#include <criterion/criterion.h>
#include <stdlib.h>

/* A cluster of `nodes` voters on a clean network (1-3 ms delay). SIM_VERBOSE=1 prints traces. */
static inline struct sim_cluster *scn_new_opts(struct sim_opts *o)
{
    if (getenv("SIM_VERBOSE")) {
        o->verbose = stderr;
    }
    struct sim_cluster *c = sim_cluster_new(o);
    cr_assert_not_null(c);
    c->net.faults.delay_min_ms = 1;
    c->net.faults.delay_max_ms = 3;
    return c;
}

static inline struct sim_cluster *scn_new(uint32_t nodes, uint64_t seed)
{
    struct sim_opts o;
    sim_opts_defaults(&o);
    o.nodes = nodes;
    o.seed = seed;
    return scn_new_opts(&o);
}

/* Every safety check held so far. */
#define scn_assert_ok(c) cr_assert(sim_ok(c), "violation: %s", (c)->check.msg)

/* Cut every link between the nodes in grp[0..n) and everyone else, both ways. */
static inline void scn_split(struct sim_cluster *c, const uint32_t *grp, uint32_t n)
{
    bool in[SIM_MAX_NODE_ID + 1] = {0};
    for (uint32_t i = 0; i < n; i++) {
        in[grp[i]] = true;
    }
    for (uint32_t a = 1; a <= SIM_MAX_NODE_ID; a++) {
        for (uint32_t b = 1; b <= SIM_MAX_NODE_ID; b++) {
            if (in[a] != in[b]) {
                sim_net_block(&c->net, a, b);
            }
        }
    }
}

/* The k-th (0-based) up node that is not in skip[0..n). */
static inline uint32_t scn_pick(struct sim_cluster *c, uint32_t k, const uint32_t *skip, uint32_t n)
{
    for (uint32_t id = 1; id <= c->max_id; id++) {
        bool skipped = false;
        for (uint32_t i = 0; i < n; i++) {
            skipped |= skip[i] == id;
        }
        if (!skipped && c->nodes[id].exists && c->nodes[id].up && k-- == 0) {
            return id;
        }
    }
    return 0;
}

/* Last index in node id's log (the fixture's mirror of the core's log). */
static inline uint64_t scn_last(const struct sim_cluster *c, uint32_t id)
{
    return c->nodes[id].log_base + c->nodes[id].log_n;
}

/* Term of node id's entry at index (0 when not held). */
static inline uint64_t scn_term_at(const struct sim_cluster *c, uint32_t id, uint64_t index)
{
    const struct sim_node *n = &c->nodes[id];
    if (index == n->log_base) {
        return n->log_base_term;
    }
    if (index <= n->log_base || index > n->log_base + n->log_n) {
        return 0;
    }
    return n->log[index - n->log_base - 1].term;
}

/* Run until one of ids[0..n) is leader; returns it, or 0 after max_ms. */
static inline uint32_t scn_wait_leader_in(struct sim_cluster *c, const uint32_t *ids, uint32_t n,
                                          uint64_t max_ms)
{
    for (uint64_t t = 0; t <= max_ms && sim_ok(c); t++) {
        for (uint32_t i = 0; i < n; i++) {
            const struct sim_node *x = &c->nodes[ids[i]];
            if (x->up && !x->paused && x->role == MC_RAFT_LEADER) {
                return ids[i];
            }
        }
        sim_run(c, 1);
    }
    return 0;
}

#endif
