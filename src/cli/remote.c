/* remote.c: the CLI backend that talks to servers (through the client library, once it exists). */
#include "cli/backend.h"
#include "cli/cli.h"
#include "metacenter/error.h"

static int unavailable(struct mc_cli *cli)
{
    return mc_cli_be_seterr(MC_EUNAVAIL,
                            "cannot reach %s: server mode is not available in this build yet "
                            "(no client library); use --data-dir DIR on a stopped node",
                            cli->endpoints ? cli->endpoints : MC_CLI_DEFAULT_ENDPOINT);
}

static int rem_bucket_create(struct mc_cli *cli, const char *name, enum mc_versioning v,
                             struct mc_op_result *r)
{
    (void)name;
    (void)v;
    return r->code = unavailable(cli);
}

static int rem_bucket_delete(struct mc_cli *cli, const char *name, struct mc_op_result *r)
{
    (void)name;
    return r->code = unavailable(cli);
}

static int rem_bucket_versioning(struct mc_cli *cli, const char *name, enum mc_versioning v,
                                 struct mc_op_result *r)
{
    (void)name;
    (void)v;
    return r->code = unavailable(cli);
}

static int rem_bucket_head(struct mc_cli *cli, const char *name, struct mc_bucket_info *out)
{
    (void)name;
    (void)out;
    return unavailable(cli);
}

static int rem_bucket_list(struct mc_cli *cli, struct mc_bucket_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    return unavailable(cli);
}

static int rem_put(struct mc_cli *cli, const char *bucket, const char *key,
                   const struct mc_object_meta *meta, const char *if_match, bool if_none_match_star,
                   struct mc_op_result *r)
{
    (void)bucket;
    (void)key;
    (void)meta;
    (void)if_match;
    (void)if_none_match_star;
    return r->code = unavailable(cli);
}

static int rem_del(struct mc_cli *cli, const char *bucket, const char *key, const char *version_id,
                   struct mc_op_result *r)
{
    (void)bucket;
    (void)key;
    (void)version_id;
    return r->code = unavailable(cli);
}

static int rem_get(struct mc_cli *cli, const char *bucket, const char *key, const char *version_id,
                   bool with_inline, struct mc_version *out)
{
    (void)bucket;
    (void)key;
    (void)version_id;
    (void)with_inline;
    (void)out;
    return unavailable(cli);
}

static int rem_list(struct mc_cli *cli, const char *bucket, const struct mc_list_params *p,
                    struct mc_list_result *out)
{
    (void)bucket;
    (void)p;
    (void)out;
    return unavailable(cli);
}

static void rem_close(struct mc_cli *cli)
{
    (void)cli;
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
    .list_objects = rem_list,
    .list_versions = rem_list,
    .close = rem_close,
};
