/* fuzz_raft_step.c: libFuzzer target driving a 3-node in-memory Raft cluster with forged messages.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "metacenter/error.h"
#include "metacenter/raft.h"

/*
 * raft.h promises that stale, duplicate or malformed-looking messages are ignored, and the raft
 * tests state that no message sequence may trip an assert in a core (Raft is not Byzantine
 * tolerant, so safety is not checked here: only that a core survives). Three real cores exchange
 * their own messages through the codec; the input is a script of actions: ticks, message
 * delivery/drops, proposals, reads, snapshots, leadership transfer, membership changes, and
 * forged messages whose fields are chosen relative to the target's state (its term, last index,
 * commit, term_at) so they are often almost-right, plus raw encoded messages from the input.
 * Checked on every ready: committed entries arrive in index order from applied + 1, the WAL
 * never gets a gap, the hard-state term never decreases.
 */

#define NN        3
#define QMAX      512
#define MAX_STEPS 256
#define PAYLOAD   8

struct node {
    struct mc_raft *r;
    struct mc_raft_hard_state hs;
    uint64_t wal_last;
    uint64_t applied;
};

struct qmsg {
    uint64_t from, to;
    uint8_t type;
    size_t len;
    uint8_t *buf;
};

static struct node N[NN + 1];
static struct qmsg Q[QMAX];
static int nq;

/* Input reader: bytes past the end read as zero. */
struct rd {
    const uint8_t *p;
    size_t n, off;
};
static uint8_t u8(struct rd *r)
{
    return r->off < r->n ? r->p[r->off++] : 0;
}
static uint16_t u16(struct rd *r)
{
    uint16_t lo = u8(r);
    return (uint16_t)(lo | (uint16_t)u8(r) << 8);
}

static void qpush(const struct mc_raft_msg *m)
{
    if (m->to < 1 || m->to > NN || nq >= QMAX) {
        if (m->type == MC_RAFT_MSG_SNAPSHOT && m->from >= 1 && m->from <= NN) {
            mc_raft_report_snapshot(N[m->from].r, m->to, false);
        }
        return;
    }
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    FUZZ_ASSERT(mc_raft_msg_encode(m, &w) == 0, "encode of a core's own message failed");
    Q[nq++] = (struct qmsg){m->from, m->to, m->type, w.len, w.data};
}

static void handle_ready(int i)
{
    struct node *t = &N[i];
    for (int guard = 0; guard < 64 && mc_raft_has_ready(t->r); guard++) {
        struct mc_raft_ready rd;
        mc_raft_ready(t->r, &rd);
        for (size_t k = 0; k < rd.n_msgs; k++) {
            if (!rd.msgs[k].wait_persist) {
                qpush(&rd.msgs[k]);
            }
        }
        if (rd.snapshot) {
            t->wal_last = rd.snapshot->index;
            t->applied = rd.snapshot->index;
        }
        if (rd.n_entries) {
            uint64_t first = rd.entries[0].index;
            FUZZ_ASSERT(first >= 1 && first <= t->wal_last + 1,
                        "node %d: WAL gap (%llu after %llu)", i, (unsigned long long)first,
                        (unsigned long long)t->wal_last);
            for (size_t k = 1; k < rd.n_entries; k++) {
                FUZZ_ASSERT(rd.entries[k].index == rd.entries[k - 1].index + 1,
                            "node %d: entries to persist not consecutive", i);
            }
            t->wal_last = rd.entries[rd.n_entries - 1].index;
        }
        if (rd.hard_state_changed) {
            FUZZ_ASSERT(rd.hard_state.term >= t->hs.term, "node %d: term went back", i);
            t->hs = rd.hard_state;
        }
        for (size_t k = 0; k < rd.n_msgs; k++) {
            if (rd.msgs[k].wait_persist) {
                qpush(&rd.msgs[k]);
            }
        }
        for (size_t k = 0; k < rd.n_committed; k++) {
            const struct mc_raft_entry *e = &rd.committed[k];
            FUZZ_ASSERT(e->index == t->applied + 1, "node %d: applied %llu then %llu", i,
                        (unsigned long long)t->applied, (unsigned long long)e->index);
            FUZZ_ASSERT(e->index <= t->wal_last, "node %d: applies %llu beyond its WAL %llu", i,
                        (unsigned long long)e->index, (unsigned long long)t->wal_last);
            if (e->type == MC_RAFT_ENTRY_CONF) {
                struct mc_raft_conf_change cc;
                struct mc_raft_conf c;
                FUZZ_ASSERT(mc_raft_conf_change_decode(e->data, e->len, &cc, &c) == 0,
                            "node %d: committed conf entry does not decode", i);
            }
            t->applied = e->index;
        }
        uint64_t last = rd.n_entries ? rd.entries[rd.n_entries - 1].index : 0;
        uint64_t lterm = rd.n_entries ? rd.entries[rd.n_entries - 1].term : 0;
        mc_raft_advance(t->r, &rd);
        if (last) {
            mc_raft_persisted(t->r, last, lterm);
        }
    }
}

static void deliver(struct qmsg *q)
{
    struct mc_raft_msg m;
    FUZZ_ASSERT(mc_raft_msg_decode(q->buf, q->len, &m) == 0, "own message does not decode");
    (void)mc_raft_step(N[q->to].r, &m);
    if (m.type == MC_RAFT_MSG_SNAPSHOT && q->from >= 1 && q->from <= NN) {
        mc_raft_report_snapshot(N[q->from].r, q->to, true);
    }
    mc_raft_msg_free(&m);
    free(q->buf);
}

/* Deliver queued messages (and what they produce) for a bounded number of rounds. */
static void pump(int rounds, uint64_t drop_mask)
{
    for (int round = 0; round < rounds; round++) {
        for (int i = 1; i <= NN; i++) {
            handle_ready(i);
        }
        if (nq == 0) {
            return;
        }
        int n = nq;
        static struct qmsg batch[QMAX];
        memcpy(batch, Q, sizeof(Q[0]) * (size_t)n);
        nq = 0;
        for (int k = 0; k < n; k++) {
            if (drop_mask >> (k % 64) & 1) {
                if (batch[k].type == MC_RAFT_MSG_SNAPSHOT) {
                    mc_raft_report_snapshot(N[batch[k].from].r, batch[k].to, false);
                }
                free(batch[k].buf);
            } else {
                deliver(&batch[k]);
            }
        }
    }
}

static void tick_all(void)
{
    for (int i = 1; i <= NN; i++) {
        mc_raft_tick(N[i].r);
    }
}

static int leader(void)
{
    for (int i = 1; i <= NN; i++) {
        if (mc_raft_role(N[i].r) == MC_RAFT_LEADER) {
            return i;
        }
    }
    return 0;
}

/* A message whose fields sit near the target's own state (after the raft tests' generator). */
static void forge(struct rd *in)
{
    static const uint8_t payload[PAYLOAD] = {1, 2, 3, 4, 5, 6, 7, 8};
    struct mc_raft_entry ents[4];
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    uint8_t b = u8(in);
    m.to = 1 + b % NN;
    m.type = (uint8_t)(1 + u8(in) % 12);
    m.from = 1 + (b >> 2) % (NN + 1); /* 4 = not a member */
    if (m.from == m.to) {
        m.from = m.to % NN + 1;
    }
    struct mc_raft *r = N[m.to].r;
    uint64_t base = mc_raft_term(r), li = mc_raft_last_index(r), ci = mc_raft_commit_index(r);
    uint8_t f = u8(in);
    m.term = base + f % 3 - (f % 7 == 0 && base ? 1 : 0);
    m.index = (li > 20 ? li - 20 : 0) + u8(in) % 40;
    if (f & 0x10) {
        m.index = ci + u8(in) % 4;
    }
    m.log_term = (f & 0x20) ? mc_raft_term_at(r, m.index) : u8(in) % (m.term + 1);
    m.commit = m.index + u8(in) % 45 - 20;
    m.reject = (f >> 6) & 1;
    m.reject_hint = u8(in) % 40;
    m.hint_term = u8(in) % 5;
    m.ctx = u8(in);
    m.flags = f >> 7;
    if (m.type == MC_RAFT_MSG_APPEND) {
        m.n_entries = u8(in) % 5;
        uint64_t t = m.log_term;
        for (uint32_t k = 0; k < m.n_entries; k++) {
            uint8_t e = u8(in);
            t += e & 1;
            if (e & 0x80) {
                t = (e >> 1) % (m.term + 2); /* possibly decreasing / too high */
            }
            ents[k] = (struct mc_raft_entry){m.index + 1 + k, t, MC_RAFT_ENTRY_NORMAL, PAYLOAD,
                                             (uint8_t *)payload};
        }
        m.entries = m.n_entries ? ents : NULL;
    }
    if (m.type == MC_RAFT_MSG_SNAPSHOT) {
        m.snapshot.index = m.index;
        m.snapshot.term = m.log_term ? m.log_term : 1;
        uint8_t v = u8(in);
        m.snapshot.conf.n_voters = 1 + v % 3;
        for (uint32_t k = 0; k < m.snapshot.conf.n_voters; k++) {
            m.snapshot.conf.voters[k] = k + 1 + (v >> 4 & 1);
        }
    }
    /* Through the codec, as a peer's bytes would arrive. */
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    FUZZ_ASSERT(mc_raft_msg_encode(&m, &w) == 0, "encode forged");
    struct mc_raft_msg d;
    if (mc_raft_msg_decode(w.data, w.len, &d) == 0) {
        (void)mc_raft_step(r, &d);
        mc_raft_msg_free(&d);
    }
    mc_wbuf_free(&w);
}

/* Raw bytes from the input, decoded as a message and stepped into node `to`. */
static void raw(struct rd *in)
{
    uint8_t to = 1 + u8(in) % NN;
    size_t len = u16(in) % 512;
    if (len > in->n - in->off) {
        len = in->n - in->off;
    }
    struct mc_raft_msg m;
    if (mc_raft_msg_decode(in->p + in->off, len, &m) == 0) {
        m.to = to;
        (void)mc_raft_step(N[to].r, &m);
        mc_raft_msg_free(&m);
    }
    in->off += len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t voters[NN] = {1, 2, 3};
    memset(N, 0, sizeof(N));
    nq = 0;
    for (int i = 1; i <= NN; i++) {
        struct mc_raft_config c;
        memset(&c, 0, sizeof(c));
        c.id = (uint64_t)i;
        c.election_tick = 10;
        c.heartbeat_tick = 1;
        c.seed = 42;
        c.initial_voters = voters;
        c.n_initial_voters = NN;
        c.snapshot_keep_entries = 3;
        c.lease_read = size && (data[0] & 1);
        FUZZ_ASSERT(mc_raft_create(&c, &N[i].r) == 0, "mc_raft_create");
    }
    struct rd in = {data, size, size ? 1 : 0};
    for (int step = 0; step < MAX_STEPS && in.off < in.n; step++) {
        uint8_t op = u8(&in);
        int l = leader();
        switch (op % 10) {
        case 0: /* a few ticks */
            for (int k = 0, n = 1 + u8(&in) % 12; k < n; k++) {
                tick_all();
                pump(4, 0);
            }
            break;
        case 1: /* deliver with some messages dropped */
            pump(1 + u8(&in) % 8, (uint64_t)u8(&in) << (u8(&in) % 56));
            break;
        case 2:
            forge(&in);
            break;
        case 3:
            raw(&in);
            break;
        case 4:
            if (l) {
                static const uint8_t p[PAYLOAD] = {9, 9, 9, 9, 9, 9, 9, 9};
                struct mc_raft_entry e = {.len = u8(&in) % (PAYLOAD + 1), .data = (uint8_t *)p};
                e.data = e.len ? e.data : NULL;
                (void)mc_raft_propose(N[l].r, &e, 1, NULL);
            }
            break;
        case 5:
            (void)mc_raft_read_index(N[1 + u8(&in) % NN].r, u8(&in));
            break;
        case 6: { /* a node snapshots its state machine */
            int i = 1 + u8(&in) % NN;
            uint64_t a = N[i].applied;
            if (a > 0) {
                (void)mc_raft_snapshot_taken(N[i].r, a, mc_raft_term_at(N[i].r, a), NULL);
            }
            break;
        }
        case 7:
            if (l) {
                (void)mc_raft_transfer_leader(N[l].r, 1 + u8(&in) % (NN + 1));
            }
            break;
        case 8:
            if (l) {
                struct mc_raft_conf_change cc = {.type = (uint8_t)(1 + u8(&in) % 4)};
                cc.node_id = 1 + u8(&in) % (NN + 2);
                (void)mc_raft_propose_conf_change(N[l].r, &cc, NULL);
            }
            break;
        default:
            mc_raft_report_unreachable(N[1 + u8(&in) % NN].r, 1 + u8(&in) % NN);
            break;
        }
        pump(2, 0);
    }
    for (int k = 0; k < nq; k++) {
        free(Q[k].buf);
    }
    nq = 0;
    for (int i = 1; i <= NN; i++) {
        struct mc_raft_status st;
        mc_raft_status(N[i].r, &st);
        if (getenv("MC_FUZZ_VERBOSE")) {
            fprintf(stderr, "node %d: role %s term %llu last %llu commit %llu applied %llu\n", i,
                    mc_raft_role_name(st.role), (unsigned long long)st.term,
                    (unsigned long long)st.last_index, (unsigned long long)st.commit,
                    (unsigned long long)N[i].applied);
        }
        FUZZ_ASSERT(st.commit <= st.last_index || st.commit <= st.snapshot_index,
                    "node %d: commit %llu beyond last %llu", i, (unsigned long long)st.commit,
                    (unsigned long long)st.last_index);
        mc_raft_destroy(N[i].r);
    }
    return 0;
}
