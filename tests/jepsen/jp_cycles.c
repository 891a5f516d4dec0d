/* Shared by the Elle checkers: real-time edges between transactions and the
 * search for, and reporting of, classified cycles in a dependency graph. */
#include <stdlib.h>
#include <string.h>

#include "tests/jepsen/jp_graph.h"

struct rt_ev {
    int64_t t;
    int done;
    int call;
};

static int ev_cmp(const void *a, const void *b)
{
    const struct rt_ev *x = a, *y = b;
    if (x->t != y->t) return x->t < y->t ? -1 : 1;
    if (x->done != y->done) return x->done - y->done;
    return x->call - y->call;
}

/* Real-time: events in time order; invocations before completions at equal
 * times (a tie is concurrency). The frontier holds committed txns completed
 * and not yet known to precede a later completed txn; a new txn gets an edge
 * from each, which keeps the transitive reduction of real-time order. */
int jp_graph_add_realtime(jp_graph *g, const jp_history *h, const char *committed)
{
    int rc = 0;
    size_t nc = h->ncalls, nev = 0, nfront = 0;
    struct rt_ev *ev = malloc((2 * nc + 1) * sizeof(*ev));
    int *front = malloc((nc + 1) * sizeof(int));
    size_t *pstart = malloc((nc + 1) * sizeof(size_t)), *plen = calloc(nc + 1, sizeof(size_t));
    int *preds = NULL;
    size_t npreds = 0, cappreds = 0;
    char *infront = calloc(nc + 1, 1);
    if (!ev || !front || !pstart || !plen || !infront) {
        rc = MERR_NOMEM;
        goto out;
    }
    for (size_t c = 0; c < nc; c++) {
        if (!committed[c]) continue;
        ev[nev++] = (struct rt_ev){h->calls[c].t_inv, 0, (int)c};
        if (h->calls[c].type == JP_OK) ev[nev++] = (struct rt_ev){h->calls[c].t_done, 1, (int)c};
    }
    qsort(ev, nev, sizeof(*ev), ev_cmp);
    for (size_t i = 0; i < nev && rc == 0; i++) {
        int c = ev[i].call;
        if (!ev[i].done) {
            pstart[c] = npreds;
            for (size_t j = 0; j < nfront && rc == 0; j++) {
                if (npreds == cappreds) {
                    cappreds = cappreds ? cappreds * 2 : 256;
                    int *p = realloc(preds, cappreds * sizeof(int));
                    if (!p) {
                        rc = MERR_NOMEM;
                        break;
                    }
                    preds = p;
                }
                preds[npreds++] = front[j];
                rc = jp_graph_add(g, front[j], c, JP_E_RT, 0);
            }
            plen[c] = npreds - pstart[c];
            continue;
        }
        for (size_t j = 0; j < plen[c]; j++) infront[preds[pstart[c] + j]] = 0;
        size_t k = 0;
        for (size_t j = 0; j < nfront; j++)
            if (infront[front[j]]) front[k++] = front[j];
        nfront = k;
        front[nfront++] = c;
        infront[c] = 1;
    }
out:
    free(ev);
    free(front);
    free(pstart);
    free(plen);
    free(preds);
    free(infront);
    return rc;
}

static const char *ekind_name(int k)
{
    switch (k) {
    case JP_E_WW: return "ww";
    case JP_E_WR: return "wr";
    case JP_E_RW: return "rw";
    case JP_E_PO: return "po";
    default: return "rt";
    }
}

#define SHOW_EDGES 16 /* a longer cycle is shown by its first edges */

/* The class a cycle has by its edges alone. */
static jp_anomaly classify(const jp_graph *g, const size_t *path, int len)
{
    int nrw = 0, nwr = 0, nrt = 0, npo = 0;
    for (int i = 0; i < len; i++) {
        nrw += g->e[path[i]].kind == JP_E_RW;
        nwr += g->e[path[i]].kind == JP_E_WR;
        nrt += g->e[path[i]].kind == JP_E_RT;
        npo += g->e[path[i]].kind == JP_E_PO;
    }
    if (nrt) return JP_A_REALTIME;
    if (npo) return JP_A_SESSION;
    return nrw >= 2 ? JP_A_G2 : nrw ? JP_A_GSINGLE : nwr ? JP_A_G1C : JP_A_G0;
}

static void report_cycle(jp_graph *g, const jp_history *h, jp_report *r, jp_anomaly a,
                         const size_t *path, int len)
{
    mbuf b = MBUF_INIT;
    int nrw = 0, nwr = 0;
    for (int i = 0; i < len; i++) {
        const jp_edge *e = &g->e[path[i]];
        nrw += e->kind == JP_E_RW;
        nwr += e->kind == JP_E_WR;
    }
    if (a == JP_A_REALTIME || a == JP_A_SESSION)
        mbuf_printf(&b, "(%s-%s) ",
                    nrw >= 2 ? "G2"
                    : nrw    ? "G-single"
                    : nwr    ? "G1c"
                             : "G0",
                    a == JP_A_REALTIME ? "realtime" : "session");
    for (int i = 0; i < len && i < SHOW_EDGES; i++) {
        const jp_edge *e = &g->e[path[i]];
        const jp_op *op = jp_call_op(h, &h->calls[e->from]);
        mbuf_printf(&b, "T(line %zu, p%lld) -%s", op->line, (long long)op->process,
                    ekind_name(e->kind));
        if (e->kind != JP_E_RT && e->kind != JP_E_PO) mbuf_printf(&b, "[%lld]", (long long)e->key);
        mbuf_append_str(&b, "-> ");
    }
    if (len > SHOW_EDGES) mbuf_printf(&b, "... (%d edges in all) ", len);
    mbuf_printf(&b, "T(line %zu)", jp_call_op(h, &h->calls[g->e[path[0]].from])->line);
    mbuf_append_u8(&b, 0);
    jp_report_add(r, a, "%s", b.data ? (char *)b.data : "");
    mbuf_free(&b);
}

/* One example of each cycle class per strongly connected component: the
 * shortest found from up to max_starts first edges. A component where no
 * class search succeeded (the simple-cycle rule can reject the walks a
 * search finds) still has a cycle: any edge's shortest way back, over all
 * edges, is one, and it is reported under the class its edges give it. So
 * every cyclic component is reported. */
int jp_graph_report_cycles(jp_graph *g, const jp_history *h, size_t max_starts, jp_report *r)
{
    static const struct {
        jp_anomaly a;
        int first, allow, min_rw;
    } classes[] = {
        {JP_A_G0, JP_E_WW, JP_E_WW, 0},
        {JP_A_G1C, JP_E_WR, JP_E_WW | JP_E_WR, 0},
        {JP_A_GSINGLE, JP_E_RW, JP_E_WW | JP_E_WR, 1},
        {JP_A_G2, JP_E_RW, JP_E_WW | JP_E_WR | JP_E_RW, 2},
        {JP_A_REALTIME, JP_E_RT, JP_E_ALL, 0},
        {JP_A_SESSION, JP_E_PO, JP_E_ALL & ~JP_E_RT, 0},
    };
    size_t nc = (size_t)g->ncomp + 1, maxlen = (size_t)g->n + 1;
    size_t *path = malloc(maxlen * sizeof(size_t));
    size_t *tries = calloc(nc, sizeof(size_t)), *beststart = calloc(nc, sizeof(size_t));
    int *bestlen = calloc(nc, sizeof(int));
    char *reported = calloc(nc, 1);
    int rc = 0;
    if (!path || !tries || !beststart || !bestlen || !reported) {
        rc = MERR_NOMEM;
        goto out;
    }
    for (size_t c = 0; c < sizeof(classes) / sizeof(classes[0]); c++) {
        memset(tries, 0, nc * sizeof(size_t));
        memset(bestlen, 0, nc * sizeof(int));
        for (size_t i = 0; i < g->ne; i++) {
            const jp_edge *e = &g->e[i];
            int comp = g->comp[e->from];
            if (e->kind != classes[c].first || g->comp[e->to] != comp) continue;
            if (tries[comp]++ >= max_starts) continue;
            int len = jp_graph_cycle(g, i, classes[c].allow, classes[c].min_rw, path, maxlen);
            if (len < 0) {
                rc = len;
                goto out;
            }
            if (len > 0 && (!bestlen[comp] || len < bestlen[comp])) {
                bestlen[comp] = len;
                beststart[comp] = i;
            }
        }
        for (int comp = 0; comp < g->ncomp; comp++) {
            if (!bestlen[comp]) continue;
            /* The search is deterministic: the same start finds the same cycle. */
            int len = jp_graph_cycle(g, beststart[comp], classes[c].allow, classes[c].min_rw, path,
                                     maxlen);
            if (len < 0) {
                rc = len;
                goto out;
            }
            report_cycle(g, h, r, classes[c].a, path, len);
            reported[comp] = 1;
        }
    }
    for (size_t i = 0; i < g->ne; i++) { /* the fallback */
        int comp = g->comp[g->e[i].from];
        if (reported[comp] || g->comp[g->e[i].to] != comp) continue;
        int len = jp_graph_cycle(g, i, JP_E_ALL, 0, path, maxlen);
        if (len < 0) {
            rc = len;
            goto out;
        }
        if (len == 0) continue;
        report_cycle(g, h, r, classify(g, path, len), path, len);
        reported[comp] = 1;
    }
out:
    free(path);
    free(tries);
    free(beststart);
    free(bestlen);
    free(reported);
    return rc;
}

typedef struct po_ent {
    int64_t process;
    size_t call;
} po_ent;

static int po_cmp(const void *a, const void *b)
{
    const po_ent *x = a, *y = b;
    if (x->process != y->process) return x->process < y->process ? -1 : 1;
    return (x->call > y->call) - (x->call < y->call);
}

int jp_graph_add_process_order(jp_graph *g, const jp_history *h, const char *committed)
{
    /* Calls are in invocation order and a process runs one at a time, so
     * (process, call index) order is each process's order. */
    size_t n = h->ncalls, k = 0;
    po_ent *v = malloc((n + 1) * sizeof(po_ent));
    if (!v) return MERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        if (committed[i]) v[k++] = (po_ent){h->ops[h->calls[i].inv].process, i};
    qsort(v, k, sizeof(po_ent), po_cmp);
    int rc = 0;
    for (size_t i = 1; i < k && rc == 0; i++)
        if (v[i].process == v[i - 1].process && h->calls[v[i - 1].call].type == JP_OK)
            rc = jp_graph_add(g, (int)v[i - 1].call, (int)v[i].call, JP_E_PO, 0);
    free(v);
    return rc;
}

void jp_graph_report_summary(const jp_graph *g, const jp_history *h, jp_report *r)
{
    size_t n[4] = {0}, cyclic = 0;
    for (size_t i = 0; i < h->ncalls; i++) n[h->calls[i].type]++;
    for (int c = 0; c < g->ncomp; c++) cyclic += g->compsize[c] > 1;
    (void)mbuf_printf(&r->text,
                      "summary: %zu txns (%zu ok, %zu info, %zu fail), %zu edges, %zu cyclic "
                      "components\n",
                      h->ncalls, n[JP_OK], n[JP_INFO], n[JP_FAIL], g->ne, cyclic);
}
