/* test_http_s3sem.c: S3 semantics of the HTTP API mended after review: a delete marker read by
 * version id (405), the marker's id on a 404, max-keys=0, over-long keys and version ids. */
#include "test_http_s3fixture.h"

TestSuite(http_s3sem, .init = s3_start, .fini = s3_stop, .timeout = 30);

Test(http_s3sem, delete_marker_by_version_id_is_405)
{
    json_decref(s3_req("PUT", "/v1/buckets/bk1", "{\"versioning\":\"enabled\"}", 200, NULL));
    json_decref(s3_req("PUT", "/v1/buckets/bk1/objects/k", "{\"size\":1}", 200, NULL));
    json_t *j = s3_req("DELETE", "/v1/buckets/bk1/objects/k", NULL, 200, NULL);
    char dm[128], h[128], path[256];
    snprintf(dm, sizeof dm, "%s", json_string_value(json_object_get(j, "version_id")));
    json_decref(j);
    snprintf(path, sizeof path, "/v1/buckets/bk1/objects/k?version-id=%s", dm);
    for (int head = 0; head <= 1; head++) {
        struct th_resp r;
        j = s3_req(head ? "HEAD" : "GET", path, NULL, 405, &r);
        cr_assert_str_eq(thc_header(&r, "X-Delete-Marker", h, sizeof h), "true");
        cr_assert_str_eq(thc_header(&r, "X-Version-Id", h, sizeof h), dm);
        cr_assert_str_eq(thc_header(&r, "Allow", h, sizeof h), "DELETE");
        cr_assert_not_null(thc_header(&r, "Last-Modified", h, sizeof h));
        cr_assert(strstr(h, " GMT"), "%s", h);
        if (head) {
            cr_assert_eq(r.body_len, 0);
        } else {
            cr_assert_str_eq(json_string_value(json_object_get(j, "error")), "MethodNotAllowed");
        }
        json_decref(j);
        thc_free(&r);
        /* The latest is the marker: 404 carrying its id in a header too (HEAD has no body). */
        j = s3_req(head ? "HEAD" : "GET", "/v1/buckets/bk1/objects/k", NULL, 404, &r);
        cr_assert_str_eq(thc_header(&r, "X-Delete-Marker", h, sizeof h), "true");
        cr_assert_str_eq(thc_header(&r, "X-Version-Id", h, sizeof h), dm);
        json_decref(j);
        thc_free(&r);
    }
}

Test(http_s3sem, max_keys_zero_is_an_empty_listing)
{
    json_decref(s3_req("PUT", "/v1/buckets/bk1", "{\"versioning\":\"enabled\"}", 200, NULL));
    json_decref(s3_req("PUT", "/v1/buckets/bk1/objects/a", "{\"size\":1}", 200, NULL));
    json_decref(s3_req("PUT", "/v1/buckets/bk1/objects/b", "{\"size\":1}", 200, NULL));
    const char *paths[] = {"/v1/buckets/bk1/objects?max-keys=0",
                           "/v1/buckets/bk1/versions?max-keys=0"};
    for (int i = 0; i < 2; i++) {
        json_t *j = s3_req("GET", paths[i], NULL, 200, NULL);
        cr_assert(json_is_false(json_object_get(j, "is_truncated")), "%s", paths[i]);
        cr_assert_eq(json_integer_value(json_object_get(j, "key_count")), 0);
        json_t *objs = json_object_get(j, i ? "versions" : "objects");
        cr_assert(json_is_array(objs) && json_array_size(objs) == 0, "%s", paths[i]);
        json_decref(j);
    }
    s3_error("GET", "/v1/buckets/nob/objects?max-keys=0", NULL, 404, "NoSuchBucket");
    s3_error("GET", "/v1/buckets/nob/versions?max-keys=0", NULL, 404, "NoSuchBucket");
    s3_error("GET", "/v1/buckets/bk1/objects?max-keys=-1", NULL, 400, "InvalidArgument");
    /* The default still lists. */
    json_t *j = s3_req("GET", "/v1/buckets/bk1/objects", NULL, 200, NULL);
    cr_assert_eq(json_integer_value(json_object_get(j, "key_count")), 2);
    json_decref(j);
}

/* Over-long keys and version ids are named as such, not ProtocolError (the op codec caps them). */
Test(http_s3sem, key_and_version_id_too_long)
{
    json_decref(s3_req("PUT", "/v1/buckets/bk1", "{\"versioning\":\"enabled\"}", 200, NULL));
    char path[1300];
    int n = snprintf(path, sizeof path, "/v1/buckets/bk1/objects/");
    memset(path + n, 'k', 1025);
    path[n + 1025] = 0;
    s3_error("PUT", path, "{\"size\":1}", 400, "KeyTooLongError");
    s3_error("DELETE", path, NULL, 400, "KeyTooLongError");
    path[n + 1024] = 0;
    json_decref(s3_req("PUT", path, "{\"size\":1}", 200, NULL));
    char vid[80];
    memset(vid, 'a', 65);
    vid[65] = 0;
    snprintf(path, sizeof path, "/v1/buckets/bk1/objects/k?version-id=%s", vid);
    s3_error("DELETE", path, NULL, 400, "InvalidArgument");
}

/* A deleted marker version is a position; a malformed one is 400 InvalidArgument. */
Test(http_s3sem, version_id_marker_position)
{
    json_decref(s3_req("PUT", "/v1/buckets/bk1", "{\"versioning\":\"enabled\"}", 200, NULL));
    char vid[3][128], path[256];
    for (int i = 0; i < 3; i++) {
        json_t *j = s3_req("PUT", "/v1/buckets/bk1/objects/a", "{\"size\":1}", 200, NULL);
        snprintf(vid[i], sizeof vid[i], "%s", json_string_value(json_object_get(j, "version_id")));
        json_decref(j);
    }
    snprintf(path, sizeof path, "/v1/buckets/bk1/objects/a?version-id=%s", vid[1]);
    json_decref(s3_req("DELETE", path, NULL, 200, NULL));
    snprintf(path, sizeof path, "/v1/buckets/bk1/versions?key-marker=a&version-id-marker=%s",
             vid[1]);
    json_t *j = s3_req("GET", path, NULL, 200, NULL);
    json_t *vs = json_object_get(j, "versions");
    cr_assert_eq(json_array_size(vs), 1);
    cr_assert_str_eq(json_string_value(json_object_get(json_array_get(vs, 0), "version_id")),
                     vid[0]);
    json_decref(j);
    s3_error("GET", "/v1/buckets/bk1/versions?key-marker=a&version-id-marker=a%20b", NULL, 400,
             "InvalidArgument");
}
