/* Internals shared by txn_client.c (connection, calls, transactions) and
 * txn_client_iter.c (scan iterators). */
#ifndef MERIDIAN_SERVER_TXN_CLIENT_INT_H
#define MERIDIAN_SERVER_TXN_CLIENT_INT_H

#include <protobuf-c/protobuf-c.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "proto/txn.pb-c.h"
#include "server/cli_rpc.h"
#include "server/txn_client.h"
#include "server/txn_rcache.h"
#include "server/txn_routes.h"

#define TC_MAX_HOSTS 16
#define TC_MAX_CONNS 8  /* open connections kept: requests go to each range's leaseholder */
#define TC_MAX_LOCKS 64 /* ranges one read-write transaction may lock in */
/* follower_read_timestamp(): a replica further behind than this sends the
 * read to the leaseholder (a fresh ts) rather than serve a surprise. */
#define TC_FOLLOWER_BOUND_US (10 * 1000000ull)

struct txn_client {
    char hosts[TC_MAX_HOSTS][128];
    int nhosts, next;
    char cur[128];
    /* The seed host in use (opened, or the next one after a failure), as
     * opposed to a leaseholder a NOT_LEADER hint pointed at: reads that any
     * replica may serve start here, so one redirect does not pin every later
     * follower read to the leaseholder. */
    char home[128];
    char *certs_dir; /* NULL: insecure */
    cli_rpc *rpc;    /* the current one, among conns */
    struct {
        char host[128];
        cli_rpc *rpc;
    } conns[TC_MAX_CONNS];
    int nconns;
    uint64_t next_prio;
    int64_t timeout_ns;
    int64_t stmt_deadline_ns; /* monotonic; 0 = none (txn_client_set_deadline) */
    /* Cancellation (txn_client_cancel, any thread): mu guards the rpc
     * pointer against reconnects and the commit's rollback request. */
    pthread_mutex_t mu;
    atomic_int canceled;
    mbuf cancel_rollback; /* a packed txn.Rollback while a commit waits */
    size_t write_limit;   /* bytes a transaction may buffer; 0 = no cap */
    /* Read-only transactions: TXN_CLIENT_READ_* and its argument. */
    int read_mode;
    uint64_t staleness_us, read_at;
    txn_routes routes; /* leaseholders by span, from read replies */
    uint64_t calls;    /* txn.* requests sent (txn_client_calls) */
    uint64_t hits;     /* reads answered by a transaction's read cache */
    /* The gateway's own node, reached without a socket when cur is
     * local_addr (txn_client_local.c); lcur: the call waiting now (mu). */
    struct rpc_node *local;
    char local_addr[128];
    struct tc_local *lcur;
};

/* txn_client_local.c: one request to the current host, through the local
 * node when it is the gateway's own, else its connection; cli_rpc_call's
 * contract. tc_local_wake: wakes a local call waiting now (c->mu held), so
 * that it sees a cancel. */
typedef struct tc_local tc_local;
int tc_rpc(txn_client *c, const char *method, const void *buf, size_t len, int64_t tmo_ns,
           int interruptible, mbuf *reply, merr *e);
void tc_local_wake(txn_client *c);

/* Where a call should go first: the leaseholder the route cache knows for
 * key (klen > 0) or range_id; NULL or unknown: the current host. */
typedef struct tc_to {
    const uint8_t *key;
    size_t klen;
    uint64_t range_id;
} tc_to;

typedef struct tc_op {
    uint8_t *key, *val;
    size_t klen, vlen;
    int del;
} tc_op;

struct sql_kv_txn {
    txn_client *c;
    uint64_t id, prio;
    /* The lock tables our locks are in: (range, epoch), one per range; a
     * commit over several is two-phase (server/txn_2pc.c). */
    Meridian__Txn__RangeLock locks[TC_MAX_LOCKS];
    Meridian__Txn__RangeLock *lockp[TC_MAX_LOCKS];
    size_t nlocks;
    uint64_t read_ts; /* read-only: the snapshot (0: not chosen yet) */
    int ro;
    int read_mode; /* read-only: TXN_CLIENT_READ_* from the client at begin */
    uint64_t staleness_us;
    /* read-only, READ_AT: the ts asked for */
    uint64_t read_at;
    int aborted;   /* a read said so: commit refuses, rollback releases */
    int touched;   /* locks may be held at the leaseholder */
    int for_write; /* sql_kv_ops.lock_for_write: reads (and scans begun) lock X */
    tc_op *ops;    /* buffered writes, in order (savepoint marks index it) */
    size_t nops, capops;
    size_t op_bytes; /* keys + values buffered in ops */
    mbuf anchor;     /* the first key touched: names the range */
    tc_rcache rc;    /* read-write: what its locked reads found */
};

/* The snapshot fields of a read request: the chosen ts once there is one
 * (then at that ts, at any replica if the mode allows), else the mode. */
/* Before a read any replica may serve: back to the home host if a hint
 * moved the client away (its connection is kept, so this is cheap). */
int tc_go_home(sql_kv_txn *t, merr *e);
void tc_read_fill(const sql_kv_txn *t, protobuf_c_boolean *snapshot, uint64_t *read_ts,
                  Meridian__Txn__ReadMode *mode, uint64_t *staleness_us,
                  protobuf_c_boolean *any_replica);
void tc_meta(sql_kv_txn *t, Meridian__Txn__TxnMeta *m);
/* Calls method with req until an answer that is not "go elsewhere / try
 * again"; *out is the unpacked response. MERR_ABORTED when it says aborted.
 * to (NULL: none) picks the first host by the route cache; a read's reply
 * from a leaseholder teaches the cache its range. */
int tc_call(txn_client *c, const char *method, const ProtobufCMessage *req,
            const ProtobufCMessageDescriptor *desc, const tc_to *to, ProtobufCMessage **out,
            merr *e);
/* Checks a locking read's lock epoch (of range range_id) against the
 * transaction's. */
int tc_epoch(sql_kv_txn *t, uint64_t range_id, uint64_t epoch, merr *e);
/* Records the first key a transaction touches. */
int tc_anchor(sql_kv_txn *t, const uint8_t *key, size_t klen);

int tc_scan(sql_kv_txn *t, const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
            int reverse, size_t limit, sql_kv_iter **out, merr *e);
int tc_iter_next(sql_kv_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val,
                 size_t *vlen, merr *e);
void tc_iter_close(sql_kv_iter *it);

#endif
