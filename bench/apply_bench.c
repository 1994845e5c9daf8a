/* apply_bench.c: CPU cost of the replicated write path's apply step (decode + mc_engine_apply). */
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/codec.h"
#include "util/rand.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * What a follower does per Raft entry in the standard put row (C=64 P=16): decode a batch of
 * op records and apply them in one call. Usage:
 *   apply_bench [--entries N] [--batch OPS] [--keys N] [--sessions S] [--seed X]
 * Defaults: 2000 entries of 170 puts (the ops per entry measured under that row) over 100,000
 * keys with 128 bytes of user metadata, each op on one of 64 client sessions (acked_seq =
 * seq - 1, as the client library sends). The second half of the entries is timed (the key
 * space is mostly written by then: overwrites, as in a long run) by this process's CPU time,
 * which is steadier than wall time on a shared machine. Prints µs of CPU per op and the state
 * hash (equal hashes: equal committed state).
 */

static double cpu_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#define MAX_BATCH    4096
#define MAX_SESSIONS 1024

int main(int argc, char **argv)
{
    long entries = 2000, batch = 170, keys = 100000, sessions = 64;
    unsigned long long seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        long v = strtol(argv[i + 1], NULL, 10);
        if (!strcmp(argv[i], "--entries")) {
            entries = v;
        } else if (!strcmp(argv[i], "--batch")) {
            batch = v;
        } else if (!strcmp(argv[i], "--keys")) {
            keys = v;
        } else if (!strcmp(argv[i], "--sessions")) {
            sessions = v;
        } else if (!strcmp(argv[i], "--seed")) {
            seed = strtoull(argv[i + 1], NULL, 10);
        } else {
            fprintf(stderr, "apply_bench: unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    if (entries < 2 || batch < 1 || batch > MAX_BATCH || keys < 1 || sessions < 0 ||
        sessions > MAX_SESSIONS) {
        fprintf(stderr, "apply_bench: bad arguments\n");
        return 2;
    }
    char dir[] = "/tmp/mc_apply_bench_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int ret = 1;
    struct mc_engine *e = NULL;
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE};
    struct mc_op *ops = calloc((size_t)batch, sizeof(*ops));
    struct mc_op_result *res = calloc((size_t)batch, sizeof(*res));
    size_t *offs = calloc((size_t)batch + 1, sizeof(*offs));
    uint64_t sid[MAX_SESSIONS], sseq[MAX_SESSIONS];
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    if (!ops || !res || !offs || mc_engine_open(dir, &o, &e)) {
        fprintf(stderr, "apply_bench: setup failed: %s\n", mc_engine_last_error());
        goto out;
    }
    uint64_t index = 1;
    struct mc_op op;
    struct mc_op_result r;
    mc_op_bucket_create(&op, "bench", MC_VERSIONING_UNVERSIONED, 1);
    int rc = mc_engine_apply(e, index++, &op, 1, NULL, 0, &r);
    mc_op_clear(&op);
    for (long s = 0; rc == 0 && s < sessions; s++) {
        mc_op_session_register(&op, 2);
        rc = mc_engine_apply(e, index, &op, 1, NULL, 0, &r);
        sid[s] = index++;
        sseq[s] = 0;
        mc_op_clear(&op);
    }
    if (rc) {
        fprintf(stderr, "apply_bench: setup apply failed: %s\n", mc_engine_last_error());
        goto out;
    }
    struct mc_rand rnd;
    mc_rand_seed(&rnd, seed);
    char meta[129];
    memset(meta, 'm', 128);
    meta[128] = 0;
    struct mc_kv kv = {"x-amz-meta-a", meta};
    struct mc_object_meta m = {.size = 100,
                               .etag = "0123456789abcdef0123456789abcdef",
                               .content_type = "application/octet-stream",
                               .user_meta = &kv,
                               .n_user_meta = 1};
    double timed = 0;
    long timed_ops = 0;
    for (long b = 0; b < entries; b++) {
        mc_wbuf_reset(&w);
        for (long i = 0; i < batch; i++) {
            char k[32], vid[17];
            snprintf(k, sizeof(k), "key-%08llu",
                     (unsigned long long)mc_rand_below(&rnd, (uint64_t)keys));
            int64_t t = (int64_t)index * 1000 + i;
            mc_version_id_make(vid, t, (uint64_t)i);
            mc_op_put(&op, "bench", k, vid, t, &m);
            if (sessions) {
                long s = i % sessions;
                op.session_id = sid[s];
                op.seq = ++sseq[s];
                op.acked_seq = op.seq - 1;
            }
            offs[i] = w.len;
            mc_op_encode(&op, &w);
            mc_op_clear(&op);
        }
        offs[batch] = w.len;
        if (mc_wbuf_error(&w)) {
            fprintf(stderr, "apply_bench: encode failed\n");
            goto out;
        }
        double t0 = cpu_s();
        for (long i = 0; i < batch; i++) {
            if (mc_op_decode_block(w.data + offs[i], offs[i + 1] - offs[i], &ops[i])) {
                fprintf(stderr, "apply_bench: decode failed\n");
                goto out;
            }
        }
        rc = mc_engine_apply(e, index++, ops, (size_t)batch, NULL, 0, res);
        for (long i = 0; i < batch; i++) {
            mc_op_clear(&ops[i]);
        }
        if (b >= entries / 2) {
            timed += cpu_s() - t0;
            timed_ops += batch;
        }
        if (rc) {
            fprintf(stderr, "apply_bench: apply failed: %s\n", mc_engine_last_error());
            goto out;
        }
    }
    uint64_t hash = 0, applied = 0;
    mc_engine_state_hash(e, &hash, &applied);
    printf("%.2f us CPU per op (decode + apply; %ld ops timed, %ld per entry, %ld keys, %ld "
           "sessions); state hash %016llx at index %llu\n",
           timed / (double)timed_ops * 1e6, timed_ops, batch, keys, sessions,
           (unsigned long long)hash, (unsigned long long)applied);
    ret = 0;
out:
    if (e) {
        mc_engine_close(e);
    }
    mc_wbuf_free(&w);
    free(ops);
    free(res);
    free(offs);
    char cmd[64];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) {
        /* best effort */
    }
    return ret;
}
