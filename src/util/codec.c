/* codec.c: bounds-checked little-endian encoder/decoder. */
#include "util/codec.h"
#include "metacenter/error.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void mc_wbuf_init(struct mc_wbuf *w, size_t limit)
{
    memset(w, 0, sizeof(*w));
    w->limit = limit ? limit : MC_WBUF_DEFAULT_LIMIT;
}

void mc_wbuf_free(struct mc_wbuf *w)
{
    free(w->data);
    w->data = NULL;
    w->len = w->cap = 0;
}

void mc_wbuf_reset(struct mc_wbuf *w)
{
    w->len = 0;
    w->err = 0;
}

int mc_wbuf_error(const struct mc_wbuf *w)
{
    return w->err;
}

uint8_t *mc_wbuf_reserve(struct mc_wbuf *w, size_t n)
{
    if (w->err) {
        return NULL;
    }
    if (n > w->limit || w->len > w->limit - n) {
        w->err = MC_ETOOLARGE;
        return NULL;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n) {
            cap *= 2;
        }
        if (cap > w->limit) {
            cap = w->limit;
        }
        uint8_t *d = realloc(w->data, cap);
        if (!d) {
            w->err = MC_ENOMEM;
            return NULL;
        }
        w->data = d;
        w->cap = cap;
    }
    uint8_t *p = w->data + w->len;
    w->len += n;
    return p;
}

void mc_wbuf_put(struct mc_wbuf *w, const void *p, size_t n)
{
    uint8_t *d = mc_wbuf_reserve(w, n);
    if (d && n) {
        memcpy(d, p, n);
    }
}

void mc_wbuf_u8(struct mc_wbuf *w, uint8_t v)
{
    uint8_t *d = mc_wbuf_reserve(w, 1);
    if (d) {
        d[0] = v;
    }
}

void mc_wbuf_u16(struct mc_wbuf *w, uint16_t v)
{
    uint8_t *d = mc_wbuf_reserve(w, 2);
    if (d) {
        d[0] = (uint8_t)v;
        d[1] = (uint8_t)(v >> 8);
    }
}

void mc_wbuf_u32(struct mc_wbuf *w, uint32_t v)
{
    uint8_t *d = mc_wbuf_reserve(w, 4);
    if (d) {
        mc_put_u32le(d, v);
    }
}

void mc_wbuf_u64(struct mc_wbuf *w, uint64_t v)
{
    uint8_t *d = mc_wbuf_reserve(w, 8);
    if (d) {
        mc_put_u64le(d, v);
    }
}

void mc_wbuf_i64(struct mc_wbuf *w, int64_t v)
{
    mc_wbuf_u64(w, (uint64_t)v);
}

size_t mc_fmt_u64(char *out, uint64_t v)
{
    char rev[MC_FMT_INT_MAX];
    size_t n = 0;
    do {
        assert(n < sizeof(rev));
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++) {
        out[i] = rev[n - 1 - i];
    }
    return n;
}

size_t mc_fmt_i64(char *out, int64_t v)
{
    if (v >= 0) {
        return mc_fmt_u64(out, (uint64_t)v);
    }
    out[0] = '-';
    /* -(v + 1) + 1: INT64_MIN's magnitude does not fit an int64_t */
    return 1 + mc_fmt_u64(out + 1, (uint64_t)(-(v + 1)) + 1);
}

void mc_wbuf_bytes(struct mc_wbuf *w, const void *p, size_t n)
{
    if (n > UINT32_MAX) {
        w->err = MC_ETOOLARGE;
        return;
    }
    mc_wbuf_u32(w, (uint32_t)n);
    mc_wbuf_put(w, p, n);
}

void mc_wbuf_str(struct mc_wbuf *w, const char *s)
{
    mc_wbuf_bytes(w, s ? s : "", s ? strlen(s) : 0);
}

void mc_wbuf_patch_u32(struct mc_wbuf *w, size_t off, uint32_t v)
{
    if (!w->err && off + 4 <= w->len) {
        mc_put_u32le(w->data + off, v);
    }
}

void mc_rbuf_init(struct mc_rbuf *r, const void *data, size_t len)
{
    r->data = data;
    r->len = len;
    r->pos = 0;
    r->err = 0;
}

int mc_rbuf_error(const struct mc_rbuf *r)
{
    return r->err;
}

size_t mc_rbuf_remaining(const struct mc_rbuf *r)
{
    return r->err ? 0 : r->len - r->pos;
}

const uint8_t *mc_rbuf_take(struct mc_rbuf *r, size_t n)
{
    if (r->err || n > r->len - r->pos) {
        r->err = MC_EPROTO;
        return NULL;
    }
    const uint8_t *p = r->data + r->pos;
    r->pos += n;
    return p;
}

uint8_t mc_rbuf_u8(struct mc_rbuf *r)
{
    const uint8_t *p = mc_rbuf_take(r, 1);
    return p ? p[0] : 0;
}

uint16_t mc_rbuf_u16(struct mc_rbuf *r)
{
    const uint8_t *p = mc_rbuf_take(r, 2);
    return p ? (uint16_t)(p[0] | p[1] << 8) : 0;
}

uint32_t mc_rbuf_u32(struct mc_rbuf *r)
{
    const uint8_t *p = mc_rbuf_take(r, 4);
    return p ? mc_get_u32le(p) : 0;
}

uint64_t mc_rbuf_u64(struct mc_rbuf *r)
{
    const uint8_t *p = mc_rbuf_take(r, 8);
    return p ? mc_get_u64le(p) : 0;
}

int64_t mc_rbuf_i64(struct mc_rbuf *r)
{
    return (int64_t)mc_rbuf_u64(r);
}

const uint8_t *mc_rbuf_bytes(struct mc_rbuf *r, size_t max, size_t *n)
{
    uint32_t len = mc_rbuf_u32(r);
    *n = 0;
    if (r->err) {
        return NULL;
    }
    if (len > max) {
        r->err = MC_EPROTO;
        return NULL;
    }
    const uint8_t *p = mc_rbuf_take(r, len);
    if (p) {
        *n = len;
    }
    return p;
}
