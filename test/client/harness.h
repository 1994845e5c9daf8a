/* harness.h: test servers for the client protocol: a libuv loop in a thread serving a handler
 * backed by the engine (single node, no Raft) or by a tiny fake store with fault switches. */
#ifndef MC_TEST_CLIENT_HARNESS_H
#define MC_TEST_CLIENT_HARNESS_H

#include <stdbool.h>
#include <stdint.h>

#include "net/client_server.h"

enum th_mode {
    TH_FAKE = 0, /* op records are opaque "key=value" strings; GET returns the value */
    TH_ENGINE,   /* the real engine in engine_dir (every op and read) */
};

struct th_opts {
    enum th_mode mode;
    const char *engine_dir;  /* TH_ENGINE: a fresh directory */
    uint64_t node_id;        /* default 1 */
    const char *redirect_to; /* writes get NotLeader(leader 2, this address) */
    bool redirect_unknown;   /* writes get NotLeader without a leader */
    int drop_after_apply;    /* the first N writes are applied, then the connection is closed
                                without a reply (a leader crashing before it answers) */
    bool expire_on_drop;     /* with drop_after_apply: the sessions known at a drop expire (their
                                writes then get NoSuchSession, as after a session-clock jump) */
    int timeout_writes;      /* the first N writes are applied, then answered Timeout "outcome
                                unknown" (a node whose commit wait expired: the entry was
                                proposed and may commit) */
    bool blackhole;          /* answer nothing but REGISTER_SESSION (the rest gets
                                ShuttingDown at stop) */
    uint32_t delay_every;    /* fake: every Nth request is answered 2 ms later (out of order) */
    bool answer_in_prepare;  /* fake: PINGs are answered from a prepare handle that runs before
                                the server's (as the node proposes its batch), and no 1 ms
                                timer keeps the loop awake */
    struct mc_client_server_opts srv; /* server limits */
};

struct th_server;

/* Start on 127.0.0.1:0 in a new thread. Returns 0 or a negative code. */
int th_start(const struct th_opts *o, struct th_server **out);
int th_port(const struct th_server *s);
/* "127.0.0.1:PORT" (static storage inside s). */
const char *th_addr(const struct th_server *s);
/* Writes applied (duplicates from retries excluded) and duplicates seen. */
uint64_t th_applied(const struct th_server *s);
uint64_t th_duplicates(const struct th_server *s);
/* Requests dispatched to the handler. */
uint64_t th_requests(const struct th_server *s);
/* From now on hold every request unanswered, connections kept open (a SIGSTOPped member). */
void th_set_wedged(struct th_server *s, bool wedged);
/* The server's counters now, read from another thread (plain counters: a torn read only
 * skews one by a little; tests poll them). */
void th_stats(const struct th_server *s, struct mc_client_server_stats *out);
/* Stop the server and join its thread; stats (may be NULL) gets the server's counters. */
void th_stop(struct th_server *s, struct mc_client_server_stats *stats);

/* Engine-backed dispatch (harness_engine.c). */
int th_engine_open(struct th_server *s, const char *dir, void **engine);
void th_engine_close(void *engine);
void th_engine_dispatch(void *engine, uint64_t node_id, const struct mc_client_request *r,
                        uint64_t *applied, uint64_t *duplicates);

#endif
