/* Meridian's SQL executor for the session service: each client session gets
 * an sql_session (sql/session.h) over one transactional KV (sql/kv.h) shared
 * by every session of the node, so the protocol (docs/client.md) runs
 * Meridian's SQL: catalog, virtual tables and KV transactions.
 *
 * The KV is given at setup, not chosen here: the node's factory
 * (server/node_sql.c) picks the cluster's transaction client, and tests pass
 * sql/kv_mem. Without a KV the executor refuses every session with the
 * reason it was given, so a node that cannot serve SQL says why instead of
 * serving something else. */
#ifndef MERIDIAN_SERVER_SESSION_EXEC_SQL_H
#define MERIDIAN_SERVER_SESSION_EXEC_SQL_H

#include "server/session_service.h"
#include "sql/cluster.h"
#include "sql/kv.h"

typedef struct session_exec_sql_config {
    const sql_kv_ops *ops; /* NULL: refuse sessions with `refusal` */
    void *kv_ctx;          /* shared by every session: must be thread-safe */
    /* Optional, for a KV used by one thread at a time (the transaction
     * client): each session gets its own context from kv_open(kv_ctx), made
     * on the session's worker at its first statement (open must stay quick)
     * and given back to kv_close when the session ends. */
    int (*kv_open)(void *kv_ctx, void **session_kv, merr *e);
    void (*kv_close)(void *session_kv);
    /* Optional: cancel a session KV's waiting call (any thread; on=1), or
     * clear that before the next statement (on=0, the session's thread). A
     * statement blocked in the KV (a lock wait) is not at a VM step, where
     * the deadline hook would see the cancel. */
    void (*kv_cancel)(void *session_kv, int on);
    /* Optional: bound every call of the session KV by the running
     * statement's deadline (Unix µs, 0 = none; the session's thread). */
    void (*kv_deadline)(void *session_kv, int64_t deadline_us);
    /* Optional: read-only transactions read at most this stale (bounded
     * staleness, ms; 0 = strong reads). The session's thread. */
    void (*kv_staleness)(void *session_kv, uint64_t max_staleness_ms);
    char refusal[512]; /* as long as an merr message */
    /* Optional: what the cluster system views read (sql/cluster.h). */
    const sql_cluster_ops *cluster;
    void *cluster_ctx;
    /* Check every statement against the session user's privileges
     * (secure nodes); 0: nothing is checked (insecure nodes). */
    int enforce_privileges;
} session_exec_sql_config;

/* Fills *ex; cfg must outlive the executor. */
void session_exec_sql(session_executor *ex, session_exec_sql_config *cfg);

/* Emits a sql_cluster_session row for every open session of executors made
 * with cfg (any thread): the meridian_sessions view of this node. */
int session_exec_sql_sessions(const session_exec_sql_config *cfg, uint64_t node_id,
                              sql_cluster_emit_fn emit, void *sink);

#endif
