/* snap.c: snapshot files: create (engine copy streamed to disk in synced steps + header), verify,
 * list/latest/prune, chunked read, copy (for `snapshot save`). */
#include "storage/snap_internal.h"
#include "storage/trash.h"
#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/clock.h"
#include "util/codec.h"
#include "util/log.h"

#include <dirent.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void snap_header_encode(uint8_t *b, const struct mc_snap_info *in)
{
    memset(b, 0, MC_SNAP_HEADER_BYTES);
    memcpy(b, SNAP_MAGIC, 8);
    mc_put_u32le(b + 8, SNAP_VERSION);
    mc_put_u32le(b + 12, in->membership_len);
    mc_put_u64le(b + 16, in->index);
    mc_put_u64le(b + 24, in->term);
    mc_put_u64le(b + 32, MC_SNAP_HEADER_BYTES);
    mc_put_u64le(b + 40, in->data_size);
    mc_put_u64le(b + 48, in->data_checksum);
    mc_put_u64le(b + 56, (uint64_t)mc_wall_ns());
    memcpy(b + 64, in->membership, in->membership_len);
    mc_put_u64le(b + SNAP_HDR_SUM_OFF, mc_checksum64(b, SNAP_HDR_SUM_OFF));
}

int snap_header_decode(const uint8_t *b, struct mc_snap_info *out)
{
    if (memcmp(b, SNAP_MAGIC, 8) != 0 ||
        mc_get_u64le(b + SNAP_HDR_SUM_OFF) != mc_checksum64(b, SNAP_HDR_SUM_OFF)) {
        return MC_ECORRUPT;
    }
    if (mc_get_u32le(b + 8) != SNAP_VERSION) {
        return MC_EVERSION;
    }
    uint32_t mlen = mc_get_u32le(b + 12);
    if (mlen > MC_SNAP_MEMBERSHIP_MAX_BYTES || mc_get_u64le(b + 32) != MC_SNAP_HEADER_BYTES) {
        return MC_ECORRUPT;
    }
    out->membership_len = mlen;
    out->index = mc_get_u64le(b + 16);
    out->term = mc_get_u64le(b + 24);
    out->data_offset = MC_SNAP_HEADER_BYTES;
    out->data_size = mc_get_u64le(b + 40);
    out->data_checksum = mc_get_u64le(b + 48);
    out->file_size = out->data_offset + out->data_size;
    memcpy(out->membership, b + 64, mlen);
    return 0;
}

/* XXH3 of [off, off+len) of fd, read in chunks. */
int snap_checksum_range(const struct mc_fs_ops *fs, int fd, uint64_t off, uint64_t len,
                        uint64_t *out)
{
    uint8_t *buf = malloc(MC_SNAP_CHUNK_MAX_BYTES);
    struct mc_digest d;
    if (!buf || mc_digest_init(&d)) {
        free(buf);
        return MC_ENOMEM;
    }
    int rc = 0;
    while (len > 0) {
        size_t want = len < MC_SNAP_CHUNK_MAX_BYTES ? (size_t)len : MC_SNAP_CHUNK_MAX_BYTES;
        ssize_t n = fs->pread(fs->ctx, fd, buf, want, (off_t)off);
        if (n <= 0) {
            rc = n < 0 ? mc_fs_errno_to_mc((int)n) : MC_ECORRUPT;
            break;
        }
        mc_digest_update(&d, buf, (size_t)n);
        off += (uint64_t)n;
        len -= (uint64_t)n;
    }
    uint64_t h = mc_digest_final(&d);
    free(buf);
    if (rc == 0) {
        *out = h;
    }
    return rc;
}

void snap_name(char *out, size_t n, const char *dir, uint64_t index, uint64_t term,
               const char *suffix)
{
    snprintf(out, n, "%s/snap-%016llx-%016llx.snap%s", dir, (unsigned long long)index,
             (unsigned long long)term, suffix);
}

/* XXH3 of no bytes (what snap_checksum_range computes for an empty data range). */
static int snap_digest_empty(uint64_t *out)
{
    struct mc_digest d;
    if (mc_digest_init(&d)) {
        return MC_ENOMEM;
    }
    *out = mc_digest_final(&d);
    return 0;
}

/*
 * Streaming the copy to disk. write_data produces the image with write(2) into a pipe on a
 * helper thread; this thread pwrites it into the file, digests it on the way (no read-back pass)
 * and keeps the file's dirty backlog at about two steps: after each step it starts writeback of
 * that step and waits for the previous one (the classic sync_file_range streaming pattern).
 * Why: a copy written in one go leaves tens of MB dirty for the final fsync, and on ext4
 * data=ordered the WAL's fdatasync (a journal commit) waits behind it (issue 8, the write tail).
 * Stepped, the final fsync finds little left. Pages already on disk are dropped from the cache.
 */
struct copy_thread {
    mc_snap_write_fn write_data;
    void *ctx;
    int fd; /* pipe write end; closed by the thread when write_data returns */
    int rc;
};

static void *copy_thread_main(void *arg)
{
    struct copy_thread *t = arg;
    t->rc = t->write_data(t->ctx, t->fd);
    close(t->fd);
    return NULL;
}

void snap_steps_init(struct snap_steps *s, uint64_t off)
{
    s->step_start = s->prev_start = off;
    s->steps = 0;
}

int snap_steps_advance(struct snap_steps *s, const struct mc_fs_ops *fs, int fd, uint64_t off)
{
    if (off - s->step_start < MC_SNAP_SYNC_STEP_BYTES) {
        return 0;
    }
    int e = fs->sync_file_range(fs->ctx, fd, (off_t)s->step_start, (off_t)(off - s->step_start),
                                SYNC_FILE_RANGE_WRITE);
    if (e == 0 && s->step_start > s->prev_start) {
        off_t len = (off_t)(s->step_start - s->prev_start);
        e = fs->sync_file_range(fs->ctx, fd, (off_t)s->prev_start, len,
                                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER);
        if (e == 0) {
            (void)posix_fadvise(fd, (off_t)s->prev_start, len, POSIX_FADV_DONTNEED);
        }
    }
    if (e) {
        MC_ERROR("snapshot_writeback_failed", "offset=%llu err=%s",
                 (unsigned long long)s->prev_start, mc_error_name(mc_fs_errno_to_mc(e)));
        return mc_fs_errno_to_mc(e) == MC_ENOSPC ? MC_ENOSPC : MC_EIO;
    }
    s->prev_start = s->step_start;
    s->step_start = off;
    s->steps++;
    return 0;
}

/* Drain the pipe into fd from MC_SNAP_HEADER_BYTES on; *size = bytes of data, *sum = their XXH3.
 * Reads to EOF even after an error, so the producer never blocks on a full pipe. */
static int stream_to_file(const struct mc_fs_ops *fs, int in, int fd, uint64_t *size, uint64_t *sum,
                          uint32_t *steps)
{
    uint8_t *buf = malloc(MC_SNAP_CHUNK_MAX_BYTES);
    struct mc_digest d;
    if (!buf || mc_digest_init(&d)) {
        free(buf);
        buf = NULL;
    }
    int rc = buf ? 0 : MC_ENOMEM;
    uint64_t off = MC_SNAP_HEADER_BYTES;
    struct snap_steps st;
    snap_steps_init(&st, off);
    uint8_t sink[4096];
    for (;;) {
        ssize_t n = read(in, rc ? sink : buf, rc ? sizeof(sink) : MC_SNAP_CHUNK_MAX_BYTES);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            if (n < 0 && rc == 0) {
                rc = MC_EIO;
                continue; /* keep draining */
            }
            break;
        }
        if (rc) {
            continue;
        }
        mc_digest_update(&d, buf, (size_t)n);
        ssize_t w = fs->pwrite(fs->ctx, fd, buf, (size_t)n, (off_t)off);
        if (w != n) {
            rc = w < 0 ? mc_fs_errno_to_mc((int)w) : MC_EIO;
            continue;
        }
        off += (uint64_t)n;
        rc = snap_steps_advance(&st, fs, fd, off);
    }
    *steps = st.steps;
    if (buf) {
        uint64_t h = mc_digest_final(&d);
        if (rc == 0) {
            *sum = h;
            *size = off - MC_SNAP_HEADER_BYTES;
        }
    }
    free(buf);
    return rc;
}

/* The data comes from write_data on a helper thread started here, or (in >= 0) from a pipe a
 * producer the caller started writes into; finish(fctx) then joins it and gives its result. */
static int create_file(const char *snap_dir, const struct mc_fs_ops *fs, uint64_t index,
                       uint64_t term, const void *membership, size_t membership_len,
                       mc_snap_write_fn write_data, void *ctx, int in, int (*finish)(void *),
                       void *fctx, struct mc_snap_info *out)
{
    fs = fs ? fs : mc_fs_default();
    struct mc_snap_info *info = NULL;
    uint8_t *hdr = NULL;
    char tmp[MC_DATADIR_PATH_MAX];
    int fd = -1, rc = 0, pfd[2] = {-1, -1};
    if (membership_len > MC_SNAP_MEMBERSHIP_MAX_BYTES ||
        strlen(snap_dir) > MC_DATADIR_PATH_MAX - 64) {
        rc = MC_EINVAL;
        goto done;
    }
    info = calloc(1, sizeof(*info));
    hdr = calloc(1, MC_SNAP_HEADER_BYTES);
    if (!info || !hdr) {
        rc = MC_ENOMEM;
        goto done;
    }
    info->index = index;
    info->term = term;
    info->membership_len = (uint32_t)membership_len;
    if (membership_len) {
        memcpy(info->membership, membership, membership_len);
    }
    snap_name(info->path, sizeof(info->path), snap_dir, index, term, "");
    snap_name(tmp, sizeof(tmp), snap_dir, index, term, ".tmp");
    fd = fs->open(fs->ctx, tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        rc = mc_fs_errno_to_mc(fd);
        goto done;
    }
    uint64_t t0 = mc_mono_ms();
    if (in >= 0) {
        rc = stream_to_file(fs, in, fd, &info->data_size, &info->data_checksum, &info->write_steps);
        int frc = finish(fctx); /* the producer saw EOF or EPIPE: joins at once */
        close(in);
        in = -1;
        rc = rc ? rc : frc;
        goto header;
    }
    if (!write_data) {
        rc = snap_digest_empty(&info->data_checksum); /* header only: a compaction point */
        goto header;
    }
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        rc = MC_EIO;
        goto done;
    }
    (void)fcntl(pfd[1], F_SETPIPE_SZ, 1 << 20); /* fewer wakeups; the default 64 KiB also works */
    struct copy_thread ct = {.write_data = write_data, .ctx = ctx, .fd = pfd[1]};
    pthread_t th;
    if (pthread_create(&th, NULL, copy_thread_main, &ct) != 0) {
        close(pfd[1]);
        close(pfd[0]);
        rc = MC_ENOMEM;
        goto done;
    }
    rc = stream_to_file(fs, pfd[0], fd, &info->data_size, &info->data_checksum, &info->write_steps);
    pthread_join(th, NULL); /* the thread closed pfd[1]: stream_to_file read to EOF */
    close(pfd[0]);
    if (rc == 0) {
        rc = ct.rc;
    }
header:
    if (rc) {
        goto done;
    }
    info->data_offset = MC_SNAP_HEADER_BYTES;
    info->file_size = MC_SNAP_HEADER_BYTES + info->data_size;
    snap_header_encode(hdr, info);
    ssize_t n = fs->pwrite(fs->ctx, fd, hdr, MC_SNAP_HEADER_BYTES, 0);
    if (n != MC_SNAP_HEADER_BYTES) {
        rc = n < 0 ? mc_fs_errno_to_mc((int)n) : MC_EIO;
        goto done;
    }
    uint64_t t_sync = mc_mono_ms();
    int s = fs->fsync(fs->ctx, fd);
    if (s < 0) {
        rc = mc_fs_errno_to_mc(s);
        goto done;
    }
    t_sync = mc_mono_ms() - t_sync;
    fs->close(fs->ctx, fd);
    fd = -1;
    s = fs->rename(fs->ctx, tmp, info->path);
    if (s < 0) {
        rc = mc_fs_errno_to_mc(s);
        goto done;
    }
    rc = mc_fs_fsync_dir(fs, snap_dir);
    if (rc == 0) {
        MC_INFO("snapshot_created",
                "path=%s index=%llu term=%llu size_bytes=%llu ms=%llu steps=%u fsync_ms=%llu",
                info->path, (unsigned long long)index, (unsigned long long)term,
                (unsigned long long)info->file_size, (unsigned long long)(mc_mono_ms() - t0),
                info->write_steps, (unsigned long long)t_sync);
        if (out) {
            *out = *info;
        }
    }
done:
    if (in >= 0) {
        close(in); /* the producer gets EPIPE */
        finish(fctx);
    }
    if (fd >= 0) {
        fs->close(fs->ctx, fd);
    }
    if (rc && info) {
        fs->unlink(fs->ctx, tmp);
    }
    free(info);
    free(hdr);
    return rc;
}

int mc_snap_create(const char *snap_dir, const struct mc_fs_ops *fs, uint64_t index, uint64_t term,
                   const void *membership, size_t membership_len, mc_snap_write_fn write_data,
                   void *ctx, struct mc_snap_info *out)
{
    return create_file(snap_dir, fs, index, term, membership, membership_len, write_data, ctx, -1,
                       NULL, NULL, out);
}

int mc_snap_create_from_pipe(const char *snap_dir, const struct mc_fs_ops *fs, uint64_t index,
                             uint64_t term, const void *membership, size_t membership_len, int in,
                             int (*finish)(void *ctx), void *ctx, struct mc_snap_info *out)
{
    assert(in >= 0 && finish);
    return create_file(snap_dir, fs, index, term, membership, membership_len, NULL, NULL, in,
                       finish, ctx, out);
}

int snap_read_info_fd(const struct mc_fs_ops *fs, int fd, bool verify_data,
                      struct mc_snap_info *out)
{
    uint8_t *hdr = malloc(MC_SNAP_HEADER_BYTES);
    if (!hdr) {
        return MC_ENOMEM;
    }
    ssize_t n = fs->pread(fs->ctx, fd, hdr, MC_SNAP_HEADER_BYTES, 0);
    int rc = n == MC_SNAP_HEADER_BYTES ? snap_header_decode(hdr, out)
                                       : (n < 0 ? mc_fs_errno_to_mc((int)n) : MC_ECORRUPT);
    free(hdr);
    if (rc) {
        return rc;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        return MC_EIO;
    }
    if ((uint64_t)st.st_size != out->file_size) {
        return MC_ECORRUPT;
    }
    if (verify_data) {
        uint64_t h;
        rc = snap_checksum_range(fs, fd, out->data_offset, out->data_size, &h);
        if (rc) {
            return rc;
        }
        if (h != out->data_checksum) {
            return MC_ECORRUPT;
        }
    }
    return 0;
}

int mc_snap_read_info(const char *path, bool verify_data, struct mc_snap_info *out)
{
    const struct mc_fs_ops *fs = mc_fs_default();
    int fd = fs->open(fs->ctx, path, O_RDONLY, 0);
    if (fd < 0) {
        return mc_fs_errno_to_mc(fd);
    }
    int rc = snap_read_info_fd(fs, fd, verify_data, out);
    fs->close(fs->ctx, fd);
    if (rc == 0) {
        snprintf(out->path, sizeof(out->path), "%s", path);
    }
    return rc;
}

/* Snapshot files in dir, newest (index, then term) first. */
struct snap_ent {
    uint64_t index, term;
    char name[64];
};

static int cmp_ent(const void *a, const void *b)
{
    const struct snap_ent *x = a, *y = b;
    if (x->index != y->index) {
        return x->index > y->index ? -1 : 1;
    }
    return x->term > y->term ? -1 : x->term < y->term;
}

static int list_names(const char *dir, struct snap_ent **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        return errno == ENOENT ? 0 : MC_EIO;
    }
    size_t cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long idx, term;
        char tail[8];
        /* Exactly "snap-<16 hex>-<16 hex>.snap": not .tmp, .corrupt, nor a pruned image on its
         * way out ("<name>.del", the trash's: mc_snap_prune). */
        if (strlen(e->d_name) != 43 ||
            sscanf(e->d_name, "snap-%16llx-%16llx.%7s", &idx, &term, tail) != 3 ||
            strcmp(tail, "snap") != 0) {
            continue;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 8;
            struct snap_ent *ne = realloc(*out, cap * sizeof(*ne));
            if (!ne) {
                closedir(d);
                free(*out);
                *out = NULL;
                return MC_ENOMEM;
            }
            *out = ne;
        }
        (*out)[*n].index = idx;
        (*out)[*n].term = term;
        memcpy((*out)[*n].name, e->d_name, 44); /* length checked above: 43 + NUL */
        (*n)++;
    }
    closedir(d);
    if (*n) {
        qsort(*out, *n, sizeof(**out), cmp_ent);
    }
    return 0;
}

/* The newest valid snapshot file (verify_data: its data checksum too); with images_only, the
 * newest one holding an engine image. */
static int latest(const char *snap_dir, bool images_only, bool verify_data,
                  struct mc_snap_info *out)
{
    struct snap_ent *v;
    size_t n;
    int rc = list_names(snap_dir, &v, &n);
    if (rc) {
        return rc;
    }
    rc = MC_ENOTFOUND;
    for (size_t i = 0; i < n; i++) {
        char path[MC_DATADIR_PATH_MAX];
        if (mc_datadir_path(snap_dir, v[i].name, path, sizeof(path))) {
            continue;
        }
        int r = mc_snap_read_info(path, verify_data, out);
        if (r == 0 && images_only && out->data_size == 0) {
            continue;
        }
        if (r == 0 && out->index == v[i].index && out->term == v[i].term) {
            rc = 0;
            break;
        }
        MC_WARN("snapshot_invalid", "path=%s err=%s action=skipped", path,
                mc_error_name(r ? r : MC_ECORRUPT));
    }
    free(v);
    return rc;
}

int mc_snap_latest(const char *snap_dir, struct mc_snap_info *out)
{
    return latest(snap_dir, false, true, out);
}

int mc_snap_latest_header(const char *snap_dir, bool images_only, struct mc_snap_info *out)
{
    return latest(snap_dir, images_only, false, out);
}

int mc_snap_list(const char *snap_dir, struct mc_snap_info *out, size_t max, size_t *n)
{
    struct snap_ent *v;
    size_t cnt;
    int rc = list_names(snap_dir, &v, &cnt);
    if (rc) {
        return rc;
    }
    *n = 0;
    for (size_t i = 0; i < cnt && *n < max; i++) {
        char path[MC_DATADIR_PATH_MAX];
        if (mc_datadir_path(snap_dir, v[i].name, path, sizeof(path)) == 0 &&
            mc_snap_read_info(path, false, &out[*n]) == 0) {
            (*n)++;
        }
    }
    free(v);
    return 0;
}

/* Take one pruned file away: an image to the trash as "<name>.del" (trash.c says why; then
 * *trashed), else (header only, no trash, a full queue) unlinked. 0; MC_ENOTFOUND when the file
 * was already gone (set aside meanwhile); or the failed call's error. */
static int prune_remove(const struct mc_fs_ops *fs, const char *path, bool image,
                        struct mc_trash *trash, bool *trashed)
{
    *trashed = false;
    char del[MC_DATADIR_PATH_MAX + 8];
    int len = snprintf(del, sizeof(del), "%s.del", path);
    bool slow = trash && image && len > 0 && (size_t)len < MC_DATADIR_PATH_MAX; /* the trash's */
    if (slow) {
        int r = fs->rename(fs->ctx, path, del);
        if (r == -ENOENT) {
            return MC_ENOTFOUND;
        }
        if (r < 0) {
            MC_WARN("snapshot_prune_rename_failed", "path=%s err=%s reason=\"unlinked at once\"",
                    path, mc_error_name(mc_fs_errno_to_mc(r)));
        } else if (mc_trash_add(trash, del) == 0) {
            *trashed = true;
            return 0;
        } else {
            /* The queue is full or closing: at once, as the WAL does. Renamed by us, so it was
             * not gone: an ENOENT now is no reason to say so. */
            int u = fs->unlink(fs->ctx, del);
            return u < 0 && u != -ENOENT ? mc_fs_errno_to_mc(u) : 0;
        }
    }
    int u = fs->unlink(fs->ctx, path);
    return u == -ENOENT ? MC_ENOTFOUND : u < 0 ? mc_fs_errno_to_mc(u) : 0;
}

/* Whether path is to be skipped: a stream holds it open. Why that is safe and bounded: a skipped
 * file is only an extra file kept (nothing relies on it being gone: lookups take the newest),
 * and every later prune (each new snapshot, each install) tries it again; the node also prunes
 * again once the last holder of a skipped file lets it go (node_snap_prune_due), so it goes
 * when the stream ends, not with the next snapshot (which on an idle cluster may be a while
 * off). At most one file per stream is kept so: a node streams to at most MC_RAFT_MAX_NODES
 * followers and one `snapshot save` at a time, each stream holds one image, and streams end
 * (done, cancelled, timed out, node stopped). */
static bool prune_in_use(const struct mc_snap_prune_opts *o, const char *path)
{
    return o && o->in_use && o->in_use(o->ctx, path);
}

int mc_snap_prune(const char *snap_dir, const struct mc_fs_ops *fs, int keep,
                  const struct mc_snap_prune_opts *o)
{
    fs = fs ? fs : mc_fs_default();
    struct snap_ent *v;
    size_t n;
    int rc = list_names(snap_dir, &v, &n);
    if (rc) {
        return rc;
    }
    bool unlinked = false, image_kept = false;
    for (size_t i = 0; i < n; i++) {
        char path[MC_DATADIR_PATH_MAX];
        if (mc_datadir_path(snap_dir, v[i].name, path, sizeof(path))) {
            continue;
        }
        /* The newest engine image is the base the engine is rebuilt from after a power loss
         * (node_recover.c): never pruned, however many header-only files came after it. */
        struct stat st;
        bool has_image = stat(path, &st) == 0 && (uint64_t)st.st_size > MC_SNAP_HEADER_BYTES;
        bool newest_image = !image_kept && has_image;
        image_kept = image_kept || has_image;
        if (i < (size_t)(keep < 0 ? 0 : keep) || newest_image) {
            continue;
        }
        if (o && o->mu) {
            pthread_mutex_lock(o->mu);
        }
        bool skip = prune_in_use(o, path), trashed = false;
        int r = skip ? 0 : prune_remove(fs, path, has_image, o ? o->trash : NULL, &trashed);
        if (o && o->mu) {
            pthread_mutex_unlock(o->mu);
        }
        if (skip) {
            MC_INFO("snapshot_prune_deferred", "path=%s reason=in_use", path);
            continue;
        }
        if (r == MC_ENOTFOUND) {
            MC_DEBUG("snapshot_prune_gone", "path=%s", path); /* not ours to log as pruned */
            continue;
        }
        rc = rc ? rc : r;
        unlinked = unlinked || !trashed;
        MC_INFO("snapshot_pruned", "path=%s trash=%d", path, trashed ? 1 : 0);
    }
    free(v);
    /* Synced here only for a file unlinked here. An image handed to the trash was renamed, and
     * the trash syncs the directory before its first cut (trash.c rename_durable): that fsync
     * makes the rename durable, and it has to be the trash's (it may cut before a sync here
     * would run). A second here repeated it (session 18); until the trash's, a crash finds the
     * image whole under its old name, as after a crash before the prune. */
    if (unlinked && rc == 0) {
        rc = mc_fs_fsync_dir(fs, snap_dir);
    }
    return rc;
}

/* A stream's image, held open from its first chunk to its end: a newer image renamed over the
 * name, or a prune, does not change the bytes the stream reads (storage.h). A prune never
 * takes a file a stream registered (mc_snap_prune_opts.in_use), so no trash cuts it. A fresh
 * image renamed over the name is the one case left: the stream then holds an inode no name
 * points to, which no prune or trash can reach; its blocks are freed at once by the stream's
 * last close (on the threadpool: node_chunk_read.c), as before the trash. Rare (a second image
 * at the same index and term) and left so. */
struct mc_snap_chunk_file {
    int fd;
};

struct mc_snap_verify {
    struct mc_digest digest; /* freed by mc_digest_final once the verdict is in */
    uint64_t data_end, data_checksum;
    uint64_t next; /* file offset digested up to */
    int verdict;   /* 0 none yet, 1 matched, MC_ECORRUPT */
    bool gap;      /* a chunk skipped ahead: no verdict */
    dev_t dev;     /* the file checked (a new image at the same index replaces the name) */
    ino_t ino;
};

int mc_snap_verify_new(const struct mc_snap_info *info, struct mc_snap_verify **out)
{
    struct mc_snap_verify *v = calloc(1, sizeof(*v));
    *out = NULL;
    if (!v || mc_digest_init(&v->digest)) {
        free(v);
        return MC_ENOMEM;
    }
    struct stat st;
    if (stat(info->path, &st) == 0) {
        v->dev = st.st_dev;
        v->ino = st.st_ino;
    }
    v->next = info->data_offset;
    v->data_end = info->data_offset + info->data_size;
    v->data_checksum = info->data_checksum;
    *out = v;
    return 0;
}

int mc_snap_verify_update(struct mc_snap_verify *v, uint64_t off, const void *buf, size_t len)
{
    if (v->verdict || v->gap) {
        return v->gap ? 0 : v->verdict;
    }
    if (off > v->next) {
        v->gap = true; /* bytes [next, off) will never be digested */
        return 0;
    }
    uint64_t end = off + len < v->data_end ? off + len : v->data_end;
    if (end > v->next) {
        mc_digest_update(&v->digest, (const uint8_t *)buf + (v->next - off),
                         (size_t)(end - v->next));
        v->next = end;
    }
    if (v->next == v->data_end) {
        v->verdict = mc_digest_final(&v->digest) == v->data_checksum ? 1 : MC_ECORRUPT;
    }
    return v->verdict;
}

void mc_snap_verify_free(struct mc_snap_verify *v)
{
    if (v && !v->verdict) {
        mc_digest_free(&v->digest);
    }
    free(v);
}

int mc_snap_chunk_open(const char *path, const struct mc_snap_verify *v,
                       struct mc_snap_chunk_file **out)
{
    *out = NULL;
    struct mc_snap_chunk_file *f = malloc(sizeof(*f));
    if (!f) {
        return MC_ENOMEM;
    }
    const struct mc_fs_ops *fs = mc_fs_default();
    f->fd = fs->open(fs->ctx, path, O_RDONLY, 0);
    if (f->fd < 0) {
        int rc = mc_fs_errno_to_mc(f->fd);
        free(f);
        return rc;
    }
    /* The stream's header (size, checksum) and v came from the file at lookup; a fresh image
     * renamed over the name since would be read against them: the stream looks up again. */
    struct stat st;
    int rc = 0;
    if (v && fstat(f->fd, &st) != 0) {
        rc = MC_EIO;
    } else if (v && (st.st_dev != v->dev || st.st_ino != v->ino)) {
        rc = MC_EBUSY;
    }
    if (rc) {
        mc_snap_chunk_close(f);
        return rc;
    }
    *out = f;
    return 0;
}

int mc_snap_chunk_read(struct mc_snap_chunk_file *f, uint64_t offset, void *buf, size_t len,
                       size_t *n)
{
    assert(f && f->fd >= 0);
    if (len > MC_SNAP_CHUNK_MAX_BYTES) {
        return MC_EINVAL;
    }
    const struct mc_fs_ops *fs = mc_fs_default();
    ssize_t got = fs->pread(fs->ctx, f->fd, buf, len, (off_t)offset);
    if (got < 0) {
        return mc_fs_errno_to_mc((int)got);
    }
    *n = (size_t)got;
    return 0;
}

void mc_snap_chunk_close(struct mc_snap_chunk_file *f)
{
    if (f) {
        const struct mc_fs_ops *fs = mc_fs_default();
        fs->close(fs->ctx, f->fd);
        free(f);
    }
}

int mc_snap_set_aside(const char *path, const struct mc_snap_verify *v)
{
    char to[MC_DATADIR_PATH_MAX + 16];
    snprintf(to, sizeof(to), "%s.corrupt", path);
    struct stat st;
    int rc = stat(path, &st) == 0 ? 0 : (errno == ENOENT ? MC_ENOTFOUND : MC_EIO);
    if (rc == 0 && v && (st.st_dev != v->dev || st.st_ino != v->ino)) {
        rc = MC_ENOTFOUND; /* replaced by a fresh image meanwhile: the stream read a mix */
    }
    if (rc == 0 && rename(path, to) != 0) {
        rc = errno == ENOENT ? MC_ENOTFOUND : MC_EIO;
    }
    MC_ERROR("snapshot_corrupt", "path=%s err=%s action=%s", path, mc_error_name(MC_ECORRUPT),
             rc == 0 ? "set_aside" : mc_error_name(rc));
    const char *base = strrchr(to, '/');
    char dir[MC_DATADIR_PATH_MAX + 16];
    if (rc == 0 && base && mc_fs_dir_of(path, dir, sizeof(dir)) == 0) {
        mc_fs_remove_others(NULL, dir, "snap-", ".snap.corrupt", base + 1,
                            "snapshot_corrupt_removed");
    }
    return rc;
}

/* Copy [off, off+len) of in to out at out_off, in chunks; digest on the way if d != NULL. */
int snap_copy_range(const struct mc_fs_ops *fs, int in, uint64_t off, uint64_t len, int out,
                    uint64_t out_off, struct mc_digest *d)
{
    uint8_t *buf = malloc(MC_SNAP_CHUNK_MAX_BYTES);
    if (!buf) {
        return MC_ENOMEM;
    }
    int rc = 0;
    struct snap_steps st;
    snap_steps_init(&st, out_off);
    while (len > 0) {
        size_t want = len < MC_SNAP_CHUNK_MAX_BYTES ? (size_t)len : MC_SNAP_CHUNK_MAX_BYTES;
        ssize_t n = fs->pread(fs->ctx, in, buf, want, (off_t)off);
        if (n <= 0) {
            rc = n < 0 ? mc_fs_errno_to_mc((int)n) : MC_ECORRUPT;
            break;
        }
        if (d) {
            mc_digest_update(d, buf, (size_t)n);
        }
        ssize_t w = fs->pwrite(fs->ctx, out, buf, (size_t)n, (off_t)out_off);
        if (w != n) {
            rc = w < 0 ? mc_fs_errno_to_mc((int)w) : MC_EIO;
            break;
        }
        off += (uint64_t)n;
        out_off += (uint64_t)n;
        len -= (uint64_t)n;
        rc = snap_steps_advance(&st, fs, out, out_off);
        if (rc) {
            break;
        }
    }
    free(buf);
    return rc;
}

int mc_snap_copy_file(const char *from_path, const char *to_path, const struct mc_fs_ops *fs)
{
    fs = fs ? fs : mc_fs_default();
    struct mc_snap_info *info = calloc(1, sizeof(*info));
    char tmp[MC_DATADIR_PATH_MAX + 8];
    int in = -1, out = -1, rc = 0;
    if (!info) {
        return MC_ENOMEM;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", to_path);
    in = fs->open(fs->ctx, from_path, O_RDONLY, 0);
    if (in < 0) {
        rc = mc_fs_errno_to_mc(in);
        goto done;
    }
    rc = snap_read_info_fd(fs, in, true, info);
    if (rc) {
        goto done;
    }
    out = fs->open(fs->ctx, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        rc = mc_fs_errno_to_mc(out);
        goto done;
    }
    rc = snap_copy_range(fs, in, 0, info->file_size, out, 0, NULL);
    if (rc == 0) {
        int s = fs->fsync(fs->ctx, out);
        rc = s < 0 ? mc_fs_errno_to_mc(s) : 0;
    }
    fs->close(fs->ctx, out);
    out = -1;
    if (rc == 0) {
        int s = fs->rename(fs->ctx, tmp, to_path);
        rc = s < 0 ? mc_fs_errno_to_mc(s) : 0;
    }
    if (rc == 0) {
        char dir[MC_DATADIR_PATH_MAX];
        rc = mc_fs_dir_of(to_path, dir, sizeof(dir));
        rc = rc ? rc : mc_fs_fsync_dir(fs, dir);
    } else {
        fs->unlink(fs->ctx, tmp);
    }
done:
    if (in >= 0) {
        fs->close(fs->ctx, in);
    }
    free(info);
    return rc;
}
