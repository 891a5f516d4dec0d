/* Anomaly injectors for simulated histories (jp_sim.h). Each one relies on
 * the simulator's unique values to make a change that no correct system
 * could have produced, so a checker that misses it is wrong. */
#include <stdlib.h>
#include <string.h>

#include "tests/jepsen/jp_sim.h"

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static jp_op *done_op(jp_history *h, const jp_call *c)
{
    return &h->ops[c->done];
}

/* Candidates are visited from a seed-chosen start so that different seeds
 * inject at different places. */
#define FOR_CALLS(h, seed, var)                                                                    \
    for (size_t _k = 0, _s = (h)->ncalls ? mix(seed) % (h)->ncalls : 0; _k < (h)->ncalls; _k++)    \
        for (const jp_call *var = &(h)->calls[(_s + _k) % (h)->ncalls]; var; var = NULL)

static int writes_reg(const jp_op *op)
{
    return op->f == JP_F_WRITE || op->f == JP_F_CAS;
}

static int64_t written(const jp_op *op)
{
    return op->f == JP_F_WRITE ? op->v1.i : op->v2.i;
}

int jp_inject_stale_read(jp_history *h, uint64_t seed)
{
    FOR_CALLS(h, seed, rc)
    {
        jp_op *r = rc->type == JP_OK ? done_op(h, rc) : NULL;
        if (!r || r->f != JP_F_READ) continue;
        /* w2: an ok write that completed before the read began. */
        for (size_t j = 0; j < h->ncalls; j++) {
            const jp_call *c2 = &h->calls[j];
            const jp_op *w2 = jp_call_op(h, c2);
            if (c2->type != JP_OK || !writes_reg(w2) || w2->key != r->key ||
                c2->t_done >= rc->t_inv)
                continue;
            /* A value written by an ok op that completed before w2 began is
             * overwritten for good (values are unique): stale. */
            for (size_t k = 0; k < h->ncalls; k++) {
                const jp_call *c1 = &h->calls[k];
                const jp_op *w1 = jp_call_op(h, c1);
                if (c1->type != JP_OK || !writes_reg(w1) || w1->key != r->key ||
                    c1->t_done >= c2->t_inv)
                    continue;
                if (r->v1.kind == JP_V_INT && r->v1.i == written(w1)) continue;
                r->v1 = (jp_val){.kind = JP_V_INT, .i = written(w1)};
                return 0;
            }
            r->v1 = (jp_val){.kind = JP_V_NIL}; /* nil after a completed write */
            return 0;
        }
    }
    return MERR_NOTFOUND;
}

/* The txn that appended (key, val), or NULL. */
static const jp_call *appender(const jp_history *h, int64_t key, int64_t val)
{
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_op *op = &h->ops[h->calls[i].inv];
        for (size_t j = 0; j < op->nmops; j++)
            if (op->mops[j].kind == JP_MOP_APPEND && op->mops[j].key == key &&
                op->mops[j].val.i == val)
                return &h->calls[i];
    }
    return NULL;
}

static void remove_item(jp_val *v, int64_t x)
{
    size_t k = 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->items[i] != x) v->items[k++] = v->items[i];
    v->n = k;
}

int jp_inject_lost_append(jp_history *h, uint64_t seed)
{
    FOR_CALLS(h, seed, rc)
    {
        if (rc->type != JP_OK) continue;
        const jp_op *r = done_op(h, rc);
        for (size_t i = 0; i < r->nmops; i++) {
            const jp_mop *m = &r->mops[i];
            if (m->kind != JP_MOP_R || m->val.kind != JP_V_LIST) continue;
            for (size_t j = 0; j < m->val.n; j++) {
                const jp_call *a = appender(h, m->key, m->val.items[j]);
                if (!a || a == rc || a->type != JP_OK || a->t_done >= rc->t_inv) continue;
                /* Acknowledged before this read began: now nobody sees it. */
                int64_t key = m->key, val = m->val.items[j];
                for (size_t c = 0; c < h->n; c++)
                    for (size_t q = 0; q < h->ops[c].nmops; q++) {
                        jp_mop *x = &h->ops[c].mops[q];
                        if (x->kind == JP_MOP_R && x->key == key && x->val.kind == JP_V_LIST)
                            remove_item(&x->val, val);
                    }
                return 0;
            }
        }
    }
    return MERR_NOTFOUND;
}

int jp_inject_stale_list_read(jp_history *h, uint64_t seed)
{
    FOR_CALLS(h, seed, rc)
    {
        if (rc->type != JP_OK) continue;
        jp_op *r = done_op(h, rc);
        for (size_t i = 0; i < r->nmops; i++) {
            jp_mop *m = &r->mops[i];
            if (m->kind != JP_MOP_R || m->val.kind != JP_V_LIST) continue;
            for (size_t j = m->val.n; j-- > 0;) {
                const jp_call *a = appender(h, m->key, m->val.items[j]);
                if (!a || a == rc || a->type != JP_OK || a->t_done >= rc->t_inv) continue;
                m->val.n = j; /* the read stops before an append it must see */
                return 0;
            }
        }
    }
    return MERR_NOTFOUND;
}

/* 1 if some ok txn other than `not` reads (key, val). */
static int read_by_other(const jp_history *h, const jp_call * not, int64_t key, int64_t val)
{
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_call *c = &h->calls[i];
        if (c == not || c->type != JP_OK) continue;
        const jp_op *op = &h->ops[c->done];
        for (size_t j = 0; j < op->nmops; j++)
            if (op->mops[j].kind == JP_MOP_R && op->mops[j].key == key &&
                op->mops[j].val.kind == JP_V_INT && op->mops[j].val.i == val)
                return 1;
    }
    return 0;
}

int jp_inject_aborted_read(jp_history *h, uint64_t seed)
{
    FOR_CALLS(h, seed, wc)
    {
        if (wc->type != JP_OK) continue;
        jp_op *w = done_op(h, wc);
        for (size_t i = 0; i < w->nmops; i++) {
            const jp_mop *m = &w->mops[i];
            if (m->kind != JP_MOP_W || !read_by_other(h, wc, m->key, m->val.i)) continue;
            w->type = JP_FAIL;
            return jp_history_index(h, NULL);
        }
    }
    return MERR_NOTFOUND;
}

int jp_inject_stale_nil_read(jp_history *h, uint64_t seed)
{
    FOR_CALLS(h, seed, rc)
    {
        if (rc->type != JP_OK) continue;
        jp_op *r = done_op(h, rc);
        for (size_t i = 0; i < r->nmops; i++) {
            jp_mop *m = &r->mops[i];
            int first = 1;
            for (size_t q = 0; q < i; q++) first &= r->mops[q].key != m->key;
            if (m->kind != JP_MOP_R || m->val.kind != JP_V_INT || !first) continue;
            for (size_t j = 0; j < h->ncalls; j++) {
                const jp_call *wc = &h->calls[j];
                if (wc == rc || wc->type != JP_OK || wc->t_done >= rc->t_inv) continue;
                const jp_op *w = jp_call_op(h, wc);
                for (size_t q = 0; q < w->nmops; q++)
                    if (w->mops[q].kind == JP_MOP_W && w->mops[q].key == m->key) {
                        m->val.kind = JP_V_NIL;
                        return 0;
                    }
            }
        }
    }
    return MERR_NOTFOUND;
}

int jp_inject_bank_skew(jp_history *h, uint64_t seed)
{
    FOR_CALLS(h, seed, rc)
    {
        if (rc->type != JP_OK) continue;
        jp_op *r = done_op(h, rc);
        if (r->f != JP_F_BALANCES || r->v1.n < 2) continue;
        size_t pairs = r->v1.n / 2;
        r->v1.items[2 * (mix(seed + 1) % pairs) + 1] += 1;
        return 0;
    }
    return MERR_NOTFOUND;
}

int jp_inject_lost_insert(jp_history *h, uint64_t seed)
{
    /* The final read is the ok members read invoked last. */
    const jp_call *fin = NULL;
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_call *c = &h->calls[i];
        if (c->type == JP_OK && h->ops[c->inv].f == JP_F_MEMBERS && (!fin || c->t_inv > fin->t_inv))
            fin = c;
    }
    if (!fin) return MERR_NOTFOUND;
    jp_op *r = done_op(h, fin);
    FOR_CALLS(h, seed, c)
    {
        const jp_op *ins = jp_call_op(h, c);
        if (c->type != JP_OK || ins->f != JP_F_INSERT || c->t_done >= fin->t_inv) continue;
        size_t before = r->v1.n;
        remove_item(&r->v1, ins->v1.i);
        if (r->v1.n < before) return 0;
    }
    return MERR_NOTFOUND;
}
