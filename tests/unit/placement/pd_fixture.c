/* Test fixture for the placement schedulers (see pd_fixture.h). */
#include "pd_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void fx_init(fx *f)
{
    pd_cluster_init(&f->c);
    pd_settings_default(&f->s);
    f->c.now_ns = FX_S(1000);
}

void fx_free(fx *f)
{
    pd_cluster_free(&f->c);
}

pd_node_id fx_node(fx *f, const char *region, const char *zone)
{
    pd_node n = {.id = f->c.n_nodes + 1, .capacity_bytes = 1024 * FX_GIB};
    snprintf(n.region, sizeof(n.region), "%s", region);
    snprintf(n.zone, sizeof(n.zone), "%s", zone);
    n.last_heartbeat_ns = f->c.now_ns;
    assert_int_equal(pd_cluster_add_node(&f->c, &n), 0);
    return n.id;
}

void fx_key(pd_key *k, char *buf, int i)
{
    if (i < 0) {
        *k = (pd_key){0};
        return;
    }
    snprintf(buf, 16, "k%06d", i);
    *k = (pd_key){(uint8_t *)buf, strlen(buf)};
}

pd_range_id fx_range(fx *f, int a, int b, const pd_node_id *voters, int n, uint64_t size)
{
    char sa[16], sb[16];
    pd_range r = {.id = f->c.n_ranges + 1, .generation = 1, .size_bytes = size};
    fx_key(&r.start, sa, a);
    fx_key(&r.end, sb, b);
    for (int i = 0; i < n; i++) r.replicas[i] = (pd_replica){.node = voters[i], .role = PD_VOTER};
    r.n_replicas = n;
    r.leader = voters[0];
    r.keys = size / 100;
    assert_int_equal(pd_cluster_add_range(&f->c, &r), 0);
    for (int i = 0; i < n; i++) {
        pd_node *nd = pd_cluster_node(&f->c, voters[i]);
        nd->replica_count++;
        nd->used_bytes += size;
    }
    pd_cluster_node(&f->c, voters[0])->leader_count++;
    return r.id;
}

void fx_ranges(fx *f, int n, int rf, int stride, uint64_t size)
{
    int nodes = (int)f->c.n_nodes;
    for (int j = 0; j < n; j++) {
        pd_node_id v[PD_MAX_REPLICAS];
        for (int i = 0; i < rf; i++) v[i] = f->c.nodes[(j + i * stride) % nodes].id;
        fx_range(f, j == 0 ? -1 : j * 10, j == n - 1 ? -1 : (j + 1) * 10, v, rf, size);
    }
}

void fx_advance(fx *f, int64_t ns)
{
    for (size_t i = 0; i < f->c.n_nodes; i++) {
        pd_node *n = &f->c.nodes[i];
        if (f->c.now_ns - n->last_heartbeat_ns < f->s.suspect_timeout_ns)
            n->last_heartbeat_ns = f->c.now_ns + ns;
    }
    f->c.now_ns += ns;
}

void fx_kill(fx *f, pd_node_id id)
{
    pd_cluster_node(&f->c, id)->last_heartbeat_ns = f->c.now_ns - f->s.dead_timeout_ns;
}

int fx_replicas_on(const fx *f, pd_node_id id)
{
    int n = 0;
    for (size_t i = 0; i < f->c.n_ranges; i++) n += pd_range_has(&f->c.ranges[i], id);
    return n;
}

int fx_leaders_on(const fx *f, pd_node_id id)
{
    int n = 0;
    for (size_t i = 0; i < f->c.n_ranges; i++) n += f->c.ranges[i].leader == id;
    return n;
}

static int distinct(const fx *f, const pd_range *r, bool zone)
{
    int n = 0;
    for (int i = 0; i < r->n_replicas; i++) {
        const pd_node *a = pd_cluster_node(&f->c, r->replicas[i].node);
        bool seen = false;
        for (int j = 0; j < i && !seen; j++) {
            const pd_node *b = pd_cluster_node(&f->c, r->replicas[j].node);
            seen = strcmp(a->region, b->region) == 0 && (!zone || strcmp(a->zone, b->zone) == 0);
        }
        n += !seen;
    }
    return n;
}

int fx_zones(const fx *f, const pd_range *r)
{
    return distinct(f, r, true);
}

int fx_regions(const fx *f, const pd_range *r)
{
    return distinct(f, r, false);
}

void fx_schedule(fx *f, pd_ops *ops)
{
    int rc = pd_schedule(&f->c, &f->s, ops);
    if (rc) fail_msg("pd_schedule: %s", merr_msg(&ops->err));
    if (getenv("PD_TRACE")) { /* PD_TRACE=1 prints every proposed op */
        for (size_t i = 0; i < ops->n; i++) {
            char txt[256];
            pd_op_format(&ops->v[i], txt, sizeof(txt));
            fprintf(stderr, "op: %s\n", txt);
        }
        fprintf(stderr, "--\n");
    }
    fx_check_ops(f, ops);
}

static bool claimed(const pd_range_id *ids, size_t n, pd_range_id id)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] == id) return true;
    return false;
}

void fx_check_ops(const fx *f, const pd_ops *ops)
{
    const pd_cluster *c = &f->c;
    pd_range_id *seen = calloc(2 * ops->n + 1, sizeof(*seen));
    size_t n_seen = 0, adds = 0;
    assert_non_null(seen);
    for (size_t i = 0; i < ops->n; i++) {
        const pd_op *op = &ops->v[i];
        char txt[256];
        pd_op_format(op, txt, sizeof(txt));
        const pd_range *r = pd_cluster_range(c, op->range);
        if (!r) fail_msg("op on unknown range: %s", txt);
        if (claimed(seen, n_seen, op->range)) fail_msg("second op on one range: %s", txt);
        seen[n_seen++] = op->range;
        if (op->range2) {
            if (claimed(seen, n_seen, op->range2)) fail_msg("second op on one range: %s", txt);
            seen[n_seen++] = op->range2;
        }
        for (size_t k = 0; k < c->n_inflight; k++)
            if (c->inflight[k].range == op->range || c->inflight[k].range2 == op->range)
                fail_msg("op on a range with one in flight: %s", txt);
        const pd_node *nd = op->node ? pd_cluster_node(c, op->node) : NULL;
        pd_liveness l = nd ? pd_node_liveness(nd, &f->s, c->now_ns) : PD_DEAD;
        int voters = pd_range_voters(r), alive = 0;
        for (int k = 0; k < r->n_replicas; k++) {
            const pd_node *x = pd_cluster_node(c, r->replicas[k].node);
            alive +=
                r->replicas[k].role == PD_VOTER && pd_node_liveness(x, &f->s, c->now_ns) != PD_DEAD;
        }
        switch (op->kind) {
        case PD_OP_ADD_LEARNER:
            adds++;
            if (!nd || l != PD_LIVE) fail_msg("learner on a node that is not live: %s", txt);
            if (pd_range_has(r, op->node)) fail_msg("two replicas on one node: %s", txt);
            break;
        case PD_OP_PROMOTE:
            if (!nd || l != PD_LIVE) fail_msg("promotion on a node that is not live: %s", txt);
            break;
        case PD_OP_REMOVE_REPLICA: {
            if (!pd_range_has(r, op->node)) fail_msg("remove of no replica: %s", txt);
            bool voter = false, on_dead = l == PD_DEAD;
            for (int k = 0; k < r->n_replicas; k++)
                if (r->replicas[k].node == op->node) voter = r->replicas[k].role == PD_VOTER;
            if (voter && voters <= 1) fail_msg("removes the last replica: %s", txt);
            int left = voters - voter, left_alive = alive - (voter && !on_dead);
            if (voter && left_alive < left / 2 + 1) fail_msg("removal loses quorum: %s", txt);
            break;
        }
        case PD_OP_TRANSFER_LEADER:
            if (!nd || l != PD_LIVE) fail_msg("lease to a node that is not live: %s", txt);
            break;
        case PD_OP_SPLIT:
            if (!pd_key_inside(&op->key, &r->start, &r->end)) fail_msg("split outside: %s", txt);
            break;
        case PD_OP_MERGE: {
            const pd_range *r2 = pd_cluster_range(c, op->range2);
            if (!r2 || !pd_key_eq(&r->end, &r2->start)) fail_msg("merge not adjacent: %s", txt);
            break;
        }
        }
    }
    if (adds > f->s.max_moves) fail_msg("%zu moves started, limit %u", adds, f->s.max_moves);
    free(seen);
}

static void trace_push(fx_trace *t, pd_op_kind kind, pd_range_id range, pd_node_id node,
                       pd_node_id from)
{
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 64;
        t->v = realloc(t->v, t->cap * sizeof(*t->v));
        assert_non_null(t->v);
    }
    t->v[t->n++] = (fx_event){kind, range, node, from};
}

static bool undoes(const fx_trace *t, const pd_op *op)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].kind == PD_OP_ADD_LEARNER && t->v[i].range == op->range &&
            t->v[i].node == op->from && t->v[i].from == op->node)
            return true;
    return false;
}

static bool traced(const fx_trace *t, pd_op_kind kind, pd_range_id range, pd_node_id node)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->v[i].kind == kind && t->v[i].range == range && t->v[i].node == node) return true;
    return false;
}

void fx_apply(fx *f, const pd_ops *ops, fx_trace *t)
{
    for (size_t i = 0; i < ops->n; i++) {
        const pd_op *op = &ops->v[i];
        if (t) {
            t->ops++;
            if (op->kind == PD_OP_ADD_LEARNER) {
                int back = traced(t, PD_OP_REMOVE_REPLICA, op->range, op->node);
                t->reversals += back;
                t->readds += back;
                if (op->from) t->undo += undoes(t, op);
                trace_push(t, op->kind, op->range, op->node, op->from);
                if (op->from) {
                    /* A node pair is recorded as a PROMOTE event (unused
                     * otherwise): range = from, node = to. */
                    t->pair_back += traced(t, PD_OP_PROMOTE, op->node, op->from);
                    trace_push(t, PD_OP_PROMOTE, op->from, op->node, 0);
                }
            } else if (op->kind == PD_OP_REMOVE_REPLICA) {
                int back = traced(t, PD_OP_ADD_LEARNER, op->range, op->node);
                if (back && getenv("PD_TRACE"))
                    fprintf(stderr, "reversal: range %llu node %llu removed after its add\n",
                            (unsigned long long)op->range, (unsigned long long)op->node);
                t->reversals += back;
                trace_push(t, op->kind, op->range, op->node, 0);
            } else if (op->kind == PD_OP_TRANSFER_LEADER) {
                /* Recorded as "taken from the old leader". */
                t->leader_back += traced(t, op->kind, op->range, op->node);
                trace_push(t, op->kind, op->range, pd_cluster_range(&f->c, op->range)->leader, 0);
            }
        }
        merr e = {0};
        char txt[256];
        pd_op_format(op, txt, sizeof(txt));
        if (pd_apply(&f->c, &f->s, op, &e)) fail_msg("apply %s: %s", txt, merr_msg(&e));
    }
}

int fx_converge(fx *f, int max_runs, fx_trace *t)
{
    pd_ops ops;
    pd_ops_init(&ops);
    int runs = 0;
    for (;;) {
        pd_ops_reset(&ops);
        fx_schedule(f, &ops);
        if (ops.n == 0) break;
        if (++runs > max_runs) fail_msg("no quiescence after %d runs", max_runs);
        fx_apply(f, &ops, t);
    }
    pd_ops_free(&ops);
    return runs;
}

void fx_trace_free(fx_trace *t)
{
    free(t->v);
    memset(t, 0, sizeof(*t));
}

int fx_count(const pd_ops *ops, pd_op_kind kind, int reason)
{
    int n = 0;
    for (size_t i = 0; i < ops->n; i++)
        n += ops->v[i].kind == kind && (reason < 0 || (int)ops->v[i].reason == reason);
    return n;
}
