/* client_test_util.h: what the client library's unit tests share: a test server, a client with
 * a request timeout, a one-op write. */
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

/* timeout_ms 0: the library's default request timeout. */
static inline struct mc_client *ct_open_client(const char *eps, uint32_t timeout_ms)
{
    struct mc_client_opts o;
    mc_client_opts_default(&o);
    if (timeout_ms) {
        o.request_timeout_ms = timeout_ms;
    }
    struct mc_client *c = NULL;
    cr_assert_eq(mc_client_open(eps, &o, &c), 0);
    return c;
}

/* One write of the op bytes kv (the harness's "key=value" form). */
static inline int ct_put_kv(struct mc_client *c, const char *kv)
{
    const void *p = kv;
    size_t len = strlen(kv);
    return mc_client_write(c, 1, &p, &len, NULL);
}

#endif
