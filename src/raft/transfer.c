/* transfer.c: leadership transfer (thesis §3.10): catch up the target, then TimeoutNow. */
#include "raft/raft_int.h"

void tr_abort(struct mc_raft *r)
{
    r->lead_transferee = 0;
}

static void send_timeout_now(struct mc_raft *r, uint64_t to)
{
    /* The target will campaign with the transfer flag, which voters honour even within our
     * lease: from now on this term's lease is void (reads fall back to heartbeat rounds). */
    r->lease_revoked = true;
    r->lease_until_tick = 0;
    struct mc_raft_msg *m = ra_msg(r, MC_RAFT_MSG_TIMEOUT_NOW, to);
    if (m) {
        m->wait_persist = 0;
    }
}

void tr_on_match(struct mc_raft *r, struct progress *p)
{
    if (r->lead_transferee == p->id && p->match == log_last_index(&r->log)) {
        send_timeout_now(r, p->id);
    }
}

void tr_handle_timeout_now(struct mc_raft *r, const struct mc_raft_msg *m)
{
    (void)m;
    /* Campaign at once, skipping pre-vote; the flag tells voters to ignore leader stickiness. */
    if (ra_promotable(r)) {
        el_campaign(r, false, true);
    }
}

int mc_raft_transfer_leader(struct mc_raft *r, uint64_t id)
{
    if (r->err) {
        return r->err;
    }
    if (r->role != MC_RAFT_LEADER) {
        return MC_ENOTLEADER;
    }
    if (id == r->id) {
        return MC_EINVAL;
    }
    if (!conf_is_any_voter(&r->conf, id)) {
        return MC_ENOMEMBER;
    }
    if (r->lead_transferee == id) {
        return 0;
    }
    struct progress *p = pr_get(r, id);
    assert(p);
    r->lead_transferee = id;
    r->election_elapsed = 0; /* the transfer has one election timeout to finish */
    if (p->match == log_last_index(&r->log)) {
        send_timeout_now(r, id);
    } else {
        rep_send_append(r, p, false);
    }
    return 0;
}
