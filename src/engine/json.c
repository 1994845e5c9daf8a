/* json.c: the one JSON rendering of versions, listings, buckets and results (CLI, client, HTTP). */
#include "engine/internal.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static size_t dump_flags(int flags)
{
    return JSON_PRESERVE_ORDER | (flags & MC_JSON_PRETTY ? JSON_INDENT(2) : JSON_COMPACT);
}

static char *dump(json_t *j, int flags)
{
    if (!j) {
        return NULL;
    }
    char *s = json_dumps(j, dump_flags(flags));
    json_decref(j);
    return s;
}

static json_t *jstr(const char *s)
{
    return json_string(s ? s : "");
}

static json_t *jstr_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* ---- base64 (inline data) ---- */

static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static char *b64_encode(const uint8_t *p, size_t n)
{
    char *out = malloc((n + 2) / 3 * 4 + 1);
    if (!out) {
        return NULL;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        out[o++] = b64[v >> 18 & 63];
        out[o++] = b64[v >> 12 & 63];
        out[o++] = i + 1 < n ? b64[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? b64[v & 63] : '=';
    }
    out[o] = 0;
    return out;
}

static int b64_val(char c)
{
    const char *p = c ? strchr(b64, c) : NULL;
    return p ? (int)(p - b64) : -1;
}

static int b64_decode(const char *s, uint8_t **out, uint32_t *out_len)
{
    size_t n = strlen(s);
    if (n % 4) {
        return MC_EINVAL;
    }
    if (n / 4 * 3 > MC_INLINE_MAX_BYTES + 2) {
        return MC_ETOOLARGE;
    }
    uint8_t *d = malloc(n / 4 * 3 + 1);
    if (!d) {
        return MC_ENOMEM;
    }
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        for (int j = 0; j < 4; j++) {
            v[j] = s[i + j] == '=' && i + 4 == n && j >= 2 ? 0 : b64_val(s[i + j]);
            if (v[j] < 0) {
                free(d);
                return MC_EINVAL;
            }
        }
        uint32_t x =
            (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        d[o++] = (uint8_t)(x >> 16);
        if (s[i + 2] != '=') {
            d[o++] = (uint8_t)(x >> 8);
        }
        if (s[i + 3] != '=') {
            d[o++] = (uint8_t)x;
        }
    }
    if (o > MC_INLINE_MAX_BYTES) {
        free(d);
        return MC_ETOOLARGE;
    }
    *out = d;
    *out_len = (uint32_t)o;
    return 0;
}

/* ---- versions ---- */

static json_t *user_meta_json(const struct mc_object_meta *m)
{
    json_t *o = json_object();
    for (uint32_t i = 0; i < m->n_user_meta; i++) {
        json_object_set_new(o, m->user_meta[i].key ? m->user_meta[i].key : "",
                            jstr(m->user_meta[i].value));
    }
    return o;
}

static json_t *version_full(const struct mc_version *v)
{
    const struct mc_object_meta *m = &v->meta;
    json_t *o = json_object();
    json_object_set_new(o, "bucket", jstr(v->bucket));
    json_object_set_new(o, "key", jstr(v->key));
    json_object_set_new(o, "version_id", jstr(v->version_id));
    json_object_set_new(o, "is_delete_marker", json_boolean(v->is_delete_marker));
    json_object_set_new(o, "is_latest", json_boolean(v->is_latest));
    json_object_set_new(o, "size", json_integer((json_int_t)m->size));
    json_object_set_new(o, "etag", jstr(m->etag));
    json_object_set_new(o, "content_type", jstr(m->content_type));
    json_object_set_new(o, "mod_time_ns", json_integer(v->mod_time_ns));
    json_object_set_new(o, "user_metadata", user_meta_json(m));
    json_object_set_new(o, "storage_class", jstr(m->storage_class));
    json_t *e = json_object();
    json_object_set_new(e, "data_blocks", json_integer(m->erasure.data_blocks));
    json_object_set_new(e, "parity_blocks", json_integer(m->erasure.parity_blocks));
    json_object_set_new(e, "block_size", json_integer(m->erasure.block_size));
    json_t *dist = json_array();
    for (uint32_t i = 0; i < m->erasure.n_distribution; i++) {
        json_array_append_new(dist, json_integer(m->erasure.distribution[i]));
    }
    json_object_set_new(e, "distribution", dist);
    json_object_set_new(o, "erasure", e);
    json_object_set_new(o, "data_dir", jstr(m->data_dir));
    json_t *parts = json_array();
    for (uint32_t i = 0; i < m->n_parts; i++) {
        json_t *p = json_object();
        json_object_set_new(p, "number", json_integer(m->parts[i].number));
        json_object_set_new(p, "size", json_integer((json_int_t)m->parts[i].size));
        json_object_set_new(p, "etag", jstr(m->parts[i].etag));
        json_array_append_new(parts, p);
    }
    json_object_set_new(o, "parts", parts);
    json_t *ck = json_object();
    json_object_set_new(ck, "algorithm", jstr(m->checksum_algorithm));
    json_object_set_new(ck, "value", jstr(m->checksum_value));
    json_object_set_new(o, "checksum", ck);
    json_object_set_new(o, "inline_size", json_integer(m->inline_len));
    if (m->inline_len) {
        char *b = b64_encode(m->inline_data, m->inline_len);
        json_object_set_new(o, "inline_data_base64", b ? json_string(b) : json_null());
        free(b);
    }
    return o;
}

char *mc_version_json(const struct mc_version *v, int flags)
{
    return dump(version_full(v), flags);
}

/* ---- listings ---- */

char *mc_list_result_json(const struct mc_list_result *r, int flags)
{
    json_t *o = json_object();
    json_t *arr = json_array();
    for (uint32_t i = 0; i < r->n_entries; i++) {
        const struct mc_version *v = &r->entries[i];
        json_t *e = json_object();
        json_object_set_new(e, "key", jstr(v->key));
        if (r->is_versions) {
            json_object_set_new(e, "version_id", jstr(v->version_id));
            json_object_set_new(e, "is_latest", json_boolean(v->is_latest));
            json_object_set_new(e, "is_delete_marker", json_boolean(v->is_delete_marker));
            json_object_set_new(e, "size", json_integer((json_int_t)v->meta.size));
            json_object_set_new(e, "etag", jstr(v->meta.etag));
            json_object_set_new(e, "mod_time_ns", json_integer(v->mod_time_ns));
        } else {
            json_object_set_new(e, "size", json_integer((json_int_t)v->meta.size));
            json_object_set_new(e, "etag", jstr(v->meta.etag));
            json_object_set_new(e, "version_id", jstr(v->version_id));
            json_object_set_new(e, "mod_time_ns", json_integer(v->mod_time_ns));
        }
        json_array_append_new(arr, e);
    }
    json_object_set_new(o, r->is_versions ? "versions" : "objects", arr);
    json_t *cps = json_array();
    for (uint32_t i = 0; i < r->n_prefixes; i++) {
        json_array_append_new(cps, jstr(r->common_prefixes[i]));
    }
    json_object_set_new(o, "common_prefixes", cps);
    json_object_set_new(o, "key_count", json_integer(r->key_count));
    json_object_set_new(o, "is_truncated", json_boolean(r->is_truncated));
    if (r->is_versions) {
        json_object_set_new(o, "next_key_marker", jstr_or_null(r->next_key_marker));
        json_object_set_new(o, "next_version_id_marker", jstr_or_null(r->next_version_id_marker));
    } else {
        json_object_set_new(o, "next_continuation_token", jstr_or_null(r->next_continuation_token));
    }
    return dump(o, flags);
}

/* ---- buckets and results ---- */

static json_t *bucket_obj(const struct mc_bucket_info *b)
{
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(b->name));
    json_object_set_new(o, "created_ns", json_integer(b->created_ns));
    json_object_set_new(o, "versioning", json_string(mc_versioning_name(b->versioning)));
    return o;
}

char *mc_bucket_json(const struct mc_bucket_info *b, int flags)
{
    return dump(bucket_obj(b), flags);
}

char *mc_bucket_list_json(const struct mc_bucket_info *b, size_t n, int flags)
{
    json_t *o = json_object();
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, bucket_obj(&b[i]));
    }
    json_object_set_new(o, "buckets", arr);
    return dump(o, flags);
}

char *mc_op_result_json(const struct mc_op_result *r, int flags)
{
    json_t *o = json_object();
    if (r->code) {
        json_object_set_new(o, "error", json_string(mc_error_name(r->code)));
        json_object_set_new(o, "message", json_string(mc_strerror(r->code)));
        if (r->failed_op >= 0) {
            json_object_set_new(o, "failed_op", json_integer(r->failed_op));
        }
    }
    if (r->version_id[0]) {
        json_object_set_new(o, "version_id", json_string(r->version_id));
    }
    json_object_set_new(o, "delete_marker", json_boolean(r->delete_marker));
    if (r->session_id) {
        json_object_set_new(o, "session_id", json_integer((json_int_t)r->session_id));
    }
    if (r->duplicate) {
        json_object_set_new(o, "duplicate", json_true());
    }
    return dump(o, flags);
}

/* ---- JSON → meta ---- */

static int get_str(json_t *o, const char *name, char **out)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_string(v)) {
        return MC_EINVAL;
    }
    const char *s = json_string_value(v);
    if (strlen(s) != json_string_length(v)) {
        return MC_EINVAL; /* embedded NUL */
    }
    *out = strdup(s);
    return *out ? 0 : MC_ENOMEM;
}

static int get_uint(json_t *o, const char *name, uint64_t max, uint64_t *out)
{
    json_t *v = json_object_get(o, name);
    if (!v || json_is_null(v)) {
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || (uint64_t)json_integer_value(v) > max) {
        return MC_EINVAL;
    }
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static bool only_keys(json_t *o, const char *const *allowed)
{
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        bool ok = false;
        for (const char *const *a = allowed; *a; a++) {
            ok = ok || !strcmp(*a, k);
        }
        if (!ok) {
            return false;
        }
    }
    return true;
}

static int parse_meta(json_t *root, struct mc_object_meta *m)
{
    static const char *const top[] = {
        "size",    "etag",     "content_type", "user_metadata", "storage_class",
        "erasure", "data_dir", "parts",        "checksum",      "inline_data_base64",
        NULL};
    if (!json_is_object(root) || !only_keys(root, top)) {
        return MC_EINVAL;
    }
    int rc;
    uint64_t u;
    if ((rc = get_uint(root, "size", UINT64_MAX >> 1, &m->size)) ||
        (rc = get_str(root, "etag", &m->etag)) ||
        (rc = get_str(root, "content_type", &m->content_type)) ||
        (rc = get_str(root, "storage_class", &m->storage_class)) ||
        (rc = get_str(root, "data_dir", &m->data_dir))) {
        return rc;
    }
    json_t *um = json_object_get(root, "user_metadata");
    if (um && !json_is_null(um)) {
        if (!json_is_object(um)) {
            return MC_EINVAL;
        }
        const char *k;
        json_t *v;
        json_object_foreach(um, k, v)
        {
            if (!json_is_string(v)) {
                return MC_EINVAL;
            }
            if ((rc = mc_object_meta_add_user(m, k, json_string_value(v)))) {
                return rc;
            }
        }
    }
    json_t *er = json_object_get(root, "erasure");
    if (er && !json_is_null(er)) {
        static const char *const ek[] = {"data_blocks", "parity_blocks", "block_size",
                                         "distribution", NULL};
        if (!json_is_object(er) || !only_keys(er, ek)) {
            return MC_EINVAL;
        }
        if ((rc = get_uint(er, "data_blocks", UINT32_MAX, &u))) {
            return rc;
        }
        m->erasure.data_blocks = (uint32_t)u;
        u = 0;
        if ((rc = get_uint(er, "parity_blocks", UINT32_MAX, &u))) {
            return rc;
        }
        m->erasure.parity_blocks = (uint32_t)u;
        u = 0;
        if ((rc = get_uint(er, "block_size", UINT32_MAX, &u))) {
            return rc;
        }
        m->erasure.block_size = (uint32_t)u;
        json_t *d = json_object_get(er, "distribution");
        if (d && !json_is_null(d)) {
            if (!json_is_array(d) || json_array_size(d) > MC_DISTRIBUTION_MAX) {
                return MC_EINVAL;
            }
            size_t n = json_array_size(d);
            if (n) {
                m->erasure.distribution = calloc(n, sizeof(uint32_t));
                if (!m->erasure.distribution) {
                    return MC_ENOMEM;
                }
                m->erasure.n_distribution = (uint32_t)n;
            }
            for (size_t i = 0; i < n; i++) {
                json_t *x = json_array_get(d, i);
                if (!json_is_integer(x) || json_integer_value(x) < 0 ||
                    json_integer_value(x) > UINT32_MAX) {
                    return MC_EINVAL;
                }
                m->erasure.distribution[i] = (uint32_t)json_integer_value(x);
            }
        }
    }
    json_t *parts = json_object_get(root, "parts");
    if (parts && !json_is_null(parts)) {
        if (!json_is_array(parts) || json_array_size(parts) > MC_PARTS_MAX) {
            return MC_EINVAL;
        }
        size_t n = json_array_size(parts);
        if (n) {
            m->parts = calloc(n, sizeof(*m->parts));
            if (!m->parts) {
                return MC_ENOMEM;
            }
        }
        for (size_t i = 0; i < n; i++) {
            static const char *const pk[] = {"number", "size", "etag", NULL};
            json_t *p = json_array_get(parts, i);
            m->n_parts = (uint32_t)i + 1;
            if (!json_is_object(p) || !only_keys(p, pk)) {
                return MC_EINVAL;
            }
            u = 0;
            if ((rc = get_uint(p, "number", UINT32_MAX, &u)) ||
                (rc = get_uint(p, "size", UINT64_MAX >> 1, &m->parts[i].size)) ||
                (rc = get_str(p, "etag", &m->parts[i].etag))) {
                return rc;
            }
            m->parts[i].number = (uint32_t)u;
        }
    }
    json_t *ck = json_object_get(root, "checksum");
    if (ck && !json_is_null(ck)) {
        static const char *const ckk[] = {"algorithm", "value", NULL};
        if (!json_is_object(ck) || !only_keys(ck, ckk)) {
            return MC_EINVAL;
        }
        if ((rc = get_str(ck, "algorithm", &m->checksum_algorithm)) ||
            (rc = get_str(ck, "value", &m->checksum_value))) {
            return rc;
        }
    }
    char *inl = NULL;
    if ((rc = get_str(root, "inline_data_base64", &inl))) {
        return rc;
    }
    if (inl) {
        rc = b64_decode(inl, &m->inline_data, &m->inline_len);
        free(inl);
        if (rc) {
            return rc;
        }
    }
    return mc_validate_object_meta_input(m);
}

int mc_object_meta_from_json(const char *json, size_t len, struct mc_object_meta *out)
{
    memset(out, 0, sizeof(*out));
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        return mc_engine_seterr(MC_EINVAL, "bad JSON: %s (line %d)", err.text, err.line);
    }
    mc_engine_clearerr();
    int rc = parse_meta(root, out);
    json_decref(root);
    if (rc) {
        mc_object_meta_clear(out);
        /* A validator's own message (which field, which byte) is kept. */
        if (rc == MC_EINVAL && strcmp(mc_engine_last_error(), "no error") == 0) {
            mc_engine_seterr(rc, "object metadata JSON has a wrong field or type");
        }
    }
    return rc;
}
