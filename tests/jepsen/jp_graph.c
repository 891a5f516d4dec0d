/* Transaction dependency graphs: edges, Tarjan's SCC (iterative, so deep
 * graphs cannot overflow the C stack) and shortest typed cycles by BFS over
 * (node, rw edges seen so far capped at 2). */
#include "tests/jepsen/jp_graph.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"

int jp_graph_init(jp_graph *g, int n)
{
    memset(g, 0, sizeof(*g));
    g->n = n;
    return 0;
}

void jp_graph_free(jp_graph *g)
{
    free(g->e);
    free(g->off);
    free(g->idx);
    free(g->comp);
    free(g->compsize);
    free(g->seen);
    free(g->via);
    free(g->pst);
    memset(g, 0, sizeof(*g));
}

int jp_graph_add(jp_graph *g, int from, int to, int kind, int64_t key)
{
    if (from == to) return 0;
    if (g->ne == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 256;
        jp_edge *e = realloc(g->e, cap * sizeof(jp_edge));
        if (!e) return MERR_NOMEM;
        g->e = e;
        g->cap = cap;
    }
    g->e[g->ne++] = (jp_edge){from, to, kind, key};
    return 0;
}

static int edge_cmp(const void *a, const void *b)
{
    const jp_edge *x = a, *y = b;
    if (x->from != y->from) return x->from < y->from ? -1 : 1;
    if (x->to != y->to) return x->to < y->to ? -1 : 1;
    if (x->kind != y->kind) return x->kind < y->kind ? -1 : 1;
    return (x->key > y->key) - (x->key < y->key);
}

/* Iterative Tarjan: an explicit frame stack replaces recursion. */
static int tarjan(jp_graph *g)
{
    int n = g->n, rc = 0;
    int *index = malloc((size_t)n * sizeof(int)), *low = malloc((size_t)n * sizeof(int));
    int *stk = malloc((size_t)n * sizeof(int)), *frame = malloc((size_t)n * sizeof(int));
    size_t *it = malloc((size_t)n * sizeof(size_t));
    char *on = calloc((size_t)n, 1);
    g->comp = malloc((size_t)n * sizeof(int));
    g->compsize = calloc((size_t)n, sizeof(int));
    if (!index || !low || !stk || !frame || !it || !on || !g->comp || !g->compsize) {
        rc = MERR_NOMEM;
        goto out;
    }
    for (int i = 0; i < n; i++) index[i] = -1;
    int next = 0, sp = 0, fp = 0;
    for (int root = 0; root < n; root++) {
        if (index[root] >= 0) continue;
        frame[fp++] = root;
        index[root] = low[root] = next++;
        it[root] = g->off[root];
        stk[sp++] = root;
        on[root] = 1;
        while (fp) {
            int v = frame[fp - 1];
            if (it[v] < g->off[v + 1]) {
                int w = g->e[g->idx[it[v]++]].to;
                if (index[w] < 0) {
                    index[w] = low[w] = next++;
                    it[w] = g->off[w];
                    stk[sp++] = w;
                    on[w] = 1;
                    frame[fp++] = w;
                } else if (on[w] && index[w] < low[v]) {
                    low[v] = index[w];
                }
                continue;
            }
            fp--;
            if (fp && low[v] < low[frame[fp - 1]]) low[frame[fp - 1]] = low[v];
            if (low[v] == index[v]) {
                int c = g->ncomp++, w;
                do {
                    w = stk[--sp];
                    on[w] = 0;
                    g->comp[w] = c;
                    g->compsize[c]++;
                } while (w != v);
            }
        }
    }
out:
    free(index);
    free(low);
    free(stk);
    free(frame);
    free(it);
    free(on);
    return rc;
}

int jp_graph_build(jp_graph *g)
{
    if (g->ne) qsort(g->e, g->ne, sizeof(jp_edge), edge_cmp);
    size_t k = 0;
    for (size_t i = 0; i < g->ne; i++) {
        jp_edge *p = k ? &g->e[k - 1] : NULL;
        if (p && p->from == g->e[i].from && p->to == g->e[i].to && p->kind == g->e[i].kind)
            continue;
        g->e[k++] = g->e[i];
    }
    g->ne = k;
    g->off = calloc((size_t)g->n + 1, sizeof(size_t));
    g->idx = malloc((g->ne ? g->ne : 1) * sizeof(size_t));
    g->seen = calloc((size_t)g->n * 3 + 1, sizeof(uint32_t));
    g->via = malloc(((size_t)g->n * 3 + 1) * sizeof(size_t));
    g->pst = malloc(((size_t)g->n * 3 + 1) * sizeof(size_t));
    if (!g->off || !g->idx || !g->seen || !g->via || !g->pst) return MERR_NOMEM;
    /* Edges are sorted by origin, so the CSR index is the identity. */
    for (size_t i = 0; i < g->ne; i++) {
        g->off[g->e[i].from + 1]++;
        g->idx[i] = i;
    }
    for (int v = 0; v < g->n; v++) g->off[v + 1] += g->off[v];
    return tarjan(g);
}

int jp_graph_cycle(jp_graph *g, size_t first, int allow, int min_rw, size_t *path, size_t maxlen)
{
    const jp_edge *f = &g->e[first];
    int comp = g->comp[f->from];
    if (g->comp[f->to] != comp) return 0;
    if (++g->stamp == 0) {
        memset(g->seen, 0, ((size_t)g->n * 3 + 1) * sizeof(uint32_t));
        g->stamp = 1;
    }
    size_t nstate = (size_t)g->n * 3;
    size_t *queue = malloc(nstate * sizeof(size_t));
    if (!queue) return MERR_NOMEM;
    size_t qh = 0, qt = 0, goal = SIZE_MAX;
    size_t s0 = (size_t)f->to * 3 + (f->kind == JP_E_RW ? 1 : 0);
    g->seen[s0] = g->stamp;
    g->via[s0] = SIZE_MAX;
    queue[qt++] = s0;
    while (qh < qt && goal == SIZE_MAX) {
        size_t s = queue[qh++];
        int v = (int)(s / 3), rw = (int)(s % 3);
        if (v == f->from && rw >= min_rw) {
            goal = s;
            break;
        }
        for (size_t i = g->off[v]; i < g->off[v + 1]; i++) {
            const jp_edge *e = &g->e[g->idx[i]];
            if (!(e->kind & allow) || g->comp[e->to] != comp) continue;
            int nrw = rw + (e->kind == JP_E_RW);
            if (nrw > 2) nrw = 2;
            if (e->to == f->from && nrw < min_rw) continue; /* origin only at the end */
            size_t t = (size_t)e->to * 3 + (size_t)nrw;
            if (g->seen[t] == g->stamp) continue;
            g->seen[t] = g->stamp;
            g->via[t] = g->idx[i];
            g->pst[t] = s;
            queue[qt++] = t;
        }
    }
    free(queue);
    if (goal == SIZE_MAX) return 0;
    /* Walk back from the goal to count, then fill the path backwards. */
    size_t len = 1;
    for (size_t s = goal; g->via[s] != SIZE_MAX; s = g->pst[s]) len++;
    if (len > maxlen) return 0;
    path[0] = first;
    size_t k = len;
    for (size_t s = goal; g->via[s] != SIZE_MAX; s = g->pst[s]) path[--k] = g->via[s];
    /* The BFS runs over (node, rw count), so a walk may pass one node twice
     * with different counts: that is two cycles glued together, whose shape
     * is not the one asked for. Only simple cycles are answered. */
    for (size_t i = 0; i < len; i++)
        for (size_t j = i + 1; j < len; j++)
            if (g->e[path[i]].to == g->e[path[j]].to) return 0;
    return (int)len;
}
