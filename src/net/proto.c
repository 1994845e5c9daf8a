/* proto.c: client wire protocol codec: frame header, request bodies, reply bodies. */
#include "net/proto.h"

#include <assert.h>
#include <string.h>

#include "metacenter/error.h"

bool mc_proto_op_known(uint8_t op)
{
    switch (op) {
    case MC_REQ_PING:
    case MC_REQ_REGISTER_SESSION:
    case MC_REQ_WRITE:
    case MC_REQ_LEADER:
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS:
    case MC_REQ_LIST_BUCKETS:
    case MC_REQ_HEAD_BUCKET:
    case MC_REQ_CLUSTER_STATUS:
    case MC_REQ_ADD_MEMBER:
    case MC_REQ_PROMOTE_MEMBER:
    case MC_REQ_REMOVE_MEMBER:
    case MC_REQ_TRANSFER_LEADER:
    case MC_REQ_SNAPSHOT_SAVE:
    case MC_REQ_CHECK:
    case MC_REQ_AUTH:
        return true;
    default:
        return false;
    }
}

const char *mc_proto_op_name(uint8_t op)
{
    switch (op) {
    case MC_REQ_PING:
        return "PING";
    case MC_REQ_REGISTER_SESSION:
        return "REGISTER_SESSION";
    case MC_REQ_WRITE:
        return "WRITE";
    case MC_REQ_LEADER:
        return "LEADER";
    case MC_REQ_GET_OBJECT:
        return "GET_OBJECT";
    case MC_REQ_HEAD_OBJECT:
        return "HEAD_OBJECT";
    case MC_REQ_LIST_OBJECTS:
        return "LIST_OBJECTS";
    case MC_REQ_LIST_VERSIONS:
        return "LIST_VERSIONS";
    case MC_REQ_LIST_BUCKETS:
        return "LIST_BUCKETS";
    case MC_REQ_HEAD_BUCKET:
        return "HEAD_BUCKET";
    case MC_REQ_CLUSTER_STATUS:
        return "CLUSTER_STATUS";
    case MC_REQ_ADD_MEMBER:
        return "ADD_MEMBER";
    case MC_REQ_PROMOTE_MEMBER:
        return "PROMOTE_MEMBER";
    case MC_REQ_REMOVE_MEMBER:
        return "REMOVE_MEMBER";
    case MC_REQ_TRANSFER_LEADER:
        return "TRANSFER_LEADER";
    case MC_REQ_SNAPSHOT_SAVE:
        return "SNAPSHOT_SAVE";
    case MC_REQ_CHECK:
        return "CHECK";
    case MC_REQ_AUTH:
        return "AUTH";
    default:
        return "UNKNOWN";
    }
}

bool mc_proto_op_is_read(uint8_t op)
{
    switch (op) {
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS:
    case MC_REQ_LIST_BUCKETS:
    case MC_REQ_HEAD_BUCKET:
        return true;
    default:
        return false;
    }
}

const struct mc_proto_read_opts *mc_proto_request_ro(const struct mc_proto_request *q)
{
    switch (q->op) {
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        return &q->u.get.ro;
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS:
        return &q->u.list.ro;
    case MC_REQ_LIST_BUCKETS:
    case MC_REQ_HEAD_BUCKET:
        return &q->u.bucket.ro;
    default:
        return NULL;
    }
}

void mc_proto_header_put(uint8_t *p, const struct mc_proto_header *h)
{
    mc_put_u32le(p, h->length);
    p[4] = h->version;
    p[5] = h->op;
    p[6] = (uint8_t)h->flags;
    p[7] = (uint8_t)(h->flags >> 8);
    mc_put_u64le(p + 8, h->request_id);
    mc_put_u32le(p + 16, (uint32_t)h->status);
}

void mc_proto_header_get(const uint8_t *p, struct mc_proto_header *h)
{
    h->length = mc_get_u32le(p);
    h->version = p[4];
    h->op = p[5];
    h->flags = (uint16_t)(p[6] | p[7] << 8);
    h->request_id = mc_get_u64le(p + 8);
    h->status = (int32_t)mc_get_u32le(p + 16);
}

int mc_proto_header_check(const struct mc_proto_header *h)
{
    if (h->length < MC_PROTO_HEADER_BYTES - 4) {
        return MC_EPROTO;
    }
    if (h->length > MC_PROTO_MAX_FRAME_BYTES - 4) {
        return MC_ETOOLARGE;
    }
    if (h->version != MC_PROTO_VERSION) {
        return MC_EVERSION;
    }
    return 0;
}

/* ---- strings and op lists ---- */

void mc_proto_str_put(struct mc_wbuf *w, const char *s, size_t len)
{
    if (len > MC_PROTO_MAX_STR_BYTES) {
        /* Poison the writer: an oversized field is the caller's error, reported once. */
        if (!w->err) {
            w->err = MC_ETOOLARGE;
        }
        return;
    }
    mc_wbuf_u32(w, (uint32_t)len);
    mc_wbuf_put(w, s, len);
    mc_wbuf_u8(w, 0);
}

int mc_proto_str_get(struct mc_rbuf *r, struct mc_proto_str *out)
{
    uint32_t len = mc_rbuf_u32(r);
    out->ptr = "";
    out->len = 0;
    if (r->err) {
        return MC_EPROTO;
    }
    if (len > MC_PROTO_MAX_STR_BYTES) {
        r->err = MC_EPROTO;
        return MC_EPROTO;
    }
    const uint8_t *p = mc_rbuf_take(r, (size_t)len + 1);
    if (!p) {
        return MC_EPROTO;
    }
    /* NUL-terminated, no embedded NUL: decoded strings are safe C strings. */
    if (p[len] != 0 || memchr(p, 0, len) != NULL) {
        r->err = MC_EPROTO;
        return MC_EPROTO;
    }
    out->ptr = (const char *)p;
    out->len = len;
    return 0;
}

static void put_pstr(struct mc_wbuf *w, struct mc_proto_str s)
{
    mc_proto_str_put(w, s.ptr ? s.ptr : "", s.ptr ? s.len : 0);
}

void mc_proto_ops_put(struct mc_wbuf *w, const void *op, size_t len)
{
    mc_wbuf_bytes(w, op, len);
}

int mc_proto_ops_next(const uint8_t *ops, uint32_t ops_bytes, uint32_t *pos, const uint8_t **op,
                      uint32_t *len)
{
    if (*pos + 4 > ops_bytes) {
        return 0;
    }
    uint32_t n = mc_get_u32le(ops + *pos);
    assert(n <= ops_bytes - *pos - 4); /* validated by mc_proto_request_decode */
    *op = ops + *pos + 4;
    *len = n;
    *pos += 4 + n;
    return 1;
}

/* ---- requests ---- */

static void put_ro(struct mc_wbuf *w, const struct mc_proto_read_opts *ro)
{
    mc_wbuf_u8(w, ro->consistency);
    mc_wbuf_u32(w, ro->max_staleness_ms);
}

static int get_ro(struct mc_rbuf *r, struct mc_proto_read_opts *ro)
{
    ro->consistency = mc_rbuf_u8(r);
    ro->max_staleness_ms = mc_rbuf_u32(r);
    if (ro->consistency > MC_CONSISTENCY_STALE) {
        r->err = MC_EPROTO;
    }
    return r->err;
}

static void put_body(struct mc_wbuf *w, const struct mc_proto_request *q)
{
    switch (q->op) {
    case MC_REQ_WRITE:
        mc_wbuf_u64(w, q->u.write.session_id);
        mc_wbuf_u64(w, q->u.write.seq);
        mc_wbuf_u64(w, q->u.write.acked_seq);
        mc_wbuf_u32(w, q->u.write.n_ops);
        mc_wbuf_put(w, q->u.write.ops, q->u.write.ops_bytes);
        break;
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        put_ro(w, &q->u.get.ro);
        put_pstr(w, q->u.get.bucket);
        put_pstr(w, q->u.get.key);
        put_pstr(w, q->u.get.version_id);
        break;
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS:
        put_ro(w, &q->u.list.ro);
        put_pstr(w, q->u.list.bucket);
        put_pstr(w, q->u.list.prefix);
        put_pstr(w, q->u.list.delimiter);
        put_pstr(w, q->u.list.start_after);
        put_pstr(w, q->u.list.continuation_token);
        mc_wbuf_u32(w, q->u.list.max_keys);
        break;
    case MC_REQ_LIST_BUCKETS:
        put_ro(w, &q->u.bucket.ro);
        break;
    case MC_REQ_HEAD_BUCKET:
        put_ro(w, &q->u.bucket.ro);
        put_pstr(w, q->u.bucket.bucket);
        break;
    case MC_REQ_ADD_MEMBER:
        mc_wbuf_u64(w, q->u.member.id);
        put_pstr(w, q->u.member.peer_addr);
        put_pstr(w, q->u.member.client_addr);
        mc_wbuf_u8(w, q->u.member.learner ? 1 : 0);
        break;
    case MC_REQ_PROMOTE_MEMBER:
    case MC_REQ_REMOVE_MEMBER:
    case MC_REQ_TRANSFER_LEADER:
        mc_wbuf_u64(w, q->u.member.id);
        break;
    case MC_REQ_CHECK:
        mc_wbuf_u64(w, q->u.check.index);
        break;
    case MC_REQ_AUTH:
        put_pstr(w, q->u.auth.token);
        break;
    case MC_REQ_SNAPSHOT_SAVE:
        /* 0 goes as an empty body, which every server takes; a min index is only sent to a
         * member whose Busy answer carried it, so never to a server that cannot parse it. */
        if (q->u.save.min_index != 0) {
            mc_wbuf_u64(w, q->u.save.min_index);
        }
        break;
    default: /* PING, REGISTER_SESSION, LEADER, CLUSTER_STATUS, unknown: empty */
        break;
    }
}

int mc_proto_request_encode(struct mc_wbuf *w, const struct mc_proto_request *q)
{
    size_t start = w->len;
    uint8_t *h = mc_wbuf_reserve(w, MC_PROTO_HEADER_BYTES);
    if (!h) {
        return mc_wbuf_error(w);
    }
    put_body(w, q);
    if (mc_wbuf_error(w)) {
        return mc_wbuf_error(w);
    }
    size_t frame = w->len - start;
    if (frame > MC_PROTO_MAX_FRAME_BYTES) {
        w->len = start;
        return MC_ETOOLARGE;
    }
    struct mc_proto_header hd = {
        .length = (uint32_t)(frame - 4),
        .version = MC_PROTO_VERSION,
        .op = q->op,
        .flags = q->flags,
        .request_id = q->request_id,
        .status = 0,
    };
    mc_proto_header_put(w->data + start, &hd);
    return 0;
}

static int check_ops(struct mc_rbuf *r, uint32_t n_ops, const uint8_t **ops, uint32_t *ops_bytes)
{
    if (n_ops == 0 || n_ops > MC_PROTO_MAX_BATCH_OPS) {
        return MC_EPROTO;
    }
    size_t start = r->pos;
    for (uint32_t i = 0; i < n_ops; i++) {
        size_t n;
        (void)mc_rbuf_bytes(r, MC_PROTO_MAX_BODY_BYTES, &n);
        if (r->err) {
            return MC_EPROTO;
        }
    }
    *ops = r->data + start;
    *ops_bytes = (uint32_t)(r->pos - start);
    return 0;
}

int mc_proto_request_decode(const struct mc_proto_header *h, const uint8_t *body, size_t len,
                            struct mc_proto_request *q)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, body, len);
    memset(q, 0, sizeof(*q));
    q->op = h->op;
    q->flags = h->flags;
    q->request_id = h->request_id;
    if (!mc_proto_op_known(h->op)) {
        return MC_EINVAL;
    }
    switch (h->op) {
    case MC_REQ_WRITE:
        q->u.write.session_id = mc_rbuf_u64(&r);
        q->u.write.seq = mc_rbuf_u64(&r);
        q->u.write.acked_seq = mc_rbuf_u64(&r);
        q->u.write.n_ops = mc_rbuf_u32(&r);
        if (r.err || check_ops(&r, q->u.write.n_ops, &q->u.write.ops, &q->u.write.ops_bytes) != 0) {
            return MC_EPROTO;
        }
        if (q->u.write.session_id != 0 && q->u.write.seq == 0) {
            return MC_EPROTO;
        }
        break;
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        get_ro(&r, &q->u.get.ro);
        mc_proto_str_get(&r, &q->u.get.bucket);
        mc_proto_str_get(&r, &q->u.get.key);
        mc_proto_str_get(&r, &q->u.get.version_id);
        break;
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS:
        get_ro(&r, &q->u.list.ro);
        mc_proto_str_get(&r, &q->u.list.bucket);
        mc_proto_str_get(&r, &q->u.list.prefix);
        mc_proto_str_get(&r, &q->u.list.delimiter);
        mc_proto_str_get(&r, &q->u.list.start_after);
        mc_proto_str_get(&r, &q->u.list.continuation_token);
        q->u.list.max_keys = mc_rbuf_u32(&r);
        break;
    case MC_REQ_LIST_BUCKETS:
        get_ro(&r, &q->u.bucket.ro);
        q->u.bucket.bucket.ptr = "";
        break;
    case MC_REQ_HEAD_BUCKET:
        get_ro(&r, &q->u.bucket.ro);
        mc_proto_str_get(&r, &q->u.bucket.bucket);
        break;
    case MC_REQ_ADD_MEMBER: {
        q->u.member.id = mc_rbuf_u64(&r);
        mc_proto_str_get(&r, &q->u.member.peer_addr);
        mc_proto_str_get(&r, &q->u.member.client_addr);
        uint8_t l = mc_rbuf_u8(&r);
        if (l > 1) {
            return MC_EPROTO;
        }
        q->u.member.learner = l == 1;
        break;
    }
    case MC_REQ_PROMOTE_MEMBER:
    case MC_REQ_REMOVE_MEMBER:
    case MC_REQ_TRANSFER_LEADER:
        q->u.member.id = mc_rbuf_u64(&r);
        q->u.member.peer_addr.ptr = "";
        q->u.member.client_addr.ptr = "";
        break;
    case MC_REQ_CHECK:
        q->u.check.index = mc_rbuf_u64(&r);
        break;
    case MC_REQ_AUTH:
        mc_proto_str_get(&r, &q->u.auth.token);
        break;
    case MC_REQ_SNAPSHOT_SAVE:
        if (len != 0) { /* optional: empty or exactly a u64 (anything else is malformed) */
            q->u.save.min_index = mc_rbuf_u64(&r);
            if (q->u.save.min_index == 0) {
                return MC_EPROTO; /* 0 is sent as an empty body: one encoding per request */
            }
        }
        break;
    default:
        break;
    }
    /* Every byte must be accounted for: trailing garbage means a confused peer. */
    if (r.err || mc_rbuf_remaining(&r) != 0) {
        return MC_EPROTO;
    }
    return 0;
}

/* ---- replies ---- */

int mc_proto_reply_encode(struct mc_wbuf *w, uint8_t op, uint16_t flags, uint64_t request_id,
                          int status, const void *body, size_t len)
{
    if (len > MC_PROTO_MAX_BODY_BYTES) {
        return MC_ETOOLARGE;
    }
    uint8_t *p = mc_wbuf_reserve(w, MC_PROTO_HEADER_BYTES + len);
    if (!p) {
        return mc_wbuf_error(w);
    }
    struct mc_proto_header hd = {
        .length = (uint32_t)(MC_PROTO_HEADER_BYTES - 4 + len),
        .version = MC_PROTO_VERSION,
        .op = (uint8_t)(op | MC_PROTO_REPLY_BIT),
        .flags = flags,
        .request_id = request_id,
        .status = status,
    };
    mc_proto_header_put(p, &hd);
    if (len) {
        memcpy(p + MC_PROTO_HEADER_BYTES, body, len);
    }
    return 0;
}

void mc_proto_error_put(struct mc_wbuf *w, const struct mc_proto_error *e)
{
    put_pstr(w, e->message);
    mc_wbuf_u64(w, e->leader_id);
    put_pstr(w, e->leader_addr);
    mc_wbuf_u8(w, e->flags);
    put_pstr(w, e->version_id);
    mc_wbuf_bytes(w, e->result, e->result_len);
}

void mc_proto_save_busy_set(struct mc_proto_error *e, uint8_t buf[8], uint64_t min_index)
{
    mc_put_u64le(buf, min_index);
    e->result = buf;
    e->result_len = 8;
}

int mc_proto_save_busy_index(const uint8_t *result, size_t len, uint64_t *min_index)
{
    if (len != 8) {
        return MC_ENOTFOUND;
    }
    *min_index = mc_get_u64le(result);
    return 0;
}

int mc_proto_error_decode(const uint8_t *body, size_t len, struct mc_proto_error *e)
{
    memset(e, 0, sizeof(*e));
    e->message.ptr = e->leader_addr.ptr = e->version_id.ptr = "";
    if (len == 0) {
        return 0;
    }
    struct mc_rbuf r;
    mc_rbuf_init(&r, body, len);
    mc_proto_str_get(&r, &e->message);
    e->leader_id = mc_rbuf_u64(&r);
    mc_proto_str_get(&r, &e->leader_addr);
    e->flags = mc_rbuf_u8(&r);
    mc_proto_str_get(&r, &e->version_id);
    size_t n = 0;
    e->result = mc_rbuf_bytes(&r, MC_PROTO_MAX_BODY_BYTES, &n);
    e->result_len = (uint32_t)n;
    if (r.err || mc_rbuf_remaining(&r) != 0) {
        memset(e, 0, sizeof(*e));
        e->message.ptr = e->leader_addr.ptr = e->version_id.ptr = "";
        return MC_EPROTO;
    }
    return 0;
}

void mc_proto_ping_put(struct mc_wbuf *w, const struct mc_ping_info *p)
{
    mc_wbuf_u64(w, p->node_id);
    mc_wbuf_u64(w, p->leader_id);
    mc_wbuf_u64(w, p->term);
}

static int finish(struct mc_rbuf *r)
{
    return (r->err || mc_rbuf_remaining(r) != 0) ? MC_EPROTO : 0;
}

int mc_proto_ping_decode(const uint8_t *body, size_t len, struct mc_ping_info *p)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, body, len);
    p->node_id = mc_rbuf_u64(&r);
    p->leader_id = mc_rbuf_u64(&r);
    p->term = mc_rbuf_u64(&r);
    return finish(&r);
}

void mc_proto_leader_put(struct mc_wbuf *w, const struct mc_proto_leader *l)
{
    mc_wbuf_u64(w, l->node_id);
    mc_wbuf_u64(w, l->leader_id);
    put_pstr(w, l->leader_addr);
}

int mc_proto_leader_decode(const uint8_t *body, size_t len, struct mc_proto_leader *l)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, body, len);
    l->node_id = mc_rbuf_u64(&r);
    l->leader_id = mc_rbuf_u64(&r);
    mc_proto_str_get(&r, &l->leader_addr);
    /* Trailing bytes are allowed: a later server may append fields. */
    return r.err ? MC_EPROTO : 0;
}

void mc_proto_session_put(struct mc_wbuf *w, uint64_t session_id)
{
    mc_wbuf_u64(w, session_id);
}

int mc_proto_session_decode(const uint8_t *body, size_t len, uint64_t *session_id)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, body, len);
    *session_id = mc_rbuf_u64(&r);
    if (finish(&r) != 0 || *session_id == 0) {
        return MC_EPROTO;
    }
    return 0;
}

static void copy_addr(char dst[MC_ADDR_MAX], struct mc_proto_str s, struct mc_rbuf *r)
{
    if (s.len >= MC_ADDR_MAX) {
        r->err = MC_EPROTO;
        dst[0] = 0;
        return;
    }
    memcpy(dst, s.ptr, s.len);
    dst[s.len] = 0;
}

void mc_proto_status_put(struct mc_wbuf *w, const struct mc_cluster_status *s)
{
    assert(s->n_members <= MC_CLUSTER_MAX_MEMBERS);
    mc_wbuf_u64(w, s->node_id);
    mc_wbuf_u64(w, s->leader_id);
    mc_wbuf_u64(w, s->term);
    mc_wbuf_u64(w, s->commit_index);
    mc_wbuf_u64(w, s->applied_index);
    mc_wbuf_u64(w, s->snapshot_index);
    mc_wbuf_u32(w, s->n_members);
    for (uint32_t i = 0; i < s->n_members && i < MC_CLUSTER_MAX_MEMBERS; i++) {
        const struct mc_member_status *m = &s->members[i];
        mc_wbuf_u64(w, m->id);
        mc_proto_str_put(w, m->peer_addr, strnlen(m->peer_addr, MC_ADDR_MAX - 1));
        mc_proto_str_put(w, m->client_addr, strnlen(m->client_addr, MC_ADDR_MAX - 1));
        mc_wbuf_u8(w, (uint8_t)((m->learner ? 1 : 0) | (m->reachable ? 2 : 0)));
        mc_wbuf_u64(w, m->match_index);
    }
}

int mc_proto_status_decode(const uint8_t *body, size_t len, struct mc_cluster_status *s)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, body, len);
    memset(s, 0, sizeof(*s));
    s->node_id = mc_rbuf_u64(&r);
    s->leader_id = mc_rbuf_u64(&r);
    s->term = mc_rbuf_u64(&r);
    s->commit_index = mc_rbuf_u64(&r);
    s->applied_index = mc_rbuf_u64(&r);
    s->snapshot_index = mc_rbuf_u64(&r);
    s->n_members = mc_rbuf_u32(&r);
    if (s->n_members > MC_CLUSTER_MAX_MEMBERS) {
        s->n_members = 0;
        return MC_EPROTO;
    }
    for (uint32_t i = 0; i < s->n_members && !r.err; i++) {
        struct mc_member_status *m = &s->members[i];
        struct mc_proto_str a;
        m->id = mc_rbuf_u64(&r);
        mc_proto_str_get(&r, &a);
        copy_addr(m->peer_addr, a, &r);
        mc_proto_str_get(&r, &a);
        copy_addr(m->client_addr, a, &r);
        uint8_t f = mc_rbuf_u8(&r);
        if (f & ~3u) {
            r.err = MC_EPROTO; /* only learner and reachable are defined */
        }
        m->learner = (f & 1) != 0;
        m->reachable = (f & 2) != 0;
        m->match_index = mc_rbuf_u64(&r);
    }
    return finish(&r);
}

void mc_proto_check_put(struct mc_wbuf *w, const struct mc_check_result *c)
{
    mc_wbuf_u64(w, c->node_id);
    mc_wbuf_u64(w, c->index);
    mc_wbuf_u64(w, c->hash);
}

int mc_proto_check_decode(const uint8_t *body, size_t len, struct mc_check_result *c)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, body, len);
    c->node_id = mc_rbuf_u64(&r);
    c->index = mc_rbuf_u64(&r);
    c->hash = mc_rbuf_u64(&r);
    return finish(&r);
}

void mc_proto_chunk_put(struct mc_wbuf *w, const struct mc_snapshot_chunk *c)
{
    assert(c->len <= MC_PROTO_MAX_CHUNK_BYTES);
    mc_wbuf_u64(w, c->offset);
    mc_wbuf_u64(w, c->total_bytes);
    mc_wbuf_u64(w, c->checksum);
    mc_wbuf_bytes(w, c->data, c->len);
}

int mc_proto_chunk_decode(const uint8_t *body, size_t len, struct mc_snapshot_chunk *c)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, body, len);
    c->offset = mc_rbuf_u64(&r);
    c->total_bytes = mc_rbuf_u64(&r);
    c->checksum = mc_rbuf_u64(&r);
    size_t n = 0;
    c->data = mc_rbuf_bytes(&r, MC_PROTO_MAX_CHUNK_BYTES, &n);
    c->len = (uint32_t)n;
    if (finish(&r) != 0 || c->offset > c->total_bytes || c->len > c->total_bytes - c->offset) {
        return MC_EPROTO;
    }
    return 0;
}
