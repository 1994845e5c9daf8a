/* clock.h: monotonic and wall clocks in ns/us/ms (leases use the monotonic one only), and the
 * reader of the MC_TEST_* test hooks' environment variables. */
#ifndef MC_UTIL_CLOCK_H
#define MC_UTIL_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

uint64_t mc_mono_ns(void);
uint64_t mc_mono_us(void);
uint64_t mc_mono_ms(void);
/* Wall clock, ns since the epoch: only for timestamps carried in ops (mod_time_ns). Test hook:
 * MC_TEST_WALL_CLOCK_FILE=PATH adds the offset (seconds, signed) written in PATH (clock.c).
 * Its sibling MC_TEST_APPLY_DELAY_MS (a node applies committed entries late) is in
 * node/node_ready.c. */
int64_t mc_wall_ns(void);

/* A condition variable whose timed waits count on CLOCK_MONOTONIC (a wall-clock step neither
 * cuts nor stretches them), and the absolute time after_ms from now on that clock, for its
 * pthread_cond_timedwait (the WAL thread, the trash thread). */
void mc_cond_init_monotonic(pthread_cond_t *cv);
struct timespec mc_mono_deadline(uint64_t after_ms);

/* Test hooks (MC_TEST_APPLY_DELAY_MS and its siblings): the environment variable name as a
 * decimal number, clamped to max; 0 when unset, empty or not a plain decimal number (a sign,
 * a space or a trailing letter make it not one). Only for MC_TEST_* hooks: a setting a user
 * makes goes through the options, which say what is wrong with it. */
uint64_t mc_test_env_u64(const char *name, uint64_t max);
/* The same, read once into *cache (a static initialised to -1; safe from any thread): the first
 * read of a set hook logs a warning `event` (name, value, "never set in production"), so a run
 * with a hook on says so. Returns the value (0: unset). */
uint64_t mc_test_hook_u64(_Atomic int64_t *cache, const char *name, uint64_t max,
                          const char *event);

#endif
