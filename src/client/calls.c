/* calls.c: client request builders (async) and blocking wrappers over the client core. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "client/client_internal.h"
#include "metacenter/error.h"

static struct mc_proto_read_opts ro_of(const struct mc_client *c, const struct mc_read_opts *ro)
{
    if (!ro) {
        ro = mc_client_default_read(c);
    }
    struct mc_proto_read_opts p = {(uint8_t)ro->consistency, ro->max_staleness_ms};
    return p;
}

/* ---- async ---- */

int mc_client_get_async(struct mc_client *c, bool head, const char *bucket, const char *key,
                        const char *version_id, const struct mc_read_opts *ro, mc_client_cb cb,
                        void *arg)
{
    struct mc_proto_request q = {.op = head ? MC_REQ_HEAD_OBJECT : MC_REQ_GET_OBJECT};
    q.u.get.ro = ro_of(c, ro);
    q.u.get.bucket = mc_proto_cstr(bucket);
    q.u.get.key = mc_proto_cstr(key);
    q.u.get.version_id = mc_proto_cstr(version_id);
    return mc_client_submit(c, &q, -1, cb, arg);
}

int mc_client_list_objects_async(struct mc_client *c, const struct mc_list_args *a,
                                 const struct mc_read_opts *ro, mc_client_cb cb, void *arg)
{
    struct mc_proto_request q = {.op = MC_REQ_LIST_OBJECTS};
    q.u.list.ro = ro_of(c, ro);
    q.u.list.bucket = mc_proto_cstr(a->bucket);
    q.u.list.prefix = mc_proto_cstr(a->prefix);
    q.u.list.delimiter = mc_proto_cstr(a->delimiter);
    q.u.list.start_after = mc_proto_cstr(a->start_after);
    q.u.list.continuation_token = mc_proto_cstr(a->continuation_token);
    q.u.list.max_keys = a->max_keys;
    return mc_client_submit(c, &q, -1, cb, arg);
}

int mc_client_list_versions_async(struct mc_client *c, const struct mc_list_args *a,
                                  const struct mc_read_opts *ro, mc_client_cb cb, void *arg)
{
    struct mc_proto_request q = {.op = MC_REQ_LIST_VERSIONS};
    q.u.versions.ro = ro_of(c, ro);
    q.u.versions.bucket = mc_proto_cstr(a->bucket);
    q.u.versions.prefix = mc_proto_cstr(a->prefix);
    q.u.versions.delimiter = mc_proto_cstr(a->delimiter);
    q.u.versions.key_marker = mc_proto_cstr(a->key_marker);
    q.u.versions.version_id_marker = mc_proto_cstr(a->version_id_marker);
    q.u.versions.max_keys = a->max_keys;
    return mc_client_submit(c, &q, -1, cb, arg);
}

int mc_client_list_buckets_async(struct mc_client *c, const struct mc_read_opts *ro,
                                 mc_client_cb cb, void *arg)
{
    struct mc_proto_request q = {.op = MC_REQ_LIST_BUCKETS};
    q.u.bucket.ro = ro_of(c, ro);
    return mc_client_submit(c, &q, -1, cb, arg);
}

int mc_client_head_bucket_async(struct mc_client *c, const char *bucket,
                                const struct mc_read_opts *ro, mc_client_cb cb, void *arg)
{
    struct mc_proto_request q = {.op = MC_REQ_HEAD_BUCKET};
    q.u.bucket.ro = ro_of(c, ro);
    q.u.bucket.bucket = mc_proto_cstr(bucket);
    return mc_client_submit(c, &q, -1, cb, arg);
}

static int simple(struct mc_client *c, uint8_t op, int endpoint, mc_client_cb cb, void *arg)
{
    struct mc_proto_request q = {.op = op};
    return mc_client_submit(c, &q, endpoint, cb, arg);
}

int mc_client_ping_async(struct mc_client *c, int endpoint, mc_client_cb cb, void *arg)
{
    return simple(c, MC_REQ_PING, endpoint, cb, arg);
}

int mc_client_status_async(struct mc_client *c, int endpoint, mc_client_cb cb, void *arg)
{
    return simple(c, MC_REQ_CLUSTER_STATUS, endpoint, cb, arg);
}

int mc_client_snapshot_async(struct mc_client *c, int endpoint, mc_client_cb cb, void *arg)
{
    return simple(c, MC_REQ_SNAPSHOT_SAVE, endpoint, cb, arg);
}

int mc_client_snapshot_from_async(struct mc_client *c, int endpoint, uint64_t min_index,
                                  mc_client_cb cb, void *arg)
{
    struct mc_proto_request q = {.op = MC_REQ_SNAPSHOT_SAVE, .flags = MC_PROTO_FLAG_SAVE_MIN_INDEX};
    q.u.save.min_index = min_index;
    return mc_client_submit(c, &q, endpoint, cb, arg);
}

int mc_client_add_member_async(struct mc_client *c, uint64_t id, const char *peer_addr,
                               const char *client_addr, bool learner, mc_client_cb cb, void *arg)
{
    struct mc_proto_request q = {.op = MC_REQ_ADD_MEMBER};
    q.u.member.id = id;
    q.u.member.peer_addr = mc_proto_cstr(peer_addr);
    q.u.member.client_addr = mc_proto_cstr(client_addr);
    q.u.member.learner = learner;
    return mc_client_submit(c, &q, -1, cb, arg);
}

static int member_op(struct mc_client *c, uint8_t op, uint64_t id, mc_client_cb cb, void *arg)
{
    struct mc_proto_request q = {.op = op};
    q.u.member.id = id;
    return mc_client_submit(c, &q, -1, cb, arg);
}

int mc_client_promote_async(struct mc_client *c, uint64_t id, mc_client_cb cb, void *arg)
{
    return member_op(c, MC_REQ_PROMOTE_MEMBER, id, cb, arg);
}

int mc_client_remove_member_async(struct mc_client *c, uint64_t id, mc_client_cb cb, void *arg)
{
    return member_op(c, MC_REQ_REMOVE_MEMBER, id, cb, arg);
}

int mc_client_transfer_leader_async(struct mc_client *c, uint64_t id, mc_client_cb cb, void *arg)
{
    return member_op(c, MC_REQ_TRANSFER_LEADER, id, cb, arg);
}

int mc_client_check_async(struct mc_client *c, int endpoint, uint64_t index, mc_client_cb cb,
                          void *arg)
{
    struct mc_proto_request q = {.op = MC_REQ_CHECK};
    q.u.check.index = index;
    return mc_client_submit(c, &q, endpoint, cb, arg);
}

int mc_client_decode_result(const struct mc_client_result *r, struct mc_op_result *out)
{
    memset(out, 0, sizeof(*out));
    out->failed_op = -1;
    if (r->body_len == 0) {
        out->code = r->status;
        return r->status ? r->status : MC_EPROTO;
    }
    return mc_op_result_decode(r->body, r->body_len, out);
}

int mc_client_decode_ping(const struct mc_client_result *r, struct mc_ping_info *out)
{
    return mc_proto_ping_decode(r->body, r->body_len, out);
}

int mc_client_decode_status(const struct mc_client_result *r, struct mc_cluster_status *out)
{
    return mc_proto_status_decode(r->body, r->body_len, out);
}

int mc_client_decode_check(const struct mc_client_result *r, struct mc_check_result *out)
{
    return mc_proto_check_decode(r->body, r->body_len, out);
}

int mc_client_decode_chunk(const struct mc_client_result *r, struct mc_snapshot_chunk *out)
{
    return mc_proto_chunk_decode(r->body, r->body_len, out);
}

int mc_client_decode_save_busy(const struct mc_client_result *r, uint64_t *min_index)
{
    if (r->status != MC_EBUSY) {
        return MC_ENOTFOUND;
    }
    return mc_proto_save_busy_index(r->body, r->body_len, min_index);
}

/* ---- blocking ---- */

struct sync {
    struct mc_client *c;
    bool done;
    int status;
    struct mc_client_buf body; /* copied reply body (also a failed write's result) */
};

static void sync_cb(void *arg, const struct mc_client_result *r)
{
    struct sync *s = arg;
    s->done = true;
    s->status = r->status;
    if (r->body_len > 0) {
        s->body.data = malloc(r->body_len);
        if (!s->body.data) {
            s->status = MC_ENOMEM;
            return;
        }
        memcpy(s->body.data, r->body, r->body_len);
        s->body.len = r->body_len;
    }
    if (r->status != 0) {
        mc_client_note_error(s->c, r);
    }
}

static void sync_init(struct sync *s, struct mc_client *c)
{
    memset(s, 0, sizeof(*s));
    s->c = c;
}

/* Wait for a submitted sync call; rc is the submit result. */
static int sync_wait(struct sync *s, int rc)
{
    if (rc != 0) {
        struct mc_client_result r = {
            .status = rc, .message = "", .leader_addr = "", .version_id = ""};
        mc_client_note_error(s->c, &r);
        return rc;
    }
    while (!s->done) {
        rc = mc_client_poll(s->c, 1000);
        if (rc < 0) {
            /* s is on our caller's stack: the request must not outlive this call. */
            mc_client_cancel_arg(s->c, s, rc);
            assert(s->done);
            break;
        }
    }
    return s->status;
}

void mc_client_buf_free(struct mc_client_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
}

static int finish_raw(struct sync *s, int rc, struct mc_client_buf *out)
{
    if (out) {
        *out = s->body;
    } else {
        mc_client_buf_free(&s->body);
    }
    return rc;
}

int mc_client_write(struct mc_client *c, uint32_t n_ops, const void *const *ops, const size_t *lens,
                    struct mc_client_buf *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc = sync_wait(&s, mc_client_write_async(c, n_ops, ops, lens, sync_cb, &s));
    return finish_raw(&s, rc, out);
}

int mc_client_get_raw(struct mc_client *c, bool head, const char *bucket, const char *key,
                      const char *version_id, struct mc_client_buf *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc =
        sync_wait(&s, mc_client_get_async(c, head, bucket, key, version_id, NULL, sync_cb, &s));
    return finish_raw(&s, rc, out);
}

int mc_client_list_objects_raw(struct mc_client *c, const struct mc_list_args *a,
                               struct mc_client_buf *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc = sync_wait(&s, mc_client_list_objects_async(c, a, NULL, sync_cb, &s));
    return finish_raw(&s, rc, out);
}

int mc_client_list_versions_raw(struct mc_client *c, const struct mc_list_args *a,
                                struct mc_client_buf *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc = sync_wait(&s, mc_client_list_versions_async(c, a, NULL, sync_cb, &s));
    return finish_raw(&s, rc, out);
}

int mc_client_list_buckets_raw(struct mc_client *c, struct mc_client_buf *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc = sync_wait(&s, mc_client_list_buckets_async(c, NULL, sync_cb, &s));
    return finish_raw(&s, rc, out);
}

int mc_client_head_bucket_raw(struct mc_client *c, const char *bucket, struct mc_client_buf *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc = sync_wait(&s, mc_client_head_bucket_async(c, bucket, NULL, sync_cb, &s));
    return finish_raw(&s, rc, out);
}

int mc_client_ping(struct mc_client *c, int endpoint, struct mc_ping_info *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc = sync_wait(&s, mc_client_ping_async(c, endpoint, sync_cb, &s));
    if (rc == 0 && out) {
        rc = mc_proto_ping_decode(s.body.data, s.body.len, out);
    }
    mc_client_buf_free(&s.body);
    return rc;
}

int mc_client_cluster_status(struct mc_client *c, int endpoint, struct mc_cluster_status *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc = sync_wait(&s, mc_client_status_async(c, endpoint, sync_cb, &s));
    if (rc == 0) {
        rc = mc_proto_status_decode(s.body.data, s.body.len, out);
    }
    mc_client_buf_free(&s.body);
    return rc;
}

static int sync_simple(struct sync *s, int rc)
{
    rc = sync_wait(s, rc);
    mc_client_buf_free(&s->body);
    return rc;
}

int mc_client_add_member(struct mc_client *c, uint64_t id, const char *peer_addr,
                         const char *client_addr, bool learner)
{
    struct sync s;
    sync_init(&s, c);
    return sync_simple(
        &s, mc_client_add_member_async(c, id, peer_addr, client_addr, learner, sync_cb, &s));
}

int mc_client_promote(struct mc_client *c, uint64_t id)
{
    struct sync s;
    sync_init(&s, c);
    return sync_simple(&s, mc_client_promote_async(c, id, sync_cb, &s));
}

int mc_client_remove_member(struct mc_client *c, uint64_t id)
{
    struct sync s;
    sync_init(&s, c);
    return sync_simple(&s, mc_client_remove_member_async(c, id, sync_cb, &s));
}

int mc_client_transfer_leader(struct mc_client *c, uint64_t id)
{
    struct sync s;
    sync_init(&s, c);
    return sync_simple(&s, mc_client_transfer_leader_async(c, id, sync_cb, &s));
}

int mc_client_check(struct mc_client *c, int endpoint, uint64_t index, struct mc_check_result *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc = sync_wait(&s, mc_client_check_async(c, endpoint, index, sync_cb, &s));
    if (rc == 0) {
        rc = mc_proto_check_decode(s.body.data, s.body.len, out);
    }
    mc_client_buf_free(&s.body);
    return rc;
}

/* Snapshot streaming into a file: chunks must arrive in order and cover the whole size. */
struct snap {
    struct mc_client *c;
    FILE *f;
    bool done;
    int status;
    uint64_t next_offset;
    uint64_t total;
    uint64_t checksum;
};

static void snap_cb(void *arg, const struct mc_client_result *r)
{
    struct snap *s = arg;
    if (r->status != 0) {
        s->done = true;
        s->status = r->status;
        mc_client_note_error(s->c, r);
        return;
    }
    struct mc_snapshot_chunk ch;
    if (s->status == 0 && mc_proto_chunk_decode(r->body, r->body_len, &ch) != 0) {
        s->status = MC_EPROTO;
    }
    if (s->status == 0 && ch.offset != s->next_offset) {
        s->status = MC_EPROTO;
    }
    if (s->status == 0 && ch.len && fwrite(ch.data, 1, ch.len, s->f) != ch.len) {
        s->status = MC_EIO;
    }
    if (s->status == 0) {
        s->next_offset += ch.len;
        s->total = ch.total_bytes;
        s->checksum = ch.checksum;
    }
    if (!r->more) {
        s->done = true;
        if (s->status == 0 && s->next_offset != s->total) {
            s->status = MC_EPROTO;
        }
    }
}

int mc_client_snapshot_save(struct mc_client *c, int endpoint, const char *path,
                            uint64_t *total_bytes)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
        return MC_EINVAL;
    }
    struct snap s = {.c = c};
    s.f = fopen(tmp, "wb");
    if (!s.f) {
        return MC_EIO;
    }
    int rc = mc_client_snapshot_async(c, endpoint, snap_cb, &s);
    while (rc == 0 && !s.done) {
        rc = mc_client_poll(c, 1000);
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0) {
        rc = s.status;
    }
    if (fflush(s.f) != 0 || fsync(fileno(s.f)) != 0) {
        rc = rc ? rc : MC_EIO;
    }
    fclose(s.f);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = MC_EIO;
    }
    if (rc != 0) {
        unlink(tmp);
    } else if (total_bytes) {
        *total_bytes = s.total;
    }
    return rc;
}

/* ---- typed (engine) wrappers ---- */

static int op_result(struct sync *s, int rc, struct mc_op_result *out)
{
    struct mc_op_result tmp;
    if (!out) {
        out = &tmp;
    }
    memset(out, 0, sizeof(*out));
    out->failed_op = -1;
    out->code = rc;
    if (s->body.len > 0) {
        if (mc_op_result_decode(s->body.data, s->body.len, out) != 0 && rc == 0) {
            rc = MC_EPROTO;
        }
    }
    mc_client_buf_free(&s->body);
    return rc;
}

int mc_client_op(struct mc_client *c, const struct mc_op *op, struct mc_op_result *out)
{
    struct sync s;
    sync_init(&s, c);
    int rc = sync_wait(&s, mc_client_op_async(c, op, sync_cb, &s));
    return op_result(&s, rc, out);
}

int mc_client_batch(struct mc_client *c, const struct mc_op *ops, uint32_t n,
                    struct mc_op_result *out)
{
    if (n == 0 || n > MC_ATOMIC_MAX_OPS) {
        return MC_EINVAL;
    }
    struct mc_wbuf w;
    mc_wbuf_init(&w, MC_PROTO_MAX_FRAME_BYTES);
    size_t *offs = calloc(n + 1, sizeof(*offs));
    const void **ptrs = calloc(n, sizeof(*ptrs));
    size_t *lens = calloc(n, sizeof(*lens));
    int rc = (offs && ptrs && lens) ? 0 : MC_ENOMEM;
    for (uint32_t i = 0; rc == 0 && i < n; i++) {
        offs[i] = w.len;
        rc = mc_op_encode(&ops[i], &w);
        if (rc == 0) {
            rc = mc_wbuf_error(&w);
        }
    }
    struct sync s;
    sync_init(&s, c);
    if (rc == 0) {
        offs[n] = w.len;
        for (uint32_t i = 0; i < n; i++) {
            ptrs[i] = w.data + offs[i];
            lens[i] = offs[i + 1] - offs[i];
        }
        rc = sync_wait(&s, mc_client_write_async(c, n, ptrs, lens, sync_cb, &s));
        rc = op_result(&s, rc, out);
    }
    free(offs);
    free(ptrs);
    free(lens);
    mc_wbuf_free(&w);
    return rc;
}

static int run_op(struct mc_client *c, struct mc_op *op, int rc, struct mc_op_result *out)
{
    if (rc == 0) {
        rc = mc_client_op(c, op, out);
    }
    mc_op_clear(op);
    return rc;
}

int mc_client_bucket_create(struct mc_client *c, const char *bucket, enum mc_versioning v)
{
    struct mc_op op = {0};
    return run_op(c, &op, mc_op_bucket_create(&op, bucket, v, 0), NULL);
}

int mc_client_bucket_delete(struct mc_client *c, const char *bucket)
{
    struct mc_op op = {0};
    return run_op(c, &op, mc_op_bucket_delete(&op, bucket), NULL);
}

int mc_client_bucket_versioning(struct mc_client *c, const char *bucket, enum mc_versioning v)
{
    struct mc_op op = {0};
    return run_op(c, &op, mc_op_bucket_versioning(&op, bucket, v), NULL);
}

int mc_client_put(struct mc_client *c, const char *bucket, const char *key,
                  const struct mc_object_meta *meta, const struct mc_put_cond *cond,
                  struct mc_op_result *out)
{
    struct mc_op op = {0};
    int rc = mc_op_put(&op, bucket, key, NULL, 0, meta);
    if (rc == 0 && cond) {
        op.if_none_match_star = cond->if_none_match_star;
        if (cond->if_match) {
            op.if_match = strdup(cond->if_match);
            rc = op.if_match ? 0 : MC_ENOMEM;
        }
    }
    return run_op(c, &op, rc, out);
}

int mc_client_delete(struct mc_client *c, const char *bucket, const char *key,
                     const char *version_id, struct mc_op_result *out)
{
    struct mc_op op = {0};
    return run_op(c, &op, mc_op_delete(&op, bucket, key, version_id, NULL, 0), out);
}

int mc_client_update_meta(struct mc_client *c, const char *bucket, const char *key,
                          const char *version_id, uint32_t update_mask,
                          const struct mc_object_meta *meta, struct mc_op_result *out)
{
    struct mc_op op = {0};
    return run_op(c, &op, mc_op_update_meta(&op, bucket, key, version_id, update_mask, meta, 0),
                  out);
}

int mc_client_bucket_head(struct mc_client *c, const char *bucket, struct mc_bucket_info *out)
{
    struct mc_client_buf b = {0};
    int rc = mc_client_head_bucket_raw(c, bucket, &b);
    if (rc == 0) {
        struct mc_bucket_info *list = NULL;
        size_t n = 0;
        rc = mc_bucket_list_decode(b.data, b.len, &list, &n);
        if (rc == 0 && n != 1) {
            rc = MC_EPROTO;
        }
        if (rc == 0) {
            *out = list[0];
        }
        free(list);
    }
    mc_client_buf_free(&b);
    return rc;
}

int mc_client_bucket_list(struct mc_client *c, struct mc_bucket_info **out, size_t *n)
{
    struct mc_client_buf b = {0};
    *out = NULL;
    *n = 0;
    int rc = mc_client_list_buckets_raw(c, &b);
    if (rc == 0) {
        rc = mc_bucket_list_decode(b.data, b.len, out, n);
    }
    mc_client_buf_free(&b);
    return rc;
}

static int get_common(struct mc_client *c, bool head, const char *bucket, const char *key,
                      const char *version_id, struct mc_version *out)
{
    struct mc_client_buf b = {0};
    memset(out, 0, sizeof(*out));
    int rc = mc_client_get_raw(c, head, bucket, key, version_id, &b);
    if (rc == 0) {
        rc = mc_version_decode(b.data, b.len, out);
    }
    mc_client_buf_free(&b);
    return rc;
}

int mc_client_get(struct mc_client *c, const char *bucket, const char *key, const char *version_id,
                  struct mc_version *out)
{
    return get_common(c, false, bucket, key, version_id, out);
}

int mc_client_head(struct mc_client *c, const char *bucket, const char *key, const char *version_id,
                   struct mc_version *out)
{
    return get_common(c, true, bucket, key, version_id, out);
}

static int list_common(struct mc_client *c, bool versions, const struct mc_list_args *a,
                       struct mc_list_result *out)
{
    struct mc_client_buf b = {0};
    memset(out, 0, sizeof(*out));
    int rc =
        versions ? mc_client_list_versions_raw(c, a, &b) : mc_client_list_objects_raw(c, a, &b);
    if (rc == 0) {
        rc = mc_list_result_decode(b.data, b.len, out);
    }
    mc_client_buf_free(&b);
    return rc;
}

int mc_client_list_objects(struct mc_client *c, const struct mc_list_args *a,
                           struct mc_list_result *out)
{
    return list_common(c, false, a, out);
}

int mc_client_list_versions(struct mc_client *c, const struct mc_list_args *a,
                            struct mc_list_result *out)
{
    return list_common(c, true, a, out);
}
