/* net.c: the simulated network: a min-heap of packets keyed by delivery time, plus a link matrix.
 */
#include "net.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

void sim_net_init(struct sim_net *n, struct mc_rand *rand)
{
    memset(n, 0, sizeof(*n));
    n->rand = rand;
    n->faults.delay_min_ms = 1;
    n->faults.delay_max_ms = 1;
}

void sim_net_free(struct sim_net *n)
{
    for (size_t i = 0; i < n->len; i++) {
        free(n->heap[i].data);
    }
    free(n->heap);
    n->heap = NULL;
    n->len = n->cap = 0;
}

static bool before(const struct sim_packet *a, const struct sim_packet *b)
{
    return a->deliver_ms < b->deliver_ms || (a->deliver_ms == b->deliver_ms && a->seq < b->seq);
}

static void push(struct sim_net *n, struct sim_packet p)
{
    if (n->len == n->cap) {
        size_t cap = n->cap ? n->cap * 2 : 256;
        struct sim_packet *h = realloc(n->heap, cap * sizeof(*h));
        assert(h);
        n->heap = h;
        n->cap = cap;
    }
    size_t i = n->len++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(&p, &n->heap[parent])) {
            break;
        }
        n->heap[i] = n->heap[parent];
        i = parent;
    }
    n->heap[i] = p;
}

bool sim_net_pop(struct sim_net *n, struct sim_packet *out)
{
    if (n->len == 0) {
        return false;
    }
    *out = n->heap[0];
    struct sim_packet last = n->heap[--n->len];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct sim_packet *best = &last;
        if (l < n->len && before(&n->heap[l], best)) {
            m = l;
            best = &n->heap[l];
        }
        if (r < n->len && before(&n->heap[r], best)) {
            m = r;
        }
        if (m == i) {
            break;
        }
        n->heap[i] = n->heap[m];
        i = m;
    }
    if (n->len > 0) {
        n->heap[i] = last;
    }
    return true;
}

uint64_t sim_net_next_ms(const struct sim_net *n)
{
    return n->len ? n->heap[0].deliver_ms : UINT64_MAX;
}

static uint64_t delay(struct sim_net *n)
{
    const struct sim_net_faults *f = &n->faults;
    if (f->slow_pm && mc_rand_below(n->rand, 1000) < f->slow_pm) {
        return 1 + mc_rand_below(n->rand, f->slow_max_ms ? f->slow_max_ms : 1);
    }
    uint32_t span = f->delay_max_ms >= f->delay_min_ms ? f->delay_max_ms - f->delay_min_ms : 0;
    return f->delay_min_ms + mc_rand_below(n->rand, (uint64_t)span + 1);
}

void sim_net_send(struct sim_net *n, uint64_t now_ms, uint32_t from, uint32_t to, uint8_t *data,
                  size_t len)
{
    assert(from <= SIM_MAX_NODE_ID && to <= SIM_MAX_NODE_ID);
    n->sent++;
    const struct sim_net_faults *f = &n->faults;
    if (n->len >= SIM_NET_MAX_PACKETS ||
        (f->drop_pm && mc_rand_below(n->rand, 1000) < f->drop_pm)) {
        n->dropped++;
        free(data);
        return;
    }
    if (f->dup_pm && mc_rand_below(n->rand, 1000) < f->dup_pm) {
        uint8_t *copy = malloc(len ? len : 1);
        assert(copy);
        memcpy(copy, data, len);
        n->duplicated++;
        push(n, (struct sim_packet){now_ms + delay(n), n->seq++, from, to, copy, len});
    }
    push(n, (struct sim_packet){now_ms + delay(n), n->seq++, from, to, data, len});
}

bool sim_net_link_ok(const struct sim_net *n, uint32_t from, uint32_t to)
{
    return !n->blocked[from][to];
}

void sim_net_block(struct sim_net *n, uint32_t from, uint32_t to)
{
    n->blocked[from][to] = true;
}

void sim_net_block_both(struct sim_net *n, uint32_t a, uint32_t b)
{
    n->blocked[a][b] = true;
    n->blocked[b][a] = true;
}

void sim_net_isolate(struct sim_net *n, uint32_t a)
{
    for (uint32_t b = 0; b <= SIM_MAX_NODE_ID; b++) {
        if (b != a) {
            sim_net_block_both(n, a, b);
        }
    }
}

void sim_net_heal(struct sim_net *n)
{
    memset(n->blocked, 0, sizeof(n->blocked));
}

void sim_net_drop_to(struct sim_net *n, uint32_t to)
{
    size_t kept = 0;
    for (size_t i = 0; i < n->len; i++) {
        if (n->heap[i].to == to) {
            free(n->heap[i].data);
            n->dropped++;
        } else {
            n->heap[kept++] = n->heap[i];
        }
    }
    n->len = kept;
    /* Removing arbitrary elements breaks the heap shape: rebuild it. */
    for (size_t i = n->len / 2; i-- > 0;) {
        size_t j = i;
        struct sim_packet p = n->heap[j];
        for (;;) {
            size_t l = 2 * j + 1, r = l + 1, m = j;
            const struct sim_packet *best = &p;
            if (l < n->len && before(&n->heap[l], best)) {
                m = l;
                best = &n->heap[l];
            }
            if (r < n->len && before(&n->heap[r], best)) {
                m = r;
            }
            if (m == j) {
                break;
            }
            n->heap[j] = n->heap[m];
            j = m;
        }
        n->heap[j] = p;
    }
}

void sim_net_requeue(struct sim_net *n, const struct sim_packet *p, uint64_t deliver_ms)
{
    struct sim_packet q = *p;
    q.deliver_ms = deliver_ms;
    q.seq = n->seq++;
    push(n, q);
}
