/* test_storage_wal.c: WAL round trip, truncate, compaction, torn tails, corruption, faults. */
#include "storage_test_util.h"

#include "metacenter/error.h"
#include "storage/trash.h"
#include "storage/wal_internal.h"
#include "util/checksum.h"
#include "util/codec.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <semaphore.h>

/* payload length used for index i in most tests */
static uint32_t len_for(uint64_t i)
{
    static const uint32_t sizes[] = {0, 1, 7, 8, 100, 255, 4096, 10000, 65536};
    return sizes[i % (sizeof(sizes) / sizeof(sizes[0]))];
}

static struct mc_wal *open_wal(const char *dir, uint64_t seg, const struct mc_fs_ops *fs)
{
    struct mc_wal_options o = {.wal_dir = dir, .segment_size_bytes = seg, .fs = fs};
    struct mc_wal *w = NULL;
    cr_assert_eq(mc_wal_open(&o, &w), 0);
    return w;
}

/* Append [lo, hi] one record per call with len_fn sizes and term t. */
static void append_range(struct mc_wal *w, uint64_t lo, uint64_t hi, uint64_t term,
                         uint32_t (*lf)(uint64_t))
{
    uint8_t *buf = malloc(MC_WAL_RECORD_MAX_BYTES);
    for (uint64_t i = lo; i <= hi; i++) {
        uint32_t len = lf(i);
        st_fill(buf, i * 31 + term, len);
        struct mc_wal_record r = {
            .index = i, .term = term, .type = (uint8_t)(i & 3), .len = len, .data = buf};
        cr_assert_eq(mc_wal_append(w, &r, 1, NULL, NULL), 0, "append %llu", (unsigned long long)i);
    }
    free(buf);
}

struct check_ctx {
    uint64_t next;
    uint64_t term_of_hi; /* terms: index > split get term2 */
    uint64_t split, term1, term2;
    uint32_t (*lf)(uint64_t);
};

static int check_rec(void *vctx, const struct mc_wal_record *r)
{
    struct check_ctx *c = vctx;
    cr_assert_eq(r->index, c->next, "index %llu want %llu", (unsigned long long)r->index,
                 (unsigned long long)c->next);
    uint64_t term = r->index > c->split ? c->term2 : c->term1;
    cr_assert_eq(r->term, term);
    cr_assert_eq(r->type, (uint8_t)(r->index & 3));
    uint32_t len = c->lf(r->index);
    cr_assert_eq(r->len, len);
    uint8_t *want = malloc(len + 1);
    st_fill(want, r->index * 31 + term, len);
    cr_assert(len == 0 || memcmp(want, r->data, len) == 0, "content of %llu",
              (unsigned long long)r->index);
    free(want);
    c->next++;
    return 0;
}

static void check_range(struct mc_wal *w, uint64_t lo, uint64_t hi, uint64_t split, uint64_t t1,
                        uint64_t t2, uint32_t (*lf)(uint64_t))
{
    struct check_ctx c = {.next = lo, .split = split, .term1 = t1, .term2 = t2, .lf = lf};
    cr_assert_eq(mc_wal_iterate(w, lo, hi, check_rec, &c), 0);
    cr_assert_eq(c.next, hi + 1);
}

static uint32_t big_len(uint64_t i)
{
    static const uint32_t sizes[] = {0, 1, 1024 * 1024, 17, 300000, 1024 * 1024 - 1};
    return sizes[i % 6];
}

Test(storage_wal, round_trip_0B_to_1MiB)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 512 * 1024, NULL);
    cr_assert_eq(mc_wal_last_index(w), 0);
    append_range(w, 1, 30, 2, big_len);
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert_eq(mc_wal_durable_index(w), 30);
    check_range(w, 1, 30, 1000, 2, 2, big_len);
    mc_wal_close(w);

    w = open_wal(dir, 512 * 1024, NULL);
    cr_assert_eq(mc_wal_first_index(w), 1);
    cr_assert_eq(mc_wal_last_index(w), 30);
    cr_assert_eq(mc_wal_last_term(w), 2);
    cr_assert_eq(mc_wal_durable_index(w), 30);
    check_range(w, 1, 30, 1000, 2, 2, big_len);
    append_range(w, 31, 40, 3, big_len);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    w = open_wal(dir, 512 * 1024, NULL);
    check_range(w, 1, 40, 30, 2, 3, big_len);
    mc_wal_close(w);
    st_rmtree(dir);
}

Test(storage_wal, batch_append_and_contiguity)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 64 * 1024, NULL);
    struct mc_wal_record recs[3];
    uint8_t data[3][8];
    for (int i = 0; i < 3; i++) {
        memset(data[i], 'a' + i, 8);
        recs[i] = (struct mc_wal_record){.index = 5 + i, .term = 1, .len = 8, .data = data[i]};
    }
    uint64_t t = 0;
    cr_assert_eq(mc_wal_append(w, recs, 3, NULL, &t), 0); /* empty log: any start index */
    cr_assert_eq(t, 1);
    cr_assert_eq(mc_wal_first_index(w), 5);
    recs[0].index = 9; /* gap */
    cr_assert_eq(mc_wal_append(w, recs, 1, NULL, NULL), MC_EINVAL);
    recs[0].index = 8;
    recs[1].index = 10; /* not contiguous inside the batch */
    cr_assert_eq(mc_wal_append(w, recs, 2, NULL, NULL), MC_EINVAL);
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert_eq(mc_wal_durable_index(w), 7);
    cr_assert_eq(mc_wal_done_ticket(w), 1);
    mc_wal_close(w);
    w = open_wal(dir, 64 * 1024, NULL);
    cr_assert_eq(mc_wal_first_index(w), 5);
    cr_assert_eq(mc_wal_last_index(w), 7);
    mc_wal_close(w);
    st_rmtree(dir);
}

Test(storage_wal, truncate_then_append)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 32 * 1024, NULL); /* several segments */
    append_range(w, 1, 60, 1, len_for);
    /* truncate from 25 (in an older segment) and from 58 (same segment) in the same queue */
    cr_assert_eq(mc_wal_truncate(w, 58, NULL), 0);
    cr_assert_eq(mc_wal_last_index(w), 57);
    cr_assert_eq(mc_wal_truncate(w, 25, NULL), 0);
    cr_assert_eq(mc_wal_last_index(w), 24);
    cr_assert_eq(mc_wal_last_term(w), 1);
    append_range(w, 25, 40, 2, len_for);
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert_eq(mc_wal_durable_index(w), 40);
    check_range(w, 1, 40, 24, 1, 2, len_for);
    cr_assert_eq(mc_wal_iterate(w, 41, 41, check_rec, NULL), MC_ENOTFOUND);
    mc_wal_close(w);
    w = open_wal(dir, 32 * 1024, NULL);
    cr_assert_eq(mc_wal_last_index(w), 40);
    check_range(w, 1, 40, 24, 1, 2, len_for);
    /* truncate everything, then start again at 1 with term 3 */
    cr_assert_eq(mc_wal_truncate(w, 1, NULL), 0);
    append_range(w, 1, 5, 3, len_for);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    w = open_wal(dir, 32 * 1024, NULL);
    cr_assert_eq(mc_wal_first_index(w), 1);
    cr_assert_eq(mc_wal_last_index(w), 5);
    check_range(w, 1, 5, 0, 3, 3, len_for);
    mc_wal_close(w);
    st_rmtree(dir);
}

static uint32_t len100(uint64_t i)
{
    (void)i;
    return 100;
}

Test(storage_wal, compaction_across_segments)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 8 * 1024, NULL); /* ~60 records per segment */
    append_range(w, 1, 1000, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    char segs[64][MC_DATADIR_PATH_MAX];
    int before = st_list_segments(dir, segs, 64);
    cr_assert_gt(before, 10);
    cr_assert_eq(mc_wal_compact(w, 500, NULL), 0);
    cr_assert_eq(mc_wal_first_index(w), 501);
    cr_assert_eq(mc_wal_sync(w), 0);
    int after = st_list_segments(dir, segs, 64);
    cr_assert_lt(after, before - 6, "before %d after %d", before, after);
    cr_assert_eq(mc_wal_iterate(w, 500, 500, check_rec, NULL), MC_ENOTFOUND);
    check_range(w, 501, 1000, 2000, 1, 1, len100);
    append_range(w, 1001, 1010, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    w = open_wal(dir, 8 * 1024, NULL);
    /* whole segments were dropped; the partly covered one may still be loaded */
    cr_assert_leq(mc_wal_first_index(w), 501);
    cr_assert_gt(mc_wal_first_index(w), 400);
    cr_assert_eq(mc_wal_last_index(w), 1010);
    check_range(w, 501, 1010, 2000, 1, 1, len100);
    /* compact past the end, then append at a new index (after a snapshot install) */
    cr_assert_eq(mc_wal_compact(w, 2000, NULL), 0);
    append_range(w, 2001, 2005, 4, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    w = open_wal(dir, 8 * 1024, NULL);
    cr_assert_eq(mc_wal_first_index(w), 2001);
    cr_assert_eq(mc_wal_last_index(w), 2005);
    check_range(w, 2001, 2005, 0, 4, 4, len100);
    mc_wal_close(w);
    st_rmtree(dir);
}

Test(storage_wal, reset_drops_log)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 8 * 1024, NULL);
    append_range(w, 1, 200, 1, len100);
    cr_assert_eq(mc_wal_reset(w, 5001, NULL), 0);
    cr_assert_eq(mc_wal_first_index(w), 5001);
    cr_assert_eq(mc_wal_last_index(w), 5000);
    append_range(w, 5001, 5003, 7, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    w = open_wal(dir, 8 * 1024, NULL);
    cr_assert_eq(mc_wal_first_index(w), 5001);
    cr_assert_eq(mc_wal_last_index(w), 5003);
    check_range(w, 5001, 5003, 0, 7, 7, len100);
    mc_wal_close(w);
    st_rmtree(dir);
}

static uint32_t len_small(uint64_t i)
{
    return (uint32_t)(i * 13 % 90);
}

/* For every byte offset inside the last record, a file cut there loads the prefix before it. */
Test(storage_wal, torn_tail_every_offset)
{
    char dir[64], pristine[128];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 4096, NULL);
    append_range(w, 1, 10, 1, len_small);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    char segs[8][MC_DATADIR_PATH_MAX];
    int n = st_list_segments(dir, segs, 8);
    cr_assert_geq(n, 1);
    /* drop the spare (if any): the data segment is the first */
    for (int i = 1; i < n; i++) {
        unlink(segs[i]);
    }
    uint64_t start = 64;
    for (uint64_t i = 1; i < 10; i++) {
        start += (32 + len_small(i) + 7) & ~7u;
    }
    uint64_t end = start + ((32 + len_small(10) + 7) & ~7u);
    snprintf(pristine, sizeof(pristine), "%s.orig", dir);
    st_copy_file(segs[0], pristine);
    for (uint64_t cut = start; cut < end; cut++) {
        st_copy_file(pristine, segs[0]);
        cr_assert_eq(truncate(segs[0], (off_t)cut), 0);
        w = open_wal(dir, 4096, NULL);
        cr_assert_eq(mc_wal_last_index(w), 9, "cut at %llu", (unsigned long long)cut);
        check_range(w, 1, 9, 100, 1, 1, len_small);
        /* the log continues cleanly after the cut */
        append_range(w, 10, 11, 2, len_small);
        cr_assert_eq(mc_wal_sync(w), 0);
        mc_wal_close(w);
        w = open_wal(dir, 4096, NULL);
        cr_assert_eq(mc_wal_last_index(w), 11);
        check_range(w, 1, 11, 9, 1, 2, len_small);
        mc_wal_close(w);
        char s2[8][MC_DATADIR_PATH_MAX];
        int m = st_list_segments(dir, s2, 8);
        for (int i = 1; i < m; i++) {
            unlink(s2[i]);
        }
    }
    /* zeroed (not cut) tail: same result */
    st_copy_file(pristine, segs[0]);
    st_zero_range(segs[0], (off_t)start + 10, 20);
    w = open_wal(dir, 4096, NULL);
    cr_assert_eq(mc_wal_last_index(w), 9);
    mc_wal_close(w);
    unlink(pristine);
    st_rmtree(dir);
}

/* The whole file at path (malloc'd; *len its size). */
static uint8_t *slurp(const char *path, size_t *len)
{
    *len = (size_t)st_file_size(path);
    uint8_t *b = malloc(*len ? *len : 1);
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0 && b);
    cr_assert_eq(pread(fd, b, *len, 0), (ssize_t)*len);
    close(fd);
    return b;
}

/* Flips a byte in the last record of the newest segment holding data; returns that segment's
 * index in segs and, in *tail, the bytes from the record's start to the last non-zero byte (what
 * the cut drops, as the .torn file must hold them). Frames of len100 records are 136 bytes. */
static int tear_last_record(const char *dir, char segs[][MC_DATADIR_PATH_MAX], uint8_t **tail,
                            size_t *tail_len)
{
    int n = st_list_segments(dir, segs, 64);
    for (int i = n; i-- > 0;) {
        size_t len;
        uint8_t *b = slurp(segs[i], &len);
        size_t nz = len;
        while (nz > 64 && b[nz - 1] == 0) {
            nz--;
        }
        if (nz > 64) {
            size_t start = 64 + (nz - 64 - 1) / 136 * 136; /* the last frame */
            b[start + 60] ^= 0x10;                         /* inside its payload */
            st_flip_byte(segs[i], (off_t)(start + 60));
            *tail_len = nz - start;
            *tail = malloc(*tail_len);
            memcpy(*tail, b + start, *tail_len);
            free(b);
            return i;
        }
        free(b);
    }
    cr_assert_fail("no segment with data");
    return -1;
}

/* A torn tail is cut only after its bytes are copied to <segment>.torn (trailing zeros left out),
 * and only the newest such file is kept. */
Test(storage_wal, torn_tail_bytes_are_saved_before_the_cut)
{
    char dir[64], segs[64][MC_DATADIR_PATH_MAX], torn[MC_DATADIR_PATH_MAX + 8];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 8 * 1024, NULL);
    append_range(w, 1, 20, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    uint8_t *tail;
    size_t tail_len;
    int first = tear_last_record(dir, segs, &tail, &tail_len);
    w = open_wal(dir, 8 * 1024, NULL);
    cr_assert_eq(mc_wal_last_index(w), 19);
    snprintf(torn, sizeof(torn), "%s.torn", segs[first]);
    size_t got_len;
    uint8_t *got = slurp(torn, &got_len);
    cr_assert_eq(got_len, tail_len);
    cr_assert_eq(memcmp(got, tail, tail_len), 0);
    free(got);
    free(tail);
    /* a second torn tail, in a later segment: its file replaces the first one */
    append_range(w, 20, 80, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    int second = tear_last_record(dir, segs, &tail, &tail_len);
    cr_assert_gt(second, first);
    w = open_wal(dir, 8 * 1024, NULL);
    cr_assert_eq(mc_wal_last_index(w), 79);
    check_range(w, 1, 79, 1000, 1, 1, len100);
    mc_wal_close(w);
    struct stat st;
    cr_assert_neq(stat(torn, &st), 0, "the older %s is kept", torn);
    snprintf(torn, sizeof(torn), "%s.torn", segs[second]);
    got = slurp(torn, &got_len);
    cr_assert_eq(got_len, tail_len);
    cr_assert_eq(memcmp(got, tail, tail_len), 0);
    free(got);
    free(tail);
    st_rmtree(dir);
}

Test(storage_wal, bit_flip_in_sealed_segment_refuses_start)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 8 * 1024, NULL);
    append_range(w, 1, 300, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    char segs[64][MC_DATADIR_PATH_MAX];
    int n = st_list_segments(dir, segs, 64);
    cr_assert_gt(n, 3);
    off_t off = 64 + 136 * 3 + 40; /* inside the payload of the 4th record */
    st_flip_byte(segs[1], off);
    char text[1024] = {0};
    struct mc_wal_options o = {.wal_dir = dir,
                               .segment_size_bytes = 8 * 1024,
                               .error_text = text,
                               .error_text_len = sizeof(text)};
    struct mc_wal *w2 = NULL;
    cr_assert_eq(mc_wal_open(&o, &w2), MC_ECORRUPT);
    cr_assert_null(w2);
    cr_assert_not_null(strstr(text, segs[1]), "message: %s", text);
    char want[64];
    snprintf(want, sizeof(want), "offset %lld", (long long)(64 + 136 * 3));
    cr_assert_not_null(strstr(text, want), "message: %s", text);
    cr_assert_not_null(strstr(text, "rejoin"), "message: %s", text);
    /* the same flip in the middle of the LAST segment, with valid records of a later write
     * group after it (within one group it would be a torn write: see
     * torn_multi_page_group_is_cut_not_corruption) */
    st_flip_byte(segs[1], off); /* undo */
    w = open_wal(dir, 8 * 1024, NULL);
    append_range(w, 301, 301, 1, len100); /* a group of its own: the queue was idle */
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    n = st_list_segments(dir, segs, 64);
    int last_data = n - 1;
    if (st_file_size(segs[last_data]) > 0) {
        /* the spare has no records; find the last segment with data: spare is the newest */
        last_data = n - 2;
    }
    st_flip_byte(segs[last_data], 64 + 40);
    cr_assert_eq(mc_wal_open(&o, &w2), MC_ECORRUPT);
    cr_assert_not_null(strstr(text, segs[last_data]), "message: %s", text);
    st_rmtree(dir);
}

/* ---- fault injection ---- */

struct cb_log {
    pthread_mutex_t mu;
    uint64_t max_durable;
    int last_error;
    int calls;
};

static void on_durable(void *ctx, const struct mc_wal_progress *p)
{
    struct cb_log *c = ctx;
    pthread_mutex_lock(&c->mu);
    if (p->durable_index > c->max_durable) {
        c->max_durable = p->durable_index;
    }
    if (p->error) {
        c->last_error = p->error;
    }
    c->calls++;
    pthread_mutex_unlock(&c->mu);
}

static void fault_case(enum mc_fs_op op, int err)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_fs_fault f;
    mc_fs_fault_init(&f, NULL);
    struct cb_log cb = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct mc_wal_options o = {.wal_dir = dir,
                               .segment_size_bytes = 16 * 1024,
                               .fs = &f.ops,
                               .on_durable = on_durable,
                               .ctx = &cb};
    struct mc_wal *w = NULL;
    cr_assert_eq(mc_wal_open(&o, &w), 0);
    append_range(w, 1, 10, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert_eq(mc_wal_durable_index(w), 10);
    mc_fs_fault_arm(&f, op, 1, err, true);
    /* Crosses segments (fallocate/unlink paths too). The WAL thread may fail while we are still
     * queueing: from then on appends answer MC_EFATAL, which is the behaviour under test. */
    uint8_t *buf = malloc(MC_WAL_RECORD_MAX_BYTES);
    for (uint64_t i = 11; i <= 400; i++) {
        uint32_t len = len100(i);
        st_fill(buf, i * 31 + 1, len);
        struct mc_wal_record rec = {
            .index = i, .term = 1, .type = (uint8_t)(i & 3), .len = len, .data = buf};
        int arc = mc_wal_append(w, &rec, 1, NULL, NULL);
        if (arc == MC_EFATAL) {
            break;
        }
        cr_assert_eq(arc, 0, "append %llu", (unsigned long long)i);
    }
    free(buf);
    int rc = mc_wal_sync(w);
    cr_assert_eq(rc, MC_EFATAL, "op %d err %d rc %d", op, err, rc);
    cr_assert_eq(mc_wal_error(w), MC_EFATAL);
    uint64_t durable = mc_wal_durable_index(w);
    cr_assert_lt(durable, 400);
    pthread_mutex_lock(&cb.mu);
    cr_assert_eq(cb.last_error, MC_EFATAL);
    cr_assert_eq(cb.max_durable, durable);
    pthread_mutex_unlock(&cb.mu);
    struct mc_wal_record r = {.index = 401, .term = 1};
    cr_assert_eq(mc_wal_append(w, &r, 1, NULL, NULL), MC_EFATAL);
    cr_assert_eq(mc_wal_truncate(w, 5, NULL), MC_EFATAL);
    cr_assert_gt(f.failures[op], 0);
    mc_wal_close(w);
    /* restart without faults: everything reported durable is there, intact */
    w = open_wal(dir, 16 * 1024, NULL);
    cr_assert_geq(mc_wal_last_index(w), durable);
    check_range(w, 1, durable, 1000, 1, 1, len100);
    mc_wal_close(w);
    st_rmtree(dir);
}

Test(storage_wal, eio_on_fdatasync_is_fatal)
{
    fault_case(MC_FS_FDATASYNC, EIO);
}

Test(storage_wal, eio_on_write_is_fatal)
{
    fault_case(MC_FS_PWRITE, EIO);
}

Test(storage_wal, enospc_on_write_is_fatal)
{
    fault_case(MC_FS_PWRITE, ENOSPC);
}

Test(storage_wal, enospc_on_fallocate_is_fatal)
{
    fault_case(MC_FS_FALLOCATE, ENOSPC);
}

Test(storage_wal, nth_fdatasync_failure_never_reports_undurable)
{
    /* fail the Nth fdatasync for several N: durable never exceeds what was synced */
    int fatal_runs = 0;
    for (uint64_t nth = 1; nth <= 6; nth++) {
        char dir[64];
        st_tmpdir(dir, sizeof(dir));
        struct mc_fs_fault f;
        mc_fs_fault_init(&f, NULL);
        struct mc_wal_options o = {.wal_dir = dir, .segment_size_bytes = 8192, .fs = &f.ops};
        struct mc_wal *w = NULL;
        cr_assert_eq(mc_wal_open(&o, &w), 0);
        mc_fs_fault_arm(&f, MC_FS_FDATASYNC, nth, EIO, false);
        uint64_t last_ok = 0;
        for (uint64_t i = 1; i <= 200; i++) {
            uint8_t b[100] = {0};
            struct mc_wal_record r = {.index = i, .term = 1, .len = 100, .data = b};
            if (mc_wal_append(w, &r, 1, NULL, NULL) != 0) {
                break;
            }
            if (mc_wal_sync(w) != 0) {
                break;
            }
            last_ok = i;
            cr_assert_eq(mc_wal_durable_index(w), i);
        }
        cr_assert_gt(f.failures[MC_FS_FDATASYNC], 0);
        if (mc_wal_error(w) == MC_EFATAL) {
            fatal_runs++;
            cr_assert_leq(mc_wal_durable_index(w), last_ok);
        } else {
            /* the failed fdatasync was a spare segment's (prepared ahead, not yet in use):
             * not fatal, nothing reported durable depended on it */
            cr_assert_eq(last_ok, 200, "nth %llu", (unsigned long long)nth);
        }
        mc_wal_close(w);
        w = NULL;
        cr_assert_eq(
            mc_wal_open(&(struct mc_wal_options){.wal_dir = dir, .segment_size_bytes = 8192}, &w),
            0);
        cr_assert_geq(mc_wal_last_index(w), last_ok);
        mc_wal_close(w);
        st_rmtree(dir);
    }
    cr_assert_geq(fatal_runs, 3);
}

static uint32_t len5000(uint64_t i)
{
    (void)i;
    return 5000;
}

/* Waits up to 5 s for cond; true when it held. */
#define WAIT_FOR(cond)                                                                             \
    ({                                                                                             \
        bool ok_ = false;                                                                          \
        for (int k_ = 0; k_ < 500 && !(ok_ = (cond)); k_++) {                                      \
            usleep(10000);                                                                         \
        }                                                                                          \
        ok_;                                                                                       \
    })

/* A spare segment prepared while idle whose directory fsync fails is removed, not left behind:
 * the next roll creates it again (here that succeeds) instead of failing with "exists" on the
 * leftover file and naming that as the fatal error. */
Test(storage_wal, failed_dir_fsync_of_a_spare_does_not_poison_the_next_roll)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_fs_fault f;
    mc_fs_fault_init(&f, NULL);
    /* 16 KiB segments of 5000-byte records: three per segment, rolls at 4 and 7. */
    struct mc_wal *w = open_wal(dir, 16 * 1024, &f.ops);
    char segs[8][MC_DATADIR_PATH_MAX];
    append_range(w, 1, 2, 1, len5000);
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert(WAIT_FOR(st_list_segments(dir, segs, 8) == 2), "no spare prepared while idle");
    mc_fs_fault_arm(&f, MC_FS_FSYNC, 1, EIO, false);
    append_range(w, 3, 4, 1, len5000); /* 4 goes into the spare: the next one is prepared */
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert(WAIT_FOR(__atomic_load_n(&f.failures[MC_FS_FSYNC], __ATOMIC_RELAXED) == 1),
              "the next spare's dir fsync never ran");
    append_range(w, 5, 8, 1, len5000); /* rolls at 7 */
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert_eq(mc_wal_error(w), 0);
    cr_assert_eq(mc_wal_durable_index(w), 8);
    cr_assert_eq(f.failures[MC_FS_FSYNC], 1);
    mc_wal_close(w);
    w = open_wal(dir, 16 * 1024, NULL);
    check_range(w, 1, 8, 1000, 1, 1, len5000);
    mc_wal_close(w);
    st_rmtree(dir);
}

/* ---- queue limit ---- */

struct gate {
    sem_t entered, release;
    int calls;
};

static void gate_cb(void *ctx, const struct mc_wal_progress *p)
{
    (void)p;
    struct gate *g = ctx;
    if (g->calls++ == 0) {
        sem_post(&g->entered);
        sem_wait(&g->release);
    }
}

Test(storage_wal, full_queue_returns_busy)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct gate g;
    sem_init(&g.entered, 0, 0);
    sem_init(&g.release, 0, 0);
    g.calls = 0;
    struct mc_wal_options o = {.wal_dir = dir,
                               .segment_size_bytes = 64 * 1024,
                               .queue_max_ops = 4,
                               .on_durable = gate_cb,
                               .ctx = &g};
    struct mc_wal *w = NULL;
    cr_assert_eq(mc_wal_open(&o, &w), 0);
    uint8_t b[8] = {0};
    struct mc_wal_record r = {.index = 1, .term = 1, .len = 8, .data = b};
    cr_assert_eq(mc_wal_append(w, &r, 1, NULL, NULL), 0);
    sem_wait(&g.entered); /* WAL thread is now stuck in the callback */
    for (uint64_t i = 2; i <= 5; i++) {
        r.index = i;
        cr_assert_eq(mc_wal_append(w, &r, 1, NULL, NULL), 0);
    }
    r.index = 6;
    cr_assert_eq(mc_wal_append(w, &r, 1, NULL, NULL), MC_EBUSY);
    cr_assert_eq(mc_wal_last_index(w), 5);
    sem_post(&g.release);
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert_eq(mc_wal_append(w, &r, 1, NULL, NULL), 0);
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert_eq(mc_wal_durable_index(w), 6);
    mc_wal_close(w);
    st_rmtree(dir);
}

/* Unwritten (preallocated, never written) extents overlapping [lo, hi) of path; -1 when the
 * filesystem cannot tell (no FIEMAP). */
static int unwritten_extents(const char *path, uint64_t lo, uint64_t hi)
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0);
    size_t cap = 64;
    struct fiemap *fm = calloc(1, sizeof(*fm) + cap * sizeof(struct fiemap_extent));
    fm->fm_start = lo;
    fm->fm_length = hi - lo;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = (uint32_t)cap;
    int n = -1;
    if (ioctl(fd, FS_IOC_FIEMAP, fm) == 0) {
        n = 0;
        for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
            n += (fm->fm_extents[i].fe_flags & FIEMAP_EXTENT_UNWRITTEN) != 0;
        }
    }
    free(fm);
    close(fd);
    return n;
}

/* zero_ahead (wal.c): after each group, at least 64 KiB past the last frame are written
 * (zeros), so the next groups overwrite written blocks and fdatasync writes no extent change.
 * Also after a truncate, which preallocates the tail again. */
Test(storage_wal, zero_ahead_of_the_tail)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 4 * 1024 * 1024, NULL);
    append_range(w, 1, 40, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    char segs[4][MC_DATADIR_PATH_MAX];
    cr_assert_geq(st_list_segments(dir, segs, 4), 1); /* the active one first (and a spare) */
    struct stat st;
    cr_assert_eq(stat(segs[0], &st), 0);
    cr_assert_eq((uint64_t)st.st_size, 4 * 1024 * 1024, "preallocated whole");
    int n = unwritten_extents(segs[0], 0, 80 * 1024);
    if (n < 0) {
        mc_wal_close(w);
        st_rmtree(dir);
        cr_skip_test("no FIEMAP on this filesystem");
    }
    cr_assert_eq(n, 0, "the first 80 KiB (~5 KiB of frames + zeros ahead) are written");
    cr_assert_gt(unwritten_extents(segs[0], 1024 * 1024, 4 * 1024 * 1024), 0,
                 "the far tail is still only preallocated");
    /* Cut back to index 10 (~1 KiB): the tail is preallocated again; the next group zeroes
     * ahead of the new end, and the frames after the cut read back. */
    cr_assert_eq(mc_wal_truncate(w, 11, NULL), 0);
    append_range(w, 11, 20, 2, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert_eq(unwritten_extents(segs[0], 0, 64 * 1024), 0);
    check_range(w, 1, 20, 10, 1, 2, len100);
    mc_wal_close(w);
    w = open_wal(dir, 4 * 1024 * 1024, NULL);
    cr_assert_eq(mc_wal_last_index(w), 20);
    check_range(w, 1, 20, 10, 1, 2, len100);
    mc_wal_close(w);
    st_rmtree(dir);
}

/* The newest segment (no spare after it) with a zeroed header but records after it: damage
 * (headers are synced before any frame), never deleted as an unfinished segment. */
Test(storage_wal, zero_header_newest_segment_with_records_refuses)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 64 * 1024, NULL);
    append_range(w, 1, 50, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    char segs[8][MC_DATADIR_PATH_MAX];
    int n = st_list_segments(dir, segs, 8);
    cr_assert_geq(n, 1);
    for (int i = 1; i < n; i++) {
        cr_assert_eq(unlink(segs[i]), 0); /* the spare(s): the data segment is the newest */
    }
    st_zero_range(segs[0], 0, 64);
    struct mc_wal_options o = {.wal_dir = dir, .segment_size_bytes = 64 * 1024};
    cr_assert_eq(mc_wal_open(&o, &w), MC_ECORRUPT);
    cr_assert_eq(access(segs[0], F_OK), 0, "the damaged segment is kept as evidence");
    /* Header and data both zero (a crash while creating it): removed, as before. */
    int fd = open(segs[0], O_RDWR | O_TRUNC);
    cr_assert(fd >= 0);
    cr_assert_eq(ftruncate(fd, 64 * 1024), 0);
    close(fd);
    cr_assert_eq(mc_wal_open(&o, &w), 0);
    cr_assert_eq(mc_wal_last_index(w), 0);
    mc_wal_close(w);
    st_rmtree(dir);
}

/* A missing middle segment is not taken for compaction: nothing is deleted at open, the missing
 * range is reported, and only the caller (who knows the snapshot index) removes the rest. */
Test(storage_wal, missing_middle_segment_is_reported_not_deleted)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 64 * 1024, NULL);
    append_range(w, 1, 1500, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    uint64_t gf = 1, gl = 1;
    cr_assert(!mc_wal_gap(w, &gf, &gl));
    mc_wal_close(w);
    char segs[16][MC_DATADIR_PATH_MAX];
    int n = st_list_segments(dir, segs, 16);
    cr_assert_geq(n, 3, "segments: %d", n);
    cr_assert_eq(unlink(segs[1]), 0);
    w = open_wal(dir, 64 * 1024, NULL);
    cr_assert(mc_wal_gap(w, &gf, &gl));
    cr_assert_eq(gf, mc_wal_first_index(w) - (gl - gf + 1), "missing range right before first");
    cr_assert_eq(gl, mc_wal_first_index(w) - 1);
    cr_assert_gt(gf, 1);
    cr_assert_eq(mc_wal_last_index(w), 1500);
    cr_assert_eq(access(segs[0], F_OK), 0, "the segment before the gap is still on disk");
    mc_wal_close(w);
    /* Reopened: the same gap again (nothing was decided). */
    w = open_wal(dir, 64 * 1024, NULL);
    uint64_t gf2 = 0, gl2 = 0;
    cr_assert(mc_wal_gap(w, &gf2, &gl2));
    cr_assert_eq(gf2, gf);
    cr_assert_eq(gl2, gl);
    cr_assert_eq(mc_wal_remove_dropped(w), 0);
    cr_assert(!mc_wal_gap(w, &gf2, &gl2));
    cr_assert_neq(access(segs[0], F_OK), 0, "removed once the caller accepted the gap");
    append_range(w, 1501, 1510, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    w = open_wal(dir, 64 * 1024, NULL);
    cr_assert(!mc_wal_gap(w, &gf2, &gl2));
    cr_assert_eq(mc_wal_first_index(w), gl + 1);
    check_range(w, gl + 1, 1510, 0, 1, 1, len100);
    mc_wal_close(w);
    st_rmtree(dir);
}

/* A group that raises the term writes the hard state before any of its frames: with the hard
 * state's fdatasync failing, no frame of the new term is left behind (before: the frames were
 * in the page cache already, and a restart found entries of a term above the saved one). */
Test(storage_wal, term_change_saved_before_the_frames)
{
    char dir[64], wdir[80];
    st_tmpdir(dir, sizeof(dir));
    snprintf(wdir, sizeof(wdir), "%s/wal", dir);
    struct mc_fs_fault f;
    mc_fs_fault_init(&f, NULL);
    struct mc_wal_options o = {
        .wal_dir = wdir, .hardstate_dir = dir, .segment_size_bytes = 64 * 1024, .fs = &f.ops};
    struct mc_wal *w = NULL;
    cr_assert_eq(mc_wal_open(&o, &w), 0);
    uint8_t buf[100];
    memset(buf, 7, sizeof(buf));
    struct mc_hard_state hs = {.term = 1, .vote = 1, .commit = 0};
    struct mc_wal_record r = {.index = 1, .term = 1, .len = sizeof(buf), .data = buf};
    cr_assert_eq(mc_wal_append(w, &r, 1, &hs, NULL), 0);
    cr_assert_eq(mc_wal_sync(w), 0);
    /* Term 2: the first fdatasync of the group fails. */
    mc_fs_fault_arm(&f, MC_FS_FDATASYNC, 1, EIO, true);
    hs = (struct mc_hard_state){.term = 2, .vote = 0, .commit = 1};
    struct mc_wal_record r2[2] = {{.index = 2, .term = 2, .len = sizeof(buf), .data = buf},
                                  {.index = 3, .term = 2, .len = sizeof(buf), .data = buf}};
    cr_assert_eq(mc_wal_append(w, r2, 2, &hs, NULL), 0);
    cr_assert_eq(mc_wal_sync(w), MC_EFATAL);
    mc_wal_close(w);
    mc_fs_fault_disarm(&f, MC_FS_FDATASYNC);
    o.fs = NULL;
    cr_assert_eq(mc_wal_open(&o, &w), 0);
    struct mc_hard_state got;
    mc_wal_hard_state(w, &got);
    cr_assert_geq(got.term, mc_wal_last_term(w), "saved term %llu, last log term %llu",
                  (unsigned long long)got.term, (unsigned long long)mc_wal_last_term(w));
    cr_assert_eq(mc_wal_last_index(w), 1, "no frame of the unsaved term");
    mc_wal_close(w);
    st_rmtree(dir);
}

static uint32_t len3000(uint64_t i)
{
    (void)i;
    return 3000;
}

/* Append [lo, hi] (3000-byte records) in ONE call: one op, one write group when the queue is
 * idle. */
static void append_group(struct mc_wal *w, uint64_t lo, uint64_t hi, uint64_t term)
{
    struct mc_wal_record r[16];
    static uint8_t bufs[16][3000];
    cr_assert_leq(hi - lo + 1, 16);
    for (uint64_t i = lo; i <= hi; i++) {
        st_fill(bufs[i - lo], i * 31 + term, 3000);
        r[i - lo] = (struct mc_wal_record){
            .index = i, .term = term, .type = (uint8_t)(i & 3), .len = 3000, .data = bufs[i - lo]};
    }
    cr_assert_eq(mc_wal_append(w, r, hi - lo + 1, NULL, NULL), 0);
    cr_assert_eq(mc_wal_sync(w), 0);
}

/* A power loss in the middle of a multi-page group can leave any of its pages unwritten: a hole
 * followed by valid frames of the same group is a torn tail (cut; the group was never
 * acknowledged), not corruption. A hole followed by a frame of a later group is damage. */
Test(storage_wal, torn_multi_page_group_is_cut_not_corruption)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 1024 * 1024, NULL);
    append_group(w, 1, 4, 1); /* group A: frames at 64 + k * 3032 */
    append_group(w, 5, 8, 1); /* group B */
    mc_wal_close(w);
    char segs[4][MC_DATADIR_PATH_MAX];
    cr_assert_geq(st_list_segments(dir, segs, 4), 1);
    const off_t fr = 3032; /* wal_frame_bytes(3000) */
    /* The first page of group B lost (frame 5 zeroed), frames 6..8 of B on disk. */
    st_zero_range(segs[0], 64 + 4 * fr, (size_t)fr);
    w = open_wal(dir, 1024 * 1024, NULL);
    cr_assert_eq(mc_wal_last_index(w), 4, "group B cut at its hole");
    check_range(w, 1, 4, 0, 1, 1, len3000);
    /* Writing goes on after the cut, in a new group. */
    append_group(w, 5, 7, 2);
    mc_wal_close(w);
    w = open_wal(dir, 1024 * 1024, NULL);
    cr_assert_eq(mc_wal_last_index(w), 7);
    check_range(w, 1, 7, 4, 1, 2, len3000);
    mc_wal_close(w);
    /* A hole inside the last group (frame 6 of 5..7) with its frame 7 after: cut at 5. */
    st_zero_range(segs[0], 64 + 5 * fr + 100, 200);
    w = open_wal(dir, 1024 * 1024, NULL);
    cr_assert_eq(mc_wal_last_index(w), 5);
    append_group(w, 6, 9, 3);
    mc_wal_close(w);
    /* A hole in group A (frame 2), followed by frames of later groups: damage. */
    st_zero_range(segs[0], 64 + 1 * fr + 8, 100);
    struct mc_wal_options o = {.wal_dir = dir, .segment_size_bytes = 1024 * 1024};
    cr_assert_eq(mc_wal_open(&o, &w), MC_ECORRUPT);
    st_rmtree(dir);
}

/* Damage in the last frame of a synced group g followed by all of group g+1: g+1's first frame
 * (marked as a group start) proves g was synced before it, so this is corruption, not a tear
 * (cutting would drop acknowledged records 4..8). */
Test(storage_wal, damaged_group_end_before_next_group_start_is_refused)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 1024 * 1024, NULL);
    append_group(w, 1, 4, 1);
    append_group(w, 5, 8, 1);
    mc_wal_close(w);
    char segs[4][MC_DATADIR_PATH_MAX];
    cr_assert_geq(st_list_segments(dir, segs, 4), 1);
    const off_t fr = 3032;
    st_zero_range(segs[0], 64 + 3 * fr + 40, 100); /* payload of frame 4, the last of group A */
    struct mc_wal_options o = {.wal_dir = dir, .segment_size_bytes = 1024 * 1024};
    cr_assert_eq(mc_wal_open(&o, &w), MC_ECORRUPT, "acknowledged group B must not be cut");
    st_rmtree(dir);
}

/* Write a version 1 segment (header version 1, group 0 frames) as an older binary did. */
static void write_v1_segment(const char *dir, uint64_t seq, uint64_t lo, uint64_t hi)
{
    size_t size = 1024 * 1024;
    uint8_t *f = calloc(1, size);
    wal_seg_header_encode(f, seq);
    mc_put_u32le(f + 8, 1);
    mc_put_u64le(f + 56, mc_checksum64(f, 56));
    size_t off = WAL_SEG_HDR_BYTES;
    uint8_t buf[100];
    for (uint64_t i = lo; i <= hi; i++) {
        st_fill(buf, i * 31 + 1, sizeof(buf));
        struct mc_wal_record r = {
            .index = i, .term = 1, .type = (uint8_t)(i & 3), .len = sizeof(buf), .data = buf};
        wal_frame_encode(f + off, &r);
        off += wal_frame_bytes(r.len);
    }
    char path[MC_DATADIR_PATH_MAX];
    wal_seg_path(dir, seq, path, sizeof(path));
    int fd = open(path, O_RDWR | O_CREAT | O_EXCL, 0644);
    cr_assert(fd >= 0);
    cr_assert_eq(pwrite(fd, f, size, 0), (ssize_t)size);
    close(fd);
    free(f);
}

static uint32_t seg_version(const char *path)
{
    uint8_t h[WAL_SEG_HDR_BYTES];
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0);
    cr_assert_eq(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
    close(fd);
    return mc_get_u32le(h + 8);
}

/* After an upgrade, a version 1 active segment and a version 1 spare are never appended to: new
 * frames go to a new version 2 segment, so a downgraded binary refuses (MC_EVERSION) instead of
 * cutting the new frames as a torn tail. The version 1 segment's bytes stay as they were. */
Test(storage_wal, version1_segments_are_sealed_after_upgrade)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    write_v1_segment(dir, 1, 1, 5);
    write_v1_segment(dir, 2, 1, 0); /* an empty version 1 spare */
    char segs[4][MC_DATADIR_PATH_MAX];
    cr_assert_eq(st_list_segments(dir, segs, 4), 2);
    int fd = open(segs[0], O_RDONLY);
    uint8_t *before = malloc(1024 * 1024), *after = malloc(1024 * 1024);
    cr_assert_eq(pread(fd, before, 1024 * 1024, 0), 1024 * 1024);
    close(fd);

    struct mc_wal *w = open_wal(dir, 1024 * 1024, NULL);
    cr_assert_eq(mc_wal_last_index(w), 5);
    append_range(w, 6, 8, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);

    int n = st_list_segments(dir, segs, 4);
    cr_assert_geq(n, 2);
    cr_assert_eq(seg_version(segs[0]), 1);
    fd = open(segs[0], O_RDONLY);
    cr_assert_eq(pread(fd, after, 1024 * 1024, 0), 1024 * 1024);
    close(fd);
    cr_assert(memcmp(before, after, 1024 * 1024) == 0, "version 1 segment changed");
    for (int i = 1; i < n; i++) {
        cr_assert_eq(seg_version(segs[i]), WAL_SEG_VERSION, "%s", segs[i]);
    }
    w = open_wal(dir, 1024 * 1024, NULL);
    cr_assert_eq(mc_wal_first_index(w), 1);
    cr_assert_eq(mc_wal_last_index(w), 8);
    check_range(w, 6, 8, 0, 1, 1, len100);
    mc_wal_close(w);
    free(before);
    free(after);
    st_rmtree(dir);
}

#if defined(__SANITIZE_ADDRESS__)
#define ST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ST_ASAN 1
#endif
#endif

#ifndef ST_ASAN
#include <sys/resource.h>
/* Checking a frame needs no memory: with malloc failing, a valid stamped frame larger than any
 * stack copy still decodes as OK (before: the digest's malloc failed and it read as a bad frame,
 * which recovery would cut as a torn tail). (Skipped under ASan: its allocator aborts.) */
Test(storage_wal, frame_check_allocates_nothing)
{
    size_t len = 10000, fb = wal_frame_bytes((uint32_t)len);
    uint8_t *data = malloc(len), *f = calloc(1, fb);
    st_fill(data, 7, (uint32_t)len);
    struct mc_wal_record r = {.index = 7, .term = 3, .type = 1, .len = (uint32_t)len, .data = data};
    wal_frame_encode(f, &r);
    wal_frame_stamp(f, 5 | WAL_GROUP_START);
    /* Exhaust the heap: cap the address space, then allocate until malloc fails (bounded). */
    struct rlimit rl;
    cr_assert_eq(getrlimit(RLIMIT_AS, &rl), 0);
    FILE *st = fopen("/proc/self/statm", "r");
    unsigned long pages = 0;
    cr_assert_eq(fscanf(st, "%lu", &pages), 1);
    fclose(st);
    struct rlimit cap = {.rlim_cur = pages * 4096 + (1 << 20), .rlim_max = rl.rlim_max};
    cr_assert_eq(setrlimit(RLIMIT_AS, &cap), 0);
    void *chain = NULL;
    size_t n = 0;
    /* every size class down to 16 bytes, so no per-size cache (tcache) keeps a free chunk */
    for (size_t sz = 65536; sz >= 16; sz = sz > 2048 ? sz / 2 : sz - 16) {
        for (; n < 10000000; n++) {
            void **b = malloc(sz);
            if (!b) {
                break;
            }
            *b = chain;
            chain = b;
        }
    }
    void *probe = malloc(640);
    struct mc_wal_record out;
    size_t got = 0;
    int k = wal_frame_decode(f, fb, &out, &got);
    free(probe);
    while (chain) {
        void *next = *(void **)chain;
        free(chain);
        chain = next;
    }
    setrlimit(RLIMIT_AS, &rl);
    cr_assert_null(probe, "the heap was not exhausted (%zu blocks)", n);
    cr_assert_eq(k, WAL_FRAME_OK);
    cr_assert_eq(got, fb);
    cr_assert_eq(out.index, 7);
    free(f);
    free(data);
}
#endif

/* Crash layouts after groups without frames and after a restart (third review). One group = one
 * mc_wal_append of 3000-byte records + mc_wal_sync; frames are 3032 bytes after a 64-byte
 * segment header. */
static void tg_group(struct mc_wal *w, uint64_t lo, uint64_t hi)
{
    static uint8_t b[8][3000];
    struct mc_wal_record r[8];
    cr_assert_leq(hi - lo + 1, 8);
    for (uint64_t i = lo; i <= hi; i++) {
        memset(b[i - lo], (int)i, sizeof b[0]);
        r[i - lo] = (struct mc_wal_record){
            .index = i, .term = 1, .type = 1, .len = sizeof b[0], .data = b[i - lo]};
    }
    cr_assert_eq(mc_wal_append(w, r, (size_t)(hi - lo + 1), NULL, NULL), 0);
    cr_assert_eq(mc_wal_sync(w), 0);
}

/* The path of segment segno in dir (valid until the next call). */
static const char *tg_seg(const char *dir, int segno)
{
    static char p[MC_DATADIR_PATH_MAX];
    wal_seg_path(dir, (uint64_t)segno, p, sizeof p);
    return p;
}

/* A hard-state-only group between two frame groups, then the later group's first page lost (a
 * plain torn tail): cut, not refused. Groups are numbered at their first frame, so the frame
 * groups on disk are consecutive. */
Test(storage_wal, torn_tail_after_a_group_without_frames_is_cut)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 1 << 20, NULL);
    tg_group(w, 1, 4);
    struct mc_hard_state hs = {.term = 1, .vote = 0, .commit = 4};
    cr_assert_eq(mc_wal_set_hard_state(w, &hs, NULL), 0);
    cr_assert_eq(mc_wal_sync(w), 0);
    tg_group(w, 5, 8);
    mc_wal_close(w);
    st_zero_range(tg_seg(dir, 1), 64 + 4 * 3032,
                  3032); /* the start frame (5) of the last group lost */
    w = open_wal(dir, 1 << 20, NULL);
    cr_assert_eq(mc_wal_last_index(w), 4);
    mc_wal_close(w);
    st_rmtree(dir);
}

/* The last group rolls into a fresh segment and loses its first page (cut: the newest segment
 * is left without frames); after the restart the first group written loses its first page
 * again: cut again, not refused (numbering continues from the newest segment with frames). */
Test(storage_wal, torn_first_group_after_restart_is_cut)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 16384, NULL);
    tg_group(w, 1, 3);
    tg_group(w, 4, 5);
    tg_group(w, 6, 8);
    mc_wal_close(w);
    st_zero_range(tg_seg(dir, 2), 64, 3032);
    w = open_wal(dir, 16384, NULL);
    cr_assert_eq(mc_wal_last_index(w), 5);
    tg_group(w, 6, 8);
    mc_wal_close(w);
    st_zero_range(tg_seg(dir, 2), 64, 3032);
    w = open_wal(dir, 16384, NULL);
    cr_assert_eq(mc_wal_last_index(w), 5);
    mc_wal_close(w);
    st_rmtree(dir);
}

static int count_named(const char *dir, const char *suffix)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    size_t sl = strlen(suffix);
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        n += strncmp(e->d_name, "wal-", 4) == 0 && len > sl &&
             strcmp(e->d_name + len - sl, suffix) == 0;
    }
    closedir(d);
    return n;
}

/* Polls (10 ms steps, at most 5 s) until no "*.log.del" is left in dir. */
static bool del_files_gone(const char *dir)
{
    for (int i = 0; i < 500; i++) {
        if (count_named(dir, ".log.del") == 0) {
            return true;
        }
        usleep(10000);
    }
    return false;
}

/* A WAL through a fault injector, with segments of 64 KiB deleted in cuts of 16 KiB, holding
 * entries 1..3000 (~5 segments). */
static struct mc_wal *open_trash_wal(const char *dir, struct mc_fs_fault *f)
{
    mc_fs_fault_init(f, NULL);
    struct mc_wal_options o = {.wal_dir = dir,
                               .segment_size_bytes = 64 * 1024,
                               .delete_chunk_bytes = 16 * 1024,
                               .delete_pause_ms = 1,
                               .fs = &f->ops};
    struct mc_wal *w = NULL;
    cr_assert_eq(mc_wal_open(&o, &w), 0);
    append_range(w, 1, 3000, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    return w;
}

/* A trash (4 KiB cuts) through a fault injector on which every call of kind op fails with EIO,
 * deleting a dropped segment of 64 KiB it was just given (path gets its name). */
/* A 64 KiB file set aside for the trash, in dir. */
static void trash_file(const char *dir, char *path, size_t cap)
{
    snprintf(path, cap, "%s/wal-%016llx.log.del", dir, 0x7ull);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    for (int i = 0; i < 4096; i++) {
        fputs("sixteen bytes..\n", fp);
    }
    fclose(fp);
}

/* A trash on f's ops (4 KiB chunks) given trash_file's file. */
static struct mc_trash *trash_given_file(struct mc_fs_fault *f, const char *path)
{
    struct mc_trash *t = NULL;
    cr_assert_eq(mc_trash_open(&f->ops, 4096, 1, &t), 0);
    cr_assert_eq(mc_trash_add(t, path), 0);
    return t;
}

static struct mc_trash *trash_with_fault(const char *dir, struct mc_fs_fault *f, enum mc_fs_op op,
                                         char *path, size_t cap)
{
    trash_file(dir, path, cap);
    mc_fs_fault_init(f, NULL);
    mc_fs_fault_arm(f, op, 1, EIO, true);
    return trash_given_file(f, path);
}

/* Wait (bounded) until the trash deleted a file; returns how many it deleted. */
static uint64_t trash_wait_deleted(struct mc_trash *t)
{
    for (int i = 0; i < 300 && mc_trash_deleted(t) == 0; i++) {
        usleep(10000);
    }
    return mc_trash_deleted(t);
}

/* A segment compaction drops is renamed out of the way and cut down a chunk at a time, each cut
 * synced, before its unlink (trash.c): on a file system mounted with `discard` one commit
 * freeing ~512 MiB stalled every WAL fsync on the disk (docs/benchmarks.md, session 14). */
Test(storage_wal, compacted_segments_are_deleted_a_chunk_at_a_time)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_fs_fault f;
    struct mc_wal *w = open_trash_wal(dir, &f);
    int before = count_named(dir, ".log");
    cr_assert_geq(before, 4, "%d segments", before);
    uint64_t cuts0 = f.calls[MC_FS_FTRUNCATE];
    cr_assert_eq(mc_wal_compact(w, 2500, NULL), 0);
    cr_assert_eq(mc_wal_sync(w), 0);
    int dropped = before - count_named(dir, ".log");
    cr_assert_geq(dropped, 3, "before %d, dropped %d", before, dropped);
    cr_assert(del_files_gone(dir), "dropped segments still on disk after 5 s");
    uint64_t cuts = f.calls[MC_FS_FTRUNCATE] - cuts0;
    cr_assert_geq(cuts, 4u * (uint64_t)dropped,
                  "%llu cuts for %d segments of 64 KiB in 16 KiB chunks: deleted at once",
                  (unsigned long long)cuts, dropped);
    check_range(w, 2501, 3000, 3000, 1, 1, len100);
    mc_wal_close(w);
    st_rmtree(dir);
}

/* fsync calls through f once none came for 100 ms (bounded: 3 s). */
static uint64_t dir_syncs_settled(struct mc_fs_fault *f)
{
    uint64_t last = __atomic_load_n(&f->calls[MC_FS_FSYNC], __ATOMIC_SEQ_CST);
    for (int i = 0; i < 30; i++) {
        usleep(100000);
        uint64_t now = __atomic_load_n(&f->calls[MC_FS_FSYNC], __ATOMIC_SEQ_CST);
        if (now == last) {
            return now;
        }
        last = now;
    }
    cr_assert_fail("fsyncs still coming after 3 s");
    return last;
}

/* Compaction syncs the WAL directory once per segment it hands to the trash: the trash's fsync
 * before its first cut makes the rename durable (trash.c rename_durable). The WAL thread synced
 * the directory again after the renames (session 18 removed that). */
Test(storage_wal, compaction_to_the_trash_syncs_the_directory_once_per_segment)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_fs_fault f;
    struct mc_wal *w = open_trash_wal(dir, &f);
    /* The idle WAL thread prepares its spare segment (a directory fsync): let it first. */
    uint64_t syncs0 = dir_syncs_settled(&f);
    int before = count_named(dir, ".log");
    cr_assert_eq(mc_wal_compact(w, 2500, NULL), 0);
    cr_assert_eq(mc_wal_sync(w), 0);
    int dropped = before - count_named(dir, ".log");
    cr_assert_geq(dropped, 3, "before %d, dropped %d", before, dropped);
    cr_assert(del_files_gone(dir), "dropped segments still on disk after 5 s");
    uint64_t syncs = __atomic_load_n(&f.calls[MC_FS_FSYNC], __ATOMIC_SEQ_CST) - syncs0;
    cr_assert_eq(syncs, (uint64_t)dropped, "%llu directory fsyncs for %d segments to the trash",
                 (unsigned long long)syncs, dropped);
    check_range(w, 2501, 3000, 3000, 1, 1, len100);
    mc_wal_close(w);
    st_rmtree(dir);
}

/* A "*.log.del" left by a crash (or a stop) before its deletion finished is never loaded as a
 * segment, and the next open deletes it. */
Test(storage_wal, leftover_deleted_segment_is_ignored_and_removed_at_open)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_wal *w = open_wal(dir, 8 * 1024, NULL);
    append_range(w, 1, 100, 1, len100);
    cr_assert_eq(mc_wal_sync(w), 0);
    mc_wal_close(w);
    char path[MC_DATADIR_PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/wal-%016llx.log.del", dir, 0x42ull);
    FILE *fp = fopen(path, "wb");
    cr_assert_not_null(fp);
    for (int i = 0; i < 3000; i++) {
        fputs("garbage that is not a WAL segment ", fp);
    }
    fclose(fp);
    w = open_wal(dir, 8 * 1024, NULL);
    cr_assert_eq(mc_wal_first_index(w), 1);
    cr_assert_eq(mc_wal_last_index(w), 100);
    cr_assert(del_files_gone(dir), "the leftover was not deleted");
    mc_wal_close(w);
    st_rmtree(dir);
}

/* The trash thread syncs a file's directory before its first cut: the owner's rename out of use
 * must be durable before the file shrinks, or a crash could leave a WAL segment under its old
 * name with its end cut off. When that sync fails, the file is left whole. */
Test(storage_wal, trash_does_not_cut_a_file_whose_rename_may_not_be_durable)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    char path[MC_DATADIR_PATH_MAX];
    struct mc_fs_fault f; /* every directory fsync fails */
    struct mc_trash *t = trash_with_fault(dir, &f, MC_FS_FSYNC, path, sizeof(path));
    bool synced = false;
    for (int i = 0; i < 300 && !synced; i++) {
        synced = __atomic_load_n(&f.failures[MC_FS_FSYNC], __ATOMIC_SEQ_CST) > 0;
        usleep(10000);
    }
    usleep(50000); /* time for cuts, if any were coming */
    uint64_t cuts = __atomic_load_n(&f.calls[MC_FS_FTRUNCATE], __ATOMIC_SEQ_CST);
    mc_trash_close(t);
    cr_assert(synced, "the directory was never synced before the file was cut (%llu cuts)",
              (unsigned long long)cuts);
    cr_assert_eq(cuts, 0, "%llu cuts after a failed directory sync", (unsigned long long)cuts);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "the file was deleted");
    cr_assert_eq(st.st_size, 4096 * 16);
    st_rmtree(dir);
}

/* A compacted segment that cannot be renamed out of the way is fatal, and the report names the
 * call that failed: rename, not unlink (an operator looks for the wrong cause otherwise). */
Test(storage_wal, failed_rename_of_a_compacted_segment_is_reported_as_rename)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_fs_fault f;
    struct mc_wal *w = open_trash_wal(dir, &f);
    char log_path[MC_DATADIR_PATH_MAX];
    snprintf(log_path, sizeof(log_path), "%s.stderr", dir);
    mc_fs_fault_arm(&f, MC_FS_RENAME, 1, EIO, false);
    int saved = st_stderr_to(log_path);
    int queued = mc_wal_compact(w, 2500, NULL);
    int rc = mc_wal_sync(w);
    st_stderr_restore(saved);
    cr_assert_eq(queued, 0);
    cr_assert_eq(rc, MC_EFATAL, "%s", mc_error_name(rc));
    cr_assert_eq(f.failures[MC_FS_RENAME], 1);
    char text[4096];
    st_slurp_and_unlink(log_path, text, sizeof(text));
    cr_assert(strstr(text, "msg=wal_fatal") && strstr(text, "op=rename "),
              "the failed rename was reported as: %s", text);
    mc_wal_close(w);
    st_rmtree(dir);
}

/* The trash sizes a file through the fs ops table (so faults reach it): when that fails, the
 * file cannot be cut down and is unlinked at once, as before the trash existed. */
Test(storage_wal, trash_unlinks_at_once_a_file_it_cannot_size)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    char path[MC_DATADIR_PATH_MAX];
    struct mc_fs_fault f;
    struct mc_trash *t = trash_with_fault(dir, &f, MC_FS_FSTAT, path, sizeof(path));
    uint64_t deleted = trash_wait_deleted(t);
    mc_trash_close(t);
    uint64_t stat_failures = __atomic_load_n(&f.failures[MC_FS_FSTAT], __ATOMIC_SEQ_CST);
    uint64_t cuts = __atomic_load_n(&f.calls[MC_FS_FTRUNCATE], __ATOMIC_SEQ_CST);
    cr_assert_eq(stat_failures, 1,
                 "the trash did not size the file through the ops table "
                 "(%llu injected fstat failures, %llu cuts)",
                 (unsigned long long)stat_failures, (unsigned long long)cuts);
    cr_assert_eq(cuts, 0, "%llu cuts of a file whose size is unknown", (unsigned long long)cuts);
    cr_assert_eq(deleted, 1, "the file was not deleted");
    struct stat st;
    cr_assert_neq(stat(path, &st), 0, "the file is still there");
    st_rmtree(dir);
}

/* An ops table built outside this tree may have no fstat: the trash unlinks the file at once
 * instead of calling through NULL. */
Test(storage_wal, trash_without_fstat_unlinks_at_once)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    char path[MC_DATADIR_PATH_MAX];
    trash_file(dir, path, sizeof(path));
    struct mc_fs_fault f;
    mc_fs_fault_init(&f, NULL);
    f.ops.fstat = NULL;
    struct mc_trash *t = trash_given_file(&f, path);
    uint64_t deleted = trash_wait_deleted(t);
    mc_trash_close(t);
    uint64_t cuts = __atomic_load_n(&f.calls[MC_FS_FTRUNCATE], __ATOMIC_SEQ_CST);
    cr_assert_eq(cuts, 0, "%llu cuts of a file whose size is unknown", (unsigned long long)cuts);
    cr_assert_eq(deleted, 1, "the file was not deleted");
    struct stat st;
    cr_assert_neq(stat(path, &st), 0, "the file is still there");
    st_rmtree(dir);
}
