/* test_node_snap_users.c: the node's table of snapshot files in use (node_snap_use/unuse in
 * src/node/node_chunk_read.c): bounded, counted by name, MC_EBUSY once every slot holds a file;
 * a file a prune skipped is pruned again once its last holder lets it go. */
#include <criterion/criterion.h>

#include "metacenter/error.h"
#include "node/node_internal.h"
#include "storage_test_util.h"

#include <stdio.h>
#include <stdlib.h>

/* Only the table is set up: node_snap_use and node_snap_unuse touch nothing else of the node. */
static struct mc_node *users_node(void)
{
    struct mc_node *n = calloc(1, sizeof(*n));
    cr_assert_not_null(n);
    cr_assert_eq(pthread_mutex_init(&n->snap_users.mu, NULL), 0);
    return n;
}

static void users_node_free(struct mc_node *n)
{
    pthread_mutex_destroy(&n->snap_users.mu);
    free(n);
}

static void snap_path(char *out, size_t cap, int i)
{
    snprintf(out, cap, "/data/snap/snap-%016d-0000000000000001.snap", i);
}

/* A full table refuses a new file with MC_EBUSY (the caller looks up again later) instead of
 * letting a prune take a file a stream is about to open; a file already in use still takes one
 * more user, and a freed slot takes a new file. */
Test(node_snap_users, a_full_table_refuses_a_new_file_with_ebusy)
{
    struct mc_node *n = users_node();
    char p[MC_DATADIR_PATH_MAX];
    for (int i = 0; i < NODE_SNAP_USERS_MAX; i++) {
        snap_path(p, sizeof(p), i);
        cr_assert_eq(node_snap_use(n, p), 0, "slot %d of %d refused", i, NODE_SNAP_USERS_MAX);
    }
    snap_path(p, sizeof(p), NODE_SNAP_USERS_MAX);
    int rc = node_snap_use(n, p);
    cr_assert_eq(rc, MC_EBUSY, "a file past the %d slots: %s, not Busy", NODE_SNAP_USERS_MAX,
                 mc_error_name(rc));
    snap_path(p, sizeof(p), 0);
    cr_assert_eq(node_snap_use(n, p), 0, "a second user of a file in use needs no new slot");
    cr_assert_eq(n->snap_users.e[0].refs, 2);
    node_snap_unuse(n, p);
    node_snap_unuse(n, p); /* slot 0 is free again */
    snap_path(p, sizeof(p), NODE_SNAP_USERS_MAX);
    cr_assert_eq(node_snap_use(n, p), 0, "a freed slot was not reused");
    snap_path(p, sizeof(p), NODE_SNAP_USERS_MAX + 1);
    cr_assert_eq(node_snap_use(n, p), MC_EBUSY, "full again");
    users_node_free(n);
}

/* A name longer than a slot holds is refused (MC_EINVAL), never cut to a prefix another file
 * could share. */
Test(node_snap_users, a_name_longer_than_a_slot_is_refused)
{
    struct mc_node *n = users_node();
    char p[256];
    snprintf(p, sizeof(p), "/data/snap/%0*d.snap", (int)sizeof(n->snap_users.e[0].name), 7);
    cr_assert_eq(node_snap_use(n, p), MC_EINVAL);
    users_node_free(n);
}

/* A prune that skips a file in use asks for another once its last holder lets it go (session
 * 18): the last unuse sets prune_due, and node_snap_prune_due (the loop's tick) takes the file
 * then, not with the next snapshot or install. A file no prune skipped asks for nothing (no
 * directory scan at every stream's end), nor does an unuse that leaves another holder; while a
 * snapshot job runs the request waits for it. */
Test(node_snap_users, the_last_unuse_of_a_deferred_file_prunes_it_again)
{
    struct mc_node *n = users_node();
    char root[64];
    st_tmpdir(root, sizeof(root));
    snprintf(n->snapdir, sizeof(n->snapdir), "%s/snap", root);
    cr_assert_eq(mkdir(n->snapdir, 0755), 0);
    static struct mc_snap_info s[4];
    for (int i = 1; i <= 3; i++) {
        cr_assert_eq(mc_snap_create(n->snapdir, NULL, (uint64_t)i, 1, NULL, 0, NULL, NULL, &s[i]),
                     0);
    }
    node_snap_use(n, s[3].path); /* never skipped (kept): its end asks for no prune */
    node_snap_unuse(n, s[3].path);
    cr_assert_not(atomic_load(&n->snap_users.prune_due));
    node_snap_use(n, s[1].path); /* two holders of the oldest file */
    node_snap_use(n, s[1].path);
    cr_assert_eq(node_snap_prune(n), 0, "keeps 3 and 2; 1 is in use: deferred, not taken");
    cr_assert_eq(access(s[1].path, F_OK), 0, "a file in use was pruned");
    node_snap_prune_due(n);
    cr_assert_eq(access(s[1].path, F_OK), 0);
    node_snap_unuse(n, s[1].path);
    cr_assert_not(atomic_load(&n->snap_users.prune_due), "one holder is left");
    node_snap_unuse(n, s[1].path);
    cr_assert(atomic_load(&n->snap_users.prune_due), "the last holder is gone: prune again");
    n->snapshot_running = true; /* its job prunes at its end: the request waits */
    node_snap_prune_due(n);
    cr_assert_eq(access(s[1].path, F_OK), 0);
    cr_assert(atomic_load(&n->snap_users.prune_due));
    n->snapshot_running = false;
    node_snap_prune_due(n);
    cr_assert_neq(access(s[1].path, F_OK), 0, "the deferred file is still there");
    cr_assert_not(atomic_load(&n->snap_users.prune_due));
    cr_assert_eq(access(s[2].path, F_OK), 0);
    cr_assert_eq(access(s[3].path, F_OK), 0);
    node_snap_use(n, s[1].path); /* a new file in the freed slot is not deferred */
    node_snap_unuse(n, s[1].path);
    cr_assert_not(atomic_load(&n->snap_users.prune_due));
    st_rmtree(root);
    users_node_free(n);
}
