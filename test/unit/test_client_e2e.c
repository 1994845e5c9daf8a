/* test_client_e2e.c: client library ↔ server layer end to end over TCP (fake store): pipelining,
 * redirects, exactly-once retries, timeouts, admin calls, and bad input on the socket. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "../client/harness.h"
#include "client_test_util.h"
#include "metacenter/client.h"
#include "metacenter/error.h"
#include "net/proto.h"
#include "obs/metrics.h"
#include "util/clock.h"

static int get_val(struct mc_client *c, const char *key, char *out, size_t cap)
{
    struct mc_client_buf b = {0};
    int rc = mc_client_get_raw(c, false, "b", key, NULL, &b);
    if (rc == 0) {
        cr_assert_lt(b.len, cap);
        memcpy(out, b.data, b.len);
        out[b.len] = 0;
    }
    mc_client_buf_free(&b);
    return rc;
}

Test(client_e2e, put_get_and_admin)
{
    struct th_server *s = ct_start((struct th_opts){.node_id = 5});
    struct mc_client *c = ct_open_client(th_addr(s), 0);
    cr_assert_eq(ct_put_kv(c, "alpha=one"), 0);
    cr_assert_neq(mc_client_session_id(c), 0, "first write registers a session");
    char v[64];
    cr_assert_eq(get_val(c, "alpha", v, sizeof(v)), 0);
    cr_assert_str_eq(v, "one");
    cr_assert_eq(get_val(c, "nope", v, sizeof(v)), MC_ENOKEY);
    cr_assert_not(mc_client_last_error(c)->delete_marker);
    cr_assert_eq(ct_put_kv(c, "gone=DELETED"), 0);
    cr_assert_eq(get_val(c, "gone", v, sizeof(v)), MC_ENOKEY);
    cr_assert(mc_client_last_error(c)->delete_marker);
    cr_assert_str_eq(mc_client_last_error(c)->version_id, "dm1");

    struct mc_ping_info p;
    cr_assert_eq(mc_client_ping(c, 0, &p), 0);
    cr_assert_eq(p.node_id, 5);
    struct mc_cluster_status st;
    cr_assert_eq(mc_client_cluster_status(c, -1, &st), 0);
    cr_assert_eq(st.n_members, 3);
    cr_assert_eq(st.node_id, 5);
    cr_assert(st.members[2].learner);
    cr_assert_str_eq(st.members[1].client_addr, "127.0.0.1:7080");
    struct mc_check_result ck;
    cr_assert_eq(mc_client_check(c, 0, 77, &ck), 0);
    cr_assert_eq(ck.index, 77);
    cr_assert_eq(ck.hash, 42);
    cr_assert_eq(mc_client_add_member(c, 4, "127.0.0.1:7101", "127.0.0.1:7100", true), 0);
    cr_assert_eq(mc_client_promote(c, 4), 0);
    cr_assert_eq(mc_client_transfer_leader(c, 4), 0);
    cr_assert_eq(mc_client_remove_member(c, 0), MC_ENOMEMBER);
    cr_assert_str_eq(mc_client_last_error(c)->message, "no member 0");

    char path[] = "/tmp/mc_client_snap_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    uint64_t total = 0;
    cr_assert_eq(mc_client_snapshot_save(c, -1, path, &total), 0);
    cr_assert_eq(total, 3000);
    FILE *f = fopen(path, "rb");
    char buf[3001];
    cr_assert_eq(fread(buf, 1, sizeof(buf), f), 3000);
    fclose(f);
    unlink(path);
    cr_assert(buf[0] == 'a' && buf[1000] == 'b' && buf[2999] == 'c');

    mc_client_close(c);
    th_stop(s, NULL);
}

struct pctx {
    int done;
    int errors;
    int order_breaks;
    uint64_t last_idx;
    char want[1000][16];
    int idx[4000];
};

static struct pctx *g_p;

static void get_cb(void *arg, const struct mc_client_result *r)
{
    int i = (int)(intptr_t)arg;
    g_p->done++;
    if (r->status != 0 || r->body_len != strlen(g_p->want[i]) ||
        memcmp(r->body, g_p->want[i], r->body_len) != 0) {
        g_p->errors++;
    }
    if ((uint64_t)i < g_p->last_idx) {
        g_p->order_breaks++;
    }
    g_p->last_idx = (uint64_t)i;
}

static void put_cb(void *arg, const struct mc_client_result *r)
{
    (void)arg;
    g_p->done++;
    if (r->status != 0) {
        g_p->errors++;
    }
}

Test(client_e2e, pipeline_1000_on_one_connection)
{
    /* every 7th request is answered 2 ms late: replies come back out of order */
    struct th_server *s = ct_start((struct th_opts){.delay_every = 7});
    struct mc_client *c = ct_open_client(th_addr(s), 0);
    struct pctx *p = calloc(1, sizeof(*p));
    g_p = p;
    cr_assert_eq(ct_put_kv(c, "seed=x"), 0); /* session registered up front */
    char kv[64];
    for (int i = 0; i < 1000; i++) {
        snprintf(kv, sizeof(kv), "k%04d=v%d", i, i * 3);
        snprintf(p->want[i], sizeof(p->want[i]), "v%d", i * 3);
        const void *op = kv;
        size_t len = strlen(kv);
        cr_assert_eq(mc_client_write_async(c, 1, &op, &len, put_cb, NULL), 0);
    }
    while (p->done < 1000) {
        cr_assert_geq(mc_client_poll(c, 1000), 0);
    }
    cr_assert_eq(p->errors, 0);
    p->done = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(kv, sizeof(kv), "k%04d", i);
        cr_assert_eq(
            mc_client_get_async(c, false, "b", kv, NULL, NULL, get_cb, (void *)(intptr_t)i), 0);
    }
    cr_assert_eq(mc_client_pending(c), 1000);
    while (p->done < 1000) {
        cr_assert_geq(mc_client_poll(c, 1000), 0);
    }
    cr_assert_eq(p->errors, 0);
    cr_assert_gt(p->order_breaks, 0, "delayed replies arrive out of order");
    cr_assert_eq(mc_client_pending(c), 0);
    cr_assert_eq(th_applied(s), 1001);
    mc_client_close(c);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_eq(st.requests, st.replies);
    cr_assert_lt(st.writes, st.replies / 4, "replies are batched into few writes (%llu for %llu)",
                 (unsigned long long)st.writes, (unsigned long long)st.replies);
    free(p);
}

/* Drive c the way an epoll loop does (mc_client_fd/handle/step over poll(2)) until nothing is
 * pending (bounded: 10 s); counts the sockets that got a new generation. */
static int drive_external(struct mc_client *c)
{
    uint32_t last_gen[16] = {0};
    int new_sockets = 0;
    for (int round = 0; round < 2000 && mc_client_pending(c) > 0; round++) {
        struct pollfd fds[16];
        int map[16], n = 0;
        for (int i = 0; i < mc_client_endpoint_count(c) && i < 16; i++) {
            short ev;
            uint32_t gen;
            int fd = mc_client_fd(c, i, &ev, &gen);
            if (gen != last_gen[i]) {
                new_sockets++;
                last_gen[i] = gen;
            }
            if (fd >= 0) {
                fds[n] = (struct pollfd){.fd = fd, .events = ev};
                map[n++] = i;
            }
        }
        cr_assert_geq(poll(fds, (nfds_t)n, 5), 0);
        for (int k = 0; k < n; k++) {
            if (fds[k].revents) {
                cr_assert_geq(mc_client_handle(c, map[k], fds[k].revents), 0);
            }
        }
        cr_assert_geq(mc_client_step(c), 0);
    }
    cr_assert_eq(mc_client_pending(c), 0, "an external loop completes every request");
    return new_sockets;
}

Test(client_e2e, external_event_loop)
{
    /* the first 2 writes' replies are lost with the connection: the client reconnects, and the
     * external loop must pick up the new socket (a new generation, maybe the same fd number) */
    struct th_server *s = ct_start((struct th_opts){.drop_after_apply = 2});
    struct mc_client *c = ct_open_client(th_addr(s), 0);
    struct pctx *p = calloc(1, sizeof(*p));
    g_p = p;
    char kv[64];
    for (int i = 0; i < 20; i++) {
        snprintf(kv, sizeof(kv), "k%04d=v%d", i, i * 3);
        snprintf(p->want[i], sizeof(p->want[i]), "v%d", i * 3);
        const void *op = kv;
        size_t len = strlen(kv);
        cr_assert_eq(mc_client_write_async(c, 1, &op, &len, put_cb, NULL), 0);
    }
    int sockets = drive_external(c);
    cr_assert_eq(p->done, 20);
    cr_assert_eq(p->errors, 0);
    cr_assert_geq(sockets, 2, "reconnected after the dropped connection (%d sockets)", sockets);
    cr_assert_eq(th_applied(s), 20, "each write applied once");
    p->done = 0;
    p->last_idx = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(kv, sizeof(kv), "k%04d", i % 20);
        cr_assert_eq(
            mc_client_get_async(c, false, "b", kv, NULL, NULL, get_cb, (void *)(intptr_t)(i % 20)),
            0);
    }
    drive_external(c);
    cr_assert_eq(p->done, 1000);
    cr_assert_eq(p->errors, 0);
    mc_client_close(c);
    th_stop(s, NULL);
    free(p);
}

Test(client_e2e, leader_redirect)
{
    struct th_server *b = ct_start((struct th_opts){.node_id = 2});
    struct th_server *a = ct_start((struct th_opts){.node_id = 1, .redirect_to = th_addr(b)});
    struct mc_client *c = ct_open_client(th_addr(a), 0);
    cr_assert_eq(mc_client_endpoint_count(c), 1);
    cr_assert_eq(ct_put_kv(c, "x=1"), 0);
    cr_assert_eq(mc_client_endpoint_count(c), 2, "the leader named by NotLeader is added");
    cr_assert_eq(mc_client_leader_index(c), 1);
    cr_assert_str_eq(mc_client_endpoint_addr(c, 1), th_addr(b));
    cr_assert_eq(ct_put_kv(c, "y=2"), 0);
    cr_assert_eq(th_applied(b), 2);
    cr_assert_eq(th_applied(a), 0);
    /* a pinned admin call gets the NotLeader itself */
    cr_assert_eq(mc_client_promote(c, 3), 0); /* routed to the leader */
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
}

Test(client_e2e, members_naming_each_other_leader_back_off)
{
    /* Stale views during an election: a redirects to b, b to a. */
    static char a_addr[32];
    struct th_server *b = ct_start((struct th_opts){.node_id = 2, .redirect_to = a_addr});
    struct th_server *a = ct_start((struct th_opts){.node_id = 1, .redirect_to = th_addr(b)});
    snprintf(a_addr, sizeof(a_addr), "%s", th_addr(a)); /* before any request */
    struct mc_client *c = ct_open_client(th_addr(a), 300);
    uint64_t t0 = mc_mono_ms();
    int rc = ct_put_kv(c, "x=1");
    cr_assert(rc == MC_ENOTLEADER || rc == MC_ETIMEOUT, "rc %d", rc);
    cr_assert_geq(mc_mono_ms() - t0, 250, "retried until the deadline");
    uint64_t n = th_requests(a) + th_requests(b);
    cr_assert_lt(n, 40, "backed off between redirects (%llu requests in 300 ms)",
                 (unsigned long long)n);
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
}

Test(client_e2e, new_leader_learned_when_the_endpoint_list_is_full)
{
    /* a names a different (dead) leader on each write until the client's list is full, then
     * the real one, b */
    static char hint[32];
    struct th_server *b = ct_start((struct th_opts){.node_id = 2});
    struct th_server *a = ct_start((struct th_opts){.node_id = 1, .redirect_to = hint});
    struct mc_client *c = ct_open_client(th_addr(a), 100);
    for (int k = 1; mc_client_endpoint_count(c) < 16; k++) {
        cr_assert_lt(k, 20);
        snprintf(hint, sizeof(hint), "127.0.0.1:%d", k); /* nothing listens there */
        cr_assert_neq(ct_put_kv(c, "x=1"), 0);
    }
    snprintf(hint, sizeof(hint), "%s", th_addr(b));
    cr_assert_eq(ct_put_kv(c, "x=2"), 0, "the new leader took a learned endpoint's place");
    cr_assert_eq(th_applied(b), 1);
    cr_assert_eq(mc_client_endpoint_count(c), 16);
    cr_assert_str_eq(mc_client_endpoint_addr(c, mc_client_leader_index(c)), th_addr(b));
    cr_assert_str_eq(mc_client_endpoint_addr(c, 0), th_addr(a), "the caller's endpoint stays");
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
}

Test(client_e2e, no_leader_times_out_with_unknown_outcome)
{
    struct th_server *a = ct_start((struct th_opts){.redirect_unknown = true});
    struct mc_client *c = ct_open_client(th_addr(a), 300);
    cr_assert_eq(ct_put_kv(c, "x=1"), MC_ETIMEOUT);
    /* the session registration itself never got an answer: the write never left */
    cr_assert_not(mc_client_last_error(c)->outcome_unknown);
    mc_client_close(c);
    th_stop(a, NULL);
}

Test(client_e2e, exactly_once_across_lost_replies)
{
    /* the first 3 writes are applied but their replies are lost with the connection */
    struct th_server *s = ct_start((struct th_opts){.drop_after_apply = 3});
    struct mc_client *c = ct_open_client(th_addr(s), 0);
    char kv[32];
    for (int i = 0; i < 5; i++) {
        snprintf(kv, sizeof(kv), "k%d=%d", i, i);
        cr_assert_eq(ct_put_kv(c, kv), 0);
    }
    cr_assert_eq(th_applied(s), 5, "each write applied once");
    cr_assert_eq(th_duplicates(s), 3, "the retries were recognised as duplicates");
    mc_client_close(c);
    th_stop(s, NULL);
}

Test(client_e2e, server_timeout_on_a_write_is_retried_in_its_session)
{
    /* The node's commit wait expired (Timeout, outcome unknown) but the entry committed: the
     * resend under the same (session, seq) gets the cached result, nothing applies twice. */
    struct th_server *s = ct_start((struct th_opts){.timeout_writes = 2});
    struct mc_client *c = ct_open_client(th_addr(s), 3000);
    cr_assert_eq(ct_put_kv(c, "k=1"), 0);
    cr_assert_eq(th_applied(s), 1);
    cr_assert_eq(th_duplicates(s), 2, "resent twice in its session");
    mc_client_close(c);
    th_stop(s, NULL);
}

Test(client_e2e, server_timeout_past_the_deadline_is_outcome_unknown)
{
    struct th_server *s = ct_start((struct th_opts){.timeout_writes = 1000000});
    struct mc_client *c = ct_open_client(th_addr(s), 100);
    cr_assert_eq(ct_put_kv(c, "k=1"), MC_ETIMEOUT);
    cr_assert(mc_client_last_error(c)->outcome_unknown, "the write may have been applied");
    cr_assert_eq(th_applied(s), 1);
    mc_client_close(c);
    th_stop(s, NULL);
}

Test(client_e2e, session_expired_after_a_lost_reply_is_outcome_unknown)
{
    /* The write is applied, its reply lost, and the session expires before the retry arrives
     * (its cached result with it): resending under a fresh session would apply it twice. */
    struct th_server *s = ct_start((struct th_opts){.drop_after_apply = 1, .expire_on_drop = true});
    struct mc_client *c = ct_open_client(th_addr(s), 0);
    const void *op = "k=1";
    size_t len = 3;
    int rc = mc_client_write(c, 1, &op, &len, NULL);
    cr_assert_eq(rc, MC_ENOSESSION, "rc %d", rc);
    cr_assert_eq(th_applied(s), 1, "applied once, not resent under a new session");
    /* A write whose only attempt meets an expired session is resent under a fresh one. */
    cr_assert_eq(ct_put_kv(c, "k2=2"), 0);
    cr_assert_eq(th_applied(s), 2);
    mc_client_close(c);
    th_stop(s, NULL);
}

Test(client_e2e, pipelined_exactly_once)
{
    struct th_server *s = ct_start((struct th_opts){.drop_after_apply = 2});
    struct mc_client *c = ct_open_client(th_addr(s), 0);
    struct pctx *p = calloc(1, sizeof(*p));
    g_p = p;
    char kv[32];
    for (int i = 0; i < 200; i++) {
        snprintf(kv, sizeof(kv), "k%d=%d", i, i);
        const void *op = kv;
        size_t len = strlen(kv);
        cr_assert_eq(mc_client_write_async(c, 1, &op, &len, put_cb, NULL), 0);
    }
    while (p->done < 200) {
        cr_assert_geq(mc_client_poll(c, 1000), 0);
    }
    cr_assert_eq(p->errors, 0);
    cr_assert_eq(th_applied(s), 200);
    cr_assert_geq(th_duplicates(s), 2);
    mc_client_close(c);
    th_stop(s, NULL);
    free(p);
}

static int g_status = 1;
static bool g_unknown;

static void one_cb(void *arg, const struct mc_client_result *r)
{
    (void)arg;
    g_status = r->status;
    g_unknown = r->outcome_unknown;
}

Test(client_e2e, timeouts)
{
    struct th_server *s = ct_start((struct th_opts){.blackhole = true});
    struct mc_client *c = ct_open_client(th_addr(s), 200);
    char v[8];
    cr_assert_eq(get_val(c, "k", v, sizeof(v)), MC_ETIMEOUT);
    cr_assert_not(mc_client_last_error(c)->outcome_unknown);
    /* a write whose frame went out: outcome unknown */
    cr_assert_eq(ct_put_kv(c, "k=v"), MC_ETIMEOUT);
    cr_assert(mc_client_last_error(c)->outcome_unknown);
    cr_assert_eq(mc_client_ping_async(c, 0, one_cb, NULL), 0);
    while (g_status == 1) {
        mc_client_poll(c, 100);
    }
    cr_assert_eq(g_status, MC_ETIMEOUT);
    cr_assert_not(g_unknown);
    mc_client_close(c);
    th_stop(s, NULL);
}

static int dead_port(void);

/* A client of addr with a 10 s request timeout and opts.no_retry. */
static struct mc_client *open_no_retry(const char *addr)
{
    return ct_open_with(addr, (struct ct_opts){.timeout_ms = 10000, .no_retry = true});
}

/* Polls c until one_cb ran (at most 5 s); returns the ms it took. */
static uint64_t wait_one(struct mc_client *c)
{
    uint64_t t0 = mc_mono_ms();
    while (g_status == 1 && mc_mono_ms() - t0 < 5000) {
        mc_client_poll(c, 50);
    }
    return mc_mono_ms() - t0;
}

Test(client_e2e, no_retry_ends_a_request_at_the_members_stop)
{
    /* The member stops while it holds the request (ShuttingDown, then the connection closes):
     * final at once (without no_retry: retried against the closed port until the deadline). */
    struct th_server *s = ct_start((struct th_opts){.blackhole = true});
    struct mc_client *c = open_no_retry(th_addr(s));
    g_status = 1;
    cr_assert_eq(mc_client_check_async(c, 0, 0, one_cb, NULL), 0);
    for (int i = 0; i < 100 && th_requests(s) == 0; i++) {
        mc_client_poll(c, 20);
    }
    cr_assert_eq(th_requests(s), 1);
    th_stop(s, NULL);
    uint64_t took = wait_one(c);
    cr_assert(g_status == MC_ESHUTDOWN || g_status == MC_EIO, "status %d", g_status);
    cr_assert_lt(took, 2000, "took %llu ms", (unsigned long long)took);
    mc_client_close(c);
}

Test(client_e2e, no_retry_ends_a_request_to_a_closed_port)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", dead_port());
    struct mc_client *c = open_no_retry(addr);
    struct mc_ping_info p;
    uint64_t t0 = mc_mono_ms();
    cr_assert_eq(mc_client_ping(c, 0, &p), MC_EIO);
    cr_assert_lt(mc_mono_ms() - t0, 2000);
    cr_assert(strstr(mc_client_last_error(c)->message, "connection to 127.0.0.1:"), "%s",
              mc_client_last_error(c)->message);
    mc_client_close(c);
}

/* One request's callbacks: how many ran, the last status and message. drive: the callback polls
 * that client once (client.h allows a callback to drive the client). */
struct rec {
    struct mc_client *drive;
    int calls;
    int status;
    char msg[200];
};

static void rec_cb(void *arg, const struct mc_client_result *r)
{
    struct rec *x = arg;
    x->calls++;
    x->status = r->status;
    snprintf(x->msg, sizeof(x->msg), "%s", r->message);
    if (x->drive) {
        mc_client_poll(x->drive, 0);
    }
}

/* Polls c until every one of the n records has a callback, or ms pass; returns the ms taken. */
static uint64_t poll_until_called(struct mc_client *c, struct rec *const *x, int n, uint64_t ms)
{
    uint64_t t0 = mc_mono_ms();
    for (int i = 0; i < n && mc_mono_ms() - t0 < ms; i = x[i]->calls ? i + 1 : i) {
        if (x[i]->calls == 0) {
            mc_client_poll(c, 50);
        }
    }
    return mc_mono_ms() - t0;
}

/* Where a connect fails within the call that submits, on loopback only: no descriptor is left
 * (RLIMIT_NOFILE lowered to the lowest free one), so socket(2) fails at once with EMFILE. A
 * refused loopback port fails later, in poll(2) (EINPROGRESS first). Criterion runs each test in
 * a process of its own, so the limit ends with it; fds_restore puts it back all the same. */
#define NO_FD_REASON "Too many open files"

static struct rlimit g_fds_saved;
static bool g_fds_lowered;

static void fds_exhaust(void)
{
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &g_fds_saved), 0);
    int lowest = open("/dev/null", O_RDONLY | O_CLOEXEC);
    cr_assert_geq(lowest, 0);
    close(lowest);
    struct rlimit low = {.rlim_cur = (rlim_t)lowest, .rlim_max = g_fds_saved.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    g_fds_lowered = true;
}

/* The tests' .fini: the limit goes back even when an assertion ended the test early (the
 * sanitizers' exit reports need descriptors). */
static void fds_restore(void)
{
    if (g_fds_lowered) {
        g_fds_lowered = false;
        setrlimit(RLIMIT_NOFILE, &g_fds_saved);
    }
}

/* The request ended once, from a poll, with MC_EIO and the failed connect as its reason. */
static void assert_failed_once(const struct rec *x, const char *what, const char *reason)
{
    cr_assert_eq(x->calls, 1, "%s: %d callbacks", what, x->calls);
    cr_assert_eq(x->status, MC_EIO, "%s: status %d", what, x->status);
    cr_assert(strstr(x->msg, "connection to ") && strstr(x->msg, reason), "%s: %s", what, x->msg);
}

Test(client_e2e, no_retry_completes_a_failed_request_from_the_poll_not_the_submit,
     .fini = fds_restore)
{
    /* With no descriptor left (k = 1), the write's session registration meets the failed
     * connect inside the submit (lane_register -> req_start -> route); the ping, sent while the
     * member backs off, meets it in run_timers' retry pass: the case this test is for (it
     * crashed or called back inside the submit before). Both callbacks come from a poll
     * (client.h), the write's from the first one. k = 0, a refused port, fails in poll(2) and
     * passed before too: the ordinary path, kept beside it. */
    char addrs[2][32];
    snprintf(addrs[0], sizeof(addrs[0]), "127.0.0.1:%d", dead_port());
    snprintf(addrs[1], sizeof(addrs[1]), "127.0.0.1:%d", dead_port());
    const char *reasons[2] = {"refused", NO_FD_REASON};
    for (int k = 0; k < 2; k++) {
        struct mc_client *c = open_no_retry(addrs[k]);
        if (k == 1) {
            fds_exhaust();
        }
        struct rec put = {0}, ping = {0};
        const void *op = "k=v";
        size_t len = 3;
        cr_assert_eq(mc_client_write_async(c, 1, &op, &len, rec_cb, &put), 0);
        cr_assert_eq(put.calls, 0, "%s: the write's callback ran inside the submit", addrs[k]);
        cr_assert_eq(mc_client_ping_async(c, 0, rec_cb, &ping), 0);
        cr_assert_eq(ping.calls, 0, "%s: the ping's callback ran inside the submit", addrs[k]);
        cr_assert_geq(mc_client_poll(c, 1000), 1);
        assert_failed_once(&put, addrs[k], reasons[k]);
        struct rec *all[] = {&ping};
        cr_assert_lt(poll_until_called(c, all, 1, 2000), 2000);
        assert_failed_once(&ping, addrs[k], reasons[k]);
        cr_assert_eq(mc_client_pending(c), 0);
        fds_restore();
        mc_client_close(c);
    }
}

Test(client_e2e, no_retry_failures_in_the_retry_pass_end_once_when_a_callback_polls,
     .fini = fds_restore)
{
    /* Two members whose connect fails at once (no descriptor left), 200 ms backoff. b and d wait in
     * the retry list; b's callback polls the client. Before the fix, b ended inside the retry pass,
     * its callback's poll routed and freed d, and the pass then routed d, the freed slot, again. */
    char eps[64];
    snprintf(eps, sizeof(eps), "127.0.0.1:%d,127.0.0.1:%d", dead_port(), dead_port());
    struct mc_client *c = ct_open_with(
        eps, (struct ct_opts){.timeout_ms = 10000, .backoff_min_ms = 200, .no_retry = true});
    fds_exhaust();
    struct rec x0 = {0}, x1 = {0}, b = {.drive = c}, d = {0};
    cr_assert_eq(mc_client_ping_async(c, 0, rec_cb, &x0), 0); /* both members back off */
    cr_assert_eq(mc_client_ping_async(c, 1, rec_cb, &x1), 0);
    cr_assert_eq(mc_client_ping_async(c, 0, rec_cb, &b), 0);
    cr_assert_eq(mc_client_ping_async(c, 1, rec_cb, &d), 0);
    cr_assert_eq(b.calls + d.calls, 0, "parked for the backoff");
    struct rec *all[] = {&x0, &x1, &b, &d};
    cr_assert_lt(poll_until_called(c, all, 4, 3000), 3000);
    uint64_t t0 = mc_mono_ms();
    while (mc_mono_ms() - t0 < 1000) {
        mc_client_poll(c, 100); /* past the next backoff: a request routed twice shows now */
    }
    assert_failed_once(&x0, "x0", NO_FD_REASON);
    assert_failed_once(&x1, "x1", NO_FD_REASON);
    assert_failed_once(&b, "b", NO_FD_REASON);
    assert_failed_once(&d, "d", NO_FD_REASON);
    cr_assert_eq(mc_client_pending(c), 0);
    fds_restore();
    mc_client_close(c);
}

Test(client_e2e, a_new_request_timeout_applies_to_later_requests)
{
    /* client.h: the new value is for requests submitted from now on (those already submitted
     * keep their deadline); 0 gives the default (5000 ms) again. */
    struct th_server *s = ct_start((struct th_opts){.blackhole = true});
    struct mc_client *c = ct_open_client(th_addr(s), 10000);
    struct rec early = {0}, late = {0}, dflt = {0};
    cr_assert_eq(mc_client_ping_async(c, 0, rec_cb, &early), 0);
    mc_client_set_request_timeout(c, 200);
    cr_assert_eq(mc_client_ping_async(c, 0, rec_cb, &late), 0);
    struct rec *l[] = {&late};
    cr_assert_lt(poll_until_called(c, l, 1, 2000), 2000);
    cr_assert_eq(late.status, MC_ETIMEOUT);
    mc_client_set_request_timeout(c, 0);
    cr_assert_eq(mc_client_ping_async(c, 0, rec_cb, &dflt), 0);
    uint64_t t0 = mc_mono_ms();
    while (mc_mono_ms() - t0 < 1000) {
        mc_client_poll(c, 100);
    }
    cr_assert_eq(early.calls, 0, "the earlier request kept its 10 s deadline");
    cr_assert_eq(dflt.calls, 0, "0 gave the 5 s default, not 200 ms");
    cr_assert_eq(late.calls, 1);
    mc_client_close(c);
    th_stop(s, NULL);
}

Test(client_e2e, blocking_call_whose_poll_fails_leaves_no_request_behind)
{
    struct th_server *s = ct_start((struct th_opts){.blackhole = true});
    struct mc_client *c = ct_open_client(th_addr(s), 2000);
    /* connect: a ping the server holds */
    cr_assert_eq(mc_client_ping_async(c, -1, one_cb, NULL), 0);
    mc_client_poll(c, 50);
    /* poll(2) fails with EINVAL while nfds is over RLIMIT_NOFILE */
    struct rlimit old, none = {0, 0};
    cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
    none.rlim_max = old.rlim_max;
    cr_assert_eq(setrlimit(RLIMIT_NOFILE, &none), 0);
    char v[8];
    int rc = get_val(c, "k", v, sizeof(v));
    size_t left = mc_client_pending(c);
    setrlimit(RLIMIT_NOFILE, &old);
    cr_assert_eq(rc, MC_EIO, "rc %d", rc);
    cr_assert_eq(left, 1, "only the ping is pending: the GET did not outlive its call");
    cr_assert_eq(mc_client_last_error(c)->status, MC_EIO);
    mc_client_close(c);
    th_stop(s, NULL);
}

static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(fd, (struct sockaddr *)&sa, sizeof(sa));
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd);
    return ntohs(sa.sin_port);
}

Test(client_e2e, unreachable_member_skipped)
{
    struct th_server *s = ct_start((struct th_opts){0});
    char eps[128];
    snprintf(eps, sizeof(eps), "127.0.0.1:%d,%s", dead_port(), th_addr(s));
    struct mc_client *c = ct_open_client(eps, 2000);
    cr_assert_eq(ct_put_kv(c, "a=b"), 0);
    char v[8];
    for (int i = 0; i < 20; i++) {
        cr_assert_eq(get_val(c, "a", v, sizeof(v)), 0);
    }
    cr_assert_str_eq(v, "b");
    mc_client_close(c);
    th_stop(s, NULL);
}

static int g_burst_ep[64];
static int g_burst_done;

static void burst_cb(void *arg, const struct mc_client_result *r)
{
    g_burst_ep[(intptr_t)arg] = r->endpoint;
    g_burst_done++;
}

Test(client_e2e, reads_rotate_members_per_flush)
{
    /* Reads submitted together go to one member (one send, one server wake-up); the next
     * burst goes to the next member, so load still spreads (linearizable reads do so only with
     * follower_reads; without it they go to the leader). */
    struct th_server *s[3];
    char eps[256] = "";
    for (int i = 0; i < 3; i++) {
        s[i] = ct_start((struct th_opts){.node_id = (uint64_t)i + 1});
        snprintf(eps + strlen(eps), sizeof(eps) - strlen(eps), "%s%s", i ? "," : "", th_addr(s[i]));
    }
    struct mc_client *c =
        ct_open_with(eps, (struct ct_opts){.timeout_ms = 2000, .follower_reads = true});
    int first_ep[3];
    for (int burst = 0; burst < 3; burst++) {
        g_burst_done = 0;
        for (int i = 0; i < 20; i++) {
            cr_assert_eq(
                mc_client_get_async(c, false, "b", "k", NULL, NULL, burst_cb, (void *)(intptr_t)i),
                0);
        }
        for (int k = 0; k < 500 && g_burst_done < 20; k++) {
            cr_assert_geq(mc_client_poll(c, 10), 0);
        }
        cr_assert_eq(g_burst_done, 20);
        for (int i = 1; i < 20; i++) {
            cr_assert_eq(g_burst_ep[i], g_burst_ep[0], "burst %d went to one member", burst);
        }
        first_ep[burst] = g_burst_ep[0];
    }
    cr_assert(first_ep[0] != first_ep[1] && first_ep[1] != first_ep[2] &&
                  first_ep[0] != first_ep[2],
              "bursts rotate over the members (%d %d %d)", first_ep[0], first_ep[1], first_ep[2]);
    mc_client_close(c);
    for (int i = 0; i < 3; i++) {
        th_stop(s[i], NULL);
    }
}

Test(client_e2e, inflight_limit_pauses_reading)
{
    struct th_opts o = {.delay_every = 1};
    o.srv.max_inflight_per_conn = 4;
    struct th_server *s = ct_start(o);
    struct mc_client *c = ct_open_client(th_addr(s), 0);
    int done = 0;
    struct pctx *p = calloc(1, sizeof(*p));
    g_p = p;
    for (int i = 0; i < 300; i++) {
        cr_assert_eq(mc_client_ping_async(c, -1, put_cb, &done), 0);
    }
    while (p->done < 300) {
        cr_assert_geq(mc_client_poll(c, 1000), 0);
    }
    cr_assert_eq(p->errors, 0);
    mc_client_close(c);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_gt(st.read_pauses, 0, "reading paused at 4 requests in flight");
    free(p);
}

/* ---- raw sockets: bad input ---- */

/* rcvbuf: SO_RCVBUF set before connecting (0 = the kernel's), to make a non-reading peer
 * stall the server's output sooner. */
static int raw_connect_rcvbuf(int port, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (rcvbuf > 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static int raw_connect(int port)
{
    return raw_connect_rcvbuf(port, 0);
}

static void send_all(int fd, const void *p, size_t n)
{
    cr_assert_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

static bool recv_all(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t k = recv(fd, p + got, n - got, 0);
        if (k <= 0) {
            return false;
        }
        got += (size_t)k;
    }
    return true;
}

/* Read one reply frame; returns its status (body discarded). */
static int read_reply(int fd, struct mc_proto_header *h)
{
    uint8_t hb[MC_PROTO_HEADER_BYTES];
    cr_assert(recv_all(fd, hb, sizeof(hb)), "a reply frame arrives");
    mc_proto_header_get(hb, h);
    cr_assert_eq(mc_proto_header_check(h), 0);
    size_t body = h->length + 4 - MC_PROTO_HEADER_BYTES;
    uint8_t *b = malloc(body + 1);
    cr_assert(recv_all(fd, b, body));
    free(b);
    return h->status;
}

static void expect_closed(int fd)
{
    uint8_t c;
    cr_assert_eq(recv(fd, &c, 1, 0), 0, "the server closed the connection");
}

static void raw_ping(int fd, uint64_t rid)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    struct mc_proto_request q = {.op = MC_REQ_PING, .request_id = rid};
    mc_proto_request_encode(&w, &q);
    send_all(fd, w.data, w.len);
    mc_wbuf_free(&w);
    struct mc_proto_header h;
    cr_assert_eq(read_reply(fd, &h), 0);
    cr_assert_eq(h.request_id, rid);
    cr_assert_eq(h.op, MC_REQ_PING | MC_PROTO_REPLY_BIT);
}

Test(client_e2e, bad_input_on_the_socket)
{
    struct th_server *s = ct_start((struct th_opts){0});
    struct mc_client *good = ct_open_client(th_addr(s), 0);
    cr_assert_eq(ct_put_kv(good, "k=v"), 0);
    struct mc_proto_header h;

    /* garbage bytes: an error reply, then close */
    int fd = raw_connect(th_port(s));
    const char garbage[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    send_all(fd, garbage, sizeof(garbage) - 1);
    int st = read_reply(fd, &h);
    cr_assert(st == MC_ETOOLARGE || st == MC_EPROTO || st == MC_EVERSION, "status %d", st);
    expect_closed(fd);
    close(fd);

    /* oversized frame: EntityTooLarge carrying the request id, then close */
    fd = raw_connect(th_port(s));
    uint8_t hb[MC_PROTO_HEADER_BYTES];
    struct mc_proto_header big = {
        .length = 5u << 20, .version = 1, .op = MC_REQ_WRITE, .request_id = 99};
    mc_proto_header_put(hb, &big);
    send_all(fd, hb, sizeof(hb));
    cr_assert_eq(read_reply(fd, &h), MC_ETOOLARGE);
    cr_assert_eq(h.request_id, 99);
    expect_closed(fd);
    close(fd);

    /* wrong version */
    fd = raw_connect(th_port(s));
    struct mc_proto_header v2 = {.length = 16, .version = 9, .op = MC_REQ_PING, .request_id = 3};
    mc_proto_header_put(hb, &v2);
    send_all(fd, hb, sizeof(hb));
    cr_assert_eq(read_reply(fd, &h), MC_EVERSION);
    expect_closed(fd);
    close(fd);

    /* unknown op: an error reply, and the connection keeps working */
    fd = raw_connect(th_port(s));
    struct mc_proto_header unk = {.length = 16 + 3, .version = 1, .op = 0x6f, .request_id = 4};
    mc_proto_header_put(hb, &unk);
    send_all(fd, hb, sizeof(hb));
    send_all(fd, "abc", 3);
    cr_assert_eq(read_reply(fd, &h), MC_EPROTO);
    cr_assert_eq(h.request_id, 4);
    raw_ping(fd, 5);

    /* malformed body of a known op: error reply, close */
    struct mc_proto_header bad = {
        .length = 16 + 2, .version = 1, .op = MC_REQ_GET_OBJECT, .request_id = 6};
    mc_proto_header_put(hb, &bad);
    send_all(fd, hb, sizeof(hb));
    send_all(fd, "zz", 2);
    cr_assert_eq(read_reply(fd, &h), MC_EPROTO);
    cr_assert_eq(h.request_id, 6);
    expect_closed(fd);
    close(fd);

    /* truncated frame, then the peer goes away: nothing breaks */
    fd = raw_connect(th_port(s));
    struct mc_proto_header trunc = {
        .length = 1000, .version = 1, .op = MC_REQ_PING, .request_id = 7};
    mc_proto_header_put(hb, &trunc);
    send_all(fd, hb, sizeof(hb));
    send_all(fd, "partial", 7);
    close(fd);

    /* a byte-at-a-time valid frame is still served */
    fd = raw_connect(th_port(s));
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    struct mc_proto_request q = {.op = MC_REQ_PING, .request_id = 8};
    mc_proto_request_encode(&w, &q);
    for (size_t i = 0; i < w.len; i++) {
        send_all(fd, w.data + i, 1);
        usleep(200);
    }
    mc_wbuf_free(&w);
    cr_assert_eq(read_reply(fd, &h), 0);
    cr_assert_eq(h.request_id, 8);
    close(fd);

    /* the well-behaved client never noticed */
    char val[8];
    cr_assert_eq(get_val(good, "k", val, sizeof(val)), 0);
    cr_assert_str_eq(val, "v");
    mc_client_close(good);
    struct mc_client_server_stats stats;
    th_stop(s, &stats);
    cr_assert_eq(stats.protocol_errors, 4);
}

Test(client_e2e, connection_limit)
{
    struct th_opts o = {0};
    o.srv.max_connections = 2;
    struct th_server *s = ct_start(o);
    int a = raw_connect(th_port(s)), b = raw_connect(th_port(s));
    raw_ping(a, 1);
    raw_ping(b, 2);
    int c = raw_connect(th_port(s));
    struct mc_proto_header h;
    cr_assert_eq(read_reply(c, &h), MC_ELIMIT);
    expect_closed(c);
    close(c);
    raw_ping(a, 3);
    close(a);
    close(b);
    struct mc_client_server_stats stats;
    th_stop(s, &stats);
    cr_assert_eq(stats.connections_rejected, 1);
}

/* Requests the fake stores have seen, per store, into n[]. */
static void requests_of(struct th_server *const *s, uint64_t *n)
{
    for (int i = 0; i < 3; i++) {
        n[i] = th_requests(s[i]);
    }
}

static void get_n(struct mc_client *c, int n)
{
    char v[8];
    for (int i = 0; i < n; i++) {
        int rc = get_val(c, "a", v, sizeof(v));
        cr_assert(rc == 0 || rc == MC_ENOKEY); /* followers' fake stores are empty */
    }
}

/* Leader first in the array, then the two followers that redirect to it. */
static void start_three(struct th_server **s, char *eps, size_t cap)
{
    s[0] = ct_start((struct th_opts){.node_id = 1});
    s[1] = ct_start((struct th_opts){.node_id = 2, .redirect_to = th_addr(s[0])});
    s[2] = ct_start((struct th_opts){.node_id = 3, .redirect_to = th_addr(s[0])});
    snprintf(eps, cap, "%s,%s,%s", th_addr(s[1]), th_addr(s[2]), th_addr(s[0]));
}

static void stop_three(struct th_server **s)
{
    for (int i = 0; i < 3; i++) {
        th_stop(s[i], NULL);
    }
}

Test(client_e2e, linearizable_reads_go_to_the_leader_writes_follow_it)
{
    struct th_server *s[3];
    char eps[128];
    start_three(s, eps, sizeof(eps));
    struct mc_client *c = ct_open_client(eps, 0);
    /* A read-only client finds the leader with a LEADER request sent behind its first read. */
    uint64_t a[3], b[3];
    requests_of(s, a);
    get_n(c, 30);
    requests_of(s, b);
    cr_assert_eq(mc_client_leader_index(c), 2);
    cr_assert_leq(b[1] - a[1] + b[2] - a[2], 2, "only the first read and its LEADER request");
    cr_assert_geq(b[0] - a[0], 29);
    /* Writes go to the leader too. */
    cr_assert_eq(ct_put_kv(c, "a=1"), 0);
    cr_assert_eq(th_applied(s[0]), 1);
    cr_assert_eq(mc_client_pending(c), 0, "the client's own LEADER requests are not counted");
    mc_client_close(c);
    stop_three(s);
}

/* 30 gets through c: each follower (s[1], s[2]) must have answered at least 10. */
static void gets_reach_both_followers(struct th_server *const *s, struct mc_client *c)
{
    uint64_t a[3], b[3];
    requests_of(s, a);
    get_n(c, 30);
    requests_of(s, b);
    cr_assert_geq(b[1] - a[1], 10);
    cr_assert_geq(b[2] - a[2], 10);
}

Test(client_e2e, follower_reads_and_stale_reads_spread)
{
    struct th_server *s[3];
    char eps[128];
    start_three(s, eps, sizeof(eps));
    struct mc_client *c = ct_open_with(eps, (struct ct_opts){.follower_reads = true});
    cr_assert_eq(ct_put_kv(c, "a=1"), 0);
    cr_assert_eq(mc_client_leader_index(c), 2);
    gets_reach_both_followers(s, c);
    mc_client_close(c);

    /* Stale reads spread whatever follower_reads says: each member answers from its own copy. */
    struct mc_client_opts o;
    mc_client_opts_default(&o);
    o.read.consistency = MC_CONSISTENCY_STALE;
    cr_assert_eq(mc_client_open(eps, &o, &c), 0);
    cr_assert_eq(ct_put_kv(c, "b=2"), 0);
    gets_reach_both_followers(s, c);
    mc_client_close(c);
    stop_three(s);
}

Test(client_e2e, idle_timeout_and_stop_with_open_connections)
{
    struct th_opts o = {0};
    o.srv.idle_timeout_ms = 100;
    struct th_server *s = ct_start(o);
    int fd = raw_connect(th_port(s));
    raw_ping(fd, 1);
    usleep(400 * 1000);
    expect_closed(fd);
    close(fd);
    /* stop while a client is connected and has requests in flight: nothing leaks or hangs */
    struct th_server *b = ct_start((struct th_opts){.blackhole = true});
    struct mc_client *c = ct_open_client(th_addr(b), 300);
    cr_assert_eq(mc_client_ping_async(c, -1, one_cb, NULL), 0);
    mc_client_poll(c, 50);
    th_stop(b, NULL);
    g_status = 1;
    while (mc_client_pending(c) > 0) {
        mc_client_poll(c, 100);
    }
    mc_client_close(c);
    th_stop(s, NULL);
}

#define BIG_VALUE_BYTES (64 * 1024)

/* Store key "big" with a BIG_VALUE_BYTES value of 'z's. */
static void put_big(struct th_server *s)
{
    struct mc_client *c = ct_open_client(th_addr(s), 0);
    char *kv = malloc(BIG_VALUE_BYTES + 8);
    memcpy(kv, "big=", 4);
    memset(kv + 4, 'z', BIG_VALUE_BYTES);
    kv[4 + BIG_VALUE_BYTES] = 0;
    cr_assert_eq(ct_put_kv(c, kv), 0);
    free(kv);
    mc_client_close(c);
    /* Its connection is gone on the server too before the test's own come (connection-limit
     * tests count them). */
    struct mc_client_server_stats st;
    for (int i = 0; i < 500; i++) {
        th_stats(s, &st);
        if (st.connections_open == 0) {
            break;
        }
        usleep(2000);
    }
    cr_assert_eq(st.connections_open, 0);
    usleep(20 * 1000); /* and its socket closed (the close callback) */
}

/* n GETs of "big" (request ids 1..n) in one send, no reply read. */
static void send_big_gets(int fd, int n)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    for (int i = 0; i < n; i++) {
        struct mc_proto_request q = {.op = MC_REQ_GET_OBJECT, .request_id = (uint64_t)i + 1};
        q.u.get.bucket = mc_proto_cstr("b");
        q.u.get.key = mc_proto_cstr("big");
        mc_proto_request_encode(&w, &q);
    }
    send_all(fd, w.data, w.len);
    mc_wbuf_free(&w);
}

/* Read until the server closes (true) or nothing comes for the receive timeout (false);
 * *bytes gets what was read. */
static bool read_until_closed(int fd, size_t *bytes)
{
    static uint8_t buf[64 * 1024];
    *bytes = 0;
    for (;;) {
        ssize_t k = recv(fd, buf, sizeof(buf), 0);
        if (k > 0) {
            *bytes += (size_t)k;
            continue;
        }
        return k == 0 || errno == ECONNRESET;
    }
}

Test(client_e2e, slow_reader_backpressure)
{
    struct th_opts o = {0};
    o.srv.max_output_bytes = 256 * 1024;
    struct th_server *s = ct_start(o);
    size_t vlen = BIG_VALUE_BYTES;
    put_big(s);

    /* 300 GETs of 64 KiB (~19 MiB of replies) sent without reading any reply */
    int fd = raw_connect(th_port(s));
    send_big_gets(fd, 300);
    usleep(200 * 1000);
    uint8_t *body = malloc(vlen + 64);
    for (int i = 0; i < 300; i++) {
        uint8_t hb[MC_PROTO_HEADER_BYTES];
        struct mc_proto_header h;
        cr_assert(recv_all(fd, hb, sizeof(hb)));
        mc_proto_header_get(hb, &h);
        cr_assert_eq(h.status, 0);
        cr_assert_eq(h.request_id, (uint64_t)i + 1, "one connection answers in order here");
        cr_assert_eq(h.length + 4 - MC_PROTO_HEADER_BYTES, vlen);
        cr_assert(recv_all(fd, body, vlen));
        cr_assert(body[0] == 'z' && body[vlen - 1] == 'z');
    }
    free(body);
    close(fd);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_eq(st.protocol_errors, 0);
    cr_assert_gt(st.read_pauses, 0, "the server stopped reading while the peer did not read");
}

Test(client_e2e, peer_that_stops_reading_is_closed_after_the_send_timeout)
{
    struct th_opts o = {0};
    o.srv.max_output_bytes = 256 * 1024;
    o.srv.send_timeout_ms = 300;
    struct th_server *s = ct_start(o);
    put_big(s);
    /* ~19 MiB of replies, far more than the socket buffers hold: the server's write stalls */
    int fd = raw_connect_rcvbuf(th_port(s), 4096);
    send_big_gets(fd, 300);
    usleep(1000 * 1000);
    size_t got = 0;
    cr_assert(read_until_closed(fd, &got), "the server closed the stalled connection");
    cr_assert_lt(got, (size_t)300 * BIG_VALUE_BYTES, "before all replies went out (%zu)", got);
    close(fd);
    /* a reading client is unaffected */
    int ok = raw_connect(th_port(s));
    raw_ping(ok, 1);
    close(ok);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_eq(st.send_timeouts, 1);
}

/* Reads up to want bytes from fd 16 KiB at a time with pause_ms between reads (a slow but
 * steady reader), for at most 20 s; returns what it got before the end, EOF or an error. */
static size_t read_slowly(int fd, size_t want, unsigned pause_ms)
{
    static uint8_t buf[16 * 1024];
    size_t got = 0;
    uint64_t deadline = mc_mono_ms() + 20000;
    while (got < want && mc_mono_ms() < deadline) {
        ssize_t n = recv(fd, buf, sizeof(buf), 0);
        if (n <= 0) {
            break;
        }
        got += (size_t)n;
        usleep(pause_ms * 1000);
    }
    return got;
}

/* A client that reads slowly but steadily is not cut: the deadline is for a write making no
 * progress (third review: one uv_write carried everything queued, so a reader taking 16 KiB
 * every 50 ms had 256 KiB in one write for ~800 ms, past a 300 ms deadline). */
/* A server with o's timeouts (and a 256 KiB output cap, a 16 KiB send buffer) answers 12 big
 * GETs to a client with a 4 KiB receive buffer that reads a little every pause_ms: the client
 * must get every byte. Returns the server's stats after its stop. */
static struct mc_client_server_stats slow_reader_gets_all(struct th_opts o, unsigned pause_ms)
{
    o.srv.max_output_bytes = 256 * 1024;
    o.srv.sndbuf_bytes = 16 * 1024; /* else loopback takes the whole write at once */
    struct th_server *s = ct_start(o);
    put_big(s);
    int fd = raw_connect_rcvbuf(th_port(s), 4096);
    enum { GETS = 12 };
    send_big_gets(fd, GETS);
    size_t want = (size_t)GETS * BIG_VALUE_BYTES, got = read_slowly(fd, want, pause_ms);
    cr_assert_geq(got, want, "closed after %zu of %zu bytes", got, want);
    close(fd);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    return st;
}

Test(client_e2e, slow_steady_reader_is_not_closed_at_the_send_timeout)
{
    struct th_opts o = {0};
    o.srv.send_timeout_ms = 300;
    cr_assert_eq(slow_reader_gets_all(o, 50).send_timeouts, 0);
}

Test(client_e2e, closing_connection_counts_and_is_closed_after_a_grace)
{
    struct th_opts o = {0};
    o.srv.max_connections = 1;
    o.srv.max_output_bytes = 32u << 20; /* above the 12 MiB below (the default is 8 MiB) */
    struct th_server *s = ct_start(o);
    put_big(s);
    /* ~12 MiB of replies queued (under max_output_bytes: reading goes on), then a bad frame:
     * a protocol error while the output cannot drain */
    int a = raw_connect_rcvbuf(th_port(s), 4096);
    send_big_gets(a, 200);
    uint8_t hb[MC_PROTO_HEADER_BYTES];
    struct mc_proto_header v9 = {.length = 16, .version = 9, .op = MC_REQ_PING, .request_id = 7};
    mc_proto_header_put(hb, &v9);
    send_all(a, hb, sizeof(hb));
    usleep(200 * 1000);
    /* still holding its socket: it counts against max_connections */
    int b = raw_connect(th_port(s));
    struct mc_proto_header h;
    cr_assert_eq(read_reply(b, &h), MC_ELIMIT, "the closing connection still counts");
    expect_closed(b);
    close(b);
    /* the grace is over: closed with its replies untaken, and its place is free */
    usleep(2000 * 1000);
    int c = raw_connect(th_port(s));
    raw_ping(c, 1);
    close(c);
    size_t got = 0;
    cr_assert(read_until_closed(a, &got));
    cr_assert_lt(got, (size_t)200 * BIG_VALUE_BYTES, "closed before its replies went out");
    close(a);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_eq(st.protocol_errors, 1);
    cr_assert_eq(st.send_timeouts, 1);
    cr_assert_eq(st.connections_rejected, 1);
}

/* ---- where a request goes when no leader is known (client_rotation) ---- */

/* Member a answers writes NotLeader naming no leader; member b is the leader. eps: "a,b". */
static void start_follower_and_leader(struct th_server **a, struct th_server **b, char *eps,
                                      size_t cap)
{
    *a = ct_start((struct th_opts){.node_id = 2, .redirect_unknown = true});
    *b = ct_start((struct th_opts){.node_id = 1});
    snprintf(eps, cap, "%s,%s", th_addr(*a), th_addr(*b));
}

/* Two members, the first answering NotLeader without naming a leader (it knows none): the
 * retry must go to the second. Counting retries from rr + attempts stepped by two once rr had
 * moved, so every retry went back to the first until the deadline (Timeout). */
Test(client_rotation, a_write_retry_without_a_hint_goes_to_the_other_of_two_members)
{
    struct th_server *a, *b;
    char eps[128];
    start_follower_and_leader(&a, &b, eps, sizeof(eps));
    struct mc_client *c = ct_open_client(eps, 2000);
    int ok = 0;
    uint64_t t0 = mc_mono_ms();
    for (int i = 0; i < 5; i++) {
        int rc = ct_put_kv(c, "k=v");
        ok += rc == 0;
    }
    uint64_t ms = mc_mono_ms() - t0;
    uint64_t at_a = th_requests(a), applied_b = th_applied(b);
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
    cr_assert_eq(ok, 5,
                 "%d of 5 writes succeeded in %llu ms (requests at a %llu, applied at b "
                 "%llu)",
                 ok, (unsigned long long)ms, (unsigned long long)at_a,
                 (unsigned long long)applied_b);
    cr_assert_eq(applied_b, 5);
}

/* A write that succeeded at a member says that member was the leader: the writes after it go
 * there at once. Before, with no leader named, every new write started at the rotation and met
 * the follower first every other time (a NotLeader round trip each). */
Test(client_rotation, a_successful_write_records_its_member_as_the_leader)
{
    struct th_server *a, *b;
    char eps[128];
    start_follower_and_leader(&a, &b, eps, sizeof(eps));
    struct mc_client *c = ct_open_client(eps, 2000);
    int ok = 0;
    for (int i = 0; i < 6; i++) {
        ok += ct_put_kv(c, "k=v") == 0;
    }
    int leader = mc_client_leader_index(c);
    uint64_t at_a = th_requests(a);
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
    cr_assert_eq(ok, 6);
    cr_assert_eq(leader, 1, "leader index %d after 6 writes that succeeded at member 1", leader);
    /* the session's registration and the first write's first attempt; none after that */
    cr_assert_leq(at_a, 2, "%llu requests at the follower for 6 writes", (unsigned long long)at_a);
}

/* The member recorded as the leader goes silent with its connection open (SIGSTOPped): a
 * write that times out there must let the next ones look elsewhere, as a read's timeout does.
 * Before, every later write went to it and timed out too. */
Test(client_rotation, writes_leave_a_recorded_leader_that_went_silent)
{
    struct th_server *s[2] = {ct_start((struct th_opts){.node_id = 1}),
                              ct_start((struct th_opts){.node_id = 2})};
    char eps[128];
    snprintf(eps, sizeof(eps), "%s,%s", th_addr(s[0]), th_addr(s[1]));
    struct mc_client *c = ct_open_client(eps, 300);
    cr_assert_eq(ct_put_kv(c, "k=v"), 0);
    int x = mc_client_leader_index(c);
    cr_assert(x == 0 || x == 1, "no leader recorded after a write: %d", x);
    th_set_wedged(s[x], true);
    int ok = 0;
    for (int i = 0; i < 8; i++) {
        ok += ct_put_kv(c, "k=v") == 0;
    }
    mc_client_close(c);
    th_stop(s[0], NULL);
    th_stop(s[1], NULL);
    cr_assert_geq(ok, 4, "writes stayed on the silent recorded leader: %d of 8 succeeded", ok);
}

/* A first member that accepts connections and never answers (SIGSTOPped, wedged): with no
 * leader known, later requests must still reach the others (rotation moves on). Guards the
 * reverted session-9 change that kept leader-bound requests on one member (0 of 10). */
Test(client_rotation, writes_leave_a_silent_first_member)
{
    struct th_server *dead = ct_start((struct th_opts){.blackhole = true});
    struct th_server *b = ct_start((struct th_opts){.node_id = 2});
    char eps[128];
    snprintf(eps, sizeof(eps), "%s,%s", th_addr(dead), th_addr(b));
    struct mc_client *c = ct_open_client(eps, 200);
    int ok = 0;
    for (int i = 0; i < 10; i++) {
        ok += ct_put_kv(c, "k=v") == 0;
    }
    mc_client_close(c);
    th_stop(dead, NULL);
    th_stop(b, NULL);
    cr_assert_geq(ok, 5, "writes stayed on the silent member: %d of 10 succeeded", ok);
}

Test(client_rotation, linearizable_reads_leave_a_silent_first_member)
{
    struct th_server *dead = ct_start((struct th_opts){.blackhole = true});
    struct th_server *b = ct_start((struct th_opts){.node_id = 2});
    struct th_server *d = ct_start((struct th_opts){.node_id = 3, .redirect_to = "x"});
    char eps[128];
    snprintf(eps, sizeof(eps), "%s,%s,%s", th_addr(dead), th_addr(b), th_addr(d));
    struct mc_client *c = ct_open_client(eps, 200);
    int ok = 0;
    for (int i = 0; i < 10; i++) {
        struct mc_client_buf buf = {0};
        int rc = mc_client_get_raw(c, false, "b", "a", NULL, &buf);
        mc_client_buf_free(&buf);
        ok += rc == 0 || rc == MC_ENOKEY;
    }
    mc_client_close(c);
    th_stop(dead, NULL);
    th_stop(b, NULL);
    th_stop(d, NULL);
    cr_assert_geq(ok, 5, "linearizable reads stayed on the silent member: %d of 10", ok);
}

/* What a reply callback saw: the kernel's receive time (mc_client_rx_ns) and the time it ran. */
struct rx_seen {
    struct mc_client *c;
    uint64_t rx_ns, cb_ns;
    int status, done;
};

static void rx_cb(void *arg, const struct mc_client_result *r)
{
    struct rx_seen *s = arg;
    s->rx_ns = mc_client_rx_ns(s->c);
    s->cb_ns = mc_mono_ns();
    s->status = r->status;
    s->done++;
}

/* A ping whose reply sits in the socket for 30 ms before the client reads it. The kernel turns
 * receive stamps on for the whole system a little after the first socket asks (a deferred
 * static key), so with rx_timestamps the first replies may come unstamped: up to 20 tries. */
static struct rx_seen ping_read_late(struct th_server *srv, bool rx_timestamps, uint64_t *sent_ns)
{
    struct rx_seen s = {0};
    s.c = ct_open_with(th_addr(srv), (struct ct_opts){.rx_timestamps = rx_timestamps});
    cr_assert_eq(mc_client_ping(s.c, 0, NULL), 0, "connected");
    for (int try = 0; try < 20 && (try == 0 || (rx_timestamps && s.rx_ns == 0)); try++) {
        s.done = 0;
        cr_assert_eq(mc_client_ping_async(s.c, 0, rx_cb, &s), 0);
        *sent_ns = mc_mono_ns();
        cr_assert_geq(mc_client_step(s.c), 0); /* sends it */
        usleep(30000);
        for (int k = 0; k < 100 && !s.done; k++) {
            mc_client_poll(s.c, 20);
        }
        cr_assert_eq(s.done, 1);
        cr_assert_eq(s.status, 0);
    }
    mc_client_close(s.c);
    return s;
}

Test(client_e2e, reply_callbacks_see_the_kernel_receive_time)
{
    struct th_server *srv = ct_start((struct th_opts){0});
    uint64_t sent;
    struct rx_seen s = ping_read_late(srv, true, &sent);
    cr_assert_gt(s.rx_ns, sent, "received after it was sent (rx %llu, sent %llu)",
                 (unsigned long long)s.rx_ns, (unsigned long long)sent);
    cr_assert_geq(s.cb_ns - s.rx_ns, 20000000ull,
                  "the stamp is when the reply arrived, not when it was read: %llu us apart",
                  (unsigned long long)((s.cb_ns - s.rx_ns) / 1000));
    s = ping_read_late(srv, false, &sent);
    cr_assert_eq(s.rx_ns, 0, "no stamp unless asked for");
    th_stop(srv, NULL);
}

/* Receive stamps on or off for endpoint 0's socket (the kernel stamps a read only while the
 * socket asks: a read after "off" comes unstamped, as before the kernel turns stamping on). */
static int ep0_fd(struct mc_client *c)
{
    short events;
    uint32_t gen;
    int fd = mc_client_fd(c, 0, &events, &gen);
    cr_assert_geq(fd, 0, "endpoint 0 has no socket");
    return fd;
}

static void stamps_on(struct mc_client *c, int on)
{
    int fd = ep0_fd(c);
    cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)), 0);
}

/* A ping (stamped read), then a GET whose reply needs a second read, made unstamped by the ping's
 * callback: what each callback saw, and whether the GET's came after stamping was turned off. */
struct two_reads {
    struct mc_client *c;
    uint64_t ping_rx, get_rx;
    int ping_done, get_done, get_status;
    bool stamps_off, get_after_off;
};

static void two_reads_ping_cb(void *arg, const struct mc_client_result *r)
{
    struct two_reads *s = arg;
    cr_assert_eq(r->status, 0);
    s->ping_rx = mc_client_rx_ns(s->c);
    s->ping_done++;
    stamps_on(s->c, 0);
    s->stamps_off = true;
}

static void two_reads_get_cb(void *arg, const struct mc_client_result *r)
{
    struct two_reads *s = arg;
    s->get_rx = mc_client_rx_ns(s->c);
    s->get_status = r->status;
    s->get_after_off = s->stamps_off;
    s->get_done++;
}

/* Bytes waiting in fd's receive queue. */
static int queued_bytes(int fd)
{
    int n = 0;
    cr_assert_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/* One try on a fresh client (its read buffer at its first 64 KiB): the ping and the GET reply are
 * left to queue in the socket, then read by one mc_client_handle, so both callbacks run in one
 * read event: the ping's from the first read (stamped), the GET's from a later one (unstamped).
 * Returns whether it went so: the kernel may not stamp the first read yet (a deferred static
 * key), or the socket may not hold the whole GET reply when it is read. */
static bool two_reads_once(struct th_server *srv, struct two_reads *s)
{
    *s = (struct two_reads){0};
    s->c = ct_open_with(th_addr(srv), (struct ct_opts){.rx_timestamps = true});
    cr_assert_eq(mc_client_ping(s->c, 0, NULL), 0, "connected");
    struct mc_read_opts stale = {.consistency = MC_CONSISTENCY_STALE};
    cr_assert_eq(mc_client_ping_async(s->c, 0, two_reads_ping_cb, s), 0);
    cr_assert_eq(mc_client_get_async(s->c, false, "b", "big", NULL, &stale, two_reads_get_cb, s),
                 0);
    int fd = ep0_fd(s->c);
    /* Room for the whole GET reply queued at once: with a small default window (older
     * kernels' tcp_rmem) it would never all wait in the socket. */
    int rcvbuf = 1 << 20;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    cr_assert_geq(mc_client_step(s->c), 0); /* sends both */
    for (int k = 0; k < 200 && queued_bytes(fd) <= BIG_VALUE_BYTES; k++) {
        usleep(1000);
    }
    usleep(5000); /* the reply's last bytes */
    int ran = mc_client_handle(s->c, 0, POLLIN);
    for (int k = 0; k < 100 && !(s->ping_done && s->get_done); k++) {
        mc_client_poll(s->c, 20);
    }
    cr_assert_eq(s->ping_done, 1);
    cr_assert_eq(s->get_done, 1);
    cr_assert_eq(s->get_status, 0, "%s", mc_error_name(s->get_status));
    mc_client_close(s->c);
    return ran == 2 && s->ping_rx != 0 && s->get_after_off;
}

/* A read that brings no kernel stamp (stamping off, or not on yet) must not leave the previous
 * read's stamp in place: the replies it completes would take an older receive time than their
 * own, and a load generator would count them faster than they were. */
Test(client_e2e, an_unstamped_read_does_not_keep_the_previous_reads_stamp)
{
    struct th_server *srv = ct_start((struct th_opts){0});
    put_big(srv); /* its GET reply is over the client's first read buffer (64 KiB) */
    struct two_reads s;
    bool reached = false;
    for (int try = 0; try < 20 && !reached; try++) {
        reached = two_reads_once(srv, &s);
    }
    th_stop(srv, NULL);
    cr_assert(reached, "never read the ping (stamped) and the GET (unstamped) in one event");
    cr_assert_neq(s.ping_rx, 0);
    cr_assert_eq(s.get_rx, 0,
                 "the reply completed by an unstamped read kept the previous read's stamp "
                 "(%llu, the ping's %llu)",
                 (unsigned long long)s.get_rx, (unsigned long long)s.ping_rx);
}

/* A reply callback that drives the client again (a nested read, here of another endpoint) finds
 * its own receive stamp again afterwards, not the nested read's. */
struct nested_rx {
    struct mc_client *c;
    uint64_t before, after, inner_rx;
    int outer_done, inner_done;
};

static void nested_inner_cb(void *arg, const struct mc_client_result *r)
{
    struct nested_rx *s = arg;
    cr_assert_eq(r->status, 0);
    s->inner_rx = mc_client_rx_ns(s->c);
    s->inner_done++;
}

static void nested_outer_cb(void *arg, const struct mc_client_result *r)
{
    struct nested_rx *s = arg;
    cr_assert_eq(r->status, 0);
    s->before = mc_client_rx_ns(s->c);
    cr_assert_eq(mc_client_ping_async(s->c, 1, nested_inner_cb, s), 0);
    for (int k = 0; k < 100 && !s->inner_done; k++) {
        mc_client_poll(s->c, 20);
    }
    cr_assert_eq(s->inner_done, 1, "the nested ping never completed");
    s->after = mc_client_rx_ns(s->c);
    s->outer_done++;
}

Test(client_e2e, a_nested_read_restores_the_outer_receive_stamp)
{
    struct th_server *a = ct_start((struct th_opts){.node_id = 1});
    struct th_server *b = ct_start((struct th_opts){.node_id = 2});
    char eps[128];
    snprintf(eps, sizeof(eps), "%s,%s", th_addr(a), th_addr(b));
    struct nested_rx s = {0};
    s.c = ct_open_with(eps, (struct ct_opts){.rx_timestamps = true});
    cr_assert_eq(mc_client_ping(s.c, 0, NULL), 0, "connected to a");
    cr_assert_eq(mc_client_ping(s.c, 1, NULL), 0, "connected to b");
    /* Up to 20 tries: the kernel may not stamp the first replies yet (ping_read_late says why). */
    for (int try = 0; try < 20 && (try == 0 || s.before == 0); try++) {
        s.outer_done = s.inner_done = 0;
        cr_assert_eq(mc_client_ping_async(s.c, 0, nested_outer_cb, &s), 0);
        cr_assert_geq(mc_client_step(s.c), 0);
        usleep(10000);
        for (int k = 0; k < 100 && !s.outer_done; k++) {
            mc_client_poll(s.c, 20);
        }
        cr_assert_eq(s.outer_done, 1);
    }
    mc_client_close(s.c);
    th_stop(a, NULL);
    th_stop(b, NULL);
    cr_assert_neq(s.before, 0, "the outer reply never came stamped");
    cr_assert_eq(s.after, s.before,
                 "after a nested read the callback sees %llu, not its own stamp %llu (the nested "
                 "reply's was %llu)",
                 (unsigned long long)s.after, (unsigned long long)s.before,
                 (unsigned long long)s.inner_rx);
}

/* A reply callback that drives the client while more replies of its endpoint wait in the read
 * buffer (here: it pings the same member and polls until the answer comes). The nested read must
 * pick up after the frame being dispatched, and the outer one after the nested one: each reply
 * delivered once, the connection kept (before, the outer read went on from its own position in a
 * buffer the nested read had already emptied, and failed the connection as a malformed reply). */
struct nested_same {
    struct mc_client *c;
    int outer, inner, plain, bad;
};

static void nested_same_plain_cb(void *arg, const struct mc_client_result *r)
{
    struct nested_same *s = arg;
    s->plain++;
    s->bad += r->status != 0;
}

static void nested_same_inner_cb(void *arg, const struct mc_client_result *r)
{
    struct nested_same *s = arg;
    s->inner++;
    s->bad += r->status != 0;
}

static void nested_same_outer_cb(void *arg, const struct mc_client_result *r)
{
    struct nested_same *s = arg;
    s->outer++;
    s->bad += r->status != 0;
    cr_assert_eq(s->plain, 0, "the outer reply is the first one read");
    cr_assert_eq(mc_client_ping_async(s->c, 0, nested_same_inner_cb, s), 0);
    for (int k = 0; k < 100 && !s->inner; k++) {
        mc_client_poll(s->c, 20);
    }
}

/* A server, a connected client in s, and six pings sent in one send (outer's first, then five
 * plain ones) whose replies all wait in the socket, so that one read buffers them all (waits
 * until the queued bytes stop growing; bounded: 2 s). Returns the client's socket; *gen its
 * generation. */
static int six_pings_queued(struct th_server **srv, struct nested_same *s, mc_client_cb outer,
                            uint32_t *gen)
{
    *srv = ct_start((struct th_opts){0});
    *s = (struct nested_same){ct_open_client(th_addr(*srv), 0)};
    cr_assert_eq(mc_client_ping(s->c, 0, NULL), 0, "connected");
    short events;
    int fd = mc_client_fd(s->c, 0, &events, gen);
    cr_assert_eq(mc_client_ping_async(s->c, 0, outer, s), 0);
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(mc_client_ping_async(s->c, 0, nested_same_plain_cb, s), 0);
    }
    cr_assert_geq(mc_client_step(s->c), 0); /* all six in one send */
    int last = -1, still = 0;
    for (int k = 0; k < 2000 && still < 20; k++) {
        usleep(1000);
        int q = queued_bytes(fd);
        still = q > 0 && q == last ? still + 1 : 0;
        last = q;
    }
    return fd;
}

Test(client_e2e, a_callback_may_poll_while_its_endpoint_has_replies_buffered)
{
    struct th_server *srv;
    struct nested_same s;
    uint32_t gen;
    int fd = six_pings_queued(&srv, &s, nested_same_outer_cb, &gen);
    short events;
    for (int k = 0; k < 100 && mc_client_pending(s.c) > 0; k++) {
        mc_client_poll(s.c, 20);
    }
    uint32_t gen_after;
    int fd_after = mc_client_fd(s.c, 0, &events, &gen_after);
    mc_client_close(s.c);
    th_stop(srv, NULL);
    cr_assert_eq(s.outer, 1);
    cr_assert_eq(s.inner, 1, "the nested ping's reply: %d callbacks", s.inner);
    cr_assert_eq(s.plain, 5, "the buffered replies: %d callbacks of 5", s.plain);
    cr_assert_eq(s.bad, 0, "%d failed", s.bad);
    cr_assert(fd_after == fd && gen_after == gen,
              "the connection was dropped after the nested read (fd %d gen %u, was fd %d gen %u)",
              fd_after, gen_after, fd, gen);
}

/* A callback that polls for replies its own read already buffered (not for a new request): the
 * nested poll must deliver them from the buffer, which poll(2) cannot see (before, it waited on
 * the socket until the requests timed out). */
static void wait_buffered_outer_cb(void *arg, const struct mc_client_result *r)
{
    struct nested_same *s = arg;
    s->outer++;
    s->bad += r->status != 0;
    cr_assert_eq(s->plain, 0, "the outer reply is the first one read");
    for (int k = 0; k < 50 && s->plain < 5; k++) {
        mc_client_poll(s->c, 20);
    }
    s->inner = s->plain; /* what the nested polls delivered */
}

Test(client_e2e, a_callback_polling_for_buffered_replies_gets_them_at_once)
{
    struct th_server *srv;
    struct nested_same s;
    uint32_t gen;
    (void)six_pings_queued(&srv, &s, wait_buffered_outer_cb, &gen);
    cr_assert_geq(mc_client_handle(s.c, 0, POLLIN), 1);
    mc_client_close(s.c);
    th_stop(srv, NULL);
    cr_assert_eq(s.outer, 1);
    cr_assert_eq(s.inner, 5, "the callback's polls delivered %d of the 5 buffered replies",
                 s.inner);
    cr_assert_eq(s.bad, 0, "%d failed", s.bad);
}

/* ---- frame budget (R1) ---- */

struct ping_flood {
    int fd;
    int n;
    bool ok;
};

static void *send_pings(void *arg)
{
    struct ping_flood *f = arg;
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    f->ok = true;
    for (int i = 0; i < f->n && f->ok; i += 1000) {
        w.len = 0;
        for (int j = i; j < i + 1000 && j < f->n; j++) {
            struct mc_proto_request q = {.op = MC_REQ_PING, .request_id = (uint64_t)j + 1};
            mc_proto_request_encode(&w, &q);
        }
        f->ok = send(f->fd, w.data, w.len, MSG_NOSIGNAL) == (ssize_t)w.len;
    }
    mc_wbuf_free(&w);
    return NULL;
}

/* A client pipelining 100k PINGs (answered at once, so never "in flight") is parsed FRAME_BUDGET
 * frames per loop pass: every reply arrives, in order, and a second connection's PING is
 * answered meanwhile. Before: no budget (budget_yields did not exist; one read of the flood was
 * parsed and answered whole in one callback). */
Test(client_e2e, pipelined_ping_flood_is_served_in_budgeted_passes)
{
    struct th_server *s = ct_start((struct th_opts){0});
    int fd = raw_connect(th_port(s));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    int other = raw_connect(th_port(s));
    struct ping_flood f = {.fd = fd, .n = 100000};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, send_pings, &f), 0);
    uint64_t worst_ms = 0;
    for (int i = 0; i < f.n; i++) {
        struct mc_proto_header h;
        cr_assert_eq(read_reply(fd, &h), 0);
        cr_assert_eq(h.request_id, (uint64_t)i + 1, "in order, none lost");
        if (i % 20000 == 10000) {
            uint64_t t0 = mc_mono_ms();
            raw_ping(other, (uint64_t)i);
            uint64_t took = mc_mono_ms() - t0;
            worst_ms = took > worst_ms ? took : worst_ms;
        }
    }
    pthread_join(th, NULL);
    cr_assert(f.ok);
    close(fd);
    close(other);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_eq(st.protocol_errors, 0);
    cr_assert_gt(st.budget_yields, 0, "the flood was parsed over several loop passes");
    cr_assert_lt(worst_ms, 2000, "the other connection waited %llu ms",
                 (unsigned long long)worst_ms);
}

/* A burst of 600 PINGs (over two frame budgets) sent in one go, answered by a prepare handle
 * that runs before the server's, as the node proposes its batch: the whole burst is answered
 * within a few loop passes, though nothing else wakes the loop (no timer in this mode but the
 * server's sweep, up to 1 s). Before (rev18c R-2): the slice resumed last was dispatched in the
 * server's prepare, after the "node's", and waited in poll for the next unrelated event. */
Test(client_e2e, budgeted_burst_is_answered_without_waiting_for_an_event)
{
    struct th_server *s = ct_start((struct th_opts){.answer_in_prepare = true});
    int fd = raw_connect(th_port(s));
    struct timeval tv = {.tv_sec = 10};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    raw_ping(fd, 1000000); /* connected and served once */
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    uint64_t worst_ms = 0;
    for (int round = 0; round < 3; round++) {
        w.len = 0;
        for (int j = 0; j < 600; j++) {
            struct mc_proto_request q = {.op = MC_REQ_PING, .request_id = (uint64_t)j + 1};
            mc_proto_request_encode(&w, &q);
        }
        uint64_t t0 = mc_mono_ms();
        send_all(fd, w.data, w.len);
        for (int j = 0; j < 600; j++) {
            struct mc_proto_header h;
            cr_assert_eq(read_reply(fd, &h), 0);
            cr_assert_eq(h.request_id, (uint64_t)j + 1, "in order, none lost");
        }
        uint64_t took = mc_mono_ms() - t0;
        worst_ms = took > worst_ms ? took : worst_ms;
    }
    mc_wbuf_free(&w);
    close(fd);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_gt(st.budget_yields, 0, "the bursts were parsed over several loop passes");
    cr_assert_lt(worst_ms, 150, "a burst took %llu ms", (unsigned long long)worst_ms);
}

/* ---- AUTH frames per connection (R2) ---- */

static int raw_auth(int fd, uint64_t rid, const char *token)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    struct mc_proto_request q = {.op = MC_REQ_AUTH, .request_id = rid};
    q.u.auth.token = mc_proto_cstr(token);
    mc_proto_request_encode(&w, &q);
    send_all(fd, w.data, w.len);
    mc_wbuf_free(&w);
    struct mc_proto_header h;
    int st = read_reply(fd, &h);
    cr_assert_eq(h.request_id, rid);
    return st;
}

/* With auth on, AUTH frames are capped per connection, successful ones too: the 9th is refused
 * Unauthorized (final: retrying cannot help), counted as an auth failure, and the connection
 * closed. Before: SlowDown (which clients retry) while closing. */
Test(client_e2e, auth_frames_capped_per_connection)
{
    struct mc_auth *a = NULL;
    cr_assert_eq(mc_auth_new(&a), 0);
    cr_assert_eq(mc_auth_add_token(a, "app", MC_ROLE_WRITE, "tok-app-0123456789"), 0);
    struct th_opts o = {0};
    o.srv.auth = a;
    struct th_server *s = ct_start(o);
    int fd = raw_connect(th_port(s));
    for (uint64_t i = 1; i <= 8; i++) {
        cr_assert_eq(raw_auth(fd, i, "tok-app-0123456789"), 0, "AUTH %llu accepted",
                     (unsigned long long)i);
    }
    uint64_t failures = mc_metrics_limit_hits(MC_LIMIT_AUTH_FAILURES);
    cr_assert_eq(raw_auth(fd, 9, "tok-app-0123456789"), MC_EUNAUTH);
    expect_closed(fd);
    close(fd);
    cr_assert_eq(mc_metrics_limit_hits(MC_LIMIT_AUTH_FAILURES), failures + 1);
    fd = raw_connect(th_port(s)); /* a new connection starts a new count */
    cr_assert_eq(raw_auth(fd, 1, "tok-app-0123456789"), 0);
    raw_ping(fd, 2);
    close(fd);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_eq(st.protocol_errors, 1);
    mc_auth_free(a);
}

/* With auth on, a connection that never authenticates is closed request_read_timeout_ms after
 * its accept, PINGs or not (aud18 R3: anonymous connections could hold every slot of
 * max_connections); one that authenticated stays. Before: the anonymous one stayed open until
 * the idle timeout (5 minutes). */
Test(client_e2e, anonymous_connection_closed_when_auth_is_on, .timeout = 30)
{
    struct mc_auth *a = NULL;
    cr_assert_eq(mc_auth_new(&a), 0);
    cr_assert_eq(mc_auth_add_token(a, "app", MC_ROLE_WRITE, "tok-app-0123456789"), 0);
    struct th_opts o = {0};
    o.srv.auth = a;
    o.srv.request_read_timeout_ms = 1000;
    struct th_server *s = ct_start(o);
    int anon = raw_connect(th_port(s));
    int authed = raw_connect(th_port(s));
    cr_assert_eq(raw_auth(authed, 1, "tok-app-0123456789"), 0);
    uint64_t t0 = mc_mono_ms();
    for (uint64_t i = 2; i < 5; i++) { /* PING is allowed anonymously, and is activity */
        raw_ping(anon, i);
        raw_ping(authed, i);
        usleep(100 * 1000);
    }
    expect_closed(anon);
    uint64_t waited = mc_mono_ms() - t0;
    cr_assert_geq(waited, 900, "closed after %llu ms, before its deadline",
                  (unsigned long long)waited);
    usleep(1200 * 1000); /* past the deadline again: the authenticated one is kept */
    raw_ping(authed, 10);
    close(anon);
    close(authed);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_eq(st.auth_timeouts, 1);
    mc_auth_free(a);
}

/* With auth off an AUTH hashes nothing (every token is admin): not capped, the connection
 * stays. Before: the 9th was refused SlowDown and the connection closed. */
Test(client_e2e, auth_frames_not_capped_with_auth_off)
{
    struct th_server *s = ct_start((struct th_opts){0});
    int fd = raw_connect(th_port(s));
    for (uint64_t i = 1; i <= 20; i++) {
        cr_assert_eq(raw_auth(fd, i, "any-token"), 0, "AUTH %llu accepted", (unsigned long long)i);
    }
    raw_ping(fd, 21);
    close(fd);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_eq(st.protocol_errors, 0);
}

/* ---- no memory at accept (R11) ---- */

/* The first two accepts fail as if calloc had (test hook MC_TEST_CLIENT_ACCEPT_NOMEM): each is
 * accepted and closed at once, and the listener keeps accepting, the third is served. Before:
 * on_connection returned without accepting, libuv stopped polling the listener, and every later
 * connection hung unanswered. */
Test(client_e2e, accept_without_memory_closes_and_keeps_listening)
{
    setenv("MC_TEST_CLIENT_ACCEPT_NOMEM", "2", 1);
    struct th_server *s = ct_start((struct th_opts){0});
    unsetenv("MC_TEST_CLIENT_ACCEPT_NOMEM");
    for (int i = 0; i < 2; i++) {
        int fd = raw_connect(th_port(s));
        expect_closed(fd);
        close(fd);
    }
    int fd = raw_connect(th_port(s));
    raw_ping(fd, 1);
    close(fd);
    struct mc_client_server_stats st;
    th_stop(s, &st);
    cr_assert_eq(st.connections_rejected, 2);
    cr_assert_eq(st.connections_accepted, 1);
}

/* ---- idle timeout while replies are written (Other nits) ---- */

/* A client that sent its requests long ago but is still reading their replies (slowly, with
 * progress) is not idle: with an idle timeout of 200 ms it takes ~12 replies over about a
 * second, and is not closed mid-reply. Before: the idle sweep ignored the write in flight and
 * closed it ~200 ms after its last request. */
Test(client_e2e, slow_reader_is_not_idle_closed_mid_reply)
{
    struct th_opts o = {0};
    o.srv.idle_timeout_ms = 200;
    cr_assert_eq(slow_reader_gets_all(o, 20).idle_closed, 0);
}

/* ---- the server-wide output budget (B2 a) ---- */

/* Read n replies to GETs of "big" (request ids 1..n, in order) from fd. */
static void read_big_replies(int fd, int n)
{
    uint8_t *body = malloc(BIG_VALUE_BYTES);
    for (int i = 0; i < n; i++) {
        uint8_t hb[MC_PROTO_HEADER_BYTES];
        struct mc_proto_header h;
        cr_assert(recv_all(fd, hb, sizeof(hb)), "reply %d arrives", i + 1);
        mc_proto_header_get(hb, &h);
        cr_assert_eq(h.status, 0);
        cr_assert_eq(h.request_id, (uint64_t)i + 1);
        cr_assert_eq(h.length + 4 - MC_PROTO_HEADER_BYTES, BIG_VALUE_BYTES);
        cr_assert(recv_all(fd, body, BIG_VALUE_BYTES));
        cr_assert(body[0] == 'z' && body[BIG_VALUE_BYTES - 1] == 'z');
    }
    free(body);
}

/* 8 connections each ask for 3 MiB of replies (under max_output_bytes, 8 MiB) and read none:
 * with a 2 MiB budget the server holds at most twice the budget plus one reply per connection
 * (past the budget a connection goes on up to its fair share, the budget over the connections,
 * and then one reply more), not 8 × 3 MiB; then every reply
 * arrives as the clients read, one connection after the other (nothing stays paused). Before:
 * only the per-connection limit applied and the server held all 24 MiB. */
Test(client_e2e, output_budget_bounds_what_all_connections_hold, .timeout = 60)
{
    enum { CONNS = 8, GETS = 48 };
    const size_t budget = 2u << 20, one_reply = BIG_VALUE_BYTES + 1024;
    struct th_opts o = {0};
    o.srv.max_total_output_bytes = budget;
    o.srv.sndbuf_bytes = 16 * 1024; /* else loopback takes much of the replies at once */
    struct th_server *s = ct_start(o);
    put_big(s);
    uint64_t hits0 = mc_metrics_limit_hits(MC_LIMIT_OUTPUT_BUDGET);
    int fd[CONNS];
    for (int i = 0; i < CONNS; i++) {
        fd[i] = raw_connect_rcvbuf(th_port(s), 4096);
        send_big_gets(fd[i], GETS);
    }
    /* every connection has read its requests, answered what it may and paused */
    struct mc_client_server_stats st;
    for (int i = 0; i < 500; i++) {
        th_stats(s, &st);
        if (st.budget_pauses >= CONNS) {
            break;
        }
        usleep(10 * 1000);
    }
    usleep(100 * 1000); /* and anything still going on has settled */
    th_stats(s, &st);
    cr_assert_leq(st.output_bytes_peak, 2 * budget + CONNS * one_reply, "held %llu",
                  (unsigned long long)st.output_bytes_peak);
    cr_assert_geq(st.budget_pauses, CONNS, "each connection paused (%llu)",
                  (unsigned long long)st.budget_pauses);
    cr_assert_eq(st.budget_hits, 1, "the budget was reached (and not released: none read)");
    for (int i = 0; i < CONNS; i++) {
        read_big_replies(fd[i], GETS);
    }
    for (int i = 0; i < CONNS; i++) {
        close(fd[i]);
    }
    th_stop(s, &st);
    cr_assert_leq(st.output_bytes_peak, 2 * budget + CONNS * one_reply);
    cr_assert_eq(st.output_bytes, 0, "all connections gone: nothing counted");
    cr_assert_geq(st.budget_hits, 1);
    cr_assert_geq(st.budget_pauses, CONNS);
    cr_assert_eq(st.send_timeouts, 0);
    cr_assert_eq(st.protocol_errors, 0);
    cr_assert_gt(mc_metrics_limit_hits(MC_LIMIT_OUTPUT_BUDGET), hits0);
}

/* ---- read buffer shrinking (rev19 R2, N-5) ---- */

/* A one-op WRITE of "k=" + vlen 'v's (a frame of about vlen bytes) with request id rid; waits
 * for its reply. */
static void raw_write_big(int fd, uint64_t rid, size_t vlen)
{
    size_t oplen = 2 + vlen;
    uint8_t *ops = malloc(4 + oplen);
    mc_put_u32le(ops, (uint32_t)oplen);
    memcpy(ops + 4, "k=", 2);
    memset(ops + 6, 'v', vlen);
    struct mc_proto_request q = {.op = MC_REQ_WRITE, .request_id = rid};
    q.u.write.n_ops = 1;
    q.u.write.ops = ops;
    q.u.write.ops_bytes = (uint32_t)(4 + oplen);
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    mc_proto_request_encode(&w, &q);
    send_all(fd, w.data, w.len);
    mc_wbuf_free(&w);
    free(ops);
    struct mc_proto_header h;
    cr_assert_eq(read_reply(fd, &h), 0);
    cr_assert_eq(h.request_id, rid);
}

/* A frame of 100 KiB grows a read buffer to 128 KiB, under SHRINK_RBUF_BYTES: the connection
 * that then goes quiet for RBUF_IDLE_SHRINK_MS (1 s) gives it back, once; one that keeps sending
 * (a PING every 100 ms) keeps it while busy, and gives it back once it goes quiet too. */
Test(client_e2e, quiet_connection_gives_back_a_grown_read_buffer, .timeout = 30)
{
    struct th_opts o = {0};
    o.srv.request_read_timeout_ms = 400; /* sweeps every 100 ms */
    struct th_server *s = ct_start(o);
    int quiet = raw_connect(th_port(s)), busy = raw_connect(th_port(s));
    raw_write_big(quiet, 1, 100 * 1024);
    raw_write_big(busy, 1, 100 * 1024);
    struct mc_client_server_stats st;
    for (int i = 0; i < 20; i++) { /* 2 s: twice RBUF_IDLE_SHRINK_MS */
        raw_ping(busy, (uint64_t)i + 2);
        usleep(100 * 1000);
    }
    th_stats(s, &st);
    cr_assert_eq(st.rbuf_idle_shrinks, 1, "the quiet one only (%llu)",
                 (unsigned long long)st.rbuf_idle_shrinks);
    for (int i = 0; i < 300 && st.rbuf_idle_shrinks < 2; i++) {
        usleep(10 * 1000);
        th_stats(s, &st);
    }
    cr_assert_eq(st.rbuf_idle_shrinks, 2, "the busy one once quiet");
    usleep(300 * 1000);
    close(quiet);
    close(busy);
    th_stop(s, &st);
    cr_assert_eq(st.rbuf_idle_shrinks, 2, "each once: a shrunk buffer is not shrunk again");
    cr_assert_eq(st.rbuf_shrinks, 0, "128 KiB is under SHRINK_RBUF_BYTES");
}

/* N-5: frames of 100 KiB back to back keep the 128 KiB buffer (no realloc pair per pass); a
 * frame of 1 MiB grows it past SHRINK_RBUF_BYTES, and it is given back right after. */
Test(client_e2e, read_buffer_shrinks_after_a_big_frame_only)
{
    struct th_server *s = ct_start((struct th_opts){0});
    int fd = raw_connect(th_port(s));
    for (int i = 0; i < 10; i++) {
        raw_write_big(fd, (uint64_t)i + 1, 100 * 1024);
    }
    struct mc_client_server_stats st;
    th_stats(s, &st);
    cr_assert_eq(st.rbuf_shrinks, 0, "a buffer under SHRINK_RBUF_BYTES is kept (%llu)",
                 (unsigned long long)st.rbuf_shrinks);
    raw_write_big(fd, 11, 1u << 20);
    th_stats(s, &st);
    cr_assert_eq(st.rbuf_shrinks, 1, "the 2 MiB buffer is given back after its frame");
    raw_write_big(fd, 12, 100 * 1024);
    close(fd);
    th_stop(s, &st);
    cr_assert_eq(st.rbuf_shrinks, 1);
}
