/* test_cli_args.c: the CLI's argument parser (src/cli/args.c is compiled in here because the
 * Makefile keeps src/cli out of the library). */
#include "../../src/cli/args.c"

#include <criterion/criterion.h>

static const struct mc_flag_spec g[] = {
    {"json", 0, 0, NULL, "json"},
    {"help", 0, 0, NULL, "help"},
    {"data-dir", 1, 0, "DIR", "dir"},
    {NULL, 0, 0, NULL, NULL},
};
static const struct mc_flag_spec c[] = {
    {"meta", 1, 1, "K=V", "meta"},
    {"size", 1, 0, "N", "size"},
    {NULL, 0, 0, NULL, NULL},
};
static const struct mc_flag_spec *const specs[] = {g, c};

static int parse(struct mc_args *a, char **argv)
{
    int argc = 0;
    while (argv[argc]) {
        argc++;
    }
    return mc_args_parse(a, argc, argv, specs, 2);
}

Test(cli_args, flags_after_positionals_and_equals_form)
{
    struct mc_args a;
    char *argv[] = {"put", "b", "--size", "7", "k", "--data-dir=/x", "--json", NULL};
    cr_assert_eq(parse(&a, argv), 0);
    cr_assert_eq(a.npos, 3);
    cr_assert_str_eq(a.pos[2], "k");
    cr_assert_str_eq(mc_args_get(&a, "size"), "7");
    cr_assert_str_eq(mc_args_get(&a, "data-dir"), "/x");
    cr_assert(mc_args_has(&a, "json"));
    cr_assert(!mc_args_has(&a, "help"));
}

Test(cli_args, repeatable_and_double_dash)
{
    struct mc_args a;
    char *argv[] = {"--meta", "a=1", "--meta=b=2", "--", "--size", "-", NULL};
    cr_assert_eq(parse(&a, argv), 0);
    cr_assert_eq(a.nflags, 2);
    cr_assert_str_eq(a.flags[1].value, "b=2");
    cr_assert_eq(a.npos, 2);
    cr_assert_str_eq(a.pos[0], "--size");
    cr_assert_str_eq(a.pos[1], "-");
}

Test(cli_args, errors)
{
    struct mc_args a;
    char *unknown[] = {"--nope", NULL};
    cr_assert_eq(parse(&a, unknown), MC_EINVAL);
    cr_assert(strstr(a.err, "--nope"));
    char *missing[] = {"x", "--size", NULL};
    cr_assert_eq(parse(&a, missing), MC_EINVAL);
    char *twice[] = {"--size", "1", "--size", "2", NULL};
    cr_assert_eq(parse(&a, twice), MC_EINVAL);
    char *boolval[] = {"--json=1", NULL};
    cr_assert_eq(parse(&a, boolval), MC_EINVAL);
    char *dash[] = {"-x", NULL};
    cr_assert_eq(parse(&a, dash), MC_EINVAL);
    char *h[] = {"-h", NULL};
    cr_assert_eq(parse(&a, h), 0);
    cr_assert(mc_args_has(&a, "help"));
}

Test(cli_args, too_many_positionals)
{
    struct mc_args a;
    char *argv[MC_ARGS_MAX_POS + 2];
    for (int i = 0; i <= MC_ARGS_MAX_POS; i++) {
        argv[i] = "p";
    }
    argv[MC_ARGS_MAX_POS + 1] = NULL;
    cr_assert_eq(parse(&a, argv), MC_EINVAL);
}

Test(cli_args, strict_numbers)
{
    uint64_t v = 0;
    cr_assert_eq(mc_args_parse_u64("42", 1, 100, &v), 0);
    cr_assert_eq(v, 42);
    cr_assert_eq(mc_args_parse_u64("0", 1, 100, &v), MC_EINVAL);
    cr_assert_eq(mc_args_parse_u64("101", 1, 100, &v), MC_EINVAL);
    cr_assert_eq(mc_args_parse_u64("-1", 0, 100, &v), MC_EINVAL);
    cr_assert_eq(mc_args_parse_u64("+1", 0, 100, &v), MC_EINVAL);
    cr_assert_eq(mc_args_parse_u64(" 1", 0, 100, &v), MC_EINVAL);
    cr_assert_eq(mc_args_parse_u64("1x", 0, 100, &v), MC_EINVAL);
    cr_assert_eq(mc_args_parse_u64("", 0, 100, &v), MC_EINVAL);
    cr_assert_eq(mc_args_parse_u64("99999999999999999999999", 0, UINT64_MAX, &v), MC_EINVAL);
    cr_assert_eq(mc_args_parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
    cr_assert_eq(v, UINT64_MAX);
}
