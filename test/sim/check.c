/* check.c: incremental checks of Election Safety, Log Matching and State Machine Safety. */
#include "check.h"

#include "util/checksum.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Open-addressing map from a (u64, u64) key to a u64 value; never shrinks (lives one seed). */
struct sim_kv {
    struct kv_slot {
        uint64_t a, b, v;
        bool used;
    } * slots;
    size_t cap, len;
};

static struct sim_kv *kv_new(void)
{
    struct sim_kv *m = calloc(1, sizeof(*m));
    assert(m);
    m->cap = 1024;
    m->slots = calloc(m->cap, sizeof(*m->slots));
    assert(m->slots);
    return m;
}

static void kv_free(struct sim_kv *m)
{
    if (m) {
        free(m->slots);
        free(m);
    }
}

static size_t kv_hash(uint64_t a, uint64_t b)
{
    uint64_t h = a * 0x9e3779b97f4a7c15ull ^ (b + 0x632be59bd9b4e019ull) * 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 29));
}

static struct kv_slot *kv_find(struct sim_kv *m, uint64_t a, uint64_t b)
{
    size_t i = kv_hash(a, b) & (m->cap - 1);
    while (m->slots[i].used && (m->slots[i].a != a || m->slots[i].b != b)) {
        i = (i + 1) & (m->cap - 1);
    }
    return &m->slots[i];
}

static void kv_grow(struct sim_kv *m)
{
    struct kv_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap *= 2;
    m->slots = calloc(m->cap, sizeof(*m->slots));
    assert(m->slots);
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].used) {
            *kv_find(m, old[i].a, old[i].b) = old[i];
        }
    }
    free(old);
}

/* Returns the existing value in *v and false, or inserts v and returns true. */
static bool kv_put_new(struct sim_kv *m, uint64_t a, uint64_t b, uint64_t *v)
{
    if ((m->len + 1) * 2 > m->cap) {
        kv_grow(m);
    }
    struct kv_slot *s = kv_find(m, a, b);
    if (s->used) {
        *v = s->v;
        return false;
    }
    *s = (struct kv_slot){a, b, *v, true};
    m->len++;
    return true;
}

void sim_check_init(struct sim_check *c)
{
    memset(c, 0, sizeof(*c));
    c->term_leader = kv_new();
    c->entry_chain = kv_new();
}

void sim_check_free(struct sim_check *c)
{
    kv_free(c->term_leader);
    kv_free(c->entry_chain);
    free(c->committed);
    memset(c, 0, sizeof(*c));
}

uint64_t sim_chain_next(uint64_t prev_chain, uint64_t index, uint64_t term, uint64_t payload_hash)
{
    uint64_t w[3] = {index, term, payload_hash};
    return mc_checksum64_seed(w, sizeof(w), prev_chain);
}

bool sim_check_fail(struct sim_check *c, const char *fmt, ...)
{
    if (c->violations++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
        va_end(ap);
    }
    return false;
}

bool sim_check_leader(struct sim_check *c, uint64_t term, uint32_t id)
{
    uint64_t v = id;
    if (!kv_put_new(c->term_leader, term, 0, &v) && v != id) {
        /* Raft §5.2: at most one leader can be elected in a given term. */
        return sim_check_fail(
            c, "ElectionSafety: nodes %" PRIu64 " and %u both leader in term %" PRIu64, v, id,
            term);
    }
    return true;
}

bool sim_check_log_entry(struct sim_check *c, uint32_t id, uint64_t index, uint64_t term,
                         uint64_t chain)
{
    uint64_t v = chain;
    if (!kv_put_new(c->entry_chain, index, term, &v) && v != chain) {
        /* Raft §5.3: same index and term => identical logs up to that index. */
        return sim_check_fail(c,
                              "LogMatching: node %u entry (index %" PRIu64 ", term %" PRIu64
                              ") has a different prefix than another node's",
                              id, index, term);
    }
    return true;
}

const struct sim_committed *sim_check_get_committed(const struct sim_check *c, uint64_t index)
{
    if (index == 0 || index > c->commit_max || index >= c->committed_cap) {
        return NULL;
    }
    const struct sim_committed *e = &c->committed[index];
    return e->chain ? e : NULL;
}

bool sim_check_committed(struct sim_check *c, uint32_t id, uint64_t node_term, uint64_t index,
                         uint64_t term, uint64_t chain, const char *how)
{
    assert(index > 0);
    if (index >= c->committed_cap) {
        size_t cap = c->committed_cap ? c->committed_cap : 1024;
        while (cap <= index) {
            cap *= 2;
        }
        struct sim_committed *n = realloc(c->committed, cap * sizeof(*n));
        assert(n);
        memset(n + c->committed_cap, 0, (cap - c->committed_cap) * sizeof(*n));
        c->committed = n;
        c->committed_cap = cap;
    }
    struct sim_committed *e = &c->committed[index];
    if (e->chain == 0 || node_term < e->commit_term) {
        e->commit_term = node_term;
    }
    if (e->chain == 0) {
        e->term = term;
        e->chain = chain;
        if (index > c->commit_max) {
            c->commit_max = index;
        }
        return true;
    }
    if (e->chain != chain) {
        /* Raft §5.4.3: no two servers apply (or commit) different entries at one index. */
        return sim_check_fail(c,
                              "StateMachineSafety: node %u %s index %" PRIu64 " term %" PRIu64
                              " but term %" PRIu64 " (or another prefix) was committed there",
                              id, how, index, term, e->term);
    }
    return true;
}

uint64_t sim_check_must_hold(const struct sim_check *c, uint64_t leader_term)
{
    /* An entry is committed no later than any entry after it, so walk down from the top keeping
     * the lowest commit term seen: the first index whose suffix-minimum is below leader_term. */
    uint64_t min_term = UINT64_MAX;
    for (uint64_t i = c->commit_max; i > 0; i--) {
        const struct sim_committed *e = &c->committed[i];
        if (e->chain && e->commit_term < min_term) {
            min_term = e->commit_term;
        }
        if (min_term < leader_term) {
            return i;
        }
    }
    return 0;
}
