/* test_client_proto.c: client protocol codec: round trips of every message, rejection of bad
 * frames. */
#include <criterion/criterion.h>
#include <string.h>

#include "metacenter/error.h"
#include "net/proto.h"

static struct mc_proto_str S(const char *s) {
    return mc_proto_cstr(s);
}

/* Encode q, check the header, decode the body back. */
static void
round_trip(const struct mc_proto_request *q, struct mc_proto_request *out, struct mc_wbuf *w)
{
    mc_wbuf_init(w, 0);
    cr_assert_eq(mc_proto_request_encode(w, q), 0);
    cr_assert_geq(w->len, MC_PROTO_HEADER_BYTES);
    struct mc_proto_header h;
    mc_proto_header_get(w->data, &h);
    cr_assert_eq(mc_proto_header_check(&h), 0);
    cr_assert_eq(h.length + 4, w->len);
    cr_assert_eq(h.op, q->op);
    cr_assert_eq(h.request_id, q->request_id);
    cr_assert_eq(h.status, 0);
    cr_assert_eq(mc_proto_request_decode(&h, w->data + MC_PROTO_HEADER_BYTES,
                                         w->len - MC_PROTO_HEADER_BYTES, out),
                 0);
    cr_assert_eq(out->op, q->op);
    cr_assert_eq(out->request_id, q->request_id);
}

static void str_eq(struct mc_proto_str a, const char *b)
{
    cr_assert_eq(a.len, strlen(b));
    cr_assert_str_eq(a.ptr, b);
}

Test(client_proto, write_round_trip)
{
    struct mc_wbuf ops;
    mc_wbuf_init(&ops, 0);
    mc_proto_ops_put(&ops, "op-one", 6);
    mc_proto_ops_put(&ops, "", 0);
    mc_proto_ops_put(&ops, "op-three", 8);
    struct mc_proto_request q = {.op = MC_REQ_WRITE, .request_id = 0x1122334455667788ull};
    q.u.write.session_id = 7;
    q.u.write.seq = 9;
    q.u.write.acked_seq = 8;
    q.u.write.n_ops = 3;
    q.u.write.ops = ops.data;
    q.u.write.ops_bytes = (uint32_t)ops.len;
    struct mc_proto_request d;
    struct mc_wbuf w;
    round_trip(&q, &d, &w);
    cr_assert_eq(d.u.write.session_id, 7);
    cr_assert_eq(d.u.write.seq, 9);
    cr_assert_eq(d.u.write.acked_seq, 8);
    cr_assert_eq(d.u.write.n_ops, 3);
    uint32_t pos = 0, len;
    const uint8_t *op;
    const char *want[] = {"op-one", "", "op-three"};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(mc_proto_ops_next(d.u.write.ops, d.u.write.ops_bytes, &pos, &op, &len), 1);
        cr_assert_eq(len, strlen(want[i]));
        cr_assert_eq(memcmp(op, want[i], len), 0);
    }
    cr_assert_eq(mc_proto_ops_next(d.u.write.ops, d.u.write.ops_bytes, &pos, &op, &len), 0);
    mc_wbuf_free(&w);
    mc_wbuf_free(&ops);
}

Test(client_proto, read_round_trips)
{
    struct mc_proto_request q = {.op = MC_REQ_GET_OBJECT, .request_id = 5};
    q.u.get.ro.consistency = MC_CONSISTENCY_STALE;
    q.u.get.ro.max_staleness_ms = 250;
    q.u.get.bucket = S("photos");
    q.u.get.key = S("2024/a.jpg");
    q.u.get.version_id = S("v1");
    struct mc_proto_request d;
    struct mc_wbuf w;
    round_trip(&q, &d, &w);
    cr_assert_eq(d.u.get.ro.consistency, MC_CONSISTENCY_STALE);
    cr_assert_eq(d.u.get.ro.max_staleness_ms, 250);
    str_eq(d.u.get.bucket, "photos");
    str_eq(d.u.get.key, "2024/a.jpg");
    str_eq(d.u.get.version_id, "v1");
    mc_wbuf_free(&w);

    q = (struct mc_proto_request){.op = MC_REQ_LIST_OBJECTS, .request_id = 6};
    q.u.list.bucket = S("b");
    q.u.list.prefix = S("p/");
    q.u.list.delimiter = S("/");
    q.u.list.start_after = S("p/a");
    q.u.list.continuation_token = S("tok");
    q.u.list.max_keys = 17;
    round_trip(&q, &d, &w);
    str_eq(d.u.list.bucket, "b");
    str_eq(d.u.list.prefix, "p/");
    str_eq(d.u.list.delimiter, "/");
    str_eq(d.u.list.start_after, "p/a");
    str_eq(d.u.list.continuation_token, "tok");
    cr_assert_eq(d.u.list.max_keys, 17);
    mc_wbuf_free(&w);

    q = (struct mc_proto_request){.op = MC_REQ_LIST_VERSIONS, .request_id = 7};
    q.u.versions.bucket = S("b");
    q.u.versions.key_marker = S("k");
    q.u.versions.version_id_marker = S("v");
    q.u.versions.max_keys = 3;
    round_trip(&q, &d, &w);
    str_eq(d.u.versions.key_marker, "k");
    str_eq(d.u.versions.version_id_marker, "v");
    str_eq(d.u.versions.prefix, "");
    cr_assert_eq(d.u.versions.max_keys, 3);
    mc_wbuf_free(&w);

    q = (struct mc_proto_request){.op = MC_REQ_HEAD_BUCKET, .request_id = 8};
    q.u.bucket.bucket = S("bkt");
    round_trip(&q, &d, &w);
    str_eq(d.u.bucket.bucket, "bkt");
    mc_wbuf_free(&w);

    q = (struct mc_proto_request){.op = MC_REQ_LIST_BUCKETS, .request_id = 9};
    round_trip(&q, &d, &w);
    mc_wbuf_free(&w);
}

Test(client_proto, admin_round_trips)
{
    struct mc_proto_request q = {.op = MC_REQ_ADD_MEMBER, .request_id = 1};
    q.u.member.id = 4;
    q.u.member.peer_addr = S("127.0.0.1:7101");
    q.u.member.client_addr = S("127.0.0.1:7100");
    q.u.member.learner = true;
    struct mc_proto_request d;
    struct mc_wbuf w;
    round_trip(&q, &d, &w);
    cr_assert_eq(d.u.member.id, 4);
    str_eq(d.u.member.peer_addr, "127.0.0.1:7101");
    str_eq(d.u.member.client_addr, "127.0.0.1:7100");
    cr_assert(d.u.member.learner);
    mc_wbuf_free(&w);

    uint8_t ops[] = {MC_REQ_PROMOTE_MEMBER, MC_REQ_REMOVE_MEMBER, MC_REQ_TRANSFER_LEADER};
    for (int i = 0; i < 3; i++) {
        q = (struct mc_proto_request){.op = ops[i], .request_id = 2};
        q.u.member.id = 3;
        round_trip(&q, &d, &w);
        cr_assert_eq(d.u.member.id, 3);
        mc_wbuf_free(&w);
    }
    q = (struct mc_proto_request){.op = MC_REQ_CHECK, .request_id = 3};
    q.u.check.index = 99;
    round_trip(&q, &d, &w);
    cr_assert_eq(d.u.check.index, 99);
    mc_wbuf_free(&w);
    uint8_t empty[] = {MC_REQ_PING, MC_REQ_REGISTER_SESSION, MC_REQ_CLUSTER_STATUS,
                       MC_REQ_SNAPSHOT_SAVE, MC_REQ_LEADER};
    for (int i = 0; i < 5; i++) {
        q = (struct mc_proto_request){.op = empty[i], .request_id = 4};
        round_trip(&q, &d, &w);
        cr_assert_eq(w.len, MC_PROTO_HEADER_BYTES);
        mc_wbuf_free(&w);
    }
}

/* SNAPSHOT_SAVE's optional min index (session 12): 0 goes as an empty body (what every server
 * takes), anything else as one u64; any other body length is malformed. */
Test(client_proto, snapshot_save_min_index)
{
    struct mc_proto_request q = {.op = MC_REQ_SNAPSHOT_SAVE,
                                 .request_id = 5,
                                 .flags = MC_PROTO_FLAG_SAVE_MIN_INDEX},
                            d;
    struct mc_wbuf w;
    round_trip(&q, &d, &w);
    cr_assert_eq(w.len, MC_PROTO_HEADER_BYTES);
    cr_assert_eq(d.u.save.min_index, 0);
    cr_assert_eq(d.flags, MC_PROTO_FLAG_SAVE_MIN_INDEX);
    mc_wbuf_free(&w);
    uint64_t vals[] = {1, 123456789, UINT64_MAX};
    for (int i = 0; i < 3; i++) {
        q.u.save.min_index = vals[i];
        round_trip(&q, &d, &w);
        cr_assert_eq(w.len, MC_PROTO_HEADER_BYTES + 8);
        cr_assert_eq(d.u.save.min_index, vals[i]);
        mc_wbuf_free(&w);
    }
    struct mc_proto_header h = {.length = 16, .version = 1, .op = MC_REQ_SNAPSHOT_SAVE};
    uint8_t body[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    size_t bad[] = {1, 3, 7, 9};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(mc_proto_request_decode(&h, body, bad[i], &d), MC_EPROTO, "len %zu", bad[i]);
    }
    uint8_t zero[8] = {0}; /* 0 goes as an empty body only */
    cr_assert_eq(mc_proto_request_decode(&h, zero, sizeof(zero), &d), MC_EPROTO);

    /* The Busy answer carries the index in the error's result bytes. */
    uint8_t buf[8];
    struct mc_proto_error e = {0}, de;
    e.message = S("creating a fresh snapshot; retry shortly");
    mc_proto_save_busy_set(&e, buf, 4242);
    mc_wbuf_init(&w, 0);
    mc_proto_error_put(&w, &e);
    cr_assert_eq(mc_proto_error_decode(w.data, w.len, &de), 0);
    uint64_t got = 0;
    cr_assert_eq(mc_proto_save_busy_index(de.result, de.result_len, &got), 0);
    cr_assert_eq(got, 4242);
    mc_wbuf_free(&w);
    cr_assert_eq(mc_proto_save_busy_index(NULL, 0, &got), MC_ENOTFOUND); /* an old server's */
    cr_assert_eq(mc_proto_save_busy_index(buf, 7, &got), MC_ENOTFOUND);
}

Test(client_proto, reply_bodies_round_trip)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    struct mc_proto_error e = {0}, d;
    e.message = S("not the leader");
    e.leader_id = 3;
    e.leader_addr = S("127.0.0.1:7090");
    e.flags = MC_PROTO_ERR_DELETE_MARKER;
    e.version_id = S("abc");
    e.result = (const uint8_t *)"RES";
    e.result_len = 3;
    mc_proto_error_put(&w, &e);
    cr_assert_eq(mc_proto_error_decode(w.data, w.len, &d), 0);
    str_eq(d.message, "not the leader");
    cr_assert_eq(d.leader_id, 3);
    str_eq(d.leader_addr, "127.0.0.1:7090");
    cr_assert_eq(d.flags, MC_PROTO_ERR_DELETE_MARKER);
    str_eq(d.version_id, "abc");
    cr_assert_eq(d.result_len, 3);
    cr_assert_eq(memcmp(d.result, "RES", 3), 0);
    cr_assert_eq(mc_proto_error_decode(NULL, 0, &d), 0); /* empty body tolerated */
    cr_assert_eq(mc_proto_error_decode(w.data, w.len - 1, &d), MC_EPROTO);

    mc_wbuf_reset(&w);
    struct mc_ping_info p = {1, 2, 3}, pd;
    mc_proto_ping_put(&w, &p);
    cr_assert_eq(mc_proto_ping_decode(w.data, w.len, &pd), 0);
    cr_assert_eq(pd.node_id, 1);
    cr_assert_eq(pd.leader_id, 2);
    cr_assert_eq(pd.term, 3);

    mc_wbuf_reset(&w);
    struct mc_proto_leader l = {2, 3, S("127.0.0.1:7091")}, ld;
    mc_proto_leader_put(&w, &l);
    cr_assert_eq(mc_proto_leader_decode(w.data, w.len, &ld), 0);
    cr_assert_eq(ld.node_id, 2);
    cr_assert_eq(ld.leader_id, 3);
    str_eq(ld.leader_addr, "127.0.0.1:7091");
    cr_assert_eq(mc_proto_leader_decode(w.data, w.len - 1, &ld), MC_EPROTO);
    cr_assert_eq(mc_proto_leader_decode(w.data, 16, &ld), MC_EPROTO); /* no address */
    mc_wbuf_u8(&w, 7); /* a field a later server may add */
    cr_assert_eq(mc_proto_leader_decode(w.data, w.len, &ld), 0);
    str_eq(ld.leader_addr, "127.0.0.1:7091");

    mc_wbuf_reset(&w);
    uint64_t sid;
    mc_proto_session_put(&w, 77);
    cr_assert_eq(mc_proto_session_decode(w.data, w.len, &sid), 0);
    cr_assert_eq(sid, 77);

    mc_wbuf_reset(&w);
    struct mc_cluster_status st = {.node_id = 1,
                                   .leader_id = 2,
                                   .term = 5,
                                   .commit_index = 100,
                                   .applied_index = 99,
                                   .snapshot_index = 50,
                                   .n_members = 2};
    st.members[0].id = 1;
    strcpy(st.members[0].peer_addr, "127.0.0.1:7071");
    strcpy(st.members[0].client_addr, "127.0.0.1:7070");
    st.members[0].reachable = true;
    st.members[0].match_index = 100;
    st.members[1].id = 2;
    strcpy(st.members[1].peer_addr, "127.0.0.1:7081");
    st.members[1].learner = true;
    mc_proto_status_put(&w, &st);
    struct mc_cluster_status sd;
    cr_assert_eq(mc_proto_status_decode(w.data, w.len, &sd), 0);
    cr_assert_eq(sd.n_members, 2);
    cr_assert_eq(sd.snapshot_index, 50);
    cr_assert_str_eq(sd.members[0].client_addr, "127.0.0.1:7070");
    cr_assert(sd.members[0].reachable && !sd.members[0].learner);
    cr_assert(sd.members[1].learner && !sd.members[1].reachable);
    cr_assert_str_eq(sd.members[1].client_addr, "");
    cr_assert_eq(sd.members[0].match_index, 100);

    mc_wbuf_reset(&w);
    struct mc_check_result c = {3, 40, 0xfeed}, cd;
    mc_proto_check_put(&w, &c);
    cr_assert_eq(mc_proto_check_decode(w.data, w.len, &cd), 0);
    cr_assert_eq(cd.hash, 0xfeed);
    cr_assert_eq(cd.index, 40);

    mc_wbuf_reset(&w);
    struct mc_snapshot_chunk ch = {.offset = 10,
                                   .total_bytes = 14,
                                   .checksum = 5,
                                   .data = (const uint8_t *)"abcd",
                                   .len = 4},
                             chd;
    mc_proto_chunk_put(&w, &ch);
    cr_assert_eq(mc_proto_chunk_decode(w.data, w.len, &chd), 0);
    cr_assert_eq(chd.offset, 10);
    cr_assert_eq(chd.len, 4);
    cr_assert_eq(memcmp(chd.data, "abcd", 4), 0);
    /* a chunk that runs past its total is refused */
    mc_wbuf_reset(&w);
    ch.total_bytes = 12;
    mc_proto_chunk_put(&w, &ch);
    cr_assert_eq(mc_proto_chunk_decode(w.data, w.len, &chd), MC_EPROTO);
    mc_wbuf_free(&w);
}

Test(client_proto, reply_frame)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    cr_assert_eq(mc_proto_reply_encode(&w, MC_REQ_GET_OBJECT, 0, 42, MC_ENOKEY, "xy", 2), 0);
    struct mc_proto_header h;
    mc_proto_header_get(w.data, &h);
    cr_assert_eq(mc_proto_header_check(&h), 0);
    cr_assert_eq(h.op, MC_REQ_GET_OBJECT | MC_PROTO_REPLY_BIT);
    cr_assert_eq(h.status, MC_ENOKEY);
    cr_assert_eq(h.request_id, 42);
    cr_assert_eq(h.length + 4, MC_PROTO_HEADER_BYTES + 2);
    mc_wbuf_reset(&w);
    cr_assert_eq(mc_proto_reply_encode(&w, MC_REQ_PING, 0, 1, 0, NULL, MC_PROTO_MAX_BODY_BYTES + 1),
                 MC_ETOOLARGE);
    mc_wbuf_free(&w);
}

Test(client_proto, header_rejects)
{
    uint8_t buf[MC_PROTO_HEADER_BYTES];
    struct mc_proto_header h = {.length = 16, .version = MC_PROTO_VERSION, .op = MC_REQ_PING};
    mc_proto_header_put(buf, &h);
    struct mc_proto_header d;
    mc_proto_header_get(buf, &d);
    cr_assert_eq(mc_proto_header_check(&d), 0);
    d.length = 15;
    cr_assert_eq(mc_proto_header_check(&d), MC_EPROTO);
    d.length = MC_PROTO_MAX_FRAME_BYTES - 4;
    cr_assert_eq(mc_proto_header_check(&d), 0);
    d.length = MC_PROTO_MAX_FRAME_BYTES - 3;
    cr_assert_eq(mc_proto_header_check(&d), MC_ETOOLARGE);
    d.length = 16;
    d.version = 2;
    cr_assert_eq(mc_proto_header_check(&d), MC_EVERSION);
}

Test(client_proto, body_rejects)
{
    /* Every strict prefix of a valid body is rejected, never over-read. */
    struct mc_proto_request q = {.op = MC_REQ_LIST_OBJECTS, .request_id = 6};
    q.u.list.bucket = S("bucket");
    q.u.list.prefix = S("pre");
    q.u.list.max_keys = 5;
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    cr_assert_eq(mc_proto_request_encode(&w, &q), 0);
    struct mc_proto_header h;
    mc_proto_header_get(w.data, &h);
    const uint8_t *body = w.data + MC_PROTO_HEADER_BYTES;
    size_t n = w.len - MC_PROTO_HEADER_BYTES;
    struct mc_proto_request d;
    for (size_t len = 0; len < n; len++) {
        cr_assert_eq(mc_proto_request_decode(&h, body, len, &d), MC_EPROTO, "prefix %zu", len);
    }
    /* trailing garbage */
    uint8_t *longer = malloc(n + 1);
    memcpy(longer, body, n);
    longer[n] = 0;
    cr_assert_eq(mc_proto_request_decode(&h, longer, n + 1, &d), MC_EPROTO);
    free(longer);
    /* a string whose NUL terminator is wrong, or with an embedded NUL */
    uint8_t *bad = malloc(n);
    memcpy(bad, body, n);
    size_t off = 5; /* after read opts (u8 + u32): bucket length, then bytes */
    cr_assert_eq(mc_get_u32le(bad + off), 6);
    bad[off + 4 + 6] = 'x';
    cr_assert_eq(mc_proto_request_decode(&h, bad, n, &d), MC_EPROTO);
    memcpy(bad, body, n);
    bad[off + 4 + 2] = 0;
    cr_assert_eq(mc_proto_request_decode(&h, bad, n, &d), MC_EPROTO);
    /* an absurd string length */
    memcpy(bad, body, n);
    mc_put_u32le(bad + off, 0xffffffffu);
    cr_assert_eq(mc_proto_request_decode(&h, bad, n, &d), MC_EPROTO);
    /* a bad consistency byte */
    memcpy(bad, body, n);
    bad[0] = 7;
    cr_assert_eq(mc_proto_request_decode(&h, bad, n, &d), MC_EPROTO);
    free(bad);
    /* unknown op: well formed, reported as MC_EINVAL (error reply, no close) */
    h.op = 0x7e;
    cr_assert_eq(mc_proto_request_decode(&h, body, n, &d), MC_EINVAL);
    mc_wbuf_free(&w);

    /* write: zero ops, too many ops, a seq of 0 within a session */
    struct mc_wbuf b;
    mc_wbuf_init(&b, 0);
    mc_wbuf_u64(&b, 1);
    mc_wbuf_u64(&b, 1);
    mc_wbuf_u64(&b, 0);
    mc_wbuf_u32(&b, 0);
    struct mc_proto_header wh = {.length = 0, .version = 1, .op = MC_REQ_WRITE};
    cr_assert_eq(mc_proto_request_decode(&wh, b.data, b.len, &d), MC_EPROTO);
    mc_wbuf_patch_u32(&b, 24, MC_PROTO_MAX_BATCH_OPS + 1);
    cr_assert_eq(mc_proto_request_decode(&wh, b.data, b.len, &d), MC_EPROTO);
    mc_wbuf_patch_u32(&b, 24, 1);
    mc_proto_ops_put(&b, "x", 1);
    cr_assert_eq(mc_proto_request_decode(&wh, b.data, b.len, &d), 0);
    mc_put_u64le(b.data + 8, 0);
    cr_assert_eq(mc_proto_request_decode(&wh, b.data, b.len, &d), MC_EPROTO);
    mc_wbuf_free(&b);
}

Test(client_proto, oversize_request_refused)
{
    struct mc_wbuf ops;
    mc_wbuf_init(&ops, 0);
    size_t big = MC_PROTO_MAX_FRAME_BYTES;
    uint8_t *p = calloc(1, big);
    mc_proto_ops_put(&ops, p, big);
    struct mc_proto_request q = {.op = MC_REQ_WRITE, .request_id = 1};
    q.u.write.n_ops = 1;
    q.u.write.ops = ops.data;
    q.u.write.ops_bytes = (uint32_t)ops.len;
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    cr_assert_eq(mc_proto_request_encode(&w, &q), MC_ETOOLARGE);
    cr_assert_eq(w.len, 0);
    mc_wbuf_free(&w);
    mc_wbuf_free(&ops);
    free(p);
    /* an oversized string poisons the writer */
    mc_wbuf_init(&w, 0);
    char *s = malloc(MC_PROTO_MAX_STR_BYTES + 2);
    memset(s, 'a', MC_PROTO_MAX_STR_BYTES + 1);
    s[MC_PROTO_MAX_STR_BYTES + 1] = 0;
    q = (struct mc_proto_request){.op = MC_REQ_GET_OBJECT, .request_id = 1};
    q.u.get.bucket = S("b");
    q.u.get.key = S(s);
    cr_assert_eq(mc_proto_request_encode(&w, &q), MC_ETOOLARGE);
    free(s);
    mc_wbuf_free(&w);
}
