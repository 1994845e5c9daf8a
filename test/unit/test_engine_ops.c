/* test_engine_ops.c: engine operations and their errors: buckets, put/get/delete, versioning,
 * batches. */
#include "test_engine_util.h"
#include "util/codec.h"

#include <lmdb.h>

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(engine_ops, .init = te_setup, .fini = te_teardown);

Test(engine_ops, bucket_lifecycle)
{
    cr_assert_eq(te_bucket("photos", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(te_bucket("photos", MC_VERSIONING_UNVERSIONED), MC_EBUCKETEXISTS);
    cr_assert_eq(te_bucket("alpha", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(te_bucket("zeta.logs", MC_VERSIONING_UNVERSIONED), 0);

    struct mc_bucket_info bi;
    cr_assert_eq(mc_engine_bucket_head(te_eng, "alpha", &bi), 0);
    cr_assert_str_eq(bi.name, "alpha");
    cr_assert_eq(bi.versioning, MC_VERSIONING_ENABLED);
    cr_assert_eq(bi.created_ns, 1000);
    cr_assert_eq(mc_engine_bucket_head(te_eng, "nope", &bi), MC_ENOBUCKET);

    struct mc_bucket_info *list;
    size_t n;
    cr_assert_eq(mc_engine_bucket_list(te_eng, &list, &n), 0);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(list[0].name, "alpha");
    cr_assert_str_eq(list[1].name, "photos");
    cr_assert_str_eq(list[2].name, "zeta.logs");
    free(list);

    /* Not empty → refuse; empty → removed. */
    cr_assert_eq(te_put("photos", "a.jpg", "e1", NULL), 0);
    struct mc_op op;
    mc_op_bucket_delete(&op, "photos");
    cr_assert_eq(te_apply(&op, NULL), MC_EBUCKETNOTEMPTY);
    cr_assert_eq(te_del("photos", "a.jpg", NULL, NULL), 0);
    mc_op_bucket_delete(&op, "photos");
    cr_assert_eq(te_apply(&op, NULL), 0);
    cr_assert_eq(mc_engine_bucket_head(te_eng, "photos", &bi), MC_ENOBUCKET);
    mc_op_bucket_delete(&op, "photos");
    cr_assert_eq(te_apply(&op, NULL), MC_ENOBUCKET);
}

Test(engine_ops, bucket_delete_blocked_by_delete_marker)
{
    cr_assert_eq(te_bucket("vers", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(te_del("vers", "ghost", NULL, NULL), 0); /* a marker for a missing key */
    struct mc_op op;
    mc_op_bucket_delete(&op, "vers");
    cr_assert_eq(te_apply(&op, NULL), MC_EBUCKETNOTEMPTY);
}

Test(engine_ops, bucket_names)
{
    const char *bad[] = {
        "ab",   "Abc",
        "-abc", "abc-",
        "a_bc", "192.168.1.10",
        "a..b", "a.-b",
        "a-.b", ".abc",
        "abc.", "ab c",
        "",     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(mc_validate_bucket_name(bad[i]), MC_EBUCKETNAME, "%s", bad[i]);
        cr_assert_eq(te_bucket(bad[i], MC_VERSIONING_UNVERSIONED), MC_EBUCKETNAME, "%s", bad[i]);
    }
    const char *good[] = {"abc", "my-bucket.v2", "1bucket", "a.b.c",
                          "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        cr_assert_eq(mc_validate_bucket_name(good[i]), 0, "%s", good[i]);
    }
    struct mc_bucket_info *list;
    size_t n;
    cr_assert_eq(mc_engine_bucket_list(te_eng, &list, &n), 0);
    cr_assert_eq(n, 0, "no bad bucket may be created");
    free(list);
}

Test(engine_ops, versioning_transitions)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(te_versioning("bkt", MC_VERSIONING_UNVERSIONED), MC_EBADSTATE);
    cr_assert_eq(te_versioning("bkt", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(te_versioning("bkt", MC_VERSIONING_SUSPENDED), 0);
    cr_assert_eq(te_versioning("bkt", MC_VERSIONING_UNVERSIONED), MC_EBADSTATE);
    cr_assert_eq(te_versioning("nob", MC_VERSIONING_ENABLED), MC_ENOBUCKET);
    struct mc_bucket_info bi;
    cr_assert_eq(mc_engine_bucket_head(te_eng, "bkt", &bi), 0);
    cr_assert_eq(bi.versioning, MC_VERSIONING_SUSPENDED);
}

Test(engine_ops, bad_keys_and_metadata)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    char longkey[1100];
    memset(longkey, 'k', 1025);
    longkey[1025] = 0;
    /* Refused by the constructor (the op codec caps keys: a sent op would be a ProtocolError);
       the op still holds the key, and applying it answers the same. */
    struct mc_op lop;
    cr_assert_eq(mc_op_put(&lop, "bkt", longkey, "v1", 5, NULL), MC_EKEYTOOLONG);
    cr_assert_eq(te_apply(&lop, NULL), MC_EKEYTOOLONG);
    cr_assert_eq(mc_op_delete(&lop, "bkt", longkey, NULL, "v1", 5), MC_EKEYTOOLONG);
    mc_op_clear(&lop);
    cr_assert_eq(mc_op_update_meta(&lop, "bkt", longkey, NULL, 0, NULL, 5), MC_EKEYTOOLONG);
    mc_op_clear(&lop);
    longkey[1024] = 0;
    cr_assert_eq(mc_op_put(&lop, "bkt", longkey, "v1", 5, NULL), 0, "1024 bytes is allowed");
    mc_op_clear(&lop);
    char longvid[80];
    memset(longvid, '7', 65);
    longvid[65] = 0;
    cr_assert_eq(mc_op_put(&lop, "bkt", "k", longvid, 5, NULL), MC_EINVAL);
    mc_op_clear(&lop);
    cr_assert_eq(mc_op_delete(&lop, "bkt", "k", longvid, "v1", 5), MC_EINVAL);
    mc_op_clear(&lop);
    cr_assert_eq(mc_op_delete(&lop, "bkt", "k", NULL, longvid, 5), MC_EINVAL);
    mc_op_clear(&lop);
    cr_assert_eq(mc_op_update_meta(&lop, "bkt", "k", longvid, 0, NULL, 5), MC_EINVAL);
    mc_op_clear(&lop);
    longvid[64] = 0;
    cr_assert_eq(mc_op_delete(&lop, "bkt", "k", longvid, "v1", 5), 0, "64 chars is allowed");
    mc_op_clear(&lop);
    cr_assert_eq(te_put("bkt", "", "e", NULL), MC_EBADKEY);
    cr_assert_eq(te_put("bkt", "bad\xff", "e", NULL), MC_EBADKEY);
    cr_assert_eq(te_put("bkt", "over\xc0\xaflong", "e", NULL), MC_EBADKEY);
    cr_assert_eq(te_put("bkt", "cut\xe2\x82", "e", NULL), MC_EBADKEY);
    cr_assert_eq(te_put("bkt", "ok-\xe2\x82\xac", "e", NULL), 0);
    cr_assert_eq(mc_validate_key("a\0b", 3), MC_EBADKEY);
    cr_assert_eq(te_put("nob", "k", "e", NULL), MC_ENOBUCKET);

    struct mc_object_meta m = {0};
    char big[1100];
    memset(big, 'v', 1024);
    big[1024] = 0;
    cr_assert_eq(mc_object_meta_add_user(&m, "k1", big), 0);
    cr_assert_eq(mc_validate_object_meta(&m), 0);
    cr_assert_eq(mc_object_meta_add_user(&m, "k2", big), 0);
    cr_assert_eq(mc_validate_object_meta(&m), MC_EMETATOOLARGE);
    struct mc_op op;
    cr_assert_eq(mc_op_put(&op, "bkt", "meta-key", "v1", 5, &m), 0);
    cr_assert_eq(te_apply(&op, NULL), MC_EMETATOOLARGE);
    mc_object_meta_clear(&m);

    m.inline_len = MC_INLINE_MAX_BYTES + 1;
    m.inline_data = calloc(1, m.inline_len);
    cr_assert_eq(mc_op_put(&op, "bkt", "inline-key", "v1", 5, &m), 0);
    cr_assert_eq(te_apply(&op, NULL), MC_ETOOLARGE);
    mc_object_meta_clear(&m);

    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "meta-key", NULL, false, &v), MC_ENOKEY);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "inline-key", NULL, false, &v), MC_ENOKEY);
}

Test(engine_ops, put_get_all_fields)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    struct mc_object_meta m = {0};
    m.size = 12345;
    m.etag = "abc123";
    m.content_type = "image/jpeg";
    m.storage_class = "STANDARD";
    m.data_dir = "dd-1";
    m.checksum_algorithm = "CRC32C";
    m.checksum_value = "deadbeef";
    uint32_t dist[] = {3, 1, 2, 4};
    m.erasure = (struct mc_erasure){.data_blocks = 2,
                                    .parity_blocks = 2,
                                    .block_size = 1 << 20,
                                    .n_distribution = 4,
                                    .distribution = dist};
    struct mc_part parts[] = {{1, 100, "p1"}, {2, 200, "p2"}};
    m.parts = parts;
    m.n_parts = 2;
    uint8_t data[5] = {1, 2, 3, 0, 5};
    m.inline_data = data;
    m.inline_len = 5;
    struct mc_kv um[] = {{"color", "blue"}, {"owner", "me"}};
    m.user_meta = um;
    m.n_user_meta = 2;
    struct mc_op op;
    cr_assert_eq(mc_op_put(&op, "bkt", "dir/file.jpg", "ignored", 777, &m), 0);
    struct mc_op_result res;
    cr_assert_eq(te_apply(&op, &res), 0);
    cr_assert_str_eq(res.version_id, "null");

    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "dir/file.jpg", NULL, true, &v), 0);
    cr_assert_str_eq(v.bucket, "bkt");
    cr_assert_str_eq(v.key, "dir/file.jpg");
    cr_assert_str_eq(v.version_id, "null");
    cr_assert(!v.is_delete_marker);
    cr_assert(v.is_latest);
    cr_assert_eq(v.mod_time_ns, 777);
    cr_assert_eq(v.meta.size, 12345);
    cr_assert_str_eq(v.meta.etag, "abc123");
    cr_assert_str_eq(v.meta.content_type, "image/jpeg");
    cr_assert_str_eq(v.meta.storage_class, "STANDARD");
    cr_assert_str_eq(v.meta.data_dir, "dd-1");
    cr_assert_str_eq(v.meta.checksum_algorithm, "CRC32C");
    cr_assert_str_eq(v.meta.checksum_value, "deadbeef");
    cr_assert_eq(v.meta.erasure.data_blocks, 2);
    cr_assert_eq(v.meta.erasure.block_size, 1 << 20);
    cr_assert_eq(v.meta.erasure.n_distribution, 4);
    cr_assert_eq(v.meta.erasure.distribution[0], 3);
    cr_assert_eq(v.meta.n_parts, 2);
    cr_assert_eq(v.meta.parts[1].size, 200);
    cr_assert_str_eq(v.meta.parts[1].etag, "p2");
    cr_assert_eq(v.meta.inline_len, 5);
    cr_assert_eq(memcmp(v.meta.inline_data, data, 5), 0);
    cr_assert_eq(v.meta.n_user_meta, 2);
    cr_assert_str_eq(v.meta.user_meta[1].key, "owner");
    cr_assert_str_eq(v.meta.user_meta[1].value, "me");

    char *js = mc_version_json(&v, MC_JSON_COMPACT);
    cr_assert_not_null(js);
    cr_assert(strstr(js, "\"bucket\":\"bkt\",\"key\":\"dir/file.jpg\",\"version_id\":\"null\","
                         "\"is_delete_marker\":false"),
              "%s", js);
    cr_assert(strstr(js, "\"user_metadata\":{\"color\":\"blue\",\"owner\":\"me\"}"), "%s", js);
    cr_assert(strstr(js, "\"inline_data_base64\":\"AQIDAAU=\""), "%s", js);
    free(js);
    mc_version_clear(&v);

    /* Without inline data. */
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "dir/file.jpg", NULL, false, &v), 0);
    cr_assert_eq(v.meta.inline_len, 0);
    mc_version_clear(&v);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "missing", NULL, false, &v), MC_ENOKEY);
    cr_assert_eq(mc_engine_get(te_eng, "nob", "x", NULL, false, &v), MC_ENOBUCKET);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "dir/file.jpg", "nover", false, &v), MC_ENOVERSION);
}

Test(engine_ops, unversioned_put_replaces_and_delete)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(te_put("bkt", "k", "e1", NULL), 0);
    cr_assert_eq(te_put("bkt", "k", "e2", NULL), 0);
    struct mc_list_result lr;
    struct mc_list_params p = {0};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &lr), 0);
    cr_assert_eq(lr.n_entries, 1, "unversioned keeps only the null version");
    cr_assert_str_eq(lr.entries[0].meta.etag, "e2");
    mc_list_result_clear(&lr);

    struct mc_op_result res;
    cr_assert_eq(te_del("bkt", "k", NULL, &res), 0);
    cr_assert(!res.delete_marker);
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k", NULL, false, &v), MC_ENOKEY);
    cr_assert(!v.is_delete_marker);
    /* Deleting a missing key succeeds (S3 204) and leaves nothing behind. */
    cr_assert_eq(te_del("bkt", "never", NULL, NULL), 0);
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &lr), 0);
    cr_assert_eq(lr.n_entries, 0);
    mc_list_result_clear(&lr);
}

Test(engine_ops, versioned_semantics)
{
    cr_assert_eq(te_bucket("vbk", MC_VERSIONING_ENABLED), 0);
    struct mc_op_result r1, r2, r3, rd;
    cr_assert_eq(te_put("vbk", "k", "e1", &r1), 0);
    cr_assert_eq(te_put("vbk", "k", "e2", &r2), 0);
    cr_assert_str_neq(r1.version_id, "null");
    cr_assert_str_neq(r1.version_id, r2.version_id);

    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", NULL, false, &v), 0);
    cr_assert_str_eq(v.meta.etag, "e2");
    mc_version_clear(&v);
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", r1.version_id, false, &v), 0);
    cr_assert_str_eq(v.meta.etag, "e1");
    cr_assert(!v.is_latest);
    mc_version_clear(&v);

    /* Delete without id: a marker; GET latest → NoSuchKey with the marker flag. */
    cr_assert_eq(te_del("vbk", "k", NULL, &rd), 0);
    cr_assert(rd.delete_marker);
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", NULL, false, &v), MC_ENOKEY);
    cr_assert(v.is_delete_marker);
    cr_assert_str_eq(v.version_id, rd.version_id);
    mc_version_clear(&v);
    /* Old versions still readable by id. */
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", r2.version_id, false, &v), 0);
    mc_version_clear(&v);

    /* Deleting the marker restores the previous version. */
    struct mc_op_result rx;
    cr_assert_eq(te_del("vbk", "k", rd.version_id, &rx), 0);
    cr_assert(rx.delete_marker);
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", NULL, false, &v), 0);
    cr_assert_str_eq(v.meta.etag, "e2");
    mc_version_clear(&v);

    /* Deleting the latest by id promotes the next newest. */
    cr_assert_eq(te_del("vbk", "k", r2.version_id, &rx), 0);
    cr_assert(!rx.delete_marker);
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", NULL, false, &v), 0);
    cr_assert_str_eq(v.meta.etag, "e1");
    cr_assert(v.is_latest);
    mc_version_clear(&v);
    /* Deleting a version id that does not exist (any more) succeeds and changes nothing (S3
       204); a malformed id is InvalidArgument. */
    uint64_t h_before, h_after, ai;
    cr_assert_eq(mc_engine_state_hash(te_eng, &h_before, &ai), 0);
    cr_assert_eq(te_del("vbk", "k", r2.version_id, &rx), 0);
    cr_assert(!rx.delete_marker);
    cr_assert_str_eq(rx.version_id, r2.version_id);
    cr_assert_eq(te_del("vbk", "never-existed", "abc", &rx), 0);
    cr_assert_eq(mc_engine_state_hash(te_eng, &h_after, &ai), 0);
    cr_assert_eq(h_before, h_after, "nothing changed");
    cr_assert_eq(te_del("vbk", "k", "bad id", NULL), MC_EINVAL);
    cr_assert_eq(te_del("nobucket", "k", "abc", NULL), MC_ENOBUCKET);
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", NULL, false, &v), 0);
    cr_assert_str_eq(v.meta.etag, "e1");
    mc_version_clear(&v);

    /* Delete of a key that never existed still adds a marker (idempotent S3 semantics). */
    cr_assert_eq(te_del("vbk", "ghost", NULL, &r3), 0);
    cr_assert(r3.delete_marker);
    struct mc_list_result lr;
    struct mc_list_params p = {.prefix = "ghost"};
    cr_assert_eq(mc_engine_list_versions(te_eng, "vbk", &p, &lr), 0);
    cr_assert_eq(lr.n_entries, 1);
    cr_assert(lr.entries[0].is_delete_marker);
    cr_assert(lr.entries[0].is_latest);
    mc_list_result_clear(&lr);
    cr_assert_eq(mc_engine_list_objects(te_eng, "vbk", &p, &lr), 0);
    cr_assert_eq(lr.n_entries, 0, "delete markers are hidden from ListObjectsV2");
    mc_list_result_clear(&lr);
}

Test(engine_ops, suspended_semantics)
{
    cr_assert_eq(te_bucket("sbk", MC_VERSIONING_ENABLED), 0);
    struct mc_op_result r1, rn1, rn2;
    cr_assert_eq(te_put("sbk", "k", "v1", &r1), 0);
    cr_assert_eq(te_versioning("sbk", MC_VERSIONING_SUSPENDED), 0);
    cr_assert_eq(te_put("sbk", "k", "n1", &rn1), 0);
    cr_assert_str_eq(rn1.version_id, "null");
    cr_assert_eq(te_put("sbk", "k", "n2", &rn2), 0);
    cr_assert_str_eq(rn2.version_id, "null");

    struct mc_list_result lr;
    struct mc_list_params p = {0};
    cr_assert_eq(mc_engine_list_versions(te_eng, "sbk", &p, &lr), 0);
    cr_assert_eq(lr.n_entries, 2, "null replaced, older version kept");
    cr_assert_str_eq(lr.entries[0].version_id, "null");
    cr_assert_str_eq(lr.entries[0].meta.etag, "n2");
    cr_assert(lr.entries[0].is_latest);
    cr_assert_str_eq(lr.entries[1].version_id, r1.version_id);
    cr_assert(!lr.entries[1].is_latest);
    mc_list_result_clear(&lr);

    /* Delete in suspended: a "null" marker replacing the null version. */
    struct mc_op_result rd;
    cr_assert_eq(te_del("sbk", "k", NULL, &rd), 0);
    cr_assert(rd.delete_marker);
    cr_assert_str_eq(rd.version_id, "null");
    cr_assert_eq(mc_engine_list_versions(te_eng, "sbk", &p, &lr), 0);
    cr_assert_eq(lr.n_entries, 2);
    cr_assert(lr.entries[0].is_delete_marker);
    cr_assert_str_eq(lr.entries[1].version_id, r1.version_id);
    mc_list_result_clear(&lr);

    /* Re-enabled: new puts get ids again, the old ones remain. */
    cr_assert_eq(te_versioning("sbk", MC_VERSIONING_ENABLED), 0);
    struct mc_op_result r3;
    cr_assert_eq(te_put("sbk", "k", "v3", &r3), 0);
    cr_assert_str_neq(r3.version_id, "null");
}

Test(engine_ops, preconditions)
{
    cr_assert_eq(te_bucket("vbk", MC_VERSIONING_ENABLED), 0);
    struct mc_object_meta m = {.etag = "e2"};
    struct mc_op op;
    /* If-Match on a missing key: NoSuchKey (S3: 404), not PreconditionFailed. */
    mc_op_put(&op, "vbk", "k", "v1", 10, &m);
    op.if_match = strdup("e1");
    cr_assert_eq(te_apply(&op, NULL), MC_ENOKEY);
    /* If-None-Match * on a missing key succeeds. */
    m.etag = "e1";
    mc_op_put(&op, "vbk", "k", "v2", 10, &m);
    op.if_none_match_star = true;
    cr_assert_eq(te_apply(&op, NULL), 0);
    /* ... and then fails. */
    mc_op_put(&op, "vbk", "k", "v3", 10, &m);
    op.if_none_match_star = true;
    cr_assert_eq(te_apply(&op, NULL), MC_EPRECOND);
    /* If-Match with the right etag succeeds, wrong fails. */
    m.etag = "e2";
    mc_op_put(&op, "vbk", "k", "v4", 10, &m);
    op.if_match = strdup("e1");
    cr_assert_eq(te_apply(&op, NULL), 0);
    mc_op_put(&op, "vbk", "k", "v5", 10, &m);
    op.if_match = strdup("e1");
    cr_assert_eq(te_apply(&op, NULL), MC_EPRECOND);
    /* After a delete marker: If-None-Match * succeeds, If-Match is NoSuchKey. */
    cr_assert_eq(te_del("vbk", "k", NULL, NULL), 0);
    mc_op_put(&op, "vbk", "k", "v6", 10, &m);
    op.if_match = strdup("e2");
    cr_assert_eq(te_apply(&op, NULL), MC_ENOKEY);
    mc_op_put(&op, "vbk", "k", "v7", 10, &m);
    op.if_none_match_star = true;
    cr_assert_eq(te_apply(&op, NULL), 0);
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", NULL, false, &v), 0);
    cr_assert_str_eq(v.version_id, "v7");
    mc_version_clear(&v);
    /* Failed puts wrote nothing. */
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", "v5", false, &v), MC_ENOVERSION);
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", "v3", false, &v), MC_ENOVERSION);
    /* Duplicate version id from a buggy leader is refused. */
    mc_op_put(&op, "vbk", "k", "v7", 10, &m);
    cr_assert_eq(te_apply(&op, NULL), MC_EEXIST);
}

Test(engine_ops, update_meta_in_place)
{
    cr_assert_eq(te_bucket("vbk", MC_VERSIONING_ENABLED), 0);
    struct mc_op_result r1;
    cr_assert_eq(te_put("vbk", "k", "e1", &r1), 0);
    cr_assert_eq(te_put("vbk", "k", "e2", NULL), 0);
    struct mc_object_meta m = {.content_type = strdup("text/plain"),
                               .storage_class = strdup("GLACIER")};
    mc_object_meta_add_user(&m, "x", "y");
    struct mc_op op;
    cr_assert_eq(mc_op_update_meta(&op, "vbk", "k", r1.version_id,
                                   MC_UPDATE_USER_META | MC_UPDATE_STORAGE_CLASS, &m, 50),
                 0);
    cr_assert_eq(te_apply(&op, NULL), 0);
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", r1.version_id, false, &v), 0);
    cr_assert_str_eq(v.meta.storage_class, "GLACIER");
    cr_assert_null(v.meta.content_type, "content type not in the mask");
    cr_assert_eq(v.meta.n_user_meta, 1);
    cr_assert_str_eq(v.meta.etag, "e1");
    mc_version_clear(&v);
    /* Latest untouched */
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", NULL, false, &v), 0);
    cr_assert_null(v.meta.storage_class);
    mc_version_clear(&v);
    /* Latest by default; content type */
    cr_assert_eq(mc_op_update_meta(&op, "vbk", "k", NULL, MC_UPDATE_CONTENT_TYPE, &m, 50), 0);
    cr_assert_eq(te_apply(&op, NULL), 0);
    cr_assert_eq(mc_engine_get(te_eng, "vbk", "k", NULL, false, &v), 0);
    cr_assert_str_eq(v.meta.content_type, "text/plain");
    mc_version_clear(&v);
    /* Errors */
    cr_assert_eq(mc_op_update_meta(&op, "vbk", "nokey", NULL, MC_UPDATE_CONTENT_TYPE, &m, 50), 0);
    cr_assert_eq(te_apply(&op, NULL), MC_ENOKEY);
    cr_assert_eq(mc_op_update_meta(&op, "vbk", "k", "zzz", MC_UPDATE_CONTENT_TYPE, &m, 50), 0);
    cr_assert_eq(te_apply(&op, NULL), MC_ENOVERSION);
    char big[1500];
    memset(big, 'a', 1400);
    big[1400] = 0;
    mc_object_meta_add_user(&m, "b1", big);
    mc_object_meta_add_user(&m, "b2", big);
    cr_assert_eq(mc_op_update_meta(&op, "vbk", "k", NULL, MC_UPDATE_USER_META, &m, 50), 0);
    cr_assert_eq(te_apply(&op, NULL), MC_EMETATOOLARGE);
    cr_assert_eq(te_del("vbk", "k", NULL, NULL), 0);
    cr_assert_eq(mc_op_update_meta(&op, "vbk", "k", NULL, MC_UPDATE_CONTENT_TYPE, &m, 50), 0);
    cr_assert_eq(te_apply(&op, NULL), MC_ENOKEY);
    mc_object_meta_clear(&m);
}

Test(engine_ops, atomic_batch_all_or_nothing)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(te_put("bkt", "exists", "e0", NULL), 0);
    struct mc_op subs[3];
    struct mc_object_meta m = {.etag = "x"};
    mc_op_put(&subs[0], "bkt", "a", NULL, 5, &m);
    mc_op_put(&subs[1], "bkt", "b", NULL, 5, &m);
    mc_op_put(&subs[2], "bkt", "exists", NULL, 5, &m);
    subs[2].if_none_match_star = true; /* fails */
    struct mc_op op;
    cr_assert_eq(mc_op_atomic(&op, subs, 3), 0);
    struct mc_op_result res;
    cr_assert_eq(te_apply(&op, &res), MC_EPRECOND);
    cr_assert_eq(res.failed_op, 2);
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "a", NULL, false, &v), MC_ENOKEY,
                 "first sub-op rolled back");
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "b", NULL, false, &v), MC_ENOKEY);

    mc_op_put(&subs[0], "bkt", "a", NULL, 5, &m);
    mc_op_put(&subs[1], "bkt", "b", NULL, 5, &m);
    mc_op_delete(&subs[2], "bkt", "exists", NULL, NULL, 5);
    cr_assert_eq(mc_op_atomic(&op, subs, 3), 0);
    cr_assert_eq(te_apply(&op, &res), 0);
    cr_assert_eq(res.failed_op, -1);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "a", NULL, false, &v), 0);
    mc_version_clear(&v);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "b", NULL, false, &v), 0);
    mc_version_clear(&v);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "exists", NULL, false, &v), MC_ENOKEY);
}

Test(engine_ops, apply_batch_independent_ops_and_replay)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    struct mc_op ops[3];
    struct mc_object_meta m = {.etag = "x"};
    mc_op_put(&ops[0], "bkt", "a", NULL, 5, &m);
    mc_op_put(&ops[1], "nobucket", "b", NULL, 5, &m);
    mc_op_put(&ops[2], "bkt", "c", NULL, 5, &m);
    struct mc_op_result res[3];
    cr_assert_eq(mc_engine_apply(te_eng, 10, ops, 3, "conf-v1", 7, res), 0);
    cr_assert_eq(res[0].code, 0);
    cr_assert_eq(res[1].code, MC_ENOBUCKET);
    cr_assert_eq(res[2].code, 0);
    uint64_t ai;
    cr_assert_eq(mc_engine_applied_index(te_eng, &ai), 0);
    cr_assert_eq(ai, 10);
    void *conf;
    size_t cl;
    cr_assert_eq(mc_engine_conf(te_eng, &conf, &cl), 0);
    cr_assert_eq(cl, 7);
    cr_assert_eq(memcmp(conf, "conf-v1", 7), 0);
    free(conf);

    /* Replay at ≤ applied_index: skipped, nothing changes. */
    uint64_t h1, h2;
    cr_assert_eq(mc_engine_state_hash(te_eng, &h1, &ai), 0);
    cr_assert_eq(mc_engine_apply(te_eng, 10, ops, 3, NULL, 0, res), 0);
    cr_assert(res[0].skipped && res[2].skipped);
    cr_assert_eq(mc_engine_apply(te_eng, 3, ops, 3, NULL, 0, res), 0);
    cr_assert_eq(mc_engine_state_hash(te_eng, &h2, &ai), 0);
    cr_assert_eq(h1, h2);
    cr_assert_eq(ai, 10);

    /* Empty batch advances applied_index only. */
    cr_assert_eq(mc_engine_apply(te_eng, 11, NULL, 0, NULL, 0, NULL), 0);
    cr_assert_eq(mc_engine_state_hash(te_eng, &h2, &ai), 0);
    cr_assert_eq(ai, 11);
    cr_assert_eq(h1, h2);
    for (int i = 0; i < 3; i++) {
        mc_op_clear(&ops[i]);
    }
    cr_assert_eq(mc_engine_apply(te_eng, 0, NULL, 0, NULL, 0, NULL), MC_EINVAL);
}

Test(engine_ops, sessions_exactly_once)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    struct mc_op op;
    struct mc_op_result res;
    mc_op_session_register(&op, 1000);
    cr_assert_eq(te_apply(&op, &res), 0);
    uint64_t sid = res.session_id;
    cr_assert_eq(sid, te_index, "session id = the log index it was applied at");

    struct mc_object_meta m = {.etag = "x"};
    mc_op_put(&op, "bkt", "k", "ver-1", 2000, &m);
    op.session_id = sid;
    op.seq = 1;
    struct mc_op retry;
    mc_op_copy(&retry, &op);
    struct mc_op_result r1, r2;
    cr_assert_eq(te_apply(&op, &r1), 0);
    cr_assert(!r1.duplicate);
    /* The retry (e.g. via a new leader with a new version id) is not applied again. */
    free(retry.new_version_id);
    retry.new_version_id = strdup("ver-2");
    cr_assert_eq(te_apply(&retry, &r2), 0);
    cr_assert(r2.duplicate);
    cr_assert_str_eq(r2.version_id, "ver-1");
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k", "ver-2", false, &v), MC_ENOVERSION);

    /* Cached failures are replayed too. */
    mc_op_put(&op, "bkt", "k", "ver-3", 2000, &m);
    op.session_id = sid;
    op.seq = 2;
    op.if_none_match_star = true;
    mc_op_copy(&retry, &op);
    cr_assert_eq(te_apply(&op, &r1), MC_EPRECOND);
    cr_assert_eq(te_apply(&retry, &r2), MC_EPRECOND);
    cr_assert(r2.duplicate);

    /* Unknown session. */
    mc_op_put(&op, "bkt", "k", "ver-4", 2000, &m);
    op.session_id = 999999;
    op.seq = 1;
    cr_assert_eq(te_apply(&op, NULL), MC_ENOSESSION);

    /* Two registers in one entry: the second is refused (ids are log indexes). */
    struct mc_op regs[2];
    mc_op_session_register(&regs[0], 3000);
    mc_op_session_register(&regs[1], 3000);
    struct mc_op_result rr[2];
    cr_assert_eq(mc_engine_apply(te_eng, ++te_index, regs, 2, NULL, 0, rr), 0);
    cr_assert_eq(rr[0].code, 0);
    cr_assert_eq(rr[1].code, MC_EBUSY);
}

/* A session put of key k with seq/acked_seq; returns the result code. */
static int sess_put(uint64_t sid, uint64_t seq, uint64_t acked, const char *vid,
                    struct mc_op_result *res)
{
    struct mc_object_meta m = {.etag = "e"};
    struct mc_op op;
    char key[32];
    snprintf(key, sizeof(key), "k%llu", (unsigned long long)seq);
    mc_op_put(&op, "bkt", key, vid, 2000 + (int64_t)te_index, &m);
    op.session_id = sid;
    op.seq = seq;
    op.acked_seq = acked;
    return te_apply(&op, res);
}

static uint64_t sess_register(void)
{
    struct mc_op op;
    struct mc_op_result res;
    mc_op_session_register(&op, 1000);
    cr_assert_eq(te_apply(&op, &res), 0);
    return res.session_id;
}

Test(engine_ops, sessions_out_of_order_and_acked)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    uint64_t sid = sess_register();
    struct mc_op_result r;
    struct mc_version v;
    /* Pipelined: 5 was lost with a dying leader, 6 applied; the retry of 5 must apply. */
    cr_assert_eq(sess_put(sid, 6, 4, "v6", &r), 0);
    cr_assert(!r.duplicate);
    cr_assert_eq(sess_put(sid, 5, 4, "v5", &r), 0);
    cr_assert(!r.duplicate, "5 never applied: it applies now");
    cr_assert_str_eq(r.version_id, "v5");
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k5", NULL, false, &v), 0);
    cr_assert_str_eq(v.version_id, "v5");
    mc_version_clear(&v);
    /* Each is applied once: retries (new version ids from a new leader) get the cached result. */
    cr_assert_eq(sess_put(sid, 5, 4, "v5-retry", &r), 0);
    cr_assert(r.duplicate);
    cr_assert_str_eq(r.version_id, "v5");
    cr_assert_eq(sess_put(sid, 6, 4, "v6-retry", &r), 0);
    cr_assert(r.duplicate);
    cr_assert_str_eq(r.version_id, "v6");
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k5", "v5-retry", false, &v), MC_ENOVERSION);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k6", "v6-retry", false, &v), MC_ENOVERSION);
    /* Seqs below the first acked_seq seen were never cached: acked ones are rejected. */
    cr_assert_eq(sess_put(sid, 4, 3, "v4", &r), MC_EINVAL, "4 ≤ acked_seq 4");
    cr_assert_not_null(strstr(mc_engine_last_error(), "acknowledged"));
    /* The client acknowledges 5 and 6: their results go, and they are rejected from then on. */
    cr_assert_eq(sess_put(sid, 7, 6, "v7", &r), 0);
    cr_assert(!r.duplicate);
    cr_assert_eq(sess_put(sid, 6, 5, "v6-late", &r), MC_EINVAL);
    cr_assert_eq(sess_put(sid, 5, 4, "v5-late", &r), MC_EINVAL);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k6", "v6-late", false, &v), MC_ENOVERSION);
    /* 7 is still answerable. acked_seq ≥ seq is malformed. */
    cr_assert_eq(sess_put(sid, 7, 6, "v7-retry", &r), 0);
    cr_assert(r.duplicate);
    cr_assert_str_eq(r.version_id, "v7");
    cr_assert_eq(sess_put(sid, 8, 8, "v8", &r), MC_EINVAL);
    cr_assert_eq(sess_put(sid, 0, 0, "v0", &r), MC_EINVAL);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k8", NULL, false, &v), MC_ENOKEY);
    /* An acked_seq that moves backwards does not un-acknowledge anything. */
    cr_assert_eq(sess_put(sid, 9, 2, "v9", &r), 0);
    cr_assert_eq(sess_put(sid, 6, 2, "v6-again", &r), MC_EINVAL);
}

/* Session NOOPs seq first..first+n-1 in one apply call; returns how many results had code rc. */
static int sess_noops(uint64_t sid, uint64_t first, uint32_t n, uint64_t acked, int rc)
{
    struct mc_op *ops = calloc(n, sizeof(*ops));
    struct mc_op_result *res = calloc(n, sizeof(*res));
    for (uint32_t i = 0; i < n; i++) {
        ops[i].type = MC_OP_NOOP;
        ops[i].session_id = sid;
        ops[i].seq = first + i;
        ops[i].acked_seq = acked;
        ops[i].time_ns = 5000;
    }
    cr_assert_eq(mc_engine_apply(te_eng, ++te_index, ops, n, NULL, 0, res), 0);
    int c = 0;
    for (uint32_t i = 0; i < n; i++) {
        c += res[i].code == rc;
    }
    free(ops);
    free(res);
    return c;
}

Test(engine_ops, sessions_results_bounded)
{
    uint64_t sid = sess_register();
    const uint32_t K = MC_SESSION_RESULTS_KEPT;
    /* A client that never acknowledges fills the bound, then is refused (state stays bounded). */
    cr_assert_eq(sess_noops(sid, 1, K, 0, 0), (int)K);
    cr_assert_eq(sess_noops(sid, K + 1, 1, 0, MC_ELIMIT), 1);
    cr_assert_not_null(strstr(mc_engine_last_error(), "unacknowledged"));
    /* Cached ones still answer (duplicates are not refused). */
    cr_assert_eq(sess_noops(sid, K, 1, 0, 0), 1);
    /* Acknowledging frees room: K+1 now applies. */
    cr_assert_eq(sess_noops(sid, K + 1, 1, 10, 0), 1);
    cr_assert_eq(sess_noops(sid, K + 2, 11, 10, 0), 9, "9 freed slots, then the bound again");
    cr_assert_eq(sess_noops(sid, 2 * K, 1, 2 * K - 1, 0), 1, "acking everything empties it");
    cr_assert_eq(sess_noops(sid, 5, 1, 0, MC_EINVAL), 1);
}

Test(engine_ops, sessions_expiry_drops_results)
{
    mc_engine_close(te_eng);
    te_rmrf(te_dir);
    te_mkdtemp(te_dir, sizeof(te_dir));
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .session_ttl_ns = 5000};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), 0);
    /* After expiry nothing of the session may remain (record, expiry entry, cached results):
       the hash must equal that of an engine where the session never existed. */
    uint64_t h0, h1, ai;
    struct mc_op op;
    mc_op_session_register(&op, 1000);
    cr_assert_eq(te_apply(&op, NULL), 0);
    uint64_t sid = te_index;
    cr_assert_eq(mc_engine_state_hash(te_eng, &h0, &ai), 0);
    cr_assert_eq(sess_noops(sid, 1, 50, 0, 0), 50); /* time 5000: the session expires later */
    memset(&op, 0, sizeof(op));
    op.time_ns = 11000;
    cr_assert_eq(te_apply(&op, NULL), 0);
    cr_assert_eq(sess_noops(sid, 51, 1, 0, MC_ENOSESSION), 1,
                 "last active 5000, expired at op time 11000");
    cr_assert_eq(mc_engine_state_hash(te_eng, &h1, &ai), 0);

    /* Reference: the same indexes with no session rows at all. */
    char d2[256];
    te_mkdtemp(d2, sizeof(d2));
    struct mc_engine *e2;
    cr_assert_eq(mc_engine_open(d2, &o, &e2), 0);
    struct mc_op_result res[2];
    memset(&op, 0, sizeof(op));
    op.time_ns = 11000;
    cr_assert_eq(mc_engine_apply(e2, te_index, &op, 1, NULL, 0, res), 0);
    uint64_t h2;
    cr_assert_eq(mc_engine_state_hash(e2, &h2, &ai), 0);
    cr_assert_eq(h1, h2, "expiry removed the session record, its expiry entry and all results");
    cr_assert_neq(h0, h1);
    mc_engine_close(e2);
    te_rmrf(d2);
}

Test(engine_ops, sessions_expire_by_op_time)
{
    mc_engine_close(te_eng);
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .session_ttl_ns = 1000};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), 0);
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    struct mc_op op;
    struct mc_op_result res;
    mc_op_session_register(&op, 10000);
    te_apply(&op, &res);
    uint64_t s1 = res.session_id;
    mc_op_session_register(&op, 10500);
    te_apply(&op, &res);
    uint64_t s2 = res.session_id;
    /* s2 stays active at 11400; s1 (last active 10000) expires once op time passes 11000. */
    struct mc_object_meta m = {.etag = "x"};
    mc_op_put(&op, "bkt", "k", NULL, 11400, &m);
    op.session_id = s2;
    op.seq = 1;
    cr_assert_eq(te_apply(&op, NULL), 0);
    mc_op_put(&op, "bkt", "k", NULL, 11001, &m);
    op.session_id = s1;
    op.seq = 1;
    cr_assert_eq(te_apply(&op, NULL), MC_ENOSESSION, "idle beyond TTL in op time → expired");
    mc_op_put(&op, "bkt", "k", NULL, 12000, &m);
    op.session_id = s2;
    op.seq = 2;
    cr_assert_eq(te_apply(&op, NULL), 0, "s2 was active at 11400");
}

/* ---- bounded sessions (aud18 R5) ---- */

/* Reopen te_eng on a fresh dir with session TTL ttl_ns; te_index restarts. */
static void sess_fresh_engine(uint64_t ttl_ns)
{
    mc_engine_close(te_eng);
    te_rmrf(te_dir);
    te_mkdtemp(te_dir, sizeof(te_dir));
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .session_ttl_ns = ttl_ns};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), 0, "%s", mc_engine_last_error());
    te_index = 0;
}

/* n registrations into eng at indexes from *index + 1, one per entry (as the leader proposes
 * them), the i-th at op time t0 + i. */
static void sess_register_into(struct mc_engine *eng, uint64_t *index, uint32_t n, int64_t t0)
{
    for (uint32_t i = 0; i < n; i++) {
        struct mc_op op;
        struct mc_op_result res;
        mc_op_session_register(&op, t0 + i);
        cr_assert_eq(mc_engine_apply(eng, ++*index, &op, 1, NULL, 0, &res), 0);
        cr_assert_eq(res.code, 0);
        mc_op_clear(&op);
    }
}

/* An entry of one NOOP at op time t into eng: it moves the session clock, so expiry runs. */
static void sess_tick_into(struct mc_engine *eng, uint64_t *index, int64_t t)
{
    struct mc_op op = {.type = MC_OP_NOOP, .time_ns = t};
    struct mc_op_result res;
    cr_assert_eq(mc_engine_apply(eng, ++*index, &op, 1, NULL, 0, &res), 0);
    cr_assert_eq(res.code, 0);
}

/* Registrations at op times 10000 + i stay live among themselves; SESS_LATE expires them all. */
#define SESS_TTL_NS 1000000
#define SESS_LATE   (10000 + 10 * SESS_TTL_NS)

/* 3000 sessions expire at once: each apply removes at most MC_SESSION_EXPIRE_PER_APPLY of them
 * (before: all in one apply, the stall of aud18 R5). The count the leader's cap reads follows,
 * and is rebuilt when the engine is opened again. */
Test(engine_ops, sessions_expiry_is_bounded_per_apply)
{
    sess_fresh_engine(SESS_TTL_NS);
    const uint32_t N = 3000, B = MC_SESSION_EXPIRE_PER_APPLY;
    cr_assert_lt(2 * B, N, "the test needs three applies' worth");
    cr_assert_eq(mc_engine_session_count(te_eng), 0);
    sess_register_into(te_eng, &te_index, N, 10000);
    cr_assert_eq(mc_engine_session_count(te_eng), N);
    const int64_t late = SESS_LATE; /* every one of them is expired */
    bool some = false;
    cr_assert_eq(mc_engine_sessions_expired(te_eng, late, &some), 0);
    cr_assert(some);
    sess_tick_into(te_eng, &te_index, late);
    cr_assert_eq(mc_engine_session_count(te_eng), N - B, "one apply removed at most the bound");
    mc_engine_close(te_eng); /* the count is counted again at open */
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .session_ttl_ns = SESS_TTL_NS};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), 0);
    cr_assert_eq(mc_engine_session_count(te_eng), N - B);
    sess_tick_into(te_eng, &te_index, late + 1);
    cr_assert_eq(mc_engine_session_count(te_eng), N - 2 * B);
    sess_tick_into(te_eng, &te_index, late + 2);
    cr_assert_eq(mc_engine_session_count(te_eng), 0, "the third apply finished the rest");
    cr_assert_eq(mc_engine_sessions_expired(te_eng, late + 3, &some), 0);
    cr_assert_not(some, "nothing left to expire");
}

/* A session past its TTL whose removal has not come yet (the bound left it stored) is refused
 * exactly like a removed one, and its refusal does not revive it: results do not depend on how
 * far a replica's removal has got. */
Test(engine_ops, sessions_expired_not_yet_removed_answer_as_removed)
{
    sess_fresh_engine(SESS_TTL_NS);
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    const uint32_t FILL = MC_SESSION_EXPIRE_PER_APPLY + 500;
    sess_register_into(te_eng, &te_index, FILL, 10000);
    uint64_t sid = te_index + 1;                            /* a session id is its entry's index */
    sess_register_into(te_eng, &te_index, 1, 10000 + FILL); /* the newest: removed last */
    struct mc_object_meta m = {.etag = "x"};
    int codes[2];
    for (int pass = 0; pass < 2; pass++) {
        /* pass 0: sid is stored (the apply removes FILL's first 1024 only); pass 1: removed */
        struct mc_op op;
        mc_op_put(&op, "bkt", "k", NULL, SESS_LATE + pass, &m);
        op.session_id = sid;
        op.seq = 1;
        struct mc_op_result res;
        codes[pass] = te_apply(&op, &res);
        cr_assert_not(res.duplicate);
        uint64_t left = mc_engine_session_count(te_eng);
        if (pass == 0) {
            cr_assert_eq(left, FILL + 1 - MC_SESSION_EXPIRE_PER_APPLY,
                         "the session was still stored when its write came");
            sess_tick_into(te_eng, &te_index, SESS_LATE + 1); /* removes the rest, sid too */
            cr_assert_eq(mc_engine_session_count(te_eng), 0);
        }
    }
    cr_assert_eq(codes[0], MC_ENOSESSION, "expired, still stored: %s", mc_error_name(codes[0]));
    cr_assert_eq(codes[0], codes[1], "the same answer before and after its removal");
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k", NULL, false, &v), MC_ENOKEY, "nothing applied");
}

/* Replicas applying the same entries do the same removals: equal state hashes after every entry
 * (one replica reopened midway: the count it reads is rebuilt), and once the removal is done the
 * state is the one an unbounded removal gave (an engine that never held those sessions), which
 * is where replicas of an older version (docs/decisions.md, session 20) meet it again. */
Test(engine_ops, sessions_bounded_expiry_replicas_agree_and_converge)
{
    sess_fresh_engine(SESS_TTL_NS);
    char d2[256];
    te_mkdtemp(d2, sizeof(d2));
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .session_ttl_ns = SESS_TTL_NS};
    struct mc_engine *e2;
    cr_assert_eq(mc_engine_open(d2, &o, &e2), 0);
    uint64_t i2 = 0;
    const uint32_t N = 2 * MC_SESSION_EXPIRE_PER_APPLY + 100;
    sess_register_into(te_eng, &te_index, N, 10000);
    sess_register_into(e2, &i2, N, 10000);
    uint64_t sid = 5; /* one of them writes before they expire: it has cached results */
    cr_assert_eq(sess_noops(sid, 1, 10, 0, 0), 10);
    struct mc_op_result res[10];
    struct mc_op ops[10];
    memset(ops, 0, sizeof(ops));
    for (int i = 0; i < 10; i++) {
        ops[i] = (struct mc_op){
            .type = MC_OP_NOOP, .session_id = sid, .seq = 1 + (uint64_t)i, .time_ns = 5000};
    }
    cr_assert_eq(mc_engine_apply(e2, ++i2, ops, 10, NULL, 0, res), 0);
    int64_t t = SESS_LATE;
    for (int k = 0; k < 4; k++, t++) {
        sess_tick_into(te_eng, &te_index, t);
        sess_tick_into(e2, &i2, t);
        uint64_t h1, h2, a1, a2;
        cr_assert_eq(mc_engine_state_hash(te_eng, &h1, &a1), 0);
        cr_assert_eq(mc_engine_state_hash(e2, &h2, &a2), 0);
        cr_assert_eq(a1, a2);
        cr_assert_eq(h1, h2, "after tick %d", k);
        cr_assert_eq(mc_engine_session_count(te_eng), mc_engine_session_count(e2));
        if (k == 1) {
            mc_engine_close(e2);
            cr_assert_eq(mc_engine_open(d2, &o, &e2), 0);
        }
    }
    cr_assert_eq(mc_engine_session_count(te_eng), 0);
    /* Reference: the same last index and op clock, no session ever. */
    char d3[256];
    te_mkdtemp(d3, sizeof(d3));
    struct mc_engine *e3;
    cr_assert_eq(mc_engine_open(d3, &o, &e3), 0);
    uint64_t i3 = te_index - 1;
    sess_tick_into(e3, &i3, t - 1);
    uint64_t h1, h3, a;
    cr_assert_eq(mc_engine_state_hash(te_eng, &h1, &a), 0);
    cr_assert_eq(mc_engine_state_hash(e3, &h3, &a), 0);
    cr_assert_eq(h1, h3, "nothing of the expired sessions is left");
    mc_engine_close(e2);
    mc_engine_close(e3);
    te_rmrf(d2);
    te_rmrf(d3);
}

Test(engine_ops, map_grows_then_enospc)
{
    mc_engine_close(te_eng);
    te_rmrf(te_dir); /* fresh: an existing file keeps its (larger) map size */
    te_mkdtemp(te_dir, sizeof(te_dir));
    struct mc_engine_options o = {
        .sync = MC_ENGINE_SYNC_NONE, .map_size_bytes = 1 << 20, .max_map_size_bytes = 4 << 20};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), 0);
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    struct mc_object_meta m = {0};
    m.inline_len = 60000;
    m.inline_data = calloc(1, m.inline_len);
    int rc = 0, i;
    char key[32];
    for (i = 0; i < 200 && rc == 0; i++) {
        snprintf(key, sizeof(key), "obj-%04d", i);
        struct mc_op op;
        mc_op_put(&op, "bkt", key, NULL, 5, &m);
        struct mc_op_result r;
        rc = mc_engine_apply(te_eng, ++te_index, &op, 1, NULL, 0, &r);
        mc_op_clear(&op);
    }
    mc_object_meta_clear(&m);
    cr_assert_gt(i, 20, "the map grew beyond its initial 1 MiB (wrote %d)", i);
    cr_assert_eq(rc, MC_ENOSPC, "rc=%s i=%d: %s", mc_error_name(rc), i, mc_engine_last_error());
    cr_assert(strstr(mc_engine_last_error(), "--max-map-size"), "%s", mc_engine_last_error());
    /* The failed apply left applied_index at the last successful one. */
    uint64_t ai;
    cr_assert_eq(mc_engine_applied_index(te_eng, &ai), 0);
    cr_assert_eq(ai, te_index - 1);
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", key, NULL, false, &v), MC_ENOKEY);
}

Test(engine_ops, open_not_ours_and_locked)
{
    char d[256];
    te_mkdtemp(d, sizeof(d));
    char path[300];
    snprintf(path, sizeof(path), "%s/notes.txt", d);
    FILE *f = fopen(path, "w");
    fputs("hello", f);
    fclose(f);
    struct mc_engine *e2;
    cr_assert_eq(mc_engine_open(d, NULL, &e2), MC_ENOTOURS);
    cr_assert(strstr(mc_engine_last_error(), "not a metacenter"), "%s", mc_engine_last_error());
    cr_assert_eq(access(path, F_OK), 0, "the foreign file is untouched");
    te_rmrf(d);

    /* A garbage data.mdb */
    te_mkdtemp(d, sizeof(d));
    snprintf(path, sizeof(path), "%s/data.mdb", d);
    f = fopen(path, "w");
    for (int i = 0; i < 10000; i++) {
        fputc(i * 7, f);
    }
    fclose(f);
    cr_assert_eq(mc_engine_open(d, NULL, &e2), MC_ENOTOURS);
    te_rmrf(d);

    /* Locked by another process (child holds te_dir open: we are the holder). */
    pid_t pid = fork();
    if (pid == 0) {
        struct mc_engine *e3;
        int rc = mc_engine_open(te_dir, NULL, &e3);
        _exit(rc == MC_ELOCKED && strstr(mc_engine_last_error(), "locked") ? 0 : 1);
    }
    int st;
    waitpid(pid, &st, 0);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "second opener must get MC_ELOCKED");
    /* Also within one process. */
    cr_assert_eq(mc_engine_open(te_dir, NULL, &e2), MC_ELOCKED);

    /* read_meta of a closed dir. */
    struct mc_op op;
    mc_op_bucket_create(&op, "abc", MC_VERSIONING_UNVERSIONED, 1);
    struct mc_op_result r;
    cr_assert_eq(mc_engine_apply(te_eng, 42, &op, 1, "CONF", 4, &r), 0);
    mc_op_clear(&op);
    mc_engine_close(te_eng);
    uint64_t ai;
    void *conf;
    size_t cl;
    cr_assert_eq(mc_engine_read_meta(te_dir, &ai, &conf, &cl), 0);
    cr_assert_eq(ai, 42);
    cr_assert_eq(cl, 4);
    cr_assert_eq(memcmp(conf, "CONF", 4), 0);
    free(conf);
    cr_assert_eq(mc_engine_open(te_dir, NULL, &te_eng), 0);

    /* no_create on a missing dir */
    struct mc_engine_options o = {.no_create = true};
    cr_assert_eq(mc_engine_open("/tmp/mc_engine_definitely_missing_dir", &o, &e2), MC_ENOTFOUND);
}

Test(engine_ops, copy_to_fd_restores)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    for (int i = 0; i < 50; i++) {
        char k[16];
        snprintf(k, sizeof(k), "k%02d", i);
        cr_assert_eq(te_put("bkt", k, "e", NULL), 0);
    }
    uint64_t h1, ai1;
    cr_assert_eq(mc_engine_state_hash(te_eng, &h1, &ai1), 0);
    char d[256], path[300];
    te_mkdtemp(d, sizeof(d));
    snprintf(path, sizeof(path), "%s/data.mdb", d);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    uint64_t copy_ai;
    cr_assert_eq(mc_engine_copy_to_fd(te_eng, fd, &copy_ai), 0);
    close(fd);
    cr_assert_eq(copy_ai, ai1);
    struct mc_engine *e2;
    cr_assert_eq(mc_engine_open(d, NULL, &e2), 0, "%s", mc_engine_last_error());
    uint64_t h2, ai2;
    cr_assert_eq(mc_engine_state_hash(e2, &h2, &ai2), 0);
    cr_assert_eq(h1, h2);
    cr_assert_eq(ai1, ai2);
    mc_engine_close(e2);
    te_rmrf(d);
}

Test(engine_ops, json_results)
{
    struct mc_bucket_info b = {.name = "abc", .created_ns = 5, .versioning = MC_VERSIONING_ENABLED};
    char *s = mc_bucket_list_json(&b, 1, MC_JSON_COMPACT);
    cr_assert_str_eq(
        s, "{\"buckets\":[{\"name\":\"abc\",\"created_ns\":5,\"versioning\":\"enabled\"}]}");
    free(s);
    struct mc_op_result r = {.code = MC_EPRECOND, .failed_op = -1};
    s = mc_op_result_json(&r, MC_JSON_COMPACT);
    cr_assert(strstr(s, "\"error\":\"PreconditionFailed\""), "%s", s);
    free(s);

    const char *body = "{\"size\":10,\"etag\":\"e\",\"user_metadata\":{\"a\":\"b\"},"
                       "\"erasure\":{\"data_blocks\":4,\"parity_blocks\":2,\"block_size\":1024,"
                       "\"distribution\":[1,2,3]},\"parts\":[{\"number\":1,\"size\":10,\"etag\":"
                       "\"p\"}],\"checksum\":{\"algorithm\":\"SHA256\",\"value\":\"xx\"},"
                       "\"inline_data_base64\":\"AQIDAAU=\"}";
    struct mc_object_meta m;
    cr_assert_eq(mc_object_meta_from_json(body, strlen(body), &m), 0);
    cr_assert_eq(m.size, 10);
    cr_assert_eq(m.erasure.n_distribution, 3);
    cr_assert_eq(m.inline_len, 5);
    cr_assert_eq(m.inline_data[4], 5);
    cr_assert_str_eq(m.user_meta[0].value, "b");
    mc_object_meta_clear(&m);
    cr_assert_eq(mc_object_meta_from_json("{\"bogus\":1}", 11, &m), MC_EINVAL);
    cr_assert_eq(mc_object_meta_from_json("{\"size\":-1}", 11, &m), MC_EINVAL);
    cr_assert_eq(mc_object_meta_from_json("[1,2", 4, &m), MC_EINVAL);
}

Test(engine_ops, legacy_null_version_after_enabling)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(te_put("bkt", "k", "old", NULL), 0);
    cr_assert_eq(te_versioning("bkt", MC_VERSIONING_ENABLED), 0);
    struct mc_op_result r2;
    cr_assert_eq(te_put("bkt", "k", "v2", &r2), 0);
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k", "null", false, &v), 0);
    cr_assert_str_eq(v.meta.etag, "old");
    cr_assert(!v.is_latest);
    mc_version_clear(&v);
    /* Suspended: a put replaces the legacy null version, keeps v2. */
    cr_assert_eq(te_versioning("bkt", MC_VERSIONING_SUSPENDED), 0);
    cr_assert_eq(te_put("bkt", "k", "new-null", NULL), 0);
    struct mc_list_result lr;
    struct mc_list_params p = {0};
    cr_assert_eq(mc_engine_list_versions(te_eng, "bkt", &p, &lr), 0);
    cr_assert_eq(lr.n_entries, 2);
    cr_assert_str_eq(lr.entries[0].meta.etag, "new-null");
    cr_assert_str_eq(lr.entries[1].version_id, r2.version_id);
    mc_list_result_clear(&lr);
    /* Delete by "null" removes it and promotes v2. */
    cr_assert_eq(te_del("bkt", "k", "null", NULL), 0);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k", NULL, false, &v), 0);
    cr_assert_str_eq(v.version_id, r2.version_id);
    mc_version_clear(&v);
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k", "null", false, &v), MC_ENOVERSION);
    /* Another key whose only (legacy) null version is deleted by id. */
    cr_assert_eq(te_bucket("bk2", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(te_put("bk2", "x", "e", NULL), 0);
    cr_assert_eq(te_versioning("bk2", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(te_del("bk2", "x", "null", NULL), 0);
    cr_assert_eq(mc_engine_get(te_eng, "bk2", "x", NULL, false, &v), MC_ENOKEY);
    struct mc_op op;
    mc_op_bucket_delete(&op, "bk2");
    cr_assert_eq(te_apply(&op, NULL), 0, "no version left");
}

struct reader_arg {
    int id;
    int ok;
};

static void *reader(void *p)
{
    struct reader_arg *ra = p;
    char key[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "pre-%03d", (i * 7 + ra->id) % 200);
        struct mc_version v;
        if (mc_engine_get(te_eng, "bkt", key, NULL, false, &v) == 0 && !strcmp(v.key, key)) {
            ra->ok++;
        }
        mc_version_clear(&v);
        if (i % 100 == 0) {
            struct mc_list_params lp = {.prefix = "pre-", .max_keys = 50};
            struct mc_list_result lr;
            if (mc_engine_list_objects(te_eng, "bkt", &lp, &lr) == 0 && lr.n_entries == 50) {
                ra->ok++;
            }
            mc_list_result_clear(&lr);
        }
    }
    return NULL;
}

Test(engine_ops, concurrent_readers_while_writing)
{
    mc_engine_close(te_eng);
    te_rmrf(te_dir);
    te_mkdtemp(te_dir, sizeof(te_dir));
    /* A small map so that the writer grows it while readers run. */
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .map_size_bytes = 1 << 20};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), 0);
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    char key[32];
    for (int i = 0; i < 200; i++) {
        snprintf(key, sizeof(key), "pre-%03d", i);
        cr_assert_eq(te_put("bkt", key, "e", NULL), 0);
    }
    pthread_t th[4];
    struct reader_arg ra[4];
    for (int t = 0; t < 4; t++) {
        ra[t] = (struct reader_arg){.id = t};
        pthread_create(&th[t], NULL, reader, &ra[t]);
    }
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "new-%05d", i);
        cr_assert_eq(te_put("bkt", key, "e", NULL), 0);
    }
    for (int t = 0; t < 4; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(ra[t].ok, 3000 + 30, "reader %d saw %d good reads", t, ra[t].ok);
    }
}

/* A dir of an older engine format (no record checksums) is refused with a clear error. */
Test(engine_ops, older_format_refused)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    mc_engine_close(te_eng);
    te_eng = NULL;

    /* Rewrite the format marker as format 2 did: MAGIC u32le(2), no trailer. */
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi meta;
    cr_assert_eq(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 16);
    mdb_env_set_mapsize(env, 256u << 20);
    cr_assert_eq(mdb_env_open(env, te_dir, MDB_WRITEMAP, 0644), 0);
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    uint8_t fmt[12];
    memcpy(fmt, "MCENGINE", 8);
    mc_put_u32le(fmt + 8, 2);
    MDB_val fk = {6, "format"}, fv = {12, fmt};
    cr_assert_eq(mdb_put(txn, meta, &fk, &fv, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), MC_EVERSION);
    cr_assert_null(te_eng);
    const char *e = mc_engine_last_error();
    cr_assert(strstr(e, "data.mdb") && strstr(e, "format 2") && strstr(e, "format 3"), "%s", e);
    o.read_only = true;
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), MC_EVERSION);
}

/* mc_engine_get_encoded must give exactly the bytes of mc_engine_get + mc_version_encode. */
static void check_encoded(const char *b, const char *k, const char *vid, bool with_inline)
{
    struct mc_version v;
    int rc = mc_engine_get(te_eng, b, k, vid, with_inline, &v);
    struct mc_wbuf w1, w2;
    mc_wbuf_init(&w1, 0);
    mc_wbuf_init(&w2, 0);
    mc_wbuf_u8(&w2, 0xAB); /* appends after existing content */
    bool dm = false;
    char mvid[MC_VERSION_ID_MAX + 1];
    int rc2 = mc_engine_get_encoded(te_eng, b, k, vid, with_inline, &w2, &dm, mvid);
    cr_assert_eq(rc2, rc, "%s/%s: %d vs %d", b, k, rc2, rc);
    if (rc == 0) {
        cr_assert_eq(mc_version_encode(&v, &w1), 0);
        cr_assert_eq(w2.len, w1.len + 1);
        cr_assert_eq(memcmp(w2.data + 1, w1.data, w1.len), 0, "%s/%s bytes differ", b, k);
    } else {
        cr_assert_eq(w2.len, 1, "nothing appended on error");
        cr_assert_eq(dm, rc == MC_ENOKEY && v.is_delete_marker);
        if (dm) {
            cr_assert_str_eq(mvid, v.version_id);
        }
    }
    mc_version_clear(&v);
    mc_wbuf_free(&w1);
    mc_wbuf_free(&w2);
}

Test(engine_ops, get_encoded_matches_get)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(te_bucket("plain", MC_VERSIONING_UNVERSIONED), 0);
    struct mc_object_meta m = {
        .etag = strdup("abc"), .content_type = strdup("text/plain"), .size = 3};
    mc_object_meta_add_user(&m, "color", "blue");
    m.inline_data = (uint8_t *)strdup("xyz");
    m.inline_len = 3;
    struct mc_op op;
    struct mc_op_result r1, r2;
    mc_op_put(&op, "plain", "a", NULL, 5, &m);
    cr_assert_eq(te_apply(&op, NULL), 0);
    mc_op_put(&op, "bkt", "a", "v1", 6, &m);
    cr_assert_eq(te_apply(&op, &r1), 0);
    mc_op_put(&op, "bkt", "a", "v2", 7, NULL);
    cr_assert_eq(te_apply(&op, &r2), 0);
    char lk[1001];
    memset(lk, 'L', 1000);
    lk[1000] = 0;
    mc_op_put(&op, "bkt", lk, "v3", 8, &m);
    cr_assert_eq(te_apply(&op, NULL), 0);
    cr_assert_eq(te_del("bkt", "gone", NULL, NULL), 0); /* a marker only */
    mc_object_meta_clear(&m);
    for (int wi = 0; wi < 2; wi++) {
        check_encoded("plain", "a", NULL, wi);
        check_encoded("bkt", "a", NULL, wi);
        check_encoded("bkt", "a", "v1", wi);
        check_encoded("bkt", "a", "nope", wi);
        check_encoded("bkt", lk, NULL, wi);
        check_encoded("bkt", "gone", NULL, wi);
        check_encoded("bkt", "missing", NULL, wi);
        check_encoded("nobucket", "a", NULL, wi);
        check_encoded("bkt", "", NULL, wi);
    }
}

/* mc_engine_get returns one-allocation (block) versions: complete, copyable, read-only. */
Test(engine_ops, get_block_versions)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    struct mc_object_meta m = {.etag = strdup("e"), .size = 7};
    mc_object_meta_add_user(&m, "a", "1");
    mc_object_meta_add_user(&m, "b", ""); /* near-empty pair: the worst case for the block */
    m.inline_data = (uint8_t *)strdup("inline!");
    m.inline_len = 7;
    m.parts = calloc(2, sizeof(*m.parts));
    m.n_parts = 2;
    m.parts[0] = (struct mc_part){.number = 1, .size = 3, .etag = strdup("p1")};
    m.parts[1] = (struct mc_part){.number = 2, .size = 4};
    m.erasure = (struct mc_erasure){.data_blocks = 2, .parity_blocks = 1, .n_distribution = 3};
    m.erasure.distribution = calloc(3, sizeof(uint32_t));
    m.erasure.distribution[2] = 9;
    struct mc_op op;
    mc_op_put(&op, "bkt", "k", "v1", 5, &m);
    cr_assert_eq(te_apply(&op, NULL), 0);
    mc_object_meta_clear(&m);
    for (int by_id = 0; by_id < 2; by_id++) {
        struct mc_version v, c;
        cr_assert_eq(mc_engine_get(te_eng, "bkt", "k", by_id ? "v1" : NULL, true, &v), 0);
        cr_assert_not_null(v.meta.block);
        cr_assert_str_eq(v.key, "k");
        cr_assert_str_eq(v.version_id, "v1");
        cr_assert_eq(v.meta.inline_len, 7);
        cr_assert_eq(memcmp(v.meta.inline_data, "inline!", 7), 0);
        cr_assert_str_eq(v.meta.parts[0].etag, "p1");
        cr_assert_eq(v.meta.erasure.distribution[2], 9);
        cr_assert_str_eq(v.meta.user_meta[0].value, "1");
        cr_assert_eq(mc_object_meta_add_user(&v.meta, "x", "y"), MC_EINVAL, "read-only");
        cr_assert_eq(mc_version_copy(&c, &v), 0);
        cr_assert_null(c.meta.block, "a copy owns its fields");
        cr_assert_eq(mc_object_meta_add_user(&c.meta, "x", "y"), 0);
        mc_version_clear(&v);
        cr_assert_null(v.key);
        mc_version_clear(&c);
    }
}

/* A refusal that has no sentence of its own must not answer with the previous call's sentence
 * (the node replies with mc_engine_last_error(): it leaked another bucket's marker text). */
Test(engine_ops, error_sentence_does_not_leak)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(te_put("bkt", "k", "e1", NULL), 0);
    const char *secret = "SECRETMARKER7";
    struct mc_list_params p = {.key_marker = "k", .version_id_marker = secret};
    struct mc_list_result r;
    for (int i = 0; i < 9; i++) {
        cr_assert_neq(mc_engine_list_versions(te_eng, "bkt", &p, &r), 0);
        mc_list_result_clear(&r);
        cr_assert(strstr(mc_engine_last_error(), secret), "%s", mc_engine_last_error());
        struct mc_version v;
        int rc = 0;
        bool dm = false;
        char mvid[MC_VERSION_ID_MAX + 1];
        struct mc_wbuf w;
        mc_wbuf_init(&w, 0);
        switch (i) {
        case 0:
            rc = mc_engine_get(te_eng, "bkt", "missing", NULL, false, &v);
            cr_assert_eq(rc, MC_ENOKEY);
            break;
        case 1:
            rc = mc_engine_get(te_eng, "bkt", "k", "0000000000000000", false, &v);
            cr_assert_eq(rc, MC_ENOVERSION);
            break;
        case 2:
            rc = mc_engine_get(te_eng, "bkt", "", NULL, false, &v);
            cr_assert_eq(rc, MC_EBADKEY);
            break;
        case 3:
            rc = mc_engine_get(te_eng, "", "k", NULL, false, &v);
            cr_assert_eq(rc, MC_ENOBUCKET);
            break;
        case 4:
            rc = mc_engine_get_encoded(te_eng, "bkt", "missing", NULL, false, &w, &dm, mvid);
            cr_assert_eq(rc, MC_ENOKEY);
            break;
        case 5:
            rc =
                mc_engine_get_encoded(te_eng, "bkt", "k", "0000000000000000", false, &w, &dm, mvid);
            cr_assert_eq(rc, MC_ENOVERSION);
            break;
        case 6:
            rc = mc_engine_get_encoded(te_eng, "bkt", "", NULL, false, &w, &dm, mvid);
            cr_assert_eq(rc, MC_EBADKEY);
            break;
        case 7:
            rc = mc_engine_get_encoded(te_eng, "b", "k", NULL, false, &w, &dm, mvid);
            cr_assert_eq(rc, MC_ENOBUCKET);
            break;
        case 8: {
            cr_assert_eq(te_del("bkt", "k", NULL, NULL), 0);
            rc = mc_engine_get_encoded(te_eng, "bkt", "k", NULL, false, &w, &dm, mvid);
            cr_assert_eq(rc, MC_ENOKEY);
            cr_assert(dm);
            break;
        }
        }
        if (i < 4) {
            mc_version_clear(&v);
        }
        mc_wbuf_free(&w);
        cr_assert_not(strstr(mc_engine_last_error(), secret), "call %d: %s", i,
                      mc_engine_last_error());
        cr_assert_str_neq(mc_engine_last_error(), "no error", "call %d", i);
    }
}

/* mc_engine_bucket_count (the leader's bucket cap, node_write.c): one per bucket, objects and
 * failed creates not counted, deletes counted down. */
Test(engine_ops, bucket_count_follows_creates_and_deletes)
{
    cr_assert_eq(mc_engine_bucket_count(te_eng), 0);
    cr_assert_eq(te_bucket("one", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(te_bucket("two", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(te_bucket("two", MC_VERSIONING_ENABLED), MC_EBUCKETEXISTS);
    cr_assert_eq(te_put("one", "k", "e", NULL), 0);
    cr_assert_eq(mc_engine_bucket_count(te_eng), 2);
    struct mc_op op;
    mc_op_bucket_delete(&op, "two");
    cr_assert_eq(te_apply(&op, NULL), 0);
    cr_assert_eq(mc_engine_bucket_count(te_eng), 1);
}

/* The op clock (newest op time applied) survives in the engine: a leader restarted from an image
 * floors its op times with it (node_write.c). Version ids from op times sort in time order. */
Test(engine_ops, op_clock_and_time_version_ids)
{
    int64_t clock_ns = -1;
    cr_assert_eq(mc_engine_op_clock(te_eng, &clock_ns), 0);
    cr_assert_eq(clock_ns, 0);
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    const int64_t t0 = 1795714511750903813LL;
    char prev[17] = "";
    for (int i = 0; i < 3; i++) {
        char vid[17];
        mc_version_id_from_time(vid, t0 + i);
        cr_assert_eq(strlen(vid), 16);
        cr_assert_gt(strcmp(vid, prev), 0, "%s after %s", vid, prev);
        memcpy(prev, vid, sizeof(vid));
        struct mc_op op;
        cr_assert_eq(mc_op_put(&op, "bkt", "k", vid, t0 + i, NULL), 0);
        cr_assert_eq(te_apply(&op, NULL), 0);
    }
    struct mc_op op;
    cr_assert_eq(mc_op_bucket_versioning(&op, "bkt", MC_VERSIONING_SUSPENDED), 0);
    op.time_ns = t0 - 5; /* an older time does not move the clock back */
    cr_assert_eq(te_apply(&op, NULL), 0);
    cr_assert_eq(mc_engine_op_clock(te_eng, &clock_ns), 0);
    cr_assert_eq(clock_ns, t0 + 2);
    mc_engine_close(te_eng);
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), 0);
    cr_assert_eq(mc_engine_op_clock(te_eng, &clock_ns), 0);
    cr_assert_eq(clock_ns, t0 + 2, "kept across a reopen");
}
