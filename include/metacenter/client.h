/* client.h: C client library for metacenter: leader discovery, pipelining, retries, sessions. */
#ifndef METACENTER_CLIENT_H
#define METACENTER_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metacenter/engine.h"

/*
 * Model. A client holds one TCP connection per endpoint (opened lazily, non-blocking).
 * Requests are pipelined: the *_async calls queue a request and return at once; replies
 * are delivered to callbacks from mc_client_poll(), which the caller drives (no hidden
 * threads). The blocking wrappers (mc_client_put, ...) submit and poll until done; never
 * call them from inside a callback.
 *
 * Routing. Writes and membership changes go to the leader (learned from NotLeader
 * replies, which carry its address). Reads go round-robin to every reachable member, one
 * member per flush: the reads submitted between two polls travel together in one send (a
 * follower serves linearizable reads through ReadIndex, stale ones locally).
 *
 * Retries. NotLeader, Unavailable, ShuttingDown, SlowDown, StaleRead and connection loss
 * are retried with exponential backoff until the request's timeout (not with opts.no_retry).
 * A write keeps its (session, seq) across retries, so the cluster applies it at most once: the
 * client registers a session lazily on the first write and numbers its writes 1, 2, ...
 * A server's Timeout on a write (its commit wait expired; the entry may still commit) is
 * retried the same way: the resend gets the session's cached result if it committed.
 *
 * Timeout. Each request has a deadline (opts.request_timeout_ms, default 5000 ms). At the
 * deadline the callback gets MC_ETIMEOUT; for a write that was sent, the result has
 * outcome_unknown = true: it may or may not have been applied. So has a write's final
 * server Timeout, and a final retriable error (NotLeader...) after an attempt whose answer
 * was lost: that error speaks only for the last attempt.
 */

struct mc_client;

enum mc_consistency {
    MC_CONSISTENCY_LINEARIZABLE = 0, /* ReadIndex (leader or follower): sees every acked write */
    MC_CONSISTENCY_STALE = 1,        /* the member's local state; bounded by max_staleness_ms */
};

struct mc_read_opts {
    enum mc_consistency consistency;
    uint32_t max_staleness_ms; /* stale only; 0 = no bound. Refused (StaleRead) when the
                                  member has not heard from a leader within this long. */
};

/* Parse "linearizable" | "stale"; returns 0 or MC_EINVAL. */
int mc_consistency_parse(const char *s, enum mc_consistency *out);

/* ---- admin reply shapes (encoded by the protocol; see docs/protocol.md) ---- */

#define MC_ADDR_MAX            64 /* "host:port" incl. NUL */
#define MC_CLUSTER_MAX_MEMBERS 16

struct mc_ping_info {
    uint64_t node_id;
    uint64_t leader_id; /* 0 = unknown */
    uint64_t term;
};

struct mc_member_status {
    uint64_t id;
    char peer_addr[MC_ADDR_MAX];
    char client_addr[MC_ADDR_MAX]; /* "" = unknown */
    bool learner;
    bool reachable;       /* as seen by the answering node (the leader knows best) */
    uint64_t match_index; /* leader's view; 0 when unknown */
};

struct mc_cluster_status {
    uint64_t node_id; /* the answering node */
    uint64_t leader_id;
    uint64_t term;
    uint64_t commit_index;
    uint64_t applied_index;
    uint64_t snapshot_index;
    uint32_t n_members;
    struct mc_member_status members[MC_CLUSTER_MAX_MEMBERS];
};

struct mc_check_result {
    uint64_t node_id;
    uint64_t index; /* the applied index the hash was taken at */
    uint64_t hash;  /* state hash (engine) */
};

struct mc_snapshot_chunk {
    uint64_t offset;
    uint64_t total_bytes;
    uint64_t checksum; /* of the whole snapshot; set on the last chunk only */
    const uint8_t *data;
    uint32_t len;
};

/* ---- opening ---- */

struct mc_client_opts {
    uint32_t request_timeout_ms; /* default 5000 */
    uint32_t connect_timeout_ms; /* default 1000 */
    uint32_t backoff_min_ms;     /* default 5 */
    uint32_t backoff_max_ms;     /* default 500 */
    uint32_t max_pending;        /* requests queued + in flight; default 65536; submit
                                    returns MC_ELIMIT beyond */
    uint32_t session_window;     /* writes in flight per session; default
                                    MC_SESSION_RESULTS_KEPT (the results the engine keeps per
                                    session, so any retry finds its cached answer) */
    uint32_t max_sessions;       /* sessions one client opens to go deeper; default 64 */
    struct mc_read_opts read;    /* consistency used by the blocking read wrappers */
    bool follower_reads;         /* linearizable reads rotate over every member (followers
                                    then ask the leader for a read index); default false: they
                                    go to the leader once known (asked with a LEADER request),
                                    one hop and no follower round per batch */
    /* Ask the kernel when each read's bytes reached the socket (SO_TIMESTAMPNS; plaintext
     * only): mc_client_rx_ns gives it to the reply callbacks, for load generators that do not
     * read each reply as it arrives. Default false. */
    bool rx_timestamps;
    const char *token; /* bearer token (≤ MC_CLIENT_TOKEN_MAX bytes), sent in an AUTH
                          request first on every connection; NULL/"" = none. Copied
                          by mc_client_open. */
    /* TLS (docs/security.md): on when tls_ca_file is set. The server certificate must chain
     * to that CA and name the dialed host (IP SAN for numeric hosts). cert/key: a client
     * certificate for servers with --client-cert-auth. Files are read by mc_client_open. */
    const char *tls_ca_file;
    const char *tls_cert_file;
    const char *tls_key_file;
    bool tls_skip_host_verify; /* chain only, no host name check, for the endpoints given to
                                  mc_client_open only (members learned later from leader
                                  hints are checked by name): for the node's own loopback
                                  clients (HTTP layer); never for remote use */
    /* A request's first failed attempt is final: a lost or refused connection completes it with
     * MC_EIO (a write that went out: outcome unknown), a retriable answer (NotLeader, Unavailable,
     * ShuttingDown, SlowDown, StaleRead, a write's Timeout) with that answer, instead of a retry
     * until its deadline. For a caller that asks one member and handles a failure itself (the
     * CLI's `check`: a member that stops mid-hash is reported, not waited for). Default false.
     * no_retry completes from poll only: a connect that fails inside the submit call ends the
     * request there, but its callback runs from the next mc_client_poll / mc_client_step, like
     * every other. The exception: a write's first NoSuchSession (its session expired on the
     * cluster) still takes a fresh session and is sent once more: nothing was applied under the
     * old one, and the member answered, so this is no failure of the member; a second one is
     * final (outcome unknown). */
    bool no_retry;
};
#define MC_CLIENT_TOKEN_MAX 256

void mc_client_opts_default(struct mc_client_opts *o);

/*
 * endpoints: "host:port[,host:port...]" (at most 16; numeric IPv4 or "localhost").
 * opts may be NULL. Connects lazily. Returns 0, MC_EINVAL (bad list) or MC_ENOMEM.
 */
int mc_client_open(const char *endpoints, const struct mc_client_opts *opts,
                   struct mc_client **out);

/* Close every connection; pending callbacks run with MC_ESHUTDOWN first. */
void mc_client_close(struct mc_client *c);

/* Number of known endpoints (grows when a NotLeader names an unlisted leader). */
int mc_client_endpoint_count(const struct mc_client *c);
const char *mc_client_endpoint_addr(const struct mc_client *c, int index);
/* Index of the leader endpoint as last learned, or -1. */
int mc_client_leader_index(const struct mc_client *c);
/* The session id (0 until the first write registered one). */
uint64_t mc_client_session_id(const struct mc_client *c);
/* The deadline of the requests submitted from now on (opts.request_timeout_ms; 0 = the default
 * 5000 ms): one client (one connection, one TLS handshake) for a quick probe, then a long wait.
 * Requests already submitted keep theirs. */
void mc_client_set_request_timeout(struct mc_client *c, uint32_t ms);

/* ---- async API ---- */

/*
 * Outcome of one request, valid only during the callback (copy what you keep), and only until
 * the callback drives the client (mc_client_poll, mc_client_handle: allowed, but the replies it
 * reads may move the buffer body points into).
 * body: on success, the op's reply body: for writes and reads the engine's encoding of
 * the result (decode with the engine codecs, or use the blocking wrappers); for admin
 * calls a protocol shape (mc_client_decode_*).
 */
struct mc_client_result {
    int status;           /* 0 or negative MC_E* */
    bool outcome_unknown; /* write sent but no definite answer (timeout, shutdown, a final
                             retriable error after a lost answer) */
    bool more;            /* streamed reply: more parts follow (snapshot chunks) */
    const uint8_t *body;
    size_t body_len;
    const char *message;     /* error text from the server, or ""; never NULL */
    uint64_t leader_id;      /* NotLeader hint (only returned for pinned requests) */
    const char *leader_addr; /* "" when unknown */
    bool delete_marker;      /* NoSuchKey because the latest version is a delete marker */
    const char *version_id;  /* with delete_marker: the marker's version id */
    int endpoint;            /* index of the endpoint that answered, -1 if none */
};

typedef void (*mc_client_cb)(void *arg, const struct mc_client_result *r);

/*
 * Drive I/O: send queued requests, read replies, run callbacks, fire timeouts and
 * retries. Waits up to timeout_ms (0 = don't block, -1 = until something completes) for
 * at least one event. Returns the number of callbacks run (≥ 0) or a negative MC_E* code.
 */
int mc_client_poll(struct mc_client *c, int timeout_ms);

/*
 * Driving many clients from one event loop (epoll) instead of mc_client_poll:
 * mc_client_fd gives endpoint i's socket (-1 when none), the poll(2) events it waits for
 * (POLLIN, plus POLLOUT while connecting or with output queued) and a generation that changes
 * whenever the endpoint gets a new socket (the same fd number may come back: register again);
 * i must be an endpoint (0 .. count - 1) and events and gen are required (not NULL).
 * After the loop reports events for that socket, call mc_client_handle; after submitting, and
 * at least every few milliseconds (timeouts, retries), call mc_client_step, which sends what is
 * queued (one send per endpoint). Both return the number of callbacks run, never block.
 */
int mc_client_fd(const struct mc_client *c, int i, short *events, uint32_t *gen);
/* Inside a reply callback run by mc_client_handle, with opts.rx_timestamps: when the bytes that
 * completed this reply reached the socket, on the mc_mono_ns clock (the newest packet of the
 * read that completed it, so never earlier than the reply's own arrival unless the wall clock
 * stepped meanwhile: the kernel stamps with it). 0 elsewhere, over TLS, or when the read that
 * completed it brought no time. */
uint64_t mc_client_rx_ns(const struct mc_client *c);
int mc_client_handle(struct mc_client *c, int i, short revents);
int mc_client_step(struct mc_client *c);

/* Requests submitted and not yet completed. */
size_t mc_client_pending(const struct mc_client *c);

/*
 * Write: one engine-encoded op record (n_ops == 1) or an atomic batch (n_ops > 1, at most
 * 1000). The records are copied. Returns 0 (the callback will run) or MC_EINVAL,
 * MC_ETOOLARGE (over the 4 MiB frame), MC_ELIMIT (max_pending reached).
 */
int mc_client_write_async(struct mc_client *c, uint32_t n_ops, const void *const *ops,
                          const size_t *lens, mc_client_cb cb, void *arg);

/* GET (head = false) or HEAD of an object; version_id NULL/"" = latest. ro NULL = opts.read. */
int mc_client_get_async(struct mc_client *c, bool head, const char *bucket, const char *key,
                        const char *version_id, const struct mc_read_opts *ro, mc_client_cb cb,
                        void *arg);

struct mc_list_args {
    const char *bucket;
    const char *prefix;             /* NULL = "" */
    const char *delimiter;          /* NULL = none */
    const char *start_after;        /* ListObjectsV2 only */
    const char *continuation_token; /* ListObjectsV2 only */
    const char *key_marker;         /* ListObjectVersions only */
    const char *version_id_marker;  /* ListObjectVersions only */
    uint32_t max_keys;              /* 0 = 1000 */
};

int mc_client_list_objects_async(struct mc_client *c, const struct mc_list_args *a,
                                 const struct mc_read_opts *ro, mc_client_cb cb, void *arg);
int mc_client_list_versions_async(struct mc_client *c, const struct mc_list_args *a,
                                  const struct mc_read_opts *ro, mc_client_cb cb, void *arg);
int mc_client_list_buckets_async(struct mc_client *c, const struct mc_read_opts *ro,
                                 mc_client_cb cb, void *arg);
int mc_client_head_bucket_async(struct mc_client *c, const char *bucket,
                                const struct mc_read_opts *ro, mc_client_cb cb, void *arg);

/*
 * Admin. endpoint = -1: membership changes go to the leader, the others to any member;
 * endpoint ≥ 0 pins the request to that endpoint (no redirect: NotLeader is returned).
 */
int mc_client_ping_async(struct mc_client *c, int endpoint, mc_client_cb cb, void *arg);
int mc_client_status_async(struct mc_client *c, int endpoint, mc_client_cb cb, void *arg);
int mc_client_add_member_async(struct mc_client *c, uint64_t id, const char *peer_addr,
                               const char *client_addr, bool learner, mc_client_cb cb, void *arg);
int mc_client_promote_async(struct mc_client *c, uint64_t id, mc_client_cb cb, void *arg);
int mc_client_remove_member_async(struct mc_client *c, uint64_t id, mc_client_cb cb, void *arg);
int mc_client_transfer_leader_async(struct mc_client *c, uint64_t id, mc_client_cb cb, void *arg);
/* Streamed: the callback runs once per chunk (result.more = true) then once more, last. */
int mc_client_snapshot_async(struct mc_client *c, int endpoint, mc_client_cb cb, void *arg);
/* The same, for a client that retries Busy itself: the image streamed has index ≥ min_index
 * (0 = the member's applied index when the request arrives). A Busy answer carries the index
 * to send on the retries (mc_client_decode_save_busy), to the same endpoint: another member has
 * its own applied index, so a save moved elsewhere starts again with 0. */
int mc_client_snapshot_from_async(struct mc_client *c, int endpoint, uint64_t min_index,
                                  mc_client_cb cb, void *arg);
/* State hash at index (0 = current applied index) on one endpoint. */
int mc_client_check_async(struct mc_client *c, int endpoint, uint64_t index, mc_client_cb cb,
                          void *arg);

/* Typed async write: encodes op (session/seq/time/version ids are filled in by client and
 * leader) and submits it. Decode the callback's body with mc_client_decode_result. */
int mc_client_op_async(struct mc_client *c, const struct mc_op *op, mc_client_cb cb, void *arg);

/*
 * The write's mc_op_result from a callback (success or a failed op: code, failed_op,
 * version_id, delete_marker). Returns 0, or MC_EPROTO / r->status when the reply carries
 * no result (e.g. a timeout).
 */
int mc_client_decode_result(const struct mc_client_result *r, struct mc_op_result *out);

/* Decoders for admin reply bodies. Return 0 or MC_EPROTO. */
int mc_client_decode_ping(const struct mc_client_result *r, struct mc_ping_info *out);
int mc_client_decode_status(const struct mc_client_result *r, struct mc_cluster_status *out);
int mc_client_decode_check(const struct mc_client_result *r, struct mc_check_result *out);
int mc_client_decode_chunk(const struct mc_client_result *r, struct mc_snapshot_chunk *out);
/* The min index a Busy answer to a snapshot save carries: 0, or MC_ENOTFOUND (not Busy, or a
 * server before session 12). */
int mc_client_decode_save_busy(const struct mc_client_result *r, uint64_t *min_index);

/* ---- blocking API ---- */

/*
 * Details of the last failed blocking call on this client (server message, delete-marker
 * flag, outcome_unknown). message is "" when none.
 */
struct mc_client_error {
    int status;
    bool outcome_unknown;
    bool delete_marker;
    char message[256];
    char version_id[128];
    uint64_t leader_id;
    char leader_addr[MC_ADDR_MAX];
};
const struct mc_client_error *mc_client_last_error(const struct mc_client *c);

/* A reply body owned by the caller (free with mc_client_buf_free). */
struct mc_client_buf {
    uint8_t *data;
    size_t len;
};
void mc_client_buf_free(struct mc_client_buf *b);

/* Blocking raw calls: the reply body is copied into *out (may be NULL to discard). */
int mc_client_write(struct mc_client *c, uint32_t n_ops, const void *const *ops, const size_t *lens,
                    struct mc_client_buf *out);
int mc_client_get_raw(struct mc_client *c, bool head, const char *bucket, const char *key,
                      const char *version_id, struct mc_client_buf *out);
int mc_client_list_objects_raw(struct mc_client *c, const struct mc_list_args *a,
                               struct mc_client_buf *out);
int mc_client_list_versions_raw(struct mc_client *c, const struct mc_list_args *a,
                                struct mc_client_buf *out);
int mc_client_list_buckets_raw(struct mc_client *c, struct mc_client_buf *out);
int mc_client_head_bucket_raw(struct mc_client *c, const char *bucket, struct mc_client_buf *out);

/* ---- blocking typed calls (engine structs; see engine.h for ownership) ---- */

/* Any op record (the client fills in nothing but session/seq). out may be NULL. Returns the
 * op's code (0, MC_EPRECOND, MC_ENOBUCKET, ...) or a transport error. */
int mc_client_op(struct mc_client *c, const struct mc_op *op, struct mc_op_result *out);
/* Atomic batch: all ops apply or none (out->failed_op names the failing one). */
int mc_client_batch(struct mc_client *c, const struct mc_op *ops, uint32_t n,
                    struct mc_op_result *out);

int mc_client_bucket_create(struct mc_client *c, const char *bucket, enum mc_versioning v);
int mc_client_bucket_delete(struct mc_client *c, const char *bucket);
int mc_client_bucket_versioning(struct mc_client *c, const char *bucket, enum mc_versioning v);
int mc_client_bucket_head(struct mc_client *c, const char *bucket, struct mc_bucket_info *out);
/* *out malloc'd (free()). */
int mc_client_bucket_list(struct mc_client *c, struct mc_bucket_info **out, size_t *n);

struct mc_put_cond {
    const char *if_match;    /* NULL = none */
    bool if_none_match_star; /* fail when a live latest version exists */
};
/* meta may be NULL; cond may be NULL. out (may be NULL) gets version_id. */
int mc_client_put(struct mc_client *c, const char *bucket, const char *key,
                  const struct mc_object_meta *meta, const struct mc_put_cond *cond,
                  struct mc_op_result *out);
/* Latest (version_id NULL) or one version. A delete marker as latest: MC_ENOKEY, and
 * mc_client_last_error(c)->delete_marker is set. out: mc_version_clear() it. */
int mc_client_get(struct mc_client *c, const char *bucket, const char *key, const char *version_id,
                  struct mc_version *out);
int mc_client_head(struct mc_client *c, const char *bucket, const char *key, const char *version_id,
                   struct mc_version *out);
/* Delete (versioned bucket without version_id: adds a delete marker). */
int mc_client_delete(struct mc_client *c, const char *bucket, const char *key,
                     const char *version_id, struct mc_op_result *out);
int mc_client_update_meta(struct mc_client *c, const char *bucket, const char *key,
                          const char *version_id, uint32_t update_mask,
                          const struct mc_object_meta *meta, struct mc_op_result *out);
/* out: mc_list_result_clear() it. */
int mc_client_list_objects(struct mc_client *c, const struct mc_list_args *a,
                           struct mc_list_result *out);
int mc_client_list_versions(struct mc_client *c, const struct mc_list_args *a,
                            struct mc_list_result *out);

/* Blocking admin calls. */
int mc_client_ping(struct mc_client *c, int endpoint, struct mc_ping_info *out);
int mc_client_cluster_status(struct mc_client *c, int endpoint, struct mc_cluster_status *out);
int mc_client_add_member(struct mc_client *c, uint64_t id, const char *peer_addr,
                         const char *client_addr, bool learner);
int mc_client_promote(struct mc_client *c, uint64_t id);
int mc_client_remove_member(struct mc_client *c, uint64_t id);
int mc_client_transfer_leader(struct mc_client *c, uint64_t id);
/* Stream a snapshot from one member (-1 = any) into the file at path (written atomically:
 * path.tmp then rename). *total_bytes (may be NULL) gets its size. */
int mc_client_snapshot_save(struct mc_client *c, int endpoint, const char *path,
                            uint64_t *total_bytes);
int mc_client_check(struct mc_client *c, int endpoint, uint64_t index, struct mc_check_result *out);

#endif
