/* lincheck.c: Wing–Gong linearizability search with memoization, per key (P-compositionality). */
#include "lincheck.h"

#include "metacenter/error.h"
#include "util/checksum.h"
#include "util/clock.h"
#include "util/rand.h"

#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

/*
 * Method. A history is linearizable iff each key's sub-history is (Herlihy & Wing: locality), so
 * keys are checked one at a time. Per key we run the Wing & Gong depth-first search in the form
 * used by Porcupine: a doubly linked list of call/return entries in real-time order; at each step
 * try to linearize a call that precedes the first pending return; memoize (linearized set, model
 * state) pairs already explored (Lowe, "Testing for linearizability", 2016; Horn & Kroening,
 * 2015) so each configuration is expanded once. The set is represented by a 96-bit Zobrist hash
 * updated in O(1) per step instead of a bitset: memory stays O(explored configurations), 16 bytes
 * each, and a false memo hit needs a 96-bit collision (~2^-96 per pair).
 *
 * info ops: their return is placed after every other event (or, for a write someone observed,
 * at the observer's completion: see bound_info), so they may linearize anywhere after
 * their invoke; the search succeeds once every *completed* op is linearized, so an info op may
 * also never take effect.
 */

enum fkind { F_PUT = 0, F_GET, F_CAS, F_APPEND };
enum status { ST_PENDING = 0, ST_OK, ST_FAIL, ST_INFO };
enum nkind { N_REG = 1, N_APP = 2 };

static const char *const fnames[] = {"put", "get", "cas", "append"};
static const char *const stnames[] = {"pending", "ok", "fail", "info"};

#define NO_POS            UINT64_MAX
#define WINDOW_CANDIDATES 12 /* ops printed in a failing window */
#define WINDOW_HISTORY    4  /* linearized ops printed before the stuck point */
#define MAX_PRINT_LIST    16 /* elements of an append list printed */

struct op {
    int64_t process;
    int64_t call_ns, ret_ns;
    uint64_t call_pos, ret_pos; /* event sequence numbers (line order) */
    uint64_t eff_ret;           /* latest position it may take effect at (see bound_info) */
    uint8_t must;               /* must be linearized: ok, or an info write someone observed */
    uint32_t call_line, ret_line;
    uint32_t key;      /* key index */
    uint32_t arg;      /* put/cas: state written; append: element string id */
    uint32_t expected; /* cas: state required */
    uint32_t out;      /* get ok: state read */
    uint8_t f, status;
};

/* u64 -> u32 open-addressing map; grows at 50% load. */
struct map {
    uint64_t *keys;
    uint32_t *vals;
    uint8_t *used;
    size_t cap, n;
};

struct mc_lincheck_history {
    struct op *ops;
    size_t n_ops, cap_ops;
    uint64_t pos; /* next event sequence number */
    uint32_t line;
    /* interned strings: values, elements and key names */
    char **str;
    uint32_t *str_len;
    size_t n_str, cap_str;
    struct map str_index; /* checksum(string) -> id (+ linear probe on collision via salt) */
    /* model-state nodes: 0 = absent, REG(v) = register holding v, APP(parent, e) = list */
    uint32_t *node_parent, *node_sid;
    uint8_t *node_kind;
    size_t n_nodes, cap_nodes;
    struct map node_index;
    /* keys */
    uint32_t *key_sid; /* key index -> string id */
    size_t n_keys, cap_keys;
    struct map key_index;  /* string id -> key index */
    struct map proc_index; /* process -> pending op index + 1 (0: none) */
};

/* ---------- small helpers ---------- */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np)
        return MC_ENOMEM;
    *p = np;
    *cap = nc;
    return 0;
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void map_free(struct map *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    memset(m, 0, sizeof(*m));
}

static int map_init(struct map *m, size_t cap)
{
    m->keys = calloc(cap, sizeof(*m->keys));
    m->vals = calloc(cap, sizeof(*m->vals));
    m->used = calloc(cap, 1);
    m->cap = cap;
    m->n = 0;
    if (!m->keys || !m->vals || !m->used) {
        map_free(m);
        return MC_ENOMEM;
    }
    return 0;
}

/* Slot of key k: either holding k or the empty slot where it would go. */
static size_t map_slot(const struct map *m, uint64_t k)
{
    size_t mask = m->cap - 1;
    size_t i = mix64(k) & mask;
    while (m->used[i] && m->keys[i] != k)
        i = (i + 1) & mask;
    return i;
}

static int map_get(const struct map *m, uint64_t k, uint32_t *v)
{
    if (!m->cap)
        return 0;
    size_t i = map_slot(m, k);
    if (!m->used[i])
        return 0;
    *v = m->vals[i];
    return 1;
}

static int map_put(struct map *m, uint64_t k, uint32_t v)
{
    if (!m->cap) {
        int rc = map_init(m, 64);
        if (rc)
            return rc;
    }
    if ((m->n + 1) * 2 > m->cap) {
        struct map nm;
        int rc = map_init(&nm, m->cap * 2);
        if (rc)
            return rc;
        for (size_t i = 0; i < m->cap; i++) {
            if (m->used[i]) {
                size_t j = map_slot(&nm, m->keys[i]);
                nm.used[j] = 1;
                nm.keys[j] = m->keys[i];
                nm.vals[j] = m->vals[i];
                nm.n++;
            }
        }
        map_free(m);
        *m = nm;
    }
    size_t i = map_slot(m, k);
    if (!m->used[i]) {
        m->used[i] = 1;
        m->keys[i] = k;
        m->n++;
    }
    m->vals[i] = v;
    return 0;
}

/* ---------- interning ---------- */

/* String id for (s, len), created if new. Collisions of the 64-bit hash are resolved by salting. */
static int intern_str(struct mc_lincheck_history *h, const char *s, size_t len, uint32_t *out)
{
    for (uint64_t salt = 0;; salt++) {
        uint64_t k = mc_checksum64_seed(s, len, salt);
        uint32_t id;
        if (map_get(&h->str_index, k, &id)) {
            if (h->str_len[id] == len && memcmp(h->str[id], s, len) == 0) {
                *out = id;
                return 0;
            }
            continue;
        }
        if (h->n_str >= (1u << 31) - 1)
            return MC_ELIMIT;
        if (h->n_str == h->cap_str) {
            size_t nc = h->cap_str ? h->cap_str * 2 : 64;
            char **ns = realloc(h->str, nc * sizeof(*ns));
            if (!ns)
                return MC_ENOMEM;
            h->str = ns;
            uint32_t *nl = realloc(h->str_len, nc * sizeof(*nl));
            if (!nl)
                return MC_ENOMEM;
            h->str_len = nl;
            h->cap_str = nc;
        }
        char *copy = malloc(len + 1);
        if (!copy)
            return MC_ENOMEM;
        memcpy(copy, s, len);
        copy[len] = 0;
        id = (uint32_t)h->n_str;
        int rc = map_put(&h->str_index, k, id);
        if (rc) {
            free(copy);
            return rc;
        }
        h->str[id] = copy;
        h->str_len[id] = (uint32_t)len;
        h->n_str++;
        *out = id;
        return 0;
    }
}

static uint64_t node_key(enum nkind kind, uint32_t parent, uint32_t sid)
{
    return ((uint64_t)kind << 62) | ((uint64_t)parent << 31) | sid;
}

/* Model-state node id for (kind, parent, sid), created if new. */
static int intern_node(struct mc_lincheck_history *h, enum nkind kind, uint32_t parent,
                       uint32_t sid, uint32_t *out)
{
    if (h->n_nodes >= (1u << 31) - 1)
        return MC_ELIMIT;
    uint64_t k = node_key(kind, parent, sid);
    if (map_get(&h->node_index, k, out))
        return 0;
    if (h->n_nodes == h->cap_nodes) {
        size_t nc = h->cap_nodes ? h->cap_nodes * 2 : 64;
        uint32_t *np = realloc(h->node_parent, nc * sizeof(*np));
        if (!np)
            return MC_ENOMEM;
        h->node_parent = np;
        uint32_t *nsid = realloc(h->node_sid, nc * sizeof(*nsid));
        if (!nsid)
            return MC_ENOMEM;
        h->node_sid = nsid;
        uint8_t *nk = realloc(h->node_kind, nc);
        if (!nk)
            return MC_ENOMEM;
        h->node_kind = nk;
        h->cap_nodes = nc;
    }
    uint32_t id = (uint32_t)h->n_nodes;
    int rc = map_put(&h->node_index, k, id);
    if (rc)
        return rc;
    h->node_parent[id] = parent;
    h->node_sid[id] = sid;
    h->node_kind[id] = (uint8_t)kind;
    h->n_nodes++;
    *out = id;
    return 0;
}

int mc_lincheck_history_new(struct mc_lincheck_history **out)
{
    struct mc_lincheck_history *h = calloc(1, sizeof(*h));
    if (!h)
        return MC_ENOMEM;
    /* node 0: the absent value (kind 0, a key parsing never produces) */
    uint32_t id;
    int rc = intern_node(h, (enum nkind)0, 0, 0, &id);
    if (rc) {
        mc_lincheck_history_free(h);
        return rc;
    }
    assert(id == 0);
    *out = h;
    return 0;
}

void mc_lincheck_history_free(struct mc_lincheck_history *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->n_str; i++)
        free(h->str[i]);
    free(h->str);
    free(h->str_len);
    map_free(&h->str_index);
    free(h->node_parent);
    free(h->node_sid);
    free(h->node_kind);
    map_free(&h->node_index);
    free(h->key_sid);
    map_free(&h->key_index);
    map_free(&h->proc_index);
    free(h->ops);
    free(h);
}

/* ---------- parsing ---------- */

static int bad(const struct mc_lincheck_history *h, char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int bad(const struct mc_lincheck_history *h, char *err, size_t err_len, const char *fmt, ...)
{
    if (err && err_len) {
        int n = snprintf(err, err_len, "line %u: ", h->line);
        if (n >= 0 && (size_t)n < err_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(err + n, err_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return MC_EINVAL;
}

static int parse_f(const char *s, uint8_t *f)
{
    for (uint8_t i = 0; i < 4; i++) {
        if (strcmp(s, fnames[i]) == 0) {
            *f = i;
            return 0;
        }
    }
    return MC_EINVAL;
}

/* State id of a register value: null/absent -> 0, string -> REG(v). */
static int reg_state(struct mc_lincheck_history *h, json_t *v, uint32_t *out)
{
    if (!v || json_is_null(v)) {
        *out = 0;
        return 0;
    }
    if (!json_is_string(v))
        return MC_EINVAL;
    uint32_t sid;
    int rc = intern_str(h, json_string_value(v), json_string_length(v), &sid);
    if (rc)
        return rc;
    return intern_node(h, N_REG, 0, sid, out);
}

/* State read by a get: register value or, for a JSON array, the list of appended elements. */
static int read_state(struct mc_lincheck_history *h, json_t *v, uint32_t *out)
{
    if (!json_is_array(v))
        return reg_state(h, v, out);
    uint32_t st = 0;
    size_t i;
    json_t *e;
    json_array_foreach(v, i, e)
    {
        if (!json_is_string(e))
            return MC_EINVAL;
        uint32_t sid;
        int rc = intern_str(h, json_string_value(e), json_string_length(e), &sid);
        if (rc)
            return rc;
        rc = intern_node(h, N_APP, st, sid, &st);
        if (rc)
            return rc;
    }
    *out = st;
    return 0;
}

static int add_invoke(struct mc_lincheck_history *h, json_t *o, int64_t process, int64_t t,
                      char *err, size_t err_len)
{
    json_t *jf = json_object_get(o, "f"), *jk = json_object_get(o, "key");
    json_t *jv = json_object_get(o, "value"), *je = json_object_get(o, "expected");
    uint32_t pending = 0;
    if (map_get(&h->proc_index, (uint64_t)process, &pending) && pending)
        return bad(h, err, err_len, "process %lld invokes while its op from line %u is pending",
                   (long long)process, h->ops[pending - 1].call_line);
    struct op op = {0};
    if (!json_is_string(jf) || parse_f(json_string_value(jf), &op.f))
        return bad(h, err, err_len, "invoke needs \"f\" one of put|get|cas|append");
    if (!json_is_string(jk))
        return bad(h, err, err_len, "invoke needs a string \"key\"");
    int rc;
    uint32_t ksid, kidx;
    if ((rc = intern_str(h, json_string_value(jk), json_string_length(jk), &ksid)))
        return rc;
    if (!map_get(&h->key_index, ksid, &kidx)) {
        if (h->n_keys >= MC_LINCHECK_MAX_KEYS)
            return bad(h, err, err_len, "more than %u keys", MC_LINCHECK_MAX_KEYS);
        if ((rc = grow((void **)&h->key_sid, &h->cap_keys, h->n_keys + 1, sizeof(uint32_t))))
            return rc;
        kidx = (uint32_t)h->n_keys++;
        h->key_sid[kidx] = ksid;
        if ((rc = map_put(&h->key_index, ksid, kidx)))
            return rc;
    }
    op.key = kidx;
    if (op.f == F_PUT || op.f == F_CAS || op.f == F_APPEND) {
        if (!json_is_string(jv))
            return bad(h, err, err_len, "%s invoke needs a string \"value\"", fnames[op.f]);
        if (op.f == F_APPEND)
            rc = intern_str(h, json_string_value(jv), json_string_length(jv), &op.arg);
        else
            rc = reg_state(h, jv, &op.arg);
        if (rc)
            return rc;
    }
    if (op.f == F_CAS) {
        if (je && !json_is_null(je) && !json_is_string(je))
            return bad(h, err, err_len, "cas \"expected\" must be a string or null");
        if ((rc = reg_state(h, je, &op.expected)))
            return rc;
    }
    op.process = process;
    op.call_ns = t;
    op.call_pos = h->pos++;
    op.call_line = h->line;
    op.ret_pos = NO_POS;
    op.status = ST_PENDING;
    if ((rc = grow((void **)&h->ops, &h->cap_ops, h->n_ops + 1, sizeof(*h->ops))))
        return rc;
    h->ops[h->n_ops++] = op;
    return map_put(&h->proc_index, (uint64_t)process, (uint32_t)h->n_ops);
}

static int add_completion(struct mc_lincheck_history *h, json_t *o, int64_t process, uint8_t status,
                          int64_t t, char *err, size_t err_len)
{
    uint32_t pending = 0;
    if (!map_get(&h->proc_index, (uint64_t)process, &pending) || !pending)
        return bad(h, err, err_len, "completion for process %lld which has no pending invoke",
                   (long long)process);
    struct op *op = &h->ops[pending - 1];
    json_t *jf = json_object_get(o, "f");
    uint8_t f;
    if (jf && (!json_is_string(jf) || parse_f(json_string_value(jf), &f) || f != op->f))
        return bad(h, err, err_len, "completion \"f\" does not match the invoke on line %u",
                   op->call_line);
    json_t *jk = json_object_get(o, "key");
    if (jk) {
        const char *ks = h->str[h->key_sid[op->key]];
        size_t kl = h->str_len[h->key_sid[op->key]];
        if (!json_is_string(jk) || json_string_length(jk) != kl ||
            memcmp(json_string_value(jk), ks, kl) != 0)
            return bad(h, err, err_len, "completion \"key\" does not match the invoke on line %u",
                       op->call_line);
    }
    if (op->f == F_GET && status == ST_OK) {
        int rc = read_state(h, json_object_get(o, "value"), &op->out);
        if (rc == MC_EINVAL)
            return bad(h, err, err_len,
                       "get ok \"value\" must be a string, null or an array of strings");
        if (rc)
            return rc;
    }
    op->status = status;
    op->ret_ns = t;
    op->ret_line = h->line;
    op->ret_pos = status == ST_INFO ? NO_POS : h->pos;
    h->pos++;
    return map_put(&h->proc_index, (uint64_t)process, 0);
}

int mc_lincheck_add_line(struct mc_lincheck_history *h, const char *line, size_t len, char *err,
                         size_t err_len)
{
    h->line++;
    size_t i = 0;
    while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n'))
        i++;
    if (i == len)
        return 0; /* blank lines are allowed */
    if (len > MC_LINCHECK_MAX_LINE_BYTES)
        return bad(h, err, err_len, "longer than %u bytes", MC_LINCHECK_MAX_LINE_BYTES);
    json_error_t jerr;
    json_t *o = json_loadb(line, len, 0, &jerr);
    if (!o)
        return bad(h, err, err_len, "invalid JSON: %s", jerr.text);
    int rc;
    json_t *jp = json_object_get(o, "process"), *jt = json_object_get(o, "type");
    json_t *jtime = json_object_get(o, "time_ns");
    if (!json_is_object(o)) {
        rc = bad(h, err, err_len, "not a JSON object");
        goto out;
    }
    if (!json_is_integer(jp)) {
        rc = bad(h, err, err_len, "needs an integer \"process\"");
        goto out;
    }
    if (jtime && !json_is_integer(jtime)) {
        rc = bad(h, err, err_len, "\"time_ns\" must be an integer");
        goto out;
    }
    int64_t t = jtime ? (int64_t)json_integer_value(jtime) : 0;
    const char *type = json_is_string(jt) ? json_string_value(jt) : "";
    int64_t process = (int64_t)json_integer_value(jp);
    if (strcmp(type, "invoke") == 0)
        rc = add_invoke(h, o, process, t, err, err_len);
    else if (strcmp(type, "ok") == 0)
        rc = add_completion(h, o, process, ST_OK, t, err, err_len);
    else if (strcmp(type, "fail") == 0)
        rc = add_completion(h, o, process, ST_FAIL, t, err, err_len);
    else if (strcmp(type, "info") == 0)
        rc = add_completion(h, o, process, ST_INFO, t, err, err_len);
    else
        rc = bad(h, err, err_len, "\"type\" must be invoke|ok|fail|info");
    if (rc == MC_ELIMIT)
        rc = bad(h, err, err_len, "too many distinct values (limit 2^31)");
out:
    json_decref(o);
    return rc;
}

int mc_lincheck_load_file(struct mc_lincheck_history *h, const char *path, char *err,
                          size_t err_len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
    if (!f) {
        snprintf(err, err_len, "%s: %s", path, strerror(errno));
        return MC_EINVAL;
    }
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&buf, &cap, f)) >= 0) {
        rc = mc_lincheck_add_line(h, buf, (size_t)n, err, err_len);
        if (rc)
            break;
    }
    if (!rc && ferror(f)) {
        snprintf(err, err_len, "%s: read error", path);
        rc = MC_EINVAL;
    }
    free(buf);
    if (f != stdin)
        fclose(f);
    return rc;
}

/* ---------- printing ---------- */

static void print_str(FILE *out, const struct mc_lincheck_history *h, uint32_t sid)
{
    json_t *s = json_stringn(h->str[sid], h->str_len[sid]);
    char *d = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
    fputs(d ? d : "?", out);
    free(d);
    json_decref(s);
}

static void print_state(FILE *out, const struct mc_lincheck_history *h, uint32_t st)
{
    if (st == 0) {
        fputs("(absent)", out);
        return;
    }
    if (h->node_kind[st] == N_REG) {
        print_str(out, h, h->node_sid[st]);
        return;
    }
    uint32_t chain[MAX_PRINT_LIST];
    size_t n = 0, total = 0;
    for (uint32_t s = st; s; s = h->node_parent[s], total++) {
        if (n < MAX_PRINT_LIST)
            chain[n++] = s;
    }
    fputs("[", out);
    if (total > n)
        fprintf(out, "...%zu more, ", total - n);
    for (size_t i = n; i-- > 0;) {
        print_str(out, h, h->node_sid[chain[i]]);
        if (i)
            fputs(",", out);
    }
    fputs("]", out);
}

static void print_op(FILE *out, const struct mc_lincheck_history *h, const struct op *op)
{
    fprintf(out, " line %u: process %lld %s", op->call_line, (long long)op->process, fnames[op->f]);
    switch (op->f) {
    case F_PUT:
        fputs(" ", out);
        print_state(out, h, op->arg);
        break;
    case F_GET:
        if (op->status == ST_OK) {
            fputs(" -> ", out);
            print_state(out, h, op->out);
        }
        break;
    case F_CAS:
        fputs(" ", out);
        print_state(out, h, op->expected);
        fputs(" -> ", out);
        print_state(out, h, op->arg);
        break;
    case F_APPEND:
        fputs(" ", out);
        print_str(out, h, op->arg);
        break;
    }
    fprintf(out, " %s, invoked at %lld ns", stnames[op->status], (long long)op->call_ns);
    if (op->status == ST_OK)
        fprintf(out, ", completed at %lld ns (line %u)", (long long)op->ret_ns, op->ret_line);
    else if (op->status == ST_INFO)
        fprintf(out, ", outcome unknown since %lld ns (line %u)", (long long)op->ret_ns,
                op->ret_line);
    else
        fputs(", never completed", out);
    fputs("\n", out);
}

/* ---------- search ---------- */

struct entry {
    uint32_t op; /* index into the key's op list */
    uint8_t is_call;
    struct entry *match, *prev, *next;
};

/* 16 bytes: the set's 64+32-bit hash and the model state + 1 (0 marks an empty slot). */
struct memo_slot {
    uint64_t a;
    uint32_t b, state1;
};

struct memo {
    struct memo_slot *slots;
    size_t cap, n, max;
};

/* Insert (a, b, state); 1 if new, 0 if seen, negative on limit/ENOMEM. */
static int memo_add(struct memo *m, uint64_t a, uint64_t b, uint32_t state)
{
    if ((m->n + 1) * 2 > m->cap) {
        if (m->n >= m->max)
            return MC_ELIMIT;
        size_t nc = m->cap ? m->cap * 2 : 1024;
        struct memo_slot *ns = calloc(nc, sizeof(*ns));
        if (!ns)
            return MC_ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            if (!m->slots[i].state1)
                continue;
            size_t j = mix64(m->slots[i].a ^ m->slots[i].state1) & (nc - 1);
            while (ns[j].state1)
                j = (j + 1) & (nc - 1);
            ns[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = ns;
        m->cap = nc;
    }
    size_t mask = m->cap - 1;
    uint32_t s1 = state + 1, b32 = (uint32_t)b;
    size_t i = mix64(a ^ s1) & mask;
    while (m->slots[i].state1) {
        struct memo_slot *s = &m->slots[i];
        if (s->a == a && s->b == b32 && s->state1 == s1)
            return 0;
        i = (i + 1) & mask;
    }
    m->slots[i] = (struct memo_slot){.a = a, .b = b32, .state1 = s1};
    m->n++;
    return 1;
}

struct frame {
    struct entry *e;
    uint32_t state;
    uint64_t a, b;
};

struct keycheck {
    struct mc_lincheck_history *h;
    uint32_t *ops; /* global op indices of this key, kept ones */
    size_t n;
    /* failure window */
    size_t best_depth;
    int have_best;
    uint32_t best_state;
    uint32_t best_stuck;
    uint32_t best_cands[WINDOW_CANDIDATES];
    size_t n_cands, more_cands;
    uint32_t best_hist[WINDOW_HISTORY];
    size_t n_hist;
    const char *reason;
};

/* Model step of a register/list: 1 and *next when op may take effect in state, else 0. */
static int step(struct mc_lincheck_history *h, const struct op *op, uint32_t state, uint32_t *next,
                int *err)
{
    switch (op->f) {
    case F_PUT:
        *next = op->arg;
        return 1;
    case F_GET:
        *next = state;
        return state == op->out;
    case F_CAS:
        *next = op->arg;
        return state == op->expected;
    case F_APPEND:
        *err = intern_node(h, N_APP, state, op->arg, next);
        return *err == 0;
    }
    return 0;
}

static void lift(struct entry *e)
{
    e->prev->next = e->next;
    if (e->next)
        e->next->prev = e->prev;
    struct entry *m = e->match;
    m->prev->next = m->next;
    if (m->next)
        m->next->prev = m->prev;
}

static void unlift(struct entry *e)
{
    struct entry *m = e->match;
    m->prev->next = m;
    if (m->next)
        m->next->prev = m;
    e->prev->next = e;
    if (e->next)
        e->next->prev = e;
}

static void record_stuck(struct keycheck *kc, struct entry *head, struct entry *ret,
                         const struct frame *stack, size_t depth, uint32_t state)
{
    if (kc->have_best && depth <= kc->best_depth)
        return;
    kc->have_best = 1;
    kc->best_depth = depth;
    kc->best_state = state;
    kc->best_stuck = kc->ops[ret->op];
    kc->n_cands = kc->more_cands = 0;
    for (struct entry *e = head->next; e && e != ret; e = e->next) {
        if (!e->is_call)
            continue;
        if (kc->n_cands < WINDOW_CANDIDATES)
            kc->best_cands[kc->n_cands++] = kc->ops[e->op];
        else
            kc->more_cands++;
    }
    kc->n_hist = 0;
    for (size_t i = depth; i-- > 0 && kc->n_hist < WINDOW_HISTORY;)
        kc->best_hist[kc->n_hist++] = kc->ops[stack[i].e->op];
}

static int cmp_ev(const void *pa, const void *pb)
{
    const uint64_t *a = pa, *b = pb;
    if (a[0] != b[0])
        return (a[0] > b[0]) - (a[0] < b[0]);
    return (a[1] > b[1]) - (a[1] < b[1]);
}

/*
 * Search one key. Returns the verdict (LINEARIZABLE, VIOLATION, UNKNOWN with kc->reason) or a
 * negative MC_E* code.
 */
static int search_key(struct keycheck *kc, const struct mc_lincheck_opts *o, uint64_t deadline_ns)
{
    struct mc_lincheck_history *h = kc->h;
    size_t n = kc->n;
    int verdict = MC_ENOMEM;
    struct entry *ents = calloc(2 * n + 1, sizeof(*ents));
    uint64_t *ev = malloc(2 * n * 2 * sizeof(*ev));
    uint64_t *za = malloc(n * sizeof(*za)), *zb = malloc(n * sizeof(*zb));
    struct frame *stack = malloc(n * sizeof(*stack));
    struct memo memo = {.max = o->max_cache_entries};
    if (!ents || !ev || !za || !zb || !stack)
        goto out;

    /* Events in real-time order; info returns sort after everything (pos NO_POS, then index). */
    for (size_t i = 0; i < n; i++) {
        const struct op *op = &h->ops[kc->ops[i]];
        ev[4 * i] = op->call_pos;
        ev[4 * i + 1] = (uint64_t)i << 1 | 1;
        ev[4 * i + 2] = op->eff_ret;
        ev[4 * i + 3] = (uint64_t)i << 1;
    }
    qsort(ev, 2 * n, 2 * sizeof(uint64_t), cmp_ev);
    struct entry *head = &ents[2 * n];
    struct entry *prev = head;
    struct entry *calls = ents; /* ents[i] = call of op i, ents[n + i] = its return */
    for (size_t k = 0; k < 2 * n; k++) {
        uint32_t i = (uint32_t)(ev[2 * k + 1] >> 1);
        int is_call = (int)(ev[2 * k + 1] & 1);
        struct entry *e = is_call ? &calls[i] : &calls[n + i];
        e->op = i;
        e->is_call = (uint8_t)is_call;
        e->match = is_call ? &calls[n + i] : &calls[i];
        e->prev = prev;
        prev->next = e;
        prev = e;
    }

    struct mc_rand r;
    mc_rand_seed(&r, 0x6c696e636865636bULL ^ n);
    size_t required = 0;
    for (size_t i = 0; i < n; i++) {
        za[i] = mc_rand_next(&r);
        zb[i] = mc_rand_next(&r);
        required += h->ops[kc->ops[i]].must;
    }

    size_t depth = 0;
    uint32_t state = 0;
    uint64_t a = 0, b = 0, iter = 0;
    struct entry *e = head->next;
    for (;;) {
        if (required == 0) {
            verdict = MC_LINCHECK_LINEARIZABLE;
            break;
        }
        if ((++iter & 0xfff) == 0 && mc_mono_ns() > deadline_ns) {
            kc->reason = "time limit reached";
            verdict = MC_LINCHECK_UNKNOWN;
            break;
        }
        assert(e);
        if (e->is_call) {
            const struct op *op = &h->ops[kc->ops[e->op]];
            uint32_t next;
            int serr = 0;
            if (step(h, op, state, &next, &serr)) {
                uint64_t na = a ^ za[e->op], nb = b ^ zb[e->op];
                int added = memo_add(&memo, na, nb, next);
                if (added == MC_ELIMIT) {
                    kc->reason = "memo entry limit reached";
                    verdict = MC_LINCHECK_UNKNOWN;
                    break;
                }
                if (added < 0) {
                    verdict = added;
                    break;
                }
                if (added) {
                    stack[depth++] = (struct frame){.e = e, .state = state, .a = a, .b = b};
                    state = next;
                    a = na;
                    b = nb;
                    lift(e);
                    required -= op->must;
                    e = head->next;
                    continue;
                }
            } else if (serr) {
                verdict = serr == MC_ELIMIT ? MC_LINCHECK_UNKNOWN : serr;
                kc->reason = "too many distinct list states";
                break;
            }
            e = e->next;
        } else {
            /* A completed op cannot be linearized before its return: backtrack. */
            record_stuck(kc, head, e, stack, depth, state);
            if (depth == 0) {
                verdict = MC_LINCHECK_VIOLATION;
                break;
            }
            struct frame *fr = &stack[--depth];
            state = fr->state;
            a = fr->a;
            b = fr->b;
            unlift(fr->e);
            required += h->ops[kc->ops[fr->e->op]].must;
            e = fr->e->next;
        }
    }
out:
    free(ents);
    free(ev);
    free(za);
    free(zb);
    free(stack);
    free(memo.slots);
    return verdict;
}

/* Mark string ids / states observed by reads (and cas expectations) on this key. */
static int observed_index(struct mc_lincheck_history *h, const uint32_t *ops, size_t n,
                          struct map *seen_states, struct map *seen_elems)
{
    int rc;
    for (size_t i = 0; i < n; i++) {
        const struct op *op = &h->ops[ops[i]];
        uint32_t st;
        if (op->f == F_GET && op->status == ST_OK)
            st = op->out;
        else if (op->f == F_CAS && op->status != ST_FAIL)
            st = op->expected;
        else
            continue;
        if ((rc = map_put(seen_states, st, 1)))
            return rc;
        for (uint32_t s = st; s && h->node_kind[s] == N_APP; s = h->node_parent[s]) {
            if ((rc = map_put(seen_elems, h->node_sid[s], 1)))
                return rc;
        }
    }
    return 0;
}

/* Written values / appended elements of ops that may have taken effect on this key. */
static int written_index(struct mc_lincheck_history *h, const uint32_t *ops, size_t n,
                         struct map *written)
{
    for (size_t i = 0; i < n; i++) {
        const struct op *op = &h->ops[ops[i]];
        if (op->status == ST_FAIL || op->f == F_GET)
            continue;
        int rc = map_put(
            written, op->f == F_APPEND ? (uint64_t)op->arg << 1 | 1 : (uint64_t)op->arg << 1, 1);
        if (rc)
            return rc;
    }
    return 0;
}

/* A read (or cas expectation) of something no op wrote: index of that op, or -1. */
static long never_written(struct mc_lincheck_history *h, const uint32_t *ops, size_t n,
                          const struct map *written)
{
    for (size_t i = 0; i < n; i++) {
        const struct op *op = &h->ops[ops[i]];
        uint32_t st, v;
        if (op->f == F_GET && op->status == ST_OK)
            st = op->out;
        else if (op->f == F_CAS && op->status == ST_OK)
            st = op->expected;
        else
            continue;
        if (st && h->node_kind[st] == N_REG && !map_get(written, (uint64_t)st << 1, &v))
            return (long)i;
        for (uint32_t s = st; s && h->node_kind[s] == N_APP; s = h->node_parent[s]) {
            if (!map_get(written, (uint64_t)h->node_sid[s] << 1 | 1, &v))
                return (long)i;
        }
    }
    return -1;
}

/* Map key of what a write produces: register state or appended element. */
static uint64_t wkey(const struct op *op)
{
    return op->f == F_APPEND ? (uint64_t)op->arg << 1 | 1 : (uint64_t)op->arg << 1;
}

static int note_observer(struct mc_lincheck_history *h, struct map *first, uint64_t k, uint32_t oi)
{
    uint32_t cur;
    if (map_get(first, k, &cur) && h->ops[cur].ret_pos <= h->ops[oi].ret_pos)
        return 0;
    return map_put(first, k, oi);
}

/*
 * Tighten info writes. If a value (or appended element) is written by exactly one op and an
 * op that completed ok observed it, that write took effect before the observer completed: give
 * it that return position and require it. Without this every observed info write stays
 * concurrent with the rest of the history and an exhaustive search (needed to prove a violation)
 * doubles per pending info op.
 */
static int bound_info(struct mc_lincheck_history *h, const uint32_t *ops, size_t n)
{
    struct map writers = {0}, first = {0};
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        struct op *op = &h->ops[ops[i]];
        op->eff_ret = op->ret_pos;
        op->must = op->status == ST_OK;
        if (op->status == ST_FAIL || op->f == F_GET)
            continue;
        uint32_t c = 0;
        map_get(&writers, wkey(op), &c);
        if ((rc = map_put(&writers, wkey(op), c + 1)))
            goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct op *op = &h->ops[ops[i]];
        uint32_t st;
        if (op->status != ST_OK)
            continue;
        if (op->f == F_GET)
            st = op->out;
        else if (op->f == F_CAS)
            st = op->expected;
        else
            continue;
        if (st && h->node_kind[st] == N_REG &&
            (rc = note_observer(h, &first, (uint64_t)st << 1, ops[i])))
            goto out;
        for (uint32_t s = st; s && h->node_kind[s] == N_APP; s = h->node_parent[s]) {
            if ((rc = note_observer(h, &first, (uint64_t)h->node_sid[s] << 1 | 1, ops[i])))
                goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        struct op *op = &h->ops[ops[i]];
        uint32_t c, oi;
        if (op->status != ST_INFO || op->f == F_GET)
            continue;
        if (!map_get(&writers, wkey(op), &c) || c != 1 || !map_get(&first, wkey(op), &oi))
            continue;
        if (h->ops[oi].ret_pos <= op->call_pos)
            continue; /* observed before written: the search reports it */
        op->eff_ret = h->ops[oi].ret_pos;
        op->must = 1;
    }
out:
    map_free(&writers);
    map_free(&first);
    return rc;
}

/* Does op need checking? fail ops never happened; an info op nobody observed may be dropped. */
static int keep_op(const struct mc_lincheck_history *h, const struct op *op,
                   const struct map *seen_states, const struct map *seen_elems)
{
    uint32_t v;
    if (op->status == ST_FAIL)
        return 0;
    if (op->status == ST_OK)
        return 1;
    if (op->f == F_GET)
        return 0; /* an unknown read constrains nothing */
    /*
     * An info write whose value no read or cas ever saw can be removed from any linearization
     * without invalidating it: nothing between it and the next write depended on its value.
     */
    if (op->f == F_APPEND)
        return map_get(seen_elems, op->arg, &v);
    (void)h;
    return map_get(seen_states, op->arg, &v);
}

static void print_window(FILE *out, const struct keycheck *kc)
{
    struct mc_lincheck_history *h = kc->h;
    fprintf(out, "  stuck after linearizing %zu ops; value at that point: ", kc->best_depth);
    print_state(out, h, kc->best_state);
    fputs("\n", out);
    if (kc->n_hist) {
        fputs("  last linearized ops (most recent first):\n", out);
        for (size_t i = 0; i < kc->n_hist; i++) {
            fputs("   ", out);
            print_op(out, h, &h->ops[kc->best_hist[i]]);
        }
    }
    fputs("  could not linearize (no order of these fits the value above; * = had to take effect "
          "before its completion):\n",
          out);
    int stuck_listed = 0;
    for (size_t i = 0; i < kc->n_cands; i++) {
        int is_stuck = kc->best_cands[i] == kc->best_stuck;
        stuck_listed |= is_stuck;
        fputs(is_stuck ? "  *" : "   ", out);
        print_op(out, h, &h->ops[kc->best_cands[i]]);
    }
    if (kc->more_cands)
        fprintf(out, "      ... and %zu more concurrent ops\n", kc->more_cands);
    if (!stuck_listed) {
        fputs("  *", out);
        print_op(out, h, &h->ops[kc->best_stuck]);
    }
}

static int cmp_u32_key(const void *pa, const void *pb, void *ctx)
{
    const struct mc_lincheck_history *h = ctx;
    uint32_t a = *(const uint32_t *)pa, b = *(const uint32_t *)pb;
    uint32_t ka = h->ops[a].key, kb = h->ops[b].key;
    if (ka != kb)
        return (ka > kb) - (ka < kb);
    return (a > b) - (a < b);
}

static void copy_key(const struct mc_lincheck_history *h, uint32_t key, char *dst, size_t cap)
{
    uint32_t sid = h->key_sid[key];
    size_t l = h->str_len[sid] < cap - 1 ? h->str_len[sid] : cap - 1;
    memcpy(dst, h->str[sid], l);
    dst[l] = 0;
}

int mc_lincheck_check(struct mc_lincheck_history *h, const struct mc_lincheck_opts *opts, FILE *out,
                      struct mc_lincheck_report *report)
{
    struct mc_lincheck_opts o = opts ? *opts : (struct mc_lincheck_opts){0};
    if (!o.max_ops_per_key)
        o.max_ops_per_key = MC_LINCHECK_DEFAULT_MAX_OPS_PER_KEY;
    if (!o.time_limit_ms)
        o.time_limit_ms = MC_LINCHECK_DEFAULT_TIME_LIMIT_MS;
    if (!o.max_cache_entries)
        o.max_cache_entries = MC_LINCHECK_DEFAULT_MAX_CACHE;
    uint64_t start = mc_mono_ns(), deadline = start + o.time_limit_ms * 1000000ULL;
    memset(report, 0, sizeof(*report));
    report->keys = h->n_keys;

    /* Group op indices by key, preserving history order within a key. */
    uint32_t *order = malloc((h->n_ops ? h->n_ops : 1) * sizeof(*order));
    uint32_t *kept = malloc((h->n_ops ? h->n_ops : 1) * sizeof(*kept));
    if (!order || !kept) {
        free(order);
        free(kept);
        return MC_ENOMEM;
    }
    for (size_t i = 0; i < h->n_ops; i++) {
        order[i] = (uint32_t)i;
        if (h->ops[i].status == ST_PENDING)
            h->ops[i].status = ST_INFO; /* never completed: outcome unknown */
    }
    qsort_r(order, h->n_ops, sizeof(*order), cmp_u32_key, h);

    int rc = 0, verdict = MC_LINCHECK_LINEARIZABLE;
    const char *unknown_reason = NULL;
    size_t i = 0;
    while (i < h->n_ops) {
        size_t j = i;
        uint32_t key = h->ops[order[i]].key;
        while (j < h->n_ops && h->ops[order[j]].key == key)
            j++;
        const uint32_t *kops = order + i;
        size_t kn = j - i;
        i = j;

        struct map seen_states = {0}, seen_elems = {0}, written = {0};
        if ((rc = observed_index(h, kops, kn, &seen_states, &seen_elems)) ||
            (rc = written_index(h, kops, kn, &written))) {
            map_free(&seen_states);
            map_free(&seen_elems);
            map_free(&written);
            break;
        }
        long nw = never_written(h, kops, kn, &written);
        if (!rc)
            rc = bound_info(h, kops, kn);
        size_t nk = 0;
        for (size_t k = 0; k < kn; k++) {
            if (keep_op(h, &h->ops[kops[k]], &seen_states, &seen_elems))
                kept[nk++] = kops[k];
        }
        map_free(&seen_states);
        map_free(&seen_elems);
        map_free(&written);
        if (rc)
            break;
        report->ops += nk;

        if (nw >= 0) {
            verdict = MC_LINCHECK_VIOLATION;
            copy_key(h, key, report->failed_key, sizeof(report->failed_key));
            if (out) {
                fputs("not linearizable\nkey ", out);
                print_str(out, h, h->key_sid[key]);
                fputs(": read of a value that no operation wrote:\n   ", out);
                print_op(out, h, &h->ops[kops[nw]]);
            }
            break;
        }
        if (nk > o.max_ops_per_key) {
            if (!unknown_reason) {
                unknown_reason = "per-key op limit exceeded";
                copy_key(h, key, report->failed_key, sizeof(report->failed_key));
            }
            continue;
        }
        struct keycheck kc = {.h = h, .ops = kept, .n = nk};
        int v = nk ? search_key(&kc, &o, deadline) : MC_LINCHECK_LINEARIZABLE;
        if (v < 0) {
            rc = v;
            break;
        }
        if (v == MC_LINCHECK_UNKNOWN) {
            if (!unknown_reason) {
                unknown_reason = kc.reason;
                copy_key(h, key, report->failed_key, sizeof(report->failed_key));
            }
            if (mc_mono_ns() > deadline)
                break;
            continue;
        }
        if (v == MC_LINCHECK_VIOLATION) {
            verdict = v;
            copy_key(h, key, report->failed_key, sizeof(report->failed_key));
            if (out) {
                fputs("not linearizable\nkey ", out);
                print_str(out, h, h->key_sid[key]);
                fprintf(out, " (%zu ops checked):\n", nk);
                print_window(out, &kc);
            }
            break;
        }
    }
    free(order);
    free(kept);
    report->elapsed_ns = mc_mono_ns() - start;
    if (rc)
        return rc;
    if (verdict == MC_LINCHECK_LINEARIZABLE && unknown_reason) {
        verdict = MC_LINCHECK_UNKNOWN;
        if (out) {
            fprintf(out, "unknown\n%s on key ", unknown_reason);
            json_t *s = json_string(report->failed_key);
            char *d = s ? json_dumps(s, JSON_ENCODE_ANY) : NULL;
            fprintf(out, "%s (limits: %zu ops per key, %llu ms)\n", d ? d : "?", o.max_ops_per_key,
                    (unsigned long long)o.time_limit_ms);
            free(d);
            json_decref(s);
        }
    } else if (verdict == MC_LINCHECK_LINEARIZABLE && out) {
        fputs("linearizable\n", out);
    }
    report->verdict = (enum mc_lincheck_verdict)verdict;
    return 0;
}
