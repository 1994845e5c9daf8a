/* h1.h: HTTP/1.x request parser (request line, headers, URL, Content-Length and chunked bodies).
 */
#ifndef MC_HTTP_H1_H
#define MC_HTTP_H1_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The parser works in place on the connection's input buffer: it never allocates. Names,
 * values, the decoded path and query arguments are NUL-terminated strings inside the buffer,
 * valid until the request's bytes are consumed. Input arrives in any split (byte by byte
 * works); each call re-examines what is buffered and says MC_H1_MORE until a whole head, then
 * a whole body, is there. A chunked body is decoded in place as whole chunks arrive.
 */

#define MC_H1_MAX_HEAD_BYTES (16u * 1024) /* request line + headers: more answers 431 */
#define MC_H1_MAX_HEADERS    64           /* more answers 431 */
#define MC_H1_MAX_ARGS       64           /* query arguments; more answers 400 */
#define MC_H1_MAX_CHUNK_LINE 1024         /* chunk-size line with extensions: more is 400 */
#define MC_H1_MORE           1            /* need more input */

struct mc_h1_field {
    const char *name;
    const char *value; /* query args: NULL for "?flag" (no '=') */
};

struct mc_h1_req {
    const char *method;
    char *path; /* percent-decoded (%00 becomes 0xFF), NUL-terminated */
    int minor;  /* HTTP/1.minor: 0 or 1 (1.2 and up count as 1) */
    bool keep_alive;
    bool expect_continue; /* Expect: 100-continue */
    bool chunked;
    uint64_t content_length;
    size_t head_len; /* bytes of request line + headers, including the empty line */
    uint32_t n_headers;
    uint32_t n_args;
    struct mc_h1_field headers[MC_H1_MAX_HEADERS];
    struct mc_h1_field args[MC_H1_MAX_ARGS];
    /* Body (after mc_h1_parse_body returned 0): body_len bytes at buf + head_len. */
    size_t body_len;
    size_t total_len; /* the whole request as framed on the wire (head, body, chunk framing) */
    /* Chunked decoding state: raw input parsed up to ck_raw, decoded bytes end at ck_out. */
    size_t ck_raw;
    size_t ck_out;
};

/* Parse the head in buf[0, len). 0 (r filled; buf modified in place), MC_H1_MORE, or the HTTP
 * status to answer before closing: 400 (malformed, over MC_H1_MAX_ARGS, no Host on 1.1),
 * 431 (over the limits), 501 (unsupported Transfer-Encoding), 505 (not HTTP/1.x; a 1.x minor
 * above 1 is taken as 1.1). Empty lines before the request line are skipped (counted in
 * head_len). */
int mc_h1_parse_head(char *buf, size_t len, struct mc_h1_req *r);

/* After a parsed head: is the body complete in buf[0, *len)? 0 (r->body_len, r->total_len
 * set), MC_H1_MORE, 400 (bad chunk framing: CRLF required, chunk extensions and trailer lines
 * checked for syntax) or 413 (more than max_body bytes). A chunked body
 * is decoded in place; the consumed framing is squeezed out of buf (*len shrinks), so the
 * buffer never holds more than head + max_body + one chunk's framing. */
int mc_h1_parse_body(char *buf, size_t *len, size_t max_body, struct mc_h1_req *r);

/* The buffer holding a parsed head moved (it grew while the body arrives): old_base was its
 * address. */
void mc_h1_rebase(struct mc_h1_req *r, uintptr_t old_base, char *new_base);

/* May "name: value" be written as a header line? name a token, value without CTLs but HTAB. */
bool mc_h1_field_ok(const char *name, const char *value);

/* Case-insensitive header lookup (first match) or NULL. */
const char *mc_h1_header(const struct mc_h1_req *r, const char *name);
/* Query argument (first match) or NULL. */
const char *mc_h1_arg(const struct mc_h1_req *r, const char *name);

/* Percent-decode s in place as MHD did (invalid escapes stay as they are), except that %00
 * becomes 0xFF: a NUL would cut the C string short silently, 0xFF is never valid UTF-8 so
 * the engine rejects it (InvalidKey). plus: '+' means space (query arguments). Returns the
 * new length. */
size_t mc_h1_unescape(char *s, bool plus);

#endif
