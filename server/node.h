/* The node: one process's share of a Meridian cluster. It owns the store
 * directory, the admin HTTP endpoints and (as the layers land) the rpc
 * listener, the clock, the log store and the range replicas, all driven by one
 * libuv loop.
 *
 * Lifecycle:  STARTING --(listeners up)--> SERVING --(stop)--> DRAINING
 *             --(in-flight work done)--> STOPPED
 * /health answers 200 from SERVING on; /ready answers 200 only while the node
 * can serve requests (SERVING and part of an initialised cluster). */
#ifndef MERIDIAN_SERVER_NODE_H
#define MERIDIAN_SERVER_NODE_H

#include <uv.h>

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

/* Opens the store (refusing one in use), starts the listeners on `loop`, and
 * writes DIR/listen-addrs ("http=HOST:PORT" lines) for scripts and tests. */
int node_start(const node_config *cfg, uv_loop_t *loop, node **out, merr *e);
/* Begins a clean shutdown; `done` runs on the loop once everything is closed
 * and n is freed. */
void node_stop(node *n, void (*done)(void *arg), void *arg);
node_state node_get_state(const node *n);

#endif
