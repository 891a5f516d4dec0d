/* storage/range.h: one range replica's store — an MVCC key/value map in its own
 * SQLite database (DESIGN.md §6, docs/storage.md).
 *
 * Invariants every function keeps:
 *  - Keys are byte strings ordered by memcmp; storage never interprets them.
 *    A range owns the span [start, end); an empty end means "to the end of the
 *    key space". Keys outside the span are refused with MERR_RANGE.
 *  - The one exception: range-local keys (common/localkey.h, 0x00 0x00...)
 *    belong to the range whose span holds their anchor key. They split,
 *    merge and snapshot with it, but no user scan, stat or split-key choice
 *    sees them.
 *  - Timestamps are HLC values, opaque and ordered numerically: 0 is invalid,
 *    RANGE_TS_MAX ("latest") only as a read timestamp. Every other uint64 is
 *    storable (kept as ts XOR 2^63 in SQLite's signed INTEGER, which keeps
 *    the order).
 *  - A read at t sees, per key, the newest version with ts <= t; a tombstone
 *    (delete) hides the key.
 *  - The applied slot is written in the same SQLite transaction as the effects
 *    of that slot, so after any crash the database holds exactly the effects of
 *    slots <= applied, and replaying a slot <= applied is a no-op.
 *  - Stats (live keys/bytes, total bytes, versions) are updated in the same
 *    transactions as the data they count; they always add up exactly.
 *
 * A range handle is single-threaded: one caller at a time (the range's apply
 * loop). Snapshots read through their own connection, so they run beside it. */
#ifndef MERIDIAN_STORAGE_RANGE_H
#define MERIDIAN_STORAGE_RANGE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define RANGE_TS_MAX    UINT64_MAX
#define RANGE_KEY_MAX   (64 * 1024)
#define RANGE_VALUE_MAX (64 * 1024 * 1024)
/* Default GC retention (as Spanner): versions older than this are collectable. */
#define RANGE_GC_RETENTION_NS (3600LL * 1000000000LL)

typedef struct range range;

typedef struct range_opts {
    int cache_kib;   /* SQLite page cache per open handle; 0 = 1024 KiB */
    const char *vfs; /* SQLite VFS name; NULL = default (tests: fault VFS) */
    int no_create;   /* 1: fail with MERR_NOTFOUND if the file does not exist */
} range_opts;

/* Identity and span of a new range (range_create). */
typedef struct range_desc {
    uint64_t range_id;
    uint64_t generation;
    const uint8_t *start;
    size_t start_len;
    const uint8_t *end; /* end_len 0: unbounded */
    size_t end_len;
} range_desc;

typedef struct range_stats {
    int64_t live_keys;   /* keys whose newest version is not a tombstone */
    int64_t live_bytes;  /* sum of key + value bytes of those newest versions */
    int64_t total_bytes; /* sum over all versions of key + value + 8 (ts) */
    int64_t versions;    /* stored versions, tombstones included */
} range_stats;

/* Metadata as stored; pointers stay valid until the next call on the handle. */
typedef struct range_meta {
    uint64_t range_id;
    uint64_t generation;
    uint64_t applied;    /* last applied log slot */
    uint64_t gc_horizon; /* reads below this timestamp are refused */
    const uint8_t *start;
    size_t start_len;
    const uint8_t *end;
    size_t end_len;
    range_stats stats;
} range_meta;

/* ---- open / close ---- */

/* Creates a new, empty range database at `path` (MERR_EXISTS if present). */
int range_create(const char *path, const range_desc *d, const range_opts *o, range **out, merr *e);
/* Opens an existing range database, finishing or rolling back an interrupted
 * split or merge (see range_split). MERR_CORRUPT if the replica was marked
 * corrupt or its file is damaged; it must then be rebuilt from a snapshot. */
int range_open(const char *path, const range_opts *o, range **out, merr *e);
void range_close(range *r);
/* Deletes a range's files (db, WAL, shm, markers). The range must be closed. */
int range_destroy(const char *path, merr *e);
const char *range_path(const range *r);
/* The last error on this handle (message with context). */
const merr *range_err(const range *r);
/* 1 once an operation met a corrupt file: the handle then refuses everything. */
int range_is_corrupt(const range *r);

int range_get_meta(range *r, range_meta *m);

/* Makes everything applied so far durable (fsync of WAL and database). The
 * Paxos log may be truncated only up to the slot this returns in *durable. */
int range_sync(range *r, uint64_t *durable);

/* ---- reads ---- */

/* Newest version of key with ts <= t. Returns 0 and fills *val (malloc'd,
 * caller frees; may be NULL for an empty value) / *vlen / *ts_out, or
 * MERR_NOTFOUND if there is none or it is a tombstone. `ts_out` may be NULL.
 * t = RANGE_TS_MAX reads the latest version (for locking reads). */
int range_get(range *r, const uint8_t *key, size_t klen, uint64_t t, uint8_t **val, size_t *vlen,
              uint64_t *ts_out);

/* Scan callback: return 0 to go on, nonzero to stop (the scan then returns 0). */
typedef int (*range_scan_fn)(void *arg, const uint8_t *key, size_t klen, const uint8_t *val,
                             size_t vlen, uint64_t ts);

/* Visits, per key in [start, end) ∩ span, the newest version <= t that is not
 * a tombstone, in key order (reverse: descending). end_len 0: to the range's
 * end. limit 0: unlimited. *n (may be NULL) gets the number visited.
 * A scan whose start is a range-local key visits only the local keys the
 * range owns (clipped to them); any other scan never visits local keys. */
int range_scan(range *r, const uint8_t *start, size_t slen, const uint8_t *end, size_t elen,
               uint64_t t, size_t limit, int reverse, range_scan_fn fn, void *arg, size_t *n);

/* ---- writes ---- */

typedef struct range_write {
    const uint8_t *key;
    size_t klen;
    const uint8_t *val; /* ignored for deletes */
    size_t vlen;
    int del; /* 1: tombstone */
} range_write;

/* A key span [key, end) a prepared transaction holds (read locks). */
typedef struct range_span {
    const uint8_t *key;
    size_t klen;
    const uint8_t *end;
    size_t elen;
} range_span;

/* A prepared transaction (2PC participant side): its buffered writes become
 * versions only when it commits. */
typedef struct range_intent {
    const uint8_t *txn; /* transaction id, opaque */
    size_t txn_len;
    uint64_t prepare_ts;
    const uint8_t *coord; /* coordinator info, opaque */
    size_t coord_len;
    const range_write *writes;
    size_t nwrites;
    const range_span *spans;
    size_t nspans;
} range_intent;

/* Decision on a prepared transaction: commit_ts 0 aborts. */
typedef struct range_resolve {
    const uint8_t *txn;
    size_t txn_len;
    uint64_t commit_ts;
} range_resolve;

/* One log slot's effects. All parts optional. */
typedef struct range_batch {
    uint64_t ts; /* timestamp of `writes` */
    const range_write *writes;
    size_t nwrites;
    const range_intent *prepares;
    size_t nprepares;
    const range_resolve *resolves;
    size_t nresolves;
} range_batch;

/* Applies a batch as log slot `slot` in one transaction. A slot <= applied is
 * skipped (returns 0, *skipped = 1 if skipped is not NULL). On error nothing
 * of the batch is applied. Resolving a txn with no intent (resolved before)
 * is a no-op, so a repeated resolve is harmless. */
int range_apply(range *r, const range_batch *b, uint64_t slot, int *skipped);

/* Applies n batches as slots[0..n) (ascending) in ONE transaction: the
 * batches whose slot is <= applied are skipped, the rest applied in order, and
 * applied becomes the last slot. All or nothing: on error none is applied.
 * *napplied (may be NULL) gets how many were applied. Cheaper than n calls of
 * range_apply: one commit, and pages shared by the batches written once. */
int range_apply_many(range *r, const range_batch *b, const uint64_t *slots, size_t n,
                     size_t *napplied);

/* Byte encoding of a batch for the replicated log (range_batch.c): appends
 * to `out` (crc32c-protected). Decoding checks everything and points into
 * `p`, which must outlive the decoded batch; MERR_CORRUPT on bad input. */
typedef struct range_batch_decoded {
    range_batch batch;
    void *mem;
} range_batch_decoded;
int range_batch_encode(const range_batch *b, mbuf *out);
int range_batch_decode(const uint8_t *p, size_t len, range_batch_decoded *out);
void range_batch_decoded_free(range_batch_decoded *d);

/* Prepared transactions, as read back (e.g. by a restarted leader). */
typedef int (*range_intent_fn)(void *arg, const range_intent *it);
int range_list_intents(range *r, range_intent_fn fn, void *arg, size_t *n);

/* ---- split / merge ---- */

/* Splits at `key` as log slot `slot`: [key, end) moves into a new database at
 * right_path (range id new_range_id); both sides get generation + 1 and the
 * left keeps [start, key). Crash-atomic: after range_open of the left, either
 * the split is complete (right database present and valid) or it never
 * happened (no right database). */
int range_split(range *r, const uint8_t *key, size_t klen, uint64_t new_range_id,
                const char *right_path, uint64_t slot);

/* Resets the applied counter of a range split off by range_split (it
 * inherits the parent's slot) to 0, for a new Paxos group whose log starts
 * over. The caller knows the group has applied nothing of its own yet. */
int range_reset_applied(range *r);

/* Merges the adjacent right range (left.end == right.start) into r as slot
 * `slot`; the right database is deleted. Generation = max of both + 1. The
 * right handle is consumed (closed) in every case; it must not be open
 * anywhere else (drop it from a range_cache first). On error the right
 * database is left as it was, unless the merge committed (then recovery at
 * the left's next open finishes deleting it). */
int range_merge(range *r, range *right, uint64_t slot);

/* Freezes the range as log slot `slot` before a merge (range_freeze.c): a
 * durable mark, set once (a second call keeps the first slot). The caller
 * then refuses every later write. range_frozen_at gives the slot (0: never
 * frozen). The mark is not part of snapshots. */
int range_freeze(range *r, uint64_t slot);
int range_frozen_at(range *r, uint64_t *slot);

/* Accessed key with a weight, for load-based split keys. */
typedef struct range_load_sample {
    const uint8_t *key;
    size_t klen;
    double weight;
} range_load_sample;

/* Picks a split key: the load median when samples are given (n > 0), else the
 * key near the middle by bytes. *key is malloc'd. MERR_NOTFOUND if the range
 * has fewer than two distinct keys to split between. */
int range_split_key(range *r, const range_load_sample *samples, size_t n, uint8_t **key,
                    size_t *klen);

/* ---- GC ---- */

/* One GC step: drops up to max_rows versions that are older than the newest
 * version <= horizon of their key (and that newest too if it is a tombstone
 * with nothing older left), in one short transaction (max_rows 0 = 256).
 * Raises the range's
 * gc_horizon. *done = 1 when nothing is left to collect below horizon. */
int range_gc_step(range *r, uint64_t horizon, size_t max_rows, size_t *dropped, int *done);
/* Runs steps until done; *dropped (may be NULL) totals the rows. */
int range_gc(range *r, uint64_t horizon, size_t max_rows, size_t *dropped);

/* ---- snapshots ---- */

#define RANGE_SNAP_CHUNK_DEFAULT (256 * 1024)

typedef struct range_snap range_snap;
/* Starts a snapshot of r's current state (a consistent read at its applied
 * slot, on a separate connection so applies go on). */
int range_snap_open(range *r, size_t chunk_bytes, range_snap **out, merr *e);
/* Next chunk (pointer valid until the next call). *len 0 at the end. */
int range_snap_next(range_snap *s, const uint8_t **chunk, size_t *len, merr *e);
uint64_t range_snap_applied(const range_snap *s);
void range_snap_close(range_snap *s);

typedef struct range_install range_install;
/* Builds a replica at `path` from chunks. Nothing appears at `path` until
 * range_install_finish verified the whole stream; a failed or abandoned install
 * leaves no file behind. An existing replica at `path` is replaced; it must
 * not be open (range_cache_drop it first). */
int range_install_begin(const char *path, const range_opts *o, range_install **out, merr *e);
int range_install_chunk(range_install *in, const uint8_t *chunk, size_t len, merr *e);
/* On success the replica is in place and `in` is freed; on failure call
 * range_install_abort (as after any failed chunk). */
int range_install_finish(range_install *in, merr *e);
void range_install_abort(range_install *in);

/* ---- many ranges per node ---- */

/* A bounded LRU cache of open range handles: at most `capacity` SQLite
 * connections (and page caches) stay open; others are closed and reopened on
 * demand. Handles in use are pinned (acquire/release) and never closed under
 * their user; if all are pinned the cache briefly exceeds capacity. */
typedef struct range_cache range_cache;
int range_cache_new(size_t capacity, const range_opts *o, range_cache **out);
void range_cache_free(range_cache *c);
/* Returns the open handle for path (opening it if needed), pinned. */
int range_cache_acquire(range_cache *c, const char *path, range **out, merr *e);
void range_cache_release(range_cache *c, range *r);
/* Closes path's handle if open and unpinned (before destroy, merge, install).
 * MERR_BUSY if it is pinned. */
int range_cache_drop(range_cache *c, const char *path);
size_t range_cache_open_count(const range_cache *c);
uint64_t range_cache_opens(const range_cache *c); /* total opens so far */

/* ---- fault injection (tests) ---- */

/* A SQLite VFS named "meridian-fault" wrapping the default one: after `after`
 * more writes (or syncs), each write (sync) fails as `mode` says. */
typedef enum range_fault_mode {
    RANGE_FAULT_NONE = 0,
    RANGE_FAULT_FULL,       /* writes fail with SQLITE_FULL (disk full) */
    RANGE_FAULT_IOERR,      /* writes fail with SQLITE_IOERR_WRITE */
    RANGE_FAULT_SYNC_IOERR, /* syncs fail with SQLITE_IOERR_FSYNC */
} range_fault_mode;
#define RANGE_FAULT_VFS "meridian-fault"
int range_faultvfs_register(void);
void range_faultvfs_set(range_fault_mode mode, long after);
long range_faultvfs_failures(void); /* injected failures so far */
/* Power-loss simulation for files opened through the fault VFS: while on,
 * writes are undoable until the file's next sync; range_faultvfs_power_cut
 * (with every handle closed) rolls each file back to its last sync plus a
 * seeded random prefix of later writes. Returns ops undone or -1. */
void range_faultvfs_track(int on);
int range_faultvfs_power_cut(unsigned seed);

#endif
