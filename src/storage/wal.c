/* wal.c: the write-ahead log: bounded queue, group commit on a dedicated thread (one writev + one
 * fdatasync per group), suffix truncation, prefix compaction, fail-stop on I/O errors. */
#include "storage/wal_internal.h"
#include "storage/trash.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/codec.h"
#include "obs/metrics.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

enum op_kind { OP_APPEND, OP_HS, OP_TRUNCATE, OP_COMPACT, OP_RESET };

/* One queued operation. Appended records are framed by the producer (checksums computed off
 * the WAL thread) into buf. */
struct wal_op {
    struct wal_op *next;
    enum op_kind kind;
    uint64_t ticket;
    uint64_t arg; /* truncate from / compact upto / reset next index */
    bool has_hs;
    struct mc_hard_state hs;
    size_t nrec;
    size_t bytes;
    uint8_t buf[];
};

/* A frame waiting in the current writev. */
struct pend_rec {
    uint64_t index, term, off;
};

struct mc_wal {
    struct mc_wal_options opt;
    const struct mc_fs_ops *fs;
    char dir[MC_DATADIR_PATH_MAX];
    uint64_t seg_size;
    uint32_t q_max_ops;
    uint64_t q_max_bytes;
    uint32_t commit_interval_ms;

    pthread_mutex_t mu; /* queue, producer view, segs array, pos table */
    pthread_cond_t work_cv, space_cv, done_cv;
    struct mc_trash *trash; /* compacted segments are deleted slowly here; NULL: unlinked */
    pthread_t thread;
    bool thread_started;
    bool stopping;

    /* producer view (under mu) */
    struct wal_op *q_head, *q_tail;
    struct wal_op *inflight; /* batch taken by the WAL thread, not yet fully written (mu) */
    size_t q_ops;
    uint64_t q_bytes;
    uint64_t q_first, q_last, q_last_term;
    uint64_t next_ticket;
    struct mc_hard_state hs_view;

    /* segments: segs[nsegs-1] is the active one (if active != NULL). Array changes under mu. */
    struct wal_seg *segs;
    size_t nsegs, segs_cap;
    struct wal_seg spare;
    bool has_spare;
    uint64_t next_seq;
    uint64_t gap_first, gap_last, dropped_below_seq; /* wal_loaded's; gap_last 0 = none */
    uint32_t group;           /* WAL thread: the group being written (stamped into its frames) */
    bool group_started;       /* WAL thread: the group's first frame (WAL_GROUP_START) is out */
    struct wal_pos_table pos; /* written records (under mu) */

    /* WAL-thread only */
    struct iovec iov[IOV_MAX];
    int niov;
    struct pend_rec *pend;
    size_t npend, pend_cap;
    uint64_t pend_off; /* file offset of iov[0] */
    bool has_hs_store;
    struct mc_hardstate_store hss;
    struct mc_hard_state hs_pending;
    bool hs_dirty;
    uint64_t hs_written_ms;
    uint64_t spare_retry_ms; /* no idle spare creation before this (after a failure) */

    /* published */
    uint64_t durable_index;    /* atomic */
    uint64_t durable_term;     /* atomic */
    uint64_t done_ticket;      /* atomic */
    int error;                 /* atomic */
    struct mc_wal_stats stats; /* fields atomic */
};

#define LOAD(x)     __atomic_load_n(&(x), __ATOMIC_ACQUIRE)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELEASE)
#define ADD(x, v)   __atomic_fetch_add(&(x), (v), __ATOMIC_RELAXED)

static struct wal_seg *active(struct mc_wal *w)
{
    return w->nsegs ? &w->segs[w->nsegs - 1] : NULL;
}

static bool seg_empty(const struct wal_seg *s)
{
    return s->last < s->first;
}

/* ------------------------------------------------------------------------------------------ */
/* fatal state                                                                                 */

static void free_ops(struct wal_op *op)
{
    while (op) {
        struct wal_op *n = op->next;
        free(op);
        op = n;
    }
}

/* fsyncgate: after a failed write or fdatasync the page cache may have dropped our data, and a
 * retried fdatasync can succeed without it. Never continue: fail-stop. */
static void go_fatal(struct mc_wal *w, const char *what, const char *file, int err)
{
    MC_ERROR("wal_fatal",
             "op=%s file=%s err=%s action=\"node must stop: a failed write/fsync is never "
             "retried; restart to recover the durable log\"",
             what, file ? file : "-", mc_error_name(err));
    STORE(w->error, MC_EFATAL); /* no more enqueues from here on */
    if (w->opt.on_durable) {
        struct mc_wal_progress p = {.durable_index = LOAD(w->durable_index),
                                    .durable_term = LOAD(w->durable_term),
                                    .done_ticket = LOAD(w->done_ticket),
                                    .error = MC_EFATAL};
        w->opt.on_durable(w->opt.ctx, &p);
    }
    pthread_mutex_lock(&w->mu);
    struct wal_op *q = w->q_head;
    w->q_head = w->q_tail = NULL;
    w->q_ops = 0;
    w->q_bytes = 0;
    pthread_cond_broadcast(&w->space_cv);
    pthread_cond_broadcast(&w->done_cv);
    pthread_mutex_unlock(&w->mu);
    free_ops(q);
}

/* ------------------------------------------------------------------------------------------ */
/* segments                                                                                    */

/* Create, preallocate and sync a new empty segment (header durable, dir entry durable). */
static int seg_create(struct mc_wal *w, uint64_t seq, struct wal_seg *out)
{
    const struct mc_fs_ops *fs = w->fs;
    memset(out, 0, sizeof(*out));
    out->seq = seq;
    out->version = WAL_SEG_VERSION;
    out->first = 1;
    out->last = 0;
    out->end = WAL_SEG_HDR_BYTES;
    wal_seg_path(w->dir, seq, out->path, sizeof(out->path));
    int fd = fs->open(fs->ctx, out->path, O_RDWR | O_CREAT | O_EXCL, 0644);
    if (fd < 0) {
        return mc_fs_errno_to_mc(fd);
    }
    uint8_t hdr[WAL_SEG_HDR_BYTES];
    wal_seg_header_encode(hdr, seq);
    int rc = fs->fallocate(fs->ctx, fd, 0, (off_t)w->seg_size);
    if (rc == 0) {
        ssize_t n = fs->pwrite(fs->ctx, fd, hdr, sizeof(hdr), 0);
        rc = n == (ssize_t)sizeof(hdr) ? 0 : (n < 0 ? (int)n : -EIO);
    }
    if (rc == 0) {
        rc = fs->fdatasync(fs->ctx, fd);
    }
    if (rc < 0) {
        fs->close(fs->ctx, fd);
        fs->unlink(fs->ctx, out->path);
        return mc_fs_errno_to_mc(rc);
    }
    out->fd = fd;
    rc = mc_fs_fsync_dir(fs, w->dir);
    if (rc) {
        /* The entry may not be durable: drop the (empty) file, so the same seq is created and
         * its entry synced again by the next attempt (an idle retry or the roll, which fails
         * stop with this error if it fails again). Left in place, every later attempt failed
         * with MC_EEXIST, and the roll went fatal naming that instead of the failed fsync. */
        fs->close(fs->ctx, fd);
        int urc = fs->unlink(fs->ctx, out->path);
        MC_WARN("wal_segment_dir_sync_failed", "file=%s err=%s removed=%d", out->path,
                mc_error_name(rc), urc == 0);
        return rc;
    }
    return 0;
}

static int segs_push(struct mc_wal *w, const struct wal_seg *s)
{
    pthread_mutex_lock(&w->mu);
    if (w->nsegs == w->segs_cap) {
        size_t ncap = w->segs_cap ? w->segs_cap * 2 : 8;
        struct wal_seg *n = realloc(w->segs, ncap * sizeof(*n));
        if (!n) {
            pthread_mutex_unlock(&w->mu);
            return MC_ENOMEM;
        }
        w->segs = n;
        w->segs_cap = ncap;
    }
    w->segs[w->nsegs++] = *s;
    pthread_mutex_unlock(&w->mu);
    return 0;
}

/* Remove segs[i] from the array (under mu) and close it; returns it (for its path). */
static struct wal_seg seg_detach(struct mc_wal *w, size_t i)
{
    struct wal_seg s = w->segs[i];
    pthread_mutex_lock(&w->mu);
    memmove(&w->segs[i], &w->segs[i + 1], (w->nsegs - i - 1) * sizeof(*w->segs));
    w->nsegs--;
    pthread_mutex_unlock(&w->mu);
    w->fs->close(w->fs->ctx, s.fd);
    return s;
}

/* Remove segs[i] from the array, then close and unlink it. */
static int seg_delete(struct mc_wal *w, size_t i)
{
    struct wal_seg s = seg_detach(w, i);
    int rc = w->fs->unlink(w->fs->ctx, s.path);
    return rc < 0 && rc != -ENOENT ? mc_fs_errno_to_mc(rc) : 0;
}

static int prepare_spare(struct mc_wal *w)
{
    if (w->has_spare) {
        return 0;
    }
    int rc = seg_create(w, w->next_seq, &w->spare);
    if (rc) {
        return rc;
    }
    w->next_seq++;
    w->has_spare = true;
    return 0;
}

static int sync_active(struct mc_wal *w)
{
    struct wal_seg *a = active(w);
    if (!a || !a->dirty) {
        return 0;
    }
    uint64_t t0 = mc_mono_ns();
    int rc = w->fs->fdatasync(w->fs->ctx, a->fd);
    uint64_t took = mc_mono_ns() - t0;
    mc_metrics_observe(MC_METRIC_WAL_FSYNC, took);
    if (took > 100000000ull) {
        MC_WARN("slow_fsync", "file=%s ms=%llu", a->path, (unsigned long long)(took / 1000000));
    }
    ADD(w->stats.fdatasyncs, 1);
    if (rc < 0) {
        go_fatal(w, "fdatasync", a->path, mc_fs_errno_to_mc(rc));
        return MC_EFATAL;
    }
    a->dirty = false;
    return 0;
}

/* Switch to a fresh segment. The old one is made durable first, so that only the newest
 * segment with data can ever hold a torn write (what recovery relies on). */
static int roll(struct mc_wal *w)
{
    int rc = sync_active(w);
    if (rc) {
        return rc;
    }
    if (!w->has_spare) {
        rc = prepare_spare(w);
        if (rc) {
            go_fatal(w, "create_segment", w->dir, rc);
            return MC_EFATAL;
        }
    }
    rc = segs_push(w, &w->spare);
    if (rc) {
        go_fatal(w, "roll", w->spare.path, rc);
        return MC_EFATAL;
    }
    w->has_spare = false;
    ADD(w->stats.segment_rolls, 1);
    ADD(w->stats.segments, 1);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* writing                                                                                     */

/*
 * Zero ahead of the write position. A segment is preallocated with fallocate, which leaves
 * unwritten extents: the first write into each block converts its extent, so nearly every
 * group's fdatasync also had to write the inode (ext4: a second synchronous I/O per fsync).
 * Writing zeros a chunk ahead makes the following frames plain overwrites; the zeros go out
 * with the group's own fdatasync, one inode update per chunk instead of per group. On this
 * disk: 4-6 KiB append + fdatasync p50 193 -> 108 us, mean 241 -> 145 us (issue 8). Zeros
 * read back as the end of the log, exactly as unwritten extents do, so recovery is unchanged.
 */
#define WAL_ZERO_CHUNK_BYTES (256u * 1024)
#define WAL_ZERO_LOW_BYTES   (64u * 1024)
static const uint8_t wal_zeros[WAL_ZERO_CHUNK_BYTES];

static int zero_ahead(struct mc_wal *w, struct wal_seg *a)
{
    if (a->zeroed < a->end) {
        a->zeroed = a->end; /* never write zeros over frames */
    }
    if (a->zeroed - a->end >= WAL_ZERO_LOW_BYTES || a->zeroed >= w->seg_size) {
        return 0;
    }
    uint64_t len = w->seg_size - a->zeroed;
    if (len > WAL_ZERO_CHUNK_BYTES) {
        len = WAL_ZERO_CHUNK_BYTES;
    }
    ssize_t n = w->fs->pwrite(w->fs->ctx, a->fd, wal_zeros, (size_t)len, (off_t)a->zeroed);
    if (n != (ssize_t)len) {
        go_fatal(w, "write", a->path, n < 0 ? mc_fs_errno_to_mc((int)n) : MC_EIO);
        return MC_EFATAL;
    }
    a->zeroed += len;
    a->dirty = true;
    return 0;
}

/* Write the pending iovecs at pend_off in the active segment, then publish their positions. */
static int flush(struct mc_wal *w)
{
    if (w->niov == 0) {
        return 0;
    }
    struct wal_seg *a = active(w);
    size_t bytes = 0;
    for (int i = 0; i < w->niov; i++) {
        bytes += w->iov[i].iov_len;
    }
    ssize_t n = w->fs->pwritev(w->fs->ctx, a->fd, w->iov, w->niov, (off_t)w->pend_off);
    if (n != (ssize_t)bytes) {
        go_fatal(w, "write", a->path, n < 0 ? mc_fs_errno_to_mc((int)n) : MC_EIO);
        return MC_EFATAL;
    }
    a->dirty = true;
    ADD(w->stats.bytes_written, bytes);
    ADD(w->stats.records, w->npend);
    if (zero_ahead(w, a) != 0) {
        return MC_EFATAL;
    }
    pthread_mutex_lock(&w->mu);
    for (size_t i = 0; i < w->npend; i++) {
        struct wal_pos p = {.term = w->pend[i].term, .seq = a->seq, .off = w->pend[i].off};
        if (wal_pos_push(&w->pos, w->pend[i].index, &p)) {
            pthread_mutex_unlock(&w->mu);
            go_fatal(w, "position_table", a->path, MC_ENOMEM);
            return MC_EFATAL;
        }
    }
    pthread_mutex_unlock(&w->mu);
    w->niov = 0;
    w->npend = 0;
    return 0;
}

/* Add one frame (at p, fb bytes) to the pending writev, rolling segments as needed. */
static int add_frame(struct mc_wal *w, const uint8_t *p, size_t fb, uint64_t index, uint64_t term)
{
    struct wal_seg *a = active(w);
    /* A version 1 segment is sealed: appends go to a new version 2 one (wal_internal.h). */
    bool need_roll = a == NULL || a->version != WAL_SEG_VERSION;
    if (a && !need_roll && !seg_empty(a)) {
        /* a segment holds one contiguous run; a jump (after reset/compaction past the end)
         * starts a new segment */
        need_roll = index != a->last + 1 || a->end + fb > w->seg_size;
    }
    if (need_roll) {
        int rc = flush(w);
        if (rc == 0) {
            rc = roll(w);
        }
        if (rc) {
            return rc;
        }
        a = active(w);
    }
    if (w->niov == IOV_MAX) {
        int rc = flush(w);
        if (rc) {
            return rc;
        }
    }
    if (w->niov == 0) {
        w->pend_off = a->end;
    }
    if (w->niov > 0 && (uint8_t *)w->iov[w->niov - 1].iov_base + w->iov[w->niov - 1].iov_len == p) {
        w->iov[w->niov - 1].iov_len += fb;
    } else {
        w->iov[w->niov].iov_base = (void *)p;
        w->iov[w->niov].iov_len = fb;
        w->niov++;
    }
    if (w->npend == w->pend_cap) {
        size_t ncap = w->pend_cap ? w->pend_cap * 2 : 1024;
        struct pend_rec *n = realloc(w->pend, ncap * sizeof(*n));
        if (!n) {
            go_fatal(w, "pending", a->path, MC_ENOMEM);
            return MC_EFATAL;
        }
        w->pend = n;
        w->pend_cap = ncap;
    }
    w->pend[w->npend++] = (struct pend_rec){.index = index, .term = term, .off = a->end};
    if (seg_empty(a)) {
        a->first = index;
    }
    a->last = index;
    a->end += fb;
    return 0;
}

static int do_append(struct mc_wal *w, struct wal_op *op)
{
    size_t off = 0;
    for (size_t i = 0; i < op->nrec; i++) {
        struct mc_wal_record r;
        size_t fb;
        int k = wal_frame_decode(op->buf + off, op->bytes - off, &r, &fb);
        assert(k == WAL_FRAME_OK);
        (void)k;
        /* Producers only read index/term/len of queued frames (term_in_ops): not these bytes. */
        if (!w->group_started) {
            w->group = wal_group_next(w->group);
        }
        wal_frame_stamp(op->buf + off, w->group | (w->group_started ? 0 : WAL_GROUP_START));
        w->group_started = true;
        int rc = add_frame(w, op->buf + off, fb, r.index, r.term);
        if (rc) {
            return rc;
        }
        off += fb;
    }
    return 0;
}

static int dir_sync_or_fatal(struct mc_wal *w)
{
    int rc = mc_fs_fsync_dir(w->fs, w->dir);
    if (rc) {
        go_fatal(w, "fsync_dir", w->dir, rc);
        return MC_EFATAL;
    }
    return 0;
}

/* Drop every segment, newest first, so a crash midway leaves a prefix of the old log. */
static int do_reset(struct mc_wal *w, uint64_t next_index)
{
    pthread_mutex_lock(&w->mu);
    wal_pos_clear(&w->pos, next_index);
    pthread_mutex_unlock(&w->mu);
    bool any = w->nsegs > 0;
    while (w->nsegs > 0) {
        int rc = seg_delete(w, w->nsegs - 1);
        if (rc) {
            go_fatal(w, "unlink", w->dir, rc);
            return MC_EFATAL;
        }
        ADD(w->stats.segments, -1);
    }
    return any ? dir_sync_or_fatal(w) : 0;
}

/* Raft §5.3: entries from `from` on are replaced. Later segments are deleted (newest first), the
 * segment holding `from` is cut there and preallocated again; nothing live is rewritten. */
static int do_truncate(struct mc_wal *w, uint64_t from)
{
    pthread_mutex_lock(&w->mu);
    const struct wal_pos *pp = wal_pos_get(&w->pos, from);
    struct wal_pos p = pp ? *pp : (struct wal_pos){0};
    bool before_first = w->pos.len == 0 || from <= w->pos.first;
    if (pp && !before_first) {
        wal_pos_trim_back(&w->pos, from - 1);
    }
    pthread_mutex_unlock(&w->mu);
    if (before_first) {
        return do_reset(w, from);
    }
    if (!pp) {
        return 0; /* nothing at or after `from` was written */
    }
    bool deleted = false;
    while (w->nsegs > 0 && active(w)->seq != p.seq) {
        int rc = seg_delete(w, w->nsegs - 1);
        if (rc) {
            go_fatal(w, "unlink", w->dir, rc);
            return MC_EFATAL;
        }
        ADD(w->stats.segments, -1);
        deleted = true;
    }
    assert(w->nsegs > 0);
    if (deleted && dir_sync_or_fatal(w)) {
        return MC_EFATAL;
    }
    struct wal_seg *a = active(w);
    int rc = w->fs->ftruncate(w->fs->ctx, a->fd, (off_t)p.off);
    if (rc == 0 && p.off < w->seg_size) {
        rc = w->fs->fallocate(w->fs->ctx, a->fd, (off_t)p.off, (off_t)(w->seg_size - p.off));
    }
    if (rc < 0) {
        go_fatal(w, "truncate", a->path, mc_fs_errno_to_mc(rc));
        return MC_EFATAL;
    }
    a->end = p.off;
    a->zeroed = p.off; /* the tail was preallocated again: unwritten extents */
    a->last = from - 1;
    a->dirty = true;
    return 0;
}

/* A segment compaction dropped: out of the array, renamed to "<name>.del" (ignored by the
 * loader, deleted at open) and handed to the trash thread, which deletes it a chunk at a time
 * (trash.c; then *trashed); unlinked here when there is no trash thread or its queue is full.
 * On failure *op names the call that failed ("rename" or "unlink"), for the fatal report. */
static int seg_retire(struct mc_wal *w, size_t i, const char **op, bool *trashed)
{
    *op = "unlink";
    *trashed = false;
    if (!w->trash) {
        return seg_delete(w, i);
    }
    struct wal_seg s = seg_detach(w, i);
    char del[MC_DATADIR_PATH_MAX + 8];
    int len = snprintf(del, sizeof(del), "%s.del", s.path);
    assert(len > 0 && (size_t)len < MC_DATADIR_PATH_MAX); /* mc_wal_open bounds the dir */
    int rc = w->fs->rename(w->fs->ctx, s.path, del);
    if (rc < 0) {
        *op = "rename";
        return rc == -ENOENT ? 0 : mc_fs_errno_to_mc(rc);
    }
    if (mc_trash_add(w->trash, del) == 0) {
        *trashed = true;
        return 0;
    }
    rc = w->fs->unlink(w->fs->ctx, del);
    return rc < 0 && rc != -ENOENT ? mc_fs_errno_to_mc(rc) : 0;
}

/* After a snapshot at upto: delete whole segments entirely <= upto, oldest first (a crash
 * midway leaves a suffix). The active segment is never deleted here.
 *
 * The directory is synced here only when a segment was unlinked here. A segment handed to the
 * trash was renamed, and the trash syncs the directory before its first cut of it (trash.c
 * rename_durable): that fsync makes the rename durable, and it has to be the trash's, as the
 * trash may cut before a sync here would run. A second one here repeated it on the WAL thread
 * (session 18). Until then a crash finds the segment whole under its old name, as after a crash
 * just before the rename: the loader takes it as a segment compaction had not dropped yet. */
static int do_compact(struct mc_wal *w, uint64_t upto)
{
    pthread_mutex_lock(&w->mu);
    wal_pos_trim_front(&w->pos, upto);
    pthread_mutex_unlock(&w->mu);
    bool unlinked = false;
    while (w->nsegs > 1 && (seg_empty(&w->segs[0]) || w->segs[0].last <= upto)) {
        const char *op;
        bool trashed;
        int rc = seg_retire(w, 0, &op, &trashed);
        if (rc) {
            go_fatal(w, op, w->dir, rc);
            return MC_EFATAL;
        }
        ADD(w->stats.segments, -1);
        unlinked = unlinked || !trashed;
    }
    return unlinked ? dir_sync_or_fatal(w) : 0;
}

static int save_hs(struct mc_wal *w)
{
    if (!w->has_hs_store || !w->hs_dirty) {
        return 0;
    }
    int rc = mc_hardstate_save(&w->hss, &w->hs_pending);
    if (rc) {
        go_fatal(w, "hardstate", w->hss.path[0], rc);
        return MC_EFATAL;
    }
    w->hs_dirty = false;
    w->hs_written_ms = mc_mono_ms();
    return 0;
}

/* Run one group: every op in order, then hard state, then one fdatasync, then publish. */
static void run_group(struct mc_wal *w, struct wal_op *ops)
{
    uint64_t last_ticket = 0;
    int rc = 0;
    bool hs_urgent = false;
    /* A term/vote change is saved before any frame of the group is written: frames reach the
     * page cache (and may reach the disk, e.g. at a roll) before the group's fdatasync, and
     * after a power loss a WAL holding entries of a term above the saved one is refused. The
     * hard state saved is the group's last (term and vote only grow within a group; commit is
     * clamped to the log at restore). Same number of syncs as after the frames. */
    const struct wal_op *last_hs = NULL;
    w->group_started = false; /* numbered at its first frame (do_append) */
    for (const struct wal_op *op = ops; op; op = op->next) {
        if (op->has_hs) {
            last_hs = op;
            if (op->hs.term != w->hss.hs.term || op->hs.vote != w->hss.hs.vote) {
                hs_urgent = true;
            }
        }
    }
    if (hs_urgent && w->has_hs_store) {
        w->hs_pending = last_hs->hs;
        w->hs_dirty = true;
        rc = save_hs(w);
    }
    for (struct wal_op *op = ops; op && rc == 0; op = op->next) {
        switch (op->kind) {
        case OP_APPEND:
            rc = do_append(w, op);
            break;
        case OP_HS:
            break;
        case OP_TRUNCATE:
            rc = flush(w);
            rc = rc ? rc : do_truncate(w, op->arg);
            break;
        case OP_COMPACT:
            rc = flush(w);
            rc = rc ? rc : do_compact(w, op->arg);
            break;
        case OP_RESET:
            rc = flush(w);
            rc = rc ? rc : do_reset(w, op->arg);
            break;
        }
        if (op->has_hs && !hs_urgent) {
            w->hs_pending = op->hs; /* commit only: coalesced (below) */
            w->hs_dirty = w->has_hs_store;
        }
        last_ticket = op->ticket;
    }
    if (rc == 0) {
        rc = flush(w);
    }
    if (rc == 0 && w->hs_dirty && mc_mono_ms() - w->hs_written_ms >= w->commit_interval_ms) {
        rc = save_hs(w);
    }
    if (rc == 0) {
        rc = sync_active(w);
    }
    pthread_mutex_lock(&w->mu);
    w->inflight = NULL;
    pthread_mutex_unlock(&w->mu);
    free_ops(ops);
    if (rc) {
        return; /* go_fatal already reported */
    }
    ADD(w->stats.groups, 1);
    pthread_mutex_lock(&w->mu);
    uint64_t di = wal_pos_last(&w->pos);
    const struct wal_pos *p = wal_pos_get(&w->pos, di);
    STORE(w->durable_index, di);
    STORE(w->durable_term, p ? p->term : 0);
    STORE(w->done_ticket, last_ticket);
    pthread_cond_broadcast(&w->done_cv);
    pthread_mutex_unlock(&w->mu);
    if (w->opt.on_durable) {
        struct mc_wal_progress pr = {.durable_index = di,
                                     .durable_term = p ? p->term : 0,
                                     .done_ticket = last_ticket,
                                     .error = 0};
        w->opt.on_durable(w->opt.ctx, &pr);
    }
}

static void *wal_main(void *arg)
{
    struct mc_wal *w = arg;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        while (!w->q_head && !w->stopping) {
            bool failed = LOAD(w->error) != 0;
            if (!failed && !w->has_spare && mc_mono_ms() >= w->spare_retry_ms) {
                /* idle: prepare the next segment ahead so a roll costs no file creation */
                pthread_mutex_unlock(&w->mu);
                int rc = prepare_spare(w);
                if (rc) {
                    /* not fatal: a roll creates the segment itself (and fails-stop there) */
                    MC_WARN("wal_spare_failed", "dir=%s err=%s", w->dir, mc_error_name(rc));
                    w->spare_retry_ms = mc_mono_ms() + 1000;
                }
                pthread_mutex_lock(&w->mu);
                continue; /* re-check the queue: a producer may have signalled meanwhile */
            }
            if (!failed && w->hs_dirty) {
                /* a deferred commit-only hard state: write it when the interval is up */
                uint64_t due = w->hs_written_ms + w->commit_interval_ms;
                uint64_t now = mc_mono_ms();
                if (now >= due) {
                    pthread_mutex_unlock(&w->mu);
                    save_hs(w);
                    pthread_mutex_lock(&w->mu);
                    continue;
                }
                struct timespec ts = mc_mono_deadline(due - now);
                pthread_cond_timedwait(&w->work_cv, &w->mu, &ts);
                continue;
            }
            pthread_cond_wait(&w->work_cv, &w->mu);
        }
        if (!w->q_head) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        /* take a batch: everything queued, up to the batch byte limit (at least one op) */
        struct wal_op *first = w->q_head, *last = first;
        uint64_t bytes = first->bytes;
        size_t nops = first->nrec ? first->nrec : 1;
        while (last->next && bytes + last->next->bytes <= MC_WAL_BATCH_MAX_BYTES) {
            last = last->next;
            bytes += last->bytes;
            nops += last->nrec ? last->nrec : 1;
        }
        w->q_head = last->next;
        if (!w->q_head) {
            w->q_tail = NULL;
        }
        last->next = NULL;
        w->inflight = first; /* term_at() still sees these until they are in w->pos */
        w->q_ops -= nops;
        w->q_bytes -= bytes;
        pthread_cond_broadcast(&w->space_cv);
        pthread_mutex_unlock(&w->mu);
        if (LOAD(w->error)) {
            pthread_mutex_lock(&w->mu);
            w->inflight = NULL;
            pthread_mutex_unlock(&w->mu);
            free_ops(first);
            continue;
        }
        run_group(w, first);
    }
    if (!LOAD(w->error)) {
        save_hs(w);
    }
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* public API                                                                                  */

/* The trash thread for compacted segments, and what an earlier run left to it: "*.log.del"
 * files (a crash, or a stop, before they were gone). Without it (no thread) segments are
 * unlinked at once, as before. */
static void start_trash(struct mc_wal *w)
{
    uint64_t chunk =
        w->opt.delete_chunk_bytes ? w->opt.delete_chunk_bytes : MC_TRASH_CHUNK_BYTES_DEFAULT;
    uint32_t pause = w->opt.delete_pause_ms ? w->opt.delete_pause_ms : MC_TRASH_PAUSE_MS_DEFAULT;
    if (mc_trash_open(w->fs, chunk, pause, &w->trash) != 0) {
        MC_WARN("wal_trash_unavailable", "dir=%s reason=\"segments are unlinked at once\"", w->dir);
        return;
    }
    mc_trash_requeue(w->trash, w->fs, w->dir, "wal-", ".log.del");
}

int mc_wal_open(const struct mc_wal_options *opt, struct mc_wal **out)
{
    *out = NULL;
    if (!opt || !opt->wal_dir || strlen(opt->wal_dir) >= MC_DATADIR_PATH_MAX - 32) {
        return MC_EINVAL;
    }
    uint64_t t0 = mc_mono_ms();
    struct mc_wal *w = calloc(1, sizeof(*w));
    if (!w) {
        return MC_ENOMEM;
    }
    w->opt = *opt;
    w->fs = opt->fs ? opt->fs : mc_fs_default();
    snprintf(w->dir, sizeof(w->dir), "%s", opt->wal_dir);
    w->seg_size = opt->segment_size_bytes ? opt->segment_size_bytes : MC_WAL_SEGMENT_DEFAULT_BYTES;
    if (w->seg_size < MC_WAL_SEGMENT_MIN_BYTES) {
        w->seg_size = MC_WAL_SEGMENT_MIN_BYTES;
    }
    w->q_max_ops = opt->queue_max_ops ? opt->queue_max_ops : MC_WAL_QUEUE_DEFAULT_OPS;
    w->q_max_bytes = opt->queue_max_bytes ? opt->queue_max_bytes : MC_WAL_QUEUE_DEFAULT_BYTES;
    w->commit_interval_ms =
        opt->commit_persist_interval_ms ? opt->commit_persist_interval_ms : 1000;
    pthread_mutex_init(&w->mu, NULL);
    mc_cond_init_monotonic(&w->work_cv);
    pthread_cond_init(&w->space_cv, NULL);
    pthread_cond_init(&w->done_cv, NULL);
    w->spare.fd = -1;

    int rc = w->fs->mkdir(w->fs->ctx, w->dir, 0755);
    if (rc < 0 && rc != -EEXIST) {
        rc = mc_fs_errno_to_mc(rc);
        goto fail;
    }
    if (opt->hardstate_dir) {
        rc = mc_hardstate_open(&w->hss, opt->hardstate_dir, w->fs);
        if (rc) {
            goto fail;
        }
        w->has_hs_store = true;
        w->hs_view = w->hss.hs;
        w->hs_pending = w->hss.hs;
    }
    struct wal_loaded ld;
    rc = wal_load(w->dir, w->fs, w->seg_size, &ld, opt->error_text, opt->error_text_len);
    if (rc) {
        goto fail;
    }
    w->segs = ld.segs;
    w->nsegs = w->segs_cap = ld.nsegs;
    if (w->segs_cap == 0) {
        free(w->segs);
        w->segs = NULL;
    }
    w->spare = ld.spare;
    w->has_spare = ld.has_spare;
    w->next_seq = ld.next_seq;
    w->pos = ld.pos;
    w->gap_first = ld.gap_first;
    w->gap_last = ld.gap_last;
    w->dropped_below_seq = ld.dropped_below_seq;
    w->group = ld.last_group;
    if (w->has_spare && w->spare.version != WAL_SEG_VERSION) {
        /* An empty version 1 spare: recreated as version 2 when needed (wal_internal.h). */
        w->fs->close(w->fs->ctx, w->spare.fd);
        w->has_spare = false;
        rc = w->fs->unlink(w->fs->ctx, w->spare.path);
        rc = rc < 0 ? mc_fs_errno_to_mc(rc) : mc_fs_fsync_dir(w->fs, w->dir);
        if (rc) {
            goto fail; /* ld's segments are owned by w now: freed there */
        }
    }
    w->q_first = w->pos.first;
    w->q_last = wal_pos_last(&w->pos);
    const struct wal_pos *lp = wal_pos_get(&w->pos, w->q_last);
    w->q_last_term = lp ? lp->term : 0;
    w->durable_index = w->q_last;
    w->durable_term = w->q_last_term;
    w->next_ticket = 1;
    w->stats.segments = w->nsegs;
    w->hs_written_ms = mc_mono_ms();
    start_trash(w);
    MC_INFO("wal_loaded", "dir=%s first=%llu last=%llu segments=%zu ms=%llu", w->dir,
            (unsigned long long)w->q_first, (unsigned long long)w->q_last, w->nsegs,
            (unsigned long long)(mc_mono_ms() - t0));
    if (pthread_create(&w->thread, NULL, wal_main, w) != 0) {
        rc = MC_ENOMEM;
        goto fail;
    }
    w->thread_started = true;
    *out = w;
    return 0;
fail:
    mc_wal_close(w);
    return rc;
}

bool mc_wal_gap(struct mc_wal *w, uint64_t *missing_first, uint64_t *missing_last)
{
    *missing_first = w->gap_first;
    *missing_last = w->gap_last;
    return w->gap_last != 0;
}

int mc_wal_remove_dropped(struct mc_wal *w)
{
    if (!w->gap_last) {
        return 0;
    }
    DIR *d = opendir(w->dir);
    if (!d) {
        return mc_fs_errno_to_mc(-errno);
    }
    struct dirent *e;
    int rc = 0;
    size_t removed = 0;
    while ((e = readdir(d)) != NULL) {
        unsigned long long seq;
        char tail[8];
        if (sscanf(e->d_name, "wal-%16llx.%7s", &seq, tail) != 2 || strcmp(tail, "log") != 0 ||
            strlen(e->d_name) != 24 || seq >= w->dropped_below_seq) {
            continue;
        }
        char path[MC_DATADIR_PATH_MAX];
        wal_seg_path(w->dir, seq, path, sizeof(path));
        int u = w->fs->unlink(w->fs->ctx, path);
        if (u < 0 && rc == 0) {
            rc = mc_fs_errno_to_mc(u);
        }
        removed++;
    }
    closedir(d);
    if (rc == 0 && removed) {
        rc = mc_fs_fsync_dir(w->fs, w->dir);
    }
    MC_INFO("wal_dropped_segments_removed", "count=%zu missing=%llu..%llu err=%s", removed,
            (unsigned long long)w->gap_first, (unsigned long long)w->gap_last,
            rc ? mc_error_name(rc) : "none");
    if (rc == 0) {
        w->gap_first = w->gap_last = 0;
    }
    return rc;
}

void mc_wal_close(struct mc_wal *w)
{
    if (!w) {
        return;
    }
    if (w->thread_started) {
        pthread_mutex_lock(&w->mu);
        w->stopping = true;
        pthread_cond_broadcast(&w->work_cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->thread, NULL);
    }
    mc_trash_close(w->trash);
    free_ops(w->q_head);
    for (size_t i = 0; i < w->nsegs; i++) {
        w->fs->close(w->fs->ctx, w->segs[i].fd);
    }
    if (w->has_spare) {
        w->fs->close(w->fs->ctx, w->spare.fd);
    }
    if (w->has_hs_store) {
        mc_hardstate_close(&w->hss);
    }
    free(w->segs);
    free(w->pos.v);
    free(w->pend);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->work_cv);
    pthread_cond_destroy(&w->space_cv);
    pthread_cond_destroy(&w->done_cv);
    free(w);
}

uint64_t mc_wal_first_index(struct mc_wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->q_first;
    pthread_mutex_unlock(&w->mu);
    return v;
}

uint64_t mc_wal_last_index(struct mc_wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->q_last;
    pthread_mutex_unlock(&w->mu);
    return v;
}

uint64_t mc_wal_last_term(struct mc_wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t v = w->q_last_term;
    pthread_mutex_unlock(&w->mu);
    return v;
}

void mc_wal_hard_state(struct mc_wal *w, struct mc_hard_state *out)
{
    pthread_mutex_lock(&w->mu);
    *out = w->hs_view;
    pthread_mutex_unlock(&w->mu);
}

uint64_t mc_wal_durable_index(struct mc_wal *w)
{
    return LOAD(w->durable_index);
}

uint64_t mc_wal_done_ticket(struct mc_wal *w)
{
    return LOAD(w->done_ticket);
}

int mc_wal_error(struct mc_wal *w)
{
    return LOAD(w->error);
}

/* Wait (under mu) for room for nops/bytes; MC_EBUSY / MC_EFATAL on failure. */
static int wait_space(struct mc_wal *w, size_t nops, uint64_t bytes)
{
    struct timespec deadline;
    bool have_deadline = false;
    for (;;) {
        if (LOAD(w->error)) {
            return MC_EFATAL;
        }
        if (w->stopping) {
            return MC_ESHUTDOWN;
        }
        /* an oversized single op is admitted into an empty queue */
        if (w->q_ops == 0 ||
            (w->q_ops + nops <= w->q_max_ops && w->q_bytes + bytes <= w->q_max_bytes)) {
            return 0;
        }
        if (w->opt.enqueue_wait_ms == 0) {
            return MC_EBUSY;
        }
        if (!have_deadline) {
            clock_gettime(CLOCK_REALTIME, &deadline);
            uint64_t ns = (uint64_t)deadline.tv_nsec + (uint64_t)w->opt.enqueue_wait_ms * 1000000;
            deadline.tv_sec += (time_t)(ns / 1000000000ull);
            deadline.tv_nsec = (long)(ns % 1000000000ull);
            have_deadline = true;
        }
        if (pthread_cond_timedwait(&w->space_cv, &w->mu, &deadline) == ETIMEDOUT) {
            if (w->q_ops == 0 ||
                (w->q_ops + nops <= w->q_max_ops && w->q_bytes + bytes <= w->q_max_bytes)) {
                return 0;
            }
            return MC_EBUSY;
        }
    }
}

static void enqueue(struct mc_wal *w, struct wal_op *op, uint64_t *ticket)
{
    op->ticket = w->next_ticket++;
    op->next = NULL;
    if (w->q_tail) {
        w->q_tail->next = op;
    } else {
        w->q_head = op;
    }
    w->q_tail = op;
    w->q_ops += op->nrec ? op->nrec : 1;
    w->q_bytes += op->bytes;
    if (op->has_hs) {
        w->hs_view = op->hs;
    }
    if (ticket) {
        *ticket = op->ticket;
    }
    pthread_cond_signal(&w->work_cv);
}

int mc_wal_append(struct mc_wal *w, const struct mc_wal_record *recs, size_t n,
                  const struct mc_hard_state *hs, uint64_t *ticket)
{
    if (LOAD(w->error)) {
        return MC_EFATAL;
    }
    if (n == 0 && !hs) {
        return MC_EINVAL;
    }
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        /* Valid indexes are 1..UINT64_MAX-1: the loader treats 0 and UINT64_MAX as corruption
         * (a log that cannot grow, or one whose indexes wrap), so they are never written. */
        if (recs[i].len > MC_WAL_RECORD_MAX_BYTES || (recs[i].len && !recs[i].data) ||
            recs[i].index == 0 || recs[i].index == UINT64_MAX ||
            (i > 0 && recs[i].index != recs[i - 1].index + 1)) {
            return MC_EINVAL;
        }
        bytes += wal_frame_bytes(recs[i].len);
    }
    struct wal_op *op = malloc(sizeof(*op) + bytes);
    if (!op) {
        return MC_ENOMEM;
    }
    op->kind = n ? OP_APPEND : OP_HS;
    op->arg = 0;
    op->nrec = n;
    op->bytes = bytes;
    op->has_hs = hs != NULL;
    if (hs) {
        op->hs = *hs;
    }
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        wal_frame_encode(op->buf + off, &recs[i]);
        off += wal_frame_bytes(recs[i].len);
    }
    pthread_mutex_lock(&w->mu);
    int rc = wait_space(w, n ? n : 1, bytes);
    if (rc == 0 && n > 0) {
        bool empty = w->q_last + 1 == w->q_first;
        if (!empty && recs[0].index != w->q_last + 1) {
            rc = MC_EINVAL;
        }
    }
    if (rc == 0) {
        if (n > 0) {
            if (w->q_last + 1 == w->q_first) {
                w->q_first = recs[0].index;
            }
            w->q_last = recs[n - 1].index;
            w->q_last_term = recs[n - 1].term;
        }
        enqueue(w, op, ticket);
        op = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    free(op);
    return rc;
}

int mc_wal_set_hard_state(struct mc_wal *w, const struct mc_hard_state *hs, uint64_t *ticket)
{
    if (!hs) {
        return MC_EINVAL;
    }
    return mc_wal_append(w, NULL, 0, hs, ticket);
}

/* Index, term and size of a queued frame (framed by mc_wal_append, so well formed). Not
 * wal_frame_decode: the WAL thread stamps the group into the checksum and bytes 13-15 of
 * in-flight frames meanwhile; these fields it never writes. */
static void frame_fields(const uint8_t *p, struct mc_wal_record *r, size_t *fb)
{
    r->len = mc_get_u32le(p + 8);
    r->index = mc_get_u64le(p + 16);
    r->term = mc_get_u64le(p + 24);
    *fb = wal_frame_bytes(r->len);
}

/* Term of index i as the producer sees it (queued or written); 0 when unknown. Under mu. */
/* Term of index i among queued appends (the latest write of i wins), or 0. */
static uint64_t term_in_ops(struct wal_op *head, uint64_t i)
{
    for (struct wal_op *op = head; op; op = op->next) {
        if (op->kind != OP_APPEND) {
            continue;
        }
        /* later ops override earlier ones (after a queued truncate) */
        size_t off = 0;
        for (size_t k = 0; k < op->nrec; k++) {
            struct mc_wal_record r;
            size_t fb;
            frame_fields(op->buf + off, &r, &fb);
            if (r.index == i) {
                uint64_t t = r.term;
                /* keep scanning: a later op may rewrite i */
                for (struct wal_op *o2 = op->next; o2; o2 = o2->next) {
                    size_t off2 = 0;
                    for (size_t k2 = 0; o2->kind == OP_APPEND && k2 < o2->nrec; k2++) {
                        struct mc_wal_record r2;
                        size_t fb2;
                        frame_fields(o2->buf + off2, &r2, &fb2);
                        if (r2.index == i) {
                            t = r2.term;
                        }
                        off2 += fb2;
                    }
                }
                return t;
            }
            off += fb;
        }
    }
    return 0;
}

/* Term of index i as the producer sees the log: queued ops, then the batch being written, then
 * what is on disk. Called with w->mu held. */
static uint64_t term_at(struct mc_wal *w, uint64_t i)
{
    uint64_t t = term_in_ops(w->q_head, i);
    if (!t) {
        t = term_in_ops(w->inflight, i);
    }
    if (t) {
        return t;
    }
    const struct wal_pos *p = wal_pos_get(&w->pos, i);
    return p ? p->term : 0;
}

static int queue_simple(struct mc_wal *w, enum op_kind kind, uint64_t arg, uint64_t *ticket)
{
    if (LOAD(w->error)) {
        return MC_EFATAL;
    }
    struct wal_op *op = malloc(sizeof(*op));
    if (!op) {
        return MC_ENOMEM;
    }
    memset(op, 0, sizeof(*op));
    op->kind = kind;
    op->arg = arg;
    pthread_mutex_lock(&w->mu);
    int rc = wait_space(w, 1, 0);
    if (rc == 0) {
        switch (kind) {
        case OP_TRUNCATE:
            if (arg <= w->q_first) {
                w->q_first = arg;
                w->q_last = arg - 1;
                w->q_last_term = 0;
            } else if (arg <= w->q_last) {
                w->q_last = arg - 1;
                w->q_last_term = term_at(w, arg - 1);
            }
            break;
        case OP_COMPACT:
            if (arg >= w->q_first) {
                if (arg > w->q_last) {
                    w->q_last_term = arg == w->q_last ? w->q_last_term : 0;
                    w->q_last = arg;
                }
                w->q_first = arg + 1;
            }
            break;
        case OP_RESET:
            w->q_first = arg;
            w->q_last = arg - 1;
            w->q_last_term = 0;
            break;
        default:
            assert(0);
        }
        enqueue(w, op, ticket);
        op = NULL;
    }
    pthread_mutex_unlock(&w->mu);
    free(op);
    return rc;
}

int mc_wal_truncate(struct mc_wal *w, uint64_t from_index, uint64_t *ticket)
{
    if (from_index == 0) {
        return MC_EINVAL;
    }
    return queue_simple(w, OP_TRUNCATE, from_index, ticket);
}

int mc_wal_compact(struct mc_wal *w, uint64_t upto_index, uint64_t *ticket)
{
    return queue_simple(w, OP_COMPACT, upto_index, ticket);
}

int mc_wal_reset(struct mc_wal *w, uint64_t next_index, uint64_t *ticket)
{
    if (next_index == 0) {
        return MC_EINVAL;
    }
    return queue_simple(w, OP_RESET, next_index, ticket);
}

int mc_wal_sync(struct mc_wal *w)
{
    pthread_mutex_lock(&w->mu);
    uint64_t target = w->next_ticket - 1;
    while (LOAD(w->done_ticket) < target && !LOAD(w->error)) {
        pthread_cond_wait(&w->done_cv, &w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return LOAD(w->error);
}

int mc_wal_iterate(struct mc_wal *w, uint64_t lo, uint64_t hi, mc_wal_visit_fn fn, void *ctx)
{
    uint8_t *buf = NULL;
    size_t cap = 0;
    int rc = 0;
    for (uint64_t i = lo; i <= hi && rc == 0 && i != 0; i++) { /* i != 0: never wraps */
        pthread_mutex_lock(&w->mu);
        const struct wal_pos *p = wal_pos_get(&w->pos, i);
        if (!p) {
            pthread_mutex_unlock(&w->mu);
            rc = MC_ENOTFOUND;
            break;
        }
        int fd = -1;
        const char *path = "";
        for (size_t s = 0; s < w->nsegs; s++) {
            if (w->segs[s].seq == p->seq) {
                fd = w->segs[s].fd;
                path = w->segs[s].path;
                break;
            }
        }
        assert(fd >= 0);
        uint8_t hdr[WAL_FRAME_HDR_BYTES];
        ssize_t n = w->fs->pread(w->fs->ctx, fd, hdr, sizeof(hdr), (off_t)p->off);
        size_t fb = n == (ssize_t)sizeof(hdr) ? wal_frame_bytes(mc_get_u32le(hdr + 8)) : 0;
        if (fb && mc_get_u32le(hdr + 8) <= MC_WAL_RECORD_MAX_BYTES) {
            if (fb > cap) {
                uint8_t *nb = realloc(buf, fb);
                if (!nb) {
                    pthread_mutex_unlock(&w->mu);
                    rc = MC_ENOMEM;
                    break;
                }
                buf = nb;
                cap = fb;
            }
            n = w->fs->pread(w->fs->ctx, fd, buf, fb, (off_t)p->off);
        }
        pthread_mutex_unlock(&w->mu);
        struct mc_wal_record r;
        size_t got;
        if (!fb || n != (ssize_t)fb || wal_frame_decode(buf, fb, &r, &got) != WAL_FRAME_OK ||
            r.index != i) {
            MC_ERROR("wal_read_corrupt", "file=%s offset=%llu index=%llu", path,
                     (unsigned long long)p->off, (unsigned long long)i);
            rc = n < 0 ? MC_EIO : MC_ECORRUPT;
            break;
        }
        rc = fn(ctx, &r);
    }
    free(buf);
    return rc;
}

void mc_wal_get_stats(struct mc_wal *w, struct mc_wal_stats *out)
{
    out->groups = LOAD(w->stats.groups);
    out->fdatasyncs = LOAD(w->stats.fdatasyncs);
    out->records = LOAD(w->stats.records);
    out->bytes_written = LOAD(w->stats.bytes_written);
    out->segments = LOAD(w->stats.segments);
    out->segment_rolls = LOAD(w->stats.segment_rolls);
}
