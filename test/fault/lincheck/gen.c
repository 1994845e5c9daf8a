/* gen.c: generates histories from a simulated linearizable register store (checker tests). */
#include "gen.h"

#include "metacenter/error.h"
#include "util/rand.h"

#include <stdlib.h>
#include <string.h>

/*
 * Each simulated process steps through invoke -> take effect -> complete, one phase per tick of
 * a randomly chosen process, so intervals overlap at random. The true register of each key is
 * updated at the take-effect step, which makes the history linearizable by construction. Info
 * ops either took effect before the info line, take effect later (a "ghost" applied at a random
 * future tick), or never do.
 */

enum phase { IDLE = 0, INVOKED, APPLIED };
enum gf { G_PUT, G_GET, G_CAS };

struct gproc {
    enum phase phase;
    enum gf f;
    unsigned key;
    uint64_t value;    /* value written (put/cas) */
    uint64_t expected; /* cas: 0 = absent */
    uint64_t result;   /* get: value read; cas: 1 applied */
    int info;          /* 0 ok, 1 info */
};

struct ghost {
    unsigned key;
    enum gf f;
    uint64_t value, expected;
    uint64_t due_tick;
};

#define MAX_GHOSTS     4096
#define HISTORY_VALUES 64 /* recent values per key a cas may expect */

static void emit_val(FILE *out, const char *field, uint64_t v)
{
    if (v)
        fprintf(out, ",\"%s\":\"v%llu\"", field, (unsigned long long)v);
    else
        fprintf(out, ",\"%s\":null", field);
}

static const char *const gfn[] = {"put", "get", "cas"};

static void apply(uint64_t *reg, enum gf f, uint64_t value, uint64_t expected, uint64_t *result)
{
    if (f == G_PUT) {
        *reg = value;
    } else if (f == G_GET) {
        *result = *reg;
    } else {
        *result = *reg == expected;
        if (*result)
            *reg = value;
    }
}

int mc_lincheck_generate(FILE *out, const struct mc_lincheck_gen_opts *o)
{
    unsigned nk = o->keys ? o->keys : 10, np = o->processes ? o->processes : 8;
    if (nk > 100000 || np > 100000)
        return MC_EINVAL;
    uint64_t *reg = calloc(nk, sizeof(*reg));
    uint64_t *recent = calloc((size_t)nk * HISTORY_VALUES, sizeof(*recent));
    struct gproc *procs = calloc(np, sizeof(*procs));
    struct ghost *ghosts = calloc(MAX_GHOSTS, sizeof(*ghosts));
    int rc = MC_ENOMEM;
    if (!reg || !recent || !procs || !ghosts)
        goto out;
    struct mc_rand r;
    mc_rand_seed(&r, o->seed);
    uint64_t next_value = 1, tick = 0, last_ok_k0 = 0;
    size_t done = 0, n_ghosts = 0;
    unsigned info_pct = o->info_percent;

    while (done < o->ops) {
        tick++;
        for (size_t g = 0; g < n_ghosts;) {
            if (ghosts[g].due_tick <= tick) {
                uint64_t res;
                apply(&reg[ghosts[g].key], ghosts[g].f, ghosts[g].value, ghosts[g].expected, &res);
                ghosts[g] = ghosts[--n_ghosts];
            } else {
                g++;
            }
        }
        unsigned pi = (unsigned)mc_rand_below(&r, np);
        struct gproc *p = &procs[pi];
        long long t = (long long)tick * 1000;
        if (p->phase == IDLE) {
            uint64_t roll = mc_rand_below(&r, 100);
            p->f = roll < 40 ? G_PUT : roll < 80 ? G_GET : G_CAS;
            p->key = (unsigned)mc_rand_below(&r, nk);
            p->info = 0;
            fprintf(out, "{\"process\":%u,\"type\":\"invoke\",\"f\":\"%s\",\"key\":\"k%u\"", pi,
                    gfn[p->f], p->key);
            if (p->f != G_GET) {
                p->value = next_value++;
                emit_val(out, "value", p->value);
            }
            if (p->f == G_CAS) {
                /* usually the current value (likely to apply), sometimes an older one */
                p->expected = mc_rand_chance(&r, 1, 2) ? reg[p->key]
                                                       : recent[(size_t)p->key * HISTORY_VALUES +
                                                                mc_rand_below(&r, HISTORY_VALUES)];
                emit_val(out, "expected", p->expected);
            }
            fprintf(out, ",\"time_ns\":%lld}\n", t);
            p->phase = INVOKED;
        } else if (p->phase == INVOKED) {
            int fate = mc_rand_below(&r, 100) < info_pct ? 1 + (int)mc_rand_below(&r, 3) : 0;
            /* fate 0: ok/fail; 1: info, applied now; 2: info, applied later; 3: info, never */
            if (fate <= 1) {
                apply(&reg[p->key], p->f, p->value, p->expected, &p->result);
                if (p->f != G_GET)
                    recent[(size_t)p->key * HISTORY_VALUES + mc_rand_below(&r, HISTORY_VALUES)] =
                        p->value;
            } else if (fate == 2 && n_ghosts < MAX_GHOSTS) {
                ghosts[n_ghosts++] = (struct ghost){.key = p->key,
                                                    .f = p->f,
                                                    .value = p->value,
                                                    .expected = p->expected,
                                                    .due_tick = tick + 1 + mc_rand_below(&r, 64)};
            }
            p->info = fate != 0;
            if (p->info) {
                fprintf(out, "{\"process\":%u,\"type\":\"info\",\"f\":\"%s\",\"time_ns\":%lld}\n",
                        pi, gfn[p->f], t);
                p->phase = IDLE;
                done++;
            } else {
                p->phase = APPLIED;
            }
        } else {
            const char *type = p->f == G_CAS && !p->result ? "fail" : "ok";
            if (p->key == 0 && p->f != G_GET && type[0] == 'o')
                last_ok_k0 = p->value;
            fprintf(out, "{\"process\":%u,\"type\":\"%s\",\"f\":\"%s\"", pi, type, gfn[p->f]);
            if (p->f == G_GET)
                emit_val(out, "value", p->result);
            fprintf(out, ",\"time_ns\":%lld}\n", t);
            p->phase = IDLE;
            done++;
        }
    }
    if (o->violation) {
        /*
         * Sequential tail with a stale read: a value of key 0 written by an op that completed ok
         * (so it cannot take effect after the tail's put), read after that put.
         */
        long long t = (long long)(tick + 1) * 1000;
        uint64_t old = last_ok_k0;
        for (unsigned pi = 0; pi < np; pi++) {
            if (procs[pi].phase != IDLE) {
                fprintf(out, "{\"process\":%u,\"type\":\"info\",\"f\":\"%s\",\"time_ns\":%lld}\n",
                        pi, gfn[procs[pi].f], t);
                procs[pi].phase = IDLE;
            }
        }
        fprintf(
            out,
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"put\",\"key\":\"k0\","
            "\"value\":\"final\",\"time_ns\":%lld}\n"
            "{\"process\":0,\"type\":\"ok\",\"f\":\"put\",\"time_ns\":%lld}\n"
            "{\"process\":0,\"type\":\"invoke\",\"f\":\"get\",\"key\":\"k0\",\"time_ns\":%lld}\n"
            "{\"process\":0,\"type\":\"ok\",\"f\":\"get\"",
            t + 1, t + 2, t + 3);
        emit_val(out, "value", old);
        fprintf(out, ",\"time_ns\":%lld}\n", t + 4);
    }
    rc = ferror(out) ? MC_EIO : 0;
out:
    free(reg);
    free(recent);
    free(procs);
    free(ghosts);
    return rc;
}
