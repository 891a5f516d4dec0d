/* A remote implementation of the SQL layer's transactional KV (sql/kv.h)
 * over a Meridian cluster: the txn.* methods of server/txn_service.c.
 *
 *  - begin() picks a random transaction id and a priority (the clock, or the
 *    priority of the attempt being retried: txn_client_set_next_priority), so
 *    a retried transaction keeps its age under wound-wait and eventually wins.
 *  - get()/scan() go to the range's leaseholder, which takes shared locks
 *    (point, or key-range for scans: no phantoms) and returns the latest
 *    committed values; buffered writes of the transaction are merged in
 *    (read-your-own-writes). A scan iterator fetches pages lazily.
 *  - put()/del() are buffered locally; savepoint()/rollback_to() are marks
 *    in that buffer. commit() sends the writes in one txn.Commit: exclusive
 *    locks, one replicated write, commit-wait. MERR_ABORTED when the
 *    transaction was wounded, timed out or lost its locks: retry it.
 *  - SQL_KV_READ_ONLY transactions read lock-free at one snapshot timestamp
 *    chosen at the first read (by the leaseholder, or for stale reads by
 *    the replica that served it: txn_client_set_read_mode); they never abort.
 *
 * Cancellation: txn_client_cancel() (any thread) stops the transaction's
 * work on c: a read waiting at the leaseholder (for a lock, or a slow
 * leader) fails at once with MERR_CANCELED, and so does every later read
 * until txn_client_clear_cancel(); a commit waiting for locks is resolved
 * by rolling it back at the leaseholder, so its answer (aborted, or
 * committed if it was already past its locks) stays the truth.
 *
 * Requests follow NOT_LEADER hints (keeping up to TC_MAX_CONNS connections,
 * so a transaction over several leaseholders does not reconnect) and fail
 * over among the seed hosts; a
 * retried commit is idempotent (the leaseholder keeps the outcome by txn id).
 * A txn_client and its transactions are used by one thread at a time (any
 * thread but an rpc loop); open one client per thread. */
#ifndef MERIDIAN_SERVER_TXN_CLIENT_H
#define MERIDIAN_SERVER_TXN_CLIENT_H

#include <stdint.h>

#include "common/err.h"
#include "sql/kv.h"

typedef struct txn_client txn_client;

/* hosts_csv: "H1:P1,H2:P2,..." (seeds, tried in turn). certs_dir: TLS with
 * the root client certificate there; NULL: insecure. */
int txn_client_open(const char *hosts_csv, const char *certs_dir_or_NULL, txn_client **out,
                    merr *e);
void txn_client_close(txn_client *c);
/* A client inside a node (a SQL session's): requests to addr, the node's
 * own rpc address, go to its handlers through n's loop without a socket.
 * Set once, before the first call. txn_client_local_calls_total: such
 * requests in this process so far (/metrics). */
struct rpc_node;
void txn_client_set_local(txn_client *c, struct rpc_node *n, const char *addr);
uint64_t txn_client_local_calls_total(void);

/* The sql/kv.h operations; their kv_ctx is the txn_client. */
const sql_kv_ops *txn_client_kv_ops(void);

/* Stale and timestamped reads (docs/transactions.md "Follower reads"):
 * read-only transactions begun after this call pick their snapshot by mode
 * (staleness_us for EXACT/BOUNDED, at_ts for AT, an HLC timestamp) and,
 * unless STRONG, may be served by any replica whose safe time reached it:
 * the node the client is connected to (its first seed), else the
 * leaseholder it is sent to. TXN_CLIENT_READ_STRONG restores the default.
 * MERR_INVALID for an unknown mode. */
enum {
    TXN_CLIENT_READ_STRONG = 0,
    TXN_CLIENT_READ_EXACT = 1,
    TXN_CLIENT_READ_BOUNDED = 2,
    TXN_CLIENT_READ_AT = 3,
};
int txn_client_set_read_mode(txn_client *c, int mode, uint64_t staleness_us, uint64_t at_ts);
/* The node the client talks to now ("host:port"): after a strong read, the
 * leaseholder of the range read (benchmarks aim at it). */
const char *txn_client_current_host(const txn_client *c);
/* The snapshot timestamp of a read-only transaction (0: no read yet). */
uint64_t txn_client_read_ts(const sql_kv_txn *t);
/* Requests sent to nodes so far, and reads a read-write transaction's read
 * cache answered instead (server/txn_rcache.h): what tests and benchmarks
 * count round trips by. */
uint64_t txn_client_calls(const txn_client *c);
uint64_t txn_client_cache_hits(const txn_client *c);

/* The next begin() on c uses this priority (a retry keeps its first start
 * timestamp); 0 = from the clock. */
void txn_client_set_next_priority(txn_client *c, uint64_t prio);
/* The priority a transaction runs with. */
uint64_t txn_client_priority(const sql_kv_txn *t);
/* Any thread. */
void txn_client_cancel(txn_client *c);
/* The client's thread, before the next statement. */
void txn_client_clear_cancel(txn_client *c);
/* How long one operation may take, retries included (default 30 s). */
void txn_client_set_timeout(txn_client *c, int64_t ns);
/* Caps the bytes of writes one transaction buffers (keys + values, until
 * commit): a write past it fails with MERR_TOOBIG and the statement with
 * it; the session and the node go on. 0 = no cap (--max-session-memory). */
void txn_client_set_write_limit(txn_client *c, size_t bytes);
/* The running statement's deadline (Unix µs, 0 = none): no call but a
 * rollback outlasts it, so statement_timeout bounds a stuck transaction too. */
void txn_client_set_deadline(txn_client *c, int64_t deadline_us);

#endif
