/* client_bench.c: quick client-protocol figures against the engine-backed test server (or any
 * --endpoints): single-connection round-trip latency (p50/p99) and pipelined throughput.
 *   build/client_bench [--endpoints H:P] [--seconds S] [--depth D] [--keys N]          */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "metacenter/client.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/histogram.h"
#include "util/log.h"

static const char *BUCKET = "bench";

struct run {
    struct mc_client *c;
    int keys;
    bool write;
    uint64_t done, errors, submitted;
    uint64_t deadline_ns;
    uint32_t next;
};

static void submit(struct run *r);

static void on_reply(void *arg, const struct mc_client_result *res)
{
    struct run *r = arg;
    r->done++;
    if (res->status != 0) {
        r->errors++;
    }
    if (mc_mono_ns() < r->deadline_ns) {
        submit(r);
    }
}

static void submit(struct run *r)
{
    char key[32];
    snprintf(key, sizeof(key), "key-%08u", r->next++ % (uint32_t)r->keys);
    int rc;
    if (r->write) {
        struct mc_op op = {0};
        struct mc_object_meta m = {.size = 1234, .etag = "0123456789abcdef"};
        mc_op_put(&op, BUCKET, key, NULL, 0, &m);
        rc = mc_client_op_async(r->c, &op, on_reply, r);
        mc_op_clear(&op);
    } else {
        rc = mc_client_get_async(r->c, true, BUCKET, key, NULL, NULL, on_reply, r);
    }
    if (rc != 0) {
        r->errors++;
    } else {
        r->submitted++;
    }
}

static void latency(struct mc_client *c, bool write, int n, int keys)
{
    struct mc_histogram *h = calloc(1, sizeof(*h));
    mc_hist_reset(h);
    char key[32];
    int errors = 0;
    for (int i = 0; i < n; i++) {
        snprintf(key, sizeof(key), "key-%08d", i % keys);
        uint64_t t0 = mc_mono_ns();
        int rc;
        if (write) {
            struct mc_object_meta m = {.size = 1234, .etag = "0123456789abcdef"};
            rc = mc_client_put(c, BUCKET, key, &m, NULL, NULL);
        } else {
            struct mc_version v;
            rc = mc_client_head(c, BUCKET, key, NULL, &v);
            if (rc == 0) {
                mc_version_clear(&v);
            }
        }
        mc_hist_record(h, mc_mono_ns() - t0);
        errors += rc != 0;
    }
    printf("%-5s round trip, 1 connection, %d ops: p50 %.1f us  p99 %.1f us  errors %d\n",
           write ? "put" : "get", n, mc_hist_quantile(h, 0.5) / 1e3,
           mc_hist_quantile(h, 0.99) / 1e3, errors);
    free(h);
}

static void throughput(struct mc_client *c, bool write, int depth, double seconds, int keys)
{
    struct run *r = calloc(1, sizeof(*r));
    r->c = c;
    r->keys = keys;
    r->write = write;
    uint64_t t0 = mc_mono_ns();
    r->deadline_ns = t0 + (uint64_t)(seconds * 1e9);
    for (int i = 0; i < depth; i++) {
        submit(r);
    }
    while (r->done < r->submitted) {
        if (mc_client_poll(c, 100) < 0) {
            break;
        }
    }
    double el = (double)(mc_mono_ns() - t0) / 1e9;
    printf("%-5s pipelined, 1 connection, depth %d: %.0f ops/s (%llu ops in %.2f s, errors %llu)\n",
           write ? "put" : "get", depth, (double)r->done / el, (unsigned long long)r->done, el,
           (unsigned long long)r->errors);
    free(r);
}

int main(int argc, char **argv)
{
    const char *eps = NULL;
    double seconds = 2;
    int depth = 256, keys = 10000, n_lat = 5000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--endpoints") && i + 1 < argc) {
            eps = argv[++i];
        } else if (!strcmp(argv[i], "--seconds") && i + 1 < argc) {
            seconds = atof(argv[++i]);
        } else if (!strcmp(argv[i], "--depth") && i + 1 < argc) {
            depth = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
            keys = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--ops") && i + 1 < argc) {
            n_lat = atoi(argv[++i]);
        } else {
            fprintf(stderr,
                    "usage: %s [--endpoints H:P] [--seconds S] [--depth D] [--keys N] "
                    "[--ops N]\n",
                    argv[0]);
            return 2;
        }
    }
    mc_log_set_level(MC_LOG_WARN);
    struct th_server *s = NULL;
    char dir[] = "/tmp/mc_client_bench_XXXXXX";
    if (!eps) {
        if (!mkdtemp(dir)) {
            return 1;
        }
        struct th_opts o = {.mode = TH_ENGINE, .engine_dir = dir};
        if (th_start(&o, &s) != 0) {
            fprintf(stderr, "cannot start the test server\n");
            return 1;
        }
        eps = th_addr(s);
        printf("engine-backed test server (single node, no Raft, no fsync) on %s\n", eps);
    }
    struct mc_client_opts co;
    mc_client_opts_default(&co);
    co.max_sessions = 256;
    struct mc_client *c;
    if (mc_client_open(eps, &co, &c) != 0) {
        return 1;
    }
    int rc = mc_client_bucket_create(c, BUCKET, MC_VERSIONING_UNVERSIONED);
    if (rc != 0 && rc != MC_EBUCKETEXISTS) {
        fprintf(stderr, "bucket create: %s\n", mc_error_name(rc));
        return 1;
    }
    latency(c, true, n_lat, keys);
    latency(c, false, n_lat, keys);
    throughput(c, true, depth, seconds, keys);
    throughput(c, false, depth, seconds, keys);
    mc_client_close(c);
    if (s) {
        th_stop(s, NULL);
        char cmd[96];
        snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
        if (system(cmd) != 0) {
            return 1;
        }
    }
    return 0;
}
