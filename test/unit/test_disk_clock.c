/* test_disk_clock.c: disk-space write admission (node/disk_space.c) and the test-only wall-clock
 * offset hook (util/clock.c). Criterion runs each test in its own process, so the hook's
 * process-wide state starts fresh in each. */
#include <criterion/criterion.h>

#include "node/disk_space.h"
#include "util/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

Test(disk_space, off_and_thresholds)
{
    struct mc_disk_space d;
    mc_disk_space_init(&d, 0);
    cr_assert(!mc_disk_space_low(&d, "/tmp", 1000), "reserve 0 turns the check off");
    mc_disk_space_init(&d, 1);
    cr_assert(!mc_disk_space_low(&d, "/tmp", 1000), "1 byte free is always there");
    cr_assert(d.free_bytes > 0);
    mc_disk_space_init(&d, UINT64_MAX / 2);
    cr_assert(mc_disk_space_low(&d, "/tmp", 1000), "no disk has 8 EiB free");
}

Test(disk_space, cached_between_checks_and_errors_keep_the_answer)
{
    struct mc_disk_space d;
    mc_disk_space_init(&d, UINT64_MAX / 2);
    cr_assert(mc_disk_space_low(&d, "/tmp", 1000));
    d.reserve_bytes = 1; /* plenty of space now, but within the cache window */
    cr_assert(mc_disk_space_low(&d, "/tmp", 1000 + MC_DISK_SPACE_CHECK_MS - 1));
    cr_assert(!mc_disk_space_low(&d, "/tmp", 1000 + MC_DISK_SPACE_CHECK_MS));
    /* statvfs failing (no such dir) keeps the last answer instead of flapping */
    cr_assert(!mc_disk_space_low(&d, "/nonexistent/mc-disk", 5000));
}

static int64_t real_wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static void write_offset(const char *path, const char *s)
{
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs(s, f);
    fclose(f);
}

Test(clock_hook, off_without_the_env_var)
{
    unsetenv("MC_TEST_WALL_CLOCK_FILE");
    int64_t d = mc_wall_ns() - real_wall_ns();
    cr_assert(d < 1000000000ll && d > -1000000000ll);
}

Test(clock_hook, offset_follows_the_file_monotonic_does_not)
{
    char path[] = "/tmp/mc-clock-hook-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    write_offset(path, "3600\n");
    setenv("MC_TEST_WALL_CLOCK_FILE", path, 1);
    uint64_t m0 = mc_mono_ns();
    int64_t d = mc_wall_ns() - real_wall_ns();
    cr_assert(d > 3599000000000ll && d < 3601000000000ll, "offset %lld", (long long)d);
    write_offset(path, "-86400\n");
    usleep(50000); /* past the 20 ms re-read interval */
    d = mc_wall_ns() - real_wall_ns();
    cr_assert(d < -86399000000000ll && d > -86401000000000ll, "offset %lld", (long long)d);
    uint64_t m1 = mc_mono_ns();
    cr_assert(m1 > m0 && m1 - m0 < 5000000000ull, "the monotonic clock did not jump");
    unlink(path);
}
