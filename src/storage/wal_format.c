/* wal_format.c: WAL record frames, segment headers and the in-memory position table. */
#include "storage/wal_internal.h"
#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/codec.h"

#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void wal_frame_encode(uint8_t *dst, const struct mc_wal_record *r)
{
    size_t total = wal_frame_bytes(r->len);
    mc_put_u32le(dst + 8, r->len);
    dst[12] = r->type;
    dst[13] = dst[14] = dst[15] = 0;
    mc_put_u64le(dst + 16, r->index);
    mc_put_u64le(dst + 24, r->term);
    if (r->len) {
        memcpy(dst + WAL_FRAME_HDR_BYTES, r->data, r->len);
    }
    memset(dst + WAL_FRAME_HDR_BYTES + r->len, 0, total - WAL_FRAME_HDR_BYTES - r->len);
    mc_put_u64le(dst, mc_checksum64(dst + 8, WAL_FRAME_HDR_BYTES - 8 + (size_t)r->len));
}

void wal_frame_stamp(uint8_t *p, uint32_t g)
{
    assert((g & WAL_GROUP_MASK) && g <= (WAL_GROUP_MASK | WAL_GROUP_START) &&
           wal_frame_group_field(p) == 0);
    p[13] = (uint8_t)g;
    p[14] = (uint8_t)(g >> 8);
    p[15] = (uint8_t)(g >> 16);
    mc_put_u64le(p, mc_get_u64le(p) ^ (uint64_t)g * WAL_GROUP_K);
}

/* XXH3 of bytes [8, 32+len) with the group bytes read as zero. Allocates nothing (a failed
 * allocation must never read as a bad frame: recovery would cut it as a torn tail): a small
 * frame is hashed from a stack copy, a larger one streamed with a stack XXH3 state. */
static uint64_t frame_sum(const uint8_t *p, uint32_t len)
{
    size_t n = WAL_FRAME_HDR_BYTES - 8 + (size_t)len;
    if (wal_frame_group_field(p) == 0) {
        return mc_checksum64(p + 8, n);
    }
    uint8_t small[256];
    if (n <= sizeof(small)) {
        memcpy(small, p + 8, n);
        small[5] = small[6] = small[7] = 0;
        return mc_checksum64(small, n);
    }
    uint8_t hdr[WAL_FRAME_HDR_BYTES - 8];
    memcpy(hdr, p + 8, sizeof(hdr));
    hdr[5] = hdr[6] = hdr[7] = 0;
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, hdr, sizeof(hdr));
    XXH3_64bits_update(&st, p + WAL_FRAME_HDR_BYTES, len);
    return XXH3_64bits_digest(&st);
}

bool wal_all_zero(const uint8_t *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

int wal_frame_decode(const uint8_t *p, size_t avail, struct mc_wal_record *out, size_t *frame_bytes)
{
    if (avail < WAL_FRAME_HDR_BYTES) {
        return wal_all_zero(p, avail) ? WAL_FRAME_ZERO : WAL_FRAME_BAD;
    }
    if (wal_all_zero(p, WAL_FRAME_HDR_BYTES)) {
        return WAL_FRAME_ZERO;
    }
    uint32_t len = mc_get_u32le(p + 8);
    if (len > MC_WAL_RECORD_MAX_BYTES) {
        return WAL_FRAME_BAD;
    }
    size_t total = wal_frame_bytes(len);
    if (total > avail) {
        return WAL_FRAME_BAD;
    }
    if ((mc_get_u64le(p) ^ (uint64_t)wal_frame_group_field(p) * WAL_GROUP_K) != frame_sum(p, len)) {
        return WAL_FRAME_BAD;
    }
    if (!wal_all_zero(p + WAL_FRAME_HDR_BYTES + len, total - WAL_FRAME_HDR_BYTES - len)) {
        return WAL_FRAME_BAD;
    }
    out->len = len;
    out->type = p[12];
    out->index = mc_get_u64le(p + 16);
    out->term = mc_get_u64le(p + 24);
    out->data = p + WAL_FRAME_HDR_BYTES;
    *frame_bytes = total;
    return WAL_FRAME_OK;
}

void wal_seg_header_encode(uint8_t *dst, uint64_t seq)
{
    memset(dst, 0, WAL_SEG_HDR_BYTES);
    memcpy(dst, WAL_SEG_MAGIC, 8);
    mc_put_u32le(dst + 8, WAL_SEG_VERSION);
    mc_put_u64le(dst + 16, seq);
    mc_put_u64le(dst + 56, mc_checksum64(dst, 56));
}

int wal_seg_header_decode(const uint8_t *p, uint64_t *seq, uint32_t *version)
{
    if (memcmp(p, WAL_SEG_MAGIC, 8) != 0 || mc_get_u64le(p + 56) != mc_checksum64(p, 56)) {
        return MC_ECORRUPT;
    }
    uint32_t v = mc_get_u32le(p + 8);
    if (v != 1 && v != WAL_SEG_VERSION) {
        return MC_EVERSION;
    }
    *seq = mc_get_u64le(p + 16);
    *version = v;
    return 0;
}

void wal_seg_path(const char *wal_dir, uint64_t seq, char *out, size_t len)
{
    snprintf(out, len, "%s/wal-%016llx.log", wal_dir, (unsigned long long)seq);
}

/* ---- position table ---- */

int wal_pos_push(struct wal_pos_table *t, uint64_t index, const struct wal_pos *p)
{
    if (t->len == 0) {
        t->first = index;
        t->head = 0;
    }
    assert(index == t->first + t->len);
    if (t->head + t->len == t->cap) {
        if (t->head > 0 && t->head >= t->cap / 2) {
            memmove(t->v, t->v + t->head, t->len * sizeof(*t->v));
            t->head = 0;
        } else {
            size_t ncap = t->cap ? t->cap * 2 : 1024;
            struct wal_pos *nv = realloc(t->v, ncap * sizeof(*nv));
            if (!nv) {
                return MC_ENOMEM;
            }
            t->v = nv;
            t->cap = ncap;
        }
    }
    t->v[t->head + t->len++] = *p;
    return 0;
}

void wal_pos_trim_back(struct wal_pos_table *t, uint64_t keep_upto)
{
    if (t->len == 0 || keep_upto >= wal_pos_last(t)) {
        return;
    }
    if (keep_upto < t->first) {
        t->len = 0;
        t->first = keep_upto + 1;
        return;
    }
    t->len = (size_t)(keep_upto - t->first + 1);
}

void wal_pos_trim_front(struct wal_pos_table *t, uint64_t drop_upto)
{
    if (drop_upto < t->first) {
        return;
    }
    if (t->len == 0 || drop_upto >= wal_pos_last(t)) {
        t->len = 0;
        t->head = 0;
        t->first = drop_upto + 1;
        return;
    }
    size_t n = (size_t)(drop_upto - t->first + 1);
    t->head += n;
    t->len -= n;
    t->first = drop_upto + 1;
}

void wal_pos_clear(struct wal_pos_table *t, uint64_t next_index)
{
    t->len = 0;
    t->head = 0;
    t->first = next_index;
}

const struct wal_pos *wal_pos_get(const struct wal_pos_table *t, uint64_t index)
{
    if (t->len == 0 || index < t->first || index > wal_pos_last(t)) {
        return NULL;
    }
    return &t->v[t->head + (index - t->first)];
}
