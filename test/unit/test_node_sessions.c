/* test_node_sessions.c: the leader's --max-sessions cap (src/node/node_write.c, aud18 R5) on a
 * real single node in-process: registrations past the cap get SlowDown (counted in the limits
 * metric), and once the sessions expire registrations succeed again, with no other traffic. */
#include "node_test_util.h"

#include "metacenter/error.h"
#include "net/proto.h"
#include "node/node_internal.h"
#include "obs/metrics.h"
#include "util/clock.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

#define MAX_SESSIONS   3
#define TTL_MS         200
#define PROBE_MS       5
#define WAIT_MAX_MS    10000
#define RECV_TIMEOUT_S 10

/* The node runs on its own loop thread; the test thread is the client. */
static struct {
    struct nt_loop_node ln; /* loop, thread, node, dir, stop */
    uv_timer_t probe;
    int port;
    atomic_bool leader;
    atomic_bool step_down; /* request: an expiry tick above a replaced entry, then a step-down */
    bool stopping;         /* loop thread only */
} g;

static void node_stopped(void *arg)
{
    (void)arg;
}

static void on_probe(uv_timer_t *t)
{
    (void)t;
    if (g.stopping) {
        return;
    }
    struct mc_node_info info;
    mc_node_get_info(g.ln.n, &info);
    atomic_store(&g.leader, info.role == MC_RAFT_LEADER);
    if (atomic_exchange(&g.step_down, false)) {
        /* As when the entry holding the last expiry NOOP was replaced by a later leader's log
         * (never applied here) and this node lost leadership: node_ready's soft-state change
         * fails the writes. Leadership comes back at once here (a single node). */
        g.ln.n->tick_index = g.ln.n->applied_index + 1000;
        node_fail_writes(g.ln.n, MC_ENOTLEADER);
    }
    if (atomic_load(&g.ln.stop)) {
        g.stopping = true;
        uv_close((uv_handle_t *)&g.probe, NULL);
        mc_node_stop(g.ln.n, node_stopped, NULL);
    }
}

static void teardown(void)
{
    nt_loop_node_teardown(&g.ln);
}

static bool is_leader(void)
{
    return atomic_load(&g.leader);
}

static void start_node(void)
{
    struct mc_node_options o;
    nt_node_options(&o, g.ln.dir, sizeof(g.ln.dir));
    o.max_sessions = MAX_SESSIONS;
    o.session_ttl_ms = TTL_MS;
    cr_assert_eq(uv_loop_init(&g.ln.loop), 0);
    int rc = mc_node_start(&g.ln.loop, &o, &g.ln.n);
    cr_assert_eq(rc, 0, "node start: %s", mc_error_name(rc));
    g.port = mc_client_server_port(g.ln.n->clients);
    uv_timer_init(&g.ln.loop, &g.probe);
    uv_timer_start(&g.probe, on_probe, PROBE_MS, PROBE_MS);
    cr_assert_eq(nt_loop_node_run(&g.ln), 0);
    uint64_t end = mc_mono_ms() + WAIT_MAX_MS;
    while (!is_leader() && mc_mono_ms() < end) {
        usleep(2000);
    }
    cr_assert(is_leader(), "the node did not become leader");
}

static int connect_node(void)
{
    int fd = nt_connect(g.port, 0, RECV_TIMEOUT_S);
    cr_assert_geq(fd, 0, "connect to the node");
    return fd;
}

/* One REGISTER_SESSION (empty body): its reply's status (0 or a negative MC_E* code). */
static int register_session(int fd, uint64_t request_id)
{
    uint8_t frame[MC_PROTO_HEADER_BYTES];
    struct mc_proto_header h = {.length = MC_PROTO_HEADER_BYTES - 4,
                                .version = MC_PROTO_VERSION,
                                .op = MC_REQ_REGISTER_SESSION,
                                .request_id = request_id};
    mc_proto_header_put(frame, &h);
    cr_assert_eq(send(fd, frame, sizeof(frame), 0), (ssize_t)sizeof(frame));
    uint8_t hdr[MC_PROTO_HEADER_BYTES];
    cr_assert(nt_recv_all(fd, hdr, sizeof(hdr)), "no reply to REGISTER_SESSION");
    mc_proto_header_get(hdr, &h);
    cr_assert_eq(h.request_id, request_id);
    size_t body = h.length + 4 - MC_PROTO_HEADER_BYTES;
    static uint8_t sink[4096];
    cr_assert_leq(body, sizeof(sink));
    cr_assert(nt_recv_all(fd, sink, body), "reply body cut short");
    return h.status;
}

/* REGISTER_SESSION, SlowDown retried as a client does (bounded): a new leader answers SlowDown
 * until it has applied its own term's no-op (can_accept_write), and a registration at the cap
 * until the expiry NOOP has removed expired sessions. *id: the next request id. */
static int register_retrying(int fd, uint64_t *id)
{
    uint64_t end = mc_mono_ms() + WAIT_MAX_MS;
    int st;
    while ((st = register_session(fd, (*id)++)) == MC_ELIMIT && mc_mono_ms() < end) {
        usleep(20 * 1000);
    }
    return st;
}

/* MAX_SESSIONS registrations on a fresh node, each answered OK (the first once the new leader
 * takes writes). *id: the next request id. */
static void fill_to_the_cap(int fd, uint64_t *id)
{
    int st = register_retrying(fd, id);
    cr_assert_eq(st, 0, "registration 1: %s", mc_error_name(st));
    for (int i = 1; i < MAX_SESSIONS; i++) {
        st = register_session(fd, (*id)++);
        cr_assert_eq(st, 0, "registration %d: %s", i + 1, mc_error_name(st));
    }
}

Test(node_sessions, registrations_past_the_cap_are_refused_until_sessions_expire, .timeout = 60,
     .fini = teardown)
{
    start_node();
    int fd = connect_node();
    uint64_t id = 1;
    fill_to_the_cap(fd, &id);
    uint64_t hits0 = mc_metrics_limit_hits(MC_LIMIT_SESSIONS);
    int st = register_session(fd, id++);
    cr_assert_eq(st, MC_ELIMIT, "past --max-sessions: %s", mc_error_name(st));
    cr_assert_eq(mc_metrics_limit_hits(MC_LIMIT_SESSIONS), hits0 + 1);
    /* Idle past the TTL, the sessions still count until an apply removes them; nothing else is
     * written here, so the refusal itself must lead to their removal (node_write.c
     * expiry_tick). A client retries SlowDown; so does this loop, bounded. */
    usleep(2 * TTL_MS * 1000);
    uint64_t end = mc_mono_ms() + WAIT_MAX_MS;
    int refused = 0;
    while ((st = register_session(fd, id++)) == MC_ELIMIT && mc_mono_ms() < end) {
        refused++;
        usleep(20 * 1000);
    }
    cr_assert_eq(st, 0, "after the TTL, after %d refusals: %s", refused, mc_error_name(st));
    /* And the cap holds again once MAX_SESSIONS live ones exist. */
    for (int i = 1; i < MAX_SESSIONS; i++) {
        st = register_session(fd, id++);
        cr_assert_eq(st, 0, "registration %d after expiry: %s", i + 1, mc_error_name(st));
    }
    cr_assert_eq(register_session(fd, id++), MC_ELIMIT);
    close(fd);
}

/* rev20 B1: a node that loses leadership forgets the expiry NOOP it proposed. The entry holding
 * it may be replaced; a tick_index left above it kept every later refusal from proposing
 * another, and an idle cluster at the cap refused registrations for ever. */
Test(node_sessions, a_step_down_forgets_the_expiry_tick_it_proposed, .timeout = 60,
     .fini = teardown)
{
    start_node();
    int fd = connect_node();
    uint64_t id = 1;
    fill_to_the_cap(fd, &id);
    int st;
    atomic_store(&g.step_down, true);
    uint64_t end = mc_mono_ms() + WAIT_MAX_MS;
    while (atomic_load(&g.step_down) && mc_mono_ms() < end) {
        usleep(2000);
    }
    cr_assert(!atomic_load(&g.step_down), "the probe did not run");
    usleep(2 * TTL_MS * 1000);
    st = register_retrying(fd, &id);
    cr_assert_eq(st, 0, "registration after the TTL and a step-down: %s", mc_error_name(st));
    close(fd);
}
