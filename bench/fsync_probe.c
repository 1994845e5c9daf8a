/* fsync_probe.c: fdatasync latency of the disk under a directory (what one WAL group commit costs).
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Usage: fsync_probe DIR [N]
 * Writes N (default 200, at most 10000) 4 KiB blocks to a fresh file in DIR with an
 * fdatasync after each, twice: appending (the file grows: the filesystem journals the size
 * change) and overwriting blocks written before (no metadata change), and prints one JSON
 * line with p50/p99 in microseconds. The WAL pays one such sync per group commit, so this is
 * the floor of a durable write's latency on this machine.
 */

#define PROBE_MAX_SAMPLES 10000
#define PROBE_BLOCK_BYTES 4096

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Writes n blocks with an fdatasync after each into us[]; prewritten: the file's blocks already
 * exist (overwrite in place: no size/extent change), else each write appends. Returns 0 or -1. */
static int probe(const char *path, int n, int prewritten, uint64_t *us)
{
    static char block[PROBE_BLOCK_BYTES];
    memset(block, 'w', sizeof(block));
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        perror(path);
        return -1;
    }
    int rc = 0;
    if (prewritten) {
        for (int i = 0; i < n && rc == 0; i++) {
            rc = write(fd, block, sizeof(block)) == (ssize_t)sizeof(block) ? 0 : -1;
        }
        rc = rc == 0 && fsync(fd) == 0 && lseek(fd, 0, SEEK_SET) == 0 ? 0 : -1;
    }
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t t0 = now_ns();
        if (write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || fdatasync(fd) != 0) {
            perror("fsync_probe: write/fdatasync");
            rc = -1;
        }
        us[i] = (now_ns() - t0) / 1000;
    }
    close(fd);
    unlink(path);
    if (rc == 0) {
        qsort(us, (size_t)n, sizeof(us[0]), cmp_u64);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: fsync_probe DIR [N]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 200;
    if (n < 1 || n > PROBE_MAX_SAMPLES) {
        fprintf(stderr, "fsync_probe: N must be 1..%d\n", PROBE_MAX_SAMPLES);
        return 2;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/fsync_probe.%d", argv[1], (int)getpid());
    static uint64_t app[PROBE_MAX_SAMPLES], over[PROBE_MAX_SAMPLES];
    if (probe(path, n, 0, app) != 0 || probe(path, n, 1, over) != 0) {
        return 1;
    }
    printf("{\"samples\":%d,\"append_p50_us\":%llu,\"append_p99_us\":%llu,"
           "\"overwrite_p50_us\":%llu,\"overwrite_p99_us\":%llu}\n",
           n, (unsigned long long)app[n / 2], (unsigned long long)app[(n * 99) / 100],
           (unsigned long long)over[n / 2], (unsigned long long)over[(n * 99) / 100]);
    return 0;
}
