/* bench.c: load generator: C connections × P pipelined requests, closed loop or open loop at a
 * fixed rate (latency measured from the intended send time: no coordinated omission). */
#include "loadgen/bench.h"
#include "metacenter/client.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/codec.h"
#include "util/histogram.h"
#include "util/rand.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_CONNECTIONS 1024
#define BENCH_MAX_PIPELINE    4096
#define BENCH_MAX_VALUE_BYTES 65536
#define BENCH_MAX_THREADS     64
/* Endpoints per client tracked in a loop's epoll set (the client library's own limit). */
#define BENCH_MAX_ENDPOINTS 16
/* Every client's timers (timeouts, retries) are stepped at least this often. */
#define BENCH_STEP_NS    5000000ull
#define BENCH_MAX_EVENTS 512

enum workload { WL_PUT, WL_GET, WL_MIXED, WL_LIST, WL_LOAD };

struct bench_cfg {
    char endpoints[1024];
    int connections;
    int threads; /* event-loop threads sharing the connections */
    int pipeline;
    double duration_s;
    enum workload wl;
    int read_pct; /* mixed */
    uint64_t keys;
    uint32_t value_bytes;
    enum mc_consistency consistency;
    double rate;           /* total ops/s; 0 = closed loop */
    uint32_t send_tick_us; /* open loop: sends leave on this grid (0 = each as soon as due) */
    bool json;
    bool follower_reads; /* linearizable reads rotate over every member (client option) */
    uint64_t count;      /* stop after this many ops (0 = duration only) */
    char bucket[64];
    uint32_t list_page;
    uint32_t backoff_max_ms;     /* 0 = client default */
    uint32_t request_timeout_ms; /* 0 = client default */
    bool quiet;
    char cacert[1024], cert[1024], key[1024], token[257]; /* TLS + auth (docs/security.md) */
};

struct worker;

/* A request in flight: preallocated per worker (pipeline + 1), no malloc per op. */
struct req {
    struct worker *w;
    uint64_t start_ns;
    struct req *next_free;
};

/* One connection's client, its pipeline and its share of the schedule. */
struct worker {
    struct bench_cfg *cfg;
    int id;
    struct mc_client *client;
    struct mc_rand rng;
    struct mc_histogram hist;
    uint64_t ops, errors, timeouts;
    int inflight;
    uint64_t next_send_ns; /* open loop schedule */
    uint64_t interval_ns;
    uint64_t key_cursor;
    uint64_t per_worker, submitted; /* --count share (0 = duration only) */
    uint8_t *value;
    int last_error;
    bool warming; /* replies are not recorded */
    bool dirty;   /* had events or new requests: step its client */
    struct req *reqs;
    struct req *free_reqs;
    int reg_fd[BENCH_MAX_ENDPOINTS]; /* what the loop's epoll set holds for each endpoint */
    uint32_t reg_gen[BENCH_MAX_ENDPOINTS];
    short reg_ev[BENCH_MAX_ENDPOINTS];
};

/* One thread and one epoll set driving a share of the connections (--threads). */
struct loop {
    struct bench_cfg *cfg;
    pthread_t thread;
    int epfd;
    struct worker *ws;
    int n;
};

static _Atomic uint64_t total_ops;
static _Atomic uint64_t total_errors;
static _Atomic int stop_flag;
/* Warm-up: each worker first completes one request unmeasured (connect, leader discovery,
 * session registration), then waits for go_flag so every worker's clock starts together;
 * otherwise an open-loop schedule would charge the connection setup to the first requests. */
static _Atomic int warm_count;
static _Atomic int go_flag;
#define BENCH_WARMUP_MAX_MS    10000
#define BENCH_SEND_TICK_MAX_US 100000

static const char usage[] =
    "usage: metacenter bench [flags]\n"
    "       metacenter bench load --objects N [flags]   fill a cluster quickly\n"
    "  --endpoints LIST        servers (default 127.0.0.1:7070)\n"
    "  --cacert/--cert/--key F TLS: CA of the servers, client certificate and key\n"
    "  --token T               bearer token (or METACENTER_TOKEN)\n"
    "  --connections C         client connections (default 16)\n"
    "  --threads T             event-loop threads driving them (default 1: the load\n"
    "                          generator shares the cores with the servers it measures)\n"
    "  --pipeline P            requests in flight per connection (default 16)\n"
    "  --duration S            seconds to run (default 10)\n"
    "  --count N               stop after N operations (default: duration only)\n"
    "  --workload W            put | get | mixed:R (R% reads) | list (default put)\n"
    "  --keys N                key space (default 100000)\n"
    "  --value-bytes B         user metadata bytes per object (default 128)\n"
    "  --consistency C         linearizable | stale (reads; default linearizable)\n"
    "  --follower-reads        linearizable reads rotate over every member instead of\n"
    "                          going to the leader (the client library's default)\n"
    "  --rate OPS              open loop at OPS ops/s in total (default: closed loop)\n"
    "  --send-tick-us N        open loop: send what is due every N us instead of each\n"
    "                          request as soon as due (fewer, fuller sends: less load-\n"
    "                          generator CPU; the wait counts in the latency; default 0)\n"
    "  --bucket NAME           bucket to use (default bench; created if missing)\n"
    "  --list-page N           list: max-keys per page (default 1000); pages start after a\n"
    "                          random key of the --keys space (as written by bench load)\n"
    "  --backoff-max-ms N      client retry backoff cap (failover probes use a small one)\n"
    "  --request-timeout-ms N  client request deadline (default 5000)\n"
    "  --json                  print one JSON object at the end\n";

static int parse_u64(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-') {
        return MC_EINVAL;
    }
    *out = x;
    return 0;
}

static int parse_args(struct bench_cfg *c, int argc, char **argv)
{
    snprintf(c->endpoints, sizeof(c->endpoints), "127.0.0.1:7070");
    snprintf(c->bucket, sizeof(c->bucket), "bench");
    c->connections = 16;
    c->threads = 1;
    c->pipeline = 16;
    c->duration_s = 10;
    c->keys = 100000;
    c->value_bytes = 128;
    c->list_page = 1000;
    int i = 1;
    if (argc > 1 && strcmp(argv[1], "load") == 0) {
        c->wl = WL_LOAD;
        c->duration_s = 3600;
        i = 2;
    }
    for (; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            fputs(usage, stdout);
            return 1;
        }
        if (strcmp(f, "--json") == 0) {
            c->json = true;
            continue;
        }
        if (strcmp(f, "--follower-reads") == 0) {
            c->follower_reads = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "InvalidArgument: %s needs a value\n", f);
            return MC_EINVAL;
        }
        const char *v = argv[++i];
        uint64_t x = 0;
        int rc = 0;
        if (strcmp(f, "--endpoints") == 0) {
            snprintf(c->endpoints, sizeof(c->endpoints), "%s", v);
        } else if (strcmp(f, "--cacert") == 0) {
            snprintf(c->cacert, sizeof(c->cacert), "%s", v);
        } else if (strcmp(f, "--cert") == 0) {
            snprintf(c->cert, sizeof(c->cert), "%s", v);
        } else if (strcmp(f, "--key") == 0) {
            snprintf(c->key, sizeof(c->key), "%s", v);
        } else if (strcmp(f, "--token") == 0) {
            snprintf(c->token, sizeof(c->token), "%s", v);
        } else if (strcmp(f, "--bucket") == 0) {
            snprintf(c->bucket, sizeof(c->bucket), "%s", v);
        } else if (strcmp(f, "--connections") == 0) {
            rc = parse_u64(v, &x);
            rc = rc || x < 1 || x > BENCH_MAX_CONNECTIONS ? MC_EINVAL : 0;
            c->connections = (int)x;
        } else if (strcmp(f, "--threads") == 0) {
            rc = parse_u64(v, &x);
            rc = rc || x < 1 || x > BENCH_MAX_THREADS ? MC_EINVAL : 0;
            c->threads = (int)x;
        } else if (strcmp(f, "--pipeline") == 0) {
            rc = parse_u64(v, &x);
            rc = rc || x < 1 || x > BENCH_MAX_PIPELINE ? MC_EINVAL : 0;
            c->pipeline = (int)x;
        } else if (strcmp(f, "--duration") == 0) {
            char *end;
            c->duration_s = strtod(v, &end);
            rc = *end || c->duration_s <= 0 ? MC_EINVAL : 0;
        } else if (strcmp(f, "--count") == 0 || strcmp(f, "--objects") == 0) {
            rc = parse_u64(v, &c->count);
            if (c->wl == WL_LOAD) {
                c->keys = c->count;
            }
        } else if (strcmp(f, "--keys") == 0) {
            rc = parse_u64(v, &c->keys);
            rc = rc || c->keys == 0 ? MC_EINVAL : 0;
        } else if (strcmp(f, "--value-bytes") == 0) {
            rc = parse_u64(v, &x);
            rc = rc || x > BENCH_MAX_VALUE_BYTES ? MC_EINVAL : 0;
            c->value_bytes = (uint32_t)x;
        } else if (strcmp(f, "--list-page") == 0) {
            rc = parse_u64(v, &x);
            rc = rc || x < 1 || x > 1000 ? MC_EINVAL : 0;
            c->list_page = (uint32_t)x;
        } else if (strcmp(f, "--backoff-max-ms") == 0) {
            rc = parse_u64(v, &x);
            rc = rc || x < 1 || x > 60000 ? MC_EINVAL : 0;
            c->backoff_max_ms = (uint32_t)x;
        } else if (strcmp(f, "--request-timeout-ms") == 0) {
            rc = parse_u64(v, &x);
            rc = rc || x < 1 || x > 3600000 ? MC_EINVAL : 0;
            c->request_timeout_ms = (uint32_t)x;
        } else if (strcmp(f, "--send-tick-us") == 0) {
            rc = parse_u64(v, &x);
            rc = rc || x > BENCH_SEND_TICK_MAX_US ? MC_EINVAL : 0;
            c->send_tick_us = (uint32_t)x;
        } else if (strcmp(f, "--rate") == 0) {
            char *end;
            c->rate = strtod(v, &end);
            rc = *end || c->rate < 0 ? MC_EINVAL : 0;
        } else if (strcmp(f, "--consistency") == 0) {
            rc = mc_consistency_parse(v, &c->consistency);
        } else if (strcmp(f, "--workload") == 0) {
            if (strcmp(v, "put") == 0) {
                c->wl = WL_PUT;
            } else if (strcmp(v, "get") == 0) {
                c->wl = WL_GET;
            } else if (strcmp(v, "list") == 0) {
                c->wl = WL_LIST;
            } else if (strncmp(v, "mixed:", 6) == 0 && parse_u64(v + 6, &x) == 0 && x <= 100) {
                c->wl = WL_MIXED;
                c->read_pct = (int)x;
            } else {
                rc = MC_EINVAL;
            }
        } else {
            fprintf(stderr, "InvalidArgument: unknown flag '%s' (see bench --help)\n", f);
            return MC_EINVAL;
        }
        if (rc) {
            fprintf(stderr, "InvalidArgument: bad value '%s' for %s\n", v, f);
            return MC_EINVAL;
        }
    }
    if (c->send_tick_us && c->rate <= 0) {
        fprintf(stderr, "InvalidArgument: --send-tick-us needs --rate (open loop)\n");
        return MC_EINVAL;
    }
    return 0;
}

/* "key-%012llu" without snprintf (it showed in the generator's profile). */
static void key_of(char *buf, size_t cap, uint64_t k)
{
    if (k >= 1000000000000ull || cap < 17) {
        snprintf(buf, cap, "key-%012llu", (unsigned long long)k);
        return;
    }
    memcpy(buf, "key-", 4);
    for (int i = 15; i >= 4; i--) {
        buf[i] = (char)('0' + k % 10);
        k /= 10;
    }
    buf[16] = 0;
}

/* The time replies read from one socket were taken: one clock read per read batch, not per
 * reply (0 = read the clock: timeouts and retries run outside a batch). A reply's latency ends
 * at the kernel's receive time instead when the client has it (mc_client_rx_ns; not over TLS). */
static _Thread_local uint64_t reply_now_ns;

uint64_t mc_bench_reply_ns(uint64_t rx_ns, uint64_t start_ns, uint64_t read_ns)
{
    if (rx_ns >= start_ns) {
        return rx_ns;
    }
    /* None, or before the request fell due: the wall clock stepped forward between the packet
     * and the read. The read time stands. */
    return read_ns ? read_ns : mc_mono_ns();
}

static void on_reply(void *arg, const struct mc_client_result *r)
{
    struct req *q = arg;
    struct worker *w = q->w;
    w->inflight--;
    w->dirty = true;
    q->next_free = w->free_reqs;
    w->free_reqs = q;
    if (w->warming) {
        return;
    }
    /* A get of a key never written is a valid answer for the benchmark. */
    if (r->status == 0 || r->status == MC_ENOKEY) {
        uint64_t now = mc_bench_reply_ns(mc_client_rx_ns(w->client), q->start_ns, reply_now_ns);
        mc_hist_record(&w->hist, (now > q->start_ns ? now - q->start_ns : 0) / 1000);
        w->ops++;
    } else {
        w->errors++;
        w->last_error = r->status;
        if (r->status == MC_ETIMEOUT) {
            w->timeouts++;
        }
    }
}

static int submit(struct worker *w, uint64_t intended_ns)
{
    struct bench_cfg *c = w->cfg;
    struct req *q = w->free_reqs;
    if (!q) {
        return MC_ELIMIT; /* cannot happen: inflight < pipeline + 1 */
    }
    q->w = w;
    q->start_ns = intended_ns;
    char key[64];
    uint64_t k;
    if (c->wl == WL_LOAD) {
        k = w->key_cursor++;
    } else if (c->wl == WL_LIST) { /* full pages: start at least a page before the end */
        k = mc_rand_below(&w->rng, c->keys > c->list_page ? c->keys - c->list_page : 1);
    } else {
        k = mc_rand_below(&w->rng, c->keys);
    }
    key_of(key, sizeof(key), k);
    bool read = c->wl == WL_GET || c->wl == WL_LIST ||
                (c->wl == WL_MIXED && (int)mc_rand_below(&w->rng, 100) < c->read_pct);
    struct mc_read_opts ro = {.consistency = c->consistency};
    int rc;
    if (c->wl == WL_LIST) {
        /* A page from a random place: the first page alone would stay in a few hot B-tree pages. */
        struct mc_list_args a = {.bucket = c->bucket, .max_keys = c->list_page, .start_after = key};
        rc = mc_client_list_objects_async(w->client, &a, &ro, on_reply, q);
    } else if (read) {
        rc = mc_client_get_async(w->client, false, c->bucket, key, NULL, &ro, on_reply, q);
    } else {
        struct mc_object_meta meta;
        memset(&meta, 0, sizeof(meta));
        meta.size = 4096;
        meta.etag = "0123456789abcdef0123456789abcdef";
        meta.content_type = "application/octet-stream";
        struct mc_kv kv = {"v", (char *)w->value};
        if (c->value_bytes) {
            meta.user_meta = &kv;
            meta.n_user_meta = 1;
        }
        struct mc_op op;
        memset(&op, 0, sizeof(op));
        struct mc_wbuf buf;
        mc_wbuf_init(&buf, 1u << 20);
        rc = mc_op_put(&op, c->bucket, key, NULL, 0, &meta);
        if (rc == 0) {
            rc = mc_op_encode(&op, &buf);
        }
        if (rc == 0) {
            const void *ops[1] = {buf.data};
            size_t lens[1] = {buf.len};
            rc = mc_client_write_async(w->client, 1, ops, lens, on_reply, q);
        }
        mc_op_clear(&op);
        mc_wbuf_free(&buf);
    }
    if (rc) {
        return rc;
    }
    w->free_reqs = q->next_free;
    w->inflight++;
    w->dirty = true;
    return 0;
}

/* Keep the epoll set in step with the client's sockets (a reconnect may reuse the fd number:
 * the generation tells; a closed socket left the set by itself). */
static void sync_fds(struct loop *l, struct worker *w, int wi)
{
    int n = mc_client_endpoint_count(w->client);
    for (int i = 0; i < n && i < BENCH_MAX_ENDPOINTS; i++) {
        short ev;
        uint32_t gen;
        int fd = mc_client_fd(w->client, i, &ev, &gen);
        if (fd == w->reg_fd[i] && gen == w->reg_gen[i] && ev == w->reg_ev[i]) {
            continue;
        }
        if (fd >= 0) {
            struct epoll_event e = {
                .events = EPOLLIN | ((ev & POLLOUT) ? EPOLLOUT : 0),
                .data.u64 = (uint64_t)wi << 8 | (uint64_t)i,
            };
            bool same = fd == w->reg_fd[i] && gen == w->reg_gen[i];
            if (epoll_ctl(l->epfd, same ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &e) != 0 &&
                errno == EEXIST) {
                epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &e);
            }
        }
        w->reg_fd[i] = fd;
        w->reg_gen[i] = gen;
        w->reg_ev[i] = ev;
    }
}

static short poll_events(uint32_t e)
{
    return (short)(((e & EPOLLIN) ? POLLIN : 0) | ((e & EPOLLOUT) ? POLLOUT : 0) |
                   ((e & EPOLLERR) ? POLLERR : 0) | ((e & EPOLLHUP) ? POLLHUP : 0));
}

/* Wait up to timeout_ms for socket events and hand them to the clients. */
static void loop_wait(struct loop *l, int timeout_ms)
{
    struct epoll_event evs[BENCH_MAX_EVENTS];
    int n = epoll_wait(l->epfd, evs, BENCH_MAX_EVENTS, timeout_ms);
    for (int k = 0; k < n; k++) {
        struct worker *w = &l->ws[evs[k].data.u64 >> 8];
        reply_now_ns = mc_mono_ns();
        mc_client_handle(w->client, (int)(evs[k].data.u64 & 0xff), poll_events(evs[k].events));
        reply_now_ns = 0;
        w->dirty = true;
    }
}

/* Send what the workers queued (one send per endpoint), run client timers when due. */
static void loop_step(struct loop *l, bool all)
{
    for (int i = 0; i < l->n; i++) {
        struct worker *w = &l->ws[i];
        if (w->dirty || all) {
            w->dirty = false;
            mc_client_step(w->client);
            sync_fds(l, w, i);
        }
    }
}

/* Closed loop: top every pipeline up. Open loop: send what the schedule says is due. */
static void refill(struct worker *w, uint64_t now)
{
    struct bench_cfg *c = w->cfg;
    while (w->inflight < c->pipeline && (!w->per_worker || w->submitted < w->per_worker)) {
        uint64_t intended = now;
        if (w->interval_ns) {
            if (w->next_send_ns > now) {
                break;
            }
            intended = w->next_send_ns;
            w->next_send_ns += w->interval_ns;
        }
        if (submit(w, intended) != 0) {
            w->errors++;
            break;
        }
        w->submitted++;
    }
}

static void *loop_main(void *arg)
{
    struct loop *l = arg;
    struct bench_cfg *c = l->cfg;
    uint64_t per_worker =
        c->count ? (c->count + (uint64_t)c->connections - 1) / (uint64_t)c->connections : 0;
    for (int i = 0; i < l->n; i++) {
        struct worker *w = &l->ws[i];
        w->per_worker = per_worker;
        if (c->wl == WL_LOAD) {
            w->key_cursor = (uint64_t)w->id * per_worker;
        }
        w->warming = c->wl != WL_LOAD;
        if (w->warming) {
            submit(w, mc_mono_ns());
        }
    }
    /* Warm-up: one unmeasured request per connection. */
    uint64_t until = mc_mono_ns() + BENCH_WARMUP_MAX_MS * 1000000ull;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < l->n; i++) {
            busy += l->ws[i].inflight > 0;
        }
        if (!busy || mc_mono_ns() >= until || atomic_load(&stop_flag)) {
            break;
        }
        loop_step(l, true);
        loop_wait(l, 10);
    }
    for (int i = 0; i < l->n; i++) {
        l->ws[i].warming = false;
    }
    atomic_fetch_add(&warm_count, l->n);
    while (!atomic_load(&go_flag) && !atomic_load(&stop_flag)) {
        loop_wait(l, 1); /* keep the sockets drained */
    }
    uint64_t now = mc_mono_ns(), last_all = now, grid0 = now;
    uint64_t tick_ns = (uint64_t)c->send_tick_us * 1000;
    for (int i = 0; i < l->n; i++) {
        /* Open loop: the workers' schedules are staggered over one interval, so the offered
         * load is smooth instead of one burst from every connection per interval. */
        struct worker *w = &l->ws[i];
        w->next_send_ns = now + w->interval_ns * (uint64_t)w->id / (uint64_t)c->connections;
    }
    uint64_t published = 0, published_errs = 0;
    while (!atomic_load(&stop_flag)) {
        now = mc_mono_ns();
        /* With a send tick, a request is sent at the last grid point at or after it fell due
         * (a reply waking the loop between grid points sends nothing early). */
        uint64_t due_by = tick_ns ? grid0 + (now - grid0) / tick_ns * tick_ns : now;
        uint64_t next_send = UINT64_MAX, ops = 0, errs = 0;
        bool all_done = per_worker != 0;
        for (int i = 0; i < l->n; i++) {
            struct worker *w = &l->ws[i];
            refill(w, due_by);
            bool share_sent = per_worker && w->submitted >= per_worker; /* --count */
            if (w->interval_ns && !share_sent && w->inflight < c->pipeline &&
                w->next_send_ns < next_send) {
                next_send = w->next_send_ns;
            }
            if (!per_worker || w->submitted < per_worker || w->inflight > 0) {
                all_done = false;
            }
            ops += w->ops;
            errs += w->errors;
        }
        atomic_fetch_add(&total_ops, ops - published);
        atomic_fetch_add(&total_errors, errs - published_errs);
        published = ops;
        published_errs = errs;
        if (all_done) {
            break;
        }
        bool all = now - last_all >= BENCH_STEP_NS;
        if (all) {
            last_all = now;
        }
        loop_step(l, all);
        int timeout = (int)(BENCH_STEP_NS / 1000000);
        if (next_send != UINT64_MAX) {
            if (tick_ns) {
                /* Wait for the grid point at or after the next due send: what falls due
                 * meanwhile leaves in the same sends; its latency still counts from when it
                 * was due (intended), so the wait is measured, never hidden. */
                next_send = grid0 + (next_send - grid0 + tick_ns - 1) / tick_ns * tick_ns;
            }
            uint64_t now2 = mc_mono_ns();
            uint64_t d = next_send > now2 ? next_send - now2 : 0;
            if (d < 1000000) {
                /* Under 1 ms to the next send: take what has arrived, then sleep the rest
                 * instead of spinning (a spinning generator starves the servers). Replies
                 * arriving meanwhile keep their receive time (mc_client_rx_ns). */
                loop_wait(l, 0);
                now2 = mc_mono_ns();
                if (next_send > now2) {
                    struct timespec ts = {0, (long)(next_send - now2)};
                    nanosleep(&ts, NULL);
                }
                continue;
            }
            if ((int)(d / 1000000) < timeout) {
                timeout = (int)(d / 1000000);
            }
        }
        loop_wait(l, timeout);
    }
    /* Drain what is in flight (bounded by the client's request timeout). */
    uint64_t drain_until = mc_mono_ns() + 6000000000ull;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < l->n; i++) {
            busy += l->ws[i].inflight > 0;
        }
        if (!busy || mc_mono_ns() >= drain_until) {
            break;
        }
        loop_step(l, true);
        loop_wait(l, 10);
    }
    return NULL;
}

/* TLS and token settings shared by every client the bench opens. */
static void security_opts(const struct bench_cfg *c, struct mc_client_opts *o)
{
    const char *env = getenv("METACENTER_TOKEN");
    o->token = c->token[0] ? c->token : env;
    o->tls_ca_file = c->cacert[0] ? c->cacert : NULL;
    o->tls_cert_file = c->cert[0] ? c->cert : NULL;
    o->tls_key_file = c->key[0] ? c->key : NULL;
}

static int ensure_bucket(struct bench_cfg *c, const struct mc_client_opts *co)
{
    struct mc_client *cl;
    int rc = mc_client_open(c->endpoints, co, &cl);
    if (rc) {
        return rc;
    }
    rc = mc_client_bucket_create(cl, c->bucket, MC_VERSIONING_UNVERSIONED);
    if (rc == MC_EBUCKETEXISTS) {
        rc = 0;
    }
    if (rc) {
        fprintf(stderr, "%s: creating bucket %s: %s\n", mc_error_name(rc), c->bucket,
                mc_client_last_error(cl)->message);
    }
    mc_client_close(cl);
    return rc;
}

static const char *workload_name(const struct bench_cfg *c, char *buf, size_t cap)
{
    switch (c->wl) {
    case WL_PUT:
        return "put";
    case WL_GET:
        return "get";
    case WL_LIST:
        return "list";
    case WL_LOAD:
        return "load";
    default:
        snprintf(buf, cap, "mixed:%d", c->read_pct);
        return buf;
    }
}

int mc_bench_main(int argc, char **argv)
{
    struct bench_cfg c;
    memset(&c, 0, sizeof(c));
    int rc = parse_args(&c, argc, argv);
    if (rc) {
        return rc == 1 ? 0 : 2;
    }
    if (c.wl == WL_LOAD && c.count == 0) {
        fprintf(stderr, "InvalidArgument: bench load needs --objects N\n");
        return 2;
    }
    struct worker *ws = calloc((size_t)c.connections, sizeof(*ws));
    uint8_t *value = malloc(c.value_bytes + 1);
    if (!ws || !value) {
        return 1;
    }
    for (uint32_t i = 0; i < c.value_bytes; i++) {
        value[i] = (uint8_t)('a' + i % 26);
    }
    value[c.value_bytes] = 0;
    struct mc_client_opts co;
    mc_client_opts_default(&co);
    co.max_pending = (uint32_t)c.pipeline * 2 + 16;
    co.read.consistency = c.consistency;
    co.follower_reads = c.follower_reads;
    /* Between sends the generator may sleep through replies (below): each reply's latency
     * ends when the kernel received it, not when the generator next looked. */
    co.rx_timestamps = true;
    security_opts(&c, &co);
    if (c.backoff_max_ms) {
        co.backoff_max_ms = c.backoff_max_ms;
        co.backoff_min_ms = co.backoff_min_ms < c.backoff_max_ms ? co.backoff_min_ms : 1;
    }
    if (c.request_timeout_ms) {
        co.request_timeout_ms = c.request_timeout_ms;
    }
    if (c.wl != WL_GET && c.wl != WL_LIST && ensure_bucket(&c, &co) != 0) {
        free(ws);
        free(value);
        return 1;
    }
    int n_loops = c.threads < c.connections ? c.threads : c.connections;
    struct loop *loops = calloc((size_t)n_loops, sizeof(*loops));
    struct req *reqs = calloc((size_t)c.connections * (size_t)(c.pipeline + 1), sizeof(*reqs));
    if (!loops || !reqs) {
        return 1;
    }
    for (int i = 0; i < c.connections; i++) {
        struct worker *w = &ws[i];
        w->cfg = &c;
        w->id = i;
        w->value = value;
        mc_rand_seed(&w->rng, (uint64_t)i * 7919 + mc_mono_ns());
        mc_hist_reset(&w->hist);
        w->reqs = reqs + (size_t)i * (size_t)(c.pipeline + 1);
        for (int k = 0; k <= c.pipeline; k++) {
            w->reqs[k].next_free = w->free_reqs;
            w->free_reqs = &w->reqs[k];
        }
        for (int k = 0; k < BENCH_MAX_ENDPOINTS; k++) {
            w->reg_fd[k] = -1;
        }
        if (c.rate > 0) {
            w->interval_ns = (uint64_t)(1e9 * c.connections / c.rate);
        }
        rc = mc_client_open(c.endpoints, &co, &w->client);
        if (rc) {
            fprintf(stderr, "InvalidArgument: bad --endpoints '%s'\n", c.endpoints);
            return 2;
        }
    }
    atomic_store(&total_ops, 0);
    atomic_store(&stop_flag, 0);
    atomic_store(&warm_count, 0);
    atomic_store(&go_flag, 0);
    /* Connections are split evenly: loop k drives workers [k*C/T, (k+1)*C/T). */
    for (int k = 0; k < n_loops; k++) {
        struct loop *l = &loops[k];
        int first = (int)((int64_t)k * c.connections / n_loops);
        int last = (int)((int64_t)(k + 1) * c.connections / n_loops);
        l->cfg = &c;
        l->ws = ws + first;
        l->n = last - first;
        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        if (l->epfd < 0) {
            fprintf(stderr, "bench: epoll_create1: %s\n", strerror(errno));
            return 1;
        }
        pthread_create(&l->thread, NULL, loop_main, l);
    }
    uint64_t warm_until = mc_mono_ns() + BENCH_WARMUP_MAX_MS * 1000000ull;
    while (atomic_load(&warm_count) < c.connections && mc_mono_ns() < warm_until) {
        usleep(1000);
    }
    uint64_t start = mc_mono_ns();
    atomic_store(&go_flag, 1);
    bool tty = isatty(STDERR_FILENO);
    uint64_t last_ops = 0, deadline = start + (uint64_t)(c.duration_s * 1e9);
    uint64_t next_report = start + 1000000000ull;
    /* With --count the end is checked often (failover probes time a single write). */
    useconds_t tick_us = c.count ? 2000 : 100000;
    while (mc_mono_ns() < deadline) {
        usleep(tick_us);
        uint64_t done = atomic_load(&total_ops);
        bool all_done = c.count && done + atomic_load(&total_errors) >= c.count;
        uint64_t now = mc_mono_ns();
        if (now >= next_report) { /* progress once a second: on a terminal, or for load */
            next_report += 1000000000ull;
            if (tty || c.wl == WL_LOAD) {
                fprintf(stderr, "\r[%4.0fs] ops=%llu ops/s=%llu errors=%llu", (now - start) / 1e9,
                        (unsigned long long)done, (unsigned long long)(done - last_ops),
                        (unsigned long long)atomic_load(&total_errors));
                if (!tty) {
                    fputc('\n', stderr);
                }
            }
            last_ops = done;
        }
        if (all_done) {
            break;
        }
    }
    atomic_store(&stop_flag, 1);
    for (int k = 0; k < n_loops; k++) {
        pthread_join(loops[k].thread, NULL);
        close(loops[k].epfd);
    }
    double seconds = (double)(mc_mono_ns() - start) / 1e9;
    if (tty) {
        fputc('\n', stderr);
    }
    struct mc_histogram *h = calloc(1, sizeof(*h));
    uint64_t ops = 0, errors = 0;
    int last_error = 0;
    for (int i = 0; i < c.connections; i++) {
        mc_hist_merge(h, &ws[i].hist);
        ops += ws[i].ops;
        errors += ws[i].errors;
        if (ws[i].last_error) {
            last_error = ws[i].last_error;
        }
        mc_client_close(ws[i].client);
    }
    char wbuf[32];
    const char *wname = workload_name(&c, wbuf, sizeof(wbuf));
    double ops_per_sec = ops / seconds;
    if (c.json) {
        printf("{\"workload\":\"%s\",\"connections\":%d,\"pipeline\":%d,\"ops\":%llu,"
               "\"errors\":%llu,\"seconds\":%.3f,\"ops_per_sec\":%.1f,\"p50_us\":%llu,"
               "\"p90_us\":%llu,\"p99_us\":%llu,\"p999_us\":%llu,\"max_us\":%llu,"
               "\"rate\":%.0f,\"send_tick_us\":%u,\"consistency\":\"%s\"}\n",
               wname, c.connections, c.pipeline, (unsigned long long)ops,
               (unsigned long long)errors, seconds, ops_per_sec,
               (unsigned long long)mc_hist_quantile(h, 0.50),
               (unsigned long long)mc_hist_quantile(h, 0.90),
               (unsigned long long)mc_hist_quantile(h, 0.99),
               (unsigned long long)mc_hist_quantile(h, 0.999), (unsigned long long)h->max, c.rate,
               c.send_tick_us, c.consistency == MC_CONSISTENCY_STALE ? "stale" : "linearizable");
    } else {
        printf("workload=%s connections=%d pipeline=%d ops=%llu errors=%llu seconds=%.2f\n"
               "ops/s=%.0f latency_us p50=%llu p90=%llu p99=%llu p99.9=%llu max=%llu\n",
               wname, c.connections, c.pipeline, (unsigned long long)ops,
               (unsigned long long)errors, seconds, ops_per_sec,
               (unsigned long long)mc_hist_quantile(h, 0.50),
               (unsigned long long)mc_hist_quantile(h, 0.90),
               (unsigned long long)mc_hist_quantile(h, 0.99),
               (unsigned long long)mc_hist_quantile(h, 0.999), (unsigned long long)h->max);
    }
    if (errors && last_error) {
        fprintf(stderr, "bench: %llu errors, last: %s\n", (unsigned long long)errors,
                mc_error_name(last_error));
    }
    free(h);
    free(ws);
    free(reqs);
    free(loops);
    free(value);
    return ops == 0 ? 1 : 0;
}
