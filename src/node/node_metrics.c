/* node_metrics.c: the node's HTTP API and Prometheus metrics: starts the HTTP server (which talks
 * to this node over loopback), publishes Raft state for /metrics and /readyz every 100 ms. */
#include "node/node_internal.h"
#include "metacenter/error.h"
#include "util/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRICS_PUBLISH_MS 100

void node_reply_not_leader(struct mc_node *n, const struct mc_client_token *t)
{
    mc_client_reply_not_leader(t, mc_raft_leader(n->raft), node_leader_client_addr(n));
}

static void fill(struct mc_node *n, struct mc_node_metrics *m, struct mc_raft_status *st)
{
    memset(m, 0, sizeof(*m));
    mc_raft_status(n->raft, st);
    uint64_t now = node_now_ms();
    uint64_t election_ms = n->opts.election_timeout_ms;
    if (n->was_amnesic && !st->amnesic) {
        MC_INFO("caught_up_after_empty_start", "last_index=%llu term=%llu",
                (unsigned long long)st->last_index, (unsigned long long)st->term);
    }
    n->was_amnesic = st->amnesic;
    if (st->empty_log_vote_refusals > n->empty_log_refusals_logged) {
        /* At most once per publish: the guard in election.c keeps refusing until a leader has
         * sent entries; the operator must know why this member does not help elect. */
        MC_WARN("vote_refused_empty_log",
                "refusals=%llu term=%llu reason=\"this member started with no entry and no "
                "snapshot and has not caught up with a leader, but a candidate's log is not "
                "empty: if its data dir was lost, remove it (cluster remove) and add it back "
                "(docs/operations.md)\"",
                (unsigned long long)st->empty_log_vote_refusals, (unsigned long long)st->term);
        n->empty_log_refusals_logged = st->empty_log_vote_refusals;
    }
    m->node_id = n->id;
    m->term = st->term;
    m->leader_id = st->leader_id;
    bool self_lead = st->role == MC_RAFT_LEADER;
    m->has_leader = st->leader_id != 0 &&
                    (self_lead ||
                     (n->last_leader_contact_ms && now - n->last_leader_contact_ms <= election_ms));
    m->node_count = st->conf.n_voters + st->conf.n_learners;
    m->commit_index = st->commit;
    m->applied_index = n->applied_index;
    m->snapshot_size_bytes = n->snapshot_size_bytes;
    m->proposals_pending = n->n_writes - n->head_writes + n->n_batch_waiters;
    m->raft_log_entries = st->last_index + 1 - st->first_index;
    m->raft_log_bytes = st->log_bytes;
    struct mc_client_server_stats cs;
    if (n->clients) {
        mc_client_server_stats(n->clients, &cs);
        m->client_connections = cs.connections_open;
        m->client_send_timeouts = cs.send_timeouts;
    }
    struct member_info *lead = st->leader_id ? node_member(n, st->leader_id) : NULL;
    if (lead) {
        snprintf(m->leader_http_addr, sizeof(m->leader_http_addr), "%s", lead->http_addr);
    }
    if (self_lead) {
        m->healthy_nodes = 1;
        for (uint32_t i = 0; i < st->n_peers && m->n_lag < MC_METRICS_MAX_PEERS; i++) {
            const struct mc_raft_peer_status *p = &st->peers[i];
            struct mc_lag_metrics *l = &m->lag[m->n_lag++];
            l->peer = p->id;
            l->entries = st->last_index > p->match ? st->last_index - p->match : 0;
            uint64_t ticks = st->tick > p->last_heard_tick ? st->tick - p->last_heard_tick : 0;
            l->time_ms = ticks * n->opts.tick_ms;
            if (p->recent_active) {
                m->healthy_nodes++;
            }
        }
    } else {
        struct mc_lag_metrics *l = &m->lag[m->n_lag++];
        l->peer = n->id;
        l->entries = st->commit > n->applied_index ? st->commit - n->applied_index : 0;
        l->time_ms = n->last_leader_contact_ms ? now - n->last_leader_contact_ms : 0;
    }
    for (size_t i = 0; i < n->n_members && m->n_peers < MC_METRICS_MAX_PEERS; i++) {
        if (n->members[i].id == n->id) {
            continue;
        }
        struct mc_peer_metrics *p = &m->peers[m->n_peers++];
        p->id = n->members[i].id;
        p->reachable = n->peers && mc_peer_connected(n->peers, n->members[i].id);
    }
}

static void publish(struct mc_node *n)
{
    struct mc_node_metrics *m = malloc(sizeof(*m));
    struct mc_raft_status *st = malloc(sizeof(*st));
    if (m && st) {
        fill(n, m, st);
        mc_metrics_board_publish(n->board, m);
    }
    free(m);
    free(st);
}

static void metrics_timer_cb(uv_timer_t *h)
{
    struct mc_node *n = h->data;
    if (!n->fatal && n->board) {
        publish(n);
    }
}

/* The HTTP server dials this node's client port: make 0.0.0.0 connectable. */
static void connectable(const char *listen, char *out, size_t cap)
{
    if (strncmp(listen, "0.0.0.0:", 8) == 0) {
        snprintf(out, cap, "127.0.0.1:%.20s", listen + 8);
    } else {
        snprintf(out, cap, "%s", listen);
    }
}

int node_metrics_start(struct mc_node *n)
{
    int rc = mc_metrics_board_new(&n->board);
    if (rc) {
        return rc;
    }
    publish(n);
    uv_timer_init(n->loop, &n->metrics_timer);
    n->metrics_timer.data = n;
    uv_timer_start(&n->metrics_timer, metrics_timer_cb, METRICS_PUBLISH_MS, METRICS_PUBLISH_MS);
    const char *listen = n->opts.listen_http;
    if (!listen[0] || strcmp(listen, "off") == 0) {
        return 0;
    }
    char client[MC_OPT_ADDR_MAX + 32];
    char port[16];
    snprintf(port, sizeof(port), "%d", mc_client_server_port(n->clients));
    const char *colon = strrchr(n->opts.listen_client, ':');
    size_t hl = colon ? (size_t)(colon - n->opts.listen_client) : 0;
    char host[MC_OPT_ADDR_MAX];
    snprintf(host, sizeof(host), "%.*s", (int)hl, n->opts.listen_client);
    char bound[MC_OPT_ADDR_MAX + 16];
    snprintf(bound, sizeof(bound), "%s:%s", host, port);
    connectable(bound, client, sizeof(client));
    /* Served in-process: requests go straight to this loop, as the internal admin. */
    const struct mc_principal *self =
        n->auth ? mc_auth_verify(n->auth, n->internal_token, strlen(n->internal_token)) : NULL;
    struct mc_http_options ho = {.listen_addr = listen,
                                 .client_addr = client,
                                 .ready_max_lag = n->opts.ready_max_lag,
                                 .max_connections = (uint32_t)n->opts.http_max_connections,
                                 .send_timeout_ms = (uint32_t)n->opts.http_send_timeout_ms,
                                 .idle_timeout_ms = (uint32_t)n->opts.http_idle_timeout_ms,
                                 .head_timeout_ms = (uint32_t)n->opts.http_head_timeout_ms,
                                 .max_body_bytes = (uint32_t)n->opts.http_max_body_bytes,
                                 .collect = mc_metrics_board_collect,
                                 .collect_ctx = n->board,
                                 .auth = n->auth,
                                 .internal_token = n->auth ? n->internal_token : NULL,
                                 .metrics_auth = n->opts.metrics_auth != 0,
                                 .tls_cert_file = n->opts.cert_file,
                                 .tls_key_file = n->opts.key_file,
                                 .tls_ca_file = n->opts.trusted_ca_file,
                                 .tls_client_cert = n->opts.client_cert_auth != 0,
                                 .local_loop = n->loop,
                                 .local_clients = n->clients,
                                 .local_principal = self};
    rc = mc_http_start(&ho, &n->http);
    if (rc) {
        MC_ERROR("http_listen_failed", "addr=%s err=%s", listen, mc_error_name(rc));
        return rc;
    }
    MC_INFO("http_listening", "addr=%s", listen);
    return 0;
}

void node_metrics_stop(struct mc_node *n)
{
    if (n->board) {
        mc_metrics_board_retire(n->board);
    }
    if (n->http) {
        mc_http_stop(n->http);
        n->http = NULL;
    }
    if (n->board) {
        uv_timer_stop(&n->metrics_timer);
    }
}
