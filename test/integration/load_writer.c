/* load_writer.c: steady writer for the migration test: one client, one exactly-once session,
 * puts at a fixed rate until a stop file appears; logs every acknowledged key and reports
 * failures, throughput and the longest stall (longest gap between acknowledgements). */
#include "metacenter/client.h"
#include "metacenter/engine.h"
#include "metacenter/error.h"
#include "util/clock.h"
#include "util/codec.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define WRITER_MAX_INFLIGHT 256
#define WRITER_DRAIN_MS     60000

struct writer {
    FILE *acked_file;
    uint64_t acked, failed, outcome_unknown;
    uint64_t last_ack_ns, first_ack_ns, max_gap_ns, max_latency_ns;
    int inflight;
    int first_error;
    char first_message[256];
};

struct req {
    struct writer *w;
    uint64_t seq;
    uint64_t sent_ns;
};

static void on_reply(void *arg, const struct mc_client_result *r)
{
    struct req *q = arg;
    struct writer *w = q->w;
    uint64_t now = mc_mono_ns();
    w->inflight--;
    struct mc_op_result res;
    int rc = r->status;
    if (rc == 0 && mc_client_decode_result(r, &res) == 0) {
        rc = res.code;
    }
    if (rc == 0) {
        w->acked++;
        fprintf(w->acked_file, "%llu\n", (unsigned long long)q->seq);
        if (w->last_ack_ns && now - w->last_ack_ns > w->max_gap_ns) {
            w->max_gap_ns = now - w->last_ack_ns;
        }
        if (!w->first_ack_ns) {
            w->first_ack_ns = now;
        }
        w->last_ack_ns = now;
        if (now - q->sent_ns > w->max_latency_ns) {
            w->max_latency_ns = now - q->sent_ns;
        }
    } else {
        w->failed++;
        w->outcome_unknown += r->outcome_unknown;
        if (!w->first_error) {
            w->first_error = rc;
            snprintf(w->first_message, sizeof(w->first_message), "%s", r->message);
        }
    }
    free(q);
}

static int submit(struct mc_client *c, struct writer *w, const char *bucket, uint64_t seq)
{
    struct req *q = malloc(sizeof(*q));
    if (!q) {
        return MC_ENOMEM;
    }
    *q = (struct req){w, seq, mc_mono_ns()};
    char key[32];
    snprintf(key, sizeof(key), "w%09llu", (unsigned long long)seq);
    struct mc_object_meta meta;
    memset(&meta, 0, sizeof(meta));
    meta.size = seq;
    meta.etag = "0123456789abcdef0123456789abcdef";
    struct mc_op op;
    memset(&op, 0, sizeof(op));
    int rc = mc_op_put(&op, bucket, key, NULL, 0, &meta);
    if (rc == 0) {
        rc = mc_client_op_async(c, &op, on_reply, q);
    }
    mc_op_clear(&op);
    if (rc) {
        free(q);
        return rc;
    }
    w->inflight++;
    return 0;
}

int main(int argc, char **argv)
{
    const char *endpoints = NULL, *bucket = "mig", *stop_file = NULL, *acked_path = NULL;
    double rate = 600, max_seconds = 600;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--endpoints") == 0) {
            endpoints = argv[i + 1];
        } else if (strcmp(argv[i], "--bucket") == 0) {
            bucket = argv[i + 1];
        } else if (strcmp(argv[i], "--rate") == 0) {
            rate = atof(argv[i + 1]);
        } else if (strcmp(argv[i], "--stop-file") == 0) {
            stop_file = argv[i + 1];
        } else if (strcmp(argv[i], "--acked-file") == 0) {
            acked_path = argv[i + 1];
        } else if (strcmp(argv[i], "--max-seconds") == 0) {
            max_seconds = atof(argv[i + 1]);
        }
    }
    if (!endpoints || !stop_file || !acked_path || rate <= 0) {
        fprintf(stderr, "usage: load_writer --endpoints LIST --stop-file F --acked-file F "
                        "[--bucket B] [--rate OPS] [--max-seconds S]\n");
        return 2;
    }
    struct mc_client_opts o;
    mc_client_opts_default(&o);
    o.request_timeout_ms = 30000; /* ride out leader changes: retries keep exactly-once */
    o.max_sessions = 1;           /* one session: the test's "own session" */
    struct mc_client *c = NULL;
    struct writer w;
    memset(&w, 0, sizeof(w));
    w.acked_file = fopen(acked_path, "w");
    if (!w.acked_file || mc_client_open(endpoints, &o, &c) != 0) {
        fprintf(stderr, "cannot start\n");
        return 1;
    }
    uint64_t start = mc_mono_ns(), interval = (uint64_t)(1e9 / rate), next = start, seq = 0;
    uint64_t deadline = start + (uint64_t)(max_seconds * 1e9), last_check = 0;
    bool stop = false;
    while (!stop) {
        uint64_t now = mc_mono_ns();
        while (next <= now && w.inflight < WRITER_MAX_INFLIGHT) {
            if (submit(c, &w, bucket, seq++) != 0) {
                w.failed++;
            }
            next += interval;
        }
        mc_client_poll(c, 1);
        if (now - last_check > 50000000ull) {
            last_check = now;
            stop = access(stop_file, F_OK) == 0 || now >= deadline;
        }
    }
    uint64_t stopped = mc_mono_ns();
    while (w.inflight > 0 && mc_mono_ns() - stopped < WRITER_DRAIN_MS * 1000000ull) {
        mc_client_poll(c, 10);
    }
    double secs = (double)(stopped - start) / 1e9;
    /* The gap between the writer's start and its first ack, too, is a stall. */
    printf("{\"submitted\":%llu,\"acked\":%llu,\"failed\":%llu,\"outcome_unknown\":%llu,"
           "\"unfinished\":%d,\"seconds\":%.2f,\"acked_per_sec\":%.1f,\"max_stall_ms\":%.1f,"
           "\"max_latency_ms\":%.1f,\"first_error\":\"%s\",\"first_message\":\"%s\"}\n",
           (unsigned long long)seq, (unsigned long long)w.acked, (unsigned long long)w.failed,
           (unsigned long long)w.outcome_unknown, w.inflight, secs, (double)w.acked / secs,
           (double)w.max_gap_ns / 1e6, (double)w.max_latency_ns / 1e6,
           w.first_error ? mc_error_name(w.first_error) : "", w.first_message);
    fclose(w.acked_file);
    mc_client_close(c);
    return w.failed || w.inflight ? 1 : 0;
}
