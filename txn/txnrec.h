/* Transaction records at a coordinator range and their garbage collection
 * (docs/transactions.md §7): the key and value a record carries, and the
 * rules that keep a collected record from ever changing an answer. Pure: no
 * clock is read here, callers pass TrueTime bounds in Unix µs.
 *
 * Where a record lives (range-local records, as Cockroach's): its key is a
 * range-local key (common/localkey.h) anchored at the transaction's anchor,
 * the first key it touched, which names its coordinator range:
 *     00 00 | E(anchor) | 00 01 | "txn/" | id (u64 be) [| 02 for an abort]
 * Storage and replica_contains place a local key by its anchor, so the
 * record is written by, read at and replicated through the Paxos group of
 * whichever range holds the anchor now — never range 1 by default. Since
 * E keeps anchor order, the records a range [s, e) owns are one interval
 * [00 00|E(s), 00 00|E(e)): a split at k sends those anchored at >= k to
 * the right child (exactly the anchor's new range), a merge takes them all
 * left, a snapshot streams them with the other versions. Anyone who asks
 * (a retried commit, a participant's status query, GC, the takeover sweep)
 * knows the anchor and routes by it, so a split or merge between the
 * commit and the question changes nothing: the record moved with the key.
 * User scans, range stats and split-key choice never see local keys.
 *
 * A record answers two askers:
 *  - a retried commit request with the same txn id (idempotent commit);
 *  - a prepared participant's status query (presumed abort otherwise).
 * It is deleted ("ended", a Paxos write) only when both are over:
 *  - every participant acknowledged the outcome (it resolved its intent and
 *    asks no more), and
 *  - the client's commit deadline has certainly passed (tt earliest > it):
 *    a coordinator refuses any commit request once tt latest > its deadline,
 *    before it looks for state, so a copy arriving after the record went is
 *    refused, never answered "aborted" nor committed a second time.
 * Deadlines more than TXN_REC_DEADLINE_MAX_US ahead are refused, which also
 * bounds how long a presumed abort (whose client deadline is not known) must
 * be kept: the commit request came before the participant prepared. */
#ifndef MERIDIAN_TXN_TXNREC_H
#define MERIDIAN_TXN_TXNREC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "txn/twopc.h"

#define TXN_REC_DEADLINE_MAX_US (10LL * 60 * 1000000) /* 10 min */
/* Margin for clocks of different leaders (> any uncertainty bound we run with). */
#define TXN_REC_MARGIN_US (1LL * 1000000)

/* Appends the record key of txn anchored at anchor (abort: its abort key,
 * a key of its own, so a commit chosen earlier is never overwritten). */
int txn_rec_key(const uint8_t *anchor, size_t alen, uint64_t txn, bool abort, mbuf *out);
/* Parses a record key: the anchor (into *anchor, reset first), txn, abort.
 * MERR_CORRUPT for any other key (other local keys included). */
int txn_rec_key_parse(const uint8_t *k, size_t n, mbuf *anchor, uint64_t *txn, bool *abort);

typedef struct txn_rec_value {
    bool abort;
    uint64_t deadline_us; /* 0: unknown (an older client): kept for good */
    size_t n_parts;
    uint64_t parts[TXN_MAX_PARTS]; /* ranges told the outcome */
} txn_rec_value;

/* Value bytes: [0x01 commit | 0x02 abort][deadline u64 be][n u8][range u64 be]*n.
 * Older records: empty (commit) or the single byte 0x02 (abort). */
#define TXN_REC_VALUE_MAX (1 + 8 + 1 + 8 * TXN_MAX_PARTS)
size_t txn_rec_value_encode(const txn_rec_value *v, uint8_t out[TXN_REC_VALUE_MAX]);
/* MERR_CORRUPT for bytes that are neither form. */
int txn_rec_value_decode(const uint8_t *p, size_t n, txn_rec_value *v);

typedef enum txn_deadline_verdict {
    TXN_DEADLINE_OK = 0,
    TXN_DEADLINE_PASSED,  /* refuse: the outcome may already be forgotten */
    TXN_DEADLINE_TOO_FAR, /* refuse: bad input */
} txn_deadline_verdict;

/* A commit request's deadline against tt latest now (deadline 0: OK). */
txn_deadline_verdict txn_rec_deadline_check(uint64_t deadline_us, uint64_t tt_latest_us);
/* The deadline to keep a presumed abort under (no client deadline known). */
uint64_t txn_rec_presumed_deadline(uint64_t tt_latest_us);
/* The record may be deleted now. */
bool txn_rec_collectable(const txn_rec_value *v, uint64_t tt_earliest_us, bool outcome_delivered);

#endif
