/* histogram.c: log-linear buckets: exact below 16, then 16 sub-buckets per power of two. */
#include "util/histogram.h"

#include <string.h>

static unsigned bucket_of(uint64_t v)
{
    if (v < MC_HIST_SUB) {
        return (unsigned)v;
    }
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = msb - MC_HIST_SUB_BITS;
    unsigned sub = (unsigned)(v >> shift) & (MC_HIST_SUB - 1);
    return (msb - MC_HIST_SUB_BITS + 1) * MC_HIST_SUB + sub;
}

/* Largest value that falls in bucket b. */
static uint64_t bucket_upper(unsigned b)
{
    if (b < MC_HIST_SUB) {
        return b;
    }
    unsigned group = b / MC_HIST_SUB; /* ≥ 1 */
    unsigned sub = b % MC_HIST_SUB;
    unsigned shift = group - 1;
    uint64_t base = ((uint64_t)(MC_HIST_SUB + sub)) << shift;
    if (shift >= 64 - MC_HIST_SUB_BITS - 1 && group == 64 - MC_HIST_SUB_BITS) {
        /* top group: avoid overflow past UINT64_MAX */
        return sub == MC_HIST_SUB - 1 ? UINT64_MAX : base + ((1ull << shift) - 1);
    }
    return base + ((1ull << shift) - 1);
}

void mc_hist_reset(struct mc_histogram *h)
{
    memset(h, 0, sizeof(*h));
}

void mc_hist_record(struct mc_histogram *h, uint64_t value)
{
    unsigned b = bucket_of(value);
    if (b >= MC_HIST_BUCKETS) {
        b = MC_HIST_BUCKETS - 1;
    }
    h->counts[b]++;
    if (h->total == 0 || value < h->min) {
        h->min = value;
    }
    if (value > h->max) {
        h->max = value;
    }
    h->total++;
    h->sum += value;
}

void mc_hist_merge(struct mc_histogram *into, const struct mc_histogram *from)
{
    if (from->total == 0) {
        return;
    }
    for (unsigned i = 0; i < MC_HIST_BUCKETS; i++) {
        into->counts[i] += from->counts[i];
    }
    if (into->total == 0 || from->min < into->min) {
        into->min = from->min;
    }
    if (from->max > into->max) {
        into->max = from->max;
    }
    into->total += from->total;
    into->sum += from->sum;
}

uint64_t mc_hist_quantile(const struct mc_histogram *h, double q)
{
    if (h->total == 0) {
        return 0;
    }
    if (q <= 0) {
        return h->min;
    }
    uint64_t rank = (uint64_t)(q * (double)h->total + 0.5);
    if (rank < 1) {
        rank = 1;
    }
    if (rank > h->total) {
        rank = h->total;
    }
    uint64_t seen = 0;
    for (unsigned i = 0; i < MC_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t up = bucket_upper(i);
            return up > h->max ? h->max : up;
        }
    }
    return h->max;
}

uint64_t mc_hist_count_le(const struct mc_histogram *h, uint64_t v)
{
    uint64_t n = 0;
    unsigned last = bucket_of(v);
    for (unsigned i = 0; i < MC_HIST_BUCKETS && i <= last; i++) {
        n += h->counts[i];
    }
    return n;
}
