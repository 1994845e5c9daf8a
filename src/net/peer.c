/* peer.c: Raft peer transport over libuv TCP: framed, batched writes, reconnect with backoff. */
#include "net/peer.h"
#include "metacenter/error.h"
#include "util/codec.h"
#include "util/log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INBUF_INITIAL    65536
#define TLS_CIPHER_BYTES (64u * 1024) /* ciphertext read per callback on TLS links */
#define MAX_INBOUND      64

enum link_state { LINK_IDLE, LINK_CONNECTING, LINK_UP, LINK_BACKOFF, LINK_CLOSING };

struct peer {
    uint64_t id;
    char addr[128];
    struct mc_peer_transport *t;
    uv_tcp_t *tcp;
    uv_connect_t connect_req;
    uv_write_t write_req;
    uv_timer_t backoff_timer;
    enum link_state state;
    uint64_t backoff_ms;
    struct mc_wbuf out;      /* frames queued this iteration */
    struct mc_wbuf inflight; /* frames handed to uv_write */
    int writing;
    int used;
    int reported_up;
    struct mc_tls *tls; /* outbound TLS session (NULL = plaintext) */
    uint8_t *cbuf;      /* TLS: ciphertext read buffer */
};

struct inbound {
    uv_tcp_t tcp;
    struct mc_peer_transport *t;
    uint8_t *buf;
    size_t len;
    size_t cap;
    uint64_t from;
    int hello_seen;
    int used;
    struct mc_tls *tls; /* inbound TLS session (NULL = plaintext) */
    uint8_t *cbuf;
    uint64_t unknown_kinds;          /* frames of a kind newer than this build, skipped */
    struct mc_log_limit unknown_log; /* peer_unknown_frame_kind: one line a second per link */
};

struct mc_peer_transport {
    uv_loop_t *loop;
    struct mc_peer_options opts;
    uv_tcp_t listener;
    uv_prepare_t flusher;
    struct peer peers[MC_PEER_MAX_PEERS];
    struct inbound *inbound[MAX_INBOUND];
    int port;
    int stopping;
    int open_handles;
};

int mc_parse_addr(const char *addr, struct sockaddr_storage *out)
{
    char host[128];
    const char *colon = strrchr(addr, ':');
    if (!colon || colon == addr || (size_t)(colon - addr) >= sizeof(host)) {
        return MC_EINVAL;
    }
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535 || end == colon + 1) {
        return MC_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 3 || host[n - 1] != ']') {
            return MC_EINVAL;
        }
        host[n - 1] = 0;
        return uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)out) ? MC_EINVAL : 0;
    }
    if (strcmp(host, "localhost") == 0) {
        strcpy(host, "127.0.0.1");
    }
    return uv_ip4_addr(host, (int)port, (struct sockaddr_in *)out) ? MC_EINVAL : 0;
}

static struct peer *find_peer(struct mc_peer_transport *t, uint64_t id)
{
    for (int i = 0; i < MC_PEER_MAX_PEERS; i++) {
        if (t->peers[i].used && t->peers[i].id == id) {
            return &t->peers[i];
        }
    }
    return NULL;
}

static void transport_release(struct mc_peer_transport *t);

static void handle_closed(uv_handle_t *h)
{
    struct mc_peer_transport *t = h->data;
    free(h);
    t->open_handles--;
    transport_release(t);
}

static void link_down(struct peer *p)
{
    if (p->reported_up) {
        p->reported_up = 0;
        MC_WARN("peer_down", "peer=%llu addr=%s", (unsigned long long)p->id, p->addr);
        if (p->t->opts.on_link) {
            p->t->opts.on_link(p->t->opts.ctx, p->id, 0);
        }
    }
}

static void start_connect(struct peer *p);
static void dial_now(struct peer *p);

static void backoff_fired(uv_timer_t *timer)
{
    struct peer *p = timer->data;
    if (p->state == LINK_BACKOFF) {
        p->state = LINK_IDLE;
        start_connect(p);
    }
}

/* Close the outbound connection and retry after an exponential backoff. */
static void drop_link(struct peer *p)
{
    struct mc_peer_transport *t = p->t;
    if (p->tcp) {
        p->tcp->data = t;
        t->open_handles++;
        uv_close((uv_handle_t *)p->tcp, handle_closed);
        p->tcp = NULL;
    }
    mc_tls_free(p->tls);
    p->tls = NULL;
    mc_wbuf_reset(&p->out);
    link_down(p);
    if (t->stopping || !p->used) {
        p->state = LINK_IDLE;
        return;
    }
    p->state = LINK_BACKOFF;
    p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : t->opts.reconnect_min_ms;
    if (p->backoff_ms > t->opts.reconnect_max_ms) {
        p->backoff_ms = t->opts.reconnect_max_ms;
    }
    uv_timer_start(&p->backoff_timer, backoff_fired, p->backoff_ms, 0);
}

static void alloc_discard(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    static char scratch[256];
    buf->base = scratch;
    buf->len = sizeof(scratch);
}

static void report_up(struct peer *p)
{
    if (!p->reported_up) {
        p->reported_up = 1;
        MC_INFO("peer_up", "peer=%llu addr=%s tls=%d", (unsigned long long)p->id, p->addr,
                p->tls != NULL);
        if (p->t->opts.on_link) {
            p->t->opts.on_link(p->t->opts.ctx, p->id, 1);
        }
    }
}

static void flush_peer(struct peer *p);

static void outbound_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct peer *p = h->data;
    if (!p->tls) {
        alloc_discard(h, suggested, buf);
        return;
    }
    if (!p->cbuf) {
        p->cbuf = malloc(TLS_CIPHER_BYTES);
    }
    *buf = p->cbuf ? uv_buf_init((char *)p->cbuf, TLS_CIPHER_BYTES) : uv_buf_init(NULL, 0);
}

/* Peers send nothing on our outbound link but TLS handshake records; a read otherwise only
 * tells us it closed. */
static void outbound_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct peer *p = s->data;
    if (n < 0) {
        drop_link(p);
        return;
    }
    if (n == 0 || !p->tls) {
        return;
    }
    uint8_t sink[256];
    size_t got = 0;
    int rc = mc_tls_feed(p->tls, buf->base, (size_t)n);
    if (rc == 0) {
        rc = mc_tls_read(p->tls, sink, sizeof(sink), &got); /* drives the handshake */
    }
    if (rc != 0) {
        MC_WARN("peer_tls_failed", "peer=%llu addr=%s err=\"%s\"", (unsigned long long)p->id,
                p->addr, mc_tls_error(p->tls));
        drop_link(p);
        return;
    }
    if (mc_tls_established(p->tls)) {
        report_up(p);
    }
    flush_peer(p); /* handshake records, then what waited for the handshake */
}

static void put_header(uint8_t *h, uint32_t body_len, uint8_t kind, uint64_t from)
{
    mc_put_u32le(h, body_len + 9);
    h[4] = kind;
    mc_put_u64le(h + 5, from);
}

static void connected(uv_connect_t *req, int status)
{
    struct peer *p = req->data;
    if (status < 0 || p->state != LINK_CONNECTING) {
        if (p->state == LINK_CONNECTING) {
            MC_DEBUG("peer_connect_failed", "peer=%llu err=%s", (unsigned long long)p->id,
                     uv_strerror(status));
            drop_link(p);
        }
        return;
    }
    p->state = LINK_UP;
    p->backoff_ms = 0;
    uv_tcp_nodelay(p->tcp, 1);
    if (p->t->opts.tls_client) {
        char host[128];
        snprintf(host, sizeof(host), "%s", p->addr);
        char *colon = strrchr(host, ':');
        if (colon) {
            *colon = 0;
        }
        if (mc_tls_new(p->t->opts.tls_client, false, host, &p->tls) != 0 ||
            mc_tls_handshake(p->tls) != 0) {
            drop_link(p);
            return;
        }
    }
    uv_read_start((uv_stream_t *)p->tcp, outbound_alloc, outbound_read);
    /* HELLO goes first, ahead of anything queued while connecting. */
    struct mc_wbuf merged;
    mc_wbuf_init(&merged, MC_PEER_OUTBUF_MAX + 1024);
    uint8_t *h = mc_wbuf_reserve(&merged, MC_PEER_HEADER_BYTES);
    mc_wbuf_u64(&merged, p->t->opts.cluster_id);
    mc_wbuf_str(&merged, p->t->opts.advertise_client);
    mc_wbuf_str(&merged, p->t->opts.advertise_http);
    mc_wbuf_str(&merged, p->t->opts.advertise_peer);
    if (h) {
        put_header(h, (uint32_t)(merged.len - MC_PEER_HEADER_BYTES), MC_PEER_HELLO,
                   p->t->opts.self_id);
    }
    mc_wbuf_put(&merged, p->out.data, p->out.len);
    mc_wbuf_free(&p->out);
    p->out = merged;
    if (p->tls) {
        flush_peer(p); /* the ClientHello; the link is up once the handshake completes */
    } else {
        report_up(p);
    }
}

static void start_connect(struct peer *p)
{
    struct mc_peer_transport *t = p->t;
    if (p->state != LINK_IDLE || t->stopping) {
        return;
    }
    struct sockaddr_storage sa;
    if (mc_parse_addr(p->addr, &sa) != 0) {
        MC_ERROR("peer_bad_address", "peer=%llu addr=%s", (unsigned long long)p->id, p->addr);
        return;
    }
    p->tcp = malloc(sizeof(*p->tcp));
    if (!p->tcp) {
        return;
    }
    uv_tcp_init(t->loop, p->tcp);
    p->tcp->data = p;
    p->connect_req.data = p;
    p->state = LINK_CONNECTING;
    if (uv_tcp_connect(&p->connect_req, p->tcp, (struct sockaddr *)&sa, connected) != 0) {
        drop_link(p);
    }
}

static void write_done(uv_write_t *req, int status)
{
    struct peer *p = req->data;
    p->writing = 0;
    mc_wbuf_reset(&p->inflight);
    if (status < 0) {
        if (p->state == LINK_UP) {
            drop_link(p);
        }
        return;
    }
}

static void flush_peer(struct peer *p)
{
    if (p->state != LINK_UP || p->writing) {
        return;
    }
    if (p->tls) {
        /* Frames wait (plaintext in out) until the handshake is done; ciphertext goes out
         * through inflight, which is empty while no write is in progress. */
        if (mc_tls_established(p->tls) && p->out.len > 0) {
            if (mc_tls_write(p->tls, p->out.data, p->out.len) != 0) {
                drop_link(p);
                return;
            }
            mc_wbuf_reset(&p->out);
        }
        if (mc_tls_take_all(p->tls, &p->inflight) != 0) {
            drop_link(p);
            return;
        }
        if (p->inflight.len == 0) {
            return;
        }
    } else {
        if (p->out.len == 0) {
            return;
        }
        struct mc_wbuf tmp = p->inflight;
        p->inflight = p->out;
        p->out = tmp;
        mc_wbuf_reset(&p->out);
    }
    uv_buf_t b = uv_buf_init((char *)p->inflight.data, (unsigned)p->inflight.len);
    p->write_req.data = p;
    p->writing = 1;
    if (uv_write(&p->write_req, (uv_stream_t *)p->tcp, &b, 1, write_done) != 0) {
        p->writing = 0;
        mc_wbuf_reset(&p->inflight);
        drop_link(p);
    }
}

void mc_peer_flush(struct mc_peer_transport *t)
{
    for (int i = 0; i < MC_PEER_MAX_PEERS; i++) {
        if (t->peers[i].used) {
            flush_peer(&t->peers[i]);
        }
    }
}

static void flusher_cb(uv_prepare_t *h)
{
    mc_peer_flush(h->data);
}

int mc_peer_send2(struct mc_peer_transport *t, uint64_t to, uint8_t kind, const void *a,
                  size_t alen, const void *b, size_t blen)
{
    struct peer *p = find_peer(t, to);
    if (!p) {
        return MC_ENOMEMBER;
    }
    if (alen + blen + MC_PEER_HEADER_BYTES > MC_PEER_FRAME_MAX) {
        return MC_ETOOLARGE;
    }
    if (p->state == LINK_IDLE) {
        start_connect(p);
    }
    if (p->state != LINK_UP && p->state != LINK_CONNECTING) {
        return MC_EUNAVAIL; /* in backoff: Raft will retransmit */
    }
    if (p->out.len + alen + blen + MC_PEER_HEADER_BYTES > MC_PEER_OUTBUF_MAX) {
        return MC_ELIMIT;
    }
    uint8_t *h = mc_wbuf_reserve(&p->out, MC_PEER_HEADER_BYTES);
    if (!h) {
        p->out.err = 0;
        return MC_ENOMEM;
    }
    put_header(h, (uint32_t)(alen + blen), kind, t->opts.self_id);
    mc_wbuf_put(&p->out, a, alen);
    mc_wbuf_put(&p->out, b, blen);
    if (mc_wbuf_error(&p->out)) {
        int rc = mc_wbuf_error(&p->out);
        mc_wbuf_reset(&p->out);
        return rc;
    }
    return 0;
}

int mc_peer_send(struct mc_peer_transport *t, uint64_t to, uint8_t kind, const void *payload,
                 size_t len)
{
    return mc_peer_send2(t, to, kind, payload, len, NULL, 0);
}

/* ---- inbound ---- */

static void inbound_closed(uv_handle_t *h)
{
    struct inbound *in = h->data;
    struct mc_peer_transport *t = in->t;
    free(in->buf);
    free(in->cbuf);
    mc_tls_free(in->tls);
    free(in);
    t->open_handles--;
    transport_release(t);
}

static void close_inbound(struct inbound *in)
{
    struct mc_peer_transport *t = in->t;
    for (int i = 0; i < MAX_INBOUND; i++) {
        if (t->inbound[i] == in) {
            t->inbound[i] = NULL;
        }
    }
    if (!uv_is_closing((uv_handle_t *)&in->tcp)) {
        uv_close((uv_handle_t *)&in->tcp, inbound_closed);
    }
}

/* Make room for at least 16 KiB more in in->buf (up to one max frame + slack). */
static void inbound_grow(struct inbound *in)
{
    if (in->cap - in->len < 16384) {
        size_t cap = in->cap ? in->cap * 2 : INBUF_INITIAL;
        if (cap > MC_PEER_FRAME_MAX + 65536) {
            cap = MC_PEER_FRAME_MAX + 65536;
        }
        uint8_t *b = cap > in->cap ? realloc(in->buf, cap) : NULL;
        if (b) {
            in->buf = b;
            in->cap = cap;
        }
    }
}

static void inbound_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct inbound *in = h->data;
    if (in->tls) {
        if (!in->cbuf) {
            in->cbuf = malloc(TLS_CIPHER_BYTES);
        }
        *buf = in->cbuf ? uv_buf_init((char *)in->cbuf, TLS_CIPHER_BYTES) : uv_buf_init(NULL, 0);
        return;
    }
    inbound_grow(in);
    buf->base = (char *)in->buf + in->len;
    buf->len = in->cap - in->len;
}

/* A heap-owned write of TLS records (handshake, alerts, tickets) back on an inbound link. */
struct tls_write {
    uv_write_t req;
    size_t len;
    uint8_t data[];
};

static void tls_write_done(uv_write_t *req, int status)
{
    (void)status;
    free(req->data);
}

static void inbound_send_tls(struct inbound *in)
{
    size_t n = mc_tls_pending(in->tls);
    if (n == 0 || uv_is_closing((uv_handle_t *)&in->tcp)) {
        return;
    }
    struct tls_write *w = malloc(sizeof(*w) + n);
    if (!w) {
        return;
    }
    w->len = mc_tls_take(in->tls, w->data, n);
    w->req.data = w;
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)w->len);
    if (uv_write(&w->req, (uv_stream_t *)&in->tcp, &b, 1, tls_write_done) != 0) {
        free(w);
    }
}

static void inbound_parse(struct inbound *in);

/* TLS inbound: decrypt into in->buf, parsing frames whenever it fills. */
static void inbound_read_tls(struct inbound *in, const uv_buf_t *buf, size_t n)
{
    if (mc_tls_feed(in->tls, buf->base, n) != 0) {
        close_inbound(in);
        return;
    }
    for (;;) {
        inbound_grow(in);
        if (in->cap == in->len) {
            close_inbound(in); /* out of memory */
            return;
        }
        size_t got = 0;
        int rc = mc_tls_read(in->tls, in->buf + in->len, in->cap - in->len, &got);
        inbound_send_tls(in);
        if (rc != 0) {
            if (rc != MC_ESHUTDOWN) {
                MC_WARN("peer_tls_failed", "inbound err=\"%s\"", mc_tls_error(in->tls));
            }
            close_inbound(in);
            return;
        }
        if (got == 0) {
            return;
        }
        in->len += got;
        inbound_parse(in);
        if (uv_is_closing((uv_handle_t *)&in->tcp) || in->t->stopping) {
            return;
        }
    }
}

/* A well-formed frame of a kind newer than this build, from the authenticated peer: skipped,
 * the link kept. During a rolling upgrade a newer member sends kinds an older one does not know
 * (MC_PEER_CHECK came in session 8); dropping the link for them would lose the Raft traffic on
 * it too. Logged at most once a second per link: the sender may repeat it on every tick. */
static void skip_unknown_kind(struct inbound *in, uint8_t kind)
{
    in->unknown_kinds++;
    uint64_t suppressed;
    if (mc_log_limit_allow(&in->unknown_log, uv_now(in->t->loop), &suppressed)) {
        MC_WARN("peer_unknown_frame_kind", "from=%llu kind=%u skipped=%llu suppressed=%llu",
                (unsigned long long)in->from, kind, (unsigned long long)in->unknown_kinds,
                (unsigned long long)suppressed);
    }
}

/* Returns 0 to continue, negative to close the connection. */
static int handle_frame(struct inbound *in, uint8_t kind, uint64_t from, const uint8_t *payload,
                        size_t len)
{
    struct mc_peer_transport *t = in->t;
    if (!in->hello_seen) {
        struct mc_rbuf r;
        mc_rbuf_init(&r, payload, len);
        uint64_t cluster = mc_rbuf_u64(&r);
        size_t clen = 0, hlen = 0, plen = 0;
        const uint8_t *caddr = mc_rbuf_bytes(&r, 127, &clen);
        const uint8_t *haddr = mc_rbuf_bytes(&r, 127, &hlen);
        const uint8_t *paddr = mc_rbuf_bytes(&r, 127, &plen);
        if (kind != MC_PEER_HELLO || mc_rbuf_error(&r)) {
            MC_WARN("peer_bad_hello", "from=%llu kind=%u", (unsigned long long)from, kind);
            return MC_EPROTO;
        }
        if (cluster != t->opts.cluster_id && t->opts.cluster_id != 0) {
            MC_WARN("peer_wrong_cluster", "from=%llu cluster=%016llx ours=%016llx",
                    (unsigned long long)from, (unsigned long long)cluster,
                    (unsigned long long)t->opts.cluster_id);
            return MC_EPROTO;
        }
        in->hello_seen = 1;
        in->from = from;
        struct peer *back = find_peer(t, from);
        if (back && back->state == LINK_BACKOFF) {
            MC_INFO("peer_redial", "peer=%llu reason=\"it dialled us: it is back\"",
                    (unsigned long long)from);
            dial_now(back);
        }
        if (t->opts.on_hello) {
            char c[128], hh[128], pp[128];
            memcpy(c, caddr ? (const char *)caddr : "", clen);
            c[clen] = 0;
            memcpy(hh, haddr ? (const char *)haddr : "", hlen);
            hh[hlen] = 0;
            memcpy(pp, paddr ? (const char *)paddr : "", plen);
            pp[plen] = 0;
            t->opts.on_hello(t->opts.ctx, from, cluster, c, hh, pp);
        }
        return 0;
    }
    if (kind == MC_PEER_HELLO || from != in->from) {
        MC_WARN("peer_bad_frame", "from=%llu kind=%u", (unsigned long long)from, kind);
        return MC_EPROTO;
    }
    if (kind > MC_PEER_KIND_MAX) {
        skip_unknown_kind(in, kind);
        return 0;
    }
    t->opts.on_recv(t->opts.ctx, from, kind, payload, len);
    return 0;
}

static void inbound_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct inbound *in = s->data;
    if (n < 0) {
        close_inbound(in);
        return;
    }
    if (in->tls) {
        if (n > 0) {
            inbound_read_tls(in, buf, (size_t)n);
        }
        return;
    }
    in->len += (size_t)n;
    inbound_parse(in);
}

/* Handle every whole frame in in->buf; keep the partial rest. */
static void inbound_parse(struct inbound *in)
{
    size_t off = 0;
    while (in->len - off >= 4) {
        uint32_t flen = mc_get_u32le(in->buf + off);
        if (flen < 9 || flen > MC_PEER_FRAME_MAX) {
            MC_WARN("peer_bad_frame_length", "len=%u", flen);
            close_inbound(in);
            return;
        }
        if (in->len - off < 4 + (size_t)flen) {
            break;
        }
        const uint8_t *f = in->buf + off + 4;
        if (handle_frame(in, f[0], mc_get_u64le(f + 1), f + 9, flen - 9) != 0) {
            close_inbound(in);
            return;
        }
        off += 4 + flen;
        if (in->t->stopping) {
            return;
        }
    }
    if (off > 0) {
        memmove(in->buf, in->buf + off, in->len - off);
        in->len -= off;
    }
}

static void on_accept(uv_stream_t *server, int status)
{
    struct mc_peer_transport *t = server->data;
    if (status < 0) {
        return;
    }
    struct inbound *in = calloc(1, sizeof(*in));
    if (!in) {
        return;
    }
    in->t = t;
    uv_tcp_init(t->loop, &in->tcp);
    in->tcp.data = in;
    t->open_handles++;
    if (uv_accept(server, (uv_stream_t *)&in->tcp) != 0) {
        uv_close((uv_handle_t *)&in->tcp, inbound_closed);
        return;
    }
    int slot = -1;
    for (int i = 0; i < MAX_INBOUND; i++) {
        if (!t->inbound[i]) {
            slot = i;
            break;
        }
    }
    if (slot < 0) {
        MC_WARN("peer_too_many_inbound", "limit=%d", MAX_INBOUND);
        uv_close((uv_handle_t *)&in->tcp, inbound_closed);
        return;
    }
    t->inbound[slot] = in;
    if (t->opts.tls_server && mc_tls_new(t->opts.tls_server, true, NULL, &in->tls) != 0) {
        close_inbound(in);
        return;
    }
    uv_tcp_nodelay(&in->tcp, 1);
    uv_read_start((uv_stream_t *)&in->tcp, inbound_alloc, inbound_read);
}

int mc_peer_start(uv_loop_t *loop, const struct mc_peer_options *opts,
                  struct mc_peer_transport **out)
{
    struct sockaddr_storage sa;
    if (mc_parse_addr(opts->listen_addr, &sa) != 0) {
        MC_ERROR("peer_bad_listen_address", "addr=%s", opts->listen_addr);
        return MC_EINVAL;
    }
    struct mc_peer_transport *t = calloc(1, sizeof(*t));
    if (!t) {
        return MC_ENOMEM;
    }
    t->loop = loop;
    t->opts = *opts;
    if (!t->opts.reconnect_min_ms) {
        t->opts.reconnect_min_ms = 50;
    }
    if (!t->opts.reconnect_max_ms) {
        t->opts.reconnect_max_ms = 2000;
    }
    uv_tcp_init(loop, &t->listener);
    t->listener.data = t;
    int rc = uv_tcp_bind(&t->listener, (struct sockaddr *)&sa, 0);
    if (rc == 0) {
        rc = uv_listen((uv_stream_t *)&t->listener, 128, on_accept);
    }
    if (rc != 0) {
        MC_ERROR("peer_listen_failed", "addr=%s err=%s", opts->listen_addr, uv_strerror(rc));
        uv_close((uv_handle_t *)&t->listener, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
        free(t);
        return MC_EIO;
    }
    struct sockaddr_storage bound;
    int blen = sizeof(bound);
    uv_tcp_getsockname(&t->listener, (struct sockaddr *)&bound, &blen);
    t->port = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                : ((struct sockaddr_in *)&bound)->sin_port);
    uv_prepare_init(loop, &t->flusher);
    t->flusher.data = t;
    uv_prepare_start(&t->flusher, flusher_cb);
    *out = t;
    return 0;
}

void mc_peer_set_cluster_id(struct mc_peer_transport *t, uint64_t cluster_id)
{
    t->opts.cluster_id = cluster_id;
}

int mc_peer_port(const struct mc_peer_transport *t)
{
    return t->port;
}

int mc_peer_set(struct mc_peer_transport *t, uint64_t id, const char *addr)
{
    if (id == t->opts.self_id || strlen(addr) >= sizeof(t->peers[0].addr)) {
        return MC_EINVAL;
    }
    struct peer *p = find_peer(t, id);
    if (p) {
        if (strcmp(p->addr, addr) != 0) {
            snprintf(p->addr, sizeof(p->addr), "%s", addr);
            if (p->state == LINK_UP || p->state == LINK_CONNECTING) {
                drop_link(p);
            }
        }
        return 0;
    }
    for (int i = 0; i < MC_PEER_MAX_PEERS; i++) {
        p = &t->peers[i];
        if (!p->used && p->state == LINK_IDLE && !p->writing) {
            memset(p, 0, sizeof(*p));
            p->used = 1;
            p->id = id;
            p->t = t;
            snprintf(p->addr, sizeof(p->addr), "%s", addr);
            mc_wbuf_init(&p->out, MC_PEER_OUTBUF_MAX + 64);
            mc_wbuf_init(&p->inflight, MC_PEER_OUTBUF_MAX + 64);
            uv_timer_init(t->loop, &p->backoff_timer);
            p->backoff_timer.data = p;
            return 0;
        }
    }
    return MC_ELIMIT;
}

static void dial_now(struct peer *p)
{
    if (p->state == LINK_BACKOFF) {
        uv_timer_stop(&p->backoff_timer);
        p->state = LINK_IDLE; /* backoff_ms is kept: it resets once a connection succeeds */
    }
    start_connect(p); /* only from LINK_IDLE */
}

void mc_peer_dial(struct mc_peer_transport *t, uint64_t id)
{
    struct peer *p = find_peer(t, id);
    if (p) {
        dial_now(p);
    }
}

void mc_peer_remove(struct mc_peer_transport *t, uint64_t id)
{
    struct peer *p = find_peer(t, id);
    if (!p) {
        return;
    }
    p->used = 0;
    uv_timer_stop(&p->backoff_timer);
    drop_link(p);
}

int mc_peer_connected(const struct mc_peer_transport *t, uint64_t id)
{
    for (int i = 0; i < MC_PEER_MAX_PEERS; i++) {
        if (t->peers[i].used && t->peers[i].id == id) {
            return t->peers[i].state == LINK_UP;
        }
    }
    return 0;
}

size_t mc_peer_pending_bytes(const struct mc_peer_transport *t, uint64_t id)
{
    for (int i = 0; i < MC_PEER_MAX_PEERS; i++) {
        const struct peer *p = &t->peers[i];
        if (p->used && p->id == id) {
            return p->out.len + (p->writing ? p->inflight.len : 0);
        }
    }
    return 0;
}

/* Close callback for handles embedded in the transport: only counts them down. */
static void embedded_closed(uv_handle_t *h)
{
    struct mc_peer_transport *t = h->data;
    t->open_handles--;
    transport_release(t);
}

/* Free the transport once it is stopping and its last handle has closed. */
static void transport_release(struct mc_peer_transport *t)
{
    if (!t->stopping || t->open_handles > 0) {
        return;
    }
    for (int i = 0; i < MC_PEER_MAX_PEERS; i++) {
        mc_wbuf_free(&t->peers[i].out);
        mc_wbuf_free(&t->peers[i].inflight);
        mc_tls_free(t->peers[i].tls);
        free(t->peers[i].cbuf);
    }
    free(t);
}

static void close_embedded(struct mc_peer_transport *t, uv_handle_t *h)
{
    h->data = t;
    t->open_handles++;
    uv_close(h, embedded_closed);
}

void mc_peer_stop(struct mc_peer_transport *t)
{
    t->stopping = 1;
    t->open_handles++; /* held until every close below is issued */
    uv_prepare_stop(&t->flusher);
    close_embedded(t, (uv_handle_t *)&t->flusher);
    close_embedded(t, (uv_handle_t *)&t->listener);
    for (int i = 0; i < MC_PEER_MAX_PEERS; i++) {
        struct peer *p = &t->peers[i];
        if (p->t) {
            p->used = 0;
            drop_link(p);
            uv_timer_stop(&p->backoff_timer);
            close_embedded(t, (uv_handle_t *)&p->backoff_timer);
        }
    }
    for (int i = 0; i < MAX_INBOUND; i++) {
        if (t->inbound[i]) {
            close_inbound(t->inbound[i]);
        }
    }
    /* Freed by the last close callback (pending writes complete before it). */
    t->open_handles--;
    if (t->open_handles == 0) {
        transport_release(t);
    }
}
