/* The lock table of a range leader: shared and exclusive locks on point keys
 * and key ranges, with wound-wait deadlock avoidance (Spanner §4.1.2, §4.2.1;
 * Rosenkrantz, Stearns & Lewis 1978). See docs/transactions.md.
 *
 * Pure: no I/O, no clock, no randomness. The leader feeds it requests and acts
 * on what it answers (abort the wounded, resume the granted).
 *
 * Model. A lock is (txn, span, mode). A span is a point key or a key range
 * [start, end) (end may be "to the end of the key space"); keys are byte
 * strings in memcmp order (shorter prefix first). Two locks conflict when they
 * belong to different transactions, their spans overlap and at least one is
 * exclusive. A range [a,b) and [b,c) do not overlap; the empty range [a,a)
 * locks nothing and is granted at once.
 *
 * Priority. Each transaction has a priority: its first start timestamp, kept
 * across retries; lower is older is stronger, ties broken by the lower id.
 *
 * Rules (wound-wait; "older" = higher priority):
 *  - A request waits while some other transaction holds an overlapping,
 *    incompatible lock, or an OLDER transaction waits for an overlapping,
 *    incompatible lock (fairness: a stream of readers cannot starve an old
 *    writer, and no one overtakes an older waiter).
 *  - When a request meets an incompatible holder that is YOUNGER, that holder
 *    is wounded: reported once in the output so the caller aborts it, after
 *    which its locks go away through txn_lock_release_all(). The older request
 *    waits for that release. A younger requester simply waits.
 *  - A prepared transaction (txn_lock_set_prepared) cannot be wounded any more
 *    (it has voted yes in 2PC); older requesters wait for its outcome. It takes
 *    no new locks, so waiting for it cannot close a cycle.
 *  - A wounded transaction gets MERR_ABORTED on any further request, and its
 *    waiting requests are never granted.
 *  - Waiters are granted in priority order (FIFO by first start time) as
 *    holders leave; compatible waiters are granted together.
 *
 * Why no deadlock: every wait-for edge goes from a transaction to an older
 * one, or to one that is wounded or prepared, which ends without waiting.
 * Why no starvation: the oldest live transaction has no older blocker, so it
 * waits only for wounded or prepared ones; since priorities survive retries,
 * every transaction eventually becomes the oldest.
 *
 * Upgrade: a transaction holding S that asks for X on the same span upgrades
 * in place when it can; otherwise it waits like any request and its S lock is
 * turned into X when granted. Asking again, on the same span, for a mode
 * already held (or weaker) is granted at once and adds nothing.
 *
 * Cost (n lock objects, m the entries on the objects that overlap the span):
 * a point request is O(1) hash + O(log r + m) for the range locks (interval
 * AVL tree augmented with the subtree's maximum end); a range request is
 * O(log n + m). Release of a transaction with k locks is O(k (log n + m)) plus
 * a sort of the waiters it may unblock. Memory is freed as locks go; the
 * table holds at most max_entries entries (granted + waiting), beyond which a
 * request fails with MERR_BUSY and changes nothing. */
#ifndef MERIDIAN_TXN_LOCK_H
#define MERIDIAN_TXN_LOCK_H

#include "common/err.h"

#include <stddef.h>
#include <stdint.h>

typedef uint64_t txn_id;
/* A timestamp: a 64-bit HLC value (physical µs << 12 | logical), compared as
 * an integer; the txn layer never interprets the bits. */
typedef uint64_t txn_ts;

typedef enum txn_lock_mode {
    TXN_LOCK_S = 1, /* shared: reads */
    TXN_LOCK_X = 2, /* exclusive: writes */
} txn_lock_mode;

typedef enum txn_span_kind {
    TXN_SPAN_POINT = 0,  /* exactly the key `start` */
    TXN_SPAN_RANGE = 1,  /* [start, end) */
    TXN_SPAN_TO_END = 2, /* [start, +infinity) */
} txn_span_kind;

/* A span borrows its bytes; the table copies what it keeps. */
typedef struct txn_span {
    txn_span_kind kind;
    const uint8_t *start;
    size_t start_len;
    const uint8_t *end; /* TXN_SPAN_RANGE only */
    size_t end_len;
} txn_span;

txn_span txn_span_point(const void *key, size_t len);
txn_span txn_span_range(const void *start, size_t start_len, const void *end, size_t end_len);
txn_span txn_span_to_end(const void *start, size_t start_len);

typedef struct txn_lock_req {
    txn_id txn;
    txn_ts prio; /* first start timestamp; must be the same on every request */
    txn_span span;
    txn_lock_mode mode;
    uint64_t tag; /* opaque to the table; returned with the grant */
} txn_lock_req;

typedef enum txn_lock_status {
    TXN_LOCK_GRANTED = 0,
    TXN_LOCK_WAITING = 1,
} txn_lock_status;

typedef struct txn_lock_grant {
    txn_id txn;
    uint64_t tag;
    txn_lock_mode mode;
} txn_lock_grant;

/* What a call decided. Owned by the caller, reused across calls (each call
 * empties it first), freed with txn_lock_out_free(). */
typedef struct txn_lock_out {
    txn_lock_status status; /* acquire only */
    txn_id waits_for;       /* acquire, WAITING: the oldest transaction in the way */
    txn_id *wounded;        /* transactions the caller must abort now */
    size_t n_wounded, cap_wounded;
    txn_lock_grant *granted; /* waiting requests granted by a release */
    size_t n_granted, cap_granted;
} txn_lock_out;

void txn_lock_out_init(txn_lock_out *o);
void txn_lock_out_free(txn_lock_out *o);

typedef struct txn_lock_config {
    size_t max_entries; /* granted + waiting entries; 0 = default (1,000,000) */
    size_t max_key_len; /* 0 = default (64 KiB) */
} txn_lock_config;

typedef struct txn_lock_table txn_lock_table;

/* cfg may be NULL for the defaults. Returns 0 or MERR_NOMEM. */
int txn_lock_table_new(const txn_lock_config *cfg, txn_lock_table **out);
void txn_lock_table_free(txn_lock_table *lt);

/* Asks for a lock. Returns 0 with out->status GRANTED or WAITING (waits_for
 * set) and out->wounded filled; or an error and no change: MERR_INVALID (bad
 * span or mode, priority differs from the transaction's earlier requests,
 * transaction prepared), MERR_TOOBIG (key too long), MERR_ABORTED (the
 * transaction was wounded), MERR_BUSY (table full), MERR_NOMEM. */
int txn_lock_acquire(txn_lock_table *lt, const txn_lock_req *req, txn_lock_out *out, merr *e);

/* Drops every lock and waiting request of txn (commit or abort) and forgets
 * it; out->granted lists the waiting requests of others now granted. An
 * unknown txn is fine (nothing to do). Returns 0 or MERR_NOMEM (no change). */
int txn_lock_release_all(txn_lock_table *lt, txn_id txn, txn_lock_out *out);

/* Withdraws the waiting requests of txn, keeping its granted locks. */
int txn_lock_cancel_waits(txn_lock_table *lt, txn_id txn, txn_lock_out *out);

/* Marks txn prepared: it can no longer be wounded nor take new locks.
 * MERR_NOTFOUND if it holds nothing here, MERR_ABORTED if already wounded,
 * MERR_INVALID if it still waits for a lock. */
int txn_lock_set_prepared(txn_lock_table *lt, txn_id txn);

/* ---- introspection (debugging, tests, `meridian debug locks`) ---- */

typedef struct txn_lock_info {
    txn_id txn;
    txn_ts prio;
    txn_lock_mode mode;
    int granted; /* 1 holder, 0 waiter */
    txn_span span;
    uint64_t tag;
} txn_lock_info;

typedef void (*txn_lock_visit_fn)(void *ctx, const txn_lock_info *info);

/* Calls fn for every entry (holder or waiter) whose span overlaps `span`, in
 * no particular order. Returns 0 or MERR_INVALID for a bad span. */
int txn_lock_visit(const txn_lock_table *lt, const txn_span *span, txn_lock_visit_fn fn, void *ctx);

typedef struct txn_lock_stats {
    size_t entries;  /* granted + waiting */
    size_t waiting;  /* waiting entries */
    size_t objects;  /* distinct spans with at least one entry */
    size_t txns;     /* transactions with at least one entry */
    size_t ranges;   /* objects that are ranges */
    uint64_t wounds; /* wounds reported since creation */
} txn_lock_stats;

void txn_lock_get_stats(const txn_lock_table *lt, txn_lock_stats *st);

/* Counts of a transaction's granted and waiting entries; flags. Returns 0 or
 * MERR_NOTFOUND when the table knows nothing of it. */
typedef struct txn_lock_txn_info {
    txn_ts prio;
    size_t granted, waiting;
    int wounded, prepared;
} txn_lock_txn_info;
int txn_lock_txn_get(const txn_lock_table *lt, txn_id txn, txn_lock_txn_info *info);

/* a is older (stronger) than b: lower priority value, ties by lower id. */
static inline int txn_prio_older(txn_ts pa, txn_id a, txn_ts pb, txn_id b)
{
    return pa < pb || (pa == pb && a < b);
}

const char *txn_lock_mode_name(txn_lock_mode m);

/* A lock table ended by a split or merge of a range its node still leads
 * must not be replaced while a proposal made under it may still apply
 * (commits land in log order after the span change; fresh locks would let
 * a new transaction read around them). upto: the newest proposal id when
 * the table ended (0: none); oldest: the oldest id not yet applied (0:
 * none). Ids grow. 1 while new locks must wait. */
static inline int txn_drain_waits(uint64_t upto, uint64_t oldest)
{
    return upto && oldest && oldest <= upto;
}

#endif
