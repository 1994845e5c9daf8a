/* wal_bench.c: WAL group-commit throughput and append-to-durable latency with N appender
 * threads. Last line: entries_per_sec=X p99_us=Y. */
#include "metacenter/error.h"
#include "metacenter/storage.h"
#include "util/clock.h"
#include "util/histogram.h"
#include "util/log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct mc_wal *wal;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t durable_cv = PTHREAD_COND_INITIALIZER;
static uint64_t durable; /* under mu */
static uint64_t next_index = 1;
static atomic_bool stop;
static uint32_t entry_bytes = 256;

static void on_durable(void *ctx, const struct mc_wal_progress *p)
{
    (void)ctx;
    pthread_mutex_lock(&mu);
    if (p->durable_index > durable) {
        durable = p->durable_index;
    }
    pthread_cond_broadcast(&durable_cv);
    pthread_mutex_unlock(&mu);
}

struct worker {
    pthread_t th;
    struct mc_histogram hist;
    uint64_t done;
};

static void *appender(void *arg)
{
    struct worker *wk = arg;
    uint8_t *payload = malloc(entry_bytes + 1);
    memset(payload, 0xab, entry_bytes);
    while (!atomic_load(&stop)) {
        pthread_mutex_lock(&mu);
        uint64_t idx = next_index;
        struct mc_wal_record r = {.index = idx, .term = 1, .len = entry_bytes, .data = payload};
        uint64_t t0 = mc_mono_ns();
        int rc;
        while ((rc = mc_wal_append(wal, &r, 1, NULL, NULL)) == MC_EBUSY) {
            pthread_mutex_unlock(&mu);
            usleep(20);
            pthread_mutex_lock(&mu);
            idx = next_index;
            r.index = idx;
        }
        if (rc) {
            fprintf(stderr, "append: %s\n", mc_error_name(rc));
            exit(1);
        }
        next_index++;
        while (durable < idx) {
            pthread_cond_wait(&durable_cv, &mu);
        }
        pthread_mutex_unlock(&mu);
        mc_hist_record(&wk->hist, (mc_mono_ns() - t0) / 1000);
        wk->done++;
    }
    free(payload);
    return NULL;
}

int main(int argc, char **argv)
{
    int appenders = 1;
    double seconds = 3;
    const char *dir_arg = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--appenders")) {
            appenders = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--entry-bytes")) {
            entry_bytes = (uint32_t)atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--seconds")) {
            seconds = atof(argv[i + 1]);
        } else if (!strcmp(argv[i], "--dir")) {
            dir_arg = argv[i + 1];
        } else {
            fprintf(stderr,
                    "usage: wal_bench --appenders N --entry-bytes B --seconds S [--dir D]\n");
            return 2;
        }
    }
    if (appenders < 1 || appenders > 1024) {
        fprintf(stderr, "appenders must be 1..1024\n");
        return 2;
    }
    mc_log_set_level(MC_LOG_WARN);
    char dir[256];
    if (dir_arg) {
        snprintf(dir, sizeof(dir), "%s", dir_arg);
    } else {
        snprintf(dir, sizeof(dir), "/tmp/mc_wal_bench_XXXXXX");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            return 2;
        }
    }
    struct mc_wal_options o = {.wal_dir = dir, .on_durable = on_durable};
    int rc = mc_wal_open(&o, &wal);
    if (rc) {
        fprintf(stderr, "open: %s\n", mc_error_name(rc));
        return 1;
    }
    next_index = mc_wal_last_index(wal) + 1;
    durable = next_index - 1;
    mc_wal_sync(wal);
    usleep(100000); /* let the spare segment be prepared */
    struct worker *ws = calloc((size_t)appenders, sizeof(*ws));
    struct mc_wal_stats s0, s1;
    mc_wal_get_stats(wal, &s0);
    uint64_t t0 = mc_mono_ns();
    for (int i = 0; i < appenders; i++) {
        mc_hist_reset(&ws[i].hist);
        pthread_create(&ws[i].th, NULL, appender, &ws[i]);
    }
    usleep((useconds_t)(seconds * 1e6));
    atomic_store(&stop, true);
    struct mc_histogram all;
    mc_hist_reset(&all);
    uint64_t total = 0;
    for (int i = 0; i < appenders; i++) {
        pthread_join(ws[i].th, NULL);
        mc_hist_merge(&all, &ws[i].hist);
        total += ws[i].done;
    }
    double el = (double)(mc_mono_ns() - t0) / 1e9;
    mc_wal_get_stats(wal, &s1);
    mc_wal_close(wal);
    if (!dir_arg) {
        mc_fs_remove_tree(NULL, dir);
    }
    double eps = (double)total / el;
    printf("appenders=%d entry_bytes=%u seconds=%.2f entries=%llu\n", appenders, entry_bytes, el,
           (unsigned long long)total);
    printf("entries/s=%.0f fsyncs/s=%.0f entries/fsync=%.1f groups=%llu\n", eps,
           (double)(s1.fdatasyncs - s0.fdatasyncs) / el,
           (double)total / (double)(s1.fdatasyncs - s0.fdatasyncs + 1),
           (unsigned long long)(s1.groups - s0.groups));
    printf("latency_us p50=%llu p99=%llu p999=%llu max=%llu\n",
           (unsigned long long)mc_hist_quantile(&all, 0.50),
           (unsigned long long)mc_hist_quantile(&all, 0.99),
           (unsigned long long)mc_hist_quantile(&all, 0.999), (unsigned long long)all.max);
    printf("entries_per_sec=%.0f p99_us=%llu\n", eps,
           (unsigned long long)mc_hist_quantile(&all, 0.99));
    free(ws);
    return 0;
}
