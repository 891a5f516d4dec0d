/* The read cache of a read-write transaction in the transaction client:
 * what the leaseholders answered to the transaction's locking reads, by
 * key span. While the transaction holds a lock on a span nobody else can
 * write in it, so reading it again may be answered from here instead of a
 * round trip: an UPDATE reads its row for writing (xFilter), then deletes
 * the old row (which reads it again for its index entries) and probes the
 * primary key it writes; all three name the same locked span, and only the
 * first needs the leaseholder.
 *
 * If the transaction loses a lock (wounded, or the lock table changed with
 * the lease), an answer from here may be stale; that transaction cannot
 * commit (the commit finds it aborted, or its lock epoch changed), so no
 * stale read is ever part of a committed transaction. The transaction's own
 * buffered writes are not kept here: the client overlays them as it does on
 * a leaseholder's answer.
 *
 * Pure: no I/O, no locks (one transaction is used by one thread). Bounded
 * (TC_RCACHE_SPANS spans, the oldest goes; a span of more rows or bytes
 * than the caps is not kept): a miss only costs the round trip. */
#ifndef MERIDIAN_SERVER_TXN_RCACHE_H
#define MERIDIAN_SERVER_TXN_RCACHE_H

#include <stddef.h>
#include <stdint.h>

#define TC_RCACHE_SPANS     128       /* spans kept; the oldest goes */
#define TC_RCACHE_SPAN_ROWS 256       /* a span with more rows is not kept */
#define TC_RCACHE_BYTES     (1 << 20) /* keys and values kept, in all */

typedef struct tc_rrow {
    const uint8_t *key, *val;
    size_t klen, vlen;
} tc_rrow;

/* [lo, hi) as read under a lock (x: exclusive), and every row in it. */
typedef struct tc_rspan {
    uint8_t *mem; /* lo, hi and the rows' bytes, in one block */
    const uint8_t *lo, *hi;
    size_t lolen, hilen;
    int x;
    tc_rrow *rows; /* ascending by key */
    size_t nrows, bytes;
} tc_rspan;

typedef struct tc_rcache {
    tc_rspan s[TC_RCACHE_SPANS]; /* a ring: next is the slot to fill */
    int n, next;
    size_t bytes;
} tc_rcache;

void tc_rcache_init(tc_rcache *c);
void tc_rcache_free(tc_rcache *c);
/* Records that [lo, hi) (lo < hi) was read under a lock of mode x and holds
 * exactly rows[0..n) (ascending, or descending when rev). Keeps nothing
 * when the span is empty, too big, or memory is short: a later read of it
 * goes to the leaseholder. */
void tc_rcache_put(tc_rcache *c, const uint8_t *lo, size_t lolen, const uint8_t *hi, size_t hilen,
                   int x, const tc_rrow *rows, size_t n, int rev);
/* One key read (point lock): found, or known absent. */
void tc_rcache_put_key(tc_rcache *c, const uint8_t *key, size_t klen, int x, int found,
                       const uint8_t *val, size_t vlen);
/* A span holding all of [lo, hi) under a lock at least as strong as
 * need_x (1: exclusive), or NULL; *first, *end index its rows inside
 * [lo, hi). The span stays valid until the next put or free. */
const tc_rspan *tc_rcache_span(tc_rcache *c, const uint8_t *lo, size_t lolen, const uint8_t *hi,
                               size_t hilen, int need_x, size_t *first, size_t *end);
/* Key's value: 1 known present (*val, *vlen point into the cache), 0 known
 * absent, -1 not known under a lock at least as strong as need_x. */
int tc_rcache_get(tc_rcache *c, const uint8_t *key, size_t klen, int need_x, const uint8_t **val,
                  size_t *vlen);

#endif
