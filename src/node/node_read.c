/* node_read.c: the read path: stale reads from the local engine, linearizable reads via
 * batched ReadIndex (Raft thesis §6.4: one heartbeat round confirms every read of a batch). */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/log.h"

#include <stdlib.h>
#include <string.h>

static char *dup_str(const struct mc_proto_str *s)
{
    char *p = malloc((size_t)s->len + 1);
    if (p) {
        memcpy(p, s->ptr, s->len);
        p[s->len] = 0;
    }
    return p;
}

static void free_read(struct pending_read *r)
{
    free(r->bucket);
    free(r->key);
    free(r->version_id);
    free(r->prefix);
    free(r->delimiter);
    free(r->marker1);
    free(r->marker2);
}

static const char *nz(const char *s)
{
    return s && s[0] ? s : NULL;
}

/* Run one read against the engine and reply. */
static void serve_one(struct mc_node *n, struct pending_read *r);

static void serve(struct mc_node *n, struct pending_read *r)
{
    serve_one(n, r);
    mc_metrics_observe(r->batch == UINT64_MAX ? MC_METRIC_READ_STALE : MC_METRIC_READ_LINEARIZABLE,
                       mc_mono_ns() - r->start_ns);
}

static void serve_one(struct mc_node *n, struct pending_read *r)
{
    const struct mc_client_token *t = &r->token;
    int rc = 0;
    switch (r->op) {
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT: {
        /* Fast path: the stored record is copied out without decoding it. */
        bool is_dm = false;
        char marker_vid[MC_VERSION_ID_MAX + 1] = "";
        mc_wbuf_reset(&n->read_buf);
        rc = mc_engine_get_encoded(n->engine, r->bucket, r->key, nz(r->version_id),
                                   r->op == MC_REQ_GET_OBJECT, &n->read_buf, &is_dm, marker_vid);
        if (rc == 0) {
            mc_client_reply(t, 0, n->read_buf.data, n->read_buf.len);
        } else if (rc == MC_ENOKEY && is_dm) {
            struct mc_proto_error e;
            memset(&e, 0, sizeof(e));
            e.message = mc_proto_cstr("the latest version is a delete marker");
            e.leader_addr = mc_proto_cstr("");
            e.flags = MC_PROTO_ERR_DELETE_MARKER;
            e.version_id = mc_proto_cstr(marker_vid);
            node_reply_error_full(t, rc, &e);
        } else {
            node_reply_error(t, rc, mc_engine_last_error());
        }
        return;
    }
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS: {
        struct mc_list_params p = {.prefix = r->prefix,
                                   .delimiter = nz(r->delimiter),
                                   .max_keys = (int)(r->max_keys > 1000 ? 1000 : r->max_keys)};
        struct mc_list_result res;
        memset(&res, 0, sizeof(res));
        if (r->op == MC_REQ_LIST_OBJECTS) {
            p.start_after = nz(r->marker1);
            p.continuation_token = nz(r->marker2);
            rc = mc_engine_list_objects(n->engine, r->bucket, &p, &res);
        } else {
            p.key_marker = nz(r->marker1);
            p.version_id_marker = nz(r->marker2);
            rc = mc_engine_list_versions(n->engine, r->bucket, &p, &res);
        }
        if (rc == 0) {
            struct mc_wbuf *b = mc_client_reply_begin(t);
            if (b) {
                mc_list_result_encode(&res, b);
            }
            mc_client_reply_end(t, 0);
        } else {
            node_reply_error(t, rc, mc_engine_last_error());
        }
        mc_list_result_clear(&res);
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
            node_reply_error(t, rc, NULL);
        }
        free(b);
        return;
    }
    case MC_REQ_HEAD_BUCKET: {
        struct mc_bucket_info b;
        rc = mc_engine_bucket_head(n->engine, r->bucket, &b);
        if (rc == 0) {
            struct mc_wbuf *w = mc_client_reply_begin(t);
            if (w) {
                mc_bucket_list_encode(&b, 1, w);
            }
            mc_client_reply_end(t, 0);
        } else {
            node_reply_error(t, rc, NULL);
        }
        return;
    }
    default:
        node_reply_error(t, MC_EINVAL, "not a read");
    }
}

/* Copy the request's fields (the frame buffer is reused after dispatch). */
static int capture(struct pending_read *p, const struct mc_proto_request *q)
{
    memset(p, 0, sizeof(*p));
    p->op = q->op;
    switch (q->op) {
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        p->bucket = dup_str(&q->u.get.bucket);
        p->key = dup_str(&q->u.get.key);
        p->version_id = dup_str(&q->u.get.version_id);
        return p->bucket && p->key && p->version_id ? 0 : MC_ENOMEM;
    case MC_REQ_LIST_OBJECTS:
        p->bucket = dup_str(&q->u.list.bucket);
        p->prefix = dup_str(&q->u.list.prefix);
        p->delimiter = dup_str(&q->u.list.delimiter);
        p->marker1 = dup_str(&q->u.list.start_after);
        p->marker2 = dup_str(&q->u.list.continuation_token);
        p->max_keys = q->u.list.max_keys;
        return p->bucket && p->prefix && p->delimiter && p->marker1 && p->marker2 ? 0 : MC_ENOMEM;
    case MC_REQ_LIST_VERSIONS:
        p->bucket = dup_str(&q->u.versions.bucket);
        p->prefix = dup_str(&q->u.versions.prefix);
        p->delimiter = dup_str(&q->u.versions.delimiter);
        p->marker1 = dup_str(&q->u.versions.key_marker);
        p->marker2 = dup_str(&q->u.versions.version_id_marker);
        p->max_keys = q->u.versions.max_keys;
        return p->bucket && p->prefix && p->delimiter && p->marker1 && p->marker2 ? 0 : MC_ENOMEM;
    default:
        p->bucket = dup_str(&q->u.bucket.bucket);
        return p->bucket ? 0 : MC_ENOMEM;
    }
}

static const struct mc_proto_read_opts *read_opts(const struct mc_proto_request *q)
{
    switch (q->op) {
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        return &q->u.get.ro;
    case MC_REQ_LIST_OBJECTS:
        return &q->u.list.ro;
    case MC_REQ_LIST_VERSIONS:
        return &q->u.versions.ro;
    default:
        return &q->u.bucket.ro;
    }
}

void node_handle_read(struct mc_node *n, const struct mc_client_request *r)
{
    const struct mc_proto_read_opts *ro = read_opts(r->req);
    struct pending_read p;
    int rc = capture(&p, r->req);
    p.token = r->token;
    p.start_ns = mc_mono_ns();
    if (rc) {
        free_read(&p);
        node_reply_error(&r->token, rc, NULL);
        return;
    }
    if (ro->consistency == MC_CONSISTENCY_STALE) {
        if (ro->max_staleness_ms && mc_raft_role(n->raft) != MC_RAFT_LEADER) {
            uint64_t last = n->last_leader_contact_ms;
            if (!last || node_now_ms() - last > ro->max_staleness_ms) {
                free_read(&p);
                node_reply_error(&r->token, MC_ESTALE,
                                 "no leader heard from within max_staleness_ms");
                return;
            }
        }
        p.batch = UINT64_MAX; /* marks a stale read for the latency histogram */
        serve(n, &p);
        free_read(&p);
        return;
    }
    if (n->n_reads >= NODE_MAX_PENDING_READS) {
        free_read(&p);
        node_reply_error(&r->token, MC_ELIMIT, "too many reads in flight");
        return;
    }
    if (n->n_reads == n->cap_reads) {
        size_t cap = n->cap_reads ? n->cap_reads * 2 : 256;
        struct pending_read *a = realloc(n->reads, cap * sizeof(*a));
        if (!a) {
            free_read(&p);
            node_reply_error(&r->token, MC_ENOMEM, NULL);
            return;
        }
        n->reads = a;
        n->cap_reads = cap;
    }
    if (!n->read_batch) {
        n->read_batch = ++n->next_read_ctx;
    }
    p.batch = n->read_batch;
    p.deadline_ms = node_now_ms() + NODE_READ_TIMEOUT_MS;
    n->reads[n->n_reads++] = p;
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
                node_reply_error(&r->token, code, NULL);
            }
            free_read(r);
            continue;
        }
        n->reads[k++] = *r;
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
        }
    }
}

/* Serve every read whose index has been applied. */
void node_serve_ready_reads(struct mc_node *n)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n_reads; i++) {
        struct pending_read *r = &n->reads[i];
        if (r->batch == 0 && r->index <= n->applied_index) {
            serve(n, r);
            free_read(r);
            continue;
        }
        n->reads[k++] = *r;
    }
    n->n_reads = k;
}

void node_fail_reads(struct mc_node *n, int code)
{
    for (size_t i = 0; i < n->n_reads; i++) {
        node_reply_error(&n->reads[i].token, code, NULL);
        free_read(&n->reads[i]);
    }
    n->n_reads = 0;
    n->read_batch = 0;
}

void node_expire_reads(struct mc_node *n, uint64_t now_ms)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n_reads; i++) {
        struct pending_read *r = &n->reads[i];
        if (r->deadline_ms <= now_ms) {
            /* Reads are idempotent: ServiceUnavailable lets the client retry elsewhere. */
            node_reply_error(&r->token, MC_EUNAVAIL, "read index not confirmed in time");
            free_read(r);
            continue;
        }
        n->reads[k++] = *r;
    }
    n->n_reads = k;
}

/* The leader changed: a ReadIndex forwarded to the old one may never be answered. Reads that
 * already have their index stay (it was confirmed by a then-current leader, thesis §6.4). */
void node_reads_leader_changed(struct mc_node *n)
{
    size_t k = 0;
    for (size_t i = 0; i < n->n_reads; i++) {
        struct pending_read *r = &n->reads[i];
        if (r->batch != 0) {
            node_reply_error(&r->token, MC_EUNAVAIL, "leader changed; retry");
            free_read(r);
            continue;
        }
        n->reads[k++] = *r;
    }
    n->n_reads = k;
    n->read_batch = 0;
}
