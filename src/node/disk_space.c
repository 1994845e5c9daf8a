/* disk_space.c: write admission by free disk space. The leader refuses new client writes with
 * InsufficientStorage while its data dir's file system has less than --disk-reserve-mb free, so a
 * filling disk stops writes cleanly (reads still served) long before the WAL or LMDB hits ENOSPC,
 * which is fail-stop (node_fatal). The node accepts writes again by itself once space returns. */
#include "node/disk_space.h"

#include "util/log.h"

#include <assert.h>
#include <string.h>
#include <sys/statvfs.h>

void mc_disk_space_init(struct mc_disk_space *d, uint64_t reserve_bytes)
{
    memset(d, 0, sizeof(*d));
    d->reserve_bytes = reserve_bytes;
}

bool mc_disk_space_low(struct mc_disk_space *d, const char *dir, uint64_t now_ms)
{
    assert(d && dir);
    if (d->reserve_bytes == 0) {
        return false;
    }
    if (d->checked_ms != 0 && now_ms - d->checked_ms < MC_DISK_SPACE_CHECK_MS) {
        return d->low;
    }
    d->checked_ms = now_ms ? now_ms : 1;
    struct statvfs sv;
    if (statvfs(dir, &sv) != 0) {
        return d->low; /* keep the last answer: a transient error must not flap admission */
    }
    d->free_bytes = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
    bool low = d->free_bytes < d->reserve_bytes;
    if (low && !d->low) {
        MC_WARN("disk_space_low",
                "dir=%s free_bytes=%llu reserve_bytes=%llu action=\"new writes are rejected with "
                "InsufficientStorage, reads are served; free space on this disk (writes resume "
                "by themselves once free space is above the reserve)\"",
                dir, (unsigned long long)d->free_bytes, (unsigned long long)d->reserve_bytes);
    } else if (!low && d->low) {
        MC_INFO("disk_space_ok", "dir=%s free_bytes=%llu reserve_bytes=%llu", dir,
                (unsigned long long)d->free_bytes, (unsigned long long)d->reserve_bytes);
    }
    d->low = low;
    return low;
}
