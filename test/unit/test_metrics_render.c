/* test_metrics_render.c: the metrics registry and its Prometheus text: every contract metric with
 * HELP/TYPE, histogram bucket edges, counters by code, node-state gauges, ops/s, /proc stats. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "metacenter/error.h"
#include "obs/metrics.h"
#include "obs/procstat.h"
#include "obs/textbuf.h"
#include "util/clock.h"

static char *render(const struct mc_node_metrics *n)
{
    char *text = NULL;
    size_t len = 0;
    cr_assert_eq(mc_metrics_render(n, &text, &len), 0);
    cr_assert_eq(strlen(text), len);
    return text;
}

static void has_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof want, "\n%s\n", line);
    cr_assert(strstr(text, want) != NULL, "missing line: %s", line);
}

/* The metric contract (docs/monitoring.md) plus our additions: name and type. */
static const char *const contract[][2] = {
    {"rustfs_metadata_has_leader", "gauge"},
    {"rustfs_metadata_replication_leader_id", "gauge"},
    {"rustfs_metadata_replication_term", "gauge"},
    {"rustfs_metadata_replication_node_count", "gauge"},
    {"rustfs_metadata_replication_healthy_nodes", "gauge"},
    {"rustfs_metadata_replication_lag_entries", "gauge"},
    {"rustfs_metadata_replication_lag_time_ms", "gauge"},
    {"rustfs_metadata_replication_committed_index", "gauge"},
    {"rustfs_metadata_replication_applied_index", "gauge"},
    {"rustfs_metadata_replication_snapshot_size_bytes", "gauge"},
    {"rustfs_metadata_replication_ops_per_second", "gauge"},
    {"rustfs_metadata_replication_write_latency_seconds", "histogram"},
    {"rustfs_metadata_replication_read_latency_seconds", "histogram"},
    {"metacenter_wal_fsync_duration_seconds", "histogram"},
    {"metacenter_apply_duration_seconds", "histogram"},
    {"metacenter_proposals_pending", "gauge"},
    {"metacenter_raft_log_entries", "gauge"},
    {"metacenter_raft_log_bytes", "gauge"},
    {"metacenter_client_connections", "gauge"},
    {"metacenter_client_send_timeouts_total", "counter"},
    {"metacenter_errors_total", "counter"},
    {"metacenter_snapshots_sent_total", "counter"},
    {"metacenter_snapshots_received_total", "counter"},
    {"metacenter_engine_rebuilds_total", "counter"},
    {"metacenter_image_handoffs_total", "counter"},
    {"metacenter_peer_reachable", "gauge"},
    {"process_resident_memory_bytes", "gauge"},
    {"process_open_fds", "gauge"},
};

Test(metrics_render, every_metric_has_help_and_type)
{
    mc_metrics_reset();
    char *t = render(NULL);
    for (size_t i = 0; i < sizeof contract / sizeof contract[0]; i++) {
        char line[256];
        snprintf(line, sizeof line, "# TYPE %s %s", contract[i][0], contract[i][1]);
        cr_assert(strstr(t, line) != NULL, "missing %s", line);
        snprintf(line, sizeof line, "# HELP %s ", contract[i][0]);
        cr_assert(strstr(t, line) != NULL, "missing HELP of %s", contract[i][0]);
    }
    /* before a leader: zeros, not absence */
    has_line(t, "rustfs_metadata_has_leader 0");
    has_line(t, "rustfs_metadata_replication_term 0");
    has_line(t, "rustfs_metadata_replication_write_latency_seconds_count 0");
    has_line(t, "rustfs_metadata_replication_read_latency_seconds_count{consistency=\"stale\"} 0");
    has_line(t, "metacenter_snapshots_sent_total 0");
    has_line(t, "metacenter_client_send_timeouts_total 0");
    /* every line is a comment or "name[{labels}] value" */
    for (char *line = strtok(t, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        cr_assert(strncmp(line, "rustfs_metadata_", 16) == 0 ||
                      strncmp(line, "metacenter_", 11) == 0 || strncmp(line, "process_", 8) == 0,
                  "%s", line);
        cr_assert_not_null(strchr(line, ' '), "%s", line);
    }
    free(t);
}

Test(metrics_render, histogram_buckets_at_edges)
{
    mc_metrics_reset();
    mc_metrics_observe(MC_METRIC_WRITE_LATENCY, 1000000);    /* exactly 1 ms: le="0.001" */
    mc_metrics_observe(MC_METRIC_WRITE_LATENCY, 1000001);    /* just above: le="0.0025" */
    mc_metrics_observe(MC_METRIC_WRITE_LATENCY, 50000);      /* 50 us: le="0.0001" */
    mc_metrics_observe(MC_METRIC_WRITE_LATENCY, 9000000000); /* 9 s: +Inf only */
    mc_metrics_observe(MC_METRIC_READ_LINEARIZABLE, 200000);
    mc_metrics_observe(MC_METRIC_APPLY, 0);
    cr_assert_eq(mc_metrics_hist_count(MC_METRIC_WRITE_LATENCY), 4);
    char *t = render(NULL);
    const char *w = "rustfs_metadata_replication_write_latency_seconds";
    char line[256];
    struct {
        const char *le;
        int n;
    } want[] = {{"0.0001", 1}, {"0.0005", 1}, {"0.001", 2}, {"0.0025", 3}, {"2.5", 3}, {"+Inf", 4}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        snprintf(line, sizeof line, "%s_bucket{le=\"%s\"} %d", w, want[i].le, want[i].n);
        has_line(t, line);
    }
    snprintf(line, sizeof line, "%s_count 4", w);
    has_line(t, line);
    snprintf(line, sizeof line, "%s_sum 9.002050001", w);
    has_line(t, line);
    has_line(t, "rustfs_metadata_replication_read_latency_seconds_bucket{consistency="
                "\"linearizable\",le=\"0.00025\"} 1");
    has_line(t, "rustfs_metadata_replication_read_latency_seconds_bucket{consistency="
                "\"stale\",le=\"+Inf\"} 0");
    has_line(t, "metacenter_apply_duration_seconds_bucket{le=\"0.0001\"} 1");
    has_line(t, "metacenter_wal_fsync_duration_seconds_count 0");
    /* the bounds are the contract's 14 */
    cr_assert_eq(MC_METRIC_BOUNDS, 14);
    cr_assert_float_eq(mc_metric_bounds_s[9], 0.1, 1e-12);
    free(t);
}

Test(metrics_render, errors_and_counters)
{
    mc_metrics_reset();
    mc_metrics_error(MC_ENOKEY);
    mc_metrics_error(MC_ENOKEY);
    mc_metrics_error(MC_ENOTLEADER);
    mc_metrics_error(0);     /* ignored */
    mc_metrics_error(-1000); /* outside the table: ignored, no crash */
    mc_metrics_snapshot_sent();
    mc_metrics_snapshot_received();
    mc_metrics_snapshot_received();
    cr_assert_eq(mc_metrics_errors(MC_ENOKEY), 2);
    char *t = render(NULL);
    has_line(t, "metacenter_errors_total{code=\"NoSuchKey\"} 2");
    has_line(t, "metacenter_errors_total{code=\"NotLeader\"} 1");
    cr_assert_null(strstr(t, "code=\"PreconditionFailed\""));
    has_line(t, "metacenter_snapshots_sent_total 1");
    has_line(t, "metacenter_snapshots_received_total 2");
    free(t);
}

Test(metrics_render, node_state)
{
    mc_metrics_reset();
    struct mc_node_metrics n = {.node_id = 2,
                                .has_leader = true,
                                .leader_id = 1,
                                .term = 7,
                                .node_count = 3,
                                .healthy_nodes = 0,
                                .commit_index = 120,
                                .applied_index = 118,
                                .snapshot_size_bytes = 65536,
                                .proposals_pending = 0,
                                .raft_log_entries = 3000,
                                .raft_log_bytes = 120000,
                                .client_connections = 5,
                                .client_send_timeouts = 4,
                                .n_lag = 1,
                                .n_peers = 2};
    n.lag[0] = (struct mc_lag_metrics){.peer = 2, .entries = 2, .time_ms = 40};
    n.peers[0] = (struct mc_peer_metrics){.id = 1, .reachable = true};
    n.peers[1] = (struct mc_peer_metrics){.id = 3, .reachable = false};
    mc_metrics_http_connections_add(2);
    char *t = render(&n);
    has_line(t, "rustfs_metadata_has_leader 1");
    has_line(t, "rustfs_metadata_replication_leader_id 1");
    has_line(t, "rustfs_metadata_replication_term 7");
    has_line(t, "rustfs_metadata_replication_node_count 3");
    has_line(t, "rustfs_metadata_replication_lag_entries{peer=\"2\"} 2");
    has_line(t, "rustfs_metadata_replication_lag_time_ms{peer=\"2\"} 40");
    has_line(t, "rustfs_metadata_replication_committed_index 120");
    has_line(t, "rustfs_metadata_replication_applied_index 118");
    has_line(t, "rustfs_metadata_replication_snapshot_size_bytes 65536");
    /* the values, not only the names: each gauge shows its own field */
    has_line(t, "metacenter_raft_log_entries 3000");
    has_line(t, "metacenter_raft_log_bytes 120000");
    has_line(t, "metacenter_client_connections 7"); /* 5 wire + 2 HTTP */
    has_line(t, "metacenter_client_send_timeouts_total 4");
    has_line(t, "metacenter_peer_reachable{peer=\"1\"} 1");
    has_line(t, "metacenter_peer_reachable{peer=\"3\"} 0");
    free(t);
    /* no leader: leader_id renders 0 even if a stale id is left in the struct */
    n.has_leader = false;
    t = render(&n);
    has_line(t, "rustfs_metadata_has_leader 0");
    has_line(t, "rustfs_metadata_replication_leader_id 0");
    free(t);
}

static int failing_collect(void *ctx, struct mc_node_metrics *out)
{
    (void)ctx;
    out->term = 99; /* partial data must not leak out */
    return MC_ESHUTDOWN;
}

static int good_collect(void *ctx, struct mc_node_metrics *out)
{
    out->term = *(uint64_t *)ctx;
    return 0;
}

Test(metrics_render, collect_callback)
{
    mc_metrics_reset();
    char *t = NULL;
    size_t len;
    cr_assert_eq(mc_metrics_render_collect(failing_collect, NULL, &t, &len), 0);
    has_line(t, "rustfs_metadata_replication_term 0");
    free(t);
    uint64_t term = 41;
    cr_assert_eq(mc_metrics_render_collect(good_collect, &term, &t, &len), 0);
    has_line(t, "rustfs_metadata_replication_term 41");
    free(t);
    cr_assert_eq(mc_metrics_render_collect(NULL, NULL, &t, &len), 0);
    has_line(t, "rustfs_metadata_has_leader 0");
    free(t);
}

Test(metrics_render, ops_per_second_window)
{
    mc_metrics_reset();
    cr_assert_float_eq(mc_metrics_ops_per_second(), 0.0, 1e-9);
    /* Land in a fresh second, record 500 entries, wait for that second to complete. */
    uint64_t sec = mc_mono_ns() / 1000000000ull;
    while (mc_mono_ns() / 1000000000ull == sec)
        usleep(2000);
    mc_metrics_applied_add(300);
    mc_metrics_applied_add(200);
    cr_assert_float_eq(mc_metrics_ops_per_second(), 0.0, 1e-9); /* current second not counted */
    sec = mc_mono_ns() / 1000000000ull;
    while (mc_mono_ns() / 1000000000ull == sec)
        usleep(2000);
    cr_assert_float_eq(mc_metrics_ops_per_second(), 50.0, 1e-9); /* 500 over 10 s */
    char *t = render(NULL);
    has_line(t, "rustfs_metadata_replication_ops_per_second 50.0");
    free(t);
}

Test(metrics_render, procstat)
{
    struct mc_procstat a, b;
    cr_assert_eq(mc_procstat_read(&a), 0);
    cr_assert_gt(a.rss_bytes, 1024 * 1024);
    cr_assert_geq(a.open_fds, 3);
    int fds[5];
    for (int i = 0; i < 5; i++)
        fds[i] = open("/dev/null", O_RDONLY);
    cr_assert_eq(mc_procstat_read(&b), 0);
    cr_assert_eq(b.open_fds, a.open_fds + 5);
    for (int i = 0; i < 5; i++)
        close(fds[i]);
}

Test(metrics_render, textbuf_grows_and_bounds)
{
    struct mc_textbuf b;
    mc_textbuf_init(&b, 1);
    for (int i = 0; i < 10000; i++)
        mc_textbuf_printf(&b, "line %d\n", i);
    char *out;
    size_t len;
    cr_assert_eq(mc_textbuf_finish(&b, &out, &len), 0);
    cr_assert_eq(strlen(out), len);
    cr_assert(strstr(out, "line 9999\n") != NULL);
    free(out);
    mc_textbuf_init(&b, 64);
    char *big = malloc(1 << 20);
    memset(big, 'x', 1 << 20);
    for (int i = 0; i < 17; i++)
        mc_textbuf_append(&b, big, 1 << 20);
    free(big);
    cr_assert_eq(mc_textbuf_finish(&b, &out, &len), MC_ETOOLARGE);
}

Test(metrics_render, board)
{
    struct mc_metrics_board *b;
    cr_assert_eq(mc_metrics_board_new(&b), 0);
    struct mc_node_metrics out = {0};
    cr_assert_eq(mc_metrics_board_collect(b, &out), MC_EUNAVAIL);
    struct mc_node_metrics m = {.term = 5, .has_leader = true, .leader_id = 2, .n_lag = 1};
    m.lag[0].peer = 9;
    mc_metrics_board_publish(b, &m);
    cr_assert_eq(mc_metrics_board_collect(b, &out), 0);
    cr_assert_eq(out.term, 5);
    cr_assert_eq(out.lag[0].peer, 9);
    char *t = NULL;
    size_t len;
    cr_assert_eq(mc_metrics_render_collect(mc_metrics_board_collect, b, &t, &len), 0);
    has_line(t, "rustfs_metadata_replication_leader_id 2");
    free(t);
    mc_metrics_board_retire(b);
    mc_metrics_board_publish(b, &m); /* ignored once retired */
    cr_assert_eq(mc_metrics_board_collect(b, &out), MC_ESHUTDOWN);
    mc_metrics_board_free(b);
}
