/* test_util.c: unit tests for src/util (codec, errors, histogram, checksum, rand, log limit,
 * test-hook environment). */
#include <criterion/criterion.h>

#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/clock.h"
#include "util/codec.h"
#include "util/histogram.h"
#include "util/log.h"
#include "util/rand.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

Test(codec, round_trip)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    mc_wbuf_u8(&w, 7);
    mc_wbuf_u16(&w, 0xbeef);
    mc_wbuf_u32(&w, 0xdeadbeef);
    mc_wbuf_u64(&w, 0x0123456789abcdefull);
    mc_wbuf_i64(&w, -5);
    mc_wbuf_str(&w, "hello");
    cr_assert_eq(mc_wbuf_error(&w), 0);

    struct mc_rbuf r;
    mc_rbuf_init(&r, w.data, w.len);
    cr_assert_eq(mc_rbuf_u8(&r), 7);
    cr_assert_eq(mc_rbuf_u16(&r), 0xbeef);
    cr_assert_eq(mc_rbuf_u32(&r), 0xdeadbeef);
    cr_assert_eq(mc_rbuf_u64(&r), 0x0123456789abcdefull);
    cr_assert_eq(mc_rbuf_i64(&r), -5);
    size_t n;
    const uint8_t *s = mc_rbuf_bytes(&r, 100, &n);
    cr_assert_eq(n, 5);
    cr_assert(memcmp(s, "hello", 5) == 0);
    cr_assert_eq(mc_rbuf_error(&r), 0);
    cr_assert_eq(mc_rbuf_remaining(&r), 0);
    mc_wbuf_free(&w);
}

Test(codec, truncated_input_is_an_error)
{
    uint8_t buf[3] = {1, 2, 3};
    struct mc_rbuf r;
    mc_rbuf_init(&r, buf, sizeof(buf));
    cr_assert_eq(mc_rbuf_u32(&r), 0);
    cr_assert_eq(mc_rbuf_error(&r), MC_EPROTO);
}

Test(codec, length_over_max_is_an_error)
{
    uint8_t buf[8] = {200, 0, 0, 0, 'a', 'b', 'c', 'd'};
    struct mc_rbuf r;
    mc_rbuf_init(&r, buf, sizeof(buf));
    size_t n;
    cr_assert_null(mc_rbuf_bytes(&r, 100, &n));
    cr_assert_eq(mc_rbuf_error(&r), MC_EPROTO);
}

Test(codec, writer_limit)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 16);
    mc_wbuf_u64(&w, 1);
    mc_wbuf_u64(&w, 2);
    cr_assert_eq(mc_wbuf_error(&w), 0);
    mc_wbuf_u8(&w, 3);
    cr_assert_eq(mc_wbuf_error(&w), MC_ETOOLARGE);
    mc_wbuf_free(&w);
}

/* mc_fmt_u64 / mc_fmt_i64 print what printf prints, at the edges and around powers of ten. */
Test(codec, decimal_text_matches_printf)
{
    const uint64_t big = (uint64_t)INT64_MAX;
    const uint64_t us[] = {
        0, 1, 9, 10, 99, 100, 4096, 999999999, 1000000000, big, UINT64_MAX - 1, UINT64_MAX};
    const int64_t is[] = {0, -1, 1, -9, -10, 12345, -12345, INT64_MAX, INT64_MIN + 1, INT64_MIN};
    char got[MC_FMT_INT_MAX + 1], want[32];
    for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
        size_t n = mc_fmt_u64(got, us[i]);
        got[n] = 0;
        snprintf(want, sizeof want, "%llu", (unsigned long long)us[i]);
        cr_assert_str_eq(got, want);
    }
    for (size_t i = 0; i < sizeof(is) / sizeof(is[0]); i++) {
        size_t n = mc_fmt_i64(got, is[i]);
        got[n] = 0;
        snprintf(want, sizeof want, "%lld", (long long)is[i]);
        cr_assert_str_eq(got, want);
    }
}

Test(error, names_and_status)
{
    cr_assert_str_eq(mc_error_name(MC_ENOKEY), "NoSuchKey");
    cr_assert_eq(mc_error_http_status(MC_ENOKEY), 404);
    cr_assert_eq(mc_error_http_status(MC_EPRECOND), 412);
    cr_assert_eq(mc_error_from_name("BucketNotEmpty"), MC_EBUCKETNOTEMPTY);
    cr_assert_str_eq(mc_error_name(-9999), "UnknownError");
}

Test(histogram, quantiles_within_error)
{
    struct mc_histogram h;
    mc_hist_reset(&h);
    for (uint64_t v = 1; v <= 10000; v++) {
        mc_hist_record(&h, v);
    }
    uint64_t p50 = mc_hist_quantile(&h, 0.5);
    uint64_t p99 = mc_hist_quantile(&h, 0.99);
    cr_assert(p50 >= 5000 && p50 <= 5000 * 1.07, "p50=%lu", (unsigned long)p50);
    cr_assert(p99 >= 9900 && p99 <= 10000, "p99=%lu", (unsigned long)p99);
    cr_assert_eq(mc_hist_quantile(&h, 1.0), 10000);
    cr_assert_eq(h.min, 1);
    cr_assert_eq(mc_hist_count_le(&h, 15), 15);
    mc_hist_record(&h, UINT64_MAX);
    cr_assert_eq(mc_hist_quantile(&h, 1.0), UINT64_MAX);
}

Test(checksum, stable_and_streaming_matches)
{
    const char *s = "metacenter";
    uint64_t a = mc_checksum64(s, strlen(s));
    struct mc_digest d;
    cr_assert_eq(mc_digest_init(&d), 0);
    mc_digest_update(&d, "meta", 4);
    mc_digest_update(&d, "center", 6);
    cr_assert_eq(mc_digest_final(&d), a);
    cr_assert_neq(a, mc_checksum64("metacentes", 10));
}

Test(rand, deterministic)
{
    struct mc_rand a, b;
    mc_rand_seed(&a, 42);
    mc_rand_seed(&b, 42);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(mc_rand_next(&a), mc_rand_next(&b));
    }
    for (int i = 0; i < 1000; i++) {
        cr_assert_lt(mc_rand_below(&a, 7), 7);
    }
}

/* The first event logs (also at clock 0); later ones within MC_LOG_LIMIT_MS are suppressed and
 * counted; the next allowed line reports them and restarts the count. */
Test(log_limit, once_a_second_with_the_suppressed_count)
{
    struct mc_log_limit l = {0};
    uint64_t sup = 99;
    cr_assert(mc_log_limit_allow(&l, 0, &sup));
    cr_assert_eq(sup, 0);
    for (uint64_t t = 1; t < MC_LOG_LIMIT_MS; t += 100) {
        cr_assert_not(mc_log_limit_allow(&l, t, &sup), "allowed at %llu ms", (unsigned long long)t);
    }
    cr_assert_not(mc_log_limit_allow(&l, MC_LOG_LIMIT_MS - 1, NULL));
    cr_assert(mc_log_limit_allow(&l, MC_LOG_LIMIT_MS, &sup));
    cr_assert_eq(sup, 11, "suppressed %llu", (unsigned long long)sup);
    /* a quiet spell: the next event logs at once, nothing suppressed */
    cr_assert(mc_log_limit_allow(&l, 10 * MC_LOG_LIMIT_MS, &sup));
    cr_assert_eq(sup, 0);
    cr_assert_not(mc_log_limit_allow(&l, 10 * MC_LOG_LIMIT_MS, &sup));
    cr_assert(mc_log_limit_allow(&l, 11 * MC_LOG_LIMIT_MS + 5, NULL));
    cr_assert_eq(l.suppressed, 0);
    /* a clock behind the last line (misuse) logs rather than going silent */
    cr_assert(mc_log_limit_allow(&l, 5, &sup));
}

#define ENV_U64_NAME "MC_TEST_UNIT_ENV_U64"

static uint64_t env_u64_of(const char *value, uint64_t max)
{
    cr_assert_eq(setenv(ENV_U64_NAME, value, 1), 0);
    return mc_test_env_u64(ENV_U64_NAME, max);
}

/* Unset, empty and anything but plain digits read as 0 (the hook off); numbers clamp to max,
 * including those past UINT64_MAX. */
Test(test_env, u64_parses_clamps_and_ignores_garbage)
{
    cr_assert_eq(unsetenv(ENV_U64_NAME), 0);
    cr_assert_eq(mc_test_env_u64(ENV_U64_NAME, 100), 0);
    cr_assert_eq(env_u64_of("", 100), 0);
    cr_assert_eq(env_u64_of("0", 100), 0);
    cr_assert_eq(env_u64_of("42", 100), 42);
    cr_assert_eq(env_u64_of("100", 100), 100);
    cr_assert_eq(env_u64_of("101", 100), 100);
    cr_assert_eq(env_u64_of("99999999999999999999999", 100), 100);
    cr_assert_eq(env_u64_of("18446744073709551615", UINT64_MAX), UINT64_MAX);
    cr_assert_eq(env_u64_of("-1", 100), 0);
    cr_assert_eq(env_u64_of("+5", 100), 0);
    cr_assert_eq(env_u64_of(" 5", 100), 0);
    cr_assert_eq(env_u64_of("5ms", 100), 0);
    cr_assert_eq(env_u64_of("abc", 100), 0);
}

/* A hook reads its variable once: later changes do not count (the cache holds the first read),
 * and a value past INT64_MAX is clamped so the -1 "not read" mark stays apart. */
Test(test_env, hook_reads_once_and_caches)
{
    static _Atomic int64_t cache = -1;
    cr_assert_eq(setenv(ENV_U64_NAME, "250", 1), 0);
    cr_assert_eq(mc_test_hook_u64(&cache, ENV_U64_NAME, 1000, "test_hook_unit"), 250);
    cr_assert_eq(setenv(ENV_U64_NAME, "7", 1), 0);
    cr_assert_eq(mc_test_hook_u64(&cache, ENV_U64_NAME, 1000, "test_hook_unit"), 250,
                 "a second read took the variable again");
    static _Atomic int64_t unset = -1;
    cr_assert_eq(unsetenv(ENV_U64_NAME), 0);
    cr_assert_eq(mc_test_hook_u64(&unset, ENV_U64_NAME, 1000, "test_hook_unit"), 0);
    cr_assert_eq(unset, 0, "an unset hook is cached as 0, not read again");
    static _Atomic int64_t big = -1;
    cr_assert_eq(setenv(ENV_U64_NAME, "18446744073709551615", 1), 0);
    cr_assert_eq(mc_test_hook_u64(&big, ENV_U64_NAME, UINT64_MAX, "test_hook_unit"),
                 (uint64_t)INT64_MAX);
    cr_assert_eq(unsetenv(ENV_U64_NAME), 0);
}
