/* conn.h: HTTP connections on a libuv loop (conn.c) and the request hooks server.c provides. */
#ifndef MC_HTTP_CONN_H
#define MC_HTTP_CONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "http/h1.h"
#include "http/internal.h"

/*
 * One loop thread owns the listener and every connection (the node's loop in-process, the
 * server's own thread in loopback mode). A connection reads, parses (h1.c) and hands one
 * complete request at a time to server.c (mc_http_on_request); the next one is parsed only
 * once the answer is written (mc_http_conn_respond), so pipelined requests are answered in
 * order; input that arrives meanwhile is held aside (reading pauses when that is full). Worker
 * threads hand finished requests back with mc_http_io_worker_done (one uv_async wake-up for however
 * many are queued).
 */

#define MC_HTTP_DRAIN_TIMEOUT_MS 2000 /* after a final answer: discard input this long */

enum mc_http_phase {
    RQ_NEW,    /* being received / routed */
    RQ_LOCAL,  /* with the node (in-process): local_done comes back on the loop */
    RQ_WORKER, /* a worker fills r; back through mc_http_io_worker_done */
};

struct mc_http_conn {
    uv_tcp_t tcp;
    struct mc_http_io *io;
    struct mc_http_server *srv;
    struct mc_http_conn *prev, *next; /* io's list of open connections */
    struct mc_http_conn *done_next;   /* io's list of worker completions */
    struct mc_tls *tls;               /* HTTPS session; NULL = plain */
    char *cin;       /* READ_BYTES: TLS ciphertext; plain: input held while busy; discarded input */
    size_t held_len; /* plain, busy: bytes held in cin until the answer */
    char *in;        /* plaintext input; in_len < in_cap (room for a NUL) */
    size_t in_len, in_cap;
    struct mc_h1_req h;
    bool have_head;      /* h holds the current request's parsed head */
    bool continue_sent;  /* 100 Continue already sent for it */
    bool busy;           /* the request is with server.c (until mc_http_conn_respond) */
    bool in_process;     /* inside process(): a respond there does not recurse */
    bool close_after;    /* close once the answer is out (no more requests read) */
    bool draining;       /* write side shut: discarding input until EOF or the drain timeout */
    bool closing;        /* uv_close called */
    bool free_later;     /* closed while with a worker: freed when the worker hands it back */
    bool writing;        /* a uv_write of wout is in flight */
    bool reading;        /* uv_read_start in effect */
    bool hold_full;      /* busy and the holding room (cin) is used up: reading paused */
    bool eof;            /* the client half-closed: answer what is buffered, then close */
    bool notify_sent;    /* TLS close_notify queued: the session says no more */
    char nul_saved;      /* the byte after the body, replaced by a NUL while busy */
    struct mc_wbuf out;  /* queued output (plaintext; TLS: turned into ciphertext at flush) */
    struct mc_wbuf wout; /* the bytes of the uv_write in flight */
    uv_write_t wreq;
    uv_shutdown_t sreq;
    uint64_t last_active_ms;
    uint64_t last_write_ms; /* the in-flight uv_write began or last made progress */
    size_t last_wq;         /* tcp.write_queue_size at last_write_ms */
    uint64_t send_since_ms; /* output first became pending (the socket was full); 0 = it has
                               drained completely since (send_timeout_ms) */
    uint64_t req_start_ms;  /* first byte of the request being received; 0 = none */
    /* server.c's request state (reused by each request on the connection) */
    enum mc_http_phase phase;
    bool forward;      /* RQ_WORKER: resend k through the loopback client, then finish */
    uint64_t local_id; /* RQ_LOCAL: the in-process request (for cancel) */
    struct mc_http_request q;
    struct mc_http_call k;
    struct mc_http_response r;
};

/* Loop thread: listen on sa. 0, MC_EIO (bind/listen failed) or MC_ENOMEM. */
int mc_http_io_start(struct mc_http_server *s, uv_loop_t *loop, const struct sockaddr_in *sa,
                     struct mc_http_io **out);
int mc_http_io_port(const struct mc_http_io *io);
/* Any thread: a worker is done with c (its r is filled). */
void mc_http_io_worker_done(struct mc_http_io *io, struct mc_http_conn *c);
/* Loopback mode, any thread: run mc_http_io_stop on the loop thread. */
void mc_http_io_stop_async(struct mc_http_io *io);
/* Loop thread, once no worker holds a connection: hand back finished work, close every
 * connection and the listener. The io frees itself when the last handle has closed. */
void mc_http_io_stop(struct mc_http_io *io);

/* Loop thread: write c->r as the answer to the current request, then read the next one. */
void mc_http_conn_respond(struct mc_http_conn *c);

/* ---- provided by server.c ---- */

/* Loop thread: c->h holds a complete request, its body NUL-terminated at c->in + head_len. */
void mc_http_on_request(struct mc_http_conn *c);
/* Loop thread: a worker handed c back (phase RQ_WORKER). */
void mc_http_after_worker(struct mc_http_conn *c);
/* Loop thread: c is closing while busy; anything with the node must forget it. */
void mc_http_on_conn_closing(struct mc_http_conn *c);
/* Free server.c's per-connection state. */
void mc_http_conn_state_free(struct mc_http_conn *c);

#endif
