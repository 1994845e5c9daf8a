/* test_engine_gen.h: seeded random op generator shared by the determinism and crash tests. */
#ifndef TEST_ENGINE_GEN_H
#define TEST_ENGINE_GEN_H

#include "metacenter/engine.h"
#include "util/rand.h"

#include <stdio.h>
#include <string.h>

struct gen {
    struct mc_rand r;
    int64_t time_ns;
    uint64_t vid_counter;
    uint64_t sessions[8];
    uint64_t session_seq[8];   /* highest seq issued */
    uint64_t session_acked[8]; /* acked_seq the client claims */
    int n_sessions;
    uint64_t n_registered;
};

static const char *gen_buckets[] = {"b-one", "b-two", "b-ver"};

static inline void gen_init(struct gen *g, uint64_t seed)
{
    memset(g, 0, sizeof(*g));
    mc_rand_seed(&g->r, seed);
    g->time_ns = 1700000000000000000LL;
}

static inline void gen_key(struct gen *g, char *out, size_t n)
{
    uint64_t k = mc_rand_below(&g->r, 300);
    if (k % 3 == 0) {
        snprintf(out, n, "dir%llu/obj-%llu", (unsigned long long)(k % 7), (unsigned long long)k);
    } else {
        snprintf(out, n, "obj-%llu", (unsigned long long)k);
    }
}

static inline void gen_vid(struct gen *g, char out[17])
{
    mc_version_id_make(out, g->time_ns, ++g->vid_counter);
}

/* A plain (non-session, non-atomic) op. */
static inline void gen_plain(struct gen *g, struct mc_op *op)
{
    char key[64], vid[17];
    const char *b = gen_buckets[mc_rand_below(&g->r, 3)];
    uint64_t t = mc_rand_below(&g->r, 100);
    g->time_ns += 1 + (int64_t)mc_rand_below(&g->r, 1000);
    gen_key(g, key, sizeof(key));
    gen_vid(g, vid);
    if (t < 55) {
        struct mc_object_meta m = {0};
        char etag[32];
        snprintf(etag, sizeof(etag), "etag-%llu", (unsigned long long)mc_rand_below(&g->r, 1000));
        m.etag = etag;
        m.size = mc_rand_below(&g->r, 1 << 20);
        mc_op_put(op, b, key, vid, g->time_ns, &m);
        if (mc_rand_chance(&g->r, 1, 10)) {
            op->if_none_match_star = true;
        }
        if (mc_rand_chance(&g->r, 1, 10)) {
            op->if_match = strdup(etag);
        }
    } else if (t < 75) {
        mc_op_delete(op, b, key, NULL, vid, g->time_ns);
    } else if (t < 82) {
        /* delete a (maybe existing) version by an id made earlier */
        char old[17];
        mc_version_id_make(old, g->time_ns, mc_rand_below(&g->r, g->vid_counter + 1));
        mc_op_delete(op, b, key, mc_rand_chance(&g->r, 1, 4) ? "null" : old, vid, g->time_ns);
    } else if (t < 88) {
        struct mc_object_meta m = {0};
        mc_object_meta_add_user(&m, "tag", key);
        m.content_type = strdup("text/plain");
        mc_op_update_meta(op, b, key, NULL, MC_UPDATE_USER_META | MC_UPDATE_CONTENT_TYPE, &m,
                          g->time_ns);
        mc_object_meta_clear(&m);
    } else if (t < 92) {
        mc_op_bucket_versioning(
            op, b, mc_rand_chance(&g->r, 1, 2) ? MC_VERSIONING_ENABLED : MC_VERSIONING_SUSPENDED);
    } else if (t < 96) {
        mc_op_bucket_create(
            op, b, mc_rand_chance(&g->r, 1, 2) ? MC_VERSIONING_ENABLED : MC_VERSIONING_UNVERSIONED,
            g->time_ns);
    } else {
        mc_op_bucket_delete(op, b);
    }
}

/* Any op, including atomic batches, session registration and session-carrying ops. */
static inline void gen_op(struct gen *g, struct mc_op *op)
{
    uint64_t t = mc_rand_below(&g->r, 100);
    if (t < 4) {
        struct mc_op subs[4];
        uint32_t n = 1 + (uint32_t)mc_rand_below(&g->r, 4);
        for (uint32_t i = 0; i < n; i++) {
            gen_plain(g, &subs[i]);
        }
        mc_op_atomic(op, subs, n);
        return;
    }
    if (t < 6) {
        g->time_ns += 1000;
        mc_op_session_register(op, g->time_ns);
        return;
    }
    gen_plain(g, op);
    if (t < 30 && g->n_sessions) {
        int s = (int)mc_rand_below(&g->r, (uint64_t)g->n_sessions);
        op->session_id = g->sessions[s];
        uint64_t *hi = &g->session_seq[s], *acked = &g->session_acked[s];
        if (*hi && mc_rand_chance(&g->r, 1, 5)) {
            /* A retry or a late (out-of-order) seq: cached, applied now, or already acked. */
            op->seq = *hi - mc_rand_below(&g->r, *hi < 4 ? *hi : 4);
        } else {
            /* Sometimes skip one: it may arrive later, as a pipelined retry would. */
            *hi += mc_rand_chance(&g->r, 1, 8) ? 2 : 1;
            op->seq = *hi;
        }
        if (*hi > 3 && mc_rand_chance(&g->r, 1, 4)) {
            *acked = *hi - 3;
        }
        op->acked_seq = *acked < op->seq ? *acked : op->seq - 1;
    }
}

/* Record a registered session (called by tests from the result). */
static inline void gen_session(struct gen *g, uint64_t id)
{
    if (!id) {
        return;
    }
    /* A ring of the 8 newest sessions (older ones may have expired). */
    int slot = (int)(g->n_registered++ % 8);
    g->sessions[slot] = id;
    g->session_seq[slot] = 0;
    g->session_acked[slot] = 0;
    if (g->n_sessions < 8) {
        g->n_sessions++;
    }
}

#endif
