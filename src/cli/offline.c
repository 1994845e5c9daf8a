/* offline.c: the CLI backend that works directly on a stopped node's data dir (like etcdutl). */
#include "node/seal.h"
#include "cli/backend.h"
#include "cli/cli.h"
#include "metacenter/error.h"
#include "metacenter/storage.h"
#include "util/clock.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define ENGINE_SUBDIR "engine"

/* 1 when dir exists and holds any entry other than . and .. */
static int dir_nonempty(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) {
        return 0;
    }
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        found = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    }
    closedir(d);
    return found;
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
            return 0;
        }
        return mc_cli_be_seterr(MC_ENOTOURS, "%s exists and is not a directory", path);
    }
    return mc_cli_be_seterr(MC_EIO, "cannot create directory %s: %s", path, strerror(errno));
}

#define MARKER_FILE "METACENTER"

/* 1 when DIR holds the data-dir marker the node writes (storage.h: "metacenter-datadir V\n"). */
static int has_marker(const char *dir)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/%s", dir, MARKER_FILE) >= (int)sizeof(path)) {
        return 0;
    }
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/*
 * Writes the marker into a new data dir so `metacenter serve` later accepts the directory the
 * CLI created (the node refuses a non-empty dir without it). Same bytes as the storage module's
 * mc_datadir_init; switch to that function once the storage implementation is merged.
 */
static int write_marker(const char *dir)
{
    char path[4096], text[64];
    if (snprintf(path, sizeof(path), "%s/%s", dir, MARKER_FILE) >= (int)sizeof(path)) {
        return mc_cli_be_seterr(MC_EINVAL, "--data-dir path too long");
    }
    int len = snprintf(text, sizeof(text), "metacenter-datadir %d\n", MC_DATADIR_FORMAT_VERSION);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) {
        return errno == EEXIST
                   ? 0
                   : mc_cli_be_seterr(MC_EIO, "cannot create %s: %s", path, strerror(errno));
    }
    int ok = write(fd, text, (size_t)len) == len && fsync(fd) == 0;
    close(fd);
    return ok ? 0 : mc_cli_be_seterr(MC_EIO, "cannot write %s", path);
}

/* 1 when DIR holds Raft state a node wrote: WAL segments, snapshots or hard state. */
static int has_node_log(const char *dir)
{
    char path[4096];
    const char *subs[] = {"wal", "snap"};
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (snprintf(path, sizeof(path), "%s/%s", dir, subs[i]) < (int)sizeof(path) &&
            dir_nonempty(path)) {
            return 1;
        }
    }
    const char *files[] = {"meta-a", "meta-b"};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        struct stat st;
        if (snprintf(path, sizeof(path), "%s/%s", dir, files[i]) < (int)sizeof(path) &&
            stat(path, &st) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Takes DIR/LOCK the way a running node does (flock, storage.h mc_datadir_lock), so neither a
 * server nor a second CLI can start on the dir while this command works on it. */
static int lock_dir(struct mc_cli *cli)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/LOCK", cli->data_dir) >= (int)sizeof(path)) {
        return mc_cli_be_seterr(MC_EINVAL, "--data-dir path too long");
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return mc_cli_be_seterr(MC_EIO, "cannot open %s: %s", path, strerror(errno));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            return mc_cli_be_seterr(MC_ELOCKED,
                                    "%s is in use by another process (a running server?); "
                                    "stop it or use --endpoints",
                                    cli->data_dir);
        }
        return mc_cli_be_seterr(MC_EIO, "cannot lock %s: %s", path, strerror(e));
    }
    cli->dir_lock_fd = fd + 1;
    return 0;
}

int mc_cli_offline_prepare(const char *dir)
{
    if (dir_nonempty(dir) && !has_marker(dir)) {
        return mc_cli_be_seterr(MC_ENOTOURS,
                                "%s is not empty and has no %s marker: not a metacenter data dir",
                                dir, MARKER_FILE);
    }
    int rc = make_dir(dir);
    return rc ? rc : write_marker(dir);
}

/*
 * Opens DIR/engine. Mutations create the layout of a new data dir; reads never create anything
 * (and open read-only). A non-empty DIR without engine/ and without the data-dir marker is
 * refused rather than written into, so a mistyped --data-dir cannot scatter files into an
 * unrelated directory.
 */
int mc_cli_offline_open(struct mc_cli *cli, bool mutating)
{
    if (cli->eng) {
        return 0;
    }
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/%s", cli->data_dir, ENGINE_SUBDIR);
    if (n < 0 || (size_t)n >= sizeof(path)) {
        return mc_cli_be_seterr(MC_EINVAL, "--data-dir path too long");
    }
    struct stat st;
    int have_engine = stat(path, &st) == 0;
    if (!have_engine && lstat(path, &st) == 0 && S_ISLNK(st.st_mode)) {
        /* serve --engine-dir: the engine dir it links to lost its contents (tmpfs after a
         * reboot). Only the node rebuilds it (image + WAL); an engine made here would not. */
        char target[4096];
        ssize_t tn = readlink(path, target, sizeof(target) - 1);
        target[tn > 0 ? tn : 0] = 0;
        return mc_cli_be_seterr(MC_ENOTFOUND,
                                "%s links to %s, which is gone (an --engine-dir on tmpfs after a "
                                "reboot?): start the node once to rebuild the engine, then use "
                                "offline commands",
                                path, target);
    }
    if (!have_engine) {
        if (dir_nonempty(cli->data_dir) && !has_marker(cli->data_dir)) {
            return mc_cli_be_seterr(MC_ENOTOURS,
                                    "%s is not empty and has no %s/ subdirectory: not a "
                                    "metacenter data dir",
                                    cli->data_dir, ENGINE_SUBDIR);
        }
        if (!mutating) {
            return mc_cli_be_seterr(MC_ENOTFOUND,
                                    "no metacenter data in %s (commands that write create it)",
                                    cli->data_dir);
        }
        int rc = mc_cli_offline_prepare(cli->data_dir);
        if (rc == 0) {
            rc = make_dir(path);
        }
        if (rc != 0) {
            return rc;
        }
    }
    int lrc = lock_dir(cli);
    if (lrc != 0) {
        return lrc;
    }
    bool have_data = true;
    if (mutating) {
        /* An offline write changes data.mdb on purpose: the seal goes before the first write.
         * It is written again at close (the writes are synced: MC_ENGINE_SYNC_FULL) if the
         * engine was one to trust here: sealed by a clean stop, or created by this command in
         * a dir with no node state yet. An engine from an unclean stop stays unsealed (the
         * node's start checks it, node.c open_storage), and so does a new engine made in a
         * node dir whose data.mdb is gone: its WAL and snapshots say what the engine should
         * hold, and the node's start must compare them, not trust a seal. */
        char data[4160];
        snprintf(data, sizeof(data), "%s/data.mdb", path);
        have_data = stat(data, &st) == 0;
        cli->offline_reseal =
            have_data ? mc_seal_check(cli->data_dir) == 0 : !has_node_log(cli->data_dir);
        if (!have_data) {
            mc_seal_remove(cli->data_dir); /* vouches for no file: the open creates a new one */
        }
    }
    struct mc_engine_options opts = {0};
    opts.sync = MC_ENGINE_SYNC_FULL;
    opts.no_create = !mutating;
    opts.read_only = !mutating;
    int rc = mc_engine_open(path, &opts, &cli->eng);
    if (rc != 0) {
        cli->eng = NULL;
        const char *why = mc_engine_last_error();
        if (rc == MC_ELOCKED) {
            return mc_cli_be_seterr(rc,
                                    "%s is in use by another process (a running server?); "
                                    "stop it or use --endpoints",
                                    cli->data_dir);
        }
        return mc_cli_be_seterr(rc, "cannot open %s: %s", path,
                                why && *why ? why : mc_strerror(rc));
    }
    if (mutating && have_data) {
        /* Only now: opening an existing engine writes nothing to data.mdb, and an open that
         * failed (engine locked, unreadable) must leave a clean stop's seal in place, or the
         * node would rebuild an engine nobody changed. */
        mc_seal_remove(cli->data_dir);
    }
    return 0;
}

/* A stand-in version id for building and validating an op before stamp_offline: same length as
 * a real one (mc_version_id_from_time), so stamp_offline overwrites it in place. */
#define VID_UNSTAMPED "0000000000000000"

/* The op time and version id of an offline write, as a leader stamps them (node_write.c): the
 * wall clock, but above the newest op time the engine holds, so the id (the op time in ns) is
 * unique and sorts after every version written before. Opens the engine for writing (and so
 * drops the seal): op must already be built and validated with VID_UNSTAMPED, so a refused
 * argument leaves the data dir as it was (a written engine makes a member refuse to start with
 * engine_ahead_of_log). */
static int stamp_offline(struct mc_cli *cli, struct mc_op *op)
{
    assert(op->new_version_id && strlen(op->new_version_id) == sizeof(VID_UNSTAMPED) - 1);
    int rc = mc_cli_offline_open(cli, true);
    int64_t clock_ns = 0;
    if (rc == 0) {
        rc = mc_engine_op_clock(cli->eng, &clock_ns);
    }
    if (rc != 0) {
        return rc;
    }
    int64_t t = mc_wall_ns();
    op->time_ns = t > clock_ns ? t : clock_ns + 1;
    char vid[17];
    mc_version_id_from_time(vid, op->time_ns);
    assert(strlen(vid) == sizeof(VID_UNSTAMPED) - 1);
    memcpy(op->new_version_id, vid, sizeof(VID_UNSTAMPED) - 1);
    return 0;
}

/* Applies op at applied_index + 1 and folds the op result into the return value. */
static int apply(struct mc_cli *cli, struct mc_op *op, struct mc_op_result *r)
{
    memset(r, 0, sizeof(*r));
    int rc = mc_cli_offline_open(cli, true);
    if (rc == 0) {
        rc = mc_engine_apply_one(cli->eng, op, r);
        if (rc != 0) {
            const char *why = mc_engine_last_error();
            mc_cli_be_seterr(rc, "%s", why && *why ? why : "");
        } else {
            rc = r->code;
        }
    }
    if (r->code == 0) {
        r->code = rc;
    }
    mc_op_clear(op);
    return rc;
}

static int off_bucket_create(struct mc_cli *cli, const char *name, enum mc_versioning v,
                             struct mc_op_result *r)
{
    struct mc_op op = {0};
    int rc = mc_op_bucket_create(&op, name, v, mc_wall_ns());
    if (rc != 0) {
        mc_op_clear(&op);
        return r->code = rc;
    }
    return apply(cli, &op, r);
}

static int off_bucket_delete(struct mc_cli *cli, const char *name, struct mc_op_result *r)
{
    struct mc_op op = {0};
    int rc = mc_op_bucket_delete(&op, name);
    if (rc != 0) {
        mc_op_clear(&op);
        return r->code = rc;
    }
    return apply(cli, &op, r);
}

static int off_bucket_versioning(struct mc_cli *cli, const char *name, enum mc_versioning v,
                                 struct mc_op_result *r)
{
    struct mc_op op = {0};
    int rc = mc_op_bucket_versioning(&op, name, v);
    if (rc != 0) {
        mc_op_clear(&op);
        return r->code = rc;
    }
    return apply(cli, &op, r);
}

static int off_bucket_head(struct mc_cli *cli, const char *name, struct mc_bucket_info *out)
{
    int rc = mc_cli_offline_open(cli, false);
    return rc ? rc : mc_engine_bucket_head(cli->eng, name, out);
}

static int off_bucket_list(struct mc_cli *cli, struct mc_bucket_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    int rc = mc_cli_offline_open(cli, false);
    return rc ? rc : mc_engine_bucket_list(cli->eng, out, n);
}

/* Built and checked first, stamped (engine opened for writing) only once valid, then applied. */
static int stamp_and_apply(struct mc_cli *cli, struct mc_op *op, int rc, struct mc_op_result *r)
{
    if (rc == 0) {
        rc = stamp_offline(cli, op);
    }
    if (rc != 0) {
        mc_op_clear(op);
        memset(r, 0, sizeof(*r));
        return r->code = rc;
    }
    return apply(cli, op, r);
}

static int off_put(struct mc_cli *cli, const char *bucket, const char *key,
                   const struct mc_object_meta *meta, const char *if_match, bool if_none_match_star,
                   struct mc_op_result *r)
{
    struct mc_op op = {0};
    int rc = mc_op_put(&op, bucket, key, VID_UNSTAMPED, 0, meta);
    if (rc == 0 && if_match) {
        op.if_match = strdup(if_match);
        rc = op.if_match ? 0 : MC_ENOMEM;
    }
    op.if_none_match_star = if_none_match_star;
    return stamp_and_apply(cli, &op, rc, r);
}

static int off_del(struct mc_cli *cli, const char *bucket, const char *key, const char *version_id,
                   struct mc_op_result *r)
{
    struct mc_op op = {0};
    int rc = mc_op_delete(&op, bucket, key, version_id, VID_UNSTAMPED, 0);
    return stamp_and_apply(cli, &op, rc, r);
}

static int off_get(struct mc_cli *cli, const char *bucket, const char *key, const char *version_id,
                   bool with_inline, struct mc_version *out)
{
    int rc = mc_cli_offline_open(cli, false);
    return rc ? rc : mc_engine_get(cli->eng, bucket, key, version_id, with_inline, out);
}

static int off_list_objects(struct mc_cli *cli, const char *bucket, const struct mc_list_params *p,
                            struct mc_list_result *out)
{
    int rc = mc_cli_offline_open(cli, false);
    return rc ? rc : mc_engine_list_objects(cli->eng, bucket, p, out);
}

static int off_list_versions(struct mc_cli *cli, const char *bucket, const struct mc_list_params *p,
                             struct mc_list_result *out)
{
    int rc = mc_cli_offline_open(cli, false);
    return rc ? rc : mc_engine_list_versions(cli->eng, bucket, p, out);
}

static void off_close(struct mc_cli *cli)
{
    if (cli->eng) {
        mc_engine_close(cli->eng);
        cli->eng = NULL;
        if (cli->offline_reseal && mc_seal_write(cli->data_dir) != 0) {
            fprintf(stderr,
                    "warning: could not write %s/engine.seal: the node's next start "
                    "checks the engine file instead\n",
                    cli->data_dir);
        }
        cli->offline_reseal = false;
    }
    if (cli->dir_lock_fd > 0) {
        close(cli->dir_lock_fd - 1); /* releases the flock */
        cli->dir_lock_fd = 0;
    }
}

const struct mc_cli_backend mc_cli_offline_backend = {
    .name = "offline",
    .bucket_create = off_bucket_create,
    .bucket_delete = off_bucket_delete,
    .bucket_versioning = off_bucket_versioning,
    .bucket_head = off_bucket_head,
    .bucket_list = off_bucket_list,
    .put = off_put,
    .del = off_del,
    .get = off_get,
    .list_objects = off_list_objects,
    .list_versions = off_list_versions,
    .close = off_close,
};
