/* test_config_load.c: the serve config file loader (src/node/config.c): keys, types, errors. */
#include "metacenter/error.h"
#include "node/config.h"
#include "util/log.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char err[512];
static struct mc_node_config_warnings warns;

static int load(const char *yaml, struct mc_node_options *o)
{
    mc_node_options_default(o);
    return mc_node_config_load_buf("t.yaml", yaml, strlen(yaml), o, &warns, err, sizeof(err));
}

/* The load must fail with MC_EINVAL, leave *o as it was, and say each of the needles. */
static void expect_error(const char *yaml, const char *needle1, const char *needle2)
{
    struct mc_node_options o, before;
    mc_node_options_default(&before);
    int rc = load(yaml, &o);
    cr_assert_eq(rc, MC_EINVAL, "rc %d for:\n%s", rc, yaml);
    cr_assert(memcmp(&o, &before, sizeof(o)) == 0, "options changed on error for:\n%s", yaml);
    cr_assert(strncmp(err, "InvalidArgument: t.yaml", 23) == 0, "err: %s", err);
    cr_assert(strstr(err, needle1), "'%s' not in: %s", needle1, err);
    if (needle2) {
        cr_assert(strstr(err, needle2), "'%s' not in: %s", needle2, err);
    }
}

Test(config_keys, every_key_maps_onto_options)
{
    const char *y = "metadata:\n"
                    "  engine_type: replicated\n"
                    "  data_dir: /var/lib/mc\n"
                    "  engine_dir: /dev/shm/mc-engine\n"
                    "  listen:\n"
                    "    client: 127.0.0.1:9070\n"
                    "    peer: 127.0.0.1:9071\n"
                    "    http: 127.0.0.1:9080\n"
                    "  advertise_client: 10.0.0.5:9070\n"
                    "  max_map_size_bytes: 1073741824\n"
                    "  ready_max_lag: 77\n"
                    "  check_interval_ms: 60000\n"
                    "  log:\n"
                    "    level: debug\n"
                    "    format: json\n"
                    "  replication:\n"
                    "    node_id: 2\n"
                    "    nodes:\n"
                    "      - id: 1\n"
                    "        address: 127.0.0.1:9171\n"
                    "      - {id: 2, address: '127.0.0.1:9071'}\n"
                    "    read_consistency: strong\n"
                    "    raft:\n"
                    "      election_timeout_ms: 1500\n"
                    "      heartbeat_interval_ms: 150\n"
                    "      snapshot_interval: 20000\n"
                    "      max_log_entries: 3000\n"
                    "      max_log_mb: 16\n"
                    "      catch_up_log_mb: 128\n"
                    "      log_dir: /var/lib/mc/wal\n"
                    "      snapshot_dir: /var/lib/mc/snap\n"
                    "      tick_ms: 5\n"
                    "      pre_vote: false\n"
                    "      check_quorum: False\n"
                    "      lease_reads: true\n"
                    "      image_handoff: false\n"
                    "    max_batch_size: 128\n"
                    "    batch_timeout_ms: 0\n";
    struct mc_node_options o;
    cr_assert_eq(load(y, &o), 0, "%s", err);
    cr_assert_str_eq(o.data_dir, "/var/lib/mc");
    cr_assert_str_eq(o.engine_dir, "/dev/shm/mc-engine");
    cr_assert_str_eq(o.listen_client, "127.0.0.1:9070");
    cr_assert_str_eq(o.listen_peer, "127.0.0.1:9071");
    cr_assert_str_eq(o.listen_http, "127.0.0.1:9080");
    cr_assert_str_eq(o.advertise_client, "10.0.0.5:9070");
    cr_assert_eq(o.max_map_size_bytes, 1ull << 30);
    cr_assert_eq(o.ready_max_lag, 77);
    cr_assert_eq(o.check_interval_ms, 60000);
    cr_assert_eq(o.log_level, MC_LOG_DEBUG);
    cr_assert_eq(o.log_format, MC_LOG_JSON);
    cr_assert_eq(o.node_id, 2);
    cr_assert_eq(o.initial_count, 2);
    cr_assert_eq(o.initial[0].id, 1);
    cr_assert_str_eq(o.initial[0].peer_addr, "127.0.0.1:9171");
    cr_assert_eq(o.initial[1].id, 2);
    cr_assert_str_eq(o.initial[1].peer_addr, "127.0.0.1:9071");
    cr_assert_eq(o.election_timeout_ms, 1500);
    cr_assert_eq(o.heartbeat_ms, 150);
    cr_assert_eq(o.snapshot_entries, 20000);
    cr_assert_eq(o.snapshot_tail_entries, 3000);
    cr_assert_eq(o.snapshot_tail_mb, 16);
    cr_assert_eq(o.catch_up_log_mb, 128);
    cr_assert_eq(o.tick_ms, 5);
    cr_assert_eq(o.pre_vote, 0);
    cr_assert_eq(o.check_quorum, 0);
    cr_assert_eq(o.lease_reads, 1);
    cr_assert_eq(o.image_handoff, 0);
    cr_assert_eq(o.max_batch_entries, 128);
    cr_assert_str_eq(o.config_file, "t.yaml");
    cr_assert_eq(warns.count, 0, "unexpected warning: %s", warns.msg[0]);
}

Test(config_keys, absent_keys_keep_defaults)
{
    struct mc_node_options o, d;
    mc_node_options_default(&d);
    cr_assert_eq(load("metadata:\n  replication:\n    raft:\n", &o), 0, "%s", err);
    snprintf(d.config_file, sizeof(d.config_file), "t.yaml");
    cr_assert(memcmp(&o, &d, sizeof(o)) == 0);
    cr_assert_eq(load("metadata:\n  data_dir: x\n", &o), 0, "%s", err);
    cr_assert_str_eq(o.data_dir, "x");
    cr_assert_eq(o.election_timeout_ms, 600);
    cr_assert_str_eq(o.listen_client, "127.0.0.1:7070");
    cr_assert_eq(o.initial_count, 0);
}

Test(config_keys, limits_and_security_sections)
{
    struct mc_node_options o;
    const char *y = "metadata:\n"
                    "  limits:\n"
                    "    max_client_connections: 50\n"
                    "    idle_timeout_ms: 0\n"
                    "    request_read_timeout_ms: 2000\n"
                    "    max_frame_bytes: 65536\n"
                    "    max_inflight_per_conn: 64\n"
                    "    max_batch_ops: 10\n"
                    "    max_list_keys: 100\n"
                    "    max_sessions: 25\n"
                    "  security:\n"
                    "    auth_file: /etc/mc/tokens\n"
                    "    metrics_auth: true\n"
                    "    cert_file: /etc/mc/c.pem\n"
                    "    key_file: /etc/mc/c.key\n"
                    "    trusted_ca_file: /etc/mc/ca.pem\n"
                    "    client_cert_auth: true\n"
                    "    peer_cert_file: /etc/mc/p.pem\n"
                    "    peer_key_file: /etc/mc/p.key\n"
                    "    peer_trusted_ca_file: /etc/mc/pca.pem\n";
    cr_assert_eq(load(y, &o), 0, "%s", err);
    cr_assert_eq(o.max_client_connections, 50);
    cr_assert_eq(o.idle_timeout_ms, 0);
    cr_assert_eq(o.request_read_timeout_ms, 2000);
    cr_assert_eq(o.max_frame_bytes, 65536);
    cr_assert_eq(o.max_inflight_per_conn, 64);
    cr_assert_eq(o.max_batch_ops, 10);
    cr_assert_eq(o.max_list_keys, 100);
    cr_assert_eq(o.max_sessions, 25);
    cr_assert_str_eq(o.auth_file, "/etc/mc/tokens");
    cr_assert_eq(o.metrics_auth, 1);
    cr_assert_str_eq(o.cert_file, "/etc/mc/c.pem");
    cr_assert_str_eq(o.key_file, "/etc/mc/c.key");
    cr_assert_str_eq(o.trusted_ca_file, "/etc/mc/ca.pem");
    cr_assert_eq(o.client_cert_auth, 1);
    cr_assert_str_eq(o.peer_cert_file, "/etc/mc/p.pem");
    cr_assert_str_eq(o.peer_key_file, "/etc/mc/p.key");
    cr_assert_str_eq(o.peer_trusted_ca_file, "/etc/mc/pca.pem");
    /* Same ranges as the flags. */
    expect_error("metadata:\n  limits:\n    max_batch_ops: 1001\n", "max_batch_ops", NULL);
    expect_error("metadata:\n  limits:\n    max_frame_bytes: 100\n", "max_frame_bytes", NULL);
    expect_error("metadata:\n  security:\n    metrics_auth: 3\n", "metrics_auth", NULL);
    expect_error("metadata:\n  security:\n    token_file: x\n", "token_file", NULL);
}

/* The HTTP-port limits (serve --http-*): keys, defaults and the flags' ranges. */
Test(config_keys, http_limits)
{
    struct mc_node_options o;
    cr_assert_eq(load("metadata: {limits: {}}\n", &o), 0, "%s", err);
    cr_assert_eq(o.http_idle_timeout_ms, 120000);
    cr_assert_eq(o.http_head_timeout_ms, 30000);
    cr_assert_eq(o.http_max_body_bytes, 1u << 20);
    const char *y = "metadata:\n"
                    "  limits:\n"
                    "    http_max_connections: 7\n"
                    "    http_send_timeout_ms: 9000\n"
                    "    http_idle_timeout_ms: 600000\n"
                    "    http_head_timeout_ms: 5000\n"
                    "    http_max_body_bytes: 4194304\n";
    cr_assert_eq(load(y, &o), 0, "%s", err);
    cr_assert_eq(o.http_max_connections, 7);
    cr_assert_eq(o.http_send_timeout_ms, 9000);
    cr_assert_eq(o.http_idle_timeout_ms, 600000);
    cr_assert_eq(o.http_head_timeout_ms, 5000);
    cr_assert_eq(o.http_max_body_bytes, 4u << 20);
    expect_error("metadata: {limits: {http_idle_timeout_ms: 0}}",
                 "t.yaml:1:", "http_idle_timeout_ms: 0 is out of range [100, 86400000]");
    expect_error("metadata: {limits: {http_idle_timeout_ms: 86400001}}",
                 "t.yaml:1:", "out of range");
    expect_error("metadata: {limits: {http_head_timeout_ms: 99}}",
                 "t.yaml:1:", "http_head_timeout_ms: 99 is out of range [100, 86400000]");
    expect_error("metadata: {limits: {http_max_body_bytes: 4194305}}",
                 "t.yaml:1:", "http_max_body_bytes: 4194305 is out of range [256, 4194304]");
    expect_error("metadata: {limits: {http_max_body_bytes: 0}}", "t.yaml:1:", "out of range");
}

/* limits.client_send_timeout_ms (serve --client-send-timeout-ms): default and range. */
Test(config_keys, client_send_timeout)
{
    struct mc_node_options o;
    cr_assert_eq(load("metadata: {limits: {}}\n", &o), 0, "%s", err);
    cr_assert_eq(o.client_send_timeout_ms, 30000);
    cr_assert_eq(load("metadata: {limits: {client_send_timeout_ms: 300}}\n", &o), 0, "%s", err);
    cr_assert_eq(o.client_send_timeout_ms, 300);
    cr_assert_eq(load("metadata: {limits: {client_send_timeout_ms: 86400000}}\n", &o), 0, "%s",
                 err);
    cr_assert_eq(o.client_send_timeout_ms, 86400000);
    expect_error("metadata: {limits: {client_send_timeout_ms: 99}}",
                 "t.yaml:1:", "client_send_timeout_ms: 99 is out of range [100, 86400000]");
    expect_error("metadata: {limits: {client_send_timeout_ms: 86400001}}",
                 "t.yaml:1:", "out of range");
    expect_error("metadata: {limits: {client_send_timeout_ms: 0}}", "t.yaml:1:", "out of range");
}

/* --max-sessions (the leader's session cap, node_write.c): default, key, flag, range. */
Test(config_keys, max_sessions)
{
    struct mc_node_options o;
    cr_assert_eq(load("metadata: {limits: {}}\n", &o), 0, "%s", err);
    cr_assert_eq(o.max_sessions, 100000);
    cr_assert_eq(load("metadata: {limits: {max_sessions: 7}}\n", &o), 0, "%s", err);
    cr_assert_eq(o.max_sessions, 7);
    char *argv[] = {"serve", "--max-sessions", "9", NULL};
    cr_assert_eq(mc_node_options_parse(&o, 3, argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(o.max_sessions, 9, "the flag overrides the file");
    expect_error("metadata: {limits: {max_sessions: 0}}", "t.yaml:1:", "out of range");
    expect_error("metadata: {limits: {max_sessions: 100000001}}", "t.yaml:1:", "out of range");
    char *bad[] = {"serve", "--max-sessions", "0", NULL};
    cr_assert_neq(mc_node_options_parse(&o, 3, bad, err, sizeof(err)), 0);
    cr_assert_not_null(strstr(err, "--max-sessions"), "%s", err);
}

/* limits.max_total_output_bytes (serve --max-total-output-bytes): default and range (0 is out
 * of it: the client port always has a budget). */
Test(config_keys, max_total_output_bytes)
{
    struct mc_node_options o;
    cr_assert_eq(load("metadata: {limits: {}}\n", &o), 0, "%s", err);
    cr_assert_eq(o.max_total_output_bytes, 512ull << 20);
    cr_assert_eq(load("metadata: {limits: {max_total_output_bytes: 1048576}}\n", &o), 0, "%s", err);
    cr_assert_eq(o.max_total_output_bytes, 1ull << 20);
    expect_error("metadata: {limits: {max_total_output_bytes: 1048575}}",
                 "t.yaml:1:", "out of range");
    expect_error("metadata: {limits: {max_total_output_bytes: 0}}", "t.yaml:1:", "out of range");
    char *argv[] = {"serve", "--max-total-output-bytes", "67108864", NULL};
    cr_assert_eq(mc_node_options_parse(&o, 3, argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(o.max_total_output_bytes, 64ull << 20);
    char *zero[] = {"serve", "--max-total-output-bytes", "0", NULL};
    cr_assert_eq(mc_node_options_parse(&o, 3, zero, err, sizeof(err)), MC_EINVAL);
    cr_assert(strstr(err, "--max-total-output-bytes"), "%s", err);
}

Test(config_keys, http_off_and_empty_disable)
{
    struct mc_node_options o;
    cr_assert_eq(load("metadata: {listen: {http: off}}\n", &o), 0, "%s", err);
    cr_assert_str_eq(o.listen_http, "off");
    cr_assert_eq(load("metadata: {listen: {http: \"\"}}\n", &o), 0, "%s", err);
    cr_assert_str_eq(o.listen_http, "");
    expect_error("metadata: {listen: {http: }}\n", "metadata.listen.http", "t.yaml:1:");
}

Test(config_keys, log_levels_and_bools)
{
    static const char *lv[] = {"debug", "info", "warn", "error", "off"};
    static const int want[] = {MC_LOG_DEBUG, MC_LOG_INFO, MC_LOG_WARN, MC_LOG_ERROR, MC_LOG_OFF};
    for (int i = 0; i < 5; i++) {
        char y[128];
        snprintf(y, sizeof(y), "metadata:\n  log: {level: %s, format: text}\n", lv[i]);
        struct mc_node_options o;
        cr_assert_eq(load(y, &o), 0, "%s", err);
        cr_assert_eq(o.log_level, want[i]);
        cr_assert_eq(o.log_format, MC_LOG_TEXT);
    }
    struct mc_node_options o;
    cr_assert_eq(load("metadata: {replication: {raft: {pre_vote: TRUE, lease_reads: True}}}", &o),
                 0, "%s", err);
    cr_assert_eq(o.pre_vote, 1);
    cr_assert_eq(o.lease_reads, 1);
    cr_assert_eq(o.read_rounds, 1, "read_rounds defaults to 1");
    cr_assert_eq(load("metadata: {replication: {raft: {read_rounds: 2}}}", &o), 0, "%s", err);
    cr_assert_eq(o.read_rounds, 2);
    expect_error("metadata: {replication: {raft: {read_rounds: 0}}}",
                 "t.yaml:1:", "read_rounds: 0 is out of range [1, 32]");
    expect_error("metadata: {replication: {raft: {read_rounds: 33}}}", "t.yaml:1:", "out of range");
}

Test(config_keys, local_with_only_self_is_single_node)
{
    struct mc_node_options o;
    cr_assert_eq(load("metadata:\n  engine_type: local\n  replication:\n    node_id: 4\n"
                      "    nodes: [{id: 4, address: 127.0.0.1:7071}]\n",
                      &o),
                 0, "%s", err);
    cr_assert_eq(o.node_id, 4);
    cr_assert_eq(o.initial_count, 0);
    cr_assert_eq(load("metadata:\n  engine_type: local\n  replication:\n    nodes: []\n", &o), 0,
                 "%s", err);
    cr_assert_eq(o.initial_count, 0);
}

Test(config_keys, replicated_peer_address_defaults_from_nodes_list)
{
    struct mc_node_options o;
    cr_assert_eq(load("metadata:\n  engine_type: replicated\n  replication:\n    node_id: 3\n"
                      "    nodes:\n      - {id: 1, address: 'h1:1'}\n"
                      "      - {id: 3, address: 'h3:7271'}\n",
                      &o),
                 0, "%s", err);
    cr_assert_str_eq(o.listen_peer, "h3:7271");
    cr_assert_eq(o.initial_count, 2);
    /* an explicit listen.peer wins over the nodes list (bind 0.0.0.0, advertise the host) */
    cr_assert_eq(load("metadata:\n  engine_type: replicated\n  listen: {peer: '0.0.0.0:7271'}\n"
                      "  replication:\n    node_id: 3\n"
                      "    nodes: [{id: 3, address: 'h3:7271'}]\n",
                      &o),
                 0, "%s", err);
    cr_assert_str_eq(o.listen_peer, "0.0.0.0:7271");
}

Test(config_keys, shared_cluster_file_without_node_id)
{
    /* One file for every member, --node-id on each command line: the file must not pick a peer
     * address for the default node id 1, nor require the default id to be listed. */
    struct mc_node_options o;
    const char *y = "metadata:\n  engine_type: replicated\n  replication:\n"
                    "    nodes: [{id: 1, address: 'h1:7071'}, {id: 2, address: 'h2:7071'}]\n";
    cr_assert_eq(load(y, &o), 0, "%s", err);
    cr_assert_str_eq(o.listen_peer, "127.0.0.1:7071");
    cr_assert_eq(o.initial_count, 2);
    cr_assert_eq(load("metadata:\n  engine_type: replicated\n  replication:\n"
                      "    nodes: [{id: 5, address: 'h5:7071'}]\n",
                      &o),
                 0, "%s", err);
    cr_assert_eq(o.initial_count, 1);
}

Test(config_keys, replicated_join)
{
    struct mc_node_options o;
    cr_assert_eq(load("metadata:\n  engine_type: replicated\n  replication:\n    node_id: 4\n"
                      "    join: 127.0.0.1:7070\n",
                      &o),
                 0, "%s", err);
    cr_assert_str_eq(o.join, "127.0.0.1:7070");
    cr_assert_eq(o.initial_count, 0);
}

Test(config_keys, noop_keys_warn)
{
    struct mc_node_options o;
    cr_assert_eq(load("metadata:\n  data_dir: /d\n  replication:\n"
                      "    read_consistency: eventual\n"
                      "    batch_timeout_ms: 5\n"
                      "    raft:\n      log_dir: /elsewhere/wal\n      snapshot_dir: /d/snap\n",
                      &o),
                 0, "%s", err);
    cr_assert_eq(warns.count, 3);
    cr_assert(strstr(warns.msg[0], "t.yaml:4: key metadata.replication.read_consistency"), "%s",
              warns.msg[0]);
    cr_assert(strstr(warns.msg[1], "t.yaml:5: key metadata.replication.batch_timeout_ms"), "%s",
              warns.msg[1]);
    cr_assert(strstr(warns.msg[2], "t.yaml:7: key metadata.replication.raft.log_dir"), "%s",
              warns.msg[2]);
    /* the defaults for those settings, or dirs inside data_dir, are silent */
    cr_assert_eq(load("metadata:\n  data_dir: /d\n  replication:\n"
                      "    read_consistency: linearizable\n    batch_timeout_ms: 0\n"
                      "    raft: {log_dir: /d/wal, snapshot_dir: /d/snap}\n",
                      &o),
                 0, "%s", err);
    cr_assert_eq(warns.count, 0);
}

Test(config_errors, unknown_keys_name_key_and_line)
{
    expect_error("metadata:\n  data_dir: x\n  bogus: 1\n",
                 "t.yaml:3:", "unknown key metadata.bogus");
    expect_error("other: 1\n", "t.yaml:1:", "unknown key other");
    expect_error("metadata:\n  replication:\n    raft:\n\n      election_timeout: 5\n",
                 "t.yaml:5:", "metadata.replication.raft.election_timeout (known here:");
    expect_error("metadata:\n  replication:\n    nodes:\n      - id: 1\n        address: h:1\n"
                 "      - id: 2\n        addr: h:2\n",
                 "t.yaml:7:", "unknown key metadata.replication.nodes[1].addr");
    expect_error("metadata:\n  listen: {client: 'h:1', admin: 'h:2'}\n",
                 "t.yaml:2:", "metadata.listen.admin");
}

Test(config_errors, wrong_types_name_key_and_line)
{
    expect_error("metadata:\n  replication:\n    raft:\n      election_timeout_ms: abc\n",
                 "t.yaml:4:", "metadata.replication.raft.election_timeout_ms wants an integer");
    expect_error("metadata:\n  replication:\n    raft:\n      heartbeat_interval_ms: '100'\n",
                 "t.yaml:4:", "wants an integer, got a quoted string");
    expect_error("metadata:\n  replication:\n    node_id: 1.5\n",
                 "t.yaml:3:", "metadata.replication.node_id wants an integer");
    expect_error("metadata:\n  replication:\n    node_id:\n",
                 "t.yaml:3:", "node_id wants an integer, got nothing");
    expect_error("metadata:\n  replication:\n    raft: {pre_vote: yes}\n",
                 "t.yaml:3:", "metadata.replication.raft.pre_vote wants true or false, got 'yes'");
    expect_error("metadata:\n  replication:\n    raft: {check_quorum: [true]}\n",
                 "t.yaml:3:", "wants true or false, got a list");
    expect_error("metadata:\n  data_dir: [a, b]\n",
                 "t.yaml:2:", "metadata.data_dir wants a string, got a list");
    expect_error("metadata:\n  data_dir:\n", "t.yaml:2:", "metadata.data_dir needs a value");
    expect_error("metadata:\n  listen: 127.0.0.1:7070\n",
                 "t.yaml:2:", "metadata.listen wants a mapping, got a plain value");
    expect_error("metadata: [1, 2]\n", "t.yaml:1:", "metadata wants a mapping, got a list");
    expect_error("- metadata\n", "t.yaml:1:", "top level wants a mapping");
    expect_error("metadata:\n  engine_type: cluster\n",
                 "t.yaml:2:", "metadata.engine_type wants local|replicated, got 'cluster'");
    expect_error("metadata:\n  engine_type: {a: 1}\n", "t.yaml:2:", "got a mapping");
    expect_error("metadata:\n  log: {level: loud}\n", "t.yaml:2:", "metadata.log.level wants");
    expect_error("metadata:\n  log: {format: xml}\n", "t.yaml:2:", "metadata.log.format wants");
    expect_error("metadata:\n  replication:\n    read_consistency: bounded\n",
                 "t.yaml:3:", "read_consistency wants linearizable|strong|stale|eventual");
    expect_error("metadata:\n  replication:\n    nodes: 127.0.0.1:7071\n",
                 "t.yaml:3:", "metadata.replication.nodes wants a list");
    expect_error("metadata:\n  replication:\n    nodes: [127.0.0.1:7071]\n",
                 "t.yaml:3:", "metadata.replication.nodes[0] wants {id, address}");
    expect_error("metadata:\n  replication:\n    nodes:\n      - id: 1\n",
                 "t.yaml:4:", "nodes[0] needs both id and address");
    expect_error("metadata:\n  listen: {client: localhost}\n",
                 "t.yaml:2:", "metadata.listen.client wants HOST:PORT");
    expect_error("metadata:\n  listen: {client: 'h:x'}\n", "t.yaml:2:", "wants HOST:PORT");
    expect_error("metadata:\n  listen: {client: ':7070'}\n", "t.yaml:2:", "wants HOST:PORT");
    expect_error("metadata:\n  replication:\n    nodes: [{id: 1, address: 'h:0'}]\n",
                 "t.yaml:3:", "nodes[0].address wants HOST:PORT");
    expect_error("metadata:\n  ? [a]\n  : 1\n", "t.yaml:2:", "not a name");
    expect_error("metadata:\n  data_dir: \"a\\0b\"\n", "t.yaml:2:", "NUL");
}

Test(config_errors, out_of_range_values)
{
    expect_error("metadata: {replication: {raft: {election_timeout_ms: 9}}}",
                 "t.yaml:1:", "election_timeout_ms: 9 is out of range [10, 600000]");
    expect_error("metadata: {replication: {raft: {election_timeout_ms: 600001}}}",
                 "t.yaml:1:", "out of range");
    expect_error("metadata: {replication: {raft: {heartbeat_interval_ms: 0}}}",
                 "t.yaml:1:", "heartbeat_interval_ms: 0 is out of range [1, 60000]");
    expect_error("metadata: {replication: {raft: {snapshot_interval: 9}}}",
                 "t.yaml:1:", "snapshot_interval: 9 is out of range");
    expect_error("metadata: {replication: {raft: {max_log_entries: 4294967296}}}",
                 "t.yaml:1:", "max_log_entries");
    /* 0 was accepted and meant the core's default of 5,000 (the WAL kept none): refused now. */
    expect_error("metadata: {replication: {raft: {max_log_entries: 0}}}",
                 "t.yaml:1:", "max_log_entries");
    expect_error("metadata: {replication: {raft: {tick_ms: 0}}}", "t.yaml:1:", "tick_ms");
    expect_error("metadata: {replication: {node_id: 0}}",
                 "t.yaml:1:", "node_id: 0 is out of range");
    expect_error("metadata: {replication: {node_id: -1}}",
                 "t.yaml:1:", "node_id: -1 is out of range");
    expect_error("metadata: {replication: {node_id: 18446744073709551616}}",
                 "t.yaml:1:", "out of range");
    expect_error("metadata: {replication: {max_batch_size: 0}}", "t.yaml:1:", "max_batch_size");
    expect_error("metadata: {replication: {max_batch_size: 1048577}}",
                 "t.yaml:1:", "max_batch_size");
    expect_error("metadata: {replication: {batch_timeout_ms: 10001}}",
                 "t.yaml:1:", "batch_timeout_ms");
    expect_error("metadata: {max_map_size_bytes: 1048575}", "t.yaml:1:", "max_map_size_bytes");
    expect_error("metadata: {listen: {client: 'h:65536'}}", "t.yaml:1:", "port 1..65535");
    /* the edges are accepted */
    struct mc_node_options o;
    cr_assert_eq(load("metadata: {replication: {node_id: 18446744073709551615, raft: "
                      "{election_timeout_ms: 600000, heartbeat_interval_ms: 1}}}",
                      &o),
                 0, "%s", err);
    cr_assert_eq(o.node_id, UINT64_MAX);
    cr_assert_eq(o.election_timeout_ms, 600000);
}

Test(config_errors, repeated_keys)
{
    expect_error("metadata:\n  data_dir: a\n  data_dir: b\n",
                 "t.yaml:3:", "key metadata.data_dir repeats (first at line 2)");
    expect_error("metadata:\n  replication:\n    nodes:\n      - {id: 1, id: 2, address: 'h:1'}\n",
                 "t.yaml:4:", "nodes[0].id repeats");
    expect_error("metadata:\n  replication:\n    nodes:\n      - {id: 1, address: 'h:1'}\n"
                 "      - {id: 1, address: 'h:2'}\n",
                 "t.yaml:5:", "id 1 repeats");
}

Test(config_errors, engine_type_rules)
{
    expect_error("metadata:\n  engine_type: local\n  replication:\n    node_id: 1\n"
                 "    nodes: [{id: 1, address: 'h:1'}, {id: 2, address: 'h:2'}]\n",
                 "t.yaml:5:", "set metadata.engine_type: replicated");
    /* no engine_type means local: a multi-node list must say replicated */
    expect_error("metadata:\n  replication:\n"
                 "    nodes: [{id: 1, address: 'h:1'}, {id: 2, address: 'h:2'}]\n",
                 "t.yaml:3:", "engine_type: replicated");
    expect_error("metadata:\n  engine_type: replicated\n",
                 "t.yaml:2:", "engine_type replicated needs metadata.replication.nodes");
    expect_error("metadata:\n  engine_type: replicated\n  replication:\n    node_id: 5\n"
                 "    nodes: [{id: 1, address: 'h:1'}, {id: 2, address: 'h:2'}]\n",
                 "t.yaml:5:", "does not list this node (node_id 5)");
    expect_error("metadata:\n  engine_type: replicated\n  replication:\n    join: 'h:7070'\n"
                 "    nodes: [{id: 1, address: 'h:1'}]\n",
                 "t.yaml:4:", "exclude each other");
    expect_error("metadata:\n  replication:\n    join: 'h:7070'\n",
                 "t.yaml:3:", "join needs engine_type: replicated");
    char y[4096] = "metadata:\n  engine_type: replicated\n  replication:\n    nodes:\n";
    for (int i = 1; i <= MC_MAX_MEMBERS + 1; i++) {
        size_t n = strlen(y);
        snprintf(y + n, sizeof(y) - n, "      - {id: %d, address: 'h:%d'}\n", i, i);
    }
    expect_error(y, "t.yaml:21:", "too many nodes (max 16)");
}

Test(config_errors, yaml_syntax_errors_give_lines)
{
    expect_error("metadata:\n  data_dir: [a\n", "YAML syntax error", NULL);
    expect_error("metadata:\n  data_dir: a\n bad: 1\n", "t.yaml:3:", "YAML syntax error");
    expect_error("metadata:\n\tdata_dir: a\n", "t.yaml:2:", "YAML syntax error");
    expect_error("metadata: {a: 1\n\n\n", "YAML syntax error", NULL);
    expect_error("metadata:\n  data_dir: \"abc\n", "YAML syntax error", NULL);
    expect_error("metadata: &a\n  data_dir: x\nother: *a\n", "t.yaml:3:", "alias");
    expect_error("metadata:\n  data_dir: !!str x\n", "t.yaml:2:", "tag");
    expect_error("metadata:\n  data_dir: a\n---\nmetadata:\n  data_dir: b\n",
                 "t.yaml:3:", "more than one YAML document");
    expect_error("metadata: {a: {b: {c: {d: {e: {f: {g: {h: {i: 1}}}}}}}}}\n",
                 "t.yaml:1:", "nesting is too deep");
}

Test(config_errors, empty_inputs)
{
    expect_error("", "empty", NULL);
    expect_error("# only a comment\n\n", "empty", NULL);
    expect_error("---\n...\n", "empty", NULL);
    expect_error("~\n", "empty", NULL);
    expect_error("42\n", "top level wants a mapping", NULL);
}

Test(config_errors, limits)
{
    /* one scalar too long */
    size_t n = MC_NODE_CONFIG_MAX_SCALAR + 64;
    char *y = malloc(n + 64);
    cr_assert(y);
    strcpy(y, "metadata:\n  data_dir: ");
    size_t off = strlen(y);
    memset(y + off, 'a', MC_NODE_CONFIG_MAX_SCALAR + 1);
    strcpy(y + off + MC_NODE_CONFIG_MAX_SCALAR + 1, "\n");
    expect_error(y, "t.yaml:2:", "too long");
    /* a path longer than data_dir's capacity, but under the scalar limit */
    memset(y + off, 'a', MC_PATH_MAX_BYTES);
    strcpy(y + off + MC_PATH_MAX_BYTES, "\n");
    expect_error(y, "metadata.data_dir is too long", NULL);
    free(y);
    /* too many YAML nodes */
    size_t cap = (size_t)MC_NODE_CONFIG_MAX_NODES * 4 + 64;
    y = malloc(cap);
    cr_assert(y);
    strcpy(y, "metadata: {x: [");
    for (int i = 0; i < MC_NODE_CONFIG_MAX_NODES; i++) {
        strcat(y, "1,");
    }
    strcat(y, "1]}\n");
    expect_error(y, "too many YAML nodes", NULL);
    free(y);
}

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert(f);
    cr_assert_eq(fwrite(text, 1, len, f), len);
    fclose(f);
}

Test(config_files, missing_directory_too_large_and_good_file)
{
    struct mc_node_options o, before;
    mc_node_options_default(&o);
    before = o;
    char dir[] = "/tmp/mc-config-XXXXXX";
    cr_assert(mkdtemp(dir));
    char path[256];

    snprintf(path, sizeof(path), "%s/nope.yaml", dir);
    cr_assert_eq(mc_node_config_load(path, &o, err, sizeof(err)), MC_ENOTFOUND);
    cr_assert(strstr(err, "NotFound") && strstr(err, "nope.yaml"), "%s", err);
    cr_assert(memcmp(&o, &before, sizeof(o)) == 0);

    cr_assert_eq(mc_node_config_load(dir, &o, err, sizeof(err)), MC_EIO, "%s", err);
    cr_assert(strstr(err, dir), "%s", err);

    snprintf(path, sizeof(path), "%s/empty.yaml", dir);
    write_file(path, "", 0);
    cr_assert_eq(mc_node_config_load(path, &o, err, sizeof(err)), MC_EINVAL);
    cr_assert(strstr(err, "empty.yaml") && strstr(err, "empty"), "%s", err);

    snprintf(path, sizeof(path), "%s/big.yaml", dir);
    char *big = malloc(MC_NODE_CONFIG_MAX_BYTES + 1);
    cr_assert(big);
    memset(big, '#', MC_NODE_CONFIG_MAX_BYTES + 1);
    write_file(path, big, MC_NODE_CONFIG_MAX_BYTES + 1);
    free(big);
    cr_assert_eq(mc_node_config_load(path, &o, err, sizeof(err)), MC_ETOOLARGE, "%s", err);

    snprintf(path, sizeof(path), "%s/ok.yaml", dir);
    const char *y = "metadata:\n  data_dir: /x\n";
    write_file(path, y, strlen(y));
    cr_assert_eq(mc_node_config_load(path, &o, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(o.data_dir, "/x");
    cr_assert_str_eq(o.config_file, path);
    cr_assert(memcmp(&o, &before, sizeof(o)) != 0);

    /* syntax errors carry the file's own name */
    snprintf(path, sizeof(path), "%s/bad.yaml", dir);
    y = "metadata:\n  data_dir: x\n  raft: {\n";
    write_file(path, y, strlen(y));
    cr_assert_eq(mc_node_config_load(path, &o, err, sizeof(err)), MC_EINVAL);
    cr_assert(strstr(err, "bad.yaml:"), "%s", err);

    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

Test(config_files, flags_override_the_file)
{
    struct mc_node_options o;
    const char *y = "metadata:\n  data_dir: /from-file\n  listen: {client: '127.0.0.1:9000'}\n"
                    "  replication:\n    node_id: 2\n    raft: {election_timeout_ms: 3000}\n";
    cr_assert_eq(load(y, &o), 0, "%s", err);
    char *argv[] = {"serve",      "--config",  "t.yaml", "--data-dir",
                    "/from-flag", "--node-id", "7",      NULL};
    cr_assert_eq(mc_node_options_parse(&o, 7, argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_str_eq(o.data_dir, "/from-flag");
    cr_assert_eq(o.node_id, 7);
    cr_assert_eq(o.election_timeout_ms, 3000);              /* file value kept */
    cr_assert_str_eq(o.advertise_client, "127.0.0.1:9000"); /* defaulted from the file's client */
}

Test(config_files, image_handoff_is_on_unless_turned_off)
{
    struct mc_node_options o;
    mc_node_options_default(&o);
    cr_assert_eq(o.image_handoff, 1);
    char *argv[] = {"serve", "--no-image-handoff", "--node-id", "3", NULL};
    cr_assert_eq(mc_node_options_parse(&o, 4, argv, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(o.image_handoff, 0);
    cr_assert_eq(o.node_id, 3);
    char *a2[] = {"serve", "--no-image-handoff", "--config", "x.yaml", NULL};
    cr_assert_str_eq(mc_node_config_find_arg(4, a2), "x.yaml");
}

Test(config_files, find_config_arg)
{
    char *a1[] = {"serve", "--data-dir", "--config", "--config", "c.yaml", NULL};
    cr_assert_str_eq(mc_node_config_find_arg(5, a1), "c.yaml");
    char *a2[] = {"serve", "--no-pre-vote", "--config", "x.yaml", "--lease-reads", NULL};
    cr_assert_str_eq(mc_node_config_find_arg(5, a2), "x.yaml");
    char *a3[] = {"serve", "--data-dir", "d", NULL};
    cr_assert_null(mc_node_config_find_arg(3, a3));
    char *a4[] = {"serve", "--config", NULL};
    cr_assert_null(mc_node_config_find_arg(2, a4));
    char *a5[] = {"serve", "--config", "a", "--config", "b", NULL};
    cr_assert_str_eq(mc_node_config_find_arg(5, a5), "b");
}

/* Malformed inputs: every mutation of a valid file must load or fail cleanly, never crash. */
Test(config_fuzz, mutations_never_crash)
{
    const char *base = "metadata:\n  engine_type: replicated\n  data_dir: ./d\n"
                       "  listen: {client: '127.0.0.1:7070', peer: 127.0.0.1:7071, http: off}\n"
                       "  replication:\n    node_id: 1\n    nodes:\n"
                       "      - id: 1\n        address: 127.0.0.1:7071\n"
                       "      - {id: 2, address: \"127.0.0.1:7171\"}\n"
                       "    raft:\n      election_timeout_ms: 1000\n      pre_vote: true\n";
    static const char junk[] = "{}[]:,-?&*!|>'\"%@` #\t\n\\0123456789abc~\x01\xff";
    size_t blen = strlen(base);
    char buf[1024];
    uint64_t s = 0x9e3779b97f4a7c15ull;
    int ok = 0, bad = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(buf, base, blen);
        size_t len = blen;
        int edits = 1 + (int)(iter % 4);
        for (int e = 0; e < edits && len > 1; e++) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            size_t pos = (size_t)(s % len);
            char ch = junk[(s >> 32) % (sizeof(junk) - 1)];
            switch ((s >> 48) % 3) {
            case 0:
                buf[pos] = ch;
                break;
            case 1: /* delete */
                memmove(buf + pos, buf + pos + 1, len - pos - 1);
                len--;
                break;
            default: /* truncate */
                len = pos + 1;
                break;
            }
        }
        struct mc_node_options o;
        mc_node_options_default(&o);
        int rc = mc_node_config_load_buf("f.yaml", buf, len, &o, &warns, err, sizeof(err));
        cr_assert(rc == 0 || rc == MC_EINVAL, "rc %d", rc);
        if (rc) {
            cr_assert(strncmp(err, "InvalidArgument: f.yaml", 23) == 0, "%s", err);
            bad++;
        } else {
            ok++;
        }
    }
    cr_assert(ok > 0 && bad > 0, "ok %d bad %d", ok, bad);
}
