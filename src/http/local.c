/* local.c: in-process path from the HTTP connections to the node (no loopback socket hop). */
#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "http/internal.h"
#include "metacenter/error.h"
#include "net/client_server.h"
#include "util/clock.h"
#include "util/log.h"

/*
 * The HTTP side (on the loop thread; any thread may submit) encodes each request as a
 * client-protocol frame into `in` (under mu); the batch is fed once per loop iteration (a
 * uv_idle on the loop thread, a uv_async from other threads). The loop feeds the batch to
 * the client server's in-process connection, so the node serves it exactly like a socket client's
 * (same dispatch, limits, authorization); the replies come back batched once per loop iteration
 * through out_cb, which copies each into its mc_http_call and calls done (the HTTP side answers its
 * connection).
 *
 * At most one batch of MC_HTTP_PIPELINE_MAX requests per HTTP connection is in flight, so
 * that many slots per connection bound the pending table; a request id is
 * (generation << 16 | slot). SLOTS is also the in-process connection's in-flight cap at the
 * client server (mc_client_server_local_open), in place of the per-client one.
 *
 * The client server may close the in-process connection on its own (a protocol error, any
 * close_conn): what was with the node is failed (writes "outcome unknown") and a new connection
 * is opened at the next loop iteration (not inside the close callback, which runs deep in the
 * client server, often from our own feed). Only when the HTTP server or the client server is
 * stopping does the path stay closed (later submits answered ShuttingDown).
 */

#define SLOTS     (MC_HTTP_MAX_CONNECTIONS * MC_HTTP_PIPELINE_MAX)
#define SLOT_BITS 16
_Static_assert(SLOTS <= (1u << SLOT_BITS), "a slot index fits its bits of the request id");
#define IN_MAX_BYTES ((size_t)SLOTS * MC_PROTO_MAX_FRAME_BYTES) /* every slot's frame */

struct slot {
    uint64_t id;            /* 0 = free */
    struct mc_http_call *k; /* NULL once cancelled: the answer is dropped */
    void (*done)(void *arg);
    void *arg;
};

struct mc_http_local {
    uv_async_t async;        /* a submit from another thread */
    uv_idle_t idle;          /* a submit on the loop thread: feed at the next loop iteration */
    _Atomic bool loop_known; /* loop_thread is set (by the first callback on the loop) */
    pthread_t loop_thread;
    int open_handles;
    struct mc_client_server *clients;
    const struct mc_principal *principal; /* the connection's (reopens use it again) */
    struct mc_client_conn *conn;          /* loop thread; NULL once closed */
    bool reopen;                          /* loop thread: conn closed under us, open a new one */
    uint64_t reopens;                     /* loop thread: connections reopened (logged) */
    struct mc_log_limit reopen_log;       /* http_local_reopened: one line a second at most */
    pthread_mutex_t mu;
    bool closed;       /* mu: submits refused (the HTTP server or the client server stops) */
    struct mc_wbuf in; /* mu: frames queued by HTTP threads */
    uint64_t gen;      /* mu */
    uint32_t free_top; /* mu: free slot stack */
    uint16_t free_slots[SLOTS];
    struct slot slots[SLOTS];
    struct mc_wbuf feeding; /* loop thread: frames being fed, [feed_off, len) left */
    size_t feed_off;
    uint32_t max_frame; /* the client server's frame limit (set once) */
};

static void reopen(struct mc_http_local *l);
static void out_cb(void *ctx, const uint8_t *frames, size_t len);

static void feed(struct mc_http_local *l)
{
    while (l->conn && l->feed_off < l->feeding.len) {
        size_t n = mc_client_conn_local_feed(l->conn, l->feeding.data + l->feed_off,
                                             l->feeding.len - l->feed_off);
        if (!l->conn)
            return; /* closed while serving them: conn_lost dropped the batch */
        if (n == 0)
            break; /* in-flight limit: retried after the next replies (out_cb) */
        l->feed_off += n;
    }
    if (l->feed_off == l->feeding.len || !l->conn) {
        l->feeding.len = 0;
        l->feed_off = 0;
    }
}

static void take_batch(struct mc_http_local *l)
{
    if (l->reopen)
        reopen(l); /* before feeding: frames queued since the close go to the new connection */
    pthread_mutex_lock(&l->mu);
    if (l->feeding.len == 0) {
        struct mc_wbuf t = l->feeding;
        l->feeding = l->in;
        l->in = t;
    } else if (l->in.len > 0) {
        mc_wbuf_put(&l->feeding, l->in.data, l->in.len); /* rare: the last batch is stuck */
    }
    l->in.len = 0;
    pthread_mutex_unlock(&l->mu);
    feed(l);
}

static void async_cb(uv_async_t *h)
{
    struct mc_http_local *l = h->data;
    if (!atomic_load(&l->loop_known)) {
        l->loop_thread = pthread_self(); /* mc_http_local_new may run before the loop does */
        atomic_store(&l->loop_known, true);
    }
    take_batch(l);
}

static void idle_cb(uv_idle_t *h)
{
    uv_idle_stop(h);
    take_batch(h->data);
}

/* Take slot for id out of the table; returns its copy (k NULL when cancelled/unknown). */
static struct slot take(struct mc_http_local *l, uint64_t id)
{
    struct slot none = {0};
    uint32_t i = (uint32_t)(id & ((1u << SLOT_BITS) - 1));
    if (i >= SLOTS || l->slots[i].id != id || id == 0)
        return none;
    struct slot s = l->slots[i];
    l->slots[i] = none;
    l->free_slots[l->free_top++] = (uint16_t)i;
    return s;
}

/* One reply frame → its call (as the client library would report it). */
static void deliver(struct mc_http_local *l, const struct mc_proto_header *h, const uint8_t *body,
                    size_t len)
{
    struct mc_client_result res = {.status = h->status,
                                   .body = body,
                                   .body_len = len,
                                   .message = "",
                                   .leader_addr = "",
                                   .version_id = "",
                                   .endpoint = 0};
    if (h->status != 0) {
        struct mc_proto_error e;
        memset(&e, 0, sizeof e);
        mc_proto_error_decode(body, len, &e);
        res.message = e.message.ptr ? e.message.ptr : "";
        res.leader_id = e.leader_id;
        res.leader_addr = e.leader_addr.ptr ? e.leader_addr.ptr : "";
        res.delete_marker = (e.flags & MC_PROTO_ERR_DELETE_MARKER) != 0;
        res.version_id = e.version_id.ptr ? e.version_id.ptr : "";
        res.body = e.result;
        res.body_len = e.result_len;
    }
    pthread_mutex_lock(&l->mu);
    struct slot s = take(l, h->request_id);
    if (s.k) {
        s.k->is_write = s.k->req.op == MC_REQ_WRITE;
        mc_http_call_cb(s.k, &res);
    }
    pthread_mutex_unlock(&l->mu);
    /* Outside the lock: done answers the HTTP connection (it may submit again, to a worker).
     * A connection that went away cancelled its slot first, so s.k is NULL then. */
    if (s.k && s.done)
        s.done(s.arg);
}

/* Answer every pending slot with status (done runs, outside the lock). refuse: later submits
 * are refused too (stopping); else the queued frames are dropped (their slots are failed
 * here) and later submits queue for the next connection. */
static void fail_pending(struct mc_http_local *l, int status, bool refuse)
{
    pthread_mutex_lock(&l->mu);
    if (refuse) {
        l->closed = true;
    } else {
        l->in.len = 0;
        l->in.err = 0;
    }
    uint64_t last_gen = l->gen; /* submits made by the done callbacks below are not failed */
    pthread_mutex_unlock(&l->mu);
    /* One slot at a time, done outside the lock (it may submit again): the table is too big
     * to copy onto the stack. */
    for (uint32_t i = 0; i < SLOTS; i++) {
        pthread_mutex_lock(&l->mu);
        uint64_t id = l->slots[i].id;
        struct slot s = {0};
        if (id != 0 && (id >> SLOT_BITS) <= last_gen)
            s = take(l, id);
        if (s.k) {
            mc_http_call_reset(s.k);
            s.k->done = true;
            s.k->status = status;
            s.k->outcome_unknown = s.k->req.op == MC_REQ_WRITE;
        }
        pthread_mutex_unlock(&l->mu);
        if (s.k && s.done)
            s.done(s.arg);
    }
}

/* Loop thread, at the next iteration after conn_lost: a new in-process connection. The
 * client server refuses once it is stopping: then the path stays closed. */
static void reopen(struct mc_http_local *l)
{
    assert(!l->conn);
    l->reopen = false;
    pthread_mutex_lock(&l->mu);
    bool closed = l->closed; /* fail_all ran since: the HTTP server stops */
    pthread_mutex_unlock(&l->mu);
    int rc =
        closed ? MC_ESHUTDOWN
               : mc_client_server_local_open(l->clients, l->principal, SLOTS, out_cb, l, &l->conn);
    if (rc != 0) {
        l->conn = NULL;
        MC_WARN("http_local_reopen_failed", "err=%s", mc_error_name(rc));
        fail_pending(l, MC_ESHUTDOWN, true);
        return;
    }
    l->reopens++;
    uint64_t suppressed;
    if (mc_log_limit_allow(&l->reopen_log, mc_mono_ms(), &suppressed))
        MC_WARN("http_local_reopened", "reopens=%llu unlogged=%llu", (unsigned long long)l->reopens,
                (unsigned long long)suppressed);
}

/* The client server closed the in-process connection (out_cb(NULL)), maybe from inside feed. */
static void conn_lost(struct mc_http_local *l)
{
    l->conn = NULL;
    pthread_mutex_lock(&l->mu);
    bool stopping = l->closed; /* mc_http_local_fail_all ran: the HTTP server stops */
    pthread_mutex_unlock(&l->mu);
    stopping = stopping || mc_client_server_stopping(l->clients);
    /* Loop-thread state first: the done callbacks below may submit again (into `in`). */
    l->feeding.len = 0; /* what was fed or queued belongs to the slots failed below */
    l->feed_off = 0;
    if (stopping) {
        fail_pending(l, MC_ESHUTDOWN, true); /* no reopen: mc_http_local_free closes it too */
        return;
    }
    l->reopen = true;
    fail_pending(l, MC_ESHUTDOWN, false);
    uv_idle_start(&l->idle, idle_cb); /* reopen at the next loop iteration, not in here */
}

static void out_cb(void *ctx, const uint8_t *frames, size_t len)
{
    struct mc_http_local *l = ctx;
    if (!frames) {
        conn_lost(l);
        return;
    }
    size_t pos = 0;
    while (len - pos >= MC_PROTO_HEADER_BYTES) {
        struct mc_proto_header h;
        mc_proto_header_get(frames + pos, &h);
        size_t frame = (size_t)h.length + 4;
        assert(frame >= MC_PROTO_HEADER_BYTES && frame <= len - pos); /* whole frames only */
        if (!(h.flags & MC_PROTO_FLAG_MORE)) /* streamed parts: not used over HTTP */
            deliver(l, &h, frames + pos + MC_PROTO_HEADER_BYTES, frame - MC_PROTO_HEADER_BYTES);
        pos += frame;
    }
    if (l->feed_off < l->feeding.len)
        uv_idle_start(&l->idle, idle_cb); /* replies made room: feed the rest */
}

int mc_http_local_new(struct uv_loop_s *loop, struct mc_client_server *clients,
                      const struct mc_principal *principal, struct mc_http_local **out)
{
    struct mc_http_local *l = calloc(1, sizeof *l);
    if (!l)
        return MC_ENOMEM;
    l->clients = clients;
    l->principal = principal;
    l->max_frame = mc_client_server_max_frame_bytes(clients);
    pthread_mutex_init(&l->mu, NULL);
    mc_wbuf_init(&l->in, IN_MAX_BYTES);
    mc_wbuf_init(&l->feeding, IN_MAX_BYTES);
    for (uint32_t i = 0; i < SLOTS; i++)
        l->free_slots[i] = (uint16_t)(SLOTS - 1 - i);
    l->free_top = SLOTS;
    int rc = mc_client_server_local_open(clients, principal, SLOTS, out_cb, l, &l->conn);
    if (rc != 0) {
        pthread_mutex_destroy(&l->mu);
        free(l);
        return rc;
    }
    uv_async_init(loop, &l->async, async_cb);
    l->async.data = l;
    uv_idle_init(loop, &l->idle);
    l->idle.data = l;
    l->open_handles = 2;
    *out = l;
    return 0;
}

int mc_http_local_submit(struct mc_http_local *l, struct mc_http_call *k, void (*done)(void *),
                         void *arg, uint64_t *id)
{
    pthread_mutex_lock(&l->mu);
    if (l->closed || l->free_top == 0) {
        int rc = l->closed ? MC_ESHUTDOWN : MC_ELIMIT;
        pthread_mutex_unlock(&l->mu);
        return rc;
    }
    uint32_t i = l->free_slots[--l->free_top];
    uint64_t rid = (++l->gen << SLOT_BITS) | i;
    k->req.request_id = rid;
    size_t off = l->in.len;
    int rc = mc_proto_request_encode(&l->in, &k->req);
    if (rc == 0 && l->in.len - off > l->max_frame) {
        /* Over the node's --max-frame-bytes: the client server would close the in-process
         * connection as a protocol error, and every later request through it would fail. */
        rc = MC_ETOOLARGE;
    }
    if (rc != 0) {
        l->in.len = off;
        l->in.err = 0;
        l->free_slots[l->free_top++] = (uint16_t)i;
        pthread_mutex_unlock(&l->mu);
        return rc;
    }
    l->slots[i] = (struct slot){.id = rid, .k = k, .done = done, .arg = arg};
    pthread_mutex_unlock(&l->mu);
    *id = rid;
    /* On the loop thread (every HTTP request in-process) an idle handle feeds the batch at
     * the start of the next loop iteration (an active idle handle keeps the loop from
     * blocking in poll, whatever phase submitted): no eventfd write + read per batch, as an
     * async wake-up costs. */
    if (atomic_load(&l->loop_known) && pthread_equal(pthread_self(), l->loop_thread))
        uv_idle_start(&l->idle, idle_cb);
    else
        uv_async_send(&l->async);
    return 0;
}

void mc_http_local_cancel(struct mc_http_local *l, uint64_t id)
{
    pthread_mutex_lock(&l->mu);
    uint32_t i = (uint32_t)(id & ((1u << SLOT_BITS) - 1));
    if (id != 0 && i < SLOTS && l->slots[i].id == id)
        l->slots[i].k = NULL; /* the slot stays taken until the answer (or free) */
    pthread_mutex_unlock(&l->mu);
}

void mc_http_local_fail_all(struct mc_http_local *l, int status)
{
    fail_pending(l, status, true);
}

static void on_closed(uv_handle_t *h)
{
    struct mc_http_local *l = h->data;
    if (--l->open_handles > 0)
        return;
    mc_wbuf_free(&l->in);
    mc_wbuf_free(&l->feeding);
    pthread_mutex_destroy(&l->mu);
    free(l);
}

void mc_http_local_free(struct mc_http_local *l)
{
    if (!l)
        return;
    mc_http_local_fail_all(l, MC_ESHUTDOWN);
    if (l->conn) {
        struct mc_client_conn *c = l->conn;
        l->conn = NULL;
        mc_client_conn_close(c); /* calls out_cb(NULL): nothing is pending any more */
    }
    uv_close((uv_handle_t *)&l->async, on_closed);
    uv_close((uv_handle_t *)&l->idle, on_closed);
}
