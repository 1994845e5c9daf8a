/* test_config_examples.c: the files in docs/examples load and give the documented options. */
#include "metacenter/error.h"
#include "node/config.h"
#include "util/log.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* The unit binary runs from the repository root (test/run.sh cds there). */
static void load_example(const char *name, struct mc_node_options *o)
{
    char path[256], err[512];
    struct mc_node_config_warnings w;
    snprintf(path, sizeof(path), "docs/examples/%s", name);
    mc_node_options_default(o);
    int rc = mc_node_config_load_ex(path, o, &w, err, sizeof(err));
    cr_assert_eq(rc, 0, "%s: %s", path, err);
    cr_assert_eq(w.count, 0, "%s warns: %s", path, w.msg[0]);
    /* and the flag parser (run after the file by serve) accepts the result */
    char *argv[] = {"serve", NULL};
    cr_assert_eq(mc_node_options_parse(o, 1, argv, err, sizeof(err)), 0, "%s", err);
}

Test(config_examples, single_node_equals_the_no_flag_defaults)
{
    struct mc_node_options o, d;
    load_example("single-node.yaml", &o);
    mc_node_options_default(&d);
    char err[256];
    char *argv[] = {"serve", NULL};
    cr_assert_eq(mc_node_options_parse(&d, 1, argv, err, sizeof(err)), 0);
    cr_assert_str_eq(o.config_file, "docs/examples/single-node.yaml");
    snprintf(d.config_file, sizeof(d.config_file), "%s", o.config_file);
    cr_assert(memcmp(&o, &d, sizeof(o)) == 0, "single-node.yaml differs from the defaults");
    cr_assert_eq(o.initial_count, 0);
}

Test(config_examples, three_node_cluster_files)
{
    for (int n = 1; n <= 3; n++) {
        char name[64], want[64];
        struct mc_node_options o;
        snprintf(name, sizeof(name), "three-node-%d.yaml", n);
        load_example(name, &o);
        int base = 7070 + (n - 1) * 100;
        cr_assert_eq(o.node_id, (uint64_t)n);
        snprintf(want, sizeof(want), "./metacenter-data-%d", n);
        cr_assert_str_eq(o.data_dir, want);
        snprintf(want, sizeof(want), "127.0.0.1:%d", base);
        cr_assert_str_eq(o.listen_client, want);
        cr_assert_str_eq(o.advertise_client, want);
        snprintf(want, sizeof(want), "127.0.0.1:%d", base + 1);
        cr_assert_str_eq(o.listen_peer, want);
        snprintf(want, sizeof(want), "127.0.0.1:%d", base + 10);
        cr_assert_str_eq(o.listen_http, want);
        cr_assert_eq(o.initial_count, 3);
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(o.initial[i].id, (uint64_t)(i + 1));
            snprintf(want, sizeof(want), "127.0.0.1:%d", 7071 + i * 100);
            cr_assert_str_eq(o.initial[i].peer_addr, want);
        }
        cr_assert_eq(o.election_timeout_ms, 600);
        cr_assert_eq(o.heartbeat_ms, 100);
        cr_assert_eq(o.snapshot_entries, 100000);
        cr_assert_eq(o.snapshot_log_mb, 64);
        cr_assert_eq(o.snapshot_tail_entries, 5000);
        cr_assert_eq(o.snapshot_tail_mb, 32);
        cr_assert_eq(o.catch_up_log_mb, 256);
        cr_assert_eq(o.max_batch_entries, 4096);
        cr_assert_eq(o.pre_vote, 1);
        cr_assert_eq(o.check_quorum, 1);
        cr_assert_eq(o.lease_reads, 0);
        cr_assert_eq(o.join[0], 0);
    }
}
