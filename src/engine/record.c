/* record.c: checksummed LMDB records: every engine value carries a trailer checked on read. */
#include "engine/internal.h"
#include "util/checksum.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/*
 * LMDB has no page checksums, so a byte flipped on disk (a bad sector, a stray
 * write while the node was down) is served as data. Every value the engine
 * stores is therefore followed by MC_REC_SUM_LEN bytes: the low 32 bits of
 * XXH3-64(value) xor a rotation of XXH3-64(key), so a flip in the key or in the
 * value is caught by the next read of that record (mc_rec_get / mc_rec_cget)
 * and by the full scan (verify.c). 32 bits: a random flip goes unnoticed with
 * probability 2^-32; the trailer costs 4 bytes per record. Not a seeded hash:
 * XXH3 with a seed derives a fresh secret per call above 240 bytes (2.5x slower
 * on a 400-byte version record).
 */

uint32_t mc_rec_sum(const void *k, size_t kl, const void *v, size_t vl)
{
    uint64_t hk = mc_checksum64(k, kl);
    return (uint32_t)(mc_checksum64(v, vl) ^ (hk << 17 | hk >> 47) ^ hk >> 32);
}

const char *mc_dbi_name(const struct mc_engine *eng, MDB_dbi dbi)
{
    if (!eng) {
        return "?";
    }
    if (dbi == eng->meta) {
        return "meta";
    }
    if (dbi == eng->buckets) {
        return "buckets";
    }
    if (dbi == eng->versions) {
        return "versions";
    }
    if (dbi == eng->vids) {
        return "vids";
    }
    if (dbi == eng->objects) {
        return "objects";
    }
    if (dbi == eng->sessions) {
        return "sessions";
    }
    if (dbi == eng->sexp) {
        return "sexp";
    }
    return "?";
}

void mc_rec_key_text(const void *k, size_t kl, char *out, size_t cap)
{
    static const char hx[] = "0123456789abcdef";
    const uint8_t *p = k;
    size_t o = 0;
    assert(cap >= 8);
    for (size_t i = 0; i < kl; i++) {
        if (o + 8 >= cap) {
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' && p[i] != '\'') {
            out[o++] = (char)p[i];
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hx[p[i] >> 4];
            out[o++] = hx[p[i] & 15];
        }
    }
    out[o] = 0;
}

int mc_rec_check(const char *file, const char *dbname, const MDB_val *k, MDB_val *v)
{
    if (v->mv_size >= MC_REC_SUM_LEN) {
        size_t n = v->mv_size - MC_REC_SUM_LEN;
        const uint8_t *t = (const uint8_t *)v->mv_data + n;
        if (mc_get_u32le(t) == mc_rec_sum(k->mv_data, k->mv_size, v->mv_data, n)) {
            v->mv_size = n;
            return 0;
        }
    }
    char kt[160];
    mc_rec_key_text(k->mv_data, k->mv_size, kt, sizeof(kt));
    mc_engine_seterr(MC_ECORRUPT,
                     "%s is corrupt: record checksum mismatch in sub-database '%s' at key '%s' "
                     "(%zu value bytes); wipe the node's data dir so it rejoins from the cluster, "
                     "or restore a backup",
                     file ? file : "data.mdb", dbname, kt, v->mv_size);
    return MC_REC_BADSUM;
}

/* Reserve the value plus trailer, then fill it in place: one copy, as a plain put would make.
 * memmove: v may be the record being replaced (same size: LMDB reserves it in place). */
static void rec_fill(MDB_val *val, const void *k, size_t kl, const void *v, size_t vl)
{
    assert(val->mv_size == vl + MC_REC_SUM_LEN);
    if (vl) {
        memmove(val->mv_data, v, vl);
    }
    mc_put_u32le((uint8_t *)val->mv_data + vl, mc_rec_sum(k, kl, v, vl));
}

int mc_rec_put(struct mc_engine *eng, MDB_txn *txn, MDB_dbi dbi, const void *k, size_t kl,
               const void *v, size_t vl)
{
    MDB_val key = {kl, (void *)k}, val = {vl + MC_REC_SUM_LEN, NULL};
    (void)eng;
    int rc = mdb_put(txn, dbi, &key, &val, MDB_RESERVE);
    if (rc == 0) {
        rec_fill(&val, k, kl, v, vl);
    }
    return rc;
}

int mc_rec_cput(MDB_cursor *c, const void *k, size_t kl, const void *v, size_t vl, unsigned flags)
{
    MDB_val key = {kl, (void *)k}, val = {vl + MC_REC_SUM_LEN, NULL};
    int rc = mdb_cursor_put(c, &key, &val, flags | MDB_RESERVE);
    if (rc == 0) {
        rec_fill(&val, k, kl, v, vl);
    }
    return rc;
}

int mc_rec_get(struct mc_engine *eng, MDB_txn *txn, MDB_dbi dbi, const MDB_val *k, MDB_val *v)
{
    int rc = mdb_get(txn, dbi, (MDB_val *)k, v);
    return rc ? rc : mc_rec_check(eng->file, mc_dbi_name(eng, dbi), k, v);
}

int mc_rec_cget(struct mc_engine *eng, MDB_cursor *c, MDB_val *k, MDB_val *v, MDB_cursor_op op)
{
    int rc = mdb_cursor_get(c, k, v, op);
    return rc ? rc : mc_rec_check(eng->file, mc_dbi_name(eng, mdb_cursor_dbi(c)), k, v);
}
