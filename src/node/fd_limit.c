/* fd_limit.c: fits the client and HTTP connection caps to RLIMIT_NOFILE, so that connections a
 * client opens cannot take the descriptors the WAL and LMDB need (a failed open there is a
 * fail-stop; audit aud18 B1). */
#include "node/fd_limit.h"

#include "metacenter/error.h"

#include <assert.h>
#include <sys/resource.h>

uint64_t mc_fd_reserve(uint64_t peers)
{
    return MC_FD_RESERVE_BASE + MC_FD_RESERVE_INBOUND + MC_FD_RESERVE_PER_PEER * peers;
}

int mc_fd_fit(uint64_t limit, uint64_t reserve, uint64_t *client, uint64_t *http)
{
    assert(*client >= 1);
    uint64_t want = *client + *http;
    if (limit >= reserve && limit - reserve >= want) {
        return 0;
    }
    uint64_t min = *http ? 2 : 1;
    if (limit < reserve || limit - reserve < min) {
        return MC_ELIMIT;
    }
    uint64_t avail = limit - reserve; /* < want ≤ 1,000,000 + 1024: the product fits */
    uint64_t c = avail * *client / want;
    if (c < 1) {
        c = 1;
    }
    if (*http && avail - c < 1) {
        c = avail - 1;
    }
    *http = *http ? avail - c : 0;
    *client = c;
    assert(*client >= 1 && *client + *http <= avail);
    return 1;
}

int mc_fd_raise_limit(uint64_t *limit)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return MC_EIO;
    }
    if (rl.rlim_cur != rl.rlim_max) {
        struct rlimit up = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &up) == 0) {
            rl.rlim_cur = rl.rlim_max;
        }
    }
    *limit = rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX : (uint64_t)rl.rlim_cur;
    return 0;
}
