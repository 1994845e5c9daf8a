/* node_test_util.h: options for a single in-process node in a unit test (loopback, no HTTP),
 * and a harness that runs it on a loop thread of its own. */
#ifndef NODE_TEST_UTIL_H
#define NODE_TEST_UTIL_H

#include "node/node.h"
#include "node/options.h"
#include "storage_test_util.h"
#include "util/log.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>

/* A fresh temp dir in dir (dir_size bytes) and default options for a node whose data dir is
 * DIR/data, on ephemeral loopback ports, with HTTP off and no disk reserve; logs at WARN. */
static inline void nt_node_options(struct mc_node_options *o, char *dir, size_t dir_size)
{
    st_tmpdir(dir, dir_size);
    mc_log_set_level(MC_LOG_WARN);
    mc_node_options_default(o);
    snprintf(o->data_dir, sizeof(o->data_dir), "%s/data", dir);
    snprintf(o->listen_client, sizeof(o->listen_client), "127.0.0.1:0");
    snprintf(o->listen_peer, sizeof(o->listen_peer), "127.0.0.1:0");
    snprintf(o->listen_http, sizeof(o->listen_http), "off");
    o->disk_reserve_mb = 0;
}

/* A node run on its own loop thread, the test thread being its client. The test's own timer on
 * the loop stops the node (mc_node_stop) once `stop` is set; node state is loop-only. */
struct nt_loop_node {
    uv_loop_t loop;
    pthread_t thread;
    bool thread_started;
    struct mc_node *n;
    char dir[128];
    atomic_bool stop; /* request: stop the node and end the loop */
};

static inline void *nt_loop_main(void *arg)
{
    struct nt_loop_node *l = arg;
    uv_run(&l->loop, UV_RUN_DEFAULT);
    return NULL;
}

/* Runs l->loop (the node and the test's handles already on it) on a thread of its own. */
static inline int nt_loop_node_run(struct nt_loop_node *l)
{
    int rc = pthread_create(&l->thread, NULL, nt_loop_main, l);
    l->thread_started = rc == 0;
    return rc;
}

/* A test's .fini: asks for the stop, joins the loop thread, frees the node and removes the
 * temp dir; also after a start that failed half way. */
static inline void nt_loop_node_teardown(struct nt_loop_node *l)
{
    if (l->thread_started) {
        atomic_store(&l->stop, true);
        pthread_join(l->thread, NULL);
        mc_node_free(l->n);
        uv_run(&l->loop, UV_RUN_NOWAIT);
        uv_loop_close(&l->loop);
    }
    if (l->dir[0]) {
        st_rmtree(l->dir);
    }
}

/* A TCP connection to 127.0.0.1:port whose receives time out after timeout_s; rcvbuf > 0 sets
 * SO_RCVBUF first (before connect, so the window follows it). -1 on any failure. */
static inline int nt_connect(int port, int rcvbuf, int timeout_s)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval tv = {.tv_sec = timeout_s};
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)) != 0) ||
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Receives exactly len bytes; false on EOF, error or the receive timeout. */
static inline bool nt_recv_all(int fd, void *buf, size_t len)
{
    uint8_t *b = buf;
    while (len > 0) {
        ssize_t k = recv(fd, b, len, 0);
        if (k <= 0) {
            return false;
        }
        b += (size_t)k;
        len -= (size_t)k;
    }
    return true;
}

#endif
