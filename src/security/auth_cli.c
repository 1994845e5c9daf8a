/* auth_cli.c: `metacenter auth hash-token`: prints an --auth-file line for a (new) token. */
#include "security/auth_cli.h"

#include <stdio.h>
#include <string.h>

#include "metacenter/error.h"
#include "security/auth.h"

static const char usage[] =
    "usage: metacenter auth hash-token --name NAME --role read|write|admin [--buckets B1,B2]\n"
    "                                  [--token TOKEN]\n"
    "Prints one line for the --auth-file of `metacenter serve`: NAME ROLE sha256$SALT$HASH\n"
    "[BUCKETS]. Without --token a random 256-bit token is generated and printed on stderr\n"
    "(\"token: ...\"): hand it to the client (--token or METACENTER_TOKEN); only its salted\n"
    "hash is kept in the file.\n";

static int fail(int ec, const char *msg)
{
    fprintf(stderr, "%s: %s\n", mc_error_name(MC_EINVAL), msg);
    if (ec == 2) {
        fputs(usage, stderr);
    }
    return ec;
}

static int hash_token(int argc, char **argv)
{
    const char *name = NULL, *role = NULL, *buckets = NULL, *token = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage, stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            return fail(2, "flag without a value");
        }
        const char *v = argv[++i];
        if (strcmp(argv[i - 1], "--name") == 0) {
            name = v;
        } else if (strcmp(argv[i - 1], "--role") == 0) {
            role = v;
        } else if (strcmp(argv[i - 1], "--buckets") == 0) {
            buckets = v;
        } else if (strcmp(argv[i - 1], "--token") == 0) {
            token = v;
        } else {
            return fail(2, "unknown flag");
        }
    }
    enum mc_role r;
    if (!name || !role || mc_role_parse(role, &r) != 0) {
        return fail(2, "--name and --role read|write|admin are required");
    }
    if (!*name || strlen(name) > MC_AUTH_NAME_MAX || strpbrk(name, " \t#")) {
        return fail(2, "--name: 1-63 characters, no blanks or '#'");
    }
    char fresh[80];
    if (!token) {
        if (mc_auth_random_token(fresh, sizeof(fresh)) != 0) {
            return fail(1, "no randomness available");
        }
        token = fresh;
        fprintf(stderr, "token: %s\n", token);
    }
    char h[MC_AUTH_HASH_STR_BYTES];
    int rc = mc_auth_hash_token(token, h, sizeof(h));
    if (rc) {
        return fail(1, rc == MC_EIO ? "no randomness available" : "token must be 1-256 bytes");
    }
    /* Round-trip through the parser so the printed line is known to load. */
    char line[MC_AUTH_LINE_MAX];
    snprintf(line, sizeof(line), "%s %s %s%s%s", name, role, h, buckets ? " " : "",
             buckets ? buckets : "");
    struct mc_auth *a = NULL;
    char why[160];
    rc = mc_auth_new(&a);
    if (rc) {
        return fail(1, mc_auth_new_error(rc));
    }
    if (mc_auth_add_line(a, line, why, sizeof(why)) != 0) {
        mc_auth_free(a);
        return fail(1, "bad --buckets (at most 16 names, comma separated)");
    }
    int ok = mc_auth_verify(a, token, strlen(token)) != NULL;
    mc_auth_free(a);
    if (!ok) {
        return fail(1, "internal error: hash does not verify");
    }
    printf("%s\n", line);
    return 0;
}

int mc_auth_cli_main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "hash-token") == 0) {
        return hash_token(argc - 1, argv + 1);
    }
    fputs(usage, argc >= 2 && strcmp(argv[1], "--help") == 0 ? stdout : stderr);
    return argc >= 2 && strcmp(argv[1], "--help") == 0 ? 0 : 2;
}
