/* serve.c: `metacenter serve`: parse flags, run one node until SIGTERM/SIGINT. */
#include "cli/serve.h"
#include "metacenter/error.h"
#include "node/config.h"
#include "node/node.h"
#include "node/options.h"
#include "util/log.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct serve_ctx {
    uv_loop_t loop;
    struct mc_node *node;
    uv_signal_t sigterm, sigint;
    int stopped;
};

static void node_done(void *arg)
{
    struct serve_ctx *s = arg;
    s->stopped = 1;
    uv_close((uv_handle_t *)&s->sigterm, NULL);
    uv_close((uv_handle_t *)&s->sigint, NULL);
}

static void on_signal(uv_signal_t *h, int sig)
{
    struct serve_ctx *s = h->data;
    MC_INFO("shutdown_requested", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    uv_signal_stop(&s->sigterm);
    uv_signal_stop(&s->sigint);
    mc_node_stop(s->node, node_done, s);
}

int mc_cli_serve(int argc, char **argv)
{
    struct mc_node_options o;
    mc_node_options_default(&o);
    char err[512];
    /* The config file first; flags override it. */
    const char *cfg = mc_node_config_find_arg(argc, argv);
    struct mc_node_config_warnings warn;
    memset(&warn, 0, sizeof(warn));
    int rc = 0;
    if (cfg && (rc = mc_node_config_load_ex(cfg, &o, &warn, err, sizeof(err))) != 0) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    rc = mc_node_options_parse(&o, argc, argv, err, sizeof(err));
    if (rc == 1) {
        fputs(mc_node_options_help, stdout);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "%s\n", err);
        return 2;
    }
    mc_log_set_level((enum mc_log_level)o.log_level);
    mc_log_set_format((enum mc_log_format)o.log_format);
    for (size_t i = 0; i < warn.count; i++) {
        MC_WARN("config_key_ignored", "detail=\"%s\"", warn.msg[i]);
    }
    signal(SIGPIPE, SIG_IGN);

    struct serve_ctx *s = calloc(1, sizeof(*s));
    if (!s) {
        return 1;
    }
    uv_loop_init(&s->loop);
    rc = mc_node_start(&s->loop, &o, &s->node);
    if (rc) {
        fprintf(stderr, "%s: the node could not start (see the log above)\n", mc_error_name(rc));
        uv_loop_close(&s->loop);
        free(s);
        return 1;
    }
    uv_signal_init(&s->loop, &s->sigterm);
    uv_signal_init(&s->loop, &s->sigint);
    s->sigterm.data = s->sigint.data = s;
    uv_signal_start(&s->sigterm, on_signal, SIGTERM);
    uv_signal_start(&s->sigint, on_signal, SIGINT);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    int fatal = mc_node_fatal(s->node);
    if (!s->stopped && !fatal) {
        MC_WARN("loop_exited", "reason=unexpected");
    }
    mc_node_free(s->node);
    if (!fatal) {
        uv_run(&s->loop, UV_RUN_NOWAIT);
        uv_loop_close(&s->loop);
    }
    free(s);
    return fatal ? 3 : 0;
}
