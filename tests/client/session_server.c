/* A gateway for the client tests: an rpc node serving the session protocol
 * with the SQLite test executor, until SIGTERM/SIGINT or its parent dies.
 *   session_server [--listen 127.0.0.1:0] [--db FILE] [--node-id N] [--cluster ID]
 * Prints "port=N" on stdout once it listens. */
#include "common/cli.h"
#include "common/log.h"
#include "rpc/rpc.h"
#include "server/session_exec_sqlite.h"
#include "server/session_service.h"

#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0", *db = NULL, *cluster = "";
    int64_t node_id = 1;
    const cli_flag flags[] = {
        {"listen", CLI_STR, &listen, "HOST:PORT", "listen address"},
        {"db", CLI_STR, &db, "FILE", "shared SQLite file (default: in-memory per session)"},
        {"node-id", CLI_INT, &node_id, "N", "rpc node id"},
        {"cluster", CLI_STR, &cluster, "ID", "cluster id"},
        {0},
    };
    int npos = 0, done = 0;
    int rc = cli_parse("session_server", "[flags]", flags, argc, argv, &npos, &done);
    if (done) return rc;
    /* Never outlive the test that started us. */
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    mlog_set_level(MLOG_WARN);

    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = (uint64_t)node_id;
    cfg.cluster_id = cluster;
    cfg.listen_addr = listen;
    rpc_node *n = NULL;
    merr e = {0};
    if (rpc_node_start(&cfg, &n, &e)) {
        fprintf(stderr, "session_server: %s\n", e.msg);
        return 1;
    }
    session_executor ex;
    session_exec_sqlite(&ex, db);
    session_service_config sc;
    session_service_config_defaults(&sc);
    sc.cluster_id = cluster;
    session_service *svc = NULL;
    if (session_service_register(n, &ex, &sc, &svc, &e)) {
        fprintf(stderr, "session_server: %s\n", e.msg);
        rpc_node_stop(n);
        return 1;
    }
    printf("port=%d\n", rpc_node_port(n));
    fflush(stdout);
    int sig = 0;
    sigwait(&set, &sig);
    session_service_free(svc);
    rpc_node_stop(n);
    return 0;
}
