/* options.h: every setting of `metacenter serve`, with defaults, parsed from flags (and config). */
#ifndef MC_NODE_OPTIONS_H
#define MC_NODE_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#define MC_MAX_MEMBERS    16
#define MC_OPT_ADDR_MAX   128
#define MC_PATH_MAX_BYTES 1024

struct mc_member_addr {
    uint64_t id;
    char peer_addr[MC_OPT_ADDR_MAX];
};

struct mc_node_options {
    char data_dir[MC_PATH_MAX_BYTES];       /* default ./metacenter-data */
    char engine_dir[MC_PATH_MAX_BYTES];     /* "" = DATA_DIR/engine; else the engine's own dir */
    uint64_t node_id;                       /* default 1 */
    char listen_client[MC_OPT_ADDR_MAX];    /* default 127.0.0.1:7070 */
    char listen_peer[MC_OPT_ADDR_MAX];      /* default 127.0.0.1:7071 */
    char listen_http[MC_OPT_ADDR_MAX];      /* default 127.0.0.1:7080; "" or "off" disables */
    char advertise_client[MC_OPT_ADDR_MAX]; /* default = listen_client */
    char join[MC_OPT_ADDR_MAX];             /* --join: a member's client address */
    struct mc_member_addr initial[MC_MAX_MEMBERS];
    size_t initial_count;                         /* 0 = single node (self only) */
    struct mc_member_addr routes[MC_MAX_MEMBERS]; /* --peer-route: dial address overrides */
    size_t route_count;
    uint64_t heartbeat_ms;          /* default 100 */
    uint64_t election_timeout_ms;   /* default 600 */
    uint64_t tick_ms;               /* default 10 */
    uint64_t snapshot_entries;      /* default 100,000 applied entries */
    uint64_t snapshot_log_mb;       /* default 64: or this many MiB of applied entries */
    uint64_t snapshot_tail_entries; /* default 5,000 kept for catch-up */
    uint64_t snapshot_tail_mb;      /* default 32: ... at most this many MiB of payload */
    uint64_t catch_up_log_mb;       /* default 256: leader, kept for a lagging member */
    uint64_t image_entries;         /* default 1,000,000: an engine image this often ... */
    uint64_t image_log_mb;          /* ... or every 512 MiB of applied entries (WAL retention) */
    uint64_t max_map_size_bytes;    /* default 64 GiB (sparse) */
    uint64_t ready_max_lag;         /* default 1,000 */
    uint64_t check_interval_ms;     /* default 0 (off) */
    uint64_t disk_reserve_mb;       /* default 256 MiB free, else writes rejected (0 = off) */
    uint64_t max_batch_entries;     /* default 4096 proposals per Raft entry batch */
    int pre_vote;                   /* default 1 */
    int check_quorum;               /* default 1 */
    int lease_reads;                /* default 0 */
    uint64_t read_rounds;           /* ReadIndex heartbeat rounds out at once; default 1 */
    int image_handoff;              /* default 1: a leader hands off before its periodic image */
    int log_level;                  /* enum mc_log_level, default info */
    int log_format;                 /* enum mc_log_format, default text */
    char config_file[MC_PATH_MAX_BYTES];
    /* Client-port limits against abuse (docs/security.md). */
    uint64_t max_client_connections;  /* default 1000 */
    uint64_t idle_timeout_ms;         /* default 300000 (0 = none) */
    uint64_t request_read_timeout_ms; /* default 10000: a frame must arrive within this */
    uint64_t max_frame_bytes;         /* default 4 MiB (also the maximum) */
    uint64_t max_inflight_per_conn;   /* default 4096 */
    uint64_t max_batch_ops;           /* default 1000 (also the maximum) */
    uint64_t max_list_keys;           /* default 1000 */
    uint64_t client_send_timeout_ms;  /* default 30000: queued replies not drained this long */
    uint64_t max_sessions;            /* default 100000: stored + admitted client sessions */
    uint64_t max_total_output_bytes;  /* default 512 MiB: replies queued over all connections */
    /* HTTP-port limits (src/http/server.h; docs/operations.md). */
    uint64_t http_max_connections; /* default 1024 (also the maximum); extra: refused */
    uint64_t http_send_timeout_ms; /* default 120000: pending output not drained this long */
    uint64_t http_idle_timeout_ms; /* default 120000: keep-alive idle (or output stalled) */
    uint64_t http_head_timeout_ms; /* default 30000: request head complete after first byte */
    uint64_t http_max_body_bytes;  /* default 1 MiB, max MC_HTTP_MAX_BODY_LIMIT (4 MiB): 413 */
    /* Authentication (docs/security.md). */
    char auth_file[MC_PATH_MAX_BYTES]; /* --auth-file: "" = auth off */
    int metrics_auth;                  /* --metrics-auth: /metrics needs a valid token */
    /* TLS (docs/security.md), etcd-style flags; "" = off. */
    char cert_file[MC_PATH_MAX_BYTES]; /* client + HTTP ports */
    char key_file[MC_PATH_MAX_BYTES];
    char trusted_ca_file[MC_PATH_MAX_BYTES]; /* verifies client certificates */
    int client_cert_auth;                    /* client port: require a client certificate */
    char peer_cert_file[MC_PATH_MAX_BYTES];  /* peer port: mutual TLS when set */
    char peer_key_file[MC_PATH_MAX_BYTES];
    char peer_trusted_ca_file[MC_PATH_MAX_BYTES];
    /* Tests only (no flag, no config key): the engine's session TTL; 0 = its 1 hour. It shapes
     * replicated state, so every member must agree on it. */
    uint64_t session_ttl_ms;
};
/* --max-sessions range (flag and config key). */
#define MC_OPT_MAX_SESSIONS_MAX 100000000u

/* HTTP idle/head timeout range (flags and config): under 100 ms a client on a real network
 * could not send a request in time; a day is far past any keep-alive pool's. */
#define MC_OPT_HTTP_TIMEOUT_MIN_MS 100
#define MC_OPT_HTTP_TIMEOUT_MAX_MS (24u * 3600 * 1000)
/* Client-port send timeout range: the same bounds as the HTTP timeouts, for the same reasons
 * (under 100 ms a reader on a real network stalls that long now and then). */
#define MC_OPT_CLIENT_SEND_TIMEOUT_MIN_MS MC_OPT_HTTP_TIMEOUT_MIN_MS
#define MC_OPT_CLIENT_SEND_TIMEOUT_MAX_MS MC_OPT_HTTP_TIMEOUT_MAX_MS
/* Client-port output budget range (--max-total-output-bytes): 1 MiB .. 1 TiB. Under one reply's
 * worth still works (a connection with nothing queued always reads), it just serializes. */
#define MC_OPT_TOTAL_OUTPUT_MIN_BYTES (1ull << 20)
#define MC_OPT_TOTAL_OUTPUT_MAX_BYTES (1ull << 40)
/* Smallest HTTP body limit: room for every small JSON body (bucket, member, versioning). */
#define MC_OPT_HTTP_BODY_MIN_BYTES 256

void mc_node_options_default(struct mc_node_options *o);
/*
 * Parse `serve` flags (argv[0] is "serve"). On error writes one line naming the
 * flag to err (size errlen) and returns MC_EINVAL. Returns 1 for --help.
 */
int mc_node_options_parse(struct mc_node_options *o, int argc, char **argv, char *err,
                          size_t errlen);
/* Parse "1=127.0.0.1:7071,2=..." into o->initial. */
int mc_node_options_parse_cluster(struct mc_node_options *o, const char *spec, char *err,
                                  size_t errlen);
extern const char mc_node_options_help[];

#endif
