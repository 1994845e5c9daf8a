/* net.h: simulated network: per-packet delay, drop, duplication, reordering and directed
 * partitions. */
#ifndef MC_SIM_NET_H
#define MC_SIM_NET_H

#include "util/rand.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Node ids are 1..SIM_MAX_NODE_ID (ids are never reused, so membership changes consume ids). */
#define SIM_MAX_NODE_ID 24
/* Packets in flight at once; a send beyond this is dropped (a full socket buffer). */
#define SIM_NET_MAX_PACKETS 65536

struct sim_packet {
    uint64_t deliver_ms;
    uint64_t seq; /* tie-break so equal delivery times keep a deterministic order */
    uint32_t from, to;
    uint8_t *data; /* owned by the packet (malloc) */
    size_t len;
};

/* Fault knobs; all probabilities are per mille. Zeroed = a perfect network with min delay. */
struct sim_net_faults {
    uint32_t drop_pm;
    uint32_t dup_pm;
    uint32_t delay_min_ms, delay_max_ms; /* uniform; distinct delays reorder packets */
    uint32_t slow_pm;                    /* chance a packet takes slow_max_ms-ish (long reorder) */
    uint32_t slow_max_ms;
};

struct sim_net {
    struct mc_rand *rand;
    struct sim_net_faults faults;
    bool blocked[SIM_MAX_NODE_ID + 1][SIM_MAX_NODE_ID + 1]; /* [from][to] */
    struct sim_packet *heap;
    size_t len, cap;
    uint64_t seq;
    uint64_t sent, dropped, duplicated, delivered, cut; /* counters */
};

void sim_net_init(struct sim_net *n, struct mc_rand *rand);
void sim_net_free(struct sim_net *n);
/* Queue data (ownership taken) from -> to at now_ms, applying drop/dup/delay faults. */
void sim_net_send(struct sim_net *n, uint64_t now_ms, uint32_t from, uint32_t to, uint8_t *data,
                  size_t len);
/* Put a packet back in flight for delivery at deliver_ms, fault-free (ownership taken). */
void sim_net_requeue(struct sim_net *n, const struct sim_packet *p, uint64_t deliver_ms);
/* Earliest delivery time, or UINT64_MAX when nothing is in flight. */
uint64_t sim_net_next_ms(const struct sim_net *n);
/* Pop the earliest packet. Returns false when empty. The caller owns p->data. */
bool sim_net_pop(struct sim_net *n, struct sim_packet *p);
/* A link is cut when blocked[from][to]; checked at delivery time (in-flight packets die too). */
bool sim_net_link_ok(const struct sim_net *n, uint32_t from, uint32_t to);
void sim_net_block(struct sim_net *n, uint32_t from, uint32_t to);
void sim_net_block_both(struct sim_net *n, uint32_t a, uint32_t b);
/* Cut every link between node a and every other node, both ways. */
void sim_net_isolate(struct sim_net *n, uint32_t a);
/* Heal every partition. */
void sim_net_heal(struct sim_net *n);
/* Drop every packet in flight addressed to `to` (e.g. a node crashed: its socket buffers died). */
void sim_net_drop_to(struct sim_net *n, uint32_t to);

#endif
