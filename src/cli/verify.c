/* verify.c: `metacenter verify --data-dir DIR`: offline full scan of a stopped node's engine file.
 */
#include "cli/backend.h"
#include "cli/cli.h"
#include "cli/verify.h"
#include "metacenter/error.h"
#include "util/clock.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

struct progress {
    uint64_t last_ms;
    bool printed;
};

/* At most one line a second on stderr, so a large file shows it is moving. */
static void on_progress(void *ctx, uint64_t done, uint64_t total)
{
    struct progress *p = ctx;
    uint64_t now_ms = mc_mono_ns() / 1000000;
    if (done < total && now_ms - p->last_ms < 1000) {
        return;
    }
    if (!p->printed && done == total) {
        return; /* small file: no progress lines at all */
    }
    p->last_ms = now_ms;
    p->printed = true;
    fprintf(stderr, "verify: %llu of %llu records (%.0f%%)\n", (unsigned long long)done,
            (unsigned long long)total, total ? 100.0 * (double)done / (double)total : 100.0);
}

int mc_cli_cmd_verify(struct mc_cli *cli, const struct mc_args *a, const char *const *pos,
                      size_t npos)
{
    (void)a;
    (void)pos;
    (void)npos;
    if (!cli->offline) {
        return mc_cli_usage(cli, "verify reads a stopped node's files: use --data-dir, not "
                                 "--endpoints");
    }
    int rc = mc_cli_offline_open(cli, false);
    if (rc != 0) {
        const char *why = mc_cli_be_errmsg();
        return mc_cli_fail(rc, "%s", why && *why ? why : mc_strerror(rc));
    }
    struct progress pr = {.last_ms = mc_mono_ns() / 1000000};
    struct mc_engine_verify_report r = {.progress = on_progress, .progress_ctx = &pr};
    rc = mc_engine_verify(cli->eng, &r);
    if (rc != 0) {
        return mc_cli_fail(rc, "%s", mc_engine_last_error());
    }
    double s = (double)r.elapsed_ns / 1e9;
    if (cli->json) {
        json_t *j =
            json_pack("{s:b, s:I, s:I, s:I, s:f}", "ok", 1, "records", (json_int_t)r.records,
                      "bytes", (json_int_t)r.bytes, "pages", (json_int_t)r.pages, "seconds", s);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        printf("%s\n", text ? text : "{}");
        free(text);
        json_decref(j);
    } else {
        printf("ok: %llu records, %llu pages of %llu bytes checked in %.2f s\n",
               (unsigned long long)r.records, (unsigned long long)r.pages,
               (unsigned long long)r.page_bytes, s);
    }
    return MC_CLI_EXIT_OK;
}
