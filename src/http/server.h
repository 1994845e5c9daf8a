/* server.h: the HTTP/JSON API (DESIGN.md §4, docs/http.md): our HTTP/1.1 server on libuv. */
#ifndef MC_HTTP_SERVER_H
#define MC_HTTP_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "obs/metrics.h"
#include "security/auth.h"

struct mc_client_server;
struct uv_loop_s;

/*
 * Two ways to reach the node (docs/http.md); both parse HTTP/1.1 themselves on a libuv loop
 * (src/http/conn.c, h1.c):
 * - in-process (local_loop set: inside the node): the listener and connections live on the
 *   node's loop; each request is handed to the node through the client server's in-process
 *   connection (src/http/local.c) and answered from the loop when the reply is back. Follower
 *   writes, retriable reads and admin routes go through the loopback client below, on worker
 *   threads.
 * - loopback only (test servers): the server runs its own loop on a thread of its own and hands
 *   each data/admin request to `threads` worker threads, which call the node through the
 *   client protocol over loopback with the C client library (a small pool of mc_client), which
 *   follows the leader and keeps exactly-once sessions.
 *
 * /healthz, /readyz and /metrics do not involve the node's loop: they read node state
 * through opts.collect (see obs/metrics.h) and the metrics registry.
 */

#define MC_HTTP_DEFAULT_ADDR    "127.0.0.1:7080"
#define MC_HTTP_MAX_BODY_BYTES  (1u << 20) /* request bodies above answer 413 */
#define MC_HTTP_DEFAULT_THREADS 8
#define MC_HTTP_MAX_THREADS     64
#define MC_HTTP_MAX_CONNECTIONS 1024
#define MC_HTTP_IDLE_TIMEOUT_MS (120u * 1000) /* idle, or output stalled: closed */
#define MC_HTTP_HEAD_TIMEOUT_MS (30u * 1000)  /* first byte of a request to its whole head */
#define MC_HTTP_SEND_TIMEOUT_MS (120u * 1000) /* output pending, never drained: closed */
#define MC_HTTP_MAX_PEM_BYTES   (1u << 20)    /* --cert-file / --key-file read for HTTPS */
/* Largest max_body_bytes (mc_http_start refuses more): a body becomes one client-protocol
 * frame (at most MC_PROTO_MAX_FRAME_BYTES, 4 MiB) holding one op record the engine takes up to
 * MC_OP_MAX_BYTES (2 MiB); the compact JSON of such a record stays under 4 MiB (base64 inline
 * data is 4/3 of its bytes, etags and names ~1x), so a larger body could only be buffered
 * (per connection) to be refused later. server.c asserts the relation. */
#define MC_HTTP_MAX_BODY_LIMIT (4u << 20)

struct mc_http_options {
    const char *listen_addr;     /* "host:port" (numeric IPv4); port 0 = ephemeral (mc_http_port).
                                    NULL = MC_HTTP_DEFAULT_ADDR. "off" is the caller's business. */
    const char *client_addr;     /* node's client-protocol address, reachable from here
                                    ("127.0.0.1:7070"; not 0.0.0.0). Required. */
    uint64_t ready_max_lag;      /* /readyz: max commit_index - applied_index; 0 = 1000 */
    uint32_t threads;            /* loopback mode: worker threads; 0 = MC_HTTP_DEFAULT_THREADS */
    uint32_t request_timeout_ms; /* loopback client per-request timeout; 0 = 5000 */
    uint32_t max_body_bytes;     /* 0 = MC_HTTP_MAX_BODY_BYTES; above MC_HTTP_MAX_BODY_LIMIT:
                                    MC_EINVAL. Each connection may buffer this much. */
    uint32_t idle_timeout_ms;    /* connection idle, or its output stalled (the client does
                                    not read), this long: closed. 0 = MC_HTTP_IDLE_TIMEOUT_MS */
    uint32_t head_timeout_ms;    /* a request head not complete this long after its first
                                    byte: 408 and close (slowloris); its body gets
                                    idle_timeout_ms more. 0 = MC_HTTP_HEAD_TIMEOUT_MS */
    uint32_t send_timeout_ms;    /* output pending (the socket was full) and not drained
                                    completely since, socket buffer included, this long:
                                    closed (a slow reader, even one that makes progress).
                                    0 = MC_HTTP_SEND_TIMEOUT_MS */
    uint32_t max_connections;    /* open connections at once (more are accepted and closed:
                                    metacenter_http_connections_refused_total); 0 or above
                                    MC_HTTP_MAX_CONNECTIONS = MC_HTTP_MAX_CONNECTIONS */
    uint32_t sndbuf_bytes;       /* tests: SO_SNDBUF of each accepted socket (small: answers
                                    back up in the server, as over a real network, instead of
                                    fitting loopback's autotuned buffer); 0 = the kernel's */
    mc_node_collect_fn collect;  /* node state for /readyz and /metrics; may be NULL */
    void *collect_ctx;
    const struct mc_auth *auth; /* NULL = auth off. Else every route but /healthz, /readyz (and
                                   /metrics unless metrics_auth) needs "Authorization: Bearer
                                   TOKEN" of a principal whose role allows it: 401 without a
                                   valid token, 403 for the wrong role/bucket. Must outlive
                                   the server. */
    const char *internal_token; /* with auth: the token the loopback clients authenticate
                                   with (an admin principal in auth); copied */
    bool metrics_auth;          /* with auth: /metrics needs a valid token (any role) */
    /* HTTPS (OpenSSL, src/security/tls.h): cert + key PEM files; NULL = plain HTTP; no client
     * certificate is asked for on the HTTP port (bearer tokens authenticate there). The
     * node's client port then speaks TLS too: the loopback clients verify it against
     * tls_ca_file (NULL = tls_cert_file, for a self-signed cert) and, with
     * tls_client_cert, present the same cert/key as their client certificate. */
    const char *tls_cert_file;
    const char *tls_key_file;
    const char *tls_ca_file;
    bool tls_client_cert;
    /* In-process path (the node): requests are handed to the node's loop (clients' in-process
     * connection, running as local_principal) instead of a loopback client; the listener and
     * connections run on local_loop (no HTTP thread, no per-request thread handoff).
     * Admin routes and requests the node answers NotLeader/Unavailable go through the
     * loopback client on worker threads (it follows the leader). mc_http_start and
     * mc_http_stop must then run on local_loop's thread. NULL = loopback only. */
    struct uv_loop_s *local_loop;
    struct mc_client_server *local_clients;
    const struct mc_principal *local_principal;
    bool use_thread_pool; /* no effect (kept for callers): it chose between libmicrohttpd's
                             thread per connection and an epoll pool; loopback mode now always
                             runs one loop thread + `threads` workers */
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
