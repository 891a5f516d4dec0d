/* The bank and set checkers: invariants over snapshot reads, no search.
 *
 * Bank: transfers move money between accounts and never create or destroy
 * it, so every snapshot read (`balances`) must sum to the fixed total, and
 * no balance may be negative when the workload forbids overdrafts. The last
 * read is the "final total" check; it is one of the reads checked.
 *
 * Set: the final read (the ok `members` read invoked last) must hold every
 * insert acknowledged before it was invoked; an insert still running when it
 * was invoked may go either way. */
#include <stdlib.h>
#include <string.h>

#include "tests/jepsen/jp_check.h"

static int i64_cmp(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int jp_check_bank(const jp_history *h, const jp_bank_opts *opts, jp_report *r, merr *e)
{
    jp_bank_opts o = opts ? *opts : (jp_bank_opts){0};
    const jp_call *first = NULL, *last = NULL;
    size_t nreads = 0, other = 0;
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_call *c = &h->calls[i];
        const jp_op *op = jp_call_op(h, c);
        if (op->f == JP_F_TRANSFER) continue;
        if (op->f != JP_F_BALANCES) {
            other++;
            continue;
        }
        if (c->type != JP_OK) continue;
        nreads++;
        if (!first || c->t_inv < first->t_inv) first = c;
        if (!last || c->t_inv > last->t_inv) last = c;
    }
    if (other) jp_report_unknown(r, "%zu operations are not transfers or balances; ignored", other);
    if (!nreads) {
        jp_report_unknown(r, "no successful balances read");
        return 0;
    }
    const jp_op *f0 = jp_call_op(h, first);
    int64_t total = o.total;
    if (!o.has_total) {
        total = 0;
        for (size_t j = 1; j < f0->v1.n; j += 2)
            if (__builtin_add_overflow(total, f0->v1.items[j], &total)) {
                jp_report_add(r, JP_A_WRONG_TOTAL, "line %zu: the balances overflow", f0->line);
                return 0;
            }
    }
    /* Every snapshot covers the same accounts: the earliest read's. A read
     * that misses an account with a zero balance still sums right. */
    size_t nref = f0->v1.n / 2;
    int64_t *ref = malloc((nref + 1) * sizeof(int64_t));
    if (!ref) return merr_set(e, MERR_NOMEM, "bank: out of memory");
    for (size_t j = 0; j < nref; j++) ref[j] = f0->v1.items[2 * j];
    qsort(ref, nref, sizeof(int64_t), i64_cmp);
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_call *c = &h->calls[i];
        const jp_op *op = jp_call_op(h, c);
        if (op->f != JP_F_BALANCES || c->type != JP_OK) continue;
        size_t np = op->v1.n / 2;
        int64_t sum = 0;
        int overflow = 0;
        int64_t *ids = malloc((np + 1) * sizeof(int64_t));
        if (!ids) {
            free(ref);
            return merr_set(e, MERR_NOMEM, "bank: out of memory");
        }
        for (size_t j = 0; j < np; j++) {
            int64_t acct = op->v1.items[2 * j], bal = op->v1.items[2 * j + 1];
            ids[j] = acct;
            overflow |= __builtin_add_overflow(sum, bal, &sum);
            if (bal < 0 && !o.negative_ok)
                jp_report_add(r, JP_A_NEGATIVE, "line %zu: account %lld has balance %lld", op->line,
                              (long long)acct, (long long)bal);
        }
        qsort(ids, np, sizeof(int64_t), i64_cmp);
        for (size_t j = 1; j < np; j++)
            if (ids[j] == ids[j - 1])
                jp_report_add(r, JP_A_DUPLICATE, "line %zu: account %lld read twice", op->line,
                              (long long)ids[j]);
        if (np != nref || (np && memcmp(ids, ref, np * sizeof(int64_t))))
            jp_report_add(r, JP_A_UNEXPECTED,
                          "line %zu: reads other accounts than the earliest read (line %zu)",
                          op->line, f0->line);
        free(ids);
        if (overflow || sum != total)
            jp_report_add(r, JP_A_WRONG_TOTAL, "line %zu%s: balances sum to %s%lld, not %lld",
                          op->line, c == last ? " (final read)" : "", overflow ? "(overflow) " : "",
                          (long long)sum, (long long)total);
    }
    free(ref);
    (void)mbuf_printf(&r->text, "summary: %zu snapshot reads, total %lld%s\n", nreads,
                      (long long)total, o.has_total ? "" : " (from the earliest read)");
    return 0;
}

typedef struct ins {
    int64_t v;
    const jp_call *c;
} ins;

static int ins_cmp(const void *a, const void *b)
{
    return i64_cmp(&((const ins *)a)->v, &((const ins *)b)->v);
}

int jp_check_set(const jp_history *h, jp_report *r, merr *e)
{
    const jp_call *fin = NULL;
    size_t n = 0, other = 0;
    ins *v = calloc(h->ncalls + 1, sizeof(ins));
    if (!v) return merr_set(e, MERR_NOMEM, "set: out of memory");
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_call *c = &h->calls[i];
        const jp_op *op = jp_call_op(h, c);
        if (op->f == JP_F_INSERT)
            v[n++] = (ins){op->v1.i, c};
        else if (op->f == JP_F_MEMBERS && c->type == JP_OK && op->v1.kind != JP_V_NONE) {
            if (!fin || c->t_inv > fin->t_inv) fin = c;
        } else if (op->f != JP_F_MEMBERS)
            other++;
    }
    if (other) jp_report_unknown(r, "%zu operations are not inserts or members; ignored", other);
    if (!fin) {
        jp_report_unknown(r, "no successful members read");
        free(v);
        return 0;
    }
    const jp_op *fop = jp_call_op(h, fin);
    size_t nm = fop->v1.kind == JP_V_LIST ? fop->v1.n : 0;
    int64_t *m = malloc((nm + 1) * sizeof(int64_t));
    if (!m) {
        free(v);
        return merr_set(e, MERR_NOMEM, "set: out of memory");
    }
    if (nm) memcpy(m, fop->v1.items, nm * sizeof(int64_t));
    qsort(m, nm, sizeof(int64_t), i64_cmp);
    qsort(v, n, sizeof(ins), ins_cmp);
    size_t ok = 0, lost = 0;
    for (size_t i = 0; i < nm; i++) {
        if (i && m[i] == m[i - 1]) {
            jp_report_add(r, JP_A_DUPLICATE, "final read (line %zu) holds %lld twice", fop->line,
                          (long long)m[i]);
            continue;
        }
        ins key = {.v = m[i]};
        ins *p = bsearch(&key, v, n, sizeof(ins), ins_cmp);
        int any_ok = 0, any_info = 0;
        while (p && p > v && p[-1].v == m[i]) p--;
        for (; p && p < v + n && p->v == m[i]; p++) {
            any_ok |= p->c->type == JP_OK;
            any_info |= p->c->type == JP_INFO;
        }
        if (!any_ok && any_info)
            jp_report_add(r, JP_A_RECOVERED, "%lld: indeterminate insert present", (long long)m[i]);
        else if (!any_ok)
            jp_report_add(r, JP_A_UNEXPECTED, "%lld is in the final read (line %zu) but was %s",
                          (long long)m[i], fop->line,
                          p == NULL ? "never inserted" : "never successfully inserted");
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].c->type != JP_OK) continue;
        ok++;
        if (bsearch(&v[i].v, m, nm, sizeof(int64_t), i64_cmp)) continue;
        if (v[i].c->t_done < fin->t_inv) {
            lost++;
            jp_report_add(r, JP_A_LOST,
                          "%lld: acknowledged (line %zu) before the final read (line %zu) began, "
                          "but absent from it",
                          (long long)v[i].v, h->ops[v[i].c->done].line, fop->line);
        } else {
            jp_report_add(r, JP_A_INDETERMINATE, "%lld: acknowledged while the final read ran",
                          (long long)v[i].v);
        }
    }
    (void)mbuf_printf(&r->text, "summary: %zu acknowledged inserts, %zu lost, final read of %zu\n",
                      ok, lost, nm);
    free(m);
    free(v);
    return 0;
}
