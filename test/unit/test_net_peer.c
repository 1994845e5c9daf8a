/* test_net_peer.c: the peer transport delivers framed messages between two nodes on loopback. */
#include <criterion/criterion.h>

#include "metacenter/error.h"
#include "net/peer.h"

#include <stdio.h>
#include <string.h>

struct sink {
    int frames;
    uint64_t last_from;
    uint8_t last_kind;
    size_t bytes;
    int ups;
};

static void on_recv(void *ctx, uint64_t from, uint8_t kind, const uint8_t *payload, size_t len)
{
    struct sink *s = ctx;
    s->frames++;
    s->last_from = from;
    s->last_kind = kind;
    s->bytes += len;
    for (size_t i = 0; i < len; i++) {
        cr_assert_eq(payload[i], (uint8_t)(i * 7), "payload byte %zu", i);
    }
}

static void on_link(void *ctx, uint64_t peer, int up)
{
    (void)peer;
    struct sink *s = ctx;
    s->ups += up;
}

static void run_until(uv_loop_t *loop, int *counter, int want)
{
    for (int i = 0; i < 20000 && *counter < want; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (*counter < want) {
            uv_sleep(0);
        }
    }
}

static struct mc_peer_transport *start(uv_loop_t *loop, uint64_t id, uint64_t cluster,
                                       struct sink *s)
{
    struct mc_peer_options o = {.self_id = id,
                                .cluster_id = cluster,
                                .listen_addr = "127.0.0.1:0",
                                .on_recv = on_recv,
                                .on_link = on_link,
                                .ctx = s};
    struct mc_peer_transport *t;
    cr_assert_eq(mc_peer_start(loop, &o, &t), 0);
    return t;
}

Test(net_peer, frames_arrive_in_order_and_batched)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sink a = {0}, b = {0};
    struct mc_peer_transport *ta = start(&loop, 1, 77, &a);
    struct mc_peer_transport *tb = start(&loop, 2, 77, &b);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", mc_peer_port(tb));
    cr_assert_eq(mc_peer_set(ta, 2, addr), 0);
    uint8_t payload[5000];
    for (size_t i = 0; i < sizeof(payload); i++) {
        payload[i] = (uint8_t)(i * 7);
    }
    /* The first send starts the connection; frames queued while connecting are kept. */
    cr_assert_eq(mc_peer_send(ta, 2, MC_PEER_RAFT, payload, 10), 0);
    run_until(&loop, &b.frames, 1);
    cr_assert_eq(b.frames, 1);
    for (int i = 0; i < 100; i++) {
        cr_assert_eq(mc_peer_send(ta, 2, MC_PEER_RAFT, payload, sizeof(payload)), 0);
    }
    run_until(&loop, &b.frames, 101);
    cr_assert_eq(b.frames, 101);
    cr_assert_eq(b.last_from, 1);
    cr_assert_eq(b.last_kind, MC_PEER_RAFT);
    cr_assert_eq(b.bytes, 10 + 100 * sizeof(payload));
    cr_assert_eq(a.ups, 1);
    cr_assert_eq(mc_peer_send(ta, 9, MC_PEER_RAFT, payload, 1), MC_ENOMEMBER);
    mc_peer_stop(ta);
    mc_peer_stop(tb);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(net_peer, wrong_cluster_is_refused)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sink a = {0}, b = {0};
    struct mc_peer_transport *ta = start(&loop, 1, 1, &a);
    struct mc_peer_transport *tb = start(&loop, 2, 2, &b);
    char addr[64];
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", mc_peer_port(tb));
    mc_peer_set(ta, 2, addr);
    uint8_t payload[4] = {0, 7, 14, 21};
    for (int i = 0; i < 50; i++) {
        mc_peer_send(ta, 2, MC_PEER_RAFT, payload, sizeof(payload));
        uv_run(&loop, UV_RUN_NOWAIT);
        uv_sleep(1);
    }
    cr_assert_eq(b.frames, 0);
    mc_peer_stop(ta);
    mc_peer_stop(tb);
    uv_run(&loop, UV_RUN_NOWAIT);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(net_peer, parse_addr)
{
    struct sockaddr_storage sa;
    cr_assert_eq(mc_parse_addr("127.0.0.1:7071", &sa), 0);
    cr_assert_eq(mc_parse_addr("localhost:1", &sa), 0);
    cr_assert_eq(mc_parse_addr("[::1]:80", &sa), 0);
    cr_assert_eq(mc_parse_addr("127.0.0.1", &sa), MC_EINVAL);
    cr_assert_eq(mc_parse_addr("127.0.0.1:99999", &sa), MC_EINVAL);
    cr_assert_eq(mc_parse_addr(":5", &sa), MC_EINVAL);
    cr_assert_eq(mc_parse_addr("1.2.3.4:x", &sa), MC_EINVAL);
}
