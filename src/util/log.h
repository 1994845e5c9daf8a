/* log.h: structured log lines (ts=... level=... node=... msg=... key=value), text or JSON. */
#ifndef MC_UTIL_LOG_H
#define MC_UTIL_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum mc_log_level { MC_LOG_DEBUG = 0, MC_LOG_INFO, MC_LOG_WARN, MC_LOG_ERROR, MC_LOG_OFF };
enum mc_log_format { MC_LOG_TEXT = 0, MC_LOG_JSON };

void mc_log_set_level(enum mc_log_level level);
enum mc_log_level mc_log_get_level(void);
void mc_log_set_format(enum mc_log_format format);
void mc_log_set_node(uint64_t node_id);
/* Parse "debug|info|warn|error|off"; returns 0 or MC_EINVAL. */
int mc_log_parse_level(const char *s, enum mc_log_level *out);

/*
 * mc_log(level, msg, fmt, ...): msg is a short constant event name
 * ("leader_changed"); fmt/... render the key=value tail ("term=%llu id=%llu").
 * Written to stderr as one line, in one write(2) so lines from threads never interleave.
 */
void mc_log(enum mc_log_level level, const char *msg, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * At most one log line a second for an event that may repeat at any rate (a flood of refused
 * connections, a frame a peer resends on every tick): the log stays readable and cheap, and
 * the line that is written says how many were left out. Zero-initialise; one per event source
 * (a link, a listener), used from one thread.
 */
#define MC_LOG_LIMIT_MS 1000
struct mc_log_limit {
    uint64_t last_ms;    /* time of the last line allowed (valid once logged) */
    uint64_t suppressed; /* events refused since that line */
    bool logged;         /* a line was allowed before (a clock may read 0) */
};
/*
 * One event at now_ms (a monotonic ms clock, the same one on every call). true: log it; then
 * *suppressed_out (may be NULL) is the number of events not logged since the previous line.
 * false: a line went out less than MC_LOG_LIMIT_MS ago; the event is counted as suppressed.
 */
bool mc_log_limit_allow(struct mc_log_limit *l, uint64_t now_ms, uint64_t *suppressed_out);

#define MC_DEBUG(msg, ...) mc_log(MC_LOG_DEBUG, msg, __VA_ARGS__)
#define MC_INFO(msg, ...)  mc_log(MC_LOG_INFO, msg, __VA_ARGS__)
#define MC_WARN(msg, ...)  mc_log(MC_LOG_WARN, msg, __VA_ARGS__)
#define MC_ERROR(msg, ...) mc_log(MC_LOG_ERROR, msg, __VA_ARGS__)

#endif
