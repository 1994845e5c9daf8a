/* test_client_resolve.c: a leader hint that names its member by a host name: looked up off the
 * request path (other requests keep being served), waited for, or failing with a clear error.
 */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../client/harness.h"
#include "client_test_util.h"
#include "metacenter/client.h"
#include "metacenter/error.h"
#include "util/clock.h"

/* How long a ".slow.test" name takes to resolve (set by each test before its client starts). */
static volatile unsigned g_slow_ms;

/* The test binary's getaddrinfo stands in for libc's (a definition in the executable wins over
 * the shared library's, no LD_PRELOAD needed): a name ending in ".slow.test" is a resolver that
 * answers after g_slow_ms with 127.0.0.1; every other name goes to the real one. */
int getaddrinfo(const char *restrict node, const char *restrict service,
                const struct addrinfo *restrict hints, struct addrinfo **restrict res)
{
    typedef int (*gai_fn)(const char *, const char *, const struct addrinfo *, struct addrinfo **);
    gai_fn real = (gai_fn)dlsym(RTLD_NEXT, "getaddrinfo");
    size_t n = node ? strlen(node) : 0;
    const char *suffix = ".slow.test";
    if (n > strlen(suffix) && strcmp(node + n - strlen(suffix), suffix) == 0) {
        usleep(g_slow_ms * 1000u);
        node = "127.0.0.1";
    }
    return real(node, service, hints, res);
}

struct done {
    int n, status;
    uint64_t at_ms;
};

static void done_cb(void *arg, const struct mc_client_result *r)
{
    struct done *d = arg;
    d->n++;
    d->status = r->status;
    d->at_ms = mc_mono_ms();
}

Test(client_resolve, a_slow_leader_name_does_not_stall_other_requests)
{
    g_slow_ms = 1500;
    static char hint[64];
    struct th_server *b = ct_start((struct th_opts){.node_id = 2});
    snprintf(hint, sizeof(hint), "leader.slow.test:%d", th_port(b));
    struct th_server *a = ct_start((struct th_opts){.node_id = 1, .redirect_to = hint});
    struct mc_client *c = ct_open_client(th_addr(a), 5000);
    const char *kv = "x=1";
    const void *p = kv;
    size_t len = strlen(kv);
    struct done w = {0};
    uint64_t t0 = mc_mono_ms();
    cr_assert_eq(mc_client_write_async(c, 1, &p, &len, done_cb, &w), 0);
    /* a answers the write (its session registration first) with NotLeader naming the slow
     * name: pings to a go on meanwhile, each answered at once. */
    uint64_t worst = 0;
    int pings = 0;
    while (w.n == 0 && mc_mono_ms() < t0 + 4000) {
        uint64_t t = mc_mono_ms();
        struct mc_ping_info info;
        cr_assert_eq(mc_client_ping(c, 0, &info), 0);
        uint64_t took = mc_mono_ms() - t;
        worst = took > worst ? took : worst;
        pings++;
        usleep(10000);
    }
    cr_assert_lt(worst, 500, "a ping took %llu ms while the leader's name was looked up",
                 (unsigned long long)worst);
    cr_assert_gt(pings, 20, "only %d pings in 1.5 s", pings);
    cr_assert_eq(w.n, 1, "the write waited for the name and then went there");
    cr_assert_eq(w.status, 0, "write: %s", mc_error_name(w.status));
    cr_assert_geq(w.at_ms - t0, 1400, "the write was answered before the name resolved");
    cr_assert_eq(th_applied(b), 1);
    cr_assert_eq(th_applied(a), 0);
    cr_assert_str_eq(mc_client_endpoint_addr(c, mc_client_leader_index(c)), hint);
    cr_assert_eq(ct_put_kv(c, "y=2"), 0, "the next write goes to the leader at once");
    cr_assert_eq(th_applied(b), 2);
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
}

Test(client_resolve, a_leader_name_that_does_not_resolve_fails_clearly)
{
    static char hint[64];
    struct th_server *b = ct_start((struct th_opts){.node_id = 2});
    snprintf(hint, sizeof(hint), "nonexistent.invalid:%d", th_port(b));
    struct th_server *a = ct_start((struct th_opts){.node_id = 1, .redirect_to = hint});
    struct mc_client *c = ct_open_client(th_addr(a), 600);
    uint64_t t0 = mc_mono_ms();
    cr_assert_eq(ct_put_kv(c, "x=1"), MC_ETIMEOUT);
    cr_assert_lt(mc_mono_ms() - t0, 2000);
    const char *msg = mc_client_last_error(c)->message;
    cr_assert(strstr(msg, "nonexistent.invalid") && strstr(msg, "did not resolve"),
              "the timeout does not say the leader's name did not resolve: \"%s\"", msg);
    struct mc_ping_info info;
    cr_assert_eq(mc_client_ping(c, 0, &info), 0, "the member given by number still answers");
    cr_assert_eq(th_applied(b), 0);
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
}

Test(client_resolve, a_request_waiting_for_a_name_ends_at_its_deadline)
{
    g_slow_ms = 3000;
    static char hint[64];
    struct th_server *b = ct_start((struct th_opts){.node_id = 2});
    snprintf(hint, sizeof(hint), "leader.slow.test:%d", th_port(b));
    struct th_server *a = ct_start((struct th_opts){.node_id = 1, .redirect_to = hint});
    struct mc_client *c = ct_open_client(th_addr(a), 300);
    uint64_t t0 = mc_mono_ms();
    cr_assert_eq(ct_put_kv(c, "x=1"), MC_ETIMEOUT);
    uint64_t took = mc_mono_ms() - t0;
    cr_assert_lt(took, 1000, "the write took %llu ms (blocked on the lookup)",
                 (unsigned long long)took);
    const char *msg = mc_client_last_error(c)->message;
    cr_assert(strstr(msg, hint) && strstr(msg, "lookup still in progress"), "message \"%s\"", msg);
    /* Closed with the lookup in flight: its thread finishes and frees it later. */
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
}

Test(client_resolve, a_name_for_an_endpoint_given_by_number_maps_to_it)
{
    g_slow_ms = 20;
    static char hint[64];
    struct th_server *b = ct_start((struct th_opts){.node_id = 2});
    snprintf(hint, sizeof(hint), "leader.slow.test:%d", th_port(b));
    struct th_server *a = ct_start((struct th_opts){.node_id = 1, .redirect_to = hint});
    char eps[128];
    snprintf(eps, sizeof(eps), "%s,%s", th_addr(a), th_addr(b));
    struct mc_client *c = ct_open_client(eps, 2000);
    /* Rotation starts at a: its NotLeader names b by name. */
    cr_assert_eq(ct_put_kv(c, "x=1"), 0);
    cr_assert_eq(ct_put_kv(c, "y=2"), 0);
    cr_assert_eq(mc_client_endpoint_count(c), 2, "no second endpoint for b's name");
    cr_assert_eq(mc_client_leader_index(c), 1);
    cr_assert_eq(th_applied(b), 2);
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
}
