/* h1.c: HTTP/1.x request parser working in place on the connection buffer (see h1.h). */
#include "http/h1.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "util/codec.h"

size_t mc_h1_unescape(char *s, bool plus)
{
    char *w = s;
    for (const char *p = s; *p; p++) {
        int hi = p[0] == '%' ? mc_hex_digit((unsigned char)p[1], true) : -1;
        int lo = hi >= 0 ? mc_hex_digit((unsigned char)p[2], true) : -1;
        if (lo >= 0) {
            int v = hi * 16 + lo;
            *w++ = (char)(v == 0 ? 0xFF : v);
            p += 2;
        } else {
            *w++ = plus && *p == '+' ? ' ' : *p;
        }
    }
    *w = '\0';
    return (size_t)(w - s);
}

/* RFC 9110 token characters (methods, header names). */
static bool is_tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static bool is_token(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if (!is_tchar((unsigned char)*s))
            return false;
    return true;
}

/* "a=1&b&c=x+y" split in place into r->args (decoded; '+' is a space, as MHD did). 0, or
 * 400 over MC_H1_MAX_ARGS: dropping the rest silently would ignore e.g. a version-id and act
 * on the current version instead. */
static int parse_query(char *q, struct mc_h1_req *r)
{
    while (q && *q) {
        char *amp = strchr(q, '&');
        if (amp)
            *amp = '\0';
        if (*q && r->n_args == MC_H1_MAX_ARGS)
            return 400;
        if (*q) {
            char *eq = strchr(q, '=');
            if (eq) {
                *eq = '\0';
                mc_h1_unescape(eq + 1, true);
            }
            mc_h1_unescape(q, true);
            r->args[r->n_args++] = (struct mc_h1_field){q, eq ? eq + 1 : NULL};
        }
        q = amp ? amp + 1 : NULL;
    }
    return 0;
}

/* The origin-form part ("/path?query") of a request target (NUL-terminated, modified in
 * place), or NULL (400). RFC 9112 §3.2.2: a server MUST accept the absolute-form
 * ("http://host:port/path?query", what a proxy is sent); routing uses its path and query
 * only, the authority is ignored (Host is still checked as for origin-form). An empty path
 * is "/": the authority's last byte, no longer needed, becomes that slash. */
static char *origin_part(char *target)
{
    if (target[0] == '/')
        return target;
    size_t skip = strncasecmp(target, "http://", 7) == 0    ? 7
                  : strncasecmp(target, "https://", 8) == 0 ? 8
                                                            : 0;
    if (!skip)
        return NULL;
    char *auth = target + skip;
    size_t auth_len = strcspn(auth, "/?#");
    /* RFC 9110 §4.2.1: an empty host is invalid; §4.2.4: userinfo is treated as an error */
    if (auth_len == 0 || memchr(auth, '@', auth_len))
        return NULL;
    if (auth[auth_len] == '/')
        return auth + auth_len;
    auth[auth_len - 1] = '/';
    return auth + auth_len - 1;
}

/* "METHOD SP target SP HTTP/1.x" (line NUL-terminated). 0, 400 or 505. */
static int parse_request_line(char *line, struct mc_h1_req *r)
{
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    if (!sp1 || !sp2 || strchr(sp2 + 1, ' '))
        return 400;
    *sp1 = '\0';
    *sp2 = '\0';
    char *target = sp1 + 1, *version = sp2 + 1;
    if (!is_token(line) || !(target = origin_part(target)))
        return 400;
    if (strncmp(version, "HTTP/", 5) != 0)
        return 400;
    const char *v = version + 5;
    if (v[0] != '1' || v[1] != '.' || v[2] < '0' || v[2] > '9' || v[3])
        return v[0] >= '0' && v[0] <= '9' && v[1] == '.' && v[2] >= '0' && v[2] <= '9' && !v[3]
                   ? 505
                   : 400;
    r->minor = v[2] == '0' ? 0 : 1; /* RFC 9112 §2.3: a higher 1.x minor is treated as 1.1 */
    for (const char *p = sp1 + 1; *p; p++) /* the whole target, authority included */
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return 400;
    r->method = line;
    char *qm = strchr(target, '?');
    if (qm) {
        *qm = '\0';
        if (parse_query(qm + 1, r) != 0)
            return 400;
    }
    mc_h1_unescape(target, false);
    r->path = target;
    return 0;
}

/* Does the comma-separated list v contain token t (case-insensitive)? */
static bool list_has(const char *v, const char *t)
{
    size_t n = strlen(t);
    for (const char *p = v; *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *te = e;
        while (te > p && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if ((size_t)(te - p) == n && strncasecmp(p, t, n) == 0)
            return true;
        p = e;
    }
    return false;
}

/* The headers that frame the request. 0, 400 or 501. */
static int apply_headers(struct mc_h1_req *r)
{
    bool have_cl = false, conn_close = false, conn_keep = false;
    uint32_t n_host = 0;
    for (uint32_t i = 0; i < r->n_headers; i++) {
        const char *n = r->headers[i].name, *v = r->headers[i].value;
        if (strcasecmp(n, "Content-Length") == 0) {
            if (!*v || strspn(v, "0123456789") != strlen(v) || strlen(v) > 18)
                return 400;
            uint64_t cl = 0;
            for (const char *p = v; *p; p++)
                cl = cl * 10 + (uint64_t)(*p - '0');
            if (have_cl && cl != r->content_length)
                return 400; /* conflicting lengths: request smuggling territory */
            r->content_length = cl;
            have_cl = true;
        } else if (strcasecmp(n, "Transfer-Encoding") == 0) {
            if (strcasecmp(v, "chunked") != 0)
                return 501;
            r->chunked = true;
        } else if (strcasecmp(n, "Connection") == 0) {
            conn_close |= list_has(v, "close");
            conn_keep |= list_has(v, "keep-alive");
        } else if (strcasecmp(n, "Expect") == 0 && strcasecmp(v, "100-continue") == 0) {
            r->expect_continue = true;
        } else if (strcasecmp(n, "Host") == 0) {
            n_host++;
        }
    }
    if (n_host > 1 || (r->minor == 1 && n_host == 0))
        return 400; /* RFC 9112 §3.2: exactly one Host on 1.1, at most one on 1.0 */
    if (r->chunked && have_cl)
        return 400; /* RFC 9112 §6.3: ambiguous framing, refuse */
    if (r->chunked && r->minor == 0)
        return 400;
    r->keep_alive = !conn_close && (r->minor == 1 || conn_keep);
    return 0;
}

/* A field value's characters: no CTL but HTAB (RFC 9110 §5.5). */
static bool value_ok(const char *p, const char *end)
{
    for (; p < end; p++)
        if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
            return false;
    return true;
}

bool mc_h1_field_ok(const char *name, const char *value)
{
    return is_token(name) && value_ok(value, value + strlen(value));
}

/* "Name: value" (line NUL-terminated) into r->headers. 0, 400 or 431. */
static int parse_header(char *line, struct mc_h1_req *r)
{
    char *colon = strchr(line, ':');
    if (!colon)
        return 400;
    *colon = '\0';
    if (!is_token(line))
        return 400; /* also refuses "Name :" and obsolete line folding */
    char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    char *e = v + strlen(v);
    while (e > v && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    if (!value_ok(v, e))
        return 400;
    if (r->n_headers == MC_H1_MAX_HEADERS)
        return 431;
    r->headers[r->n_headers++] = (struct mc_h1_field){line, v};
    return 0;
}

int mc_h1_parse_head(char *buf, size_t len, struct mc_h1_req *r)
{
    /* Everything but the two field arrays (2 KiB, filled up to n_headers / n_args). */
    memset(r, 0, offsetof(struct mc_h1_req, headers));
    r->body_len = r->total_len = r->ck_raw = r->ck_out = 0;
    size_t limit = len < MC_H1_MAX_HEAD_BYTES ? len : MC_H1_MAX_HEAD_BYTES;
    /* Find the end of the head first: nothing is modified until it is all there. */
    size_t pos = 0, end = 0, start = 0;
    bool first = true;
    while (!end) {
        char *nl = memchr(buf + pos, '\n', limit - pos);
        if (!nl)
            return len >= MC_H1_MAX_HEAD_BYTES ? 431 : MC_H1_MORE;
        size_t line_len = (size_t)(nl - (buf + pos));
        if (line_len > 0 && nl[-1] == '\r')
            line_len--;
        pos = (size_t)(nl - buf) + 1;
        if (line_len == 0 && !first)
            end = pos;
        else if (line_len == 0)
            start = pos; /* RFC 9112 §2.2: empty lines before the request line are ignored
                            (bounded by the head limit, as they count in head_len) */
        else
            first = false;
    }
    if (memchr(buf, '\0', end))
        return 400;
    r->head_len = end;
    int rc = 0;
    bool request_line = true;
    for (pos = start; pos < end;) {
        char *nl = memchr(buf + pos, '\n', end - pos);
        assert(nl);
        char *line = buf + pos;
        *nl = '\0';
        if (nl > line && nl[-1] == '\r')
            nl[-1] = '\0';
        pos = (size_t)(nl - buf) + 1;
        if (!*line)
            break;
        rc = request_line ? parse_request_line(line, r) : parse_header(line, r);
        if (rc != 0)
            return rc;
        request_line = false;
    }
    return apply_headers(r);
}

static const char *skip_bws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    return p;
}

/* One or more tchars from p: the end of them, or NULL. */
static const char *skip_token(const char *p, const char *end)
{
    const char *s = p;
    while (p < end && is_tchar((unsigned char)*p))
        p++;
    return p > s ? p : NULL;
}

/* A quoted-string at p ('"'): past its closing quote, or NULL (RFC 9110 §5.6.4). */
static const char *skip_quoted(const char *p, const char *end)
{
    for (p++; p < end; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"')
            return p + 1;
        if (ch == '\\' && p + 1 < end)
            ch = (unsigned char)*++p;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return NULL;
    }
    return NULL;
}

/* Parse a chunk-size line at p (n bytes available): size, and bytes of the line with CRLF.
 * 0, MC_H1_MORE or 400. */
static int chunk_line(const char *p, size_t n, uint64_t *size, size_t *line_len)
{
    size_t lim = n < MC_H1_MAX_CHUNK_LINE ? n : MC_H1_MAX_CHUNK_LINE;
    const char *nl = memchr(p, '\n', lim);
    if (!nl)
        return n >= MC_H1_MAX_CHUNK_LINE ? 400 : MC_H1_MORE;
    uint64_t v = 0;
    size_t i = 0;
    for (; p + i < nl && mc_hex_digit((unsigned char)p[i], true) >= 0; i++) {
        if (i >= 15)
            return 400;
        v = v * 16 + (uint64_t)mc_hex_digit((unsigned char)p[i], true);
    }
    if (i == 0 || nl == p || nl[-1] != '\r')
        return 400; /* RFC 9112 §7.1: the line ends with CRLF */
    const char *q = p + i, *end = nl - 1;
    /* chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] ) */
    for (;;) {
        q = skip_bws(q, end);
        if (q == end)
            break;
        if (*q != ';')
            return 400;
        q = skip_token(skip_bws(q + 1, end), end);
        if (!q)
            return 400;
        const char *e = skip_bws(q, end);
        if (e < end && *e == '=') {
            e = skip_bws(e + 1, end);
            q = e < end && *e == '"' ? skip_quoted(e, end) : skip_token(e, end);
            if (!q)
                return 400;
        }
    }
    *size = v;
    *line_len = (size_t)(nl - p) + 1;
    return 0;
}

/* Trailer section after the last chunk, at p: bytes up to and including its empty line.
 * Each line ends with CRLF and is a field line as in the head ("name: value", no CTLs); the
 * fields themselves are not used. */
static int chunk_trailers(const char *p, size_t n, size_t *used)
{
    size_t pos = 0;
    for (;;) {
        const char *line = p + pos;
        const char *nl = memchr(line, '\n', n - pos);
        if (!nl)
            return n >= MC_H1_MAX_HEAD_BYTES ? 431 : MC_H1_MORE;
        if (nl == line || nl[-1] != '\r')
            return 400;
        const char *cr = nl - 1;
        pos += (size_t)(nl - line) + 1;
        if (cr == line) {
            *used = pos;
            return 0;
        }
        const char *colon = skip_token(line, cr);
        if (!colon || *colon != ':' || !value_ok(colon + 1, cr))
            return 400;
        if (pos >= MC_H1_MAX_HEAD_BYTES)
            return 431;
    }
}

static int parse_chunked(char *buf, size_t *len, size_t max_body, struct mc_h1_req *r)
{
    if (r->ck_raw == 0)
        r->ck_raw = r->ck_out = r->head_len;
    int rc;
    for (;;) {
        uint64_t size;
        size_t line;
        rc = chunk_line(buf + r->ck_raw, *len - r->ck_raw, &size, &line);
        if (rc != 0)
            break;
        size_t decoded = r->ck_out - r->head_len;
        if (size > max_body - decoded) {
            rc = 413; /* refused before its data arrives */
            break;
        }
        if (size == 0) {
            size_t used;
            rc = chunk_trailers(buf + r->ck_raw + line, *len - r->ck_raw - line, &used);
            if (rc != 0)
                break;
            r->body_len = decoded;
            r->total_len = r->ck_raw + line + used;
            return 0;
        }
        size_t need = line + (size_t)size + 2;
        if (*len - r->ck_raw < need) {
            rc = MC_H1_MORE;
            break;
        }
        const char *data = buf + r->ck_raw + line;
        if (data[size] != '\r' || data[size + 1] != '\n')
            return 400; /* RFC 9112 §7.1: CRLF after the data */
        memmove(buf + r->ck_out, data, (size_t)size);
        r->ck_out += (size_t)size;
        r->ck_raw += need;
    }
    if (rc == MC_H1_MORE && r->ck_raw > r->ck_out) {
        /* Squeeze the consumed framing out so the buffer only holds decoded data + the rest. */
        memmove(buf + r->ck_out, buf + r->ck_raw, *len - r->ck_raw);
        *len -= r->ck_raw - r->ck_out;
        r->ck_raw = r->ck_out;
    }
    return rc;
}

int mc_h1_parse_body(char *buf, size_t *len, size_t max_body, struct mc_h1_req *r)
{
    assert(r->head_len > 0 && r->head_len <= *len);
    if (r->chunked)
        return parse_chunked(buf, len, max_body, r);
    if (r->content_length > max_body)
        return 413;
    if (*len - r->head_len < r->content_length)
        return MC_H1_MORE;
    r->body_len = (size_t)r->content_length;
    r->total_len = r->head_len + r->body_len;
    return 0;
}

const char *mc_h1_header(const struct mc_h1_req *r, const char *name)
{
    for (uint32_t i = 0; i < r->n_headers; i++)
        if (strcasecmp(r->headers[i].name, name) == 0)
            return r->headers[i].value;
    return NULL;
}

const char *mc_h1_arg(const struct mc_h1_req *r, const char *name)
{
    for (uint32_t i = 0; i < r->n_args; i++)
        if (strcmp(r->args[i].name, name) == 0)
            return r->args[i].value;
    return NULL;
}

static const char *moved(const char *p, uintptr_t old_base, char *new_base)
{
    return p ? new_base + ((uintptr_t)p - old_base) : NULL;
}

void mc_h1_rebase(struct mc_h1_req *r, uintptr_t old_base, char *new_base)
{
    r->method = moved(r->method, old_base, new_base);
    r->path = (char *)moved(r->path, old_base, new_base);
    for (uint32_t i = 0; i < r->n_headers; i++) {
        r->headers[i].name = moved(r->headers[i].name, old_base, new_base);
        r->headers[i].value = moved(r->headers[i].value, old_base, new_base);
    }
    for (uint32_t i = 0; i < r->n_args; i++) {
        r->args[i].name = moved(r->args[i].name, old_base, new_base);
        r->args[i].value = moved(r->args[i].value, old_base, new_base);
    }
}
