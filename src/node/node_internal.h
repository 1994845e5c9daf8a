/* node_internal.h: the node's state shared by its files (lifecycle, ready, writes, reads, snap). */
#ifndef MC_NODE_INTERNAL_H
#define MC_NODE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "metacenter/engine.h"
#include "metacenter/raft.h"
#include "metacenter/storage.h"
#include "net/client_server.h"
#include "net/peer.h"
#include "node/disk_space.h"
#include "node/node.h"
#include "node/options.h"
#include "util/checksum.h"
#include "http/server.h"
#include "obs/metrics.h"
#include "util/codec.h"

/* Limits. */
#define NODE_MAX_BATCH_OPS      4096       /* ops in one Raft entry (engine MC_APPLY_MAX_OPS) */
#define NODE_MAX_BATCH_BYTES    (1u << 20) /* payload bytes of one Raft entry */
#define NODE_MAX_PENDING_WRITES 262144     /* proposed, not yet applied */
#define NODE_MAX_PENDING_READS  262144     /* waiting for a read index or for apply */
#define NODE_MAX_HELD_MSGS      65536      /* messages waiting for the WAL */
#define NODE_READ_TIMEOUT_MS    5000       /* a forwarded ReadIndex can be lost */
#define NODE_WRITE_TIMEOUT_MS   10000      /* a proposal dropped by a leader change */
#define NODE_SNAP_SEND_WINDOW   (4u << 20) /* snapshot bytes queued to a peer at once */
#define NODE_SNAP_CHUNK_BYTES   (1u << 20)
#define NODE_MAX_APPLY_HOLDS    64 /* test hook: held ready batches (node_ready.c) */

/* Raft entry payload: u8 kind, then kind-specific data. */
enum node_entry_kind {
    NODE_ENTRY_OPS = 1,   /* u32 count, count × (u32 len, engine op record) */
    NODE_ENTRY_CHECK = 2, /* u64 nonce: every replica hashes its state here (node_check.c) */
};

/* A client write waiting for its entry to apply. */
struct pending_write {
    struct mc_client_token token;
    uint64_t index;    /* Raft index of the entry holding the op */
    uint32_t position; /* op position inside the entry */
    uint64_t term;     /* term the entry was proposed in */
    uint64_t deadline_ms;
    uint8_t kind;      /* 0 = client write, 1 = session register, 2 = membership change */
    uint64_t start_ns; /* arrival, for the write latency histogram */
};

/* Per proposed entry, how many of something it adds that the engine's count does not hold yet
 * (bucket creates for NODE_MAX_BUCKETS, session registers for --max-sessions; node_write.c), in
 * index order, until applied_index reaches the entry (applied or replaced). */
struct node_entry_count {
    uint64_t index;
    uint32_t n;
};
struct node_count_queue {
    struct node_entry_count *e;
    size_t head, n, cap;
    uint64_t unapplied; /* sum of n over e[head..n) */
};

/* A read waiting for a ReadIndex answer and then for apply. */
/* Request strings of a queued read stored inline up to this many bytes; fields per read. */
#define NODE_READ_INLINE_BYTES 64
#define NODE_READ_FIELDS       7

struct pending_read {
    struct mc_client_token token;
    uint8_t op;     /* MC_REQ_* */
    uint64_t batch; /* ReadIndex ctx; 0 once the index is known */
    uint64_t index; /* serve once applied >= index */
    uint64_t deadline_ms;
    uint64_t start_ns; /* arrival, for the read latency histogram */
    /* The request's strings, copied (the frame buffer is gone by then) back to back with their
     * NULs: in inl when they fit (a typical GET: no allocation), else in heap. */
    char *heap;
    char inl[NODE_READ_INLINE_BYTES];
    uint32_t off[NODE_READ_FIELDS]; /* where each field starts (node_read.c: enum read_field) */
    uint32_t max_keys;
};

/* A message waiting until the WAL completes ticket. */
struct held_msg {
    uint64_t ticket;
    uint64_t to;
    uint8_t *data;
    size_t len;
};

/* A pending mc_raft_persisted report. */
struct persist_mark {
    uint64_t ticket;
    uint64_t index;
    uint64_t term;
};

/* Test hook MC_TEST_APPLY_DELAY_MS: committed entries up to index apply at due_ns (monotonic). */
struct apply_hold {
    uint64_t index;
    uint64_t due_ns;
};

/* A snapshot stream's chunk reads, off the event loop (node_chunk_read.c). */
struct chunk_job;
struct stream_file; /* an image a stream holds open, registered in snap_users */
struct chunk_reader {
    struct chunk_job *job;         /* the read in flight (NULL = none): one at a time */
    struct mc_snap_verify *verify; /* the image's data checksum, checked as it is read */
    struct mc_digest *digest;      /* a save's digest of the whole file sent; NULL for a send */
    struct stream_file *file;      /* the image, open from the first read (NULL before) */
};

/* Snapshot files held open by a stream or a finish (or about to be opened), by name, with how
 * many hold each: mc_snap_prune skips them (node_chunk_read.c). Any thread, under mu, which a
 * prune holds across its check and the rename or unlink. Distinct files in use at once: one per
 * send and save, in practice the newest image or two. A file a prune skipped is marked
 * deferred; its last unmark sets prune_due, and the loop prunes again (node_snap_prune_due). */
#define NODE_SNAP_USERS_MAX (MC_RAFT_MAX_NODES + 2) /* sends, a save, a received image */
struct snap_users {
    pthread_mutex_t mu;
    struct {
        char name[64]; /* "" = free slot */
        uint32_t refs;
        bool deferred; /* a prune skipped this file while it was held */
    } e[NODE_SNAP_USERS_MAX];
    _Atomic bool prune_due; /* set under mu; read and cleared by the loop without it */
};

/* One chunk read, handed to the stream on the loop. */
struct chunk_read {
    uint64_t offset;
    int rc;        /* the read's; 0: data holds got bytes */
    int verdict;   /* mc_snap_verify_update's after this chunk: 0 none yet, 1 matched, ECORRUPT */
    uint8_t *buf;  /* head bytes free for the stream's header, then data */
    uint8_t *data; /* freed after the callback returns */
    size_t got;
};
typedef void (*chunk_read_cb)(struct mc_node *n, void *arg, const struct chunk_read *c);

/* Outgoing snapshot transfer to one follower. */
struct snap_send {
    uint64_t to;
    uint64_t index;
    uint64_t term;
    uint64_t offset;
    uint64_t total;
    char path[MC_DATADIR_PATH_MAX];
    bool active;
    bool data_done;
    uint64_t started_ms;
    struct mc_raft_msg raft_msg; /* the SNAPSHOT message to deliver after the data */
    struct chunk_reader reader;  /* holds the verify (the image's data checksum) */
};

struct member_info {
    uint64_t id;
    char peer_addr[MC_ADDR_MAX];
    char client_addr[MC_ADDR_MAX];
    char http_addr[MC_ADDR_MAX];
    bool reachable;
};

/* Membership work in progress (node_members.c). */
#define NODE_MAX_AUTO_PROMOTE     MC_RAFT_MAX_NODES
#define NODE_AUTO_PROMOTE_WAIT_MS 60000 /* an added voter must catch up within this */

struct auto_promote {
    uint64_t id;
    struct mc_client_token token; /* answered when the promotion applies */
    uint64_t deadline_ms;
};

struct node_members_state {
    struct auto_promote promote[NODE_MAX_AUTO_PROMOTE];
    size_t n_promote;
    uint64_t removed_index; /* applied our own removal at this index (0 = no) */
    uint64_t removed_ms;
    struct node_check *check; /* automatic consistency check (node_check.c), lazily made */
};

struct mc_node {
    uv_loop_t *loop;
    struct mc_node_options opts;
    uint64_t id;
    uint64_t cluster_id;
    char datadir[MC_DATADIR_PATH_MAX];
    char snapdir[MC_DATADIR_PATH_MAX];
    struct mc_trash *snap_trash;  /* pruned images are cut down here (NULL: unlinked at once) */
    struct snap_users snap_users; /* files no prune may take (mutex initialised at start) */
    int lock_fd;

    struct mc_engine *engine;
    struct mc_wal *wal;
    struct mc_raft *raft;
    struct mc_peer_transport *peers;
    struct mc_client_server *clients;

    uv_timer_t tick_timer;
    uint64_t last_tick_ms; /* monotonic time the last Raft tick stands for */

    struct mc_disk_space disk;        /* write admission by free space */
    struct mc_disk_space disk_engine; /* ... and on the engine's file system (--engine-dir) */
    uv_prepare_t prepare;
    uv_async_t wal_async;
    uv_signal_t sigterm, sigint;

    /* WAL completions (written on the WAL thread). */
    _Atomic uint64_t wal_done_ticket;
    _Atomic int wal_error;
    _Atomic uint32_t work_inflight; /* threadpool jobs queued by node_queue_work, not ended */
    uint64_t last_ticket;           /* last ticket issued */

    /* Messages and persisted marks waiting for WAL tickets (FIFO, tickets ascending). */
    struct held_msg *held;
    size_t n_held, cap_held;
    struct persist_mark *marks;
    size_t n_marks, cap_marks;

    /* Write batching: ops gathered during one loop iteration. */
    struct mc_wbuf batch;
    uint32_t batch_ops;       /* top-level op records in the batch */
    uint32_t batch_apply_ops; /* the same counted as the engine does: 1 + sub-ops each */
    bool batch_has_register;
    bool batch_has_tick;                 /* the batch holds expiry_tick's NOOP (node_write.c) */
    uint64_t tick_index;                 /* the entry that held the last one proposed */
    struct pending_write *batch_waiters; /* index unknown until proposed */
    size_t n_batch_waiters, cap_batch_waiters;
    struct pending_write *writes; /* proposed, ordered by (index, position) */
    size_t n_writes, cap_writes, head_writes;
    uint64_t op_clock_term;  /* term whose writes are floored by the engine's op clock */
    int64_t last_op_time_ns; /* newest op time stamped or applied here (op_time_now floor) */
    /* Bucket creates not yet in the engine's count: those in the batch, and per proposed entry
     * holding some, in index order, until applied_index reaches it. */
    uint32_t batch_bucket_creates;
    struct node_count_queue creates;
    /* Session registers proposed, not applied yet (one per entry at most: batch_has_register);
     * with the engine's count, the --max-sessions check. */
    struct node_count_queue registers;

    /* Reads. */
    struct pending_read *reads;
    size_t n_reads, cap_reads;
    uint64_t read_batch; /* ctx of the batch being collected (0 = none) */
    uint64_t next_read_ctx;
    /* node_serve_ready_reads walks reads only when one may have become servable: a
     * read index arrived, applied_index moved, or a held read's connection drained. */
    bool reads_indexed;          /* node_on_read_state gave reads their index since the scan */
    uint64_t reads_seen_applied; /* applied_index at the last scan */
    uint64_t reads_seen_drains;  /* mc_client_server_drain_wakes at the last scan */
    uint64_t read_scans;         /* scans run (tests: none on passes where nothing changed) */
    uint64_t read_expiry_checks; /* deadlines node_expire_reads compared (tests: one per tick) */

    /* Apply state. */
    uint64_t applied_index;
    struct apply_hold apply_holds[NODE_MAX_APPLY_HOLDS]; /* index ascending; hook off: empty */
    size_t n_apply_holds;
    uint64_t last_snapshot_index;
    uint64_t applied_log_bytes;   /* entry bytes applied since start (snapshot triggers) */
    uint64_t snapshot_log_mark;   /* applied_log_bytes when the last snapshot started */
    uint64_t last_image_index;    /* newest engine image on disk: the WAL keeps what follows */
    uint64_t image_log_mark;      /* applied_log_bytes when the last image started */
    bool imaged_since_start;      /* an image was made or installed since start (image phase) */
    bool image_after_handoff;     /* a periodic image waits for this leader's hand-off */
    bool image_as_leader;         /* no hand-off before the next image (handoff_before_image) */
    uint64_t handoff_deadline_ms; /* the image is made as leader after this */
    uint64_t snapshot_size_bytes;
    bool snapshot_running;
    bool apply_paused;         /* an image copy is starting: hold applies (node_snapshot.c) */
    uint64_t image_retry_ms;   /* no image before this (after one was given up) */
    uint64_t image_backoff_ms; /* the last wait set; 0 after an image succeeded */
    uint64_t snapshot_image_wanted_ms; /* when an engine image was asked for (0 = not) */
    bool image_asked;                  /* want_image: start one at the next node_maybe_snapshot */
    uv_work_t snap_work;
    uint64_t snap_work_index, snap_work_term;
    int snap_work_rc;
    struct mc_snap_info snap_work_info;
    struct mc_raft_conf snap_work_conf;

    /* Snapshot transfers. */
    struct snap_send sends[MC_RAFT_MAX_NODES];
    struct mc_snap_recv *recv;
    uint64_t recv_index, recv_term;
    uint64_t recv_done_index, recv_done_term; /* last snapshot fully received */
    char recv_done_path[MC_DATADIR_PATH_MAX];
    bool recv_done_prepared;   /* engine.new holds recv_done's image, ready to swap in */
    struct recv_job *recv_job; /* a received image being finished off the loop */
    /* What an install that cannot run now waits with (node_snapshot_hold): the leader's SNAPSHOT
     * message (msg NULL: none), and the DONE ack of its image's last chunk (done_owed), both
     * given when nothing blocks any more (node_snapshot_unblocked). One slot: a newer one
     * replaces it. In memory only: a restart forgets it (the leader sends again). */
    struct {
        uint8_t *msg;
        size_t len;
        uint64_t from, index, term, since_ms;
        bool done_owed;
        uint64_t done_to, done_index, done_term, done_total;
    } snap_held;

    /* Snapshot streamed to a client (`snapshot save`). */
    struct {
        bool active;
        struct mc_client_token token;
        char path[MC_DATADIR_PATH_MAX];
        uint64_t offset, total, checksum;
        /* Its verify, and the XXH3 of the whole file streamed (docs/protocol.md). */
        struct chunk_reader reader;
        uint64_t min_index; /* the save's (a Busy after a bad image carries it back) */
        /* The newest image this node made itself, and when it was finished: a save from a
         * client before session 12 takes it for a moment (SAVE_LEGACY_IMAGE_MS). */
        uint64_t made_index, made_ms;
    } save;

    /* Members (peer + client addresses). */
    struct member_info members[MC_RAFT_MAX_NODES];
    size_t n_members;

    /* Leader contact, for stale reads and readyz. */
    uint64_t last_leader_contact_ms;
    uint64_t empty_log_refusals_logged; /* raft status empty_log_vote_refusals last logged */
    bool was_amnesic;                   /* raft status amnesic at the last publish */
    uint64_t leader_id;
    int role;

    bool stopping;
    bool fatal;
    void (*stop_done)(void *);
    void *stop_arg;
    uint64_t stop_deadline_ms;
    uv_timer_t stop_timer;
    int closing_handles;

    /* HTTP API and metrics (node_metrics.c). */
    struct mc_http_server *http;
    struct mc_auth *auth;          /* --auth-file (+ the internal principal); NULL = auth off */
    char internal_token[80];       /* the HTTP layer's loopback clients authenticate with it */
    struct mc_tls_ctx *client_tls; /* --cert-file: client port server context; NULL = plain */
    struct mc_tls_ctx *peer_tls_server; /* --peer-cert-file: mutual TLS between members */
    struct mc_tls_ctx *peer_tls_client;
    struct mc_metrics_board *board;
    uv_timer_t metrics_timer;

    /* Scratch. */
    struct mc_wbuf scratch;
    struct mc_wbuf read_buf; /* one encoded read reply */

    struct node_members_state members_state;
};

/* node.c */
uint64_t node_now_ms(void);
/* The --peer-route this node dials member id through (it overrides the member's stored peer
 * address, which may then be only a label), or NULL. */
const char *node_peer_route(const struct mc_node *n, uint64_t id);
struct member_info *node_member(struct mc_node *n, uint64_t id);
void node_set_member(struct mc_node *n, uint64_t id, const char *peer_addr,
                     const char *client_addr);
void node_fatal(struct mc_node *n, const char *what, int rc);
/* The voter to hand leadership to (thesis §3.10), from a leader's status: of the voters other
 * than this node heard from within window_ticks, the one with the highest match index (on a
 * tie, the one heard from last); 0 when none was. A voter not heard from (stopped, cut off)
 * cannot take over: the transfer would run out an election timeout while proposals are refused,
 * and a graceful stop or an image hand-off would wait for nothing. Why last_heard_tick and not
 * recent_active: Raft clears that flag at every check-quorum boundary, so just after one every
 * voter looks inactive until its next reply (and without check-quorum it is never cleared). */
uint64_t node_pick_transferee(const struct mc_raft_status *st, uint64_t window_ticks);
/* node_pick_transferee over this leader's status, with an election timeout as the window; 0 also
 * on allocation failure. */
uint64_t node_best_transferee(struct mc_node *n);
/* Free space below --disk-reserve-mb on the data dir's or the engine dir's file system. */
bool node_disk_low(struct mc_node *n, uint64_t now_ms);
const char *node_leader_client_addr(struct mc_node *n);
int node_conf_encode(struct mc_node *n, const struct mc_raft_conf *c, struct mc_wbuf *w);
int node_conf_decode(struct mc_node *n, const uint8_t *p, size_t len, struct mc_raft_conf *c);

/* node_ready.c */
void node_process_ready(struct mc_node *n);
void node_wal_progress(struct mc_node *n);
void node_send_raft(struct mc_node *n, const struct mc_raft_msg *m);
void node_on_peer_frame(void *ctx, uint64_t from, uint8_t kind, const uint8_t *payload, size_t len);
/* A held Raft message (node_snapshot_unblocked) stepped as node_on_peer_frame would, except
 * that it is not leader contact: last_leader_contact_ms stays. */
void node_replay_raft_frame(struct mc_node *n, uint64_t from, const uint8_t *payload, size_t len);

/* node.c: the options the node opens its engine with (every open: start, rebuild, install). */
void node_engine_options(const struct mc_node *n, struct mc_engine_options *eo);

/* node_write.c */
void node_handle_write(struct mc_node *n, const struct mc_client_request *r);
void node_handle_register(struct mc_node *n, const struct mc_client_request *r);
void node_flush_batch(struct mc_node *n);
int node_apply_entry(struct mc_node *n, const struct mc_raft_entry *e);
void node_fail_writes(struct mc_node *n, int code);
void node_expire_writes(struct mc_node *n, uint64_t now_ms);

/* node_read.c */
void node_handle_read(struct mc_node *n, const struct mc_client_request *r);
void node_flush_reads(struct mc_node *n);
void node_on_read_state(struct mc_node *n, const struct mc_raft_read_state *rs);
void node_serve_ready_reads(struct mc_node *n);
void node_fail_reads(struct mc_node *n, int code);
void node_expire_reads(struct mc_node *n, uint64_t now_ms);
void node_reads_leader_changed(struct mc_node *n);

/* node_recover.c */
/* The snapshot Raft restarts from: snap (NULL = the log's start; owned by the caller) and the
 * newest snapshot's index (applied before, so known committed). */
struct node_base {
    struct mc_snap_info *snap;
    uint64_t latest_index;
};
int node_recover_engine(struct mc_node *n, bool damaged, struct node_base *out);
/* An installed image whose content (engine applied index) is above its label (older versions
 * made such images): record (label, content) durably; content <= label drops a record. */
int node_legacy_image_record(struct mc_node *n, uint64_t label, uint64_t content);
/* At start, an engine ahead of the log: true when a legacy image record explains it. */
bool node_legacy_image_accepts(struct mc_node *n, uint64_t applied, uint64_t log_last);

/* node_snapshot.c */
void node_maybe_snapshot(struct mc_node *n);
void node_start_snapshot_send(struct mc_node *n, const struct mc_raft_msg *m);
void node_pump_snapshot_sends(struct mc_node *n);
void node_on_snap_chunk(struct mc_node *n, uint64_t from, const uint8_t *p, size_t len);
void node_on_snap_ack(struct mc_node *n, uint64_t from, const uint8_t *p, size_t len);
int node_install_snapshot(struct mc_node *n, const struct mc_raft_snapshot_meta *meta);
bool node_snapshot_received(struct mc_node *n, uint64_t index, uint64_t term);
/* A SNAPSHOT message refused by node_snapshot_received only because an install cannot run now
 * (the image a worker is finishing, or a received image while a check hash or a snapshot job
 * runs): kept and replayed by node_snapshot_unblocked (true), else false (dropped: the leader
 * retries). */
bool node_snapshot_hold(struct mc_node *n, const struct mc_raft_msg *m, uint64_t from,
                        const uint8_t *p, size_t len);
/* Loop: something that kept an install from running ended (a check hash, a snapshot job, a
 * received image's finish): send the DONE ack owed and replay the SNAPSHOT message held, unless
 * something still blocks or the node is stopping. */
void node_snapshot_unblocked(struct mc_node *n);

void node_track_conf_change(struct mc_node *n, const struct mc_client_token *t, uint64_t index);
void node_handle_snapshot_save(struct mc_node *n, const struct mc_client_request *r);
/* At node stop, before the client server stops: a `snapshot save` in progress is answered. */
void node_snapshot_stop(struct mc_node *n);
/* At mc_node_free: what active snapshot streams hold. */
void node_snapshot_free(struct mc_node *n);
void node_pump_snapshot_saves(struct mc_node *n);

/* node_chunk_read.c */
/* Queue the read of [offset, offset+len) of path into a buffer with head free bytes before the
 * data (len <= MC_SNAP_CHUNK_MAX_BYTES); the worker checks it with r->verify and adds it to
 * r->digest (if any), both lent to it meanwhile, as is r->file: the first read opens path (must
 * still be the file r->verify was made for, else the read fails MC_EBUSY), later ones read that
 * file whatever path names by then. cb(n, arg, read) runs on the loop when it is
 * done, unless the stream ended (node_chunk_reader_end) or the node is stopping. No read may be
 * in flight (node_chunk_reading). Error: nothing queued, r unchanged. */
int node_chunk_read_start(struct mc_node *n, struct chunk_reader *r, const char *path,
                          uint64_t offset, size_t head, size_t len, chunk_read_cb cb, void *arg);
bool node_chunk_reading(const struct chunk_reader *r);
/* Mark path (a file in n->snapdir) in use before opening it, so no prune takes it; MC_EBUSY when
 * NODE_SNAP_USERS_MAX files are in use (look up again later). Unmark once it is closed. Any
 * thread. */
int node_snap_use(struct mc_node *n, const char *path);
void node_snap_unuse(struct mc_node *n, const char *path);
/* Prune n->snapdir (MC_SNAP_KEEP): files in use are skipped, images go to the snapshot trash.
 * Any thread, one prune at a time (a snapshot job's, an install's, node_snap_prune_due's).
 * Returns how many files it took (the prune logs each, and any failure). */
unsigned node_snap_prune(struct mc_node *n);
/* Loop (each tick): prune again once the last holder of a file a prune skipped let it go. */
void node_snap_prune_due(struct mc_node *n);
/* uv_queue_work, counted: every threadpool job that touches the node goes through here, and its
 * work function calls node_work_end(n) as its last use of the node. A normal stop lets uv_run
 * finish every job; a fatal one stops the loop with jobs still running, and mc_node_free then
 * waits for them (bounded) before it frees what they use. */
int node_queue_work(struct mc_node *n, uv_work_t *req, uv_work_cb work, uv_after_work_cb after);
void node_work_end(struct mc_node *n);
/* The stream ends: free its verify and digest and close its file (off the loop); a read in
 * flight is dropped, with what it holds, when it completes. */
void node_chunk_reader_end(struct mc_node *n, struct chunk_reader *r);

/* node_members.c */
void node_members_handle(struct mc_node *n, const struct mc_client_request *r);
void node_members_tick(struct mc_node *n, uint64_t now_ms);
void node_members_applied(struct mc_node *n, const struct mc_raft_entry *e,
                          const struct mc_raft_conf_change *cc, const struct mc_raft_conf *conf);

/* id is a voter or learner of the current configuration. */
bool node_in_conf(struct mc_node *n, uint64_t id);
void node_members_free(struct mc_node *n);

/* node_check.c */
struct mc_check_result;
int node_check_apply(struct mc_node *n, const struct mc_raft_entry *e);
void node_check_tick(struct mc_node *n, uint64_t now_ms);
bool node_check_lookup(struct mc_node *n, uint64_t index, uint64_t *hash);
void node_check_alarm(struct mc_node *n, struct mc_check_result *out);
void node_check_on_peer(struct mc_node *n, uint64_t from, const uint8_t *payload, size_t len);
void node_check_free(struct mc_node *n);
/* A state hash job runs for the mark at index (answer "not yet" for it). */
bool node_check_pending(struct mc_node *n, uint64_t index);
/* The admin CHECK request for the state hash now: hashed by the job off the loop, answered
 * when it ends (Busy when a job runs already). */
void node_check_request(struct mc_node *n, const struct mc_client_token *t);
/* Why the admin CHECK request gets Busy now (a hash job runs, or Raft has a snapshot install
 * due in the next ready), or NULL when a hash may begin. */
const char *node_check_busy(struct mc_node *n);
/* A stop: answer the request still waiting for its job with code. */
void node_check_fail_request(struct mc_node *n, int code);
/* A state hash job exists (a mark's or the admin request's, from its start to its end on the
 * loop): no install now. */
bool node_check_hashing(struct mc_node *n);
/* Blocks until no hash job reads the engine (its transaction is closed); for an install that
 * came all the same. Returns at once when none does. */
void node_check_wait_hash(struct mc_node *n);
/* node.c: run the Raft ticks elapsed since the last one (after a stall); returns how many. */
uint64_t node_catch_up_ticks(struct mc_node *n);
/* node_metrics.c */
int node_metrics_start(struct mc_node *n);
void node_metrics_stop(struct mc_node *n);
/* Error replies are counted by the client server itself (mc_client_reply_error*). */
void node_reply_not_leader(struct mc_node *n, const struct mc_client_token *t);

/* node_admin.c */
void node_handle_admin(struct mc_node *n, const struct mc_client_request *r);

#endif
