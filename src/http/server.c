/* server.c: libmicrohttpd daemon: request bodies (bounded), routing, responses, lifecycle. */
#include <arpa/inet.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "metacenter/error.h"
#include "obs/metrics.h"
#include "util/log.h"

#include <uv.h>

#define IDLE_TIMEOUT_S 120 /* keep-alive connections idle longer are closed */
/* Per-connection threads run one handler at a time; its deepest stack use is jansson and the
 * client library (a few KiB). Bounded so 1024 connections reserve at most 512 MiB virtual. */
#define HTTP_THREAD_STACK_BYTES (512u * 1024u)

/* A request body buffer larger than this is released after its request (a one-off big PUT). */
#define KEEP_BODY_BYTES (64u * 1024)
/* In-process mode: threads for admin routes and forwarded requests (blocking client calls). */
#define LOCAL_WORKERS 4

enum req_phase {
    RQ_NEW,    /* being received / routed */
    RQ_LOCAL,  /* suspended: k is with the node (in-process) */
    RQ_WORKER, /* suspended: a worker fills r */
};

/* Per-connection state (MHD's socket context), reused by each request on the connection: one
 * request at a time, so nothing is allocated per request but the response body. */
struct req_ctx {
    struct mc_http_server *srv;
    char *body;
    size_t len;
    size_t cap;
    bool too_large;
    enum req_phase phase;
    bool forward;      /* RQ_WORKER: resend k through the loopback client, then finish */
    uint64_t local_id; /* RQ_LOCAL: the in-process request (for cancel) */
    struct mc_http_request q;
    struct mc_http_call k;
    struct mc_http_response r;
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
    if (!o) {
        /* The message echoes input that is not UTF-8 (e.g. a JSON parser's error text):
         * keep its ASCII, mark the rest, so the caller still gets this status, not a 500. */
        char clean[512];
        size_t i = 0;
        for (; msg && msg[i] && i + 1 < sizeof clean; i++) {
            unsigned char ch = (unsigned char)msg[i];
            clean[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
        }
        clean[i] = 0;
        o = json_pack("{s:s, s:s}", "error", name, "message", clean);
    }
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

/* The finished response r goes out; k is ready for the next request. */
static enum MHD_Result respond(struct req_ctx *c)
{
    enum MHD_Result ok = send_resp(c->q.conn, &c->r);
    mc_http_call_reset(&c->k);
    return ok;
}

static void on_loop_kick(struct mc_http_server *s);
static void on_loop_wake(struct mc_http_server *s);

/* In-process answer arrived (loop thread): wake the connection. With no MHD thread, MHD acts
 * on a resume only in its next MHD_run: schedule one for this loop iteration. */
static void local_done(void *arg)
{
    struct req_ctx *c = arg;
    MHD_resume_connection(c->q.conn);
    on_loop_kick(c->srv);
}

/* Worker thread: the blocking part (admin routes; requests the node could not serve locally,
 * resent through the loopback client, which follows the leader and retries). */
static void worker_run(void *item)
{
    struct req_ctx *c = item;
    if (c->forward) {
        mc_http_call_client(c->srv, &c->k);
        mc_http_finish(&c->q, &c->r, &c->k);
    } else {
        mc_http_dispatch(&c->q, &c->r);
    }
    MHD_resume_connection(c->q.conn);
    on_loop_wake(c->srv);
}

static enum MHD_Result to_worker(struct req_ctx *c, bool forward)
{
    c->phase = RQ_WORKER;
    c->forward = forward;
    MHD_suspend_connection(c->q.conn);
    if (mc_http_workers_push(c->srv->workers, c) != 0) {
        mc_http_resp_error(&c->r, MC_ESHUTDOWN, NULL);
        MHD_resume_connection(c->q.conn);
        on_loop_kick(c->srv);
    }
    return MHD_YES;
}

/* Hand a prepared data request to the node's loop; the connection sleeps until the answer.
 * Suspended before submitting: the answer (and resume) may come before submit returns. */
static enum MHD_Result to_local(struct req_ctx *c)
{
    c->phase = RQ_LOCAL;
    MHD_suspend_connection(c->q.conn);
    int rc = mc_http_local_submit(c->srv->local, &c->k, local_done, c, &c->local_id);
    if (rc != 0) {
        c->k.done = true;
        c->k.status = rc;
        MHD_resume_connection(c->q.conn);
        on_loop_kick(c->srv);
    }
    return MHD_YES;
}

/* Back from the node: finish, or resend through the client library when another member (or
 * a moment later) may serve it (reads: NotLeader, Unavailable, StaleRead...). A write is
 * resent only after SlowDown (refused on arrival): a local write carries no exactly-once
 * session, and after NotLeader/ShuttingDown it may have been proposed and may still commit,
 * so resending it could apply it twice; it is answered with outcome_unknown instead. */
static enum MHD_Result after_local(struct req_ctx *c)
{
    c->local_id = 0;
    int st = c->k.status;
    bool write = c->k.req.op == MC_REQ_WRITE;
    if (mc_http_status_retriable(st) && (!write || st == MC_ELIMIT) &&
        !atomic_load_explicit(&c->srv->stopping, memory_order_relaxed))
        return to_worker(c, true);
    if (write && mc_http_status_retriable(st))
        c->k.outcome_unknown = true;
    mc_http_finish(&c->q, &c->r, &c->k);
    return respond(c);
}

/* Does this node lead (as last published)? Writes elsewhere go through the client library. */
static bool node_leads(struct mc_http_server *s)
{
    struct mc_node_metrics n;
    memset(&n, 0, sizeof n);
    return s->collect && s->collect(s->collect_ctx, &n) == 0 && n.has_leader &&
           n.leader_id == n.node_id;
}

static void req_begin(struct req_ctx *c)
{
    c->len = 0;
    c->too_large = false;
    c->phase = RQ_NEW;
    c->forward = false;
    c->local_id = 0;
    free(c->r.body);
    c->r = (struct mc_http_response){0};
    struct mc_wbuf ops = c->k.ops; /* kept: its buffer is reused */
    mc_http_call_reset(&c->k);
    memset(&c->k, 0, sizeof c->k);
    ops.len = 0;
    ops.err = 0;
    c->k.ops = ops;
    c->k.result.failed_op = -1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **req_cls)
{
    (void)version;
    struct mc_http_server *s = cls;
    struct req_ctx *c = *req_cls;
    if (!c) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        c = ci ? ci->socket_context : NULL;
        if (!c)
            return MHD_NO;
        req_begin(c);
        *req_cls = c;
        /* Refuse a declared oversized body before reading it. */
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->max_body_bytes)
            return send_local_error(conn, MC_ETOOLARGE, "request body over 1 MiB");
        return MHD_YES;
    }
    if (c->phase == RQ_LOCAL)
        return after_local(c);
    if (c->phase == RQ_WORKER)
        return respond(c);
    if (*upload_data_size > 0) {
        if (body_append(c, upload_data, *upload_data_size, s->max_body_bytes) != 0)
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (c->too_large)
        return send_local_error(conn, MC_ETOOLARGE, "request body over 1 MiB");

    struct mc_http_request *q = &c->q;
    *q = (struct mc_http_request){.srv = s, .conn = conn, .method = method, .url = url};
    q->body = c->body && c->len ? c->body : "";
    q->body_len = c->len;
    int rc = mc_http_route_parse(url, &q->path);
    if (rc == MC_ENOTFOUND) {
        mc_http_resp_error_named(&c->r, 404, "NotFound", "no such endpoint");
        return respond(c);
    }
    if (rc != 0)
        return send_local_error(conn, rc, NULL);
    if (!mc_http_route_allows(q->path.route, method)) {
        mc_http_resp_error_named(&c->r, 405, "MethodNotAllowed",
                                 "method not allowed on this endpoint");
        mc_http_resp_header(&c->r, "Allow", mc_http_route_methods(q->path.route));
        return respond(c);
    }
    rc = mc_http_authorize(s, q);
    if (rc != 0) {
        mc_metrics_error(rc);
        mc_http_resp_error(&c->r, rc,
                           rc == MC_EUNAUTH
                               ? "missing or invalid bearer token (Authorization: "
                                 "Bearer TOKEN)"
                               : "the token's role or bucket grants do not allow this");
        if (rc == MC_EUNAUTH)
            mc_http_resp_header(&c->r, "WWW-Authenticate", "Bearer realm=\"metacenter\"");
        return respond(c);
    }
    if (!s->local) {
        mc_http_dispatch(q, &c->r); /* blocks this connection's thread on the loopback client */
        return respond(c);
    }
    if (mc_http_route_is_admin(q->path.route))
        return to_worker(c, false);
    if (!mc_http_prepare(q, &c->r, &c->k))
        return respond(c); /* answered without the node (bad input, health, metrics) */
    if (c->k.req.op == MC_REQ_WRITE && !node_leads(s))
        return to_worker(c, true); /* a follower's write: forwarded with an exactly-once session */
    return to_local(c);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)conn;
    (void)toe;
    struct mc_http_server *s = cls;
    struct req_ctx *c = *req_cls;
    if (!c)
        return;
    /* Only at daemon stop can a connection end while its request is with the node. */
    if (c->local_id && s->local)
        mc_http_local_cancel(s->local, c->local_id);
    c->local_id = 0;
    free(c->r.body);
    c->r.body = NULL;
    if (c->cap > KEEP_BODY_BYTES) {
        free(c->body);
        c->body = NULL;
        c->cap = 0;
    }
    *req_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode toe)
{
    (void)conn;
    struct mc_http_server *s = cls;
    bool started = toe == MHD_CONNECTION_NOTIFY_STARTED;
    mc_metrics_http_connections_add(started ? 1 : -1);
    if (started) {
        struct req_ctx *c = calloc(1, sizeof *c);
        if (c)
            c->srv = s;
        *socket_ctx = c; /* NULL: on_request refuses the connection's requests */
        return;
    }
    struct req_ctx *c = *socket_ctx;
    if (c) {
        free(c->body);
        free(c->r.body);
        mc_http_call_free(&c->k);
        free(c);
        *socket_ctx = NULL;
    }
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

/* ---- in-process mode: MHD runs on the node's loop ----
 *
 * No MHD thread: MHD's epoll set (listen socket, connections, its inter-thread channel) is one
 * fd watched by the node's libuv loop, and MHD_run handles what is ready on the loop thread.
 * A request goes from parsing to the node's batch and back without a thread hop, a mutex
 * handoff or a cross-thread wake-up per request (issue 8: with an MHD thread, each request
 * cost a futex wake, an eventfd write for the resume and two thread switches, and the MHD
 * thread took over half of the leader's CPU per HTTP write). Worker threads (admin routes,
 * forwarded requests) still resume their connections from their own threads: MHD's
 * inter-thread channel, in the same epoll set, wakes the loop. */
struct http_on_loop {
    uv_poll_t poll;   /* MHD's epoll fd readable: something to do */
    uv_timer_t timer; /* MHD_get_timeout: idle timeouts, work MHD left queued, resumes (0 ms) */
    uv_async_t wake;  /* a worker thread resumed a connection */
    struct mc_http_server *srv;
    int open_handles; /* freed when all three handles have closed */
};

static void on_loop_timer(uv_timer_t *t);

static void on_loop_run(struct http_on_loop *g)
{
    MHD_run(g->srv->daemon);
    MHD_UNSIGNED_LONG_LONG ms = 0;
    if (MHD_get_timeout(g->srv->daemon, &ms) == MHD_YES)
        uv_timer_start(&g->timer, on_loop_timer, ms < IDLE_TIMEOUT_S * 1000ull ? ms : 1000, 0);
    else
        uv_timer_stop(&g->timer);
}

static void on_loop_timer(uv_timer_t *t)
{
    on_loop_run(t->data);
}

static void on_loop_poll(uv_poll_t *p, int status, int events)
{
    (void)status;
    (void)events;
    on_loop_run(p->data);
}

static void on_loop_async(uv_async_t *a)
{
    on_loop_run(a->data);
}

/* Loop thread: run MHD once more in this iteration (after a resume). */
static void on_loop_kick(struct mc_http_server *s)
{
    if (s->on_loop)
        uv_timer_start(&s->on_loop->timer, on_loop_timer, 0, 0);
}

/* Any thread (workers): wake the loop to run MHD (after a resume). */
static void on_loop_wake(struct mc_http_server *s)
{
    if (s->on_loop)
        uv_async_send(&s->on_loop->wake);
}

static void on_loop_closed(uv_handle_t *h)
{
    struct http_on_loop *g = h->data;
    if (--g->open_handles == 0)
        free(g);
}

/* Watch MHD's epoll fd from the loop. 0, MC_ENOMEM or MC_EIO. */
static int on_loop_start(struct mc_http_server *s, struct uv_loop_s *loop)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (!di || di->epoll_fd < 0)
        return MC_EIO;
    struct http_on_loop *g = calloc(1, sizeof *g);
    if (!g)
        return MC_ENOMEM;
    g->srv = s;
    if (uv_poll_init(loop, &g->poll, di->epoll_fd) != 0) {
        free(g);
        return MC_EIO;
    }
    g->poll.data = g;
    uv_timer_init(loop, &g->timer);
    g->timer.data = g;
    uv_async_init(loop, &g->wake, on_loop_async);
    g->wake.data = g;
    g->open_handles = 3;
    s->on_loop = g;
    uv_poll_start(&g->poll, UV_READABLE, on_loop_poll);
    uv_timer_start(&g->timer, on_loop_timer, 0, 0); /* first run: MHD's initial state */
    return 0;
}

/* Before MHD closes its epoll fd: the loop must not watch it any more. */
static void on_loop_stop(struct mc_http_server *s)
{
    struct http_on_loop *g = s->on_loop;
    if (!g)
        return;
    s->on_loop = NULL;
    g->srv = NULL;
    uv_close((uv_handle_t *)&g->poll, on_loop_closed);
    uv_close((uv_handle_t *)&g->timer, on_loop_closed);
    uv_close((uv_handle_t *)&g->wake, on_loop_closed);
}

/* ---- lifecycle ---- */

/* Whole small file (a PEM) as a NUL-terminated string, or NULL. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(MC_HTTP_MAX_PEM_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MC_HTTP_MAX_PEM_BYTES + 1, f) : 0;
    fclose(f);
    if (!buf || n == 0 || n > MC_HTTP_MAX_PEM_BYTES) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

/* HTTPS material and the loopback clients' TLS settings. 0 or MC_EINVAL. */
static int setup_tls(struct mc_http_server *s, const struct mc_http_options *o)
{
    if (!o->tls_cert_file || !o->tls_cert_file[0])
        return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        MC_ERROR("http_tls_unsupported", "detail=\"libmicrohttpd built without TLS\"");
        return MC_EINVAL;
    }
    const char *key = o->tls_key_file && o->tls_key_file[0] ? o->tls_key_file : o->tls_cert_file;
    s->tls_cert_pem = slurp(o->tls_cert_file);
    s->tls_key_pem = slurp(key);
    const char *ca = o->tls_ca_file && o->tls_ca_file[0] ? o->tls_ca_file : o->tls_cert_file;
    if (!s->tls_cert_pem || !s->tls_key_pem || strlen(ca) >= sizeof s->loop_ca ||
        strlen(o->tls_cert_file) >= sizeof s->loop_cert || strlen(key) >= sizeof s->loop_key) {
        MC_ERROR("http_tls_invalid", "cert=%s key=%s", o->tls_cert_file, key);
        return MC_EINVAL;
    }
    snprintf(s->loop_ca, sizeof s->loop_ca, "%s", ca);
    if (o->tls_client_cert) {
        snprintf(s->loop_cert, sizeof s->loop_cert, "%s", o->tls_cert_file);
        snprintf(s->loop_key, sizeof s->loop_key, "%s", key);
    }
    return 0;
}

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

/* Undo a half-done mc_http_start (no connection exists yet); returns rc. */
static int start_failed(struct mc_http_server *s, int rc)
{
    if (s->daemon)
        MHD_stop_daemon(s->daemon);
    mc_http_workers_free(s->workers);
    mc_http_local_free(s->local);
    pthread_mutex_destroy(&s->pool_mu);
    free(s->tls_cert_pem);
    free(s->tls_key_pem);
    free(s);
    return rc;
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
    s->auth = o->auth;
    s->metrics_auth = o->metrics_auth;
    if (o->auth && o->internal_token) {
        if (strlen(o->internal_token) >= sizeof s->internal_token) {
            free(s);
            return MC_EINVAL;
        }
        snprintf(s->internal_token, sizeof s->internal_token, "%s", o->internal_token);
    }
    pthread_mutex_init(&s->pool_mu, NULL);

    bool local = o->local_loop && o->local_clients;
    /* In-process: no MHD thread, the node's loop runs MHD (http_on_loop). */
    unsigned flags = MHD_USE_TURBO;
    if (local)
        flags |= MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    else if (o->use_thread_pool)
        flags |= MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;
    else
        flags |= MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
    /* Thread-per-connection and the loop-driven mode take no pool: a pool size of 1 means "no
     * pool" to MHD. */
    unsigned pool = o->use_thread_pool && !local ? (unsigned)threads : 1u;
    if (local) {
        int lrc = mc_http_local_new(o->local_loop, o->local_clients, o->local_principal, &s->local);
        if (lrc == 0)
            lrc = mc_http_workers_start(LOCAL_WORKERS, worker_run, &s->workers);
        if (lrc != 0) {
            mc_http_local_free(s->local);
            pthread_mutex_destroy(&s->pool_mu);
            free(s);
            return lrc;
        }
    }
    if (setup_tls(s, o) != 0)
        return start_failed(s, MC_EINVAL);
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key_pem},
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert_pem},
        {MHD_OPTION_END, 0, NULL},
    };
    if (s->tls_cert_pem)
        flags |= MHD_USE_TLS;
    else
        tls_opts[0].option = MHD_OPTION_END;
    s->daemon = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_THREAD_POOL_SIZE, pool, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)MC_HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        s, MHD_OPTION_UNESCAPE_CALLBACK, unescape, s, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)512,
        MHD_OPTION_THREAD_STACK_SIZE, (size_t)HTTP_THREAD_STACK_BYTES, MHD_OPTION_ARRAY, tls_opts,
        MHD_OPTION_END);
    int lrc = !s->daemon ? MC_EIO : local ? on_loop_start(s, o->local_loop) : 0;
    if (lrc != 0) {
        MC_ERROR("http_start_failed", "addr=%s err=%s", listen, mc_error_name(lrc));
        return start_failed(s, lrc);
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->daemon, MHD_DAEMON_INFO_BIND_PORT);
    s->port = di ? di->port : ntohs(sa.sin_port);
    MC_INFO("http_listening", "addr=%s port=%d mode=%s threads=%u client=%s tls=%d", listen,
            s->port,
            local                ? "in_process_on_loop"
            : o->use_thread_pool ? "pool"
                                 : "thread_per_connection",
            local || o->use_thread_pool ? pool : 0, s->client_addr, s->tls_cert_pem != NULL);
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
    /* In-process mode: every suspended connection must be resumed before MHD_stop_daemon
     * (MHD aborts otherwise). Workers finish (their client calls give up on `stopping`) and
     * resume theirs; what is with the node is answered ShuttingDown (this is the loop thread:
     * the node will not answer any more); later requests are refused at submit. */
    mc_http_workers_stop(s->workers);
    if (s->local)
        mc_http_local_fail_all(s->local, MC_ESHUTDOWN);
    on_loop_stop(s);
    MHD_stop_daemon(s->daemon);
    mc_http_workers_free(s->workers);
    mc_http_local_free(s->local);
    mc_http_pool_close(s);
    pthread_mutex_destroy(&s->pool_mu);
    if (s->tls_key_pem)
        OPENSSL_cleanse(s->tls_key_pem, strlen(s->tls_key_pem));
    free(s->tls_key_pem);
    free(s->tls_cert_pem);
    free(s);
}
