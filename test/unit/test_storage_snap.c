/* test_storage_snap.c: snapshot create under concurrent writes (a private LMDB env), chunked
 * resumable transfer, checksum rejection, retention, install atomicity under kill -9, install
 * in two steps (prepare, swap). */
#include "storage_test_util.h"
#include "storage/trash.h"

#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/clock.h"
#include "util/rand.h"

#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>

struct env_writer {
    MDB_env *env;
    atomic_bool stop;
    atomic_ulong committed;
};

static MDB_env *env_open(const char *dir)
{
    MDB_env *env;
    cr_assert_eq(mdb_env_create(&env), 0);
    cr_assert_eq(mdb_env_set_mapsize(env, 256u << 20), 0);
    cr_assert_eq(mdb_env_open(env, dir, MDB_NOSYNC, 0644), 0, "open %s", dir);
    return env;
}

/* Each txn i puts key k<i> and sets "counter" = i: a consistent copy has exactly k1..k<counter>. */
static void put_batch(MDB_env *env, unsigned long i)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    char k[32], v[100];
    snprintf(k, sizeof(k), "k%010lu", i);
    memset(v, (int)(i & 0xff), sizeof(v));
    MDB_val key = {strlen(k), k}, val = {sizeof(v), v};
    cr_assert_eq(mdb_put(txn, dbi, &key, &val, 0), 0);
    MDB_val ck = {7, "counter"}, cv = {sizeof(i), &i};
    cr_assert_eq(mdb_put(txn, dbi, &ck, &cv, 0), 0);
    cr_assert_eq(mdb_txn_commit(txn), 0);
}

static void *writer_main(void *arg)
{
    struct env_writer *w = arg;
    unsigned long i = atomic_load(&w->committed);
    while (!atomic_load(&w->stop)) {
        put_batch(w->env, ++i);
        atomic_store(&w->committed, i);
    }
    return NULL;
}

static int copy_cb(void *ctx, int fd)
{
    return mdb_env_copyfd2((MDB_env *)ctx, fd, 0) == 0 ? 0 : MC_EIO;
}

/* Open dir's LMDB and check k1..k<counter> all exist and k<counter+1> does not. */
static unsigned long check_consistent(const char *dir)
{
    MDB_env *env = env_open(dir);
    MDB_txn *txn;
    MDB_dbi dbi;
    cr_assert_eq(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    cr_assert_eq(mdb_dbi_open(txn, NULL, 0, &dbi), 0);
    MDB_val ck = {7, "counter"}, cv;
    cr_assert_eq(mdb_get(txn, dbi, &ck, &cv), 0);
    unsigned long c;
    memcpy(&c, cv.mv_data, sizeof(c));
    MDB_stat st;
    cr_assert_eq(mdb_stat(txn, dbi, &st), 0);
    cr_assert_eq(st.ms_entries, c + 1, "entries %zu counter %lu", st.ms_entries, c);
    for (unsigned long i = 1; i <= c + 1; i++) {
        char k[32];
        snprintf(k, sizeof(k), "k%010lu", i);
        MDB_val key = {strlen(k), k}, val;
        cr_assert_eq(mdb_get(txn, dbi, &key, &val), i <= c ? 0 : MDB_NOTFOUND);
    }
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return c;
}

Test(storage_snap, create_while_writing_then_install)
{
    char root[64], envdir[128], snapdir[128], dd[128], eng[160];
    st_tmpdir(root, sizeof(root));
    snprintf(envdir, sizeof(envdir), "%s/src", root);
    snprintf(snapdir, sizeof(snapdir), "%s/snap", root);
    snprintf(dd, sizeof(dd), "%s/node", root);
    cr_assert_eq(mkdir(envdir, 0755), 0);
    cr_assert_eq(mkdir(snapdir, 0755), 0);
    struct env_writer w = {.env = env_open(envdir)};
    atomic_init(&w.stop, false);
    atomic_init(&w.committed, 0);
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, writer_main, &w), 0);
    while (atomic_load(&w.committed) < 2000) {
        usleep(1000);
    }
    static struct mc_snap_info info, info2;
    unsigned long before = atomic_load(&w.committed);
    cr_assert_eq(mc_snap_create(snapdir, NULL, 42, 7, "members:1,2,3", 13, copy_cb, w.env, &info),
                 0);
    unsigned long after = atomic_load(&w.committed);
    atomic_store(&w.stop, true);
    pthread_join(th, NULL);
    cr_assert_eq(info.index, 42);
    cr_assert_eq(info.term, 7);
    cr_assert_gt(info.data_size, 0);
    cr_assert_eq(info.file_size, st_file_size(info.path));
    cr_assert_eq(mc_snap_read_info(info.path, true, &info2), 0);
    cr_assert_eq(info2.data_checksum, info.data_checksum);
    cr_assert_eq(info2.membership_len, 13);
    cr_assert(memcmp(info2.membership, "members:1,2,3", 13) == 0);

    cr_assert_eq(mc_datadir_init(dd, NULL), 0);
    cr_assert_eq(mc_snap_install(dd, NULL, info.path), 0);
    snprintf(eng, sizeof(eng), "%s/engine", dd);
    unsigned long c = check_consistent(eng);
    cr_assert_geq(c, before);
    /* + 1: the writer may commit txn i and be preempted before publishing `committed = i`,
     * so the copy can hold one txn more than `after` says. */
    cr_assert_leq(c, after + 1);
    snprintf(eng, sizeof(eng), "%s/engine.new", dd);
    cr_assert_neq(access(eng, F_OK), 0);
    mdb_env_close(w.env);
    st_rmtree(root);
}

/* Build a snapshot of a fresh env holding n txns. */
static void make_snap(const char *root, const char *name, unsigned long n, uint64_t index,
                      struct mc_snap_info *out)
{
    char envdir[160], snapdir[160];
    snprintf(envdir, sizeof(envdir), "%s/%s.env", root, name);
    snprintf(snapdir, sizeof(snapdir), "%s/snap", root);
    mkdir(envdir, 0755);
    mkdir(snapdir, 0755);
    MDB_env *env = env_open(envdir);
    for (unsigned long i = 1; i <= n; i++) {
        put_batch(env, i);
    }
    cr_assert_eq(mc_snap_create(snapdir, NULL, index, 1, NULL, 0, copy_cb, env, out), 0);
    mdb_env_close(env);
}

Test(storage_snap, chunked_transfer_resumes_and_checks)
{
    char root[64], rdir[128];
    st_tmpdir(root, sizeof(root));
    static struct mc_snap_info src, got;
    make_snap(root, "a", 3000, 100, &src);
    snprintf(rdir, sizeof(rdir), "%s/recv", root);
    cr_assert_eq(mkdir(rdir, 0755), 0);
    size_t chunk = 100 * 1024;
    uint8_t *buf = malloc(MC_SNAP_CHUNK_MAX_BYTES);
    size_t n;
    struct mc_snap_chunk_file *f;
    cr_assert_eq(mc_snap_chunk_open(src.path, NULL, &f), 0);
    cr_assert_eq(mc_snap_chunk_read(f, 0, buf, MC_SNAP_CHUNK_MAX_BYTES + 1, &n), MC_EINVAL);

    /* first half, then the receiver "restarts" */
    struct mc_snap_recv *r;
    cr_assert_eq(mc_snap_recv_open(rdir, NULL, 100, 1, &r), 0);
    cr_assert_eq(mc_snap_recv_offset(r), 0);
    uint64_t off = 0;
    while (off < src.file_size / 2) {
        cr_assert_eq(mc_snap_chunk_read(f, off, buf, chunk, &n), 0);
        cr_assert_eq(mc_snap_recv_write(r, off, buf, n), 0);
        off += n;
    }
    cr_assert_eq(mc_snap_recv_write(r, off + 5, buf, 10), MC_EINVAL); /* must resend from off */
    mc_snap_recv_abort(r, false);
    cr_assert_eq(mc_snap_recv_open(rdir, NULL, 100, 1, &r), 0);
    cr_assert_eq(mc_snap_recv_offset(r), off, "resume offset");
    for (;;) {
        cr_assert_eq(mc_snap_chunk_read(f, off, buf, chunk, &n), 0);
        if (n == 0) {
            break;
        }
        cr_assert_eq(mc_snap_recv_write(r, off, buf, n), 0);
        off += n;
    }
    cr_assert_eq(off, src.file_size);
    cr_assert_eq(mc_snap_recv_finish(r, &got), 0);
    cr_assert_eq(got.data_checksum, src.data_checksum);
    cr_assert_eq(got.index, 100);
    cr_assert_eq(mc_snap_latest(rdir, &got), 0);
    cr_assert_eq(got.index, 100);

    /* a flipped byte in transit is rejected and the partial file discarded */
    cr_assert_eq(mc_snap_recv_open(rdir, NULL, 101, 1, &r), 0);
    cr_assert_eq(mc_snap_recv_offset(r), 0);
    off = 0;
    for (;;) {
        cr_assert_eq(mc_snap_chunk_read(f, off, buf, chunk, &n), 0);
        if (n == 0) {
            break;
        }
        if (off == chunk) {
            buf[77] ^= 1;
        }
        cr_assert_eq(mc_snap_recv_write(r, off, buf, n), 0);
        off += n;
    }
    cr_assert_eq(mc_snap_recv_finish(r, NULL), MC_ECORRUPT);
    char part[256];
    snprintf(part, sizeof(part), "%s/recv-%016x-%016x.part", rdir, 101, 1);
    cr_assert_neq(access(part, F_OK), 0);
    /* right bytes, wrong index: rejected too */
    cr_assert_eq(mc_snap_recv_open(rdir, NULL, 555, 1, &r), 0);
    for (off = 0;; off += n) {
        cr_assert_eq(mc_snap_chunk_read(f, off, buf, chunk, &n), 0);
        if (n == 0) {
            break;
        }
        cr_assert_eq(mc_snap_recv_write(r, off, buf, n), 0);
    }
    cr_assert_eq(mc_snap_recv_finish(r, NULL), MC_ECORRUPT);
    mc_snap_chunk_close(f);
    free(buf);
    st_rmtree(root);
}

Test(storage_snap, retention_and_latest_valid)
{
    char root[64], snapdir[128];
    st_tmpdir(root, sizeof(root));
    snprintf(snapdir, sizeof(snapdir), "%s/snap", root);
    static struct mc_snap_info s1, s2, s3, got;
    make_snap(root, "a", 10, 10, &s1);
    make_snap(root, "b", 20, 20, &s2);
    make_snap(root, "c", 30, 30, &s3);
    cr_assert_eq(mc_snap_prune(snapdir, NULL, MC_SNAP_KEEP, NULL), 0);
    static struct mc_snap_info list[4];
    size_t n;
    cr_assert_eq(mc_snap_list(snapdir, list, 4, &n), 0);
    cr_assert_eq(n, 2);
    cr_assert_eq(list[0].index, 30);
    cr_assert_eq(list[1].index, 20);
    cr_assert_neq(access(s1.path, F_OK), 0);
    cr_assert_eq(mc_snap_latest(snapdir, &got), 0);
    cr_assert_eq(got.index, 30);
    /* corrupt the newest's data: latest falls back to the older valid one */
    st_flip_byte(s3.path, (off_t)s3.data_offset + 100);
    cr_assert_eq(mc_snap_read_info(s3.path, true, &got), MC_ECORRUPT);
    cr_assert_eq(mc_snap_latest(snapdir, &got), 0);
    cr_assert_eq(got.index, 20);
    /* copy (snapshot save) verifies the source */
    char to[160];
    snprintf(to, sizeof(to), "%s/saved.snap", root);
    cr_assert_eq(mc_snap_copy_file(s3.path, to, NULL), MC_ECORRUPT);
    cr_assert_eq(mc_snap_copy_file(s2.path, to, NULL), 0);
    cr_assert_eq(mc_snap_read_info(to, true, &got), 0);
    cr_assert_eq(got.index, 20);
    st_rmtree(root);
}

static uint64_t file_hash(const char *path)
{
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "open %s", path);
    off_t size = lseek(fd, 0, SEEK_END);
    uint8_t *b = malloc((size_t)size + 1);
    cr_assert_eq(pread(fd, b, (size_t)size, 0), size);
    close(fd);
    uint64_t h = mc_checksum64(b, (size_t)size);
    free(b);
    return h;
}

/* Two images (n_a and n_b objects) under root and an empty data dir root/node (dd). */
static void two_images(char *root, size_t root_len, char dd[128], unsigned long n_a,
                       unsigned long n_b, struct mc_snap_info *a, struct mc_snap_info *b)
{
    st_tmpdir(root, root_len);
    make_snap(root, "a", n_a, 1000, a);
    make_snap(root, "b", n_b, 2000, b);
    snprintf(dd, 128, "%s/node", root);
    cr_assert_eq(mc_datadir_init(dd, NULL), 0);
}

Test(storage_snap, install_is_atomic_under_kill9, .timeout = 60)
{
    char root[64], dd[128], data[160], newdir[160];
    static struct mc_snap_info a, b;
    two_images(root, sizeof(root), dd, 20000, 30000, &a, &b);
    snprintf(data, sizeof(data), "%s/engine/data.mdb", dd);
    snprintf(newdir, sizeof(newdir), "%s/engine.new", dd);
    cr_assert_eq(mc_snap_install(dd, NULL, a.path), 0);
    uint64_t ha = file_hash(data);
    uint64_t t0 = mc_mono_ns();
    cr_assert_eq(mc_snap_install(dd, NULL, b.path), 0);
    uint64_t install_us = (mc_mono_ns() - t0) / 1000;
    uint64_t hb = file_hash(data);
    cr_assert_neq(ha, hb);
    struct mc_rand rng;
    mc_rand_seed(&rng, 12345);
    /* Kills land anywhere in about three installs: a fixed 40 ms window was shorter than one
     * install under ASan on a loaded machine, so every run could end on the same image. Each
     * child starts with the image that is not in place, so a finished install shows. */
    uint64_t window_us = install_us * 3 > 40000 ? install_us * 3 : 40000;
    int runs = getenv("MC_ASAN") ? 10 : 30, saw_a = 0, saw_b = 0, mid = 0;
    for (int i = 0; i < runs; i++) {
        bool now_a = file_hash(data) == ha;
        pid_t pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
            for (int k = 0;; k++) {
                mc_snap_install(dd, NULL, (k % 2 == 0) == now_a ? b.path : a.path);
            }
        }
        usleep((useconds_t)mc_rand_below(&rng, window_us));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        mid += access(newdir, F_OK) == 0; /* killed between copy and cleanup */
        cr_assert_eq(mc_datadir_recover(dd, NULL), 0);
        cr_assert_neq(access(newdir, F_OK), 0);
        uint64_t h = file_hash(data);
        cr_assert(h == ha || h == hb, "run %d: engine dir is a mix", i);
        saw_a += h == ha;
        saw_b += h == hb;
    }
    cr_assert_gt(mid, 0, "no kill landed inside an install");
    cr_assert_gt(saw_a, 0);
    cr_assert_gt(saw_b, 0);
    st_rmtree(root);
}

/* A .part file of n bytes named for (index, term) in dir. */
static void make_part(const char *dir, uint64_t index, uint64_t term, size_t n)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/recv-%016llx-%016llx.part", dir, (unsigned long long)index,
             (unsigned long long)term);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "%s", path);
    for (size_t i = 0; i < n; i++) {
        fputc('p', f);
    }
    fclose(f);
}

static bool part_exists(const char *dir, uint64_t index, uint64_t term)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/recv-%016llx-%016llx.part", dir, (unsigned long long)index,
             (unsigned long long)term);
    return access(path, F_OK) == 0;
}

/* Leftover receives are removed (review 8b #2: each .part can be engine-sized): opening a
 * receive drops every other .part, and start-up cleanup keeps only the newest (index, term).
 * Files that are not receive parts stay. */
Test(storage_snap, leftover_parts_removed)
{
    char root[64], dd[128], snapdir[160], other[192];
    st_tmpdir(root, sizeof(root));
    snprintf(dd, sizeof(dd), "%s/dd", root);
    cr_assert_eq(mc_datadir_init(dd, NULL), 0);
    snprintf(snapdir, sizeof(snapdir), "%s/snap", dd);
    snprintf(other, sizeof(other), "%s/recv-notours.part", snapdir);
    FILE *f = fopen(other, "w");
    cr_assert_not_null(f);
    fclose(f);

    /* start: of (5,1) (9,1) (9,3) (7,8) only (9,3) is kept */
    make_part(snapdir, 5, 1, 100);
    make_part(snapdir, 9, 1, 100);
    make_part(snapdir, 9, 3, 300);
    make_part(snapdir, 7, 8, 100);
    cr_assert_eq(mc_datadir_recover(dd, NULL), 0);
    cr_assert(part_exists(snapdir, 9, 3));
    cr_assert(!part_exists(snapdir, 5, 1) && !part_exists(snapdir, 9, 1) &&
              !part_exists(snapdir, 7, 8));
    cr_assert_eq(access(other, F_OK), 0, "a file that is no receive part was removed");

    /* opening a receive for (9,3) resumes it and keeps it; one for (12,3) drops it */
    make_part(snapdir, 4, 1, 100);
    struct mc_snap_recv *r;
    cr_assert_eq(mc_snap_recv_open(snapdir, NULL, 9, 3, &r), 0);
    cr_assert_eq(mc_snap_recv_offset(r), 300);
    cr_assert(!part_exists(snapdir, 4, 1), "an older part survived a new receive");
    mc_snap_recv_abort(r, false);
    cr_assert(part_exists(snapdir, 9, 3));
    cr_assert_eq(mc_snap_recv_open(snapdir, NULL, 12, 3, &r), 0);
    cr_assert_eq(mc_snap_recv_offset(r), 0);
    cr_assert(!part_exists(snapdir, 9, 3), "the part of another image survived a new receive");
    cr_assert(part_exists(snapdir, 12, 3));
    mc_snap_recv_abort(r, true);
    cr_assert(!part_exists(snapdir, 12, 3));
    cr_assert_eq(access(other, F_OK), 0);
    st_rmtree(root);
}

/* The install in two steps (node_snapshot.c prepares on a worker, swaps on the loop): prepare
 * leaves engine/ untouched, so a crash before the swap loses nothing (recover drops engine.new);
 * a damaged image never gets prepared; a swap with nothing prepared installs nothing. */
Test(storage_snap, install_prepare_then_swap, .timeout = 60)
{
    char root[64], dd[128], data[160], newdata[160], bad[160];
    static struct mc_snap_info a, b;
    two_images(root, sizeof(root), dd, 2000, 3000, &a, &b);
    snprintf(data, sizeof(data), "%s/engine/data.mdb", dd);
    snprintf(newdata, sizeof(newdata), "%s/engine.new/data.mdb", dd);
    cr_assert_eq(mc_snap_install_swap(dd, NULL), MC_ENOTFOUND);
    cr_assert_eq(mc_snap_install(dd, NULL, a.path), 0);
    uint64_t ha = file_hash(data);

    cr_assert_eq(mc_snap_install_prepare(dd, NULL, b.path), 0);
    cr_assert_eq(file_hash(data), ha, "prepare touched engine/");
    uint64_t hb = file_hash(newdata);
    cr_assert_neq(ha, hb);
    /* a crash here: the restart's cleanup drops the prepared tree, engine/ is the old one */
    cr_assert_eq(mc_datadir_recover(dd, NULL), 0);
    cr_assert_neq(access(newdata, F_OK), 0);
    cr_assert_eq(file_hash(data), ha);
    cr_assert_eq(mc_snap_install_swap(dd, NULL), MC_ENOTFOUND);
    cr_assert_eq(file_hash(data), ha);

    /* a flipped data byte: refused, nothing to swap */
    snprintf(bad, sizeof(bad), "%s/bad.snap", root);
    cr_assert_eq(mc_snap_copy_file(b.path, bad, NULL), 0);
    int fd = open(bad, O_RDWR);
    cr_assert_geq(fd, 0);
    uint8_t c;
    off_t at = (off_t)(b.data_offset + b.data_size / 2);
    cr_assert_eq(pread(fd, &c, 1, at), 1);
    c ^= 0x40;
    cr_assert_eq(pwrite(fd, &c, 1, at), 1);
    close(fd);
    cr_assert_eq(mc_snap_install_prepare(dd, NULL, bad), MC_ECORRUPT);
    cr_assert_eq(mc_datadir_recover(dd, NULL), 0);
    cr_assert_eq(mc_snap_install_swap(dd, NULL), MC_ENOTFOUND);
    cr_assert_eq(file_hash(data), ha);

    cr_assert_eq(mc_snap_install_prepare(dd, NULL, b.path), 0);
    cr_assert_eq(mc_snap_install_swap(dd, NULL), 0);
    cr_assert_eq(file_hash(data), hb);
    cr_assert_neq(access(newdata, F_OK), 0, "the old tree was left behind");
    st_rmtree(root);
}

/* The newest engine image survives pruning however many header-only files follow it: a
 * power-damaged engine is rebuilt from it plus the WAL (src/node/node_recover.c). */
Test(storage_snap, prune_keeps_the_newest_image)
{
    char root[64], snapdir[128];
    st_tmpdir(root, sizeof(root));
    snprintf(snapdir, sizeof(snapdir), "%s/snap", root);
    static struct mc_snap_info old_img, img, h, got;
    make_snap(root, "a", 5, 5, &old_img);
    make_snap(root, "b", 10, 10, &img);
    for (uint64_t i = 20; i <= 50; i += 10) {
        cr_assert_eq(mc_snap_create(snapdir, NULL, i, 1, NULL, 0, NULL, NULL, &h), 0);
    }
    cr_assert_eq(mc_snap_prune(snapdir, NULL, MC_SNAP_KEEP, NULL), 0);
    static struct mc_snap_info list[8];
    size_t n;
    cr_assert_eq(mc_snap_list(snapdir, list, 8, &n), 0);
    cr_assert_eq(n, 3, "kept %zu files", n);
    cr_assert_eq(list[0].index, 50);
    cr_assert_eq(list[1].index, 40);
    cr_assert_eq(list[2].index, 10); /* the newest image; the older one and 20, 30 are gone */
    cr_assert_neq(access(old_img.path, F_OK), 0);
    cr_assert_eq(mc_snap_latest(snapdir, &got), 0);
    cr_assert_eq(got.index, 50);
    cr_assert_eq(got.data_size, 0);
    cr_assert_eq(mc_snap_latest_header(snapdir, true, &got), 0);
    cr_assert_eq(got.index, 10);
    cr_assert_gt(got.data_size, 0);
    st_rmtree(root);
}

/* Stream [from, size) of path in chunks through v; returns the last verdict and, in *first_at,
 * the offset of the chunk that first gave a nonzero verdict. */
static int stream_verify(struct mc_snap_verify *v, const char *path, uint64_t from, size_t chunk,
                         uint64_t *first_at)
{
    uint8_t *buf = malloc(chunk);
    int verdict = 0;
    *first_at = UINT64_MAX;
    size_t n;
    struct mc_snap_chunk_file *f;
    cr_assert_eq(mc_snap_chunk_open(path, v, &f), 0);
    for (uint64_t off = from;; off += n) {
        cr_assert_eq(mc_snap_chunk_read(f, off, buf, chunk, &n), 0);
        if (n == 0) {
            break;
        }
        verdict = mc_snap_verify_update(v, off, buf, n);
        if (verdict && *first_at == UINT64_MAX) {
            *first_at = off;
        }
    }
    mc_snap_chunk_close(f);
    free(buf);
    return verdict;
}

/* Read f from offset 0 to its end in chunk-sized reads into out (room for max bytes); returns
 * the bytes read. */
static size_t read_all(struct mc_snap_chunk_file *f, size_t chunk, uint8_t *out, size_t max)
{
    size_t off = 0, n;
    do {
        size_t want = max - off < chunk ? max - off : chunk;
        cr_assert_eq(mc_snap_chunk_read(f, off, out + off, want, &n), 0);
        off += n;
    } while (n > 0 && off < max);
    return off;
}

/* A stream holds its file open from the first chunk to the end (node_chunk_read.c): a fresh image
 * renamed over the name meanwhile (a new image at the same index) does not switch files under
 * it, so every chunk and the verify's verdict are of the file it looked up. */
Test(storage_snap, chunk_file_keeps_reading_the_file_it_opened)
{
    char root[64];
    st_tmpdir(root, sizeof(root));
    static struct mc_snap_info a, b;
    make_snap(root, "a", 2000, 10, &a);
    make_snap(root, "b", 3000, 20, &b);
    size_t chunk = 64 * 1024;
    cr_assert_gt(a.file_size, 3 * chunk, "several chunks");
    uint64_t a_hash = file_hash(a.path), b_hash = file_hash(b.path);
    cr_assert_neq(a_hash, b_hash);
    size_t max = (size_t)(a.file_size > b.file_size ? a.file_size : b.file_size) + chunk;
    uint8_t *bytes = malloc(max);

    struct mc_snap_verify *v;
    cr_assert_eq(mc_snap_verify_new(&a, &v), 0);
    struct mc_snap_chunk_file *f = NULL;
    cr_assert_eq(mc_snap_chunk_open(a.path, v, &f), 0);
    size_t n;
    cr_assert_eq(mc_snap_chunk_read(f, 0, bytes, chunk, &n), 0);
    cr_assert_eq(n, chunk);
    cr_assert_eq(mc_snap_verify_update(v, 0, bytes, n), 0);
    cr_assert_eq(rename(b.path, a.path), 0, "b's image takes a's name (a is unlinked)");

    /* the rest, from the file opened: a's bytes, whole, and a's checksum matches */
    size_t got = chunk;
    int verdict = 0;
    for (;;) {
        cr_assert_eq(mc_snap_chunk_read(f, got, bytes + got, chunk, &n), 0);
        if (n == 0) {
            break;
        }
        verdict = mc_snap_verify_update(v, got, bytes + got, n);
        got += n;
    }
    cr_assert_eq(got, a.file_size, "read %zu bytes of a's %llu", got,
                 (unsigned long long)a.file_size);
    cr_assert_eq(mc_checksum64(bytes, got), a_hash, "the bytes read are not a's");
    cr_assert_eq(verdict, 1, "the verify saw a mix of two files (verdict %d)", verdict);
    /* a rewind (a follower's RESEND) reads the same file too */
    cr_assert_eq(read_all(f, chunk, bytes, max), a.file_size);
    cr_assert_eq(mc_checksum64(bytes, (size_t)a.file_size), a_hash);
    mc_snap_chunk_close(f);

    /* a stream that opens after the replace: not the file its lookup (v) was of */
    f = (struct mc_snap_chunk_file *)&n; /* must be reset */
    cr_assert_eq(mc_snap_chunk_open(a.path, v, &f), MC_EBUSY);
    cr_assert_null(f);
    mc_snap_verify_free(v);
    cr_assert_eq(mc_snap_chunk_open(a.path, NULL, &f), 0, "without a verify: what the name is");
    cr_assert_eq(read_all(f, chunk, bytes, max), b.file_size);
    cr_assert_eq(mc_checksum64(bytes, (size_t)b.file_size), b_hash);
    cr_assert_eq(mc_snap_chunk_read(f, 0, bytes, MC_SNAP_CHUNK_MAX_BYTES + 1, &n), MC_EINVAL);
    mc_snap_chunk_close(f);

    cr_assert_eq(mc_snap_chunk_open(b.path, NULL, &f), MC_ENOTFOUND, "gone (renamed)");
    cr_assert_null(f);
    mc_snap_chunk_close(NULL);
    free(bytes);
    st_rmtree(root);
}

/* What a sender does instead of reading the whole image at lookup (node_snapshot.c): the data
 * checksum checked as the file is streamed; a corrupt image is set aside and the next lookup
 * (header only) takes the previous image. */
Test(storage_snap, streamed_verify_and_set_aside)
{
    char root[64], snapdir[128], aside[MC_DATADIR_PATH_MAX + 16];
    st_tmpdir(root, sizeof(root));
    snprintf(snapdir, sizeof(snapdir), "%s/snap", root);
    static struct mc_snap_info old_img, img, got;
    make_snap(root, "a", 2000, 10, &old_img);
    make_snap(root, "b", 3000, 20, &img);
    cr_assert_gt(img.data_size, 3 * 64 * 1024, "several chunks");
    size_t chunk = 64 * 1024;
    uint64_t at;

    /* intact: the verdict comes with the last chunk */
    struct mc_snap_verify *v;
    cr_assert_eq(mc_snap_verify_new(&img, &v), 0);
    cr_assert_eq(stream_verify(v, img.path, 0, chunk, &at), 1);
    cr_assert_eq(at, (img.file_size - 1) / chunk * chunk, "verdict at %llu",
                 (unsigned long long)at);
    mc_snap_verify_free(v);

    /* a rewind (a receiver asks to resend from an earlier offset) is digested once */
    cr_assert_eq(mc_snap_verify_new(&img, &v), 0);
    uint8_t *buf = malloc(3 * chunk);
    size_t n;
    struct mc_snap_chunk_file *f;
    cr_assert_eq(mc_snap_chunk_open(img.path, v, &f), 0);
    cr_assert_eq(mc_snap_chunk_read(f, 0, buf, 3 * chunk, &n), 0);
    mc_snap_chunk_close(f);
    cr_assert_eq(mc_snap_verify_update(v, 0, buf, n), 0);
    cr_assert_eq(stream_verify(v, img.path, chunk, chunk, &at), 1);
    mc_snap_verify_free(v);

    /* a skip ahead (a receiver resuming a partial file) gives no verdict, never a false one */
    cr_assert_eq(mc_snap_verify_new(&img, &v), 0);
    cr_assert_eq(mc_snap_verify_update(v, 0, buf, chunk), 0);
    cr_assert_eq(stream_verify(v, img.path, 2 * chunk, chunk, &at), 0);
    mc_snap_verify_free(v);
    free(buf);

    /* a flipped data byte: the header still reads fine, the stream's end says corrupt */
    st_flip_byte(img.path, (off_t)img.data_offset + 100);
    cr_assert_eq(mc_snap_latest_header(snapdir, true, &got), 0);
    cr_assert_eq(got.index, 20);
    cr_assert_eq(mc_snap_verify_new(&got, &v), 0);
    cr_assert_eq(stream_verify(v, got.path, 0, chunk, &at), MC_ECORRUPT);
    cr_assert_eq(at, (img.file_size - 1) / chunk * chunk, "not before the last chunk");
    mc_snap_verify_free(v);

    /* set aside: kept for the operator, invisible to lookups and prune; not when the name is
     * another file by now (a fresh image at the same index replaced it) */
    struct mc_snap_verify *other;
    cr_assert_eq(mc_snap_verify_new(&old_img, &other), 0);
    cr_assert_eq(mc_snap_set_aside(got.path, other), MC_ENOTFOUND);
    mc_snap_verify_free(other);
    cr_assert_eq(access(img.path, F_OK), 0);
    cr_assert_eq(mc_snap_verify_new(&got, &v), 0);
    cr_assert_eq(mc_snap_set_aside(got.path, v), 0);
    mc_snap_verify_free(v);
    snprintf(aside, sizeof(aside), "%s.corrupt", img.path);
    cr_assert_eq(access(aside, F_OK), 0);
    cr_assert_neq(access(img.path, F_OK), 0);
    cr_assert_eq(mc_snap_latest_header(snapdir, true, &got), 0);
    cr_assert_eq(got.index, 10, "the previous image");
    cr_assert_eq(mc_snap_prune(snapdir, NULL, MC_SNAP_KEEP, NULL), 0);
    cr_assert_eq(access(old_img.path, F_OK), 0, "the newest good image is kept");
    cr_assert_eq(access(aside, F_OK), 0);
    cr_assert_eq(mc_snap_set_aside(img.path, NULL), MC_ENOTFOUND);

    /* only the newest set-aside image is kept: setting the older image aside removes the one
     * above (a damaging disk must not fill up with engine-sized evidence) */
    char aside_old[MC_DATADIR_PATH_MAX + 16];
    snprintf(aside_old, sizeof(aside_old), "%s.corrupt", old_img.path);
    cr_assert_eq(mc_snap_set_aside(old_img.path, NULL), 0);
    cr_assert_eq(access(aside_old, F_OK), 0);
    cr_assert_neq(access(aside, F_OK), 0, "the earlier set-aside image is removed");
    st_rmtree(root);
}

/* 8 MiB of bytes (four sync steps) into the pipe. */
static int bytes_cb(void *ctx, int fd)
{
    (void)ctx;
    static uint8_t buf[64 * 1024];
    memset(buf, 0x5a, sizeof(buf));
    for (int i = 0; i < 128; i++) {
        for (size_t off = 0; off < sizeof(buf);) {
            ssize_t n = write(fd, buf + off, sizeof(buf) - off);
            if (n <= 0) {
                return MC_EIO;
            }
            off += (size_t)n;
        }
    }
    return 0;
}

/* A writeback error reported by sync_file_range's wait is consumed there (the later fsync of the
 * file returns 0): it must fail the snapshot file itself, and the received file too. */
Test(storage_snap, sync_range_error_fails_the_file)
{
    char dir[64];
    st_tmpdir(dir, sizeof(dir));
    struct mc_fs_fault f;
    mc_fs_fault_init(&f, NULL);
    mc_fs_fault_arm(&f, MC_FS_SYNC_RANGE, 2, EIO, false); /* the first wait on a step */
    struct mc_snap_info info;
    int rc = mc_snap_create(dir, &f.ops, 10, 1, "m", 1, bytes_cb, NULL, &info);
    cr_assert_eq(rc, MC_EIO, "create: %s", mc_error_name(rc));
    cr_assert_eq(f.failures[MC_FS_SYNC_RANGE], 1);
    cr_assert_eq(mc_snap_latest_header(dir, true, &info), MC_ENOTFOUND, "no file left behind");
    /* Without the fault it works (and really steps). */
    rc = mc_snap_create(dir, &f.ops, 10, 1, "m", 1, bytes_cb, NULL, &info);
    cr_assert_eq(rc, 0);
    cr_assert_geq(info.write_steps, 3);
    /* Receiving: the chunk write whose step wait fails reports it. */
    struct mc_snap_recv *r;
    mc_fs_fault_arm(&f, MC_FS_SYNC_RANGE, 2, EIO, false);
    cr_assert_eq(mc_snap_recv_open(dir, &f.ops, 20, 1, &r), 0);
    int fd = open(info.path, O_RDONLY);
    cr_assert(fd >= 0);
    static uint8_t chunk[MC_SNAP_CHUNK_MAX_BYTES];
    int failed = 0;
    for (uint64_t off = 0; off < info.file_size && !failed;) {
        size_t want =
            info.file_size - off < sizeof(chunk) ? (size_t)(info.file_size - off) : sizeof(chunk);
        cr_assert_eq(pread(fd, chunk, want, (off_t)off), (ssize_t)want);
        rc = mc_snap_recv_write(r, off, chunk, want);
        failed = rc != 0;
        off += want;
    }
    close(fd);
    cr_assert(failed, "the step failure is reported by a write");
    cr_assert_eq(rc, MC_EIO);
    mc_snap_recv_abort(r, true);
    st_rmtree(dir);
}

#define PRUNE_CUT (64 * 1024)

/* A fresh temp root and its snap/ dir. */
static void snap_root(char *root, size_t root_cap, char *snapdir, size_t dir_cap)
{
    st_tmpdir(root, root_cap);
    snprintf(snapdir, dir_cap, "%s/snap", root);
}

/* Images at indexes 10, 20, 30 (30 and 20 are kept by MC_SNAP_KEEP, 10 is pruned). */
static void three_images(const char *root, struct mc_snap_info *old)
{
    static struct mc_snap_info s2, s3;
    make_snap(root, "a", 3000, 10, old);
    make_snap(root, "b", 10, 20, &s2);
    make_snap(root, "c", 10, 30, &s3);
    cr_assert_gt(old->file_size, 4 * PRUNE_CUT, "the image must take several cuts");
}

/* A trash cutting PRUNE_CUT bytes at a time, 1 ms apart, through f (which counts the calls). */
static struct mc_trash *counting_trash(struct mc_fs_fault *f)
{
    mc_fs_fault_init(f, NULL);
    struct mc_trash *t = NULL;
    cr_assert_eq(mc_trash_open(&f->ops, PRUNE_CUT, 1, &t), 0);
    return t;
}

static bool wait_deleted(struct mc_trash *t, uint64_t want)
{
    for (int i = 0; i < 500 && mc_trash_deleted(t) < want; i++) {
        usleep(10000);
    }
    return mc_trash_deleted(t) >= want;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A pruned image is freed a chunk at a time by the trash, not unlinked at once: on a file system
 * mounted with `discard`, ~700 MB freed in one commit stalls every fsync on the disk
 * (docs/decisions.md, session 15). */
Test(storage_snap, prune_hands_a_pruned_image_to_the_trash_cut_in_chunks)
{
    char root[64], snapdir[128], del[MC_DATADIR_PATH_MAX + 8];
    snap_root(root, sizeof(root), snapdir, sizeof(snapdir));
    static struct mc_snap_info old;
    three_images(root, &old);
    static struct mc_fs_fault f;
    struct mc_trash *t = counting_trash(&f);
    struct mc_snap_prune_opts o = {.trash = t};
    cr_assert_eq(mc_snap_prune(snapdir, &f.ops, MC_SNAP_KEEP, &o), 0);
    cr_assert(!exists(old.path), "the pruned image is still under its name");
    bool deleted = wait_deleted(t, 1);
    uint64_t cuts = __atomic_load_n(&f.calls[MC_FS_FTRUNCATE], __ATOMIC_SEQ_CST);
    mc_trash_close(t);
    cr_assert_geq(cuts, old.file_size / PRUNE_CUT,
                  "%llu cuts for an image of %llu bytes in 64 KiB chunks: deleted at once",
                  (unsigned long long)cuts, (unsigned long long)old.file_size);
    cr_assert(deleted, "the trash deleted nothing");
    snprintf(del, sizeof(del), "%s.del", old.path);
    cr_assert(!exists(del), "%s left behind", del);
    static struct mc_snap_info list[4];
    size_t n;
    cr_assert_eq(mc_snap_list(snapdir, list, 4, &n), 0);
    cr_assert_eq(n, 2);
    st_rmtree(root);
}

/* Directory fsyncs through f so far (a prune and its trash sync files with fdatasync only). */
static uint64_t dir_syncs(struct mc_fs_fault *f)
{
    return __atomic_load_n(&f->calls[MC_FS_FSYNC], __ATOMIC_SEQ_CST);
}

/* One directory fsync per image pruned to the trash: the trash's, before its first cut, makes
 * the rename durable (trash.c rename_durable). The prune synced the directory again after the
 * rename (session 18 removed that); a file it unlinks itself it still syncs for. */
Test(storage_snap, prune_to_the_trash_syncs_the_directory_once_per_rename)
{
    char root[64], snapdir[128];
    snap_root(root, sizeof(root), snapdir, sizeof(snapdir));
    static struct mc_snap_info old, h;
    three_images(root, &old);
    static struct mc_fs_fault f;
    struct mc_trash *t = counting_trash(&f);
    struct mc_snap_prune_opts o = {.trash = t};
    cr_assert_eq(mc_snap_prune(snapdir, &f.ops, MC_SNAP_KEEP, &o), 0);
    bool deleted = wait_deleted(t, 1);
    uint64_t syncs = dir_syncs(&f);
    cr_assert(deleted, "the trash deleted nothing");
    cr_assert_eq(syncs, 1, "%llu directory fsyncs for one image renamed to the trash",
                 (unsigned long long)syncs);
    /* A header-only file is unlinked by the prune, which syncs the directory for it. */
    for (uint64_t i = 40; i <= 60; i += 10) {
        cr_assert_eq(mc_snap_create(snapdir, NULL, i, 1, NULL, 0, NULL, NULL, &h), 0);
    }
    cr_assert_eq(mc_snap_prune(snapdir, &f.ops, MC_SNAP_KEEP, &o), 0); /* takes 40 and 20 */
    cr_assert(wait_deleted(t, 2), "the image at 20 never reached the trash");
    syncs = dir_syncs(&f) - syncs;
    mc_trash_close(t);
    cr_assert_eq(syncs, 2, "%llu directory fsyncs for one unlink and one rename to the trash",
                 (unsigned long long)syncs);
    static struct mc_snap_info list[4];
    size_t n;
    cr_assert_eq(mc_snap_list(snapdir, list, 4, &n), 0);
    cr_assert_eq(n, 3, "%zu files kept", n); /* 60, 50 and the newest image, 30 */
    st_rmtree(root);
}

/* Files named by a test's in_use (one name, switched off by the test). */
struct in_use_one {
    const char *path;
    bool on;
    pthread_mutex_t mu;
    int calls_unlocked; /* in_use called without mu held: must stay 0 */
};

static bool in_use_one(void *ctx, const char *path)
{
    struct in_use_one *u = ctx;
    if (pthread_mutex_trylock(&u->mu) == 0) {
        u->calls_unlocked++;
        pthread_mutex_unlock(&u->mu);
    }
    return u->on && strcmp(u->path, path) == 0;
}

/* A stream may hold a pruned image open (node_chunk_read.c): cut by the trash it would read a
 * shortened file. Prune leaves a file in use and takes it at a later prune once it is not. */
Test(storage_snap, prune_skips_a_file_in_use_and_removes_it_later)
{
    char root[64], snapdir[128];
    snap_root(root, sizeof(root), snapdir, sizeof(snapdir));
    static struct mc_snap_info old;
    three_images(root, &old);
    static struct mc_fs_fault f;
    struct mc_trash *t = counting_trash(&f);
    static struct in_use_one u;
    u.path = old.path;
    u.on = true;
    pthread_mutex_init(&u.mu, NULL);
    struct mc_snap_prune_opts o = {.trash = t, .in_use = in_use_one, .ctx = &u, .mu = &u.mu};
    cr_assert_eq(mc_snap_prune(snapdir, NULL, MC_SNAP_KEEP, &o), 0);
    cr_assert(exists(old.path), "a file in use was pruned");
    cr_assert_eq(u.calls_unlocked, 0, "in_use was called without the caller's lock");
    usleep(50000); /* time for cuts, if any were coming */
    cr_assert_eq(__atomic_load_n(&f.calls[MC_FS_FTRUNCATE], __ATOMIC_SEQ_CST), 0,
                 "a file in use was cut");
    struct stat st;
    cr_assert_eq(stat(old.path, &st), 0);
    cr_assert_eq((uint64_t)st.st_size, old.file_size, "a file in use changed size");
    u.on = false; /* the stream ended */
    cr_assert_eq(mc_snap_prune(snapdir, NULL, MC_SNAP_KEEP, &o), 0);
    cr_assert(!exists(old.path), "not pruned once no longer in use");
    cr_assert(wait_deleted(t, 1), "the trash deleted nothing");
    mc_trash_close(t);
    pthread_mutex_destroy(&u.mu);
    st_rmtree(root);
}

/* A pruned image the trash had not finished ("<name>.del", a stop or crash came first) is not a
 * snapshot to any lookup, and the owner's open queues it to its trash (node.c open_snap_trash). */
Test(storage_snap, leftover_del_is_not_listed_and_is_deleted_at_open)
{
    char root[64], snapdir[128], del[MC_DATADIR_PATH_MAX + 8];
    snap_root(root, sizeof(root), snapdir, sizeof(snapdir));
    static struct mc_snap_info s1, s2, got;
    make_snap(root, "a", 10, 10, &s1);
    make_snap(root, "b", 3000, 20, &s2);
    snprintf(del, sizeof(del), "%s.del", s2.path);
    cr_assert_eq(rename(s2.path, del), 0);
    static struct mc_snap_info list[4];
    size_t n;
    cr_assert_eq(mc_snap_list(snapdir, list, 4, &n), 0);
    cr_assert_eq(n, 1, "a .del file was listed as a snapshot");
    cr_assert_eq(list[0].index, 10);
    cr_assert_eq(mc_snap_latest_header(snapdir, false, &got), 0);
    cr_assert_eq(got.index, 10, "a .del file was looked up as the latest snapshot");
    static struct mc_fs_fault f;
    struct mc_trash *t = counting_trash(&f);
    mc_trash_requeue(t, NULL, snapdir, "snap-", ".snap.del");
    bool deleted = wait_deleted(t, 1);
    uint64_t cuts = __atomic_load_n(&f.calls[MC_FS_FTRUNCATE], __ATOMIC_SEQ_CST);
    mc_trash_close(t);
    cr_assert(deleted && !exists(del), "the leftover was not deleted");
    cr_assert_gt(cuts, 1, "the leftover was not cut in chunks");
    cr_assert(exists(s1.path), "a snapshot was deleted with the leftover");
    st_rmtree(root);
}

/* File operations whose first rename finds its source gone: the file is unlinked just before
 * the real rename (another prune, or a set-aside, took it between the listing and the rename). */
struct vanish_fs {
    struct mc_fs_ops ops;
    char vanished[MC_DATADIR_PATH_MAX]; /* the file taken away ("" until the first rename) */
};

static int vanish_rename(void *ctx, const char *from, const char *to)
{
    struct vanish_fs *v = ctx;
    const struct mc_fs_ops *base = mc_fs_default();
    if (!v->vanished[0]) {
        snprintf(v->vanished, sizeof(v->vanished), "%s", from);
        cr_assert_eq(unlink(from), 0, "%s", from);
    }
    return base->rename(base->ctx, from, to);
}

/* The default table's calls ignore ctx, so its copy may carry ours. */
static void vanish_fs_init(struct vanish_fs *v)
{
    v->ops = *mc_fs_default();
    v->ops.ctx = v;
    v->ops.rename = vanish_rename;
    v->vanished[0] = 0;
}

/* Images at indexes 10, 20, 30, 40: MC_SNAP_KEEP keeps 40 and 30; the prune takes 20, then 10
 * (newest first). */
static void four_images(const char *root, struct mc_snap_info *s10, struct mc_snap_info *s20)
{
    static struct mc_snap_info s30, s40;
    make_snap(root, "a", 10, 10, s10);
    make_snap(root, "b", 10, 20, s20);
    make_snap(root, "c", 10, 30, &s30);
    make_snap(root, "d", 10, 40, &s40);
}

/* mc_snap_prune(snapdir, fs, MC_SNAP_KEEP) with trash t, its log lines (stderr) in text. */
static int prune_logged(const char *root, const char *snapdir, const struct mc_fs_ops *fs,
                        struct mc_trash *t, char *text, size_t cap)
{
    char log_path[MC_DATADIR_PATH_MAX];
    snprintf(log_path, sizeof(log_path), "%s.stderr", root);
    struct mc_snap_prune_opts o = {.trash = t};
    int saved = st_stderr_to(log_path);
    int rc = mc_snap_prune(snapdir, fs, MC_SNAP_KEEP, &o);
    st_stderr_restore(saved);
    st_slurp_and_unlink(log_path, text, cap);
    return rc;
}

/* A file that vanishes between the prune's listing and its rename to the trash (ENOENT) is
 * already gone: no warning, no failure, and the prune goes on to the older files. */
Test(storage_snap, prune_skips_a_file_that_vanished_before_its_rename)
{
    char root[64], snapdir[128], del[MC_DATADIR_PATH_MAX + 8];
    snap_root(root, sizeof(root), snapdir, sizeof(snapdir));
    static struct mc_snap_info s10, s20;
    four_images(root, &s10, &s20);
    static struct mc_fs_fault f;
    struct mc_trash *t = counting_trash(&f);
    static struct vanish_fs v;
    vanish_fs_init(&v);
    char text[8192];
    int rc = prune_logged(root, snapdir, &v.ops, t, text, sizeof(text));
    cr_assert_eq(rc, 0, "a vanished file failed the prune: %s", mc_error_name(rc));
    cr_assert_str_eq(v.vanished, s20.path, "the newest file pruned (index 20) is renamed first");
    cr_assert_null(strstr(text, "level=warn"), "a vanished file was logged as a warning:\n%s",
                   text);
    char line[MC_DATADIR_PATH_MAX + 64];
    snprintf(line, sizeof(line), "msg=snapshot_pruned path=%s ", s20.path);
    cr_assert_null(strstr(text, line), "a file already gone was logged as pruned:\n%s", text);
    snprintf(line, sizeof(line), "msg=snapshot_pruned path=%s trash=1", s10.path);
    cr_assert_not_null(strstr(text, line), "index 10 not logged as pruned:\n%s", text);
    cr_assert(!exists(s10.path), "the prune stopped at the vanished file: index 10 kept");
    cr_assert(wait_deleted(t, 1), "index 10 never reached the trash");
    mc_trash_close(t);
    snprintf(del, sizeof(del), "%s.del", s20.path);
    cr_assert(!exists(del), "%s appeared", del);
    static struct mc_snap_info list[4];
    size_t n;
    cr_assert_eq(mc_snap_list(snapdir, list, 4, &n), 0);
    cr_assert_eq(n, 2, "%zu snapshots left, not the 2 kept", n);
    st_rmtree(root);
}

/* An image that cannot be renamed into the trash (EIO) is unlinked at once, with a warning that
 * says so: the prune neither fails nor keeps the file, and the trash gets nothing. */
Test(storage_snap, prune_unlinks_at_once_an_image_it_cannot_rename)
{
    char root[64], snapdir[128], del[MC_DATADIR_PATH_MAX + 8];
    snap_root(root, sizeof(root), snapdir, sizeof(snapdir));
    static struct mc_snap_info old;
    three_images(root, &old);
    static struct mc_fs_fault tf, f;
    struct mc_trash *t = counting_trash(&tf);
    mc_fs_fault_init(&f, NULL);
    mc_fs_fault_arm(&f, MC_FS_RENAME, 1, EIO, false);
    char text[8192];
    int rc = prune_logged(root, snapdir, &f.ops, t, text, sizeof(text));
    cr_assert_eq(rc, 0, "a failed rename failed the prune: %s", mc_error_name(rc));
    cr_assert_eq(f.failures[MC_FS_RENAME], 1, "the rename fault never fired");
    cr_assert(!exists(old.path), "the image the rename failed on was kept");
    snprintf(del, sizeof(del), "%s.del", old.path);
    cr_assert(!exists(del), "%s appeared", del);
    cr_assert_geq(f.calls[MC_FS_UNLINK], 1, "not unlinked through the prune's file operations");
    cr_assert_not_null(strstr(text, "msg=snapshot_prune_rename_failed"),
                       "the failed rename was not logged:\n%s", text);
    cr_assert_not_null(strstr(text, "unlinked at once"), "the log does not say what was done:\n%s",
                       text);
    cr_assert_not_null(strstr(text, "trash=0"), "logged as trashed:\n%s", text);
    usleep(50000); /* time for cuts, if any were coming */
    cr_assert_eq(mc_trash_deleted(t), 0, "the trash got a file it was never handed");
    cr_assert_eq(__atomic_load_n(&tf.calls[MC_FS_FTRUNCATE], __ATOMIC_SEQ_CST), 0,
                 "the trash cut a file");
    mc_trash_close(t);
    static struct mc_snap_info list[4];
    size_t n;
    cr_assert_eq(mc_snap_list(snapdir, list, 4, &n), 0);
    cr_assert_eq(n, 2);
    st_rmtree(root);
}
