/* cluster.c: the in-process cluster: drives real Raft cores per their contract and checks them. */
#include "cluster.h"

#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/codec.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define U(x) ((unsigned long long)(x))

struct held_msg {
    uint32_t to;
    uint8_t *data;
    size_t len;
};

/* A ready's durable work: it completes (in FIFO order) at done_ms unless the node crashes. */
struct sim_dop {
    uint64_t done_ms;
    bool has_hs;
    struct mc_raft_hard_state hs;
    bool has_snap;
    struct mc_raft_snapshot_meta snap;
    struct sim_sm snap_sm;
    uint64_t snap_keep_last; /* entries in (snap.index, snap_keep_last] survive the install */
    struct mc_raft_entry *ents;
    size_t n_ents;
    struct held_msg *msgs;
    size_t n_msgs;
};

/* Packet kinds: a plain encoded message, or a snapshot message with its "file" (the SM image). */
enum { PKT_MSG = 0, PKT_SNAP = 1 };

static void process_ready(struct sim_cluster *c, struct sim_node *n);
static void deliver(struct sim_cluster *c, struct sim_packet *p);

/* ------------------------------------------------------------------------------------------ */
/* small helpers                                                                              */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert(p);
    return p;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    assert(p);
    return p;
}

static uint64_t payload_hash(const struct mc_raft_entry *e)
{
    return mc_checksum64_seed(e->data, e->len, 0x5157 + e->type);
}

static uint64_t rand_between(struct sim_cluster *c, uint64_t lo, uint64_t hi)
{
    return hi > lo ? lo + mc_rand_below(&c->rand, hi - lo + 1) : lo;
}

static bool fail(struct sim_cluster *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static bool fail(struct sim_cluster *c, const char *fmt, ...)
{
    char buf[SIM_CHECK_MSG_BYTES];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return sim_check_fail(&c->check, "%s", buf);
}

bool sim_ok(const struct sim_cluster *c)
{
    return c->check.violations == 0;
}

/* ------------------------------------------------------------------------------------------ */
/* shadow log: mirrors the core's in-memory log (persisted or not) with prefix chains         */

static uint64_t shadow_last(const struct sim_node *n)
{
    return n->log_base + n->log_n;
}

static const struct sim_lent *shadow_at(const struct sim_node *n, uint64_t index)
{
    if (index <= n->log_base || index > shadow_last(n)) {
        return NULL;
    }
    return &n->log[index - n->log_base - 1];
}

/* Chain of the prefix ending at index (index == base allowed); false when unknown. */
static bool shadow_chain(const struct sim_node *n, uint64_t index, uint64_t *term, uint64_t *chain)
{
    if (index == n->log_base) {
        *term = n->log_base_term;
        *chain = n->log_base_chain;
        return true;
    }
    const struct sim_lent *e = shadow_at(n, index);
    if (!e) {
        return false;
    }
    *term = e->term;
    *chain = e->chain;
    return true;
}

static void shadow_append(struct sim_cluster *c, struct sim_node *n, const struct mc_raft_entry *e)
{
    uint64_t prev_term, prev_chain;
    if (e->index <= n->log_base) {
        fail(c, "contract: node %u wrote entry %llu at or below its snapshot %llu", n->id,
             U(e->index), U(n->log_base));
        return;
    }
    if (e->index > shadow_last(n) + 1) {
        fail(c, "contract: node %u wrote entry %llu after a gap (last %llu)", n->id, U(e->index),
             U(shadow_last(n)));
        return;
    }
    n->log_n = e->index - n->log_base - 1; /* truncate: the new entries replace the suffix */
    bool ok = shadow_chain(n, e->index - 1, &prev_term, &prev_chain);
    assert(ok);
    (void)ok;
    if (e->term < prev_term) {
        fail(c, "LogTerms: node %u entry %llu has term %llu below the previous entry's %llu", n->id,
             U(e->index), U(e->term), U(prev_term));
    }
    if (n->log_n == n->log_cap) {
        n->log_cap = n->log_cap ? n->log_cap * 2 : 256;
        n->log = xrealloc(n->log, n->log_cap * sizeof(*n->log));
    }
    uint64_t chain = sim_chain_next(prev_chain, e->index, e->term, payload_hash(e));
    n->log[n->log_n++] = (struct sim_lent){e->term, chain};
    sim_check_log_entry(&c->check, n->id, e->index, e->term, chain);
}

/* Move the shadow base up to index (a snapshot); entries above it are kept. */
static void shadow_rebase(struct sim_node *n, uint64_t index, uint64_t term, uint64_t chain,
                          uint64_t keep_last)
{
    size_t keep = 0;
    if (index < shadow_last(n) && keep_last > index) {
        uint64_t last = keep_last < shadow_last(n) ? keep_last : shadow_last(n);
        keep = (size_t)(last - index);
        memmove(n->log, n->log + (index - n->log_base), keep * sizeof(*n->log));
    }
    n->log_n = keep;
    n->log_base = index;
    n->log_base_term = term;
    n->log_base_chain = chain;
}

/* ------------------------------------------------------------------------------------------ */
/* disk                                                                                       */

static void entry_copy(struct mc_raft_entry *dst, const struct mc_raft_entry *src)
{
    *dst = *src;
    dst->data = NULL;
    if (src->len) {
        dst->data = xmalloc(src->len);
        memcpy(dst->data, src->data, src->len);
    }
}

static uint64_t disk_last(const struct sim_node *n)
{
    return n->disk_first + n->disk_n - 1;
}

/* Drop durable entries with index >= from (from may be below disk_first: drop all). */
static void disk_truncate(struct sim_node *n, uint64_t from)
{
    while (n->disk_n > 0 && disk_last(n) >= from) {
        free(n->disk_log[--n->disk_n].data);
    }
}

/* Drop durable entries with index <= upto (compaction). */
static void disk_compact(struct sim_node *n, uint64_t upto)
{
    size_t drop = 0;
    while (drop < n->disk_n && n->disk_first + drop <= upto) {
        free(n->disk_log[drop].data);
        drop++;
    }
    if (drop > 0 && drop < n->disk_n) {
        memmove(n->disk_log, n->disk_log + drop, (n->disk_n - drop) * sizeof(*n->disk_log));
    }
    n->disk_n -= drop;
    n->disk_first += drop;
    if (n->disk_n == 0 && n->disk_first <= upto) {
        n->disk_first = upto + 1;
    }
}

static void dop_free(struct sim_dop *op)
{
    for (size_t i = 0; i < op->n_ents; i++) {
        free(op->ents[i].data);
    }
    free(op->ents);
    for (size_t i = 0; i < op->n_msgs; i++) {
        free(op->msgs[i].data);
    }
    free(op->msgs);
    memset(op, 0, sizeof(*op));
}

static void packet_send(struct sim_cluster *c, uint32_t from, uint32_t to, uint8_t *data,
                        size_t len)
{
    if (to == 0 || to > SIM_MAX_NODE_ID) {
        free(data);
        return;
    }
    sim_net_send(&c->net, c->now_ms, from, to, data, len);
}

/* Make op durable: the WAL write + fsync finished. */
static void dop_complete(struct sim_cluster *c, struct sim_node *n, struct sim_dop *op)
{
    if (op->has_snap) {
        n->disk_has_snap = true;
        n->disk_snap = op->snap;
        n->disk_snap_sm = op->snap_sm;
        disk_truncate(n, op->snap_keep_last + 1);
        disk_compact(n, op->snap.index);
        if (n->disk_n == 0) {
            n->disk_first = op->snap.index + 1;
        }
    }
    for (size_t i = 0; i < op->n_ents; i++) {
        /* Entries may hold several runs (merged writes): each run replaces the suffix. */
        struct mc_raft_entry *e = &op->ents[i];
        uint64_t lo = n->disk_has_snap ? n->disk_snap.index + 1 : 1;
        if (n->disk_n == 0) {
            n->disk_first = e->index;
            if (e->index != lo) {
                fail(c, "contract: node %u WAL write at %llu leaves a gap (expected %llu)", n->id,
                     U(e->index), U(lo));
            }
        } else if (e->index > disk_last(n) + 1 || e->index < n->disk_first) {
            fail(c, "contract: node %u WAL write at %llu outside [%llu, %llu]", n->id, U(e->index),
                 U(n->disk_first), U(disk_last(n) + 1));
        } else {
            disk_truncate(n, e->index);
            if (n->disk_n == 0) {
                n->disk_first = e->index;
            }
        }
        if (n->disk_n == n->disk_cap) {
            n->disk_cap = n->disk_cap ? n->disk_cap * 2 : 256;
            n->disk_log = xrealloc(n->disk_log, n->disk_cap * sizeof(*n->disk_log));
        }
        n->disk_log[n->disk_n++] = *e;
        e->data = NULL;
    }
    free(op->ents);
    op->ents = NULL;
    op->n_ents = 0;
    if (op->has_hs) {
        if (op->hs.term < n->disk_hs.term) {
            fail(c, "TermMonotonic: node %u persisted term %llu after %llu", n->id, U(op->hs.term),
                 U(n->disk_hs.term));
        }
        if (op->hs.term == n->disk_hs.term && n->disk_hs.vote && op->hs.vote != n->disk_hs.vote) {
            fail(c, "OneVote: node %u changed its vote in term %llu from %llu to %llu", n->id,
                 U(op->hs.term), U(n->disk_hs.vote), U(op->hs.vote));
        }
        if (op->hs.commit < n->disk_hs.commit) {
            fail(c, "CommitMonotonic: node %u persisted commit %llu after %llu", n->id,
                 U(op->hs.commit), U(n->disk_hs.commit));
        }
        n->disk_hs = op->hs;
    }
    for (size_t i = 0; i < op->n_msgs; i++) {
        packet_send(c, n->id, op->msgs[i].to, op->msgs[i].data, op->msgs[i].len);
        op->msgs[i].data = NULL;
    }
    dop_free(op);
}

/* ------------------------------------------------------------------------------------------ */
/* messages                                                                                   */

static void trace_msg(struct sim_cluster *c, const struct mc_raft_msg *m, const char *what)
{
    uint64_t rec[14] = {c->now_ms,    (uint64_t)what[0] << 8 | what[4],
                        m->type,      m->from,
                        m->to,        m->term,
                        m->index,     m->log_term,
                        m->commit,    m->n_entries,
                        m->reject,    m->reject_hint,
                        m->hint_term, m->ctx};
    sim_trace_bin(&c->trace, rec, sizeof(rec));
    if (c->trace.verbose) {
        fprintf(c->trace.verbose,
                "%llu.%03llu %s %llu->%llu %s t=%llu i=%llu lt=%llu c=%llu n=%u rj=%u h=%llu "
                "ht=%llu x=%llu\n",
                U(c->now_ms / 1000), U(c->now_ms % 1000), what, U(m->from), U(m->to),
                mc_raft_msg_type_name(m->type), U(m->term), U(m->index), U(m->log_term),
                U(m->commit), m->n_entries, m->reject, U(m->reject_hint), U(m->hint_term),
                U(m->ctx));
    }
}

/* Encode m into a packet buffer (with the sender's snapshot image for MC_RAFT_MSG_SNAPSHOT). */
static bool encode_msg(struct sim_cluster *c, struct sim_node *n, const struct mc_raft_msg *m,
                       uint8_t **data, size_t *len)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    bool snap = m->type == MC_RAFT_MSG_SNAPSHOT;
    mc_wbuf_u8(&w, snap ? PKT_SNAP : PKT_MSG);
    if (snap) {
        /* The "file" the driver streams: the sender's snapshot at exactly the message's index. */
        if (!n->disk_has_snap || n->disk_snap.index != m->snapshot.index) {
            fail(c, "contract: node %u sends snapshot %llu but its latest is %llu", n->id,
                 U(m->snapshot.index), U(n->disk_has_snap ? n->disk_snap.index : 0));
            mc_wbuf_free(&w);
            return false;
        }
        mc_wbuf_put(&w, &n->disk_snap_sm, sizeof(n->disk_snap_sm));
    }
    int rc = mc_raft_msg_encode(m, &w);
    if (rc != 0 || mc_wbuf_error(&w)) {
        fail(c, "codec: node %u could not encode a %s: %s", n->id, mc_raft_msg_type_name(m->type),
             mc_strerror(rc));
        mc_wbuf_free(&w);
        return false;
    }
    *data = w.data;
    *len = w.len;
    return true;
}

static void count_msg(struct sim_cluster *c, const struct mc_raft_msg *m)
{
    if (m->type <= SIM_MSG_TYPES) {
        c->msgs_by_type[m->type]++;
        c->sent_by[m->from][m->type]++;
    }
    if (m->type == MC_RAFT_MSG_APPEND_RESP && m->reject) {
        c->append_rejects_by[m->from]++;
    }
    if (m->type == MC_RAFT_MSG_APPEND) {
        c->entries_sent += m->n_entries;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* client ops and the state machine                                                           */

static void op_remove(struct sim_node *n, size_t i)
{
    n->ops[i] = n->ops[--n->n_ops];
}

static void fail_all_ops(struct sim_cluster *c, struct sim_node *n)
{
    c->failed_ops += n->n_ops;
    n->n_ops = 0;
}

static void serve_reads(struct sim_cluster *c, struct sim_node *n)
{
    for (size_t i = 0; i < n->n_ops;) {
        struct sim_client_op *op = &n->ops[i];
        if (!op->is_read || op->index == 0 || n->sm.applied < op->index) {
            i++;
            continue;
        }
        /* Linearizable read: the value must include every write acknowledged before the read
         * began (thesis §6.4). The register's index is the state's applied index. */
        if (n->sm.applied < op->need_index) {
            fail(c,
                 "StaleRead: node %u served read %llu at applied %llu (read index %llu) but a "
                 "write at index %llu was acknowledged before it began",
                 n->id, U(op->id), U(n->sm.applied), U(op->index), U(op->need_index));
        }
        sim_trace(&c->trace, c->now_ms, "read-ok n%u ctx=%llu ri=%llu applied=%llu val=%llu", n->id,
                  U(op->id), U(op->index), U(n->sm.applied), U(n->sm.last_write));
        c->acked_reads++;
        c->last_read_ctx = op->id;
        c->last_read_index = op->index;
        op_remove(n, i);
    }
}

static void apply_entry(struct sim_cluster *c, struct sim_node *n, const struct mc_raft_entry *e)
{
    if (e->index != n->sm.applied + 1) {
        fail(c, "ApplyOrder: node %u applied index %llu after %llu", n->id, U(e->index),
             U(n->sm.applied));
        return;
    }
    uint64_t chain = sim_chain_next(n->sm.chain, e->index, e->term, payload_hash(e));
    n->sm.applied = e->index;
    n->sm.term = e->term;
    n->sm.chain = chain;
    sim_check_committed(&c->check, n->id, n->term, e->index, e->term, chain, "applied");
    uint64_t wid = 0;
    if (e->type == MC_RAFT_ENTRY_NORMAL && e->len >= 8) {
        wid = mc_get_u64le(e->data);
        n->sm.last_write = wid;
        n->sm.writes++;
    } else if (e->type == MC_RAFT_ENTRY_CONF) {
        struct mc_raft_conf_change cc;
        struct mc_raft_conf conf;
        if (mc_raft_conf_change_decode(e->data, e->len, &cc, &conf) != 0) {
            fail(c, "codec: node %u cannot decode conf entry %llu", n->id, U(e->index));
        } else if (cc.type == MC_RAFT_CONF_REMOVE && cc.node_id <= SIM_MAX_NODE_ID &&
                   cc.node_id != n->id) {
            /* Committed removal: the operator stops the removed node for good. */
            c->nodes[cc.node_id].removed = true;
        }
    }
    for (size_t i = 0; i < n->n_ops;) {
        struct sim_client_op *op = &n->ops[i];
        if (op->is_read || op->index != e->index) {
            i++;
            continue;
        }
        if (op->id == wid && op->term == e->term) {
            if (e->index > c->check.acked_write_max) {
                c->check.acked_write_max = e->index;
            }
            c->acked_writes++;
            c->last_acked_write_id = wid;
            if (wid >= c->acked_cap) {
                size_t cap = c->acked_cap ? c->acked_cap : 1024;
                while (cap <= wid) {
                    cap *= 2;
                }
                c->acked = xrealloc(c->acked, cap);
                memset(c->acked + c->acked_cap, 0, cap - c->acked_cap);
                c->acked_cap = cap;
            }
            c->acked[wid] = 1;
            c->last_acked_write_index = e->index;
            sim_trace(&c->trace, c->now_ms, "write-ok n%u id=%llu idx=%llu", n->id, U(wid),
                      U(e->index));
        } else {
            c->failed_ops++;
            sim_trace(&c->trace, c->now_ms, "write-lost n%u id=%llu idx=%llu", n->id, U(op->id),
                      U(e->index));
        }
        op_remove(n, i);
    }
    serve_reads(c, n);
}

/* ------------------------------------------------------------------------------------------ */
/* the ready loop (the driver, per the contract in raft.h)                                    */

/* LogBytes: the core's count of the payload bytes it holds (metacenter_raft_log_bytes, what
 * --snapshot-tail-mb bounds) is the sum over the entries it holds. O(log), so every 64 steps. */
static void check_log_bytes(struct sim_cluster *c, struct sim_node *n)
{
    if (c->steps % 64 != 0) {
        return;
    }
    struct mc_raft_status st;
    mc_raft_status(n->r, &st);
    uint64_t sum = 0;
    for (uint64_t i = st.first_index; i <= st.last_index; i++) {
        const struct mc_raft_entry *e = mc_raft_entry_at(n->r, i);
        sum += e ? e->len : 0;
    }
    if (sum != st.log_bytes) {
        fail(c, "LogBytes: node %u holds %llu payload bytes in [%llu..%llu], counts %llu", n->id,
             U(sum), U(st.first_index), U(st.last_index), U(st.log_bytes));
    }
}

static void note_commit(struct sim_cluster *c, struct sim_node *n, uint64_t commit, bool leading)
{
    if (leading && commit > n->commit && !c->o.no_commit_term_check) {
        /* Raft §5.4.2 (Figure 8): a leader advances its commit index only to an entry of its own
         * term; older entries are committed indirectly, never by counting replicas. */
        const struct sim_lent *e = shadow_at(n, commit);
        if (e && e->term != n->term) {
            fail(c,
                 "CommitCurrentTerm: leader %u (term %llu) advanced commit to %llu whose "
                 "term is %llu (Raft 5.4.2)",
                 n->id, U(n->term), U(commit), U(e->term));
            return;
        }
    }
    if (commit < n->commit) {
        fail(c, "CommitMonotonic: node %u commit went from %llu back to %llu", n->id, U(n->commit),
             U(commit));
        return;
    }
    if (commit > shadow_last(n)) {
        fail(c, "CommitBeyondLog: node %u commit %llu > last index %llu", n->id, U(commit),
             U(shadow_last(n)));
        return;
    }
    for (uint64_t i = n->commit + 1; i <= commit; i++) {
        uint64_t term, chain;
        if (shadow_chain(n, i, &term, &chain)) {
            sim_check_committed(&c->check, n->id, n->term, i, term, chain, "committed");
        }
    }
    n->commit = commit;
}

bool sim_check_leader_log(struct sim_cluster *c, uint32_t id)
{
    struct sim_node *n = &c->nodes[id];
    uint64_t cm = sim_check_must_hold(&c->check, n->term);
    if (cm == 0 || cm < n->log_base) {
        return true;
    }
    const struct sim_committed *want = sim_check_get_committed(&c->check, cm);
    uint64_t term, chain;
    if (!shadow_chain(n, cm, &term, &chain)) {
        return sim_check_fail(&c->check,
                              "LeaderCompleteness: leader %u (term %llu) lacks committed index "
                              "%llu (its last index is %llu)",
                              id, U(n->term), U(cm), U(shadow_last(n)));
    }
    if (want && want->chain != chain) {
        return sim_check_fail(&c->check,
                              "LeaderCompleteness: leader %u (term %llu) has term %llu at "
                              "committed index %llu, committed term %llu",
                              id, U(n->term), U(term), U(cm), U(want->term));
    }
    return true;
}

static void install_snapshot(struct sim_cluster *c, struct sim_node *n,
                             const struct mc_raft_snapshot_meta *s, struct sim_dop *op)
{
    if (!n->has_incoming_snap || n->incoming_snap.applied != s->index) {
        fail(c, "contract: node %u asked to install snapshot %llu it never received", n->id,
             U(s->index));
        return;
    }
    if (n->incoming_snap.term != s->term) {
        fail(c, "SnapshotTerm: node %u snapshot %llu has term %llu, image says %llu", n->id,
             U(s->index), U(s->term), U(n->incoming_snap.term));
    }
    sim_trace(&c->trace, c->now_ms, "install n%u snap=%llu t=%llu", n->id, U(s->index), U(s->term));
    c->snapshots_installed++;
    n->sm = n->incoming_snap;
    n->has_incoming_snap = false;
    sim_check_committed(&c->check, n->id, n->term, s->index, s->term, n->sm.chain,
                        "installed snapshot");
    /* Keep the shadow's suffix only where the core kept it (the entry terms still agree). */
    uint64_t keep_last = s->index;
    while (keep_last < shadow_last(n)) {
        const struct sim_lent *e = shadow_at(n, keep_last + 1);
        if (mc_raft_term_at(n->r, keep_last + 1) != e->term) {
            break;
        }
        keep_last++;
    }
    shadow_rebase(n, s->index, s->term, n->sm.chain, keep_last);
    if (n->commit < s->index) {
        n->commit = s->index;
    }
    op->has_snap = true;
    op->snap = *s;
    op->snap_sm = n->sm;
    op->snap_keep_last = keep_last;
    /* Client writes proposed at or below the snapshot have an unknown outcome now. */
    for (size_t i = 0; i < n->n_ops;) {
        if (!n->ops[i].is_read && n->ops[i].index <= s->index) {
            c->failed_ops++;
            op_remove(n, i);
        } else {
            i++;
        }
    }
}

static void handle_read_state(struct sim_cluster *c, struct sim_node *n,
                              const struct mc_raft_read_state *rs)
{
    for (size_t i = 0; i < n->n_ops; i++) {
        struct sim_client_op *op = &n->ops[i];
        if (!op->is_read || op->id != rs->ctx) {
            continue;
        }
        if (rs->err) {
            c->failed_ops++;
            op_remove(n, i);
            return;
        }
        op->index = rs->index;
        sim_trace(&c->trace, c->now_ms, "read-index n%u ctx=%llu ri=%llu need=%llu", n->id,
                  U(rs->ctx), U(rs->index), U(op->need_index));
        if (rs->index < op->need_index) {
            fail(c,
                 "StaleRead: node %u got read index %llu for read %llu, but a write at index "
                 "%llu was acknowledged before the read began",
                 n->id, U(rs->index), U(rs->ctx), U(op->need_index));
        }
        serve_reads(c, n);
        return;
    }
}

static uint64_t disk_latency(struct sim_cluster *c)
{
    return rand_between(c, c->o.disk_min_ms, c->o.disk_max_ms);
}

static struct sim_dop *dop_push(struct sim_cluster *c, struct sim_node *n)
{
    if (!n->dops) {
        n->dops = xmalloc(SIM_MAX_PENDING_OPS * sizeof(*n->dops));
    }
    assert(n->dops_len < SIM_MAX_PENDING_OPS);
    uint64_t done = c->now_ms + disk_latency(c);
    if (n->dops_len > 0) {
        struct sim_dop *prev = &n->dops[(n->dops_head + n->dops_len - 1) % SIM_MAX_PENDING_OPS];
        if (done < prev->done_ms) {
            done = prev->done_ms; /* one WAL: writes become durable in order */
        }
    }
    struct sim_dop *op = &n->dops[(n->dops_head + n->dops_len) % SIM_MAX_PENDING_OPS];
    n->dops_len++;
    memset(op, 0, sizeof(*op));
    op->done_ms = done;
    return op;
}

/*
 * Group commit: when the newest pending write would not complete before tmp anyway (FIFO), fold
 * tmp into it (one fsync covers both). Also bounds the queue at SIM_MAX_PENDING_OPS.
 */
static bool dop_merge(struct sim_cluster *c, struct sim_node *n, struct sim_dop *tmp)
{
    if (n->dops_len == 0 || tmp->has_snap) {
        return false;
    }
    struct sim_dop *last = &n->dops[(n->dops_head + n->dops_len - 1) % SIM_MAX_PENDING_OPS];
    if (last->done_ms < c->now_ms + c->o.disk_max_ms && n->dops_len < SIM_MAX_PENDING_OPS) {
        return false;
    }
    if (tmp->has_hs) {
        last->has_hs = true;
        last->hs = tmp->hs;
    }
    if (tmp->n_ents) {
        last->ents = xrealloc(last->ents, (last->n_ents + tmp->n_ents) * sizeof(*last->ents));
        memcpy(last->ents + last->n_ents, tmp->ents, tmp->n_ents * sizeof(*tmp->ents));
        last->n_ents += tmp->n_ents;
        free(tmp->ents);
    }
    if (tmp->n_msgs) {
        last->msgs = xrealloc(last->msgs, (last->n_msgs + tmp->n_msgs) * sizeof(*last->msgs));
        memcpy(last->msgs + last->n_msgs, tmp->msgs, tmp->n_msgs * sizeof(*tmp->msgs));
        last->n_msgs += tmp->n_msgs;
        free(tmp->msgs);
    }
    memset(tmp, 0, sizeof(*tmp));
    return true;
}

/* Complete the oldest pending disk write of n; tells the core what is durable. */
static void dop_pop_complete(struct sim_cluster *c, struct sim_node *n)
{
    assert(n->dops_len > 0);
    struct sim_dop op = n->dops[n->dops_head];
    n->dops_head = (n->dops_head + 1) % SIM_MAX_PENDING_OPS;
    n->dops_len--;
    bool had_ents = op.n_ents > 0;
    dop_complete(c, n, &op);
    if (had_ents && n->disk_n > 0) {
        const struct mc_raft_entry *last = &n->disk_log[n->disk_n - 1];
        mc_raft_persisted(n->r, last->index, last->term);
    }
}

/* Readies one input may cause before the loop counts as stuck (has_ready never clears). */
#define SIM_MAX_READY_LOOPS 10000

static void process_ready(struct sim_cluster *c, struct sim_node *n)
{
    uint32_t loops = 0;
    while (n->up && !n->paused && sim_ok(c) && mc_raft_has_ready(n->r)) {
        struct mc_raft_ready rd;
        mc_raft_ready(n->r, &rd);
        if (++loops > SIM_MAX_READY_LOOPS) {
            fail(c,
                 "contract: node %u has_ready stays true with an empty-looking ready (ss=%d "
                 "hs=%d snap=%d ents=%zu msgs=%zu committed=%zu reads=%zu)",
                 n->id, rd.soft_state_changed, rd.hard_state_changed, rd.snapshot != NULL,
                 rd.n_entries, rd.n_msgs, rd.n_committed, rd.n_reads);
            mc_raft_advance(n->r, &rd);
            return;
        }
        struct sim_dop tmp;
        memset(&tmp, 0, sizeof(tmp));
        bool became_leader = false;
        bool was_leader = n->role == MC_RAFT_LEADER;
        if (rd.soft_state_changed) {
            became_leader = rd.soft_state.role == MC_RAFT_LEADER && n->role != MC_RAFT_LEADER;
            n->role = rd.soft_state.role;
            n->leader = rd.soft_state.leader_id;
        }
        uint64_t term = mc_raft_term(n->r);
        if (term < n->term) {
            fail(c, "TermMonotonic: node %u term went from %llu to %llu", n->id, U(n->term),
                 U(term));
        }
        n->term = term;
        if (rd.soft_state_changed) {
            sim_trace(&c->trace, c->now_ms, "role n%u %s term=%llu leader=%llu", n->id,
                      mc_raft_role_name(n->role), U(term), U(n->leader));
        }
        if (rd.snapshot) {
            install_snapshot(c, n, rd.snapshot, &tmp);
        }
        if (rd.n_entries) {
            sim_trace(&c->trace, c->now_ms, "append n%u [%llu..%llu] t=%llu", n->id,
                      U(rd.entries[0].index), U(rd.entries[rd.n_entries - 1].index),
                      U(rd.entries[rd.n_entries - 1].term));
            tmp.ents = xmalloc(rd.n_entries * sizeof(*tmp.ents));
            for (size_t i = 0; i < rd.n_entries; i++) {
                shadow_append(c, n, &rd.entries[i]);
                entry_copy(&tmp.ents[i], &rd.entries[i]);
            }
            tmp.n_ents = rd.n_entries;
        }
        if (rd.hard_state_changed) {
            if (rd.hard_state.term != term) {
                fail(c, "contract: node %u hard state term %llu != term %llu", n->id,
                     U(rd.hard_state.term), U(term));
            }
            note_commit(c, n, rd.hard_state.commit,
                        was_leader && n->role == MC_RAFT_LEADER && rd.hard_state.term == n->term);
            tmp.has_hs = true;
            tmp.hs = rd.hard_state;
        }
        check_log_bytes(c, n);
        if (became_leader) {
            sim_trace(&c->trace, c->now_ms, "leader n%u term=%llu last=%llu", n->id, U(term),
                      U(shadow_last(n)));
            sim_check_leader(&c->check, term, n->id);
            sim_check_leader_log(c, n->id);
        }
        for (size_t i = 0; i < rd.n_msgs; i++) {
            const struct mc_raft_msg *m = &rd.msgs[i];
            uint8_t *data;
            size_t len;
            if (m->from != n->id) {
                fail(c, "contract: node %u emitted a message from %llu", n->id, U(m->from));
                continue;
            }
            if (!encode_msg(c, n, m, &data, &len)) {
                continue;
            }
            count_msg(c, m);
            trace_msg(c, m, m->wait_persist ? "send-p" : "send");
            if (!m->wait_persist) {
                packet_send(c, n->id, (uint32_t)m->to, data, len);
            } else {
                tmp.msgs = xrealloc(tmp.msgs, (tmp.n_msgs + 1) * sizeof(*tmp.msgs));
                tmp.msgs[tmp.n_msgs++] = (struct held_msg){(uint32_t)m->to, data, len};
            }
        }
        for (size_t i = 0; i < rd.n_committed; i++) {
            apply_entry(c, n, &rd.committed[i]);
        }
        for (size_t i = 0; i < rd.n_reads; i++) {
            handle_read_state(c, n, &rd.reads[i]);
        }
        mc_raft_advance(n->r, &rd);
        if (tmp.has_hs || tmp.has_snap || tmp.n_ents || tmp.n_msgs) {
            if (dop_merge(c, n, &tmp)) {
                continue;
            }
            struct sim_dop *op = dop_push(c, n);
            uint64_t done = op->done_ms;
            *op = tmp;
            op->done_ms = done;
            if (done <= c->now_ms && n->dops_len == 1) {
                dop_pop_complete(c, n); /* a synchronous disk */
            }
        }
    }
}

/* ------------------------------------------------------------------------------------------ */
/* nodes                                                                                      */

static void shadow_from_disk(struct sim_cluster *c, struct sim_node *n)
{
    n->log_n = 0;
    n->log_base = n->disk_has_snap ? n->disk_snap.index : 0;
    n->log_base_term = n->disk_has_snap ? n->disk_snap.term : 0;
    n->log_base_chain = n->disk_has_snap ? n->disk_snap_sm.chain : 0;
    for (size_t i = 0; i < n->disk_n; i++) {
        shadow_append(c, n, &n->disk_log[i]);
    }
}

static int node_start(struct sim_cluster *c, struct sim_node *n, bool initial)
{
    struct mc_raft_config cfg = c->o.raft;
    uint64_t voters[SIM_MAX_NODE_ID], learners[SIM_MAX_NODE_ID];
    size_t nv = 0, nl = 0;
    if (initial) {
        for (uint32_t i = 1; i <= c->o.nodes; i++) {
            voters[nv++] = i;
        }
        for (uint32_t i = 0; i < c->o.learners; i++) {
            learners[nl++] = c->o.nodes + 1 + i;
        }
    }
    cfg.id = n->id;
    cfg.seed = mc_checksum64_seed(&n->incarnation, sizeof(n->incarnation), c->o.seed * 131 + n->id);
    cfg.initial_voters = nv ? voters : NULL;
    cfg.n_initial_voters = nv;
    cfg.initial_learners = nl ? learners : NULL;
    cfg.n_initial_learners = nl;
    struct mc_raft_restore rs;
    memset(&rs, 0, sizeof(rs));
    rs.hard_state = n->disk_hs;
    rs.has_snapshot = n->disk_has_snap;
    rs.snapshot = n->disk_snap;
    rs.entries = n->disk_log;
    rs.n_entries = n->disk_n;
    rs.applied = n->disk_has_snap ? n->disk_snap.index : 0;
    cfg.restore = &rs;
    int rc = mc_raft_create(&cfg, &n->r);
    if (rc != 0) {
        fail(c, "restart: node %u mc_raft_create failed: %s", n->id, mc_strerror(rc));
        return rc;
    }
    n->incarnation++;
    n->up = true;
    n->paused = false;
    n->role = MC_RAFT_FOLLOWER;
    n->leader = 0;
    n->term = n->disk_hs.term;
    n->commit = n->disk_hs.commit;
    memset(&n->sm, 0, sizeof(n->sm));
    if (n->disk_has_snap) {
        n->sm = n->disk_snap_sm;
    }
    n->has_incoming_snap = false;
    shadow_from_disk(c, n);
    if (n->commit < n->log_base) {
        n->commit = n->log_base;
    }
    n->tick_ms = c->o.tick_ms;
    if (c->o.tick_skew_ms) {
        n->tick_ms = (uint32_t)rand_between(c, c->o.tick_ms - c->o.tick_skew_ms,
                                            c->o.tick_ms + c->o.tick_skew_ms);
    }
    n->next_tick_ms = c->now_ms + 1 + mc_rand_below(&c->rand, n->tick_ms);
    sim_trace(&c->trace, c->now_ms, "start n%u inc=%llu term=%llu commit=%llu snap=%llu last=%llu",
              n->id, U(n->incarnation), U(n->term), U(n->commit), U(n->log_base),
              U(shadow_last(n)));
    process_ready(c, n);
    return 0;
}

void sim_crash(struct sim_cluster *c, uint32_t id)
{
    struct sim_node *n = &c->nodes[id];
    if (!n->up) {
        return;
    }
    sim_trace(&c->trace, c->now_ms, "crash n%u pending_writes=%zu", id, n->dops_len);
    mc_raft_destroy(n->r);
    n->r = NULL;
    n->up = false;
    n->paused = false;
    while (n->dops_len > 0) {
        dop_free(&n->dops[n->dops_head]);
        n->dops_head = (n->dops_head + 1) % SIM_MAX_PENDING_OPS;
        n->dops_len--;
    }
    fail_all_ops(c, n);
    for (size_t i = 0; i < n->inbox_n; i++) {
        free(n->inbox[i].data);
    }
    n->inbox_n = 0;
    n->role = MC_RAFT_FOLLOWER;
    n->leader = 0;
    n->has_incoming_snap = false;
}

void sim_wipe(struct sim_cluster *c, uint32_t id)
{
    struct sim_node *n = &c->nodes[id];
    sim_crash(c, id);
    sim_trace(&c->trace, c->now_ms, "wipe n%u (data dir lost)", id);
    for (size_t i = 0; i < n->disk_n; i++) {
        free(n->disk_log[i].data);
    }
    n->disk_n = 0;
    n->disk_first = 1;
    memset(&n->disk_hs, 0, sizeof(n->disk_hs));
    n->disk_has_snap = false;
    memset(&n->disk_snap, 0, sizeof(n->disk_snap));
    memset(&n->disk_snap_sm, 0, sizeof(n->disk_snap_sm));
}

int sim_restart(struct sim_cluster *c, uint32_t id)
{
    struct sim_node *n = &c->nodes[id];
    if (!n->exists || n->up) {
        return MC_EINVAL;
    }
    return node_start(c, n, n->id <= c->o.nodes + c->o.learners);
}

void sim_pause(struct sim_cluster *c, uint32_t id)
{
    struct sim_node *n = &c->nodes[id];
    if (n->up && !n->paused) {
        sim_trace(&c->trace, c->now_ms, "pause n%u", id);
        n->paused = true;
    }
}

void sim_resume(struct sim_cluster *c, uint32_t id)
{
    struct sim_node *n = &c->nodes[id];
    if (n->up && n->paused) {
        sim_trace(&c->trace, c->now_ms, "resume n%u", id);
        n->paused = false;
        if (n->next_tick_ms < c->now_ms) {
            n->next_tick_ms = c->now_ms; /* a timer fires once after a stall; no catch-up */
        }
        process_ready(c, n);
        /* What piled up in its socket buffers is read from the next step on, in arrival order,
         * so a request arriving right at resume races with it (as after SIGCONT). */
        for (size_t i = 0; i < n->inbox_n; i++) {
            sim_net_requeue(&c->net, &n->inbox[i], c->now_ms);
        }
        n->inbox_n = 0;
    }
}

uint32_t sim_add_node(struct sim_cluster *c)
{
    if (c->max_id >= SIM_MAX_NODE_ID) {
        return 0;
    }
    uint32_t id = ++c->max_id;
    struct sim_node *n = &c->nodes[id];
    n->id = id;
    n->exists = true;
    n->disk_first = 1;
    if (node_start(c, n, false) != 0) {
        return 0;
    }
    return id;
}

/* ------------------------------------------------------------------------------------------ */
/* cluster                                                                                    */

void sim_opts_defaults(struct sim_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->nodes = 3;
    o->tick_ms = 10;
    mc_raft_config_defaults(&o->raft);
}

struct sim_cluster *sim_cluster_new(const struct sim_opts *o)
{
    struct sim_cluster *c = calloc(1, sizeof(*c));
    if (!c) {
        return NULL;
    }
    c->o = *o;
    if (c->o.tick_ms == 0) {
        c->o.tick_ms = 10;
    }
    assert(c->o.tick_skew_ms < c->o.tick_ms);
    assert(o->nodes + o->learners <= SIM_MAX_NODE_ID);
    mc_rand_seed(&c->rand, o->seed);
    sim_net_init(&c->net, &c->rand);
    sim_check_init(&c->check);
    sim_trace_init(&c->trace, o->verbose);
    c->next_write_id = 1;
    c->next_read_ctx = 1;
    c->max_id = o->nodes + o->learners;
    for (uint32_t id = 1; id <= c->max_id; id++) {
        struct sim_node *n = &c->nodes[id];
        n->id = id;
        n->exists = true;
        n->disk_first = 1;
    }
    for (uint32_t id = 1; id <= c->max_id; id++) {
        if (node_start(c, &c->nodes[id], true) != 0) {
            break;
        }
    }
    return c;
}

void sim_cluster_free(struct sim_cluster *c)
{
    if (!c) {
        return;
    }
    for (uint32_t id = 1; id <= SIM_MAX_NODE_ID; id++) {
        struct sim_node *n = &c->nodes[id];
        if (n->up) {
            sim_crash(c, id);
        }
        free(n->dops);
        free(n->inbox);
        for (size_t i = 0; i < n->disk_n; i++) {
            free(n->disk_log[i].data);
        }
        free(n->disk_log);
        free(n->log);
    }
    sim_net_free(&c->net);
    sim_check_free(&c->check);
    free(c->acked);
    free(c);
}

static void deliver(struct sim_cluster *c, struct sim_packet *p)
{
    struct sim_node *to = &c->nodes[p->to];
    struct sim_node *from = &c->nodes[p->from];
    bool snap = p->len > 0 && p->data[0] == PKT_SNAP;
    bool link = sim_net_link_ok(&c->net, p->from, p->to);
    if (!to->up || !link) {
        if (!link) {
            c->net.cut++;
        }
        if (from->up && !from->paused) {
            /* The transport notices the failed connection (a TCP reset or timeout). */
            if (snap) {
                mc_raft_report_snapshot(from->r, p->to, false);
            }
            mc_raft_report_unreachable(from->r, p->to);
            process_ready(c, from);
        }
        return;
    }
    struct mc_rbuf rb;
    mc_rbuf_init(&rb, p->data, p->len);
    mc_rbuf_u8(&rb);
    struct sim_sm image;
    memset(&image, 0, sizeof(image));
    if (snap) {
        const uint8_t *raw = mc_rbuf_take(&rb, sizeof(image));
        if (raw) {
            memcpy(&image, raw, sizeof(image));
        }
    }
    struct mc_raft_msg m;
    int rc = mc_rbuf_error(&rb);
    if (rc == 0) {
        rc = mc_raft_msg_decode(p->data + rb.pos, p->len - rb.pos, &m);
    }
    if (rc != 0) {
        fail(c, "codec: a message from %u to %u does not decode: %s", p->from, p->to,
             mc_strerror(rc));
        return;
    }
    c->net.delivered++;
    trace_msg(c, &m, "recv");
    if (snap) {
        to->has_incoming_snap = true;
        to->incoming_snap = image;
    }
    rc = mc_raft_step(to->r, &m);
    mc_raft_msg_free(&m);
    if (rc != 0) {
        fail(c, "step: node %u rejected a well-formed message: %s", to->id, mc_strerror(rc));
        return;
    }
    process_ready(c, to);
    if (snap && from->up && !from->paused) {
        mc_raft_report_snapshot(from->r, p->to, true);
        process_ready(c, from);
    }
}

/* Removed members whose removal committed are stopped for good. */
static void stop_removed(struct sim_cluster *c)
{
    for (uint32_t id = 1; id <= c->max_id; id++) {
        struct sim_node *n = &c->nodes[id];
        if (n->removed && n->up && !c->o.keep_removed) {
            sim_trace(&c->trace, c->now_ms, "stop-removed n%u", id);
            sim_crash(c, id);
        }
    }
}

bool sim_step(struct sim_cluster *c)
{
    /* Earliest event; ties: disk completions, then packets, then ticks, each by node id. */
    uint64_t best = UINT64_MAX;
    int kind = -1;
    uint32_t who = 0;
    for (uint32_t id = 1; id <= c->max_id; id++) {
        struct sim_node *n = &c->nodes[id];
        if (n->up && n->dops_len && n->dops[n->dops_head].done_ms < best) {
            best = n->dops[n->dops_head].done_ms;
            kind = 0;
            who = id;
        }
    }
    uint64_t pt = sim_net_next_ms(&c->net);
    if (pt < best) {
        best = pt;
        kind = 1;
    }
    for (uint32_t id = 1; id <= c->max_id; id++) {
        struct sim_node *n = &c->nodes[id];
        if (n->up && !n->paused && n->next_tick_ms < best) {
            best = n->next_tick_ms;
            kind = 2;
            who = id;
        }
    }
    if (kind < 0) {
        return false;
    }
    if (best > c->now_ms) {
        c->now_ms = best;
    }
    c->steps++;
    struct sim_node *n = &c->nodes[who];
    if (kind == 0) {
        dop_pop_complete(c, n);
        process_ready(c, n);
    } else if (kind == 1) {
        struct sim_packet p;
        sim_net_pop(&c->net, &p);
        struct sim_node *to = &c->nodes[p.to];
        if (to->up && to->paused) {
            /* A stopped process does not read its socket: the packet waits in its buffer. */
            if (to->inbox_n == to->inbox_cap) {
                to->inbox_cap = to->inbox_cap ? to->inbox_cap * 2 : 64;
                to->inbox = xrealloc(to->inbox, to->inbox_cap * sizeof(*to->inbox));
            }
            to->inbox[to->inbox_n++] = p;
            return true;
        }
        deliver(c, &p);
        free(p.data);
    } else {
        n->next_tick_ms += n->tick_ms;
        mc_raft_tick(n->r);
        process_ready(c, n);
    }
    stop_removed(c);
    return true;
}

void sim_run(struct sim_cluster *c, uint64_t ms)
{
    uint64_t end = c->now_ms + ms;
    while (sim_ok(c)) {
        /* peek: stop before events past the horizon */
        uint64_t next = sim_net_next_ms(&c->net);
        for (uint32_t id = 1; id <= c->max_id; id++) {
            struct sim_node *n = &c->nodes[id];
            if (n->up && !n->paused && n->next_tick_ms < next) {
                next = n->next_tick_ms;
            }
            if (n->up && n->dops_len && n->dops[n->dops_head].done_ms < next) {
                next = n->dops[n->dops_head].done_ms;
            }
        }
        if (next > end) {
            break;
        }
        sim_step(c);
    }
    if (c->now_ms < end) {
        c->now_ms = end;
    }
}

bool sim_run_until(struct sim_cluster *c, bool (*pred)(struct sim_cluster *, void *), void *arg,
                   uint64_t max_ms)
{
    uint64_t end = c->now_ms + max_ms;
    while (sim_ok(c) && !pred(c, arg) && c->now_ms < end) {
        sim_run(c, 1);
    }
    return pred(c, arg);
}

uint32_t sim_leader(const struct sim_cluster *c)
{
    uint32_t best = 0;
    uint64_t best_term = 0;
    for (uint32_t id = 1; id <= c->max_id; id++) {
        const struct sim_node *n = &c->nodes[id];
        if (n->up && !n->paused && n->role == MC_RAFT_LEADER && n->term >= best_term) {
            best = id;
            best_term = n->term;
        }
    }
    return best;
}

uint32_t sim_stable_leader(const struct sim_cluster *c)
{
    uint32_t l = sim_leader(c);
    if (!l) {
        return 0;
    }
    const struct sim_node *ln = &c->nodes[l];
    if (!mc_raft_conf_is_voter(mc_raft_conf(ln->r), l)) {
        return 0; /* removing itself: it steps down once that commits (thesis §4.2.2) */
    }
    for (uint32_t id = 1; id <= c->max_id; id++) {
        if (c->nodes[id].up && c->nodes[id].term > ln->term) {
            return 0;
        }
    }
    const struct sim_lent *e = shadow_at(ln, ln->commit);
    return e && e->term == ln->term ? l : 0;
}

static bool has_leader(struct sim_cluster *c, void *arg)
{
    (void)arg;
    return sim_leader(c) != 0;
}

uint32_t sim_wait_leader(struct sim_cluster *c, uint64_t max_ms)
{
    sim_run_until(c, has_leader, NULL, max_ms);
    return sim_leader(c);
}

/* ------------------------------------------------------------------------------------------ */
/* client and admin operations                                                                */

static struct sim_client_op *op_add(struct sim_node *n)
{
    if (n->n_ops >= SIM_MAX_CLIENT_OPS) {
        return NULL;
    }
    struct sim_client_op *op = &n->ops[n->n_ops++];
    memset(op, 0, sizeof(*op));
    return op;
}

int sim_write(struct sim_cluster *c, uint32_t id, uint64_t *write_id)
{
    struct sim_node *n = &c->nodes[id];
    if (!n->up || n->paused) {
        return MC_EUNAVAIL;
    }
    if (n->n_ops >= SIM_MAX_CLIENT_OPS) {
        return MC_ELIMIT;
    }
    uint8_t buf[8];
    uint64_t wid = c->next_write_id++;
    mc_put_u64le(buf, wid);
    struct mc_raft_entry e = {.type = MC_RAFT_ENTRY_NORMAL, .len = 8, .data = buf};
    uint64_t index = 0;
    int rc = mc_raft_propose(n->r, &e, 1, &index);
    sim_trace(&c->trace, c->now_ms, "write n%u id=%llu rc=%d idx=%llu", id, U(wid), rc, U(index));
    if (write_id) {
        *write_id = wid;
    }
    if (rc == 0) {
        struct sim_client_op *op = op_add(n);
        op->id = wid;
        op->index = index;
        op->term = mc_raft_term(n->r);
        op->start_ms = c->now_ms;
        process_ready(c, n);
    }
    return rc;
}

bool sim_op_pending(const struct sim_cluster *c, uint32_t id, uint64_t op_id, bool is_read)
{
    const struct sim_node *n = &c->nodes[id];
    for (size_t i = 0; i < n->n_ops; i++) {
        if (n->ops[i].id == op_id && n->ops[i].is_read == is_read) {
            return true;
        }
    }
    return false;
}

int sim_read(struct sim_cluster *c, uint32_t id, uint64_t *ctx)
{
    struct sim_node *n = &c->nodes[id];
    if (!n->up || n->paused) {
        return MC_EUNAVAIL;
    }
    if (n->n_ops >= SIM_MAX_CLIENT_OPS) {
        return MC_ELIMIT;
    }
    uint64_t x = c->next_read_ctx++;
    if (ctx) {
        *ctx = x;
    }
    struct sim_client_op *op = op_add(n);
    op->is_read = true;
    op->id = x;
    op->need_index = c->check.acked_write_max;
    op->start_ms = c->now_ms;
    int rc = mc_raft_read_index(n->r, x);
    sim_trace(&c->trace, c->now_ms, "read n%u ctx=%llu rc=%d need=%llu", id, U(x), rc,
              U(op->need_index));
    if (rc != 0) {
        n->n_ops--;
        return rc;
    }
    process_ready(c, n);
    return 0;
}

int sim_conf_change(struct sim_cluster *c, uint32_t leader, uint8_t type, uint32_t node_id)
{
    struct sim_node *n = &c->nodes[leader];
    if (!n->up || n->paused) {
        return MC_EUNAVAIL;
    }
    struct mc_raft_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = type;
    cc.node_id = node_id;
    uint64_t index = 0;
    int rc = mc_raft_propose_conf_change(n->r, &cc, &index);
    sim_trace(&c->trace, c->now_ms, "conf n%u type=%u node=%u rc=%d idx=%llu", leader, type,
              node_id, rc, U(index));
    if (rc == 0) {
        process_ready(c, n);
    }
    return rc;
}

int sim_transfer(struct sim_cluster *c, uint32_t leader, uint32_t target)
{
    struct sim_node *n = &c->nodes[leader];
    if (!n->up || n->paused) {
        return MC_EUNAVAIL;
    }
    int rc = mc_raft_transfer_leader(n->r, target);
    sim_trace(&c->trace, c->now_ms, "transfer n%u -> n%u rc=%d", leader, target, rc);
    if (rc == 0) {
        process_ready(c, n);
    }
    return rc;
}

int sim_snapshot(struct sim_cluster *c, uint32_t id)
{
    struct sim_node *n = &c->nodes[id];
    if (!n->up || n->paused || n->sm.applied == 0 ||
        (n->disk_has_snap && n->disk_snap.index >= n->sm.applied)) {
        return MC_EINVAL;
    }
    struct mc_raft_snapshot_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.index = n->sm.applied;
    meta.term = n->sm.term;
    int rc = mc_raft_conf_at(n->r, meta.index, &meta.conf);
    if (rc == 0) {
        rc = mc_raft_snapshot_taken(n->r, meta.index, meta.term, &meta.conf);
    }
    sim_trace(&c->trace, c->now_ms, "snapshot n%u idx=%llu t=%llu rc=%d", id, U(meta.index),
              U(meta.term), rc);
    if (rc != 0) {
        return rc;
    }
    /* The snapshot file is written and fsynced before the core is told (a real driver does
     * this on its snapshot thread), so it is durable at once. */
    n->disk_has_snap = true;
    n->disk_snap = meta;
    n->disk_snap_sm = n->sm;
    disk_compact(n, meta.index);
    process_ready(c, n);
    return 0;
}

bool sim_write_acked(const struct sim_cluster *c, uint64_t write_id)
{
    return write_id < c->acked_cap && c->acked[write_id];
}

struct pending_arg {
    uint32_t id;
    uint64_t op;
};

static bool write_done(struct sim_cluster *c, void *arg)
{
    struct pending_arg *a = arg;
    return !sim_op_pending(c, a->id, a->op, false);
}

bool sim_write_sync(struct sim_cluster *c, uint32_t id, uint64_t max_ms)
{
    struct pending_arg a = {id, 0};
    if (sim_write(c, id, &a.op) != 0) {
        return false;
    }
    sim_run_until(c, write_done, &a, max_ms);
    return sim_write_acked(c, a.op);
}

uint32_t sim_count_leaders(const struct sim_cluster *c)
{
    uint32_t n = 0;
    for (uint32_t id = 1; id <= c->max_id; id++) {
        const struct sim_node *x = &c->nodes[id];
        n += x->up && !x->paused && x->role == MC_RAFT_LEADER;
    }
    return n;
}
