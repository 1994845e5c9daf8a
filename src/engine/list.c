/* list.c: ListObjectsV2 and ListObjectVersions with S3 semantics, O(page) via seeks past prefixes.
 */
#include "engine/internal.h"
#include "util/checksum.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * An ordered iterator over the objects or versions index of one bucket that
 * yields entries in true key order (then newest first), hiding the long-key
 * groups of internal.h: a group is loaded and sorted by full key in memory.
 * seek_ge() positions at the first entry whose key is >= a target: that is
 * how a listing jumps over everything under a rolled-up common prefix in one
 * LMDB seek (MDB_SET_RANGE to the prefix's successor) instead of walking it.
 */

struct ent {
    const char *key; /* not NUL-terminated; points into LMDB memory */
    size_t klen;
    uint64_t seq;
    MDB_val v; /* objects: be(seq)[key]; versions: the version record */
};

struct iter {
    struct mc_engine *eng;
    MDB_cursor *c;
    bool versions;
    uint8_t pfx[MC_BUCKET_NAME_MAX + 1]; /* bucket 0 */
    size_t pfx_len;
    bool valid;
    struct ent cur;
    struct ent *grp;
    size_t n_grp, cap_grp, gi;
    bool in_group;
    int after_rc; /* cursor state after a group was loaded */
    MDB_val after_k, after_v;
    uint64_t steps;
    int err;
};

static int cget(struct iter *it, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
    it->steps++;
    return mc_rec_cget(it->eng, it->c, k, v, op);
}

static bool is_long(const struct iter *it, const MDB_val *k)
{
    size_t want = it->pfx_len + MC_SORT_LONG_LEN + (it->versions ? 9 : 0);
    return k->mv_size == want &&
           ((const uint8_t *)k->mv_data)[it->pfx_len + MC_SORT_DIRECT] == 0xFF;
}

/* Decode the key and seq of an LMDB entry. */
static int make_ent(const struct iter *it, const MDB_val *k, const MDB_val *v, struct ent *e)
{
    const uint8_t *kb = k->mv_data;
    e->v = *v;
    if (it->versions) {
        if (k->mv_size < it->pfx_len + 9) {
            return MC_ECORRUPT;
        }
        e->seq = ~mc_get_u64be(kb + k->mv_size - 8);
        if (is_long(it, k)) {
            /* Full key from the record: u8 ver, str bucket, str key. */
            struct mc_rbuf r;
            size_t n;
            mc_rbuf_init(&r, v->mv_data, v->mv_size);
            mc_rbuf_u8(&r);
            mc_rbuf_bytes(&r, MC_BUCKET_NAME_MAX, &n);
            const uint8_t *p = mc_rbuf_bytes(&r, MC_KEY_MAX_BYTES, &n);
            if (!p) {
                return MC_ECORRUPT;
            }
            e->key = (const char *)p;
            e->klen = n;
        } else {
            e->key = (const char *)kb + it->pfx_len;
            e->klen = k->mv_size - it->pfx_len - 9;
        }
    } else {
        if (v->mv_size < 8) {
            return MC_ECORRUPT;
        }
        e->seq = mc_get_u64be(v->mv_data);
        if (is_long(it, k)) {
            e->key = (const char *)v->mv_data + 8;
            e->klen = v->mv_size - 8;
        } else {
            e->key = (const char *)kb + it->pfx_len;
            e->klen = k->mv_size - it->pfx_len;
        }
    }
    return 0;
}

static int keycmp(const char *a, size_t al, const char *b, size_t bl)
{
    size_t n = al < bl ? al : bl;
    int c = memcmp(a, b, n);
    if (c) {
        return c;
    }
    return al < bl ? -1 : al > bl;
}

static int entcmp(const void *pa, const void *pb)
{
    const struct ent *a = pa, *b = pb;
    int c = keycmp(a->key, a->klen, b->key, b->klen);
    if (c) {
        return c;
    }
    return a->seq > b->seq ? -1 : a->seq < b->seq; /* newest first */
}

/* Position on the LMDB entry (k, v) just read with result rc. */
static void land(struct iter *it, int rc, MDB_val *k, MDB_val *v)
{
    it->in_group = false;
    it->valid = false;
    if (rc == MDB_NOTFOUND) {
        return;
    }
    if (rc) {
        it->err = mc_lmdb_err(rc, "list cursor");
        return;
    }
    if (k->mv_size < it->pfx_len || memcmp(k->mv_data, it->pfx, it->pfx_len)) {
        return; /* past the bucket */
    }
    if (!is_long(it, k)) {
        if (make_ent(it, k, v, &it->cur)) {
            it->err = mc_engine_seterr(MC_ECORRUPT, "bad index entry");
            return;
        }
        it->valid = true;
        return;
    }
    /* Load the whole group: every entry sharing bucket 0 key[0:DIRECT] 0xFF. */
    uint8_t gp[MC_BUCKET_NAME_MAX + 1 + MC_SORT_DIRECT + 1];
    size_t gl = it->pfx_len + MC_SORT_DIRECT + 1;
    memcpy(gp, k->mv_data, gl);
    it->n_grp = 0;
    while (rc == 0 && k->mv_size >= gl && !memcmp(k->mv_data, gp, gl)) {
        if (it->n_grp == it->cap_grp) {
            size_t nc = it->cap_grp ? it->cap_grp * 2 : 16;
            struct ent *ng = realloc(it->grp, nc * sizeof(*ng));
            if (!ng) {
                it->err = MC_ENOMEM;
                return;
            }
            it->grp = ng;
            it->cap_grp = nc;
        }
        if (make_ent(it, k, v, &it->grp[it->n_grp])) {
            it->err = mc_engine_seterr(MC_ECORRUPT, "bad index entry");
            return;
        }
        it->n_grp++;
        rc = cget(it, k, v, MDB_NEXT);
    }
    if (rc && rc != MDB_NOTFOUND) {
        it->err = mc_lmdb_err(rc, "list cursor");
        return;
    }
    it->after_rc = rc;
    it->after_k = *k;
    it->after_v = *v;
    qsort(it->grp, it->n_grp, sizeof(*it->grp), entcmp);
    it->in_group = true;
    it->gi = 0;
    it->cur = it->grp[0];
    it->valid = true;
}

static void it_next(struct iter *it)
{
    if (!it->valid) {
        return;
    }
    if (it->in_group) {
        if (++it->gi < it->n_grp) {
            it->cur = it->grp[it->gi];
            return;
        }
        MDB_val k = it->after_k, v = it->after_v;
        land(it, it->after_rc, &k, &v);
        return;
    }
    MDB_val k, v;
    int rc = cget(it, &k, &v, MDB_NEXT);
    land(it, rc, &k, &v);
}

/* First entry with key >= target. */
static void it_seek_ge(struct iter *it, const char *target, size_t tlen)
{
    uint8_t lk[MC_LKEY_MAX + 16];
    memcpy(lk, it->pfx, it->pfx_len);
    size_t n = it->pfx_len;
    if (tlen <= MC_SORT_DIRECT) {
        memcpy(lk + n, target, tlen);
        n += tlen;
    } else {
        memcpy(lk + n, target, MC_SORT_DIRECT);
        n += MC_SORT_DIRECT;
        lk[n++] = 0xFF;
    }
    MDB_val k = {n, lk}, v;
    int rc = cget(it, &k, &v, MDB_SET_RANGE);
    land(it, rc, &k, &v);
    while (it->valid && it->in_group && keycmp(it->cur.key, it->cur.klen, target, tlen) < 0) {
        it_next(it);
    }
}

/* First entry with key > target: the smallest NUL-free string above target is target "\x01". */
static void it_seek_gt(struct iter *it, const char *target, size_t tlen)
{
    char buf[MC_KEY_MAX_BYTES + 2];
    if (tlen > MC_KEY_MAX_BYTES) {
        tlen = MC_KEY_MAX_BYTES;
    }
    memcpy(buf, target, tlen);
    buf[tlen] = 1;
    it_seek_ge(it, buf, tlen + 1);
}

/* Seek past every key starting with p (the successor of p: last non-0xFF byte + 1). */
static void it_seek_past_prefix(struct iter *it, const char *p, size_t plen)
{
    char buf[MC_KEY_MAX_BYTES + 2];
    memcpy(buf, p, plen);
    while (plen && (uint8_t)buf[plen - 1] == 0xFF) {
        plen--;
    }
    if (!plen) {
        it->valid = false;
        return;
    }
    buf[plen - 1] = (char)((uint8_t)buf[plen - 1] + 1);
    it_seek_ge(it, buf, plen);
}

static int it_open(struct iter *it, struct mc_engine *eng, MDB_txn *txn, const char *bucket,
                   bool versions)
{
    memset(it, 0, sizeof(*it));
    it->eng = eng;
    it->versions = versions;
    size_t bl = strlen(bucket);
    memcpy(it->pfx, bucket, bl);
    it->pfx[bl] = 0;
    it->pfx_len = bl + 1;
    int rc = mdb_cursor_open(txn, versions ? eng->versions : eng->objects, &it->c);
    return rc ? mc_lmdb_err(rc, "open cursor") : 0;
}

static void it_close(struct iter *it)
{
    if (it->c) {
        mdb_cursor_close(it->c);
    }
    free(it->grp);
}

/* ---- continuation tokens: hex( 1, type, string, xxh3 ) ---- */

#define TOKEN_VERSION 1

static char *token_make(char type, const char *s, size_t n)
{
    uint8_t raw[2 + MC_KEY_MAX_BYTES + 8];
    raw[0] = TOKEN_VERSION;
    raw[1] = (uint8_t)type;
    memcpy(raw + 2, s, n);
    mc_put_u64le(raw + 2 + n, mc_checksum64(raw, 2 + n));
    size_t rl = 2 + n + 8;
    char *out = malloc(rl * 2 + 1);
    if (!out) {
        return NULL;
    }
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < rl; i++) {
        out[2 * i] = hx[raw[i] >> 4];
        out[2 * i + 1] = hx[raw[i] & 15];
    }
    out[rl * 2] = 0;
    return out;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1;
}

/* Decode into type/out (out has MC_KEY_MAX_BYTES+1 room). */
static int token_parse(const char *tok, char *type, char *out, size_t *n)
{
    size_t tl = strlen(tok);
    if (tl > MC_TOKEN_MAX || tl % 2 || tl < 2 * 10 || tl / 2 > 2 + MC_KEY_MAX_BYTES + 8) {
        return MC_EBADTOKEN;
    }
    uint8_t raw[2 + MC_KEY_MAX_BYTES + 8];
    size_t rl = tl / 2;
    for (size_t i = 0; i < rl; i++) {
        int hi = hexval(tok[2 * i]), lo = hexval(tok[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return MC_EBADTOKEN;
        }
        raw[i] = (uint8_t)(hi << 4 | lo);
    }
    if (raw[0] != TOKEN_VERSION || (raw[1] != 'K' && raw[1] != 'C') ||
        mc_get_u64le(raw + rl - 8) != mc_checksum64(raw, rl - 8)) {
        return MC_EBADTOKEN;
    }
    *n = rl - 10;
    if (mc_validate_key((const char *)raw + 2, *n)) {
        return MC_EBADTOKEN;
    }
    *type = (char)raw[1];
    memcpy(out, raw + 2, *n);
    out[*n] = 0;
    return 0;
}

/* ---- result building ---- */

struct builder {
    struct mc_list_result *r;
    uint32_t cap_e, cap_p;
};

static char *dupn(const char *s, size_t n)
{
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = 0;
    }
    return d;
}

static int add_prefix(struct builder *b, const char *s, size_t n)
{
    struct mc_list_result *r = b->r;
    if (r->n_prefixes == b->cap_p) {
        uint32_t nc = b->cap_p ? b->cap_p * 2 : 16;
        char **np = realloc(r->common_prefixes, nc * sizeof(char *));
        if (!np) {
            return MC_ENOMEM;
        }
        r->common_prefixes = np;
        b->cap_p = nc;
    }
    char *d = dupn(s, n);
    if (!d) {
        return MC_ENOMEM;
    }
    r->common_prefixes[r->n_prefixes++] = d;
    r->key_count++;
    return 0;
}

static struct mc_version *add_entry(struct builder *b)
{
    struct mc_list_result *r = b->r;
    if (r->n_entries == b->cap_e) {
        uint32_t nc = b->cap_e ? b->cap_e * 2 : 16;
        struct mc_version *ne = realloc(r->entries, nc * sizeof(*ne));
        if (!ne) {
            return NULL;
        }
        r->entries = ne;
        b->cap_e = nc;
    }
    struct mc_version *v = &r->entries[r->n_entries];
    memset(v, 0, sizeof(*v));
    return v;
}

void mc_list_result_clear(struct mc_list_result *r)
{
    for (uint32_t i = 0; i < r->n_entries; i++) {
        mc_version_clear(&r->entries[i]);
    }
    free(r->entries);
    for (uint32_t i = 0; i < r->n_prefixes; i++) {
        free(r->common_prefixes[i]);
    }
    free(r->common_prefixes);
    free(r->next_continuation_token);
    free(r->next_key_marker);
    free(r->next_version_id_marker);
    memset(r, 0, sizeof(*r));
}

/* Common-prefix length of key under prefix/delimiter, or 0 when the key is not rolled up. */
static size_t rollup_len(const struct ent *e, size_t pl, const char *d, size_t dl)
{
    if (!dl || e->klen < pl + dl) {
        return 0;
    }
    const char *hit = memmem(e->key + pl, e->klen - pl, d, dl);
    return hit ? (size_t)(hit - e->key) + dl : 0;
}

static bool has_prefix(const struct ent *e, const char *pfx, size_t pl)
{
    return e->klen >= pl && !memcmp(e->key, pfx, pl);
}

static int check_params(const struct mc_list_params *p, int *max_keys, const char **pfx, size_t *pl,
                        const char **d, size_t *dl)
{
    if (p->max_keys < 0) {
        return mc_engine_seterr(MC_EINVAL, "max-keys must not be negative");
    }
    *max_keys = p->max_keys == 0 || p->max_keys > MC_LIST_MAX_KEYS ? MC_LIST_MAX_KEYS : p->max_keys;
    *pfx = p->prefix ? p->prefix : "";
    *pl = strlen(*pfx);
    *d = p->delimiter ? p->delimiter : "";
    *dl = strlen(*d);
    if (*pl > MC_KEY_MAX_BYTES) {
        return mc_engine_seterr(MC_EKEYTOOLONG, "prefix longer than %d bytes", MC_KEY_MAX_BYTES);
    }
    if (*dl > MC_DELIMITER_MAX) {
        return mc_engine_seterr(MC_EINVAL, "delimiter longer than %d bytes", MC_DELIMITER_MAX);
    }
    return 0;
}

static int begin(struct mc_engine *eng, const char *bucket, struct mc_rtxn **rt)
{
    int rc = mc_rtxn_get(eng, rt);
    if (rc) {
        return rc;
    }
    rc = mc_bucket_load(eng, (*rt)->txn, bucket, NULL);
    if (rc) {
        mc_rtxn_put(eng, *rt);
    }
    return rc;
}

int mc_engine_list_objects(struct mc_engine *eng, const char *bucket,
                           const struct mc_list_params *p, struct mc_list_result *out)
{
    memset(out, 0, sizeof(*out));
    int max_keys;
    const char *pfx, *d;
    size_t pl, dl;
    int rc = check_params(p, &max_keys, &pfx, &pl, &d, &dl);
    if (rc) {
        return rc;
    }
    char mark[MC_KEY_MAX_BYTES + 1];
    size_t ml = 0;
    char mtype = 0;
    if (p->continuation_token) {
        if (token_parse(p->continuation_token, &mtype, mark, &ml)) {
            return mc_engine_seterr(MC_EBADTOKEN, "malformed continuation token");
        }
    } else if (p->start_after && *p->start_after) {
        ml = strlen(p->start_after);
        if (ml > MC_KEY_MAX_BYTES) {
            return mc_engine_seterr(MC_EKEYTOOLONG, "start-after longer than %d bytes",
                                    MC_KEY_MAX_BYTES);
        }
        memcpy(mark, p->start_after, ml + 1);
        mtype = 'K';
    }
    struct mc_rtxn *rt;
    rc = begin(eng, bucket, &rt);
    if (rc) {
        return rc;
    }
    MDB_txn *txn = rt->txn;
    struct iter it;
    struct builder b = {.r = out};
    rc = it_open(&it, eng, txn, bucket, false);
    if (rc) {
        goto done;
    }
    /* Start: the later of prefix and marker. */
    if (mtype == 'C') {
        it_seek_past_prefix(&it, mark, ml);
    } else if (mtype == 'K') {
        it_seek_gt(&it, mark, ml);
    } else {
        it_seek_ge(&it, pfx, pl);
    }
    if (it.valid && keycmp(it.cur.key, it.cur.klen, pfx, pl) < 0) {
        it_seek_ge(&it, pfx, pl);
    }
    const char *last = NULL;
    size_t last_len = 0;
    char last_type = 0;
    while (it.valid && !it.err && has_prefix(&it.cur, pfx, pl)) {
        if (out->key_count == (uint32_t)max_keys) {
            out->is_truncated = true;
            break;
        }
        size_t cl = rollup_len(&it.cur, pl, d, dl);
        if (cl) {
            if ((rc = add_prefix(&b, it.cur.key, cl))) {
                goto done;
            }
            last = out->common_prefixes[out->n_prefixes - 1];
            last_len = cl;
            last_type = 'C';
            it_seek_past_prefix(&it, last, cl);
            continue;
        }
        struct mc_version *v = add_entry(&b);
        if (!v) {
            rc = MC_ENOMEM;
            goto done;
        }
        struct mc_lkey lk;
        mc_lkey_version(&lk, bucket, it.cur.key, it.cur.klen, it.cur.seq);
        MDB_val k = {lk.len, lk.b}, val;
        int mrc = mc_rec_get(eng, txn, eng->versions, &k, &val);
        if (mrc == MC_REC_BADSUM) {
            rc = MC_ECORRUPT;
            goto done;
        }
        if (mrc) {
            rc = mc_engine_seterr(MC_ECORRUPT, "objects index points to a missing version");
            goto done;
        }
        rc = mc_version_decode2(val.mv_data, val.mv_size, false, v);
        if (rc) {
            rc = mc_engine_seterr(MC_ECORRUPT, "undecodable version record");
            goto done;
        }
        v->is_latest = true;
        out->n_entries++;
        out->key_count++;
        last = v->key;
        last_len = it.cur.klen;
        last_type = 'K';
        it_next(&it);
    }
    if (it.err) {
        rc = it.err;
        goto done;
    }
    if (out->is_truncated && last) {
        out->next_continuation_token = token_make(last_type, last, last_len);
        if (!out->next_continuation_token) {
            rc = MC_ENOMEM;
        }
    }
done:
    out->cursor_steps = it.steps;
    it_close(&it);
    mc_rtxn_put(eng, rt);
    if (rc) {
        mc_list_result_clear(out);
    }
    return rc;
}

int mc_engine_list_versions(struct mc_engine *eng, const char *bucket,
                            const struct mc_list_params *p, struct mc_list_result *out)
{
    memset(out, 0, sizeof(*out));
    out->is_versions = true;
    int max_keys;
    const char *pfx, *d;
    size_t pl, dl;
    int rc = check_params(p, &max_keys, &pfx, &pl, &d, &dl);
    if (rc) {
        return rc;
    }
    const char *km = p->key_marker && *p->key_marker ? p->key_marker : NULL;
    const char *vm = p->version_id_marker && *p->version_id_marker ? p->version_id_marker : NULL;
    if (vm && !km) {
        return mc_engine_seterr(MC_EINVAL, "version-id-marker needs key-marker");
    }
    size_t kml = km ? strlen(km) : 0;
    if (kml > MC_KEY_MAX_BYTES) {
        return mc_engine_seterr(MC_EKEYTOOLONG, "key-marker longer than %d bytes",
                                MC_KEY_MAX_BYTES);
    }
    struct mc_rtxn *rt;
    rc = begin(eng, bucket, &rt);
    if (rc) {
        out->is_versions = true;
        return rc;
    }
    MDB_txn *txn = rt->txn;
    struct iter it;
    struct builder b = {.r = out};
    rc = it_open(&it, eng, txn, bucket, true);
    if (rc) {
        goto done;
    }
    /* Entries of this key after the start are not the latest (a newer one came before). */
    const char *cur_key = NULL;
    size_t cur_len = 0;
    if (vm) {
        struct mc_version mv;
        rc = mc_find_version(eng, txn, bucket, km, vm, false, &mv);
        if (rc) {
            rc = mc_engine_seterr(rc, "version-id-marker %s of key-marker not found", vm);
            goto done;
        }
        uint64_t mseq = mv.seq;
        mc_version_clear(&mv);
        if (kml <= MC_SORT_DIRECT) {
            struct mc_lkey lk;
            mc_lkey_version(&lk, bucket, km, kml, mseq);
            MDB_val k = {lk.len, lk.b}, v;
            int mrc = cget(&it, &k, &v, MDB_SET_RANGE);
            land(&it, mrc, &k, &v);
        } else {
            it_seek_ge(&it, km, kml);
        }
        while (it.valid && keycmp(it.cur.key, it.cur.klen, km, kml) == 0 && it.cur.seq >= mseq) {
            it_next(&it);
        }
        cur_key = km;
        cur_len = kml;
    } else if (km) {
        struct ent me = {.key = km, .klen = kml};
        size_t cl = rollup_len(&me, pl, d, dl);
        if (cl == kml && has_prefix(&me, pfx, pl)) {
            it_seek_past_prefix(&it, km, kml); /* the marker was a common prefix */
        } else {
            it_seek_gt(&it, km, kml);
        }
    } else {
        it_seek_ge(&it, pfx, pl);
    }
    if (it.valid && keycmp(it.cur.key, it.cur.klen, pfx, pl) < 0) {
        it_seek_ge(&it, pfx, pl);
        cur_key = NULL;
    }
    char last_type = 0;
    while (it.valid && !it.err && has_prefix(&it.cur, pfx, pl)) {
        if (out->key_count == (uint32_t)max_keys) {
            out->is_truncated = true;
            break;
        }
        size_t cl = rollup_len(&it.cur, pl, d, dl);
        if (cl) {
            if ((rc = add_prefix(&b, it.cur.key, cl))) {
                goto done;
            }
            last_type = 'C';
            it_seek_past_prefix(&it, out->common_prefixes[out->n_prefixes - 1], cl);
            cur_key = NULL;
            continue;
        }
        struct mc_version *v = add_entry(&b);
        if (!v) {
            rc = MC_ENOMEM;
            goto done;
        }
        rc = mc_version_decode2(it.cur.v.mv_data, it.cur.v.mv_size, false, v);
        if (rc) {
            rc = mc_engine_seterr(MC_ECORRUPT, "undecodable version record");
            goto done;
        }
        out->n_entries++;
        out->key_count++;
        v->is_latest = !(cur_key && keycmp(cur_key, cur_len, it.cur.key, it.cur.klen) == 0);
        cur_key = v->key;
        cur_len = it.cur.klen;
        last_type = 'K';
        it_next(&it);
    }
    if (it.err) {
        rc = it.err;
        goto done;
    }
    if (out->is_truncated) {
        if (last_type == 'C') {
            out->next_key_marker = strdup(out->common_prefixes[out->n_prefixes - 1]);
        } else if (last_type == 'K') {
            struct mc_version *lv = &out->entries[out->n_entries - 1];
            out->next_key_marker = strdup(lv->key);
            out->next_version_id_marker = strdup(mc_s(lv->version_id));
        }
    }
done:
    out->cursor_steps = it.steps;
    it_close(&it);
    mc_rtxn_put(eng, rt);
    if (rc) {
        mc_list_result_clear(out);
        out->is_versions = true;
    }
    return rc;
}
