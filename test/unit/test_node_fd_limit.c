/* test_node_fd_limit.c: the connection caps are fitted to the descriptor limit
 * (src/node/fd_limit.c, aud18 B1): kept when they fit, lowered in proportion when not, refused when
 * nothing fits. */
#include "metacenter/error.h"
#include "node/fd_limit.h"

#include <criterion/criterion.h>

Test(node_fd_limit, caps_that_fit_are_kept)
{
    uint64_t client = 1000, http = 1024;
    uint64_t reserve = mc_fd_reserve(15);
    cr_assert_eq(reserve, 188, "64 base + 64 inbound links + 4 x 15 peers");
    cr_assert_eq(mc_fd_fit(1000000, reserve, &client, &http), 0);
    cr_assert_eq(client, 1000);
    cr_assert_eq(http, 1024);
    cr_assert_eq(mc_fd_fit(2024 + reserve, reserve, &client, &http), 0);
    cr_assert_eq(client + http, 2024);
}

Test(node_fd_limit, caps_over_the_limit_are_lowered_in_proportion)
{
    uint64_t client = 1000, http = 1024;
    cr_assert_eq(mc_fd_fit(1024, 124, &client, &http), 1);
    cr_assert_eq(client + http, 900);
    cr_assert_eq(client, 900 * 1000 / 2024);
    client = 1000000;
    http = 0; /* no HTTP listener */
    cr_assert_eq(mc_fd_fit(256, 124, &client, &http), 1);
    cr_assert_eq(client, 132);
    cr_assert_eq(http, 0);
    client = 1;
    http = 1024; /* each keeps at least one */
    cr_assert_eq(mc_fd_fit(126, 124, &client, &http), 1);
    cr_assert_eq(client, 1);
    cr_assert_eq(http, 1);
}

Test(node_fd_limit, a_limit_below_the_reserve_is_refused)
{
    uint64_t client = 1000, http = 1024;
    cr_assert_eq(mc_fd_fit(100, 124, &client, &http), MC_ELIMIT);
    cr_assert_eq(mc_fd_fit(125, 124, &client, &http), MC_ELIMIT);
    http = 0;
    cr_assert_eq(mc_fd_fit(125, 124, &client, &http), 1);
    cr_assert_eq(client, 1);
}
