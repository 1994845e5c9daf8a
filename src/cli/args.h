/* args.h: a small reentrant argument parser: flags may follow positionals, --flag=value works. */
#ifndef MC_CLI_ARGS_H
#define MC_CLI_ARGS_H

#include <stddef.h>
#include <stdint.h>

/* Limits: a command line holds at most this many positionals and flag occurrences. */
#define MC_ARGS_MAX_POS   16
#define MC_ARGS_MAX_FLAGS 128

/* One flag a command accepts. */
struct mc_flag_spec {
    const char *name;  /* without the leading "--", e.g. "max-keys" */
    int has_value;     /* 1: takes a value (--x V or --x=V); 0: boolean */
    int repeatable;    /* 1: may be given several times (--meta) */
    const char *value; /* value placeholder for help ("N"), NULL for booleans */
    const char *help;  /* one-line description for --help */
};

struct mc_flag_hit {
    const struct mc_flag_spec *spec;
    const char *value; /* NULL for booleans */
};

struct mc_args {
    const char *pos[MC_ARGS_MAX_POS];
    size_t npos;
    struct mc_flag_hit flags[MC_ARGS_MAX_FLAGS];
    size_t nflags;
    char err[256]; /* usage error text when parse fails */
};

/*
 * Parses argv[0..argc) against the NULL-name-terminated spec tables specs[0..nspecs).
 * "--" ends flags; "-" and anything not starting with "--" is a positional ("-h" means --help
 * when a "help" flag exists). Returns 0, or MC_EINVAL with a message in a->err (unknown flag,
 * missing value, value given to a boolean, repeated non-repeatable flag, too many arguments).
 */
int mc_args_parse(struct mc_args *a, int argc, char **argv, const struct mc_flag_spec *const *specs,
                  size_t nspecs);

/* Last value of flag `name`, or NULL when absent (or boolean). */
const char *mc_args_get(const struct mc_args *a, const char *name);
/* 1 when flag `name` was given. */
int mc_args_has(const struct mc_args *a, const char *name);

/*
 * Strict unsigned decimal parse: digits only, no sign, no spaces, value in [min, max].
 * Returns 0 or MC_EINVAL.
 */
int mc_args_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

#endif
