/* test_node_snap_hold.c: a follower's SNAPSHOT message on the loop (node_ready.c,
 * node_snapshot.c, node_check.c): a held message replayed later is not leader contact (rev18
 * H3); from its step to the ready that installs it, an admin CHECK gets Busy (rev18 H1). */
#include <criterion/criterion.h>

#include "metacenter/error.h"
#include "net/peer.h"
#include "node/node_internal.h"
#include "raft_test_util.h"
#include "storage_test_util.h"
#include "util/codec.h"

#include <stdio.h>
#include <stdlib.h>

#define SNAP_INDEX 10
#define SNAP_TERM  1
#define CONTACT_MS 1 /* a contact time no step would write (node_now_ms is monotonic, > 1) */

/* Follower 2 of {1, 2, 3} that has received the image (SNAP_INDEX, SNAP_TERM) whole: only what
 * node_on_peer_frame, the hold and the replay touch is set up. */
struct fixture {
    struct mc_node *n;
    char root[64];
};

static void fixture_init(struct fixture *f)
{
    f->n = calloc(1, sizeof(*f->n));
    cr_assert_not_null(f->n);
    struct mc_node *n = f->n;
    n->id = 2;
    struct mc_raft_config c = cfg3(2);
    cr_assert_eq(mc_raft_create(&c, &n->raft), 0);
    st_tmpdir(f->root, sizeof(f->root));
    snprintf(n->recv_done_path, sizeof(n->recv_done_path), "%s/image.snap", f->root);
    FILE *fp = fopen(n->recv_done_path, "w");
    cr_assert_not_null(fp);
    fclose(fp);
    n->recv_done_index = SNAP_INDEX;
    n->recv_done_term = SNAP_TERM;
}

static void fixture_free(struct fixture *f)
{
    free(f->n->snap_held.msg);
    mc_raft_destroy(f->n->raft);
    free(f->n);
    st_rmtree(f->root);
}

/* The leader's frame of a message of type type (from 1, term SNAP_TERM) into w. */
static void leader_frame(struct mc_wbuf *w, uint8_t type)
{
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.from = 1, m.to = 2, m.term = SNAP_TERM;
    if (type == MC_RAFT_MSG_SNAPSHOT) {
        m.snapshot.index = SNAP_INDEX;
        m.snapshot.term = SNAP_TERM;
        m.snapshot.conf.n_voters = 3;
        m.snapshot.conf.voters[0] = 1, m.snapshot.conf.voters[1] = 2;
        m.snapshot.conf.voters[2] = 3;
    }
    mc_wbuf_init(w, 1 << 16);
    cr_assert_eq(mc_raft_msg_encode(&m, w), 0);
    cr_assert_eq(mc_wbuf_error(w), 0);
}

static void deliver(struct mc_node *n, uint8_t type)
{
    struct mc_wbuf w;
    leader_frame(&w, type);
    node_on_peer_frame(n, 1, MC_PEER_RAFT, w.data, w.len);
    mc_wbuf_free(&w);
}

/* A SNAPSHOT message held while a snapshot job ran, replayed when it ends, is stepped (Raft
 * then has the install to hand out) but does not move the leader contact time: it may be a
 * whole hash or finish old, and the leader may have died meanwhile (max_staleness_ms reads,
 * ms_since_leader_contact). A message that just arrived does move it. */
Test(node_snap_hold, a_replayed_snapshot_message_is_not_leader_contact)
{
    struct fixture f;
    fixture_init(&f);
    struct mc_node *n = f.n;
    n->snapshot_running = true; /* an install cannot run: the message is held */
    deliver(n, MC_RAFT_MSG_SNAPSHOT);
    cr_assert_not_null(n->snap_held.msg, "the message was not held");
    cr_assert_eq(mc_raft_term(n->raft), 0, "a held message was stepped");
    n->last_leader_contact_ms = CONTACT_MS;
    n->snapshot_running = false;
    node_snapshot_unblocked(n);
    cr_assert_null(n->snap_held.msg, "the held message was not replayed");
    cr_assert_eq(mc_raft_term(n->raft), SNAP_TERM, "the replay was not stepped");
    cr_assert_eq(mc_raft_leader(n->raft), 1);
    cr_assert_eq(n->last_leader_contact_ms, CONTACT_MS,
                 "the replay moved the leader contact time (to %llu)",
                 (unsigned long long)n->last_leader_contact_ms);
    cr_assert_not_null(node_check_busy(n), "a replayed install is due: a CHECK is not Busy");
    deliver(n, MC_RAFT_MSG_HEARTBEAT);
    cr_assert_gt(n->last_leader_contact_ms, CONTACT_MS, "a fresh heartbeat is contact");
    fixture_free(&f);
}

/* The SNAPSHOT message is stepped in a peer read (or a replay) and Raft hands out its install
 * in the next node_process_ready: an admin CHECK read in between (same poll batch, or a later
 * phase of the iteration) gets Busy, else its hash would make the install block the loop till
 * the hash ends (node_check_wait_hash). Busy ends with the advance of that ready. A message that
 * asks for no install (already committed) asks no Busy. */
Test(node_snap_hold, a_check_between_the_step_and_the_install_is_busy)
{
    struct fixture f;
    fixture_init(&f);
    struct mc_node *n = f.n;
    cr_assert_null(node_check_busy(n));
    deliver(n, MC_RAFT_MSG_SNAPSHOT);
    cr_assert_null(n->snap_held.msg, "nothing blocks: the message is stepped");
    const char *busy = node_check_busy(n);
    cr_assert_not_null(busy, "a CHECK between the step and the install is not Busy");
    cr_assert(strstr(busy, "snapshot install"), "%s", busy);
    struct mc_raft_ready rd; /* node_process_ready: the install, then the advance */
    mc_raft_ready(n->raft, &rd);
    cr_assert_not_null(rd.snapshot);
    mc_raft_advance(n->raft, &rd);
    cr_assert_null(node_check_busy(n), "still Busy after the ready that installed it");
    deliver(n, MC_RAFT_MSG_SNAPSHOT); /* the leader's resend: index committed, only answered */
    cr_assert_null(node_check_busy(n));
    fixture_free(&f);
}
