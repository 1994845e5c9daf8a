/* conn.c: HTTP/1.1 connections on libuv: accept, read + parse, a batch of requests at a time,
 * write. */
#include "http/conn.h"

#include <assert.h>
#include <linux/sockios.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "metacenter/error.h"
#include "obs/metrics.h"
#include "security/tls.h"
#include "util/clock.h"
#include "util/log.h"

/*
 * Per request, a plain connection costs one read (libuv keeps the fd in its epoll set; a
 * short read ends the read loop without another call) and one write (uv_try_write of the
 * answer, head and body in one buffer); nothing is allocated but the handler's response body.
 * uv_write takes over only when the socket buffer is full.
 */

#define READ_BYTES      (16u * 1024) /* room offered to each read */
#define KEEP_IN_BYTES   (64u * 1024) /* a larger idle input buffer is released (one big PUT) */
#define KEEP_HEAD_BYTES 1024u        /* a larger copied head is released after its batch */
#define OUT_MAX_BYTES   (64u * 1024 * 1024) /* largest answer (a listing) + what is queued */
#define KEEP_OUT_BYTES  (64u * 1024)        /* a larger idle output buffer is released */
#define OUT_PAUSE_BYTES (256u * 1024)       /* queued output above: no more requests parsed */
#define SWEEP_MS        1000                /* idle / drain timeout check period ... */
#define SWEEP_MIN_MS    25   /* ... shorter, down to this, for timeouts under 4 s (sweep_period) */
#define XS_IDLE_MS      1000 /* a connection idle this long releases its pipelining exchanges */
#define LISTEN_BACKLOG  512

struct mc_http_io {
    uv_loop_t *loop;
    struct mc_http_server *srv; /* NULL once stopped */
    uv_tcp_t listener;
    uv_timer_t sweep;
    uv_async_t done_async; /* worker completions queued */
    uv_async_t stop_async; /* loopback mode: mc_http_stop from another thread */
    uv_idle_t gap_idle;    /* next loop iteration: flush the connections on gap_list */
    struct mc_http_conn *gap_list;
    int port;
    int refs; /* open handles + connections not yet freed; the io is freed at 0 */
    struct mc_http_conn *conns;
    uint32_t n_conns;
    uint32_t n_alloc; /* connections not yet freed (open or closed while with a worker) */
    char date[48];    /* "Date: <IMF-fixdate>\r\n", refreshed by every sweep (sweep_period) */
    size_t date_len;
    struct mc_log_limit refused_log; /* http_accept_refused: at most one line a second */
    pthread_mutex_t done_mu;
    struct mc_http_exchange *done; /* done_mu */
};

static void process(struct mc_http_conn *c);
static void fail_request(struct mc_http_conn *c, int status);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);
static void flush(struct mc_http_conn *c);
static void write_ready(struct mc_http_conn *c);

static void io_unref(struct mc_http_io *io)
{
    assert(io->refs > 0);
    if (--io->refs == 0) {
        pthread_mutex_destroy(&io->done_mu);
        free(io);
    }
}

/* The exchanges for pipelined requests after the first (~120 KB), allocated at the
 * connection's first batch: freed with it, or once it has been idle for XS_IDLE_MS. */
static void release_exchanges(struct mc_http_conn *c)
{
    assert(c->at_worker == 0);
    for (uint32_t i = 0; c->xs && i < MC_HTTP_PIPELINE_MAX - 1; i++) {
        mc_http_exchange_state_free(&c->xs[i]);
        free(c->xs[i].raw);
    }
    free(c->xs);
    c->xs = NULL;
}

static void conn_free(struct mc_http_conn *c)
{
    struct mc_http_io *io = c->io;
    assert(c->at_worker == 0);
    mc_http_exchange_state_free(&c->x0);
    release_exchanges(c);
    mc_tls_free(c->tls);
    mc_wbuf_free(&c->out);
    mc_wbuf_free(&c->wout);
    free(c->in);
    free(c->cin);
    free(c);
    io->n_alloc--;
    io_unref(io);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct mc_http_conn *c = h->data;
    if (c->at_worker > 0) {
        c->free_later = true; /* a worker still fills an r: freed when the last hands it back */
        return;
    }
    conn_free(c);
}

static struct mc_http_exchange *batch_at(struct mc_http_conn *c, uint32_t i)
{
    assert(i < c->n_batch && c->n_batch <= MC_HTTP_PIPELINE_MAX);
    return i == 0 ? &c->x0 : &c->xs[i - 1];
}

struct mc_http_exchange *mc_http_conn_exchange(struct mc_http_conn *c, uint32_t i)
{
    return batch_at(c, i);
}

static void conn_close(struct mc_http_conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    for (uint32_t i = 0; c->busy && i < c->n_batch; i++)
        if (!batch_at(c, i)->answered)
            mc_http_on_exchange_closing(batch_at(c, i));
    struct mc_http_io *io = c->io;
    if (c->prev)
        c->prev->next = c->next;
    else
        io->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
    if (c->in_gap_list) {
        struct mc_http_conn **p = &io->gap_list;
        while (*p != c)
            p = &(*p)->gap_next;
        *p = c->gap_next;
        c->in_gap_list = false;
    }
    io->n_conns--;
    mc_metrics_http_connections_add(-1);
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

/* ---- input ---- */

static size_t in_limit(const struct mc_http_conn *c)
{
    /* head + body + one chunk's framing + trailers (h1.h), and the spare NUL byte */
    return 2u * MC_H1_MAX_HEAD_BYTES + c->srv->max_body_bytes + MC_H1_MAX_CHUNK_LINE + 16;
}

/* Room for want more bytes (plus the NUL) in c->in, within the limit. Never while busy: the
 * parsed request points into the buffer. Returns the room available (0: full or no memory). */
static size_t in_reserve(struct mc_http_conn *c, size_t want)
{
    assert(!c->busy);
    if (c->in_cap - c->in_len > want)
        return c->in_cap - c->in_len - 1;
    size_t limit = in_limit(c);
    size_t cap = c->in_cap ? c->in_cap * 2 : 4096;
    while (cap < c->in_len + want + 1)
        cap *= 2;
    if (cap > limit)
        cap = limit;
    if (cap > c->in_cap) {
        char *p = malloc(cap);
        if (!p)
            return c->in_cap > c->in_len ? c->in_cap - c->in_len - 1 : 0;
        if (c->in_len)
            memcpy(p, c->in, c->in_len);
        if (c->have_head)
            mc_h1_rebase(&c->x0.h, (uintptr_t)c->in, p); /* the head parsed before the body */
        free(c->in);
        c->in = p;
        c->in_cap = cap;
    }
    return c->in_cap > c->in_len ? c->in_cap - c->in_len - 1 : 0;
}

/* While a request is busy its parsed fields (and its body's NUL terminator) are in c->in, which
 * a worker may be reading: input that arrives meanwhile (a pipelined request) is held in cin
 * until the answer, and reading pauses when that is full. Not stopping the read otherwise
 * saves libuv's epoll_ctl calls (two per request) that a stop/start around each request
 * would cost. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct mc_http_conn *c = h->data;
    bool hold = c->busy && !c->draining && !c->close_after;
    if (hold || c->tls || c->draining || c->close_after) {
        if (!c->cin)
            c->cin = malloc(READ_BYTES);
        size_t off = hold ? c->held_len : 0; /* otherwise ciphertext, or discarded input */
        *buf = uv_buf_init(c->cin ? c->cin + off : NULL, c->cin ? READ_BYTES - (unsigned)off : 0);
        return;
    }
    size_t room = in_reserve(c, READ_BYTES);
    *buf = uv_buf_init(room ? c->in + c->in_len : NULL, (unsigned)room);
}

/* Input held while busy moves into c->in (as much as fits); TLS: the held ciphertext goes
 * into the session (tls_pull decrypts it). May close the connection (TLS). */
static void absorb_held(struct mc_http_conn *c)
{
    if (c->held_len == 0 || c->busy)
        return;
    if (c->tls) {
        if (mc_tls_feed(c->tls, c->cin, c->held_len) != 0) {
            conn_close(c);
            return;
        }
        c->held_len = 0; /* the head deadline: process(), once tls_pull has decrypted it */
        return;
    }
    size_t room = in_reserve(c, c->held_len);
    size_t n = room < c->held_len ? room : c->held_len;
    memcpy(c->in + c->in_len, c->cin, n);
    c->in_len += n;
    memmove(c->cin, c->cin + n, c->held_len - n);
    c->held_len -= n;
}

/* TLS: decrypt what is buffered into c->in. Returns the plaintext bytes added; closes the
 * connection on a TLS failure. */
static size_t tls_pull(struct mc_http_conn *c)
{
    size_t total = 0;
    while (!c->closing && !c->busy) {
        size_t room = in_reserve(c, READ_BYTES);
        if (room == 0)
            break;
        size_t n = 0;
        int rc = mc_tls_read(c->tls, c->in + c->in_len, room, &n);
        if (rc == MC_ESHUTDOWN) {
            c->eof = true; /* close_notify: what is buffered is still answered */
            break;
        }
        if (rc != 0) {
            MC_INFO("http_tls_failed", "err=\"%s\"", mc_tls_error(c->tls));
            flush(c); /* the alert, if any */
            conn_close(c);
            break;
        }
        if (n == 0)
            break;
        c->in_len += n;
        total += n;
    }
    if (!c->closing && mc_tls_pending(c->tls) > 0)
        flush(c); /* handshake records */
    return total;
}

/* Output backpressure: while the socket is full (a uv_write in flight) or much is queued, no
 * further pipelined request is parsed and reading pauses, so a client that sends without
 * reading holds at most one answer plus OUT_PAUSE_BYTES, not everything it asked for (a
 * batch's answers wait in their exchanges meanwhile: write_ready). */
static bool out_paused(const struct mc_http_conn *c)
{
    return c->writing || c->out.len > OUT_PAUSE_BYTES;
}

/* Read unless paused: input (plain or TLS ciphertext) with no room while busy (on_read got
 * UV_ENOBUFS), output backed up, after a half-close, or after the last request until its
 * answer is out (then draining reads to EOF). Reading on while busy lets a half-close be seen
 * before the answer goes (it then says Connection: close), over TLS as over plain TCP. */
static void update_reading(struct mc_http_conn *c)
{
    if (c->closing)
        return;
    bool want = !c->eof &&
                (c->draining || (!c->close_after && !out_paused(c) && (!c->busy || !c->hold_full)));
    if (want && !c->reading) {
        c->hold_full = false;
        c->reading = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0;
    } else if (!want && c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = false;
    }
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct mc_http_conn *c = st->data;
    if (nread == UV_ENOBUFS && c->busy && !c->closing) {
        c->hold_full = true; /* pipelined input filled the holding room: read after the answer */
        update_reading(c);
        return;
    }
    if (nread == UV_EOF && !c->closing && !c->draining) {
        /* Half-closed: no more requests, but the one in flight and the complete ones already
         * buffered are answered (the last with Connection: close), then the connection
         * closes once its output is out. */
        c->eof = true;
        update_reading(c);
        if (!c->busy)
            process(c);
        return;
    }
    if (nread < 0) {
        conn_close(c); /* EOF, reset or error */
        return;
    }
    if (nread == 0 || c->draining || c->close_after)
        return; /* input after the final request is dropped */
    c->last_active_ms = mc_mono_ms();
    if (c->busy) {
        c->held_len += (size_t)nread; /* plaintext or ciphertext, until the answer */
    } else if (c->tls) {
        if (mc_tls_feed(c->tls, buf->base, (size_t)nread) != 0) {
            conn_close(c);
            return;
        }
        tls_pull(c); /* the head deadline: process() */
    } else {
        c->in_len += (size_t)nread;
    }
    if (!c->busy)
        process(c);
    else
        update_reading(c);
}

/* ---- output ---- */

static void on_write(uv_write_t *w, int status);

/* An empty output buffer grown by one large answer (a listing) is released. */
static void shrink(struct mc_wbuf *w)
{
    if (w->len == 0 && w->cap > KEEP_OUT_BYTES) {
        mc_wbuf_free(w);
        mc_wbuf_init(w, OUT_MAX_BYTES);
    }
}

static void on_shutdown(uv_shutdown_t *r, int status)
{
    struct mc_http_conn *c = r->data;
    if (status < 0 || c->eof)
        conn_close(c); /* after a half-close there is no input left to drain */
}

/* The final answer is out: shut the write side and discard what the client still sends
 * (closing with unread input would reset the connection, and the client could lose the
 * answer before reading it: a 413 while it still sends the body). */
static void begin_drain(struct mc_http_conn *c)
{
    if (c->draining || c->closing)
        return;
    c->draining = true;
    c->last_active_ms = mc_mono_ms();
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0) {
        conn_close(c);
        return;
    }
    update_reading(c);
}

static void flush(struct mc_http_conn *c)
{
    if (c->writing || c->closing)
        return;
    if (c->tls) {
        if (c->out.len > 0 && mc_tls_established(c->tls)) {
            if (mc_tls_write(c->tls, c->out.data, c->out.len) != 0) {
                conn_close(c);
                return;
            }
            c->out.len = 0;
        }
        c->out.len = 0; /* plaintext before the handshake is done: none is ever queued */
        if (mc_tls_take_all(c->tls, &c->out) != 0) {
            conn_close(c);
            return;
        }
    }
    if (c->out.err) {
        conn_close(c);
        return;
    }
    if (c->out.len > 0) {
        uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n < 0 && n != UV_EAGAIN) {
            conn_close(c);
            return;
        }
        size_t done = n > 0 ? (size_t)n : 0;
        if (done < c->out.len) {
            /* The socket is full: the rest goes with uv_write from wout. */
            memmove(c->out.data, c->out.data + done, c->out.len - done);
            c->out.len -= done;
            struct mc_wbuf t = c->wout;
            c->wout = c->out;
            c->out = t;
            c->out.len = 0;
            b = uv_buf_init((char *)c->wout.data, (unsigned)c->wout.len);
            c->wreq.data = c;
            if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
                conn_close(c);
                return;
            }
            c->writing = true;
            c->last_write_ms = mc_mono_ms();
            c->last_wq = c->tcp.write_queue_size;
            if (!c->send_since_ms)
                c->send_since_ms = c->last_write_ms;
            return;
        }
        c->out.len = 0;
        shrink(&c->out);
    }
    if (c->close_after && !c->busy) {
        if (c->tls && !mc_tls_established(c->tls)) {
            conn_close(c); /* no session: no answer to deliver (EOF during the handshake) */
        } else if (c->tls && !c->notify_sent) {
            /* The last answer is out: say the end is intended (close_notify) before the FIN,
             * written like an answer (flush again, or on_write once the socket takes it). */
            c->notify_sent = true;
            if (mc_tls_close_notify(c->tls) != 0)
                MC_INFO("http_tls_close_notify_failed", "err=\"%s\"", mc_tls_error(c->tls));
            flush(c);
        } else {
            begin_drain(c);
        }
    }
}

/* Close at once (a timeout, the server stopping). TLS: a close_notify first if nothing is
 * being written (best effort, one non-blocking write; a record cut short would be no
 * better than none). */
static void close_now(struct mc_http_conn *c)
{
    if (c->tls && !c->notify_sent && !c->writing && !c->closing && c->out.len == 0 &&
        mc_tls_established(c->tls)) {
        c->notify_sent = true;
        if (mc_tls_close_notify(c->tls) == 0 && mc_tls_take_all(c->tls, &c->out) == 0 &&
            c->out.len > 0) {
            uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
            (void)uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        }
        c->out.len = 0;
    }
    conn_close(c);
}

static void on_write(uv_write_t *w, int status)
{
    struct mc_http_conn *c = w->data;
    c->writing = false;
    c->wout.len = 0;
    shrink(&c->wout);
    if (status < 0) {
        conn_close(c);
        return;
    }
    flush(c);
    if (!c->closing && c->busy)
        write_ready(c); /* answers of the batch that waited for room */
    if (!c->closing && !c->busy && !c->in_process)
        process(c); /* output drained: parse what was waiting, read again */
}

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "Status";
    }
}

static void put_str(struct mc_wbuf *w, const char *s)
{
    mc_wbuf_put(w, s, strlen(s));
}

/* Status line, headers and (unless HEAD / 204) the body of r into c->out. */
static void put_response(struct mc_http_conn *c, const struct mc_http_response *r, bool head_only,
                         bool keep_alive, bool http10)
{
    char num[MC_FMT_INT_MAX];
    put_str(&c->out, "HTTP/1.1 ");
    mc_wbuf_put(&c->out, num, mc_fmt_u64(num, (uint64_t)r->status));
    put_str(&c->out, " ");
    put_str(&c->out, reason(r->status));
    put_str(&c->out, "\r\n");
    bool no_body = r->status == 204 || r->status == 304;
    if (!no_body) {
        put_str(&c->out, "Content-Type: ");
        put_str(&c->out, r->content_type ? r->content_type : "application/json");
        put_str(&c->out, "\r\nContent-Length: ");
        mc_wbuf_put(&c->out, num, mc_fmt_u64(num, r->body_len));
        put_str(&c->out, "\r\n");
    }
    mc_wbuf_put(&c->out, c->io->date, c->io->date_len);
    for (uint32_t i = 0; i < r->n_headers; i++) {
        /* mc_http_resp_header dropped any name or value that could split the answer */
        put_str(&c->out, r->headers[i].name);
        put_str(&c->out, ": ");
        put_str(&c->out, r->headers[i].value);
        put_str(&c->out, "\r\n");
    }
    if (!keep_alive)
        put_str(&c->out, "Connection: close\r\n");
    else if (http10)
        put_str(&c->out, "Connection: keep-alive\r\n");
    put_str(&c->out, "\r\n");
    if (!no_body && !head_only && r->body_len > 0)
        mc_wbuf_put(&c->out, r->body, r->body_len);
}

/* The batch's bytes leave the buffer; the next pipelined request (if any) moves up. */
static void consume_batch(struct mc_http_conn *c)
{
    if (!c->have_head)
        return;
    size_t end = c->x0.h.head_len + c->x0.h.body_len;
    size_t total = c->x0.h.total_len + c->batch_bytes;
    assert(end < c->in_cap && total <= c->in_len);
    c->in[end] = c->nul_saved;
    memmove(c->in, c->in + total, c->in_len - total);
    c->in_len -= total;
    c->have_head = false;
    c->batch_bytes = 0;
    if (c->in_len == 0 && c->in_cap > KEEP_IN_BYTES) {
        free(c->in);
        c->in = NULL;
        c->in_cap = 0;
    }
}

/* How x's answer is framed, taken from its head at dispatch (x0's lives in c->in, which the
 * batch leaves before its last answer is written). A request refused while being read has no
 * head: its answer closes the connection. */
static void take_shape(struct mc_http_exchange *x, bool parsed)
{
    x->head_only = parsed && strcmp(x->h.method, "HEAD") == 0;
    x->http10 = parsed && x->h.minor == 0;
    x->keep_alive = parsed && x->h.keep_alive;
}

/* x's answer goes into c->out (keep: the connection stays open after it). After an answer
 * that said Connection: close, none is written. */
static void write_answer(struct mc_http_conn *c, struct mc_http_exchange *x, bool keep)
{
    if (!c->final_sent && !c->closing) {
        put_response(c, &x->r, x->head_only, keep, x->http10);
        c->final_sent = !keep;
    }
    free(x->r.body);
    x->r.body = NULL;
    if (!keep)
        c->close_after = true;
}

/* Copies of big heads (long cookies, tokens) are not kept past their batch. */
static void release_heads(struct mc_http_conn *c)
{
    for (uint32_t i = 0; c->xs && i < MC_HTTP_PIPELINE_MAX - 1; i++) {
        if (c->xs[i].raw_cap > KEEP_HEAD_BYTES) {
            free(c->xs[i].raw);
            c->xs[i].raw = NULL;
            c->xs[i].raw_cap = 0;
        }
    }
}

static bool server_running(const struct mc_http_conn *c)
{
    return c->io->srv && !atomic_load_explicit(&c->srv->stopping, memory_order_relaxed);
}

/* The batch's last answer is in: it is written after the others, the batch leaves the buffer
 * and the next one is read. */
static void finish_batch(struct mc_http_conn *c)
{
    struct mc_http_exchange *x = batch_at(c, c->n_batch - 1);
    bool keep = x->keep_alive && !c->close_after && server_running(c);
    c->busy = false;
    c->hold_full = false; /* the holding room empties into c->in before the next request */
    c->n_written = c->n_batch;
    consume_batch(c); /* the answers (r) hold copies, nothing points into c->in */
    /* After a half-close (EOF or TLS close_notify) the answer to the last request says the
     * connection ends: nothing is left after it (TLS: once what is held is decrypted). */
    if (keep && c->tls && c->held_len > 0 && !c->closing) {
        /* Decrypt what is held: a close_notify without a FIN is a half-close too. */
        absorb_held(c);
        if (!c->closing) {
            tls_pull(c);
        }
    }
    if (keep && c->eof && !c->closing) {
        keep = c->in_len + c->held_len > 0;
    }
    write_answer(c, x, keep);
    release_heads(c);
    if (c->closing)
        return;
    c->last_active_ms = mc_mono_ms();
    flush(c);
    if (!c->in_process)
        process(c); /* the next pipelined request, or read again */
}

/* The batch's answers that are in go into c->out, in request order, while the output has room
 * (out_paused: a write in flight or OUT_PAUSE_BYTES queued), so a batch of big answers (16
 * listings) is queued no faster than the socket takes it: at most one answer plus
 * OUT_PAUSE_BYTES, as for single requests. The rest wait in their exchanges (on_write resumes).
 * Answers before the last go out with it, in one write, unless much is queued already; they
 * also wait for the batch's slowest request (docs/http.md). */
/* Answers written while a later one of the batch is not in (a slow read: a forwarded one, one
 * during a leader change) go out at the next loop iteration, not with the batch's last. Not at
 * once: the replies of one ReadIndex round arrive in one callback, and their answers should go
 * in one write. */
static void on_gap_idle(uv_idle_t *h)
{
    struct mc_http_io *io = h->data;
    uv_idle_stop(h);
    while (io->gap_list) {
        struct mc_http_conn *c = io->gap_list;
        io->gap_list = c->gap_next;
        c->gap_next = NULL;
        c->in_gap_list = false;
        if (!c->closing && c->out.len > 0)
            flush(c);
    }
}

static void flush_after_gap(struct mc_http_conn *c)
{
    struct mc_http_io *io = c->io;
    c->gap_next = io->gap_list;
    io->gap_list = c;
    c->in_gap_list = true;
    uv_idle_start(&io->gap_idle, on_gap_idle);
}

static void write_ready(struct mc_http_conn *c)
{
    while (c->busy && !c->closing && !out_paused(c) && c->n_written < c->n_batch &&
           batch_at(c, c->n_written)->answered) {
        if (c->n_written + 1 == c->n_batch) {
            finish_batch(c);
            return;
        }
        struct mc_http_exchange *w = batch_at(c, c->n_written++);
        assert(w->keep_alive); /* only the batch's last may end the connection (batchable) */
        write_answer(c, w, !c->close_after && server_running(c));
        if (c->out.len > OUT_PAUSE_BYTES)
            flush(c);
    }
    if (c->busy && !c->closing && c->out.len > 0 && !c->in_gap_list)
        flush_after_gap(c);
}

void mc_http_conn_respond(struct mc_http_exchange *x)
{
    struct mc_http_conn *c = x->c;
    assert(c->busy && !x->answered);
    x->answered = true;
    assert(x->phase == RQ_NEW); /* server.c leaves RQ_LOCAL / RQ_WORKER before answering */
    write_ready(c);
}

/* An error found while reading the request (the request never reaches server.c): answer it
 * and close. */
static void fail_request(struct mc_http_conn *c, int status)
{
    struct mc_http_response *r = &c->x0.r;
    free(r->body);
    *r = (struct mc_http_response){0};
    switch (status) {
    case 408:
        mc_http_resp_error_named(r, 408, "RequestTimeout", "request not received in time");
        break;
    case 413: {
        char msg[64];
        snprintf(msg, sizeof msg, "request body over %u bytes", c->srv->max_body_bytes);
        mc_metrics_error(MC_ETOOLARGE);
        mc_http_resp_error(r, MC_ETOOLARGE, msg);
        break;
    }
    case 431:
        mc_http_resp_error_named(r, 431, "RequestHeaderFieldsTooLarge",
                                 "request line and headers over 16 KiB or 64 headers");
        break;
    case 501:
        mc_http_resp_error_named(r, 501, "NotImplemented", "unsupported Transfer-Encoding");
        break;
    case 505:
        mc_http_resp_error_named(r, 505, "HTTPVersionNotSupported", "HTTP/1.0 or 1.1 only");
        break;
    default:
        mc_http_resp_error_named(r, 400, "BadRequest", "malformed HTTP request");
        break;
    }
    c->have_head = false; /* nothing to consume: the connection closes */
    c->close_after = true;
    c->busy = true;
    c->n_batch = 1;
    c->n_written = 0;
    c->x0.answered = false;
    take_shape(&c->x0, false);
    mc_http_conn_respond(&c->x0);
}

/* Expect: 100-continue on a request whose body has not all arrived: invite it. */
static void maybe_continue(struct mc_http_conn *c)
{
    const struct mc_h1_req *h = &c->x0.h;
    if (!h->expect_continue || c->continue_sent || h->minor == 0 ||
        (!h->chunked && h->content_length == 0))
        return;
    c->continue_sent = true;
    put_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
    flush(c);
}

/* Only CR and LF (or nothing): what may precede a request line without being one. */
static bool only_blank_lines(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '\r' && p[i] != '\n')
            return false;
    return true;
}

/* A request that may run at the same time as its neighbours: a read (GET or HEAD) with no
 * body, nothing to wait for, and the connection kept open after it. */
static bool batchable(const struct mc_h1_req *h)
{
    return (strcmp(h->method, "GET") == 0 || strcmp(h->method, "HEAD") == 0) && !h->chunked &&
           h->content_length == 0 && !h->expect_continue && h->keep_alive;
}

/* The head of the request at p[0, n) (up to its empty line) into x->raw, parsed there, so a
 * request that turns out not to join the batch leaves c->in as it was (the parser writes into
 * its buffer). false: not complete here, not a read without a body, malformed, or no memory
 * (it is read again, as the first of the next batch). */
static bool take_head(struct mc_http_conn *c, struct mc_http_exchange *x, const char *p, size_t n)
{
    size_t max = n < MC_H1_MAX_HEAD_BYTES ? n : MC_H1_MAX_HEAD_BYTES;
    const char *e = memmem(p, max, "\r\n\r\n", 4);
    if (!e)
        return false;
    size_t len = (size_t)(e - p) + 4;
    if (x->raw_cap < len + 1) {
        char *raw = realloc(x->raw, len + 1);
        if (!raw)
            return false;
        x->raw = raw;
        x->raw_cap = len + 1;
    }
    memcpy(x->raw, p, len);
    x->raw[len] = '\0';
    size_t got = len;
    return mc_h1_parse_head(x->raw, len, &x->h) == 0 && batchable(&x->h) &&
           mc_h1_parse_body(x->raw, &got, c->srv->max_body_bytes, &x->h) == 0 &&
           x->h.total_len == len;
}

/* The first request (x0, complete in c->in) and, when it is a read, the reads buffered right
 * after it, up to MC_HTTP_PIPELINE_MAX: the batch dispatch_batch hands over together. A
 * read after a write waits for the write's answer (the write is a batch of its own). */
static void gather_batch(struct mc_http_conn *c)
{
    c->n_batch = 1;
    c->n_written = 0;
    c->batch_bytes = 0;
    size_t off = c->x0.h.total_len;
    if (!batchable(&c->x0.h))
        return;
    while (c->n_batch < MC_HTTP_PIPELINE_MAX && off < c->in_len) {
        if (!c->xs) {
            c->xs = calloc(MC_HTTP_PIPELINE_MAX - 1, sizeof *c->xs);
            if (!c->xs)
                break;
        }
        struct mc_http_exchange *x = &c->xs[c->n_batch - 1];
        if (!take_head(c, x, c->in + off, c->in_len - off))
            break;
        x->c = c;
        off += x->h.total_len;
        c->batch_bytes += x->h.total_len;
        c->n_batch++;
    }
    if (c->n_batch > 1)
        mc_metrics_http_pipelined_add(c->n_batch - 1);
}

/* Every request of the batch goes to server.c (each may be answered at once). */
static void dispatch_batch(struct mc_http_conn *c)
{
    uint32_t n = c->n_batch;
    for (uint32_t i = 0; i < n; i++) {
        batch_at(c, i)->answered = false;
        take_shape(batch_at(c, i), true);
    }
    for (uint32_t i = 0; i < n && !c->closing; i++) {
        struct mc_http_exchange *x = batch_at(c, i);
        mc_http_on_request(x, i == 0 ? c->in + c->x0.h.head_len : "");
    }
}

static size_t socket_unsent(const struct mc_http_conn *c);
/* Parse and hand over buffered requests, a batch at a time, then (re)start or stop reading. */
static void process(struct mc_http_conn *c)
{
    c->in_process = true;
    while (!c->busy && !c->closing && !c->close_after && !out_paused(c)) {
        absorb_held(c);
        if (c->closing)
            break;
        int rc = 0;
        if (!c->have_head) {
            rc = c->in_len ? mc_h1_parse_head(c->in, c->in_len, &c->x0.h) : MC_H1_MORE;
            if (rc == 0) {
                c->have_head = true;
                c->continue_sent = false;
            }
        }
        if (rc == 0)
            rc = mc_h1_parse_body(c->in, &c->in_len, c->srv->max_body_bytes, &c->x0.h);
        if (rc == MC_H1_MORE) {
            if (c->tls && tls_pull(c) > 0)
                continue;
            if (c->eof) {
                c->close_after = true; /* half-closed: nothing more will complete it */
                break;
            }
            if (c->have_head)
                maybe_continue(c);
            /* The head / body deadline (on_sweep) runs while a request is under way. Blank
             * lines alone do not start it: some clients send a CRLF after a body (RFC 9112
             * §2.2), and an idle keep-alive connection must not be answered 408 for that.
             * Over TLS it counts from the first byte on the wire (a handshake or a request
             * record trickled a byte at a time shows no plaintext, yet must time out too), but
             * a whole record that held no plaintext (a TLS 1.3 KeyUpdate, a post-handshake
             * message) leaves the connection idle: the deadline stops again. */
            bool under_way = c->have_head || !only_blank_lines(c->in, c->in_len) ||
                             (c->tls && mc_tls_incomplete(c->tls));
            if (!under_way)
                c->req_start_ms = 0;
            else if (!c->req_start_ms)
                c->req_start_ms = mc_mono_ms();
            break;
        }
        if (rc != 0) {
            fail_request(c, rc);
            break;
        }
        gather_batch(c); /* before the NUL below, which is the next request's first byte */
        size_t end = c->x0.h.head_len + c->x0.h.body_len;
        c->nul_saved = c->in[end];
        c->in[end] = '\0';
        c->req_start_ms = 0;
        if (c->send_since_ms && !c->writing && c->out.len == 0 && socket_unsent(c) == 0) {
            /* Caught up when it asks again: a client reading every answer before the next
             * request (its request carries the ACKs) is not a slow reader, even if a 1 Hz sweep
             * never sees it fully drained. A pipelining slow reader still has bytes queued. */
            c->send_since_ms = 0;
        }
        c->busy = true;
        dispatch_batch(c);
    }
    c->in_process = false;
    update_reading(c);
    if (c->close_after && !c->busy && !c->closing)
        flush(c); /* nothing more to answer: drain (or close, after a half-close) once out */
}

/* ---- accept, sweep, worker completions ---- */

/* A connection refused over the limit: counted, and logged at most once a second (with how
 * many were refused since the last line) so a flood does not flood the log too. */
static void refused(struct mc_http_io *io)
{
    mc_metrics_http_connection_refused();
    uint64_t suppressed;
    if (!mc_log_limit_allow(&io->refused_log, mc_mono_ms(), &suppressed))
        return;
    /* refused= counts this one too: the refusals since the previous line. */
    MC_WARN("http_accept_refused", "open=%u allocated=%u max=%u refused=%llu", io->n_conns,
            io->n_alloc - 1, io->srv->max_connections, (unsigned long long)suppressed + 1);
}

static void on_connection(uv_stream_t *l, int status)
{
    struct mc_http_io *io = l->data;
    if (status < 0 || !io->srv)
        return;
    struct mc_http_conn *c = calloc(1, sizeof *c);
    if (!c || uv_tcp_init(io->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    c->io = io;
    c->srv = io->srv;
    io->refs++;
    io->n_alloc++;
    /* Allocated: open ones plus those closed while a worker holds them (MC_HTTP_MAX_ALLOCATED
     * at the default limit, which bounds the worker queue). */
    uint32_t max = io->srv->max_connections;
    if (uv_accept(l, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    if (io->n_conns >= max || io->n_alloc > 2 * max) {
        refused(io);
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed); /* over the limit: refused */
        return;
    }
    if (io->srv->tls && mc_tls_new(io->srv->tls, true, NULL, &c->tls) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    mc_wbuf_init(&c->out, OUT_MAX_BYTES);
    mc_wbuf_init(&c->wout, OUT_MAX_BYTES);
    uv_tcp_nodelay(&c->tcp, 1);
    if (io->srv->sndbuf_bytes) {
        int v = (int)io->srv->sndbuf_bytes; /* the kernel doubles it (bookkeeping) */
        (void)uv_send_buffer_size((uv_handle_t *)&c->tcp, &v);
    }
    c->x0.c = c;
    c->x0.k.result.failed_op = -1;
    c->next = io->conns;
    if (io->conns)
        io->conns->prev = c;
    io->conns = c;
    io->n_conns++;
    mc_metrics_http_connections_add(1);
    c->last_active_ms = mc_mono_ms();
    update_reading(c);
}

/* The Date header (RFC 9110 §6.6.1) for every answer: formatted by the sweep (at least once
 * a second), not per answer. */
static void update_date(struct mc_http_io *io)
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    io->date_len = strftime(io->date, sizeof io->date, "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

/* Bytes the kernel still holds for the peer (unsent or unacknowledged); 0 when unknown. */
static size_t socket_unsent(const struct mc_http_conn *c)
{
    uv_os_fd_t fd;
    int n = 0;
    if (uv_fileno((const uv_handle_t *)&c->tcp, &fd) != 0 || ioctl(fd, SIOCOUTQ, &n) != 0)
        return 0;
    return n > 0 ? (size_t)n : 0;
}

/* Output has been pending since send_since_ms: past the send deadline? Measured from when
 * the socket first filled up, and reset only once everything has drained (nothing queued or
 * in flight here, the socket's send queue empty): a reader that takes a few bytes now and
 * then makes progress, so the stall check never fires, yet must not hold a connection (and
 * its queued answers) forever. Seen once a second, so a client that keeps the pipe full
 * without ever catching up for send_timeout_ms is closed too. */
static bool send_expired(struct mc_http_conn *c, uint64_t now)
{
    if (!c->writing && c->out.len == 0 && socket_unsent(c) == 0) {
        c->send_since_ms = 0;
        return false;
    }
    return now - c->send_since_ms > c->srv->send_timeout_ms;
}

/* Every sweep_period (a second by default): the Date string, and the timeouts. Idle
 * keep-alive connections, output that made no progress (a client that stopped reading) or has
 * not drained within send_timeout_ms (a slow reader), and requests not received in time (a
 * head within head_timeout_ms of its first byte, the body within idle_timeout_ms more:
 * slowloris) are closed, the last with a 408. */
static void on_sweep(uv_timer_t *t)
{
    struct mc_http_io *io = t->data;
    update_date(io);
    uint64_t now = mc_mono_ms();
    for (struct mc_http_conn *c = io->conns, *next; c; c = next) {
        next = c->next;
        uint64_t idle = now - c->last_active_ms, idle_max = c->srv->idle_timeout_ms;
        uint64_t head_max = c->srv->head_timeout_ms;
        if (c->draining) {
            if (idle > MC_HTTP_DRAIN_TIMEOUT_MS)
                conn_close(c);
        } else if (c->send_since_ms && send_expired(c, now)) {
            MC_INFO("http_send_timeout", "pending_ms=%llu queued=%zu",
                    (unsigned long long)(now - c->send_since_ms), c->tcp.write_queue_size);
            conn_close(c);
        } else if (c->writing) {
            if (c->tcp.write_queue_size != c->last_wq) {
                c->last_wq = c->tcp.write_queue_size;
                c->last_write_ms = now;
            } else if (now - c->last_write_ms > idle_max) {
                MC_INFO("http_write_stalled", "queued=%zu", c->last_wq);
                conn_close(c);
            }
        } else if (c->busy) {
            continue;
        } else if (c->req_start_ms &&
                   now - c->req_start_ms > (c->have_head ? head_max + idle_max : head_max)) {
            if (c->tls && !mc_tls_established(c->tls))
                conn_close(c); /* no HTTP answer before the handshake is done */
            else
                fail_request(c, 408);
        } else if (idle > idle_max) {
            close_now(c);
        } else if (c->xs && c->at_worker == 0 && idle >= XS_IDLE_MS) {
            release_exchanges(c); /* no batch (not busy), nothing being written */
        }
    }
}

static void drain_done(struct mc_http_io *io)
{
    pthread_mutex_lock(&io->done_mu);
    struct mc_http_exchange *x = io->done;
    io->done = NULL;
    pthread_mutex_unlock(&io->done_mu);
    while (x) {
        struct mc_http_exchange *next = x->done_next;
        struct mc_http_conn *c = x->c;
        x->done_next = NULL;
        assert(x->phase == RQ_WORKER && c->at_worker > 0);
        c->at_worker--;
        if (c->free_later) {
            x->phase = RQ_NEW;
            if (c->at_worker == 0)
                conn_free(c); /* the last of its requests a worker held */
        } else if (c->closing) {
            x->phase = RQ_NEW; /* its close callback is still to come: it frees c */
        } else {
            mc_http_after_worker(x);
            if (!c->closing)
                mc_http_worker_share_freed(c);
        }
        x = next;
    }
}

static void on_done_async(uv_async_t *a)
{
    drain_done(a->data);
}

void mc_http_io_worker_done(struct mc_http_io *io, struct mc_http_exchange *x)
{
    pthread_mutex_lock(&io->done_mu);
    x->done_next = io->done;
    io->done = x;
    pthread_mutex_unlock(&io->done_mu);
    uv_async_send(&io->done_async);
}

static void on_handle_closed(uv_handle_t *h)
{
    io_unref(h->data);
}

static void close_handles(struct mc_http_io *io)
{
    uv_close((uv_handle_t *)&io->listener, on_handle_closed);
    uv_close((uv_handle_t *)&io->sweep, on_handle_closed);
    uv_close((uv_handle_t *)&io->done_async, on_handle_closed);
    uv_close((uv_handle_t *)&io->stop_async, on_handle_closed);
    uv_close((uv_handle_t *)&io->gap_idle, on_handle_closed);
}

void mc_http_io_stop(struct mc_http_io *io)
{
    if (!io->srv)
        return;
    drain_done(io); /* workers have stopped: what they finished is answered */
    while (io->conns) {
        struct mc_http_conn *c = io->conns;
        flush(c);
        close_now(c);
    }
    io->srv = NULL;
    close_handles(io);
}

static void on_stop_async(uv_async_t *a)
{
    mc_http_io_stop(a->data);
}

void mc_http_io_stop_async(struct mc_http_io *io)
{
    uv_async_send(&io->stop_async);
}

int mc_http_io_port(const struct mc_http_io *io)
{
    return io->port;
}

/* The sweep period: every second, or a quarter of the idle or head timeout when that is
 * under 4 s (`serve --http-head-timeout-ms 300` then closes within ~25% of 300 ms, not
 * anywhere up to 1.3 s); at most one sweep per SWEEP_MIN_MS. The send timeout is left out:
 * its drain check samples the socket, and sampling it more often for a short send timeout
 * would change what counts as caught up (send_expired). */
static uint64_t sweep_period(const struct mc_http_server *s)
{
    uint32_t t = s->idle_timeout_ms < s->head_timeout_ms ? s->idle_timeout_ms : s->head_timeout_ms;
    uint64_t p = t / 4;
    return p > SWEEP_MS ? SWEEP_MS : p < SWEEP_MIN_MS ? SWEEP_MIN_MS : p;
}

int mc_http_io_start(struct mc_http_server *s, uv_loop_t *loop, const struct sockaddr_in *sa,
                     struct mc_http_io **out)
{
    struct mc_http_io *io = calloc(1, sizeof *io);
    if (!io)
        return MC_ENOMEM;
    io->loop = loop;
    io->srv = s;
    pthread_mutex_init(&io->done_mu, NULL);
    uv_tcp_init(loop, &io->listener);
    uv_timer_init(loop, &io->sweep);
    uv_async_init(loop, &io->done_async, on_done_async);
    uv_async_init(loop, &io->stop_async, on_stop_async);
    uv_idle_init(loop, &io->gap_idle);
    io->listener.data = io->sweep.data = io->done_async.data = io->stop_async.data = io;
    io->gap_idle.data = io;
    io->refs = 5;
    int rc = uv_tcp_bind(&io->listener, (const struct sockaddr *)sa, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&io->listener, LISTEN_BACKLOG, on_connection);
    struct sockaddr_in bound;
    int len = sizeof bound;
    if (rc == 0)
        rc = uv_tcp_getsockname(&io->listener, (struct sockaddr *)&bound, &len);
    if (rc != 0) {
        MC_ERROR("http_listen_failed", "err=%s", uv_strerror(rc));
        io->srv = s; /* mc_http_io_stop closes the handles; the loop frees io */
        close_handles(io);
        return MC_EIO;
    }
    io->port = ntohs(bound.sin_port);
    update_date(io);
    uint64_t period = sweep_period(s);
    uv_timer_start(&io->sweep, on_sweep, period, period);
    uv_unref((uv_handle_t *)&io->sweep);
    *out = io;
    return 0;
}
