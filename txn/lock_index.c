/* The lock table's indexes: span comparisons, the augmented AVL interval
 * tree and the chained hash maps (see lock_index.h for the why). */
#include "txn/lock_index.h"

#include "common/err.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

/* ---- spans ---- */

int lt_key_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c) return c;
    return alen < blen ? -1 : alen > blen;
}

int lt_key_vs_end(const uint8_t *k, size_t klen, const lt_span *sp)
{
    if (sp->inf) return -1;
    return lt_key_cmp(k, klen, sp->e, sp->elen);
}

static int end_cmp(const lt_span *a, const lt_span *b)
{
    if (a->inf || b->inf) return (int)a->inf - (int)b->inf;
    return lt_key_cmp(a->e, a->elen, b->e, b->elen);
}

bool lt_span_overlap(const lt_span *a, const lt_span *b)
{
    return lt_key_vs_end(a->s, a->slen, b) < 0 && lt_key_vs_end(b->s, b->slen, a) < 0;
}

int lt_span_cmp(const lt_span *a, const lt_span *b)
{
    int c = lt_key_cmp(a->s, a->slen, b->s, b->slen);
    return c ? c : end_cmp(a, b);
}

/* ---- AVL interval tree ---- */

static int height(const lt_obj *o)
{
    return o ? o->height : 0;
}

/* Recomputes height and the greatest-end pointer from the children. */
static void fix(lt_obj *o)
{
    int hl = height(o->left), hr = height(o->right);
    o->height = 1 + (hl > hr ? hl : hr);
    o->maxend = o;
    if (o->left && end_cmp(&o->left->maxend->sp, &o->maxend->sp) > 0) o->maxend = o->left->maxend;
    if (o->right && end_cmp(&o->right->maxend->sp, &o->maxend->sp) > 0)
        o->maxend = o->right->maxend;
}

static lt_obj *rot_right(lt_obj *o)
{
    lt_obj *l = o->left;
    o->left = l->right;
    l->right = o;
    fix(o);
    fix(l);
    return l;
}

static lt_obj *rot_left(lt_obj *o)
{
    lt_obj *r = o->right;
    o->right = r->left;
    r->left = o;
    fix(o);
    fix(r);
    return r;
}

static lt_obj *balance(lt_obj *o)
{
    fix(o);
    int bf = height(o->left) - height(o->right);
    if (bf > 1) {
        if (height(o->left->left) < height(o->left->right)) o->left = rot_left(o->left);
        return rot_right(o);
    }
    if (bf < -1) {
        if (height(o->right->right) < height(o->right->left)) o->right = rot_right(o->right);
        return rot_left(o);
    }
    return o;
}

static lt_obj *insert_at(lt_obj *n, lt_obj *o)
{
    if (!n) {
        o->left = o->right = NULL;
        fix(o);
        return o;
    }
    int c = lt_span_cmp(&o->sp, &n->sp);
    assert(c != 0);
    if (c < 0)
        n->left = insert_at(n->left, o);
    else
        n->right = insert_at(n->right, o);
    return balance(n);
}

void lt_tree_insert(lt_tree *t, lt_obj *o)
{
    t->root = insert_at(t->root, o);
    t->n++;
}

/* Detaches the leftmost node of n's subtree into *min; returns the rest. */
static lt_obj *remove_min(lt_obj *n, lt_obj **min)
{
    if (!n->left) {
        *min = n;
        return n->right;
    }
    n->left = remove_min(n->left, min);
    return balance(n);
}

static lt_obj *remove_at(lt_obj *n, lt_obj *o)
{
    assert(n);
    if (n == o) {
        if (!n->left) return n->right;
        if (!n->right) return n->left;
        lt_obj *m;
        lt_obj *rest = remove_min(n->right, &m);
        m->left = n->left;
        m->right = rest;
        return balance(m);
    }
    if (lt_span_cmp(&o->sp, &n->sp) < 0)
        n->left = remove_at(n->left, o);
    else
        n->right = remove_at(n->right, o);
    return balance(n);
}

void lt_tree_remove(lt_tree *t, lt_obj *o)
{
    t->root = remove_at(t->root, o);
    o->left = o->right = NULL;
    t->n--;
}

lt_obj *lt_tree_find(const lt_tree *t, const lt_span *sp)
{
    lt_obj *n = t->root;
    while (n) {
        int c = lt_span_cmp(sp, &n->sp);
        if (!c) return n;
        n = c < 0 ? n->left : n->right;
    }
    return NULL;
}

static int overlaps_at(lt_obj *n, const lt_span *sp, lt_tree_fn fn, void *ctx)
{
    while (n) {
        /* Nothing in this subtree ends after sp starts: skip it whole. */
        if (lt_key_vs_end(sp->s, sp->slen, &n->maxend->sp) >= 0) return 0;
        int rc = overlaps_at(n->left, sp, fn, ctx);
        if (rc) return rc;
        /* n and everything right of it start at or after sp's end. */
        if (lt_key_vs_end(n->sp.s, n->sp.slen, sp) >= 0) return 0;
        if (lt_key_vs_end(sp->s, sp->slen, &n->sp) < 0) {
            rc = fn(ctx, n);
            if (rc) return rc;
        }
        n = n->right;
    }
    return 0;
}

int lt_tree_overlaps(const lt_tree *t, const lt_span *sp, lt_tree_fn fn, void *ctx)
{
    return overlaps_at(t->root, sp, fn, ctx);
}

static int check_at(const lt_obj *n, const lt_obj *lo, const lt_obj *hi, size_t *count)
{
    if (!n) return 0;
    if (lo && lt_span_cmp(&lo->sp, &n->sp) >= 0) return -1;
    if (hi && lt_span_cmp(&n->sp, &hi->sp) >= 0) return -1;
    if (check_at(n->left, lo, n, count) || check_at(n->right, n, hi, count)) return -1;
    int hl = height(n->left), hr = height(n->right);
    if (n->height != 1 + (hl > hr ? hl : hr) || hl - hr > 1 || hr - hl > 1) return -1;
    const lt_obj *m = n;
    if (n->left && end_cmp(&n->left->maxend->sp, &m->sp) > 0) m = n->left->maxend;
    if (n->right && end_cmp(&n->right->maxend->sp, &m->sp) > 0) m = n->right->maxend;
    if (end_cmp(&m->sp, &n->maxend->sp) != 0) return -1;
    (*count)++;
    return 0;
}

int lt_tree_check(const lt_tree *t)
{
    size_t count = 0;
    if (check_at(t->root, NULL, NULL, &count)) return -1;
    return count == t->n ? 0 : -1;
}

/* ---- hash maps ---- */

static uint64_t mix64(uint64_t x)
{
    /* splitmix64's finaliser: every input bit reaches every output bit. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t lt_hash_u64(uint64_t v)
{
    return mix64(v + 0x9e3779b97f4a7c15ULL);
}

uint64_t lt_hash_bytes(const void *p, size_t n)
{
    const uint8_t *b = p;
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (n * 0xff51afd7ed558ccdULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = mix64(h ^ w);
        b += 8;
        n -= 8;
    }
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++) w |= (uint64_t)b[i] << (8 * i);
    return mix64(h ^ w ^ 0x2545f4914f6cdd1dULL);
}

int lt_hmap_init(lt_hmap *m, size_t nb)
{
    size_t want = 16;
    while (want < nb) want <<= 1;
    m->b = calloc(want, sizeof(*m->b));
    if (!m->b) return MERR_NOMEM;
    m->nb = want;
    m->n = 0;
    return 0;
}

void lt_hmap_free(lt_hmap *m)
{
    free(m->b);
    m->b = NULL;
    m->nb = m->n = 0;
}

int lt_hmap_reserve(lt_hmap *m)
{
    if (m->n + 1 <= m->nb) return 0;
    size_t nb = m->nb * 2;
    lt_hnode **b = calloc(nb, sizeof(*b));
    if (!b) return MERR_NOMEM;
    for (size_t i = 0; i < m->nb; i++) {
        lt_hnode *n = m->b[i];
        while (n) {
            lt_hnode *next = n->next;
            size_t j = n->h & (nb - 1);
            n->next = b[j];
            b[j] = n;
            n = next;
        }
    }
    free(m->b);
    m->b = b;
    m->nb = nb;
    return 0;
}

void lt_hmap_put(lt_hmap *m, lt_hnode *n)
{
    size_t i = n->h & (m->nb - 1);
    n->next = m->b[i];
    m->b[i] = n;
    m->n++;
}

void lt_hmap_del(lt_hmap *m, lt_hnode *n)
{
    lt_hnode **pp = &m->b[n->h & (m->nb - 1)];
    while (*pp && *pp != n) pp = &(*pp)->next;
    assert(*pp == n);
    *pp = n->next;
    n->next = NULL;
    m->n--;
}

lt_hnode *lt_hmap_chain(const lt_hmap *m, uint64_t h)
{
    return m->b[h & (m->nb - 1)];
}
