/* The log store's in-memory index: for every group its hard state (cached),
 * truncation point and slot -> (ballot, record location) table. Pure: it only
 * applies decoded records in log order and reports, through the live callback,
 * which records became needed or superseded, so the store can tell which
 * segments hold nothing live any more. */
#include "replication/logstore_int.h"

#include <stdlib.h>
#include <string.h>

static size_t lsx_hash(uint64_t id, size_t nbuckets)
{
    id ^= id >> 33;
    id *= 0xff51afd7ed558ccdULL;
    id ^= id >> 33;
    return (size_t)(id & (nbuckets - 1));
}

int lsx_init(lsx_index *x, lsx_live_fn live, void *arg)
{
    memset(x, 0, sizeof(*x));
    x->nbuckets = 64;
    x->buckets = calloc(x->nbuckets, sizeof(*x->buckets));
    if (!x->buckets) return MERR_NOMEM;
    x->live = live;
    x->live_arg = arg;
    return 0;
}

static void lsx_group_free(lsx_group *g)
{
    free(g->hs);
    free(g->ents);
    free(g);
}

void lsx_free(lsx_index *x)
{
    if (!x->buckets) return;
    for (size_t i = 0; i < x->nbuckets; i++) {
        lsx_group *g = x->buckets[i];
        while (g) {
            lsx_group *nx = g->next;
            lsx_group_free(g);
            g = nx;
        }
    }
    free(x->buckets);
    memset(x, 0, sizeof(*x));
}

lsx_group *lsx_find(const lsx_index *x, uint64_t id)
{
    for (lsx_group *g = x->buckets[lsx_hash(id, x->nbuckets)]; g; g = g->next)
        if (g->id == id) return g;
    return NULL;
}

static int lsx_grow(lsx_index *x)
{
    size_t nb = x->nbuckets * 2;
    lsx_group **b = calloc(nb, sizeof(*b));
    if (!b) return MERR_NOMEM;
    for (size_t i = 0; i < x->nbuckets; i++) {
        lsx_group *g = x->buckets[i];
        while (g) {
            lsx_group *nx = g->next;
            size_t h = lsx_hash(g->id, nb);
            g->next = b[h];
            b[h] = g;
            g = nx;
        }
    }
    free(x->buckets);
    x->buckets = b;
    x->nbuckets = nb;
    return 0;
}

static lsx_group *lsx_get_or_add(lsx_index *x, uint64_t id)
{
    lsx_group *g = lsx_find(x, id);
    if (g) return g;
    if (x->ngroups >= x->nbuckets && lsx_grow(x)) return NULL;
    g = calloc(1, sizeof(*g));
    if (!g) return NULL;
    g->id = id;
    size_t h = lsx_hash(id, x->nbuckets);
    g->next = x->buckets[h];
    x->buckets[h] = g;
    x->ngroups++;
    return g;
}

static void lsx_dead(lsx_index *x, lsx_loc *l)
{
    if (l->seg) x->live(x->live_arg, l->seg, -(int64_t)l->rec_len);
    l->seg = 0;
}

static void lsx_born(lsx_index *x, lsx_loc *dst, lsx_loc l)
{
    *dst = l;
    x->live(x->live_arg, l.seg, (int64_t)l.rec_len);
}

static void lsx_remove(lsx_index *x, lsx_group *g)
{
    lsx_dead(x, &g->hs_loc);
    lsx_dead(x, &g->trunc_loc);
    for (size_t i = 0; i < g->n; i++) lsx_dead(x, &g->ents[i].loc);
    lsx_group **pp = &x->buckets[lsx_hash(g->id, x->nbuckets)];
    while (*pp != g) pp = &(*pp)->next;
    *pp = g->next;
    x->ngroups--;
    lsx_group_free(g);
}

/* The first position whose slot is >= slot. */
static size_t lsx_lower_bound(const lsx_group *g, uint64_t slot)
{
    size_t lo = 0, hi = g->n;
    if (hi && g->ents[hi - 1].slot < slot) return hi; /* appends: the usual case */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (g->ents[mid].slot < slot)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static void lsx_truncate(lsx_index *x, lsx_group *g, uint64_t slot)
{
    size_t cut = lsx_lower_bound(g, slot);
    if (cut == 0) return;
    for (size_t i = 0; i < cut; i++) lsx_dead(x, &g->ents[i].loc);
    memmove(g->ents, g->ents + cut, (g->n - cut) * sizeof(lsx_entry));
    g->n -= cut;
}

static int lsx_put_entry(lsx_index *x, lsx_group *g, uint64_t slot, uint64_t ballot, lsx_loc loc)
{
    size_t i = lsx_lower_bound(g, slot);
    if (i < g->n && g->ents[i].slot == slot) {
        lsx_dead(x, &g->ents[i].loc);
    } else {
        if (g->n == g->cap) {
            size_t cap = g->cap ? g->cap * 2 : 8;
            lsx_entry *e = realloc(g->ents, cap * sizeof(*e));
            if (!e) return MERR_NOMEM;
            g->ents = e;
            g->cap = cap;
        }
        memmove(g->ents + i + 1, g->ents + i, (g->n - i) * sizeof(lsx_entry));
        g->n++;
        g->ents[i].slot = slot;
    }
    g->ents[i].ballot = ballot;
    lsx_born(x, &g->ents[i].loc, loc);
    return 0;
}

int lsx_apply(lsx_index *x, const lsf_rec *r, lsx_loc loc)
{
    if (r->type == LSF_COMMIT) return 0;
    if (r->type == LSF_DROP) {
        lsx_group *g = lsx_find(x, r->group);
        if (g) lsx_remove(x, g);
        return 0;
    }
    lsx_group *g = lsx_get_or_add(x, r->group);
    if (!g) return MERR_NOMEM;
    switch (r->type) {
    case LSF_HARDSTATE: {
        uint8_t *hs = malloc(r->len ? r->len : 1);
        if (!hs) return MERR_NOMEM;
        if (r->len) memcpy(hs, r->payload, r->len);
        free(g->hs);
        g->hs = hs;
        g->hs_len = r->len;
        lsx_dead(x, &g->hs_loc);
        lsx_born(x, &g->hs_loc, loc);
        return 0;
    }
    case LSF_ENTRY:
        /* An accept below the truncation point is already covered by the
         * snapshot: dead on arrival. */
        if (r->slot < g->trunc) return 0;
        return lsx_put_entry(x, g, r->slot, r->ballot, loc);
    case LSF_TRUNCATE:
        if (r->slot < g->trunc) return 0; /* never moves back */
        if (r->slot > g->trunc || !g->trunc_loc.seg) {
            g->trunc = r->slot;
            lsx_truncate(x, g, g->trunc);
        }
        /* The same point again (compaction restating it) moves the record. */
        lsx_dead(x, &g->trunc_loc);
        lsx_born(x, &g->trunc_loc, loc);
        return 0;
    default: return MERR_CORRUPT;
    }
}

const lsx_entry *lsx_get(const lsx_group *g, uint64_t slot)
{
    size_t i = lsx_lower_bound(g, slot);
    return i < g->n && g->ents[i].slot == slot ? &g->ents[i] : NULL;
}

const lsx_entry *lsx_get_from(const lsx_group *g, uint64_t slot)
{
    size_t i = lsx_lower_bound(g, slot);
    return i < g->n ? &g->ents[i] : NULL;
}

int lsx_each(const lsx_index *x, int (*fn)(void *arg, const lsx_group *g), void *arg)
{
    for (size_t i = 0; i < x->nbuckets; i++)
        for (lsx_group *g = x->buckets[i]; g; g = g->next) {
            int rc = fn(arg, g);
            if (rc) return rc;
        }
    return 0;
}
