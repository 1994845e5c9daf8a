/* jepsen_client.c: history-recording client for the fault harness: P processes (threads, each with
 * its own mc_client, connection and session) run random put/get/cas on K register keys and
 * write-once appends, recording every op as a JSON line for build/lincheck.
 *
 *   jepsen_client --endpoints LIST --out FILE [--processes P] [--keys K] [--duration S]
 *                 [--seed N] [--timeout-ms T] [--max-ops N] [--bucket B] [--appends FILE]
 *                 [--consistency linearizable|stale]     (stale: to show the checker catches it)
 *   jepsen_client --verify --endpoints LIST --out FILE [--keys K] [--appends FILE] ...
 *   jepsen_client --check --endpoints LIST [--duration S]
 *
 * Run mode writes the history to --out (line order = real-time order: the invoke line is written
 * before the request is sent, the completion line after its answer arrived, both under one lock)
 * and the append outcomes to --appends (default OUT.appends), one JSON line per append:
 * {"process":P,"key":"a/P/N","value":"pP-aN","status":"ok|fail|info"}.
 * Verify mode (after the cluster healed) appends a final linearizable get of every register key
 * to the history (new process ids, so lincheck sees any lost acknowledged write) and reads back
 * every acknowledged append: each must exist with its value; missing ones are printed. --duration
 * bounds the whole verification (exit 2 when it runs out).
 * Check mode asks every endpoint for its state hash (pinned, one by one) until all answer with the
 * same applied index, retrying for up to --duration seconds while the cluster settles: equal
 * index and hash = converged (exit 0); equal index with different hashes twice in a row =
 * divergence (exit 1, naming the nodes); no common index in time = exit 1.
 * Last stdout line: a JSON summary. Exit 0 ok, 1 lost appends (verify), 2 usage/setup error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "metacenter/client.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/rand.h"

#define PROCS_MIN       8
#define PROCS_MAX       64
#define KEYS_MAX        10
#define VALUE_MAX       48
#define APPENDS_MAX     (1u << 20) /* acknowledged appends verify reads back, at most */
#define OPS_MAX_DEFAULT 200000u    /* all processes together; bounds history size */

struct cfg {
    const char *endpoints;
    const char *out_path;
    const char *appends_path;
    const char *bucket;
    int processes;
    int keys;
    double duration_s;
    uint64_t seed;
    uint32_t timeout_ms;
    uint64_t max_ops;
    bool verify;
    bool check;
    bool stale_reads; /* --consistency stale: harness self-check (must NOT be linearizable) */
};

/* Shared recorder: one lock keeps line order equal to real-time order. */
struct recorder {
    pthread_mutex_t mu;
    FILE *hist;
    FILE *appends;
    uint64_t ops_started; /* invokes so far (all processes), bounded by max_ops */
    uint64_t count[4][5]; /* [f][outcome] */
};

enum fn { F_PUT = 0, F_GET, F_CAS, F_APPEND };
enum outcome { O_INVOKE = 0, O_OK, O_FAIL, O_INFO, O_SKIP };
static const char *const FN_NAME[] = {"put", "get", "cas", "append"};
static const char *const OUT_NAME[] = {"invoke", "ok", "fail", "info", "skip"};

struct proc {
    int id;
    const struct cfg *cfg;
    struct recorder *rec;
    pthread_t thread;
    struct mc_client *client;
    struct mc_rand rng;
    uint64_t n;                     /* values written so far by this process */
    char last[KEYS_MAX][VALUE_MAX]; /* value last read per key ("" = read missing) */
    bool have_last[KEYS_MAX];       /* a read of that key completed */
    uint64_t deadline_ns;
};

static void usage(void)
{
    fprintf(stderr,
            "usage: jepsen_client --endpoints LIST --out FILE [--processes P (>=%d)] "
            "[--keys K (<=%d)] [--duration S] [--seed N] [--timeout-ms T] [--max-ops N] "
            "[--bucket B] [--appends FILE] [--consistency linearizable|stale] [--verify] "
            "[--check]\n",
            PROCS_MIN, KEYS_MAX);
}

/* JSON string field ("key":"value") or null; our values are printable ASCII without quotes. */
static void jstr(FILE *f, const char *name, const char *v)
{
    if (!v) {
        fprintf(f, ",\"%s\":null", name);
        return;
    }
    fprintf(f, ",\"%s\":\"", name);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            fputc('\\', f);
        }
        fputc((unsigned char)*p >= 0x20 ? *p : '?', f);
    }
    fputc('"', f);
}

/* Invoke line; returns false when the op budget is spent (nothing written). */
static bool rec_invoke(struct recorder *r, const struct cfg *cfg, int proc, enum fn f,
                       const char *key, const char *value, bool has_expected, const char *expected)
{
    pthread_mutex_lock(&r->mu);
    if (r->ops_started >= cfg->max_ops) {
        pthread_mutex_unlock(&r->mu);
        return false;
    }
    r->ops_started++;
    r->count[f][O_INVOKE]++;
    if (f != F_APPEND) {
        fprintf(r->hist, "{\"process\":%d,\"type\":\"invoke\",\"f\":\"%s\"", proc, FN_NAME[f]);
        jstr(r->hist, "key", key);
        if (value) {
            jstr(r->hist, "value", value);
        }
        if (has_expected) {
            jstr(r->hist, "expected", expected);
        }
        fprintf(r->hist, ",\"time_ns\":%" PRIu64 "}\n", mc_mono_ns());
    }
    pthread_mutex_unlock(&r->mu);
    return true;
}

/* Completion line. For get ok, value is what was read (NULL = missing). */
static void rec_complete(struct recorder *r, int proc, enum fn f, enum outcome o, const char *key,
                         bool has_value, const char *value)
{
    pthread_mutex_lock(&r->mu);
    r->count[f][o]++;
    if (f == F_APPEND) {
        fprintf(r->appends, "{\"process\":%d", proc);
        jstr(r->appends, "key", key);
        jstr(r->appends, "value", value);
        fprintf(r->appends, ",\"status\":\"%s\"}\n", OUT_NAME[o]);
    } else {
        fprintf(r->hist, "{\"process\":%d,\"type\":\"%s\",\"f\":\"%s\"", proc, OUT_NAME[o],
                FN_NAME[f]);
        jstr(r->hist, "key", key);
        if (has_value) {
            jstr(r->hist, "value", value);
        }
        fprintf(r->hist, ",\"time_ns\":%" PRIu64 "}\n", mc_mono_ns());
    }
    pthread_mutex_unlock(&r->mu);
}

/* A write's outcome from its return code: definite failures are the engine's own verdicts;
 * anything else (timeout, unavailable, shutting down, connection lost) may have applied. */
static enum outcome write_outcome(int rc)
{
    if (rc == 0) {
        return O_OK;
    }
    if (rc == MC_EPRECOND || rc == MC_ENOKEY || rc == MC_ENOBUCKET) {
        return O_FAIL;
    }
    return O_INFO;
}

static int do_put(struct proc *p, const char *key, const char *value, bool cas,
                  const char *expected)
{
    struct mc_object_meta m = {.size = strlen(value), .etag = (char *)value};
    struct mc_put_cond cond = {0};
    if (cas) {
        if (expected) {
            cond.if_match = expected;
        } else {
            cond.if_none_match_star = true;
        }
    }
    return mc_client_put(p->client, p->cfg->bucket, key, &m, cas ? &cond : NULL, NULL);
}

/* Linearizable get; *found false = NoSuchKey. Returns 0 or an error. */
static int do_get(struct mc_client *c, const char *bucket, const char *key, char *value, size_t cap,
                  bool *found)
{
    struct mc_version v = {0};
    int rc = mc_client_get(c, bucket, key, NULL, &v);
    *found = false;
    if (rc == MC_ENOKEY) {
        return 0;
    }
    if (rc == 0) {
        *found = true;
        snprintf(value, cap, "%s", v.meta.etag ? v.meta.etag : "");
        mc_version_clear(&v);
    }
    return rc;
}

static bool op_register(struct proc *p)
{
    int k = (int)mc_rand_below(&p->rng, (uint64_t)p->cfg->keys);
    char key[16], value[VALUE_MAX];
    snprintf(key, sizeof(key), "k%d", k);
    uint64_t dice = mc_rand_below(&p->rng, 100);
    if (dice < 40 || (dice >= 70 && !p->have_last[k])) { /* get (a cas needs a prior read) */
        if (!rec_invoke(p->rec, p->cfg, p->id, F_GET, key, NULL, false, NULL)) {
            return false;
        }
        bool found;
        int rc = do_get(p->client, p->cfg->bucket, key, value, sizeof(value), &found);
        if (rc == 0) {
            p->have_last[k] = true;
            snprintf(p->last[k], sizeof(p->last[k]), "%s", found ? value : "");
        }
        rec_complete(p->rec, p->id, F_GET, rc == 0 ? O_OK : O_FAIL, key, rc == 0,
                     found ? value : NULL);
        return true;
    }
    snprintf(value, sizeof(value), "p%d-%" PRIu64, p->id, ++p->n);
    bool cas = dice >= 70;
    const char *expected = p->last[k][0] ? p->last[k] : NULL;
    enum fn f = cas ? F_CAS : F_PUT;
    if (!rec_invoke(p->rec, p->cfg, p->id, f, key, value, cas, expected)) {
        return false;
    }
    int rc = do_put(p, key, value, cas, expected);
    enum outcome o = write_outcome(rc);
    if (o == O_FAIL && cas) {
        p->have_last[k] = false; /* our view is stale: read again before the next cas */
    }
    rec_complete(p->rec, p->id, f, o, key, false, NULL);
    return true;
}

static bool op_append(struct proc *p)
{
    char key[48], value[VALUE_MAX];
    uint64_t n = ++p->n;
    snprintf(key, sizeof(key), "a/%d/%" PRIu64, p->id, n);
    snprintf(value, sizeof(value), "p%d-a%" PRIu64, p->id, n);
    if (!rec_invoke(p->rec, p->cfg, p->id, F_APPEND, key, value, false, NULL)) {
        return false;
    }
    int rc = do_put(p, key, value, false, NULL);
    rec_complete(p->rec, p->id, F_APPEND, write_outcome(rc), key, true, value);
    return true;
}

static void *proc_main(void *arg)
{
    struct proc *p = arg;
    while (mc_mono_ns() < p->deadline_ns) {
        bool more = mc_rand_below(&p->rng, 100) < 15 ? op_append(p) : op_register(p);
        if (!more) {
            break;
        }
    }
    return NULL;
}

/* follower_reads: linearizable reads rotate over the members (followers ask the leader for a
 * read index) instead of going to the leader; half the processes do so, so that the history
 * covers both paths. */
static int open_client(const struct cfg *cfg, bool follower_reads, struct mc_client **out)
{
    struct mc_client_opts o;
    mc_client_opts_default(&o);
    o.follower_reads = follower_reads;
    o.request_timeout_ms = cfg->timeout_ms;
    o.connect_timeout_ms = cfg->timeout_ms < 1000 ? cfg->timeout_ms : 1000;
    o.backoff_max_ms = 200;
    if (cfg->stale_reads) {
        o.read.consistency = MC_CONSISTENCY_STALE;
    }
    return mc_client_open(cfg->endpoints, &o, out);
}

/* Create the bucket, retrying through elections for up to 30 s. */
static int ensure_bucket(const struct cfg *cfg)
{
    struct mc_client *c;
    int rc = open_client(cfg, false, &c);
    if (rc) {
        return rc;
    }
    uint64_t deadline = mc_mono_ns() + 30ull * 1000000000ull;
    do {
        rc = mc_client_bucket_create(c, cfg->bucket, MC_VERSIONING_UNVERSIONED);
        if (rc == MC_EBUCKETEXISTS) {
            rc = 0;
        }
        if (rc == 0) {
            break;
        }
        usleep(100 * 1000);
    } while (mc_mono_ns() < deadline);
    if (rc) {
        fprintf(stderr, "jepsen_client: cannot create bucket %s: %s (%s)\n", cfg->bucket,
                mc_error_name(rc), mc_client_last_error(c)->message);
    }
    mc_client_close(c);
    return rc;
}

static int run(const struct cfg *cfg, struct recorder *rec)
{
    int rc = ensure_bucket(cfg);
    if (rc) {
        return 2;
    }
    struct proc *procs = calloc((size_t)cfg->processes, sizeof(*procs));
    if (!procs) {
        return 2;
    }
    uint64_t deadline = mc_mono_ns() + (uint64_t)(cfg->duration_s * 1e9);
    int started = 0;
    for (int i = 0; i < cfg->processes; i++) {
        struct proc *p = &procs[i];
        p->id = i;
        p->cfg = cfg;
        p->rec = rec;
        p->deadline_ns = deadline;
        mc_rand_seed(&p->rng, cfg->seed * 1000003u + (uint64_t)i + 1);
        if ((rc = open_client(cfg, i % 2 == 1, &p->client)) != 0) {
            fprintf(stderr, "jepsen_client: open: %s\n", mc_error_name(rc));
            break;
        }
        if (pthread_create(&p->thread, NULL, proc_main, p) != 0) {
            mc_client_close(p->client);
            rc = MC_ENOMEM;
            break;
        }
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(procs[i].thread, NULL);
        mc_client_close(procs[i].client);
    }
    free(procs);
    return rc ? 2 : 0;
}

/* Final reads of every register key (processes 1000+k) and read-back of acknowledged appends. */
static int verify(const struct cfg *cfg, struct recorder *rec, FILE *appends_in, uint64_t *acked,
                  uint64_t *lost)
{
    struct mc_client *c;
    if (open_client(cfg, false, &c) != 0) {
        return 2;
    }
    int result = 0;
    uint64_t deadline = mc_mono_ns() + (uint64_t)(cfg->duration_s * 1e9);
    for (int k = 0; k < cfg->keys; k++) {
        char key[16], value[VALUE_MAX];
        snprintf(key, sizeof(key), "k%d", k);
        bool found = false;
        int rc = MC_ETIMEOUT;
        for (int attempt = 0; attempt < 10 && rc != 0; attempt++) { /* cluster may be settling */
            rec_invoke(rec, cfg, 1000 + k, F_GET, key, NULL, false, NULL);
            rc = do_get(c, cfg->bucket, key, value, sizeof(value), &found);
            rec_complete(rec, 1000 + k, F_GET, rc == 0 ? O_OK : O_FAIL, key, rc == 0,
                         found ? value : NULL);
        }
        if (rc != 0) {
            fprintf(stderr, "jepsen_client: final read of %s failed: %s\n", key, mc_error_name(rc));
            result = 2;
        }
    }
    char line[512];
    while (appends_in && fgets(line, sizeof(line), appends_in)) {
        if (!strstr(line, "\"status\":\"ok\"")) {
            continue;
        }
        char key[64] = "", want[VALUE_MAX] = "";
        const char *kp = strstr(line, "\"key\":\"");
        const char *vp = strstr(line, "\"value\":\"");
        if (!kp || !vp || sscanf(kp + 7, "%63[^\"]", key) != 1 ||
            sscanf(vp + 9, "%47[^\"]", want) != 1) {
            fprintf(stderr, "jepsen_client: bad appends line: %s", line);
            result = 2;
            continue;
        }
        if (++*acked > APPENDS_MAX) {
            fprintf(stderr, "jepsen_client: more than %u appends, rest not verified\n",
                    APPENDS_MAX);
            break;
        }
        if (mc_mono_ns() > deadline) {
            fprintf(stderr,
                    "jepsen_client: verify incomplete: deadline (--duration %.0f s) "
                    "reached after %" PRIu64 " appends\n",
                    cfg->duration_s, *acked);
            result = 2;
            break;
        }
        char got[VALUE_MAX];
        bool found = false;
        int rc = MC_ETIMEOUT;
        for (int attempt = 0; attempt < 10 && rc != 0; attempt++) {
            rc = do_get(c, cfg->bucket, key, got, sizeof(got), &found);
        }
        if (rc != 0) {
            fprintf(stderr, "jepsen_client: read-back of %s failed: %s\n", key, mc_error_name(rc));
            result = 2;
        } else if (!found || strcmp(got, want) != 0) {
            ++*lost;
            printf("LOST append %s (want %s, got %s)\n", key, want, found ? got : "NoSuchKey");
            if (result == 0) {
                result = 1;
            }
        }
    }
    mc_client_close(c);
    return result;
}

/* State hashes of every endpoint until they agree at one applied index (see the top comment). */
static int check_hashes(const struct cfg *cfg)
{
    struct mc_client *c;
    if (open_client(cfg, false, &c) != 0) {
        return 2;
    }
    int n = mc_client_endpoint_count(c);
    struct mc_check_result res[MC_CLUSTER_MAX_MEMBERS];
    int rcs[MC_CLUSTER_MAX_MEMBERS];
    uint64_t deadline = mc_mono_ns() + (uint64_t)(cfg->duration_s * 1e9);
    int diverged = 0, result = 1, tries = 0;
    while (n > 0 && n <= MC_CLUSTER_MAX_MEMBERS) {
        tries++;
        bool same_index = true, same_hash = true;
        for (int i = 0; i < n; i++) {
            rcs[i] = mc_client_check(c, i, 0, &res[i]);
            if (rcs[i] != 0 || res[i].index != res[0].index) {
                same_index = false;
            } else if (res[i].hash != res[0].hash) {
                same_hash = false;
            }
        }
        if (same_index && same_hash) {
            result = 0;
            break;
        }
        diverged = same_index ? diverged + 1 : 0;
        if (diverged >= 2 || mc_mono_ns() > deadline) {
            break;
        }
        usleep(200 * 1000);
    }
    printf("{\"mode\":\"check\",\"tries\":%d,\"converged\":%s,\"diverged\":%s,\"nodes\":[", tries,
           result == 0 ? "true" : "false", diverged >= 2 ? "true" : "false");
    for (int i = 0; i < n && i < MC_CLUSTER_MAX_MEMBERS; i++) {
        if (rcs[i] == 0) {
            printf("%s{\"endpoint\":\"%s\",\"node\":%" PRIu64 ",\"index\":%" PRIu64
                   ",\"hash\":\"%016" PRIx64 "\"}",
                   i ? "," : "", mc_client_endpoint_addr(c, i), res[i].node_id, res[i].index,
                   res[i].hash);
        } else {
            printf("%s{\"endpoint\":\"%s\",\"error\":\"%s\"}", i ? "," : "",
                   mc_client_endpoint_addr(c, i), mc_error_name(rcs[i]));
        }
    }
    printf("]}\n");
    mc_client_close(c);
    return result;
}

static int parse_args(int argc, char **argv, struct cfg *c)
{
    *c = (struct cfg){.processes = 8,
                      .keys = 5,
                      .duration_s = 10,
                      .seed = 1,
                      .timeout_ms = 2000,
                      .max_ops = OPS_MAX_DEFAULT,
                      .bucket = "jepsen"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--verify") == 0) {
            c->verify = true;
            continue;
        }
        if (strcmp(a, "--check") == 0) {
            c->check = true;
            continue;
        }
        if (!v) {
            return -1;
        }
        i++;
        if (strcmp(a, "--endpoints") == 0) {
            c->endpoints = v;
        } else if (strcmp(a, "--out") == 0) {
            c->out_path = v;
        } else if (strcmp(a, "--appends") == 0) {
            c->appends_path = v;
        } else if (strcmp(a, "--bucket") == 0) {
            c->bucket = v;
        } else if (strcmp(a, "--processes") == 0) {
            c->processes = atoi(v);
        } else if (strcmp(a, "--keys") == 0) {
            c->keys = atoi(v);
        } else if (strcmp(a, "--duration") == 0) {
            c->duration_s = atof(v);
        } else if (strcmp(a, "--seed") == 0) {
            c->seed = strtoull(v, NULL, 10);
        } else if (strcmp(a, "--timeout-ms") == 0) {
            c->timeout_ms = (uint32_t)strtoul(v, NULL, 10);
        } else if (strcmp(a, "--consistency") == 0) {
            enum mc_consistency cons;
            if (mc_consistency_parse(v, &cons) != 0) {
                return -1;
            }
            c->stale_reads = cons == MC_CONSISTENCY_STALE;
        } else if (strcmp(a, "--max-ops") == 0) {
            c->max_ops = strtoull(v, NULL, 10);
        } else {
            return -1;
        }
    }
    if (c->check) {
        return c->endpoints && c->duration_s > 0 ? 0 : -1;
    }
    if (!c->endpoints || !c->out_path || c->processes < PROCS_MIN || c->processes > PROCS_MAX ||
        c->keys < 1 || c->keys > KEYS_MAX || c->duration_s <= 0 || c->duration_s > 86400 ||
        c->timeout_ms < 100 || c->max_ops < 1) {
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct cfg cfg;
    if (parse_args(argc, argv, &cfg) != 0) {
        usage();
        return 2;
    }
    if (cfg.check) {
        return check_hashes(&cfg);
    }
    char apath[4096];
    if (!cfg.appends_path) {
        snprintf(apath, sizeof(apath), "%s.appends", cfg.out_path);
        cfg.appends_path = apath;
    }
    struct recorder rec = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rec.hist = fopen(cfg.out_path, cfg.verify ? "a" : "w");
    FILE *appends_in = NULL;
    if (cfg.verify) {
        appends_in = fopen(cfg.appends_path, "r");
        if (!appends_in && errno != ENOENT) {
            perror(cfg.appends_path);
            return 2;
        }
    } else {
        rec.appends = fopen(cfg.appends_path, "w");
    }
    if (!rec.hist || (!cfg.verify && !rec.appends)) {
        perror("jepsen_client: open output");
        return 2;
    }
    uint64_t start = mc_mono_ns(), acked = 0, lost = 0;
    int rc = cfg.verify ? verify(&cfg, &rec, appends_in, &acked, &lost) : run(&cfg, &rec);
    double secs = (double)(mc_mono_ns() - start) / 1e9;
    if (fclose(rec.hist) != 0 || (rec.appends && fclose(rec.appends) != 0)) {
        perror("jepsen_client: write output");
        rc = 2;
    }
    if (appends_in) {
        fclose(appends_in);
    }
    printf("{\"mode\":\"%s\",\"seconds\":%.2f,\"ops\":%" PRIu64, cfg.verify ? "verify" : "run",
           secs, rec.ops_started);
    for (int f = 0; f < 4; f++) {
        printf(",\"%s\":{\"ok\":%" PRIu64 ",\"fail\":%" PRIu64 ",\"info\":%" PRIu64 "}", FN_NAME[f],
               rec.count[f][O_OK], rec.count[f][O_FAIL], rec.count[f][O_INFO]);
    }
    if (cfg.verify) {
        printf(",\"appends_acked\":%" PRIu64 ",\"appends_lost\":%" PRIu64, acked, lost);
    }
    printf(",\"exit\":%d}\n", rc);
    return rc;
}
