/* fuzz_op.c: libFuzzer target for the engine's record codecs (ops, results, versions, listings). */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_op_block.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"

/*
 * Input: one selector byte (which codec, modulo FUZZ_OP_KINDS) then the record bytes, so one
 * corpus covers every decoder. Properties checked on every accepted record:
 *  - decode never crashes, leaks or reads out of bounds (ASan/UBSan/LeakSanitizer);
 *  - a rejected record leaves the output cleared (the header's contract);
 *  - re-encoding the decoded value gives back exactly the input bytes (the codecs are
 *    canonical, so a replica re-encoding a log entry produces the same bytes);
 *  - deep copies encode identically, and the JSON renderers accept whatever decoded;
 *  - op records: mc_op_decode_block agrees with mc_op_decode, and a stamped, re-encoded op
 *    block-decodes back to itself (fuzz_op_block.h).
 */
enum { K_OP, K_RESULT, K_VERSION, K_LIST, K_BUCKETS, FUZZ_OP_KINDS };

#define is_zero fuzz_is_zero

/* What apply would check first; only exercised here (return values are input-dependent). */
static void validate_meta(const struct mc_object_meta *m)
{
    int rc = mc_validate_object_meta(m);
    FUZZ_ASSERT(rc == 0 || rc == MC_EMETATOOLARGE || rc == MC_ETOOLARGE || rc == MC_EINVAL,
                "mc_validate_object_meta returned %d", rc);
}

static void check_op_invariants(const struct mc_op *op, int depth)
{
    FUZZ_ASSERT((unsigned)op->type <= MC_OP_TYPE_MAX, "type %d", (int)op->type);
    FUZZ_ASSERT(strlen(op->bucket) <= MC_BUCKET_NAME_MAX, "bucket length");
    FUZZ_ASSERT(!op->key || (strlen(op->key) > 0 && strlen(op->key) <= MC_KEY_MAX_BYTES),
                "key length");
    FUZZ_ASSERT(!op->version_id || strlen(op->version_id) <= MC_VERSION_ID_MAX, "version_id");
    FUZZ_ASSERT(!op->new_version_id || strlen(op->new_version_id) <= MC_VERSION_ID_MAX,
                "new_version_id");
    FUZZ_ASSERT(op->meta.n_user_meta <= MC_USER_META_MAX_PAIRS, "user meta pairs");
    FUZZ_ASSERT(op->meta.n_parts <= MC_PARTS_MAX, "parts");
    FUZZ_ASSERT(op->meta.erasure.n_distribution <= MC_DISTRIBUTION_MAX, "distribution");
    FUZZ_ASSERT(op->meta.inline_len <= MC_INLINE_MAX_BYTES, "inline_len");
    FUZZ_ASSERT(depth == 0 ? op->n_sub <= MC_ATOMIC_MAX_OPS : op->n_sub == 0,
                "n_sub %u at depth %d", op->n_sub, depth);
    FUZZ_ASSERT((op->n_sub == 0) == (op->sub == NULL), "sub array vs count");
    (void)mc_op_type_name(op->type);
    (void)mc_validate_bucket_name(op->bucket);
    if (op->key) {
        (void)mc_validate_key(op->key, strlen(op->key));
    }
    validate_meta(&op->meta);
    for (uint32_t i = 0; i < op->n_sub; i++) {
        check_op_invariants(&op->sub[i], depth + 1);
    }
}

static void fuzz_op(const uint8_t *in, size_t len)
{
    struct mc_op op;
    memset(&op, 0xA5, sizeof(op)); /* the decoder must not depend on *out being zeroed */
    int rc = mc_op_decode(in, len, &op);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_EPROTO || rc == MC_EVERSION || rc == MC_ENOMEM, "rc %d", rc);
        FUZZ_ASSERT(is_zero(&op, sizeof(op)), "rejected op not cleared (rc %d)", rc);
        fuzz_check_op_block(in, len, rc, NULL);
        return;
    }
    check_op_invariants(&op, 0);
    fuzz_check_op_block(in, len, 0, &op);

    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    rc = mc_op_encode(&op, &w);
    FUZZ_ASSERT(rc == 0, "encode of a decoded op failed: %d", rc);
    /*
     * Op records have two formats (engine.h): 2 adds acked_seq, and the encoder writes 1
     * whenever every acked_seq is 0. So a format-2 record with acked_seq 0 (or an atomic whose
     * sub-records mix formats) legitimately re-encodes differently; then the re-encoding must
     * be a fixed point instead. Same format throughout: byte-identical.
     */
    if (w.data[0] == in[0] && op.n_sub == 0) {
        FUZZ_ASSERT_SAME_BYTES("op", &w, in, len);
    } else if (fuzz_first_diff(w.data, w.len, in, len) >= 0) {
        struct mc_op again;
        rc = mc_op_decode(w.data, w.len, &again);
        FUZZ_ASSERT(rc == 0, "the re-encoding of an accepted op does not decode: %d", rc);
        struct mc_wbuf w3;
        mc_wbuf_init(&w3, 0);
        FUZZ_ASSERT(mc_op_encode(&again, &w3) == 0, "encode");
        FUZZ_ASSERT_SAME_BYTES("op (format-normalised fixed point)", &w3, w.data, w.len);
        /* Normalising drops acked_seq (8 bytes) from format-2 records whose acked_seq is 0,
         * but when one record of an atomic needs format 2 every record gets it, so a format-1
         * record mixed into a format-2 atomic grows by 8 (the encoder never mixes formats;
         * only a crafted record does). BUGS.md #6. */
        FUZZ_ASSERT(w.len <= len + 8 * (1 + (size_t)op.n_sub),
                    "normalising the format grew the record by more than acked_seq fields");
        mc_wbuf_free(&w3);
        mc_op_clear(&again);
    }

    struct mc_op copy = {0};
    rc = mc_op_copy(&copy, &op);
    FUZZ_ASSERT(rc == 0, "mc_op_copy: %d", rc);
    struct mc_wbuf w2;
    mc_wbuf_init(&w2, 0);
    FUZZ_ASSERT(mc_op_encode(&copy, &w2) == 0, "encode of the copy failed");
    FUZZ_ASSERT_SAME_BYTES("op copy", &w2, w.data, w.len);

    mc_wbuf_free(&w2);
    mc_wbuf_free(&w);
    mc_op_clear(&copy);
    mc_op_clear(&op);
    FUZZ_ASSERT(is_zero(&op, sizeof(op)), "mc_op_clear leaves a zero op");
}

static void fuzz_result(const uint8_t *in, size_t len)
{
    struct mc_op_result res;
    memset(&res, 0xA5, sizeof(res));
    int rc = mc_op_result_decode(in, len, &res);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_EPROTO || rc == MC_ENOMEM, "rc %d", rc);
        FUZZ_ASSERT(is_zero(&res, sizeof(res)), "rejected result not cleared");
        return;
    }
    FUZZ_ASSERT(memchr(res.version_id, 0, sizeof(res.version_id)) != NULL, "unterminated id");
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    FUZZ_ASSERT(mc_op_result_encode(&res, &w) == 0, "encode failed");
    FUZZ_ASSERT_SAME_BYTES("op result", &w, in, len);
    mc_wbuf_free(&w);
    /* Arbitrary codes reach mc_strerror through the JSON renderer. */
    char *j = mc_op_result_json(&res, MC_JSON_COMPACT);
    FUZZ_ASSERT(j != NULL, "mc_op_result_json returned NULL");
    free(j);
    (void)mc_strerror(res.code);
    (void)mc_error_name(res.code);
    (void)mc_error_http_status(res.code);
}

static void fuzz_version(const uint8_t *in, size_t len)
{
    struct mc_version v;
    memset(&v, 0xA5, sizeof(v));
    int rc = mc_version_decode(in, len, &v);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_EPROTO || rc == MC_ENOMEM, "rc %d", rc);
        FUZZ_ASSERT(is_zero(&v, sizeof(v)), "rejected version not cleared");
        return;
    }
    FUZZ_ASSERT(strlen(v.bucket) <= MC_BUCKET_NAME_MAX, "bucket length");
    validate_meta(&v.meta);
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    FUZZ_ASSERT(mc_version_encode(&v, &w) == 0, "encode failed");
    FUZZ_ASSERT_SAME_BYTES("version", &w, in, len);

    struct mc_version copy;
    FUZZ_ASSERT(mc_version_copy(&copy, &v) == 0, "mc_version_copy failed");
    mc_wbuf_reset(&w);
    FUZZ_ASSERT(mc_version_encode(&copy, &w) == 0, "encode of the copy failed");
    FUZZ_ASSERT_SAME_BYTES("version copy", &w, in, len);
    mc_wbuf_free(&w);

    char *j = mc_version_json(&v, MC_JSON_PRETTY);
    FUZZ_ASSERT(j != NULL, "mc_version_json returned NULL");
    free(j);
    mc_version_clear(&copy);
    mc_version_clear(&v);
}

static void fuzz_list(const uint8_t *in, size_t len)
{
    struct mc_list_result lr;
    memset(&lr, 0xA5, sizeof(lr));
    int rc = mc_list_result_decode(in, len, &lr);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_EPROTO || rc == MC_ENOMEM, "rc %d", rc);
        FUZZ_ASSERT(is_zero(&lr, sizeof(lr)), "rejected list result not cleared");
        return;
    }
    FUZZ_ASSERT(lr.key_count == lr.n_entries + lr.n_prefixes, "key_count");
    FUZZ_ASSERT(lr.key_count <= MC_LIST_MAX_KEYS, "key_count %u over the limit", lr.key_count);
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    FUZZ_ASSERT(mc_list_result_encode(&lr, &w) == 0, "encode failed");
    FUZZ_ASSERT_SAME_BYTES("list result", &w, in, len);
    mc_wbuf_free(&w);
    char *j = mc_list_result_json(&lr, MC_JSON_COMPACT);
    FUZZ_ASSERT(j != NULL, "mc_list_result_json returned NULL");
    free(j);
    mc_list_result_clear(&lr);
}

static void fuzz_buckets(const uint8_t *in, size_t len)
{
    struct mc_bucket_info *b = (struct mc_bucket_info *)1;
    size_t n = 12345;
    int rc = mc_bucket_list_decode(in, len, &b, &n);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_EPROTO || rc == MC_ENOMEM, "rc %d", rc);
        FUZZ_ASSERT(b == NULL && n == 0, "rejected bucket list not cleared");
        return;
    }
    FUZZ_ASSERT((n == 0) == (b == NULL), "array vs count");
    for (size_t i = 0; i < n; i++) {
        FUZZ_ASSERT(memchr(b[i].name, 0, sizeof(b[i].name)) != NULL, "unterminated name");
        FUZZ_ASSERT((unsigned)b[i].versioning <= MC_VERSIONING_SUSPENDED, "versioning");
        (void)mc_versioning_name(b[i].versioning);
    }
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    FUZZ_ASSERT(mc_bucket_list_encode(b, n, &w) == 0, "encode failed");
    FUZZ_ASSERT_SAME_BYTES("bucket list", &w, in, len);
    mc_wbuf_free(&w);
    char *j = mc_bucket_list_json(b, n, MC_JSON_COMPACT);
    FUZZ_ASSERT(j != NULL, "mc_bucket_list_json returned NULL");
    free(j);
    if (n) {
        j = mc_bucket_json(&b[0], MC_JSON_PRETTY);
        FUZZ_ASSERT(j != NULL, "mc_bucket_json returned NULL");
        free(j);
    }
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    switch (data[0] % FUZZ_OP_KINDS) {
    case K_OP:
        fuzz_op(in, len);
        break;
    case K_RESULT:
        fuzz_result(in, len);
        break;
    case K_VERSION:
        fuzz_version(in, len);
        break;
    case K_LIST:
        fuzz_list(in, len);
        break;
    default:
        fuzz_buckets(in, len);
        break;
    }
    return 0;
}
