/* node_admin.c: admin requests: ping, cluster status, membership, leadership transfer, check. */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void reply_ping(struct mc_node *n, const struct mc_client_token *t)
{
    struct mc_ping_info p = {n->id, mc_raft_leader(n->raft), mc_raft_term(n->raft)};
    struct mc_wbuf *w = mc_client_reply_begin(t);
    if (w) {
        mc_proto_ping_put(w, &p);
    }
    mc_client_reply_end(t, 0);
}

/* LEADER: the client library asks so that it can send linearizable reads to the leader, which
 * answers them itself instead of a follower asking it for a read index on every batch. */
static void reply_leader(struct mc_node *n, const struct mc_client_token *t)
{
    const char *addr = node_leader_client_addr(n);
    struct mc_proto_leader l = {n->id, mc_raft_leader(n->raft), mc_proto_cstr(addr ? addr : "")};
    struct mc_wbuf *w = mc_client_reply_begin(t);
    if (w) {
        mc_proto_leader_put(w, &l);
    }
    mc_client_reply_end(t, 0);
}

static void add_status_member(struct mc_node *n, struct mc_cluster_status *s,
                              const struct mc_raft_status *st, uint64_t id, bool learner)
{
    if (s->n_members >= MC_CLUSTER_MAX_MEMBERS) {
        return;
    }
    struct mc_member_status *m = &s->members[s->n_members++];
    memset(m, 0, sizeof(*m));
    m->id = id;
    m->learner = learner;
    struct member_info *mi = node_member(n, id);
    if (mi) {
        snprintf(m->peer_addr, sizeof(m->peer_addr), "%s", mi->peer_addr);
        snprintf(m->client_addr, sizeof(m->client_addr), "%s", mi->client_addr);
        m->reachable = mi->reachable;
    }
    if (id == n->id) {
        m->reachable = true;
        m->match_index = mc_raft_last_index(n->raft);
    }
    for (uint32_t i = 0; i < st->n_peers; i++) {
        if (st->peers[i].id == id) {
            m->match_index = st->peers[i].match;
            m->reachable = st->peers[i].recent_active;
        }
    }
}

static void reply_status(struct mc_node *n, const struct mc_client_token *t)
{
    struct mc_raft_status *st = malloc(sizeof(*st));
    struct mc_cluster_status *s = calloc(1, sizeof(*s));
    if (!st || !s) {
        free(st);
        free(s);
        mc_client_reply_error(t, MC_ENOMEM, NULL);
        return;
    }
    mc_raft_status(n->raft, st);
    s->node_id = n->id;
    s->leader_id = st->leader_id;
    s->term = st->term;
    s->commit_index = st->commit;
    s->applied_index = n->applied_index;
    s->snapshot_index = n->last_snapshot_index;
    for (uint32_t i = 0; i < st->conf.n_voters; i++) {
        add_status_member(n, s, st, st->conf.voters[i], false);
    }
    for (uint32_t i = 0; i < st->conf.n_learners; i++) {
        add_status_member(n, s, st, st->conf.learners[i], true);
    }
    struct mc_wbuf *w = mc_client_reply_begin(t);
    if (w) {
        mc_proto_status_put(w, s);
    }
    mc_client_reply_end(t, 0);
    free(st);
    free(s);
}

/* Index asking for the last automatic check's alarm instead of a hash (cluster status): the
 * reply's node_id is the member found to differ (0 = none), index where, hash its hash. */
#define CHECK_ALARM_INDEX UINT64_MAX

static void reply_check(struct mc_node *n, const struct mc_client_token *t, uint64_t index)
{
    struct mc_check_result c = {.node_id = n->id};
    if (index == CHECK_ALARM_INDEX) {
        node_check_alarm(n, &c);
    } else if (node_check_lookup(n, index, &c.hash)) {
        c.index = index; /* the hash taken when the CHECK mark at index applied */
    } else if (index > n->applied_index) {
        mc_client_reply_error(t, MC_EBUSY, "that index is not applied here yet; retry");
        return;
    } else if (node_check_pending(n, index)) {
        mc_client_reply_error(t, MC_EBUSY, "the hash at that index is being computed; retry");
        return;
    } else {
        /* The state now (index 0, or one not remembered): a whole-engine scan, seconds at 1M
         * objects, so off the loop; answered when it ends (node_check.c). */
        node_check_request(n, t);
        return;
    }
    struct mc_wbuf *w = mc_client_reply_begin(t);
    if (w) {
        mc_proto_check_put(w, &c);
    }
    mc_client_reply_end(t, 0);
}

static void reply_ok_empty(const struct mc_client_token *t)
{
    mc_client_reply(t, 0, NULL, 0);
}

void node_handle_admin(struct mc_node *n, const struct mc_client_request *r)
{
    const struct mc_proto_request *q = r->req;
    switch (q->op) {
    case MC_REQ_PING:
        reply_ping(n, &r->token);
        return;
    case MC_REQ_LEADER:
        reply_leader(n, &r->token);
        return;
    case MC_REQ_CLUSTER_STATUS:
        reply_status(n, &r->token);
        return;
    case MC_REQ_CHECK:
        reply_check(n, &r->token, q->u.check.index);
        return;
    case MC_REQ_TRANSFER_LEADER: {
        if (mc_raft_role(n->raft) != MC_RAFT_LEADER) {
            mc_client_reply_not_leader(&r->token, mc_raft_leader(n->raft),
                                       node_leader_client_addr(n));
            return;
        }
        if (q->u.member.id == n->id) {
            reply_ok_empty(&r->token);
            return;
        }
        int rc = mc_raft_transfer_leader(n->raft, q->u.member.id);
        if (rc) {
            mc_client_reply_error(&r->token, rc, NULL);
        } else {
            MC_INFO("transfer_leader", "to=%llu", (unsigned long long)q->u.member.id);
            reply_ok_empty(&r->token);
        }
        return;
    }
    case MC_REQ_ADD_MEMBER:
    case MC_REQ_PROMOTE_MEMBER:
    case MC_REQ_REMOVE_MEMBER:
        node_members_handle(n, r);
        return;
    case MC_REQ_SNAPSHOT_SAVE:
        node_handle_snapshot_save(n, r);
        return;
    default:
        mc_client_reply_error(&r->token, MC_EINVAL, "unknown op");
    }
}
