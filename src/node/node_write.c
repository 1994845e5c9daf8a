/* node_write.c: the write path: batch client ops into Raft entries, apply, reply with results. */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Leader clock for op times: wall clock, never going backwards (mod times stay ordered), and
 * never below the newest op time this node applied, so a new leader whose wall clock is
 * behind its predecessor's does not stamp a key's next version before its previous one
 * (test/fault/test_clock.py). Every op (every sub-op of an ATOMIC too) gets its own time, so op
 * times are strictly increasing cluster-wide and a version id is its op time (stamp). */
static int64_t op_time_now(struct mc_node *n)
{
    int64_t t = mc_wall_ns();
    if (t <= n->last_op_time_ns) {
        t = n->last_op_time_ns + 1;
    }
    n->last_op_time_ns = t;
    return t;
}

/* Room for one more batch waiter, so that adding it after its op is in the batch cannot fail
 * (an op in the batch without a waiter would be applied with nobody told). */
static int reserve_waiter(struct mc_node *n)
{
    if (n->n_batch_waiters == n->cap_batch_waiters) {
        size_t cap = n->cap_batch_waiters ? n->cap_batch_waiters * 2 : 256;
        struct pending_write *w = realloc(n->batch_waiters, cap * sizeof(*w));
        if (!w) {
            return MC_ENOMEM;
        }
        n->batch_waiters = w;
        n->cap_batch_waiters = cap;
    }
    return 0;
}

/* The waiter of the op batch_add just appended (reserve_waiter made room). */
static void add_waiter(struct mc_node *n, const struct mc_client_token *t, uint8_t kind)
{
    assert(n->n_batch_waiters < n->cap_batch_waiters && n->batch_ops > 0);
    struct pending_write *w = &n->batch_waiters[n->n_batch_waiters++];
    memset(w, 0, sizeof(*w));
    w->token = *t;
    w->position = n->batch_ops - 1;
    w->kind = kind;
    w->start_ns = mc_mono_ns();
}

/* Stamp leader-chosen fields (time, version ids) into a decoded op. A block-decoded op
 * (mc_op_decode_block: no sub-ops here) gets its version id in vidbuf, which must outlive the
 * op's encoding. */
static int stamp(struct mc_node *n, struct mc_op *op, int64_t now, char vidbuf[17])
{
    op->time_ns = now;
    if (op->type == MC_OP_PUT || op->type == MC_OP_DELETE) {
        char vid[17];
        mc_version_id_from_time(vid, now);
        if (op->meta.block) {
            assert(op->n_sub == 0 && vidbuf);
            memcpy(vidbuf, vid, sizeof(vid));
            op->new_version_id = vidbuf; /* the old one lives in the block */
        } else {
            free(op->new_version_id);
            op->new_version_id = strdup(vid);
            if (!op->new_version_id) {
                return MC_ENOMEM;
            }
        }
    }
    for (uint32_t i = 0; i < op->n_sub; i++) {
        int rc = stamp(n, &op->sub[i], op_time_now(n), NULL);
        if (rc) {
            return rc;
        }
    }
    if (op->n_sub) {
        /* The newest sub-op time: the floor in apply_ops and the engine's op clock (the
           largest top-level op time) then cover every id stamped here. */
        op->time_ns = n->last_op_time_ns;
    }
    return 0;
}

/* Append one encoded op (u32 len + bytes) to the batch being built this iteration. */
static int batch_append(struct mc_node *n, const struct mc_op *op)
{
    if (n->batch.len == 0) {
        mc_wbuf_u8(&n->batch, NODE_ENTRY_OPS);
        mc_wbuf_u32(&n->batch, 0); /* count, patched at flush */
    }
    size_t at = n->batch.len;
    mc_wbuf_u32(&n->batch, 0);
    int rc = mc_op_encode(op, &n->batch);
    if (rc || mc_wbuf_error(&n->batch)) {
        n->batch.len = at;
        n->batch.err = 0;
        return rc ? rc : MC_ETOOLARGE;
    }
    mc_wbuf_patch_u32(&n->batch, at, (uint32_t)(n->batch.len - at - 4));
    n->batch_ops++;
    n->batch_apply_ops += 1 + op->n_sub;
    return 0;
}

/*
 * Add op to the batch, proposing the batch first where op would not fit: the engine applies at
 * most MC_APPLY_MAX_OPS ops per entry counting atomic sub-ops (an entry over it could never be
 * applied: every replica would stop on it, at every restart), and the batch buffer holds
 * NODE_MAX_BATCH_BYTES plus one largest op (an op that fits alone must not be refused because
 * other clients' ops came first in this iteration).
 */
static int batch_add(struct mc_node *n, const struct mc_op *op)
{
    uint32_t need = 1 + op->n_sub;
    assert(need <= MC_APPLY_MAX_OPS);
    if (n->batch_apply_ops + need > MC_APPLY_MAX_OPS) {
        node_flush_batch(n);
    }
    int rc = batch_append(n, op);
    if (rc == MC_ETOOLARGE && n->batch_ops > 0) {
        node_flush_batch(n);
        rc = batch_append(n, op);
    }
    assert(rc != 0 || n->batch_apply_ops <= MC_APPLY_MAX_OPS);
    return rc;
}

static bool batch_full(struct mc_node *n)
{
    return n->batch_ops >= NODE_MAX_BATCH_OPS || n->batch.len >= NODE_MAX_BATCH_BYTES;
}

static bool can_accept_write(struct mc_node *n, const struct mc_client_token *t)
{
    if (mc_raft_role(n->raft) != MC_RAFT_LEADER) {
        node_reply_not_leader(n, t);
        return false;
    }
    if (mc_raft_term_at(n->raft, n->applied_index) != mc_raft_term(n->raft)) {
        /* A new leader stamps op times and version ids only after applying an entry of its own
         * term (its no-op, thesis §6.4): by then it has applied every op its predecessors
         * stamped, so op_time_now()'s floor orders its ops after theirs and no version id it
         * makes can repeat one of theirs. A write refused here never happened: retriable. */
        mc_client_reply_error(t, MC_ELIMIT, "new leader still applying earlier entries; retry");
        return false;
    }
    if (n->op_clock_term != mc_raft_term(n->raft)) {
        /* Ops applied from a snapshot image (a restart after log compaction, an install) never
           passed apply_ops' floor: take the engine's newest op time, once per term. */
        int64_t clock_ns;
        int rc = mc_engine_op_clock(n->engine, &clock_ns);
        if (rc) {
            mc_client_reply_error(t, rc, mc_engine_last_error());
            return false;
        }
        if (clock_ns > n->last_op_time_ns) {
            n->last_op_time_ns = clock_ns;
        }
        n->op_clock_term = mc_raft_term(n->raft);
    }
    if (node_disk_low(n, mc_mono_ms())) {
        mc_client_reply_error(t, MC_ELOWDISK,
                              "free disk below --disk-reserve-mb: free space to write");
        return false;
    }
    if (n->n_writes - n->head_writes + n->n_batch_waiters >= NODE_MAX_PENDING_WRITES) {
        mc_client_reply_error(t, MC_ELIMIT, "too many writes in flight; retry later");
        return false;
    }
    if (batch_full(n)) {
        node_flush_batch(n);
    }
    return true;
}

/* The engine's decoders call a record over MC_OP_MAX_BYTES malformed (they also read log
 * entries, where that is right); a client whose record is merely too big gets EntityTooLarge
 * naming the limit instead. */
_Static_assert(MC_OP_MAX_BYTES == 2u * 1024 * 1024, "the message below names the limit");
#define OP_TOO_LARGE_MSG "an op record is larger than 2 MiB (MC_OP_MAX_BYTES)"

static int decode_record(const uint8_t *p, uint32_t len, bool block, struct mc_op *op)
{
    if (len > MC_OP_MAX_BYTES) {
        memset(op, 0, sizeof(*op));
        return MC_ETOOLARGE;
    }
    return block ? mc_op_decode_block(p, len, op) : mc_op_decode(p, len, op);
}

#define SESSION_IN_RECORD_MSG "sessions travel in the write request, not inside op records"
#define NESTED_ATOMIC_MSG     "an atomic write may not hold another atomic op"

/* Leader-side input rules on one op and its sub-ops, before proposing (apply would refuse some
 * only after a trip through Raft, and keeps older rules for others: engine.h). 0, or an error
 * with *why naming the rule: sessions and session registrations never ride inside records; a
 * sub-op is never itself atomic (the entry encoding drops nested sub-ops); a new bucket's name
 * follows the newer S3 rules wherever the create sits. */
static int admit_op(const struct mc_op *op, bool sub, const char **why)
{
    if (op->type == MC_OP_SESSION_REGISTER || op->session_id) {
        *why = SESSION_IN_RECORD_MSG;
        return MC_EINVAL;
    }
    if (sub && (op->type == MC_OP_ATOMIC || op->n_sub)) {
        *why = NESTED_ATOMIC_MSG;
        return MC_EINVAL;
    }
    if (op->type == MC_OP_BUCKET_CREATE) {
        int rc = mc_validate_new_bucket_name(op->bucket);
        if (rc) {
            *why = mc_engine_last_error();
            return rc;
        }
    }
    for (uint32_t i = 0; i < op->n_sub; i++) {
        int rc = admit_op(&op->sub[i], true, why);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* Buckets a cluster may hold: 10,000, S3's raised quota. LIST_BUCKETS answers in one frame,
 * which holds about 55,000 buckets (aud18 R6), and loads them all on the loop. A leader-only
 * rule (apply has none), so replicas of different versions apply the log alike. */
#define NODE_MAX_BUCKETS 10000

static uint32_t bucket_creates(const struct mc_op *op)
{
    uint32_t k = op->type == MC_OP_BUCKET_CREATE;
    for (uint32_t i = 0; i < op->n_sub; i++) {
        k += op->sub[i].type == MC_OP_BUCKET_CREATE;
    }
    return k;
}

/*
 * Room for one more element at the end of a queue whose live part is arr[*head, *n): an empty
 * queue restarts at 0; a full one reuses its consumed front once that is over half the array
 * (under a steady flow the queue is rarely empty: rev18c R-6), else grows (doubling from
 * first_cap). Returns the array (moved when grown), or NULL with arr untouched on no memory.
 * Shared by the pending writes and the count queues.
 */
static void *queue_room(void *arr, size_t elem, size_t *head, size_t *n, size_t *cap,
                        size_t first_cap)
{
    assert(*head <= *n && *n <= *cap);
    if (*head > 0 && *head == *n) {
        *head = *n = 0;
    }
    if (*n < *cap) {
        return arr;
    }
    if (*head > *cap / 2) {
        memmove(arr, (char *)arr + *head * elem, (*n - *head) * elem);
        *n -= *head;
        *head = 0;
        return arr;
    }
    size_t c = *cap ? *cap * 2 : first_cap;
    void *p = realloc(arr, c * elem);
    if (p) {
        *cap = c;
    }
    return p;
}

/* What q's entries add that is not applied yet: entries applied_index has reached leave first. */
static uint64_t count_queue_unapplied(struct node_count_queue *q, uint64_t applied_index)
{
    while (q->head < q->n && q->e[q->head].index <= applied_index) {
        q->unapplied -= q->e[q->head++].n;
    }
    if (q->head == q->n) {
        q->head = q->n = 0;
        assert(q->unapplied == 0);
    }
    return q->unapplied;
}

static void count_queue_clear(struct node_count_queue *q)
{
    q->head = q->n = 0;
    q->unapplied = 0;
}

/* The entry proposed at index adds k. On no memory they go uncounted: the cap is then passed by
 * at most those. */
static void count_queue_note(struct node_count_queue *q, uint64_t index, uint32_t k)
{
    if (k == 0) {
        return;
    }
    struct node_entry_count *e = queue_room(q->e, sizeof(*q->e), &q->head, &q->n, &q->cap, 64);
    if (!e) {
        return;
    }
    q->e = e;
    q->e[q->n++] = (struct node_entry_count){index, k};
    q->unapplied += k;
}

/* k: the op's bucket creates (bucket_creates). The count: buckets stored (O(1)) plus creates
 * batched or proposed and not applied yet. A create of an existing name counts too: the cap is
 * checked, not the names. */
static int admit_bucket_count(struct mc_node *n, uint32_t k, const char **why)
{
    if (k == 0) {
        return 0;
    }
    uint64_t count = mc_engine_bucket_count(n->engine) +
                     count_queue_unapplied(&n->creates, n->applied_index) + n->batch_bucket_creates;
    if (count + k > NODE_MAX_BUCKETS) {
        *why = "a cluster holds at most 10000 buckets";
        return MC_ETOOMANYBUCKETS;
    }
    return 0;
}

void node_handle_write(struct mc_node *n, const struct mc_client_request *r)
{
    const struct mc_proto_request *q = r->req;
    if (!can_accept_write(n, &r->token)) {
        return;
    }
    struct mc_op op;
    memset(&op, 0, sizeof(op));
    int rc = 0;
    int64_t now = op_time_now(n);
    char vidbuf[17];
    const char *why = NULL;
    if (q->u.write.n_ops == 0) {
        mc_client_reply_error(&r->token, MC_EINVAL, "a write needs at least one op");
        return;
    }
    if (q->u.write.n_ops == 1) {
        uint32_t pos = 0, len = 0;
        const uint8_t *p = NULL;
        mc_proto_ops_next(q->u.write.ops, q->u.write.ops_bytes, &pos, &p, &len);
        rc = decode_record(p, len, true, &op);
        if (rc == 0 && op.n_sub) {
            /* An ATOMIC record: stamping replaces sub-op fields, so decode it field by field. */
            mc_op_clear(&op);
            rc = mc_op_decode(p, len, &op);
        }
    } else {
        struct mc_op *subs = calloc(q->u.write.n_ops, sizeof(*subs));
        uint32_t pos = 0, len = 0, i = 0;
        const uint8_t *p = NULL;
        rc = subs ? 0 : MC_ENOMEM;
        while (rc == 0 && i < q->u.write.n_ops &&
               mc_proto_ops_next(q->u.write.ops, q->u.write.ops_bytes, &pos, &p, &len)) {
            rc = decode_record(p, len, false, &subs[i++]);
            if (rc == 0 && (subs[i - 1].type == MC_OP_ATOMIC || subs[i - 1].n_sub)) {
                rc = MC_EINVAL; /* stop at once: the rest is not decoded (nor stamped) */
                why = NESTED_ATOMIC_MSG;
            }
        }
        if (rc == 0) {
            rc = mc_op_atomic(&op, subs, q->u.write.n_ops);
        }
        for (uint32_t k = 0; subs && k < q->u.write.n_ops; k++) {
            mc_op_clear(&subs[k]);
        }
        free(subs);
    }
    if (rc == 0) {
        rc = admit_op(&op, false, &why);
    }
    uint32_t creates = rc == 0 ? bucket_creates(&op) : 0;
    if (rc == 0) {
        rc = admit_bucket_count(n, creates, &why);
    }
    if (rc == 0) {
        op.session_id = q->u.write.session_id;
        op.seq = q->u.write.seq;
        op.acked_seq = q->u.write.acked_seq < op.seq ? q->u.write.acked_seq : 0;
        rc = stamp(n, &op, now, vidbuf);
    }
    if (rc == 0 && (rc = reserve_waiter(n)) == 0 && (rc = batch_add(n, &op)) == 0) {
        add_waiter(n, &r->token, 0);
        n->batch_bucket_creates += creates;
    }
    mc_op_clear(&op);
    if (rc == MC_ETOOLARGE) {
        why = OP_TOO_LARGE_MSG; /* at decode, or grown past the limit by stamping (encode) */
    }
    if (rc) {
        mc_client_reply_error(&r->token, rc == MC_EPROTO ? MC_EPROTO : rc,
                              rc == MC_EPROTO ? "malformed op record" : why);
    }
}

/*
 * At the cap, sessions idle past the TTL still count until an apply removes them, and applies
 * come only with entries: with no other traffic the cap would hold for ever. So when the least
 * recently active session is expired at the leader's clock, a NOOP op stamped now goes in the
 * batch (no waiter: nobody is told): its apply removes up to MC_SESSION_EXPIRE_PER_APPLY of
 * them, and the refused client's retry (SlowDown is retried) finds room. One such op in flight
 * at a time, so a refused flood does not turn into a flood of entries.
 */
static void expiry_tick(struct mc_node *n)
{
    if (n->batch_has_tick || n->tick_index > n->applied_index) {
        return;
    }
    bool some = false;
    int64_t now = op_time_now(n);
    if (mc_engine_sessions_expired(n->engine, now, &some) != 0 || !some) {
        return;
    }
    struct mc_op op;
    memset(&op, 0, sizeof(op));
    op.type = MC_OP_NOOP;
    op.time_ns = now;
    if (batch_add(n, &op) == 0) {
        n->batch_has_tick = true;
    }
}

/* Sessions stored (expired ones not removed yet too) or on their way: each costs a row on
 * every replica until it expires, and a flood of registers left millions to expire at once
 * (aud18 R5). A leader-only rule, like NODE_MAX_BUCKETS. False: refused (replied). No register
 * is batched here (node_handle_register flushed it). */
static bool admit_register(struct mc_node *n, const struct mc_client_token *t)
{
    assert(!n->batch_has_register);
    uint64_t count =
        mc_engine_session_count(n->engine) + count_queue_unapplied(&n->registers, n->applied_index);
    if (count < n->opts.max_sessions) {
        return true;
    }
    mc_metrics_limit(MC_LIMIT_SESSIONS);
    expiry_tick(n);
    char why[200];
    snprintf(why, sizeof(why),
             "the cluster holds --max-sessions (%llu) client sessions; a new one is refused "
             "until idle ones expire",
             (unsigned long long)n->opts.max_sessions);
    mc_client_reply_error(t, MC_ELIMIT, why);
    return false;
}

void node_handle_register(struct mc_node *n, const struct mc_client_request *r)
{
    if (!can_accept_write(n, &r->token)) {
        return;
    }
    /* A session id is the index of the entry registering it: one registration per entry. */
    if (n->batch_has_register) {
        node_flush_batch(n);
    }
    if (!admit_register(n, &r->token)) {
        return;
    }
    struct mc_op op;
    memset(&op, 0, sizeof(op));
    int rc = mc_op_session_register(&op, op_time_now(n));
    if (rc == 0 && (rc = reserve_waiter(n)) == 0 && (rc = batch_add(n, &op)) == 0) {
        add_waiter(n, &r->token, 1);
        n->batch_has_register = true;
    }
    mc_op_clear(&op);
    if (rc) {
        mc_client_reply_error(&r->token, rc, NULL);
    }
}

static int push_write(struct mc_node *n, const struct pending_write *w)
{
    struct pending_write *p = queue_room(n->writes, sizeof(*n->writes), &n->head_writes,
                                         &n->n_writes, &n->cap_writes, 1024);
    if (!p) {
        return MC_ENOMEM;
    }
    n->writes = p;
    n->writes[n->n_writes++] = *w;
    return 0;
}

/* Propose everything gathered this loop iteration as one Raft entry. */
void node_flush_batch(struct mc_node *n)
{
    if (n->batch_ops == 0) {
        return;
    }
    mc_wbuf_patch_u32(&n->batch, 1, n->batch_ops);
    struct mc_raft_entry e = {
        .type = MC_RAFT_ENTRY_NORMAL, .len = (uint32_t)n->batch.len, .data = n->batch.data};
    uint64_t index = 0;
    int rc = mc_raft_propose(n->raft, &e, 1, &index);
    if (rc == 0) {
        count_queue_note(&n->creates, index, n->batch_bucket_creates);
        count_queue_note(&n->registers, index, n->batch_has_register);
        if (n->batch_has_tick) {
            n->tick_index = index;
        }
    }
    n->batch_bucket_creates = 0;
    uint64_t term = mc_raft_term(n->raft);
    uint64_t deadline = node_now_ms() + NODE_WRITE_TIMEOUT_MS;
    for (size_t i = 0; i < n->n_batch_waiters; i++) {
        struct pending_write *w = &n->batch_waiters[i];
        if (rc) {
            if (rc == MC_ENOTLEADER) {
                node_reply_not_leader(n, &w->token);
            } else {
                mc_client_reply_error(&w->token, rc, NULL);
            }
            continue;
        }
        w->index = index;
        w->term = term;
        w->deadline_ms = deadline;
        if (push_write(n, w) != 0) {
            mc_client_reply_error(&w->token, MC_ENOMEM, NULL);
        }
    }
    n->n_batch_waiters = 0;
    n->batch_ops = 0;
    n->batch_apply_ops = 0;
    n->batch_has_register = false;
    n->batch_has_tick = false;
    mc_wbuf_reset(&n->batch);
}

static void reply_result(struct mc_node *n, const struct pending_write *w,
                         const struct mc_op_result *res)
{
    (void)n;
    if (w->kind == 2) {
        mc_client_reply(&w->token, 0, NULL, 0);
        return;
    }
    if (res->skipped) {
        /* The engine already held this index (its state came from elsewhere), so this write's
         * ops did not run: never success. Unavailable is retried by the client with the same
         * (session, seq), which the session table makes safe whatever the outcome was. */
        mc_client_reply_error(&w->token, MC_EUNAVAIL, "entry not applied here; retry");
        return;
    }
    if (w->kind == 1) {
        if (res->code) {
            mc_client_reply_error(&w->token, res->code, NULL);
            return;
        }
        struct mc_wbuf *b = mc_client_reply_begin(&w->token);
        if (b) {
            mc_proto_session_put(b, res->session_id);
        }
        mc_client_reply_end(&w->token, 0);
        return;
    }
    if (res->code == 0 || res->code == MC_EPRECOND || res->code == MC_ENOKEY) { /* verdicts */
        mc_metrics_observe(MC_METRIC_WRITE_LATENCY, mc_mono_ns() - w->start_ns);
    }
    if (res->code == 0) {
        struct mc_wbuf *b = mc_client_reply_begin(&w->token);
        if (b) {
            mc_op_result_encode(res, b);
        }
        mc_client_reply_end(&w->token, 0);
        return;
    }
    uint8_t buf[256];
    struct mc_wbuf rb;
    mc_wbuf_init(&rb, sizeof(buf) * 4);
    mc_op_result_encode(res, &rb);
    struct mc_proto_error e;
    memset(&e, 0, sizeof(e));
    /* Per-op results carry a code only (the engine's sentence is per call); in a write result
     * MC_ENOSESSION (= MC_ENOTFOUND) only ever means the session, so say so. */
    e.message = mc_proto_cstr(res->code == MC_ENOSESSION
                                  ? "session unknown or expired: the write was not applied; "
                                    "register a new session"
                                  : mc_strerror(res->code));
    e.leader_addr = mc_proto_cstr("");
    e.version_id = mc_proto_cstr(res->version_id);
    e.result = rb.data;
    e.result_len = (uint32_t)rb.len;
    mc_client_reply_error_full(&w->token, res->code, &e);
    mc_wbuf_free(&rb);
}

/* Reply to every pending write at or before index: those at index get their result. */
static void complete_writes(struct mc_node *n, const struct mc_raft_entry *e,
                            const struct mc_op_result *results, uint32_t n_results)
{
    while (n->head_writes < n->n_writes) {
        struct pending_write *w = &n->writes[n->head_writes];
        if (w->index > e->index) {
            break;
        }
        n->head_writes++;
        if (w->index < e->index || w->term != e->term || w->position >= n_results) {
            /* Its entry was replaced by another leader's: the outcome is that it did not
             * apply here; the client retries with the same (session, seq). */
            node_reply_not_leader(n, &w->token);
            continue;
        }
        reply_result(n, w, &results[w->position]);
    }
}

static int apply_ops(struct mc_node *n, const struct mc_raft_entry *e)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, e->data, e->len);
    uint8_t kind = mc_rbuf_u8(&r);
    uint32_t count = mc_rbuf_u32(&r);
    if (mc_rbuf_error(&r) || kind != NODE_ENTRY_OPS || count > NODE_MAX_BATCH_OPS) {
        MC_ERROR("bad_log_entry", "index=%llu kind=%u count=%u", (unsigned long long)e->index, kind,
                 count);
        return MC_ECORRUPT;
    }
    struct mc_op *ops = calloc(count ? count : 1, sizeof(*ops));
    struct mc_op_result *res = calloc(count ? count : 1, sizeof(*res));
    int rc = ops && res ? 0 : MC_ENOMEM;
    uint32_t decoded = 0;
    for (; rc == 0 && decoded < count; decoded++) {
        size_t len = 0;
        const uint8_t *p = mc_rbuf_bytes(&r, MC_OP_MAX_BYTES, &len);
        if (!p) {
            rc = MC_ECORRUPT;
            break;
        }
        rc = mc_op_decode_block(p, len, &ops[decoded]);
        /* The floor of op_time_now(): the next op stamped here gets a later time, so its
         * version id (the op time, stamp) cannot equal one another leader made. An ATOMIC's
         * time is its newest sub-op's. */
        if (rc == 0 && ops[decoded].time_ns > n->last_op_time_ns) {
            n->last_op_time_ns = ops[decoded].time_ns;
        }
    }
    if (rc == 0) {
        uint64_t t0 = mc_mono_ns();
        rc = mc_engine_apply(n->engine, e->index, ops, count, NULL, 0, res);
        uint64_t took = mc_mono_ns() - t0;
        mc_metrics_observe(MC_METRIC_APPLY, took);
        if (took > 100000000ull) {
            MC_WARN("slow_apply", "index=%llu ops=%u ms=%llu", (unsigned long long)e->index, count,
                    (unsigned long long)(took / 1000000));
        }
    }
    if (rc == 0) {
        complete_writes(n, e, res, count);
    } else {
        MC_ERROR("apply_failed", "index=%llu err=%s detail=\"%s\"", (unsigned long long)e->index,
                 mc_error_name(rc), mc_engine_last_error());
    }
    for (uint32_t i = 0; i < decoded; i++) {
        mc_op_clear(&ops[i]);
    }
    free(ops);
    free(res);
    return rc;
}

void node_track_conf_change(struct mc_node *n, const struct mc_client_token *t, uint64_t index)
{
    struct pending_write w;
    memset(&w, 0, sizeof(w));
    w.token = *t;
    w.index = index;
    w.term = mc_raft_term(n->raft);
    w.kind = 2;
    w.start_ns = mc_mono_ns();
    w.deadline_ms = node_now_ms() + NODE_WRITE_TIMEOUT_MS;
    if (push_write(n, &w) != 0) {
        mc_client_reply_error(t, MC_ENOMEM, NULL);
    }
}

static int apply_conf(struct mc_node *n, const struct mc_raft_entry *e)
{
    struct mc_raft_conf_change cc;
    struct mc_raft_conf conf;
    int rc = mc_raft_conf_change_decode(e->data, e->len, &cc, &conf);
    if (rc) {
        return MC_ECORRUPT;
    }
    if (cc.type != MC_RAFT_CONF_REMOVE && cc.context_len > 0) {
        /* context: str peer_addr, str client_addr */
        struct mc_rbuf r;
        mc_rbuf_init(&r, cc.context, cc.context_len);
        size_t pl = 0, cl = 0;
        const uint8_t *pa = mc_rbuf_bytes(&r, MC_ADDR_MAX - 1, &pl);
        const uint8_t *ca = mc_rbuf_bytes(&r, MC_ADDR_MAX - 1, &cl);
        if (!mc_rbuf_error(&r)) {
            char pbuf[MC_ADDR_MAX], cbuf[MC_ADDR_MAX];
            memcpy(pbuf, pa, pl);
            pbuf[pl] = 0;
            memcpy(cbuf, ca, cl);
            cbuf[cl] = 0;
            node_set_member(n, cc.node_id, pbuf, cbuf);
        }
    }
    MC_INFO("membership_applied", "index=%llu change=%u node=%llu voters=%u learners=%u",
            (unsigned long long)e->index, cc.type, (unsigned long long)cc.node_id, conf.n_voters,
            conf.n_learners);
    struct mc_wbuf w;
    mc_wbuf_init(&w, MC_CONF_MAX_BYTES);
    rc = node_conf_encode(n, &conf, &w);
    if (rc == 0) {
        rc = mc_engine_apply(n->engine, e->index, NULL, 0, w.data, w.len, NULL);
    }
    mc_wbuf_free(&w);
    if (rc == 0) {
        struct mc_op_result ok;
        memset(&ok, 0, sizeof(ok));
        complete_writes(n, e, &ok, 1);
        node_members_applied(n, e, &cc, &conf);
    }
    return rc;
}

int node_apply_entry(struct mc_node *n, const struct mc_raft_entry *e)
{
    int rc;
    if (e->type == MC_RAFT_ENTRY_CONF) {
        rc = apply_conf(n, e);
    } else if (e->len == 0) {
        rc = mc_engine_apply(n->engine, e->index, NULL, 0, NULL, 0, NULL);
    } else if (e->data[0] == NODE_ENTRY_CHECK) {
        rc = node_check_apply(n, e);
    } else {
        rc = apply_ops(n, e);
    }
    if (rc == 0) {
        mc_metrics_applied_add(1);
        if (e->index > n->applied_index) {
            n->applied_index = e->index;
            n->applied_log_bytes += e->len;
        }
        /* Writes whose entries were overwritten before this one. */
        while (n->head_writes < n->n_writes && n->writes[n->head_writes].index <= e->index &&
               e->type != MC_RAFT_ENTRY_CONF && e->len == 0) {
            node_reply_not_leader(n, &n->writes[n->head_writes].token);
            n->head_writes++;
        }
    }
    return rc;
}

void node_fail_writes(struct mc_node *n, int code)
{
    for (size_t i = n->head_writes; i < n->n_writes; i++) {
        if (code == MC_ENOTLEADER) {
            node_reply_not_leader(n, &n->writes[i].token);
        } else {
            mc_client_reply_error(&n->writes[i].token, code, NULL);
        }
    }
    n->head_writes = n->n_writes = 0;
    for (size_t i = 0; i < n->n_batch_waiters; i++) {
        mc_client_reply_error(&n->batch_waiters[i].token, code, NULL);
    }
    n->n_batch_waiters = 0;
    n->batch_ops = 0;
    n->batch_apply_ops = 0;
    n->batch_has_register = false;
    n->batch_has_tick = false;
    n->batch_bucket_creates = 0;
    mc_wbuf_reset(&n->batch);
    /* Not leading any more (or stopping): what it proposed and has not applied may be replaced
     * (thesis §3.5), and a later term counts afresh: it takes writes only once it has applied
     * its own term's no-op (can_accept_write), past every entry counted here. A tick_index left
     * above a replaced entry blocked the expiry NOOP for good in an idle cluster (rev20 B1). */
    count_queue_clear(&n->creates);
    count_queue_clear(&n->registers);
    n->tick_index = 0;
}

void node_expire_writes(struct mc_node *n, uint64_t now_ms)
{
    /* The queue is in proposal order, so deadlines ascend. */
    while (n->head_writes < n->n_writes && n->writes[n->head_writes].deadline_ms <= now_ms) {
        mc_client_reply_error(&n->writes[n->head_writes].token, MC_ETIMEOUT,
                              "the write did not commit in time (outcome unknown)");
        n->head_writes++;
    }
}
