/* rawwrite.c: test tool speaking the client protocol by hand, to send a write with a chosen
 * (session, seq) — e.g. the same one twice across a leader change (exactly-once test). */
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "net/peer.h"
#include "net/proto.h"
#include "util/codec.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int dial(const char *addr)
{
    struct sockaddr_storage sa;
    if (mc_parse_addr(addr, &sa) != 0) {
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval tv = {12, 0}; /* above the longest hash a test holds (test_check_cli.py) */
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(struct sockaddr_in)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int read_full(int fd, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r <= 0) {
            return -1;
        }
        got += (size_t)r;
    }
    return 0;
}

/* Send one request; read one reply: returns status, body copied to *body. */
static int roundtrip(const char *addr, const struct mc_proto_request *req, uint8_t **body,
                     size_t *blen)
{
    int fd = dial(addr);
    if (fd < 0) {
        return MC_EUNAVAIL;
    }
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    int rc = mc_proto_request_encode(&w, req);
    if (rc == 0 && write(fd, w.data, w.len) != (ssize_t)w.len) {
        rc = MC_EIO;
    }
    mc_wbuf_free(&w);
    uint8_t hdr[MC_PROTO_HEADER_BYTES];
    if (rc == 0 && read_full(fd, hdr, sizeof(hdr)) != 0) {
        rc = MC_ETIMEOUT;
    }
    if (rc == 0) {
        struct mc_proto_header h;
        mc_proto_header_get(hdr, &h);
        *blen = h.length + 4 - MC_PROTO_HEADER_BYTES;
        *body = malloc(*blen + 1);
        if (read_full(fd, *body, *blen) != 0) {
            rc = MC_ETIMEOUT;
        } else {
            rc = h.status;
        }
    }
    close(fd);
    return rc;
}

/* One WRITE frame of n_ops puts (keys PREFIX-kI in bucket, each with inline_bytes of inline
 * data; n_ops > 1 = an atomic batch) into out. */
static void frame_puts(const char *bucket, const char *prefix, int n_ops, int inline_bytes,
                       uint64_t request_id, struct mc_wbuf *out)
{
    static uint8_t data[64 * 1024];
    struct mc_wbuf ops;
    mc_wbuf_init(&ops, 0);
    for (int i = 0; i < n_ops; i++) {
        char key[64];
        snprintf(key, sizeof(key), "%s-k%d", prefix, i);
        struct mc_object_meta meta;
        memset(&meta, 0, sizeof(meta));
        meta.size = (uint64_t)inline_bytes;
        meta.inline_data = inline_bytes ? data : NULL;
        meta.inline_len = (uint32_t)inline_bytes;
        struct mc_op op;
        struct mc_wbuf one;
        mc_wbuf_init(&one, 0);
        mc_op_put(&op, bucket, key, NULL, 0, &meta);
        mc_op_encode(&op, &one);
        mc_proto_ops_put(&ops, one.data, one.len);
        mc_op_clear(&op); /* mc_op_put copied meta, inline bytes included */
        mc_wbuf_free(&one);
    }
    struct mc_proto_request req;
    memset(&req, 0, sizeof(req));
    req.request_id = request_id;
    req.op = MC_REQ_WRITE;
    req.u.write.n_ops = (uint32_t)n_ops;
    req.u.write.ops = ops.data;
    req.u.write.ops_bytes = (uint32_t)ops.len;
    mc_wbuf_init(out, 0);
    mc_proto_request_encode(out, &req);
    mc_wbuf_free(&ops);
}

/*
 * burst: SMALL connections each send one put of SMALL_BYTES inline bytes, then BIG connections
 * each send an atomic WRITE of BIG_OPS puts of BIG_BYTES inline bytes, completed while the node
 * (PID) is stopped, so its loop reads them in one iteration and batches them together; then
 * every reply is read. Prints {"ok":N,"errors":N,"first_error":"...","big_ok":N}.
 */
static int burst(const char *addr, const char *bucket, char **v)
{
    enum { MAX_CONNS = 64 };
    int small = atoi(v[0]), small_bytes = atoi(v[1]), big = atoi(v[2]), big_ops = atoi(v[3]),
        big_bytes = atoi(v[4]);
    pid_t pid = (pid_t)atoi(v[5]);
    int conns = small + big;
    if (conns < 1 || conns > MAX_CONNS || big_ops < 0 || big_ops > 1000) {
        return 2;
    }
    int fds[MAX_CONNS];
    struct mc_wbuf frames[MAX_CONNS];
    for (int c = 0; c < conns; c++) {
        fds[c] = dial(addr);
        if (fds[c] < 0) {
            return 2;
        }
        char prefix[32];
        snprintf(prefix, sizeof(prefix), "c%d", c);
        bool is_big = c >= small;
        frame_puts(bucket, prefix, is_big ? big_ops : 1, is_big ? big_bytes : small_bytes,
                   (uint64_t)c + 1, &frames[c]);
    }
    /* A big frame takes several reads: all but its last byte go first, and the node buffers
     * them, so the last byte completes it in the same iteration as the small ones. */
    for (int c = small; c < conns; c++) {
        if (write(fds[c], frames[c].data, frames[c].len - 1) != (ssize_t)frames[c].len - 1) {
            fprintf(stderr, "short write\n");
        }
    }
    usleep(big ? 500 * 1000 : 0);
    if (pid > 0) {
        kill(pid, SIGSTOP);
    }
    for (int c = 0; c < conns; c++) {
        size_t off = c >= small ? frames[c].len - 1 : 0;
        if (write(fds[c], frames[c].data + off, frames[c].len - off) !=
            (ssize_t)(frames[c].len - off)) {
            fprintf(stderr, "short write\n");
        }
        mc_wbuf_free(&frames[c]);
    }
    if (pid > 0) {
        usleep(200 * 1000);
        kill(pid, SIGCONT);
    }
    int ok = 0, errors = 0, big_ok = 0;
    const char *first = "";
    for (int c = 0; c < conns; c++) {
        uint8_t hdr[MC_PROTO_HEADER_BYTES];
        int st = MC_ETIMEOUT;
        if (read_full(fds[c], hdr, sizeof(hdr)) == 0) {
            struct mc_proto_header h;
            mc_proto_header_get(hdr, &h);
            size_t blen = h.length + 4 - MC_PROTO_HEADER_BYTES;
            uint8_t *body = malloc(blen + 1);
            st = body && read_full(fds[c], body, blen) == 0 ? h.status : MC_ETIMEOUT;
            free(body);
        }
        if (st == 0) {
            ok++;
            big_ok += c >= small;
        } else if (errors++ == 0) {
            first = mc_error_name(st);
        }
        close(fds[c]);
    }
    printf("{\"ok\":%d,\"errors\":%d,\"first_error\":\"%s\",\"big_ok\":%d}\n", ok, errors, first,
           big_ok);
    return errors ? 1 : 0;
}

/* Sends req once and prints its answer: {"status":"...","message":"..."} (the message of an
 * error answer). 0 on OK, else 1. */
static int request_print(const char *addr, struct mc_proto_request *req)
{
    uint8_t *body = NULL;
    size_t blen = 0;
    int rc = roundtrip(addr, req, &body, &blen);
    struct mc_proto_error e;
    memset(&e, 0, sizeof(e));
    if (rc < 0 && body && mc_proto_error_decode(body, blen, &e) != 0) {
        memset(&e, 0, sizeof(e));
    }
    printf("{\"status\":\"%s\",\"message\":\"%.*s\"}\n", mc_error_name(rc), (int)e.message.len,
           e.message.ptr ? e.message.ptr : "");
    free(body);
    return rc ? 1 : 0;
}

/* Sends one WRITE of the n op records in ops (freed here) as request rid and prints its answer:
 * {"status":"...","message":"..."} (the message of an error answer). 0 on OK, else 1. */
static int write_ops_print(const char *addr, uint64_t rid, uint32_t n, struct mc_wbuf *ops)
{
    struct mc_proto_request req;
    memset(&req, 0, sizeof(req));
    req.request_id = rid;
    req.op = MC_REQ_WRITE;
    req.u.write.n_ops = n;
    req.u.write.ops = ops->data;
    req.u.write.ops_bytes = (uint32_t)ops->len;
    int rc = request_print(addr, &req);
    mc_wbuf_free(ops);
    return rc;
}

/*
 * bigop: one WRITE of n_ops records into bucket, the last one MC_OP_MAX_BYTES + 1 bytes (zeros:
 * the node must refuse it on its length alone), the others small valid puts. Prints
 * {"status":"...","message":"..."}.
 */
static int bigop(const char *addr, const char *bucket, int n_ops)
{
    if (n_ops < 1 || n_ops > 100) {
        return 2;
    }
    struct mc_wbuf ops, one;
    mc_wbuf_init(&ops, 0);
    for (int i = 0; i + 1 < n_ops; i++) {
        char key[32];
        snprintf(key, sizeof(key), "small-%d", i);
        struct mc_object_meta meta;
        memset(&meta, 0, sizeof(meta));
        meta.etag = "e";
        struct mc_op op;
        mc_op_put(&op, bucket, key, NULL, 0, &meta);
        mc_wbuf_init(&one, 0);
        mc_op_encode(&op, &one);
        mc_proto_ops_put(&ops, one.data, one.len);
        mc_op_clear(&op);
        mc_wbuf_free(&one);
    }
    uint8_t *big = calloc(1, MC_OP_MAX_BYTES + 1);
    if (!big) {
        return 2;
    }
    mc_proto_ops_put(&ops, big, MC_OP_MAX_BYTES + 1);
    free(big);
    return write_ops_print(addr, 9, (uint32_t)n_ops, &ops);
}

/* One WRITE whose records are recs[0..n) and its answer: prints {"status":"...","message":"..."}
 * (the message of an error answer). */
static int write_records(const char *addr, const struct mc_op *recs, uint32_t n)
{
    struct mc_wbuf ops, one;
    mc_wbuf_init(&ops, 0);
    for (uint32_t i = 0; i < n; i++) {
        mc_wbuf_init(&one, 0);
        mc_op_encode(&recs[i], &one);
        mc_proto_ops_put(&ops, one.data, one.len);
        mc_wbuf_free(&one);
    }
    return write_ops_print(addr, 13, n, &ops);
}

/*
 * shaped: a put of "plain" in bucket plus one odd op, sent as two records (an atomic write of
 * two) or, with SHAPE ending in "1", as one ATOMIC record holding both. SHAPE: nested (the odd op
 * is an ATOMIC: of two puts as a record, empty as a sub-op, the most the encoding carries),
 * session (a put carrying a session id), register (a SESSION_REGISTER), bucket (a create of
 * the reserved name xn--refused), plain (another put: accepted). Prints as write_records.
 */
static int shaped(const char *addr, const char *bucket, const char *shape)
{
    size_t sl = strlen(shape);
    bool one = sl > 0 && shape[sl - 1] == '1';
    char kind[16];
    snprintf(kind, sizeof(kind), "%.*s", (int)(one ? sl - 1 : sl), shape);
    struct mc_object_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.etag = "e";
    struct mc_op ops[2], top;
    memset(ops, 0, sizeof(ops));
    memset(&top, 0, sizeof(top));
    mc_op_put(&ops[0], bucket, "plain", NULL, 0, &meta);
    if (strcmp(kind, "nested") == 0) {
        struct mc_op inner[2];
        memset(inner, 0, sizeof(inner));
        mc_op_put(&inner[0], bucket, "inner-0", NULL, 0, &meta);
        mc_op_put(&inner[1], bucket, "inner-1", NULL, 0, &meta);
        mc_op_atomic(&ops[1], inner, one ? 0 : 2);
        mc_op_clear(&inner[0]);
        mc_op_clear(&inner[1]);
    } else if (strcmp(kind, "session") == 0) {
        mc_op_put(&ops[1], bucket, "with-session", NULL, 0, &meta);
        ops[1].session_id = 5;
        ops[1].seq = 1;
    } else if (strcmp(kind, "register") == 0) {
        mc_op_session_register(&ops[1], 0);
    } else if (strcmp(kind, "bucket") == 0) {
        mc_op_bucket_create(&ops[1], "xn--refused", MC_VERSIONING_UNVERSIONED, 0);
    } else if (strcmp(kind, "plain") == 0) {
        mc_op_put(&ops[1], bucket, "plain-2", NULL, 0, &meta);
    } else {
        mc_op_clear(&ops[0]);
        return 2;
    }
    int rc;
    if (one) {
        mc_op_atomic(&top, ops, 2);
        rc = write_records(addr, &top, 1);
    } else {
        rc = write_records(addr, ops, 2);
    }
    mc_op_clear(&top);
    mc_op_clear(&ops[0]);
    mc_op_clear(&ops[1]);
    return rc;
}

/* One WRITE frame of k bucket creates (names PREFIX-FIRST..) into out: an atomic write. */
static void frame_creates(const char *prefix, int first, int k, struct mc_wbuf *out)
{
    struct mc_wbuf ops, one;
    mc_wbuf_init(&ops, 0);
    for (int i = 0; i < k; i++) {
        char name[64];
        snprintf(name, sizeof(name), "%s-%d", prefix, first + i);
        struct mc_op op;
        memset(&op, 0, sizeof(op));
        mc_op_bucket_create(&op, name, MC_VERSIONING_UNVERSIONED, 0);
        mc_wbuf_init(&one, 0);
        mc_op_encode(&op, &one);
        mc_proto_ops_put(&ops, one.data, one.len);
        mc_wbuf_free(&one);
        mc_op_clear(&op);
    }
    struct mc_proto_request req;
    memset(&req, 0, sizeof(req));
    req.request_id = (uint64_t)first + 1;
    req.op = MC_REQ_WRITE;
    req.u.write.n_ops = (uint32_t)k;
    req.u.write.ops = ops.data;
    req.u.write.ops_bytes = (uint32_t)ops.len;
    mc_wbuf_init(out, 0);
    mc_proto_request_encode(out, &req);
    mc_wbuf_free(&ops);
}

/*
 * mkbuckets: COUNT bucket creates (names PREFIX-I) in atomic writes of up to 1000, on one
 * connection. Without PID each write waits for its answer and the first refusal stops; with
 * PID every write is sent while the node (PID) is stopped, so its loop reads them all in one
 * iteration, before any applies; then every answer is read. Prints {"ok":N,"status":"..."}: the
 * creates accepted and the first refusal's status (OK if none).
 */
static int mkbuckets(const char *addr, const char *prefix, int count, pid_t pid)
{
    enum { MAX_FRAMES = 64 };
    int n = (count + MC_ATOMIC_MAX_OPS - 1) / MC_ATOMIC_MAX_OPS;
    int fd = dial(addr);
    if (count < 1 || n > MAX_FRAMES || fd < 0) {
        return 2;
    }
    int ok = 0, first = 0, sent = 0;
    for (int f = 0; f < n && first == 0; f++) {
        int k = count - f * MC_ATOMIC_MAX_OPS;
        k = k < MC_ATOMIC_MAX_OPS ? k : MC_ATOMIC_MAX_OPS;
        struct mc_wbuf w;
        frame_creates(prefix, f * MC_ATOMIC_MAX_OPS, k, &w);
        if (pid > 0 && f == 0) {
            kill(pid, SIGSTOP);
        }
        if (write(fd, w.data, w.len) != (ssize_t)w.len) {
            fprintf(stderr, "short write\n");
        }
        mc_wbuf_free(&w);
        sent++;
        if (pid > 0 && f + 1 < n) {
            continue; /* answers read below */
        }
        if (pid > 0) {
            usleep(200 * 1000);
            kill(pid, SIGCONT);
        }
        for (int a = pid > 0 ? 0 : sent - 1; a < sent; a++) {
            uint8_t hdr[MC_PROTO_HEADER_BYTES];
            int st = MC_ETIMEOUT;
            if (read_full(fd, hdr, sizeof(hdr)) == 0) {
                struct mc_proto_header h;
                mc_proto_header_get(hdr, &h);
                size_t blen = h.length + 4 - MC_PROTO_HEADER_BYTES;
                uint8_t *body = malloc(blen + 1);
                st = body && read_full(fd, body, blen) == 0 ? h.status : MC_ETIMEOUT;
                free(body);
                int kk = count - (int)(h.request_id - 1);
                ok += st == 0 ? (kk < MC_ATOMIC_MAX_OPS ? kk : MC_ATOMIC_MAX_OPS) : 0;
            }
            if (st != 0 && first == 0) {
                first = st;
            }
        }
    }
    close(fd);
    printf("{\"ok\":%d,\"status\":\"%s\"}\n", ok, mc_error_name(first));
    return first ? 1 : 0;
}

/* addmember: one ADD_MEMBER (as a learner) with the addresses as given, no CLI check in front
 * of the node's. Prints as write_records. */
static int addmember(const char *addr, uint64_t id, const char *peer, const char *client)
{
    struct mc_proto_request req;
    memset(&req, 0, sizeof(req));
    req.request_id = 14;
    req.op = MC_REQ_ADD_MEMBER;
    req.u.member.id = id;
    req.u.member.peer_addr = mc_proto_cstr(peer);
    req.u.member.client_addr = mc_proto_cstr(client);
    req.u.member.learner = true;
    return request_print(addr, &req);
}

/*
 * saveask: one SNAPSHOT_SAVE (fresh as of its arrival, the min-index flag set) and no retry:
 * answered Busy, it only asked the member for a fresh engine image, which no stream then holds
 * (the CLI's retry would stream it). Prints {"status":"..."}.
 */
static int saveask(const char *addr)
{
    struct mc_proto_request req;
    memset(&req, 0, sizeof(req));
    req.request_id = 11;
    req.op = MC_REQ_SNAPSHOT_SAVE;
    req.flags = MC_PROTO_FLAG_SAVE_MIN_INDEX;
    uint8_t *body = NULL;
    size_t blen = 0;
    int rc = roundtrip(addr, &req, &body, &blen);
    printf("{\"status\":\"%s\"}\n", mc_error_name(rc));
    free(body);
    return rc == MC_EBUSY ? 0 : 1;
}

/* check: one CHECK for the state hash now (index 0) and no retry (the CLI retries Busy). Prints
 * {"status":"...","index":N,"hash":"..."}. */
static int check(const char *addr)
{
    struct mc_proto_request req;
    memset(&req, 0, sizeof(req));
    req.request_id = 12;
    req.op = MC_REQ_CHECK;
    uint8_t *body = NULL;
    size_t blen = 0;
    int rc = roundtrip(addr, &req, &body, &blen);
    struct mc_check_result c;
    memset(&c, 0, sizeof(c));
    if (rc == 0) {
        rc = mc_proto_check_decode(body, blen, &c);
    }
    printf("{\"status\":\"%s\",\"index\":%llu,\"hash\":\"%016llx\"}\n", mc_error_name(rc),
           (unsigned long long)c.index, (unsigned long long)c.hash);
    free(body);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: rawwrite ADDR register | ADDR put SESSION SEQ BUCKET KEY ETAG | "
                        "ADDR mkbucket NAME | ADDR bigop BUCKET N_OPS | ADDR shaped BUCKET SHAPE | "
                        "ADDR addmember ID PEER CLIENT | ADDR mkbuckets PREFIX COUNT [PID] | "
                        "ADDR saveask | ADDR check\n");
        return 2;
    }
    const char *addr = argv[1];
    struct mc_proto_request req;
    memset(&req, 0, sizeof(req));
    req.request_id = 7;
    uint8_t *body = NULL;
    size_t blen = 0;
    if (strcmp(argv[2], "register") == 0) {
        req.op = MC_REQ_REGISTER_SESSION;
        int rc = roundtrip(addr, &req, &body, &blen);
        uint64_t sid = 0;
        if (rc == 0) {
            mc_proto_session_decode(body, blen, &sid);
        }
        printf("{\"status\":\"%s\",\"session\":%llu}\n", mc_error_name(rc),
               (unsigned long long)sid);
        free(body);
        return rc ? 1 : 0;
    }
    if (strcmp(argv[2], "check") == 0 && argc == 3) {
        return check(addr);
    }
    if (strcmp(argv[2], "saveask") == 0 && argc == 3) {
        return saveask(addr);
    }
    if (strcmp(argv[2], "mkbuckets") == 0 && (argc == 5 || argc == 6)) {
        return mkbuckets(addr, argv[3], atoi(argv[4]), argc == 6 ? (pid_t)atoi(argv[5]) : 0);
    }
    if (strcmp(argv[2], "addmember") == 0 && argc == 6) {
        return addmember(addr, strtoull(argv[3], NULL, 10), argv[4], argv[5]);
    }
    if (strcmp(argv[2], "shaped") == 0 && argc == 5) {
        return shaped(addr, argv[3], argv[4]);
    }
    if (strcmp(argv[2], "bigop") == 0 && argc == 5) {
        return bigop(addr, argv[3], atoi(argv[4]));
    }
    if (strcmp(argv[2], "burst") == 0 && argc == 10) {
        return burst(addr, argv[3], argv + 4);
    }
    if (strcmp(argv[2], "mkbucket") == 0 && argc == 4) {
        /* A bucket create sent as is: no CLI or HTTP check in front of the node's. */
        struct mc_op op;
        memset(&op, 0, sizeof(op));
        struct mc_wbuf ops, one;
        mc_wbuf_init(&ops, 0);
        mc_wbuf_init(&one, 0);
        mc_op_bucket_create(&op, argv[3], MC_VERSIONING_UNVERSIONED, 0);
        mc_op_encode(&op, &one);
        mc_proto_ops_put(&ops, one.data, one.len);
        req.op = MC_REQ_WRITE;
        req.u.write.n_ops = 1;
        req.u.write.ops = ops.data;
        req.u.write.ops_bytes = (uint32_t)ops.len;
        int rc = roundtrip(addr, &req, &body, &blen);
        printf("{\"status\":\"%s\"}\n", mc_error_name(rc));
        mc_op_clear(&op);
        mc_wbuf_free(&ops);
        mc_wbuf_free(&one);
        free(body);
        return rc ? 1 : 0;
    }
    if (strcmp(argv[2], "put") != 0 || argc != 8) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    struct mc_object_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.etag = argv[7];
    meta.size = 1;
    struct mc_op op;
    memset(&op, 0, sizeof(op));
    mc_op_put(&op, argv[5], argv[6], NULL, 0, &meta);
    struct mc_wbuf ops, one;
    mc_wbuf_init(&ops, 0);
    mc_wbuf_init(&one, 0);
    mc_op_encode(&op, &one);
    mc_proto_ops_put(&ops, one.data, one.len);
    req.op = MC_REQ_WRITE;
    req.u.write.session_id = strtoull(argv[3], NULL, 10);
    req.u.write.seq = strtoull(argv[4], NULL, 10);
    req.u.write.n_ops = 1;
    req.u.write.ops = ops.data;
    req.u.write.ops_bytes = (uint32_t)ops.len;
    int rc = roundtrip(addr, &req, &body, &blen);
    struct mc_op_result res;
    memset(&res, 0, sizeof(res));
    if (rc == 0) {
        mc_op_result_decode(body, blen, &res);
    }
    printf("{\"status\":\"%s\",\"duplicate\":%s,\"version_id\":\"%s\"}\n", mc_error_name(rc),
           res.duplicate ? "true" : "false", res.version_id);
    mc_op_clear(&op);
    mc_wbuf_free(&ops);
    mc_wbuf_free(&one);
    free(body);
    return rc ? 1 : 0;
}
