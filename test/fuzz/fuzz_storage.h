/* fuzz_storage.h: scratch directory and no-fsync file ops for the storage fuzz targets. */
#ifndef MC_FUZZ_STORAGE_H
#define MC_FUZZ_STORAGE_H

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz_common.h"
#include "metacenter/storage.h"
#include "util/log.h"

/*
 * Each input is written to files in a private scratch dir (on /dev/shm when it exists, so runs
 * stay in memory) and the storage module opens them as it would after a restart. fsync and
 * fdatasync are no-ops (durability is not what is tested here; they only cost time).
 */
static char g_fuzz_root[256];
static struct mc_fs_ops g_fuzz_fs;

static int fuzz_nosync(void *ctx, int fd)
{
    (void)ctx;
    (void)fd;
    return 0;
}

static void fuzz_storage_cleanup(void)
{
    if (g_fuzz_root[0]) {
        (void)mc_fs_remove_tree(NULL, g_fuzz_root);
    }
}

/* Create the scratch root once; returns it. */
static const char *fuzz_storage_root(void)
{
    if (!g_fuzz_root[0]) {
        /* MC_FUZZ_SCRATCH (set by the suite) keeps crash leftovers inside its own temp dir. */
        const char *base = getenv("MC_FUZZ_SCRATCH");
        if (!base || !*base) {
            base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
        }
        snprintf(g_fuzz_root, sizeof(g_fuzz_root), "%s/mc_fuzz_%d_XXXXXX", base, (int)getpid());
        FUZZ_ASSERT(mkdtemp(g_fuzz_root) != NULL, "mkdtemp %s", g_fuzz_root);
        atexit(fuzz_storage_cleanup);
        /* Recovery logs every torn tail and corruption it meets: millions of lines. */
        if (!getenv("MC_FUZZ_LOG")) {
            mc_log_set_level(MC_LOG_OFF);
        }
        g_fuzz_fs = *mc_fs_default();
        g_fuzz_fs.fsync = fuzz_nosync;
        g_fuzz_fs.fdatasync = fuzz_nosync;
    }
    return g_fuzz_root;
}

static void fuzz_write_file(const char *path, const uint8_t *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    FUZZ_ASSERT(fd >= 0, "open %s", path);
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, data + off, len - off);
        FUZZ_ASSERT(n > 0, "write %s", path);
        off += (size_t)n;
    }
    close(fd);
}

/* Empty dir at root/name (removing what a previous input left). */
static void fuzz_fresh_dir(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", fuzz_storage_root(), name);
    (void)mc_fs_remove_tree(NULL, out);
    FUZZ_ASSERT(mkdir(out, 0755) == 0, "mkdir %s", out);
}

#endif
