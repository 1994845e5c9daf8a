/* engine_bench.c: engine throughput (puts in batches, random gets, list pages) vs raw LMDB. */
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/codec.h"
#include "util/rand.h"

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Usage: engine_bench [--objects N] [--seed S] [--cpu]
 * Without --objects it runs at 100,000 and 1,000,000 objects. Each object has
 * 256 bytes of user metadata. The engine runs in the node's mode (sync none:
 * the Raft WAL is the durability source). The raw LMDB rows write the same
 * key and value sizes through plain mdb_put/mdb_get as the reference.
 */

/* --cpu: time by this process's CPU time instead of wall time (steadier on a shared machine,
 * where wall time mostly measures the other tenants). */
static bool g_cpu_time;

static uint64_t now_ns(void)
{
    if (!g_cpu_time) {
        return mc_mono_ns();
    }
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void rmrf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "cleanup of %s failed\n", dir);
    }
}

static void key_of(uint64_t i, char *out, size_t n)
{
    /* Scrambled so inserts land at random places in the B-tree. */
    uint64_t x = i * 0x9E3779B97F4A7C15ull;
    x ^= x >> 29;
    snprintf(out, n, "data/%016llx", (unsigned long long)x);
}

static struct mc_object_meta bench_meta(void)
{
    struct mc_object_meta m = {0};
    m.size = 4096;
    m.etag = strdup("d41d8cd98f00b204e9800998ecf8427e");
    m.content_type = strdup("application/octet-stream");
    char v[61];
    memset(v, 'v', 60);
    v[60] = 0;
    for (int i = 0; i < 4; i++) {
        char k[5] = {'m', 'k', '0', (char)('0' + i), 0};
        mc_object_meta_add_user(&m, k, v); /* 4 × (4 + 60) = 256 bytes */
    }
    return m;
}

static double rate(uint64_t ops, uint64_t ns)
{
    return ns ? (double)ops * 1e9 / (double)ns : 0;
}

static uint64_t g_index;

/* Put keys [from, to) in batches of `batch`; returns elapsed ns. */
static uint64_t put_range(struct mc_engine *e, uint64_t from, uint64_t to, size_t batch,
                          const struct mc_object_meta *m)
{
    struct mc_op *ops = calloc(batch, sizeof(*ops));
    struct mc_op_result *res = calloc(batch, sizeof(*res));
    char key[64];
    uint64_t t0 = now_ns();
    for (uint64_t i = from; i < to;) {
        size_t n = 0;
        for (; n < batch && i < to; n++, i++) {
            key_of(i, key, sizeof(key));
            mc_op_put(&ops[n], "bench", key, NULL, (int64_t)i, m);
        }
        if (mc_engine_apply(e, ++g_index, ops, n, NULL, 0, res)) {
            fprintf(stderr, "apply: %s\n", mc_engine_last_error());
            exit(1);
        }
        for (size_t j = 0; j < n; j++) {
            if (res[j].code) {
                fprintf(stderr, "put: %s\n", mc_error_name(res[j].code));
                exit(1);
            }
            mc_op_clear(&ops[j]);
        }
    }
    uint64_t ns = now_ns() - t0;
    free(ops);
    free(res);
    return ns;
}

struct row {
    const char *what;
    double engine, raw;
};

static void raw_lmdb(const char *dir, uint64_t n, size_t vsize, double *put_rate, double *get_rate,
                     double *get_copy_rate, uint64_t gets, uint64_t seed)
{
    MDB_env *env;
    MDB_dbi dbi;
    MDB_txn *txn;
    mdb_env_create(&env);
    mdb_env_set_mapsize(env, 8ull << 30);
    mdb_env_set_maxdbs(env, 4);
    if (mdb_env_open(env, dir, MDB_NOSYNC | MDB_NOTLS | MDB_WRITEMAP, 0644)) {
        fprintf(stderr, "raw open failed\n");
        exit(1);
    }
    mdb_txn_begin(env, NULL, 0, &txn);
    mdb_dbi_open(txn, "d", MDB_CREATE, &dbi);
    mdb_txn_commit(txn);
    char *val = calloc(1, vsize);
    char key[64];
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < n;) {
        mdb_txn_begin(env, NULL, 0, &txn);
        for (int j = 0; j < 1000 && i < n; j++, i++) {
            key_of(i, key, sizeof(key));
            MDB_val k = {strlen(key), key}, v = {vsize, val};
            mdb_put(txn, dbi, &k, &v, 0);
        }
        mdb_txn_commit(txn);
    }
    *put_rate = rate(n, now_ns() - t0);
    struct mc_rand r;
    mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
    mdb_txn_reset(txn);
    uint64_t found = 0;
    /* Pass 0: lookup only. Pass 1: also copy the value out, as any reader that returns the
       record must (the engine decodes or copies it): the fair reference for engine gets. */
    char *out = malloc(vsize);
    for (int pass = 0; pass < 2; pass++) {
        mc_rand_seed(&r, seed);
        t0 = now_ns();
        for (uint64_t i = 0; i < gets; i++) {
            key_of(mc_rand_below(&r, n), key, sizeof(key));
            mdb_txn_renew(txn); /* per-get txn, like the engine's pooled reads */
            MDB_val k = {strlen(key), key}, v;
            found += mdb_get(txn, dbi, &k, &v) == 0;
            if (pass) {
                memcpy(out, v.mv_data, v.mv_size);
            }
            mdb_txn_reset(txn);
        }
        *(pass ? get_copy_rate : get_rate) = rate(gets, now_ns() - t0);
    }
    free(out);
    mdb_txn_abort(txn);
    if (found != 2 * gets) {
        fprintf(stderr, "raw gets missed\n");
    }
    free(val);
    mdb_env_close(env);
}

static void run(uint64_t n, uint64_t seed)
{
    char dir[] = "/tmp/mc_engine_bench_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        exit(1);
    }
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .map_size_bytes = 1ull << 30};
    struct mc_engine *e;
    if (mc_engine_open(dir, &o, &e)) {
        fprintf(stderr, "open: %s\n", mc_engine_last_error());
        exit(1);
    }
    g_index = 0;
    struct mc_op op;
    struct mc_op_result res;
    mc_op_bucket_create(&op, "bench", MC_VERSIONING_UNVERSIONED, 1);
    mc_engine_apply(e, ++g_index, &op, 1, NULL, 0, &res);
    mc_op_clear(&op);
    struct mc_object_meta m = bench_meta();

    struct row rows[12];
    int nr = 0;
    /* Load with batches of 1000 (this is the batch-1000 figure, at growing size up to n). */
    uint64_t ns = put_range(e, 0, n, 1000, &m);
    double put1000 = rate(n, ns);
    /* Further puts at size n: batches of 100 and 1 (new keys, random positions). */
    uint64_t extra100 = n / 10 < 100000 ? n / 10 : 100000;
    uint64_t extra1 = 20000;
    double put100 = rate(extra100, put_range(e, n, n + extra100, 100, &m));
    double put1 = rate(extra1, put_range(e, n + extra100, n + extra100 + extra1, 1, &m));
    uint64_t total = n + extra100 + extra1;

    /* Random gets (latest, no inline data). */
    struct mc_rand r;
    mc_rand_seed(&r, seed);
    uint64_t gets = 300000;
    char key[64];
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < gets; i++) {
        key_of(mc_rand_below(&r, total), key, sizeof(key));
        struct mc_version v;
        if (mc_engine_get(e, "bench", key, NULL, false, &v)) {
            fprintf(stderr, "get %s failed\n", key);
            exit(1);
        }
        mc_version_clear(&v);
    }
    double get_rate = rate(gets, now_ns() - t0);

    /* The same gets through the server path (stored bytes copied, no decode). */
    mc_rand_seed(&r, seed);
    struct mc_wbuf wb;
    mc_wbuf_init(&wb, 0);
    t0 = now_ns();
    for (uint64_t i = 0; i < gets; i++) {
        key_of(mc_rand_below(&r, total), key, sizeof(key));
        bool dm;
        mc_wbuf_reset(&wb);
        if (mc_engine_get_encoded(e, "bench", key, NULL, false, &wb, &dm, NULL)) {
            fprintf(stderr, "get_encoded %s failed\n", key);
            exit(1);
        }
    }
    double get_enc_rate = rate(gets, now_ns() - t0);
    mc_wbuf_free(&wb);

    /* 1000-key list pages from random start points. */
    uint64_t pages = 300, keys_listed = 0, steps = 0;
    t0 = now_ns();
    for (uint64_t i = 0; i < pages; i++) {
        key_of(mc_rand_below(&r, total), key, sizeof(key));
        struct mc_list_params p = {.prefix = "data/", .start_after = key, .max_keys = 1000};
        struct mc_list_result lr;
        if (mc_engine_list_objects(e, "bench", &p, &lr)) {
            fprintf(stderr, "list failed\n");
            exit(1);
        }
        keys_listed += lr.n_entries;
        steps += lr.cursor_steps;
        mc_list_result_clear(&lr);
    }
    double page_rate = rate(pages, now_ns() - t0);

    uint64_t h, ai;
    t0 = now_ns();
    mc_engine_state_hash(e, &h, &ai);
    double hash_s = (double)(now_ns() - t0) / 1e9;
    struct mc_engine_verify_report vr = {0};
    t0 = now_ns();
    if (mc_engine_verify(e, &vr)) {
        fprintf(stderr, "verify: %s\n", mc_engine_last_error());
        exit(1);
    }
    double verify_s = (double)(now_ns() - t0) / 1e9;
    mc_engine_close(e);
    mc_object_meta_clear(&m);
    rmrf(dir);

    /* Raw LMDB reference: same key, a value the size of our version record (~400 B). */
    char rdir[] = "/tmp/mc_engine_bench_raw_XXXXXX";
    if (!mkdtemp(rdir)) {
        exit(1);
    }
    double raw_put = 0, raw_get = 0, raw_get_copy = 0;
    raw_lmdb(rdir, n, 400, &raw_put, &raw_get, &raw_get_copy, gets, seed);
    rmrf(rdir);

    rows[nr++] = (struct row){"put, batch 1000", put1000, raw_put};
    rows[nr++] = (struct row){"put, batch 100", put100, 0};
    rows[nr++] = (struct row){"put, batch 1", put1, 0};
    rows[nr++] = (struct row){"get, random key", get_rate, raw_get};
    rows[nr++] = (struct row){"get, encoded (server)", get_enc_rate, raw_get};
    rows[nr++] = (struct row){"  vs raw get + copy", get_enc_rate, raw_get_copy};
    rows[nr++] = (struct row){"get vs raw get + copy", get_rate, raw_get_copy};
    rows[nr++] = (struct row){"list, 1000-key page", page_rate, 0};
    printf("\n== %llu objects (256 B user metadata each; engine sync=none; %s time) ==\n",
           (unsigned long long)n, g_cpu_time ? "CPU" : "wall");
    printf("%-22s %14s %14s %8s\n", "operation", "engine ops/s", "raw LMDB ops/s", "ratio");
    for (int i = 0; i < nr; i++) {
        if (rows[i].raw > 0) {
            printf("%-22s %14.0f %14.0f %7.2fx\n", rows[i].what, rows[i].engine, rows[i].raw,
                   rows[i].raw / rows[i].engine);
        } else {
            printf("%-22s %14.0f %14s %8s\n", rows[i].what, rows[i].engine, "-", "");
        }
    }
    printf("list: %.0f keys/s, %.1f cursor steps per page; state hash of %llu objects: %.2f s\n",
           page_rate * (double)keys_listed / (double)pages, (double)steps / (double)pages,
           (unsigned long long)total, hash_s);
    printf("verify scan (mc_engine_verify): %llu records, %llu pages: %.2f s\n",
           (unsigned long long)vr.records, (unsigned long long)vr.pages, verify_s);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    uint64_t objects = 0, seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--objects") && i + 1 < argc) {
            char *end;
            long long v = strtoll(argv[++i], &end, 10);
            if (*end || v < 1000) {
                fprintf(stderr, "--objects needs an integer >= 1000\n");
                return 2;
            }
            objects = (uint64_t)v;
        } else if (!strcmp(argv[i], "--cpu")) {
            g_cpu_time = true;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 10);
        } else {
            fprintf(stderr, "usage: %s [--objects N] [--seed S] [--cpu]\n", argv[0]);
            return 2;
        }
    }
    if (objects) {
        run(objects, seed);
    } else {
        run(100000, seed);
        run(1000000, seed);
    }
    return 0;
}
