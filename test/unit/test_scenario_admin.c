/* test_scenario_admin.c: scripted admin scenarios: leadership transfer, membership changes. */
#include "../sim/scenario.h"

#include "metacenter/error.h"

/* Transfer to an up-to-date follower (thesis §3.10): it leads within one round of TimeoutNow. */
Test(scenario_admin, transfer_to_caught_up_follower)
{
    struct sim_cluster *c = scn_new(3, 201);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    for (int k = 0; k < 10; k++) {
        cr_assert(sim_write_sync(c, l, 1000));
    }
    sim_run(c, 50);
    uint32_t f = scn_pick(c, 0, &l, 1);
    uint64_t term = c->nodes[l].term;
    cr_assert_eq(sim_transfer(c, l, f), 0);
    cr_assert_eq(scn_wait_leader_in(c, &f, 1, 100), f, "transfer did not complete in 100 ms");
    cr_assert_eq(c->nodes[f].term, term + 1, "transfer should take exactly one election");
    cr_assert_geq(c->sent_by[l][MC_RAFT_MSG_TIMEOUT_NOW], 1);
    sim_run(c, 100);
    cr_assert_neq(c->nodes[l].role, MC_RAFT_LEADER);
    cr_assert_eq(c->nodes[l].leader, f);
    cr_assert(sim_write_sync(c, f, 1000));
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/* Transfer to a follower missing 100 entries: the leader refuses proposals, catches it up, then
 * hands over; the new leader holds every acknowledged write (Leader Completeness, checked). */
Test(scenario_admin, transfer_to_lagging_follower)
{
    struct sim_cluster *c = scn_new(3, 211);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    uint32_t f = scn_pick(c, 0, &l, 1);
    sim_net_isolate(&c->net, f);
    for (int k = 0; k < 100; k++) {
        cr_assert(sim_write_sync(c, l, 1000));
    }
    uint64_t acked_index = c->last_acked_write_index;
    cr_assert_lt(scn_last(c, f), acked_index);
    sim_net_heal(&c->net);
    cr_assert_eq(sim_transfer(c, l, f), 0);
    cr_assert_eq(sim_write(c, l, NULL), MC_ENOTLEADER, "proposals accepted during a transfer");
    cr_assert_eq(scn_wait_leader_in(c, &f, 1, 1000), f, "transfer did not complete in 1 s");
    cr_assert_geq(scn_last(c, f), acked_index, "new leader lacks acknowledged writes");
    cr_assert(sim_write_sync(c, f, 1000));
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/* Removing the leader itself: it keeps leading until the removal commits, then steps down and
 * the remaining voters elect a leader among themselves. */
Test(scenario_admin, remove_leader)
{
    struct sim_opts o;
    sim_opts_defaults(&o);
    o.nodes = 3;
    o.seed = 221;
    o.keep_removed = true; /* watch it step down instead of the operator stopping it */
    struct sim_cluster *c = scn_new_opts(&o);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    cr_assert(sim_write_sync(c, l, 1000));
    cr_assert_eq(sim_conf_change(c, l, MC_RAFT_CONF_REMOVE, l), 0);
    uint32_t others[2] = {scn_pick(c, 0, &l, 1), scn_pick(c, 1, &l, 1)};
    uint32_t l2 = scn_wait_leader_in(c, others, 2, 2000);
    cr_assert_neq(l2, 0, "no leader among the remaining voters");
    sim_run(c, 500);
    cr_assert_neq(c->nodes[l].role, MC_RAFT_LEADER, "removed leader still leads");
    const struct mc_raft_conf *conf = mc_raft_conf(c->nodes[l2].r);
    cr_assert_eq(conf->n_voters, 2);
    cr_assert_not(mc_raft_conf_is_voter(conf, l));
    cr_assert(sim_write_sync(c, l2, 1000));
    cr_assert_eq(sim_leader(c), l2);
    scn_assert_ok(c);
    sim_cluster_free(c);
}

/* With one of three voters down, add a fourth (learner, catch up, promote): the quorum becomes 3 of
 * 4 and is still met by the leader, the remaining follower and the new voter. */
Test(scenario_admin, add_voter_while_another_is_down)
{
    struct sim_cluster *c = scn_new(3, 231);
    uint32_t l = sim_wait_leader(c, 2000);
    cr_assert_neq(l, 0);
    for (int k = 0; k < 20; k++) {
        cr_assert(sim_write_sync(c, l, 1000));
    }
    uint32_t down = scn_pick(c, 0, &l, 1);
    sim_crash(c, down);
    uint32_t n4 = sim_add_node(c);
    cr_assert_eq(n4, 4);
    cr_assert_eq(sim_conf_change(c, l, MC_RAFT_CONF_ADD_LEARNER, n4), 0);
    sim_run(c, 500);
    cr_assert_eq(c->nodes[n4].sm.applied, c->nodes[l].sm.applied, "learner did not catch up");
    cr_assert_eq(sim_conf_change(c, l, MC_RAFT_CONF_PROMOTE, n4), 0);
    sim_run(c, 300);
    const struct mc_raft_conf *conf = mc_raft_conf(c->nodes[l].r);
    cr_assert_eq(conf->n_voters, 4);
    cr_assert(mc_raft_conf_is_voter(conf, n4));
    cr_assert(sim_write_sync(c, l, 1000), "no commit with 3 of 4 voters up");
    /* The new voter really counts: with it down too, 2 of 4 cannot commit. */
    sim_crash(c, n4);
    cr_assert_not(sim_write_sync(c, l, 1000), "committed with 2 of 4 voters");
    cr_assert_eq(sim_restart(c, n4), 0);
    cr_assert_eq(sim_restart(c, down), 0);
    uint32_t l2 = sim_wait_leader(c, 2000);
    cr_assert_neq(l2, 0);
    sim_run(c, 1000);
    l2 = sim_stable_leader(c);
    cr_assert_neq(l2, 0);
    cr_assert(sim_write_sync(c, l2, 1000));
    sim_run(c, 200);
    for (uint32_t id = 1; id <= 4; id++) {
        cr_assert_eq(c->nodes[id].sm.chain, c->nodes[l2].sm.chain, "node %u diverged", id);
    }
    scn_assert_ok(c);
    sim_cluster_free(c);
}
