/* fuzz_snap.c: libFuzzer target for snapshot files: header reader, directory scan, receive path. */
#include <sys/stat.h>

#include "fuzz_storage.h"
#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/codec.h"

/*
 * Input: one flags byte, then a snapshot file. Flags: bit 0 recompute the header checksum,
 * bit 1 set data_size/data checksum to match the bytes present (both let mutations get past the
 * checksums to the field checks); bits 2-7 choose where the file is split into two chunks for
 * the receive path. The file is used twice:
 *  - stored as snap/snap-<index>-<term>.snap (index/term from its header): mc_snap_read_info,
 *    mc_snap_latest and mc_snap_list must agree with each other, and an accepted file's info must
 *    describe the file exactly (sizes, offsets) and read back chunk by chunk;
 *  - streamed through mc_snap_recv_open/write/finish (what a follower does with a leader's
 *    snapshot): finish must accept exactly the files mc_snap_read_info accepts.
 */

#define HDR      4096u
#define HDR_SUM  (HDR - 8)
#define MAX_SNAP (64u * 1024)

static void fix(uint8_t *p, size_t len, uint8_t flags)
{
    if (len < HDR) {
        return;
    }
    if (flags & 2) {
        mc_put_u64le(p + 40, len - HDR);
        mc_put_u64le(p + 48, mc_checksum64(p + HDR, len - HDR));
    }
    if (flags & 1) {
        mc_put_u64le(p + HDR_SUM, mc_checksum64(p, HDR_SUM));
    }
}

static void check_accepted(const struct mc_snap_info *in, const char *path, const uint8_t *file,
                           size_t len, uint64_t index, uint64_t term)
{
    FUZZ_ASSERT(in->index == index && in->term == term, "index/term differ from the header");
    FUZZ_ASSERT(in->membership_len <= MC_SNAP_MEMBERSHIP_MAX_BYTES, "membership_len %u",
                in->membership_len);
    FUZZ_ASSERT(in->data_offset == MC_SNAP_HEADER_BYTES, "data_offset %llu",
                (unsigned long long)in->data_offset);
    FUZZ_ASSERT(in->file_size == len && in->data_offset + in->data_size == in->file_size,
                "sizes: file %llu data %llu+%llu, real %zu", (unsigned long long)in->file_size,
                (unsigned long long)in->data_offset, (unsigned long long)in->data_size, len);
    FUZZ_ASSERT(memcmp(in->membership, file + 64, in->membership_len) == 0, "membership bytes");
    /* Read it back as a sender would, in uneven chunks. */
    uint8_t buf[1500];
    uint64_t off = 0;
    struct mc_snap_chunk_file *f = NULL;
    int orc = mc_snap_chunk_open(path, NULL, &f);
    FUZZ_ASSERT(orc == 0, "chunk_open: %d", orc);
    for (;;) {
        size_t n = 0;
        int rc = mc_snap_chunk_read(f, off, buf, sizeof(buf), &n);
        FUZZ_ASSERT(rc == 0, "read_chunk at %llu: %d", (unsigned long long)off, rc);
        if (n == 0) {
            break;
        }
        FUZZ_ASSERT(off + n <= len && memcmp(buf, file + off, n) == 0, "chunk content");
        off += n;
    }
    mc_snap_chunk_close(f);
    FUZZ_ASSERT(off == len, "read_chunk stopped at %llu of %zu", (unsigned long long)off, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_SNAP) {
        return 0;
    }
    uint8_t flags = data[0];
    size_t len = size - 1;
    uint8_t *file = malloc(len ? len : 1);
    FUZZ_ASSERT(file != NULL, "malloc");
    memcpy(file, data + 1, len);
    fix(file, len, flags);
    uint64_t index = len >= 32 ? mc_get_u64le(file + 16) : 0;
    uint64_t term = len >= 32 ? mc_get_u64le(file + 24) : 0;

    char dir[512], path[700];
    fuzz_fresh_dir("snap", dir, sizeof(dir));
    snprintf(path, sizeof(path), "%s/snap-%016llx-%016llx.snap", dir, (unsigned long long)index,
             (unsigned long long)term);
    fuzz_write_file(path, file, len);

    struct mc_snap_info *info = malloc(4 * sizeof(*info));
    FUZZ_ASSERT(info != NULL, "malloc");
    int rc_full = mc_snap_read_info(path, true, &info[0]);
    FUZZ_ASSERT(rc_full == 0 || rc_full == MC_ECORRUPT || rc_full == MC_EVERSION ||
                    rc_full == MC_EIO,
                "mc_snap_read_info rc %d", rc_full);
    if (rc_full == 0) {
        check_accepted(&info[0], path, file, len, index, term);
    }
    int rc_hdr = mc_snap_read_info(path, false, &info[0]);
    FUZZ_ASSERT(rc_full != 0 || rc_hdr == 0, "header check fails where the full check passed");

    int rc = mc_snap_latest(dir, &info[0]);
    FUZZ_ASSERT((rc == 0) == (rc_full == 0), "mc_snap_latest %d vs mc_snap_read_info %d", rc,
                rc_full);
    FUZZ_ASSERT(rc == 0 || rc == MC_ENOTFOUND, "mc_snap_latest rc %d", rc);
    size_t n = 99;
    rc = mc_snap_list(dir, info, 4, &n);
    FUZZ_ASSERT(rc == 0 && n == (rc_hdr == 0 ? 1u : 0u), "mc_snap_list rc %d n %zu (header %d)", rc,
                n, rc_hdr);

    /* Receive the same bytes as a follower would, split in two chunks. */
    char rdir[512];
    fuzz_fresh_dir("recv", rdir, sizeof(rdir));
    struct mc_snap_recv *r = NULL;
    rc = mc_snap_recv_open(rdir, &g_fuzz_fs, index, term, &r);
    FUZZ_ASSERT(rc == 0, "mc_snap_recv_open: %d", rc);
    size_t split = len * (flags >> 2) / 63;
    rc = mc_snap_recv_write(r, 0, file, split);
    FUZZ_ASSERT(rc == 0, "recv_write 1: %d", rc);
    FUZZ_ASSERT(mc_snap_recv_offset(r) == split, "recv offset after chunk 1");
    rc = mc_snap_recv_write(r, split, file + split, len - split);
    FUZZ_ASSERT(rc == 0, "recv_write 2: %d", rc);
    rc = mc_snap_recv_finish(r, &info[1]);
    FUZZ_ASSERT((rc == 0) == (rc_full == 0), "mc_snap_recv_finish %d vs mc_snap_read_info %d", rc,
                rc_full);
    if (rc == 0) {
        check_accepted(&info[1], info[1].path, file, len, index, term);
        FUZZ_ASSERT(mc_snap_latest(rdir, &info[2]) == 0, "received snapshot not found as latest");
    }
    free(info);
    free(file);
    return 0;
}
