/* test_lincheck_gen.c: the checker on large simulated histories (linearizable by construction). */
#include <criterion/criterion.h>

#include "../fault/lincheck/gen.c"
#include "../fault/lincheck/lincheck.h"

#include "util/clock.h"

static struct mc_lincheck_report gen_and_check(const struct mc_lincheck_gen_opts *g, char **text)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    cr_assert_not_null(f);
    cr_assert_eq(mc_lincheck_generate(f, g), 0);
    fclose(f);
    struct mc_lincheck_history *h;
    cr_assert_eq(mc_lincheck_history_new(&h), 0);
    char err[256];
    for (char *line = buf, *nl; line < buf + len; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(buf + len - line));
        cr_assert_not_null(nl);
        cr_assert_eq(mc_lincheck_add_line(h, line, (size_t)(nl - line), err, sizeof(err)), 0, "%s",
                     err);
    }
    free(buf);
    FILE *out = open_memstream(text, &len);
    struct mc_lincheck_report rep;
    cr_assert_eq(mc_lincheck_check(h, NULL, out, &rep), 0);
    fclose(out);
    mc_lincheck_history_free(h);
    return rep;
}

Test(lincheck_gen, history_100k_ops_checks_fast)
{
    struct mc_lincheck_gen_opts g = {
        .seed = 42, .ops = 100000, .keys = 10, .processes = 8, .info_percent = 2};
    uint64_t t0 = mc_mono_ns();
    char *text = NULL;
    struct mc_lincheck_report rep = gen_and_check(&g, &text);
    double total_s = (double)(mc_mono_ns() - t0) / 1e9;
    cr_log_info("100k-op history: %zu ops kept, search %.3f s, parse+search %.3f s", rep.ops,
                (double)rep.elapsed_ns / 1e9, total_s);
    fprintf(stderr, "lincheck_gen: 100k-op history: search %.3f s, parse+search %.3f s\n",
            (double)rep.elapsed_ns / 1e9, total_s);
    cr_expect_eq(rep.verdict, MC_LINCHECK_LINEARIZABLE, "%s", text);
    cr_expect_eq(rep.keys, 10);
    cr_expect_gt(rep.ops, 80000);
    cr_expect_lt(total_s, 30.0, "took %.1f s", total_s); /* ~0.3 s optimized; loose for ASan */
    free(text);
}

Test(lincheck_gen, violation_at_the_end_of_100k_ops_is_found)
{
    struct mc_lincheck_gen_opts g = {
        .seed = 43, .ops = 100000, .keys = 10, .processes = 8, .info_percent = 2, .violation = 1};
    char *text = NULL;
    struct mc_lincheck_report rep = gen_and_check(&g, &text);
    cr_expect_eq(rep.verdict, MC_LINCHECK_VIOLATION, "%s", text);
    cr_expect_str_eq(rep.failed_key, "k0");
    cr_expect(strstr(text, "get -> \"v") != NULL, "%s", text);
    free(text);
}

/* Many small seeds with many info ops: soundness of the info pruning and bounding. */
Test(lincheck_gen, many_seeds_with_info_ops)
{
    for (uint64_t seed = 1; seed <= 40; seed++) {
        struct mc_lincheck_gen_opts g = {.seed = seed,
                                         .ops = 1500,
                                         .keys = 2,
                                         .processes = 6,
                                         .info_percent = 15,
                                         .violation = (int)(seed & 1)};
        char *text = NULL;
        struct mc_lincheck_report rep = gen_and_check(&g, &text);
        enum mc_lincheck_verdict want =
            g.violation ? MC_LINCHECK_VIOLATION : MC_LINCHECK_LINEARIZABLE;
        cr_expect_eq(rep.verdict, want, "seed %llu: %s", (unsigned long long)seed, text);
        free(text);
    }
}
