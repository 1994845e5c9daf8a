/* http_testserver.c: the HTTP API over an in-process client-protocol test server (engine-backed
 * or fake), with a scripted node state; for test/http/suite_http.sh and wrk measurements. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../client/harness.h"
#include "http/server.h"
#include "metacenter/client.h"
#include "metacenter/error.h"
#include "obs/metrics.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

struct state {
    int has_leader;
    uint64_t lag;
};

/* A scripted node: leader 1, term 3, one follower lagging by state.lag. */
static int collect(void *ctx, struct mc_node_metrics *n)
{
    const struct state *st = ctx;
    n->node_id = 1;
    n->has_leader = st->has_leader != 0;
    n->leader_id = st->has_leader ? 1 : 0;
    n->term = 3;
    n->node_count = 3;
    n->healthy_nodes = 2;
    n->commit_index = 1000 + st->lag;
    n->applied_index = 1000;
    n->snapshot_size_bytes = 4096;
    n->proposals_pending = 1;
    n->client_connections = 2;
    n->n_lag = 2;
    n->lag[0] = (struct mc_lag_metrics){.peer = 2, .entries = 0, .time_ms = 12};
    n->lag[1] = (struct mc_lag_metrics){.peer = 3, .entries = 7, .time_ms = 250};
    n->n_peers = 2;
    n->peers[0] = (struct mc_peer_metrics){.id = 2, .reachable = true};
    n->peers[1] = (struct mc_peer_metrics){.id = 3, .reachable = false};
    return 0;
}

static void usage(void)
{
    fprintf(stderr, "usage: http_testserver [--fake] [--dir DIR | --client NODE_ADDR] [--listen "
                    "ADDR] [--threads N]\n"
                    "       [--no-leader] [--lag N] [--redirect-unknown] [--timeout-ms N]\n"
                    "       [--delay-every N] [--head-timeout-ms N] [--idle-timeout-ms N]\n"
                    "       [--send-timeout-ms N] [--max-connections N]\n"
                    "       [--cert-file PEM --key-file PEM]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    struct th_opts to = {.mode = TH_ENGINE};
    struct state st = {.has_leader = 1};
    struct mc_http_options ho = {.listen_addr = "127.0.0.1:0"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--fake") == 0) {
            to.mode = TH_FAKE;
        } else if (strcmp(a, "--no-leader") == 0) {
            st.has_leader = 0;
        } else if (strcmp(a, "--redirect-unknown") == 0) {
            to.redirect_unknown = true;
        } else if (v && strcmp(a, "--delay-every") == 0) {
            to.delay_every = (uint32_t)atoi(v), i++; /* fake: every Nth GET answered 2 ms late */
        } else if (v && strcmp(a, "--client") == 0) {
            ho.client_addr = v, i++; /* a real node: no test server */
        } else if (v && strcmp(a, "--dir") == 0) {
            to.engine_dir = v, i++;
        } else if (v && strcmp(a, "--listen") == 0) {
            ho.listen_addr = v, i++;
        } else if (v && strcmp(a, "--pool") == 0) {
            ho.threads = (uint32_t)atoi(v), i++;
        } else if (v && strcmp(a, "--lag") == 0) {
            st.lag = strtoull(v, NULL, 10), i++;
        } else if (v && strcmp(a, "--timeout-ms") == 0) {
            ho.request_timeout_ms = (uint32_t)atoi(v), i++;
        } else if (v && strcmp(a, "--head-timeout-ms") == 0) {
            ho.head_timeout_ms = (uint32_t)atoi(v), i++;
        } else if (v && strcmp(a, "--idle-timeout-ms") == 0) {
            ho.idle_timeout_ms = (uint32_t)atoi(v), i++;
        } else if (v && strcmp(a, "--send-timeout-ms") == 0) {
            ho.send_timeout_ms = (uint32_t)atoi(v), i++;
        } else if (v && strcmp(a, "--max-connections") == 0) {
            ho.max_connections = (uint32_t)atoi(v), i++;
        } else if (v && strcmp(a, "--cert-file") == 0) {
            ho.tls_cert_file = v, i++; /* HTTPS (the loopback clients then expect TLS too) */
        } else if (v && strcmp(a, "--key-file") == 0) {
            ho.tls_key_file = v, i++;
        } else {
            usage();
        }
    }
    struct th_server *ts = NULL;
    int rc;
    if (!ho.client_addr) {
        if (to.mode == TH_ENGINE && !to.engine_dir)
            usage();
        rc = th_start(&to, &ts);
        if (rc != 0) {
            fprintf(stderr, "test server: %s\n", mc_strerror(rc));
            return 1;
        }
        ho.client_addr = th_addr(ts);
        if (to.mode == TH_FAKE) {
            /* Fake store: key "hot" exists, so GETs of any bucket's "hot" take the (optionally
             * delayed) read path; the body is not an engine record (the HTTP answer is an
             * error), which is fine for measuring round trips. */
            struct mc_client *c;
            const char *rec = "hot=x";
            const void *ops[1] = {rec};
            size_t lens[1] = {strlen(rec)};
            if (mc_client_open(ho.client_addr, NULL, &c) == 0) {
                mc_client_write(c, 1, ops, lens, NULL);
                mc_client_close(c);
            }
        }
    }
    ho.collect = collect;
    ho.collect_ctx = &st;
    struct mc_http_server *hs;
    rc = mc_http_start(&ho, &hs);
    if (rc != 0) {
        fprintf(stderr, "http: %s\n", mc_strerror(rc));
        if (ts)
            th_stop(ts, NULL);
        return 1;
    }
    /* Some node-side events so every histogram and counter has data. */
    mc_metrics_observe(MC_METRIC_WRITE_LATENCY, 800000);
    mc_metrics_observe(MC_METRIC_READ_STALE, 50000);
    mc_metrics_error(MC_ENOKEY);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("HTTP_PORT=%d\n", mc_http_port(hs));
    fflush(stdout);
    while (!stop)
        pause();
    mc_http_stop(hs);
    if (ts)
        th_stop(ts, NULL);
    return 0;
}
