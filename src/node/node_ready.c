/* node_ready.c: drives the Raft core: persist to the WAL, send messages, apply, serve reads. */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* Encode and queue one Raft message to its peer. */
void node_send_raft(struct mc_node *n, const struct mc_raft_msg *m)
{
    mc_wbuf_reset(&n->scratch);
    if (mc_raft_msg_encode(m, &n->scratch) != 0) {
        MC_WARN("raft_msg_encode_failed", "to=%llu type=%s", (unsigned long long)m->to,
                mc_raft_msg_type_name(m->type));
        return;
    }
    int rc = mc_peer_send(n->peers, m->to, MC_PEER_RAFT, n->scratch.data, n->scratch.len);
    if (rc == MC_ELIMIT) {
        mc_raft_report_unreachable(n->raft, m->to);
    }
}

static int hold_msg(struct mc_node *n, uint64_t ticket, const struct mc_raft_msg *m)
{
    if (n->n_held == n->cap_held) {
        size_t cap = n->cap_held ? n->cap_held * 2 : 64;
        if (cap > NODE_MAX_HELD_MSGS) {
            return MC_ELIMIT;
        }
        struct held_msg *h = realloc(n->held, cap * sizeof(*h));
        if (!h) {
            return MC_ENOMEM;
        }
        n->held = h;
        n->cap_held = cap;
    }
    struct mc_wbuf w;
    mc_wbuf_init(&w, MC_PEER_FRAME_MAX);
    if (mc_raft_msg_encode(m, &w) != 0) {
        mc_wbuf_free(&w);
        return MC_ENOMEM;
    }
    n->held[n->n_held++] = (struct held_msg){ticket, m->to, w.data, w.len};
    return 0;
}

static int add_mark(struct mc_node *n, uint64_t ticket, uint64_t index, uint64_t term)
{
    if (n->n_marks == n->cap_marks) {
        size_t cap = n->cap_marks ? n->cap_marks * 2 : 64;
        struct persist_mark *m = realloc(n->marks, cap * sizeof(*m));
        if (!m) {
            return MC_ENOMEM;
        }
        n->marks = m;
        n->cap_marks = cap;
    }
    n->marks[n->n_marks++] = (struct persist_mark){ticket, index, term};
    return 0;
}

/* Called on the loop when the WAL reports progress: release what waited for durability. */
void node_wal_progress(struct mc_node *n)
{
    int err = atomic_load(&n->wal_error);
    if (err) {
        node_fatal(n, "wal", err);
        return;
    }
    uint64_t done = atomic_load(&n->wal_done_ticket);
    size_t k = 0;
    while (k < n->n_held && n->held[k].ticket <= done) {
        if (n->peers) {
            mc_peer_send(n->peers, n->held[k].to, MC_PEER_RAFT, n->held[k].data, n->held[k].len);
        }
        free(n->held[k].data);
        k++;
    }
    if (k) {
        memmove(n->held, n->held + k, (n->n_held - k) * sizeof(*n->held));
        n->n_held -= k;
    }
    k = 0;
    while (k < n->n_marks && n->marks[k].ticket <= done) {
        mc_raft_persisted(n->raft, n->marks[k].index, n->marks[k].term);
        k++;
    }
    if (k) {
        memmove(n->marks, n->marks + k, (n->n_marks - k) * sizeof(*n->marks));
        n->n_marks -= k;
    }
}

/* Test hook: with MC_TEST_APPLY_DELAY_MS=N (1..60000) in the environment (read once), this node
 * applies each batch of committed entries N ms after Raft hands it out; persisting, acks and
 * elections go on as usual, only the state machine lags. It widens the window in which a new
 * leader has not yet applied its predecessors' entries, the window can_accept_write()'s
 * own-term rule closes (test/fault/test_clock.py new_leader_applies_first): without the delay a
 * follower has normally applied everything by the time it wins an election. Unset (production):
 * nothing is held, one relaxed atomic load per ready. */
#define APPLY_DELAY_MAX_MS 60000
static uint64_t apply_delay_ns(void)
{
    static _Atomic int64_t ms = -1; /* -1: not read yet */
    return mc_test_hook_u64(&ms, "MC_TEST_APPLY_DELAY_MS", APPLY_DELAY_MAX_MS,
                            "test_hook_apply_delay") *
           1000000;
}

/* Hold the entries up to index (handed out now) until delay_ns from now. The core keeps them:
 * it compacts only up to what node_snapshot.c reports, which is <= applied_index. */
static void hold_applies(struct mc_node *n, uint64_t index, uint64_t delay_ns)
{
    if (n->n_apply_holds == NODE_MAX_APPLY_HOLDS) {
        /* Full: the newest hold covers these entries too (they apply a little early). */
        n->apply_holds[n->n_apply_holds - 1].index = index;
        return;
    }
    n->apply_holds[n->n_apply_holds++] = (struct apply_hold){index, mc_mono_ns() + delay_ns};
}

/* Apply the held entries whose time has come, in log order. */
static int apply_held(struct mc_node *n)
{
    if (n->apply_paused) {
        return 0;
    }
    uint64_t now = mc_mono_ns();
    size_t k = 0;
    int rc = 0;
    for (; rc == 0 && k < n->n_apply_holds && n->apply_holds[k].due_ns <= now; k++) {
        for (uint64_t i = n->applied_index + 1; rc == 0 && i <= n->apply_holds[k].index; i++) {
            const struct mc_raft_entry *e = mc_raft_entry_at(n->raft, i);
            assert(e && "a held committed entry left the Raft log");
            rc = node_apply_entry(n, e);
        }
    }
    memmove(n->apply_holds, n->apply_holds + k, (n->n_apply_holds - k) * sizeof(*n->apply_holds));
    n->n_apply_holds -= k;
    return rc;
}

static void on_soft_state(struct mc_node *n, const struct mc_raft_soft_state *ss)
{
    if (ss->leader_id != n->leader_id || ss->role != n->role) {
        MC_INFO("raft_state", "role=%s leader=%llu term=%llu", mc_raft_role_name(ss->role),
                (unsigned long long)ss->leader_id, (unsigned long long)mc_raft_term(n->raft));
    }
    if (ss->leader_id != n->leader_id) {
        node_reads_leader_changed(n);
    }
    if (n->role == MC_RAFT_LEADER && ss->role != MC_RAFT_LEADER) {
        /* Proposals of the old term may never commit: their clients retry (exactly-once). */
        node_fail_writes(n, MC_ENOTLEADER);
    }
    n->leader_id = ss->leader_id;
    n->role = ss->role;
}

struct wal_recs {
    struct mc_wal_record *r;
    size_t cap;
};

static int persist(struct mc_node *n, const struct mc_raft_ready *rd, uint64_t *ticket)
{
    static __thread struct wal_recs recs;
    struct mc_hard_state hs = {rd->hard_state.term, rd->hard_state.vote, rd->hard_state.commit};
    int rc = 0;
    *ticket = 0;
    if (rd->n_entries) {
        uint64_t first = rd->entries[0].index;
        if (first <= mc_wal_last_index(n->wal) && first >= mc_wal_first_index(n->wal)) {
            rc = mc_wal_truncate(n->wal, first, NULL);
        } else if (first != mc_wal_last_index(n->wal) + 1) {
            /* The log restarts after a snapshot. */
            rc = mc_wal_reset(n->wal, first, NULL);
        }
        if (rc) {
            return rc;
        }
        if (recs.cap < rd->n_entries) {
            size_t cap = rd->n_entries < 256 ? 256 : rd->n_entries;
            struct mc_wal_record *r = realloc(recs.r, cap * sizeof(*r));
            if (!r) {
                return MC_ENOMEM;
            }
            recs.r = r;
            recs.cap = cap;
        }
        for (size_t i = 0; i < rd->n_entries; i++) {
            const struct mc_raft_entry *e = &rd->entries[i];
            recs.r[i] = (struct mc_wal_record){e->index, e->term, e->type, e->len, e->data};
        }
        rc = mc_wal_append(n->wal, recs.r, rd->n_entries, rd->hard_state_changed ? &hs : NULL,
                           ticket);
        if (rc == 0) {
            const struct mc_raft_entry *last = &rd->entries[rd->n_entries - 1];
            rc = add_mark(n, *ticket, last->index, last->term);
        }
    } else if (rd->hard_state_changed) {
        rc = mc_wal_set_hard_state(n->wal, &hs, ticket);
    }
    if (*ticket) {
        n->last_ticket = *ticket;
    }
    return rc;
}

static void send_msgs(struct mc_node *n, const struct mc_raft_ready *rd, uint64_t ticket)
{
    uint64_t wait_for = ticket ? ticket : n->last_ticket;
    uint64_t done = atomic_load(&n->wal_done_ticket);
    for (size_t i = 0; i < rd->n_msgs; i++) {
        const struct mc_raft_msg *m = &rd->msgs[i];
        if (m->type == MC_RAFT_MSG_SNAPSHOT) {
            node_start_snapshot_send(n, m);
            continue;
        }
        if (m->wait_persist && wait_for > done) {
            if (hold_msg(n, wait_for, m) != 0) {
                MC_WARN("raft_msg_dropped", "to=%llu reason=held_queue_full",
                        (unsigned long long)m->to);
            }
            continue;
        }
        node_send_raft(n, m);
    }
}

void node_process_ready(struct mc_node *n)
{
    if (n->fatal || !n->raft) {
        return;
    }
    node_flush_batch(n);
    node_flush_reads(n);
    while (mc_raft_has_ready(n->raft)) {
        struct mc_raft_ready rd;
        mc_raft_ready(n->raft, &rd);
        if (rd.soft_state_changed) {
            on_soft_state(n, &rd.soft_state);
        }
        if (rd.snapshot) {
            /* The core installs a snapshot only past its commit index: it covers every hold. */
            assert(n->n_apply_holds == 0 ||
                   n->apply_holds[n->n_apply_holds - 1].index < rd.snapshot->index);
            n->n_apply_holds = 0;
            int rc = node_install_snapshot(n, rd.snapshot);
            if (rc) {
                mc_raft_advance(n->raft, &rd);
                node_fatal(n, "snapshot_install", rc);
                return;
            }
        }
        uint64_t ticket = 0;
        int rc = persist(n, &rd, &ticket);
        if (rc) {
            mc_raft_advance(n->raft, &rd);
            node_fatal(n, "wal_append", rc);
            return;
        }
        send_msgs(n, &rd, ticket);
        /* Held: the test hook, an image copy starting (node_snapshot.c start_copy), or older
         * entries still held (log order). */
        uint64_t delay_ns = apply_delay_ns();
        bool hold = delay_ns || n->apply_paused || n->n_apply_holds > 0;
        if (hold && rd.n_committed) {
            hold_applies(n, rd.committed[rd.n_committed - 1].index, delay_ns);
        }
        for (size_t i = 0; !hold && i < rd.n_committed; i++) {
            rc = node_apply_entry(n, &rd.committed[i]);
            if (rc) {
                mc_raft_advance(n->raft, &rd);
                node_fatal(n, "apply", rc);
                return;
            }
        }
        for (size_t i = 0; i < rd.n_reads; i++) {
            node_on_read_state(n, &rd.reads[i]);
        }
        mc_raft_advance(n->raft, &rd);
        /* WAL completions that arrived meanwhile. */
        node_wal_progress(n);
        if (n->fatal) {
            return;
        }
    }
    int rc = n->n_apply_holds ? apply_held(n) : 0;
    if (rc) {
        node_fatal(n, "apply", rc);
        return;
    }
    node_serve_ready_reads(n);
    node_maybe_snapshot(n);
    node_pump_snapshot_sends(n);
    node_pump_snapshot_saves(n);
    mc_peer_flush(n->peers);
}

/* A Raft message from a peer: decoded and stepped. fresh: it arrived just now, so a message
 * from the leader is leader contact; a replay (node_replay_raft_frame) is not (rev18 H3). */
static void step_raft_frame(struct mc_node *n, uint64_t from, const uint8_t *payload, size_t len,
                            bool fresh)
{
    struct mc_raft_msg m;
    int rc = mc_raft_msg_decode(payload, len, &m);
    if (rc) {
        MC_WARN("peer_bad_raft_msg", "from=%llu err=%s", (unsigned long long)from,
                mc_error_name(rc));
        return;
    }
    if (m.from != from || m.to != n->id) {
        MC_WARN("peer_misaddressed_msg", "from=%llu msg_from=%llu msg_to=%llu",
                (unsigned long long)from, (unsigned long long)m.from, (unsigned long long)m.to);
        mc_raft_msg_free(&m);
        return;
    }
    if (m.type == MC_RAFT_MSG_SNAPSHOT &&
        !node_snapshot_received(n, m.snapshot.index, m.snapshot.term)) {
        /* The data has not fully arrived (or failed): the leader retries. Or an install cannot
         * run now (a finish, a check hash or a snapshot job): kept and stepped when it can. */
        node_snapshot_hold(n, &m, from, payload, len);
        mc_raft_msg_free(&m);
        return;
    }
    /* A replay is not news from the leader: it must not move the contact time that bounds
     * stale reads (max_staleness_ms), however long it was held. */
    if (fresh && (m.type == MC_RAFT_MSG_APPEND || m.type == MC_RAFT_MSG_HEARTBEAT ||
                  m.type == MC_RAFT_MSG_SNAPSHOT)) {
        if (m.term >= mc_raft_term(n->raft)) {
            n->last_leader_contact_ms = node_now_ms();
        }
    }
    if (m.type == MC_RAFT_MSG_READ_INDEX) {
        /* A leader may answer from its lease right here: after a stall it must first count
         * the time that passed (the tick timer runs only after these I/O callbacks). */
        node_catch_up_ticks(n);
    }
    mc_raft_step(n->raft, &m);
    mc_raft_msg_free(&m);
}

void node_on_peer_frame(void *ctx, uint64_t from, uint8_t kind, const uint8_t *payload, size_t len)
{
    struct mc_node *n = ctx;
    if (n->fatal || n->stopping) {
        return;
    }
    if (kind == MC_PEER_SNAP_CHUNK) {
        node_on_snap_chunk(n, from, payload, len);
        return;
    }
    if (kind == MC_PEER_SNAP_ACK) {
        node_on_snap_ack(n, from, payload, len);
        return;
    }
    if (kind == MC_PEER_CHECK) {
        node_check_on_peer(n, from, payload, len);
        return;
    }
    step_raft_frame(n, from, payload, len, true);
}

void node_replay_raft_frame(struct mc_node *n, uint64_t from, const uint8_t *payload, size_t len)
{
    if (n->fatal || n->stopping) {
        return;
    }
    step_raft_frame(n, from, payload, len, false);
}
