/* "node.Ping" / "node.Echo": one node times a round trip to another over the
 * node-to-node transport, for `meridian debug ping`. The round trip goes
 * through the same connection code as Paxos traffic, so rpc fault injection
 * (the region latency matrix) and, in network namespaces, tc netem show up in
 * it exactly as the replication protocol sees them. */
#ifndef MERIDIAN_SERVER_NODE_PING_H
#define MERIDIAN_SERVER_NODE_PING_H

#include "rpc/rpc.h"

/* Registers both methods on rpc (loop thread, at start). */
void node_ping_register(rpc_node *rpc);

#endif
