/* test_lincheck_proxy.c: the fault proxy (build/faultproxy) as a real process on 127.0.0.1. */
#include <criterion/criterion.h>

#include "util/clock.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t proxy_pid = -1;
static FILE *to_proxy, *from_proxy;
static int target_fd = -1;
static int port_a, port_b;

static int listen_ephemeral(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(fd, 16), 0);
    socklen_t l = sizeof(a);
    getsockname(fd, (struct sockaddr *)&a, &l);
    *port = ntohs(a.sin_port);
    return fd;
}

static void start_proxy(void)
{
    int tport;
    alarm(
        60); /* watchdog instead of Criterion's .timeout (which leaks in its runner under --jobs) */
    target_fd = listen_ephemeral(&tport);
    const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
    char bin[256], la[64], lb[64];
    snprintf(bin, sizeof(bin), "%s/faultproxy", build);
    snprintf(la, sizeof(la), "a=0:%d", tport);
    snprintf(lb, sizeof(lb), "b=127.0.0.1:0->127.0.0.1:%d", tport);
    int in[2], out[2];
    cr_assert_eq(pipe(in), 0);
    cr_assert_eq(pipe(out), 0);
    proxy_pid = fork();
    cr_assert_geq(proxy_pid, 0);
    if (proxy_pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a crashed or killed test */
        dup2(in[0], 0);
        dup2(out[1], 1);
        close(in[1]);
        close(out[0]);
        execl(bin, bin, la, lb, (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    to_proxy = fdopen(in[1], "w");
    from_proxy = fdopen(out[0], "r");
    setvbuf(to_proxy, NULL, _IONBF, 0);
    char line[256];
    while (fgets(line, sizeof(line), from_proxy)) {
        int p;
        if (sscanf(line, "link a 127.0.0.1:%d", &p) == 1)
            port_a = p;
        if (sscanf(line, "link b 127.0.0.1:%d", &p) == 1)
            port_b = p;
        if (strcmp(line, "ready\n") == 0)
            break;
    }
    cr_assert(port_a > 0 && port_b > 0, "proxy %s did not start", bin);
}

static void stop_proxy(void)
{
    if (proxy_pid > 0) {
        kill(proxy_pid, SIGKILL);
        waitpid(proxy_pid, NULL, 0);
        proxy_pid = -1;
    }
    if (to_proxy)
        fclose(to_proxy);
    if (from_proxy)
        fclose(from_proxy);
    to_proxy = from_proxy = NULL;
    if (target_fd >= 0)
        close(target_fd);
    target_fd = -1;
}

/* Send a command; returns the answer line (static buffer, newline stripped). */
static const char *cmd(const char *c)
{
    static char line[1024];
    fprintf(to_proxy, "%s\n", c);
    cr_assert_not_null(fgets(line, sizeof(line), from_proxy));
    line[strcspn(line, "\n")] = 0;
    return line;
}

/* Connect through the proxy on port; *server gets the target's end. */
static int connect_via(int port, int *server)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    struct pollfd p = {.fd = target_fd, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 5000), 1, "proxy did not connect to the target");
    *server = accept(target_fd, NULL, NULL);
    cr_assert_geq(*server, 0);
    return fd;
}

/* Read exactly len bytes within timeout_ms; returns bytes read (less on timeout/EOF). */
static size_t read_within(int fd, char *buf, size_t len, int timeout_ms)
{
    size_t got = 0;
    uint64_t deadline = mc_mono_ms() + (uint64_t)timeout_ms;
    while (got < len) {
        int64_t left = (int64_t)(deadline - mc_mono_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            break;
        ssize_t n = read(fd, buf + got, len - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static void send_all(int fd, const char *s)
{
    cr_assert_eq(write(fd, s, strlen(s)), (ssize_t)strlen(s));
}

static void expect_bytes(int fd, const char *want, int timeout_ms)
{
    char buf[256] = {0};
    size_t n = read_within(fd, buf, strlen(want), timeout_ms);
    cr_expect_eq(n, strlen(want), "got %zu of %zu bytes", n, strlen(want));
    cr_expect(memcmp(buf, want, strlen(want)) == 0, "got '%.*s', want '%s'", (int)n, buf, want);
}

static void expect_nothing(int fd, int ms)
{
    char buf[16];
    cr_expect_eq(read_within(fd, buf, 1, ms), 0, "bytes passed a dropped link");
}

TestSuite(lincheck_proxy, .init = start_proxy, .fini = stop_proxy);

Test(lincheck_proxy, bytes_pass_both_ways_when_healed)
{
    int s, c = connect_via(port_a, &s);
    send_all(c, "ping");
    expect_bytes(s, "ping", 2000);
    send_all(s, "pong");
    expect_bytes(c, "pong", 2000);
    close(c);
    close(s);
}

Test(lincheck_proxy, drop_stops_both_ways_and_heal_restores_in_order)
{
    int s, c = connect_via(port_a, &s);
    cr_assert_str_eq(cmd("drop a"), "ok");
    send_all(c, "one,");
    send_all(c, "two");
    send_all(s, "back");
    expect_nothing(s, 300);
    expect_nothing(c, 300);
    cr_assert_str_eq(cmd("heal a"), "ok");
    expect_bytes(s, "one,two", 2000);
    expect_bytes(c, "back", 2000);
    close(c);
    close(s);
}

Test(lincheck_proxy, one_way_drops)
{
    int s, c = connect_via(port_a, &s);
    cr_assert_str_eq(cmd("drop-out a"), "ok");
    send_all(c, "out");
    send_all(s, "in");
    expect_bytes(c, "in", 2000); /* target -> client still flows */
    expect_nothing(s, 300);
    cr_assert_str_eq(cmd("heal"), "ok");
    expect_bytes(s, "out", 2000);
    cr_assert_str_eq(cmd("drop-in all"), "ok");
    send_all(c, "out2");
    send_all(s, "in2");
    expect_bytes(s, "out2", 2000);
    expect_nothing(c, 300);
    cr_assert_str_eq(cmd("heal a"), "ok");
    expect_bytes(c, "in2", 2000);
    close(c);
    close(s);
}

Test(lincheck_proxy, delay_is_measurable)
{
    int s, c = connect_via(port_a, &s);
    cr_assert_str_eq(cmd("delay 250 a"), "ok");
    uint64_t t0 = mc_mono_ms();
    send_all(c, "slow");
    expect_bytes(s, "slow", 5000);
    send_all(s, "back");
    expect_bytes(c, "back", 5000);
    uint64_t rtt = mc_mono_ms() - t0;
    cr_expect_geq(rtt, 480, "round trip %llu ms with 250 ms each way", (unsigned long long)rtt);
    cr_assert_str_eq(cmd("heal a"), "ok");
    t0 = mc_mono_ms();
    send_all(c, "fast");
    expect_bytes(s, "fast", 5000);
    cr_expect_lt(mc_mono_ms() - t0, 200, "still delayed after heal");
    close(c);
    close(s);
}

Test(lincheck_proxy, close_resets_connections_and_new_ones_work)
{
    int s, c = connect_via(port_a, &s);
    cr_assert_str_eq(cmd("close a"), "ok");
    char buf[8];
    struct pollfd p = {.fd = c, .events = POLLIN};
    cr_assert_eq(poll(&p, 1, 2000), 1);
    ssize_t n = read(c, buf, sizeof(buf));
    cr_expect(n == 0 || (n < 0 && errno == ECONNRESET), "client side still open: %zd", n);
    p.fd = s;
    cr_assert_eq(poll(&p, 1, 2000), 1);
    n = read(s, buf, sizeof(buf));
    cr_expect(n == 0 || (n < 0 && errno == ECONNRESET), "target side still open: %zd", n);
    close(c);
    close(s);
    c = connect_via(port_a, &s);
    send_all(c, "again");
    expect_bytes(s, "again", 2000);
    close(c);
    close(s);
}

Test(lincheck_proxy, links_are_independent)
{
    int sa, ca = connect_via(port_a, &sa);
    int sb, cb = connect_via(port_b, &sb);
    cr_assert_str_eq(cmd("drop a"), "ok");
    send_all(ca, "to-a");
    send_all(cb, "to-b");
    expect_bytes(sb, "to-b", 2000);
    expect_nothing(sa, 300);
    const char *st = cmd("status");
    cr_expect(strstr(st, " a:drop:") != NULL && strstr(st, " b:open:") != NULL, "%s", st);
    close(ca);
    close(sa);
    close(cb);
    close(sb);
}

Test(lincheck_proxy, bad_commands_are_answered_with_errors)
{
    cr_expect(strncmp(cmd("explode"), "error: unknown command", 22) == 0);
    cr_expect_str_eq(cmd("drop nosuchlink"), "error: no link 'nosuchlink'");
    cr_expect(strncmp(cmd("delay x a"), "error: usage", 12) == 0);
    cr_expect(strncmp(cmd("add c 0.0.0.0:80 1"), "error: bad ports", 16) == 0);
    cr_expect(strncmp(cmd("add c 0 1"), "ok link c 127.0.0.1:", 20) == 0);
}
