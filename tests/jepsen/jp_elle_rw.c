/* Elle-style checker for read-write registers: txns of [r k v] and [w k v]
 * with values unique per key (Kingsbury & Alvaro, §4 "rw-register").
 *
 * A read of a register shows one version, not a history, so the version
 * order is only partly known. What is inferred here:
 *  - nil, the initial version, precedes every written one;
 *  - writes follow reads: a txn that read v1 from outside and then wrote v2
 *    puts v1 before v2 (serializability gives it no other place);
 *  - a txn that wrote v1 and then v2 puts v1 before v2.
 * Each inferred pair u < v gives ww W(u) -> W(v) and rw R -> W(v) for every
 * external reader R of u; a reader of nil gets rw edges to the writers of
 * the versions with no inferred non-nil predecessor (every other version is
 * reached from those through ww edges). Each external read of v gives wr
 * W(v) -> R. Non-adjacent pairs give edges Adya's graph implies through
 * paths of the same kinds, so a cycle here is a cycle there, of the same
 * class. Real-time edges and cycle classes are shared with list-append.
 *
 * Direct anomalies: G1a (a read of a failed txn's write), G1b (a read of a
 * txn's non-final write to the key), garbage reads, internal (a txn's read
 * that disagrees with its own earlier read or write of the key). */
#include <stdlib.h>
#include <string.h>

#include "tests/jepsen/jp_check.h"
#include "tests/jepsen/jp_graph.h"

typedef struct wr_rec { /* one write */
    int64_t key, val;
    int call;
    int is_final;
    int has_pred; /* some non-nil version is inferred before it */
} wr_rec;

typedef struct pair { /* from < to on key; from_nil: from is nil */
    int64_t key, from, to;
    int from_nil;
} pair;

typedef struct xread { /* an external read in an ok txn */
    int64_t key, val;
    int nil;
    int call;
} xread;

typedef struct rwc {
    const jp_history *h;
    jp_report *r;
    wr_rec *w;
    size_t nw;
    pair *p;
    size_t np;
    xread *x;
    size_t nx;
    char *committed;
} rwc;

static int wr_cmp(const void *a, const void *b)
{
    const wr_rec *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->val > y->val) - (x->val < y->val);
}

static wr_rec *find_w(const rwc *c, int64_t key, int64_t val)
{
    wr_rec k = {.key = key, .val = val};
    return bsearch(&k, c->w, c->nw, sizeof(wr_rec), wr_cmp);
}

static int pair_cmp(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    if (x->from_nil != y->from_nil) return y->from_nil - x->from_nil;
    if (x->from != y->from) return x->from < y->from ? -1 : 1;
    return (x->to > y->to) - (x->to < y->to);
}

static size_t line_of(const rwc *c, int call)
{
    return jp_call_op(c->h, &c->h->calls[call])->line;
}

/* Gathers writes (all txns) and, for ok txns, external reads and pairs. */
static int collect(rwc *c, merr *e)
{
    const jp_history *h = c->h;
    size_t nm = 0, other = 0;
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_op *op = jp_call_op(h, &h->calls[i]);
        int txn = op->f == JP_F_TXN || op->f == JP_F_APPEND;
        other += !txn;
        nm += txn ? op->nmops : 0;
    }
    if (other) jp_report_unknown(c->r, "%zu operations are not txns; ignored", other);
    c->w = calloc(nm + 1, sizeof(wr_rec));
    c->p = calloc(nm + 1, sizeof(pair));
    c->x = calloc(nm + 1, sizeof(xread));
    c->committed = calloc(h->ncalls + 1, 1);
    if (!c->w || !c->p || !c->x || !c->committed)
        return merr_set(e, MERR_NOMEM, "rw-register: out of memory");
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_call *call = &h->calls[i];
        const jp_op *op = jp_call_op(h, call);
        if (op->f != JP_F_TXN && op->f != JP_F_APPEND) continue;
        c->committed[i] = call->type == JP_OK;
        for (size_t j = 0; j < op->nmops; j++) {
            const jp_mop *m = &op->mops[j];
            if (m->kind == JP_MOP_APPEND)
                return merr_set(e, MERR_INVALID,
                                "line %zu: rw-register histories have no [append] micro-ops",
                                op->line);
            if (m->kind == JP_MOP_R && call->type == JP_OK && m->val.kind == JP_V_LIST)
                return merr_set(e, MERR_INVALID, "line %zu: rw-register reads return one value",
                                op->line);
            if (m->kind != JP_MOP_W) continue;
            int final = 1;
            for (size_t q = j + 1; q < op->nmops; q++)
                final &= !(op->mops[q].kind == JP_MOP_W && op->mops[q].key == m->key);
            c->w[c->nw++] = (wr_rec){m->key, m->val.i, (int)i, final, 0};
        }
        if (call->type != JP_OK) continue;
        /* Walk the txn: the latest own read/write of each key decides. */
        for (size_t j = 0; j < op->nmops; j++) {
            const jp_mop *m = &op->mops[j];
            const jp_mop *prev = NULL;
            for (size_t q = j; q-- > 0;)
                if (op->mops[q].key == m->key && op->mops[q].val.kind != JP_V_NONE) {
                    prev = &op->mops[q];
                    break;
                }
            if (m->kind == JP_MOP_R) {
                if (m->val.kind == JP_V_NONE) continue;
                if (prev) {
                    int same = prev->val.kind == m->val.kind &&
                               (m->val.kind == JP_V_NIL || prev->val.i == m->val.i);
                    if (!same)
                        jp_report_add(c->r, JP_A_INTERNAL,
                                      "key %lld: line %zu micro-op %zu reads a value that does not "
                                      "follow from the txn's own earlier operations",
                                      (long long)m->key, op->line, j + 1);
                    continue;
                }
                c->x[c->nx++] = (xread){m->key, m->val.i, m->val.kind == JP_V_NIL, (int)i};
            } else if (prev) {
                c->p[c->np++] = (pair){m->key, prev->val.i, m->val.i, prev->val.kind == JP_V_NIL};
            }
        }
    }
    qsort(c->w, c->nw, sizeof(wr_rec), wr_cmp);
    for (size_t i = 1; i < c->nw; i++)
        if (c->w[i].key == c->w[i - 1].key && c->w[i].val == c->w[i - 1].val)
            return merr_set(e, MERR_INVALID,
                            "lines %zu and %zu both write %lld to key %lld: written values "
                            "must be unique per key",
                            line_of(c, c->w[i - 1].call), line_of(c, c->w[i].call),
                            (long long)c->w[i].val, (long long)c->w[i].key);
    qsort(c->p, c->np, sizeof(pair), pair_cmp);
    for (size_t i = 0; i < c->np; i++) {
        wr_rec *t = find_w(c, c->p[i].key, c->p[i].to);
        if (t && !c->p[i].from_nil) t->has_pred = 1;
    }
    return 0;
}

static void direct(rwc *c)
{
    for (size_t i = 0; i < c->nx; i++) {
        const xread *x = &c->x[i];
        if (x->nil) continue;
        size_t line = line_of(c, x->call);
        const wr_rec *w = find_w(c, x->key, x->val);
        if (!w) {
            jp_report_add(c->r, JP_A_GARBAGE, "key %lld: line %zu reads %lld, which nobody wrote",
                          (long long)x->key, line, (long long)x->val);
            continue;
        }
        jp_type t = c->h->calls[w->call].type;
        if (t == JP_FAIL)
            jp_report_add(c->r, JP_A_G1A,
                          "key %lld: line %zu reads %lld, written by the failed txn at line %zu",
                          (long long)x->key, line, (long long)x->val, line_of(c, w->call));
        if (!w->is_final && w->call != x->call)
            jp_report_add(c->r, JP_A_G1B,
                          "key %lld: line %zu reads %lld, an intermediate write of the txn at "
                          "line %zu",
                          (long long)x->key, line, (long long)x->val, line_of(c, w->call));
        if (t == JP_INFO) c->committed[w->call] = 1;
    }
}

/* The writer of (key, val) if it is committed, else -1. */
static int writer(const rwc *c, int64_t key, int64_t val)
{
    const wr_rec *w = find_w(c, key, val);
    return w && c->committed[w->call] ? w->call : -1;
}

static int edges(rwc *c, jp_graph *g, int realtime, int process_order)
{
    int rc = 0;
    for (size_t i = 0; i < c->np && rc == 0; i++) { /* ww */
        const pair *p = &c->p[i];
        int a = p->from_nil ? -1 : writer(c, p->key, p->from), b = writer(c, p->key, p->to);
        if (a >= 0 && b >= 0) rc = jp_graph_add(g, a, b, JP_E_WW, p->key);
    }
    for (size_t i = 0; i < c->nx && rc == 0; i++) {
        const xread *x = &c->x[i];
        if (!x->nil) { /* wr */
            int a = writer(c, x->key, x->val);
            if (a >= 0) rc = jp_graph_add(g, a, x->call, JP_E_WR, x->key);
        }
        /* rw: to the writers of the versions inferred after the one read. */
        pair k = {.key = x->key, .from = x->nil ? 0 : x->val, .from_nil = x->nil, .to = INT64_MIN};
        size_t lo = 0, hi = c->np;
        while (lo < hi) { /* first pair >= k */
            size_t mid = (lo + hi) / 2;
            if (pair_cmp(&c->p[mid], &k) < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t j = lo; j < c->np && rc == 0; j++) {
            const pair *p = &c->p[j];
            if (p->key != x->key || p->from_nil != x->nil || (!x->nil && p->from != x->val)) break;
            int b = writer(c, p->key, p->to);
            if (b >= 0) rc = jp_graph_add(g, x->call, b, JP_E_RW, x->key);
        }
        if (!x->nil) continue;
        lo = 0, hi = c->nw;
        while (lo < hi) { /* first write of the key */
            size_t mid = (lo + hi) / 2;
            if (c->w[mid].key < x->key)
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t j = lo; j < c->nw && c->w[j].key == x->key && rc == 0; j++) {
            const wr_rec *w = &c->w[j]; /* nil precedes the first versions */
            if (!w->has_pred && c->committed[w->call])
                rc = jp_graph_add(g, x->call, w->call, JP_E_RW, x->key);
        }
    }
    if (rc == 0 && process_order) rc = jp_graph_add_process_order(g, c->h, c->committed);
    if (rc || !realtime) return rc;
    return jp_graph_add_realtime(g, c->h, c->committed);
}

int jp_check_rw_register(const jp_history *h, const jp_elle_opts *opts, jp_report *r, merr *e)
{
    jp_elle_opts o = opts ? *opts : (jp_elle_opts){0};
    if (!o.max_cycle_starts) o.max_cycle_starts = 256;
    rwc c = {.h = h, .r = r};
    jp_graph g;
    jp_graph_init(&g, (int)h->ncalls);
    int rc = collect(&c, e);
    if (rc) goto out;
    direct(&c);
    if ((rc = edges(&c, &g, !o.no_realtime, o.process_order)) || (rc = jp_graph_build(&g)) ||
        (rc = jp_graph_report_cycles(&g, h, o.max_cycle_starts, r)))
        merr_set(e, rc, "rw-register: out of memory");
    else
        jp_graph_report_summary(&g, h, r);
out:
    jp_graph_free(&g);
    free(c.w);
    free(c.p);
    free(c.x);
    free(c.committed);
    return rc;
}
