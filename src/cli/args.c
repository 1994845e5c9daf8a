/* args.c: a small reentrant argument parser (no getopt global state; flags after positionals). */
#include "cli/args.h"

#include "metacenter/error.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct mc_flag_spec *lookup(const struct mc_flag_spec *const *specs, size_t nspecs,
                                         const char *name, size_t len)
{
    for (size_t i = 0; i < nspecs; i++) {
        for (const struct mc_flag_spec *s = specs[i]; s && s->name; s++) {
            if (strlen(s->name) == len && memcmp(s->name, name, len) == 0) {
                return s;
            }
        }
    }
    return NULL;
}

static int add_hit(struct mc_args *a, const struct mc_flag_spec *spec, const char *value)
{
    if (!spec->repeatable) {
        for (size_t i = 0; i < a->nflags; i++) {
            if (a->flags[i].spec == spec) {
                snprintf(a->err, sizeof(a->err), "flag --%s given more than once", spec->name);
                return MC_EINVAL;
            }
        }
    }
    if (a->nflags >= MC_ARGS_MAX_FLAGS) {
        snprintf(a->err, sizeof(a->err), "too many flags (limit %d)", MC_ARGS_MAX_FLAGS);
        return MC_EINVAL;
    }
    a->flags[a->nflags].spec = spec;
    a->flags[a->nflags].value = value;
    a->nflags++;
    return 0;
}

static int add_pos(struct mc_args *a, const char *arg)
{
    if (a->npos >= MC_ARGS_MAX_POS) {
        snprintf(a->err, sizeof(a->err), "too many arguments (limit %d)", MC_ARGS_MAX_POS);
        return MC_EINVAL;
    }
    a->pos[a->npos++] = arg;
    return 0;
}

int mc_args_parse(struct mc_args *a, int argc, char **argv, const struct mc_flag_spec *const *specs,
                  size_t nspecs)
{
    assert(a && argc >= 0);
    memset(a, 0, sizeof(*a));
    int flags_done = 0;
    for (int i = 0; i < argc; i++) {
        const char *arg = argv[i];
        int rc;
        if (flags_done || strncmp(arg, "-", 1) != 0 || strcmp(arg, "-") == 0) {
            rc = add_pos(a, arg);
        } else if (strcmp(arg, "--") == 0) {
            flags_done = 1;
            continue;
        } else if (strcmp(arg, "-h") == 0 && lookup(specs, nspecs, "help", 4)) {
            rc = add_hit(a, lookup(specs, nspecs, "help", 4), NULL);
        } else if (strncmp(arg, "--", 2) != 0) {
            snprintf(a->err, sizeof(a->err), "unknown flag '%.200s'", arg);
            return MC_EINVAL;
        } else {
            const char *name = arg + 2;
            const char *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const struct mc_flag_spec *spec = lookup(specs, nspecs, name, len);
            if (!spec) {
                snprintf(a->err, sizeof(a->err), "unknown flag '--%.*s'",
                         (int)(len > 200 ? 200 : len), name);
                return MC_EINVAL;
            }
            const char *value = NULL;
            if (spec->has_value) {
                if (eq) {
                    value = eq + 1;
                } else if (i + 1 < argc) {
                    value = argv[++i];
                } else {
                    snprintf(a->err, sizeof(a->err), "flag --%s needs a value (%s)", spec->name,
                             spec->value ? spec->value : "VALUE");
                    return MC_EINVAL;
                }
            } else if (eq) {
                snprintf(a->err, sizeof(a->err), "flag --%s takes no value", spec->name);
                return MC_EINVAL;
            }
            rc = add_hit(a, spec, value);
        }
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

const char *mc_args_get(const struct mc_args *a, const char *name)
{
    const char *v = NULL;
    for (size_t i = 0; i < a->nflags; i++) {
        if (strcmp(a->flags[i].spec->name, name) == 0) {
            v = a->flags[i].value;
        }
    }
    return v;
}

int mc_args_has(const struct mc_args *a, const char *name)
{
    for (size_t i = 0; i < a->nflags; i++) {
        if (strcmp(a->flags[i].spec->name, name) == 0) {
            return 1;
        }
    }
    return 0;
}

int mc_args_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') {
        return MC_EINVAL;
    }
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            return MC_EINVAL;
        }
    }
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || !end || *end != '\0' || v < min || v > max) {
        return MC_EINVAL;
    }
    *out = (uint64_t)v;
    return 0;
}
