/* The transactional key-value interface the SQL layer runs on.
 *
 * The SQL front end never talks to ranges, Paxos or the lock table: it sees a
 * small table of function pointers over byte-string keys compared by memcmp.
 * Today sql/kv_mem.c implements it in memory (tests, single process); the
 * distributed transaction layer (txn/) implements the same contract later, so
 * nothing above this header changes when it does.
 *
 * Contract (every implementation must keep it):
 *  - begin() opens a transaction that reads one consistent snapshot and sees
 *    its own buffered writes (read-your-own-writes). With SQL_KV_READ_ONLY
 *    it only reads: put/del fail with MERR_INVALID, and the implementation
 *    may serve it as a lock-free snapshot read (Spanner's strong read) since
 *    it can never need to abort.
 *  - get()/scan() record what they read (keys and key ranges) so commit can
 *    guarantee serializability: a transaction whose reads were invalidated by
 *    a concurrent commit fails with MERR_ABORTED (or MERR_RETRY) at commit or
 *    earlier; the caller may retry it from the start.
 *  - scan() covers the half-open range [lo, hi) (hi == NULL: to the end of the
 *    key space), in ascending key order or descending with `reverse`, at most
 *    `limit` rows (0: no limit). The iterator reflects the transaction's state
 *    when scan() was called; later writes in the transaction do not change it.
 *    Key/value pointers from iter_next stay valid until the next iter_next or
 *    iter_close on that iterator.
 *  - put()/del() are buffered in the transaction: invisible to others until
 *    commit, visible to this transaction's later reads at once. Deleting an
 *    absent key is not an error.
 *  - savepoint() returns a mark; rollback_to(mark) undoes every write made
 *    after it (reads stay recorded — they were still observed). Marks nest.
 *    The SQL layer uses this for statement atomicity inside a transaction.
 *  - commit() and rollback() end the transaction and free it, whatever the
 *    outcome; the handle must not be used afterwards.
 *  - Functions return 0 or a negative MERR_* code with a message in `e` (which
 *    may be NULL); get() returns MERR_NOTFOUND for an absent key.
 */
#ifndef MERIDIAN_SQL_KV_H
#define MERIDIAN_SQL_KV_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct sql_kv_txn sql_kv_txn;
typedef struct sql_kv_iter sql_kv_iter;

/* begin() flags */
#define SQL_KV_READ_ONLY 1u

/* begin_at(): a read-only transaction at a time in the past (SQL's AS OF
 * SYSTEM TIME, sql/asof.h). The KV resolves it against its own clock. */
typedef enum sql_kv_at_kind {
    SQL_KV_AT_TS = 1,   /* ts: one of the KV's own timestamps (read_ts()) */
    SQL_KV_AT_UNIX,     /* unix_us: wall-clock time, UTC */
    SQL_KV_AT_AGO,      /* ago_us before now (0: now, a strong read) */
    SQL_KV_AT_FOLLOWER, /* the newest ts a nearby replica serves without waiting */
} sql_kv_at_kind;
typedef struct sql_kv_at {
    sql_kv_at_kind kind;
    uint64_t ts, unix_us, ago_us;
} sql_kv_at;

typedef struct sql_kv_ops {
    int (*begin)(void *kv_ctx, unsigned flags, sql_kv_txn **out, merr *e);
    /* Copies the value into val (reset first). 0, MERR_NOTFOUND or an error. */
    int (*get)(sql_kv_txn *t, const uint8_t *key, size_t klen, mbuf *val, merr *e);
    int (*scan)(sql_kv_txn *t, const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
                int reverse, size_t limit, sql_kv_iter **out, merr *e);
    /* 1 with the next row, 0 at the end, or a negative error. */
    int (*iter_next)(sql_kv_iter *it, const uint8_t **key, size_t *klen, const uint8_t **val,
                     size_t *vlen, merr *e);
    void (*iter_close)(sql_kv_iter *it);
    int (*put)(sql_kv_txn *t, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
               merr *e);
    int (*del)(sql_kv_txn *t, const uint8_t *key, size_t klen, merr *e);
    int (*savepoint)(sql_kv_txn *t, uint64_t *mark, merr *e);
    int (*rollback_to)(sql_kv_txn *t, uint64_t mark, merr *e);
    int (*commit)(sql_kv_txn *t, merr *e);
    void (*rollback)(sql_kv_txn *t);
    /* Optional (NULL: AS OF SYSTEM TIME is refused). A read-only
     * transaction at `at`; a time in the future (past the clock's
     * uncertainty) or older than the KV keeps versions fails with
     * MERR_INVALID, here or at the first read. */
    int (*begin_at)(void *kv_ctx, const sql_kv_at *at, sql_kv_txn **out, merr *e);
    /* Optional: the snapshot ts a read-only transaction reads at (fixed by
     * its first read; the session always reads the schema version first),
     * for meridian_now(); MERR_UNSUPPORTED for a read-write transaction,
     * whose locked reads have no snapshot ts. */
    int (*read_ts)(sql_kv_txn *t, uint64_t *ts, merr *e);
    /* Optional: MERR_ABORTED when the read-write transaction can no longer
     * commit (wounded, timed out, its locks lost), else 0. Asked before a
     * statement error inside a transaction is reported: reads after a
     * wound in one range may see, in another, rows the lost locks no longer
     * protect, and the "error" is then a lost conflict to retry. */
    int (*alive)(sql_kv_txn *t, merr *e);
    /* Optional: while on, get and the scans begun lock exclusively, as the
     * writes that follow will. The SQL layer turns it on around reads of a
     * statement's write target (the rows an UPDATE or DELETE finds, the
     * conflict checks of an INSERT): a row read in order to be written is
     * locked once, for writing, instead of shared and upgraded at commit,
     * where two readers of one hot row (TPC-C's district counter) would
     * wound each other. */
    void (*lock_for_write)(sql_kv_txn *t, int on);
} sql_kv_ops;

#endif
