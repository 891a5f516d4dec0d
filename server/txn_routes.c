/* The transaction client's route cache (txn_routes.h). */
#include "server/txn_routes.h"

#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

/* key in [start, end) */
static int holds(const txn_route *e, const uint8_t *key, size_t klen)
{
    return mbytes_cmp(key, klen, e->start, e->start_len) >= 0 &&
           (!e->end_len || mbytes_cmp(key, klen, e->end, e->end_len) < 0);
}

/* [s1, e1) and [s2, e2) share a key (an empty end is +infinity). */
static int overlaps(const txn_route *e, const uint8_t *s, size_t sl, const uint8_t *end, size_t el)
{
    int e_before = e->end_len && mbytes_cmp(e->end, e->end_len, s, sl) <= 0;
    int after = el && mbytes_cmp(e->start, e->start_len, end, el) >= 0;
    return !e_before && !after;
}

static void drop(txn_routes *rt, int i)
{
    free(rt->r[i].start);
    free(rt->r[i].end);
    rt->r[i] = rt->r[--rt->n];
}

void txn_routes_init(txn_routes *rt)
{
    memset(rt, 0, sizeof(*rt));
}

void txn_routes_free(txn_routes *rt)
{
    while (rt->n) drop(rt, rt->n - 1);
}

int txn_routes_learn(txn_routes *rt, uint64_t range_id, const uint8_t *start, size_t slen,
                     const uint8_t *end, size_t elen, const char *host)
{
    size_t hl = host ? strlen(host) : 0;
    if (!hl || hl >= TXN_ROUTES_HOST || (elen && mbytes_cmp(start, slen, end, elen) >= 0))
        return MERR_INVALID;
    uint8_t *s = malloc(slen ? slen : 1), *e = malloc(elen ? elen : 1);
    if (!s || !e) {
        free(s);
        free(e);
        return MERR_NOMEM;
    }
    if (slen) memcpy(s, start, slen);
    if (elen) memcpy(e, end, elen);
    for (int i = rt->n - 1; i >= 0; i--)
        if (rt->r[i].range_id == range_id || overlaps(&rt->r[i], start, slen, end, elen))
            drop(rt, i);
    if (rt->n == TXN_ROUTES_MAX) {
        int lru = 0;
        for (int i = 1; i < rt->n; i++)
            if (rt->r[i].used < rt->r[lru].used) lru = i;
        drop(rt, lru);
    }
    txn_route *r = &rt->r[rt->n++];
    r->range_id = range_id;
    r->start = s, r->start_len = slen;
    r->end = e, r->end_len = elen;
    memcpy(r->host, host, hl + 1);
    r->used = ++rt->tick;
    return 0;
}

const char *txn_routes_for_key(txn_routes *rt, const uint8_t *key, size_t klen)
{
    for (int i = 0; i < rt->n; i++)
        if (holds(&rt->r[i], key, klen)) {
            rt->r[i].used = ++rt->tick;
            return rt->r[i].host;
        }
    return NULL;
}

const char *txn_routes_for_range(txn_routes *rt, uint64_t range_id)
{
    for (int i = 0; i < rt->n; i++)
        if (rt->r[i].range_id == range_id) {
            rt->r[i].used = ++rt->tick;
            return rt->r[i].host;
        }
    return NULL;
}

void txn_routes_forget_key(txn_routes *rt, const uint8_t *key, size_t klen)
{
    for (int i = rt->n - 1; i >= 0; i--)
        if (holds(&rt->r[i], key, klen)) drop(rt, i);
}

void txn_routes_forget_range(txn_routes *rt, uint64_t range_id)
{
    for (int i = rt->n - 1; i >= 0; i--)
        if (rt->r[i].range_id == range_id) drop(rt, i);
}
