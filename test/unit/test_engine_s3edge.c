/* test_engine_s3edge.c: S3 input rules added in session 8 — etags that cannot go in a header,
 * reserved bucket names, part numbers — are input checks (the HTTP and CLI parsers, node_write.c
 * for bucket names), not apply rules: apply keeps the rules it had, so replicas of different
 * versions apply the same log alike (engine.h). */
#include "test_engine_util.h"

TestSuite(engine_s3edge, .init = te_setup, .fini = te_teardown);

/* Apply a put of b/k carrying meta; returns the result code. */
static int put_meta(const char *b, const char *k, const struct mc_object_meta *m)
{
    char vid[17];
    te_next_vid(vid);
    struct mc_op op;
    cr_assert_eq(mc_op_put(&op, b, k, vid, 1000 + (int64_t)te_index, m), 0);
    return te_apply(&op, NULL);
}

/* An etag is sent as a quoted ETag header: '"', controls (CR LF: response splitting), spaces
 * and bytes outside ASCII are refused at input (the JSON parsers, with a message); apply keeps
 * accepting them, and the HTTP layer leaves such a stored etag out of the header. */
Test(engine_s3edge, etag_must_fit_a_quoted_header)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_ENABLED), 0);
    static const char *const bad[] = {"a\"b", "\"abc\"", "x\r\nSet-Cookie: a=1", "a b",
                                      "a\tb", "\x7f",    "caf\xc3\xa9",          "a\x01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct mc_object_meta m = {.etag = (char *)bad[i]};
        cr_assert_eq(mc_validate_etag(bad[i]), MC_EINVAL, "%zu", i);
        cr_assert(strstr(mc_engine_last_error(), "etag byte"), "%s", mc_engine_last_error());
        cr_assert_eq(mc_validate_object_meta_input(&m), MC_EINVAL, "%zu", i);
        cr_assert_eq(put_meta("bkt", "k", &m), 0, "apply must keep accepting it (%zu)", i);
    }
    char longest[MC_SHORT_STR_MAX + 2];
    memset(longest, 'a', MC_SHORT_STR_MAX + 1);
    longest[MC_SHORT_STR_MAX + 1] = 0;
    struct mc_object_meta m = {.etag = longest};
    cr_assert_eq(put_meta("bkt", "k", &m), MC_EINVAL);
    longest[MC_SHORT_STR_MAX] = 0;
    cr_assert_eq(put_meta("bkt", "k", &m), 0);
    static const char *const good[] = {"", "d41d8cd98f00b204e9800998ecf8427e",
                                       "9b2cf535f27731c974343645a3985328-3", "W/x!#$%&'()*+,~"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        m.etag = (char *)good[i];
        cr_assert_eq(mc_validate_etag(good[i]), 0, "%zu", i);
        cr_assert_eq(put_meta("bkt", "k", &m), 0, "%zu", i);
    }
    cr_assert_eq(mc_validate_etag(NULL), 0);
    struct mc_version v;
    cr_assert_eq(mc_engine_get(te_eng, "bkt", "k", NULL, false, &v), 0);
    cr_assert_str_eq(v.meta.etag, good[3]);
    mc_version_clear(&v);

    const char *js = "{\"size\":1,\"etag\":\"a\\\"b\"}";
    struct mc_object_meta jm;
    cr_assert_eq(mc_object_meta_from_json(js, strlen(js), &jm), MC_EINVAL);
    cr_assert(strstr(mc_engine_last_error(), "etag byte 1 is 0x22"), "%s", mc_engine_last_error());
    js = "{\"bogus\":1}"; /* other refusals keep the general message */
    cr_assert_eq(mc_object_meta_from_json(js, strlen(js), &jm), MC_EINVAL);
    cr_assert(strstr(mc_engine_last_error(), "wrong field or type"), "%s", mc_engine_last_error());
}

/* S3's reserved prefixes and suffixes (User Guide, general purpose bucket naming rules) and
 * names formatted as an IP address are InvalidBucketName; near misses are fine. */
Test(engine_s3edge, reserved_bucket_names)
{
    static const char *const bad[] = {
        "xn--abc",    "sthree-abc",     "sthree-configurator", "amzn-s3-demo-bucket", "abc-s3alias",
        "abc--ol-s3", "abc.mrap",       "abc--x-s3",           "abc--table-s3",       "192.168.5.4",
        "10.0.0.1",   "255.255.255.255"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(mc_validate_new_bucket_name(bad[i]), MC_EBUCKETNAME, "%s", bad[i]);
    }
    /* Apply keeps its rules: a reserved name (an older leader may propose one) is created, an
     * IP-formatted one (refused from the start) is not. */
    cr_assert_eq(te_bucket("xn--abc", MC_VERSIONING_UNVERSIONED), 0);
    cr_assert_eq(te_bucket("10.0.0.1", MC_VERSIONING_UNVERSIONED), MC_EBUCKETNAME);
    static const char *const good[] = {
        "xn-abc",       "axn--bc",      "sthree",    "sthreeabc", "amzn-s3-demo",
        "abc-s3aliasx", "abc-ol-s3",    "abc.mrapx", "mrap.abc",  "abc-x-s3",
        "abc-table-s3", "192.168.5.4a", "192.168.5", "1.2.3.4.5"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        cr_assert_eq(mc_validate_new_bucket_name(good[i]), 0, "%s", good[i]);
        cr_assert_eq(te_bucket(good[i], MC_VERSIONING_UNVERSIONED), 0, "%s", good[i]);
    }
}

/* Part numbers are 1..10000 (S3 UploadPart), ascending and unique (CompleteMultipartUpload). */
Test(engine_s3edge, part_numbers)
{
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), 0);
    struct mc_part parts[3];
    struct mc_object_meta m = {.parts = parts};
    static const uint32_t bad[][3] = {{0},    {10001},   {UINT32_MAX}, {1, 1},
                                      {2, 1}, {1, 3, 2}, {1, 10001}};
    static const uint32_t n_bad[] = {1, 1, 1, 2, 2, 3, 2};
    for (size_t i = 0; i < sizeof n_bad / sizeof *n_bad; i++) {
        m.n_parts = n_bad[i];
        for (uint32_t j = 0; j < n_bad[i]; j++) {
            parts[j] = (struct mc_part){.number = bad[i][j], .size = 1};
        }
        cr_assert_eq(mc_validate_object_meta_input(&m), MC_EINVAL, "%zu", i);
        cr_assert(strstr(mc_engine_last_error(), "part number"), "%s", mc_engine_last_error());
        cr_assert_eq(put_meta("bkt", "k", &m), 0, "apply must keep accepting it (%zu)", i);
    }
    static const uint32_t good[][3] = {{1}, {10000}, {1, 2, 3}, {2, 7, 10000}};
    static const uint32_t n_good[] = {1, 1, 3, 3};
    for (size_t i = 0; i < sizeof n_good / sizeof *n_good; i++) {
        m.n_parts = n_good[i];
        for (uint32_t j = 0; j < n_good[i]; j++) {
            parts[j] = (struct mc_part){.number = good[i][j], .size = 1};
        }
        cr_assert_eq(put_meta("bkt", "k", &m), 0, "%zu", i);
    }
    const char *js = "{\"parts\":[{\"number\":0,\"size\":1}]}";
    struct mc_object_meta jm;
    cr_assert_eq(mc_object_meta_from_json(js, strlen(js), &jm), MC_EINVAL);
    cr_assert(strstr(mc_engine_last_error(), "part number 0"), "%s", mc_engine_last_error());
}
