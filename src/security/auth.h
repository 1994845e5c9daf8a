/* auth.h: bearer tokens (salted SHA-256 hashes from --auth-file), roles, per-bucket grants. */
#ifndef MC_SECURITY_AUTH_H
#define MC_SECURITY_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Auth file (docs/security.md), one principal per line, '#' comments and blank lines ignored:
 *
 *     NAME ROLE sha256$SALTHEX$HASHHEX [BUCKET,BUCKET,...]
 *
 * ROLE is read | write | admin (each includes the one before). HASHHEX = hex(SHA-256(salt bytes
 * || token bytes)), salt 16 random bytes. The optional bucket list restricts every request that
 * names a bucket to those buckets (a bucket-scoped principal may not list all buckets or run
 * admin ops). `metacenter auth hash-token` prints such a line. Tokens themselves are never
 * stored: a leaked file does not leak tokens (they are 32 random bytes, so an unsalted fast
 * hash would do; the salt stops cross-file comparison and precomputation anyway).
 *
 * Thread safety: a loaded table is read-only; any thread may call mc_auth_verify/check.
 */

enum mc_role {
    MC_ROLE_NONE = 0,  /* no token (or auth off for open endpoints) */
    MC_ROLE_READ = 1,  /* reads and lists */
    MC_ROLE_WRITE = 2, /* + mutations (objects, buckets, sessions) */
    MC_ROLE_ADMIN = 3, /* + cluster membership, status, snapshot, check */
};

#define MC_AUTH_MAX_PRINCIPALS  1024
#define MC_AUTH_MAX_BUCKETS     16 /* per principal */
#define MC_AUTH_NAME_MAX        63
#define MC_AUTH_TOKEN_MAX_BYTES 256 /* longer tokens are refused unhashed */
#define MC_AUTH_LINE_MAX        2048
#define MC_AUTH_SALT_BYTES      16
#define MC_AUTH_HASH_BYTES      32
/* "sha256$" + 32 hex + "$" + 64 hex + NUL */
#define MC_AUTH_HASH_STR_BYTES 112

struct mc_principal {
    char name[MC_AUTH_NAME_MAX + 1];
    enum mc_role role;
    uint32_t n_buckets; /* 0 = every bucket */
    char buckets[MC_AUTH_MAX_BUCKETS][64];
    uint8_t salt[MC_AUTH_SALT_BYTES];
    uint8_t hash[MC_AUTH_HASH_BYTES];
};

struct mc_auth;

/* What MC_EINTERNAL from mc_auth_new/mc_auth_load means. */
#define MC_AUTH_NO_SHA256                                                                          \
    "SHA-256 could not be fetched from OpenSSL (check the OpenSSL provider configuration, "        \
    "e.g. OPENSSL_CONF)"

/* An empty table (nothing verifies until principals are added). 0, MC_ENOMEM, or MC_EINTERNAL
 * when OpenSSL cannot supply SHA-256 (MC_AUTH_NO_SHA256). */
int mc_auth_new(struct mc_auth **out);
/* What a failed mc_auth_new's code means, for a user (MC_AUTH_NO_SHA256 or "out of memory"). */
const char *mc_auth_new_error(int rc);
/* Load a file. On error writes "file:line: why" (or why alone) to err and returns MC_EINVAL /
 * MC_EIO, or mc_auth_new's MC_ENOMEM / MC_EINTERNAL. */
int mc_auth_load(const char *path, struct mc_auth **out, char *err, size_t errlen);
/* Parse and add one line (blank/comment lines are accepted and ignored). */
int mc_auth_add_line(struct mc_auth *a, const char *line, char *err, size_t errlen);
/* Add a principal for a plaintext token (hashed here with a fresh salt): the node's internal
 * token for its own loopback clients. */
int mc_auth_add_token(struct mc_auth *a, const char *name, enum mc_role role, const char *token);
void mc_auth_free(struct mc_auth *a);
size_t mc_auth_count(const struct mc_auth *a);

/* The principal owning token (constant-time compare per entry), or NULL. */
const struct mc_principal *mc_auth_verify(const struct mc_auth *a, const char *token, size_t len);

/*
 * May p do something needing role `need` on `bucket` (NULL/"" = no bucket involved)?
 * Returns 0, MC_EUNAUTH (p NULL: no valid token) or MC_EDENIED (role too low, or a
 * bucket-scoped principal touching another bucket or no specific bucket with need > read...).
 */
int mc_auth_check(const struct mc_principal *p, enum mc_role need, const char *bucket);
bool mc_principal_bucket_ok(const struct mc_principal *p, const char *bucket);

/* "sha256$salthex$hashhex" for token with a fresh random salt into out (≥
 * MC_AUTH_HASH_STR_BYTES). 0, MC_EINVAL (empty/too long token) or MC_EIO (no randomness). */
int mc_auth_hash_token(const char *token, char *out, size_t cap);
/* A fresh random token: 32 random bytes as 64 hex chars into out (≥ 65 bytes). */
int mc_auth_random_token(char *out, size_t cap);

int mc_role_parse(const char *s, enum mc_role *out); /* 0 or MC_EINVAL */
const char *mc_role_name(enum mc_role r);

#endif
