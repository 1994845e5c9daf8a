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
 * Catch-up rule's floor: the lowest match index of the members a leader still waits for (not
 * itself, not one being sent a snapshot: that one will not need the log below the snapshot),
 * capped at index. Not a leader: index, i.e. the catch-up rule keeps nothing.
 */
static uint64_t catch_up_floor(const struct mc_raft *r, uint64_t index)
{
    uint64_t need = index;
    if (r->role != MC_RAFT_LEADER) {
        return need;
    }
    for (uint32_t i = 0; i < r->n_prs; i++) {
        const struct progress *p = &r->prs[i];
        if (p->id != r->id && p->state != MC_RAFT_PROGRESS_SNAPSHOT && p->match < need) {
            need = p->match; /* it has everything up to match; it needs match + 1 on */
        }
    }
    return need;
}

/*
 * Raft-log GC policy: once a snapshot covers entries up to index, how far the in-memory log is
 * dropped. The snapshot makes every entry it covers redundant (thesis ch. 5, §5.1; paper §7),
 * but a follower whose log ends below the dropped prefix can then only be sent the whole state
 * machine (InstallSnapshot) instead of the entries it misses, which is how a leader normally
 * brings a slow follower up to date (AppendEntries retried from its log, thesis §3.5). So some
 * entries just behind index are kept: one backward walk from index, entry by entry, two rules in
 * turn (TiKV's raft-log GC likewise has count and size limits and waits for the slowest
 * follower within a size limit):
 *
 *  1. Tail, any role (etcd's SnapshotCatchUpEntries): the last cfg.snapshot_keep_entries
 *     entries up to index, ending at the first one that would take the payload kept past
 *     cfg.snapshot_keep_bytes: an entry may hold MC_RAFT_MAX_ENTRY_BYTES, so a count alone does
 *     not bound memory (5000 of them would be 20 GiB). The entry at index is kept whatever its
 *     size: the log's offset never passes the snapshot.
 *  2. Catch-up, leader only, from where the tail ended: entries a lagging member (paused,
 *     restarting, slow disk) still needs, i.e. above catch_up_floor(), while the payload kept in
 *     all, tail included, stays within cfg.catch_up_keep_bytes.
 *
 * Each rule ends for good at the first entry it does not keep, so what is kept is the one run
 * (upto, index] and each entry is looked at once. Keeping more than this is always safe (it costs
 * only memory); dropping an entry at or past index is not. Returns upto: entries up to it may be
 * dropped (log.offset: none).
 */
uint64_t sn_compact_point(const struct mc_raft *r, uint64_t index)
{
    const struct rlog *l = &r->log;
    uint64_t keep = r->cfg.snapshot_keep_entries;
    assert(index >= l->offset && index <= log_last_index(l));
    assert(keep >= 1); /* mc_raft_create defaults 0; else the entry at index could go */
    uint64_t tail_floor = index > keep ? index - keep : 0; /* the tail holds entries above it */
    uint64_t need = catch_up_floor(r, index);
    bool in_tail = true;
    uint64_t bytes = 0; /* payload of the entries kept so far, (i, index] */
    uint64_t i = index;
    for (; i > l->offset; i--) {
        uint64_t len = log_at(l, i)->len;
        if (in_tail &&
            (i <= tail_floor || (i < index && bytes + len > r->cfg.snapshot_keep_bytes))) {
            in_tail = false;
        }
        if (!in_tail && (i <= need || bytes + len > r->cfg.catch_up_keep_bytes)) {
            break;
        }
        bytes += len;
    }
    /* Never at or past the snapshot index, unless nothing is held before it anyway. */
    assert(i >= l->offset && (i < index || i == l->offset));
    return i;
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
    uint64_t upto = sn_compact_point(r, index);
    if (upto > r->log.offset) {
        /* The configuration as of upto becomes the base; conf entries above upto stay. */
        struct mc_raft_conf bc;
        mb_conf_at(r, upto, &bc);
        r->base_conf = bc;
        log_compact(r, upto);
        assert(log_at(&r->log, index) != NULL);
        /* The entry that set the current configuration is held, or it is the base now. */
        assert(r->conf_index <= upto || log_at(&r->log, r->conf_index)->type == MC_RAFT_ENTRY_CONF);
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
