/* gen_corpus.c: writes the fuzzers' seed corpora with the real encoders (make fuzz-corpus). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "metacenter/raft.h"
#include "net/proto.h"
#include "util/codec.h"
#include "gen.h"

/*
 * Usage: fuzz_gen_corpus DIR. Writes DIR/<target>/<name> for the targets op, raft_msg, proto, wal,
 * snap. Inputs are small valid records covering every op/message/frame type, so the fuzzers start
 * from the accepted language and mutate from there. Deterministic: same bytes every run.
 */

static const char *g_root;
static int g_files;

static void mkdir_p(const char *path)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen_corpus: mkdir %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* Write prefix (0 or 1 byte) + data to ROOT/target/name. */
void gen_emit(const char *target, const char *name, int prefix, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", g_root, target);
    mkdir_p(path);
    snprintf(path, sizeof(path), "%s/%s/%s", g_root, target, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        fprintf(stderr, "gen_corpus: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    if (prefix >= 0) {
        fputc(prefix, f);
    }
    if (len && fwrite(data, 1, len, f) != len) {
        fprintf(stderr, "gen_corpus: short write %s\n", path);
        exit(1);
    }
    fclose(f);
    g_files++;
}

static void emit_w(const char *target, const char *name, int prefix, struct mc_wbuf *w)
{
    GEN_CHECK(mc_wbuf_error(w));
    gen_emit(target, name, prefix, w->data, w->len);
    mc_wbuf_reset(w);
}

/* ---- engine records (target op: selector byte = 0 op, 1 result, 2 version, 3 list, 4 buckets) */

static void full_meta(struct mc_object_meta *m)
{
    static uint32_t dist[] = {2, 0, 1, 3};
    static const uint8_t inl[] = "hello, inline world";
    memset(m, 0, sizeof(*m));
    m->size = 1234567;
    m->etag = strdup("\"9b2cf535f27731c974343645a3985328\"");
    m->content_type = strdup("text/plain; charset=utf-8");
    GEN_CHECK(mc_object_meta_add_user(m, "x-amz-meta-owner", "alice"));
    GEN_CHECK(mc_object_meta_add_user(m, "x-amz-meta-färg", "blå"));
    m->storage_class = strdup("STANDARD");
    m->erasure.data_blocks = 2;
    m->erasure.parity_blocks = 2;
    m->erasure.block_size = 1 << 20;
    m->erasure.n_distribution = 4;
    m->erasure.distribution = malloc(sizeof(dist));
    memcpy(m->erasure.distribution, dist, sizeof(dist));
    m->data_dir = strdup("6f1c2a1e-3b4d-4c5e-9f60-718293a4b5c6");
    m->n_parts = 2;
    m->parts = calloc(2, sizeof(*m->parts));
    m->parts[0] = (struct mc_part){1, 5 << 20, strdup("\"aa\"")};
    m->parts[1] = (struct mc_part){2, 1024, strdup("\"bb\"")};
    m->checksum_algorithm = strdup("CRC32C");
    m->checksum_value = strdup("yZRlqg==");
    m->inline_len = sizeof(inl) - 1;
    m->inline_data = malloc(m->inline_len);
    memcpy(m->inline_data, inl, m->inline_len);
}

static void emit_op(struct mc_wbuf *w, const char *name, struct mc_op *op)
{
    GEN_CHECK(mc_op_encode(op, w));
    emit_w("op", name, 0, w);
    mc_op_clear(op);
}

static void gen_ops(struct mc_wbuf *w)
{
    struct mc_op op = {0};
    struct mc_object_meta m;
    full_meta(&m);

    emit_op(w, "op_noop", &op);
    GEN_CHECK(mc_op_bucket_create(&op, "photos", MC_VERSIONING_ENABLED, 1700000000000000000));
    emit_op(w, "op_bucket_create", &op);
    GEN_CHECK(mc_op_bucket_delete(&op, "photos"));
    emit_op(w, "op_bucket_delete", &op);
    GEN_CHECK(mc_op_bucket_versioning(&op, "photos", MC_VERSIONING_SUSPENDED));
    emit_op(w, "op_bucket_versioning", &op);
    GEN_CHECK(
        mc_op_put(&op, "photos", "2024/cat.jpg", "0000018bcfe56800", 1700000000000000001, &m));
    op.if_match = strdup("\"9b2cf535f27731c974343645a3985328\"");
    op.session_id = 42;
    op.seq = 7;
    emit_op(w, "op_put_full", &op);
    GEN_CHECK(mc_op_put(&op, "photos", "k", "0000018bcfe56802", 3, NULL));
    op.session_id = 42;
    op.seq = 9;
    op.acked_seq = 7; /* format 2 */
    emit_op(w, "op_put_acked_v2", &op);
    GEN_CHECK(mc_op_put(&op, "b01", "k", NULL, 5, NULL));
    op.if_none_match_star = true;
    emit_op(w, "op_put_min", &op);
    GEN_CHECK(mc_op_delete(&op, "photos", "2024/cat.jpg", NULL, "0000018bcfe56801", 6));
    emit_op(w, "op_delete_latest", &op);
    GEN_CHECK(mc_op_delete(&op, "photos", "2024/cat.jpg", "0000018bcfe56800", NULL, 7));
    emit_op(w, "op_delete_version", &op);
    GEN_CHECK(mc_op_update_meta(
        &op, "photos", "2024/cat.jpg", NULL,
        MC_UPDATE_USER_META | MC_UPDATE_CONTENT_TYPE | MC_UPDATE_STORAGE_CLASS, &m, 8));
    emit_op(w, "op_update_meta", &op);
    GEN_CHECK(mc_op_session_register(&op, 9));
    emit_op(w, "op_session_register", &op);

    struct mc_op subs[3] = {{0}};
    GEN_CHECK(mc_op_put(&subs[0], "photos", "a", "v1", 10, NULL));
    GEN_CHECK(mc_op_delete(&subs[1], "photos", "b", NULL, "v2", 10));
    GEN_CHECK(mc_op_bucket_create(&subs[2], "other-bucket", MC_VERSIONING_UNVERSIONED, 10));
    GEN_CHECK(mc_op_atomic(&op, subs, 3));
    emit_op(w, "op_atomic3", &op);

    /* An ATOMIC whose sub-ops carry full metadata (inline data, parts, user metadata, erasure)
     * and whose acked_seq makes the whole record format 2: the node stamps it field by field
     * and every replica block-decodes it at apply (fuzz_op_block.h). */
    struct mc_op full[3] = {{0}};
    GEN_CHECK(mc_op_put(&full[0], "photos", "2024/cat.jpg", "0000018bcfe56803", 11, &m));
    GEN_CHECK(mc_op_update_meta(&full[1], "photos", "2024/dog.jpg", "0000018bcfe56800",
                                MC_UPDATE_USER_META | MC_UPDATE_CONTENT_TYPE, &m, 11));
    GEN_CHECK(mc_op_delete(&full[2], "photos", "old", "0000018bcfe56700", "0000018bcfe56804", 11));
    GEN_CHECK(mc_op_atomic(&op, full, 3));
    op.session_id = 42;
    op.seq = 12;
    op.acked_seq = 11;
    emit_op(w, "op_atomic_full_v2", &op);
    mc_object_meta_clear(&m);
}

static void gen_results(struct mc_wbuf *w)
{
    struct mc_op_result r = {0};
    r.failed_op = -1;
    snprintf(r.version_id, sizeof(r.version_id), "0000018bcfe56800");
    GEN_CHECK(mc_op_result_encode(&r, w));
    emit_w("op", "result_put", 1, w);
    r = (struct mc_op_result){.code = MC_EPRECOND, .failed_op = 2};
    GEN_CHECK(mc_op_result_encode(&r, w));
    emit_w("op", "result_atomic_failed", 1, w);
    r = (struct mc_op_result){.failed_op = -1, .delete_marker = true, .duplicate = true};
    snprintf(r.version_id, sizeof(r.version_id), "null");
    GEN_CHECK(mc_op_result_encode(&r, w));
    emit_w("op", "result_marker_dup", 1, w);
    r = (struct mc_op_result){.failed_op = -1, .session_id = 1234, .skipped = true};
    GEN_CHECK(mc_op_result_encode(&r, w));
    emit_w("op", "result_session", 1, w);
}

static void make_version(struct mc_version *v, const char *key, const char *vid, bool marker,
                         bool full)
{
    memset(v, 0, sizeof(*v));
    snprintf(v->bucket, sizeof(v->bucket), "photos");
    v->key = strdup(key);
    v->version_id = strdup(vid);
    v->is_delete_marker = marker;
    v->is_latest = true;
    v->mod_time_ns = 1700000000000000000;
    v->seq = (12345ull << 16) | 1;
    if (full) {
        full_meta(&v->meta);
    }
}

static void gen_versions(struct mc_wbuf *w)
{
    struct mc_version v;
    make_version(&v, "2024/cat.jpg", "0000018bcfe56800", false, true);
    GEN_CHECK(mc_version_encode(&v, w));
    emit_w("op", "version_full", 2, w);
    mc_version_clear(&v);
    make_version(&v, "2024/dog.jpg", "null", true, false);
    GEN_CHECK(mc_version_encode(&v, w));
    emit_w("op", "version_marker", 2, w);
    mc_version_clear(&v);
}

static void gen_lists(struct mc_wbuf *w, struct mc_wbuf *proto_body)
{
    struct mc_list_result lr = {0};
    lr.entries = calloc(2, sizeof(*lr.entries));
    lr.n_entries = 2;
    make_version(&lr.entries[0], "a/1", "null", false, false);
    make_version(&lr.entries[1], "a/2", "null", false, false);
    lr.entries[1].meta.etag = strdup("\"e\"");
    lr.entries[1].meta.size = 10;
    lr.common_prefixes = calloc(1, sizeof(char *));
    lr.common_prefixes[0] = strdup("a/b/");
    lr.n_prefixes = 1;
    lr.key_count = 3;
    lr.is_truncated = true;
    lr.next_continuation_token = strdup("YS8yAA==");
    lr.cursor_steps = 17;
    GEN_CHECK(mc_list_result_encode(&lr, w));
    mc_wbuf_put(proto_body, w->data, w->len);
    emit_w("op", "list_objects", 3, w);
    mc_list_result_clear(&lr);

    lr = (struct mc_list_result){0};
    lr.is_versions = true;
    lr.entries = calloc(2, sizeof(*lr.entries));
    lr.n_entries = 2;
    make_version(&lr.entries[0], "k", "v2", true, false);
    make_version(&lr.entries[1], "k", "v1", false, false);
    lr.entries[1].is_latest = false;
    lr.key_count = 2;
    lr.is_truncated = true;
    lr.next_key_marker = strdup("k");
    lr.next_version_id_marker = strdup("v1");
    GEN_CHECK(mc_list_result_encode(&lr, w));
    emit_w("op", "list_versions", 3, w);
    mc_list_result_clear(&lr);

    lr = (struct mc_list_result){0};
    GEN_CHECK(mc_list_result_encode(&lr, w));
    emit_w("op", "list_empty", 3, w);
}

static void gen_buckets(struct mc_wbuf *w)
{
    struct mc_bucket_info b[3] = {
        {"alpha", 1, MC_VERSIONING_UNVERSIONED},
        {"beta.bucket-01", 1700000000000000000, MC_VERSIONING_ENABLED},
        {"gamma", 3, MC_VERSIONING_SUSPENDED},
    };
    GEN_CHECK(mc_bucket_list_encode(b, 3, w));
    emit_w("op", "buckets3", 4, w);
    GEN_CHECK(mc_bucket_list_encode(b, 1, w));
    emit_w("op", "buckets1", 4, w);
    GEN_CHECK(mc_bucket_list_encode(b, 0, w));
    emit_w("op", "buckets0", 4, w);
}

/* ---- op sequences for the apply target: records as u16 length + bytes ---- */

static void seq_add(struct mc_wbuf *seq, struct mc_op *op)
{
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    GEN_CHECK(mc_op_encode(op, &w));
    mc_wbuf_u16(seq, (uint16_t)w.len);
    mc_wbuf_put(seq, w.data, w.len);
    mc_wbuf_free(&w);
    mc_op_clear(op);
}

static void gen_apply(struct mc_wbuf *seq)
{
    struct mc_op op = {0};
    struct mc_object_meta m;
    full_meta(&m);

    /* Versioned bucket: versions, a delete marker, a version delete, metadata update. */
    GEN_CHECK(mc_op_bucket_create(&op, "photos", MC_VERSIONING_ENABLED, 1));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_put(&op, "photos", "2024/cat.jpg", "0000000000000001", 2, &m));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_put(&op, "photos", "2024/cat.jpg", "0000000000000002", 3, NULL));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_put(&op, "photos", "2024/dog.jpg", "0000000000000003", 4, NULL));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_put(&op, "photos", "readme", "0000000000000004", 4, NULL));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_delete(&op, "photos", "2024/cat.jpg", NULL, "0000000000000005", 5));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_delete(&op, "photos", "2024/dog.jpg", "0000000000000003", NULL, 6));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_update_meta(&op, "photos", "readme", NULL, MC_UPDATE_USER_META, &m, 7));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_bucket_versioning(&op, "photos", MC_VERSIONING_SUSPENDED));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_put(&op, "photos", "2024/cat.jpg", "0000000000000006", 8, NULL));
    seq_add(seq, &op);
    gen_emit("apply", "seq_versioned", -1, seq->data, seq->len);
    /* Same ops + listing parameters (page byte, prefix, delimiter, start_after, key_marker,
     * version_id_marker, token) after a 0xFFFF terminator. */
    size_t ops_len = seq->len;
    static const char delim[] = "\x00\0/\0\0\0\0";
    mc_wbuf_u16(seq, 0xFFFF);
    mc_wbuf_put(seq, delim, sizeof(delim) - 1);
    gen_emit("apply", "seq_versioned_delim", -1, seq->data, seq->len);
    seq->len = ops_len;
    static const char pfx[] = "\x01\0"
                              "2024/\0\0"
                              "2024/cat.jpg\0"
                              "2024/cat.jpg\0"
                              "0000000000000002";
    mc_wbuf_u16(seq, 0xFFFF);
    mc_wbuf_put(seq, pfx, sizeof(pfx) - 1);
    gen_emit("apply", "seq_versioned_markers", -1, seq->data, seq->len);
    mc_wbuf_reset(seq);

    /* Unversioned bucket, conditional puts, a refused bucket delete, an atomic batch. */
    GEN_CHECK(mc_op_bucket_create(&op, "plain", MC_VERSIONING_UNVERSIONED, 1));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_put(&op, "plain", "a", "null", 2, NULL));
    op.if_none_match_star = true;
    seq_add(seq, &op);
    GEN_CHECK(mc_op_put(&op, "plain", "a", "null", 3, &m));
    op.if_match = strdup("\"nope\"");
    seq_add(seq, &op);
    GEN_CHECK(mc_op_bucket_delete(&op, "plain"));
    seq_add(seq, &op);
    struct mc_op subs[3] = {{0}};
    GEN_CHECK(mc_op_put(&subs[0], "plain", "b", "null", 4, NULL));
    GEN_CHECK(mc_op_delete(&subs[1], "plain", "a", NULL, "null", 4));
    GEN_CHECK(mc_op_bucket_create(&subs[2], "plain2", MC_VERSIONING_ENABLED, 4));
    GEN_CHECK(mc_op_atomic(&op, subs, 3));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_delete(&op, "plain", "b", NULL, "null", 5));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_bucket_delete(&op, "plain"));
    seq_add(seq, &op);
    gen_emit("apply", "seq_plain_atomic", -1, seq->data, seq->len);
    mc_wbuf_reset(seq);

    /* Sessions: register (session id = its index, 1), a put, its duplicate, a newer one. */
    GEN_CHECK(mc_op_session_register(&op, 1));
    seq_add(seq, &op);
    GEN_CHECK(mc_op_bucket_create(&op, "sess", MC_VERSIONING_ENABLED, 2));
    seq_add(seq, &op);
    for (int i = 0; i < 3; i++) {
        GEN_CHECK(mc_op_put(&op, "sess", "k", i == 2 ? "0000000000000009" : "0000000000000008",
                            3 + i, NULL));
        op.session_id = 1;
        op.seq = i == 2 ? 2 : 1;
        seq_add(seq, &op);
    }
    gen_emit("apply", "seq_sessions", -1, seq->data, seq->len);
    mc_wbuf_reset(seq);
    mc_object_meta_clear(&m);
}

/* ---- action scripts for the raft_step target (see fuzz_raft_step.c for the opcodes) ---- */

static void gen_raft_step(void)
{
    uint8_t s[512];
    size_t n = 0;
    s[n++] = 0;                   /* flags: no lease */
    for (int i = 0; i < 5; i++) { /* 5 x 12 ticks: an election */
        s[n++] = 0;
        s[n++] = 11;
    }
    for (int i = 0; i < 6; i++) { /* proposals, replicated by ticks */
        s[n++] = 4;
        s[n++] = 8;
        s[n++] = 0;
        s[n++] = 1;
    }
    size_t elected = n;
    gen_emit("raft_step", "elect_propose", -1, s, n);
    /* + snapshots on every node, more proposals, a read, a transfer, a conf change */
    for (int i = 0; i < 3; i++) {
        s[n++] = 6;
        s[n++] = (uint8_t)i;
    }
    for (int i = 0; i < 4; i++) {
        s[n++] = 4;
        s[n++] = 3;
    }
    s[n++] = 5, s[n++] = 1, s[n++] = 7;
    s[n++] = 0, s[n++] = 3;
    s[n++] = 7, s[n++] = 1;
    s[n++] = 0, s[n++] = 11;
    s[n++] = 8, s[n++] = 0, s[n++] = 3; /* add learner 4 */
    s[n++] = 0, s[n++] = 5;
    s[n++] = 8, s[n++] = 3, s[n++] = 2; /* remove 3 */
    s[n++] = 0, s[n++] = 5;
    gen_emit("raft_step", "snap_transfer_conf", -1, s, n);
    /* + forged messages of every type against each node, and lost messages */
    n = elected;
    for (int t = 0; t < 12; t++) {
        s[n++] = 2;
        s[n++] = (uint8_t)(t % 3 | (t % 4) << 2);
        s[n++] = (uint8_t)t;
        s[n++] = (uint8_t)(0x31 * t);
        for (int k = 0; k < 9; k++) {
            s[n++] = (uint8_t)(7 * t + k);
        }
        s[n++] = 1, s[n++] = 2, s[n++] = 0x5a, s[n++] = 3;
    }
    s[n++] = 0, s[n++] = 11;
    gen_emit("raft_step", "forged", -1, s, n);
}

/* ---- raft messages and conf-change payloads (target raft_msg) ---- */

static size_t conf_payload(uint8_t *buf, size_t cap, uint8_t type, uint64_t node, const char *ctx,
                           int joint)
{
    struct mc_raft_conf_change cc = {.type = type, .node_id = node};
    cc.context_len = (uint32_t)strlen(ctx);
    memcpy(cc.context, ctx, cc.context_len);
    struct mc_raft_conf c = {0};
    c.n_voters = 3;
    c.voters[0] = 1;
    c.voters[1] = 2;
    c.voters[2] = 3;
    c.n_learners = 1;
    c.learners[0] = 4;
    if (joint) {
        c.n_voters_outgoing = 2;
        c.voters_outgoing[0] = 1;
        c.voters_outgoing[1] = 2;
    }
    size_t len = 0;
    GEN_CHECK(mc_raft_conf_change_encode(&cc, &c, buf, cap, &len));
    return len;
}

static void emit_msg(struct mc_wbuf *w, const char *name, const struct mc_raft_msg *m)
{
    GEN_CHECK(mc_raft_msg_encode(m, w));
    emit_w("raft_msg", name, -1, w);
}

static void gen_raft(struct mc_wbuf *w)
{
    uint8_t cbuf[MC_RAFT_CONF_CHANGE_MAX_BYTES];
    size_t clen = conf_payload(cbuf, sizeof(cbuf), MC_RAFT_CONF_ADD_LEARNER, 4,
                               "127.0.0.1:7004|127.0.0.1:8004", 0);
    gen_emit("raft_msg", "conf_add_learner", -1, cbuf, clen);
    size_t plen = conf_payload(cbuf, sizeof(cbuf), MC_RAFT_CONF_PROMOTE, 4, "", 1);
    gen_emit("raft_msg", "conf_promote_joint", -1, cbuf, plen);
    plen = conf_payload(cbuf, sizeof(cbuf), MC_RAFT_CONF_REMOVE, 5, "", 0);
    gen_emit("raft_msg", "conf_remove", -1, cbuf, plen);

    /* An APPEND carrying a no-op, an op record and a conf change. */
    struct mc_wbuf opw;
    mc_wbuf_init(&opw, 0);
    struct mc_op op = {0};
    GEN_CHECK(mc_op_put(&op, "photos", "k", "v1", 11, NULL));
    GEN_CHECK(mc_op_encode(&op, &opw));
    mc_op_clear(&op);
    uint8_t conf_entry[MC_RAFT_CONF_CHANGE_MAX_BYTES];
    clen = conf_payload(conf_entry, sizeof(conf_entry), MC_RAFT_CONF_ADD_VOTER, 5, "127.0.0.1:7005",
                        0);
    struct mc_raft_entry ents[3] = {
        {.index = 11, .term = 2, .type = MC_RAFT_ENTRY_NORMAL},
        {.index = 12,
         .term = 2,
         .type = MC_RAFT_ENTRY_NORMAL,
         .len = (uint32_t)opw.len,
         .data = opw.data},
        {.index = 13,
         .term = 2,
         .type = MC_RAFT_ENTRY_CONF,
         .len = (uint32_t)clen,
         .data = conf_entry},
    };
    struct mc_raft_msg m = {.type = MC_RAFT_MSG_APPEND,
                            .from = 1,
                            .to = 2,
                            .term = 2,
                            .index = 10,
                            .log_term = 1,
                            .commit = 9,
                            .n_entries = 3,
                            .entries = ents};
    emit_msg(w, "append3", &m);
    m.n_entries = 0;
    m.entries = NULL;
    emit_msg(w, "append_empty", &m);
    mc_wbuf_free(&opw);

    m = (struct mc_raft_msg){.type = MC_RAFT_MSG_APPEND_RESP,
                             .from = 2,
                             .to = 1,
                             .term = 2,
                             .index = 13,
                             .reject = 1,
                             .reject_hint = 8,
                             .hint_term = 1};
    emit_msg(w, "append_resp_reject", &m);
    m = (struct mc_raft_msg){.type = MC_RAFT_MSG_VOTE,
                             .from = 3,
                             .to = 1,
                             .term = 5,
                             .index = 20,
                             .log_term = 4,
                             .flags = MC_RAFT_FLAG_TRANSFER};
    emit_msg(w, "vote", &m);
    m.type = MC_RAFT_MSG_PREVOTE;
    m.flags = 0;
    emit_msg(w, "prevote", &m);
    m = (struct mc_raft_msg){.type = MC_RAFT_MSG_VOTE_RESP, .from = 1, .to = 3, .term = 5};
    emit_msg(w, "vote_resp", &m);
    m.type = MC_RAFT_MSG_PREVOTE_RESP;
    m.reject = 1;
    emit_msg(w, "prevote_resp", &m);
    m = (struct mc_raft_msg){
        .type = MC_RAFT_MSG_HEARTBEAT, .from = 1, .to = 2, .term = 5, .commit = 20, .ctx = 77};
    emit_msg(w, "heartbeat", &m);
    m.type = MC_RAFT_MSG_HEARTBEAT_RESP;
    emit_msg(w, "heartbeat_resp", &m);
    m = (struct mc_raft_msg){.type = MC_RAFT_MSG_SNAPSHOT, .from = 1, .to = 4, .term = 5};
    m.snapshot.index = 100;
    m.snapshot.term = 4;
    m.snapshot.conf.n_voters = 3;
    m.snapshot.conf.voters[0] = 1;
    m.snapshot.conf.voters[1] = 2;
    m.snapshot.conf.voters[2] = 3;
    m.snapshot.conf.n_learners = 1;
    m.snapshot.conf.learners[0] = 4;
    emit_msg(w, "snapshot", &m);
    m = (struct mc_raft_msg){.type = MC_RAFT_MSG_TIMEOUT_NOW, .from = 1, .to = 2, .term = 5};
    emit_msg(w, "timeout_now", &m);
    m = (struct mc_raft_msg){
        .type = MC_RAFT_MSG_READ_INDEX, .from = 2, .to = 1, .term = 5, .ctx = 9};
    emit_msg(w, "read_index", &m);
    m.type = MC_RAFT_MSG_READ_INDEX_RESP;
    m.index = 20;
    emit_msg(w, "read_index_resp", &m);
}

/* ---- client protocol frames (target proto) ---- */

static void emit_req(struct mc_wbuf *w, const char *name, struct mc_proto_request *q)
{
    GEN_CHECK(mc_proto_request_encode(w, q));
    emit_w("proto", name, -1, w);
}

static void emit_reply(struct mc_wbuf *w, const char *name, uint8_t op, uint16_t flags, int status,
                       struct mc_wbuf *body)
{
    GEN_CHECK(mc_wbuf_error(body));
    GEN_CHECK(mc_proto_reply_encode(w, op, flags, 99, status, body->data, body->len));
    emit_w("proto", name, -1, w);
    mc_wbuf_reset(body);
}

static void gen_proto(struct mc_wbuf *w, struct mc_wbuf *list_body)
{
    struct mc_proto_request q;
    struct mc_wbuf ops;
    mc_wbuf_init(&ops, 0);
    struct mc_op op = {0};
    GEN_CHECK(mc_op_put(&op, "photos", "k", NULL, 0, NULL));
    struct mc_wbuf rec;
    mc_wbuf_init(&rec, 0);
    GEN_CHECK(mc_op_encode(&op, &rec));
    mc_op_clear(&op);
    mc_proto_ops_put(&ops, rec.data, rec.len);

    q = (struct mc_proto_request){.op = MC_REQ_WRITE, .request_id = 1};
    q.u.write.session_id = 5;
    q.u.write.seq = 1;
    q.u.write.n_ops = 1;
    q.u.write.ops = ops.data;
    q.u.write.ops_bytes = (uint32_t)ops.len;
    emit_req(w, "req_write1", &q);
    GEN_CHECK(mc_op_delete(&op, "photos", "j", NULL, NULL, 0));
    mc_wbuf_reset(&rec);
    GEN_CHECK(mc_op_encode(&op, &rec));
    mc_op_clear(&op);
    mc_proto_ops_put(&ops, rec.data, rec.len);
    mc_proto_ops_put(&ops, rec.data, rec.len);
    q.u.write.session_id = 0;
    q.u.write.seq = 0;
    q.u.write.n_ops = 3;
    q.u.write.ops = ops.data;
    q.u.write.ops_bytes = (uint32_t)ops.len;
    emit_req(w, "req_write_batch3", &q);

    /* Single-op WRITEs, which the node block-decodes (mc_op_decode_block): a PUT with full
     * metadata, and an ATOMIC record (decoded field by field for stamping). */
    struct mc_object_meta m;
    full_meta(&m);
    GEN_CHECK(mc_op_put(&op, "photos", "2024/cat.jpg", NULL, 0, &m));
    mc_wbuf_reset(&rec);
    GEN_CHECK(mc_op_encode(&op, &rec));
    mc_op_clear(&op);
    mc_wbuf_reset(&ops);
    mc_proto_ops_put(&ops, rec.data, rec.len);
    q.u.write.session_id = 5;
    q.u.write.seq = 3;
    q.u.write.acked_seq = 2;
    q.u.write.n_ops = 1;
    q.u.write.ops = ops.data;
    q.u.write.ops_bytes = (uint32_t)ops.len;
    emit_req(w, "req_write1_put_full", &q);
    struct mc_op subs[2] = {{0}};
    GEN_CHECK(mc_op_put(&subs[0], "photos", "a", NULL, 0, &m));
    GEN_CHECK(mc_op_delete(&subs[1], "photos", "b", "0000018bcfe56800", NULL, 0));
    GEN_CHECK(mc_op_atomic(&op, subs, 2));
    mc_object_meta_clear(&m);
    mc_wbuf_reset(&rec);
    GEN_CHECK(mc_op_encode(&op, &rec));
    mc_op_clear(&op);
    mc_wbuf_reset(&ops);
    mc_proto_ops_put(&ops, rec.data, rec.len);
    q.u.write.acked_seq = 0;
    q.u.write.ops = ops.data;
    q.u.write.ops_bytes = (uint32_t)ops.len;
    emit_req(w, "req_write1_atomic", &q);

    q = (struct mc_proto_request){.op = MC_REQ_GET_OBJECT, .request_id = 2};
    q.u.get.bucket = mc_proto_cstr("photos");
    q.u.get.key = mc_proto_cstr("2024/cat.jpg");
    q.u.get.version_id = mc_proto_cstr("");
    emit_req(w, "req_get", &q);
    q.op = MC_REQ_HEAD_OBJECT;
    q.u.get.ro.consistency = MC_CONSISTENCY_STALE;
    q.u.get.ro.max_staleness_ms = 500;
    q.u.get.version_id = mc_proto_cstr("0000018bcfe56800");
    emit_req(w, "req_head_stale", &q);

    q = (struct mc_proto_request){.op = MC_REQ_LIST_OBJECTS, .request_id = 3};
    q.u.list.bucket = mc_proto_cstr("photos");
    q.u.list.prefix = mc_proto_cstr("2024/");
    q.u.list.delimiter = mc_proto_cstr("/");
    q.u.list.start_after = mc_proto_cstr("");
    q.u.list.continuation_token = mc_proto_cstr("YS8yAA==");
    q.u.list.max_keys = 100;
    emit_req(w, "req_list", &q);
    q = (struct mc_proto_request){.op = MC_REQ_LIST_VERSIONS, .request_id = 4};
    q.u.versions.bucket = mc_proto_cstr("photos");
    q.u.versions.prefix = mc_proto_cstr("");
    q.u.versions.delimiter = mc_proto_cstr("");
    q.u.versions.key_marker = mc_proto_cstr("k");
    q.u.versions.version_id_marker = mc_proto_cstr("v1");
    emit_req(w, "req_versions", &q);
    q = (struct mc_proto_request){.op = MC_REQ_LIST_BUCKETS, .request_id = 5};
    emit_req(w, "req_list_buckets", &q);
    q = (struct mc_proto_request){.op = MC_REQ_HEAD_BUCKET, .request_id = 6};
    q.u.bucket.bucket = mc_proto_cstr("photos");
    emit_req(w, "req_head_bucket", &q);
    q = (struct mc_proto_request){.op = MC_REQ_ADD_MEMBER, .request_id = 7};
    q.u.member.id = 4;
    q.u.member.peer_addr = mc_proto_cstr("127.0.0.1:7004");
    q.u.member.client_addr = mc_proto_cstr("127.0.0.1:8004");
    q.u.member.learner = true;
    emit_req(w, "req_add_member", &q);
    q = (struct mc_proto_request){.op = MC_REQ_REMOVE_MEMBER, .request_id = 8};
    q.u.member.id = 4;
    emit_req(w, "req_remove_member", &q);
    q = (struct mc_proto_request){.op = MC_REQ_CHECK, .request_id = 9};
    q.u.check.index = 1000;
    emit_req(w, "req_check", &q);

    /* A pipelined stream: PING, REGISTER_SESSION, CLUSTER_STATUS, SNAPSHOT_SAVE, TRANSFER. */
    q = (struct mc_proto_request){.op = MC_REQ_PING, .request_id = 10};
    GEN_CHECK(mc_proto_request_encode(w, &q));
    q = (struct mc_proto_request){.op = MC_REQ_REGISTER_SESSION, .request_id = 11};
    GEN_CHECK(mc_proto_request_encode(w, &q));
    q = (struct mc_proto_request){.op = MC_REQ_CLUSTER_STATUS, .request_id = 12};
    GEN_CHECK(mc_proto_request_encode(w, &q));
    q = (struct mc_proto_request){.op = MC_REQ_SNAPSHOT_SAVE, .request_id = 13};
    GEN_CHECK(mc_proto_request_encode(w, &q));
    q = (struct mc_proto_request){.op = MC_REQ_TRANSFER_LEADER, .request_id = 14};
    q.u.member.id = 2;
    GEN_CHECK(mc_proto_request_encode(w, &q));
    emit_w("proto", "req_stream5", -1, w);

    /* Replies. */
    struct mc_wbuf body;
    mc_wbuf_init(&body, 0);
    struct mc_ping_info pi = {1, 2, 3};
    mc_proto_ping_put(&body, &pi);
    emit_reply(w, "rep_ping", MC_REQ_PING, 0, 0, &body);
    mc_proto_session_put(&body, 77);
    emit_reply(w, "rep_session", MC_REQ_REGISTER_SESSION, 0, 0, &body);
    struct mc_cluster_status st = {.node_id = 1,
                                   .leader_id = 1,
                                   .term = 3,
                                   .commit_index = 50,
                                   .applied_index = 49,
                                   .snapshot_index = 10,
                                   .n_members = 3};
    for (uint32_t i = 0; i < 3; i++) {
        st.members[i].id = i + 1;
        snprintf(st.members[i].peer_addr, MC_ADDR_MAX, "127.0.0.1:700%u", i + 1);
        snprintf(st.members[i].client_addr, MC_ADDR_MAX, "127.0.0.1:800%u", i + 1);
        st.members[i].reachable = i != 2;
        st.members[i].learner = i == 2;
        st.members[i].match_index = 50 - i;
    }
    mc_proto_status_put(&body, &st);
    emit_reply(w, "rep_status", MC_REQ_CLUSTER_STATUS, 0, 0, &body);
    struct mc_check_result cr = {1, 49, 0x0123456789abcdefull};
    mc_proto_check_put(&body, &cr);
    emit_reply(w, "rep_check", MC_REQ_CHECK, 0, 0, &body);
    static const uint8_t snap[] = "snapshot bytes...";
    struct mc_snapshot_chunk ch = {0, 2 * (sizeof(snap) - 1), 0, snap, sizeof(snap) - 1};
    mc_proto_chunk_put(&body, &ch);
    emit_reply(w, "rep_chunk_more", MC_REQ_SNAPSHOT_SAVE, MC_PROTO_FLAG_MORE, 0, &body);
    ch.offset = sizeof(snap) - 1;
    ch.checksum = 0xfeedfacecafebeefull;
    mc_proto_chunk_put(&body, &ch);
    emit_reply(w, "rep_chunk_last", MC_REQ_SNAPSHOT_SAVE, 0, 0, &body);

    struct mc_op_result res = {.failed_op = -1};
    snprintf(res.version_id, sizeof(res.version_id), "0000018bcfe56800");
    GEN_CHECK(mc_op_result_encode(&res, &body));
    emit_reply(w, "rep_write", MC_REQ_WRITE, 0, 0, &body);
    struct mc_version v;
    make_version(&v, "2024/cat.jpg", "0000018bcfe56800", false, true);
    GEN_CHECK(mc_version_encode(&v, &body));
    mc_version_clear(&v);
    emit_reply(w, "rep_get", MC_REQ_GET_OBJECT, 0, 0, &body);
    mc_wbuf_put(&body, list_body->data, list_body->len);
    emit_reply(w, "rep_list", MC_REQ_LIST_OBJECTS, 0, 0, &body);
    struct mc_bucket_info b = {"photos", 1, MC_VERSIONING_ENABLED};
    GEN_CHECK(mc_bucket_list_encode(&b, 1, &body));
    emit_reply(w, "rep_head_bucket", MC_REQ_HEAD_BUCKET, 0, 0, &body);

    struct mc_proto_error e = {0};
    e.message = mc_proto_cstr("this node is not the leader");
    e.leader_id = 2;
    e.leader_addr = mc_proto_cstr("127.0.0.1:8002");
    e.version_id = mc_proto_cstr("");
    mc_proto_error_put(&body, &e);
    emit_reply(w, "rep_err_not_leader", MC_REQ_WRITE, 0, MC_ENOTLEADER, &body);
    res = (struct mc_op_result){.code = MC_EPRECOND, .failed_op = 1};
    struct mc_wbuf rb;
    mc_wbuf_init(&rb, 0);
    GEN_CHECK(mc_op_result_encode(&res, &rb));
    e = (struct mc_proto_error){0};
    e.message = mc_proto_cstr("a precondition did not hold");
    e.leader_addr = mc_proto_cstr("");
    e.flags = MC_PROTO_ERR_DELETE_MARKER;
    e.version_id = mc_proto_cstr("0000018bcfe56801");
    e.result = rb.data;
    e.result_len = (uint32_t)rb.len;
    mc_proto_error_put(&body, &e);
    emit_reply(w, "rep_err_result", MC_REQ_WRITE, 0, MC_EPRECOND, &body);
    emit_reply(w, "rep_err_empty", MC_REQ_GET_OBJECT, 0, MC_ENOKEY, &body);

    mc_wbuf_free(&rb);
    mc_wbuf_free(&body);
    mc_wbuf_free(&rec);
    mc_wbuf_free(&ops);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    g_root = argv[1];
    mkdir_p(g_root);
    struct mc_wbuf w, list_body;
    mc_wbuf_init(&w, 0);
    mc_wbuf_init(&list_body, 0);
    gen_ops(&w);
    gen_results(&w);
    gen_versions(&w);
    gen_lists(&w, &list_body);
    gen_buckets(&w);
    gen_apply(&w);
    gen_raft(&w);
    gen_raft_step();
    gen_proto(&w, &list_body);
    if (gen_storage) {
        char tmp[] = "/tmp/mc_fuzz_gen_XXXXXX";
        if (!mkdtemp(tmp)) {
            perror("mkdtemp");
            return 1;
        }
        gen_storage(tmp);
        rmdir(tmp);
    }
    mc_wbuf_free(&list_body);
    mc_wbuf_free(&w);
    printf("gen_corpus: wrote %d files under %s\n", g_files, g_root);
    return 0;
}
