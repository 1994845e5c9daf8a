/* fuzz_apply.c: libFuzzer target for the engine's apply path: decoded op records on real LMDB. */
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/log.h"

/*
 * Client WRITE frames carry op records built by clients; the leader only fills in times and
 * version ids before the record goes through Raft to mc_engine_apply on every replica. So any
 * record that mc_op_decode accepts must be safe to apply. Input: up to MAX_OPS records, each
 * u16 length + bytes (undecodable ones are skipped). They are applied one per log index to two
 * fresh engines (scratch dirs on /dev/shm), one op per log index on each: A applies what
 * mc_op_decode gave, B what mc_op_decode_block gives (the node's apply path).
 * Checked: apply returns 0 (failures are per-op results with MC_E* codes), replaying an index
 * is skipped, both replicas end with the same state hash (determinism), and listings of every
 * bucket named keep S3 shape (prefix/delimiter/start-after/order/page size) and list the same
 * thing whether walked in pages of 1-3 keys (continuation tokens, key/version markers) or in one
 * page. Input: records, then optionally a 0xFFFF terminator and listing parameters: one page-size
 * byte and NUL-separated prefix, delimiter, start_after, key_marker, version_id_marker, token.
 */

#define MAX_OPS 16

static char g_root[256];

static void cleanup(void)
{
    if (g_root[0]) {
        char cmd[300];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_root);
        (void)!system(cmd);
    }
}

static void fresh_dir(const char *name, char *out, size_t cap)
{
    if (!g_root[0]) {
        /* MC_FUZZ_SCRATCH (set by the suite) keeps crash leftovers inside its own temp dir. */
        const char *base = getenv("MC_FUZZ_SCRATCH");
        if (!base || !*base) {
            base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        }
        snprintf(g_root, sizeof(g_root), "%s/mc_fuzz_apply_%d_XXXXXX", base, (int)getpid());
        FUZZ_ASSERT(mkdtemp(g_root) != NULL, "mkdtemp");
        atexit(cleanup);
        if (!getenv("MC_FUZZ_LOG")) {
            mc_log_set_level(MC_LOG_OFF);
        }
    }
    snprintf(out, cap, "%s/%s", g_root, name);
    /* Remove what the previous input left (the engine dir holds only plain files). */
    DIR *d = opendir(out);
    if (d) {
        struct dirent *e;
        char path[600];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                snprintf(path, sizeof(path), "%s/%s", out, e->d_name);
                FUZZ_ASSERT(unlink(path) == 0, "unlink %s", path);
            }
        }
        closedir(d);
    }
    mkdir(out, 0755);
}

static struct mc_engine *open_engine(const char *name)
{
    char dir[320];
    fresh_dir(name, dir, sizeof(dir));
    struct mc_engine_options o = {0};
    o.map_size_bytes = 8u << 20;
    o.max_map_size_bytes = 256u << 20;
    o.sync = MC_ENGINE_SYNC_NONE;
    o.max_readers = 4;
    struct mc_engine *e = NULL;
    int rc = mc_engine_open(dir, &o, &e);
    FUZZ_ASSERT(rc == 0, "mc_engine_open %s: %d (%s)", dir, rc, mc_engine_last_error());
    return e;
}

static void check_result(const struct mc_op *op, const struct mc_op_result *r)
{
    FUZZ_ASSERT(r->code <= 0, "result code %d", r->code);
    FUZZ_ASSERT(r->code == 0 || mc_error_http_status(r->code) >= 400, "unknown code %d", r->code);
    FUZZ_ASSERT(memchr(r->version_id, 0, sizeof(r->version_id)) != NULL, "version_id");
    FUZZ_ASSERT(!r->skipped, "fresh index reported skipped");
    FUZZ_ASSERT(op->type == MC_OP_ATOMIC || r->failed_op == -1 || r->code != 0 || r->failed_op == 0,
                "failed_op %d on a non-atomic op", r->failed_op);
}

/* Listing parameters from the input's trailer (after a 0xFFFF terminator record). */
struct lparams {
    char *str[6]; /* prefix, delimiter, start_after, key_marker, version_id_marker, token */
    int page;     /* page size for the paged walk: 1..3 */
};

static void lparams_parse(const uint8_t *p, size_t len, struct lparams *lp)
{
    memset(lp, 0, sizeof(*lp));
    lp->page = 1 + (len ? p[0] % 3 : 1);
    size_t off = len ? 1 : 0;
    for (int i = 0; i < 6 && off < len; i++) {
        const uint8_t *z = memchr(p + off, 0, len - off);
        size_t n = z ? (size_t)(z - (p + off)) : len - off;
        lp->str[i] = malloc(n + 1);
        FUZZ_ASSERT(lp->str[i] != NULL, "malloc");
        memcpy(lp->str[i], p + off, n);
        lp->str[i][n] = 0;
        off += n + 1;
    }
}

static void lparams_free(struct lparams *lp)
{
    for (int i = 0; i < 6; i++) {
        free(lp->str[i]);
    }
}

#define MAX_PAGES 300

/*
 * Walk a whole listing with pages of `page` keys, appending every entry ("E key\0vid\0") and
 * common prefix ("P prefix\0") to seq and checking each page's shape. Returns the first call's
 * rc, or 1 when the walk was cut at MAX_PAGES.
 */
static int walk(struct mc_engine *e, const char *bucket, bool versions, const struct lparams *lp,
                int page, struct mc_wbuf *seq)
{
    const char *prefix = lp->str[0] ? lp->str[0] : "";
    const char *delim = lp->str[1] && lp->str[1][0] ? lp->str[1] : NULL;
    struct mc_list_params p = {0};
    p.prefix = lp->str[0];
    p.delimiter = lp->str[1];
    p.max_keys = page;
    if (versions) {
        p.key_marker = lp->str[3];
        p.version_id_marker = lp->str[4];
    } else {
        p.start_after = lp->str[2];
        p.continuation_token = lp->str[5];
    }
    char *tok = NULL, *km = NULL, *vm = NULL;
    int first_rc = 0;
    for (int pages = 0;; pages++) {
        if (pages == MAX_PAGES) {
            first_rc = 1;
            break;
        }
        struct mc_list_result lr;
        int rc = versions ? mc_engine_list_versions(e, bucket, &p, &lr)
                          : mc_engine_list_objects(e, bucket, &p, &lr);
        if (pages == 0) {
            first_rc = rc;
        }
        if (rc != 0) {
            FUZZ_ASSERT(pages == 0, "page %d of a listing failed: %d", pages, rc);
            FUZZ_ASSERT(rc == MC_ENOBUCKET || rc == MC_EINVAL || rc == MC_EBADTOKEN ||
                            rc == MC_EKEYTOOLONG || rc == MC_EBADKEY || rc == MC_ENOVERSION,
                        "listing rc %d", rc);
            break;
        }
        FUZZ_ASSERT(lr.is_versions == versions, "is_versions");
        FUZZ_ASSERT(lr.key_count == lr.n_entries + lr.n_prefixes, "key_count");
        FUZZ_ASSERT(lr.key_count <= (uint32_t)page, "page of %d holds %u", page, lr.key_count);
        FUZZ_ASSERT(!lr.is_truncated || lr.key_count > 0, "empty truncated page");
        for (uint32_t i = 0; i < lr.n_entries; i++) {
            const struct mc_version *v = &lr.entries[i];
            FUZZ_ASSERT(v->key && strncmp(v->key, prefix, strlen(prefix)) == 0,
                        "entry %s outside prefix %s", v->key, prefix);
            FUZZ_ASSERT(!delim || !strstr(v->key + strlen(prefix), delim),
                        "entry %s holds the delimiter after the prefix", v->key);
            FUZZ_ASSERT(versions || !v->is_delete_marker, "delete marker in an object listing");
            if (!versions && pages == 0 && !lp->str[5] && lp->str[2]) {
                FUZZ_ASSERT(strcmp(v->key, lp->str[2]) > 0, "key %s not after start_after %s",
                            v->key, lp->str[2]);
            }
            if (i > 0) {
                int c = strcmp(lr.entries[i - 1].key, v->key);
                FUZZ_ASSERT(versions ? c <= 0 : c < 0, "entries out of order: %s, %s",
                            lr.entries[i - 1].key, v->key);
            }
        }
        for (uint32_t i = 0; i < lr.n_prefixes; i++) {
            const char *cp = lr.common_prefixes[i];
            size_t cl = strlen(cp);
            FUZZ_ASSERT(delim && strncmp(cp, prefix, strlen(prefix)) == 0 && cl >= strlen(delim) &&
                            strcmp(cp + cl - strlen(delim), delim) == 0,
                        "common prefix %s (prefix %s)", cp, prefix);
            FUZZ_ASSERT(i == 0 || strcmp(lr.common_prefixes[i - 1], cp) < 0, "prefixes order");
        }
        /* Record entries and prefixes merged in key order (S3 orders them together). */
        for (uint32_t ie = 0, ip = 0; ie < lr.n_entries || ip < lr.n_prefixes;) {
            bool take_e =
                ip == lr.n_prefixes ||
                (ie < lr.n_entries && strcmp(lr.entries[ie].key, lr.common_prefixes[ip]) < 0);
            if (take_e) {
                const struct mc_version *v = &lr.entries[ie++];
                const char *vid = v->version_id ? v->version_id : "";
                mc_wbuf_u8(seq, 'E');
                mc_wbuf_put(seq, v->key, strlen(v->key) + 1);
                mc_wbuf_put(seq, vid, strlen(vid) + 1);
            } else {
                const char *cp = lr.common_prefixes[ip++];
                mc_wbuf_u8(seq, 'P');
                mc_wbuf_put(seq, cp, strlen(cp) + 1);
            }
        }
        bool more = lr.is_truncated;
        free(tok);
        free(km);
        free(vm);
        tok = lr.next_continuation_token;
        km = lr.next_key_marker;
        vm = lr.next_version_id_marker;
        lr.next_continuation_token = lr.next_key_marker = lr.next_version_id_marker = NULL;
        char *j = mc_list_result_json(&lr, MC_JSON_COMPACT);
        FUZZ_ASSERT(j != NULL, "json");
        free(j);
        mc_list_result_clear(&lr);
        if (!more) {
            break;
        }
        if (versions) {
            FUZZ_ASSERT(km != NULL, "truncated versions listing without next_key_marker");
            p.key_marker = km;
            p.version_id_marker = vm;
        } else {
            FUZZ_ASSERT(tok != NULL, "truncated listing without a continuation token");
            p.continuation_token = tok;
            p.start_after = NULL;
        }
    }
    free(tok);
    free(km);
    free(vm);
    return first_rc;
}

/* A listing walked in small pages must list exactly what one big page lists. */
static void check_listing(struct mc_engine *e, const char *bucket, bool versions,
                          const struct lparams *lp)
{
    struct mc_wbuf big, small;
    mc_wbuf_init(&big, 0);
    mc_wbuf_init(&small, 0);
    int rc1 = walk(e, bucket, versions, lp, MC_LIST_MAX_KEYS, &big);
    int rc2 = walk(e, bucket, versions, lp, lp->page, &small);
    if (rc1 != 1 && rc2 != 1) {
        FUZZ_ASSERT(rc1 == rc2, "page size changes the outcome: %d vs %d", rc1, rc2);
        long d = fuzz_first_diff(big.data, big.len, small.data, small.len);
        FUZZ_ASSERT(d < 0,
                    "%s listing of %s: pages of %d differ from one page at byte %ld "
                    "(%zu vs %zu bytes)",
                    versions ? "versions" : "objects", bucket, lp->page, d, small.len, big.len);
    }
    mc_wbuf_free(&small);
    mc_wbuf_free(&big);
}

/*
 * mc_engine_get_encoded (the server's fast path, copying stored bytes) must produce exactly
 * mc_version_encode(mc_engine_get(...)), with the same error and delete-marker report.
 */
static void check_get(struct mc_engine *e, const char *bucket, const char *key, const char *vid,
                      bool with_inline)
{
    struct mc_version v;
    int rc = mc_engine_get(e, bucket, key, vid, with_inline, &v);
    struct mc_wbuf fast;
    mc_wbuf_init(&fast, 0);
    bool marker = false;
    char marker_vid[MC_VERSION_ID_MAX + 1] = "";
    int rc2 = mc_engine_get_encoded(e, bucket, key, vid, with_inline, &fast, &marker, marker_vid);
    FUZZ_ASSERT(rc == rc2, "get %d vs get_encoded %d", rc, rc2);
    if (rc == 0) {
        struct mc_wbuf slow;
        mc_wbuf_init(&slow, 0);
        FUZZ_ASSERT(mc_version_encode(&v, &slow) == 0, "encode");
        long d = fuzz_first_diff(fast.data, fast.len, slow.data, slow.len);
        FUZZ_ASSERT(d < 0, "get_encoded differs from encode(get) at byte %ld (%zu vs %zu bytes)", d,
                    fast.len, slow.len);
        mc_wbuf_free(&slow);
        char *j = mc_version_json(&v, MC_JSON_COMPACT);
        FUZZ_ASSERT(j != NULL, "json");
        free(j);
    } else if (rc == MC_ENOKEY && v.is_delete_marker) {
        FUZZ_ASSERT(marker && fast.len == 0, "get_encoded did not report the delete marker");
        FUZZ_ASSERT(fuzz_str_eq(marker_vid, v.version_id ? v.version_id : ""),
                    "marker version %s vs %s", marker_vid, v.version_id);
    } else {
        FUZZ_ASSERT(fast.len == 0, "get_encoded wrote on error %d", rc);
    }
    if (rc == 0 || (rc == MC_ENOKEY && v.is_delete_marker)) {
        mc_version_clear(&v);
    }
    mc_wbuf_free(&fast);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mc_op ops[MAX_OPS];
    const uint8_t *rec[MAX_OPS];
    size_t rec_len[MAX_OPS];
    size_t n = 0, off = 0;
    while (n < MAX_OPS && off + 2 <= size) {
        size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
        off += 2;
        if (len == 0xFFFF) {
            break; /* terminator: the listing parameters follow */
        }
        if (len > size - off) {
            break;
        }
        if (mc_op_decode(data + off, len, &ops[n]) == 0) {
            rec[n] = data + off;
            rec_len[n] = len;
            n++;
        }
        off += len;
    }
    if (n == 0) {
        return 0;
    }
    struct lparams lp;
    lparams_parse(data + (off < size ? off : size), off < size ? size - off : 0, &lp);
    struct mc_op_result res[MAX_OPS];
    struct mc_engine *a = open_engine("a");
    for (size_t i = 0; i < n; i++) {
        int rc = mc_engine_apply(a, i + 1, &ops[i], 1, NULL, 0, &res[i]);
        FUZZ_ASSERT(rc == 0, "apply of decoded op %zu (%s) at %zu: %d (%s)", i,
                    mc_op_type_name(ops[i].type), i + 1, rc, mc_engine_last_error());
        check_result(&ops[i], &res[i]);
    }
    /* Replaying an applied index changes nothing. */
    uint64_t h1, h2, idx;
    FUZZ_ASSERT(mc_engine_state_hash(a, &h1, &idx) == 0 && idx == n, "state hash");
    struct mc_op_result again;
    FUZZ_ASSERT(mc_engine_apply(a, n, &ops[n - 1], 1, NULL, 0, &again) == 0 && again.skipped,
                "replayed index not skipped");
    FUZZ_ASSERT(mc_engine_state_hash(a, &h2, &idx) == 0 && h1 == h2, "replay changed the state");

    /* Reads over every bucket/key the ops named. */
    for (size_t i = 0; i < n; i++) {
        const struct mc_op *o = &ops[i];
        struct mc_bucket_info bi;
        (void)mc_engine_bucket_head(a, o->bucket, &bi);
        if (o->key) {
            check_get(a, o->bucket, o->key, o->version_id, true);
            check_get(a, o->bucket, o->key, o->version_id, false);
            check_get(a, o->bucket, o->key, NULL, false);
        }
        if (i == 0 || strcmp(o->bucket, ops[i - 1].bucket) != 0) {
            check_listing(a, o->bucket, false, &lp);
            check_listing(a, o->bucket, true, &lp);
        }
    }
    struct mc_bucket_info *bl;
    size_t nb;
    FUZZ_ASSERT(mc_engine_bucket_list(a, &bl, &nb) == 0, "bucket list");
    free(bl);

    /* Replica B: same records, same indexes, decoded as the node's apply_ops does (one arena
     * per op: mc_op_decode_block), must reach the same state. */
    struct mc_engine *b = open_engine("b");
    struct mc_op_result rb[MAX_OPS];
    for (size_t i = 0; i < n; i++) {
        struct mc_op ob;
        FUZZ_ASSERT(mc_op_decode_block(rec[i], rec_len[i], &ob) == 0, "block decode");
        FUZZ_ASSERT(mc_engine_apply(b, i + 1, &ob, 1, NULL, 0, &rb[i]) == 0, "apply on B");
        mc_op_clear(&ob);
        FUZZ_ASSERT(rb[i].code == res[i].code && strcmp(rb[i].version_id, res[i].version_id) == 0,
                    "replicas disagree on the result of op %zu", i);
    }
    uint64_t hb;
    FUZZ_ASSERT(mc_engine_state_hash(b, &hb, &idx) == 0 && hb == h1,
                "replicas diverged: hash %016llx vs %016llx", (unsigned long long)hb,
                (unsigned long long)h1);
    mc_engine_close(b);
    mc_engine_close(a);
    for (size_t i = 0; i < n; i++) {
        mc_op_clear(&ops[i]);
    }
    lparams_free(&lp);
    return 0;
}
