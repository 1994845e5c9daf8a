/* raft_int.h: internal state of the Raft core shared by its files (one file per Raft concern). */
/*
 * Map of the core (one file per concern, prefix = file):
 *   raft.c        public entry points, step dispatch + term rules, ready/advance, status (ra_)
 *   log.c         in-memory log: append/truncate/compact, conflict search (log_)
 *   quorum.c      majority/joint arithmetic over a configuration (quorum_)
 *   conf.c        configuration sets, conf-change payload codec (conf_)
 *   progress.c    leader's per-peer progress: probe/replicate/snapshot, in-flight window (pr_)
 *   election.c    timeouts, pre-vote, votes, role changes (el_)
 *   replication.c AppendEntries/heartbeats both ways, commit rule (rep_)
 *   read_index.c  ReadIndex rounds and the lease (ri_)
 *   membership.c  configuration from the log, conf-change proposals (mb_)
 *   transfer.c    leadership transfer (tr_)
 *   snapshot.c    compaction, InstallSnapshot send/receive (sn_)
 *   msg_codec.c   wire encoding of messages (driver side)
 */
#ifndef MC_RAFT_INT_H
#define MC_RAFT_INT_H

#include "metacenter/error.h"
#include "metacenter/raft.h"
#include "util/rand.h"

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- allocation (every byte goes through cfg.alloc) ---- */
void *ra_malloc(struct mc_raft *r, size_t n);
void *ra_realloc(struct mc_raft *r, void *p, size_t n);
void ra_free(struct mc_raft *r, void *p);
/* Grow *arr (element size sz) to hold at least need elements; 0 or MC_ENOMEM. */
int ra_reserve(struct mc_raft *r, void **arr, size_t *cap, size_t need, size_t sz);

/* ---- in-memory log (log.c) ---- */
struct rlog {
    struct mc_raft_entry *ents; /* ents[i] has index offset + 1 + i */
    size_t n, cap;
    uint64_t offset;      /* index just before the first held entry (compacted / snapshot) */
    uint64_t offset_term; /* term of that index */
    uint64_t unstable;    /* first index not yet handed to the driver for persistence */
    uint64_t persisted;   /* driver reported durable up to here */
    uint64_t bytes;       /* payload bytes of the held entries (bounded by snapshots, §5) */
    void **garbage;       /* payloads dropped by truncation/compaction, freed at advance */
    size_t n_garbage, cap_garbage;
};

/* ---- per-follower progress (progress.c) ---- */
struct progress {
    uint64_t id;
    bool learner;
    uint8_t state; /* enum mc_raft_progress_state */
    bool probe_sent;
    bool recent_active;
    uint64_t match, next;
    uint64_t pending_snapshot;
    uint64_t snapshot_sent_tick;
    uint64_t last_heard_tick;
    uint64_t read_seq_acked;
    uint64_t sent_commit;
    uint64_t *infl; /* ring of last indices of in-flight appends */
    uint32_t infl_start, infl_count, infl_cap;
};

/* ---- pending ReadIndex requests (read_index.c) ---- */
struct pending_read {
    uint64_t ctx;
    uint64_t from;  /* 0 = local request */
    uint64_t index; /* 0 = waiting for the leader's first commit of its term */
    uint64_t seq;   /* heartbeat round that confirms it; 0 = not yet sent */
};

#define RA_SEQ_RING 64

struct mc_raft {
    struct mc_raft_config cfg;
    uint64_t id;
    struct mc_rand rng;

    /* persistent */
    uint64_t term, vote, commit;
    struct rlog log;
    struct mc_raft_snapshot_meta snap; /* latest snapshot (taken locally or installed) */
    bool has_snap;

    /* volatile */
    uint8_t role;
    uint64_t leader;
    uint64_t applied;
    uint64_t tick;
    uint32_t election_elapsed, heartbeat_elapsed, randomized_timeout;

    /* configuration (§4.1: in effect as soon as appended) */
    struct mc_raft_conf conf;      /* current */
    uint64_t conf_index;           /* index of the entry that set it (0: base) */
    struct mc_raft_conf base_conf; /* configuration as of log.offset */
    uint64_t pending_conf_index;   /* leader: last conf entry index it may not yet see committed */

    /* elections */
    uint64_t votes_granted[MC_RAFT_MAX_NODES];
    uint64_t votes_rejected[MC_RAFT_MAX_NODES];
    uint32_t n_granted, n_rejected;

    /* leader */
    struct progress prs[MC_RAFT_MAX_NODES];
    uint32_t n_prs;
    uint64_t lead_transferee;
    uint64_t uncommitted_bytes;
    bool bcast_pending;

    /* reads */
    struct pending_read *reads;
    size_t reads_head, n_reads_q, cap_reads; /* FIFO ring */
    uint64_t read_seq;
    uint64_t seq_tick[RA_SEQ_RING];
    bool read_bcast_pending;
    uint64_t lease_until_tick;
    bool lease_revoked; /* TimeoutNow sent: another leader may appear despite stickiness */
    uint64_t empty_log_vote_refusals; /* votes refused while amnesic (election.c) */
    /* Started with no entry and no snapshot and not caught up since: votes only for
     * candidates with an empty log (el_amnesia_check). In memory only: persisting it kept
     * members that lag a busy leader from voting across restarts, and the simulator found
     * clusters with every member up and no possible leader (docs/decisions.md). */
    bool amnesic;
    uint64_t amnesia_floor; /* commit index of the first AppendEntries since start */
    uint64_t amnesia_term;  /* term of the first AppendEntries since start (0: none yet) */

    /* outputs */
    struct mc_raft_msg *out;
    size_t n_out, cap_out;
    size_t *out_ent_off; /* per message: offset into ent_arena */
    size_t cap_out_ent_off;
    struct mc_raft_entry *ent_arena;
    size_t n_arena, cap_arena;
    struct mc_raft_read_state *rstates;
    size_t n_rstates, cap_rstates;
    bool snapshot_to_install;
    struct mc_raft_soft_state prev_soft;
    struct mc_raft_hard_state prev_hard;

    /* what the last ready handed out (for advance) */
    uint64_t rd_unstable_to;
    uint64_t rd_applied_to;
    bool rd_snapshot;
    int err; /* sticky allocation failure: the core refuses further input */
};

/* log.c */
int log_init(struct mc_raft *r, uint64_t offset, uint64_t offset_term);
void log_destroy(struct mc_raft *r);
uint64_t log_last_index(const struct rlog *l);
uint64_t log_last_term(const struct rlog *l);
/* Term at index; 0 if outside [offset, last]. */
uint64_t log_term(const struct rlog *l, uint64_t index);
bool log_has_term(const struct rlog *l, uint64_t index);
bool log_match(const struct rlog *l, uint64_t index, uint64_t term);
struct mc_raft_entry *log_at(const struct rlog *l, uint64_t index);
/* Copy entries (consecutive, starting at last+1). */
int log_append(struct mc_raft *r, const struct mc_raft_entry *e, size_t n);
void log_truncate(struct mc_raft *r, uint64_t from);
void log_compact(struct mc_raft *r, uint64_t upto);
void log_reset(struct mc_raft *r, uint64_t index, uint64_t term);
void log_free_garbage(struct mc_raft *r);
/* §5.4.1: is (last_index, last_term) at least as up-to-date as ours? */
bool log_up_to_date(const struct rlog *l, uint64_t index, uint64_t term);
/* First index in e[] that is missing or conflicts with our log; 0 if all match. */
uint64_t log_find_conflict(const struct rlog *l, const struct mc_raft_entry *e, size_t n);
/* Largest i <= index with term_at(i) <= term (fast backtracking hint). */
uint64_t log_find_conflict_by_term(const struct rlog *l, uint64_t index, uint64_t term);

/* quorum.c */
/* Largest index acknowledged by a quorum of c (joint: of both halves). match(id) gives acks. */
typedef uint64_t (*quorum_value_fn)(const struct mc_raft *r, uint64_t id);
uint64_t quorum_committed(const struct mc_raft *r, const struct mc_raft_conf *c,
                          quorum_value_fn fn);
enum vote_result { VOTE_PENDING = 0, VOTE_WON = 1, VOTE_LOST = 2 };
enum vote_result quorum_vote_result(const struct mc_raft_conf *c, const uint64_t *granted,
                                    uint32_t n_granted, const uint64_t *rejected,
                                    uint32_t n_rejected);
/* Does the set ids[0..n) contain a quorum of c? */
bool quorum_has(const struct mc_raft_conf *c, const uint64_t *ids, uint32_t n);

/* conf.c */
bool conf_contains(const uint64_t *ids, uint32_t n, uint64_t id);
bool conf_is_member(const struct mc_raft_conf *c, uint64_t id);
bool conf_is_any_voter(const struct mc_raft_conf *c, uint64_t id);
int conf_apply_change(const struct mc_raft_conf *c, const struct mc_raft_conf_change *cc,
                      struct mc_raft_conf *out);
int conf_validate(const struct mc_raft_conf *c);
struct mc_wbuf;
struct mc_rbuf;
void conf_encode(struct mc_wbuf *w, const struct mc_raft_conf *c);
int conf_decode(struct mc_rbuf *rb, struct mc_raft_conf *c);

/* progress.c */
struct progress *pr_get(struct mc_raft *r, uint64_t id);
int pr_reset_all(struct mc_raft *r);
int pr_sync_conf(struct mc_raft *r);
void pr_become_probe(struct progress *p);
void pr_become_replicate(struct progress *p);
void pr_become_snapshot(struct progress *p, uint64_t snap_index);
bool pr_maybe_update(struct progress *p, uint64_t n);
bool pr_maybe_decr(struct progress *p, uint64_t rejected, uint64_t match_hint);
bool pr_is_paused(const struct mc_raft *r, const struct progress *p);
void pr_infl_add(struct progress *p, uint64_t last);
void pr_infl_free_to(struct progress *p, uint64_t index);
void pr_destroy_all(struct mc_raft *r);

/* raft.c (outbox and shared helpers) */
struct mc_raft_msg *ra_msg(struct mc_raft *r, uint8_t type, uint64_t to);
int ra_msg_entries(struct mc_raft *r, struct mc_raft_msg *m, uint64_t lo, uint64_t hi);
void ra_read_state(struct mc_raft *r, uint64_t ctx, uint64_t index, int err);
void ra_set_err(struct mc_raft *r, int err);
bool ra_promotable(const struct mc_raft *r);
uint64_t ra_self_match(const struct mc_raft *r);

/* election.c */
void el_tick(struct mc_raft *r);
void el_become_follower(struct mc_raft *r, uint64_t term, uint64_t leader);
void el_become_leader(struct mc_raft *r);
void el_campaign(struct mc_raft *r, bool pre_vote, bool transfer);
void el_reset_timeout(struct mc_raft *r);
void el_handle_vote(struct mc_raft *r, const struct mc_raft_msg *m);
void el_handle_vote_resp(struct mc_raft *r, const struct mc_raft_msg *m);
void el_amnesia_learn(struct mc_raft *r,
                      const struct mc_raft_msg *m); /* an APPEND from the leader */
void el_amnesia_check(struct mc_raft *r);           /* after the log grew */

/* replication.c */
bool rep_send_append(struct mc_raft *r, struct progress *p, bool allow_empty);
void rep_flush(struct mc_raft *r);
void rep_bcast_heartbeat(struct mc_raft *r, uint64_t seq);
bool rep_maybe_commit(struct mc_raft *r);
void rep_commit_to(struct mc_raft *r, uint64_t index);
void rep_handle_append(struct mc_raft *r, const struct mc_raft_msg *m);
void rep_handle_append_resp(struct mc_raft *r, const struct mc_raft_msg *m);
void rep_handle_heartbeat(struct mc_raft *r, const struct mc_raft_msg *m);
void rep_handle_heartbeat_resp(struct mc_raft *r, const struct mc_raft_msg *m);
int rep_append_local(struct mc_raft *r, const struct mc_raft_entry *e, size_t n);
bool rep_committed_own_term(const struct mc_raft *r);

/* read_index.c */
int ri_request(struct mc_raft *r, uint64_t ctx, uint64_t from);
void ri_on_commit_own_term(struct mc_raft *r);
void ri_on_heartbeat_resp(struct mc_raft *r);
void ri_flush(struct mc_raft *r);
void ri_assign_seq(struct mc_raft *r, uint64_t seq);
void ri_drop_all(struct mc_raft *r);
void ri_handle_resp(struct mc_raft *r, const struct mc_raft_msg *m);
bool ri_lease_valid(const struct mc_raft *r);
void ri_reset(struct mc_raft *r);

/* membership.c */
void mb_on_append(struct mc_raft *r, const struct mc_raft_entry *e);
int mb_recompute(struct mc_raft *r);
void mb_on_commit(struct mc_raft *r);
int mb_conf_at(const struct mc_raft *r, uint64_t index, struct mc_raft_conf *out);
int mb_set_conf(struct mc_raft *r, const struct mc_raft_conf *c, uint64_t index);

/* transfer.c */
void tr_abort(struct mc_raft *r);
void tr_on_match(struct mc_raft *r, struct progress *p);
void tr_handle_timeout_now(struct mc_raft *r, const struct mc_raft_msg *m);

/* snapshot.c */
bool sn_send(struct mc_raft *r, struct progress *p);
void sn_handle_snapshot(struct mc_raft *r, const struct mc_raft_msg *m);
void sn_tick(struct mc_raft *r);
/* Raft-log GC: entries up to the returned index may go once a snapshot covers index. */
uint64_t sn_compact_point(const struct mc_raft *r, uint64_t index);

#endif
