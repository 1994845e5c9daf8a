/* proto.h: client wire protocol codec (frames, requests, replies); spec in docs/protocol.md. */
#ifndef MC_NET_PROTO_H
#define MC_NET_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "metacenter/client.h"
#include "util/codec.h"

/*
 * Frame layout (all integers little-endian):
 *   0  u32 length      bytes after this field: 16 + body length (so ≥ 16)
 *   4  u8  version     MC_PROTO_VERSION
 *   5  u8  op          request op; a reply carries op | MC_PROTO_REPLY_BIT
 *   6  u16 flags       MC_PROTO_FLAG_*
 *   8  u64 request_id  chosen by the client, echoed in the reply
 *  16  i32 status      requests: 0; replies: 0 or a negative MC_E* code
 *  20  body
 * The whole frame (header + body) is at most MC_PROTO_MAX_FRAME_BYTES.
 */
#define MC_PROTO_VERSION         1
#define MC_PROTO_HEADER_BYTES    20u
#define MC_PROTO_MAX_FRAME_BYTES (4u * 1024 * 1024)
#define MC_PROTO_MAX_BODY_BYTES  (MC_PROTO_MAX_FRAME_BYTES - MC_PROTO_HEADER_BYTES)
/* Longest string field (bucket, key, prefix, token, address, message...). */
#define MC_PROTO_MAX_STR_BYTES 4096u
/* Most op records in one write (atomic batch). */
#define MC_PROTO_MAX_BATCH_OPS 1000u
/* Snapshot chunks streamed by SNAPSHOT_SAVE are at most this big. */
#define MC_PROTO_MAX_CHUNK_BYTES (1024u * 1024)

#define MC_PROTO_REPLY_BIT 0x80u
/* Reply flag: a streamed reply (snapshot chunk); more frames with this request id follow. */
#define MC_PROTO_FLAG_MORE 0x0001u
/* Request flag, SNAPSHOT_SAVE only: the client reads the min index a Busy answer carries and
 * sends it back on its retries (u.save.min_index), so the node keeps no state for it. Without
 * the flag (clients before session 12) the node also serves a recently made image. Old servers
 * ignore request flags. */
#define MC_PROTO_FLAG_SAVE_MIN_INDEX 0x0002u

enum mc_proto_op {
    MC_REQ_PING = 0x01,
    MC_REQ_REGISTER_SESSION = 0x02,
    MC_REQ_WRITE = 0x03,
    MC_REQ_LEADER = 0x04, /* where the leader is: lets a client send linearizable reads there */
    MC_REQ_GET_OBJECT = 0x10,
    MC_REQ_HEAD_OBJECT = 0x11,
    MC_REQ_LIST_OBJECTS = 0x12,
    MC_REQ_LIST_VERSIONS = 0x13,
    MC_REQ_LIST_BUCKETS = 0x14,
    MC_REQ_HEAD_BUCKET = 0x15,
    MC_REQ_CLUSTER_STATUS = 0x20,
    MC_REQ_ADD_MEMBER = 0x21,
    MC_REQ_PROMOTE_MEMBER = 0x22,
    MC_REQ_REMOVE_MEMBER = 0x23,
    MC_REQ_TRANSFER_LEADER = 0x24,
    MC_REQ_SNAPSHOT_SAVE = 0x25,
    MC_REQ_CHECK = 0x26,
    MC_REQ_AUTH = 0x30, /* str token: authenticates the connection (docs/security.md) */
};

/* True when op is one this version of the protocol defines. */
bool mc_proto_op_known(uint8_t op);
/* "WRITE", "GET_OBJECT"...; "UNKNOWN" otherwise. */
const char *mc_proto_op_name(uint8_t op);
/* True for ops that only read state (may go to any member). */
bool mc_proto_op_is_read(uint8_t op);

struct mc_proto_header {
    uint32_t length; /* bytes after the length field */
    uint8_t version;
    uint8_t op;
    uint16_t flags;
    uint64_t request_id;
    int32_t status;
};

void mc_proto_header_put(uint8_t *p, const struct mc_proto_header *h);
void mc_proto_header_get(const uint8_t *p, struct mc_proto_header *h);

/*
 * Check a received header (p has MC_PROTO_HEADER_BYTES bytes). Returns 0 or:
 * MC_EPROTO (length < 16), MC_ETOOLARGE (frame over MC_PROTO_MAX_FRAME_BYTES),
 * MC_EVERSION (version byte differs). Unknown ops are NOT rejected here.
 */
int mc_proto_header_check(const struct mc_proto_header *h);

/*
 * A string field: u32 length, the bytes, then one NUL byte (not counted in the length).
 * Decoded strings point into the frame and are NUL-terminated; an embedded NUL is malformed.
 */
struct mc_proto_str {
    const char *ptr; /* never NULL after decode ("" when empty) */
    uint32_t len;
};

struct mc_proto_read_opts {
    uint8_t consistency; /* enum mc_consistency */
    uint32_t max_staleness_ms;
};

/* The arguments of a listing request (ListObjectsV2 or ListObjectVersions). */
struct mc_proto_list {
    struct mc_proto_read_opts ro;
    struct mc_proto_str bucket, prefix, delimiter;
    union { /* LIST_OBJECTS: start_after; LIST_VERSIONS: key_marker */
        struct mc_proto_str start_after;
        struct mc_proto_str key_marker;
    };
    union { /* LIST_OBJECTS: continuation_token; LIST_VERSIONS: version_id_marker */
        struct mc_proto_str continuation_token;
        struct mc_proto_str version_id_marker;
    };
    uint32_t max_keys; /* 0 = default (1000) */
};

/* A decoded request. Pointers borrow the frame: valid only while the frame buffer is. */
struct mc_proto_request {
    uint8_t op;
    uint16_t flags;
    uint64_t request_id;
    union {
        struct {
            uint64_t session_id; /* 0 = no exactly-once tracking */
            uint64_t seq;        /* 1, 2, ... within the session */
            uint64_t acked_seq;  /* every seq ≤ this has its reply: results may be dropped */
            uint32_t n_ops;      /* 1 = single op; > 1 = atomic batch */
            const uint8_t *ops;  /* n_ops × (u32 length, engine-encoded op record) */
            uint32_t ops_bytes;
        } write;
        struct { /* GET_OBJECT, HEAD_OBJECT */
            struct mc_proto_read_opts ro;
            struct mc_proto_str bucket, key, version_id; /* version_id "" = latest */
        } get;
        /* LIST_OBJECTS (u.list) and LIST_VERSIONS (u.versions): one shape on the wire and in
         * memory (both members alias), only the two markers' names differ. */
        struct mc_proto_list list;
        struct mc_proto_list versions;
        struct { /* LIST_BUCKETS, HEAD_BUCKET (bucket unused for LIST_BUCKETS) */
            struct mc_proto_read_opts ro;
            struct mc_proto_str bucket;
        } bucket;
        struct { /* ADD_MEMBER, PROMOTE_MEMBER, REMOVE_MEMBER, TRANSFER_LEADER */
            uint64_t id;
            struct mc_proto_str peer_addr;   /* ADD only */
            struct mc_proto_str client_addr; /* ADD only, may be "" */
            bool learner;                    /* ADD only */
        } member;
        struct {
            uint64_t index; /* 0 = the node's current applied index */
        } check;
        struct {
            struct mc_proto_str token; /* bearer token; never logged */
        } auth;
        struct {
            /* The oldest image index the client takes: 0 (an empty body) = fresh as of when the
             * request arrives; else the index a Busy answer from this member carried. */
            uint64_t min_index;
        } save;
        /* PING, REGISTER_SESSION, LEADER, CLUSTER_STATUS: empty body */
    } u;
};

/* A read request's options (consistency); NULL for other ops. */
const struct mc_proto_read_opts *mc_proto_request_ro(const struct mc_proto_request *q);

/*
 * Decode a request body for the op in h (the frame's body, after the header).
 * Returns 0, MC_EPROTO (malformed: truncated, trailing bytes, bad string, too many ops)
 * or MC_EINVAL (unknown op: the frame is well formed, reply with an error and go on).
 */
int mc_proto_request_decode(const struct mc_proto_header *h, const uint8_t *body, size_t len,
                            struct mc_proto_request *req);

/*
 * Append a whole request frame (header + body) for req to w. For writes, req->u.write.ops
 * must already be the encoded op list (see mc_proto_ops_put). Returns 0 or the wbuf error
 * (MC_ETOOLARGE when the frame would exceed the limit).
 */
int mc_proto_request_encode(struct mc_wbuf *w, const struct mc_proto_request *req);

/* Append one op record to an op list being built in w (u32 length + bytes). */
void mc_proto_ops_put(struct mc_wbuf *w, const void *op, size_t len);
/* Iterate an op list: *pos starts at 0; returns 1 with (*op, *len) set, 0 at the end. */
int mc_proto_ops_next(const uint8_t *ops, uint32_t ops_bytes, uint32_t *pos, const uint8_t **op,
                      uint32_t *len);

/* String fields, for the codecs here and in tests. */
void mc_proto_str_put(struct mc_wbuf *w, const char *s, size_t len);
int mc_proto_str_get(struct mc_rbuf *r, struct mc_proto_str *out);
static inline struct mc_proto_str mc_proto_cstr(const char *s);

/*
 * Error reply body (status != 0):
 *   str message, u64 leader_id (0 = unknown), str leader_addr (client address, "" = unknown),
 *   u8 flags (bit 0: the key's latest version is a delete marker), str version_id,
 *   bytes result (a failed write: its engine-encoded mc_op_result, e.g. failed_op of an
 *   atomic batch; empty otherwise).
 */
#define MC_PROTO_ERR_DELETE_MARKER 0x01u
struct mc_proto_error {
    struct mc_proto_str message;
    uint64_t leader_id;
    struct mc_proto_str leader_addr;
    uint8_t flags;
    struct mc_proto_str version_id;
    const uint8_t *result; /* may be NULL when result_len == 0 */
    uint32_t result_len;
};
void mc_proto_error_put(struct mc_wbuf *w, const struct mc_proto_error *e);
/* A Busy answer to SNAPSHOT_SAVE carries the min index to send back in its `result` field: a
 * u64 (8 bytes). Fills buf and points e->result at it. */
void mc_proto_save_busy_set(struct mc_proto_error *e, uint8_t buf[8], uint64_t min_index);
/* The min index from a SNAPSHOT_SAVE Busy answer's result bytes: 0 or MC_ENOTFOUND (an old
 * server's Busy carries none). */
int mc_proto_save_busy_index(const uint8_t *result, size_t len, uint64_t *min_index);
/* Tolerant: an empty body decodes to an all-empty error. Returns 0 or MC_EPROTO. */
int mc_proto_error_decode(const uint8_t *body, size_t len, struct mc_proto_error *e);

/* Append a complete reply frame: header (op | reply bit) + body bytes. */
int mc_proto_reply_encode(struct mc_wbuf *w, uint8_t op, uint16_t flags, uint64_t request_id,
                          int status, const void *body, size_t len);

/* Reply bodies with a protocol-defined shape (the others carry engine encodings). */
void mc_proto_ping_put(struct mc_wbuf *w, const struct mc_ping_info *p);
int mc_proto_ping_decode(const uint8_t *body, size_t len, struct mc_ping_info *p);
/* LEADER reply: u64 node_id (the answering member), u64 leader_id (0 = unknown),
 * str leader_addr (the leader's client address, "" = unknown). */
struct mc_proto_leader {
    uint64_t node_id;
    uint64_t leader_id;
    struct mc_proto_str leader_addr;
};
void mc_proto_leader_put(struct mc_wbuf *w, const struct mc_proto_leader *l);
int mc_proto_leader_decode(const uint8_t *body, size_t len, struct mc_proto_leader *l);
void mc_proto_session_put(struct mc_wbuf *w, uint64_t session_id);
int mc_proto_session_decode(const uint8_t *body, size_t len, uint64_t *session_id);
void mc_proto_status_put(struct mc_wbuf *w, const struct mc_cluster_status *s);
int mc_proto_status_decode(const uint8_t *body, size_t len, struct mc_cluster_status *s);
void mc_proto_check_put(struct mc_wbuf *w, const struct mc_check_result *c);
int mc_proto_check_decode(const uint8_t *body, size_t len, struct mc_check_result *c);
/* Snapshot chunk: u64 offset, u64 total_bytes, u64 checksum (0 until the last), bytes data. */
void mc_proto_chunk_put(struct mc_wbuf *w, const struct mc_snapshot_chunk *c);
int mc_proto_chunk_decode(const uint8_t *body, size_t len, struct mc_snapshot_chunk *c);

static inline struct mc_proto_str mc_proto_cstr(const char *s)
{
    struct mc_proto_str v;
    v.ptr = s ? s : "";
    v.len = 0;
    while (v.ptr[v.len]) {
        v.len++;
    }
    return v;
}

#endif
