/* Helpers for the client tests: in-process gateways (an rpc node with the
 * session service and the SQLite test executor), session_server child
 * processes killed by PID, temp dirs, and condition waits with a hang guard. */
#ifndef MERIDIAN_TESTS_CLIENT_HARNESS_H
#define MERIDIAN_TESTS_CLIENT_HARNESS_H

#include "rpc/rpc.h"
#include "server/session_exec_sqlite.h"
#include "server/session_service.h"

#include <sys/types.h>

#define CH_TIMEOUT_S 30

typedef struct ch_server {
    rpc_node *node;
    session_service *svc;
    session_executor ex;
    char addr[64];
} ch_server;

/* Starts a gateway on 127.0.0.1:0. db: NULL = in-memory per session.
 * batch_rows 0 = default. Returns 0 or -1. */
int ch_server_start(ch_server *s, uint64_t node_id, const char *cluster, const char *db,
                    uint32_t batch_rows);
/* The same on another loopback listener ("[::1]:0"). */
int ch_server_start_at(ch_server *s, const char *listen, uint64_t node_id, const char *cluster,
                       const char *db, uint32_t batch_rows);
void ch_server_stop(ch_server *s);
/* "hosts=ADDR user=test" plus extra ("" for none); static buffer per call site. */
void ch_conninfo(char *buf, size_t cap, const char *hosts, const char *extra);

/* Polls pred(arg) every millisecond until it is true; 0 after CH_TIMEOUT_S. */
int ch_wait(int (*pred)(void *arg), void *arg);

/* A session_server child: returns its pid and fills addr, or -1. */
pid_t ch_spawn_server(const char *bin, uint64_t node_id, const char *db, char *addr, size_t cap);
/* SIGKILL and reap. */
void ch_kill(pid_t pid);

/* mkdtemp under $TMPDIR or /tmp; removes files then the dir. */
int ch_tmpdir(char *buf, size_t cap);
void ch_rmdir(const char *dir);

#endif
