/* node_test_util.h: options for a single in-process node in a unit test (loopback, no HTTP). */
#ifndef NODE_TEST_UTIL_H
#define NODE_TEST_UTIL_H

#include "node/options.h"
#include "storage_test_util.h"
#include "util/log.h"

/* A fresh temp dir in dir (dir_size bytes) and default options for a node whose data dir is
 * DIR/data, on ephemeral loopback ports, with HTTP off and no disk reserve; logs at WARN. */
static inline void nt_node_options(struct mc_node_options *o, char *dir, size_t dir_size)
{
    st_tmpdir(dir, dir_size);
    mc_log_set_level(MC_LOG_WARN);
    mc_node_options_default(o);
    snprintf(o->data_dir, sizeof(o->data_dir), "%s/data", dir);
    snprintf(o->listen_client, sizeof(o->listen_client), "127.0.0.1:0");
    snprintf(o->listen_peer, sizeof(o->listen_peer), "127.0.0.1:0");
    snprintf(o->listen_http, sizeof(o->listen_http), "off");
    o->disk_reserve_mb = 0;
}

#endif
