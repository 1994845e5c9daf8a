/* fuzz_op_block.h: holds mc_op_decode_block (node write/apply decoder) to mc_op_decode. */
#ifndef MC_FUZZ_OP_BLOCK_H
#define MC_FUZZ_OP_BLOCK_H

#include "fuzz_common.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/checksum.h"

/*
 * The node decodes every single-op WRITE and every op of every applied log entry with
 * mc_op_decode_block (src/node/node_write.c), one arena for all strings and arrays, while the
 * other paths use mc_op_decode. Both share op_read, so they must agree on every input: same
 * return code, and when accepted, field-for-field the same op. Then the batcher's path: the
 * leader stamps time, version id and session fields into the decoded op (a block op gets its
 * new version id from a buffer outside the block), re-encodes it into the log entry, and every
 * replica block-decodes that entry again: that must give back the stamped op.
 */

static inline int fuzz_is_zero(const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        if (b[i]) {
            return 0;
        }
    }
    return 1;
}

#define FUZZ_SAME_STR(what, a, b)                                                                  \
    FUZZ_ASSERT(fuzz_str_eq((a), (b)), "%s: \"%s\" vs \"%s\"", (what), (a) ? (a) : "(null)",       \
                (b) ? (b) : "(null)")

static inline void fuzz_meta_equal(const struct mc_object_meta *a, const struct mc_object_meta *b)
{
    FUZZ_ASSERT(a->size == b->size, "meta size");
    FUZZ_SAME_STR("etag", a->etag, b->etag);
    FUZZ_SAME_STR("content_type", a->content_type, b->content_type);
    FUZZ_SAME_STR("storage_class", a->storage_class, b->storage_class);
    FUZZ_SAME_STR("data_dir", a->data_dir, b->data_dir);
    FUZZ_SAME_STR("checksum_algorithm", a->checksum_algorithm, b->checksum_algorithm);
    FUZZ_SAME_STR("checksum_value", a->checksum_value, b->checksum_value);
    FUZZ_ASSERT(a->n_user_meta == b->n_user_meta, "n_user_meta %u vs %u", a->n_user_meta,
                b->n_user_meta);
    FUZZ_ASSERT((a->user_meta == NULL) == (b->user_meta == NULL), "user_meta array");
    for (uint32_t i = 0; i < a->n_user_meta; i++) {
        FUZZ_SAME_STR("user meta key", a->user_meta[i].key, b->user_meta[i].key);
        FUZZ_SAME_STR("user meta value", a->user_meta[i].value, b->user_meta[i].value);
    }
    FUZZ_ASSERT(a->erasure.data_blocks == b->erasure.data_blocks &&
                    a->erasure.parity_blocks == b->erasure.parity_blocks &&
                    a->erasure.block_size == b->erasure.block_size &&
                    a->erasure.n_distribution == b->erasure.n_distribution,
                "erasure");
    FUZZ_ASSERT((a->erasure.distribution == NULL) == (b->erasure.distribution == NULL),
                "distribution array");
    for (uint32_t i = 0; i < a->erasure.n_distribution; i++) {
        FUZZ_ASSERT(a->erasure.distribution[i] == b->erasure.distribution[i], "distribution[%u]",
                    i);
    }
    FUZZ_ASSERT(a->n_parts == b->n_parts, "n_parts %u vs %u", a->n_parts, b->n_parts);
    FUZZ_ASSERT((a->parts == NULL) == (b->parts == NULL), "parts array");
    for (uint32_t i = 0; i < a->n_parts; i++) {
        FUZZ_ASSERT(a->parts[i].number == b->parts[i].number &&
                        a->parts[i].size == b->parts[i].size,
                    "part %u", i);
        FUZZ_SAME_STR("part etag", a->parts[i].etag, b->parts[i].etag);
    }
    FUZZ_ASSERT(a->inline_len == b->inline_len, "inline_len %u vs %u", a->inline_len,
                b->inline_len);
    FUZZ_ASSERT((a->inline_data == NULL) == (b->inline_data == NULL), "inline_data");
    FUZZ_ASSERT(a->inline_len == 0 || memcmp(a->inline_data, b->inline_data, a->inline_len) == 0,
                "inline bytes");
}

/* Every field of two ops (sub-ops too) is equal; the block pointer is not compared. */
static inline void fuzz_op_equal(const struct mc_op *a, const struct mc_op *b)
{
    FUZZ_ASSERT(a->type == b->type, "type %d vs %d", (int)a->type, (int)b->type);
    FUZZ_ASSERT(a->session_id == b->session_id && a->seq == b->seq && a->acked_seq == b->acked_seq,
                "session fields");
    FUZZ_ASSERT(a->time_ns == b->time_ns, "time_ns");
    FUZZ_ASSERT(strcmp(a->bucket, b->bucket) == 0, "bucket \"%s\" vs \"%s\"", a->bucket, b->bucket);
    FUZZ_SAME_STR("key", a->key, b->key);
    FUZZ_SAME_STR("version_id", a->version_id, b->version_id);
    FUZZ_SAME_STR("new_version_id", a->new_version_id, b->new_version_id);
    FUZZ_SAME_STR("if_match", a->if_match, b->if_match);
    FUZZ_ASSERT(a->if_none_match_star == b->if_none_match_star && a->versioning == b->versioning &&
                    a->update_mask == b->update_mask,
                "flags");
    fuzz_meta_equal(&a->meta, &b->meta);
    FUZZ_ASSERT(a->n_sub == b->n_sub, "n_sub %u vs %u", a->n_sub, b->n_sub);
    FUZZ_ASSERT((a->sub == NULL) == (b->sub == NULL), "sub array");
    for (uint32_t i = 0; i < a->n_sub; i++) {
        fuzz_op_equal(&a->sub[i], &b->sub[i]);
    }
}

/* What the node's stamp() does (src/node/node_write.c), with the session fields it sets just
 * before: time, version ids (a block op's from vidbuf), sub-op times, session/seq/acked_seq. */
static inline void fuzz_stamp(struct mc_op *op, int64_t now, char vidbuf[17], uint64_t sid,
                              uint64_t seq, uint64_t acked)
{
    op->session_id = sid;
    op->seq = seq;
    op->acked_seq = acked < seq ? acked : 0;
    op->time_ns = now;
    if (op->type == MC_OP_PUT || op->type == MC_OP_DELETE) {
        char vid[17];
        mc_version_id_from_time(vid, now);
        if (op->meta.block) {
            FUZZ_ASSERT(op->n_sub == 0, "the node block-stamps only ops without sub-ops");
            memcpy(vidbuf, vid, sizeof(vid));
            op->new_version_id = vidbuf;
        } else {
            free(op->new_version_id);
            op->new_version_id = strdup(vid);
            FUZZ_ASSERT(op->new_version_id, "strdup");
        }
    }
    for (uint32_t i = 0; i < op->n_sub; i++) {
        struct mc_op *s = &op->sub[i];
        s->time_ns = now + 1 + (int64_t)i;
        if (s->type == MC_OP_PUT || s->type == MC_OP_DELETE) {
            char vid[17];
            mc_version_id_from_time(vid, s->time_ns);
            free(s->new_version_id);
            s->new_version_id = strdup(vid);
            FUZZ_ASSERT(s->new_version_id, "strdup");
        }
    }
    if (op->n_sub) {
        op->time_ns = now + op->n_sub;
    }
}

/*
 * The batcher's re-encode path for an accepted record `in` (ref: its mc_op_decode result,
 * which this may not change): decode_block → stamp → mc_op_encode → decode_block again must
 * give the stamped op. An ATOMIC is decoded field by field for stamping, as the node does.
 */
static inline void fuzz_check_stamp_roundtrip(const uint8_t *in, size_t len)
{
    uint64_t h = mc_checksum64(in, len);
    struct mc_op op;
    int rc = mc_op_decode_block(in, len, &op);
    FUZZ_ASSERT(rc == 0, "decode_block of an accepted record: %d", rc);
    if (op.n_sub) {
        mc_op_clear(&op);
        FUZZ_ASSERT(mc_op_decode(in, len, &op) == 0, "decode");
    }
    char vidbuf[17];
    /* Times as the node makes them (wall-clock ns; ≥ 0), session fields from the input hash:
     * half the records get acked_seq 0 (format 1), half a non-zero one (format 2). */
    int64_t now = (int64_t)(h >> 2) & INT64_C(0x0fffffffffffffff);
    uint64_t seq = (h >> 8) & 0xffffff;
    fuzz_stamp(&op, now, vidbuf, h & 1 ? 0 : h >> 40, seq, h & 2 ? seq - 1 : 0);
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    rc = mc_op_encode(&op, &w);
    /* Stamping adds at most a version id per record and acked_seq per record. */
    FUZZ_ASSERT(rc == 0 || (rc == MC_ETOOLARGE &&
                            len + (size_t)(16 + 8) * (1 + op.n_sub) > MC_OP_MAX_BYTES),
                "encode of a stamped op (%zu bytes decoded): %d", len, rc);
    if (rc == 0) {
        struct mc_op again;
        memset(&again, 0x5A, sizeof(again));
        rc = mc_op_decode_block(w.data, w.len, &again);
        FUZZ_ASSERT(rc == 0, "the stamped op's record does not block-decode: %d", rc);
        fuzz_op_equal(&op, &again);
        struct mc_wbuf w2;
        mc_wbuf_init(&w2, 0);
        FUZZ_ASSERT(mc_op_encode(&again, &w2) == 0, "encode again");
        FUZZ_ASSERT_SAME_BYTES("stamped op re-encoding", &w2, w.data, w.len);
        mc_wbuf_free(&w2);
        mc_op_clear(&again);
    }
    mc_wbuf_free(&w);
    mc_op_clear(&op);
}

/*
 * Block-decode `in` and hold it to what mc_op_decode gave for the same bytes (ref_rc, and ref
 * when ref_rc == 0): same code; a refusal leaves the op cleared; an accepted op is equal field
 * by field, its sub-ops hold no block of their own (mc_op_clear frees only the top one), it
 * encodes to the same bytes, and the stamp/re-encode round trip holds.
 */
static inline void fuzz_check_op_block(const uint8_t *in, size_t len, int ref_rc,
                                       const struct mc_op *ref)
{
    struct mc_op b;
    memset(&b, 0xA5, sizeof(b)); /* must not depend on *out being zeroed */
    int rc = mc_op_decode_block(in, len, &b);
    FUZZ_ASSERT(rc == ref_rc, "mc_op_decode_block returned %d, mc_op_decode %d", rc, ref_rc);
    if (rc != 0) {
        FUZZ_ASSERT(fuzz_is_zero(&b, sizeof(b)), "rejected block op not cleared (rc %d)", rc);
        return;
    }
    fuzz_op_equal(ref, &b);
    for (uint32_t i = 0; i < b.n_sub; i++) {
        FUZZ_ASSERT(b.sub[i].meta.block == NULL, "sub-op %u has a block of its own", i);
    }
    struct mc_wbuf wr, wb;
    mc_wbuf_init(&wr, 0);
    mc_wbuf_init(&wb, 0);
    FUZZ_ASSERT(mc_op_encode(ref, &wr) == 0 && mc_op_encode(&b, &wb) == 0, "encode");
    FUZZ_ASSERT_SAME_BYTES("block-decoded op", &wb, wr.data, wr.len);
    mc_wbuf_free(&wr);
    mc_wbuf_free(&wb);
    /* A copy of a block op owns its fields (no block) and is equal. */
    struct mc_op copy;
    FUZZ_ASSERT(mc_op_copy(&copy, &b) == 0, "mc_op_copy of a block op");
    FUZZ_ASSERT(copy.meta.block == NULL, "copy shares the block");
    fuzz_op_equal(&b, &copy);
    mc_op_clear(&copy);
    mc_op_clear(&b);
    FUZZ_ASSERT(fuzz_is_zero(&b, sizeof(b)), "mc_op_clear leaves a zero block op");
    fuzz_check_stamp_roundtrip(in, len);
}

#endif
