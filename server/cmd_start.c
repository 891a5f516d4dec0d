/* `meridian start`: runs one node until SIGTERM/SIGINT. */
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cli.h"
#include "common/fsutil.h"
#include "common/log.h"
#include "server/commands.h"
#include "server/node.h"

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
        {"static-uncertainty", CLI_DURATION, &cfg.static_uncertainty_ns, NULL,
         "epsilon of --clock-source static (default 100ms)"},
        {"log-level", CLI_STR, &cfg.log_level, "LEVEL", "trace|debug|info|warn|error"},
        {"insecure", CLI_BOOL, &cfg.insecure, NULL, "no TLS (local tests and demos)"},
        {"testing-fault-admin", CLI_BOOL, &cfg.testing_fault_admin, NULL,
         "accept fault injection over rpc (meridian debug faults): tests only"},
        {"testing-sql-memory", CLI_BOOL, &cfg.testing_sql_memory, NULL,
         "serve SQL from a private in-memory store (not replicated, lost at exit): tests only"},
        {"testing-clock-skew", CLI_STR, &cfg.testing_clock_skew, "[-]DURATION",
         "shift this node's clock without widening its bound: tests only"},
        {"testing-disk-faults", CLI_BOOL, &cfg.testing_disk_faults, NULL,
         "log writes fail with ENOSPC while STORE/TESTING_DISK_FULL exists: tests only"},
        {"certs-dir", CLI_STR, &cfg.certs_dir, "DIR", "TLS: ca.crt, node.crt, node.key"},
        {"chrony-socket", CLI_STR, &cfg.chrony_socket, "PATH",
         "chronyd unix command socket, for --clock-source chrony (needs root)"},
        {"chrony-port", CLI_INT, &cfg.chrony_port, "PORT",
         "chronyd command port on 127.0.0.1 (default 323)"},
        {"max-connections", CLI_INT, &cfg.max_connections, "N",
         "inbound connections at once (default 1024)"},
        {"max-session-memory", CLI_SIZE, &cfg.max_session_memory, "SIZE",
         "a SQL session's buffered writes (default 64MiB)"},
        {"max-result-buffer", CLI_SIZE, &cfg.max_result_buffer, "SIZE",
         "result rows queued per connection for a slow reader (default 4MiB)"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse(argv[0], "--store DIR --listen HOST:PORT (--certs-dir DIR | --insecure)",
                       flags, argc, argv, &npos, &done);
    if (done) return rc;
    if (npos) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0], argv[1]);
        return CLI_EXIT_USAGE;
    }
    merr e = {0};
    if (node_config_validate(&cfg, &e) || node_config_check_security(&cfg, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return CLI_EXIT_USAGE;
    }
    if (cfg.insecure)
        fprintf(stderr,
                "%s: WARNING: running --insecure: traffic is plaintext and nobody is "
                "authenticated; for local tests and demos only\n",
                argv[0]);
    mlog_level lvl;
    mlog_parse_level(cfg.log_level, &lvl);
    mlog_pin_level(lvl); /* its transaction client's connections must not quiet it */
    char logdir[PATH_MAX], logfile[PATH_MAX + 16];
    snprintf(logdir, sizeof(logdir), "%s/logs", cfg.store);
    if (mfs_mkdirs(logdir, &e)) {
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        return 1;
    }
    snprintf(logfile, sizeof(logfile), "%s/meridian.log", logdir);
    if (mlog_open_file(logfile)) fprintf(stderr, "%s: cannot open %s\n", argv[0], logfile);

    /* SIGTERM/SIGINT are blocked before any thread starts (threads inherit
     * the mask) and taken here with sigwait: no async-signal-safety puzzles. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGHUP); /* reload certificates (docs/security.md) */
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    node *n = NULL;
    if (node_start(&cfg, &n, &e)) {
        MLOG_E("node", "cannot start", "error=\"%s\"", e.msg);
        fprintf(stderr, "%s: %s\n", argv[0], e.msg);
        mlog_close_file();
        return 1;
    }
    int sig = 0;
    while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
        merr re = {0};
        if (node_reload_certs(n, &re))
            MLOG_E("node", "certificate reload failed; keeping the current ones", "error=\"%s\"",
                   re.msg);
    }
    sigdelset(&sigs, SIGHUP); /* a second SIGHUP while draining is not an exit */
    MLOG_I("node", "signal received: shutting down cleanly", "signal=%d", sig);
    /* A second signal during the drain ends the process at once. */
    pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
    node_stop(n);
    mlog_close_file();
    return 0;
}
