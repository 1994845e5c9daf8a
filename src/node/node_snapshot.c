/* node_snapshot.c: snapshots: periodic creation off the loop, streaming to followers in
 * resumable chunks, receiving and installing them (Raft thesis §5.1 log compaction). */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/codec.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SNAP_CHUNK_HEADER  32 /* u64 index, u64 term, u64 offset, u64 total */
#define SNAP_ACK_DONE      1
#define SNAP_ACK_RESEND    2
#define SNAP_ACK_FAILED    3
#define SNAP_SEND_STALL_MS 30000
#define MC_SNAPSHOT_NICE   19    /* snapshot creation yields the CPU to the event loops */
#define SNAP_IMAGE_WAIT_MS 30000 /* periodic compaction pauses this long for a wanted image */
#define LEADER_IMAGE_DEFER 4     /* a leader's periodic images come this many intervals apart */

static void start_recv_job(struct mc_node *n);

/* ---- creation ----
 *
 * Two kinds of snapshot file. A periodic snapshot is a header-only file recording (index,
 * term, membership): it bounds the log Raft holds in memory and is where a restart begins. It
 * neither copies nor syncs the engine, and it does not shorten the WAL. An engine image (the
 * header plus a consistent LMDB copy made under a read transaction while writes go on, written
 * in synced steps) is made every --image-entries entries or --image-log-mb MiB, for a follower
 * behind the log start, and for `snapshot save`; the WAL is compacted only up to the newest
 * image. Why: the engine runs without fsync, so after a power loss data.mdb may be torn or old,
 * and node_recover.c rebuilds it from that image plus the WAL after it. (Session 3 synced the
 * engine at every header-only snapshot and compacted the WAL there; an msync racing the loop's
 * commits is not crash-consistent, and the writeback made the next applies fault on every page
 * they touched: the open-loop write tail of issue 8.)
 */

struct snap_job {
    struct mc_node *n;
    bool image; /* write the engine image (else header only) */
    uint64_t index, term;
    uint64_t log_mark; /* node->applied_log_bytes when the job started */
    struct mc_raft_conf conf;
    struct mc_wbuf blob;
    struct mc_snap_info info;
    int rc;
    /* image: the copy thread, started on the loop (start_copy) */
    pthread_t copy_th;
    int copy_in, copy_out; /* pipe: the worker reads copy_in; the copy thread writes copy_out */
    int copy_rc;
    _Atomic int copy_tid;
    uv_timer_t copy_wait; /* loop: polls copy_in for the copy's first bytes (start_copy) */
    uint64_t copy_wait_t0_ns;
    bool copy_abandon; /* its first bytes did not come in time: the index it holds is unknown */
};

/* Test hook: with MC_TEST_SNAP_COPY_START_DELAY_MS=N (1..60000) in the environment, the image
 * copy starts N ms late (as a copy on a cold cache does), to check the loop keeps serving
 * meanwhile (test/integration/test_recovery.py). */
static unsigned copy_start_delay_ms(void)
{
    return (unsigned)mc_test_env_u64("MC_TEST_SNAP_COPY_START_DELAY_MS", 60000);
}

static void *copy_main(void *arg)
{
    struct snap_job *j = arg;
    atomic_store(&j->copy_tid, (int)syscall(SYS_gettid));
    unsigned delay_ms = copy_start_delay_ms();
    if (delay_ms) {
        usleep(delay_ms * 1000u);
    }
    j->copy_rc = mc_engine_copy_to_fd(j->n->engine, j->copy_out, NULL);
    close(j->copy_out);
    return NULL;
}

/* Worker: the data is all read (or the pipe closed): join the copy thread. */
static int finish_copy(void *ctx)
{
    struct snap_job *j = ctx;
    pthread_join(j->copy_th, NULL);
    return j->copy_rc;
}

/*
 * Loop: start the engine copy, and apply nothing until its first bytes arrive, so the image
 * holds exactly n->applied_index. The copy (mdb_env_copyfd2) opens its own read transaction and
 * writes nothing before it has; the loop is the only thread that applies, and it applies nothing
 * until then (n->apply_paused: committed entries are held, node_ready.c), so that transaction
 * sees the state at j->index. Without this the copy held a newer state than its header's index,
 * and a node restarting from it (or a follower that installed it) had an engine ahead of its log
 * (node.c refuses that). The loop itself never blocks on the copy: LMDB's compacting copy fills
 * a 1 MiB buffer before its first write (a few ms; seconds on a cold cache), and a blocked loop
 * sends no heartbeats (election timeout ~0.5-1 s). A timer polls the pipe every millisecond;
 * persisting, acks, heartbeats and elections go on. After SNAP_COPY_START_MS without a byte
 * (or at stop) the image is given up, applying resumes, and the next image waits a backoff
 * (image_backoff). Labelling the file afterwards with the index the copy read instead would
 * need that index out of the stream, and the term and membership at it from Raft on the loop.
 */
#define SNAP_COPY_START_MS     3000   /* under the 5 s client and read timeouts (applies pause) */
#define SNAP_IMAGE_BACKOFF_MS  10000  /* first wait after a given-up image; doubles */
#define SNAP_IMAGE_BACKOFF_MAX 300000 /* ... up to this */

static void snap_work(uv_work_t *req);
static void snap_done(uv_work_t *req, int status);

/* Test hook: with MC_TEST_IMAGE_BACKOFF_MS=N (1..SNAP_IMAGE_BACKOFF_MAX) in the environment, the
 * first wait after a given-up image is N ms instead of SNAP_IMAGE_BACKOFF_MS (it doubles from
 * there as usual), so a test sees the retry within seconds (test/integration/test_recovery.py).
 * Never set in production. Unset: 0. */
static uint64_t image_backoff_first_ms(void)
{
    static _Atomic int64_t ms = -1; /* -1: not read yet */
    uint64_t v = mc_test_hook_u64(&ms, "MC_TEST_IMAGE_BACKOFF_MS", SNAP_IMAGE_BACKOFF_MAX,
                                  "test_hook_image_backoff");
    return v ? v : SNAP_IMAGE_BACKOFF_MS;
}

/* Test hook: with MC_TEST_IMAGE_FAIL_FIRST=N (1..1000) in the environment, the first N engine
 * images this process tries fail at their start (MC_EIO, nothing copied or written), as one that
 * cannot get a pipe or a thread does, to check the retry after the backoff. Loop thread only.
 * Never set in production. Unset: no image fails so. */
static bool image_test_fail(void)
{
    static int64_t left = -1; /* -1: not read yet */
    if (left < 0) {
        left = (int64_t)mc_test_env_u64("MC_TEST_IMAGE_FAIL_FIRST", 1000);
        if (left) {
            MC_WARN("test_hook_image_fail_first",
                    "n=%lld (never set MC_TEST_IMAGE_FAIL_FIRST in production)", (long long)left);
        }
    }
    if (left == 0) {
        return false;
    }
    left--;
    return true;
}

/* An image failed (could not start, was given up at its start, or failed later: ENOSPC...):
 * wait before pausing applies and copying the whole engine for one again. */
static void image_backoff(struct mc_node *n)
{
    uint64_t b = n->image_backoff_ms ? n->image_backoff_ms * 2 : image_backoff_first_ms();
    n->image_backoff_ms = b < SNAP_IMAGE_BACKOFF_MAX ? b : SNAP_IMAGE_BACKOFF_MAX;
    n->image_retry_ms = node_now_ms() + n->image_backoff_ms;
}

static void copy_wait_closed(uv_handle_t *h)
{
    struct snap_job *j = h->data;
    struct mc_node *n = j->n;
    n->snap_work.data = j;
    if (node_queue_work(n, &n->snap_work, snap_work, snap_done) != 0) {
        close(j->copy_in); /* the copy gets EPIPE and ends */
        pthread_join(j->copy_th, NULL);
        j->copy_in = -1;
        n->snapshot_running = false;
        MC_WARN("snapshot_failed", "index=%llu err=%s", (unsigned long long)j->index,
                mc_error_name(MC_EIO));
        mc_wbuf_free(&j->blob);
        free(j);
        node_snapshot_unblocked(n);
    }
}

static void copy_wait_cb(uv_timer_t *t)
{
    struct snap_job *j = t->data;
    struct mc_node *n = j->n;
    struct pollfd p = {.fd = j->copy_in, .events = POLLIN};
    int r = poll(&p, 1, 0);
    uint64_t waited_ms = (mc_mono_ns() - j->copy_wait_t0_ns) / 1000000;
    if (r == 0 && waited_ms < SNAP_COPY_START_MS && !n->stopping) {
        return;
    }
    /* r > 0: data or the copy's end (an error closes the pipe): its transaction is open, or
     * it failed (the worker reports copy_rc). */
    j->copy_abandon = r <= 0;
    n->apply_paused = false;
    if (j->copy_abandon) {
        MC_WARN("snapshot_image_given_up", "index=%llu waited_ms=%llu reason=%s",
                (unsigned long long)j->index, (unsigned long long)waited_ms,
                n->stopping ? "stopping" : "copy_start_timeout");
    } else {
        MC_DEBUG("snapshot_copy_started", "index=%llu wait_ms=%llu", (unsigned long long)j->index,
                 (unsigned long long)waited_ms);
    }
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, copy_wait_closed);
}

static int start_copy(struct mc_node *n, struct snap_job *j)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        return MC_EIO;
    }
    (void)fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20); /* fewer wakeups; the default 64 KiB also works */
    j->copy_in = pfd[0];
    j->copy_out = pfd[1];
    if (uv_timer_init(n->loop, &j->copy_wait) != 0) {
        goto fail;
    }
    j->copy_wait.data = j;
    if (pthread_create(&j->copy_th, NULL, copy_main, j) != 0) {
        uv_close((uv_handle_t *)&j->copy_wait, NULL); /* closes at once: never started */
        goto fail;
    }
    j->copy_wait_t0_ns = mc_mono_ns();
    n->apply_paused = true;
    uv_timer_start(&j->copy_wait, copy_wait_cb, 1, 1);
    return 0;
fail:
    close(pfd[0]);
    close(pfd[1]);
    j->copy_in = -1;
    return MC_ENOMEM;
}

static void snap_work(uv_work_t *req)
{
    struct snap_job *j = req->data;
    /* Background work: every replica compacts at about the same index, and on a small machine
     * an image copy competes with the event loops for the CPU. Linux nice is per thread (and
     * inherited by the copy's helper threads). The thread stays niced after the job: the pool
     * runs snapshot jobs (creation, finishing a received image, chunk reads for a send or a
     * save: node_chunk_read.c) and consistency-check hashes (node_check.c), all background
     * work, so one of those landing here runs niced too (accepted: docs/operations.md). */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), MC_SNAPSHOT_NICE);
    if (j->image && j->copy_abandon) {
        close(j->copy_in); /* the copy gets EPIPE at its first write and ends */
        j->copy_in = -1;
        pthread_join(j->copy_th, NULL);
        j->rc = MC_EBUSY;
        node_work_end(j->n);
        return;
    }
    if (j->image) {
        int tid = atomic_load(&j->copy_tid); /* started at nice 0 on the loop: yield now */
        if (tid > 0) {
            (void)setpriority(PRIO_PROCESS, (id_t)tid, MC_SNAPSHOT_NICE);
        }
        j->rc = mc_snap_create_from_pipe(j->n->snapdir, NULL, j->index, j->term, j->blob.data,
                                         j->blob.len, j->copy_in, finish_copy, j, &j->info);
        j->copy_in = -1;
    } else {
        j->rc = mc_snap_create(j->n->snapdir, NULL, j->index, j->term, j->blob.data, j->blob.len,
                               NULL, NULL, &j->info);
    }
    if (j->rc == 0) {
        node_snap_prune(j->n);
    }
    node_work_end(j->n);
}

static void snap_done(uv_work_t *req, int status)
{
    struct snap_job *j = req->data;
    struct mc_node *n = j->n;
    n->snapshot_running = false;
    if (status == 0 && j->rc == 0 && !n->stopping) {
        int rc = mc_raft_snapshot_taken(n->raft, j->index, j->term, &j->conf);
        if (rc == 0) {
            n->last_snapshot_index = j->index;
            /* What was applied while the job ran counts toward the next snapshot. */
            n->snapshot_log_mark = j->log_mark;
            n->snapshot_size_bytes = j->info.file_size;
            if (j->image) {
                n->last_image_index = j->index;
                n->image_log_mark = j->log_mark;
                n->imaged_since_start = true;
                n->image_as_leader = false;
                n->image_backoff_ms = 0;
                n->save.made_index = j->index;
                n->save.made_ms = node_now_ms();
            }
            /* The WAL keeps every entry after the newest image (node_recover.c), plus the
             * catch-up tail. */
            uint64_t keep = n->opts.snapshot_tail_entries;
            if (n->last_image_index > keep) {
                mc_wal_compact(n->wal, n->last_image_index - keep, NULL);
            }
            MC_INFO("snapshot_created", "index=%llu term=%llu bytes=%llu image=%d",
                    (unsigned long long)j->index, (unsigned long long)j->term,
                    (unsigned long long)j->info.file_size, j->image);
        }
    } else if (j->rc) {
        MC_WARN("snapshot_failed", "index=%llu err=%s", (unsigned long long)j->index,
                mc_error_name(j->rc));
        if (j->image) {
            image_backoff(n);
        }
    }
    mc_wbuf_free(&j->blob);
    free(j);
    node_snapshot_unblocked(n); /* no copy reads the engine now */
}

static int start_job(struct mc_node *n, uint64_t index, bool image)
{
    struct snap_job *j = calloc(1, sizeof(*j));
    if (!j) {
        return MC_ENOMEM;
    }
    j->n = n;
    j->image = image;
    j->index = index;
    j->term = mc_raft_term_at(n->raft, index);
    int rc = mc_raft_conf_at(n->raft, index, &j->conf);
    mc_wbuf_init(&j->blob, MC_SNAP_MEMBERSHIP_MAX_BYTES);
    if (rc == 0) {
        rc = node_conf_encode(n, &j->conf, &j->blob);
    }
    if (rc || j->term == 0) {
        mc_wbuf_free(&j->blob);
        free(j);
        return rc ? rc : MC_EINVAL;
    }
    j->log_mark = n->applied_log_bytes;
    j->copy_in = -1;
    if (image) {
        /* Before the copy's read txn (engine.h). Not while a check hash reads: a growth would
         * wait for it on the loop (its start reserved room already: node_check.c). */
        if (!node_check_hashing(n)) {
            mc_engine_reserve_map(n->engine);
        }
        rc = start_copy(n, j);
        if (rc) {
            mc_wbuf_free(&j->blob);
            free(j);
            return rc;
        }
        MC_INFO("snapshot_image_start", "index=%llu role=%s", (unsigned long long)index,
                mc_raft_role_name(mc_raft_role(n->raft)));
        n->snapshot_running = true; /* the work is queued once the copy started (above) */
        return 0;
    }
    n->snapshot_running = true;
    n->snap_work.data = j;
    rc = node_queue_work(n, &n->snap_work, snap_work, snap_done);
    if (rc) {
        n->snapshot_running = false;
        mc_wbuf_free(&j->blob);
        free(j);
        return MC_EIO;
    }
    return 0;
}

/* A snapshot job at index. An image that cannot start (no memory, no pipe or thread) backs off
 * as a failed one does (snap_done), and says so once: its callers would otherwise try again at
 * every ready loop. A header-only one is tried again at the next loop, as before. */
static int start_snapshot(struct mc_node *n, uint64_t index, bool image)
{
    int rc = image && image_test_fail() ? MC_EIO : start_job(n, index, image);
    if (rc && image) {
        image_backoff(n);
        MC_WARN("snapshot_failed", "index=%llu err=%s image=1 role=%s retry_in_ms=%llu",
                (unsigned long long)index, mc_error_name(rc),
                mc_raft_role_name(mc_raft_role(n->raft)), (unsigned long long)n->image_backoff_ms);
    }
    return rc;
}

/* An engine image at the current applied index, for a follower or `snapshot save`; until one is
 * being sent (or SNAP_IMAGE_WAIT_MS passed), periodic compaction waits, so raft's snapshot index
 * stays the image's and the retried send finds it. The copy starts in node_maybe_snapshot, never
 * here: `snapshot save` asks from the I/O phase, where a SNAPSHOT message stepped just before
 * has its install still to come (the next node_process_ready), and that install closes the
 * engine the copy's read transaction would be reading (see node_install_snapshot). */
static void want_image(struct mc_node *n)
{
    if (!n->snapshot_image_wanted_ms) {
        n->snapshot_image_wanted_ms = node_now_ms();
    }
    n->image_asked = true;
}

static bool sending_image(const struct mc_node *n)
{
    for (int i = 0; i < MC_RAFT_MAX_NODES; i++) {
        if (n->sends[i].active) {
            return true;
        }
    }
    return n->save.active;
}

/* Where in the image interval this member's first periodic image after start falls, as a
 * fraction of it: id × the golden ratio, mod 1, spreads any set of ids over the interval
 * (ids 1, 2, 3 → 0.62, 0.24, 0.85). Every member applies the same log, so without it members
 * started together would copy their engines at the same index, on a small machine at the same
 * moment (docs/benchmarks.md, session 13). */
static double image_phase(uint64_t node_id)
{
    double x = (double)node_id * 0.6180339887498949;
    return x - (double)(uint64_t)x;
}

/* Is a periodic engine image due? One every --image-entries entries, or once the log since the
 * last one is larger than --image-log-mb and than twice the engine: an image costs a copy of the
 * whole engine, and while it runs LMDB cannot reuse freed pages (docs/benchmarks.md, session 4),
 * so at most one engine's worth of image is written per two of log.
 * - Until its first image after start, a member counts image_phase() of an interval as already
 *   done, so the members of a cluster take turns.
 * - A leader of a cluster with other voters waits LEADER_IMAGE_DEFER intervals: its copy stalls
 *   the commit path of every write (a follower's only its own acks, and the other follower acks;
 *   docs/benchmarks.md, session 11: ~80-120 ms of a 6 s window's p99 against ~10-40). The cost
 *   is that much more WAL on its disk and to replay at its restart. When its image falls due it
 *   hands leadership off first (handoff_before_image). An image a follower or a save needs is
 *   made at once (want_image), whatever this says. */
static bool periodic_image_due(const struct mc_node *n)
{
    const struct mc_raft_conf *conf = mc_raft_conf(n->raft);
    uint64_t scale = 1;
    if (mc_raft_role(n->raft) == MC_RAFT_LEADER && conf->n_voters > 1) {
        scale = LEADER_IMAGE_DEFER;
    }
    uint64_t used = mc_engine_used_bytes(n->engine);
    uint64_t log_floor = n->opts.image_log_mb << 20;
    uint64_t interval_entries = n->opts.image_entries;
    uint64_t interval_bytes = log_floor > 2 * used ? log_floor : 2 * used;
    uint64_t since_entries = n->applied_index - n->last_image_index;
    uint64_t since_bytes = n->applied_log_bytes - n->image_log_mark;
    if (!n->imaged_since_start) {
        double phase = image_phase(n->opts.node_id);
        since_entries += (uint64_t)(phase * (double)interval_entries);
        since_bytes += (uint64_t)(phase * (double)interval_bytes);
    }
    return since_entries >= interval_entries * scale || since_bytes >= interval_bytes * scale;
}

/* A leader's periodic image is the one stall every write waits on (its copy's read transaction
 * pins LMDB's free pages, so each commit takes fresh pages of the map; docs/benchmarks.md,
 * sessions 11 and 13: ~0.6 s of write tail against a few ms for a leader change). So when it
 * falls due, the leader hands leadership to its most caught-up voter heard from within an
 * election timeout (node_best_transferee; thesis §3.10: the target is caught up, then told to
 * campaign at once) and makes the image as a follower; until then only header-only snapshots
 * are taken. If no voter was heard from, the image is made as leader at once; if leadership has
 * not moved after two election timeouts, it is made as leader all the same (image_as_leader),
 * so the WAL stays bounded by LEADER_IMAGE_DEFER intervals plus that wait. An image that fails
 * after a hand-off is made again after the backoff, in whatever role, without another hand-off.
 * Returns true while an image waits for a hand-off, started now or earlier. */
static bool handoff_before_image(struct mc_node *n)
{
    if (n->image_after_handoff) {
        return true;
    }
    const struct mc_raft_conf *conf = mc_raft_conf(n->raft);
    if (!n->opts.image_handoff || n->image_as_leader || mc_raft_role(n->raft) != MC_RAFT_LEADER ||
        conf->n_voters < 2) {
        return false;
    }
    uint64_t to = node_best_transferee(n);
    int rc = to ? mc_raft_transfer_leader(n->raft, to) : MC_ENOMEMBER;
    if (rc) {
        MC_WARN("image_handoff_failed", "to=%llu err=%s reason=\"%s: the image is made as leader\"",
                (unsigned long long)to, mc_error_name(rc),
                to ? "the transfer did not start"
                   : "no voter heard from within an election timeout");
        n->image_as_leader = true;
        return false;
    }
    MC_INFO("image_handoff", "to=%llu applied=%llu", (unsigned long long)to,
            (unsigned long long)n->applied_index);
    mc_metrics_image_handoff();
    n->image_after_handoff = true;
    n->handoff_deadline_ms = node_now_ms() + 2 * n->opts.election_timeout_ms;
    return true;
}

/* The image a hand-off was for: as soon as this member is no longer the leader, or at the
 * deadline if it still is. Returns true when it started it. */
static bool image_after_handoff(struct mc_node *n)
{
    uint64_t now = node_now_ms();
    bool leader = mc_raft_role(n->raft) == MC_RAFT_LEADER;
    if ((leader && now < n->handoff_deadline_ms) || n->snapshot_running || n->stopping ||
        n->fatal || now < n->image_retry_ms) {
        return false;
    }
    if (leader) {
        MC_WARN("image_handoff_timeout",
                "applied=%llu reason=\"leadership did not move: the image is made as leader\"",
                (unsigned long long)n->applied_index);
    }
    n->image_after_handoff = false;
    /* Leadership was handed off (or tried) for this image: if it fails, the retry after the
     * backoff is made in whatever role this member has then, without another hand-off. */
    n->image_as_leader = true;
    start_snapshot(n, n->applied_index, true);
    return true;
}

void node_maybe_snapshot(struct mc_node *n)
{
    /* Called after node_process_ready's ready loop: any install Raft handed out has run, and no
     * SNAPSHOT message is stepped while a job runs (node_snapshot_received). Asked once: the asker
     * (a retried send or save) asks again if it could not start now. */
    if (n->image_asked) {
        n->image_asked = false;
        if (!n->snapshot_running && !n->stopping && !n->fatal && n->applied_index > 0 &&
            node_now_ms() >= n->image_retry_ms) {
            start_snapshot(n, n->applied_index, true);
            return;
        }
    }
    if (n->image_after_handoff && image_after_handoff(n)) {
        return;
    }
    if (n->snapshot_running || n->stopping || n->fatal ||
        n->applied_index <= n->last_snapshot_index ||
        (n->applied_index < n->last_snapshot_index + n->opts.snapshot_entries &&
         n->applied_log_bytes - n->snapshot_log_mark < (n->opts.snapshot_log_mb << 20))) {
        return;
    }
    if (n->snapshot_image_wanted_ms &&
        node_now_ms() - n->snapshot_image_wanted_ms < SNAP_IMAGE_WAIT_MS) {
        return;
    }
    n->snapshot_image_wanted_ms = 0;
    /* No snapshot while an image is sent or saved. This first kept a streamed file from a
     * prune, which now skips files in use (mc_snap_prune_opts.in_use); it stays so raft's
     * snapshot index remains the streamed image's while the send runs (want_image). */
    if (sending_image(n)) {
        return;
    }
    bool image = periodic_image_due(n) && node_now_ms() >= n->image_retry_ms; /* else header-only */
    if (image && handoff_before_image(n)) {
        image = false;
    }
    start_snapshot(n, n->applied_index, image);
}

/* ---- sending (leader) ---- */

static struct snap_send *find_send(struct mc_node *n, uint64_t to)
{
    for (int i = 0; i < MC_RAFT_MAX_NODES; i++) {
        if (n->sends[i].active && n->sends[i].to == to) {
            return &n->sends[i];
        }
    }
    return NULL;
}

static void end_send(struct mc_node *n, struct snap_send *s)
{
    s->active = false;
    node_chunk_reader_end(n, &s->reader);
}

static void finish_send(struct mc_node *n, struct snap_send *s, bool ok)
{
    MC_INFO(ok ? "snapshot_sent" : "snapshot_send_failed", "to=%llu index=%llu bytes=%llu",
            (unsigned long long)s->to, (unsigned long long)s->index, (unsigned long long)s->total);
    end_send(n, s);
    if (ok) {
        mc_metrics_snapshot_sent();
    }
    mc_raft_report_snapshot(n->raft, s->to, ok);
}

void node_start_snapshot_send(struct mc_node *n, const struct mc_raft_msg *m)
{
    struct snap_send *s = find_send(n, m->to);
    if (s && s->index == m->snapshot.index) {
        return; /* already streaming this one */
    }
    if (!s) {
        for (int i = 0; i < MC_RAFT_MAX_NODES && !s; i++) {
            if (!n->sends[i].active) {
                s = &n->sends[i];
            }
        }
    }
    if (!s) {
        mc_raft_report_snapshot(n->raft, m->to, false);
        return;
    }
    /* Header only: the data is checked as it is streamed (pump_one), not read whole here on the
     * event loop (issue 8: ~640 MB at 1M objects held the loop for over a second). */
    uint64_t t0 = mc_mono_ns();
    struct mc_snap_info *info = malloc(sizeof(*info));
    int rc = info ? mc_snap_latest_header(n->snapdir, true, info) : MC_ENOMEM;
    uint64_t lookup_us = (mc_mono_ns() - t0) / 1000;
    if (rc || info->index != m->snapshot.index || info->term != m->snapshot.term ||
        info->data_size == 0) {
        /* No image at raft's snapshot index (compaction points are header-only): make one;
         * raft retries the send after the next heartbeat and then finds it. */
        if (!n->snapshot_image_wanted_ms) {
            MC_INFO("snapshot_image_needed", "to=%llu index=%llu err=%s", (unsigned long long)m->to,
                    (unsigned long long)m->snapshot.index, mc_error_name(rc ? rc : MC_ENOTFOUND));
        }
        want_image(n);
        free(info);
        mc_raft_report_snapshot(n->raft, m->to, false);
        return;
    }
    struct mc_snap_verify *verify = NULL;
    if (mc_snap_verify_new(info, &verify)) {
        free(info);
        mc_raft_report_snapshot(n->raft, m->to, false);
        return;
    }
    n->snapshot_image_wanted_ms = 0;
    node_chunk_reader_end(n, &s->reader); /* a send of an older index to the same follower */
    memset(s, 0, sizeof(*s));
    s->reader.verify = verify;
    s->active = true;
    s->to = m->to;
    s->index = info->index;
    s->term = info->term;
    s->total = info->file_size;
    snprintf(s->path, sizeof(s->path), "%s", info->path);
    s->started_ms = node_now_ms();
    s->raft_msg = *m;
    s->raft_msg.entries = NULL;
    s->raft_msg.n_entries = 0;
    free(info);
    MC_INFO("snapshot_send_started", "to=%llu index=%llu bytes=%llu lookup_us=%llu",
            (unsigned long long)s->to, (unsigned long long)s->index, (unsigned long long)s->total,
            (unsigned long long)lookup_us);
}

/* The image being streamed failed its data checksum: set it aside so no later lookup returns
 * it, and make a fresh one (the retried send or save then finds that). */
static void image_corrupt(struct mc_node *n, const char *path, const struct mc_snap_verify *v)
{
    mc_snap_set_aside(path, v);
    want_image(n);
}

static void send_chunk_read(struct mc_node *n, void *arg, const struct chunk_read *c);

/* Queue the next chunk's read when the link may take it (NODE_SNAP_SEND_WINDOW); a chunk read
 * is sent by send_chunk_read, which pumps again. Reads run on the threadpool: node_chunk_read.c. */
static void pump_one(struct mc_node *n, struct snap_send *s)
{
    if (!mc_peer_connected(n->peers, s->to)) {
        mc_peer_send(n->peers, s->to, MC_PEER_SNAP_ACK, NULL, 0); /* starts connecting */
        /* A send at its end waits only for the DONE, which a dropped link will not bring: the
         * follower restarted or stopped (forgetting a DONE it held back for a hash: snap_held),
         * or the end chunk was lost with the link. End it now, so Raft sends again after its
         * next probe (a restarted follower resumes or skips it), not after the stall (rev18 H2). */
        if (s->data_done || node_now_ms() - s->started_ms > SNAP_SEND_STALL_MS) {
            /* Hold compaction off as want_image does (rev18b R1), so raft's snapshot index stays
             * this image's and the retried send finds it (else a header-only snapshot due
             * meanwhile would cost a whole new image, sent whole). */
            if (s->data_done && !n->snapshot_image_wanted_ms) {
                n->snapshot_image_wanted_ms = node_now_ms();
            }
            finish_send(n, s, false);
        }
        return;
    }
    if (node_chunk_reading(&s->reader) || s->data_done ||
        mc_peer_pending_bytes(n->peers, s->to) >= NODE_SNAP_SEND_WINDOW) {
        return;
    }
    if (node_chunk_read_start(n, &s->reader, s->path, s->offset, SNAP_CHUNK_HEADER,
                              NODE_SNAP_CHUNK_BYTES, send_chunk_read, s) != 0) {
        finish_send(n, s, false);
    }
}

/* Loop: a chunk of s's image was read and checked (only while s is the stream it was read
 * for: node_chunk_read.c). */
static void send_chunk_read(struct mc_node *n, void *arg, const struct chunk_read *c)
{
    struct snap_send *s = arg;
    assert(s->active);
    if (mc_raft_role(n->raft) != MC_RAFT_LEADER) {
        return; /* node_pump_snapshot_sends ends the send */
    }
    if (c->rc) {
        finish_send(n, s, false);
        return;
    }
    /* Checked before the chunk goes out: on a mismatch the final chunk is never sent, so the
     * follower never completes the file (it checks the whole file itself too). */
    if (c->verdict == MC_ECORRUPT) {
        image_corrupt(n, s->path, s->reader.verify);
        finish_send(n, s, false);
        return;
    }
    if (c->offset != s->offset) {
        pump_one(n, s); /* a RESEND moved the stream meanwhile: read from there */
        return;
    }
    mc_put_u64le(c->buf, s->index);
    mc_put_u64le(c->buf + 8, s->term);
    mc_put_u64le(c->buf + 16, s->offset);
    mc_put_u64le(c->buf + 24, s->total);
    if (mc_peer_send(n->peers, s->to, MC_PEER_SNAP_CHUNK, c->buf, SNAP_CHUNK_HEADER + c->got)) {
        return; /* link trouble: read again and retried on the next pump */
    }
    s->offset += c->got;
    s->started_ms = node_now_ms();
    if (s->offset >= s->total || c->got == 0) {
        s->data_done = true;
        node_send_raft(n, &s->raft_msg);
        return;
    }
    pump_one(n, s);
}

void node_pump_snapshot_sends(struct mc_node *n)
{
    start_recv_job(n); /* here: Raft's ready is drained (see "Finishing a received image") */
    for (int i = 0; i < MC_RAFT_MAX_NODES; i++) {
        struct snap_send *s = &n->sends[i];
        if (!s->active) {
            continue;
        }
        if (mc_raft_role(n->raft) != MC_RAFT_LEADER) {
            end_send(n, s);
            continue;
        }
        pump_one(n, s);
        if (s->active && s->data_done && node_now_ms() - s->started_ms > SNAP_SEND_STALL_MS) {
            finish_send(n, s, false);
        }
    }
}

void node_on_snap_ack(struct mc_node *n, uint64_t from, const uint8_t *p, size_t len)
{
    if (len < 25) {
        return;
    }
    uint64_t index = mc_get_u64le(p), term = mc_get_u64le(p + 8), off = mc_get_u64le(p + 16);
    uint8_t status = p[24];
    struct snap_send *s = find_send(n, from);
    if (!s || s->index != index || s->term != term) {
        return;
    }
    if (status == SNAP_ACK_DONE) {
        finish_send(n, s, true);
    } else if (status == SNAP_ACK_RESEND && off <= s->total) {
        /* The follower answers each chunk of the window in flight: a RESEND to where the stream
         * already is, being read or sent to its end, is one of those (redoing it would send the
         * end chunk and the SNAPSHOT message again). */
        if (off == s->offset && (s->data_done || node_chunk_reading(&s->reader))) {
            return;
        }
        s->offset = off;
        s->data_done = false;
    } else {
        finish_send(n, s, false);
    }
}

/* ---- receiving (follower) ---- */

static void send_ack(struct mc_node *n, uint64_t to, uint64_t index, uint64_t term, uint64_t off,
                     uint8_t status)
{
    uint8_t a[25];
    mc_put_u64le(a, index);
    mc_put_u64le(a + 8, term);
    mc_put_u64le(a + 16, off);
    a[24] = status;
    mc_peer_send(n->peers, to, MC_PEER_SNAP_ACK, a, sizeof(a));
}

/*
 * Finishing a received image off the event loop. The whole-file work (data checksum, fsync,
 * rename; then the engine.new copy, checksummed again, fsynced: mc_snap_install_prepare) takes
 * seconds at 1M objects (~640 MB), and on the loop it silenced heartbeat acks and ticks (issue 8).
 * It runs on a libuv worker; the loop keeps only the swap (node_install_snapshot).
 *
 * Ordering, so that nothing rewrites engine.new under a swap: the job is queued from the end of
 * node_process_ready (node_pump_snapshot_sends), after its ready loop, so a SNAPSHOT message
 * stepped earlier has had its install (Raft hands it out in the very next ready); while the job
 * exists node_snapshot_received is false, so no SNAPSHOT message is stepped and Raft cannot ask
 * for an install until it completes. The leader's SNAPSHOT message (sent right after the last
 * chunk) is held meanwhile and replayed on completion, as if it had arrived then (n->snap_held,
 * node_snapshot_unblocked). Chunks of the same image are dropped (the ack follows); a different
 * image is refused with FAILED (the leader retries after its next heartbeat). The worker may share
 * the pool thread niced by snapshot creation (snap_work): it then yields the CPU to the loops too.
 */
#define RECV_HELD_MSG_MAX_BYTES (64u << 10) /* an encoded SNAPSHOT message: header + conf */
#define RECV_TEST_DELAY_MAX_MS  60000

struct recv_job {
    uv_work_t req;
    struct mc_node *n;
    struct mc_snap_recv *recv; /* owned until the worker's mc_snap_recv_finish frees it */
    bool queued;
    uint64_t from, index, term, total;
    bool resumed_whole; /* the file was complete when a restart reopened it (see below) */
    struct mc_snap_info info;
    int rc, prep_rc;
    uint64_t finish_ms, prep_ms;
};

/* Test hook (integration tests: shutdown and traffic while a finish runs): the worker sleeps
 * this long first. Unset in production. */
static uint64_t recv_test_delay_ms(void)
{
    return mc_test_env_u64("MC_TEST_SNAP_FINISH_DELAY_MS", RECV_TEST_DELAY_MAX_MS);
}

static void owe_done(struct mc_node *n, uint64_t to, uint64_t index, uint64_t term, uint64_t total);

static void recv_job_free(struct recv_job *j)
{
    mc_snap_recv_abort(j->recv, false); /* not started: keep the file, a restart resumes it */
    free(j);
}

static void recv_work(uv_work_t *req)
{
    struct recv_job *j = req->data;
    uint64_t delay_ms = recv_test_delay_ms();
    if (delay_ms) {
        usleep((useconds_t)(delay_ms * 1000));
    }
    uint64_t t0 = mc_mono_ms();
    j->rc = mc_snap_recv_finish(j->recv, &j->info);
    j->recv = NULL; /* freed in every case */
    uint64_t t1 = mc_mono_ms();
    j->finish_ms = t1 - t0;
    j->prep_rc = MC_ENOTFOUND;
    if (j->rc == 0) {
        /* Only this job writes engine.new while it runs (see the ordering above). The image is
         * read for seconds: marked in use, so a prune by a snapshot made meanwhile leaves it
         * (node_chunk_read.c). Not marked (all slots taken): the loop installs it instead. */
        j->prep_rc = node_snap_use(j->n, j->info.path);
        if (j->prep_rc == 0) {
            j->prep_rc = mc_snap_install_prepare(j->n->datadir, NULL, j->info.path);
            node_snap_unuse(j->n, j->info.path);
        }
        j->prep_ms = mc_mono_ms() - t1;
    }
    node_work_end(j->n);
}

static void recv_work_done(uv_work_t *req, int status)
{
    struct recv_job *j = req->data;
    struct mc_node *n = j->n;
    assert(n->recv_job == j);
    n->recv_job = NULL;
    if (status == UV_ECANCELED || n->stopping) {
        /* Stopping: whatever the worker got to is safe on disk (a .part file resumes, a renamed
         * image is found at start, a prepared engine.new is removed at start). */
        recv_job_free(j);
        return;
    }
    if (j->rc) {
        MC_WARN("snapshot_receive_failed", "index=%llu err=%s", (unsigned long long)j->index,
                mc_error_name(j->rc));
        /* A resumed whole file that failed is gone (mc_snap_recv_finish discards it): have
         * the leader stream its image again from the start, instead of failing a send that
         * would find the same state next time. */
        send_ack(n, j->from, j->index, j->term, 0,
                 j->resumed_whole ? SNAP_ACK_RESEND : SNAP_ACK_FAILED);
        recv_job_free(j);
        node_snapshot_unblocked(n); /* a message held for it is dropped there */
        return;
    }
    n->recv_done_index = j->index;
    n->recv_done_term = j->term;
    n->recv_done_prepared = j->prep_rc == 0;
    snprintf(n->recv_done_path, sizeof(n->recv_done_path), "%s", j->info.path);
    if (j->prep_rc) {
        MC_WARN("snapshot_install_prepare_failed",
                "index=%llu err=%s action=\"install copies "
                "on the loop\"",
                (unsigned long long)j->index, mc_error_name(j->prep_rc));
    }
    MC_INFO("snapshot_received", "from=%llu index=%llu bytes=%llu finish_ms=%llu prepare_ms=%llu",
            (unsigned long long)j->from, (unsigned long long)j->index, (unsigned long long)j->total,
            (unsigned long long)j->finish_ms, (unsigned long long)j->prep_ms);
    owe_done(n, j->from, j->index, j->term, j->total);
    recv_job_free(j);
    node_snapshot_unblocked(n);
}

/* The last chunk is written: hand the finish to a worker (queued by start_recv_job). */
static int defer_finish(struct mc_node *n, uint64_t from, uint64_t index, uint64_t term,
                        uint64_t total, bool resumed_whole)
{
    struct recv_job *j = calloc(1, sizeof(*j));
    if (!j) {
        return MC_ENOMEM;
    }
    j->n = n;
    j->recv = n->recv;
    n->recv = NULL;
    j->from = from;
    j->index = index;
    j->term = term;
    j->total = total;
    j->resumed_whole = resumed_whole;
    j->req.data = j;
    n->recv_job = j;
    return 0;
}

static void start_recv_job(struct mc_node *n)
{
    struct recv_job *j = n->recv_job;
    if (!j || j->queued || n->stopping) {
        return;
    }
    /* engine.new is about to be rewritten: an earlier prepared image is gone */
    n->recv_done_prepared = false;
    j->queued = true;
    MC_INFO("snapshot_receive_finishing", "index=%llu bytes=%llu", (unsigned long long)j->index,
            (unsigned long long)j->total);
    if (node_queue_work(n, &j->req, recv_work, recv_work_done) != 0) {
        n->recv_job = NULL;
        send_ack(n, j->from, j->index, j->term, 0, SNAP_ACK_FAILED);
        recv_job_free(j);
        node_snapshot_unblocked(n); /* as recv_work_done: a message held for it is dropped */
    }
}

/*
 * Held, not refused. An install closes the engine, so it waits while a check hash (node_check.c)
 * or a snapshot job's image copy reads it, and while a received image is finished (the worker
 * writes engine.new). Refusing the SNAPSHOT message then made the leader send the image again
 * about once a heartbeat for as long as a hash ran (each resend read from disk and logged on the
 * leader; rev17b G1). Instead the message is kept (n->snap_held, one slot, the newest), and so
 * is the DONE ack of the image's last chunk: the leader waits for it in its send's data_done
 * state (SNAP_SEND_STALL_MS bounds that) rather than start new sends. Both go out when nothing
 * blocks any more (node_snapshot_unblocked: from the hash's, the snapshot job's and the finish's
 * done callbacks), the message stepped as if it arrived then. A message from an older term is
 * then ignored by Raft (step_term); one whose image was installed meanwhile is answered with
 * the commit index (sn_handle_snapshot). Nothing is held across a restart or a stop.
 */
static bool install_blocked(struct mc_node *n)
{
    return n->recv_job || n->snapshot_running || node_check_hashing(n);
}

/* The received image recv_done is on disk (an install reads it: its membership, and its data
 * when engine.new was not prepared), and is total bytes when total is not 0. */
static bool recv_done_on_disk(struct mc_node *n, uint64_t total)
{
    struct stat st;
    return n->recv_done_index && stat(n->recv_done_path, &st) == 0 &&
           (total == 0 || (uint64_t)st.st_size == total);
}

/* The last chunk of the received image (index, term) came from `to`: its DONE goes out once an
 * install can run (node_snapshot_unblocked). */
static void owe_done(struct mc_node *n, uint64_t to, uint64_t index, uint64_t term, uint64_t total)
{
    n->snap_held.done_owed = true;
    n->snap_held.done_to = to;
    n->snap_held.done_index = index;
    n->snap_held.done_term = term;
    n->snap_held.done_total = total;
}

static void held_free(struct mc_node *n)
{
    free(n->snap_held.msg);
    memset(&n->snap_held, 0, sizeof(n->snap_held));
}

bool node_snapshot_hold(struct mc_node *n, const struct mc_raft_msg *m, uint64_t from,
                        const uint8_t *p, size_t len)
{
    uint64_t index = m->snapshot.index, term = m->snapshot.term;
    const char *why = NULL;
    if (n->recv_job) {
        if (n->recv_job->index == index && n->recv_job->term == term) {
            why = "finishing";
        }
    } else if (n->recv_done_index == index && n->recv_done_term == term && install_blocked(n)) {
        why = n->snapshot_running ? "snapshot_job" : "check_hash";
    }
    if (!why || len > RECV_HELD_MSG_MAX_BYTES) {
        return false;
    }
    uint8_t *copy = malloc(len);
    if (!copy) {
        return false;
    }
    memcpy(copy, p, len);
    bool again = n->snap_held.msg && n->snap_held.index == index && n->snap_held.term == term;
    free(n->snap_held.msg); /* a resent or newer one replaces it */
    n->snap_held.msg = copy;
    n->snap_held.len = len;
    n->snap_held.from = from;
    n->snap_held.index = index;
    n->snap_held.term = term;
    if (!again) {
        n->snap_held.since_ms = node_now_ms();
        MC_INFO("snapshot_install_held", "from=%llu index=%llu term=%llu reason=%s",
                (unsigned long long)from, (unsigned long long)index, (unsigned long long)term, why);
    }
    return true;
}

/* The owed DONE: still true of the image (else FAILED: the leader sends again, and a file gone
 * meanwhile is received whole again). */
static void send_owed_done(struct mc_node *n)
{
    uint64_t to = n->snap_held.done_to, index = n->snap_held.done_index;
    uint64_t term = n->snap_held.done_term, total = n->snap_held.done_total;
    n->snap_held.done_owed = false;
    bool is_recv_done = index == n->recv_done_index && term == n->recv_done_term;
    if (is_recv_done && (index <= n->applied_index || recv_done_on_disk(n, total))) {
        send_ack(n, to, index, term, total, SNAP_ACK_DONE);
        return;
    }
    MC_WARN("snapshot_received_image_gone",
            "index=%llu term=%llu action=\"the leader sends it "
            "again\"",
            (unsigned long long)index, (unsigned long long)term);
    send_ack(n, to, index, term, 0, SNAP_ACK_FAILED);
}

void node_snapshot_unblocked(struct mc_node *n)
{
    if (n->stopping || n->fatal || install_blocked(n)) {
        return; /* a stop frees what is held (node_snapshot_free) */
    }
    if (n->snap_held.done_owed) {
        send_owed_done(n);
    }
    uint8_t *msg = n->snap_held.msg;
    if (!msg) {
        return;
    }
    size_t len = n->snap_held.len;
    uint64_t from = n->snap_held.from;
    uint64_t held_ms = node_now_ms() - n->snap_held.since_ms;
    MC_INFO("snapshot_install_unheld", "from=%llu index=%llu held_ms=%llu",
            (unsigned long long)from, (unsigned long long)n->snap_held.index,
            (unsigned long long)held_ms);
    n->snap_held.msg = NULL; /* out of the slot first: the step may hold another */
    /* A replay is not news from the leader (rev18 H3): stepped without the contact time that
     * bounds stale reads (max_staleness_ms). Raft itself takes it as its leader's message and
     * resets its election timer (§5.2): a leader that died during the hold costs at most one
     * more election timeout before this member campaigns, a rare double fault. */
    node_replay_raft_frame(n, from, msg, len);
    free(msg);
}

/* A chunk of the image this node received whole, verified and has not installed (its SNAPSHOT
 * message was refused or lost, or the leader's send gave up waiting for the DONE held while an
 * install was blocked: the leader sends it again). Its file is still there (the install reads
 * its membership, and its data when engine.new was not prepared) and is that size. */
static bool received_not_installed(struct mc_node *n, uint64_t index, uint64_t term, uint64_t total)
{
    if (index <= n->applied_index || index != n->recv_done_index || term != n->recv_done_term ||
        n->recv) {
        return false;
    }
    return recv_done_on_disk(n, total);
}

void node_on_snap_chunk(struct mc_node *n, uint64_t from, const uint8_t *p, size_t len)
{
    if (len < SNAP_CHUNK_HEADER) {
        return;
    }
    uint64_t index = mc_get_u64le(p), term = mc_get_u64le(p + 8);
    uint64_t off = mc_get_u64le(p + 16), total = mc_get_u64le(p + 24);
    const uint8_t *data = p + SNAP_CHUNK_HEADER;
    size_t dlen = len - SNAP_CHUNK_HEADER;
    if (index <= n->applied_index && index == n->recv_done_index) {
        send_ack(n, from, index, term, total, SNAP_ACK_DONE);
        return;
    }
    if (n->recv_job) {
        if (n->recv_job->index != index || n->recv_job->term != term) {
            send_ack(n, from, index, term, 0, SNAP_ACK_FAILED); /* busy: retried later */
        }
        return; /* this image is being finished: its ack follows */
    }
    if (received_not_installed(n, index, term, total)) {
        /* Sent again: skip it to the end rather than receive it all again. The chunk at the end
         * gets the DONE (held while an install is blocked, as after a receive); the leader sends
         * its SNAPSHOT message after it, as after any last chunk (an early DONE would end the
         * send without one). */
        if (off == 0) {
            MC_INFO("snapshot_resend_skipped", "from=%llu index=%llu bytes=%llu",
                    (unsigned long long)from, (unsigned long long)index, (unsigned long long)total);
        }
        if (off < total) {
            send_ack(n, from, index, term, total, SNAP_ACK_RESEND);
        } else if (install_blocked(n)) {
            owe_done(n, from, index, term, total);
        } else {
            send_ack(n, from, index, term, total, SNAP_ACK_DONE);
        }
        return;
    }
    if (n->recv && (n->recv_index != index || n->recv_term != term)) {
        mc_snap_recv_abort(n->recv, true);
        n->recv = NULL;
    }
    if (!n->recv) {
        int rc = mc_snap_recv_open(n->snapdir, NULL, index, term, &n->recv);
        if (rc) {
            send_ack(n, from, index, term, 0, SNAP_ACK_FAILED);
            return;
        }
        n->recv_index = index;
        n->recv_term = term;
        MC_INFO("snapshot_receive_started", "from=%llu index=%llu bytes=%llu resume_at=%llu",
                (unsigned long long)from, (unsigned long long)index, (unsigned long long)total,
                (unsigned long long)mc_snap_recv_offset(n->recv));
    }
    uint64_t have = mc_snap_recv_offset(n->recv);
    if (have > total) {
        /* A .part of a larger image at this (index, term), another leader's: no resume point
         * for this one (the leader refuses a RESEND past its end). Start from scratch. */
        MC_WARN("snapshot_receive_discarded", "index=%llu have=%llu total=%llu",
                (unsigned long long)index, (unsigned long long)have, (unsigned long long)total);
        mc_snap_recv_abort(n->recv, true);
        n->recv = NULL;
        send_ack(n, from, index, term, 0, SNAP_ACK_RESEND);
        return;
    }
    if (have == total && total > 0) {
        /* Only after a restart (a receive that gets here finishes at its last chunk): the file
         * arrived whole before a crash stopped its finish. Every chunk is a duplicate now, so
         * finish at once; the whole-file verification decides (on failure: RESEND 0). */
        MC_INFO("snapshot_receive_complete_on_resume", "index=%llu bytes=%llu",
                (unsigned long long)index, (unsigned long long)total);
        int rc = defer_finish(n, from, index, term, total, true);
        if (rc) {
            send_ack(n, from, index, term, 0, SNAP_ACK_FAILED);
        }
        return;
    }
    if (off != have) {
        if (off < have && off + dlen <= have) {
            return; /* duplicate of what we have */
        }
        send_ack(n, from, index, term, have, SNAP_ACK_RESEND);
        return;
    }
    int rc = mc_snap_recv_write(n->recv, off, data, dlen);
    if (rc == 0 && off + dlen >= total) {
        rc = defer_finish(n, from, index, term, total, false);
    }
    if (rc) {
        MC_WARN("snapshot_receive_failed", "index=%llu err=%s", (unsigned long long)index,
                mc_error_name(rc));
        if (n->recv) {
            mc_snap_recv_abort(n->recv, true);
            n->recv = NULL;
        }
        send_ack(n, from, index, term, 0, SNAP_ACK_FAILED);
    }
}

bool node_snapshot_received(struct mc_node *n, uint64_t index, uint64_t term)
{
    /* Not while an install is blocked: node_snapshot_hold keeps the message till it is not. Nor
     * when the received file is gone (pruned: the message is dropped and the leader sends the
     * image again, received whole), rather than fail the install on it. */
    return !install_blocked(n) && n->recv_done_index == index && n->recv_done_term == term &&
           recv_done_on_disk(n, 0);
}

int node_install_snapshot(struct mc_node *n, const struct mc_raft_snapshot_meta *meta)
{
    if (n->recv_done_index != meta->index || n->recv_done_term != meta->term) {
        MC_ERROR("snapshot_install_missing", "index=%llu", (unsigned long long)meta->index);
        return MC_ENOTFOUND;
    }
    /* No finish job runs now (see the ordering above): engine.new is ours. */
    assert(!n->recv_job || !n->recv_job->queued);
    /* No snapshot job runs now: an image copy reads n->engine under its own read transaction,
     * and it is closed below. SNAPSHOT messages are not stepped while a job runs
     * (node_snapshot_received), and jobs start only after the ready loop (node_maybe_snapshot),
     * by which time an install stepped in the same loop iteration has run. */
    assert(!n->snapshot_running);
    /* Nor a consistency-check hash (node_snapshot_received); should one read it all the same,
     * wait for it to close its transaction rather than close the engine under it. */
    node_check_wait_hash(n);
    uint64_t t0 = mc_mono_ns();
    mc_engine_close(n->engine);
    n->engine = NULL;
    /* Prepared by the worker: only the swap is left. Else (its prepare failed) the whole copy. */
    bool prepared = n->recv_done_prepared;
    n->recv_done_prepared = false;
    int rc = prepared ? mc_snap_install_swap(n->datadir, NULL)
                      : mc_snap_install(n->datadir, NULL, n->recv_done_path);
    char path[MC_DATADIR_PATH_MAX];
    struct mc_engine_options eo;
    node_engine_options(n, &eo);
    int orc = mc_datadir_engine_dir(n->datadir, path, sizeof(path));
    if (orc == 0) {
        orc = mc_engine_open(path, &eo, &n->engine);
    }
    if (rc || orc) {
        MC_ERROR("snapshot_install_failed", "index=%llu err=%s", (unsigned long long)meta->index,
                 mc_error_name(rc ? rc : orc));
        return rc ? rc : orc;
    }
    rc = mc_wal_reset(n->wal, meta->index + 1, NULL);
    if (rc) {
        return rc;
    }
    uint64_t applied = 0;
    mc_engine_applied_index(n->engine, &applied);
    rc = node_legacy_image_record(n, meta->index, applied);
    if (rc) {
        return rc;
    }
    n->applied_index = applied > meta->index ? applied : meta->index;
    n->last_snapshot_index = meta->index;
    n->last_image_index = meta->index; /* the received file is an image: the WAL restarts here */
    n->snapshot_log_mark = n->image_log_mark = n->applied_log_bytes;
    n->imaged_since_start = true;
    struct mc_snap_info *info = malloc(sizeof(*info));
    if (info && mc_snap_read_info(n->recv_done_path, false, info) == 0) {
        struct mc_raft_conf c;
        node_conf_decode(n, info->membership, info->membership_len, &c);
        n->snapshot_size_bytes = info->file_size;
    }
    free(info);
    node_snap_prune(n);
    mc_metrics_snapshot_received();
    MC_INFO(
        "snapshot_installed", "index=%llu term=%llu engine_applied=%llu prepared=%d loop_us=%llu",
        (unsigned long long)meta->index, (unsigned long long)meta->term,
        (unsigned long long)applied, prepared, (unsigned long long)((mc_mono_ns() - t0) / 1000));
    return 0;
}

/* ---- streaming a snapshot to a client (`metacenter snapshot save`) ---- */

/* A save from a client before session 12 (no MC_PROTO_FLAG_SAVE_MIN_INDEX) resends an empty
 * request on Busy, "fresh as of now" each time: under writes no image would ever be fresh
 * enough for its retry. It also takes the image this node finished last, for this long after:
 * its retry (every 200 ms) finds the image its first try asked for. */
#define SAVE_LEGACY_IMAGE_MS 2000

/* Whether the newest image (info) will do for a save wanting an image at index >= min (the
 * request's min index, or the applied index when it arrived: docs/protocol.md). Nothing is
 * remembered per save: a retry carries min back (session 11 kept "a save asked at index N" on the
 * node, and a second save within the ask's 150 s could be given the first one's image). */
static bool save_image_will_do(const struct mc_node *n, const struct mc_snap_info *info,
                               uint64_t min, bool legacy)
{
    assert(info->data_size > 0); /* looked up with images_only */
    if (info->index >= min) {
        return true;
    }
    return legacy && n->save.made_ms != 0 && info->index == n->save.made_index &&
           node_now_ms() - n->save.made_ms < SAVE_LEGACY_IMAGE_MS;
}

/* Busy for a save, carrying the min index its retry sends back (clients before session 12
 * ignore it). */
static void save_busy(const struct mc_client_token *t, uint64_t min, const char *why)
{
    uint8_t buf[8];
    struct mc_proto_error e = {0};
    e.message = mc_proto_cstr(why);
    mc_proto_save_busy_set(&e, buf, min);
    mc_client_reply_error_full(t, MC_EBUSY, &e);
}

void node_handle_snapshot_save(struct mc_node *n, const struct mc_client_request *r)
{
    const struct mc_proto_request *q = r->req;
    uint64_t min = q->u.save.min_index ? q->u.save.min_index : n->applied_index;
    bool legacy = !(q->flags & MC_PROTO_FLAG_SAVE_MIN_INDEX) && q->u.save.min_index == 0;
    if (n->save.active) {
        save_busy(&r->token, min, "another snapshot save is running; retry");
        return;
    }
    /* The newest image, not the newest file: a header-only snapshot after the image this save
     * asked for (one every --snapshot-log-mb) must not make it ask for another. Header only, as
     * for a follower: node_pump_snapshot_saves checks the data as it streams. */
    uint64_t t0 = mc_mono_ns();
    struct mc_snap_info *info = malloc(sizeof(*info));
    int rc = info ? mc_snap_latest_header(n->snapdir, true, info) : MC_ENOMEM;
    uint64_t lookup_us = (mc_mono_ns() - t0) / 1000;
    if (rc != 0 && rc != MC_ENOTFOUND) {
        free(info);
        mc_client_reply_error(&r->token, rc, NULL);
        return;
    }
    if (rc == MC_ENOTFOUND || !save_image_will_do(n, info, min, legacy)) {
        free(info);
        if (min > n->applied_index) {
            /* Not applied here yet (or not an index this member gave): an image now would be
             * older than the client wants. It is made once the applied index gets there. */
            char why[160];
            snprintf(why, sizeof(why),
                     "this member has applied up to index %llu, the save wants an image at %llu "
                     "or later; retry",
                     (unsigned long long)n->applied_index, (unsigned long long)min);
            save_busy(&r->token, min, why);
            return;
        }
        /* While a snapshot is being made, wait for it: it may be the image this save's first
         * try asked for (asking again would make another), and a header-only one would drop
         * the ask (node_maybe_snapshot asks once). The retry after it asks if it still has to;
         * an image made then is at the applied index, so >= min. */
        if (!n->snapshot_running) {
            want_image(n);
        }
        save_busy(&r->token, min, "creating a fresh snapshot; retry shortly");
        return;
    }
    assert(!n->save.reader.job && !n->save.reader.verify && !n->save.reader.digest);
    struct chunk_reader *cr = &n->save.reader;
    cr->digest = calloc(1, sizeof(*cr->digest));
    if (!cr->digest || mc_digest_init(cr->digest) != 0 ||
        mc_snap_verify_new(info, &cr->verify) != 0) {
        node_chunk_reader_end(n, cr);
        free(info);
        mc_client_reply_error(&r->token, MC_ENOMEM, NULL);
        return;
    }
    n->snapshot_image_wanted_ms = 0;
    n->save.min_index = min;
    n->save.active = true;
    n->save.token = r->token;
    n->save.offset = 0;
    n->save.total = info->file_size;
    n->save.checksum = info->data_checksum;
    snprintf(n->save.path, sizeof(n->save.path), "%s", info->path);
    MC_INFO("snapshot_save_started",
            "index=%llu min_index=%llu legacy=%d bytes=%llu lookup_us=%llu",
            (unsigned long long)info->index, (unsigned long long)min, legacy,
            (unsigned long long)info->file_size, (unsigned long long)lookup_us);
    free(info);
}

static void end_save(struct mc_node *n)
{
    n->save.active = false;
    node_chunk_reader_end(n, &n->save.reader);
}

void node_snapshot_stop(struct mc_node *n)
{
    if (n->save.active) {
        /* Answered while the client server still runs: the reply releases the connection the
         * save holds (left unanswered, it leaked at exit). A read in flight is dropped. */
        end_save(n);
        mc_client_reply_error(&n->save.token, MC_ESHUTDOWN, "the node is stopping");
    }
}

void node_snapshot_free(struct mc_node *n)
{
    if (n->recv_job) {
        /* Never queued (a queued job completes before the loop stops running). */
        assert(!n->recv_job->queued);
        recv_job_free(n->recv_job);
        n->recv_job = NULL;
    }
    for (int i = 0; i < MC_RAFT_MAX_NODES; i++) {
        end_send(n, &n->sends[i]);
    }
    if (n->save.active) {
        end_save(n);
    }
    held_free(n); /* not replayed: a restart is sent the image again */
}

#define SAVE_PENDING_MAX_BYTES (4u << 20) /* queued to the client before the next read */
#define SAVE_CHUNK_BYTES       (MC_PROTO_MAX_CHUNK_BYTES - 64)

static void save_chunk_read(struct mc_node *n, void *arg, const struct chunk_read *c);

/* Queue the next chunk's read when the client connection may take it; a chunk read is sent by
 * save_chunk_read, which pumps again. Reads run on the threadpool: node_chunk_read.c. */
void node_pump_snapshot_saves(struct mc_node *n)
{
    if (!n->save.active || node_chunk_reading(&n->save.reader) ||
        mc_client_conn_pending_bytes(n->save.token.conn) > SAVE_PENDING_MAX_BYTES) {
        return;
    }
    int rc = node_chunk_read_start(n, &n->save.reader, n->save.path, n->save.offset, 0,
                                   SAVE_CHUNK_BYTES, save_chunk_read, NULL);
    if (rc) {
        end_save(n);
        mc_client_reply_error(&n->save.token, rc, "reading the snapshot failed");
    }
}

/* Loop: the save's next chunk was read, checked and digested (node_chunk_read.c). */
static void save_chunk_read(struct mc_node *n, void *arg, const struct chunk_read *c)
{
    (void)arg;
    assert(n->save.active && c->offset == n->save.offset);
    if (c->rc) {
        end_save(n);
        mc_client_reply_error(&n->save.token, c->rc, "reading the snapshot failed");
        return;
    }
    bool last = n->save.offset + c->got >= n->save.total || c->got == 0;
    /* Streamed from offset 0 in order, so the last chunk always brings the verdict; a mismatch
     * (or a file cut short) ends the stream with Busy instead of the final chunk, and the
     * client's retry gets a fresh image. */
    if (c->verdict == MC_ECORRUPT || (last && c->verdict != 1)) {
        MC_INFO("snapshot_save_failed", "path=%s offset=%llu", n->save.path,
                (unsigned long long)n->save.offset);
        image_corrupt(n, n->save.path, n->save.reader.verify);
        end_save(n);
        save_busy(&n->save.token, n->save.min_index,
                  "the snapshot image failed its checksum and was set aside; making a fresh "
                  "one, retry");
        return;
    }
    struct mc_snapshot_chunk ch = {.offset = n->save.offset,
                                   .total_bytes = n->save.total,
                                   .checksum = 0,
                                   .data = c->data,
                                   .len = (uint32_t)c->got};
    if (last) {
        /* Of the whole file (protocol); the worker digested every chunk. */
        ch.checksum = mc_digest_final(n->save.reader.digest);
    }
    struct mc_wbuf w;
    mc_wbuf_init(&w, MC_PROTO_MAX_BODY_BYTES);
    mc_proto_chunk_put(&w, &ch);
    n->save.offset += c->got;
    if (last) {
        mc_client_reply(&n->save.token, 0, w.data, w.len);
        end_save(n);
        MC_INFO("snapshot_save_done", "bytes=%llu", (unsigned long long)n->save.total);
    } else if (mc_client_reply_more(&n->save.token, w.data, w.len) != 0) {
        mc_client_reply_error(&n->save.token, MC_ESHUTDOWN, NULL);
        end_save(n);
    }
    mc_wbuf_free(&w);
    node_pump_snapshot_saves(n);
}
