/* test_raft_internals.c: unit tests of the core's pieces: log, quorum, conf changes, codec. */
#include <criterion/criterion.h>

#include "raft/raft_int.h"
#include "raft_test_util.h"
#include "util/codec.h"

#include <stdlib.h>
#include <string.h>

static struct mc_raft *mk(void)
{
    struct mc_raft_config c = cfg3(1);
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    return r;
}

static void append_terms(struct mc_raft *r, const uint64_t *terms, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        uint8_t b = (uint8_t)i;
        struct mc_raft_entry e = {log_last_index(&r->log) + 1, terms[i], MC_RAFT_ENTRY_NORMAL, 1,
                                  &b};
        cr_assert_eq(log_append(r, &e, 1), 0);
    }
}

Test(raft_log, append_truncate_compact)
{
    struct mc_raft *r = mk();
    uint64_t t[] = {1, 1, 2, 2, 3, 3, 3};
    append_terms(r, t, 7);
    cr_assert_eq(log_last_index(&r->log), 7);
    cr_assert_eq(log_last_term(&r->log), 3);
    cr_assert_eq(log_term(&r->log, 3), 2);
    cr_assert_eq(log_term(&r->log, 0), 0);
    cr_assert_eq(log_term(&r->log, 8), 0);
    cr_assert(log_match(&r->log, 5, 3));
    cr_assert_not(log_match(&r->log, 5, 2));
    /* Up-to-date check (§5.4.1): higher last term wins, then longer log. */
    cr_assert(log_up_to_date(&r->log, 7, 3));
    cr_assert(log_up_to_date(&r->log, 1, 4));
    cr_assert_not(log_up_to_date(&r->log, 6, 3));
    cr_assert_not(log_up_to_date(&r->log, 100, 2));
    /* Conflict detection. */
    struct mc_raft_entry in[3] = {{4, 2, 0, 0, NULL}, {5, 4, 0, 0, NULL}, {6, 4, 0, 0, NULL}};
    cr_assert_eq(log_find_conflict(&r->log, in, 3), 5);
    cr_assert_eq(log_find_conflict(&r->log, in, 1), 0);
    /* Fast backtracking hint: largest index <= 7 with term <= 2. */
    cr_assert_eq(log_find_conflict_by_term(&r->log, 7, 2), 4);
    cr_assert_eq(log_find_conflict_by_term(&r->log, 7, 0), 0);
    r->log.unstable = 8;
    r->log.persisted = 7;
    log_truncate(r, 5);
    cr_assert_eq(log_last_index(&r->log), 4);
    cr_assert_eq(r->log.unstable, 5);
    cr_assert_eq(r->log.persisted, 4);
    log_compact(r, 2);
    cr_assert_eq(r->log.offset, 2);
    cr_assert_eq(r->log.offset_term, 1);
    cr_assert_eq(log_term(&r->log, 2), 1);
    cr_assert_eq(log_term(&r->log, 1), 0);
    cr_assert_eq(log_at(&r->log, 3)->term, 2);
    cr_assert_null(log_at(&r->log, 2));
    cr_assert_eq(log_last_index(&r->log), 4);
    log_reset(r, 10, 5);
    cr_assert_eq(log_last_index(&r->log), 10);
    cr_assert_eq(log_last_term(&r->log), 5);
    cr_assert_eq(r->log.unstable, 11);
    mc_raft_destroy(r);
}

static uint64_t vals[32];
static uint64_t val_fn(const struct mc_raft *r, uint64_t id)
{
    (void)r;
    return vals[id];
}

Test(raft_quorum, majority_joint_and_learners)
{
    struct mc_raft_conf c;
    memset(&c, 0, sizeof(c));
    c.n_voters = 3;
    c.voters[0] = 1, c.voters[1] = 2, c.voters[2] = 3;
    c.n_learners = 1;
    c.learners[0] = 4;
    vals[1] = 10, vals[2] = 7, vals[3] = 3, vals[4] = 100;
    cr_assert_eq(quorum_committed(NULL, &c, val_fn), 7); /* learner 4 does not count */
    c.n_voters = 4;
    c.voters[3] = 5;
    vals[5] = 5;
    cr_assert_eq(quorum_committed(NULL, &c, val_fn), 5); /* 3 of 4 */
    c.n_voters = 1;
    cr_assert_eq(quorum_committed(NULL, &c, val_fn), 10);
    /* Joint: {1,2,3} and outgoing {3,6,7}: min of both majorities. */
    c.n_voters = 3;
    c.n_voters_outgoing = 3;
    c.voters_outgoing[0] = 3, c.voters_outgoing[1] = 6, c.voters_outgoing[2] = 7;
    vals[6] = 2, vals[7] = 1;
    cr_assert_eq(quorum_committed(NULL, &c, val_fn), 2);
    /* Votes. */
    uint64_t g[] = {1, 2}, rj[] = {3};
    c.n_voters_outgoing = 0;
    cr_assert_eq(quorum_vote_result(&c, g, 2, rj, 1), VOTE_WON);
    cr_assert_eq(quorum_vote_result(&c, g, 1, rj, 1), VOTE_PENDING);
    uint64_t rj2[] = {2, 3};
    cr_assert_eq(quorum_vote_result(&c, g, 1, rj2, 2), VOTE_LOST);
    c.n_voters_outgoing = 3;
    cr_assert_eq(quorum_vote_result(&c, g, 2, rj, 1), VOTE_PENDING); /* outgoing: 3 no, 6,7 ? */
    uint64_t rj3[] = {3, 6};
    cr_assert_eq(quorum_vote_result(&c, g, 2, rj3, 2), VOTE_LOST); /* outgoing half lost */
    uint64_t g2[] = {1, 2, 6, 7};
    cr_assert_eq(quorum_vote_result(&c, g2, 4, rj, 1), VOTE_WON);
    uint64_t g3[] = {1, 2, 6};
    cr_assert_eq(quorum_vote_result(&c, g3, 3, NULL, 0), VOTE_PENDING);
    struct mc_raft_conf empty;
    memset(&empty, 0, sizeof(empty));
    cr_assert_eq(quorum_committed(NULL, &empty, val_fn), 0);
    cr_assert_eq(quorum_vote_result(&empty, g, 2, NULL, 0), VOTE_LOST);
}

Test(raft_conf, changes_and_payload)
{
    struct mc_raft_conf c, n;
    memset(&c, 0, sizeof(c));
    c.n_voters = 1;
    c.voters[0] = 1;
    struct mc_raft_conf_change cc = {.type = MC_RAFT_CONF_ADD_LEARNER, .node_id = 2};
    cr_assert_eq(conf_apply_change(&c, &cc, &n), 0);
    cr_assert(mc_raft_conf_is_learner(&n, 2));
    cr_assert_eq(conf_apply_change(&n, &cc, &c), MC_EEXIST);
    cc.type = MC_RAFT_CONF_PROMOTE;
    cr_assert_eq(conf_apply_change(&n, &cc, &c), 0);
    cr_assert(mc_raft_conf_is_voter(&c, 2));
    cr_assert_not(mc_raft_conf_is_learner(&c, 2));
    cc.node_id = 9;
    cr_assert_eq(conf_apply_change(&c, &cc, &n), MC_ENOMEMBER);
    cc.type = MC_RAFT_CONF_REMOVE;
    cr_assert_eq(conf_apply_change(&c, &cc, &n), MC_ENOMEMBER);
    cc.node_id = 1;
    cr_assert_eq(conf_apply_change(&c, &cc, &n), 0);
    cc.node_id = 2;
    cr_assert_eq(conf_apply_change(&n, &cc, &c), MC_EINVAL); /* last voter */
    /* Payload round trip with context. */
    struct mc_raft_conf_change a = {.type = MC_RAFT_CONF_ADD_VOTER, .node_id = 7};
    memcpy(a.context, "127.0.0.1:7071", 14);
    a.context_len = 14;
    uint8_t buf[MC_RAFT_CONF_CHANGE_MAX_BYTES];
    size_t len;
    cr_assert_eq(mc_raft_conf_change_encode(&a, &n, buf, sizeof(buf), &len), 0);
    struct mc_raft_conf_change b;
    struct mc_raft_conf res;
    cr_assert_eq(mc_raft_conf_change_decode(buf, len, &b, &res), 0);
    cr_assert_eq(b.node_id, 7);
    cr_assert_eq(b.context_len, 14);
    cr_assert_eq(memcmp(b.context, "127.0.0.1:7071", 14), 0);
    cr_assert_eq(res.n_voters, n.n_voters);
    for (size_t k = 0; k < len; k++) {
        cr_assert_eq(mc_raft_conf_change_decode(buf, k, &b, &res), MC_EPROTO);
    }
    /* Encoding into a buffer that is too small fails cleanly (and never grows it). */
    uint8_t small[16];
    size_t sl = 0;
    cr_assert_eq(mc_raft_conf_change_encode(&a, &n, small, sizeof(small), &sl), MC_ETOOLARGE);
}

static void msg_eq(const struct mc_raft_msg *a, const struct mc_raft_msg *b)
{
    cr_assert_eq(a->type, b->type);
    cr_assert_eq(a->from, b->from);
    cr_assert_eq(a->to, b->to);
    cr_assert_eq(a->term, b->term);
    cr_assert_eq(a->index, b->index);
    cr_assert_eq(a->log_term, b->log_term);
    cr_assert_eq(a->commit, b->commit);
    cr_assert_eq(a->reject, b->reject);
    cr_assert_eq(a->reject_hint, b->reject_hint);
    cr_assert_eq(a->hint_term, b->hint_term);
    cr_assert_eq(a->ctx, b->ctx);
    cr_assert_eq(a->flags, b->flags);
    cr_assert_eq(a->n_entries, b->n_entries);
    for (uint32_t i = 0; i < a->n_entries; i++) {
        cr_assert_eq(a->entries[i].index, b->entries[i].index);
        cr_assert_eq(a->entries[i].term, b->entries[i].term);
        cr_assert_eq(a->entries[i].type, b->entries[i].type);
        cr_assert_eq(a->entries[i].len, b->entries[i].len);
        cr_assert_eq(memcmp(a->entries[i].data, b->entries[i].data, a->entries[i].len), 0);
    }
}

Test(raft_codec, round_trip_truncated_corrupted)
{
    uint8_t p1[] = "hello", p2[] = "world!!";
    struct mc_raft_entry ents[2] = {{5, 2, MC_RAFT_ENTRY_NORMAL, 5, p1},
                                    {6, 2, MC_RAFT_ENTRY_CONF, 7, p2}};
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_APPEND;
    m.from = 1, m.to = 2, m.term = 2, m.index = 4, m.log_term = 1, m.commit = 3;
    m.ctx = 99, m.reject_hint = 7, m.hint_term = 1;
    m.n_entries = 2;
    m.entries = ents;
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    cr_assert_eq(mc_raft_msg_encode(&m, &w), 0);
    struct mc_raft_msg d;
    cr_assert_eq(mc_raft_msg_decode(w.data, w.len, &d), 0);
    msg_eq(&m, &d);
    mc_raft_msg_free(&d);
    /* Every truncation is rejected, never a crash. */
    for (size_t k = 0; k < w.len; k++) {
        cr_assert_eq(mc_raft_msg_decode(w.data, k, &d), MC_EPROTO, "prefix %zu", k);
    }
    /* Trailing garbage is rejected. */
    mc_wbuf_u8(&w, 0);
    cr_assert_eq(mc_raft_msg_decode(w.data, w.len, &d), MC_EPROTO);
    w.len--;
    /* Flipped bytes: decode either fails cleanly or yields a message (fields are opaque). */
    for (size_t k = 0; k < w.len; k++) {
        for (int bit = 0; bit < 8; bit++) {
            w.data[k] ^= (uint8_t)(1u << bit);
            int rc = mc_raft_msg_decode(w.data, w.len, &d);
            cr_assert(rc == 0 || rc == MC_EPROTO);
            if (rc == 0) {
                mc_raft_msg_free(&d);
            }
            w.data[k] ^= (uint8_t)(1u << bit);
        }
    }
    /* A huge entry count with a short buffer must not allocate or overread. */
    struct mc_raft_msg big = m;
    big.n_entries = 0;
    mc_wbuf_reset(&w);
    mc_raft_msg_encode(&big, &w);
    mc_put_u32le(w.data + w.len - 4, 0xffffffffu);
    cr_assert_eq(mc_raft_msg_decode(w.data, w.len, &d), MC_EPROTO);

    /* Snapshot message with its configuration. */
    struct mc_raft_msg s;
    memset(&s, 0, sizeof(s));
    s.type = MC_RAFT_MSG_SNAPSHOT;
    s.from = 1, s.to = 3, s.term = 4;
    s.snapshot.index = 100, s.snapshot.term = 3;
    s.snapshot.conf.n_voters = 2;
    s.snapshot.conf.voters[0] = 1, s.snapshot.conf.voters[1] = 3;
    s.snapshot.conf.n_learners = 1;
    s.snapshot.conf.learners[0] = 9;
    mc_wbuf_reset(&w);
    cr_assert_eq(mc_raft_msg_encode(&s, &w), 0);
    cr_assert_eq(mc_raft_msg_decode(w.data, w.len, &d), 0);
    msg_eq(&s, &d);
    cr_assert_eq(d.snapshot.index, 100);
    cr_assert_eq(d.snapshot.conf.n_voters, 2);
    cr_assert_eq(d.snapshot.conf.learners[0], 9);
    mc_raft_msg_free(&d);
    for (size_t k = 0; k < w.len; k++) {
        cr_assert_eq(mc_raft_msg_decode(w.data, k, &d), MC_EPROTO);
    }
    mc_wbuf_free(&w);
}

Test(raft_api, config_validation_and_errors)
{
    struct mc_raft_config c;
    memset(&c, 0, sizeof(c));
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), MC_EINVAL); /* id 0 */
    c.id = 1;
    c.election_tick = 5;
    c.heartbeat_tick = 5;
    cr_assert_eq(mc_raft_create(&c, &r), MC_EINVAL);
    c.heartbeat_tick = 1;
    c.lease_read = true;
    c.disable_check_quorum = true;
    cr_assert_eq(mc_raft_create(&c, &r), MC_EINVAL); /* lease needs check-quorum */
    c.disable_check_quorum = false;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    /* No configuration: never campaigns, refuses leader-only calls. */
    for (int i = 0; i < 100; i++) {
        mc_raft_tick(r);
    }
    cr_assert_eq(mc_raft_role(r), MC_RAFT_FOLLOWER);
    cr_assert_eq(mc_raft_term(r), 0);
    struct mc_raft_entry e = {.len = 0};
    cr_assert_eq(mc_raft_propose(r, &e, 1, NULL), MC_ENOTLEADER);
    cr_assert_eq(mc_raft_read_index(r, 1), MC_ENOTLEADER);
    cr_assert_eq(mc_raft_transfer_leader(r, 2), MC_ENOTLEADER);
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_HEARTBEAT;
    m.from = 2, m.to = 3, m.term = 1;
    cr_assert_eq(mc_raft_step(r, &m), MC_EINVAL); /* not for us */
    mc_raft_destroy(r);
    /* Restore with an applied index beyond the log is rejected. */
    struct mc_raft_restore rs;
    memset(&rs, 0, sizeof(rs));
    rs.applied = 5;
    c.restore = &rs;
    cr_assert_eq(mc_raft_create(&c, &r), MC_EINVAL);
}

/* Allocation hook: every byte goes through it, and all of it is returned on destroy. */
static long live_allocs;
static void *h_malloc(void *ud, size_t n)
{
    (void)ud;
    live_allocs++;
    return malloc(n);
}
static void *h_realloc(void *ud, void *p, size_t n)
{
    (void)ud;
    if (!p) {
        live_allocs++;
    }
    return realloc(p, n);
}
static void h_free(void *ud, void *p)
{
    (void)ud;
    if (p) {
        live_allocs--;
    }
    free(p);
}

Test(raft_api, allocator_hook_balanced)
{
    static const uint64_t v[] = {1};
    struct mc_raft_config c;
    memset(&c, 0, sizeof(c));
    c.id = 1;
    c.initial_voters = v;
    c.n_initial_voters = 1;
    c.alloc = (struct mc_raft_alloc){h_malloc, h_realloc, h_free, NULL};
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    for (int i = 0; i < 30 && mc_raft_role(r) != MC_RAFT_LEADER; i++) {
        mc_raft_tick(r);
    }
    cr_assert_eq(mc_raft_role(r), MC_RAFT_LEADER);
    uint8_t d[10] = {0};
    struct mc_raft_entry e = {.len = 10, .data = d};
    for (int k = 0; k < 20; k++) {
        cr_assert_eq(mc_raft_propose(r, &e, 1, NULL), 0);
        while (mc_raft_has_ready(r)) {
            struct mc_raft_ready rd;
            mc_raft_ready(r, &rd);
            uint64_t li = rd.n_entries ? rd.entries[rd.n_entries - 1].index : 0;
            uint64_t lt = rd.n_entries ? rd.entries[rd.n_entries - 1].term : 0;
            mc_raft_advance(r, &rd);
            if (li) {
                mc_raft_persisted(r, li, lt);
            }
        }
    }
    cr_assert_eq(mc_raft_commit_index(r), 21);
    cr_assert_gt(live_allocs, 20);
    mc_raft_destroy(r);
    cr_assert_eq(live_allocs, 0);
}

/* etcd #10998: a node that does not (yet) see itself as a voter still answers vote requests,
 * e.g. a learner whose promotion entry it has not appended yet. */
Test(raft_api, learner_still_grants_votes)
{
    static const uint64_t learners[] = {4};
    struct mc_raft_config c = cfg3(4);
    c.initial_learners = learners;
    c.n_initial_learners = 1;
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_VOTE;
    m.from = 1, m.to = 4, m.term = 5;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    struct mc_raft_ready rd;
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.n_msgs, 1);
    cr_assert_eq(rd.msgs[0].type, MC_RAFT_MSG_VOTE_RESP);
    cr_assert_eq(rd.msgs[0].reject, 0);
    cr_assert_eq(rd.msgs[0].wait_persist, 1); /* the vote must be durable first */
    cr_assert(rd.hard_state_changed);
    cr_assert_eq(rd.hard_state.term, 5);
    cr_assert_eq(rd.hard_state.vote, 1);
    mc_raft_advance(r, &rd);
    /* One vote per term: another candidate in term 5 is refused. */
    m.from = 2;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.n_msgs, 1);
    cr_assert_eq(rd.msgs[0].reject, 1);
    mc_raft_advance(r, &rd);
    /* A learner never campaigns. */
    for (int i = 0; i < 100; i++) {
        mc_raft_tick(r);
    }
    cr_assert_eq(mc_raft_role(r), MC_RAFT_FOLLOWER);
    cr_assert_eq(mc_raft_term(r), 5);
    mc_raft_destroy(r);
}

/* §5.4.1: a candidate with a shorter log of the same last term is refused. */
Test(raft_api, vote_requires_up_to_date_log)
{
    uint8_t d = 1;
    struct mc_raft_entry ents[3] = {{1, 1, 0, 1, &d}, {2, 1, 0, 1, &d}, {3, 2, 0, 1, &d}};
    struct mc_raft_restore rs;
    memset(&rs, 0, sizeof(rs));
    rs.hard_state.term = 2;
    rs.entries = ents;
    rs.n_entries = 3;
    struct mc_raft_config c = cfg3(3);
    c.restore = &rs;
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_VOTE;
    m.from = 1, m.to = 3, m.term = 3, m.index = 5, m.log_term = 1; /* longer but older */
    cr_assert_eq(mc_raft_step(r, &m), 0);
    struct mc_raft_ready rd;
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.n_msgs, 1);
    cr_assert_eq(rd.msgs[0].reject, 1);
    mc_raft_advance(r, &rd);
    m.from = 2, m.term = 4, m.index = 3, m.log_term = 2; /* equal: granted */
    cr_assert_eq(mc_raft_step(r, &m), 0);
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.n_msgs, 1);
    cr_assert_eq(rd.msgs[0].reject, 0);
    mc_raft_advance(r, &rd);
    mc_raft_destroy(r);
}

static void drain(struct mc_raft *r)
{
    while (mc_raft_has_ready(r)) {
        struct mc_raft_ready rd;
        mc_raft_ready(r, &rd);
        uint64_t li = rd.n_entries ? rd.entries[rd.n_entries - 1].index : 0;
        uint64_t lt = rd.n_entries ? rd.entries[rd.n_entries - 1].term : 0;
        mc_raft_advance(r, &rd);
        if (li) {
            mc_raft_persisted(r, li, lt);
        }
    }
}

/* §5.4.2 / Figure 8: a leader never commits an old-term entry by counting replicas. */
Test(raft_api, commit_only_through_current_term)
{
    uint8_t d = 1;
    struct mc_raft_entry ents[3] = {{1, 1, 0, 1, &d}, {2, 1, 0, 1, &d}, {3, 2, 0, 1, &d}};
    struct mc_raft_restore rs;
    memset(&rs, 0, sizeof(rs));
    rs.hard_state.term = 2;
    rs.hard_state.commit = 1;
    rs.entries = ents;
    rs.n_entries = 3;
    rs.applied = 1;
    struct mc_raft_config c = cfg3(1);
    c.disable_pre_vote = true;
    c.restore = &rs;
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    while (mc_raft_role(r) != MC_RAFT_CANDIDATE) {
        mc_raft_tick(r);
    }
    drain(r);
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_VOTE_RESP;
    m.from = 2, m.to = 1, m.term = 3;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert_eq(mc_raft_role(r), MC_RAFT_LEADER);
    cr_assert_eq(mc_raft_last_index(r), 4); /* the no-op of term 3 */
    cr_assert_eq(mc_raft_term_at(r, 4), 3);
    drain(r);
    /* Follower 2 acknowledges index 3 (term 2): a majority holds it, but it is not ours. */
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_APPEND_RESP;
    m.from = 2, m.to = 1, m.term = 3, m.index = 3;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    drain(r);
    cr_assert_eq(mc_raft_commit_index(r), 1, "committed an old-term entry by counting");
    /* Once the no-op is on a majority, everything up to it commits. */
    m.index = 4;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    drain(r);
    cr_assert_eq(mc_raft_commit_index(r), 4);
    mc_raft_destroy(r);
}

static struct mc_raft_msg snapshot_msg(uint64_t term, uint64_t index)
{
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_SNAPSHOT;
    m.from = 1, m.to = 2, m.term = term;
    m.snapshot.index = index;
    m.snapshot.term = term;
    m.snapshot.conf.n_voters = 3;
    m.snapshot.conf.voters[0] = 1, m.snapshot.conf.voters[1] = 2, m.snapshot.conf.voters[2] = 3;
    return m;
}

/* mc_raft_snapshot_install_due: true from the step of a SNAPSHOT message that leaves an install
 * until the advance of the ready that hands it out (the node answers an admin CHECK Busy for that
 * long: rev18 H1); a message that leaves none (stale term, index already committed) leaves it
 * false. */
Test(raft_api, snapshot_install_due_from_the_step_to_the_advance)
{
    struct mc_raft_config c = cfg3(2);
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    cr_assert_not(mc_raft_snapshot_install_due(r));
    struct mc_raft_msg m = snapshot_msg(2, 10);
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert(mc_raft_snapshot_install_due(r), "a snapshot to install, not reported");
    cr_assert(mc_raft_has_ready(r));
    struct mc_raft_ready rd;
    mc_raft_ready(r, &rd);
    cr_assert_not_null(rd.snapshot);
    cr_assert_eq(rd.snapshot->index, 10);
    cr_assert(mc_raft_snapshot_install_due(r), "handed out but not yet advanced: still due");
    mc_raft_advance(r, &rd);
    cr_assert_not(mc_raft_snapshot_install_due(r), "the ready that held it was advanced");
    drain(r);
    cr_assert_not(mc_raft_snapshot_install_due(r));
    /* The same message again: index 10 is committed, only answered. */
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert_not(mc_raft_snapshot_install_due(r));
    drain(r);
    /* An older term's: ignored. */
    m = snapshot_msg(1, 20);
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert_not(mc_raft_snapshot_install_due(r));
    /* A newer image: due again until its ready is advanced. */
    m = snapshot_msg(2, 30);
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert(mc_raft_snapshot_install_due(r));
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.snapshot->index, 30);
    mc_raft_advance(r, &rd);
    cr_assert_not(mc_raft_snapshot_install_due(r));
    mc_raft_destroy(r);
}

/* Thesis §6.4: a new leader answers reads only after committing an entry of its term, and only
 * after a heartbeat round sent after the read arrived. */
Test(raft_api, read_index_waits_for_noop_and_heartbeat_round)
{
    struct mc_raft_config c = cfg3(1);
    c.disable_pre_vote = true;
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    while (mc_raft_role(r) != MC_RAFT_CANDIDATE) {
        mc_raft_tick(r);
    }
    drain(r);
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_VOTE_RESP;
    m.from = 2, m.to = 1, m.term = 1;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert_eq(mc_raft_role(r), MC_RAFT_LEADER);
    drain(r);
    cr_assert_eq(mc_raft_read_index(r, 77), 0);
    struct mc_raft_ready rd;
    uint64_t seq = 0;
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.n_reads, 0, "answered before the no-op committed");
    for (size_t i = 0; i < rd.n_msgs; i++) {
        cr_assert_neq(rd.msgs[i].type, MC_RAFT_MSG_HEARTBEAT);
    }
    mc_raft_advance(r, &rd);
    /* The no-op (index 1) commits: now a heartbeat round goes out for the read. */
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_APPEND_RESP;
    m.from = 2, m.to = 1, m.term = 1, m.index = 1;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert_eq(mc_raft_commit_index(r), 1);
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.n_reads, 0);
    for (size_t i = 0; i < rd.n_msgs; i++) {
        if (rd.msgs[i].type == MC_RAFT_MSG_HEARTBEAT) {
            seq = rd.msgs[i].ctx;
            cr_assert_eq(rd.msgs[i].wait_persist, 0);
        }
    }
    cr_assert_neq(seq, 0, "no heartbeat round for the read");
    mc_raft_advance(r, &rd);
    /* An ack of an older round does not confirm it; the round's ack does. */
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_HEARTBEAT_RESP;
    m.from = 3, m.to = 1, m.term = 1, m.ctx = seq - 1;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.n_reads, 0);
    mc_raft_advance(r, &rd);
    m.ctx = seq;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.n_reads, 1);
    cr_assert_eq(rd.reads[0].ctx, 77);
    cr_assert_eq(rd.reads[0].index, 1);
    cr_assert_eq(rd.reads[0].err, 0);
    mc_raft_advance(r, &rd);
    /* Stepping down drops pending reads with an error instead of leaving them hanging. */
    cr_assert_eq(mc_raft_read_index(r, 78), 0);
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_APPEND;
    m.from = 2, m.to = 1, m.term = 2, m.index = 1, m.log_term = 1;
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert_eq(mc_raft_role(r), MC_RAFT_FOLLOWER);
    mc_raft_ready(r, &rd);
    cr_assert_eq(rd.n_reads, 1);
    cr_assert_eq(rd.reads[0].ctx, 78);
    cr_assert_eq(rd.reads[0].err, MC_ENOTLEADER);
    mc_raft_advance(r, &rd);
    mc_raft_destroy(r);
}

/* A 3-voter leader (id 1) of term 1 whose no-op (index 1) has committed; read_rounds: its
 * read_rounds_in_flight (0 = default). */
static struct mc_raft *leader_with_read_rounds(uint32_t read_rounds)
{
    struct mc_raft_config c = cfg3(1);
    c.disable_pre_vote = true;
    c.read_rounds_in_flight = read_rounds;
    c.heartbeat_tick = 5; /* so a single tick sends no heartbeat of its own */
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    while (mc_raft_role(r) != MC_RAFT_CANDIDATE) {
        mc_raft_tick(r);
    }
    drain(r);
    struct mc_raft_msg m = {.type = MC_RAFT_MSG_VOTE_RESP, .from = 2, .to = 1, .term = 1};
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert_eq(mc_raft_role(r), MC_RAFT_LEADER);
    drain(r);
    m = (struct mc_raft_msg){
        .type = MC_RAFT_MSG_APPEND_RESP, .from = 2, .to = 1, .term = 1, .index = 1};
    cr_assert_eq(mc_raft_step(r, &m), 0);
    cr_assert_eq(mc_raft_commit_index(r), 1);
    drain(r);
    return r;
}

static struct mc_raft *leader_with_committed_noop(void)
{
    return leader_with_read_rounds(0);
}

/* One ready: how many reads it answers; *hb_seq = the heartbeat round it sends (0: none). */
static size_t ready_reads(struct mc_raft *r, uint64_t *hb_seq)
{
    struct mc_raft_ready rd;
    mc_raft_ready(r, &rd);
    *hb_seq = 0;
    for (size_t i = 0; i < rd.n_msgs; i++) {
        if (rd.msgs[i].type == MC_RAFT_MSG_HEARTBEAT) {
            cr_assert(*hb_seq == 0 || *hb_seq == rd.msgs[i].ctx, "two rounds in one ready");
            *hb_seq = rd.msgs[i].ctx;
        }
    }
    size_t n = rd.n_reads;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(rd.reads[i].err, 0);
    }
    mc_raft_advance(r, &rd);
    return n;
}

static void ack_round(struct mc_raft *r, uint64_t seq)
{
    struct mc_raft_msg m = {
        .type = MC_RAFT_MSG_HEARTBEAT_RESP, .from = 3, .to = 1, .term = 1, .ctx = seq};
    cr_assert_eq(mc_raft_step(r, &m), 0);
}

/* Reads arriving while a heartbeat round is out wait for it and share the next round (one round in
 * flight, as etcd's read loop); a round whose acks never come is replaced after a tick. */
Test(raft_api, read_index_one_round_in_flight)
{
    struct mc_raft *r = leader_with_committed_noop();
    uint64_t s1, s2, s3, s;
    cr_assert_eq(mc_raft_read_index(r, 1), 0);
    cr_assert_eq(ready_reads(r, &s1), 0);
    cr_assert_neq(s1, 0, "no round for the first read");
    cr_assert_eq(mc_raft_read_index(r, 2), 0);
    cr_assert_eq(mc_raft_read_index(r, 3), 0);
    cr_assert_eq(ready_reads(r, &s), 0);
    cr_assert_eq(s, 0, "a second round while the first is out");
    ack_round(r, s1);
    cr_assert_eq(ready_reads(r, &s2), 1, "the first read is answered by its round");
    cr_assert_gt(s2, s1, "the waiting reads get the next round when the first completes");
    ack_round(r, s2);
    cr_assert_eq(ready_reads(r, &s), 2);
    cr_assert_eq(s, 0);
    /* A round that is never acknowledged does not hold reads past the tick it was sent in. */
    cr_assert_eq(mc_raft_read_index(r, 4), 0);
    cr_assert_eq(ready_reads(r, &s3), 0);
    cr_assert_neq(s3, 0);
    mc_raft_tick(r);
    cr_assert_eq(mc_raft_read_index(r, 5), 0);
    size_t answered = ready_reads(r, &s);
    cr_assert_eq(answered, 0);
    cr_assert_gt(s, s3, "a lost round blocks the next one");
    ack_round(r, s);
    cr_assert_eq(ready_reads(r, &s), 2, "both reads are confirmed by the newer round");
    mc_raft_destroy(r);
}

/* read_rounds_in_flight = 2: a read arriving while one round is out gets a round of its own; a
 * third waits until one of the two completes, and each read is answered by its own round. */
Test(raft_api, read_index_two_rounds_in_flight)
{
    struct mc_raft *r = leader_with_read_rounds(2);
    uint64_t s1, s2, s3, s;
    cr_assert_eq(mc_raft_read_index(r, 1), 0);
    cr_assert_eq(ready_reads(r, &s1), 0);
    cr_assert_neq(s1, 0, "no round for the first read");
    cr_assert_eq(mc_raft_read_index(r, 2), 0);
    cr_assert_eq(ready_reads(r, &s2), 0);
    cr_assert_gt(s2, s1, "no second round while one is out");
    cr_assert_eq(mc_raft_read_index(r, 3), 0);
    cr_assert_eq(ready_reads(r, &s), 0);
    cr_assert_eq(s, 0, "a third round while two are out");
    ack_round(r, s1);
    cr_assert_eq(ready_reads(r, &s3), 1, "the first read is answered by its round");
    cr_assert_gt(s3, s2, "the third read gets a round when the first completes");
    ack_round(r, s3);
    /* A quorum has acked s3, which was sent after read 2 arrived: read 2 is confirmed too. */
    cr_assert_eq(ready_reads(r, &s), 2);
    cr_assert_eq(s, 0);
    ack_round(r, s2);
    cr_assert_eq(ready_reads(r, &s), 0);
    cr_assert_eq(s, 0);
    mc_raft_destroy(r);
}

/* Rounds out from an earlier tick no longer count (lost), also when they fill the window: a late
 * acknowledgement of an older round lets the waiting read go out at once (rev19 R1). Before: it
 * waited for the next read or the periodic heartbeat. */
Test(raft_api, read_index_rounds_of_an_earlier_tick_do_not_fill_the_window)
{
    struct mc_raft *r = leader_with_read_rounds(2);
    uint64_t a, b, c, s;
    cr_assert_eq(mc_raft_read_index(r, 1), 0);
    cr_assert_eq(ready_reads(r, &a), 0);
    cr_assert_neq(a, 0);
    mc_raft_tick(r); /* a is now lost: two more rounds may go out in this tick */
    cr_assert_eq(mc_raft_read_index(r, 2), 0);
    cr_assert_eq(ready_reads(r, &b), 0);
    cr_assert_gt(b, a);
    cr_assert_eq(mc_raft_read_index(r, 3), 0);
    cr_assert_eq(ready_reads(r, &c), 0);
    cr_assert_gt(c, b);
    cr_assert_eq(mc_raft_read_index(r, 4), 0);
    cr_assert_eq(ready_reads(r, &s), 0);
    cr_assert_eq(s, 0, "a third round in one tick");
    mc_raft_tick(r); /* b and c are from an earlier tick now */
    ack_round(r, a);
    cr_assert_eq(ready_reads(r, &s), 1, "read 1 is answered by its round");
    cr_assert_gt(s, c, "read 4 waits although the rounds out are from an earlier tick");
    ack_round(r, s);
    cr_assert_eq(ready_reads(r, &s), 3, "the newest round confirms reads 2, 3 and 4");
    mc_raft_destroy(r);
}

Test(raft_api, read_rounds_in_flight_is_bounded)
{
    struct mc_raft_config c = cfg3(1);
    c.read_rounds_in_flight = MC_RAFT_MAX_READ_ROUNDS + 1;
    struct mc_raft *r = NULL;
    cr_assert_eq(mc_raft_create(&c, &r), MC_EINVAL);
    c.read_rounds_in_flight = MC_RAFT_MAX_READ_ROUNDS;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    mc_raft_destroy(r);
}

/* SQLite-style: fail the Nth allocation; the core must report MC_ENOMEM (sticky), never crash,
 * and free everything on destroy. */
static long fail_at, n_calls;
static void *f_malloc(void *ud, size_t n)
{
    if (++n_calls == fail_at) {
        return NULL;
    }
    return h_malloc(ud, n);
}
static void *f_realloc(void *ud, void *p, size_t n)
{
    if (++n_calls == fail_at) {
        return NULL;
    }
    return h_realloc(ud, p, n);
}

Test(raft_api, allocation_failures_are_survivable)
{
    bool saw_enomem = false;
    for (fail_at = 1; fail_at < 200; fail_at++) {
        n_calls = 0;
        live_allocs = 0;
        struct mc_raft_config c = cfg3(1);
        c.disable_pre_vote = true;
        c.alloc = (struct mc_raft_alloc){f_malloc, f_realloc, h_free, NULL};
        struct mc_raft *r = NULL;
        int rc = mc_raft_create(&c, &r);
        if (rc) {
            cr_assert_eq(rc, MC_ENOMEM);
            cr_assert_eq(live_allocs, 0);
            saw_enomem = true;
            continue;
        }
        for (int i = 0; i < 30; i++) {
            mc_raft_tick(r);
        }
        struct mc_raft_msg m;
        memset(&m, 0, sizeof(m));
        m.type = MC_RAFT_MSG_VOTE_RESP;
        m.from = 2, m.to = 1, m.term = mc_raft_term(r);
        mc_raft_step(r, &m);
        uint8_t d[32] = {0};
        struct mc_raft_entry e = {.len = 32, .data = d};
        for (int k = 0; k < 10; k++) {
            rc = mc_raft_propose(r, &e, 1, NULL);
            cr_assert(rc == 0 || rc == MC_ENOMEM || rc == MC_ENOTLEADER);
            saw_enomem |= rc == MC_ENOMEM;
            cr_assert(rc != MC_ENOMEM || mc_raft_error(r) == MC_ENOMEM);
            mc_raft_read_index(r, (uint64_t)k);
            struct mc_raft_ready rd;
            mc_raft_ready(r, &rd);
            mc_raft_advance(r, &rd);
            memset(&m, 0, sizeof(m));
            m.type = MC_RAFT_MSG_APPEND_RESP;
            m.from = 2, m.to = 1, m.term = mc_raft_term(r), m.index = mc_raft_last_index(r);
            mc_raft_step(r, &m);
        }
        mc_raft_destroy(r);
        cr_assert_eq(live_allocs, 0, "leak with allocation %ld failing", fail_at);
    }
    cr_assert(saw_enomem);
}
