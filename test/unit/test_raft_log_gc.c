/* test_raft_log_gc.c: the one-walk raft-log GC (sn_compact_point) against the walks it replaced. */
#include <criterion/criterion.h>

#include "raft/raft_int.h"
#include "raft_test_util.h"

#include <inttypes.h>
#include <string.h>

/*
 * The reference: session 12's tail_start and catch_up_start from src/raft/snapshot.c, verbatim
 * but for their names, composed as mc_raft_snapshot_taken composed them. They returned a point
 * that may lie below log.offset (nothing to drop); the caller compacted only above it, so the
 * point they stand for is the larger of the two.
 */
static uint64_t ref_tail_start(const struct mc_raft *r, uint64_t index, uint64_t *tail_bytes)
{
    uint64_t keep = r->cfg.snapshot_keep_entries;
    uint64_t upto = index > keep ? index - keep : 0;
    uint64_t first = upto > r->log.offset ? upto : r->log.offset;
    uint64_t bytes = 0;
    for (uint64_t i = index; i > first; i--) {
        bytes += log_at(&r->log, i)->len;
        if (bytes > r->cfg.snapshot_keep_bytes && i < index) {
            *tail_bytes = bytes - log_at(&r->log, i)->len;
            return i;
        }
    }
    *tail_bytes = bytes;
    return upto;
}

static uint64_t ref_catch_up_start(const struct mc_raft *r, uint64_t upto, uint64_t bytes)
{
    if (r->role != MC_RAFT_LEADER) {
        return upto;
    }
    uint64_t need = upto;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        const struct progress *p = &r->prs[i];
        if (p->id != r->id && p->state != MC_RAFT_PROGRESS_SNAPSHOT && p->match < need) {
            need = p->match;
        }
    }
    while (upto > need && upto > r->log.offset) {
        bytes += log_at(&r->log, upto)->len;
        if (bytes > r->cfg.catch_up_keep_bytes) {
            break;
        }
        upto--;
    }
    return upto;
}

static uint64_t ref_compact_point(const struct mc_raft *r, uint64_t index)
{
    uint64_t tail_bytes = 0;
    uint64_t upto = ref_tail_start(r, index, &tail_bytes);
    upto = ref_catch_up_start(r, upto, tail_bytes);
    return upto > r->log.offset ? upto : r->log.offset;
}

/* xorshift64*: deterministic, so a failure names a case that can be replayed. */
static uint64_t rnd(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 2685821657736338717ull;
}

static uint64_t below(uint64_t *s, uint64_t n)
{
    return rnd(s) % n;
}

static uint64_t pick(uint64_t *s, const uint64_t *v, size_t n)
{
    return v[below(s, n)];
}

/* Payload sizes: many empty or tiny entries, some large, as a node's batches are. */
static uint32_t entry_len(uint64_t *s)
{
    static const uint64_t lens[] = {0, 1, 7, 30, 64, 100, 250, 1000};
    return (uint32_t)(below(s, 3) ? below(s, 120) : pick(s, lens, sizeof(lens) / sizeof(lens[0])));
}

/* A fresh log holding (offset, offset + n], entry lengths random, all NORMAL (the walk does not
 * look at entry types; keeping conf entries is mc_raft_snapshot_taken's, asserted there). */
static void fill_log(struct mc_raft *r, uint64_t *s, uint64_t offset, uint64_t n)
{
    static uint8_t payload[1000];
    log_reset(r, offset, 1);
    while (r->log.n_garbage) {
        log_free_garbage(r);
    }
    for (uint64_t i = 0; i < n; i++) {
        struct mc_raft_entry e = {offset + 1 + i, 1, MC_RAFT_ENTRY_NORMAL, entry_len(s), payload};
        cr_assert_eq(log_append(r, &e, 1), 0);
    }
}

/* Up to 6 other members (and ourselves, id 1) with random match indexes and states. */
static void set_members(struct mc_raft *r, uint64_t *s, uint64_t last)
{
    static const uint8_t states[] = {MC_RAFT_PROGRESS_PROBE, MC_RAFT_PROGRESS_REPLICATE,
                                     MC_RAFT_PROGRESS_REPLICATE, MC_RAFT_PROGRESS_SNAPSHOT};
    memset(r->prs, 0, sizeof(r->prs));
    r->n_prs = (uint32_t)below(s, 7) + 1;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        struct progress *p = &r->prs[i];
        p->id = i + 1;
        p->state = states[below(s, 4)];
        p->match = below(s, 4) ? below(s, last + 2) : last; /* match 0 and past last too */
    }
    r->prs[below(s, r->n_prs)].id = r->id; /* our own progress sits anywhere in the array */
}

/* The lowest match index among the members a leader waits for (for the coverage counts). */
static uint64_t slowest_match(const struct mc_raft *r)
{
    uint64_t m = UINT64_MAX;
    for (uint32_t i = 0; i < r->n_prs; i++) {
        const struct progress *p = &r->prs[i];
        if (p->id != r->id && p->state != MC_RAFT_PROGRESS_SNAPSHOT && p->match < m) {
            m = p->match;
        }
    }
    return m;
}

/* Member 1 of voters {1, 2, 3}; keep_entries/keep_bytes 0 take the defaults. */
static struct mc_raft *create_member_1_of_3(uint64_t keep_entries, uint64_t keep_bytes)
{
    struct mc_raft_config c = cfg3(1);
    c.snapshot_keep_entries = keep_entries;
    c.snapshot_keep_bytes = keep_bytes;
    struct mc_raft *r;
    cr_assert_eq(mc_raft_create(&c, &r), 0);
    return r;
}

/*
 * Same compaction point as the two walks for random logs and configurations: offsets, entry
 * sizes, tail count and byte caps, catch-up caps, roles, members' match indexes and snapshot
 * states. Also counts the cases where each rule decided, so the comparison is not vacuous.
 */
Test(raft_log_gc, one_walk_matches_the_tail_and_catch_up_rules)
{
    static const uint64_t counts[] = {1, 1, 2, 3, 5, 8, 20, 50, 5000};
    static const uint64_t caps[] = {0, 1, 50, 100, 300, 1000, 5000, UINT64_MAX};
    struct mc_raft *r = create_member_1_of_3(0, 0);
    uint8_t role = r->role;
    uint32_t n_prs = r->n_prs;
    struct progress prs[MC_RAFT_MAX_NODES];
    memcpy(prs, r->prs, sizeof(prs));

    uint64_t seed = 0x9e3779b97f4a7c15ull;
    unsigned by_count = 0, by_tail_bytes = 0, by_catch_up = 0, by_catch_up_cap = 0, none = 0;
    for (int it = 0; it < 50000; it++) {
        uint64_t s0 = seed;
        uint64_t offset = below(&seed, 4) ? below(&seed, 30) : 0;
        uint64_t n = below(&seed, 60);
        fill_log(r, &seed, offset, n);
        uint64_t index = offset + below(&seed, n + 1);
        r->cfg.snapshot_keep_entries =
            below(&seed, 2) ? pick(&seed, counts, 9) : 1 + below(&seed, n + 2);
        r->cfg.snapshot_keep_bytes = pick(&seed, caps, 8);
        r->cfg.catch_up_keep_bytes = pick(&seed, caps, 8);
        r->role = below(&seed, 4) ? MC_RAFT_LEADER : MC_RAFT_FOLLOWER;
        set_members(r, &seed, offset + n);

        uint64_t want = ref_compact_point(r, index);
        uint64_t got = sn_compact_point(r, index);
        cr_assert_eq(got, want,
                     "case %d (seed %#" PRIx64 "): log (%" PRIu64 ", %" PRIu64
                     "], snapshot at %" PRIu64 ", tail %" PRIu64 " entries / %" PRIu64
                     " B, catch-up %" PRIu64 " B, %s: compacts up to %" PRIu64
                     ", the two walks %" PRIu64,
                     it, s0, offset, offset + n, index, r->cfg.snapshot_keep_entries,
                     r->cfg.snapshot_keep_bytes, r->cfg.catch_up_keep_bytes,
                     r->role == MC_RAFT_LEADER ? "leader" : "follower", got, want);
        cr_assert(got >= offset && (got < index || got == offset), "case %d: point %" PRIu64, it,
                  got);

        /* Which rule ended the kept run, so the comparison is known to cover each. */
        uint64_t keep = r->cfg.snapshot_keep_entries;
        uint64_t tail_bytes = 0;
        uint64_t tail = ref_tail_start(r, index, &tail_bytes);
        if (got == offset) {
            none++;
        } else if (got < tail) {
            by_catch_up++;
            by_catch_up_cap += got > slowest_match(r); /* it stopped above the floor: the cap */
        } else if (tail == (index > keep ? index - keep : 0)) {
            by_count++;
        } else {
            by_tail_bytes++;
        }
    }
    cr_assert(by_count > 1000 && by_tail_bytes > 1000 && by_catch_up > 1000 &&
                  by_catch_up_cap > 100 && none > 1000,
              "cases: count %u, tail bytes %u, catch-up %u (%u), nothing dropped %u", by_count,
              by_tail_bytes, by_catch_up, by_catch_up_cap, none);

    r->role = role;
    r->n_prs = n_prs;
    memcpy(r->prs, prs, sizeof(prs));
    mc_raft_destroy(r);
}

/* Through the API: the entry at the snapshot index stays and the kept tail is (upto, index]. */
Test(raft_log_gc, snapshot_keeps_the_entry_at_its_index)
{
    struct mc_raft *r = create_member_1_of_3(1, 1);
    uint64_t seed = 42;
    fill_log(r, &seed, 0, 10);
    r->log.unstable = 11;
    r->log.persisted = 10;
    r->commit = 10;
    r->applied = 10;
    cr_assert_eq(mc_raft_snapshot_taken(r, 7, 1, NULL), 0);
    cr_assert_eq(r->log.offset, 6, "offset %" PRIu64, r->log.offset);
    cr_assert_not_null(log_at(&r->log, 7));
    cr_assert_eq(log_last_index(&r->log), 10);
    mc_raft_destroy(r);
}
