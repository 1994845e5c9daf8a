/* test_node_snap_users.c: the node's table of snapshot files in use (node_snap_use/unuse in
 * src/node/node_chunk_read.c): bounded, counted by name, MC_EBUSY once every slot holds a file. */
#include <criterion/criterion.h>

#include "metacenter/error.h"
#include "node/node_internal.h"

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
