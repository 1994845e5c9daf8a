/* backup.h: offline backup helpers for the CLI: export a stopped node's engine as a snapshot
 * file, and restore a snapshot file into a new single-node data dir (like etcdutl). */
#ifndef MC_NODE_BACKUP_H
#define MC_NODE_BACKUP_H

#include <stdint.h>

#include "metacenter/engine.h"
#include "metacenter/storage.h"

struct mc_restore_info {
    uint64_t snapshot_index; /* index in FILE's header */
    uint64_t applied_index;  /* the engine image's own applied index */
    uint64_t raft_index;     /* where the restored node's Raft log starts (snapshot index) */
    uint64_t cluster_id;     /* the new cluster's id */
    uint64_t state_hash;     /* engine state hash of the restored data */
    uint64_t data_bytes;
};

/*
 * Write the engine's state as a snapshot file (storage format MCSNAP01, verified) at path:
 * index = the engine's applied index, term 1, membership = the engine's conf blob.
 * Blocking. out may be NULL.
 */
int mc_backup_export(struct mc_engine *eng, const char *path, struct mc_snap_info *out);

/*
 * Create a new single-node cluster in datadir from the snapshot
 * file at snap_path (checksums verified first): DATADIR/engine from the image, a conf entry
 * applied at applied+1 that makes node_id the only voter, DATADIR/snap/ holding a snapshot at
 * that index (so Raft starts there), DATADIR/engine.seal (the engine is synced and complete, as
 * after a clean stop) and the DATADIR/cluster identity file with a new cluster
 * id. peer_addr (may be NULL/"") is recorded as the member's peer address. datadir must be
 * new, empty, or hold nothing but the marker, LOCK and empty engine/ wal/ snap/ (else
 * MC_EEXIST naming the first entry: a leftover WAL or meta-a/meta-b would outlive the restore);
 * DATADIR/LOCK is held throughout (MC_ELOCKED when a server holds it). On failure the pieces
 * created are removed. err (may be NULL) gets one line naming the problem.
 */
int mc_backup_restore(const char *snap_path, const char *datadir, uint64_t node_id,
                      const char *peer_addr, struct mc_restore_info *out, char *err,
                      size_t err_len);

#endif
