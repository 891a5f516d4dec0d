/* A routing cache: which range holds a key, at which generation, and who
 * leads it (DESIGN.md §8: "clients cache the directory; a range answers a
 * stale route with an error that carries the fresh descriptor").
 *
 * Pure: no I/O, no clock. Entries are disjoint spans [start, end) kept in
 * start-key order (end_len 0: to the end of the key space); the cache may
 * have holes (a lookup there misses and the caller asks the directory).
 *
 * Freshness: a range's generation grows with every split and merge, and the
 * ranges that overlap a given one over time descend from each other, so a
 * descriptor is fresher than every overlapping entry of lower generation.
 * route_cache_update drops the overlapping entries of lower (or equal, same
 * range) generation and inserts the descriptor, unless an overlapping entry
 * is newer (then the descriptor is stale and ignored). */
#ifndef MERIDIAN_PLACEMENT_ROUTE_CACHE_H
#define MERIDIAN_PLACEMENT_ROUTE_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct route_entry {
    uint64_t range_id, generation;
    uint64_t leader; /* node id hint, 0 unknown */
    uint8_t *start, *end;
    size_t start_len, end_len;
} route_entry;

typedef struct route_cache {
    route_entry *v;
    size_t n, cap;
} route_cache;

void route_cache_init(route_cache *c);
void route_cache_free(route_cache *c);

/* Returns 1 if d went in, 0 if it was stale, MERR_NOMEM (<0) on failure. */
int route_cache_update(route_cache *c, uint64_t range_id, uint64_t generation, const uint8_t *start,
                       size_t slen, const uint8_t *end, size_t elen, uint64_t leader);
/* The entry whose span holds key, or NULL (pointer valid until the next change). */
const route_entry *route_cache_lookup(const route_cache *c, const uint8_t *key, size_t klen);
/* Index of the first entry whose span ends after key (c->n if none). */
size_t route_cache_seek(const route_cache *c, const uint8_t *key, size_t klen);
/* Drops every entry overlapping [start, end) (elen 0: to the end). */
void route_cache_invalidate(route_cache *c, const uint8_t *start, size_t slen, const uint8_t *end,
                            size_t elen);
void route_cache_set_leader(route_cache *c, uint64_t range_id, uint64_t leader);
/* 1 if the entries cover the whole key space exactly once. */
int route_cache_complete(const route_cache *c);

/* memcmp order of byte strings (shorter prefix first). */
int route_keycmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn);

#endif
