/* fs.c: the file-operation table (real syscalls), a fault injector over it, and small helpers. */
#include "metacenter/storage.h"
#include "metacenter/error.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* ---- real syscalls: return value or -errno ---- */

static int r_open(void *ctx, const char *path, int flags, mode_t mode)
{
    (void)ctx;
    int fd;
    do {
        fd = open(path, flags | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int r_close(void *ctx, int fd)
{
    (void)ctx;
    return close(fd) < 0 ? -errno : 0;
}

static ssize_t r_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    (void)ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, (char *)buf + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        if (n == 0) {
            break;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

static ssize_t r_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    (void)ctx;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(fd, (const char *)buf + done, len - done, off + (off_t)done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* Full pwritev: loops over short writes (advancing through the iovec array). */
static ssize_t r_pwritev(void *ctx, int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    (void)ctx;
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++) {
        total += iov[i].iov_len;
    }
    size_t done = 0;
    int first = 0;
    size_t skip = 0; /* bytes of iov[first] already written */
    while (done < total) {
        struct iovec local[IOV_MAX];
        int cnt = 0;
        for (int i = first; i < iovcnt && cnt < IOV_MAX; i++) {
            local[cnt].iov_base = (char *)iov[i].iov_base + (i == first ? skip : 0);
            local[cnt].iov_len = iov[i].iov_len - (i == first ? skip : 0);
            cnt++;
        }
        ssize_t n = pwritev(fd, local, cnt, off + (off_t)done);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        done += (size_t)n;
        size_t adv = (size_t)n;
        while (adv > 0 && first < iovcnt) {
            size_t left = iov[first].iov_len - skip;
            if (adv >= left) {
                adv -= left;
                first++;
                skip = 0;
            } else {
                skip += adv;
                adv = 0;
            }
        }
        while (first < iovcnt && iov[first].iov_len == skip) {
            first++;
            skip = 0;
        }
    }
    return (ssize_t)done;
}

static int r_fdatasync(void *ctx, int fd)
{
    (void)ctx;
    return fdatasync(fd) < 0 ? -errno : 0;
}

static int r_fsync(void *ctx, int fd)
{
    (void)ctx;
    return fsync(fd) < 0 ? -errno : 0;
}

static int r_fallocate(void *ctx, int fd, off_t off, off_t len)
{
    (void)ctx;
    int rc = posix_fallocate(fd, off, len);
    return rc ? -rc : 0;
}

static int r_ftruncate(void *ctx, int fd, off_t len)
{
    (void)ctx;
    return ftruncate(fd, len) < 0 ? -errno : 0;
}

static int r_rename(void *ctx, const char *from, const char *to)
{
    (void)ctx;
    return rename(from, to) < 0 ? -errno : 0;
}

static int r_exchange(void *ctx, const char *a, const char *b)
{
    (void)ctx;
    long rc = syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
    return rc < 0 ? -errno : 0;
}

static int r_unlink(void *ctx, const char *path)
{
    (void)ctx;
    return unlink(path) < 0 ? -errno : 0;
}

static int r_mkdir(void *ctx, const char *path, mode_t mode)
{
    (void)ctx;
    return mkdir(path, mode) < 0 ? -errno : 0;
}

static int r_rmdir(void *ctx, const char *path)
{
    (void)ctx;
    return rmdir(path) < 0 ? -errno : 0;
}

static int r_sync_file_range(void *ctx, int fd, off_t off, off_t len, unsigned flags)
{
    (void)ctx;
    return sync_file_range(fd, off, len, flags) < 0 ? -errno : 0;
}

static int r_fstat(void *ctx, int fd, struct stat *st)
{
    (void)ctx;
    return fstat(fd, st) < 0 ? -errno : 0;
}

static const struct mc_fs_ops real_ops = {
    .ctx = NULL,
    .open = r_open,
    .close = r_close,
    .pread = r_pread,
    .pwrite = r_pwrite,
    .pwritev = r_pwritev,
    .fdatasync = r_fdatasync,
    .fsync = r_fsync,
    .fallocate = r_fallocate,
    .ftruncate = r_ftruncate,
    .rename = r_rename,
    .exchange = r_exchange,
    .unlink = r_unlink,
    .mkdir = r_mkdir,
    .rmdir = r_rmdir,
    .sync_file_range = r_sync_file_range,
    .fstat = r_fstat,
};

const struct mc_fs_ops *mc_fs_default(void)
{
    return &real_ops;
}

/* ---- fault injector ---- */

/* Returns -err when this call of kind op must fail, else 0. */
static int fault_check(struct mc_fs_fault *f, enum mc_fs_op op)
{
    __atomic_fetch_add(&f->calls[op], 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&f->tripped[op], __ATOMIC_SEQ_CST)) {
        __atomic_fetch_add(&f->failures[op], 1, __ATOMIC_SEQ_CST);
        return -f->err[op];
    }
    int64_t c = __atomic_load_n(&f->countdown[op], __ATOMIC_SEQ_CST);
    while (c > 0) {
        if (__atomic_compare_exchange_n(&f->countdown[op], &c, c - 1, false, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
            if (c == 1) {
                if (f->sticky[op]) {
                    __atomic_store_n(&f->tripped[op], true, __ATOMIC_SEQ_CST);
                }
                __atomic_fetch_add(&f->failures[op], 1, __ATOMIC_SEQ_CST);
                return -f->err[op];
            }
            return 0;
        }
    }
    return 0;
}

#define FB(ctx)   ((struct mc_fs_fault *)(ctx))
#define BASE(ctx) (FB(ctx)->base)

static int f_open(void *ctx, const char *path, int flags, mode_t mode)
{
    int e = fault_check(FB(ctx), MC_FS_OPEN);
    return e ? e : BASE(ctx)->open(BASE(ctx)->ctx, path, flags, mode);
}
static int f_close(void *ctx, int fd)
{
    return BASE(ctx)->close(BASE(ctx)->ctx, fd);
}
static ssize_t f_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
    int e = fault_check(FB(ctx), MC_FS_PREAD);
    return e ? e : BASE(ctx)->pread(BASE(ctx)->ctx, fd, buf, len, off);
}
static ssize_t f_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
    int e = fault_check(FB(ctx), MC_FS_PWRITE);
    return e ? e : BASE(ctx)->pwrite(BASE(ctx)->ctx, fd, buf, len, off);
}
static ssize_t f_pwritev(void *ctx, int fd, const struct iovec *iov, int iovcnt, off_t off)
{
    int e = fault_check(FB(ctx), MC_FS_PWRITE);
    return e ? e : BASE(ctx)->pwritev(BASE(ctx)->ctx, fd, iov, iovcnt, off);
}
static int f_fdatasync(void *ctx, int fd)
{
    int e = fault_check(FB(ctx), MC_FS_FDATASYNC);
    return e ? e : BASE(ctx)->fdatasync(BASE(ctx)->ctx, fd);
}
static int f_fsync(void *ctx, int fd)
{
    int e = fault_check(FB(ctx), MC_FS_FSYNC);
    return e ? e : BASE(ctx)->fsync(BASE(ctx)->ctx, fd);
}
static int f_fallocate(void *ctx, int fd, off_t off, off_t len)
{
    int e = fault_check(FB(ctx), MC_FS_FALLOCATE);
    return e ? e : BASE(ctx)->fallocate(BASE(ctx)->ctx, fd, off, len);
}
static int f_ftruncate(void *ctx, int fd, off_t len)
{
    int e = fault_check(FB(ctx), MC_FS_FTRUNCATE);
    return e ? e : BASE(ctx)->ftruncate(BASE(ctx)->ctx, fd, len);
}
static int f_rename(void *ctx, const char *from, const char *to)
{
    int e = fault_check(FB(ctx), MC_FS_RENAME);
    return e ? e : BASE(ctx)->rename(BASE(ctx)->ctx, from, to);
}
static int f_exchange(void *ctx, const char *a, const char *b)
{
    int e = fault_check(FB(ctx), MC_FS_RENAME);
    return e ? e : BASE(ctx)->exchange(BASE(ctx)->ctx, a, b);
}
static int f_unlink(void *ctx, const char *path)
{
    int e = fault_check(FB(ctx), MC_FS_UNLINK);
    return e ? e : BASE(ctx)->unlink(BASE(ctx)->ctx, path);
}
static int f_mkdir(void *ctx, const char *path, mode_t mode)
{
    return BASE(ctx)->mkdir(BASE(ctx)->ctx, path, mode);
}
static int f_rmdir(void *ctx, const char *path)
{
    return BASE(ctx)->rmdir(BASE(ctx)->ctx, path);
}

static int f_sync_file_range(void *ctx, int fd, off_t off, off_t len, unsigned flags)
{
    int e = fault_check(FB(ctx), MC_FS_SYNC_RANGE);
    return e ? e : BASE(ctx)->sync_file_range(BASE(ctx)->ctx, fd, off, len, flags);
}

static int f_fstat(void *ctx, int fd, struct stat *st)
{
    int e = fault_check(FB(ctx), MC_FS_FSTAT);
    return e ? e : BASE(ctx)->fstat(BASE(ctx)->ctx, fd, st);
}

void mc_fs_fault_init(struct mc_fs_fault *f, const struct mc_fs_ops *base)
{
    memset(f, 0, sizeof(*f));
    f->base = base ? base : mc_fs_default();
    f->ops = (struct mc_fs_ops){
        .ctx = f,
        .open = f_open,
        .close = f_close,
        .pread = f_pread,
        .pwrite = f_pwrite,
        .pwritev = f_pwritev,
        .fdatasync = f_fdatasync,
        .fsync = f_fsync,
        .fallocate = f_fallocate,
        .ftruncate = f_ftruncate,
        .rename = f_rename,
        .exchange = f_exchange,
        .unlink = f_unlink,
        .mkdir = f_mkdir,
        .rmdir = f_rmdir,
        .sync_file_range = f_sync_file_range,
        .fstat = f_fstat,
    };
}

void mc_fs_fault_arm(struct mc_fs_fault *f, enum mc_fs_op op, uint64_t nth, int err, bool sticky)
{
    f->err[op] = err;
    f->sticky[op] = sticky;
    __atomic_store_n(&f->tripped[op], false, __ATOMIC_SEQ_CST);
    __atomic_store_n(&f->countdown[op], (int64_t)nth, __ATOMIC_SEQ_CST);
}

void mc_fs_fault_disarm(struct mc_fs_fault *f, enum mc_fs_op op)
{
    __atomic_store_n(&f->countdown[op], 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&f->tripped[op], false, __ATOMIC_SEQ_CST);
}

/* ---- helpers ---- */

int mc_fs_errno_to_mc(int neg_errno)
{
    switch (-neg_errno) {
    case 0:
        return 0;
    case ENOSPC:
    case EDQUOT:
        return MC_ENOSPC;
    case EEXIST:
        return MC_EEXIST;
    case ENOENT:
        return MC_ENOTFOUND;
    case ENOMEM:
        return MC_ENOMEM;
    default:
        return MC_EIO;
    }
}

#define FS(fs) ((fs) ? (fs) : mc_fs_default())

int mc_fs_fsync_dir(const struct mc_fs_ops *fs, const char *dir)
{
    fs = FS(fs);
    int fd = fs->open(fs->ctx, dir, O_RDONLY | O_DIRECTORY, 0);
    if (fd < 0) {
        return mc_fs_errno_to_mc(fd);
    }
    int rc = fs->fsync(fs->ctx, fd);
    fs->close(fs->ctx, fd);
    return rc < 0 ? mc_fs_errno_to_mc(rc) : 0;
}

int mc_fs_dir_of(const char *path, char *out, size_t out_len)
{
    const char *slash = strrchr(path, '/');
    int w;
    if (!slash) {
        w = snprintf(out, out_len, ".");
    } else if (slash == path) {
        w = snprintf(out, out_len, "/");
    } else {
        w = snprintf(out, out_len, "%.*s", (int)(slash - path), path);
    }
    return w < 0 || (size_t)w >= out_len ? MC_EINVAL : 0;
}

int mc_fs_write_file_atomic(const struct mc_fs_ops *fs, const char *path, const void *data,
                            size_t len)
{
    fs = FS(fs);
    char tmp[MC_DATADIR_PATH_MAX + 8];
    char dir[MC_DATADIR_PATH_MAX];
    if (strlen(path) >= MC_DATADIR_PATH_MAX) {
        return MC_EINVAL;
    }
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    if (mc_fs_dir_of(path, dir, sizeof(dir))) {
        return MC_EINVAL;
    }
    int fd = fs->open(fs->ctx, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        return mc_fs_errno_to_mc(fd);
    }
    int rc = 0;
    ssize_t n = fs->pwrite(fs->ctx, fd, data, len, 0);
    if (n < 0 || (size_t)n != len) {
        rc = n < 0 ? mc_fs_errno_to_mc((int)n) : MC_EIO;
        goto fail;
    }
    int s = fs->fsync(fs->ctx, fd);
    if (s < 0) {
        rc = mc_fs_errno_to_mc(s);
        goto fail;
    }
    fs->close(fs->ctx, fd);
    fd = -1;
    s = fs->rename(fs->ctx, tmp, path);
    if (s < 0) {
        rc = mc_fs_errno_to_mc(s);
        goto fail;
    }
    return mc_fs_fsync_dir(fs, dir);
fail:
    if (fd >= 0) {
        fs->close(fs->ctx, fd);
    }
    fs->unlink(fs->ctx, tmp);
    return rc;
}

int mc_fs_remove_tree(const struct mc_fs_ops *fs, const char *path)
{
    fs = FS(fs);
    struct stat st;
    if (lstat(path, &st) < 0) {
        return errno == ENOENT ? 0 : mc_fs_errno_to_mc(-errno);
    }
    if (!S_ISDIR(st.st_mode)) {
        int rc = fs->unlink(fs->ctx, path);
        return rc < 0 && rc != -ENOENT ? mc_fs_errno_to_mc(rc) : 0;
    }
    DIR *d = opendir(path);
    if (!d) {
        return mc_fs_errno_to_mc(-errno);
    }
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        char child[MC_DATADIR_PATH_MAX];
        if (snprintf(child, sizeof(child), "%s/%s", path, e->d_name) >= (int)sizeof(child)) {
            rc = MC_EINVAL;
            break;
        }
        rc = mc_fs_remove_tree(fs, child);
        if (rc) {
            break;
        }
    }
    closedir(d);
    if (rc) {
        return rc;
    }
    int r = fs->rmdir(fs->ctx, path);
    return r < 0 && r != -ENOENT ? mc_fs_errno_to_mc(r) : 0;
}

void mc_fs_each_named(const char *dir, const char *prefix, const char *suffix,
                      void (*fn)(void *ctx, const char *path, const char *name), void *ctx)
{
    DIR *d = opendir(dir);
    if (!d) {
        return;
    }
    size_t pl = strlen(prefix), sl = strlen(suffix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < pl + sl || strncmp(e->d_name, prefix, pl) != 0 ||
            strcmp(e->d_name + len - sl, suffix) != 0) {
            continue;
        }
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < (int)sizeof(path)) {
            fn(ctx, path, e->d_name);
        }
    }
    closedir(d);
}

struct remove_others {
    const struct mc_fs_ops *fs;
    const char *keep, *event;
};

static void remove_other(void *ctx, const char *path, const char *name)
{
    struct remove_others *r = ctx;
    if (strcmp(name, r->keep) != 0 && r->fs->unlink(r->fs->ctx, path) == 0) {
        MC_INFO(r->event, "path=%s reason=newer_one_kept", path);
    }
}

void mc_fs_remove_others(const struct mc_fs_ops *fs, const char *dir, const char *prefix,
                         const char *suffix, const char *keep, const char *event)
{
    struct remove_others r = {.fs = fs ? fs : mc_fs_default(), .keep = keep, .event = event};
    mc_fs_each_named(dir, prefix, suffix, remove_other, &r);
}
