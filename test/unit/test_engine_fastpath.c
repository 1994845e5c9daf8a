/* test_engine_fastpath.c: the write path's shortcuts behave as the plain paths: mc_op_decode_block
 * equals mc_op_decode; the per-call bucket cache of apply sees bucket changes. */
#include "test_engine_util.h"
#include "util/codec.h"
#include "util/rand.h"

TestSuite(engine_fastpath, .timeout = 60);

static void full_meta(struct mc_object_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->size = 12345;
    m->etag = strdup("0123456789abcdef");
    m->content_type = strdup("text/plain");
    mc_object_meta_add_user(m, "x-amz-meta-a", "alpha");
    mc_object_meta_add_user(m, "x-amz-meta-b", "");
    m->storage_class = strdup("STANDARD");
    m->erasure.data_blocks = 4;
    m->erasure.parity_blocks = 2;
    m->erasure.n_distribution = 6;
    m->erasure.distribution = calloc(6, sizeof(uint32_t));
    m->erasure.distribution[5] = 9;
    m->data_dir = strdup("dd-1");
    m->n_parts = 2;
    m->parts = calloc(2, sizeof(*m->parts));
    m->parts[0] = (struct mc_part){1, 10, strdup("p1")};
    m->parts[1] = (struct mc_part){2, 20, NULL};
    m->checksum_algorithm = strdup("CRC32");
    m->checksum_value = strdup("abcd");
    m->inline_len = 4;
    m->inline_data = malloc(4);
    memcpy(m->inline_data, "data", 4);
}

/* Encode op, decode it both ways, check both re-encode to the same bytes. Returns the block op's
 * whether the block decoder used one block (false: it fell back to separate allocations). */
static bool same_both_ways(const struct mc_op *op)
{
    struct mc_wbuf w1, w2, w3;
    mc_wbuf_init(&w1, 0);
    mc_wbuf_init(&w2, 0);
    mc_wbuf_init(&w3, 0);
    cr_assert_eq(mc_op_encode(op, &w1), 0);
    struct mc_op a, b;
    cr_assert_eq(mc_op_decode(w1.data, w1.len, &a), 0);
    cr_assert_eq(mc_op_decode_block(w1.data, w1.len, &b), 0);
    bool block = b.meta.block != NULL;
    cr_assert_eq(mc_op_encode(&a, &w2), 0);
    cr_assert_eq(mc_op_encode(&b, &w3), 0);
    cr_assert_eq(w2.len, w1.len);
    cr_assert_eq(w3.len, w1.len);
    cr_assert_eq(memcmp(w1.data, w3.data, w1.len), 0, "block decode re-encodes differently");
    cr_assert_eq(b.type, op->type);
    cr_assert_eq(b.n_sub, op->n_sub);
    mc_op_clear(&a);
    mc_op_clear(&b);
    cr_assert_null(b.meta.block);
    /* Every truncation and trailing garbage is rejected, leaving *out empty. */
    for (size_t len = 0; len < w1.len; len++) {
        cr_assert_neq(mc_op_decode_block(w1.data, len, &b), 0, "truncated to %zu", len);
        cr_assert_null(b.key);
        cr_assert_null(b.meta.block);
    }
    mc_wbuf_u8(&w1, 0);
    cr_assert_eq(mc_op_decode_block(w1.data, w1.len, &b), MC_EPROTO);
    mc_wbuf_free(&w1);
    mc_wbuf_free(&w2);
    mc_wbuf_free(&w3);
    return block;
}

Test(engine_fastpath, put_delete_atomic_match_plain_decode)
{
    struct mc_object_meta m;
    full_meta(&m);
    struct mc_op put;
    cr_assert_eq(mc_op_put(&put, "bucket-a", "key/\xe2\x82\xac", "v1", 42, &m), 0);
    put.if_match = strdup("etag0");
    put.session_id = 7;
    put.seq = 3;
    put.acked_seq = 2;
    cr_assert(same_both_ways(&put), "a plain op decodes into one block");

    struct mc_op del;
    cr_assert_eq(mc_op_delete(&del, "bucket-a", "k", "v0", "v9", 9), 0);
    cr_assert(same_both_ways(&del));
    struct mc_op empty = {0};
    cr_assert(same_both_ways(&empty), "NOOP: no strings at all");

    struct mc_op subs[2], atomic;
    cr_assert_eq(mc_op_put(&subs[0], "bucket-a", "s0", "v", 1, &m), 0);
    cr_assert_eq(mc_op_delete(&subs[1], "bucket-a", "s1", NULL, "v2", 2), 0);
    cr_assert_eq(mc_op_atomic(&atomic, subs, 2), 0);
    (void)same_both_ways(&atomic); /* block or fallback: both must give the same op */

    /* Many small sub-ops: the sub-op array is the largest part of the block. */
    enum { N = 200 };
    struct mc_op many[N], big;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(mc_op_bucket_delete(&many[i], "b-1"), 0);
    }
    cr_assert_eq(mc_op_atomic(&big, many, N), 0);
    (void)same_both_ways(&big);

    mc_op_clear(&put);
    mc_op_clear(&del);
    mc_op_clear(&atomic);
    mc_op_clear(&big);
    mc_object_meta_clear(&m);
}

Test(engine_fastpath, corrupt_input_decodes_or_fails_cleanly)
{
    struct mc_object_meta m;
    full_meta(&m);
    struct mc_op put;
    cr_assert_eq(mc_op_put(&put, "bucket-a", "key", "v1", 42, &m), 0);
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    cr_assert_eq(mc_op_encode(&put, &w), 0);
    struct mc_rand r;
    mc_rand_seed(&r, 11);
    uint8_t *c = malloc(w.len);
    for (int k = 0; k < 2000; k++) {
        memcpy(c, w.data, w.len);
        int flips = 1 + (int)mc_rand_below(&r, 4);
        for (int f = 0; f < flips; f++) {
            c[mc_rand_below(&r, w.len)] = (uint8_t)mc_rand_next(&r);
        }
        struct mc_op a, b;
        int ra = mc_op_decode(c, w.len, &a);
        int rb = mc_op_decode_block(c, w.len, &b);
        cr_assert_eq(ra, rb, "both decoders agree on every input (flip %d)", k);
        mc_op_clear(&a);
        mc_op_clear(&b);
    }
    free(c);
    mc_wbuf_free(&w);
    mc_op_clear(&put);
    mc_object_meta_clear(&m);
}

/* apply.c caches the bucket record within one apply call: bucket changes in the same call must
 * be seen by the ops after them. */
Test(engine_fastpath, bucket_changes_seen_within_one_apply_call, .init = te_setup,
     .fini = te_teardown)
{
    cr_assert_eq(te_bucket("bk1", MC_VERSIONING_UNVERSIONED), 0);
    struct mc_op ops[7];
    struct mc_op_result res[7];
    mc_op_put(&ops[0], "bk1", "k1", "0000000000000001", 10, NULL);
    mc_op_bucket_versioning(&ops[1], "bk1", MC_VERSIONING_ENABLED);
    mc_op_put(&ops[2], "bk1", "k2", "0000000000000002", 11, NULL);
    mc_op_delete(&ops[3], "bk1", "k1", "null", NULL, 12);
    mc_op_delete(&ops[4], "bk1", "k2", "0000000000000002", NULL, 13);
    mc_op_bucket_delete(&ops[5], "bk1");
    cr_assert_eq(mc_engine_apply(te_eng, ++te_index, ops, 6, NULL, 0, res), 0);
    for (int i = 0; i < 6; i++) {
        cr_assert_eq(res[i].code, 0, "op %d: %s", i, mc_strerror(res[i].code));
        mc_op_clear(&ops[i]);
    }
    cr_assert_str_eq(res[0].version_id, "null", "unversioned put");
    cr_assert_str_eq(res[2].version_id, "0000000000000002", "versioning enabled in this call");
    /* The bucket is gone within the same call: a put after its deletion fails. */
    mc_op_bucket_create(&ops[0], "bk2", MC_VERSIONING_UNVERSIONED, 20);
    mc_op_put(&ops[1], "bk2", "k", "0000000000000003", 21, NULL);
    mc_op_bucket_delete(&ops[2], "bk2");
    mc_op_put(&ops[3], "bk2", "k", "0000000000000004", 22, NULL);
    mc_op_delete(&ops[4], "bk2", "k", NULL, NULL, 23);
    mc_op_bucket_delete(&ops[5], "bk2");
    mc_op_put(&ops[6], "bk2", "k", "0000000000000006", 24, NULL);
    cr_assert_eq(mc_engine_apply(te_eng, ++te_index, ops, 7, NULL, 0, res), 0);
    cr_assert_eq(res[0].code, 0);
    cr_assert_eq(res[1].code, 0);
    cr_assert_eq(res[2].code, MC_EBUCKETNOTEMPTY);
    cr_assert_eq(res[3].code, 0);
    cr_assert_eq(res[4].code, 0);
    cr_assert_eq(res[5].code, 0);
    cr_assert_eq(res[6].code, MC_ENOBUCKET, "deleted earlier in this call");
    for (int i = 0; i < 7; i++) {
        mc_op_clear(&ops[i]);
    }
    mc_op_put(&ops[0], "bk2", "k", "0000000000000005", 30, NULL);
    cr_assert_eq(te_apply(&ops[0], NULL), MC_ENOBUCKET, "deleted in the previous call");
}

/* apply.c caches session records within one call and writes them once: several ops of one
 * session in one call behave as in separate calls (duplicates, acks), and the stored record
 * carries on into the next call. */
Test(engine_fastpath, session_ops_within_one_apply_call, .init = te_setup, .fini = te_teardown)
{
    cr_assert_eq(te_bucket("bk1", MC_VERSIONING_UNVERSIONED), 0);
    struct mc_op reg;
    struct mc_op_result rr;
    mc_op_session_register(&reg, 5);
    cr_assert_eq(te_apply(&reg, &rr), 0);
    uint64_t sid = rr.session_id;
    struct mc_op ops[4];
    struct mc_op_result res[4];
    uint64_t seqs[4] = {1, 1, 2, 3}, acks[4] = {0, 0, 1, 1};
    for (int i = 0; i < 4; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%d", i);
        mc_op_put(&ops[i], "bk1", k, "0000000000000001", 10 + i, NULL);
        ops[i].session_id = sid;
        ops[i].seq = seqs[i];
        ops[i].acked_seq = acks[i];
    }
    cr_assert_eq(mc_engine_apply(te_eng, ++te_index, ops, 4, NULL, 0, res), 0);
    cr_assert_eq(res[0].code, 0);
    cr_assert_not(res[0].duplicate);
    cr_assert_eq(res[1].code, 0);
    cr_assert(res[1].duplicate, "seq 1 again in the same call: the cached result");
    cr_assert_eq(res[2].code, 0);
    cr_assert_not(res[2].duplicate);
    cr_assert_eq(res[3].code, 0);
    for (int i = 0; i < 4; i++) {
        mc_op_clear(&ops[i]);
    }
    /* Next call: seq 1 is acknowledged (acked 1 was seen), seq 3 is a duplicate. */
    mc_op_put(&ops[0], "bk1", "x", "0000000000000002", 20, NULL);
    ops[0].session_id = sid;
    ops[0].seq = 1;
    cr_assert_eq(te_apply(&ops[0], NULL), MC_EINVAL);
    mc_op_put(&ops[0], "bk1", "x", "0000000000000002", 21, NULL);
    ops[0].session_id = sid;
    ops[0].seq = 3;
    ops[0].acked_seq = 1;
    cr_assert_eq(te_apply(&ops[0], &rr), 0);
    cr_assert(rr.duplicate);
    mc_op_put(&ops[0], "bk1", "x", "0000000000000002", 22, NULL);
    ops[0].session_id = sid;
    ops[0].seq = 4;
    ops[0].acked_seq = 3;
    cr_assert_eq(te_apply(&ops[0], &rr), 0);
    cr_assert_not(rr.duplicate);
}

static void put_sized(const char *b, const char *k, const char *etag, uint32_t inline_len,
                      struct mc_op_result *res)
{
    struct mc_object_meta m = {0};
    m.etag = (char *)etag;
    m.size = inline_len;
    uint8_t *data = calloc(1, inline_len + 1);
    memset(data, 'd', inline_len);
    m.inline_data = inline_len ? data : NULL;
    m.inline_len = inline_len;
    char vid[17];
    te_next_vid(vid);
    struct mc_op op;
    cr_assert_eq(mc_op_put(&op, b, k, vid, 1000 + (int64_t)te_index, &m), 0);
    cr_assert_eq(te_apply(&op, res), 0);
    free(data);
}

static void expect_latest(const char *b, const char *k, const char *etag, uint64_t size)
{
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, b, k, NULL, true, &v), 0, "get %s", k);
    cr_assert_str_eq(v.meta.etag, etag);
    cr_assert_eq(v.meta.size, size);
    cr_assert_eq(v.meta.inline_len, size);
    mc_version_clear(&v);
    struct mc_list_params lp = {.prefix = k};
    struct mc_list_result lr;
    cr_assert_eq(mc_engine_list_objects(te_eng, b, &lp, &lr), 0);
    cr_assert_eq(lr.n_entries, 1);
    cr_assert_str_eq(lr.entries[0].meta.etag, etag);
    cr_assert_eq(lr.entries[0].meta.size, size);
    mc_list_result_clear(&lr);
}

/* Unversioned overwrites rewrite the version row in place (same seq, objects index untouched):
 * reads, listings, growing/shrinking records (overflow pages too) and a later switch to
 * versioning all see the newest content. */
Test(engine_fastpath, unversioned_overwrite_in_place, .init = te_setup, .fini = te_teardown)
{
    cr_assert_eq(te_bucket("bk1", MC_VERSIONING_UNVERSIONED), 0);
    struct mc_op_result r;
    uint32_t sizes[] = {1, 100, 3000, 10, 0, 20000, 5};
    char etag[16];
    for (unsigned i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        snprintf(etag, sizeof(etag), "e%u", i);
        put_sized("bk1", "k", etag, sizes[i], &r);
        cr_assert_str_eq(r.version_id, "null");
        expect_latest("bk1", "k", etag, sizes[i]);
    }
    struct mc_list_params lp = {0};
    struct mc_list_result lr;
    cr_assert_eq(mc_engine_list_versions(te_eng, "bk1", &lp, &lr), 0);
    cr_assert_eq(lr.n_entries, 1, "one version per key in an unversioned bucket");
    cr_assert_str_eq(lr.entries[0].version_id, "null");
    cr_assert_str_eq(lr.entries[0].meta.etag, "e6");
    mc_list_result_clear(&lr);
    /* Versioning on: a new version sorts before the overwritten null one. */
    cr_assert_eq(te_versioning("bk1", MC_VERSIONING_ENABLED), 0);
    put_sized("bk1", "k", "v1", 7, &r);
    char vid1[MC_VERSION_ID_MAX + 1];
    strcpy(vid1, r.version_id);
    expect_latest("bk1", "k", "v1", 7);
    cr_assert_eq(mc_engine_list_versions(te_eng, "bk1", &lp, &lr), 0);
    cr_assert_eq(lr.n_entries, 2);
    cr_assert_str_eq(lr.entries[0].version_id, vid1);
    cr_assert(lr.entries[0].is_latest);
    cr_assert_str_eq(lr.entries[1].version_id, "null");
    cr_assert_str_eq(lr.entries[1].meta.etag, "e6");
    mc_list_result_clear(&lr);
    /* Removing the new version makes the null one the latest again (objects index refreshed). */
    cr_assert_eq(te_del("bk1", "k", vid1, NULL), 0);
    expect_latest("bk1", "k", "e6", 5);
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bk1", "k", "null", false, &v), 0);
    cr_assert(v.is_latest);
    mc_version_clear(&v);
    /* Unversioned delete after overwrites removes the key. */
    cr_assert_eq(te_bucket("bk2", MC_VERSIONING_UNVERSIONED), 0);
    put_sized("bk2", "x", "a", 1, &r);
    put_sized("bk2", "x", "b", 2, &r);
    cr_assert_eq(te_del("bk2", "x", NULL, NULL), 0);
    cr_assert_eq(mc_engine_get(te_eng, "bk2", "x", NULL, false, &v), MC_ENOKEY);
    struct mc_list_params lp2 = {0};
    cr_assert_eq(mc_engine_list_objects(te_eng, "bk2", &lp2, &lr), 0);
    cr_assert_eq(lr.n_entries, 0);
    mc_list_result_clear(&lr);
}
