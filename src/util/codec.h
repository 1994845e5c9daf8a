/* codec.h: bounds-checked little-endian encoder/decoder used by every binary format. */
#ifndef MC_UTIL_CODEC_H
#define MC_UTIL_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/*
 * Writer over a caller-owned growable buffer. On any failure (allocation or
 * the hard limit) `err` becomes non-zero and further writes are ignored, so a
 * caller checks once at the end: mc_wbuf_error(&w).
 */
struct mc_wbuf {
    uint8_t *data;
    size_t len;
    size_t cap;
    size_t limit; /* hard cap in bytes; 0 = MC_WBUF_DEFAULT_LIMIT */
    int err;      /* 0 or MC_ENOMEM / MC_ETOOLARGE */
};

#define MC_WBUF_DEFAULT_LIMIT (64u * 1024 * 1024)

void mc_wbuf_init(struct mc_wbuf *w, size_t limit);
void mc_wbuf_free(struct mc_wbuf *w);
void mc_wbuf_reset(struct mc_wbuf *w);
int mc_wbuf_error(const struct mc_wbuf *w);
/* Ensure room for n more bytes; returns a pointer to them or NULL (err set). */
uint8_t *mc_wbuf_reserve(struct mc_wbuf *w, size_t n);
void mc_wbuf_put(struct mc_wbuf *w, const void *p, size_t n);
void mc_wbuf_u8(struct mc_wbuf *w, uint8_t v);
void mc_wbuf_u16(struct mc_wbuf *w, uint16_t v);
void mc_wbuf_u32(struct mc_wbuf *w, uint32_t v);
void mc_wbuf_u64(struct mc_wbuf *w, uint64_t v);
void mc_wbuf_i64(struct mc_wbuf *w, int64_t v);
/* Decimal text of v into out (MC_FMT_INT_MAX bytes; no NUL); returns its length. snprintf's
 * "%llu" costs the HTTP answers a stdio stream set-up per number (~5% of a leader's CPU on HTTP
 * gets, issue 8). */
#define MC_FMT_INT_MAX 20 /* "18446744073709551615", "-9223372036854775808" */
size_t mc_fmt_u64(char *out, uint64_t v);
size_t mc_fmt_i64(char *out, int64_t v);
/* Length-prefixed (u32) bytes. */
void mc_wbuf_bytes(struct mc_wbuf *w, const void *p, size_t n);
/* Length-prefixed string (may be NULL = empty). */
void mc_wbuf_str(struct mc_wbuf *w, const char *s);
/* Overwrite a u32 at an earlier offset (for length back-patching). */
void mc_wbuf_patch_u32(struct mc_wbuf *w, size_t off, uint32_t v);

/*
 * Reader over a borrowed buffer. Any read past the end sets err = MC_EPROTO
 * and yields zeros, so decoders read all fields then check once.
 */
struct mc_rbuf {
    const uint8_t *data;
    size_t len;
    size_t pos;
    int err;
};

void mc_rbuf_init(struct mc_rbuf *r, const void *data, size_t len);
int mc_rbuf_error(const struct mc_rbuf *r);
size_t mc_rbuf_remaining(const struct mc_rbuf *r);
uint8_t mc_rbuf_u8(struct mc_rbuf *r);
uint16_t mc_rbuf_u16(struct mc_rbuf *r);
uint32_t mc_rbuf_u32(struct mc_rbuf *r);
uint64_t mc_rbuf_u64(struct mc_rbuf *r);
int64_t mc_rbuf_i64(struct mc_rbuf *r);
/* Borrow n raw bytes; NULL (err set) when short. */
const uint8_t *mc_rbuf_take(struct mc_rbuf *r, size_t n);
/* Length-prefixed bytes, length ≤ max; returns a borrowed pointer, *n = length. */
const uint8_t *mc_rbuf_bytes(struct mc_rbuf *r, size_t max, size_t *n);

/* Value of the hex digit c (0..15), or -1. Lowercase a-f always; A-F only when upper_ok
 * (continuation tokens are lowercase only, so each token has one spelling; URL escapes take
 * both cases). */
static inline int mc_hex_digit(int c, bool upper_ok)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (upper_ok && c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Raw little-endian helpers for fixed headers. */
static inline void mc_put_u32le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}
static inline uint32_t mc_get_u32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void mc_put_u64le(uint8_t *p, uint64_t v)
{
    mc_put_u32le(p, (uint32_t)v);
    mc_put_u32le(p + 4, (uint32_t)(v >> 32));
}
static inline uint64_t mc_get_u64le(const uint8_t *p)
{
    return (uint64_t)mc_get_u32le(p) | (uint64_t)mc_get_u32le(p + 4) << 32;
}
/* Big-endian u64 (for LMDB keys that must sort numerically). */
static inline void mc_put_u64be(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}
static inline uint64_t mc_get_u64be(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) {
        v = v << 8 | p[i];
    }
    return v;
}

#endif
