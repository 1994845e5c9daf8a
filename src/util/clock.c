/* clock.c: clock_gettime wrappers, monotonic condition waits, a test-only wall-clock offset hook,
 * and the test hooks' environment reader. */
#include "util/clock.h"
#include "util/log.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
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

/* Test hook: with MC_TEST_WALL_CLOCK_FILE=PATH in the environment, mc_wall_ns() adds the signed
 * offset in seconds written in PATH (re-read at most every MC_WALL_HOOK_REREAD_NS), so a fault
 * test can jump one process's wall clock forward and back while it runs. Unset (production), the
 * hook costs one relaxed atomic load. Only the wall clock moves: leases, timeouts and ticks use
 * CLOCK_MONOTONIC, which the hook never touches. */
#define MC_WALL_HOOK_REREAD_NS (20ull * 1000000ull)
enum { HOOK_UNKNOWN = 0, HOOK_OFF, HOOK_ON };
static _Atomic int hook_state;
static const char *hook_path;
static _Atomic int64_t hook_offset_ns;
static _Atomic uint64_t hook_read_at_ns;

static void hook_reread(uint64_t now)
{
    FILE *f = fopen(hook_path, "r");
    double s = 0;
    if (f) {
        if (fscanf(f, "%lf", &s) == 1) {
            atomic_store_explicit(&hook_offset_ns, (int64_t)(s * 1e9), memory_order_relaxed);
        }
        fclose(f);
    }
    atomic_store_explicit(&hook_read_at_ns, now ? now : 1, memory_order_relaxed);
}

static int64_t wall_offset_ns(void)
{
    int st = atomic_load_explicit(&hook_state, memory_order_relaxed);
    if (st == HOOK_OFF) {
        return 0;
    }
    if (st == HOOK_UNKNOWN) {
        const char *p = getenv("MC_TEST_WALL_CLOCK_FILE");
        hook_path = p && p[0] ? p : NULL; /* racing first callers store the same value */
        st = hook_path ? HOOK_ON : HOOK_OFF;
        if (st == HOOK_ON) {
            fprintf(stderr,
                    "WARNING test hook: wall clock offset read from %s "
                    "(MC_TEST_WALL_CLOCK_FILE; never set this in production)\n",
                    hook_path);
        }
        atomic_store(&hook_state, st);
        if (st == HOOK_OFF) {
            return 0;
        }
    }
    uint64_t now = mc_mono_ns();
    uint64_t at = atomic_load_explicit(&hook_read_at_ns, memory_order_relaxed);
    if (at == 0 || now - at >= MC_WALL_HOOK_REREAD_NS) {
        hook_reread(now);
    }
    return atomic_load_explicit(&hook_offset_ns, memory_order_relaxed);
}

int64_t mc_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec + wall_offset_ns();
}

uint64_t mc_test_env_u64(const char *name, uint64_t max)
{
    const char *s = getenv(name);
    if (!s || !s[0]) {
        return 0;
    }
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') {
            return 0; /* strtoull alone would take "-1" as UINT64_MAX and "5x" as 5 */
        }
    }
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno == ERANGE || v > max) {
        return max; /* all digits: a number, only too large */
    }
    return (uint64_t)v;
}

uint64_t mc_test_hook_u64(_Atomic int64_t *cache, const char *name, uint64_t max, const char *event)
{
    int64_t v = atomic_load_explicit(cache, memory_order_relaxed);
    if (v < 0) {
        v = (int64_t)mc_test_env_u64(name, max < INT64_MAX ? max : INT64_MAX);
        if (v) {
            MC_WARN(event, "%s=%lld (never set %s in production)", name, (long long)v, name);
        }
        atomic_store_explicit(cache, v, memory_order_relaxed);
    }
    return (uint64_t)v;
}

void mc_cond_init_monotonic(pthread_cond_t *cv)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cv, &ca);
    pthread_condattr_destroy(&ca);
}

struct timespec mc_mono_deadline(uint64_t after_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + after_ms * 1000000ull;
    ts.tv_sec += (time_t)(ns / 1000000000ull);
    ts.tv_nsec = (long)(ns % 1000000000ull);
    return ts;
}
