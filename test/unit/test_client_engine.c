/* test_client_engine.c: every engine op through the client library, the wire protocol and an
 * engine-backed single-node server; exactly-once against the engine's session table. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../client/harness.h"
#include "metacenter/client.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"

static char g_dir[64];

static struct th_server *start_engine(int drops)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/mc_client_engine_XXXXXX");
    cr_assert_not_null(mkdtemp(g_dir));
    struct th_opts o = {.mode = TH_ENGINE, .engine_dir = g_dir, .drop_after_apply = drops};
    struct th_server *s = NULL;
    cr_assert_eq(th_start(&o, &s), 0);
    return s;
}

static void stop_engine(struct th_server *s)
{
    th_stop(s, NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g_dir);
    cr_assert_eq(system(cmd), 0);
}

static struct mc_client *open_client(const char *eps)
{
    struct mc_client *c = NULL;
    cr_assert_eq(mc_client_open(eps, NULL, &c), 0);
    return c;
}

static int put(struct mc_client *c, const char *b, const char *k, uint64_t size, const char *etag,
               struct mc_op_result *res)
{
    struct mc_object_meta m = {0};
    m.size = size;
    m.etag = (char *)etag;
    m.content_type = "text/plain";
    return mc_client_put(c, b, k, &m, NULL, res);
}

Test(client_engine, every_op)
{
    struct th_server *s = start_engine(0);
    struct mc_client *c = open_client(th_addr(s));

    /* buckets */
    cr_assert_eq(mc_client_bucket_create(c, "photos", MC_VERSIONING_ENABLED), 0);
    cr_assert_eq(mc_client_bucket_create(c, "docs", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(mc_client_bucket_create(c, "photos", MC_VERSIONING_ENABLED), MC_EBUCKETEXISTS);
    cr_assert_eq(mc_client_bucket_create(c, "Bad_Name", MC_VERSIONING_ENABLED), MC_EBUCKETNAME);
    struct mc_bucket_info bi;
    cr_assert_eq(mc_client_bucket_head(c, "photos", &bi), 0);
    cr_assert_str_eq(bi.name, "photos");
    cr_assert_eq(bi.versioning, MC_VERSIONING_ENABLED);
    cr_assert_eq(mc_client_bucket_head(c, "nope", &bi), MC_ENOBUCKET);
    struct mc_bucket_info *list;
    size_t n;
    cr_assert_eq(mc_client_bucket_list(c, &list, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(list[0].name, "docs");
    free(list);
    cr_assert_eq(mc_client_bucket_versioning(c, "docs", MC_VERSIONING_SUSPENDED), 0);

    /* put / get / head */
    struct mc_op_result r1, r2;
    cr_assert_eq(put(c, "photos", "2024/a.jpg", 100, "e1", &r1), 0);
    cr_assert_str_neq(r1.version_id, "");
    cr_assert_eq(put(c, "photos", "2024/a.jpg", 200, "e2", &r2), 0);
    cr_assert_str_neq(r1.version_id, r2.version_id);
    struct mc_version v;
    cr_assert_eq(mc_client_get(c, "photos", "2024/a.jpg", NULL, &v), 0);
    cr_assert_eq(v.meta.size, 200);
    cr_assert_str_eq(v.meta.etag, "e2");
    cr_assert_str_eq(v.meta.content_type, "text/plain");
    cr_assert_str_eq(v.version_id, r2.version_id);
    mc_version_clear(&v);
    cr_assert_eq(mc_client_get(c, "photos", "2024/a.jpg", r1.version_id, &v), 0);
    cr_assert_eq(v.meta.size, 100);
    mc_version_clear(&v);
    cr_assert_eq(mc_client_head(c, "photos", "2024/a.jpg", NULL, &v), 0);
    cr_assert_eq(v.meta.size, 200);
    mc_version_clear(&v);
    cr_assert_eq(mc_client_get(c, "photos", "missing", NULL, &v), MC_ENOKEY);
    cr_assert_eq(mc_client_get(c, "nobucket", "k", NULL, &v), MC_ENOBUCKET);

    /* conditional puts */
    struct mc_put_cond cond = {.if_none_match_star = true};
    struct mc_op_result res;
    cr_assert_eq(mc_client_put(c, "photos", "2024/a.jpg", NULL, &cond, &res), MC_EPRECOND);
    cr_assert_eq(res.code, MC_EPRECOND, "the failed op's result travels with the error");
    cond = (struct mc_put_cond){.if_match = "e2"};
    cr_assert_eq(mc_client_put(c, "photos", "2024/a.jpg", NULL, &cond, &res), 0);
    cond = (struct mc_put_cond){.if_match = "wrong"};
    cr_assert_eq(mc_client_put(c, "photos", "2024/a.jpg", NULL, &cond, &res), MC_EPRECOND);

    /* update metadata in place */
    struct mc_object_meta um = {0};
    cr_assert_eq(mc_object_meta_add_user(&um, "color", "blue"), 0);
    cr_assert_eq(mc_client_update_meta(c, "photos", "2024/a.jpg", r1.version_id,
                                       MC_UPDATE_USER_META, &um, &res),
                 0);
    mc_object_meta_clear(&um);
    cr_assert_eq(mc_client_get(c, "photos", "2024/a.jpg", r1.version_id, &v), 0);
    cr_assert_eq(v.meta.n_user_meta, 1);
    cr_assert_str_eq(v.meta.user_meta[0].value, "blue");
    mc_version_clear(&v);

    /* delete → marker; get says NoSuchKey with the delete-marker flag */
    struct mc_op_result dm;
    cr_assert_eq(mc_client_delete(c, "photos", "2024/a.jpg", NULL, &dm), 0);
    cr_assert(dm.delete_marker);
    cr_assert_eq(mc_client_get(c, "photos", "2024/a.jpg", NULL, &v), MC_ENOKEY);
    cr_assert(mc_client_last_error(c)->delete_marker);
    cr_assert_str_eq(mc_client_last_error(c)->version_id, dm.version_id);

    /* list versions: 3 versions + marker, newest first */
    struct mc_list_args la = {.bucket = "photos"};
    struct mc_list_result lr;
    cr_assert_eq(mc_client_list_versions(c, &la, &lr), 0);
    cr_assert_eq(lr.n_entries, 4);
    cr_assert(lr.entries[0].is_delete_marker && lr.entries[0].is_latest);
    mc_list_result_clear(&lr);
    /* deleting the marker by id restores the previous version */
    cr_assert_eq(mc_client_delete(c, "photos", "2024/a.jpg", dm.version_id, &res), 0);
    cr_assert_eq(mc_client_get(c, "photos", "2024/a.jpg", NULL, &v), 0);
    mc_version_clear(&v);

    /* list objects with prefix / delimiter / paging */
    const char *keys[] = {"2024/b.jpg", "2024/c.jpg", "2025/x/y.jpg", "top.txt"};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(put(c, "photos", keys[i], 1, "e", NULL), 0);
    }
    la = (struct mc_list_args){.bucket = "photos", .delimiter = "/"};
    cr_assert_eq(mc_client_list_objects(c, &la, &lr), 0);
    cr_assert_eq(lr.n_entries, 1);
    cr_assert_str_eq(lr.entries[0].key, "top.txt");
    cr_assert_eq(lr.n_prefixes, 2);
    cr_assert_str_eq(lr.common_prefixes[0], "2024/");
    mc_list_result_clear(&lr);
    la = (struct mc_list_args){.bucket = "photos", .prefix = "2024/", .max_keys = 2};
    cr_assert_eq(mc_client_list_objects(c, &la, &lr), 0);
    cr_assert_eq(lr.n_entries, 2);
    cr_assert(lr.is_truncated);
    char token[256];
    snprintf(token, sizeof(token), "%s", lr.next_continuation_token);
    mc_list_result_clear(&lr);
    la.continuation_token = token;
    cr_assert_eq(mc_client_list_objects(c, &la, &lr), 0);
    cr_assert_eq(lr.n_entries, 1);
    cr_assert_str_eq(lr.entries[0].key, "2024/c.jpg");
    cr_assert_not(lr.is_truncated);
    mc_list_result_clear(&lr);
    la = (struct mc_list_args){.bucket = "photos", .start_after = "2024/c.jpg"};
    cr_assert_eq(mc_client_list_objects(c, &la, &lr), 0);
    cr_assert_eq(lr.n_entries, 2);
    mc_list_result_clear(&lr);

    /* atomic batch: all or nothing */
    struct mc_op ops[3] = {0};
    mc_op_put(&ops[0], "docs", "one", NULL, 0, NULL);
    mc_op_put(&ops[1], "docs", "two", NULL, 0, NULL);
    mc_op_put(&ops[2], "nobucket", "three", NULL, 0, NULL);
    cr_assert_eq(mc_client_batch(c, ops, 3, &res), MC_ENOBUCKET);
    cr_assert_eq(res.failed_op, 2);
    cr_assert_eq(mc_client_get(c, "docs", "one", NULL, &v), MC_ENOKEY, "nothing applied");
    cr_assert_eq(mc_client_batch(c, ops, 2, &res), 0);
    cr_assert_eq(mc_client_get(c, "docs", "two", NULL, &v), 0);
    mc_version_clear(&v);
    for (int i = 0; i < 3; i++) {
        mc_op_clear(&ops[i]);
    }

    /* bucket delete needs an empty bucket */
    cr_assert_eq(mc_client_bucket_delete(c, "docs"), MC_EBUCKETNOTEMPTY);
    /* suspended bucket: the puts wrote the "null" version; remove it permanently */
    cr_assert_eq(mc_client_delete(c, "docs", "one", "null", NULL), 0);
    cr_assert_eq(mc_client_delete(c, "docs", "two", "null", NULL), 0);
    cr_assert_eq(mc_client_bucket_delete(c, "docs"), 0);

    /* state hash */
    struct mc_check_result ck1, ck2;
    cr_assert_eq(mc_client_check(c, 0, 0, &ck1), 0);
    cr_assert_neq(ck1.hash, 0);
    cr_assert_eq(mc_client_check(c, 0, 0, &ck2), 0);
    cr_assert_eq(ck1.hash, ck2.hash);
    cr_assert_eq(put(c, "photos", "new", 1, "e", NULL), 0);
    cr_assert_eq(mc_client_check(c, 0, 0, &ck2), 0);
    cr_assert_neq(ck1.hash, ck2.hash);
    cr_assert_gt(ck2.index, ck1.index);

    mc_client_close(c);
    stop_engine(s);
}

Test(client_engine, exactly_once_with_engine_sessions)
{
    /* the first 4 writes are applied but their replies are lost: the retries must hit the
     * engine's session cache and not apply again (a second put would add a version) */
    struct th_server *s = start_engine(4);
    struct mc_client *c = open_client(th_addr(s));
    cr_assert_eq(mc_client_bucket_create(c, "bkt", MC_VERSIONING_ENABLED), 0);
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(put(c, "bkt", "k", (uint64_t)i, "e", NULL), 0);
    }
    struct mc_list_args la = {.bucket = "bkt"};
    struct mc_list_result lr;
    cr_assert_eq(mc_client_list_versions(c, &la, &lr), 0);
    cr_assert_eq(lr.n_entries, 4, "4 puts made exactly 4 versions");
    mc_list_result_clear(&lr);
    cr_assert_eq(th_duplicates(s), 4);
    mc_client_close(c);
    stop_engine(s);
}

static int g_done, g_err;

static void cb(void *arg, const struct mc_client_result *r)
{
    (void)arg;
    g_done++;
    if (r->status != 0) {
        g_err++;
    }
}

Test(client_engine, pipelined_writes_and_reads)
{
    struct th_server *s = start_engine(0);
    struct mc_client *c = open_client(th_addr(s));
    cr_assert_eq(mc_client_bucket_create(c, "bkt", MC_VERSIONING_UNVERSIONED), 0);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "key-%04d", i);
        struct mc_op op = {0};
        cr_assert_eq(mc_op_put(&op, "bkt", key, NULL, 0, NULL), 0);
        cr_assert_eq(mc_client_op_async(c, &op, cb, NULL), 0);
        mc_op_clear(&op);
    }
    while (g_done < 1000) {
        cr_assert_geq(mc_client_poll(c, 1000), 0);
    }
    cr_assert_eq(g_err, 0);
    g_done = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "key-%04d", i);
        cr_assert_eq(mc_client_get_async(c, true, "bkt", key, NULL, NULL, cb, NULL), 0);
    }
    while (g_done < 1000) {
        cr_assert_geq(mc_client_poll(c, 1000), 0);
    }
    cr_assert_eq(g_err, 0);
    cr_assert_eq(th_applied(s), 1001);
    cr_assert_eq(th_duplicates(s), 0);
    mc_client_close(c);
    stop_engine(s);
}
