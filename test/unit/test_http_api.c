/* test_http_api.c: every HTTP endpoint and error status, against the engine-backed (or fake)
 * client-protocol test server reached through the HTTP server's loopback client. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../client/harness.h"
#include "http/internal.h"
#include "http/server.h"
#include "metacenter/error.h"
#include "obs/metrics.h"
#include "test_http_client.h"
#include "util/clock.h"

static char g_dir[64];
static struct th_server *g_ts;
static struct mc_http_server *g_hs;
static int g_port;

/* Scripted node state for /readyz, /metrics and NotLeader answers. */
static struct {
    int fail;
    bool has_leader;
    uint64_t leader_id;
    uint64_t commit, applied;
    char leader_http[64];
} g_node = {.has_leader = true, .leader_id = 1, .commit = 10, .applied = 10};

static int collect(void *ctx, struct mc_node_metrics *n)
{
    (void)ctx;
    if (g_node.fail)
        return MC_ESHUTDOWN;
    n->node_id = 1;
    n->has_leader = g_node.has_leader;
    n->leader_id = g_node.leader_id;
    n->term = 2;
    n->commit_index = g_node.commit;
    n->applied_index = g_node.applied;
    snprintf(n->leader_http_addr, sizeof n->leader_http_addr, "%s", g_node.leader_http);
    return 0;
}

static bool g_pool;      /* MHD epoll thread pool instead of a thread per connection */
static bool g_blackhole; /* the test server answers nothing */

static void start(enum th_mode mode, bool redirect_unknown, uint32_t timeout_ms)
{
    struct th_opts to = {
        .mode = mode, .redirect_unknown = redirect_unknown, .blackhole = g_blackhole};
    if (mode == TH_ENGINE) {
        snprintf(g_dir, sizeof g_dir, "/tmp/mc_http_api_XXXXXX");
        cr_assert_not_null(mkdtemp(g_dir));
        to.engine_dir = g_dir;
    }
    cr_assert_eq(th_start(&to, &g_ts), 0);
    struct mc_http_options ho = {.listen_addr = "127.0.0.1:0",
                                 .client_addr = th_addr(g_ts),
                                 .threads = 3,
                                 .use_thread_pool = g_pool,
                                 .request_timeout_ms = timeout_ms,
                                 .collect = collect};
    cr_assert_eq(mc_http_start(&ho, &g_hs), 0);
    g_port = mc_http_port(g_hs);
    cr_assert_gt(g_port, 0);
}

static void stop(void)
{
    mc_http_stop(g_hs);
    th_stop(g_ts, NULL);
    if (g_dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", g_dir);
        cr_assert_eq(system(cmd), 0);
    }
}

static void setup_engine(void)
{
    start(TH_ENGINE, false, 2000);
}

static void setup_fake(void)
{
    start(TH_FAKE, false, 2000);
}

/* Request and check status; returns the parsed JSON body (or NULL for empty bodies). */
static json_t *req(const char *method, const char *path, const char *extra, const char *body,
                   int want_status, struct th_resp *out)
{
    struct th_resp r;
    cr_assert_eq(thc_request(g_port, method, path, extra, body, &r), 0, "%s %s: no response",
                 method, path);
    cr_assert_eq(r.status, want_status, "%s %s: status %d, want %d: %s", method, path, r.status,
                 want_status, r.body);
    json_t *j = NULL;
    if (r.body_len > 0) {
        json_error_t e;
        j = json_loads(r.body, 0, &e);
    }
    if (out)
        *out = r;
    else
        thc_free(&r);
    return j;
}

static void expect_error(const char *method, const char *path, const char *extra, const char *body,
                         int status, const char *name)
{
    json_t *j = req(method, path, extra, body, status, NULL);
    cr_assert_not_null(j, "%s %s: error body is not JSON", method, path);
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), name, "%s %s", method, path);
    cr_assert(json_is_string(json_object_get(j, "message")));
    json_decref(j);
}

static const char *jstr(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

TestSuite(http_api, .timeout = 30);

Test(http_api, health_and_ready, .init = setup_engine, .fini = stop)
{
    json_t *j = req("GET", "/healthz", NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(j, "status"), "ok");
    json_decref(j);
    j = req("GET", "/readyz", NULL, NULL, 200, NULL);
    cr_assert(json_is_true(json_object_get(j, "ready")));
    json_decref(j);

    g_node.has_leader = false;
    j = req("GET", "/readyz", NULL, NULL, 503, NULL);
    cr_assert(json_is_false(json_object_get(j, "ready")));
    cr_assert_str_eq(jstr(j, "reason"), "no leader known");
    json_decref(j);

    g_node.has_leader = true;
    g_node.commit = 5000;
    g_node.applied = 3999; /* lag 1001 > default 1000 */
    j = req("GET", "/readyz", NULL, NULL, 503, NULL);
    cr_assert_str_eq(jstr(j, "reason"), "applied index lags the commit index");
    json_decref(j);
    g_node.applied = 4000; /* lag 1000: ready */
    json_decref(req("GET", "/readyz", NULL, NULL, 200, NULL));

    g_node.fail = 1;
    j = req("GET", "/readyz", NULL, NULL, 503, NULL);
    cr_assert_str_eq(jstr(j, "reason"), "node state unavailable");
    json_decref(j);
    json_decref(req("GET", "/healthz", NULL, NULL, 200, NULL)); /* serving still */
}

Test(http_api, buckets, .init = setup_engine, .fini = stop)
{
    json_t *j = req("PUT", "/v1/buckets/photos", NULL, "{\"versioning\":\"enabled\"}", 200, NULL);
    cr_assert_str_eq(jstr(j, "versioning"), "enabled");
    json_decref(j);
    json_decref(req("PUT", "/v1/buckets/docs", NULL, NULL, 200, NULL));
    expect_error("PUT", "/v1/buckets/photos", NULL, NULL, 409, "BucketAlreadyExists");
    expect_error("PUT", "/v1/buckets/Bad_Name", NULL, NULL, 400, "InvalidBucketName");
    expect_error("PUT",
                 "/v1/buckets/a234567890123456789012345678901234567890123456789012345678901234",
                 NULL, NULL, 400, "InvalidBucketName");
    expect_error("PUT", "/v1/buckets/x1x", NULL, "{\"versioning\":\"sometimes\"}", 400,
                 "InvalidArgument");
    expect_error("PUT", "/v1/buckets/x1x", NULL, "{\"other\":1}", 400, "InvalidArgument");
    expect_error("PUT", "/v1/buckets/x1x", NULL, "{not json", 400, "InvalidArgument");

    j = req("GET", "/v1/buckets", NULL, NULL, 200, NULL);
    json_t *bs = json_object_get(j, "buckets");
    cr_assert_eq(json_array_size(bs), 2);
    cr_assert_str_eq(jstr(json_array_get(bs, 0), "name"), "docs");
    cr_assert_str_eq(jstr(json_array_get(bs, 1), "name"), "photos");
    json_decref(j);

    struct th_resp r;
    json_decref(req("HEAD", "/v1/buckets/photos", NULL, NULL, 200, &r));
    cr_assert_eq(r.body_len, 0);
    thc_free(&r);
    j = req("GET", "/v1/buckets/docs", NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(j, "versioning"), "unversioned");
    json_decref(j);
    json_decref(req("HEAD", "/v1/buckets/nope", NULL, NULL, 404, NULL));
    expect_error("GET", "/v1/buckets/nope", NULL, NULL, 404, "NoSuchBucket");

    /* versioning */
    j = req("PUT", "/v1/buckets/docs/versioning", NULL, "{\"status\":\"enabled\"}", 200, NULL);
    cr_assert_str_eq(jstr(j, "versioning"), "enabled");
    json_decref(j);
    j = req("GET", "/v1/buckets/docs", NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(j, "versioning"), "enabled");
    json_decref(j);
    expect_error("PUT", "/v1/buckets/docs/versioning", NULL, "{\"status\":\"unversioned\"}", 400,
                 "InvalidArgument");
    expect_error("PUT", "/v1/buckets/docs/versioning", NULL, NULL, 400, "InvalidArgument");
    expect_error("PUT", "/v1/buckets/nope/versioning", NULL, "{\"status\":\"suspended\"}", 404,
                 "NoSuchBucket");

    /* delete: not empty, then empty */
    json_decref(req("PUT", "/v1/buckets/docs/objects/k", NULL, "{}", 200, NULL));
    expect_error("DELETE", "/v1/buckets/docs", NULL, NULL, 409, "BucketNotEmpty");
    json_decref(req("DELETE", "/v1/buckets/photos", NULL, NULL, 204, NULL));
    expect_error("DELETE", "/v1/buckets/photos", NULL, NULL, 404, "NoSuchBucket");
}

Test(http_api, objects, .init = setup_engine, .fini = stop)
{
    json_decref(req("PUT", "/v1/buckets/bk1", NULL, "{\"versioning\":\"enabled\"}", 200, NULL));
    const char *meta = "{\"size\":12,\"etag\":\"e1\",\"content_type\":\"text/plain\","
                       "\"user_metadata\":{\"owner\":\"ann\"}}";
    /* keys keep '/', and are URL-decoded */
    struct th_resp r;
    json_t *j = req("PUT", "/v1/buckets/bk1/objects/dir/a%20b.txt", NULL, meta, 200, &r);
    char v1[128], h[128];
    snprintf(v1, sizeof v1, "%s", jstr(j, "version_id"));
    cr_assert_str_eq(thc_header(&r, "X-Version-Id", h, sizeof h), v1);
    thc_free(&r);
    json_decref(j);

    j = req("GET", "/v1/buckets/bk1/objects/dir/a%20b.txt", NULL, NULL, 200, &r);
    cr_assert_str_eq(jstr(j, "key"), "dir/a b.txt");
    cr_assert_str_eq(jstr(j, "etag"), "e1");
    cr_assert_eq(json_integer_value(json_object_get(j, "size")), 12);
    cr_assert_str_eq(jstr(json_object_get(j, "user_metadata"), "owner"), "ann");
    cr_assert_str_eq(thc_header(&r, "ETag", h, sizeof h), "\"e1\"");
    thc_free(&r);
    json_decref(j);
    json_decref(req("HEAD", "/v1/buckets/bk1/objects/dir/a%20b.txt", NULL, NULL, 200, &r));
    cr_assert_eq(r.body_len, 0);
    cr_assert_str_eq(thc_header(&r, "ETag", h, sizeof h), "\"e1\"");
    thc_free(&r);

    /* conditional puts */
    expect_error("PUT", "/v1/buckets/bk1/objects/dir/a%20b.txt", "If-None-Match: *\r\n", "{}", 412,
                 "PreconditionFailed");
    expect_error("PUT", "/v1/buckets/bk1/objects/dir/a%20b.txt", "If-Match: \"zz\"\r\n", "{}", 412,
                 "PreconditionFailed");
    expect_error("PUT", "/v1/buckets/bk1/objects/x", "If-None-Match: \"e1\"\r\n", "{}", 400,
                 "InvalidArgument");
    j = req("PUT", "/v1/buckets/bk1/objects/dir/a%20b.txt", "If-Match: \"e1\"\r\n",
            "{\"size\":3,\"etag\":\"e2\"}", 200, NULL);
    char v2[128];
    snprintf(v2, sizeof v2, "%s", jstr(j, "version_id"));
    cr_assert_str_neq(v1, v2);
    json_decref(j);
    json_decref(req("PUT", "/v1/buckets/bk1/objects/new", "If-None-Match: *\r\n", NULL, 200, NULL));

    /* by version id */
    char path[256];
    snprintf(path, sizeof path, "/v1/buckets/bk1/objects/dir/a%%20b.txt?version-id=%s", v1);
    j = req("GET", path, NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(j, "etag"), "e1");
    json_decref(j);
    expect_error("GET", "/v1/buckets/bk1/objects/dir/a%20b.txt?version-id=nope", NULL, NULL, 404,
                 "NoSuchVersion");
    j = req("GET", "/v1/buckets/bk1/objects/dir/a%20b.txt?consistency=stale&max_staleness_ms=500",
            NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(j, "etag"), "e2");
    json_decref(j);
    expect_error("GET", "/v1/buckets/bk1/objects/x?consistency=sometimes", NULL, NULL, 400,
                 "InvalidArgument");

    /* bad bodies and keys */
    expect_error("PUT", "/v1/buckets/bk1/objects/x", NULL, "{\"size\":", 400, "InvalidArgument");
    expect_error("PUT", "/v1/buckets/bk1/objects/x", NULL, "{\"bogus\":1}", 400, "InvalidArgument");
    expect_error("PUT", "/v1/buckets/nope/objects/x", NULL, "{}", 404, "NoSuchBucket");
    expect_error("GET", "/v1/buckets/bk1/objects/missing", NULL, NULL, 404, "NoSuchKey");
    /* an encoded NUL must not cut the key short ("a%00b" is not "a") */
    expect_error("PUT", "/v1/buckets/bk1/objects/a%00b", NULL, "{}", 400, "InvalidKey");
    expect_error("GET", "/v1/buckets/bk1/objects/new%00", NULL, NULL, 400, "InvalidKey");
    expect_error("PUT", "/v1/buckets/bk%001", NULL, NULL, 400, "InvalidBucketName");
    /* '+' in a path is a plus, %2B too */
    json_decref(req("PUT", "/v1/buckets/bk1/objects/c+d%2Be", NULL, "{}", 200, NULL));
    j = req("GET", "/v1/buckets/bk1/objects?prefix=c%2Bd", NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(j, "objects"), 0), "key"), "c+d+e");
    json_decref(j);

    /* delete → marker; GET → 404 with the marker named */
    j = req("DELETE", "/v1/buckets/bk1/objects/dir/a%20b.txt", NULL, NULL, 200, &r);
    cr_assert(json_is_true(json_object_get(j, "delete_marker")));
    cr_assert_str_eq(thc_header(&r, "X-Delete-Marker", h, sizeof h), "true");
    char marker[128];
    snprintf(marker, sizeof marker, "%s", jstr(j, "version_id"));
    thc_free(&r);
    json_decref(j);
    j = req("GET", "/v1/buckets/bk1/objects/dir/a%20b.txt", NULL, NULL, 404, NULL);
    cr_assert_str_eq(jstr(j, "error"), "NoSuchKey");
    cr_assert(json_is_true(json_object_get(j, "delete_marker")));
    cr_assert_str_eq(jstr(j, "version_id"), marker);
    json_decref(j);
    /* permanent delete of v1 */
    snprintf(path, sizeof path, "/v1/buckets/bk1/objects/dir/a%%20b.txt?version-id=%s", v1);
    json_decref(req("DELETE", path, NULL, NULL, 200, NULL));
    expect_error("GET", path, NULL, NULL, 404, "NoSuchVersion");
}

Test(http_api, listings, .init = setup_engine, .fini = stop)
{
    json_decref(req("PUT", "/v1/buckets/lbk", NULL, "{\"versioning\":\"enabled\"}", 200, NULL));
    const char *keys[] = {"a/1", "a/2", "b", "c/x/y", "d"};
    for (int i = 0; i < 5; i++) {
        char p[128];
        snprintf(p, sizeof p, "/v1/buckets/lbk/objects/%s", keys[i]);
        json_decref(req("PUT", p, NULL, "{\"size\":1}", 200, NULL));
    }
    json_decref(req("PUT", "/v1/buckets/lbk/objects/b", NULL, "{\"size\":2}", 200, NULL));

    json_t *j = req("GET", "/v1/buckets/lbk/objects?delimiter=/", NULL, NULL, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "objects")), 2); /* b, d */
    json_t *cp = json_object_get(j, "common_prefixes");
    cr_assert_eq(json_array_size(cp), 2);
    cr_assert_str_eq(json_string_value(json_array_get(cp, 0)), "a/");
    cr_assert_eq(json_integer_value(json_object_get(j, "key_count")), 4);
    json_decref(j);

    j = req("GET", "/v1/buckets/lbk/objects?prefix=a/&max-keys=1", NULL, NULL, 200, NULL);
    cr_assert(json_is_true(json_object_get(j, "is_truncated")));
    char tok[256], path[512];
    snprintf(tok, sizeof tok, "%s", jstr(j, "next_continuation_token"));
    json_decref(j);
    char *enc = NULL;
    /* tokens are opaque: URL-encode every byte that is not unreserved */
    enc = calloc(1, strlen(tok) * 3 + 1);
    for (size_t i = 0, o = 0; tok[i]; i++) {
        unsigned char ch = (unsigned char)tok[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
            enc[o++] = (char)ch;
        else
            o += (size_t)sprintf(enc + o, "%%%02X", ch);
    }
    snprintf(path, sizeof path,
             "/v1/buckets/lbk/objects?prefix=a/&max-keys=1&continuation-token=%s", enc);
    free(enc);
    j = req("GET", path, NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(j, "objects"), 0), "key"), "a/2");
    cr_assert(json_is_false(json_object_get(j, "is_truncated")));
    json_decref(j);

    j = req("GET", "/v1/buckets/lbk/objects?start-after=c", NULL, NULL, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "objects")), 2); /* c/x/y, d */
    json_decref(j);

    j = req("GET", "/v1/buckets/lbk/versions?prefix=b", NULL, NULL, 200, NULL);
    json_t *vs = json_object_get(j, "versions");
    cr_assert_eq(json_array_size(vs), 2);
    cr_assert(json_is_true(json_object_get(json_array_get(vs, 0), "is_latest")));
    json_decref(j);
    j = req("GET", "/v1/buckets/lbk/versions?max-keys=2", NULL, NULL, 200, NULL);
    cr_assert(json_is_true(json_object_get(j, "is_truncated")));
    cr_assert_str_eq(jstr(j, "next_key_marker"), "a/2");
    json_decref(j);
    j = req("GET", "/v1/buckets/lbk/versions?key-marker=b", NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(json_array_get(json_object_get(j, "versions"), 0), "key"), "c/x/y");
    json_decref(j);

    expect_error("GET", "/v1/buckets/lbk/objects?max-keys=-1", NULL, NULL, 400, "InvalidArgument");
    expect_error("GET", "/v1/buckets/lbk/objects?max-keys=abc", NULL, NULL, 400, "InvalidArgument");
    expect_error("GET", "/v1/buckets/lbk/objects?continuation-token=garbage", NULL, NULL, 400,
                 "InvalidContinuationToken");
    expect_error("GET", "/v1/buckets/lbk/versions?version-id-marker=v", NULL, NULL, 400,
                 "InvalidArgument");
    expect_error("GET", "/v1/buckets/nope/objects", NULL, NULL, 404, "NoSuchBucket");
    expect_error("GET", "/v1/buckets/nope/versions", NULL, NULL, 404, "NoSuchBucket");
}

Test(http_api, protocol_errors, .init = setup_engine, .fini = stop)
{
    expect_error("GET", "/nope", NULL, NULL, 404, "NotFound");
    expect_error("GET", "/v1/buckets/b/other", NULL, NULL, 404, "NotFound");
    expect_error("GET", "/v1/buckets/b/objects/", NULL, NULL, 404, "NotFound");
    struct th_resp r;
    json_decref(req("POST", "/v1/buckets", NULL, NULL, 405, &r));
    char h[64];
    cr_assert_str_eq(thc_header(&r, "Allow", h, sizeof h), "GET, HEAD");
    thc_free(&r);
    expect_error("PATCH", "/v1/buckets/b/objects/k", NULL, NULL, 405, "MethodNotAllowed");

    /* body over 1 MiB: 413, declared up front */
    size_t big = MC_HTTP_MAX_BODY_BYTES + 1;
    char *body = malloc(big + 1);
    memset(body, ' ', big);
    body[big] = '\0';
    expect_error("PUT", "/v1/buckets/b/objects/k", NULL, body, 413, "EntityTooLarge");
    /* exactly 1 MiB of whitespace is accepted (then rejected as JSON) */
    body[big - 1] = '\0';
    expect_error("PUT", "/v1/buckets/b/objects/k", NULL, body, 400, "InvalidArgument");
    free(body);
    /* a chunked body over the limit: 413 at the end */
    int fd = thc_connect(g_port);
    cr_assert_geq(fd, 0);
    const char *hdr = "PUT /v1/buckets/b/objects/k HTTP/1.1\r\nHost: x\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n";
    cr_assert_eq(thc_send_all(fd, hdr, strlen(hdr)), 0);
    char *chunk = malloc(65536 + 16);
    for (int i = 0; i < 17; i++) { /* 17 × 64 KiB > 1 MiB */
        int n = sprintf(chunk, "10000\r\n");
        memset(chunk + n, 'x', 65536);
        memcpy(chunk + n + 65536, "\r\n", 2);
        cr_assert_eq(thc_send_all(fd, chunk, (size_t)n + 65538), 0);
    }
    free(chunk);
    cr_assert_eq(thc_send_all(fd, "0\r\n\r\n", 5), 0);
    char buf[512] = {0};
    cr_assert_gt(recv(fd, buf, sizeof buf - 1, 0), 0);
    cr_assert(strncmp(buf, "HTTP/1.1 413", 12) == 0, "%s", buf);
    close(fd);
    cr_assert_geq(mc_metrics_errors(MC_ETOOLARGE), 2);
}

/* Loopback mode: a worker reads the request (body included) while the loop thread keeps
 * reading the connection. Requests sent without waiting for the previous answer must not
 * disturb the one with the worker (its body's terminator sits right where the next bytes
 * arrive) and are answered in order. */
Test(http_api, pipelined_while_with_a_worker, .init = setup_engine, .fini = stop)
{
    json_decref(req("PUT", "/v1/buckets/busy", NULL, NULL, 200, NULL));
    struct thc_wire w;
    cr_assert_geq(thc_wire_open(&w, g_port), 0);
    int one = 1;
    setsockopt(w.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char body[4096];
    for (int i = 0; i < 50; i++) {
        char put[256], get[128], obj[32];
        snprintf(obj, sizeof obj, "{\"size\":%d}", i);
        snprintf(
            put, sizeof put,
            "PUT /v1/buckets/busy/objects/k%d HTTP/1.1\r\nHost: x\r\nContent-Length: %zu\r\n\r\n%s",
            i, strlen(obj), obj);
        snprintf(get, sizeof get, "GET /v1/buckets/busy/objects/k%d HTTP/1.1\r\nHost: x\r\n\r\n",
                 i);
        cr_assert_eq(thc_send_all(w.fd, put, strlen(put)), 0);
        usleep(100); /* the GET arrives while the PUT is with a worker (most of the time) */
        cr_assert_eq(thc_send_all(w.fd, get, strlen(get)), 0);
        int st = thc_wire_read(&w, false, NULL, 0, body, sizeof body);
        cr_assert_eq(st, 200, "%d: %d %s", i, st, body);
        char want[32];
        snprintf(want, sizeof want, "\"size\":%d,", i);
        st = thc_wire_read(&w, false, NULL, 0, body, sizeof body);
        cr_assert_eq(st, 200, "%d: %d %s", i, st, body);
        cr_assert(strstr(body, want), "%d: %s", i, body);
    }
    close(w.fd);
}

Test(http_api, keep_alive, .init = setup_engine, .fini = stop)
{
    int fd = thc_connect(g_port);
    cr_assert_geq(fd, 0);
    struct th_resp r;
    cr_assert_eq(thc_request_fd(fd, "PUT", "/v1/buckets/kab", NULL, "", 0, &r), 0);
    cr_assert_eq(r.status, 200);
    thc_free(&r);
    for (int i = 0; i < 50; i++) {
        char p[64];
        snprintf(p, sizeof p, "/v1/buckets/kab/objects/k%02d", i);
        cr_assert_eq(thc_request_fd(fd, "PUT", p, NULL, "{}", 2, &r), 0);
        cr_assert_eq(r.status, 200);
        thc_free(&r);
        cr_assert_eq(thc_request_fd(fd, "GET", p, NULL, NULL, 0, &r), 0);
        cr_assert_eq(r.status, 200);
        cr_assert(strstr(r.body, p + strlen("/v1/buckets/kab/objects/")) != NULL);
        thc_free(&r);
    }
    /* errors keep the connection too */
    cr_assert_eq(thc_request_fd(fd, "GET", "/v1/buckets/kab/objects/zz", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 404);
    thc_free(&r);
    cr_assert_eq(
        thc_request_fd(fd, "GET", "/v1/buckets/kab/objects?max-keys=1000", NULL, NULL, 0, &r), 0);
    cr_assert_eq(r.status, 200);
    json_t *j = json_loads(r.body, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "objects")), 50);
    json_decref(j);
    thc_free(&r);
    close(fd);
}

struct writer {
    int id;
    int ok;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    int fd = thc_connect(g_port);
    for (int i = 0; fd >= 0 && i < 40; i++) {
        char p[96];
        snprintf(p, sizeof p, "/v1/buckets/ccb/objects/w%d/k%d", w->id, i);
        struct th_resp r;
        if (thc_request_fd(fd, "PUT", p, NULL, "{\"size\":1}", 10, &r) == 0 && r.status == 200)
            w->ok++;
        thc_free(&r);
    }
    if (fd >= 0)
        close(fd);
    return NULL;
}

static void concurrent_writers(void)
{
    json_decref(req("PUT", "/v1/buckets/ccb", NULL, NULL, 200, NULL));
    enum { N = 12 };
    pthread_t t[N];
    struct writer w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct writer){.id = i};
        pthread_create(&t[i], NULL, writer_main, &w[i]);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(w[i].ok, 40, "writer %d: %d of 40", i, w[i].ok);
    }
    json_t *j = req("GET", "/v1/buckets/ccb/objects?max-keys=1000", NULL, NULL, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "objects")), N * 40);
    json_decref(j);
}

Test(http_api, concurrent_clients, .init = setup_engine, .fini = stop)
{
    concurrent_writers();
}

static void setup_engine_pool(void)
{
    g_pool = true;
    start(TH_ENGINE, false, 2000);
}

/* The epoll pool (3 workers) with 12 connections: each worker serves several in turn. */
Test(http_api, concurrent_clients_pool, .init = setup_engine_pool, .fini = stop)
{
    concurrent_writers();
    json_decref(req("GET", "/healthz", NULL, NULL, 200, NULL));
}

static void setup_leaderless(void)
{
    start(TH_ENGINE, true, 300);
}

Test(http_api, not_leader, .init = setup_leaderless, .fini = stop)
{
    /* The node's writes are refused with NotLeader(unknown); the client retries until its
     * deadline; with no leader known the answer is 503 NotLeader, leader 0. */
    g_node.has_leader = false;
    g_node.leader_id = 0;
    struct th_resp r;
    json_t *j = req("PUT", "/v1/buckets/nlb", NULL, NULL, 503, &r);
    cr_assert_str_eq(jstr(j, "error"), "NotLeader");
    cr_assert_eq(json_integer_value(json_object_get(j, "leader")), 0);
    char h[256];
    cr_assert_null(thc_header(&r, "Location", h, sizeof h));
    thc_free(&r);
    json_decref(j);
    /* Another member is the leader (with a known HTTP address) but unreachable: 503 NotLeader
     * naming it, and a Location pointing at the same path there. */
    g_node.has_leader = true;
    g_node.leader_id = 3;
    snprintf(g_node.leader_http, sizeof g_node.leader_http, "127.0.0.1:7280");
    j = req("DELETE", "/v1/buckets/nlb/objects/a%20b?version-id=v%2B1", NULL, NULL, 503, &r);
    cr_assert_str_eq(jstr(j, "error"), "NotLeader");
    cr_assert_eq(json_integer_value(json_object_get(j, "leader")), 3);
    cr_assert_str_eq(thc_header(&r, "Location", h, sizeof h),
                     "http://127.0.0.1:7280/v1/buckets/nlb/objects/a%20b?version-id=v%2B1");
    thc_free(&r);
    json_decref(j);
    /* This node is the leader itself and still no answer in time: 504 Timeout. */
    g_node.leader_id = 1;
    expect_error("PUT", "/v1/buckets/nlb", NULL, NULL, 504, "Timeout");
    /* reads are served meanwhile */
    json_decref(req("GET", "/v1/buckets", NULL, NULL, 200, NULL));
}

Test(http_api, cluster_admin, .init = setup_fake, .fini = stop)
{
    json_t *j = req("GET", "/v1/cluster", NULL, NULL, 200, NULL);
    cr_assert_eq(json_integer_value(json_object_get(j, "leader")), 1);
    cr_assert_eq(json_integer_value(json_object_get(j, "term")), 3);
    json_t *ms = json_object_get(j, "members");
    cr_assert_eq(json_array_size(ms), 3);
    cr_assert_str_eq(jstr(json_array_get(ms, 0), "role"), "leader");
    cr_assert_str_eq(jstr(json_array_get(ms, 1), "role"), "follower");
    cr_assert_str_eq(jstr(json_array_get(ms, 2), "role"), "learner");
    cr_assert(json_is_false(json_object_get(json_array_get(ms, 1), "reachable")));
    cr_assert_str_eq(jstr(json_array_get(ms, 0), "address"), "127.0.0.1:7070");
    json_decref(j);

    j = req("POST", "/v1/cluster/members", NULL,
            "{\"id\":4,\"peer_addr\":\"127.0.0.1:7371\",\"client_addr\":\"127.0.0.1:7370\","
            "\"learner\":true}",
            200, NULL);
    cr_assert_str_eq(jstr(j, "action"), "add");
    cr_assert_eq(json_integer_value(json_object_get(j, "id")), 4);
    json_decref(j);
    expect_error("POST", "/v1/cluster/members", NULL, "{\"id\":4}", 400, "InvalidArgument");
    expect_error("POST", "/v1/cluster/members", NULL, "{\"id\":0,\"peer_addr\":\"a:1\"}", 400,
                 "InvalidArgument");
    expect_error("POST", "/v1/cluster/members", NULL,
                 "{\"id\":5,\"peer_addr\":\"a:1\",\"learner\":\"yes\"}", 400, "InvalidArgument");
    expect_error("POST", "/v1/cluster/members", NULL, NULL, 400, "InvalidArgument");

    j = req("POST", "/v1/cluster/members/4/promote", NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(j, "action"), "promote");
    json_decref(j);
    j = req("DELETE", "/v1/cluster/members/4", NULL, NULL, 200, NULL);
    cr_assert_str_eq(jstr(j, "action"), "remove");
    json_decref(j);
    expect_error("DELETE", "/v1/cluster/members/0", NULL, NULL, 400, "InvalidArgument");
    expect_error("DELETE", "/v1/cluster/members/x", NULL, NULL, 400, "InvalidArgument");
    j = req("POST", "/v1/cluster/transfer-leader", NULL, "{\"id\":2}", 200, NULL);
    cr_assert_str_eq(jstr(j, "action"), "transfer-leader");
    json_decref(j);
    expect_error("POST", "/v1/cluster/transfer-leader", NULL, "{\"id\":2,\"x\":1}", 400,
                 "InvalidArgument");
    expect_error("POST", "/v1/cluster/transfer-leader", NULL, "{}", 400, "InvalidArgument");
    expect_error("POST", "/v1/snapshot", NULL, NULL, 501, "NotImplemented");
    expect_error("GET", "/v1/cluster/members", NULL, NULL, 405, "MethodNotAllowed");
}

Test(http_api, metrics_endpoint, .init = setup_engine, .fini = stop)
{
    mc_metrics_observe(MC_METRIC_WRITE_LATENCY, 3000000); /* 3 ms */
    struct th_resp r;
    cr_assert_eq(thc_request(g_port, "GET", "/metrics", NULL, NULL, &r), 0);
    cr_assert_eq(r.status, 200);
    char h[128];
    cr_assert_str_eq(thc_header(&r, "Content-Type", h, sizeof h),
                     "text/plain; version=0.0.4; charset=utf-8");
    cr_assert(strstr(r.body, "\nrustfs_metadata_has_leader 1\n") != NULL);
    cr_assert(strstr(r.body, "\nrustfs_metadata_replication_term 2\n") != NULL);
    cr_assert(strstr(r.body,
                     "rustfs_metadata_replication_write_latency_seconds_bucket{le=\"0.005\"}"
                     " 1\n") != NULL);
    /* this very connection is counted */
    cr_assert(strstr(r.body, "\nmetacenter_client_connections 1\n") != NULL, "%s", r.body);
    thc_free(&r);
}

/* ---- routes (pure) ---- */

Test(http_route, parse)
{
    struct mc_http_path p;
    cr_assert_eq(mc_http_route_parse("/v1/buckets/b/objects/a/b/c", &p), 0);
    cr_assert_eq(p.route, MC_ROUTE_OBJECT);
    cr_assert_str_eq(p.bucket, "b");
    cr_assert_str_eq(p.key, "a/b/c");
    cr_assert_eq(mc_http_route_parse("/v1/buckets/b/objects//x", &p), 0);
    cr_assert_str_eq(p.key, "/x");
    cr_assert_eq(mc_http_route_parse("/v1/buckets/b/objects", &p), 0);
    cr_assert_eq(p.route, MC_ROUTE_OBJECTS);
    cr_assert_eq(mc_http_route_parse("/v1/buckets/b/versions", &p), 0);
    cr_assert_eq(p.route, MC_ROUTE_VERSIONS);
    cr_assert_eq(mc_http_route_parse("/v1/buckets/b/versioning", &p), 0);
    cr_assert_eq(p.route, MC_ROUTE_VERSIONING);
    cr_assert_eq(mc_http_route_parse("/v1/cluster/members/12/promote", &p), 0);
    cr_assert_eq(p.route, MC_ROUTE_PROMOTE);
    cr_assert_eq(p.member_id, 12);
    cr_assert_eq(mc_http_route_parse("/v1/cluster/members/99999999999999999999", &p), MC_EINVAL);
    cr_assert_eq(mc_http_route_parse("/v1/cluster/members/3/demote", &p), MC_ENOTFOUND);
    cr_assert_eq(mc_http_route_parse("/v1/clusterx", &p), MC_ENOTFOUND);
    cr_assert_eq(mc_http_route_parse("/v1/buckets//objects", &p), MC_ENOTFOUND);
    cr_assert(mc_http_route_allows(MC_ROUTE_OBJECT, "HEAD"));
    cr_assert(!mc_http_route_allows(MC_ROUTE_OBJECT, "POST"));
    cr_assert(!mc_http_route_allows(MC_ROUTE_MEMBERS, "POS"));
    cr_assert(mc_http_route_allows(MC_ROUTE_MEMBERS, "POST"));
}

/* Malformed and hostile input: never a crash, the server keeps serving. */
Test(http_api, garbage_input, .init = setup_engine, .fini = stop)
{
    const char *bad[] = {
        "\r\n\r\n",
        "GET\r\n\r\n",
        "GET /healthz HTTP/9.9\r\n\r\n",
        "PUT /v1/buckets/abc/objects/%00 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        "PUT /v1/buckets/abc/objects/k HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        "PUT /v1/buckets/abc/objects/k HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999"
        "\r\n\r\n",
        "GET /v1/buckets/%zz/objects HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET /v1/buckets/abc/objects?max-keys=99999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /v1/cluster/members HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n[1]\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", /* a TLS ClientHello */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int fd = thc_connect(g_port);
        cr_assert_geq(fd, 0);
        thc_send_all(fd, bad[i], strlen(bad[i]));
        shutdown(fd, SHUT_WR);
        char buf[1024];
        while (recv(fd, buf, sizeof buf, 0) > 0) {
        }
        close(fd);
    }
    /* a header far over MHD's per-connection memory */
    int fd = thc_connect(g_port);
    char *big = malloc(200000);
    memset(big, 'a', 200000);
    const char *start = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ";
    thc_send_all(fd, start, strlen(start));
    thc_send_all(fd, big, 200000);
    thc_send_all(fd, "\r\n\r\n", 4);
    free(big);
    char buf[256] = {0};
    recv(fd, buf, sizeof buf - 1, 0);
    cr_assert(buf[0] == '\0' || strncmp(buf, "HTTP/1.1 4", 10) == 0 ||
                  strncmp(buf, "HTTP/1.1 5", 10) == 0,
              "%s", buf);
    close(fd);
    /* random bytes */
    srand(7);
    for (int i = 0; i < 50; i++) {
        fd = thc_connect(g_port);
        char junk[512];
        for (size_t k = 0; k < sizeof junk; k++)
            junk[k] = (char)(rand() & 0xff);
        thc_send_all(fd, junk, sizeof junk);
        shutdown(fd, SHUT_WR);
        while (recv(fd, buf, sizeof buf, 0) > 0) {
        }
        close(fd);
    }
    json_decref(req("GET", "/healthz", NULL, NULL, 200, NULL));
    json_decref(req("PUT", "/v1/buckets/abc", NULL, NULL, 200, NULL));
    json_decref(req("GET", "/v1/buckets/abc/objects", NULL, NULL, 200, NULL));
}

static void setup_blackhole(void)
{
    g_blackhole = true;
    start(TH_FAKE, false, 20000);
}

struct pending_get {
    int rc;
    int status;
};

static void *pending_get_main(void *arg)
{
    struct pending_get *p = arg;
    struct th_resp r;
    p->rc = thc_request(g_port, "GET", "/v1/buckets", NULL, NULL, &r);
    p->status = r.status;
    thc_free(&r);
    return NULL;
}

/* Stopping while requests wait on a node that does not answer (as when the node stops HTTP from
 * its own loop thread) returns at once, not after the 20 s request timeout. */
Test(http_api, stop_with_requests_in_flight, .init = setup_blackhole)
{
    enum { N = 4 };
    pthread_t t[N];
    struct pending_get p[N];
    for (int i = 0; i < N; i++)
        pthread_create(&t[i], NULL, pending_get_main, &p[i]);
    usleep(300 * 1000);
    uint64_t t0 = mc_mono_ms();
    mc_http_stop(g_hs);
    uint64_t took = mc_mono_ms() - t0;
    cr_assert_lt(took, 1000, "stop took %llu ms", (unsigned long long)took);
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        /* answered 503 ShuttingDown, or the connection closed first */
        cr_assert(p[i].rc != 0 || p[i].status == 503, "rc %d status %d", p[i].rc, p[i].status);
    }
    th_stop(g_ts, NULL);
}

/* ---- the worker queue (src/http/worker.c) ---- */

static pthread_mutex_t g_wq_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wq_cv = PTHREAD_COND_INITIALIZER;
static bool g_wq_open;
static int g_wq_ran, g_wq_started;

static void wq_run(void *item)
{
    (void)item;
    pthread_mutex_lock(&g_wq_mu);
    g_wq_started++;
    while (!g_wq_open)
        pthread_cond_wait(&g_wq_cv, &g_wq_mu);
    g_wq_ran++;
    pthread_mutex_unlock(&g_wq_mu);
}

/* The queue holds a batch of items for every connection that can be allocated (open ones plus those
 * closed while still queued), so blocked workers never make a push fail below that; a full
 * queue answers SlowDown (MC_ELIMIT), a stopping one ShuttingDown. */
Test(http_workers, queue_sized_for_allocated_connections)
{
    struct mc_http_workers *w;
    cr_assert_eq(mc_http_workers_start(1, wq_run, &w), 0);
    enum { QUEUE = MC_HTTP_MAX_ALLOCATED * MC_HTTP_PIPELINE_MAX };
    static int items[QUEUE + 1];
    cr_assert_eq(mc_http_workers_push(w, &items[0]), 0); /* taken by the worker, which blocks */
    for (int t = 0; t < 2000 && !__atomic_load_n(&g_wq_started, __ATOMIC_ACQUIRE); t++)
        usleep(1000); /* until the worker has taken it */
    cr_assert_eq(__atomic_load_n(&g_wq_started, __ATOMIC_ACQUIRE), 1);
    int pushed = 0;
    while (pushed < QUEUE + 1 && mc_http_workers_push(w, &items[pushed]) == 0)
        pushed++;
    cr_assert_eq(pushed, QUEUE);
    cr_assert_geq(pushed, 2 * MC_HTTP_MAX_CONNECTIONS);
    cr_assert_eq(mc_http_workers_push(w, &items[0]), MC_ELIMIT);
    pthread_mutex_lock(&g_wq_mu);
    g_wq_open = true;
    pthread_cond_broadcast(&g_wq_cv);
    pthread_mutex_unlock(&g_wq_mu);
    mc_http_workers_stop(w);
    cr_assert_eq(g_wq_ran, QUEUE + 1);
    cr_assert_eq(mc_http_workers_push(w, &items[0]), MC_ESHUTDOWN);
    mc_http_workers_free(w);
}

/* The loopback client pool keeps one idle client per credential it authenticated with, hands a
 * client only to the same token, and when full closes the client returned longest ago (so
 * clients of tokens no longer used do not keep every slot). No request is sent: clients
 * connect lazily. */
Test(http_pool, keyed_by_token_oldest_evicted)
{
    struct mc_http_server *s = calloc(1, sizeof *s);
    cr_assert_not_null(s);
    pthread_mutex_init(&s->pool_mu, NULL);
    snprintf(s->client_addr, sizeof s->client_addr, "127.0.0.1:1");
    snprintf(s->internal_token, sizeof s->internal_token, "internal");
    char tok[MC_HTTP_POOL_MAX + 1][16];
    struct mc_client *c[MC_HTTP_POOL_MAX + 1];
    for (uint32_t i = 0; i <= MC_HTTP_POOL_MAX; i++) {
        snprintf(tok[i], sizeof tok[i], "token-%u", i);
        c[i] = mc_http_client_get(s, tok[i]);
        cr_assert_not_null(c[i]);
    }
    for (uint32_t i = 0; i <= MC_HTTP_POOL_MAX; i++) {
        mc_http_client_put(s, c[i], tok[i]);
        usleep(i == 0 ? 2000 : 0); /* token-0 is the oldest by a clear margin */
    }
    cr_assert_eq(s->n_pool, MC_HTTP_POOL_MAX);
    /* The newest comes back for its own token only; token-0's client was evicted. */
    struct mc_client *again = mc_http_client_get(s, tok[MC_HTTP_POOL_MAX]);
    cr_assert_eq(again, c[MC_HTTP_POOL_MAX]);
    cr_assert_eq(s->n_pool, MC_HTTP_POOL_MAX - 1);
    struct mc_client *fresh = mc_http_client_get(s, tok[0]);
    for (uint32_t i = 0; i <= MC_HTTP_POOL_MAX; i++)
        cr_assert_neq(fresh, i == 0 ? NULL : c[i], "token-0 got another token's client");
    cr_assert_eq(s->n_pool, MC_HTTP_POOL_MAX - 1);
    struct mc_client *other = mc_http_client_get(s, tok[5]);
    cr_assert_eq(other, c[5]);
    /* NULL = the internal token: a new client, not one of the callers'. */
    struct mc_client *internal = mc_http_client_get(s, NULL);
    for (uint32_t i = 1; i <= MC_HTTP_POOL_MAX; i++)
        cr_assert_neq(internal, c[i]);
    mc_http_client_put(s, again, tok[MC_HTTP_POOL_MAX]);
    mc_http_client_put(s, fresh, tok[0]);
    mc_http_client_put(s, other, tok[5]);
    mc_http_client_put(s, internal, NULL);
    mc_http_pool_close(s);
    pthread_mutex_destroy(&s->pool_mu);
    free(s);
}
