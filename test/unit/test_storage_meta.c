/* test_storage_meta.c: hard state files (alternation, torn/corrupt fallback), data dir, WAL+hs,
 * the engine dir's claim, mc_fs_dir_of. */
#include "storage_test_util.h"

#include "metacenter/error.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>

Test(storage_hardstate, alternates_and_reloads)
{
    char dir[64], a[128], b[128];
    st_tmpdir(dir, sizeof(dir));
    snprintf(a, sizeof(a), "%s/meta-a", dir);
    snprintf(b, sizeof(b), "%s/meta-b", dir);
    struct mc_hardstate_store s;
    cr_assert_eq(mc_hardstate_open(&s, dir, NULL), 0);
    cr_assert_eq(s.hs.term, 0);
    cr_assert_eq(s.hs.vote, 0);
    for (uint64_t t = 1; t <= 5; t++) {
        struct mc_hard_state hs = {.term = t, .vote = t % 3, .commit = t * 10};
        cr_assert_eq(mc_hardstate_save(&s, &hs), 0);
        /* the write went to the file not holding the previous copy */
        cr_assert_eq(s.newest, (int)((t - 1) % 2));
    }
    cr_assert_eq(st_file_size(a), 64);
    cr_assert_eq(st_file_size(b), 64);
    mc_hardstate_close(&s);
    cr_assert_eq(mc_hardstate_open(&s, dir, NULL), 0);
    cr_assert_eq(s.hs.term, 5);
    cr_assert_eq(s.hs.vote, 2);
    cr_assert_eq(s.hs.commit, 50);
    cr_assert_eq(s.seq, 5);
    mc_hardstate_close(&s);
    st_rmtree(dir);
}

static void save_n(const char *dir, uint64_t n)
{
    struct mc_hardstate_store s;
    cr_assert_eq(mc_hardstate_open(&s, dir, NULL), 0);
    for (uint64_t t = 1; t <= n; t++) {
        struct mc_hard_state hs = {.term = t, .vote = 7, .commit = t};
        cr_assert_eq(mc_hardstate_save(&s, &hs), 0);
    }
    mc_hardstate_close(&s);
}

Test(storage_hardstate, corrupt_or_torn_newer_falls_back)
{
    char dir[64], path[128];
    st_tmpdir(dir, sizeof(dir));
    save_n(dir, 4); /* newest (term 4) is in meta-b, term 3 in meta-a */
    snprintf(path, sizeof(path), "%s/meta-b", dir);
    st_flip_byte(path, 30);
    struct mc_hardstate_store s;
    cr_assert_eq(mc_hardstate_open(&s, dir, NULL), 0);
    cr_assert_eq(s.hs.term, 3);
    /* the next save overwrites the bad file, not the good one */
    struct mc_hard_state hs = {.term = 9, .vote = 1, .commit = 0};
    cr_assert_eq(mc_hardstate_save(&s, &hs), 0);
    mc_hardstate_close(&s);
    cr_assert_eq(mc_hardstate_open(&s, dir, NULL), 0);
    cr_assert_eq(s.hs.term, 9);
    mc_hardstate_close(&s);
    /* torn: newest (meta-b, term 9) cut short */
    cr_assert_eq(truncate(path, 20), 0);
    cr_assert_eq(mc_hardstate_open(&s, dir, NULL), 0);
    cr_assert_eq(s.hs.term, 3);
    mc_hardstate_close(&s);
    /* both bad: refuse */
    snprintf(path, sizeof(path), "%s/meta-a", dir);
    st_flip_byte(path, 20);
    cr_assert_eq(mc_hardstate_open(&s, dir, NULL), MC_ECORRUPT);
    st_rmtree(dir);
}

Test(storage_hardstate, failed_fsync_is_fatal)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_fs_fault f;
    mc_fs_fault_init(&f, NULL);
    struct mc_hardstate_store s;
    cr_assert_eq(mc_hardstate_open(&s, dir, &f.ops), 0);
    struct mc_hard_state hs = {.term = 1};
    cr_assert_eq(mc_hardstate_save(&s, &hs), 0);
    mc_fs_fault_arm(&f, MC_FS_FDATASYNC, 1, EIO, false);
    hs.term = 2;
    cr_assert_eq(mc_hardstate_save(&s, &hs), MC_EFATAL);
    hs.term = 3;
    cr_assert_eq(mc_hardstate_save(&s, &hs), MC_EFATAL); /* never retried */
    mc_hardstate_close(&s);
    st_rmtree(dir);
}

Test(storage_hardstate, wal_persists_hard_state_with_entries)
{
    char dir[64], wal[128];
    st_tmpdir(dir, sizeof(dir));
    snprintf(wal, sizeof(wal), "%s/wal", dir);
    struct mc_wal_options o = {.wal_dir = wal, .hardstate_dir = dir, .segment_size_bytes = 65536};
    struct mc_wal *w = NULL;
    cr_assert_eq(mc_wal_open(&o, &w), 0);
    uint8_t b[4] = {1, 2, 3, 4};
    struct mc_wal_record r = {.index = 1, .term = 3, .len = 4, .data = b};
    struct mc_hard_state hs = {.term = 3, .vote = 2, .commit = 0};
    uint64_t t;
    cr_assert_eq(mc_wal_append(w, &r, 1, &hs, &t), 0);
    cr_assert_eq(mc_wal_sync(w), 0);
    cr_assert_geq(mc_wal_done_ticket(w), t);
    /* commit-only change: deferred but written at close */
    hs.commit = 1;
    cr_assert_eq(mc_wal_set_hard_state(w, &hs, NULL), 0);
    struct mc_hard_state got;
    mc_wal_hard_state(w, &got);
    cr_assert_eq(got.commit, 1);
    mc_wal_close(w);
    cr_assert_eq(mc_wal_open(&o, &w), 0);
    mc_wal_hard_state(w, &got);
    cr_assert_eq(got.term, 3);
    cr_assert_eq(got.vote, 2);
    cr_assert_eq(got.commit, 1);
    cr_assert_eq(mc_wal_last_index(w), 1);
    mc_wal_close(w);
    st_rmtree(dir);
}

Test(storage_datadir, init_check_lock_recover)
{
    char dir[64], p[128];
    st_tmpdir(dir, sizeof(dir));
    cr_assert_eq(mc_datadir_init(dir, NULL), 0);
    cr_assert_eq(mc_datadir_check(dir), 0);
    cr_assert_eq(mc_datadir_init(dir, NULL), 0); /* idempotent */
    snprintf(p, sizeof(p), "%s/wal", dir);
    cr_assert_eq(access(p, F_OK), 0);
    int fd1 = -1, fd2 = -1;
    cr_assert_eq(mc_datadir_lock(dir, &fd1), 0);
    cr_assert_eq(mc_datadir_lock(dir, &fd2), MC_ELOCKED);
    mc_datadir_unlock(fd1);
    /* leftovers of an interrupted install/create are removed */
    snprintf(p, sizeof(p), "%s/engine.new", dir);
    cr_assert_eq(mkdir(p, 0755), 0);
    snprintf(p, sizeof(p), "%s/engine.new/data.mdb", dir);
    FILE *f = fopen(p, "w");
    fputs("x", f);
    fclose(f);
    snprintf(p, sizeof(p), "%s/snap/snap-1.snap.tmp", dir);
    f = fopen(p, "w");
    fclose(f);
    cr_assert_eq(mc_datadir_recover(dir, NULL), 0);
    cr_assert_neq(access(p, F_OK), 0);
    snprintf(p, sizeof(p), "%s/engine.new", dir);
    cr_assert_neq(access(p, F_OK), 0);
    /* a foreign non-empty dir is refused; a wrong version too */
    char other[64];
    st_tmpdir(other, sizeof(other));
    snprintf(p, sizeof(p), "%s/somefile", other);
    f = fopen(p, "w");
    fclose(f);
    cr_assert_eq(mc_datadir_init(other, NULL), MC_ENOTOURS);
    cr_assert_eq(mc_datadir_check(other), MC_ENOTOURS);
    snprintf(p, sizeof(p), "%s/METACENTER", dir);
    f = fopen(p, "w");
    fputs("metacenter-datadir 99\n", f);
    fclose(f);
    cr_assert_eq(mc_datadir_check(dir), MC_EVERSION);
    st_rmtree(other);
    st_rmtree(dir);
}

/* Under '/', no slash at all, '/' repeated: the parent as dirname(3) gives it for these; a parent
 * that does not fit out is MC_EINVAL, one that just fits is not. */
Test(storage_fs, dir_of_edges)
{
    char out[16];
    cr_assert_eq(mc_fs_dir_of("/x", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/");
    cr_assert_eq(mc_fs_dir_of("//x", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/");
    cr_assert_eq(mc_fs_dir_of("x", out, sizeof(out)), 0);
    cr_assert_str_eq(out, ".");
    cr_assert_eq(mc_fs_dir_of("a/b", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "a");
    cr_assert_eq(mc_fs_dir_of("/data/n1/engine", out, sizeof(out)), 0);
    cr_assert_str_eq(out, "/data/n1");
    cr_assert_eq(mc_fs_dir_of("/123456789abcde/x", out, sizeof(out)), 0); /* 15 + NUL */
    cr_assert_str_eq(out, "/123456789abcde");
    cr_assert_eq(mc_fs_dir_of("/123456789abcdef/x", out, sizeof(out)), MC_EINVAL);
    cr_assert_eq(mc_fs_dir_of("x", out, 1), MC_EINVAL); /* not even "." fits */
    cr_assert_eq(mc_fs_dir_of("/x", out, 1), MC_EINVAL);
}

/* A crash in owner_write leaves OWNER.c<PID>; a later process with the same PID must not fail
 * its O_EXCL create on it: the claim succeeds, OWNER names the data dir, the leftover is gone. */
Test(storage_engine_dir, claim_removes_a_same_pid_leftover)
{
    char datadir[64], engdir[64], p[192], real[PATH_MAX];
    st_tmpdir(datadir, sizeof(datadir));
    st_tmpdir(engdir, sizeof(engdir));
    cr_assert_eq(mc_datadir_init(datadir, NULL), 0);
    snprintf(p, sizeof(p), "%s/OWNER.c%ld", engdir, (long)getpid());
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fputs("metacenter-engine-dir of /half/written", f);
    fclose(f);
    bool fresh = false;
    cr_assert_eq(mc_datadir_place_engine(datadir, engdir, &fresh), 0);
    cr_assert(fresh);
    cr_assert_neq(access(p, F_OK), 0, "%s is still there", p);
    snprintf(p, sizeof(p), "%s/OWNER", engdir);
    f = fopen(p, "r");
    cr_assert_not_null(f);
    char buf[PATH_MAX + 64] = {0}, want[PATH_MAX + 64];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    cr_assert_not_null(realpath(datadir, real));
    snprintf(want, sizeof(want), "metacenter-engine-dir of %s\n", real);
    cr_assert_str_eq(buf, want);
    st_rmtree(engdir);
    st_rmtree(datadir);
}
