/* read.c: point reads over pooled LMDB read transactions: buckets and object versions. */
#include "engine/internal.h"

#include <stdlib.h>
#include <string.h>

int mc_engine_bucket_head(struct mc_engine *eng, const char *bucket, struct mc_bucket_info *out)
{
    MDB_txn *txn;
    int rc = mc_rtxn_get(eng, &txn);
    if (rc) {
        return rc;
    }
    rc = mc_bucket_load(eng, txn, bucket, out);
    mc_rtxn_put(eng, txn);
    return rc;
}

int mc_engine_bucket_list(struct mc_engine *eng, struct mc_bucket_info **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    MDB_txn *txn;
    int rc = mc_rtxn_get(eng, &txn);
    if (rc) {
        return rc;
    }
    MDB_cursor *c;
    int mrc = mdb_cursor_open(txn, eng->buckets, &c);
    if (mrc) {
        mc_rtxn_put(eng, txn);
        return mc_lmdb_err(mrc, "open cursor");
    }
    struct mc_bucket_info *arr = NULL;
    size_t cnt = 0, cap = 0;
    MDB_val k, v;
    for (mrc = mdb_cursor_get(c, &k, &v, MDB_FIRST); mrc == 0;
         mrc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
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
    mc_rtxn_put(eng, txn);
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
    memset(out, 0, sizeof(*out));
    int rc = mc_validate_key(key, key ? strlen(key) : 0);
    if (rc) {
        return rc;
    }
    MDB_txn *txn;
    rc = mc_rtxn_get(eng, &txn);
    if (rc) {
        return rc;
    }
    /* A bucket with versions cannot be deleted: check it exists only on a miss. */
    if (!bucket || !*bucket || strlen(bucket) > MC_BUCKET_NAME_MAX) {
        rc = MC_ENOBUCKET;
    } else if (version_id) {
        rc = mc_find_version(eng, txn, bucket, key, version_id, with_inline, out);
    } else {
        rc = mc_find_latest(eng, txn, bucket, key, with_inline, out, NULL);
        if (!rc && out->is_delete_marker) {
            rc = MC_ENOKEY; /* S3: 404 with x-amz-delete-marker; *out keeps the marker */
        }
    }
    if (rc == MC_ENOKEY || rc == MC_ENOVERSION) {
        int brc = mc_bucket_load(eng, txn, bucket, NULL);
        if (brc) {
            mc_version_clear(out);
            rc = brc;
        }
    }
    mc_rtxn_put(eng, txn);
    if (rc && !(rc == MC_ENOKEY && out->is_delete_marker)) {
        mc_version_clear(out);
    }
    return rc;
}
