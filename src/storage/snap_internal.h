/* snap_internal.h: snapshot file header layout and helpers shared by the snapshot sources. */
#ifndef MC_STORAGE_SNAP_INTERNAL_H
#define MC_STORAGE_SNAP_INTERNAL_H

#include "metacenter/storage.h"
#include "util/checksum.h"

/*
 * Header (MC_SNAP_HEADER_BYTES = 4096, little endian):
 *   0 "MCSNAP01"  8 u32 version  12 u32 membership_len  16 u64 index  24 u64 term
 *   32 u64 data_offset (= 4096)  40 u64 data_size  48 u64 XXH3 of data  56 u64 created wall ns
 *   64 membership blob, zeros, 4088 u64 XXH3 of bytes [0, 4088)
 * Then data_size bytes: the LMDB data.mdb image.
 */
#define SNAP_MAGIC       "MCSNAP01"
#define SNAP_VERSION     1
#define SNAP_HDR_SUM_OFF (MC_SNAP_HEADER_BYTES - 8)

_Static_assert(64 + MC_SNAP_MEMBERSHIP_MAX_BYTES <= SNAP_HDR_SUM_OFF, "membership fits header");

void snap_header_encode(uint8_t *b, const struct mc_snap_info *in);
int snap_header_decode(const uint8_t *b, struct mc_snap_info *out);
int snap_checksum_range(const struct mc_fs_ops *fs, int fd, uint64_t off, uint64_t len,
                        uint64_t *out);
int snap_read_info_fd(const struct mc_fs_ops *fs, int fd, bool verify_data,
                      struct mc_snap_info *out);
int snap_copy_range(const struct mc_fs_ops *fs, int in, uint64_t off, uint64_t len, int out,
                    uint64_t out_off, struct mc_digest *d);
void snap_name(char *out, size_t n, const char *dir, uint64_t index, uint64_t term,
               const char *suffix);

/* Remove the recv-<index>-<term>.part files in snap_dir but one: (keep_index, keep_term), or
 * with keep_newest the highest (index, term) present. Unlink failures are returned (the rest
 * are still tried); the dir is fsynced when anything was removed. */
int snap_recv_prune(const char *snap_dir, const struct mc_fs_ops *fs, bool keep_newest,
                    uint64_t keep_index, uint64_t keep_term);

/*
 * A file written front to back goes to disk in MC_SNAP_SYNC_STEP_BYTES steps as it grows:
 * writeback of each full step starts, the one before is waited for and dropped from the page
 * cache, so at most ~3 steps are dirty and the final fsync finds little (a big dirty backlog
 * makes the WAL's fdatasync wait behind it: issue 8).
 */
struct snap_steps {
    uint64_t step_start, prev_start;
    uint32_t steps; /* completed steps */
};
void snap_steps_init(struct snap_steps *s, uint64_t off);
/* off: the end of what has been written so far. 0, or MC_EIO/MC_ENOSPC when writeback of a
 * step failed: sync_file_range's wait consumed the error, so the file's fsync would not report
 * it; the caller must fail the file as if its fsync had. */
int snap_steps_advance(struct snap_steps *s, const struct mc_fs_ops *fs, int fd, uint64_t off);

#endif
