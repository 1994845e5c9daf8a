/* apply.c: applies op batches at a log index in one LMDB write txn (state + applied_index +
 * sessions). */
#include "engine/internal.h"
#include "util/clock.h"
#include "util/log.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * Determinism (Raft paper §5.3/§8): every replica applies the same ops at the
 * same index and must reach the same bytes. So nothing here reads a clock or a
 * random source: times come from the ops, version ordering from the index.
 * Each op validates everything before its first write, so a failing op leaves
 * no trace; an LMDB failure aborts the whole call (ctx.fatal).
 */

void mc_result_write(const struct mc_op_result *res, struct mc_wbuf *w);
void mc_result_read(struct mc_rbuf *r, struct mc_op_result *res);

struct actx {
    struct mc_engine *eng;
    MDB_txn *txn;
    uint64_t index;
    uint32_t counter; /* versions written in this call: seq = index << 16 | counter */
    int fatal;        /* LMDB failure: abort the call */
    bool map_full;
    int registers;    /* SESSION_REGISTERs in this call */
    int64_t clock_ns; /* session clock for this call */
    struct mc_wbuf w; /* scratch encoder */
    MDB_cursor *vcur; /* versions cursor for latest lookups (closed by commit/abort) */
    MDB_cursor *scur; /* sessions cursor for drop_results (likewise: one open per call) */
    struct mc_bucket_info bcache; /* the last bucket load_bucket found (a batch of puts mostly
                                     names one bucket); valid while bcache_ok */
    bool bcache_ok;
    struct scache *sc; /* session records read/written by this call (see session_get) */
    /* Atomic batches without nested txns (MDB_WRITEMAP forbids them): when a sub-op
       fails, the whole call restarts with that op's result forced (not re-applied). */
    struct mc_op_result *forced; /* per top-level op, valid where is_forced[i] */
    bool *is_forced;
    size_t cur; /* index of the top-level op being applied */
    bool atomic_failed;
};

static int lmdb_fail(struct actx *a, int rc, const char *what)
{
    if (rc == MDB_MAP_FULL) {
        a->map_full = true;
    }
    a->fatal = mc_lmdb_err(rc, what);
    return a->fatal;
}

/* A reused cursor on versions (opening one per lookup mallocs); NULL: callee opens its own. */
static MDB_cursor *vcursor(struct actx *a)
{
    if (!a->vcur && mdb_cursor_open(a->txn, a->eng->versions, &a->vcur)) {
        a->vcur = NULL;
    }
    return a->vcur;
}

static int put(struct actx *a, MDB_dbi dbi, const void *k, size_t kl, const void *v, size_t vl)
{
    int rc = mc_rec_put(a->eng, a->txn, dbi, k, kl, v, vl);
    return rc ? lmdb_fail(a, rc, "write") : 0;
}

/* put() through a positioned cursor: LMDB searches the cursor's leaf page first. */
static int cput(struct actx *a, MDB_cursor *c, const void *k, size_t kl, const void *v, size_t vl,
                unsigned flags)
{
    int rc = mc_rec_cput(c, k, kl, v, vl, flags);
    return rc ? lmdb_fail(a, rc, "write") : 0;
}

static int del(struct actx *a, MDB_dbi dbi, const void *k, size_t kl)
{
    MDB_val key = {kl, (void *)k};
    int rc = mdb_del(a->txn, dbi, &key, NULL);
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    return rc ? lmdb_fail(a, rc, "delete") : 0;
}

/* ---- version rows ---- */

/*
 * with_vid: write the version-id index entry. Null versions in unversioned
 * buckets skip it (the only version of a key there, found as the latest or,
 * after versioning is enabled, as the oldest: see mc_find_version): this saves
 * one B-tree write per put in the common case.
 */
static int write_version_at(struct actx *a, const struct mc_version *v, bool with_vid,
                            MDB_cursor *near, unsigned flags)
{
    struct mc_lkey lk;
    size_t kl = strlen(v->key);
    mc_wbuf_reset(&a->w);
    int rc = mc_version_encode(v, &a->w);
    if (rc) {
        return rc;
    }
    mc_lkey_version(&lk, v->bucket, v->key, kl, v->seq);
    if (near ? cput(a, near, lk.b, lk.len, a->w.data, a->w.len, flags)
             : put(a, a->eng->versions, lk.b, lk.len, a->w.data, a->w.len)) {
        return a->fatal;
    }
    if (!with_vid) {
        return 0;
    }
    uint8_t seqbe[8];
    mc_put_u64be(seqbe, v->seq);
    mc_lkey_vid(&lk, v->bucket, v->key, kl, v->version_id);
    return put(a, a->eng->vids, lk.b, lk.len, seqbe, 8);
}

/* near: a versions cursor positioned next to where v goes (NULL: search from the root); flags:
 * MDB_CURRENT when near sits on v's own row (an overwrite in place). */
static int write_version(struct actx *a, const struct mc_version *v, bool with_vid)
{
    return write_version_at(a, v, with_vid, NULL, 0);
}

static int remove_version(struct actx *a, const struct mc_version *v, bool with_vid)
{
    struct mc_lkey lk;
    size_t kl = strlen(v->key);
    mc_lkey_version(&lk, v->bucket, v->key, kl, v->seq);
    if (del(a, a->eng->versions, lk.b, lk.len)) {
        return a->fatal;
    }
    if (!with_vid) {
        return 0;
    }
    mc_lkey_vid(&lk, v->bucket, v->key, kl, v->version_id);
    return del(a, a->eng->vids, lk.b, lk.len);
}

/* objects index: present iff the latest version is live. */
static int set_objects(struct actx *a, const char *bucket, const char *key, bool live, uint64_t seq)
{
    struct mc_lkey lk;
    size_t kl = strlen(key);
    mc_lkey_object(&lk, bucket, key, kl);
    if (!live) {
        return del(a, a->eng->objects, lk.b, lk.len);
    }
    uint8_t val[8 + MC_KEY_MAX_BYTES];
    mc_put_u64be(val, seq);
    size_t vl = 8;
    if (kl > MC_SORT_DIRECT) {
        memcpy(val + 8, key, kl);
        vl += kl;
    }
    return put(a, a->eng->objects, lk.b, lk.len, val, vl);
}

/*
 * The latest version's head (no decode, no allocation): *h filled; 0 /
 * MC_ENOKEY (absent) / fatal. h's pointers are into the map: use them before
 * the next write.
 */
static int latest_head(struct actx *a, const char *bucket, const char *key, struct mc_vrec_scan *h)
{
    MDB_cursor *c = vcursor(a);
    if (!c) {
        return a->fatal = mc_engine_seterr(MC_ENOMEM, "cannot open a cursor");
    }
    MDB_val v;
    int rc = mc_find_latest_raw(a->eng, c, bucket, key, strlen(key), &v, h);
    if (rc && rc != MC_ENOKEY) {
        a->fatal = rc;
    }
    return rc;
}

static int refresh_objects(struct actx *a, const char *bucket, const char *key)
{
    struct mc_vrec_scan h;
    int rc = latest_head(a, bucket, key, &h);
    if (a->fatal) {
        return a->fatal;
    }
    bool live = rc == 0 && !h.is_delete_marker;
    return set_objects(a, bucket, key, live, h.seq);
}

/* ---- op handlers: return 0 or an op error (a->fatal set for LMDB failures) ---- */

static int op_bucket_create(struct actx *a, const struct mc_op *op)
{
    int rc = mc_validate_bucket_name(op->bucket);
    if (rc) {
        return rc;
    }
    if ((unsigned)op->versioning > MC_VERSIONING_SUSPENDED) {
        return MC_EINVAL;
    }
    rc = mc_bucket_load(a->eng, a->txn, op->bucket, NULL);
    if (rc == 0) {
        return MC_EBUCKETEXISTS;
    }
    if (rc != MC_ENOBUCKET) {
        return a->fatal = rc;
    }
    uint8_t rec[9];
    rec[0] = (uint8_t)op->versioning;
    mc_put_u64le(rec + 1, (uint64_t)op->time_ns);
    return put(a, a->eng->buckets, op->bucket, strlen(op->bucket), rec, sizeof(rec));
}

/* Bucket deletion and versioning changes drop the cached bucket (apply_plain); creation cannot
 * make it stale (only existing buckets are cached). */
static int load_bucket(struct actx *a, const char *name, struct mc_bucket_info *b)
{
    if (a->bcache_ok && !strcmp(a->bcache.name, name)) {
        if (b) {
            *b = a->bcache;
        }
        return 0;
    }
    struct mc_bucket_info info;
    int rc = mc_bucket_load(a->eng, a->txn, name, &info);
    if (rc && rc != MC_ENOBUCKET) {
        a->fatal = rc;
    }
    if (rc == 0) {
        a->bcache = info;
        a->bcache_ok = true;
        if (b) {
            *b = info;
        }
    }
    return rc;
}

static int op_bucket_delete(struct actx *a, const struct mc_op *op)
{
    int rc = load_bucket(a, op->bucket, NULL);
    if (rc) {
        return rc;
    }
    /* Any version (markers included) under "bucket\0" keeps the bucket. */
    size_t bl = strlen(op->bucket);
    uint8_t pfx[MC_BUCKET_NAME_MAX + 1];
    memcpy(pfx, op->bucket, bl);
    pfx[bl] = 0;
    MDB_cursor *c;
    int mrc = mdb_cursor_open(a->txn, a->eng->versions, &c);
    if (mrc) {
        return lmdb_fail(a, mrc, "open cursor");
    }
    MDB_val k = {bl + 1, pfx}, v;
    mrc = mc_rec_cget(a->eng, c, &k, &v, MDB_SET_RANGE);
    bool empty =
        mrc == MDB_NOTFOUND || (mrc == 0 && (k.mv_size < bl + 1 || memcmp(k.mv_data, pfx, bl + 1)));
    mdb_cursor_close(c);
    if (mrc && mrc != MDB_NOTFOUND) {
        return lmdb_fail(a, mrc, "seek");
    }
    if (!empty) {
        return MC_EBUCKETNOTEMPTY;
    }
    return del(a, a->eng->buckets, op->bucket, bl);
}

static int op_bucket_versioning(struct actx *a, const struct mc_op *op)
{
    struct mc_bucket_info b;
    int rc = load_bucket(a, op->bucket, &b);
    if (rc) {
        return rc;
    }
    if (op->versioning != MC_VERSIONING_ENABLED && op->versioning != MC_VERSIONING_SUSPENDED) {
        return MC_EBADSTATE; /* never back to unversioned (S3) */
    }
    uint8_t rec[9];
    rec[0] = (uint8_t)op->versioning;
    mc_put_u64le(rec + 1, (uint64_t)b.created_ns);
    return put(a, a->eng->buckets, op->bucket, strlen(op->bucket), rec, sizeof(rec));
}

static int check_key(const char *key)
{
    return mc_validate_key(key, key ? strlen(key) : 0);
}

/* Remove the "null" version of key if present. */
static int remove_null(struct actx *a, const char *bucket, const char *key, bool *removed_dm)
{
    struct mc_version nv;
    int rc = mc_find_version(a->eng, a->txn, bucket, key, "null", false, &nv);
    if (rc == MC_ENOVERSION) {
        return 0;
    }
    if (rc) {
        return a->fatal = rc;
    }
    if (removed_dm) {
        *removed_dm = nv.is_delete_marker;
    }
    rc = remove_version(a, &nv, true);
    mc_version_clear(&nv);
    return rc;
}

/* res->version_id = vid (snprintf's format parsing was 4% of a put). */
static void set_result_vid(struct mc_op_result *res, const char *vid)
{
    size_t n = strnlen(vid, MC_VERSION_ID_MAX);
    memcpy(res->version_id, vid, n);
    res->version_id[n] = 0;
}

static uint64_t next_seq(struct actx *a)
{
    assert(a->counter < 0xFFFF);
    return a->index << 16 | a->counter++;
}

static int op_put(struct actx *a, const struct mc_op *op, struct mc_op_result *res)
{
    struct mc_bucket_info b;
    int rc = load_bucket(a, op->bucket, &b);
    if (rc) {
        return rc;
    }
    if ((rc = check_key(op->key)) || (rc = mc_validate_object_meta(&op->meta))) {
        return rc;
    }
    const char *vid = "null";
    if (b.versioning == MC_VERSIONING_ENABLED) {
        if (mc_validate_version_id(op->new_version_id) || !strcmp(op->new_version_id, "null")) {
            return MC_EINVAL;
        }
        vid = op->new_version_id;
    }
    struct mc_vrec_scan cur;
    rc = latest_head(a, op->bucket, op->key, &cur);
    if (a->fatal) {
        return a->fatal;
    }
    bool exists = rc == 0;
    bool live = exists && !cur.is_delete_marker;
    /* S3 conditional writes: If-Match with no current version, or a delete marker as the
     * current one, is 404 NoSuchKey; an etag mismatch is 412. */
    if (op->if_match && !live) {
        return mc_engine_seterr(MC_ENOKEY, "If-Match: the key has no current version");
    }
    if (op->if_match && (cur.etag_len != strlen(op->if_match) ||
                         memcmp(cur.etag ? cur.etag : "", op->if_match, cur.etag_len))) {
        return MC_EPRECOND;
    }
    if (op->if_none_match_star && live) {
        return MC_EPRECOND;
    }
    /*
     * Unversioned: the latest is the key's only version, the null one: replace it, through the
     * versions cursor latest_head left on it (no second descent from the root). A live one
     * (the common overwrite) is replaced in place and keeps its seq: its row key (bucket, key,
     * ~seq) stays, so MDB_CURRENT rewrites it, and the objects index entry (key -> seq) stays
     * valid and needs no write at all. seq only orders versions within a key; this key has
     * one, and any later version (versioning enabled) is made at a higher index. A delete
     * marker (not made in unversioned buckets; handled anyway) is deleted there and the new
     * row inserted beside it (it sorts just before: ~seq), on the same leaf page.
     */
    MDB_cursor *near = NULL;
    bool in_place = false;
    if (b.versioning == MC_VERSIONING_UNVERSIONED && exists) {
        near = a->vcur;
        in_place = live;
        int mrc = in_place ? 0 : mdb_cursor_del(a->vcur, 0);
        if (mrc) {
            return lmdb_fail(a, mrc, "delete");
        }
    }
    if (b.versioning == MC_VERSIONING_ENABLED) {
        struct mc_version dup;
        rc = mc_find_version(a->eng, a->txn, op->bucket, op->key, vid, false, &dup);
        mc_version_clear(&dup);
        if (rc == 0) {
            return MC_EEXIST; /* the leader must pick unique version ids */
        }
        if (rc != MC_ENOVERSION) {
            return a->fatal = rc;
        }
    } else if (b.versioning == MC_VERSIONING_SUSPENDED &&
               remove_null(a, op->bucket, op->key, NULL)) {
        return a->fatal;
    }
    struct mc_version v = {0};
    memcpy(v.bucket, op->bucket, sizeof(v.bucket));
    v.key = op->key;
    v.version_id = (char *)vid;
    v.mod_time_ns = op->time_ns;
    v.seq = in_place ? cur.seq : next_seq(a);
    v.meta = op->meta;
    bool with_vid = b.versioning != MC_VERSIONING_UNVERSIONED;
    if (write_version_at(a, &v, with_vid, near, in_place ? MDB_CURRENT : 0) ||
        (!in_place && set_objects(a, op->bucket, op->key, true, v.seq))) {
        return a->fatal;
    }
    set_result_vid(res, vid);
    return 0;
}

static int op_delete(struct actx *a, const struct mc_op *op, struct mc_op_result *res)
{
    struct mc_bucket_info b;
    int rc = load_bucket(a, op->bucket, &b);
    if (rc) {
        return rc;
    }
    if ((rc = check_key(op->key))) {
        return rc;
    }
    if (op->version_id) {
        /* Permanent removal of one version; the next newest (if any) becomes latest. */
        if (mc_validate_version_id(op->version_id)) {
            return MC_EINVAL; /* S3: 400 InvalidArgument "Invalid version id specified" */
        }
        struct mc_version v;
        rc = mc_find_version(a->eng, a->txn, op->bucket, op->key, op->version_id, false, &v);
        if (rc == MC_ENOVERSION) {
            /* S3 DeleteObject with a versionId that does not exist answers 204: idempotent,
               nothing changes (a retried permanent delete must not fail either). The id is
               echoed, as S3 echoes x-amz-version-id; delete_marker stays false. */
            set_result_vid(res, op->version_id);
            return 0;
        }
        if (rc) {
            return a->fatal = rc;
        }
        res->delete_marker = v.is_delete_marker;
        set_result_vid(res, mc_s(v.version_id));
        rc = remove_version(a, &v, true);
        mc_version_clear(&v);
        return rc ? rc : refresh_objects(a, op->bucket, op->key);
    }
    if (b.versioning == MC_VERSIONING_UNVERSIONED) {
        /* S3: deleting a missing key succeeds (204). */
        if (remove_null(a, op->bucket, op->key, NULL)) {
            return a->fatal;
        }
        return refresh_objects(a, op->bucket, op->key);
    }
    const char *vid = "null";
    if (b.versioning == MC_VERSIONING_ENABLED) {
        if (mc_validate_version_id(op->new_version_id) || !strcmp(op->new_version_id, "null")) {
            return MC_EINVAL;
        }
        vid = op->new_version_id;
        struct mc_version dup;
        rc = mc_find_version(a->eng, a->txn, op->bucket, op->key, vid, false, &dup);
        mc_version_clear(&dup);
        if (rc == 0) {
            return MC_EEXIST;
        }
        if (rc != MC_ENOVERSION) {
            return a->fatal = rc;
        }
    } else if (remove_null(a, op->bucket, op->key, NULL)) {
        /* Suspended: the marker takes the "null" id, replacing any null version. */
        return a->fatal;
    }
    struct mc_version dm = {0};
    memcpy(dm.bucket, op->bucket, sizeof(dm.bucket));
    dm.key = op->key;
    dm.version_id = (char *)vid;
    dm.is_delete_marker = true;
    dm.mod_time_ns = op->time_ns;
    dm.seq = next_seq(a);
    if (write_version(a, &dm, true) || set_objects(a, op->bucket, op->key, false, 0)) {
        return a->fatal;
    }
    res->delete_marker = true;
    set_result_vid(res, vid);
    return 0;
}

static int op_update_meta(struct actx *a, const struct mc_op *op, struct mc_op_result *res)
{
    int rc = load_bucket(a, op->bucket, NULL);
    if (rc) {
        return rc;
    }
    if ((rc = check_key(op->key))) {
        return rc;
    }
    if (op->update_mask &
        ~(MC_UPDATE_USER_META | MC_UPDATE_CONTENT_TYPE | MC_UPDATE_STORAGE_CLASS)) {
        return MC_EINVAL;
    }
    struct mc_version v;
    if (op->version_id) {
        rc = mc_find_version(a->eng, a->txn, op->bucket, op->key, op->version_id, true, &v);
        if (rc && rc != MC_ENOVERSION) {
            return a->fatal = rc;
        }
    } else {
        rc = mc_find_latest(a->eng, a->txn, vcursor(a), op->bucket, op->key, true, &v, NULL);
        if (rc && rc != MC_ENOKEY) {
            return a->fatal = rc;
        }
    }
    if (rc) {
        return rc;
    }
    if (v.is_delete_marker) {
        mc_version_clear(&v);
        return op->version_id ? MC_EBADSTATE : MC_ENOKEY;
    }
    /* Build the new content: swap in the requested fields (ownership moves, then restored). */
    struct mc_object_meta saved = v.meta;
    struct mc_object_meta nm = v.meta;
    if (op->update_mask & MC_UPDATE_USER_META) {
        nm.user_meta = op->meta.user_meta;
        nm.n_user_meta = op->meta.n_user_meta;
    }
    if (op->update_mask & MC_UPDATE_CONTENT_TYPE) {
        nm.content_type = op->meta.content_type;
    }
    if (op->update_mask & MC_UPDATE_STORAGE_CLASS) {
        nm.storage_class = op->meta.storage_class;
    }
    rc = mc_validate_object_meta(&nm);
    if (!rc) {
        v.meta = nm;
        v.is_latest = false;
        rc = write_version(a, &v, false); /* same seq and id: indexes unchanged */
        set_result_vid(res, mc_s(v.version_id));
    }
    v.meta = saved;
    mc_version_clear(&v);
    return rc;
}

static int apply_plain(struct actx *a, const struct mc_op *op, struct mc_op_result *res);

static int op_atomic(struct actx *a, const struct mc_op *op, struct mc_op_result *res)
{
    if (op->n_sub > MC_ATOMIC_MAX_OPS) {
        return MC_EINVAL;
    }
    for (uint32_t i = 0; i < op->n_sub; i++) {
        struct mc_op_result sr = {.failed_op = -1};
        const struct mc_op *s = &op->sub[i];
        int rc;
        if (s->type == MC_OP_ATOMIC || s->type == MC_OP_SESSION_REGISTER || s->session_id) {
            rc = MC_EINVAL;
        } else {
            rc = apply_plain(a, s, &sr);
        }
        if (a->fatal) {
            return a->fatal;
        }
        if (rc) {
            /* Earlier sub-ops already wrote: the caller restarts the whole call. */
            res->failed_op = (int32_t)i;
            res->version_id[0] = 0;
            a->atomic_failed = true;
            return rc;
        }
        if (i == 0) {
            memcpy(res->version_id, sr.version_id, sizeof(res->version_id));
        }
    }
    return 0;
}

static int apply_plain(struct actx *a, const struct mc_op *op, struct mc_op_result *res)
{
    int rc;
    switch (op->type) {
    case MC_OP_NOOP:
        return 0;
    case MC_OP_BUCKET_CREATE:
        return op_bucket_create(a, op);
    case MC_OP_BUCKET_DELETE:
        rc = op_bucket_delete(a, op); /* loads (caches) the bucket, then deletes it */
        a->bcache_ok = false;
        return rc;
    case MC_OP_BUCKET_VERSIONING:
        rc = op_bucket_versioning(a, op);
        a->bcache_ok = false;
        return rc;
    case MC_OP_PUT:
        return op_put(a, op, res);
    case MC_OP_DELETE:
        return op_delete(a, op, res);
    case MC_OP_UPDATE_META:
        return op_update_meta(a, op, res);
    case MC_OP_ATOMIC:
        return op_atomic(a, op, res);
    case MC_OP_SESSION_REGISTER:
        break;
    }
    return MC_EINVAL;
}

/* ---- sessions (DESIGN.md §2.3; Raft thesis §6.3) ---- */

/*
 * The sessions sub-db holds two kinds of rows, ordered so a session's results
 * follow its record:
 *   be64(id)            → session record: i64 last_active_ns, u64 acked_seq, u32 n_results
 *   be64(id) be64(seq)  → the result of seq (only seq > acked_seq, at most
 *                         MC_SESSION_RESULTS_KEPT of them)
 * Results are kept per seq, not as a "last seq" window, because a pipelined
 * client's retry of seq 5 may arrive after seq 6 applied (5 died with a leader):
 * 5 must then apply. A seq is "done" only once the client says it has the reply
 * (acked_seq, thesis §6.3: "the client includes the lowest sequence number for
 * which it has not yet received a response"); only then is its result dropped.
 */
#define SESSION_REC_LEN 20

struct session {
    uint64_t id;
    int64_t last_active_ns;
    uint64_t acked_seq; /* every seq ≤ this has been answered: results dropped */
    uint32_t n;         /* cached results (all for seqs > acked_seq) */
};

static void result_key(uint8_t kb[16], uint64_t id, uint64_t seq)
{
    mc_put_u64be(kb, id);
    mc_put_u64be(kb + 8, seq);
}

static int mc_session_record_decode(const void *data, size_t len, int64_t *last_active,
                                    uint64_t *acked, uint32_t *n)
{
    if (len != SESSION_REC_LEN) {
        return MC_ECORRUPT;
    }
    struct mc_rbuf r;
    mc_rbuf_init(&r, data, len);
    *last_active = mc_rbuf_i64(&r);
    *acked = mc_rbuf_u64(&r);
    *n = mc_rbuf_u32(&r);
    return r.err || *n > MC_SESSION_RESULTS_KEPT ? MC_ECORRUPT : 0;
}

static void mc_session_record_encode(uint8_t out[20], int64_t last_active, uint64_t acked,
                                     uint32_t n)
{
    mc_put_u64le(out, (uint64_t)last_active);
    mc_put_u64le(out + 8, acked);
    mc_put_u32le(out + 16, n);
}

static int session_load(struct actx *a, uint64_t id, struct session *s)
{
    uint8_t kb[8];
    mc_put_u64be(kb, id);
    MDB_val k = {8, kb}, v;
    int rc = mc_rec_get(a->eng, a->txn, a->eng->sessions, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return MC_ENOSESSION;
    }
    if (rc) {
        return lmdb_fail(a, rc, "read session");
    }
    s->id = id;
    if (mc_session_record_decode(v.mv_data, v.mv_size, &s->last_active_ns, &s->acked_seq, &s->n)) {
        return a->fatal = mc_engine_seterr(MC_ECORRUPT, "session %llu record is corrupt",
                                           (unsigned long long)id);
    }
    return 0;
}

static void sexp_key(uint8_t kb[16], int64_t t, uint64_t id)
{
    mc_put_u64be(kb, (uint64_t)t);
    mc_put_u64be(kb + 8, id);
}

/* Write s (old_active: its previous last_active for the expiry index, or -1 when new). */
static int session_store(struct actx *a, const struct session *s, int64_t old_active)
{
    uint8_t kb[16];
    if (old_active != s->last_active_ns) {
        if (old_active >= 0) {
            sexp_key(kb, old_active, s->id);
            if (del(a, a->eng->sexp, kb, 16)) {
                return a->fatal;
            }
        }
        sexp_key(kb, s->last_active_ns, s->id);
        if (put(a, a->eng->sexp, kb, 16, "", 0)) {
            return a->fatal;
        }
    }
    uint8_t rec[SESSION_REC_LEN];
    mc_session_record_encode(rec, s->last_active_ns, s->acked_seq, s->n);
    mc_put_u64be(kb, s->id);
    return put(a, a->eng->sessions, kb, 8, rec, sizeof(rec));
}

/*
 * Per-call session cache: a batch holds several ops of each client session, and every one
 * read and rewrote the session record (two B-tree operations on the sessions sub-db per op).
 * Records are read once per call and written once, by scache_flush before the commit, with the
 * expiry index moved from the stored last_active: the committed state is the one the per-op
 * writes gave. Bounded: sessions beyond SCACHE_MAX in one call go straight to LMDB.
 */
#define SCACHE_MAX 128

struct scache {
    struct {
        struct session s;
        int64_t stored_active; /* last_active_ns as stored in LMDB (the sexp key to move) */
        bool dirty;
    } e[SCACHE_MAX];
    uint32_t n;
};

static int scache_find(const struct scache *sc, uint64_t id)
{
    for (uint32_t i = 0; sc && i < sc->n; i++) {
        if (sc->e[i].s.id == id) {
            return (int)i;
        }
    }
    return -1;
}

static int session_get(struct actx *a, uint64_t id, struct session *s)
{
    int i = scache_find(a->sc, id);
    if (i >= 0) {
        *s = a->sc->e[i].s;
        return 0;
    }
    int rc = session_load(a, id, s);
    if (rc == 0 && a->sc && a->sc->n < SCACHE_MAX) {
        uint32_t k = a->sc->n++;
        a->sc->e[k].s = *s;
        a->sc->e[k].stored_active = s->last_active_ns;
        a->sc->e[k].dirty = false;
    }
    return rc;
}

/* old_active: s's last_active when session_get returned it. */
static int session_put(struct actx *a, const struct session *s, int64_t old_active)
{
    int i = scache_find(a->sc, s->id);
    if (i < 0) {
        return session_store(a, s, old_active);
    }
    a->sc->e[i].s = *s;
    a->sc->e[i].dirty = true;
    return 0;
}

static int scache_flush(struct actx *a)
{
    for (uint32_t i = 0; a->sc && i < a->sc->n && !a->fatal; i++) {
        if (a->sc->e[i].dirty) {
            session_store(a, &a->sc->e[i].s, a->sc->e[i].stored_active);
        }
    }
    return a->fatal;
}

/* Delete the result rows of session id with seq ≤ upto (all when upto = UINT64_MAX); *n_out
 * (may be NULL) is decremented per row removed, *n_dropped incremented. Results sort by seq, so
 * this costs O(removed). */
static int drop_results(struct actx *a, uint64_t id, uint64_t upto, uint32_t *n_out,
                        uint32_t *n_dropped)
{
    int rc = a->scur ? 0 : mdb_cursor_open(a->txn, a->eng->sessions, &a->scur);
    if (rc) {
        a->scur = NULL;
        return lmdb_fail(a, rc, "open cursor");
    }
    MDB_cursor *c = a->scur;
    uint8_t kb[16];
    result_key(kb, id, 0);
    MDB_val k, v;
    /* Seek again after each delete: a cursor whose delete emptied the tree is unpositioned. */
    for (;;) {
        k.mv_size = 16;
        k.mv_data = kb;
        rc = mc_rec_cget(a->eng, c, &k, &v, MDB_SET_RANGE);
        if (rc) {
            break;
        }
        if (k.mv_size != 16 || mc_get_u64be(k.mv_data) != id ||
            mc_get_u64be((const uint8_t *)k.mv_data + 8) > upto) {
            break;
        }
        rc = mdb_cursor_del(c, 0);
        if (rc) {
            break;
        }
        if (n_out && *n_out) {
            (*n_out)--;
        }
        if (n_dropped) {
            (*n_dropped)++;
        }
    }
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : lmdb_fail(a, rc, "drop session results");
}

/* Whether s is past the TTL at this call's clock: expired, removed or not yet. */
static bool session_expired(const struct actx *a, int64_t last_active_ns)
{
    return a->clock_ns - last_active_ns > (int64_t)a->eng->session_ttl_ns;
}

/*
 * Remove sessions idle longer than the TTL, oldest first (cheap: the sexp index is ordered): at
 * most MC_SESSION_EXPIRE_PER_APPLY of them, and none more once MC_SESSION_EXPIRE_RESULTS_PER_APPLY
 * of their results are gone; the rest go in the next calls. One call removing every expired
 * session stalled every replica for seconds after a register flood (aud18 R5). Deterministic:
 * replicas do the same removals at the same index (the same clock, the same order), and an
 * expired session not removed yet answers as a removed one (apply_top), so results do not depend
 * on how far the removal has got.
 */
static int expire_sessions(struct actx *a)
{
    MDB_cursor *c;
    int rc = mdb_cursor_open(a->txn, a->eng->sexp, &c);
    if (rc) {
        return lmdb_fail(a, rc, "open cursor");
    }
    MDB_val k, v;
    uint32_t sessions = 0, results = 0;
    for (rc = mc_rec_cget(a->eng, c, &k, &v, MDB_FIRST); rc == 0;
         rc = mc_rec_cget(a->eng, c, &k, &v, MDB_FIRST)) {
        if (sessions >= MC_SESSION_EXPIRE_PER_APPLY ||
            results >= MC_SESSION_EXPIRE_RESULTS_PER_APPLY) {
            break;
        }
        if (k.mv_size != 16) {
            rc = MDB_CORRUPTED;
            break;
        }
        if (!session_expired(a, (int64_t)mc_get_u64be(k.mv_data))) {
            break;
        }
        uint8_t id[8];
        memcpy(id, (const uint8_t *)k.mv_data + 8, 8);
        rc = mdb_cursor_del(c, 0);
        if (rc) {
            break;
        }
        MDB_val sk = {8, id};
        rc = mdb_del(a->txn, a->eng->sessions, &sk, NULL);
        if (rc && rc != MDB_NOTFOUND) {
            break;
        }
        uint32_t dropped = 0;
        if (drop_results(a, mc_get_u64be(id), UINT64_MAX, NULL, &dropped)) {
            mdb_cursor_close(c);
            return a->fatal;
        }
        sessions++;
        results += dropped;
    }
    mdb_cursor_close(c);
    return rc == MDB_NOTFOUND || rc == 0 ? 0 : lmdb_fail(a, rc, "expire sessions");
}

static void apply_forced_or_plain(struct actx *a, const struct mc_op *op, struct mc_op_result *res)
{
    if (a->is_forced[a->cur]) {
        *res = a->forced[a->cur];
        return;
    }
    res->code = apply_plain(a, op, res);
}

static void apply_top(struct actx *a, const struct mc_op *op, struct mc_op_result *res)
{
    memset(res, 0, sizeof(*res));
    res->failed_op = -1;
    if (op->type == MC_OP_SESSION_REGISTER) {
        if (a->registers++) {
            /* Session id = log index, so one registration per index. */
            res->code = MC_EBUSY;
            return;
        }
        struct session s = {.id = a->index, .last_active_ns = a->clock_ns};
        /* A fresh id never has result rows (ids are log indexes, applied once). */
        if (session_store(a, &s, -1) == 0) {
            res->session_id = a->index;
        }
        res->code = a->fatal;
        return;
    }
    if (!op->session_id) {
        apply_forced_or_plain(a, op, res);
        return;
    }
    struct session s;
    int rc = session_get(a, op->session_id, &s);
    if (rc == 0 && session_expired(a, s.last_active_ns)) {
        /* Expired, its removal still to come (expire_sessions is bounded): as if removed. */
        rc = MC_ENOSESSION;
    }
    if (rc) {
        res->code = rc;
        return;
    }
    if (op->seq == 0 || op->acked_seq >= op->seq) {
        res->code =
            mc_engine_seterr(MC_EINVAL,
                             "session op needs seq >= 1 and acked_seq < seq (seq %llu, "
                             "acked_seq %llu)",
                             (unsigned long long)op->seq, (unsigned long long)op->acked_seq);
        return;
    }
    if (op->seq <= s.acked_seq) {
        /* The client already has this reply: not a live retry (a client bug or a stale frame). */
        res->code = mc_engine_seterr(MC_EINVAL,
                                     "session %llu seq %llu is already acknowledged (acked_seq "
                                     "%llu); its result was discarded",
                                     (unsigned long long)s.id, (unsigned long long)op->seq,
                                     (unsigned long long)s.acked_seq);
        return;
    }
    int64_t old_active = s.last_active_ns;
    s.last_active_ns = a->clock_ns;
    if (op->acked_seq > s.acked_seq) {
        s.acked_seq = op->acked_seq;
        if (drop_results(a, s.id, s.acked_seq, &s.n, NULL)) {
            return;
        }
    }
    uint8_t kb[16];
    result_key(kb, s.id, op->seq);
    MDB_val k = {16, kb}, v;
    rc = mc_rec_get(a->eng, a->txn, a->eng->sessions, &k, &v);
    if (rc == 0) {
        struct mc_rbuf r;
        mc_rbuf_init(&r, v.mv_data, v.mv_size);
        mc_result_read(&r, res);
        if (r.err || mc_rbuf_remaining(&r)) {
            a->fatal = mc_engine_seterr(MC_ECORRUPT, "session %llu result of seq %llu is corrupt",
                                        (unsigned long long)s.id, (unsigned long long)op->seq);
            return;
        }
        res->duplicate = true;
        session_put(a, &s, old_active);
        return;
    }
    if (rc != MDB_NOTFOUND) {
        lmdb_fail(a, rc, "read session result");
        return;
    }
    if (s.n >= MC_SESSION_RESULTS_KEPT) {
        /* Bounded state: the client must acknowledge replies (advance acked_seq) to go on. */
        res->code = mc_engine_seterr(MC_ELIMIT,
                                     "session %llu holds %d unacknowledged results (acked_seq "
                                     "%llu); seq %llu refused until acked_seq advances",
                                     (unsigned long long)s.id, MC_SESSION_RESULTS_KEPT,
                                     (unsigned long long)s.acked_seq, (unsigned long long)op->seq);
        session_put(a, &s, old_active);
        return;
    }
    apply_forced_or_plain(a, op, res);
    if (a->fatal || a->atomic_failed) {
        return;
    }
    mc_wbuf_reset(&a->w);
    mc_result_write(res, &a->w);
    if (mc_wbuf_error(&a->w)) {
        a->fatal = MC_ENOMEM;
        return;
    }
    if (put(a, a->eng->sessions, kb, 16, a->w.data, a->w.len)) {
        return;
    }
    s.n++;
    session_put(a, &s, old_active);
}

/* ---- the batch ---- */

static int meta_put_u64(struct actx *a, const char *name, uint64_t v)
{
    uint8_t b[8];
    mc_put_u64le(b, v);
    return put(a, a->eng->meta, name, strlen(name), b, 8);
}

static int meta_get_u64(struct actx *a, const char *name, uint64_t *v)
{
    MDB_val k = {strlen(name), (void *)name}, val;
    int rc = mc_rec_get(a->eng, a->txn, a->eng->meta, &k, &val);
    *v = 0;
    if (rc == MDB_NOTFOUND) {
        return 0;
    }
    if (rc) {
        return lmdb_fail(a, rc, "read meta");
    }
    if (val.mv_size == 8) {
        *v = mc_get_u64le(val.mv_data);
    }
    return 0;
}

static size_t count_ops(const struct mc_op *ops, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c += 1 + ops[i].n_sub;
    }
    return c;
}

/* One attempt. Returns 0 (committed or skipped), or an error; *map_full when growing may help. */
/* Set by mc_engine_apply_one only (offline CLI): a failed op aborts instead of committing. */
static _Thread_local bool abort_failed_op;

static int attempt(struct mc_engine *eng, uint64_t index, const struct mc_op *ops, size_t n_ops,
                   const void *conf, size_t conf_len, struct mc_op_result *results, bool *map_full,
                   struct mc_op_result *forced, bool *is_forced, bool *restart)
{
    static _Thread_local struct scache sc; /* 5 KiB: not on the stack; one apply per thread */
    sc.n = 0;
    struct actx a = {
        .eng = eng, .index = index, .forced = forced, .is_forced = is_forced, .sc = &sc};
    mc_wbuf_init(&a.w, 0);
    int rc = mdb_txn_begin(eng->env, NULL, 0, &a.txn);
    if (rc) {
        mc_wbuf_free(&a.w);
        *map_full = rc == MDB_MAP_FULL;
        return mc_lmdb_err(rc, "begin write transaction");
    }
    uint64_t applied, clock;
    if (meta_get_u64(&a, "applied_index", &applied) || meta_get_u64(&a, "session_clock", &clock)) {
        goto abort;
    }
    if (index <= applied) {
        mdb_txn_abort(a.txn);
        mc_wbuf_free(&a.w);
        for (size_t i = 0; i < n_ops; i++) {
            memset(&results[i], 0, sizeof(results[i]));
            results[i].failed_op = -1;
            results[i].skipped = true;
        }
        return 0;
    }
    /* Session clock: the largest op time seen so far; never moves back. */
    a.clock_ns = (int64_t)clock;
    for (size_t i = 0; i < n_ops; i++) {
        if (ops[i].time_ns > a.clock_ns) {
            a.clock_ns = ops[i].time_ns;
        }
    }
    if (expire_sessions(&a)) {
        goto abort;
    }
    for (size_t i = 0; i < n_ops; i++) {
        a.cur = i;
        apply_top(&a, &ops[i], &results[i]);
        if (a.fatal) {
            goto abort;
        }
        if (a.atomic_failed) {
            /* Undo the partial atomic batch by restarting without it (deterministic). */
            forced[i] = results[i];
            is_forced[i] = true;
            *restart = true;
            mdb_txn_abort(a.txn);
            mc_wbuf_free(&a.w);
            return 0;
        }
    }
    if (abort_failed_op && n_ops == 1 && results[0].code != 0) {
        mdb_txn_abort(a.txn); /* offline: nothing at this index, applied_index stays */
        mc_wbuf_free(&a.w);
        return 0;
    }
    if (scache_flush(&a) || meta_put_u64(&a, "applied_index", index) ||
        meta_put_u64(&a, "session_clock", (uint64_t)a.clock_ns)) {
        goto abort;
    }
    if (conf && put(&a, eng->meta, "conf", 4, conf, conf_len)) {
        goto abort;
    }
    uint64_t n_buckets, n_sessions;
    rc = mc_engine_count_rows(eng, a.txn, &n_buckets, &n_sessions);
    if (rc) {
        lmdb_fail(&a, rc, "count buckets and sessions");
        goto abort;
    }
    rc = mdb_txn_commit(a.txn);
    mc_wbuf_free(&a.w);
    if (rc) {
        *map_full = rc == MDB_MAP_FULL;
        return mc_lmdb_err(rc, "commit");
    }
    atomic_store(&eng->n_buckets, n_buckets);
    atomic_store(&eng->n_sessions, n_sessions);
    return 0;
abort:
    mdb_txn_abort(a.txn);
    mc_wbuf_free(&a.w);
    *map_full = a.map_full;
    return a.fatal ? a.fatal : MC_EINTERNAL;
}

/* Under resize_lock (exclusive): wait until no state hash's read txn is open (they do not hold
 * resize_lock: mc_engine_hash_begin). The caller then stalls for the rest of a hash, as for an
 * image copy; mc_engine_reserve_map before a hash begins makes it rare. */
static void wait_for_hashes(struct mc_engine *eng)
{
    uint64_t t0 = 0;
    pthread_mutex_lock(&eng->pool_lock);
    while (eng->n_hashing > 0) {
        if (!t0) {
            /* Said now, not only at the end: the caller (the loop) is blocked meanwhile, and
             * the end may come after the election timeouts the stall causes. */
            t0 = mc_mono_ms();
            MC_WARN("engine_map_growth_waiting",
                    "n_hashing=%u reason=\"a state hash is reading; the map grows at its end\"",
                    eng->n_hashing);
        }
        pthread_cond_wait(&eng->hashing_done, &eng->pool_lock);
    }
    pthread_mutex_unlock(&eng->pool_lock);
    if (t0) {
        MC_WARN("engine_map_growth_waited", "ms=%llu reason=\"a state hash was reading\"",
                (unsigned long long)(mc_mono_ms() - t0));
    }
}

static int grow_map(struct mc_engine *eng)
{
    if (eng->map_size_bytes >= eng->max_map_size_bytes) {
        return mc_engine_seterr(MC_ENOSPC,
                                "engine map is full at %llu bytes, the configured maximum; raise "
                                "it with --max-map-size",
                                (unsigned long long)eng->max_map_size_bytes);
    }
    uint64_t nsz = eng->map_size_bytes * 2;
    if (nsz > eng->max_map_size_bytes) {
        nsz = eng->max_map_size_bytes;
    }
    pthread_rwlock_wrlock(&eng->resize_lock);
    wait_for_hashes(eng);
    int rc = mdb_env_set_mapsize(eng->env, (size_t)nsz);
    pthread_rwlock_unlock(&eng->resize_lock);
    if (rc) {
        return mc_lmdb_err(rc, "grow map");
    }
    MC_INFO("engine_map_grown", "from=%llu to=%llu", (unsigned long long)eng->map_size_bytes,
            (unsigned long long)nsz);
    eng->map_size_bytes = nsz;
    return 0;
}

int mc_engine_reserve_map(struct mc_engine *eng)
{
    uint64_t used = mc_engine_used_bytes(eng);
    int rc = 0;
    while (rc == 0 && used * 2 > eng->map_size_bytes &&
           eng->map_size_bytes < eng->max_map_size_bytes) {
        rc = grow_map(eng);
    }
    return rc;
}

int mc_engine_apply(struct mc_engine *eng, uint64_t index, const struct mc_op *ops, size_t n_ops,
                    const void *conf, size_t conf_len, struct mc_op_result *results)
{
    mc_engine_clearerr();
    if (eng->read_only) {
        return mc_engine_seterr(MC_EINVAL, "engine opened read-only");
    }
    if (index == 0 || (n_ops && (!ops || !results))) {
        return mc_engine_seterr(MC_EINVAL, "apply needs index > 0 and ops/results arrays");
    }
    if (count_ops(ops, n_ops) > MC_APPLY_MAX_OPS) {
        return mc_engine_seterr(MC_EINVAL, "more than %d ops in one apply", MC_APPLY_MAX_OPS);
    }
    if (conf && conf_len > MC_CONF_MAX_BYTES) {
        return mc_engine_seterr(MC_ETOOLARGE, "conf blob of %zu bytes exceeds %d", conf_len,
                                MC_CONF_MAX_BYTES);
    }
    struct mc_op_result fbuf[16];
    bool ibuf[16] = {false};
    struct mc_op_result *forced = fbuf;
    bool *is_forced = ibuf;
    if (n_ops > 16) {
        forced = calloc(n_ops, sizeof(*forced));
        is_forced = calloc(n_ops, sizeof(*is_forced));
        if (!forced || !is_forced) {
            free(forced);
            free(is_forced);
            return MC_ENOMEM;
        }
    }
    pthread_mutex_lock(&eng->write_lock);
    int rc;
    for (;;) {
        bool map_full = false, restart = false;
        rc = attempt(eng, index, ops, n_ops, conf, conf_len, results, &map_full, forced, is_forced,
                     &restart);
        if (restart) {
            continue; /* bounded: each restart forces one more atomic op */
        }
        if (!map_full) {
            break;
        }
        rc = grow_map(eng);
        if (rc) {
            break;
        }
    }
    pthread_mutex_unlock(&eng->write_lock);
    if (forced != fbuf) {
        free(forced);
        free(is_forced);
    }
    if (rc) {
        MC_ERROR("engine_apply_failed", "index=%llu err=%s detail=\"%s\"",
                 (unsigned long long)index, mc_error_name(rc), mc_engine_last_error());
    }
    return rc;
}

int mc_engine_apply_one(struct mc_engine *eng, const struct mc_op *op, struct mc_op_result *result)
{
    uint64_t applied;
    int rc = mc_engine_applied_index(eng, &applied);
    if (rc) {
        return rc;
    }
    /* Raft applies a failed op as a no-op result at its index (every replica must reach the
     * same applied_index); offline there is no log entry behind it, and an applied_index past
     * the log makes the member refuse to start (engine_ahead_of_log). */
    abort_failed_op = true;
    rc = mc_engine_apply(eng, applied + 1, op, 1, NULL, 0, result);
    abort_failed_op = false;
    return rc;
}
