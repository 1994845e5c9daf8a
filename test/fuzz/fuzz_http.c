/* fuzz_http.c: libFuzzer target for the HTTP API's request parsing: routes, methods, args, body. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "http/handlers.h"
#include "http/internal.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"

/*
 * The HTTP server (libmicrohttpd) hands every request to mc_http_route_parse(url) and
 * mc_http_route_allows(route, method), then the handler parses query args (mc_http_parse_u32)
 * and the JSON body (mc_http_parse_body). mc_http_dispatch itself needs a live MHD connection
 * (argument lookups go through it), so it is not reachable without sockets; these are the
 * socket-free entry points.
 *
 * Input: "METHOD\nPATH\nARG\nBODY..." (missing parts are empty). Checked against small
 * reference implementations: the route fields are within bounds and point into the path; the
 * method check accepts exactly the methods listed by mc_http_route_methods; parse_u32 agrees
 * with a strtoull-based parse; the body parser returns an object or an error response.
 */

#define MAX_PART 4096

/* Split off the next '\n'-terminated part as a NUL-terminated copy. */
static char *next_part(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *s = *p;
    const uint8_t *nl = memchr(s, '\n', (size_t)(end - s));
    const uint8_t *e = nl ? nl : end;
    size_t n = (size_t)(e - s);
    char *out = malloc(n + 1);
    FUZZ_ASSERT(out != NULL, "malloc");
    memcpy(out, s, n);
    out[n] = 0;
    *p = nl ? nl + 1 : end;
    return out;
}

/* Reference: is method one of the ", "-separated entries of list? */
static bool ref_allows(const char *list, const char *method)
{
    size_t m = strlen(method);
    const char *p = list;
    while (*p) {
        const char *c = strchr(p, ',');
        size_t n = c ? (size_t)(c - p) : strlen(p);
        if (n == m && memcmp(p, method, m) == 0) {
            return true;
        }
        if (!c) {
            break;
        }
        p = c + 1;
        while (*p == ' ') {
            p++;
        }
    }
    return false;
}

static void check_route(const char *path, const char *method)
{
    struct mc_http_path hp;
    int rc = mc_http_route_parse(path, &hp);
    FUZZ_ASSERT(rc == 0 || rc == MC_ENOTFOUND || rc == MC_EBUCKETNAME || rc == MC_EINVAL,
                "route_parse rc %d", rc);
    if (rc != 0) {
        return;
    }
    FUZZ_ASSERT(hp.route != MC_ROUTE_NONE, "accepted path without a route");
    FUZZ_ASSERT(memchr(hp.bucket, 0, sizeof(hp.bucket)) != NULL, "bucket not terminated");
    if (hp.route == MC_ROUTE_OBJECT) {
        FUZZ_ASSERT(hp.key != NULL && hp.key[0] != 0, "object route without a key");
        FUZZ_ASSERT(hp.key >= path && hp.key < path + strlen(path), "key outside the path");
        (void)mc_validate_key(hp.key, strlen(hp.key));
    } else {
        FUZZ_ASSERT(hp.key == NULL, "key set on route %d", (int)hp.route);
    }
    if (hp.route == MC_ROUTE_MEMBER || hp.route == MC_ROUTE_PROMOTE) {
        FUZZ_ASSERT(hp.member_id != 0, "member route with id 0");
    }
    if (hp.bucket[0]) {
        (void)mc_validate_bucket_name(hp.bucket);
    }
    const char *list = mc_http_route_methods(hp.route);
    FUZZ_ASSERT(list != NULL && list[0] != 0, "route %d lists no methods", (int)hp.route);
    bool got = mc_http_route_allows(hp.route, method);
    FUZZ_ASSERT(got == ref_allows(list, method), "route_allows(\"%s\", \"%s\") = %d", list, method,
                (int)got);
}

static void check_u32(const char *s)
{
    uint32_t v = 12345;
    int rc = mc_http_parse_u32(s, 1, 1000, &v);
    /* Reference: non-empty, digits only, value ≥ 1 (any size), clamped to 1000. */
    bool digits = s[0] != 0 && strspn(s, "0123456789") == strlen(s);
    bool nonzero = digits && strspn(s, "0") != strlen(s);
    if (!digits || !nonzero) {
        FUZZ_ASSERT(rc == MC_EINVAL, "parse_u32(\"%s\") accepted", s);
        return;
    }
    /* Values beyond uint32 may be refused (documented range is [min, UINT32_MAX]). */
    const char *t = s + strspn(s, "0");
    bool huge = strlen(t) > 10 || (strlen(t) == 10 && strcmp(t, "4294967295") > 0);
    if (huge) {
        FUZZ_ASSERT(rc == MC_EINVAL || (rc == 0 && v == 1000), "parse_u32(huge) rc %d v %u", rc, v);
        return;
    }
    unsigned long long ref = strtoull(s, NULL, 10);
    FUZZ_ASSERT(rc == 0 && v == (ref > 1000 ? 1000 : ref), "parse_u32(\"%s\") rc %d v %u", s, rc,
                v);
}

static void check_body(const uint8_t *body, size_t len)
{
    char *copy = malloc(len + 1);
    FUZZ_ASSERT(copy != NULL, "malloc");
    memcpy(copy, body, len);
    copy[len] = 0;
    struct mc_http_request q = {0};
    q.method = "PUT";
    q.url = "/v1/buckets/b";
    q.body = copy;
    q.body_len = len;
    for (int required = 0; required < 2; required++) {
        struct mc_http_response r = {0};
        json_t *o = mc_http_parse_body(&q, &r, required);
        if (o) {
            FUZZ_ASSERT(json_is_object(o), "parse_body returned a non-object");
            FUZZ_ASSERT(r.status == 0 && r.body == NULL, "response filled on success");
            json_decref(o);
        } else {
            FUZZ_ASSERT(r.status == 400 && r.body != NULL, "error response: status %d", r.status);
        }
        free(r.body);
    }
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *method = next_part(&p, end);
    char *path = next_part(&p, end);
    char *arg = next_part(&p, end);
    if (strlen(method) <= MAX_PART && strlen(path) <= MAX_PART) {
        check_route(path, method);
    }
    if (strlen(arg) <= 64) {
        check_u32(arg);
    }
    check_body(p, (size_t)(end - p));
    free(arg);
    free(path);
    free(method);
    return 0;
}
