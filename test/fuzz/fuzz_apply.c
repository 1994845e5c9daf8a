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
 * fresh engines (scratch dirs on /dev/shm), one op per log index on each.
 * Checked: apply returns 0 (failures are per-op results with MC_E* codes), replaying an index
 * is skipped, both replicas end with the same state hash when they applied the same way
 * (determinism), and listings/gets over what was written stay within their documented shape.
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
        const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
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

static void check_listing(struct mc_engine *e, const char *bucket, bool versions)
{
    struct mc_list_params p = {0};
    p.max_keys = 3;
    struct mc_list_result lr;
    int rc = versions ? mc_engine_list_versions(e, bucket, &p, &lr)
                      : mc_engine_list_objects(e, bucket, &p, &lr);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_ENOBUCKET || rc == MC_EINVAL, "listing rc %d", rc);
        return;
    }
    FUZZ_ASSERT(lr.key_count == lr.n_entries + lr.n_prefixes && lr.key_count <= 3,
                "list key_count %u", lr.key_count);
    for (uint32_t i = 1; i < lr.n_entries; i++) {
        int c = strcmp(lr.entries[i - 1].key, lr.entries[i].key);
        FUZZ_ASSERT(versions ? c <= 0 : c < 0, "listing not sorted at %u", i);
    }
    /* Page through with the continuation state: must terminate. */
    for (int pages = 0; lr.is_truncated && pages < 64; pages++) {
        struct mc_list_params q = {0};
        q.max_keys = 3;
        char *tok = lr.next_continuation_token, *km = lr.next_key_marker,
             *vm = lr.next_version_id_marker;
        lr.next_continuation_token = lr.next_key_marker = lr.next_version_id_marker = NULL;
        mc_list_result_clear(&lr);
        q.continuation_token = tok;
        q.key_marker = km;
        q.version_id_marker = vm;
        rc = versions ? mc_engine_list_versions(e, bucket, &q, &lr)
                      : mc_engine_list_objects(e, bucket, &q, &lr);
        free(tok);
        free(km);
        free(vm);
        FUZZ_ASSERT(rc == 0, "next page rc %d", rc);
    }
    FUZZ_ASSERT(!lr.is_truncated, "listing of < 64*3 keys did not end in 64 pages");
    char *j = mc_list_result_json(&lr, MC_JSON_COMPACT);
    FUZZ_ASSERT(j != NULL, "json");
    free(j);
    mc_list_result_clear(&lr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mc_op ops[MAX_OPS];
    size_t n = 0, off = 0;
    while (n < MAX_OPS && off + 2 <= size) {
        size_t len = (size_t)data[off] | (size_t)data[off + 1] << 8;
        off += 2;
        if (len > size - off) {
            break;
        }
        if (mc_op_decode(data + off, len, &ops[n]) == 0) {
            n++;
        }
        off += len;
    }
    if (n == 0) {
        return 0;
    }
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
            struct mc_version v;
            int rc = mc_engine_get(a, o->bucket, o->key, o->version_id, true, &v);
            if (rc == 0 || (rc == MC_ENOKEY && v.is_delete_marker)) {
                char *j = mc_version_json(&v, MC_JSON_COMPACT);
                free(j);
                mc_version_clear(&v);
            }
        }
        check_listing(a, o->bucket, false);
        check_listing(a, o->bucket, true);
    }
    struct mc_bucket_info *bl;
    size_t nb;
    FUZZ_ASSERT(mc_engine_bucket_list(a, &bl, &nb) == 0, "bucket list");
    free(bl);

    /* Replica B: same ops, same indexes, must reach the same state. */
    struct mc_engine *b = open_engine("b");
    struct mc_op_result rb[MAX_OPS];
    for (size_t i = 0; i < n; i++) {
        FUZZ_ASSERT(mc_engine_apply(b, i + 1, &ops[i], 1, NULL, 0, &rb[i]) == 0, "apply on B");
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
    return 0;
}
