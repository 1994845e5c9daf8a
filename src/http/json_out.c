/* json_out.c: the GET object body written directly, byte for byte what mc_version_json prints. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"

/*
 * mc_version_json (src/engine/json.c) builds a jansson tree (~30 allocations) and dumps it; a
 * GET answers with it on every request. This writes the same compact text into one buffer.
 * Where jansson would behave specially (a string that is not valid UTF-8 drops its field,
 * a repeated user-metadata key replaces the earlier value) it defers to mc_version_json, so
 * the output is always identical (test_http_local checks it against mc_version_json).
 */

struct out {
    char *p;
    size_t len, cap;
    bool err;
};

static void reserve(struct out *o, size_t n)
{
    if (o->err || o->len + n + 1 <= o->cap)
        return;
    size_t cap = o->cap ? o->cap : 512;
    while (cap < o->len + n + 1)
        cap *= 2;
    char *p = realloc(o->p, cap);
    if (!p) {
        o->err = true;
        return;
    }
    o->p = p;
    o->cap = cap;
}

static void put(struct out *o, const char *s, size_t n)
{
    reserve(o, n);
    if (o->err)
        return;
    memcpy(o->p + o->len, s, n);
    o->len += n;
}

/* lit must be a string literal ("" lit refuses anything else at compile time) */
#define PUTS(o, lit) put(o, "" lit, sizeof(lit) - 1)

static void put_int(struct out *o, long long v)
{
    char b[MC_FMT_INT_MAX];
    put(o, b, mc_fmt_i64(b, v));
}

/* Length of the valid UTF-8 sequence at s (as jansson accepts: no overlongs, no surrogates,
 * at most U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0)
        n = 2, cp = c & 0x1F;
    else if (c < 0xF0)
        n = 3, cp = c & 0x0F;
    else if (c < 0xF5)
        n = 4, cp = c & 0x07;
    else
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static bool valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        size_t n = utf8_seq(p);
        if (!n)
            return false;
        p += n;
    }
    return true;
}

/* A JSON string as jansson's compact dump escapes it (s NULL = ""). */
static void put_str(struct out *o, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    PUTS(o, "\"");
    const unsigned char *run = p;
    for (; *p; p++) {
        unsigned c = *p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        put(o, (const char *)run, (size_t)(p - run));
        switch (c) {
        case '"':
            PUTS(o, "\\\"");
            break;
        case '\\':
            PUTS(o, "\\\\");
            break;
        case '\b':
            PUTS(o, "\\b");
            break;
        case '\f':
            PUTS(o, "\\f");
            break;
        case '\n':
            PUTS(o, "\\n");
            break;
        case '\r':
            PUTS(o, "\\r");
            break;
        case '\t':
            PUTS(o, "\\t");
            break;
        default: {
            char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            put(o, u, sizeof u);
        }
        }
        run = p + 1;
    }
    put(o, (const char *)run, (size_t)(p - run));
    PUTS(o, "\"");
}

/* Would jansson render every string of v (and keep every user-metadata pair)? */
static bool plain(const struct mc_version *v)
{
    const struct mc_object_meta *m = &v->meta;
    const char *strs[] = {v->bucket,        v->key,           v->version_id, m->etag,
                          m->content_type,  m->storage_class, m->data_dir,   m->checksum_algorithm,
                          m->checksum_value};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!valid_utf8(strs[i]))
            return false;
    for (uint32_t i = 0; i < m->n_user_meta; i++) {
        const char *k = m->user_meta[i].key ? m->user_meta[i].key : "";
        if (!valid_utf8(k) || !valid_utf8(m->user_meta[i].value))
            return false;
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(k, m->user_meta[j].key ? m->user_meta[j].key : "") == 0)
                return false;
    }
    for (uint32_t i = 0; i < m->n_parts; i++)
        if (!valid_utf8(m->parts[i].etag))
            return false;
    return m->inline_len == 0; /* inline data (base64) is rare: left to mc_version_json */
}

char *mc_http_version_json(const struct mc_version *v)
{
    if (!plain(v))
        return mc_version_json(v, MC_JSON_COMPACT);
    const struct mc_object_meta *m = &v->meta;
    struct out o = {0};
    PUTS(&o, "{\"bucket\":");
    put_str(&o, v->bucket);
    PUTS(&o, ",\"key\":");
    put_str(&o, v->key);
    PUTS(&o, ",\"version_id\":");
    put_str(&o, v->version_id);
    PUTS(&o, ",\"is_delete_marker\":");
    if (v->is_delete_marker)
        PUTS(&o, "true");
    else
        PUTS(&o, "false");
    PUTS(&o, ",\"is_latest\":");
    if (v->is_latest)
        PUTS(&o, "true");
    else
        PUTS(&o, "false");
    PUTS(&o, ",\"size\":");
    put_int(&o, (long long)m->size);
    PUTS(&o, ",\"etag\":");
    put_str(&o, m->etag);
    PUTS(&o, ",\"content_type\":");
    put_str(&o, m->content_type);
    PUTS(&o, ",\"mod_time_ns\":");
    put_int(&o, (long long)v->mod_time_ns);
    PUTS(&o, ",\"user_metadata\":{");
    for (uint32_t i = 0; i < m->n_user_meta; i++) {
        if (i)
            PUTS(&o, ",");
        put_str(&o, m->user_meta[i].key);
        PUTS(&o, ":");
        put_str(&o, m->user_meta[i].value);
    }
    PUTS(&o, "},\"storage_class\":");
    put_str(&o, m->storage_class);
    PUTS(&o, ",\"erasure\":{\"data_blocks\":");
    put_int(&o, m->erasure.data_blocks);
    PUTS(&o, ",\"parity_blocks\":");
    put_int(&o, m->erasure.parity_blocks);
    PUTS(&o, ",\"block_size\":");
    put_int(&o, m->erasure.block_size);
    PUTS(&o, ",\"distribution\":[");
    for (uint32_t i = 0; i < m->erasure.n_distribution; i++) {
        if (i)
            PUTS(&o, ",");
        put_int(&o, m->erasure.distribution[i]);
    }
    PUTS(&o, "]},\"data_dir\":");
    put_str(&o, m->data_dir);
    PUTS(&o, ",\"parts\":[");
    for (uint32_t i = 0; i < m->n_parts; i++) {
        if (i)
            PUTS(&o, ",");
        PUTS(&o, "{\"number\":");
        put_int(&o, m->parts[i].number);
        PUTS(&o, ",\"size\":");
        put_int(&o, (long long)m->parts[i].size);
        PUTS(&o, ",\"etag\":");
        put_str(&o, m->parts[i].etag);
        PUTS(&o, "}");
    }
    PUTS(&o, "],\"checksum\":{\"algorithm\":");
    put_str(&o, m->checksum_algorithm);
    PUTS(&o, ",\"value\":");
    put_str(&o, m->checksum_value);
    PUTS(&o, "},\"inline_size\":");
    put_int(&o, m->inline_len);
    PUTS(&o, "}");
    if (o.err) {
        free(o.p);
        return NULL;
    }
    o.p[o.len] = '\0';
    return o.p;
}

char *mc_http_op_result_json(const struct mc_op_result *r)
{
    if (r->code || !valid_utf8(r->version_id))
        return mc_op_result_json(r, MC_JSON_COMPACT); /* error bodies: rare */
    struct out o = {0};
    PUTS(&o, "{");
    if (r->version_id[0]) {
        PUTS(&o, "\"version_id\":");
        put_str(&o, r->version_id);
        PUTS(&o, ",");
    }
    PUTS(&o, "\"delete_marker\":");
    if (r->delete_marker)
        PUTS(&o, "true");
    else
        PUTS(&o, "false");
    if (r->session_id) {
        PUTS(&o, ",\"session_id\":");
        put_int(&o, (long long)r->session_id);
    }
    if (r->duplicate)
        PUTS(&o, ",\"duplicate\":true");
    PUTS(&o, "}");
    if (o.err) {
        free(o.p);
        return NULL;
    }
    o.p[o.len] = '\0';
    return o.p;
}
