/* The per-range transaction state of txn_service.c: one lock table per range
 * this node leads, the transactions it knows (active, committing, recently
 * finished), their parked requests, and the wound/grant work queue. Split
 * from the rpc handlers so each file stays readable; internal to server/. */
#ifndef MERIDIAN_SERVER_TXN_TABLE_H
#define MERIDIAN_SERVER_TXN_TABLE_H

#include <stdint.h>
#include <uv.h>

#include "common/buf.h"
#include "proto/txn.pb-c.h"
#include "replication/paxos.h"
#include "rpc/rpc.h"
#include "server/host.h"
#include "server/replica.h"
#include "txn/lock.h"

#define TX_LEADER_CACHE 256
#define TX_BUCKETS      256

typedef enum tx_state { TX_ACTIVE, TX_COMMITTING, TX_COMMITTED, TX_ABORTED } tx_state;
typedef enum tx_kind { TX_GET, TX_SCAN, TX_COMMIT, TX_PREPARE, TX_ROLLBACK } tx_kind;

/* A request waiting for a lock (the rpc stays open until it is granted). */
typedef struct tx_parked {
    rpc_req *req;
    tx_kind kind;
    void *q;      /* the unpacked request, owned */
    size_t step;  /* commit: the next mutation to lock */
    uint64_t tag; /* the lock request waited for */
    /* scan: the span locked (and re-read once granted) */
    mbuf lo, hi;
    int to_end, truncated;
} tx_parked;

typedef struct tx_txn {
    txn_id id;
    txn_ts prio;
    tx_state state;
    uint64_t commit_ts;
    int64_t last_ns;   /* monotonic: last request, or when it finished */
    tx_parked *pk;     /* at most one: the client is blocking */
    rpc_req **waiters; /* commit requests waiting for the outcome */
    size_t nwaiters, capwaiters;
    uint64_t next_tag;
    struct tx2 *x2; /* 2PC state (server/txn_2pc.c), NULL for single-range */
    struct tx_txn *next;
} tx_txn;

typedef struct tx_work {
    int wound; /* 1: abort txn; 0: txn's request `tag` was granted */
    txn_id txn;
    uint64_t tag;
} tx_work;

typedef struct txn_service txn_service;

typedef struct tx_range {
    txn_service *s;
    uint64_t range_id;
    replica *r;
    paxos_ballot ballot; /* the table is valid only under this ballot */
    uint64_t generation; /* ... and this range generation (a split/merge ends it) */
    uint64_t epoch;      /* names this table; returned with locking reads */
    txn_lock_table *lt;
    txn_lock_out out;
    tx_txn *b[TX_BUCKETS];
    tx_work *q;
    size_t nq, capq;
    int pumping;
    int64_t last_prop_ns; /* monotonic: the last write this table proposed */
    /* A split or merge ended the table while this node still leads: new
     * locks wait (retryable) until the proposals made before are applied
     * (ids up to drain_upto), else a commit in flight could land under a
     * transaction that locked its keys afresh (a lost update, found by the
     * jepsen split,merge nemesis). */
    int drain_set;
    uint64_t drain_upto;
    /* transaction record GC (server/txn_2pc_gc.c) */
    int64_t gc_last_ns;
    int gc_inflight;
    mbuf gc_cursor;             /* where the next scan resumes (empty: from the start) */
    size_t gc_seen, gc_records; /* records this scan cycle; at the last full cycle */
    struct tx_range *next;
} tx_range;

struct txn_service {
    rpc_node *rpc;
    host *h;
    uv_timer_t timer;
    int64_t idle_ns;
    tx_range *ranges;
    /* counters for /metrics */
    uint64_t commits, wounds, idle_aborts, tables_dropped, lock_waits;
    uint64_t follower_reads;                 /* snapshot reads served without the lease */
    uint64_t not_leader;                     /* requests sent on elsewhere (NOT_LEADER) */
    uint64_t lease_parked;                   /* requests held for a lapsed lease's renewal */
    uint64_t strong_settled, strong_barrier; /* strong reads: how t was picked (txn_snapshot.c) */
    uint64_t records_collected;
    uint64_t route_turn; /* tx2_call_range: whom to ask next for a range held elsewhere */
    /* tx2_call_range: the node that last answered for a range as its
     * leaseholder (direct-mapped by range id; 0: none), so a coordinator
     * whose node holds no replica of a participant asks it first instead
     * of going round the peers on every transaction. */
    struct {
        uint64_t range, node;
    } leaders[TX_LEADER_CACHE];
    uint64_t misdirected; /* 2PC calls answered RANGE_NOT_FOUND or NOT_LEADER */
};

/* The table of r's range, valid under r's current ballot (a stale one is
 * dropped first); created when missing. NULL with *code set: MERR_NOMEM, or
 * MERR_BUSY (retryable) while an ended table's writes are still in flight. */
tx_range *tx_range_get(txn_service *s, replica *r, int *code, const char **why);
/* The same where nobody waits for an answer (NULL on either failure). */
tx_range *tx_range_for(txn_service *s, replica *r);
/* 1 while rg, ended by a split or merge of the range this node still leads,
 * waits for the proposals made before it ended (see drain_upto). */
int tx_range_draining(tx_range *rg);
tx_range *tx_range_find(txn_service *s, uint64_t range_id);
/* Aborts every transaction of the table and frees it (lease lost). */
void tx_range_drop(tx_range *rg, const char *why);
/* 1 while rg's replica leads under the ballot the table was made for (the
 * lease itself may have lapsed while the group was quiet). */
int tx_range_valid(tx_range *rg);

tx_txn *tx_txn_find(tx_range *rg, txn_id id);
tx_txn *tx_txn_add(tx_range *rg, txn_id id, txn_ts prio);
void tx_txn_forget(tx_range *rg, tx_txn *t);
/* Releases t's locks, answers its parked request "aborted", marks it ABORTED. */
void tx_txn_abort(tx_range *rg, tx_txn *t, const char *why);
/* Releases t's locks (commit or abort). */
void tx_txn_release(tx_range *rg, tx_txn *t);
/* Queues the wounds and grants of rg->out; tx_pump() acts on them. */
void tx_queue_out(tx_range *rg);
void tx_pump(tx_range *rg);
void tx_parked_free(tx_parked *pk);

/* Sweeps idle and finished transactions and lost leases (timer). */
void tx_sweep(txn_service *s);

/* In txn_service.c: resumes a parked request whose lock was granted, and
 * answers a request with an error (aborted: the transaction must restart). */
void txs_resume(tx_range *rg, tx_txn *t, tx_parked *pk);
void txs_fail(txn_service *s, replica *r, rpc_req *req, tx_kind kind, int code, const char *msg,
              int aborted);

/* Shared by txn_service.c and txn_snapshot.c. at: the read timestamp
 * (RANGE_TS_MAX: latest); epoch, read_ts: echoed in the reply. */
void txs_reply_get(txn_service *s, replica *r, rpc_req *req, const ProtobufCBinaryData *key,
                   uint64_t at, uint64_t epoch, uint64_t read_ts);
void txs_reply_scan(txn_service *s, replica *r, rpc_req *req, const mbuf *lo, const mbuf *hi,
                    int to_end, int reverse, size_t limit, int truncated, uint64_t at,
                    uint64_t epoch, uint64_t read_ts);
size_t txs_scan_limit(const Meridian__Txn__ScanRequest *q);
uint64_t txs_now_ts(txn_service *s);
/* txn_route.c: a user key (not a system key, not too long); the replica
 * holding key / where a scan starts (its bounds clipped to that range's span,
 * pk->truncated set), and whether it may serve (any: a follower may). 0 or an
 * error code with why. */
int txs_user_key_ok(const uint8_t *k, size_t n);
int txs_route(txn_service *s, const uint8_t *k, size_t n, int any, replica **out, const char **why);
int txs_route_scan(txn_service *s, tx_parked *pk, int reverse, int any, replica **out,
                   const char **why);
/* When r leads but its lease lapsed while its group was quiet (the route
 * said NOT_LEADER): parks req until the renewal, usually one round trip, and
 * then runs fn on it again from a copy of its payload; if the lease does not
 * come back in time, answers kind's NOT_LEADER. 1: parked; 0: not (the
 * caller answers as before). Saves the client its back-off and retry. */
typedef void (*txs_handler)(void *arg, rpc_req *req);
int txs_park_for_lease(txn_service *s, replica *r, rpc_req *req, tx_kind kind, txs_handler fn);
/* Answers pk's get or scan at read_ts, or first picks one (0); takes pk's
 * contents (pk itself stays the caller's). */
void txs_snapshot_read(txn_service *s, replica *r, tx_parked *pk, uint64_t read_ts);
/* Answers a snapshot get or scan by its read mode (proto ReadMode), at this
 * replica when its safe time allows (a follower too), else at the
 * leaseholder path above or with NOT_LEADER; takes pk's contents. */
void txs_snapshot_dispatch(txn_service *s, replica *r, tx_parked *pk);
/* In txn_service.c: 1: granted; 0: parked until granted; -1: answered. */
int txs_lock_or_park(tx_range *rg, tx_txn *t, tx_parked *pk, txn_span span, txn_lock_mode mode);
/* The lock epoch meta names for range_id (0: none), from its lock list or
 * its single-range fields. */
uint64_t txs_meta_epoch(const Meridian__Txn__TxnMeta *meta, uint64_t range_id);
/* In txn_service.c: a commit request waiting for t's outcome. */
int txs_add_waiter(tx_txn *t, rpc_req *req);

#endif
