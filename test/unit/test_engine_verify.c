/* test_engine_verify.c: record checksums (get, list, state hash) and the mc_engine_verify scan. */
#include "test_engine_util.h"

#include "util/codec.h"

#include <lmdb.h>

static void vsetup(void)
{
    te_setup();
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    char key[32], etag[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "dir/k%03d", i);
        snprintf(etag, sizeof(etag), "etag-%03d", i);
        cr_assert_eq(te_put("bkt", key, etag, NULL), 0);
    }
    cr_assert_eq(te_put("bkt", "target", "etag-target", NULL), 0);
    cr_assert_eq(te_del("bkt", "dir/k007", NULL, NULL), 0);
}

TestSuite(engine_verify, .init = vsetup, .fini = te_teardown);

static void reopen(void)
{
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE};
    int rc = mc_engine_open(te_dir, &o, &te_eng);
    cr_assert_eq(rc, 0, "reopen: %s", mc_engine_last_error());
}

/*
 * Close the engine and flip one byte of the value of the first record of sub-database `dbname`
 * whose key starts with pfx (at value offset `at`, from the end when negative), rewriting the
 * value through plain LMDB: its stored checksum trailer no longer matches. Then reopen.
 */
static void corrupt_record_closed(const char *dbname, const void *pfx, size_t pl, long at)
{
    te_damaged = true;
    mc_engine_close(te_eng);
    te_eng = NULL;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *c;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, te_dir, MDB_WRITEMAP, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, dbname, 0, &dbi), 0);
    cr_assert_eq(mdb_cursor_open(txn, dbi, &c), 0);
    MDB_val k = {pl, (void *)pfx}, v;
    cr_assert_eq(mdb_cursor_get(c, &k, &v, MDB_SET_RANGE), 0);
    cr_assert(k.mv_size >= pl && !memcmp(k.mv_data, pfx, pl), "no %s record with that prefix",
              dbname);
    uint8_t buf[4096];
    cr_assert(v.mv_size <= sizeof(buf) && v.mv_size > 0);
    memcpy(buf, v.mv_data, v.mv_size);
    size_t off = at < 0 ? v.mv_size - (size_t)(-at) : (size_t)at;
    cr_assert(off < v.mv_size);
    buf[off] ^= 0x20;
    MDB_val nv = {v.mv_size, buf};
    cr_assert_eq(mdb_cursor_put(c, &k, &nv, MDB_CURRENT), 0);
    mdb_cursor_close(c);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

static void corrupt_record(const char *dbname, const void *pfx, size_t pl, long at)
{
    corrupt_record_closed(dbname, pfx, pl, at);
    reopen();
}

static void assert_names(const char *table, const char *key)
{
    const char *e = mc_engine_last_error();
    cr_assert(strstr(e, "data.mdb"), "error does not name the file: %s", e);
    cr_assert(strstr(e, table), "error does not name table %s: %s", table, e);
    cr_assert(strstr(e, key), "error does not name key %s: %s", key, e);
}

static void progress(void *ctx, uint64_t done, uint64_t total)
{
    uint64_t *calls = ctx;
    cr_assert_leq(done, total);
    (*calls)++;
}

Test(engine_verify, healthy_engine_passes)
{
    uint64_t h1, h2, i1, i2, calls = 0;
    cr_assert_eq(mc_engine_state_hash(te_eng, &h1, &i1), 0);
    struct mc_engine_verify_report r = {.progress = progress, .progress_ctx = &calls};
    cr_assert_eq(mc_engine_verify(te_eng, &r), 0, "%s", mc_engine_last_error());
    /* 200 + 1 puts and a marker: versions, vids, objects rows, a bucket, the meta rows. */
    cr_assert_geq(r.records, 3 * 200, "records %llu", (unsigned long long)r.records);
    cr_assert_gt(r.pages, 2);
    cr_assert_eq(r.page_bytes, 4096);
    cr_assert_geq(calls, 1);
    /* The trailers are not part of the logical state: reopening gives the same hash. */
    mc_engine_close(te_eng);
    reopen();
    cr_assert_eq(mc_engine_state_hash(te_eng, &h2, &i2), 0);
    cr_assert_eq(h1, h2);
    cr_assert_eq(i1, i2);
    cr_assert_eq(mc_engine_verify(te_eng, NULL), 0);
}

Test(engine_verify, get_detects_checksum_mismatch)
{
    corrupt_record("versions", "bkt\0target\0", 11, 20);
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "target", NULL, true, &v), MC_ECORRUPT);
    assert_names("versions", "target");
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    bool dm;
    cr_assert_eq(mc_engine_get_encoded(te_eng, "bkt", "target", NULL, false, &w, &dm, NULL),
                 MC_ECORRUPT);
    mc_wbuf_free(&w);
    /* Other records are intact and still served. */
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "dir/k001", NULL, false, &v), 0);
    cr_assert_str_eq(v.meta.etag, "etag-001");
    mc_version_clear(&v);
}

Test(engine_verify, checksum_covers_the_trailer_too)
{
    corrupt_record("versions", "bkt\0target\0", 11, -1); /* a bit of the checksum itself */
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "target", NULL, false, &v), MC_ECORRUPT);
}

Test(engine_verify, list_detects_checksum_mismatch)
{
    corrupt_record("versions", "bkt\0dir/k100\0", 13, 30);
    struct mc_list_params p = {.prefix = "dir/"};
    struct mc_list_result r;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), MC_ECORRUPT);
    assert_names("versions", "dir/k100");
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &r), MC_ECORRUPT);
    assert_names("versions", "dir/k100");
    /* A page before the damage still lists. */
    p.max_keys = 50;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), 0);
    cr_assert_eq(r.n_entries, 50);
    mc_list_result_clear(&r);
}

Test(engine_verify, list_detects_corrupt_objects_index)
{
    corrupt_record("objects", "bkt\0dir/k150", 12, 3);
    struct mc_list_params p = {0};
    struct mc_list_result r;
    cr_assert_eq(mc_engine_list_objects(te_eng, "bkt", &p, &r), MC_ECORRUPT);
    assert_names("objects", "dir/k150");
}

Test(engine_verify, verify_and_state_hash_detect_mismatch)
{
    corrupt_record("vids", "bkt\0dir/k042\0", 13, 0);
    struct mc_engine_verify_report r = {0};
    cr_assert_eq(mc_engine_verify(te_eng, &r), MC_ECORRUPT);
    assert_names("vids", "dir/k042");
    uint64_t h, i;
    cr_assert_eq(mc_engine_state_hash(te_eng, &h, &i), MC_ECORRUPT);
}

Test(engine_verify, bucket_and_meta_records_are_checked)
{
    corrupt_record("buckets", "bkt", 3, 0);
    struct mc_bucket_info b;
    cr_assert_eq(mc_engine_bucket_head(te_eng, "bkt", &b), MC_ECORRUPT);
    assert_names("buckets", "bkt");
    corrupt_record("meta", "applied_index", 13, 0);
    uint64_t applied;
    cr_assert_eq(mc_engine_applied_index(te_eng, &applied), MC_ECORRUPT);
    assert_names("meta", "applied_index");
}

Test(engine_verify, flipped_format_marker_refuses_open)
{
    corrupt_record_closed("meta", "format", 6, 2);
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), MC_ECORRUPT);
    assert_names("meta", "format");
}

/* A byte flipped in the file itself (every copy of a key, as a bad disk would): found. */
Test(engine_verify, flipped_key_byte_in_file)
{
    te_damaged = true;
    mc_engine_close(te_eng);
    te_eng = NULL;
    char path[300];
    snprintf(path, sizeof(path), "%s/data.mdb", te_dir);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    char *data = malloc((size_t)n);
    fseek(f, 0, SEEK_SET);
    cr_assert_eq(fread(data, 1, (size_t)n, f), (size_t)n);
    int hits = 0;
    for (long i = 2 * 4096; i + 8 <= n; i++) {
        if (!memcmp(data + i, "dir/k123", 8)) {
            fseek(f, i + 5, SEEK_SET);
            fputc(data[i + 5] ^ 0x01, f); /* "k123" -> "k023": sorts among the wrong keys */
            hits++;
        }
    }
    fclose(f);
    free(data);
    cr_assert_gt(hits, 0);
    reopen();
    cr_assert_eq(mc_engine_verify(te_eng, NULL), MC_ECORRUPT);
    cr_assert(strstr(mc_engine_last_error(), "data.mdb"), "%s", mc_engine_last_error());
}

/* A free-list entry naming a page that holds live records (LMDB would hand it out again and
 * overwrite them): found by the page accounting, though every record is intact. */
Test(engine_verify, free_list_naming_a_live_page)
{
    te_damaged = true;
    mc_engine_close(te_eng);
    te_eng = NULL;
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi versions;
    MDB_cursor *fc, *vc;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    cr_assert_eq(mdb_env_open(env, te_dir, MDB_WRITEMAP, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "versions", 0, &versions), 0);
    cr_assert_eq(mdb_cursor_open(txn, 0, &fc), 0);
    cr_assert_eq(mdb_cursor_open(txn, versions, &vc), 0);
    MDB_val k, v, vk, vv;
    cr_assert_eq(mdb_cursor_get(fc, &k, &v, MDB_FIRST), 0, "the free list is empty");
    cr_assert_eq(mdb_cursor_get(vc, &vk, &vv, MDB_FIRST), 0);
    /* The live leaf page holding the first version record: its header starts with its number. */
    uintptr_t page = (uintptr_t)vk.mv_data & ~(uintptr_t)4095;
    size_t live;
    memcpy(&live, (const void *)page, sizeof(live));
    size_t *ids = v.mv_data; /* ids[0] = count, then page numbers; WRITEMAP: the map is writable */
    cr_assert_geq(ids[0], 1);
    ids[1] = live;
    mdb_cursor_close(fc);
    mdb_cursor_close(vc);
    mdb_txn_abort(txn);
    cr_assert_eq(mdb_env_sync(env, 1), 0);
    mdb_env_close(env);
    reopen();
    cr_assert_eq(mc_engine_verify(te_eng, NULL), MC_ECORRUPT);
    const char *e = mc_engine_last_error();
    cr_assert(strstr(e, "data.mdb") && strstr(e, "free list"), "%s", e);
    /* Every record still reads fine: only the scan can tell. */
    struct mc_version ver;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "target", NULL, false, &ver), 0);
    mc_version_clear(&ver);
}
