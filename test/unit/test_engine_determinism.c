/* test_engine_determinism.c: same op log → same state hash on every replica; codec round trips. */
#include "test_engine_gen.h"
#include "test_engine_util.h"
#include "util/codec.h"

TestSuite(engine_determinism, .timeout = 120);

#define DET_TTL_NS 100000 /* 100 µs of op time */

static struct mc_engine *open_tmp(char *dir, size_t n)
{
    te_mkdtemp(dir, n);
    /* A short TTL (op time advances ~0.5 µs per op) so sessions expire during the run. */
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .session_ttl_ns = DET_TTL_NS};
    struct mc_engine *e;
    cr_assert_eq(mc_engine_open(dir, &o, &e), 0);
    return e;
}

/* Apply n_ops random ops (seeded) in random batches to engines e[0..n_eng); return hash of e[0]. */
static uint64_t run_seq(uint64_t seed, size_t n_ops, struct mc_engine **e, int n_eng, int reopen_at,
                        const char *dir1)
{
    struct gen g;
    gen_init(&g, seed);
    struct mc_rand br;
    mc_rand_seed(&br, seed ^ 0x5eed);
    uint64_t index = 0;
    size_t done = 0;
    struct mc_op ops[64];
    struct mc_op_result res[2][64];
    int batches = 0;
    size_t errors = 0, ok = 0, dups = 0, expired = 0, acked_rej = 0;
    while (done < n_ops) {
        size_t b = 1 + mc_rand_below(&br, 40);
        if (b > n_ops - done) {
            b = n_ops - done;
        }
        for (size_t i = 0; i < b; i++) {
            gen_op(&g, &ops[i]);
        }
        index += 1 + mc_rand_below(&br, 3); /* gaps are allowed (conf entries elsewhere) */
        for (int k = 0; k < n_eng; k++) {
            cr_assert_eq(mc_engine_apply(e[k], index, ops, b, NULL, 0, res[k]), 0, "%s",
                         mc_engine_last_error());
        }
        for (size_t i = 0; i < b; i++) {
            for (int k = 1; k < n_eng; k++) {
                cr_assert_eq(memcmp(&res[0][i], &res[k][i], sizeof(res[0][i])), 0,
                             "results differ at op %zu", done + i);
            }
            if (ops[i].type == MC_OP_SESSION_REGISTER && res[0][i].code == 0) {
                gen_session(&g, res[0][i].session_id);
            }
            res[0][i].code ? errors++ : ok++;
            dups += res[0][i].duplicate;
            expired += ops[i].session_id && res[0][i].code == MC_ENOSESSION;
            acked_rej += ops[i].session_id && res[0][i].code == MC_EINVAL;
            mc_op_clear(&ops[i]);
        }
        done += b;
        if (++batches == reopen_at && n_eng > 1) {
            /* A replica that restarts mid-log must converge just the same. */
            mc_engine_close(e[1]);
            struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE,
                                          .session_ttl_ns = DET_TTL_NS};
            cr_assert_eq(mc_engine_open(dir1, &o, &e[1]), 0);
        }
    }
    cr_assert_gt(ok, n_ops / 4, "the workload must mostly succeed (ok=%zu err=%zu)", ok, errors);
    cr_assert_gt(errors, 0, "and exercise error paths");
    cr_assert(dups > 0 && expired > 0 && acked_rej > 0,
              "sessions: duplicates %zu, expired %zu, already-acked %zu", dups, expired, acked_rej);
    uint64_t h[2], ai[2];
    for (int k = 0; k < n_eng; k++) {
        cr_assert_eq(mc_engine_state_hash(e[k], &h[k], &ai[k]), 0);
        cr_assert_eq(ai[k], index);
    }
    if (n_eng > 1) {
        cr_assert_eq(h[0], h[1], "replicas diverged");
    }
    return h[0];
}

Test(engine_determinism, same_log_same_hash)
{
    char d0[256], d1[256], d2[256];
    struct mc_engine *e[2] = {open_tmp(d0, sizeof(d0)), open_tmp(d1, sizeof(d1))};
    uint64_t h1 = run_seq(42, 10000, e, 2, 100, d1);
    mc_engine_close(e[0]);
    mc_engine_close(e[1]);

    struct mc_engine *f[1] = {open_tmp(d2, sizeof(d2))};
    uint64_t h2 = run_seq(43, 10000, f, 1, -1, NULL);
    cr_assert_neq(h1, h2, "a different log must give a different hash");
    mc_engine_close(f[0]);
    te_rmrf(d0);
    te_rmrf(d1);
    te_rmrf(d2);
}

Test(engine_determinism, hash_tracks_content)
{
    te_setup();
    uint64_t h0, h1, h2, ai;
    cr_assert_eq(mc_engine_state_hash(te_eng, &h0, &ai), 0);
    cr_assert_eq(te_bucket("abc", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(mc_engine_state_hash(te_eng, &h1, &ai), 0);
    cr_assert_neq(h0, h1);
    cr_assert_eq(te_put("abc", "k", "e", NULL), 0);
    cr_assert_eq(te_del("abc", "k", NULL, NULL), 0);
    cr_assert_eq(mc_engine_state_hash(te_eng, &h2, &ai), 0);
    cr_assert_eq(h1, h2, "put then delete in an unversioned bucket leaves the same content");
    te_teardown();
}

/* ---- codec ---- */

static void fill_meta(struct mc_object_meta *m)
{
    memset(m, 0, sizeof(*m));
    m->size = 99;
    m->etag = strdup("etag");
    m->content_type = strdup("ct");
    mc_object_meta_add_user(m, "a", "1");
    mc_object_meta_add_user(m, "b", "2");
    m->storage_class = strdup("STD");
    m->erasure.data_blocks = 4;
    m->erasure.parity_blocks = 2;
    m->erasure.block_size = 4096;
    m->erasure.n_distribution = 3;
    m->erasure.distribution = calloc(3, sizeof(uint32_t));
    m->erasure.distribution[1] = 7;
    m->data_dir = strdup("dd");
    m->n_parts = 2;
    m->parts = calloc(2, sizeof(*m->parts));
    m->parts[0] = (struct mc_part){1, 10, strdup("p1")};
    m->parts[1] = (struct mc_part){2, 20, strdup("p2")};
    m->checksum_algorithm = strdup("CRC");
    m->checksum_value = strdup("abcd");
    m->inline_len = 3;
    m->inline_data = malloc(3);
    memcpy(m->inline_data, "xyz", 3);
}

static void all_ops(struct mc_op *ops, int *n)
{
    struct mc_object_meta m;
    fill_meta(&m);
    int i = 0;
    memset(&ops[i++], 0, sizeof(*ops)); /* NOOP */
    mc_op_bucket_create(&ops[i++], "bucket-a", MC_VERSIONING_ENABLED, 123);
    mc_op_bucket_delete(&ops[i++], "bucket-a");
    mc_op_bucket_versioning(&ops[i++], "bucket-a", MC_VERSIONING_SUSPENDED);
    mc_op_put(&ops[i], "bucket-a", "key/\xe2\x82\xac", "vid1", -5, &m);
    ops[i].if_match = strdup("etag0");
    ops[i].if_none_match_star = true;
    ops[i].session_id = 77;
    ops[i].seq = 3;
    ops[i++].acked_seq = 2;
    mc_op_delete(&ops[i++], "bucket-a", "k", "v0", "v1", 9);
    mc_op_update_meta(&ops[i++], "bucket-a", "k", NULL, MC_UPDATE_USER_META, &m, 10);
    mc_op_session_register(&ops[i++], 11);
    struct mc_op subs[2];
    mc_op_put(&subs[0], "bucket-a", "s0", "v", 1, &m);
    mc_op_delete(&subs[1], "bucket-a", "s1", NULL, "v2", 2);
    mc_op_atomic(&ops[i++], subs, 2);
    mc_object_meta_clear(&m);
    *n = i;
}

Test(engine_determinism, op_codec_round_trip_and_rejects)
{
    struct mc_op ops[16];
    int n;
    all_ops(ops, &n);
    cr_assert_eq(n, MC_OP_TYPE_MAX + 1, "one of every type");
    struct mc_rand r;
    mc_rand_seed(&r, 7);
    for (int i = 0; i < n; i++) {
        struct mc_wbuf w1, w2;
        mc_wbuf_init(&w1, 0);
        mc_wbuf_init(&w2, 0);
        cr_assert_eq(mc_op_encode(&ops[i], &w1), 0);
        /* Format 1 unless acked_seq is used (older readers keep working). */
        uint8_t ver = ops[i].acked_seq ? MC_OP_FORMAT_VERSION : 1;
        cr_assert_eq(w1.data[0], ver);
        struct mc_op d;
        cr_assert_eq(mc_op_decode(w1.data, w1.len, &d), 0, "type %d", i);
        cr_assert_eq(d.type, ops[i].type);
        cr_assert_eq(d.n_sub, ops[i].n_sub);
        cr_assert_eq(mc_op_encode(&d, &w2), 0);
        cr_assert_eq(w1.len, w2.len);
        cr_assert_eq(memcmp(w1.data, w2.data, w1.len), 0, "re-encode differs for type %d", i);
        if (ops[i].type == MC_OP_PUT) {
            cr_assert_str_eq(d.key, "key/\xe2\x82\xac");
            cr_assert_eq(d.meta.inline_len, 3);
            cr_assert_str_eq(d.meta.parts[1].etag, "p2");
            cr_assert_eq(d.session_id, 77);
            cr_assert_eq(d.time_ns, -5);
            cr_assert_eq(d.seq, 3);
            cr_assert_eq(d.acked_seq, 2);
        }
        mc_op_clear(&d);
        /* Every truncation is rejected. */
        for (size_t len = 0; len < w1.len; len++) {
            cr_assert_neq(mc_op_decode(w1.data, len, &d), 0, "type %d truncated to %zu", i, len);
            cr_assert_null(d.key);
        }
        /* Trailing garbage too. */
        uint8_t *big = malloc(w1.len + 1);
        memcpy(big, w1.data, w1.len);
        big[w1.len] = 0;
        cr_assert_eq(mc_op_decode(big, w1.len + 1, &d), MC_EPROTO);
        free(big);
        /* A newer format version byte. */
        w1.data[0] = 99;
        cr_assert_eq(mc_op_decode(w1.data, w1.len, &d), MC_EVERSION);
        w1.data[0] = 0;
        cr_assert_eq(mc_op_decode(w1.data, w1.len, &d), MC_EVERSION);
        w1.data[0] = ver;
        /* Random corruption: never a crash (ASan run checks memory), decodes or errors. */
        for (int k = 0; k < 300; k++) {
            uint8_t *c = malloc(w1.len);
            memcpy(c, w1.data, w1.len);
            int flips = 1 + (int)mc_rand_below(&r, 4);
            for (int f = 0; f < flips; f++) {
                c[mc_rand_below(&r, w1.len)] = (uint8_t)mc_rand_next(&r);
            }
            if (mc_op_decode(c, w1.len, &d) == 0) {
                mc_op_clear(&d);
            }
            free(c);
        }
        mc_wbuf_free(&w1);
        mc_wbuf_free(&w2);
        mc_op_clear(&ops[i]);
    }
    /* Length fields claiming huge counts are rejected before allocation. */
    uint8_t evil[64] = {MC_OP_FORMAT_VERSION, MC_OP_PUT};
    memset(evil + 2, 0xff, sizeof(evil) - 2);
    struct mc_op d;
    cr_assert_eq(mc_op_decode(evil, sizeof(evil), &d), MC_EPROTO);
}

Test(engine_determinism, read_codecs_round_trip)
{
    struct mc_version v = {0};
    strcpy(v.bucket, "bucket-a");
    v.key = strdup("k");
    v.version_id = strdup("vid");
    v.is_delete_marker = true;
    v.is_latest = true;
    v.mod_time_ns = 5;
    v.seq = 77;
    fill_meta(&v.meta);
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    cr_assert_eq(mc_version_encode(&v, &w), 0);
    struct mc_version d;
    cr_assert_eq(mc_version_decode(w.data, w.len, &d), 0);
    cr_assert_str_eq(d.bucket, "bucket-a");
    cr_assert_str_eq(d.version_id, "vid");
    cr_assert(d.is_delete_marker && d.is_latest);
    cr_assert_eq(d.meta.n_user_meta, 2);
    cr_assert_eq(d.meta.erasure.distribution[1], 7);
    mc_version_clear(&d);
    for (size_t len = 0; len < w.len; len++) {
        cr_assert_neq(mc_version_decode(w.data, len, &d), 0);
    }

    struct mc_list_result lr = {0};
    lr.entries = calloc(1, sizeof(*lr.entries));
    mc_version_copy(&lr.entries[0], &v);
    lr.n_entries = 1;
    lr.common_prefixes = calloc(1, sizeof(char *));
    lr.common_prefixes[0] = strdup("p/");
    lr.n_prefixes = 1;
    lr.key_count = 2;
    lr.is_truncated = true;
    lr.is_versions = true;
    lr.next_key_marker = strdup("km");
    lr.next_version_id_marker = strdup("vm");
    mc_wbuf_reset(&w);
    cr_assert_eq(mc_list_result_encode(&lr, &w), 0);
    struct mc_list_result ld;
    cr_assert_eq(mc_list_result_decode(w.data, w.len, &ld), 0);
    cr_assert_eq(ld.n_entries, 1);
    cr_assert_str_eq(ld.entries[0].key, "k");
    cr_assert_str_eq(ld.common_prefixes[0], "p/");
    cr_assert_eq(ld.key_count, 2);
    cr_assert(ld.is_truncated && ld.is_versions);
    cr_assert_str_eq(ld.next_version_id_marker, "vm");
    char *j1 = mc_list_result_json(&lr, 0), *j2 = mc_list_result_json(&ld, 0);
    cr_assert_str_eq(j1, j2);
    free(j1);
    free(j2);
    mc_list_result_clear(&ld);
    for (size_t len = 0; len < w.len; len++) {
        cr_assert_neq(mc_list_result_decode(w.data, len, &ld), 0);
    }
    mc_list_result_clear(&lr);

    struct mc_op_result res = {
        .code = MC_EPRECOND, .failed_op = 2, .delete_marker = true, .session_id = 9};
    strcpy(res.version_id, "abc");
    mc_wbuf_reset(&w);
    cr_assert_eq(mc_op_result_encode(&res, &w), 0);
    struct mc_op_result rd;
    cr_assert_eq(mc_op_result_decode(w.data, w.len, &rd), 0);
    cr_assert_eq(memcmp(&res, &rd, sizeof(res)), 0);
    cr_assert_neq(mc_op_result_decode(w.data, w.len - 1, &rd), 0);

    struct mc_bucket_info bs[2] = {{"aaa", 1, MC_VERSIONING_ENABLED}, {"bbb", 2, 0}};
    mc_wbuf_reset(&w);
    cr_assert_eq(mc_bucket_list_encode(bs, 2, &w), 0);
    struct mc_bucket_info *bd;
    size_t nb;
    cr_assert_eq(mc_bucket_list_decode(w.data, w.len, &bd, &nb), 0);
    cr_assert_eq(nb, 2);
    cr_assert_str_eq(bd[1].name, "bbb");
    cr_assert_eq(bd[0].versioning, MC_VERSIONING_ENABLED);
    free(bd);
    cr_assert_neq(mc_bucket_list_decode(w.data, w.len - 1, &bd, &nb), 0);
    mc_wbuf_free(&w);
    mc_version_clear(&v);
}
