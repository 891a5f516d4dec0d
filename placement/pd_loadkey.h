/* The load-median key of a hot range, for load-based splits (docs/placement.md,
 * "Load splits"): the range's leaseholder offers the key of every read and
 * write it serves; a bounded reservoir (Vitter's algorithm R) keeps a uniform
 * sample of the requests of the current window, and the median is the
 * sampled key that splits the requests about in half. The window is the
 * heartbeat interval: pd_loadkey_roll starts a new one when the reads/s and
 * writes/s counters roll (server/replica_load.c).
 *
 * Pure: the randomness is a seeded generator inside the sampler, no clock.
 * Bounded: PD_LOADKEY_SAMPLES keys of at most PD_LOADKEY_KEY_MAX bytes
 * (about 17 KiB), so a node keeps one only for its hot ranges.
 *
 * A longer key is kept as its first PD_LOADKEY_KEY_MAX bytes. The split
 * counts stay exact: a truncated key t of k is <= k, and for two kept keys
 * a < b (both at most the cap) the originals order the same way, so "kept key
 * < split key" holds exactly when "original key < split key". */
#ifndef MERIDIAN_PLACEMENT_PD_LOADKEY_H
#define MERIDIAN_PLACEMENT_PD_LOADKEY_H

#include <stddef.h>
#include <stdint.h>

#define PD_LOADKEY_SAMPLES     64
#define PD_LOADKEY_KEY_MAX     256
#define PD_LOADKEY_MIN_SAMPLES 16 /* fewer in the span: no median (noise) */

typedef struct pd_loadkey {
    uint64_t seen; /* requests offered this window */
    uint64_t rng;  /* splitmix64 state */
    uint32_t n;    /* samples held: min(seen, PD_LOADKEY_SAMPLES) */
    uint16_t len[PD_LOADKEY_SAMPLES];
    uint64_t at[PD_LOADKEY_SAMPLES]; /* which request of the window (1..seen) */
    uint8_t key[PD_LOADKEY_SAMPLES][PD_LOADKEY_KEY_MAX];
} pd_loadkey;

/* An empty window; seed picks the sample (e.g. the range id). */
void pd_loadkey_init(pd_loadkey *s, uint64_t seed);
/* Offers one request's key (len 0 is ignored). */
void pd_loadkey_add(pd_loadkey *s, const uint8_t *key, size_t len);
/* Starts a new window: the samples are forgotten. */
void pd_loadkey_roll(pd_loadkey *s);

/* The load median of the window for the span [start, end) (elen 0: to the
 * end of the key space) into out (room for PD_LOADKEY_KEY_MAX bytes): the
 * sampled key k with start < k < end that best halves the samples inside
 * the span into those below k (the left half of a split at k) and the rest.
 * Returns its length, 0 for none: fewer than PD_LOADKEY_MIN_SAMPLES samples
 * inside the span, or no key leaving at least a quarter of them on each
 * side, or one that does only over the whole window while the first or
 * the second half of the window's requests sends less than an eighth of
 * its samples to one side. The quarter covers a single hot key: its
 * requests all go to one side of any split, so no split relieves it (and a
 * split moving little load off would only be merged back once the
 * cool-down ends). The halves cover a moving hot spot (sequential inserts):
 * the split would leave the past load on the left and all the future load
 * on the right. Samples outside the span (the window straddled a split) do
 * not count. */
size_t pd_loadkey_median(const pd_loadkey *s, const uint8_t *start, size_t slen, const uint8_t *end,
                         size_t elen, uint8_t *out);

/* The end of a window of a range whose requests came at qps: the median of
 * the window into out (as pd_loadkey_median; 0 when *s was NULL), then the
 * next window is sampled (*s allocated, seeded with seed, or rolled) when
 * sample_qps > 0 and qps >= sample_qps, else not (*s freed, NULL): only hot
 * ranges hold a sampler, and the key comes from the second hot window.
 * Out of memory: no sampler, no key (the range just does not split by load
 * this window). */
size_t pd_loadkey_window(pd_loadkey **s, double qps, double sample_qps, uint64_t seed,
                         const uint8_t *start, size_t slen, const uint8_t *end, size_t elen,
                         uint8_t *out);

#endif
