/* Replica moves executed on the nodes: range.Move / range.Create /
 * range.Destroy, the PD's cleanup of removed replicas and the list of
 * decommissioning nodes (server/node_moves.c). Loop thread. */
#ifndef MERIDIAN_SERVER_NODE_MOVES_H
#define MERIDIAN_SERVER_NODE_MOVES_H

#include <stddef.h>
#include <stdint.h>

#include "placement/pd_feed.h"
#include "placement/pd_missing.h"
#include "server/node_int.h"

/* = MoveRequest.op (proto/range.proto) */
#define NODE_MOVE_ADD_LEARNER 1
#define NODE_MOVE_PROMOTE     2
#define NODE_MOVE_REMOVE      3
#define NODE_MOVE_TRANSFER    4
#define NODE_MOVE_RECREATE    5 /* a current member's missing replica (PD only) */

typedef struct node_moves node_moves;
typedef void (*node_moves_cb)(void *arg, int code, const char *msg);

int node_moves_start(node *n, merr *e);
void node_moves_stop(node *n);
void node_moves_metrics_render(node *n, mbuf *out);
/* Runs one step of a move at the range's leader (here or over rpc); done
 * runs once when 0 is returned, never otherwise. */
int node_moves_step(node *n, uint64_t leader, uint64_t rid, int op, uint64_t target,
                    node_moves_cb done, void *arg);
/* PD leader, every run: asks nodes to delete replicas of ranges whose
 * leader no longer counts them, and to create learners their node does not
 * host (ranges with operations in c->inflight or in ops, this run's, are
 * left alone: their reports may predate the change). */
void node_moves_gc(node *n, const pd_hb_table *t, const pd_cluster *c, const pd_ops *ops);
/* PD leader, every run: has the leaders create the replicas pd_missing_scan
 * found due (voters whose node lacks their range), but not of ranges with
 * operations under way (as node_moves_gc). */
void node_moves_repair(node *n, const pd_missing *due, size_t ndue, const pd_cluster *c,
                       const pd_ops *ops);

/* server/node_decom.c: the pd.Decommission handler (arg: the node). */
void node_decom_rpc(void *arg, rpc_req *req);
/* The nodes marked decommissioning in range 1 (*ids malloc'd; the count). */
size_t node_decom_list(replica *r1, pd_node_id **ids);
/* Range 1's key marking node_id decommissioning: its length, or -1. */
int node_decom_key(uint64_t node_id, uint8_t *out, size_t cap);

/* Node ids stored as "<prefix><decimal id>" keys in range 1 (the caller
 * frees *ids). */
size_t node_pd_scan_ids(replica *r1, const uint8_t *prefix, size_t plen, pd_node_id **ids);

#endif
