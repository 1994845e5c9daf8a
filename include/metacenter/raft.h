/* raft.h: the Raft consensus core, a pure deterministic state machine (no I/O, no clock). */
#ifndef METACENTER_RAFT_H
#define METACENTER_RAFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * USAGE CONTRACT (read this first)
 * ================================
 * The core does no I/O, reads no clock, has no global state and no threads. All time comes in
 * through mc_raft_tick(), all randomness from cfg.seed, all memory through cfg.alloc. Many cores
 * may live in one process. A core is not thread-safe: one thread drives it.
 *
 * Inputs:  mc_raft_tick, mc_raft_step, mc_raft_propose, mc_raft_propose_conf_change,
 *          mc_raft_read_index, mc_raft_transfer_leader, mc_raft_report_unreachable,
 *          mc_raft_report_snapshot, mc_raft_persisted, mc_raft_snapshot_taken.
 * Outputs: collected in a ready batch; the driver loop is
 *
 *     while (mc_raft_has_ready(r)) {
 *         struct mc_raft_ready rd;
 *         mc_raft_ready(r, &rd);
 *         1. if rd.snapshot: persist its meta and install the received snapshot into the state
 *            machine (the driver already holds the file it streamed; see MC_RAFT_MSG_SNAPSHOT).
 *         2. write rd.entries to the WAL: they REPLACE every stored entry with index >=
 *            rd.entries[0].index (a truncation point), then append.
 *         3. if rd.hard_state_changed: write rd.hard_state.
 *         4. send every msg with wait_persist == 0 right away (may overlap with 2-3: a leader
 *            replicates while it writes its own log, Raft thesis §10.2.1).
 *         5. fsync; then send every msg with wait_persist == 1 (votes, append responses, ...).
 *         6. apply rd.committed to the state machine (in order); serve rd.reads once applied
 *            index >= read.index.
 *         7. mc_raft_advance(r, &rd);
 *         8. once the WAL is durable up to the last entry written in step 2, call
 *            mc_raft_persisted(r, last.index, last.term) (synchronous drivers call it right
 *            after advance; asynchronous ones when their fsync completes, possibly after later
 *            readies, in order).
 *     }
 *
 * Everything a ready points to is owned by the core and stays valid until mc_raft_advance();
 * between mc_raft_ready() and mc_raft_advance() the driver calls no other mc_raft_* function
 * except the read-only ones (mc_raft_status, mc_raft_conf, mc_raft_role, ...). The driver must
 * copy what it keeps longer (an asynchronous WAL writer serializes the entries before advance).
 *
 * Committed entries are only handed out up to the index reported by mc_raft_persisted(), so the
 * state machine never gets ahead of the local WAL (a crash never leaves applied > last index).
 *
 * Proposals: mc_raft_propose() returns the index; the entry carries the current term. It
 * succeeded when a committed entry (rd.committed) has that index AND term. It is lost when the
 * committed entry at that index has another term, or when rd.entries writes another term at
 * that index (a new leader overwrote it; committed entries are never overwritten, so it was
 * definitely not applied and the client may retry). Until either happens the outcome is unknown.
 * Committed entries of type MC_RAFT_ENTRY_NORMAL with len 0 are leader no-ops: skip them;
 * MC_RAFT_ENTRY_CONF entries decode with mc_raft_conf_change_decode (e.g. for peer addresses).
 *
 * Messages: wait_persist = 1 for those that depend on this ready's hard state or entries being
 * durable: vote requests (the self-vote), vote/pre-vote answers, append responses. wait_persist
 * = 0 for the rest: a leader's AppendEntries / Heartbeat / InstallSnapshot / TimeoutNow /
 * ReadIndex answers, heartbeat responses, forwarded ReadIndex requests, and the "your term is
 * stale" answers. Dropping, duplicating or reordering any message is safe; the core retries on
 * ticks.
 *
 * Snapshots: the leader core emits MC_RAFT_MSG_SNAPSHOT carrying metadata only. The driver
 * streams the snapshot file itself (in chunks), and on the follower, once the file is fully
 * received, steps that same message into the follower core, which answers with rd.snapshot to
 * install. On the leader the driver MUST call mc_raft_report_snapshot(id, ok) for every
 * SNAPSHOT message it was given, when the transfer finished or failed (also when the message was
 * dropped): until then that follower's progress waits in the snapshot state (as in etcd). The
 * driver makes snapshots of its own state machine whenever it wants and reports them with
 * mc_raft_snapshot_taken(), which lets the core drop log entries (keeping
 * cfg.snapshot_keep_entries, at most cfg.snapshot_keep_bytes, for catching up slow followers
 * without a snapshot).
 *
 * Restart: pass what the WAL holds in cfg.restore (hard state, snapshot meta, the entries after
 * the snapshot, and the state machine's applied index).
 *
 * Bootstrapping: every member of a new cluster starts with the same cfg.initial_voters (and
 * cfg.initial_learners); a node that will be added later starts with none of them and waits to
 * be contacted by a leader. The configuration is the last configuration entry in the log, else
 * the snapshot's, else the initial one. Pass the same initial lists on every restart.
 *
 * Compile-time bug injection (for the simulator's self-test only):
 *   -DMC_RAFT_BUG_VOTE_NO_LOG_CHECK   grant votes without the §5.4.1 up-to-date check
 *   -DMC_RAFT_BUG_COMMIT_OLD_TERM     commit previous-term entries by counting replicas (§5.4.2)
 *   -DMC_RAFT_BUG_READ_NO_CONFIRM     leader answers ReadIndex without a heartbeat round
 */

/* Limits. */
#define MC_RAFT_MAX_NODES         16          /* voters + learners in one configuration */
#define MC_RAFT_MAX_ENTRY_BYTES   (4u << 20)  /* payload of one entry */
#define MC_RAFT_MAX_MSG_ENTRIES   65536u      /* entries in one decoded message */
#define MC_RAFT_MAX_MSG_BYTES     (64u << 20) /* one encoded message */
#define MC_RAFT_MAX_PENDING_READS 65536u      /* queued ReadIndex requests on a leader */
#define MC_RAFT_CONF_CONTEXT_MAX  256u        /* opaque bytes carried by a conf change */

/* ---------------------------------------------------------------------------------------- */
/* Data types                                                                              */

enum mc_raft_entry_type {
    MC_RAFT_ENTRY_NORMAL = 0, /* application command; empty payload = leader's no-op */
    MC_RAFT_ENTRY_CONF = 1,   /* configuration change: payload from mc_raft_conf_change_encode */
};

struct mc_raft_entry {
    uint64_t index;
    uint64_t term;
    uint8_t type;  /* enum mc_raft_entry_type */
    uint32_t len;  /* payload bytes, <= MC_RAFT_MAX_ENTRY_BYTES */
    uint8_t *data; /* payload (NULL when len == 0) */
};

/*
 * A cluster configuration. Node ids are non-zero and never reused. voters_outgoing is non-empty
 * only in a joint configuration (C_old,new: decisions need a majority of both, thesis §4.3); the
 * core itself changes membership one server at a time, so it is normally empty.
 */
struct mc_raft_conf {
    uint32_t n_voters;
    uint32_t n_voters_outgoing;
    uint32_t n_learners;
    uint64_t voters[MC_RAFT_MAX_NODES];
    uint64_t voters_outgoing[MC_RAFT_MAX_NODES];
    uint64_t learners[MC_RAFT_MAX_NODES];
};

/* Promote a learner (or add a voter) once it has caught up: a member that started with no
 * entry and no snapshot votes only for candidates whose log is empty until it has caught up
 * with a leader (status `amnesic`, election.c), so a voter that has not would not help elect
 * (the node's `cluster promote` waits for the learner to catch up). */
enum mc_raft_conf_change_type {
    MC_RAFT_CONF_ADD_LEARNER = 1, /* add a non-voting member */
    MC_RAFT_CONF_PROMOTE = 2,     /* learner -> voter */
    MC_RAFT_CONF_ADD_VOTER = 3,   /* add a voter directly (or promote if it is a learner) */
    MC_RAFT_CONF_REMOVE = 4,      /* remove a voter or a learner */
};

struct mc_raft_conf_change {
    uint8_t type; /* enum mc_raft_conf_change_type */
    uint64_t node_id;
    uint32_t context_len;                      /* opaque driver data, e.g. the peer address */
    uint8_t context[MC_RAFT_CONF_CONTEXT_MAX]; /* (the core never interprets it) */
};

struct mc_raft_hard_state {
    uint64_t term;
    uint64_t vote;   /* node voted for in term, 0 = none */
    uint64_t commit; /* highest index known committed */
};

struct mc_raft_snapshot_meta {
    uint64_t index; /* last index covered */
    uint64_t term;  /* term of that entry */
    struct mc_raft_conf conf;
};

enum mc_raft_role {
    MC_RAFT_FOLLOWER = 0,
    MC_RAFT_PRE_CANDIDATE = 1,
    MC_RAFT_CANDIDATE = 2,
    MC_RAFT_LEADER = 3,
};

struct mc_raft_soft_state {
    uint64_t leader_id; /* 0 = unknown */
    uint8_t role;       /* enum mc_raft_role */
};

struct mc_raft_read_state {
    uint64_t ctx;   /* the caller's ctx from mc_raft_read_index */
    uint64_t index; /* serve the read once applied >= index */
    int err;        /* 0, or MC_ENOTLEADER when the read was dropped (leadership lost) */
};

/* ---------------------------------------------------------------------------------------- */
/* Messages                                                                                */

enum mc_raft_msg_type {
    MC_RAFT_MSG_APPEND = 1,         /* AppendEntries (§5.3) */
    MC_RAFT_MSG_APPEND_RESP = 2,    /* also answers SNAPSHOT and stale-term messages */
    MC_RAFT_MSG_VOTE = 3,           /* RequestVote (§5.2) */
    MC_RAFT_MSG_VOTE_RESP = 4,      /*  */
    MC_RAFT_MSG_PREVOTE = 5,        /* thesis §9.6: term = the term the sender would campaign in */
    MC_RAFT_MSG_PREVOTE_RESP = 6,   /*  */
    MC_RAFT_MSG_HEARTBEAT = 7,      /* empty AppendEntries; commit, ctx = read round */
    MC_RAFT_MSG_HEARTBEAT_RESP = 8, /* echoes ctx */
    MC_RAFT_MSG_SNAPSHOT = 9,       /* InstallSnapshot: metadata only (see contract) */
    MC_RAFT_MSG_TIMEOUT_NOW = 10,   /* leadership transfer: campaign now (thesis §3.10) */
    MC_RAFT_MSG_READ_INDEX = 11,    /* follower -> leader: ctx */
    MC_RAFT_MSG_READ_INDEX_RESP = 12, /* leader -> follower: ctx, index (reject = failed) */
};

#define MC_RAFT_FLAG_TRANSFER 1u /* VOTE/PREVOTE: campaign caused by TimeoutNow, ignore lease */

/*
 * One message. Field use by type:
 *   APPEND:      index/log_term = previous entry, entries, commit
 *   APPEND_RESP: index = last matching index (success) or the rejected index; reject,
 *                reject_hint = follower's last index ≤ rejected index, hint_term = its term
 *   VOTE/PREVOTE: index/log_term = candidate's last entry, flags
 *   *_RESP:      reject
 *   HEARTBEAT:   commit, ctx; HEARTBEAT_RESP: ctx
 *   SNAPSHOT:    snapshot
 *   READ_INDEX:  ctx; READ_INDEX_RESP: ctx, index, reject
 */
struct mc_raft_msg {
    uint8_t type; /* enum mc_raft_msg_type */
    uint8_t reject;
    uint8_t flags;
    uint8_t wait_persist; /* output only, never encoded: see the contract */
    uint64_t from;
    uint64_t to;
    uint64_t term;
    uint64_t index;
    uint64_t log_term;
    uint64_t commit;
    uint64_t reject_hint;
    uint64_t hint_term;
    uint64_t ctx;
    uint32_t n_entries;
    struct mc_raft_entry *entries;
    struct mc_raft_snapshot_meta snapshot;
};

/* ---------------------------------------------------------------------------------------- */
/* Configuration                                                                           */

struct mc_raft_alloc {
    void *(*malloc)(void *ud, size_t n);
    void *(*realloc)(void *ud, void *p, size_t n);
    void (*free)(void *ud, void *p);
    void *ud;
};

/* Persisted state to restart from (all optional; zero = fresh node). */
struct mc_raft_restore {
    struct mc_raft_hard_state hard_state;
    bool has_snapshot;
    struct mc_raft_snapshot_meta snapshot;
    const struct mc_raft_entry *entries; /* consecutive; must reach snapshot.index + 1 (or 1);
                                            those <= snapshot.index are skipped */
    size_t n_entries;                    /* (payloads are copied) */
    uint64_t applied;                    /* state machine's applied index (>= snapshot.index) */
};

/* The most ReadIndex heartbeat rounds out at once (mc_raft_config.read_rounds_in_flight). */
#define MC_RAFT_MAX_READ_ROUNDS 32

struct mc_raft_config {
    uint64_t id;               /* this node, non-zero */
    uint32_t election_tick;    /* T: election timeout randomized in [T, 2T); default 10 */
    uint32_t heartbeat_tick;   /* < election_tick; default 1 */
    uint64_t seed;             /* randomness for election timeouts */
    bool disable_pre_vote;     /* pre-vote is on by default (thesis §9.6) */
    bool disable_check_quorum; /* check-quorum is on by default (thesis §6.2) */
    /* Serve ReadIndex from a leader lease (needs check-quorum). Ticks are the lease's clock, so
     * the driver MUST deliver one tick per elapsed tick interval, catching up after any stall
     * (GC pause, SIGSTOP, slow disk on the loop thread) BEFORE it steps messages or calls
     * mc_raft_read_index; otherwise a paused leader serves stale reads. Off by default. */
    bool lease_read;
    uint32_t lease_drift_ticks; /* lease = election_tick - drift; default 2 */
    /* ReadIndex heartbeat rounds out at once (1..MC_RAFT_MAX_READ_ROUNDS). 1 bounds the rounds per
     * second by the round trip; more lets a read that arrives while a round is out leave sooner,
     * for more follower wake-ups. Default 1. */
    uint32_t read_rounds_in_flight;
    uint32_t max_inflight_msgs;     /* per follower in replicate state; default 256 */
    uint32_t max_msg_bytes;         /* entry payload bytes per AppendEntries; default 1 MiB */
    uint64_t max_uncommitted_bytes; /* leader refuses proposals beyond it (MC_ELIMIT); 64 MiB */
    uint64_t max_committed_bytes_per_ready; /* bounds rd.committed; default 64 MiB */
    uint64_t snapshot_keep_entries;         /* log tail kept after a snapshot; default 5000 */
    uint64_t snapshot_keep_bytes;           /* ... at most this many payload bytes; 32 MiB */
    uint64_t catch_up_keep_bytes;   /* leader: more kept for a lagging member, up to; 256 MiB */
    struct mc_raft_alloc alloc;     /* all NULL = libc */
    const uint64_t *initial_voters; /* bootstrap configuration (see contract) */
    size_t n_initial_voters;
    const uint64_t *initial_learners;
    size_t n_initial_learners;
    const struct mc_raft_restore *restore; /* NULL = fresh */
    /* A follower stays in the snapshot state at most this long without mc_raft_report_snapshot
     * (a lost report must not wedge it forever); then the leader probes again and may emit a
     * new SNAPSHOT message (a driver still streaming that snapshot to that peer can ignore it).
     * Default 10 * election_tick. */
    uint32_t snapshot_timeout_tick;
};

/* ---------------------------------------------------------------------------------------- */
/* Ready batch                                                                             */

struct mc_raft_ready {
    bool soft_state_changed;
    struct mc_raft_soft_state soft_state;
    bool hard_state_changed;
    struct mc_raft_hard_state hard_state;
    const struct mc_raft_snapshot_meta *snapshot; /* non-NULL: install (before entries) */
    const struct mc_raft_entry *entries;          /* to persist; replace suffix from [0].index */
    size_t n_entries;
    const struct mc_raft_msg *msgs;
    size_t n_msgs;
    const struct mc_raft_entry *committed; /* to apply, in order */
    size_t n_committed;
    const struct mc_raft_read_state *reads;
    size_t n_reads;
};

/* ---------------------------------------------------------------------------------------- */
/* Status                                                                                  */

enum mc_raft_progress_state {
    MC_RAFT_PROGRESS_PROBE = 0,     /* one AppendEntries at a time until the match is found */
    MC_RAFT_PROGRESS_REPLICATE = 1, /* pipelined, up to max_inflight_msgs */
    MC_RAFT_PROGRESS_SNAPSHOT = 2,  /* waiting for mc_raft_report_snapshot */
};

struct mc_raft_peer_status {
    uint64_t id;
    bool is_learner;
    uint8_t state; /* enum mc_raft_progress_state */
    uint64_t match;
    uint64_t next;
    uint32_t inflight;
    bool recent_active;        /* heard from within the current check-quorum window */
    uint64_t last_heard_tick;  /* core tick count when last heard from (leader only) */
    uint64_t pending_snapshot; /* snapshot index being sent, 0 = none */
};

struct mc_raft_status {
    uint64_t id;
    uint8_t role; /* enum mc_raft_role */
    uint64_t leader_id;
    uint64_t term;
    uint64_t vote;
    uint64_t commit;
    uint64_t applied; /* last index handed out in rd.committed (advanced) */
    uint64_t persisted;
    uint64_t first_index; /* first entry held in memory */
    uint64_t last_index;
    uint64_t log_bytes; /* payload bytes of the entries held in memory */
    uint64_t snapshot_index;
    uint64_t tick;
    uint64_t lead_transferee; /* 0 = no transfer in progress */
    bool is_learner;
    struct mc_raft_conf conf;
    /* (Pre-)votes this node refused because it started with no entry and no snapshot (its data
     * dir may have been lost) and has not caught up, while the candidate's log is not empty
     * (election.c). */
    uint64_t empty_log_vote_refusals;
    /* Started with no entry and no snapshot and not yet caught up with a leader (election.c):
     * votes only for candidates whose log is empty. */
    bool amnesic;
    uint32_t n_peers; /* leader only: progress of every other member */
    struct mc_raft_peer_status peers[MC_RAFT_MAX_NODES];
};

/* ---------------------------------------------------------------------------------------- */
/* API                                                                                     */

struct mc_raft;

/* Fill defaults for every zero field. */
void mc_raft_config_defaults(struct mc_raft_config *cfg);
/*
 * Create a core. Returns 0, MC_EINVAL (bad config / restore state), MC_ENOMEM.
 * The config's pointers are only read during the call.
 * If the allocator fails later, the input call returns MC_ENOMEM and the core stays failed
 * (every input returns MC_ENOMEM): destroy it and restart from the WAL (fail-stop).
 */
int mc_raft_create(const struct mc_raft_config *cfg, struct mc_raft **out);
void mc_raft_destroy(struct mc_raft *r);

/* One logical tick (the driver maps wall time to ticks, e.g. 100 ms per tick). */
void mc_raft_tick(struct mc_raft *r);
/*
 * Handle a message from a peer. Stale, duplicate or malformed-looking messages are ignored
 * (returns 0). MC_EINVAL if m->to != this node. The message's entries are copied.
 */
int mc_raft_step(struct mc_raft *r, const struct mc_raft_msg *m);
/*
 * Leader: append n normal entries (only type/len/data are read; payloads copied). On success
 * *first_index = index of the first; they get indices first..first+n-1 and the current term
 * (see mc_raft_term). MC_ENOTLEADER (not leader, or a leadership transfer is in progress),
 * MC_ETOOLARGE (an entry > MC_RAFT_MAX_ENTRY_BYTES), MC_ELIMIT (max_uncommitted_bytes),
 * MC_EINVAL (a conf entry: use mc_raft_propose_conf_change), MC_ENOMEM.
 */
int mc_raft_propose(struct mc_raft *r, const struct mc_raft_entry *entries, size_t n,
                    uint64_t *first_index);
/*
 * Leader: propose a membership change (one server at a time, thesis §4.1 with the
 * single-server fix: needs an entry of the leader's term committed first). It takes effect on
 * every node when appended. *index = its log index. MC_ENOTLEADER, MC_ECONFCHANGE (another
 * change not yet committed, or the leader's first entry not yet committed), MC_EEXIST (already
 * a member in that role), MC_ENOMEMBER (no such member), MC_ELIMIT (MC_RAFT_MAX_NODES),
 * MC_EINVAL (removing the last voter, id 0, bad type).
 */
int mc_raft_propose_conf_change(struct mc_raft *r, const struct mc_raft_conf_change *cc,
                                uint64_t *index);
/*
 * Linearizable read (thesis §6.4). Leader: confirmed by one batched heartbeat round (or the
 * lease) after its first entry of its term committed; follower: forwarded to the leader. The
 * answer arrives as a read state in a later ready (ctx, index); serve once applied >= index.
 * Forwarded reads can be lost: the driver times them out. MC_ENOTLEADER (no leader known),
 * MC_ELIMIT (MC_RAFT_MAX_PENDING_READS).
 */
int mc_raft_read_index(struct mc_raft *r, uint64_t ctx);
/*
 * Leader: hand leadership to voter id (thesis §3.10): catch it up, send TimeoutNow, refuse
 * proposals meanwhile; gives up after an election timeout. MC_ENOTLEADER, MC_ENOMEMBER (not a
 * voter), MC_EINVAL (self).
 */
int mc_raft_transfer_leader(struct mc_raft *r, uint64_t id);
/*
 * Start an election now instead of waiting for the timeout (pre-vote first when enabled), e.g.
 * so a single-node cluster leads right after start. No-op for a leader; MC_ENOMEMBER if this
 * node is not a voter.
 */
int mc_raft_campaign(struct mc_raft *r);
/* The transport could not deliver to id: its progress falls back to probing. */
void mc_raft_report_unreachable(struct mc_raft *r, uint64_t id);
/* Leader: the snapshot transfer to id finished (ok) or failed. */
void mc_raft_report_snapshot(struct mc_raft *r, uint64_t id, bool ok);
/*
 * The WAL durably holds every entry up to index (whose term is term). Stale reports (the entry
 * was replaced meanwhile) are ignored. The leader counts its own match index only from this.
 */
void mc_raft_persisted(struct mc_raft *r, uint64_t index, uint64_t term);
/*
 * The driver made a snapshot of its state machine covering entries up to index (<= applied).
 * conf: the configuration as of index, or NULL to let the core compute it. The core keeps
 * cfg.snapshot_keep_entries entries up to index (at most cfg.snapshot_keep_bytes of payload,
 * always the entry at index), a leader also what its slowest member not being sent a snapshot
 * still needs (up to cfg.catch_up_keep_bytes in all), and frees older ones. MC_EINVAL if index >
 * applied or unknown term.
 */
int mc_raft_snapshot_taken(struct mc_raft *r, uint64_t index, uint64_t term,
                           const struct mc_raft_conf *conf);

bool mc_raft_has_ready(const struct mc_raft *r);
/* A stepped SNAPSHOT message left a snapshot to install: the next ready hands it out
 * (rd.snapshot). True from that step until mc_raft_advance of the ready that held it. */
bool mc_raft_snapshot_install_due(const struct mc_raft *r);
void mc_raft_ready(struct mc_raft *r, struct mc_raft_ready *rd);
void mc_raft_advance(struct mc_raft *r, const struct mc_raft_ready *rd);

/* Read-only accessors (allowed between ready and advance). */
void mc_raft_status(const struct mc_raft *r, struct mc_raft_status *st);
const struct mc_raft_conf *mc_raft_conf(const struct mc_raft *r);
enum mc_raft_role mc_raft_role(const struct mc_raft *r);
uint64_t mc_raft_id(const struct mc_raft *r);
/* 0, or the sticky error (MC_ENOMEM) that made the core fail-stop. */
int mc_raft_error(const struct mc_raft *r);
uint64_t mc_raft_term(const struct mc_raft *r);
uint64_t mc_raft_leader(const struct mc_raft *r);
uint64_t mc_raft_commit_index(const struct mc_raft *r);
uint64_t mc_raft_last_index(const struct mc_raft *r);
/* Term of the entry at index (0 when unknown / compacted away, except the snapshot index). */
uint64_t mc_raft_term_at(const struct mc_raft *r, uint64_t index);
/* The entry at index while the log holds it (NULL when compacted away or beyond the last);
 * valid until the next call into the core. A driver may apply committed entries later than the
 * ready that handed them out (node_ready.c's test-only apply delay): the core never compacts past
 * the index the driver reports with mc_raft_snapshot_taken(). */
const struct mc_raft_entry *mc_raft_entry_at(const struct mc_raft *r, uint64_t index);
/* The configuration after applying every entry up to index (index >= snapshot index). */
int mc_raft_conf_at(const struct mc_raft *r, uint64_t index, struct mc_raft_conf *out);

/* ---------------------------------------------------------------------------------------- */
/* Helpers                                                                                 */

bool mc_raft_conf_is_voter(const struct mc_raft_conf *c, uint64_t id);
bool mc_raft_conf_is_learner(const struct mc_raft_conf *c, uint64_t id);
/*
 * Configuration entry payload: the change and the full configuration that results from it
 * (so a node never needs history to know its configuration). decode: MC_EPROTO on malformed.
 */
int mc_raft_conf_change_encode(const struct mc_raft_conf_change *cc,
                               const struct mc_raft_conf *result, uint8_t *buf, size_t cap,
                               size_t *len);
int mc_raft_conf_change_decode(const uint8_t *buf, size_t len, struct mc_raft_conf_change *cc,
                               struct mc_raft_conf *result);
#define MC_RAFT_CONF_CHANGE_MAX_BYTES (64 + MC_RAFT_CONF_CONTEXT_MAX + 3 * 8 * MC_RAFT_MAX_NODES)

struct mc_wbuf;
/* Append the encoding of m (wait_persist excluded) to w. Returns 0 or w's error. */
int mc_raft_msg_encode(const struct mc_raft_msg *m, struct mc_wbuf *w);
/*
 * Decode one message occupying exactly buf[0..len). The entries array is allocated (libc) and
 * entry payloads point INTO buf (buf must outlive the message); free with mc_raft_msg_free.
 * MC_EPROTO on malformed / truncated / over-limit input (nothing to free then), MC_ENOMEM.
 */
int mc_raft_msg_decode(const uint8_t *buf, size_t len, struct mc_raft_msg *m);
void mc_raft_msg_free(struct mc_raft_msg *m);

const char *mc_raft_msg_type_name(int type);
const char *mc_raft_role_name(int role);

#endif
