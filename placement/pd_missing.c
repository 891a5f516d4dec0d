/* Voters whose node does not host their range: the rule in pd_missing.h. */
#include "placement/pd_missing.h"

#include <stdlib.h>

void pd_missing_table_free(pd_missing_table *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

int pd_missing_scan(pd_missing_table *t, const pd_cluster *c, const pd_hb_table *hbs,
                    int64_t grace_ns, pd_missing **due, size_t *ndue)
{
    *due = NULL;
    *ndue = 0;
    size_t cap = 0;
    for (size_t i = 0; i < c->n_ranges; i++) cap += (size_t)c->ranges[i].n_replicas;
    pd_missing *nv = calloc(cap ? cap : 1, sizeof(*nv));
    pd_missing *dv = calloc(cap ? cap : 1, sizeof(*dv));
    if (!nv || !dv) {
        free(nv);
        free(dv);
        return MERR_NOMEM;
    }
    size_t n = 0, nd = 0;
    for (size_t i = 0; i < c->n_ranges; i++) {
        const pd_range *r = &c->ranges[i];
        for (int k = 0; k < r->n_replicas; k++) {
            const pd_replica *p = &r->replicas[k];
            const pd_hb *hb = pd_hb_table_get(hbs, p->node);
            if (p->role != PD_VOTER || !hb || pd_hb_reports(hb, r->id)) continue;
            pd_missing m = {r->id, p->node, c->now_ns};
            for (size_t j = 0; j < t->n; j++)
                if (t->v[j].range == m.range && t->v[j].node == m.node)
                    m.since_ns = t->v[j].since_ns;
            if (hb->received_ns - m.since_ns >= grace_ns) {
                dv[nd++] = m;
                m.since_ns = c->now_ns; /* handed out once per grace period */
            }
            nv[n++] = m;
        }
    }
    free(t->v);
    t->v = nv;
    t->n = n;
    if (nd) {
        *due = dv;
        *ndue = nd;
    } else {
        free(dv);
    }
    return 0;
}
