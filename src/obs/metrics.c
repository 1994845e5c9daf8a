/* metrics.c: process-wide metrics registry (lock-free atomics) and Prometheus 0.0.4 renderer. */
#include "obs/metrics.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "metacenter/error.h"
#include "obs/procstat.h"
#include "obs/textbuf.h"
#include "util/clock.h"

const double mc_metric_bounds_s[MC_METRIC_BOUNDS] = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};

/* Same bounds in ns, so observe() compares integers. */
static const uint64_t bounds_ns[MC_METRIC_BOUNDS] = {
    100000ull,    250000ull,    500000ull,     1000000ull,    2500000ull,
    5000000ull,   10000000ull,  25000000ull,   50000000ull,   100000000ull,
    250000000ull, 500000000ull, 1000000000ull, 2500000000ull,
};

/* Error codes are 0..-MC_ERR_SLOTS+1; the list holds 39 today, room to append. */
#define MC_ERR_SLOTS 128
/* ops_per_second window: 10 whole seconds plus the current one. */
#define OPS_WINDOW_S 10
#define OPS_SLOTS    (OPS_WINDOW_S + 2)

struct hist {
    _Atomic uint64_t buckets[MC_METRIC_BOUNDS + 1]; /* non-cumulative; last = +Inf */
    _Atomic uint64_t sum_ns;
};

struct ops_slot {
    _Atomic uint64_t sec; /* monotonic second this slot counts (0 = unused) */
    _Atomic uint64_t count;
};

static struct {
    struct hist hists[MC_METRIC_HIST_COUNT];
    _Atomic uint64_t errors[MC_ERR_SLOTS];
    _Atomic uint64_t snapshots_sent;
    _Atomic uint64_t snapshots_received;
    _Atomic uint64_t engine_rebuilds;
    _Atomic uint64_t image_handoffs;
    _Atomic int64_t http_connections;
    _Atomic uint64_t http_refused;
    _Atomic uint64_t http_pipelined;
    _Atomic uint64_t limits[MC_LIMIT_COUNT];
    struct ops_slot ops[OPS_SLOTS];
} reg;

#define RLX memory_order_relaxed

void mc_metrics_observe(enum mc_metric_hist h, uint64_t duration_ns)
{
    assert(h >= 0 && h < MC_METRIC_HIST_COUNT);
    struct hist *x = &reg.hists[h];
    int i = 0;
    while (i < MC_METRIC_BOUNDS && duration_ns > bounds_ns[i])
        i++;
    atomic_fetch_add_explicit(&x->buckets[i], 1, RLX);
    atomic_fetch_add_explicit(&x->sum_ns, duration_ns, RLX);
}

void mc_metrics_error(int code)
{
    if (code >= 0 || code <= -MC_ERR_SLOTS)
        return;
    atomic_fetch_add_explicit(&reg.errors[-code], 1, RLX);
}

static const char *const limit_names[MC_LIMIT_COUNT] = {
    "connections",  "frame_bytes",  "batch_ops",     "inflight", "list_keys",
    "idle_timeout", "read_timeout", "auth_failures", "sessions", "output_budget",
};

void mc_metrics_limit(enum mc_metric_limit which)
{
    assert(which >= 0 && which < MC_LIMIT_COUNT);
    atomic_fetch_add_explicit(&reg.limits[which], 1, RLX);
}

uint64_t mc_metrics_limit_hits(enum mc_metric_limit which)
{
    assert(which >= 0 && which < MC_LIMIT_COUNT);
    return atomic_load_explicit(&reg.limits[which], RLX);
}

void mc_metrics_snapshot_sent(void)
{
    atomic_fetch_add_explicit(&reg.snapshots_sent, 1, RLX);
}

void mc_metrics_image_handoff(void)
{
    atomic_fetch_add_explicit(&reg.image_handoffs, 1, RLX);
}

void mc_metrics_engine_rebuilt(void)
{
    atomic_fetch_add_explicit(&reg.engine_rebuilds, 1, RLX);
}

void mc_metrics_snapshot_received(void)
{
    atomic_fetch_add_explicit(&reg.snapshots_received, 1, RLX);
}

void mc_metrics_http_connections_add(int64_t delta)
{
    atomic_fetch_add_explicit(&reg.http_connections, delta, RLX);
}

void mc_metrics_http_connection_refused(void)
{
    atomic_fetch_add_explicit(&reg.http_refused, 1, RLX);
}

void mc_metrics_http_pipelined_add(uint64_t n)
{
    atomic_fetch_add_explicit(&reg.http_pipelined, n, RLX);
}

uint64_t mc_metrics_http_pipelined(void)
{
    return atomic_load_explicit(&reg.http_pipelined, RLX);
}

/* Single writer (the apply thread): a slot is recycled when its second comes round again. */
void mc_metrics_applied_add(uint64_t entries)
{
    uint64_t sec = mc_mono_ns() / 1000000000ull + 1; /* +1: 0 marks unused */
    struct ops_slot *s = &reg.ops[sec % OPS_SLOTS];
    if (atomic_load_explicit(&s->sec, RLX) != sec) {
        atomic_store_explicit(&s->count, 0, RLX);
        atomic_store_explicit(&s->sec, sec, memory_order_release);
    }
    atomic_fetch_add_explicit(&s->count, entries, RLX);
}

double mc_metrics_ops_per_second(void)
{
    uint64_t now = mc_mono_ns() / 1000000000ull + 1;
    uint64_t total = 0;
    /* Whole seconds only: [now-10, now-1]; the current second is still filling. */
    for (int i = 0; i < OPS_SLOTS; i++) {
        uint64_t sec = atomic_load_explicit(&reg.ops[i].sec, memory_order_acquire);
        if (sec != 0 && sec < now && sec + OPS_WINDOW_S >= now)
            total += atomic_load_explicit(&reg.ops[i].count, RLX);
    }
    return (double)total / OPS_WINDOW_S;
}

void mc_metrics_reset(void)
{
    memset(&reg, 0, sizeof reg);
}

uint64_t mc_metrics_hist_count(enum mc_metric_hist h)
{
    assert(h >= 0 && h < MC_METRIC_HIST_COUNT);
    uint64_t n = 0;
    for (int i = 0; i <= MC_METRIC_BOUNDS; i++)
        n += atomic_load_explicit(&reg.hists[h].buckets[i], RLX);
    return n;
}

uint64_t mc_metrics_errors(int code)
{
    if (code >= 0 || code <= -MC_ERR_SLOTS)
        return 0;
    return atomic_load_explicit(&reg.errors[-code], RLX);
}

/* ---- rendering ---- */

static void header(struct mc_textbuf *b, const char *name, const char *type, const char *help)
{
    mc_textbuf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void gauge_u(struct mc_textbuf *b, const char *name, const char *help, uint64_t v)
{
    header(b, name, "gauge", help);
    mc_textbuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

static void counter_u(struct mc_textbuf *b, const char *name, const char *help, uint64_t v)
{
    header(b, name, "counter", help);
    mc_textbuf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

/* One histogram's series; labels is "" or `consistency="stale"` (no braces). The count is the
 * sum of the buckets read, so _count always equals the +Inf bucket even under updates. */
static void hist_series(struct mc_textbuf *b, const char *name, const char *labels,
                        enum mc_metric_hist h)
{
    const struct hist *x = &reg.hists[h];
    const char *sep = labels[0] ? "," : "";
    uint64_t cum = 0;
    for (int i = 0; i <= MC_METRIC_BOUNDS; i++) {
        cum += atomic_load_explicit(&x->buckets[i], RLX);
        if (i < MC_METRIC_BOUNDS)
            mc_textbuf_printf(b, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                              mc_metric_bounds_s[i], (unsigned long long)cum);
        else
            mc_textbuf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                              (unsigned long long)cum);
    }
    /* The sum exactly, in seconds with nanosecond digits (no double rounding). */
    uint64_t sum_ns = atomic_load_explicit(&x->sum_ns, RLX);
    unsigned long long s_int = sum_ns / 1000000000ull, s_frac = sum_ns % 1000000000ull;
    if (labels[0]) {
        mc_textbuf_printf(b, "%s_sum{%s} %llu.%09llu\n", name, labels, s_int, s_frac);
        mc_textbuf_printf(b, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
    } else {
        mc_textbuf_printf(b, "%s_sum %llu.%09llu\n", name, s_int, s_frac);
        mc_textbuf_printf(b, "%s_count %llu\n", name, (unsigned long long)cum);
    }
}

static void render_node(struct mc_textbuf *b, const struct mc_node_metrics *n)
{
    gauge_u(b, "rustfs_metadata_has_leader",
            "1 if this node knows the leader of its current term, else 0.", n->has_leader ? 1 : 0);
    gauge_u(b, "rustfs_metadata_replication_leader_id", "Node id of the known leader; 0 when none.",
            n->has_leader ? n->leader_id : 0);
    gauge_u(b, "rustfs_metadata_replication_term", "Current Raft term of this node.", n->term);
    gauge_u(b, "rustfs_metadata_replication_node_count",
            "Members in this node's current configuration (voters + learners).", n->node_count);
    gauge_u(b, "rustfs_metadata_replication_healthy_nodes",
            "On the leader: members that acknowledged it within the last election timeout; "
            "else 0.",
            n->healthy_nodes);

    uint32_t nl = n->n_lag <= MC_METRICS_MAX_PEERS ? n->n_lag : MC_METRICS_MAX_PEERS;
    header(b, "rustfs_metadata_replication_lag_entries", "gauge",
           "Leader: last log index minus each member's match index; follower: commit minus "
           "applied index.");
    for (uint32_t i = 0; i < nl; i++)
        mc_textbuf_printf(b, "rustfs_metadata_replication_lag_entries{peer=\"%llu\"} %llu\n",
                          (unsigned long long)n->lag[i].peer,
                          (unsigned long long)n->lag[i].entries);
    header(b, "rustfs_metadata_replication_lag_time_ms", "gauge",
           "Leader: ms since each member last acknowledged; follower: ms since it last heard "
           "from the leader.");
    for (uint32_t i = 0; i < nl; i++)
        mc_textbuf_printf(b, "rustfs_metadata_replication_lag_time_ms{peer=\"%llu\"} %llu\n",
                          (unsigned long long)n->lag[i].peer,
                          (unsigned long long)n->lag[i].time_ms);

    gauge_u(b, "rustfs_metadata_replication_committed_index",
            "Highest log index known committed on this node.", n->commit_index);
    gauge_u(b, "rustfs_metadata_replication_applied_index",
            "Highest log index applied to this node's engine.", n->applied_index);
    gauge_u(b, "rustfs_metadata_replication_snapshot_size_bytes",
            "Size of the newest snapshot on this node (0 if none).", n->snapshot_size_bytes);

    header(b, "rustfs_metadata_replication_ops_per_second", "gauge",
           "Entries applied per second on this node, averaged over the last 10 s.");
    mc_textbuf_printf(b, "rustfs_metadata_replication_ops_per_second %.1f\n",
                      mc_metrics_ops_per_second());

    gauge_u(b, "metacenter_proposals_pending",
            "Proposals accepted by this node as leader and not yet applied/answered.",
            n->proposals_pending);
    gauge_u(b, "metacenter_raft_log_entries",
            "Log entries the Raft core holds in memory (since the last snapshot, plus its tail).",
            n->raft_log_entries);
    gauge_u(b, "metacenter_raft_log_bytes",
            "Payload bytes of those entries: bounded by --snapshot-log-mb plus --snapshot-tail-mb.",
            n->raft_log_bytes);
    int64_t http = atomic_load_explicit(&reg.http_connections, RLX);
    gauge_u(b, "metacenter_client_connections", "Open client connections (wire protocol and HTTP).",
            n->client_connections + (uint64_t)(http > 0 ? http : 0));
    counter_u(b, "metacenter_client_send_timeouts_total",
              "Client-port connections closed because their queued replies did not drain "
              "within --client-send-timeout-ms (or 1 s after a closing error reply): the "
              "client stopped reading.",
              n->client_send_timeouts);
    counter_u(b, "metacenter_http_connections_refused_total",
              "HTTP connections closed at once because the connection limit was reached.",
              atomic_load_explicit(&reg.http_refused, RLX));
    counter_u(b, "metacenter_http_pipelined_requests_total",
              "HTTP requests handed to the node together with an earlier pipelined read of "
              "their connection (a batch of GET/HEAD requests without a body).",
              atomic_load_explicit(&reg.http_pipelined, RLX));

    uint32_t np = n->n_peers <= MC_METRICS_MAX_PEERS ? n->n_peers : MC_METRICS_MAX_PEERS;
    header(b, "metacenter_peer_reachable", "gauge",
           "1 if the peer transport to that member is connected, else 0.");
    for (uint32_t i = 0; i < np; i++)
        mc_textbuf_printf(b, "metacenter_peer_reachable{peer=\"%llu\"} %d\n",
                          (unsigned long long)n->peers[i].id, n->peers[i].reachable ? 1 : 0);
}

static void render_events(struct mc_textbuf *b)
{
    const char *w = "rustfs_metadata_replication_write_latency_seconds";
    header(b, w, "histogram", "Client write latency on the serving node: received to replied.");
    hist_series(b, w, "", MC_METRIC_WRITE_LATENCY);
    const char *r = "rustfs_metadata_replication_read_latency_seconds";
    header(b, r, "histogram", "Client read latency on the serving node: received to replied.");
    hist_series(b, r, "consistency=\"linearizable\"", MC_METRIC_READ_LINEARIZABLE);
    hist_series(b, r, "consistency=\"stale\"", MC_METRIC_READ_STALE);
    const char *f = "metacenter_wal_fsync_duration_seconds";
    header(b, f, "histogram", "Duration of each fdatasync of the Raft log (one per group commit).");
    hist_series(b, f, "", MC_METRIC_WAL_FSYNC);
    const char *a = "metacenter_apply_duration_seconds";
    header(b, a, "histogram", "Duration of applying one batch of committed entries.");
    hist_series(b, a, "", MC_METRIC_APPLY);

    header(b, "metacenter_errors_total", "counter", "Error replies sent to clients, by code.");
    for (int i = 1; i < MC_ERR_SLOTS; i++) {
        uint64_t v = atomic_load_explicit(&reg.errors[i], RLX);
        if (v == 0)
            continue;
        mc_textbuf_printf(b, "metacenter_errors_total{code=\"%s\"} %llu\n", mc_error_name(-i),
                          (unsigned long long)v);
    }
    header(b, "metacenter_limit_hits_total", "counter",
           "Times a client hit a configured limit (docs/security.md), by limit.");
    for (int i = 0; i < MC_LIMIT_COUNT; i++) {
        mc_textbuf_printf(b, "metacenter_limit_hits_total{limit=\"%s\"} %llu\n", limit_names[i],
                          (unsigned long long)atomic_load_explicit(&reg.limits[i], RLX));
    }
    counter_u(b, "metacenter_snapshots_sent_total", "Whole snapshots sent to peers.",
              atomic_load_explicit(&reg.snapshots_sent, RLX));
    counter_u(b, "metacenter_snapshots_received_total", "Whole snapshots received and installed.",
              atomic_load_explicit(&reg.snapshots_received, RLX));
    counter_u(b, "metacenter_image_handoffs_total",
              "Leadership transfers this node started as leader before its periodic engine image.",
              atomic_load_explicit(&reg.image_handoffs, RLX));
    counter_u(b, "metacenter_engine_rebuilds_total",
              "Engine files rebuilt at start from the newest image and the WAL (damaged or old "
              "after a power loss).",
              atomic_load_explicit(&reg.engine_rebuilds, RLX));
}

static void render_process(struct mc_textbuf *b)
{
    struct mc_procstat ps;
    mc_procstat_read(&ps);
    gauge_u(b, "process_resident_memory_bytes", "Resident memory size in bytes.", ps.rss_bytes);
    gauge_u(b, "process_open_fds", "Number of open file descriptors.", ps.open_fds);
}

int mc_metrics_render(const struct mc_node_metrics *node, char **out, size_t *len)
{
    static const struct mc_node_metrics zero;
    struct mc_textbuf b;
    mc_textbuf_init(&b, 16384);
    render_node(&b, node ? node : &zero);
    render_events(&b);
    render_process(&b);
    return mc_textbuf_finish(&b, out, len);
}

int mc_metrics_render_collect(mc_node_collect_fn collect, void *ctx, char **out, size_t *len)
{
    struct mc_node_metrics *n = calloc(1, sizeof *n);
    if (!n)
        return MC_ENOMEM;
    if (collect && collect(ctx, n) != 0)
        memset(n, 0, sizeof *n);
    int rc = mc_metrics_render(n, out, len);
    free(n);
    return rc;
}
