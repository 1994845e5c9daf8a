/* node_members.c: membership changes: learner stage, quorum guard, leader removal via transfer,
 * telling a removed node it is out, and stopping a node that learns it was removed. */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Context of an add/promote entry: str peer_addr, str client_addr (read in node_write.c). */
static int encode_context(const struct mc_proto_request *q, struct mc_raft_conf_change *cc)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, MC_RAFT_CONF_CONTEXT_MAX);
    mc_wbuf_bytes(&w, q->u.member.peer_addr.ptr, q->u.member.peer_addr.len);
    mc_wbuf_bytes(&w, q->u.member.client_addr.ptr, q->u.member.client_addr.len);
    int rc = mc_wbuf_error(&w) ? MC_ETOOLARGE : 0;
    if (rc == 0) {
        memcpy(cc->context, w.data, w.len);
        cc->context_len = (uint32_t)w.len;
    }
    mc_wbuf_free(&w);
    return rc;
}

/* "host:port" as members' addresses are stored (member_info, MC_ADDR_MAX with its NUL): a
 * non-empty host of printable characters, a port 1..65535. */
static bool addr_syntax_ok(const char *a, size_t len)
{
    if (len == 0 || len >= MC_ADDR_MAX || strlen(a) != len) {
        return false;
    }
    const char *colon = strrchr(a, ':');
    if (!colon || colon == a || colon[1] == 0 || strlen(colon + 1) > 5) {
        return false;
    }
    for (const char *c = a; c < colon; c++) {
        if (*c <= ' ' || *c > '~') {
            return false;
        }
    }
    unsigned long port = 0;
    for (const char *c = colon + 1; *c; c++) {
        if (*c < '0' || *c > '9') {
            return false;
        }
        port = port * 10 + (unsigned long)(*c - '0');
    }
    return port >= 1 && port <= 65535;
}

/* An ADD_MEMBER's addresses before anything is proposed: a change with an address the members
 * cannot store (over MC_ADDR_MAX: followers dropped it, the leader cut it) or dial would commit
 * and leave the new member unreachable. The peer address must parse as the transport dials it
 * (an IP literal or localhost), unless this leader has a --peer-route for the member: then the
 * address is only a label (HOST:PORT syntax still holds) and the route is what is dialed. The
 * client address is optional (clients resolve names). */
static int check_member_addrs(const struct mc_node *n, const struct mc_proto_request *q, char *why,
                              size_t why_len)
{
    struct sockaddr_storage sa;
    const char *peer = q->u.member.peer_addr.ptr ? q->u.member.peer_addr.ptr : "";
    const char *client = q->u.member.client_addr.ptr ? q->u.member.client_addr.ptr : "";
    if (!addr_syntax_ok(peer, q->u.member.peer_addr.len) ||
        (mc_parse_addr(peer, &sa) != 0 && !node_peer_route(n, q->u.member.id))) {
        snprintf(why, why_len,
                 "the peer address must be IP:PORT (IPv6 in brackets, or localhost) under %d "
                 "bytes, or HOST:PORT for a member this leader has a --peer-route for",
                 MC_ADDR_MAX);
        return MC_EINVAL;
    }
    if (mc_parse_addr(peer, &sa) != 0) {
        /* Said at the moment of the add (rev19 R3): a member that leads later dials the label
         * unless it has the same route. */
        MC_WARN("member_peer_label",
                "id=%llu label=%.*s route=%s: every member that may lead "
                "needs a --peer-route for it",
                (unsigned long long)q->u.member.id, (int)q->u.member.peer_addr.len, peer,
                node_peer_route(n, q->u.member.id));
    }
    if (q->u.member.client_addr.len && !addr_syntax_ok(client, q->u.member.client_addr.len)) {
        snprintf(why, why_len, "the client address must be HOST:PORT under %d bytes", MC_ADDR_MAX);
        return MC_EINVAL;
    }
    return 0;
}

static bool conf_has(const uint64_t *ids, uint32_t n, uint64_t id)
{
    for (uint32_t i = 0; i < n; i++) {
        if (ids[i] == id) {
            return true;
        }
    }
    return false;
}

bool node_in_conf(struct mc_node *n, uint64_t id)
{
    const struct mc_raft_conf *c = n->raft ? mc_raft_conf(n->raft) : NULL;
    return c && (conf_has(c->voters, c->n_voters, id) || conf_has(c->learners, c->n_learners, id));
}

/* Voter id can be reached: self, or its link is up and the leader heard from it within two
 * election timeouts (a stopped process keeps its TCP link up, a killed one does not). */
static bool voter_reachable(struct mc_node *n, const struct mc_raft_status *st, uint64_t id)
{
    if (id == n->id) {
        return true;
    }
    struct member_info *mi = node_member(n, id);
    if (!mi || !mi->reachable) {
        return false;
    }
    uint64_t window = 2 * n->opts.election_timeout_ms / (n->opts.tick_ms ? n->opts.tick_ms : 1);
    for (uint32_t i = 0; i < st->n_peers; i++) {
        if (st->peers[i].id == id) {
            return st->tick - st->peers[i].last_heard_tick <= window;
        }
    }
    return false;
}

/*
 * A single-server change takes effect when appended (thesis §4.1), so a change to a voter set
 * whose majority is down would never commit and leave the cluster wedged. Refuse it.
 * delta: +1 promote id, -1 remove id.
 */
static int quorum_guard(struct mc_node *n, const struct mc_raft_status *st, uint64_t id, int delta,
                        char *why, size_t why_len)
{
    uint32_t voters = 0, up = 0;
    for (uint32_t i = 0; i < st->conf.n_voters; i++) {
        uint64_t v = st->conf.voters[i];
        if (delta < 0 && v == id) {
            continue;
        }
        voters++;
        up += voter_reachable(n, st, v);
    }
    if (delta > 0 && !conf_has(st->conf.voters, st->conf.n_voters, id)) {
        voters++;
        up += voter_reachable(n, st, id);
    }
    if (voters == 0 || up >= voters / 2 + 1) {
        return 0;
    }
    snprintf(why, why_len,
             "refused: the new configuration would have %u voters of which only %u are "
             "reachable (a majority is %u), so it could never commit; bring members back first",
             voters, up, voters / 2 + 1);
    return MC_EINVAL; /* not Unavailable: clients retry that, and retrying cannot help */
}

/* How far the learner's log is behind the leader's; *known = false until the learner has been
 * heard from and acknowledged entries (a learner nobody has heard from is not caught up). */
static uint64_t learner_lag(struct mc_node *n, const struct mc_raft_status *st, uint64_t id,
                            bool *known)
{
    *known = false;
    for (uint32_t i = 0; i < st->n_peers; i++) {
        if (st->peers[i].id == id) {
            *known = st->peers[i].match > 0 && voter_reachable(n, st, id);
            return st->last_index > st->peers[i].match ? st->last_index - st->peers[i].match : 0;
        }
    }
    return st->last_index;
}

/*
 * A learner just proposed: record its addresses so the leader can replicate to it at once (the
 * change takes effect when appended, thesis §4.1; the ready's messages go out after this). Only
 * once the proposal is accepted: a refused one (ConfChangeInProgress, already a learner) must not
 * change an existing member's address on the leader alone; apply_conf records them everywhere.
 */
static void set_new_member(struct mc_node *n, const struct mc_proto_request *q)
{
    node_set_member(n, q->u.member.id, q->u.member.peer_addr.ptr, q->u.member.client_addr.ptr);
}

static void propose(struct mc_node *n, const struct mc_client_token *t, uint8_t type,
                    const struct mc_proto_request *q)
{
    struct mc_raft_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = type;
    cc.node_id = q->u.member.id;
    int rc = 0;
    if (type == MC_RAFT_CONF_ADD_LEARNER) {
        rc = encode_context(q, &cc);
    }
    uint64_t index = 0;
    if (rc == 0) {
        rc = mc_raft_propose_conf_change(n->raft, &cc, &index);
    }
    if (rc == 0 && type == MC_RAFT_CONF_ADD_LEARNER) {
        set_new_member(n, q);
    }
    if (rc) {
        mc_client_reply_error(t, rc,
                              rc == MC_ECONFCHANGE ? "another membership change is still "
                                                     "committing; retry"
                                                   : NULL);
        return;
    }
    MC_INFO("membership_proposed", "type=%u node=%llu index=%llu", type,
            (unsigned long long)q->u.member.id, (unsigned long long)index);
    /* Answered when the entry applies (node_write.c: conf entries complete kind 2). */
    node_track_conf_change(n, t, index);
}

/* Adding a voter: add it as a learner; node_members_tick promotes it once it has caught up. */
static void add_voter(struct mc_node *n, const struct mc_client_request *r)
{
    struct node_members_state *ms = &n->members_state;
    uint64_t id = r->req->u.member.id;
    if (ms->n_promote >= NODE_MAX_AUTO_PROMOTE) {
        mc_client_reply_error(&r->token, MC_EBUSY, "too many members being added; retry");
        return;
    }
    struct mc_raft_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = MC_RAFT_CONF_ADD_LEARNER;
    cc.node_id = id;
    uint64_t index = 0;
    int rc = encode_context(r->req, &cc);
    if (rc == 0) {
        rc = mc_raft_propose_conf_change(n->raft, &cc, &index);
    }
    if (rc == 0) {
        set_new_member(n, r->req);
    } else if (rc == MC_EEXIST) {
        rc = 0; /* already a learner (its addresses stay): just promote it when ready */
    }
    if (rc) {
        mc_client_reply_error(&r->token, rc, NULL);
        return;
    }
    struct auto_promote *p = &ms->promote[ms->n_promote++];
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->token = r->token;
    p->deadline_ms = node_now_ms() + NODE_AUTO_PROMOTE_WAIT_MS;
    MC_INFO("member_add_voter",
            "node=%llu learner_index=%llu detail=\"promoted once within "
            "--ready-max-lag entries\"",
            (unsigned long long)id, (unsigned long long)index);
}

static void remove_self(struct mc_node *n, const struct mc_client_request *r,
                        const struct mc_raft_status *st)
{
    if (st->conf.n_voters <= 1 && conf_has(st->conf.voters, st->conf.n_voters, n->id)) {
        mc_client_reply_error(&r->token, MC_EINVAL, "cannot remove the last voter");
        return;
    }
    uint64_t to = st->lead_transferee
                      ? st->lead_transferee
                      : node_pick_transferee(st, n->opts.election_timeout_ms / n->opts.tick_ms);
    if (to == 0) {
        mc_client_reply_error(&r->token, MC_EUNAVAIL,
                              "no other voter heard from within an election timeout to hand "
                              "leadership to");
        return;
    }
    if (!st->lead_transferee) {
        int rc = mc_raft_transfer_leader(n->raft, to);
        if (rc) {
            mc_client_reply_error(&r->token, rc, NULL);
            return;
        }
        MC_INFO("remove_leader_transfer", "to=%llu detail=\"the new leader removes this node\"",
                (unsigned long long)to);
    }
    /* The client retries at the new leader (NotLeader), which removes this node. */
    struct member_info *mi = node_member(n, to);
    mc_client_reply_not_leader(&r->token, to, mi && mi->client_addr[0] ? mi->client_addr : NULL);
}

void node_members_handle(struct mc_node *n, const struct mc_client_request *r)
{
    const struct mc_proto_request *q = r->req;
    if (mc_raft_role(n->raft) != MC_RAFT_LEADER) {
        mc_client_reply_not_leader(&r->token, mc_raft_leader(n->raft), node_leader_client_addr(n));
        return;
    }
    struct mc_raft_status *st = malloc(sizeof(*st));
    if (!st) {
        mc_client_reply_error(&r->token, MC_ENOMEM, NULL);
        return;
    }
    mc_raft_status(n->raft, st);
    uint64_t id = q->u.member.id;
    char why[256];
    if (st->lead_transferee) {
        /* Leadership is moving (e.g. removing this leader): send the client there. */
        struct member_info *mi = node_member(n, st->lead_transferee);
        mc_client_reply_not_leader(&r->token, st->lead_transferee,
                                   mi && mi->client_addr[0] ? mi->client_addr : NULL);
        goto out;
    }
    switch (q->op) {
    case MC_REQ_ADD_MEMBER:
        if (check_member_addrs(n, q, why, sizeof(why)) != 0) {
            mc_client_reply_error(&r->token, MC_EINVAL, why);
            goto out;
        }
        if (conf_has(st->conf.voters, st->conf.n_voters, id)) {
            mc_client_reply_error(&r->token, MC_EEXIST, "already a voter");
            goto out;
        }
        if (q->u.member.learner) {
            propose(n, &r->token, MC_RAFT_CONF_ADD_LEARNER, q);
        } else {
            add_voter(n, r);
        }
        goto out;
    case MC_REQ_PROMOTE_MEMBER: {
        bool known = false;
        uint64_t lag = learner_lag(n, st, id, &known);
        bool learner = conf_has(st->conf.learners, st->conf.n_learners, id);
        if (learner && !known) {
            snprintf(why, sizeof(why),
                     "learner %llu has not been heard from or acknowledged any entry yet; "
                     "is it running? wait and retry, or use --wait",
                     (unsigned long long)id);
            mc_client_reply_error(&r->token, MC_ELAGGING, why);
            goto out;
        }
        if (learner && lag > n->opts.ready_max_lag) {
            snprintf(why, sizeof(why),
                     "learner %llu is %llu entries behind the leader (the limit is "
                     "--ready-max-lag %llu); wait and retry, or use --wait",
                     (unsigned long long)id, (unsigned long long)lag,
                     (unsigned long long)n->opts.ready_max_lag);
            mc_client_reply_error(&r->token, MC_ELAGGING, why);
            goto out;
        }
        int rc = quorum_guard(n, st, id, +1, why, sizeof(why));
        if (rc) {
            mc_client_reply_error(&r->token, rc, why);
            goto out;
        }
        propose(n, &r->token, MC_RAFT_CONF_PROMOTE, q);
        goto out;
    }
    default: {
        if (id == n->id) {
            remove_self(n, r, st);
            goto out;
        }
        int rc = quorum_guard(n, st, id, -1, why, sizeof(why));
        if (rc) {
            mc_client_reply_error(&r->token, rc, why);
            goto out;
        }
        propose(n, &r->token, MC_RAFT_CONF_REMOVE, q);
        goto out;
    }
    }
out:
    free(st);
}

/* ---- periodic work ---- */

static void drop_promote(struct node_members_state *ms, size_t i)
{
    ms->promote[i] = ms->promote[--ms->n_promote];
}

static void tick_promotions(struct mc_node *n, uint64_t now_ms)
{
    struct node_members_state *ms = &n->members_state;
    if (ms->n_promote == 0) {
        return;
    }
    struct mc_raft_status *st = malloc(sizeof(*st));
    if (!st) {
        return;
    }
    mc_raft_status(n->raft, st);
    for (size_t i = 0; i < ms->n_promote;) {
        struct auto_promote *p = &ms->promote[i];
        bool known = false;
        uint64_t lag = learner_lag(n, st, p->id, &known);
        if (st->role != MC_RAFT_LEADER) {
            mc_client_reply_not_leader(&p->token, st->leader_id, node_leader_client_addr(n));
            drop_promote(ms, i);
            continue;
        }
        if (conf_has(st->conf.voters, st->conf.n_voters, p->id)) {
            mc_client_reply(&p->token, 0, NULL, 0);
            drop_promote(ms, i);
            continue;
        }
        if (now_ms >= p->deadline_ms) {
            char why[256];
            snprintf(why, sizeof(why),
                     "node %llu was added as a learner but is still %llu entries behind; "
                     "promote it later (cluster promote %llu --wait)",
                     (unsigned long long)p->id, (unsigned long long)lag, (unsigned long long)p->id);
            mc_client_reply_error(&p->token, MC_ELAGGING, why);
            drop_promote(ms, i);
            continue;
        }
        if (!known || !conf_has(st->conf.learners, st->conf.n_learners, p->id) ||
            lag > n->opts.ready_max_lag) {
            i++;
            continue;
        }
        struct mc_raft_conf_change cc;
        memset(&cc, 0, sizeof(cc));
        cc.type = MC_RAFT_CONF_PROMOTE;
        cc.node_id = p->id;
        uint64_t index = 0;
        int rc = mc_raft_propose_conf_change(n->raft, &cc, &index);
        if (rc == MC_ECONFCHANGE) {
            i++; /* the learner entry is still committing */
            continue;
        }
        if (rc) {
            mc_client_reply_error(&p->token, rc, NULL);
        } else {
            MC_INFO("member_promoted_when_caught_up", "node=%llu lag=%llu index=%llu",
                    (unsigned long long)p->id, (unsigned long long)lag, (unsigned long long)index);
            node_track_conf_change(n, &p->token, index);
        }
        drop_promote(ms, i);
    }
    free(st);
}

/*
 * A node that applied its own removal stops, unless it was added back meanwhile (a node re-added
 * with the same id replays its old removal while catching up) or a leader keeps talking to it.
 */
static void tick_removed(struct mc_node *n, uint64_t now_ms)
{
    struct node_members_state *ms = &n->members_state;
    if (!ms->removed_index || n->stopping) {
        return;
    }
    const struct mc_raft_conf *c = mc_raft_conf(n->raft);
    if (conf_has(c->voters, c->n_voters, n->id) || conf_has(c->learners, c->n_learners, n->id)) {
        ms->removed_index = 0;
        return;
    }
    uint64_t quiet = 2 * n->opts.election_timeout_ms;
    if (now_ms - ms->removed_ms < quiet ||
        (n->last_leader_contact_ms && now_ms - n->last_leader_contact_ms < quiet / 2)) {
        return;
    }
    MC_WARN("removed_from_cluster",
            "index=%llu action=\"this node is no longer a member: it stops. To add it back, wipe "
            "its data dir, start it with --join and run cluster add\"",
            (unsigned long long)ms->removed_index);
    /* The same graceful path as an operator's SIGTERM (serve's handler stops the node and
     * exits); the node is always hosted by `metacenter serve`. */
    n->members_state.removed_index = 0;
    raise(SIGTERM);
}

void node_members_tick(struct mc_node *n, uint64_t now_ms)
{
    if (n->stopping || n->fatal) {
        return;
    }
    tick_promotions(n, now_ms);
    tick_removed(n, now_ms);
    node_check_tick(n, now_ms);
}

void node_members_free(struct mc_node *n)
{
    node_check_free(n);
}

/* ---- apply hook ---- */

/*
 * The leader stops replicating to a removed node as soon as the change is appended, so that
 * node would never learn it was removed. Once the removal commits, send it one last
 * AppendEntries holding the entry and committing it: a caught-up node applies it and stops.
 */
static void send_farewell(struct mc_node *n, const struct mc_raft_entry *e, uint64_t to)
{
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_APPEND;
    m.from = n->id;
    m.to = to;
    m.term = mc_raft_term(n->raft);
    m.index = e->index - 1;
    m.log_term = mc_raft_term_at(n->raft, e->index - 1);
    m.commit = e->index;
    m.n_entries = 1;
    m.entries = (struct mc_raft_entry *)e;
    if (m.log_term == 0 && m.index > 0) {
        return; /* compacted away: the removed node stays as it is (see operations.md) */
    }
    struct mc_wbuf w;
    mc_wbuf_init(&w, MC_PEER_FRAME_MAX);
    if (mc_raft_msg_encode(&m, &w) == 0) {
        mc_peer_send(n->peers, to, MC_PEER_RAFT, w.data, w.len);
        MC_INFO("member_removed_notified", "node=%llu index=%llu", (unsigned long long)to,
                (unsigned long long)e->index);
    }
    mc_wbuf_free(&w);
}

void node_members_applied(struct mc_node *n, const struct mc_raft_entry *e,
                          const struct mc_raft_conf_change *cc, const struct mc_raft_conf *conf)
{
    (void)conf;
    if (cc->type != MC_RAFT_CONF_REMOVE) {
        return;
    }
    if (cc->node_id == n->id) {
        n->members_state.removed_index = e->index;
        n->members_state.removed_ms = node_now_ms();
        MC_WARN("member_removed_self", "index=%llu", (unsigned long long)e->index);
    } else if (mc_raft_role(n->raft) == MC_RAFT_LEADER && n->peers) {
        send_farewell(n, e, cc->node_id);
    }
}
