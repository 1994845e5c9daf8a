/* verify.c: full scan of the engine file: record checksums, key order, lookups, page accounting. */
#include "engine/internal.h"
#include "util/clock.h"

#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Why each check (LMDB has no page checksums; see record.c for the trailers):
 *  - checksum: a flip inside a leaf record (key or value);
 *  - strictly ascending keys: a flip in a page header or in a branch page's child
 *    pointer makes the walk visit a wrong page, which shows up as disorder;
 *  - lookup from the root: a flip in a branch page's separator key leaves the
 *    walk intact but sends point lookups to the wrong leaf ("not found" for a
 *    stored key): every key is sought and must land on the very same record;
 *  - counts: records per table must equal LMDB's stored counters, and pages in
 *    tables + pages on the free list + the 2 meta pages must equal the pages
 *    in use, and no page on the free list may hold a record we walked (the
 *    record's address in the map gives its page) nor be listed twice: a damaged
 *    free list would later hand out live pages.
 * LMDB trusts its pages: a flipped byte in a page header or a node's offset can
 * make it read outside the map (SIGSEGV/SIGBUS). During the scan those signals
 * are turned into MC_ECORRUPT naming the table (the process then refuses to
 * start; the walk's cursors are closed, its read txn reset).
 */

#define PROGRESS_EVERY (1u << 16)
#define NUM_METAS      2

struct vctx {
    struct mc_engine *eng;
    MDB_txn *txn;
    struct mc_engine_verify_report *r;
    uint64_t total;
    const char *table;       /* being walked, for the fault message */
    MDB_cursor *open_cur[2]; /* closed after a fault (the walk's own frames are gone) */
    uintptr_t map;           /* the env's map (from the first page seen): address -> page */
    size_t psize;
    uint64_t n_pages; /* last_pgno + 1 */
    uint8_t *used;    /* bitmap of n_pages: leaf/overflow pages holding a record, then free */
};

/*
 * Mark the pages [p, p + len) lies on; false when outside the used part of the file or on a
 * page whose header names another page number. LMDB does not publish its map address (only
 * with MDB_FIXEDMAP): a page starts with its own number, so the first page seen gives it.
 */
static bool mark_pages(struct vctx *x, const void *p, size_t len)
{
    uintptr_t b = (uintptr_t)p, page = b & ~(uintptr_t)(x->psize - 1);
    uint64_t own;
    memcpy(&own, (const void *)page, sizeof(own)); /* mp_pgno */
    if (own >= x->n_pages) {
        return false;
    }
    if (!x->map) {
        x->map = page - (uintptr_t)(own * x->psize);
    }
    if (page != x->map + own * x->psize || (uint64_t)(b - x->map) + len > x->n_pages * x->psize) {
        return false;
    }
    uint64_t first = own;
    uint64_t last = (uint64_t)(b - x->map + (len ? len - 1 : 0)) / x->psize;
    for (uint64_t pg = first; pg <= last; pg++) {
        x->used[pg / 8] |= (uint8_t)(1u << (pg % 8));
    }
    return true;
}

static _Thread_local sigjmp_buf *fault_jmp;

static void on_fault(int sig)
{
    if (fault_jmp) {
        siglongjmp(*fault_jmp, sig);
    }
    /* Not the scanning thread: put the default action back; the fault repeats and kills. */
    signal(sig, SIG_DFL);
}

/* LMDB's own assert() on a page it cannot make sense of (e.g. mdb_cursor_sibling: "IS_BRANCH")
 * would abort the process: during the scan it is damage like the signals above. */
static void on_lmdb_assert(MDB_env *env, const char *msg)
{
    (void)env;
    (void)msg;
    if (fault_jmp) {
        siglongjmp(*fault_jmp, SIGABRT);
    }
}

static int corrupt(struct mc_engine *eng, const char *table, const MDB_val *k, const char *what)
{
    char kt[160] = "";
    if (k) {
        mc_rec_key_text(k->mv_data, k->mv_size, kt, sizeof(kt));
    }
    return mc_engine_seterr(MC_ECORRUPT,
                            "%s is corrupt: %s in sub-database '%s'%s%s%s; wipe the node's data "
                            "dir so it rejoins from the cluster, or restore a backup",
                            eng->file, what, table, k ? " at key '" : "", kt, k ? "'" : "");
}

static int lmdb_corrupt(struct mc_engine *eng, const char *table, int rc)
{
    if (rc == MC_REC_BADSUM) {
        return MC_ECORRUPT;
    }
    /* Any LMDB-level failure of a read-only walk (MDB_CORRUPTED, MDB_PAGE_NOTFOUND,
       MDB_CURSOR_FULL from a page cycle, ...) means a damaged tree; errno values do not. */
    if (rc >= MDB_KEYEXIST && rc <= MDB_LAST_ERRCODE) {
        return mc_engine_seterr(MC_ECORRUPT,
                                "%s is corrupt: LMDB reports \"%s\" while walking sub-database "
                                "'%s'; wipe the node's data dir so it rejoins from the cluster, "
                                "or restore a backup",
                                eng->file, mdb_strerror(rc), table);
    }
    return mc_lmdb_err(rc, table);
}

static int keycmp(const MDB_val *a, const MDB_val *b)
{
    size_t n = a->mv_size < b->mv_size ? a->mv_size : b->mv_size;
    int c = memcmp(a->mv_data, b->mv_data, n);
    return c ? c : (a->mv_size > b->mv_size) - (a->mv_size < b->mv_size);
}

static uint64_t table_pages(const MDB_stat *st)
{
    return st->ms_branch_pages + st->ms_leaf_pages + st->ms_overflow_pages;
}

static int verify_table(struct vctx *x, MDB_dbi dbi, uint64_t *pages)
{
    const char *name = mc_dbi_name(x->eng, dbi);
    x->table = name;
    MDB_stat st;
    int rc = mdb_stat(x->txn, dbi, &st);
    if (rc) {
        return lmdb_corrupt(x->eng, name, rc);
    }
    *pages += table_pages(&st);
    MDB_cursor *c = NULL, *look = NULL;
    rc = mdb_cursor_open(x->txn, dbi, &c);
    if (!rc) {
        rc = mdb_cursor_open(x->txn, dbi, &look);
    }
    x->open_cur[0] = c;
    x->open_cur[1] = look;
    if (rc) {
        rc = mc_lmdb_err(rc, "open cursor");
        goto out;
    }
    uint8_t prev[MC_LKEY_MAX + 16];
    MDB_val pk = {0, prev}, k, v;
    uint64_t n = 0;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size == 0 || k.mv_size > sizeof(prev)) {
            rc = corrupt(x->eng, name, &k, "a key of impossible length");
            goto out;
        }
        if (n && keycmp(&pk, &k) >= 0) {
            rc = corrupt(x->eng, name, &k, "keys out of order");
            goto out;
        }
        MDB_val lk = k, lv;
        int lrc = mdb_cursor_get(look, &lk, &lv, MDB_SET_KEY);
        if (lrc || lv.mv_data != v.mv_data || lv.mv_size != v.mv_size) {
            rc = corrupt(x->eng, name, &k, "a record that a lookup from the root does not find");
            goto out;
        }
        if (!mark_pages(x, k.mv_data, k.mv_size) || !mark_pages(x, v.mv_data, v.mv_size)) {
            rc = corrupt(
                x->eng, name, &k,
                "a record on a page with a wrong header or outside the used part of the file");
            goto out;
        }
        x->r->bytes += k.mv_size + v.mv_size;
        if (mc_rec_check(x->eng->file, name, &k, &v)) {
            rc = MC_ECORRUPT;
            goto out;
        }
        memcpy(prev, k.mv_data, k.mv_size);
        pk.mv_size = k.mv_size;
        n++;
        if (++x->r->records % PROGRESS_EVERY == 0 && x->r->progress) {
            x->r->progress(x->r->progress_ctx, x->r->records, x->total);
        }
    }
    if (rc != MDB_NOTFOUND) {
        rc = lmdb_corrupt(x->eng, name, rc);
        goto out;
    }
    rc = 0;
    if (n != st.ms_entries) {
        char what[96];
        snprintf(what, sizeof(what), "%llu records found where LMDB counts %llu",
                 (unsigned long long)n, (unsigned long long)st.ms_entries);
        rc = corrupt(x->eng, name, NULL, what);
    }
out:
    if (look) {
        mdb_cursor_close(look);
    }
    if (c) {
        mdb_cursor_close(c);
    }
    x->open_cur[0] = x->open_cur[1] = NULL;
    return rc;
}

/* Pages on the free list (FREE_DBI = 0: key txn id, value a count then that many page numbers). */
static int free_pages(struct vctx *x, uint64_t last_pgno, uint64_t *pages)
{
    x->table = "free list";
    MDB_stat st;
    int rc = mdb_stat(x->txn, 0, &st);
    if (rc) {
        return lmdb_corrupt(x->eng, "free list", rc);
    }
    *pages += table_pages(&st);
    MDB_cursor *c;
    rc = mdb_cursor_open(x->txn, 0, &c);
    if (rc) {
        return mc_lmdb_err(rc, "open free-list cursor");
    }
    x->open_cur[0] = c;
    MDB_val k, v;
    for (rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        const size_t *ids = v.mv_data; /* MDB_IDL: ids[0] = count */
        if (v.mv_size < sizeof(size_t) || v.mv_size % sizeof(size_t) ||
            ids[0] != v.mv_size / sizeof(size_t) - 1) {
            mdb_cursor_close(c);
            x->open_cur[0] = NULL;
            return corrupt(x->eng, "free list", NULL, "a malformed free-list record");
        }
        for (size_t i = 1; i <= ids[0]; i++) {
            const char *bad = NULL;
            if (ids[i] < NUM_METAS || ids[i] > last_pgno) {
                bad = "a free page number out of range";
            } else if (x->used[ids[i] / 8] & (1u << (ids[i] % 8))) {
                bad = "a page both in use (or listed twice) and free";
            }
            if (bad) {
                mdb_cursor_close(c);
                x->open_cur[0] = NULL;
                return corrupt(x->eng, "free list", NULL, bad);
            }
            x->used[ids[i] / 8] |= (uint8_t)(1u << (ids[i] % 8));
        }
        *pages += ids[0];
    }
    mdb_cursor_close(c);
    x->open_cur[0] = NULL;
    return rc == MDB_NOTFOUND ? 0 : lmdb_corrupt(x->eng, "free list", rc);
}

/* The walks, with SIGSEGV/SIGBUS turned into MC_ECORRUPT (see the top comment). */
static int walk_guarded(struct vctx *x, const MDB_dbi *dbis, size_t nd, uint64_t last_pgno,
                        uint64_t *pages)
{
    sigjmp_buf jb;
    struct sigaction sa, old_segv, old_bus;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_fault;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
    sigaction(SIGBUS, &sa, &old_bus);
    volatile int rc = 0;
    int sig = sigsetjmp(jb, 1);
    if (sig == 0) {
        fault_jmp = &jb;
        mdb_env_set_assert(x->eng->env, on_lmdb_assert);
        for (size_t i = 0; i < nd && !rc; i++) {
            rc = verify_table(x, dbis[i], pages);
        }
        if (!rc) {
            rc = free_pages(x, last_pgno, pages);
        }
    } else {
        char what[96];
        if (sig == SIGABRT) {
            snprintf(what, sizeof(what), "a damaged page (an LMDB page assertion failed)");
        } else {
            snprintf(what, sizeof(what), "a damaged page (LMDB read outside the file: signal %d)",
                     sig);
        }
        rc = corrupt(x->eng, x->table ? x->table : "?", NULL, what);
        for (int i = 0; i < 2; i++) {
            if (x->open_cur[i]) {
                mdb_cursor_close(x->open_cur[i]);
                x->open_cur[i] = NULL;
            }
        }
    }
    fault_jmp = NULL;
    mdb_env_set_assert(x->eng->env, NULL);
    sigaction(SIGSEGV, &old_segv, NULL);
    sigaction(SIGBUS, &old_bus, NULL);
    return rc;
}

int mc_engine_verify(struct mc_engine *eng, struct mc_engine_verify_report *report)
{
    struct mc_engine_verify_report dummy = {0};
    struct mc_engine_verify_report *r = report ? report : &dummy;
    r->records = r->bytes = r->pages = r->elapsed_ns = 0;
    uint64_t t0 = mc_mono_ns();
    /* No apply while we scan: the read txn then sees the latest meta page, whose last page
       number (mdb_env_info) is what the page accounting compares with. */
    pthread_mutex_lock(&eng->write_lock);
    struct mc_rtxn *rt;
    int rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        pthread_mutex_unlock(&eng->write_lock);
        return rc;
    }
    struct vctx x = {.eng = eng, .txn = rt->txn, .r = r};
    MDB_dbi dbis[] = {eng->meta,    eng->buckets,  eng->versions, eng->vids,
                      eng->objects, eng->sessions, eng->sexp};
    size_t nd = sizeof(dbis) / sizeof(dbis[0]);
    for (size_t i = 0; i < nd && !rc; i++) {
        MDB_stat st;
        rc = mdb_stat(rt->txn, dbis[i], &st);
        if (rc) {
            rc = lmdb_corrupt(eng, mc_dbi_name(eng, dbis[i]), rc);
        } else {
            x.total += st.ms_entries;
        }
    }
    MDB_envinfo info;
    MDB_stat est, mst;
    mdb_env_info(eng->env, &info);
    mdb_env_stat(eng->env, &est);
    r->page_bytes = est.ms_psize;
    uint64_t pages = NUM_METAS;
    /* The main table holds one record per sub-database; its pages count too. */
    if (!rc && (rc = mdb_stat(rt->txn, 1, &mst)) != 0) {
        rc = lmdb_corrupt(eng, "main", rc);
    } else if (!rc) {
        pages += table_pages(&mst);
    }
    uint64_t last_pgno = info.me_last_pgno;
    x.psize = est.ms_psize;
    x.n_pages = last_pgno + 1;
    x.used = rc ? NULL : calloc((size_t)(x.n_pages / 8 + 1), 1);
    if (!rc && !x.used) {
        rc = MC_ENOMEM;
    }
    if (!rc) {
        rc = walk_guarded(&x, dbis, nd, last_pgno, &pages);
    }
    free(x.used);
    if (!rc && pages != last_pgno + 1) {
        char what[128];
        snprintf(what, sizeof(what), "%llu pages accounted for where the file uses %llu",
                 (unsigned long long)pages, (unsigned long long)last_pgno + 1);
        rc = corrupt(eng, "free list", NULL, what);
    }
    mc_rtxn_put(eng, rt);
    pthread_mutex_unlock(&eng->write_lock);
    r->pages = pages;
    r->elapsed_ns = mc_mono_ns() - t0;
    if (r->progress) {
        r->progress(r->progress_ctx, r->records, x.total);
    }
    return rc;
}
