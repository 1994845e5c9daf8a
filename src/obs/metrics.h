/* metrics.h: the process-wide metrics registry (docs/monitoring.md) and its Prometheus renderer. */
#ifndef MC_OBS_METRICS_H
#define MC_OBS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Two kinds of state:
 *  - Event metrics (histograms, counters) live in this registry. They are updated from any
 *    thread (the node's loop, WAL thread, HTTP threads) with relaxed atomics: a histogram
 *    observation is one bucket search over 15 bounds and three atomic adds, no lock.
 *  - Node state (term, leader, indexes, lag...) is not pushed: the renderer pulls it when a
 *    scrape or /readyz arrives, through a collect callback the node implements (see
 *    struct mc_node_metrics). The callback runs on an HTTP thread, so the node must make it
 *    thread-safe (e.g. copy a struct it refreshes each loop iteration under a mutex).
 *
 * Every metric of the contract is rendered even when nothing was observed yet (values 0),
 * so absence of a series means the node is down (docs/monitoring.md "Conventions").
 */

/* ---- node state pulled at render time ---- */

#define MC_METRICS_MAX_PEERS 16 /* members in a configuration (= MC_CLUSTER_MAX_MEMBERS) */
#define MC_METRICS_ADDR_MAX  64 /* "host:port" incl. NUL */

/* One series of rustfs_metadata_replication_lag_{entries,time_ms}{peer="id"}. */
struct mc_lag_metrics {
    uint64_t peer;    /* node id: another member (on the leader) or this node (elsewhere) */
    uint64_t entries; /* leader: last index - match; follower: commit - applied */
    uint64_t time_ms; /* leader: ms since that peer last acked; follower: since leader heard */
};

/* One series of metacenter_peer_reachable{peer="id"}: the transport to that member is up. */
struct mc_peer_metrics {
    uint64_t id;
    bool reachable;
};

struct mc_node_metrics {
    uint64_t node_id;
    uint64_t leader_id; /* 0 = no known leader in the current term */
    bool has_leader;    /* leader_id != 0 and (leader is self or heard within election
                           timeout) */
    uint64_t term;
    uint32_t node_count;    /* voters + learners in the current configuration */
    uint32_t healthy_nodes; /* leader only: members that acked within the election timeout */
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t snapshot_size_bytes;  /* newest snapshot, 0 if none */
    uint64_t proposals_pending;    /* leader: proposals not yet applied/answered */
    uint64_t raft_log_entries;     /* entries the Raft core holds in memory */
    uint64_t raft_log_bytes;       /* ... and their payload bytes */
    uint64_t client_connections;   /* wire-protocol connections (HTTP adds its own count) */
    uint64_t client_send_timeouts; /* wire-protocol connections closed: replies not drained */
    char leader_http_addr[MC_METRICS_ADDR_MAX]; /* leader's HTTP "host:port" if known, else "";
                                                   used for NotLeader Location hints */
    uint32_t n_lag;
    struct mc_lag_metrics lag[MC_METRICS_MAX_PEERS];
    uint32_t n_peers; /* other members (self excluded) */
    struct mc_peer_metrics peers[MC_METRICS_MAX_PEERS];
};

/*
 * Fill *out (already zeroed by the caller) with the node's current state. Called from HTTP
 * threads, possibly concurrently: must be thread-safe and quick (no I/O). Returns 0, or a
 * negative MC_E* code when the node cannot answer (e.g. shutting down): /readyz then answers
 * 503 and /metrics renders zeros for node state.
 */
typedef int (*mc_node_collect_fn)(void *ctx, struct mc_node_metrics *out);

/*
 * A ready-made thread-safe collect: the node publishes a copy of its state (each loop
 * iteration, or from a ~100 ms timer) and passes mc_metrics_board_collect + the board as
 * the collect callback. Publishing is one mutex + memcpy (~1 KiB).
 */
struct mc_metrics_board;
int mc_metrics_board_new(struct mc_metrics_board **out); /* 0 or MC_ENOMEM */
void mc_metrics_board_free(struct mc_metrics_board *b);
void mc_metrics_board_publish(struct mc_metrics_board *b, const struct mc_node_metrics *m);
/* Mark the state unavailable (shutting down): collect then returns MC_ESHUTDOWN. */
void mc_metrics_board_retire(struct mc_metrics_board *b);
/* An mc_node_collect_fn; ctx is the board. MC_EUNAVAIL until the first publish. */
int mc_metrics_board_collect(void *ctx, struct mc_node_metrics *out);

/* ---- event metrics (registry) ---- */

enum mc_metric_hist {
    MC_METRIC_WRITE_LATENCY = 0, /* rustfs_metadata_replication_write_latency_seconds */
    MC_METRIC_READ_LINEARIZABLE, /* ..._read_latency_seconds{consistency="linearizable"} */
    MC_METRIC_READ_STALE,        /* ..._read_latency_seconds{consistency="stale"} */
    MC_METRIC_WAL_FSYNC,         /* metacenter_wal_fsync_duration_seconds */
    MC_METRIC_APPLY,             /* metacenter_apply_duration_seconds */
    MC_METRIC_HIST_COUNT
};

/* Bucket upper bounds (seconds) shared by all histograms, +Inf excluded (docs/monitoring.md). */
#define MC_METRIC_BOUNDS 14
extern const double mc_metric_bounds_s[MC_METRIC_BOUNDS];

/* Record one duration in nanoseconds. Any thread; lock-free. */
void mc_metrics_observe(enum mc_metric_hist h, uint64_t duration_ns);

/* metacenter_errors_total{code=mc_error_name(code)}: one error reply sent to a client.
 * code is a negative MC_E* code (0 is ignored). Any thread. */
void mc_metrics_error(int code);

/* metacenter_limit_hits_total{limit=...}: a client hit a configured limit (security). */
enum mc_metric_limit {
    MC_LIMIT_CONNECTIONS = 0, /* over --max-client-connections: refused */
    MC_LIMIT_FRAME_BYTES,     /* frame over --max-frame-bytes: refused, closed */
    MC_LIMIT_BATCH_OPS,       /* write batch over --max-batch-ops: refused */
    MC_LIMIT_INFLIGHT,        /* in-flight/output limit: reading paused (back-pressure) */
    MC_LIMIT_LIST_KEYS,       /* list max_keys above --max-list-keys: clamped */
    MC_LIMIT_IDLE_TIMEOUT,    /* idle connection closed */
    MC_LIMIT_READ_TIMEOUT,    /* frame not complete within --request-read-timeout-ms: closed */
    MC_LIMIT_AUTH_FAILURES,   /* requests refused Unauthorized (bad/missing token) */
    MC_LIMIT_SESSIONS,        /* session registration over --max-sessions: SlowDown */
    MC_LIMIT_OUTPUT_BUDGET,   /* replies queued over all connections reached
                                 --max-total-output-bytes: a connection's reading paused */
    MC_LIMIT_COUNT
};
void mc_metrics_limit(enum mc_metric_limit which);
uint64_t mc_metrics_limit_hits(enum mc_metric_limit which);

/* metacenter_snapshots_{sent,received}_total: one whole snapshot sent to / installed from a
 * peer. Any thread. */
void mc_metrics_snapshot_sent(void);
void mc_metrics_snapshot_received(void);
void mc_metrics_engine_rebuilt(void); /* node_recover.c: an engine rebuilt at start */
/* metacenter_image_handoffs_total: node_snapshot.c, a leader handing off before its image. */
void mc_metrics_image_handoff(void);

/* Entries applied to the engine (feeds rustfs_metadata_replication_ops_per_second, averaged
 * over the last 10 whole seconds). Call from ONE thread only (the apply thread/loop). */
void mc_metrics_applied_add(uint64_t entries);

/* HTTP connections currently open (the HTTP server maintains it; added to
 * metacenter_client_connections). Any thread. */
void mc_metrics_http_connections_add(int64_t delta);
/* metacenter_http_connections_refused_total: an HTTP connection accepted and closed at once
 * because the server's connection limit was reached. Any thread. */
void mc_metrics_http_connection_refused(void);
/* metacenter_http_pipelined_requests_total: pipelined reads dispatched in a batch after its
 * first request (http/conn.c). Any thread. */
void mc_metrics_http_pipelined_add(uint64_t n);
uint64_t mc_metrics_http_pipelined(void);

/* Zero the whole registry (tests). Not safe concurrently with updates. */
void mc_metrics_reset(void);

/* ---- rendering ---- */

/*
 * Render every metric in Prometheus text exposition format 0.0.4 (HELP + TYPE for each).
 * node may be NULL (node-state gauges render as 0). *out is malloc'd, NUL-terminated; free()
 * it. Also reads /proc/self for process_resident_memory_bytes and process_open_fds.
 * Returns 0 or MC_ENOMEM.
 */
int mc_metrics_render(const struct mc_node_metrics *node, char **out, size_t *len);

/* Call collect (may be NULL) then render. A failing collect renders zeros. */
int mc_metrics_render_collect(mc_node_collect_fn collect, void *ctx, char **out, size_t *len);

/* Accessors (tests, /readyz). */
uint64_t mc_metrics_hist_count(enum mc_metric_hist h);
uint64_t mc_metrics_errors(int code);
double mc_metrics_ops_per_second(void);

#endif
