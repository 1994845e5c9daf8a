/* node_check.c: the automatic replica consistency check (--check-interval-ms). The leader puts a
 * CHECK mark entry in the log; every replica hashes its state when it applies that entry (the
 * same index everywhere, so the hashes must be equal); the leader then asks each member for its
 * hash at that index over the client protocol and raises an alarm when one differs. */
#include "node/node_internal.h"
#include "metacenter/client.h"
#include "metacenter/error.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK_RECENT           8     /* mark hashes a replica remembers */
#define CHECK_ROUND_TIMEOUT_MS 10000 /* members that have not answered by then are skipped */
#define CHECK_RETRY_MS         100   /* a member that has not applied the mark yet: ask again */
#define CHECK_REQUEST_MS       2000

enum { ASK = 0, ASKED = 1, DONE = 2 };

struct check_ctx {
    struct node_check *ck;
    uint32_t slot;
};

struct node_check {
    struct mc_node *n;
    uint64_t next_ms;
    uint64_t proposed_index, proposed_ms;
    uint64_t nonce;
    struct {
        uint64_t index, hash;
    } recent[CHECK_RECENT];
    uint32_t recent_head;
    /* A round: asking every other member for its hash at round_index. */
    struct mc_client *client;
    uint64_t round_index, round_hash, round_deadline_ms;
    uint32_t n_slots;
    uint64_t ids[MC_RAFT_MAX_NODES];
    int endpoint[MC_RAFT_MAX_NODES];
    uint8_t state[MC_RAFT_MAX_NODES];
    uint64_t retry_ms[MC_RAFT_MAX_NODES];
    struct check_ctx ctx[MC_RAFT_MAX_NODES];
    bool round_failed;
    /* The alarm (0 = none): the latest member found to differ. */
    uint64_t alarm_member, alarm_index, alarm_member_hash, alarm_leader_hash;
    uint64_t rounds_ok, rounds_failed;
};

static struct node_check *get(struct mc_node *n)
{
    if (!n->members_state.check) {
        n->members_state.check = calloc(1, sizeof(struct node_check));
        if (n->members_state.check) {
            n->members_state.check->n = n;
        }
    }
    return n->members_state.check;
}

static void remember(struct node_check *ck, uint64_t index, uint64_t hash)
{
    ck->recent[ck->recent_head % CHECK_RECENT].index = index;
    ck->recent[ck->recent_head % CHECK_RECENT].hash = hash;
    ck->recent_head++;
}

bool node_check_lookup(struct mc_node *n, uint64_t index, uint64_t *hash)
{
    struct node_check *ck = n->members_state.check;
    for (uint32_t i = 0; ck && index && i < CHECK_RECENT; i++) {
        if (ck->recent[i].index == index) {
            *hash = ck->recent[i].hash;
            return true;
        }
    }
    return false;
}

void node_check_alarm(struct mc_node *n, struct mc_check_result *out)
{
    struct node_check *ck = n->members_state.check;
    memset(out, 0, sizeof(*out));
    if (ck) {
        out->node_id = ck->alarm_member;
        out->index = ck->alarm_index;
        out->hash = ck->alarm_member_hash;
    }
}

static void end_round(struct node_check *ck)
{
    if (ck->client) {
        mc_client_close(ck->client); /* pending callbacks run first, with ShuttingDown */
        ck->client = NULL;
    }
    struct mc_node *n = ck->n;
    if (ck->round_index && !ck->round_failed) {
        ck->rounds_ok++;
        if (ck->alarm_member) {
            MC_INFO("consistency_check_recovered", "index=%llu previous_member=%llu",
                    (unsigned long long)ck->round_index, (unsigned long long)ck->alarm_member);
        }
        ck->alarm_member = 0;
    }
    ck->round_index = 0;
    ck->next_ms = node_now_ms() + n->opts.check_interval_ms;
}

static void on_check(void *arg, const struct mc_client_result *r)
{
    struct check_ctx *cx = arg;
    struct node_check *ck = cx->ck;
    uint32_t i = cx->slot;
    if (!ck->round_index || ck->state[i] != ASKED) {
        return;
    }
    struct mc_check_result res;
    if (r->status == MC_EBUSY) {
        ck->state[i] = ASK; /* has not applied the mark yet */
        ck->retry_ms[i] = node_now_ms() + CHECK_RETRY_MS;
        return;
    }
    ck->state[i] = DONE;
    if (r->status != 0 || mc_client_decode_check(r, &res) != 0) {
        MC_WARN("consistency_check_unanswered", "member=%llu index=%llu err=%s",
                (unsigned long long)ck->ids[i], (unsigned long long)ck->round_index,
                mc_error_name(r->status ? r->status : MC_EPROTO));
        return;
    }
    if (res.index != ck->round_index) {
        return; /* it skipped the mark (installed a later snapshot): not comparable */
    }
    if (res.hash != ck->round_hash) {
        ck->round_failed = true;
        ck->rounds_failed++;
        ck->alarm_member = ck->ids[i];
        ck->alarm_index = ck->round_index;
        ck->alarm_member_hash = res.hash;
        ck->alarm_leader_hash = ck->round_hash;
        MC_ERROR("consistency_check_failed",
                 "member=%llu index=%llu member_hash=%016llx leader_hash=%016llx action=\"the "
                 "member's state differs from the leader's at the same log index: stop it, wipe "
                 "its data dir and re-add it (docs/operations.md)\"",
                 (unsigned long long)ck->ids[i], (unsigned long long)ck->round_index,
                 (unsigned long long)res.hash, (unsigned long long)ck->round_hash);
    }
}

static void start_round(struct node_check *ck, uint64_t index, uint64_t hash)
{
    struct mc_node *n = ck->n;
    const struct mc_raft_conf *c = mc_raft_conf(n->raft);
    char eps[MC_RAFT_MAX_NODES * MC_ADDR_MAX + 1] = "";
    size_t len = 0;
    ck->n_slots = 0;
    for (uint32_t k = 0; k < c->n_voters + c->n_learners; k++) {
        uint64_t id = k < c->n_voters ? c->voters[k] : c->learners[k - c->n_voters];
        struct member_info *mi = node_member(n, id);
        if (id == n->id || !mi || !mi->client_addr[0]) {
            continue;
        }
        len +=
            (size_t)snprintf(eps + len, sizeof(eps) - len, "%s%s", len ? "," : "", mi->client_addr);
        ck->ids[ck->n_slots] = id;
        ck->state[ck->n_slots] = ASK;
        ck->retry_ms[ck->n_slots] = 0;
        ck->endpoint[ck->n_slots] = (int)ck->n_slots;
        ck->ctx[ck->n_slots] = (struct check_ctx){ck, ck->n_slots};
        ck->n_slots++;
    }
    ck->round_index = index;
    ck->round_hash = hash;
    ck->round_failed = false;
    ck->round_deadline_ms = node_now_ms() + CHECK_ROUND_TIMEOUT_MS;
    struct mc_client_opts o;
    mc_client_opts_default(&o);
    o.request_timeout_ms = CHECK_REQUEST_MS;
    o.connect_timeout_ms = CHECK_REQUEST_MS / 2;
    if (ck->n_slots == 0 || mc_client_open(eps, &o, &ck->client) != 0) {
        end_round(ck);
        return;
    }
    /* The client keeps endpoints in the order given; match by address to be sure. */
    for (uint32_t s = 0; s < ck->n_slots; s++) {
        struct member_info *mi = node_member(n, ck->ids[s]);
        for (int e = 0; e < mc_client_endpoint_count(ck->client); e++) {
            if (mi && strcmp(mc_client_endpoint_addr(ck->client, e), mi->client_addr) == 0) {
                ck->endpoint[s] = e;
            }
        }
    }
}

/* Applies a CHECK mark entry (every replica): advance the engine, remember the hash. */
int node_check_apply(struct mc_node *n, const struct mc_raft_entry *e)
{
    struct mc_op_result res;
    memset(&res, 0, sizeof(res));
    int rc = mc_engine_apply(n->engine, e->index, NULL, 0, NULL, 0, &res);
    if (rc) {
        return rc;
    }
    struct node_check *ck = get(n);
    uint64_t hash = 0, at = 0;
    if (!ck || res.skipped || mc_engine_state_hash(n->engine, &hash, &at) != 0 || at != e->index) {
        return 0;
    }
    remember(ck, e->index, hash);
    if (mc_raft_role(n->raft) == MC_RAFT_LEADER && e->index == ck->proposed_index &&
        !ck->round_index) {
        ck->proposed_index = 0;
        start_round(ck, e->index, hash);
    }
    return 0;
}

static void propose_mark(struct node_check *ck, uint64_t now_ms)
{
    struct mc_node *n = ck->n;
    uint8_t buf[9];
    buf[0] = NODE_ENTRY_CHECK;
    mc_put_u64le(buf + 1, ++ck->nonce);
    struct mc_raft_entry e = {.type = MC_RAFT_ENTRY_NORMAL, .len = sizeof(buf), .data = buf};
    uint64_t index = 0;
    if (mc_raft_propose(n->raft, &e, 1, &index) == 0) {
        ck->proposed_index = index;
        ck->proposed_ms = now_ms;
    } else {
        ck->next_ms = now_ms + n->opts.check_interval_ms;
    }
}

void node_check_tick(struct mc_node *n, uint64_t now_ms)
{
    if (!n->opts.check_interval_ms) {
        return;
    }
    struct node_check *ck = get(n);
    if (!ck) {
        return;
    }
    if (mc_raft_role(n->raft) != MC_RAFT_LEADER) {
        if (ck->round_index) {
            end_round(ck);
        }
        ck->proposed_index = 0;
        return;
    }
    if (ck->round_index) {
        uint32_t pending = 0;
        for (uint32_t i = 0; i < ck->n_slots; i++) {
            if (ck->state[i] == ASK && now_ms >= ck->retry_ms[i]) {
                if (mc_client_check_async(ck->client, ck->endpoint[i], ck->round_index, on_check,
                                          &ck->ctx[i]) == 0) {
                    ck->state[i] = ASKED;
                }
            }
            pending += ck->state[i] != DONE;
        }
        mc_client_poll(ck->client, 0);
        if (pending == 0 || now_ms >= ck->round_deadline_ms) {
            end_round(ck);
        }
        return;
    }
    if (ck->proposed_index && now_ms - ck->proposed_ms > CHECK_ROUND_TIMEOUT_MS) {
        ck->proposed_index = 0; /* lost with a leader change */
    }
    if (!ck->proposed_index && now_ms >= ck->next_ms) {
        propose_mark(ck, now_ms);
    }
}

void node_check_free(struct mc_node *n)
{
    struct node_check *ck = n->members_state.check;
    if (ck) {
        if (ck->client) {
            mc_client_close(ck->client);
        }
        free(ck);
        n->members_state.check = NULL;
    }
}
