/* log.c: structured log lines to stderr, one write(2) per line. */
#include "util/log.h"
#include "metacenter/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static enum mc_log_level log_level = MC_LOG_INFO;
static enum mc_log_format log_format = MC_LOG_TEXT;
static uint64_t log_node;

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void mc_log_set_level(enum mc_log_level level)
{
    log_level = level;
}

enum mc_log_level mc_log_get_level(void)
{
    return log_level;
}

void mc_log_set_format(enum mc_log_format format)
{
    log_format = format;
}

void mc_log_set_node(uint64_t node_id)
{
    log_node = node_id;
}

int mc_log_parse_level(const char *s, enum mc_log_level *out)
{
    for (int i = 0; i <= MC_LOG_OFF; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum mc_log_level)i;
            return 0;
        }
    }
    return MC_EINVAL;
}

/* Append text, escaping for JSON when asked; never overflows. */
static size_t append(char *buf, size_t len, size_t cap, const char *s, int json)
{
    for (; *s && len + 7 < cap; s++) {
        if (json && (*s == '"' || *s == '\\')) {
            buf[len++] = '\\';
        }
        if (json && (unsigned char)*s < 0x20) {
            len += (size_t)snprintf(buf + len, cap - len, "\\u%04x", (unsigned char)*s);
            continue;
        }
        buf[len++] = *s;
    }
    return len;
}

void mc_log(enum mc_log_level level, const char *msg, const char *fmt, ...)
{
    if (level < log_level || level >= MC_LOG_OFF) {
        return;
    }
    enum { LINE_MAX_BYTES = 4096 };
    char tail[LINE_MAX_BYTES / 2];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof(tail), fmt, ap);
    va_end(ap);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[96];
    snprintf(when, sizeof(when), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);

    char line[LINE_MAX_BYTES];
    size_t len;
    if (log_format == MC_LOG_JSON) {
        len = (size_t)snprintf(line, sizeof(line),
                               "{\"ts\":\"%s\",\"level\":\"%s\",\"node\":%llu,\"msg\":\"", when,
                               level_names[level], (unsigned long long)log_node);
        len = append(line, len, sizeof(line), msg, 1);
        len = append(line, len, sizeof(line), "\",\"detail\":\"", 0);
        len = append(line, len, sizeof(line), tail, 1);
        len = append(line, len, sizeof(line), "\"}", 0);
    } else {
        len = (size_t)snprintf(line, sizeof(line), "ts=%s level=%s node=%llu msg=%s", when,
                               level_names[level], (unsigned long long)log_node, msg);
        if (len >= sizeof(line)) {
            len = sizeof(line) - 1;
        }
        if (tail[0]) {
            len = append(line, len, sizeof(line), " ", 0);
            len = append(line, len, sizeof(line), tail, 0);
        }
    }
    if (len >= sizeof(line) - 1) {
        len = sizeof(line) - 2;
    }
    line[len++] = '\n';
    ssize_t n = write(STDERR_FILENO, line, len);
    (void)n;
}

bool mc_log_limit_allow(struct mc_log_limit *l, uint64_t now_ms, uint64_t *suppressed_out)
{
    /* A clock read before last_ms (another clock by mistake) counts as "long ago": a line too
     * many beats a line never written again. */
    if (l->logged && now_ms >= l->last_ms && now_ms - l->last_ms < MC_LOG_LIMIT_MS) {
        l->suppressed++;
        return false;
    }
    if (suppressed_out) {
        *suppressed_out = l->suppressed;
    }
    l->logged = true;
    l->last_ms = now_ms;
    l->suppressed = 0;
    return true;
}
