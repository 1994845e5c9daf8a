/* client.c: client library core: endpoints, non-blocking sockets + poll(2), routing, retries,
 * exactly-once sessions. */
#include "client/client_internal.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "metacenter/error.h"
#include "security/tls.h"
#include "util/clock.h"
#include "util/log.h"

#define READ_INITIAL_BYTES (64u * 1024)
#define KEEP_BUFFER_BYTES  (1u * 1024 * 1024)
/* Reads per readable socket per poll, so one busy connection cannot starve the rest. */
#define READS_PER_EVENT 16
/* Byte offsets inside an encoded WRITE frame (patched when a session/seq is assigned). */
#define WRITE_SESSION_OFF (MC_PROTO_HEADER_BYTES)
#define WRITE_SEQ_OFF     (MC_PROTO_HEADER_BYTES + 8)
#define WRITE_ACKED_OFF   (MC_PROTO_HEADER_BYTES + 16)
/* LEADER requests (leader_probe): again this often while linearizable reads flow, since a
 * read-only client hears of no NotLeader when leadership moves; sooner while none is known. */
#define LEADER_REFRESH_MS    2000
#define LEADER_RETRY_MS      250
#define LEADER_OLD_SERVER_MS 60000
/* Names in leader hints are looked up off the request path (struct lookup): at most this many
 * at once, a finished one checked for this often, a failed one not tried again for this long. */
#define MAX_LOOKUPS     4
#define LOOKUP_POLL_MS  5
#define LOOKUP_RETRY_MS 1000
#define LOOKUP_PENDING  (-2) /* ep_learn: the name is being looked up */

enum ep_state { EP_IDLE, EP_CONNECTING, EP_UP };
/* REQ_FAILED: opts.no_retry ended it (fail_final); its result waits for run_timers. */
enum req_state { REQ_FREE, REQ_WAIT_SESSION, REQ_QUEUED, REQ_SENT, REQ_FAILED };

struct req;

/* An intrusive doubly linked list of requests (one queue per state). */
struct rlist {
    struct req *head, *tail;
    size_t n;
};

struct ep {
    char addr[MC_ADDR_MAX];
    struct sockaddr_in sa;
    int fd;
    enum ep_state state;
    uint64_t connect_deadline_ms;
    uint64_t retry_at_ms; /* no connection attempt before this (backoff after failure) */
    uint32_t failures;
    struct mc_wbuf out; /* frames not yet sent; [out_off, len) pending */
    size_t out_off;
    uint8_t *rbuf;
    size_t rcap, rlen;
    size_t rpos; /* rbuf[0, rpos): frames already dispatched, kept in e (not the reader's stack)
                    so a read nested in a callback (mc_client_poll) resumes after them */
    struct rlist inflight; /* REQ_SENT on this connection */
    struct mc_tls *tls;    /* TLS session of the current connection (NULL = plaintext) */
    struct mc_wbuf cout;   /* TLS: ciphertext not yet sent; [cout_off, len) pending */
    size_t cout_off;
    uint32_t gen; /* new socket, new generation (mc_client_fd) */
};

/* One name lookup (getaddrinfo on a thread of its own), shared with that thread: whichever of
 * the two lets go last frees it, so a client may close while a slow resolver still works. */
struct lookup_job {
    atomic_int refs;
    atomic_bool done;
    int rc;              /* getaddrinfo's (EAI_*), valid once done */
    struct in_addr addr; /* valid once done with rc 0 */
    char host[MC_ADDR_MAX];
};

/* A name learned from a leader hint ("host:port"), resolved or on its way. Kept after it
 * resolves: a name that turned out to be an endpoint the caller gave by number maps there
 * again without another lookup. */
struct lookup {
    char addr[MC_ADDR_MAX]; /* "" = unused */
    struct lookup_job *job; /* in flight; NULL once finished */
    struct sockaddr_in sa;  /* the port at once, the address once resolved */
    int rc;                 /* the last finished lookup's: 0 resolved, else EAI_* */
    uint64_t at_ms;         /* started (in flight) or finished */
};

/* One exactly-once session; a client opens more when it pipelines more writes than one
 * session's window (the results the engine caches per session). */
struct lane {
    uint64_t session_id; /* 0 while registering / after expiry */
    uint64_t next_seq;
    uint32_t inflight;
    bool registering;
    uint64_t seqs[64]; /* seqs in flight (≤ window ≤ 64) */
};

struct req {
    uint32_t slot;
    uint32_t gen;
    uint8_t op;
    uint8_t state;
    bool is_write; /* numbered in a session */
    bool sent_once;
    uint16_t sends;     /* times the frame went out (saturating) */
    bool internal;      /* session registration */
    bool probe;         /* LEADER request the client sent itself (leader_probe) */
    bool lin_read;      /* a linearizable read: goes to the leader once known */
    bool redirected;    /* went at once to a NotLeader hint already: later hints back off */
    bool maybe_applied; /* a write attempt went out and its answer was lost (connection
                           failure) or was the server's Timeout: it may have been applied */
    int8_t pin;
    int8_t ep;
    int8_t last_ep; /* where the previous attempt went by rotation (-1: none): a retry starts
                       at the member after it */
    int16_t lane;
    uint64_t seq;
    uint64_t deadline_ms;
    uint64_t retry_at_ms;
    uint32_t attempts;
    mc_client_cb cb;
    void *arg;
    char *fail_msg;       /* REQ_FAILED: its message (NULL: none could be kept) */
    int8_t fail_ep;       /* REQ_FAILED: the endpoint whose connection failed */
    struct mc_wbuf frame; /* the encoded request, kept for retries */
    struct req *qprev, *qnext;
    struct rlist *q;
    struct req *dprev, *dnext; /* deadline order */
};

struct mc_client {
    struct mc_client_opts opts;
    struct ep eps[MC_CLIENT_MAX_ENDPOINTS];
    int n_eps;
    int n_given_eps; /* eps[0..n_given_eps) came from mc_client_open; later ones were learned
                        from the cluster (leader hints) */
    int leader_ep;
    int leader_lookup;      /* the leader is known by a name being looked up (index in lookups;
                               -1 = none): requests for the leader wait for it (pick) */
    int probe_ep;           /* where the LEADER request in flight went; -1 = none in flight */
    uint64_t probe_next_ms; /* no new LEADER request before this (after a failed one) */
    uint32_t rr;
    bool rr_used; /* a request was routed by rr since the last flush: rotate at the flush */
    struct req **slots;
    uint32_t n_slots, cap_slots;
    uint32_t *free_slots;
    uint32_t n_free;
    size_t pending;
    struct rlist retry;        /* REQ_QUEUED */
    struct rlist wait_session; /* writes waiting for a session slot */
    struct req *dhead, *dtail; /* every pending request by deadline */
    struct lane lanes[MC_CLIENT_MAX_SESSIONS];
    int n_lanes;
    uint64_t callbacks; /* callbacks run so far */
    struct mc_client_error last_error;
    bool closing;
    char token[MC_CLIENT_TOKEN_MAX + 1]; /* opts.token points here */
    struct mc_tls_ctx *tls;              /* NULL = plaintext */
    char tls_error[200];                 /* last TLS failure (reported with timeouts) */
    char timeout_msg[512];
    struct lookup lookups[MAX_LOOKUPS];
    char lookup_error[200];   /* the last failed lookup (reported with timeouts) */
    uint64_t lookup_error_ms; /* when it failed */
    uint64_t rx_ns;           /* mc_client_rx_ns: set while ep_read runs the callbacks */
};

static void complete(struct mc_client *c, struct req *r, struct mc_client_result *res);
static void ep_fail(struct mc_client *c, int i, const char *why);
static void fail_deliver(struct mc_client *c, struct req *r);
static void route(struct mc_client *c, struct req *r, uint64_t now);
static void lane_assign_waiting(struct mc_client *c, uint64_t now);

/* ---- small helpers ---- */

void mc_client_opts_default(struct mc_client_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->request_timeout_ms = 5000;
    o->connect_timeout_ms = 1000;
    o->backoff_min_ms = 5;
    o->backoff_max_ms = 500;
    o->max_pending = 65536;
    o->session_window = MC_SESSION_RESULTS_KEPT;
    o->max_sessions = 64;
    o->read.consistency = MC_CONSISTENCY_LINEARIZABLE;
}

int mc_consistency_parse(const char *s, enum mc_consistency *out)
{
    if (strcmp(s, "linearizable") == 0 || strcmp(s, "strong") == 0) {
        *out = MC_CONSISTENCY_LINEARIZABLE;
        return 0;
    }
    if (strcmp(s, "stale") == 0 || strcmp(s, "eventual") == 0) {
        *out = MC_CONSISTENCY_STALE;
        return 0;
    }
    return MC_EINVAL;
}

static void rl_push(struct rlist *l, struct req *r)
{
    assert(!r->q);
    r->q = l;
    r->qnext = NULL;
    r->qprev = l->tail;
    if (l->tail) {
        l->tail->qnext = r;
    } else {
        l->head = r;
    }
    l->tail = r;
    l->n++;
}

static void rl_remove(struct req *r)
{
    struct rlist *l = r->q;
    if (!l) {
        return;
    }
    if (r->qprev) {
        r->qprev->qnext = r->qnext;
    } else {
        l->head = r->qnext;
    }
    if (r->qnext) {
        r->qnext->qprev = r->qprev;
    } else {
        l->tail = r->qprev;
    }
    r->qprev = r->qnext = NULL;
    r->q = NULL;
    l->n--;
}

/* Deadline list, kept sorted: insertion scans from the tail (usually O(1)). */
static void dl_insert(struct mc_client *c, struct req *r)
{
    struct req *p = c->dtail;
    while (p && p->deadline_ms > r->deadline_ms) {
        p = p->dprev;
    }
    r->dprev = p;
    r->dnext = p ? p->dnext : c->dhead;
    if (r->dnext) {
        r->dnext->dprev = r;
    } else {
        c->dtail = r;
    }
    if (p) {
        p->dnext = r;
    } else {
        c->dhead = r;
    }
}

static void dl_remove(struct mc_client *c, struct req *r)
{
    if (r->dprev) {
        r->dprev->dnext = r->dnext;
    } else {
        c->dhead = r->dnext;
    }
    if (r->dnext) {
        r->dnext->dprev = r->dprev;
    } else {
        c->dtail = r->dprev;
    }
    r->dprev = r->dnext = NULL;
}

static uint64_t backoff_ms(const struct mc_client *c, uint32_t attempts)
{
    uint64_t b = c->opts.backoff_min_ms;
    for (uint32_t i = 1; i < attempts && b < c->opts.backoff_max_ms; i++) {
        b *= 2;
    }
    return b < c->opts.backoff_max_ms ? b : c->opts.backoff_max_ms;
}

/* Parse "host:port": 0 with sa filled for a numeric address or "localhost" (no lookup), 1 for
 * a name (sa has the port, host the name to look up), MC_EINVAL when malformed. */
static int parse_endpoint(const char *s, size_t len, struct sockaddr_in *sa, char host[MC_ADDR_MAX])
{
    if (len == 0 || len >= MC_ADDR_MAX) {
        return MC_EINVAL;
    }
    memcpy(host, s, len);
    host[len] = 0;
    char *colon = strrchr(host, ':');
    if (!colon || colon == host || colon[1] == 0) {
        return MC_EINVAL;
    }
    *colon = 0;
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port <= 0 || port > 65535) {
        return MC_EINVAL;
    }
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (strcmp(host, "localhost") == 0) {
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return 0;
    }
    if (inet_pton(AF_INET, host, &sa->sin_addr) == 1) {
        return 0;
    }
    return 1;
}

/* getaddrinfo for an IPv4 address: 0 or an EAI_* code. Blocks: a caller's endpoint at open, or
 * a lookup thread. */
static int resolve_host(const char *host, struct in_addr *out)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &ai);
    if (rc == 0 && !ai) {
        rc = EAI_NONAME;
    }
    if (rc == 0) {
        *out = ((struct sockaddr_in *)ai->ai_addr)->sin_addr;
    }
    if (ai) {
        freeaddrinfo(ai);
    }
    return rc;
}

/* ---- name lookups off the request path ---- */

static void job_unref(struct lookup_job *j)
{
    if (atomic_fetch_sub(&j->refs, 1) == 1) {
        free(j);
    }
}

static void *job_main(void *arg)
{
    struct lookup_job *j = arg;
    j->rc = resolve_host(j->host, &j->addr);
    atomic_store(&j->done, true); /* publishes rc and addr */
    job_unref(j);
    return NULL;
}

/* Look host up on a detached thread (signals blocked there: they belong to the caller's
 * loop). NULL when no thread could be started. */
static struct lookup_job *job_start(const char *host)
{
    struct lookup_job *j = calloc(1, sizeof(*j));
    if (!j) {
        return NULL;
    }
    snprintf(j->host, sizeof(j->host), "%s", host);
    atomic_init(&j->refs, 2);
    atomic_init(&j->done, false);
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0) {
        free(j);
        return NULL;
    }
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_t t;
    int rc = pthread_create(&t, &attr, job_main, j);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        free(j);
        return NULL;
    }
    return j;
}

static void ep_close_fd(struct ep *e);

/* A learned endpoint (from a leader hint, not named by the caller) that nothing refers to: not
 * the leader or the LEADER request's, no request sent there or pinned to it. The one failing
 * the longest goes first (a member removed from the cluster); -1 when there is none. */
static int ep_evictable(const struct mc_client *c)
{
    int best = -1;
    /* n_given_eps is 0 while mc_client_open adds the caller's: none of those is evicted. */
    for (int i = c->n_given_eps; c->n_given_eps > 0 && i < c->n_eps; i++) {
        const struct ep *e = &c->eps[i];
        if (i == c->leader_ep || i == c->probe_ep || e->inflight.n > 0) {
            continue;
        }
        bool used = false;
        for (uint32_t k = 0; k < c->n_slots && !used; k++) {
            const struct req *r = c->slots[k];
            used = r->state != REQ_FREE && (r->pin == i || r->ep == i);
        }
        if (!used && (best < 0 || e->failures > c->eps[best].failures)) {
            best = i;
        }
    }
    return best;
}

/* Index of the endpoint with this text, -1 when none. */
static int ep_find_text(const struct mc_client *c, const char *addr, size_t len)
{
    for (int i = 0; i < c->n_eps; i++) {
        if (strlen(c->eps[i].addr) == len && memcmp(c->eps[i].addr, addr, len) == 0) {
            return i;
        }
    }
    return -1;
}

/* Index of the endpoint at sa, adding it as addr when new (when the list is full, in place of
 * a learned one nothing uses); -1 when full. */
static int ep_add(struct mc_client *c, const char *addr, size_t len, const struct sockaddr_in *sa)
{
    for (int i = 0; i < c->n_eps; i++) {
        if (c->eps[i].sa.sin_addr.s_addr == sa->sin_addr.s_addr &&
            c->eps[i].sa.sin_port == sa->sin_port) {
            return i;
        }
    }
    if (c->n_eps == MC_CLIENT_MAX_ENDPOINTS) {
        int i = ep_evictable(c);
        if (i < 0) {
            return -1;
        }
        /* Reuse the slot (its buffers too): the cluster's membership moved on. */
        struct ep *e = &c->eps[i];
        MC_DEBUG("client_endpoint_evicted", "addr=%s for=%.*s", e->addr, (int)len, addr);
        ep_close_fd(e);
        e->gen++; /* a new socket will come (mc_client_fd) */
        memcpy(e->addr, addr, len);
        e->addr[len] = 0;
        e->sa = *sa;
        e->failures = 0;
        e->retry_at_ms = 0;
        return i;
    }
    struct ep *e = &c->eps[c->n_eps];
    memset(e, 0, sizeof(*e));
    memcpy(e->addr, addr, len);
    e->addr[len] = 0;
    e->sa = *sa;
    e->fd = -1;
    mc_wbuf_init(&e->out, 0);
    mc_wbuf_init(&e->cout, 0);
    return c->n_eps++;
}

/* A caller's endpoint at open: a name is looked up here, blocking (mc_client_open may block;
 * request processing may not). Index, or -1 when invalid or unresolvable. */
static int ep_given(struct mc_client *c, const char *addr, size_t len)
{
    int i = ep_find_text(c, addr, len);
    if (i >= 0) {
        return i;
    }
    struct sockaddr_in sa;
    char host[MC_ADDR_MAX];
    int rc = parse_endpoint(addr, len, &sa, host);
    if (rc == 1 && resolve_host(host, &sa.sin_addr) != 0) {
        return -1;
    }
    return rc < 0 ? -1 : ep_add(c, addr, len, &sa);
}

static int lookup_find(const struct mc_client *c, const char *addr, size_t len)
{
    for (int k = 0; k < MAX_LOOKUPS; k++) {
        const char *a = c->lookups[k].addr;
        if (strlen(a) == len && memcmp(a, addr, len) == 0) {
            return k;
        }
    }
    return -1;
}

/* A slot for a new name: an unused one, else the one finished longest ago; -1 when every one
 * is in flight. */
static int lookup_slot(const struct mc_client *c)
{
    int best = -1;
    for (int k = 0; k < MAX_LOOKUPS; k++) {
        const struct lookup *lk = &c->lookups[k];
        if (!lk->addr[0]) {
            return k;
        }
        if (!lk->job && (best < 0 || lk->at_ms < c->lookups[best].at_ms)) {
            best = k;
        }
    }
    return best;
}

/* An endpoint learned from the cluster (a leader hint): its index, adding it when new;
 * LOOKUP_PENDING (*lookup set) while its name is looked up, on a thread: a resolver may take
 * seconds and this runs while replies are handled; -1 when invalid, unresolvable (for
 * LOOKUP_RETRY_MS after a failed lookup) or the list is full. */
static int ep_learn(struct mc_client *c, const char *addr, size_t len, uint64_t now, int *lookup)
{
    int i = ep_find_text(c, addr, len);
    if (i >= 0) {
        return i;
    }
    struct sockaddr_in sa;
    char host[MC_ADDR_MAX];
    int rc = parse_endpoint(addr, len, &sa, host);
    if (rc <= 0) {
        return rc == 0 ? ep_add(c, addr, len, &sa) : -1;
    }
    int k = lookup_find(c, addr, len);
    if (k >= 0) {
        struct lookup *lk = &c->lookups[k];
        if (lk->job) {
            *lookup = k;
            return LOOKUP_PENDING;
        }
        if (lk->rc == 0) {
            return ep_add(c, addr, len, &lk->sa);
        }
        if (now < lk->at_ms + LOOKUP_RETRY_MS) {
            return -1;
        }
    } else {
        k = lookup_slot(c);
        if (k < 0) {
            return -1;
        }
    }
    struct lookup *lk = &c->lookups[k];
    struct lookup_job *j = job_start(host);
    if (!j) {
        return -1;
    }
    memcpy(lk->addr, addr, len);
    lk->addr[len] = 0;
    lk->sa = sa;
    lk->job = j;
    lk->rc = 0;
    lk->at_ms = now;
    MC_DEBUG("client_lookup_started", "addr=%s", lk->addr);
    *lookup = k;
    return LOOKUP_PENDING;
}

/* The leader is endpoint i (-1: unknown); nothing waits for a lookup any more. */
static void set_leader(struct mc_client *c, int i)
{
    c->leader_ep = i;
    c->leader_lookup = -1;
}

/* The leader named by a hint: its endpoint, or the lookup to wait for. -1 when unusable. */
static int learn_leader(struct mc_client *c, const char *addr, size_t len, uint64_t now)
{
    int k = -1;
    int li = ep_learn(c, addr, len, now, &k);
    set_leader(c, li >= 0 ? li : -1);
    if (li == LOOKUP_PENDING) {
        c->leader_lookup = k;
    }
    return li;
}

/* Collect finished lookups. The leader's address arrived: what waited for it goes now. */
static void lookups_poll(struct mc_client *c, uint64_t now)
{
    for (int k = 0; k < MAX_LOOKUPS; k++) {
        struct lookup *lk = &c->lookups[k];
        if (!lk->job || !atomic_load(&lk->job->done)) {
            continue;
        }
        lk->rc = lk->job->rc;
        lk->sa.sin_addr = lk->job->addr;
        job_unref(lk->job);
        lk->job = NULL;
        lk->at_ms = now;
        if (lk->rc != 0) {
            MC_DEBUG("client_lookup_failed", "addr=%s err=\"%s\"", lk->addr, gai_strerror(lk->rc));
            snprintf(c->lookup_error, sizeof(c->lookup_error),
                     "leader address %s did not resolve: %s", lk->addr, gai_strerror(lk->rc));
            c->lookup_error_ms = now;
            if (c->leader_lookup == k) {
                c->leader_lookup = -1; /* leader unknown: requests rotate (and retry) */
            }
            continue;
        }
        if (c->leader_lookup != k) {
            continue;
        }
        set_leader(c, ep_add(c, lk->addr, strlen(lk->addr), &lk->sa));
        for (struct req *r = c->retry.head; r; r = r->qnext) {
            if (r->retry_at_ms > now) {
                r->retry_at_ms = now;
            }
        }
    }
}

/* ---- open / close ---- */

int mc_client_open(const char *endpoints, const struct mc_client_opts *opts, struct mc_client **out)
{
    struct mc_client *c = calloc(1, sizeof(*c));
    if (!c) {
        return MC_ENOMEM;
    }
    mc_client_opts_default(&c->opts);
    if (opts) {
        struct mc_client_opts d = c->opts;
        c->opts = *opts;
        if (!c->opts.request_timeout_ms) {
            c->opts.request_timeout_ms = d.request_timeout_ms;
        }
        if (!c->opts.connect_timeout_ms) {
            c->opts.connect_timeout_ms = d.connect_timeout_ms;
        }
        if (!c->opts.backoff_min_ms) {
            c->opts.backoff_min_ms = d.backoff_min_ms;
        }
        if (c->opts.backoff_max_ms < c->opts.backoff_min_ms) {
            c->opts.backoff_max_ms = d.backoff_max_ms > c->opts.backoff_min_ms
                                         ? d.backoff_max_ms
                                         : c->opts.backoff_min_ms;
        }
        if (!c->opts.max_pending) {
            c->opts.max_pending = d.max_pending;
        }
        if (!c->opts.session_window) {
            c->opts.session_window = d.session_window;
        }
        if (!c->opts.max_sessions) {
            c->opts.max_sessions = d.max_sessions;
        }
    }
    if (c->opts.token && c->opts.token[0]) {
        if (strlen(c->opts.token) > MC_CLIENT_TOKEN_MAX) {
            free(c);
            return MC_EINVAL;
        }
        snprintf(c->token, sizeof(c->token), "%s", c->opts.token);
        c->opts.token = c->token;
    } else {
        c->opts.token = NULL;
    }
    if (c->opts.tls_ca_file && c->opts.tls_ca_file[0]) {
        struct mc_tls_config tc = {.cert_file = c->opts.tls_cert_file,
                                   .key_file = c->opts.tls_key_file,
                                   .ca_file = c->opts.tls_ca_file};
        char err[256];
        if (mc_tls_ctx_new(&tc, false, &c->tls, err, sizeof(err)) != 0) {
            MC_WARN("client_tls_config", "err=\"%s\"", err);
            free(c);
            return MC_EINVAL;
        }
    }
    c->opts.tls_ca_file = c->opts.tls_cert_file = c->opts.tls_key_file = NULL; /* not kept */
    if (c->opts.session_window > 64) {
        c->opts.session_window = 64;
    }
    if (c->opts.max_sessions > MC_CLIENT_MAX_SESSIONS) {
        c->opts.max_sessions = MC_CLIENT_MAX_SESSIONS;
    }
    c->leader_ep = -1;
    c->leader_lookup = -1;
    c->probe_ep = -1;
    const char *p = endpoints ? endpoints : "";
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        if (len > 0) {
            if (ep_given(c, p, len) < 0) {
                free(c);
                return MC_EINVAL;
            }
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    if (c->n_eps == 0) {
        free(c);
        return MC_EINVAL;
    }
    c->n_given_eps = c->n_eps;
    *out = c;
    return 0;
}

static void ep_close_fd(struct ep *e)
{
    if (e->fd >= 0) {
        close(e->fd);
        e->fd = -1;
    }
    e->state = EP_IDLE;
    mc_tls_free(e->tls);
    e->tls = NULL;
    e->cout.len = 0;
    e->cout.err = 0;
    e->cout_off = 0;
    e->out.len = 0;
    e->out.err = 0;
    e->out_off = 0;
    e->rlen = 0;
    e->rpos = 0;
}

void mc_client_close(struct mc_client *c)
{
    if (!c) {
        return;
    }
    c->closing = true;
    /* Fail every pending request (callbacks free their own state). */
    while (c->dhead) {
        struct req *r = c->dhead;
        if (r->state == REQ_FAILED) {
            fail_deliver(c, r); /* its own result: it ended before the close */
            continue;
        }
        struct mc_client_result res = {.status = MC_ESHUTDOWN};
        res.outcome_unknown = r->is_write && r->sent_once;
        complete(c, r, &res);
    }
    for (int i = 0; i < c->n_eps; i++) {
        ep_close_fd(&c->eps[i]);
        mc_wbuf_free(&c->eps[i].out);
        mc_wbuf_free(&c->eps[i].cout);
        free(c->eps[i].rbuf);
    }
    for (int k = 0; k < MAX_LOOKUPS; k++) {
        if (c->lookups[k].job) {
            job_unref(c->lookups[k].job); /* its thread frees it when the resolver answers */
        }
    }
    for (uint32_t i = 0; i < c->n_slots; i++) {
        mc_wbuf_free(&c->slots[i]->frame);
        free(c->slots[i]);
    }
    free(c->slots);
    free(c->free_slots);
    mc_tls_ctx_free(c->tls);
    explicit_bzero(c->token, sizeof(c->token)); /* a caller's credential (HTTP layer) */
    free(c);
}

int mc_client_endpoint_count(const struct mc_client *c)
{
    return c->n_eps;
}

const char *mc_client_endpoint_addr(const struct mc_client *c, int i)
{
    return i >= 0 && i < c->n_eps ? c->eps[i].addr : "";
}

int mc_client_leader_index(const struct mc_client *c)
{
    return c->leader_ep;
}

uint64_t mc_client_session_id(const struct mc_client *c)
{
    return c->n_lanes > 0 ? c->lanes[0].session_id : 0;
}

size_t mc_client_pending(const struct mc_client *c)
{
    return c->pending - (c->probe_ep >= 0); /* the caller's requests, not our LEADER one */
}

void mc_client_set_request_timeout(struct mc_client *c, uint32_t ms)
{
    struct mc_client_opts d;
    mc_client_opts_default(&d);
    c->opts.request_timeout_ms = ms ? ms : d.request_timeout_ms;
}

const struct mc_client_error *mc_client_last_error(const struct mc_client *c)
{
    return &c->last_error;
}

const struct mc_read_opts *mc_client_default_read(const struct mc_client *c)
{
    return &c->opts.read;
}

/* ---- request slots ---- */

static struct req *req_alloc(struct mc_client *c)
{
    /* The LEADER request (leader_probe sets probe_ep before it allocates) does not count: it
     * must neither take a caller's slot nor be starved by a full pipeline. */
    if (c->closing || c->pending - (c->probe_ep >= 0) >= c->opts.max_pending) {
        return NULL;
    }
    struct req *r;
    if (c->n_free > 0) {
        r = c->slots[c->free_slots[--c->n_free]];
    } else {
        if (c->n_slots == c->cap_slots) {
            uint32_t cap = c->cap_slots ? c->cap_slots * 2 : 64;
            struct req **s = realloc(c->slots, cap * sizeof(*s));
            if (!s) {
                return NULL;
            }
            c->slots = s;
            uint32_t *f = realloc(c->free_slots, cap * sizeof(*f));
            if (!f) {
                return NULL;
            }
            c->free_slots = f;
            c->cap_slots = cap;
        }
        r = calloc(1, sizeof(*r));
        if (!r) {
            return NULL;
        }
        r->slot = c->n_slots;
        mc_wbuf_init(&r->frame, MC_PROTO_MAX_FRAME_BYTES);
        c->slots[c->n_slots++] = r;
    }
    assert(r->state == REQ_FREE);
    r->gen++;
    if (r->gen == 0) {
        r->gen = 1; /* request id 0 is never used */
    }
    r->frame.len = 0;
    r->frame.err = 0;
    r->is_write = r->sent_once = r->internal = r->probe = r->lin_read = r->maybe_applied =
        r->redirected = false;
    r->sends = 0;
    r->pin = -1;
    r->ep = -1;
    r->last_ep = -1;
    r->lane = -1;
    r->seq = 0;
    r->attempts = 0;
    r->retry_at_ms = 0;
    r->q = NULL;
    c->pending++;
    return r;
}

static uint64_t req_id(const struct req *r)
{
    return (uint64_t)r->gen << 32 | r->slot;
}

static void req_free(struct mc_client *c, struct req *r)
{
    assert(r->state != REQ_FREE);
    r->state = REQ_FREE;
    r->cb = NULL;
    r->arg = NULL;
    free(r->fail_msg);
    r->fail_msg = NULL;
    if (r->frame.cap > KEEP_BUFFER_BYTES) {
        mc_wbuf_free(&r->frame);
    }
    c->free_slots[c->n_free++] = r->slot;
    c->pending--;
}

/* Give the request its deadline and route it. */
static void req_start(struct mc_client *c, struct req *r)
{
    uint64_t now = mc_mono_ms();
    r->deadline_ms = now + c->opts.request_timeout_ms;
    dl_insert(c, r);
    if (r->is_write) {
        r->state = REQ_WAIT_SESSION;
        rl_push(&c->wait_session, r);
        lane_assign_waiting(c, now);
    } else {
        route(c, r, now);
    }
}

/* ---- sessions (exactly-once, DESIGN.md §2.3; Raft thesis §6.3) ---- */

static void lane_release(struct mc_client *c, struct req *r)
{
    if (r->lane < 0) {
        return;
    }
    struct lane *l = &c->lanes[r->lane];
    for (uint32_t i = 0; i < l->inflight; i++) {
        if (l->seqs[i] == r->seq) {
            l->seqs[i] = l->seqs[--l->inflight];
            break;
        }
    }
    r->lane = -1;
}

/* Every seq below the lowest one in flight has had its answer (or was abandoned). */
static uint64_t lane_acked(const struct lane *l)
{
    uint64_t min = l->next_seq;
    for (uint32_t i = 0; i < l->inflight; i++) {
        if (l->seqs[i] < min) {
            min = l->seqs[i];
        }
    }
    return min - 1;
}

static void on_registered(void *arg, const struct mc_client_result *res);

static int lane_register(struct mc_client *c, int li)
{
    struct req *r = req_alloc(c);
    if (!r) {
        return MC_ELIMIT;
    }
    struct mc_proto_request q = {.op = MC_REQ_REGISTER_SESSION, .request_id = req_id(r)};
    mc_proto_request_encode(&r->frame, &q);
    r->op = MC_REQ_REGISTER_SESSION;
    r->internal = true;
    r->cb = on_registered;
    r->arg = c;
    r->lane = (int16_t)li; /* not a seq holder: lane_release finds no seq */
    r->seq = 0;
    c->lanes[li].registering = true;
    req_start(c, r);
    return 0;
}

/* Hand out (session, seq) to waiting writes while some session has room. */
static void lane_assign_waiting(struct mc_client *c, uint64_t now)
{
    while (c->wait_session.head) {
        int best = -1;
        bool registering = false;
        for (int i = 0; i < c->n_lanes; i++) {
            struct lane *l = &c->lanes[i];
            if (l->registering) {
                registering = true;
            } else if (l->session_id && l->inflight < c->opts.session_window) {
                best = i;
                break;
            }
        }
        if (best < 0) {
            /* Revive an expired lane, or open one more, unless one is on its way. */
            if (registering) {
                return;
            }
            int li = -1;
            for (int i = 0; i < c->n_lanes; i++) {
                if (c->lanes[i].session_id == 0 && c->lanes[i].inflight == 0) {
                    li = i;
                    break;
                }
            }
            if (li < 0 && (uint32_t)c->n_lanes < c->opts.max_sessions) {
                li = c->n_lanes++;
                memset(&c->lanes[li], 0, sizeof(c->lanes[li]));
            }
            if (li >= 0) {
                lane_register(c, li);
            }
            return;
        }
        struct req *r = c->wait_session.head;
        rl_remove(r);
        struct lane *l = &c->lanes[best];
        r->lane = (int16_t)best;
        r->seq = l->next_seq++;
        l->seqs[l->inflight++] = r->seq;
        mc_put_u64le(r->frame.data + WRITE_SESSION_OFF, l->session_id);
        mc_put_u64le(r->frame.data + WRITE_SEQ_OFF, r->seq);
        route(c, r, now);
    }
}

static void on_registered(void *arg, const struct mc_client_result *res)
{
    (void)arg;
    (void)res; /* handled in complete() where the lane is known */
}

/* ---- connections ---- */

static bool ep_usable(const struct ep *e, uint64_t now)
{
    return e->state != EP_IDLE || e->retry_at_ms <= now;
}

/* Open endpoint i's connection. MC_EIO or MC_ENOMEM with why (cap bytes) saying what failed:
 * read at once, as errno is by then another call's. */
static int ep_connect(struct mc_client *c, int i, uint64_t now, char *why, size_t cap)
{
    struct ep *e = &c->eps[i];
    assert(e->fd < 0 && cap > 0);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(why, cap, "socket: %s", strerror(errno));
        return MC_EIO;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (c->opts.rx_timestamps && !c->tls) {
        setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof(one));
    }
    e->fd = fd;
    e->gen++;
    e->out_off = 0;
    e->rlen = 0;
    e->rpos = 0;
    if (c->tls) {
        char host[MC_ADDR_MAX];
        snprintf(host, sizeof(host), "%s", e->addr);
        char *colon = strrchr(host, ':');
        if (colon) {
            *colon = 0;
        }
        /* The host check is skipped only where the caller asked for it and only for the
         * endpoints it named: a member learned from a leader hint is verified by name, since
         * the HTTP layer's clients send callers' own tokens there. */
        bool skip_host = c->opts.tls_skip_host_verify && i < c->n_given_eps;
        int rc = mc_tls_new(c->tls, false, skip_host ? NULL : host, &e->tls);
        if (rc != 0) {
            snprintf(why, cap, "TLS setup: %s", mc_strerror(rc));
        } else if (mc_tls_handshake(e->tls) != 0) {
            snprintf(why, cap, "TLS: %s", mc_tls_error(e->tls)); /* before the free below */
            rc = MC_EPROTO;
        }
        if (rc != 0) {
            ep_close_fd(e);
            return MC_ENOMEM;
        }
    }
    if (c->opts.token) {
        /* AUTH goes first; the server handles frames in order, so everything queued after it
         * runs authenticated. Request id 0 (never a request's): its reply is ignored, and a
         * refused token shows up as Unauthorized on the requests themselves. */
        struct mc_proto_request q = {.op = MC_REQ_AUTH, .request_id = 0};
        q.u.auth.token = mc_proto_cstr(c->opts.token);
        assert(e->out.len == 0);
        if (mc_proto_request_encode(&e->out, &q) != 0) {
            e->out.err = 0;
            e->out.len = 0;
        }
    }
    if (connect(fd, (struct sockaddr *)&e->sa, sizeof(e->sa)) == 0) {
        e->state = EP_UP;
        return 0;
    }
    if (errno == EINPROGRESS) {
        e->state = EP_CONNECTING;
        e->connect_deadline_ms = now + c->opts.connect_timeout_ms;
        return 0;
    }
    snprintf(why, cap, "%s", strerror(errno));
    ep_close_fd(e);
    return MC_EIO;
}

/* Choose an endpoint for r: -1 when none is usable right now. */
static int pick(struct mc_client *c, struct req *r, uint64_t now)
{
    if (r->pin >= 0) {
        return ep_usable(&c->eps[r->pin], now) ? r->pin : -1;
    }
    bool to_leader =
        (!mc_proto_op_is_read(r->op) && r->op != MC_REQ_PING && r->op != MC_REQ_CLUSTER_STATUS &&
         r->op != MC_REQ_SNAPSHOT_SAVE && r->op != MC_REQ_CHECK) ||
        (r->lin_read && !c->opts.follower_reads && r->attempts == 0);
    if (to_leader && c->leader_ep < 0 && c->leader_lookup >= 0) {
        assert(c->lookups[c->leader_lookup].job); /* lookups_poll clears it when done */
        return -1; /* the leader's name is being looked up: wait for it (lookups_poll) */
    }
    if (to_leader && c->leader_ep >= 0 && ep_usable(&c->eps[c->leader_ep], now)) {
        return c->leader_ep;
    }
    /* Reads rotate per flush, not per request: what is submitted between two flushes goes to
     * one member in one send (and is read there in one read) instead of one per member. */
    /* A retry starts at the member after the one its previous attempt went to: counting from
     * rr + attempts stepped by two when rr moved in between (one flush), so with two members
     * a leader-bound retry without a hint went back to the same one every time. */
    uint32_t first = r->last_ep >= 0 && r->attempts > 0 ? (uint32_t)r->last_ep + 1 : c->rr;
    for (int k = 0; k < c->n_eps; k++) {
        int i = (int)((first + (uint32_t)k) % (uint32_t)c->n_eps);
        if (ep_usable(&c->eps[i], now)) {
            c->rr_used = true;
            r->last_ep = (int8_t)i;
            return i;
        }
    }
    return -1;
}

static void requeue(struct mc_client *c, struct req *r, uint64_t at)
{
    rl_remove(r);
    r->state = REQ_QUEUED;
    r->ep = -1;
    r->retry_at_ms = at;
    rl_push(&c->retry, r);
}

/* Ask member ep where the leader is, so that linearizable reads go there (at most one LEADER
 * request in flight; asked again now and then, since a read-only client hears of no NotLeader
 * when leadership moves). */
static void leader_probe(struct mc_client *c, int ep, uint64_t now)
{
    if (c->probe_ep >= 0 || now < c->probe_next_ms) {
        return;
    }
    if (c->leader_ep >= 0) {
        /* A refresh asks another member: after a partition a follower knows the new leader,
         * the old one does not (and a silent one would not answer). */
        for (int k = 1; k < c->n_eps; k++) {
            int i = (c->leader_ep + k + (int)(c->rr % (uint32_t)c->n_eps)) % c->n_eps;
            if (i != c->leader_ep && ep_usable(&c->eps[i], now)) {
                ep = i;
                break;
            }
        }
    }
    c->probe_ep = ep; /* before req_alloc: see there */
    struct req *r = req_alloc(c);
    if (!r) {
        c->probe_ep = -1;
        return;
    }
    struct mc_proto_request q = {.op = MC_REQ_LEADER, .request_id = req_id(r)};
    if (mc_proto_request_encode(&r->frame, &q) != 0) {
        r->state = REQ_QUEUED; /* req_free expects a live request */
        req_free(c, r);
        c->probe_ep = -1;
        return;
    }
    r->op = MC_REQ_LEADER;
    r->probe = true;
    r->pin = (int8_t)ep;
    req_start(c, r);
}

static void leader_probe_done(struct mc_client *c, struct req *r,
                              const struct mc_client_result *res)
{
    int ep = c->probe_ep;
    assert(ep >= 0);
    c->probe_ep = -1;
    uint64_t now = mc_mono_ms();
    struct mc_proto_leader l;
    int li = -1, k = -1;
    if (res->status == 0 && mc_proto_leader_decode(res->body, res->body_len, &l) == 0 &&
        l.leader_id != 0) {
        if (l.leader_addr.len > 0) {
            li = ep_learn(c, l.leader_addr.ptr, l.leader_addr.len, now, &k);
        } else if (l.node_id == l.leader_id) {
            li = ep; /* the leader answered and knows no client address of its own */
        }
    }
    req_free(c, r);
    if (li == LOOKUP_PENDING) {
        set_leader(c, -1);
        c->leader_lookup = k; /* what goes to the leader waits for its address */
    }
    if (li < 0) {
        /* No leader known there yet (an election): reads keep rotating over the members
         * meanwhile. A server without LEADER (unknown op: MC_EPROTO) is asked rarely. */
        c->probe_next_ms =
            now + (res->status == MC_EPROTO ? LEADER_OLD_SERVER_MS : LEADER_RETRY_MS);
        return;
    }
    set_leader(c, li);
    c->probe_next_ms = now + LEADER_REFRESH_MS;
}

/* opts.no_retry: the attempt of r at endpoint i failed (why) for want of a connection; that is
 * its result (a write that went out: outcome unknown). Stored, not delivered: this runs inside
 * the submit calls (route from req_start) and inside run_timers' retry pass, where a callback
 * that drives the client could send or free the requests the caller is walking. Its deadline
 * becomes now: run_timers' deadline loop delivers it (fail_deliver), from the poll. */
static void fail_final(struct mc_client *c, struct req *r, int i, const char *why, uint64_t now)
{
    assert(r->state != REQ_FAILED); /* REQ_FREE: a new request, routed first by req_start */
    char msg[MC_ADDR_MAX + 128];
    snprintf(msg, sizeof(msg), "connection to %s failed: %.100s", c->eps[i].addr, why);
    r->fail_msg = strdup(msg);
    r->fail_ep = (int8_t)i;
    rl_remove(r);
    r->state = REQ_FAILED;
    r->ep = -1;
    dl_remove(c, r);
    r->deadline_ms = now;
    dl_insert(c, r);
}

/* The result fail_final stored; from run_timers or mc_client_close only. */
static void fail_deliver(struct mc_client *c, struct req *r)
{
    assert(r->state == REQ_FAILED);
    char msg[MC_ADDR_MAX + 128]; /* complete() frees r->fail_msg before the callback runs */
    snprintf(msg, sizeof(msg), "%s", r->fail_msg ? r->fail_msg : "connection failed");
    struct mc_client_result res = {.status = MC_EIO,
                                   .outcome_unknown = r->maybe_applied,
                                   .message = msg,
                                   .endpoint = r->fail_ep};
    complete(c, r, &res);
}

/* Send r to an endpoint (or park it until one is usable). */
static void route(struct mc_client *c, struct req *r, uint64_t now)
{
    int i = pick(c, r, now);
    if (i < 0) {
        /* Every endpoint is backing off: wait for the earliest to be retried. */
        uint64_t at = UINT64_MAX;
        for (int k = 0; k < c->n_eps; k++) {
            if ((r->pin < 0 || r->pin == k) && c->eps[k].retry_at_ms < at) {
                at = c->eps[k].retry_at_ms;
            }
        }
        if (at <= now) {
            at = now + c->opts.backoff_min_ms;
        }
        requeue(c, r, at);
        return;
    }
    struct ep *e = &c->eps[i];
    char why[160];
    if (e->fd < 0 && ep_connect(c, i, now, why, sizeof(why)) != 0) {
        e->failures++;
        e->retry_at_ms = now + backoff_ms(c, e->failures);
        r->attempts++;
        if (c->opts.no_retry) {
            fail_final(c, r, i, why, now);
            return;
        }
        requeue(c, r, now + backoff_ms(c, r->attempts));
        return;
    }
    if (r->is_write) {
        mc_put_u64le(r->frame.data + WRITE_ACKED_OFF, lane_acked(&c->lanes[r->lane]));
    }
    mc_wbuf_put(&e->out, r->frame.data, r->frame.len);
    if (mc_wbuf_error(&e->out)) {
        e->out.err = 0;
        requeue(c, r, now + backoff_ms(c, ++r->attempts));
        return;
    }
    rl_remove(r);
    r->state = REQ_SENT;
    r->ep = (int8_t)i;
    r->sent_once = true;
    if (r->sends < UINT16_MAX) {
        r->sends++;
    }
    rl_push(&e->inflight, r);
    if (r->lin_read && !c->opts.follower_reads) {
        leader_probe(c, i, now); /* when due: behind r, in the same send */
    }
}

static void ep_fail(struct mc_client *c, int i, const char *why_in)
{
    struct ep *e = &c->eps[i];
    uint64_t now = mc_mono_ms();
    /* why_in may point into the TLS session (mc_tls_error) that ep_close_fd frees: keep a copy
     * for the requests no_retry ends below. */
    char why[160];
    snprintf(why, sizeof(why), "%s", why_in ? why_in : "");
    MC_DEBUG("client_endpoint_failed", "addr=%s why=%s", e->addr, why);
    ep_close_fd(e);
    e->failures++;
    e->retry_at_ms = now + backoff_ms(c, e->failures);
    bool was_leader = c->leader_ep == i;
    if (was_leader) {
        set_leader(c, -1);
    }
    /* Everything in flight there goes elsewhere (a write keeps its session and seq); the
     * LEADER request, pinned there, ends (the next read sends a new one elsewhere). */
    while (e->inflight.head) {
        struct req *r = e->inflight.head;
        if (r->probe) {
            struct mc_client_result res = {.status = MC_EIO, .endpoint = i};
            complete(c, r, &res);
            continue;
        }
        r->attempts++;
        r->maybe_applied = r->maybe_applied || r->is_write;
        if (c->opts.no_retry) {
            fail_final(c, r, i, why, now);
            continue;
        }
        requeue(c, r, now);
    }
    if (was_leader) {
        c->probe_next_ms = 0; /* linearizable reads: find the new leader soon */
    }
}

/* Something to send: plaintext frames, or (TLS) ciphertext and handshake records. */
static bool ep_wants_write(const struct ep *e)
{
    return e->out.len > e->out_off ||
           (e->tls && (e->cout.len > e->cout_off || mc_tls_pending(e->tls) > 0));
}

/* TLS: encrypt the queued frames once the handshake is done, then send ciphertext. */
static int ep_flush_tls(struct mc_client *c, int i)
{
    struct ep *e = &c->eps[i];
    if (e->state != EP_UP) {
        return 0;
    }
    if (mc_tls_established(e->tls) && e->out.len > e->out_off) {
        if (mc_tls_write(e->tls, e->out.data + e->out_off, e->out.len - e->out_off) != 0) {
            ep_fail(c, i, mc_tls_error(e->tls));
            return MC_EIO;
        }
        e->out.len = 0;
        e->out_off = 0;
        if (e->out.cap > KEEP_BUFFER_BYTES) {
            mc_wbuf_free(&e->out);
        }
    }
    if (mc_tls_take_all(e->tls, &e->cout) != 0) {
        ep_fail(c, i, "out of memory");
        return MC_EIO;
    }
    while (e->cout_off < e->cout.len) {
        ssize_t n =
            send(e->fd, e->cout.data + e->cout_off, e->cout.len - e->cout_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            ep_fail(c, i, strerror(errno));
            return MC_EIO;
        }
        e->cout_off += (size_t)n;
    }
    e->cout.len = 0;
    e->cout_off = 0;
    if (e->cout.cap > KEEP_BUFFER_BYTES) {
        mc_wbuf_free(&e->cout);
    }
    return 0;
}

uint64_t mc_client_rx_ns(const struct mc_client *c)
{
    return c->rx_ns;
}

/* recv(2) with the kernel's receive time of the newest packet read (SO_TIMESTAMPNS, wall
 * clock) moved onto the monotonic clock in c->rx_ns; 0 when the read brought none. */
static ssize_t recv_stamped(struct mc_client *c, int fd, void *buf, size_t cap)
{
    union {
        char buf[CMSG_SPACE(sizeof(struct timespec))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = {buf, cap};
    struct msghdr m = {.msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = ctl.buf,
                       .msg_controllen = sizeof(ctl.buf)};
    ssize_t n = recvmsg(fd, &m, 0);
    if (n > 0) {
        c->rx_ns = 0; /* an unstamped read: its replies take their read time (not an older one) */
    }
    for (struct cmsghdr *h = n > 0 ? CMSG_FIRSTHDR(&m) : NULL; h; h = CMSG_NXTHDR(&m, h)) {
        if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_TIMESTAMPNS) {
            continue;
        }
        struct timespec rx, wall;
        memcpy(&rx, CMSG_DATA(h), sizeof(rx));
        clock_gettime(CLOCK_REALTIME, &wall);
        uint64_t mono = mc_mono_ns();
        int64_t ago = ((int64_t)wall.tv_sec - rx.tv_sec) * 1000000000 + (wall.tv_nsec - rx.tv_nsec);
        /* A wall-clock step makes ago meaningless: then the time of this read stands. */
        c->rx_ns =
            ago > 0 && (uint64_t)ago < mono && ago < 10000000000 ? mono - (uint64_t)ago : mono;
    }
    return n;
}

/* recv(2) for the frame reader: plaintext, decrypting over TLS (same return convention:
 * > 0 bytes, 0 closed, -1 with errno, EAGAIN when nothing decrypts yet). */
static ssize_t ep_recv(struct mc_client *c, int i, void *buf, size_t cap)
{
    struct ep *e = &c->eps[i];
    if (!e->tls) {
        return c->opts.rx_timestamps ? recv_stamped(c, e->fd, buf, cap) : recv(e->fd, buf, cap, 0);
    }
    for (;;) {
        size_t n = 0;
        int rc = mc_tls_read(e->tls, buf, cap, &n);
        if (rc == MC_ESHUTDOWN) {
            return 0;
        }
        if (rc != 0) {
            MC_DEBUG("client_tls_failed", "addr=%s err=\"%s\"", e->addr, mc_tls_error(e->tls));
            snprintf(c->tls_error, sizeof(c->tls_error), "%s", mc_tls_error(e->tls));
            errno = EPROTO;
            return -1;
        }
        if (n > 0) {
            return (ssize_t)n;
        }
        uint8_t cb[16 * 1024];
        ssize_t k = recv(e->fd, cb, sizeof(cb), 0);
        if (k <= 0) {
            return k;
        }
        if (mc_tls_feed(e->tls, cb, (size_t)k) != 0) {
            errno = ENOMEM;
            return -1;
        }
    }
}

static int ep_flush(struct mc_client *c, int i)
{
    struct ep *e = &c->eps[i];
    if (e->tls) {
        return ep_flush_tls(c, i);
    }
    while (e->state == EP_UP && e->out_off < e->out.len) {
        ssize_t n = send(e->fd, e->out.data + e->out_off, e->out.len - e->out_off, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return 0;
            }
            ep_fail(c, i, strerror(errno));
            return MC_EIO;
        }
        e->out_off += (size_t)n;
    }
    if (e->out_off == e->out.len) {
        e->out.len = 0;
        e->out_off = 0;
        if (e->out.cap > KEEP_BUFFER_BYTES) {
            mc_wbuf_free(&e->out);
        }
    }
    return 0;
}

/* ---- replies ---- */

static bool retriable(int status)
{
    return status == MC_ENOTLEADER || status == MC_EUNAVAIL || status == MC_ESHUTDOWN ||
           status == MC_ELIMIT || status == MC_ESTALE;
}

static void complete(struct mc_client *c, struct req *r, struct mc_client_result *res)
{
    rl_remove(r);
    dl_remove(c, r);
    if (r->probe) {
        leader_probe_done(c, r, res);
        return;
    }
    if (r->internal) {
        struct lane *l = &c->lanes[r->lane];
        l->registering = false;
        uint64_t sid = 0;
        if (res->status == 0 && mc_proto_session_decode(res->body, res->body_len, &sid) == 0) {
            assert(l->inflight == 0);
            l->session_id = sid;
            l->next_seq = 1;
        } else {
            /* Registration failed for good: fail the writes that waited for it. */
            MC_DEBUG("client_session_failed", "err=%s", mc_error_name(res->status));
            if (c->n_lanes == r->lane + 1 && l->session_id == 0 && l->inflight == 0) {
                c->n_lanes--;
            }
            int st = res->status ? res->status : MC_EPROTO;
            /* The message points into the read buffer, which a callback that drives the client
             * may move: each waiter gets this copy (whole: a protocol string's limit). */
            char msg[MC_PROTO_MAX_STR_BYTES + 1];
            snprintf(msg, sizeof(msg), "%s", res->message ? res->message : "");
            r->lane = -1;
            req_free(c, r);
            while (c->wait_session.head) {
                struct req *w = c->wait_session.head;
                struct mc_client_result wr = {.status = st,
                                              .message = msg,
                                              .leader_addr = "",
                                              .version_id = "",
                                              .endpoint = -1};
                complete(c, w, &wr);
            }
            return;
        }
        r->lane = -1;
        req_free(c, r);
        lane_assign_waiting(c, mc_mono_ms());
        return;
    }
    if (!res->message) {
        res->message = "";
    }
    if (!res->leader_addr) {
        res->leader_addr = "";
    }
    if (!res->version_id) {
        res->version_id = "";
    }
    bool had_lane = r->lane >= 0;
    lane_release(c, r);
    mc_client_cb cb = r->cb;
    void *arg = r->arg;
    req_free(c, r);
    c->callbacks++;
    if (cb) {
        cb(arg, res);
    }
    if (had_lane && !c->closing) {
        lane_assign_waiting(c, mc_mono_ms());
    }
}

static void on_frame(struct mc_client *c, int i, const struct mc_proto_header *h,
                     const uint8_t *body, size_t len)
{
    struct ep *e = &c->eps[i];
    uint32_t slot = (uint32_t)h->request_id;
    uint32_t gen = (uint32_t)(h->request_id >> 32);
    if (slot >= c->n_slots) {
        return;
    }
    struct req *r = c->slots[slot];
    if (r->gen != gen || r->state != REQ_SENT || r->ep != i) {
        return; /* a late reply to a request that timed out: ignore */
    }
    e->failures = 0;
    struct mc_client_result res = {.status = h->status, .endpoint = i};
    if (h->status == 0) {
        res.body = body;
        res.body_len = len;
        if (h->flags & MC_PROTO_FLAG_MORE) {
            uint64_t now = mc_mono_ms();
            res.more = true;
            res.message = res.leader_addr = res.version_id = "";
            /* A stream in progress is alive: push its deadline out. */
            dl_remove(c, r);
            r->deadline_ms = now + c->opts.request_timeout_ms;
            dl_insert(c, r);
            c->callbacks++;
            if (r->cb) {
                r->cb(r->arg, &res);
            }
            return;
        }
        if (r->is_write && r->pin < 0) {
            /* Only the leader commits a write: where one succeeded is where the next go
             * (before, with no leader named, each new write met a follower first). Not a
             * session registration: a wedged member may still answer those (client_rotation
             * writes_leave_a_silent_first_member). */
            set_leader(c, i);
        }
        complete(c, r, &res);
        return;
    }
    uint64_t now = mc_mono_ms(); /* errors only: a success needs no clock read */
    struct mc_proto_error err;
    mc_proto_error_decode(body, len, &err);
    res.message = err.message.ptr;
    res.leader_id = err.leader_id;
    res.leader_addr = err.leader_addr.ptr;
    res.delete_marker = (err.flags & MC_PROTO_ERR_DELETE_MARKER) != 0;
    res.version_id = err.version_id.ptr;
    res.body = err.result;
    res.body_len = err.result_len;
    if (r->is_write && h->status == MC_ENOSESSION && r->sends > 1) {
        /* The session expired (or was dropped) after an earlier attempt went out: that attempt
         * may have been applied and its cached result expired with the session, so a resend
         * under a fresh session could apply the write twice (thesis §6.3). Outcome unknown. */
        res.outcome_unknown = true;
        res.message = "session expired after an earlier attempt: the write may have been applied";
        complete(c, r, &res);
        return;
    }
    if (r->is_write && h->status == MC_ENOSESSION && r->lane >= 0 && now < r->deadline_ms) {
        /* The session expired on the cluster (idle past its TTL) and this was the only attempt:
         * nothing was applied under it, so take a fresh session and seq. */
        struct lane *l = &c->lanes[r->lane];
        if (!l->registering) {
            l->session_id = 0;
        }
        lane_release(c, r);
        rl_remove(r);
        r->state = REQ_WAIT_SESSION;
        r->ep = -1;
        rl_push(&c->wait_session, r);
        lane_assign_waiting(c, now);
        return;
    }
    if (r->is_write && h->status == MC_ETIMEOUT) {
        /* The server's commit wait expired: the entry was proposed and may still commit. */
        r->maybe_applied = true;
        if (r->lane >= 0 && now < r->deadline_ms && !c->opts.no_retry) {
            /* Resend under the same (session, seq): answered from the session's result cache
             * if it committed, applied once if it did not (thesis §6.3). */
            requeue(c, r, now + backoff_ms(c, ++r->attempts));
            return;
        }
    }
    bool pinned = r->pin >= 0;
    if (retriable(h->status) && !(pinned && h->status == MC_ENOTLEADER) && now < r->deadline_ms &&
        !c->opts.no_retry) {
        uint64_t at = now + backoff_ms(c, ++r->attempts);
        if (h->status == MC_ENOTLEADER) {
            int li = -1;
            if (err.leader_addr.len > 0) {
                li = learn_leader(c, err.leader_addr.ptr, err.leader_addr.len, now);
            } else {
                set_leader(c, -1);
            }
            if (li >= 0 && li != i && !r->redirected) {
                /* A known new leader: go at once, but once per request: two members naming
                 * each other (stale views during an election) must not make us spin. */
                r->redirected = true;
                at = now;
            }
        }
        requeue(c, r, at);
        return;
    }
    if (r->maybe_applied && (retriable(h->status) || h->status == MC_ETIMEOUT)) {
        /* This answer says only that this attempt was not applied (or not yet): an earlier
         * one, or this one still in the log, may have been. Any other error is the write's
         * own result (a resend under the same seq gets the cached one). */
        res.outcome_unknown = true;
    }
    complete(c, r, &res);
}

static int grow_rbuf(struct ep *e, size_t need)
{
    if (need <= e->rcap) {
        return 0;
    }
    size_t cap = e->rcap ? e->rcap : READ_INITIAL_BYTES;
    while (cap < need) {
        cap *= 2;
    }
    if (cap > MC_PROTO_MAX_FRAME_BYTES) {
        cap = MC_PROTO_MAX_FRAME_BYTES;
    }
    uint8_t *p = realloc(e->rbuf, cap);
    if (!p) {
        return MC_ENOMEM;
    }
    e->rbuf = p;
    e->rcap = cap;
    return 0;
}

/* Drop the frames before e->rpos (dispatched). */
static void rbuf_compact(struct ep *e)
{
    assert(e->rpos <= e->rlen);
    if (e->rpos == 0) {
        return; /* nothing dispatched (rbuf may still be NULL) */
    }
    memmove(e->rbuf, e->rbuf + e->rpos, e->rlen - e->rpos);
    e->rlen -= e->rpos;
    e->rpos = 0;
}

/* Whether endpoint e holds a whole reply frame not yet dispatched. */
static bool ep_has_frame(const struct ep *e)
{
    size_t left = e->rlen - e->rpos;
    return e->state == EP_UP && left >= MC_PROTO_HEADER_BYTES &&
           left >= (size_t)mc_get_u32le(e->rbuf + e->rpos) + 4;
}

/* Dispatch the whole frames buffered after e->rpos. False when the endpoint failed (or a callback
 * closed it). The position lives in e, read again after every callback: a callback that drives
 * the client (mc_client_poll) may read this endpoint meanwhile, dispatching frames and moving or
 * growing the buffer. */
static bool ep_dispatch(struct mc_client *c, int i)
{
    struct ep *e = &c->eps[i];
    while (e->state == EP_UP && e->rlen - e->rpos >= MC_PROTO_HEADER_BYTES) {
        struct mc_proto_header h;
        mc_proto_header_get(e->rbuf + e->rpos, &h);
        if (mc_proto_header_check(&h) != 0 || !(h.op & MC_PROTO_REPLY_BIT)) {
            ep_fail(c, i, "malformed reply");
            return false;
        }
        size_t frame = (size_t)h.length + 4, at = e->rpos;
        if (e->rlen - at < frame) {
            break;
        }
        e->rpos = at + frame; /* dispatched before its callback runs */
        on_frame(c, i, &h, e->rbuf + at + MC_PROTO_HEADER_BYTES, frame - MC_PROTO_HEADER_BYTES);
    }
    return e->state == EP_UP;
}

static void ep_read_frames(struct mc_client *c, int i)
{
    struct ep *e = &c->eps[i];
    for (int k = 0; k < READS_PER_EVENT && e->state == EP_UP; k++) {
        /* Frames an outer read buffered and has not dispatched yet (this read is nested in one
         * of its callbacks) go first: they arrived before anything read now, and an error or
         * EOF below must not drop them. */
        if (!ep_dispatch(c, i)) {
            return;
        }
        rbuf_compact(e);
        if (grow_rbuf(e, READ_INITIAL_BYTES) != 0) {
            ep_fail(c, i, "out of memory");
            return;
        }
        if (e->rlen >= MC_PROTO_HEADER_BYTES) {
            size_t need = (size_t)mc_get_u32le(e->rbuf) + 4;
            if (need <= MC_PROTO_MAX_FRAME_BYTES && grow_rbuf(e, need) != 0) {
                ep_fail(c, i, "out of memory");
                return;
            }
        }
        size_t space = e->rcap - e->rlen;
        assert(space > 0);
        ssize_t n = ep_recv(c, i, e->rbuf + e->rlen, space);
        if (n == 0) {
            ep_fail(c, i, "closed by peer");
            return;
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                ep_fail(c, i, strerror(errno));
            }
            return;
        }
        e->rlen += (size_t)n;
        if (!ep_dispatch(c, i)) {
            return;
        }
        rbuf_compact(e);
        if ((size_t)n < space) {
            /* A short read: the socket is drained. */
            return;
        }
    }
}

/* Read and dispatch endpoint i's replies; mc_client_rx_ns holds while their callbacks run. */
static void ep_read(struct mc_client *c, int i)
{
    uint64_t outer = c->rx_ns; /* a callback may drive the client again (mc_client_poll) */
    c->rx_ns = 0;
    ep_read_frames(c, i);
    c->rx_ns = outer;
}

/* ---- timers ---- */

/* A timed-out request's message: base, and the likely cause when there is one (a TLS failure,
 * the leader's name not resolved). */
static const char *timeout_message(struct mc_client *c, const struct req *r, const char *base)
{
    char lk[256] = "";
    if (c->leader_lookup >= 0) {
        snprintf(lk, sizeof(lk), "leader address %s: name lookup still in progress",
                 c->lookups[c->leader_lookup].addr);
    } else if (c->lookup_error[0] &&
               c->lookup_error_ms + c->opts.request_timeout_ms >= r->deadline_ms) {
        snprintf(lk, sizeof(lk), "%s", c->lookup_error); /* failed during this request */
    }
    if (!c->tls_error[0] && !lk[0]) {
        return base;
    }
    /* A TLS failure retries like any connection loss (another member may be fine), and so
     * does a leader hint that does not resolve (the leader may move): each is the likely
     * cause. */
    snprintf(c->timeout_msg, sizeof(c->timeout_msg), "%s (%s%s%s%s)", base,
             c->tls_error[0] ? "TLS: " : "", c->tls_error, c->tls_error[0] && lk[0] ? "; " : "",
             lk);
    return c->timeout_msg;
}

static void run_timers(struct mc_client *c, uint64_t now)
{
    lookups_poll(c, now);
    while (c->dhead && c->dhead->deadline_ms <= now) {
        struct req *r = c->dhead;
        if (r->state == REQ_FAILED) {
            fail_deliver(c, r); /* a callback that drives the client: c->dhead is read again */
            continue;
        }
        struct mc_client_result res = {.status = MC_ETIMEOUT, .endpoint = -1};
        res.outcome_unknown = r->is_write && r->sent_once;
        res.message = r->sent_once ? "no reply before the deadline"
                                   : "no reachable endpoint before the deadline";
        if ((r->lin_read || r->probe || r->is_write) && r->ep >= 0 && r->ep == c->leader_ep) {
            /* A leader that went silent without closing the connection: reads and writes
             * rotate again and the next LEADER request (sent now, elsewhere) finds the new one
             * (test client_rotation/writes_leave_a_recorded_leader_that_went_silent). */
            set_leader(c, -1);
            c->probe_next_ms = 0;
        }
        res.message = timeout_message(c, r, res.message);
        complete(c, r, &res);
    }
    for (int i = 0; i < c->n_eps; i++) {
        struct ep *e = &c->eps[i];
        if (e->state == EP_CONNECTING && e->connect_deadline_ms <= now) {
            ep_fail(c, i, "connect timeout");
        }
    }
    /* Retries that are due (a bounded pass: route() may requeue at the tail). route runs no
     * callback (no_retry's failures are stored, fail_final), so nothing but r moves and next
     * stays valid. */
    size_t n = c->retry.n;
    struct req *r = c->retry.head;
    uint64_t cbs = c->callbacks;
    while (r && n-- > 0) {
        struct req *next = r->qnext;
        if (r->retry_at_ms <= now) {
            route(c, r, now);
            assert(c->callbacks == cbs);
        }
        r = next;
    }
    (void)cbs;
}

static uint64_t next_timer(const struct mc_client *c, uint64_t now)
{
    uint64_t t = UINT64_MAX;
    for (int k = 0; k < MAX_LOOKUPS; k++) {
        if (c->lookups[k].job) {
            t = now + LOOKUP_POLL_MS; /* a lookup thread has no fd to poll */
        }
    }
    if (c->dhead && c->dhead->deadline_ms < t) {
        t = c->dhead->deadline_ms; /* not in place of a lookup's poll above */
    }
    for (const struct req *r = c->retry.head; r; r = r->qnext) {
        if (r->retry_at_ms < t) {
            t = r->retry_at_ms;
        }
    }
    for (int i = 0; i < c->n_eps; i++) {
        if (c->eps[i].state == EP_CONNECTING && c->eps[i].connect_deadline_ms < t) {
            t = c->eps[i].connect_deadline_ms;
        }
    }
    return t;
}

static void flush_all(struct mc_client *c)
{
    for (int i = 0; i < c->n_eps; i++) {
        if (c->eps[i].state == EP_UP && ep_wants_write(&c->eps[i])) {
            ep_flush(c, i);
        }
    }
    if (c->rr_used) {
        c->rr_used = false;
        c->rr++; /* the next burst of reads goes to the next member */
    }
}

static void handle_event(struct mc_client *c, int i, short revents)
{
    struct ep *e = &c->eps[i];
    if (e->state == EP_CONNECTING) {
        if (!(revents & (POLLOUT | POLLERR | POLLHUP))) {
            return;
        }
        int err = 0;
        socklen_t sl = sizeof(err);
        getsockopt(e->fd, SOL_SOCKET, SO_ERROR, &err, &sl);
        if (err != 0) {
            ep_fail(c, i, strerror(err));
            return;
        }
        e->state = EP_UP;
    }
    if (e->state == EP_UP && (revents & POLLOUT)) {
        if (ep_flush(c, i) != 0) {
            return;
        }
    }
    if (e->state == EP_UP && (revents & (POLLIN | POLLERR | POLLHUP))) {
        ep_read(c, i);
    }
}

int mc_client_poll(struct mc_client *c, int timeout_ms)
{
    uint64_t start_cb = c->callbacks;
    uint64_t start = mc_mono_ms();
    for (;;) {
        uint64_t now = mc_mono_ms();
        run_timers(c, now);
        flush_all(c);
        /* Called from a reply callback, an endpoint may hold whole replies its outer read has
         * not dispatched yet: poll(2) cannot see them, so they go first. */
        for (int i = 0; i < c->n_eps && c->callbacks == start_cb; i++) {
            if (ep_has_frame(&c->eps[i])) {
                ep_read(c, i);
            }
        }
        if (c->callbacks > start_cb) {
            break;
        }
        if (mc_client_pending(c) == 0 && timeout_ms < 0) {
            break;
        }
        int64_t wait;
        if (timeout_ms < 0) {
            wait = INT32_MAX;
        } else {
            wait = (int64_t)(start + (uint64_t)timeout_ms) - (int64_t)now;
            if (wait < 0) {
                wait = 0;
            }
        }
        uint64_t t = next_timer(c, now);
        if (t != UINT64_MAX) {
            int64_t d = t > now ? (int64_t)(t - now) : 0;
            if (d < wait) {
                wait = d;
            }
        }
        struct pollfd fds[MC_CLIENT_MAX_ENDPOINTS];
        int map[MC_CLIENT_MAX_ENDPOINTS];
        int nfds = 0;
        for (int i = 0; i < c->n_eps; i++) {
            struct ep *e = &c->eps[i];
            if (e->fd < 0) {
                continue;
            }
            short ev = POLLIN;
            if (e->state == EP_CONNECTING || ep_wants_write(e)) {
                ev |= POLLOUT;
            }
            fds[nfds].fd = e->fd;
            fds[nfds].events = ev;
            fds[nfds].revents = 0;
            map[nfds++] = i;
        }
        int n = poll(fds, (nfds_t)nfds, (int)wait);
        if (n < 0 && errno != EINTR) {
            return MC_EIO;
        }
        for (int k = 0; k < nfds && n > 0; k++) {
            if (fds[k].revents && c->eps[map[k]].fd == fds[k].fd) {
                handle_event(c, map[k], fds[k].revents);
            }
        }
        /* A connection the events closed may have ended requests for good (no_retry stores
         * them with the deadline now): deliver them in this poll, not the next. */
        now = mc_mono_ms();
        bool due = c->dhead && c->dhead->deadline_ms <= now;
        if (c->callbacks > start_cb || due) {
            /* Run what the callbacks queued before returning. */
            run_timers(c, now);
            flush_all(c);
            if (c->callbacks > start_cb) {
                break;
            }
        }
        if (timeout_ms >= 0 && now >= start + (uint64_t)timeout_ms) {
            break;
        }
    }
    return (int)(c->callbacks - start_cb);
}

/* ---- external event loops ---- */

int mc_client_fd(const struct mc_client *c, int i, short *events, uint32_t *gen)
{
    assert(i >= 0 && i < c->n_eps);
    const struct ep *e = &c->eps[i];
    *gen = e->gen;
    *events = 0;
    if (e->fd < 0) {
        return -1;
    }
    *events = POLLIN;
    if (e->state == EP_CONNECTING || ep_wants_write(e)) {
        *events |= POLLOUT;
    }
    return e->fd;
}

int mc_client_handle(struct mc_client *c, int i, short revents)
{
    assert(i >= 0 && i < c->n_eps);
    uint64_t start_cb = c->callbacks;
    if (c->eps[i].fd >= 0 && revents) {
        handle_event(c, i, revents);
    }
    return (int)(c->callbacks - start_cb);
}

int mc_client_step(struct mc_client *c)
{
    uint64_t start_cb = c->callbacks;
    run_timers(c, mc_mono_ms());
    flush_all(c);
    return (int)(c->callbacks - start_cb);
}

/* ---- submission ---- */

int mc_client_submit(struct mc_client *c, const struct mc_proto_request *q, int pin,
                     mc_client_cb cb, void *arg)
{
    if (pin >= c->n_eps) {
        return MC_EINVAL;
    }
    struct req *r = req_alloc(c);
    if (!r) {
        return MC_ELIMIT;
    }
    struct mc_proto_request qq = *q;
    qq.request_id = req_id(r);
    int rc = mc_proto_request_encode(&r->frame, &qq);
    if (rc != 0) {
        r->state = REQ_QUEUED; /* req_free expects a live request */
        req_free(c, r);
        return rc;
    }
    r->op = q->op;
    const struct mc_proto_read_opts *ro = mc_proto_request_ro(q);
    r->lin_read = ro && ro->consistency == MC_CONSISTENCY_LINEARIZABLE;
    r->pin = (int8_t)pin;
    r->cb = cb;
    r->arg = arg;
    req_start(c, r);
    return 0;
}

void mc_client_cancel_arg(struct mc_client *c, void *arg, int status)
{
    assert(status != 0);
    /* By index: a completion may register a session (req_alloc grows c->slots). */
    for (uint32_t i = 0; i < c->n_slots; i++) {
        struct req *r = c->slots[i];
        if (r->state == REQ_FREE || r->internal || r->probe || r->arg != arg) {
            continue;
        }
        struct mc_client_result res = {.status = status, .endpoint = -1};
        res.outcome_unknown = r->is_write && r->sent_once;
        res.message = "request abandoned: polling failed";
        complete(c, r, &res);
    }
}

/* Start a WRITE frame in r->frame; session, seq and acked_seq are patched in when a session
 * slot is assigned. */
static void write_head(struct req *r, uint32_t n_ops)
{
    struct mc_wbuf *w = &r->frame;
    mc_wbuf_reserve(w, MC_PROTO_HEADER_BYTES);
    mc_wbuf_u64(w, 0);
    mc_wbuf_u64(w, 0);
    mc_wbuf_u64(w, 0);
    mc_wbuf_u32(w, n_ops);
}

static int write_finish(struct mc_client *c, struct req *r, int rc, mc_client_cb cb, void *arg);

int mc_client_write_async(struct mc_client *c, uint32_t n_ops, const void *const *ops,
                          const size_t *lens, mc_client_cb cb, void *arg)
{
    if (n_ops == 0 || n_ops > MC_PROTO_MAX_BATCH_OPS) {
        return MC_EINVAL;
    }
    struct req *r = req_alloc(c);
    if (!r) {
        return MC_ELIMIT;
    }
    write_head(r, n_ops);
    for (uint32_t i = 0; i < n_ops; i++) {
        mc_proto_ops_put(&r->frame, ops[i], lens[i]);
    }
    return write_finish(c, r, 0, cb, arg);
}

/* Encode the op straight into the request's frame: no allocation once the slot is warm. */
int mc_client_op_async(struct mc_client *c, const struct mc_op *op, mc_client_cb cb, void *arg)
{
    struct req *r = req_alloc(c);
    if (!r) {
        return MC_ELIMIT;
    }
    write_head(r, 1);
    struct mc_wbuf *w = &r->frame;
    size_t len_off = w->len;
    mc_wbuf_u32(w, 0);
    size_t start = w->len;
    int rc = mc_op_encode(op, w);
    if (rc == 0 && !mc_wbuf_error(w)) {
        mc_wbuf_patch_u32(w, len_off, (uint32_t)(w->len - start));
    }
    return write_finish(c, r, rc, cb, arg);
}

static int write_finish(struct mc_client *c, struct req *r, int rc, mc_client_cb cb, void *arg)
{
    struct mc_wbuf *w = &r->frame;
    if (rc == 0) {
        rc = mc_wbuf_error(w);
    }
    if (rc == 0 && w->len > MC_PROTO_MAX_FRAME_BYTES) {
        rc = MC_ETOOLARGE;
    }
    if (rc != 0) {
        r->state = REQ_QUEUED;
        req_free(c, r);
        return rc;
    }
    struct mc_proto_header h = {
        .length = (uint32_t)(w->len - 4),
        .version = MC_PROTO_VERSION,
        .op = MC_REQ_WRITE,
        .request_id = req_id(r),
    };
    mc_proto_header_put(w->data, &h);
    r->op = MC_REQ_WRITE;
    r->is_write = true;
    r->cb = cb;
    r->arg = arg;
    req_start(c, r);
    return 0;
}

void mc_client_note_error(struct mc_client *c, const struct mc_client_result *r)
{
    struct mc_client_error *e = &c->last_error;
    e->status = r->status;
    e->outcome_unknown = r->outcome_unknown;
    e->delete_marker = r->delete_marker;
    snprintf(e->message, sizeof(e->message), "%s", r->message ? r->message : "");
    snprintf(e->version_id, sizeof(e->version_id), "%s", r->version_id ? r->version_id : "");
    e->leader_id = r->leader_id;
    snprintf(e->leader_addr, sizeof(e->leader_addr), "%s", r->leader_addr ? r->leader_addr : "");
}
