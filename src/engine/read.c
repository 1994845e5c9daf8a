/* read.c: point reads over pooled LMDB read transactions: buckets and object versions. */
#include "engine/internal.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* The sentence of a refusal that carries none yet (a miss, a bad key, a bad bucket name). */
static int read_err(int rc, bool delete_marker)
{
    if (rc == MC_ENOKEY && delete_marker) {
        return mc_engine_seterr(rc, "the latest version is a delete marker");
    }
    if (rc == MC_ENOKEY || rc == MC_ENOVERSION || rc == MC_EKEYTOOLONG || rc == MC_EBADKEY ||
        rc == MC_ENOBUCKET) {
        return mc_engine_seterr(rc, "%s", mc_strerror(rc));
    }
    return rc;
}

/* Ends a point read in rt: a miss (key or version not found) in a bucket that does not exist is
 * the bucket's error instead (NoSuchBucket). The bucket is looked up only on a miss: one that
 * holds versions cannot be deleted. Then rt goes back to the pool. */
static int read_end(struct mc_engine *eng, struct mc_rtxn *rt, const char *bucket, bool miss,
                    int rc)
{
    if (miss) {
        int brc = mc_bucket_load(eng, rt->txn, bucket, NULL);
        if (brc) {
            assert(brc != MC_ENOKEY); /* callers tell a miss from a bucket error by rc */
            rc = brc;
        }
    }
    mc_rtxn_put(eng, rt);
    return rc;
}

int mc_engine_bucket_head(struct mc_engine *eng, const char *bucket, struct mc_bucket_info *out)
{
    mc_engine_clearerr();
    struct mc_rtxn *rt;
    int rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        return rc;
    }
    rc = mc_bucket_load(eng, rt->txn, bucket, out);
    mc_rtxn_put(eng, rt);
    return rc;
}

int mc_engine_bucket_list(struct mc_engine *eng, struct mc_bucket_info **out, size_t *n)
{
    mc_engine_clearerr();
    *out = NULL;
    *n = 0;
    struct mc_rtxn *rt;
    int rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        return rc;
    }
    MDB_cursor *c;
    int mrc = mdb_cursor_open(rt->txn, eng->buckets, &c);
    if (mrc) {
        mc_rtxn_put(eng, rt);
        return mc_lmdb_err(mrc, "open cursor");
    }
    struct mc_bucket_info *arr = NULL;
    size_t cnt = 0, cap = 0;
    MDB_val k, v;
    for (mrc = mc_rec_cget(eng, c, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mc_rec_cget(eng, c, &k, &v, MDB_NEXT)) {
        if (k.mv_size > MC_BUCKET_NAME_MAX || v.mv_size != 9) {
            rc = mc_engine_seterr(MC_ECORRUPT, "bad bucket record");
            break;
        }
        if (cnt == cap) {
            cap = cap ? cap * 2 : 16;
            struct mc_bucket_info *na = realloc(arr, cap * sizeof(*arr));
            if (!na) {
                rc = MC_ENOMEM;
                break;
            }
            arr = na;
        }
        struct mc_bucket_info *b = &arr[cnt++];
        memset(b, 0, sizeof(*b));
        memcpy(b->name, k.mv_data, k.mv_size);
        const uint8_t *p = v.mv_data;
        b->versioning = (enum mc_versioning)p[0];
        b->created_ns = (int64_t)mc_get_u64le(p + 1);
    }
    mdb_cursor_close(c);
    mc_rtxn_put(eng, rt);
    if (!rc && mrc != MDB_NOTFOUND) {
        rc = mc_lmdb_err(mrc, "iterate buckets");
    }
    if (rc) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

int mc_engine_get(struct mc_engine *eng, const char *bucket, const char *key,
                  const char *version_id, bool with_inline, struct mc_version *out)
{
    mc_engine_clearerr();
    memset(out, 0, sizeof(*out));
    int rc = mc_validate_key(key, key ? strlen(key) : 0);
    if (rc) {
        return read_err(rc, false);
    }
    /* One allocation for the whole result (see mc_object_meta.block). */
    unsigned dec = (with_inline ? MC_DEC_INLINE : 0) | MC_DEC_BLOCK;
    struct mc_rtxn *rt;
    rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        return rc;
    }
    /* A bucket with versions cannot be deleted: check it exists only on a miss. */
    if (!bucket || !*bucket || strlen(bucket) > MC_BUCKET_NAME_MAX) {
        rc = MC_ENOBUCKET;
    } else if (version_id) {
        rc = mc_find_version(eng, rt->txn, bucket, key, version_id, dec, out);
    } else {
        MDB_cursor *c;
        rc = mc_rtxn_versions(eng, rt, &c);
        if (!rc) {
            rc = mc_find_latest(eng, rt->txn, c, bucket, key, dec, out, NULL);
        }
        if (!rc && out->is_delete_marker) {
            rc = MC_ENOKEY; /* S3: 404 with x-amz-delete-marker; *out keeps the marker */
        }
    }
    rc = read_end(eng, rt, bucket, rc == MC_ENOKEY || rc == MC_ENOVERSION, rc);
    if (rc && !(rc == MC_ENOKEY && out->is_delete_marker)) {
        mc_version_clear(out);
    }
    return read_err(rc, rc == MC_ENOKEY && out->is_delete_marker);
}

int mc_find_latest_raw(struct mc_engine *eng, MDB_cursor *c, const char *bucket, const char *key,
                       size_t key_len, MDB_val *v, struct mc_vrec_scan *sc)
{
    struct mc_lkey lk;
    mc_lkey_object(&lk, bucket, key, key_len);
    lk.b[lk.len++] = 0;
    MDB_val k = {lk.len, lk.b};
    /* Verify only the record we use, not the neighbour a miss lands on. */
    int rc = mdb_cursor_get(c, &k, v, MDB_SET_RANGE);
    if (rc == MDB_NOTFOUND ||
        (rc == 0 && (k.mv_size != lk.len + 8 || memcmp(k.mv_data, lk.b, lk.len)))) {
        return MC_ENOKEY;
    }
    if (rc == 0) {
        rc = mc_rec_check(eng->file, "versions", &k, v);
    }
    if (rc) {
        return mc_lmdb_err(rc, "seek version");
    }
    if (mc_version_record_scan(v->mv_data, v->mv_size, sc)) {
        return mc_engine_seterr(MC_ECORRUPT, "undecodable version record");
    }
    if (sc->key_len != key_len || memcmp(sc->key, key, key_len)) {
        return MC_ENOKEY; /* a long key sharing the group and the 64-bit hash */
    }
    return 0;
}

static int latest_raw(struct mc_engine *eng, struct mc_rtxn *rt, const char *bucket,
                      const char *key, size_t key_len, MDB_val *v, struct mc_vrec_scan *sc)
{
    MDB_cursor *c;
    int rc = mc_rtxn_versions(eng, rt, &c);
    return rc ? rc : mc_find_latest_raw(eng, c, bucket, key, key_len, v, sc);
}

int mc_engine_get_encoded(struct mc_engine *eng, const char *bucket, const char *key,
                          const char *version_id, bool with_inline, struct mc_wbuf *w,
                          bool *is_delete_marker, char marker_vid[MC_VERSION_ID_MAX + 1])
{
    mc_engine_clearerr();
    *is_delete_marker = false;
    if (marker_vid) {
        marker_vid[0] = 0;
    }
    if (version_id) {
        /* By id (rarer): decode and re-encode; is_latest needs a second seek anyway. */
        struct mc_version v;
        int rc = mc_engine_get(eng, bucket, key, version_id, with_inline, &v);
        if (!rc) {
            size_t at = w->len;
            rc = mc_version_encode(&v, w);
            if (rc) {
                w->len = at;
            }
        }
        mc_version_clear(&v);
        return rc;
    }
    size_t key_len = key ? strlen(key) : 0;
    int rc = mc_validate_key(key, key_len);
    if (rc) {
        return read_err(rc, false);
    }
    if (!bucket || !*bucket || strlen(bucket) > MC_BUCKET_NAME_MAX) {
        return read_err(MC_ENOBUCKET, false);
    }
    struct mc_rtxn *rt;
    rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        return rc;
    }
    MDB_val v;
    struct mc_vrec_scan sc;
    rc = latest_raw(eng, rt, bucket, key, key_len, &v, &sc);
    if (!rc && sc.is_delete_marker) {
        *is_delete_marker = true;
        if (marker_vid) {
            memcpy(marker_vid, sc.version_id, sc.version_id_len);
            marker_vid[sc.version_id_len] = 0;
        }
        rc = MC_ENOKEY;
    } else if (!rc) {
        /* Copy the record; set is_latest; drop the trailing inline data unless asked for. */
        size_t n = with_inline ? v.mv_size : sc.inline_off;
        size_t at = w->len;
        mc_wbuf_put(w, v.mv_data, n);
        if (!with_inline) {
            mc_wbuf_u32(w, 0);
        }
        rc = mc_wbuf_error(w);
        if (rc) {
            w->len = at;
        } else {
            w->data[at + sc.flags_off] |= 2;
        }
    }
    rc = read_end(eng, rt, bucket, rc == MC_ENOKEY && !*is_delete_marker, rc);
    return read_err(rc, *is_delete_marker);
}
