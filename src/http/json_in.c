/* json_in.c: fast path for the PUT object body (flat metadata JSON) without a jansson tree. */
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "metacenter/error.h"

/*
 * The common PUT body is a flat object: {"size":N,"etag":"..","content_type":"..",
 * "user_metadata":{"k":"v",...}} with plain ASCII strings. Parsing it through a jansson tree
 * (allocate every node, hash every key, then copy the strings out) took a tenth of the
 * leader's CPU per HTTP write. This scanner fills the same struct mc_object_meta directly,
 * and gives up (returning false) on anything it does not handle exactly like
 * mc_object_meta_from_json would: escapes or non-ASCII in strings, nulls, other keys,
 * duplicate keys, numbers with a sign, fraction, exponent or leading zero, nested values other
 * than user_metadata, trailing bytes, any limit. The caller then runs the full parser, so an
 * accepted body and its error texts are exactly the engine's. A randomized test compares the
 * two (test_http_json_in.c).
 */

struct scan {
    const char *p, *end;
};

static void skip_ws(struct scan *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool eat(struct scan *s, char c)
{
    skip_ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

/* A string of printable ASCII without escapes: [*start, *start + *len). */
static bool plain_string(struct scan *s, const char **start, size_t *len)
{
    if (!eat(s, '"'))
        return false;
    const char *b = s->p;
    while (s->p < s->end && *s->p != '"') {
        unsigned char c = (unsigned char)*s->p;
        if (c < 0x20 || c > 0x7e || c == '\\')
            return false;
        s->p++;
    }
    if (s->p == s->end)
        return false;
    *start = b;
    *len = (size_t)(s->p - b);
    s->p++;
    return true;
}

static bool plain_uint(struct scan *s, uint64_t max, uint64_t *out)
{
    skip_ws(s);
    const char *b = s->p;
    uint64_t v = 0;
    while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
        uint64_t d = (uint64_t)(*s->p - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
        s->p++;
    }
    size_t n = (size_t)(s->p - b);
    if (n == 0 || (n > 1 && b[0] == '0'))
        return false;
    if (s->p < s->end && (*s->p == '.' || *s->p == 'e' || *s->p == 'E'))
        return false;
    *out = v;
    return true;
}

static char *dup_n(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static bool key_is(const char *k, size_t n, const char *name)
{
    return strlen(name) == n && memcmp(k, name, n) == 0;
}

/* {"k":"v",...}: every value a plain string, no key twice. */
static bool user_metadata(struct scan *s, struct mc_object_meta *m)
{
    if (!eat(s, '{'))
        return false;
    if (eat(s, '}'))
        return true;
    do {
        const char *k, *v;
        size_t kn, vn;
        if (!plain_string(s, &k, &kn) || !eat(s, ':') || !plain_string(s, &v, &vn))
            return false;
        for (uint32_t i = 0; i < m->n_user_meta; i++)
            if (strlen(m->user_meta[i].key) == kn && memcmp(m->user_meta[i].key, k, kn) == 0)
                return false;
        char *kd = dup_n(k, kn), *vd = dup_n(v, vn);
        int rc = kd && vd ? mc_object_meta_add_user(m, kd, vd) : MC_ENOMEM;
        free(kd);
        free(vd);
        if (rc != 0)
            return false;
    } while (eat(s, ','));
    return eat(s, '}');
}

/* One "key": value member of the top-level object. */
static bool member(struct scan *s, struct mc_object_meta *m, unsigned *seen)
{
    static const char *const names[] = {"size",          "etag",     "content_type",
                                        "storage_class", "data_dir", "user_metadata"};
    const char *k;
    size_t kn;
    if (!plain_string(s, &k, &kn) || !eat(s, ':'))
        return false;
    unsigned i = 0;
    while (i < sizeof names / sizeof names[0] && !key_is(k, kn, names[i]))
        i++;
    if (i == sizeof names / sizeof names[0] || (*seen & (1u << i)))
        return false; /* another key (the full parser knows it or refuses it), or twice */
    *seen |= 1u << i;
    if (i == 0)
        return plain_uint(s, UINT64_MAX >> 1, &m->size);
    if (i == 5)
        return user_metadata(s, m);
    char **dst[] = {NULL, &m->etag, &m->content_type, &m->storage_class, &m->data_dir};
    const char *v;
    size_t vn;
    if (!plain_string(s, &v, &vn))
        return false;
    *dst[i] = dup_n(v, vn);
    return *dst[i] != NULL;
}

bool mc_http_meta_from_json_fast(const char *json, size_t len, struct mc_object_meta *out)
{
    memset(out, 0, sizeof *out);
    struct scan s = {json, json + len};
    unsigned seen = 0;
    bool ok = eat(&s, '{');
    if (ok && !eat(&s, '}')) {
        do
            ok = member(&s, out, &seen);
        while (ok && eat(&s, ','));
        ok = ok && eat(&s, '}');
    }
    skip_ws(&s);
    /* The engine parser's checks too (sizes, empty metadata names): what it would refuse
     * falls back to it and is refused with its error, not later at apply. */
    if (ok && s.p == s.end && mc_validate_object_meta_input(out) == 0)
        return true;
    mc_object_meta_clear(out);
    memset(out, 0, sizeof *out);
    return false;
}
