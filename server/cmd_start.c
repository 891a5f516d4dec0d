/* `meridian start`: runs one node until SIGTERM/SIGINT. */
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "server/commands.h"
#include "server/node.h"

typedef struct run_ctx {
    uv_signal_t sigterm, sigint;
    node *n;
    int stopping;
} run_ctx;

static void on_stopped(void *arg)
{
    run_ctx *r = arg;
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
}

static void on_signal(uv_signal_t *s, int signum)
{
    run_ctx *r = s->data;
    if (r->stopping) {
        /* A second signal while draining: the operator means it. */
        MLOG_W("node", "second signal: exiting without a clean shutdown", "signal=%d", signum);
        _exit(1);
    }
    r->stopping = 1;
    MLOG_I("node", "signal received: shutting down cleanly", "signal=%d", signum);
    node_stop(r->n, on_stopped, r);
}

int cmd_start(int argc, char **argv)
{
    node_config cfg;
    node_config_init(&cfg);
    const cli_flag flags[] = {
        {"store", CLI_STR, &cfg.store, "DIR", "data directory (created if absent; required)"},
        {"listen", CLI_STR, &cfg.listen, "HOST:PORT", "address for nodes and clients (required)"},
        {"advertise", CLI_STR, &cfg.advertise, "HOST:PORT",
         "address others use (default --listen)"},
        {"join", CLI_STR, &cfg.join, "HOST:PORT[,...]", "nodes of the cluster to join"},
        {"http-listen", CLI_STR, &cfg.http_listen, "HOST:PORT",
         "admin HTTP: /health /ready /metrics"},
        {"locality", CLI_STR, &cfg.locality, "region=R,zone=Z", "where this node runs"},
        {"clock-source", CLI_STR, &cfg.clock_source, "chrony|static|kernel", "clock bound source"},
        {"max-clock-uncertainty", CLI_DURATION, &cfg.max_clock_uncertainty_ns, NULL,
         "refuse timestamps past this epsilon (default 500ms)"},
        {"log-level", CLI_STR, &cfg.log_level, "LEVEL", "trace|debug|info|warn|error"},
        {"insecure", CLI_BOOL, &cfg.insecure, NULL, "no TLS (local tests and demos)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--store DIR --listen HOST:PORT [flags]", flags, argc, argv, &npos,
                       &done);
    if (done) return rc;
    if (npos) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[1]);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    if (node_config_validate(&cfg, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return CLI_EXIT_USAGE;
    }
    mlog_level lvl;
    mlog_parse_level(cfg.log_level, &lvl);
    mlog_set_level(lvl);
    char logdir[PATH_MAX], logfile[PATH_MAX + 16];
    snprintf(logdir, sizeof(logdir), "%s/logs", cfg.store);
    if (mfs_mkdirs(logdir, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    snprintf(logfile, sizeof(logfile), "%s/meridian.log", logdir);
    if (mlog_open_file(logfile)) fprintf(stderr, "%s: cannot open %s\n", argv[0], logfile);

    uv_loop_t *loop = uv_default_loop();
    run_ctx r = {0};
    if (node_start(&cfg, loop, &r.n, &e)) {
        MLOG_E("node", "cannot start", "error=\"%s\"", e.msg);
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        mlog_close_file();
        return 1;
    }
    uv_signal_init(loop, &r.sigterm);
    uv_signal_init(loop, &r.sigint);
    r.sigterm.data = r.sigint.data = &r;
    uv_signal_start(&r.sigterm, on_signal, SIGTERM);
    uv_signal_start(&r.sigint, on_signal, SIGINT);
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    mlog_close_file();
    return 0;
}
