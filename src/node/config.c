/* config.c: YAML config file for `metacenter serve`, mapped onto mc_node_options (docs/config.md).
 */
#include "node/config.h"
#include "http/server.h"
#include "metacenter/error.h"
#include "metacenter/raft.h"
#include "util/log.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* ------------------------------------------------------------------------------------------ */
/* A small tree built from libyaml events, so keys may come in any order and repeat-checks are */
/* easy. Bounded: MC_NODE_CONFIG_MAX_NODES nodes, MAX_DEPTH nesting, MAX_SCALAR bytes/scalar.  */
/* ------------------------------------------------------------------------------------------ */

enum ykind { Y_SCALAR, Y_MAP, Y_SEQ };

struct ynode {
    enum ykind kind;
    unsigned line; /* 1-based */
    int plain;     /* scalar written without quotes (so it may be a number, bool or null) */
    char *text;    /* scalar only, NUL-terminated, owned */
    size_t len;
    int first; /* first child index or -1; a map's children alternate key, value */
    int next;  /* next sibling index or -1 */
};

struct ytree {
    struct ynode *n;
    int count;
};

struct ctx {
    const char *file;
    char *err;
    size_t errlen;
    struct ytree t;
    struct mc_node_options o; /* working copy; copied out only on success */
    struct mc_node_config_warnings *warn;
    /* settings that need the whole file before they can be applied */
    int engine_type; /* -1 unset, 0 local, 1 replicated */
    unsigned engine_line;
    int node_id_seen;
    int peer_seen;
    int join_seen;
    unsigned join_line;
    int nodes_seen;
    unsigned nodes_line;
    struct mc_member_addr nodes[MC_MAX_MEMBERS];
    size_t nnodes;
    char log_dir[MC_PATH_MAX_BYTES];
    unsigned log_dir_line;
    char snapshot_dir[MC_PATH_MAX_BYTES];
    unsigned snapshot_dir_line;
};

static int fail(struct ctx *c, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct ctx *c, unsigned line, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (c->errlen) {
        if (line) {
            snprintf(c->err, c->errlen, "InvalidArgument: %s:%u: %s", c->file, line, msg);
        } else {
            snprintf(c->err, c->errlen, "InvalidArgument: %s: %s", c->file, msg);
        }
    }
    return MC_EINVAL;
}

static void warn(struct ctx *c, unsigned line, const char *key, const char *why)
{
    if (!c->warn) {
        MC_WARN("config_key_ignored", "file=%s line=%u key=%s reason=\"%s\"", c->file, line, key,
                why);
        return;
    }
    if (c->warn->count >= MC_NODE_CONFIG_MAX_WARNINGS) {
        return;
    }
    snprintf(c->warn->msg[c->warn->count++], MC_NODE_CONFIG_WARNING_LEN, "%s:%u: key %s: %s",
             c->file, line, key, why);
}

static void tree_free(struct ytree *t)
{
    for (int i = 0; i < t->count; i++) {
        free(t->n[i].text);
    }
    free(t->n);
    t->n = NULL;
    t->count = 0;
}

/* Append a node under parent (or as root when parent < 0). */
static int tree_add(struct ctx *c, int parent, int *last_child, enum ykind kind, unsigned line)
{
    if (c->t.count >= MC_NODE_CONFIG_MAX_NODES) {
        return fail(c, line, "too many YAML nodes (max %d)", MC_NODE_CONFIG_MAX_NODES);
    }
    int i = c->t.count++;
    struct ynode *y = &c->t.n[i];
    memset(y, 0, sizeof(*y));
    y->kind = kind;
    y->line = line;
    y->first = -1;
    y->next = -1;
    if (parent >= 0) {
        if (*last_child < 0) {
            c->t.n[parent].first = i;
        } else {
            c->t.n[*last_child].next = i;
        }
        *last_child = i;
    }
    return i;
}

/* Parse buf into c->t. Returns the root index, -1 for an empty stream, or a negative MC_E* - 1. */
static int tree_build(struct ctx *c, const char *buf, size_t len, int *root)
{
    yaml_parser_t p;
    yaml_event_t ev;
    int stack[MC_NODE_CONFIG_MAX_DEPTH + 1];
    int last[MC_NODE_CONFIG_MAX_DEPTH + 1];
    int depth = 0, docs = 0, rc = 0, done = 0;

    *root = -1;
    c->t.n = calloc(MC_NODE_CONFIG_MAX_NODES, sizeof(struct ynode));
    if (!c->t.n) {
        return MC_ENOMEM;
    }
    if (!yaml_parser_initialize(&p)) {
        return MC_ENOMEM;
    }
    yaml_parser_set_input_string(&p, (const unsigned char *)buf, len);
    while (!done) {
        if (!yaml_parser_parse(&p, &ev)) {
            if (p.context) {
                rc = fail(c, (unsigned)p.problem_mark.line + 1,
                          "YAML syntax error: %s %s (started at line %u)",
                          p.problem ? p.problem : "unknown", p.context,
                          (unsigned)p.context_mark.line + 1);
            } else {
                rc = fail(c, (unsigned)p.problem_mark.line + 1, "YAML syntax error: %s",
                          p.problem ? p.problem : "unknown");
            }
            break;
        }
        unsigned line = (unsigned)ev.start_mark.line + 1;
        int parent = depth > 0 ? stack[depth - 1] : -1;
        int *lastp = depth > 0 ? &last[depth - 1] : NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = 1;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                rc = fail(c, line, "more than one YAML document (one '---' at most)");
            }
            break;
        case YAML_ALIAS_EVENT:
            rc = fail(c, line, "an alias (*name) is not supported in a config file");
            break;
        case YAML_SCALAR_EVENT: {
            if (ev.data.scalar.tag) {
                rc = fail(c, line, "a tag is not supported in a config file");
                break;
            }
            if (ev.data.scalar.length > MC_NODE_CONFIG_MAX_SCALAR) {
                rc = fail(c, line, "value is too long (max %d bytes)", MC_NODE_CONFIG_MAX_SCALAR);
                break;
            }
            int i = tree_add(c, parent, lastp, Y_SCALAR, line);
            if (i < 0) {
                rc = i;
                break;
            }
            struct ynode *y = &c->t.n[i];
            y->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
            y->len = ev.data.scalar.length;
            y->text = malloc(y->len + 1);
            if (!y->text) {
                rc = MC_ENOMEM;
                break;
            }
            memcpy(y->text, ev.data.scalar.value, y->len);
            y->text[y->len] = 0;
            if (parent < 0) {
                *root = i;
            }
            break;
        }
        case YAML_MAPPING_START_EVENT:
        case YAML_SEQUENCE_START_EVENT: {
            const yaml_char_t *tag = ev.type == YAML_MAPPING_START_EVENT
                                         ? ev.data.mapping_start.tag
                                         : ev.data.sequence_start.tag;
            if (tag) {
                rc = fail(c, line, "a tag is not supported in a config file");
                break;
            }
            if (depth >= MC_NODE_CONFIG_MAX_DEPTH) {
                rc = fail(c, line, "nesting is too deep (max %d levels)", MC_NODE_CONFIG_MAX_DEPTH);
                break;
            }
            int i = tree_add(c, parent, lastp, ev.type == YAML_MAPPING_START_EVENT ? Y_MAP : Y_SEQ,
                             line);
            if (i < 0) {
                rc = i;
                break;
            }
            if (parent < 0) {
                *root = i;
            }
            stack[depth] = i;
            last[depth] = -1;
            depth++;
            break;
        }
        case YAML_MAPPING_END_EVENT:
        case YAML_SEQUENCE_END_EVENT:
            assert(depth > 0);
            depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
        if (rc) {
            break;
        }
    }
    yaml_parser_delete(&p);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Typed accessors: each names the key and its line on error.                                 */
/* ------------------------------------------------------------------------------------------ */

static const char *kind_name(const struct ynode *y)
{
    if (y->kind == Y_MAP) {
        return "a mapping";
    }
    if (y->kind == Y_SEQ) {
        return "a list";
    }
    return y->plain ? "a plain value" : "a quoted string";
}

static int is_null(const struct ynode *y)
{
    return y->kind == Y_SCALAR && y->plain &&
           (y->len == 0 || strcmp(y->text, "~") == 0 || strcmp(y->text, "null") == 0 ||
            strcmp(y->text, "Null") == 0 || strcmp(y->text, "NULL") == 0);
}

static int get_str(struct ctx *c, const struct ynode *y, const char *key, int allow_empty,
                   char *dst, size_t cap)
{
    if (y->kind != Y_SCALAR) {
        return fail(c, y->line, "key %s wants a string, got %s", key, kind_name(y));
    }
    if (is_null(y) || (!allow_empty && y->len == 0)) {
        return fail(c, y->line, "key %s needs a value", key);
    }
    if (strlen(y->text) != y->len) {
        return fail(c, y->line, "key %s holds a NUL byte", key);
    }
    if (y->len >= cap) {
        return fail(c, y->line, "key %s is too long (max %zu bytes)", key, cap - 1);
    }
    memcpy(dst, y->text, y->len + 1);
    return 0;
}

static int get_u64(struct ctx *c, const struct ynode *y, const char *key, uint64_t min,
                   uint64_t max, uint64_t *dst)
{
    if (y->kind != Y_SCALAR || !y->plain || is_null(y)) {
        return fail(c, y->line, "key %s wants an integer, got %s", key,
                    is_null(y) ? "nothing" : kind_name(y));
    }
    const char *s = y->text;
    for (size_t i = 0; i < y->len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            if (s[0] == '-' && i == 0 && y->len > 1) {
                return fail(c, y->line, "key %s: %s is out of range [%llu, %llu]", key, s,
                            (unsigned long long)min, (unsigned long long)max);
            }
            return fail(c, y->line, "key %s wants an integer, got '%s'", key, s);
        }
    }
    errno = 0;
    unsigned long long x = strtoull(s, NULL, 10);
    if (errno || x < min || x > max) {
        return fail(c, y->line, "key %s: %s is out of range [%llu, %llu]", key, s,
                    (unsigned long long)min, (unsigned long long)max);
    }
    *dst = x;
    return 0;
}

static int get_bool(struct ctx *c, const struct ynode *y, const char *key, int *dst)
{
    if (y->kind == Y_SCALAR && y->plain) {
        if (!strcmp(y->text, "true") || !strcmp(y->text, "True") || !strcmp(y->text, "TRUE")) {
            *dst = 1;
            return 0;
        }
        if (!strcmp(y->text, "false") || !strcmp(y->text, "False") || !strcmp(y->text, "FALSE")) {
            *dst = 0;
            return 0;
        }
    }
    if (y->kind != Y_SCALAR) {
        return fail(c, y->line, "key %s wants true or false, got %s", key, kind_name(y));
    }
    return fail(c, y->line, "key %s wants true or false, got '%s'", key, y->text);
}

/* HOST:PORT with a non-empty host and a decimal port in [0 or 1, 65535]. */
static int get_addr(struct ctx *c, const struct ynode *y, const char *key, int port0_ok, char *dst,
                    size_t cap)
{
    char tmp[MC_OPT_ADDR_MAX];
    int rc = get_str(c, y, key, 0, tmp, sizeof(tmp) < cap ? sizeof(tmp) : cap);
    if (rc) {
        return rc;
    }
    const char *colon = strrchr(tmp, ':');
    const char *port = colon ? colon + 1 : "";
    size_t plen = strlen(port);
    int ok = colon && colon != tmp && plen >= 1 && plen <= 5 && strspn(port, "0123456789") == plen;
    unsigned long pn = ok ? strtoul(port, NULL, 10) : 0;
    if (!ok || pn > 65535 || (pn == 0 && !port0_ok)) {
        return fail(c, y->line, "key %s wants HOST:PORT (port 1..65535), got '%s'", key, tmp);
    }
    memcpy(dst, tmp, strlen(tmp) + 1);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Schema                                                                                     */
/* ------------------------------------------------------------------------------------------ */

enum ftype { T_MAP, T_STR, T_ADDR, T_U64, T_BOOL, T_SPECIAL };

enum special {
    S_NONE,
    S_ENGINE_TYPE,
    S_HTTP,
    S_LOG_LEVEL,
    S_LOG_FORMAT,
    S_NODE_ID,
    S_NODES,
    S_JOIN,
    S_PEER,
    S_READ_CONSISTENCY,
    S_LOG_DIR,
    S_SNAPSHOT_DIR,
    S_BATCH_TIMEOUT,
};

struct field {
    const char *name;
    enum ftype type;
    size_t off; /* into struct mc_node_options (T_STR/T_ADDR/T_U64/T_BOOL) */
    size_t cap; /* T_STR/T_ADDR capacity */
    uint64_t min, max;
    const struct field *sub; /* T_MAP */
    enum special sp;
};

#define OFF(f) offsetof(struct mc_node_options, f)
#define CAP(f) sizeof(((struct mc_node_options *)0)->f)
#define STR(n, f)                                                                                  \
    {                                                                                              \
        n, T_STR, OFF(f), CAP(f), 0, 0, NULL, S_NONE                                               \
    }
#define ADDR(n, f)                                                                                 \
    {                                                                                              \
        n, T_ADDR, OFF(f), CAP(f), 0, 0, NULL, S_NONE                                              \
    }
#define U64(n, f, lo, hi)                                                                          \
    {                                                                                              \
        n, T_U64, OFF(f), 0, lo, hi, NULL, S_NONE                                                  \
    }
#define BOOL(n, f)                                                                                 \
    {                                                                                              \
        n, T_BOOL, OFF(f), 0, 0, 0, NULL, S_NONE                                                   \
    }
#define MAP(n, s)                                                                                  \
    {                                                                                              \
        n, T_MAP, 0, 0, 0, 0, s, S_NONE                                                            \
    }
#define SPEC(n, s)                                                                                 \
    {                                                                                              \
        n, T_SPECIAL, 0, 0, 0, 0, NULL, s                                                          \
    }
#define END                                                                                        \
    {                                                                                              \
        NULL, T_MAP, 0, 0, 0, 0, NULL, S_NONE                                                      \
    }

/* Ranges match the flags' ranges in options.c. */
static const struct field f_raft[] = {
    U64("election_timeout_ms", election_timeout_ms, 10, 600000),
    U64("heartbeat_interval_ms", heartbeat_ms, 1, 60000),
    U64("snapshot_interval", snapshot_entries, 10, UINT32_MAX),
    U64("snapshot_log_mb", snapshot_log_mb, 1, 1 << 20),
    U64("max_log_entries", snapshot_tail_entries, 1, UINT32_MAX),
    U64("max_log_mb", snapshot_tail_mb, 1, 1 << 20),
    U64("catch_up_log_mb", catch_up_log_mb, 0, 1 << 20),
    U64("image_entries", image_entries, 10, UINT32_MAX),
    U64("image_log_mb", image_log_mb, 1, 1 << 20),
    SPEC("log_dir", S_LOG_DIR),
    SPEC("snapshot_dir", S_SNAPSHOT_DIR),
    U64("tick_ms", tick_ms, 1, 1000),
    BOOL("pre_vote", pre_vote),
    BOOL("check_quorum", check_quorum),
    BOOL("lease_reads", lease_reads),
    U64("read_rounds", read_rounds, 1, MC_RAFT_MAX_READ_ROUNDS),
    BOOL("image_handoff", image_handoff),
    END,
};

static const struct field f_replication[] = {
    SPEC("node_id", S_NODE_ID),
    SPEC("nodes", S_NODES),
    SPEC("join", S_JOIN),
    SPEC("read_consistency", S_READ_CONSISTENCY),
    MAP("raft", f_raft),
    U64("max_batch_size", max_batch_entries, 1, 1u << 20),
    SPEC("batch_timeout_ms", S_BATCH_TIMEOUT),
    END,
};

static const struct field f_listen[] = {
    ADDR("client", listen_client),
    SPEC("peer", S_PEER),
    SPEC("http", S_HTTP),
    END,
};

static const struct field f_log[] = {
    SPEC("level", S_LOG_LEVEL),
    SPEC("format", S_LOG_FORMAT),
    END,
};

/* Ranges match the flags' ranges in options.c. */
static const struct field f_limits[] = {
    U64("max_client_connections", max_client_connections, 1, 1000000),
    U64("idle_timeout_ms", idle_timeout_ms, 0, UINT32_MAX),
    U64("request_read_timeout_ms", request_read_timeout_ms, 10, UINT32_MAX),
    U64("max_frame_bytes", max_frame_bytes, 4096, 4u << 20),
    U64("max_inflight_per_conn", max_inflight_per_conn, 1, 1000000),
    U64("max_batch_ops", max_batch_ops, 1, 1000),
    U64("max_list_keys", max_list_keys, 1, 1000),
    U64("max_sessions", max_sessions, 1, MC_OPT_MAX_SESSIONS_MAX),
    U64("client_send_timeout_ms", client_send_timeout_ms, MC_OPT_CLIENT_SEND_TIMEOUT_MIN_MS,
        MC_OPT_CLIENT_SEND_TIMEOUT_MAX_MS),
    U64("max_total_output_bytes", max_total_output_bytes, MC_OPT_TOTAL_OUTPUT_MIN_BYTES,
        MC_OPT_TOTAL_OUTPUT_MAX_BYTES),
    U64("http_max_connections", http_max_connections, 1, MC_HTTP_MAX_CONNECTIONS),
    U64("http_send_timeout_ms", http_send_timeout_ms, 1, UINT32_MAX),
    U64("http_idle_timeout_ms", http_idle_timeout_ms, MC_OPT_HTTP_TIMEOUT_MIN_MS,
        MC_OPT_HTTP_TIMEOUT_MAX_MS),
    U64("http_head_timeout_ms", http_head_timeout_ms, MC_OPT_HTTP_TIMEOUT_MIN_MS,
        MC_OPT_HTTP_TIMEOUT_MAX_MS),
    U64("http_max_body_bytes", http_max_body_bytes, MC_OPT_HTTP_BODY_MIN_BYTES,
        MC_HTTP_MAX_BODY_LIMIT),
    END,
};

static const struct field f_security[] = {
    STR("auth_file", auth_file),
    BOOL("metrics_auth", metrics_auth),
    STR("cert_file", cert_file),
    STR("key_file", key_file),
    STR("trusted_ca_file", trusted_ca_file),
    BOOL("client_cert_auth", client_cert_auth),
    STR("peer_cert_file", peer_cert_file),
    STR("peer_key_file", peer_key_file),
    STR("peer_trusted_ca_file", peer_trusted_ca_file),
    END,
};

static const struct field f_metadata[] = {
    SPEC("engine_type", S_ENGINE_TYPE),
    STR("data_dir", data_dir),
    STR("engine_dir", engine_dir),
    MAP("listen", f_listen),
    ADDR("advertise_client", advertise_client),
    U64("max_map_size_bytes", max_map_size_bytes, 1 << 20, UINT64_MAX),
    U64("ready_max_lag", ready_max_lag, 0, UINT64_MAX),
    U64("check_interval_ms", check_interval_ms, 0, UINT64_MAX),
    U64("disk_reserve_mb", disk_reserve_mb, 0, UINT32_MAX),
    MAP("log", f_log),
    MAP("replication", f_replication),
    MAP("limits", f_limits),
    MAP("security", f_security),
    END,
};

static const struct field f_root[] = {
    MAP("metadata", f_metadata),
    END,
};

static int walk_map(struct ctx *c, const struct ynode *m, const char *path,
                    const struct field *fields);

static int one_of(struct ctx *c, const struct ynode *y, const char *key, const char *const *vals,
                  int *idx)
{
    if (y->kind == Y_SCALAR && !is_null(y)) {
        for (int i = 0; vals[i]; i++) {
            if (strcmp(y->text, vals[i]) == 0) {
                *idx = i;
                return 0;
            }
        }
    }
    char list[160] = "";
    for (int i = 0; vals[i]; i++) {
        size_t n = strlen(list);
        snprintf(list + n, sizeof(list) - n, "%s%s", i ? "|" : "", vals[i]);
    }
    if (y->kind != Y_SCALAR || is_null(y)) {
        return fail(c, y->line, "key %s wants %s, got %s", key, list,
                    is_null(y) ? "nothing" : kind_name(y));
    }
    return fail(c, y->line, "key %s wants %s, got '%s'", key, list, y->text);
}

static int walk_nodes(struct ctx *c, const struct ynode *y, const char *key)
{
    c->nodes_seen = 1;
    c->nodes_line = y->line;
    c->nnodes = 0;
    if (is_null(y)) {
        return 0;
    }
    if (y->kind != Y_SEQ) {
        return fail(c, y->line, "key %s wants a list of {id, address}, got %s", key, kind_name(y));
    }
    for (int i = y->first; i >= 0; i = c->t.n[i].next) {
        const struct ynode *item = &c->t.n[i];
        char ipath[256];
        snprintf(ipath, sizeof(ipath), "%.200s[%zu]", key, c->nnodes);
        if (c->nnodes >= MC_MAX_MEMBERS) {
            return fail(c, item->line, "key %s has too many nodes (max %d)", key, MC_MAX_MEMBERS);
        }
        if (item->kind != Y_MAP) {
            return fail(c, item->line, "key %s wants {id, address}, got %s", ipath,
                        kind_name(item));
        }
        struct mc_member_addr *m = &c->nodes[c->nnodes];
        int have_id = 0, have_addr = 0;
        for (int k = item->first; k >= 0; k = c->t.n[c->t.n[k].next].next) {
            const struct ynode *kn = &c->t.n[k];
            assert(kn->next >= 0); /* libyaml always pairs keys with values */
            const struct ynode *vn = &c->t.n[kn->next];
            char kpath[300];
            snprintf(kpath, sizeof(kpath), "%.230s.%.60s", ipath,
                     kn->kind == Y_SCALAR ? kn->text : "?");
            int rc;
            if (kn->kind == Y_SCALAR && strcmp(kn->text, "id") == 0 && !have_id) {
                rc = get_u64(c, vn, kpath, 1, UINT64_MAX, &m->id);
                have_id = 1;
            } else if (kn->kind == Y_SCALAR && strcmp(kn->text, "address") == 0 && !have_addr) {
                rc = get_addr(c, vn, kpath, 0, m->peer_addr, sizeof(m->peer_addr));
                have_addr = 1;
            } else if (kn->kind == Y_SCALAR &&
                       (strcmp(kn->text, "id") == 0 || strcmp(kn->text, "address") == 0)) {
                rc = fail(c, kn->line, "key %s repeats", kpath);
            } else {
                rc = fail(c, kn->line, "unknown key %s (known: id, address)", kpath);
            }
            if (rc) {
                return rc;
            }
        }
        if (!have_id || !have_addr) {
            return fail(c, item->line, "key %s needs both id and address", ipath);
        }
        for (size_t j = 0; j < c->nnodes; j++) {
            if (c->nodes[j].id == m->id) {
                return fail(c, item->line, "key %s.id: id %llu repeats", ipath,
                            (unsigned long long)m->id);
            }
        }
        c->nnodes++;
    }
    return 0;
}

static int special(struct ctx *c, const struct ynode *y, const char *key, enum special sp)
{
    static const char *const engine_types[] = {"local", "replicated", NULL};
    static const char *const levels[] = {"debug", "info", "warn", "error", "off", NULL};
    static const char *const formats[] = {"text", "json", NULL};
    static const char *const consistencies[] = {"linearizable", "strong", "stale", "eventual",
                                                NULL};
    int idx = 0, rc = 0;
    uint64_t v;
    switch (sp) {
    case S_ENGINE_TYPE:
        rc = one_of(c, y, key, engine_types, &idx);
        c->engine_type = idx;
        c->engine_line = y->line;
        return rc;
    case S_HTTP:
        /* "" or "off" disables the HTTP API (options.h); otherwise HOST:PORT. */
        if (y->kind == Y_SCALAR && (strcmp(y->text, "off") == 0 || (!y->plain && y->len == 0))) {
            return get_str(c, y, key, 1, c->o.listen_http, sizeof(c->o.listen_http));
        }
        return get_addr(c, y, key, 1, c->o.listen_http, sizeof(c->o.listen_http));
    case S_PEER:
        c->peer_seen = 1;
        return get_addr(c, y, key, 1, c->o.listen_peer, sizeof(c->o.listen_peer));
    case S_LOG_LEVEL:
        rc = one_of(c, y, key, levels, &idx);
        if (!rc) {
            enum mc_log_level l;
            rc = mc_log_parse_level(levels[idx], &l);
            assert(rc == 0);
            c->o.log_level = (int)l;
        }
        return rc;
    case S_LOG_FORMAT:
        rc = one_of(c, y, key, formats, &idx);
        c->o.log_format = idx == 0 ? MC_LOG_TEXT : MC_LOG_JSON;
        return rc;
    case S_NODE_ID:
        c->node_id_seen = 1;
        return get_u64(c, y, key, 1, UINT64_MAX, &c->o.node_id);
    case S_NODES:
        return walk_nodes(c, y, key);
    case S_JOIN:
        c->join_seen = 1;
        c->join_line = y->line;
        return get_addr(c, y, key, 0, c->o.join, sizeof(c->o.join));
    case S_READ_CONSISTENCY:
        rc = one_of(c, y, key, consistencies, &idx);
        if (!rc && idx >= 2) {
            warn(c, y->line, key,
                 "ignored: the server has no default consistency; clients choose per request "
                 "(metacenter --consistency stale, or ?consistency=stale over HTTP)");
        }
        return rc;
    case S_LOG_DIR:
        c->log_dir_line = y->line;
        return get_str(c, y, key, 0, c->log_dir, sizeof(c->log_dir));
    case S_SNAPSHOT_DIR:
        c->snapshot_dir_line = y->line;
        return get_str(c, y, key, 0, c->snapshot_dir, sizeof(c->snapshot_dir));
    case S_BATCH_TIMEOUT:
        rc = get_u64(c, y, key, 0, 10000, &v);
        if (!rc && v) {
            warn(c, y->line, key,
                 "ignored: proposals are batched per event-loop turn, with no extra wait");
        }
        return rc;
    case S_NONE:
        break;
    }
    assert(0 && "unhandled special key");
    return MC_EINTERNAL;
}

static int field_set(struct ctx *c, const struct ynode *y, const char *key, const struct field *f)
{
    char *base = (char *)&c->o;
    switch (f->type) {
    case T_MAP:
        if (is_null(y)) {
            return 0; /* "raft:" with nothing under it: no settings */
        }
        if (y->kind != Y_MAP) {
            return fail(c, y->line, "key %s wants a mapping, got %s", key, kind_name(y));
        }
        return walk_map(c, y, key, f->sub);
    case T_STR:
        return get_str(c, y, key, 0, base + f->off, f->cap);
    case T_ADDR:
        return get_addr(c, y, key, 1, base + f->off, f->cap);
    case T_U64:
        return get_u64(c, y, key, f->min, f->max, (uint64_t *)(void *)(base + f->off));
    case T_BOOL:
        return get_bool(c, y, key, (int *)(void *)(base + f->off));
    case T_SPECIAL:
        return special(c, y, key, f->sp);
    }
    return MC_EINTERNAL;
}

static int walk_map(struct ctx *c, const struct ynode *m, const char *path,
                    const struct field *fields)
{
    assert(m->kind == Y_MAP);
    for (int k = m->first; k >= 0; k = c->t.n[c->t.n[k].next].next) {
        const struct ynode *kn = &c->t.n[k];
        assert(kn->next >= 0); /* libyaml always pairs keys with values */
        const struct ynode *vn = &c->t.n[kn->next];
        if (kn->kind != Y_SCALAR) {
            return fail(c, kn->line, "a key under %s is %s, not a name", path[0] ? path : "the top",
                        kind_name(kn));
        }
        char key[256]; /* long names are cut in messages; matching uses kn->text */
        snprintf(key, sizeof(key), "%.120s%s%.120s", path, path[0] ? "." : "", kn->text);
        for (int j = m->first; j != k; j = c->t.n[c->t.n[j].next].next) {
            if (strcmp(c->t.n[j].text ? c->t.n[j].text : "", kn->text) == 0) {
                return fail(c, kn->line, "key %s repeats (first at line %u)", key, c->t.n[j].line);
            }
        }
        const struct field *f = fields;
        while (f->name && strcmp(f->name, kn->text) != 0) {
            f++;
        }
        if (!f->name) {
            char known[400] = "";
            for (const struct field *g = fields; g->name; g++) {
                size_t n = strlen(known);
                snprintf(known + n, sizeof(known) - n, "%s%s", g == fields ? "" : ", ", g->name);
            }
            return fail(c, kn->line, "unknown key %s (known here: %s)", key, known);
        }
        int rc = field_set(c, vn, key, f);
        if (rc) {
            return rc;
        }
    }
    return 0;
}

/* Rules that need the whole file: engine_type vs nodes/join, and the no-op directories. */
static int finish(struct ctx *c)
{
    const char *ids = "metadata.replication.nodes";
    int self = -1;
    for (size_t i = 0; i < c->nnodes; i++) {
        if (c->nodes[i].id == c->o.node_id) {
            self = (int)i;
        }
    }
    if (c->engine_type != 1) { /* local (the default) */
        if (c->join_seen) {
            return fail(c, c->join_line,
                        "key metadata.replication.join needs engine_type: replicated");
        }
        for (size_t i = 0; i < c->nnodes; i++) {
            if (c->nodes[i].id != c->o.node_id) {
                return fail(c, c->nodes_line,
                            "key %s lists node %llu besides this node (%llu): set "
                            "metadata.engine_type: replicated",
                            ids, (unsigned long long)c->nodes[i].id,
                            (unsigned long long)c->o.node_id);
            }
        }
        c->o.initial_count = 0; /* single node */
    } else {
        if (c->join_seen && c->nnodes) {
            return fail(c, c->join_line,
                        "keys metadata.replication.join and %s exclude each other (join a running "
                        "cluster, or start a new one from the nodes list)",
                        ids);
        }
        if (!c->join_seen && !c->nnodes) {
            return fail(c, c->engine_line,
                        "engine_type replicated needs %s (the initial cluster) or "
                        "metadata.replication.join",
                        ids);
        }
        if (c->nnodes && c->node_id_seen && self < 0) {
            return fail(c, c->nodes_line, "key %s does not list this node (node_id %llu)", ids,
                        (unsigned long long)c->o.node_id);
        }
        memcpy(c->o.initial, c->nodes, c->nnodes * sizeof(c->nodes[0]));
        c->o.initial_count = c->nnodes;
        if (self >= 0 && c->node_id_seen && !c->peer_seen) {
            /* This node's peer address from the nodes list, as etcd's initial-cluster implies. */
            snprintf(c->o.listen_peer, sizeof(c->o.listen_peer), "%s", c->nodes[self].peer_addr);
        }
    }
    /* The node keeps its log and snapshots inside data_dir (storage.h); other places are ignored.
     */
    char want[MC_PATH_MAX_BYTES + 8];
    if (c->log_dir[0]) {
        snprintf(want, sizeof(want), "%s/wal", c->o.data_dir);
        if (strcmp(want, c->log_dir) != 0) {
            warn(c, c->log_dir_line, "metadata.replication.raft.log_dir",
                 "ignored: the Raft log always lives in DATA_DIR/wal");
        }
    }
    if (c->snapshot_dir[0]) {
        snprintf(want, sizeof(want), "%s/snap", c->o.data_dir);
        if (strcmp(want, c->snapshot_dir) != 0) {
            warn(c, c->snapshot_dir_line, "metadata.replication.raft.snapshot_dir",
                 "ignored: snapshots always live in DATA_DIR/snap");
        }
    }
    return 0;
}

int mc_node_config_load_buf(const char *name, const char *buf, size_t len,
                            struct mc_node_options *o, struct mc_node_config_warnings *warnings,
                            char *err, size_t errlen)
{
    struct ctx *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "OutOfMemory: loading config %s", name);
        return MC_ENOMEM;
    }
    c->file = name;
    c->err = err;
    c->errlen = errlen;
    c->o = *o;
    c->warn = warnings;
    c->engine_type = -1;
    if (errlen) {
        err[0] = 0;
    }
    if (warnings) {
        warnings->count = 0;
    }
    int root = -1;
    int rc = tree_build(c, buf, len, &root);
    if (rc == MC_ENOMEM) {
        snprintf(err, errlen, "OutOfMemory: loading config %s", name);
        goto out;
    }
    if (rc) {
        goto out;
    }
    if (root < 0 || is_null(&c->t.n[root])) {
        rc = fail(c, 0, "the config file is empty (it wants a 'metadata:' mapping)");
        goto out;
    }
    if (c->t.n[root].kind != Y_MAP) {
        rc = fail(c, c->t.n[root].line, "the top level wants a mapping with 'metadata:', got %s",
                  kind_name(&c->t.n[root]));
        goto out;
    }
    rc = walk_map(c, &c->t.n[root], "", f_root);
    if (rc) {
        goto out;
    }
    rc = finish(c);
    if (rc) {
        goto out;
    }
    if (strlen(name) < sizeof(c->o.config_file)) {
        snprintf(c->o.config_file, sizeof(c->o.config_file), "%s", name);
    }
    *o = c->o;
out:
    tree_free(&c->t);
    free(c);
    return rc;
}

int mc_node_config_load_ex(const char *path, struct mc_node_options *o,
                           struct mc_node_config_warnings *warnings, char *err, size_t errlen)
{
    if (warnings) {
        warnings->count = 0;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        snprintf(err, errlen, "%s: config file %s: %s", e == ENOENT ? "NotFound" : "IOError", path,
                 strerror(e));
        return e == ENOENT ? MC_ENOTFOUND : MC_EIO;
    }
    char *buf = malloc(MC_NODE_CONFIG_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        snprintf(err, errlen, "OutOfMemory: loading config %s", path);
        return MC_ENOMEM;
    }
    size_t n = fread(buf, 1, MC_NODE_CONFIG_MAX_BYTES + 1, f);
    int rerr = ferror(f);
    fclose(f);
    int rc;
    if (rerr) {
        snprintf(err, errlen, "IOError: config file %s: read failed (is it a directory?)", path);
        rc = MC_EIO;
    } else if (n > MC_NODE_CONFIG_MAX_BYTES) {
        snprintf(err, errlen, "EntityTooLarge: config file %s is larger than %d bytes", path,
                 MC_NODE_CONFIG_MAX_BYTES);
        rc = MC_ETOOLARGE;
    } else {
        rc = mc_node_config_load_buf(path, buf, n, o, warnings, err, errlen);
    }
    free(buf);
    return rc;
}

int mc_node_config_load(const char *path, struct mc_node_options *o, char *err, size_t errlen)
{
    return mc_node_config_load_ex(path, o, NULL, err, errlen);
}

const char *mc_node_config_find_arg(int argc, char **argv)
{
    /* Flags without a value, as in mc_node_options_parse; every other --flag takes one. */
    static const char *const bare[] = {
        "--help", "-h", "--no-pre-vote", "--no-check-quorum", "--lease-reads", "--no-image-handoff",
        NULL};
    const char *found = NULL;
    for (int i = 1; i < argc; i++) {
        int is_bare = 0;
        for (int b = 0; bare[b]; b++) {
            is_bare |= strcmp(argv[i], bare[b]) == 0;
        }
        if (is_bare || strncmp(argv[i], "--", 2) != 0) {
            continue;
        }
        if (i + 1 >= argc) {
            break;
        }
        if (strcmp(argv[i], "--config") == 0) {
            found = argv[i + 1]; /* the last one wins, like every other flag */
        }
        i++;
    }
    return found;
}
