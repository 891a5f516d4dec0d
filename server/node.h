/* The node: one process's share of a Meridian cluster. It owns the store
 * directory, the rpc endpoint (its libuv loop thread runs everything the node
 * does), the admin HTTP endpoints and, as the layers land, the clock, the log
 * store and the range replicas.
 *
 * Lifecycle:  STARTING --(listeners up)--> SERVING --(node_stop)--> DRAINING
 *             --(in-flight work done, handles closed)--> STOPPED
 * /health answers 200 while SERVING; /ready answers 200 only while the node
 * can serve data (SERVING and part of an initialised cluster).
 *
 * Threading: node_start/node_stop run on the caller's thread (main); they
 * hand work to the loop thread with rpc_node_run_sync. Everything else runs
 * on the loop thread. */
#ifndef MERIDIAN_SERVER_NODE_H
#define MERIDIAN_SERVER_NODE_H

#include "common/err.h"
#include "server/node_config.h"

typedef struct node node;

typedef enum node_state {
    NODE_STARTING,
    NODE_SERVING,
    NODE_DRAINING,
    NODE_STOPPED,
} node_state;

const char *node_state_name(node_state s);

/* Opens the store (refusing one in use), starts the rpc endpoint and the
 * admin HTTP server, and writes DIR/listen-addrs ("rpc=HOST:PORT" and
 * "http=HOST:PORT" lines) for scripts and tests. */
int node_start(const node_config *cfg, node **out, merr *e);
/* Rereads the TLS certificates and key (SIGHUP): new connections use them.
 * On an error the node keeps the ones it has. */
int node_reload_certs(node *n, merr *e);
/* Clean shutdown: stops serving, waits for in-flight work, closes everything,
 * releases the store lock and frees n. */
void node_stop(node *n);

#endif
