/* node_recover.c: the engine at start-up: rebuilt from the newest engine image and the WAL when
 * it is damaged or older than the newest snapshot (power loss), and the snapshot Raft restarts
 * from. */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "obs/metrics.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/*
 * Why this exists. The engine's LMDB runs without fsync (MDB_NOSYNC, MDB_WRITEMAP): the WAL is
 * the durability source. After kill -9 the page cache still holds every committed LMDB page, so
 * the file is whole. After a power loss it is not: the kernel writes the map's dirty pages back
 * in any order, so data.mdb may be torn (a meta page newer than the pages it points to) or
 * simply old. Such an engine can only be rebuilt, never repaired, and what it is rebuilt from
 * must be on disk: the newest engine image (a consistent copy, written and fsynced by
 * mc_snap_create) plus every WAL entry after it. So the WAL is compacted only up to the newest
 * image (node_snapshot.c), header-only snapshots bound Raft's in-memory log but never the WAL,
 * and images are written every --image-entries entries or --image-log-mb MiB.
 *
 * Decision at start (A = the engine's applied index, S = the newest snapshot, I = the newest
 * image, W = the WAL's first index):
 *   - engine readable and A >= S: Raft restarts from S, as after any clean or kill -9 stop;
 *   - else, when W <= I + 1 (the WAL reaches back to the image): if the engine is damaged or
 *     A < I, it is replaced by the image (or, with no image and the WAL from index 1, by an
 *     empty engine); Raft restarts from I with the WAL after it, and the entries up to S, known
 *     committed, are applied again on start (the engine skips those at or below A);
 *   - else the node refuses to start (engine_behind_snapshot): a data dir written before this
 *     rule (its WAL was compacted to header-only snapshots) has nothing to rebuild from.
 */

static int open_engine(struct mc_node *n, const char *path)
{
    struct mc_engine_options eo;
    node_engine_options(n, &eo);
    int rc = mc_engine_open(path, &eo, &n->engine);
    if (rc) {
        n->engine = NULL;
        MC_ERROR("engine_open_failed", "path=%s err=%s detail=\"%s\"", path, mc_error_name(rc),
                 mc_engine_last_error());
    }
    return rc;
}

/* Replace the engine by the image (checksummed on the way: mc_snap_install) or, without one, by
 * an empty engine; reopen it. */
static int rebuild_engine(struct mc_node *n, const struct mc_snap_info *img)
{
    char path[MC_DATADIR_PATH_MAX];
    int rc = mc_datadir_engine_dir(n->datadir, path, sizeof(path));
    if (rc) {
        return rc;
    }
    mc_engine_close(n->engine);
    n->engine = NULL;
    rc = img ? mc_snap_install(n->datadir, NULL, img->path)
             : mc_fs_remove_tree(mc_fs_default(), path);
    if (rc) {
        MC_ERROR("engine_rebuild_failed", "from=%s err=%s", img ? img->path : "empty",
                 mc_error_name(rc));
        return rc;
    }
    return open_engine(n, path);
}

int node_recover_engine(struct mc_node *n, bool damaged, struct node_base *out)
{
    memset(out, 0, sizeof(*out));
    struct mc_snap_info *latest = calloc(1, sizeof(*latest));
    struct mc_snap_info *img = calloc(1, sizeof(*img));
    int rc = latest && img ? 0 : MC_ENOMEM;
    if (rc) {
        goto done;
    }
    rc = mc_snap_latest_header(n->snapdir, false, latest);
    bool has_latest = rc == 0;
    if (rc && rc != MC_ENOTFOUND) {
        goto done;
    }
    rc = mc_snap_latest_header(n->snapdir, true, img);
    bool has_img = rc == 0;
    if (rc && rc != MC_ENOTFOUND) {
        goto done;
    }
    rc = 0;
    uint64_t s = has_latest ? latest->index : 0, i = has_img ? img->index : 0;
    uint64_t w = mc_wal_first_index(n->wal), a = 0;
    if (!damaged) {
        mc_engine_applied_index(n->engine, &a);
    }
    n->last_image_index = i;
    out->latest_index = s;
    uint64_t gap_first = 0, gap_last = 0;
    if (mc_wal_gap(n->wal, &gap_first, &gap_last)) {
        /* Below the newest snapshot the entries are not needed (a crash during a WAL reset
         * leaves such a gap); above it they are committed entries this node no longer has. */
        if (gap_last > s) {
            MC_ERROR("wal_segment_missing",
                     "missing=%llu..%llu snapshot_index=%llu action=\"WAL entries after the "
                     "newest snapshot are missing (a lost segment): wipe this node's data dir "
                     "and rejoin the cluster, or restore a backup\"",
                     (unsigned long long)gap_first, (unsigned long long)gap_last,
                     (unsigned long long)s);
            rc = MC_ECORRUPT;
            goto done;
        }
        rc = mc_wal_remove_dropped(n->wal);
        if (rc) {
            goto done;
        }
        w = mc_wal_first_index(n->wal);
    }
    if (!damaged && a >= s) {
        if (has_latest) {
            out->snap = latest;
            latest = NULL;
        }
        goto done;
    }
    if (w > i + 1) {
        MC_ERROR("engine_behind_snapshot",
                 "engine_applied=%llu damaged=%d snapshot_index=%llu image_index=%llu "
                 "wal_first=%llu action=\"nothing on disk to rebuild the engine from: wipe the "
                 "data dir and rejoin, or restore a backup\"",
                 (unsigned long long)a, damaged, (unsigned long long)s, (unsigned long long)i,
                 (unsigned long long)w);
        rc = MC_ECORRUPT;
        goto done;
    }
    bool rebuilt = damaged || a < i;
    if (rebuilt) {
        rc = rebuild_engine(n, has_img ? img : NULL);
        if (rc) {
            goto done;
        }
        mc_engine_applied_index(n->engine, &a);
        mc_metrics_engine_rebuilt();
    }
    assert(a >= i);
    MC_WARN("engine_recovering",
            "engine_applied=%llu damaged=%d rebuilt_from=%s snapshot_index=%llu "
            "wal_first=%llu replay=\"%llu..%llu from the WAL\"",
            (unsigned long long)a, damaged,
            !rebuilt  ? "-"
            : has_img ? img->path
                      : "empty",
            (unsigned long long)s, (unsigned long long)w, (unsigned long long)(a + 1),
            (unsigned long long)s);
    if (has_img) {
        out->snap = img;
        img = NULL;
    }
done:
    free(latest);
    free(img);
    return rc;
}

/*
 * An image made by an older leader can hold more than its label: content A above index S (that
 * version labelled it before its copy began). A follower installing it has an engine at A and a
 * WAL restarting at S+1; restarting before the WAL reaches A, create_raft would see the engine
 * ahead of the log, which otherwise means lost WAL entries, and refuse. So the install records
 * (S, A) in DATADIR/engine.legacy (durably, right after the install: a crash in between only
 * refuses, as before); at start an engine ahead of the log is accepted only when the record
 * matches it exactly and the log reaches S (the entries S+1..A the engine holds are then the
 * committed entries the image was made from, not indexes reused after a loss). The record is
 * dropped once the log reaches A, or replaced by the next install.
 */
#define LEGACY_FILE "engine.legacy"

static int legacy_drop(struct mc_node *n, const char *path)
{
    if (unlink(path) != 0) {
        return errno == ENOENT ? 0 : mc_fs_errno_to_mc(-errno);
    }
    return mc_fs_fsync_dir(NULL, n->datadir);
}

int node_legacy_image_record(struct mc_node *n, uint64_t label, uint64_t content)
{
    char path[MC_DATADIR_PATH_MAX];
    int rc = mc_datadir_path(n->datadir, LEGACY_FILE, path, sizeof(path));
    if (rc) {
        return rc;
    }
    if (content <= label) {
        return legacy_drop(n, path);
    }
    char line[64];
    int len = snprintf(line, sizeof(line), "%llu %llu\n", (unsigned long long)label,
                       (unsigned long long)content);
    rc = mc_fs_write_file_atomic(NULL, path, line, (size_t)len);
    if (rc == 0) {
        MC_WARN("snapshot_legacy_image", "index=%llu engine_applied=%llu file=%s",
                (unsigned long long)label, (unsigned long long)content, path);
    }
    return rc;
}

bool node_legacy_image_accepts(struct mc_node *n, uint64_t applied, uint64_t log_last)
{
    char path[MC_DATADIR_PATH_MAX];
    if (mc_datadir_path(n->datadir, LEGACY_FILE, path, sizeof(path)) != 0) {
        return false;
    }
    FILE *f = fopen(path, "r");
    if (!f) {
        return false;
    }
    unsigned long long s = 0, a = 0;
    bool ok = fscanf(f, "%llu %llu", &s, &a) == 2;
    fclose(f);
    if (ok && (log_last >= a || applied > a)) {
        /* The log holds everything the engine does again, or the engine moved past the image:
         * the record explains nothing any more, and a stale one must not accept a later
         * engine-ahead state at the same index. */
        (void)legacy_drop(n, path);
        return false;
    }
    ok = ok && a == applied && log_last >= s;
    if (ok) {
        MC_WARN("engine_ahead_legacy_image",
                "engine_applied=%llu log_last=%llu image_index=%llu action=\"accepted: entries "
                "up to %llu came with an image from an older version\"",
                (unsigned long long)applied, (unsigned long long)log_last, s, a);
    }
    return ok;
}
