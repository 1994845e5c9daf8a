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
 * server's own thread in loopback mode). A connection reads, parses (h1.c) and hands complete
 * requests to server.c (mc_http_on_request) a batch at a time: one request, or up to
 * MC_HTTP_PIPELINE_MAX pipelined GET/HEAD requests without a body that are already buffered
 * (reads only: they may run concurrently, so the node serves them together, one ReadIndex
 * round and one write for all). A write or a request with a body is always a batch of its
 * own, so a pipelined read sees every write sent before it. Answers are written in request
 * order (mc_http_conn_respond); the next batch is parsed only once the last answer of this one
 * is written; input that arrives meanwhile is held aside (reading pauses when that is full).
 * Worker threads hand finished requests back with mc_http_io_worker_done (one uv_async wake-up
 * for however many are queued).
 */

#define MC_HTTP_DRAIN_TIMEOUT_MS 2000 /* after a final answer: discard input this long */

enum mc_http_phase {
    RQ_NEW,    /* being received / routed */
    RQ_LOCAL,  /* with the node (in-process): local_done comes back on the loop */
    RQ_WORKER, /* a worker fills r; back through mc_http_io_worker_done */
};

/* One request of a connection's batch and server.c's state for it. */
struct mc_http_exchange {
    struct mc_http_conn *c;
    struct mc_http_exchange *done_next; /* io's list of worker completions */
    struct mc_h1_req h;                 /* batch[0]: parsed in c->in; later ones: in raw */
    char *raw;                          /* batch[1..]: a copy of the request's head */
    size_t raw_cap;
    bool answered;    /* r is final: written once those before it are, and there is room */
    bool head_only;   /* the answer's framing, taken at dispatch (x0's head lives in c->in) */
    bool http10;      /* ... */
    bool keep_alive;  /* ... */
    bool worker_wait; /* RQ_WORKER: waits for a worker share of its connection (server.c) */
    enum mc_http_phase phase;
    bool forward;      /* RQ_WORKER: resend k through the loopback client, then finish */
    uint64_t local_id; /* RQ_LOCAL: the in-process request (for cancel) */
    struct mc_http_request q;
    struct mc_http_call k;
    struct mc_http_response r;
};

struct mc_http_conn {
    uv_tcp_t tcp;
    struct mc_http_io *io;
    struct mc_http_server *srv;
    struct mc_http_conn *prev, *next; /* io's list of open connections */
    struct mc_http_conn *gap_next;    /* io's list of batches with answers held behind a gap */
    bool in_gap_list;
    struct mc_tls *tls; /* HTTPS session; NULL = plain */
    char *cin;       /* READ_BYTES: TLS ciphertext; plain: input held while busy; discarded input */
    size_t held_len; /* plain, busy: bytes held in cin until the answer */
    char *in;        /* plaintext input; in_len < in_cap (room for a NUL) */
    size_t in_len, in_cap;
    bool have_head;      /* x0.h holds the first request's parsed head */
    bool continue_sent;  /* 100 Continue already sent for it */
    bool busy;           /* the request is with server.c (until mc_http_conn_respond) */
    bool in_process;     /* inside process(): a respond there does not recurse */
    bool close_after;    /* close once the answer is out (no more requests read) */
    bool draining;       /* write side shut: discarding input until EOF or the drain timeout */
    bool closing;        /* uv_close called */
    bool free_later;     /* closed while with a worker: freed when the workers hand it back */
    bool final_sent;     /* an answer said Connection: close: no later one is written */
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
    /* The batch with server.c (busy): x0, then xs[0 .. n_batch - 2] (allocated at the first
     * batch of more than one request, kept while the connection lives). */
    struct mc_http_exchange x0;
    struct mc_http_exchange *xs;
    uint32_t n_batch;   /* requests in the batch */
    uint32_t n_written; /* of them, answers written (in order) */
    uint32_t at_worker; /* of them, with a worker thread (queued or running) */
    size_t batch_bytes; /* c->in bytes of the batch's requests after x0 */
};

/* Loop thread: listen on sa. 0, MC_EIO (bind/listen failed) or MC_ENOMEM. */
int mc_http_io_start(struct mc_http_server *s, uv_loop_t *loop, const struct sockaddr_in *sa,
                     struct mc_http_io **out);
int mc_http_io_port(const struct mc_http_io *io);
/* Any thread: a worker is done with x (its r is filled). */
void mc_http_io_worker_done(struct mc_http_io *io, struct mc_http_exchange *x);
/* Loopback mode, any thread: run mc_http_io_stop on the loop thread. */
void mc_http_io_stop_async(struct mc_http_io *io);
/* Loop thread, once no worker holds a connection: hand back finished work, close every
 * connection and the listener. The io frees itself when the last handle has closed. */
void mc_http_io_stop(struct mc_http_io *io);

/* Loop thread: x->r is the answer to x's request; it is written once those before it are and
 * the output has room (a batch's answers are queued no faster than the socket takes them), and
 * after the batch's last the next batch is read. */
void mc_http_conn_respond(struct mc_http_exchange *x);
/* Loop thread: the batch's request i (i < c->n_batch). */
struct mc_http_exchange *mc_http_conn_exchange(struct mc_http_conn *c, uint32_t i);

/* ---- provided by server.c ---- */

/* Loop thread: x->h holds a complete request; body: x->h.body_len bytes at body, NUL-terminated. */
void mc_http_on_request(struct mc_http_exchange *x, const char *body);
/* Loop thread: a worker handed x back (phase RQ_WORKER). */
void mc_http_after_worker(struct mc_http_exchange *x);
/* Loop thread: one of c's requests left the workers: a waiting one of its batch may go. */
void mc_http_worker_share_freed(struct mc_http_conn *c);
/* Loop thread: x's connection is closing while x is unanswered; the node must forget it. */
void mc_http_on_exchange_closing(struct mc_http_exchange *x);
/* Free server.c's state of one exchange. */
void mc_http_exchange_state_free(struct mc_http_exchange *x);

#endif
