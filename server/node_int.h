/* The node's internals, shared by node.c (lifecycle, admin) and
 * node_cluster.c (init, join, address book, range-1 replication). */
#ifndef MERIDIAN_SERVER_NODE_INT_H
#define MERIDIAN_SERVER_NODE_INT_H

#include <uv.h>

#include "common/addr.h"
#include "rpc/rpc.h"
#include "server/admin_http.h"
#include "server/host.h"
#include "server/node.h"
#include "server/session_exec_sql.h"
#include "server/session_service.h"
#include "server/store_dir.h"

#define NODE_GENESIS_RANGE 1 /* range 1: the whole key space at first */
#define NODE_REPLICATION   3 /* voters of range 1 once enough nodes joined */

struct node {
    node_config cfg;
    rpc_node *rpc;
    node_state state; /* loop thread after start */
    store_dir store;
    admin_http *http;
    host host;
    int host_open;
    int64_t started_mono_ns;
    uint64_t http_requests;
    char rpc_addr[MADDR_STR_MAX];
    char http_addr[MADDR_STR_MAX];
    merr start_err; /* set by the loop-thread half of node_start */
    /* single-range transactions (server/txn_service.h) */
    struct txn_service *txn;
    /* cluster membership (node_cluster.c) */
    uv_timer_t cluster_timer;
    int cluster_timer_on;
    int join_inflight;
    unsigned join_seed; /* next seed to try */
    char join_redirect[MADDR_STR_MAX];
    int admitting; /* a node.Join is being admitted (one at a time) */
    /* SQL sessions (node_sql.c) */
    session_service *sql_svc;
    session_executor sql_ex;
    session_exec_sql_config sql_cfg;
    struct sql_kv_mem *sql_mem;   /* --testing-sql-memory only */
    struct sql_kv_lock *sql_lock; /* ... and its serializing wrapper */
    /* splits, range ids, the range directory (node_ranges.c) */
    struct node_ranges *ranges;
    /* the placement driver (node_pd.c) */
    struct node_pd *pd;
    /* range merges (node_merge.c) */
    struct node_merge *merge;
    /* replica moves (node_moves.c) */
    struct node_moves *moves;
};

/* node_page.c: the HTML admin page */
void node_page_render(node *n, mbuf *b);

/* node_cluster.c */
int node_cluster_start(node *n, merr *e); /* loop thread, after the host opened */
void node_cluster_stop(node *n);
/* Makes this node node 1 of a new cluster with range 1 on it alone. */
int node_bootstrap(node *n, char *cluster_id_out, merr *e);

/* node_ranges.c: range.Split, range.AllocId, dir.Scan/Lookup and the
 * directory writer. Loop thread, after the host opened. */
typedef struct node_ranges node_ranges;
int node_ranges_start(node *n, merr *e);
void node_ranges_stop(node *n);
void node_ranges_metrics_render(node *n, mbuf *out);
/* Splits the range holding key at key, from this node (it must hold the
 * lease); done runs once, as range.Split would answer. 0 or MERR_NOMEM. */
int node_ranges_split(node *n, const uint8_t *key, size_t klen,
                      void (*done)(void *arg, int code, const char *msg), void *arg);

/* The directory entry of a range merged away is deleted with the next
 * directory write (readers ignore it meanwhile: older generation). */
void node_ranges_forget(node *n, uint64_t range_id);

/* node_merge.c: range.Merge, range.Freeze and finishing frozen merges.
 * Loop thread, after node_ranges_start. */
typedef struct node_merge node_merge;
int node_merge_start(node *n, merr *e);
void node_merge_stop(node *n);
void node_merge_metrics_render(node *n, mbuf *out);
/* Merges range left_id (its lease must be here) with its right neighbour;
 * done runs once, as range.Merge would answer. 0 or MERR_NOMEM. */
int node_merge_range(node *n, uint64_t left_id, void (*done)(void *arg, int code, const char *msg),
                     void *arg);
/* The same at node `leader` (range.Merge with a key of the left range,
 * starting at start; "" for range 1), or here if that is this node. */
int node_merge_at(node *n, uint64_t leader, uint64_t left_id, const uint8_t *start, size_t slen,
                  void (*done)(void *arg, int code, const char *msg), void *arg);
/* node_lease.c: range.TransferLease (proto/lease.proto). Loop thread, once
 * the host is open; it answers UNAVAILABLE unless the node is serving. */
void node_lease_register(node *n);

/* node_pd.c: heartbeats to the placement driver, the PD loop on range 1's
 * leaseholder, pd.Settings. Loop thread, after node_ranges_start. */
typedef struct node_pd node_pd;
int node_pd_start(node *n, merr *e);
void node_pd_stop(node *n);
void node_pd_metrics_render(node *n, mbuf *out);
/* The admin page's "Ranges per node" section (bars, from the PD's view). */
void node_pd_page_render(node *n, mbuf *b);
/* The PD's last view: replicas on node id, and whether the node is known.
 * MERR_UNAVAILABLE unless this node is the PD with a snapshot. */
int node_pd_replicas_on(node *n, uint64_t id, uint32_t *reps, int *known);

#endif
