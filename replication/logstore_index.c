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

/* Makes room so that `slot` has a position in g->ents. */
static int lsx_slot_room(lsx_group *g, uint64_t slot)
{
    if (g->n == 0) g->base = slot;
    if (slot < g->base) {
        /* Rare: a slot accepted below every slot we hold. Shift up. */
        uint64_t shift = g->base - slot;
        if (shift > SIZE_MAX / 2 / sizeof(lsx_entry) - g->n) return MERR_NOMEM;
        size_t need = g->n + (size_t)shift;
        if (need > g->cap) {
            lsx_entry *e = realloc(g->ents, need * sizeof(*e));
            if (!e) return MERR_NOMEM;
            g->ents = e;
            g->cap = need;
        }
        memmove(g->ents + shift, g->ents, g->n * sizeof(lsx_entry));
        memset(g->ents, 0, (size_t)shift * sizeof(lsx_entry));
        g->n = need;
        g->base = slot;
        return 0;
    }
    uint64_t idx = slot - g->base;
    if (idx > SIZE_MAX / 2 / sizeof(lsx_entry)) return MERR_NOMEM;
    if (idx < g->n) return 0;
    size_t need = (size_t)idx + 1;
    if (need > g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        while (cap < need) cap *= 2;
        lsx_entry *e = realloc(g->ents, cap * sizeof(*e));
        if (!e) return MERR_NOMEM;
        g->ents = e;
        g->cap = cap;
    }
    memset(g->ents + g->n, 0, (need - g->n) * sizeof(lsx_entry));
    g->n = need;
    return 0;
}

static void lsx_truncate(lsx_index *x, lsx_group *g, uint64_t slot)
{
    if (g->n == 0 || slot <= g->base) {
        if (g->n == 0) g->base = slot;
        return;
    }
    uint64_t cut = slot - g->base;
    if (cut >= g->n) cut = g->n;
    for (size_t i = 0; i < cut; i++) {
        if (g->ents[i].loc.seg) g->present--;
        lsx_dead(x, &g->ents[i].loc);
    }
    memmove(g->ents, g->ents + cut, (g->n - (size_t)cut) * sizeof(lsx_entry));
    g->n -= (size_t)cut;
    g->base = g->n ? g->base + cut : slot;
    /* Keep the first position present so first_slot is ents[0]. */
    size_t skip = 0;
    while (skip < g->n && !g->ents[skip].loc.seg) skip++;
    if (skip) {
        memmove(g->ents, g->ents + skip, (g->n - skip) * sizeof(lsx_entry));
        g->n -= skip;
        g->base += skip;
    }
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
    case LSF_ENTRY: {
        /* An accept below the truncation point is already covered by the
         * snapshot: dead on arrival. */
        if (r->slot < g->trunc) return 0;
        int rc = lsx_slot_room(g, r->slot);
        if (rc) return rc;
        lsx_entry *e = &g->ents[r->slot - g->base];
        if (e->loc.seg)
            lsx_dead(x, &e->loc);
        else
            g->present++;
        e->ballot = r->ballot;
        lsx_born(x, &e->loc, loc);
        return 0;
    }
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
    if (slot < g->base || slot - g->base >= g->n || slot < g->trunc) return NULL;
    const lsx_entry *e = &g->ents[slot - g->base];
    return e->loc.seg ? e : NULL;
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
