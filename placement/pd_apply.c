/* The model applier: what each operation does to a snapshot, so tests and
 * the simulator can run schedule → apply → schedule until quiescent. It also
 * checks each op's preconditions, which makes it the tests' oracle for "this
 * op is executable". */
#include "placement/pd_sched.h"

#include <stdlib.h>
#include <string.h>

static int find_replica(const pd_range *r, pd_node_id id)
{
    for (int i = 0; i < r->n_replicas; i++)
        if (r->replicas[i].node == id) return i;
    return -1;
}

static void node_delta(pd_cluster *c, pd_node_id id, int replicas, int leaders, int64_t bytes)
{
    pd_node *n = pd_cluster_node(c, id);
    if (!n) return;
    n->replica_count = (uint32_t)((int64_t)n->replica_count + replicas);
    n->leader_count = (uint32_t)((int64_t)n->leader_count + leaders);
    int64_t used = (int64_t)n->used_bytes + bytes;
    n->used_bytes = used < 0 ? 0 : (uint64_t)used;
}

static uint64_t next_generation(const pd_cluster *c)
{
    uint64_t g = 0;
    for (size_t i = 0; i < c->n_ranges; i++)
        if (c->ranges[i].generation > g) g = c->ranges[i].generation;
    return g + 1;
}

static int apply_split(pd_cluster *c, size_t ri, const pd_key *key, merr *e)
{
    pd_range *r = &c->ranges[ri];
    if (!pd_key_inside(key, &r->start, &r->end))
        return merr_set(e, MERR_INVALID, "split range %llu: key not inside the range",
                        (unsigned long long)r->id);
    pd_range_id id = 0;
    for (size_t i = 0; i < c->n_ranges; i++)
        if (c->ranges[i].id > id) id = c->ranges[i].id;
    pd_range right = *r;
    right.id = id + 1;
    right.start = *key;
    right.mid_key = right.load_key = (pd_key){0};
    right.size_bytes = r->size_bytes / 2;
    right.keys = r->keys / 2;
    right.reads_per_s = r->reads_per_s / 2;
    right.writes_per_s = r->writes_per_s / 2;
    right.generation = next_generation(c);
    right.last_split_merge_ns = c->now_ns;
    if (pd_cluster_add_range(c, &right)) return merr_set(e, MERR_NOMEM, "split: out of memory");
    r = &c->ranges[ri]; /* the array may have moved */
    pd_key end;
    if (pd_key_set(&end, key->p, key->len)) return merr_set(e, MERR_NOMEM, "split: no memory");
    pd_key_free(&r->end);
    pd_key_free(&r->mid_key);
    pd_key_free(&r->load_key);
    r->end = end;
    r->size_bytes -= right.size_bytes;
    r->keys -= right.keys;
    r->reads_per_s -= right.reads_per_s;
    r->writes_per_s -= right.writes_per_s;
    r->generation = right.generation;
    r->last_split_merge_ns = c->now_ns;
    for (int i = 0; i < r->n_replicas; i++) node_delta(c, r->replicas[i].node, +1, 0, 0);
    if (r->leader) node_delta(c, r->leader, 0, +1, 0);
    return 0;
}

static int apply_merge(pd_cluster *c, size_t li, pd_range_id right_id, merr *e)
{
    pd_range *l = &c->ranges[li], *r = pd_cluster_range(c, right_id);
    if (!r || r == l) return merr_set(e, MERR_INVALID, "merge: no right-hand range");
    if (l->end.len == 0 || !pd_key_eq(&l->end, &r->start))
        return merr_set(e, MERR_INVALID, "merge %llu+%llu: not adjacent", (unsigned long long)l->id,
                        (unsigned long long)r->id);
    if (l->n_replicas != r->n_replicas)
        return merr_set(e, MERR_INVALID, "merge: replica sets differ");
    for (int i = 0; i < l->n_replicas; i++) {
        int j = find_replica(r, l->replicas[i].node);
        if (j < 0 || r->replicas[j].role != PD_VOTER || l->replicas[i].role != PD_VOTER)
            return merr_set(e, MERR_INVALID, "merge: replica sets differ");
    }
    pd_key_free(&l->end);
    l->end = r->end;
    r->end = (pd_key){0};
    l->size_bytes += r->size_bytes;
    l->keys += r->keys;
    l->reads_per_s += r->reads_per_s;
    l->writes_per_s += r->writes_per_s;
    l->generation = next_generation(c);
    l->last_split_merge_ns = c->now_ns;
    pd_key_free(&l->mid_key);
    pd_key_free(&l->load_key);
    for (int i = 0; i < r->n_replicas; i++) node_delta(c, r->replicas[i].node, -1, 0, 0);
    if (r->leader) node_delta(c, r->leader, 0, -1, 0);
    size_t ri = (size_t)(r - c->ranges);
    pd_range_free(r);
    c->ranges[ri] = c->ranges[--c->n_ranges];
    return 0;
}

static bool node_dead(const pd_cluster *c, const pd_settings *s, pd_node_id id)
{
    const pd_node *n = pd_cluster_node(c, id);
    return !n || pd_node_liveness(n, s, c->now_ns) == PD_DEAD;
}

static int apply_remove(pd_cluster *c, const pd_settings *s, pd_range *r, pd_node_id id, merr *e)
{
    int i = find_replica(r, id);
    if (i < 0)
        return merr_set(e, MERR_INVALID, "remove: node %llu holds no replica",
                        (unsigned long long)id);
    if (r->replicas[i].role == PD_VOTER && pd_range_voters(r) == 1)
        return merr_set(e, MERR_INVALID, "remove: the last voter of range %llu",
                        (unsigned long long)r->id);
    if (id == r->leader && !node_dead(c, s, id))
        return merr_set(e, MERR_INVALID, "remove: node %llu leads range %llu; transfer first",
                        (unsigned long long)id, (unsigned long long)r->id);
    r->replicas[i] = r->replicas[--r->n_replicas];
    for (int j = 0; j < r->n_replicas; j++)
        if (r->replicas[j].replaces == id) r->replicas[j].replaces = 0;
    node_delta(c, id, -1, 0, -(int64_t)r->size_bytes);
    if (id == r->leader) {
        /* The dead leader's group elects another voter. */
        node_delta(c, id, 0, -1, 0);
        r->leader = 0;
        for (int j = 0; j < r->n_replicas && !r->leader; j++)
            if (r->replicas[j].role == PD_VOTER && !node_dead(c, s, r->replicas[j].node))
                r->leader = r->replicas[j].node;
        if (r->leader) node_delta(c, r->leader, 0, +1, 0);
    }
    return 0;
}

int pd_apply(pd_cluster *c, const pd_settings *s, const pd_op *op, merr *e)
{
    pd_range *r = pd_cluster_range(c, op->range);
    if (!r) return merr_set(e, MERR_INVALID, "range %llu not found", (unsigned long long)op->range);
    size_t ri = (size_t)(r - c->ranges);
    if (op->kind == PD_OP_SPLIT) return apply_split(c, ri, &op->key, e);
    if (op->kind == PD_OP_MERGE) return apply_merge(c, ri, op->range2, e);
    if (!pd_cluster_node(c, op->node))
        return merr_set(e, MERR_INVALID, "node %llu not found", (unsigned long long)op->node);
    int i = find_replica(r, op->node);
    switch (op->kind) {
    case PD_OP_ADD_LEARNER:
        if (i >= 0 || r->n_replicas >= PD_MAX_REPLICAS)
            return merr_set(e, MERR_INVALID, "add learner: node %llu already in range %llu or full",
                            (unsigned long long)op->node, (unsigned long long)r->id);
        r->replicas[r->n_replicas++] = (pd_replica){
            .node = op->node,
            .role = PD_LEARNER,
            .caught_up = true,
            .replaces = op->from && find_replica(r, op->from) >= 0 ? op->from : 0,
        };
        node_delta(c, op->node, +1, 0, (int64_t)r->size_bytes);
        break;
    case PD_OP_PROMOTE:
        if (i < 0 || r->replicas[i].role != PD_LEARNER)
            return merr_set(e, MERR_INVALID, "promote: node %llu is not a learner of range %llu",
                            (unsigned long long)op->node, (unsigned long long)r->id);
        r->replicas[i].role = PD_VOTER;
        break;
    case PD_OP_REMOVE_REPLICA: {
        int rc = apply_remove(c, s, r, op->node, e);
        if (rc) return rc;
        break;
    }
    case PD_OP_TRANSFER_LEADER:
        if (i < 0 || r->replicas[i].role != PD_VOTER)
            return merr_set(e, MERR_INVALID, "transfer: node %llu is not a voter of range %llu",
                            (unsigned long long)op->node, (unsigned long long)r->id);
        if (r->leader) node_delta(c, r->leader, 0, -1, 0);
        r->leader = op->node;
        node_delta(c, op->node, 0, +1, 0);
        return 0; /* a lease change is not a configuration change */
    default: return merr_set(e, MERR_INVALID, "unknown op kind %d", (int)op->kind);
    }
    r->generation = next_generation(c);
    return 0;
}
