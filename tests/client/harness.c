/* Client test helpers (harness.h). */
#include "tests/client/harness.h"

#include "common/mtime.h"

#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int ch_server_start(ch_server *s, uint64_t node_id, const char *cluster, const char *db,
                    uint32_t batch_rows)
{
    return ch_server_start_at(s, "127.0.0.1:0", node_id, cluster, db, batch_rows);
}

int ch_server_start_at(ch_server *s, const char *listen, uint64_t node_id, const char *cluster,
                       const char *db, uint32_t batch_rows)
{
    memset(s, 0, sizeof(*s));
    rpc_config cfg;
    rpc_config_defaults(&cfg);
    cfg.node_id = node_id;
    cfg.cluster_id = cluster ? cluster : "";
    cfg.listen_addr = listen;
    merr e = {0};
    if (rpc_node_start(&cfg, &s->node, &e)) {
        fprintf(stderr, "rpc_node_start: %s\n", e.msg);
        return -1;
    }
    session_exec_sqlite(&s->ex, db);
    session_service_config sc;
    session_service_config_defaults(&sc);
    sc.cluster_id = cluster ? cluster : "";
    if (batch_rows) sc.batch_rows = batch_rows;
    if (session_service_register(s->node, &s->ex, &sc, &s->svc, &e)) {
        fprintf(stderr, "session_service_register: %s\n", e.msg);
        rpc_node_stop(s->node);
        return -1;
    }
    if (listen[0] == '[')
        snprintf(s->addr, sizeof(s->addr), "[::1]:%d", rpc_node_port(s->node));
    else
        snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", rpc_node_port(s->node));
    return 0;
}

void ch_server_stop(ch_server *s)
{
    if (s->svc) session_service_free(s->svc);
    if (s->node) rpc_node_stop(s->node);
    memset(s, 0, sizeof(*s));
}

void ch_conninfo(char *buf, size_t cap, const char *hosts, const char *extra)
{
    snprintf(buf, cap, "hosts=%s user=test connect_timeout=5s %s", hosts, extra ? extra : "");
}

int ch_wait(int (*pred)(void *arg), void *arg)
{
    int64_t end = mtime_mono_ns() + CH_TIMEOUT_S * MTIME_S;
    while (!pred(arg)) {
        if (mtime_mono_ns() > end) return 0;
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 1;
}

pid_t ch_spawn_server(const char *bin, uint64_t node_id, const char *db, char *addr, size_t cap)
{
    int fds[2];
    if (pipe(fds)) return -1;
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        char id[32];
        snprintf(id, sizeof(id), "%llu", (unsigned long long)node_id);
        if (db)
            execl(bin, bin, "--node-id", id, "--db", db, (char *)NULL);
        else
            execl(bin, bin, "--node-id", id, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    FILE *f = fdopen(fds[0], "r");
    char line[128];
    int port = 0;
    /* Blocks until the child listens (or dies: EOF). */
    if (f && fgets(line, sizeof(line), f)) sscanf(line, "port=%d", &port);
    if (f) fclose(f);
    if (port <= 0) {
        ch_kill(pid);
        return -1;
    }
    snprintf(addr, cap, "127.0.0.1:%d", port);
    return pid;
}

void ch_kill(pid_t pid)
{
    if (pid <= 0) return;
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

int ch_tmpdir(char *buf, size_t cap)
{
    const char *t = getenv("TMPDIR");
    snprintf(buf, cap, "%s/meridian-client-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(buf) ? 0 : -1;
}

void ch_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *de;
        while ((de = readdir(d))) {
            if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
            char p[PATH_MAX];
            snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(dir);
}
