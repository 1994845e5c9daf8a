/* test_scenario_election.c: scripted election scenarios on the simulated cluster (test/sim). */
#include "../sim/scenario.h"

#include "metacenter/error.h"

/* A healthy cluster elects exactly one leader that everyone follows, and commits. */
static void healthy(uint32_t nodes)
{
    struct sim_cluster *c = scn_new(nodes, 11 + nodes);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0, "no leader within 2 s");
    sim_run(c, 500);
    cr_assert_eq(sim_count_leaders(c), 1);
    cr_assert_eq(sim_leader(c), l, "leadership changed on a healthy network");
    for (uint32_t id = 1; id <= nodes; id++) {
        cr_assert_eq(c->nodes[id].leader, l, "node %u follows %llu, not %u", id,
                     (unsigned long long)c->nodes[id].leader, l);
        cr_assert_eq(c->nodes[id].term, c->nodes[l].term);
    }
    cr_assert(sim_write_sync(c, l, 1000), "write not acknowledged");
    uint64_t idx = c->last_acked_write_index;
    sim_run(c, 200);
    for (uint32_t id = 1; id <= nodes; id++) {
        cr_assert_geq(c->nodes[id].sm.applied, idx, "node %u did not apply the write", id);
    }
    scn_assert_ok(c);
    sim_cluster_free(c);
}

Test(scenario_election, healthy_3)
{
    healthy(3);
}

Test(scenario_election, healthy_5)
{
    healthy(5);
}

Test(scenario_election, healthy_7)
{
    healthy(7);
}

/* A leader cut off with a minority cannot commit, and steps down (check-quorum, thesis §6.2);
 * the majority elects a new leader and its writes commit. */
Test(scenario_election, minority_leader_steps_down)
{
    struct sim_cluster *c = scn_new(5, 21);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    cr_assert(sim_write_sync(c, l, 1000));
    uint32_t f = scn_pick(c, 0, &l, 1);
    uint32_t minority[2] = {l, f};
    scn_split(c, minority, 2);
    uint64_t wid;
    cr_assert_eq(sim_write(c, l, &wid), 0);
    sim_run(c, 1000); /* > 2 election timeouts (200 ms max each) */
    cr_assert_not(sim_write_acked(c, wid), "a minority leader committed a write");
    cr_assert_neq(c->nodes[l].role, MC_RAFT_LEADER, "minority leader did not step down");
    uint32_t majority[3] = {scn_pick(c, 0, minority, 2), scn_pick(c, 1, minority, 2),
                            scn_pick(c, 2, minority, 2)};
    uint32_t l2 = scn_wait_leader_in(c, majority, 3, 2000);
    cr_assert_neq(l2, 0, "the majority did not elect a leader");
    cr_assert(sim_write_sync(c, l2, 1000));
    sim_net_heal(&c->net);
    sim_run(c, 1000);
    cr_assert_not(sim_write_acked(c, wid), "the minority write survived");
    cr_assert_eq(c->nodes[l].leader, l2, "old leader does not follow the new one");
    cr_assert_eq(c->nodes[l].sm.applied, c->nodes[l2].sm.applied);
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/* A follower partitioned for 30 election timeouts rejoins without deposing the healthy leader:
 * pre-vote (thesis §9.6) keeps its term from growing while it cannot win. */
Test(scenario_election, prevote_rejoin_does_not_disrupt)
{
    struct sim_cluster *c = scn_new(3, 31);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    cr_assert(sim_write_sync(c, l, 1000));
    uint64_t term = c->nodes[l].term;
    uint32_t f = scn_pick(c, 0, &l, 1);
    sim_net_isolate(&c->net, f);
    sim_run(c, 3000);
    cr_assert_leq(c->nodes[f].term, term, "isolated follower's term grew to %llu",
                  (unsigned long long)c->nodes[f].term);
    uint64_t prevotes = c->sent_by[f][MC_RAFT_MSG_PREVOTE];
    cr_assert_gt(prevotes, 0, "the isolated follower never tried to campaign");
    cr_assert(sim_write_sync(c, l, 1000), "leader lost its majority");
    sim_net_heal(&c->net);
    sim_run(c, 1000);
    cr_assert_eq(sim_leader(c), l, "the rejoining node deposed the leader");
    cr_assert_eq(c->nodes[l].term, term, "term changed on rejoin");
    cr_assert_eq(c->nodes[f].leader, l);
    cr_assert(sim_write_sync(c, l, 1000));
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/* A learner replicates but never campaigns and never counts toward a quorum. */
Test(scenario_election, learner_never_votes)
{
    struct sim_opts o;
    sim_opts_defaults(&o);
    o.nodes = 3;
    o.learners = 1; /* node 4 */
    o.seed = 41;
    struct sim_cluster *c = scn_new_opts(&o);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    cr_assert_neq(l, 4, "a learner became leader");
    for (int i = 0; i < 5; i++) {
        cr_assert(sim_write_sync(c, l, 1000));
    }
    sim_run(c, 200);
    cr_assert_eq(c->nodes[4].sm.applied, c->nodes[l].sm.applied, "learner did not replicate");
    /* Leave one voter + the learner: with the learner's vote that would be 2 of 4, but the learner
     * does not count, so no leader may emerge. */
    uint32_t f = scn_pick(c, 0, (uint32_t[]){l, 4}, 2);
    sim_crash(c, l);
    sim_crash(c, f);
    sim_run(c, 3000);
    cr_assert_eq(sim_count_leaders(c), 0, "a leader was elected without a voter majority");
    cr_assert_eq(c->sent_by[4][MC_RAFT_MSG_PREVOTE] + c->sent_by[4][MC_RAFT_MSG_VOTE], 0,
                 "the learner campaigned");
    cr_assert_eq(c->sent_by[4][MC_RAFT_MSG_VOTE_RESP] + c->sent_by[4][MC_RAFT_MSG_PREVOTE_RESP], 0,
                 "the learner answered a vote request");
    cr_assert_neq(c->nodes[4].role, MC_RAFT_CANDIDATE);
    cr_assert_neq(c->nodes[4].role, MC_RAFT_PRE_CANDIDATE);
    sim_restart(c, l);
    sim_restart(c, f);
    cr_assert_neq(sim_wait_leader(c, 3000), 0);
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/* A voter whose disk is lost (a data dir replaced, a node restarted on an empty dir) must not
 * elect a candidate that lacks a write the lost disk had acknowledged: with a 3-node cluster,
 * write X is committed by the leader and node w while node b is cut off; the leader and w
 * crash, w comes back with nothing. b's log lacks X, and w's empty log would grant b its vote
 * (§5.4.1 compares logs, and w's is the shortest): b must stay a candidate until the old leader
 * is back, then X survives. Leader Completeness (the checker) fails without election.c's guard. */
Test(scenario_election, wiped_voter_does_not_elect_a_candidate_missing_its_writes)
{
    struct sim_cluster *c = scn_new(3, 41);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    cr_assert(sim_write_sync(c, l, 1000));
    uint32_t b = scn_pick(c, 0, &l, 1);
    uint32_t skip[2] = {l, b};
    uint32_t w = scn_pick(c, 0, skip, 2);
    scn_split(c, &b, 1);
    cr_assert(sim_write_sync(c, l, 1000), "write X not acknowledged by leader + w");
    uint64_t x_index = c->last_acked_write_index;
    cr_assert_lt(scn_last(c, b), x_index, "b must lack X");
    sim_crash(c, l);
    sim_wipe(c, w);
    sim_net_heal(&c->net);
    cr_assert_eq(sim_restart(c, w), 0);
    sim_run(c, 3000); /* 15+ election timeouts */
    cr_assert_eq(sim_count_leaders(c), 0, "b was elected without X (by the wiped voter)");
    cr_assert_not_null(c->nodes[w].r);
    struct mc_raft_status st;
    mc_raft_status(c->nodes[w].r, &st);
    cr_assert_gt(st.empty_log_vote_refusals, 0, "the wiped voter refused no vote");
    cr_assert_eq(sim_restart(c, l), 0);
    uint32_t l2 = sim_wait_leader(c, 3000);
    cr_assert_neq(l2, 0, "no leader once the old leader is back");
    cr_assert(sim_write_sync(c, l2, 1000));
    sim_run(c, 500);
    for (uint32_t id = 1; id <= 3; id++) {
        cr_assert_geq(scn_last(c, id), x_index, "node %u lacks X", id);
    }
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/* The same, with the wiped voter only partly caught up when the leader dies (small messages
 * stand in for large entries: catching up takes many rounds): holding a prefix of the log
 * below X must not make it vote for b (second review, session 8). */
Test(scenario_election, wiped_voter_partly_caught_up_does_not_elect_a_candidate_missing_its_writes)
{
    struct sim_opts o;
    sim_opts_defaults(&o);
    o.nodes = 3;
    o.seed = 41;
    o.raft.max_msg_bytes = 64;
    struct sim_cluster *c = scn_new_opts(&o);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    for (int i = 0; i < 40; i++) {
        cr_assert(sim_write_sync(c, l, 1000));
    }
    cr_assert_eq(sim_snapshot(c, l), 0);
    uint32_t b = scn_pick(c, 0, &l, 1);
    uint32_t skip[2] = {l, b};
    uint32_t w = scn_pick(c, 0, skip, 2);
    scn_split(c, &b, 1);
    cr_assert(sim_write_sync(c, l, 1000), "X not acknowledged");
    uint64_t x_index = c->last_acked_write_index;
    cr_assert_lt(scn_last(c, b), x_index);
    sim_wipe(c, w);
    cr_assert_eq(sim_restart(c, w), 0);
    for (uint64_t t = 0; t < 3000; t++) {
        sim_run(c, 1);
        if (scn_last(c, w) > 0 && scn_last(c, w) < x_index &&
            c->nodes[w].disk_n + (c->nodes[w].disk_has_snap ? 1 : 0) > 0) {
            break;
        }
    }
    cr_assert(scn_last(c, w) > 0 && scn_last(c, w) < x_index, "w is not partly caught up");
    sim_crash(c, l);
    sim_net_heal(&c->net);
    sim_run(c, 3000);
    cr_assert_eq(sim_count_leaders(c), 0, "a member missing acknowledged X was elected");
    scn_assert_ok(c);
    cr_assert_eq(sim_restart(c, l), 0);
    cr_assert_neq(sim_wait_leader(c, 3000), 0, "no leader once the old leader is back");
    sim_run(c, 1000);
    for (uint32_t id = 1; id <= 3; id++) {
        cr_assert_geq(scn_last(c, id), x_index, "node %u lacks X", id);
    }
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/* A new cluster still elects: every log is empty, so the guard never applies. */
Test(scenario_election, fresh_cluster_elects_with_empty_logs)
{
    struct sim_cluster *c = scn_new(5, 43);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    struct mc_raft_status st;
    for (uint32_t id = 1; id <= 5; id++) {
        mc_raft_status(c->nodes[id].r, &st);
        cr_assert_eq(st.empty_log_vote_refusals, 0);
    }
    scn_assert_ok(c);
    sim_cluster_free(c);
}
