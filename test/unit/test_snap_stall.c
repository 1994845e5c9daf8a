/* test_snap_stall.c: what keeps snapshots out of the write tail (issue 8): log compaction writes
 * a header-only file, the engine sync before it writes the map back in steps, and a snapshot
 * image goes to disk in synced steps (its dirty backlog stays bounded). Dirty page counts
 * come from cachestat(2) (Linux 6.5+; the tests that need it skip on older kernels). */
#include "storage_test_util.h"
#include "test_engine_util.h"

#include "metacenter/error.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>

#ifndef __NR_cachestat
#define __NR_cachestat 451 /* same number on every architecture */
#endif

struct cs_range {
    uint64_t off, len;
};
struct cs_stat {
    uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

static int cachestat_of(const char *path, struct cs_stat *s)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return -1;
    }
    struct cs_range r = {0, 0}; /* len 0: to the end of the file */
    memset(s, 0, sizeof(*s));
    long rc = syscall(__NR_cachestat, fd, &r, s, 0);
    close(fd);
    return rc == 0 ? 0 : -1;
}

/* Pages of path that are dirty or under writeback; -1 when cachestat is not available. */
static long dirty_pages(const char *path)
{
    struct cs_stat s;
    return cachestat_of(path, &s) == 0 ? (long)(s.nr_dirty + s.nr_writeback) : -1;
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
    /* A step ends at the first pipe read that crosses MC_SNAP_SYNC_STEP_BYTES (reads are up to
     * MC_SNAP_CHUNK_MAX_BYTES), so a step is 2-3 MiB. */
    cr_assert_geq(info.write_steps,
                  IMAGE_BYTES / (MC_SNAP_SYNC_STEP_BYTES + MC_SNAP_CHUNK_MAX_BYTES) - 1, "steps=%u",
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

/* ---- the engine sync writes the map back in steps ---- */

struct sync_job {
    atomic_bool done;
    int rc;
};

static void *sync_main(void *arg)
{
    struct sync_job *j = arg;
    j->rc = mc_engine_sync(te_eng);
    atomic_store(&j->done, true);
    return NULL;
}

Test(snap_stall, engine_sync_writes_back_in_steps, .timeout = 120)
{
    need_cachestat();
    te_setup(); /* MC_ENGINE_SYNC_NONE: the node's mode */
    char data[300];
    snprintf(data, sizeof(data), "%s/data.mdb", te_dir);
    cr_assert_eq(te_bucket("bkt", MC_VERSIONING_UNVERSIONED), MC_OK);
    char key[64], etag[64];
    for (int i = 0; i < 60000; i++) {
        snprintf(key, sizeof(key), "key-%08d-%0*d", i, 24, i);
        snprintf(etag, sizeof(etag), "etag-%d", i);
        cr_assert_eq(te_put("bkt", key, etag, NULL), MC_OK);
    }
    struct cs_stat before;
    cr_assert_eq(cachestat_of(data, &before), 0);
    long step_pages = (long)(MC_ENGINE_SYNC_STEP_BYTES / 4096);
    /* Precondition: a backlog several steps big (nothing flushes a NOSYNC map for ~30 s). */
    cr_assert_gt((long)before.nr_dirty, 3 * step_pages, "dirty=%llu",
                 (unsigned long long)before.nr_dirty);
    struct sync_job j = {0};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, sync_main, &j), 0);
    long max_wb = 0;
    int samples = 0;
    while (!atomic_load(&j.done)) {
        struct cs_stat s;
        if (cachestat_of(data, &s) == 0) {
            max_wb = (long)s.nr_writeback > max_wb ? (long)s.nr_writeback : max_wb;
            samples++;
        }
    }
    pthread_join(th, NULL);
    cr_assert_eq(j.rc, 0);
    struct cs_stat after;
    cr_assert_eq(cachestat_of(data, &after), 0);
    cr_assert_eq(after.nr_dirty + after.nr_writeback, 0, "sync left pages dirty");
    /* One msync of the whole map puts the whole backlog under writeback at once. */
    cr_assert_gt(samples, 0);
    cr_assert_leq(max_wb, step_pages + 16, "%ld pages under writeback at once (step %ld)", max_wb,
                  step_pages);
    te_teardown();
}
