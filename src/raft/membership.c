/* membership.c: configuration changes one server at a time (thesis §4.1 + single-server fix). */
#include "raft/raft_int.h"

#include <string.h>

static int decode_conf(const struct mc_raft_entry *e, struct mc_raft_conf *out)
{
    struct mc_raft_conf_change cc;
    return mc_raft_conf_change_decode(e->data, e->len, &cc, out);
}

int mb_set_conf(struct mc_raft *r, const struct mc_raft_conf *c, uint64_t index)
{
    r->conf = *c;
    r->conf_index = index;
    if (r->role == MC_RAFT_LEADER) {
        int rc = pr_sync_conf(r);
        if (rc) {
            return rc;
        }
        if (r->lead_transferee && !conf_is_any_voter(c, r->lead_transferee)) {
            tr_abort(r);
        }
    }
    return 0;
}

/* Thesis §4.1: a server uses the latest configuration in its log, committed or not. */
void mb_on_append(struct mc_raft *r, const struct mc_raft_entry *e)
{
    struct mc_raft_conf c;
    if (decode_conf(e, &c)) {
        /* A conf entry that does not decode cannot come from a correct leader; keep ours. */
        return;
    }
    mb_set_conf(r, &c, e->index);
}

int mb_conf_at(const struct mc_raft *r, uint64_t index, struct mc_raft_conf *out)
{
    if (index < r->log.offset) {
        return MC_EINVAL;
    }
    if (index > log_last_index(&r->log)) {
        index = log_last_index(&r->log);
    }
    for (uint64_t i = index; i > r->log.offset; i--) {
        const struct mc_raft_entry *e = log_at(&r->log, i);
        if (e->type == MC_RAFT_ENTRY_CONF && decode_conf(e, out) == 0) {
            return 0;
        }
    }
    *out = r->base_conf;
    return 0;
}

/* After a truncation (or restore) the configuration falls back to the latest remaining one. */
int mb_recompute(struct mc_raft *r)
{
    struct mc_raft_conf c;
    uint64_t last = log_last_index(&r->log);
    for (uint64_t i = last; i > r->log.offset; i--) {
        const struct mc_raft_entry *e = log_at(&r->log, i);
        if (e->type == MC_RAFT_ENTRY_CONF && decode_conf(e, &c) == 0) {
            return mb_set_conf(r, &c, i);
        }
    }
    return mb_set_conf(r, &r->base_conf, 0);
}

/* Thesis §4.2.2: a leader that is not part of the committed configuration steps down. */
void mb_on_commit(struct mc_raft *r)
{
    if (r->role == MC_RAFT_LEADER && r->conf_index <= r->commit &&
        !conf_is_any_voter(&r->conf, r->id)) {
        el_become_follower(r, r->term, 0);
    }
}

int mc_raft_propose_conf_change(struct mc_raft *r, const struct mc_raft_conf_change *cc,
                                uint64_t *index)
{
    if (r->err) {
        return r->err;
    }
    if (r->role != MC_RAFT_LEADER || r->lead_transferee) {
        return MC_ENOTLEADER;
    }
    if (cc->context_len > MC_RAFT_CONF_CONTEXT_MAX) {
        return MC_EINVAL;
    }
    /* Single-server fix (Ongaro, raft-dev 2015): a new leader must commit an entry of its own
     * term before changing the configuration; and only one change may be uncommitted. */
    if (!rep_committed_own_term(r) || r->pending_conf_index > r->commit) {
        return MC_ECONFCHANGE;
    }
    struct mc_raft_conf next;
    int rc = conf_apply_change(&r->conf, cc, &next);
    if (rc) {
        return rc;
    }
    uint8_t buf[MC_RAFT_CONF_CHANGE_MAX_BYTES];
    size_t len = 0;
    rc = mc_raft_conf_change_encode(cc, &next, buf, sizeof(buf), &len);
    if (rc) {
        return rc;
    }
    struct mc_raft_entry e = {.type = MC_RAFT_ENTRY_CONF, .len = (uint32_t)len, .data = buf};
    uint64_t idx = log_last_index(&r->log) + 1;
    rc = rep_append_local(r, &e, 1);
    if (rc) {
        return rc;
    }
    r->pending_conf_index = idx;
    if (index) {
        *index = idx;
    }
    return 0;
}
