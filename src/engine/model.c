/* model.c: the data model's value helpers: clear/copy, validation (S3 rules), op constructors. */
#include "engine/internal.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

char *mc_strdup0(const char *s)
{
    return s ? strdup(s) : NULL;
}

const char *mc_versioning_name(enum mc_versioning v)
{
    switch (v) {
    case MC_VERSIONING_UNVERSIONED:
        return "unversioned";
    case MC_VERSIONING_ENABLED:
        return "enabled";
    case MC_VERSIONING_SUSPENDED:
        return "suspended";
    }
    return "unknown";
}

int mc_versioning_parse(const char *s, enum mc_versioning *out)
{
    if (!s) {
        return MC_EINVAL;
    }
    if (!strcmp(s, "enabled")) {
        *out = MC_VERSIONING_ENABLED;
    } else if (!strcmp(s, "suspended")) {
        *out = MC_VERSIONING_SUSPENDED;
    } else if (!strcmp(s, "unversioned")) {
        *out = MC_VERSIONING_UNVERSIONED;
    } else {
        return MC_EINVAL;
    }
    return 0;
}

const char *mc_op_type_name(enum mc_op_type t)
{
    static const char *names[] = {"noop",  "bucket_create", "bucket_delete", "bucket_versioning",
                                  "put",   "delete",        "update_meta",   "session_register",
                                  "atomic"};
    return (unsigned)t <= MC_OP_TYPE_MAX ? names[t] : "unknown";
}

void mc_object_meta_clear(struct mc_object_meta *m)
{
    if (m->block) {
        free(m->block); /* every string and array lives in it */
        memset(m, 0, sizeof(*m));
        return;
    }
    free(m->etag);
    free(m->content_type);
    for (uint32_t i = 0; i < m->n_user_meta; i++) {
        free(m->user_meta[i].key);
        free(m->user_meta[i].value);
    }
    free(m->user_meta);
    free(m->storage_class);
    free(m->erasure.distribution);
    free(m->data_dir);
    for (uint32_t i = 0; i < m->n_parts; i++) {
        free(m->parts[i].etag);
    }
    free(m->parts);
    free(m->checksum_algorithm);
    free(m->checksum_value);
    free(m->inline_data);
    memset(m, 0, sizeof(*m));
}

#define DUP(dst, src)                                                                              \
    do {                                                                                           \
        if ((src) && !((dst) = strdup(src))) {                                                     \
            goto nomem;                                                                            \
        }                                                                                          \
    } while (0)

int mc_object_meta_copy(struct mc_object_meta *dst, const struct mc_object_meta *src)
{
    memset(dst, 0, sizeof(*dst));
    dst->size = src->size;
    DUP(dst->etag, src->etag);
    DUP(dst->content_type, src->content_type);
    DUP(dst->storage_class, src->storage_class);
    DUP(dst->data_dir, src->data_dir);
    DUP(dst->checksum_algorithm, src->checksum_algorithm);
    DUP(dst->checksum_value, src->checksum_value);
    if (src->n_user_meta) {
        dst->user_meta = calloc(src->n_user_meta, sizeof(*dst->user_meta));
        if (!dst->user_meta) {
            goto nomem;
        }
        for (uint32_t i = 0; i < src->n_user_meta; i++) {
            dst->n_user_meta = i + 1;
            DUP(dst->user_meta[i].key, src->user_meta[i].key);
            DUP(dst->user_meta[i].value, src->user_meta[i].value);
        }
    }
    dst->erasure = src->erasure;
    dst->erasure.distribution = NULL;
    if (src->erasure.n_distribution) {
        size_t n = src->erasure.n_distribution * sizeof(uint32_t);
        dst->erasure.distribution = malloc(n);
        if (!dst->erasure.distribution) {
            dst->erasure.n_distribution = 0;
            goto nomem;
        }
        memcpy(dst->erasure.distribution, src->erasure.distribution, n);
    }
    if (src->n_parts) {
        dst->parts = calloc(src->n_parts, sizeof(*dst->parts));
        if (!dst->parts) {
            goto nomem;
        }
        for (uint32_t i = 0; i < src->n_parts; i++) {
            dst->n_parts = i + 1;
            dst->parts[i].number = src->parts[i].number;
            dst->parts[i].size = src->parts[i].size;
            DUP(dst->parts[i].etag, src->parts[i].etag);
        }
    }
    if (src->inline_len) {
        dst->inline_data = malloc(src->inline_len);
        if (!dst->inline_data) {
            goto nomem;
        }
        memcpy(dst->inline_data, src->inline_data, src->inline_len);
        dst->inline_len = src->inline_len;
    }
    return 0;
nomem:
    mc_object_meta_clear(dst);
    return MC_ENOMEM;
}

int mc_object_meta_add_user(struct mc_object_meta *m, const char *key, const char *value)
{
    if (m->n_user_meta >= MC_USER_META_MAX_PAIRS) {
        return MC_EMETATOOLARGE;
    }
    if (m->block) {
        return MC_EINVAL; /* a read-only block version (see engine.h): copy it first */
    }
    struct mc_kv *kv = realloc(m->user_meta, (m->n_user_meta + 1) * sizeof(*kv));
    if (!kv) {
        return MC_ENOMEM;
    }
    m->user_meta = kv;
    char *k = strdup(key ? key : "");
    char *v = strdup(value ? value : "");
    if (!k || !v) {
        free(k);
        free(v);
        return MC_ENOMEM;
    }
    kv[m->n_user_meta].key = k;
    kv[m->n_user_meta].value = v;
    m->n_user_meta++;
    return 0;
}

void mc_version_clear(struct mc_version *v)
{
    if (!v->meta.block) {
        free(v->key);
        free(v->version_id);
    }
    mc_object_meta_clear(&v->meta);
    memset(v, 0, sizeof(*v));
}

int mc_version_copy(struct mc_version *dst, const struct mc_version *src)
{
    memset(dst, 0, sizeof(*dst));
    memcpy(dst->bucket, src->bucket, sizeof(dst->bucket));
    dst->is_delete_marker = src->is_delete_marker;
    dst->is_latest = src->is_latest;
    dst->mod_time_ns = src->mod_time_ns;
    dst->seq = src->seq;
    DUP(dst->key, src->key);
    DUP(dst->version_id, src->version_id);
    if (mc_object_meta_copy(&dst->meta, &src->meta)) {
        goto nomem;
    }
    return 0;
nomem:
    mc_version_clear(dst);
    return MC_ENOMEM;
}

/* ---- validation ---- */

static bool is_ipv4(const char *s)
{
    int dots = 0, digits = 0;
    for (; *s; s++) {
        if (*s == '.') {
            if (!digits) {
                return false;
            }
            dots++;
            digits = 0;
        } else if (*s >= '0' && *s <= '9') {
            if (++digits > 3) {
                return false;
            }
        } else {
            return false;
        }
    }
    return dots == 3 && digits > 0;
}

/* Prefixes and suffixes S3 reserves (Amazon S3 User Guide, "General purpose bucket naming
 * rules": xn-- is punycode, the rest name access points, S3 on Outposts, Multi-Region Access
 * Points, directory and table buckets). */
static const char *const reserved_prefix[] = {"xn--", "sthree-", "amzn-s3-demo-"};
static const char *const reserved_suffix[] = {"-s3alias", "--ol-s3", ".mrap", "--x-s3",
                                              "--table-s3"};

static bool reserved_name(const char *name, size_t n)
{
    for (size_t i = 0; i < sizeof reserved_prefix / sizeof *reserved_prefix; i++) {
        if (strncmp(name, reserved_prefix[i], strlen(reserved_prefix[i])) == 0) {
            return true;
        }
    }
    for (size_t i = 0; i < sizeof reserved_suffix / sizeof *reserved_suffix; i++) {
        size_t sl = strlen(reserved_suffix[i]);
        if (n >= sl && memcmp(name + n - sl, reserved_suffix[i], sl) == 0) {
            return true;
        }
    }
    return false;
}

int mc_validate_bucket_name(const char *name)
{
    if (!name) {
        return MC_EBUCKETNAME;
    }
    size_t n = strlen(name);
    if (n < MC_BUCKET_NAME_MIN || n > MC_BUCKET_NAME_MAX) {
        return MC_EBUCKETNAME;
    }
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '-') {
            return MC_EBUCKETNAME;
        }
        if ((i == 0 || i == n - 1) && !alnum) {
            return MC_EBUCKETNAME;
        }
        /* S3: no adjacent periods, no period next to a hyphen. */
        if (i > 0 && c == '.' && (name[i - 1] == '.' || name[i - 1] == '-')) {
            return MC_EBUCKETNAME;
        }
        if (i > 0 && c == '-' && name[i - 1] == '.') {
            return MC_EBUCKETNAME;
        }
    }
    if (is_ipv4(name)) {
        return MC_EBUCKETNAME;
    }
    return 0;
}

int mc_validate_new_bucket_name(const char *name)
{
    mc_engine_clearerr();
    int rc = mc_validate_bucket_name(name);
    if (rc == 0 && reserved_name(name, strlen(name))) {
        rc = mc_engine_seterr(MC_EBUCKETNAME, "'%s' uses a prefix or suffix S3 reserves", name);
    }
    return rc;
}

/* Strict UTF-8 (no overlongs, no surrogates, ≤ U+10FFFF); rejects NUL. */
static bool valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        if (c == 0) {
            return false;
        }
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return false;
        }
        if (i + len > n) {
            return false;
        }
        for (size_t j = 1; j < len; j++) {
            if ((s[i + j] & 0xC0) != 0x80) {
                return false;
            }
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false;
        }
        i += len;
    }
    return true;
}

int mc_validate_key(const char *key, size_t len)
{
    if (!key || len == 0) {
        return MC_EBADKEY;
    }
    if (len > MC_KEY_MAX_BYTES) {
        return MC_EKEYTOOLONG;
    }
    if (!valid_utf8((const uint8_t *)key, len)) {
        return MC_EBADKEY;
    }
    return 0;
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

int mc_validate_etag(const char *etag)
{
    size_t n = slen(etag);
    if (n > MC_SHORT_STR_MAX) {
        return mc_engine_seterr(MC_EINVAL, "etag is longer than %d bytes", MC_SHORT_STR_MAX);
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)etag[i];
        if (c < 0x21 || c == '"' || c > 0x7e) {
            return mc_engine_seterr(MC_EINVAL,
                                    "etag byte %zu is 0x%02x: an etag is printable ASCII without "
                                    "'\"' or spaces (it is sent inside a quoted ETag header)",
                                    i, c);
        }
    }
    return 0;
}

int mc_validate_object_meta(const struct mc_object_meta *m)
{
    size_t total = 0;
    if (m->n_user_meta > MC_USER_META_MAX_PAIRS) {
        return MC_EMETATOOLARGE;
    }
    for (uint32_t i = 0; i < m->n_user_meta; i++) {
        if (!m->user_meta[i].key || !m->user_meta[i].key[0]) {
            return MC_EINVAL;
        }
        total += slen(m->user_meta[i].key) + slen(m->user_meta[i].value);
    }
    if (total > MC_USER_META_MAX_BYTES) {
        return MC_EMETATOOLARGE;
    }
    if (slen(m->etag) > MC_SHORT_STR_MAX || slen(m->content_type) > MC_SHORT_STR_MAX ||
        slen(m->storage_class) > MC_SHORT_STR_MAX || slen(m->data_dir) > MC_SHORT_STR_MAX ||
        slen(m->checksum_algorithm) > MC_SHORT_STR_MAX ||
        slen(m->checksum_value) > MC_SHORT_STR_MAX) {
        return MC_EINVAL;
    }
    if (m->n_parts > MC_PARTS_MAX || m->erasure.n_distribution > MC_DISTRIBUTION_MAX) {
        return MC_EINVAL;
    }
    if ((m->n_parts && !m->parts) || (m->erasure.n_distribution && !m->erasure.distribution) ||
        (m->n_user_meta && !m->user_meta) || (m->inline_len && !m->inline_data)) {
        return MC_EINVAL;
    }
    for (uint32_t i = 0; i < m->n_parts; i++) {
        if (slen(m->parts[i].etag) > MC_SHORT_STR_MAX) {
            return MC_EINVAL;
        }
    }
    if (m->inline_len > MC_INLINE_MAX_BYTES) {
        return MC_ETOOLARGE;
    }
    return 0;
}

int mc_validate_object_meta_input(const struct mc_object_meta *m)
{
    mc_engine_clearerr(); /* the message, when there is one, is this call's */
    int rc = mc_validate_object_meta(m);
    if (rc) {
        return rc;
    }
    if (mc_validate_etag(m->etag)) {
        return MC_EINVAL;
    }
    for (uint32_t i = 0; i < m->n_parts; i++) {
        /* S3 part numbers are 1..10000 (UploadPart: InvalidArgument otherwise), listed in
           ascending order once each (CompleteMultipartUpload: InvalidPartOrder). */
        uint32_t num = m->parts[i].number;
        if (num < 1 || num > MC_PARTS_MAX) {
            return mc_engine_seterr(MC_EINVAL, "part number %" PRIu32 " is not in 1..%d", num,
                                    MC_PARTS_MAX);
        }
        if (i > 0 && num <= m->parts[i - 1].number) {
            return mc_engine_seterr(MC_EINVAL,
                                    "part number %" PRIu32 " follows %" PRIu32
                                    ": parts are listed in ascending order, each once",
                                    num, m->parts[i - 1].number);
        }
    }
    return 0;
}

int mc_validate_version_id(const char *vid)
{
    if (!vid || !*vid) {
        return MC_EINVAL;
    }
    size_t n = strlen(vid);
    if (n > MC_VERSION_ID_MAX) {
        return MC_EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (vid[i] <= 0x20 || vid[i] >= 0x7f) {
            return MC_EINVAL;
        }
    }
    return 0;
}

void mc_version_id_from_time(char out[17], int64_t time_ns)
{
    assert(time_ns >= 0);
    snprintf(out, 17, "%016" PRIx64, (uint64_t)time_ns);
}

void mc_version_id_make(char out[17], int64_t time_ns, uint64_t counter)
{
    /* 44 bits of microseconds then a 20-bit counter: ids sort roughly by time. */
    uint64_t us = (uint64_t)time_ns / 1000;
    uint64_t v = (us << 20) | (counter & 0xFFFFF);
    snprintf(out, 17, "%016" PRIx64, v);
}

/* ---- op constructors ---- */

static int set_bucket(struct mc_op *op, const char *bucket)
{
    if (!bucket || strlen(bucket) > MC_BUCKET_NAME_MAX) {
        return MC_EBUCKETNAME;
    }
    strcpy(op->bucket, bucket);
    return 0;
}

/* The constructors' shared preamble: a zeroed op of type, its bucket, key (copied; NULL = none)
 * and time. A bad bucket name still leaves a typed op (applying it answers MC_EBUCKETNAME, as
 * the S3 layer expects); nothing is allocated then. A key over MC_KEY_MAX_BYTES is refused here,
 * MC_EKEYTOOLONG (the op keeps it; applying answers the same): the op codec caps keys at that
 * length, so a sent op would come back as a protocol error instead of KeyTooLongError. */
static int op_init(struct mc_op *op, enum mc_op_type type, const char *bucket, const char *key,
                   int64_t time_ns)
{
    memset(op, 0, sizeof(*op));
    op->type = type;
    op->time_ns = time_ns;
    int rc = set_bucket(op, bucket);
    if (rc == 0 && key && !(op->key = strdup(key))) {
        rc = MC_ENOMEM;
    }
    if (rc == 0 && key && strlen(key) > MC_KEY_MAX_BYTES) {
        rc = MC_EKEYTOOLONG;
    }
    return rc;
}

/* Version ids past MC_VERSION_ID_MAX: MC_EINVAL (the codec caps them too, see op_init). */
static int check_vids(const char *a, const char *b)
{
    return (a && strlen(a) > MC_VERSION_ID_MAX) || (b && strlen(b) > MC_VERSION_ID_MAX) ? MC_EINVAL
                                                                                        : 0;
}

int mc_op_bucket_create(struct mc_op *op, const char *bucket, enum mc_versioning v, int64_t time_ns)
{
    int rc = op_init(op, MC_OP_BUCKET_CREATE, bucket, NULL, time_ns);
    op->versioning = v;
    return rc;
}

int mc_op_bucket_delete(struct mc_op *op, const char *bucket)
{
    return op_init(op, MC_OP_BUCKET_DELETE, bucket, NULL, 0);
}

int mc_op_bucket_versioning(struct mc_op *op, const char *bucket, enum mc_versioning v)
{
    int rc = op_init(op, MC_OP_BUCKET_VERSIONING, bucket, NULL, 0);
    op->versioning = v;
    return rc;
}

int mc_op_put(struct mc_op *op, const char *bucket, const char *key, const char *new_version_id,
              int64_t time_ns, const struct mc_object_meta *meta)
{
    int rc = op_init(op, MC_OP_PUT, bucket, key, time_ns);
    if (rc) {
        return rc;
    }
    DUP(op->new_version_id, new_version_id);
    if (meta && mc_object_meta_copy(&op->meta, meta)) {
        goto nomem;
    }
    return check_vids(new_version_id, NULL);
nomem:
    mc_op_clear(op);
    return MC_ENOMEM;
}

int mc_op_delete(struct mc_op *op, const char *bucket, const char *key, const char *version_id,
                 const char *new_version_id, int64_t time_ns)
{
    int rc = op_init(op, MC_OP_DELETE, bucket, key, time_ns);
    if (rc) {
        return rc;
    }
    DUP(op->version_id, version_id);
    DUP(op->new_version_id, new_version_id);
    return check_vids(version_id, new_version_id);
nomem:
    mc_op_clear(op);
    return MC_ENOMEM;
}

int mc_op_update_meta(struct mc_op *op, const char *bucket, const char *key, const char *version_id,
                      uint32_t update_mask, const struct mc_object_meta *meta, int64_t time_ns)
{
    int rc = op_init(op, MC_OP_UPDATE_META, bucket, key, time_ns);
    if (rc) {
        return rc;
    }
    op->update_mask = update_mask;
    DUP(op->version_id, version_id);
    if (meta && mc_object_meta_copy(&op->meta, meta)) {
        goto nomem;
    }
    return check_vids(version_id, NULL);
nomem:
    mc_op_clear(op);
    return MC_ENOMEM;
}

int mc_op_session_register(struct mc_op *op, int64_t time_ns)
{
    memset(op, 0, sizeof(*op));
    op->type = MC_OP_SESSION_REGISTER;
    op->time_ns = time_ns;
    return 0;
}

int mc_op_atomic(struct mc_op *op, struct mc_op *subs, uint32_t n)
{
    memset(op, 0, sizeof(*op));
    op->type = MC_OP_ATOMIC;
    if (n > MC_ATOMIC_MAX_OPS) {
        return MC_EINVAL;
    }
    if (n) {
        op->sub = calloc(n, sizeof(*op->sub));
        if (!op->sub) {
            return MC_ENOMEM;
        }
        memcpy(op->sub, subs, n * sizeof(*subs));
        memset(subs, 0, n * sizeof(*subs));
        op->n_sub = n;
        for (uint32_t i = 0; i < n; i++) {
            if (op->sub[i].time_ns > op->time_ns) {
                op->time_ns = op->sub[i].time_ns;
            }
        }
    }
    return 0;
}

void mc_op_clear(struct mc_op *op)
{
    if (op->meta.block) {
        free(op->meta.block); /* mc_op_decode_block: every string and array, sub-ops too */
        memset(op, 0, sizeof(*op));
        return;
    }
    free(op->key);
    free(op->version_id);
    free(op->new_version_id);
    free(op->if_match);
    mc_object_meta_clear(&op->meta);
    for (uint32_t i = 0; i < op->n_sub; i++) {
        mc_op_clear(&op->sub[i]);
    }
    free(op->sub);
    memset(op, 0, sizeof(*op));
}

int mc_op_copy(struct mc_op *dst, const struct mc_op *src)
{
    *dst = *src;
    dst->key = dst->version_id = dst->new_version_id = dst->if_match = NULL;
    dst->sub = NULL;
    dst->n_sub = 0;
    memset(&dst->meta, 0, sizeof(dst->meta));
    DUP(dst->key, src->key);
    DUP(dst->version_id, src->version_id);
    DUP(dst->new_version_id, src->new_version_id);
    DUP(dst->if_match, src->if_match);
    if (mc_object_meta_copy(&dst->meta, &src->meta)) {
        goto nomem;
    }
    if (src->n_sub) {
        dst->sub = calloc(src->n_sub, sizeof(*dst->sub));
        if (!dst->sub) {
            goto nomem;
        }
        for (uint32_t i = 0; i < src->n_sub; i++) {
            dst->n_sub = i + 1;
            if (mc_op_copy(&dst->sub[i], &src->sub[i])) {
                goto nomem;
            }
        }
    }
    return 0;
nomem:
    mc_op_clear(dst);
    return MC_ENOMEM;
}
