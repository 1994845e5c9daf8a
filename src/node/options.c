/* options.c: defaults and flag parsing for `metacenter serve`. */
#include "node/options.h"
#include "http/server.h"
#include "metacenter/error.h"
#include "metacenter/raft.h"
#include "net/client_server.h"
#include "util/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char mc_node_options_help[] =
    "usage: metacenter serve [flags]\n"
    "With no flags: one node, data in ./metacenter-data, client port 7070, peer port 7071,\n"
    "HTTP port 7080. Restarting with the same --data-dir needs no cluster flags.\n"
    "\n"
    "  --config FILE                 YAML config (flags override it)\n"
    "  --data-dir DIR                data directory (default ./metacenter-data)\n"
    "  --engine-dir DIR              keep the engine (LMDB) in DIR instead, e.g. on tmpfs: a\n"
    "                                reboot empties it and the node rebuilds it from its WAL\n"
    "  --node-id N                   this node's id, non-zero (default 1)\n"
    "  --listen-client ADDR          client protocol address (default 127.0.0.1:7070)\n"
    "  --listen-peer ADDR            Raft peer address (default 127.0.0.1:7071)\n"
    "  --listen-http ADDR            HTTP API address (default 127.0.0.1:7080; 'off' disables)\n"
    "  --advertise-client ADDR       client address told to peers (default --listen-client)\n"
    "  --initial-cluster SPEC        static cluster: 1=HOST:PEERPORT,2=HOST:PEERPORT,...\n"
    "  --peer-route ID=ADDR          dial peer ID at ADDR (e.g. through a proxy); repeatable\n"
    "  --join ADDR                   join a running cluster through a member's client address\n"
    "  --heartbeat-ms N              leader heartbeat interval (default 100)\n"
    "  --election-timeout-ms N       base election timeout (default 600; randomized to [T,2T))\n"
    "  --snapshot-entries N          snapshot every N applied entries (default 100000)\n"
    "  --snapshot-log-mb N           ... or every N MiB of applied entries, sooner (default 64)\n"
    "  --snapshot-tail N             log entries kept after a snapshot (default 5000)\n"
    "  --snapshot-tail-mb N          ... at most N MiB of them (default 32)\n"
    "  --catch-up-log-mb N           a leader keeps more for a lagging member, up to N MiB in\n"
    "                                all, so it catches up from the log (default 256; 0: none)\n"
    "  --image-entries N             write an engine image every N applied entries: the WAL\n"
    "                                keeps everything after the newest image (default 1000000)\n"
    "  --image-log-mb N              ... or once the log since the last one exceeds N MiB and\n"
    "                                twice the engine, sooner (default 512)\n"
    "  --no-image-handoff            a leader makes its periodic image itself instead of first\n"
    "                                handing leadership to an up-to-date follower\n"
    "  --max-map-size BYTES          LMDB map size limit (default 68719476736)\n"
    "  --ready-max-lag N             /readyz fails when applied lags commit by more (default "
    "1000)\n"
    "  --check-interval-ms N         run the replica consistency check this often (default 0=off)\n"
    "  --disk-reserve-mb N           reject writes (InsufficientStorage) while the data dir's\n"
    "                                disk has less than N MiB free (default 256; 0=off)\n"
    "  --no-pre-vote                 disable Raft pre-vote\n"
    "  --no-check-quorum             disable check-quorum (also disables lease reads)\n"
    "  --lease-reads                 serve linearizable reads under a leader lease\n"
    "  --read-rounds N               ReadIndex heartbeat rounds out at once (default 1, max 32)\n"
    "  --log-level LEVEL             debug|info|warn|error (default info)\n"
    "  --log-format FORMAT           text|json (default text)\n"
    "Limits (client port):\n"
    "  --max-client-connections N    open client connections (default 1000; extra: SlowDown)\n"
    "  --idle-timeout-ms N           close connections idle this long (default 300000; 0=never)\n"
    "  --request-read-timeout-ms N   a request frame must arrive within this (default 10000)\n"
    "  --max-frame-bytes N           largest request frame (default and max 4194304)\n"
    "  --max-inflight-per-conn N     pipelined requests handled per connection (default 4096)\n"
    "  --max-batch-ops N             ops in one atomic write (default and max 1000)\n"
    "  --max-list-keys N             list page size cap (default 1000)\n"
    "  --max-sessions N              client sessions the node holds; more registrations get\n"
    "                                SlowDown until some expire (default 100000)\n"
    "  --client-send-timeout-ms N    close a connection whose queued replies have not drained\n"
    "                                within N ms (stopped reader; 100..86400000; default "
    "30000)\n"
    "  --max-total-output-bytes N    replies queued over all client connections before those\n"
    "                                with output queued stop reading (1048576..2^40; default\n"
    "                                536870912)\n"
    "Limits (HTTP port):\n"
    "  --http-max-connections N      open HTTP connections (default and max 1024; extra are\n"
    "                                accepted and closed at once)\n"
    "  --http-send-timeout-ms N      close a connection whose pending answers have not drained\n"
    "                                completely within N ms (slow reader; default 120000)\n"
    "  --http-idle-timeout-ms N      close a keep-alive connection idle (or its output stalled)\n"
    "                                N ms (100..86400000; default 120000)\n"
    "  --http-head-timeout-ms N      a request head must be complete N ms after its first byte,\n"
    "                                else 408 and close (100..86400000; default 30000)\n"
    "  --http-max-body-bytes N       larger request bodies get 413 (256..4194304; default\n"
    "                                1048576; each connection may buffer this much)\n"
    "Security (docs/security.md):\n"
    "  --auth-file FILE              bearer tokens + roles (lines from 'metacenter auth "
    "hash-token');\n"
    "                                requests without a valid token get Unauthorized\n"
    "  --metrics-auth                /metrics also needs a token (any role); /healthz stays "
    "open\n"
    "  --cert-file FILE              TLS certificate for the client and HTTP ports (PEM)\n"
    "  --key-file FILE               its private key\n"
    "  --trusted-ca-file FILE        CA that client certificates must chain to\n"
    "  --client-cert-auth            client port: require a client certificate from that CA\n"
    "  --peer-cert-file FILE         TLS certificate for the peer port (mutual TLS)\n"
    "  --peer-key-file FILE          its private key\n"
    "  --peer-trusted-ca-file FILE   CA that peer certificates must chain to\n";

void mc_node_options_default(struct mc_node_options *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->data_dir, sizeof(o->data_dir), "./metacenter-data");
    o->node_id = 1;
    snprintf(o->listen_client, sizeof(o->listen_client), "127.0.0.1:7070");
    snprintf(o->listen_peer, sizeof(o->listen_peer), "127.0.0.1:7071");
    snprintf(o->listen_http, sizeof(o->listen_http), "127.0.0.1:7080");
    o->heartbeat_ms = 100;
    o->election_timeout_ms = 600;
    o->tick_ms = 10;
    o->snapshot_entries = 100000;
    o->snapshot_log_mb = 64;
    o->snapshot_tail_entries = 5000;
    o->snapshot_tail_mb = 32;
    o->catch_up_log_mb = 256;
    o->image_entries = 1000000;
    o->image_log_mb = 512;
    o->image_handoff = 1;
    o->max_map_size_bytes = 64ull << 30;
    o->disk_reserve_mb = 256;
    o->ready_max_lag = 1000;
    o->max_batch_entries = 4096;
    o->pre_vote = 1;
    o->check_quorum = 1;
    o->read_rounds = 1;
    o->log_level = MC_LOG_INFO;
    o->log_format = MC_LOG_TEXT;
    o->max_client_connections = 1000;
    o->idle_timeout_ms = 300000;
    o->request_read_timeout_ms = 10000;
    o->max_frame_bytes = 4u << 20;
    o->max_inflight_per_conn = 4096;
    o->max_batch_ops = 1000;
    o->max_list_keys = 1000;
    o->client_send_timeout_ms = MC_CLIENT_SEND_TIMEOUT_MS;
    o->max_sessions = 100000;
    o->max_total_output_bytes = MC_CLIENT_MAX_TOTAL_OUTPUT_BYTES;
    o->http_max_connections = MC_HTTP_MAX_CONNECTIONS;
    o->http_send_timeout_ms = MC_HTTP_SEND_TIMEOUT_MS;
    o->http_idle_timeout_ms = MC_HTTP_IDLE_TIMEOUT_MS;
    o->http_head_timeout_ms = MC_HTTP_HEAD_TIMEOUT_MS;
    o->http_max_body_bytes = MC_HTTP_MAX_BODY_BYTES;
}

static int set_str(char *dst, size_t cap, const char *v, const char *flag, char *err, size_t el)
{
    if (strlen(v) >= cap) {
        snprintf(err, el, "InvalidArgument: %s value is too long (max %zu bytes)", flag, cap - 1);
        return MC_EINVAL;
    }
    snprintf(dst, cap, "%s", v);
    return 0;
}

static int set_u64(uint64_t *dst, const char *v, uint64_t min, uint64_t max, const char *flag,
                   char *err, size_t el)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || end == v || *end || v[0] == '-' || x < min || x > max) {
        snprintf(err, el, "InvalidArgument: %s wants an integer in [%llu, %llu], got '%s'", flag,
                 (unsigned long long)min, (unsigned long long)max, v);
        return MC_EINVAL;
    }
    *dst = x;
    return 0;
}

int mc_node_options_parse_cluster(struct mc_node_options *o, const char *spec, char *err,
                                  size_t errlen)
{
    char buf[MC_MAX_MEMBERS * (MC_OPT_ADDR_MAX + 24)];
    if (strlen(spec) >= sizeof(buf)) {
        snprintf(err, errlen, "InvalidArgument: --initial-cluster is too long");
        return MC_EINVAL;
    }
    snprintf(buf, sizeof(buf), "%s", spec);
    o->initial_count = 0;
    char *save = NULL;
    for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || o->initial_count >= MC_MAX_MEMBERS) {
            snprintf(err, errlen,
                     "InvalidArgument: --initial-cluster wants ID=HOST:PORT,... (max %d), got "
                     "'%s'",
                     MC_MAX_MEMBERS, item);
            return MC_EINVAL;
        }
        *eq = 0;
        struct mc_member_addr *m = &o->initial[o->initial_count];
        if (set_u64(&m->id, item, 1, UINT64_MAX, "--initial-cluster id", err, errlen) ||
            set_str(m->peer_addr, sizeof(m->peer_addr), eq + 1, "--initial-cluster", err, errlen)) {
            return MC_EINVAL;
        }
        for (size_t i = 0; i < o->initial_count; i++) {
            if (o->initial[i].id == m->id) {
                snprintf(err, errlen, "InvalidArgument: --initial-cluster repeats id %llu",
                         (unsigned long long)m->id);
                return MC_EINVAL;
            }
        }
        o->initial_count++;
    }
    if (o->initial_count == 0) {
        snprintf(err, errlen, "InvalidArgument: --initial-cluster is empty");
        return MC_EINVAL;
    }
    return 0;
}

int mc_node_options_parse(struct mc_node_options *o, int argc, char **argv, char *err,
                          size_t errlen)
{
    err[0] = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        if (strcmp(f, "--help") == 0 || strcmp(f, "-h") == 0) {
            return 1;
        }
        if (strcmp(f, "--no-pre-vote") == 0) {
            o->pre_vote = 0;
            continue;
        }
        if (strcmp(f, "--no-check-quorum") == 0) {
            o->check_quorum = 0;
            continue;
        }
        if (strcmp(f, "--client-cert-auth") == 0) {
            o->client_cert_auth = 1;
            continue;
        }
        if (strcmp(f, "--metrics-auth") == 0) {
            o->metrics_auth = 1;
            continue;
        }
        if (strcmp(f, "--lease-reads") == 0) {
            o->lease_reads = 1;
            continue;
        }
        if (strcmp(f, "--no-image-handoff") == 0) {
            o->image_handoff = 0;
            continue;
        }
        if (strncmp(f, "--", 2) != 0) {
            snprintf(err, errlen, "InvalidArgument: unexpected argument '%s'", f);
            return MC_EINVAL;
        }
        if (i + 1 >= argc) {
            snprintf(err, errlen, "InvalidArgument: %s needs a value", f);
            return MC_EINVAL;
        }
        const char *v = argv[++i];
        int rc;
        if (strcmp(f, "--config") == 0) {
            rc = set_str(o->config_file, sizeof(o->config_file), v, f, err, errlen);
        } else if (strcmp(f, "--data-dir") == 0) {
            rc = set_str(o->data_dir, sizeof(o->data_dir), v, f, err, errlen);
        } else if (strcmp(f, "--engine-dir") == 0) {
            rc = set_str(o->engine_dir, sizeof(o->engine_dir), v, f, err, errlen);
        } else if (strcmp(f, "--node-id") == 0) {
            rc = set_u64(&o->node_id, v, 1, UINT64_MAX, f, err, errlen);
        } else if (strcmp(f, "--listen-client") == 0) {
            rc = set_str(o->listen_client, sizeof(o->listen_client), v, f, err, errlen);
        } else if (strcmp(f, "--listen-peer") == 0) {
            rc = set_str(o->listen_peer, sizeof(o->listen_peer), v, f, err, errlen);
        } else if (strcmp(f, "--listen-http") == 0) {
            rc = set_str(o->listen_http, sizeof(o->listen_http), v, f, err, errlen);
        } else if (strcmp(f, "--advertise-client") == 0) {
            rc = set_str(o->advertise_client, sizeof(o->advertise_client), v, f, err, errlen);
        } else if (strcmp(f, "--join") == 0) {
            rc = set_str(o->join, sizeof(o->join), v, f, err, errlen);
        } else if (strcmp(f, "--initial-cluster") == 0) {
            rc = mc_node_options_parse_cluster(o, v, err, errlen);
        } else if (strcmp(f, "--peer-route") == 0) {
            const char *eq = strchr(v, '=');
            if (!eq || o->route_count >= MC_MAX_MEMBERS) {
                snprintf(err, errlen, "InvalidArgument: --peer-route wants ID=HOST:PORT");
                rc = MC_EINVAL;
            } else {
                char idbuf[32];
                size_t l =
                    (size_t)(eq - v) < sizeof(idbuf) - 1 ? (size_t)(eq - v) : sizeof(idbuf) - 1;
                memcpy(idbuf, v, l);
                idbuf[l] = 0;
                struct mc_member_addr *m = &o->routes[o->route_count];
                rc = set_u64(&m->id, idbuf, 1, UINT64_MAX, f, err, errlen);
                if (rc == 0) {
                    rc = set_str(m->peer_addr, sizeof(m->peer_addr), eq + 1, f, err, errlen);
                }
                if (rc == 0) {
                    o->route_count++;
                }
            }
        } else if (strcmp(f, "--heartbeat-ms") == 0) {
            rc = set_u64(&o->heartbeat_ms, v, 1, 60000, f, err, errlen);
        } else if (strcmp(f, "--election-timeout-ms") == 0) {
            rc = set_u64(&o->election_timeout_ms, v, 10, 600000, f, err, errlen);
        } else if (strcmp(f, "--snapshot-entries") == 0) {
            rc = set_u64(&o->snapshot_entries, v, 10, UINT32_MAX, f, err, errlen);
        } else if (strcmp(f, "--snapshot-log-mb") == 0) {
            rc = set_u64(&o->snapshot_log_mb, v, 1, 1 << 20, f, err, errlen);
        } else if (strcmp(f, "--snapshot-tail") == 0) {
            rc = set_u64(&o->snapshot_tail_entries, v, 1, UINT32_MAX, f, err, errlen);
        } else if (strcmp(f, "--snapshot-tail-mb") == 0) {
            rc = set_u64(&o->snapshot_tail_mb, v, 1, 1 << 20, f, err, errlen);
        } else if (strcmp(f, "--catch-up-log-mb") == 0) {
            rc = set_u64(&o->catch_up_log_mb, v, 0, 1 << 20, f, err, errlen);
        } else if (strcmp(f, "--image-entries") == 0) {
            rc = set_u64(&o->image_entries, v, 10, UINT32_MAX, f, err, errlen);
        } else if (strcmp(f, "--image-log-mb") == 0) {
            rc = set_u64(&o->image_log_mb, v, 1, 1 << 20, f, err, errlen);
        } else if (strcmp(f, "--max-map-size") == 0) {
            rc = set_u64(&o->max_map_size_bytes, v, 1 << 20, UINT64_MAX, f, err, errlen);
        } else if (strcmp(f, "--ready-max-lag") == 0) {
            rc = set_u64(&o->ready_max_lag, v, 0, UINT64_MAX, f, err, errlen);
        } else if (strcmp(f, "--disk-reserve-mb") == 0) {
            rc = set_u64(&o->disk_reserve_mb, v, 0, UINT32_MAX, f, err, errlen);
        } else if (strcmp(f, "--read-rounds") == 0) {
            rc = set_u64(&o->read_rounds, v, 1, MC_RAFT_MAX_READ_ROUNDS, f, err, errlen);
        } else if (strcmp(f, "--check-interval-ms") == 0) {
            rc = set_u64(&o->check_interval_ms, v, 0, UINT64_MAX, f, err, errlen);
        } else if (strcmp(f, "--cert-file") == 0) {
            rc = set_str(o->cert_file, sizeof(o->cert_file), v, f, err, errlen);
        } else if (strcmp(f, "--key-file") == 0) {
            rc = set_str(o->key_file, sizeof(o->key_file), v, f, err, errlen);
        } else if (strcmp(f, "--trusted-ca-file") == 0) {
            rc = set_str(o->trusted_ca_file, sizeof(o->trusted_ca_file), v, f, err, errlen);
        } else if (strcmp(f, "--peer-cert-file") == 0) {
            rc = set_str(o->peer_cert_file, sizeof(o->peer_cert_file), v, f, err, errlen);
        } else if (strcmp(f, "--peer-key-file") == 0) {
            rc = set_str(o->peer_key_file, sizeof(o->peer_key_file), v, f, err, errlen);
        } else if (strcmp(f, "--peer-trusted-ca-file") == 0) {
            rc = set_str(o->peer_trusted_ca_file, sizeof(o->peer_trusted_ca_file), v, f, err,
                         errlen);
        } else if (strcmp(f, "--auth-file") == 0) {
            rc = set_str(o->auth_file, sizeof(o->auth_file), v, f, err, errlen);
        } else if (strcmp(f, "--max-client-connections") == 0) {
            rc = set_u64(&o->max_client_connections, v, 1, 1000000, f, err, errlen);
        } else if (strcmp(f, "--idle-timeout-ms") == 0) {
            rc = set_u64(&o->idle_timeout_ms, v, 0, UINT32_MAX, f, err, errlen);
        } else if (strcmp(f, "--request-read-timeout-ms") == 0) {
            rc = set_u64(&o->request_read_timeout_ms, v, 10, UINT32_MAX, f, err, errlen);
        } else if (strcmp(f, "--max-frame-bytes") == 0) {
            rc = set_u64(&o->max_frame_bytes, v, 4096, 4u << 20, f, err, errlen);
        } else if (strcmp(f, "--max-inflight-per-conn") == 0) {
            rc = set_u64(&o->max_inflight_per_conn, v, 1, 1000000, f, err, errlen);
        } else if (strcmp(f, "--max-batch-ops") == 0) {
            rc = set_u64(&o->max_batch_ops, v, 1, 1000, f, err, errlen);
        } else if (strcmp(f, "--max-list-keys") == 0) {
            rc = set_u64(&o->max_list_keys, v, 1, 1000, f, err, errlen);
        } else if (strcmp(f, "--max-sessions") == 0) {
            rc = set_u64(&o->max_sessions, v, 1, MC_OPT_MAX_SESSIONS_MAX, f, err, errlen);
        } else if (strcmp(f, "--client-send-timeout-ms") == 0) {
            rc = set_u64(&o->client_send_timeout_ms, v, MC_OPT_CLIENT_SEND_TIMEOUT_MIN_MS,
                         MC_OPT_CLIENT_SEND_TIMEOUT_MAX_MS, f, err, errlen);
        } else if (strcmp(f, "--max-total-output-bytes") == 0) {
            rc = set_u64(&o->max_total_output_bytes, v, MC_OPT_TOTAL_OUTPUT_MIN_BYTES,
                         MC_OPT_TOTAL_OUTPUT_MAX_BYTES, f, err, errlen);
        } else if (strcmp(f, "--http-max-connections") == 0) {
            rc = set_u64(&o->http_max_connections, v, 1, MC_HTTP_MAX_CONNECTIONS, f, err, errlen);
        } else if (strcmp(f, "--http-send-timeout-ms") == 0) {
            rc = set_u64(&o->http_send_timeout_ms, v, 1, UINT32_MAX, f, err, errlen);
        } else if (strcmp(f, "--http-idle-timeout-ms") == 0) {
            rc = set_u64(&o->http_idle_timeout_ms, v, MC_OPT_HTTP_TIMEOUT_MIN_MS,
                         MC_OPT_HTTP_TIMEOUT_MAX_MS, f, err, errlen);
        } else if (strcmp(f, "--http-head-timeout-ms") == 0) {
            rc = set_u64(&o->http_head_timeout_ms, v, MC_OPT_HTTP_TIMEOUT_MIN_MS,
                         MC_OPT_HTTP_TIMEOUT_MAX_MS, f, err, errlen);
        } else if (strcmp(f, "--http-max-body-bytes") == 0) {
            rc = set_u64(&o->http_max_body_bytes, v, MC_OPT_HTTP_BODY_MIN_BYTES,
                         MC_HTTP_MAX_BODY_LIMIT, f, err, errlen);
        } else if (strcmp(f, "--log-level") == 0) {
            enum mc_log_level l;
            rc = mc_log_parse_level(v, &l);
            if (rc) {
                snprintf(err, errlen, "InvalidArgument: --log-level wants debug|info|warn|error");
            }
            o->log_level = (int)l;
        } else if (strcmp(f, "--log-format") == 0) {
            rc = 0;
            if (strcmp(v, "text") == 0) {
                o->log_format = MC_LOG_TEXT;
            } else if (strcmp(v, "json") == 0) {
                o->log_format = MC_LOG_JSON;
            } else {
                snprintf(err, errlen, "InvalidArgument: --log-format wants text|json");
                rc = MC_EINVAL;
            }
        } else {
            snprintf(err, errlen, "InvalidArgument: unknown flag '%s' (see serve --help)", f);
            rc = MC_EINVAL;
        }
        if (rc) {
            return MC_EINVAL;
        }
    }
    if (o->heartbeat_ms * 2 > o->election_timeout_ms) {
        snprintf(err, errlen,
                 "InvalidArgument: --election-timeout-ms (%llu) must be at least twice "
                 "--heartbeat-ms (%llu)",
                 (unsigned long long)o->election_timeout_ms, (unsigned long long)o->heartbeat_ms);
        return MC_EINVAL;
    }
    if ((o->cert_file[0] != 0) != (o->key_file[0] != 0) ||
        (o->peer_cert_file[0] != 0) != (o->peer_key_file[0] != 0)) {
        snprintf(err, errlen, "InvalidArgument: a --*cert-file needs its --*key-file (and back)");
        return MC_EINVAL;
    }
    if (o->client_cert_auth && (!o->cert_file[0] || !o->trusted_ca_file[0])) {
        snprintf(err, errlen,
                 "InvalidArgument: --client-cert-auth needs --cert-file and --trusted-ca-file");
        return MC_EINVAL;
    }
    if (o->peer_cert_file[0] && !o->peer_trusted_ca_file[0]) {
        snprintf(err, errlen, "InvalidArgument: peer TLS is mutual: --peer-trusted-ca-file too");
        return MC_EINVAL;
    }
    if (!o->advertise_client[0]) {
        snprintf(o->advertise_client, sizeof(o->advertise_client), "%s", o->listen_client);
    }
    return 0;
}
