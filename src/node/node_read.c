/* node_read.c: the read path: stale reads from the local engine, linearizable reads via
 * batched ReadIndex (Raft thesis §6.4: one heartbeat round confirms every read of a batch). */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* The string fields of a read request, in the order pending_read.off stores them. */
enum read_field { F_BUCKET, F_KEY, F_VERSION_ID, F_PREFIX, F_DELIMITER, F_MARKER1, F_MARKER2 };
_Static_assert(F_MARKER2 + 1 == NODE_READ_FIELDS, "pending_read.off holds every field");

/* A read's arguments as C strings: into the request frame (a stale read, served during
 * dispatch) or into a pending_read's copy. marker1/marker2: start_after/continuation_token
 * (ListObjectsV2) or key_marker/version_id_marker (ListObjectVersions). */
struct read_args {
    const char *f[NODE_READ_FIELDS];
    uint32_t max_keys;
};

static void args_of(const struct mc_proto_request *q, struct read_args *a)
{
    static const struct mc_proto_str empty = {"", 0};
    const struct mc_proto_str *s[NODE_READ_FIELDS] = {&empty, &empty, &empty, &empty,
                                                      &empty, &empty, &empty};
    a->max_keys = 0;
    switch (q->op) {
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        s[F_BUCKET] = &q->u.get.bucket;
        s[F_KEY] = &q->u.get.key;
        s[F_VERSION_ID] = &q->u.get.version_id;
        break;
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS: /* one shape: u.list aliases u.versions */
        s[F_BUCKET] = &q->u.list.bucket;
        s[F_PREFIX] = &q->u.list.prefix;
        s[F_DELIMITER] = &q->u.list.delimiter;
        s[F_MARKER1] = &q->u.list.start_after;
        s[F_MARKER2] = &q->u.list.continuation_token;
        a->max_keys = q->u.list.max_keys;
        break;
    default:
        s[F_BUCKET] = &q->u.bucket.bucket;
    }
    /* Decoded strings are NUL-terminated in the frame (docs/decisions.md): no copy. */
    for (int i = 0; i < NODE_READ_FIELDS; i++) {
        a->f[i] = s[i]->ptr ? s[i]->ptr : "";
    }
}

/* Copy a's strings into p (inline when they fit). Returns 0 or MC_ENOMEM. */
static int capture(struct pending_read *p, const struct read_args *a)
{
    size_t len[NODE_READ_FIELDS], total = 0;
    for (int i = 0; i < NODE_READ_FIELDS; i++) {
        len[i] = strlen(a->f[i]) + 1;
        total += len[i];
    }
    char *buf = p->inl;
    p->heap = NULL;
    if (total > sizeof(p->inl)) {
        buf = p->heap = malloc(total);
        if (!buf) {
            return MC_ENOMEM;
        }
    }
    size_t at = 0;
    for (int i = 0; i < NODE_READ_FIELDS; i++) {
        memcpy(buf + at, a->f[i], len[i]);
        p->off[i] = (uint32_t)at;
        at += len[i];
    }
    p->max_keys = a->max_keys;
    return 0;
}

static void args_of_pending(const struct pending_read *p, struct read_args *a)
{
    const char *buf = p->heap ? p->heap : p->inl;
    for (int i = 0; i < NODE_READ_FIELDS; i++) {
        a->f[i] = buf + p->off[i];
    }
    a->max_keys = p->max_keys;
}

static void free_read(struct pending_read *r)
{
    free(r->heap);
    r->heap = NULL;
}

static const char *nz(const char *s)
{
    return s && s[0] ? s : NULL;
}

/* The reply a listing is written into: begun only once the engine accepted the request. */
struct list_reply {
    const struct mc_client_token *t;
    struct mc_wbuf *b; /* NULL: the connection is gone */
    bool begun;
};

static struct mc_wbuf *list_reply_begin(void *ctx)
{
    struct list_reply *r = ctx;
    r->begun = true;
    r->b = mc_client_reply_begin(r->t);
    return r->b;
}

/* Run one read against the engine and reply. */
static void serve(struct mc_node *n, const struct mc_client_token *t, const struct read_args *a)
{
    int rc = 0;
    const char *bucket = a->f[F_BUCKET];
    switch (t->op) {
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT: {
        /* Fast path: the stored record is copied out without decoding it. */
        bool is_dm = false;
        char marker_vid[MC_VERSION_ID_MAX + 1] = "";
        mc_wbuf_reset(&n->read_buf);
        rc = mc_engine_get_encoded(n->engine, bucket, a->f[F_KEY], nz(a->f[F_VERSION_ID]),
                                   t->op == MC_REQ_GET_OBJECT, &n->read_buf, &is_dm, marker_vid);
        if (rc == 0) {
            mc_client_reply(t, 0, n->read_buf.data, n->read_buf.len);
        } else if (rc == MC_ENOKEY && is_dm) {
            struct mc_proto_error e;
            memset(&e, 0, sizeof(e));
            e.message = mc_proto_cstr("the latest version is a delete marker");
            e.leader_addr = mc_proto_cstr("");
            e.flags = MC_PROTO_ERR_DELETE_MARKER;
            e.version_id = mc_proto_cstr(marker_vid);
            mc_client_reply_error_full(t, rc, &e);
        } else {
            mc_client_reply_error(t, rc, mc_engine_last_error());
        }
        return;
    }
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS: {
        struct mc_list_params p = {.prefix = a->f[F_PREFIX],
                                   .delimiter = nz(a->f[F_DELIMITER]),
                                   .max_keys = (int)(a->max_keys > 1000 ? 1000 : a->max_keys)};
        bool versions = t->op == MC_REQ_LIST_VERSIONS;
        if (versions) {
            p.key_marker = nz(a->f[F_MARKER1]);
            p.version_id_marker = nz(a->f[F_MARKER2]);
        } else {
            p.start_after = nz(a->f[F_MARKER1]);
            p.continuation_token = nz(a->f[F_MARKER2]);
        }
        /* One pass: a refusal returns before the reply is begun, with its message; an accepted
           listing goes straight into the reply (no copy): what can still fail there is a
           corrupt record or memory. */
        struct list_reply lr = {.t = t};
        rc = mc_engine_list_encode_to(n->engine, bucket, &p, versions, list_reply_begin, &lr);
        if (!lr.begun) {
            assert(rc);
            mc_client_reply_error(t, rc, mc_engine_last_error());
            return;
        }
        if (rc && lr.b && rc != mc_wbuf_error(lr.b)) {
            MC_ERROR("list_failed", "bucket=%s code=%s error=\"%s\"", bucket, mc_error_name(rc),
                     mc_engine_last_error());
        }
        mc_client_reply_end(t, rc); /* no reply begun (connection gone): only consumes t */
        return;
    }
    case MC_REQ_LIST_BUCKETS: {
        struct mc_bucket_info *b = NULL;
        size_t nb = 0;
        rc = mc_engine_bucket_list(n->engine, &b, &nb);
        if (rc == 0) {
            struct mc_wbuf *w = mc_client_reply_begin(t);
            if (w) {
                mc_bucket_list_encode(b, nb, w);
            }
            mc_client_reply_end(t, 0);
        } else {
            mc_client_reply_error(t, rc, NULL);
        }
        free(b);
        return;
    }
    case MC_REQ_HEAD_BUCKET: {
        struct mc_bucket_info b;
        rc = mc_engine_bucket_head(n->engine, bucket, &b);
        if (rc == 0) {
            struct mc_wbuf *w = mc_client_reply_begin(t);
            if (w) {
                mc_bucket_list_encode(&b, 1, w);
            }
            mc_client_reply_end(t, 0);
        } else {
            mc_client_reply_error(t, rc, NULL);
        }
        return;
    }
    default:
        mc_client_reply_error(t, MC_EINVAL, "not a read");
    }
}

static void serve_pending(struct mc_node *n, struct pending_read *r)
{
    struct read_args a;
    args_of_pending(r, &a);
    serve(n, &r->token, &a);
    mc_metrics_observe(MC_METRIC_READ_LINEARIZABLE, mc_mono_ns() - r->start_ns);
}

void node_handle_read(struct mc_node *n, const struct mc_client_request *r)
{
    const struct mc_proto_read_opts *ro = mc_proto_request_ro(r->req);
    assert(ro != NULL && r->token.op == r->req->op); /* only read ops are dispatched here */
    struct read_args a;
    args_of(r->req, &a);
    if (ro->consistency == MC_CONSISTENCY_STALE) {
        if (ro->max_staleness_ms && mc_raft_role(n->raft) != MC_RAFT_LEADER) {
            uint64_t last = n->last_leader_contact_ms;
            if (!last || node_now_ms() - last > ro->max_staleness_ms) {
                mc_client_reply_error(&r->token, MC_ESTALE,
                                      "no leader heard from within max_staleness_ms");
                return;
            }
        }
        /* Served now, straight from the request frame. */
        uint64_t start = mc_mono_ns();
        serve(n, &r->token, &a);
        mc_metrics_observe(MC_METRIC_READ_STALE, mc_mono_ns() - start);
        return;
    }
    if (n->n_reads >= NODE_MAX_PENDING_READS) {
        mc_client_reply_error(&r->token, MC_ELIMIT, "too many reads in flight");
        return;
    }
    if (n->n_reads == n->cap_reads) {
        size_t cap = n->cap_reads ? n->cap_reads * 2 : 256;
        struct pending_read *arr = realloc(n->reads, cap * sizeof(*arr));
        if (!arr) {
            mc_client_reply_error(&r->token, MC_ENOMEM, NULL);
            return;
        }
        n->reads = arr;
        n->cap_reads = cap;
    }
    struct pending_read *p = &n->reads[n->n_reads];
    if (capture(p, &a) != 0) {
        mc_client_reply_error(&r->token, MC_ENOMEM, NULL);
        return;
    }
    p->token = r->token;
    p->op = r->req->op;
    p->start_ns = mc_mono_ns();
    if (!n->read_batch) {
        n->read_batch = ++n->next_read_ctx;
    }
    p->batch = n->read_batch;
    p->index = 0;
    p->deadline_ms = node_now_ms() + NODE_READ_TIMEOUT_MS;
    n->n_reads++;
}

/* Compaction: reads[i] stays, moved down to reads[*k] (no self-copy while nothing was taken
 * out: a pending_read is ~170 bytes). */
static void keep_read(struct mc_node *n, size_t *k, size_t i)
{
    assert(*k <= i);
    if (*k != i) {
        n->reads[*k] = n->reads[i];
    }
    (*k)++;
}

static void drop_reads(struct mc_node *n, uint64_t batch, int code)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n_reads; i++) {
        struct pending_read *r = &n->reads[i];
        if (r->batch == batch) {
            if (code == MC_ENOTLEADER) {
                node_reply_not_leader(n, &r->token);
            } else {
                mc_client_reply_error(&r->token, code, NULL);
            }
            free_read(r);
            continue;
        }
        keep_read(n, &k, i);
    }
    n->n_reads = k;
}

/* One ReadIndex request for every read gathered this loop iteration. */
void node_flush_reads(struct mc_node *n)
{
    if (!n->read_batch) {
        return;
    }
    uint64_t batch = n->read_batch;
    n->read_batch = 0;
    int rc = mc_raft_read_index(n->raft, batch);
    if (rc) {
        drop_reads(n, batch, rc == MC_ENOTLEADER ? MC_ENOTLEADER : MC_EUNAVAIL);
    }
}

void node_on_read_state(struct mc_node *n, const struct mc_raft_read_state *rs)
{
    if (rs->err) {
        drop_reads(n, rs->ctx, rs->err == MC_ENOTLEADER ? MC_ENOTLEADER : rs->err);
        return;
    }
    for (size_t i = 0; i < n->n_reads; i++) {
        if (n->reads[i].batch == rs->ctx) {
            n->reads[i].batch = 0;
            n->reads[i].index = rs->index;
            n->reads_indexed = true;
        }
    }
}

/* Can a read have become servable since the last scan? Only through its index arriving,
 * applied_index moving, or a held read's connection draining (or closing): otherwise every
 * read left by that scan still waits for its index, for apply, or on a full output. Records
 * the state it saw, before the scan serves anything (a drain that serving causes is then seen
 * by the next pass). */
static bool reads_may_be_ready(struct mc_node *n)
{
    uint64_t drains = n->clients ? mc_client_server_drain_wakes(n->clients) : 0;
    bool changed = n->reads_indexed || n->applied_index != n->reads_seen_applied ||
                   drains != n->reads_seen_drains || !n->clients;
    n->reads_indexed = false;
    n->reads_seen_applied = n->applied_index;
    n->reads_seen_drains = drains;
    return changed && n->n_reads > 0;
}

/* Serve every read whose index has been applied, but hold those whose connection has a full
 * output (max_output_bytes queued): a burst of confirmed reads would otherwise be appended in
 * one pass, past the connection's hard output cap, which drops it with every reply. A held read
 * keeps its deadline (node_expire_reads); the client server wakes the loop once the output
 * drains (mc_client_conn_output_full), and this runs again from the next pass's prepare. Runs
 * once per loop pass: passes where nothing changed skip the walk (R-3: up to
 * NODE_MAX_PENDING_READS held reads for as long as their clients do not read). */
void node_serve_ready_reads(struct mc_node *n)
{
    if (!reads_may_be_ready(n)) {
        return;
    }
    n->read_scans++;
    size_t k = 0;
    for (size_t i = 0; i < n->n_reads; i++) {
        struct pending_read *r = &n->reads[i];
        if (r->batch == 0 && r->index <= n->applied_index &&
            !mc_client_conn_output_full(r->token.conn)) {
            serve_pending(n, r);
            free_read(r);
            continue;
        }
        keep_read(n, &k, i);
    }
    n->n_reads = k;
}

void node_fail_reads(struct mc_node *n, int code)
{
    for (size_t i = 0; i < n->n_reads; i++) {
        mc_client_reply_error(&n->reads[i].token, code, NULL);
        free_read(&n->reads[i]);
    }
    n->n_reads = 0;
    n->read_batch = 0;
}

/* Reads are only appended (node_add_read, deadline = now + NODE_READ_TIMEOUT_MS on the monotonic
 * clock) and every removal keeps the order (keep_read), so deadlines ascend: the expired reads
 * are a prefix, and a tick with none expired looks at reads[0] only (not every pending read). */
void node_expire_reads(struct mc_node *n, uint64_t now_ms)
{
    size_t i = 0;
    for (; i < n->n_reads; i++) {
        struct pending_read *r = &n->reads[i];
        n->read_expiry_checks++;
        if (r->deadline_ms > now_ms) {
            break;
        }
        assert(i + 1 == n->n_reads || r->deadline_ms <= n->reads[i + 1].deadline_ms);
        /* Reads are idempotent: ServiceUnavailable lets the client retry elsewhere. The
         * message says where it waited (N-1): a read held for its connection's full
         * output was confirmed and applied; the client did not take its replies. */
        const char *why = r->batch != 0                 ? "read index not confirmed in time"
                          : r->index > n->applied_index ? "read index not applied in time"
                                                        : "reply held: connection output full";
        mc_client_reply_error(&r->token, MC_EUNAVAIL, why);
        free_read(r);
    }
    if (i > 0) {
        memmove(n->reads, n->reads + i, (n->n_reads - i) * sizeof(*n->reads));
        n->n_reads -= i;
    }
}

/* The leader changed: a ReadIndex forwarded to the old one may never be answered. Reads that
 * already have their index stay (it was confirmed by a then-current leader, thesis §6.4). */
void node_reads_leader_changed(struct mc_node *n)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n_reads; i++) {
        struct pending_read *r = &n->reads[i];
        if (r->batch != 0) {
            mc_client_reply_error(&r->token, MC_EUNAVAIL, "leader changed; retry");
            free_read(r);
            continue;
        }
        keep_read(n, &k, i);
    }
    n->n_reads = k;
    n->read_batch = 0;
}
