/* cluster.h: in-process cluster of real Raft cores over a simulated clock, network and disks. */
#ifndef MC_SIM_CLUSTER_H
#define MC_SIM_CLUSTER_H

#include "check.h"
#include "net.h"
#include "trace.h"

#include "metacenter/raft.h"
#include "util/rand.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/*
 * The fixture shared by build/sim (random faults) and the scenario tests (scripted faults).
 *
 * Time: one simulated clock in ms. Each node ticks its core every tick_ms (10 ms by default), so
 * with election_tick 10 an election timeout is 100-200 ms of simulated time.
 * Disk: per node, a durable part (hard state, snapshot + its state machine image, log entries)
 * and a FIFO of pending writes that become durable after a random latency; a crash throws the
 * pending writes away. Messages that depend on persistence (wait_persist) are held until the
 * write of their ready is durable, exactly as the core's usage contract says.
 * State machine: a register of the last write id plus a hash chain over every applied entry, so
 * a snapshot is "the state at an index" and two replicas agree iff their chains agree.
 * Clients: writes propose an 8-byte unique id (acknowledged when the proposing node applies it at
 * the proposed index); reads are ReadIndex reads served once applied >= read index.
 */

/* Limits. */
#define SIM_MAX_PENDING_OPS 4096 /* disk writes not yet durable, per node */
#define SIM_MAX_CLIENT_OPS  512  /* client writes + reads in flight, per node */
#define SIM_MSG_TYPES       13

struct sim_sm {
    uint64_t applied;    /* index */
    uint64_t term;       /* term of the entry at applied */
    uint64_t chain;      /* hash chain over entries 1..applied (0 when applied == 0) */
    uint64_t last_write; /* register value: the last client write id applied */
    uint64_t writes;     /* counter: client writes applied */
};

struct sim_lent { /* one shadow-log entry */
    uint64_t term;
    uint64_t chain;
};

struct sim_dop; /* pending disk write (cluster.c) */

struct sim_client_op {
    bool is_read;
    uint64_t id;         /* write id or read ctx */
    uint64_t index;      /* write: proposed index; read: read index once known (0 before) */
    uint64_t term;       /* write: proposed term */
    uint64_t need_index; /* read: highest acknowledged write index when the read began */
    uint64_t start_ms;
};

struct sim_node {
    uint32_t id;
    bool exists; /* slot in use (ids are never reused) */
    bool up;
    bool paused;  /* process stopped: no ticks, inbound packets wait (SIGSTOP) */
    bool removed; /* its removal committed: the operator stopped it for good */
    struct mc_raft *r;
    uint64_t incarnation;
    uint64_t next_tick_ms;
    uint32_t tick_ms; /* this incarnation's tick period: o.tick_ms +- o.tick_skew_ms (clock rate) */
    uint64_t seed;    /* per incarnation */
    /* what the core told us */
    uint8_t role;
    uint64_t leader;
    uint64_t term;
    uint64_t commit; /* last hard-state commit seen this incarnation */
    /* durable disk */
    struct mc_raft_hard_state disk_hs;
    bool disk_has_snap;
    struct mc_raft_snapshot_meta disk_snap;
    struct sim_sm disk_snap_sm;
    struct mc_raft_entry *disk_log; /* consecutive, starting at disk_first */
    size_t disk_n, disk_cap;
    uint64_t disk_first;
    /* pending disk writes (volatile; FIFO) */
    struct sim_dop *dops;
    size_t dops_head, dops_len;
    /* shadow of the core's in-memory log (persisted or not), for the log checks */
    struct sim_lent *log;
    size_t log_n, log_cap;
    uint64_t log_base, log_base_term, log_base_chain;
    /* the state machine and the snapshot file most recently received from a leader */
    struct sim_sm sm;
    bool has_incoming_snap;
    struct sim_sm incoming_snap;
    /* packets that arrived while the process was paused (delivered in order on resume) */
    struct sim_packet *inbox;
    size_t inbox_n, inbox_cap;
    /* clients waiting on this node */
    struct sim_client_op ops[SIM_MAX_CLIENT_OPS];
    size_t n_ops;
};

struct sim_opts {
    uint64_t seed;
    uint32_t nodes;                    /* initial voters 1..nodes */
    uint32_t learners;                 /* initial learners nodes+1..nodes+learners */
    uint32_t tick_ms;                  /* default 10 */
    uint32_t tick_skew_ms;             /* each node's clock runs at tick_ms +- up to this */
    uint32_t disk_min_ms, disk_max_ms; /* default 0..0 (synchronous) */
    struct mc_raft_config raft; /* template: id/seed/initial lists/restore are filled per node */
    bool keep_removed; /* leave removed members running (default: stop them once committed) */
    bool no_commit_term_check; /* skip the direct §5.4.2 check: only end-to-end properties */
    FILE *verbose;             /* trace lines go here when non-NULL */
};

struct sim_cluster {
    struct sim_opts o;
    struct mc_rand rand;
    uint64_t now_ms;
    uint64_t steps;
    struct sim_net net;
    struct sim_check check;
    struct sim_trace trace;
    struct sim_node nodes[SIM_MAX_NODE_ID + 1]; /* index = id */
    uint32_t max_id;
    uint64_t next_write_id, next_read_ctx;
    uint64_t acked_writes, acked_reads, failed_ops;
    uint64_t msgs_by_type[SIM_MSG_TYPES + 1]; /* sent, by enum mc_raft_msg_type */
    uint64_t entries_sent;                    /* entries carried by APPEND messages */
    uint64_t sent_by[SIM_MAX_NODE_ID + 1][SIM_MSG_TYPES + 1]; /* [from][type] */
    uint64_t append_rejects_by[SIM_MAX_NODE_ID + 1];          /* APPEND_RESP reject, [from] */
    uint64_t snapshots_installed;
    /* liveness bookkeeping for acknowledged client ops (for the scenario tests) */
    uint64_t last_acked_write_id, last_acked_write_index;
    uint64_t last_read_ctx, last_read_index; /* last served read */
    uint8_t *acked;                          /* [write id] = 1 once acknowledged */
    size_t acked_cap;
};

/* Fill o with defaults (3 nodes, seed 1). */
void sim_opts_defaults(struct sim_opts *o);
/* Returns NULL on allocation failure. The cluster starts at time 0 with every node up. */
struct sim_cluster *sim_cluster_new(const struct sim_opts *o);
void sim_cluster_free(struct sim_cluster *c);

/* Advance to the next event and process it (one step). False when nothing is scheduled. */
bool sim_step(struct sim_cluster *c);
/* Process every event up to now + ms. Stops early on a violation. */
void sim_run(struct sim_cluster *c, uint64_t ms);
/* Run until pred(c, arg) or max_ms pass; returns pred's final value. */
bool sim_run_until(struct sim_cluster *c, bool (*pred)(struct sim_cluster *, void *), void *arg,
                   uint64_t max_ms);
bool sim_ok(const struct sim_cluster *c);

/* The leader with the highest term among up nodes, or 0. */
uint32_t sim_leader(const struct sim_cluster *c);
/* A leader that is current (no up node has a higher term), a voter of its own configuration (not
 * removing itself) and has committed an entry of its term, so proposals to it can commit and be
 * acknowledged by it; 0 when there is none. */
uint32_t sim_stable_leader(const struct sim_cluster *c);
/* Run until some node is leader (and, if stable_ms, it stays leader that long). 0 on timeout. */
uint32_t sim_wait_leader(struct sim_cluster *c, uint64_t max_ms);

/* Client write at node id: *write_id set; returns the core's propose result. */
int sim_write(struct sim_cluster *c, uint32_t id, uint64_t *write_id);
/* True once write_id was acknowledged (applied at its proposed index on the proposing node). */
bool sim_write_acked(const struct sim_cluster *c, uint64_t write_id);
/* Write at node id, then run until acknowledged (true) or max_ms pass / the write is lost. */
bool sim_write_sync(struct sim_cluster *c, uint32_t id, uint64_t max_ms);
/* Up, unpaused nodes that believe they are leader (of any term). */
uint32_t sim_count_leaders(const struct sim_cluster *c);
/* Client linearizable read at node id: *ctx set; returns the core's read_index result. */
int sim_read(struct sim_cluster *c, uint32_t id, uint64_t *ctx);
/* Is a client op still waiting at node id? */
bool sim_op_pending(const struct sim_cluster *c, uint32_t id, uint64_t op_id, bool is_read);

int sim_conf_change(struct sim_cluster *c, uint32_t leader, uint8_t type, uint32_t node_id);
/* Create a fresh (empty, non-member) node with a new id; returns the id or 0. */
uint32_t sim_add_node(struct sim_cluster *c);
int sim_transfer(struct sim_cluster *c, uint32_t leader, uint32_t target);
/* Take a local snapshot of node id at its applied index (compacts the core's log). */
int sim_snapshot(struct sim_cluster *c, uint32_t id);

void sim_crash(struct sim_cluster *c, uint32_t id);
int sim_restart(struct sim_cluster *c, uint32_t id);
/* Crash id and lose its whole disk (hard state, snapshot, log): a data dir lost or replaced.
 * Not part of the fault model the checks judge (Raft assumes stable storage, thesis §3.8):
 * only for the scenario that tests the core's guard against it. */
void sim_wipe(struct sim_cluster *c, uint32_t id);
void sim_pause(struct sim_cluster *c, uint32_t id);
void sim_resume(struct sim_cluster *c, uint32_t id);

/* Check Leader Completeness for a (new) leader: its log holds every known-committed entry. */
bool sim_check_leader_log(struct sim_cluster *c, uint32_t id);

#endif
