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

static void reply_check(struct mc_node *n, const struct mc_client_token *t, uint64_t index)
{
    if (index > n->applied_index) {
        mc_client_reply_error(t, MC_EBUSY, "that index is not applied here yet; retry");
        return;
    }
    struct mc_check_result c = {.node_id = n->id};
    int rc = mc_engine_state_hash(n->engine, &c.hash, &c.index);
    if (rc) {
        mc_client_reply_error(t, rc, NULL);
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

static int member_change(struct mc_node *n, const struct mc_proto_request *q, uint8_t type,
                         uint64_t *index)
{
    struct mc_raft_conf_change cc;
    memset(&cc, 0, sizeof(cc));
    cc.type = type;
    cc.node_id = q->u.member.id;
    if (type == MC_RAFT_CONF_ADD_LEARNER || type == MC_RAFT_CONF_ADD_VOTER) {
        struct mc_wbuf w;
        mc_wbuf_init(&w, MC_RAFT_CONF_CONTEXT_MAX);
        mc_wbuf_bytes(&w, q->u.member.peer_addr.ptr, q->u.member.peer_addr.len);
        mc_wbuf_bytes(&w, q->u.member.client_addr.ptr, q->u.member.client_addr.len);
        if (mc_wbuf_error(&w)) {
            mc_wbuf_free(&w);
            return MC_ETOOLARGE;
        }
        memcpy(cc.context, w.data, w.len);
        cc.context_len = (uint32_t)w.len;
        mc_wbuf_free(&w);
    }
    return mc_raft_propose_conf_change(n->raft, &cc, index);
}

static void handle_member(struct mc_node *n, const struct mc_client_request *r)
{
    const struct mc_proto_request *q = r->req;
    if (mc_raft_role(n->raft) != MC_RAFT_LEADER) {
        mc_client_reply_not_leader(&r->token, mc_raft_leader(n->raft), node_leader_client_addr(n));
        return;
    }
    uint8_t type;
    switch (q->op) {
    case MC_REQ_ADD_MEMBER:
        type = q->u.member.learner ? MC_RAFT_CONF_ADD_LEARNER : MC_RAFT_CONF_ADD_VOTER;
        break;
    case MC_REQ_PROMOTE_MEMBER:
        type = MC_RAFT_CONF_PROMOTE;
        break;
    default:
        type = MC_RAFT_CONF_REMOVE;
        break;
    }
    if (type == MC_RAFT_CONF_PROMOTE) {
        struct mc_raft_status *st = malloc(sizeof(*st));
        if (st) {
            mc_raft_status(n->raft, st);
            for (uint32_t i = 0; i < st->n_peers; i++) {
                if (st->peers[i].id == q->u.member.id &&
                    st->peers[i].match + n->opts.ready_max_lag < st->last_index) {
                    free(st);
                    mc_client_reply_error(&r->token, MC_ELAGGING,
                                          "the learner is more than --ready-max-lag entries "
                                          "behind; wait and retry");
                    return;
                }
            }
            free(st);
        }
    }
    if (type == MC_RAFT_CONF_REMOVE && q->u.member.id == n->id) {
        mc_client_reply_error(&r->token, MC_EBUSY,
                              "this node is the leader: transfer leadership first "
                              "(cluster transfer-leader), then remove it");
        return;
    }
    if (q->op == MC_REQ_ADD_MEMBER) {
        node_set_member(n, q->u.member.id, q->u.member.peer_addr.ptr, q->u.member.client_addr.ptr);
    }
    uint64_t index = 0;
    int rc = member_change(n, q, type, &index);
    if (rc) {
        mc_client_reply_error(&r->token, rc, NULL);
        return;
    }
    MC_INFO("membership_proposed", "type=%u node=%llu index=%llu", type,
            (unsigned long long)q->u.member.id, (unsigned long long)index);
    /* Answered when the entry applies (see node_write.c: conf entries complete kind 2). */
    node_track_conf_change(n, &r->token, index);
}

void node_handle_admin(struct mc_node *n, const struct mc_client_request *r)
{
    const struct mc_proto_request *q = r->req;
    switch (q->op) {
    case MC_REQ_PING:
        reply_ping(n, &r->token);
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
        handle_member(n, r);
        return;
    case MC_REQ_SNAPSHOT_SAVE:
        node_handle_snapshot_save(n, r);
        return;
    default:
        mc_client_reply_error(&r->token, MC_EINVAL, "unknown op");
    }
}
