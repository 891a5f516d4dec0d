/* Internals of the node's 2PC (txn_2pc.c: coordinator and calls between
 * range leaders; txn_2pc_part.c: participant, handlers, rebuild). */
#ifndef MERIDIAN_SERVER_TXN_2PC_INT_H
#define MERIDIAN_SERVER_TXN_2PC_INT_H

#include "server/txn_2pc.h"
#include "txn/twopc.h"

#define TX2_VOTE_NS  (5LL * MTIME_S) /* coordinator: votes missing this long abort */
#define TX2_CALL_NS  (2LL * MTIME_S) /* one rpc attempt */
#define TX2_QUERY_NS (1LL * MTIME_S)

enum { ROLE_COORD = 1, ROLE_PART = 2 };
enum { P_IDLE = 0, P_INFLIGHT, P_DONE }; /* a message to a range: to send, sent, answered */

typedef struct tx2_part {
    uint64_t range, epoch, node_hint;
    size_t nmuts;
    Meridian__Kv__Mutation **muts; /* borrowed from the commit request */
    int prep, dec;                 /* P_*: the prepare, the decision */
    int asked; /* nodes that answered "no replica here" (tx2_call_range asks the next) */
} tx2_part;

struct tx2 {
    int role;
    txn_coord c;
    txn_part p;
    int64_t since_ns; /* the current phase began (timeouts) */
    /* coordinator */
    Meridian__Txn__CommitRequest *cq;
    Meridian__Kv__Mutation **muts; /* the slices of parts[].muts */
    size_t nparts;
    tx2_part parts[TXN_MAX_PARTS];
    txn_outcome outcome;
    uint64_t s;
    /* participant */
    Meridian__Txn__PrepareRequest *pq; /* NULL when rebuilt from an intent */
    uint64_t coord_range, coord_hint;
    mbuf coord_key;
    rpc_req **wait; /* prepare (until the vote) or decide (until logged) requests */
    size_t nwait, capwait;
    int query; /* P_*: status query */
};

typedef struct tx2_ctx {
    txn_service *s;
    uint64_t range, epoch; /* the sender's table */
    txn_id txn;
    size_t part; /* coordinator: index of the participant */
    int what;    /* 0 prepare, 1 decide, 2 status */
    uint64_t to; /* the node the call went to (tx2_call_range) */
} tx2_ctx;

void tx2_crash_point(const char *point);
int tx2_clock_now(txn_service *s, txn_clock *clk);
void tx2_observe(txn_service *s, uint64_t ts);
/* The deadline a record gets when no client deadline is known (Unix µs). */
uint64_t tx2_presumed_deadline(txn_service *s);
int tx2_add_wait(struct tx2 *x, rpc_req *req);
struct tx2 *tx2_new(int role);
int tx2_call_range(txn_service *s, uint64_t rid, uint64_t hint, const char *method,
                   const ProtobufCMessage *m, rpc_reply_fn cb, tx2_ctx *c);
/* What a participant's answer taught about where range rid is led: `to`
 * answered as its leaseholder (ok), or named `hint` (NOT_LEADER), or holds
 * no replica (not_found). */
void tx2_learn(txn_service *s, uint64_t rid, uint64_t to, int ok, uint64_t hint, int not_found);
tx_txn *tx2_ctx_txn(tx2_ctx *c, tx_range **rg_out);
tx2_ctx *tx2_ctx_new(tx_range *rg, tx_txn *t, size_t part, int what);
int tx2_propose(tx_range *rg, tx_txn *t, const txn_record *rec, const range_batch *b);
void tx2_part_run(tx_range *rg, tx_txn *t, const txn_out *out);
void tx2_on_prepare(void *arg, rpc_req *req);
void tx2_on_decide(void *arg, rpc_req *req);
void tx2_on_status(void *arg, rpc_req *req);
void tx2_coord_sweep(tx_range *rg, tx_txn *t, int64_t now_ns);
/* Carries out a coordinator machine's actions. */
void tx2_coord_run(tx_range *rg, tx_txn *t, const txn_out *out);
void tx2_part_sweep(tx_range *rg, tx_txn *t, int64_t now_ns);

#endif
