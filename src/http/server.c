/* server.c: libmicrohttpd daemon: request bodies (bounded), routing, responses, lifecycle. */
#include <arpa/inet.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "metacenter/error.h"
#include "obs/metrics.h"
#include "util/log.h"

#define IDLE_TIMEOUT_S 120 /* keep-alive connections idle longer are closed */
/* Per-connection threads run one handler at a time; its deepest stack use is jansson and the
 * client library (a few KiB). Bounded so 1024 connections reserve at most 512 MiB virtual. */
#define HTTP_THREAD_STACK_BYTES (512u * 1024u)

/* Per-request state kept by MHD between calls of the access handler. */
struct req_ctx {
    char *body;
    size_t len;
    size_t cap;
    bool too_large;
};

/* ---- response helpers ---- */

const char *mc_http_arg(const struct mc_http_request *q, const char *name)
{
    return MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *mc_http_header(const struct mc_http_request *q, const char *name)
{
    return MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, name);
}

struct qs {
    char *buf;
    size_t cap, len;
};

static void qs_put(struct qs *q, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)s; *p && q->len + 4 < q->cap; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p)) {
            q->buf[q->len++] = (char)*p;
        } else {
            q->buf[q->len++] = '%';
            q->buf[q->len++] = hex[*p >> 4];
            q->buf[q->len++] = hex[*p & 15];
        }
    }
    q->buf[q->len] = '\0';
}

static enum MHD_Result qs_arg(void *cls, enum MHD_ValueKind kind, const char *key,
                              const char *value)
{
    (void)kind;
    struct qs *q = cls;
    if (q->len + 2 >= q->cap)
        return MHD_NO;
    char sep = q->len == 0 ? '?' : '&';
    q->buf[q->len++] = sep;
    q->buf[q->len] = '\0';
    qs_put(q, key);
    if (value && q->len + 2 < q->cap) {
        q->buf[q->len++] = '=';
        q->buf[q->len] = '\0';
        qs_put(q, value);
    }
    return MHD_YES;
}

void mc_http_query_string(const struct mc_http_request *q, char *out, size_t cap)
{
    struct qs s = {.buf = out, .cap = cap};
    out[0] = '\0';
    MHD_get_connection_values(q->conn, MHD_GET_ARGUMENT_KIND, qs_arg, &s);
}

void mc_http_resp_json(struct mc_http_response *r, int status, char *json)
{
    free(r->body);
    r->status = json ? status : 500;
    r->body = json;
    r->body_len = json ? strlen(json) : 0;
    r->content_type = NULL;
}

void mc_http_resp_header(struct mc_http_response *r, const char *name, const char *value)
{
    if (r->n_headers >= MC_HTTP_MAX_HEADERS)
        return;
    r->headers[r->n_headers].name = name;
    snprintf(r->headers[r->n_headers].value, sizeof r->headers[0].value, "%s", value);
    r->n_headers++;
}

void mc_http_resp_error_named(struct mc_http_response *r, int status, const char *name,
                              const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "error", name, "message", msg ? msg : "");
    mc_http_resp_json(r, status, o ? json_dumps(o, JSON_COMPACT) : NULL);
    json_decref(o);
}

void mc_http_resp_error(struct mc_http_response *r, int code, const char *msg)
{
    mc_http_resp_error_named(r, mc_error_http_status(code), mc_error_name(code),
                             msg ? msg : mc_strerror(code));
}

static enum MHD_Result send_resp(struct MHD_Connection *conn, struct mc_http_response *r)
{
    struct MHD_Response *m =
        MHD_create_response_from_buffer(r->body_len, r->body ? r->body : (void *)"",
                                        r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!m) {
        free(r->body);
        r->body = NULL;
        return MHD_NO;
    }
    r->body = NULL; /* owned by m now */
    if (r->status != 204)
        MHD_add_response_header(m, MHD_HTTP_HEADER_CONTENT_TYPE,
                                r->content_type ? r->content_type : "application/json");
    for (uint32_t i = 0; i < r->n_headers; i++)
        MHD_add_response_header(m, r->headers[i].name, r->headers[i].value);
    enum MHD_Result ok = MHD_queue_response(conn, (unsigned)r->status, m);
    MHD_destroy_response(m);
    return ok;
}

/* An error the HTTP layer itself produced (the node counts the ones it answers). */
static enum MHD_Result send_local_error(struct MHD_Connection *conn, int code, const char *msg)
{
    struct mc_http_response r = {0};
    mc_metrics_error(code);
    mc_http_resp_error(&r, code, msg);
    return send_resp(conn, &r);
}

/* ---- access handler ---- */

static int body_append(struct req_ctx *c, const char *data, size_t n, size_t max)
{
    if (c->too_large || c->len + n > max) {
        c->too_large = true;
        return 0; /* keep reading (and dropping) the body, answer 413 at the end */
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 1024;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *p = realloc(c->body, cap);
        if (!p)
            return MC_ENOMEM;
        c->body = p;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, n);
    c->len += n;
    c->body[c->len] = '\0';
    return 0;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    struct mc_http_server *s = cls;
    struct req_ctx *c = *req_cls;
    if (!c) {
        c = calloc(1, sizeof *c);
        if (!c)
            return MHD_NO;
        *req_cls = c;
        /* Refuse a declared oversized body before reading it. */
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->max_body_bytes)
            return send_local_error(conn, MC_ETOOLARGE, "request body over 1 MiB");
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (body_append(c, upload_data, *upload_data_size, s->max_body_bytes) != 0)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->too_large)
        return send_local_error(conn, MC_ETOOLARGE, "request body over 1 MiB");

    struct mc_http_request q = {.srv = s, .conn = conn, .method = method, .url = url};
    q.body = c->body ? c->body : "";
    q.body_len = c->len;
    int rc = mc_http_route_parse(url, &q.path);
    if (rc == MC_ENOTFOUND) {
        struct mc_http_response r = {0};
        mc_http_resp_error_named(&r, 404, "NotFound", "no such endpoint");
        return send_resp(conn, &r);
    }
    if (rc != 0)
        return send_local_error(conn, rc, NULL);
    if (!mc_http_route_allows(q.path.route, method)) {
        struct mc_http_response r = {0};
        mc_http_resp_error_named(&r, 405, "MethodNotAllowed",
                                 "method not allowed on this endpoint");
        mc_http_resp_header(&r, "Allow", mc_http_route_methods(q.path.route));
        return send_resp(conn, &r);
    }
    struct mc_http_response r = {0};
    mc_http_dispatch(&q, &r);
    return send_resp(conn, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct req_ctx *c = *req_cls;
    if (c) {
        free(c->body);
        free(c);
        *req_cls = NULL;
    }
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)cls;
    (void)conn;
    (void)socket_ctx;
    mc_metrics_http_connections_add(toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1);
}

/*
 * URL decoding (path and query values): as MHD's own, except that %00 decodes to the byte 0xFF.
 * MHD hands us C strings, so a NUL would silently cut "a%00b" to the key "a"; 0xFF is never
 * valid UTF-8, so the engine rejects it instead (InvalidKey / InvalidBucketName).
 */
static size_t unescape(void *cls, struct MHD_Connection *conn, char *s)
{
    (void)cls;
    (void)conn;
    for (char *p = s; (p = strstr(p, "%00")) != NULL; p += 3) {
        p[1] = 'F';
        p[2] = 'F';
    }
    return MHD_http_unescape(s);
}

/* ---- lifecycle ---- */

static int parse_addr(const char *addr, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || (size_t)(colon - addr) >= sizeof host)
        return MC_EINVAL;
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (*end || colon[1] == '\0' || port > 65535)
        return MC_EINVAL;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return MC_EINVAL;
    return 0;
}

int mc_http_start(const struct mc_http_options *o, struct mc_http_server **out)
{
    *out = NULL;
    if (!o || !o->client_addr || strlen(o->client_addr) >= MC_ADDR_MAX)
        return MC_EINVAL;
    struct sockaddr_in sa;
    const char *listen = o->listen_addr ? o->listen_addr : MC_HTTP_DEFAULT_ADDR;
    if (parse_addr(listen, &sa) != 0)
        return MC_EINVAL;
    uint32_t threads = o->threads ? o->threads : MC_HTTP_DEFAULT_THREADS;
    if (threads > MC_HTTP_MAX_THREADS)
        return MC_EINVAL;
    struct mc_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return MC_ENOMEM;
    snprintf(s->client_addr, sizeof s->client_addr, "%s", o->client_addr);
    s->ready_max_lag = o->ready_max_lag ? o->ready_max_lag : 1000;
    s->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : 5000;
    s->max_body_bytes = o->max_body_bytes ? o->max_body_bytes : MC_HTTP_MAX_BODY_BYTES;
    s->collect = o->collect;
    s->collect_ctx = o->collect_ctx;
    pthread_mutex_init(&s->pool_mu, NULL);

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_TURBO;
    if (o->use_thread_pool)
        flags |= MHD_USE_EPOLL;
    else
        flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    /* Thread-per-connection takes no pool: a pool size of 1 means "no pool" to MHD. */
    unsigned pool = o->use_thread_pool ? (unsigned)threads : 1u;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)MC_HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_UNESCAPE_CALLBACK, unescape, s, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)512,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)HTTP_THREAD_STACK_BYTES, MHD_OPTION_END);
    if (!s->daemon) {
        MC_ERROR("http_start_failed", "addr=%s", listen);
        pthread_mutex_destroy(&s->pool_mu);
        free(s);
        return MC_EIO;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : ntohs(sa.sin_port);
    MC_INFO("http_listening", "addr=%s port=%d mode=%s threads=%u client=%s", listen, s->port,
            o->use_thread_pool ? "pool" : "thread_per_connection", o->use_thread_pool ? threads : 0,
            s->client_addr);
    *out = s;
    return 0;
}

int mc_http_port(const struct mc_http_server *s)
{
    return s->port;
}

void mc_http_stop(struct mc_http_server *s)
{
    if (!s)
        return;
    /* In-flight handlers give up within MC_HTTP_STOP_CHECK_MS (answering 503 ShuttingDown), so
     * this returns quickly even when called from the node's loop thread, which then cannot
     * answer the loopback requests. */
    atomic_store(&s->stopping, true);
    MHD_stop_daemon(s->daemon);
    mc_http_pool_close(s);
    pthread_mutex_destroy(&s->pool_mu);
    free(s);
}
