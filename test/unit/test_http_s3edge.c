/* test_http_s3edge.c: S3 edges of the HTTP API mended in session 8: empty version ids, the
 * bucket checked before a listing's version-id-marker, etags that cannot go in a header,
 * reserved bucket names, part numbers. */
#include "test_http_s3fixture.h"

TestSuite(http_s3edge, .init = s3_start, .fini = s3_stop, .timeout = 30);

/* The version id of the only version of bk1/k (versioning enabled). */
static void put_one(char *vid, size_t cap)
{
    json_decref(s3_req("PUT", "/v1/buckets/bk1", "{\"versioning\":\"enabled\"}", 200, NULL));
    json_t *j = s3_req("PUT", "/v1/buckets/bk1/objects/k", "{\"size\":1}", 200, NULL);
    snprintf(vid, cap, "%s", json_string_value(json_object_get(j, "version_id")));
    json_decref(j);
}

/* S3 answers an empty versionId with 400 InvalidArgument ("Version id cannot be the empty
 * string"); read as "no version id" a DELETE added a delete marker over the latest. */
Test(http_s3edge, empty_version_id_is_400)
{
    char vid[128], path[512];
    put_one(vid, sizeof vid);
    const char *bad[] = {"version-id=", "versionId=", "versionId", "version-id"};
    const char *methods[] = {"GET", "HEAD", "DELETE"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(path, sizeof path, "/v1/buckets/bk1/objects/k?%s", bad[i]);
        for (int m = 0; m < 3; m++) {
            struct th_resp r;
            json_t *j = s3_req(methods[m], path, NULL, 400, &r);
            if (m != 1) { /* HEAD has no body */
                cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "InvalidArgument");
                cr_assert(strstr(json_string_value(json_object_get(j, "message")), "empty"));
            }
            json_decref(j);
            thc_free(&r);
        }
    }
    /* Nothing was deleted: one version, no marker. */
    json_t *j = s3_req("GET", "/v1/buckets/bk1/versions", NULL, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "versions")), 1);
    json_decref(j);
    /* S3's spelling names a version too, alone or with an equal version-id. */
    snprintf(path, sizeof path, "/v1/buckets/bk1/objects/k?versionId=%s", vid);
    j = s3_req("GET", path, NULL, 200, NULL);
    cr_assert_str_eq(json_string_value(json_object_get(j, "version_id")), vid);
    json_decref(j);
    s3_error("GET", "/v1/buckets/bk1/objects/k?versionId=0000000000000001", NULL, 404,
             "NoSuchVersion");
    snprintf(path, sizeof path, "/v1/buckets/bk1/objects/k?versionId=%s&version-id=x", vid);
    s3_error("GET", path, NULL, 400, "InvalidArgument");
    snprintf(path, sizeof path, "/v1/buckets/bk1/objects/k?versionId=%s&version-id=%s", vid, vid);
    json_decref(s3_req("DELETE", path, NULL, 200, NULL));
    j = s3_req("GET", "/v1/buckets/bk1/versions", NULL, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "versions")), 0);
    json_decref(j);
}

/* S3 checks the bucket before a listing's version-id-marker: a missing bucket is 404
 * NoSuchBucket even when the marker is malformed. */
Test(http_s3edge, missing_bucket_before_bad_version_id_marker)
{
    s3_error("GET", "/v1/buckets/nob/versions?key-marker=a&version-id-marker=a%20b", NULL, 404,
             "NoSuchBucket");
    json_decref(s3_req("PUT", "/v1/buckets/bk1", "{\"versioning\":\"enabled\"}", 200, NULL));
    s3_error("GET", "/v1/buckets/bk1/versions?key-marker=a&version-id-marker=a%20b", NULL, 400,
             "InvalidArgument");
}

/* An etag that cannot go in a quoted ETag header is refused at input (400 InvalidArgument
 * naming the byte); one up to the limit is sent whole. */
Test(http_s3edge, etag_checked_at_input)
{
    json_decref(s3_req("PUT", "/v1/buckets/bk1", NULL, 200, NULL));
    static const char *const bad[] = {"{\"etag\":\"a\\\"b\"}",
                                      "{\"etag\":\"x\\r\\nX-Injected: 1\"}", "{\"etag\":\"a b\"}",
                                      "{\"etag\":\"\\u00e9\"}", "{\"etag\":\"\\u0001\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = s3_req("PUT", "/v1/buckets/bk1/objects/k", bad[i], 400, NULL);
        cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "InvalidArgument");
        const char *msg = json_string_value(json_object_get(j, "message"));
        cr_assert(msg && strstr(msg, "etag byte"), "%s: %s", bad[i], msg);
        json_decref(j);
    }
    s3_error("GET", "/v1/buckets/bk1/objects/k", NULL, 404, "NoSuchKey");
    static char body[MC_SHORT_STR_MAX + 64], et[MC_SHORT_STR_MAX + 3], h[MC_SHORT_STR_MAX + 8];
    char etag[MC_SHORT_STR_MAX + 1];
    memset(etag, 'e', MC_SHORT_STR_MAX);
    etag[MC_SHORT_STR_MAX] = 0;
    snprintf(body, sizeof body, "{\"etag\":\"%s\"}", etag);
    json_decref(s3_req("PUT", "/v1/buckets/bk1/objects/k", body, 200, NULL));
    struct th_resp r;
    json_decref(s3_req("GET", "/v1/buckets/bk1/objects/k", NULL, 200, &r));
    snprintf(et, sizeof et, "\"%s\"", etag);
    cr_assert_str_eq(thc_header(&r, "ETag", h, sizeof h), et);
    thc_free(&r);
}

/* Reserved bucket names are 400 InvalidBucketName over HTTP too (the engine decides). */
Test(http_s3edge, reserved_bucket_names)
{
    static const char *const bad[] = {"xn--abc",     "sthree-abc",    "amzn-s3-demo-x",
                                      "abc-s3alias", "abc--ol-s3",    "abc.mrap",
                                      "abc--x-s3",   "abc--table-s3", "192.168.5.4"};
    char path[128];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(path, sizeof path, "/v1/buckets/%s", bad[i]);
        s3_error("PUT", path, NULL, 400, "InvalidBucketName");
    }
    json_t *j = s3_req("GET", "/v1/buckets", NULL, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "buckets")), 0);
    json_decref(j);
}

/* The API has no partNumber query (GET/HEAD serve the whole record); part numbers come in the
 * PUT body's parts[] and are checked there: 1..10000, ascending (400 InvalidArgument). */
Test(http_s3edge, part_numbers_in_put_body)
{
    json_decref(s3_req("PUT", "/v1/buckets/bk1", NULL, 200, NULL));
    static const char *const bad[] = {"{\"parts\":[{\"number\":0,\"size\":1}]}",
                                      "{\"parts\":[{\"number\":10001,\"size\":1}]}",
                                      "{\"parts\":[{\"number\":2,\"size\":1},{\"number\":1}]}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        json_t *j = s3_req("PUT", "/v1/buckets/bk1/objects/k", bad[i], 400, NULL);
        cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "InvalidArgument");
        const char *msg = json_string_value(json_object_get(j, "message"));
        cr_assert(msg && strstr(msg, "part number"), "%s: %s", bad[i], msg);
        json_decref(j);
    }
    json_decref(s3_req("PUT", "/v1/buckets/bk1/objects/k",
                       "{\"parts\":[{\"number\":1,\"size\":1},{\"number\":10000,\"size\":2}]}", 200,
                       NULL));
}
