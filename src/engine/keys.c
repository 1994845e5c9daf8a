/* keys.c: LMDB key layout (sort keys for long S3 keys) and point lookups of buckets and versions.
 */
#include "engine/internal.h"
#include "util/checksum.h"

#include <stdlib.h>
#include <string.h>

size_t mc_sort_key(uint8_t *out, const char *key, size_t key_len)
{
    if (key_len <= MC_SORT_DIRECT) {
        memcpy(out, key, key_len);
        return key_len;
    }
    memcpy(out, key, MC_SORT_DIRECT);
    out[MC_SORT_DIRECT] = 0xFF; /* never in UTF-8: marks a long-key group */
    mc_put_u64be(out + MC_SORT_DIRECT + 1, mc_checksum64(key, key_len));
    return MC_SORT_LONG_LEN;
}

void mc_lkey_object(struct mc_lkey *k, const char *bucket, const char *key, size_t key_len)
{
    size_t bl = strlen(bucket);
    if (bl > MC_BUCKET_NAME_MAX) {
        bl = MC_BUCKET_NAME_MAX;
    }
    memcpy(k->b, bucket, bl);
    k->b[bl] = 0;
    k->len = bl + 1;
    if (key_len > MC_KEY_MAX_BYTES) {
        key_len = MC_KEY_MAX_BYTES;
    }
    k->len += mc_sort_key(k->b + k->len, key, key_len);
    k->base_len = k->len;
}

void mc_lkey_version(struct mc_lkey *k, const char *bucket, const char *key, size_t key_len,
                     uint64_t seq)
{
    mc_lkey_object(k, bucket, key, key_len);
    k->b[k->len++] = 0;
    mc_put_u64be(k->b + k->len, ~seq);
    k->len += 8;
}

void mc_lkey_vid(struct mc_lkey *k, const char *bucket, const char *key, size_t key_len,
                 const char *vid)
{
    mc_lkey_object(k, bucket, key, key_len);
    k->b[k->len++] = 0;
    size_t vl = strlen(vid);
    if (vl > MC_VERSION_ID_MAX) {
        vl = MC_VERSION_ID_MAX;
    }
    memcpy(k->b + k->len, vid, vl);
    k->len += vl;
}

int mc_bucket_load(struct mc_engine *eng, MDB_txn *txn, const char *name,
                   struct mc_bucket_info *out)
{
    /* The message is set here so that every caller's refusal carries its own (a caller that
     * replies with mc_engine_last_error() would otherwise repeat an earlier, unrelated one). */
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > MC_BUCKET_NAME_MAX) {
        return mc_engine_seterr(MC_ENOBUCKET, "%s", mc_strerror(MC_ENOBUCKET));
    }
    MDB_val k = {n, (void *)name}, v;
    int rc = mc_rec_get(eng, txn, eng->buckets, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return mc_engine_seterr(MC_ENOBUCKET, "%s", mc_strerror(MC_ENOBUCKET));
    }
    if (rc) {
        return mc_lmdb_err(rc, "read bucket");
    }
    if (v.mv_size != 9) {
        return mc_engine_seterr(MC_ECORRUPT, "bucket record of %s has %zu bytes", name, v.mv_size);
    }
    const uint8_t *p = v.mv_data;
    if (out) {
        memset(out, 0, sizeof(*out));
        memcpy(out->name, name, n);
        out->versioning = (enum mc_versioning)p[0];
        out->created_ns = (int64_t)mc_get_u64le(p + 1);
    }
    return 0;
}

static int decode_checked(const MDB_val *v, unsigned dec, const char *key, struct mc_version *out)
{
    int rc = mc_version_decode2(v->mv_data, v->mv_size, dec, out);
    if (rc) {
        return mc_engine_seterr(MC_ECORRUPT, "undecodable version record (%s)", mc_strerror(rc));
    }
    if (key && (!out->key || strcmp(out->key, key))) {
        /* Two long keys with equal first MC_SORT_DIRECT bytes and equal 64-bit hash. */
        mc_version_clear(out);
        return MC_ENOKEY;
    }
    return 0;
}

int mc_find_latest(struct mc_engine *eng, MDB_txn *txn, MDB_cursor *c, const char *bucket,
                   const char *key, unsigned dec, struct mc_version *out, uint64_t *steps)
{
    struct mc_lkey lk;
    size_t key_len = strlen(key);
    mc_lkey_object(&lk, bucket, key, key_len);
    lk.b[lk.len++] = 0;
    memset(out, 0, sizeof(*out));
    MDB_cursor *own = NULL;
    int rc = 0;
    if (!c) {
        rc = mdb_cursor_open(txn, eng->versions, &own);
        if (rc) {
            return mc_lmdb_err(rc, "open cursor");
        }
        c = own;
    }
    MDB_val k = {lk.len, lk.b}, v;
    rc = mdb_cursor_get(c, &k, &v, MDB_SET_RANGE);
    if (steps) {
        (*steps)++;
    }
    int ret;
    if (rc == MDB_NOTFOUND) {
        ret = MC_ENOKEY;
    } else if (rc) {
        ret = mc_lmdb_err(rc, "seek version");
    } else if (k.mv_size != lk.len + 8 || memcmp(k.mv_data, lk.b, lk.len)) {
        ret = MC_ENOKEY;
    } else if (mc_rec_check(eng->file, "versions", &k, &v)) {
        ret = MC_ECORRUPT; /* verified only now: a miss lands on a neighbour we do not use */
    } else {
        /* Short keys are stored whole in the LMDB key: no need to compare the record's key. */
        ret = decode_checked(&v, dec, key_len > MC_SORT_DIRECT ? key : NULL, out);
        if (!ret) {
            out->is_latest = true;
        }
    }
    if (own) {
        mdb_cursor_close(own);
    }
    return ret;
}

/* Is there a version of key newer than seq? */
static bool newer_exists(struct mc_engine *eng, MDB_txn *txn, const char *bucket, const char *key,
                         uint64_t seq)
{
    struct mc_lkey pk;
    bool newer = false;
    mc_lkey_object(&pk, bucket, key, strlen(key));
    pk.b[pk.len++] = 0;
    MDB_cursor *c;
    if (mdb_cursor_open(txn, eng->versions, &c) == 0) {
        MDB_val sk = {pk.len, pk.b}, sv;
        if (mc_rec_cget(eng, c, &sk, &sv, MDB_SET_RANGE) == 0 && sk.mv_size == pk.len + 8 &&
            !memcmp(sk.mv_data, pk.b, pk.len)) {
            newer = mc_get_u64be((const uint8_t *)sk.mv_data + pk.len) != ~seq;
        }
        mdb_cursor_close(c);
    }
    return newer;
}

/*
 * A null version written while the bucket was unversioned has no vids entry
 * (apply.c write_version). Every later version was made after versioning was
 * enabled, so such a null version is the key's oldest: one seek finds it.
 */
static int find_oldest_null(struct mc_engine *eng, MDB_txn *txn, const char *bucket,
                            const char *key, unsigned dec, struct mc_version *out)
{
    struct mc_lkey lk;
    mc_lkey_object(&lk, bucket, key, strlen(key));
    lk.b[lk.len++] = 0;
    size_t pl = lk.len;
    memset(lk.b + lk.len, 0xFF, 8);
    lk.len += 8;
    MDB_cursor *c;
    int rc = mdb_cursor_open(txn, eng->versions, &c);
    if (rc) {
        return mc_lmdb_err(rc, "open cursor");
    }
    MDB_val k = {lk.len, lk.b}, v;
    rc = mc_rec_cget(eng, c, &k, &v, MDB_SET_RANGE);
    if (rc == 0 && !(k.mv_size == pl + 8 && !memcmp(k.mv_data, lk.b, pl))) {
        rc = mc_rec_cget(eng, c, &k, &v, MDB_PREV);
    } else if (rc == MDB_NOTFOUND) {
        rc = mc_rec_cget(eng, c, &k, &v, MDB_LAST);
    }
    int ret = MC_ENOVERSION;
    if (rc == 0 && k.mv_size == pl + 8 && !memcmp(k.mv_data, lk.b, pl)) {
        ret = decode_checked(&v, dec, key, out);
        if (ret == MC_ENOKEY) {
            ret = MC_ENOVERSION;
        } else if (ret == 0 && strcmp(mc_s(out->version_id), "null")) {
            mc_version_clear(out);
            ret = MC_ENOVERSION;
        }
    } else if (rc && rc != MDB_NOTFOUND) {
        ret = mc_lmdb_err(rc, "seek version");
    }
    mdb_cursor_close(c);
    if (ret == 0) {
        out->is_latest = !newer_exists(eng, txn, bucket, key, out->seq);
    }
    return ret;
}

int mc_find_version(struct mc_engine *eng, MDB_txn *txn, const char *bucket, const char *key,
                    const char *vid, unsigned dec, struct mc_version *out)
{
    memset(out, 0, sizeof(*out));
    if (!vid || !*vid || strlen(vid) > MC_VERSION_ID_MAX) {
        return MC_ENOVERSION;
    }
    struct mc_lkey lk;
    mc_lkey_vid(&lk, bucket, key, strlen(key), vid);
    MDB_val k = {lk.len, lk.b}, v;
    int rc = mc_rec_get(eng, txn, eng->vids, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return strcmp(vid, "null") ? MC_ENOVERSION
                                   : find_oldest_null(eng, txn, bucket, key, dec, out);
    }
    if (rc) {
        return mc_lmdb_err(rc, "read version id");
    }
    if (v.mv_size != 8) {
        return mc_engine_seterr(MC_ECORRUPT, "bad version-id index entry");
    }
    uint64_t seq = mc_get_u64be(v.mv_data);
    mc_lkey_version(&lk, bucket, key, strlen(key), seq);
    k.mv_size = lk.len;
    k.mv_data = lk.b;
    rc = mc_rec_get(eng, txn, eng->versions, &k, &v);
    if (rc == MDB_NOTFOUND) {
        return mc_engine_seterr(MC_ECORRUPT, "version-id index points to a missing version");
    }
    if (rc) {
        return mc_lmdb_err(rc, "read version");
    }
    rc = decode_checked(&v, dec, key, out);
    if (rc == MC_ENOKEY) {
        return MC_ENOVERSION;
    }
    if (rc) {
        return rc;
    }
    out->is_latest = !newer_exists(eng, txn, bucket, key, seq);
    return 0;
}
