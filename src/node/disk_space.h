/* disk_space.h: write admission by free disk space on the data dir (statvfs, cached). */
#ifndef MC_NODE_DISK_SPACE_H
#define MC_NODE_DISK_SPACE_H

#include <stdbool.h>
#include <stdint.h>

/* How often statvfs runs at most; between checks the last answer is used. */
#define MC_DISK_SPACE_CHECK_MS 100

struct mc_disk_space {
    uint64_t reserve_bytes; /* 0 = admission off */
    uint64_t checked_ms;    /* monotonic time of the last statvfs (0 = never) */
    uint64_t free_bytes;    /* available to unprivileged writers at the last check */
    bool low;               /* free_bytes < reserve_bytes at the last check */
};

void mc_disk_space_init(struct mc_disk_space *d, uint64_t reserve_bytes);
/* True when the free space on dir's file system is below the reserve (statvfs at most every
 * MC_DISK_SPACE_CHECK_MS; a failing statvfs keeps the previous answer). Logs each transition
 * (`disk_space_low` / `disk_space_ok`). */
bool mc_disk_space_low(struct mc_disk_space *d, const char *dir, uint64_t now_ms);
/* Fail-stop with a clear log line on SIGBUS: with MDB_WRITEMAP, LMDB writes through a shared map
 * of a sparse file, and a full disk surfaces as SIGBUS on the first write to an unallocated page,
 * not as ENOSPC. Logs `fatal_storage_error what=lmdb_map_write err=NoSpace` and exits 3 (the
 * status of every fatal storage error). Process-wide; dir only names the data dir in the line. */
void mc_disk_space_catch_sigbus(const char *dir);

#endif
