/* engine.h: the local metadata engine (L2): buckets, object versions, S3 listing, op records on
 * LMDB. */
#ifndef METACENTER_ENGINE_H
#define METACENTER_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Model (DESIGN.md §2.1). Reads are plain functions over LMDB read transactions
 * (callable from any thread, never block writes). Every mutation is an
 * operation record (struct mc_op) applied through mc_engine_apply() at a Raft
 * log index, in one LMDB write transaction that also stores applied_index, the
 * client-session table and optionally the membership blob. Version ids and
 * times are fields of the op (chosen by the leader), so apply is deterministic.
 *
 * Ownership: every pointer inside mc_object_meta / mc_version / mc_op /
 * mc_list_result is heap memory owned by that struct; release with the
 * matching _clear/_free function. Structs are plain values (zero = empty).
 */

/* ---- limits (each is checked; exceeding one gives the error named) ---- */
#define MC_BUCKET_NAME_MIN     3
#define MC_BUCKET_NAME_MAX     63          /* MC_EBUCKETNAME */
#define MC_KEY_MAX_BYTES       1024        /* MC_EKEYTOOLONG; empty/invalid UTF-8/NUL: MC_EBADKEY */
#define MC_USER_META_MAX_BYTES 2048        /* sum of key+value lengths: MC_EMETATOOLARGE */
#define MC_USER_META_MAX_PAIRS 128         /* MC_EMETATOOLARGE */
#define MC_INLINE_MAX_BYTES    (64 * 1024) /* MC_ETOOLARGE */
#define MC_VERSION_ID_MAX      64          /* bytes; printable ASCII, no '\0' (MC_EINVAL) */
#define MC_SHORT_STR_MAX       1024        /* etag, content_type, storage_class, data_dir, ... */
#define MC_PARTS_MAX           10000       /* S3 multipart limit */
#define MC_DISTRIBUTION_MAX    256         /* erasure distribution entries */
#define MC_LIST_MAX_KEYS       1000        /* default and cap for max_keys */
/* A listing page ends early (truncated) past this: encoded, it must fit one reply frame. */
#define MC_LIST_PAGE_BYTES      (2u * 1024 * 1024)
#define MC_DELIMITER_MAX        64          /* bytes */
#define MC_CONF_MAX_BYTES       (64 * 1024) /* opaque membership blob */
#define MC_APPLY_MAX_OPS        4096 /* ops per mc_engine_apply call, atomic sub-ops included */
#define MC_ATOMIC_MAX_OPS       1000 /* sub-ops of one MC_OP_ATOMIC */
#define MC_OP_MAX_BYTES         (2u * 1024 * 1024) /* encoded op record */
#define MC_SESSION_RESULTS_KEPT 4096 /* unacknowledged results per session: MC_ELIMIT beyond */
#define MC_TOKEN_MAX            4096 /* continuation token chars */
/* Expired sessions one apply removes, at most (the rest go in the next applies; an expired
 * session still stored answers as a removed one): a mass expiry is spread over many entries
 * instead of stalling every replica's loop in one (aud18 R5). Also stops once this many of
 * their cached results are removed (a session's results go with it, whole). */
#define MC_SESSION_EXPIRE_PER_APPLY         1024
#define MC_SESSION_EXPIRE_RESULTS_PER_APPLY 8192

/* An unknown or expired client session (re-register). Alias of an existing code. */
#define MC_ENOSESSION MC_ENOTFOUND

/* ---- engine lifecycle ---- */

enum mc_engine_sync {
    MC_ENGINE_SYNC_FULL = 0, /* fsync on every commit (default; offline CLI) */
    MC_ENGINE_SYNC_NONE = 1, /* no fsync (node: the Raft WAL is the durability source) */
};

struct mc_engine_options {
    uint64_t map_size_bytes;     /* initial LMDB map size; 0 = 256 MiB (grows when full) */
    uint64_t max_map_size_bytes; /* growth cap; 0 = 64 GiB. Full at the cap: MC_ENOSPC naming
                                    the limit and the flag --max-map-size */
    enum mc_engine_sync sync;
    bool no_create;          /* true: a missing/empty dir is an error (MC_ENOTFOUND) */
    bool read_only;          /* open read-only (still takes the LOCK; apply → MC_EINVAL) */
    uint64_t session_ttl_ns; /* sessions idle longer than this, in op time, expire; 0 = 1 hour.
                                Must be equal on every replica (it shapes replicated state). */
    unsigned max_readers;    /* concurrent read transactions; 0 = 126 */
};

struct mc_engine;

/*
 * Open (creating if needed) the engine in directory `dir` (the node uses
 * DATADIR/engine). Errors: MC_ENOTOURS (dir holds files that are not an engine),
 * MC_ELOCKED (another process holds dir/LOCK), MC_EVERSION (newer format),
 * MC_EIO. A one-line explanation is available from mc_engine_last_error().
 * The environment uses MDB_WRITEMAP: data.mdb is a sparse file as large as the
 * map, and a disk that fills up under it stops the process (SIGBUS) instead of
 * returning an error (fail-stop; the node replays from its Raft log).
 */
int mc_engine_open(const char *dir, const struct mc_engine_options *opts, struct mc_engine **out);
void mc_engine_close(struct mc_engine *eng);
/* Flush to disk (useful with MC_ENGINE_SYNC_NONE, e.g. before a snapshot or shutdown): the
 * dirty map pages go out in MC_ENGINE_SYNC_STEP_BYTES ranges, one in flight at a time. */
#define MC_ENGINE_SYNC_STEP_BYTES (2u << 20)
int mc_engine_sync(struct mc_engine *eng);
/* Thread-local: a human sentence about the last error an engine call returned on this thread. */
const char *mc_engine_last_error(void);

/* ---- data model ---- */

enum mc_versioning {
    MC_VERSIONING_UNVERSIONED = 0,
    MC_VERSIONING_ENABLED = 1,
    MC_VERSIONING_SUSPENDED = 2,
};
const char *mc_versioning_name(enum mc_versioning v); /* "unversioned"|"enabled"|"suspended" */
int mc_versioning_parse(const char *s, enum mc_versioning *out);

struct mc_bucket_info {
    char name[MC_BUCKET_NAME_MAX + 1];
    int64_t created_ns;
    enum mc_versioning versioning;
};

struct mc_kv {
    char *key;
    char *value;
};

struct mc_part {
    uint32_t number;
    uint64_t size;
    char *etag;
};

struct mc_erasure {
    uint32_t data_blocks;
    uint32_t parity_blocks;
    uint32_t block_size;
    uint32_t n_distribution; /* ≤ MC_DISTRIBUTION_MAX */
    uint32_t *distribution;
};

/* The content of a version (what a put carries). NULL strings mean empty. */
struct mc_object_meta {
    uint64_t size;
    char *etag;
    char *content_type;
    struct mc_kv *user_meta; /* ≤ MC_USER_META_MAX_PAIRS, total ≤ MC_USER_META_MAX_BYTES */
    uint32_t n_user_meta;
    char *storage_class;
    struct mc_erasure erasure;
    char *data_dir;        /* data_dir id */
    struct mc_part *parts; /* ≤ MC_PARTS_MAX */
    uint32_t n_parts;
    char *checksum_algorithm;
    char *checksum_value;
    uint8_t *inline_data; /* ≤ MC_INLINE_MAX_BYTES */
    uint32_t inline_len;
    /* Set in versions returned by mc_engine_get: all strings and arrays of the version (key,
       version_id and this meta) live in this one allocation (a read does one malloc instead of
       ~15). Such a version is read-only: do not free or replace single fields; release it with
       mc_version_clear, or mc_version_copy it to get individually owned fields. NULL otherwise. */
    void *block;
};

struct mc_version {
    char bucket[MC_BUCKET_NAME_MAX + 1];
    char *key;
    char *version_id; /* "null" for the null version */
    bool is_delete_marker;
    bool is_latest; /* filled by reads */
    int64_t mod_time_ns;
    uint64_t seq; /* engine ordering within a key: (log index << 16) | position */
    struct mc_object_meta meta;
};

void mc_object_meta_clear(struct mc_object_meta *m);
int mc_object_meta_copy(struct mc_object_meta *dst, const struct mc_object_meta *src);
/* Append a user metadata pair (copies both strings). */
int mc_object_meta_add_user(struct mc_object_meta *m, const char *key, const char *value);
void mc_version_clear(struct mc_version *v);
int mc_version_copy(struct mc_version *dst, const struct mc_version *src);

/* Validation (also applied by mc_engine_apply; exported for early CLI/HTTP errors). The rules
 * apply enforces never change without a format gate: replicas of different versions (a rolling
 * upgrade) must apply the same log alike, so a rule added later is an *input* check
 * (mc_validate_new_bucket_name, mc_validate_object_meta_input), made before an op is proposed. */
int mc_validate_bucket_name(const char *name); /* 0 or MC_EBUCKETNAME */
/* mc_validate_bucket_name plus S3's reserved prefixes/suffixes (xn--, sthree-, amzn-s3-demo-,
 * -s3alias, --ol-s3, .mrap, --x-s3, --table-s3): for a bucket being created (node_write.c, CLI).
 * Buckets that exist under such names keep working. 0 or MC_EBUCKETNAME. */
int mc_validate_new_bucket_name(const char *name);
int mc_validate_key(const char *key, size_t len); /* 0, MC_EKEYTOOLONG or MC_EBADKEY */
int mc_validate_object_meta(
    const struct mc_object_meta *m); /* 0, MC_EMETATOOLARGE, MC_ETOOLARGE, MC_EINVAL */
/* mc_validate_object_meta plus the input rules added in session 8: mc_validate_etag and part
 * numbers 1..MC_PARTS_MAX, ascending, each once (MC_EINVAL with a message). Made by the HTTP
 * and CLI parsers; apply does not (see above), and an etag that fails it is never sent in an
 * ETag header (handlers.c). */
int mc_validate_object_meta_input(const struct mc_object_meta *m);
/* An object's etag (NULL/"" = none): at most MC_SHORT_STR_MAX bytes of printable ASCII without
 * '"' or space (RFC 9110 §8.8.3 etagc, obs-text left out): it is sent as a quoted ETag header,
 * where a '"' or a control byte (CR LF: response splitting) would break it. 0 or MC_EINVAL (with
 * mc_engine_last_error saying which byte). Part of mc_validate_object_meta_input. */
int mc_validate_etag(const char *etag);

/* A 16-hex-char version id from time and a counter: the form nodes used before op-time ids
 * (keeps only the low 44 bits of the microseconds); tests use it to make such ids. */
void mc_version_id_make(char out[17], int64_t time_ns, uint64_t counter);
/* The node's version id: the op time in ns as 16 hex chars. Op times are strictly increasing
 * cluster-wide per op (node_write.c op_time_now), so these ids are unique and sort in write
 * order. Lookups compare ids for equality (the vids index), so older ids stored in the other
 * form keep working; only a ListObjectVersions marker whose version is gone is read as a time
 * (list.c marker_gone, which refuses where older-format ids are around it or the time is past
 * the newest op time applied). */
void mc_version_id_from_time(char out[17], int64_t time_ns);

/* ---- operation records ---- */

enum mc_op_type {
    MC_OP_NOOP = 0,              /* does nothing (still consumes a result slot) */
    MC_OP_BUCKET_CREATE = 1,     /* bucket, versioning (initial), time_ns = created */
    MC_OP_BUCKET_DELETE = 2,     /* bucket; MC_EBUCKETNOTEMPTY while any version remains */
    MC_OP_BUCKET_VERSIONING = 3, /* bucket, versioning (enabled|suspended only) */
    MC_OP_PUT = 4,         /* bucket, key, new_version_id, if_match, if_none_match_star, meta */
    MC_OP_DELETE = 5,      /* bucket, key, version_id (NULL: latest / marker), new_version_id.
                              A well-formed version_id that does not exist: success, nothing
                              changes (S3 204); malformed: MC_EINVAL */
    MC_OP_UPDATE_META = 6, /* bucket, key, version_id (NULL = latest), update_mask, meta */
    MC_OP_SESSION_REGISTER = 7, /* result.session_id = the log index it was applied at */
    MC_OP_ATOMIC = 8,           /* sub[]: all or nothing; result.failed_op names the failing one */
};
#define MC_OP_TYPE_MAX 8
const char *mc_op_type_name(enum mc_op_type t);

/* UPDATE_META mask bits */
#define MC_UPDATE_USER_META     0x1u
#define MC_UPDATE_CONTENT_TYPE  0x2u
#define MC_UPDATE_STORAGE_CLASS 0x4u

struct mc_op {
    enum mc_op_type type;
    uint64_t session_id; /* 0 = no session; else exactly-once via (session_id, seq) */
    uint64_t seq;        /* per-session sequence, ≥ 1 */
    uint64_t acked_seq;  /* < seq: the client has the reply of every seq ≤ acked_seq, so the
                            engine may drop those results (Raft thesis §6.3). See apply. */
    int64_t time_ns;     /* op time chosen by the leader: mod time / created time / session clock */
    char bucket[MC_BUCKET_NAME_MAX + 1];
    char *key;
    char *version_id;        /* DELETE/UPDATE_META target version; NULL = latest */
    char *new_version_id;    /* PUT/DELETE: id of the version or marker written when the bucket's
                                versioning is enabled ("null" is used otherwise) */
    char *if_match;          /* PUT: etag the current live latest version must have */
    bool if_none_match_star; /* PUT: fail when a live latest version exists */
    enum mc_versioning versioning; /* BUCKET_CREATE initial state / BUCKET_VERSIONING target */
    uint32_t update_mask;          /* UPDATE_META: MC_UPDATE_* bits */
    struct mc_object_meta meta;    /* PUT content / UPDATE_META new values */
    struct mc_op *sub; /* ATOMIC: owned array of sub-ops (no nested ATOMIC, no sessions) */
    uint32_t n_sub;
};

/* Constructors: op must be zeroed or cleared; strings and meta are deep-copied. They return 0,
 * MC_EBUCKETNAME, MC_EKEYTOOLONG (key over MC_KEY_MAX_BYTES), MC_EINVAL (a version id over
 * MC_VERSION_ID_MAX: the op codec caps both, so a sent op would be a protocol error) or
 * MC_ENOMEM; after a refusal the op may hold copies: mc_op_clear it. */
int mc_op_bucket_create(struct mc_op *op, const char *bucket, enum mc_versioning v,
                        int64_t time_ns);
int mc_op_bucket_delete(struct mc_op *op, const char *bucket);
int mc_op_bucket_versioning(struct mc_op *op, const char *bucket, enum mc_versioning v);
int mc_op_put(struct mc_op *op, const char *bucket, const char *key, const char *new_version_id,
              int64_t time_ns, const struct mc_object_meta *meta /* may be NULL */);
int mc_op_delete(struct mc_op *op, const char *bucket, const char *key,
                 const char *version_id /* NULL = latest */, const char *new_version_id,
                 int64_t time_ns);
int mc_op_update_meta(struct mc_op *op, const char *bucket, const char *key, const char *version_id,
                      uint32_t update_mask, const struct mc_object_meta *meta, int64_t time_ns);
int mc_op_session_register(struct mc_op *op, int64_t time_ns);
/* ATOMIC over n sub-ops; takes ownership of each subs[i]'s contents (subs[i] are zeroed). */
int mc_op_atomic(struct mc_op *op, struct mc_op *subs, uint32_t n);
void mc_op_clear(struct mc_op *op);
int mc_op_copy(struct mc_op *dst, const struct mc_op *src);

/* The outcome of one op (fixed size: cached per session for exactly-once replies). */
struct mc_op_result {
    int code;            /* 0 or a negative MC_E* code */
    int32_t failed_op;   /* ATOMIC: index of the failing sub-op; -1 otherwise */
    bool delete_marker;  /* DELETE: a marker was created, or the version removed was a marker */
    bool duplicate;      /* a session duplicate: the cached result was returned, nothing applied */
    bool skipped;        /* the whole call was at an index ≤ applied_index: nothing applied */
    uint64_t session_id; /* SESSION_REGISTER: the new session id */
    char version_id[MC_VERSION_ID_MAX + 1]; /* version written (PUT, marker) or removed */
};

/*
 * Codec of op records (carried in the Raft log and on the client wire).
 * Format: u8 format version (MC_OP_FORMAT_VERSION), then fields; every length
 * bounded. Encode appends to w. Decode needs the exact bytes of one op:
 * truncated/corrupt/oversized input → MC_EPROTO (or MC_EVERSION), never a crash;
 * on error *out is left cleared.
 */
/* Version 2 added acked_seq (after seq). Decode accepts 1 (acked_seq = 0) and 2; encode writes
 * 1 when the op and its sub-ops have acked_seq == 0 (byte-identical to older builds), else 2. */
#define MC_OP_FORMAT_VERSION     2
#define MC_OP_FORMAT_VERSION_MIN 1
struct mc_wbuf;
int mc_op_encode(const struct mc_op *op, struct mc_wbuf *w);
int mc_op_decode(const void *data, size_t len, struct mc_op *out);
/* As mc_op_decode, but every string and array (sub-ops included) lives in one allocation,
 * out->meta.block (one malloc instead of one per field): a read-only op, for apply. Do not
 * free or replace single fields; release with mc_op_clear. */
int mc_op_decode_block(const void *data, size_t len, struct mc_op *out);
int mc_op_result_encode(const struct mc_op_result *r, struct mc_wbuf *w);
int mc_op_result_decode(const void *data, size_t len, struct mc_op_result *out);

/* ---- apply (the only way state changes) ---- */

/*
 * Apply ops[0..n_ops) at Raft log `index` in ONE write transaction that also
 * stores applied_index = index and, when conf != NULL, the membership blob
 * (conf_len ≤ MC_CONF_MAX_BYTES). n_ops may be 0 (no-op/conf entries just
 * advance applied_index). Ops are independent: each gets results[i] (an op
 * that fails changes nothing). index ≤ applied_index: nothing happens and every
 * result has skipped = true (idempotent replay after a crash).
 * Returns 0 when committed (or skipped); MC_ENOSPC (map at its cap), MC_EIO,
 * MC_EINVAL (n_ops > MC_APPLY_MAX_OPS, index 0, read-only) abort the whole call.
 *
 * Sessions (exactly-once, Raft thesis §6.3): an op with session_id != 0 carries
 * (seq, acked_seq). The engine keeps, per session, acked = the largest
 * acked_seq seen and the result of every applied seq > acked (results ≤ acked
 * are dropped). For an incoming op:
 *   - session unknown or expired                 → MC_ENOSESSION
 *   - seq == 0 or acked_seq >= seq                → MC_EINVAL (malformed)
 *   - seq ≤ acked (already acknowledged)          → MC_EINVAL (not a live retry)
 *   - a result for seq is cached                  → that result, duplicate = true
 *   - MC_SESSION_RESULTS_KEPT results are cached  → MC_ELIMIT (advance acked_seq)
 *   - otherwise                                   → applied once, result cached
 * Seqs may arrive in any order (a pipelined client's retry of 5 after 6
 * applied applies 5). A client that never advances acked_seq gets MC_ELIMIT
 * after MC_SESSION_RESULTS_KEPT writes on one session.
 */
int mc_engine_apply(struct mc_engine *eng, uint64_t index, const struct mc_op *ops, size_t n_ops,
                    const void *conf, size_t conf_len, struct mc_op_result *results);
/* Offline convenience (CLI on a stopped node): apply one op at applied_index + 1. An op that
 * fails (result->code != 0) commits nothing: applied_index stays as it was. */
int mc_engine_apply_one(struct mc_engine *eng, const struct mc_op *op, struct mc_op_result *result);

/* ---- reads ---- */

int mc_engine_applied_index(struct mc_engine *eng, uint64_t *applied_index);
/* The newest op time applied (the session clock; 0 when none): a leader stamps above it, also
 * after a restart whose log was compacted into the engine image (node_write.c). */
int mc_engine_op_clock(struct mc_engine *eng, int64_t *time_ns);
/* How many buckets exist (O(1): kept by apply, counted at open). */
uint64_t mc_engine_bucket_count(struct mc_engine *eng);
/* How many sessions are stored (O(1): kept by apply, counted at open), expired ones not
 * removed yet included (MC_SESSION_EXPIRE_PER_APPLY): the leader's --max-sessions cap. */
uint64_t mc_engine_session_count(struct mc_engine *eng);
/* Whether some stored session is idle past the TTL at op time clock_ns (only the least recently
 * active one is read), so an apply at that op time would remove one. 0 or an LMDB error. */
int mc_engine_sessions_expired(struct mc_engine *eng, int64_t clock_ns, bool *some);
/* Membership blob (malloc'd, caller frees; *conf = NULL, *len = 0 when none). */
int mc_engine_conf(struct mc_engine *eng, void **conf, size_t *conf_len);

int mc_engine_bucket_head(struct mc_engine *eng, const char *bucket, struct mc_bucket_info *out);
/* All buckets sorted by name; *out malloc'd (free()). */
int mc_engine_bucket_list(struct mc_engine *eng, struct mc_bucket_info **out, size_t *n);

/*
 * Latest version (version_id NULL) or a given one. MC_ENOBUCKET, MC_ENOKEY,
 * MC_ENOVERSION. When the latest is a delete marker the call returns MC_ENOKEY
 * AND fills *out with the marker (out->is_delete_marker = true); on other errors
 * *out is cleared. with_inline: also copy inline data.
 */
int mc_engine_get(struct mc_engine *eng, const char *bucket, const char *key,
                  const char *version_id, bool with_inline, struct mc_version *out);

/*
 * Server fast path of mc_engine_get: appends the version's record to w exactly
 * as mc_version_encode(out-of-mc_engine_get) would encode it (is_latest set,
 * inline data only when with_inline), copying the stored bytes instead of
 * decoding them (no allocation besides growing w). Same errors as
 * mc_engine_get; when the latest version is a delete marker it returns
 * MC_ENOKEY, appends nothing, and sets *is_delete_marker and marker_vid (may be
 * NULL). On any error w is left as it was.
 */
int mc_engine_get_encoded(struct mc_engine *eng, const char *bucket, const char *key,
                          const char *version_id, bool with_inline, struct mc_wbuf *w,
                          bool *is_delete_marker, char marker_vid[MC_VERSION_ID_MAX + 1]);

struct mc_list_params {
    const char *prefix;             /* NULL = "" */
    const char *delimiter;          /* NULL/"" = none; ≤ MC_DELIMITER_MAX */
    const char *start_after;        /* objects: exclusive */
    const char *continuation_token; /* objects: opaque, from next_continuation_token */
    const char *key_marker;         /* versions */
    const char *version_id_marker;  /* versions: only with key_marker */
    int max_keys; /* 1..1000; 0 = default 1000; > 1000 clamped to 1000; < 0 → MC_EINVAL */
};

struct mc_list_result {
    struct mc_version *entries; /* objects (latest, live) or versions (newest first per key).
                                   As S3 listings: without inline data, user metadata, parts
                                   and erasure distribution (those are empty) */
    uint32_t n_entries;
    char **common_prefixes; /* sorted */
    uint32_t n_prefixes;
    uint32_t key_count; /* n_entries + n_prefixes */
    bool is_truncated;
    bool is_versions;              /* which listing produced it */
    char *next_continuation_token; /* objects, when truncated */
    char *next_key_marker;         /* versions, when truncated */
    char *next_version_id_marker;  /* versions, when truncated */
    uint64_t cursor_steps;         /* debug: LMDB cursor moves this listing made */
};
void mc_list_result_clear(struct mc_list_result *r);

/* ListObjectsV2. MC_ENOBUCKET, MC_EINVAL, MC_EBADTOKEN. Costs O(page): rolled-up prefixes are
 * skipped with one seek. A page holds max_keys items, or fewer (truncated, as S3 allows) once
 * its encoding passes MC_LIST_PAGE_BYTES. The listing is mc_engine_list_encode's, decoded. */
int mc_engine_list_objects(struct mc_engine *eng, const char *bucket,
                           const struct mc_list_params *p, struct mc_list_result *out);
/* ListObjectVersions (key then newest first; delete markers with is_latest). */
int mc_engine_list_versions(struct mc_engine *eng, const char *bucket,
                            const struct mc_list_params *p, struct mc_list_result *out);

/* A listing in its wire form (what mc_list_result_encode writes and mc_list_result_decode reads),
 * appended to w in one pass: each entry is copied from its stored record (checksum verified),
 * nothing is allocated per entry. versions: ListObjectVersions, else ListObjectsV2. On error w
 * is back at its length at the call. Same errors as the two calls above. */
int mc_engine_list_encode(struct mc_engine *eng, const char *bucket, const struct mc_list_params *p,
                          bool versions, struct mc_wbuf *w);
/* Where mc_engine_list_encode_to writes: called at most once, after every check passed and
 * before anything is written. Returns the buffer to append the listing to, or NULL when there is
 * nowhere to write it (the call then returns MC_ESHUTDOWN). */
typedef struct mc_wbuf *(*mc_list_sink_fn)(void *ctx);
/* mc_engine_list_encode with the buffer asked for only once the request is accepted: a refusal
 * (parameters, token, bucket, version-id-marker) returns before sink is called, with
 * mc_engine_last_error saying why, so the node answers it with its message and begins a reply
 * only for a listing. The checks run once. Once sink was called, what can still fail is a
 * corrupt record, memory or the buffer's limit (w is then back at its length at the call). */
int mc_engine_list_encode_to(struct mc_engine *eng, const char *bucket,
                             const struct mc_list_params *p, bool versions, mc_list_sink_fn sink,
                             void *ctx);

/* ---- whole-state functions ---- */

/* 64-bit digest of the logical content (buckets, versions, sessions) at *applied_index.
 * mc_engine_hash_begin + _run + _end in one call, on the caller's thread. */
int mc_engine_state_hash(struct mc_engine *eng, uint64_t *hash, uint64_t *applied_index);
/*
 * The same digest in three steps, so the scan (seconds at 1M objects) can run off the thread
 * that applies (node_check.c). begin (on the applying thread, between applies) opens a read
 * transaction on the state as of now and says its *applied_index; run hashes that state, on any
 * thread, while applies go on; end closes the handle, on any thread. While a handle is open, a
 * map growth (in an apply) waits for its end: call mc_engine_reserve_map before begin, and end
 * the handle on a thread that does not apply (an apply that waited for its own thread's handle
 * would wait forever). Close no engine with a handle open (a debug build asserts; a release build
 * logs engine_close_while_hashing and waits for the handle's end). begin: 0, MC_ENOMEM,
 * MC_ELIMIT (no reader slot), MC_EIO; run: 0, MC_ECORRUPT, MC_EIO.
 */
struct mc_engine_hash;
int mc_engine_hash_begin(struct mc_engine *eng, struct mc_engine_hash **h, uint64_t *applied_index);
int mc_engine_hash_run(struct mc_engine_hash *h, uint64_t *hash);
void mc_engine_hash_end(struct mc_engine_hash *h); /* NULL: nothing */
/* Wait up to timeout_ms for every open hash handle's end (signalled by mc_engine_hash_end, on
 * whatever thread): true when none is open. */
bool mc_engine_hash_wait(struct mc_engine *eng, uint32_t timeout_ms);
/*
 * Consistent copy of the LMDB environment to fd (a regular file, written from
 * its current offset) while writes continue (mdb_env_copyfd2). *applied_index
 * (may be NULL) is the index the copy holds. The copy is a data.mdb: put it as
 * DIR/data.mdb to restore.
 */
int mc_engine_copy_to_fd(struct mc_engine *eng, int fd, uint64_t *applied_index);
/* Writer thread, no transaction open: grow the map until it is at least twice the pages in use.
 * Before a copy: the copy's read txn holds the resize lock, and while it runs freed pages cannot
 * be reused, so the file grows; a map growth the apply path needed meanwhile would wait for the
 * whole copy (seconds at 1M objects). 0, MC_ENOSPC, MC_EIO. */
int mc_engine_reserve_map(struct mc_engine *eng);
/* Bytes of the file in use (pages up to the highest one written); 0 if LMDB cannot tell. */
uint64_t mc_engine_used_bytes(struct mc_engine *eng);
/* applied_index and conf blob of a closed engine dir (takes the LOCK briefly; conf malloc'd). */
int mc_engine_read_meta(const char *dir, uint64_t *applied_index, void **conf, size_t *conf_len);

/*
 * Full verification scan (one read txn; writes may go on): every record of every
 * sub-database has a valid checksum, keys come in strictly ascending order, each
 * record is found again by a seek from the root (a flipped byte in a branch page
 * misroutes lookups), per-table counts match LMDB's, and every page is either in
 * a table or on the free list. 0, or MC_ECORRUPT with mc_engine_last_error()
 * naming the file, the sub-database and the key. Costs a pass over the file.
 */
struct mc_engine_verify_report {
    uint64_t records;    /* records checked, all sub-databases */
    uint64_t bytes;      /* key and value bytes checksummed */
    uint64_t pages;      /* pages in use (tables + free list + 2 meta pages) */
    uint64_t page_bytes; /* LMDB page size */
    uint64_t elapsed_ns;
    /* optional, set by the caller: called about every 65536 records and at the end */
    void (*progress)(void *ctx, uint64_t records_done, uint64_t records_total);
    void *progress_ctx;
};
int mc_engine_verify(struct mc_engine *eng, struct mc_engine_verify_report *report);

/* ---- read-result codecs (client protocol) ---- */
int mc_version_encode(const struct mc_version *v, struct mc_wbuf *w);
int mc_version_decode(const void *data, size_t len, struct mc_version *out);
int mc_list_result_encode(const struct mc_list_result *r, struct mc_wbuf *w);
int mc_list_result_decode(const void *data, size_t len, struct mc_list_result *out);
int mc_bucket_list_encode(const struct mc_bucket_info *b, size_t n, struct mc_wbuf *w);
int mc_bucket_list_decode(const void *data, size_t len, struct mc_bucket_info **out, size_t *n);

/* ---- JSON (identical output for CLI, client and HTTP); malloc'd strings, free() ---- */
#define MC_JSON_COMPACT 0
#define MC_JSON_PRETTY  1
/* get --json: the whole record (bucket, key, version_id, is_delete_marker, size, etag, ...). */
char *mc_version_json(const struct mc_version *v, int flags);
/* ls --json / versions --json shapes (DESIGN.md §3), chosen by r->is_versions. */
char *mc_list_result_json(const struct mc_list_result *r, int flags);
/* bucket ls --json: {"buckets":[{"name","created_ns","versioning"}]} */
char *mc_bucket_list_json(const struct mc_bucket_info *b, size_t n, int flags);
/* bucket head: {"name","created_ns","versioning"} */
char *mc_bucket_json(const struct mc_bucket_info *b, int flags);
/* op result: {"error":..?, "version_id":.., "delete_marker":..} */
char *mc_op_result_json(const struct mc_op_result *r, int flags);
/*
 * Parse a put body (HTTP API) into meta: {"size","etag","content_type","user_metadata":{},
 * "storage_class","erasure":{"data_blocks","parity_blocks","block_size","distribution":[]},
 * "data_dir","parts":[{"number","size","etag"}],"checksum":{"algorithm","value"},
 * "inline_data_base64"}. Unknown fields → MC_EINVAL. Validated with mc_validate_object_meta.
 */
int mc_object_meta_from_json(const char *json, size_t len, struct mc_object_meta *out);

#endif
