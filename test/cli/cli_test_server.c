/* cli_test_server.c: a single-process test server for the CLI suite: the client module's
 * harness (engine-backed, or the fake store with canned admin replies) on 127.0.0.1:0. Prints
 * "127.0.0.1:PORT" on stdout, then serves until stdin reaches EOF or SIGTERM/SIGINT. */
#include "../client/harness.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "engine") == 0 && argc < 3)) {
        fprintf(stderr, "usage: cli_test_server engine DIR | fake\n");
        return 2;
    }
    struct th_opts o = {0};
    if (strcmp(argv[1], "engine") == 0) {
        o.mode = TH_ENGINE;
        o.engine_dir = argv[2];
    } else {
        o.mode = TH_FAKE;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct th_server *s = NULL;
    int rc = th_start(&o, &s);
    if (rc != 0) {
        fprintf(stderr, "cli_test_server: start failed (%d)\n", rc);
        return 1;
    }
    printf("%s\n", th_addr(s));
    fflush(stdout);
    char buf[64];
    while (!stop) {
        ssize_t n = read(0, buf, sizeof(buf)); /* EOF: the suite went away */
        if (n == 0 || (n < 0 && !stop)) {
            break;
        }
    }
    th_stop(s, NULL);
    return 0;
}
