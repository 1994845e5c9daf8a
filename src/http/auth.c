/* auth.c: HTTP authorization: bearer token → principal (security/auth.h), role per route. */
#include <string.h>
#include <strings.h>

#include "http/internal.h"
#include "metacenter/error.h"
#include "obs/metrics.h"

/* Role a route + method needs (MC_ROLE_NONE = open). */
static enum mc_role route_role(const struct mc_http_server *s, enum mc_http_route r,
                               const char *method)
{
    switch (r) {
    case MC_ROUTE_HEALTHZ:
    case MC_ROUTE_READYZ:
    case MC_ROUTE_NONE:
        return MC_ROLE_NONE;
    case MC_ROUTE_METRICS:
        return s->metrics_auth ? MC_ROLE_READ : MC_ROLE_NONE;
    case MC_ROUTE_CLUSTER:
    case MC_ROUTE_MEMBERS:
    case MC_ROUTE_MEMBER:
    case MC_ROUTE_PROMOTE:
    case MC_ROUTE_TRANSFER:
    case MC_ROUTE_SNAPSHOT:
        return MC_ROLE_ADMIN;
    default:
        return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ? MC_ROLE_READ
                                                                         : MC_ROLE_WRITE;
    }
}

const char *mc_http_bearer_token(const struct mc_http_request *q)
{
    const char *h = mc_http_header(q, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    const char *t = h + 7;
    while (*t == ' ')
        t++;
    return t;
}

int mc_http_authorize(const struct mc_http_server *s, const struct mc_http_request *q)
{
    if (!s->auth) {
        return 0;
    }
    enum mc_role need = route_role(s, q->path.route, q->method);
    if (need == MC_ROLE_NONE) {
        return 0;
    }
    const char *t = mc_http_bearer_token(q);
    const struct mc_principal *p = t ? mc_auth_verify(s->auth, t, strlen(t)) : NULL;
    if (!p) {
        mc_metrics_limit(MC_LIMIT_AUTH_FAILURES);
        return MC_EUNAUTH;
    }
    if (q->path.route == MC_ROUTE_METRICS) {
        return 0; /* any valid token may scrape, bucket-scoped or not */
    }
    const char *bucket = q->path.bucket[0] ? q->path.bucket : NULL;
    return mc_auth_check(p, need, bucket);
}
