/* faultproxy.c: TCP proxy for the fault harness: named 127.0.0.1 links that can stall or delay. */
#include "metacenter/error.h"

#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

/*
 * Usage: faultproxy [--control 127.0.0.1:PORT] NAME=LISTEN_PORT:TARGET_PORT ...
 * Each link listens on 127.0.0.1:LISTEN_PORT (0 = ephemeral) and forwards every accepted
 * connection to 127.0.0.1:TARGET_PORT. Commands arrive one per line on stdin (answers on stdout)
 * or on the control socket (answers on the same connection); each gets exactly one answer line,
 * "ok ..." or "error: ...". LINKS is a list of names, "all", or empty for all links.
 *   drop [LINKS]          stall both directions (nothing forwarded; bytes wait, like TCP
 *                         retransmitting through a partition)
 *   drop-out [LINKS]      stall client -> target only (the side that connected to the proxy
 *                         is the client)
 *   drop-in [LINKS]       stall target -> client only
 *   delay MS [LINKS]      deliver each chunk MS milliseconds after it was read (both directions)
 *   heal [LINKS]          clear drops and delay; waiting bytes flow again, in order
 *   close [LINKS]         reset (RST) every existing connection of the links
 *   add NAME LISTEN_PORT TARGET_PORT   add a link
 *   status                one line: name:flags:conns:bytes_out/bytes_in for every link
 *   quit                  exit
 * Stalled bytes are kept, never discarded: dropping bytes inside a TCP stream would corrupt the
 * framing, which no real network does; message loss is modelled by "close".
 * Startup prints "link NAME 127.0.0.1:P -> 127.0.0.1:T" per link, "control 127.0.0.1:C" and then
 * "ready".
 */

#define MAX_LINKS          256
#define MAX_CONNS_PER_LINK 1024
#define MAX_QUEUE_BYTES    (1u << 20) /* per direction: reading pauses beyond it */
#define READ_CHUNK_BYTES   65536
#define MAX_CMD_BYTES      4096
#define MAX_DELAY_MS       600000
#define LOOPBACK           "127.0.0.1"

enum { OUT = 0, IN = 1 }; /* OUT: client -> target; IN: target -> client */

struct chunk {
    struct chunk *next;
    uint64_t due_ms;
    size_t len;
    uv_write_t req;
    struct conn *conn;
    int dir;
    char data[];
};

struct dir_state {
    struct chunk *head, *tail;
    size_t queued, inflight; /* bytes waiting / being written */
    int reading, eof, shut;
};

struct link;

struct conn {
    struct link *link;
    uv_tcp_t sock[2]; /* [OUT] client side, [IN] target side: sock[d] is the source of dir d */
    uv_connect_t creq;
    uv_shutdown_t sreq[2];
    uv_timer_t timer;
    struct dir_state d[2];
    int connected; /* target side connected */
    int closing, open_handles;
    struct conn *prev, *next;
};

struct link {
    char name[64];
    int listen_port, target_port;
    uv_tcp_t server;
    int stall[2];
    uint64_t delay_ms;
    struct conn *conns;
    size_t n_conns;
    uint64_t bytes[2];
};

struct ctl {
    uv_stream_t *stream; /* NULL for stdin, whose answers go to stdout */
    char buf[MAX_CMD_BYTES];
    size_t len;
};

static uv_loop_t *loop;
static struct link *links[MAX_LINKS];
static size_t n_links;

static void pump(struct conn *c, int dir);
static void conn_close(struct conn *c, int reset);

/* ---------- connections ---------- */

static void on_handle_closed(uv_handle_t *hd)
{
    struct conn *c = hd->data;
    if (--c->open_handles > 0)
        return;
    for (int d = 0; d < 2; d++) {
        struct chunk *ch = c->d[d].head;
        while (ch) {
            struct chunk *nx = ch->next;
            free(ch);
            ch = nx;
        }
    }
    free(c);
}

static void conn_close(struct conn *c, int reset)
{
    if (c->closing)
        return;
    c->closing = 1;
    struct link *l = c->link;
    if (c->prev)
        c->prev->next = c->next;
    else
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    l->n_conns--;
    for (int s = 0; s < 2; s++) {
        uv_handle_t *hd = (uv_handle_t *)&c->sock[s];
        if (reset && (s == OUT || c->connected) &&
            uv_tcp_close_reset(&c->sock[s], on_handle_closed) == 0)
            continue;
        uv_close(hd, on_handle_closed);
    }
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    (void)hd;
    (void)suggested;
    struct chunk *ch = malloc(sizeof(*ch) + READ_CHUNK_BYTES);
    buf->base = ch ? ch->data : NULL;
    buf->len = ch ? READ_CHUNK_BYTES : 0;
}

static struct chunk *chunk_of(char *data)
{
    return (struct chunk *)(data - offsetof(struct chunk, data));
}

static void maybe_shutdown(struct conn *c, int dir);

static void on_shutdown(uv_shutdown_t *req, int status)
{
    struct conn *c = req->data;
    (void)status;
    if (c->closing)
        return;
    if (c->d[OUT].shut && c->d[IN].shut)
        conn_close(c, 0);
}

/* Source of dir reached EOF and everything was forwarded: half-close the destination. */
static void maybe_shutdown(struct conn *c, int dir)
{
    struct dir_state *ds = &c->d[dir];
    if (c->closing || !ds->eof || ds->shut || ds->head || ds->inflight || !c->connected)
        return;
    ds->shut = 1;
    c->sreq[dir].data = c;
    if (uv_shutdown(&c->sreq[dir], (uv_stream_t *)&c->sock[1 - dir], on_shutdown) != 0)
        conn_close(c, 0);
}

static void update_reading(struct conn *c, int dir);

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = st->data;
    int dir = st == (uv_stream_t *)&c->sock[OUT] ? OUT : IN;
    struct chunk *ch = buf->base ? chunk_of(buf->base) : NULL;
    if (nread <= 0 || c->closing) {
        free(ch);
        if (c->closing || nread == 0)
            return;
        if (nread == UV_EOF) {
            c->d[dir].eof = 1;
            update_reading(c, dir);
            maybe_shutdown(c, dir);
        } else {
            conn_close(c, 1);
        }
        return;
    }
    struct link *l = c->link;
    /* shrink to what was read: a queue of many small messages must not pin 64 KiB each */
    struct chunk *small = realloc(ch, sizeof(*ch) + (size_t)nread);
    if (small)
        ch = small;
    ch->next = NULL;
    ch->len = (size_t)nread;
    ch->due_ms = uv_now(loop) + l->delay_ms;
    ch->conn = c;
    ch->dir = dir;
    struct dir_state *ds = &c->d[dir];
    if (ds->tail)
        ds->tail->next = ch;
    else
        ds->head = ch;
    ds->tail = ch;
    ds->queued += ch->len;
    pump(c, dir);
}

/* Read from the source of dir only while its queue has room and the direction is not stalled. */
static void update_reading(struct conn *c, int dir)
{
    struct dir_state *ds = &c->d[dir];
    if (c->closing)
        return;
    int want = !ds->eof && !c->link->stall[dir] && ds->queued + ds->inflight < MAX_QUEUE_BYTES &&
               (dir == OUT || c->connected);
    uv_stream_t *src = (uv_stream_t *)&c->sock[dir];
    if (want && !ds->reading) {
        if (uv_read_start(src, on_alloc, on_read) == 0)
            ds->reading = 1;
    } else if (!want && ds->reading) {
        uv_read_stop(src);
        ds->reading = 0;
    }
}

static void on_write(uv_write_t *req, int status)
{
    struct chunk *ch = req->data;
    struct conn *c = ch->conn;
    int dir = ch->dir;
    c->d[dir].inflight -= ch->len;
    free(ch);
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, 1);
        return;
    }
    update_reading(c, dir);
    maybe_shutdown(c, dir);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    pump(c, OUT);
    if (!c->closing)
        pump(c, IN);
}

/* Forward every chunk of dir that is due, unless stalled; arm the timer for the next one. */
static void pump(struct conn *c, int dir)
{
    struct link *l = c->link;
    struct dir_state *ds = &c->d[dir];
    uint64_t now = uv_now(loop);
    while (!c->closing && c->connected && !l->stall[dir] && ds->head &&
           (ds->head->due_ms <= now || l->delay_ms == 0)) {
        struct chunk *ch = ds->head;
        ds->head = ch->next;
        if (!ds->head)
            ds->tail = NULL;
        ds->queued -= ch->len;
        ds->inflight += ch->len;
        l->bytes[dir] += ch->len;
        ch->req.data = ch;
        uv_buf_t b = uv_buf_init(ch->data, (unsigned)ch->len);
        if (uv_write(&ch->req, (uv_stream_t *)&c->sock[1 - dir], &b, 1, on_write) != 0) {
            ds->inflight -= ch->len;
            free(ch);
            conn_close(c, 1);
            return;
        }
    }
    if (c->closing)
        return;
    /* next due chunk in either direction */
    uint64_t next = UINT64_MAX;
    for (int d = 0; d < 2; d++) {
        if (c->d[d].head && !l->stall[d] && c->connected && c->d[d].head->due_ms < next)
            next = c->d[d].head->due_ms;
    }
    if (next != UINT64_MAX)
        uv_timer_start(&c->timer, on_timer, next > now ? next - now : 0, 0);
    update_reading(c, dir);
    maybe_shutdown(c, dir);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    if (c->closing)
        return;
    if (status < 0) {
        conn_close(c, 1); /* target down: the client sees a reset, as with a refused connect */
        return;
    }
    c->connected = 1;
    pump(c, OUT);
    pump(c, IN);
}

static void on_accept(uv_stream_t *server, int status)
{
    struct link *l = server->data;
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->link = l;
    uv_tcp_init(loop, &c->sock[OUT]);
    uv_tcp_init(loop, &c->sock[IN]);
    uv_timer_init(loop, &c->timer);
    c->open_handles = 3;
    c->sock[OUT].data = c->sock[IN].data = c->timer.data = c;
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    l->n_conns++;
    if (uv_accept(server, (uv_stream_t *)&c->sock[OUT]) != 0 || l->n_conns > MAX_CONNS_PER_LINK) {
        conn_close(c, 1);
        return;
    }
    uv_tcp_nodelay(&c->sock[OUT], 1);
    uv_tcp_nodelay(&c->sock[IN], 1);
    struct sockaddr_in dst;
    uv_ip4_addr(LOOPBACK, l->target_port, &dst);
    c->creq.data = c;
    if (uv_tcp_connect(&c->creq, &c->sock[IN], (const struct sockaddr *)&dst, on_connect) != 0) {
        conn_close(c, 1);
        return;
    }
    update_reading(c, OUT);
}

/* ---------- links and commands ---------- */

static struct link *find_link(const char *name)
{
    for (size_t i = 0; i < n_links; i++) {
        if (strcmp(links[i]->name, name) == 0)
            return links[i];
    }
    return NULL;
}

static int parse_port(const char *s, int allow_zero, int *out)
{
    char *end;
    if (strncmp(s, LOOPBACK ":", sizeof(LOOPBACK)) == 0)
        s += sizeof(LOOPBACK);
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < (allow_zero ? 0 : 1) || v > 65535)
        return MC_EINVAL;
    *out = (int)v;
    return 0;
}

static int valid_name(const char *n)
{
    size_t len = strlen(n);
    if (len == 0 || len >= sizeof(((struct link *)0)->name) || strcmp(n, "all") == 0)
        return 0;
    for (const char *p = n; *p; p++) {
        if (!(*p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    }
    return 1;
}

static int link_add(const char *name, const char *listen_s, const char *target_s, char *msg,
                    size_t msg_len)
{
    int lp, tp;
    if (!valid_name(name)) {
        snprintf(msg, msg_len, "bad link name '%s' (letters, digits, -_. only)", name);
        return MC_EINVAL;
    }
    if (find_link(name)) {
        snprintf(msg, msg_len, "link '%s' exists", name);
        return MC_EEXIST;
    }
    if (parse_port(listen_s, 1, &lp) || parse_port(target_s, 0, &tp)) {
        snprintf(msg, msg_len, "bad ports '%s' '%s' (only " LOOPBACK " ports are allowed)",
                 listen_s, target_s);
        return MC_EINVAL;
    }
    if (n_links >= MAX_LINKS) {
        snprintf(msg, msg_len, "at most %d links", MAX_LINKS);
        return MC_ELIMIT;
    }
    struct link *l = calloc(1, sizeof(*l));
    if (!l)
        return MC_ENOMEM;
    snprintf(l->name, sizeof(l->name), "%s", name);
    l->target_port = tp;
    uv_tcp_init(loop, &l->server);
    l->server.data = l;
    struct sockaddr_in a;
    uv_ip4_addr(LOOPBACK, lp, &a);
    int rc = uv_tcp_bind(&l->server, (const struct sockaddr *)&a, 0);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&l->server, 128, on_accept);
    if (rc != 0) {
        snprintf(msg, msg_len, "listen " LOOPBACK ":%d: %s", lp, uv_strerror(rc));
        uv_close((uv_handle_t *)&l->server, NULL); /* l leaks on purpose: the handle owns it */
        return MC_EIO;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    uv_tcp_getsockname(&l->server, (struct sockaddr *)&ss, &sl);
    l->listen_port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    links[n_links++] = l;
    snprintf(msg, msg_len, "link %s " LOOPBACK ":%d -> " LOOPBACK ":%d", l->name, l->listen_port,
             l->target_port);
    return 0;
}

/* Parse "NAME=LISTEN:TARGET" or "NAME=127.0.0.1:LISTEN->127.0.0.1:TARGET". */
static int link_add_spec(const char *spec, char *msg, size_t msg_len)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", spec);
    char *eq = strchr(buf, '=');
    if (!eq) {
        snprintf(msg, msg_len, "bad link '%s': want NAME=LISTEN_PORT:TARGET_PORT", spec);
        return MC_EINVAL;
    }
    *eq = 0;
    char *rest = eq + 1, *target;
    char *arrow = strstr(rest, "->");
    if (arrow) {
        *arrow = 0;
        target = arrow + 2;
    } else {
        target = strrchr(rest, ':');
        if (!target) {
            snprintf(msg, msg_len, "bad link '%s': want NAME=LISTEN_PORT:TARGET_PORT", spec);
            return MC_EINVAL;
        }
        *target++ = 0;
    }
    return link_add(buf, rest, target, msg, msg_len);
}

/* Apply fn to the links named in argv (none or "all": every link). */
static int for_links(char **argv, int argc, void (*fn)(struct link *, uint64_t), uint64_t arg,
                     char *msg, size_t msg_len)
{
    if (argc == 0 || (argc == 1 && strcmp(argv[0], "all") == 0)) {
        for (size_t i = 0; i < n_links; i++)
            fn(links[i], arg);
        return 0;
    }
    for (int i = 0; i < argc; i++) {
        if (!find_link(argv[i])) {
            snprintf(msg, msg_len, "no link '%s'", argv[i]);
            return MC_ENOTFOUND;
        }
    }
    for (int i = 0; i < argc; i++)
        fn(find_link(argv[i]), arg);
    return 0;
}

static void repump(struct link *l)
{
    for (struct conn *c = l->conns, *nx; c; c = nx) {
        nx = c->next;
        pump(c, OUT);
        if (!c->closing)
            pump(c, IN);
    }
}

static void do_stall(struct link *l, uint64_t mask)
{
    l->stall[OUT] |= (int)(mask & 1);
    l->stall[IN] |= (int)((mask >> 1) & 1);
    repump(l);
}

static void do_delay(struct link *l, uint64_t ms)
{
    l->delay_ms = ms;
    repump(l);
}

static void do_heal(struct link *l, uint64_t unused)
{
    (void)unused;
    l->stall[OUT] = l->stall[IN] = 0;
    l->delay_ms = 0;
    repump(l);
}

static void do_close(struct link *l, uint64_t unused)
{
    (void)unused;
    while (l->conns)
        conn_close(l->conns, 1);
}

static void status_line(char *msg, size_t msg_len)
{
    size_t off = (size_t)snprintf(msg, msg_len, "ok");
    for (size_t i = 0; i < n_links && off < msg_len; i++) {
        struct link *l = links[i];
        const char *flags = l->stall[OUT] && l->stall[IN] ? "drop"
                            : l->stall[OUT]               ? "drop-out"
                            : l->stall[IN]                ? "drop-in"
                                                          : "open";
        off +=
            (size_t)snprintf(msg + off, msg_len - off, " %s:%s:delay=%llu:conns=%zu:%llu/%llu",
                             l->name, flags, (unsigned long long)l->delay_ms, l->n_conns,
                             (unsigned long long)l->bytes[OUT], (unsigned long long)l->bytes[IN]);
    }
}

#define MAX_ARGS 300

/* Run one command line; writes the answer line (without newline) into msg. */
static void run_command(char *line, char *msg, size_t msg_len)
{
    char *argv[MAX_ARGS];
    int argc = 0;
    for (char *tok = strtok(line, " \t\r"); tok && argc < MAX_ARGS; tok = strtok(NULL, " \t\r"))
        argv[argc++] = tok;
    msg[0] = 0;
    if (argc == 0) {
        snprintf(msg, msg_len, "error: empty command");
        return;
    }
    const char *cmd = argv[0];
    int rc = 0;
    char err[256] = "";
    if (strcmp(cmd, "drop") == 0) {
        rc = for_links(argv + 1, argc - 1, do_stall, 3, err, sizeof(err));
    } else if (strcmp(cmd, "drop-out") == 0) {
        rc = for_links(argv + 1, argc - 1, do_stall, 1, err, sizeof(err));
    } else if (strcmp(cmd, "drop-in") == 0) {
        rc = for_links(argv + 1, argc - 1, do_stall, 2, err, sizeof(err));
    } else if (strcmp(cmd, "heal") == 0) {
        rc = for_links(argv + 1, argc - 1, do_heal, 0, err, sizeof(err));
    } else if (strcmp(cmd, "close") == 0) {
        rc = for_links(argv + 1, argc - 1, do_close, 0, err, sizeof(err));
    } else if (strcmp(cmd, "delay") == 0) {
        char *end;
        unsigned long ms = argc > 1 ? strtoul(argv[1], &end, 10) : 0;
        if (argc < 2 || *end || ms > MAX_DELAY_MS) {
            snprintf(msg, msg_len, "error: usage: delay MS [LINKS] (MS <= %d)", MAX_DELAY_MS);
            return;
        }
        rc = for_links(argv + 2, argc - 2, do_delay, ms, err, sizeof(err));
    } else if (strcmp(cmd, "add") == 0) {
        if (argc != 4) {
            snprintf(msg, msg_len, "error: usage: add NAME LISTEN_PORT TARGET_PORT");
            return;
        }
        rc = link_add(argv[1], argv[2], argv[3], err, sizeof(err));
        if (rc == 0) {
            snprintf(msg, msg_len, "ok %s", err);
            return;
        }
    } else if (strcmp(cmd, "status") == 0) {
        status_line(msg, msg_len);
        return;
    } else if (strcmp(cmd, "quit") == 0) {
        fflush(stdout);
        exit(0);
    } else {
        snprintf(msg, msg_len,
                 "error: unknown command '%s' (drop drop-in drop-out delay heal close add "
                 "status quit)",
                 cmd);
        return;
    }
    if (rc)
        snprintf(msg, msg_len, "error: %s", err[0] ? err : mc_strerror(rc));
    else
        snprintf(msg, msg_len, "ok");
}

/* ---------- control input (stdin and control socket) ---------- */

static void on_ctl_write(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void answer(struct ctl *ctl, const char *msg)
{
    if (!ctl->stream) {
        printf("%s\n", msg);
        fflush(stdout);
        return;
    }
    size_t len = strlen(msg);
    uv_write_t *req = malloc(sizeof(*req) + len + 1);
    if (!req)
        return;
    char *data = (char *)(req + 1);
    memcpy(data, msg, len);
    data[len] = '\n';
    uv_buf_t b = uv_buf_init(data, (unsigned)len + 1);
    if (uv_write(req, ctl->stream, &b, 1, on_ctl_write) != 0)
        free(req);
}

static void ctl_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    struct ctl *ctl = hd->data;
    (void)suggested;
    buf->base = ctl->buf + ctl->len;
    buf->len = sizeof(ctl->buf) - ctl->len;
}

static void ctl_closed(uv_handle_t *hd)
{
    free(hd->data);
    free(hd);
}

static void ctl_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct ctl *ctl = st->data;
    (void)buf;
    if (nread < 0) {
        uv_read_stop(st);
        if (ctl->stream)
            uv_close((uv_handle_t *)st, ctl_closed);
        return; /* stdin closed: keep serving the control socket and the links */
    }
    ctl->len += (size_t)nread;
    char *nl;
    while ((nl = memchr(ctl->buf, '\n', ctl->len))) {
        *nl = 0;
        char msg[16384];
        run_command(ctl->buf, msg, sizeof(msg));
        answer(ctl, msg);
        size_t used = (size_t)(nl + 1 - ctl->buf);
        memmove(ctl->buf, nl + 1, ctl->len - used);
        ctl->len -= used;
    }
    if (ctl->len == sizeof(ctl->buf)) {
        answer(ctl, "error: command longer than 4096 bytes");
        ctl->len = 0;
    }
}

static void on_ctl_accept(uv_stream_t *server, int status)
{
    if (status < 0)
        return;
    uv_tcp_t *cl = malloc(sizeof(*cl));
    struct ctl *ctl = calloc(1, sizeof(*ctl));
    if (!cl || !ctl) {
        free(cl);
        free(ctl);
        return;
    }
    uv_tcp_init(loop, cl);
    cl->data = ctl;
    ctl->stream = (uv_stream_t *)cl;
    if (uv_accept(server, (uv_stream_t *)cl) != 0 ||
        uv_read_start(ctl->stream, ctl_alloc, ctl_read)) {
        uv_close((uv_handle_t *)cl, ctl_closed);
        return;
    }
}

static void on_signal(uv_signal_t *s, int signum)
{
    (void)s;
    (void)signum;
    fflush(stdout);
    exit(0);
}

static void usage(FILE *f)
{
    fputs("usage: faultproxy [--control 127.0.0.1:PORT] NAME=LISTEN_PORT:TARGET_PORT ...\n"
          "  commands on stdin or the control socket, one per line:\n"
          "  drop|drop-in|drop-out|heal|close [LINK...|all]   delay MS [LINK...|all]\n"
          "  add NAME LISTEN_PORT TARGET_PORT   status   quit\n",
          f);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    loop = uv_default_loop();
    char msg[512];
    const char *control = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--control") == 0 && i + 1 < argc) {
            control = argv[++i];
            continue;
        }
        if (link_add_spec(argv[i], msg, sizeof(msg)) != 0) {
            fprintf(stderr, "faultproxy: %s\n", msg);
            return 2;
        }
        printf("%s\n", msg);
    }
    if (control) {
        int cp;
        static uv_tcp_t ctl_server;
        struct sockaddr_in a;
        if (parse_port(control, 1, &cp) != 0) {
            fprintf(stderr, "faultproxy: bad --control '%s' (want " LOOPBACK ":PORT)\n", control);
            return 2;
        }
        uv_tcp_init(loop, &ctl_server);
        uv_ip4_addr(LOOPBACK, cp, &a);
        int rc = uv_tcp_bind(&ctl_server, (const struct sockaddr *)&a, 0);
        if (rc == 0)
            rc = uv_listen((uv_stream_t *)&ctl_server, 16, on_ctl_accept);
        if (rc != 0) {
            fprintf(stderr, "faultproxy: control " LOOPBACK ":%d: %s\n", cp, uv_strerror(rc));
            return 2;
        }
        struct sockaddr_storage ss;
        int sl = sizeof(ss);
        uv_tcp_getsockname(&ctl_server, (struct sockaddr *)&ss, &sl);
        printf("control " LOOPBACK ":%d\n", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    }
    static struct ctl stdin_ctl;
    static uv_pipe_t stdin_pipe;
    static uv_tty_t stdin_tty;
    uv_handle_type t = uv_guess_handle(0);
    uv_stream_t *in = NULL;
    if (t == UV_NAMED_PIPE && uv_pipe_init(loop, &stdin_pipe, 0) == 0 &&
        uv_pipe_open(&stdin_pipe, 0) == 0)
        in = (uv_stream_t *)&stdin_pipe;
    else if (t == UV_TTY && uv_tty_init(loop, &stdin_tty, 0, 1) == 0)
        in = (uv_stream_t *)&stdin_tty;
    if (in) {
        in->data = &stdin_ctl;
        uv_read_start(in, ctl_alloc, ctl_read);
    }
    static uv_signal_t sigterm, sigint;
    uv_signal_init(loop, &sigterm);
    uv_signal_start(&sigterm, on_signal, SIGTERM);
    uv_signal_init(loop, &sigint);
    uv_signal_start(&sigint, on_signal, SIGINT);
    printf("ready\n");
    return uv_run(loop, UV_RUN_DEFAULT);
}
