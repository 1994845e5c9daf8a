/* client_test_util.h: what the client library's unit tests share: a test server, a client with
 * a request timeout or other options, a one-op write. */
#ifndef MC_CLIENT_TEST_UTIL_H
#define MC_CLIENT_TEST_UTIL_H

#include <criterion/criterion.h>
#include <string.h>

#include "../client/harness.h"
#include "metacenter/client.h"

static inline struct th_server *ct_start(struct th_opts o)
{
    struct th_server *s = NULL;
    cr_assert_eq(th_start(&o, &s), 0);
    return s;
}

/* What a test sets on a client beyond the defaults; 0 / false keeps the library's default. */
struct ct_opts {
    uint32_t timeout_ms;     /* request_timeout_ms */
    uint32_t backoff_min_ms; /* the first retry's pause (≤ the default backoff_max_ms, 500) */
    bool no_retry;
    bool follower_reads;
    bool rx_timestamps;
};

static inline struct mc_client *ct_open_with(const char *eps, struct ct_opts t)
{
    struct mc_client_opts o;
    mc_client_opts_default(&o);
    if (t.timeout_ms) {
        o.request_timeout_ms = t.timeout_ms;
    }
    if (t.backoff_min_ms) {
        o.backoff_min_ms = t.backoff_min_ms;
    }
    o.no_retry = t.no_retry;
    o.follower_reads = t.follower_reads;
    o.rx_timestamps = t.rx_timestamps;
    struct mc_client *c = NULL;
    cr_assert_eq(mc_client_open(eps, &o, &c), 0);
    return c;
}

/* timeout_ms 0: the library's default request timeout. */
static inline struct mc_client *ct_open_client(const char *eps, uint32_t timeout_ms)
{
    return ct_open_with(eps, (struct ct_opts){.timeout_ms = timeout_ms});
}

/* One write of the op bytes kv (the harness's "key=value" form). */
static inline int ct_put_kv(struct mc_client *c, const char *kv)
{
    const void *p = kv;
    size_t len = strlen(kv);
    return mc_client_write(c, 1, &p, &len, NULL);
}

#endif
