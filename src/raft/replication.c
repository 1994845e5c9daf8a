/* replication.c: AppendEntries both ways, heartbeats, commit rule (Raft §5.3, §5.4.2). */
#include "raft/raft_int.h"

#include <string.h>

/* Leader: append locally (the driver persists in parallel, thesis §10.2.1). */
int rep_append_local(struct mc_raft *r, const struct mc_raft_entry *e, size_t n)
{
    assert(r->role == MC_RAFT_LEADER);
    uint64_t idx = log_last_index(&r->log);
    struct mc_raft_entry tmp[64];
    size_t done = 0;
    while (done < n) {
        size_t k = n - done < 64 ? n - done : 64;
        for (size_t i = 0; i < k; i++) {
            tmp[i] = e[done + i];
            tmp[i].index = ++idx;
            tmp[i].term = r->term;
            r->uncommitted_bytes += tmp[i].len;
        }
        int rc = log_append(r, tmp, k);
        if (rc) {
            return rc;
        }
        for (size_t i = 0; i < k; i++) {
            if (tmp[i].type == MC_RAFT_ENTRY_CONF) {
                mb_on_append(r, log_at(&r->log, tmp[i].index));
            }
        }
        done += k;
    }
    r->bcast_pending = true;
    /* A single-voter cluster commits on its own once persisted. */
    return r->err;
}

static uint64_t match_of(const struct mc_raft *r, uint64_t id)
{
    if (id == r->id) {
        return ra_self_match(r);
    }
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].id == id) {
            return r->prs[i].match;
        }
    }
    return 0;
}

bool rep_committed_own_term(const struct mc_raft *r)
{
    return log_term(&r->log, r->commit) == r->term;
}

void rep_commit_to(struct mc_raft *r, uint64_t index)
{
    if (index <= r->commit) {
        return; /* commit never moves back */
    }
    assert(index <= log_last_index(&r->log));
    r->commit = index;
    mb_on_commit(r);
}

/* §5.3/§5.4.2: commit the quorum-replicated index, but only through an entry of our term. */
bool rep_maybe_commit(struct mc_raft *r)
{
    uint64_t mci = quorum_committed(r, &r->conf, match_of);
    if (mci <= r->commit || mci == UINT64_MAX) {
        return false;
    }
#ifndef MC_RAFT_BUG_COMMIT_OLD_TERM
    if (log_term(&r->log, mci) != r->term) {
        return false; /* Figure 8: counting replicas of an old-term entry is not enough */
    }
#endif
    bool first_own = !rep_committed_own_term(r);
    uint64_t old = r->commit;
    rep_commit_to(r, mci);
    /* Entries now committed no longer count against the proposal limit. */
    uint64_t freed = 0;
    for (uint64_t i = old + 1; i <= mci; i++) {
        const struct mc_raft_entry *e = log_at(&r->log, i);
        if (e && e->term == r->term) {
            freed += e->len;
        }
    }
    r->uncommitted_bytes = freed > r->uncommitted_bytes ? 0 : r->uncommitted_bytes - freed;
    if (r->role == MC_RAFT_LEADER && first_own && rep_committed_own_term(r)) {
        ri_on_commit_own_term(r);
    }
    return true;
}

/* Send the next batch to p; false when nothing was sent (paused, or nothing to send). */
bool rep_send_append(struct mc_raft *r, struct progress *p, bool allow_empty)
{
    if (p->id == r->id || pr_is_paused(r, p)) {
        return false;
    }
    uint64_t last = log_last_index(&r->log);
    if (p->next > last + 1) {
        p->next = last + 1; /* never probe beyond our own log */
    }
    uint64_t prev = p->next - 1;
    if (!log_has_term(&r->log, prev)) {
        return sn_send(r, p); /* the entries it needs were compacted (§7) */
    }
    if (p->next > last && !allow_empty) {
        return false;
    }
    struct mc_raft_msg *m = ra_msg(r, MC_RAFT_MSG_APPEND, p->id);
    if (!m) {
        return false;
    }
    m->index = prev;
    m->log_term = log_term(&r->log, prev);
    m->commit = r->commit;
    p->sent_commit = r->commit;
    if (p->next <= last) {
        /* Bounded by max_msg_bytes (at least one entry), and by entry count. */
        uint64_t hi = p->next, bytes = log_at(&r->log, p->next)->len;
        while (hi < last && hi - p->next + 1 < MC_RAFT_MAX_MSG_ENTRIES) {
            uint64_t len = log_at(&r->log, hi + 1)->len;
            if (bytes + len > r->cfg.max_msg_bytes) {
                break;
            }
            bytes += len;
            hi++;
        }
        if (ra_msg_entries(r, m, p->next, hi)) {
            return false;
        }
        if (p->state == MC_RAFT_PROGRESS_REPLICATE) {
            /* Pipelining: optimistically advance next and track the window. */
            p->next = hi + 1;
            pr_infl_add(p, hi);
        }
    }
    if (p->state == MC_RAFT_PROGRESS_PROBE) {
        p->probe_sent = true;
    }
    return true;
}

/* Leader, at ready time: one batched round of appends for everything proposed since. */
/* Send p what it lacks; with nothing to send and no append in flight, the new commit index
 * alone. With appends in flight the commit index rides on the next append instead (or goes
 * alone once they are all acknowledged: rep_handle_append_resp calls this again). Under load
 * this saved a third of all appends, each a follower wake-up and an ack (issue 8); heartbeats
 * still carry it whatever happens to those appends. */
static void send_appends(struct mc_raft *r, struct progress *p)
{
    bool sent = false;
    while (rep_send_append(r, p, false)) {
        sent = true;
        if (p->state != MC_RAFT_PROGRESS_REPLICATE) {
            break;
        }
    }
    if (!sent && p->state == MC_RAFT_PROGRESS_REPLICATE && p->infl_count == 0 &&
        p->sent_commit < r->commit) {
        rep_send_append(r, p, true);
    }
}

void rep_flush(struct mc_raft *r)
{
    if (!r->bcast_pending) {
        return;
    }
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *p = &r->prs[i];
        if (p->id == r->id) {
            continue;
        }
        send_appends(r, p);
    }
}

void rep_bcast_heartbeat(struct mc_raft *r, uint64_t seq)
{
    if (seq == 0) {
        seq = ++r->read_seq;
        r->seq_tick[seq % RA_SEQ_RING] = r->tick;
    }
    ri_assign_seq(r, seq);
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *p = &r->prs[i];
        if (p->id == r->id) {
            continue;
        }
        struct mc_raft_msg *m = ra_msg(r, MC_RAFT_MSG_HEARTBEAT, p->id);
        if (!m) {
            return;
        }
        /* Never tell a follower to commit beyond what it is known to hold. */
        m->commit = p->match < r->commit ? p->match : r->commit;
        m->ctx = seq;
    }
}

/* A correct leader never sends these; a corrupt or hostile one must not crash us. */
static bool append_well_formed(const struct mc_raft_msg *m)
{
    uint64_t prev_term = m->log_term;
    if (m->log_term > m->term || m->index > UINT64_MAX - MC_RAFT_MAX_MSG_ENTRIES) {
        return false;
    }
    for (uint32_t i = 0; i < m->n_entries; i++) {
        const struct mc_raft_entry *e = &m->entries[i];
        if (e->index != m->index + 1 + i || e->len > MC_RAFT_MAX_ENTRY_BYTES ||
            (e->len && !e->data) || e->term > m->term || e->term < prev_term ||
            e->type > MC_RAFT_ENTRY_CONF) {
            return false;
        }
        prev_term = e->term;
    }
    return true;
}

/* Follower side of AppendEntries (§5.3). */
void rep_handle_append(struct mc_raft *r, const struct mc_raft_msg *m)
{
    struct mc_raft_msg *o;
    if (!append_well_formed(m)) {
        return;
    }
    el_amnesia_learn(r, m);
    if (m->index < r->commit) {
        o = ra_msg(r, MC_RAFT_MSG_APPEND_RESP, m->from);
        if (o) {
            o->index = r->commit;
        }
        return;
    }
    if (!log_match(&r->log, m->index, m->log_term)) {
        /* Fast backtracking (thesis §5.3 optimization, etcd): hint our last index whose term is
         * <= the leader's previous-entry term, so one round trip skips a whole term. */
        uint64_t hint = m->index < log_last_index(&r->log) ? m->index : log_last_index(&r->log);
        hint = log_find_conflict_by_term(&r->log, hint, m->log_term);
        o = ra_msg(r, MC_RAFT_MSG_APPEND_RESP, m->from);
        if (o) {
            o->index = m->index;
            o->reject = 1;
            o->reject_hint = hint;
            o->hint_term = log_term(&r->log, hint);
        }
        return;
    }
    uint64_t last_new = m->index + m->n_entries;
    uint64_t conflict = log_find_conflict(&r->log, m->entries, m->n_entries);
    if (conflict) {
        assert(conflict > r->commit); /* committed entries are never overwritten */
        size_t skip = (size_t)(conflict - m->index - 1);
        if (conflict <= log_last_index(&r->log)) {
            log_truncate(r, conflict);
            if (r->conf_index >= conflict) {
                mb_recompute(r);
            }
        }
        if (log_append(r, m->entries + skip, m->n_entries - skip)) {
            return;
        }
        for (size_t i = skip; i < m->n_entries; i++) {
            if (m->entries[i].type == MC_RAFT_ENTRY_CONF) {
                mb_on_append(r, log_at(&r->log, m->entries[i].index));
            }
        }
    }
    uint64_t c = m->commit < last_new ? m->commit : last_new;
    rep_commit_to(r, c);
    el_amnesia_check(r);
    o = ra_msg(r, MC_RAFT_MSG_APPEND_RESP, m->from);
    if (o) {
        o->index = last_new;
    }
}

void rep_handle_heartbeat(struct mc_raft *r, const struct mc_raft_msg *m)
{
    uint64_t c = m->commit < log_last_index(&r->log) ? m->commit : log_last_index(&r->log);
    rep_commit_to(r, c);
    struct mc_raft_msg *o = ra_msg(r, MC_RAFT_MSG_HEARTBEAT_RESP, m->from);
    if (o) {
        o->ctx = m->ctx;
        o->wait_persist = 0; /* depends on nothing persisted: lets reads finish quickly */
    }
}

static void on_heard(struct mc_raft *r, struct progress *p)
{
    p->recent_active = true;
    p->last_heard_tick = r->tick;
}

void rep_handle_append_resp(struct mc_raft *r, const struct mc_raft_msg *m)
{
    struct progress *p = pr_get(r, m->from);
    if (!p) {
        return;
    }
    on_heard(r, p);
    if (m->index > log_last_index(&r->log)) {
        return; /* acknowledges entries we never sent: malformed */
    }
    if (m->reject) {
        uint64_t hint = m->reject_hint;
        if (m->hint_term > 0) {
            hint = log_find_conflict_by_term(&r->log, hint, m->hint_term);
        }
        if (pr_maybe_decr(p, m->index, hint)) {
            if (p->state == MC_RAFT_PROGRESS_REPLICATE) {
                pr_become_probe(p);
            }
            rep_send_append(r, p, true);
        }
        return;
    }
    bool was_paused = pr_is_paused(r, p);
    if (!pr_maybe_update(p, m->index)) {
        if (p->state == MC_RAFT_PROGRESS_PROBE && p->next - 1 == m->index) {
            p->probe_sent = false; /* answer to our probe with nothing new */
        }
        return;
    }
    switch (p->state) {
    case MC_RAFT_PROGRESS_PROBE:
        pr_become_replicate(p);
        break;
    case MC_RAFT_PROGRESS_SNAPSHOT:
        if (p->match >= p->pending_snapshot) {
            pr_become_probe(p);
            pr_become_replicate(p);
        }
        break;
    default:
        pr_infl_free_to(p, m->index);
        break;
    }
    if (rep_maybe_commit(r)) {
        r->bcast_pending = true;
    } else if (was_paused) {
        rep_send_append(r, p, false);
    }
    if (r->role != MC_RAFT_LEADER) {
        return; /* committing our own removal made us step down */
    }
    send_appends(r, p);
    tr_on_match(r, p);
}

void rep_handle_heartbeat_resp(struct mc_raft *r, const struct mc_raft_msg *m)
{
    struct progress *p = pr_get(r, m->from);
    if (!p) {
        return;
    }
    on_heard(r, p);
    if (p->state == MC_RAFT_PROGRESS_PROBE) {
        p->probe_sent = false;
    }
    if (p->state == MC_RAFT_PROGRESS_REPLICATE && p->infl_count >= p->infl_cap) {
        /* The window may be full of lost messages: let one more through (etcd does too). */
        p->infl_start = (p->infl_start + 1) % p->infl_cap;
        p->infl_count--;
    }
    /* An empty append also detects appends lost in flight: the follower rejects it. */
    bool sent = rep_send_append(r, p, false);
    if (!sent && (p->sent_commit < r->commit || p->match < log_last_index(&r->log))) {
        rep_send_append(r, p, true);
    }
    if (m->ctx > p->read_seq_acked && m->ctx <= r->read_seq) {
        p->read_seq_acked = m->ctx;
        ri_on_heartbeat_resp(r);
    }
}
