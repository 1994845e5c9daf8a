/* test_node_read.c: linearizable reads held for a connection whose output is full
 * (src/node/node_read.c), on a real single node in-process: they are answered once the client
 * reads, and the held ones are not rescanned on loop passes where nothing changed (rev18c R-3);
 * held past their deadline, they are told why (N-1). */
#include "node_test_util.h"

#include "metacenter/client.h"
#include "metacenter/error.h"
#include "net/proto.h"
#include "node/node_internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#define VALUE_BYTES    (60 * 1024) /* inline object: each GET reply is a bit more */
#define N_READS        600         /* ~36 MiB of replies: well past the 8 MiB output limit */
#define PROBE_MS       5
#define WAIT_MAX_MS    10000
#define RECV_TIMEOUT_S 10

/* The node runs on its own loop thread; the test thread is the client. What the test reads of
 * the node is copied out by a probe timer on the loop thread (node state is loop-only). */
static struct {
    struct nt_loop_node ln; /* loop, thread, node, dir, stop */
    uv_timer_t probe;
    uv_check_t pass;
    uint64_t passes_loop; /* loop thread only */
    int port;
    atomic_bool leader;
    atomic_uint_fast64_t scans;    /* n->read_scans */
    atomic_uint_fast64_t checks;   /* n->read_expiry_checks */
    atomic_uint_fast64_t n_reads;  /* n->n_reads */
    atomic_uint_fast64_t passes;   /* loop passes (check callbacks) */
    atomic_bool expire_held;       /* request: the held reads' deadlines are due now */
    atomic_uint_fast64_t not_held; /* reads expired so that were not held (unconfirmed) */
    uint64_t total_output;         /* set before start_node: max_total_output_bytes (0 = dflt) */
    atomic_uint_fast64_t out_peak; /* client server's output_bytes_peak */
    atomic_uint_fast64_t budget_hits;
    bool stopping; /* loop thread only */
} g;

static void on_pass(uv_check_t *h)
{
    (void)h;
    g.passes_loop++;
}

static void node_stopped(void *arg)
{
    (void)arg;
}

static void on_probe(uv_timer_t *t)
{
    (void)t;
    struct mc_node *n = g.ln.n;
    if (g.stopping) {
        return;
    }
    struct mc_node_info info;
    mc_node_get_info(n, &info);
    atomic_store(&g.leader, info.role == MC_RAFT_LEADER);
    atomic_store(&g.scans, n->read_scans);
    atomic_store(&g.checks, n->read_expiry_checks);
    atomic_store(&g.n_reads, n->n_reads);
    atomic_store(&g.passes, g.passes_loop);
    struct mc_client_server_stats cs;
    mc_client_server_stats(n->clients, &cs);
    atomic_store(&g.out_peak, cs.output_bytes_peak);
    atomic_store(&g.budget_hits, cs.budget_hits);
    if (atomic_exchange(&g.expire_held, false)) {
        /* As if NODE_READ_TIMEOUT_MS (5 s) had passed: node_expire_reads answers them at the
         * next tick. Every read left is a held one (confirmed and applied). */
        for (size_t i = 0; i < n->n_reads; i++) {
            if (n->reads[i].batch != 0 || n->reads[i].index > n->applied_index) {
                atomic_fetch_add(&g.not_held, 1); /* asserted by the test thread */
            }
            n->reads[i].deadline_ms = 0;
        }
    }
    if (atomic_load(&g.ln.stop)) {
        g.stopping = true;
        uv_close((uv_handle_t *)&g.probe, NULL);
        uv_close((uv_handle_t *)&g.pass, NULL);
        mc_node_stop(n, node_stopped, NULL);
    }
}

static void teardown(void)
{
    nt_loop_node_teardown(&g.ln);
}

static bool wait_until(bool (*cond)(void), uint64_t max_ms)
{
    uint64_t end = mc_mono_ms() + max_ms;
    while (!cond()) {
        if (mc_mono_ms() >= end) {
            return false;
        }
        usleep(2000);
    }
    return true;
}

static bool is_leader(void)
{
    return atomic_load(&g.leader);
}

/* Start a single node (defaults: 8 MiB max_output_bytes) on a loop thread, wait for it to
 * lead, and put the object burst/big. */
static void start_node(void)
{
    struct mc_node_options o;
    nt_node_options(&o, g.ln.dir, sizeof(g.ln.dir));
    if (g.total_output) {
        o.max_total_output_bytes = g.total_output;
    }
    cr_assert_eq(uv_loop_init(&g.ln.loop), 0);
    int rc = mc_node_start(&g.ln.loop, &o, &g.ln.n);
    cr_assert_eq(rc, 0, "node start: %s", mc_error_name(rc));
    g.port = mc_client_server_port(g.ln.n->clients);
    uv_check_init(&g.ln.loop, &g.pass);
    uv_check_start(&g.pass, on_pass);
    uv_unref((uv_handle_t *)&g.pass);
    uv_timer_init(&g.ln.loop, &g.probe);
    uv_timer_start(&g.probe, on_probe, PROBE_MS, PROBE_MS);
    cr_assert_eq(nt_loop_node_run(&g.ln), 0);
    cr_assert(wait_until(is_leader, WAIT_MAX_MS), "the node did not become leader");

    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", g.port);
    struct mc_client_opts co;
    mc_client_opts_default(&co);
    struct mc_client *c = NULL;
    cr_assert_eq(mc_client_open(addr, &co, &c), 0);
    cr_assert_eq(mc_client_bucket_create(c, "burst", MC_VERSIONING_UNVERSIONED), 0,
                 "bucket create: %s", mc_client_last_error(c)->message);
    static uint8_t value[VALUE_BYTES];
    memset(value, 'v', sizeof(value));
    struct mc_object_meta m = {0};
    m.size = VALUE_BYTES;
    m.etag = "e";
    m.inline_data = value;
    m.inline_len = VALUE_BYTES;
    rc = mc_client_put(c, "burst", "big", &m, NULL, NULL);
    cr_assert_eq(rc, 0, "put: %s", mc_error_name(rc));
    mc_client_close(c);
}

static void put_str(uint8_t **p, const char *s)
{
    uint32_t len = (uint32_t)strlen(s);
    mc_put_u32le(*p, len);
    memcpy(*p + 4, s, len + 1);
    *p += 4 + len + 1;
}

/* A client that pipelines N_READS linearizable GETs of burst/big and reads nothing yet: its small
 * receive buffer fills, then the node's output does, and the rest of the reads are held. */
static int send_reads(void)
{
    int fd = nt_connect(g.port, 64 * 1024, RECV_TIMEOUT_S);
    cr_assert_geq(fd, 0, "connect to the node");
    static uint8_t out[N_READS * 64];
    uint8_t *p = out;
    for (int i = 0; i < N_READS; i++) {
        uint8_t *frame = p;
        p += MC_PROTO_HEADER_BYTES;
        *p++ = 0;           /* consistency: linearizable */
        mc_put_u32le(p, 0); /* max_staleness_ms */
        p += 4;
        put_str(&p, "burst");
        put_str(&p, "big");
        put_str(&p, "");
        struct mc_proto_header h = {.length = (uint32_t)(p - frame - 4),
                                    .version = MC_PROTO_VERSION,
                                    .op = MC_REQ_GET_OBJECT,
                                    .request_id = (uint64_t)i + 1};
        mc_proto_header_put(frame, &h);
    }
    cr_assert_eq(send(fd, out, (size_t)(p - out), 0), p - out);
    return fd;
}

/* One reply frame: its header, and its body in *body (malloc'd, the caller frees). */
static void read_reply(int fd, struct mc_proto_header *h, uint8_t **body, size_t *len)
{
    uint8_t hdr[MC_PROTO_HEADER_BYTES];
    cr_assert(nt_recv_all(fd, hdr, sizeof(hdr)), "connection closed or stalled before a reply");
    mc_proto_header_get(hdr, h);
    *len = h->length + 4 - MC_PROTO_HEADER_BYTES;
    *body = malloc(*len ? *len : 1);
    cr_assert_not_null(*body);
    cr_assert(nt_recv_all(fd, *body, *len), "connection closed or stalled inside a reply");
}

static uint64_t held_reads(void)
{
    return atomic_load(&g.n_reads);
}

static bool some_held(void)
{
    return held_reads() > 0;
}

static bool none_held(void)
{
    return held_reads() == 0;
}

/* Start the node and send N_READS reads that the client does not read: some are served until
 * the connection's output fills, the rest are held. Returns the client's socket; *held: how
 * many are held (0 < *held < N_READS). */
static int hold_reads(uint64_t *held)
{
    start_node();
    int fd = send_reads();
    cr_assert(wait_until(some_held, WAIT_MAX_MS), "no read was held");
    usleep(300 * 1000); /* every read confirmed; served until the output filled */
    *held = held_reads();
    cr_assert_gt(*held, 0, "no read held: the output never filled");
    cr_assert_lt(*held, N_READS, "nothing was served");
    return fd;
}

/* The client reads: each of the N_READS reads is answered once, in full (its object), and none
 * stays held. */
static void read_all_answered(int fd)
{
    static bool seen[N_READS + 1];
    memset(seen, 0, sizeof(seen));
    for (int i = 0; i < N_READS; i++) {
        struct mc_proto_header h;
        uint8_t *body;
        size_t len;
        read_reply(fd, &h, &body, &len);
        cr_assert_eq(h.status, 0, "rid %llu status %s", (unsigned long long)h.request_id,
                     mc_error_name(h.status));
        cr_assert_gt(len, VALUE_BYTES);
        cr_assert(h.request_id >= 1 && h.request_id <= N_READS && !seen[h.request_id]);
        seen[h.request_id] = true;
        free(body);
    }
    cr_assert(wait_until(none_held, WAIT_MAX_MS), "%llu reads left",
              (unsigned long long)held_reads());
}

Test(node_read, held_reads_are_not_rescanned_until_a_drain_and_all_answered, .timeout = 60,
     .fini = teardown)
{
    uint64_t held;
    int fd = hold_reads(&held);
    /* Nothing changes now (no index, no apply, the client reads nothing): the loop keeps
     * passing (ticks, the probe), but the held reads are not walked again. Before: one scan
     * (and one copy of each held read) per pass. */
    uint64_t scans0 = atomic_load(&g.scans), passes0 = atomic_load(&g.passes);
    uint64_t checks0 = atomic_load(&g.checks);
    usleep(300 * 1000);
    uint64_t scans1 = atomic_load(&g.scans), passes1 = atomic_load(&g.passes);
    uint64_t checks1 = atomic_load(&g.checks);
    cr_assert_geq(passes1 - passes0, 20, "the loop passed only %llu times",
                  (unsigned long long)(passes1 - passes0));
    cr_assert_leq(scans1 - scans0, 2, "held reads scanned %llu times in %llu idle loop passes",
                  (unsigned long long)(scans1 - scans0), (unsigned long long)(passes1 - passes0));
    cr_assert_eq(held_reads(), held, "held reads answered while the client read nothing");
    /* The 10 ms tick's expiry looks at the oldest read only (deadlines ascend). Before: every
     * pending read's deadline on every tick (~30 ticks × the held reads). */
    cr_assert_leq(checks1 - checks0, 60, "%llu deadline checks in 300 ms with %llu reads held",
                  (unsigned long long)(checks1 - checks0), (unsigned long long)held);

    /* The client reads: every read is answered, in full, on the same connection. */
    read_all_answered(fd);
    /* Still open: a PING is answered. */
    uint8_t ping[MC_PROTO_HEADER_BYTES];
    struct mc_proto_header ph = {.length = MC_PROTO_HEADER_BYTES - 4,
                                 .version = MC_PROTO_VERSION,
                                 .op = MC_REQ_PING,
                                 .request_id = 99999};
    mc_proto_header_put(ping, &ph);
    cr_assert_eq(send(fd, ping, sizeof(ping), 0), (ssize_t)sizeof(ping));
    struct mc_proto_header h;
    uint8_t *body;
    size_t len;
    read_reply(fd, &h, &body, &len);
    cr_assert_eq(h.request_id, 99999);
    free(body);
    close(fd);
}

Test(node_read, a_held_read_past_its_deadline_says_its_reply_was_held, .timeout = 60,
     .fini = teardown)
{
    uint64_t held;
    int fd = hold_reads(&held);
    atomic_store(&g.expire_held, true);
    cr_assert(wait_until(none_held, WAIT_MAX_MS), "%llu reads left",
              (unsigned long long)held_reads());
    cr_assert_eq(atomic_load(&g.not_held), 0, "reads expired before their index was applied");
    /* The served reads' replies, then one ServiceUnavailable per held read saying why. Before:
     * "read index not confirmed in time", though it was confirmed (and applied). */
    uint64_t ok = 0, unavailable = 0;
    for (int i = 0; i < N_READS; i++) {
        struct mc_proto_header h;
        uint8_t *body;
        size_t len;
        read_reply(fd, &h, &body, &len);
        if (h.status == 0) {
            ok++;
        } else {
            cr_assert_eq(h.status, MC_EUNAVAIL, "status %s", mc_error_name(h.status));
            struct mc_proto_error e;
            cr_assert_eq(mc_proto_error_decode(body, len, &e), 0);
            cr_assert(
                e.message.len == strlen("reply held: connection output full") &&
                    memcmp(e.message.ptr, "reply held: connection output full", e.message.len) == 0,
                "message \"%.*s\"", (int)e.message.len, e.message.ptr);
            unavailable++;
        }
        free(body);
    }
    cr_assert_eq(unavailable, held, "%llu held, %llu told so", (unsigned long long)held,
                 (unsigned long long)unavailable);
    cr_assert_eq(ok, N_READS - held);
    close(fd);
}

/* The server-wide output budget (B2 a) holds reads too: with a 1 MiB budget (8 MiB per
 * connection) the node holds the reads once ~1 MiB of replies is queued, not 8, and every held
 * read is still answered as the client reads (the budget's release wakes the holder). Before:
 * the node queued replies up to the per-connection 8 MiB. */
Test(node_read, the_output_budget_holds_reads_and_all_are_answered, .timeout = 60, .fini = teardown)
{
    g.total_output = 1u << 20;
    uint64_t held;
    int fd = hold_reads(&held);
    uint64_t peak = atomic_load(&g.out_peak);
    cr_assert_leq(peak, g.total_output + 2 * (VALUE_BYTES + 1024), "held %llu bytes of replies",
                  (unsigned long long)peak);
    cr_assert_geq(atomic_load(&g.budget_hits), 1);
    read_all_answered(fd);
    close(fd);
}
