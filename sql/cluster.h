/* The one hook through which SQL system views see the cluster.
 *
 * The SQL layer knows nothing of nodes, ranges or rpc: a session is given a
 * table of callbacks (sql_session_set_cluster) that list what the views
 * meridian_nodes, meridian_ranges, meridian_sessions and
 * meridian_transactions show. The node implements it
 * (server/node_sysviews.c); unit tests pass fixed rows. When the cluster
 * gets a range directory, only the ranges callback changes.
 *
 * Each callback calls emit(sink, &row) once per row; the row and the strings
 * it points at need only live for that call. A nonzero return from emit
 * (out of memory) must be returned as is. Callbacks run on the session's
 * thread while a statement runs; they may block (rpc), and return 0 or a
 * negative MERR_* with a message in e. A NULL callback: the view fails with
 * "not available". Strings may be NULL (SQL NULL); so may a field whose
 * has_* flag is 0. Nothing is ever made up: unknown stays NULL. */
#ifndef MERIDIAN_SQL_CLUSTER_H
#define MERIDIAN_SQL_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct sql_cluster_node {
    uint64_t node_id;
    const char *address;
    const char *region, *zone;
    const char *state; /* starting, serving, draining, or unreachable */
    int has_stats;     /* 0 (unreachable): the counts below are NULL */
    int64_t ranges, leases;
    double uptime_s;
    const char *clock_source; /* chrony, kernel, static */
    int has_epsilon;          /* 0: the clock cannot vouch for a bound now */
    int64_t clock_epsilon_us; /* TrueTime half width */
} sql_cluster_node;

typedef struct sql_cluster_range {
    uint64_t range_id;
    const uint8_t *start, *end; /* [start, end); an empty end is +infinity */
    size_t start_len, end_len;
    uint64_t generation;
    const char *replicas; /* "1,2,3" (learners suffixed L) */
    uint64_t leader_node; /* the leaseholder; 0 when none is known */
    int64_t keys, bytes;  /* live, as the best-informed replica says */
    uint64_t applied;     /* that replica's applied slot */
} sql_cluster_range;

typedef struct sql_cluster_session {
    uint64_t session_id, node_id;
    const char *user, *application_name;
    const char *state;     /* idle, running, idle in transaction */
    const char *statement; /* running or last statement, NULL before one */
    int64_t started_at_ms; /* session opened, Unix ms */
} sql_cluster_session;

typedef struct sql_cluster_txn {
    uint64_t txn_id, node_id, range_id, priority;
    const char *state; /* active, committing, committed, aborted */
    int waiting;       /* a request is parked waiting for a lock */
    int64_t age_ms;    /* since the first attempt began (its priority) */
    int64_t idle_ms;   /* since its last request here */
} sql_cluster_txn;

/* A named placement policy (docs/placement.md): the ranges whose start key
 * lies in [start, end) get `replicas` voters in `regions`, leases in
 * `lead_region`. */
typedef struct sql_cluster_policy {
    const char *name;
    const uint8_t *start, *end; /* an empty end is +infinity */
    size_t start_len, end_len;
    int64_t replicas;        /* 1, 3 or 5 */
    const char *regions;     /* "us,eu"; "" = any region */
    const char *lead_region; /* "" = no preference */
    const char *survive;     /* "zone" or "region" */
} sql_cluster_policy;

/* The lowest key a placement policy may start at: the first user table's
 * (sql/placement.c). A policy boundary is a split point, and the keys
 * below (the SQL catalog) must stay in range 1, beside the transaction
 * records every SQL transaction writes there. 0 or MERR_NOMEM. */
int sql_policy_min_key(mbuf *out);

typedef int (*sql_cluster_emit_fn)(void *sink, const void *row);

typedef struct sql_cluster_ops {
    int (*nodes)(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e);
    int (*ranges)(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e);
    int (*sessions)(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e);
    int (*transactions)(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e);
    /* Placement policies: list (rows are sql_cluster_policy), set (checked
     * by the cluster: MERR_INVALID with the reason; a warning, such as a
     * region no node is in yet, lands in warn), remove (MERR_INVALID when
     * there is no such policy). */
    int (*policies)(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e);
    int (*policy_set)(void *ctx, const sql_cluster_policy *p, char *warn, size_t warn_cap, merr *e);
    int (*policy_rm)(void *ctx, const char *name, merr *e);
} sql_cluster_ops;

#endif
