/* trace.h: the simulator's event trace: every event is one text line, hashed into a digest. */
#ifndef MC_SIM_TRACE_H
#define MC_SIM_TRACE_H

#include <stdint.h>
#include <stdio.h>

/* Lines kept for the failure report (the tail of the trace before the violation). */
#define SIM_TRACE_RING 256
/* Longest trace line kept; longer lines are truncated (the digest covers the truncated text). */
#define SIM_TRACE_LINE_BYTES 240

struct sim_trace {
    uint64_t digest; /* FNV-style fold of XXH3 line hashes: order-sensitive */
    uint64_t lines;
    FILE *verbose; /* when non-NULL every line is printed there as it happens */
    char ring[SIM_TRACE_RING][SIM_TRACE_LINE_BYTES];
};

void sim_trace_init(struct sim_trace *t, FILE *verbose);
/* Record one event at simulated time now_ms. */
void sim_trace(struct sim_trace *t, uint64_t now_ms, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Record a binary event (digest only; the caller prints its text when t->verbose is set). Used
 * for the message stream, so the digest is the same with and without --verbose. */
void sim_trace_bin(struct sim_trace *t, const void *data, size_t len);
/* Print the last `n` lines (at most SIM_TRACE_RING) to f. */
void sim_trace_dump_tail(const struct sim_trace *t, FILE *f, unsigned n);

#endif
