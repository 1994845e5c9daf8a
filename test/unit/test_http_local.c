/* test_http_local.c: the HTTP API served in-process (as inside the node): requests reach a
 * client server's in-process connection on its libuv loop, no loopback socket. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "../client/harness.h"
#include "http/internal.h"
#include "http/server.h"
#include "metacenter/error.h"
#include "net/client_server.h"
#include "obs/metrics.h"
#include "test_http_client.h"

#define HELD_MAX 64

/* A client server on its own loop thread, backed by the engine; requests on bucket "hole"
 * are held unanswered (a node that does not answer) until stop. */
static struct {
    uv_loop_t loop;
    uv_async_t stop_async;
    pthread_t thread;
    struct mc_client_server *srv;
    struct mc_http_server *hs;
    void *engine;
    char dir[64];
    int port;
    uint64_t applied, dups;
    struct mc_client_token held[HELD_MAX];
    int n_held;
    bool leader_elsewhere; /* collect: this node (1) follows node 2 */
} g;

static int collect(void *ctx, struct mc_node_metrics *n)
{
    (void)ctx;
    n->node_id = 1;
    n->has_leader = true;
    n->leader_id = g.leader_elsewhere ? 2 : 1;
    return 0;
}

static void dispatch(void *ctx, const struct mc_client_request *r)
{
    (void)ctx;
    const struct mc_proto_request *q = r->req;
    if ((q->op == MC_REQ_GET_OBJECT || q->op == MC_REQ_HEAD_OBJECT) &&
        strcmp(q->u.get.bucket.ptr, "hole") == 0 && g.n_held < HELD_MAX) {
        g.held[g.n_held++] = r->token;
        return;
    }
    th_engine_dispatch(g.engine, 1, r, &g.applied, &g.dups);
}

static void *loop_main(void *arg)
{
    (void)arg;
    uv_run(&g.loop, UV_RUN_DEFAULT);
    return NULL;
}

/* On the loop thread, as the node does: HTTP first, then the client server. */
static void on_stop(uv_async_t *h)
{
    mc_http_stop(g.hs);
    for (int i = 0; i < g.n_held; i++)
        mc_client_reply_error(&g.held[i], MC_ESHUTDOWN, NULL);
    g.n_held = 0;
    mc_client_server_stop(g.srv, NULL, NULL);
    uv_close((uv_handle_t *)h, NULL);
}

static void start(void)
{
    memset(&g, 0, sizeof g);
    snprintf(g.dir, sizeof g.dir, "/tmp/mc_http_local_XXXXXX");
    cr_assert_not_null(mkdtemp(g.dir));
    cr_assert_eq(th_engine_open(NULL, g.dir, &g.engine), 0);
    cr_assert_eq(uv_loop_init(&g.loop), 0);
    static const struct mc_client_handler h = {.dispatch = dispatch};
    cr_assert_eq(mc_client_server_start(&g.loop, "127.0.0.1:0", &h, NULL, NULL, &g.srv), 0);
    char client[64];
    snprintf(client, sizeof client, "127.0.0.1:%d", mc_client_server_port(g.srv));
    /* Before the loop runs: as on the loop thread. */
    struct mc_http_options ho = {.listen_addr = "127.0.0.1:0",
                                 .client_addr = client,
                                 .request_timeout_ms = 2000,
                                 .collect = collect,
                                 .local_loop = &g.loop,
                                 .local_clients = g.srv};
    cr_assert_eq(mc_http_start(&ho, &g.hs), 0);
    g.port = mc_http_port(g.hs);
    uv_async_init(&g.loop, &g.stop_async, on_stop);
    cr_assert_eq(pthread_create(&g.thread, NULL, loop_main, NULL), 0);
}

static void stop(void)
{
    uv_async_send(&g.stop_async);
    pthread_join(g.thread, NULL);
    uv_loop_close(&g.loop);
    th_engine_close(g.engine);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", g.dir);
    cr_assert_eq(system(cmd), 0);
}

/* TCP connections the client server accepted (the in-process one is counted too). */
static uint64_t accepted(void)
{
    struct mc_client_server_stats st;
    mc_client_server_stats(g.srv, &st); /* plain counters; a torn read only skews by one */
    return st.connections_accepted;
}

static json_t *req(const char *method, const char *path, const char *extra, const char *body,
                   int want, struct th_resp *out)
{
    struct th_resp r;
    cr_assert_eq(thc_request(g.port, method, path, extra, body, &r), 0, "%s %s: no response",
                 method, path);
    cr_assert_eq(r.status, want, "%s %s: status %d, want %d: %s", method, path, r.status, want,
                 r.body);
    json_t *j = r.body_len ? json_loads(r.body, 0, NULL) : NULL;
    if (out)
        *out = r;
    else
        thc_free(&r);
    return j;
}

static const char *jstr(json_t *j, const char *k)
{
    return json_string_value(json_object_get(j, k));
}

TestSuite(http_local, .timeout = 30);

Test(http_local, objects_in_process, .init = start, .fini = stop)
{
    json_t *j = req("PUT", "/v1/buckets/photos", NULL, "{\"versioning\":\"enabled\"}", 200, NULL);
    cr_assert_str_eq(jstr(j, "versioning"), "enabled");
    json_decref(j);
    struct th_resp r;
    j = req("PUT", "/v1/buckets/photos/objects/a/b%20c", "If-None-Match: *\r\n",
            "{\"size\":7,\"etag\":\"e1\"}", 200, &r);
    char vid[64], hv[64];
    snprintf(vid, sizeof vid, "%s", jstr(j, "version_id"));
    cr_assert(thc_header(&r, "X-Version-Id", hv, sizeof hv));
    cr_assert_str_eq(hv, vid);
    thc_free(&r);
    json_decref(j);
    /* The precondition is checked by the node, answered through the in-process path. */
    j = req("PUT", "/v1/buckets/photos/objects/a/b%20c", "If-None-Match: *\r\n", "{}", 412, NULL);
    cr_assert_str_eq(jstr(j, "error"), "PreconditionFailed");
    json_decref(j);
    j = req("GET", "/v1/buckets/photos/objects/a/b%20c?consistency=stale", NULL, NULL, 200, &r);
    cr_assert_str_eq(jstr(j, "key"), "a/b c");
    cr_assert_eq(json_integer_value(json_object_get(j, "size")), 7);
    cr_assert(thc_header(&r, "ETag", hv, sizeof hv));
    cr_assert_str_eq(hv, "\"e1\"");
    thc_free(&r);
    json_decref(j);
    json_decref(req("HEAD", "/v1/buckets/photos/objects/a/b%20c", NULL, NULL, 200, NULL));
    j = req("GET", "/v1/buckets/photos/objects/nope", NULL, NULL, 404, NULL);
    cr_assert_str_eq(jstr(j, "error"), "NoSuchKey");
    json_decref(j);
    j = req("DELETE", "/v1/buckets/photos/objects/a/b%20c", NULL, NULL, 200, &r);
    cr_assert_eq(json_is_true(json_object_get(j, "delete_marker")), true);
    cr_assert(thc_header(&r, "X-Delete-Marker", hv, sizeof hv));
    thc_free(&r);
    json_decref(j);
    j = req("GET", "/v1/buckets/photos/objects/a/b%20c", NULL, NULL, 404, &r);
    cr_assert_eq(json_is_true(json_object_get(j, "delete_marker")), true);
    thc_free(&r);
    json_decref(j);
    j = req("GET", "/v1/buckets/photos/versions", NULL, NULL, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "versions")), 2);
    json_decref(j);
    j = req("GET", "/v1/buckets", NULL, NULL, 200, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "buckets")), 1);
    json_decref(j);
    j = req("GET", "/v1/buckets/photos?consistency=bogus", NULL, NULL, 400, NULL);
    json_decref(j);
    j = req("DELETE", "/v1/buckets/photos", NULL, NULL, 409, NULL);
    cr_assert_str_eq(jstr(j, "error"), "BucketNotEmpty");
    json_decref(j);
    /* All of it without one loopback connection: only the in-process one was opened. */
    cr_assert_eq(accepted(), 1);
    cr_assert_eq(g.applied, 3);
}

#define THREADS    8
#define PER_THREAD 100

static void *client_main(void *arg)
{
    int t = (int)(intptr_t)arg;
    int fd = thc_connect(g.port);
    if (fd < 0)
        return (void *)1;
    intptr_t bad = 0;
    for (int i = 0; i < PER_THREAD && !bad; i++) {
        char path[96], body[64], want[64];
        snprintf(path, sizeof path, "/v1/buckets/load/objects/t%d-k%d", t, i % 10);
        snprintf(body, sizeof body, "{\"size\":%d}", i);
        snprintf(want, sizeof want, "\"size\":%d,", i);
        struct th_resp r;
        bad = thc_request_fd(fd, "PUT", path, NULL, body, strlen(body), &r) != 0 || r.status != 200;
        thc_free(&r);
        if (!bad) {
            bad = thc_request_fd(fd, "GET", path, NULL, NULL, 0, &r) != 0 || r.status != 200 ||
                  !strstr(r.body, want);
            thc_free(&r);
        }
    }
    close(fd);
    return (void *)bad;
}

/* Many keep-alive connections at once: each answer reaches its own connection. */
Test(http_local, concurrent_keep_alive, .init = start, .fini = stop)
{
    json_decref(req("PUT", "/v1/buckets/load", NULL, NULL, 200, NULL));
    pthread_t th[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&th[t], NULL, client_main, (void *)(intptr_t)t);
    for (int t = 0; t < THREADS; t++) {
        void *bad;
        pthread_join(th[t], &bad);
        cr_assert_null(bad, "client %d saw a wrong answer", t);
    }
    cr_assert_eq(g.applied, 1 + THREADS * PER_THREAD);
    cr_assert_eq(accepted(), 1);
}

/* A node that does not lead sends writes through the client library (which follows the leader
 * with an exactly-once session); reads stay in-process. */
Test(http_local, follower_writes_go_through_the_client, .init = start, .fini = stop)
{
    g.leader_elsewhere = true;
    json_decref(req("PUT", "/v1/buckets/fwd", NULL, NULL, 200, NULL));
    json_decref(req("PUT", "/v1/buckets/fwd/objects/k", NULL, "{\"size\":1}", 200, NULL));
    cr_assert_gt(accepted(), 1); /* the loopback client connected */
    uint64_t before = accepted();
    json_decref(req("GET", "/v1/buckets/fwd/objects/k?consistency=stale", NULL, NULL, 200, NULL));
    cr_assert_eq(accepted(), before);
    /* Admin routes go through the client on a worker too (the engine harness has no cluster
     * status: any answer will do, as long as one comes). */
    struct th_resp r;
    cr_assert_eq(thc_request(g.port, "GET", "/v1/cluster", NULL, NULL, &r), 0);
    cr_assert_geq(r.status, 200);
    thc_free(&r);
}

static void *hole_main(void *arg)
{
    (void)arg;
    struct th_resp *r = calloc(1, sizeof *r);
    if (thc_request(g.port, "GET", "/v1/buckets/hole/objects/x", NULL, NULL, r) != 0)
        r->status = -1;
    return r;
}

/* Stopping with requests still with the node answers them ShuttingDown (MHD must not be
 * stopped with suspended connections). */
Test(http_local, stop_with_requests_in_flight)
{
    start();
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, hole_main, NULL);
    for (int i = 0; i < 200; i++) {
        usleep(5000);
        struct mc_client_server_stats st;
        mc_client_server_stats(g.srv, &st);
        if (st.requests >= 4)
            break;
    }
    stop();
    for (int i = 0; i < 4; i++) {
        struct th_resp *r;
        pthread_join(th[i], (void **)&r);
        cr_assert(r->status == 503 || r->status == -1, "status %d", r->status);
        if (r->status == 503)
            cr_assert(strstr(r->body, "ShuttingDown"), "%s", r->body);
        thc_free(r);
        free(r);
    }
}

/* ---- the GET body writer: byte for byte mc_version_json ---- */

static void check_same(const struct mc_version *v)
{
    char *want = mc_version_json(v, MC_JSON_COMPACT);
    char *got = mc_http_version_json(v);
    cr_assert_not_null(want);
    cr_assert_not_null(got);
    cr_assert_str_eq(got, want);
    free(want);
    free(got);
}

/* A random string from a small alphabet that hits every escape and UTF-8 case (valid and not). */
static char *rand_str(unsigned *seed)
{
    static const char *const parts[] = {"a",
                                        "Z",
                                        "0",
                                        "/",
                                        " ",
                                        "\"",
                                        "\\",
                                        "\n",
                                        "\t",
                                        "\x01",
                                        "\x1f",
                                        "\x7f",
                                        "\xc3\xa9",
                                        "\xe2\x82\xac",
                                        "\xf0\x9f\x98\x80",
                                        "\xc3",
                                        "\xed\xa0\x80",
                                        "\xc0\xaf",
                                        "\xff",
                                        "\xf4\x90\x80\x80",
                                        "\b",
                                        "\f",
                                        "\r"};
    size_t n = (size_t)(rand_r(seed) % 6);
    char *s = calloc(1, 64);
    for (size_t i = 0; i < n; i++) {
        /* mostly valid: invalid pieces (index 15..19) rarely */
        size_t k = (size_t)rand_r(seed) % (sizeof parts / sizeof parts[0]);
        if (k >= 15 && k <= 19 && rand_r(seed) % 8)
            k = 0;
        strcat(s, parts[k]);
    }
    return s;
}

Test(http_local, version_json_matches_the_engine)
{
    unsigned seed = 42;
    for (int iter = 0; iter < 3000; iter++) {
        struct mc_version v = {0};
        snprintf(v.bucket, sizeof v.bucket, "bucket-%d", iter % 7);
        v.key = rand_str(&seed);
        v.version_id = iter % 5 ? rand_str(&seed) : NULL;
        v.is_delete_marker = iter % 3 == 0;
        v.is_latest = iter % 2 == 0;
        v.mod_time_ns = iter % 11 == 0 ? -5 : (int64_t)iter * 1000003;
        struct mc_object_meta *m = &v.meta;
        m->size = iter % 13 == 0 ? UINT64_MAX : (uint64_t)iter;
        m->etag = rand_str(&seed);
        m->content_type = iter % 4 ? rand_str(&seed) : NULL;
        m->storage_class = rand_str(&seed);
        m->data_dir = rand_str(&seed);
        m->checksum_algorithm = rand_str(&seed);
        m->checksum_value = iter % 6 ? rand_str(&seed) : NULL;
        m->n_user_meta = (uint32_t)(rand_r(&seed) % 4);
        m->user_meta = calloc(4, sizeof *m->user_meta);
        for (uint32_t i = 0; i < m->n_user_meta; i++) {
            m->user_meta[i].key = rand_str(&seed); /* repeats ("" twice...) happen */
            m->user_meta[i].value = rand_str(&seed);
        }
        m->n_parts = (uint32_t)(rand_r(&seed) % 3);
        m->parts = calloc(3, sizeof *m->parts);
        for (uint32_t i = 0; i < m->n_parts; i++) {
            m->parts[i].number = i + 1;
            m->parts[i].size = (uint64_t)rand_r(&seed) << 20;
            m->parts[i].etag = rand_str(&seed);
        }
        m->erasure.data_blocks = (uint32_t)iter;
        m->erasure.parity_blocks = 2;
        m->erasure.block_size = UINT32_MAX;
        m->erasure.n_distribution = (uint32_t)(rand_r(&seed) % 4);
        m->erasure.distribution = calloc(4, sizeof(uint32_t));
        for (uint32_t i = 0; i < m->erasure.n_distribution; i++)
            m->erasure.distribution[i] = i * 7;
        if (iter % 17 == 0) {
            m->inline_len = 5;
            m->inline_data = (uint8_t *)strdup("hello");
        }
        check_same(&v);
        mc_version_clear(&v);
    }
}

Test(http_local, op_result_json_matches_the_engine)
{
    unsigned seed = 7;
    for (int iter = 0; iter < 2000; iter++) {
        struct mc_op_result r = {.failed_op = -1};
        r.code = iter % 9 == 0 ? MC_EPRECOND : 0;
        r.failed_op = iter % 18 == 0 ? 3 : -1;
        r.delete_marker = iter % 2;
        r.duplicate = iter % 5 == 0;
        r.session_id = iter % 7 == 0 ? (uint64_t)iter << 40 : 0;
        char *s = rand_str(&seed);
        snprintf(r.version_id, sizeof r.version_id, "%s", iter % 4 ? s : "");
        free(s);
        char *want = mc_op_result_json(&r, MC_JSON_COMPACT);
        char *got = mc_http_op_result_json(&r);
        cr_assert_not_null(got);
        cr_assert_str_eq(got, want);
        free(want);
        free(got);
    }
}
