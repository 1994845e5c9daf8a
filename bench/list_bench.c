/* list_bench.c: CPU time of one ListObjectsV2 page of 1000 on a big engine, as the node serves it.
 */
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/codec.h"
#include "util/rand.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/*
 * Usage: list_bench --dir D [--objects N] [--pages P] [--page K] [--mode wire|struct]
 *                   [--delimiter C] [--seed S]
 * Loads N objects into bucket "list" of the engine in D unless D already holds them (the
 * objects are those of `metacenter bench load`: keys key-%012u, size 4096, a 32-char etag,
 * a content type and 128 bytes of user metadata), then lists P pages of K keys, each after a
 * random key, and prints the process CPU time per page.
 * --mode wire: mc_engine_list_encode (the node's path: one pass straight into the reply).
 * --mode struct: mc_engine_list_objects then mc_list_result_encode (the node's path before).
 */

static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void key_of(char *buf, size_t cap, uint64_t k)
{
    snprintf(buf, cap, "key-%012llu", (unsigned long long)k);
}

static int load(struct mc_engine *e, uint64_t n)
{
    struct mc_object_meta m = {0};
    char v[129];
    memset(v, 'v', 128);
    v[128] = 0;
    m.size = 4096;
    m.etag = "0123456789abcdef0123456789abcdef";
    m.content_type = "application/octet-stream";
    struct mc_kv kv = {"v", v};
    m.user_meta = &kv;
    m.n_user_meta = 1;
    enum { BATCH = 1000 };
    static struct mc_op ops[BATCH];
    static struct mc_op_result res[BATCH];
    uint64_t index = 1;
    struct mc_op bc = {0};
    mc_op_bucket_create(&bc, "list", MC_VERSIONING_UNVERSIONED, 1);
    if (mc_engine_apply(e, index++, &bc, 1, NULL, 0, res) || res[0].code) {
        fprintf(stderr, "bucket create: %s\n", mc_engine_last_error());
        return 1;
    }
    mc_op_clear(&bc);
    char key[32];
    for (uint64_t i = 0; i < n;) {
        size_t b = 0;
        for (; b < BATCH && i < n; b++, i++) {
            key_of(key, sizeof(key), i);
            mc_op_put(&ops[b], "list", key, NULL, (int64_t)(i + 1) * 1000, &m);
        }
        int rc = mc_engine_apply(e, index++, ops, b, NULL, 0, res);
        for (size_t j = 0; j < b; j++) {
            if (!rc && res[j].code) {
                rc = res[j].code;
            }
            mc_op_clear(&ops[j]);
        }
        if (rc) {
            fprintf(stderr, "load: %s %s\n", mc_error_name(rc), mc_engine_last_error());
            return 1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *dir = NULL, *mode = "wire", *delim = NULL;
    uint64_t objects = 1000000, pages = 2000, seed = 1;
    int page = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--dir")) {
            dir = argv[i + 1];
        } else if (!strcmp(argv[i], "--objects")) {
            objects = strtoull(argv[i + 1], NULL, 10);
        } else if (!strcmp(argv[i], "--pages")) {
            pages = strtoull(argv[i + 1], NULL, 10);
        } else if (!strcmp(argv[i], "--page")) {
            page = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--mode")) {
            mode = argv[i + 1];
        } else if (!strcmp(argv[i], "--delimiter")) {
            delim = argv[i + 1];
        } else if (!strcmp(argv[i], "--seed")) {
            seed = strtoull(argv[i + 1], NULL, 10);
        } else {
            fprintf(stderr, "unknown flag %s\n", argv[i]);
            return 2;
        }
    }
    bool wire = !strcmp(mode, "wire");
    if (!dir || (!wire && strcmp(mode, "struct")) || page < 1 || objects <= (uint64_t)page) {
        fprintf(stderr, "usage: list_bench --dir D [--objects N] [--pages P] [--page K] "
                        "[--mode wire|struct] [--delimiter C] [--seed S]\n");
        return 2;
    }
    struct stat st;
    bool fresh = stat(dir, &st) != 0;
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .map_size_bytes = 1ull << 30};
    struct mc_engine *e;
    if (mc_engine_open(dir, &o, &e)) {
        fprintf(stderr, "open: %s\n", mc_engine_last_error());
        return 1;
    }
    if (fresh) {
        uint64_t t0 = mc_mono_ns();
        if (load(e, objects)) {
            mc_engine_close(e);
            return 1;
        }
        printf("loaded %llu objects in %.1f s\n", (unsigned long long)objects,
               (double)(mc_mono_ns() - t0) / 1e9);
    }
    /* Warm up: one untimed walk over the whole bucket, so that the map is resident as in a
       serving node and page faults of first touch are not timed. */
    {
        struct mc_list_params p = {.max_keys = 1000};
        struct mc_list_result r;
        char tok[4096] = "";
        do {
            p.continuation_token = tok[0] ? tok : NULL;
            if (mc_engine_list_objects(e, "list", &p, &r)) {
                fprintf(stderr, "warm-up list: %s\n", mc_engine_last_error());
                return 1;
            }
            snprintf(tok, sizeof(tok), "%s",
                     r.next_continuation_token ? r.next_continuation_token : "");
            mc_list_result_clear(&r);
        } while (tok[0]);
    }
    struct mc_rand rng;
    mc_rand_seed(&rng, seed);
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    uint64_t listed = 0, bytes = 0, worst = 0;
    uint64_t t0 = cpu_ns();
    for (uint64_t i = 0; i < pages; i++) {
        char key[32];
        key_of(key, sizeof(key), mc_rand_below(&rng, objects - (uint64_t)page));
        struct mc_list_params p = {.start_after = key, .delimiter = delim, .max_keys = page};
        uint64_t p0 = cpu_ns();
        mc_wbuf_reset(&w);
        int rc;
        if (wire) {
            rc = mc_engine_list_encode(e, "list", &p, false, &w);
        } else {
            struct mc_list_result r;
            rc = mc_engine_list_objects(e, "list", &p, &r);
            if (!rc) {
                rc = mc_list_result_encode(&r, &w);
                listed += r.key_count;
                mc_list_result_clear(&r);
            }
        }
        if (rc) {
            fprintf(stderr, "list: %s %s\n", mc_error_name(rc), mc_engine_last_error());
            return 1;
        }
        uint64_t d = cpu_ns() - p0;
        worst = d > worst ? d : worst;
        bytes += w.len;
    }
    uint64_t ns = cpu_ns() - t0;
    if (wire) { /* count the keys of the last page to check it was full */
        struct mc_list_result r;
        if (mc_list_result_decode(w.data, w.len, &r) == 0) {
            listed = r.key_count * pages;
            mc_list_result_clear(&r);
        }
    }
    printf("mode=%s pages=%llu keys/page=%.0f reply=%.0f B/page cpu=%.1f us/page max=%.1f us\n",
           mode, (unsigned long long)pages, (double)listed / (double)pages,
           (double)bytes / (double)pages, (double)ns / 1e3 / (double)pages, (double)worst / 1e3);
    mc_wbuf_free(&w);
    mc_engine_close(e);
    return 0;
}
