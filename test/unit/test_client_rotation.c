/* test_client_rotation.c: where the client library sends a request when no leader is known:
 * a retry goes to the next member, and a member that never answers does not capture the
 * requests that follow it. Fake servers (test/client/harness.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../client/harness.h"
#include "metacenter/client.h"
#include "metacenter/error.h"
#include "util/clock.h"

static struct th_server *start_fake(struct th_opts o)
{
    struct th_server *s = NULL;
    cr_assert_eq(th_start(&o, &s), 0);
    return s;
}

static struct mc_client *open_client(const char *eps, uint32_t timeout_ms)
{
    struct mc_client_opts o;
    mc_client_opts_default(&o);
    o.request_timeout_ms = timeout_ms;
    struct mc_client *c = NULL;
    cr_assert_eq(mc_client_open(eps, &o, &c), 0);
    return c;
}

static int put_one(struct mc_client *c)
{
    const void *p = "k=v";
    size_t len = 3;
    return mc_client_write(c, 1, &p, &len, NULL);
}

/* Two members, the first answering NotLeader without naming a leader (it knows none): the
 * retry must go to the second. Counting retries from rr + attempts stepped by two once rr had
 * moved, so every retry went back to the first until the deadline (Timeout). */
Test(client_rotation, a_write_retry_without_a_hint_goes_to_the_other_of_two_members)
{
    struct th_server *a = start_fake((struct th_opts){.node_id = 2, .redirect_unknown = true});
    struct th_server *b = start_fake((struct th_opts){.node_id = 1});
    char eps[128];
    snprintf(eps, sizeof(eps), "%s,%s", th_addr(a), th_addr(b));
    struct mc_client *c = open_client(eps, 2000);
    int ok = 0;
    uint64_t t0 = mc_mono_ms();
    for (int i = 0; i < 5; i++) {
        int rc = put_one(c);
        ok += rc == 0;
    }
    uint64_t ms = mc_mono_ms() - t0;
    uint64_t at_a = th_requests(a), applied_b = th_applied(b);
    mc_client_close(c);
    th_stop(a, NULL);
    th_stop(b, NULL);
    cr_assert_eq(ok, 5, "%d of 5 writes succeeded in %llu ms (requests at a %llu, applied at b "
                 "%llu)", ok, (unsigned long long)ms, (unsigned long long)at_a,
                 (unsigned long long)applied_b);
    cr_assert_eq(applied_b, 5);
}

/* A first member that accepts connections and never answers (SIGSTOPped, wedged): with no
 * leader known, later requests must still reach the others (rotation moves on). Guards the
 * reverted session-9 change that kept leader-bound requests on one member (0 of 10). */
Test(client_rotation, writes_leave_a_silent_first_member)
{
    struct th_server *dead = start_fake((struct th_opts){.blackhole = true});
    struct th_server *b = start_fake((struct th_opts){.node_id = 2});
    char eps[128];
    snprintf(eps, sizeof(eps), "%s,%s", th_addr(dead), th_addr(b));
    struct mc_client *c = open_client(eps, 200);
    int ok = 0;
    for (int i = 0; i < 10; i++) {
        ok += put_one(c) == 0;
    }
    mc_client_close(c);
    th_stop(dead, NULL);
    th_stop(b, NULL);
    cr_assert_geq(ok, 5, "writes stayed on the silent member: %d of 10 succeeded", ok);
}

Test(client_rotation, linearizable_reads_leave_a_silent_first_member)
{
    struct th_server *dead = start_fake((struct th_opts){.blackhole = true});
    struct th_server *b = start_fake((struct th_opts){.node_id = 2});
    struct th_server *d = start_fake((struct th_opts){.node_id = 3, .redirect_to = "x"});
    char eps[128];
    snprintf(eps, sizeof(eps), "%s,%s,%s", th_addr(dead), th_addr(b), th_addr(d));
    struct mc_client *c = open_client(eps, 200);
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
