/* Order-preserving key codec: tuples of SQL values <-> byte strings whose
 * memcmp order is the tuples' SQL order.
 *
 * Storage compares keys with memcmp (DESIGN.md §6); the SQL layer turns index
 * rows (table id, index id, key columns) into keys with this codec, so a
 * key-range scan in storage is an index-order scan in SQL. The order is
 * SQLite's for the BINARY collation, column by column:
 *
 *     NULL < numbers (INTEGER and REAL compared by exact value) < TEXT < BLOB
 *
 * each column ascending or descending (a descending column's bytes are
 * complemented). A tuple that is a prefix of another sorts before it, in both
 * directions. The byte format is in docs/keycodec.md.
 *
 * Invariants the rest of the system relies on:
 *  - encode(a) < encode(b) (memcmp) implies a <= b in SQL order, and a < b in
 *    SQL order implies encode(a) < encode(b). SQL-equal tuples that differ in
 *    type (1 vs 1.0, 0.0 vs -0.0) get distinct keys ordered by a trailer after
 *    the last column, so the trailer never changes the order of unequal tuples.
 *  - decode(encode(t)) == t exactly: an INTEGER stays an INTEGER, a REAL keeps
 *    every bit (including -0.0 and denormals), text and blob keep every byte.
 *  - The decoder accepts only canonical encodings, so a successful decode
 *    re-encodes to the identical bytes; anything else is MERR_CORRUPT. It never
 *    reads outside the buffer it is given.
 *  - NaN cannot be stored (SQLite turns NaN into NULL); encoding it is
 *    MERR_INVALID, so the caller decides what it means.
 *
 * Scan bounds are prefixes without the trailer: every key whose leading
 * columns are SQL-equal to a prefix starts with that prefix's bytes.
 */
#ifndef MERIDIAN_COMMON_KEYCODEC_H
#define MERIDIAN_COMMON_KEYCODEC_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

/* Column value types, in SQL order of their storage classes. */
enum mkey_type {
    MKEY_NULL = 0,
    MKEY_INT = 1,
    MKEY_REAL = 2,
    MKEY_TEXT = 3,
    MKEY_BLOB = 4,
};

/* One column of a tuple. For text and blob, p/n point at the bytes (not
 * NUL-terminated; may contain 0x00). */
typedef struct mkey_val {
    uint8_t type; /* enum mkey_type */
    uint8_t desc; /* 1: the column sorts descending */
    int64_t i;
    double d;
    const uint8_t *p;
    size_t n;
} mkey_val;

/* Most columns a key may have: far above any real index, small enough that
 * the encoder keeps its per-column state on the stack. */
#define MKEY_MAX_COLS 64

/* Constructors for readable call sites: mkey_int(5, 0), mkey_text("ab", 2, 1). */
mkey_val mkey_null(int desc);
mkey_val mkey_int(int64_t i, int desc);
mkey_val mkey_real(double d, int desc);
mkey_val mkey_text(const void *p, size_t n, int desc);
mkey_val mkey_blob(const void *p, size_t n, int desc);

/* Appends the key of the tuple vals[0..n) to out. MERR_INVALID for NaN or a
 * bad type, MERR_TOOBIG for more than MKEY_MAX_COLS columns, MERR_NOMEM. On
 * error out->len is restored. */
int mkey_encode(const mkey_val *vals, size_t n, mbuf *out);

/* Appends the tuple as a scan prefix: like mkey_encode but without the type
 * trailer, so it is a byte prefix of the key of every tuple whose first n
 * columns are SQL-equal to vals (1 and 1.0 alike). */
int mkey_encode_prefix(const mkey_val *vals, size_t n, mbuf *out);

/* Turns an encoded prefix (from mkey_encode_prefix, ending at a column
 * boundary) into its successor: the smallest byte string greater than every
 * key that starts with the prefix. It appends the byte 0xFF, which no column
 * or trailer ever starts with (for an empty prefix: past every key). */
int mkey_prefix_end(mbuf *prefix);

/* Which side of a scan a bound is, and whether it includes its value. */
enum mkey_bound_kind {
    MKEY_GE, /* lower bound, inclusive: cols >= vals */
    MKEY_GT, /* lower bound, exclusive: cols > vals */
    MKEY_LE, /* upper bound, inclusive: cols <= vals */
    MKEY_LT, /* upper bound, exclusive: cols < vals */
};

/* Appends the byte bound B for a constraint on the leading columns, so that
 * the keys satisfying it are exactly key >= B (MKEY_GE, MKEY_GT) or key < B
 * (MKEY_LE, MKEY_LT): the scan is always the half-open [lower, upper).
 * Comparison is on the leading n columns only, with SQL prefix semantics (the
 * bound (5) covers every (5, ...)). */
int mkey_bound(const mkey_val *vals, size_t n, enum mkey_bound_kind kind, mbuf *out);

/* Decodes a key. Up to `max` columns go to vals, *n gets the count. Text and
 * blob bytes are copied to `scratch` (reset first), which vals point into
 * until scratch is next changed. MERR_CORRUPT (message in e, may be NULL) for
 * anything but a canonical key; MERR_TOOBIG if it has more than max columns. */
int mkey_decode(const uint8_t *key, size_t len, mkey_val *vals, size_t max, size_t *n,
                mbuf *scratch, merr *e);

/* Appends a readable form of a key or bound, e.g. /1/"abc"/NULL/x'00ff'/2.5.
 * Reals always show a '.', 'e', 'inf'; -0.0 shows as -0.0. A descending
 * column is prefixed with '~'. A bound's successor marker prints as /<end>.
 * Bytes that do not decode print as /<corrupt:hex...> and the call returns
 * MERR_CORRUPT (after appending); MERR_NOMEM if out cannot grow. */
int mkey_format(const uint8_t *key, size_t len, mbuf *out);

#endif
