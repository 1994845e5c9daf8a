/* test_snap_stall.c: what keeps snapshots out of the write tail (issue 8): the engine's dirty
 * pages are written back in the background, a snapshot image goes to disk in synced steps (its
 * dirty backlog stays bounded), and log compaction writes a header-only file. Dirty page counts
 * come from cachestat(2) (Linux 6.5+; the tests that need it skip on older kernels). */
#include "storage_test_util.h"
#include "test_engine_util.h"

#include "metacenter/error.h"

#include <errno.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <time.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* same number on every architecture */
#endif

struct cs_range {
    uint64_t off, len;
};
struct cs_stat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* Pages of path that are dirty or under writeback; -1 when cachestat is not available. */
static long dirty_pages(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    struct cs_range r = {0, 0}; /* len 0: to the end of the file */
    struct cs_stat s = {0};
    long rc = syscall(__NR_cachestat, fd, &r, &s, 0);
    close(fd);
    return rc == 0 ? (long)(s.nr_dirty + s.nr_writeback) : -1;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void need_cachestat(void)
{
    if (dirty_pages("/proc/self/exe") < 0 && errno == ENOSYS) {
        cr_skip_test("cachestat(2) not available (Linux < 6.5)");
    }
}

/* ---- a snapshot image is written in steps ---- */

#define IMAGE_BYTES (24u << 20) /* 12 steps of MC_SNAP_SYNC_STEP_BYTES */
#define WRITE_BYTES (256u << 10)

struct probe {
    char tmp_path[MC_DATADIR_PATH_MAX];
    long max_dirty; /* worst dirty+writeback pages of the temp file seen while writing */
    int probes;
};

/* write_data: IMAGE_BYTES of a pattern, probing the temp file's dirty pages as it grows. */
static int write_probed(void *ctx, int fd)
{
    struct probe *p = ctx;
    static uint8_t buf[WRITE_BYTES];
    for (uint32_t off = 0; off < IMAGE_BYTES; off += WRITE_BYTES) {
        memset(buf, (int)(off >> 18), sizeof(buf));
        for (size_t done = 0; done < sizeof(buf);) {
            ssize_t n = write(fd, buf + done, sizeof(buf) - done);
            if (n <= 0) {
                return MC_EIO;
            }
            done += (size_t)n;
        }
        long d = dirty_pages(p->tmp_path);
        if (d >= 0) {
            p->probes++;
            p->max_dirty = d > p->max_dirty ? d : p->max_dirty;
        }
    }
    return 0;
}

Test(snap_stall, image_written_in_steps_with_bounded_dirty_backlog, .timeout = 60)
{
    need_cachestat();
    char dir[128];
    st_tmpdir(dir, sizeof(dir));
    struct probe p = {0};
    snprintf(p.tmp_path, sizeof(p.tmp_path), "%s/snap-%016llx-%016llx.snap.tmp", dir, 9ull, 2ull);
    struct mc_snap_info info;
    cr_assert_eq(mc_snap_create(dir, NULL, 9, 2, "m", 1, write_probed, &p, &info), 0);
    cr_assert_eq(info.data_size, IMAGE_BYTES);
    cr_assert_geq(info.write_steps, IMAGE_BYTES / MC_SNAP_SYNC_STEP_BYTES - 1, "steps=%u",
                  info.write_steps);
    cr_assert_gt(p.probes, 50, "the temp file was never observed (%s)", p.tmp_path);
    /* At most the step being written, the one being written back and the one waited on, plus
     * what sits in the pipe; a copy written in one go would leave all 6144 pages dirty. */
    long bound = 4 * (long)(MC_SNAP_SYNC_STEP_BYTES / 4096);
    cr_assert_leq(p.max_dirty, bound, "dirty backlog %ld pages > %ld", p.max_dirty, bound);
    /* The checksum computed while streaming matches the bytes on disk. */
    struct mc_snap_info again;
    cr_assert_eq(mc_snap_read_info(info.path, true, &again), 0);
    cr_assert_eq(again.data_checksum, info.data_checksum);
    st_rmtree(dir);
}

/* A producer that fails part way: creation fails, nothing is left behind, no thread hangs. */
static int write_then_fail(void *ctx, int fd)
{
    (void)ctx;
    static uint8_t buf[WRITE_BYTES];
    for (int i = 0; i < 16; i++) {
        if (write(fd, buf, sizeof(buf)) != (ssize_t)sizeof(buf)) {
            return MC_EIO;
        }
    }
    return MC_ECORRUPT;
}

Test(snap_stall, failing_producer_leaves_no_file)
{
    char dir[128];
    st_tmpdir(dir, sizeof(dir));
    cr_assert_eq(mc_snap_create(dir, NULL, 5, 1, NULL, 0, write_then_fail, NULL, NULL),
                 MC_ECORRUPT);
    struct mc_snap_info info;
    cr_assert_eq(mc_snap_latest(dir, &info), MC_ENOTFOUND);
    DIR *d = opendir(dir);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d))) {
        files += e->d_name[0] != '.';
    }
    closedir(d);
    cr_assert_eq(files, 0, "the temp file was left behind");
    st_rmtree(dir);
}

/* ---- log compaction writes a header-only file ---- */

Test(snap_stall, header_only_snapshot_records_meta_and_is_not_installable)
{
    char dir[128], dd[160], snapdir[200];
    st_tmpdir(dir, sizeof(dir));
    snprintf(dd, sizeof(dd), "%s/dd", dir);
    cr_assert_eq(mc_datadir_init(dd, NULL), 0);
    snprintf(snapdir, sizeof(snapdir), "%s/snap", dd);
    struct mc_snap_info info, got;
    cr_assert_eq(mc_snap_create(snapdir, NULL, 77, 3, "members:1,2,3", 13, NULL, NULL, &info), 0);
    cr_assert_eq(info.data_size, 0);
    cr_assert_eq(info.file_size, MC_SNAP_HEADER_BYTES);
    struct stat st;
    cr_assert_eq(stat(info.path, &st), 0);
    cr_assert_eq(st.st_size, MC_SNAP_HEADER_BYTES);
    /* Startup reads index, term and membership from the latest file, verified. */
    cr_assert_eq(mc_snap_latest(snapdir, &got), 0);
    cr_assert_eq(got.index, 77);
    cr_assert_eq(got.term, 3);
    cr_assert_eq(got.membership_len, 13);
    cr_assert_eq(memcmp(got.membership, "members:1,2,3", 13), 0);
    /* It holds no engine: installing it is refused and leaves no engine.new behind. */
    cr_assert_eq(mc_snap_install(dd, NULL, info.path), MC_EINVAL);
    char newdir[256];
    snprintf(newdir, sizeof(newdir), "%s/engine.new", dd);
    cr_assert_neq(stat(newdir, &st), 0);
    st_rmtree(dir);
}

/* ---- the engine's dirty pages are written back in the background ---- */

Test(snap_stall, engine_writeback_keeps_dirty_pages_bounded, .timeout = 60)
{
    need_cachestat();
    te_mkdtemp(te_dir, sizeof(te_dir));
    struct mc_engine_options o = {.sync = MC_ENGINE_SYNC_NONE, .writeback_interval_ms = 50};
    cr_assert_eq(mc_engine_open(te_dir, &o, &te_eng), 0, "open: %s", mc_engine_last_error());
    char data[300];
    snprintf(data, sizeof(data), "%s/data.mdb", te_dir);
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), MC_OK);
    long peak = 0;
    char key[64], etag[64];
    for (int i = 0; i < 20000; i++) {
        snprintf(key, sizeof(key), "key-%08d-%0*d", i, 24, i);
        snprintf(etag, sizeof(etag), "etag-%d", i);
        cr_assert_eq(te_put("bkt", key, etag, NULL), MC_OK);
        if (i % 1000 == 999) {
            long d = dirty_pages(data);
            peak = d > peak ? d : peak;
        }
    }
    /* The writes dirtied the map (NOSYNC: nothing else flushes it for ~30 s)... */
    cr_assert_gt(peak, 0);
    /* ...and within a few intervals the background writeback has cleaned it. */
    long d = -1;
    for (int i = 0; i < 40; i++) {
        sleep_ms(50);
        d = dirty_pages(data);
        if (d >= 0 && d <= 16 && mc_engine_writeback_rounds(te_eng) >= 2) {
            break;
        }
    }
    cr_assert_leq(d, 16, "engine dirty pages %ld (peak %ld) after 2 s of writeback", d, peak);
    cr_assert_geq(mc_engine_writeback_rounds(te_eng), 2);
    te_teardown();
}

Test(snap_stall, engine_without_writeback_has_no_thread)
{
    te_setup();
    cr_assert_eq(mc_engine_writeback_rounds(te_eng), 0);
    sleep_ms(120);
    cr_assert_eq(mc_engine_writeback_rounds(te_eng), 0);
    te_teardown();
}
