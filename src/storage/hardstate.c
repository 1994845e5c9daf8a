/* hardstate.c: Raft term/vote/commit in two alternating checksummed files (meta-a, meta-b). */
#include "metacenter/storage.h"
#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/codec.h"
#include "util/log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#define HS_MAGIC   "MCHARDST"
#define HS_VERSION 1
#define HS_BYTES   64
#define HS_FAILED  (-2) /* `newest` value once a save failed: the store is unusable */

static void encode(uint8_t *b, uint64_t seq, const struct mc_hard_state *hs)
{
    memset(b, 0, HS_BYTES);
    memcpy(b, HS_MAGIC, 8);
    mc_put_u32le(b + 8, HS_VERSION);
    mc_put_u64le(b + 16, seq);
    mc_put_u64le(b + 24, hs->term);
    mc_put_u64le(b + 32, hs->vote);
    mc_put_u64le(b + 40, hs->commit);
    mc_put_u64le(b + 56, mc_checksum64(b, 56));
}

/* 0 and fills seq/hs when b holds a valid copy; MC_ECORRUPT otherwise. */
static int decode(const uint8_t *b, uint64_t *seq, struct mc_hard_state *hs)
{
    if (memcmp(b, HS_MAGIC, 8) != 0 || mc_get_u32le(b + 8) != HS_VERSION ||
        mc_get_u64le(b + 56) != mc_checksum64(b, 56)) {
        return MC_ECORRUPT;
    }
    *seq = mc_get_u64le(b + 16);
    hs->term = mc_get_u64le(b + 24);
    hs->vote = mc_get_u64le(b + 32);
    hs->commit = mc_get_u64le(b + 40);
    return *seq ? 0 : MC_ECORRUPT;
}

int mc_hardstate_open(struct mc_hardstate_store *s, const char *dir, const struct mc_fs_ops *fs)
{
    memset(s, 0, sizeof(*s));
    s->fs = fs ? fs : mc_fs_default();
    s->fd[0] = s->fd[1] = -1;
    s->newest = -1;
    const char *names[2] = {"meta-a", "meta-b"};
    bool created = false;
    bool nonempty[2] = {false, false};
    bool valid[2] = {false, false};
    uint64_t seq[2] = {0, 0};
    struct mc_hard_state hs[2];
    int rc = 0;
    for (int i = 0; i < 2; i++) {
        rc = mc_datadir_path(dir, names[i], s->path[i], sizeof(s->path[i]));
        if (rc) {
            goto fail;
        }
        int fd = s->fs->open(s->fs->ctx, s->path[i], O_RDWR, 0);
        if (fd == -ENOENT) {
            fd = s->fs->open(s->fs->ctx, s->path[i], O_RDWR | O_CREAT, 0644);
            created = true;
        }
        if (fd < 0) {
            rc = mc_fs_errno_to_mc(fd);
            goto fail;
        }
        s->fd[i] = fd;
        uint8_t b[HS_BYTES];
        ssize_t n = s->fs->pread(s->fs->ctx, fd, b, sizeof(b), 0);
        if (n < 0) {
            rc = mc_fs_errno_to_mc((int)n);
            goto fail;
        }
        nonempty[i] = n > 0;
        valid[i] = n == HS_BYTES && decode(b, &seq[i], &hs[i]) == 0;
    }
    if (created) {
        rc = mc_fs_fsync_dir(s->fs, dir);
        if (rc) {
            goto fail;
        }
    }
    for (int i = 0; i < 2; i++) {
        if (valid[i] && (s->newest < 0 || seq[i] > s->seq)) {
            s->newest = i;
            s->seq = seq[i];
            s->hs = hs[i];
        }
    }
    for (int i = 0; i < 2; i++) {
        if (nonempty[i] && !valid[i]) {
            if (s->newest < 0) {
                MC_ERROR("hardstate_corrupt",
                         "file=%s other=%s advice=\"no valid copy of term/vote: wipe this node's "
                         "data dir and rejoin the cluster, or `metacenter snapshot restore`\"",
                         s->path[i], s->path[1 - i]);
                rc = MC_ECORRUPT;
                goto fail;
            }
            MC_WARN("hardstate_copy_invalid", "file=%s using=%s seq=%llu", s->path[i],
                    s->path[s->newest], (unsigned long long)s->seq);
        }
    }
    return 0;
fail:
    mc_hardstate_close(s);
    return rc;
}

int mc_hardstate_save(struct mc_hardstate_store *s, const struct mc_hard_state *hs)
{
    if (s->newest == HS_FAILED) {
        return MC_EFATAL;
    }
    int target = s->newest == 0 ? 1 : 0;
    uint8_t b[HS_BYTES];
    encode(b, s->seq + 1, hs);
    ssize_t n = s->fs->pwrite(s->fs->ctx, s->fd[target], b, sizeof(b), 0);
    int rc = 0;
    if (n != HS_BYTES) {
        rc = n < 0 ? mc_fs_errno_to_mc((int)n) : MC_EIO;
        goto fatal;
    }
    int srv = s->fs->fdatasync(s->fs->ctx, s->fd[target]);
    if (srv < 0) {
        rc = mc_fs_errno_to_mc(srv);
        goto fatal;
    }
    s->seq++;
    s->newest = target;
    s->hs = *hs;
    return 0;
fatal:
    /* fsyncgate: after a failed write/fdatasync we cannot know what is on disk; never retry. */
    MC_ERROR("hardstate_save_failed",
             "file=%s err=%s action=\"node must stop; restart recovers the last durable copy\"",
             s->path[target], mc_error_name(rc));
    s->newest = HS_FAILED;
    return rc == MC_ENOSPC ? MC_ENOSPC : MC_EFATAL;
}

void mc_hardstate_close(struct mc_hardstate_store *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->fd[i] >= 0) {
            s->fs->close(s->fs->ctx, s->fd[i]);
            s->fd[i] = -1;
        }
    }
}
