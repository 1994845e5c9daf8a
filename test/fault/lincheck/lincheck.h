/* lincheck.h: linearizability checker for per-key register/append histories (Wing–Gong search). */
#ifndef MC_LINCHECK_H
#define MC_LINCHECK_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * History format, one JSON object per line (line order is the real-time order of events):
 *   {"process":P,"type":"invoke|ok|fail|info","f":"put|get|cas|append","key":"k",
 *    "value":"v","expected":"e","time_ns":T}
 * An invoke is followed later by its completion from the same process. get ok carries the value
 * read (null/absent = key missing; a JSON array of strings for append keys). cas writes value if
 * the current value equals expected (null/absent expected = key missing); ok = applied,
 * fail = not applied. fail ops are dropped; info ops (and invokes never completed) may take effect
 * at any point after their invoke, or never.
 */

/* Verdicts, also the exit codes of build/lincheck. */
enum mc_lincheck_verdict {
    MC_LINCHECK_LINEARIZABLE = 0,
    MC_LINCHECK_VIOLATION = 1,
    MC_LINCHECK_BAD_INPUT = 2,
    MC_LINCHECK_UNKNOWN = 3,
};

/* Limits of one check; zero fields take the defaults below. */
struct mc_lincheck_opts {
    size_t max_ops_per_key;   /* default 200000: beyond it the key is "unknown" */
    uint64_t time_limit_ms;   /* default 60000, for the whole check */
    size_t max_cache_entries; /* default 4M memo entries (~24 bytes each, x2 slack) */
};

#define MC_LINCHECK_DEFAULT_MAX_OPS_PER_KEY 200000u
#define MC_LINCHECK_DEFAULT_TIME_LIMIT_MS   60000u
#define MC_LINCHECK_DEFAULT_MAX_CACHE       (8u << 20)
#define MC_LINCHECK_MAX_LINE_BYTES          (1u << 20)
#define MC_LINCHECK_MAX_KEYS                (1u << 20)

struct mc_lincheck_report {
    enum mc_lincheck_verdict verdict;
    size_t ops;           /* completed-or-info operations kept for checking */
    size_t keys;          /* distinct keys */
    char failed_key[256]; /* first non-linearizable (or unknown) key, truncated */
    uint64_t elapsed_ns;
};

struct mc_lincheck_history;

int mc_lincheck_history_new(struct mc_lincheck_history **out);
void mc_lincheck_history_free(struct mc_lincheck_history *h);

/*
 * Add one history line (JSON text, no trailing newline needed). On bad input returns MC_EINVAL
 * and writes a message naming the line number into err.
 */
int mc_lincheck_add_line(struct mc_lincheck_history *h, const char *line, size_t len, char *err,
                         size_t err_len);

/* Load a whole JSONL file; MC_EINVAL with a message naming the line on bad input. */
int mc_lincheck_load_file(struct mc_lincheck_history *h, const char *path, char *err,
                          size_t err_len);

/*
 * Check the history. Writes "linearizable", "not linearizable" (with the failing window) or
 * "unknown" (with the reason) to out when out is non-NULL. Returns 0 (verdict in report) or
 * a negative MC_E* code (MC_ENOMEM).
 */
int mc_lincheck_check(struct mc_lincheck_history *h, const struct mc_lincheck_opts *opts, FILE *out,
                      struct mc_lincheck_report *report);

#endif
