/* test_raft_cluster.c: small in-memory clusters of real cores: election, commit, reads,
 * membership, transfer, snapshots, restart. Messages go through the codec. */
#include <criterion/criterion.h>

#include "metacenter/error.h"
#include "metacenter/raft.h"
#include "util/codec.h"

#include <stdlib.h>
#include <string.h>

#define TN     5
#define QMAX   4096
#define WALMAX 16384

struct wal_ent {
    uint64_t term;
    uint8_t type;
    uint32_t len;
    uint8_t data[64];
};

struct tnode {
    struct mc_raft *r;
    bool up;
    /* "disk" */
    struct mc_raft_hard_state hs;
    struct wal_ent wal[WALMAX]; /* wal[i] = entry i */
    uint64_t wal_last;
    bool has_snap;
    struct mc_raft_snapshot_meta snap;
    /* state machine */
    uint64_t applied;
    uint64_t applied_terms[WALMAX];
    uint64_t n_reads;
    uint64_t read_ctx[256], read_idx[256];
    int read_err[256];
};

struct qmsg {
    uint64_t to;
    size_t len;
    uint8_t *buf;
};

static struct tnode N[TN + 1];
static int nn;
static struct qmsg Q[QMAX];
static int nq;
static bool cut[TN + 1][TN + 1]; /* cut[a][b]: drop a -> b */
static bool use_lease;
static bool drop_snapshots; /* lose SNAPSHOT messages without reporting */
static uint64_t keep_bytes; /* cfg.snapshot_keep_bytes (0: the core's default) */
/* cfg.catch_up_keep_bytes: 1 = a down follower gets a snapshot, as most tests here want */
static uint64_t catch_up_bytes = 1;

static struct mc_raft_config mkcfg(uint64_t id, int n)
{
    static uint64_t voters[TN];
    for (int i = 0; i < n; i++) {
        voters[i] = (uint64_t)i + 1;
    }
    struct mc_raft_config c;
    memset(&c, 0, sizeof(c));
    c.id = id;
    c.election_tick = 10;
    c.heartbeat_tick = 1;
    c.seed = 42;
    c.initial_voters = voters;
    c.n_initial_voters = (size_t)n;
    c.snapshot_keep_entries = 5;
    c.snapshot_keep_bytes = keep_bytes;
    c.catch_up_keep_bytes = catch_up_bytes;
    c.lease_read = use_lease;
    return c;
}

static void start(int n, int voters)
{
    memset(N, 0, sizeof(N));
    memset(cut, 0, sizeof(cut));
    nq = 0;
    nn = n;
    for (int i = 1; i <= n; i++) {
        struct mc_raft_config c = mkcfg((uint64_t)i, voters);
        if (i > voters) {
            c.n_initial_voters = 0; /* joins later */
        }
        cr_assert_eq(mc_raft_create(&c, &N[i].r), 0);
        N[i].up = true;
    }
}

static void send(const struct mc_raft_msg *m)
{
    if (m->to < 1 || m->to > (uint64_t)nn || cut[m->from][m->to] || nq >= QMAX ||
        (drop_snapshots && m->type == MC_RAFT_MSG_SNAPSHOT)) {
        return;
    }
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    cr_assert_eq(mc_raft_msg_encode(m, &w), 0);
    Q[nq++] = (struct qmsg){m->to, w.len, w.data};
}

static void handle_ready(int i)
{
    struct tnode *t = &N[i];
    while (mc_raft_has_ready(t->r)) {
        struct mc_raft_ready rd;
        mc_raft_ready(t->r, &rd);
        for (size_t k = 0; k < rd.n_msgs; k++) {
            if (!rd.msgs[k].wait_persist) {
                send(&rd.msgs[k]);
            }
        }
        if (rd.snapshot) {
            t->has_snap = true;
            t->snap = *rd.snapshot;
            t->wal_last = rd.snapshot->index;
            t->applied = rd.snapshot->index;
        }
        if (rd.n_entries) {
            uint64_t first = rd.entries[0].index;
            cr_assert(first <= t->wal_last + 1, "gap in WAL: first %lu last %lu",
                      (unsigned long)first, (unsigned long)t->wal_last);
            for (size_t k = 0; k < rd.n_entries; k++) {
                const struct mc_raft_entry *e = &rd.entries[k];
                cr_assert(e->index < WALMAX && e->len <= 64);
                t->wal[e->index].term = e->term;
                t->wal[e->index].type = e->type;
                t->wal[e->index].len = e->len;
                if (e->len) {
                    memcpy(t->wal[e->index].data, e->data, e->len);
                }
            }
            t->wal_last = rd.entries[rd.n_entries - 1].index;
        }
        if (rd.hard_state_changed) {
            cr_assert(rd.hard_state.term >= t->hs.term);
            t->hs = rd.hard_state;
        }
        for (size_t k = 0; k < rd.n_msgs; k++) {
            if (rd.msgs[k].wait_persist) {
                send(&rd.msgs[k]);
            }
        }
        for (size_t k = 0; k < rd.n_committed; k++) {
            const struct mc_raft_entry *e = &rd.committed[k];
            cr_assert_eq(e->index, t->applied + 1);
            t->applied = e->index;
            t->applied_terms[e->index] = e->term;
        }
        for (size_t k = 0; k < rd.n_reads && t->n_reads < 256; k++) {
            t->read_ctx[t->n_reads] = rd.reads[k].ctx;
            t->read_idx[t->n_reads] = rd.reads[k].index;
            t->read_err[t->n_reads] = rd.reads[k].err;
            t->n_reads++;
        }
        uint64_t last = rd.n_entries ? rd.entries[rd.n_entries - 1].index : 0;
        uint64_t lterm = rd.n_entries ? rd.entries[rd.n_entries - 1].term : 0;
        mc_raft_advance(t->r, &rd);
        if (last) {
            mc_raft_persisted(t->r, last, lterm);
        }
    }
}

/* Deliver everything queued (and what that produces) until quiet. */
static void pump(void)
{
    for (int round = 0; round < 1000; round++) {
        for (int i = 1; i <= nn; i++) {
            if (N[i].up) {
                handle_ready(i);
            }
        }
        if (nq == 0) {
            return;
        }
        int n = nq;
        struct qmsg batch[QMAX];
        memcpy(batch, Q, sizeof(Q[0]) * (size_t)n);
        nq = 0;
        for (int k = 0; k < n; k++) {
            struct qmsg *q = &batch[k];
            if (N[q->to].up) {
                struct mc_raft_msg m;
                cr_assert_eq(mc_raft_msg_decode(q->buf, q->len, &m), 0);
                mc_raft_step(N[q->to].r, &m);
                mc_raft_msg_free(&m);
            }
            free(q->buf);
        }
    }
}

static void tick_all(int ticks)
{
    for (int k = 0; k < ticks; k++) {
        for (int i = 1; i <= nn; i++) {
            if (N[i].up) {
                mc_raft_tick(N[i].r);
            }
        }
        pump();
    }
}

static int leader(void)
{
    int found = 0;
    for (int i = 1; i <= nn; i++) {
        if (N[i].up && mc_raft_role(N[i].r) == MC_RAFT_LEADER) {
            uint64_t t = mc_raft_term(N[i].r);
            bool newest = true;
            for (int j = 1; j <= nn; j++) {
                if (N[j].up && mc_raft_term(N[j].r) > t) {
                    newest = false;
                }
            }
            if (newest) {
                found = i;
            }
        }
    }
    return found;
}

static int elect(void)
{
    for (int k = 0; k < 100; k++) {
        tick_all(1);
        int l = leader();
        if (l) {
            tick_all(2);
            return leader();
        }
    }
    return 0;
}

static void stop_all(void)
{
    for (int i = 1; i <= nn; i++) {
        mc_raft_destroy(N[i].r);
        N[i].r = NULL;
    }
    for (int k = 0; k < nq; k++) {
        free(Q[k].buf);
    }
    nq = 0;
}

static uint64_t propose_str(int l, const char *s)
{
    struct mc_raft_entry e = {
        .type = MC_RAFT_ENTRY_NORMAL, .len = (uint32_t)strlen(s), .data = (uint8_t *)s};
    uint64_t idx = 0;
    cr_assert_eq(mc_raft_propose(N[l].r, &e, 1, &idx), 0);
    return idx;
}

static void check_logs_agree(void)
{
    /* State Machine Safety: every applied index has the same term everywhere. */
    for (int i = 1; i <= nn; i++) {
        for (int j = i + 1; j <= nn; j++) {
            uint64_t lo = N[i].applied < N[j].applied ? N[i].applied : N[j].applied;
            for (uint64_t k = 1; k <= lo; k++) {
                if (N[i].applied_terms[k] && N[j].applied_terms[k]) {
                    cr_assert_eq(N[i].applied_terms[k], N[j].applied_terms[k]);
                }
            }
        }
    }
}

Test(raft_cluster, elects_and_commits)
{
    start(3, 3);
    int l = elect();
    cr_assert(l > 0, "no leader");
    uint64_t idx = propose_str(l, "hello");
    pump();
    tick_all(2);
    for (int i = 1; i <= 3; i++) {
        cr_assert_geq(N[i].applied, idx, "node %d applied %lu < %lu", i,
                      (unsigned long)N[i].applied, (unsigned long)idx);
        cr_assert_eq(N[i].wal[idx].len, 5);
        cr_assert_eq(memcmp(N[i].wal[idx].data, "hello", 5), 0);
    }
    /* Only the leader accepts proposals. */
    int f = l == 1 ? 2 : 1;
    struct mc_raft_entry e = {.len = 0};
    cr_assert_eq(mc_raft_propose(N[f].r, &e, 1, NULL), MC_ENOTLEADER);
    check_logs_agree();
    stop_all();
}

Test(raft_cluster, single_node)
{
    start(1, 1);
    cr_assert_eq(mc_raft_campaign(N[1].r), 0); /* leads at once, no timeout */
    cr_assert_eq(mc_raft_role(N[1].r), MC_RAFT_LEADER);
    int l = elect();
    cr_assert_eq(l, 1);
    uint64_t idx = propose_str(1, "x");
    pump();
    cr_assert_eq(N[1].applied, idx);
    cr_assert_eq(mc_raft_read_index(N[1].r, 7), 0);
    pump();
    cr_assert_eq(N[1].n_reads, 1);
    cr_assert_eq(N[1].read_ctx[0], 7);
    cr_assert_eq(N[1].read_idx[0], idx);
    stop_all();
}

Test(raft_cluster, failover_and_log_repair)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    for (int k = 0; k < 20; k++) {
        propose_str(l, "a");
    }
    pump();
    /* Isolate the leader; it keeps appending entries that never commit. */
    for (int i = 1; i <= 3; i++) {
        cut[l][i] = cut[i][l] = true;
    }
    for (int k = 0; k < 5; k++) {
        propose_str(l, "lost");
    }
    pump();
    int l2 = 0;
    for (int k = 0; k < 100 && !l2; k++) {
        tick_all(1);
        for (int i = 1; i <= 3; i++) {
            if (i != l && mc_raft_role(N[i].r) == MC_RAFT_LEADER) {
                l2 = i;
            }
        }
    }
    cr_assert(l2 && l2 != l, "no new leader");
    tick_all(25);
    /* Check-quorum: the isolated old leader stepped down. */
    cr_assert_neq(mc_raft_role(N[l].r), MC_RAFT_LEADER);
    uint64_t idx = propose_str(l2, "b");
    pump();
    memset(cut, 0, sizeof(cut));
    tick_all(5);
    for (int i = 1; i <= 3; i++) {
        cr_assert_geq(N[i].applied, idx);
        cr_assert_eq(mc_raft_last_index(N[i].r), mc_raft_last_index(N[l2].r));
    }
    check_logs_agree();
    stop_all();
}

Test(raft_cluster, read_index_leader_and_follower)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    uint64_t idx = propose_str(l, "v");
    pump();
    cr_assert_eq(mc_raft_read_index(N[l].r, 11), 0);
    pump();
    cr_assert_eq(N[l].n_reads, 1);
    cr_assert_eq(N[l].read_ctx[0], 11);
    cr_assert_geq(N[l].read_idx[0], idx);
    int f = l == 1 ? 2 : 1;
    cr_assert_eq(mc_raft_read_index(N[f].r, 12), 0);
    pump();
    cr_assert_eq(N[f].n_reads, 1);
    cr_assert_eq(N[f].read_ctx[0], 12);
    cr_assert_geq(N[f].read_idx[0], idx);
    cr_assert_eq(N[f].read_err[0], 0);
    /* A partitioned leader cannot confirm a read. */
    for (int i = 1; i <= 3; i++) {
        cut[l][i] = cut[i][l] = true;
    }
    cr_assert_eq(mc_raft_read_index(N[l].r, 13), 0);
    pump();
    cr_assert_eq(N[l].n_reads, 1);
    stop_all();
}

Test(raft_cluster, membership_add_learner_promote_remove)
{
    start(4, 3);
    int l = elect();
    cr_assert(l);
    struct mc_raft_conf_change cc = {.type = MC_RAFT_CONF_ADD_LEARNER, .node_id = 4};
    uint64_t idx;
    cr_assert_eq(mc_raft_propose_conf_change(N[l].r, &cc, &idx), 0);
    /* One change at a time. */
    struct mc_raft_conf_change cc2 = {.type = MC_RAFT_CONF_PROMOTE, .node_id = 4};
    cr_assert_eq(mc_raft_propose_conf_change(N[l].r, &cc2, NULL), MC_ECONFCHANGE);
    tick_all(3);
    cr_assert(mc_raft_conf_is_learner(mc_raft_conf(N[4].r), 4));
    cr_assert_geq(N[4].applied, idx);
    cr_assert_eq(mc_raft_propose_conf_change(N[l].r, &cc2, &idx), 0);
    tick_all(3);
    cr_assert(mc_raft_conf_is_voter(mc_raft_conf(N[4].r), 4));
    cr_assert_eq(mc_raft_conf(N[l].r)->n_voters, 4);
    /* Remove the leader itself: it steps down once the removal commits. */
    struct mc_raft_conf_change rm = {.type = MC_RAFT_CONF_REMOVE, .node_id = (uint64_t)l};
    cr_assert_eq(mc_raft_propose_conf_change(N[l].r, &rm, &idx), 0);
    tick_all(3);
    cr_assert_neq(mc_raft_role(N[l].r), MC_RAFT_LEADER);
    N[l].up = false;
    int l2 = elect();
    cr_assert(l2 && l2 != l);
    uint64_t i2 = propose_str(l2, "after");
    tick_all(3);
    for (int i = 1; i <= 4; i++) {
        if (i != l) {
            cr_assert_geq(N[i].applied, i2);
        }
    }
    check_logs_agree();
    stop_all();
}

Test(raft_cluster, leadership_transfer)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    int target = l == 3 ? 1 : l + 1;
    propose_str(l, "x");
    cr_assert_eq(mc_raft_transfer_leader(N[l].r, (uint64_t)target), 0);
    struct mc_raft_entry e = {.len = 0};
    cr_assert_eq(mc_raft_propose(N[l].r, &e, 1, NULL), MC_ENOTLEADER);
    pump();
    tick_all(2);
    cr_assert_eq(mc_raft_role(N[target].r), MC_RAFT_LEADER);
    cr_assert_eq(leader(), target);
    stop_all();
}

Test(raft_cluster, snapshot_catch_up)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    int f = l == 1 ? 2 : 1;
    N[f].up = false;
    uint64_t idx = 0;
    for (int k = 0; k < 50; k++) {
        idx = propose_str(l, "s");
        pump();
    }
    cr_assert_geq(N[l].applied, idx);
    cr_assert_eq(mc_raft_snapshot_taken(N[l].r, idx, mc_raft_term_at(N[l].r, idx), NULL), 0);
    struct mc_raft_status st;
    mc_raft_status(N[l].r, &st);
    cr_assert_eq(st.first_index, idx - 5 + 1);
    cr_assert_eq(st.snapshot_index, idx);
    /* mc_raft_entry_at: what the log still holds (node_ready.c's apply-delay hook re-reads it). */
    cr_assert_null(mc_raft_entry_at(N[l].r, st.first_index - 1));
    const struct mc_raft_entry *e = mc_raft_entry_at(N[l].r, idx);
    cr_assert(e && e->index == idx && e->len == 1 && e->data[0] == 's');
    cr_assert_eq(mc_raft_entry_at(N[l].r, st.first_index)->index, st.first_index);
    cr_assert_null(mc_raft_entry_at(N[l].r, mc_raft_last_index(N[l].r) + 1));
    N[f].up = true;
    tick_all(3);
    /* The follower needed compacted entries: it got a snapshot. */
    cr_assert(N[f].has_snap);
    cr_assert_eq(N[f].snap.index, idx);
    mc_raft_report_snapshot(N[l].r, (uint64_t)f, true);
    uint64_t i2 = propose_str(l, "t");
    tick_all(3);
    cr_assert_geq(N[f].applied, i2);
    cr_assert_eq(N[f].snap.conf.n_voters, 3);
    stop_all();
}

/* Proposes count entries of 40 bytes at leader l (the test WAL holds up to 64), delivering each;
 * returns the last one's index. */
static uint64_t propose_40_bytes(int l, int count)
{
    char big[41];
    memset(big, 'b', 40);
    big[40] = 0;
    uint64_t idx = 0;
    for (int k = 0; k < count; k++) {
        idx = propose_str(l, big);
        pump();
    }
    return idx;
}

/* Starts three voters whose config has *knob = value (one of the config overrides above), puts
 * the knob back to its default at once so the next test starts from it, and elects a leader;
 * returns the leader. */
static int start_with(uint64_t *knob, uint64_t value)
{
    uint64_t dflt = *knob;
    *knob = value;
    start(3, 3);
    *knob = dflt;
    int l = elect();
    cr_assert(l);
    return l;
}

/* The tail kept after a snapshot is capped in bytes too: large (batch) entries must not keep
 * snapshot_keep_entries of them in memory. */
static void snapshot_tail_with_cap(uint64_t cap, uint64_t want_tail)
{
    int l = start_with(&keep_bytes, cap);
    uint64_t idx = propose_40_bytes(l, 20);
    cr_assert_geq(N[l].applied, idx);
    cr_assert_eq(mc_raft_snapshot_taken(N[l].r, idx, mc_raft_term_at(N[l].r, idx), NULL), 0);
    struct mc_raft_status st;
    mc_raft_status(N[l].r, &st);
    cr_assert_eq(idx - st.first_index + 1, want_tail, "tail of %llu entries, want %llu",
                 (unsigned long long)(idx - st.first_index + 1), (unsigned long long)want_tail);
    cr_assert_eq(mc_raft_entry_at(N[l].r, idx)->len, 40);
    cr_assert_eq(st.log_bytes, want_tail * 40); /* what metacenter_raft_log_bytes shows */
    stop_all();
}

Test(raft_cluster, snapshot_tail_capped_in_bytes)
{
    snapshot_tail_with_cap(100, 2);     /* 2 x 40 bytes fit, a third would not */
    snapshot_tail_with_cap(30, 1);      /* the entry at the snapshot index is always kept */
    snapshot_tail_with_cap(1 << 20, 5); /* a roomy cap: the entry count rules */
}

/* A leader keeps the log a lagging follower still needs, up to cfg.catch_up_keep_bytes: the
 * follower then catches up from the log, not by a copy of the whole state machine. */
static void lagging_follower_with_cap(uint64_t cap, bool want_log)
{
    int l = start_with(&catch_up_bytes, cap);
    int f = l == 1 ? 2 : 1;
    pump();
    uint64_t had = mc_raft_last_index(N[l].r); /* the follower has everything up to here */
    N[f].up = false;
    uint64_t idx = propose_40_bytes(l, 50);
    cr_assert_eq(mc_raft_snapshot_taken(N[l].r, idx, mc_raft_term_at(N[l].r, idx), NULL), 0);
    struct mc_raft_status st;
    mc_raft_status(N[l].r, &st);
    if (want_log) {
        cr_assert_leq(st.first_index, had + 1, "first held %llu, the follower needs %llu",
                      (unsigned long long)st.first_index, (unsigned long long)had + 1);
    } else {
        /* 5 tail entries (200 bytes), then 5 more within the 400-byte cap. */
        cr_assert_eq(st.first_index, idx - 9, "first held %llu, want %llu",
                     (unsigned long long)st.first_index, (unsigned long long)idx - 9);
    }
    N[f].up = true;
    tick_all(3);
    cr_assert_eq(N[f].has_snap, !want_log);
    if (!want_log) {
        mc_raft_report_snapshot(N[l].r, (uint64_t)f, true);
    }
    uint64_t i2 = propose_str(l, "t");
    tick_all(3);
    cr_assert_geq(N[f].applied, i2);
    stop_all();
}

Test(raft_cluster, lagging_follower_catches_up_from_the_log_within_the_cap)
{
    lagging_follower_with_cap(0, true);    /* the core's default, 256 MiB */
    lagging_follower_with_cap(400, false); /* 50 x 40 bytes do not fit: a snapshot */
}

Test(raft_cluster, restart_from_persisted_state)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    uint64_t idx = 0;
    for (int k = 0; k < 10; k++) {
        idx = propose_str(l, "p");
    }
    tick_all(3);
    /* Restart every node from its "disk". */
    for (int i = 1; i <= 3; i++) {
        struct tnode *t = &N[i];
        mc_raft_destroy(t->r);
        static struct mc_raft_entry ents[WALMAX];
        size_t n = 0;
        for (uint64_t k = 1; k <= t->wal_last; k++) {
            ents[n++] = (struct mc_raft_entry){k, t->wal[k].term, t->wal[k].type, t->wal[k].len,
                                               t->wal[k].data};
        }
        struct mc_raft_restore rs = {
            .hard_state = t->hs, .entries = ents, .n_entries = n, .applied = t->applied};
        struct mc_raft_config c = mkcfg((uint64_t)i, 3);
        c.restore = &rs;
        cr_assert_eq(mc_raft_create(&c, &t->r), 0);
        cr_assert_eq(mc_raft_term(t->r), t->hs.term);
        cr_assert_eq(mc_raft_last_index(t->r), t->wal_last);
    }
    int l2 = elect();
    cr_assert(l2);
    uint64_t i2 = propose_str(l2, "q");
    tick_all(3);
    for (int i = 1; i <= 3; i++) {
        cr_assert_geq(N[i].applied, i2);
        cr_assert_gt(i2, idx);
    }
    check_logs_agree();
    stop_all();
}

Test(raft_cluster, prevote_stops_disruption)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    uint64_t term = mc_raft_term(N[l].r);
    int f = l == 1 ? 2 : 1;
    /* Isolate one follower for many timeouts; pre-vote keeps its term from growing. */
    for (int i = 1; i <= 3; i++) {
        cut[f][i] = cut[i][f] = true;
    }
    tick_all(60);
    cr_assert_eq(mc_raft_term(N[f].r), term);
    memset(cut, 0, sizeof(cut));
    tick_all(5);
    cr_assert_eq(leader(), l);
    cr_assert_eq(mc_raft_term(N[l].r), term);
    stop_all();
}

Test(raft_cluster, lease_read_without_round_trip)
{
    use_lease = true;
    start(3, 3);
    int l = elect();
    cr_assert(l);
    tick_all(2);
    /* Within the lease a read is answered without a heartbeat round: no message needed. */
    for (int i = 1; i <= 3; i++) {
        cut[l][i] = cut[i][l] = true;
    }
    cr_assert_eq(mc_raft_read_index(N[l].r, 21), 0);
    handle_ready(l);
    cr_assert_eq(N[l].n_reads, 1);
    cr_assert_eq(N[l].read_ctx[0], 21);
    /* Partitioned past the lease (election_tick - drift): no more lease reads. */
    tick_all(9);
    if (mc_raft_role(N[l].r) == MC_RAFT_LEADER) {
        cr_assert_eq(mc_raft_read_index(N[l].r, 22), 0);
        handle_ready(l);
        cr_assert_eq(N[l].n_reads, 1);
    }
    use_lease = false;
    stop_all();
}

Test(raft_cluster, restart_from_snapshot_and_tail)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    uint64_t idx = 0;
    for (int k = 0; k < 30; k++) {
        idx = propose_str(l, "z");
        pump();
    }
    tick_all(2);
    /* Node l snapshots at idx - 10; its WAL keeps the entries after it. */
    uint64_t si = idx - 10;
    cr_assert_eq(mc_raft_snapshot_taken(N[l].r, si, mc_raft_term_at(N[l].r, si), NULL), 0);
    struct tnode *t = &N[l];
    mc_raft_destroy(t->r);
    static struct mc_raft_entry ents[WALMAX];
    size_t n = 0;
    for (uint64_t k = 1; k <= t->wal_last; k++) { /* the WAL still holds entries <= si */
        ents[n++] = (struct mc_raft_entry){k, t->wal[k].term, t->wal[k].type, t->wal[k].len,
                                           t->wal[k].data};
    }
    struct mc_raft_restore rs = {
        .hard_state = t->hs, .has_snapshot = true, .entries = ents, .n_entries = n, .applied = si};
    rs.snapshot.index = si;
    rs.snapshot.term = t->wal[si].term;
    rs.snapshot.conf.n_voters = 3;
    rs.snapshot.conf.voters[0] = 1, rs.snapshot.conf.voters[1] = 2, rs.snapshot.conf.voters[2] = 3;
    struct mc_raft_config c = mkcfg((uint64_t)l, 0); /* the snapshot supplies the configuration */
    c.n_initial_voters = 0;
    c.restore = &rs;
    cr_assert_eq(mc_raft_create(&c, &t->r), 0);
    t->applied = si;
    struct mc_raft_status st;
    mc_raft_status(t->r, &st);
    cr_assert_eq(st.first_index, si + 1);
    cr_assert_eq(st.last_index, t->wal_last);
    cr_assert_eq(st.conf.n_voters, 3);
    cr_assert_eq(mc_raft_term_at(t->r, si), rs.snapshot.term);
    /* It re-applies the tail after the snapshot and keeps participating. */
    int l2 = elect();
    cr_assert(l2);
    uint64_t i2 = propose_str(l2, "after");
    tick_all(3);
    cr_assert_geq(N[l].applied, i2);
    check_logs_agree();
    stop_all();
}

Test(raft_cluster, lost_snapshot_report_times_out)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    int f = l == 1 ? 2 : 1;
    N[f].up = false;
    uint64_t idx = 0;
    for (int k = 0; k < 20; k++) {
        idx = propose_str(l, "s");
        pump();
    }
    cr_assert_eq(mc_raft_snapshot_taken(N[l].r, idx, mc_raft_term_at(N[l].r, idx), NULL), 0);
    /* The follower returns, but the SNAPSHOT message is lost and never reported. */
    drop_snapshots = true;
    N[f].up = true;
    tick_all(3);
    struct mc_raft_status st;
    mc_raft_status(N[l].r, &st);
    bool in_snap = false;
    for (uint32_t k = 0; k < st.n_peers; k++) {
        if (st.peers[k].id == (uint64_t)f && st.peers[k].state == MC_RAFT_PROGRESS_SNAPSHOT) {
            in_snap = true;
        }
    }
    cr_assert(in_snap);
    drop_snapshots = false;
    tick_all(50);
    cr_assert_not(N[f].has_snap, "waits for the report within the timeout");
    tick_all(60); /* past snapshot_timeout_tick (10 election timeouts): probe and resend */
    cr_assert(N[f].has_snap);
    cr_assert_geq(N[f].applied, idx);
    stop_all();
}

/* Forged / corrupt-but-decodable messages: Raft is not Byzantine tolerant, but no input may crash
 * a core (every assert must hold on any message sequence). */
Test(raft_cluster, random_messages_never_crash)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    uint64_t s = 12345;
    uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    for (int it = 0; it < 10000; it++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t x = s >> 11;
        struct mc_raft_entry ents[4];
        struct mc_raft_msg m;
        memset(&m, 0, sizeof(m));
        m.type = (uint8_t)(1 + x % 12);
        m.to = 1 + (x >> 4) % 3;
        m.from = 1 + (x >> 6) % 4;
        if (m.from == m.to) {
            m.from = m.to % 3 + 1;
        }
        uint64_t base = mc_raft_term(N[m.to].r);
        m.term = base + (x >> 8) % 3 - ((x >> 8) % 7 == 0 && base ? 1 : 0);
        uint64_t li = mc_raft_last_index(N[m.to].r);
        m.index = (li > 20 ? li - 20 : 0) + (x >> 10) % 40;
        m.log_term = (x >> 16) % (m.term + 1);
        if ((x >> 18) & 1) {
            m.log_term = mc_raft_term_at(N[m.to].r, m.index); /* make it match often */
        }
        m.commit = m.index + (x >> 20) % 45 - 20;
        if ((x >> 19) & 1) {
            m.index = mc_raft_commit_index(N[m.to].r) + (x >> 10) % 4;
            m.log_term = mc_raft_term_at(N[m.to].r, m.index);
        }
        m.reject = (x >> 26) & 1;
        m.reject_hint = (x >> 27) % 40;
        m.hint_term = (x >> 33) % 5;
        m.ctx = (x >> 36) % 1000;
        m.flags = (x >> 46) & 1;
        if (m.type == MC_RAFT_MSG_APPEND && (x >> 47) % 2) {
            m.n_entries = 1 + (uint32_t)((x >> 48) % 4);
            uint64_t t = m.log_term;
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            uint64_t y = s >> 11;
            for (uint32_t k = 0; k < m.n_entries; k++) {
                t += (y >> k) & 1;
                if ((y >> 8) % 4 == 0) {
                    t = (y >> (10 + 4 * k)) % (m.term + 2); /* possibly decreasing / too high */
                }
                ents[k] =
                    (struct mc_raft_entry){m.index + 1 + k, t, MC_RAFT_ENTRY_NORMAL, 8, payload};
            }
            m.entries = ents;
        }
        if (m.type == MC_RAFT_MSG_SNAPSHOT) {
            m.snapshot.index = m.index;
            m.snapshot.term = m.log_term ? m.log_term : 1;
            m.snapshot.conf.n_voters = 3;
            m.snapshot.conf.voters[0] = 1, m.snapshot.conf.voters[1] = 2;
            m.snapshot.conf.voters[2] = 3;
        }
        mc_raft_step(N[m.to].r, &m);
        if (it % 7 == 0) {
            tick_all(1);
        }
        int ld = leader();
        if (ld && it % 5 == 0) {
            struct mc_raft_entry e = {.len = 1, .data = payload};
            mc_raft_propose(N[ld].r, &e, 1, NULL);
            mc_raft_read_index(N[ld].r, (uint64_t)it);
        }
        pump();
        if (ld && it % 500 == 0) {
            struct mc_raft_status st;
            mc_raft_status(N[ld].r, &st);
            if (st.applied > 2) {
                mc_raft_snapshot_taken(N[ld].r, st.applied, mc_raft_term_at(N[ld].r, st.applied),
                                       NULL);
            }
        }
    }
    /* Still a working cluster afterwards. */
    memset(cut, 0, sizeof(cut));
    int l2 = elect();
    cr_assert(l2);
    stop_all();
}

Test(raft_cluster, transfer_catches_up_target_or_gives_up)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    int target = l == 3 ? 1 : l + 1;
    /* The target is unreachable: the transfer cannot finish and is abandoned after a timeout. */
    cut[l][target] = cut[target][l] = true;
    cr_assert_eq(mc_raft_transfer_leader(N[l].r, (uint64_t)target), 0);
    struct mc_raft_entry e = {.len = 0};
    cr_assert_eq(mc_raft_propose(N[l].r, &e, 1, NULL), MC_ENOTLEADER);
    tick_all(12);
    cr_assert_eq(leader(), l);
    struct mc_raft_status st;
    mc_raft_status(N[l].r, &st);
    cr_assert_eq(st.lead_transferee, 0);
    uint64_t idx = 0;
    for (int k = 0; k < 10; k++) {
        idx = propose_str(l, "w"); /* proposals accepted again; the target falls behind */
    }
    pump();
    cr_assert_lt(N[target].applied, idx);
    /* Reachable again: the leader first catches the target up, then hands over. */
    memset(cut, 0, sizeof(cut));
    cr_assert_eq(mc_raft_transfer_leader(N[l].r, (uint64_t)target), 0);
    pump();
    tick_all(2);
    cr_assert_eq(leader(), target);
    cr_assert_geq(N[target].applied, idx);
    check_logs_agree();
    stop_all();
}

/* Queued messages to `to` of `type`: how many, and how many carry no entries. */
static int queued(uint64_t to, enum mc_raft_msg_type type, int *empty)
{
    int n = 0;
    *empty = 0;
    for (int k = 0; k < nq; k++) {
        struct mc_raft_msg m;
        cr_assert_eq(mc_raft_msg_decode(Q[k].buf, Q[k].len, &m), 0);
        if (Q[k].to == to && m.type == type) {
            n++;
            *empty += m.n_entries == 0;
        }
        mc_raft_msg_free(&m);
    }
    return n;
}

/* Step the queued messages to `to` of `type` into it (the rest stay queued), then its ready. */
static void deliver(int to, enum mc_raft_msg_type type)
{
    int keep = 0;
    for (int k = 0; k < nq; k++) {
        struct mc_raft_msg m;
        cr_assert_eq(mc_raft_msg_decode(Q[k].buf, Q[k].len, &m), 0);
        if (Q[k].to == (uint64_t)to && m.type == type) {
            mc_raft_step(N[to].r, &m);
            free(Q[k].buf);
        } else {
            Q[keep++] = Q[k];
        }
        mc_raft_msg_free(&m);
    }
    nq = keep;
    handle_ready(to);
}

/* While appends are in flight to a follower, a commit advance rides on its next append instead
 * of an extra empty one (replication.c rep_flush); once they are acknowledged the commit index
 * goes out at once, so followers apply without waiting for a heartbeat. */
Test(raft_cluster, commit_index_rides_on_inflight_appends)
{
    start(3, 3);
    int l = elect();
    cr_assert(l);
    pump();
    int a = l % 3 + 1, b = a % 3 + 1;
    propose_str(l, "x1");
    handle_ready(l);
    uint64_t i2 = propose_str(l, "x2");
    handle_ready(l);
    int empty;
    cr_assert_eq(queued((uint64_t)b, MC_RAFT_MSG_APPEND, &empty), 2, "x1 and x2 pipelined to b");
    deliver(a, MC_RAFT_MSG_APPEND);
    deliver(l, MC_RAFT_MSG_APPEND_RESP); /* a's acks: x1, x2 commit (leader + a) */
    cr_assert_eq(mc_raft_commit_index(N[l].r), i2);
    queued((uint64_t)b, MC_RAFT_MSG_APPEND, &empty);
    cr_assert_eq(empty, 0, "no commit-only append to b while x1, x2 are in flight to it");
    pump(); /* no ticks: no heartbeat */
    cr_assert_eq(N[a].applied, i2);
    cr_assert_eq(N[b].applied, i2, "b learns the commit index once its appends are acked");
    check_logs_agree();
    stop_all();
}
