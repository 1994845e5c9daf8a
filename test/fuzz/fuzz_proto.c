/* fuzz_proto.c: libFuzzer target for the client wire protocol: frames, requests and replies. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "fuzz_op_block.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "net/proto.h"

/*
 * The input is a byte stream of frames, as a server (requests) or a client (replies) reads it
 * off a connection: header check, then the body for the op. A request goes through
 * mc_proto_request_decode (and each op record of a WRITE through mc_op_decode and, as the node
 * does, mc_op_decode_block with the leader's stamp/re-encode path: fuzz_op_block.h);
 * a reply frame (op bit 0x80) through the decoder the client uses for that op. Every accepted
 * body must re-encode to the same bytes. Decoding stops at the first bad header, as the
 * connection would be closed there.
 */

#define MAX_FRAMES 64 /* bounded work per input */

static void check_str(struct mc_proto_str s)
{
    FUZZ_ASSERT(s.ptr != NULL, "decoded string is NULL");
    FUZZ_ASSERT(s.len <= MC_PROTO_MAX_STR_BYTES, "string length %u", s.len);
    FUZZ_ASSERT(strlen(s.ptr) == s.len, "string not NUL-terminated at its length");
}

static void check_request(const struct mc_proto_request *q)
{
    switch (q->op) {
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        check_str(q->u.get.bucket);
        check_str(q->u.get.key);
        check_str(q->u.get.version_id);
        break;
    case MC_REQ_LIST_OBJECTS:
        check_str(q->u.list.bucket);
        check_str(q->u.list.prefix);
        check_str(q->u.list.delimiter);
        check_str(q->u.list.start_after);
        check_str(q->u.list.continuation_token);
        break;
    case MC_REQ_LIST_VERSIONS:
        check_str(q->u.versions.bucket);
        check_str(q->u.versions.prefix);
        check_str(q->u.versions.delimiter);
        check_str(q->u.versions.key_marker);
        check_str(q->u.versions.version_id_marker);
        break;
    case MC_REQ_HEAD_BUCKET:
        check_str(q->u.bucket.bucket);
        break;
    case MC_REQ_ADD_MEMBER:
        check_str(q->u.member.peer_addr);
        check_str(q->u.member.client_addr);
        break;
    case MC_REQ_WRITE: {
        FUZZ_ASSERT(q->u.write.n_ops >= 1 && q->u.write.n_ops <= MC_PROTO_MAX_BATCH_OPS, "n_ops %u",
                    q->u.write.n_ops);
        uint32_t pos = 0, n = 0, len = 0;
        const uint8_t *rec = NULL;
        while (mc_proto_ops_next(q->u.write.ops, q->u.write.ops_bytes, &pos, &rec, &len)) {
            n++;
            struct mc_op op;
            int rc = mc_op_decode(rec, len, &op);
            /* The node block-decodes a single-op WRITE (node_handle_write). */
            fuzz_check_op_block(rec, len, rc, &op);
            if (rc == 0) {
                mc_op_clear(&op);
            }
        }
        FUZZ_ASSERT(n == q->u.write.n_ops, "ops_next yielded %u records for n_ops %u", n,
                    q->u.write.n_ops);
        FUZZ_ASSERT(pos == q->u.write.ops_bytes, "op list has %u stray bytes",
                    q->u.write.ops_bytes - pos);
        break;
    }
    default:
        break;
    }
}

static void fuzz_request(const struct mc_proto_header *h, const uint8_t *frame, size_t frame_len)
{
    const uint8_t *body = frame + MC_PROTO_HEADER_BYTES;
    size_t blen = frame_len - MC_PROTO_HEADER_BYTES;
    struct mc_proto_request q;
    int rc = mc_proto_request_decode(h, body, blen, &q);
    (void)mc_proto_op_name(h->op);
    (void)mc_proto_op_is_read(h->op);
    if (rc != 0) {
        FUZZ_ASSERT(rc == MC_EPROTO || rc == MC_EINVAL, "request decode rc %d", rc);
        FUZZ_ASSERT(rc != MC_EINVAL || !mc_proto_op_known(h->op), "EINVAL for a known op");
        return;
    }
    FUZZ_ASSERT(mc_proto_op_known(h->op), "unknown op 0x%02x accepted", h->op);
    check_request(&q);
    struct mc_wbuf w;
    mc_wbuf_init(&w, MC_PROTO_MAX_FRAME_BYTES);
    rc = mc_proto_request_encode(&w, &q);
    FUZZ_ASSERT(rc == 0, "re-encoding an accepted request failed: %d", rc);
    /* Same bytes except the status field, which requests leave 0 and decode ignores. */
    FUZZ_ASSERT(w.len == frame_len, "request re-encodes to %zu bytes, frame was %zu", w.len,
                frame_len);
    FUZZ_ASSERT(memcmp(w.data, frame, 16) == 0, "request header differs");
    long d = fuzz_first_diff(w.data + MC_PROTO_HEADER_BYTES, blen, body, blen);
    FUZZ_ASSERT(d < 0, "request body re-encoding differs at byte %ld", d);
    mc_wbuf_free(&w);
}

/* Re-encoding check for reply bodies built with mc_proto_*_put. */
#define SAME_BODY(what, w, body, blen)                                                             \
    do {                                                                                           \
        FUZZ_ASSERT_SAME_BYTES(what, w, body, blen);                                               \
        mc_wbuf_reset(w);                                                                          \
    } while (0)

static void fuzz_error_reply(const uint8_t *body, size_t blen, struct mc_wbuf *w)
{
    struct mc_proto_error e;
    if (mc_proto_error_decode(body, blen, &e) != 0) {
        FUZZ_ASSERT(e.message.ptr && e.leader_addr.ptr && e.version_id.ptr, "NULL strings");
        return;
    }
    check_str(e.message);
    check_str(e.leader_addr);
    check_str(e.version_id);
    if (blen == 0) {
        return; /* tolerated empty body: nothing to re-encode */
    }
    mc_proto_error_put(w, &e);
    SAME_BODY("error reply", w, body, blen);
    if (e.result_len) {
        struct mc_op_result res;
        (void)mc_op_result_decode(e.result, e.result_len, &res);
    }
}

static void fuzz_reply(const struct mc_proto_header *h, const uint8_t *body, size_t blen)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    if (h->status != 0) {
        fuzz_error_reply(body, blen, &w);
        mc_wbuf_free(&w);
        return;
    }
    switch (h->op & ~MC_PROTO_REPLY_BIT) {
    case MC_REQ_PING: {
        struct mc_ping_info p;
        if (mc_proto_ping_decode(body, blen, &p) == 0) {
            mc_proto_ping_put(&w, &p);
            SAME_BODY("ping reply", &w, body, blen);
        }
        break;
    }
    case MC_REQ_REGISTER_SESSION: {
        uint64_t sid;
        if (mc_proto_session_decode(body, blen, &sid) == 0) {
            FUZZ_ASSERT(sid != 0, "session id 0 accepted");
            mc_proto_session_put(&w, sid);
            SAME_BODY("session reply", &w, body, blen);
        }
        break;
    }
    case MC_REQ_CLUSTER_STATUS: {
        struct mc_cluster_status *s = malloc(sizeof(*s));
        FUZZ_ASSERT(s != NULL, "malloc");
        if (mc_proto_status_decode(body, blen, s) == 0) {
            FUZZ_ASSERT(s->n_members <= MC_CLUSTER_MAX_MEMBERS, "n_members %u", s->n_members);
            for (uint32_t i = 0; i < s->n_members; i++) {
                FUZZ_ASSERT(memchr(s->members[i].peer_addr, 0, MC_ADDR_MAX), "peer_addr");
                FUZZ_ASSERT(memchr(s->members[i].client_addr, 0, MC_ADDR_MAX), "client_addr");
            }
            mc_proto_status_put(&w, s);
            SAME_BODY("status reply", &w, body, blen);
        }
        free(s);
        break;
    }
    case MC_REQ_CHECK: {
        struct mc_check_result c;
        if (mc_proto_check_decode(body, blen, &c) == 0) {
            mc_proto_check_put(&w, &c);
            SAME_BODY("check reply", &w, body, blen);
        }
        break;
    }
    case MC_REQ_SNAPSHOT_SAVE: {
        struct mc_snapshot_chunk c;
        if (mc_proto_chunk_decode(body, blen, &c) == 0) {
            FUZZ_ASSERT(c.len <= MC_PROTO_MAX_CHUNK_BYTES, "chunk len %u", c.len);
            FUZZ_ASSERT(c.offset <= c.total_bytes && c.len <= c.total_bytes - c.offset,
                        "chunk outside the snapshot");
            mc_proto_chunk_put(&w, &c);
            SAME_BODY("chunk reply", &w, body, blen);
        }
        break;
    }
    case MC_REQ_WRITE: {
        struct mc_op_result res;
        (void)mc_op_result_decode(body, blen, &res);
        break;
    }
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT: {
        struct mc_version v;
        if (mc_version_decode(body, blen, &v) == 0) {
            mc_version_clear(&v);
        }
        break;
    }
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS: {
        struct mc_list_result lr;
        if (mc_list_result_decode(body, blen, &lr) == 0) {
            mc_list_result_clear(&lr);
        }
        break;
    }
    case MC_REQ_LIST_BUCKETS:
    case MC_REQ_HEAD_BUCKET: {
        struct mc_bucket_info *b;
        size_t n;
        if (mc_bucket_list_decode(body, blen, &b, &n) == 0) {
            free(b);
        }
        break;
    }
    default:
        break;
    }
    mc_wbuf_free(&w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    for (int i = 0; i < MAX_FRAMES && size - off >= MC_PROTO_HEADER_BYTES; i++) {
        const uint8_t *frame = data + off;
        struct mc_proto_header h;
        mc_proto_header_get(frame, &h);
        int rc = mc_proto_header_check(&h);
        if (rc != 0) {
            FUZZ_ASSERT(rc == MC_EPROTO || rc == MC_ETOOLARGE || rc == MC_EVERSION, "rc %d", rc);
            return 0;
        }
        FUZZ_ASSERT(h.length >= MC_PROTO_HEADER_BYTES - 4 &&
                        h.length <= MC_PROTO_MAX_FRAME_BYTES - 4,
                    "header check passed a length of %u", h.length);
        uint8_t raw[MC_PROTO_HEADER_BYTES];
        mc_proto_header_put(raw, &h);
        FUZZ_ASSERT(memcmp(raw, frame, sizeof(raw)) == 0, "header put/get round trip");
        size_t frame_len = 4 + (size_t)h.length;
        if (frame_len > size - off) {
            return 0; /* incomplete frame: the connection would wait for more bytes */
        }
        if (h.op & MC_PROTO_REPLY_BIT) {
            fuzz_reply(&h, frame + MC_PROTO_HEADER_BYTES, frame_len - MC_PROTO_HEADER_BYTES);
        } else {
            fuzz_request(&h, frame, frame_len);
        }
        off += frame_len;
    }
    return 0;
}
