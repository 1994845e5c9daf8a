/* test_node_work.c: a fatal stop with a threadpool job still running (src/node/node.c
 * node_queue_work, mc_node_free): the node is freed only once the job has made its last use of
 * it, so the job completes on an intact node (under ASan a use after free fails the test). */
#include "node_test_util.h"

#include "metacenter/error.h"
#include "node/node_internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#define RELEASE_MAX_MS 10000 /* the job waits this long at most for the test's release */
#define JOB_TAIL_MS    300   /* then runs this long: mc_node_free starts meanwhile */
#define FATAL_AFTER_MS 100   /* the node runs this long before the job is queued and it fails */

struct slow_job {
    uv_work_t req;
    struct mc_node *n;
    atomic_bool started, done;
    atomic_bool release;            /* set by the test once uv_run returned: the job may end */
    char seen[MC_DATADIR_PATH_MAX]; /* the node's snap dir, read at the job's end */
    uint64_t end_ms;                /* when the job made its last use of the node */
    bool after_ran;                 /* the after-work callback (never, after a fatal stop) */
};

/* Static: the loop is left as a fatal stop leaves it (serve.c never runs or closes it again). */
static uv_loop_t loop;
static struct slow_job job;
static char dir[128]; /* the test's temp dir, removed by rm_dir even when an assertion fails */

static void rm_dir(void)
{
    if (dir[0]) {
        st_rmtree(dir);
    }
}

/* Worker: runs until the test releases it (after uv_run returned, however long the fatal stop
 * took) and a little longer, then uses the node (its snap_users lock and snap dir, as a chunk
 * read does) and ends, as every job queued through node_queue_work does, with node_work_end. */
static void slow_work(uv_work_t *req)
{
    struct slow_job *j = req->data;
    atomic_store(&j->started, true);
    uint64_t until = mc_mono_ms() + RELEASE_MAX_MS;
    while (!atomic_load(&j->release) && mc_mono_ms() < until) {
        usleep(1000);
    }
    usleep(JOB_TAIL_MS * 1000);
    pthread_mutex_lock(&j->n->snap_users.mu);
    snprintf(j->seen, sizeof(j->seen), "%s", j->n->snapdir);
    pthread_mutex_unlock(&j->n->snap_users.mu);
    j->end_ms = mc_mono_ms();
    atomic_store(&j->done, true);
    node_work_end(j->n);
}

static void slow_after(uv_work_t *req, int status)
{
    (void)status;
    ((struct slow_job *)req->data)->after_ran = true;
}

/* On the loop: queue the job, then a fatal storage error stops the loop at once. */
static void fail_cb(uv_timer_t *t)
{
    struct mc_node *n = t->data;
    job.req.data = &job;
    job.n = n;
    cr_assert_eq(node_queue_work(n, &job.req, slow_work, slow_after), 0);
    node_fatal(n, "test", MC_EIO);
    uv_close((uv_handle_t *)t, NULL);
}

Test(node_work, a_fatal_stop_frees_the_node_only_after_its_running_job_ends, .timeout = 60,
     .fini = rm_dir)
{
    struct mc_node_options o;
    nt_node_options(&o, dir, sizeof(dir));
    cr_assert_eq(uv_loop_init(&loop), 0);
    struct mc_node *n = NULL;
    int rc = mc_node_start(&loop, &o, &n);
    cr_assert_eq(rc, 0, "node start: %s", mc_error_name(rc));
    char snapdir[MC_DATADIR_PATH_MAX];
    snprintf(snapdir, sizeof(snapdir), "%s", n->snapdir);
    uv_timer_t fail;
    cr_assert_eq(uv_timer_init(&loop, &fail), 0);
    fail.data = n;
    cr_assert_eq(uv_timer_start(&fail, fail_cb, FATAL_AFTER_MS, 0), 0);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns at the fatal stop's uv_stop */
    cr_assert(mc_node_fatal(n), "the loop returned without the fatal stop");
    /* The job waits for the release: counted (with any other job of the node), and not done. */
    cr_assert_geq(atomic_load(&n->work_inflight), 1, "the queued job is not counted");
    cr_assert(!atomic_load(&job.done), "the job ended before its release");
    atomic_store(&job.release, true);
    uint64_t t0 = mc_mono_ms();
    mc_node_free(n); /* waits for the job (JOB_TAIL_MS more), then frees what it used */
    uint64_t freed_ms = mc_mono_ms();
    cr_assert(atomic_load(&job.started) && atomic_load(&job.done),
              "mc_node_free returned after %llu ms with the job still running",
              (unsigned long long)(freed_ms - t0));
    cr_assert_leq(job.end_ms, freed_ms);
    cr_assert_str_eq(job.seen, snapdir, "the job saw the node's snap dir as \"%s\"", job.seen);
    cr_assert(!job.after_ran, "the loop ran again after the fatal stop");
}
