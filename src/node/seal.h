/* seal.h: a checksum of the engine's LMDB file written at clean shutdown and verified at start,
 * so a byte flipped while the node was stopped is refused (LMDB has no page checksums). */
#ifndef MC_NODE_SEAL_H
#define MC_NODE_SEAL_H

#include <stdbool.h>

/* After a clean stop (engine synced and closed): write DATADIR/engine.seal. */
int mc_seal_write(const char *datadir);
/*
 * Before opening the engine: if DATADIR/engine.seal exists, hash DATADIR/engine/data.mdb and
 * compare; then remove the seal (the file changes from now on). Returns 0 (no seal, or it
 * matches) or MC_ECORRUPT (logged with the file name and what to do). *sealed (may be NULL):
 * true when a matching seal was found, i.e. the last stop was clean; false means the caller
 * must verify the engine file itself (mc_engine_verify: kill -9, power loss, first start).
 */
int mc_seal_verify(const char *datadir, bool *sealed);
/* The same through fs (NULL = real syscalls): the seal's removal is fsynced (dir) before it
 * returns 0; a failure there is returned (MC_EIO), the engine must not be opened. */
struct mc_fs_ops;
int mc_seal_verify_fs(const struct mc_fs_ops *fs, const char *datadir, bool *sealed);
/* Read-only (nothing logged, the seal stays): 0 when DATADIR/engine.seal matches data.mdb,
 * MC_ENOTFOUND when there is no seal (unclean stop, or never stopped), MC_ECORRUPT when it
 * does not match. For tools that must not trust an engine the node itself would not. */
int mc_seal_check(const char *datadir);
/* An offline writer changes data.mdb legitimately: drop the seal first. */
void mc_seal_remove(const char *datadir);

#endif
