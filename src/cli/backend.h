/* backend.h: the operations every CLI command needs, served offline (engine) or by a server. */
#ifndef MC_CLI_BACKEND_H
#define MC_CLI_BACKEND_H

#include "metacenter/engine.h"

#include <stdbool.h>
#include <stddef.h>

struct mc_cli;

/*
 * Each call returns 0 or a negative MC_E* code. Mutations also fill *r (r->code equals the
 * return value). On failure a one-sentence explanation may be left in mc_cli_be_errmsg()
 * (empty when the code's generic text is all there is to say). The first call opens the
 * backend (engine or connection); close releases it.
 */
struct mc_cli_backend {
    const char *name; /* "offline" | "server" */
    int (*bucket_create)(struct mc_cli *cli, const char *name, enum mc_versioning v,
                         struct mc_op_result *r);
    int (*bucket_delete)(struct mc_cli *cli, const char *name, struct mc_op_result *r);
    int (*bucket_versioning)(struct mc_cli *cli, const char *name, enum mc_versioning v,
                             struct mc_op_result *r);
    int (*bucket_head)(struct mc_cli *cli, const char *name, struct mc_bucket_info *out);
    /* *out malloc'd (free()). */
    int (*bucket_list)(struct mc_cli *cli, struct mc_bucket_info **out, size_t *n);
    int (*put)(struct mc_cli *cli, const char *bucket, const char *key,
               const struct mc_object_meta *meta, const char *if_match, bool if_none_match_star,
               struct mc_op_result *r);
    int (*del)(struct mc_cli *cli, const char *bucket, const char *key, const char *version_id,
               struct mc_op_result *r);
    /* Like mc_engine_get: MC_ENOKEY with *out filled when the latest version is a marker. */
    int (*get)(struct mc_cli *cli, const char *bucket, const char *key, const char *version_id,
               bool with_inline, struct mc_version *out);
    int (*list_objects)(struct mc_cli *cli, const char *bucket, const struct mc_list_params *p,
                        struct mc_list_result *out);
    int (*list_versions)(struct mc_cli *cli, const char *bucket, const struct mc_list_params *p,
                         struct mc_list_result *out);
    void (*close)(struct mc_cli *cli);
};

extern const struct mc_cli_backend mc_cli_offline_backend;
extern const struct mc_cli_backend mc_cli_server_backend;

/*
 * Opens DIR/engine of cli->data_dir (mutating: creating a new layout when missing; else
 * read-only and never creating). 0 or a code with mc_cli_be_errmsg() set.
 */
int mc_cli_offline_open(struct mc_cli *cli, bool mutating);
/* Makes dir a data dir (creates it, writes the METACENTER marker); refuses (MC_ENOTOURS) a
 * non-empty dir without the marker. 0 or a code with mc_cli_be_errmsg() set. */
int mc_cli_offline_prepare(const char *dir);

/* Server mode helpers (remote.c): the endpoint list in use; the client options of the CLI's
 * timeout, consistency, token and TLS flags, and a client opened with them; the explanation of a
 * failed client call (sets errmsg). */
struct mc_client;
struct mc_client_opts;
const char *mc_cli_endpoints(const struct mc_cli *cli);
void mc_cli_client_opts(const struct mc_cli *cli, struct mc_client_opts *o);
int mc_cli_client_open(struct mc_cli *cli, const char *endpoints, struct mc_client **out);
int mc_cli_client_error(const struct mc_cli *cli, struct mc_client *c, int rc);

/* The explanation of the last backend failure ("" when none). */
const char *mc_cli_be_errmsg(void);
/* Sets that explanation; returns code (convenience for `return mc_cli_be_seterr(...)`). */
int mc_cli_be_seterr(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void mc_cli_be_clearerr(void);

#endif
