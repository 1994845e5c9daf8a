/* remote.c: the CLI backend that talks to servers through the client library (leader discovery,
 * retries and exactly-once are the library's). */
#include "cli/backend.h"
#include "cli/cli.h"
#include "metacenter/client.h"
#include "metacenter/error.h"

#include <stdlib.h>
#include <string.h>

const char *mc_cli_endpoints(const struct mc_cli *cli)
{
    return cli->endpoints ? cli->endpoints : MC_CLI_DEFAULT_ENDPOINT;
}

void mc_cli_client_opts(const struct mc_cli *cli, struct mc_client_opts *o)
{
    mc_client_opts_default(o);
    if (cli->timeout_ms) {
        o->request_timeout_ms = (uint32_t)cli->timeout_ms;
        if (o->connect_timeout_ms > o->request_timeout_ms) {
            o->connect_timeout_ms = o->request_timeout_ms;
        }
    }
    o->read.consistency = cli->stale ? MC_CONSISTENCY_STALE : MC_CONSISTENCY_LINEARIZABLE;
    o->read.max_staleness_ms = (uint32_t)cli->max_staleness_ms;
    o->token = cli->token;
    o->tls_ca_file = cli->cacert;
    o->tls_cert_file = cli->cert;
    o->tls_key_file = cli->key;
}

int mc_cli_client_open(struct mc_cli *cli, const char *endpoints, struct mc_client **out)
{
    struct mc_client_opts o;
    mc_cli_client_opts(cli, &o);
    int rc = mc_client_open(endpoints, &o, out);
    if (rc != 0) {
        *out = NULL;
        return mc_cli_be_seterr(rc, "bad --endpoints '%.200s' (want HOST:PORT[,HOST:PORT...])",
                                endpoints);
    }
    return 0;
}

static int conn(struct mc_cli *cli, struct mc_client **c)
{
    if (!cli->client) {
        struct mc_client *nc = NULL;
        int rc = mc_cli_client_open(cli, mc_cli_endpoints(cli), &nc);
        if (rc != 0) {
            return rc;
        }
        cli->client = nc;
    }
    *c = cli->client;
    return 0;
}

int mc_cli_client_error(const struct mc_cli *cli, struct mc_client *c, int rc)
{
    const struct mc_client_error *e = mc_client_last_error(c);
    const char *msg = e && e->status == rc ? e->message : "";
    const char *unknown = e && e->status == rc && e->outcome_unknown
                              ? " (the write may or may not have applied)"
                              : "";
    if (msg && *msg) {
        return mc_cli_be_seterr(rc, "%s%s", msg, unknown);
    }
    if (rc == MC_ETIMEOUT || rc == MC_EUNAVAIL || rc == MC_ESHUTDOWN || rc == MC_EIO) {
        return mc_cli_be_seterr(rc, "no answer from %s: %s%s", mc_cli_endpoints(cli),
                                mc_strerror(rc), unknown);
    }
    mc_cli_be_clearerr();
    return rc;
}

static int finish(struct mc_cli *cli, struct mc_client *c, int rc)
{
    return rc == 0 ? 0 : mc_cli_client_error(cli, c, rc);
}

static int op_run(struct mc_cli *cli, struct mc_op *op, int rc, struct mc_op_result *r)
{
    memset(r, 0, sizeof(*r));
    struct mc_client *c = NULL;
    if (rc == 0) {
        rc = conn(cli, &c);
    }
    if (rc == 0) {
        rc = mc_client_op(c, op, r);
        rc = finish(cli, c, rc);
    }
    mc_op_clear(op);
    if (r->code == 0) {
        r->code = rc;
    }
    return rc;
}

static int rem_bucket_create(struct mc_cli *cli, const char *name, enum mc_versioning v,
                             struct mc_op_result *r)
{
    struct mc_op op = {0};
    return op_run(cli, &op, mc_op_bucket_create(&op, name, v, 0), r);
}

static int rem_bucket_delete(struct mc_cli *cli, const char *name, struct mc_op_result *r)
{
    struct mc_op op = {0};
    return op_run(cli, &op, mc_op_bucket_delete(&op, name), r);
}

static int rem_bucket_versioning(struct mc_cli *cli, const char *name, enum mc_versioning v,
                                 struct mc_op_result *r)
{
    struct mc_op op = {0};
    return op_run(cli, &op, mc_op_bucket_versioning(&op, name, v), r);
}

static int rem_bucket_head(struct mc_cli *cli, const char *name, struct mc_bucket_info *out)
{
    struct mc_client *c = NULL;
    int rc = conn(cli, &c);
    return rc ? rc : finish(cli, c, mc_client_bucket_head(c, name, out));
}

static int rem_bucket_list(struct mc_cli *cli, struct mc_bucket_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    struct mc_client *c = NULL;
    int rc = conn(cli, &c);
    return rc ? rc : finish(cli, c, mc_client_bucket_list(c, out, n));
}

/* Version id and time are left empty: the leader chooses them when it proposes (DESIGN 2.1). */
static int rem_put(struct mc_cli *cli, const char *bucket, const char *key,
                   const struct mc_object_meta *meta, const char *if_match, bool if_none_match_star,
                   struct mc_op_result *r)
{
    struct mc_op op = {0};
    int rc = mc_op_put(&op, bucket, key, NULL, 0, meta);
    if (rc == 0 && if_match) {
        op.if_match = strdup(if_match);
        rc = op.if_match ? 0 : MC_ENOMEM;
    }
    op.if_none_match_star = if_none_match_star;
    return op_run(cli, &op, rc, r);
}

static int rem_del(struct mc_cli *cli, const char *bucket, const char *key, const char *version_id,
                   struct mc_op_result *r)
{
    struct mc_op op = {0};
    return op_run(cli, &op, mc_op_delete(&op, bucket, key, version_id, NULL, 0), r);
}

static int rem_get(struct mc_cli *cli, const char *bucket, const char *key, const char *version_id,
                   bool with_inline, struct mc_version *out)
{
    struct mc_client *c = NULL;
    int rc = conn(cli, &c);
    if (rc != 0) {
        return rc;
    }
    rc = with_inline ? mc_client_get(c, bucket, key, version_id, out)
                     : mc_client_head(c, bucket, key, version_id, out);
    const struct mc_client_error *e = mc_client_last_error(c);
    if (rc == MC_ENOKEY && e && e->delete_marker) {
        /* Same contract as the engine: NoSuchKey, with the marker described in *out. */
        mc_version_clear(out);
        out->is_delete_marker = true;
        out->version_id = strdup(e->version_id);
        mc_cli_be_clearerr();
        return rc;
    }
    return finish(cli, c, rc);
}

static void list_args(const char *bucket, const struct mc_list_params *p, struct mc_list_args *a)
{
    memset(a, 0, sizeof(*a));
    a->bucket = bucket;
    a->prefix = p->prefix;
    a->delimiter = p->delimiter;
    a->start_after = p->start_after;
    a->continuation_token = p->continuation_token;
    a->key_marker = p->key_marker;
    a->version_id_marker = p->version_id_marker;
    a->max_keys = p->max_keys > 0 ? (uint32_t)p->max_keys : 0;
}

static int rem_list_objects(struct mc_cli *cli, const char *bucket, const struct mc_list_params *p,
                            struct mc_list_result *out)
{
    struct mc_client *c = NULL;
    int rc = conn(cli, &c);
    if (rc != 0) {
        return rc;
    }
    struct mc_list_args a;
    list_args(bucket, p, &a);
    return finish(cli, c, mc_client_list_objects(c, &a, out));
}

static int rem_list_versions(struct mc_cli *cli, const char *bucket, const struct mc_list_params *p,
                             struct mc_list_result *out)
{
    struct mc_client *c = NULL;
    int rc = conn(cli, &c);
    if (rc != 0) {
        return rc;
    }
    struct mc_list_args a;
    list_args(bucket, p, &a);
    return finish(cli, c, mc_client_list_versions(c, &a, out));
}

static void rem_close(struct mc_cli *cli)
{
    if (cli->client) {
        mc_client_close(cli->client);
        cli->client = NULL;
    }
}

const struct mc_cli_backend mc_cli_server_backend = {
    .name = "server",
    .bucket_create = rem_bucket_create,
    .bucket_delete = rem_bucket_delete,
    .bucket_versioning = rem_bucket_versioning,
    .bucket_head = rem_bucket_head,
    .bucket_list = rem_bucket_list,
    .put = rem_put,
    .del = rem_del,
    .get = rem_get,
    .list_objects = rem_list_objects,
    .list_versions = rem_list_versions,
    .close = rem_close,
};
