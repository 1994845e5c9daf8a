/* test_engine_crash.c: kill -9 a process applying batches; the engine must reopen consistent. */
#include "test_engine_util.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define ROUNDS 24

/* Batch at index i (≥ 2): n(i) puts "r<i>-<j>" plus "counter" with etag = i. Index 1 creates. */
static size_t batch_size(uint64_t i)
{
    return 1 + i % 50;
}

static void build_batch(uint64_t i, struct mc_op *ops, size_t *n)
{
    size_t b = batch_size(i);
    struct mc_object_meta m = {.etag = "e", .size = 1};
    char key[64], etag[32];
    for (size_t j = 0; j < b; j++) {
        snprintf(key, sizeof(key), "r%llu-%zu", (unsigned long long)i, j);
        mc_op_put(&ops[j], "crash", key, NULL, (int64_t)i, &m);
    }
    snprintf(etag, sizeof(etag), "%llu", (unsigned long long)i);
    m.etag = etag;
    mc_op_put(&ops[b], "crash", "counter", NULL, (int64_t)i, &m);
    *n = b + 1;
}

static void child(const char *dir, const char *logpath, int round)
{
    struct mc_engine_options o = {.sync = round % 2 ? MC_ENGINE_SYNC_FULL : MC_ENGINE_SYNC_NONE};
    struct mc_engine *e;
    if (mc_engine_open(dir, &o, &e)) {
        _exit(2);
    }
    uint64_t ai;
    if (mc_engine_applied_index(e, &ai)) {
        _exit(3);
    }
    int logfd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0644);
    struct mc_op ops[64];
    struct mc_op_result res[64];
    for (uint64_t i = ai + 1;; i++) {
        char line[32];
        int ln = snprintf(line, sizeof(line), "%llu\n", (unsigned long long)i);
        /* The log line goes out before the commit: after a kill, applied ∈ {last, last-1}. */
        if (write(logfd, line, (size_t)ln) != ln) {
            _exit(4);
        }
        size_t n;
        if (i == 1) {
            mc_op_bucket_create(&ops[0], "crash", MC_VERSIONING_UNVERSIONED, 1);
            n = 1;
        } else {
            build_batch(i, ops, &n);
        }
        if (mc_engine_apply(e, i, ops, n, NULL, 0, res)) {
            _exit(5);
        }
        for (size_t j = 0; j < n; j++) {
            if (res[j].code) {
                _exit(6);
            }
            mc_op_clear(&ops[j]);
        }
    }
}

static uint64_t last_logged(const char *logpath)
{
    FILE *f = fopen(logpath, "r");
    if (!f) {
        return 0;
    }
    unsigned long long v, last = 0;
    while (fscanf(f, "%llu", &v) == 1) {
        last = v;
    }
    fclose(f);
    return last;
}

static uint64_t count_objects(struct mc_engine *e)
{
    uint64_t total = 0;
    char *tok = NULL;
    for (;;) {
        struct mc_list_params p = {.continuation_token = tok};
        struct mc_list_result r;
        cr_assert_eq(mc_engine_list_objects(e, "crash", &p, &r), 0);
        total += r.n_entries;
        free(tok);
        tok = r.is_truncated ? strdup(r.next_continuation_token) : NULL;
        mc_list_result_clear(&r);
        if (!tok) {
            return total;
        }
    }
}

Test(engine_crash, kill9_during_apply, .timeout = 180)
{
    char dir[256], logpath[300];
    te_mkdtemp(dir, sizeof(dir));
    snprintf(logpath, sizeof(logpath), "%s.log", dir);
    unlink(logpath);
    srand((unsigned)time(NULL));
    uint64_t prev_ai = 0;
    int progressed = 0;
    for (int round = 0; round < ROUNDS; round++) {
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            child(dir, logpath, round);
            _exit(1);
        }
        usleep(20000 + (useconds_t)(rand() % 120000));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        cr_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
                  "child must die by the kill, not by an error (status %d)", st);

        struct mc_engine *e;
        cr_assert_eq(mc_engine_open(dir, NULL, &e), 0, "reopen: %s", mc_engine_last_error());
        uint64_t ai;
        cr_assert_eq(mc_engine_applied_index(e, &ai), 0);
        uint64_t logged = last_logged(logpath);
        cr_assert(ai == logged || ai + 1 == logged, "applied %llu, last logged %llu",
                  (unsigned long long)ai, (unsigned long long)logged);
        cr_assert_geq(ai, prev_ai, "applied_index never goes back");
        progressed += ai > prev_ai;
        prev_ai = ai;
        if (ai >= 2) {
            /* The counter names the last batch; that batch is whole; the next one is absent. */
            struct mc_version v;
            cr_assert_eq(mc_engine_get(e, "crash", "counter", NULL, false, &v), 0);
            cr_assert_eq(strtoull(v.meta.etag, NULL, 10), ai);
            mc_version_clear(&v);
            char key[64];
            for (size_t j = 0; j < batch_size(ai); j++) {
                snprintf(key, sizeof(key), "r%llu-%zu", (unsigned long long)ai, j);
                cr_assert_eq(mc_engine_get(e, "crash", key, NULL, false, &v), 0, "%s", key);
                mc_version_clear(&v);
            }
            snprintf(key, sizeof(key), "r%llu-0", (unsigned long long)ai + 1);
            cr_assert_eq(mc_engine_get(e, "crash", key, NULL, false, &v), MC_ENOKEY);
            uint64_t expect = 1;
            for (uint64_t i = 2; i <= ai; i++) {
                expect += batch_size(i);
            }
            cr_assert_eq(count_objects(e), expect, "exactly the batches ≤ applied_index");
        }
        mc_engine_close(e);
    }
    cr_assert_gt(progressed, ROUNDS / 2, "the child made progress in most rounds");
    te_rmrf(dir);
    unlink(logpath);
}
