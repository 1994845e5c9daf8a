/* histogram.h: log-bucketed latency histogram (≤ 6.25% relative error), fixed size, mergeable. */
#ifndef MC_UTIL_HISTOGRAM_H
#define MC_UTIL_HISTOGRAM_H

#include <stdint.h>

/* 64 powers of two × 16 linear sub-buckets: covers all uint64 values. */
#define MC_HIST_SUB_BITS 4
#define MC_HIST_SUB      (1 << MC_HIST_SUB_BITS)
#define MC_HIST_BUCKETS  (64 * MC_HIST_SUB)

struct mc_histogram {
    uint64_t counts[MC_HIST_BUCKETS];
    uint64_t total;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
};

void mc_hist_reset(struct mc_histogram *h);
void mc_hist_record(struct mc_histogram *h, uint64_t value);
void mc_hist_merge(struct mc_histogram *into, const struct mc_histogram *from);
/* Value at quantile q in [0,1] (upper edge of its bucket, clamped to max); 0 when empty. */
uint64_t mc_hist_quantile(const struct mc_histogram *h, double q);
/* Count of recorded values ≤ v (for Prometheus cumulative buckets; exact at bucket edges). */
uint64_t mc_hist_count_le(const struct mc_histogram *h, uint64_t v);

#endif
