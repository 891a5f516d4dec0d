/* Repair and constraint schedulers: finish moves under way, replace replicas
 * on dead or draining nodes, restore the replication factor, and fix
 * placement that violates a policy or could be more diverse. */
#include "placement/pd_view.h"

#include <stdlib.h>

static int emit(pd_view *v, pd_op_kind kind, pd_reason why, size_t ri, pd_node_id node,
                pd_node_id from)
{
    pd_op op = {.kind = kind, .reason = why, .range = v->c->ranges[ri].id, .node = node};
    op.from = from;
    return pd_view_emit(v, &op);
}

/* An emitted op means "handled": 1, or the error. */
static int handled(int rc)
{
    return rc ? rc : 1;
}

/* The next step of a move under way, if any: 1 when the range is mid-move
 * (an op was emitted or it must wait), 0 when it is not, < 0 on error. */
static int continue_move(pd_view *v, size_t ri)
{
    const pd_range *r = &v->c->ranges[ri];
    int rf = pd_view_rf(v, ri);
    bool waiting = false;
    for (int i = 0; i < r->n_replicas; i++) {
        const pd_replica *p = &r->replicas[i];
        if (p->role != PD_LEARNER) continue;
        pd_liveness l = pd_view_live(v, p->node);
        if (l == PD_DEAD || l == PD_DECOMMISSIONING)
            return handled(emit(v, PD_OP_REMOVE_REPLICA, PD_REASON_REPAIR, ri, p->node, 0));
        if (p->caught_up && l == PD_LIVE)
            return handled(emit(v, PD_OP_PROMOTE, PD_REASON_MOVE, ri, p->node, 0));
        /* Never caught up (its node lost the range, or it cannot keep up):
         * drop it so the range is not held mid-move forever; a later run
         * may pick another target. */
        if (!p->caught_up && p->learner_since_ns &&
            v->c->now_ns - p->learner_since_ns >= v->s->learner_timeout_ns)
            return handled(emit(v, PD_OP_REMOVE_REPLICA, PD_REASON_MOVE, ri, p->node, 0));
        waiting = true; /* a learner still catching up: the move waits */
    }
    if (waiting) return 1;
    if (pd_range_voters(r) <= rf) return 0;
    int x = pd_view_removal(v, ri);
    if (x < 0) return 1;
    pd_node_id victim = r->replicas[x].node;
    pd_liveness l = pd_view_live(v, victim);
    if (victim == r->leader && l != PD_DEAD) {
        /* The leader proposes its own removal badly: hand the lease over
         * first, and remove on a later run. */
        long t = pd_view_leader_target(v, ri, victim);
        if (t < 0) return 1;
        return handled(emit(v, PD_OP_TRANSFER_LEADER, PD_REASON_MOVE, ri, v->c->nodes[t].id, 0));
    }
    pd_reason why = l == PD_DEAD              ? PD_REASON_REPAIR
                    : l == PD_DECOMMISSIONING ? PD_REASON_DECOMMISSION
                                              : PD_REASON_MOVE;
    return handled(emit(v, PD_OP_REMOVE_REPLICA, why, ri, victim, 0));
}

static int repair_range(pd_view *v, size_t ri)
{
    const pd_range *r = &v->c->ranges[ri];
    int voters = pd_range_voters(r), alive = 0;
    pd_node_id dead = 0, draining = 0;
    for (int i = 0; i < r->n_replicas; i++) {
        const pd_replica *p = &r->replicas[i];
        if (p->role != PD_VOTER) continue;
        pd_liveness l = pd_view_live(v, p->node);
        if (l == PD_DEAD && !dead) dead = p->node;
        if (l == PD_DECOMMISSIONING && !draining) draining = p->node;
        alive += l != PD_DEAD;
    }
    if (alive < voters / 2 + 1) {
        /* Without a quorum no configuration change can commit; only an
         * operator (or the dead nodes' return) can help. Report it. */
        int rc = pd_ops_push_unavailable(v->out, r->id);
        return rc ? merr_set(&v->out->err, rc, "placement: out of memory") : 0;
    }
    int rc = continue_move(v, ri);
    if (rc) return rc < 0 ? rc : 0;
    int rf = pd_view_rf(v, ri);
    pd_node_id from = dead ? dead : draining;
    if (!from && voters >= rf) return 0;
    if (!pd_view_can_move(v)) return 0;
    if (voters < rf) from = 0; /* up-replicate first, replace afterwards */
    long t = pd_view_best_target(v, ri, from);
    if (t < 0) return 0; /* nowhere to go: wait for a node to join */
    pd_reason why = from && from == draining ? PD_REASON_DECOMMISSION : PD_REASON_REPAIR;
    return emit(v, PD_OP_ADD_LEARNER, why, ri, v->c->nodes[t].id, from);
}

/* Ranges closest to losing quorum first, so the move budget goes to them. */
typedef struct urgency {
    int margin; /* non-dead voters above a bare quorum */
    size_t ri;
} urgency;

static int urgency_cmp(const void *a, const void *b)
{
    const urgency *x = a, *y = b;
    if (x->margin != y->margin) return x->margin - y->margin;
    return x->ri < y->ri ? -1 : x->ri > y->ri;
}

int pd_schedule_repair(const pd_cluster *c, const pd_settings *s, pd_ops *out)
{
    pd_view v;
    int rc = pd_view_build(&v, c, s, out);
    if (rc) return rc;
    urgency *order = malloc((c->n_ranges ? c->n_ranges : 1) * sizeof(*order));
    if (!order) {
        rc = merr_set(&out->err, MERR_NOMEM, "placement: out of memory");
        goto out;
    }
    for (size_t ri = 0; ri < c->n_ranges; ri++) {
        const pd_range *r = &c->ranges[ri];
        int alive = 0;
        for (int i = 0; i < r->n_replicas; i++)
            alive +=
                r->replicas[i].role == PD_VOTER && pd_view_live(&v, r->replicas[i].node) != PD_DEAD;
        order[ri] = (urgency){alive - (pd_view_rf(&v, ri) / 2 + 1), ri};
    }
    qsort(order, c->n_ranges, sizeof(*order), urgency_cmp);
    for (size_t k = 0; k < c->n_ranges && !rc; k++)
        if (!v.busy[order[k].ri]) rc = repair_range(&v, order[k].ri);
out:
    free(order);
    pd_view_free(&v);
    return rc;
}

long pd_constraint_move(const pd_view *v, size_t ri, pd_node_id *from)
{
    const pd_range *r = &v->c->ranges[ri];
    pd_quality best_q = pd_view_quality(v, ri, 0, 0);
    long target = -1;
    *from = 0;
    /* Every replica allowed and in its own zone (and region, if asked; one
     * in the lead region, if named): nothing can improve, so skip the
     * search (the common case). */
    const pd_policy *pol = pd_view_policy(v, ri);
    int n = r->n_replicas;
    if (best_q.allowed == n && best_q.zones == n &&
        (!pol || pol->survival != PD_SURVIVE_REGION || best_q.regions == n) &&
        best_q.lead >= pd_view_lead_want(v, ri))
        return -1;
    for (int i = 0; i < r->n_replicas; i++) {
        pd_node_id x = r->replicas[i].node;
        long t = pd_view_best_target(v, ri, x);
        if (t < 0) continue;
        pd_quality q = pd_view_quality(v, ri, x, v->c->nodes[t].id);
        int cmp = pd_quality_cmp(&q, &best_q);
        /* Only strict improvements; on a tie between two of them, spare the
         * leader (moving it costs a lease transfer). */
        if (cmp < 0 || (cmp == 0 && (target < 0 || x == r->leader || *from != r->leader))) continue;
        best_q = q;
        *from = x;
        target = t;
    }
    return target;
}

bool pd_repair_pending(const pd_view *v, size_t ri)
{
    const pd_range *r = &v->c->ranges[ri];
    if (v->moving[ri] || pd_range_has_learner(r)) return false; /* under way */
    int voters = pd_range_voters(r), alive = 0;
    pd_node_id from = 0;
    for (int i = 0; i < r->n_replicas; i++) {
        pd_liveness l = pd_view_live(v, r->replicas[i].node);
        alive += l != PD_DEAD;
        if ((l == PD_DEAD || l == PD_DECOMMISSIONING) && !from) from = r->replicas[i].node;
    }
    if (alive < voters / 2 + 1) return false; /* nothing repair can do */
    if (voters < pd_view_rf(v, ri))
        from = 0;
    else if (!from)
        return false;
    return pd_view_best_target(v, ri, from) >= 0;
}

int pd_schedule_constraints(const pd_cluster *c, const pd_settings *s, pd_ops *out)
{
    pd_view v;
    int rc = pd_view_build(&v, c, s, out);
    if (rc) return rc;
    for (size_t ri = 0; ri < c->n_ranges && !rc && pd_view_can_move(&v); ri++) {
        if (v.busy[ri] || !pd_view_range_settled(&v, ri)) continue;
        pd_node_id from;
        long target = pd_constraint_move(&v, ri, &from);
        if (target >= 0)
            rc = emit(&v, PD_OP_ADD_LEARNER, PD_REASON_CONSTRAINT, ri, c->nodes[target].id, from);
    }
    pd_view_free(&v);
    return rc;
}
