/* raft_bench.c: CPU cost of the Raft core alone: committed entries/s, 3 nodes, instant network. */
#include "metacenter/error.h"
#include "metacenter/raft.h"
#include "util/clock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    return (double)committed / ((double)(t1 - t0) / 1e9);
}

int main(int argc, char **argv)
{
    uint64_t total = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    Q = calloc(QCAP, sizeof(*Q));
    uint32_t batches[] = {1, 64};
    for (size_t b = 0; b < 2; b++) {
        uint64_t n = batches[b] == 1 ? total / 4 : total;
        double eps = run(batches[b], n);
        printf(
            "raft_bench nodes=3 payload=%dB batch=%u entries=%llu committed_entries_per_s=%.0f\n",
            PAYLOAD, batches[b], (unsigned long long)n, eps);
    }
    free(Q);
    return 0;
}
