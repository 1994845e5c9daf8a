/* client_server.h: libuv server side of the client protocol: listener, connections, frames. */
#ifndef MC_NET_CLIENT_SERVER_H
#define MC_NET_CLIENT_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "net/proto.h"
#include "security/auth.h"
#include "security/tls.h"
#include "util/codec.h"

/*
 * Threading: everything runs on the loop thread (dispatch, replies, stop).
 *
 * Request lifecycle: each decoded request is handed to handler->dispatch once. The handler
 * must answer it exactly once with one of the mc_client_reply* calls below, now (inside
 * dispatch) or later (after Raft commit, a ReadIndex round, ...), using the token copied
 * from req->token. Until answered, the request counts against the connection's in-flight
 * limit and keeps the connection object alive (a reply to a connection that has since
 * closed is dropped safely). Streamed replies (snapshot chunks) use mc_client_reply_more
 * any number of times, then one final reply.
 *
 * Replies are appended to a per-connection output buffer and flushed once per loop
 * iteration (uv_prepare + uv_check), so a burst of replies costs one write(2).
 */

struct mc_client_server;
struct mc_client_conn;

/* Identifies one request for its reply. Plain value: copy it, no ref counting needed. */
struct mc_client_token {
    struct mc_client_conn *conn;
    uint64_t request_id;
    uint8_t op;
};

struct mc_client_request {
    struct mc_client_token token;
    /* Decoded body. Borrowed from the connection's read buffer: valid only during dispatch;
     * copy what you keep (op records are usually proposed to Raft inside dispatch). */
    const struct mc_proto_request *req;
};

struct mc_client_handler {
    /* A request arrived (well-formed, known op). */
    void (*dispatch)(void *ctx, const struct mc_client_request *r);
    /* Optional: a connection closed (its unanswered requests will still accept replies). */
    void (*conn_closed)(void *ctx, struct mc_client_conn *conn);
};

/* Metadata replies are small and a healthy client reads continuously: output that has not
 * reached the kernel after this long belongs to a peer that stopped reading. Shorter than the
 * HTTP server's 120 s (which streams large listings to browsers and scripts). The default of
 * opts.send_timeout_ms and of `serve --client-send-timeout-ms`. */
#define MC_CLIENT_SEND_TIMEOUT_MS 30000u

/* Reply bytes queued over all connections before reading pauses on those with output queued
 * (aud18 B2 a): max_output_bytes alone lets 1000 connections hold 8 GiB. The default of
 * opts.max_total_output_bytes and of `serve --max-total-output-bytes`. */
#define MC_CLIENT_MAX_TOTAL_OUTPUT_BYTES ((size_t)512 * 1024 * 1024)

struct mc_client_server_opts {
    uint32_t max_connections;       /* default 1000 (serve --max-client-connections); extra
                                       connections get SlowDown + close. A connection counts
                                       until its socket is closed, closing ones too */
    uint32_t max_inflight_per_conn; /* default 4096; reading pauses while reached */
    size_t max_output_bytes;        /* default 8 MiB; reading pauses while the output is
                                       above this (slow reader) */
    size_t max_total_output_bytes;  /* 0 = MC_CLIENT_MAX_TOTAL_OUTPUT_BYTES (serve
                                       --max-total-output-bytes): reply bytes queued over all
                                       connections; at this, connections with output queued
                                       stop reading (and held reads stay held) until the
                                       total is back under 3/4 of it */
    uint32_t idle_timeout_ms;       /* 0 = none; idle connections (nothing in flight,
                                       no reply being written) close */
    uint32_t send_timeout_ms;       /* 0 = MC_CLIENT_SEND_TIMEOUT_MS (serve
                                       --client-send-timeout-ms): replies handed to a write
                                       must all reach the kernel within this long, else the
                                       peer has stopped reading (or trickles) and is closed */
    int sndbuf_bytes; /* tests only: SO_SNDBUF of accepted sockets (0 = the kernel's): on
                         loopback the kernel's auto-sized buffer takes whole replies */
    uint32_t request_read_timeout_ms; /* 0 = default 10000: a frame must arrive whole within
                                         this long of its first byte (slowloris), else the
                                         connection gets Timeout and is closed; with auth on,
                                         a connection not authenticated this long after its
                                         accept is closed (between requests) */
    uint32_t max_frame_bytes;         /* 0 = MC_PROTO_MAX_FRAME_BYTES (also the maximum);
                                         larger frames get EntityTooLarge + close */
    uint32_t max_batch_ops;           /* 0 = MC_PROTO_MAX_BATCH_OPS (also the maximum); a
                                         WRITE with more op records gets EntityTooLarge */
    uint32_t max_list_keys;           /* 0 = 1000: LIST max_keys above (or 0) is clamped */
    const struct mc_auth *auth;       /* NULL = auth off. Else every request but PING and AUTH
                                         needs a connection authenticated by AUTH with a
                                         principal whose role/grants allow it (must outlive
                                         the server) */
    struct mc_tls_ctx *tls;           /* NULL = plaintext; else every connection is TLS
                                         (server context; must outlive the server) */
    int backlog;                      /* default 511 */
};

/*
 * Listen on listen_addr ("127.0.0.1:7070"; port 0 picks an ephemeral port, read it with
 * mc_client_server_port). opts may be NULL for defaults. Returns 0 or MC_EINVAL (bad addr),
 * MC_EIO (bind/listen failed, e.g. port in use), MC_ENOMEM.
 */
int mc_client_server_start(uv_loop_t *loop, const char *listen_addr,
                           const struct mc_client_handler *handler, void *ctx,
                           const struct mc_client_server_opts *opts, struct mc_client_server **out);

/* The bound TCP port. */
int mc_client_server_port(const struct mc_client_server *s);

/*
 * Graceful stop: close the listener, stop reading, flush pending output, close every
 * connection. done(arg) runs (on the loop) once all libuv handles are closed. Replies
 * arriving afterwards are dropped. The server object is freed when its last connection
 * is (after every outstanding request was answered); do not use s after calling this.
 */
void mc_client_server_stop(struct mc_client_server *s, void (*done)(void *arg), void *arg);

/* Counters for metrics/tests. */
struct mc_client_server_stats {
    uint64_t connections_accepted;
    uint64_t connections_open;
    uint64_t connections_rejected; /* over max_connections */
    uint64_t requests;
    uint64_t replies;
    uint64_t protocol_errors;   /* connections closed for malformed/oversized frames */
    uint64_t writes;            /* write(2)/uv_write calls: replies/writes shows batching */
    uint64_t read_pauses;       /* times a connection stopped reading (in-flight/output limit,
                                   the server-wide output budget) */
    uint64_t budget_yields;     /* times a connection's frames waited for the next loop pass
                                   (FRAME_BUDGET frames parsed in one) */
    uint64_t idle_closed;       /* connections closed by the idle timeout */
    uint64_t read_timeouts;     /* connections closed: a frame did not complete in time */
    uint64_t auth_timeouts;     /* connections closed: not authenticated in time (auth on) */
    uint64_t frames_too_large;  /* frames over max_frame_bytes */
    uint64_t batches_too_large; /* WRITEs over max_batch_ops */
    uint64_t drain_wakes;       /* waiters on a full output woken (mc_client_conn_output_full) */
    uint64_t send_timeouts;     /* connections closed: queued replies did not drain in time
                                   (send_timeout_ms; the close grace after a protocol error) */
    uint64_t output_bytes;      /* reply bytes queued now over all connections (the total
                                   max_total_output_bytes bounds) */
    uint64_t output_bytes_peak; /* the largest output_bytes so far */
    uint64_t budget_hits;       /* times output_bytes reached max_total_output_bytes */
    uint64_t budget_pauses;     /* times a connection stopped reading for that budget (also
                                   counted in read_pauses) */
    uint64_t rbuf_shrinks;      /* read buffers of SHRINK_RBUF_BYTES or more given back after
                                   the big frame they grew for */
    uint64_t rbuf_idle_shrinks; /* smaller grown read buffers given back after an idle spell */
};
void mc_client_server_stats(const struct mc_client_server *s, struct mc_client_server_stats *out);
/* The largest frame a connection may send (opts.max_frame_bytes after defaults); a larger one
 * is a protocol error that closes the connection, the in-process one included. */
uint32_t mc_client_server_max_frame_bytes(const struct mc_client_server *s);
/* mc_client_server_stop was called: an in-process connection closed now is not coming back
 * (mc_client_server_local_open refuses with MC_ESHUTDOWN). */
bool mc_client_server_stopping(const struct mc_client_server *s);

/*
 * Reply with a body (success: the op's result encoding; error: usually use the helpers
 * below). status is 0 or a negative MC_E* code. Always consumes the token.
 */
void mc_client_reply(const struct mc_client_token *t, int status, const void *body, size_t len);

/* Error reply with a message (may be NULL: the code's mc_strerror text is used). */
void mc_client_reply_error(const struct mc_client_token *t, int status, const char *message);

/* NotLeader redirect: leader_id 0 / leader_addr NULL when unknown. */
void mc_client_reply_not_leader(const struct mc_client_token *t, uint64_t leader_id,
                                const char *leader_addr);

/* Error reply with every field (delete-marker flag, version id...). */
void mc_client_reply_error_full(const struct mc_client_token *t, int status,
                                const struct mc_proto_error *e);

/*
 * Zero-copy success reply: encode the body straight into the connection's output buffer.
 *   struct mc_wbuf *w = mc_client_reply_begin(&tok);
 *   if (w) { ...mc_wbuf_*(w, ...) or an engine encoder...; }
 *   mc_client_reply_end(&tok, 0);
 * begin returns NULL when the connection is gone (end must still be called). end(status
 * != 0) or a wbuf error discards the body and sends an error reply with that status.
 * Nothing else may be replied on this connection between begin and end.
 */
struct mc_wbuf *mc_client_reply_begin(const struct mc_client_token *t);
void mc_client_reply_end(const struct mc_client_token *t, int status);

/* Streamed reply part (flag MORE); does not consume the token. Returns 0 or MC_ESHUTDOWN
 * when the connection is gone (stop streaming and send the final reply anyway). */
int mc_client_reply_more(const struct mc_client_token *t, const void *body, size_t len);

/* Bytes queued but not yet written on the token's connection (0 when gone): lets a
 * streaming producer pace itself. */
size_t mc_client_conn_pending_bytes(const struct mc_client_conn *conn);

/* The connection's queued output is at or over opts.max_output_bytes, or it has output queued
 * while the server-wide max_total_output_bytes is reached: a producer of replies it can defer
 * (a confirmed read) should hold them. When true, the server notes the waiter and, once a
 * flush brings the output back under the limit (or the connection closes, or the total falls
 * back under 3/4 of the budget), keeps the loop's next poll from blocking, so the holder's next
 * loop pass (a prepare callback) finds room. False for a closed connection (its replies are
 * dropped at once). */
bool mc_client_conn_output_full(struct mc_client_conn *conn);
/* How many times such a waiter was woken so far (its output drained, or its connection
 * closed): a holder that saw this unchanged since its last look knows no held reply can have
 * become sendable. */
uint64_t mc_client_server_drain_wakes(const struct mc_client_server *s);

/*
 * In-process connection (the node's HTTP API, src/http/local.c): no socket. Request frames
 * are fed with mc_client_conn_local_feed; replies are handed to out(ctx, frames, len) once
 * per flush, batched like socket writes (the bytes are valid during the call only);
 * out(ctx, NULL, 0) says the connection closed (server stop, mc_client_conn_close). It runs
 * as principal (NULL = anonymous) and never idles out. Loop thread only, like everything here.
 * max_inflight (> 0) replaces opts.max_inflight_per_conn for this connection: it carries every
 * HTTP connection's requests, bounded on the owner's side (local.c's slot table), and the cap
 * meant for one client would let one pipelining HTTP client stall every other behind it.
 */
typedef void (*mc_client_local_out_fn)(void *ctx, const uint8_t *frames, size_t len);
int mc_client_server_local_open(struct mc_client_server *s, const struct mc_principal *principal,
                                uint32_t max_inflight, mc_client_local_out_fn out, void *ctx,
                                struct mc_client_conn **conn);
/* Take request frames (any prefix of a frame stream). Returns the bytes taken: fewer than len
 * while the connection's read buffer is full (in-flight limit reached): feed the rest later. */
size_t mc_client_conn_local_feed(struct mc_client_conn *c, const uint8_t *frames, size_t len);

/* Close a connection now (queued output is dropped). Unanswered requests still accept
 * (and drop) their replies. */
void mc_client_conn_close(struct mc_client_conn *conn);

/* Peer address "127.0.0.1:50123" of a connection (for logs); "" when gone. */
const char *mc_client_conn_peer(const struct mc_client_conn *conn);

#endif
