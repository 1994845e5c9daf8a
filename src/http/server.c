/* server.c: the request state machine (routing, node / worker hand-off, responses), lifecycle. */
#include <arpa/inet.h>
#include <assert.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/conn.h"
#include "http/internal.h"
#include "metacenter/error.h"
#include "obs/metrics.h"
#include "security/tls.h"
#include "util/log.h"

#include <uv.h>

/* server.h's reasoning for the body cap: one request frame carries it, and a record the
 * engine takes fits in it with room for JSON's overhead. */
_Static_assert(MC_HTTP_MAX_BODY_LIMIT <= MC_PROTO_MAX_FRAME_BYTES,
               "an HTTP body must fit the client frame it becomes");
_Static_assert(MC_HTTP_MAX_BODY_LIMIT >= MC_OP_MAX_BYTES,
               "the body cap must leave room for the largest op record");
_Static_assert(MC_HTTP_MAX_BODY_BYTES <= MC_HTTP_MAX_BODY_LIMIT, "default within the cap");

/* In-process mode: threads for admin routes and forwarded requests (blocking client calls). */
#define LOCAL_WORKERS 4
/* A connection's requests with the workers at once (a pipelined batch has up to 16). */
#define WORKER_SHARE 2

/* ---- response helpers ---- */

const char *mc_http_arg(const struct mc_http_request *q, const char *name)
{
    return mc_h1_arg(q->h, name);
}

const char *mc_http_header(const struct mc_http_request *q, const char *name)
{
    return mc_h1_header(q->h, name);
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

void mc_http_query_string(const struct mc_http_request *q, char *out, size_t cap)
{
    struct qs s = {.buf = out, .cap = cap};
    out[0] = '\0';
    for (uint32_t i = 0; i < q->h->n_args && s.len + 2 < s.cap; i++) {
        char sep = s.len == 0 ? '?' : '&';
        s.buf[s.len++] = sep;
        s.buf[s.len] = '\0';
        qs_put(&s, q->h->args[i].name);
        if (q->h->args[i].value && s.len + 2 < s.cap) {
            s.buf[s.len++] = '=';
            s.buf[s.len] = '\0';
            qs_put(&s, q->h->args[i].value);
        }
    }
}

void mc_http_resp_json(struct mc_http_response *r, int status, char *json)
{
    free(r->body);
    r->status = json ? status : 500;
    r->body = json;
    r->body_len = json ? strlen(json) : 0;
    r->content_type = NULL;
}

/* A header whose name is not a token or whose value has a CTL (CR, LF...) is dropped: values
 * come from stored data (an object's etag may hold "\r\n"), and writing them raw would let
 * them add header lines to the answer (response splitting). */
void mc_http_resp_header(struct mc_http_response *r, const char *name, const char *value)
{
    if (r->n_headers >= MC_HTTP_MAX_HEADERS || !mc_h1_field_ok(name, value)) {
        MC_DEBUG("http_header_dropped", "name=%s", name);
        return;
    }
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

/* ---- request state machine (loop thread unless noted) ---- */

/* The finished response r goes out; k is ready for the next request. */
static void respond(struct mc_http_exchange *x)
{
    mc_http_call_reset(&x->k);
    mc_http_conn_respond(x);
}

/* An error the HTTP layer itself produced (the node counts the ones it answers). */
static void respond_local_error(struct mc_http_exchange *x, int code, const char *msg)
{
    mc_metrics_error(code);
    mc_http_resp_error(&x->r, code, msg);
    respond(x);
}

/* In-process answer arrived (loop thread). */
static void local_done(void *arg);

/* Worker thread: the blocking part (admin routes; in loopback mode every data request;
 * in-process, requests the node could not serve locally, resent through the loopback client,
 * which follows the leader and retries). The answer goes back to the loop thread. */
static void worker_run(void *item)
{
    struct mc_http_exchange *x = item;
    struct mc_http_server *s = x->c->srv;
    if (x->forward) {
        mc_http_call_client(s, mc_http_pool_token(&x->q), &x->k);
        mc_http_finish(&x->q, &x->r, &x->k);
    } else {
        mc_http_dispatch(&x->q, &x->r);
    }
    mc_http_io_worker_done(s->io, x); /* x belongs to the loop thread again */
}

static void push_worker(struct mc_http_exchange *x)
{
    struct mc_http_conn *c = x->c;
    c->at_worker++;
    int rc = mc_http_workers_push(c->srv->workers, x);
    if (rc != 0) {
        c->at_worker--;
        x->phase = RQ_NEW;
        mc_http_resp_error(&x->r, rc, NULL); /* SlowDown when full, ShuttingDown when stopping */
        respond(x);
    }
}

/* At most WORKER_SHARE of a connection's requests are with the workers at once: a client that
 * pipelines 16 admin reads (or reads a follower forwards) must not take every worker from the
 * other connections. The rest of its batch waits on the connection, in order. */
static void to_worker(struct mc_http_exchange *x, bool forward)
{
    x->phase = RQ_WORKER;
    x->forward = forward;
    x->worker_wait = x->c->at_worker >= WORKER_SHARE;
    if (!x->worker_wait)
        push_worker(x);
}

void mc_http_worker_share_freed(struct mc_http_conn *c)
{
    for (uint32_t i = 0; c->busy && i < c->n_batch && c->at_worker < WORKER_SHARE; i++) {
        struct mc_http_exchange *x = mc_http_conn_exchange(c, i);
        if (x->phase == RQ_WORKER && x->worker_wait && !x->answered) {
            x->worker_wait = false;
            push_worker(x);
        }
    }
}

void mc_http_after_worker(struct mc_http_exchange *x)
{
    assert(x->phase == RQ_WORKER);
    x->phase = RQ_NEW;
    respond(x);
}

/* Back from the node: finish, or resend through the client library when another member (or
 * a moment later) may serve it (reads: NotLeader, Unavailable, StaleRead...). A write is
 * resent only after SlowDown (refused on arrival): a local write carries no exactly-once
 * session, and after NotLeader/ShuttingDown it may have been proposed and may still commit,
 * so resending it could apply it twice; it is answered with outcome_unknown instead. */
static void after_local(struct mc_http_exchange *x)
{
    x->local_id = 0;
    x->phase = RQ_NEW;
    int st = x->k.status;
    bool write = x->k.req.op == MC_REQ_WRITE;
    if (mc_http_status_retriable(st) && (!write || st == MC_ELIMIT) &&
        !atomic_load_explicit(&x->c->srv->stopping, memory_order_relaxed)) {
        to_worker(x, true);
        return;
    }
    if (write && mc_http_status_retriable(st))
        x->k.outcome_unknown = true;
    mc_http_finish(&x->q, &x->r, &x->k);
    respond(x);
}

static void local_done(void *arg)
{
    after_local(arg);
}

/* Hand a prepared data request to the node's loop; the answer comes back through local_done
 * (never before submit returns: replies are delivered from the loop's own callbacks). */
static void to_local(struct mc_http_exchange *x)
{
    x->phase = RQ_LOCAL;
    int rc = mc_http_local_submit(x->c->srv->local, &x->k, local_done, x, &x->local_id);
    if (rc != 0) {
        x->k.done = true;
        x->k.status = rc;
        after_local(x);
    }
}

void mc_http_on_exchange_closing(struct mc_http_exchange *x)
{
    /* A worker still fills x->r: conn.c keeps the connection until it is handed back. */
    x->worker_wait = false; /* never pushed: nothing hands it back */
    if (x->phase == RQ_LOCAL && x->local_id && x->c->srv->local)
        mc_http_local_cancel(x->c->srv->local, x->local_id); /* local_done will not run */
    x->local_id = 0;
}

void mc_http_exchange_state_free(struct mc_http_exchange *x)
{
    free(x->r.body);
    x->r.body = NULL;
    mc_http_call_free(&x->k);
}

/* Does this node lead (as last published)? Writes elsewhere go through the client library. */
static bool node_leads(struct mc_http_server *s)
{
    struct mc_node_metrics n;
    memset(&n, 0, sizeof n);
    return s->collect && s->collect(s->collect_ctx, &n) == 0 && n.has_leader &&
           n.leader_id == n.node_id;
}

static void req_begin(struct mc_http_exchange *x)
{
    x->phase = RQ_NEW;
    x->forward = false;
    x->local_id = 0;
    free(x->r.body);
    x->r = (struct mc_http_response){0};
    struct mc_wbuf ops = x->k.ops; /* kept: its buffer is reused */
    mc_http_call_reset(&x->k);
    memset(&x->k, 0, sizeof x->k);
    ops.len = 0;
    ops.err = 0;
    x->k.ops = ops;
    x->k.result.failed_op = -1;
}

/* Routes answered on the loop thread in loopback mode: no node call, nothing blocks. */
static bool route_is_inline(enum mc_http_route r)
{
    return r == MC_ROUTE_HEALTHZ || r == MC_ROUTE_READYZ || r == MC_ROUTE_METRICS;
}

void mc_http_on_request(struct mc_http_exchange *x, const char *body)
{
    struct mc_http_server *s = x->c->srv;
    req_begin(x);
    struct mc_http_request *q = &x->q;
    *q = (struct mc_http_request){.srv = s, .h = &x->h, .method = x->h.method, .url = x->h.path};
    q->body = body;
    q->body_len = x->h.body_len;
    int rc = mc_http_route_parse(q->url, &q->path);
    if (rc == MC_ENOTFOUND) {
        mc_http_resp_error_named(&x->r, 404, "NotFound", "no such endpoint");
        respond(x);
        return;
    }
    if (rc != 0) {
        respond_local_error(x, rc, NULL);
        return;
    }
    if (!mc_http_route_allows(q->path.route, q->method)) {
        mc_http_resp_error_named(&x->r, 405, "MethodNotAllowed",
                                 "method not allowed on this endpoint");
        mc_http_resp_header(&x->r, "Allow", mc_http_route_methods(q->path.route));
        respond(x);
        return;
    }
    rc = mc_http_authorize(s, q);
    if (rc != 0) {
        mc_metrics_error(rc);
        mc_http_resp_error(&x->r, rc,
                           rc == MC_EUNAUTH
                               ? "missing or invalid bearer token (Authorization: "
                                 "Bearer TOKEN)"
                               : "the token's role or bucket grants do not allow this");
        if (rc == MC_EUNAUTH)
            mc_http_resp_header(&x->r, "WWW-Authenticate", "Bearer realm=\"metacenter\"");
        respond(x);
        return;
    }
    if (!s->local) {
        if (route_is_inline(q->path.route)) {
            mc_http_dispatch(q, &x->r);
            respond(x);
        } else {
            to_worker(x, false); /* blocks a worker on the loopback client */
        }
        return;
    }
    if (mc_http_route_is_admin(q->path.route)) {
        to_worker(x, false);
        return;
    }
    if (!mc_http_prepare(q, &x->r, &x->k)) {
        respond(x); /* answered without the node (bad input, health, metrics) */
        return;
    }
    if (x->k.req.op == MC_REQ_WRITE && !node_leads(s)) {
        to_worker(x, true); /* a follower's write: forwarded with an exactly-once session */
        return;
    }
    to_local(x);
}

/* ---- lifecycle ---- */

/* HTTPS context and the loopback clients' TLS settings. 0 or MC_EINVAL. */
static int setup_tls(struct mc_http_server *s, const struct mc_http_options *o)
{
    if (!o->tls_cert_file || !o->tls_cert_file[0])
        return 0;
    const char *key = o->tls_key_file && o->tls_key_file[0] ? o->tls_key_file : o->tls_cert_file;
    const char *ca = o->tls_ca_file && o->tls_ca_file[0] ? o->tls_ca_file : o->tls_cert_file;
    char err[256] = "";
    /* No client-certificate check on the HTTP port (bearer tokens authenticate there). */
    struct mc_tls_config cfg = {.cert_file = o->tls_cert_file, .key_file = key};
    if (strlen(ca) >= sizeof s->loop_ca || strlen(o->tls_cert_file) >= sizeof s->loop_cert ||
        strlen(key) >= sizeof s->loop_key || mc_tls_ctx_new(&cfg, true, &s->tls, err, sizeof err)) {
        MC_ERROR("http_tls_invalid", "cert=%s key=%s err=\"%s\"", o->tls_cert_file, key, err);
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

static void *loop_main(void *arg)
{
    struct mc_http_server *s = arg;
    uv_run(s->own_loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Free what mc_http_start made (no connection exists or all are closed). */
static void server_free(struct mc_http_server *s)
{
    mc_http_workers_free(s->workers);
    mc_http_local_free(s->local);
    mc_http_pool_close(s);
    pthread_mutex_destroy(&s->pool_mu);
    mc_tls_ctx_free(s->tls);
    if (s->own_loop) {
        uv_run(s->own_loop, UV_RUN_DEFAULT); /* close callbacks (a failed start) */
        uv_loop_close(s->own_loop);
        free(s->own_loop);
    }
    free(s);
}

/* Loop, workers and listener for the mode. 0 or an error (s is then freed by the caller). */
static int start_io(struct mc_http_server *s, const struct mc_http_options *o,
                    const struct sockaddr_in *sa, uint32_t threads)
{
    uv_loop_t *loop = o->local_loop;
    int rc = 0;
    if (s->local_mode) {
        rc = mc_http_local_new(loop, o->local_clients, o->local_principal, &s->local);
        if (rc != 0)
            return rc;
    } else {
        s->own_loop = calloc(1, sizeof *s->own_loop);
        if (!s->own_loop || uv_loop_init(s->own_loop) != 0) {
            free(s->own_loop);
            s->own_loop = NULL;
            return MC_ENOMEM;
        }
        loop = s->own_loop;
    }
    rc = mc_http_workers_start(s->local_mode ? LOCAL_WORKERS : threads, worker_run, &s->workers);
    if (rc == 0)
        rc = mc_http_io_start(s, loop, sa, &s->io);
    if (rc == 0 && s->own_loop && pthread_create(&s->thread, NULL, loop_main, s) != 0) {
        mc_http_io_stop(s->io);
        s->io = NULL;
        rc = MC_ENOMEM;
    }
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
    if (threads > MC_HTTP_MAX_THREADS || o->max_body_bytes > MC_HTTP_MAX_BODY_LIMIT)
        return MC_EINVAL;
    if (o->auth && o->internal_token && strlen(o->internal_token) >= MC_CLIENT_TOKEN_MAX + 1)
        return MC_EINVAL;
    struct mc_http_server *s = calloc(1, sizeof *s);
    if (!s)
        return MC_ENOMEM;
    snprintf(s->client_addr, sizeof s->client_addr, "%s", o->client_addr);
    s->ready_max_lag = o->ready_max_lag ? o->ready_max_lag : 1000;
    s->request_timeout_ms = o->request_timeout_ms ? o->request_timeout_ms : 5000;
    s->max_body_bytes = o->max_body_bytes ? o->max_body_bytes : MC_HTTP_MAX_BODY_BYTES;
    s->idle_timeout_ms = o->idle_timeout_ms ? o->idle_timeout_ms : MC_HTTP_IDLE_TIMEOUT_MS;
    s->head_timeout_ms = o->head_timeout_ms ? o->head_timeout_ms : MC_HTTP_HEAD_TIMEOUT_MS;
    s->send_timeout_ms = o->send_timeout_ms ? o->send_timeout_ms : MC_HTTP_SEND_TIMEOUT_MS;
    s->max_connections = o->max_connections && o->max_connections < MC_HTTP_MAX_CONNECTIONS
                             ? o->max_connections
                             : MC_HTTP_MAX_CONNECTIONS;
    s->sndbuf_bytes = o->sndbuf_bytes;
    s->collect = o->collect;
    s->collect_ctx = o->collect_ctx;
    s->auth = o->auth;
    s->metrics_auth = o->metrics_auth;
    if (o->auth && o->internal_token)
        snprintf(s->internal_token, sizeof s->internal_token, "%s", o->internal_token);
    pthread_mutex_init(&s->pool_mu, NULL);
    s->local_mode = o->local_loop && o->local_clients;
    int rc = setup_tls(s, o);
    if (rc == 0)
        rc = start_io(s, o, &sa, threads);
    if (rc != 0) {
        MC_ERROR("http_start_failed", "addr=%s err=%s", listen, mc_error_name(rc));
        server_free(s);
        return rc;
    }
    s->port = mc_http_io_port(s->io);
    MC_INFO("http_listening", "addr=%s port=%d mode=%s threads=%u client=%s tls=%d", listen,
            s->port, s->local_mode ? "in_process_on_loop" : "loopback_workers",
            s->local_mode ? LOCAL_WORKERS : threads, s->client_addr, s->tls != NULL);
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
    /* Workers finish what they hold (their client calls give up on `stopping`) and hand it
     * back; no worker touches a connection after this. */
    mc_http_workers_stop(s->workers);
    if (s->own_loop) {
        /* Loopback mode: the loop thread answers, closes everything and its loop ends. */
        mc_http_io_stop_async(s->io);
        pthread_join(s->thread, NULL);
    } else {
        /* In-process (this is the loop thread): what is with the node is answered
         * ShuttingDown (the node will not answer any more); later submits are refused. The
         * handles close in the loop's next iterations; their callbacks touch only the
         * connections and the io, never s. */
        mc_http_local_fail_all(s->local, MC_ESHUTDOWN);
        mc_http_io_stop(s->io);
    }
    s->io = NULL;
    server_free(s);
}
