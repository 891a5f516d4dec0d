/* The routing cache (route_cache.h): a sorted array of disjoint spans. */
#include "placement/route_cache.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

int route_keycmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    size_t n = an < bn ? an : bn;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return an < bn ? -1 : an > bn;
}

/* 1 if a span with this end ends at or before key (an empty end is +inf). */
static int end_le(const uint8_t *end, size_t elen, const uint8_t *key, size_t klen)
{
    return elen && route_keycmp(end, elen, key, klen) <= 0;
}

static int overlaps(const route_entry *e, const uint8_t *start, size_t slen, const uint8_t *end,
                    size_t elen)
{
    if (end_le(e->end, e->end_len, start, slen)) return 0;   /* e ends before start */
    if (end_le(end, elen, e->start, e->start_len)) return 0; /* span ends before e */
    return 1;
}

void route_cache_init(route_cache *c)
{
    memset(c, 0, sizeof(*c));
}

static void entry_free(route_entry *e)
{
    free(e->start);
    free(e->end);
}

void route_cache_free(route_cache *c)
{
    for (size_t i = 0; i < c->n; i++) entry_free(&c->v[i]);
    free(c->v);
    route_cache_init(c);
}

size_t route_cache_seek(const route_cache *c, const uint8_t *key, size_t klen)
{
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (end_le(c->v[mid].end, c->v[mid].end_len, key, klen))
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const route_entry *route_cache_lookup(const route_cache *c, const uint8_t *key, size_t klen)
{
    size_t i = route_cache_seek(c, key, klen);
    if (i == c->n) return NULL;
    const route_entry *e = &c->v[i];
    return route_keycmp(e->start, e->start_len, key, klen) <= 0 ? e : NULL;
}

static void remove_at(route_cache *c, size_t i)
{
    entry_free(&c->v[i]);
    memmove(&c->v[i], &c->v[i + 1], (c->n - i - 1) * sizeof(c->v[0]));
    c->n--;
}

void route_cache_invalidate(route_cache *c, const uint8_t *start, size_t slen, const uint8_t *end,
                            size_t elen)
{
    for (size_t i = route_cache_seek(c, start, slen); i < c->n;) {
        if (!overlaps(&c->v[i], start, slen, end, elen)) break;
        remove_at(c, i);
    }
}

static uint8_t *dup(const uint8_t *p, size_t n)
{
    uint8_t *d = malloc(n ? n : 1);
    if (d && n) memcpy(d, p, n);
    return d;
}

int route_cache_update(route_cache *c, uint64_t range_id, uint64_t generation, const uint8_t *start,
                       size_t slen, const uint8_t *end, size_t elen, uint64_t leader)
{
    if (elen && route_keycmp(start, slen, end, elen) >= 0) return 0; /* empty span */
    size_t first = route_cache_seek(c, start, slen);
    for (size_t i = first; i < c->n && overlaps(&c->v[i], start, slen, end, elen); i++) {
        const route_entry *e = &c->v[i];
        if (e->generation > generation) return 0;
        if (e->generation == generation && e->range_id != range_id) return 0;
    }
    route_entry ne = {.range_id = range_id,
                      .generation = generation,
                      .leader = leader,
                      .start = dup(start, slen),
                      .end = dup(end, elen),
                      .start_len = slen,
                      .end_len = elen};
    if (!ne.start || !ne.end) {
        entry_free(&ne);
        return MERR_NOMEM;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        route_entry *nv = realloc(c->v, cap * sizeof(*nv));
        if (!nv) {
            entry_free(&ne);
            return MERR_NOMEM;
        }
        c->v = nv;
        c->cap = cap;
    }
    route_cache_invalidate(c, start, slen, end, elen);
    size_t at = route_cache_seek(c, start, slen);
    memmove(&c->v[at + 1], &c->v[at], (c->n - at) * sizeof(c->v[0]));
    c->v[at] = ne;
    c->n++;
    return 1;
}

void route_cache_set_leader(route_cache *c, uint64_t range_id, uint64_t leader)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].range_id == range_id) c->v[i].leader = leader;
}

int route_cache_complete(const route_cache *c)
{
    if (!c->n || c->v[0].start_len) return 0;
    for (size_t i = 0; i + 1 < c->n; i++)
        if (!c->v[i].end_len ||
            route_keycmp(c->v[i].end, c->v[i].end_len, c->v[i + 1].start, c->v[i + 1].start_len))
            return 0;
    return c->v[c->n - 1].end_len == 0;
}
