/* wal_crash.c: WAL crash matrix: a child appends under load and reports each durable index
 * through a pipe; it is killed -9 at a random moment; the parent reloads the log and checks
 * that every reported-durable entry is there, intact. Repeats on the same directory. */
#include "metacenter/error.h"
#include "metacenter/storage.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rand.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SEG_BYTES   (256u * 1024)
#define MSG_DURABLE 1
#define MSG_COMPACT 2

static void fill(uint8_t *p, uint64_t index, uint64_t term, uint32_t len)
{
    uint64_t x = index * 0x9E3779B97F4A7C15ull ^ term;
    for (uint32_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)x;
    }
}

static uint32_t len_of(uint64_t index)
{
    return (uint32_t)((index * 2654435761u) % 2048);
}

static int report_fd = -1;

static void send_msg(uint64_t type, uint64_t v)
{
    uint64_t m[2] = {type, v};
    ssize_t n = write(report_fd, m, sizeof(m));
    (void)n;
}

static void on_durable(void *ctx, const struct mc_wal_progress *p)
{
    (void)ctx;
    if (p->error == 0) {
        send_msg(MSG_DURABLE, p->durable_index);
    }
}

static void child(const char *dir, uint64_t term, uint64_t seed)
{
    mc_log_set_level(MC_LOG_ERROR);
    struct mc_wal_options o = {.wal_dir = dir,
                               .segment_size_bytes = SEG_BYTES,
                               .queue_max_ops = 4096,
                               .on_durable = on_durable};
    struct mc_wal *w;
    if (mc_wal_open(&o, &w) != 0) {
        _exit(3);
    }
    struct mc_rand r;
    mc_rand_seed(&r, seed);
    uint64_t next = mc_wal_last_index(w) + 1;
    static uint8_t bufs[16][2048];
    for (;;) {
        size_t n = 1 + (size_t)mc_rand_below(&r, 16);
        struct mc_wal_record recs[16];
        for (size_t i = 0; i < n; i++) {
            uint64_t idx = next + i;
            uint32_t len = len_of(idx);
            fill(bufs[i], idx, term, len);
            recs[i] = (struct mc_wal_record){
                .index = idx, .term = term, .type = 1, .len = len, .data = bufs[i]};
        }
        int rc = mc_wal_append(w, recs, n, NULL, NULL);
        if (rc == MC_EBUSY) {
            usleep(50);
            continue;
        }
        if (rc) {
            _exit(4);
        }
        next += n;
        if (next % 4096 < n && next > 6000) {
            uint64_t upto = next - 3000;
            send_msg(MSG_COMPACT, upto); /* before: entries <= upto may vanish from now on */
            mc_wal_compact(w, upto, NULL);
        }
    }
}

struct verify_ctx {
    uint64_t next;
    int bad;
};

static int verify_rec(void *vctx, const struct mc_wal_record *rec)
{
    struct verify_ctx *c = vctx;
    static uint8_t want[2048];
    uint32_t len = len_of(rec->index);
    fill(want, rec->index, rec->term, len);
    if (rec->index != c->next || rec->len != len || memcmp(want, rec->data, len) != 0) {
        c->bad = 1;
        return 1;
    }
    c->next++;
    return 0;
}

int main(int argc, char **argv)
{
    int runs = 200;
    double max_seconds = 110;
    uint64_t seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--runs")) {
            runs = atoi(argv[i + 1]);
        } else if (!strcmp(argv[i], "--max-seconds")) {
            max_seconds = atof(argv[i + 1]);
        } else if (!strcmp(argv[i], "--seed")) {
            seed = strtoull(argv[i + 1], NULL, 10);
        }
    }
    mc_log_set_level(MC_LOG_ERROR);
    char dir[] = "/tmp/mc_wal_crash_XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 2;
    }
    struct mc_rand rng;
    mc_rand_seed(&rng, seed);
    uint64_t compacted = 0, max_durable_ever = 0;
    int passed = 0, failed = 0;
    uint64_t t0 = mc_mono_ms();
    for (int run = 1; run <= runs; run++) {
        if ((double)(mc_mono_ms() - t0) / 1000.0 > max_seconds) {
            fprintf(stderr, "time budget reached after %d runs\n", run - 1);
            break;
        }
        int p[2];
        if (pipe(p) < 0) {
            perror("pipe");
            return 2;
        }
        pid_t pid = fork();
        if (pid == 0) {
            close(p[0]);
            report_fd = p[1];
            child(dir, (uint64_t)run, seed * 1000 + (uint64_t)run);
            _exit(0);
        }
        close(p[1]);
        /* read reports while the child runs, until the random kill time */
        uint64_t kill_at = mc_mono_us() + 1000 + mc_rand_below(&rng, 40000);
        uint64_t durable = 0;
        uint64_t m[2];
        int fl = 0;
        (void)fl;
        for (;;) {
            uint64_t now = mc_mono_us();
            if (now >= kill_at) {
                break;
            }
            fd_set rs;
            FD_ZERO(&rs);
            FD_SET(p[0], &rs);
            struct timeval tv = {0, (suseconds_t)(kill_at - now)};
            if (select(p[0] + 1, &rs, NULL, NULL, &tv) > 0) {
                ssize_t n = read(p[0], m, sizeof(m));
                if (n == (ssize_t)sizeof(m)) {
                    if (m[0] == MSG_DURABLE && m[1] > durable) {
                        durable = m[1];
                    } else if (m[0] == MSG_COMPACT && m[1] > compacted) {
                        compacted = m[1];
                    }
                } else if (n <= 0) {
                    break;
                }
            }
        }
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        ssize_t n;
        while ((n = read(p[0], m, sizeof(m))) == (ssize_t)sizeof(m)) {
            if (m[0] == MSG_DURABLE && m[1] > durable) {
                durable = m[1];
            } else if (m[0] == MSG_COMPACT && m[1] > compacted) {
                compacted = m[1];
            }
        }
        close(p[0]);
        if (durable > max_durable_ever) {
            max_durable_ever = durable;
        }
        /* restart and check */
        struct mc_wal_options o = {.wal_dir = dir, .segment_size_bytes = SEG_BYTES};
        struct mc_wal *w;
        char text[512] = {0};
        o.error_text = text;
        o.error_text_len = sizeof(text);
        int rc = mc_wal_open(&o, &w);
        if (rc) {
            fprintf(stderr, "run %d: open failed: %s %s\n", run, mc_error_name(rc), text);
            failed++;
            break;
        }
        uint64_t first = mc_wal_first_index(w), last = mc_wal_last_index(w);
        uint64_t lo = compacted + 1 > first ? compacted + 1 : first;
        struct verify_ctx vc = {.next = lo};
        bool ok = last >= max_durable_ever && first <= lo;
        if (ok && max_durable_ever >= lo) {
            rc = mc_wal_iterate(w, lo, max_durable_ever, verify_rec, &vc);
            ok = rc == 0 && !vc.bad;
        }
        if (!ok) {
            fprintf(stderr,
                    "run %d: FAIL first=%llu last=%llu reported_durable=%llu compacted=%llu "
                    "bad_at=%llu\n",
                    run, (unsigned long long)first, (unsigned long long)last,
                    (unsigned long long)max_durable_ever, (unsigned long long)compacted,
                    (unsigned long long)vc.next);
            failed++;
        } else {
            passed++;
        }
        /* anything past what the old child reported may be lost: the next child continues at
         * last+1 and reports from there; entries above durable-ever are not yet promised */
        max_durable_ever = durable > max_durable_ever ? durable : max_durable_ever;
        if (last < max_durable_ever) {
            max_durable_ever = last; /* only reached when already failed */
        }
        mc_wal_close(w);
        if (failed) {
            break;
        }
    }
    fprintf(stderr, "wal_crash: dir=%s runs=%d durable_last=%llu seconds=%.1f\n", dir,
            passed + failed, (unsigned long long)max_durable_ever,
            (double)(mc_mono_ms() - t0) / 1000.0);
    if (!failed) {
        mc_fs_remove_tree(NULL, dir);
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
