/* Internals of the log store shared by its files: the on-disk record format
 * (logstore_format.c, pure), the in-memory index (logstore_index.c, pure) and
 * the store object (logstore.c: open/recovery/reads, logstore_io.c: the I/O
 * thread, group commit and compaction). Not for use outside replication/. */
#ifndef MERIDIAN_REPLICATION_LOGSTORE_INT_H
#define MERIDIAN_REPLICATION_LOGSTORE_INT_H

#include "replication/logstore.h"

#include <pthread.h>
#include <stdint.h>

/* ---- Format (docs/logstore.md) ----
 * Segment file "seg-<16 hex digits of seq>.log":
 *   header: "MRDLOG01" | seq u64be                        (16 bytes)
 *   records, each:
 *     len u32be      payload length
 *     crc u32be      crc32c of everything after this field (type..payload)
 *     type u8 | group u64be | slot u64be | ballot u64be | payload[len]
 * A write round is its records followed by a COMMIT record (group 0,
 * slot = round sequence number, ballot = number of records before it in the
 * round). Rounds never span segments. */
#define LSF_MAGIC      "MRDLOG01"
#define LSF_HDR_SIZE   16
#define LSF_REC_HDR    33
#define LSF_CRC_OFFSET 8

enum lsf_type {
    LSF_HARDSTATE = 1,
    LSF_ENTRY = 2,
    LSF_TRUNCATE = 3,
    LSF_DROP = 4,
    LSF_COMMIT = 5,
};

typedef struct lsf_rec {
    uint8_t type;
    uint64_t group, slot, ballot;
    const uint8_t *payload;
    uint32_t len;     /* payload length */
    uint32_t rec_len; /* LSF_REC_HDR + len */
} lsf_rec;

/* Appends one encoded record. */
int lsf_encode(mbuf *b, uint8_t type, uint64_t group, uint64_t slot, uint64_t ballot,
               const void *payload, size_t n);
void lsf_segment_header(uint8_t out[LSF_HDR_SIZE], uint64_t seq);
int lsf_segment_header_check(const uint8_t *p, size_t n, uint64_t seq);

/* Decodes the record at p[0..n). Returns 0, or 1 if the bytes end before the
 * record does (a torn tail), or MERR_CORRUPT (bad crc, length, type). */
int lsf_decode(const uint8_t *p, size_t n, lsf_rec *r);

/* Walks committed rounds in buf[start..n): for every round whose COMMIT marker
 * is intact, calls apply(arg, rec, offset) for each record (offset in buf) and
 * then for the commit marker itself. Stops at the first bad or incomplete
 * record or round; *good_end is the end of the last complete round and
 * *last_seq its sequence number (unchanged if none). Returns 0 if the walk
 * reached n exactly, 1 if it stopped early (a tail to cut), or the negative code
 * apply returned. `why` describes where and why it stopped. */
typedef int (*lsf_apply_fn)(void *arg, const lsf_rec *r, uint64_t off);
int lsf_scan(const uint8_t *buf, size_t n, size_t start, lsf_apply_fn apply, void *arg,
             size_t *good_end, uint64_t *last_seq, char *why, size_t why_cap);

/* The offset of the first intact COMMIT marker at or after `from` whose round
 * sequence number is at least min_seq, or -1. Recovery uses it to tell a torn
 * last round (nothing committed after it) from damage to a round that a later
 * round proves was acknowledged. */
long lsf_find_commit_after(const uint8_t *buf, size_t n, size_t from, uint64_t min_seq);

/* ---- Index ----
 * Durable state of every group, with the location of the record behind each
 * piece so the store can read values and count live bytes per segment. */
typedef struct lsx_loc {
    uint64_t seg; /* 0: absent */
    uint64_t off;
    uint32_t rec_len;
} lsx_loc;

typedef struct lsx_entry {
    uint64_t slot;
    uint64_t ballot;
    lsx_loc loc;
} lsx_entry;

/* A group's entries are an array sorted by slot: appends (the common case) are
 * O(1), lookups a binary search, and holes or far-apart slots cost nothing, so
 * no slot number a peer sends can blow the index up. */
typedef struct lsx_group {
    uint64_t id;
    struct lsx_group *next; /* hash chain */
    uint8_t *hs;
    uint32_t hs_len;
    lsx_loc hs_loc;
    uint64_t trunc;
    lsx_loc trunc_loc;
    lsx_entry *ents; /* ents[0..n), ascending slot, all >= trunc */
    size_t n, cap;
} lsx_group;

/* Called when a record becomes live (+rec_len) or dead (-rec_len). */
typedef void (*lsx_live_fn)(void *arg, uint64_t seg, int64_t delta);

typedef struct lsx_index {
    lsx_group **buckets;
    size_t nbuckets, ngroups;
    lsx_live_fn live;
    void *live_arg;
} lsx_index;

int lsx_init(lsx_index *x, lsx_live_fn live, void *arg);
void lsx_free(lsx_index *x);
lsx_group *lsx_find(const lsx_index *x, uint64_t id);
/* Applies one durable record found at loc. Returns 0 or MERR_NOMEM. */
int lsx_apply(lsx_index *x, const lsf_rec *r, lsx_loc loc);
const lsx_entry *lsx_get(const lsx_group *g, uint64_t slot);
/* The first entry with slot >= `slot`, or NULL. */
const lsx_entry *lsx_get_from(const lsx_group *g, uint64_t slot);
/* Calls fn for every group (any order); stops if fn returns nonzero. */
int lsx_each(const lsx_index *x, int (*fn)(void *arg, const lsx_group *g), void *arg);

/* ---- Store ---- */
typedef struct ls_segment {
    uint64_t seq;
    int fd;
    uint64_t size; /* bytes of complete rounds (plus the header) */
    /* File bytes written so far, zeros past `size` (logstore_io.c: zero-ahead).
     * A round inside them overwrites allocated blocks, so its fdatasync need
     * not commit a size change to the file system's journal. */
    uint64_t zeroed_to;
    uint64_t live; /* bytes of records the index still points at */
    int has_drop;  /* holds a DROP record: deletable only when oldest */
} ls_segment;

struct logstore_batch {
    uint64_t id;
    mbuf rec;
    size_t nrec;
    int sync;   /* logstore_write(): a waiter, not the notifier */
    int done;   /* sync only: set under q_mu */
    int status; /* sync only */
    struct logstore_batch *next;
};

struct logstore {
    char *dir;
    int dirfd;
    int lockfd;
    logstore_opts opts;
    logstore_io io;

    /* ix_mu: index, segments table, stats. The I/O thread holds it to apply a
     * round, pick compaction work and edit the segment table, never across any
     * disk I/O of its own; readers hold it across their pread so the segment
     * they read cannot be deleted under them. */
    pthread_mutex_t ix_mu;
    lsx_index ix;
    ls_segment *segs; /* ascending seq; the last one is active */
    size_t nsegs, capsegs;
    logstore_stats st;
    uint64_t next_round;    /* sequence number of the next round */
    int failed;             /* written under ix_mu, read with __atomic loads */
    char err[MERR_MSG_MAX]; /* set once, before `failed` */

    /* q_mu: the pending queue and the sync waiters. */
    pthread_mutex_t q_mu;
    pthread_cond_t q_cv;    /* work arrived or stop */
    pthread_cond_t done_cv; /* a sync batch finished */
    logstore_batch *q_head, *q_tail;
    int stopping;
    pthread_t thread;
    int thread_started;

    mbuf round; /* the I/O thread's round buffer */
};

/* logstore.c */
int ls_seg_add(logstore *ls, uint64_t seq, int fd, uint64_t size);
ls_segment *ls_seg_find(logstore *ls, uint64_t seq);
void ls_seg_path(const logstore *ls, uint64_t seq, char *out, size_t cap);
void ls_live(void *arg, uint64_t seg, int64_t delta);
void ls_fail(logstore *ls, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* logstore_io.c */
void *ls_io_main(void *arg);
int ls_compact_collect(logstore *ls, mbuf *out, size_t *nrec, lsx_loc **reads, size_t *nreads);
int ls_delete_dead(logstore *ls);

#endif
