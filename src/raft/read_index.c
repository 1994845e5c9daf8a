/* read_index.c: linearizable reads via ReadIndex (thesis §6.4), batched, with optional lease. */
#include "raft/raft_int.h"

#include <string.h>

static struct pending_read *q_at(struct mc_raft *r, size_t i)
{
    return &r->reads[(r->reads_head + i) % r->cap_reads];
}

static void respond(struct mc_raft *r, uint64_t ctx, uint64_t from, uint64_t index, int err)
{
    if (from == 0) {
        ra_read_state(r, ctx, index, err);
        return;
    }
    struct mc_raft_msg *m = ra_msg(r, MC_RAFT_MSG_READ_INDEX_RESP, from);
    if (m) {
        m->ctx = ctx;
        m->index = index;
        m->reject = err ? 1 : 0;
        m->wait_persist = 0;
    }
}

bool ri_lease_valid(const struct mc_raft *r)
{
    /* Thesis §6.4.1: followers refuse votes for an election timeout after hearing from us
     * (check-quorum stickiness), so a quorum-acked heartbeat sent at tick t guarantees no other
     * leader before t + election_tick on their clocks; the drift margin covers clock rate skew. */
    return r->cfg.lease_read && !r->cfg.disable_check_quorum && r->lead_transferee == 0 &&
           !r->lease_revoked && r->tick < r->lease_until_tick;
}

static bool single_voter(const struct mc_raft *r)
{
    uint64_t self = r->id;
    return quorum_has(&r->conf, &self, 1);
}

static int push(struct mc_raft *r, const struct pending_read *pr)
{
    if (r->n_reads_q >= MC_RAFT_MAX_PENDING_READS) {
        return MC_ELIMIT;
    }
    if (r->n_reads_q == r->cap_reads) {
        /* Grow the ring and unwrap it. */
        size_t ncap = r->cap_reads ? r->cap_reads * 2 : 64;
        struct pending_read *n = ra_malloc(r, ncap * sizeof(*n));
        if (!n) {
            return MC_ENOMEM;
        }
        for (size_t i = 0; i < r->n_reads_q; i++) {
            n[i] = *q_at(r, i);
        }
        ra_free(r, r->reads);
        r->reads = n;
        r->cap_reads = ncap;
        r->reads_head = 0;
    }
    *q_at(r, r->n_reads_q) = *pr;
    r->n_reads_q++;
    return 0;
}

int ri_request(struct mc_raft *r, uint64_t ctx, uint64_t from)
{
    assert(r->role == MC_RAFT_LEADER);
    bool own = rep_committed_own_term(r);
#ifdef MC_RAFT_BUG_READ_NO_CONFIRM
    respond(r, ctx, from, r->commit, 0);
    (void)own;
    return 0;
#endif
    /* Step 1 of §6.4: the commit index is only known current once we committed in our term. */
    if (own && (single_voter(r) || ri_lease_valid(r))) {
        respond(r, ctx, from, r->commit, 0);
        return 0;
    }
    struct pending_read pr = {ctx, from, own ? r->commit : 0, 0};
    int rc = push(r, &pr);
    if (!rc && own) {
        r->read_bcast_pending = true;
    }
    return rc;
}

void ri_on_commit_own_term(struct mc_raft *r)
{
    bool any = false;
    for (size_t i = 0; i < r->n_reads_q; i++) {
        struct pending_read *p = q_at(r, i);
        if (p->index == 0) {
            p->index = r->commit;
            any = true;
        }
    }
    if (any) {
        r->read_bcast_pending = true;
    }
}

void ri_assign_seq(struct mc_raft *r, uint64_t seq)
{
    for (size_t i = r->n_reads_q; i > 0; i--) {
        struct pending_read *p = q_at(r, i - 1);
        if (p->seq != 0) {
            break; /* everything before was assigned earlier */
        }
        if (p->index != 0) {
            p->seq = seq;
        }
    }
}

static uint64_t acked_of(const struct mc_raft *r, uint64_t id)
{
    if (id == r->id) {
        return r->read_seq;
    }
    for (uint32_t i = 0; i < r->n_prs; i++) {
        if (r->prs[i].id == id) {
            return r->prs[i].read_seq_acked;
        }
    }
    return 0;
}

/* The newest heartbeat round a quorum has acknowledged (0 or UINT64_MAX: none known). */
static uint64_t quorum_acked_seq(const struct mc_raft *r)
{
    return quorum_committed(r, &r->conf, acked_of);
}

static bool read_rounds_full(const struct mc_raft *r);

void ri_on_heartbeat_resp(struct mc_raft *r)
{
    uint64_t acked = quorum_acked_seq(r);
    if (acked == UINT64_MAX || acked == 0) {
        return;
    }
    if (acked + RA_SEQ_RING > r->read_seq) {
        uint64_t until =
            r->seq_tick[acked % RA_SEQ_RING] + r->cfg.election_tick - r->cfg.lease_drift_ticks;
        if (until > r->lease_until_tick) {
            r->lease_until_tick = until;
        }
    }
    while (r->n_reads_q) {
        struct pending_read *p = q_at(r, 0);
        if (p->seq == 0 || p->seq > acked) {
            break;
        }
        respond(r, p->ctx, p->from, p->index, 0);
        r->reads_head = (r->reads_head + 1) % r->cap_reads;
        r->n_reads_q--;
    }
    if (r->n_reads_q && !read_rounds_full(r)) {
        /* A round ri_flush waited for is complete (or those out are from an earlier tick, so
         * no longer count): reads queued meanwhile get the next one. */
        struct pending_read *last = q_at(r, r->n_reads_q - 1);
        if (last->seq == 0 && last->index != 0) {
            r->read_bcast_pending = true;
        }
    }
}

/* As many rounds as read_rounds_in_flight were sent this tick and still wait for their quorum. */
static bool read_rounds_full(const struct mc_raft *r)
{
    uint64_t acked = quorum_acked_seq(r);
    if (acked == UINT64_MAX || acked >= r->read_seq) {
        return false;
    }
    /* A round whose messages were lost must not hold reads forever: a round sent in an earlier
     * tick no longer counts, so the next read or heartbeat sends anew. Rounds are sent in tick
     * order, so the ones of this tick are the newest. */
    uint32_t out = 0;
    for (uint64_t seq = r->read_seq; seq > acked && out < r->cfg.read_rounds_in_flight; seq--) {
        if (r->seq_tick[seq % RA_SEQ_RING] != r->tick) {
            break;
        }
        out++;
    }
    return out >= r->cfg.read_rounds_in_flight;
}

void ri_flush(struct mc_raft *r)
{
    if (!r->read_bcast_pending || r->n_reads_q == 0) {
        return;
    }
    struct pending_read *last = q_at(r, r->n_reads_q - 1);
    if (last->seq != 0 || last->index == 0) {
        return;
    }
    /* At most read_rounds_in_flight rounds out (1 by default, as etcd's read loop): reads that
     * arrive while they are out wait for one to complete and then share the next, so the number
     * of rounds per second stays bounded by the round trip instead of growing with the read
     * rate. ri_on_heartbeat_resp re-arms the broadcast when a round completes. */
    if (read_rounds_full(r)) {
        return;
    }
    /* One heartbeat round confirms every read queued since the previous round. */
    rep_bcast_heartbeat(r, 0);
    ri_on_heartbeat_resp(r);
}

void ri_drop_all(struct mc_raft *r)
{
    for (size_t i = 0; i < r->n_reads_q; i++) {
        struct pending_read *p = q_at(r, i);
        respond(r, p->ctx, p->from, 0, MC_ENOTLEADER);
    }
    r->n_reads_q = 0;
    r->reads_head = 0;
}

void ri_reset(struct mc_raft *r)
{
    ri_drop_all(r);
    r->lease_until_tick = 0;
    r->lease_revoked = false;
    r->read_bcast_pending = false;
}

void ri_handle_resp(struct mc_raft *r, const struct mc_raft_msg *m)
{
    ra_read_state(r, m->ctx, m->reject ? 0 : m->index, m->reject ? MC_ENOTLEADER : 0);
}

int mc_raft_read_index(struct mc_raft *r, uint64_t ctx)
{
    if (r->err) {
        return r->err;
    }
    if (r->role == MC_RAFT_LEADER) {
        return ri_request(r, ctx, 0);
    }
    if (r->leader == 0) {
        return MC_ENOTLEADER;
    }
    struct mc_raft_msg *m = ra_msg(r, MC_RAFT_MSG_READ_INDEX, r->leader);
    if (!m) {
        return MC_ENOMEM;
    }
    m->ctx = ctx;
    m->wait_persist = 0;
    return 0;
}
