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

struct MHD_Connection;
struct MHD_Daemon;

/* Idle loopback clients kept for reuse; more are closed when returned. */
#define MC_HTTP_POOL_MAX 128

struct mc_http_server {
    struct MHD_Daemon *daemon;
    int port;
    char client_addr[MC_ADDR_MAX];
    uint64_t ready_max_lag;
    uint32_t request_timeout_ms;
    uint32_t max_body_bytes;
    mc_node_collect_fn collect;
    void *collect_ctx;
    _Atomic bool stopping; /* mc_http_stop began: waits give up (ShuttingDown) */
    pthread_mutex_t pool_mu;
    struct mc_client *pool[MC_HTTP_POOL_MAX]; /* idle clients */
    uint32_t n_pool;
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

/* ---- request / response ---- */

#define MC_HTTP_MAX_HEADERS 4

struct mc_http_request {
    struct mc_http_server *srv;
    struct MHD_Connection *conn;
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

/* Run the request (handlers.c); always fills resp. */
void mc_http_dispatch(struct mc_http_request *q, struct mc_http_response *resp);

/* ---- loopback calls (call.c) ---- */

/* What one client request returned, copied out of the callback. */
struct mc_http_call {
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
/* Poll until the call's callback ran, or the server stops (MC_ESHUTDOWN: then the caller must
 * hand c back with mc_http_client_put while k is still alive: closing c completes k).
 * submit_rc = what the submit returned. Returns k->status. */
#define MC_HTTP_STOP_CHECK_MS 50
int mc_http_call_wait(struct mc_http_server *s, struct mc_client *c, struct mc_http_call *k,
                      int submit_rc);
void mc_http_call_free(struct mc_http_call *k);

/* Take a loopback client (pooled or new) / give it back. NULL on failure. */
struct mc_client *mc_http_client_get(struct mc_http_server *s);
void mc_http_client_put(struct mc_http_server *s, struct mc_client *c);
void mc_http_pool_close(struct mc_http_server *s);

#endif
