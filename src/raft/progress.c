/* progress.c: the leader's view of each peer (probe / replicate / snapshot) and in-flight window.
 */
#include "raft/raft_int.h"

#include <string.h>

struct progress *pr_get(struct mc_raft *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].id == id) {
            return &r->prs[i];
        }
    }
    return NULL;
}

static void infl_reset(struct progress *p)
{
    p->infl_start = 0;
    p->infl_count = 0;
}

void pr_become_probe(struct progress *p)
{
    /* After a snapshot the follower is known to hold at least the snapshot (etcd's rule). */
    if (p->state == MC_RAFT_PROGRESS_SNAPSHOT) {
        uint64_t ps = p->pending_snapshot;
        p->next = (p->match + 1 > ps + 1) ? p->match + 1 : ps + 1;
    } else {
        p->next = p->match + 1;
    }
    p->state = MC_RAFT_PROGRESS_PROBE;
    p->probe_sent = false;
    p->pending_snapshot = 0;
    infl_reset(p);
}

void pr_become_replicate(struct progress *p)
{
    p->state = MC_RAFT_PROGRESS_REPLICATE;
    p->next = p->match + 1;
    p->probe_sent = false;
    p->pending_snapshot = 0;
    infl_reset(p);
}

void pr_become_snapshot(struct progress *p, uint64_t snap_index)
{
    p->state = MC_RAFT_PROGRESS_SNAPSHOT;
    p->pending_snapshot = snap_index;
    p->probe_sent = false;
    infl_reset(p);
}

bool pr_maybe_update(struct progress *p, uint64_t n)
{
    bool updated = false;
    if (p->match < n) {
        p->match = n;
        updated = true;
        p->probe_sent = false;
    }
    if (p->next < n + 1) {
        p->next = n + 1;
    }
    return updated;
}

/*
 * A rejection of the append whose previous index was `rejected`; match_hint is the leader's
 * estimate (from the follower's conflict hints) of the follower's last matching index.
 * Returns false for stale rejections (etcd's MaybeDecrTo).
 */
bool pr_maybe_decr(struct progress *p, uint64_t rejected, uint64_t match_hint)
{
    if (rejected > 0 && rejected == p->match && match_hint < p->match) {
        /* The follower rejected the very entry we had recorded as matching: it lost persisted
         * state (its data dir was wiped). Raft assumes this never happens (§5.1); rather than
         * stall forever, re-probe from what it holds now. Moving match back is conservative:
         * commit never decreases, and quorums only get harder to reach. */
        p->match = match_hint;
        p->next = match_hint + 1;
        p->probe_sent = false;
        return true;
    }
    if (p->state == MC_RAFT_PROGRESS_REPLICATE) {
        if (rejected <= p->match) {
            return false;
        }
        p->next = p->match + 1;
        return true;
    }
    if (p->next - 1 != rejected) {
        return false;
    }
    uint64_t n = rejected < match_hint + 1 ? rejected : match_hint + 1;
    if (n < p->match + 1) {
        n = p->match + 1;
    }
    if (n < 1) {
        n = 1;
    }
    p->next = n;
    p->probe_sent = false;
    return true;
}

bool pr_is_paused(const struct mc_raft *r, const struct progress *p)
{
    (void)r;
    switch (p->state) {
    case MC_RAFT_PROGRESS_PROBE:
        return p->probe_sent;
    case MC_RAFT_PROGRESS_REPLICATE:
        return p->infl_count >= p->infl_cap;
    default:
        return true;
    }
}

void pr_infl_add(struct progress *p, uint64_t last)
{
    assert(p->infl_count < p->infl_cap);
    p->infl[(p->infl_start + p->infl_count) % p->infl_cap] = last;
    p->infl_count++;
}

void pr_infl_free_to(struct progress *p, uint64_t index)
{
    while (p->infl_count && p->infl[p->infl_start] <= index) {
        p->infl_start = (p->infl_start + 1) % p->infl_cap;
        p->infl_count--;
    }
}

static void pr_init(struct mc_raft *r, struct progress *p, uint64_t id, bool learner)
{
    uint64_t *infl = p->infl;
    uint32_t cap = p->infl_cap;
    memset(p, 0, sizeof(*p));
    p->infl = infl;
    p->infl_cap = cap;
    p->id = id;
    p->learner = learner;
    p->next = log_last_index(&r->log) + 1;
    p->state = MC_RAFT_PROGRESS_PROBE;
    p->recent_active = true;
    p->last_heard_tick = r->tick;
}

static int pr_alloc(struct mc_raft *r, struct progress *p)
{
    if (p->infl) {
        return 0;
    }
    p->infl = ra_malloc(r, (size_t)r->cfg.max_inflight_msgs * sizeof(uint64_t));
    if (!p->infl) {
        return MC_ENOMEM;
    }
    p->infl_cap = r->cfg.max_inflight_msgs;
    return 0;
}

/* Make prs[] exactly the members of r->conf, keeping the state of those already tracked. */
int pr_sync_conf(struct mc_raft *r)
{
    const struct mc_raft_conf *c = &r->conf;
    /* Remove departed members (free their windows). */
    for (uint32_t i = 0; i < r->n_prs;) {
        if (!conf_is_member(c, r->prs[i].id)) {
            ra_free(r, r->prs[i].infl);
            r->prs[i] = r->prs[r->n_prs - 1];
            memset(&r->prs[r->n_prs - 1], 0, sizeof(r->prs[0]));
            r->n_prs--;
        } else {
            i++;
        }
    }
    uint64_t ids[3 * MC_RAFT_MAX_NODES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n_voters; i++) {
        ids[n++] = c->voters[i];
    }
    for (uint32_t i = 0; i < c->n_voters_outgoing; i++) {
        ids[n++] = c->voters_outgoing[i];
    }
    for (uint32_t i = 0; i < c->n_learners; i++) {
        ids[n++] = c->learners[i];
    }
    for (uint32_t i = 0; i < n; i++) {
        struct progress *p = pr_get(r, ids[i]);
        bool learner = !conf_is_any_voter(c, ids[i]);
        if (p) {
            p->learner = learner;
            continue;
        }
        assert(r->n_prs < MC_RAFT_MAX_NODES);
        p = &r->prs[r->n_prs];
        pr_init(r, p, ids[i], learner);
        if (pr_alloc(r, p)) {
            ra_set_err(r, MC_ENOMEM);
            return MC_ENOMEM;
        }
        r->n_prs++;
        if (ids[i] == r->id) {
            p->match = r->log.persisted;
        }
    }
    return 0;
}

/* A new leader's view: everyone probes from our last index (§5.3). */
int pr_reset_all(struct mc_raft *r)
{
    int rc = pr_sync_conf(r);
    if (rc) {
        return rc;
    }
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *p = &r->prs[i];
        pr_init(r, p, p->id, p->learner);
        if (p->id == r->id) {
            p->match = r->log.persisted;
            p->state = MC_RAFT_PROGRESS_REPLICATE;
        }
    }
    return 0;
}

void pr_destroy_all(struct mc_raft *r)
{
    for (uint32_t i = 0; i < MC_RAFT_MAX_NODES; i++) {
        ra_free(r, r->prs[i].infl);
        r->prs[i].infl = NULL;
    }
    r->n_prs = 0;
}
