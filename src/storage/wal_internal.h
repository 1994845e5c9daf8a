/* wal_internal.h: WAL on-disk format (segment header, record frame) and shared internals. */
#ifndef MC_STORAGE_WAL_INTERNAL_H
#define MC_STORAGE_WAL_INTERNAL_H

#include "metacenter/storage.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Segment file wal-<seq 16 hex>.log:
 *   [0,64)  header: "MCWALSG1", u32 version, u32 0, u64 seq, zeros, u64 XXH3(bytes 0..56) at 56
 *   [64,..) frames, 8-byte aligned, then zeros (the file is preallocated with fallocate)
 * Frame:
 *   0  u64 checksum  XXH3-64 of bytes [8, 32+len) with bytes 13-15 zero, XOR group * K
 *   8  u32 len       payload bytes (<= MC_WAL_RECORD_MAX_BYTES)
 *   12 u8  type
 *   13 u24 group     bits 0-22: the write group (never 0); bit 23: the group's first frame
 *                    (WAL_GROUP_START); 0 = version 1 frame
 *   16 u64 index
 *   24 u64 term
 *   32 payload, then zero padding to a multiple of 8
 * An all-zero frame header marks the end of written data (XXH3 of zeros is never 0 here, so a
 * real frame never looks like that).
 *
 * The group: producers frame and checksum records with group 0 (their thread); the WAL thread
 * stamps the group it writes them in (bytes 13-15, and the checksum XORed with group * K: O(1),
 * no second pass over the data). Groups are written one after the other, each fdatasynced before
 * the next one's first byte, so only the last group can be torn, and a multi-page group can be
 * torn anywhere inside (the kernel writes its pages back in any order). At load a bad spot
 * followed only by valid non-start frames of its own group is such a tear (cut); followed by a
 * frame of another group, or by any group's start frame (which proves the bad spot was synced
 * before that group began), it is damage (wal_load.c). Version 1 segments hold group 0 frames
 * only. (Branch dur7 wrote version 2 frames without start bits, groups < 2^23 in practice.)
 */
#define WAL_SEG_MAGIC   "MCWALSG1"
#define WAL_SEG_VERSION 2 /* written; 1 (no group numbers) is still read */
#define WAL_GROUP_MASK  0x7fffffu
#define WAL_GROUP_START 0x800000u /* bit 23 of the group field: first frame of a group */
/* A frame's checksum is XORed with field * K. Odd: field * K is 0 only for field 0, so a version
 * 1 frame's checksum is unchanged. */
#define WAL_GROUP_K         0x9e3779b97f4a7c15ull
#define WAL_SEG_HDR_BYTES   64
#define WAL_FRAME_HDR_BYTES 32

static inline size_t wal_frame_bytes(uint32_t len)
{
    return ((size_t)WAL_FRAME_HDR_BYTES + len + 7) & ~(size_t)7;
}

enum { WAL_FRAME_OK = 0, WAL_FRAME_ZERO = 1, WAL_FRAME_BAD = 2 };

/* Encode one record at dst (wal_frame_bytes(r->len) bytes, padding zeroed). */
void wal_frame_encode(uint8_t *dst, const struct mc_wal_record *r);
/* Decode the frame at p with avail bytes: WAL_FRAME_OK (out, *frame_bytes set; out->data points
 * into p), WAL_FRAME_ZERO (all-zero header: end of data) or WAL_FRAME_BAD. */
int wal_frame_decode(const uint8_t *p, size_t avail, struct mc_wal_record *out,
                     size_t *frame_bytes);
/* The frame's group field (bytes 13-15; 0 for a version 1 frame), start bit included. */
static inline uint32_t wal_frame_group_field(const uint8_t *p)
{
    return (uint32_t)p[13] | (uint32_t)p[14] << 8 | (uint32_t)p[15] << 16;
}
/* The frame's group number (start bit masked off). */
static inline uint32_t wal_frame_group(const uint8_t *p)
{
    return wal_frame_group_field(p) & WAL_GROUP_MASK;
}
static inline bool wal_frame_is_start(const uint8_t *p)
{
    return (wal_frame_group_field(p) & WAL_GROUP_START) != 0;
}
/* Stamp group field g (group 1..WAL_GROUP_MASK, optionally | WAL_GROUP_START) into a frame
 * encoded with group 0. */
void wal_frame_stamp(uint8_t *p, uint32_t g);
static inline uint32_t wal_group_next(uint32_t g)
{
    g = (g + 1) & WAL_GROUP_MASK;
    return g ? g : 1;
}
void wal_seg_header_encode(uint8_t *dst, uint64_t seq);
/* 0 (*seq, *version set), MC_ECORRUPT or MC_EVERSION. */
int wal_seg_header_decode(const uint8_t *p, uint64_t *seq, uint32_t *version);

/* One segment file. first/last/end are touched only by the WAL thread (or open/close). */
struct wal_seg {
    uint64_t seq;
    int fd;
    /* Header version. A version 1 segment (left by an older binary) is never appended to, so
     * that binary, after a downgrade, meets a version 2 header and refuses with MC_EVERSION
     * instead of reading the new frames as a torn tail and cutting them. */
    uint32_t version;
    uint64_t first; /* index of the first record; last < first when empty */
    uint64_t last;
    uint64_t end; /* byte offset where the next frame goes */
    bool dirty;   /* written since the last fdatasync */
    /* Bytes [0, zeroed) were written (frames or zeros): an overwrite there changes no extent,
     * so fdatasync writes no inode (wal.c zero_ahead). 0 = unknown (a loaded segment). */
    uint64_t zeroed;
    char path[MC_DATADIR_PATH_MAX];
};

/* Where a written record lives. */
struct wal_pos {
    uint64_t term;
    uint64_t seq;
    uint64_t off;
};

/* Table of positions for indexes [first, first+len), trimmable at both ends. */
struct wal_pos_table {
    struct wal_pos *v;
    size_t head, len, cap;
    uint64_t first; /* index of v[head]; when len == 0, the next index expected */
};

int wal_pos_push(struct wal_pos_table *t, uint64_t index, const struct wal_pos *p);
void wal_pos_trim_back(struct wal_pos_table *t, uint64_t keep_upto);  /* drop > keep_upto */
void wal_pos_trim_front(struct wal_pos_table *t, uint64_t drop_upto); /* drop <= drop_upto */
void wal_pos_clear(struct wal_pos_table *t, uint64_t next_index);
const struct wal_pos *wal_pos_get(const struct wal_pos_table *t, uint64_t index);
static inline uint64_t wal_pos_last(const struct wal_pos_table *t)
{
    return t->first + t->len - 1;
}

/* Result of loading a WAL directory. Segments sorted by seq; spare (if any) separate. */
struct wal_loaded {
    struct wal_seg *segs;
    size_t nsegs;
    struct wal_seg spare;
    bool has_spare;
    uint64_t next_seq;
    struct wal_pos_table pos;
    /* A gap between segments: indexes gap_first..gap_last are missing; the segments before it
     * (seq < dropped_below_seq) were not loaded and are still on disk. gap_last 0 = no gap. */
    uint64_t gap_first, gap_last, dropped_below_seq;
    uint32_t last_group; /* of the last frame kept (0: none or version 1): groups go on from it */
};

/* Load and verify wal_dir (see mc_wal_open). errbuf gets the message on MC_ECORRUPT. */
int wal_load(const char *wal_dir, const struct mc_fs_ops *fs, uint64_t segment_size_bytes,
             struct wal_loaded *out, char *errbuf, size_t errbuf_len);
void wal_seg_path(const char *wal_dir, uint64_t seq, char *out, size_t len);

/* True when p[0..n) holds only zero bytes (preallocated, never written). */
bool wal_all_zero(const uint8_t *p, size_t n);

#endif
