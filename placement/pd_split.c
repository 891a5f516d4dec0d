/* Split and merge schedulers: split ranges that straddle a policy boundary,
 * are too big or too hot; merge small cold neighbours (after making their
 * replica sets equal), never undoing a recent split. */
#include "placement/pd_view.h"

#include <stdlib.h>

static int emit_split(pd_view *v, size_t ri, const pd_key *key, pd_reason why)
{
    pd_op op = {.kind = PD_OP_SPLIT, .reason = why, .range = v->c->ranges[ri].id, .key = *key};
    return pd_view_emit(v, &op);
}

/* The lowest policy boundary strictly inside the range, or NULL. */
static const pd_key *policy_boundary(const pd_view *v, const pd_range *r)
{
    const pd_key *best = NULL;
    for (size_t i = 0; i < v->c->n_policies; i++) {
        const pd_key *k[2] = {&v->c->policies[i].start, &v->c->policies[i].end};
        for (int j = 0; j < 2; j++)
            if (pd_key_inside(k[j], &r->start, &r->end) && (!best || pd_key_cmp(k[j], best) < 0))
                best = k[j];
    }
    return best;
}

static double qps(const pd_range *r)
{
    return r->reads_per_s + r->writes_per_s;
}

int pd_schedule_split(const pd_cluster *c, const pd_settings *s, pd_ops *out)
{
    pd_view v;
    int rc = pd_view_build(&v, c, s, out);
    if (rc) return rc;
    for (size_t ri = 0; ri < c->n_ranges && !rc; ri++) {
        const pd_range *r = &c->ranges[ri];
        /* A range being moved keeps its shape: a split would give the new
         * half a half-finished replica set to sort out. */
        if (v.busy[ri] || v.moving[ri] || pd_range_has_learner(r)) continue;
        const pd_key *b = policy_boundary(&v, r);
        if (b)
            rc = emit_split(&v, ri, b, PD_REASON_POLICY);
        else if (r->size_bytes > s->range_max_bytes &&
                 pd_key_inside(&r->mid_key, &r->start, &r->end))
            rc = emit_split(&v, ri, &r->mid_key, PD_REASON_SIZE);
        else if (qps(r) > s->range_split_qps && pd_key_inside(&r->load_key, &r->start, &r->end))
            rc = emit_split(&v, ri, &r->load_key, PD_REASON_LOAD);
    }
    pd_view_free(&v);
    return rc;
}

static bool voter_of(const pd_range *r, pd_node_id id)
{
    for (int i = 0; i < r->n_replicas; i++)
        if (r->replicas[i].node == id) return r->replicas[i].role == PD_VOTER;
    return false;
}

static bool same_voters(const pd_range *a, const pd_range *b)
{
    if (pd_range_voters(a) != pd_range_voters(b)) return false;
    for (int i = 0; i < a->n_replicas; i++)
        if (a->replicas[i].role == PD_VOTER && !voter_of(b, a->replicas[i].node)) return false;
    return true;
}

/* One step towards equal replica sets: move a replica of the right-hand
 * range that the left lacks onto a node of the left that the right lacks. */
static int align(pd_view *v, size_t li, size_t ri)
{
    const pd_range *l = &v->c->ranges[li], *r = &v->c->ranges[ri];
    pd_quality now = pd_view_quality(v, ri, 0, 0);
    for (int i = 0; i < r->n_replicas; i++) {
        pd_node_id x = r->replicas[i].node;
        if (voter_of(l, x)) continue;
        for (int j = 0; j < l->n_replicas; j++) {
            pd_node_id t = l->replicas[j].node;
            long ti = pd_view_node(v, t);
            if (l->replicas[j].role != PD_VOTER || !pd_view_target_ok(v, ri, (size_t)ti)) continue;
            pd_quality q = pd_view_quality(v, ri, x, t);
            if (pd_quality_cmp(&q, &now) < 0) continue;
            pd_op op = {.kind = PD_OP_ADD_LEARNER, .reason = PD_REASON_MERGE, .range = r->id};
            op.node = t;
            op.from = x;
            return pd_view_emit(v, &op);
        }
    }
    return 0; /* no legal step: the pair stays apart */
}

int pd_schedule_merge(const pd_cluster *c, const pd_settings *s, pd_ops *out)
{
    pd_view v;
    int rc = pd_view_build(&v, c, s, out);
    if (rc) return rc;
    size_t *order = pd_view_ranges_by_start(&v);
    if (!order) {
        rc = merr_set(&out->err, MERR_NOMEM, "placement: out of memory");
        goto out;
    }
    for (size_t k = 0; k + 1 < c->n_ranges && !rc; k++) {
        size_t li = order[k], ri = order[k + 1];
        const pd_range *l = &c->ranges[li], *r = &c->ranges[ri];
        if (v.busy[li] || v.busy[ri]) continue;
        if (!pd_view_mergeable(&v, li, ri)) continue;
        if (!pd_view_range_settled(&v, li) || !pd_view_range_settled(&v, ri)) continue;
        if (same_voters(l, r)) {
            pd_op op = {.kind = PD_OP_MERGE, .reason = PD_REASON_MERGE, .range = l->id};
            op.range2 = r->id;
            rc = pd_view_emit(&v, &op);
        } else if (pd_view_can_move(&v)) {
            rc = align(&v, li, ri);
        }
    }
out:
    free(order);
    pd_view_free(&v);
    return rc;
}
