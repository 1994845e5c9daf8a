/* main.c: the `metacenter` command: global flags, command lookup, help, and dispatch to serve,
 * offline (--data-dir) and server backends. */
#include "cli/args.h"
#include "cli/backend.h"
#include "cli/cli.h"
#include "cli/serve.h"
#include "loadgen/bench.h"
#include "metacenter/error.h"
#include "security/auth_cli.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct mc_flag_spec global_flags[] = {
    {"endpoints", 1, 0, "HOST:PORT,...",
     "servers to talk to (default " MC_CLI_DEFAULT_ENDPOINT ")"},
    {"data-dir", 1, 0, "DIR", "work offline on a stopped node's data dir (DIR/engine)"},
    {"consistency", 1, 0, "linearizable|stale", "read consistency (default linearizable)"},
    {"max-staleness-ms", 1, 0, "N", "with stale: refuse when no leader was heard for N ms"},
    {"timeout-ms", 1, 0, "N", "server mode: give up on a request after N ms (default 5000)"},
    {"token", 1, 0, "TOKEN", "bearer token when the server has --auth-file (or METACENTER_TOKEN)"},
    {"cacert", 1, 0, "FILE", "TLS: CA that the server certificate must chain to (turns TLS on)"},
    {"cert", 1, 0, "FILE", "TLS: client certificate (servers with --client-cert-auth)"},
    {"key", 1, 0, "FILE", "TLS: the client certificate's private key"},
    {"json", 0, 0, NULL, "print JSON instead of aligned columns"},
    {"help", 0, 0, NULL, "describe the command and its flags (-h too)"},
    {NULL, 0, 0, NULL, NULL},
};

static const char *const groups[] = {"bucket", "cluster", "snapshot"};

static char cmd_name_buf[64];

const char *mc_cli_cmd_name(const struct mc_cli_cmd *cmd)
{
    if (!cmd) {
        return "";
    }
    snprintf(cmd_name_buf, sizeof(cmd_name_buf), "%s%s%s", cmd->group ? cmd->group : "",
             cmd->group ? " " : "", cmd->name);
    return cmd_name_buf;
}

int mc_cli_fail(int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) { /* the contract is ONE line on stderr */
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    fflush(stdout);
    fprintf(stderr, "%s: %s\n", mc_error_name(code), msg);
    return MC_CLI_EXIT_ERROR;
}

int mc_cli_usage(const struct mc_cli *cli, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    for (char *p = msg; *p; p++) {
        if (*p == '\n' || *p == '\r') {
            *p = ' ';
        }
    }
    const struct mc_cli_cmd *cmd = cli ? cli->cmd : NULL;
    fflush(stdout);
    fprintf(stderr, "%s: %s (see 'metacenter %s%s--help')\n", mc_error_name(MC_EINVAL), msg,
            mc_cli_cmd_name(cmd), cmd ? " " : "");
    return MC_CLI_EXIT_USAGE;
}

/* ---- help ---- */

static void print_flags(FILE *out, const struct mc_flag_spec *f)
{
    for (; f && f->name; f++) {
        char lhs[64];
        snprintf(lhs, sizeof(lhs), "--%s%s%s", f->name, f->value ? " " : "",
                 f->value ? f->value : "");
        fprintf(out, "  %-34s %s%s\n", lhs, f->help, f->repeatable ? " (repeatable)" : "");
    }
}

static void help_main(FILE *out)
{
    fprintf(out, "usage: metacenter [global flags] COMMAND [ARGS] [flags]\n"
                 "       metacenter serve [flags]       run a node (see 'metacenter serve "
                 "--help')\n"
                 "       metacenter auth hash-token --name N --role R   line for serve "
                 "--auth-file\n\n"
                 "Metadata for S3-compatible object stores, replicated with Raft.\n\n"
                 "commands:\n");
    for (const struct mc_cli_cmd *c = mc_cli_cmds; c->name; c++) {
        char lhs[96];
        snprintf(lhs, sizeof(lhs), "%s %s", mc_cli_cmd_name(c), c->synopsis);
        fprintf(out, "  %-48s %s\n", lhs, c->summary);
    }
    fprintf(out, "  %-48s %s\n", "help [COMMAND]", "describe a command");
    fprintf(out, "\nglobal flags (accepted before or after the command):\n");
    print_flags(out, global_flags);
    fprintf(out,
            "\nmodes:\n"
            "  --data-dir DIR (no --endpoints): read and write a STOPPED node's data directly,\n"
            "    like etcdutl; writes create DIR/engine when DIR is new. A data dir held by a\n"
            "    running server fails with DataDirLocked. --consistency does not apply.\n"
            "  otherwise: talk to the servers in --endpoints (default " MC_CLI_DEFAULT_ENDPOINT
            ").\n"
            "\nerrors: one line on stderr starting with the S3 error name (NoSuchBucket: ...).\n"
            "exit codes: 0 ok, 1 the request failed, 2 usage error.\n");
}

static void help_group(FILE *out, const char *group)
{
    fprintf(out, "usage: metacenter %s SUBCOMMAND ...\n\nsubcommands:\n", group);
    for (const struct mc_cli_cmd *c = mc_cli_cmds; c->name; c++) {
        if (c->group && strcmp(c->group, group) == 0) {
            char lhs[96];
            snprintf(lhs, sizeof(lhs), "%s %s", mc_cli_cmd_name(c), c->synopsis);
            fprintf(out, "  %-48s %s\n", lhs, c->summary);
        }
    }
    fprintf(out, "\nRun 'metacenter %s SUBCOMMAND --help' for its flags.\n", group);
}

static void help_cmd(FILE *out, const struct mc_cli_cmd *c)
{
    fprintf(out, "usage: metacenter %s %s\n\n%s\n", mc_cli_cmd_name(c), c->synopsis, c->summary);
    if (c->details) {
        fprintf(out, "\n%s\n", c->details);
    }
    if (c->flags && c->flags->name) {
        fprintf(out, "\nflags:\n");
        print_flags(out, c->flags);
    }
    fprintf(out, "\nglobal flags:\n");
    print_flags(out, global_flags);
}

/* ---- command lookup ---- */

static const char *is_group(const char *word)
{
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        if (strcmp(groups[i], word) == 0) {
            return groups[i];
        }
    }
    return NULL;
}

/* Finds the command named by pos[0] (and pos[1] for groups); *nwords = words used. */
static const struct mc_cli_cmd *find_cmd(const char *const *pos, size_t npos, size_t *nwords)
{
    if (npos == 0) {
        return NULL;
    }
    const char *group = is_group(pos[0]);
    if (group && npos < 2) {
        return NULL;
    }
    for (const struct mc_cli_cmd *c = mc_cli_cmds; c->name; c++) {
        if (group && c->group && strcmp(c->group, group) == 0 && strcmp(c->name, pos[1]) == 0) {
            *nwords = 2;
            return c;
        }
        if (!group && !c->group && strcmp(c->name, pos[0]) == 0) {
            *nwords = 1;
            return c;
        }
    }
    return NULL;
}

/* Every flag any command knows, so pass 1 can tell flag values from positionals. */
static size_t all_specs(const struct mc_flag_spec **specs, size_t cap)
{
    size_t n = 0;
    specs[n++] = global_flags;
    for (const struct mc_cli_cmd *c = mc_cli_cmds; c->name && n < cap; c++) {
        if (c->flags) {
            specs[n++] = c->flags;
        }
    }
    return n;
}

static int help_for(const char *const *pos, size_t npos)
{
    size_t nw = 0;
    const struct mc_cli_cmd *c = find_cmd(pos, npos, &nw);
    if (c) {
        help_cmd(stdout, c);
    } else if (npos >= 1 && is_group(pos[0])) {
        help_group(stdout, pos[0]);
        if (npos >= 2) {
            fprintf(stderr, "%s: unknown %s subcommand '%.40s'\n", mc_error_name(MC_EINVAL), pos[0],
                    pos[1]);
            return MC_CLI_EXIT_USAGE;
        }
    } else if (npos == 0) {
        help_main(stdout);
    } else {
        fprintf(stderr, "%s: unknown command '%.40s' (see 'metacenter --help')\n",
                mc_error_name(MC_EINVAL), pos[0]);
        return MC_CLI_EXIT_USAGE;
    }
    return MC_CLI_EXIT_OK;
}

/* ---- global flags ---- */

static int apply_globals(struct mc_cli *cli, const struct mc_args *a)
{
    cli->json = mc_args_has(a, "json");
    cli->endpoints = mc_args_get(a, "endpoints");
    cli->data_dir = mc_args_get(a, "data-dir");
    cli->token = mc_args_get(a, "token");
    cli->cacert = mc_args_get(a, "cacert");
    cli->cert = mc_args_get(a, "cert");
    cli->key = mc_args_get(a, "key");
    if ((cli->cert || cli->key) && !cli->cacert) {
        return mc_cli_usage(cli, "--cert/--key need --cacert (TLS)");
    }
    if (!cli->token) {
        cli->token = getenv("METACENTER_TOKEN");
    }
    const char *cons = mc_args_get(a, "consistency");
    if (cons && strcmp(cons, "linearizable") != 0 && strcmp(cons, "stale") != 0) {
        return mc_cli_usage(cli, "--consistency must be 'linearizable' or 'stale', not '%.40s'",
                            cons);
    }
    cli->stale = cons && strcmp(cons, "stale") == 0;
    const char *ms = mc_args_get(a, "max-staleness-ms");
    if (ms) {
        if (mc_args_parse_u64(ms, 0, UINT32_MAX, &cli->max_staleness_ms) != 0) {
            return mc_cli_usage(cli, "--max-staleness-ms must be an integer 0..%u, not '%.40s'",
                                UINT32_MAX, ms);
        }
        if (!cli->stale) {
            return mc_cli_usage(cli, "--max-staleness-ms needs --consistency stale");
        }
    }
    const char *to = mc_args_get(a, "timeout-ms");
    if (to && mc_args_parse_u64(to, 1, 3600000, &cli->timeout_ms) != 0) {
        return mc_cli_usage(cli, "--timeout-ms must be an integer 1..3600000, not '%.40s'", to);
    }
    if (cli->endpoints && *cli->endpoints == '\0') {
        return mc_cli_usage(cli, "--endpoints is empty");
    }
    if (cli->data_dir && *cli->data_dir == '\0') {
        return mc_cli_usage(cli, "--data-dir is empty");
    }
    if (cli->endpoints && cli->data_dir) {
        return mc_cli_usage(cli, "use --endpoints (servers) or --data-dir (offline), not both");
    }
    cli->offline = cli->data_dir != NULL;
    cli->be = cli->offline ? &mc_cli_offline_backend : &mc_cli_server_backend;
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        help_main(stderr);
        return MC_CLI_EXIT_USAGE;
    }
    if (strcmp(argv[1], "serve") == 0) {
        return mc_cli_serve(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "bench") == 0) {
        return mc_bench_main(argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "auth") == 0) {
        return mc_auth_cli_main(argc - 1, argv + 1);
    }
    const struct mc_flag_spec *specs[64];
    size_t nspecs = all_specs(specs, 64);
    struct mc_args *a = calloc(1, sizeof(*a));
    if (!a) {
        return mc_cli_fail(MC_ENOMEM, "%s", mc_strerror(MC_ENOMEM));
    }
    struct mc_cli cli = {0};
    int ec;
    size_t nw = 0;
    int prc = mc_args_parse(a, argc - 1, argv + 1, specs, nspecs);
    const char *const *pos = a->pos;
    cli.cmd = find_cmd(pos, a->npos, &nw);
    if (prc != 0) {
        ec = mc_cli_usage(&cli, "%s", a->err);
        goto out;
    }
    if (a->npos >= 1 && strcmp(pos[0], "serve") == 0) {
        ec = mc_cli_usage(&cli, "global flags go after 'serve': metacenter serve [flags]");
        goto out;
    }
    if (a->npos >= 1 && strcmp(pos[0], "help") == 0) {
        ec = help_for(pos + 1, a->npos - 1);
        goto out;
    }
    if (mc_args_has(a, "help")) {
        ec = help_for(pos, a->npos);
        goto out;
    }
    if (!cli.cmd) {
        if (a->npos == 0) {
            ec = mc_cli_usage(&cli, "no command given");
        } else if (is_group(pos[0])) {
            ec = a->npos < 2 ? mc_cli_usage(&cli,
                                            "'%s' needs a subcommand (see 'metacenter %s "
                                            "--help')",
                                            pos[0], pos[0])
                             : mc_cli_usage(&cli, "unknown %s subcommand '%.40s'", pos[0], pos[1]);
        } else {
            ec = mc_cli_usage(&cli, "unknown command '%.40s'", pos[0]);
        }
        goto out;
    }
    /* Pass 2: only this command's flags (and the global ones) are allowed. */
    const struct mc_flag_spec *cmd_specs[2] = {global_flags, cli.cmd->flags};
    if (mc_args_parse(a, argc - 1, argv + 1, cmd_specs, cli.cmd->flags ? 2 : 1) != 0) {
        ec = mc_cli_usage(&cli, "%s", a->err);
        goto out;
    }
    size_t nargs = a->npos - nw;
    if (nargs < (size_t)cli.cmd->min_pos) {
        ec = mc_cli_usage(&cli, "missing arguments: metacenter %s %s", mc_cli_cmd_name(cli.cmd),
                          cli.cmd->synopsis);
        goto out;
    }
    if (nargs > (size_t)cli.cmd->max_pos) {
        ec = mc_cli_usage(&cli, "unexpected argument '%.60s'", pos[nw + cli.cmd->max_pos]);
        goto out;
    }
    ec = apply_globals(&cli, a);
    if (ec != 0) {
        goto out;
    }
    ec = cli.cmd->run(&cli, a, pos + nw, nargs);
    cli.be->close(&cli);
    if (fflush(stdout) != 0 && ec == 0) {
        ec = mc_cli_fail(MC_EIO, "cannot write output");
    }
out:
    free(a);
    return ec;
}
