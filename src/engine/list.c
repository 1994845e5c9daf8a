/* list.c: ListObjectsV2 and ListObjectVersions with S3 semantics, O(page) via seeks past prefixes.
 */
#include "engine/internal.h"
#include "util/checksum.h"

#include <assert.h>
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

/* The loaded group holds every key that starts with target's first MC_SORT_DIRECT bytes and
 * is longer than that: a target of that shape sorts inside it (or just past its end). */
static bool in_loaded_group(const struct iter *it, const char *target, size_t tlen)
{
    return it->valid && it->in_group && tlen > MC_SORT_DIRECT &&
           !memcmp(it->grp[0].key, target, MC_SORT_DIRECT);
}

/* Binary search in the group in hand for the first entry with key >= target (versions of a
 * key are newest first, so this is the key's newest), or past the group. Reloading and
 * re-sorting the group per seek made a delimiter listing over one group cost page x group x
 * log(group): a page of common prefixes under a 5,000-key group took 1.5 s and blocked the
 * node's loop. Seeks in a listing only go forwards, but searching the whole group is as cheap. */
static void group_seek(struct iter *it, const char *target, size_t tlen)
{
    size_t lo = 0, hi = it->n_grp;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct ent *e = &it->grp[mid];
        if (keycmp(e->key, e->klen, target, tlen) < 0) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    if (lo < it->n_grp) {
        it->gi = lo;
        it->cur = it->grp[lo];
        return;
    }
    MDB_val k = it->after_k, v = it->after_v;
    land(it, it->after_rc, &k, &v);
}

/* First entry with key >= target. */
static void it_seek_ge(struct iter *it, const char *target, size_t tlen)
{
    if (in_loaded_group(it, target, tlen)) {
        group_seek(it, target, tlen);
        return;
    }
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
    if (in_loaded_group(it, target, tlen)) {
        group_seek(it, target, tlen);
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

/* Longest token: hex of version, type, a key of MC_KEY_MAX_BYTES and the checksum, plus NUL. */
#define TOKEN_CHARS_MAX (2 * (2 + MC_KEY_MAX_BYTES + 8) + 1)

/* Writes the token for (type, s) into out; returns its length. */
static size_t token_make(char type, const char *s, size_t n, char out[TOKEN_CHARS_MAX])
{
    uint8_t raw[2 + MC_KEY_MAX_BYTES + 8];
    assert(n <= MC_KEY_MAX_BYTES);
    raw[0] = TOKEN_VERSION;
    raw[1] = (uint8_t)type;
    memcpy(raw + 2, s, n);
    mc_put_u64le(raw + 2 + n, mc_checksum64(raw, 2 + n));
    size_t rl = 2 + n + 8;
    static const char hx[] = "0123456789abcdef";
    for (size_t i = 0; i < rl; i++) {
        out[2 * i] = hx[raw[i] >> 4];
        out[2 * i + 1] = hx[raw[i] & 15];
    }
    out[rl * 2] = 0;
    return rl * 2;
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
        int hi = mc_hex_digit((unsigned char)tok[2 * i], false); /* lowercase only: one spelling */
        int lo = mc_hex_digit((unsigned char)tok[2 * i + 1], false);
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

/* ---- output ----
 * A listing is written in one pass straight into the caller's buffer, in the wire form of
 * mc_list_result_encode (codec.c): u8 version, u8 flags, u32 n, n × (u32 length, version),
 * u32 n_prefixes, the prefixes, token, key marker, version-id marker, u64 cursor steps. A stored
 * version record and the wire mc_version are one encoding (codec.c version_encode), so an entry
 * is its record (checksum verified on the bytes in hand) copied up to the inline data, with an
 * empty inline field and the is_latest bit set: nothing is decoded or allocated per entry. The
 * common prefixes follow the entries on the wire but interleave with them in key order, so they
 * are collected aside (one buffer per listing, only when there are some). */

#define LIST_WIRE_VERSION 1 /* RECORD_VERSION of codec.c */

struct lout {
    struct mc_wbuf *w;
    size_t start;    /* w->len before the listing: restored on error */
    size_t count_at; /* offset of the entry count in w */
    uint32_t n_entries, n_prefixes;
    struct mc_wbuf pfx; /* the common prefixes, encoded (u32 length + bytes each) */
    size_t last_pfx_at; /* offset of the last prefix's bytes in pfx */
};

static void out_begin(struct lout *o, struct mc_wbuf *w)
{
    memset(o, 0, sizeof(*o));
    o->w = w;
    o->start = w->len;
    mc_wbuf_u8(w, LIST_WIRE_VERSION);
    mc_wbuf_u8(w, 0); /* flags: out_end sets them */
    o->count_at = w->len;
    mc_wbuf_u32(w, 0);
    /* At most MC_LIST_MAX_KEYS prefixes of at most MC_KEY_MAX_BYTES each. */
    mc_wbuf_init(&o->pfx, MC_LIST_MAX_KEYS * (4 + MC_KEY_MAX_BYTES));
}

/* Scan a stored version record (checksum verified and stripped). */
static int scan_rec(const MDB_val *v, struct mc_vrec_scan *sc)
{
    if (mc_version_record_scan(v->mv_data, v->mv_size, sc)) {
        return mc_engine_seterr(MC_ECORRUPT, "undecodable version record");
    }
    return 0;
}

/* Append the stored version record v, scanned as *sc, as a listed entry. The record is copied
 * in four runs around what a listing leaves out: user metadata, erasure distribution and parts
 * become empty, and so does the inline data. */
static int out_entry(struct lout *o, const MDB_val *v, const struct mc_vrec_scan *sc,
                     bool is_latest)
{
    const uint8_t *rec = v->mv_data;
    const size_t run[4][2] = {{0, sc->user_meta_off},
                              {sc->user_meta_end, sc->distribution_off},
                              {sc->distribution_end, sc->parts_off},
                              {sc->parts_end, sc->inline_off}};
    size_t n = 0;
    for (int i = 0; i < 4; i++) {
        assert(run[i][0] <= run[i][1]);
        n += run[i][1] - run[i][0] + 4; /* the run, then an empty collection */
    }
    uint8_t *p = mc_wbuf_reserve(o->w, 4 + n);
    if (!p) {
        return mc_wbuf_error(o->w);
    }
    mc_put_u32le(p, (uint32_t)n);
    uint8_t *d = p + 4;
    for (int i = 0; i < 4; i++) {
        size_t len = run[i][1] - run[i][0];
        memcpy(d, rec + run[i][0], len);
        mc_put_u32le(d + len, 0);
        d += len + 4;
    }
    uint8_t *flags = p + 4 + sc->flags_off; /* in the first run */
    *flags = (uint8_t)((*flags & ~2u) | (is_latest ? 2u : 0u));
    o->n_entries++;
    return 0;
}

/* The page is full: max_keys items, or MC_LIST_PAGE_BYTES of output (an item more would still
 * fit a reply frame: an entry without its collections is at most ~8 KiB). */
static bool out_full(const struct lout *o, int max_keys)
{
    return o->n_entries + o->n_prefixes == (uint32_t)max_keys ||
           (o->w->len - o->start) + o->pfx.len >= MC_LIST_PAGE_BYTES;
}

static int out_prefix(struct lout *o, const char *s, size_t n)
{
    mc_wbuf_bytes(&o->pfx, s, n);
    int rc = mc_wbuf_error(&o->pfx);
    if (rc) {
        return rc;
    }
    o->last_pfx_at = o->pfx.len - n;
    o->n_prefixes++;
    return 0;
}

/* The bytes of the last prefix added (valid until the next out_prefix or out_end). */
static const char *out_last_prefix(const struct lout *o)
{
    return (const char *)o->pfx.data + o->last_pfx_at;
}

/* The "next" fields of a truncated listing (not NUL-terminated; NULL = empty). */
struct markers {
    const char *token, *key, *vid;
    size_t token_len, key_len, vid_len;
};

/* Finish the listing (rc == 0) or take it back out of w (rc != 0). Returns rc or w's error. */
static int out_end(struct lout *o, int rc, bool truncated, bool versions, const struct markers *m,
                   uint64_t steps)
{
    struct mc_wbuf *w = o->w;
    if (!rc) {
        mc_wbuf_u32(w, o->n_prefixes);
        mc_wbuf_put(w, o->pfx.data, o->pfx.len);
        mc_wbuf_bytes(w, m->token, m->token_len);
        mc_wbuf_bytes(w, m->key, m->key_len);
        mc_wbuf_bytes(w, m->vid, m->vid_len);
        mc_wbuf_u64(w, steps);
        rc = mc_wbuf_error(w);
    }
    if (!rc) {
        w->data[o->start + 1] = (uint8_t)((truncated ? 1 : 0) | (versions ? 2 : 0));
        mc_wbuf_patch_u32(w, o->count_at, o->n_entries);
    } else if (w->len > o->start) {
        w->len = o->start;
    }
    mc_wbuf_free(&o->pfx);
    return rc;
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

/* A listing's request, checked: everything that can refuse it is decided before any output. */
struct listing {
    bool versions;
    bool direct; /* ListObjectsV2 of an unversioned bucket: walk the versions table itself */
    int max_keys;
    const char *pfx, *d;
    size_t pl, dl;
    /* ListObjectsV2: where to start, from the token ('K' key / 'C' common prefix) or start-after */
    char mark[MC_KEY_MAX_BYTES + 1];
    size_t ml;
    char mtype;
    /* ListObjectVersions: key-marker, version-id-marker and the marker version's seq */
    const char *km, *vm;
    size_t kml;
    uint64_t mseq;
    bool marker_was_latest; /* the gone marker was key-marker's newest version (marker_gone) */
};

static int check_params(const struct mc_list_params *p, struct listing *ls)
{
    if (p->max_keys < 0) {
        return mc_engine_seterr(MC_EINVAL, "max-keys must not be negative");
    }
    ls->max_keys =
        p->max_keys == 0 || p->max_keys > MC_LIST_MAX_KEYS ? MC_LIST_MAX_KEYS : p->max_keys;
    ls->pfx = p->prefix ? p->prefix : "";
    ls->pl = strlen(ls->pfx);
    ls->d = p->delimiter ? p->delimiter : "";
    ls->dl = strlen(ls->d);
    if (ls->pl > MC_KEY_MAX_BYTES) {
        return mc_engine_seterr(MC_EKEYTOOLONG, "prefix longer than %d bytes", MC_KEY_MAX_BYTES);
    }
    if (ls->dl > MC_DELIMITER_MAX) {
        return mc_engine_seterr(MC_EINVAL, "delimiter longer than %d bytes", MC_DELIMITER_MAX);
    }
    return 0;
}

/* At most this many versions of key-marker are read to place a gone marker (the walk runs on the
 * node's loop; a made-up marker must not make it read every version of a large key). */
#define MARKER_WALK_MAX 10000

/* Whether a version's id is its op time (the ids nodes make since session 7; before: µs + a
 * counter, which also looks like 16 hex digits). */
static bool is_op_time_id(const struct mc_vrec_scan *sc)
{
    char want[17];
    mc_version_id_from_time(want, sc->mod_time_ns);
    return sc->version_id_len == 16 && memcmp(sc->version_id, want, 16) == 0;
}

static int marker_unplaceable(const struct listing *ls, const char *why)
{
    return mc_engine_seterr(MC_ENOVERSION, "version-id-marker %s of key-marker not found (%s)",
                            ls->vm, why);
}

/* The version-id-marker names no version of key-marker: deleted between two pages. S3 treats the
 * marker as a position. A version id a node makes is its op time in ns (node_write.c stamp), and
 * a key's versions, newest first, have non-increasing mod times (op times: a leader never stamps
 * below an applied one), so the listing resumes at the first version of key-marker older than
 * the marker's time (ls->mseq = its seq + 1; 0 = past the key). The reading "id = time" is
 * trusted only where the versions around that position carry op-time ids: an older-format id
 * (µs + counter, also 16 hex digits) read as a time would skip or repeat versions, and is
 * answered NoSuchVersion as before; so are the "null" version and keys with more than
 * MARKER_WALK_MAX newer versions, and a marker whose time is above the newest op time applied
 * (it cannot be an op-time id: most older-format ids read as times are). Left: an
 * older-format marker that was the key's oldest version, under only op-time versions, whose
 * id read as a time falls between their op times and the newest op time is placed among them
 * (some of the key's versions repeat on the next page); over the id space that is a window of
 * (now - first op-time version) in 2^64 ns, about 1e-4 for a month. */
static int marker_gone(struct mc_engine *eng, MDB_txn *txn, const char *bucket, struct listing *ls)
{
    uint64_t t = 0;
    size_t n = strlen(ls->vm);
    for (size_t i = 0; i < n && n == 16; i++) {
        int h = mc_hex_digit((unsigned char)ls->vm[i], false); /* ids are lowercase */
        if (h < 0) {
            n = 0;
            break;
        }
        t = t << 4 | (uint64_t)h;
    }
    if (n != 16 || t > (uint64_t)INT64_MAX) {
        return marker_unplaceable(ls, "not an op-time id");
    }
    /* The marker's version was written at op time t, so t is at most the newest op time
       applied (apply.c session_clock; its delete came after, but a delete made offline may
       carry no time). An older-format id read as a time is anywhere in
       0..2^64, mostly above it: such a marker, when it was the key's oldest version under only
       op-time ones, would be placed above them all and the key's versions listed again. */
    MDB_val ck = {13, "session_clock"}, cv;
    int mrc = mc_rec_get(eng, txn, eng->meta, &ck, &cv);
    if (mrc && mrc != MDB_NOTFOUND) {
        return mc_lmdb_err(mrc, "read session_clock");
    }
    if (mrc || cv.mv_size != 8 || t > mc_get_u64le(cv.mv_data)) {
        return marker_unplaceable(ls, "not an op-time id: after the newest op time");
    }
    struct iter it;
    int rc = it_open(&it, eng, txn, bucket, true);
    if (!rc) {
        it_seek_ge(&it, ls->km, ls->kml);
        ls->mseq = 0;
        size_t walked = 0;
        bool prev_op_id = true; /* the newer neighbour's id (none: nothing to distrust) */
        while (it.valid && !it.err && keycmp(it.cur.key, it.cur.klen, ls->km, ls->kml) == 0) {
            struct mc_vrec_scan sc;
            if (++walked > MARKER_WALK_MAX) {
                rc = marker_unplaceable(ls, "too many newer versions to place it");
                break;
            }
            if ((rc = scan_rec(&it.cur.v, &sc))) {
                break;
            }
            bool op_id = is_op_time_id(&sc);
            if (sc.mod_time_ns < (int64_t)t) {
                if (!op_id || !prev_op_id) {
                    rc = marker_unplaceable(ls, "older-format ids around it");
                    break;
                }
                ls->mseq = it.cur.seq + 1;
                ls->marker_was_latest = walked == 1;
                break;
            }
            prev_op_id = op_id;
            it_next(&it);
        }
        if (!rc && it.err) {
            rc = it.err;
        }
        if (!rc && ls->mseq == 0 && !prev_op_id) {
            rc = marker_unplaceable(ls, "older-format ids around it");
        }
    }
    it_close(&it);
    return rc;
}

/* The listing's bucket. A missing one says so: mc_bucket_load leaves the thread's last message
 * as it was, and a refusal is answered with that message (node_read.c). */
static int prepare(struct mc_engine *eng, MDB_txn *txn, const char *bucket,
                   const struct mc_list_params *p, bool versions, struct listing *ls)
{
    memset(ls, 0, sizeof(*ls));
    ls->versions = versions;
    int rc = check_params(p, ls);
    if (rc) {
        return rc;
    }
    if (!versions) {
        if (p->continuation_token) {
            if (token_parse(p->continuation_token, &ls->mtype, ls->mark, &ls->ml)) {
                return mc_engine_seterr(MC_EBADTOKEN, "malformed continuation token");
            }
        } else if (p->start_after && *p->start_after) {
            ls->ml = strlen(p->start_after);
            if (ls->ml > MC_KEY_MAX_BYTES) {
                return mc_engine_seterr(MC_EKEYTOOLONG, "start-after longer than %d bytes",
                                        MC_KEY_MAX_BYTES);
            }
            memcpy(ls->mark, p->start_after, ls->ml + 1);
            ls->mtype = 'K';
        }
        struct mc_bucket_info b;
        rc = mc_bucket_load(eng, txn, bucket, &b);
        /* An unversioned bucket has one version per key and no delete markers (apply.c
           op_put/op_delete): its versions table lists like the objects index, without the
           second lookup per key. */
        ls->direct = !rc && b.versioning == MC_VERSIONING_UNVERSIONED;
        return rc;
    }
    ls->km = p->key_marker && *p->key_marker ? p->key_marker : NULL;
    ls->vm = p->version_id_marker && *p->version_id_marker ? p->version_id_marker : NULL;
    if (ls->vm && !ls->km) {
        return mc_engine_seterr(MC_EINVAL, "version-id-marker needs key-marker");
    }
    ls->kml = ls->km ? strlen(ls->km) : 0;
    if (ls->kml > MC_KEY_MAX_BYTES) {
        return mc_engine_seterr(MC_EKEYTOOLONG, "key-marker longer than %d bytes",
                                MC_KEY_MAX_BYTES);
    }
    /* The bucket before the marker: S3 answers a missing bucket 404 NoSuchBucket whatever the
       marker holds (the marker only means something inside a bucket). */
    rc = mc_bucket_load(eng, txn, bucket, NULL);
    if (rc || !ls->vm) {
        return rc;
    }
    if (mc_validate_version_id(ls->vm)) {
        return mc_engine_seterr(MC_EINVAL, "version-id-marker is not a version id");
    }
    struct mc_version mv;
    rc = mc_find_version(eng, txn, bucket, ls->km, ls->vm, false, &mv);
    if (rc == MC_ENOVERSION) {
        return marker_gone(eng, txn, bucket, ls);
    }
    if (rc) {
        return rc;
    }
    ls->mseq = mv.seq;
    mc_version_clear(&mv);
    return 0;
}

static int list_objects(struct mc_engine *eng, struct mc_rtxn *rt, const char *bucket,
                        const struct listing *ls, struct mc_wbuf *w)
{
    const char *pfx = ls->pfx, *d = ls->d;
    size_t pl = ls->pl, dl = ls->dl;
    MDB_cursor *vc;
    int rc = mc_rtxn_versions(eng, rt, &vc);
    if (rc) {
        return rc;
    }
    struct iter it;
    struct lout o;
    struct markers m = {0};
    char token[TOKEN_CHARS_MAX];
    bool truncated = false;
    out_begin(&o, w);
    rc = it_open(&it, eng, rt->txn, bucket, ls->direct);
    if (rc) {
        goto done;
    }
    /* Start: the later of prefix and marker. */
    if (ls->mtype == 'C') {
        it_seek_past_prefix(&it, ls->mark, ls->ml);
    } else if (ls->mtype == 'K') {
        it_seek_gt(&it, ls->mark, ls->ml);
    } else {
        it_seek_ge(&it, pfx, pl);
    }
    if (it.valid && keycmp(it.cur.key, it.cur.klen, pfx, pl) < 0) {
        it_seek_ge(&it, pfx, pl);
    }
    const char *last = NULL, *seen = NULL; /* last listed key or prefix; last key walked */
    size_t last_len = 0, seen_len = 0;
    char last_type = 0;
    while (it.valid && !it.err && has_prefix(&it.cur, pfx, pl)) {
        if (out_full(&o, ls->max_keys)) {
            truncated = true;
            break;
        }
        size_t cl = rollup_len(&it.cur, pl, d, dl);
        if (cl) {
            if ((rc = out_prefix(&o, it.cur.key, cl))) {
                goto done;
            }
            last = out_last_prefix(&o);
            last_len = cl;
            last_type = 'C';
            it_seek_past_prefix(&it, last, cl);
            continue;
        }
        MDB_val val;
        struct mc_vrec_scan sc;
        if (ls->direct) {
            /* The first version of a key is its latest; a delete marker hides the key. Neither
               an older version nor a marker occurs in an unversioned bucket: skipping them
               keeps the walk exact anyway. */
            bool older = seen && keycmp(seen, seen_len, it.cur.key, it.cur.klen) == 0;
            seen = it.cur.key;
            seen_len = it.cur.klen;
            val = it.cur.v;
            if (older) {
                it_next(&it);
                continue;
            }
            if ((rc = scan_rec(&val, &sc))) {
                goto done;
            }
            if (sc.is_delete_marker) {
                it_next(&it);
                continue;
            }
        } else {
            struct mc_lkey lk;
            mc_lkey_version(&lk, bucket, it.cur.key, it.cur.klen, it.cur.seq);
            MDB_val k = {lk.len, lk.b};
            /* Through a cursor, not mdb_get (a descent from the root per key): MDB_SET on a
               positioned cursor searches its current leaf first, and consecutive keys' latest
               versions mostly share a leaf. (MDB_NEXT and a compare was slower: measured.) */
            int mrc = mc_rec_cget(eng, vc, &k, &val, MDB_SET);
            if (mrc == MDB_NOTFOUND) {
                rc = mc_engine_seterr(MC_ECORRUPT, "objects index points to a missing version");
                goto done;
            }
            if (mrc) {
                rc = mc_lmdb_err(mrc, "seek version");
                goto done;
            }
            if ((rc = scan_rec(&val, &sc))) {
                goto done;
            }
        }
        if ((rc = out_entry(&o, &val, &sc, true))) {
            goto done;
        }
        last = it.cur.key;
        last_len = it.cur.klen;
        last_type = 'K';
        it_next(&it);
    }
    if (it.err) {
        rc = it.err;
        goto done;
    }
    if (truncated && last) {
        m.token = token;
        m.token_len = token_make(last_type, last, last_len, token);
    }
done:
    rc = out_end(&o, rc, truncated, false, &m, it.steps);
    it_close(&it);
    return rc;
}

static int list_versions(struct mc_engine *eng, struct mc_rtxn *rt, const char *bucket,
                         const struct listing *ls, struct mc_wbuf *w)
{
    const char *pfx = ls->pfx, *d = ls->d, *km = ls->km;
    size_t pl = ls->pl, dl = ls->dl, kml = ls->kml;
    struct iter it;
    struct lout o;
    struct markers m = {0};
    bool truncated = false;
    out_begin(&o, w);
    int rc = it_open(&it, eng, rt->txn, bucket, true);
    if (rc) {
        goto done;
    }
    /* Entries of this key after the start are not the latest (a newer one came before). */
    const char *cur_key = NULL;
    size_t cur_len = 0;
    if (ls->vm) {
        if (kml <= MC_SORT_DIRECT) {
            struct mc_lkey lk;
            mc_lkey_version(&lk, bucket, km, kml, ls->mseq);
            MDB_val k = {lk.len, lk.b}, v;
            int mrc = cget(&it, &k, &v, MDB_SET_RANGE);
            land(&it, mrc, &k, &v);
        } else {
            it_seek_ge(&it, km, kml);
        }
        while (it.valid && keycmp(it.cur.key, it.cur.klen, km, kml) == 0 &&
               it.cur.seq >= ls->mseq) {
            it_next(&it);
        }
        /* A gone marker that was the key's newest version leaves the next one the latest. */
        cur_key = ls->marker_was_latest ? NULL : km;
        cur_len = ls->marker_was_latest ? 0 : kml;
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
    struct mc_vrec_scan last = {0};
    while (it.valid && !it.err && has_prefix(&it.cur, pfx, pl)) {
        if (out_full(&o, ls->max_keys)) {
            truncated = true;
            break;
        }
        size_t cl = rollup_len(&it.cur, pl, d, dl);
        if (cl) {
            if ((rc = out_prefix(&o, it.cur.key, cl))) {
                goto done;
            }
            last_type = 'C';
            it_seek_past_prefix(&it, out_last_prefix(&o), cl);
            cur_key = NULL;
            continue;
        }
        bool latest = !(cur_key && keycmp(cur_key, cur_len, it.cur.key, it.cur.klen) == 0);
        if ((rc = scan_rec(&it.cur.v, &last)) || (rc = out_entry(&o, &it.cur.v, &last, latest))) {
            goto done;
        }
        cur_key = it.cur.key;
        cur_len = it.cur.klen;
        last_type = 'K';
        it_next(&it);
    }
    if (it.err) {
        rc = it.err;
        goto done;
    }
    if (truncated && last_type == 'C') {
        m.key = out_last_prefix(&o);
        m.key_len = (size_t)(o.pfx.len - o.last_pfx_at);
    } else if (truncated && last_type == 'K') {
        m.key = last.key;
        m.key_len = last.key_len;
        m.vid = last.version_id;
        m.vid_len = last.version_id_len;
    }
done:
    rc = out_end(&o, rc, truncated, true, &m, it.steps);
    it_close(&it);
    return rc;
}

/* Check the request, then list into the buffer sink(ctx) gives: nothing can refuse it after. */
int mc_engine_list_encode_to(struct mc_engine *eng, const char *bucket,
                             const struct mc_list_params *p, bool versions, mc_list_sink_fn sink,
                             void *ctx)
{
    assert(sink);
    mc_engine_clearerr();
    struct mc_rtxn *rt;
    int rc = mc_rtxn_get(eng, &rt);
    if (rc) {
        return rc;
    }
    struct listing ls;
    rc = prepare(eng, rt->txn, bucket, p, versions, &ls);
    if (!rc) {
        struct mc_wbuf *w = sink(ctx);
        if (!w) {
            rc = MC_ESHUTDOWN;
        } else {
            rc = versions ? list_versions(eng, rt, bucket, &ls, w)
                          : list_objects(eng, rt, bucket, &ls, w);
        }
    }
    mc_rtxn_put(eng, rt);
    return rc;
}

static struct mc_wbuf *sink_given(void *w)
{
    return w;
}

int mc_engine_list_encode(struct mc_engine *eng, const char *bucket, const struct mc_list_params *p,
                          bool versions, struct mc_wbuf *w)
{
    assert(w);
    return mc_engine_list_encode_to(eng, bucket, p, versions, sink_given, w);
}

/* The struct form: the wire form decoded (one implementation of the listing semantics). */
static int list_decoded(struct mc_engine *eng, const char *bucket, const struct mc_list_params *p,
                        bool versions, struct mc_list_result *out)
{
    memset(out, 0, sizeof(*out));
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    int rc = mc_engine_list_encode(eng, bucket, p, versions, &w);
    if (!rc) {
        rc = mc_list_result_decode(w.data, w.len, out);
        if (rc == MC_EPROTO) {
            rc = mc_engine_seterr(MC_ECORRUPT, "undecodable version record");
        }
    }
    mc_wbuf_free(&w);
    if (rc) {
        mc_list_result_clear(out);
        out->is_versions = versions;
    }
    return rc;
}

int mc_engine_list_objects(struct mc_engine *eng, const char *bucket,
                           const struct mc_list_params *p, struct mc_list_result *out)
{
    return list_decoded(eng, bucket, p, false, out);
}

int mc_engine_list_versions(struct mc_engine *eng, const char *bucket,
                            const struct mc_list_params *p, struct mc_list_result *out)
{
    return list_decoded(eng, bucket, p, true, out);
}
