/* codec.c: versioned, bounds-checked binary codecs for op records, results, versions and listings.
 */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

/*
 * Every record starts with a format version byte. Strings are u32-length
 * prefixed, each bounded by its limit; counts are bounded before anything is
 * allocated, so hostile input cannot make us allocate more than its own size
 * times a small factor. Decoders read everything, then check once (mc_rbuf
 * yields zeros after an error), and require that no bytes remain.
 */

#define RECORD_VERSION 1

/*
 * Inline readers (same semantics as util/codec.h mc_rbuf_*: zeros after an
 * error): version records are decoded on every get, and the out-of-line calls
 * were a tenth of its cost.
 */
static inline const uint8_t *rtake(struct mc_rbuf *r, size_t n)
{
    if (r->err || n > r->len - r->pos) {
        r->err = MC_EPROTO;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

static inline uint8_t ru8(struct mc_rbuf *r)
{
    const uint8_t *p = rtake(r, 1);
    return p ? p[0] : 0;
}

static inline uint32_t ru32(struct mc_rbuf *r)
{
    const uint8_t *p = rtake(r, 4);
    return p ? mc_get_u32le(p) : 0;
}

static inline uint64_t ru64(struct mc_rbuf *r)
{
    const uint8_t *p = rtake(r, 8);
    return p ? mc_get_u64le(p) : 0;
}

static inline const uint8_t *rbytes(struct mc_rbuf *r, size_t max, size_t *n)
{
    uint32_t len = ru32(r);
    *n = 0;
    if (r->err) {
        return NULL;
    }
    if (len > max) {
        r->err = MC_EPROTO;
        return NULL;
    }
    const uint8_t *p = rtake(r, len);
    if (p) {
        *n = len;
    }
    return p;
}

/* Inline writers: fast path when the buffer has room, else the util functions (which grow or
 * record the error). */
static inline uint8_t *wroom(struct mc_wbuf *w, size_t n)
{
    if (w->err || w->cap - w->len < n || (w->limit && w->limit - w->len < n)) {
        return NULL;
    }
    uint8_t *p = w->data + w->len;
    w->len += n;
    return p;
}

static inline void wu8(struct mc_wbuf *w, uint8_t v)
{
    uint8_t *p = wroom(w, 1);
    if (p) {
        p[0] = v;
    } else {
        mc_wbuf_u8(w, v);
    }
}

static inline void wu32(struct mc_wbuf *w, uint32_t v)
{
    uint8_t *p = wroom(w, 4);
    if (p) {
        mc_put_u32le(p, v);
    } else {
        mc_wbuf_u32(w, v);
    }
}

static inline void wu64(struct mc_wbuf *w, uint64_t v)
{
    uint8_t *p = wroom(w, 8);
    if (p) {
        mc_put_u64le(p, v);
    } else {
        mc_wbuf_u64(w, v);
    }
}

static inline void wbytes(struct mc_wbuf *w, const void *d, size_t n)
{
    uint8_t *p = n <= UINT32_MAX ? wroom(w, 4 + n) : NULL;
    if (p) {
        mc_put_u32le(p, (uint32_t)n);
        if (n) {
            memcpy(p + 4, d, n);
        }
    } else {
        mc_wbuf_bytes(w, d, n);
    }
}

static inline void wstr(struct mc_wbuf *w, const char *s)
{
    wbytes(w, s, s ? strlen(s) : 0);
}

/*
 * Block decoding (MC_DEC_BLOCK): allocations come from one arena, bump-allocated.
 * Thread-local because the decoders below are shared with the ordinary (malloc)
 * path; set only for the duration of one mc_version_decode2 call.
 */
struct arena {
    uint8_t *base;
    size_t used, cap;
    bool full; /* an allocation did not fit: decode again with malloc, whatever the error code
                  (a read after the failed one turns MC_ENOMEM into MC_EPROTO) */
};
static _Thread_local struct arena *t_arena;

static void *dalloc(size_t n, size_t align)
{
    struct arena *ar = t_arena;
    if (!ar) {
        return malloc(n ? n : 1);
    }
    size_t off = (ar->used + align - 1) & ~(align - 1);
    if (off > ar->cap || n > ar->cap - off) {
        ar->full = true;
        return NULL; /* caller reports MC_ENOMEM; mc_version_decode2 falls back to malloc */
    }
    ar->used = off + n;
    return ar->base + off;
}

static void *dcalloc(size_t cnt, size_t size)
{
    if (!t_arena) {
        return calloc(cnt, size);
    }
    void *p = cnt <= SIZE_MAX / size ? dalloc(cnt * size, 8) : NULL;
    if (p) {
        memset(p, 0, cnt * size);
    }
    return p;
}

/* Read a string of at most max bytes into a new heap string; "" → NULL. Embedded NUL → error. */
static char *rstr(struct mc_rbuf *r, size_t max)
{
    size_t n;
    const uint8_t *p = rbytes(r, max, &n);
    if (!p || n == 0) {
        return NULL;
    }
    if (memchr(p, 0, n)) {
        r->err = MC_EPROTO;
        return NULL;
    }
    char *s = dalloc(n + 1, 1);
    if (!s) {
        r->err = MC_ENOMEM;
        return NULL;
    }
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* Fixed-buffer string (bucket name). */
static void rstr_fixed(struct mc_rbuf *r, char *out, size_t cap)
{
    size_t n;
    const uint8_t *p = rbytes(r, cap - 1, &n);
    out[0] = 0;
    if (!p) {
        return;
    }
    if (memchr(p, 0, n)) {
        r->err = MC_EPROTO;
        return;
    }
    memcpy(out, p, n);
    out[n] = 0;
}

/* A count whose elements take at least min_elem_bytes each: bounded by max and by what remains. */
static uint32_t rcount(struct mc_rbuf *r, uint32_t max, size_t min_elem_bytes)
{
    uint32_t n = ru32(r);
    if (r->err) {
        return 0;
    }
    if (n > max || (size_t)n * min_elem_bytes > mc_rbuf_remaining(r)) {
        r->err = MC_EPROTO;
        return 0;
    }
    return n;
}

static void meta_encode(const struct mc_object_meta *m, struct mc_wbuf *w)
{
    wu64(w, m->size);
    wstr(w, m->etag);
    wstr(w, m->content_type);
    wu32(w, m->n_user_meta);
    for (uint32_t i = 0; i < m->n_user_meta; i++) {
        wstr(w, m->user_meta[i].key);
        wstr(w, m->user_meta[i].value);
    }
    wstr(w, m->storage_class);
    wu32(w, m->erasure.data_blocks);
    wu32(w, m->erasure.parity_blocks);
    wu32(w, m->erasure.block_size);
    wu32(w, m->erasure.n_distribution);
    for (uint32_t i = 0; i < m->erasure.n_distribution; i++) {
        wu32(w, m->erasure.distribution[i]);
    }
    wstr(w, m->data_dir);
    wu32(w, m->n_parts);
    for (uint32_t i = 0; i < m->n_parts; i++) {
        wu32(w, m->parts[i].number);
        wu64(w, m->parts[i].size);
        wstr(w, m->parts[i].etag);
    }
    wstr(w, m->checksum_algorithm);
    wstr(w, m->checksum_value);
    wbytes(w, m->inline_data, m->inline_len);
}

static void meta_decode(struct mc_rbuf *r, unsigned dec, struct mc_object_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->size = ru64(r);
    m->etag = rstr(r, MC_SHORT_STR_MAX);
    m->content_type = rstr(r, MC_SHORT_STR_MAX);
    uint32_t n = rcount(r, MC_USER_META_MAX_PAIRS, 8);
    if (n) {
        m->user_meta = dcalloc(n, sizeof(*m->user_meta));
        if (!m->user_meta) {
            r->err = MC_ENOMEM;
            return;
        }
        m->n_user_meta = n;
        for (uint32_t i = 0; i < n; i++) {
            m->user_meta[i].key = rstr(r, MC_USER_META_MAX_BYTES);
            m->user_meta[i].value = rstr(r, MC_USER_META_MAX_BYTES);
        }
    }
    m->storage_class = rstr(r, MC_SHORT_STR_MAX);
    m->erasure.data_blocks = ru32(r);
    m->erasure.parity_blocks = ru32(r);
    m->erasure.block_size = ru32(r);
    n = rcount(r, MC_DISTRIBUTION_MAX, 4);
    if (n) {
        m->erasure.distribution = dcalloc(n, sizeof(uint32_t));
        if (!m->erasure.distribution) {
            r->err = MC_ENOMEM;
            return;
        }
        m->erasure.n_distribution = n;
        for (uint32_t i = 0; i < n; i++) {
            m->erasure.distribution[i] = ru32(r);
        }
    }
    m->data_dir = rstr(r, MC_SHORT_STR_MAX);
    n = rcount(r, MC_PARTS_MAX, 16);
    if (n) {
        m->parts = dcalloc(n, sizeof(*m->parts));
        if (!m->parts) {
            r->err = MC_ENOMEM;
            return;
        }
        m->n_parts = n;
        for (uint32_t i = 0; i < n; i++) {
            m->parts[i].number = ru32(r);
            m->parts[i].size = ru64(r);
            m->parts[i].etag = rstr(r, MC_SHORT_STR_MAX);
        }
    }
    m->checksum_algorithm = rstr(r, MC_SHORT_STR_MAX);
    m->checksum_value = rstr(r, MC_SHORT_STR_MAX);
    size_t il;
    const uint8_t *p = rbytes(r, MC_INLINE_MAX_BYTES, &il);
    if (p && il && (dec & MC_DEC_INLINE)) {
        m->inline_data = dalloc(il, 1);
        if (!m->inline_data) {
            r->err = MC_ENOMEM;
            return;
        }
        memcpy(m->inline_data, p, il);
        m->inline_len = (uint32_t)il;
    }
}

static int finish_decode(struct mc_rbuf *r)
{
    if (r->err) {
        return r->err == MC_ENOMEM ? MC_ENOMEM : MC_EPROTO;
    }
    return mc_rbuf_remaining(r) ? MC_EPROTO : 0;
}

/* ---- versions ---- */

static void version_encode(const struct mc_version *v, struct mc_wbuf *w)
{
    wu8(w, RECORD_VERSION);
    wstr(w, v->bucket);
    wstr(w, v->key);
    wstr(w, v->version_id);
    wu8(w, (uint8_t)((v->is_delete_marker ? 1 : 0) | (v->is_latest ? 2 : 0)));
    wu64(w, (uint64_t)v->mod_time_ns);
    wu64(w, v->seq);
    meta_encode(&v->meta, w);
}

int mc_version_encode(const struct mc_version *v, struct mc_wbuf *w)
{
    version_encode(v, w);
    return mc_wbuf_error(w);
}

static void version_read(struct mc_rbuf *r, unsigned dec, struct mc_version *v)
{
    memset(v, 0, sizeof(*v));
    uint8_t ver = ru8(r);
    if (!r->err && ver != RECORD_VERSION) {
        r->err = MC_EPROTO;
        return;
    }
    rstr_fixed(r, v->bucket, sizeof(v->bucket));
    v->key = rstr(r, MC_KEY_MAX_BYTES);
    v->version_id = rstr(r, MC_VERSION_ID_MAX);
    uint8_t f = ru8(r);
    if (f & ~3u) {
        r->err = MC_EPROTO;
    }
    v->is_delete_marker = f & 1;
    v->is_latest = (f & 2) != 0;
    v->mod_time_ns = (int64_t)ru64(r);
    v->seq = ru64(r);
    meta_decode(r, dec, &v->meta);
}

/* Skip a string field (bounded); NUL inside → error, as rstr. */
static inline const uint8_t *rskip(struct mc_rbuf *r, size_t max, size_t *n)
{
    const uint8_t *p = rbytes(r, max, n);
    if (p && *n && memchr(p, 0, *n)) {
        r->err = MC_EPROTO;
    }
    return p;
}

/* Step over a string field without looking inside (the scan does not return it; a full decode
 * still rejects an embedded NUL). The memchr of every field was a third of the scan's cost on
 * the write path, which scans the latest version of every key it puts. */
static inline void rpass(struct mc_rbuf *r, size_t max)
{
    size_t n;
    rbytes(r, max, &n);
}

int mc_version_record_scan(const void *data, size_t len, struct mc_vrec_scan *s)
{
    struct mc_rbuf r;
    size_t n;
    memset(s, 0, sizeof(*s));
    mc_rbuf_init(&r, data, len);
    if (ru8(&r) != RECORD_VERSION) {
        return MC_EPROTO;
    }
    rpass(&r, MC_BUCKET_NAME_MAX);
    s->key = (const char *)rskip(&r, MC_KEY_MAX_BYTES, &s->key_len);
    s->version_id = (const char *)rskip(&r, MC_VERSION_ID_MAX, &s->version_id_len);
    s->flags_off = r.pos;
    uint8_t f = ru8(&r);
    if (f & ~3u) {
        return MC_EPROTO;
    }
    s->is_delete_marker = f & 1;
    s->mod_time_ns = (int64_t)ru64(&r);
    s->seq = ru64(&r);
    ru64(&r); /* size */
    s->etag = (const char *)rskip(&r, MC_SHORT_STR_MAX, &s->etag_len);
    rpass(&r, MC_SHORT_STR_MAX);
    s->user_meta_off = r.pos;
    uint32_t c = rcount(&r, MC_USER_META_MAX_PAIRS, 8);
    for (uint32_t i = 0; i < c; i++) {
        rpass(&r, MC_USER_META_MAX_BYTES);
        rpass(&r, MC_USER_META_MAX_BYTES);
    }
    s->user_meta_end = r.pos;
    rpass(&r, MC_SHORT_STR_MAX);
    rtake(&r, 12);
    s->distribution_off = r.pos;
    c = rcount(&r, MC_DISTRIBUTION_MAX, 4);
    rtake(&r, (size_t)c * 4);
    s->distribution_end = r.pos;
    rpass(&r, MC_SHORT_STR_MAX);
    s->parts_off = r.pos;
    c = rcount(&r, MC_PARTS_MAX, 16);
    for (uint32_t i = 0; i < c; i++) {
        rtake(&r, 12);
        rpass(&r, MC_SHORT_STR_MAX);
    }
    s->parts_end = r.pos;
    rpass(&r, MC_SHORT_STR_MAX);
    rpass(&r, MC_SHORT_STR_MAX);
    s->inline_off = r.pos;
    rbytes(&r, MC_INLINE_MAX_BYTES, &n);
    return finish_decode(&r);
}

int mc_version_decode2(const void *data, size_t len, unsigned dec, struct mc_version *out)
{
    struct mc_rbuf r;
    if (dec & MC_DEC_BLOCK) {
        /* Every element takes at most 2.25x its encoded size (an empty user-metadata pair:
           8 bytes encoded, 16 + 2 decoded), plus alignment. */
        struct arena ar = {.cap = 3 * len + 64};
        ar.base = malloc(ar.cap);
        if (ar.base) {
            t_arena = &ar;
            mc_rbuf_init(&r, data, len);
            version_read(&r, dec & ~MC_DEC_BLOCK, out);
            t_arena = NULL;
            int rc = finish_decode(&r);
            if (!rc) {
                out->meta.block = ar.base;
                return 0;
            }
            free(ar.base);
            memset(out, 0, sizeof(*out));
            if (rc != MC_ENOMEM && !ar.full) {
                return rc;
            }
        }
        /* Fall back to separate allocations. */
    }
    mc_rbuf_init(&r, data, len);
    version_read(&r, dec & ~MC_DEC_BLOCK, out);
    int rc = finish_decode(&r);
    if (rc) {
        mc_version_clear(out);
    }
    return rc;
}

int mc_version_decode(const void *data, size_t len, struct mc_version *out)
{
    return mc_version_decode2(data, len, true, out);
}

/* ---- ops ---- */

static bool op_needs_v2(const struct mc_op *op)
{
    for (uint32_t i = 0; i < op->n_sub; i++) {
        if (op_needs_v2(&op->sub[i])) {
            return true;
        }
    }
    return op->acked_seq != 0;
}

static void op_encode(const struct mc_op *op, struct mc_wbuf *w, int depth, uint8_t ver)
{
    wu8(w, ver);
    wu8(w, (uint8_t)op->type);
    wu64(w, op->session_id);
    wu64(w, op->seq);
    if (ver >= 2) {
        wu64(w, op->acked_seq);
    }
    wu64(w, (uint64_t)op->time_ns);
    wstr(w, op->bucket);
    wstr(w, op->key);
    wstr(w, op->version_id);
    wstr(w, op->new_version_id);
    wstr(w, op->if_match);
    wu8(w, op->if_none_match_star ? 1 : 0);
    wu8(w, (uint8_t)op->versioning);
    wu32(w, op->update_mask);
    meta_encode(&op->meta, w);
    wu32(w, depth == 0 ? op->n_sub : 0);
    if (depth == 0) {
        for (uint32_t i = 0; i < op->n_sub; i++) {
            size_t at = w->len;
            wu32(w, 0);
            op_encode(&op->sub[i], w, 1, ver);
            mc_wbuf_patch_u32(w, at, (uint32_t)(w->len - at - 4));
        }
    }
}

int mc_op_encode(const struct mc_op *op, struct mc_wbuf *w)
{
    if ((unsigned)op->type > MC_OP_TYPE_MAX || op->n_sub > MC_ATOMIC_MAX_OPS) {
        return MC_EINVAL;
    }
    size_t start = w->len;
    /* Format 1 when acked_seq is unused: older builds still read what we write. */
    op_encode(op, w, 0, op_needs_v2(op) ? MC_OP_FORMAT_VERSION : 1);
    int rc = mc_wbuf_error(w);
    if (!rc && w->len - start > MC_OP_MAX_BYTES) {
        w->len = start;
        rc = MC_ETOOLARGE;
    }
    return rc;
}

static void op_read(struct mc_rbuf *r, struct mc_op *op, int depth)
{
    memset(op, 0, sizeof(*op));
    uint8_t ver = ru8(r);
    if (!r->err && (ver < MC_OP_FORMAT_VERSION_MIN || ver > MC_OP_FORMAT_VERSION)) {
        r->err = MC_EVERSION;
        return;
    }
    uint8_t type = ru8(r);
    if (type > MC_OP_TYPE_MAX) {
        r->err = MC_EPROTO;
        return;
    }
    op->type = (enum mc_op_type)type;
    op->session_id = ru64(r);
    op->seq = ru64(r);
    if (ver >= 2) {
        op->acked_seq = ru64(r);
    }
    op->time_ns = (int64_t)ru64(r);
    rstr_fixed(r, op->bucket, sizeof(op->bucket));
    op->key = rstr(r, MC_KEY_MAX_BYTES);
    op->version_id = rstr(r, MC_VERSION_ID_MAX);
    op->new_version_id = rstr(r, MC_VERSION_ID_MAX);
    op->if_match = rstr(r, MC_SHORT_STR_MAX);
    uint8_t f = ru8(r);
    uint8_t v = ru8(r);
    if (f > 1 || v > MC_VERSIONING_SUSPENDED) {
        r->err = MC_EPROTO;
    }
    op->if_none_match_star = f;
    op->versioning = (enum mc_versioning)v;
    op->update_mask = ru32(r);
    meta_decode(r, MC_DEC_INLINE, &op->meta);
    uint32_t n = rcount(r, depth == 0 ? MC_ATOMIC_MAX_OPS : 0, 4 + 32);
    if (r->err || !n) {
        return;
    }
    op->sub = dcalloc(n, sizeof(*op->sub));
    if (!op->sub) {
        r->err = MC_ENOMEM;
        return;
    }
    op->n_sub = n;
    for (uint32_t i = 0; i < n && !r->err; i++) {
        size_t len = ru32(r);
        const uint8_t *p = rtake(r, len);
        if (!p) {
            return;
        }
        struct mc_rbuf sr;
        mc_rbuf_init(&sr, p, len);
        op_read(&sr, &op->sub[i], 1);
        if (sr.err || mc_rbuf_remaining(&sr)) {
            r->err = sr.err ? sr.err : MC_EPROTO;
        }
    }
}

int mc_op_decode(const void *data, size_t len, struct mc_op *out)
{
    struct mc_rbuf r;
    if (len > MC_OP_MAX_BYTES) {
        memset(out, 0, sizeof(*out));
        return MC_EPROTO;
    }
    mc_rbuf_init(&r, data, len);
    op_read(&r, out, 0);
    int rc;
    if (r.err == MC_EVERSION) {
        rc = MC_EVERSION;
    } else {
        rc = finish_decode(&r);
    }
    if (rc) {
        mc_op_clear(out);
    }
    return rc;
}

int mc_op_decode_block(const void *data, size_t len, struct mc_op *out)
{
    if (len > MC_OP_MAX_BYTES) {
        memset(out, 0, sizeof(*out));
        return MC_EPROTO;
    }
    /* Strings and arrays of a plain op take at most 2.25x their encoded size (see
       mc_version_decode2); an ATOMIC op's sub-op array may not fit: malloc path then. */
    struct arena ar = {.cap = 3 * len + 64};
    ar.base = malloc(ar.cap);
    if (ar.base) {
        struct mc_rbuf r;
        t_arena = &ar;
        mc_rbuf_init(&r, data, len);
        op_read(&r, out, 0);
        t_arena = NULL;
        int rc = r.err == MC_EVERSION ? MC_EVERSION : finish_decode(&r);
        if (!rc) {
            out->meta.block = ar.base;
            return 0;
        }
        free(ar.base); /* every pointer in *out points into it: nothing else to free */
        memset(out, 0, sizeof(*out));
        if (rc != MC_ENOMEM && !ar.full) {
            return rc; /* an ATOMIC whose count claims more sub-ops than it holds can fill the
                          arena before its real error: only the malloc decode tells which */
        }
    }
    return mc_op_decode(data, len, out);
}

/* ---- results ---- */

static void result_encode(const struct mc_op_result *res, struct mc_wbuf *w)
{
    wu8(w, RECORD_VERSION);
    wu32(w, (uint32_t)res->code);
    wu32(w, (uint32_t)res->failed_op);
    wu8(w, (uint8_t)((res->delete_marker ? 1 : 0) | (res->duplicate ? 2 : 0) |
                     (res->skipped ? 4 : 0)));
    wu64(w, res->session_id);
    wstr(w, res->version_id);
}

static void result_read(struct mc_rbuf *r, struct mc_op_result *res)
{
    memset(res, 0, sizeof(*res));
    if (ru8(r) != RECORD_VERSION) {
        r->err = MC_EPROTO;
        return;
    }
    res->code = (int)ru32(r);
    res->failed_op = (int32_t)ru32(r);
    uint8_t f = ru8(r);
    if (f & ~7u) {
        r->err = MC_EPROTO;
    }
    res->delete_marker = f & 1;
    res->duplicate = (f & 2) != 0;
    res->skipped = (f & 4) != 0;
    res->session_id = ru64(r);
    rstr_fixed(r, res->version_id, sizeof(res->version_id));
}

int mc_op_result_encode(const struct mc_op_result *r, struct mc_wbuf *w)
{
    result_encode(r, w);
    return mc_wbuf_error(w);
}

int mc_op_result_decode(const void *data, size_t len, struct mc_op_result *out)
{
    struct mc_rbuf r;
    mc_rbuf_init(&r, data, len);
    result_read(&r, out);
    int rc = finish_decode(&r);
    if (rc) {
        memset(out, 0, sizeof(*out));
    }
    return rc;
}

/* Used by the session table (apply.c). */
void mc_result_write(const struct mc_op_result *res, struct mc_wbuf *w);
void mc_result_read(struct mc_rbuf *r, struct mc_op_result *res);
void mc_result_write(const struct mc_op_result *res, struct mc_wbuf *w)
{
    result_encode(res, w);
}
void mc_result_read(struct mc_rbuf *r, struct mc_op_result *res)
{
    result_read(r, res);
}

/* ---- list results ---- */

int mc_list_result_encode(const struct mc_list_result *lr, struct mc_wbuf *w)
{
    wu8(w, RECORD_VERSION);
    wu8(w, (uint8_t)((lr->is_truncated ? 1 : 0) | (lr->is_versions ? 2 : 0)));
    wu32(w, lr->n_entries);
    for (uint32_t i = 0; i < lr->n_entries; i++) {
        size_t at = w->len;
        wu32(w, 0);
        version_encode(&lr->entries[i], w);
        mc_wbuf_patch_u32(w, at, (uint32_t)(w->len - at - 4));
    }
    wu32(w, lr->n_prefixes);
    for (uint32_t i = 0; i < lr->n_prefixes; i++) {
        wstr(w, lr->common_prefixes[i]);
    }
    wstr(w, lr->next_continuation_token);
    wstr(w, lr->next_key_marker);
    wstr(w, lr->next_version_id_marker);
    wu64(w, lr->cursor_steps);
    return mc_wbuf_error(w);
}

int mc_list_result_decode(const void *data, size_t len, struct mc_list_result *out)
{
    struct mc_rbuf r;
    memset(out, 0, sizeof(*out));
    mc_rbuf_init(&r, data, len);
    if (ru8(&r) != RECORD_VERSION) {
        return MC_EPROTO;
    }
    uint8_t f = ru8(&r);
    if (f & ~3u) {
        r.err = MC_EPROTO; /* unknown flag bits: refuse rather than misread */
    }
    out->is_truncated = f & 1;
    out->is_versions = (f & 2) != 0;
    uint32_t n = rcount(&r, MC_LIST_MAX_KEYS, 4);
    if (n) {
        out->entries = calloc(n, sizeof(*out->entries));
        if (!out->entries) {
            return MC_ENOMEM;
        }
        out->n_entries = n;
        for (uint32_t i = 0; i < n && !r.err; i++) {
            size_t el = ru32(&r);
            const uint8_t *p = rtake(&r, el);
            if (p) {
                int rc = mc_version_decode2(p, el, true, &out->entries[i]);
                if (rc) {
                    r.err = rc;
                }
            }
        }
    }
    n = rcount(&r, MC_LIST_MAX_KEYS, 4);
    if (n) {
        out->common_prefixes = calloc(n, sizeof(char *));
        if (!out->common_prefixes) {
            mc_list_result_clear(out);
            return MC_ENOMEM;
        }
        out->n_prefixes = n;
        for (uint32_t i = 0; i < n; i++) {
            out->common_prefixes[i] = rstr(&r, MC_KEY_MAX_BYTES);
        }
    }
    out->next_continuation_token = rstr(&r, MC_TOKEN_MAX);
    out->next_key_marker = rstr(&r, MC_KEY_MAX_BYTES);
    out->next_version_id_marker = rstr(&r, MC_VERSION_ID_MAX);
    out->cursor_steps = ru64(&r);
    out->key_count = out->n_entries + out->n_prefixes;
    int rc = finish_decode(&r);
    if (!rc && out->key_count > MC_LIST_MAX_KEYS) {
        rc = MC_EPROTO;
    }
    if (rc) {
        mc_list_result_clear(out);
    }
    return rc;
}

/* ---- bucket lists ---- */

int mc_bucket_list_encode(const struct mc_bucket_info *b, size_t n, struct mc_wbuf *w)
{
    wu8(w, RECORD_VERSION);
    wu32(w, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        wstr(w, b[i].name);
        wu64(w, (uint64_t)b[i].created_ns);
        wu8(w, (uint8_t)b[i].versioning);
    }
    return mc_wbuf_error(w);
}

int mc_bucket_list_decode(const void *data, size_t len, struct mc_bucket_info **out, size_t *n_out)
{
    struct mc_rbuf r;
    *out = NULL;
    *n_out = 0;
    mc_rbuf_init(&r, data, len);
    if (ru8(&r) != RECORD_VERSION) {
        return MC_EPROTO;
    }
    uint32_t n = rcount(&r, 1u << 20, 4 + 3 + 8 + 1);
    struct mc_bucket_info *b = NULL;
    if (n) {
        b = calloc(n, sizeof(*b));
        if (!b) {
            return MC_ENOMEM;
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        rstr_fixed(&r, b[i].name, sizeof(b[i].name));
        b[i].created_ns = (int64_t)ru64(&r);
        uint8_t v = ru8(&r);
        if (v > MC_VERSIONING_SUSPENDED) {
            r.err = MC_EPROTO;
        }
        b[i].versioning = (enum mc_versioning)v;
    }
    int rc = finish_decode(&r);
    if (rc) {
        free(b);
        return rc;
    }
    *out = b;
    *n_out = n;
    return 0;
}
