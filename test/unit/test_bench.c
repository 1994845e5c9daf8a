/* test_bench.c: the load generator's pure helpers: which time a reply's latency ends at. */
#include <criterion/criterion.h>

#include "loadgen/bench.h"
#include "util/clock.h"

/* The kernel's receive stamp ends the latency when it is at or after the time the request fell
 * due: the reply may sit in the socket a while before the generator reads it. */
Test(bench, reply_time_is_the_receive_stamp_when_it_is_not_before_the_start)
{
    cr_assert_eq(mc_bench_reply_ns(5000, 1000, 9000), 5000, "a later stamp stands");
    cr_assert_eq(mc_bench_reply_ns(1000, 1000, 9000), 1000, "a stamp at the start stands");
}

/* A stamp earlier than the request's start (the wall clock stepped forward between the packet
 * and the read, and the stamp is moved onto the monotonic clock through it) would make a latency
 * below zero: the read time stands instead, and the clock now when there is none. */
Test(bench, reply_time_ignores_a_receive_stamp_before_the_start)
{
    cr_assert_eq(mc_bench_reply_ns(999, 1000, 9000), 9000,
                 "a stamp before the start was taken: %llu",
                 (unsigned long long)mc_bench_reply_ns(999, 1000, 9000));
    cr_assert_eq(mc_bench_reply_ns(0, 1000, 9000), 9000, "no stamp: the read time");
    uint64_t before = mc_mono_ns();
    uint64_t got = mc_bench_reply_ns(999, before, 0);
    cr_assert_geq(got, before, "no read time: the clock now (got %llu, before %llu)",
                  (unsigned long long)got, (unsigned long long)before);
    cr_assert_leq(got, mc_mono_ns());
}
