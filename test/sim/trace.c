/* trace.c: event trace with an order-sensitive digest and a ring of recent lines. */
#include "trace.h"

#include "util/checksum.h"

#include <stdarg.h>
#include <string.h>

void sim_trace_init(struct sim_trace *t, FILE *verbose)
{
    memset(t, 0, sizeof(*t));
    t->digest = 0xcbf29ce484222325ull;
    t->verbose = verbose;
}

void sim_trace(struct sim_trace *t, uint64_t now_ms, const char *fmt, ...)
{
    char *line = t->ring[t->lines % SIM_TRACE_RING];
    int n = snprintf(line, SIM_TRACE_LINE_BYTES, "%llu.%03llu ",
                     (unsigned long long)(now_ms / 1000), (unsigned long long)(now_ms % 1000));
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && n < SIM_TRACE_LINE_BYTES) {
        vsnprintf(line + n, SIM_TRACE_LINE_BYTES - (size_t)n, fmt, ap);
    }
    va_end(ap);
    size_t len = strnlen(line, SIM_TRACE_LINE_BYTES);
    /* Chain each line's hash into the digest so order matters, not just the set of lines. */
    t->digest = mc_checksum64_seed(line, len, t->digest);
    t->lines++;
    if (t->verbose) {
        fprintf(t->verbose, "%s\n", line);
    }
}

void sim_trace_dump_tail(const struct sim_trace *t, FILE *f, unsigned n)
{
    if (n > SIM_TRACE_RING) {
        n = SIM_TRACE_RING;
    }
    if (n > t->lines) {
        n = (unsigned)t->lines;
    }
    for (uint64_t i = t->lines - n; i < t->lines; i++) {
        fprintf(f, "  %s\n", t->ring[i % SIM_TRACE_RING]);
    }
}

void sim_trace_bin(struct sim_trace *t, const void *data, size_t len)
{
    t->digest = mc_checksum64_seed(data, len, t->digest);
}
