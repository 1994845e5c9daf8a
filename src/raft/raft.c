/* raft.c: the core's public entry points: create/restore, step dispatch, ready/advance, status. */
#include "raft/raft_int.h"

#include <stdlib.h>
#include <string.h>

/* ---- allocation ---- */

static void *libc_malloc(void *ud, size_t n)
{
    (void)ud;
    return malloc(n);
}
static void *libc_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    return realloc(p, n);
}
static void libc_free(void *ud, void *p)
{
    (void)ud;
    free(p);
}

void *ra_malloc(struct mc_raft *r, size_t n)
{
    return r->cfg.alloc.malloc(r->cfg.alloc.ud, n);
}
void *ra_realloc(struct mc_raft *r, void *p, size_t n)
{
    return r->cfg.alloc.realloc(r->cfg.alloc.ud, p, n);
}
void ra_free(struct mc_raft *r, void *p)
{
    if (p) {
        r->cfg.alloc.free(r->cfg.alloc.ud, p);
    }
}

int ra_reserve(struct mc_raft *r, void **arr, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap) {
        return 0;
    }
    size_t n = *cap ? *cap : 16;
    while (n < need) {
        n *= 2;
    }
    void *p = ra_realloc(r, *arr, n * sz);
    if (!p) {
        return MC_ENOMEM;
    }
    *arr = p;
    *cap = n;
    return 0;
}

void ra_set_err(struct mc_raft *r, int err)
{
    if (!r->err) {
        r->err = err;
    }
}

/* ---- outbox ---- */

struct mc_raft_msg *ra_msg(struct mc_raft *r, uint8_t type, uint64_t to)
{
    if (ra_reserve(r, (void **)&r->out, &r->cap_out, r->n_out + 1, sizeof(*r->out)) ||
        ra_reserve(r, (void **)&r->out_ent_off, &r->cap_out_ent_off, r->n_out + 1,
                   sizeof(size_t))) {
        ra_set_err(r, MC_ENOMEM);
        return NULL;
    }
    struct mc_raft_msg *m = &r->out[r->n_out];
    r->out_ent_off[r->n_out] = 0;
    r->n_out++;
    memset(m, 0, offsetof(struct mc_raft_msg, snapshot));
    m->type = type;
    m->from = r->id;
    m->to = to;
    m->term = r->term;
    /* Only a leader's own traffic may leave before persistence (thesis §10.2.1). */
    m->wait_persist = r->role == MC_RAFT_LEADER ? 0 : 1;
    return m;
}

/* Attach log entries [lo, hi] to the last queued message (resolved to pointers in ready). */
int ra_msg_entries(struct mc_raft *r, struct mc_raft_msg *m, uint64_t lo, uint64_t hi)
{
    assert(m == &r->out[r->n_out - 1]);
    size_t n = (size_t)(hi - lo + 1);
    if (ra_reserve(r, (void **)&r->ent_arena, &r->cap_arena, r->n_arena + n,
                   sizeof(*r->ent_arena))) {
        ra_set_err(r, MC_ENOMEM);
        return MC_ENOMEM;
    }
    const struct mc_raft_entry *src = log_at(&r->log, lo);
    assert(src && log_at(&r->log, hi));
    memcpy(r->ent_arena + r->n_arena, src, n * sizeof(*src));
    r->out_ent_off[r->n_out - 1] = r->n_arena;
    r->n_arena += n;
    m->n_entries = (uint32_t)n;
    return 0;
}

void ra_read_state(struct mc_raft *r, uint64_t ctx, uint64_t index, int err)
{
    if (ra_reserve(r, (void **)&r->rstates, &r->cap_rstates, r->n_rstates + 1,
                   sizeof(*r->rstates))) {
        ra_set_err(r, MC_ENOMEM);
        return;
    }
    r->rstates[r->n_rstates++] = (struct mc_raft_read_state){ctx, index, err};
}

bool ra_promotable(const struct mc_raft *r)
{
    return conf_is_any_voter(&r->conf, r->id);
}

uint64_t ra_self_match(const struct mc_raft *r)
{
    return r->log.persisted;
}

/* Invariants checked after every input (O(1)); a violation is a core bug. */
static void check_invariants(const struct mc_raft *r)
{
    uint64_t last = log_last_index(&r->log);
    (void)last;
    assert(r->applied <= r->commit);      /* applied <= committed */
    assert(r->commit <= last);            /* committed <= last index */
    assert(r->log.offset <= r->applied);  /* only applied entries are compacted */
    assert(r->log.persisted <= last);     /* durable <= held */
    assert(r->log.unstable <= last + 1);  /* handed out <= held */
    assert(r->term >= r->prev_hard.term); /* term never decreases */
    assert(r->term > r->prev_hard.term || r->prev_hard.vote == 0 ||
           r->vote == r->prev_hard.vote);     /* one vote per term */
    assert(r->commit >= r->prev_hard.commit); /* commit never moves back */
    assert(r->role != MC_RAFT_LEADER || r->leader == r->id);
}

/* ---- config / create ---- */

/* read_rounds_full looks back over at most this many rounds of the seq ring (no aliasing). */
_Static_assert(MC_RAFT_MAX_READ_ROUNDS <= RA_SEQ_RING / 2, "read rounds exceed the seq ring");

void mc_raft_config_defaults(struct mc_raft_config *cfg)
{
    if (!cfg->election_tick) {
        cfg->election_tick = 10;
    }
    if (!cfg->heartbeat_tick) {
        cfg->heartbeat_tick = 1;
    }
    if (!cfg->lease_drift_ticks) {
        cfg->lease_drift_ticks = 2;
    }
    if (!cfg->read_rounds_in_flight) {
        cfg->read_rounds_in_flight = 1;
    }
    if (!cfg->max_inflight_msgs) {
        cfg->max_inflight_msgs = 256;
    }
    if (!cfg->max_msg_bytes) {
        cfg->max_msg_bytes = 1u << 20;
    }
    if (!cfg->max_uncommitted_bytes) {
        cfg->max_uncommitted_bytes = 64ull << 20;
    }
    if (!cfg->max_committed_bytes_per_ready) {
        cfg->max_committed_bytes_per_ready = 64ull << 20;
    }
    if (!cfg->snapshot_timeout_tick) {
        cfg->snapshot_timeout_tick = 10 * cfg->election_tick;
    }
    if (!cfg->snapshot_keep_entries) {
        cfg->snapshot_keep_entries = 5000;
    }
    if (!cfg->snapshot_keep_bytes) {
        cfg->snapshot_keep_bytes = 32ull << 20;
    }
    if (!cfg->catch_up_keep_bytes) {
        cfg->catch_up_keep_bytes = 256ull << 20;
    }
    if (!cfg->alloc.malloc || !cfg->alloc.realloc || !cfg->alloc.free) {
        cfg->alloc.malloc = libc_malloc;
        cfg->alloc.realloc = libc_realloc;
        cfg->alloc.free = libc_free;
        cfg->alloc.ud = NULL;
    }
}

static int init_conf(struct mc_raft *r, const struct mc_raft_config *cfg)
{
    struct mc_raft_conf c;
    memset(&c, 0, sizeof(c));
    if (cfg->n_initial_voters > MC_RAFT_MAX_NODES || cfg->n_initial_learners > MC_RAFT_MAX_NODES) {
        return MC_EINVAL;
    }
    for (size_t i = 0; i < cfg->n_initial_voters; i++) {
        c.voters[c.n_voters++] = cfg->initial_voters[i];
    }
    for (size_t i = 0; i < cfg->n_initial_learners; i++) {
        c.learners[c.n_learners++] = cfg->initial_learners[i];
    }
    if (conf_validate(&c)) {
        return MC_EINVAL;
    }
    r->base_conf = c;
    return 0;
}

static int restore(struct mc_raft *r, const struct mc_raft_restore *rs)
{
    uint64_t offset = 0, offset_term = 0;
    if (rs->has_snapshot) {
        if (conf_validate(&rs->snapshot.conf)) {
            return MC_EINVAL;
        }
        offset = rs->snapshot.index;
        offset_term = rs->snapshot.term;
        r->snap = rs->snapshot;
        r->has_snap = true;
        r->base_conf = rs->snapshot.conf;
    }
    log_init(r, offset, offset_term);
    /* Entries at or below the snapshot (a WAL keeps some) are skipped; the rest must follow it. */
    size_t skip = 0;
    while (skip < rs->n_entries && rs->entries[skip].index <= offset) {
        if (rs->entries[skip].index == offset && rs->entries[skip].term != offset_term) {
            return MC_EINVAL;
        }
        skip++;
    }
    uint64_t prev_term = offset_term;
    for (size_t i = skip; i < rs->n_entries; i++) {
        const struct mc_raft_entry *e = &rs->entries[i];
        if (e->index != offset + 1 + (i - skip) || e->term < prev_term || e->term == 0 ||
            e->len > MC_RAFT_MAX_ENTRY_BYTES || (e->len && !e->data) ||
            e->type > MC_RAFT_ENTRY_CONF || e->term > rs->hard_state.term) {
            return MC_EINVAL;
        }
        prev_term = e->term;
    }
    int rc = log_append(r, rs->entries + skip, rs->n_entries - skip);
    if (rc) {
        return rc;
    }
    uint64_t last = log_last_index(&r->log);
    r->log.unstable = last + 1;
    r->log.persisted = last;
    if (rs->hard_state.vote && !rs->hard_state.term) {
        return MC_EINVAL;
    }
    r->term = rs->hard_state.term;
    r->vote = rs->hard_state.vote;
    /* The hard state's commit may lag or (async WAL) lead what the log holds. */
    uint64_t commit = rs->hard_state.commit < last ? rs->hard_state.commit : last;
    if (commit < offset) {
        commit = offset;
    }
    if (rs->applied > last) {
        return MC_EINVAL; /* the state machine is ahead of the log: wrong WAL */
    }
    r->applied = rs->applied > offset ? rs->applied : offset;
    if (commit < r->applied) {
        commit = r->applied;
    }
    r->commit = commit;
    return mb_recompute(r);
}

int mc_raft_create(const struct mc_raft_config *cfg_in, struct mc_raft **out)
{
    *out = NULL;
    struct mc_raft_config cfg = *cfg_in;
    mc_raft_config_defaults(&cfg);
    if (cfg.id == 0 || cfg.heartbeat_tick >= cfg.election_tick ||
        (cfg.lease_read && cfg.disable_check_quorum) ||
        cfg.lease_drift_ticks >= cfg.election_tick || cfg.max_inflight_msgs > (1u << 20) ||
        cfg.read_rounds_in_flight > MC_RAFT_MAX_READ_ROUNDS) {
        return MC_EINVAL;
    }
    struct mc_raft *r = cfg.alloc.malloc(cfg.alloc.ud, sizeof(*r));
    if (!r) {
        return MC_ENOMEM;
    }
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    r->cfg.initial_voters = NULL;
    r->cfg.initial_learners = NULL;
    r->cfg.restore = NULL;
    r->id = cfg.id;
    mc_rand_seed(&r->rng, cfg.seed ^ (cfg.id * 0x9e3779b97f4a7c15ull));
    int rc = init_conf(r, &cfg);
    if (!rc) {
        if (cfg.restore) {
            rc = restore(r, cfg.restore);
        } else {
            log_init(r, 0, 0);
            rc = mb_recompute(r);
        }
    }
    if (rc) {
        mc_raft_destroy(r);
        return rc;
    }
    r->role = MC_RAFT_FOLLOWER;
    /* Nothing on disk: a new member, or one whose data dir was lost (election.c). */
    r->amnesic = log_last_index(&r->log) == 0;
    el_reset_timeout(r);
    r->prev_hard = (struct mc_raft_hard_state){r->term, r->vote, r->commit};
    r->prev_soft = (struct mc_raft_soft_state){0, MC_RAFT_FOLLOWER};
    *out = r;
    return 0;
}

void mc_raft_destroy(struct mc_raft *r)
{
    if (!r) {
        return;
    }
    log_destroy(r);
    pr_destroy_all(r);
    ra_free(r, r->out);
    ra_free(r, r->out_ent_off);
    ra_free(r, r->ent_arena);
    ra_free(r, r->rstates);
    ra_free(r, r->reads);
    r->cfg.alloc.free(r->cfg.alloc.ud, r);
}

/* ---- inputs ---- */

void mc_raft_tick(struct mc_raft *r)
{
    if (r->err) {
        return;
    }
    r->tick++;
    el_tick(r);
    check_invariants(r);
}

static bool is_leader_msg(uint8_t t)
{
    return t == MC_RAFT_MSG_APPEND || t == MC_RAFT_MSG_HEARTBEAT || t == MC_RAFT_MSG_SNAPSHOT;
}

/* Term rules common to every message (§5.1, thesis §9.6 pre-vote, §6.2 check-quorum). */
static bool step_term(struct mc_raft *r, const struct mc_raft_msg *m)
{
    if (m->term > r->term) {
        if (m->type == MC_RAFT_MSG_VOTE || m->type == MC_RAFT_MSG_PREVOTE) {
            bool force = m->flags & MC_RAFT_FLAG_TRANSFER;
            /* Leader stickiness: while we hear from a leader, ignore disruptive candidates. */
            bool in_lease = !r->cfg.disable_check_quorum && r->leader != 0 &&
                            r->election_elapsed < r->cfg.election_tick;
            if (!force && in_lease) {
                return false;
            }
        }
        if (m->type == MC_RAFT_MSG_PREVOTE) {
            /* Never change term on a pre-vote request. */
        } else if (m->type == MC_RAFT_MSG_PREVOTE_RESP && !m->reject) {
            /* A granted pre-vote carries the future term; keep ours until we campaign. */
        } else if (is_leader_msg(m->type)) {
            el_become_follower(r, m->term, m->from);
        } else {
            el_become_follower(r, m->term, 0);
        }
        return true;
    }
    if (m->term < r->term) {
        if ((!r->cfg.disable_check_quorum || !r->cfg.disable_pre_vote) &&
            (m->type == MC_RAFT_MSG_APPEND || m->type == MC_RAFT_MSG_HEARTBEAT)) {
            /* A stale leader (e.g. after a partition) learns our term and steps down. */
            struct mc_raft_msg *o = ra_msg(r, MC_RAFT_MSG_APPEND_RESP, m->from);
            if (o) {
                o->wait_persist = 0;
            }
        } else if (m->type == MC_RAFT_MSG_PREVOTE) {
            struct mc_raft_msg *o = ra_msg(r, MC_RAFT_MSG_PREVOTE_RESP, m->from);
            if (o) {
                o->reject = 1;
            }
        }
        return false;
    }
    return true;
}

static void step_follower(struct mc_raft *r, const struct mc_raft_msg *m)
{
    switch (m->type) {
    case MC_RAFT_MSG_APPEND:
        r->election_elapsed = 0;
        r->leader = m->from;
        rep_handle_append(r, m);
        break;
    case MC_RAFT_MSG_HEARTBEAT:
        r->election_elapsed = 0;
        r->leader = m->from;
        rep_handle_heartbeat(r, m);
        break;
    case MC_RAFT_MSG_SNAPSHOT:
        r->election_elapsed = 0;
        r->leader = m->from;
        sn_handle_snapshot(r, m);
        break;
    case MC_RAFT_MSG_TIMEOUT_NOW:
        tr_handle_timeout_now(r, m);
        break;
    case MC_RAFT_MSG_READ_INDEX_RESP:
        ri_handle_resp(r, m);
        break;
    case MC_RAFT_MSG_READ_INDEX:
        if (r->leader) {
            /* Not the leader (any more): tell the asker so it does not wait for a timeout. */
            struct mc_raft_msg *o = ra_msg(r, MC_RAFT_MSG_READ_INDEX_RESP, m->from);
            if (o) {
                o->reject = 1;
                o->ctx = m->ctx;
                o->wait_persist = 0;
            }
        }
        break;
    default:
        break;
    }
}

static void step_candidate(struct mc_raft *r, const struct mc_raft_msg *m)
{
    switch (m->type) {
    case MC_RAFT_MSG_APPEND:
    case MC_RAFT_MSG_HEARTBEAT:
    case MC_RAFT_MSG_SNAPSHOT:
        /* A leader exists in our term (§5.2): return to follower. */
        el_become_follower(r, m->term, m->from);
        step_follower(r, m);
        break;
    case MC_RAFT_MSG_VOTE_RESP:
    case MC_RAFT_MSG_PREVOTE_RESP:
        el_handle_vote_resp(r, m);
        break;
    default:
        break;
    }
}

static void step_leader(struct mc_raft *r, const struct mc_raft_msg *m)
{
    switch (m->type) {
    case MC_RAFT_MSG_APPEND_RESP:
        rep_handle_append_resp(r, m);
        break;
    case MC_RAFT_MSG_HEARTBEAT_RESP:
        rep_handle_heartbeat_resp(r, m);
        break;
    case MC_RAFT_MSG_READ_INDEX:
        if (ri_request(r, m->ctx, m->from)) {
            struct mc_raft_msg *o = ra_msg(r, MC_RAFT_MSG_READ_INDEX_RESP, m->from);
            if (o) {
                o->reject = 1;
                o->ctx = m->ctx;
            }
        }
        break;
    default:
        break;
    }
}

int mc_raft_step(struct mc_raft *r, const struct mc_raft_msg *m)
{
    if (r->err) {
        return r->err;
    }
    if (m->to != r->id || m->from == 0 || m->from == r->id) {
        return MC_EINVAL;
    }
    if (m->n_entries && !m->entries) {
        return MC_EINVAL;
    }
    if (!step_term(r, m)) {
        return r->err;
    }
    if (m->type == MC_RAFT_MSG_VOTE || m->type == MC_RAFT_MSG_PREVOTE) {
        el_handle_vote(r, m);
        check_invariants(r);
        return r->err;
    }
    switch (r->role) {
    case MC_RAFT_LEADER:
        step_leader(r, m);
        break;
    case MC_RAFT_CANDIDATE:
    case MC_RAFT_PRE_CANDIDATE:
        step_candidate(r, m);
        break;
    default:
        step_follower(r, m);
        break;
    }
    check_invariants(r);
    return r->err;
}

int mc_raft_propose(struct mc_raft *r, const struct mc_raft_entry *entries, size_t n,
                    uint64_t *first_index)
{
    if (r->err) {
        return r->err;
    }
    if (r->role != MC_RAFT_LEADER || r->lead_transferee) {
        return MC_ENOTLEADER;
    }
    uint64_t bytes = 0;
    for (size_t i = 0; i < n; i++) {
        if (entries[i].type != MC_RAFT_ENTRY_NORMAL) {
            return MC_EINVAL;
        }
        if (entries[i].len > MC_RAFT_MAX_ENTRY_BYTES || (entries[i].len && !entries[i].data)) {
            return entries[i].len > MC_RAFT_MAX_ENTRY_BYTES ? MC_ETOOLARGE : MC_EINVAL;
        }
        bytes += entries[i].len;
    }
    if (r->uncommitted_bytes + bytes > r->cfg.max_uncommitted_bytes && r->uncommitted_bytes) {
        return MC_ELIMIT;
    }
    if (first_index) {
        *first_index = log_last_index(&r->log) + 1;
    }
    return rep_append_local(r, entries, n);
}

void mc_raft_report_unreachable(struct mc_raft *r, uint64_t id)
{
    if (r->role != MC_RAFT_LEADER) {
        return;
    }
    struct progress *p = pr_get(r, id);
    if (p && id != r->id && p->state == MC_RAFT_PROGRESS_REPLICATE) {
        pr_become_probe(p);
    }
}

void mc_raft_persisted(struct mc_raft *r, uint64_t index, uint64_t term)
{
    struct rlog *l = &r->log;
    if (index <= l->persisted || index >= l->unstable || !log_match(l, index, term)) {
        return; /* stale: the entry was replaced, or not handed out yet */
    }
    l->persisted = index;
    if (r->role == MC_RAFT_LEADER) {
        struct progress *p = pr_get(r, r->id);
        if (p) {
            pr_maybe_update(p, index);
        }
        if (rep_maybe_commit(r)) {
            r->bcast_pending = true;
        }
    }
}

/* ---- ready / advance ---- */

static size_t committed_to(const struct mc_raft *r, uint64_t *hi_out)
{
    uint64_t hi = r->commit < r->log.persisted ? r->commit : r->log.persisted;
    if (hi <= r->applied) {
        *hi_out = r->applied;
        return 0;
    }
    /* Bound the batch by bytes (at least one entry). */
    uint64_t bytes = 0, i = r->applied + 1;
    for (; i <= hi; i++) {
        const struct mc_raft_entry *e = log_at(&r->log, i);
        assert(e);
        if (i > r->applied + 1 && bytes + e->len > r->cfg.max_committed_bytes_per_ready) {
            break;
        }
        bytes += e->len;
    }
    *hi_out = i - 1;
    return (size_t)(i - 1 - r->applied);
}

/* Field-wise (struct padding must not count as a change). */
static bool hard_changed(const struct mc_raft *r)
{
    return r->term != r->prev_hard.term || r->vote != r->prev_hard.vote ||
           r->commit != r->prev_hard.commit;
}

static bool soft_changed(const struct mc_raft *r)
{
    return r->leader != r->prev_soft.leader_id || r->role != r->prev_soft.role;
}

bool mc_raft_has_ready(const struct mc_raft *r)
{
    uint64_t hi;
    return r->n_out || r->n_rstates || r->snapshot_to_install || r->bcast_pending ||
           r->read_bcast_pending || r->log.unstable <= log_last_index(&r->log) || hard_changed(r) ||
           soft_changed(r) || committed_to(r, &hi) > 0;
}

bool mc_raft_snapshot_install_due(const struct mc_raft *r)
{
    /* Set by sn_handle_snapshot, cleared by the advance of the ready that handed it out. */
    return r->snapshot_to_install;
}

void mc_raft_ready(struct mc_raft *r, struct mc_raft_ready *rd)
{
    memset(rd, 0, sizeof(*rd));
    if (r->role == MC_RAFT_LEADER) {
        rep_flush(r);
        ri_flush(r);
    }
    r->bcast_pending = false;
    r->read_bcast_pending = false;

    rd->soft_state_changed = soft_changed(r);
    rd->soft_state.leader_id = r->leader;
    rd->soft_state.role = r->role;
    rd->hard_state_changed = hard_changed(r);
    rd->hard_state.term = r->term;
    rd->hard_state.vote = r->vote;
    rd->hard_state.commit = r->commit;

    if (r->snapshot_to_install) {
        rd->snapshot = &r->snap;
    }
    r->rd_snapshot = r->snapshot_to_install;

    uint64_t last = log_last_index(&r->log);
    if (r->log.unstable <= last) {
        rd->entries = log_at(&r->log, r->log.unstable);
        rd->n_entries = (size_t)(last - r->log.unstable + 1);
    }
    r->rd_unstable_to = last + 1;

    for (size_t i = 0; i < r->n_out; i++) {
        r->out[i].entries = r->out[i].n_entries ? r->ent_arena + r->out_ent_off[i] : NULL;
    }
    rd->msgs = r->out;
    rd->n_msgs = r->n_out;

    uint64_t hi;
    rd->n_committed = committed_to(r, &hi);
    rd->committed = rd->n_committed ? log_at(&r->log, r->applied + 1) : NULL;
    r->rd_applied_to = hi;

    rd->reads = r->rstates;
    rd->n_reads = r->n_rstates;
}

void mc_raft_advance(struct mc_raft *r, const struct mc_raft_ready *rd)
{
    if (rd->soft_state_changed) {
        r->prev_soft = rd->soft_state;
    }
    if (rd->hard_state_changed) {
        r->prev_hard = rd->hard_state;
    }
    if (r->rd_snapshot) {
        r->snapshot_to_install = false;
    }
    if (r->log.unstable < r->rd_unstable_to) {
        r->log.unstable = r->rd_unstable_to;
    }
    assert(r->rd_applied_to >= r->applied);
    assert(r->rd_applied_to <= r->commit);
    r->applied = r->rd_applied_to;
    r->n_out = 0;
    r->n_arena = 0;
    r->n_rstates = 0;
    log_free_garbage(r);
    check_invariants(r);
}

/* ---- status ---- */

void mc_raft_status(const struct mc_raft *r, struct mc_raft_status *st)
{
    memset(st, 0, sizeof(*st));
    st->id = r->id;
    st->role = r->role;
    st->leader_id = r->leader;
    st->term = r->term;
    st->vote = r->vote;
    st->commit = r->commit;
    st->applied = r->applied;
    st->persisted = r->log.persisted;
    st->first_index = r->log.offset + 1;
    st->last_index = log_last_index(&r->log);
    st->log_bytes = r->log.bytes;
    st->snapshot_index = r->has_snap ? r->snap.index : 0;
    st->tick = r->tick;
    st->lead_transferee = r->lead_transferee;
    st->is_learner = mc_raft_conf_is_learner(&r->conf, r->id);
    st->conf = r->conf;
    st->empty_log_vote_refusals = r->empty_log_vote_refusals;
    st->amnesic = r->amnesic;
    if (r->role != MC_RAFT_LEADER) {
        return;
    }
    for (uint32_t i = 0; i < r->n_prs; i++) {
        const struct progress *p = &r->prs[i];
        if (p->id == r->id) {
            continue;
        }
        struct mc_raft_peer_status *ps = &st->peers[st->n_peers++];
        ps->id = p->id;
        ps->is_learner = p->learner;
        ps->state = p->state;
        ps->match = p->match;
        ps->next = p->next;
        ps->inflight = p->infl_count;
        ps->recent_active = p->recent_active;
        ps->last_heard_tick = p->last_heard_tick;
        ps->pending_snapshot = p->pending_snapshot;
    }
}

const struct mc_raft_conf *mc_raft_conf(const struct mc_raft *r)
{
    return &r->conf;
}
enum mc_raft_role mc_raft_role(const struct mc_raft *r)
{
    return (enum mc_raft_role)r->role;
}
uint64_t mc_raft_id(const struct mc_raft *r)
{
    return r->id;
}
int mc_raft_error(const struct mc_raft *r)
{
    return r->err;
}
uint64_t mc_raft_term(const struct mc_raft *r)
{
    return r->term;
}
uint64_t mc_raft_leader(const struct mc_raft *r)
{
    return r->leader;
}
uint64_t mc_raft_commit_index(const struct mc_raft *r)
{
    return r->commit;
}
uint64_t mc_raft_last_index(const struct mc_raft *r)
{
    return log_last_index(&r->log);
}
uint64_t mc_raft_term_at(const struct mc_raft *r, uint64_t index)
{
    return log_term(&r->log, index);
}

const struct mc_raft_entry *mc_raft_entry_at(const struct mc_raft *r, uint64_t index)
{
    return log_at(&r->log, index);
}
int mc_raft_conf_at(const struct mc_raft *r, uint64_t index, struct mc_raft_conf *out)
{
    return mb_conf_at(r, index, out);
}

const char *mc_raft_msg_type_name(int type)
{
    static const char *names[] = {
        "?",           "append",       "append_resp",    "vote",           "vote_resp",
        "prevote",     "prevote_resp", "heartbeat",      "heartbeat_resp", "snapshot",
        "timeout_now", "read_index",   "read_index_resp"};
    if (type < 0 || type >= (int)(sizeof(names) / sizeof(names[0]))) {
        return "?";
    }
    return names[type];
}

const char *mc_raft_role_name(int role)
{
    switch (role) {
    case MC_RAFT_FOLLOWER:
        return "follower";
    case MC_RAFT_PRE_CANDIDATE:
        return "pre_candidate";
    case MC_RAFT_CANDIDATE:
        return "candidate";
    case MC_RAFT_LEADER:
        return "leader";
    default:
        return "?";
    }
}
