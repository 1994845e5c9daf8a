/* node_check.c: the automatic replica consistency check (--check-interval-ms). The leader puts a
 * CHECK mark entry in the log; every replica hashes its state when it applies that entry (the
 * same index everywhere, so the hashes must be equal); the leader then asks each member for its
 * hash at that index over the peer transport (MC_PEER_CHECK frames) and raises an alarm when one
 * differs. The peer transport, not the client port: members hold no token the others' --auth-file
 * accepts, while the peer link is already the members' trusted channel (docs/security.md).
 *
 * The hash runs off the loop (a whole-engine scan: seconds at 1M objects, longer than an election
 * timeout): the loop opens a read transaction right after the mark applies, so it sees exactly
 * the state at the mark's index, and a threadpool job hashes it (node_queue_work: a stop waits
 * for it). One job at a time; a mark that applies while one runs is skipped and answers "no
 * hash" (holding a second transaction would pin a second old state of the engine). While the
 * job runs, the mark's index answers "not yet" (the leader asks again) and no snapshot installs
 * (node_snapshot_received): an install closes the engine the job reads. The leader's SNAPSHOT
 * message is held meanwhile and stepped when the job ends (node_snapshot_hold, hash_done).
 *
 * The admin CHECK request (`metacenter check`: the state hash now) uses the same job, so at most
 * one hash transaction is open per node: a request while a job runs gets Busy "retry", a mark
 * applied while the request's job runs is skipped. The request stays unanswered while its job
 * runs (its token is kept, as a read waiting for its ReadIndex keeps its own: a reply to a
 * connection closed meanwhile is dropped) and is answered when the job ends, or at a stop. */
#include "node/node_internal.h"
#include "metacenter/client.h"
#include "metacenter/error.h"
#include "net/peer.h"
#include "util/clock.h"
#include "util/codec.h"
#include "util/log.h"

#include <assert.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK_RECENT 8 /* mark hashes a replica remembers */
#define CHECK_ROUND_TIMEOUT_MIN_MS                                                                 \
    2000 /* members that have not answered by then are unanswered                                  \
          */
#define CHECK_ROUND_TIMEOUT_MAX_MS 10000
#define CHECK_ROUND_HASH_MAX_MS    60000 /* the deadline's stretch for slow hashes (start_round) */
#define CHECK_MARK_LOST_MS         10000 /* a proposed mark neither applied nor hashing: lost */
#define CHECK_RETRY_MS             100   /* a member that has not applied the mark yet: ask again */
#define CHECK_REQUEST_MS           1000  /* an ask without an answer (frame lost on a reconnect) */
#define CHECK_HASH_DELAY_MAX_MS    60000
#define CHECK_HASH_WAIT_LOG_MS     1000 /* an install waiting for a hash job says so this often */

/* MC_PEER_CHECK payload: u8 type | u64 index | u64 hash | u8 answer (fixed size). */
#define CHECK_MSG_BYTES 18
enum { MSG_ASK = 0, MSG_ANSWER = 1 };
enum {
    ANSWER_HASH = 0,    /* hash = its state hash when the mark at index applied */
    ANSWER_NOT_YET = 1, /* index not applied there yet: ask again */
    ANSWER_NO_HASH = 2, /* index applied but no hash for it (skipped by a snapshot, forgotten) */
};

enum { ASK = 0, ASKED = 1, DONE = 2 };
/* What a round learned from one member. */
enum { NOTHING = 0, EQUAL = 1, DIFFERS = 2, NOT_COMPARABLE = 3 };

struct node_check {
    struct mc_node *n;
    uint64_t next_ms;
    uint64_t proposed_index, proposed_ms;
    uint64_t nonce;
    struct {
        uint64_t index, hash;
    } recent[CHECK_RECENT];
    uint32_t recent_head;
    /* A round: asking every other member for its hash at round_index. */
    uint64_t round_index, round_hash, round_deadline_ms;
    uint32_t n_slots;
    uint64_t ids[MC_RAFT_MAX_NODES];
    uint8_t state[MC_RAFT_MAX_NODES];
    uint8_t outcome[MC_RAFT_MAX_NODES];
    uint64_t retry_ms[MC_RAFT_MAX_NODES]; /* ASK: not before; ASKED: ask again after */
    /* The alarm (0 = none): the latest member found to differ. */
    uint64_t alarm_member, alarm_index, alarm_member_hash, alarm_leader_hash;
    uint64_t rounds_ok, rounds_failed, rounds_incomplete;
    /* The hash job (at most one): hashing the state at hash_index on the threadpool, for the
     * CHECK mark there or (hash_admin) for the admin request admin_token (admin_waiting: not
     * answered yet; a stop answers it first). hash_job: from begin_job to hash_done. hash_h is
     * opened on the loop and ended by the worker, which then clears hash_running; the result
     * fields are the worker's until hash_done runs on the loop. */
    uv_work_t hash_req;
    bool hash_job, hash_admin, admin_waiting;
    struct mc_client_token admin_token;
    uint64_t hash_index;
    struct mc_engine_hash *hash_h;
    _Atomic bool hash_running; /* hash_h open (node_check_wait_hash) */
    int hash_rc;
    uint64_t hash_value, hash_ms, hash_delay_ms;
    char hash_err[160]; /* the engine's sentence for hash_rc (thread-local on the worker) */
};

static struct node_check *get(struct mc_node *n)
{
    if (!n->members_state.check) {
        n->members_state.check = calloc(1, sizeof(struct node_check));
        if (n->members_state.check) {
            n->members_state.check->n = n;
        }
    }
    return n->members_state.check;
}

static void remember(struct node_check *ck, uint64_t index, uint64_t hash)
{
    ck->recent[ck->recent_head % CHECK_RECENT].index = index;
    ck->recent[ck->recent_head % CHECK_RECENT].hash = hash;
    ck->recent_head++;
}

bool node_check_lookup(struct mc_node *n, uint64_t index, uint64_t *hash)
{
    struct node_check *ck = n->members_state.check;
    for (uint32_t i = 0; ck && index && i < CHECK_RECENT; i++) {
        if (ck->recent[i].index == index) {
            *hash = ck->recent[i].hash;
            return true;
        }
    }
    return false;
}

void node_check_alarm(struct mc_node *n, struct mc_check_result *out)
{
    struct node_check *ck = n->members_state.check;
    memset(out, 0, sizeof(*out));
    if (ck) {
        out->node_id = ck->alarm_member;
        out->index = ck->alarm_index;
        out->hash = ck->alarm_member_hash;
    }
}

/*
 * A round ends when every member has answered or at its deadline. OK only when every member's
 * hash was compared and equal; a member that did not answer (down, partitioned, slow) or could
 * not be compared makes it "incomplete", which says nothing either way. So the alarm clears only
 * when a round compared the alarmed member and found it equal (or it left the configuration).
 * abandoned: leadership was lost mid-round, nothing is concluded.
 */
static void end_round(struct node_check *ck, bool abandoned)
{
    struct mc_node *n = ck->n;
    uint32_t count[4] = {0};
    char missing[MC_RAFT_MAX_NODES * 21 + 1] = "";
    size_t len = 0;
    bool alarmed_equal = false;
    for (uint32_t i = 0; i < ck->n_slots; i++) {
        count[ck->outcome[i]]++;
        if (ck->outcome[i] == EQUAL && ck->ids[i] == ck->alarm_member) {
            alarmed_equal = true;
        }
        if (ck->outcome[i] == NOTHING || ck->outcome[i] == NOT_COMPARABLE) {
            len += (size_t)snprintf(missing + len, sizeof(missing) - len, "%s%llu", len ? "," : "",
                                    (unsigned long long)ck->ids[i]);
        }
    }
    if (ck->round_index && !abandoned) {
        const char *result = "ok";
        if (count[DIFFERS]) {
            result = "failed";
            ck->rounds_failed++;
        } else if (count[NOTHING] || count[NOT_COMPARABLE]) {
            result = "incomplete";
            ck->rounds_incomplete++;
        } else {
            ck->rounds_ok++;
        }
        if (count[DIFFERS] == 0 && (count[NOTHING] || count[NOT_COMPARABLE])) {
            MC_WARN("consistency_check_incomplete",
                    "index=%llu equal=%u unanswered=%u not_comparable=%u members=%s",
                    (unsigned long long)ck->round_index, count[EQUAL], count[NOTHING],
                    count[NOT_COMPARABLE], missing);
        } else {
            MC_INFO("consistency_check_round", "index=%llu result=%s equal=%u differs=%u",
                    (unsigned long long)ck->round_index, result, count[EQUAL], count[DIFFERS]);
        }
        if (ck->alarm_member && count[DIFFERS] == 0 &&
            (alarmed_equal || !node_in_conf(n, ck->alarm_member))) {
            MC_INFO("consistency_check_recovered", "index=%llu previous_member=%llu reason=%s",
                    (unsigned long long)ck->round_index, (unsigned long long)ck->alarm_member,
                    alarmed_equal ? "equal" : "removed");
            ck->alarm_member = 0;
        }
    }
    ck->round_index = 0;
    ck->n_slots = 0;
    ck->next_ms = node_now_ms() + n->opts.check_interval_ms;
}

static void send_msg(struct mc_node *n, uint64_t to, uint8_t type, uint64_t index, uint64_t hash,
                     uint8_t answer)
{
    uint8_t b[CHECK_MSG_BYTES];
    b[0] = type;
    mc_put_u64le(b + 1, index);
    mc_put_u64le(b + 9, hash);
    b[17] = answer;
    mc_peer_send(n->peers, to, MC_PEER_CHECK, b, sizeof(b)); /* lost: the leader asks again */
}

/* A member: answer the leader's ask for its hash at index. */
static void answer(struct mc_node *n, uint64_t from, uint64_t index)
{
    uint64_t hash = 0;
    uint8_t a = ANSWER_NO_HASH;
    if (node_check_lookup(n, index, &hash)) {
        a = ANSWER_HASH;
    } else if (index > n->applied_index || node_check_pending(n, index)) {
        a = ANSWER_NOT_YET; /* not applied yet, or its hash is being computed */
    }
    send_msg(n, from, MSG_ANSWER, index, hash, a);
}

/* The leader: a member's answer for the current round. */
static void on_answer(struct node_check *ck, uint64_t from, uint64_t index, uint64_t hash,
                      uint8_t a)
{
    uint32_t i = 0;
    while (i < ck->n_slots && ck->ids[i] != from) {
        i++;
    }
    if (!ck->round_index || index != ck->round_index || i == ck->n_slots || ck->state[i] != ASKED) {
        return; /* a late answer for an older round, or a duplicate */
    }
    if (a == ANSWER_NOT_YET) {
        ck->state[i] = ASK;
        ck->retry_ms[i] = node_now_ms() + CHECK_RETRY_MS;
        return;
    }
    ck->state[i] = DONE;
    if (a != ANSWER_HASH) {
        ck->outcome[i] = NOT_COMPARABLE; /* it skipped the mark (installed a later snapshot) */
        return;
    }
    if (hash == ck->round_hash) {
        ck->outcome[i] = EQUAL;
        return;
    }
    ck->outcome[i] = DIFFERS;
    ck->alarm_member = from;
    ck->alarm_index = ck->round_index;
    ck->alarm_member_hash = hash;
    ck->alarm_leader_hash = ck->round_hash;
    MC_ERROR("consistency_check_failed",
             "member=%llu index=%llu member_hash=%016llx leader_hash=%016llx action=\"the "
             "member's state differs from the leader's at the same log index: stop it, wipe "
             "its data dir and re-add it (docs/operations.md)\"",
             (unsigned long long)from, (unsigned long long)ck->round_index,
             (unsigned long long)hash, (unsigned long long)ck->round_hash);
}

/* An MC_PEER_CHECK frame (node_on_peer_frame): an ask (any replica) or an answer (the leader). */
void node_check_on_peer(struct mc_node *n, uint64_t from, const uint8_t *payload, size_t len)
{
    if (len != CHECK_MSG_BYTES || (payload[0] != MSG_ASK && payload[0] != MSG_ANSWER)) {
        MC_WARN("peer_bad_check_msg", "from=%llu len=%zu", (unsigned long long)from, len);
        return;
    }
    uint64_t index = mc_get_u64le(payload + 1), hash = mc_get_u64le(payload + 9);
    if (payload[0] == MSG_ASK) {
        answer(n, from, index);
        return;
    }
    struct node_check *ck = n->members_state.check;
    if (ck && mc_raft_role(n->raft) == MC_RAFT_LEADER) {
        on_answer(ck, from, index, hash, payload[17]);
    }
}

static void start_round(struct node_check *ck, uint64_t index, uint64_t hash)
{
    struct mc_node *n = ck->n;
    const struct mc_raft_conf *c = mc_raft_conf(n->raft);
    ck->n_slots = 0;
    for (uint32_t k = 0; k < c->n_voters + c->n_learners; k++) {
        uint64_t id = k < c->n_voters ? c->voters[k] : c->learners[k - c->n_voters];
        if (id == n->id) {
            continue;
        }
        ck->ids[ck->n_slots] = id;
        ck->state[ck->n_slots] = ASK;
        ck->outcome[ck->n_slots] = NOTHING;
        ck->retry_ms[ck->n_slots] = 0;
        ck->n_slots++;
    }
    ck->round_index = index;
    ck->round_hash = hash;
    uint64_t timeout_ms = 4 * n->opts.check_interval_ms;
    timeout_ms = timeout_ms < CHECK_ROUND_TIMEOUT_MIN_MS ? CHECK_ROUND_TIMEOUT_MIN_MS : timeout_ms;
    timeout_ms = timeout_ms > CHECK_ROUND_TIMEOUT_MAX_MS ? CHECK_ROUND_TIMEOUT_MAX_MS : timeout_ms;
    /* The members hash the same state, each after it applied the mark: one that applied it
     * later, or hashes slower, answers "not yet" meanwhile. Give them twice the leader's own
     * hash time (up to a minute), or a large engine's rounds would all end "incomplete". */
    uint64_t hash_wait_ms = 2 * ck->hash_ms;
    hash_wait_ms = hash_wait_ms > CHECK_ROUND_HASH_MAX_MS ? CHECK_ROUND_HASH_MAX_MS : hash_wait_ms;
    timeout_ms = timeout_ms < hash_wait_ms ? hash_wait_ms : timeout_ms;
    ck->round_deadline_ms = node_now_ms() + timeout_ms;
    if (ck->n_slots == 0) {
        end_round(ck, false);
    }
}

/* Test hook: with MC_TEST_CHECK_HASH_DELAY_MS=N (1..60000) in the environment (read once), each
 * state hash job (a CHECK mark's or an admin CHECK request's) sleeps N ms first, as a hash of a
 * large engine takes, to check the loop keeps serving meanwhile (test/integration/
 * test_check_hash.py). The sleep counts in the job's hash_ms. Never set
 * MC_TEST_CHECK_HASH_DELAY_MS in production. Unset: 0. */
static uint64_t hash_test_delay_ms(void)
{
    static _Atomic int64_t ms = -1; /* -1: not read yet */
    return mc_test_hook_u64(&ms, "MC_TEST_CHECK_HASH_DELAY_MS", CHECK_HASH_DELAY_MAX_MS,
                            "test_hook_check_hash_delay");
}

/* Test hook: with MC_TEST_CHECK_MARK_LOST_MS=N (1..CHECK_MARK_LOST_MS) in the environment (read
 * once), a proposed mark counts as lost after N ms instead of CHECK_MARK_LOST_MS, so a test sees
 * a hash outlast it within seconds (test/integration/test_check_hash.py). Loop thread only. Never
 * set in production. Unset: CHECK_MARK_LOST_MS. */
static uint64_t mark_lost_ms(void)
{
    static _Atomic int64_t ms = -1; /* -1: not read yet */
    uint64_t v = mc_test_hook_u64(&ms, "MC_TEST_CHECK_MARK_LOST_MS", CHECK_MARK_LOST_MS,
                                  "test_hook_check_mark_lost");
    return v ? v : CHECK_MARK_LOST_MS;
}

bool node_check_pending(struct mc_node *n, uint64_t index)
{
    struct node_check *ck = n->members_state.check;
    return ck && ck->hash_job && !ck->hash_admin && ck->hash_index == index;
}

bool node_check_hashing(struct mc_node *n)
{
    struct node_check *ck = n->members_state.check;
    return ck && ck->hash_job;
}

/* Worker, or the loop when the worker never ran: close the job's transaction (map growth and
 * an install wait for that: engine.h, node_check_wait_hash). */
static void job_close_txn(struct node_check *ck)
{
    mc_engine_hash_end(ck->hash_h);
    ck->hash_h = NULL;
    atomic_store(&ck->hash_running, false);
}

/* Loop: no job exists any more (its transaction is closed). */
static void job_clear(struct node_check *ck)
{
    assert(!ck->hash_h && !atomic_load(&ck->hash_running));
    ck->hash_job = false;
    ck->hash_admin = false;
    ck->hash_index = 0;
}

/* Loop: the leader's own mark gets no round (it was skipped, or its hash failed): the next mark
 * comes after the interval, not after the "lost" timeout (node_check_tick). */
static void mark_no_round(struct node_check *ck)
{
    ck->proposed_index = 0;
    ck->next_ms = node_now_ms() + ck->n->opts.check_interval_ms;
}

/* Worker: hash the state the loop's transaction holds, then close it here (map growth waits for
 * it: engine.h), and touch nothing of the node after node_work_end. The thread may be one a
 * snapshot job niced (snap_work): the hash then yields the CPU to the loops too, and takes
 * longer on a busy machine (accepted: it is background work; docs/operations.md). */
static void hash_work(uv_work_t *req)
{
    struct node_check *ck = req->data;
    struct mc_node *n = ck->n;
    uint64_t t0 = mc_mono_ms();
    if (ck->hash_delay_ms) {
        usleep((useconds_t)(ck->hash_delay_ms * 1000));
    }
    ck->hash_rc = mc_engine_hash_run(ck->hash_h, &ck->hash_value);
    ck->hash_ms = mc_mono_ms() - t0;
    if (ck->hash_rc) {
        snprintf(ck->hash_err, sizeof(ck->hash_err), "%s", mc_engine_last_error());
    }
    job_close_txn(ck);
    node_work_end(n);
}

/* Loop: the admin request's job ended: answer it (unless a stop did). */
static void admin_done(struct node_check *ck, uint64_t index)
{
    MC_INFO("check_request_hashed", "index=%llu hash=%016llx ms=%llu err=%s answered=%s",
            (unsigned long long)index, (unsigned long long)ck->hash_value,
            (unsigned long long)ck->hash_ms, ck->hash_rc ? mc_error_name(ck->hash_rc) : "none",
            ck->admin_waiting ? "now" : "at_stop");
    if (!ck->admin_waiting) {
        return;
    }
    ck->admin_waiting = false;
    if (ck->hash_rc) {
        mc_client_reply_error(&ck->admin_token, ck->hash_rc, ck->hash_err);
        return;
    }
    struct mc_check_result c = {.node_id = ck->n->id, .index = index, .hash = ck->hash_value};
    struct mc_wbuf *w = mc_client_reply_begin(&ck->admin_token);
    if (w) {
        mc_proto_check_put(w, &c);
    }
    mc_client_reply_end(&ck->admin_token, 0);
}

/* Loop: a mark's job ended: remember its hash; the leader's own mark starts its round, or,
 * when it gets none (failed, stopping, no longer leader, a round still open), the next mark
 * comes after the interval (else it would be logged "lost" later, though it applied). */
static void mark_hashed(struct node_check *ck, uint64_t index)
{
    struct mc_node *n = ck->n;
    if (ck->hash_rc) {
        MC_WARN("consistency_check_hash_failed", "index=%llu err=%s detail=\"%s\"",
                (unsigned long long)index, mc_error_name(ck->hash_rc), ck->hash_err);
    } else {
        MC_DEBUG("consistency_check_hashed", "index=%llu hash=%016llx ms=%llu",
                 (unsigned long long)index, (unsigned long long)ck->hash_value,
                 (unsigned long long)ck->hash_ms);
        remember(ck, index, ck->hash_value);
    }
    if (index != ck->proposed_index) {
        return;
    }
    if (!ck->hash_rc && !n->stopping && !n->fatal && mc_raft_role(n->raft) == MC_RAFT_LEADER &&
        !ck->round_index) {
        ck->proposed_index = 0;
        start_round(ck, index, ck->hash_value);
        return;
    }
    mark_no_round(ck);
}

/* Loop: the job ended: answer the admin request, or remember the mark's hash. */
static void hash_done(uv_work_t *req, int status)
{
    struct node_check *ck = req->data;
    struct mc_node *n = ck->n;
    uint64_t index = ck->hash_index;
    bool admin = ck->hash_admin;
    assert(ck->hash_job);
    if (status == UV_ECANCELED) { /* the worker never ran: nothing closed the transaction */
        job_close_txn(ck);
        node_work_end(n);
        ck->hash_rc = MC_ESHUTDOWN;
        snprintf(ck->hash_err, sizeof(ck->hash_err), "cancelled");
    }
    job_clear(ck);
    if (admin) {
        admin_done(ck, index);
    } else {
        mark_hashed(ck, index);
    }
    /* No job reads the engine now: a SNAPSHOT message held for it may install. */
    node_snapshot_unblocked(n);
}

/* Loop: open a hash transaction on the state as of now (*at: its index; it must be want unless
 * want is 0) and queue the job that runs it (for a mark when admin is NULL, else answering *admin
 * when it ends). No job runs. 0, or an MC_E* code (no job; its sentence in *why). */
static int begin_job(struct node_check *ck, uint64_t want, const struct mc_client_token *admin,
                     uint64_t *at, const char **why)
{
    struct mc_node *n = ck->n;
    assert(!ck->hash_job);
    /* The transaction pins this state while applies go on: room first, so no map growth has to
     * wait for the hash (engine.h). Not while an image copy runs: its read transaction holds the
     * resize lock, and a growth would wait for the whole copy on the loop. */
    if (!n->snapshot_running) {
        mc_engine_reserve_map(n->engine);
    }
    struct mc_engine_hash *h = NULL;
    int rc = mc_engine_hash_begin(n->engine, &h, at);
    if (rc || (want && *at != want)) {
        *why = rc ? mc_engine_last_error() : "the engine is not at the mark";
        mc_engine_hash_end(h);
        return rc ? rc : MC_EINVAL;
    }
    ck->hash_h = h;
    ck->hash_job = true;
    ck->hash_admin = admin != NULL;
    ck->hash_index = *at;
    ck->hash_rc = 0;
    ck->hash_err[0] = '\0';
    ck->hash_delay_ms = hash_test_delay_ms(); /* read on the loop: it may log */
    atomic_store(&ck->hash_running, true);
    ck->hash_req.data = ck;
    if (node_queue_work(n, &ck->hash_req, hash_work, hash_done) != 0) {
        job_close_txn(ck);
        job_clear(ck);
        *why = "no job queued";
        return MC_EIO;
    }
    if (admin) {
        ck->admin_token = *admin;
        ck->admin_waiting = true;
    }
    return 0;
}

/* Loop, right after the mark at index applied: open the transaction there and queue the hash.
 * False when no job started (the mark then answers "no hash"). */
static bool start_hash(struct node_check *ck, uint64_t index)
{
    struct mc_node *n = ck->n;
    if (ck->hash_job) {
        MC_INFO("consistency_check_mark_skipped", "index=%llu hashing=%llu admin=%d",
                (unsigned long long)index, (unsigned long long)ck->hash_index, ck->hash_admin);
        return false;
    }
    if (n->stopping || n->fatal) {
        return false;
    }
    uint64_t at = 0;
    const char *why = "";
    int rc = begin_job(ck, index, NULL, &at, &why);
    if (rc) {
        MC_WARN("consistency_check_hash_failed", "index=%llu at=%llu err=%s detail=\"%s\"",
                (unsigned long long)index, (unsigned long long)at, mc_error_name(rc), why);
        return false;
    }
    return true;
}

const char *node_check_busy(struct mc_node *n)
{
    struct node_check *ck = n->members_state.check;
    if (ck && ck->hash_job) {
        return "a hash is being computed; retry";
    }
    /* Raft holds an install from the SNAPSHOT message's step (a peer read, or a replay when a
     * hash, a snapshot job or a finish ends) to the advance of the next ready, which runs it: a
     * hash begun in between would make it block the loop till the hash ends
     * (node_check_wait_hash). */
    if (n->raft && mc_raft_snapshot_install_due(n->raft)) {
        return "a snapshot install is pending; retry";
    }
    return NULL;
}

void node_check_request(struct mc_node *n, const struct mc_client_token *t)
{
    struct node_check *ck = get(n);
    if (!ck) {
        mc_client_reply_error(t, MC_ENOMEM, NULL);
        return;
    }
    /* Stopping first: a Busy would have the client retry a node that is going away. */
    if (n->stopping || n->fatal) {
        mc_client_reply_error(t, MC_ESHUTDOWN, NULL);
        return;
    }
    const char *busy = node_check_busy(n);
    if (busy) {
        mc_client_reply_error(t, MC_EBUSY, busy);
        return;
    }
    uint64_t at = 0;
    const char *why = "";
    int rc = begin_job(ck, 0, t, &at, &why);
    if (rc) {
        MC_WARN("check_request_hash_failed", "err=%s detail=\"%s\"", mc_error_name(rc), why);
        mc_client_reply_error(t, rc, why);
        return;
    }
    MC_INFO("check_request_started", "index=%llu", (unsigned long long)at);
}

void node_check_fail_request(struct mc_node *n, int code)
{
    struct node_check *ck = n->members_state.check;
    if (ck && ck->admin_waiting) {
        ck->admin_waiting = false;
        mc_client_reply_error(&ck->admin_token, code, NULL);
    }
}

/* Loop, before an install closes the engine: wait for the hash job's transaction to close. It
 * never should have to (no install is stepped while a job exists: node_snapshot_received; no
 * admin hash begins while a stepped install is due: node_check_busy; marks apply after the
 * install in the same ready), and a job's worker ends its transaction without the loop, so the wait
 * ends when the hash does; each wait is bounded, so a long one says so every
 * CHECK_HASH_WAIT_LOG_MS. */
void node_check_wait_hash(struct mc_node *n)
{
    struct node_check *ck = n->members_state.check;
    uint64_t t0 = mc_mono_ms();
    while (ck && atomic_load(&ck->hash_running) &&
           !mc_engine_hash_wait(n->engine, CHECK_HASH_WAIT_LOG_MS)) {
        MC_WARN("consistency_check_hash_wait", "index=%llu waited_ms=%llu",
                (unsigned long long)ck->hash_index, (unsigned long long)(mc_mono_ms() - t0));
    }
}

/* Applies a CHECK mark entry (every replica): advance the engine, hash the state there. */
int node_check_apply(struct mc_node *n, const struct mc_raft_entry *e)
{
    struct mc_op_result res;
    memset(&res, 0, sizeof(res));
    int rc = mc_engine_apply(n->engine, e->index, NULL, 0, NULL, 0, &res);
    if (rc) {
        return rc;
    }
    struct node_check *ck = get(n);
    if (!ck || (!res.skipped && start_hash(ck, e->index))) {
        return 0;
    }
    if (e->index == ck->proposed_index) {
        mark_no_round(ck); /* the leader's own mark has no hash here (skipped, or no job) */
    }
    return 0;
}

static void propose_mark(struct node_check *ck, uint64_t now_ms)
{
    struct mc_node *n = ck->n;
    uint8_t buf[9];
    buf[0] = NODE_ENTRY_CHECK;
    mc_put_u64le(buf + 1, ++ck->nonce);
    struct mc_raft_entry e = {.type = MC_RAFT_ENTRY_NORMAL, .len = sizeof(buf), .data = buf};
    uint64_t index = 0;
    if (mc_raft_propose(n->raft, &e, 1, &index) == 0) {
        ck->proposed_index = index;
        ck->proposed_ms = now_ms;
    } else {
        ck->next_ms = now_ms + n->opts.check_interval_ms;
    }
}

void node_check_tick(struct mc_node *n, uint64_t now_ms)
{
    if (!n->opts.check_interval_ms) {
        return;
    }
    struct node_check *ck = get(n);
    if (!ck) {
        return;
    }
    if (mc_raft_role(n->raft) != MC_RAFT_LEADER) {
        if (ck->round_index) {
            end_round(ck, true);
        }
        ck->proposed_index = 0;
        return;
    }
    if (ck->round_index) {
        uint32_t pending = 0;
        for (uint32_t i = 0; i < ck->n_slots; i++) {
            if ((ck->state[i] == ASK || ck->state[i] == ASKED) && now_ms >= ck->retry_ms[i]) {
                send_msg(n, ck->ids[i], MSG_ASK, ck->round_index, 0, 0);
                ck->state[i] = ASKED;
                ck->retry_ms[i] = now_ms + CHECK_REQUEST_MS;
            }
            pending += ck->state[i] != DONE;
        }
        if (pending == 0 || now_ms >= ck->round_deadline_ms) {
            end_round(ck, false);
        }
        return;
    }
    /* A mark neither applied nor hashing this long was lost (a leader change dropped it). Not
     * one whose hash still runs: a large engine's hash takes longer, and a mark proposed
     * meanwhile would be skipped, leaving no round ever (its hash_done starts the round). */
    if (ck->proposed_index && now_ms - ck->proposed_ms > mark_lost_ms() &&
        !node_check_pending(n, ck->proposed_index)) {
        MC_INFO("consistency_check_mark_lost", "index=%llu proposed_ms_ago=%llu",
                (unsigned long long)ck->proposed_index,
                (unsigned long long)(now_ms - ck->proposed_ms));
        ck->proposed_index = 0;
    }
    if (!ck->proposed_index && now_ms >= ck->next_ms) {
        propose_mark(ck, now_ms);
    }
}

void node_check_free(struct mc_node *n)
{
    /* After mc_node_free's wait for jobs: the worker closed the transaction. */
    assert(!n->members_state.check || !n->members_state.check->hash_h);
    /* A fatal stop leaves the request unanswered, like the node's reads and writes: the process
     * is exiting. */
    free(n->members_state.check);
    n->members_state.check = NULL;
}
