/* msg_codec.c: bounded binary encoding of Raft messages for the peer transport. */
#include "raft/raft_int.h"
#include "util/codec.h"

#include <stdlib.h>
#include <string.h>

#define MSG_VERSION 1
/* Smallest encoded entry: index, term, type, payload length. */
#define MIN_ENTRY_BYTES (8 + 8 + 1 + 4)

int mc_raft_msg_encode(const struct mc_raft_msg *m, struct mc_wbuf *w)
{
    mc_wbuf_u8(w, MSG_VERSION);
    mc_wbuf_u8(w, m->type);
    mc_wbuf_u8(w, m->reject);
    mc_wbuf_u8(w, m->flags);
    mc_wbuf_u64(w, m->from);
    mc_wbuf_u64(w, m->to);
    mc_wbuf_u64(w, m->term);
    mc_wbuf_u64(w, m->index);
    mc_wbuf_u64(w, m->log_term);
    mc_wbuf_u64(w, m->commit);
    mc_wbuf_u64(w, m->reject_hint);
    mc_wbuf_u64(w, m->hint_term);
    mc_wbuf_u64(w, m->ctx);
    mc_wbuf_u32(w, m->n_entries);
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct mc_raft_entry *e = &m->entries[i];
        mc_wbuf_u64(w, e->index);
        mc_wbuf_u64(w, e->term);
        mc_wbuf_u8(w, e->type);
        mc_wbuf_bytes(w, e->data, e->len);
    }
    if (m->type == MC_RAFT_MSG_SNAPSHOT) {
        mc_wbuf_u64(w, m->snapshot.index);
        mc_wbuf_u64(w, m->snapshot.term);
        conf_encode(w, &m->snapshot.conf);
    }
    return mc_wbuf_error(w);
}

int mc_raft_msg_decode(const uint8_t *buf, size_t len, struct mc_raft_msg *m)
{
    memset(m, 0, sizeof(*m));
    if (len > MC_RAFT_MAX_MSG_BYTES) {
        return MC_EPROTO;
    }
    struct mc_rbuf rb;
    mc_rbuf_init(&rb, buf, len);
    if (mc_rbuf_u8(&rb) != MSG_VERSION) {
        return MC_EPROTO;
    }
    m->type = mc_rbuf_u8(&rb);
    m->reject = mc_rbuf_u8(&rb);
    m->flags = mc_rbuf_u8(&rb);
    m->from = mc_rbuf_u64(&rb);
    m->to = mc_rbuf_u64(&rb);
    m->term = mc_rbuf_u64(&rb);
    m->index = mc_rbuf_u64(&rb);
    m->log_term = mc_rbuf_u64(&rb);
    m->commit = mc_rbuf_u64(&rb);
    m->reject_hint = mc_rbuf_u64(&rb);
    m->hint_term = mc_rbuf_u64(&rb);
    m->ctx = mc_rbuf_u64(&rb);
    uint32_t n = mc_rbuf_u32(&rb);
    if (mc_rbuf_error(&rb) || m->type < MC_RAFT_MSG_APPEND ||
        m->type > MC_RAFT_MSG_READ_INDEX_RESP || m->reject > 1 || n > MC_RAFT_MAX_MSG_ENTRIES ||
        (uint64_t)n * MIN_ENTRY_BYTES > mc_rbuf_remaining(&rb) ||
        (n && m->type != MC_RAFT_MSG_APPEND)) {
        goto bad;
    }
    if (n) {
        m->entries = calloc(n, sizeof(*m->entries));
        if (!m->entries) {
            memset(m, 0, sizeof(*m));
            return MC_ENOMEM;
        }
        m->n_entries = n;
    }
    for (uint32_t i = 0; i < n; i++) {
        struct mc_raft_entry *e = &m->entries[i];
        e->index = mc_rbuf_u64(&rb);
        e->term = mc_rbuf_u64(&rb);
        e->type = mc_rbuf_u8(&rb);
        size_t el = 0;
        const uint8_t *d = mc_rbuf_bytes(&rb, MC_RAFT_MAX_ENTRY_BYTES, &el);
        if (mc_rbuf_error(&rb) || e->type > MC_RAFT_ENTRY_CONF) {
            goto bad;
        }
        e->data = el ? (uint8_t *)d : NULL;
        e->len = (uint32_t)el;
    }
    if (m->type == MC_RAFT_MSG_SNAPSHOT) {
        m->snapshot.index = mc_rbuf_u64(&rb);
        m->snapshot.term = mc_rbuf_u64(&rb);
        if (mc_rbuf_error(&rb) || conf_decode(&rb, &m->snapshot.conf)) {
            goto bad;
        }
    }
    if (mc_rbuf_error(&rb) || mc_rbuf_remaining(&rb) != 0) {
        goto bad;
    }
    return 0;
bad:
    mc_raft_msg_free(m);
    return MC_EPROTO;
}

void mc_raft_msg_free(struct mc_raft_msg *m)
{
    free(m->entries);
    memset(m, 0, sizeof(*m));
}
