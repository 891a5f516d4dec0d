/* The node's side of the SQL cluster views (sql/cluster.h): what
 * meridian_nodes, meridian_ranges, meridian_sessions and
 * meridian_transactions show, for sessions whose gateway is this node. */
#ifndef MERIDIAN_SERVER_NODE_SYSVIEWS_H
#define MERIDIAN_SERVER_NODE_SYSVIEWS_H

#include "server/node.h"
#include "sql/cluster.h"

/* The callbacks; their ctx is the node. They run on session workers (never
 * on the node's loop) and may block on rpc. */
extern const sql_cluster_ops node_sysviews_ops;

/* Registers node.Transactions (this node's transaction table), which every
 * gateway's meridian_transactions asks of each node. */
void node_sysviews_register(node *n);

#endif
