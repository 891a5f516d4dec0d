/* SQL on the node: the session service (docs/client.md) with Meridian's SQL
 * executor, and the factory that picks the transactional KV the SQL layer
 * runs on. One KV serves every session of the node. */
#ifndef MERIDIAN_SERVER_NODE_SQL_H
#define MERIDIAN_SERVER_NODE_SQL_H

#include "common/err.h"
#include "server/node.h"
#include "sql/kv.h"

/* The KV for the node's SQL sessions: the cluster's transaction client, or,
 * with --testing-sql-memory, a private in-memory KV (tests only: neither
 * replicated nor durable, and every node has its own). Fails with the
 * reason SQL cannot be served; the node then refuses sessions with it. */
int node_sql_kv(node *n, const sql_kv_ops **ops, void **ctx, merr *e);
/* Frees what node_sql_kv made (after the sessions are gone). */
void node_sql_kv_close(node *n);

/* Called by node_start after the node's services are up (not on the loop:
 * the factory may block), and by node_stop while the rpc node still runs.
 * A node without a KV still serves sessions' open, to refuse it clearly. */
int node_sql_start(node *n, merr *e);
void node_sql_stop(node *n);

#endif
