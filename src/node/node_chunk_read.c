/* node_chunk_read.c: a snapshot stream's chunk reads (read, data check, digest) on the libuv
 * threadpool, one in flight per stream, handed back to the stream on the event loop. */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Why: an image file is written with POSIX_FADV_DONTNEED, so a chunk read goes to disk (ms
 * each; ~700 MB at 1M objects), and on the loop every client request and Raft message on the
 * member waited behind it. The stream (a send to a follower, a `snapshot save`) queues one read
 * at a time; the job owns its buffer and, while it runs, the stream's verify, digest and file
 * (lent: the stream's pointers are NULL meanwhile, so ending the stream never frees or closes
 * what the worker uses). The after-work callback gives them back and calls the stream's
 * callback, which sends the chunk and decides whether to queue the next read (back-pressure
 * stays the stream's). A stream ended while its job runs (send finished or cancelled, save
 * ended, node stopping) only drops r->job: the after-work sees it is no longer the reader's job
 * and just frees it and what it holds. The reader lives in struct mc_node, which outlives every
 * queued job: node stop lets them complete (uv_run returns only once no request is active), as
 * for snap_work and recv_work (node_snapshot.c).
 *
 * The file: opened by the stream's first read, on the worker (an open is a path lookup and an
 * inode read: disk work too), and kept to the stream's end, so every chunk is of the file the
 * stream looked up even when a fresh image is renamed over its name (storage.h
 * mc_snap_chunk_open), and a stream costs one descriptor, not an open and close per chunk. It is
 * closed on the threadpool as well (chunk_file_close).
 *
 * No prune takes a file a stream holds (session 15): a pruned image goes to the node's trash,
 * which cuts it down in place, and a cut under a stream would feed it short reads. So the file
 * is marked in use (node_snap_use) before the open and unmarked after the close, both under the
 * lock a prune holds across its check and its rename: either the prune took the name first (the
 * open fails with MC_ENOTFOUND: the stream looks up again, as when the image was unlinked) or
 * it sees the mark and leaves the file to a later prune. The mark is the file's, not the
 * stream's: it outlives a stream that ended while its read or its close was still queued.
 *
 * That later prune (session 18): the unmark that lets a skipped file go sets prune_due, and the
 * loop's next tick prunes (node_snap_prune_due), so on an idle cluster the image does not wait
 * for the next snapshot or install. Not in the unmark itself: it runs with mu held, on a worker
 * or the loop, and a prune there could run beside a snapshot job's. The loop prunes only while
 * no snapshot job runs (that job prunes at its end, and an install asserts none runs): as
 * today, one prune at a time. Only a file a prune skipped sets it: a stream's end alone never
 * costs a directory scan.
 */

#define CHUNK_TEST_DELAY_MAX_MS 60000

struct chunk_job {
    uv_work_t req;
    struct mc_node *n;
    struct chunk_reader *reader; /* the stream's; its job != this one: the stream ended */
    chunk_read_cb cb;
    void *arg;
    char path[MC_DATADIR_PATH_MAX];
    size_t head, len;              /* bytes kept before the data; bytes to read */
    uint64_t delay_ms;             /* test hook (below) */
    struct mc_snap_verify *verify; /* lent by the stream while the job exists */
    struct mc_digest *digest;      /* lent (a save's), or NULL */
    struct stream_file *file;      /* lent; NULL: the worker opens path */
    struct chunk_read c;
    uint8_t buf[];
};

/* Test hook: with MC_TEST_SNAP_READ_DELAY_MS=N (1..60000) each chunk read sleeps N ms first, as
 * a read from a cold disk does, to check the loop keeps serving meanwhile
 * (test/integration/test_backup.py). Read once. Unset (production): 0. */
static uint64_t chunk_test_delay_ms(void)
{
    static _Atomic int64_t ms = -1; /* -1: not read yet */
    return mc_test_hook_u64(&ms, "MC_TEST_SNAP_READ_DELAY_MS", CHUNK_TEST_DELAY_MAX_MS,
                            "test_hook_snap_read_delay");
}

/* ---- files in use (see the top) ---- */

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Slot holding name, or (want_free) a free one; -1 if none. Called with mu held. */
static int users_find(struct snap_users *u, const char *name, bool want_free)
{
    int free_slot = -1;
    for (int i = 0; i < NODE_SNAP_USERS_MAX; i++) {
        if (u->e[i].refs && strcmp(u->e[i].name, name) == 0) {
            return i;
        }
        if (!u->e[i].refs && free_slot < 0) {
            free_slot = i;
        }
    }
    return want_free ? free_slot : -1;
}

int node_snap_use(struct mc_node *n, const char *path)
{
    const char *name = base_name(path);
    if (strlen(name) >= sizeof(n->snap_users.e[0].name)) {
        return MC_EINVAL;
    }
    pthread_mutex_lock(&n->snap_users.mu);
    int i = users_find(&n->snap_users, name, true);
    if (i >= 0) {
        if (n->snap_users.e[i].refs == 0) { /* a free slot: a file of its own from now on */
            snprintf(n->snap_users.e[i].name, sizeof(n->snap_users.e[i].name), "%s", name);
            n->snap_users.e[i].deferred = false;
        }
        n->snap_users.e[i].refs++;
    }
    pthread_mutex_unlock(&n->snap_users.mu);
    return i >= 0 ? 0 : MC_EBUSY;
}

void node_snap_unuse(struct mc_node *n, const char *path)
{
    pthread_mutex_lock(&n->snap_users.mu);
    int i = users_find(&n->snap_users, base_name(path), false);
    assert(i >= 0); /* every unuse follows its use */
    if (i >= 0 && --n->snap_users.e[i].refs == 0 && n->snap_users.e[i].deferred) {
        n->snap_users.e[i].deferred = false;
        atomic_store(&n->snap_users.prune_due, true); /* the loop prunes (see the top) */
    }
    pthread_mutex_unlock(&n->snap_users.mu);
}

/* What node_snap_prune hands mc_snap_prune as in_use's ctx. */
struct prune_ctx {
    struct mc_node *n;
    unsigned taken; /* files past keep that no stream held, handed to the prune to remove: an
                       upper bound of what it removed (a file already gone, or one it failed to
                       remove, counts too; mc_snap_prune logs each) */
};

/* mc_snap_prune_opts.in_use: called with snap_users.mu held, for each file past keep. A file
 * skipped is marked so that its last unmark asks for another prune. */
static bool snap_in_use(void *ctx, const char *path)
{
    struct prune_ctx *c = ctx;
    int i = users_find(&c->n->snap_users, base_name(path), false);
    if (i >= 0) {
        c->n->snap_users.e[i].deferred = true;
    } else {
        c->taken++;
    }
    return i >= 0;
}

unsigned node_snap_prune(struct mc_node *n)
{
    struct prune_ctx c = {.n = n};
    struct mc_snap_prune_opts o = {
        .trash = n->snap_trash, .in_use = snap_in_use, .ctx = &c, .mu = &n->snap_users.mu};
    mc_snap_prune(n->snapdir, NULL, MC_SNAP_KEEP, &o);
    return c.taken;
}

void node_snap_prune_due(struct mc_node *n)
{
    /* A snapshot job prunes at its end: the flag waits for it (see the top). Stopping: the
     * image waits for the prune after the next start (mc_node_start sets the flag). On the
     * loop: a readdir and renames to the trash; an unlink and a directory fsync only when the
     * trash is full or absent (rare, and as an install's prune on a follower's loop). */
    if (!atomic_load(&n->snap_users.prune_due) || n->snapshot_running || n->stopping || n->fatal) {
        return;
    }
    /* Cleared before the prune: an unmark during it asks again. */
    atomic_store(&n->snap_users.prune_due, false);
    unsigned taken = node_snap_prune(n);
    /* Said only when it took a file: every start asks for one (rev18b N3), mostly for none. */
    if (taken) {
        MC_INFO("snapshot_prune_resumed",
                "pruned=%u reason=\"held by a stream, or left by a stop\"", taken);
    } else {
        MC_DEBUG("snapshot_prune_resumed", "pruned=0");
    }
}

/* An image a stream holds open, marked in use while it is. */
struct stream_file {
    struct mc_snap_chunk_file *f;
    char path[MC_DATADIR_PATH_MAX];
};

/* Worker: mark, then open (see the top). */
static int stream_file_open(struct mc_node *n, const char *path, const struct mc_snap_verify *v,
                            struct stream_file **out)
{
    *out = NULL;
    struct stream_file *sf = malloc(sizeof(*sf));
    if (!sf) {
        return MC_ENOMEM;
    }
    snprintf(sf->path, sizeof(sf->path), "%s", path);
    int rc = node_snap_use(n, path);
    if (rc == 0) {
        rc = mc_snap_chunk_open(path, v, &sf->f);
        if (rc) {
            node_snap_unuse(n, path);
        }
    }
    if (rc) {
        free(sf);
        return rc;
    }
    *out = sf;
    return 0;
}

/* Close, then unmark: the prune after this one may take the file. NULL is fine. */
static void stream_file_close(struct mc_node *n, struct stream_file *sf)
{
    if (sf) {
        mc_snap_chunk_close(sf->f);
        node_snap_unuse(n, sf->path);
        free(sf);
    }
}

struct chunk_close {
    uv_work_t req;
    struct mc_node *n;
    struct stream_file *file;
};

static void chunk_close_work(uv_work_t *req)
{
    struct chunk_close *c = req->data;
    stream_file_close(c->n, c->file);
    c->file = NULL;
    node_work_end(c->n);
}

static void chunk_close_done(uv_work_t *req, int status)
{
    struct chunk_close *c = req->data;
    (void)status;
    stream_file_close(c->n, c->file); /* NULL unless the work never ran */
    free(c);
}

/* Close a stream's file on the threadpool (see the top). Stopping or fatal, the loop may not run
 * again (node_snapshot_free runs after it stopped): close here. */
static void chunk_file_close(struct mc_node *n, struct stream_file *f)
{
    if (!f) {
        return;
    }
    struct chunk_close *c = n && !n->stopping && !n->fatal ? malloc(sizeof(*c)) : NULL;
    if (c) {
        c->req.data = c;
        c->n = n;
        c->file = f;
        if (node_queue_work(n, &c->req, chunk_close_work, chunk_close_done) == 0) {
            return;
        }
        free(c);
    }
    stream_file_close(n, f);
}

static void chunk_job_free(struct chunk_job *j)
{
    chunk_file_close(j->n, j->file);
    mc_snap_verify_free(j->verify);
    if (j->digest) {
        mc_digest_free(j->digest);
        free(j->digest);
    }
    free(j);
}

/* Worker: touches the job (its path copy, its buffer, the lent verify, digest and file) and, to
 * mark its file in use, the node's snap_users (node_work_end: mc_node_free waits for it). */
static void chunk_work(uv_work_t *req)
{
    struct chunk_job *j = req->data;
    struct chunk_read *c = &j->c;
    if (j->delay_ms) {
        usleep((useconds_t)(j->delay_ms * 1000));
    }
    c->rc = j->file ? 0 : stream_file_open(j->n, j->path, j->verify, &j->file);
    if (c->rc == 0) {
        c->rc = mc_snap_chunk_read(j->file->f, c->offset, c->data, j->len, &c->got);
    }
    if (c->rc == 0) {
        c->verdict = mc_snap_verify_update(j->verify, c->offset, c->data, c->got);
        if (j->digest && c->verdict != MC_ECORRUPT) {
            mc_digest_update(j->digest, c->data, c->got);
        }
    }
    node_work_end(j->n);
}

static void chunk_work_done(uv_work_t *req, int status)
{
    struct chunk_job *j = req->data;
    struct chunk_reader *r = j->reader;
    if (r->job != j) {
        chunk_job_free(j); /* the stream ended meanwhile: nothing of it is touched */
        return;
    }
    r->job = NULL;
    assert(!r->verify && !r->digest && !r->file);
    r->verify = j->verify;
    r->digest = j->digest;
    r->file = j->file; /* NULL if the first read's open failed */
    j->verify = NULL;
    j->digest = NULL;
    j->file = NULL;
    if (status == 0 && !j->n->stopping) {
        /* Stopping: the stream stays as it is; node_snapshot_free ends it. */
        j->cb(j->n, j->arg, &j->c);
    }
    chunk_job_free(j);
}

int node_chunk_read_start(struct mc_node *n, struct chunk_reader *r, const char *path,
                          uint64_t offset, size_t head, size_t len, chunk_read_cb cb, void *arg)
{
    assert(!r->job && r->verify);
    if (n->stopping) {
        return MC_ESHUTDOWN;
    }
    if (len > MC_SNAP_CHUNK_MAX_BYTES || head > 4096 || strlen(path) >= MC_DATADIR_PATH_MAX) {
        return MC_EINVAL;
    }
    struct chunk_job *j = malloc(sizeof(*j) + head + len);
    if (!j) {
        return MC_ENOMEM;
    }
    memset(j, 0, sizeof(*j));
    j->req.data = j;
    j->n = n;
    j->reader = r;
    j->cb = cb;
    j->arg = arg;
    snprintf(j->path, sizeof(j->path), "%s", path);
    j->head = head;
    j->len = len;
    j->delay_ms = chunk_test_delay_ms();
    j->c.offset = offset;
    j->c.buf = j->buf;
    j->c.data = j->buf + head;
    j->verify = r->verify;
    j->digest = r->digest;
    j->file = r->file;
    if (node_queue_work(n, &j->req, chunk_work, chunk_work_done) != 0) {
        free(j); /* verify, digest and file stay the stream's */
        return MC_EIO;
    }
    r->verify = NULL;
    r->digest = NULL;
    r->file = NULL;
    r->job = j;
    return 0;
}

bool node_chunk_reading(const struct chunk_reader *r)
{
    return r->job != NULL;
}

void node_chunk_reader_end(struct mc_node *n, struct chunk_reader *r)
{
    r->job = NULL; /* a job in flight frees itself and what it holds (chunk_work_done) */
    mc_snap_verify_free(r->verify);
    r->verify = NULL;
    if (r->digest) {
        mc_digest_free(r->digest);
        free(r->digest);
        r->digest = NULL;
    }
    chunk_file_close(n, r->file); /* held only while no read is in flight: lent to it */
    r->file = NULL;
}
