/* test_http_client.h: a tiny blocking HTTP/1.1 client over a keep-alive socket, for the HTTP
 * API tests (no external tools: assertions see exact statuses, headers and bodies). */
#ifndef MC_TEST_HTTP_CLIENT_H
#define MC_TEST_HTTP_CLIENT_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

struct th_resp {
    int status;
    char headers[4096];
    char *body; /* NUL-terminated */
    size_t body_len;
};

static inline int thc_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static inline int thc_send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* Value of header name in r->headers (copied into out) or NULL. */
static inline const char *thc_header(const struct th_resp *r, const char *name, char *out,
                                     size_t cap)
{
    size_t n = strlen(name);
    for (const char *p = r->headers; p && *p;
         p = strstr(p, "\r\n") ? strstr(p, "\r\n") + 2 : NULL) {
        if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
            const char *v = p + n + 1;
            while (*v == ' ')
                v++;
            const char *e = strstr(v, "\r\n");
            size_t len = e ? (size_t)(e - v) : strlen(v);
            if (len >= cap)
                len = cap - 1;
            memcpy(out, v, len);
            out[len] = '\0';
            return out;
        }
    }
    return NULL;
}

/* One request on fd (kept alive). extra: "Name: v\r\n" lines or NULL. Returns 0 or -1. */
static inline int thc_request_fd(int fd, const char *method, const char *path, const char *extra,
                                 const char *body, size_t body_len, struct th_resp *r)
{
    memset(r, 0, sizeof *r);
    char head[8192];
    int hn = snprintf(head, sizeof head,
                      "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %zu\r\n%s\r\n", method,
                      path, body_len, extra ? extra : "");
    if (hn < 0 || (size_t)hn >= sizeof head || thc_send_all(fd, head, (size_t)hn) != 0)
        return -1;
    /* A server may answer (413) and close before reading the body: read the answer anyway. */
    if (body_len)
        (void)thc_send_all(fd, body, body_len);
    /* Read headers byte-wise-enough: small buffer reads until "\r\n\r\n". */
    char buf[8192];
    size_t len = 0;
    char *end = NULL;
    while (!end) {
        if (len + 1 >= sizeof buf)
            return -1;
        ssize_t k = recv(fd, buf + len, sizeof buf - 1 - len, 0);
        if (k <= 0)
            return -1;
        len += (size_t)k;
        buf[len] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    size_t hlen = (size_t)(end - buf) + 4;
    if (sscanf(buf, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    size_t copy = hlen < sizeof r->headers ? hlen : sizeof r->headers - 1;
    memcpy(r->headers, buf, copy);
    r->headers[copy] = '\0';
    char cl[32];
    size_t want = 0;
    if (thc_header(r, "Content-Length", cl, sizeof cl))
        want = strtoull(cl, NULL, 10);
    if (strcmp(method, "HEAD") == 0 || r->status == 204 || r->status == 304)
        want = 0;
    r->body = malloc(want + 1);
    size_t have = len - hlen < want ? len - hlen : want;
    memcpy(r->body, buf + hlen, have);
    while (have < want) {
        ssize_t k = recv(fd, r->body + have, want - have, 0);
        if (k <= 0)
            return -1;
        have += (size_t)k;
    }
    r->body[want] = '\0';
    r->body_len = want;
    return 0;
}

/* One request on a fresh connection. */
static inline int thc_request(int port, const char *method, const char *path, const char *extra,
                              const char *body, struct th_resp *r)
{
    int fd = thc_connect(port);
    if (fd < 0)
        return -1;
    int rc = thc_request_fd(fd, method, path, extra, body, body ? strlen(body) : 0, r);
    close(fd);
    return rc;
}

static inline void thc_free(struct th_resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* Buffered reader of responses on one keep-alive socket (pipelined answers arrive back to
 * back). */
struct thc_wire {
    int fd;
    char buf[1 << 16];
    size_t len;
};

static inline int thc_wire_open(struct thc_wire *w, int port)
{
    w->fd = thc_connect(port);
    w->len = 0;
    return w->fd;
}

/* One recv into what is left of the buffer. 0, or -1: full, EOF or error. */
static inline int thc_wire_fill(struct thc_wire *w)
{
    if (w->len + 1 >= sizeof w->buf)
        return -1;
    ssize_t k = recv(w->fd, w->buf + w->len, sizeof w->buf - 1 - w->len, 0);
    if (k <= 0)
        return -1;
    w->len += (size_t)k;
    return 0;
}

/* Read one response: status (returned), headers (copied into head) and body (into body,
 * NUL-ended). head_only: a HEAD answer (Content-Length but no body). -1: EOF or malformed. */
static inline int thc_wire_read(struct thc_wire *w, bool head_only, char *head, size_t head_cap,
                                char *body, size_t body_cap)
{
    char *end;
    for (;;) {
        w->buf[w->len] = '\0';
        end = strstr(w->buf, "\r\n\r\n");
        if (end)
            break;
        if (thc_wire_fill(w) != 0)
            return -1;
    }
    size_t hlen = (size_t)(end - w->buf) + 4;
    int status = 0;
    if (sscanf(w->buf, "HTTP/1.1 %d", &status) != 1)
        return -1;
    struct th_resp hr; /* only its headers are used */
    snprintf(hr.headers, sizeof hr.headers, "%.*s", (int)hlen, w->buf);
    char cl[32];
    size_t want = thc_header(&hr, "Content-Length", cl, sizeof cl) ? strtoull(cl, NULL, 10) : 0;
    if (head_only || status == 100 || status == 204)
        want = 0;
    while (w->len < hlen + want) {
        if (thc_wire_fill(w) != 0)
            return -1;
    }
    if (head)
        snprintf(head, head_cap, "%.*s", (int)hlen, w->buf);
    if (body)
        snprintf(body, body_cap, "%.*s", (int)want, w->buf + hlen);
    memmove(w->buf, w->buf + hlen + want, w->len - hlen - want);
    w->len -= hlen + want;
    return status;
}

/* After the last answer: no bytes left over, and a clean close (EOF, not a reset) once we stop
 * sending. Closes the socket. 0 or -1. */
static inline int thc_wire_eof(struct thc_wire *w)
{
    char b[256];
    int rc = w->len == 0 ? 0 : -1;
    shutdown(w->fd, SHUT_WR);
    ssize_t k;
    while ((k = recv(w->fd, b, sizeof b, 0)) > 0) {
    }
    close(w->fd);
    return k == 0 ? rc : -1;
}

#endif
