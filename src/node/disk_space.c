/* disk_space.c: write admission by free disk space. The leader refuses new client writes with
 * InsufficientStorage while its data dir's file system has less than --disk-reserve-mb free, so a
 * filling disk stops writes cleanly (reads still served) long before the WAL or LMDB hits ENOSPC,
 * which is fail-stop (node_fatal). The node accepts writes again by itself once space returns. */
#include "node/disk_space.h"

#include "util/log.h"

#include <assert.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

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

static char sigbus_dir[1024];

static void on_sigbus(int sig)
{
    (void)sig;
    /* A synchronous fault in the thread copying into the LMDB map (it holds no log or stdio lock),
     * so logging here is the lesser evil next to dying silently. The transaction being written is
     * not committed (LMDB updates its meta page last): the data dir stays consistent and the node
     * recovers from its WAL once space is freed. */
    MC_ERROR("fatal_storage_error",
             "what=lmdb_map_write err=NoSpace detail=\"SIGBUS writing the LMDB map: the disk of "
             "%s is full (or data.mdb was truncated)\" action=\"the node stops; free disk space, "
             "then restart it (it recovers from its WAL)\"",
             sigbus_dir);
    _exit(3);
}

void mc_disk_space_catch_sigbus(const char *dir)
{
    snprintf(sigbus_dir, sizeof(sigbus_dir), "%s", dir);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_sigbus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
