/* test_http_s3fixture.h: an HTTP server over an engine-mode test node, one per test, and
 * request helpers that check the status (the S3-semantics HTTP tests share it). */
#ifndef MC_TEST_HTTP_S3FIXTURE_H
#define MC_TEST_HTTP_S3FIXTURE_H

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../client/harness.h"
#include "http/server.h"
#include "test_http_client.h"

static char s3_dir[64];
static struct th_server *s3_ts;
static struct mc_http_server *s3_hs;
static int s3_port;

static void s3_start(void)
{
    snprintf(s3_dir, sizeof s3_dir, "/tmp/mc_http_s3sem_XXXXXX");
    cr_assert_not_null(mkdtemp(s3_dir));
    struct th_opts to = {.mode = TH_ENGINE, .engine_dir = s3_dir};
    cr_assert_eq(th_start(&to, &s3_ts), 0);
    struct mc_http_options ho = {.listen_addr = "127.0.0.1:0",
                                 .client_addr = th_addr(s3_ts),
                                 .threads = 2,
                                 .request_timeout_ms = 2000};
    cr_assert_eq(mc_http_start(&ho, &s3_hs), 0);
    s3_port = mc_http_port(s3_hs);
}

static void s3_stop(void)
{
    mc_http_stop(s3_hs);
    th_stop(s3_ts, NULL);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s3_dir);
    cr_assert_eq(system(cmd), 0);
}

/* One request; checks the status; returns the JSON body (NULL when empty). */
static json_t *s3_req(const char *method, const char *path, const char *body, int want,
                      struct th_resp *out)
{
    struct th_resp r;
    cr_assert_eq(thc_request(s3_port, method, path, NULL, body, &r), 0, "%s %s", method, path);
    cr_assert_eq(r.status, want, "%s %s: %d, want %d: %s", method, path, r.status, want, r.body);
    json_t *j = r.body_len ? json_loads(r.body, 0, NULL) : NULL;
    if (out)
        *out = r;
    else
        thc_free(&r);
    return j;
}

static void s3_error(const char *method, const char *path, const char *body, int want,
                     const char *name)
{
    json_t *j = s3_req(method, path, body, want, NULL);
    cr_assert_not_null(j);
    cr_assert_str_eq(json_string_value(json_object_get(j, "error")), name, "%s %s", method, path);
    json_decref(j);
}

#endif
