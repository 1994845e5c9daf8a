/* sim.c: build/sim: randomized deterministic runs of a Raft cluster under faults, one seed each. */
#include "cluster.h"

#include "metacenter/error.h"
#include "util/checksum.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define U(x) ((unsigned long long)(x))

struct params {
    uint64_t seed_lo, seed_hi; /* [lo, hi] */
    uint32_t nodes;
    uint64_t steps;
    bool verbose;
    bool keep_going;
    bool quiet;
    bool only_safety; /* disable the direct CommitCurrentTerm check */
};

/* Per-seed fault mix, drawn from the seed so each seed explores a different corner. */
struct mix {
    uint32_t client_gap_ms;  /* mean gap between client ops */
    uint32_t nemesis_gap_ms; /* mean gap between faults */
    bool pauses;             /* process pauses (off with lease reads: see below) */
    struct sim_net_faults net;
};

static uint64_t pick(struct mc_rand *r, const uint64_t *choices, size_t n)
{
    return choices[mc_rand_below(r, n)];
}
#define PICK(r, ...)                                                                               \
    pick(r, (const uint64_t[]){__VA_ARGS__},                                                       \
         sizeof((const uint64_t[]){__VA_ARGS__}) / sizeof(uint64_t))

static void choose_config(uint64_t seed, uint32_t nodes, struct sim_opts *o, struct mix *mx)
{
    struct mc_rand r;
    mc_rand_seed(&r, seed ^ 0x51a7c0ffee ^ ((uint64_t)nodes << 40));
    sim_opts_defaults(o);
    o->seed = seed;
    o->nodes = nodes;
    o->tick_ms = 10;
    /* Clock rates differ by up to +-10 %: inside the lease's drift margin (2 of 10 ticks). */
    o->tick_skew_ms = (uint32_t)PICK(&r, 0, 1);
    o->disk_min_ms = 0;
    o->disk_max_ms = (uint32_t)PICK(&r, 0, 1, 3, 10);
    o->raft.election_tick = 10;
    o->raft.heartbeat_tick = (uint32_t)PICK(&r, 1, 1, 2, 3);
    o->raft.max_inflight_msgs = (uint32_t)PICK(&r, 1, 4, 256);
    o->raft.max_msg_bytes = (uint32_t)PICK(&r, 1, 24, 256, 1u << 20);
    o->raft.snapshot_keep_entries = PICK(&r, 1, 5, 50, 1000);
    /* Lease reads (thesis §6.4.1) rely on bounded clock drift; a paused process whose timer does
     * not catch up breaks that assumption by design, so lease seeds get no pauses. */
    o->raft.lease_read = PICK(&r, 0, 0, 0, 1) != 0;
    mx->pauses = !o->raft.lease_read;
    mx->client_gap_ms = (uint32_t)PICK(&r, 2, 5, 20);
    mx->nemesis_gap_ms = (uint32_t)PICK(&r, 100, 200, 400);
    memset(&mx->net, 0, sizeof(mx->net));
    mx->net.delay_min_ms = 1;
    mx->net.delay_max_ms = (uint32_t)PICK(&r, 2, 5, 10, 30);
    mx->net.drop_pm = (uint32_t)PICK(&r, 0, 10, 50, 200);
    mx->net.dup_pm = (uint32_t)PICK(&r, 0, 10, 50);
    mx->net.slow_pm = (uint32_t)PICK(&r, 0, 5, 20);
    mx->net.slow_max_ms = 300;
    /* Last, so the picks above stay what they were for each seed. 0: the core's 32 MiB. */
    o->raft.snapshot_keep_bytes = PICK(&r, 0, 0, 64, 1024);
    /* 1: nothing kept for a lagging member (snapshot installs); 0: the core's 256 MiB. */
    o->raft.catch_up_keep_bytes = PICK(&r, 1, 1, 256, 0);
    /* ReadIndex rounds out at once (0: the core's 1). */
    o->raft.read_rounds_in_flight = (uint32_t)PICK(&r, 0, 0, 2, 4);
}

/* ------------------------------------------------------------------------------------------ */

static uint32_t random_node(struct sim_cluster *c, bool want_up)
{
    uint32_t cand[SIM_MAX_NODE_ID];
    uint32_t n = 0;
    for (uint32_t id = 1; id <= c->max_id; id++) {
        const struct sim_node *x = &c->nodes[id];
        if (x->exists && !x->removed && x->up == want_up) {
            cand[n++] = id;
        }
    }
    return n ? cand[mc_rand_below(&c->rand, n)] : 0;
}

/* Any node that believes it leads (stale leaders included: the interesting ones for reads). */
static uint32_t some_leader(struct sim_cluster *c)
{
    uint32_t cand[SIM_MAX_NODE_ID];
    uint32_t n = 0;
    for (uint32_t id = 1; id <= c->max_id; id++) {
        const struct sim_node *x = &c->nodes[id];
        if (x->up && !x->paused && x->role == MC_RAFT_LEADER) {
            cand[n++] = id;
        }
    }
    return n ? cand[mc_rand_below(&c->rand, n)] : 0;
}

static const struct mc_raft_conf *leader_conf(struct sim_cluster *c, uint32_t *leader)
{
    *leader = sim_leader(c);
    return *leader ? mc_raft_conf(c->nodes[*leader].r) : NULL;
}

static void client_op(struct sim_cluster *c)
{
    uint64_t roll = mc_rand_below(&c->rand, 100);
    uint32_t target;
    if (roll < 55) {
        target = sim_leader(c);
        if (!target || mc_rand_chance(&c->rand, 1, 10)) {
            target = random_node(c, true);
        }
        if (target) {
            sim_write(c, target, NULL);
        }
    } else {
        target = roll < 75 ? some_leader(c) : random_node(c, true);
        if (target) {
            sim_read(c, target, NULL);
        }
    }
}

static void split_random(struct sim_cluster *c)
{
    /* Random two-sided split (any split; each link side chosen by a coin). */
    bool side[SIM_MAX_NODE_ID + 1];
    for (uint32_t id = 1; id <= c->max_id; id++) {
        side[id] = mc_rand_chance(&c->rand, 1, 2);
    }
    for (uint32_t a = 1; a <= c->max_id; a++) {
        for (uint32_t b = a + 1; b <= c->max_id; b++) {
            if (side[a] != side[b]) {
                sim_net_block_both(&c->net, a, b);
            }
        }
    }
    sim_trace(&c->trace, c->now_ms, "nemesis split");
}

/* The leader keeps a minority (itself + fewer than quorum-1 voters): Figure 8's setup. */
static void leader_minority(struct sim_cluster *c)
{
    uint32_t l;
    const struct mc_raft_conf *conf = leader_conf(c, &l);
    if (!conf) {
        return;
    }
    bool keep[SIM_MAX_NODE_ID + 1] = {0};
    keep[l] = true;
    uint32_t quorum = conf->n_voters / 2 + 1;
    uint32_t kept = 1;
    for (uint32_t i = 0; i < conf->n_voters && kept + 1 < quorum; i++) {
        uint32_t v = (uint32_t)conf->voters[i];
        if (!keep[v] && mc_rand_chance(&c->rand, 1, 2)) {
            keep[v] = true;
            kept++;
        }
    }
    for (uint32_t a = 1; a <= c->max_id; a++) {
        for (uint32_t b = 1; b <= c->max_id; b++) {
            if (keep[a] != keep[b]) {
                sim_net_block(&c->net, a, b);
            }
        }
    }
    sim_trace(&c->trace, c->now_ms, "nemesis leader-minority l=%u kept=%u", l, kept);
}

/* Leader l's progress for learner v has reached l's commit index. */
static bool learner_caught_up(struct sim_cluster *c, uint32_t l, uint64_t v)
{
    struct mc_raft_status st;
    mc_raft_status(c->nodes[l].r, &st);
    for (uint32_t i = 0; i < st.n_peers; i++) {
        if (st.peers[i].id == v) {
            return st.peers[i].match >= st.commit;
        }
    }
    return false;
}

static void nemesis(struct sim_cluster *c, const struct mix *mx)
{
    uint64_t roll = mc_rand_below(&c->rand, 100);
    uint32_t l = sim_leader(c);
    uint32_t id;
    if (roll < 10) { /* crash */
        id = (l && mc_rand_chance(&c->rand, 1, 2)) ? l : random_node(c, true);
        if (id) {
            sim_crash(c, id);
        }
    } else if (roll < 22) { /* restart */
        id = random_node(c, false);
        if (id) {
            sim_restart(c, id);
        }
    } else if (roll < 30) {
        split_random(c);
    } else if (roll < 36) {
        if (l) {
            sim_net_isolate(&c->net, l);
            sim_trace(&c->trace, c->now_ms, "nemesis isolate n%u", l);
        }
    } else if (roll < 44) {
        leader_minority(c);
    } else if (roll < 48) { /* one-way cuts */
        uint32_t a = random_node(c, true), b = random_node(c, true);
        if (a && b && a != b) {
            sim_net_block(&c->net, a, b);
            sim_trace(&c->trace, c->now_ms, "nemesis cut %u->%u", a, b);
        }
    } else if (roll < 58) {
        sim_net_heal(&c->net);
        sim_trace(&c->trace, c->now_ms, "nemesis heal");
    } else if (roll < 63) { /* pause the leader; on resume it is asked for a read at once */
        id = l ? l : random_node(c, true);
        if (id && mx->pauses) {
            sim_pause(c, id);
        }
    } else if (roll < 68) {
        for (id = 1; id <= c->max_id; id++) {
            if (c->nodes[id].up && c->nodes[id].paused) {
                sim_resume(c, id);
                if (c->nodes[id].role == MC_RAFT_LEADER) {
                    sim_read(c, id, NULL);
                }
            }
        }
    } else if (roll < 76) {
        id = random_node(c, true);
        if (id) {
            sim_snapshot(c, id);
        }
    } else if (roll < 86) { /* membership */
        const struct mc_raft_conf *conf = leader_conf(c, &l);
        if (!conf) {
            return;
        }
        uint64_t what = mc_rand_below(&c->rand, 3);
        if (what == 0 && conf->n_voters + conf->n_learners < c->o.nodes + 2) {
            uint32_t nid = sim_add_node(c);
            if (nid) {
                sim_conf_change(c, l, MC_RAFT_CONF_ADD_LEARNER, nid);
            }
        } else if (what == 1 && conf->n_learners > 0) {
            uint64_t v = conf->learners[mc_rand_below(&c->rand, conf->n_learners)];
            /* Only a learner that has caught up, as the node's `cluster promote` (raft.h): one
               that started empty votes for no candidate with entries before it has. */
            if (learner_caught_up(c, l, v)) {
                sim_conf_change(c, l, MC_RAFT_CONF_PROMOTE, (uint32_t)v);
            }
        } else if (what == 2) {
            uint32_t total = conf->n_voters + conf->n_learners;
            uint64_t k = mc_rand_below(&c->rand, total);
            uint64_t v = k < conf->n_voters ? conf->voters[k] : conf->learners[k - conf->n_voters];
            if (k >= conf->n_voters || conf->n_voters > 3) {
                sim_conf_change(c, l, MC_RAFT_CONF_REMOVE, (uint32_t)v);
            }
        }
    } else if (roll < 92) {
        const struct mc_raft_conf *conf = leader_conf(c, &l);
        if (conf && conf->n_voters > 1) {
            uint64_t v = conf->voters[mc_rand_below(&c->rand, conf->n_voters)];
            if (v != l) {
                sim_transfer(c, l, (uint32_t)v);
            }
        }
    } else { /* weather change */
        struct sim_net_faults f = mx->net;
        if (mc_rand_chance(&c->rand, 1, 3)) {
            f.drop_pm = 0;
            f.dup_pm = 0;
            f.slow_pm = 0;
        }
        c->net.faults = f;
        sim_trace(&c->trace, c->now_ms, "nemesis net drop=%u dup=%u", f.drop_pm, f.dup_pm);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* liveness after healing                                                                      */

static void heal_all(struct sim_cluster *c)
{
    sim_net_heal(&c->net);
    memset(&c->net.faults, 0, sizeof(c->net.faults));
    c->net.faults.delay_min_ms = 1;
    c->net.faults.delay_max_ms = 5;
    for (uint32_t id = 1; id <= c->max_id; id++) {
        struct sim_node *n = &c->nodes[id];
        if (n->paused) {
            sim_resume(c, id);
        }
        if (n->exists && !n->removed && !n->up) {
            sim_restart(c, id);
        }
    }
    sim_trace(&c->trace, c->now_ms, "heal-all");
}

#define LIVENESS_LEADER_MS       5000 /* 25-50 election timeouts */
#define LIVENESS_COMMIT_MS       5000
#define LIVENESS_MS_PER_ENTRY    20 /* one round trip + one disk write, worst case after healing */
#define LIVENESS_SETTLE_TIMEOUTS 3  /* election timeouts of quiet after healing */

static bool members_caught_up(struct sim_cluster *c, void *arg)
{
    uint32_t l = *(uint32_t *)arg;
    const struct sim_node *ln = &c->nodes[l];
    if (!ln->up || ln->role != MC_RAFT_LEADER) {
        return true; /* checked by the caller */
    }
    const struct mc_raft_conf *conf = mc_raft_conf(ln->r);
    for (uint32_t i = 0; i < conf->n_voters; i++) {
        const struct sim_node *n = &c->nodes[conf->voters[i]];
        if (n->sm.applied < ln->sm.applied) {
            return false;
        }
    }
    return true;
}

static void dump_leader(struct sim_cluster *c, uint32_t l)
{
    if (!l || !c->nodes[l].up) {
        return;
    }
    struct mc_raft_status st;
    mc_raft_status(c->nodes[l].r, &st);
    printf("leader %u: term=%llu commit=%llu last=%llu snap=%llu transferee=%llu\n", l, U(st.term),
           U(st.commit), U(st.last_index), U(st.snapshot_index), U(st.lead_transferee));
    for (uint32_t i = 0; i < st.n_peers; i++) {
        const struct mc_raft_peer_status *ps = &st.peers[i];
        const struct sim_node *pn = &c->nodes[ps->id];
        printf("  peer %llu: state=%u match=%llu next=%llu inflight=%u pending_snap=%llu "
               "active=%d | node up=%d applied=%llu last=%llu\n",
               U(ps->id), ps->state, U(ps->match), U(ps->next), ps->inflight,
               U(ps->pending_snapshot), ps->recent_active, pn->up, U(pn->sm.applied),
               U(pn->log_base + pn->log_n));
    }
}

/* Every up node's view (why no leader was elected). */
static void dump_nodes(struct sim_cluster *c)
{
    for (uint32_t id = 1; id <= c->max_id; id++) {
        const struct sim_node *n = &c->nodes[id];
        if (!n->up) {
            continue;
        }
        struct mc_raft_status st;
        mc_raft_status(n->r, &st);
        printf("node %u: role=%u term=%llu vote=%llu last=%llu last_term=%llu commit=%llu "
               "snap=%llu voters=%u learner=%d amnesic=%d refusals=%llu\n",
               id, st.role, U(st.term), U(st.vote), U(st.last_index),
               U(mc_raft_term_at(n->r, st.last_index)), U(st.commit), U(st.snapshot_index),
               st.conf.n_voters, st.is_learner, st.amnesic, U(st.empty_log_vote_refusals));
    }
}

/* Uncommitted entries in leader l's log. */
static uint64_t uncommitted_suffix(const struct sim_cluster *c, uint32_t l)
{
    const struct sim_node *n = &c->nodes[l];
    uint64_t last = n->log_base + n->log_n;
    return last > n->commit ? last - n->commit : 0;
}

static void check_liveness(struct sim_cluster *c)
{
    heal_all(c);
    /* Let stale leaders notice they lost their quorum (check-quorum runs once per election
     * timeout): proposals to a leader that is about to be deposed may legitimately be lost. */
    sim_run(c, (uint64_t)LIVENESS_SETTLE_TIMEOUTS * c->o.raft.election_tick * c->o.tick_ms);
    uint64_t t0 = c->now_ms;
    uint32_t l = sim_wait_leader(c, LIVENESS_LEADER_MS);
    if (!sim_ok(c)) {
        return;
    }
    if (!l) {
        dump_nodes(c);
        sim_check_fail(&c->check, "Liveness: no leader %u ms after healing", LIVENESS_LEADER_MS);
        return;
    }
    /* Its first own-term entry commits once a majority holds its log: a long uncommitted suffix
     * may take one round trip per entry (in-flight limit 1, one entry per message). */
    uint64_t suffix = uncommitted_suffix(c, l);
    uint64_t budget = LIVENESS_LEADER_MS + suffix * LIVENESS_MS_PER_ENTRY;
    t0 = c->now_ms;
    while (sim_ok(c) && c->now_ms - t0 < budget && !(l = sim_stable_leader(c))) {
        sim_run(c, 5);
    }
    if (!sim_ok(c)) {
        return;
    }
    if (!l) {
        dump_leader(c, sim_leader(c));
        sim_check_fail(&c->check,
                       "Liveness: no leader committed an entry of its term %llu ms "
                       "after healing",
                       U(budget));
        return;
    }
    t0 = c->now_ms;
    /* Proposals submitted after healing must all commit; a refused one (a leadership transfer
     * still running) is retried at whoever leads. */
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        int rc = MC_ENOTLEADER;
        while (rc != 0 && c->now_ms - t0 < LIVENESS_LEADER_MS + LIVENESS_COMMIT_MS && sim_ok(c)) {
            l = sim_stable_leader(c);
            rc = l ? sim_write(c, l, &ids[i]) : MC_ENOTLEADER;
            if (rc != 0) {
                sim_run(c, 10);
            }
        }
        if (rc != 0) {
            sim_check_fail(&c->check, "Liveness: no leader accepted a proposal after healing");
            return;
        }
    }
    uint64_t deadline = c->now_ms + LIVENESS_COMMIT_MS;
    while (sim_ok(c) && c->now_ms < deadline && !sim_write_acked(c, ids[2])) {
        sim_run(c, 10);
    }
    for (int i = 0; i < 3 && sim_ok(c); i++) {
        if (!sim_write_acked(c, ids[i])) {
            dump_leader(c, sim_leader(c));
            sim_check_fail(&c->check,
                           "Liveness: write %llu proposed after healing not acknowledged within "
                           "%u ms",
                           U(ids[i]), LIVENESS_COMMIT_MS);
            return;
        }
    }
    l = sim_leader(c);
    if (!l) {
        return;
    }
    /* A voter far behind may legitimately catch up one entry per round trip (in-flight limit 1,
     * one entry per message): allow LIVENESS_MS_PER_ENTRY per missing entry on top. */
    uint64_t lag = 0;
    const struct mc_raft_conf *conf = mc_raft_conf(c->nodes[l].r);
    for (uint32_t i = 0; i < conf->n_voters; i++) {
        const struct sim_node *n = &c->nodes[conf->voters[i]];
        uint64_t d =
            c->nodes[l].sm.applied -
            (n->sm.applied < c->nodes[l].sm.applied ? n->sm.applied : c->nodes[l].sm.applied);
        lag = d > lag ? d : lag;
    }
    budget = LIVENESS_COMMIT_MS + lag * LIVENESS_MS_PER_ENTRY;
    if (!sim_run_until(c, members_caught_up, &l, budget) && sim_ok(c)) {
        dump_leader(c, l);
        sim_check_fail(&c->check, "Liveness: voters did not catch up with leader %u within %llu ms",
                       l, U(budget));
    }
}

/* ------------------------------------------------------------------------------------------ */

static int run_seed(uint64_t seed, const struct params *p, bool verbose, uint64_t *digest)
{
    struct sim_opts o;
    struct mix mx;
    choose_config(seed, p->nodes, &o, &mx);
    o.verbose = verbose ? stdout : NULL;
    o.no_commit_term_check = p->only_safety;
    struct sim_cluster *c = sim_cluster_new(&o);
    if (!c) {
        fprintf(stderr, "out of memory\n");
        return 2;
    }
    c->net.faults = mx.net;
    sim_trace(&c->trace, 0,
              "config seed=%llu nodes=%u disk<=%u hb=%u inflight=%u msgbytes=%u keep=%llu "
              "keepb=%llu catchup=%llu "
              "client=%u nemesis=%u drop=%u dup=%u delay<=%u lease=%d skew=%u",
              U(seed), p->nodes, o.disk_max_ms, o.raft.heartbeat_tick, o.raft.max_inflight_msgs,
              o.raft.max_msg_bytes, U(o.raft.snapshot_keep_entries), U(o.raft.snapshot_keep_bytes),
              U(o.raft.catch_up_keep_bytes), mx.client_gap_ms, mx.nemesis_gap_ms, mx.net.drop_pm,
              mx.net.dup_pm, mx.net.delay_max_ms, o.raft.lease_read, o.tick_skew_ms);
    uint64_t next_client = 0, next_nemesis = 300;
    while (c->steps < p->steps && sim_ok(c)) {
        if (c->now_ms >= next_client) {
            client_op(c);
            next_client = c->now_ms + 1 + mc_rand_below(&c->rand, 2 * mx.client_gap_ms);
        }
        if (c->now_ms >= next_nemesis && sim_ok(c)) {
            nemesis(c, &mx);
            next_nemesis = c->now_ms + 1 + mc_rand_below(&c->rand, 2 * mx.nemesis_gap_ms);
        }
        if (sim_ok(c) && !sim_step(c)) {
            /* Nothing scheduled (every node down): jump to the next client or fault action. */
            c->now_ms = next_client < next_nemesis ? next_client : next_nemesis;
            c->steps++;
        }
    }
    if (sim_ok(c)) {
        check_liveness(c);
    }
    int rc = 0;
    if (!sim_ok(c)) {
        rc = 1;
        printf("VIOLATION %s\n", c->check.msg);
        printf("  at seed=%llu nodes=%u step=%llu time_ms=%llu (replay: sim --seed %llu --nodes "
               "%u --steps %llu --verbose)\n",
               U(seed), p->nodes, U(c->steps), U(c->now_ms), U(seed), p->nodes, U(p->steps));
        if (!verbose) {
            printf("  trace tail:\n");
            sim_trace_dump_tail(&c->trace, stdout, 40);
        }
    }
    *digest = c->trace.digest;
    if (verbose || (!p->quiet && p->seed_lo == p->seed_hi)) {
        printf("stats: steps=%llu time_ms=%llu sent=%llu dropped=%llu dup=%llu cut=%llu "
               "acked_writes=%llu acked_reads=%llu failed_ops=%llu commit=%llu snapshots=%llu\n",
               U(c->steps), U(c->now_ms), U(c->net.sent), U(c->net.dropped), U(c->net.duplicated),
               U(c->net.cut), U(c->acked_writes), U(c->acked_reads), U(c->failed_ops),
               U(c->check.commit_max), U(c->snapshots_installed));
    }
    sim_cluster_free(c);
    return rc;
}

static void usage(void)
{
    fprintf(stderr, "usage: sim (--seed N | --seeds A:B) [--nodes K] [--steps S] [--verbose] "
                    "[--keep-going] [--end-to-end]\n"
                    "  --end-to-end: skip the direct Raft 5.4.2 commit-term check, so only\n"
                    "  end-to-end properties (safety of logs, state machines and reads) judge\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct params p = {.seed_lo = 1, .seed_hi = 1, .nodes = 3, .steps = 20000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--seed") && v) {
            p.seed_lo = p.seed_hi = strtoull(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--seeds") && v) {
            char *colon;
            p.seed_lo = strtoull(v, &colon, 10);
            if (*colon != ':') {
                usage();
            }
            p.seed_hi = strtoull(colon + 1, NULL, 10);
            i++;
        } else if (!strcmp(a, "--nodes") && v) {
            p.nodes = (uint32_t)strtoul(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--steps") && v) {
            p.steps = strtoull(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--verbose")) {
            p.verbose = true;
        } else if (!strcmp(a, "--keep-going")) {
            p.keep_going = true;
        } else if (!strcmp(a, "--end-to-end")) {
            p.only_safety = true;
        } else if (!strcmp(a, "--quiet")) {
            p.quiet = true;
        } else {
            usage();
        }
    }
    if (p.nodes < 1 || p.nodes > 7 || p.seed_hi < p.seed_lo) {
        usage();
    }
    if (p.seed_lo == p.seed_hi) {
        uint64_t digest = 0;
        int rc = run_seed(p.seed_lo, &p, p.verbose, &digest);
        printf("seed=%llu steps=%llu digest=%016llx\n", U(p.seed_lo), U(p.steps), U(digest));
        return rc;
    }
    uint64_t passed = 0, failed = 0, first_fail = 0;
    uint64_t all = 0;
    for (uint64_t s = p.seed_lo; s <= p.seed_hi; s++) {
        uint64_t digest = 0;
        int rc = run_seed(s, &p, p.verbose, &digest);
        all = mc_checksum64_seed(&digest, sizeof(digest), all);
        if (rc == 0) {
            passed++;
            continue;
        }
        failed++;
        if (!first_fail) {
            first_fail = s;
        }
        printf("FAIL seed=%llu\n", U(s));
        if (!p.keep_going) {
            break;
        }
    }
    if (failed) {
        printf("failing seed: %llu (replay: sim --seed %llu --nodes %u --steps %llu)\n",
               U(first_fail), U(first_fail), p.nodes, U(p.steps));
    }
    printf("seeds=%llu:%llu nodes=%u steps=%llu: %llu passed, %llu failed digest=%016llx\n",
           U(p.seed_lo), U(p.seed_hi), p.nodes, U(p.steps), U(passed), U(failed), U(all));
    return failed ? 1 : 0;
}
