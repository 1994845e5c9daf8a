/* admin.c: /healthz, /readyz, /metrics and the /v1/cluster + /v1/snapshot endpoints. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/handlers.h"
#include "metacenter/error.h"
#include "obs/metrics.h"

void mc_http_healthz(struct mc_http_request *q, struct mc_http_response *r)
{
    (void)q;
    mc_http_resp_json(r, 200, strdup("{\"status\":\"ok\"}"));
}

/* Ready: a leader is known and this node has applied to within ready_max_lag of its commit
 * index (a node far behind would serve stale reads slowly or not at all). */
void mc_http_readyz(struct mc_http_request *q, struct mc_http_response *r)
{
    struct mc_http_server *s = q->srv;
    struct mc_node_metrics *n = calloc(1, sizeof *n);
    if (!n) {
        mc_http_resp_error(r, MC_ENOMEM, NULL);
        return;
    }
    const char *reason = NULL;
    int rc = s->collect ? s->collect(s->collect_ctx, n) : MC_EUNAVAIL;
    uint64_t lag = n->commit_index > n->applied_index ? n->commit_index - n->applied_index : 0;
    if (rc != 0)
        reason = "node state unavailable";
    else if (!n->has_leader)
        reason = "no leader known";
    else if (lag > s->ready_max_lag)
        reason = "applied index lags the commit index";
    json_t *o =
        json_pack("{s:b, s:I, s:I, s:I, s:I, s:I}", "ready", reason == NULL, "leader",
                  (json_int_t)(n->has_leader ? n->leader_id : 0), "term", (json_int_t)n->term,
                  "commit_index", (json_int_t)n->commit_index, "applied_index",
                  (json_int_t)n->applied_index, "max_lag", (json_int_t)s->ready_max_lag);
    if (reason)
        json_object_set_new(o, "reason", json_string(reason));
    mc_http_resp_json(r, reason ? 503 : 200, json_dumps(o, JSON_COMPACT));
    json_decref(o);
    free(n);
}

void mc_http_metrics(struct mc_http_request *q, struct mc_http_response *r)
{
    char *text = NULL;
    size_t len = 0;
    int rc = mc_metrics_render_collect(q->srv->collect, q->srv->collect_ctx, &text, &len);
    if (rc != 0) {
        mc_http_resp_error(r, rc, "cannot render metrics");
        return;
    }
    r->status = 200;
    r->body = text;
    r->body_len = len;
    r->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

/* ---- cluster ---- */

static const char *role(const struct mc_cluster_status *st, const struct mc_member_status *m)
{
    if (m->id == st->leader_id)
        return "leader";
    return m->learner ? "learner" : "follower";
}

static char *status_json(const struct mc_cluster_status *st)
{
    json_t *members = json_array();
    uint32_t n = st->n_members <= MC_CLUSTER_MAX_MEMBERS ? st->n_members : MC_CLUSTER_MAX_MEMBERS;
    for (uint32_t i = 0; i < n; i++) {
        const struct mc_member_status *m = &st->members[i];
        json_t *jm = json_pack("{s:I, s:s, s:s, s:s, s:b, s:b}", "id", (json_int_t)m->id, "address",
                               m->client_addr, "peer_address", m->peer_addr, "role", role(st, m),
                               "learner", m->learner, "reachable", m->reachable);
        json_object_set_new(jm, "match_index",
                            m->match_index ? json_integer((json_int_t)m->match_index)
                                           : json_null());
        json_array_append_new(members, jm);
    }
    json_t *o =
        json_pack("{s:I, s:o, s:I, s:I, s:I, s:I, s:o}", "node_id", (json_int_t)st->node_id,
                  "leader", st->leader_id ? json_integer((json_int_t)st->leader_id) : json_null(),
                  "term", (json_int_t)st->term, "commit_index", (json_int_t)st->commit_index,
                  "applied_index", (json_int_t)st->applied_index, "snapshot_index",
                  (json_int_t)st->snapshot_index, "members", members);
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static void cluster_status(struct mc_http_request *q, struct mc_http_response *r)
{
    struct mc_http_call k = {0};
    struct mc_client *c = mc_http_client_get(q->srv, mc_http_pool_token(q));
    /* Pinned to endpoint 0, this node: the status is this node's view. */
    int rc = c ? mc_http_call_wait(q->srv, c, &k, mc_client_status_async(c, 0, mc_http_call_cb, &k))
               : (k.status = MC_ENOMEM);
    mc_http_client_put(q->srv, c, mc_http_pool_token(q));
    struct mc_client_result res = {.body = k.body, .body_len = k.body_len};
    struct mc_cluster_status *st = calloc(1, sizeof *st);
    if (!st)
        rc = k.status = MC_ENOMEM;
    if (rc == 0 && (rc = mc_client_decode_status(&res, st)) != 0)
        k.status = rc;
    if (rc == 0)
        mc_http_resp_json(r, 200, status_json(st));
    else
        mc_http_fail_call(q, r, &k);
    free(st);
    mc_http_call_free(&k);
}

/* A string field of at most cap-1 bytes; missing → "" unless required. */
static int str_field(json_t *o, const char *name, bool required, char *out, size_t cap)
{
    json_t *v = json_object_get(o, name);
    out[0] = '\0';
    if (!v || json_is_null(v))
        return required ? MC_EINVAL : 0;
    if (!json_is_string(v) || json_string_length(v) >= cap || json_string_length(v) == 0)
        return MC_EINVAL;
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return 0;
}

static int id_field(json_t *o, uint64_t *id)
{
    json_t *v = json_object_get(o, "id");
    if (!json_is_integer(v) || json_integer_value(v) <= 0)
        return MC_EINVAL;
    *id = (uint64_t)json_integer_value(v);
    return 0;
}

/* Keys of o all in the NULL-terminated allowed list. */
static bool only_keys(json_t *o, const char *const *allowed)
{
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v)
    {
        (void)v;
        bool ok = false;
        for (const char *const *a = allowed; *a; a++)
            ok = ok || strcmp(*a, key) == 0;
        if (!ok)
            return false;
    }
    return true;
}

enum member_action { ADD, PROMOTE, REMOVE, TRANSFER };
static const char *const action_names[] = {"add", "promote", "remove", "transfer-leader"};

static void member_change(struct mc_http_request *q, struct mc_http_response *r,
                          enum member_action act)
{
    uint64_t id = q->path.member_id;
    char peer[MC_ADDR_MAX], client[MC_ADDR_MAX];
    bool learner = false;
    if (act == ADD || act == TRANSFER) {
        json_t *b = mc_http_parse_body(q, r, true);
        if (!b)
            return;
        static const char *const add_keys[] = {"id", "peer_addr", "client_addr", "learner", NULL};
        static const char *const tr_keys[] = {"id", NULL};
        int rc = id_field(b, &id);
        if (rc == 0 && !only_keys(b, act == ADD ? add_keys : tr_keys))
            rc = MC_EINVAL;
        if (rc == 0 && act == ADD) {
            json_t *l = json_object_get(b, "learner");
            if (l && !json_is_boolean(l))
                rc = MC_EINVAL;
            learner = json_is_true(l);
            if (rc == 0)
                rc = str_field(b, "peer_addr", true, peer, sizeof peer);
            if (rc == 0)
                rc = str_field(b, "client_addr", false, client, sizeof client);
        }
        json_decref(b);
        if (rc != 0) {
            mc_http_resp_error(r, MC_EINVAL,
                               act == ADD ? "body must be {\"id\":N,\"peer_addr\":\"host:port\","
                                            "\"client_addr\":\"host:port\",\"learner\":bool}"
                                          : "body must be {\"id\":N}");
            return;
        }
    }
    struct mc_http_call k = {0};
    struct mc_client *c = mc_http_client_get(q->srv, mc_http_pool_token(q));
    int rc = MC_ENOMEM;
    if (c) {
        switch (act) {
        case ADD:
            rc = mc_client_add_member_async(c, id, peer, client, learner, mc_http_call_cb, &k);
            break;
        case PROMOTE:
            rc = mc_client_promote_async(c, id, mc_http_call_cb, &k);
            break;
        case REMOVE:
            rc = mc_client_remove_member_async(c, id, mc_http_call_cb, &k);
            break;
        case TRANSFER:
            rc = mc_client_transfer_leader_async(c, id, mc_http_call_cb, &k);
            break;
        }
        rc = mc_http_call_wait(q->srv, c, &k, rc);
    } else {
        k.status = rc;
    }
    mc_http_client_put(q->srv, c, mc_http_pool_token(q));
    if (rc != 0) {
        mc_http_fail_call(q, r, &k);
    } else {
        json_t *o = json_pack("{s:s, s:I, s:b}", "action", action_names[act], "id", (json_int_t)id,
                              "ok", 1);
        mc_http_resp_json(r, 200, json_dumps(o, JSON_COMPACT));
        json_decref(o);
    }
    mc_http_call_free(&k);
}

void mc_http_admin(struct mc_http_request *q, struct mc_http_response *r)
{
    switch (q->path.route) {
    case MC_ROUTE_CLUSTER:
        cluster_status(q, r);
        return;
    case MC_ROUTE_MEMBERS:
        member_change(q, r, ADD);
        return;
    case MC_ROUTE_PROMOTE:
        member_change(q, r, PROMOTE);
        return;
    case MC_ROUTE_MEMBER:
        member_change(q, r, REMOVE);
        return;
    case MC_ROUTE_TRANSFER:
        member_change(q, r, TRANSFER);
        return;
    case MC_ROUTE_SNAPSHOT:
        /* Snapshots are taken by the node on its own schedule (snapshot_entries); an
         * on-demand trigger has no client-protocol op yet. `metacenter snapshot save` streams
         * one. */
        mc_http_resp_error_named(r, 501, "NotImplemented",
                                 "on-demand snapshots are not available over HTTP yet; use "
                                 "`metacenter snapshot save FILE`");
        return;
    default:
        break;
    }
    mc_http_resp_error_named(r, 404, "NotFound", "no such endpoint");
}
