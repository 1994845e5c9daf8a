/* engine_server.c: the client test harness's engine-backed single-node server (no Raft) as a
 * process, so the fault suite can check the jepsen client + lincheck pipeline without a cluster.
 *   build/jepsen_engine_server DIR     prints "listening 127.0.0.1:PORT", serves until SIGTERM. */
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "../client/harness.h"
#include "metacenter/error.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: jepsen_engine_server DIR\n");
        return 2;
    }
    struct th_opts o = {.mode = TH_ENGINE, .engine_dir = argv[1]};
    struct th_server *s;
    int rc = th_start(&o, &s);
    if (rc != 0) {
        fprintf(stderr, "jepsen_engine_server: %s\n", mc_strerror(rc));
        return 1;
    }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    printf("listening %s\n", th_addr(s));
    fflush(stdout);
    while (!stop) {
        pause();
    }
    th_stop(s, NULL);
    return 0;
}
