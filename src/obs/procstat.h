/* procstat.h: this process' resident memory and open file descriptors, read from /proc/self. */
#ifndef MC_OBS_PROCSTAT_H
#define MC_OBS_PROCSTAT_H

#include <stdint.h>

struct mc_procstat {
    uint64_t rss_bytes; /* /proc/self/statm resident pages × page size; 0 if unreadable */
    uint64_t open_fds;  /* entries of /proc/self/fd (the directory's own fd excluded) */
};

/* Best effort: fields stay 0 when /proc is unavailable. Returns 0 or MC_EIO. */
int mc_procstat_read(struct mc_procstat *out);

#endif
