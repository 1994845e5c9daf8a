/* internal.h: engine internals shared by its files (LMDB handles, key layout, txn helpers). */
#ifndef MC_ENGINE_INTERNAL_H
#define MC_ENGINE_INTERNAL_H

#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/codec.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/*
 * Key layout. LMDB (Debian build) limits keys to 511 bytes, but S3 keys reach
 * 1024. The "sort key" S(k) of an object key k is k itself when
 * len(k) <= MC_SORT_DIRECT, else k[0:MC_SORT_DIRECT] 0xFF hash64be(k). 0xFF
 * never occurs in UTF-8, so all long keys sharing their first MC_SORT_DIRECT
 * bytes form one contiguous "group" that sorts exactly where those keys belong;
 * inside a group LMDB order is by hash, so readers load a group and sort it by
 * the full key (stored in the value). Groups are normally of size 1.
 *
 *   buckets:  name                                  → bucket record
 *   versions: bucket 0 S(key) 0 be64(~seq)          → version record (mc_version_encode)
 *   vids:     bucket 0 S(key) 0 version_id          → be64(seq)
 *   objects:  bucket 0 S(key)                       → be64(seq) [full key if long]
 *             (only keys whose latest version is live: ListObjectsV2 skips nothing)
 *   sessions: be64(id)                              → session record
 *             be64(id) be64(seq)                    → cached result of seq (format 2)
 *   sexp:     be64(last_active_ns) be64(id)         → "" (expiry order)
 *   meta:     "format" "applied_index" "conf" "session_clock"
 * ~seq makes the newest version of a key sort first.
 * Every value above is followed by a 4-byte checksum trailer (format 3, record.c);
 * the arrows show the value without it: the helpers below add, check and strip it.
 */
#define MC_SORT_DIRECT   360
#define MC_SORT_LONG_LEN (MC_SORT_DIRECT + 1 + 8)
#define MC_LKEY_MAX      (MC_BUCKET_NAME_MAX + 1 + MC_SORT_LONG_LEN + 1 + MC_VERSION_ID_MAX)
#define MC_READ_POOL_MAX 64

#define MC_ENGINE_MAGIC "MCENGINE"
/* 2: per-seq session result rows (see apply.c); 3: a checksum trailer on every record. */
#define MC_ENGINE_FORMAT_VERSION 3u

struct mc_engine {
    MDB_env *env;
    MDB_dbi meta, buckets, versions, vids, objects, sessions, sexp;
    int lock_fd;
    char *file; /* DIR/data.mdb, for error sentences */
    bool read_only;
    uint64_t map_size_bytes;
    uint64_t max_map_size_bytes;
    uint64_t session_ttl_ns;
    /* Entry counts of buckets and sexp (one row per session), as of the last commit: set at
     * open and by every apply's commit (apply.c). Atomic: cheap, and safe should an apply ever
     * run off the reading thread (today both are the node's loop). */
    _Atomic uint64_t n_buckets, n_sessions;
    pthread_rwlock_t resize_lock; /* readers shared; map growth exclusive */
    pthread_mutex_t write_lock;   /* one apply at a time */
    pthread_mutex_t pool_lock;
    struct mc_rtxn *pool[MC_READ_POOL_MAX]; /* reset read txns, renewed on use */
    int n_pool;
    /* Under pool_lock: read txns of state hashes (mc_engine_hash_begin..end) open now; they may
     * span threads, so they do not hold resize_lock: map growth waits on hashing_done instead. */
    uint32_t n_hashing;
    pthread_cond_t hashing_done;
};

/* The entry counts of buckets and sexp in txn (O(1) each: LMDB keeps them per sub-db). LMDB
 * code. Stored into n_buckets / n_sessions by the caller once txn is committed. */
int mc_engine_count_rows(struct mc_engine *eng, MDB_txn *txn, uint64_t *buckets,
                         uint64_t *sessions);

/* Thread-local error sentence; returns code for chaining. */
int mc_engine_seterr(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int mc_lmdb_err(int rc, const char *what);
/* Forget the sentence: every public entry point calls it first, so a refusal never answers with
 * the sentence of an earlier call on this thread (replies carry mc_engine_last_error()). */
void mc_engine_clearerr(void);

/*
 * A pooled read txn with a reusable cursor on `versions` (opening a cursor
 * mallocs; renewing one is a few stores). Get holds resize_lock shared until put.
 */
struct mc_rtxn {
    MDB_txn *txn;
    MDB_cursor *vcur; /* NULL until first use */
    bool vcur_ready;  /* renewed for the current txn */
};
int mc_rtxn_get(struct mc_engine *eng, struct mc_rtxn **rt);
void mc_rtxn_put(struct mc_engine *eng, struct mc_rtxn *rt);
/* The versions cursor of rt, bound to rt->txn. */
int mc_rtxn_versions(struct mc_engine *eng, struct mc_rtxn *rt, MDB_cursor **c);

/*
 * Checksummed records (record.c). Every value stored by the engine goes through
 * mc_rec_put and is read back through mc_rec_get / mc_rec_cget, which verify the
 * trailer and strip it from v. They return LMDB codes, plus MC_REC_BADSUM on a
 * checksum mismatch (the error sentence, naming file, sub-database and key, is
 * already set; mc_lmdb_err maps it to MC_ECORRUPT and keeps that sentence).
 */
#define MC_REC_SUM_LEN 4
#define MC_REC_BADSUM  (-30500) /* outside LMDB's error range (-30799..-30780) */
uint32_t mc_rec_sum(const void *k, size_t kl, const void *v, size_t vl);
int mc_rec_put(struct mc_engine *eng, MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl,
               const void *v, size_t vl);
int mc_rec_get(struct mc_engine *eng, MDB_txn *txn, MDB_dbi dbi, const MDB_val *k, MDB_val *v);
/* mc_rec_put through a positioned cursor (flags: 0 or MDB_CURRENT; LMDB tries the cursor's
 * page first). */
int mc_rec_cput(MDB_cursor *c, const void *k, size_t kl, const void *v, size_t vl, unsigned flags);
int mc_rec_cget(struct mc_engine *eng, MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op);
/* Check and strip v's trailer (k its key); file/dbname name the record in the error sentence. */
int mc_rec_check(const char *file, const char *dbname, const MDB_val *k, MDB_val *v);
const char *mc_dbi_name(const struct mc_engine *eng, MDB_dbi dbi);
/* Printable form of a key for error sentences (non-printables as \xNN, cut with "..."). */
void mc_rec_key_text(const void *k, size_t kl, char *out, size_t cap);

/* Keys */
struct mc_lkey {
    uint8_t b[MC_LKEY_MAX + 16];
    size_t len;
    size_t base_len; /* bucket 0 S(key) */
};
/* bucket 0 S(key) */
void mc_lkey_object(struct mc_lkey *k, const char *bucket, const char *key, size_t key_len);
/* ... 0 be(~seq) */
void mc_lkey_version(struct mc_lkey *k, const char *bucket, const char *key, size_t key_len,
                     uint64_t seq);
/* ... 0 version_id */
void mc_lkey_vid(struct mc_lkey *k, const char *bucket, const char *key, size_t key_len,
                 const char *vid);
size_t mc_sort_key(uint8_t *out, const char *key, size_t key_len);

/*
 * Version record decode. dec: MC_DEC_INLINE copies inline data; MC_DEC_BLOCK
 * puts every string and array in one allocation (out->meta.block; one malloc
 * instead of ~15, freed by mc_version_clear). Plain true/false = inline or not.
 */
#define MC_DEC_INLINE 1u
#define MC_DEC_BLOCK  2u
int mc_version_decode2(const void *data, size_t len, unsigned dec, struct mc_version *out);

/* Allocation-free walk over a stored version record (mc_version_encode bytes). */
struct mc_vrec_scan {
    const char *key; /* not NUL-terminated */
    size_t key_len;
    const char *version_id; /* not NUL-terminated */
    size_t version_id_len;
    bool is_delete_marker;
    int64_t mod_time_ns;
    uint64_t seq;
    const char *etag; /* not NUL-terminated; NULL when empty */
    size_t etag_len;
    size_t flags_off;  /* offset of the flags byte (bit 2 = is_latest) */
    size_t inline_off; /* offset of the trailing inline-data field (u32 length + bytes) */
    /* [off, end) of the variable-size collections (each: u32 count + elements); a listing
       leaves them out (list.c) */
    size_t user_meta_off, user_meta_end;
    size_t distribution_off, distribution_end;
    size_t parts_off, parts_end;
};
int mc_version_record_scan(const void *data, size_t len, struct mc_vrec_scan *s);

/*
 * Latest version of a key without decoding it: *v is the stored record (valid
 * until the next write in txn), *sc its scan. 0 / MC_ENOKEY / error. c: a
 * cursor on versions in txn.
 */
int mc_find_latest_raw(struct mc_engine *eng, MDB_cursor *c, const char *bucket, const char *key,
                       size_t key_len, MDB_val *v, struct mc_vrec_scan *sc);

/* Bucket record */
int mc_bucket_load(struct mc_engine *eng, MDB_txn *txn, const char *name,
                   struct mc_bucket_info *out);

/* Latest version of a key (including markers): 0 / MC_ENOKEY. out filled. c: a cursor on
 * versions in txn to use (NULL: open one). */
int mc_find_latest(struct mc_engine *eng, MDB_txn *txn, MDB_cursor *c, const char *bucket,
                   const char *key, unsigned dec, struct mc_version *out, uint64_t *steps);
/* Version by id: 0 / MC_ENOVERSION. */
int mc_find_version(struct mc_engine *eng, MDB_txn *txn, const char *bucket, const char *key,
                    const char *vid, unsigned dec, struct mc_version *out);

/* A well-formed version id: 1..MC_VERSION_ID_MAX printable ASCII, no space (0 or MC_EINVAL). */
int mc_validate_version_id(const char *vid);

/* Small string helpers */
char *mc_strdup0(const char *s); /* NULL → NULL */
static inline const char *mc_s(const char *s)
{
    return s ? s : "";
}

#endif
