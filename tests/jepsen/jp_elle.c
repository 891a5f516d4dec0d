/* Elle-style checker for list-append transactions (Kingsbury & Alvaro,
 * "Elle: Inferring Isolation Anomalies from Experimental Observations").
 *
 * Appended values are unique per key, so every element of a read names the
 * transaction that appended it (recoverability), and a read of a list shows
 * the whole order of the appends it contains (traceability). From that:
 *  1. per key, the longest read is the version order; every other read must
 *     be a prefix of it (else: incompatible-order);
 *  2. direct anomalies: elements nobody appended (garbage-read), appended by
 *     a failed txn (G1a), a read ending at a txn's non-final append to the
 *     key (G1b), an element twice (duplicate), a txn's read that disagrees
 *     with its own earlier reads and appends (internal), an acknowledged
 *     append missing from a read that began after it completed (lost);
 *  3. the dependency graph over committed txns (ok, or info whose appends
 *     were read): ww between consecutive appends of the version order, wr
 *     from the appender of the last element a txn read to the reader, rw
 *     from a reader to the appender of the element after what it read, and
 *     real-time edges A -> B when A completed before B was invoked (a
 *     transitive reduction kept by a frontier of recently completed txns);
 *  4. cycles, per strongly connected component: G0 (ww only), G1c (ww/wr
 *     with a wr), G-single (exactly one rw), G2 (two or more rw), and
 *     realtime (a cycle through a real-time edge: serializable, perhaps,
 *     but not strictly). Each class is reported once per component with its
 *     shortest cycle found. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "tests/jepsen/jp_check.h"
#include "tests/jepsen/jp_graph.h"

typedef struct app { /* one append */
    int64_t key, val;
    int call;     /* index into h->calls */
    int is_final; /* the txn's last append to this key */
    size_t seen;  /* 1 + the last read that contained it (duplicate check) */
} app;

typedef struct rd { /* one ok read of a list */
    int64_t key;
    int call;
    size_t mop;
    const int64_t *items;
    size_t n;
} rd;

typedef struct kinfo { /* per key */
    int64_t key;
    const rd *longest;
    int64_t last_reader_inv; /* latest invocation of an ok reader of the key */
    size_t last_reader_line;
} kinfo;

typedef struct elle {
    const jp_history *h;
    jp_report *r;
    app *apps;
    size_t napps;
    rd *reads;
    size_t nreads;
    kinfo *keys;
    size_t nkeys;
    char *committed; /* per call */
} elle;

static int app_cmp(const void *a, const void *b)
{
    const app *x = a, *y = b;
    if (x->key != y->key) return x->key < y->key ? -1 : 1;
    return (x->val > y->val) - (x->val < y->val);
}

static app *find_app(const elle *el, int64_t key, int64_t val)
{
    app k = {.key = key, .val = val};
    return bsearch(&k, el->apps, el->napps, sizeof(app), app_cmp);
}

static int key_cmp(const void *a, const void *b)
{
    const kinfo *x = a, *y = b;
    return (x->key > y->key) - (x->key < y->key);
}

static kinfo *find_key(const elle *el, int64_t key)
{
    kinfo k = {.key = key};
    return bsearch(&k, el->keys, el->nkeys, sizeof(kinfo), key_cmp);
}

static const jp_op *call_op(const elle *el, int call)
{
    return jp_call_op(el->h, &el->h->calls[call]);
}

static size_t call_line(const elle *el, int call)
{
    return call_op(el, call)->line;
}

static int is_txn(const jp_op *op)
{
    return op->f == JP_F_TXN || op->f == JP_F_APPEND;
}

/* Gathers appends and reads; checks duplicate appended values. */
static int collect(elle *el, merr *e)
{
    const jp_history *h = el->h;
    size_t na = 0, nr = 0, other = 0;
    for (size_t c = 0; c < h->ncalls; c++) {
        const jp_op *op = jp_call_op(h, &h->calls[c]);
        if (!is_txn(op)) {
            other++;
            continue;
        }
        for (size_t i = 0; i < op->nmops; i++) {
            na += op->mops[i].kind == JP_MOP_APPEND;
            nr += op->mops[i].kind == JP_MOP_R;
        }
    }
    if (other) jp_report_unknown(el->r, "%zu operations are not txns; ignored", other);
    el->apps = calloc(na + 1, sizeof(app));
    el->reads = calloc(nr + 1, sizeof(rd));
    el->keys = calloc(na + nr + 1, sizeof(kinfo));
    el->committed = calloc(h->ncalls + 1, 1);
    if (!el->apps || !el->reads || !el->keys || !el->committed)
        return merr_set(e, MERR_NOMEM, "list-append: out of memory");
    static const int64_t empty[1] = {0};
    for (size_t c = 0; c < h->ncalls; c++) {
        const jp_call *call = &h->calls[c];
        const jp_op *op = jp_call_op(h, call);
        if (!is_txn(op)) continue;
        el->committed[c] = call->type == JP_OK;
        for (size_t i = 0; i < op->nmops; i++) {
            const jp_mop *m = &op->mops[i];
            if (m->kind == JP_MOP_W)
                return merr_set(e, MERR_INVALID,
                                "line %zu: list-append histories have no [w] micro-ops", op->line);
            el->keys[el->nkeys++].key = m->key;
            if (m->kind == JP_MOP_APPEND) {
                int final = 1;
                for (size_t j = i + 1; j < op->nmops; j++)
                    if (op->mops[j].kind == JP_MOP_APPEND && op->mops[j].key == m->key) final = 0;
                el->apps[el->napps++] = (app){m->key, m->val.i, (int)c, final, 0};
            } else if (call->type == JP_OK && m->val.kind == JP_V_LIST) {
                el->reads[el->nreads++] = (rd){m->key, (int)c, i, m->val.items, m->val.n};
            } else if (call->type == JP_OK && m->val.kind == JP_V_NIL) {
                el->reads[el->nreads++] = (rd){m->key, (int)c, i, empty, 0};
            }
        }
    }
    qsort(el->apps, el->napps, sizeof(app), app_cmp);
    for (size_t i = 1; i < el->napps; i++)
        if (el->apps[i].key == el->apps[i - 1].key && el->apps[i].val == el->apps[i - 1].val)
            return merr_set(e, MERR_INVALID,
                            "lines %zu and %zu both append %lld to key %lld: appended values "
                            "must be unique per key",
                            call_line(el, el->apps[i - 1].call), call_line(el, el->apps[i].call),
                            (long long)el->apps[i].val, (long long)el->apps[i].key);
    qsort(el->keys, el->nkeys, sizeof(kinfo), key_cmp);
    size_t k = 0;
    for (size_t i = 0; i < el->nkeys; i++)
        if (k == 0 || el->keys[k - 1].key != el->keys[i].key) el->keys[k++] = el->keys[i];
    el->nkeys = k;
    for (size_t i = 0; i < el->nkeys; i++) el->keys[i].last_reader_inv = INT64_MIN;
    return 0;
}

static int is_prefix(const rd *a, const rd *b) /* a is a prefix of b */
{
    return a->n <= b->n && (a->n == 0 || memcmp(a->items, b->items, a->n * sizeof(int64_t)) == 0);
}

/* Version orders, and the anomalies visible from single reads. */
static void orders_and_direct(elle *el)
{
    for (size_t i = 0; i < el->nreads; i++) {
        const rd *x = &el->reads[i];
        kinfo *k = find_key(el, x->key);
        if (!k->longest || x->n > k->longest->n) k->longest = x;
        const jp_call *c = &el->h->calls[x->call];
        if (c->t_inv > k->last_reader_inv) {
            k->last_reader_inv = c->t_inv;
            k->last_reader_line = call_line(el, x->call);
        }
    }
    for (size_t i = 0; i < el->nreads; i++) {
        const rd *x = &el->reads[i];
        kinfo *k = find_key(el, x->key);
        size_t line = call_line(el, x->call);
        int prefix = is_prefix(x, k->longest);
        if (!prefix)
            jp_report_add(el->r, JP_A_INCOMPATIBLE,
                          "key %lld: read at line %zu is not a prefix of the read at line %zu",
                          (long long)x->key, line, call_line(el, k->longest->call));
        /* A prefix of the longest read holds nothing the longest does not,
         * so only its last element (G1b) needs a look: this keeps the cost
         * linear in the longest reads rather than in all elements read. */
        size_t from = prefix && x != k->longest && x->n ? x->n - 1 : 0;
        for (size_t j = from; j < x->n; j++) {
            app *a = find_app(el, x->key, x->items[j]);
            if (a && a->seen == i + 1) {
                jp_report_add(el->r, JP_A_DUPLICATE, "key %lld: line %zu reads %lld twice",
                              (long long)x->key, line, (long long)x->items[j]);
                continue;
            }
            if (a) a->seen = i + 1;
            if (!a) {
                jp_report_add(el->r, JP_A_GARBAGE,
                              "key %lld: line %zu reads %lld, which nobody appended",
                              (long long)x->key, line, (long long)x->items[j]);
                continue;
            }
            const jp_call *w = &el->h->calls[a->call];
            if (w->type == JP_FAIL)
                jp_report_add(el->r, JP_A_G1A,
                              "key %lld: line %zu reads %lld, appended by the failed txn at "
                              "line %zu",
                              (long long)x->key, line, (long long)a->val, call_line(el, a->call));
            if (j + 1 == x->n && !a->is_final && a->call != x->call)
                jp_report_add(el->r, JP_A_G1B,
                              "key %lld: line %zu reads %lld, an intermediate append of the txn "
                              "at line %zu",
                              (long long)x->key, line, (long long)a->val, call_line(el, a->call));
            if (w->type == JP_INFO) el->committed[a->call] = 1;
        }
    }
    /* Lost: an ok append never read, though a read of its key began after
     * it had been acknowledged. (Every element read was marked `seen`: the
     * reads scanned in full hold all others.) */
    for (size_t i = 0; i < el->napps; i++) {
        const app *a = &el->apps[i];
        const jp_call *w = &el->h->calls[a->call];
        const kinfo *k = find_key(el, a->key);
        if (a->seen || w->type != JP_OK || k->last_reader_inv <= w->t_done) continue;
        jp_report_add(el->r, JP_A_LOST,
                      "key %lld: %lld appended by line %zu (acknowledged) is missing from the "
                      "read at line %zu, invoked later",
                      (long long)a->key, (long long)a->val, call_line(el, a->call),
                      k->last_reader_line);
    }
}

/* Internal consistency: within one txn, a read of a key shows the txn's
 * previous read of it plus its own appends since (or, with no previous
 * read, ends with its own appends so far). */
static void internal(elle *el)
{
    for (size_t c = 0; c < el->h->ncalls; c++) {
        const jp_op *op = call_op(el, (int)c);
        if (el->h->calls[c].type != JP_OK || !is_txn(op)) continue;
        for (size_t i = 0; i < op->nmops; i++) {
            const jp_mop *m = &op->mops[i];
            if (m->kind != JP_MOP_R || (m->val.kind != JP_V_LIST && m->val.kind != JP_V_NIL))
                continue;
            size_t rn = m->val.kind == JP_V_LIST ? m->val.n : 0;
            const jp_mop *prev = NULL;
            size_t nown = 0, start = 0;
            for (size_t j = i; j-- > 0;) {
                const jp_mop *p = &op->mops[j];
                if (p->key != m->key) continue;
                if (p->kind == JP_MOP_R && p->val.kind != JP_V_NONE) {
                    prev = p;
                    start = j + 1;
                    break;
                }
                if (p->kind == JP_MOP_APPEND) nown++;
            }
            size_t pn = prev && prev->val.kind == JP_V_LIST ? prev->val.n : 0;
            size_t want = prev ? pn + nown : nown;
            int okk = prev ? rn == want : rn >= want;
            if (okk && prev && pn && memcmp(prev->val.items, m->val.items, pn * 8)) okk = 0;
            size_t at = rn - nown;
            for (size_t j = start; okk && j < i; j++) {
                const jp_mop *p = &op->mops[j];
                if (p->kind == JP_MOP_APPEND && p->key == m->key)
                    okk = m->val.items[at++] == p->val.i;
            }
            if (!okk)
                jp_report_add(el->r, JP_A_INTERNAL,
                              "key %lld: line %zu micro-op %zu reads a list that does not follow "
                              "from the txn's own earlier operations",
                              (long long)m->key, op->line, i + 1);
        }
    }
}

/* ---- the graph ---- */

static int add_edges(elle *el, jp_graph *g, int realtime, int process_order)
{
    int rc = 0;
    for (size_t i = 0; i < el->nkeys && rc == 0; i++) { /* ww */
        const rd *l = el->keys[i].longest;
        for (size_t j = 0; l && j + 1 < l->n && rc == 0; j++) {
            const app *a = find_app(el, l->key, l->items[j]);
            const app *b = find_app(el, l->key, l->items[j + 1]);
            if (a && b && el->committed[a->call] && el->committed[b->call])
                rc = jp_graph_add(g, a->call, b->call, JP_E_WW, l->key);
        }
    }
    for (size_t i = 0; i < el->nreads && rc == 0; i++) { /* wr, rw */
        const rd *x = &el->reads[i];
        const rd *l = find_key(el, x->key)->longest;
        if (!is_prefix(x, l)) continue;
        for (size_t j = x->n; j-- > 0;) {
            const app *a = find_app(el, x->key, x->items[j]);
            if (!a || a->call == x->call) continue; /* skip the txn's own appends */
            if (el->committed[a->call]) rc = jp_graph_add(g, a->call, x->call, JP_E_WR, x->key);
            break;
        }
        if (rc || x->n >= l->n) continue;
        const app *nx = find_app(el, x->key, l->items[x->n]);
        if (nx && el->committed[nx->call]) rc = jp_graph_add(g, x->call, nx->call, JP_E_RW, x->key);
    }
    if (rc == 0 && process_order) rc = jp_graph_add_process_order(g, el->h, el->committed);
    if (rc || !realtime) return rc;
    return jp_graph_add_realtime(g, el->h, el->committed);
}

int jp_check_list_append(const jp_history *h, const jp_elle_opts *opts, jp_report *r, merr *e)
{
    jp_elle_opts o = opts ? *opts : (jp_elle_opts){0};
    if (!o.max_cycle_starts) o.max_cycle_starts = 256;
    elle el = {.h = h, .r = r};
    jp_graph g;
    jp_graph_init(&g, (int)h->ncalls);
    int rc = collect(&el, e);
    if (rc) goto out;
    orders_and_direct(&el);
    internal(&el);
    if ((rc = add_edges(&el, &g, !o.no_realtime, o.process_order)) || (rc = jp_graph_build(&g)) ||
        (rc = jp_graph_report_cycles(&g, h, o.max_cycle_starts, r))) {
        merr_set(e, rc, "list-append: out of memory");
        goto out;
    }
    jp_graph_report_summary(&g, h, r);
out:
    jp_graph_free(&g);
    free(el.apps);
    free(el.reads);
    free(el.keys);
    free(el.committed);
    return rc;
}
