/* seal.c: engine file checksum at clean shutdown, verified at the next start. */
#include "node/seal.h"
#include "metacenter/error.h"
#include "metacenter/storage.h"
#include "util/checksum.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SEAL_READ_BYTES (1u << 20)

static int file_hash(const char *path, uint64_t *hash, uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return errno == ENOENT ? MC_ENOTFOUND : MC_EIO;
    }
    uint8_t *buf = malloc(SEAL_READ_BYTES);
    struct mc_digest d = {0};
    int rc = buf ? mc_digest_init(&d) : MC_ENOMEM;
    *size = 0;
    while (rc == 0) {
        ssize_t n = read(fd, buf, SEAL_READ_BYTES);
        if (n < 0) {
            rc = MC_EIO;
            break;
        }
        if (n == 0) {
            break;
        }
        mc_digest_update(&d, buf, (size_t)n);
        *size += (uint64_t)n;
    }
    if (rc == 0) {
        *hash = mc_digest_final(&d);
    } else {
        mc_digest_free(&d);
    }
    free(buf);
    close(fd);
    return rc;
}

static int paths(const char *datadir, char *seal, char *data, size_t cap)
{
    int rc = mc_datadir_path(datadir, MC_DATADIR_SEAL_NAME, seal, cap);
    if (rc == 0) {
        rc = mc_datadir_path(datadir, "engine/data.mdb", data, cap);
    }
    return rc;
}

int mc_seal_write(const char *datadir)
{
    char seal[MC_DATADIR_PATH_MAX], data[MC_DATADIR_PATH_MAX];
    uint64_t hash = 0, size = 0;
    int rc = paths(datadir, seal, data, sizeof(seal));
    if (rc == 0) {
        rc = file_hash(data, &hash, &size);
    }
    if (rc) {
        return rc;
    }
    char line[96];
    int len = snprintf(line, sizeof(line), "xxh3=%016llx size=%llu\n", (unsigned long long)hash,
                       (unsigned long long)size);
    return mc_fs_write_file_atomic(NULL, seal, line, (size_t)len);
}

void mc_seal_remove(const char *datadir)
{
    char seal[MC_DATADIR_PATH_MAX];
    if (mc_datadir_path(datadir, MC_DATADIR_SEAL_NAME, seal, sizeof(seal)) == 0 &&
        unlink(seal) == 0) {
        (void)mc_fs_fsync_dir(NULL, datadir); /* best effort: the offline writer syncs its own */
    }
}

int mc_seal_verify(const char *datadir, bool *sealed)
{
    return mc_seal_verify_fs(NULL, datadir, sealed);
}

/* MC_ENOTFOUND: no seal; MC_ECORRUPT: it does not match data.mdb (the figures in *c). */
struct seal_cmp {
    unsigned long long want, want_size;
    uint64_t hash, size;
};

static int seal_compare(const char *seal, const char *data, struct seal_cmp *c)
{
    memset(c, 0, sizeof(*c));
    FILE *f = fopen(seal, "r");
    if (!f) {
        return MC_ENOTFOUND; /* no clean shutdown recorded: nothing to compare */
    }
    int got = fscanf(f, "xxh3=%llx size=%llu", &c->want, &c->want_size);
    fclose(f);
    int rc = file_hash(data, &c->hash, &c->size);
    return got != 2 || rc != 0 || c->hash != c->want || c->size != c->want_size ? MC_ECORRUPT : 0;
}

int mc_seal_check(const char *datadir)
{
    char seal[MC_DATADIR_PATH_MAX], data[MC_DATADIR_PATH_MAX];
    struct seal_cmp c;
    int rc = paths(datadir, seal, data, sizeof(seal));
    return rc ? rc : seal_compare(seal, data, &c);
}

int mc_seal_verify_fs(const struct mc_fs_ops *fs, const char *datadir, bool *sealed)
{
    fs = fs ? fs : mc_fs_default();
    if (sealed) {
        *sealed = false;
    }
    char seal[MC_DATADIR_PATH_MAX], data[MC_DATADIR_PATH_MAX];
    int rc = paths(datadir, seal, data, sizeof(seal));
    if (rc) {
        return rc;
    }
    struct seal_cmp c;
    rc = seal_compare(seal, data, &c);
    if (rc == MC_ENOTFOUND) {
        return 0;
    }
    if (rc) {
        MC_ERROR("engine_corrupt",
                 "file=%s expected_xxh3=%016llx actual_xxh3=%016llx expected_size=%llu "
                 "actual_size=%llu action=\"the state machine file changed while the node was "
                 "stopped: wipe this node's data dir and restart it to rejoin (the leader sends "
                 "a snapshot), or restore it with 'metacenter snapshot restore'\"",
                 data, c.want, (unsigned long long)c.hash, c.want_size, (unsigned long long)c.size);
        return MC_ECORRUPT;
    }
    /* The engine is opened for writing next: the removal must be on disk first, or after a
     * power loss the old seal still vouches for (or condemns) a file that changed since. */
    int u = fs->unlink(fs->ctx, seal);
    rc = u < 0 ? mc_fs_errno_to_mc(u) : mc_fs_fsync_dir(fs, datadir);
    if (rc) {
        MC_ERROR("engine_seal_remove_failed", "file=%s err=%s", seal, mc_error_name(rc));
        return rc;
    }
    if (sealed) {
        *sealed = true;
    }
    return 0;
}
