/* storage.h: durable storage for Raft (layer 1): file-op interface, data dir, WAL, hard state,
 * snapshot files. */
#ifndef METACENTER_STORAGE_H
#define METACENTER_STORAGE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>

/*
 * Threading summary
 * -----------------
 * - mc_fs_*, mc_datadir_*, mc_hardstate_*, mc_snap_*: synchronous, blocking; call them from a
 *   worker thread, never from the node's event loop (they fsync).
 * - mc_wal_*: one dedicated WAL thread does every write and fdatasync. mc_wal_append,
 *   mc_wal_truncate, mc_wal_compact, mc_wal_reset and mc_wal_set_hard_state only enqueue (never
 *   block on I/O; see enqueue_wait_ms) and may be called from the event loop. Completion is
 *   reported by the on_durable callback (runs ON THE WAL THREAD: do nothing there but record the
 *   numbers and uv_async_send) and by mc_wal_durable_index()/mc_wal_done_ticket(), readable from
 *   any thread.
 */

/* ------------------------------------------------------------------------------------------ */
/* File operations (fault-injection seam)                                                     */
/* ------------------------------------------------------------------------------------------ */

/*
 * Every file operation of this module goes through this table so tests can inject EIO/ENOSPC
 * ("fail the Nth fdatasync"). Calls return what the syscall returns on success (fd, byte count,
 * 0) and -errno on failure (never -1 + errno). `ctx` is passed back as the first argument.
 */
struct mc_fs_ops {
    void *ctx;
    int (*open)(void *ctx, const char *path, int flags, mode_t mode);
    int (*close)(void *ctx, int fd);
    ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t off);
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, off_t off);
    ssize_t (*pwritev)(void *ctx, int fd, const struct iovec *iov, int iovcnt, off_t off);
    int (*fdatasync)(void *ctx, int fd);
    int (*fsync)(void *ctx, int fd);
    int (*fallocate)(void *ctx, int fd, off_t off, off_t len);
    int (*ftruncate)(void *ctx, int fd, off_t len);
    int (*rename)(void *ctx, const char *from, const char *to);
    /* renameat2(RENAME_EXCHANGE): atomically swap two existing paths. */
    int (*exchange)(void *ctx, const char *a, const char *b);
    int (*unlink)(void *ctx, const char *path);
    int (*mkdir)(void *ctx, const char *path, mode_t mode);
    int (*rmdir)(void *ctx, const char *path);
    /* sync_file_range(2). Its WAIT flags report (and consume) a writeback error, so a later
     * fsync of the file returns 0: every caller treats an error as its fsync failing. */
    int (*sync_file_range)(void *ctx, int fd, off_t off, off_t len, unsigned flags);
    /* Optional (added in session 15; a table built elsewhere may leave it NULL): only the
     * trash uses it, and without it the trash unlinks a file at once instead of cutting it. */
    int (*fstat)(void *ctx, int fd, struct stat *st);
};

/* The real syscalls. Never NULL; static storage. */
const struct mc_fs_ops *mc_fs_default(void);

/* Call fn(ctx, "dir/name", name) for each file in dir named prefix*suffix (readdir order). Best
 * effort: an unreadable dir calls nothing. */
void mc_fs_each_named(const char *dir, const char *prefix, const char *suffix,
                      void (*fn)(void *ctx, const char *path, const char *name), void *ctx);
/* Evidence files (a damaged image, a cut WAL tail) keep only the newest: remove every file in
 * dir named prefix*suffix except keep (a file name), logging `event` with its path and reason
 * "newer_one_kept". Best effort: a file that cannot be removed stays. fs NULL = default. */
void mc_fs_remove_others(const struct mc_fs_ops *fs, const char *dir, const char *prefix,
                         const char *suffix, const char *keep, const char *event);

/* Operation kinds for fault injection. */
enum mc_fs_op {
    MC_FS_OPEN = 0,
    MC_FS_PREAD,
    MC_FS_PWRITE, /* pwrite and pwritev both count as MC_FS_PWRITE */
    MC_FS_FDATASYNC,
    MC_FS_FSYNC,
    MC_FS_FALLOCATE,
    MC_FS_FTRUNCATE,
    MC_FS_RENAME, /* rename and exchange */
    MC_FS_UNLINK,
    MC_FS_SYNC_RANGE,
    MC_FS_FSTAT,
    MC_FS_OP_COUNT
};

/*
 * Fault injector wrapping another mc_fs_ops (usually mc_fs_default()). Thread-safe (atomics).
 * Arm a rule with mc_fs_fault_arm: the `nth` next call (1 = the very next) of kind `op` fails with
 * -err; with `sticky`, that call and every later one of that kind fail. pwrite failures write
 * nothing. Counters of calls per kind are kept for assertions.
 */
struct mc_fs_fault {
    struct mc_fs_ops ops; /* hand &ops to the module under test */
    const struct mc_fs_ops *base;
    int64_t countdown[MC_FS_OP_COUNT]; /* atomic; 0 = disarmed */
    int err[MC_FS_OP_COUNT];
    bool sticky[MC_FS_OP_COUNT];
    bool tripped[MC_FS_OP_COUNT];      /* a sticky rule has fired */
    uint64_t calls[MC_FS_OP_COUNT];    /* atomic; calls seen per kind */
    uint64_t failures[MC_FS_OP_COUNT]; /* atomic; injected failures per kind */
};

void mc_fs_fault_init(struct mc_fs_fault *f, const struct mc_fs_ops *base);
void mc_fs_fault_arm(struct mc_fs_fault *f, enum mc_fs_op op, uint64_t nth, int err, bool sticky);
void mc_fs_fault_disarm(struct mc_fs_fault *f, enum mc_fs_op op);

/* Helpers over mc_fs_ops (NULL fs = default). Return 0 or a negative MC_E* code. */
int mc_fs_fsync_dir(const struct mc_fs_ops *fs, const char *dir);
/* Parent dir of path into out ("." if no '/'); MC_EINVAL when it does not fit out_len. */
int mc_fs_dir_of(const char *path, char *out, size_t out_len);
/* Write a whole small file atomically: PATH.tmp, fsync, rename, fsync dir. */
int mc_fs_write_file_atomic(const struct mc_fs_ops *fs, const char *path, const void *data,
                            size_t len);
/* rm -r of a directory tree (only regular files and dirs); missing path is not an error. */
int mc_fs_remove_tree(const struct mc_fs_ops *fs, const char *path);
/* Map -errno to an MC_E* code (ENOSPC -> MC_ENOSPC, EEXIST -> MC_EEXIST, ENOENT ->
 * MC_ENOTFOUND, else MC_EIO). */
int mc_fs_errno_to_mc(int neg_errno);

/* ------------------------------------------------------------------------------------------ */
/* Data directory                                                                             */
/* ------------------------------------------------------------------------------------------ */

/*
 * Layout of DATADIR:
 *   METACENTER        marker file: "metacenter-datadir <format version>\n"
 *   LOCK              flock()ed by the running node
 *   engine/           the engine's LMDB environment (data.mdb)
 *   engine.new/       transient: snapshot being installed (removed on start)
 *   wal/              WAL segments  (wal-<seq 16 hex>.log)
 *   snap/             snapshot files (snap-<index 16 hex>-<term 16 hex>.snap)
 *   meta-a, meta-b    hard state, alternating
 */
#define MC_DATADIR_FORMAT_VERSION 1
#define MC_DATADIR_PATH_MAX       1024 /* bytes, for every path derived from a data dir */

/* Create DATADIR and its subdirs + marker if missing; validate the marker if present
 * (MC_ENOTOURS: non-empty dir without marker; MC_EVERSION: unknown format version). */
int mc_datadir_init(const char *datadir, const struct mc_fs_ops *fs);
/* Validate an existing data dir (no creation): MC_ENOTFOUND, MC_ENOTOURS, MC_EVERSION. */
int mc_datadir_check(const char *datadir);
/* Take the exclusive lock (flock on DATADIR/LOCK). *lock_fd is released with mc_datadir_unlock.
 * MC_ELOCKED when another process holds it. */
int mc_datadir_lock(const char *datadir, int *lock_fd);
void mc_datadir_unlock(int lock_fd);
/* Startup cleanup of interrupted operations: removes engine.new/, snap/ *.tmp; of the snap/
 * recv-*.part files only the newest (index, term) is KEPT (resumable receive). Call after
 * locking, before opening engine/WAL. */
int mc_datadir_recover(const char *datadir, const struct mc_fs_ops *fs);
/* The engine's seal in the data dir (node/seal.h): a clean stop's checksum of data.mdb. */
#define MC_DATADIR_SEAL_NAME "engine.seal"
/* Build "DATADIR/<sub>" into out (size MC_DATADIR_PATH_MAX); MC_EINVAL when too long. */
int mc_datadir_path(const char *datadir, const char *sub, char *out, size_t out_len);
/* The engine's directory: DATADIR/engine, or the directory that DATADIR/engine links to when
 * the engine lives elsewhere (serve --engine-dir; the link is absolute). Installs stage next to
 * it, in "<that>.new", so the swap stays one rename within one file system. */
int mc_datadir_engine_dir(const char *datadir, char *out, size_t out_len);
/* Put the engine where `engine_dir` says (NULL or "": in DATADIR/engine; else ENGINE_DIR/engine,
 * with DATADIR/engine a symbolic link to it). ENGINE_DIR is created if missing (its parent must
 * exist) and claimed with an OWNER file naming the data dir: MC_ENOTOURS when it belongs to
 * another data dir or is neither empty nor ours, MC_EINVAL when it lies inside the data dir.
 * *fresh is set when the engine was just created empty (placement changed, or the engine dir
 * lost its contents, e.g. tmpfs after a reboot): the caller drops the engine's seal and rebuilds
 * it from the image and the WAL. An engine left at a former place is removed (never reused: the
 * log may have moved on without it). DATADIR/engine.seal is dropped, durably, before the first
 * change, so a crash anywhere in between leaves no seal vouching for a gone engine; DIR's paths
 * are checked to fit before anything changes. Call with the data dir locked, before
 * mc_datadir_recover. */
int mc_datadir_place_engine(const char *datadir, const char *engine_dir, bool *fresh);

/* ------------------------------------------------------------------------------------------ */
/* Hard state                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/* Raft persistent state (Raft paper Fig. 2: currentTerm, votedFor; commit kept as a hint). */
struct mc_hard_state {
    uint64_t term;
    uint64_t vote;   /* 0 = none */
    uint64_t commit; /* may lag on disk: commitIndex is volatile in Raft (§3.8 of the thesis) */
};

/*
 * Two alternating files DIR/meta-a and DIR/meta-b, each 64 bytes: magic, version, sequence,
 * term, vote, commit, checksum. A save writes the file NOT holding the newest valid copy, then
 * fdatasyncs it, so a torn write only ever damages the older copy. Load takes the valid copy
 * with the higher sequence.
 */
struct mc_hardstate_store {
    const struct mc_fs_ops *fs;
    char path[2][MC_DATADIR_PATH_MAX];
    int fd[2];
    uint64_t seq;            /* sequence of the newest valid copy; 0 = none yet */
    int newest;              /* 0 or 1: which file holds it (-1 none) */
    struct mc_hard_state hs; /* last loaded/saved */
};

/* Open/create both files under dir and load; a fresh dir yields hs = {0,0,0}. MC_ECORRUPT when
 * files exist but neither copy is valid (message names the files). */
int mc_hardstate_open(struct mc_hardstate_store *s, const char *dir, const struct mc_fs_ops *fs);
/* Synchronous: write + fdatasync the older file. On failure the store is unusable (MC_EFATAL on
 * later saves): the node must stop (fsyncgate). */
int mc_hardstate_save(struct mc_hardstate_store *s, const struct mc_hard_state *hs);
void mc_hardstate_close(struct mc_hardstate_store *s);

/* ------------------------------------------------------------------------------------------ */
/* Write-ahead log                                                                            */
/* ------------------------------------------------------------------------------------------ */

#define MC_WAL_RECORD_MAX_BYTES      (8u * 1024 * 1024) /* payload limit per record */
#define MC_WAL_SEGMENT_DEFAULT_BYTES (64u * 1024 * 1024)
#define MC_WAL_SEGMENT_MIN_BYTES     (4u * 1024)
#define MC_WAL_QUEUE_DEFAULT_OPS     65536               /* queued operations (appended records) */
#define MC_WAL_QUEUE_DEFAULT_BYTES   (64u * 1024 * 1024) /* queued payload bytes */
#define MC_WAL_BATCH_MAX_BYTES       (16u * 1024 * 1024) /* bytes written per writev group */

/* One log entry as the WAL sees it (the driver converts to/from raft.h entries). */
struct mc_wal_record {
    uint64_t index;
    uint64_t term;
    uint8_t type;
    uint32_t len;
    const uint8_t *data; /* borrowed; copied on append */
};

/* What a completion reports (passed to on_durable). */
struct mc_wal_progress {
    uint64_t durable_index; /* every entry <= this (and >= first index) is on disk, fdatasynced */
    uint64_t durable_term;  /* term of durable_index (0 if none) */
    uint64_t done_ticket;   /* every operation with ticket <= this has completed */
    int error;              /* 0, or the error of the failed group (MC_EFATAL after fsync fail) */
};

struct mc_wal_options {
    const char *wal_dir;         /* DATADIR/wal */
    const char *hardstate_dir;   /* DATADIR (meta-a, meta-b); NULL = no hard state in the WAL */
    const struct mc_fs_ops *fs;  /* NULL = mc_fs_default() */
    uint64_t segment_size_bytes; /* 0 = default 64 MiB; min 4 KiB */
    /* Segments dropped by mc_wal_compact are renamed to "<name>.del" and cut down this many
     * bytes at a time, one cut per delete_pause_ms, on a thread of their own (trash.c: a file
     * system mounted with `discard` trims what one commit frees while every fsync waits).
     * 0 = defaults (8 MiB, 10 ms). */
    uint64_t delete_chunk_bytes;
    uint32_t delete_pause_ms;
    uint32_t queue_max_ops;   /* 0 = default */
    uint64_t queue_max_bytes; /* 0 = default */
    /* When the queue is full: 0 = return MC_EBUSY at once; else block up to this long, then
     * MC_EBUSY. The event loop should use 0. */
    uint32_t enqueue_wait_ms;
    /* Commit-only hard-state changes are written at most this often (0 = default 1000 ms);
     * term/vote changes are always written in the group they arrive in. */
    uint32_t commit_persist_interval_ms;
    /* Called on the WAL thread after every group (and on error). Keep it tiny. May be NULL. */
    void (*on_durable)(void *ctx, const struct mc_wal_progress *p);
    void *ctx;
    /* Optional: on a failed open (MC_ECORRUPT...), the same message that is logged (file,
     * offset, advice), NUL-terminated. */
    char *error_text;
    size_t error_text_len;
};

struct mc_wal;

/*
 * Open (creating wal_dir if needed) and load: every segment in order, every record verified.
 * A torn tail of the last written segment is truncated (logged). A bad record anywhere else, or
 * a gap in indexes, is corruption: returns MC_ECORRUPT and logs the file, the offset and the
 * recovery advice. Starts the WAL thread. Loaded entries are read with mc_wal_iterate.
 *
 * After a crash during mc_wal_reset the log may still hold a prefix of the old log: the driver
 * applies the InstallSnapshot rule on start (Raft paper §7: if the log has an entry at the
 * snapshot's index with the snapshot's term, keep what follows, else discard the log).
 * Likewise after mc_wal_compact the first loaded index may be below the compaction point.
 */
int mc_wal_open(const struct mc_wal_options *opt, struct mc_wal **out);
/* Drain the queue (completes queued work), stop the thread, close files. NULL ok. */
void mc_wal_close(struct mc_wal *w);

/* First/last index in the log (including queued-but-not-durable appends for last). An empty
 * log has last_index = first_index - 1. */
/* A gap between segments found at open: indexes *missing_first..*missing_last are not on disk,
 * and the segments before the gap were left out of the log (first_index is after the gap) but
 * not deleted. A crash during mc_wal_reset leaves such a gap below the snapshot the reset made
 * room for; a lost segment leaves one anywhere. The caller decides: if its newest snapshot
 * covers the missing range, mc_wal_remove_dropped deletes the old segments; else refuse. */
bool mc_wal_gap(struct mc_wal *w, uint64_t *missing_first, uint64_t *missing_last);
/* Delete the segments mc_wal_gap left out (call before any append; fsyncs the dir). */
int mc_wal_remove_dropped(struct mc_wal *w);
uint64_t mc_wal_first_index(struct mc_wal *w);
uint64_t mc_wal_last_index(struct mc_wal *w);
uint64_t mc_wal_last_term(struct mc_wal *w);
/* Hard state as loaded at open, or as last queued with mc_wal_set_hard_state. */
void mc_wal_hard_state(struct mc_wal *w, struct mc_hard_state *out);

/* Any thread: highest index such that the whole log up to it is durable; highest completed
 * ticket. Monotonic, except that durable_index moves back on truncate/reset. */
uint64_t mc_wal_durable_index(struct mc_wal *w);
uint64_t mc_wal_done_ticket(struct mc_wal *w);
/* 0, or MC_EFATAL after a failed write or fdatasync: the node must stop. */
int mc_wal_error(struct mc_wal *w);

/*
 * Queue records (and optionally a hard state, may be NULL) to be written and fdatasynced in the
 * next group commit; data is copied. Records must be contiguous: recs[0].index ==
 * mc_wal_last_index()+1 (any index when the log is empty and was never reset, or the index
 * given to mc_wal_reset). *ticket (may be NULL) receives this operation's ticket.
 * Returns 0, MC_EBUSY (queue full), MC_EINVAL (bad index/size), MC_EFATAL.
 */
int mc_wal_append(struct mc_wal *w, const struct mc_wal_record *recs, size_t n,
                  const struct mc_hard_state *hs, uint64_t *ticket);
/* Queue a hard state alone (same ordering and durability as an append). */
int mc_wal_set_hard_state(struct mc_wal *w, const struct mc_hard_state *hs, uint64_t *ticket);
/* Queue "drop every entry with index >= from_index" (Raft conflict: §5.3). Ordered with appends;
 * later appends continue at from_index. Old segments after the cut are deleted, the cut segment
 * is shortened; live data is never rewritten. */
int mc_wal_truncate(struct mc_wal *w, uint64_t from_index, uint64_t *ticket);
/* Queue "entries <= upto_index are no longer needed" (after a snapshot): deletes whole segments
 * whose last index <= upto_index. mc_wal_first_index moves to upto_index+1 immediately. */
int mc_wal_compact(struct mc_wal *w, uint64_t upto_index, uint64_t *ticket);
/* Queue "drop the whole log; the next append is next_index" (after installing a snapshot whose
 * last index is next_index-1). */
int mc_wal_reset(struct mc_wal *w, uint64_t next_index, uint64_t *ticket);
/* Block until everything queued so far has completed; returns mc_wal_error(). Not for the loop. */
int mc_wal_sync(struct mc_wal *w);

/* Read entries lo..hi (inclusive) that have been written (not necessarily durable) and call fn
 * for each in order; the record's data is valid only during the call. fn returning non-zero
 * stops and that value is returned. MC_ENOTFOUND when lo < first index or hi > written last.
 * Any thread; reads with pread and re-verifies checksums (MC_ECORRUPT). */
typedef int (*mc_wal_visit_fn)(void *ctx, const struct mc_wal_record *rec);
int mc_wal_iterate(struct mc_wal *w, uint64_t lo, uint64_t hi, mc_wal_visit_fn fn, void *ctx);

/* Counters for metrics and benches. */
struct mc_wal_stats {
    uint64_t groups;        /* group commits done */
    uint64_t fdatasyncs;    /* WAL fdatasync calls */
    uint64_t records;       /* records written */
    uint64_t bytes_written; /* framed bytes written */
    uint64_t segments;      /* live segment files */
    uint64_t segment_rolls; /* times a new segment was started */
};
void mc_wal_get_stats(struct mc_wal *w, struct mc_wal_stats *out);

/* ------------------------------------------------------------------------------------------ */
/* Snapshot files                                                                             */
/* ------------------------------------------------------------------------------------------ */

/*
 * One self-describing file (docs/storage.md): a 4 KiB header (magic "MCSNAP01", version,
 * index, term, membership blob, data offset, data size, XXH3 of the data, header checksum),
 * then the engine's LMDB data.mdb image.
 */
#define MC_SNAP_HEADER_BYTES         4096u          /* fixed header, membership inline */
#define MC_SNAP_MEMBERSHIP_MAX_BYTES 3968u          /* fits the header with the fixed fields */
#define MC_SNAP_CHUNK_MAX_BYTES      (1024u * 1024) /* per read/receive chunk */
#define MC_SNAP_KEEP                 2              /* snapshots kept by mc_snap_prune */
#define MC_SNAP_SYNC_STEP_BYTES      (2u << 20) /* mc_snap_create writes back in steps this big */

struct mc_snap_info {
    uint64_t index;
    uint64_t term;
    uint32_t membership_len;
    uint8_t membership[MC_SNAP_MEMBERSHIP_MAX_BYTES];
    uint64_t data_offset;   /* where the LMDB image starts in the file */
    uint64_t data_size;     /* bytes of LMDB image */
    uint64_t data_checksum; /* XXH3-64 of the LMDB image */
    uint64_t file_size;     /* header + data */
    uint32_t write_steps;   /* mc_snap_create only: synced steps the data went out in */
    char path[MC_DATADIR_PATH_MAX];
};

/* Writes the LMDB copy into fd with write(2) (mdb_env_copyfd2 does); fd is a pipe (no seeking)
 * and the function runs on a helper thread; e.g. a wrapper around mc_engine_copy_to_fd(eng, fd).
 * Returns 0 or MC_E*. */
typedef int (*mc_snap_write_fn)(void *ctx, int fd);

/*
 * Create snap_dir/snap-<index>-<term>.snap: temp file, write_data streamed in after the header
 * placeholder (checksummed on the way, written back in MC_SNAP_SYNC_STEP_BYTES steps so the
 * dirty backlog stays small), header, fsync, rename, fsync dir. write_data NULL: a header-only
 * file (data_size 0), a compaction point that records (index, term, membership) without an
 * engine image (the node's periodic snapshots; an image is made when one is needed). Writes may
 * continue in the engine meanwhile (the copy runs under a read transaction). Blocking: run off the
 * event loop. out may be NULL. Does not prune; call mc_snap_prune.
 */
int mc_snap_create(const char *snap_dir, const struct mc_fs_ops *fs, uint64_t index, uint64_t term,
                   const void *membership, size_t membership_len, mc_snap_write_fn write_data,
                   void *ctx, struct mc_snap_info *out);
/* mc_snap_create with the data read from `in` (to EOF), the read end of a pipe a producer the
 * caller already started writes the image into. Why: the node starts the engine copy itself and
 * waits for its first bytes (its read transaction has begun) before applying anything more, so
 * the image holds exactly `index` (node_snapshot.c). finish(ctx) is called once the data is
 * read (or on an early error, after `in` is closed so the producer gets EPIPE): it joins the
 * producer and returns its result, which fails the file if non-zero. Takes `in` (closes it). */
int mc_snap_create_from_pipe(const char *snap_dir, const struct mc_fs_ops *fs, uint64_t index,
                             uint64_t term, const void *membership, size_t membership_len, int in,
                             int (*finish)(void *ctx), void *ctx, struct mc_snap_info *out);
/* Read and verify the header (and with verify_data, the data checksum) of a snapshot file.
 * MC_ECORRUPT / MC_EVERSION / MC_ENOTFOUND. */
int mc_snap_read_info(const char *path, bool verify_data, struct mc_snap_info *out);
/* Latest valid snapshot in snap_dir (full verification; invalid files are logged and skipped).
 * MC_ENOTFOUND when none. */
int mc_snap_latest(const char *snap_dir, struct mc_snap_info *out);
/* The same with only headers read and verified (an image's data may be GBs: it is checked when
 * installed); images_only: the newest file that holds an engine image (data_size > 0). */
int mc_snap_latest_header(const char *snap_dir, bool images_only, struct mc_snap_info *out);
/* How mc_snap_prune removes files; NULL (the offline tools) = all unlinked at once, none in use.
 * - trash: a pruned file that holds an image is renamed to "<name>.del" (no lookup lists it)
 *   and handed to this trash (storage/trash.h), which cuts it down a chunk at a time: freeing
 *   ~700 MB at once stalls every fsync on a `discard` file system. Header-only files, and
 *   images the trash's queue cannot take, are unlinked at once. The owner requeues leftover
 *   "*.snap.del" files at its next open. NULL: unlinked at once.
 * - in_use(ctx, path): true when a stream holds path open (or is about to open it): the file is
 *   skipped, and removed by a later prune once it is no longer in use. Called with *mu held
 *   (when mu is set), and the rename or unlink it allows is done before mu is released: a
 *   stream that registers under mu before it opens never opens a file being cut. */
struct mc_trash;
struct mc_snap_prune_opts {
    struct mc_trash *trash;
    bool (*in_use)(void *ctx, const char *path);
    void *ctx;
    pthread_mutex_t *mu;
};
/* Keep the newest `keep` snapshots (by index) and the newest engine image; delete older ones
 * (as o says; o NULL: unlinked at once). */
int mc_snap_prune(const char *snap_dir, const struct mc_fs_ops *fs, int keep,
                  const struct mc_snap_prune_opts *o);
/* List up to max snapshots (headers only, newest first); *n = count found. */
int mc_snap_list(const char *snap_dir, struct mc_snap_info *out, size_t max, size_t *n);

/*
 * Sender side: the image's data checksum checked while its file is streamed front to back, so
 * no lookup reads the whole image on the event loop first (node_snapshot.c). Feed the chunks in
 * file order; a chunk that starts past what was digested (a receiver resuming a partial file)
 * leaves no verdict, and the receiver's own whole-file check is then the only one.
 */
struct mc_snap_verify;
/* Start checking info's file (from its header); *out NULL on MC_ENOMEM. */
int mc_snap_verify_new(const struct mc_snap_info *info, struct mc_snap_verify **out);
/* Bytes [off, off+len) of the file were read. Returns 0 (no verdict yet, or none after a gap),
 * 1 once all the data was digested and matches the header, MC_ECORRUPT when it does not. */
int mc_snap_verify_update(struct mc_snap_verify *v, uint64_t off, const void *buf, size_t len);
void mc_snap_verify_free(struct mc_snap_verify *v); /* NULL is fine */
/*
 * Sender side: a stream (a send to a follower, a `snapshot save`) reads its file through one
 * descriptor from its first chunk to its end, so a fresh image renamed over the name (a new
 * image at the same index) or a prune meanwhile does not switch files under it: every chunk,
 * and so the verify's verdict, is of the file the stream looked up. The descriptor is not
 * shared: one caller at a time.
 */
struct mc_snap_chunk_file;
/* Open path for a stream. With v (from the same lookup), the file must still be the one v was
 * made for, else MC_EBUSY (a fresh image took the name since: look up again). *out NULL on
 * error (MC_ENOTFOUND when path is gone). */
int mc_snap_chunk_open(const char *path, const struct mc_snap_verify *v,
                       struct mc_snap_chunk_file **out);
/* Read up to len (≤ MC_SNAP_CHUNK_MAX_BYTES, else MC_EINVAL) bytes of the whole file at offset.
 * *n = bytes read (0 at end). */
int mc_snap_chunk_read(struct mc_snap_chunk_file *f, uint64_t offset, void *buf, size_t len,
                       size_t *n);
void mc_snap_chunk_close(struct mc_snap_chunk_file *f); /* NULL is fine */
/* A snapshot file whose data failed its checksum: renamed to path + ".corrupt" (kept for the
 * operator; lookups, list and prune no longer see it, so the next lookup takes the previous
 * file) and logged as snapshot_corrupt. Not fsynced: a rename lost in a crash only means the
 * damage is found again by the next stream. With v, only if path is still the file v checked
 * (else MC_ENOTFOUND: a fresh image took the name, and the stream that failed read a mix). */
int mc_snap_set_aside(const char *path, const struct mc_snap_verify *v);

/*
 * Receiver side. Chunks of the whole snapshot file arrive in order; a partial file
 * snap_dir/recv-<index>-<term>.part survives restarts, so a transfer resumes from
 * mc_snap_recv_offset (report it to the sender). Opening a receive removes every other
 * recv-*.part in snap_dir (one receive at a time; each can be engine-sized).
 */
struct mc_snap_recv;
int mc_snap_recv_open(const char *snap_dir, const struct mc_fs_ops *fs, uint64_t index,
                      uint64_t term, struct mc_snap_recv **out);
uint64_t mc_snap_recv_offset(const struct mc_snap_recv *r);
/* offset must equal mc_snap_recv_offset (else MC_EINVAL: resend from there). */
int mc_snap_recv_write(struct mc_snap_recv *r, uint64_t offset, const void *data, size_t len);
/* Verify header (index/term must match) and data checksum, fsync, rename to the final name,
 * fsync dir. MC_ECORRUPT on mismatch (the partial file is deleted). Frees r in every case. */
int mc_snap_recv_finish(struct mc_snap_recv *r, struct mc_snap_info *out);
/* Close; with discard, delete the partial file. Frees r. */
void mc_snap_recv_abort(struct mc_snap_recv *r, bool discard);

/*
 * Install a verified snapshot file as the engine's state. The engine must be closed. Writes
 * DATADIR/engine.new/data.mdb, fsyncs it and the dir, then atomically swaps engine.new with
 * DATADIR/engine (renameat2 RENAME_EXCHANGE; plain rename if engine/ does not exist), fsyncs
 * DATADIR and removes the old tree. kill -9 at any point leaves engine/ entirely old or
 * entirely new (mc_datadir_recover removes leftovers).
 */
int mc_snap_install(const char *datadir, const struct mc_fs_ops *fs, const char *snap_path);
/* mc_snap_install in two steps, so the long one can run off the event loop. Prepare (any thread;
 * the engine may stay open): writes DATADIR/engine.new/data.mdb from the image, checksummed on
 * the way (MC_ECORRUPT on mismatch), fsyncs it and engine.new/. Nothing in engine/ changes, so a
 * crash before the swap only leaves engine.new for mc_datadir_recover to remove. Swap (engine
 * closed): the atomic exchange, DATADIR fsync and removal of the old tree; MC_ENOTFOUND when
 * engine.new holds no prepared data.mdb. The caller makes sure nothing rewrites engine.new
 * between the two. */
int mc_snap_install_prepare(const char *datadir, const struct mc_fs_ops *fs, const char *snap_path);
int mc_snap_install_swap(const char *datadir, const struct mc_fs_ops *fs);

/* Copy a snapshot file elsewhere (CLI `snapshot save`), verified, fsynced. */
int mc_snap_copy_file(const char *from_path, const char *to_path, const struct mc_fs_ops *fs);

#endif
