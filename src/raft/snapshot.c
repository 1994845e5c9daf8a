/* snapshot.c: log compaction, InstallSnapshot (metadata only; the driver moves the bytes) (§7). */
#include "raft/raft_int.h"

#include <string.h>

bool sn_send(struct mc_raft *r, struct progress *p)
{
    if (!r->has_snap) {
        return false;
    }
    struct mc_raft_msg *m = ra_msg(r, MC_RAFT_MSG_SNAPSHOT, p->id);
    if (!m) {
        return false;
    }
    m->snapshot = r->snap;
    pr_become_snapshot(p, r->snap.index);
    p->snapshot_sent_tick = r->tick;
    return true;
}

void sn_handle_snapshot(struct mc_raft *r, const struct mc_raft_msg *m)
{
    const struct mc_raft_snapshot_meta *s = &m->snapshot;
    struct mc_raft_msg *o;
    if (conf_validate(&s->conf) || s->term == 0 || s->term > m->term) {
        return;
    }
    if (s->index <= r->commit) {
        o = ra_msg(r, MC_RAFT_MSG_APPEND_RESP, m->from);
        if (o) {
            o->index = r->commit;
        }
        return;
    }
    if (log_match(&r->log, s->index, s->term)) {
        /* We already hold that prefix: just learn it is committed. */
        rep_commit_to(r, s->index);
    } else {
        log_reset(r, s->index, s->term);
        r->snap = *s;
        r->has_snap = true;
        r->base_conf = s->conf;
        mb_recompute(r);
        r->commit = s->index;
        r->applied = s->index;
        r->snapshot_to_install = true;
    }
    o = ra_msg(r, MC_RAFT_MSG_APPEND_RESP, m->from);
    if (o) {
        o->index = s->index;
    }
}

void mc_raft_report_snapshot(struct mc_raft *r, uint64_t id, bool ok)
{
    if (r->role != MC_RAFT_LEADER) {
        return;
    }
    struct progress *p = pr_get(r, id);
    if (!p || p->state != MC_RAFT_PROGRESS_SNAPSHOT) {
        return;
    }
    if (!ok) {
        p->pending_snapshot = 0;
    }
    pr_become_probe(p);
    /* Wait for the follower's answer (or the next heartbeat) before probing again. */
    p->probe_sent = true;
}

/*
 * Keep a tail before a snapshot so slightly slow followers catch up from the log, not a snapshot
 * (as etcd's SnapshotCatchUpEntries): the last cfg.snapshot_keep_entries entries, but at most
 * cfg.snapshot_keep_bytes of payload, so the in-memory log stays bounded when entries are large
 * (an entry may hold MC_RAFT_MAX_ENTRY_BYTES; 5000 of them would be 20 GiB). Returns the index
 * up to which entries may be dropped (never the entry at index itself).
 */
static uint64_t tail_start(const struct mc_raft *r, uint64_t index, uint64_t *tail_bytes)
{
    uint64_t keep = r->cfg.snapshot_keep_entries;
    uint64_t upto = index > keep ? index - keep : 0;
    uint64_t first = upto > r->log.offset ? upto : r->log.offset;
    uint64_t bytes = 0;
    for (uint64_t i = index; i > first; i--) {
        bytes += log_at(&r->log, i)->len;
        if (bytes > r->cfg.snapshot_keep_bytes && i < index) {
            *tail_bytes = bytes - log_at(&r->log, i)->len;
            return i; /* entries up to i go; the tail keeps at least the entry at index */
        }
    }
    *tail_bytes = bytes;
    return upto;
}

/*
 * A leader also keeps what a lagging member still needs (paused, restarting, slow disk), up to
 * cfg.catch_up_keep_bytes in all: it then catches up from the log instead of being sent a copy
 * of the whole state machine (TiKV's raft log GC likewise waits for the slowest follower, within
 * a size limit). A member already being sent a snapshot is not waited for. Only ever lowers upto:
 * keeping more entries is always safe.
 */
static uint64_t catch_up_start(const struct mc_raft *r, uint64_t upto, uint64_t bytes)
{
    if (r->role != MC_RAFT_LEADER) {
        return upto;
    }
    uint64_t need = upto;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        const struct progress *p = &r->prs[i];
        if (p->id != r->id && p->state != MC_RAFT_PROGRESS_SNAPSHOT && p->match < need) {
            need = p->match; /* it has everything up to match; it needs match + 1 on */
        }
    }
    while (upto > need && upto > r->log.offset) {
        bytes += log_at(&r->log, upto)->len;
        if (bytes > r->cfg.catch_up_keep_bytes) {
            break;
        }
        upto--;
    }
    return upto;
}

int mc_raft_snapshot_taken(struct mc_raft *r, uint64_t index, uint64_t term,
                           const struct mc_raft_conf *conf)
{
    if (r->err) {
        return r->err;
    }
    if (r->has_snap && index <= r->snap.index) {
        return 0;
    }
    if (index > r->applied || index == 0 || !log_match(&r->log, index, term)) {
        return MC_EINVAL;
    }
    struct mc_raft_conf c;
    if (conf) {
        if (conf_validate(conf)) {
            return MC_EINVAL;
        }
        c = *conf;
    } else {
        mb_conf_at(r, index, &c);
    }
    r->snap.index = index;
    r->snap.term = term;
    r->snap.conf = c;
    r->has_snap = true;
    uint64_t tail_bytes = 0;
    uint64_t upto = tail_start(r, index, &tail_bytes);
    upto = catch_up_start(r, upto, tail_bytes);
    if (upto > r->log.offset) {
        struct mc_raft_conf bc;
        mb_conf_at(r, upto, &bc);
        r->base_conf = bc;
        log_compact(r, upto);
    }
    return 0;
}

/* Leader, every tick: give up on snapshot transfers whose report never came. */
void sn_tick(struct mc_raft *r)
{
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *p = &r->prs[i];
        if (p->state == MC_RAFT_PROGRESS_SNAPSHOT &&
            r->tick - p->snapshot_sent_tick >= r->cfg.snapshot_timeout_tick) {
            p->pending_snapshot = 0;
            pr_become_probe(p);
        }
    }
}
