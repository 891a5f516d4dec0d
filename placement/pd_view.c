/* The schedulers' derived view of a snapshot and their shared placement
 * scoring (see pd_view.h). */
#include "placement/pd_view.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(offsetof(pd_node, id) == 0, "lookup index reads the id at offset 0");
_Static_assert(offsetof(pd_range, id) == 0, "lookup index reads the id at offset 0");

/* Node and range lookup by id: sorted (id, index) pairs, searched with
 * bsearch, kept in the view so scoring stays O(log n) per lookup. */
typedef struct pd_id_idx {
    uint64_t id;
    size_t idx;
} id_idx;

static int id_cmp(const void *a, const void *b)
{
    const id_idx *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static id_idx *build_index(size_t n, const void *base, size_t stride)
{
    id_idx *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v) return NULL;
    for (size_t i = 0; i < n; i++) {
        /* id is the first member of pd_node and pd_range. */
        v[i].id = *(const uint64_t *)((const char *)base + i * stride);
        v[i].idx = i;
    }
    qsort(v, n, sizeof(*v), id_cmp);
    return v;
}

static long lookup(const id_idx *v, size_t n, uint64_t id)
{
    id_idx key = {id, 0};
    const id_idx *hit = n ? bsearch(&key, v, n, sizeof(*v), id_cmp) : NULL;
    return hit ? (long)hit->idx : -1;
}

long pd_view_node(const pd_view *v, pd_node_id id)
{
    return lookup(v->idx_nodes, v->c->n_nodes, id);
}

long pd_view_range(const pd_view *v, pd_range_id id)
{
    return lookup(v->idx_ranges, v->c->n_ranges, id);
}

pd_liveness pd_view_live(const pd_view *v, pd_node_id id)
{
    long ni = pd_view_node(v, id);
    return ni < 0 ? PD_DEAD : v->n[ni].live;
}

const pd_policy *pd_view_policy(const pd_view *v, size_t ri)
{
    return v->policy[ri] < 0 ? NULL : &v->c->policies[v->policy[ri]];
}

const char *pd_view_lead_region(const pd_view *v, size_t ri)
{
    const pd_range *r = &v->c->ranges[ri];
    const pd_policy *p = pd_view_policy(v, ri);
    if (p && p->lead_region[0]) return p->lead_region;
    /* The first range: no policy, or one that names no lead region (the
     * node gives range 1 five voters through one once five nodes are up). */
    for (size_t i = 0; r->start.len == 0 && r->end.len && i < v->c->n_policies; i++) {
        const pd_policy *q = &v->c->policies[i];
        if (pd_key_cmp(&r->end, &q->start) >= 0 &&
            (q->end.len == 0 || pd_key_cmp(&r->end, &q->end) < 0))
            return q->lead_region[0] ? q->lead_region : NULL;
    }
    return NULL;
}

int pd_view_lead_want(const pd_view *v, size_t ri)
{
    if (!pd_view_lead_region(v, ri)) return 0;
    const pd_policy *p = pd_view_policy(v, ri);
    if (p && p->survival == PD_SURVIVE_REGION) return 1;
    return pd_view_rf(v, ri) / 2 + 1;
}

int pd_view_rf(const pd_view *v, size_t ri)
{
    const pd_policy *p = pd_view_policy(v, ri);
    return p ? p->replication_factor : v->s->default_replication_factor;
}

bool pd_view_region_allowed(const pd_view *v, size_t ri, const pd_node *n)
{
    const pd_policy *p = pd_view_policy(v, ri);
    if (!p || p->n_allowed == 0) return true;
    for (int i = 0; i < p->n_allowed; i++)
        if (strcmp(p->allowed_regions[i], n->region) == 0) return true;
    return false;
}

bool pd_view_range_settled(const pd_view *v, size_t ri)
{
    const pd_range *r = &v->c->ranges[ri];
    if (v->moving[ri] || pd_range_has_learner(r)) return false;
    if (pd_range_voters(r) != pd_view_rf(v, ri)) return false;
    for (int i = 0; i < r->n_replicas; i++)
        if (pd_view_live(v, r->replicas[i].node) != PD_LIVE) return false;
    return true;
}

bool pd_view_can_move(const pd_view *v)
{
    return v->moves < v->s->max_moves;
}

double pd_view_fraction(const pd_view *v, size_t ni)
{
    uint64_t cap = v->c->nodes[ni].capacity_bytes;
    return cap ? (double)v->n[ni].dir_bytes / (double)cap : 0.0;
}

/* ---- planned counts ---- */

static void add_replica(pd_view *v, pd_node_id id, int delta, uint64_t bytes)
{
    long ni = pd_view_node(v, id);
    if (ni < 0) return;
    v->n[ni].replicas += delta;
    if (delta > 0)
        v->n[ni].dir_bytes += bytes;
    else
        v->n[ni].dir_bytes = v->n[ni].dir_bytes > bytes ? v->n[ni].dir_bytes - bytes : 0;
}

static void add_leader(pd_view *v, pd_node_id id, int delta)
{
    long ni = pd_view_node(v, id);
    if (ni >= 0) v->n[ni].leaders += delta;
}

static void mark_moving(pd_view *v, size_t ri)
{
    if (!v->moving[ri]) v->moves++;
    v->moving[ri] = 1;
}

/* Whether some replica of r carries the intent to replace `id`. */
static bool replaced(const pd_range *r, pd_node_id id)
{
    for (int i = 0; i < r->n_replicas; i++)
        if (r->replicas[i].replaces == id && id) return true;
    return false;
}

/* Folds an op (in flight or proposed) into the planned counts. */
static void account(pd_view *v, pd_op_kind kind, pd_range_id range, pd_range_id range2,
                    pd_node_id node, pd_node_id from)
{
    long ri = pd_view_range(v, range);
    if (ri < 0) return;
    const pd_range *r = &v->c->ranges[ri];
    v->busy[ri] = 1;
    if (range2) {
        long r2 = pd_view_range(v, range2);
        if (r2 >= 0) v->busy[r2] = 1;
    }
    switch (kind) {
    case PD_OP_ADD_LEARNER:
        mark_moving(v, (size_t)ri);
        add_replica(v, node, +1, r->size_bytes);
        if (from && pd_range_has(r, from) && !replaced(r, from))
            add_replica(v, from, -1, r->size_bytes);
        break;
    case PD_OP_REMOVE_REPLICA:
        if (!replaced(r, node)) add_replica(v, node, -1, r->size_bytes);
        if (node == r->leader) add_leader(v, node, -1);
        break;
    case PD_OP_TRANSFER_LEADER:
        if (r->leader) add_leader(v, r->leader, -1);
        add_leader(v, node, +1);
        break;
    case PD_OP_SPLIT:
    case PD_OP_MERGE:
    case PD_OP_PROMOTE: break;
    }
}

static double qps(const pd_range *r)
{
    return r->reads_per_s + r->writes_per_s;
}

static bool small_and_cold(const pd_view *v, const pd_range *r)
{
    if (r->size_bytes >= v->s->range_min_bytes) return false;
    if (qps(r) >= v->s->merge_qps_fraction * v->s->range_split_qps) return false;
    /* The cool-down keeps a load split from being merged straight back
     * when the load that caused it pauses. */
    if (r->last_split_merge_ns && v->c->now_ns - r->last_split_merge_ns < v->s->merge_cooldown_ns)
        return false;
    return true;
}

bool pd_view_mergeable(const pd_view *v, size_t li, size_t ri)
{
    const pd_range *l = &v->c->ranges[li], *r = &v->c->ranges[ri];
    if (l->end.len == 0 || !pd_key_eq(&l->end, &r->start)) return false;
    if (v->policy[li] != v->policy[ri]) return false;
    if (!small_and_cold(v, l) || !small_and_cold(v, r)) return false;
    return l->size_bytes + r->size_bytes < v->s->range_max_bytes;
}

/* Marks both halves of every pair the merge scheduler would work on, so the
 * rebalancer leaves their replicas alone: otherwise it would move back what
 * the merge scheduler moved to make the replica sets equal. */
static int mark_merging(pd_view *v)
{
    size_t *order = pd_view_ranges_by_start(v);
    if (!order) return MERR_NOMEM;
    for (size_t k = 0; k + 1 < v->c->n_ranges; k++)
        if (pd_view_mergeable(v, order[k], order[k + 1]))
            v->merging[order[k]] = v->merging[order[k + 1]] = 1;
    free(order);
    return 0;
}

int pd_view_build(pd_view *v, const pd_cluster *c, const pd_settings *s, pd_ops *out)
{
    memset(v, 0, sizeof(*v));
    v->c = c;
    v->s = s;
    v->out = out;
    int rc = pd_settings_validate(s, &out->err);
    if (rc) return rc;
    if ((rc = pd_cluster_validate(c, &out->err))) return rc;
    size_t nn = c->n_nodes ? c->n_nodes : 1, nr = c->n_ranges ? c->n_ranges : 1;
    v->n = calloc(nn, sizeof(*v->n));
    v->policy = calloc(nr, sizeof(*v->policy));
    v->busy = calloc(nr, 1);
    v->moving = calloc(nr, 1);
    v->merging = calloc(nr, 1);
    v->idx_nodes = build_index(c->n_nodes, c->nodes, sizeof(pd_node));
    v->idx_ranges = build_index(c->n_ranges, c->ranges, sizeof(pd_range));
    if (!v->n || !v->policy || !v->busy || !v->moving || !v->merging || !v->idx_nodes ||
        !v->idx_ranges) {
        rc = merr_set(&out->err, MERR_NOMEM, "placement: out of memory");
        goto err;
    }
    for (size_t i = 0; i < c->n_nodes; i++)
        v->n[i].live = pd_node_liveness(&c->nodes[i], s, c->now_ns);
    for (size_t ri = 0; ri < c->n_ranges; ri++) {
        const pd_range *r = &c->ranges[ri];
        v->policy[ri] = -1;
        for (size_t p = 0; p < c->n_policies; p++) {
            const pd_policy *pol = &c->policies[p];
            if (pd_key_cmp(&r->start, &pol->start) >= 0 &&
                (pol->end.len == 0 || pd_key_cmp(&r->start, &pol->end) < 0)) {
                v->policy[ri] = (int)p;
                break;
            }
        }
        for (int i = 0; i < r->n_replicas; i++) {
            const pd_replica *p = &r->replicas[i];
            add_replica(v, p->node, +1, r->size_bytes);
            if (p->replaces && pd_range_has(r, p->replaces)) {
                add_replica(v, p->replaces, -1, r->size_bytes);
                v->moving[ri] = 1;
            }
        }
        if (r->leader) add_leader(v, r->leader, +1);
        if (pd_range_has_learner(r) || pd_range_voters(r) > pd_view_rf(v, ri)) v->moving[ri] = 1;
        v->moves += v->moving[ri];
    }
    if (mark_merging(v)) {
        rc = merr_set(&out->err, MERR_NOMEM, "placement: out of memory");
        goto err;
    }
    for (size_t i = 0; i < c->n_inflight; i++) {
        const pd_inflight *f = &c->inflight[i];
        account(v, f->kind, f->range, f->range2, f->node, f->from);
    }
    for (size_t i = 0; i < out->n; i++) {
        const pd_op *op = &out->v[i];
        account(v, op->kind, op->range, op->range2, op->node, op->from);
    }
    return 0;
err:
    pd_view_free(v);
    return rc;
}

void pd_view_free(pd_view *v)
{
    free(v->n);
    free(v->policy);
    free(v->busy);
    free(v->moving);
    free(v->merging);
    free(v->idx_nodes);
    free(v->idx_ranges);
    v->n = NULL;
    v->policy = NULL;
    v->busy = v->moving = v->merging = NULL;
    v->idx_nodes = v->idx_ranges = NULL;
}

int pd_view_emit(pd_view *v, const pd_op *op)
{
    int rc = pd_ops_push(v->out, op);
    if (rc) return merr_set(&v->out->err, rc, "placement: out of memory");
    account(v, op->kind, op->range, op->range2, op->node, op->from);
    return 0;
}

/* ---- scoring ---- */

int pd_quality_cmp(const pd_quality *a, const pd_quality *b)
{
    if (a->allowed != b->allowed) return a->allowed < b->allowed ? -1 : 1;
    if (a->regions != b->regions) return a->regions < b->regions ? -1 : 1;
    if (a->zones != b->zones) return a->zones < b->zones ? -1 : 1;
    if (a->lead != b->lead) return a->lead < b->lead ? -1 : 1;
    return 0;
}

pd_quality pd_view_quality(const pd_view *v, size_t ri, pd_node_id drop, pd_node_id add)
{
    const pd_range *r = &v->c->ranges[ri];
    const pd_policy *pol = pd_view_policy(v, ri);
    const char *lead = pd_view_lead_region(v, ri);
    const pd_node *set[PD_MAX_REPLICAS + 1];
    int n = 0;
    pd_quality q = {0, 0, 0, 0};
    for (int i = 0; i <= r->n_replicas; i++) {
        pd_node_id id = i < r->n_replicas ? r->replicas[i].node : add;
        if (!id || id == drop) continue;
        long ni = pd_view_node(v, id);
        if (ni < 0 || v->n[ni].live == PD_DEAD || v->n[ni].live == PD_DECOMMISSIONING) continue;
        const pd_node *nd = &v->c->nodes[ni];
        bool new_region = true, new_zone = true;
        for (int j = 0; j < n; j++) {
            if (strcmp(set[j]->region, nd->region) != 0) continue;
            new_region = false;
            if (strcmp(set[j]->zone, nd->zone) == 0) new_zone = false;
        }
        set[n++] = nd;
        q.allowed += pd_view_region_allowed(v, ri, nd);
        q.zones += new_zone;
        if (pol && pol->survival == PD_SURVIVE_REGION) q.regions += new_region;
        if (lead && strcmp(nd->region, lead) == 0) q.lead++;
    }
    int want = pd_view_lead_want(v, ri);
    if (q.lead > want) q.lead = want;
    return q;
}

bool pd_view_target_ok(const pd_view *v, size_t ri, size_t ni)
{
    const pd_node *nd = &v->c->nodes[ni];
    const pd_range *r = &v->c->ranges[ri];
    if (v->n[ni].live != PD_LIVE) return false;
    if (pd_range_has(r, nd->id)) return false;
    if (!pd_view_region_allowed(v, ri, nd)) return false;
    if (nd->capacity_bytes) {
        uint64_t used = nd->used_bytes > v->n[ni].dir_bytes ? nd->used_bytes : v->n[ni].dir_bytes;
        double after = (double)used + (double)r->size_bytes;
        if (after > v->s->max_fullness * (double)nd->capacity_bytes) return false;
    }
    return true;
}

long pd_view_best_target(const pd_view *v, size_t ri, pd_node_id from)
{
    long best = -1;
    pd_quality bq = {0, 0, 0, 0};
    for (size_t ni = 0; ni < v->c->n_nodes; ni++) {
        if (!pd_view_target_ok(v, ri, ni)) continue;
        pd_quality q = pd_view_quality(v, ri, from, v->c->nodes[ni].id);
        if (best >= 0) {
            int c = pd_quality_cmp(&q, &bq);
            if (c < 0) continue;
            if (c == 0) {
                const pd_nstat *a = &v->n[ni], *b = &v->n[best];
                if (a->replicas != b->replicas) {
                    if (a->replicas > b->replicas) continue;
                } else {
                    double fa = pd_view_fraction(v, ni), fb = pd_view_fraction(v, (size_t)best);
                    if (fa > fb) continue;
                    if (fa == fb && v->c->nodes[ni].id > v->c->nodes[best].id) continue;
                }
            }
        }
        best = (long)ni;
        bq = q;
    }
    return best;
}

/* Lower = drop first. */
static int live_rank(pd_liveness l)
{
    switch (l) {
    case PD_DEAD: return 0;
    case PD_DECOMMISSIONING: return 1;
    case PD_SUSPECT: return 2;
    case PD_LIVE: return 3;
    }
    return 3;
}

/* < 0 when replica a should be removed before replica b. */
static int removal_cmp(const pd_view *v, size_t ri, pd_node_id a, pd_node_id b)
{
    long na = pd_view_node(v, a), nb = pd_view_node(v, b);
    int la = live_rank(v->n[na].live), lb = live_rank(v->n[nb].live);
    if (la != lb) return la - lb;
    int aa = pd_view_region_allowed(v, ri, &v->c->nodes[na]);
    int ab = pd_view_region_allowed(v, ri, &v->c->nodes[nb]);
    if (aa != ab) return aa - ab;
    pd_quality qa = pd_view_quality(v, ri, a, 0), qb = pd_view_quality(v, ri, b, 0);
    int qc = pd_quality_cmp(&qa, &qb);
    if (qc) return -qc; /* dropping a leaves better quality: drop a first */
    if (v->n[na].replicas != v->n[nb].replicas) return v->n[nb].replicas - v->n[na].replicas;
    double fa = pd_view_fraction(v, (size_t)na), fb = pd_view_fraction(v, (size_t)nb);
    if (fa != fb) return fa > fb ? -1 : 1;
    return a > b ? -1 : 1;
}

int pd_view_removal(const pd_view *v, size_t ri)
{
    const pd_range *r = &v->c->ranges[ri];
    for (int i = 0; i < r->n_replicas; i++) {
        pd_node_id x = r->replicas[i].replaces;
        if (!x) continue;
        for (int j = 0; j < r->n_replicas; j++)
            if (r->replicas[j].node == x && r->replicas[j].role == PD_VOTER) return j;
    }
    int best = -1;
    for (int i = 0; i < r->n_replicas; i++) {
        if (r->replicas[i].role != PD_VOTER) continue;
        if (best < 0 || removal_cmp(v, ri, r->replicas[i].node, r->replicas[best].node) < 0)
            best = i;
    }
    return best;
}

long pd_view_leader_target(const pd_view *v, size_t ri, pd_node_id except)
{
    const pd_range *r = &v->c->ranges[ri];
    const char *pref = pd_view_lead_region(v, ri);
    long best = -1;
    bool best_pref = false;
    for (int i = 0; i < r->n_replicas; i++) {
        const pd_replica *p = &r->replicas[i];
        /* A voter on its way out is no home for the lease. */
        if (p->role != PD_VOTER || p->unhosted || p->node == except || replaced(r, p->node))
            continue;
        long ni = pd_view_node(v, p->node);
        if (v->n[ni].live != PD_LIVE) continue;
        bool in_pref = pref && strcmp(v->c->nodes[ni].region, pref) == 0;
        if (best >= 0) {
            if (best_pref && !in_pref) continue;
            if (in_pref == best_pref) {
                if (v->n[ni].leaders > v->n[best].leaders) continue;
                if (v->n[ni].leaders == v->n[best].leaders &&
                    v->c->nodes[ni].id > v->c->nodes[best].id)
                    continue;
            }
        }
        best = ni;
        best_pref = in_pref;
    }
    return best;
}

typedef struct start_ref {
    const pd_key *start;
    size_t idx;
} start_ref;

static int start_cmp(const void *a, const void *b)
{
    const start_ref *x = a, *y = b;
    return pd_key_cmp(x->start, y->start);
}

size_t *pd_view_ranges_by_start(const pd_view *v)
{
    size_t n = v->c->n_ranges;
    start_ref *refs = malloc((n ? n : 1) * sizeof(*refs));
    size_t *order = malloc((n ? n : 1) * sizeof(*order));
    if (!refs || !order) {
        free(refs);
        free(order);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) refs[i] = (start_ref){&v->c->ranges[i].start, i};
    qsort(refs, n, sizeof(*refs), start_cmp);
    for (size_t i = 0; i < n; i++) order[i] = refs[i].idx;
    free(refs);
    return order;
}
