/* log.h: structured log lines (ts=... level=... node=... msg=... key=value), text or JSON. */
#ifndef MC_UTIL_LOG_H
#define MC_UTIL_LOG_H

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

#define MC_DEBUG(msg, ...) mc_log(MC_LOG_DEBUG, msg, __VA_ARGS__)
#define MC_INFO(msg, ...) mc_log(MC_LOG_INFO, msg, __VA_ARGS__)
#define MC_WARN(msg, ...) mc_log(MC_LOG_WARN, msg, __VA_ARGS__)
#define MC_ERROR(msg, ...) mc_log(MC_LOG_ERROR, msg, __VA_ARGS__)

#endif
