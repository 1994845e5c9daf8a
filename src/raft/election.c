/* election.c: timeouts, pre-vote, RequestVote, role changes (Raft §5.2, thesis §9.6, §6.2). */
#include "raft/raft_int.h"

#include <string.h>

/* §5.2: randomized election timeout in [T, 2T) so split votes are rare. */
void el_reset_timeout(struct mc_raft *r)
{
    uint32_t t = r->cfg.election_tick;
    r->randomized_timeout = t + (uint32_t)mc_rand_below(&r->rng, t);
}

static void reset(struct mc_raft *r, uint64_t term)
{
    if (r->term != term) {
        assert(term > r->term); /* terms never decrease */
        r->term = term;
        r->vote = 0;
    }
    r->leader = 0;
    r->election_elapsed = 0;
    r->heartbeat_elapsed = 0;
    el_reset_timeout(r);
    r->n_granted = r->n_rejected = 0;
    tr_abort(r);
    r->uncommitted_bytes = 0;
    r->bcast_pending = false;
}

void el_become_follower(struct mc_raft *r, uint64_t term, uint64_t leader)
{
    if (r->role == MC_RAFT_LEADER) {
        ri_drop_all(r);
    }
    reset(r, term);
    r->role = MC_RAFT_FOLLOWER;
    r->leader = leader;
}

void el_become_leader(struct mc_raft *r)
{
    assert(r->role == MC_RAFT_CANDIDATE);
    reset(r, r->term);
    r->role = MC_RAFT_LEADER;
    r->leader = r->id;
    ri_reset(r);
    if (pr_reset_all(r)) {
        return;
    }
    /* Conservatively treat any uncommitted conf entry as pending (thesis §4.1). */
    r->pending_conf_index = log_last_index(&r->log);
    /* A no-op of the new term lets the leader commit earlier entries (§5.4.2, thesis §6.4). */
    struct mc_raft_entry noop = {.type = MC_RAFT_ENTRY_NORMAL};
    rep_append_local(r, &noop, 1);
}

static void record_vote(struct mc_raft *r, uint64_t id, bool granted)
{
    if (!conf_is_any_voter(&r->conf, id) || conf_contains(r->votes_granted, r->n_granted, id) ||
        conf_contains(r->votes_rejected, r->n_rejected, id) || r->n_granted >= MC_RAFT_MAX_NODES ||
        r->n_rejected >= MC_RAFT_MAX_NODES) {
        return; /* one vote per voter per election */
    }
    if (granted) {
        r->votes_granted[r->n_granted++] = id;
    } else {
        r->votes_rejected[r->n_rejected++] = id;
    }
}

static enum vote_result tally(struct mc_raft *r)
{
    return quorum_vote_result(&r->conf, r->votes_granted, r->n_granted, r->votes_rejected,
                              r->n_rejected);
}

void el_campaign(struct mc_raft *r, bool pre_vote, bool transfer)
{
    if (!ra_promotable(r)) {
        return;
    }
    uint64_t term;
    uint8_t type;
    if (pre_vote) {
        /* Thesis §9.6: ask first whether we could win, without disturbing anyone's term. */
        reset(r, r->term);
        r->role = MC_RAFT_PRE_CANDIDATE;
        term = r->term + 1;
        type = MC_RAFT_MSG_PREVOTE;
    } else {
        reset(r, r->term + 1);
        r->role = MC_RAFT_CANDIDATE;
        r->vote = r->id;
        term = r->term;
        type = MC_RAFT_MSG_VOTE;
    }
    record_vote(r, r->id, true);
    if (tally(r) == VOTE_WON) {
        if (pre_vote) {
            el_campaign(r, false, transfer);
        } else {
            el_become_leader(r);
        }
        return;
    }
    const struct mc_raft_conf *c = &r->conf;
    uint64_t ids[2 * MC_RAFT_MAX_NODES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n_voters; i++) {
        ids[n++] = c->voters[i];
    }
    for (uint32_t i = 0; i < c->n_voters_outgoing; i++) {
        if (!conf_contains(ids, n, c->voters_outgoing[i])) {
            ids[n++] = c->voters_outgoing[i];
        }
    }
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] == r->id) {
            continue;
        }
        struct mc_raft_msg *m = ra_msg(r, type, ids[i]);
        if (!m) {
            return;
        }
        /* The self-vote must be durable before anyone sees the request (wait_persist). */
        m->term = term;
        m->index = log_last_index(&r->log);
        m->log_term = log_last_term(&r->log);
        m->flags = transfer ? MC_RAFT_FLAG_TRANSFER : 0;
    }
}

void el_tick(struct mc_raft *r)
{
    r->election_elapsed++;
    if (r->role == MC_RAFT_LEADER) {
        r->heartbeat_elapsed++;
        sn_tick(r);
        if (r->election_elapsed >= r->cfg.election_tick) {
            r->election_elapsed = 0;
            /* Thesis §6.2: step down when a quorum has not been heard from for a timeout. */
            if (!r->cfg.disable_check_quorum) {
                uint64_t active[MC_RAFT_MAX_NODES];
                uint32_t n = 0;
                for (uint32_t i = 0; i < r->n_prs; i++) {
                    struct progress *p = &r->prs[i];
                    if (p->id == r->id || p->recent_active) {
                        active[n++] = p->id;
                    }
                    if (p->id != r->id) {
                        p->recent_active = false;
                    }
                }
                if (!quorum_has(&r->conf, active, n)) {
                    el_become_follower(r, r->term, 0);
                    return;
                }
            }
            /* Thesis §3.10: a transfer that did not finish within a timeout is abandoned. */
            if (r->lead_transferee) {
                tr_abort(r);
            }
        }
        if (r->heartbeat_elapsed >= r->cfg.heartbeat_tick) {
            r->heartbeat_elapsed = 0;
            rep_bcast_heartbeat(r, 0);
        }
        return;
    }
    if (ra_promotable(r) && r->election_elapsed >= r->randomized_timeout) {
        r->election_elapsed = 0;
        el_campaign(r, !r->cfg.disable_pre_vote, false);
    }
}

/*
 * A member that started empty is caught up once its log reaches the first AppendEntries it got
 * since it started: that leader's commit index (all it knew committed) and an entry of its
 * term — by Leader Completeness (thesis §3.6.3) a leader's log holds every committed entry
 * before its first own-term entry, which covers a new leader whose commit index still lags.
 * The target is fixed at that first message (a follower that lags a busy leader still reaches
 * it). Not covered (docs/decisions.md): a restart in the middle of catching up (the state is in
 * memory: the log is no longer empty), and a deposed leader that lacks the write reaching the
 * member first (having lost its term, the member follows it, and its acks can even keep that
 * leader's quorum and check-quorum alive).
 */
void el_amnesia_learn(struct mc_raft *r, const struct mc_raft_msg *m)
{
    if (!r->amnesic || r->amnesia_term != 0) {
        return;
    }
    r->amnesia_floor = m->commit;
    r->amnesia_term = m->term;
}

void el_amnesia_check(struct mc_raft *r)
{
    if (r->amnesic && r->amnesia_term && log_last_index(&r->log) >= r->amnesia_floor &&
        log_last_term(&r->log) >= r->amnesia_term) {
        r->amnesic = false;
    }
}

void el_handle_vote(struct mc_raft *r, const struct mc_raft_msg *m)
{
    bool pre = m->type == MC_RAFT_MSG_PREVOTE;
    /* One vote per term (§5.2); a pre-vote for a future term binds nothing. Voters we consider
     * learners still answer: they may have been promoted in an entry they lack (etcd #10998). */
    bool can_vote =
        r->vote == m->from || (r->vote == 0 && r->leader == 0) || (pre && m->term > r->term);
#ifdef MC_RAFT_BUG_VOTE_NO_LOG_CHECK
    bool up_to_date = true;
#else
    /* §5.4.1: only a candidate whose log is at least as up-to-date as ours gets the vote. */
    bool up_to_date = log_up_to_date(&r->log, m->index, m->log_term);
#endif
    /* A voter that started with no entry and no snapshot may be one whose data dir was lost (a
     * disk replaced, a node restarted on an empty dir with its old flags): its vote would let a
     * candidate that lacks a write this voter had acknowledged win (thesis §3.8 assumes the
     * term, vote and log survive). Until it has caught up (el_amnesia_check) it votes only for
     * a candidate whose log is empty too (a new cluster's first election). Cost: it cannot
     * help elect before that (docs/decisions.md). */
    bool amnesia_refused = up_to_date && r->amnesic && m->index > 0;
    if (amnesia_refused) {
        up_to_date = false;
        r->empty_log_vote_refusals++;
    }
    uint8_t rtype = pre ? MC_RAFT_MSG_PREVOTE_RESP : MC_RAFT_MSG_VOTE_RESP;
    struct mc_raft_msg *o = ra_msg(r, rtype, m->from);
    if (!o) {
        return;
    }
    if (can_vote && up_to_date) {
        o->term = m->term;
        if (!pre) {
            assert(m->term == r->term);
            r->election_elapsed = 0;
            r->vote = m->from;
        }
    } else {
        o->reject = 1;
    }
    o->wait_persist = 1;
}

void el_handle_vote_resp(struct mc_raft *r, const struct mc_raft_msg *m)
{
    bool pre = m->type == MC_RAFT_MSG_PREVOTE_RESP;
    if ((pre && r->role != MC_RAFT_PRE_CANDIDATE) || (!pre && r->role != MC_RAFT_CANDIDATE)) {
        return;
    }
    record_vote(r, m->from, !m->reject);
    switch (tally(r)) {
    case VOTE_WON:
        if (pre) {
            el_campaign(r, false, false);
        } else {
            el_become_leader(r);
        }
        break;
    case VOTE_LOST:
        el_become_follower(r, r->term, 0);
        break;
    default:
        break;
    }
}

int mc_raft_campaign(struct mc_raft *r)
{
    if (r->err) {
        return r->err;
    }
    if (r->role == MC_RAFT_LEADER) {
        return 0;
    }
    if (!ra_promotable(r)) {
        return MC_ENOMEMBER;
    }
    el_campaign(r, !r->cfg.disable_pre_vote, false);
    return r->err;
}
