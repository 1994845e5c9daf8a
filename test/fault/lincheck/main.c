/* main.c: `lincheck HISTORY.jsonl`: exit 0 linearizable, 1 not, 2 bad input, 3 unknown. */
#include "gen.h"
#include "lincheck.h"

#include "metacenter/error.h"

#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fputs(
        "usage: lincheck [--max-ops-per-key N] [--time-limit-s S] [--max-memo-entries N]\n"
        "                [--quiet] HISTORY.jsonl|-\n"
        "       lincheck --generate OPS [--seed S] [--keys K] [--processes P] [--info-percent I]\n"
        "                [--violation]   (writes a simulated history to stdout)\n"
        "  checks a JSONL history of put/get/cas/append ops for linearizability (a register\n"
        "  or list per key). Exit: 0 linearizable, 1 not linearizable, 2 bad input,\n"
        "  3 unknown (a limit was reached).\n",
        f);
}

static int parse_num(const char *s, unsigned long long *out)
{
    char *end;
    if (!s || !*s)
        return -1;
    *out = strtoull(s, &end, 10);
    return *end ? -1 : 0;
}

int main(int argc, char **argv)
{
    struct mc_lincheck_opts opts = {0};
    const char *path = NULL;
    int quiet = 0, generate = 0;
    struct mc_lincheck_gen_opts g = {.seed = 1, .info_percent = 2};
    for (int i = 1; i < argc; i++) {
        unsigned long long v;
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(a, "--max-ops-per-key") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], &v) || v == 0)
                goto bad_arg;
            opts.max_ops_per_key = v;
        } else if (strcmp(a, "--time-limit-s") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], &v) || v == 0 || v > 86400)
                goto bad_arg;
            opts.time_limit_ms = v * 1000;
        } else if (strcmp(a, "--max-memo-entries") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], &v) || v == 0)
                goto bad_arg;
            opts.max_cache_entries = v;
        } else if (strcmp(a, "--generate") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], &v))
                goto bad_arg;
            g.ops = v;
            generate = 1;
        } else if (strcmp(a, "--seed") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], &v))
                goto bad_arg;
            g.seed = v;
        } else if (strcmp(a, "--keys") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], &v) || v == 0 || v > 100000)
                goto bad_arg;
            g.keys = (unsigned)v;
        } else if (strcmp(a, "--processes") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], &v) || v == 0 || v > 100000)
                goto bad_arg;
            g.processes = (unsigned)v;
        } else if (strcmp(a, "--info-percent") == 0 && i + 1 < argc) {
            if (parse_num(argv[++i], &v) || v > 100)
                goto bad_arg;
            g.info_percent = (unsigned)v;
        } else if (strcmp(a, "--violation") == 0) {
            g.violation = 1;
        } else if (a[0] == '-' && a[1] != 0) {
            fprintf(stderr, "lincheck: unknown option %s\n", a);
            usage(stderr);
            return MC_LINCHECK_BAD_INPUT;
        } else if (!path) {
            path = a;
        } else {
            fprintf(stderr, "lincheck: only one history file, got %s and %s\n", path, a);
            return MC_LINCHECK_BAD_INPUT;
        }
        continue;
    bad_arg:
        fprintf(stderr, "lincheck: bad value for %s: %s\n", a, argv[i]);
        return MC_LINCHECK_BAD_INPUT;
    }
    if (generate) {
        int grc = mc_lincheck_generate(stdout, &g);
        if (grc)
            fprintf(stderr, "lincheck: generate: %s\n", mc_strerror(grc));
        return grc ? MC_LINCHECK_BAD_INPUT : 0;
    }
    if (!path) {
        usage(stderr);
        return MC_LINCHECK_BAD_INPUT;
    }

    struct mc_lincheck_history *h = NULL;
    char err[512] = "";
    int rc = mc_lincheck_history_new(&h);
    if (rc)
        goto fail;
    rc = mc_lincheck_load_file(h, path, err, sizeof(err));
    if (rc == MC_EINVAL) {
        fprintf(stderr, "lincheck: %s: %s\n", path, err);
        mc_lincheck_history_free(h);
        return MC_LINCHECK_BAD_INPUT;
    }
    if (rc)
        goto fail;
    struct mc_lincheck_report rep;
    rc = mc_lincheck_check(h, &opts, stdout, &rep);
    if (rc)
        goto fail;
    if (!quiet)
        fprintf(stderr, "lincheck: %zu ops on %zu keys checked in %.3f s\n", rep.ops, rep.keys,
                (double)rep.elapsed_ns / 1e9);
    mc_lincheck_history_free(h);
    return (int)rep.verdict;
fail:
    fprintf(stderr, "lincheck: %s\n", mc_strerror(rc));
    mc_lincheck_history_free(h);
    return MC_LINCHECK_UNKNOWN;
}
