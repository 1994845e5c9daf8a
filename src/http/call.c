/* call.c: loopback client pool and blocking waits over the client library's async API. */
#include <assert.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/log.h"

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (!src)
        src = "";
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

void mc_http_call_cb(void *arg, const struct mc_client_result *r)
{
    struct mc_http_call *k = arg;
    if (r->more)
        return; /* streamed replies are not used by HTTP */
    k->done = true;
    k->status = r->status;
    k->outcome_unknown = r->outcome_unknown;
    k->delete_marker = r->delete_marker;
    k->leader_id = r->leader_id;
    copy_str(k->message, sizeof k->message, r->message);
    copy_str(k->version_id, sizeof k->version_id, r->version_id);
    copy_str(k->leader_addr, sizeof k->leader_addr, r->leader_addr);
    if (k->is_write) {
        /* A failed op (precondition...) carries its result too; the op's code wins. */
        if (mc_client_decode_result(r, &k->result) == 0 && k->status == 0)
            k->status = k->result.code;
        return;
    }
    if (r->status == 0 && r->body_len > 0) {
        k->body = malloc(r->body_len);
        if (!k->body) {
            k->status = MC_ENOMEM;
            return;
        }
        memcpy(k->body, r->body, r->body_len);
        k->body_len = r->body_len;
    }
}

int mc_http_call_wait(struct mc_http_server *s, struct mc_client *c, struct mc_http_call *k,
                      int submit_rc)
{
    if (submit_rc != 0) {
        k->done = true;
        k->status = submit_rc;
        return submit_rc;
    }
    while (!k->done) {
        /* Bounded waits so a stopping server does not hang on a node that no longer answers
         * (the node stops HTTP from its own loop thread). */
        if (atomic_load_explicit(&s->stopping, memory_order_relaxed)) {
            k->status = MC_ESHUTDOWN;
            return k->status;
        }
        int n = mc_client_poll(c, MC_HTTP_STOP_CHECK_MS);
        if (n < 0 && !k->done) {
            /* The client cannot make progress; it will fail the call at its deadline, but
             * do not spin: report the error now. */
            MC_WARN("http_client_poll_failed", "err=%s", mc_error_name(n));
            k->status = n;
            return n;
        }
    }
    return k->status;
}

void mc_http_call_free(struct mc_http_call *k)
{
    free(k->body);
    k->body = NULL;
    k->body_len = 0;
    mc_wbuf_free(&k->ops);
}

void mc_http_call_reset(struct mc_http_call *k)
{
    free(k->body);
    k->body = NULL;
    k->body_len = 0;
    k->done = false;
    k->status = 0;
    k->outcome_unknown = false;
    k->delete_marker = false;
    k->leader_id = 0;
    k->message[0] = k->version_id[0] = k->leader_addr[0] = '\0';
    memset(&k->result, 0, sizeof k->result);
    k->result.failed_op = -1;
}

bool mc_http_status_retriable(int status)
{
    /* As the client library's own retry rule (src/client/client.c). */
    return status == MC_ENOTLEADER || status == MC_EUNAVAIL || status == MC_ESHUTDOWN ||
           status == MC_ELIMIT || status == MC_ESTALE;
}

static struct mc_read_opts read_opts(const struct mc_proto_read_opts *ro)
{
    return (struct mc_read_opts){ro->consistency, ro->max_staleness_ms};
}

/* The client library's arguments of a LIST_OBJECTS or LIST_VERSIONS request: the one place a
 * listing's fields are taken from the request (u.list and u.versions are one shape, proto.h). */
static void list_args(const struct mc_proto_request *q, struct mc_list_args *a)
{
    const struct mc_proto_list *l = &q->u.list;
    *a = (struct mc_list_args){.bucket = l->bucket.ptr,
                               .prefix = l->prefix.ptr,
                               .delimiter = l->delimiter.ptr,
                               .max_keys = l->max_keys};
    if (q->op == MC_REQ_LIST_VERSIONS) {
        a->key_marker = l->key_marker.ptr;
        a->version_id_marker = l->version_id_marker.ptr;
    } else {
        a->start_after = l->start_after.ptr;
        a->continuation_token = l->continuation_token.ptr;
    }
}

/* Submit k->req on c (the library's async calls, which keep its sessions and retries). */
static int submit(struct mc_client *c, struct mc_http_call *k)
{
    const struct mc_proto_request *q = &k->req;
    switch (q->op) {
    case MC_REQ_WRITE: {
        if (k->ops.len < 4)
            return MC_EINVAL;
        const void *op = k->ops.data + 4; /* the one record, after its u32 length */
        size_t len = k->ops.len - 4;
        return mc_client_write_async(c, 1, &op, &len, mc_http_call_cb, k);
    }
    case MC_REQ_GET_OBJECT:
    case MC_REQ_HEAD_OBJECT: {
        struct mc_read_opts ro = read_opts(&q->u.get.ro);
        return mc_client_get_async(c, q->op == MC_REQ_HEAD_OBJECT, q->u.get.bucket.ptr,
                                   q->u.get.key.ptr, q->u.get.version_id.ptr, &ro, mc_http_call_cb,
                                   k);
    }
    case MC_REQ_LIST_OBJECTS:
    case MC_REQ_LIST_VERSIONS: {
        struct mc_read_opts ro = read_opts(&q->u.list.ro);
        struct mc_list_args a;
        list_args(q, &a);
        if (q->op == MC_REQ_LIST_VERSIONS)
            return mc_client_list_versions_async(c, &a, &ro, mc_http_call_cb, k);
        return mc_client_list_objects_async(c, &a, &ro, mc_http_call_cb, k);
    }
    case MC_REQ_LIST_BUCKETS:
    case MC_REQ_HEAD_BUCKET: {
        struct mc_read_opts ro = read_opts(&q->u.bucket.ro);
        if (q->op == MC_REQ_LIST_BUCKETS)
            return mc_client_list_buckets_async(c, &ro, mc_http_call_cb, k);
        return mc_client_head_bucket_async(c, q->u.bucket.bucket.ptr, &ro, mc_http_call_cb, k);
    }
    default:
        return MC_EINVAL;
    }
}

int mc_http_call_client(struct mc_http_server *s, const char *token, struct mc_http_call *k)
{
    mc_http_call_reset(k);
    k->is_write = k->req.op == MC_REQ_WRITE;
    struct mc_client *c = mc_http_client_get(s, token);
    if (!c) {
        k->done = true;
        k->status = MC_ENOMEM;
        return k->status;
    }
    int rc = mc_http_call_wait(s, c, k, submit(c, k));
    mc_http_client_put(s, c, token);
    return rc;
}

const char *mc_http_pool_token(const struct mc_http_request *q)
{
    if (!q->srv->auth || !q->srv->local)
        return NULL;
    const char *h = mc_http_bearer_token(q);
    return h && strlen(h) <= MC_CLIENT_TOKEN_MAX ? h : NULL;
}

/* Pool slots hold the token their client authenticated with. Compared in constant time: the
 * slots hold other callers' tokens. */
static bool pool_token_is(const char *slot, const char *token)
{
    size_t n = strlen(token);
    return strlen(slot) == n && CRYPTO_memcmp(slot, token, n) == 0;
}

static const char *effective_token(const struct mc_http_server *s, const char *token)
{
    return token ? token : s->internal_token;
}

/* Take slot i out (pool_mu held): the last slot fills the hole, the vacated one is wiped. */
static void pool_remove(struct mc_http_server *s, uint32_t i)
{
    assert(i < s->n_pool);
    s->n_pool--;
    s->pool[i] = s->pool[s->n_pool];
    s->pool_used_ms[i] = s->pool_used_ms[s->n_pool];
    memcpy(s->pool_token[i], s->pool_token[s->n_pool], sizeof s->pool_token[i]);
    OPENSSL_cleanse(s->pool_token[s->n_pool], sizeof s->pool_token[0]);
}

/* The slot returned longest ago (pool_mu held, pool not empty): evicted when the pool is full,
 * so clients of tokens no longer used do not keep their connections and block the others. */
static uint32_t pool_oldest(const struct mc_http_server *s)
{
    uint32_t o = 0;
    for (uint32_t i = 1; i < s->n_pool; i++)
        if (s->pool_used_ms[i] < s->pool_used_ms[o])
            o = i;
    return o;
}

struct mc_client *mc_http_client_get(struct mc_http_server *s, const char *token)
{
    token = effective_token(s, token);
    struct mc_client *c = NULL;
    pthread_mutex_lock(&s->pool_mu);
    for (uint32_t i = s->n_pool; i-- > 0;) {
        if (pool_token_is(s->pool_token[i], token)) {
            c = s->pool[i];
            pool_remove(s, i);
            break;
        }
    }
    pthread_mutex_unlock(&s->pool_mu);
    if (c)
        return c;
    struct mc_client_opts o;
    mc_client_opts_default(&o);
    o.request_timeout_ms = s->request_timeout_ms;
    /* Reads stay on this node's own port (they come here after this node answered them with a
     * retriable status, or in loopback mode for a node of the test server's choosing); writes
     * follow the leader, with the caller's own token (mc_http_pool_token). */
    o.follower_reads = true;
    o.token = token[0] ? token : NULL;
    if (s->loop_ca[0]) {
        o.tls_ca_file = s->loop_ca;
        o.tls_cert_file = s->loop_cert[0] ? s->loop_cert : NULL;
        o.tls_key_file = s->loop_key[0] ? s->loop_key : NULL;
        o.tls_skip_host_verify = true; /* our own port over loopback */
    }
    if (mc_client_open(s->client_addr, &o, &c) != 0)
        return NULL;
    return c;
}

void mc_http_client_put(struct mc_http_server *s, struct mc_client *c, const char *token)
{
    if (!c)
        return;
    token = effective_token(s, token);
    assert(strlen(token) < sizeof s->pool_token[0]);
    /* A client with requests still pending (a poll failure) is not reused. */
    struct mc_client *evicted = NULL;
    if (mc_client_pending(c) == 0) {
        pthread_mutex_lock(&s->pool_mu);
        if (s->n_pool == MC_HTTP_POOL_MAX) {
            uint32_t o = pool_oldest(s);
            evicted = s->pool[o];
            pool_remove(s, o);
        }
        snprintf(s->pool_token[s->n_pool], sizeof s->pool_token[0], "%s", token);
        s->pool_used_ms[s->n_pool] = mc_mono_ms();
        s->pool[s->n_pool++] = c;
        c = NULL;
        pthread_mutex_unlock(&s->pool_mu);
    }
    mc_client_close(evicted); /* outside the lock: closing may wait on the socket */
    if (c)
        mc_client_close(c);
}

void mc_http_pool_close(struct mc_http_server *s)
{
    pthread_mutex_lock(&s->pool_mu);
    for (uint32_t i = 0; i < s->n_pool; i++)
        mc_client_close(s->pool[i]);
    s->n_pool = 0;
    OPENSSL_cleanse(s->pool_token, sizeof s->pool_token);
    pthread_mutex_unlock(&s->pool_mu);
}
