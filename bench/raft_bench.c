/* raft_bench.c: CPU cost of the Raft core alone: committed entries/s, 3 nodes, instant network. */
#include "metacenter/error.h"
#include "metacenter/raft.h"
#include "util/clock.h"
#include "util/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define NODES   3
#define QCAP    (1u << 16)
#define PAYLOAD 64

/* Messages are copied by value; entry arrays are deep-copied (the network owns them). */
struct qmsg {
    struct mc_raft_msg m;
};

static struct mc_raft *R[NODES + 1];
static struct qmsg *Q;
static size_t nq;

static void enqueue(const struct mc_raft_msg *m)
{
    if (nq >= QCAP) {
        fprintf(stderr, "queue overflow\n");
        exit(1);
    }
    struct mc_raft_msg *c = &Q[nq++].m;
    *c = *m;
    if (m->n_entries) {
        size_t bytes = 0;
        for (uint32_t i = 0; i < m->n_entries; i++) {
            bytes += m->entries[i].len;
        }
        uint8_t *blk = malloc(m->n_entries * sizeof(*m->entries) + bytes);
        c->entries = (struct mc_raft_entry *)blk;
        uint8_t *p = blk + m->n_entries * sizeof(*m->entries);
        for (uint32_t i = 0; i < m->n_entries; i++) {
            c->entries[i] = m->entries[i];
            if (m->entries[i].len) {
                memcpy(p, m->entries[i].data, m->entries[i].len);
                c->entries[i].data = p;
                p += m->entries[i].len;
            }
        }
    }
}

static uint64_t applied_total;

/* CPU time of this process: the figure that matters on a shared machine (wall time includes
 * waiting for the CPU). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}
static double last_cpu_rate;

static void drain(int i)
{
    struct mc_raft *r = R[i];
    while (mc_raft_has_ready(r)) {
        struct mc_raft_ready rd;
        mc_raft_ready(r, &rd);
        for (size_t k = 0; k < rd.n_msgs; k++) {
            enqueue(&rd.msgs[k]);
        }
        if (i == 1) {
            applied_total += rd.n_committed;
        }
        uint64_t li = rd.n_entries ? rd.entries[rd.n_entries - 1].index : 0;
        uint64_t lt = rd.n_entries ? rd.entries[rd.n_entries - 1].term : 0;
        mc_raft_advance(r, &rd);
        if (li) {
            mc_raft_persisted(r, li, lt);
        }
    }
}

static void pump(void)
{
    for (;;) {
        for (int i = 1; i <= NODES; i++) {
            drain(i);
        }
        if (!nq) {
            return;
        }
        static struct qmsg batch[QCAP];
        size_t n = nq;
        memcpy(batch, Q, n * sizeof(*Q));
        nq = 0;
        for (size_t k = 0; k < n; k++) {
            mc_raft_step(R[batch[k].m.to], &batch[k].m);
            free(batch[k].m.entries);
        }
    }
}

static double run(uint32_t batch, uint64_t total)
{
    static const uint64_t voters[] = {1, 2, 3};
    for (int i = 1; i <= NODES; i++) {
        struct mc_raft_config c;
        memset(&c, 0, sizeof(c));
        c.id = (uint64_t)i;
        c.initial_voters = voters;
        c.n_initial_voters = NODES;
        c.seed = 1;
        c.snapshot_keep_entries = 1000;
        if (mc_raft_create(&c, &R[i])) {
            fprintf(stderr, "create failed\n");
            exit(1);
        }
    }
    /* Elect node 1: only it ticks. */
    while (mc_raft_role(R[1]) != MC_RAFT_LEADER) {
        mc_raft_tick(R[1]);
        pump();
    }
    pump();
    applied_total = 0;
    uint8_t payload[PAYLOAD];
    memset(payload, 'x', sizeof(payload));
    struct mc_raft_entry *ents = calloc(batch, sizeof(*ents));
    for (uint32_t i = 0; i < batch; i++) {
        ents[i] =
            (struct mc_raft_entry){.type = MC_RAFT_ENTRY_NORMAL, .len = PAYLOAD, .data = payload};
    }
    uint64_t base = mc_raft_commit_index(R[1]);
    uint64_t t0 = mc_mono_ns();
    uint64_t c0 = cpu_ns();
    uint64_t proposed = 0;
    while (proposed < total) {
        if (mc_raft_propose(R[1], ents, batch, NULL)) {
            fprintf(stderr, "propose failed\n");
            exit(1);
        }
        proposed += batch;
        pump();
        /* Compact now and then, as a driver taking snapshots would. */
        uint64_t c = mc_raft_commit_index(R[1]);
        if (proposed % (batch * 1024) < batch) {
            for (int i = 1; i <= NODES; i++) {
                struct mc_raft_status st;
                mc_raft_status(R[i], &st);
                mc_raft_snapshot_taken(R[i], st.applied, mc_raft_term_at(R[i], st.applied), NULL);
            }
        }
        (void)c;
    }
    uint64_t t1 = mc_mono_ns();
    uint64_t c1 = cpu_ns();
    uint64_t committed = mc_raft_commit_index(R[1]) - base;
    if (committed != total) {
        fprintf(stderr, "committed %llu != %llu\n", (unsigned long long)committed,
                (unsigned long long)total);
        exit(1);
    }
    free(ents);
    for (int i = 1; i <= NODES; i++) {
        mc_raft_destroy(R[i]);
    }
    last_cpu_rate = (double)committed / ((double)(c1 - c0) / 1e9);
    return (double)committed / ((double)(t1 - t0) / 1e9);
}

/* Wire codec cost: encode + decode of one AppendEntries carrying `batch` 64-byte entries. */
static void bench_codec(uint32_t batch, uint64_t rounds)
{
    uint8_t payload[PAYLOAD];
    memset(payload, 'y', sizeof(payload));
    struct mc_raft_entry *ents = calloc(batch, sizeof(*ents));
    for (uint32_t i = 0; i < batch; i++) {
        ents[i] = (struct mc_raft_entry){100 + i, 3, MC_RAFT_ENTRY_NORMAL, PAYLOAD, payload};
    }
    struct mc_raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = MC_RAFT_MSG_APPEND;
    m.from = 1, m.to = 2, m.term = 3, m.index = 99, m.log_term = 3, m.commit = 90;
    m.n_entries = batch;
    m.entries = ents;
    struct mc_wbuf w;
    mc_wbuf_init(&w, 0);
    uint64_t c0 = cpu_ns();
    for (uint64_t k = 0; k < rounds; k++) {
        mc_wbuf_reset(&w);
        struct mc_raft_msg d;
        if (mc_raft_msg_encode(&m, &w) || mc_raft_msg_decode(w.data, w.len, &d)) {
            fprintf(stderr, "codec failed\n");
            exit(1);
        }
        mc_raft_msg_free(&d);
    }
    double s = (double)(cpu_ns() - c0) / 1e9; /* CPU seconds */
    printf(
        "raft_bench codec append_entries=%u bytes=%zu msgs_per_cpu_s=%.0f entries_per_cpu_s=%.0f\n",
        batch, w.len, (double)rounds / s, (double)rounds * batch / s);
    mc_wbuf_free(&w);
    free(ents);
}

int main(int argc, char **argv)
{
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    Q = calloc(QCAP, sizeof(*Q));
    uint32_t batches[] = {1, 64};
    for (size_t b = 0; b < 2; b++) {
        uint64_t n = batches[b] == 1 ? total / 4 : total;
        n = n / batches[b] * batches[b]; /* whole batches */
        double eps = run(batches[b], n);
        printf("raft_bench nodes=3 payload=%dB batch=%u entries=%llu committed_entries_per_s=%.0f "
               "per_cpu_s=%.0f\n",
               PAYLOAD, batches[b], (unsigned long long)n, eps, last_cpu_rate);
    }
    free(Q);
    bench_codec(1, total / 2);
    bench_codec(64, total / 64);
    return 0;
}
