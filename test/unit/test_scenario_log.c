/* test_scenario_log.c: scripted log scenarios: Figure 8, fast backtracking, snapshot install. */
#include "../sim/scenario.h"

#include "metacenter/error.h"

/*
 * Raft paper Figure 8 (§5.4.2), 5 nodes. (a) L1 replicates entry i (term t1) to S2 only and
 * crashes. (b) L2 is elected by the other three and appends (i, t2) but crashes before sending it.
 * (c) L1's log wins again (L3 ∈ {L1, S2}) and replicates (i, t1) to a majority: it must NOT count
 * that as committed until an entry of its own term is on a majority too (here it never is). (d) L3
 * crashes; L2 comes back and may overwrite (i, t1): safe only because it was never committed. The
 * fixture checks every step (CommitCurrentTerm, Leader Completeness, State Machine Safety).
 */
Test(scenario_log, figure8)
{
    struct sim_opts o;
    sim_opts_defaults(&o);
    o.nodes = 5;
    o.seed = 81;
    o.raft.max_msg_bytes = 1; /* one entry per AppendEntries: replicas move one index at a time */
    struct sim_cluster *c = scn_new_opts(&o);
    c->net.faults.delay_min_ms = 2;
    uint32_t l1 = sim_wait_leader(c, 2000);
    cr_assert_neq(l1, 0);
    cr_assert(sim_write_sync(c, l1, 1000));
    sim_run(c, 100);
    /* (a) */
    uint32_t s2 = scn_pick(c, 0, &l1, 1);
    uint32_t pair[2] = {l1, s2};
    uint32_t rest[3] = {scn_pick(c, 0, pair, 2), scn_pick(c, 1, pair, 2), scn_pick(c, 2, pair, 2)};
    scn_split(c, pair, 2);
    uint64_t wid;
    cr_assert_eq(sim_write(c, l1, &wid), 0);
    uint64_t i = scn_last(c, l1);
    uint64_t t1 = c->nodes[l1].term;
    sim_run(c, 50);
    cr_assert_eq(scn_term_at(c, s2, i), t1, "S2 did not get (i, t1)");
    sim_crash(c, l1);
    sim_net_isolate(&c->net, s2);
    /* (b) */
    uint32_t l2 = scn_wait_leader_in(c, rest, 3, 3000);
    cr_assert_neq(l2, 0, "the other three elected nobody");
    sim_net_isolate(&c->net, l2); /* its no-op (i, t2) never leaves it */
    uint64_t t2 = c->nodes[l2].term;
    cr_assert_eq(scn_term_at(c, l2, i), t2, "L2's no-op is not at index i");
    sim_crash(c, l2);
    /* (c) */
    sim_net_heal(&c->net);
    sim_net_isolate(&c->net, l2);
    cr_assert_eq(sim_restart(c, l1), 0);
    uint32_t cand[2] = {l1, s2};
    uint32_t l3 = scn_wait_leader_in(c, cand, 2, 3000);
    cr_assert_neq(l3, 0, "neither L1 nor S2 won");
    uint32_t s3 = rest[0] == l2 ? rest[1] : rest[0];
    cr_assert_gt(c->nodes[l3].term, t2);
    /* X (the other holder of (i, t1)) acknowledges L3 and takes its no-op (i+1, t3); S3 gets
     * (i, t1) but not (i+1, t3). Then (i, t1) is on a majority (L3, X, S3), L3 knows it, and its
     * own no-op is on two nodes only: L3 must NOT commit index i (a buggy core does). */
    uint32_t x = l3 == l1 ? s2 : l1;
    uint32_t s4 = scn_pick(c, 0, (uint32_t[]){l1, s2, s3}, 3);
    sim_net_isolate(&c->net, s4);
    sim_net_block_both(&c->net, x, s3);
    for (int ms = 0; ms < 500 && scn_term_at(c, s3, i) != t1; ms++) {
        sim_run(c, 1);
    }
    cr_assert_eq(scn_term_at(c, s3, i), t1, "(i, t1) did not reach S3");
    /* One entry per message: (i+1, t3) has not been sent to S3 yet. Cut L3 -> S3 so it never is,
     * while S3's acknowledgement of i still reaches L3 (a one-way partition). */
    cr_assert_eq(scn_term_at(c, s3, i + 1), 0);
    sim_net_block(&c->net, l3, s3);
    sim_run(c, 300);
    cr_assert_eq(scn_term_at(c, x, i + 1), c->nodes[l3].term, "X did not take L3's no-op");
    scn_assert_ok(c);
    cr_assert_lt(c->nodes[l3].commit, i,
                 "L3 committed (i, t1) by counting replicas (Raft 5.4.2 violated)");
    /* (d) L3 crashes and X is cut off; L2 returns: its last term t2 > t1 wins the votes of S3 and
     * S4, and it overwrites (i, t1) on S3, as in Figure 8 (d). */
    sim_crash(c, l3);
    sim_net_heal(&c->net);
    sim_net_isolate(&c->net, x);
    cr_assert_eq(sim_restart(c, l2), 0);
    uint32_t l4 = sim_wait_leader(c, 3000);
    cr_assert_eq(l4, l2, "only L2 can win among L2, S3, S4");
    sim_run(c, 300);
    cr_assert_eq(scn_term_at(c, s3, i), t2, "L2 did not overwrite (i, t1) on S3");
    sim_net_heal(&c->net);
    cr_assert_eq(sim_restart(c, l3), 0);
    sim_run(c, 500);
    cr_assert_eq(scn_term_at(c, x, i), t2, "the old (i, t1) survived on a node");
    const struct sim_committed *ci = sim_check_get_committed(&c->check, i);
    cr_assert_not_null(ci, "index i never committed after healing");
    cr_assert_eq(ci->term, t2, "committed index i should hold L2's entry");
    cr_assert(sim_write_sync(c, sim_leader(c), 1000));
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/*
 * A deposed leader holds a long divergent suffix (200 uncommitted entries of its old term); the
 * new leader finds the match point with the conflict term hints in O(terms) round trips, not one
 * rejection per entry.
 */
Test(scenario_log, fast_backtracking)
{
    struct sim_cluster *c = scn_new(3, 91);
    uint32_t l1 = sim_wait_leader(c, 2000);
    cr_assert_neq(l1, 0);
    cr_assert(sim_write_sync(c, l1, 1000));
    sim_net_isolate(&c->net, l1);
    for (int k = 0; k < 200; k++) {
        cr_assert_eq(sim_write(c, l1, NULL), 0);
    }
    uint32_t others[2] = {scn_pick(c, 0, &l1, 1), scn_pick(c, 1, &l1, 1)};
    uint32_t l2 = scn_wait_leader_in(c, others, 2, 3000);
    cr_assert_neq(l2, 0);
    for (int k = 0; k < 200; k++) {
        cr_assert_eq(sim_write(c, l2, NULL), 0);
    }
    sim_run(c, 500);
    cr_assert_geq(c->nodes[l2].commit, 200);
    /* Hand leadership to the third node: its probe to the old leader starts at its own last
     * index (~400), far past the divergence point (~2). */
    uint32_t l3 = others[0] == l2 ? others[1] : others[0];
    cr_assert_eq(sim_transfer(c, l2, l3), 0);
    cr_assert_eq(scn_wait_leader_in(c, &l3, 1, 1000), l3);
    sim_run(c, 100);
    uint64_t rejects = c->append_rejects_by[l1];
    uint64_t appends_before = c->msgs_by_type[MC_RAFT_MSG_APPEND];
    sim_net_heal(&c->net);
    sim_run(c, 1000);
    cr_assert_eq(c->nodes[l1].sm.applied, c->nodes[l3].sm.applied, "old leader did not catch up");
    uint64_t new_rejects = c->append_rejects_by[l1] - rejects;
    cr_assert_geq(new_rejects, 1, "no backtracking happened (scenario broken)");
    cr_assert_leq(new_rejects, 4, "%llu rejections to skip a 200-entry divergent suffix",
                  (unsigned long long)new_rejects);
    cr_log_info("fast_backtracking: %llu rejections, %llu appends after heal",
                (unsigned long long)new_rejects,
                (unsigned long long)(c->msgs_by_type[MC_RAFT_MSG_APPEND] - appends_before));
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/* A follower that was down while the leader compacted its log catches up by snapshot install. */
Test(scenario_log, snapshot_install_to_compacted_follower)
{
    struct sim_opts o;
    sim_opts_defaults(&o);
    o.nodes = 3;
    o.seed = 101;
    o.raft.snapshot_keep_entries = 5;
    o.raft.catch_up_keep_bytes = 1; /* keep nothing for the crashed follower */
    struct sim_cluster *c = scn_new_opts(&o);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    uint32_t f = scn_pick(c, 0, &l, 1);
    cr_assert(sim_write_sync(c, l, 1000));
    sim_run(c, 50);
    sim_crash(c, f);
    for (int k = 0; k < 100; k++) {
        cr_assert_eq(sim_write(c, l, NULL), 0);
    }
    sim_run(c, 300);
    cr_assert_geq(c->nodes[l].sm.applied, 100);
    for (uint32_t id = 1; id <= 3; id++) {
        if (id != f) {
            cr_assert_eq(sim_snapshot(c, id), 0);
        }
    }
    struct mc_raft_status st;
    mc_raft_status(c->nodes[l].r, &st);
    cr_assert_gt(st.first_index, c->nodes[f].sm.applied + 1, "leader did not compact past f");
    cr_assert_eq(sim_restart(c, f), 0);
    sim_run(c, 1000);
    cr_assert_geq(c->snapshots_installed, 1, "no snapshot was installed");
    cr_assert_geq(c->sent_by[sim_leader(c)][MC_RAFT_MSG_SNAPSHOT], 1);
    cr_assert_eq(c->nodes[f].sm.applied, c->nodes[l].sm.applied, "follower did not catch up");
    cr_assert_eq(c->nodes[f].sm.chain, c->nodes[l].sm.chain, "follower state differs");
    cr_assert(sim_write_sync(c, sim_leader(c), 1000));
    sim_run(c, 100);
    cr_assert_eq(c->nodes[f].sm.applied, c->nodes[l].sm.applied);
    scn_assert_ok(c);
    sim_cluster_free(c);
}
