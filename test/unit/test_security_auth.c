/* test_security_auth.c: token file parsing, salted hashes, roles, bucket grants, wire authz. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "net/proto.h"
#include "security/auth.h"
#include "security/authz.h"
#include "util/codec.h"

static struct mc_auth *table_with(const char *name, const char *role, const char *token,
                                  const char *buckets)
{
    struct mc_auth *a = NULL;
    cr_assert_eq(mc_auth_new(&a), 0);
    char h[MC_AUTH_HASH_STR_BYTES], line[512], err[160];
    cr_assert_eq(mc_auth_hash_token(token, h, sizeof(h)), 0);
    snprintf(line, sizeof(line), "%s %s %s %s # comment", name, role, h, buckets ? buckets : "");
    cr_assert_eq(mc_auth_add_line(a, line, err, sizeof(err)), 0, "%s", err);
    return a;
}

Test(security_auth, hash_format_and_verify)
{
    char h1[MC_AUTH_HASH_STR_BYTES], h2[MC_AUTH_HASH_STR_BYTES];
    cr_assert_eq(mc_auth_hash_token("secret", h1, sizeof(h1)), 0);
    cr_assert_eq(mc_auth_hash_token("secret", h2, sizeof(h2)), 0);
    cr_assert_eq(strncmp(h1, "sha256$", 7), 0);
    cr_assert_eq(strlen(h1), 7 + 32 + 1 + 64);
    cr_assert_neq(strcmp(h1, h2), 0, "salted: same token, different lines");
    cr_assert_null(strstr(h1, "secret"));
    struct mc_auth *a = table_with("alice", "write", "secret", NULL);
    const struct mc_principal *p = mc_auth_verify(a, "secret", 6);
    cr_assert_not_null(p);
    cr_assert_str_eq(p->name, "alice");
    cr_assert_eq(p->role, MC_ROLE_WRITE);
    cr_assert_null(mc_auth_verify(a, "secreT", 6));
    cr_assert_null(mc_auth_verify(a, "secret", 5));
    cr_assert_null(mc_auth_verify(a, "", 0));
    mc_auth_free(a);
}

/* One digest and one context serve every entry of a verify (auth.c): each entry still gets its
 * own salted hash, and only the token's owner matches, wherever it sits in the table. */
Test(security_auth, verify_finds_the_owner_among_many_principals)
{
    struct mc_auth *a = NULL;
    cr_assert_eq(mc_auth_new(&a), 0);
    enum { N = 64 };
    for (int i = 0; i < N; i++) {
        char name[16], token[32];
        snprintf(name, sizeof(name), "p%d", i);
        snprintf(token, sizeof(token), "token-%d", i);
        cr_assert_eq(mc_auth_add_token(a, name, i % 2 ? MC_ROLE_READ : MC_ROLE_WRITE, token), 0);
    }
    cr_assert_eq(mc_auth_count(a), N);
    for (int i = 0; i < N; i += 7) {
        char name[16], token[32];
        snprintf(name, sizeof(name), "p%d", i);
        snprintf(token, sizeof(token), "token-%d", i);
        const struct mc_principal *p = mc_auth_verify(a, token, strlen(token));
        cr_assert_not_null(p, "%s", token);
        cr_assert_str_eq(p->name, name);
    }
    const struct mc_principal *last = mc_auth_verify(a, "token-63", 8);
    cr_assert_not_null(last);
    cr_assert_str_eq(last->name, "p63");
    cr_assert_null(mc_auth_verify(a, "token-64", 8));
    cr_assert_null(mc_auth_verify(a, "token-", 6));
    mc_auth_free(a);
}

Test(security_auth, bad_lines_refused)
{
    struct mc_auth *a = NULL;
    char err[160];
    cr_assert_eq(mc_auth_new(&a), 0);
    cr_assert_eq(mc_auth_add_line(a, "   # only a comment", err, sizeof(err)), 0);
    cr_assert_eq(mc_auth_add_line(a, "", err, sizeof(err)), 0);
    cr_assert_eq(mc_auth_count(a), 0);
    const char *bad[] = {
        "alice write",
        "alice root sha256$00112233445566778899aabbccddeeff$" /* bad role */
        "0000000000000000000000000000000000000000000000000000000000000000",
        "alice read md5$00$11",
        "alice read sha256$0011$00", /* short salt/hash */
        "alice read sha256$00112233445566778899aabbccddeeff$zz",
        "a b c d e f",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cr_assert_eq(mc_auth_add_line(a, bad[i], err, sizeof(err)), MC_EINVAL, "%s", bad[i]);
        cr_assert_gt(strlen(err), 0);
    }
    mc_auth_free(a);
}

Test(security_auth, load_file_reports_line)
{
    char path[] = "/tmp/mc_auth_test_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    char h[MC_AUTH_HASH_STR_BYTES];
    mc_auth_hash_token("tok", h, sizeof(h));
    fprintf(f, "# users\nbob admin %s\ncarol read nothash\n", h);
    fclose(f);
    struct mc_auth *a = NULL;
    char err[300];
    cr_assert_eq(mc_auth_load(path, &a, err, sizeof(err)), MC_EINVAL);
    cr_assert_not_null(strstr(err, ":3:"), "%s", err);
    f = fopen(path, "w");
    fprintf(f, "bob admin %s\n", h);
    fclose(f);
    cr_assert_eq(mc_auth_load(path, &a, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(mc_auth_verify(a, "tok", 3)->role, MC_ROLE_ADMIN);
    mc_auth_free(a);
    unlink(path);
}

/* OpenSSL with only the base provider (no SHA-256): the table cannot be built, and the error
 * says so instead of "out of memory" (rev18c N-4). OPENSSL_CONF is read at OpenSSL's first use,
 * so the calls run in a child process of their own: the setting cannot reach the other tests
 * (criterion --no-fork included), and no earlier OpenSSL use in this process can hide it. The
 * child's exit code: 0 all as expected, 1 mc_auth_new's code, 2 mc_auth_load's, 3 its message. */
static int auth_without_sha256(const char *conf, const char *path)
{
    if (setenv("OPENSSL_CONF", conf, 1) != 0) {
        return 4;
    }
    struct mc_auth *a = NULL;
    if (mc_auth_new(&a) != MC_EINTERNAL) {
        return 1;
    }
    char err[300] = "";
    if (mc_auth_load(path, &a, err, sizeof(err)) != MC_EINTERNAL) {
        return 2;
    }
    if (strcmp(err, MC_AUTH_NO_SHA256) != 0 ||
        !strstr(err, "SHA-256 could not be fetched from OpenSSL")) {
        return 3;
    }
    return 0;
}

Test(security_auth, missing_sha256_is_not_out_of_memory)
{
    char conf[] = "/tmp/mc_auth_ossl_XXXXXX", path[] = "/tmp/mc_auth_test_XXXXXX";
    int cfd = mkstemp(conf), pfd = mkstemp(path);
    cr_assert(cfd >= 0 && pfd >= 0);
    FILE *f = fdopen(cfd, "w");
    fputs("openssl_conf = init\n[init]\nproviders = prov\n[prov]\nbase = base\n"
          "[base]\nactivate = 1\n",
          f);
    fclose(f);
    f = fdopen(pfd, "w");
    fputs("bob admin sha256$00000000000000000000000000000000$"
          "0000000000000000000000000000000000000000000000000000000000000000\n",
          f);
    fclose(f);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        _exit(auth_without_sha256(conf, path));
    }
    int status = 0;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    unlink(conf);
    unlink(path);
    cr_assert(WIFEXITED(status), "the child did not exit");
    cr_assert_eq(WEXITSTATUS(status), 0,
                 "1: mc_auth_new not InternalError, 2: mc_auth_load not InternalError, 3: its "
                 "message is not MC_AUTH_NO_SHA256, 4: setenv (got %d)",
                 WEXITSTATUS(status));
}

Test(security_auth, roles_and_bucket_grants)
{
    struct mc_principal r = {.role = MC_ROLE_READ}, w = {.role = MC_ROLE_WRITE},
                        ad = {.role = MC_ROLE_ADMIN};
    struct mc_principal sc = {.role = MC_ROLE_WRITE, .n_buckets = 1};
    strcpy(sc.buckets[0], "photos");
    cr_assert_eq(mc_auth_check(NULL, MC_ROLE_READ, "b"), MC_EUNAUTH);
    cr_assert_eq(mc_auth_check(NULL, MC_ROLE_NONE, NULL), 0);
    cr_assert_eq(mc_auth_check(&r, MC_ROLE_READ, "b"), 0);
    cr_assert_eq(mc_auth_check(&r, MC_ROLE_WRITE, "b"), MC_EDENIED);
    cr_assert_eq(mc_auth_check(&w, MC_ROLE_WRITE, "b"), 0);
    cr_assert_eq(mc_auth_check(&w, MC_ROLE_ADMIN, NULL), MC_EDENIED);
    cr_assert_eq(mc_auth_check(&ad, MC_ROLE_ADMIN, NULL), 0);
    cr_assert_eq(mc_auth_check(&sc, MC_ROLE_WRITE, "photos"), 0);
    cr_assert_eq(mc_auth_check(&sc, MC_ROLE_READ, "other"), MC_EDENIED);
    cr_assert_eq(mc_auth_check(&sc, MC_ROLE_READ, NULL), MC_EDENIED);
}

/* A WRITE frame body decoded as the server sees it, with op records for these buckets. */
static void write_req(struct mc_wbuf *ops, struct mc_proto_request *q, const char **buckets, int n)
{
    mc_wbuf_init(ops, 0);
    for (int i = 0; i < n; i++) {
        struct mc_op op = {0};
        cr_assert_eq(mc_op_put(&op, buckets[i], "k", NULL, 0, NULL), 0);
        struct mc_wbuf one;
        mc_wbuf_init(&one, 0);
        cr_assert_eq(mc_op_encode(&op, &one), 0);
        mc_proto_ops_put(ops, one.data, one.len);
        mc_wbuf_free(&one);
        mc_op_clear(&op);
    }
    memset(q, 0, sizeof(*q));
    q->op = MC_REQ_WRITE;
    q->u.write.n_ops = (uint32_t)n;
    q->u.write.ops = ops->data;
    q->u.write.ops_bytes = (uint32_t)ops->len;
}

Test(security_authz, wire_ops)
{
    struct mc_principal r = {.role = MC_ROLE_READ}, ad = {.role = MC_ROLE_ADMIN};
    struct mc_principal sc = {.role = MC_ROLE_WRITE, .n_buckets = 1};
    strcpy(sc.buckets[0], "photos");
    cr_assert_eq(mc_authz_op_role(MC_REQ_PING), MC_ROLE_NONE);
    cr_assert_eq(mc_authz_op_role(MC_REQ_LEADER), MC_ROLE_NONE);
    cr_assert_eq(mc_authz_op_role(MC_REQ_LIST_BUCKETS), MC_ROLE_READ);
    cr_assert_eq(mc_authz_op_role(MC_REQ_WRITE), MC_ROLE_WRITE);
    cr_assert_eq(mc_authz_op_role(MC_REQ_SNAPSHOT_SAVE), MC_ROLE_ADMIN);
    cr_assert_eq(mc_authz_op_role(MC_REQ_CLUSTER_STATUS), MC_ROLE_ADMIN);

    struct mc_proto_request q = {.op = MC_REQ_GET_OBJECT};
    q.u.get.bucket = mc_proto_cstr("photos");
    cr_assert_eq(mc_authz_check_request(NULL, &q), MC_EUNAUTH);
    cr_assert_eq(mc_authz_check_request(&r, &q), 0);
    cr_assert_eq(mc_authz_check_request(&sc, &q), 0);
    q.u.get.bucket = mc_proto_cstr("other");
    cr_assert_eq(mc_authz_check_request(&sc, &q), MC_EDENIED);

    struct mc_wbuf ops;
    const char *mine[] = {"photos", "photos"}, *mixed[] = {"photos", "other"};
    write_req(&ops, &q, mine, 2);
    cr_assert_eq(mc_authz_check_request(&sc, &q), 0);
    cr_assert_eq(mc_authz_check_request(&r, &q), MC_EDENIED);
    cr_assert_eq(mc_authz_check_request(&ad, &q), 0);
    mc_wbuf_free(&ops);
    write_req(&ops, &q, mixed, 2);
    cr_assert_eq(mc_authz_check_request(&sc, &q), MC_EDENIED, "one foreign op denies the batch");
    mc_wbuf_free(&ops);
}

/* aud18 R9: a record authz cannot decode (malformed, or no memory to decode it) denies the
 * write of a bucket-scoped principal; it was skipped, so the write went on unchecked. */
Test(security_authz, an_undecodable_record_denies_a_scoped_write)
{
    struct mc_principal sc = {.role = MC_ROLE_WRITE, .n_buckets = 1}, w = {.role = MC_ROLE_WRITE};
    strcpy(sc.buckets[0], "photos");
    struct mc_wbuf ops, bad;
    struct mc_proto_request q;
    const char *mine[] = {"photos"};
    write_req(&ops, &q, mine, 1);
    mc_wbuf_init(&bad, 0);
    mc_wbuf_put(&bad, ops.data, ops.len);
    static const uint8_t junk[] = {0xff, 0xff, 0xff};
    mc_proto_ops_put(&bad, junk, sizeof(junk));
    q.u.write.n_ops = 2;
    q.u.write.ops = bad.data;
    q.u.write.ops_bytes = (uint32_t)bad.len;
    cr_assert_eq(mc_authz_check_request(&sc, &q), MC_EDENIED);
    cr_assert_eq(mc_authz_check_request(&w, &q), 0, "an unscoped writer's records are the node's");
    mc_wbuf_free(&bad);
    mc_wbuf_free(&ops);
}
