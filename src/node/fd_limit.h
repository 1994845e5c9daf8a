/* fd_limit.h: fit the node's connection caps to its descriptor limit (RLIMIT_NOFILE). */
#ifndef MC_NODE_FD_LIMIT_H
#define MC_NODE_FD_LIMIT_H

#include <stdint.h>

/* Descriptors kept for the node's own use besides client and HTTP connections: LMDB, WAL
 * segments and their spare, directory fsyncs, listeners, epoll/eventfd, snapshot files (64),
 * plus peer links and snapshot streams (4 a peer). */
#define MC_FD_RESERVE_BASE     64
#define MC_FD_RESERVE_PER_PEER 4
/* Inbound peer links anyone reaching the peer port can hold (peer.c MAX_INBOUND, rev18c R-5).
 * Not reserved: the listen backlogs (511 each; refused connections over a cap hold a descriptor
 * until the next flush) and WAL segments past the base (image_log_mb / segment size): adding
 * them would refuse a 1024 limit outright; the backlog burst lasts one loop pass. */
#define MC_FD_RESERVE_INBOUND 64

/* Descriptors reserved for a node that may have `peers` peers. */
uint64_t mc_fd_reserve(uint64_t peers);

/* Fits *client + *http + reserve into limit: unchanged when it fits (returns 0); otherwise both
 * caps are lowered in proportion to their share, each to at least 1 (returns 1). MC_ELIMIT when
 * limit leaves fewer than 2 descriptors over the reserve (no cap can fit). *http may be 0 (no
 * HTTP listener) and then stays 0. */
int mc_fd_fit(uint64_t limit, uint64_t reserve, uint64_t *client, uint64_t *http);

/* Raises the soft RLIMIT_NOFILE to the hard one and returns the soft limit now in force in
 * *limit (RLIM_INFINITY reads as UINT64_MAX). 0 or MC_EIO (getrlimit failed). A failed raise is
 * not an error: the old soft limit is returned. */
int mc_fd_raise_limit(uint64_t *limit);

#endif
