/* fuzz_wal.c: libFuzzer target for WAL recovery: segment files → mc_wal_open / iterate / append. */
#include <string.h>
#include <sys/stat.h>

#include "fuzz_storage.h"
#include "metacenter/error.h"
#include "storage/wal_internal.h"
#include "util/checksum.h"
#include "util/codec.h"

/*
 * Input: one flags byte, then the concatenation of segment files; a new segment starts at each
 * occurrence of the segment magic "MCWALSG1". Each becomes wal/wal-<seq>.log (seq from its
 * header when readable and unused, else the next free number). Flag bit 0 "fix checksums":
 * recompute the header checksum and every frame checksum first, so mutations reach the
 * structural checks (lengths, padding, index gaps, overlaps, torn tails) instead of dying on the
 * checksum. Checked: mc_wal_open returns 0 or a documented error and never crashes; after a
 * successful open the log is contiguous and readable end to end; a record appended then is
 * found again after close + reopen (recovery left the log writable).
 */

#define MAGIC      "MCWALSG1"
#define SEG_HDR    64u
#define FRAME_HDR  32u
#define MAX_SEGS   8
#define RECORD_MAX (8u * 1024 * 1024)

/* Layout per storage's wal_internal.h (the on-disk format, docs/storage.md). */
static void fix_checksums(uint8_t *p, size_t len)
{
    if (len < SEG_HDR) {
        return;
    }
    mc_put_u64le(p + 56, mc_checksum64(p, 56));
    size_t off = SEG_HDR;
    while (off + FRAME_HDR <= len) {
        uint32_t n = mc_get_u32le(p + off + 8);
        size_t total = ((size_t)FRAME_HDR + n + 7) & ~(size_t)7;
        if (n > RECORD_MAX || total > len - off) {
            break;
        }
        /* As the WAL sums a frame: the group field (bytes 13-15) read as zero, the sum XORed
         * with field * K (wal_internal.h), so stamped frames stay valid. */
        uint8_t grp[3];
        memcpy(grp, p + off + 13, 3);
        memset(p + off + 13, 0, 3);
        uint64_t sum = mc_checksum64(p + off + 8, FRAME_HDR - 8 + (size_t)n);
        memcpy(p + off + 13, grp, 3);
        mc_put_u64le(p + off, sum ^ (uint64_t)wal_frame_group_field(p + off) * WAL_GROUP_K);
        off += total;
    }
}

static int open_wal(const char *dir, struct mc_wal **w, char *err, size_t errlen)
{
    struct mc_wal_options o = {0};
    o.wal_dir = dir;
    o.fs = &g_fuzz_fs;
    o.segment_size_bytes = MC_WAL_SEGMENT_MIN_BYTES;
    o.error_text = err;
    o.error_text_len = errlen;
    return mc_wal_open(&o, w);
}

struct visit {
    uint64_t next;
    uint64_t n;
    const struct mc_wal_record *want; /* optional: the record to compare with */
};

static int visit(void *ctx, const struct mc_wal_record *r)
{
    struct visit *v = ctx;
    FUZZ_ASSERT(r->index == v->next, "iterate gave index %llu, expected %llu",
                (unsigned long long)r->index, (unsigned long long)v->next);
    FUZZ_ASSERT(r->len <= MC_WAL_RECORD_MAX_BYTES, "record len %u", r->len);
    if (v->want && r->index == v->want->index) {
        FUZZ_ASSERT(r->term == v->want->term && r->type == v->want->type &&
                        r->len == v->want->len && memcmp(r->data, v->want->data, r->len) == 0,
                    "appended record read back differently");
    }
    v->next++;
    v->n++;
    return 0;
}

static void check_log(struct mc_wal *w, const struct mc_wal_record *want)
{
    uint64_t first = mc_wal_first_index(w), last = mc_wal_last_index(w);
    FUZZ_ASSERT(first != UINT64_MAX && last != UINT64_MAX, "loaded index 2^64-1 (BUGS.md #4)");

    /* last >= first, or an empty log: last == first - 1 (no overflow at UINT64_MAX). */
    FUZZ_ASSERT(last >= first || (first > 0 && last == first - 1), "first %llu last %llu",
                (unsigned long long)first, (unsigned long long)last);
    if (last >= first) {
        struct visit v = {.next = first, .want = want};
        int rc = mc_wal_iterate(w, first, last, visit, &v);
        FUZZ_ASSERT(rc == 0, "iterate %llu..%llu after a successful open: %d",
                    (unsigned long long)first, (unsigned long long)last, rc);
        FUZZ_ASSERT(v.n == last - first + 1, "iterate visited %llu records",
                    (unsigned long long)v.n);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 20)) {
        return 0;
    }
    uint8_t flags = data[0];
    const uint8_t *in = data + 1;
    size_t len = size - 1;
    char dir[512];
    fuzz_fresh_dir("wal", dir, sizeof(dir));

    /* Split at each magic. */
    size_t starts[MAX_SEGS + 1];
    size_t n = 0;
    starts[n++] = 0;
    for (size_t i = 1; i + 8 <= len && n < MAX_SEGS; i++) {
        if (memcmp(in + i, MAGIC, 8) == 0) {
            starts[n++] = i;
        }
    }
    starts[n] = len;
    uint64_t used[MAX_SEGS];
    for (size_t s = 0; s < n; s++) {
        size_t slen = starts[s + 1] - starts[s];
        uint8_t *seg = malloc(slen ? slen : 1);
        FUZZ_ASSERT(seg != NULL, "malloc");
        memcpy(seg, in + starts[s], slen);
        if (flags & 1) {
            fix_checksums(seg, slen);
        }
        /* Sequence numbers as a node makes them (1, 2, ... one per segment ever created; the
         * loader refuses 2^62 and above as damage, and a segment rolled from just below that
         * limit would be refused at the next open: not a state a node reaches). */
        uint64_t seq = slen >= 24 ? mc_get_u64le(seg + 16) & ((1ull << 40) - 1) : 0;
        for (size_t k = 0; k < s; k++) {
            seq = used[k] == seq ? 0 : seq;
        }
        if (seq == 0) {
            seq = s + 1;
            for (size_t k = 0; k < s; k++) {
                seq = used[k] >= seq ? used[k] + 1 : seq;
            }
        }
        used[s] = seq;
        char path[600];
        snprintf(path, sizeof(path), "%s/wal-%016llx.log", dir, (unsigned long long)seq);
        fuzz_write_file(path, seg, slen);
        free(seg);
    }

    struct mc_wal *w = NULL;
    char err[512] = "";
    int rc = open_wal(dir, &w, err, sizeof(err));
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_ECORRUPT || rc == MC_EVERSION || rc == MC_ENOMEM || rc == MC_EIO,
                    "mc_wal_open rc %d (%s)", rc, err);
        FUZZ_ASSERT(w == NULL || rc == 0, "failed open returned a handle");
        return 0;
    }
    check_log(w, NULL);

    /* Append one record after what was recovered; it must survive close + reopen. */
    uint64_t last = mc_wal_last_index(w), first = mc_wal_first_index(w);
    static const uint8_t payload[] = "appended-after-recovery";
    struct mc_wal_record rec = {
        .index = last + 1,
        .term = mc_wal_last_term(w) + 1,
        .type = 0,
        .len = sizeof(payload) - 1,
        .data = payload,
    };
    rc = mc_wal_append(w, &rec, 1, NULL, NULL);
    if (rc == 0) {
        rc = mc_wal_sync(w);
        FUZZ_ASSERT(rc == 0, "sync after append: %d", rc);
    } else {
        /* Only index 2^64-1 (never written: the loader treats it as corruption) is refused. */
        FUZZ_ASSERT(rc == MC_EINVAL && rec.index == UINT64_MAX, "append at %llu: %d",
                    (unsigned long long)rec.index, rc);
    }
    mc_wal_close(w);
    if (rc != 0) {
        return 0;
    }
    w = NULL;
    rc = open_wal(dir, &w, err, sizeof(err));
    FUZZ_ASSERT(rc == 0, "reopen after a successful open + append failed: %d (%s)", rc, err);
    FUZZ_ASSERT(mc_wal_last_index(w) == rec.index, "reopened last %llu, appended %llu",
                (unsigned long long)mc_wal_last_index(w), (unsigned long long)rec.index);
    FUZZ_ASSERT(mc_wal_first_index(w) <= first || first > last,
                "first index moved forward from %llu to %llu", (unsigned long long)first,
                (unsigned long long)mc_wal_first_index(w));
    check_log(w, &rec);
    mc_wal_close(w);
    return 0;
}
