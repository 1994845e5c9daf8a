/* internal.h: shared internals of the HTTP server: request/response, routes, loopback calls. */
#ifndef MC_HTTP_INTERNAL_H
#define MC_HTTP_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "http/server.h"
#include "metacenter/client.h"
#include "metacenter/engine.h"
#include "net/proto.h"
#include "util/codec.h"

struct mc_h1_req;
struct mc_tls_ctx;
struct mc_http_io;
struct mc_http_local;
struct mc_http_workers;
struct mc_client_server;
struct uv_loop_s;

/* Idle loopback clients kept for reuse; more are closed when returned. */
#define MC_HTTP_POOL_MAX 128

struct mc_http_server {
    struct mc_http_io *io; /* listener and connections on the loop (conn.c) */
    int port;
    char client_addr[MC_ADDR_MAX];
    uint64_t ready_max_lag;
    uint32_t request_timeout_ms;
    uint32_t max_body_bytes;
    uint32_t idle_timeout_ms;
    uint32_t head_timeout_ms;
    uint32_t send_timeout_ms;
    uint32_t max_connections; /* ≤ MC_HTTP_MAX_CONNECTIONS (sizes local.c's slots) */
    uint32_t sndbuf_bytes;    /* SO_SNDBUF of accepted sockets; 0 = the kernel's (tests) */
    mc_node_collect_fn collect;
    void *collect_ctx;
    const struct mc_auth *auth; /* NULL = off */
    char internal_token[MC_CLIENT_TOKEN_MAX + 1];
    bool metrics_auth;
    struct mc_tls_ctx *tls; /* HTTPS: server context (cert + key); NULL = plain HTTP */
    char loop_ca[1024];     /* loopback client TLS (paths); "" = plaintext */
    char loop_cert[1024];
    char loop_key[1024];
    _Atomic bool stopping; /* mc_http_stop began: waits give up (ShuttingDown) */
    pthread_mutex_t pool_mu;
    struct mc_client *pool[MC_HTTP_POOL_MAX];                   /* idle clients */
    char pool_token[MC_HTTP_POOL_MAX][MC_CLIENT_TOKEN_MAX + 1]; /* what each authenticated
                                                                   with ("" = none) */
    uint64_t pool_used_ms[MC_HTTP_POOL_MAX]; /* when each was returned (the oldest is evicted
                                                when the pool is full) */
    uint32_t n_pool;
    struct mc_http_local *local;     /* in-process path to the node (NULL: loopback only) */
    struct mc_http_workers *workers; /* blocking work: admin routes, forwarded requests; all
                                        data requests in loopback mode */
    bool local_mode;                 /* in-process: the node's loop runs the connections */
    struct uv_loop_s *own_loop;      /* loopback mode: the loop run by `thread` */
    pthread_t thread;
};

/* ---- routes (route.c) ---- */

enum mc_http_route {
    MC_ROUTE_NONE = 0,
    MC_ROUTE_HEALTHZ,
    MC_ROUTE_READYZ,
    MC_ROUTE_METRICS,
    MC_ROUTE_BUCKETS,    /* /v1/buckets */
    MC_ROUTE_BUCKET,     /* /v1/buckets/{b} */
    MC_ROUTE_VERSIONING, /* /v1/buckets/{b}/versioning */
    MC_ROUTE_OBJECTS,    /* /v1/buckets/{b}/objects */
    MC_ROUTE_VERSIONS,   /* /v1/buckets/{b}/versions */
    MC_ROUTE_OBJECT,     /* /v1/buckets/{b}/objects/{key...} */
    MC_ROUTE_CLUSTER,    /* /v1/cluster */
    MC_ROUTE_MEMBERS,    /* /v1/cluster/members */
    MC_ROUTE_MEMBER,     /* /v1/cluster/members/{id} */
    MC_ROUTE_PROMOTE,    /* /v1/cluster/members/{id}/promote */
    MC_ROUTE_TRANSFER,   /* /v1/cluster/transfer-leader */
    MC_ROUTE_SNAPSHOT,   /* /v1/snapshot */
};

struct mc_http_path {
    enum mc_http_route route;
    char bucket[MC_BUCKET_NAME_MAX + 1];
    const char *key; /* MC_ROUTE_OBJECT: points into the (decoded) path; may contain '/' */
    uint64_t member_id;
};

/*
 * Match a decoded request path. Returns 0, MC_ENOTFOUND (no such route), MC_EBUCKETNAME
 * (bucket segment longer than 63 bytes) or MC_EINVAL (member id not a positive integer).
 */
int mc_http_route_parse(const char *path, struct mc_http_path *out);
/* "GET, HEAD" style list of the methods a route accepts (for 405 + Allow). */
const char *mc_http_route_methods(enum mc_http_route r);
bool mc_http_route_allows(enum mc_http_route r, const char *method);

/* ---- authorization (auth.c) ---- */

struct mc_http_request;
/* With s->auth: 0, MC_EUNAUTH (no/invalid bearer token) or MC_EDENIED (role/bucket). Routes:
 * /healthz, /readyz open; /metrics open unless metrics_auth (then any valid token); cluster
 * and snapshot routes admin; other GET/HEAD read; other methods write. */
int mc_http_authorize(const struct mc_http_server *s, const struct mc_http_request *q);
/* The token of an "Authorization: Bearer TOKEN" header, or NULL. */
const char *mc_http_bearer_token(const struct mc_http_request *q);

/* ---- request / response ---- */

#define MC_HTTP_MAX_HEADERS 4

struct mc_http_request {
    struct mc_http_server *srv;
    const struct mc_h1_req *h; /* the parsed request (headers, query args) */
    const char *method;
    const char *url;
    struct mc_http_path path;
    const char *body; /* NUL-terminated copy; len bytes */
    size_t body_len;
};

struct mc_http_response {
    int status;
    char *body; /* malloc'd JSON or text; NULL = empty */
    size_t body_len;
    const char *content_type; /* NULL = application/json */
    uint32_t n_headers;
    struct {
        const char *name;
        char value[MC_ADDR_MAX + 1200];
    } headers[MC_HTTP_MAX_HEADERS];
};

/* Query argument (decoded) or NULL. */
const char *mc_http_arg(const struct mc_http_request *q, const char *name);
/* The query re-encoded ("?a=1&b=x%20y", or "" when none), truncated to cap. */
void mc_http_query_string(const struct mc_http_request *q, char *out, size_t cap);
/* Request header or NULL. */
const char *mc_http_header(const struct mc_http_request *q, const char *name);

void mc_http_resp_json(struct mc_http_response *r, int status, char *json);
void mc_http_resp_header(struct mc_http_response *r, const char *name, const char *value);
/* {"error":NAME,"message":MSG} with mc_error_http_status(code). msg NULL = mc_strerror. */
void mc_http_resp_error(struct mc_http_response *r, int code, const char *msg);
/* Same with an explicit status and name (405 MethodNotAllowed, 404 for unknown routes...). */
void mc_http_resp_error_named(struct mc_http_response *r, int status, const char *name,
                              const char *msg);

/* Exactly mc_version_json(v, MC_JSON_COMPACT), written without jansson (json_out.c). NULL
 * when out of memory. */
char *mc_http_version_json(const struct mc_version *v);
/* Exactly mc_op_result_json(r, MC_JSON_COMPACT) (json_out.c). */
char *mc_http_op_result_json(const struct mc_op_result *r);

/* PUT object body: the flat common case parsed without jansson (json_in.c). true: out holds
 * exactly what mc_object_meta_from_json would return (with 0); false: not handled here (out
 * cleared), run mc_object_meta_from_json. */
struct mc_object_meta;
bool mc_http_meta_from_json_fast(const char *json, size_t len, struct mc_object_meta *out);

/* Run the request, blocking on the loopback client (handlers.c); always fills resp. */
void mc_http_dispatch(struct mc_http_request *q, struct mc_http_response *resp);

/* Two-phase form of mc_http_dispatch for the data routes (buckets, objects, listings): prepare
 * fills k with the node request to make and returns true, or answers r and returns false
 * (bad input, /healthz, /readyz, /metrics). Once k has the node's answer (loopback client or
 * in-process), finish formats r. Admin routes (mc_http_route_is_admin) have no two-phase form. */
struct mc_http_call;
bool mc_http_prepare(struct mc_http_request *q, struct mc_http_response *r, struct mc_http_call *k);
void mc_http_finish(struct mc_http_request *q, struct mc_http_response *r, struct mc_http_call *k);
bool mc_http_route_is_admin(enum mc_http_route r);

/* ---- loopback calls (call.c) ---- */

/* One node request: what to send (req, ops) and what it returned, copied out of the callback. */
struct mc_http_call {
    struct mc_proto_request req; /* strings borrow the HTTP request (path, args) */
    struct mc_wbuf ops;          /* MC_REQ_WRITE: the op list (u32 length + op record) */
    int aux;                     /* handler scratch kept from prepare to finish */
    bool done;
    bool is_write;
    int status;
    bool outcome_unknown;
    bool delete_marker;
    uint64_t leader_id;
    char message[256];
    char version_id[MC_VERSION_ID_MAX + 1];
    char leader_addr[MC_ADDR_MAX];
    struct mc_op_result result; /* writes: decoded op result */
    uint8_t *body;              /* reads/admin: the reply body (malloc'd) */
    size_t body_len;
};

void mc_http_call_cb(void *arg, const struct mc_client_result *r);
/* Forget the last answer (before sending k->req again); keeps req and ops. */
void mc_http_call_reset(struct mc_http_call *k);
/* Send k->req through a pooled loopback client authenticated with token (mc_http_pool_token)
 * and wait (the library follows the leader and retries). Returns k->status. */
int mc_http_call_client(struct mc_http_server *s, const char *token, struct mc_http_call *k);
/* Statuses the client library retries (another member or later may succeed). */
bool mc_http_status_retriable(int status);
/* Poll until the call's callback ran, or the server stops (MC_ESHUTDOWN: then the caller must
 * hand c back with mc_http_client_put while k is still alive: closing c completes k).
 * submit_rc = what the submit returned. Returns k->status. */
#define MC_HTTP_STOP_CHECK_MS 50
int mc_http_call_wait(struct mc_http_server *s, struct mc_client *c, struct mc_http_call *k,
                      int submit_rc);
/* Frees the reply body and the op list. */
void mc_http_call_free(struct mc_http_call *k);

/*
 * The credential a request's loopback client authenticates with. In-process mode with auth:
 * the caller's own bearer token (already checked by mc_http_authorize), because the client
 * library may carry the request to the leader, and a token of this node's own would be refused
 * there; the leader then checks the caller's role and buckets itself. Otherwise NULL: the
 * server's internal token (loopback mode: the node behind the test server knows that one).
 */
const char *mc_http_pool_token(const struct mc_http_request *q);
/* Take a loopback client authenticated with token (NULL = the internal token; pooled or new) /
 * give it back with the same token. NULL on failure. */
struct mc_client *mc_http_client_get(struct mc_http_server *s, const char *token);
void mc_http_client_put(struct mc_http_server *s, struct mc_client *c, const char *token);
void mc_http_pool_close(struct mc_http_server *s);

/* ---- in-process path to the node (local.c) ---- */

/* Loop thread: bridge to the client server's in-process connection (uv_async for input). */
int mc_http_local_new(struct uv_loop_s *loop, struct mc_client_server *clients,
                      const struct mc_principal *principal, struct mc_http_local **out);
/* Any thread: queue k->req for the node. done(arg) runs on the loop thread once k holds the
 * answer. *id identifies it for mc_http_local_cancel. 0 or MC_ESHUTDOWN, MC_ELIMIT, encode
 * errors (then done never runs). */
int mc_http_local_submit(struct mc_http_local *l, struct mc_http_call *k, void (*done)(void *),
                         void *arg, uint64_t *id);
/* Any thread: k will not be written any more (its owner is going away). */
void mc_http_local_cancel(struct mc_http_local *l, uint64_t id);
/* Loop thread: answer everything pending with status (done runs) and refuse new submits. */
void mc_http_local_fail_all(struct mc_http_local *l, int status);
/* Loop thread, after fail_all and once no thread submits any more: close and free. */
void mc_http_local_free(struct mc_http_local *l);

/* ---- worker threads (worker.c): blocking work off the loop thread ---- */

int mc_http_workers_start(uint32_t n, void (*run)(void *item), struct mc_http_workers **out);
/* Connections allocated at once: open ones (MC_HTTP_MAX_CONNECTIONS) plus those closed while a
 * worker still holds them (freed when it hands them back). Bounds the worker queue. */
#define MC_HTTP_MAX_ALLOCATED (2 * MC_HTTP_MAX_CONNECTIONS)
/* Pipelined requests of one connection with the node or a worker at once (conn.h). */
#define MC_HTTP_PIPELINE_MAX 16
/* Queue an item (at most MC_HTTP_MAX_ALLOCATED x MC_HTTP_PIPELINE_MAX queued: a batch per
 * allocated connection). 0, or
 * MC_ELIMIT (full: SlowDown), MC_ESHUTDOWN (stopping). */
int mc_http_workers_push(struct mc_http_workers *w, void *item);
/* Run what is queued, then join; later pushes are refused. */
void mc_http_workers_stop(struct mc_http_workers *w);
void mc_http_workers_free(struct mc_http_workers *w); /* stops first if needed */

#endif
