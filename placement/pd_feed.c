/* Heartbeats → scheduler snapshot (pd_feed.h). */
#include "placement/pd_feed.h"

#include <stdlib.h>
#include <string.h>

void pd_hb_free(pd_hb *hb)
{
    for (size_t i = 0; i < hb->n_replicas; i++) {
        pd_key_free(&hb->replicas[i].start);
        pd_key_free(&hb->replicas[i].end);
        pd_key_free(&hb->replicas[i].mid_key);
        pd_key_free(&hb->replicas[i].load_key);
    }
    free(hb->replicas);
    hb->replicas = NULL;
    hb->n_replicas = 0;
}

void pd_hb_table_init(pd_hb_table *t)
{
    memset(t, 0, sizeof(*t));
}

void pd_hb_table_free(pd_hb_table *t)
{
    for (size_t i = 0; i < t->n; i++) pd_hb_free(&t->v[i]);
    free(t->v);
    memset(t, 0, sizeof(*t));
}

int pd_hb_reports(const pd_hb *hb, pd_range_id id)
{
    for (size_t k = 0; k < hb->n_replicas; k++)
        if (hb->replicas[k].range == id) return 1;
    return 0;
}

const pd_hb *pd_hb_table_get(const pd_hb_table *t, pd_node_id node)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].node == node) return &t->v[i];
    return NULL;
}

int pd_hb_table_put(pd_hb_table *t, pd_hb *hb)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].node == hb->node) {
            pd_hb_free(&t->v[i]);
            t->v[i] = *hb;
            return 0;
        }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        pd_hb *nv = realloc(t->v, cap * sizeof(*nv));
        if (!nv) {
            pd_hb_free(hb);
            return MERR_NOMEM;
        }
        t->v = nv;
        t->cap = cap;
    }
    t->v[t->n++] = *hb;
    return 0;
}

static bool in_list(const pd_node_id *v, size_t n, pd_node_id id)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == id) return true;
    return false;
}

static int add_node(pd_cluster *c, pd_node_id id, const pd_hb *hb, bool decom, int64_t since_ns)
{
    if (pd_cluster_node(c, id)) return 0;
    pd_node n;
    memset(&n, 0, sizeof(n));
    n.id = id;
    n.decommissioning = decom;
    n.last_heartbeat_ns = hb ? hb->received_ns : since_ns;
    if (hb && hb->received_ns < since_ns) n.last_heartbeat_ns = since_ns;
    if (hb) {
        n.capacity_bytes = hb->capacity_bytes;
        n.used_bytes = hb->used_bytes;
        memcpy(n.region, hb->region, sizeof(n.region));
        memcpy(n.zone, hb->zone, sizeof(n.zone));
        n.replica_count = (uint32_t)hb->n_replicas;
        for (size_t i = 0; i < hb->n_replicas; i++) {
            n.leader_count += hb->replicas[i].leaseholder;
            n.reads_per_s += hb->replicas[i].reads_per_s;
            n.writes_per_s += hb->replicas[i].writes_per_s;
        }
    }
    return pd_cluster_add_node(c, &n);
}

/* Whether [a.start, a.end) and [b.start, b.end) overlap (empty end = +inf). */
static bool overlaps(const pd_hb_replica *a, const pd_hb_replica *b)
{
    bool a_before = a->end.len && pd_key_cmp(&a->end, &b->start) <= 0;
    bool b_before = b->end.len && pd_key_cmp(&b->end, &a->start) <= 0;
    return !a_before && !b_before;
}

int pd_feed_build(const pd_hb_table *t, const pd_node_id *registry, size_t n_registry,
                  const pd_node_id *decommissioning, size_t n_decommissioning, int64_t since_ns,
                  int64_t now_ns, pd_cluster *out, merr *e)
{
    out->now_ns = now_ns;
    for (size_t i = 0; i < n_registry; i++)
        if (registry[i] &&
            add_node(out, registry[i], pd_hb_table_get(t, registry[i]),
                     in_list(decommissioning, n_decommissioning, registry[i]), since_ns))
            return merr_set(e, MERR_NOMEM, "out of memory");
    for (size_t i = 0; i < t->n; i++)
        if (add_node(out, t->v[i].node, &t->v[i],
                     in_list(decommissioning, n_decommissioning, t->v[i].node), since_ns))
            return merr_set(e, MERR_NOMEM, "out of memory");

    /* The winning leaseholder report of every range: highest generation
     * among overlapping spans (and among reports of one range id); of equal
     * generations the freshest heartbeat (a dead node's last report, or a
     * deposed leader's, must not hide membership changes made since). */
    size_t total = 0;
    for (size_t i = 0; i < t->n; i++) total += t->v[i].n_replicas;
    const pd_hb_replica **win = calloc(total ? total : 1, sizeof(*win));
    pd_node_id *lead = calloc(total ? total : 1, sizeof(*lead));
    int64_t *recv = calloc(total ? total : 1, sizeof(*recv));
    if (!win || !lead || !recv) {
        free(win);
        free(lead);
        free(recv);
        return merr_set(e, MERR_NOMEM, "out of memory");
    }
    size_t nw = 0;
    for (size_t i = 0; i < t->n; i++)
        for (size_t j = 0; j < t->v[i].n_replicas; j++) {
            const pd_hb_replica *r = &t->v[i].replicas[j];
            if (!r->leaseholder) continue;
            bool lose = false;
            for (size_t k = 0; k < nw && !lose; k++) {
                if (!win[k] || (win[k]->range != r->range && !overlaps(win[k], r))) continue;
                if (win[k]->generation > r->generation ||
                    (win[k]->generation == r->generation && recv[k] >= t->v[i].received_ns))
                    lose = true;
                else
                    win[k] = NULL; /* r supersedes it */
            }
            if (!lose) win[nw] = r, recv[nw] = t->v[i].received_ns, lead[nw++] = t->v[i].node;
        }
    int rc = 0;
    for (size_t k = 0; k < nw && !rc; k++) {
        const pd_hb_replica *w = win[k];
        if (!w) continue;
        pd_range r;
        memset(&r, 0, sizeof(r));
        r.id = w->range;
        r.generation = w->generation;
        r.start = w->start; /* pd_cluster_add_range copies the keys */
        r.end = w->end;
        r.mid_key = w->mid_key;
        r.load_key = w->load_key;
        r.leader = lead[k];
        r.size_bytes = w->size_bytes;
        r.keys = w->keys;
        r.reads_per_s = w->reads_per_s;
        r.writes_per_s = w->writes_per_s;
        const pd_hb *lhb = pd_hb_table_get(t, lead[k]);
        if (w->span_age_ns && lhb) r.last_split_merge_ns = lhb->received_ns - w->span_age_ns;
        for (int v = 0; v < w->n_voters && r.n_replicas < PD_MAX_REPLICAS; v++) {
            const pd_hb *vhb = pd_hb_table_get(t, w->voters[v]);
            r.replicas[r.n_replicas++] =
                (pd_replica){.node = w->voters[v],
                             .role = PD_VOTER,
                             .unhosted = vhb && !pd_hb_reports(vhb, w->range)};
        }
        for (int l = 0; l < w->n_learners && r.n_replicas < PD_MAX_REPLICAS; l++) {
            uint64_t a = w->learner_acked[l];
            r.replicas[r.n_replicas++] =
                (pd_replica){.node = w->learners[l],
                             .role = PD_LEARNER,
                             .caught_up = a > 0 && a + PD_FEED_CATCHUP_SLOTS >= w->applied};
        }
        /* Members not heard of (a node added while this PD was away) still
         * exist: list them so the schedulers see the whole replica set. */
        for (int m = 0; m < r.n_replicas && !rc; m++)
            if (add_node(out, r.replicas[m].node, pd_hb_table_get(t, r.replicas[m].node),
                         in_list(decommissioning, n_decommissioning, r.replicas[m].node), since_ns))
                rc = merr_set(e, MERR_NOMEM, "out of memory");
        if (!rc && pd_cluster_add_range(out, &r))
            rc = merr_set(e, MERR_INVALID, "range %llu: cannot add to the snapshot",
                          (unsigned long long)r.id);
    }
    free(win);
    free(lead);
    free(recv);
    return rc;
}

void pd_learner_table_free(pd_learner_table *t)
{
    free(t->v);
    t->v = NULL;
    t->n = 0;
}

int pd_feed_stamp_learners(pd_learner_table *t, pd_cluster *c)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_ranges; i++)
        for (int k = 0; k < c->ranges[i].n_replicas; k++)
            n += c->ranges[i].replicas[k].role == PD_LEARNER;
    pd_learner_seen *nv = calloc(n ? n : 1, sizeof(*nv));
    if (!nv) return MERR_NOMEM;
    n = 0;
    for (size_t i = 0; i < c->n_ranges; i++)
        for (int k = 0; k < c->ranges[i].n_replicas; k++) {
            pd_replica *p = &c->ranges[i].replicas[k];
            if (p->role != PD_LEARNER) continue;
            pd_learner_seen s = {c->ranges[i].id, p->node, c->now_ns};
            for (size_t j = 0; j < t->n; j++)
                if (t->v[j].range == s.range && t->v[j].node == s.node)
                    s.since_ns = t->v[j].since_ns;
            p->learner_since_ns = s.since_ns;
            nv[n++] = s;
        }
    free(t->v);
    t->v = nv;
    t->n = n;
    return 0;
}
