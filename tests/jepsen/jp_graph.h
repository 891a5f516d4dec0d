/* Dependency graphs between transactions, for the Elle checker: typed edges
 * (ww, wr, rw, real-time), strongly connected components (Tarjan), and the
 * shortest cycle of a given shape found by breadth-first search.
 *
 * A cycle exists only inside one strongly connected component, so the cycle
 * searches are confined to a component: a history without anomalies has only
 * trivial components and costs one linear pass. */
#ifndef MERIDIAN_TESTS_JEPSEN_JP_GRAPH_H
#define MERIDIAN_TESTS_JEPSEN_JP_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "tests/jepsen/jp_check.h"
#include "tests/jepsen/jp_history.h"

enum { JP_E_WW = 1, JP_E_WR = 2, JP_E_RW = 4, JP_E_RT = 8, JP_E_PO = 16, JP_E_ALL = 31 };

typedef struct jp_edge {
    int from, to;
    int kind;    /* one JP_E_* bit */
    int64_t key; /* the key that induced it (unused for rt, po) */
} jp_edge;

typedef struct jp_graph {
    int n;
    jp_edge *e;
    size_t ne, cap;
    size_t *off; /* CSR after jp_graph_build: out-edges of v are idx[off[v]..off[v+1]) */
    size_t *idx;
    int *comp; /* component of each node after jp_graph_build */
    int *compsize;
    int ncomp;
    /* BFS scratch */
    uint32_t *seen;
    uint32_t stamp;
    size_t *via; /* edge into a BFS state */
    size_t *pst; /* the state it came from */
} jp_graph;

int jp_graph_init(jp_graph *g, int n);
void jp_graph_free(jp_graph *g);
/* Self-loops are ignored. Returns 0 or MERR_NOMEM. */
int jp_graph_add(jp_graph *g, int from, int to, int kind, int64_t key);
/* Removes duplicate edges, builds adjacency and components. */
int jp_graph_build(jp_graph *g);

/* The shortest cycle that begins with edge `first` and returns to its
 * origin along edges of kinds in `allow`, inside first's component, and
 * holds at least `min_rw` rw edges (0..2) counting `first`. Edge indices go
 * to path[0..len); returns len, 0 if there is none (or it is longer than
 * maxlen), or MERR_NOMEM. */
int jp_graph_cycle(jp_graph *g, size_t first, int allow, int min_rw, size_t *path, size_t maxlen);

/* Adds real-time edges between the calls marked in `committed` (nodes are
 * call indices): A -> B when A completed before B was invoked, as a
 * transitive reduction. Info calls never complete: they only get in-edges. */
int jp_graph_add_realtime(jp_graph *g, const jp_history *h, const char *committed);

/* Adds process-order edges: from each ok committed call to the next
 * committed call of the same process. (After an info call a process should
 * be retired; if not, nothing is ordered after the info call.) */
int jp_graph_add_process_order(jp_graph *g, const jp_history *h, const char *committed);

/* After jp_graph_build: reports, per strongly connected component, the
 * shortest cycle found of each class: G0 (ww), G1c (ww+wr, >=1 wr),
 * G-single (exactly one rw), G2 (>=2 rw) and realtime (through an rt edge,
 * labelled with the class it would have). `max_starts` bounds the edges
 * tried as a cycle's first edge, per component and class. */
int jp_graph_report_cycles(jp_graph *g, const jp_history *h, size_t max_starts, jp_report *r);

/* Appends "summary: ..." (txn, edge and cyclic component counts). */
void jp_graph_report_summary(const jp_graph *g, const jp_history *h, jp_report *r);

#endif
