/* Range-local keys (prefix `mlocal_`, docs/keycodec.md "Range-local keys"):
 * keys that belong to whichever range's span contains their ANCHOR key, not
 * to the range whose span contains the key's own bytes (Cockroach's local
 * keys). Transaction records use them (txn/txnrec.h), so a record lives with
 * its transaction's first key and moves with it through splits and merges.
 *
 *   local key = 0x00 0x00 | E(anchor) | 0x00 0x01 | suffix
 *
 * E escapes each 0x00 of the anchor as 0x00 0xFF (the key codec's TEXT
 * body), so E is order-preserving and E(a) || 0x00 0x01 sorts below every
 * longer anchor. Hence, for any key x:  anchor >= x  iff  local key >=
 * 0x00 0x00 | E(x)  (mlocal_bound). The local keys a range [s, e) owns are
 * exactly the contiguous interval [bound(s), bound(e)) (bound of an empty
 * end: 0x00 0x01), which is what splits, merges and local scans use.
 * 0x00 0x00 is no system key's prefix (those are 0x00 + text), and user
 * keys never start with 0x00, so storage tells local keys by their prefix
 * alone and keeps them out of user scans, stats and split-key choice. */
#ifndef MERIDIAN_COMMON_LOCALKEY_H
#define MERIDIAN_COMMON_LOCALKEY_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

#define MLOCAL_PREFIX_LEN 2

/* 1 if k is a range-local key (starts 0x00 0x00). */
int mlocal_is(const uint8_t *k, size_t n);
/* out = prefix | E(anchor) | 0x00 0x01 | suffix (appended). */
int mlocal_key(const uint8_t *anchor, size_t alen, const uint8_t *suffix, size_t slen, mbuf *out);
/* out = prefix | E(x) (appended): local keys >= it are those anchored at
 * >= x. An empty x gives the prefix itself. */
int mlocal_bound(const uint8_t *x, size_t xlen, mbuf *out);
/* out = the first key above every local key (0x00 0x01), appended. */
int mlocal_end(mbuf *out);
/* Splits a local key: *anchor (reset, then filled unescaped) and the suffix
 * (points into k). MERR_CORRUPT for anything else. */
int mlocal_decode(const uint8_t *k, size_t n, mbuf *anchor, const uint8_t **suffix, size_t *slen);
/* Sign of (k vs prefix | E(x)) for a local key k, without allocating. */
int mlocal_cmp_bound(const uint8_t *k, size_t n, const uint8_t *x, size_t xlen);
/* 1 if the local key k's anchor lies in [start, end) (end_len 0: open). */
int mlocal_in_span(const uint8_t *k, size_t n, const uint8_t *start, size_t slen,
                   const uint8_t *end, size_t elen);

#endif
