/* Two-phase commit over Paxos groups in the node (Spanner §4.2.1,
 * docs/transactions.md "Several ranges"): the coordinator and participant
 * state machines of txn/twopc.h driven by rpcs and replicated records.
 *
 *  - coordinator: the leaseholder of the range the commit request names. It
 *    locks its own writes, sends every other participant range (ranges the
 *    transaction writes or holds locks in) a txn.Prepare with that range's
 *    writes, collects the votes (the replies), logs its commit record with
 *    its own writes at s, commit-waits, answers the client and sends
 *    txn.Decide to the participants.
 *  - participant: takes exclusive locks, logs a prepare record (a storage
 *    intent with the writes and the read spans, at the prepare ts) and
 *    votes; logs the outcome (a storage resolve) and releases its locks.
 *
 * Records at the coordinator: range-local keys anchored at the transaction's
 * anchor (txn/txnrec.h), so they live in whichever range holds the anchor
 * now. The commit record is written with the commit (its version ts is s;
 * the single-range path writes the same key), the abort record is a key of
 * its own. Committed iff the first exists; an abort
 * is announced only once its record applied and no commit record exists
 * (a commit proposed by an earlier leader is chosen in an earlier slot).
 *
 * Failover: a new participant leader rebuilds its prepared transactions
 * from the stored intents (locks retaken, read and write) when its lock
 * table is created; a prepared participant that hears no decision asks the
 * coordinator's range (txn.Status), which answers from its records and
 * presumes abort (logging the abort first) for a transaction it knows
 * nothing of. Everything runs on the rpc loop thread. */
#ifndef MERIDIAN_SERVER_TXN_2PC_H
#define MERIDIAN_SERVER_TXN_2PC_H

#include <stdint.h>

#include "server/txn_table.h"
#include "txn/twopc.h"

struct tx2;

/* Registers txn.Prepare, txn.Decide, txn.Status. */
void tx2_register(txn_service *s);

/* 1 when committing q at rg needs 2PC: writes outside rg's range, or locks
 * held in another range. */
int tx2_is_multi(tx_range *rg, const Meridian__Txn__CommitRequest *q);
/* The commit request pk (t's writes in rg locked, t not woundable) starts
 * two-phase commit with rg as coordinator; takes pk. */
void tx2_coord_start(tx_range *rg, tx_txn *t, tx_parked *pk);
/* Resumes a parked txn.Prepare whose lock was granted. */
void tx2_prepare_continue(tx_range *rg, tx_txn *t, tx_parked *pk);

/* A new lock table: the range's prepared intents come back as prepared
 * participants holding their locks. */
void tx2_rebuild(tx_range *rg);
/* The table goes: answers t's waiting 2PC requests (retry elsewhere). */
void tx2_drop(tx_range *rg, tx_txn *t, const char *why);
/* Frees t's 2PC state (t is being freed). */
void tx2_free(tx_txn *t);
/* Timer: resends, timeouts, status queries. */
void tx2_sweep(tx_range *rg, tx_txn *t, int64_t now_ns);
/* 1 when t is a 2PC transaction still undecided here (keep it). */
int tx2_busy(const tx_txn *t);
/* Timer: deletes the transaction records of rg's range that nobody can ask
 * about any more (txn/txnrec.h), at most one Paxos write in flight; a
 * record this table knows nothing of first has its outcome delivered again
 * (server/txn_2pc_gc.c). */
void tx2_gc(tx_range *rg, int64_t now_ns);
/* For a commit request this table has no outcome for, before any record is
 * read: answers it and returns nonzero when its deadline passed (its record
 * may be collected: refused, never "aborted" nor run again) or lies too far
 * ahead (bad input); else 0. */
/* 1 when r's range holds transaction records with a deadline. */
int tx2_has_records(replica *r);
int tx2_deadline_refused(txn_service *s, replica *r, rpc_req *req, uint64_t deadline_us);

/* The smallest prepare ts of an undecided intent in r's store (0: none):
 * a snapshot read at or above it must wait for the decision. */
uint64_t tx2_min_prepared(replica *r);
/* The smallest ts of a write this leader proposed that has not applied
 * yet (0: none): a read at or above it would miss it. */
uint64_t tx2_min_pending(replica *r);

/* The decision recorded for txn, anchored at anchor, in r's store (and s
 * when committed). */
txn_outcome tx2_recorded(replica *r, const uint8_t *anchor, size_t alen, uint64_t txn, uint64_t *s);
/* A commit request's anchor: the key it names, else its first write (NULL:
 * neither). The record is keyed by it and lives in its range. */
const ProtobufCBinaryData *tx2_anchor(const Meridian__Txn__CommitRequest *q);
/* Intent coordinator bytes: [range u64 be][key]. */
int tx2_coord_encode(uint64_t rid, const uint8_t *key, size_t klen, mbuf *out);
int tx2_coord_decode(const uint8_t *p, size_t n, uint64_t *rid, const uint8_t **key, size_t *klen);

#endif
