/* auth.c: token file parsing, salted SHA-256 token hashes, role and bucket-grant checks. */
#include "security/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metacenter/error.h"

struct mc_auth {
    size_t n, cap;
    struct mc_principal *p;
    EVP_MD *md; /* SHA-256, fetched once (NULL: every verify fails) */
};

static const char *const role_names[] = {"none", "read", "write", "admin"};

int mc_role_parse(const char *s, enum mc_role *out)
{
    for (int i = MC_ROLE_READ; i <= MC_ROLE_ADMIN; i++) {
        if (strcmp(s, role_names[i]) == 0) {
            *out = (enum mc_role)i;
            return 0;
        }
    }
    return MC_EINVAL;
}

const char *mc_role_name(enum mc_role r)
{
    return r >= MC_ROLE_NONE && r <= MC_ROLE_ADMIN ? role_names[r] : "unknown";
}

/* SHA-256 for a table's verifies, fetched once: EVP_sha256() given to a DigestInit is fetched
 * again on every init in OpenSSL 3 (a lock and a provider lookup per principal per AUTH). */
static EVP_MD *md_fetch(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    return EVP_MD_fetch(NULL, "SHA256", NULL);
#else
    return (EVP_MD *)EVP_sha256();
#endif
}

static void md_free(EVP_MD *md)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    EVP_MD_free(md);
#else
    (void)md;
#endif
}

int mc_auth_new(struct mc_auth **out)
{
    struct mc_auth *a = calloc(1, sizeof(*a));
    if (!a) {
        return MC_ENOMEM;
    }
    a->md = md_fetch();
    if (!a->md) {
        /* Not memory: OpenSSL has no provider offering SHA-256 (a broken provider setup). */
        free(a);
        return MC_EINTERNAL;
    }
    *out = a;
    return 0;
}

void mc_auth_free(struct mc_auth *a)
{
    if (a) {
        OPENSSL_cleanse(a->p, a->cap * sizeof(*a->p));
        free(a->p);
        md_free(a->md);
        free(a);
    }
}

size_t mc_auth_count(const struct mc_auth *a)
{
    return a ? a->n : 0;
}

/* SHA-256(salt || token) with context c (reset here, so one context serves many calls). */
static void sha256_salted_ctx(EVP_MD_CTX *c, const EVP_MD *md, const uint8_t *salt,
                              const char *token, size_t len, uint8_t out[MC_AUTH_HASH_BYTES])
{
    unsigned int n = 0;
    if (!c || !md || !EVP_DigestInit_ex(c, md, NULL) ||
        !EVP_DigestUpdate(c, salt, MC_AUTH_SALT_BYTES) || !EVP_DigestUpdate(c, token, len) ||
        !EVP_DigestFinal_ex(c, out, &n) || n != MC_AUTH_HASH_BYTES) {
        memset(out, 0xff, MC_AUTH_HASH_BYTES); /* matches nothing a digest can produce here */
    }
}

/* One hash on its own (hashing a token for a file line or an added principal: rare). */
static void sha256_salted(const uint8_t *salt, const char *token, size_t len,
                          uint8_t out[MC_AUTH_HASH_BYTES])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    sha256_salted_ctx(c, EVP_sha256(), salt, token, len, out);
    EVP_MD_CTX_free(c);
}

static void hex_put(char *dst, const uint8_t *src, size_t n)
{
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        dst[2 * i] = hx[src[i] >> 4];
        dst[2 * i + 1] = hx[src[i] & 15];
    }
    dst[2 * n] = 0;
}

static int hex_get(const char *s, size_t slen, uint8_t *dst, size_t n)
{
    if (slen != 2 * n) {
        return MC_EINVAL;
    }
    for (size_t i = 0; i < 2 * n; i++) {
        char ch = s[i];
        int v = ch >= '0' && ch <= '9'   ? ch - '0'
                : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
                : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10
                                         : -1;
        if (v < 0) {
            return MC_EINVAL;
        }
        if (i % 2 == 0) {
            dst[i / 2] = (uint8_t)(v << 4);
        } else {
            dst[i / 2] |= (uint8_t)v;
        }
    }
    return 0;
}

int mc_auth_random_token(char *out, size_t cap)
{
    uint8_t b[32];
    if (cap < 2 * sizeof(b) + 1 || RAND_bytes(b, sizeof(b)) != 1) {
        return cap < 2 * sizeof(b) + 1 ? MC_EINVAL : MC_EIO;
    }
    hex_put(out, b, sizeof(b));
    OPENSSL_cleanse(b, sizeof(b));
    return 0;
}

int mc_auth_hash_token(const char *token, char *out, size_t cap)
{
    size_t len = strlen(token);
    if (len == 0 || len > MC_AUTH_TOKEN_MAX_BYTES || cap < MC_AUTH_HASH_STR_BYTES) {
        return MC_EINVAL;
    }
    uint8_t salt[MC_AUTH_SALT_BYTES], h[MC_AUTH_HASH_BYTES];
    if (RAND_bytes(salt, sizeof(salt)) != 1) {
        return MC_EIO;
    }
    sha256_salted(salt, token, len, h);
    memcpy(out, "sha256$", 7);
    hex_put(out + 7, salt, sizeof(salt));
    out[7 + 2 * sizeof(salt)] = '$';
    hex_put(out + 8 + 2 * sizeof(salt), h, sizeof(h));
    return 0;
}

static struct mc_principal *add_slot(struct mc_auth *a)
{
    if (a->n >= MC_AUTH_MAX_PRINCIPALS) {
        return NULL;
    }
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        struct mc_principal *p = realloc(a->p, cap * sizeof(*p));
        if (!p) {
            return NULL;
        }
        a->p = p;
        a->cap = cap;
    }
    struct mc_principal *p = &a->p[a->n];
    memset(p, 0, sizeof(*p));
    return p;
}

static int parse_hash(const char *s, struct mc_principal *p)
{
    if (strncmp(s, "sha256$", 7) != 0) {
        return MC_EINVAL;
    }
    const char *salt = s + 7;
    const char *dollar = strchr(salt, '$');
    if (!dollar || hex_get(salt, (size_t)(dollar - salt), p->salt, MC_AUTH_SALT_BYTES) != 0 ||
        hex_get(dollar + 1, strlen(dollar + 1), p->hash, MC_AUTH_HASH_BYTES) != 0) {
        return MC_EINVAL;
    }
    return 0;
}

static int parse_buckets(char *list, struct mc_principal *p)
{
    char *save = NULL;
    for (char *b = strtok_r(list, ",", &save); b; b = strtok_r(NULL, ",", &save)) {
        if (p->n_buckets >= MC_AUTH_MAX_BUCKETS || strlen(b) >= sizeof(p->buckets[0]) || !*b) {
            return MC_EINVAL;
        }
        snprintf(p->buckets[p->n_buckets++], sizeof(p->buckets[0]), "%s", b);
    }
    return 0;
}

int mc_auth_add_line(struct mc_auth *a, const char *line, char *err, size_t errlen)
{
    char buf[MC_AUTH_LINE_MAX];
    if (strlen(line) >= sizeof(buf)) {
        snprintf(err, errlen, "line longer than %d bytes", MC_AUTH_LINE_MAX);
        return MC_EINVAL;
    }
    snprintf(buf, sizeof(buf), "%s", line);
    char *hash_sign = strchr(buf, '#');
    if (hash_sign) {
        *hash_sign = 0;
    }
    char *f[5] = {0};
    int nf = 0;
    char *save = NULL;
    for (char *t = strtok_r(buf, " \t\r\n", &save); t; t = strtok_r(NULL, " \t\r\n", &save)) {
        if (nf == 5) {
            nf++;
            break;
        }
        f[nf++] = t;
    }
    if (nf == 0) {
        return 0;
    }
    if (nf < 3 || nf > 4) {
        snprintf(err, errlen, "want: NAME ROLE sha256$SALT$HASH [BUCKET,...]");
        return MC_EINVAL;
    }
    struct mc_principal *p = add_slot(a);
    if (!p) {
        snprintf(err, errlen, "more than %d principals (or out of memory)", MC_AUTH_MAX_PRINCIPALS);
        return MC_EINVAL;
    }
    if (strlen(f[0]) > MC_AUTH_NAME_MAX) {
        snprintf(err, errlen, "name longer than %d bytes", MC_AUTH_NAME_MAX);
        return MC_EINVAL;
    }
    snprintf(p->name, sizeof(p->name), "%s", f[0]);
    if (mc_role_parse(f[1], &p->role) != 0) {
        snprintf(err, errlen, "role '%.32s' is not read|write|admin", f[1]);
        return MC_EINVAL;
    }
    if (parse_hash(f[2], p) != 0) {
        snprintf(err, errlen, "hash is not sha256$<32 hex salt>$<64 hex digest>");
        return MC_EINVAL;
    }
    if (nf == 4 && parse_buckets(f[3], p) != 0) {
        snprintf(err, errlen, "bucket list: at most %d names, comma separated",
                 MC_AUTH_MAX_BUCKETS);
        return MC_EINVAL;
    }
    a->n++;
    return 0;
}

int mc_auth_add_token(struct mc_auth *a, const char *name, enum mc_role role, const char *token)
{
    size_t len = strlen(token);
    if (len == 0 || len > MC_AUTH_TOKEN_MAX_BYTES || strlen(name) > MC_AUTH_NAME_MAX) {
        return MC_EINVAL;
    }
    struct mc_principal *p = add_slot(a);
    if (!p) {
        return MC_ENOMEM;
    }
    snprintf(p->name, sizeof(p->name), "%s", name);
    p->role = role;
    if (RAND_bytes(p->salt, sizeof(p->salt)) != 1) {
        return MC_EIO;
    }
    sha256_salted(p->salt, token, len, p->hash);
    a->n++;
    return 0;
}

const char *mc_auth_new_error(int rc)
{
    return rc == MC_EINTERNAL ? MC_AUTH_NO_SHA256 : "out of memory";
}

int mc_auth_load(const char *path, struct mc_auth **out, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot open", path);
        return MC_EIO;
    }
    struct mc_auth *a = NULL;
    int rc = mc_auth_new(&a);
    if (rc) {
        snprintf(err, errlen, "%s", mc_auth_new_error(rc));
    }
    char line[MC_AUTH_LINE_MAX + 2];
    int lineno = 0;
    while (rc == 0 && fgets(line, sizeof(line), f)) {
        lineno++;
        char why[160] = "";
        size_t l = strlen(line);
        if (l == sizeof(line) - 1 && line[l - 1] != '\n') {
            snprintf(why, sizeof(why), "line longer than %d bytes", MC_AUTH_LINE_MAX);
            rc = MC_EINVAL;
        } else {
            rc = mc_auth_add_line(a, line, why, sizeof(why));
        }
        if (rc) {
            snprintf(err, errlen, "%s:%d: %s", path, lineno, why);
        }
    }
    fclose(f);
    if (rc == 0 && a->n == 0) {
        snprintf(err, errlen, "%s: no principals (auth would refuse everything)", path);
        rc = MC_EINVAL;
    }
    if (rc) {
        mc_auth_free(a);
        return rc;
    }
    *out = a;
    return 0;
}

const struct mc_principal *mc_auth_verify(const struct mc_auth *a, const char *token, size_t len)
{
    if (!a || !token || len == 0 || len > MC_AUTH_TOKEN_MAX_BYTES) {
        return NULL;
    }
    /* One context per call, not per table: verifies may run on several threads at once. */
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c) {
        return NULL;
    }
    const struct mc_principal *found = NULL;
    /* Every entry is hashed (no early exit), so timing does not reveal which one matched. The
     * salts differ per entry, so there is no index to look a token up by: the file holds no
     * unsalted hash (that would need a new file format). */
    for (size_t i = 0; i < a->n; i++) {
        uint8_t h[MC_AUTH_HASH_BYTES];
        sha256_salted_ctx(c, a->md, a->p[i].salt, token, len, h);
        if (CRYPTO_memcmp(h, a->p[i].hash, sizeof(h)) == 0 && !found) {
            found = &a->p[i];
        }
    }
    EVP_MD_CTX_free(c);
    return found;
}

bool mc_principal_bucket_ok(const struct mc_principal *p, const char *bucket)
{
    if (p->n_buckets == 0) {
        return true;
    }
    if (!bucket || !*bucket) {
        return false;
    }
    for (uint32_t i = 0; i < p->n_buckets; i++) {
        if (strcmp(p->buckets[i], bucket) == 0) {
            return true;
        }
    }
    return false;
}

int mc_auth_check(const struct mc_principal *p, enum mc_role need, const char *bucket)
{
    if (need == MC_ROLE_NONE) {
        return 0;
    }
    if (!p) {
        return MC_EUNAUTH;
    }
    if (p->role < need) {
        return MC_EDENIED;
    }
    /* A bucket-scoped principal only touches its buckets; admin-level ops name no bucket, so
     * they stay with unscoped principals. */
    if (p->n_buckets > 0 && (need == MC_ROLE_ADMIN || !mc_principal_bucket_ok(p, bucket))) {
        return MC_EDENIED;
    }
    return 0;
}
