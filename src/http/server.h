/* server.h: the HTTP/JSON API (DESIGN.md §4, docs/http.md): libmicrohttpd, own threads. */
#ifndef MC_HTTP_SERVER_H
#define MC_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "obs/metrics.h"

/*
 * The server runs in libmicrohttpd's own threads (one per connection by default) and never touches
 * the node's loop: each request is served by calling the node through the client protocol over
 * loopback, with the C client library (a small pool of mc_client, one per concurrently served
 * request). So HTTP behaves exactly like any client: writes on a follower are forwarded by the
 * client library to the leader, retries keep exactly-once sessions. Cost: one loopback hop per
 * request.
 *
 * /healthz, /readyz and /metrics do not use the loopback client: they read node state
 * through opts.collect (see obs/metrics.h) and the metrics registry.
 */

#define MC_HTTP_DEFAULT_ADDR    "127.0.0.1:7080"
#define MC_HTTP_MAX_BODY_BYTES  (1u << 20) /* request bodies above answer 413 */
#define MC_HTTP_DEFAULT_THREADS 8
#define MC_HTTP_MAX_THREADS     64
#define MC_HTTP_MAX_CONNECTIONS 1024

struct mc_http_options {
    const char *listen_addr; /* "host:port" (numeric IPv4); port 0 = ephemeral (mc_http_port).
                                NULL = MC_HTTP_DEFAULT_ADDR. "off" is the caller's business. */
    const char *client_addr; /* node's client-protocol address, reachable from here
                                ("127.0.0.1:7070"; not 0.0.0.0). Required. */
    uint64_t ready_max_lag;  /* /readyz: max commit_index - applied_index; 0 = 1000 */
    uint32_t threads;        /* with use_thread_pool: MHD workers; 0 = MC_HTTP_DEFAULT_THREADS */
    uint32_t request_timeout_ms; /* loopback client per-request timeout; 0 = 5000 */
    uint32_t max_body_bytes;     /* 0 = MC_HTTP_MAX_BODY_BYTES */
    mc_node_collect_fn collect;  /* node state for /readyz and /metrics; may be NULL */
    void *collect_ctx;
    bool use_thread_pool; /* default (false): one MHD thread per connection, so every
                             connection can wait on the node (a write waits for Raft) without
                             holding up others; true: an epoll pool of `threads` workers, each
                             serving its connections one request at a time (docs/http.md) */
};

struct mc_http_server;

/*
 * Bind and start serving. Returns 0, MC_EINVAL (bad address/options), MC_EIO (bind failed:
 * port in use...) or MC_ENOMEM. On success the server answers until mc_http_stop.
 */
int mc_http_start(const struct mc_http_options *o, struct mc_http_server **out);

/* The bound TCP port (useful with port 0). */
int mc_http_port(const struct mc_http_server *s);

/* Stop accepting, finish/close connections, join threads, close loopback clients, free. */
void mc_http_stop(struct mc_http_server *s);

#endif
