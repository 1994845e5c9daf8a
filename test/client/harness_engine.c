/* harness_engine.c: a single-node request handler backed directly by the engine (no Raft): each
 * write is applied at the next log index, as the node does after commit. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/clock.h"

struct th_engine {
    struct mc_engine *eng;
    uint64_t index;
    int64_t last_ns; /* newest op time stamped: op times strictly increase, as a node's */
};

struct th_server;

int th_engine_open(struct th_server *s, const char *dir, void **out)
{
    (void)s;
    struct th_engine *e = calloc(1, sizeof(*e));
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE};
    int rc = mc_engine_open(dir, &o, &e->eng);
    if (rc != 0) {
        free(e);
        return rc;
    }
    mc_engine_applied_index(e->eng, &e->index);
    *out = e;
    return 0;
}

void th_engine_close(void *engine)
{
    struct th_engine *e = engine;
    mc_engine_close(e->eng);
    free(e);
}

/* What the leader fills in when it proposes: op time and new version ids, as node_write.c
 * stamp(): every op and sub-op its own time, a version id that time. */
static int prepare_op(struct th_engine *e, struct mc_op *op, int64_t now)
{
    if (now <= e->last_ns) {
        now = e->last_ns + 1;
    }
    e->last_ns = now;
    op->time_ns = now;
    if ((op->type == MC_OP_PUT || op->type == MC_OP_DELETE) && !op->new_version_id) {
        char vid[17];
        mc_version_id_from_time(vid, now);
        op->new_version_id = strdup(vid);
        if (!op->new_version_id) {
            return MC_ENOMEM;
        }
    }
    for (uint32_t i = 0; i < op->n_sub; i++) {
        int rc = prepare_op(e, &op->sub[i], now);
        if (rc) {
            return rc;
        }
    }
    op->time_ns = e->last_ns;
    return 0;
}

static void reply_result(const struct mc_client_request *r, const struct mc_op_result *res)
{
    uint8_t buf[256];
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    mc_op_result_encode(res, &w);
    if (res->code == 0) {
        mc_client_reply(&r->token, 0, w.data, w.len);
    } else {
        struct mc_proto_error err = {0};
        snprintf((char *)buf, sizeof(buf), "%s", mc_engine_last_error());
        err.message = mc_proto_cstr((const char *)buf);
        err.result = w.data;
        err.result_len = (uint32_t)w.len;
        mc_client_reply_error_full(&r->token, res->code, &err);
    }
    mc_wbuf_free(&w);
}

static void do_write(struct th_engine *e, const struct mc_client_request *r, uint64_t *applied,
                     uint64_t *duplicates)
{
    const struct mc_proto_request *q = r->req;
    struct mc_op op = {0};
    struct mc_op *subs = NULL;
    uint32_t n = q->u.write.n_ops, pos = 0, len, i = 0;
    const uint8_t *p;
    int rc = 0;
    int64_t now = mc_wall_ns();
    if (n == 1) {
        mc_proto_ops_next(q->u.write.ops, q->u.write.ops_bytes, &pos, &p, &len);
        rc = mc_op_decode(p, len, &op);
    } else {
        subs = calloc(n, sizeof(*subs));
        while (rc == 0 && mc_proto_ops_next(q->u.write.ops, q->u.write.ops_bytes, &pos, &p, &len)) {
            rc = mc_op_decode(p, len, &subs[i++]);
        }
        if (rc == 0) {
            rc = mc_op_atomic(&op, subs, n);
        }
        for (uint32_t k = 0; k < n; k++) {
            mc_op_clear(&subs[k]);
        }
        free(subs);
    }
    if (rc == 0 && (op.type == MC_OP_SESSION_REGISTER || op.session_id)) {
        rc = MC_EINVAL; /* sessions travel in the frame, not in the record */
    }
    if (rc == 0) {
        rc = prepare_op(e, &op, now);
    }
    if (rc != 0) {
        mc_op_clear(&op);
        mc_client_reply_error(&r->token, rc, "bad op record");
        return;
    }
    op.session_id = q->u.write.session_id;
    op.seq = q->u.write.seq;
    struct mc_op_result res;
    rc = mc_engine_apply(e->eng, e->index + 1, &op, 1, NULL, 0, &res);
    mc_op_clear(&op);
    if (rc != 0) {
        mc_client_reply_error(&r->token, rc, mc_engine_last_error());
        return;
    }
    e->index++;
    if (res.duplicate) {
        __atomic_add_fetch(duplicates, 1, __ATOMIC_RELAXED);
    } else if (res.code == 0) {
        __atomic_add_fetch(applied, 1, __ATOMIC_RELAXED);
    }
    reply_result(r, &res);
}

static void do_register(struct th_engine *e, const struct mc_client_request *r)
{
    struct mc_op op = {0};
    struct mc_op_result res;
    mc_op_session_register(&op, mc_wall_ns());
    int rc = mc_engine_apply(e->eng, e->index + 1, &op, 1, NULL, 0, &res);
    mc_op_clear(&op);
    if (rc == 0) {
        e->index++;
        rc = res.code;
    }
    if (rc != 0) {
        mc_client_reply_error(&r->token, rc, mc_engine_last_error());
        return;
    }
    uint8_t b[8];
    mc_put_u64le(b, res.session_id);
    mc_client_reply(&r->token, 0, b, sizeof(b));
}

static void do_get(struct th_engine *e, const struct mc_client_request *r, bool head)
{
    const struct mc_proto_request *q = r->req;
    struct mc_version v = {0};
    int rc = mc_engine_get(e->eng, q->u.get.bucket.ptr, q->u.get.key.ptr,
                           q->u.get.version_id.len ? q->u.get.version_id.ptr : NULL, !head, &v);
    if (rc == MC_ENOKEY && v.is_delete_marker) {
        struct mc_proto_error err = {0};
        err.message = mc_proto_cstr("the latest version is a delete marker");
        err.flags = MC_PROTO_ERR_DELETE_MARKER;
        err.version_id = mc_proto_cstr(v.version_id);
        mc_client_reply_error_full(&r->token, rc, &err);
    } else if (rc != 0) {
        mc_client_reply_error(&r->token, rc, mc_engine_last_error());
    } else {
        struct mc_wbuf *w = mc_client_reply_begin(&r->token);
        if (w) {
            rc = mc_version_encode(&v, w);
        }
        mc_client_reply_end(&r->token, rc);
    }
    mc_version_clear(&v);
}

static void do_list(struct th_engine *e, const struct mc_client_request *r, bool versions)
{
    const struct mc_proto_request *q = r->req;
    struct mc_list_params p = {0};
    const char *bucket;
    if (versions) {
        bucket = q->u.versions.bucket.ptr;
        p.prefix = q->u.versions.prefix.ptr;
        p.delimiter = q->u.versions.delimiter.ptr;
        p.key_marker = q->u.versions.key_marker.len ? q->u.versions.key_marker.ptr : NULL;
        p.version_id_marker =
            q->u.versions.version_id_marker.len ? q->u.versions.version_id_marker.ptr : NULL;
        p.max_keys = (int)(q->u.versions.max_keys > 1000 ? 1000 : q->u.versions.max_keys);
    } else {
        bucket = q->u.list.bucket.ptr;
        p.prefix = q->u.list.prefix.ptr;
        p.delimiter = q->u.list.delimiter.ptr;
        p.start_after = q->u.list.start_after.len ? q->u.list.start_after.ptr : NULL;
        p.continuation_token =
            q->u.list.continuation_token.len ? q->u.list.continuation_token.ptr : NULL;
        p.max_keys = (int)(q->u.list.max_keys > 1000 ? 1000 : q->u.list.max_keys);
    }
    struct mc_list_result res = {0};
    int rc = versions ? mc_engine_list_versions(e->eng, bucket, &p, &res)
                      : mc_engine_list_objects(e->eng, bucket, &p, &res);
    if (rc != 0) {
        mc_client_reply_error(&r->token, rc, mc_engine_last_error());
    } else {
        struct mc_wbuf *w = mc_client_reply_begin(&r->token);
        if (w) {
            rc = mc_list_result_encode(&res, w);
        }
        mc_client_reply_end(&r->token, rc);
    }
    mc_list_result_clear(&res);
}

static void do_buckets(struct th_engine *e, const struct mc_client_request *r, bool head)
{
    struct mc_bucket_info one, *list = NULL;
    size_t n = 0;
    int rc;
    if (head) {
        rc = mc_engine_bucket_head(e->eng, r->req->u.bucket.bucket.ptr, &one);
        list = &one;
        n = 1;
    } else {
        rc = mc_engine_bucket_list(e->eng, &list, &n);
    }
    if (rc != 0) {
        mc_client_reply_error(&r->token, rc, mc_engine_last_error());
    } else {
        struct mc_wbuf *w = mc_client_reply_begin(&r->token);
        if (w) {
            rc = mc_bucket_list_encode(list, n, w);
        }
        mc_client_reply_end(&r->token, rc);
    }
    if (!head) {
        free(list);
    }
}

void th_engine_dispatch(void *engine, uint64_t node_id, const struct mc_client_request *r,
                        uint64_t *applied, uint64_t *duplicates)
{
    struct th_engine *e = engine;
    struct mc_wbuf w;
    switch (r->req->op) {
    case MC_REQ_WRITE:
        do_write(e, r, applied, duplicates);
        break;
    case MC_REQ_REGISTER_SESSION:
        do_register(e, r);
        break;
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        do_get(e, r, r->req->op == MC_REQ_HEAD_OBJECT);
        break;
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS:
        do_list(e, r, r->req->op == MC_REQ_LIST_VERSIONS);
        break;
    case MC_REQ_LIST_BUCKETS:
    case MC_REQ_HEAD_BUCKET:
        do_buckets(e, r, r->req->op == MC_REQ_HEAD_BUCKET);
        break;
    case MC_REQ_PING: {
        struct mc_ping_info p = {node_id, node_id, 1};
        mc_wbuf_init(&w, 0);
        mc_proto_ping_put(&w, &p);
        mc_client_reply(&r->token, 0, w.data, w.len);
        mc_wbuf_free(&w);
        break;
    }
    case MC_REQ_CHECK: {
        struct mc_check_result c = {.node_id = node_id};
        int rc = mc_engine_state_hash(e->eng, &c.hash, &c.index);
        if (rc != 0) {
            mc_client_reply_error(&r->token, rc, mc_engine_last_error());
            break;
        }
        mc_wbuf_init(&w, 0);
        mc_proto_check_put(&w, &c);
        mc_client_reply(&r->token, 0, w.data, w.len);
        mc_wbuf_free(&w);
        break;
    }
    default:
        mc_client_reply_error(&r->token, MC_EINVAL, "not served by the engine test handler");
        break;
    }
}
