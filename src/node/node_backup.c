/* node_backup.c: offline backup/restore: engine → snapshot file, snapshot file → new single-node
 * data dir whose Raft log starts at the engine's applied index (so the two line up). */
#include "node/backup.h"
#include "node/node_internal.h"
#include "node/seal.h"
#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/clock.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define RESTORE_TERM 1 /* a restored cluster is new: its log starts in term 1 */

static int say(char *err, size_t len, int rc, const char *fmt, ...)
{
    if (err && len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, len, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int write_engine(void *ctx, int fd)
{
    return mc_engine_copy_to_fd(ctx, fd, NULL);
}

int mc_backup_export(struct mc_engine *eng, const char *path, struct mc_snap_info *out)
{
    char dir[MC_DATADIR_PATH_MAX];
    if (snprintf(dir, sizeof(dir), "%s.tmpdir", path) >= (int)sizeof(dir)) {
        return MC_EINVAL;
    }
    uint64_t applied = 0;
    void *conf = NULL;
    size_t conf_len = 0;
    int rc = mc_engine_applied_index(eng, &applied);
    if (rc == 0) {
        rc = mc_engine_conf(eng, &conf, &conf_len);
    }
    if (rc) {
        return rc;
    }
    if (conf_len > MC_SNAP_MEMBERSHIP_MAX_BYTES) {
        conf_len = 0; /* restore writes its own membership; never fail an export over it */
    }
    struct mc_snap_info *info = calloc(1, sizeof(*info));
    if (!info) {
        free(conf);
        return MC_ENOMEM;
    }
    mc_fs_remove_tree(NULL, dir);
    if (mkdir(dir, 0755) != 0) {
        rc = MC_EIO;
    }
    if (rc == 0) {
        rc = mc_snap_create(dir, NULL, applied ? applied : 1, RESTORE_TERM, conf, conf_len,
                            write_engine, eng, info);
    }
    if (rc == 0 && rename(info->path, path) != 0) {
        rc = mc_fs_errno_to_mc(-errno);
    }
    if (rc == 0) {
        snprintf(info->path, sizeof(info->path), "%s", path);
        rc = mc_snap_read_info(path, true, info);
    }
    mc_fs_remove_tree(NULL, dir);
    if (rc == 0 && out) {
        *out = *info;
    }
    free(info);
    free(conf);
    return rc;
}

/* The membership blob node.c reads back (node_conf_decode): node_id the only voter. */
static int single_node_blob(uint64_t node_id, const char *peer_addr, struct mc_wbuf *w)
{
    struct mc_node *n = calloc(1, sizeof(*n));
    if (!n) {
        return MC_ENOMEM;
    }
    n->id = node_id;
    n->n_members = 1;
    n->members[0].id = node_id;
    snprintf(n->members[0].peer_addr, sizeof(n->members[0].peer_addr), "%s",
             peer_addr ? peer_addr : "");
    struct mc_raft_conf c;
    memset(&c, 0, sizeof(c));
    c.n_voters = 1;
    c.voters[0] = node_id;
    int rc = node_conf_encode(n, &c, w);
    free(n);
    return rc;
}

/* The identity file node.c reads on start (read_cluster_file): same line format. */
static int write_identity(const char *datadir, uint64_t node_id, uint64_t cluster_id,
                          const char *peer_addr)
{
    char path[MC_DATADIR_PATH_MAX], buf[512];
    int rc = mc_datadir_path(datadir, "cluster", path, sizeof(path));
    if (rc) {
        return rc;
    }
    int len = snprintf(buf, sizeof(buf), "node_id=%llu\ncluster_id=%llu\n",
                       (unsigned long long)node_id, (unsigned long long)cluster_id);
    if (peer_addr && peer_addr[0]) {
        len += snprintf(buf + len, sizeof(buf) - (size_t)len, "member=%llu %s\n",
                        (unsigned long long)node_id, peer_addr);
    }
    if (len >= (int)sizeof(buf)) {
        return MC_ETOOLARGE;
    }
    return mc_fs_write_file_atomic(NULL, path, buf, (size_t)len);
}

static uint64_t new_cluster_id(const char *datadir)
{
    struct {
        int64_t wall;
        uint64_t mono;
        pid_t pid;
    } seed = {mc_wall_ns(), mc_mono_ns(), getpid()};
    uint64_t h = mc_checksum64_seed(datadir, strlen(datadir), mc_checksum64(&seed, sizeof(seed)));
    return h ? h : 1;
}

/* Entries a data dir may hold and still count as holding no node: the marker, the lock file
 * and the empty subdirs mc_datadir_init makes. */
static bool empty_subdir(const char *datadir, const char *name)
{
    if (strcmp(name, "engine") != 0 && strcmp(name, "wal") != 0 && strcmp(name, "snap") != 0) {
        return false;
    }
    char path[MC_DATADIR_PATH_MAX];
    if (mc_datadir_path(datadir, name, path, sizeof(path)) != 0) {
        return false;
    }
    DIR *d = opendir(path);
    if (!d) {
        return false; /* a file named like a subdir is not ours to overwrite */
    }
    bool empty = true;
    struct dirent *e;
    while (empty && (e = readdir(d)) != NULL) {
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    }
    closedir(d);
    return empty;
}

/* The first entry of datadir that is node state (WAL, snapshots, hard state meta-a/meta-b,
 * engine, identity, seal, anything unknown) into what; 0 when there is none. A restore that
 * kept any of it would start with the old hard state or log next to the new engine. */
static int find_node_state(const char *datadir, char *what, size_t what_len)
{
    DIR *d = opendir(datadir);
    if (!d) {
        return errno == ENOENT ? 0 : MC_EIO;
    }
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        if (strcmp(nm, ".") == 0 || strcmp(nm, "..") == 0 || strcmp(nm, "METACENTER") == 0 ||
            strcmp(nm, "LOCK") == 0 || empty_subdir(datadir, nm)) {
            continue;
        }
        snprintf(what, what_len, "%s", nm);
        found = 1;
    }
    closedir(d);
    return found;
}
static int refuse_node_state(const char *datadir, char *err, size_t err_len)
{
    char what[256];
    int rc = find_node_state(datadir, what, sizeof(what));
    if (rc < 0) {
        return say(err, err_len, rc, "cannot read %s: %s", datadir, mc_strerror(rc));
    }
    if (rc > 0) {
        return say(err, err_len, MC_EEXIST,
                   "%s already holds node state (%s): restore only creates new data dirs; give "
                   "it an empty or new --data-dir",
                   datadir, what);
    }
    return 0;
}

int mc_backup_restore(const char *snap_path, const char *datadir, uint64_t node_id,
                      const char *peer_addr, struct mc_restore_info *out, char *err, size_t err_len)
{
    struct mc_restore_info ri;
    memset(&ri, 0, sizeof(ri));
    struct mc_snap_info *info = calloc(1, sizeof(*info));
    struct mc_engine *eng = NULL;
    struct mc_wbuf blob;
    mc_wbuf_init(&blob, MC_SNAP_MEMBERSHIP_MAX_BYTES);
    char engdir[MC_DATADIR_PATH_MAX], snapdir[MC_DATADIR_PATH_MAX];
    bool created = false;
    int lock_fd = -1;
    int rc = info ? 0 : MC_ENOMEM;
    if (rc) {
        goto out;
    }
    struct stat dst;
    char what[256];
    if (stat(datadir, &dst) == 0 && (rc = mc_datadir_check(datadir)) != 0 && rc != MC_ENOTFOUND &&
        !(rc == MC_ENOTOURS && find_node_state(datadir, what, sizeof(what)) == 0)) {
        rc = say(err, err_len, rc, "cannot restore into %s: %s", datadir, mc_strerror(rc));
        goto out;
    }
    rc = mc_snap_read_info(snap_path, true, info);
    if (rc) {
        rc = say(err, err_len, rc, "%s is not a valid snapshot file (%s): %s", snap_path,
                 mc_error_name(rc), mc_strerror(rc));
        goto out;
    }
    ri.snapshot_index = info->index;
    ri.data_bytes = info->data_size;
    /* Looked at twice: before anything is created (a refused dir is left exactly as it was),
     * and again under the lock, which needs the marker and may make missing empty subdirs: a
     * `serve` on the same dir either holds the lock already (refused here) or cannot take it
     * until the restore is complete. */
    rc = refuse_node_state(datadir, err, err_len);
    if (rc) {
        goto out;
    }
    rc = mc_datadir_init(datadir, NULL);
    if (rc) {
        rc = say(err, err_len, rc, "cannot use %s as a data dir: %s", datadir, mc_strerror(rc));
        goto out;
    }
    rc = mc_datadir_lock(datadir, &lock_fd);
    if (rc == MC_ELOCKED) {
        rc = say(err, err_len, rc,
                 "%s is in use by another process (a running server?): restore only creates "
                 "new data dirs",
                 datadir);
        goto out;
    }
    if (rc) {
        rc = say(err, err_len, rc, "cannot lock %s: %s", datadir, mc_strerror(rc));
        goto out;
    }
    rc = refuse_node_state(datadir, err, err_len);
    if (rc) {
        goto out;
    }
    rc = mc_datadir_path(datadir, "engine", engdir, sizeof(engdir));
    if (rc == 0) {
        rc = mc_datadir_path(datadir, "snap", snapdir, sizeof(snapdir));
    }
    if (rc) {
        rc = say(err, err_len, rc, "cannot use %s as a data dir: %s", datadir, mc_strerror(rc));
        goto out;
    }
    created = true;
    rc = mc_snap_install(datadir, NULL, snap_path);
    struct mc_engine_options eo = {.sync = MC_ENGINE_SYNC_NONE, .no_create = true};
    if (rc == 0) {
        rc = mc_engine_open(engdir, &eo, &eng);
    }
    if (rc == 0) {
        rc = mc_engine_applied_index(eng, &ri.applied_index);
    }
    if (rc) {
        const char *why = mc_engine_last_error();
        rc = say(err, err_len, rc, "cannot install %s: %s", snap_path,
                 why && *why ? why : mc_strerror(rc));
        goto out;
    }
    /* One conf entry at applied+1 makes this node the only voter (the engine's membership blob
     * is what a restarting node reads its peers from); Raft then starts from a snapshot at that
     * same index, so the engine's applied index and the log line up exactly. */
    ri.raft_index = ri.applied_index + 1;
    rc = single_node_blob(node_id, peer_addr, &blob);
    if (rc == 0) {
        rc = mc_engine_apply(eng, ri.raft_index, NULL, 0, blob.data, blob.len, NULL);
    }
    if (rc == 0) {
        rc = mc_engine_sync(eng);
    }
    uint64_t at = 0;
    if (rc == 0) {
        rc = mc_engine_state_hash(eng, &ri.state_hash, &at);
    }
    if (rc == 0) {
        rc = mc_snap_create(snapdir, NULL, ri.raft_index, RESTORE_TERM, blob.data, blob.len,
                            write_engine, eng, NULL);
    }
    if (rc) {
        rc = say(err, err_len, rc, "cannot write the restored state: %s", mc_strerror(rc));
        goto out;
    }
    /* The engine is complete and synced: seal it as a clean stop would (seal.h), so the node's
     * first start trusts it and an offline `snapshot save` of the never-started dir works. */
    mc_engine_close(eng);
    eng = NULL;
    rc = mc_seal_write(datadir);
    if (rc) {
        rc = say(err, err_len, rc, "cannot write %s/engine.seal: %s", datadir, mc_strerror(rc));
        goto out;
    }
    ri.cluster_id = new_cluster_id(datadir);
    rc = write_identity(datadir, node_id, ri.cluster_id, peer_addr);
    if (rc) {
        rc = say(err, err_len, rc, "cannot write %s/cluster: %s", datadir, mc_strerror(rc));
    }
out:
    if (eng) {
        mc_engine_close(eng);
    }
    if (rc && created) {
        /* Leave the dir as restore found it (it held no node). */
        char path[MC_DATADIR_PATH_MAX];
        mc_fs_remove_tree(NULL, engdir);
        mc_fs_remove_tree(NULL, snapdir);
        if (mc_datadir_path(datadir, "cluster", path, sizeof(path)) == 0) {
            unlink(path);
        }
        mc_seal_remove(datadir);
    }
    mc_datadir_unlock(lock_fd); /* after the cleanup: nothing starts on a half-written dir */
    if (rc == 0 && out) {
        *out = ri;
    }
    mc_wbuf_free(&blob);
    free(info);
    return rc;
}
