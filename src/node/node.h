/* node.h: one metacenter node: Raft core + WAL + engine + peer transport + client server. */
#ifndef MC_NODE_NODE_H
#define MC_NODE_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "node/options.h"

struct mc_node;

/*
 * Open the data dir (creating it on first start), recover, load the WAL and the latest
 * snapshot, start listening. Runs on `loop`; everything afterwards happens in loop callbacks.
 * Errors are logged with the reason and returned (MC_ELOCKED, MC_ECORRUPT, MC_EIO, ...).
 */
int mc_node_start(uv_loop_t *loop, const struct mc_node_options *opts, struct mc_node **out);
/*
 * Graceful stop: stop accepting, transfer leadership when leader (bounded wait), finish
 * in-flight fsyncs, close LMDB. done runs on the loop when everything is closed.
 */
void mc_node_stop(struct mc_node *n, void (*done)(void *arg), void *arg);
/* After done ran: free the node. */
void mc_node_free(struct mc_node *n);
/* Non-zero once the node hit a fatal storage error and must exit. */
int mc_node_fatal(const struct mc_node *n);

/* A snapshot of the node's state for status, metrics and health checks (loop thread). */
struct mc_node_info {
    uint64_t id;
    uint64_t leader_id;
    uint64_t term;
    int role; /* enum mc_raft_role */
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t last_index;
    uint64_t snapshot_index;
    uint64_t snapshot_size_bytes;
    uint64_t ms_since_leader_contact; /* UINT64_MAX when never */
    uint32_t n_voters;
    uint32_t n_learners;
};
void mc_node_get_info(struct mc_node *n, struct mc_node_info *out);

#endif
