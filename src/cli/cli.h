/* cli.h: shared state of one `metacenter` invocation: global flags, backend, exit codes, errors. */
#ifndef MC_CLI_CLI_H
#define MC_CLI_CLI_H

#include "cli/args.h"
#include "metacenter/engine.h"

#include <stdbool.h>
#include <stdint.h>

/* Exit codes: 0 success, 1 the request failed (S3-style error), 2 usage error. */
#define MC_CLI_EXIT_OK    0
#define MC_CLI_EXIT_ERROR 1
#define MC_CLI_EXIT_USAGE 2

#define MC_CLI_DEFAULT_ENDPOINT "127.0.0.1:7070"

struct mc_cli_cmd;
struct mc_cli_backend;
struct mc_client;

struct mc_cli {
    /* global flags */
    bool json;
    const char *endpoints; /* NULL = default endpoint (server mode) */
    const char *data_dir;  /* set without endpoints = offline mode */
    bool stale;            /* --consistency stale */
    uint64_t max_staleness_ms;
    uint64_t timeout_ms; /* server mode: per-request deadline; 0 = the client default (5 s) */
    const char *token;   /* --token or $METACENTER_TOKEN; NULL = none */
    const char *cacert;  /* --cacert: TLS on; --cert/--key: client certificate */
    const char *cert;
    const char *key;
    bool offline;
    /* the command being run (for usage hints) */
    const struct mc_cli_cmd *cmd;
    /* backend: offline engine or server client, opened on first use */
    const struct mc_cli_backend *be;
    struct mc_engine *eng;
    int dir_lock_fd;     /* fd + 1 of the flocked DATADIR/LOCK (0 = not held) */
    bool offline_reseal; /* offline.c: write engine.seal again when the engine is closed */
    struct mc_client *client;
};

/* One command: "GROUP NAME POSITIONALS [flags]". */
struct mc_cli_cmd {
    const char *group;                /* "bucket", "cluster", "snapshot" or NULL */
    const char *name;                 /* "create", "put", ... */
    const char *synopsis;             /* positionals and flags after the name, for usage lines */
    int min_pos, max_pos;             /* positionals after the command words */
    const struct mc_flag_spec *flags; /* NULL-name terminated; may be NULL */
    const char *summary;              /* one line */
    const char *details;              /* extra help paragraphs (NULL = none) */
    int (*run)(struct mc_cli *cli, const struct mc_args *a, const char *const *pos, size_t npos);
};

/* The command table, terminated by an entry with name == NULL. */
extern const struct mc_cli_cmd mc_cli_cmds[];

/* One line "Name: message" on stderr for a request error (MC_E* code); returns exit code 1. */
int mc_cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line "InvalidArgument: message (see 'metacenter CMD --help')"; returns exit code 2. */
int mc_cli_usage(const struct mc_cli *cli, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Full name of a command ("bucket create"). */
const char *mc_cli_cmd_name(const struct mc_cli_cmd *cmd);

#endif
