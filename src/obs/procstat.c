/* procstat.c: RSS from /proc/self/statm, open fds by counting /proc/self/fd. */
#include "obs/procstat.h"

#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "metacenter/error.h"

static int read_rss(uint64_t *out)
{
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return MC_EIO;
    unsigned long long size = 0, resident = 0;
    int n = fscanf(f, "%llu %llu", &size, &resident);
    fclose(f);
    if (n != 2)
        return MC_EIO;
    long page = sysconf(_SC_PAGESIZE);
    *out = resident * (uint64_t)(page > 0 ? page : 4096);
    return 0;
}

static int count_fds(uint64_t *out)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d)
        return MC_EIO;
    uint64_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.')
            n++;
    }
    closedir(d);
    *out = n > 0 ? n - 1 : 0; /* opendir's own descriptor */
    return 0;
}

int mc_procstat_read(struct mc_procstat *out)
{
    memset(out, 0, sizeof *out);
    int a = read_rss(&out->rss_bytes);
    int b = count_fds(&out->open_fds);
    return a ? a : b;
}
