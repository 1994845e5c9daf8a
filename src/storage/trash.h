/* trash.h: files deleted a chunk at a time on a thread of their own (trash.c says why). */
#ifndef MC_STORAGE_TRASH_H
#define MC_STORAGE_TRASH_H

#include "metacenter/storage.h"

#include <stdint.h>

#define MC_TRASH_MAX_FILES 64 /* queued at once; mc_trash_add says MC_EBUSY beyond */
/* What the owners use (the WAL's compacted segments, the node's pruned images): small enough
 * that one cut's trim is a short commit, large enough that a 700 MB image goes in ~1 s. */
#define MC_TRASH_CHUNK_BYTES_DEFAULT (8ull << 20)
#define MC_TRASH_PAUSE_MS_DEFAULT    10

struct mc_trash;

/* Start the deleting thread: each file's directory is fsynced first (the caller's rename is
 * durable before any cut; on failure the file is left alone), then the file is cut down
 * chunk_bytes at a time (each cut fdatasync'd), with pause_ms between cuts and between files,
 * then unlinked. A file that cannot be opened, sized (fstat) or cut is unlinked at once (as
 * before the trash existed). fs NULL = mc_fs_default().
 * MC_EINVAL (chunk_bytes 0, pause over 60 s), MC_ENOMEM. */
int mc_trash_open(const struct mc_fs_ops *fs, uint64_t chunk_bytes, uint32_t pause_ms,
                  struct mc_trash **out);

/* Queue a file for deletion. The caller has already taken it out of use (renamed it to a name
 * its owner deletes at open, so a crash midway loses nothing it needs); it need not sync the
 * directory: the trash's sync before the first cut makes the rename durable. MC_EBUSY when the
 * queue is full or closing (the caller unlinks it itself), MC_EINVAL when the path is too long. */
int mc_trash_add(struct mc_trash *t, const char *path);

/* At the owner's open: queue what an earlier run left in dir (files named prefix*suffix, say
 * "wal-" "*.log.del": a crash, or a stop, came before they were gone). A file the queue cannot
 * take is unlinked at once. Best effort: an unreadable dir is skipped. fs NULL = default. */
void mc_trash_requeue(struct mc_trash *t, const struct mc_fs_ops *fs, const char *dir,
                      const char *prefix, const char *suffix);

/* Files deleted so far (tests, logs). */
uint64_t mc_trash_deleted(struct mc_trash *t);

/* Stop after the cut in progress; queued and half-cut files stay on disk for the owner's next
 * open. NULL is a no-op. */
void mc_trash_close(struct mc_trash *t);

#endif
