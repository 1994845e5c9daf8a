/* fuzz_http.c: libFuzzer target for the HTTP API's request parsing: wire, routes, args, body. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "http/h1.h"
#include "http/handlers.h"
#include "http/internal.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"

/*
 * The HTTP server reads a connection's bytes with the HTTP/1.1 parser (src/http/h1.c: request
 * line, headers, URL decoding, Content-Length / chunked bodies), then hands every request to
 * mc_http_route_parse(url) and mc_http_route_allows(route, method); the handler parses query
 * args (mc_http_parse_u32) and the JSON body (mc_http_parse_body). All of these are
 * socket-free entry points.
 *
 * Input, twice over: (1) the whole input as the bytes of a connection: requests parsed one
 * after another as the server does (in place, bodies capped at WIRE_MAX_BODY), checked for
 * in-bounds results and against a split of the same input (a complete head parsed from a
 * prefix is the same head); (2) "METHOD\nPATH\nARG\nBODY..." (missing parts are empty),
 * checked against small reference implementations: the route fields are within bounds and
 * point into the path; the method check accepts exactly the methods listed by
 * mc_http_route_methods; parse_u32 agrees with a strtoull-based parse; the body parser returns
 * an object or an error response.
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

#define WIRE_MAX_BODY     4096
#define WIRE_MAX_REQUESTS 16

static void check_head(const char *buf, size_t len, const struct mc_h1_req *r)
{
    FUZZ_ASSERT(r->head_len > 0 && r->head_len <= len, "head_len %zu of %zu", r->head_len, len);
    FUZZ_ASSERT(r->method >= buf && r->method < buf + r->head_len, "method outside the head");
    FUZZ_ASSERT(r->method[0] != 0, "empty method");
    FUZZ_ASSERT(r->path >= buf && r->path < buf + r->head_len && r->path[0] == '/',
                "path outside the head or not absolute");
    FUZZ_ASSERT(r->minor == 0 || r->minor == 1, "minor %d", r->minor);
    FUZZ_ASSERT(r->n_headers <= MC_H1_MAX_HEADERS && r->n_args <= MC_H1_MAX_ARGS, "counts");
    for (uint32_t i = 0; i < r->n_headers; i++) {
        FUZZ_ASSERT(r->headers[i].name[0] != 0, "empty header name");
        FUZZ_ASSERT(r->headers[i].value >= buf && r->headers[i].value < buf + r->head_len,
                    "header value outside the head");
        FUZZ_ASSERT(mc_h1_field_ok(r->headers[i].name, r->headers[i].value),
                    "accepted a field the server would refuse to write");
    }
    FUZZ_ASSERT(r->minor == 0 || mc_h1_header(r, "Host") != NULL, "HTTP/1.1 without Host");
    FUZZ_ASSERT(!(r->chunked && r->content_length), "chunked with a Content-Length");
}

/* The server's reading loop over the input as one connection's bytes. */
static void check_wire(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    FUZZ_ASSERT(buf != NULL, "malloc");
    memcpy(buf, data, size);
    buf[size] = 0;
    size_t len = size;
    for (int n = 0; n < WIRE_MAX_REQUESTS && len > 0; n++) {
        /* the same head from the first half of what is there, when it is complete */
        size_t half = len / 2;
        char *pre = malloc(half + 1);
        FUZZ_ASSERT(pre != NULL, "malloc");
        memcpy(pre, buf, half);
        struct mc_h1_req *rp = malloc(sizeof *rp), *r = malloc(sizeof *r);
        FUZZ_ASSERT(rp && r, "malloc");
        int rc_pre = mc_h1_parse_head(pre, half, rp);
        int rc = mc_h1_parse_head(buf, len, r);
        FUZZ_ASSERT(rc == 0 || rc == MC_H1_MORE || rc == 400 || rc == 431 || rc == 501 || rc == 505,
                    "parse_head rc %d", rc);
        if (rc_pre == 0) {
            FUZZ_ASSERT(rc == 0 && r->head_len == rp->head_len, "prefix head %zu, whole rc %d",
                        rp->head_len, rc);
            check_head(pre, half, rp);
        }
        if (rc == MC_H1_MORE)
            FUZZ_ASSERT(rc_pre == MC_H1_MORE, "prefix rc %d, whole needs more", rc_pre);
        free(pre);
        free(rp);
        if (rc == 0) {
            check_head(buf, len, r);
            struct mc_http_request q = {.h = r};
            char qs[256];
            mc_http_query_string(&q, qs, sizeof qs);
            FUZZ_ASSERT(strlen(qs) < sizeof qs, "query string overflow");
            (void)mc_h1_header(r, "content-type");
            (void)mc_h1_arg(r, "prefix");
            rc = mc_h1_parse_body(buf, &len, WIRE_MAX_BODY, r);
            FUZZ_ASSERT(rc == 0 || rc == MC_H1_MORE || rc == 400 || rc == 413 || rc == 431,
                        "parse_body rc %d", rc);
            FUZZ_ASSERT(len <= size, "buffer grew");
        }
        if (rc != 0) {
            free(r);
            break;
        }
        FUZZ_ASSERT(r->body_len <= WIRE_MAX_BODY, "body %zu over the limit", r->body_len);
        FUZZ_ASSERT(r->head_len + r->body_len <= r->total_len && r->total_len <= len,
                    "body %zu+%zu total %zu len %zu", r->head_len, r->body_len, r->total_len, len);
        memmove(buf, buf + r->total_len, len - r->total_len);
        len -= r->total_len;
        free(r);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_wire(data, size);
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
