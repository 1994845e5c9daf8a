/* datadir.c: a node's data directory: layout, marker file with format version, lock, cleanup. */
#include "metacenter/storage.h"
#include "storage/snap_internal.h"
#include "metacenter/error.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define MARKER_NAME      "METACENTER"
#define MARKER_PREFIX    "metacenter-datadir "
#define MARKER_MAX_BYTES 64

int mc_datadir_path(const char *datadir, const char *sub, char *out, size_t out_len)
{
    int n = snprintf(out, out_len, "%s/%s", datadir, sub);
    return n < 0 || (size_t)n >= out_len ? MC_EINVAL : 0;
}

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        return true;
    }
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = false;
            break;
        }
    }
    closedir(d);
    return empty;
}

static int read_marker(const char *datadir)
{
    char path[MC_DATADIR_PATH_MAX];
    if (mc_datadir_path(datadir, MARKER_NAME, path, sizeof(path))) {
        return MC_EINVAL;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        return errno == ENOENT ? MC_ENOTOURS : MC_EIO;
    }
    char buf[MARKER_MAX_BYTES] = {0};
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    if (strncmp(buf, MARKER_PREFIX, strlen(MARKER_PREFIX)) != 0) {
        return MC_ENOTOURS;
    }
    long v = strtol(buf + strlen(MARKER_PREFIX), NULL, 10);
    return v == MC_DATADIR_FORMAT_VERSION ? 0 : MC_EVERSION;
}

int mc_datadir_check(const char *datadir)
{
    struct stat st;
    if (stat(datadir, &st) < 0 || !S_ISDIR(st.st_mode)) {
        return MC_ENOTFOUND;
    }
    return read_marker(datadir);
}

static int ensure_dir(const struct mc_fs_ops *fs, const char *path)
{
    int rc = fs->mkdir(fs->ctx, path, 0755);
    return rc < 0 && rc != -EEXIST ? mc_fs_errno_to_mc(rc) : 0;
}

int mc_datadir_init(const char *datadir, const struct mc_fs_ops *fs)
{
    fs = fs ? fs : mc_fs_default();
    int rc = ensure_dir(fs, datadir);
    if (rc) {
        return rc;
    }
    rc = read_marker(datadir);
    if (rc == MC_ENOTOURS) {
        char path[MC_DATADIR_PATH_MAX];
        if (!dir_is_empty(datadir)) {
            MC_ERROR("datadir_not_ours", "dir=%s reason=\"non-empty and no %s marker\"", datadir,
                     MARKER_NAME);
            return MC_ENOTOURS;
        }
        char text[MARKER_MAX_BYTES];
        int n = snprintf(text, sizeof(text), MARKER_PREFIX "%d\n", MC_DATADIR_FORMAT_VERSION);
        if (mc_datadir_path(datadir, MARKER_NAME, path, sizeof(path))) {
            return MC_EINVAL;
        }
        rc = mc_fs_write_file_atomic(fs, path, text, (size_t)n);
        if (rc) {
            return rc;
        }
    } else if (rc) {
        return rc;
    }
    const char *subs[] = {"engine", "wal", "snap"};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        char path[MC_DATADIR_PATH_MAX];
        if (mc_datadir_path(datadir, subs[i], path, sizeof(path))) {
            return MC_EINVAL;
        }
        rc = ensure_dir(fs, path);
        if (rc) {
            return rc;
        }
    }
    return mc_fs_fsync_dir(fs, datadir);
}

int mc_datadir_lock(const char *datadir, int *lock_fd)
{
    char path[MC_DATADIR_PATH_MAX];
    if (mc_datadir_path(datadir, "LOCK", path, sizeof(path))) {
        return MC_EINVAL;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return mc_fs_errno_to_mc(-errno);
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        close(fd);
        return e == EWOULDBLOCK ? MC_ELOCKED : mc_fs_errno_to_mc(-e);
    }
    *lock_fd = fd;
    return 0;
}

void mc_datadir_unlock(int lock_fd)
{
    if (lock_fd >= 0) {
        close(lock_fd);
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int mc_datadir_recover(const char *datadir, const struct mc_fs_ops *fs)
{
    fs = fs ? fs : mc_fs_default();
    char path[MC_DATADIR_PATH_MAX], engdir[MC_DATADIR_PATH_MAX];
    if (mc_datadir_engine_dir(datadir, engdir, sizeof(engdir))) {
        return MC_EINVAL;
    }
    int w = snprintf(path, sizeof(path), "%s.new", engdir);
    if (w < 0 || (size_t)w >= sizeof(path)) {
        return MC_EINVAL;
    }
    struct stat st;
    if (stat(path, &st) == 0) {
        /* An install was interrupted: engine/ is entirely old or entirely new (the swap is one
         * renameat2), so whatever is left in engine.new is garbage. Synced with the dir holding
         * it: the data dir, or the engine's own (serve --engine-dir). */
        MC_WARN("datadir_cleanup", "removing=%s reason=\"interrupted snapshot install\"", path);
        int rc = mc_fs_remove_tree(fs, path);
        if (rc) {
            return rc;
        }
        char parent[MC_DATADIR_PATH_MAX];
        rc = mc_fs_dir_of(path, parent, sizeof(parent));
        if (rc == 0) {
            rc = mc_fs_fsync_dir(fs, parent);
        }
        if (rc) {
            return rc;
        }
    }
    char snapdir[MC_DATADIR_PATH_MAX];
    if (mc_datadir_path(datadir, "snap", snapdir, sizeof(snapdir))) {
        return MC_EINVAL;
    }
    DIR *d = opendir(snapdir);
    if (!d) {
        return 0;
    }
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d)) != NULL) {
        if (ends_with(e->d_name, ".tmp")) {
            if (mc_datadir_path(snapdir, e->d_name, path, sizeof(path)) == 0) {
                MC_WARN("datadir_cleanup", "removing=%s reason=\"interrupted snapshot create\"",
                        path);
                int u = fs->unlink(fs->ctx, path);
                if (u < 0 && u != -ENOENT) {
                    rc = mc_fs_errno_to_mc(u);
                }
            }
        }
    }
    closedir(d);
    /* A receive resumes only its newest .part (mc_snap_recv_open drops the others then); older
     * ones left by crashes would otherwise stay forever, each up to an engine's size. */
    int prc = snap_recv_prune(snapdir, fs, true, 0, 0);
    return rc ? rc : prc;
}
