/* Single-range read-write transactions at a range's leaseholder
 * (proto/txn.proto, docs/transactions.md "What is wired"): txn.Get and
 * txn.Scan take shared locks in the range's lock table (txn/lock.h, wound-
 * wait) and return the latest committed value; txn.Commit takes exclusive
 * locks on the buffered writes and makes them one replicated write
 * (replica_write: s >= TT.now().latest, reply after commit-wait); txn.Rollback
 * releases. Snapshot reads (read-only transactions) take no locks.
 *
 * One lock table per range this node leads, created at the first request
 * under a lease and dropped (its transactions abort) when the lease is lost
 * or the Paxos ballot changes. A transaction idle for longer than the idle
 * timeout loses its locks; its later requests, and its commit, are refused.
 * Everything runs on the rpc loop thread. */
#ifndef MERIDIAN_SERVER_TXN_SERVICE_H
#define MERIDIAN_SERVER_TXN_SERVICE_H

#include "rpc/rpc.h"
#include "server/host.h"

typedef struct txn_service txn_service;

/* Registers the txn.* methods and starts the service's timer. Loop thread.
 * idle_ns 0: the default (10 s). */
int txn_service_start(rpc_node *rpc, host *h, int64_t idle_ns, txn_service **out, merr *e);
/* Answers every parked request and frees the lock tables; later requests
 * get UNAVAILABLE. Loop thread, before host_close: replica callbacks that
 * host_close fires find no table and do nothing; the service's memory goes
 * when its timer handle has closed, after that. idle_ns 0 also reads
 * MERIDIAN_TESTING_TXN_IDLE_MS (tests). */
void txn_service_stop(txn_service *s);

/* Appends Prometheus text: commits, aborts by reason, lock waits. */
void txn_service_metrics_render(txn_service *s, mbuf *out);

#endif
