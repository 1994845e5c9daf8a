/* trash.c: deletes files a chunk at a time on a thread of its own (docs/decisions.md, session 14).
 *
 * Why: freeing a large file frees all its blocks in one journal transaction, and on a file
 * system mounted with `discard` (ext4 here) that commit also trims them all; every fsync on the
 * file system waits for the commit. After an engine image a member dropped ~8 WAL segments of
 * 64 MiB at once, and every member's WAL fdatasync on the shared disk waited behind the trim:
 * each such image cost the whole cluster's writes ~15-30 ms of p99 (docs/benchmarks.md,
 * session 14). Cutting the file down by chunk_bytes at a time, each cut synced and followed by
 * a pause, spreads that work over many small commits. RocksDB's DeleteScheduler does the same
 * (rate-limited deletes, bytes_max_delete_chunk).
 */
#include "storage/trash.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct mc_trash {
    const struct mc_fs_ops *fs;
    uint64_t chunk_bytes;
    uint32_t pause_ms;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC: work arrived, or stop */
    pthread_t thread;
    bool stopping;
    size_t head, n; /* ring of queued paths */
    char paths[MC_TRASH_MAX_FILES][MC_DATADIR_PATH_MAX];
    atomic_uint_fast64_t deleted;
};

/* Sleep pause_ms unless stopping; returns true when stopping. Called with mu held. */
static bool pause_or_stop(struct mc_trash *t)
{
    struct timespec until = mc_mono_deadline(t->pause_ms);
    while (!t->stopping && pthread_cond_timedwait(&t->cv, &t->mu, &until) != ETIMEDOUT) {
    }
    return t->stopping;
}

/* Sync the directory holding path: the owner's rename out of use must be durable before the
 * first cut. Otherwise a crash could keep the old name (a WAL segment, loaded at the next open)
 * with its end cut off. This is the fsync that makes the rename durable: the owners (WAL
 * compaction, snapshot prune) do not sync the directory again for a file they hand here
 * (session 18), and one of theirs after mc_trash_add could come after a cut. Called with mu
 * held. */
static bool rename_durable(struct mc_trash *t, const char *path)
{
    char dir[MC_DATADIR_PATH_MAX];
    pthread_mutex_unlock(&t->mu);
    int rc = mc_fs_dir_of(path, dir, sizeof(dir));
    if (rc == 0) {
        rc = mc_fs_fsync_dir(t->fs, dir);
    }
    pthread_mutex_lock(&t->mu);
    if (rc) {
        MC_WARN("trash_dir_sync_failed", "path=%s err=%s reason=\"left for the owner's next open\"",
                path, mc_error_name(rc));
    }
    return rc == 0;
}

/* Cut the file down chunk by chunk (each cut synced), then unlink it. Returns false when it
 * stopped midway: the file stays, shorter, for the owner's next open. Called with mu held; the
 * file work runs without it. */
static bool delete_slowly(struct mc_trash *t, const char *path)
{
    if (!rename_durable(t, path)) {
        return true; /* untouched: next file */
    }
    const struct mc_fs_ops *fs = t->fs;
    int fd = fs->open(fs->ctx, path, O_WRONLY | O_CLOEXEC, 0);
    if (fd >= 0) {
        struct stat st;
        /* A table built outside this tree may lack fstat (optional, storage.h): the file is
         * then unlinked at once, as one that cannot be sized. */
        int src = fs->fstat ? fs->fstat(fs->ctx, fd, &st) : -ENOSYS;
        off_t size = src == 0 ? st.st_size : 0;
        if (src < 0) {
            MC_WARN("trash_stat_failed", "path=%s err=%s reason=\"%s: unlinked at once\"", path,
                    mc_error_name(mc_fs_errno_to_mc(src)),
                    fs->fstat ? "fstat failed" : "no fstat in the fs table");
        }
        while (size > 0) {
            size = (uint64_t)size > t->chunk_bytes ? size - (off_t)t->chunk_bytes : 0;
            pthread_mutex_unlock(&t->mu);
            int rc = fs->ftruncate(fs->ctx, fd, size);
            if (rc == 0) {
                rc = fs->fdatasync(fs->ctx, fd);
            }
            pthread_mutex_lock(&t->mu);
            if (rc < 0) {
                MC_WARN("trash_truncate_failed", "path=%s err=%s", path,
                        mc_error_name(mc_fs_errno_to_mc(rc)));
                break; /* unlink it all at once below */
            }
            if (size > 0 && pause_or_stop(t)) {
                fs->close(fs->ctx, fd);
                return false;
            }
        }
        fs->close(fs->ctx, fd);
    }
    pthread_mutex_unlock(&t->mu);
    int rc = fs->unlink(fs->ctx, path);
    pthread_mutex_lock(&t->mu);
    if (rc < 0 && rc != -ENOENT) {
        MC_WARN("trash_unlink_failed", "path=%s err=%s", path,
                mc_error_name(mc_fs_errno_to_mc(rc)));
    }
    atomic_fetch_add(&t->deleted, 1);
    return true;
}

static void *trash_main(void *arg)
{
    struct mc_trash *t = arg;
    pthread_mutex_lock(&t->mu);
    while (!t->stopping) {
        if (t->n == 0) {
            pthread_cond_wait(&t->cv, &t->mu);
            continue;
        }
        char path[MC_DATADIR_PATH_MAX];
        memcpy(path, t->paths[t->head], sizeof(path));
        t->head = (t->head + 1) % MC_TRASH_MAX_FILES;
        t->n--;
        if (!delete_slowly(t, path) || pause_or_stop(t)) {
            break;
        }
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

int mc_trash_open(const struct mc_fs_ops *fs, uint64_t chunk_bytes, uint32_t pause_ms,
                  struct mc_trash **out)
{
    *out = NULL;
    if (chunk_bytes == 0 || pause_ms > 60000) {
        return MC_EINVAL;
    }
    struct mc_trash *t = calloc(1, sizeof(*t));
    if (!t) {
        return MC_ENOMEM;
    }
    t->fs = fs ? fs : mc_fs_default();
    t->chunk_bytes = chunk_bytes;
    t->pause_ms = pause_ms;
    pthread_mutex_init(&t->mu, NULL);
    mc_cond_init_monotonic(&t->cv);
    if (pthread_create(&t->thread, NULL, trash_main, t) != 0) {
        pthread_cond_destroy(&t->cv);
        pthread_mutex_destroy(&t->mu);
        free(t);
        return MC_ENOMEM;
    }
    *out = t;
    return 0;
}

int mc_trash_add(struct mc_trash *t, const char *path)
{
    if (strlen(path) >= MC_DATADIR_PATH_MAX) {
        return MC_EINVAL;
    }
    pthread_mutex_lock(&t->mu);
    int rc = MC_EBUSY;
    if (t->n < MC_TRASH_MAX_FILES && !t->stopping) {
        size_t at = (t->head + t->n) % MC_TRASH_MAX_FILES;
        snprintf(t->paths[at], sizeof(t->paths[at]), "%s", path);
        t->n++;
        rc = 0;
        pthread_cond_signal(&t->cv);
    }
    pthread_mutex_unlock(&t->mu);
    return rc;
}

struct requeue {
    struct mc_trash *t;
    const struct mc_fs_ops *fs;
};

static void requeue_one(void *ctx, const char *path, const char *name)
{
    struct requeue *r = ctx;
    (void)name;
    if (mc_trash_add(r->t, path) != 0) {
        (void)r->fs->unlink(r->fs->ctx, path);
    }
}

void mc_trash_requeue(struct mc_trash *t, const struct mc_fs_ops *fs, const char *dir,
                      const char *prefix, const char *suffix)
{
    struct requeue r = {.t = t, .fs = fs ? fs : mc_fs_default()};
    mc_fs_each_named(dir, prefix, suffix, requeue_one, &r);
}

uint64_t mc_trash_deleted(struct mc_trash *t)
{
    return atomic_load(&t->deleted);
}

void mc_trash_close(struct mc_trash *t)
{
    if (!t) {
        return;
    }
    pthread_mutex_lock(&t->mu);
    t->stopping = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    pthread_join(t->thread, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
}
