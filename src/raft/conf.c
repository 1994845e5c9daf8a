/* conf.c: configuration sets and the conf-change entry payload (change + resulting configuration).
 */
#include "raft/raft_int.h"
#include "util/codec.h"

#include <string.h>

#define CONF_PAYLOAD_VERSION 1

bool conf_contains(const uint64_t *ids, uint32_t n, uint64_t id)
{
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

bool mc_raft_conf_is_voter(const struct mc_raft_conf *c, uint64_t id)
{
    return conf_contains(c->voters, c->n_voters, id);
}

bool mc_raft_conf_is_learner(const struct mc_raft_conf *c, uint64_t id)
{
    return conf_contains(c->learners, c->n_learners, id);
}

bool conf_is_any_voter(const struct mc_raft_conf *c, uint64_t id)
{
    return mc_raft_conf_is_voter(c, id) ||
           conf_contains(c->voters_outgoing, c->n_voters_outgoing, id);
}

bool conf_is_member(const struct mc_raft_conf *c, uint64_t id)
{
    return conf_is_any_voter(c, id) || mc_raft_conf_is_learner(c, id);
}

static void remove_id(uint64_t *ids, uint32_t *n, uint64_t id)
{
    for (uint32_t i = 0; i < *n; i++) {
        if (ids[i] == id) {
            memmove(ids + i, ids + i + 1, (*n - i - 1) * sizeof(*ids));
            (*n)--;
            return;
        }
    }
}

static uint32_t n_members(const struct mc_raft_conf *c)
{
    uint32_t n = c->n_voters + c->n_learners;
    for (uint32_t i = 0; i < c->n_voters_outgoing; i++) {
        if (!conf_contains(c->voters, c->n_voters, c->voters_outgoing[i]) &&
            !conf_contains(c->learners, c->n_learners, c->voters_outgoing[i])) {
            n++;
        }
    }
    return n;
}

int conf_validate(const struct mc_raft_conf *c)
{
    if (c->n_voters > MC_RAFT_MAX_NODES || c->n_learners > MC_RAFT_MAX_NODES ||
        c->n_voters_outgoing > MC_RAFT_MAX_NODES || n_members(c) > MC_RAFT_MAX_NODES) {
        return MC_EINVAL;
    }
    for (uint32_t i = 0; i < c->n_voters; i++) {
        if (c->voters[i] == 0 || conf_contains(c->voters, i, c->voters[i])) {
            return MC_EINVAL;
        }
    }
    for (uint32_t i = 0; i < c->n_voters_outgoing; i++) {
        if (c->voters_outgoing[i] == 0 ||
            conf_contains(c->voters_outgoing, i, c->voters_outgoing[i])) {
            return MC_EINVAL;
        }
    }
    for (uint32_t i = 0; i < c->n_learners; i++) {
        if (c->learners[i] == 0 || conf_contains(c->learners, i, c->learners[i]) ||
            conf_contains(c->voters, c->n_voters, c->learners[i])) {
            return MC_EINVAL;
        }
    }
    return 0;
}

int conf_apply_change(const struct mc_raft_conf *c, const struct mc_raft_conf_change *cc,
                      struct mc_raft_conf *out)
{
    struct mc_raft_conf n = *c;
    uint64_t id = cc->node_id;
    if (id == 0 || c->n_voters_outgoing) {
        return MC_EINVAL;
    }
    bool voter = mc_raft_conf_is_voter(c, id);
    bool learner = mc_raft_conf_is_learner(c, id);
    switch (cc->type) {
    case MC_RAFT_CONF_ADD_LEARNER:
        if (voter || learner) {
            return MC_EEXIST;
        }
        if (n_members(c) >= MC_RAFT_MAX_NODES) {
            return MC_ELIMIT;
        }
        n.learners[n.n_learners++] = id;
        break;
    case MC_RAFT_CONF_PROMOTE:
        if (voter) {
            return MC_EEXIST;
        }
        if (!learner) {
            return MC_ENOMEMBER;
        }
        remove_id(n.learners, &n.n_learners, id);
        n.voters[n.n_voters++] = id;
        break;
    case MC_RAFT_CONF_ADD_VOTER:
        if (voter) {
            return MC_EEXIST;
        }
        if (!learner && n_members(c) >= MC_RAFT_MAX_NODES) {
            return MC_ELIMIT;
        }
        remove_id(n.learners, &n.n_learners, id);
        n.voters[n.n_voters++] = id;
        break;
    case MC_RAFT_CONF_REMOVE:
        if (!voter && !learner) {
            return MC_ENOMEMBER;
        }
        if (voter && c->n_voters == 1) {
            return MC_EINVAL; /* never remove the last voter: the cluster could not recover */
        }
        remove_id(n.voters, &n.n_voters, id);
        remove_id(n.learners, &n.n_learners, id);
        break;
    default:
        return MC_EINVAL;
    }
    *out = n;
    return 0;
}

static void put_ids(struct mc_wbuf *w, const uint64_t *ids, uint32_t n)
{
    mc_wbuf_u8(w, (uint8_t)n);
    for (uint32_t i = 0; i < n; i++) {
        mc_wbuf_u64(w, ids[i]);
    }
}

static void get_ids(struct mc_rbuf *rb, uint64_t *ids, uint32_t *n)
{
    uint32_t k = mc_rbuf_u8(rb);
    if (k > MC_RAFT_MAX_NODES) {
        rb->err = MC_EPROTO;
        *n = 0;
        return;
    }
    for (uint32_t i = 0; i < k; i++) {
        ids[i] = mc_rbuf_u64(rb);
    }
    *n = k;
}

/* Shared by the message codec: the configuration part. */
void conf_encode(struct mc_wbuf *w, const struct mc_raft_conf *c)
{
    put_ids(w, c->voters, c->n_voters);
    put_ids(w, c->voters_outgoing, c->n_voters_outgoing);
    put_ids(w, c->learners, c->n_learners);
}

int conf_decode(struct mc_rbuf *rb, struct mc_raft_conf *c)
{
    memset(c, 0, sizeof(*c));
    get_ids(rb, c->voters, &c->n_voters);
    get_ids(rb, c->voters_outgoing, &c->n_voters_outgoing);
    get_ids(rb, c->learners, &c->n_learners);
    if (mc_rbuf_error(rb)) {
        return MC_EPROTO;
    }
    return conf_validate(c) ? MC_EPROTO : 0;
}

int mc_raft_conf_change_encode(const struct mc_raft_conf_change *cc,
                               const struct mc_raft_conf *result, uint8_t *buf, size_t cap,
                               size_t *len)
{
    if (cc->context_len > MC_RAFT_CONF_CONTEXT_MAX || conf_validate(result) || cap == 0) {
        return MC_EINVAL;
    }
    /* Write straight into the caller's buffer: limit == cap means the writer reports
     * MC_ETOOLARGE before it would ever grow (allocate), so the core allocates nothing here. */
    struct mc_wbuf w = {.data = buf, .len = 0, .cap = cap, .limit = cap, .err = 0};
    mc_wbuf_u8(&w, CONF_PAYLOAD_VERSION);
    mc_wbuf_u8(&w, cc->type);
    mc_wbuf_u64(&w, cc->node_id);
    mc_wbuf_bytes(&w, cc->context, cc->context_len);
    conf_encode(&w, result);
    int rc = mc_wbuf_error(&w);
    if (!rc) {
        *len = w.len;
    }
    return rc;
}

int mc_raft_conf_change_decode(const uint8_t *buf, size_t len, struct mc_raft_conf_change *cc,
                               struct mc_raft_conf *result)
{
    struct mc_rbuf rb;
    mc_rbuf_init(&rb, buf, len);
    memset(cc, 0, sizeof(*cc));
    if (mc_rbuf_u8(&rb) != CONF_PAYLOAD_VERSION) {
        return MC_EPROTO;
    }
    cc->type = mc_rbuf_u8(&rb);
    cc->node_id = mc_rbuf_u64(&rb);
    size_t n = 0;
    const uint8_t *ctx = mc_rbuf_bytes(&rb, MC_RAFT_CONF_CONTEXT_MAX, &n);
    if (mc_rbuf_error(&rb)) {
        return MC_EPROTO;
    }
    if (n) {
        memcpy(cc->context, ctx, n);
    }
    cc->context_len = (uint32_t)n;
    if (cc->type < MC_RAFT_CONF_ADD_LEARNER || cc->type > MC_RAFT_CONF_REMOVE) {
        return MC_EPROTO;
    }
    if (conf_decode(&rb, result)) {
        return MC_EPROTO;
    }
    if (mc_rbuf_remaining(&rb) != 0) {
        return MC_EPROTO;
    }
    return 0;
}
