/* snap_xfer.c: receiving a snapshot in resumable chunks, and installing one as the engine's
 * directory by atomic swap (renameat2 RENAME_EXCHANGE). */
#include "storage/snap_internal.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct mc_snap_recv {
    const struct mc_fs_ops *fs;
    int fd;
    uint64_t index, term;
    uint64_t offset;
    struct snap_steps steps;
    char dir[MC_DATADIR_PATH_MAX];
    char part[MC_DATADIR_PATH_MAX];
};

/* recv-<index 16 hex>-<term 16 hex>.part: true and the pair when name is one */
static bool part_name_parse(const char *name, uint64_t *index, uint64_t *term)
{
    unsigned long long i, t;
    int end = 0;
    if (strlen(name) != 43 || sscanf(name, "recv-%16llx-%16llx.part%n", &i, &t, &end) != 2 ||
        end != 43) {
        return false;
    }
    *index = i;
    *term = t;
    return true;
}

int snap_recv_prune(const char *snap_dir, const struct mc_fs_ops *fs, bool keep_newest,
                    uint64_t keep_index, uint64_t keep_term)
{
    fs = fs ? fs : mc_fs_default();
    DIR *d = opendir(snap_dir);
    if (!d) {
        return errno == ENOENT ? 0 : MC_EIO;
    }
    struct dirent *e;
    uint64_t i, t;
    if (keep_newest) { /* first pass: the newest (index, term) present */
        keep_index = keep_term = 0;
        while ((e = readdir(d)) != NULL) {
            if (part_name_parse(e->d_name, &i, &t) &&
                (i > keep_index || (i == keep_index && t > keep_term))) {
                keep_index = i;
                keep_term = t;
            }
        }
        rewinddir(d);
    }
    int rc = 0, removed = 0;
    while ((e = readdir(d)) != NULL) {
        if (!part_name_parse(e->d_name, &i, &t) || (i == keep_index && t == keep_term)) {
            continue;
        }
        char path[MC_DATADIR_PATH_MAX];
        struct stat st;
        if (mc_datadir_path(snap_dir, e->d_name, path, sizeof(path))) {
            continue;
        }
        uint64_t bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
        int u = fs->unlink(fs->ctx, path);
        if (u < 0 && u != -ENOENT) {
            rc = mc_fs_errno_to_mc(u);
            continue;
        }
        removed++;
        MC_INFO("snapshot_recv_part_removed", "path=%s bytes=%llu kept_index=%llu", path,
                (unsigned long long)bytes, (unsigned long long)keep_index);
    }
    closedir(d);
    return rc ? rc : removed ? mc_fs_fsync_dir(fs, snap_dir) : 0;
}

int mc_snap_recv_open(const char *snap_dir, const struct mc_fs_ops *fs, uint64_t index,
                      uint64_t term, struct mc_snap_recv **out)
{
    *out = NULL;
    if (strlen(snap_dir) > MC_DATADIR_PATH_MAX - 64) {
        return MC_EINVAL;
    }
    struct mc_snap_recv *r = calloc(1, sizeof(*r));
    if (!r) {
        return MC_ENOMEM;
    }
    r->fs = fs ? fs : mc_fs_default();
    r->index = index;
    r->term = term;
    snprintf(r->dir, sizeof(r->dir), "%s", snap_dir);
    snprintf(r->part, sizeof(r->part), "%s/recv-%016llx-%016llx.part", snap_dir,
             (unsigned long long)index, (unsigned long long)term);
    /* Only one receive at a time: a .part of another image (a crash, a send abandoned for a
     * newer image) would never be resumed, and each can be engine-sized. */
    int prc = snap_recv_prune(snap_dir, r->fs, false, index, term);
    if (prc) {
        MC_WARN("snapshot_recv_prune_failed", "dir=%s err=%s", snap_dir, mc_error_name(prc));
    }
    r->fd = r->fs->open(r->fs->ctx, r->part, O_RDWR | O_CREAT, 0644);
    if (r->fd < 0) {
        int rc = mc_fs_errno_to_mc(r->fd);
        free(r);
        return rc;
    }
    struct stat st;
    if (fstat(r->fd, &st) < 0) {
        r->fs->close(r->fs->ctx, r->fd);
        free(r);
        return MC_EIO;
    }
    /* resume: whatever reached the file counts; the final checksum catches any garbage */
    r->offset = (uint64_t)st.st_size;
    snap_steps_init(&r->steps, r->offset);
    if (r->offset) {
        MC_INFO("snapshot_recv_resume", "path=%s offset=%llu", r->part,
                (unsigned long long)r->offset);
    }
    *out = r;
    return 0;
}

uint64_t mc_snap_recv_offset(const struct mc_snap_recv *r)
{
    return r->offset;
}

int mc_snap_recv_write(struct mc_snap_recv *r, uint64_t offset, const void *data, size_t len)
{
    if (offset != r->offset || len > MC_SNAP_CHUNK_MAX_BYTES) {
        return MC_EINVAL;
    }
    ssize_t n = r->fs->pwrite(r->fs->ctx, r->fd, data, len, (off_t)offset);
    if (n != (ssize_t)len) {
        return n < 0 ? mc_fs_errno_to_mc((int)n) : MC_EIO;
    }
    r->offset += len;
    return snap_steps_advance(&r->steps, r->fs, r->fd, r->offset);
}

void mc_snap_recv_abort(struct mc_snap_recv *r, bool discard)
{
    if (!r) {
        return;
    }
    r->fs->close(r->fs->ctx, r->fd);
    if (discard) {
        r->fs->unlink(r->fs->ctx, r->part);
    }
    free(r);
}

int mc_snap_recv_finish(struct mc_snap_recv *r, struct mc_snap_info *out)
{
    struct mc_snap_info *info = calloc(1, sizeof(*info));
    int rc = info ? snap_read_info_fd(r->fs, r->fd, true, info) : MC_ENOMEM;
    if (rc == 0 && (info->index != r->index || info->term != r->term)) {
        rc = MC_ECORRUPT;
    }
    if (rc) {
        MC_WARN("snapshot_recv_rejected", "path=%s err=%s action=discarded", r->part,
                mc_error_name(rc));
        mc_snap_recv_abort(r, true);
        free(info);
        return rc;
    }
    int s = r->fs->fsync(r->fs->ctx, r->fd);
    if (s == 0) {
        snap_name(info->path, sizeof(info->path), r->dir, r->index, r->term, "");
        s = r->fs->rename(r->fs->ctx, r->part, info->path);
    }
    rc = s < 0 ? mc_fs_errno_to_mc(s) : mc_fs_fsync_dir(r->fs, r->dir);
    if (rc == 0 && out) {
        *out = *info;
    }
    mc_snap_recv_abort(r, rc != 0);
    free(info);
    return rc;
}

/* The engine dir (DATADIR/engine or where it links to: mc_datadir_engine_dir), its staging
 * sibling "<engdir>.new", the staged data.mdb, and the dir holding both (fsynced after a swap). */
static int install_paths(const char *datadir, char *newdir, char *engdir, char *data, char *parent)
{
    if (mc_datadir_engine_dir(datadir, engdir, MC_DATADIR_PATH_MAX)) {
        return MC_EINVAL;
    }
    int w = snprintf(newdir, MC_DATADIR_PATH_MAX, "%s.new", engdir);
    if (w < 0 || w >= MC_DATADIR_PATH_MAX ||
        mc_datadir_path(newdir, "data.mdb", data, MC_DATADIR_PATH_MAX)) {
        return MC_EINVAL;
    }
    return mc_fs_dir_of(engdir, parent, MC_DATADIR_PATH_MAX);
}

int mc_snap_install_prepare(const char *datadir, const struct mc_fs_ops *fs, const char *snap_path)
{
    fs = fs ? fs : mc_fs_default();
    char newdir[MC_DATADIR_PATH_MAX], engdir[MC_DATADIR_PATH_MAX], data[MC_DATADIR_PATH_MAX];
    char parent[MC_DATADIR_PATH_MAX];
    if (install_paths(datadir, newdir, engdir, data, parent)) {
        return MC_EINVAL;
    }
    struct mc_snap_info *info = calloc(1, sizeof(*info));
    int in = -1, out = -1, rc;
    uint64_t t0 = mc_mono_ms();
    if (!info) {
        return MC_ENOMEM;
    }
    in = fs->open(fs->ctx, snap_path, O_RDONLY, 0);
    if (in < 0) {
        rc = mc_fs_errno_to_mc(in);
        goto done;
    }
    rc = snap_read_info_fd(fs, in, false, info);
    if (rc) {
        goto done;
    }
    if (info->data_size == 0) {
        rc = MC_EINVAL; /* a header-only compaction point holds no engine image */
        goto done;
    }
    /* engine.new/data.mdb: a full copy, checksummed on the way, fsynced with its dir */
    rc = mc_fs_remove_tree(fs, newdir);
    if (rc) {
        goto done;
    }
    int m = fs->mkdir(fs->ctx, newdir, 0755);
    if (m < 0) {
        rc = mc_fs_errno_to_mc(m);
        goto done;
    }
    out = fs->open(fs->ctx, data, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (out < 0) {
        rc = mc_fs_errno_to_mc(out);
        goto done;
    }
    struct mc_digest d;
    if (mc_digest_init(&d)) {
        rc = MC_ENOMEM;
        goto done;
    }
    rc = snap_copy_range(fs, in, info->data_offset, info->data_size, out, 0, &d);
    uint64_t h = mc_digest_final(&d);
    if (rc == 0 && h != info->data_checksum) {
        rc = MC_ECORRUPT;
    }
    if (rc) {
        goto done;
    }
    int s = fs->fsync(fs->ctx, out);
    if (s < 0) {
        rc = mc_fs_errno_to_mc(s);
        goto done;
    }
    fs->close(fs->ctx, out);
    out = -1;
    rc = mc_fs_fsync_dir(fs, newdir);
    if (rc == 0) {
        MC_INFO("snapshot_install_prepared", "path=%s index=%llu term=%llu size_bytes=%llu ms=%llu",
                snap_path, (unsigned long long)info->index, (unsigned long long)info->term,
                (unsigned long long)info->data_size, (unsigned long long)(mc_mono_ms() - t0));
    }
done:
    if (in >= 0) {
        fs->close(fs->ctx, in);
    }
    if (out >= 0) {
        fs->close(fs->ctx, out);
    }
    free(info);
    return rc;
}

int mc_snap_install_swap(const char *datadir, const struct mc_fs_ops *fs)
{
    fs = fs ? fs : mc_fs_default();
    char newdir[MC_DATADIR_PATH_MAX], engdir[MC_DATADIR_PATH_MAX], data[MC_DATADIR_PATH_MAX];
    char parent[MC_DATADIR_PATH_MAX];
    if (install_paths(datadir, newdir, engdir, data, parent)) {
        return MC_EINVAL;
    }
    /* Only a prepared tree is swapped in: without its data.mdb the swap would install nothing. */
    struct stat st;
    if (stat(data, &st) != 0) {
        return errno == ENOENT ? MC_ENOTFOUND : MC_EIO;
    }
    /* the swap: one atomic step from entirely-old to entirely-new */
    int s = stat(engdir, &st) == 0 ? fs->exchange(fs->ctx, newdir, engdir)
                                   : fs->rename(fs->ctx, newdir, engdir);
    if (s < 0) {
        return mc_fs_errno_to_mc(s);
    }
    int rc = mc_fs_fsync_dir(fs, parent);
    if (rc) {
        return rc;
    }
    /* engine.new now holds the old state: drop it (mc_datadir_recover does it after a crash) */
    rc = mc_fs_remove_tree(fs, newdir);
    if (rc == 0) {
        rc = mc_fs_fsync_dir(fs, parent);
    }
    return rc;
}

int mc_snap_install(const char *datadir, const struct mc_fs_ops *fs, const char *snap_path)
{
    int rc = mc_snap_install_prepare(datadir, fs, snap_path);
    if (rc == 0) {
        rc = mc_snap_install_swap(datadir, fs);
    }
    if (rc == 0) {
        MC_INFO("snapshot_installed", "path=%s", snap_path);
    }
    return rc;
}
