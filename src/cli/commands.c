/* commands.c: the bucket and object commands (bucket *, put, get, head, rm, ls, versions). */
#include "cli/admin.h"
#include "cli/backend.h"
#include "cli/cli.h"
#include "cli/output.h"
#include "cli/verify.h"
#include "metacenter/error.h"

#include <errno.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Reports a backend failure: its own explanation when it left one, else the code's text. */
static int be_fail(int code, const char *what)
{
    const char *why = mc_cli_be_errmsg();
    if (why && *why) {
        return mc_cli_fail(code, "%s", why);
    }
    return mc_cli_fail(code, "%s (%s)", mc_strerror(code), what);
}

/* Validates a bucket name argument before anything is opened (no partial work on bad input). */
static int check_bucket(const char *name, bool creating)
{
    int rc = creating ? mc_validate_new_bucket_name(name) : mc_validate_bucket_name(name);
    if (rc != 0 && creating && mc_validate_bucket_name(name) == 0) {
        return mc_cli_fail(rc, "%s", mc_engine_last_error());
    }
    if (rc != 0) {
        char *e = mc_cli_escape(name);
        mc_cli_fail(rc, "'%.80s': names are 3-63 characters of a-z, 0-9, '.' and '-'", e ? e : "");
        free(e);
    }
    return rc;
}

static int check_key(const char *key)
{
    int rc = mc_validate_key(key, strlen(key));
    if (rc == MC_EKEYTOOLONG) {
        mc_cli_fail(rc, "the key is %zu bytes; the limit is %d", strlen(key), MC_KEY_MAX_BYTES);
    } else if (rc != 0) {
        mc_cli_fail(rc, "%s", mc_strerror(rc));
    }
    return rc;
}

static int check_version_id(const struct mc_cli *cli, const char *vid)
{
    if (vid && (*vid == '\0' || strlen(vid) > MC_VERSION_ID_MAX)) {
        return mc_cli_usage(cli, "--version-id must be 1-%d characters", MC_VERSION_ID_MAX);
    }
    return 0;
}

/* ---- bucket ---- */

static int cmd_bucket_create(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                             size_t npos)
{
    (void)npos;
    if (check_bucket(pos[0], true) != 0) {
        return MC_CLI_EXIT_ERROR;
    }
    enum mc_versioning v =
        mc_args_has(a, "versioning") ? MC_VERSIONING_ENABLED : MC_VERSIONING_UNVERSIONED;
    struct mc_op_result r = {0};
    int rc = cli->be->bucket_create(cli, pos[0], v, &r);
    if (rc != 0) {
        return be_fail(rc, pos[0]);
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "bucket %s created (%s)", pos[0], mc_versioning_name(v));
    return mc_cli_print_result(cli, &r, msg);
}

static int cmd_bucket_rm(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                         size_t npos)
{
    (void)a;
    (void)npos;
    if (check_bucket(pos[0], false) != 0) {
        return MC_CLI_EXIT_ERROR;
    }
    struct mc_op_result r = {0};
    int rc = cli->be->bucket_delete(cli, pos[0], &r);
    if (rc != 0) {
        return be_fail(rc, pos[0]);
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "bucket %s removed", pos[0]);
    return mc_cli_print_result(cli, &r, msg);
}

static int cmd_bucket_ls(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                         size_t npos)
{
    (void)a;
    (void)pos;
    (void)npos;
    struct mc_bucket_info *b = NULL;
    size_t n = 0;
    int rc = cli->be->bucket_list(cli, &b, &n);
    if (rc != 0) {
        free(b);
        return be_fail(rc, "bucket list");
    }
    rc = mc_cli_print_buckets(cli, b, n);
    free(b);
    return rc;
}

static int cmd_bucket_head(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                           size_t npos)
{
    (void)a;
    (void)npos;
    if (check_bucket(pos[0], false) != 0) {
        return MC_CLI_EXIT_ERROR;
    }
    struct mc_bucket_info b = {0};
    int rc = cli->be->bucket_head(cli, pos[0], &b);
    if (rc != 0) {
        return be_fail(rc, pos[0]);
    }
    return mc_cli_print_bucket(cli, &b);
}

static int cmd_bucket_versioning(struct mc_cli *cli, const struct mc_args *a,
                                 const char *const *pos, size_t npos)
{
    (void)a;
    (void)npos;
    enum mc_versioning v;
    if (strcmp(pos[1], "enabled") == 0) {
        v = MC_VERSIONING_ENABLED;
    } else if (strcmp(pos[1], "suspended") == 0) {
        v = MC_VERSIONING_SUSPENDED;
    } else {
        return mc_cli_usage(cli, "versioning state must be 'enabled' or 'suspended', not '%.40s'",
                            pos[1]);
    }
    if (check_bucket(pos[0], false) != 0) {
        return MC_CLI_EXIT_ERROR;
    }
    struct mc_op_result r = {0};
    int rc = cli->be->bucket_versioning(cli, pos[0], v, &r);
    if (rc != 0) {
        return be_fail(rc, pos[0]);
    }
    char msg[128];
    snprintf(msg, sizeof(msg), "bucket %s versioning %s", pos[0], mc_versioning_name(v));
    return mc_cli_print_result(cli, &r, msg);
}

/* ---- put ---- */

static int set_str(char **dst, const char *src)
{
    free(*dst);
    *dst = strdup(src);
    return *dst ? 0 : MC_ENOMEM;
}

/* Reads at most MC_INLINE_MAX_BYTES of file f into meta (bigger → EntityTooLarge). */
static int read_inline(const char *path, struct mc_object_meta *m)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        return mc_cli_fail(MC_EIO, "cannot open --inline-file %s: %s", path, strerror(errno));
    }
    uint8_t *buf = malloc(MC_INLINE_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        return mc_cli_fail(MC_ENOMEM, "%s", mc_strerror(MC_ENOMEM));
    }
    size_t n = fread(buf, 1, MC_INLINE_MAX_BYTES + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err) {
        free(buf);
        return mc_cli_fail(MC_EIO, "cannot read --inline-file %s", path);
    }
    if (n > MC_INLINE_MAX_BYTES) {
        free(buf);
        return mc_cli_fail(MC_ETOOLARGE, "--inline-file %s is larger than %d bytes", path,
                           MC_INLINE_MAX_BYTES);
    }
    m->inline_data = buf;
    m->inline_len = (uint32_t)n;
    return 0;
}

/* ETag of inline content as S3 computes it for a single-part upload: hex MD5. */
static int md5_etag(const uint8_t *data, size_t len, char **out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(data, len, md, &mdlen, EVP_md5(), NULL) != 1) {
        return MC_EINTERNAL;
    }
    char *hex = malloc(mdlen * 2 + 1);
    if (!hex) {
        return MC_ENOMEM;
    }
    for (unsigned int i = 0; i < mdlen; i++) {
        sprintf(hex + 2 * i, "%02x", md[i]);
    }
    *out = hex;
    return 0;
}

/* Builds the put's metadata from flags. Returns an exit code (0 = ok). */
static int build_meta(const struct mc_cli *cli, const struct mc_args *a, struct mc_object_meta *m)
{
    const char *size = mc_args_get(a, "size");
    uint64_t size_v = 0;
    if (size && mc_args_parse_u64(size, 0, UINT64_MAX, &size_v) != 0) {
        return mc_cli_usage(cli, "--size must be a non-negative integer, not '%.40s'", size);
    }
    const char *names[] = {"etag", "content-type", "storage-class"};
    char **dsts[] = {&m->etag, &m->content_type, &m->storage_class};
    for (int i = 0; i < 3; i++) {
        const char *v = mc_args_get(a, names[i]);
        if (!v) {
            continue;
        }
        if (strlen(v) > MC_SHORT_STR_MAX) {
            return mc_cli_usage(cli, "--%s is longer than %d bytes", names[i], MC_SHORT_STR_MAX);
        }
        if (set_str(dsts[i], v) != 0) {
            return mc_cli_fail(MC_ENOMEM, "%s", mc_strerror(MC_ENOMEM));
        }
    }
    for (size_t i = 0; i < a->nflags; i++) {
        if (strcmp(a->flags[i].spec->name, "meta") != 0) {
            continue;
        }
        const char *kv = a->flags[i].value;
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            return mc_cli_usage(cli, "--meta wants KEY=VALUE with a non-empty KEY, not '%.60s'",
                                kv);
        }
        char *k = strndup(kv, (size_t)(eq - kv));
        int rc = k ? mc_object_meta_add_user(m, k, eq + 1) : MC_ENOMEM;
        free(k);
        if (rc != 0) {
            return mc_cli_fail(rc, "--meta %.60s: %s", kv, mc_strerror(rc));
        }
    }
    const char *file = mc_args_get(a, "inline-file");
    if (file) {
        int rc = read_inline(file, m);
        if (rc != 0) {
            return rc;
        }
        if (size && size_v != m->inline_len) {
            return mc_cli_usage(cli, "--size %" PRIu64 " disagrees with --inline-file (%u bytes)",
                                size_v, m->inline_len);
        }
        size_v = m->inline_len;
        if (!m->etag && (rc = md5_etag(m->inline_data, m->inline_len, &m->etag)) != 0) {
            return mc_cli_fail(rc, "cannot compute the etag of --inline-file");
        }
    }
    m->size = size_v;
    int rc = mc_validate_object_meta_input(m);
    if (rc != 0) {
        if (rc == MC_EMETATOOLARGE) {
            return mc_cli_fail(rc, "user metadata exceeds %d bytes or %d pairs",
                               MC_USER_META_MAX_BYTES, MC_USER_META_MAX_PAIRS);
        }
        const char *why = mc_engine_last_error();
        return mc_cli_fail(rc, "%s", why && *why ? why : mc_strerror(rc));
    }
    return 0;
}

static int cmd_put(struct mc_cli *cli, const struct mc_args *a, const char *const *pos, size_t npos)
{
    (void)npos;
    const char *inm = mc_args_get(a, "if-none-match");
    if (inm && strcmp(inm, "*") != 0) {
        return mc_cli_usage(cli, "--if-none-match only accepts '*'");
    }
    const char *im = mc_args_get(a, "if-match");
    if (im && (*im == '\0' || strlen(im) > MC_SHORT_STR_MAX)) {
        return mc_cli_usage(cli, "--if-match wants an etag of 1-%d bytes", MC_SHORT_STR_MAX);
    }
    if (check_bucket(pos[0], false) != 0 || check_key(pos[1]) != 0) {
        return MC_CLI_EXIT_ERROR;
    }
    struct mc_object_meta m = {0};
    int ec = build_meta(cli, a, &m);
    if (ec != 0) {
        mc_object_meta_clear(&m);
        return ec;
    }
    struct mc_op_result r = {0};
    int rc = cli->be->put(cli, pos[0], pos[1], &m, im, inm != NULL, &r);
    mc_object_meta_clear(&m);
    if (rc != 0) {
        if (rc == MC_EPRECOND && !*mc_cli_be_errmsg()) {
            return mc_cli_fail(rc, "%s: the current version does not match",
                               im ? "--if-match" : "--if-none-match");
        }
        return be_fail(rc, pos[0]);
    }
    char *k = mc_cli_escape(pos[1]);
    char msg[1400];
    snprintf(msg, sizeof(msg), "put %s/%s version_id %s", pos[0], k ? k : "", r.version_id);
    free(k);
    return mc_cli_print_result(cli, &r, msg);
}

/* ---- get / head / rm ---- */

static int get_or_head(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                       bool with_inline)
{
    const char *vid = mc_args_get(a, "version-id");
    if (check_version_id(cli, vid) != 0) {
        return MC_CLI_EXIT_USAGE;
    }
    if (check_bucket(pos[0], false) != 0 || check_key(pos[1]) != 0) {
        return MC_CLI_EXIT_ERROR;
    }
    struct mc_version v = {0};
    int rc = cli->be->get(cli, pos[0], pos[1], vid, with_inline, &v);
    if (rc != 0) {
        char *k = mc_cli_escape(pos[1]);
        if (rc == MC_ENOKEY && v.is_delete_marker) {
            mc_cli_fail(rc, "%s/%s: the latest version is a delete marker (version_id %s)", pos[0],
                        k ? k : "", v.version_id ? v.version_id : "?");
        } else if (rc == MC_ENOKEY || rc == MC_ENOVERSION) {
            mc_cli_fail(rc, "%s/%s%s%s: %s", pos[0], k ? k : "", vid ? " version_id " : "",
                        vid ? vid : "", mc_strerror(rc));
        } else {
            be_fail(rc, pos[0]);
        }
        free(k);
        mc_version_clear(&v);
        return MC_CLI_EXIT_ERROR;
    }
    rc = mc_cli_print_version(cli, &v);
    mc_version_clear(&v);
    return rc;
}

static int cmd_get(struct mc_cli *cli, const struct mc_args *a, const char *const *pos, size_t npos)
{
    (void)npos;
    return get_or_head(cli, a, pos, true);
}

static int cmd_head(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                    size_t npos)
{
    (void)npos;
    return get_or_head(cli, a, pos, false);
}

static int cmd_rm(struct mc_cli *cli, const struct mc_args *a, const char *const *pos, size_t npos)
{
    (void)npos;
    const char *vid = mc_args_get(a, "version-id");
    if (check_version_id(cli, vid) != 0) {
        return MC_CLI_EXIT_USAGE;
    }
    if (check_bucket(pos[0], false) != 0 || check_key(pos[1]) != 0) {
        return MC_CLI_EXIT_ERROR;
    }
    struct mc_op_result r = {0};
    int rc = cli->be->del(cli, pos[0], pos[1], vid, &r);
    if (rc != 0) {
        return be_fail(rc, pos[0]);
    }
    char *k = mc_cli_escape(pos[1]);
    char msg[1400];
    if (!vid && r.delete_marker) {
        snprintf(msg, sizeof(msg), "delete marker %s created for %s/%s", r.version_id, pos[0],
                 k ? k : "");
    } else {
        snprintf(msg, sizeof(msg), "removed %s/%s%s%s%s", pos[0], k ? k : "",
                 r.version_id[0] ? " version_id " : "", r.version_id,
                 r.delete_marker ? " (a delete marker)" : "");
    }
    free(k);
    return mc_cli_print_result(cli, &r, msg);
}

/* ---- ls / versions ---- */

/* Parses --max-keys: 1..1000; larger values are clamped to 1000 as S3 does; 0 or junk → usage. */
static int parse_max_keys(const struct mc_cli *cli, const struct mc_args *a, int *out)
{
    const char *s = mc_args_get(a, "max-keys");
    *out = 0;
    if (!s) {
        return 0;
    }
    uint64_t v;
    if (mc_args_parse_u64(s, 1, UINT64_MAX, &v) != 0) {
        return mc_cli_usage(cli,
                            "--max-keys must be an integer >= 1 (values above %d are "
                            "clamped to %d), not '%.40s'",
                            MC_LIST_MAX_KEYS, MC_LIST_MAX_KEYS, s);
    }
    *out = v > MC_LIST_MAX_KEYS ? MC_LIST_MAX_KEYS : (int)v;
    return 0;
}

static int check_list_strings(const struct mc_cli *cli, const struct mc_list_params *p)
{
    if (p->delimiter && strlen(p->delimiter) > MC_DELIMITER_MAX) {
        return mc_cli_usage(cli, "--delimiter is longer than %d bytes", MC_DELIMITER_MAX);
    }
    const char *keys[] = {p->prefix, p->start_after, p->key_marker};
    for (int i = 0; i < 3; i++) {
        if (keys[i] && strlen(keys[i]) > MC_KEY_MAX_BYTES) {
            return mc_cli_fail(MC_EKEYTOOLONG,
                               "a --prefix/--start-after/--key-marker is longer "
                               "than %d bytes",
                               MC_KEY_MAX_BYTES);
        }
    }
    if (p->continuation_token &&
        (*p->continuation_token == '\0' || strlen(p->continuation_token) > MC_TOKEN_MAX)) {
        return mc_cli_fail(MC_EBADTOKEN, "the continuation token is empty or longer than %d",
                           MC_TOKEN_MAX);
    }
    return 0;
}

static int cmd_ls(struct mc_cli *cli, const struct mc_args *a, const char *const *pos, size_t npos)
{
    (void)npos;
    struct mc_list_params p = {0};
    p.prefix = mc_args_get(a, "prefix");
    p.delimiter = mc_args_get(a, "delimiter");
    p.start_after = mc_args_get(a, "start-after");
    p.continuation_token = mc_args_get(a, "continuation-token");
    int ec = parse_max_keys(cli, a, &p.max_keys);
    if (ec == 0) {
        ec = check_list_strings(cli, &p);
    }
    if (ec != 0) {
        return ec;
    }
    if (check_bucket(pos[0], false) != 0) {
        return MC_CLI_EXIT_ERROR;
    }
    struct mc_list_result r = {0};
    int rc = cli->be->list_objects(cli, pos[0], &p, &r);
    if (rc != 0) {
        mc_list_result_clear(&r);
        if (rc == MC_EBADTOKEN && !*mc_cli_be_errmsg()) {
            return mc_cli_fail(rc, "--continuation-token is not one this bucket listing issued");
        }
        return be_fail(rc, pos[0]);
    }
    ec = mc_cli_print_list(cli, &r);
    mc_list_result_clear(&r);
    return ec;
}

static int cmd_versions(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                        size_t npos)
{
    (void)npos;
    struct mc_list_params p = {0};
    p.prefix = mc_args_get(a, "prefix");
    p.delimiter = mc_args_get(a, "delimiter");
    p.key_marker = mc_args_get(a, "key-marker");
    p.version_id_marker = mc_args_get(a, "version-id-marker");
    if (p.version_id_marker && !p.key_marker) {
        return mc_cli_usage(cli, "--version-id-marker needs --key-marker (as in S3)");
    }
    int ec = parse_max_keys(cli, a, &p.max_keys);
    if (ec == 0) {
        ec = check_list_strings(cli, &p);
    }
    if (ec == 0 && p.version_id_marker && strlen(p.version_id_marker) > MC_VERSION_ID_MAX) {
        ec = mc_cli_usage(cli, "--version-id-marker is longer than %d bytes", MC_VERSION_ID_MAX);
    }
    if (ec != 0) {
        return ec;
    }
    if (check_bucket(pos[0], false) != 0) {
        return MC_CLI_EXIT_ERROR;
    }
    struct mc_list_result r = {0};
    int rc = cli->be->list_versions(cli, pos[0], &p, &r);
    if (rc != 0) {
        mc_list_result_clear(&r);
        return be_fail(rc, pos[0]);
    }
    ec = mc_cli_print_list(cli, &r);
    mc_list_result_clear(&r);
    return ec;
}

/* ---- the command table ---- */

static const struct mc_flag_spec bucket_create_flags[] = {
    {"versioning", 0, 0, NULL, "create the bucket with versioning enabled"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct mc_flag_spec put_flags[] = {
    {"size", 1, 0, "N", "object size in bytes (default 0, or the --inline-file length)"},
    {"etag", 1, 0, "E", "entity tag (default: MD5 of --inline-file, else empty)"},
    {"content-type", 1, 0, "T", "content type, e.g. text/plain"},
    {"meta", 1, 1, "K=V", "user metadata pair; repeat for several (total <= 2 KiB)"},
    {"storage-class", 1, 0, "C", "storage class, e.g. STANDARD"},
    {"if-match", 1, 0, "ETAG", "only write when the current version has this etag"},
    {"if-none-match", 1, 0, "'*'", "only write when the key has no current version"},
    {"inline-file", 1, 0, "F", "store the content of file F (<= 64 KiB) inline"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct mc_flag_spec version_flags[] = {
    {"version-id", 1, 0, "V", "a specific version (default: the latest)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct mc_flag_spec ls_flags[] = {
    {"prefix", 1, 0, "P", "only keys starting with P"},
    {"delimiter", 1, 0, "D", "roll keys sharing PREFIX..D up into one common prefix"},
    {"start-after", 1, 0, "K", "only keys after K (exclusive)"},
    {"continuation-token", 1, 0, "T", "resume a truncated listing (token from the last page)"},
    {"max-keys", 1, 0, "N", "page size, 1..1000 (default 1000; larger values clamp to 1000)"},
    {NULL, 0, 0, NULL, NULL},
};

static const struct mc_flag_spec versions_flags[] = {
    {"prefix", 1, 0, "P", "only keys starting with P"},
    {"delimiter", 1, 0, "D", "roll keys sharing PREFIX..D up into one common prefix"},
    {"key-marker", 1, 0, "K", "resume after key K (from next_key_marker)"},
    {"version-id-marker", 1, 0, "V", "with --key-marker: resume after this version of K"},
    {"max-keys", 1, 0, "N", "page size, 1..1000 (default 1000; larger values clamp to 1000)"},
    {NULL, 0, 0, NULL, NULL},
};

const struct mc_cli_cmd mc_cli_cmds[] = {
    {"bucket", "create", "NAME [--versioning]", 1, 1, bucket_create_flags, "create a bucket",
     "NAME follows S3 rules: 3-63 characters of a-z, 0-9, '.' and '-'.", cmd_bucket_create},
    {"bucket", "rm", "NAME", 1, 1, NULL, "remove an empty bucket",
     "Fails with BucketNotEmpty while any version or delete marker remains.", cmd_bucket_rm},
    {"bucket", "ls", "", 0, 0, NULL, "list buckets",
     "--json: {\"buckets\":[{\"name\",\"created_ns\",\"versioning\"}]}", cmd_bucket_ls},
    {"bucket", "head", "NAME", 1, 1, NULL, "show one bucket (NoSuchBucket when absent)", NULL,
     cmd_bucket_head},
    {"bucket", "versioning", "NAME enabled|suspended", 2, 2, NULL,
     "enable or suspend versioning of a bucket",
     "A bucket never returns to unversioned once versioning was enabled (S3).",
     cmd_bucket_versioning},
    {NULL, "put", "BUCKET KEY [flags]", 2, 2, put_flags, "write an object version's metadata",
     "Prints the version id written (\"null\" in an unversioned or suspended bucket).\n"
     "Errors: NoSuchBucket, PreconditionFailed (--if-match/--if-none-match), KeyTooLongError,\n"
     "MetadataTooLarge, EntityTooLarge (--inline-file over 64 KiB).",
     cmd_put},
    {NULL, "get", "BUCKET KEY [--version-id V]", 2, 2, version_flags,
     "print an object's metadata record",
     "--json prints the whole record (bucket, key, version_id, is_delete_marker, size, etag,\n"
     "content_type, mod_time_ns, user_metadata, storage_class, ...). NoSuchKey when the\n"
     "latest version is a delete marker.",
     cmd_get},
    {NULL, "head", "BUCKET KEY [--version-id V]", 2, 2, version_flags,
     "like get, without inline data", NULL, cmd_head},
    {NULL, "rm", "BUCKET KEY [--version-id V]", 2, 2, version_flags, "delete an object",
     "Without --version-id: in a versioned bucket adds a delete marker, otherwise removes the\n"
     "key (succeeds even when the key does not exist, as S3 does). With --version-id: removes\n"
     "that version permanently (removing a delete marker restores the previous version).",
     cmd_rm},
    {NULL, "ls", "BUCKET [flags]", 1, 1, ls_flags, "list objects (ListObjectsV2)",
     "--json: {\"objects\":[{\"key\",\"size\",\"etag\",\"version_id\",\"mod_time_ns\"}],\n"
     "\"common_prefixes\":[..],\"key_count\":N,\"is_truncated\":B,\"next_continuation_token\":T}",
     cmd_ls},
    {NULL, "versions", "BUCKET [flags]", 1, 1, versions_flags,
     "list object versions and delete markers (ListObjectVersions)",
     "Keys in order, each key's versions newest first. --json: {\"versions\":[{...,\n"
     "\"is_latest\",\"is_delete_marker\"}],\"common_prefixes\",\"key_count\",\"is_truncated\",\n"
     "\"next_key_marker\",\"next_version_id_marker\"}",
     cmd_versions},
    MC_CLI_ADMIN_CMDS,
    {NULL, "verify", "", 0, 0, NULL, "scan a stopped node's engine file for corruption",
     MC_CLI_VERIFY_DETAILS, mc_cli_cmd_verify},
    {NULL, NULL, NULL, 0, 0, NULL, NULL, NULL, NULL},
};
