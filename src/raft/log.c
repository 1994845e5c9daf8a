/* log.c: the in-memory Raft log: every entry after the last compaction point, payloads owned. */
#include "raft/raft_int.h"

#include <string.h>

int log_init(struct mc_raft *r, uint64_t offset, uint64_t offset_term)
{
    struct rlog *l = &r->log;
    memset(l, 0, sizeof(*l));
    l->offset = offset;
    l->offset_term = offset_term;
    l->unstable = offset + 1;
    l->persisted = offset;
    return 0;
}

static int garbage_push(struct mc_raft *r, void *p)
{
    struct rlog *l = &r->log;
    if (!p) {
        return 0;
    }
    if (ra_reserve(r, (void **)&l->garbage, &l->cap_garbage, l->n_garbage + 1, sizeof(void *))) {
        /* Cannot defer: nothing references it yet when no ready is outstanding, but be safe. */
        ra_set_err(r, MC_ENOMEM);
        return MC_ENOMEM;
    }
    l->garbage[l->n_garbage++] = p;
    return 0;
}

/*
 * Payloads dropped from the log are freed after the ready that may still point at them, at most
 * LOG_FREE_PER_ADVANCE per call: a compaction drops up to --snapshot-entries payloads at once
 * (~43K entries of ~6 KB at 40K writes/s), and freeing them in one go stalled the driver's event
 * loop for 25-50 ms at every snapshot (the p99.9 of issue 8's open-loop writes). Spread over the
 * following readies they cost ~0.1 ms each; the buffers live a few hundred ms longer.
 */
#define LOG_FREE_PER_ADVANCE 256

void log_free_garbage(struct mc_raft *r)
{
    struct rlog *l = &r->log;
    size_t n = l->n_garbage < LOG_FREE_PER_ADVANCE ? l->n_garbage : LOG_FREE_PER_ADVANCE;
    for (size_t i = 0; i < n; i++) {
        ra_free(r, l->garbage[--l->n_garbage]);
    }
}

void log_destroy(struct mc_raft *r)
{
    struct rlog *l = &r->log;
    for (size_t i = 0; i < l->n; i++) {
        ra_free(r, l->ents[i].data);
    }
    while (l->n_garbage) {
        log_free_garbage(r);
    }
    ra_free(r, l->garbage);
    ra_free(r, l->ents);
    memset(l, 0, sizeof(*l));
}

uint64_t log_last_index(const struct rlog *l)
{
    return l->offset + l->n;
}

uint64_t log_last_term(const struct rlog *l)
{
    return l->n ? l->ents[l->n - 1].term : l->offset_term;
}

uint64_t log_term(const struct rlog *l, uint64_t index)
{
    if (index == l->offset) {
        return l->offset_term;
    }
    if (index < l->offset || index > l->offset + l->n) {
        return 0;
    }
    return l->ents[index - l->offset - 1].term;
}

bool log_has_term(const struct rlog *l, uint64_t index)
{
    return index >= l->offset && index <= l->offset + l->n;
}

bool log_match(const struct rlog *l, uint64_t index, uint64_t term)
{
    return log_has_term(l, index) && log_term(l, index) == term;
}

struct mc_raft_entry *log_at(const struct rlog *l, uint64_t index)
{
    if (index <= l->offset || index > l->offset + l->n) {
        return NULL;
    }
    return &l->ents[index - l->offset - 1];
}

int log_append(struct mc_raft *r, const struct mc_raft_entry *e, size_t n)
{
    struct rlog *l = &r->log;
    if (n == 0) {
        return 0;
    }
    assert(e[0].index == log_last_index(l) + 1);
    int rc = ra_reserve(r, (void **)&l->ents, &l->cap, l->n + n, sizeof(*l->ents));
    if (rc) {
        ra_set_err(r, rc);
        return rc;
    }
    for (size_t i = 0; i < n; i++) {
        struct mc_raft_entry *d = &l->ents[l->n];
        assert(e[i].index == log_last_index(l) + 1);
        /* Terms never decrease along the log (Log Matching, §5.3). */
        assert(e[i].term >= log_last_term(l));
        *d = e[i];
        d->data = NULL;
        if (e[i].len) {
            d->data = ra_malloc(r, e[i].len);
            if (!d->data) {
                ra_set_err(r, MC_ENOMEM);
                return MC_ENOMEM;
            }
            memcpy(d->data, e[i].data, e[i].len);
        }
        l->bytes += e[i].len;
        l->n++;
    }
    return 0;
}

void log_truncate(struct mc_raft *r, uint64_t from)
{
    struct rlog *l = &r->log;
    assert(from > l->offset);
    while (log_last_index(l) >= from) {
        garbage_push(r, l->ents[l->n - 1].data);
        assert(l->bytes >= l->ents[l->n - 1].len);
        l->bytes -= l->ents[l->n - 1].len;
        l->n--;
    }
    if (l->unstable > from) {
        l->unstable = from;
    }
    if (l->persisted >= from) {
        l->persisted = from - 1;
    }
}

void log_compact(struct mc_raft *r, uint64_t upto)
{
    struct rlog *l = &r->log;
    if (upto <= l->offset) {
        return;
    }
    assert(upto <= log_last_index(l));
    assert(upto < l->unstable);
    size_t k = (size_t)(upto - l->offset);
    uint64_t t = log_term(l, upto);
    for (size_t i = 0; i < k; i++) {
        garbage_push(r, l->ents[i].data);
        assert(l->bytes >= l->ents[i].len);
        l->bytes -= l->ents[i].len;
    }
    memmove(l->ents, l->ents + k, (l->n - k) * sizeof(*l->ents));
    l->n -= k;
    l->offset = upto;
    l->offset_term = t;
}

void log_reset(struct mc_raft *r, uint64_t index, uint64_t term)
{
    struct rlog *l = &r->log;
    for (size_t i = 0; i < l->n; i++) {
        garbage_push(r, l->ents[i].data);
    }
    l->n = 0;
    l->bytes = 0;
    l->offset = index;
    l->offset_term = term;
    l->unstable = index + 1;
    l->persisted = index;
}

bool log_up_to_date(const struct rlog *l, uint64_t index, uint64_t term)
{
    uint64_t lt = log_last_term(l);
    return term > lt || (term == lt && index >= log_last_index(l));
}

uint64_t log_find_conflict(const struct rlog *l, const struct mc_raft_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!log_match(l, e[i].index, e[i].term)) {
            return e[i].index;
        }
    }
    return 0;
}

uint64_t log_find_conflict_by_term(const struct rlog *l, uint64_t index, uint64_t term)
{
    if (index > log_last_index(l)) {
        index = log_last_index(l);
    }
    while (index > l->offset && log_term(l, index) > term) {
        index--;
    }
    return index;
}
