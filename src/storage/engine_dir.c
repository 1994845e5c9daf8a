/* engine_dir.c: where a node's engine lives: DATADIR/engine, or a directory of its own (serve
 * --engine-dir, e.g. on tmpfs) that DATADIR/engine links to.
 *
 * Why it may live elsewhere: the engine is never synced (docs/decisions.md, "Engine recovery
 * after a power loss"); the WAL and the newest engine image are what a node recovers from. On a
 * disk the kernel still writes the whole LMDB map back every few seconds once it has been dirty
 * 30 s, and the WAL's next fdatasync waits for that (docs/benchmarks.md). On tmpfs nothing is
 * written back; a reboot empties it and the node rebuilds the engine from its image and WAL.
 *
 * Rules: the directory is claimed by an OWNER file naming the data dir (two nodes can never
 * share one); an engine at a former place is removed, never reused (while it was elsewhere the
 * log may have moved on, or the data dir been restored); the link is absolute. */
#include "metacenter/error.h"
#include "metacenter/storage.h"
#include "util/clock.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define OWNER_NAME      "OWNER"
#define OWNER_TMP_NAME  OWNER_NAME ".tmp"
#define OWNER_PREFIX    "metacenter-engine-dir of "
#define OWNER_MAX_BYTES (MC_DATADIR_PATH_MAX + 64)

/* Test hook: with MC_TEST_ENGINE_PLACE_KILL_AT=N in the environment, the process kills itself
 * (SIGKILL, as kill -9 does) right after the Nth change mc_datadir_place_engine makes, so a test
 * can restart from every state a crash there leaves (test/integration/test_engine_dir.py).
 * Unset (production): nothing. */
static void kill_point(void)
{
    static uint64_t step;
    if (mc_test_env_u64("MC_TEST_ENGINE_PLACE_KILL_AT", UINT64_MAX) == ++step) {
        MC_WARN("test_hook_engine_place_kill",
                "step=%llu (never set MC_TEST_ENGINE_PLACE_KILL_AT in production)",
                (unsigned long long)step);
        raise(SIGKILL);
    }
}

int mc_datadir_engine_dir(const char *datadir, char *out, size_t out_len)
{
    char link[MC_DATADIR_PATH_MAX];
    if (mc_datadir_path(datadir, "engine", link, sizeof(link))) {
        return MC_EINVAL;
    }
    char target[MC_DATADIR_PATH_MAX];
    ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n < 0) {
        if (errno != EINVAL && errno != ENOENT) {
            return mc_fs_errno_to_mc(-errno);
        }
        /* not a link (or not there yet): the engine lives in the data dir */
        int w = snprintf(out, out_len, "%s", link);
        return w < 0 || (size_t)w >= out_len ? MC_EINVAL : 0;
    }
    if ((size_t)n >= sizeof(target) - 1 || target[0] != '/') {
        return MC_EINVAL; /* only absolute links are made here (mc_datadir_place_engine) */
    }
    target[n] = 0;
    int w = snprintf(out, out_len, "%s", target);
    return w < 0 || (size_t)w >= out_len ? MC_EINVAL : 0;
}

/* "<dir>/<name>" into out[MC_DATADIR_PATH_MAX]. */
static int join(const char *dir, const char *name, char *out)
{
    return mc_datadir_path(dir, name, out, MC_DATADIR_PATH_MAX);
}

static bool has_entries(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        return true; /* unreadable: treated as not empty, so it is never claimed */
    }
    struct dirent *e;
    bool any = false;
    while (!any && (e = readdir(d)) != NULL) {
        /* OWNER.cPID (OWNER.cPID.tmp before session 11): what a crash in owner_write leaves
         * (shorter than engine.new/data.mdb, so check_lengths covers it); never read */
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0 &&
              strncmp(e->d_name, OWNER_NAME ".c", strlen(OWNER_NAME ".c")) != 0 &&
              strcmp(e->d_name, OWNER_TMP_NAME) != 0;
    }
    closedir(d);
    return any;
}

/* 0: DIR/OWNER names this data dir; MC_ENOTFOUND: no OWNER; MC_ENOTOURS: another one's. */
static int owner_check(const char *dir, const char *datadir_real)
{
    char path[MC_DATADIR_PATH_MAX];
    if (join(dir, OWNER_NAME, path)) {
        return MC_EINVAL;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        return errno == ENOENT ? MC_ENOTFOUND : mc_fs_errno_to_mc(-errno);
    }
    char buf[OWNER_MAX_BYTES] = {0};
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    char want[OWNER_MAX_BYTES];
    snprintf(want, sizeof(want), OWNER_PREFIX "%s\n", datadir_real);
    return strcmp(buf, want) == 0 ? 0 : MC_ENOTOURS;
}

/* Claim DIR exclusively: OWNER is written and synced under a name of this process's own
 * (OWNER.cPID) and hard-linked into place, which fails if another node claimed DIR at the same
 * moment (two nodes given the same new DIR: both saw it empty). MC_EEXIST then; the caller reads
 * whose it is. Written once: the link is what makes OWNER appear whole, so no rename is needed. */
static int owner_write(const char *dir, const char *datadir_real)
{
    const struct mc_fs_ops *fs = mc_fs_default();
    char path[MC_DATADIR_PATH_MAX], tmp[MC_DATADIR_PATH_MAX], name[64];
    char text[OWNER_MAX_BYTES];
    int len = snprintf(text, sizeof(text), OWNER_PREFIX "%s\n", datadir_real);
    snprintf(name, sizeof(name), OWNER_NAME ".c%ld", (long)getpid());
    if (join(dir, OWNER_NAME, path) || join(dir, name, tmp) || len < 0 ||
        (size_t)len >= sizeof(text)) {
        return MC_EINVAL;
    }
    (void)fs->unlink(fs->ctx, tmp); /* a crash's, by an earlier process with this PID */
    int fd = fs->open(fs->ctx, tmp, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0) {
        return mc_fs_errno_to_mc(fd);
    }
    ssize_t n = fs->pwrite(fs->ctx, fd, text, (size_t)len, 0); /* loops over short writes */
    int rc = n < 0 ? mc_fs_errno_to_mc((int)n) : ((size_t)n != (size_t)len ? MC_EIO : 0);
    if (rc == 0) {
        int s = fs->fsync(fs->ctx, fd);
        rc = s < 0 ? mc_fs_errno_to_mc(s) : 0;
    }
    fs->close(fs->ctx, fd);
    if (rc) {
        (void)fs->unlink(fs->ctx, tmp);
        return rc;
    }
    rc = link(tmp, path) == 0 ? 0 : (errno == EEXIST ? MC_EEXIST : mc_fs_errno_to_mc(-errno));
    (void)fs->unlink(fs->ctx, tmp);
    int frc = mc_fs_fsync_dir(fs, dir);
    return rc ? rc : frc;
}

/* Remove an engine tree (or a link to one: the link only) and its staging tree "<dir>.new". */
static int remove_engine(const char *engdir)
{
    char staged[MC_DATADIR_PATH_MAX];
    int w = snprintf(staged, sizeof(staged), "%s.new", engdir);
    if (w < 0 || (size_t)w >= sizeof(staged)) {
        return MC_EINVAL;
    }
    int rc = mc_fs_remove_tree(NULL, engdir);
    return rc ? rc : mc_fs_remove_tree(NULL, staged);
}

/* Drop DATADIR/engine.seal, durably, before the engine is emptied or moved: it vouches for a
 * data.mdb about to go. Dropped after the change instead, a crash in between leaves a seal that
 * condemns the new, empty engine at every later start (engine_corrupt; review 10). */
static int drop_seal(const char *datadir)
{
    char path[MC_DATADIR_PATH_MAX];
    if (join(datadir, MC_DATADIR_SEAL_NAME, path)) {
        return MC_EINVAL;
    }
    if (unlink(path) != 0) {
        return errno == ENOENT ? 0 : mc_fs_errno_to_mc(-errno);
    }
    return mc_fs_fsync_dir(NULL, datadir);
}

/* The paths derived from DIR fit (the longest: a staged install's DIR/engine.new/data.mdb), and
 * so does OWNER's text: checked before anything changes, or an install or a rebuild after a
 * reboot would fail long after the flag was accepted. */
static int check_lengths(const char *dir_real, const char *datadir_real)
{
    char longest[MC_DATADIR_PATH_MAX];
    if (join(dir_real, "engine.new/data.mdb", longest) ||
        strlen(OWNER_PREFIX) + strlen(datadir_real) + 2 > OWNER_MAX_BYTES) {
        MC_ERROR("engine_dir_invalid",
                 "dir=%s data_dir=%s detail=\"path too long: DIR/engine.new/data.mdb and "
                 "the data dir's real path must each stay under %d bytes\"",
                 dir_real, datadir_real, MC_DATADIR_PATH_MAX);
        return MC_EINVAL;
    }
    return 0;
}

/* Claim ENGINE_DIR (created if missing) for the data dir whose real path is datadir_real; its
 * real path into dir_real[PATH_MAX]. Changes nothing but DIR/OWNER. */
static int claim(const char *engine_dir, const char *datadir_real, char *dir_real)
{
    if (mkdir(engine_dir, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        MC_ERROR("engine_dir_invalid",
                 "dir=%s err=%s detail=\"cannot create it (its parent must exist)\"", engine_dir,
                 strerror(e));
        return mc_fs_errno_to_mc(-e);
    }
    if (!realpath(engine_dir, dir_real)) {
        int e = errno;
        MC_ERROR("engine_dir_invalid",
                 "dir=%s err=%s detail=\"cannot resolve it (a symbolic link to nowhere?)\"",
                 engine_dir, strerror(e));
        return mc_fs_errno_to_mc(-e);
    }
    size_t dl = strlen(datadir_real);
    if (strncmp(dir_real, datadir_real, dl) == 0 && (dir_real[dl] == '/' || dir_real[dl] == 0)) {
        MC_ERROR("engine_dir_invalid",
                 "dir=%s data_dir=%s detail=\"it must be outside the data dir\"", dir_real,
                 datadir_real);
        return MC_EINVAL;
    }
    int rc = check_lengths(dir_real, datadir_real);
    if (rc) {
        return rc;
    }
    rc = owner_check(dir_real, datadir_real);
    if (rc == MC_ENOTFOUND) {
        if (has_entries(dir_real)) {
            MC_ERROR("engine_dir_invalid",
                     "dir=%s detail=\"not empty and not claimed by a metacenter data dir: give "
                     "an empty or new directory\"",
                     dir_real);
            return MC_ENOTOURS;
        }
        rc = owner_write(dir_real, datadir_real);
        kill_point();
        if (rc == MC_EEXIST) {
            rc = owner_check(dir_real, datadir_real); /* lost a race: ours only if it says so */
        }
    }
    if (rc == MC_ENOTOURS) {
        MC_ERROR("engine_dir_invalid",
                 "dir=%s data_dir=%s detail=\"it holds the engine of another data dir (its "
                 "OWNER file says which); give each node a directory of its own\"",
                 dir_real, datadir_real);
    }
    return rc;
}

/* Remove the engine a link pointed to (and its staging tree) when its directory is claimed by
 * this data dir. Best effort, after the new place is made: it is never used again, but on tmpfs
 * it holds memory. */
static void remove_former(const char *former, const char *datadir_real)
{
    char parent[MC_DATADIR_PATH_MAX];
    if (mc_fs_dir_of(former, parent, sizeof(parent)) == 0 &&
        owner_check(parent, datadir_real) == 0) {
        (void)remove_engine(former);
        kill_point();
    }
}

/* Back to DATADIR/engine from a link: the former engine is removed if its directory is ours. */
static int place_in_datadir(const char *datadir, const char *datadir_real, const char *link,
                            bool *fresh)
{
    char former[MC_DATADIR_PATH_MAX];
    int rc = mc_datadir_engine_dir(datadir, former, sizeof(former));
    if (rc == 0) {
        rc = drop_seal(datadir);
        kill_point();
    }
    if (rc) {
        return rc;
    }
    if (unlink(link) != 0) {
        return mc_fs_errno_to_mc(-errno);
    }
    kill_point();
    if (mkdir(link, 0755) != 0) {
        return mc_fs_errno_to_mc(-errno);
    }
    kill_point();
    rc = mc_fs_fsync_dir(NULL, datadir);
    if (rc) {
        return rc;
    }
    kill_point();
    remove_former(former, datadir_real);
    MC_WARN("engine_dir_changed",
            "from=%s to=%s action=\"the engine is rebuilt from the newest "
            "image and the WAL\"",
            former, link);
    *fresh = true;
    return 0;
}

/* The engine dir lost its contents (tmpfs after a reboot): start an empty engine there. */
static int place_emptied(const char *datadir, const char *dir_real, const char *target, bool *fresh)
{
    int rc = drop_seal(datadir);
    kill_point();
    if (rc == 0 && mkdir(target, 0755) != 0) {
        rc = mc_fs_errno_to_mc(-errno);
    }
    kill_point();
    if (rc == 0) {
        rc = mc_fs_fsync_dir(NULL, dir_real);
    }
    if (rc) {
        MC_ERROR("engine_dir_invalid", "dir=%s err=%s", dir_real, mc_error_name(rc));
        return rc;
    }
    MC_WARN("engine_dir_emptied",
            "dir=%s action=\"the engine is rebuilt from the newest "
            "image and the WAL\"",
            target);
    *fresh = true;
    return 0;
}

int mc_datadir_place_engine(const char *datadir, const char *engine_dir, bool *fresh)
{
    *fresh = false;
    char link[MC_DATADIR_PATH_MAX], datadir_real[PATH_MAX], dir_real[PATH_MAX];
    if (mc_datadir_path(datadir, "engine", link, sizeof(link)) ||
        !realpath(datadir, datadir_real)) {
        return MC_EINVAL;
    }
    struct stat lst;
    bool have = lstat(link, &lst) == 0;
    bool is_link = have && S_ISLNK(lst.st_mode);
    if (!engine_dir || !engine_dir[0]) {
        return is_link ? place_in_datadir(datadir, datadir_real, link, fresh) : 0;
    }
    /* A new data dir's engine/ holds no data.mdb: placing it elsewhere changes nothing anyone
     * had, so it is logged as a placement, not as a change. */
    char probe[MC_DATADIR_PATH_MAX];
    struct stat pst;
    bool had_engine =
        is_link || (have && join(link, "data.mdb", probe) == 0 && stat(probe, &pst) == 0);
    int rc = claim(engine_dir, datadir_real, dir_real);
    char target[MC_DATADIR_PATH_MAX], former[MC_DATADIR_PATH_MAX] = "";
    if (rc || join(dir_real, "engine", target)) {
        return rc ? rc : MC_EINVAL;
    }
    if (is_link && mc_datadir_engine_dir(datadir, former, sizeof(former)) != 0) {
        former[0] = 0; /* not a link made here: replaced like a directory */
    }
    if (former[0] && strcmp(former, target) == 0) {
        struct stat st;
        return stat(target, &st) == 0 ? 0 /* in place, as last time */
                                      : place_emptied(datadir, dir_real, target, fresh);
    }
    /* A new place: the former engine (a directory here with its staging tree, or a link whose
     * target is removed last) is dropped, and so is anything left at the target from an
     * earlier placement. The seal goes first. */
    rc = drop_seal(datadir);
    kill_point();
    if (rc == 0) {
        rc = have ? remove_engine(link) : 0;
        kill_point();
    }
    if (rc == 0) {
        rc = remove_engine(target);
        kill_point();
    }
    if (rc == 0 && mkdir(target, 0755) != 0) {
        rc = mc_fs_errno_to_mc(-errno);
    }
    kill_point();
    if (rc == 0 && symlink(target, link) != 0) {
        rc = mc_fs_errno_to_mc(-errno);
    }
    kill_point();
    if (rc == 0) {
        rc = mc_fs_fsync_dir(NULL, dir_real);
    }
    if (rc == 0) {
        rc = mc_fs_fsync_dir(NULL, datadir);
    }
    kill_point();
    if (rc) {
        MC_ERROR("engine_dir_invalid", "dir=%s err=%s", dir_real, mc_error_name(rc));
        return rc;
    }
    if (former[0]) {
        remove_former(former, datadir_real);
    }
    if (had_engine) {
        MC_WARN("engine_dir_changed",
                "from=%s to=%s action=\"the engine is rebuilt from the newest "
                "image and the WAL\"",
                former[0] ? former : link, target);
    } else {
        MC_INFO("engine_dir_placed", "dir=%s", target);
    }
    *fresh = true;
    return 0;
}
