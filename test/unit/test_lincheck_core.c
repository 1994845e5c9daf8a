/* test_lincheck_core.c: the checker on hand-made histories, bad input and its limits. */
#include <criterion/criterion.h>

#include "../fault/lincheck/lincheck.c"

#include <dirent.h>

#define HIST_DIR "test/fault/lincheck/histories"

static struct mc_lincheck_report check_file(const char *path, char **text)
{
    struct mc_lincheck_history *h;
    char err[256] = "";
    cr_assert_eq(mc_lincheck_history_new(&h), 0);
    cr_assert_eq(mc_lincheck_load_file(h, path, err, sizeof(err)), 0, "%s: %s", path, err);
    size_t len;
    FILE *out = open_memstream(text, &len);
    cr_assert_not_null(out);
    struct mc_lincheck_report rep;
    cr_assert_eq(mc_lincheck_check(h, NULL, out, &rep), 0);
    fclose(out);
    mc_lincheck_history_free(h);
    return rep;
}

/* Runs fn on every HIST_DIR file starting with prefix; returns how many. */
static int each_file(const char *prefix, void (*fn)(const char *path))
{
    DIR *d = opendir(HIST_DIR);
    cr_assert_not_null(d, "run from the repository root (%s missing)", HIST_DIR);
    struct dirent *de;
    int n = 0;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix, strlen(prefix)) != 0)
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", HIST_DIR, de->d_name);
        fn(path);
        n++;
    }
    closedir(d);
    return n;
}

static void expect_ok(const char *path)
{
    char *text = NULL;
    struct mc_lincheck_report rep = check_file(path, &text);
    cr_expect_eq(rep.verdict, MC_LINCHECK_LINEARIZABLE, "%s: %s", path, text);
    cr_expect_str_eq(text, "linearizable\n", "%s", path);
    free(text);
}

static void expect_violation(const char *path)
{
    char *text = NULL;
    struct mc_lincheck_report rep = check_file(path, &text);
    cr_expect_eq(rep.verdict, MC_LINCHECK_VIOLATION, "%s: %s", path, text);
    cr_expect(strncmp(text, "not linearizable\nkey ", 21) == 0, "%s: %s", path, text);
    cr_expect(strstr(text, "line ") != NULL, "%s: window names no op: %s", path, text);
    free(text);
}

static void expect_invalid(const char *path)
{
    struct mc_lincheck_history *h;
    char err[256] = "";
    cr_assert_eq(mc_lincheck_history_new(&h), 0);
    cr_expect_eq(mc_lincheck_load_file(h, path, err, sizeof(err)), MC_EINVAL, "%s", path);
    cr_expect(strncmp(err, "line ", 5) == 0, "%s: message does not name the line: %s", path, err);
    mc_lincheck_history_free(h);
}

Test(lincheck_histories, linearizable_files)
{
    cr_assert_geq(each_file("ok_", expect_ok), 8);
}

Test(lincheck_histories, non_linearizable_files)
{
    cr_assert_geq(each_file("bad_", expect_violation), 8);
}

Test(lincheck_histories, invalid_files)
{
    cr_assert_geq(each_file("invalid_", expect_invalid), 3);
}

/* Feed lines to a fresh history; returns the verdict with default limits. */
static enum mc_lincheck_verdict check_lines(const char *const *lines, size_t n,
                                            const struct mc_lincheck_opts *o, char **text)
{
    struct mc_lincheck_history *h;
    char err[256];
    cr_assert_eq(mc_lincheck_history_new(&h), 0);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(mc_lincheck_add_line(h, lines[i], strlen(lines[i]), err, sizeof(err)), 0, "%s",
                     err);
    size_t len;
    FILE *out = open_memstream(text, &len);
    struct mc_lincheck_report rep;
    cr_assert_eq(mc_lincheck_check(h, o, out, &rep), 0);
    fclose(out);
    mc_lincheck_history_free(h);
    return rep.verdict;
}

Test(lincheck_window, names_key_and_stuck_op)
{
    const char *l[] = {
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"acct\",\"value\":\"1\","
        "\"time_ns\":100}",
        "{\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"time_ns\":200}",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"acct\",\"value\":\"2\","
        "\"time_ns\":300}",
        "{\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"time_ns\":400}",
        "{\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"acct\",\"time_ns\":500}",
        "{\"process\":1,\"type\":\"ok\",\"f\":\"get\",\"value\":\"1\",\"time_ns\":600}",
    };
    char *text = NULL;
    cr_assert_eq(check_lines(l, 6, NULL, &text), MC_LINCHECK_VIOLATION);
    cr_expect(strstr(text, "key \"acct\"") != NULL, "%s", text);
    cr_expect(strstr(text, "value at that point: \"2\"") != NULL, "%s", text);
    cr_expect(strstr(text, "* line 5: process 1 get -> \"1\" ok, invoked at 500 ns") != NULL, "%s",
              text);
    free(text);
}

Test(lincheck_limits, per_key_op_limit_gives_unknown)
{
    const char *l[] = {
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"a\",\"value\":\"1\"}",
        "{\"process\":0,\"type\":\"ok\",\"f\":\"put\"}",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"a\"}",
        "{\"process\":0,\"type\":\"ok\",\"f\":\"get\",\"value\":\"1\"}",
    };
    struct mc_lincheck_opts o = {.max_ops_per_key = 1};
    char *text = NULL;
    cr_expect_eq(check_lines(l, 4, &o, &text), MC_LINCHECK_UNKNOWN, "%s", text);
    cr_expect(strncmp(text, "unknown\nper-key op limit", 24) == 0, "%s", text);
    free(text);
    o.max_ops_per_key = 2;
    cr_expect_eq(check_lines(l, 4, &o, &text), MC_LINCHECK_LINEARIZABLE, "%s", text);
    free(text);
}

Test(lincheck_limits, memo_limit_gives_unknown)
{
    /* 16 concurrent puts and a read no order explains: the search must try many subsets. */
    char buf[40][128];
    const char *l[40];
    size_t n = 0;
    for (int p = 0; p < 16; p++) {
        snprintf(
            buf[n], sizeof(buf[n]),
            "{\"process\":%d,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\",\"value\":\"%d\"}", p,
            p);
        n++;
    }
    for (int p = 0; p < 16; p++) {
        snprintf(buf[n], sizeof(buf[n]), "{\"process\":%d,\"type\":\"ok\",\"f\":\"put\"}", p);
        n++;
    }
    snprintf(buf[n++], sizeof(buf[0]),
             "{\"process\":99,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\"}");
    snprintf(buf[n++], sizeof(buf[0]),
             "{\"process\":99,\"type\":\"ok\",\"f\":\"get\",\"value\":null}");
    for (size_t i = 0; i < n; i++)
        l[i] = buf[i];
    struct mc_lincheck_opts o = {.max_cache_entries = 1000};
    char *text = NULL;
    cr_expect_eq(check_lines(l, n, &o, &text), MC_LINCHECK_UNKNOWN, "%s", text);
    free(text);
    /* with room to finish it proves the violation */
    cr_expect_eq(check_lines(l, n, NULL, &text), MC_LINCHECK_VIOLATION, "%s", text);
    free(text);
}

Test(lincheck_model, info_write_may_apply_late_or_never)
{
    const char *base[] = {
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"value\":\"x\","
        "\"expected\":null}",
        "{\"process\":0,\"type\":\"info\",\"f\":\"cas\"}",
        "{\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\"}",
        "{\"process\":1,\"type\":\"ok\",\"f\":\"get\",\"value\":null}",
        "{\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\"}",
        "{\"process\":1,\"type\":\"ok\",\"f\":\"get\",\"value\":\"x\"}",
    };
    char *text = NULL;
    cr_expect_eq(check_lines(base, 6, NULL, &text), MC_LINCHECK_LINEARIZABLE, "%s", text);
    free(text);
    cr_expect_eq(check_lines(base, 4, NULL, &text), MC_LINCHECK_LINEARIZABLE, "%s", text);
    free(text);
    /* but once seen, it cannot be undone */
    const char *flap[] = {base[0], base[1], base[4], base[5], base[2], base[3]};
    cr_expect_eq(check_lines(flap, 6, NULL, &text), MC_LINCHECK_VIOLATION, "%s", text);
    free(text);
}

Test(lincheck_model, info_cas_cannot_apply_from_wrong_value)
{
    const char *l[] = {
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k\",\"value\":\"a\"}",
        "{\"process\":0,\"type\":\"ok\",\"f\":\"put\"}",
        "{\"process\":0,\"type\":\"invoke\",\"f\":\"cas\",\"key\":\"k\",\"value\":\"c\","
        "\"expected\":\"b\"}",
        "{\"process\":0,\"type\":\"info\",\"f\":\"cas\"}",
        "{\"process\":1,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k\"}",
        "{\"process\":1,\"type\":\"ok\",\"f\":\"get\",\"value\":\"c\"}",
    };
    char *text = NULL;
    cr_expect_eq(check_lines(l, 6, NULL, &text), MC_LINCHECK_VIOLATION, "%s", text);
    free(text);
}
