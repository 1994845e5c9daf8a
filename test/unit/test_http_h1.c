/* test_http_h1.c: the HTTP/1.x request parser (src/http/h1.c) without sockets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/h1.h"

static struct mc_h1_req g_r;
static char g_buf[1 << 16];

/* Parse head (and body, limit max_body) of s; returns the first non-zero code, or 0. */
static int parse(const char *s, size_t max_body, size_t *len_out)
{
    size_t len = strlen(s);
    cr_assert_lt(len, sizeof g_buf);
    memcpy(g_buf, s, len + 1);
    int rc = mc_h1_parse_head(g_buf, len, &g_r);
    if (rc == 0)
        rc = mc_h1_parse_body(g_buf, &len, max_body, &g_r);
    if (len_out)
        *len_out = len;
    return rc;
}

Test(http_h1, request_line_headers_and_url)
{
    cr_assert_eq(
        parse("GET /v1/buckets/b/objects/a%20b%2Bc+d?prefix=x+y%2B&flag&k=%00&=v "
              "HTTP/1.1\r\nHost: h\r\nX-Thing:   spaced value  \r\nIF-MATCH: \"e\"\r\n\r\n",
              100, NULL),
        0);
    cr_assert_str_eq(g_r.method, "GET");
    cr_assert_str_eq(g_r.path, "/v1/buckets/b/objects/a b+c+d"); /* '+' stays in a path */
    cr_assert_eq(g_r.minor, 1);
    cr_assert(g_r.keep_alive);
    cr_assert_str_eq(mc_h1_header(&g_r, "x-thing"), "spaced value");
    cr_assert_str_eq(mc_h1_header(&g_r, "If-Match"), "\"e\"");
    cr_assert_null(mc_h1_header(&g_r, "Missing"));
    cr_assert_str_eq(mc_h1_arg(&g_r, "prefix"), "x y+"); /* '+' is a space in a query */
    cr_assert_null(mc_h1_arg(&g_r, "flag"));             /* present without '=' */
    cr_assert_eq(g_r.n_args, 4);
    cr_assert_str_eq(mc_h1_arg(&g_r, "k"), "\xff"); /* %00 never cuts a string short */
    cr_assert_eq(g_r.body_len, 0);
    cr_assert_eq(g_r.total_len, g_r.head_len);
}

Test(http_h1, unescape_rules)
{
    char s[64];
    strcpy(s, "a%zz%4%41%00b%2f+");
    cr_assert_eq(mc_h1_unescape(s, false), strlen("a%zz%4A\xff"
                                                  "b/+"));
    cr_assert_str_eq(s, "a%zz%4A\xff"
                        "b/+"); /* invalid escapes stay as they are */
    strcpy(s, "a+b%2B");
    mc_h1_unescape(s, true);
    cr_assert_str_eq(s, "a b+");
}

Test(http_h1, incomplete_input_needs_more)
{
    const char *req = "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";
    size_t n = strlen(req);
    for (size_t k = 0; k < n; k++) {
        memcpy(g_buf, req, k);
        size_t len = k;
        int rc = mc_h1_parse_head(g_buf, len, &g_r);
        if (rc == 0)
            rc = mc_h1_parse_body(g_buf, &len, 100, &g_r);
        cr_assert_eq(rc, MC_H1_MORE, "prefix %zu: rc %d", k, rc);
    }
    cr_assert_eq(parse(req, 100, NULL), 0);
    cr_assert_eq(g_r.body_len, 5);
    cr_assert_eq(memcmp(g_buf + g_r.head_len, "hello", 5), 0);
}

Test(http_h1, connection_semantics)
{
    cr_assert_eq(parse("GET / HTTP/1.0\r\n\r\n", 0, NULL), 0);
    cr_assert_not(g_r.keep_alive);
    cr_assert_eq(parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 0, NULL), 0);
    cr_assert(g_r.keep_alive);
    cr_assert_eq(parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n", 0, NULL), 0);
    cr_assert_not(g_r.keep_alive);
    cr_assert_eq(
        parse("PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n", 10,
              NULL),
        MC_H1_MORE);
    cr_assert(g_r.expect_continue);
    /* bare LF line ends are accepted */
    cr_assert_eq(parse("GET /a HTTP/1.1\nHost: x\n\n", 0, NULL), 0);
    cr_assert_str_eq(mc_h1_header(&g_r, "host"), "x");
}

Test(http_h1, chunked_bodies)
{
    size_t len;
    const char *req = "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                      "3\r\nabc\r\nA;name=v\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT";
    cr_assert_eq(parse(req, 100, &len), 0);
    cr_assert_eq(g_r.body_len, 13);
    cr_assert_eq(memcmp(g_buf + g_r.head_len, "abc0123456789", 13), 0);
    cr_assert_eq(len - g_r.total_len, 4);
    cr_assert_eq(memcmp(g_buf + g_r.total_len, "NEXT", 4), 0); /* the pipelined rest */
    /* over the limit: refused at the size line */
    cr_assert_eq(
        parse("PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n", 4, NULL),
        413);
    cr_assert_eq(parse("PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n3\r\nabc\r\n",
                       5, NULL),
                 413);
    cr_assert_eq(
        parse("PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n", 9,
              NULL),
        400);
    cr_assert_eq(parse("PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 9, NULL),
                 501);
}

/* Chunks arriving in pieces: the framing already decoded is squeezed out of the buffer. */
Test(http_h1, chunked_incremental)
{
    const char *head = "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    const char *parts[] = {"4\r\nab", "cd\r\n2\r", "\nef\r\n", "0\r\n", "\r\n"};
    size_t len = strlen(head);
    memcpy(g_buf, head, len);
    cr_assert_eq(mc_h1_parse_head(g_buf, len, &g_r), 0);
    int rc = MC_H1_MORE;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        cr_assert_eq(rc, MC_H1_MORE);
        memcpy(g_buf + len, parts[i], strlen(parts[i]));
        len += strlen(parts[i]);
        rc = mc_h1_parse_body(g_buf, &len, 100, &g_r);
    }
    cr_assert_eq(rc, 0);
    cr_assert_eq(g_r.body_len, 6);
    cr_assert_eq(memcmp(g_buf + g_r.head_len, "abcdef", 6), 0);
    cr_assert_eq(g_r.total_len, len);
}

Test(http_h1, limits_and_malformed)
{
    cr_assert_eq(parse("PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n", 10, NULL), 413);
    static char big[MC_H1_MAX_HEAD_BYTES + 64];
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: x\r\nX: %0*d", (int)MC_H1_MAX_HEAD_BYTES, 0);
    cr_assert_eq(parse(big, 0, NULL), 431);
    char many[4096] = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (int i = 0; i < MC_H1_MAX_HEADERS + 1; i++)
        strcat(many, "A: b\r\n");
    strcat(many, "\r\n");
    cr_assert_eq(parse(many, 0, NULL), 431);
    cr_assert_eq(parse("GET / HTTP/2.0\r\nHost: x\r\n\r\n", 0, NULL), 505);
    static const char *const bad[] = {
        "GET\r\n\r\n",
        "GET / HTTP/1.1 x\r\n\r\n",
        "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET x HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / FTP/1.1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX : y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nX: a\x01b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",                       /* no Host (RFC 9112 §3.2) */
        "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", /* two */
        "GET / HTTP/1.x\r\nHost: a\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(parse(bad[i], 100, NULL), 400, "case %zu: %s", i, bad[i]);
    /* a NUL byte in the head */
    memcpy(g_buf, "GET /\0 HTTP/1.1\r\n\r\n", 20);
    cr_assert_eq(mc_h1_parse_head(g_buf, 20, &g_r), 400);
}

/* RFC 9112 §2.3: a higher HTTP/1.x minor is handled as 1.1. */
Test(http_h1, higher_minor_is_1_1)
{
    cr_assert_eq(parse("GET / HTTP/1.2\r\nHost: x\r\n\r\n", 0, NULL), 0);
    cr_assert_eq(g_r.minor, 1);
    cr_assert(g_r.keep_alive);
    cr_assert_eq(parse("GET / HTTP/1.0\r\n\r\n", 0, NULL), 0); /* 1.0 needs no Host */
    cr_assert_eq(g_r.minor, 0);
}

/* More query arguments than are kept is a 400, not a silent drop (a version-id past the
 * 64th would be ignored and the current version used instead). */
Test(http_h1, too_many_query_args)
{
    char req[4096] = "GET /v1/buckets/b/objects/k?";
    for (int i = 0; i < MC_H1_MAX_ARGS; i++)
        snprintf(req + strlen(req), sizeof req - strlen(req), "a%d=1&", i);
    char ok[4096];
    snprintf(ok, sizeof ok, "%.*s HTTP/1.1\r\nHost: x\r\n\r\n", (int)strlen(req) - 1, req);
    cr_assert_eq(parse(ok, 0, NULL), 0); /* exactly the limit */
    cr_assert_eq(g_r.n_args, MC_H1_MAX_ARGS);
    strcat(req, "version-id=zzzz HTTP/1.1\r\nHost: x\r\n\r\n");
    cr_assert_eq(parse(req, 0, NULL), 400);
    /* empty arguments ("&&") do not count */
    cr_assert_eq(parse("GET /?&&&a=1&& HTTP/1.1\r\nHost: x\r\n\r\n", 0, NULL), 0);
    cr_assert_eq(g_r.n_args, 1);
}

/* RFC 9112 §2.2: empty lines before the request line are ignored (a client's stray CRLF after
 * a body), and count in the head's length. */
Test(http_h1, leading_empty_lines_ignored)
{
    cr_assert_eq(parse("\r\n", 0, NULL), MC_H1_MORE);
    cr_assert_eq(parse("\r\n\nGET /a HTTP/1.1\r\nHost: x\r\n\r\nNEXT", 0, NULL), 0);
    cr_assert_str_eq(g_r.method, "GET");
    cr_assert_str_eq(g_r.path, "/a");
    cr_assert_eq(g_r.total_len, strlen("\r\n\nGET /a HTTP/1.1\r\nHost: x\r\n\r\n"));
    static char many[MC_H1_MAX_HEAD_BYTES + 8];
    memset(many, '\n', sizeof many - 1);
    cr_assert_eq(parse(many, 0, NULL), 431); /* bounded by the head limit */
}

/* Chunked framing is strict (RFC 9112 §7.1): CRLF everywhere, chunk extensions as
 * ;name[=token|quoted-string], trailer lines as header lines. Lenient framing is a request
 * smuggling surface when a proxy in front reads it differently. */
Test(http_h1, chunked_strict_framing)
{
    const char *h = "PUT /x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    static const char *const good[] = {
        "5\r\nhello\r\n0\r\n\r\n",
        "5;a\r\nhello\r\n0\r\n\r\n",
        "5 ; a = b ;c=\"q \\\" ;\"\r\nhello\r\n0;z\r\n\r\n",
        "5\r\nhello\r\n0\r\nX-T: v\r\nY:\r\n\r\n",
    };
    static const char *const bad[] = {
        "5\rX\nhello\r\n0\r\n\r\n",      /* bare CR in the size line */
        "5\nhello\r\n0\r\n\r\n",         /* bare LF ending it */
        "5\r\nhello\n0\r\n\r\n",         /* bare LF after the data */
        "5\x01\r\nhello\r\n0\r\n\r\n",   /* CTL after the size */
        "5;\r\nhello\r\n0\r\n\r\n",      /* extension without a name */
        "5;a=\"x\r\nhello\r\n0\r\n\r\n", /* unterminated quoted-string */
        "5;a=b c\r\nhello\r\n0\r\n\r\n",
        "5\r\nhello\r\n0\r\n\x00garbage\r\n\r\n", /* trailer not a field line */
        "5\r\nhello\r\n0\r\nX-T v\r\n\r\n",
        "5\r\nhello\r\n0\r\nX-T: a\x01\r\n\r\n",
        "5\r\nhello\r\n0\r\n\n", /* bare LF ending the trailers */
    };
    char req[512];
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        snprintf(req, sizeof req, "%s%s", h, good[i]);
        cr_assert_eq(parse(req, 100, NULL), 0, "good %zu: %s", i, good[i]);
        cr_assert_eq(g_r.body_len, 5);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t hl = strlen(h), bl = i == 7 ? 25 : strlen(bad[i]); /* case 7 holds a NUL */
        memcpy(g_buf, h, hl);
        memcpy(g_buf + hl, bad[i], bl);
        size_t len = hl + bl;
        g_buf[len] = '\0';
        cr_assert_eq(mc_h1_parse_head(g_buf, len, &g_r), 0);
        cr_assert_eq(mc_h1_parse_body(g_buf, &len, 100, &g_r), 400, "bad %zu: %s", i, bad[i]);
    }
}

/* Header lines the server writes: a value with CR/LF/CTL (or a name that is not a token) is
 * never emitted. */
Test(http_h1, field_ok)
{
    cr_assert(mc_h1_field_ok("ETag", "\"abc\""));
    cr_assert(mc_h1_field_ok("X", "a\tb"));
    cr_assert_not(mc_h1_field_ok("ETag", "\"x\r\nSet-Cookie: pwned=1\""));
    cr_assert_not(mc_h1_field_ok("ETag", "x\ny"));
    cr_assert_not(mc_h1_field_ok("ETag", "x\x7f"));
    cr_assert_not(mc_h1_field_ok("Bad Name", "x"));
    cr_assert_not(mc_h1_field_ok("", "x"));
}

/* RFC 9112 §3.2.2: the absolute-form is accepted; routing sees its path and query only. */
Test(http_h1, absolute_form_target)
{
    cr_assert_eq(parse("GET http://127.0.0.1:7080/v1/buckets/b/objects/a%20b?x=1&y HTTP/1.1\r\n"
                       "Host: 127.0.0.1:7080\r\n\r\n",
                       0, NULL),
                 0);
    cr_assert_str_eq(g_r.path, "/v1/buckets/b/objects/a b");
    cr_assert_eq(g_r.n_args, 2);
    cr_assert_str_eq(mc_h1_arg(&g_r, "x"), "1");
    cr_assert_eq(parse("GET HTTPS://h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", 0, NULL), 0);
    cr_assert_str_eq(g_r.path, "/healthz");
    /* an empty path is "/" */
    cr_assert_eq(parse("GET http://host:1?k=v HTTP/1.1\r\nHost: h\r\n\r\n", 0, NULL), 0);
    cr_assert_str_eq(g_r.path, "/");
    cr_assert_str_eq(mc_h1_arg(&g_r, "k"), "v");
    cr_assert_eq(parse("GET http://h HTTP/1.1\r\nHost: h\r\n\r\n", 0, NULL), 0);
    cr_assert_str_eq(g_r.path, "/");
    /* still refused: no host, userinfo, other schemes, no Host header on 1.1, a CTL in the
     * authority */
    cr_assert_eq(parse("GET http:///healthz HTTP/1.1\r\nHost: h\r\n\r\n", 0, NULL), 400);
    cr_assert_eq(parse("GET http://u@h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", 0, NULL), 400);
    cr_assert_eq(parse("GET ftp://h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", 0, NULL), 400);
    cr_assert_eq(parse("GET http:/h/healthz HTTP/1.1\r\nHost: h\r\n\r\n", 0, NULL), 400);
    cr_assert_eq(parse("GET http://h/healthz HTTP/1.1\r\n\r\n", 0, NULL), 400);
    cr_assert_eq(parse("GET http://h\x01x/healthz HTTP/1.1\r\nHost: h\r\n\r\n", 0, NULL), 400);
}
