/* call.c: loopback client pool and blocking waits over the client library's async API. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "http/internal.h"
#include "metacenter/error.h"
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
}

struct mc_client *mc_http_client_get(struct mc_http_server *s)
{
    struct mc_client *c = NULL;
    pthread_mutex_lock(&s->pool_mu);
    if (s->n_pool > 0)
        c = s->pool[--s->n_pool];
    pthread_mutex_unlock(&s->pool_mu);
    if (c)
        return c;
    struct mc_client_opts o;
    mc_client_opts_default(&o);
    o.request_timeout_ms = s->request_timeout_ms;
    if (mc_client_open(s->client_addr, &o, &c) != 0)
        return NULL;
    return c;
}

void mc_http_client_put(struct mc_http_server *s, struct mc_client *c)
{
    if (!c)
        return;
    /* A client with requests still pending (a poll failure) is not reused. */
    if (mc_client_pending(c) == 0) {
        pthread_mutex_lock(&s->pool_mu);
        if (s->n_pool < MC_HTTP_POOL_MAX) {
            s->pool[s->n_pool++] = c;
            c = NULL;
        }
        pthread_mutex_unlock(&s->pool_mu);
    }
    if (c)
        mc_client_close(c);
}

void mc_http_pool_close(struct mc_http_server *s)
{
    pthread_mutex_lock(&s->pool_mu);
    for (uint32_t i = 0; i < s->n_pool; i++)
        mc_client_close(s->pool[i]);
    s->n_pool = 0;
    pthread_mutex_unlock(&s->pool_mu);
}
