/* Safe time and read timestamps for lock-free snapshot reads (Spanner
 * §4.1.3, §4.2.2). Pure: clocks and safe times come in as arguments.
 *
 * A replica may serve a read at t once t <= t_safe, where
 *
 *   t_safe = min(closed, earliest in-doubt prepare ts - 1)
 *
 *  - closed: the closed timestamp, advanced by the leader through the log
 *    (with writes and heartbeats). It is a promise that no write below it
 *    will ever be proposed; the leader keeps it below every write it has in
 *    flight and assigns only timestamps above it afterwards
 *    (txn_closed_next). Followers learn it in log order, after the writes
 *    below it.
 *  - in doubt: a transaction whose prepare record is chosen here but whose
 *    outcome is not. Its commit ts s will be >= its prepare ts p, possibly
 *    below `closed`, so nothing at or above p is safe until it is decided.
 *
 * Reads choose a timestamp (txn_read_ts): strong = tt_now().latest, or for a
 * read of one range with nothing in doubt, that range's last write ts;
 * exact staleness; bounded staleness = the newest ts the chosen replicas can
 * serve without waiting, but not older than the bound allows; or a given ts. */
#ifndef MERIDIAN_TXN_SAFETIME_H
#define MERIDIAN_TXN_SAFETIME_H

#include "common/err.h"
#include "txn/lock.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct txn_doubt {
    txn_ts prepare_ts;
    txn_id txn;
} txn_doubt;

/* A replica's safe-time tracker. In-doubt transactions are kept sorted by
 * (prepare ts, txn): the earliest is at hand in O(1); insert and remove are a
 * binary search plus a memmove — few transactions are in doubt at once. */
typedef struct txn_safe {
    txn_ts closed;
    txn_doubt *doubt;
    size_t n, cap;
} txn_safe;

void txn_safe_init(txn_safe *s);
void txn_safe_free(txn_safe *s);
/* Raises the closed timestamp; a lower value (a stale or repeated record)
 * is ignored. */
void txn_safe_close(txn_safe *s, txn_ts closed);
/* txn's prepare record was chosen. Idempotent; MERR_EXISTS if txn is
 * already in doubt at another prepare ts; MERR_NOMEM. */
int txn_safe_prepared(txn_safe *s, txn_id txn, txn_ts prepare_ts);
/* txn's outcome was chosen. MERR_NOTFOUND if it was not in doubt (a repeat
 * is harmless; the caller may ignore that code). */
int txn_safe_decided(txn_safe *s, txn_id txn, txn_ts prepare_ts);
/* The greatest ts this replica can serve now. */
txn_ts txn_safe_time(const txn_safe *s);
bool txn_safe_can_serve(const txn_safe *s, txn_ts t);
/* The earliest in-doubt transaction, if any (a read that waits for it may
 * want to ask about it). */
const txn_doubt *txn_safe_first_doubt(const txn_safe *s);

/* Leader: the next closed timestamp to propose, given the last one, the
 * target (typically tt_now().earliest minus a lag) and the least ts among
 * writes proposed but not yet chosen. Never moves back; stays below every
 * pending write. After proposing it the leader must treat it as assigned
 * (last_assigned >= closed), so later writes land above it. */
txn_ts txn_closed_next(txn_ts prev_closed, txn_ts target, bool have_pending, txn_ts min_pending);

typedef enum txn_read_kind {
    TXN_READ_STRONG = 0,        /* sees every commit acknowledged before it started */
    TXN_READ_EXACT_STALENESS,   /* at tt_now().latest - staleness */
    TXN_READ_BOUNDED_STALENESS, /* newest servable, at least tt_now().latest - staleness */
    TXN_READ_AT,                /* at the given ts */
} txn_read_kind;

typedef struct txn_read_opts {
    txn_read_kind kind;
    txn_ts staleness; /* in HLC units (µs << 12) */
    txn_ts at;
} txn_read_opts;

/* One range the read touches: the best safe time among the replicas the
 * client will use for it, and (strong reads of a single range) its last
 * write ts and whether anything is in doubt there. */
typedef struct txn_read_range {
    txn_ts safe_time;
    txn_ts last_write;
    bool in_doubt;
} txn_read_range;

/* Picks the read timestamp. *must_wait says whether some range cannot serve
 * it yet (the read then waits for safe time). MERR_INVALID for a bad kind,
 * no ranges, or an interval with earliest > latest. */
int txn_read_ts(const txn_read_opts *o, txn_ts tt_earliest, txn_ts tt_latest,
                const txn_read_range *ranges, size_t n, txn_ts *ts, bool *must_wait, merr *e);

#endif
