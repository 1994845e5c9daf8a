/* env.c: engine lifecycle on LMDB: open/lock/close, read-txn pool, stepped sync, copy, state
 * hash. */
#include "engine/internal.h"
#include "util/checksum.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_MAP_SIZE     (256ull << 20)
#define DEFAULT_MAX_MAP_SIZE (64ull << 30)
#define DEFAULT_SESSION_TTL  (3600ull * 1000000000ull)
#define DEFAULT_MAX_READERS  126
#define LOCK_FILE            "LOCK"

static _Thread_local char last_error[512];

const char *mc_engine_last_error(void)
{
    return last_error[0] ? last_error : "no error";
}

void mc_engine_clearerr(void)
{
    last_error[0] = 0;
}

int mc_engine_seterr(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return code;
}

int mc_lmdb_err(int rc, const char *what)
{
    int code;
    if (rc == MC_REC_BADSUM) {
        return MC_ECORRUPT; /* mc_rec_check set the sentence naming file, table and key */
    }
    switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC:
        code = MC_ENOSPC;
        break;
    case ENOMEM:
        code = MC_ENOMEM;
        break;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
        code = MC_ECORRUPT;
        break;
    case MDB_VERSION_MISMATCH:
    case MDB_INVALID:
        code = MC_ENOTOURS;
        break;
    case MDB_READERS_FULL:
        code = MC_ELIMIT;
        break;
    default:
        code = MC_EIO;
    }
    return mc_engine_seterr(code, "%s: %s", what, mdb_strerror(rc));
}

/* ---- read txn pool ---- */

static void rtxn_free(struct mc_rtxn *rt)
{
    if (rt->vcur) {
        mdb_cursor_close(rt->vcur); /* read-only txn cursors are closed explicitly */
    }
    mdb_txn_abort(rt->txn);
    free(rt);
}

int mc_rtxn_get(struct mc_engine *eng, struct mc_rtxn **out)
{
    pthread_rwlock_rdlock(&eng->resize_lock);
    struct mc_rtxn *rt = NULL;
    pthread_mutex_lock(&eng->pool_lock);
    if (eng->n_pool > 0) {
        rt = eng->pool[--eng->n_pool];
    }
    pthread_mutex_unlock(&eng->pool_lock);
    int rc;
    if (rt) {
        rc = mdb_txn_renew(rt->txn);
        if (rc) {
            rtxn_free(rt);
            rt = NULL;
        }
    }
    if (!rt) {
        rt = calloc(1, sizeof(*rt));
        rc = rt ? mdb_txn_begin(eng->env, NULL, MDB_RDONLY, &rt->txn) : ENOMEM;
        if (rc) {
            free(rt);
            pthread_rwlock_unlock(&eng->resize_lock);
            return mc_lmdb_err(rc, "begin read transaction");
        }
    }
    *out = rt;
    return 0;
}

int mc_rtxn_versions(struct mc_engine *eng, struct mc_rtxn *rt, MDB_cursor **c)
{
    int rc = 0;
    if (!rt->vcur) {
        rc = mdb_cursor_open(rt->txn, eng->versions, &rt->vcur);
    } else if (!rt->vcur_ready) {
        rc = mdb_cursor_renew(rt->txn, rt->vcur);
    }
    if (rc) {
        return mc_lmdb_err(rc, "open cursor");
    }
    rt->vcur_ready = true;
    *c = rt->vcur;
    return 0;
}

void mc_rtxn_put(struct mc_engine *eng, struct mc_rtxn *rt)
{
    mdb_txn_reset(rt->txn);
    rt->vcur_ready = false;
    pthread_mutex_lock(&eng->pool_lock);
    if (eng->n_pool < MC_READ_POOL_MAX) {
        eng->pool[eng->n_pool++] = rt;
        rt = NULL;
    }
    pthread_mutex_unlock(&eng->pool_lock);
    if (rt) {
        rtxn_free(rt);
    }
    pthread_rwlock_unlock(&eng->resize_lock);
}

/* ---- directory checks ---- */

/* 1 when dir has no entries (besides . ..), 0 when it has some, negative on error. */
static int dir_state(const char *dir, bool *has_data, bool *has_other)
{
    DIR *d = opendir(dir);
    *has_data = *has_other = false;
    if (!d) {
        return -errno;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) {
            continue;
        }
        if (!strcmp(e->d_name, "data.mdb")) {
            *has_data = true;
        } else if (strcmp(e->d_name, "lock.mdb") && strcmp(e->d_name, LOCK_FILE)) {
            *has_other = true;
        }
    }
    closedir(d);
    return 0;
}

static int take_lock(const char *dir, int *fd_out)
{
    char path[4096];
    snprintf(path, sizeof(path), "%s/%s", dir, LOCK_FILE);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return mc_engine_seterr(MC_EIO, "cannot open lock file %s: %s", path, strerror(errno));
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK) {
            return mc_engine_seterr(MC_ELOCKED,
                                    "%s is locked by another process (a running server?); stop "
                                    "it or use --endpoints to talk to it",
                                    dir);
        }
        return mc_engine_seterr(MC_EIO, "cannot lock %s: %s", path, strerror(e));
    }
    /* Record the holder's pid for humans debugging a stuck lock. */
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)n, 0) < 0) {
        /* informational only */
    }
    *fd_out = fd;
    return 0;
}

static int open_dbis(struct mc_engine *eng, MDB_txn *txn, unsigned flags)
{
    struct {
        const char *name;
        MDB_dbi *dbi;
    } t[] = {{"meta", &eng->meta}, {"buckets", &eng->buckets}, {"versions", &eng->versions},
             {"vids", &eng->vids}, {"objects", &eng->objects}, {"sessions", &eng->sessions},
             {"sexp", &eng->sexp}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        int rc = mdb_dbi_open(txn, t[i].name, flags, t[i].dbi);
        if (rc == MDB_NOTFOUND) {
            return mc_engine_seterr(MC_ENOTOURS, "engine sub-database '%s' is missing", t[i].name);
        }
        if (rc) {
            return mc_lmdb_err(rc, "open sub-database");
        }
    }
    return 0;
}

/*
 * Check or write the format marker: MAGIC u32le(version), with a checksum trailer from
 * format 3 on. Older formats (12 bytes, no trailer) are refused: there is no migration.
 */
static int check_format(struct mc_engine *eng, MDB_txn *txn, bool fresh, const char *dir)
{
    MDB_val k = {6, "format"}, v;
    uint8_t buf[12];
    int rc = mdb_get(txn, eng->meta, &k, &v);
    if (rc == MDB_NOTFOUND && fresh) {
        memcpy(buf, MC_ENGINE_MAGIC, 8);
        mc_put_u32le(buf + 8, MC_ENGINE_FORMAT_VERSION);
        rc = mc_rec_put(eng, txn, eng->meta, k.mv_data, k.mv_size, buf, sizeof(buf));
        return rc ? mc_lmdb_err(rc, "write format marker") : 0;
    }
    if (rc == 0 && v.mv_size == 12 && !memcmp(v.mv_data, MC_ENGINE_MAGIC, 8)) {
        uint32_t old = mc_get_u32le((const uint8_t *)v.mv_data + 8);
        return mc_engine_seterr(MC_EVERSION,
                                "%s has engine format %u, without record checksums; this build "
                                "reads format %u only (no migration: wipe the data dir so the "
                                "node rejoins from the cluster, or restore a backup made by this "
                                "version)",
                                eng->file, old, MC_ENGINE_FORMAT_VERSION);
    }
    if (rc == 0 && mc_rec_check(eng->file, "meta", &k, &v) != 0) {
        return MC_ECORRUPT;
    }
    if (rc == MDB_NOTFOUND ||
        (rc == 0 && (v.mv_size != 12 || memcmp(v.mv_data, MC_ENGINE_MAGIC, 8)))) {
        return mc_engine_seterr(MC_ENOTOURS,
                                "%s holds an LMDB database that is not a metacenter "
                                "engine",
                                dir);
    }
    if (rc) {
        return mc_lmdb_err(rc, "read format marker");
    }
    uint32_t ver = mc_get_u32le((const uint8_t *)v.mv_data + 8);
    if (ver != MC_ENGINE_FORMAT_VERSION) {
        return mc_engine_seterr(MC_EVERSION, "%s has engine format %u; this build reads format %u",
                                eng->file, ver, MC_ENGINE_FORMAT_VERSION);
    }
    return 0;
}

int mc_engine_open(const char *dir, const struct mc_engine_options *opts, struct mc_engine **out)
{
    struct mc_engine_options o = {0};
    if (opts) {
        o = *opts;
    }
    *out = NULL;
    last_error[0] = 0;
    if (!dir || !*dir) {
        return mc_engine_seterr(MC_EINVAL, "no engine directory given");
    }
    struct stat st;
    if (stat(dir, &st) != 0) {
        if (errno != ENOENT) {
            return mc_engine_seterr(MC_EIO, "cannot stat %s: %s", dir, strerror(errno));
        }
        if (o.no_create || o.read_only) {
            return mc_engine_seterr(MC_ENOTFOUND, "%s does not exist", dir);
        }
        if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
            return mc_engine_seterr(MC_EIO, "cannot create %s: %s", dir, strerror(errno));
        }
    } else if (!S_ISDIR(st.st_mode)) {
        return mc_engine_seterr(MC_ENOTOURS, "%s is not a directory", dir);
    }
    bool has_data, has_other;
    int rc = dir_state(dir, &has_data, &has_other);
    if (rc) {
        return mc_engine_seterr(MC_EIO, "cannot read %s: %s", dir, strerror(-rc));
    }
    if (has_other) {
        return mc_engine_seterr(
            MC_ENOTOURS, "%s holds files that are not a metacenter engine; refusing to use it",
            dir);
    }
    bool fresh = !has_data;
    if (fresh && (o.no_create || o.read_only)) {
        return mc_engine_seterr(MC_ENOTFOUND, "%s holds no engine", dir);
    }

    struct mc_engine *eng = calloc(1, sizeof(*eng));
    if (!eng) {
        return MC_ENOMEM;
    }
    eng->lock_fd = -1;
    eng->read_only = o.read_only;
    size_t fl = strlen(dir) + sizeof("/data.mdb");
    eng->file = malloc(fl);
    if (!eng->file) {
        free(eng);
        return MC_ENOMEM;
    }
    snprintf(eng->file, fl, "%s/data.mdb", dir);
    eng->map_size_bytes = o.map_size_bytes ? o.map_size_bytes : DEFAULT_MAP_SIZE;
    eng->max_map_size_bytes = o.max_map_size_bytes ? o.max_map_size_bytes : DEFAULT_MAX_MAP_SIZE;
    if (eng->map_size_bytes > eng->max_map_size_bytes) {
        eng->map_size_bytes = eng->max_map_size_bytes;
    }
    eng->session_ttl_ns = o.session_ttl_ns ? o.session_ttl_ns : DEFAULT_SESSION_TTL;
    pthread_rwlockattr_t ra;
    pthread_rwlockattr_init(&ra);
    pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&eng->resize_lock, &ra);
    pthread_rwlockattr_destroy(&ra);
    pthread_mutex_init(&eng->write_lock, NULL);
    pthread_mutex_init(&eng->pool_lock, NULL);
    mc_cond_init_monotonic(&eng->hashing_done); /* timed waits: mc_engine_hash_wait */

    rc = take_lock(dir, &eng->lock_fd);
    if (rc) {
        goto fail;
    }
    int mrc = mdb_env_create(&eng->env);
    if (mrc) {
        rc = mc_lmdb_err(mrc, "create LMDB environment");
        goto fail;
    }
    mdb_env_set_maxdbs(eng->env, 16);
    mdb_env_set_maxreaders(eng->env, o.max_readers ? o.max_readers : DEFAULT_MAX_READERS);
    if (!fresh) {
        /* An existing file larger than the requested map: keep its size. */
        char path[4096];
        snprintf(path, sizeof(path), "%s/data.mdb", dir);
        if (stat(path, &st) == 0 && (uint64_t)st.st_size > eng->map_size_bytes) {
            eng->map_size_bytes = (uint64_t)st.st_size;
            if (eng->map_size_bytes > eng->max_map_size_bytes) {
                eng->max_map_size_bytes = eng->map_size_bytes;
            }
        }
    }
    mdb_env_set_mapsize(eng->env, (size_t)eng->map_size_bytes);
    unsigned flags = MDB_NOTLS | MDB_NORDAHEAD | MDB_WRITEMAP;
    if (o.read_only) {
        flags |= MDB_RDONLY;
    }
    if (o.sync == MC_ENGINE_SYNC_NONE) {
        flags |= MDB_NOSYNC | MDB_NOMETASYNC;
    }
    mrc = mdb_env_open(eng->env, dir, flags, 0644);
    if (mrc) {
        rc = mrc == MDB_INVALID || mrc == MDB_VERSION_MISMATCH
                 ? mc_engine_seterr(MC_ENOTOURS, "%s/data.mdb is not an LMDB file we can read", dir)
                 : mc_lmdb_err(mrc, "open LMDB environment");
        goto fail;
    }
    MDB_txn *txn;
    mrc = mdb_txn_begin(eng->env, NULL, o.read_only ? MDB_RDONLY : 0, &txn);
    if (mrc) {
        rc = mc_lmdb_err(mrc, "begin transaction");
        goto fail;
    }
    rc = open_dbis(eng, txn, fresh && !o.read_only ? MDB_CREATE : 0);
    if (!rc) {
        rc = check_format(eng, txn, fresh, dir);
    }
    uint64_t n_buckets = 0, n_sessions = 0;
    if (!rc && (mrc = mc_engine_count_rows(eng, txn, &n_buckets, &n_sessions)) != 0) {
        rc = mc_lmdb_err(mrc, "count buckets and sessions");
    }
    if (rc) {
        mdb_txn_abort(txn);
        goto fail;
    }
    mrc = mdb_txn_commit(txn);
    if (mrc) {
        rc = mc_lmdb_err(mrc, "commit open transaction");
        goto fail;
    }
    atomic_store(&eng->n_buckets, n_buckets);
    atomic_store(&eng->n_sessions, n_sessions);
    *out = eng;
    return 0;
fail:
    mc_engine_close(eng);
    return rc;
}

/* A caller bug (engine.h: close no engine with a hash handle open): the env would be freed
 * under the hash's transaction, a use after free on the thread that runs it. Debug builds stop
 * here; release builds say so and wait for the handle's end, a stall rather than a crash (a
 * handle never ended on another thread would hang here). */
static void wait_hashes_closed(struct mc_engine *eng)
{
    pthread_mutex_lock(&eng->pool_lock);
    uint32_t open = eng->n_hashing;
    pthread_mutex_unlock(&eng->pool_lock);
    if (open == 0) {
        return;
    }
    MC_ERROR("engine_close_while_hashing", "n_hashing=%u action=\"waiting for the hash to end\"",
             open);
    assert(open == 0);
    pthread_mutex_lock(&eng->pool_lock);
    while (eng->n_hashing > 0) {
        pthread_cond_wait(&eng->hashing_done, &eng->pool_lock);
    }
    pthread_mutex_unlock(&eng->pool_lock);
}

void mc_engine_close(struct mc_engine *eng)
{
    if (!eng) {
        return;
    }
    wait_hashes_closed(eng);
    for (int i = 0; i < eng->n_pool; i++) {
        rtxn_free(eng->pool[i]);
    }
    if (eng->env) {
        mdb_env_close(eng->env);
    }
    if (eng->lock_fd >= 0) {
        close(eng->lock_fd); /* releases the flock */
    }
    pthread_rwlock_destroy(&eng->resize_lock);
    pthread_mutex_destroy(&eng->write_lock);
    pthread_mutex_destroy(&eng->pool_lock);
    pthread_cond_destroy(&eng->hashing_done);
    free(eng->file);
    free(eng);
}

/*
 * Write the map's dirty pages back in MC_ENGINE_SYNC_STEP_BYTES ranges, each waited for, then
 * mdb_env_sync (msync of the whole map: what is left, and the journal commit). One msync of a
 * large backlog puts all of it in the device queue at once, and the WAL's fdatasync (its cache
 * flush, and on ext4 data=ordered its journal commit) waits behind all of it; in steps, at most
 * one step is in flight ahead of it.
 */
uint64_t mc_engine_used_bytes(struct mc_engine *eng)
{
    MDB_envinfo info;
    MDB_stat st;
    if (mdb_env_info(eng->env, &info) || mdb_env_stat(eng->env, &st)) {
        return 0;
    }
    return ((uint64_t)info.me_last_pgno + 1) * st.ms_psize;
}

int mc_engine_sync(struct mc_engine *eng)
{
    if (eng->read_only) {
        return 0;
    }
    /* Only up to the highest page in use: the file is sparse up to the map size, and stepping
     * over its unused part cost one syscall per 2 MiB for nothing (anything dirty beyond, e.g.
     * from an aborted write txn, is still written by the msync below). */
    int fd;
    uint64_t used = mc_engine_used_bytes(eng);
    if (mdb_env_get_fd(eng->env, &fd) == 0) {
        for (uint64_t off = 0; off < used; off += MC_ENGINE_SYNC_STEP_BYTES) {
            /* Its wait consumes a writeback error, which the msync below then would not see. */
            if (sync_file_range(fd, (off_t)off, (off_t)MC_ENGINE_SYNC_STEP_BYTES,
                                SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                    SYNC_FILE_RANGE_WAIT_AFTER) != 0) {
                return mc_engine_seterr(MC_EIO, "sync: writeback failed at offset %llu: %s",
                                        (unsigned long long)off, strerror(errno));
            }
        }
    }
    int rc = mdb_env_sync(eng->env, 1);
    return rc ? mc_lmdb_err(rc, "sync") : 0;
}

/* ---- meta reads ---- */

static int read_meta_txn(struct mc_engine *eng, MDB_txn *txn, uint64_t *applied, void **conf,
                         size_t *conf_len)
{
    MDB_val k = {13, "applied_index"}, v;
    int rc = mc_rec_get(eng, txn, eng->meta, &k, &v);
    if (applied) {
        *applied = (rc == 0 && v.mv_size == 8) ? mc_get_u64le(v.mv_data) : 0;
    }
    if (rc && rc != MDB_NOTFOUND) {
        return mc_lmdb_err(rc, "read applied_index");
    }
    if (conf) {
        *conf = NULL;
        *conf_len = 0;
        MDB_val ck = {4, "conf"};
        rc = mc_rec_get(eng, txn, eng->meta, &ck, &v);
        if (rc == 0 && v.mv_size) {
            *conf = malloc(v.mv_size);
            if (!*conf) {
                return MC_ENOMEM;
            }
            memcpy(*conf, v.mv_data, v.mv_size);
            *conf_len = v.mv_size;
        } else if (rc && rc != MDB_NOTFOUND) {
            return mc_lmdb_err(rc, "read conf");
        }
    }
    return 0;
}

int mc_engine_applied_index(struct mc_engine *eng, uint64_t *applied_index)
{
    struct mc_rtxn *rt;
    int rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        return rc;
    }
    rc = read_meta_txn(eng, rt->txn, applied_index, NULL, NULL);
    mc_rtxn_put(eng, rt);
    return rc;
}

int mc_engine_op_clock(struct mc_engine *eng, int64_t *time_ns)
{
    mc_engine_clearerr();
    *time_ns = 0;
    struct mc_rtxn *rt;
    int rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        return rc;
    }
    MDB_val k = {13, "session_clock"}, v;
    int mrc = mc_rec_get(eng, rt->txn, eng->meta, &k, &v);
    if (mrc == 0 && v.mv_size == 8) {
        *time_ns = (int64_t)mc_get_u64le(v.mv_data);
    } else if (mrc && mrc != MDB_NOTFOUND) {
        rc = mc_lmdb_err(mrc, "read session_clock");
    }
    mc_rtxn_put(eng, rt);
    return rc;
}

int mc_engine_count_rows(struct mc_engine *eng, MDB_txn *txn, uint64_t *buckets, uint64_t *sessions)
{
    MDB_stat st;
    int rc = mdb_stat(txn, eng->buckets, &st);
    if (rc) {
        return rc;
    }
    *buckets = (uint64_t)st.ms_entries; /* one record per bucket (apply.c) */
    rc = mdb_stat(txn, eng->sexp, &st);
    if (rc) {
        return rc;
    }
    *sessions = (uint64_t)st.ms_entries; /* one expiry row per session (apply.c) */
    return 0;
}

uint64_t mc_engine_bucket_count(struct mc_engine *eng)
{
    return atomic_load(&eng->n_buckets);
}

uint64_t mc_engine_session_count(struct mc_engine *eng)
{
    return atomic_load(&eng->n_sessions);
}

int mc_engine_sessions_expired(struct mc_engine *eng, int64_t clock_ns, bool *some)
{
    mc_engine_clearerr();
    *some = false;
    struct mc_rtxn *rt;
    int rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        return rc;
    }
    MDB_cursor *c;
    int mrc = mdb_cursor_open(rt->txn, eng->sexp, &c);
    if (mrc == 0) {
        MDB_val k, v;
        mrc = mc_rec_cget(eng, c, &k, &v, MDB_FIRST); /* sexp: oldest last_active first */
        if (mrc == 0 && k.mv_size == 16) {
            /* apply.c's session_expired, at op time clock_ns */
            *some = clock_ns - (int64_t)mc_get_u64be(k.mv_data) > (int64_t)eng->session_ttl_ns;
        }
        mdb_cursor_close(c);
    }
    if (mrc && mrc != MDB_NOTFOUND) {
        rc = mc_lmdb_err(mrc, "read the oldest session");
    }
    mc_rtxn_put(eng, rt);
    return rc;
}

int mc_engine_conf(struct mc_engine *eng, void **conf, size_t *conf_len)
{
    struct mc_rtxn *rt;
    int rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        return rc;
    }
    rc = read_meta_txn(eng, rt->txn, NULL, conf, conf_len);
    mc_rtxn_put(eng, rt);
    return rc;
}

int mc_engine_read_meta(const char *dir, uint64_t *applied_index, void **conf, size_t *conf_len)
{
    struct mc_engine_options o = {.read_only = true, .max_readers = 4};
    struct mc_engine *eng;
    int rc = mc_engine_open(dir, &o, &eng);
    if (rc) {
        return rc;
    }
    struct mc_rtxn *rt;
    rc = mc_rtxn_get(eng, &rt);
    if (!rc) {
        rc = read_meta_txn(eng, rt->txn, applied_index, conf, conf_len);
        mc_rtxn_put(eng, rt);
    }
    mc_engine_close(eng);
    return rc;
}

/* ---- copy ---- */

int mc_engine_copy_to_fd(struct mc_engine *eng, int fd, uint64_t *applied_index)
{
    off_t start = lseek(fd, 0, SEEK_CUR);
    pthread_rwlock_rdlock(&eng->resize_lock);
    int rc = mdb_env_copyfd2(eng->env, fd, MDB_CP_COMPACT);
    pthread_rwlock_unlock(&eng->resize_lock);
    if (rc) {
        return mc_lmdb_err(rc, "copy environment");
    }
    if (!applied_index) {
        return 0;
    }
    /* The copy runs its own read txn; read its applied_index back from the copy itself. */
    *applied_index = 0;
    if (start < 0) {
        return 0;
    }
    char path[64];
    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    int rfd = open(path, O_RDONLY | O_CLOEXEC);
    if (rfd < 0) {
        return mc_engine_seterr(MC_EIO, "cannot reopen the copy: %s", strerror(errno));
    }
    /* A compacted copy of a fresh env still begins at `start`; LMDB can only open it at offset 0.
     */
    if (start != 0) {
        close(rfd);
        return 0;
    }
    close(rfd);
    MDB_env *env;
    if (mdb_env_create(&env)) {
        return MC_ENOMEM;
    }
    mdb_env_set_maxdbs(env, 16);
    rc = mdb_env_open(env, path, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK, 0644);
    if (rc == 0) {
        MDB_txn *txn;
        MDB_dbi meta;
        rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn);
        if (rc == 0) {
            rc = mdb_dbi_open(txn, "meta", 0, &meta);
            MDB_val k = {13, "applied_index"}, v;
            if (rc == 0 && mdb_get(txn, meta, &k, &v) == 0 &&
                mc_rec_check(path, "meta", &k, &v) == 0 && v.mv_size == 8) {
                *applied_index = mc_get_u64le(v.mv_data);
            }
            mdb_txn_abort(txn);
        }
    }
    mdb_env_close(env);
    return rc ? mc_lmdb_err(rc, "read back the copy") : 0;
}

/* ---- state hash ---- */

/* Records without their trailers, each verified (a corrupt replica reports MC_ECORRUPT). */
static int hash_dbi(struct mc_engine *eng, MDB_txn *txn, MDB_dbi dbi, struct mc_digest *d,
                    uint8_t tag)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, dbi, &c);
    if (rc) {
        return mc_lmdb_err(rc, "open cursor");
    }
    MDB_val k, v;
    uint8_t hdr[9];
    hdr[0] = tag;
    for (rc = mc_rec_cget(eng, c, &k, &v, MDB_FIRST); rc == 0;
         rc = mc_rec_cget(eng, c, &k, &v, MDB_NEXT)) {
        mc_put_u32le(hdr + 1, (uint32_t)k.mv_size);
        mc_put_u32le(hdr + 5, (uint32_t)v.mv_size);
        mc_digest_update(d, hdr, sizeof(hdr));
        mc_digest_update(d, k.mv_data, k.mv_size);
        mc_digest_update(d, v.mv_data, v.mv_size);
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND ? 0 : mc_lmdb_err(rc, "iterate");
}

/*
 * A state hash in three steps, so the long part runs off the writer's thread (node_check.c).
 * begin opens a read transaction of its own (not a pooled one: the pool's hold resize_lock from
 * get to put, and that lock cannot be released on another thread) and counts it in n_hashing;
 * grow_map waits for that count to reach 0, so the map is never resized under the transaction
 * (LMDB requires no transaction open in the process), whichever thread runs or ends it. The env
 * is MDB_NOTLS, so the transaction may be used and aborted on another thread than begin's.
 */
struct mc_engine_hash {
    struct mc_engine *eng;
    MDB_txn *txn;
};

int mc_engine_hash_begin(struct mc_engine *eng, struct mc_engine_hash **out,
                         uint64_t *applied_index)
{
    mc_engine_clearerr();
    *out = NULL;
    struct mc_engine_hash *h = calloc(1, sizeof(*h));
    if (!h) {
        return MC_ENOMEM;
    }
    h->eng = eng;
    /* Shared: no growth runs between the begin and the count (growth holds it exclusive). */
    pthread_rwlock_rdlock(&eng->resize_lock);
    int rc = mdb_txn_begin(eng->env, NULL, MDB_RDONLY, &h->txn);
    if (rc) {
        pthread_rwlock_unlock(&eng->resize_lock);
        free(h);
        return mc_lmdb_err(rc, "begin read transaction");
    }
    pthread_mutex_lock(&eng->pool_lock);
    eng->n_hashing++;
    pthread_mutex_unlock(&eng->pool_lock);
    pthread_rwlock_unlock(&eng->resize_lock);
    rc = read_meta_txn(eng, h->txn, applied_index, NULL, NULL);
    if (rc) {
        mc_engine_hash_end(h);
        return rc;
    }
    *out = h;
    return 0;
}

int mc_engine_hash_run(struct mc_engine_hash *h, uint64_t *hash)
{
    mc_engine_clearerr();
    struct mc_engine *eng = h->eng;
    struct mc_digest d;
    int rc = mc_digest_init(&d);
    if (rc) {
        return rc;
    }
    /*
     * Our own canonical encodings (not LMDB pages) of every logical table. The
     * derived indexes (vids, objects, sexp) are included too: a replica whose
     * index diverged from its records is as wrong as one with different records.
     */
    MDB_dbi dbis[] = {eng->buckets, eng->versions, eng->vids,
                      eng->objects, eng->sessions, eng->sexp};
    for (size_t i = 0; i < sizeof(dbis) / sizeof(dbis[0]) && !rc; i++) {
        rc = hash_dbi(eng, h->txn, dbis[i], &d, (uint8_t)(i + 1));
    }
    uint64_t v = mc_digest_final(&d);
    if (!rc) {
        *hash = v;
    }
    return rc;
}

void mc_engine_hash_end(struct mc_engine_hash *h)
{
    if (!h) {
        return;
    }
    struct mc_engine *eng = h->eng;
    mdb_txn_abort(h->txn);
    pthread_mutex_lock(&eng->pool_lock);
    assert(eng->n_hashing > 0);
    eng->n_hashing--;
    pthread_cond_broadcast(&eng->hashing_done);
    pthread_mutex_unlock(&eng->pool_lock);
    free(h);
}

bool mc_engine_hash_wait(struct mc_engine *eng, uint32_t timeout_ms)
{
    struct timespec until = mc_mono_deadline(timeout_ms);
    pthread_mutex_lock(&eng->pool_lock);
    while (eng->n_hashing > 0 &&
           pthread_cond_timedwait(&eng->hashing_done, &eng->pool_lock, &until) != ETIMEDOUT) {
    }
    bool none = eng->n_hashing == 0;
    pthread_mutex_unlock(&eng->pool_lock);
    return none;
}

int mc_engine_state_hash(struct mc_engine *eng, uint64_t *hash, uint64_t *applied_index)
{
    struct mc_engine_hash *h;
    int rc = mc_engine_hash_begin(eng, &h, applied_index);
    if (rc) {
        return rc;
    }
    rc = mc_engine_hash_run(h, hash);
    mc_engine_hash_end(h);
    return rc;
}
