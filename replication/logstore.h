/* The replication log store: the durable edge of Multi-Paxos (DESIGN.md §5).
 *
 * One store per node holds, for every Paxos group on the node, its hard state
 * (an opaque blob: promised ballot, lease and membership bits), its accepted
 * entries (slot -> (ballot, value)) and its truncation point. Paxos Made Simple
 * §2.3: "an acceptor must remember this information even if it fails and then
 * restarts", so the core sends a promise or an acceptance only after the store
 * reports the batch carrying it durable.
 *
 * Writes: the event loop builds a batch (records of any number of groups) and
 * submits it without blocking. A dedicated I/O thread takes everything pending,
 * writes it as one round (one pwrite + one fdatasync) ending in a commit marker,
 * applies it to the in-memory index and then calls the notifier once with the
 * ids of every batch of the round. A batch is atomic: after a crash either all
 * of its records are visible or none (the round's commit marker decides).
 *
 * Reads see only durable state. Invariants kept by the store:
 *   - an entry below its group's truncation point is never returned;
 *   - the truncation point only moves forward;
 *   - a later write of a slot replaces the earlier one (log order; the core is
 *     the one that only re-writes a slot with a higher ballot).
 *
 * Errors: ENOSPC while writing fails the round's batches with MERR_NOSPACE and
 * leaves the store usable; any fdatasync failure (and EIO on write) makes the
 * store fail-stop: every later write fails with MERR_IO (fsyncgate: a failed
 * fsync is never retried as if the data had made it). See docs/logstore.md. */
#ifndef MERIDIAN_REPLICATION_LOGSTORE_H
#define MERIDIAN_REPLICATION_LOGSTORE_H

#include "common/buf.h"
#include "common/err.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define LOGSTORE_DEFAULT_SEGMENT_SIZE (64u << 20)
/* Largest value or hard state accepted in one record. */
#define LOGSTORE_MAX_VALUE (32u << 20)

typedef struct logstore logstore;
typedef struct logstore_batch logstore_batch;

/* One completed batch, as handed to the notifier. */
typedef struct logstore_done {
    uint64_t id;
    int status; /* 0, MERR_NOSPACE or MERR_IO */
} logstore_done;

/* Called from the I/O thread, once per round, with every asynchronous batch of
 * the round. Must be thread-safe and quick (queue + uv_async_send); it may call
 * logstore_submit() but not logstore_write() or logstore_close(), which would
 * wait for the very thread it runs on. */
typedef void (*logstore_notify_fn)(void *arg, const logstore_done *done, size_t n);

/* The side effects of the write path, so tests inject ENOSPC, EIO and short
 * writes deterministically and count fsyncs. POSIX conventions: -1 and errno. */
typedef struct logstore_io {
    ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t n, off_t off);
    int (*fdatasync)(void *ctx, int fd); /* a segment file */
    int (*fsync_dir)(void *ctx, int fd); /* the store directory */
    int (*ftruncate)(void *ctx, int fd, off_t len);
    void *ctx;
} logstore_io;

/* The real syscalls. */
extern const logstore_io logstore_posix_io;

typedef struct logstore_opts {
    uint64_t segment_size;     /* 0: LOGSTORE_DEFAULT_SEGMENT_SIZE */
    logstore_notify_fn notify; /* may be NULL if only logstore_write() is used */
    void *notify_arg;
    const logstore_io *io;     /* NULL: logstore_posix_io */
    double compact_live_ratio; /* rewrite the oldest segment below this; 0: 0.25 */
    /* Zeros written ahead of the active segment's end, so rounds overwrite
     * allocated blocks and their fdatasync commits no size change (see
     * docs/logstore.md). 0: off (files hold exactly their rounds). */
    uint64_t zero_ahead;
} logstore_opts;

typedef struct logstore_stats {
    uint64_t rounds;           /* write rounds attempted */
    uint64_t fsyncs;           /* fdatasync calls on segments */
    uint64_t batches;          /* batches completed successfully */
    uint64_t records;          /* user records made durable */
    uint64_t bytes;            /* bytes written (all records, markers, headers) */
    uint64_t segments;         /* segment files now */
    uint64_t segments_deleted; /* since open */
    uint64_t compactions;      /* rounds that rewrote live records */
    uint64_t compacted_bytes;  /* bytes of live records rewritten */
    uint64_t live_bytes;       /* bytes of records still needed */
    uint64_t disk_bytes;       /* bytes in segment files */
    uint64_t groups;
    uint64_t cut_bytes; /* torn tail cut at open */
    int failed;         /* fail-stop after an fsync or I/O error */
} logstore_stats;

/* What a group looked like at its last durable write. */
typedef struct logstore_group_info {
    uint64_t group;
    int has_hardstate;
    uint64_t truncated;  /* entries below this slot were dropped (0: none) */
    uint64_t first_slot; /* lowest present entry (valid if n_entries) */
    uint64_t last_slot;  /* highest present entry (valid if n_entries) */
    uint64_t n_entries;  /* present entries; slots may have holes */
} logstore_group_info;

/* Opens (creating if missing) the store in `dir`, recovering from its segments:
 * a torn or corrupt tail of the last segment is cut; damage anywhere else is
 * MERR_CORRUPT with the file and offset in the message. Takes an exclusive lock
 * on the directory (MERR_BUSY if another process has it). */
int logstore_open(const char *dir, const logstore_opts *opts, logstore **out, merr *e);
/* Stops the I/O thread after it finished every submitted batch, closes files. */
void logstore_close(logstore *ls);

/* Batches. Records are encoded at once, in the caller's thread. */
logstore_batch *logstore_batch_new(uint64_t id);
void logstore_batch_free(logstore_batch *b); /* only for a batch never submitted */
int logstore_batch_hardstate(logstore_batch *b, uint64_t group, const void *p, size_t n);
int logstore_batch_entry(logstore_batch *b, uint64_t group, uint64_t slot, uint64_t ballot,
                         const void *p, size_t n);
/* Drops every entry of `group` below `slot` (after a snapshot). */
int logstore_batch_truncate(logstore_batch *b, uint64_t group, uint64_t slot);
/* Forgets the group entirely (its replica left this node). */
int logstore_batch_drop(logstore_batch *b, uint64_t group);
size_t logstore_batch_records(const logstore_batch *b);

/* Queues the batch and returns at once; the notifier reports its outcome.
 * Always takes ownership. Fails only if the store already failed (MERR_IO) or
 * is closing (MERR_CLOSED), and then the notifier is not called for it. */
int logstore_submit(logstore *ls, logstore_batch *b);
/* Synchronous write for tools and tests: returns once the batch is durable
 * (0) or failed. Takes ownership. Not for the event loop. */
int logstore_write(logstore *ls, logstore_batch *b, merr *e);

/* Reads (any thread; durable state only). */
int logstore_group_info_get(logstore *ls, uint64_t group, logstore_group_info *out);
/* Copies the hard state into `out` (reset first). MERR_NOTFOUND if none. */
int logstore_hardstate(logstore *ls, uint64_t group, mbuf *out);
/* Reads one entry: its ballot and value (into `val`, reset first).
 * MERR_NOTFOUND if the slot holds nothing or is truncated. */
int logstore_entry(logstore *ls, uint64_t group, uint64_t slot, uint64_t *ballot, mbuf *val,
                   merr *e);
/* Visits the present entries of `group` with from <= slot <= to, ascending
 * (holes skipped), as recovery and catch-up need. Each entry is read under the
 * store's lock but fn runs without it, so fn may call the store. A nonzero
 * return from fn stops the scan and is returned. */
typedef int (*logstore_scan_fn)(void *arg, uint64_t slot, uint64_t ballot, const uint8_t *val,
                                size_t n);
int logstore_scan(logstore *ls, uint64_t group, uint64_t from, uint64_t to, logstore_scan_fn fn,
                  void *arg, merr *e);
/* The ids of every group with state, ascending. Caller frees *ids. */
int logstore_groups(logstore *ls, uint64_t **ids, size_t *n);

void logstore_get_stats(logstore *ls, logstore_stats *st);
/* The last error that made the store fail, or "" */
const char *logstore_error(logstore *ls);

#endif
