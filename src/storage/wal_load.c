/* wal_load.c: WAL recovery: read every segment, verify every record, cut a torn tail, refuse to
 * start on corruption with a message naming file, offset and the way to recover. */
#include "storage/wal_internal.h"
#include "metacenter/error.h"
#include "util/log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define WAL_TORN_MAX_BYTES   (64u << 20) /* evidence kept of one cut tail (save_torn) */
#define WAL_TORN_CHUNK_BYTES (1u << 20)

#define ADVICE "wipe this node's data dir and rejoin the cluster, or `metacenter snapshot restore`"

/* Per-file scan result. */
struct scan {
    struct wal_seg seg;
    uint64_t size;     /* file size */
    bool has_data;     /* any non-zero byte after the header */
    uint64_t nrec;     /* valid records before the end/bad spot */
    uint64_t good_end; /* offset after the last valid record */
    bool bad;          /* a bad frame (or non-zero bytes after the zero end) at bad_off */
    uint64_t bad_off;
    bool any_after;      /* valid frames after bad_off (with an index above the last good) */
    bool mixed_after;    /* ... of more than one group */
    bool start_after;    /* ... one of them a group's start frame */
    uint32_t g_after;    /* ... the group of the last one */
    uint32_t last_group; /* group of the last valid frame before the end/bad spot */
    bool oom;            /* out of memory while scanning: the load fails with MC_ENOMEM */
    uint64_t gap_off;    /* offset of a record whose index breaks contiguity (0 = none) */
};

static int fail(char *errbuf, size_t n, const char *file, uint64_t off, const char *why)
{
    MC_ERROR("wal_corrupt", "file=%s offset=%llu reason=\"%s\" advice=\"%s\"", file,
             (unsigned long long)off, why, ADVICE);
    if (errbuf && n) {
        snprintf(errbuf, n,
                 "WAL corruption in %s at offset %llu: %s; refusing to start. To recover: %s", file,
                 (unsigned long long)off, why, ADVICE);
    }
    return MC_ECORRUPT;
}

static bool zero_from(const uint8_t *p, uint64_t from, uint64_t size, uint64_t *first_nonzero)
{
    for (uint64_t i = from; i < size; i++) {
        if (p[i]) {
            *first_nonzero = i;
            return false;
        }
    }
    return true;
}

/* Scan a mapped segment; fills positions into a temporary list (pos pushed by caller later). */
static void scan_frames(const uint8_t *p, struct scan *s, struct wal_pos_table *tmp)
{
    uint64_t off = WAL_SEG_HDR_BYTES;
    uint64_t prev = 0;
    uint64_t nz;
    s->has_data = !zero_from(p, WAL_SEG_HDR_BYTES, s->size, &nz);
    while (off < s->size) {
        struct mc_wal_record r;
        size_t fb;
        int k = wal_frame_decode(p + off, (size_t)(s->size - off), &r, &fb);
        if (k == WAL_FRAME_ZERO) {
            if (!zero_from(p, off, s->size, &nz)) {
                s->bad = true;
                s->bad_off = nz & ~(uint64_t)7;
            }
            break;
        }
        if (k == WAL_FRAME_BAD) {
            s->bad = true;
            s->bad_off = off;
            break;
        }
        /* 0 and UINT64_MAX are never written (mc_wal_append refuses them): corruption. */
        if (r.index == 0 || r.index == UINT64_MAX || (s->nrec > 0 && r.index != prev + 1)) {
            s->gap_off = off;
            break;
        }
        struct wal_pos pos = {.term = r.term, .seq = s->seg.seq, .off = off};
        if (wal_pos_push(tmp, r.index, &pos) != 0) {
            s->oom = true; /* out of memory: fails the load with MC_ENOMEM, never a cut */
            break;
        }
        if (s->nrec == 0) {
            s->seg.first = r.index;
        }
        s->seg.last = r.index;
        s->last_group = wal_frame_group(p + off);
        prev = r.index;
        s->nrec++;
        off += fb;
    }
    s->good_end = off;
    if (s->bad) {
        s->good_end = s->bad_off < off ? s->bad_off : off;
        /* Valid frames after the bad spot (recorded here, judged in wal_load, which knows the
         * group before a segment that starts with the bad spot). */
        for (uint64_t o = (s->bad_off + 8) & ~(uint64_t)7; o + WAL_FRAME_HDR_BYTES <= s->size;) {
            struct mc_wal_record r;
            size_t fb;
            if (wal_frame_decode(p + o, (size_t)(s->size - o), &r, &fb) == WAL_FRAME_OK &&
                (s->nrec == 0 || r.index > prev)) {
                uint32_t g = wal_frame_group(p + o);
                s->mixed_after = s->mixed_after || (s->any_after && g != s->g_after);
                s->start_after = s->start_after || wal_frame_is_start(p + o);
                s->g_after = g;
                s->any_after = true;
                o += fb;
                continue;
            }
            o += 8;
        }
    }
}

/* Can a power loss while writing the last group explain valid frames after the bad spot? Groups
 * are written one after the other, each fdatasynced before the next one's first byte, so a tear
 * is inside the last group only. The frames after must all be non-start frames of one group:
 * the group of the frame before the bad spot (prev_group: in this segment, else the previous
 * segment's last frame, as a group can continue across a roll), or the next one (its start
 * frame is what was lost). A start frame after the bad spot proves the bad spot was synced
 * before that group began: damage. Version 1 frames (group 0) carry no group: any valid frame
 * after is damage, as before. */
static bool torn_explains(const struct scan *s, uint32_t prev_group)
{
    if (!s->any_after) {
        return true;
    }
    if (s->mixed_after || s->start_after || s->g_after == 0) {
        return false;
    }
    return prev_group == 0 || s->g_after == prev_group || s->g_after == wal_group_next(prev_group);
}

static int cmp_seq(const void *a, const void *b)
{
    const struct scan *x = a, *y = b;
    return x->seg.seq < y->seg.seq ? -1 : x->seg.seq > y->seg.seq;
}

static void close_scans(const struct mc_fs_ops *fs, struct scan *sc, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (sc[i].seg.fd >= 0) {
            fs->close(fs->ctx, sc[i].seg.fd);
            sc[i].seg.fd = -1;
        }
    }
}

/* Cut a segment at off: everything after becomes zeros again, preallocated. */
static int cut_segment(const struct mc_fs_ops *fs, struct wal_seg *seg, uint64_t off,
                       uint64_t segment_size_bytes)
{
    int rc = fs->ftruncate(fs->ctx, seg->fd, (off_t)off);
    if (rc == 0 && off < segment_size_bytes) {
        rc = fs->fallocate(fs->ctx, seg->fd, (off_t)off, (off_t)(segment_size_bytes - off));
    }
    if (rc == 0) {
        rc = fs->fdatasync(fs->ctx, seg->fd);
    }
    return rc < 0 ? mc_fs_errno_to_mc(rc) : 0;
}

/*
 * Before a torn tail is cut: copy the bytes that go, from off to the last non-zero one (the
 * preallocated zeros after it say nothing) and at most WAL_TORN_MAX_BYTES, to PATH.torn, so an
 * operator can see what the cut dropped. Zero chunks are left as holes. Returns the bytes kept
 * in it (0: nothing worth keeping, no file) or a negative MC_E*; the caller cuts regardless (a
 * node that cannot keep the evidence must still start), logging which.
 */
static int64_t save_torn(const struct mc_fs_ops *fs, const struct wal_seg *seg, uint64_t off,
                         uint64_t size, char *out, size_t out_len)
{
    if (snprintf(out, out_len, "%s.torn", seg->path) >= (int)out_len) {
        return MC_EINVAL;
    }
    uint64_t end = size - off > WAL_TORN_MAX_BYTES ? off + WAL_TORN_MAX_BYTES : size;
    uint8_t *buf = malloc(WAL_TORN_CHUNK_BYTES);
    if (!buf) {
        return MC_ENOMEM;
    }
    int fd = fs->open(fs->ctx, out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int rc = fd < 0 ? fd : 0;
    uint64_t kept = 0; /* bytes from off to the last non-zero one */
    for (uint64_t at = off; rc == 0 && at < end;) {
        size_t want = end - at > WAL_TORN_CHUNK_BYTES ? WAL_TORN_CHUNK_BYTES : (size_t)(end - at);
        ssize_t n = fs->pread(fs->ctx, seg->fd, buf, want, (off_t)at);
        if (n <= 0) {
            rc = n < 0 ? (int)n : -EIO;
            break;
        }
        if (!wal_all_zero(buf, (size_t)n)) {
            ssize_t wn = fs->pwrite(fs->ctx, fd, buf, (size_t)n, (off_t)(at - off));
            rc = wn == n ? 0 : (wn < 0 ? (int)wn : -EIO);
            size_t last = (size_t)n;
            while (buf[last - 1] == 0) {
                last--;
            }
            kept = at + last - off;
        }
        at += (uint64_t)n;
    }
    if (rc == 0) {
        rc = fs->ftruncate(fs->ctx, fd, (off_t)kept); /* trailing zeros dropped */
    }
    if (rc == 0 && kept) {
        rc = fs->fsync(fs->ctx, fd);
    }
    if (fd >= 0) {
        fs->close(fs->ctx, fd);
    }
    free(buf);
    if (rc == 0 && kept == 0) {
        fs->unlink(fs->ctx, out);
    }
    if (rc < 0) {
        if (fd >= 0) {
            fs->unlink(fs->ctx, out); /* no partial evidence that looks whole */
        }
        return mc_fs_errno_to_mc(rc);
    }
    return (int64_t)kept;
}

int wal_load(const char *wal_dir, const struct mc_fs_ops *fs, uint64_t segment_size_bytes,
             struct wal_loaded *out, char *errbuf, size_t errbuf_len)
{
    memset(out, 0, sizeof(*out));
    out->spare.fd = -1;
    out->pos.first = 1;
    out->next_seq = 1;
    struct scan *sc = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    bool dir_changed = false;

    DIR *d = opendir(wal_dir);
    if (!d) {
        return mc_fs_errno_to_mc(-errno);
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned long long seq;
        char tail[8];
        if (sscanf(e->d_name, "wal-%16llx.%7s", &seq, tail) != 2 || strcmp(tail, "log") != 0 ||
            strlen(e->d_name) != 24) {
            continue;
        }
        if (seq == 0 || seq >= (1ull << 62)) {
            /* Sequence numbers count up from 1, one per segment ever created: one this large
             * is damage, and the next segment's number would wrap past it. */
            char path[MC_DATADIR_PATH_MAX];
            wal_seg_path(wal_dir, seq, path, sizeof(path));
            closedir(d);
            free(sc);
            return fail(errbuf, errbuf_len, path, 0, "segment sequence number out of range");
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            struct scan *ns = realloc(sc, cap * sizeof(*sc));
            if (!ns) {
                closedir(d);
                free(sc);
                return MC_ENOMEM;
            }
            sc = ns;
        }
        memset(&sc[n], 0, sizeof(sc[n]));
        sc[n].seg.seq = seq;
        sc[n].seg.fd = -1;
        sc[n].seg.first = 1;
        sc[n].seg.last = 0;
        wal_seg_path(wal_dir, seq, sc[n].seg.path, sizeof(sc[n].seg.path));
        n++;
    }
    closedir(d);
    if (n) {
        qsort(sc, n, sizeof(*sc), cmp_seq);
    }

    /* Pass 1: open, check headers, scan frames into per-segment tables. */
    size_t ntabs = n ? n : 1;
    struct wal_pos_table *tabs = calloc(ntabs, sizeof(*tabs));
    if (!tabs) {
        free(sc);
        return MC_ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        struct scan *s = &sc[i];
        int fd = fs->open(fs->ctx, s->seg.path, O_RDWR, 0);
        if (fd < 0) {
            rc = mc_fs_errno_to_mc(fd);
            goto out;
        }
        s->seg.fd = fd;
        struct stat st;
        if (fstat(fd, &st) < 0) {
            rc = MC_EIO;
            goto out;
        }
        s->size = (uint64_t)st.st_size;
        uint8_t hdr[WAL_SEG_HDR_BYTES] = {0};
        ssize_t got =
            s->size >= WAL_SEG_HDR_BYTES ? fs->pread(fs->ctx, fd, hdr, WAL_SEG_HDR_BYTES, 0) : 0;
        if (got < 0) {
            rc = mc_fs_errno_to_mc((int)got);
            goto out;
        }
        uint64_t seq;
        int hrc = got == WAL_SEG_HDR_BYTES ? wal_seg_header_decode(hdr, &seq, &s->seg.version)
                                           : MC_ECORRUPT;
        if (hrc == 0 && seq != s->seg.seq) {
            hrc = MC_ECORRUPT;
        }
        if (hrc) {
            uint64_t nz = 0;
            bool empty_hdr = got < WAL_SEG_HDR_BYTES || zero_from(hdr, 0, sizeof(hdr), &nz);
            bool data_after = false;
            if (i == n - 1 && empty_hdr && s->size > WAL_SEG_HDR_BYTES) {
                void *m = mmap(NULL, (size_t)s->size, PROT_READ, MAP_SHARED, fd, 0);
                if (m == MAP_FAILED) {
                    rc = MC_EIO;
                    goto out;
                }
                data_after = !zero_from(m, WAL_SEG_HDR_BYTES, s->size, &nz);
                munmap(m, (size_t)s->size);
            }
            if (data_after) {
                /* seg_create syncs the header before any frame goes in: a zero header in front
                 * of data is damage, never a crash outcome. */
                rc = fail(errbuf, errbuf_len, s->seg.path, 0,
                          "zero segment header in front of records");
                goto out;
            }
            if (i == n - 1 && empty_hdr) {
                /* Crash while creating the newest segment (before its header was synced). */
                MC_WARN("wal_remove_unfinished_segment", "file=%s", s->seg.path);
                fs->close(fs->ctx, fd);
                s->seg.fd = -1;
                fs->unlink(fs->ctx, s->seg.path);
                dir_changed = true;
                n--;
                break;
            }
            rc = hrc == MC_EVERSION
                     ? MC_EVERSION
                     : fail(errbuf, errbuf_len, s->seg.path, 0, "bad segment header");
            goto out;
        }
        if (s->size > WAL_SEG_HDR_BYTES) {
            void *m = mmap(NULL, (size_t)s->size, PROT_READ, MAP_SHARED, fd, 0);
            if (m == MAP_FAILED) {
                rc = MC_EIO;
                goto out;
            }
            scan_frames(m, s, &tabs[i]);
            munmap(m, (size_t)s->size);
            if (s->oom) {
                rc = MC_ENOMEM;
                goto out;
            }
        }
        s->seg.end = s->good_end ? s->good_end : WAL_SEG_HDR_BYTES;
    }

    /* The last segment holding any data is the only place a torn write can be. */
    size_t last = n; /* n = none */
    for (size_t i = n; i-- > 0;) {
        if (sc[i].has_data) {
            last = i;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct scan *s = &sc[i];
        if (s->gap_off) {
            rc = fail(errbuf, errbuf_len, s->seg.path, s->gap_off,
                      "record index breaks the sequence inside a segment");
            goto out;
        }
        if (!s->bad) {
            continue;
        }
        if (i != last) {
            rc = fail(errbuf, errbuf_len, s->seg.path, s->bad_off,
                      "bad record in a sealed segment (checksum/length mismatch)");
            goto out;
        }
        uint32_t prev_group = s->last_group;
        for (size_t j = i; s->nrec == 0 && j-- > 0;) {
            if (sc[j].nrec > 0) {
                prev_group = sc[j].last_group;
                break;
            }
        }
        if (!torn_explains(s, prev_group)) {
            rc = fail(errbuf, errbuf_len, s->seg.path, s->bad_off,
                      "bad record followed by valid records (not a torn tail)");
            goto out;
        }
        char torn[MC_DATADIR_PATH_MAX + 16];
        int64_t kept = save_torn(fs, &s->seg, s->good_end, s->size, torn, sizeof(torn));
        if (kept > 0) {
            dir_changed = true;
            const char *slash = strrchr(torn, '/');
            mc_fs_remove_others(fs, wal_dir, "wal-", ".log.torn", slash ? slash + 1 : torn,
                                "wal_torn_removed");
        }
        MC_WARN(
            "wal_torn_tail",
            "file=%s offset=%llu dropped_bytes=%llu torn_group=%u saved=%s saved_bytes=%lld%s%s",
            s->seg.path, (unsigned long long)s->bad_off, (unsigned long long)(s->size - s->bad_off),
            s->any_after ? s->g_after : 0, kept > 0 ? torn : "-", (long long)(kept > 0 ? kept : 0),
            kept < 0 ? " save_err=" : "", kept < 0 ? mc_error_name((int)kept) : "");
        rc = cut_segment(fs, &s->seg, s->good_end, segment_size_bytes);
        if (rc) {
            goto out;
        }
        s->seg.end = s->good_end;
    }

    /* Pass 2: stitch segments; an overlap is corruption. A gap between segments: the earlier
     * ones were reset away but not yet deleted (a crash during mc_wal_reset), or a segment is
     * missing (damage). Only the caller can tell (is the missing range covered by a snapshot?):
     * the earlier segments are left out of the log but not deleted, and the gap reported
     * (mc_wal_gap, mc_wal_remove_dropped). */
    size_t keep_from = 0;
    uint64_t prev_last = 0;
    bool have_prev = false;
    for (size_t i = 0; last != n && i <= last; i++) {
        if (sc[i].nrec == 0) {
            continue;
        }
        if (have_prev && sc[i].seg.first <= prev_last) {
            rc = fail(errbuf, errbuf_len, sc[i].seg.path, WAL_SEG_HDR_BYTES,
                      "segment overlaps the previous one");
            goto out;
        }
        if (have_prev && sc[i].seg.first != prev_last + 1) {
            MC_WARN("wal_gap",
                    "before=%s missing=%llu..%llu action=\"earlier segments left out "
                    "of the log (not deleted)\"",
                    sc[i].seg.path, (unsigned long long)(prev_last + 1),
                    (unsigned long long)(sc[i].seg.first - 1));
            keep_from = i;
            out->gap_first = prev_last + 1;
            out->gap_last = sc[i].seg.first - 1;
            out->dropped_below_seq = sc[i].seg.seq;
        }
        have_prev = true;
        prev_last = sc[i].seg.last;
    }
    for (size_t i = 0; i < keep_from; i++) {
        fs->close(fs->ctx, sc[i].seg.fd);
        sc[i].seg.fd = -1;
    }

    /* Build the result: live segments [keep_from, last], one spare, delete other empties. */
    out->segs = calloc(n ? n : 1, sizeof(*out->segs));
    if (!out->segs) {
        rc = MC_ENOMEM;
        goto out;
    }
    for (size_t i = keep_from; i < n; i++) {
        struct scan *s = &sc[i];
        if (last != n && i <= last) {
            if (s->nrec == 0 && i != last) {
                /* an empty segment between live ones: harmless, drop it */
                fs->close(fs->ctx, s->seg.fd);
                fs->unlink(fs->ctx, s->seg.path);
                dir_changed = true;
            } else {
                out->segs[out->nsegs++] = s->seg;
                for (uint64_t k = 0; k < tabs[i].len; k++) {
                    uint64_t idx = tabs[i].first + k;
                    rc = wal_pos_push(&out->pos, idx, &tabs[i].v[tabs[i].head + k]);
                    if (rc) {
                        goto out;
                    }
                }
            }
        } else if (!out->has_spare) {
            out->spare = s->seg;
            out->has_spare = true;
        } else {
            fs->close(fs->ctx, s->seg.fd);
            fs->unlink(fs->ctx, s->seg.path);
            dir_changed = true;
        }
        s->seg.fd = -1; /* ownership moved */
        out->next_seq = s->seg.seq + 1;
    }
    /* Numbering continues from the newest segment that still has frames (a cut can leave the
     * newest one empty): a group restarted at 1 would make the next torn tail look foreign. */
    for (size_t i = last + 1; last != n && i-- > 0;) {
        if (sc[i].nrec > 0) {
            out->last_group = sc[i].last_group;
            break;
        }
    }
    if (out->pos.len == 0 && out->nsegs > 0) {
        out->pos.first = out->segs[out->nsegs - 1].last + 1;
    }
    if (dir_changed) {
        rc = mc_fs_fsync_dir(fs, wal_dir);
    }
out:
    if (rc) {
        for (size_t i = 0; out->segs && i < out->nsegs; i++) {
            fs->close(fs->ctx, out->segs[i].fd);
        }
        if (out->has_spare) {
            fs->close(fs->ctx, out->spare.fd);
        }
        free(out->segs);
        free(out->pos.v);
        memset(out, 0, sizeof(*out));
    }
    close_scans(fs, sc, n);
    for (size_t i = 0; tabs && i < ntabs; i++) {
        free(tabs[i].v);
    }
    free(tabs);
    free(sc);
    return rc;
}
