/* client_server.c: libuv listener + connections for the client protocol, batched reply flushing. */
#include "net/client_server.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "metacenter/error.h"
#include "obs/metrics.h"
#include "security/authz.h"
#include "security/tls.h"
#include "util/clock.h"
#include "util/log.h"

#define DEFAULT_MAX_CONNECTIONS 1000u /* = serve's --max-client-connections default */
#define DEFAULT_MAX_INFLIGHT    4096u
/* Output queued per connection before reading pauses (B2 b): twice the largest reply (4 MiB) is
 * plenty to keep a fast reader busy; the hard cap is 2x this + one frame (20 MiB). */
#define DEFAULT_MAX_OUTPUT_BYTES (8u * 1024 * 1024)
/* The server-wide budget (B2 a) resumes the connections it paused once the total is back under
 * this share of it: hysteresis, so they do not pause and resume on every reply. */
/* Over the budget, a connection holding at most this much (or its fair share, if larger) goes
 * on: a few typical replies, so that clients that read keep their pace. */
#define BUDGET_MIN_SHARE_BYTES  (64u * 1024)
#define BUDGET_LOW_WATER_NUM    3u
#define BUDGET_LOW_WATER_DEN    4u
#define DEFAULT_READ_TIMEOUT_MS 10000u
#define DEFAULT_MAX_LIST_KEYS   1000u
/* Timeout sweeps run at least this often and at most this rarely. */
#define SWEEP_MIN_MS 10u
#define SWEEP_MAX_MS 1000u
/* TLS: ciphertext read per uv read callback; plaintext pulled per step into rbuf. */
#define TLS_READ_BYTES (64u * 1024)
#define TLS_PULL_BYTES (16u * 1024)
/* Failed AUTH attempts before the connection is closed (slows token guessing). */
#define MAX_AUTH_FAILURES 3
/* AUTH frames per connection with auth on, successful or not (R2: each costs a hash per
 * principal on the loop; a client authenticates once per connection, a few more to switch
 * principals). */
#define MAX_AUTH_FRAMES    8
#define INITIAL_READ_BYTES (64u * 1024)
/* A read buffer grown to this (a big frame) goes back to INITIAL_READ_BYTES once parsed. */
#define SHRINK_RBUF_BYTES (4u * INITIAL_READ_BYTES)
/* ... and one under that goes back once its connection has been quiet this long (on_timer). */
#define RBUF_IDLE_SHRINK_MS 1000
/* A write buffer larger than this is released once written (after a one-off big reply). */
#define KEEP_BUFFER_BYTES (1u * 1024 * 1024)
/* Graceful stop gives slow peers this long to take their last replies; a connection closing
 * after a protocol error (or refused at accept) gets as long for its error reply. */
#define STOP_GRACE_MS  1000u
#define CLOSE_GRACE_MS 1000u
/* Passes over the dirty list per flush (dispatch inside a flush can dirty more). */
#define FLUSH_PASSES 4
/* Frames one connection may have parsed and answered per loop pass (R1: synchronously answered
 * requests, PING, stale reads, refusals, never count as in flight): the rest wait for the next
 * pass, so one pipelining client cannot hold the loop that Raft's ticks share. */
#define FRAME_BUDGET 256u

enum conn_state { CONN_OPEN, CONN_CLOSING, CONN_CLOSED };

/* The server's intrusive lists of connections waiting for a pass (D3): each connection is on a
 * list at most once and holds a reference while on it; list_drain takes a whole list and
 * visits it, so what a visit pushes goes on a fresh list, walked by the next drain. */
enum conn_list {
    LIST_DIRTY,   /* output to flush, reading to resume: flush_all (FLUSH_PASSES drains) */
    LIST_YIELDED, /* frame budget spent: resumed once per pass by on_wake */
    LIST_BUDGET,  /* held by the output budget: marked dirty when the total falls back (B2 a) */
    N_LISTS
};

struct conn_link {
    struct mc_client_conn *next;
    bool on; /* on the list (holding a ref), taken by a running drain included */
};

/* Per-connection events a client can cause at its connection rate: each kind is logged at most
 * once a second (MC_LOG_LIMIT_MS), its line saying how many were left out (R4). */
enum conn_log {
    LOG_REJECTED,
    LOG_PROTOCOL_ERROR,
    LOG_AUTH_FAILED,
    LOG_TLS_FAILED,
    LOG_HANDSHAKE_TIMEOUT,
    LOG_AUTH_TIMEOUT,
    LOG_SEND_TIMEOUT,
    LOG_CLOSE_GRACE,
    LOG_OUTPUT_OVERFLOW,
    LOG_NO_MEMORY,
    LOG_BUDGET_REACHED, /* server-wide, once per transition (rate-limited all the same) */
    LOG_BUDGET_RELEASED,
    LOG_KINDS
};

struct mc_client_conn {
    struct mc_client_server *srv;
    uv_tcp_t tcp;
    uint32_t refs;     /* 1 while the handle lives + 1 per unanswered request */
    uint32_t inflight; /* dispatched, not yet answered */
    enum conn_state state;
    bool read_paused;
    bool in_reply;     /* between reply_begin and reply_end */
    bool drain_waiter; /* mc_client_conn_output_full said true: wake the loop once it drains */
    bool budget_spent; /* process_frames stopped at FRAME_BUDGET: on_wake resumes it */
    struct conn_link link[N_LISTS];
    struct mc_client_conn *prev, *next; /* server's list of conns with a live handle */
    uint8_t *rbuf;                      /* input: [0, rlen) filled, frames parsed from rpos */
    size_t rcap, rlen;
    size_t rpos;         /* parsed prefix kept over a yield; 0 whenever reading is on */
    struct mc_wbuf out;  /* replies accumulating */
    struct mc_wbuf wout; /* replies being written by wreq */
    size_t out_counted;  /* this connection's share of srv->out_total (account_output) */
    size_t wout_off;
    bool writing;
    uv_write_t wreq;
    uint64_t write_start_ms; /* when the write in flight began or last made progress */
    size_t write_queue_seen; /* smallest libuv write queue seen for it (progress = shrinking) */
    uint64_t closing_ms;     /* when the state became CONN_CLOSING */
    size_t begin_off;
    uint64_t last_active_ms;
    uint64_t frame_start_ms; /* when the first byte of the partial frame in rbuf arrived */
    const struct mc_principal *principal; /* set by a successful AUTH; NULL = anonymous */
    uint32_t auth_failures;
    uint32_t auth_frames; /* AUTH frames received with auth on (MAX_AUTH_FRAMES) */
    char peer[48];
    struct mc_tls *tls; /* NULL = plaintext connection */
    uint8_t *cbuf;      /* TLS: ciphertext read buffer (TLS_READ_BYTES) */
    uint64_t accepted_ms;
    mc_client_local_out_fn local_out; /* in-process connection: replies go here, no socket */
    void *local_ctx;
    uint32_t max_inflight; /* reading pauses at this many requests in flight: the server's
                              opts.max_inflight_per_conn, or the in-process owner's own bound */
};

struct mc_client_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_prepare_t prepare;
    uv_check_t check;
    uv_timer_t timer; /* idle sweeps; stop grace */
    uv_idle_t wake;   /* started for one loop pass: the next poll does not block (wake_loop) */
    uv_tcp_t spare;   /* accepts (and closes) a connection we have no memory for (R11) */
    bool spare_busy;  /* spare is accepted and closing */
    bool spare_again; /* another connection waits for the spare (accepted once it is closed) */
    uint64_t test_accept_nomem; /* MC_TEST_CLIENT_ACCEPT_NOMEM: accepts left to fail (tests) */
    struct mc_client_handler handler;
    void *ctx;
    struct mc_client_server_opts opts;
    int port;
    struct mc_client_conn *conns;         /* live handles */
    struct mc_client_conn *list[N_LISTS]; /* enum conn_list heads */
    struct mc_log_limit logs[LOG_KINDS];  /* enum conn_log */
    uint32_t n_local; /* in-process conns among n_conns: not counted against the limit */
    uint32_t n_conns; /* conns whose socket is not closed yet, CLOSING and CLOSED-with-the-close-
                         pending too (counted against max_connections, less n_local) */
    int handles;      /* open libuv handles (server's own + connections) */
    uint32_t refs;
    bool stopping;
    bool own_closed;
    size_t out_total; /* reply bytes queued over all connections: the sum of out_counted */
    bool over_budget; /* out_total reached max_total_output_bytes, not yet back under 3/4 */
    uint64_t test_local_close_at; /* MC_TEST_HTTP_LOCAL_CLOSE_AFTER (0 = unset) */
    uint64_t local_requests;      /* requests received over in-process conns (when it is set) */
    void (*done)(void *arg);
    void *done_arg;
    struct mc_client_server_stats stats;
};

static void flush_all(struct mc_client_server *s);
static void close_conn(struct mc_client_conn *c);
static void process_input(struct mc_client_conn *c);
static bool may_read(const struct mc_client_conn *c);
static bool budget_holds(const struct mc_client_conn *c);
static bool output_has_room(const struct mc_client_conn *c);
static void budget_wait(struct mc_client_conn *c);
static void account_output(struct mc_client_conn *c);
static void start_reading(struct mc_client_conn *c);
static void append_error(struct mc_client_conn *c, uint8_t op, uint64_t rid, int status,
                         const struct mc_proto_error *e);

/* Log one per-connection event of kind k, rate-limited; suppressed= counts the events left out
 * since the previous line of that kind. One clock read per event (errors only). */
#define CONN_LOG(s, k, level, msg, fmt, ...)                                                       \
    do {                                                                                           \
        uint64_t sup_;                                                                             \
        if (mc_log_limit_allow(&(s)->logs[k], mc_mono_ms(), &sup_)) {                              \
            mc_log(level, msg, fmt " suppressed=%llu", __VA_ARGS__, (unsigned long long)sup_);     \
        }                                                                                          \
    } while (0)

static void read_stop(struct mc_client_conn *c)
{
    if (!c->local_out) {
        uv_read_stop((uv_stream_t *)&c->tcp);
    }
}

/* ---- lifetimes ---- */

static void server_unref(struct mc_client_server *s)
{
    assert(s->refs > 0);
    if (--s->refs == 0) {
        free(s);
    }
}

static void conn_unref(struct mc_client_conn *c)
{
    assert(c->refs > 0);
    if (--c->refs == 0) {
        assert(c->state == CONN_CLOSED);
        struct mc_client_server *s = c->srv;
        mc_wbuf_free(&c->out);
        mc_wbuf_free(&c->wout);
        free(c->rbuf);
        free(c->cbuf);
        mc_tls_free(c->tls);
        free(c);
        server_unref(s);
    }
}

static void on_handle_closed(uv_handle_t *h)
{
    struct mc_client_server *s = h->data;
    assert(s->handles > 0);
    if (--s->handles == 0 && s->stopping) {
        if (s->done) {
            s->done(s->done_arg);
        }
        server_unref(s); /* the owner's reference */
    }
}

/* Put c on list l unless it is on it already (a drain in progress has not reached it yet:
 * that drain visits it). */
static void list_push(struct mc_client_conn *c, enum conn_list l)
{
    struct mc_client_server *s = c->srv;
    if (c->link[l].on) {
        return;
    }
    c->link[l].on = true;
    c->refs++; /* released by list_drain */
    c->link[l].next = s->list[l];
    s->list[l] = c;
}

/* Take list l whole and visit each connection on it (visit may be NULL: just release them).
 * The reference the list holds keeps each one alive through its visit; one the visit closes
 * is freed here. Returns false if the list was empty. */
static bool list_drain(struct mc_client_server *s, enum conn_list l,
                       void (*visit)(struct mc_client_conn *c))
{
    struct mc_client_conn *c = s->list[l];
    s->list[l] = NULL;
    if (!c) {
        return false;
    }
    while (c) {
        struct mc_client_conn *next = c->link[l].next; /* alive: it holds its list ref */
        c->link[l].on = false;
        c->link[l].next = NULL;
        if (visit) {
            visit(c);
        }
        conn_unref(c);
        c = next;
    }
    return true;
}

static void on_wake(uv_idle_t *h);

static void close_own_handles(struct mc_client_server *s)
{
    if (s->own_closed) {
        return;
    }
    s->own_closed = true;
    list_drain(s, LIST_YIELDED, NULL); /* on_wake runs no more: release the references */
    list_drain(s, LIST_BUDGET, NULL);  /* no connection is left to resume */
    uv_close((uv_handle_t *)&s->wake, on_handle_closed);
    uv_close((uv_handle_t *)&s->prepare, on_handle_closed);
    uv_close((uv_handle_t *)&s->check, on_handle_closed);
    uv_close((uv_handle_t *)&s->timer, on_handle_closed);
}

/* Work is waiting for the next loop pass (a read held for a full output, frames left over by
 * the frame budget): an active idle handle makes that pass's poll return at once instead of
 * blocking until some unrelated event, and on_wake resumes the yielded connections. */
static void wake_loop(struct mc_client_server *s)
{
    if (!s->own_closed) {
        uv_idle_start(&s->wake, on_wake);
    }
}

/* A connection spent its frame budget: on_wake resumes it in the next loop pass. It stays off
 * the dirty list meanwhile: flush_all, run per uv_write completion, never walks it. */
static void yield_conn(struct mc_client_conn *c)
{
    list_push(c, LIST_YIELDED);
    wake_loop(c->srv);
}

/* on_wake's visit: resume a yielded connection's buffered frames (a closed one is skipped). */
static void resume_yielded(struct mc_client_conn *c)
{
    if (c->state == CONN_OPEN && c->budget_spent) {
        c->budget_spent = false;
        if (may_read(c)) {
            process_input(c); /* frames already buffered first */
        } else {
            /* An in-flight or output limit holds it: flush_conn resumes it once a reply or a
             * completed write lets it read (read_paused is set), or the budget's release. */
            assert(c->read_paused);
            budget_wait(c);
        }
    }
}

/* The idle phase, once per loop pass and before the prepare phase: what the yielded
 * connections dispatch here is proposed by the node's prepare in this same pass. A connection
 * that yields again goes on the (new) list and restarts the handle; with nothing yielded or
 * waiting the handle stays stopped, so the loop blocks in poll as usual. */
static void on_wake(uv_idle_t *h)
{
    struct mc_client_server *s = h->data;
    uv_idle_stop(h);
    list_drain(s, LIST_YIELDED, resume_yielded);
    /* Replies answered inline (PING...) are on the dirty list: this pass's prepare flushes. */
}

/* A deferred producer waits on c's output: wake it once the output is under the limit (and the
 * server-wide budget does not hold it). */
static void drain_check(struct mc_client_conn *c)
{
    if (c->drain_waiter && (c->state == CONN_CLOSED || output_has_room(c))) {
        c->drain_waiter = false;
        c->srv->stats.drain_wakes++;
        wake_loop(c->srv);
    }
}

static void mark_dirty(struct mc_client_conn *c)
{
    list_push(c, LIST_DIRTY); /* flush_all flushes it */
}

/* ---- the server-wide output budget (B2 a) ---- */

/* Reply bytes c holds: accumulating and in the write (what max_output_bytes bounds too); none
 * once closed (its replies are dropped; the buffers go with the socket's close). */
static size_t queued_bytes(const struct mc_client_conn *c)
{
    return c->state == CONN_CLOSED ? 0 : c->out.len + (c->writing ? c->wout.len : 0);
}

/* The budget is reached and c holds more than a fair share of it (the budget over
 * max_connections, at least BUDGET_MIN_SHARE_BYTES): it may not read more requests, and its held
 * reads stay held. One under its share goes on, so the clients that read their replies keep
 * their pace while the ones that let replies pile up are held (rev20 R1: holding every
 * connection with a byte queued cut everyone to a few requests per pass). The total stays
 * under about twice the budget plus one pass's replies per connection. */
static bool budget_holds(const struct mc_client_conn *c)
{
    const struct mc_client_server *s = c->srv;
    if (!s->over_budget) {
        return false;
    }
    /* Over max_connections, not the connections open now: a share taken while few were open
     * would stay queued as more arrive and the sum would grow with them (flaky in
     * output_budget_bounds_what_all_connections_hold: 4.85 MiB over a 2 MiB budget). */
    size_t share = s->opts.max_total_output_bytes / s->opts.max_connections;
    if (share < BUDGET_MIN_SHARE_BYTES) {
        share = BUDGET_MIN_SHARE_BYTES;
    }
    return queued_bytes(c) > share;
}

/* A held read of c may be answered now: its own output under max_output_bytes and the budget
 * not holding it (the one test of drain_check and mc_client_conn_output_full). */
static bool output_has_room(const struct mc_client_conn *c)
{
    return mc_client_conn_pending_bytes(c) < c->srv->opts.max_output_bytes && !budget_holds(c);
}

/* c cannot read (or has a held read) because of the budget: mark it dirty when the budget is
 * released. Only the connections held are listed, so the release walks no others. */
static void budget_wait(struct mc_client_conn *c)
{
    if (c->state == CONN_OPEN && budget_holds(c)) {
        list_push(c, LIST_BUDGET);
    }
}

/* Budget released: the flush resumes c's reading (flush_conn, may_read) and wakes a held read
 * (drain_check); if the total reaches the budget again, it goes back on the list. */
static void budget_release(struct mc_client_conn *c)
{
    if (c->state != CONN_CLOSED) {
        mark_dirty(c);
    }
}

/* The total moved: enter or leave the over-budget state (logged once per transition). */
static void budget_check(struct mc_client_server *s)
{
    size_t budget = s->opts.max_total_output_bytes;
    if (!s->over_budget && s->out_total >= budget) {
        s->over_budget = true;
        s->stats.budget_hits++;
        CONN_LOG(s, LOG_BUDGET_REACHED, MC_LOG_WARN, "client_output_budget_reached",
                 "queued=%zu max_total_output_bytes=%zu open=%u", s->out_total, budget,
                 s->n_conns - s->n_local);
    } else if (s->over_budget &&
               s->out_total < budget / BUDGET_LOW_WATER_DEN * BUDGET_LOW_WATER_NUM) {
        s->over_budget = false;
        CONN_LOG(s, LOG_BUDGET_RELEASED, MC_LOG_INFO, "client_output_budget_released", "queued=%zu",
                 s->out_total);
        list_drain(s, LIST_BUDGET, budget_release);
        wake_loop(s); /* the flush of what was marked must not wait for an unrelated event */
    }
}

/* Bring out_total up to date with c's buffers: called wherever they grow (a reply appended),
 * shrink (a write done) or stop counting (close), so the total is exact, not estimated. */
static void account_output(struct mc_client_conn *c)
{
    struct mc_client_server *s = c->srv;
    size_t now = queued_bytes(c);
    if (now == c->out_counted) {
        return;
    }
    assert(s->out_total >= c->out_counted);
    s->out_total = s->out_total - c->out_counted + now;
    c->out_counted = now;
    if (s->out_total > s->stats.output_bytes_peak) {
        s->stats.output_bytes_peak = s->out_total;
    }
    budget_check(s);
}

#ifndef NDEBUG
/* on_timer (debug builds): the running total is the sum over the connections (closed ones count
 * 0 and are off s->conns). O(connections), like the sweep it runs in. */
static void check_output_total(const struct mc_client_server *s)
{
    size_t sum = 0;
    for (const struct mc_client_conn *c = s->conns; c; c = c->next) {
        assert(!c->in_reply && c->out_counted == queued_bytes(c));
        sum += c->out_counted;
    }
    assert(sum == s->out_total);
}
#endif

/* ---- output ---- */

static void on_write(uv_write_t *req, int status)
{
    struct mc_client_conn *c = req->data;
    c->writing = false;
    c->wout.len = 0;
    c->wout.err = 0;
    account_output(c);
    if (c->wout.cap > KEEP_BUFFER_BYTES) {
        mc_wbuf_free(&c->wout);
    }
    if (status < 0) {
        if (c->state != CONN_CLOSED) {
            MC_DEBUG("client_conn_write_failed", "peer=%s err=%s", c->peer, uv_strerror(status));
            close_conn(c);
        }
    } else if (c->state != CONN_CLOSED) {
        mark_dirty(c);
        flush_all(c->srv);
    }
    conn_unref(c); /* the write's reference */
}

/* TLS: turn the plaintext replies queued in c->out into ciphertext (plus any handshake
 * records), in place: out holds only plaintext whenever no write is in flight. Replies queued
 * before the handshake finished (a refusal at accept) are dropped: we close anyway. */
static int tls_encrypt(struct mc_client_conn *c)
{
    if (c->out.len > 0) {
        if (mc_tls_established(c->tls) && mc_tls_write(c->tls, c->out.data, c->out.len) != 0) {
            CONN_LOG(c->srv, LOG_TLS_FAILED, MC_LOG_INFO, "client_tls_failed", "peer=%s err=\"%s\"",
                     c->peer, mc_tls_error(c->tls));
            close_conn(c);
            return MC_EPROTO;
        }
        c->out.len = 0;
    }
    if (mc_tls_take_all(c->tls, &c->out) != 0) {
        c->out.err = 0;
        close_conn(c);
        return MC_ENOMEM;
    }
    return 0;
}

/* Write out what is queued: try_write first (usually everything), uv_write the rest. */
static void flush_conn(struct mc_client_conn *c)
{
    struct mc_client_server *s = c->srv;
    if (c->state == CONN_CLOSED || c->writing || c->in_reply) {
        return;
    }
    if (c->tls && tls_encrypt(c) != 0) {
        return;
    }
    if (c->local_out) {
        if (c->out.len > 0) {
            s->stats.writes++;
            c->local_out(c->local_ctx, c->out.data, c->out.len);
            c->out.len = 0;
        }
    } else if (c->out.len > 0) {
        uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        s->stats.writes++;
        if (n == UV_EAGAIN || n == UV_ENOSYS) {
            n = 0;
        } else if (n < 0) {
            MC_DEBUG("client_conn_write_failed", "peer=%s err=%s", c->peer, uv_strerror(n));
            close_conn(c);
            return;
        }
        if ((size_t)n == c->out.len) {
            c->out.len = 0;
            if (c->out.cap > KEEP_BUFFER_BYTES) {
                mc_wbuf_free(&c->out);
            }
        } else {
            /* Hand the rest to uv_write; new replies accumulate in the other buffer. */
            struct mc_wbuf t = c->wout;
            c->wout = c->out;
            c->out = t;
            c->out.len = 0;
            c->wout_off = (size_t)n;
            b = uv_buf_init((char *)c->wout.data + n, (unsigned)(c->wout.len - (size_t)n));
            c->wreq.data = c;
            int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
            if (rc < 0) {
                close_conn(c);
                return;
            }
            c->writing = true;
            c->write_start_ms = mc_mono_ms();
            c->write_queue_seen = SIZE_MAX;
            c->refs++;
        }
    }
    account_output(c); /* what was written left the output */
    drain_check(c);
    if (c->state == CONN_CLOSING && !c->writing && c->out.len == 0) {
        close_conn(c);
        return;
    }
    /* Resume reading once the in-flight and output limits allow it again; a connection that
     * spent its frame budget waits for on_wake (once per pass, R-1). */
    if (c->read_paused && !c->budget_spent) {
        if (may_read(c)) {
            process_input(c); /* frames already buffered first */
        } else {
            budget_wait(c);
        }
    }
}

static void flush_all(struct mc_client_server *s)
{
    for (int pass = 0; pass < FLUSH_PASSES; pass++) {
        if (!list_drain(s, LIST_DIRTY, flush_conn)) {
            break;
        }
    }
    if (s->stopping && s->n_conns == 0) {
        close_own_handles(s);
    }
}

static void on_prepare(uv_prepare_t *h)
{
    flush_all(h->data);
}

static void on_check(uv_check_t *h)
{
    flush_all(h->data);
}

/* Append one whole reply frame to the connection's output (if it still wants replies). */
static void append_reply(struct mc_client_conn *c, uint8_t op, uint16_t flags, uint64_t rid,
                         int status, const void *body, size_t len)
{
    if (c->state != CONN_OPEN && c->state != CONN_CLOSING) {
        return;
    }
    assert(!c->in_reply);
    int rc = mc_proto_reply_encode(&c->out, op, flags, rid, status, body, len);
    if (rc == MC_ETOOLARGE && len > MC_PROTO_MAX_BODY_BYTES) {
        c->out.err = 0;
        struct mc_proto_error e = {0};
        e.message = mc_proto_cstr("reply body over the frame limit");
        append_error(c, op, rid, MC_ETOOLARGE, &e);
        return;
    }
    if (rc != 0) {
        /* Output cap reached: the peer does not read its replies. Drop it. */
        c->out.err = 0;
        CONN_LOG(c->srv, LOG_OUTPUT_OVERFLOW, MC_LOG_WARN, "client_conn_output_overflow",
                 "peer=%s queued=%zu", c->peer, c->out.len);
        close_conn(c);
        return;
    }
    account_output(c);
    mark_dirty(c);
}

static void append_error(struct mc_client_conn *c, uint8_t op, uint64_t rid, int status,
                         const struct mc_proto_error *e)
{
    mc_metrics_error(status); /* every error reply is counted here, whoever sends it */
    if (c->state != CONN_OPEN && c->state != CONN_CLOSING) {
        return;
    }
    assert(!c->in_reply && status != 0);
    /* Encode straight into the output buffer: error replies (NoSuchKey...) allocate nothing. */
    size_t off = c->out.len;
    if (mc_wbuf_reserve(&c->out, MC_PROTO_HEADER_BYTES)) {
        mc_proto_error_put(&c->out, e);
    }
    if (mc_wbuf_error(&c->out) || c->out.len - off > MC_PROTO_MAX_FRAME_BYTES) {
        c->out.err = 0;
        c->out.len = off;
        CONN_LOG(c->srv, LOG_OUTPUT_OVERFLOW, MC_LOG_WARN, "client_conn_output_overflow",
                 "peer=%s queued=%zu", c->peer, c->out.len);
        close_conn(c);
        return;
    }
    struct mc_proto_header h = {
        .length = (uint32_t)(c->out.len - off - 4),
        .version = MC_PROTO_VERSION,
        .op = (uint8_t)(op | MC_PROTO_REPLY_BIT),
        .flags = 0,
        .request_id = rid,
        .status = status,
    };
    mc_proto_header_put(c->out.data + off, &h);
    account_output(c);
    mark_dirty(c);
}

static void error_msg(struct mc_client_conn *c, uint8_t op, uint64_t rid, int status,
                      const char *msg)
{
    struct mc_proto_error e = {0};
    e.message = mc_proto_cstr(msg ? msg : mc_strerror(status));
    if (e.message.len > MC_PROTO_MAX_STR_BYTES) {
        e.message.len = MC_PROTO_MAX_STR_BYTES;
    }
    append_error(c, op, rid, status, &e);
}

/* ---- replies (public) ---- */

static void consume(const struct mc_client_token *t)
{
    struct mc_client_conn *c = t->conn;
    assert(c->inflight > 0);
    c->inflight--;
    c->srv->stats.replies++;
    if (c->read_paused && c->state == CONN_OPEN) {
        mark_dirty(c); /* the next flush resumes reading */
    }
    conn_unref(c);
}

void mc_client_reply(const struct mc_client_token *t, int status, const void *body, size_t len)
{
    append_reply(t->conn, t->op, 0, t->request_id, status, body, len);
    consume(t);
}

void mc_client_reply_error(const struct mc_client_token *t, int status, const char *message)
{
    assert(status != 0);
    error_msg(t->conn, t->op, t->request_id, status, message);
    consume(t);
}

void mc_client_reply_not_leader(const struct mc_client_token *t, uint64_t leader_id,
                                const char *leader_addr)
{
    struct mc_proto_error e = {0};
    e.message = mc_proto_cstr(leader_id ? "not the leader" : "not the leader; leader unknown");
    e.leader_id = leader_id;
    e.leader_addr = mc_proto_cstr(leader_addr);
    if (e.leader_addr.len > MC_PROTO_MAX_STR_BYTES) {
        e.leader_addr.len = 0;
    }
    append_error(t->conn, t->op, t->request_id, MC_ENOTLEADER, &e);
    consume(t);
}

void mc_client_reply_error_full(const struct mc_client_token *t, int status,
                                const struct mc_proto_error *e)
{
    assert(status != 0);
    append_error(t->conn, t->op, t->request_id, status, e);
    consume(t);
}

struct mc_wbuf *mc_client_reply_begin(const struct mc_client_token *t)
{
    struct mc_client_conn *c = t->conn;
    if (c->state != CONN_OPEN) {
        return NULL;
    }
    assert(!c->in_reply);
    c->begin_off = c->out.len;
    if (!mc_wbuf_reserve(&c->out, MC_PROTO_HEADER_BYTES)) {
        c->out.err = 0;
        c->out.len = c->begin_off;
        close_conn(c);
        return NULL;
    }
    c->in_reply = true;
    return &c->out;
}

void mc_client_reply_end(const struct mc_client_token *t, int status)
{
    struct mc_client_conn *c = t->conn;
    if (c->in_reply) {
        c->in_reply = false;
        size_t body = c->out.len - c->begin_off - MC_PROTO_HEADER_BYTES;
        if (status == 0 && c->out.err) {
            status = c->out.err;
        }
        if (status == 0 && body > MC_PROTO_MAX_BODY_BYTES) {
            status = MC_ETOOLARGE;
        }
        if (status != 0) {
            c->out.err = 0;
            c->out.len = c->begin_off;
            error_msg(c, t->op, t->request_id, status, NULL);
        } else {
            struct mc_proto_header h = {
                .length = (uint32_t)(MC_PROTO_HEADER_BYTES - 4 + body),
                .version = MC_PROTO_VERSION,
                .op = (uint8_t)(t->op | MC_PROTO_REPLY_BIT),
                .flags = 0,
                .request_id = t->request_id,
                .status = 0,
            };
            mc_proto_header_put(c->out.data + c->begin_off, &h);
            account_output(c); /* the body the encoder wrote since begin counts from here */
            mark_dirty(c);
        }
    }
    consume(t);
}

int mc_client_reply_more(const struct mc_client_token *t, const void *body, size_t len)
{
    struct mc_client_conn *c = t->conn;
    if (c->state != CONN_OPEN) {
        return MC_ESHUTDOWN;
    }
    append_reply(c, t->op, MC_PROTO_FLAG_MORE, t->request_id, 0, body, len);
    return c->state == CONN_OPEN ? 0 : MC_ESHUTDOWN;
}

size_t mc_client_conn_pending_bytes(const struct mc_client_conn *c)
{
    if (c->state == CONN_CLOSED) {
        return 0;
    }
    return c->out.len + (c->writing ? c->wout.len - c->wout_off : 0);
}

bool mc_client_conn_output_full(struct mc_client_conn *c)
{
    if (output_has_room(c)) {
        return false; /* closed connections too: 0 pending */
    }
    c->drain_waiter = true;
    budget_wait(c); /* the budget's release wakes it if its own drain does not */
    mark_dirty(c);  /* a flush (this pass) writes it out, then drain_check wakes the waiter */
    return true;
}

uint64_t mc_client_server_drain_wakes(const struct mc_client_server *s)
{
    return s->stats.drain_wakes;
}

void mc_client_conn_close(struct mc_client_conn *c)
{
    close_conn(c);
}

const char *mc_client_conn_peer(const struct mc_client_conn *c)
{
    return c->state == CONN_CLOSED ? "" : c->peer;
}

/* ---- input ---- */

/* Read no more; close once the queued output is out, or after CLOSE_GRACE_MS (on_timer) if the
 * peer does not take it. The connection still counts against max_connections until then. */
static void set_closing(struct mc_client_conn *c)
{
    assert(c->state == CONN_OPEN);
    c->state = CONN_CLOSING;
    c->closing_ms = mc_mono_ms();
    read_stop(c);
    mark_dirty(c);
}

/* Reply to a broken frame and close once the reply is out (the stream is out of sync). */
static void protocol_error(struct mc_client_conn *c, uint8_t op, uint64_t rid, int status,
                           const char *msg)
{
    struct mc_client_server *s = c->srv;
    s->stats.protocol_errors++;
    CONN_LOG(s, LOG_PROTOCOL_ERROR, MC_LOG_INFO, "client_protocol_error",
             "peer=%s err=%s msg=\"%s\"", c->peer, mc_error_name(status), msg);
    error_msg(c, op, rid, status, msg);
    if (c->state == CONN_OPEN) {
        set_closing(c);
    }
}

static bool may_read(const struct mc_client_conn *c)
{
    const struct mc_client_server *s = c->srv;
    return c->state == CONN_OPEN && c->inflight < c->max_inflight &&
           queued_bytes(c) < s->opts.max_output_bytes && !budget_holds(c);
}

static int grow_rbuf(struct mc_client_conn *c, size_t need)
{
    if (need <= c->rcap) {
        return 0;
    }
    size_t cap = c->rcap ? c->rcap : INITIAL_READ_BYTES;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > MC_PROTO_MAX_FRAME_BYTES) {
        cap = MC_PROTO_MAX_FRAME_BYTES;
    }
    uint8_t *p = realloc(c->rbuf, cap);
    if (!p) {
        return MC_ENOMEM;
    }
    c->rbuf = p;
    c->rcap = cap;
    return 0;
}

/* B2 (d): after a big frame, give the read buffer back (it grew up to the frame limit for it):
 * libuv is then handed INITIAL_READ_BYTES per read again (R1), and an idle connection holds
 * 64 KiB, not 4 MiB. A partial big frame left in it is regrown for by process_frames. Only a
 * buffer of SHRINK_RBUF_BYTES or more (N-5): TLS pulls (TLS_PULL_BYTES steps) and in-process
 * feeds over 64 KiB grow a 64 KiB one to 128 KiB on every busy pass, and cutting that back
 * after each parse cost a realloc pair per pass; a connection may keep 128 KiB. */
static void shrink_rbuf(struct mc_client_conn *c)
{
    if (c->rcap < SHRINK_RBUF_BYTES || c->rlen > INITIAL_READ_BYTES) {
        return;
    }
    uint8_t *p = realloc(c->rbuf, INITIAL_READ_BYTES);
    if (p) { /* else keep the big one */
        c->rbuf = p;
        c->rcap = INITIAL_READ_BYTES;
        c->srv->stats.rbuf_shrinks++;
    }
}

/* on_timer: a connection quiet for RBUF_IDLE_SHRINK_MS gives back a read buffer grown past
 * INITIAL_READ_BYTES but under SHRINK_RBUF_BYTES (shrink_rbuf leaves those to busy connections,
 * which would grow them again each pass): an idle connection holds 64 KiB, not 128 (rev19 R2).
 * Not the in-process connections (their buffer is fed by local.c's own rules). */
static void shrink_idle_rbuf(struct mc_client_conn *c, uint64_t now)
{
    if (c->rlen != 0 || c->rcap <= INITIAL_READ_BYTES || c->local_out ||
        now - c->last_active_ms < RBUF_IDLE_SHRINK_MS) {
        return;
    }
    uint8_t *p = realloc(c->rbuf, INITIAL_READ_BYTES);
    if (p) {
        c->rbuf = p;
        c->rcap = INITIAL_READ_BYTES;
        c->srv->stats.rbuf_idle_shrinks++;
    }
}

/* Per-request limits (the frame itself was fine): refuse an oversized batch (a final error:
 * EntityTooLarge, not the retryable SlowDown), clamp a list page. Returns false when answered. */
static bool within_limits(struct mc_client_conn *c, struct mc_proto_request *req)
{
    struct mc_client_server *s = c->srv;
    if (req->op == MC_REQ_WRITE && req->u.write.n_ops > s->opts.max_batch_ops) {
        s->stats.batches_too_large++;
        mc_metrics_limit(MC_LIMIT_BATCH_OPS);
        char msg[80];
        snprintf(msg, sizeof(msg), "write batch of %u ops over the limit of %u", req->u.write.n_ops,
                 s->opts.max_batch_ops);
        error_msg(c, req->op, req->request_id, MC_ETOOLARGE, msg);
        return false;
    }
    uint32_t *mk = req->op == MC_REQ_LIST_OBJECTS || req->op == MC_REQ_LIST_VERSIONS
                       ? &req->u.list.max_keys /* one shape, u.versions aliases it */
                       : NULL;
    if (mk && (*mk == 0 || *mk > s->opts.max_list_keys)) {
        if (*mk > s->opts.max_list_keys) {
            mc_metrics_limit(MC_LIMIT_LIST_KEYS);
        }
        *mk = s->opts.max_list_keys; /* S3: max-keys above the cap is clamped, not refused */
    }
    return true;
}

/* AUTH: bind the connection to the token's principal (replaces any earlier one). Success body:
 * str principal name, u8 role. With auth off every token is accepted as admin. */
static void handle_auth(struct mc_client_conn *c, const struct mc_proto_request *req)
{
    struct mc_client_server *s = c->srv;
    const struct mc_principal *p = NULL;
    /* The cap bounds the token hashing one connection can make the loop do (R2). Refused as
     * Unauthorized (N-2), an auth failure like the token guesses it slows, not the retryable
     * SlowDown: retrying on this connection cannot succeed. With auth off it does not apply:
     * an AUTH hashes nothing there (every token is admin) and costs what a PING does, within
     * the frame budget like any request; and a server that authenticates nobody has no
     * Unauthorized to give. */
    if (s->opts.auth && ++c->auth_frames > MAX_AUTH_FRAMES) {
        mc_metrics_limit(MC_LIMIT_AUTH_FAILURES);
        protocol_error(c, req->op, req->request_id, MC_EUNAUTH,
                       "too many AUTH frames on one connection: closing");
        return;
    }
    if (s->opts.auth) {
        p = mc_auth_verify(s->opts.auth, req->u.auth.token.ptr, req->u.auth.token.len);
        c->principal = p;
        if (!p) {
            c->auth_failures++;
            mc_metrics_limit(MC_LIMIT_AUTH_FAILURES);
            CONN_LOG(s, LOG_AUTH_FAILED, MC_LOG_INFO, "client_auth_failed", "peer=%s failures=%u",
                     c->peer, c->auth_failures);
            if (c->auth_failures >= MAX_AUTH_FAILURES) {
                protocol_error(c, req->op, req->request_id, MC_EUNAUTH,
                               "invalid token (too many attempts: closing)");
            } else {
                error_msg(c, req->op, req->request_id, MC_EUNAUTH, "invalid token");
            }
            return;
        }
    }
    uint8_t body[4 + MC_AUTH_NAME_MAX + 2];
    const char *name = p ? p->name : "";
    uint32_t n = (uint32_t)strlen(name);
    mc_put_u32le(body, n);
    memcpy(body + 4, name, n);
    body[4 + n] = 0;
    body[5 + n] = (uint8_t)(p ? p->role : MC_ROLE_ADMIN);
    append_reply(c, req->op, 0, req->request_id, 0, body, 6 + n);
}

/* With auth on: may this connection's principal run req? Answers and returns false if not. */
static bool authorized(struct mc_client_conn *c, const struct mc_proto_request *req)
{
    struct mc_client_server *s = c->srv;
    if (!s->opts.auth) {
        return true;
    }
    int rc = mc_authz_check_request(c->principal, req);
    if (rc == 0) {
        return true;
    }
    if (rc == MC_EUNAUTH) {
        mc_metrics_limit(MC_LIMIT_AUTH_FAILURES);
        error_msg(c, req->op, req->request_id, rc,
                  c->auth_failures ? "invalid token (AUTH refused)"
                                   : "authentication required: send AUTH first");
        return false;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "principal '%s' (role %s%s) may not %s", c->principal->name,
             mc_role_name(c->principal->role), c->principal->n_buckets ? ", bucket-scoped" : "",
             mc_proto_op_name(req->op));
    error_msg(c, req->op, req->request_id, rc, msg);
    return false;
}

/* TLS: decrypt what has arrived into rbuf (as much as fits). Returns the plaintext bytes
 * added; on a TLS failure the connection is closed once the alert is out. */
static size_t tls_pull(struct mc_client_conn *c)
{
    size_t total = 0;
    while (c->state == CONN_OPEN) {
        if (c->rcap - c->rlen < TLS_PULL_BYTES && c->rcap < MC_PROTO_MAX_FRAME_BYTES) {
            size_t want = c->rlen + TLS_PULL_BYTES;
            if (grow_rbuf(c, want > MC_PROTO_MAX_FRAME_BYTES ? MC_PROTO_MAX_FRAME_BYTES : want)) {
                close_conn(c);
                break;
            }
        }
        if (c->rcap == c->rlen) {
            break; /* full: the frames in it must be parsed first */
        }
        size_t n = 0;
        int rc = mc_tls_read(c->tls, c->rbuf + c->rlen, c->rcap - c->rlen, &n);
        if (rc != 0) {
            if (rc != MC_ESHUTDOWN) {
                CONN_LOG(c->srv, LOG_TLS_FAILED, MC_LOG_INFO, "client_tls_failed",
                         "peer=%s err=\"%s\"", c->peer, mc_tls_error(c->tls));
            }
            set_closing(c); /* flush the alert, then close */
            break;
        }
        if (n == 0) {
            break;
        }
        /* frame_start_ms: set by on_read when the record carrying this began (R3) */
        c->rlen += n;
        total += n;
    }
    if (c->state != CONN_CLOSED && mc_tls_pending(c->tls) > 0) {
        mark_dirty(c); /* handshake records to send */
    }
    return total;
}

static void process_frames(struct mc_client_conn *c);

/* Parse and dispatch what arrived; over TLS, decrypt in rounds as rbuf space frees up. */
static void process_input(struct mc_client_conn *c)
{
    if (!c->tls) {
        process_frames(c);
        return;
    }
    c->refs++;
    size_t pulled;
    do {
        pulled = c->state == CONN_OPEN ? tls_pull(c) : 0;
        process_frames(c);
    } while (pulled > 0 && c->state == CONN_OPEN && may_read(c) && !c->budget_spent);
    conn_unref(c);
}

/* Parse and dispatch every complete frame buffered, within the in-flight/output limits. */
static void process_frames(struct mc_client_conn *c)
{
    struct mc_client_server *s = c->srv;
    size_t pos = c->rpos;
    uint32_t frames = 0;
    c->rpos = 0;
    c->refs++; /* dispatch may close it */
    c->budget_spent = false;
    while (may_read(c) && c->rlen - pos >= MC_PROTO_HEADER_BYTES) {
        if (frames++ == FRAME_BUDGET) {
            c->budget_spent = true; /* the rest waits for the next loop pass (on_wake) */
            break;
        }
        struct mc_proto_header h;
        mc_proto_header_get(c->rbuf + pos, &h);
        int rc = mc_proto_header_check(&h);
        if (rc == 0 && (size_t)h.length + 4 > s->opts.max_frame_bytes) {
            rc = MC_ETOOLARGE;
        }
        if (rc == MC_ETOOLARGE) {
            s->stats.frames_too_large++;
            mc_metrics_limit(MC_LIMIT_FRAME_BYTES);
            char msg[64];
            snprintf(msg, sizeof(msg), "frame over the %u byte limit", s->opts.max_frame_bytes);
            protocol_error(c, h.op & 0x7f, h.request_id, rc, msg);
            break;
        }
        if (rc != 0) {
            const char *msg =
                rc == MC_EVERSION ? "unsupported protocol version" : "malformed frame header";
            protocol_error(c, h.op & 0x7f, h.request_id, rc, msg);
            break;
        }
        size_t frame = (size_t)h.length + 4;
        if (c->rlen - pos < frame) {
            break; /* wait for the rest */
        }
        const uint8_t *body = c->rbuf + pos + MC_PROTO_HEADER_BYTES;
        size_t body_len = frame - MC_PROTO_HEADER_BYTES;
        pos += frame;
        if (h.status != 0 || (h.op & MC_PROTO_REPLY_BIT)) {
            protocol_error(c, h.op & 0x7f, h.request_id, MC_EPROTO, "reply frame sent to server");
            break;
        }
        struct mc_proto_request req;
        rc = mc_proto_request_decode(&h, body, body_len, &req);
        if (rc == MC_EINVAL) {
            char msg[48];
            snprintf(msg, sizeof(msg), "unknown op 0x%02x", h.op);
            error_msg(c, h.op, h.request_id, MC_EPROTO, msg);
            continue; /* the frame was well delimited: keep serving this connection */
        }
        if (rc != 0) {
            protocol_error(c, h.op, h.request_id, MC_EPROTO, "malformed request body");
            break;
        }
        if (req.op == MC_REQ_AUTH) {
            handle_auth(c, &req); /* answered here: the node never sees tokens */
            continue;
        }
        if (!authorized(c, &req) || !within_limits(c, &req)) {
            continue; /* answered; the frame was fine, the connection stays */
        }
        c->inflight++;
        c->refs++; /* released by the reply */
        s->stats.requests++;
        struct mc_client_request r = {
            .token = {.conn = c, .request_id = h.request_id, .op = h.op},
            .req = &req,
        };
        s->handler.dispatch(s->ctx, &r);
        if (c->local_out && s->test_local_close_at &&
            ++s->local_requests == s->test_local_close_at) {
            MC_WARN("test_hook_http_local_close", "requests=%llu",
                    (unsigned long long)s->local_requests);
            close_conn(c); /* with this request in flight, as any close_conn may */
            break;
        }
    }
    if (pos > 0 && c->rbuf && c->budget_spent && pos <= c->rlen / 2) {
        /* over a yield, move the rest down only once the parsed part is the bigger half:
         * a big rbuf is then moved O(1) times, not once per FRAME_BUDGET frames. */
        c->rpos = pos;
    } else if (pos > 0 && c->rbuf) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
        /* What is left began arriving no earlier than now (approximation in the client's
         * favour: it may have started in the last read). */
        c->frame_start_ms = mc_mono_ms();
        shrink_rbuf(c);
    }
    /* Make room for a partially received big frame. */
    if (c->state == CONN_OPEN && c->rpos == 0 && c->rlen >= MC_PROTO_HEADER_BYTES) {
        size_t need = (size_t)mc_get_u32le(c->rbuf) + 4;
        if (need <= MC_PROTO_MAX_FRAME_BYTES && grow_rbuf(c, need) != 0) {
            close_conn(c);
        }
    }
    if (c->state == CONN_OPEN) {
        bool want = may_read(c) && !c->budget_spent;
        if (want && c->read_paused) {
            start_reading(c);
        } else if (!want && !c->read_paused) {
            c->read_paused = true;
            if (c->budget_spent) {
                s->stats.budget_yields++;
            } else if (budget_holds(c)) {
                s->stats.read_pauses++;
                s->stats.budget_pauses++;
                mc_metrics_limit(MC_LIMIT_OUTPUT_BUDGET);
            } else {
                s->stats.read_pauses++;
                mc_metrics_limit(MC_LIMIT_INFLIGHT);
            }
            read_stop(c);
        }
        if (!want && !c->budget_spent) {
            budget_wait(c);
        }
        if (c->budget_spent) {
            yield_conn(c);
        }
    }
    conn_unref(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct mc_client_conn *c = h->data;
    if (c->tls) {
        if (!c->cbuf) {
            c->cbuf = malloc(TLS_READ_BYTES);
        }
        *buf = c->cbuf ? uv_buf_init((char *)c->cbuf, TLS_READ_BYTES) : uv_buf_init(NULL, 0);
        return;
    }
    if (c->rcap == 0 && grow_rbuf(c, INITIAL_READ_BYTES) != 0) {
        *buf = uv_buf_init(NULL, 0);
        return;
    }
    *buf = uv_buf_init((char *)c->rbuf + c->rlen, (unsigned)(c->rcap - c->rlen));
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    (void)buf;
    struct mc_client_conn *c = st->data;
    if (nread < 0) {
        if (nread != UV_EOF) {
            MC_DEBUG("client_conn_read_failed", "peer=%s err=%s", c->peer, uv_strerror((int)nread));
        }
        close_conn(c);
        return;
    }
    if (nread == 0) {
        return;
    }
    if (c->tls) {
        c->last_active_ms = mc_mono_ms();
        if (c->rlen == 0 && !mc_tls_incomplete(c->tls)) {
            c->frame_start_ms = c->last_active_ms; /* these bytes begin a new record (frame) */
        }
        if (mc_tls_feed(c->tls, buf->base, (size_t)nread) != 0) {
            close_conn(c);
            return;
        }
        process_input(c); /* pulls plaintext (and advances the handshake) */
        return;
    }
    if (c->rlen == 0) {
        c->frame_start_ms = mc_mono_ms(); /* a new frame starts */
    }
    c->rlen += (size_t)nread;
    c->last_active_ms = mc_mono_ms();
    process_input(c);
}

static void start_reading(struct mc_client_conn *c)
{
    c->read_paused = false;
    c->frame_start_ms = mc_mono_ms(); /* time we spent paused is not the client's */
    if (!c->local_out) {
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    }
}

/* ---- connections ---- */

static void on_conn_closed(uv_handle_t *h)
{
    struct mc_client_conn *c = h->data;
    struct mc_client_server *s = c->srv;
    assert(s->n_conns > 0);
    s->n_conns--;
    /* B2 (c): a closed connection may outlive its socket by a long while (a request still in
     * flight keeps it), but never needs its buffers again: replies to it are dropped, nothing is
     * read. Freed here, not in close_conn: dispatch may close it while the request still points
     * into rbuf, and the write's callback (ECANCELED) has run before this one. */
    assert(c->state == CONN_CLOSED && !c->writing && !c->in_reply && c->out_counted == 0);
    mc_wbuf_free(&c->out);
    mc_wbuf_free(&c->wout);
    free(c->rbuf);
    c->rbuf = NULL;
    c->rcap = c->rlen = c->rpos = 0;
    free(c->cbuf);
    c->cbuf = NULL;
    conn_unref(c); /* the handle's reference */
    /* on_handle_closed bookkeeping, with the server as the handle's owner */
    assert(s->handles > 0);
    if (--s->handles == 0 && s->stopping) {
        if (s->done) {
            s->done(s->done_arg);
        }
        server_unref(s);
        return;
    }
    if (s->stopping && s->n_conns == 0) {
        close_own_handles(s);
    }
}

static void close_conn(struct mc_client_conn *c)
{
    struct mc_client_server *s = c->srv;
    if (c->state == CONN_CLOSED) {
        return;
    }
    c->state = CONN_CLOSED;
    s->stats.connections_open--;
    account_output(c); /* its queued replies are dropped: they count no more */
    drain_check(c);    /* a held read is now answered (dropped) at once */
    if (c->prev) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    if (c->local_out) {
        s->n_local--;
        c->local_out(c->local_ctx, NULL, 0);
        if (s->handler.conn_closed) {
            s->handler.conn_closed(s->ctx, c);
        }
        assert(s->n_conns > 0);
        s->n_conns--;
        conn_unref(c); /* the owner's reference (no handle to close) */
        if (s->stopping && s->n_conns == 0) {
            close_own_handles(s);
        }
        return;
    }
    uv_read_stop((uv_stream_t *)&c->tcp);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    if (s->handler.conn_closed) {
        s->handler.conn_closed(s->ctx, c);
    }
}

int mc_client_server_local_open(struct mc_client_server *s, const struct mc_principal *principal,
                                uint32_t max_inflight, mc_client_local_out_fn out, void *ctx,
                                struct mc_client_conn **conn)
{
    assert(max_inflight > 0);
    if (s->stopping) {
        return MC_ESHUTDOWN;
    }
    struct mc_client_conn *c = calloc(1, sizeof(*c));
    if (!c) {
        return MC_ENOMEM;
    }
    c->srv = s;
    c->refs = 1;
    mc_wbuf_init(&c->out, s->opts.max_output_bytes * 2 + MC_PROTO_MAX_FRAME_BYTES);
    mc_wbuf_init(&c->wout, s->opts.max_output_bytes * 2 + MC_PROTO_MAX_FRAME_BYTES);
    c->local_out = out;
    c->local_ctx = ctx;
    c->max_inflight = max_inflight;
    c->principal = principal;
    snprintf(c->peer, sizeof(c->peer), "local");
    s->refs++;
    s->n_conns++;
    s->n_local++;
    s->stats.connections_open++;
    s->stats.connections_accepted++;
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    c->last_active_ms = mc_mono_ms();
    c->accepted_ms = c->last_active_ms;
    *conn = c;
    return 0;
}

size_t mc_client_conn_local_feed(struct mc_client_conn *c, const uint8_t *frames, size_t len)
{
    assert(c->local_out);
    if (c->state != CONN_OPEN) {
        return len; /* gone: the bytes are dropped (the owner was told by out(NULL, 0)) */
    }
    size_t room = MC_PROTO_MAX_FRAME_BYTES - c->rlen;
    size_t n = len < room ? len : room;
    if (n > 0 && grow_rbuf(c, c->rlen + n) != 0) {
        n = c->rcap - c->rlen;
    }
    if (n == 0) {
        return 0;
    }
    memcpy(c->rbuf + c->rlen, frames, n);
    if (c->rlen == 0) {
        c->frame_start_ms = mc_mono_ms();
    }
    c->rlen += n;
    c->last_active_ms = mc_mono_ms();
    if (!c->read_paused) {
        process_input(c);
    }
    return n;
}

static void refuse_unallocated(struct mc_client_server *s);

static void on_spare_closed(uv_handle_t *h)
{
    struct mc_client_server *s = h->data;
    s->spare_busy = false;
    bool again = s->spare_again && !s->stopping;
    s->spare_again = false;
    on_handle_closed(h); /* not the last handle: the listener is open unless stopping */
    if (again) {
        refuse_unallocated(s);
    }
}

/* No memory for a new connection: accept it into the spare handle and close it at once. Not
 * accepting is worse: libuv stops polling a listener whose callback did not accept, and the
 * port would stay deaf after memory came back. While the spare is closing, the next one waits
 * in libuv (polling stopped) and is accepted from on_spare_closed. */
static void refuse_unallocated(struct mc_client_server *s)
{
    if (s->spare_busy) {
        s->spare_again = true;
        return;
    }
    s->stats.connections_rejected++;
    CONN_LOG(s, LOG_NO_MEMORY, MC_LOG_WARN, "client_conn_no_memory", "open=%u",
             s->n_conns - s->n_local);
    uv_tcp_init(s->loop, &s->spare);
    s->spare.data = s;
    s->spare_busy = true;
    s->handles++;
    (void)uv_accept((uv_stream_t *)&s->listener, (uv_stream_t *)&s->spare);
    uv_close((uv_handle_t *)&s->spare, on_spare_closed);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct mc_client_server *s = server->data;
    if (status < 0 || s->stopping) {
        return;
    }
    struct mc_client_conn *c = NULL;
    if (s->test_accept_nomem > 0) {
        s->test_accept_nomem--; /* tests: this accept fails as if calloc had */
    } else {
        c = calloc(1, sizeof(*c));
    }
    if (!c) {
        refuse_unallocated(s);
        return;
    }
    c->srv = s;
    c->refs = 1;
    c->max_inflight = s->opts.max_inflight_per_conn;
    mc_wbuf_init(&c->out, s->opts.max_output_bytes * 2 + MC_PROTO_MAX_FRAME_BYTES);
    mc_wbuf_init(&c->wout, s->opts.max_output_bytes * 2 + MC_PROTO_MAX_FRAME_BYTES);
    uv_tcp_init(s->loop, &c->tcp);
    c->tcp.data = c;
    s->refs++;
    s->handles++;
    s->n_conns++;
    s->stats.connections_open++;
    c->next = s->conns;
    if (s->conns) {
        s->conns->prev = c;
    }
    s->conns = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        close_conn(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    if (s->opts.sndbuf_bytes > 0) {
        int fd = -1;
        if (uv_fileno((uv_handle_t *)&c->tcp, &fd) == 0) {
            (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &s->opts.sndbuf_bytes,
                             sizeof(s->opts.sndbuf_bytes));
        }
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET) {
        char ip[32];
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        uv_ip4_name(sin, ip, sizeof(ip));
        snprintf(c->peer, sizeof(c->peer), "%s:%d", ip, ntohs(sin->sin_port));
    }
    c->last_active_ms = mc_mono_ms();
    c->accepted_ms = c->last_active_ms;
    s->stats.connections_accepted++;
    if (s->opts.tls && mc_tls_new(s->opts.tls, true, NULL, &c->tls) != 0) {
        close_conn(c);
        return;
    }
    if (s->n_conns - s->n_local > s->opts.max_connections) {
        s->stats.connections_rejected++;
        mc_metrics_limit(MC_LIMIT_CONNECTIONS);
        CONN_LOG(s, LOG_REJECTED, MC_LOG_WARN, "client_conn_rejected", "peer=%s max_connections=%u",
                 c->peer, s->opts.max_connections);
        set_closing(c);
        error_msg(c, MC_REQ_PING, 0, MC_ELIMIT, "too many connections");
        return;
    }
    start_reading(c);
}

/* With auth on, a connection may stay anonymous (PING and AUTH only) for
 * request_read_timeout_ms after its accept: otherwise connections that never authenticate could
 * hold every slot of max_connections for as long as they PING inside the idle timeout (aud18
 * R3). Closed only between requests (nothing in flight or being written), so a client sees EOF,
 * not a lost reply. The clients of this project send AUTH first on every connection. */
static bool anonymous_too_long(const struct mc_client_server *s, const struct mc_client_conn *c,
                               uint64_t now)
{
    return s->opts.auth && !c->principal && !c->local_out && c->inflight == 0 && !c->writing &&
           now - c->accepted_ms >= s->opts.request_read_timeout_ms;
}

static void on_timer(uv_timer_t *t)
{
    struct mc_client_server *s = t->data;
    if (s->stopping) {
        /* Grace over: drop whoever has not taken their replies. */
        while (s->conns) {
            close_conn(s->conns);
        }
        flush_all(s);
        return;
    }
#ifndef NDEBUG
    check_output_total(s);
#endif
    uint64_t now = mc_mono_ms();
    struct mc_client_conn *c = s->conns;
    while (c) {
        struct mc_client_conn *next = c->next;
        if (c->local_out) {
            c = next;
            continue;
        }
        /* Replies that do not drain hold up to max_output_bytes (plus what is in the write)
         * per connection: a peer that stopped reading, or takes a few bytes now and then, may
         * not keep that forever. Back-pressure cannot help here (reading is paused already),
         * and the read and idle timeouts do not apply (nothing partial, requests answered). */
        if (c->writing) {
            /* The deadline is for a write that makes no progress: a client reading slowly but
             * steadily drains the queue (libuv hands the kernel more as it reads) and is kept. */
            size_t q = uv_stream_get_write_queue_size((uv_stream_t *)&c->tcp);
            if (q < c->write_queue_seen) {
                c->write_queue_seen = q;
                c->write_start_ms = now;
                c->last_active_ms = now; /* the peer is reading: not idle (idle check below) */
            }
        }
        if (c->writing && now - c->write_start_ms >= s->opts.send_timeout_ms) {
            s->stats.send_timeouts++;
            CONN_LOG(s, LOG_SEND_TIMEOUT, MC_LOG_INFO, "client_send_timeout",
                     "peer=%s queued=%zu stalled_ms=%llu", c->peer, mc_client_conn_pending_bytes(c),
                     (unsigned long long)(now - c->write_start_ms));
            close_conn(c);
            c = next;
            continue;
        }
        if (c->state == CONN_CLOSING && now - c->closing_ms >= CLOSE_GRACE_MS) {
            /* Its last reply (an error) was not taken in time: the peer is not reading. */
            s->stats.send_timeouts++;
            CONN_LOG(s, LOG_CLOSE_GRACE, MC_LOG_INFO, "client_close_grace_over",
                     "peer=%s queued=%zu", c->peer, mc_client_conn_pending_bytes(c));
            close_conn(c);
            c = next;
            continue;
        }
        if (c->state != CONN_OPEN) {
            c = next;
            continue;
        }
        if (c->tls && !mc_tls_established(c->tls) &&
            now - c->accepted_ms >= s->opts.request_read_timeout_ms) {
            s->stats.read_timeouts++;
            mc_metrics_limit(MC_LIMIT_READ_TIMEOUT);
            CONN_LOG(s, LOG_HANDSHAKE_TIMEOUT, MC_LOG_INFO, "client_tls_handshake_timeout",
                     "peer=%s", c->peer);
            close_conn(c);
            c = next;
            continue;
        }
        if (anonymous_too_long(s, c, now)) {
            s->stats.auth_timeouts++;
            mc_metrics_limit(MC_LIMIT_AUTH_FAILURES);
            CONN_LOG(s, LOG_AUTH_TIMEOUT, MC_LOG_INFO, "client_auth_timeout",
                     "peer=%s not authenticated within %u ms", c->peer,
                     s->opts.request_read_timeout_ms);
            close_conn(c);
            c = next;
            continue;
        }
        /* A partial frame is the client's fault only while we are reading (not paused by our
         * own back-pressure, which leaves whole frames buffered, not partial ones). Over TLS, a
         * partial record is one too: its bytes never reach rbuf (R3, as src/http/conn.c). */
        bool partial =
            c->rlen > 0 || (c->tls && mc_tls_established(c->tls) && mc_tls_incomplete(c->tls));
        if (partial && !c->read_paused &&
            now - c->frame_start_ms >= s->opts.request_read_timeout_ms) {
            s->stats.read_timeouts++;
            mc_metrics_limit(MC_LIMIT_READ_TIMEOUT);
            char msg[80];
            snprintf(msg, sizeof(msg), "request not received within %u ms",
                     s->opts.request_read_timeout_ms);
            protocol_error(c, MC_REQ_PING, 0, MC_ETIMEOUT, msg);
        } else if (s->opts.idle_timeout_ms && c->inflight == 0 && !partial && !c->writing &&
                   now - c->last_active_ms >= s->opts.idle_timeout_ms) {
            MC_DEBUG("client_conn_idle", "peer=%s", c->peer);
            s->stats.idle_closed++;
            mc_metrics_limit(MC_LIMIT_IDLE_TIMEOUT);
            close_conn(c);
        } else if (!partial) {
            shrink_idle_rbuf(c, now);
        }
        c = next;
    }
    flush_all(s);
}

/* Sweep often enough to enforce the shortest timeout within ~25% of it. */
static uint64_t sweep_interval_ms(const struct mc_client_server_opts *o)
{
    uint64_t t = o->request_read_timeout_ms;
    if (o->idle_timeout_ms && o->idle_timeout_ms < t) {
        t = o->idle_timeout_ms;
    }
    if (o->send_timeout_ms < t) {
        t = o->send_timeout_ms;
    }
    t /= 4;
    return t < SWEEP_MIN_MS ? SWEEP_MIN_MS : t > SWEEP_MAX_MS ? SWEEP_MAX_MS : t;
}

/* ---- server ---- */

/* Test hook: with MC_TEST_HTTP_LOCAL_CLOSE_AFTER=N (N >= 1) in the environment (read once, at
 * server start), the server closes the in-process connection that carries the Nth request
 * received over in-process connections (counted across them, so only once), right after
 * dispatching it: the HTTP layer then sees its connection closed under it with a request in
 * flight, as any close_conn would do, and must reopen it (test/integration/test_http.py).
 * Unset (production): 0, one compare per in-process request. */
static uint64_t test_local_close_at(void)
{
    uint64_t n = mc_test_env_u64("MC_TEST_HTTP_LOCAL_CLOSE_AFTER", UINT64_MAX);
    if (n) {
        MC_WARN("test_hook_http_local_close_after",
                "n=%llu (never set MC_TEST_HTTP_LOCAL_CLOSE_AFTER in production)",
                (unsigned long long)n);
    }
    return n;
}

static int parse_addr(const char *addr, struct sockaddr_in *out)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host)) {
        return MC_EINVAL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || colon[1] == 0 || port < 0 || port > 65535) {
        return MC_EINVAL;
    }
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    if (uv_ip4_addr(host, (int)port, out) != 0) {
        return MC_EINVAL;
    }
    return 0;
}

int mc_client_server_start(uv_loop_t *loop, const char *listen_addr,
                           const struct mc_client_handler *handler, void *ctx,
                           const struct mc_client_server_opts *opts, struct mc_client_server **out)
{
    assert(handler && handler->dispatch);
    struct sockaddr_in sa;
    int rc = parse_addr(listen_addr, &sa);
    if (rc != 0) {
        return rc;
    }
    struct mc_client_server *s = calloc(1, sizeof(*s));
    if (!s) {
        return MC_ENOMEM;
    }
    s->loop = loop;
    s->handler = *handler;
    s->ctx = ctx;
    if (opts) {
        s->opts = *opts;
    }
    if (!s->opts.max_connections) {
        s->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
    }
    if (!s->opts.max_inflight_per_conn) {
        s->opts.max_inflight_per_conn = DEFAULT_MAX_INFLIGHT;
    }
    if (!s->opts.max_output_bytes) {
        s->opts.max_output_bytes = DEFAULT_MAX_OUTPUT_BYTES;
    }
    if (!s->opts.max_total_output_bytes) {
        s->opts.max_total_output_bytes = MC_CLIENT_MAX_TOTAL_OUTPUT_BYTES;
    }
    if (!s->opts.request_read_timeout_ms) {
        s->opts.request_read_timeout_ms = DEFAULT_READ_TIMEOUT_MS;
    }
    if (!s->opts.send_timeout_ms) {
        s->opts.send_timeout_ms = MC_CLIENT_SEND_TIMEOUT_MS;
    }
    if (!s->opts.max_frame_bytes || s->opts.max_frame_bytes > MC_PROTO_MAX_FRAME_BYTES) {
        s->opts.max_frame_bytes = MC_PROTO_MAX_FRAME_BYTES;
    }
    s->test_local_close_at = test_local_close_at();
    s->test_accept_nomem = mc_test_env_u64("MC_TEST_CLIENT_ACCEPT_NOMEM", UINT32_MAX);
    if (s->opts.max_frame_bytes < MC_PROTO_HEADER_BYTES) {
        s->opts.max_frame_bytes = MC_PROTO_HEADER_BYTES;
    }
    if (!s->opts.max_batch_ops || s->opts.max_batch_ops > MC_PROTO_MAX_BATCH_OPS) {
        s->opts.max_batch_ops = MC_PROTO_MAX_BATCH_OPS;
    }
    if (!s->opts.max_list_keys) {
        s->opts.max_list_keys = DEFAULT_MAX_LIST_KEYS;
    }
    if (s->opts.backlog <= 0) {
        s->opts.backlog = 511;
    }
    s->refs = 1;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->handles = 1;
    int urc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&sa, 0);
    if (urc == 0) {
        urc = uv_listen((uv_stream_t *)&s->listener, s->opts.backlog, on_connection);
    }
    if (urc != 0) {
        MC_ERROR("client_listen_failed", "addr=%s err=%s", listen_addr, uv_strerror(urc));
        /* Closing needs a loop turn; free from the close callback. */
        s->stopping = true;
        s->own_closed = true;
        uv_close((uv_handle_t *)&s->listener, on_handle_closed);
        return MC_EIO;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &sl);
    s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

    uv_prepare_init(loop, &s->prepare);
    s->prepare.data = s;
    uv_prepare_start(&s->prepare, on_prepare);
    uv_unref((uv_handle_t *)&s->prepare);
    uv_check_init(loop, &s->check);
    s->check.data = s;
    uv_check_start(&s->check, on_check);
    uv_unref((uv_handle_t *)&s->check);
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    uv_idle_init(loop, &s->wake);
    s->wake.data = s;
    uv_unref((uv_handle_t *)&s->wake);
    s->handles += 4;
    uint64_t every = sweep_interval_ms(&s->opts);
    uv_timer_start(&s->timer, on_timer, every, every);
    uv_unref((uv_handle_t *)&s->timer); /* the sweep alone does not keep the loop alive */
    MC_INFO("client_listening", "addr=%s port=%d", listen_addr, s->port);
    *out = s;
    return 0;
}

int mc_client_server_port(const struct mc_client_server *s)
{
    return s->port;
}

bool mc_client_server_stopping(const struct mc_client_server *s)
{
    return s->stopping;
}

uint32_t mc_client_server_max_frame_bytes(const struct mc_client_server *s)
{
    return s->opts.max_frame_bytes;
}

void mc_client_server_stats(const struct mc_client_server *s, struct mc_client_server_stats *out)
{
    *out = s->stats;
    out->output_bytes = s->out_total;
}

void mc_client_server_stop(struct mc_client_server *s, void (*done)(void *arg), void *arg)
{
    assert(!s->stopping);
    s->stopping = true;
    s->done = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_handle_closed);
    for (struct mc_client_conn *c = s->conns; c; c = c->next) {
        if (c->state == CONN_OPEN) {
            set_closing(c);
        } else {
            mark_dirty(c);
        }
    }
    uv_timer_stop(&s->timer);
    uv_timer_start(&s->timer, on_timer, STOP_GRACE_MS, 0);
    uv_ref((uv_handle_t *)&s->timer);
    flush_all(s);
}
