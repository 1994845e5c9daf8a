/* test_node_transferee.c: the voter a leader hands leadership to (graceful stop, the hand-off
 * before its periodic image, removing itself) is one it has heard from (src/node/node.c
 * node_pick_transferee). */
#include <criterion/criterion.h>

#include "node/node_internal.h"

#include <stdlib.h>

#define WINDOW 100 /* ticks: one election timeout */

static struct mc_raft_status *status_at(uint64_t tick)
{
    struct mc_raft_status *st = calloc(1, sizeof(*st));
    cr_assert_not_null(st);
    st->id = 1;
    st->role = MC_RAFT_LEADER;
    st->tick = tick;
    return st;
}

static void add_peer(struct mc_raft_status *st, uint64_t id, uint64_t match, uint64_t heard_tick,
                     bool learner)
{
    struct mc_raft_peer_status *p = &st->peers[st->n_peers++];
    p->id = id;
    p->match = match;
    p->last_heard_tick = heard_tick;
    p->recent_active = st->tick - heard_tick <= WINDOW;
    p->is_learner = learner;
}

/* A stopped voter keeps the highest match it ever acknowledged; a transfer to it cannot finish,
 * so the image waited two election timeouts before it was made as leader after all. */
Test(node_transferee, a_voter_not_heard_from_is_skipped_whatever_its_match)
{
    struct mc_raft_status *st = status_at(1000);
    add_peer(st, 2, 500, 1000 - 3 * WINDOW, false); /* down, most caught up */
    add_peer(st, 3, 480, 998, false);
    uint64_t to = node_pick_transferee(st, WINDOW);
    cr_assert_eq(to, 3, "picked %llu: a voter last heard %d ticks ago (window %d)",
                 (unsigned long long)to, 3 * WINDOW, WINDOW);
    free(st);
}

/* No voter heard from: none, so the caller makes its image as leader at once (or stops without
 * a transfer) instead of waiting for a transfer that cannot finish. */
Test(node_transferee, none_when_no_voter_was_heard_from)
{
    struct mc_raft_status *st = status_at(1000);
    add_peer(st, 2, 500, 1000 - WINDOW - 1, false);
    add_peer(st, 3, 400, 0, false);
    add_peer(st, 4, 900, 999, true); /* a learner cannot lead */
    uint64_t to = node_pick_transferee(st, WINDOW);
    cr_assert_eq(to, 0, "picked %llu with no voter heard from", (unsigned long long)to);
    free(st);
}

/* Heard from within the window, even just after a check-quorum boundary cleared recent_active:
 * the most caught up, and on a tie the one heard from last. */
Test(node_transferee, most_caught_up_of_those_heard_from)
{
    struct mc_raft_status *st = status_at(1000);
    add_peer(st, 2, 700, 1000 - WINDOW, false);
    add_peer(st, 3, 700, 990, false);
    add_peer(st, 4, 600, 1000, false);
    for (uint32_t i = 0; i < st->n_peers; i++) {
        st->peers[i].recent_active = false; /* the window just turned over */
    }
    cr_assert_eq(node_pick_transferee(st, WINDOW), 3);
    st->peers[0].match = 701;
    cr_assert_eq(node_pick_transferee(st, WINDOW), 2);
    free(st);
}
