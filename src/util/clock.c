/* clock.c: clock_gettime wrappers. */
#include "util/clock.h"

#include <time.h>

uint64_t mc_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

uint64_t mc_mono_us(void)
{
    return mc_mono_ns() / 1000;
}

uint64_t mc_mono_ms(void)
{
    return mc_mono_ns() / 1000000;
}

int64_t mc_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}
