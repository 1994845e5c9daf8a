/* node_applier.c: a follower applies committed ops entries on a thread of lower CPU priority. */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/*
 * Why. A write is acknowledged once a quorum has it in its WAL (thesis §3.5); applying it matters
 * to the client only on the leader, which answers with the result. A follower's apply is off the
 * commit path, but on the event loop it competes for the CPU with what is on it: receiving the
 * next AppendEntries, handing it to the WAL, sending the ack, and on a box shared by the members
 * with the leader's own loop (issue 8's set-up: three members and the load generator on two
 * cores). Measured in session 15: at 40K writes/s a follower spends ~60% of its CPU applying, and
 * a build where followers skipped the apply cut the median window p99 from 7.6 to 5.2 ms. Here the
 * work is the same, but the kernel runs it after the commit path's threads (nice, default +10).
 *
 * Rules that keep the state machine exact:
 *   - entries are applied in log order, one at a time, by whoever holds apply_mu: the thread,
 *     or the loop when it drains (node_applier_drain) or the queue is full;
 *   - only plain ops entries of a follower with no write of its own waiting are handed over;
 *     any other entry (a membership change, a consistency check, a leader's no-op) is applied
 *     on the loop after a drain, as is everything once the member is no longer a follower;
 *   - applied_index (what snapshots, reads, readyz and compaction go by) advances only over
 *     what is applied, when the loop folds it in, so Raft keeps every handed-over entry in its
 *     log (it compacts only up to what node_snapshot.c reports, <= applied_index);
 *   - before a snapshot, an image copy, an install or a held apply, the loop drains, so the
 *     engine holds exactly applied_index there, as when the loop applied everything itself.
 */
#define APPLY_NICE_MAX 19 /* the flag's range in options.c */

/* Test hook MC_TEST_APPLIER_DELAY_US (1..100000, read at start): the thread sleeps this long
 * before each entry, so a backlog builds and every drain has work (test_applier.py). Unset
 * (production): no sleep. */
#define APPLIER_TEST_DELAY_MAX_US 100000

static void wake_loop_cb(uv_async_t *h)
{
    /* The ready handler (prepare) runs in this loop iteration and folds what finished. */
    (void)h;
}

/* Pop the oldest handed-over entry and apply it, holding apply_mu across both (log order).
 * Returns false when there was nothing to apply (or the thread had failed). */
static bool apply_next(struct node_applier *a)
{
    pthread_mutex_lock(&a->apply_mu);
    pthread_mutex_lock(&a->mu);
    if (a->n == 0 || a->err) {
        pthread_mutex_unlock(&a->mu);
        pthread_mutex_unlock(&a->apply_mu);
        return false;
    }
    struct node_apply_item it = a->q[a->head];
    a->head = (a->head + 1) % NODE_APPLY_QUEUE_MAX;
    a->n--;
    pthread_mutex_unlock(&a->mu);

    int64_t floor = 0;
    int rc = node_apply_ops_entry(it.engine, &it.e, &floor, NULL, NULL);

    pthread_mutex_lock(&a->mu);
    if (rc) {
        a->err = rc;
    } else {
        assert(it.e.index > a->done_index);
        a->done_index = it.e.index;
        a->done_entries++;
        a->done_bytes += it.e.len;
        if (floor > a->op_time_floor) {
            a->op_time_floor = floor;
        }
    }
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_unlock(&a->apply_mu);
    return rc == 0;
}

static void *applier_main(void *arg)
{
    struct mc_node *n = arg;
    struct node_applier *a = &n->applier;
    /* Lower this thread only: raising a nice value needs no privilege, and the loop, the WAL
     * thread and the peer I/O keep theirs. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), (int)n->opts.follower_apply_nice)) {
        MC_WARN("apply_thread_nice_failed", "nice=%llu err=%s",
                (unsigned long long)n->opts.follower_apply_nice, strerror(errno));
    }
    (void)pthread_setname_np(pthread_self(), "mc-apply");
    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (a->n == 0 && !a->stop) {
            pthread_cond_wait(&a->cv, &a->mu);
        }
        bool stop = a->stop;
        pthread_mutex_unlock(&a->mu);
        if (stop) {
            break; /* the loop drained first (node_applier_stop), or the node failed */
        }
        do {
            if (a->test_delay_us) {
                usleep((useconds_t)a->test_delay_us);
            }
        } while (apply_next(a));
        uv_async_send(&a->wake_loop);
    }
    return NULL;
}

int node_applier_start(struct mc_node *n)
{
    struct node_applier *a = &n->applier;
    assert(!a->started);
    if (!n->opts.apply_thread) {
        return 0;
    }
    assert(n->opts.follower_apply_nice <= APPLY_NICE_MAX);
    if (uv_async_init(n->loop, &a->wake_loop, wake_loop_cb) != 0) {
        return MC_ENOMEM;
    }
    a->wake_loop.data = n;
    pthread_mutex_init(&a->apply_mu, NULL);
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    a->head = a->n = 0;
    a->stop = false;
    a->err = 0;
    a->done_index = n->applied_index;
    a->done_entries = a->done_bytes = 0;
    a->op_time_floor = 0;
    a->test_delay_us = mc_test_env_u64("MC_TEST_APPLIER_DELAY_US", APPLIER_TEST_DELAY_MAX_US);
    if (a->test_delay_us) {
        MC_WARN("test_hook_applier_delay",
                "us=%llu (never set MC_TEST_APPLIER_DELAY_US in "
                "production)",
                (unsigned long long)a->test_delay_us);
    }
    if (pthread_create(&a->thread, NULL, applier_main, n) != 0) {
        pthread_cond_destroy(&a->cv);
        pthread_mutex_destroy(&a->mu);
        pthread_mutex_destroy(&a->apply_mu);
        uv_close((uv_handle_t *)&a->wake_loop, NULL);
        return MC_ENOMEM;
    }
    a->started = true;
    return 0;
}

static bool can_hand_over(const struct mc_node *n, const struct mc_raft_entry *e)
{
    return n->applier.started && mc_raft_role(n->raft) == MC_RAFT_FOLLOWER && !n->apply_paused &&
           e->type == MC_RAFT_ENTRY_NORMAL && e->len > 0 && e->data[0] == NODE_ENTRY_OPS &&
           n->head_writes == n->n_writes;
}

int node_apply_committed(struct mc_node *n, const struct mc_raft_entry *e)
{
    struct node_applier *a = &n->applier;
    if (!can_hand_over(n, e)) {
        int rc = node_applier_drain(n);
        return rc ? rc : node_apply_entry(n, e);
    }
    for (;;) {
        pthread_mutex_lock(&a->mu);
        if (a->err) {
            pthread_mutex_unlock(&a->mu);
            return node_applier_fold(n);
        }
        if (a->n < NODE_APPLY_QUEUE_MAX) {
            assert(a->n == 0 ||
                   a->q[(a->head + a->n - 1) % NODE_APPLY_QUEUE_MAX].e.index < e->index);
            a->q[(a->head + a->n) % NODE_APPLY_QUEUE_MAX] =
                (struct node_apply_item){.e = *e, .engine = n->engine};
            a->n++;
            pthread_cond_signal(&a->cv);
            pthread_mutex_unlock(&a->mu);
            return 0;
        }
        pthread_mutex_unlock(&a->mu);
        /* Full: the thread is falling behind (a saturated box). The loop applies the oldest
         * entry itself, one per entry handed over, so the backlog stays bounded and the loop
         * never stalls for more than one entry (plus the one in progress). */
        (void)apply_next(a);
    }
}

int node_applier_fold(struct mc_node *n)
{
    struct node_applier *a = &n->applier;
    if (!a->started) {
        return 0;
    }
    pthread_mutex_lock(&a->mu);
    uint64_t index = a->done_index, entries = a->done_entries, bytes = a->done_bytes;
    int64_t floor = a->op_time_floor;
    int err = a->err;
    a->done_entries = a->done_bytes = 0;
    pthread_mutex_unlock(&a->mu);
    if (entries) {
        mc_metrics_applied_add(entries);
        n->applied_log_bytes += bytes;
    }
    if (index > n->applied_index) {
        n->applied_index = index;
    }
    if (floor > n->last_op_time_ns) {
        n->last_op_time_ns = floor;
    }
    return err;
}

int node_applier_drain(struct mc_node *n)
{
    struct node_applier *a = &n->applier;
    if (!a->started) {
        return 0;
    }
    /* apply_next waits for the thread's entry in progress (apply_mu); the queue is empty and
     * nothing is in progress once it returns false. */
    while (apply_next(a)) {
    }
    int rc = node_applier_fold(n);
    assert(rc || a->n == 0);
    return rc;
}

void node_applier_stop(struct mc_node *n)
{
    struct node_applier *a = &n->applier;
    if (!a->started) {
        return;
    }
    if (!n->fatal) {
        (void)node_applier_drain(n);
    }
    pthread_mutex_lock(&a->mu);
    a->stop = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_cond_destroy(&a->cv);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->apply_mu);
    a->started = false;
}
