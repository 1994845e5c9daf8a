/* route.c: maps a decoded request path to one of the API's routes (DESIGN.md §4). */
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "metacenter/error.h"

/* If s starts with prefix, return the rest, else NULL. */
static const char *skip(const char *s, const char *prefix)
{
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 ? s + n : NULL;
}

/* A positive decimal id ending at '\0' or '/'; *end gets the stop. */
static int parse_id(const char *s, uint64_t *id, const char **end)
{
    uint64_t v = 0;
    const char *p = s;
    while (*p >= '0' && *p <= '9') {
        if (v > (UINT64_MAX - 9) / 10)
            return MC_EINVAL;
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (p == s || (*p != '\0' && *p != '/') || v == 0)
        return MC_EINVAL;
    *id = v;
    *end = p;
    return 0;
}

static int parse_bucket_routes(const char *rest, struct mc_http_path *out)
{
    /* rest follows "/v1/buckets/" */
    const char *slash = strchr(rest, '/');
    size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (blen == 0)
        return MC_ENOTFOUND;
    if (blen > MC_BUCKET_NAME_MAX)
        return MC_EBUCKETNAME;
    memcpy(out->bucket, rest, blen);
    out->bucket[blen] = '\0';
    if (!slash) {
        out->route = MC_ROUTE_BUCKET;
        return 0;
    }
    const char *sub = slash + 1;
    if (strcmp(sub, "versioning") == 0)
        out->route = MC_ROUTE_VERSIONING;
    else if (strcmp(sub, "objects") == 0)
        out->route = MC_ROUTE_OBJECTS;
    else if (strcmp(sub, "versions") == 0)
        out->route = MC_ROUTE_VERSIONS;
    else if ((out->key = skip(sub, "objects/")) != NULL && out->key[0] != '\0')
        out->route = MC_ROUTE_OBJECT; /* the key is the whole rest, '/' included */
    else
        return MC_ENOTFOUND;
    return 0;
}

static int parse_cluster_routes(const char *rest, struct mc_http_path *out)
{
    /* rest follows "/v1/cluster" */
    const char *p;
    if (rest[0] == '\0') {
        out->route = MC_ROUTE_CLUSTER;
        return 0;
    }
    if (strcmp(rest, "/members") == 0) {
        out->route = MC_ROUTE_MEMBERS;
        return 0;
    }
    if (strcmp(rest, "/transfer-leader") == 0) {
        out->route = MC_ROUTE_TRANSFER;
        return 0;
    }
    if ((p = skip(rest, "/members/")) != NULL) {
        const char *end;
        if (parse_id(p, &out->member_id, &end) != 0)
            return MC_EINVAL;
        if (*end == '\0') {
            out->route = MC_ROUTE_MEMBER;
            return 0;
        }
        if (strcmp(end, "/promote") == 0) {
            out->route = MC_ROUTE_PROMOTE;
            return 0;
        }
    }
    return MC_ENOTFOUND;
}

int mc_http_route_parse(const char *path, struct mc_http_path *out)
{
    memset(out, 0, sizeof *out);
    const char *p;
    if (strcmp(path, "/healthz") == 0)
        out->route = MC_ROUTE_HEALTHZ;
    else if (strcmp(path, "/readyz") == 0)
        out->route = MC_ROUTE_READYZ;
    else if (strcmp(path, "/metrics") == 0)
        out->route = MC_ROUTE_METRICS;
    else if (strcmp(path, "/v1/buckets") == 0 || strcmp(path, "/v1/buckets/") == 0)
        out->route = MC_ROUTE_BUCKETS;
    else if (strcmp(path, "/v1/snapshot") == 0)
        out->route = MC_ROUTE_SNAPSHOT;
    else if ((p = skip(path, "/v1/buckets/")) != NULL)
        return parse_bucket_routes(p, out);
    else if ((p = skip(path, "/v1/cluster")) != NULL)
        return parse_cluster_routes(p, out);
    else
        return MC_ENOTFOUND;
    return 0;
}

const char *mc_http_route_methods(enum mc_http_route r)
{
    switch (r) {
    case MC_ROUTE_HEALTHZ:
    case MC_ROUTE_READYZ:
    case MC_ROUTE_METRICS:
    case MC_ROUTE_BUCKETS:
    case MC_ROUTE_OBJECTS:
    case MC_ROUTE_VERSIONS:
    case MC_ROUTE_CLUSTER:
        return "GET, HEAD";
    case MC_ROUTE_BUCKET:
        return "GET, HEAD, PUT, DELETE";
    case MC_ROUTE_VERSIONING:
        return "PUT";
    case MC_ROUTE_OBJECT:
        return "GET, HEAD, PUT, DELETE";
    case MC_ROUTE_MEMBERS:
    case MC_ROUTE_PROMOTE:
    case MC_ROUTE_TRANSFER:
    case MC_ROUTE_SNAPSHOT:
        return "POST";
    case MC_ROUTE_MEMBER:
        return "DELETE";
    case MC_ROUTE_NONE:
        break;
    }
    return "";
}

bool mc_http_route_allows(enum mc_http_route r, const char *method)
{
    const char *list = mc_http_route_methods(r);
    size_t n = strlen(method);
    if (n == 0) {
        return false;
    }
    for (const char *p = list; (p = strstr(p, method)) != NULL; p += n) {
        bool start = p == list || p[-1] == ' ';
        bool end = p[n] == '\0' || p[n] == ',';
        if (start && end)
            return true;
    }
    return false;
}
