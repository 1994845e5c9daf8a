/* harness.c: test servers for the client protocol (fake store with fault switches, or the engine).
 */
#include "harness.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/clock.h"

#define MAX_HELD    65536
#define MAX_DELAYED 65536

struct kv {
    char *key;
    uint8_t *val;
    size_t len;
};

struct delayed {
    struct mc_client_token tok;
    uint64_t due_ns;
    int status;
    uint8_t body[64];
    size_t len;
};

struct th_server {
    struct th_opts o;
    uv_loop_t loop;
    uv_async_t stop_async;
    uv_timer_t delay_timer;
    uv_prepare_t batch_prep; /* answer_in_prepare */
    struct mc_client_token *batch;
    size_t n_batch;
    pthread_t thread;
    struct mc_client_server *srv;
    int port;
    char addr[32];
    /* fake store: open addressing, power-of-two capacity */
    struct kv *tab;
    size_t cap, n;
    uint64_t next_session;
    int drops_left;
    int timeouts_left;
    uint64_t expired_upto; /* sessions <= this id are expired (expire_on_drop) */
    uint64_t requests;
    bool wedged; /* th_set_wedged: hold every request from now on (atomic: set from the test) */
    uint64_t applied, duplicates;
    struct mc_client_token *held;
    size_t n_held;
    struct delayed *delayed;
    size_t n_delayed;
    void *engine; /* TH_ENGINE: struct mc_engine * (see harness_engine.c) */
    struct mc_client_server_stats final_stats;
    bool stopped;
};

/* ---- fake store ---- */

static struct kv *kv_slot(struct th_server *s, const char *key, size_t klen)
{
    size_t i = mc_checksum64(key, klen) & (s->cap - 1);
    for (;;) {
        struct kv *e = &s->tab[i];
        if (!e->key || (strlen(e->key) == klen && memcmp(e->key, key, klen) == 0)) {
            return e;
        }
        i = (i + 1) & (s->cap - 1);
    }
}

static void kv_grow(struct th_server *s)
{
    size_t oc = s->cap;
    struct kv *ot = s->tab;
    s->cap = oc ? oc * 2 : 1024;
    s->tab = calloc(s->cap, sizeof(*s->tab));
    for (size_t i = 0; i < oc; i++) {
        if (ot[i].key) {
            *kv_slot(s, ot[i].key, strlen(ot[i].key)) = ot[i];
        }
    }
    free(ot);
}

static void kv_put(struct th_server *s, const char *key, size_t klen, const void *val, size_t len)
{
    if ((s->n + 1) * 2 > s->cap) {
        kv_grow(s);
    }
    struct kv *e = kv_slot(s, key, klen);
    if (!e->key) {
        e->key = strndup(key, klen);
        s->n++;
    }
    free(e->val);
    e->val = malloc(len ? len : 1);
    memcpy(e->val, val, len);
    e->len = len;
}

static struct kv *kv_get(struct th_server *s, const char *key, size_t klen)
{
    if (!s->cap) {
        return NULL;
    }
    struct kv *e = kv_slot(s, key, klen);
    return e->key ? e : NULL;
}

/* ---- fake dispatch ---- */

static void reply_later(struct th_server *s, const struct mc_client_token *t, int status,
                        const void *body, size_t len)
{
    if (s->n_delayed == MAX_DELAYED || len > sizeof(s->delayed[0].body)) {
        mc_client_reply(t, status, body, len);
        return;
    }
    struct delayed *d = &s->delayed[s->n_delayed++];
    d->tok = *t;
    d->due_ns = mc_mono_ns() + 2000000;
    d->status = status;
    memcpy(d->body, body, len);
    d->len = len;
}

static void on_delay_timer(uv_timer_t *t)
{
    struct th_server *s = t->data;
    uint64_t now = mc_mono_ns();
    size_t k = 0;
    for (size_t i = 0; i < s->n_delayed; i++) {
        struct delayed *d = &s->delayed[i];
        if (d->due_ns <= now) {
            mc_client_reply(&d->tok, d->status, d->body, d->len);
        } else {
            s->delayed[k++] = *d;
        }
    }
    s->n_delayed = k;
}

static void fake_write(struct th_server *s, const struct mc_client_request *r)
{
    const struct mc_proto_request *q = r->req;
    bool dup = false;
    if (q->u.write.session_id) {
        char sk[48];
        int n = snprintf(sk, sizeof(sk), "\x01%llu:%llu", (unsigned long long)q->u.write.session_id,
                         (unsigned long long)q->u.write.seq);
        if (kv_get(s, sk, (size_t)n)) {
            dup = true;
        } else {
            kv_put(s, sk, (size_t)n, "", 0);
        }
    }
    if (dup) {
        __atomic_add_fetch(&s->duplicates, 1, __ATOMIC_RELAXED);
    } else {
        uint32_t pos = 0, len;
        const uint8_t *op;
        while (mc_proto_ops_next(q->u.write.ops, q->u.write.ops_bytes, &pos, &op, &len)) {
            const uint8_t *eq = memchr(op, '=', len);
            if (!eq) {
                mc_client_reply_error(&r->token, MC_EINVAL, "fake op must be key=value");
                return;
            }
            kv_put(s, (const char *)op, (size_t)(eq - op), eq + 1, len - (size_t)(eq - op) - 1);
        }
        __atomic_add_fetch(&s->applied, 1, __ATOMIC_RELAXED);
    }
    if (s->timeouts_left > 0) {
        s->timeouts_left--;
        mc_client_reply_error(&r->token, MC_ETIMEOUT,
                              "write not committed in time (outcome "
                              "unknown)");
        return;
    }
    uint8_t body[8];
    mc_put_u64le(body, s->applied);
    mc_client_reply(&r->token, 0, body, sizeof(body));
}

static void fake_get(struct th_server *s, const struct mc_client_request *r, bool delay)
{
    const struct mc_proto_request *q = r->req;
    struct kv *e = kv_get(s, q->u.get.key.ptr, q->u.get.key.len);
    if (!e) {
        mc_client_reply_error(&r->token, MC_ENOKEY, NULL);
        return;
    }
    if (e->len == 7 && memcmp(e->val, "DELETED", 7) == 0) {
        struct mc_proto_error err = {0};
        err.message = mc_proto_cstr("latest version is a delete marker");
        err.flags = MC_PROTO_ERR_DELETE_MARKER;
        err.version_id = mc_proto_cstr("dm1");
        mc_client_reply_error_full(&r->token, MC_ENOKEY, &err);
        return;
    }
    if (delay) {
        reply_later(s, &r->token, 0, e->val, e->len);
        return;
    }
    struct mc_wbuf *w = mc_client_reply_begin(&r->token);
    if (w) {
        mc_wbuf_put(w, e->val, e->len);
    }
    mc_client_reply_end(&r->token, 0);
}

/* A save from a client that sends back the min index a Busy carries (session 12) first gets
 * Busy carrying FAKE_SAVE_MIN_INDEX, and is served only when its retry sends exactly that
 * (logged to stderr for test/cli/suite.sh). Other saves are served at once. */
#define FAKE_SAVE_MIN_INDEX 77
static bool fake_snapshot_busy(const struct mc_proto_request *q, const struct mc_client_request *r)
{
    if (!(q->flags & MC_PROTO_FLAG_SAVE_MIN_INDEX)) {
        return false;
    }
    fprintf(stderr, "fake: snapshot save min_index=%llu\n",
            (unsigned long long)q->u.save.min_index);
    if (q->u.save.min_index == FAKE_SAVE_MIN_INDEX) {
        return false;
    }
    if (q->u.save.min_index != 0) {
        mc_client_reply_error(&r->token, MC_EINVAL, "fake: a retry must send the min index 77");
        return true;
    }
    uint8_t buf[8];
    struct mc_proto_error e = {0};
    e.message = mc_proto_cstr("fake: making an image");
    mc_proto_save_busy_set(&e, buf, FAKE_SAVE_MIN_INDEX);
    mc_client_reply_error_full(&r->token, MC_EBUSY, &e);
    return true;
}

static void fake_snapshot(struct th_server *s, const struct mc_client_request *r)
{
    (void)s;
    uint8_t data[1000];
    uint64_t total = 3 * sizeof(data);
    struct mc_digest d;
    mc_digest_init(&d);
    for (int i = 0; i < 3; i++) {
        memset(data, 'a' + i, sizeof(data));
        mc_digest_update(&d, data, sizeof(data));
    }
    uint64_t sum = mc_digest_final(&d);
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    for (int i = 0; i < 3; i++) {
        memset(data, 'a' + i, sizeof(data));
        struct mc_snapshot_chunk ch = {.offset = (uint64_t)i * sizeof(data),
                                       .total_bytes = total,
                                       .checksum = i == 2 ? sum : 0,
                                       .data = data,
                                       .len = sizeof(data)};
        mc_wbuf_reset(&w);
        mc_proto_chunk_put(&w, &ch);
        if (i < 2) {
            mc_client_reply_more(&r->token, w.data, w.len);
        } else {
            mc_client_reply(&r->token, 0, w.data, w.len);
        }
    }
    mc_wbuf_free(&w);
}

static void fake_dispatch(struct th_server *s, const struct mc_client_request *r)
{
    const struct mc_proto_request *q = r->req;
    bool delay = s->o.delay_every && s->requests % s->o.delay_every == 0;
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    switch (q->op) {
    case MC_REQ_PING: {
        struct mc_ping_info p = {s->o.node_id, 1, 1};
        mc_proto_ping_put(&w, &p);
        if (s->o.answer_in_prepare && s->n_batch < MAX_HELD) {
            s->batch[s->n_batch++] = r->token;
        } else if (delay) {
            reply_later(s, &r->token, 0, w.data, w.len);
        } else {
            mc_client_reply(&r->token, 0, w.data, w.len);
        }
        break;
    }
    case MC_REQ_LEADER: {
        /* A follower names the member it redirects writes to; the leader names itself. */
        struct mc_proto_leader l = {s->o.node_id, s->o.redirect_to ? 2 : s->o.node_id,
                                    mc_proto_cstr(s->o.redirect_to ? s->o.redirect_to : "")};
        mc_proto_leader_put(&w, &l);
        mc_client_reply(&r->token, 0, w.data, w.len);
        break;
    }
    case MC_REQ_REGISTER_SESSION:
        mc_proto_session_put(&w, ++s->next_session);
        mc_client_reply(&r->token, 0, w.data, w.len);
        break;
    case MC_REQ_WRITE:
        fake_write(s, r);
        break;
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT:
        fake_get(s, r, delay);
        break;
    case MC_REQ_CLUSTER_STATUS: {
        struct mc_cluster_status st = {.node_id = s->o.node_id,
                                       .leader_id = 1,
                                       .term = 3,
                                       .commit_index = 10,
                                       .applied_index = 9,
                                       .n_members = 3};
        for (uint32_t i = 0; i < 3; i++) {
            st.members[i].id = i + 1;
            snprintf(st.members[i].peer_addr, MC_ADDR_MAX, "127.0.0.1:%u", 7071 + 10 * i);
            snprintf(st.members[i].client_addr, MC_ADDR_MAX, "127.0.0.1:%u", 7070 + 10 * i);
            st.members[i].learner = i == 2;
            st.members[i].reachable = i != 1;
            st.members[i].match_index = 10 - i;
        }
        mc_proto_status_put(&w, &st);
        mc_client_reply(&r->token, 0, w.data, w.len);
        break;
    }
    case MC_REQ_CHECK: {
        struct mc_check_result c = {s->o.node_id, q->u.check.index ? q->u.check.index : 9, 42};
        mc_proto_check_put(&w, &c);
        mc_client_reply(&r->token, 0, w.data, w.len);
        break;
    }
    case MC_REQ_SNAPSHOT_SAVE:
        if (fake_snapshot_busy(q, r)) {
            break;
        }
        fake_snapshot(s, r);
        break;
    case MC_REQ_ADD_MEMBER:
    case MC_REQ_PROMOTE_MEMBER:
    case MC_REQ_REMOVE_MEMBER:
    case MC_REQ_TRANSFER_LEADER:
        if (q->u.member.id == 0) {
            mc_client_reply_error(&r->token, MC_ENOMEMBER, "no member 0");
        } else {
            mc_client_reply(&r->token, 0, NULL, 0);
        }
        break;
    default:
        mc_client_reply_error(&r->token, MC_EINVAL, "not supported by the fake store");
        break;
    }
    mc_wbuf_free(&w);
}

static bool is_leader_op(uint8_t op)
{
    return op == MC_REQ_WRITE || op == MC_REQ_REGISTER_SESSION || op == MC_REQ_ADD_MEMBER ||
           op == MC_REQ_PROMOTE_MEMBER || op == MC_REQ_REMOVE_MEMBER ||
           op == MC_REQ_TRANSFER_LEADER;
}

static void dispatch(void *ctx, const struct mc_client_request *r)
{
    struct th_server *s = ctx;
    __atomic_add_fetch(&s->requests, 1, __ATOMIC_RELAXED);
    if ((s->o.blackhole && r->req->op != MC_REQ_REGISTER_SESSION) ||
        __atomic_load_n(&s->wedged, __ATOMIC_ACQUIRE)) {
        if (s->n_held < MAX_HELD) {
            s->held[s->n_held++] = r->token;
        } else {
            mc_client_reply_error(&r->token, MC_ELIMIT, NULL);
        }
        return;
    }
    if (is_leader_op(r->req->op) && (s->o.redirect_to || s->o.redirect_unknown)) {
        mc_client_reply_not_leader(&r->token, s->o.redirect_to ? 2 : 0, s->o.redirect_to);
        return;
    }
    if (r->req->op == MC_REQ_WRITE && r->req->u.write.session_id &&
        r->req->u.write.session_id <= s->expired_upto) {
        mc_client_reply_error(&r->token, MC_ENOSESSION, "session expired");
        return;
    }
    if (r->req->op == MC_REQ_WRITE && s->drops_left > 0) {
        /* Apply, but lose the reply with the connection (leader crash after commit). */
        s->drops_left--;
        mc_client_conn_close(r->token.conn);
        if (s->o.expire_on_drop) {
            s->expired_upto = s->next_session;
        }
    }
    if (s->o.mode == TH_ENGINE) {
        th_engine_dispatch(s->engine, s->o.node_id, r, &s->applied, &s->duplicates);
        return;
    }
    fake_dispatch(s, r);
}

/* ---- thread plumbing ---- */

static void *run(void *arg)
{
    struct th_server *s = arg;
    uv_run(&s->loop, UV_RUN_DEFAULT);
    return NULL;
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

static void on_server_stopped(void *arg)
{
    struct th_server *s = arg;
    uv_close((uv_handle_t *)&s->stop_async, on_closed);
    uv_close((uv_handle_t *)&s->delay_timer, on_closed);
    uv_close((uv_handle_t *)&s->batch_prep, on_closed);
}

/* answer_in_prepare: like the node's prepare, which proposes what was dispatched before it. */
static void on_batch_prepare(uv_prepare_t *h)
{
    struct th_server *s = h->data;
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    struct mc_ping_info p = {s->o.node_id, 1, 1};
    mc_proto_ping_put(&w, &p);
    for (size_t i = 0; i < s->n_batch; i++) {
        mc_client_reply(&s->batch[i], 0, w.data, w.len);
    }
    s->n_batch = 0;
    mc_wbuf_free(&w);
}

static void on_stop(uv_async_t *a)
{
    struct th_server *s = a->data;
    for (size_t i = 0; i < s->n_held; i++) {
        mc_client_reply_error(&s->held[i], MC_ESHUTDOWN, NULL);
    }
    s->n_held = 0;
    for (size_t i = 0; i < s->n_batch; i++) {
        mc_client_reply_error(&s->batch[i], MC_ESHUTDOWN, NULL);
    }
    s->n_batch = 0;
    for (size_t i = 0; i < s->n_delayed; i++) {
        mc_client_reply_error(&s->delayed[i].tok, MC_ESHUTDOWN, NULL);
    }
    s->n_delayed = 0;
    mc_client_server_stats(s->srv, &s->final_stats);
    mc_client_server_stop(s->srv, on_server_stopped, s);
}

int th_start(const struct th_opts *o, struct th_server **out)
{
    struct th_server *s = calloc(1, sizeof(*s));
    s->o = *o;
    if (!s->o.node_id) {
        s->o.node_id = 1;
    }
    s->drops_left = o->drop_after_apply;
    s->timeouts_left = o->timeout_writes;
    s->held = calloc(MAX_HELD, sizeof(*s->held));
    s->delayed = calloc(MAX_DELAYED, sizeof(*s->delayed));
    if (o->mode == TH_ENGINE) {
        int rc = th_engine_open(s, o->engine_dir, &s->engine);
        if (rc != 0) {
            free(s->held);
            free(s->delayed);
            free(s);
            return rc;
        }
    }
    uv_loop_init(&s->loop);
    uv_async_init(&s->loop, &s->stop_async, on_stop);
    s->stop_async.data = s;
    uv_timer_init(&s->loop, &s->delay_timer);
    s->delay_timer.data = s;
    if (!o->answer_in_prepare) {
        uv_timer_start(&s->delay_timer, on_delay_timer, 1, 1);
    }
    static const struct mc_client_handler h = {.dispatch = dispatch};
    int rc = mc_client_server_start(&s->loop, "127.0.0.1:0", &h, s, &s->o.srv, &s->srv);
    if (rc != 0) {
        return rc;
    }
    /* Started after the server's: libuv runs the last started prepare handle first. */
    s->batch = calloc(MAX_HELD, sizeof(*s->batch));
    uv_prepare_init(&s->loop, &s->batch_prep);
    s->batch_prep.data = s;
    if (o->answer_in_prepare) {
        uv_prepare_start(&s->batch_prep, on_batch_prepare);
    }
    s->port = mc_client_server_port(s->srv);
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", s->port);
    pthread_create(&s->thread, NULL, run, s);
    *out = s;
    return 0;
}

int th_port(const struct th_server *s)
{
    return s->port;
}

const char *th_addr(const struct th_server *s)
{
    return s->addr;
}

uint64_t th_applied(const struct th_server *s)
{
    return __atomic_load_n(&s->applied, __ATOMIC_RELAXED);
}

uint64_t th_requests(const struct th_server *s)
{
    return __atomic_load_n(&s->requests, __ATOMIC_RELAXED);
}

uint64_t th_duplicates(const struct th_server *s)
{
    return __atomic_load_n(&s->duplicates, __ATOMIC_RELAXED);
}

void th_stats(const struct th_server *s, struct mc_client_server_stats *out)
{
    mc_client_server_stats(s->srv, out);
}

void th_stop(struct th_server *s, struct mc_client_server_stats *stats)
{
    if (!s) {
        return;
    }
    uv_async_send(&s->stop_async);
    pthread_join(s->thread, NULL);
    if (stats) {
        *stats = s->final_stats;
    }
    uv_loop_close(&s->loop);
    for (size_t i = 0; i < s->cap; i++) {
        free(s->tab[i].key);
        free(s->tab[i].val);
    }
    free(s->tab);
    if (s->engine) {
        th_engine_close(s->engine);
    }
    free(s->held);
    free(s->batch);
    free(s->delayed);
    free(s);
}

void th_set_wedged(struct th_server *s, bool wedged)
{
    __atomic_store_n(&s->wedged, wedged, __ATOMIC_RELEASE);
}
