/* The placement data model: settings, liveness, keys, building and checking
 * cluster snapshots, and the operation list (see pd_model.h). */
#include "common/buf.h"
#include "placement/pd_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIB (1024ULL * 1024ULL)

void pd_settings_default(pd_settings *s)
{
    memset(s, 0, sizeof(*s));
    s->range_max_bytes = 64 * MIB;
    /* A quarter of max: two merged ranges stay below max/2, so a merged range
     * has to double before it splits again (hysteresis, as CockroachDB's
     * 128/512 MiB defaults). */
    s->range_min_bytes = 16 * MIB;
    s->range_split_qps = 2500;
    s->merge_qps_fraction = 0.25;
    s->merge_cooldown_ns = 600LL * 1000000000LL;
    s->dead_timeout_ns = 30LL * 1000000000LL;
    /* Five missed one-second heartbeats: long enough to ride out a GC pause or
     * a brief partition, short enough to stop placing on a failing node. */
    s->suspect_timeout_ns = 5LL * 1000000000LL;
    s->rebalance_threshold = 0.10;
    s->max_moves = 8;
    s->max_fullness = 0.95;
    s->default_replication_factor = 3;
    /* Far beyond a snapshot of a 64 MiB range on a busy node: only a learner
     * that will never catch up (its node lost the range) meets it. */
    s->learner_timeout_ns = 300LL * 1000000000LL;
}

static bool valid_rf(int rf)
{
    return rf == 1 || rf == 3 || rf == 5;
}

int pd_settings_validate(const pd_settings *s, merr *e)
{
    if (!s) return merr_set(e, MERR_INVALID, "settings: missing");
    if (s->range_max_bytes == 0) return merr_set(e, MERR_INVALID, "range.max_bytes must be > 0");
    if (s->range_min_bytes > s->range_max_bytes / 2)
        return merr_set(e, MERR_INVALID,
                        "range.min_bytes (%llu) must be at most half of range.max_bytes (%llu), "
                        "or a merge would be split again",
                        (unsigned long long)s->range_min_bytes,
                        (unsigned long long)s->range_max_bytes);
    if (!(s->range_split_qps > 0)) return merr_set(e, MERR_INVALID, "range.split_qps must be > 0");
    if (!(s->merge_qps_fraction >= 0 && s->merge_qps_fraction <= 0.5))
        return merr_set(e, MERR_INVALID, "merge qps fraction must be in [0, 0.5]");
    if (s->merge_cooldown_ns < 0) return merr_set(e, MERR_INVALID, "merge cool-down must be >= 0");
    if (s->dead_timeout_ns <= 0) return merr_set(e, MERR_INVALID, "node.dead_timeout must be > 0");
    if (s->learner_timeout_ns <= 0)
        return merr_set(e, MERR_INVALID, "move.learner_timeout must be > 0");
    if (s->suspect_timeout_ns <= 0 || s->suspect_timeout_ns > s->dead_timeout_ns)
        return merr_set(e, MERR_INVALID, "node.suspect_timeout must be in (0, node.dead_timeout]");
    if (!(s->rebalance_threshold >= 0 && s->rebalance_threshold <= 1))
        return merr_set(e, MERR_INVALID, "rebalance threshold must be in [0, 1]");
    if (s->max_moves == 0) return merr_set(e, MERR_INVALID, "max concurrent moves must be >= 1");
    if (!(s->max_fullness > 0 && s->max_fullness <= 1))
        return merr_set(e, MERR_INVALID, "max fullness must be in (0, 1]");
    if (!valid_rf(s->default_replication_factor))
        return merr_set(e, MERR_INVALID, "default replication factor must be 1, 3 or 5");
    return 0;
}

pd_liveness pd_node_liveness(const pd_node *n, const pd_settings *s, int64_t now_ns)
{
    int64_t silent = now_ns - n->last_heartbeat_ns;
    if (silent < 0) silent = 0;
    if (silent >= s->dead_timeout_ns) return PD_DEAD;
    if (n->decommissioning) return PD_DECOMMISSIONING;
    if (silent >= s->suspect_timeout_ns) return PD_SUSPECT;
    return PD_LIVE;
}

const char *pd_liveness_name(pd_liveness l)
{
    switch (l) {
    case PD_LIVE: return "live";
    case PD_SUSPECT: return "suspect";
    case PD_DEAD: return "dead";
    case PD_DECOMMISSIONING: return "decommissioning";
    }
    return "unknown";
}

int pd_key_set(pd_key *k, const void *p, size_t len)
{
    k->p = NULL;
    k->len = 0;
    if (len == 0) return 0;
    k->p = malloc(len);
    if (!k->p) return MERR_NOMEM;
    memcpy(k->p, p, len);
    k->len = len;
    return 0;
}

void pd_key_free(pd_key *k)
{
    free(k->p);
    k->p = NULL;
    k->len = 0;
}

int pd_key_cmp(const pd_key *a, const pd_key *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->p, b->p, n) : 0;
    if (c) return c;
    return a->len < b->len ? -1 : a->len > b->len ? 1 : 0;
}

bool pd_key_eq(const pd_key *a, const pd_key *b)
{
    return pd_key_cmp(a, b) == 0;
}

bool pd_key_inside(const pd_key *k, const pd_key *start, const pd_key *end)
{
    if (k->len == 0) return false;
    if (pd_key_cmp(k, start) <= 0) return false;
    return end->len == 0 || pd_key_cmp(k, end) < 0;
}

int pd_range_voters(const pd_range *r)
{
    int n = 0;
    for (int i = 0; i < r->n_replicas; i++) n += r->replicas[i].role == PD_VOTER;
    return n;
}

bool pd_range_has(const pd_range *r, pd_node_id id)
{
    for (int i = 0; i < r->n_replicas; i++)
        if (r->replicas[i].node == id) return true;
    return false;
}

bool pd_range_has_learner(const pd_range *r)
{
    for (int i = 0; i < r->n_replicas; i++)
        if (r->replicas[i].role == PD_LEARNER) return true;
    return false;
}

void pd_cluster_init(pd_cluster *c)
{
    memset(c, 0, sizeof(*c));
}

void pd_range_free(pd_range *r)
{
    pd_key_free(&r->start);
    pd_key_free(&r->end);
    pd_key_free(&r->mid_key);
    pd_key_free(&r->load_key);
}

void pd_cluster_free(pd_cluster *c)
{
    for (size_t i = 0; i < c->n_ranges; i++) pd_range_free(&c->ranges[i]);
    for (size_t i = 0; i < c->n_policies; i++) {
        pd_key_free(&c->policies[i].start);
        pd_key_free(&c->policies[i].end);
    }
    free(c->nodes);
    free(c->ranges);
    free(c->policies);
    free(c->inflight);
    pd_cluster_init(c);
}

/* Grows an array of `size`-byte elements to hold one more. */
static int grow(void **v, size_t *cap, size_t n, size_t size)
{
    if (n < *cap) return 0;
    size_t ncap = *cap ? *cap * 2 : 16;
    void *nv = realloc(*v, ncap * size);
    if (!nv) return MERR_NOMEM;
    *v = nv;
    *cap = ncap;
    return 0;
}

static bool name_ok(const char *s)
{
    return memchr(s, '\0', PD_NAME_MAX) != NULL;
}

int pd_cluster_add_node(pd_cluster *c, const pd_node *n)
{
    if (!name_ok(n->region) || !name_ok(n->zone)) return MERR_INVALID;
    if (grow((void **)&c->nodes, &c->cap_nodes, c->n_nodes, sizeof(*n))) return MERR_NOMEM;
    c->nodes[c->n_nodes++] = *n;
    return 0;
}

int pd_cluster_add_range(pd_cluster *c, const pd_range *r)
{
    if (r->n_replicas < 0 || r->n_replicas > PD_MAX_REPLICAS) return MERR_INVALID;
    if (grow((void **)&c->ranges, &c->cap_ranges, c->n_ranges, sizeof(*r))) return MERR_NOMEM;
    pd_range nr = *r;
    nr.start = nr.end = nr.mid_key = nr.load_key = (pd_key){0};
    if (pd_key_set(&nr.start, r->start.p, r->start.len) ||
        pd_key_set(&nr.end, r->end.p, r->end.len) ||
        pd_key_set(&nr.mid_key, r->mid_key.p, r->mid_key.len) ||
        pd_key_set(&nr.load_key, r->load_key.p, r->load_key.len)) {
        pd_range_free(&nr);
        return MERR_NOMEM;
    }
    c->ranges[c->n_ranges++] = nr;
    return 0;
}

int pd_cluster_add_policy(pd_cluster *c, const pd_policy *p)
{
    if (p->n_allowed < 0 || p->n_allowed > PD_MAX_REGIONS || !name_ok(p->lead_region))
        return MERR_INVALID;
    for (int i = 0; i < p->n_allowed; i++)
        if (!name_ok(p->allowed_regions[i])) return MERR_INVALID;
    if (grow((void **)&c->policies, &c->cap_policies, c->n_policies, sizeof(*p))) return MERR_NOMEM;
    pd_policy np = *p;
    np.start = np.end = (pd_key){0};
    if (pd_key_set(&np.start, p->start.p, p->start.len) ||
        pd_key_set(&np.end, p->end.p, p->end.len)) {
        pd_key_free(&np.start);
        return MERR_NOMEM;
    }
    c->policies[c->n_policies++] = np;
    return 0;
}

int pd_cluster_add_inflight(pd_cluster *c, const pd_inflight *f)
{
    if (grow((void **)&c->inflight, &c->cap_inflight, c->n_inflight, sizeof(*f))) return MERR_NOMEM;
    c->inflight[c->n_inflight++] = *f;
    return 0;
}

int pd_cluster_copy(pd_cluster *dst, const pd_cluster *src)
{
    pd_cluster_init(dst);
    dst->now_ns = src->now_ns;
    for (size_t i = 0; i < src->n_nodes; i++)
        if (pd_cluster_add_node(dst, &src->nodes[i])) goto err;
    for (size_t i = 0; i < src->n_ranges; i++)
        if (pd_cluster_add_range(dst, &src->ranges[i])) goto err;
    for (size_t i = 0; i < src->n_policies; i++)
        if (pd_cluster_add_policy(dst, &src->policies[i])) goto err;
    for (size_t i = 0; i < src->n_inflight; i++)
        if (pd_cluster_add_inflight(dst, &src->inflight[i])) goto err;
    return 0;
err:
    pd_cluster_free(dst);
    return MERR_NOMEM;
}

bool pd_inflight_visible(const pd_cluster *c, const pd_inflight *f)
{
    const pd_range *r = pd_cluster_range(c, f->range);
    if (!r) return false;
    const pd_replica *m = NULL;
    for (int i = 0; i < r->n_replicas; i++)
        if (r->replicas[i].node == f->node) m = &r->replicas[i];
    switch (f->kind) {
    case PD_OP_ADD_LEARNER: return m != NULL;
    case PD_OP_PROMOTE: return m && m->role == PD_VOTER;
    case PD_OP_REMOVE_REPLICA: return m == NULL;
    case PD_OP_TRANSFER_LEADER: return r->leader == f->node;
    default: return false;
    }
}

pd_node *pd_cluster_node(const pd_cluster *c, pd_node_id id)
{
    for (size_t i = 0; i < c->n_nodes; i++)
        if (c->nodes[i].id == id) return &c->nodes[i];
    return NULL;
}

pd_range *pd_cluster_range(const pd_cluster *c, pd_range_id id)
{
    for (size_t i = 0; i < c->n_ranges; i++)
        if (c->ranges[i].id == id) return &c->ranges[i];
    return NULL;
}

/* qsort contexts are not reentrant-safe in C11, so spans are sorted as
 * (start, end, index) records. */
typedef struct span_ref {
    const pd_key *start, *end;
    size_t idx;
} span_ref;

static int span_cmp(const void *a, const void *b)
{
    const span_ref *x = a, *y = b;
    return pd_key_cmp(x->start, y->start);
}

/* Checks that spans are well-formed and pairwise disjoint. */
static int check_spans(span_ref *v, size_t n, const char *what, merr *e)
{
    for (size_t i = 0; i < n; i++)
        if (v[i].end->len && pd_key_cmp(v[i].start, v[i].end) >= 0)
            return merr_set(e, MERR_INVALID, "%s #%zu: start is not below end", what, v[i].idx);
    qsort(v, n, sizeof(*v), span_cmp);
    for (size_t i = 1; i < n; i++) {
        const pd_key *pend = v[i - 1].end;
        if (pend->len == 0 || pd_key_cmp(v[i].start, pend) < 0)
            return merr_set(e, MERR_INVALID, "%s #%zu overlaps %s #%zu", what, v[i].idx, what,
                            v[i - 1].idx);
    }
    return 0;
}

static int validate_range(const pd_cluster *c, const pd_range *r, merr *e)
{
    if (r->id == 0) return merr_set(e, MERR_INVALID, "range with id 0");
    if (r->n_replicas < 1 || r->n_replicas > PD_MAX_REPLICAS)
        return merr_set(e, MERR_INVALID, "range %llu: %d replicas", (unsigned long long)r->id,
                        r->n_replicas);
    int voters = 0;
    bool leader_ok = r->leader == 0;
    for (int i = 0; i < r->n_replicas; i++) {
        const pd_replica *p = &r->replicas[i];
        if (!pd_cluster_node(c, p->node))
            return merr_set(e, MERR_INVALID, "range %llu: replica on unknown node %llu",
                            (unsigned long long)r->id, (unsigned long long)p->node);
        if (p->role != PD_VOTER && p->role != PD_LEARNER)
            return merr_set(e, MERR_INVALID, "range %llu: bad replica role",
                            (unsigned long long)r->id);
        for (int j = 0; j < i; j++)
            if (r->replicas[j].node == p->node)
                return merr_set(e, MERR_INVALID, "range %llu: two replicas on node %llu",
                                (unsigned long long)r->id, (unsigned long long)p->node);
        if (p->role == PD_VOTER) voters++;
        if (p->role == PD_VOTER && p->node == r->leader) leader_ok = true;
    }
    if (voters == 0)
        return merr_set(e, MERR_INVALID, "range %llu: no voters", (unsigned long long)r->id);
    if (!leader_ok)
        return merr_set(e, MERR_INVALID, "range %llu: leader %llu is not a voter",
                        (unsigned long long)r->id, (unsigned long long)r->leader);
    return 0;
}

static int id_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Range ids are unique: sorted, so a directory of many ranges stays cheap. */
static int check_unique_ids(const pd_cluster *c, merr *e)
{
    uint64_t *ids = malloc((c->n_ranges ? c->n_ranges : 1) * sizeof(*ids));
    if (!ids) return merr_set(e, MERR_NOMEM, "validate: out of memory");
    for (size_t i = 0; i < c->n_ranges; i++) ids[i] = c->ranges[i].id;
    qsort(ids, c->n_ranges, sizeof(*ids), id_cmp);
    int rc = 0;
    for (size_t i = 1; i < c->n_ranges && !rc; i++)
        if (ids[i] == ids[i - 1])
            rc = merr_set(e, MERR_INVALID, "duplicate range id %llu", (unsigned long long)ids[i]);
    free(ids);
    return rc;
}

int pd_cluster_validate(const pd_cluster *c, merr *e)
{
    int rc = 0;
    size_t nspan = c->n_ranges > c->n_policies ? c->n_ranges : c->n_policies;
    span_ref *spans = malloc((nspan ? nspan : 1) * sizeof(*spans));
    if (!spans) return merr_set(e, MERR_NOMEM, "validate: out of memory");
    for (size_t i = 0; i < c->n_nodes; i++) {
        if (c->nodes[i].id == 0) {
            rc = merr_set(e, MERR_INVALID, "node with id 0");
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (c->nodes[j].id == c->nodes[i].id) {
                rc = merr_set(e, MERR_INVALID, "duplicate node id %llu",
                              (unsigned long long)c->nodes[i].id);
                goto out;
            }
    }
    for (size_t i = 0; i < c->n_ranges; i++) {
        if ((rc = validate_range(c, &c->ranges[i], e))) goto out;
        spans[i] = (span_ref){&c->ranges[i].start, &c->ranges[i].end, i};
    }
    if ((rc = check_unique_ids(c, e))) goto out;
    if ((rc = check_spans(spans, c->n_ranges, "range", e))) goto out;
    for (size_t i = 0; i < c->n_policies; i++) {
        const pd_policy *p = &c->policies[i];
        if (!valid_rf(p->replication_factor)) {
            rc = merr_set(e, MERR_INVALID, "policy #%zu: replication factor %d is not 1, 3 or 5", i,
                          p->replication_factor);
            goto out;
        }
        if (p->survival != PD_SURVIVE_ZONE && p->survival != PD_SURVIVE_REGION) {
            rc = merr_set(e, MERR_INVALID, "policy #%zu: bad survival goal", i);
            goto out;
        }
        spans[i] = (span_ref){&p->start, &p->end, i};
    }
    if ((rc = check_spans(spans, c->n_policies, "policy", e))) goto out;
    /* In-flight ops naming a range that has since gone are harmless and not
     * checked: the op finished and the executor has not pruned it yet. */
out:
    free(spans);
    return rc;
}

void pd_ops_init(pd_ops *o)
{
    memset(o, 0, sizeof(*o));
}

void pd_ops_reset(pd_ops *o)
{
    for (size_t i = 0; i < o->n; i++) pd_key_free(&o->v[i].key);
    o->n = 0;
    o->n_unavailable = 0;
    merr_clear(&o->err);
}

void pd_ops_free(pd_ops *o)
{
    pd_ops_reset(o);
    free(o->v);
    free(o->unavailable);
    pd_ops_init(o);
}

int pd_ops_push(pd_ops *o, const pd_op *op)
{
    if (grow((void **)&o->v, &o->cap, o->n, sizeof(*op))) return MERR_NOMEM;
    pd_op n = *op;
    if (pd_key_set(&n.key, op->key.p, op->key.len)) return MERR_NOMEM;
    o->v[o->n++] = n;
    return 0;
}

int pd_ops_push_unavailable(pd_ops *o, pd_range_id id)
{
    if (grow((void **)&o->unavailable, &o->cap_unavailable, o->n_unavailable, sizeof(id)))
        return MERR_NOMEM;
    o->unavailable[o->n_unavailable++] = id;
    return 0;
}

const char *pd_op_kind_name(pd_op_kind k)
{
    switch (k) {
    case PD_OP_SPLIT: return "SPLIT";
    case PD_OP_MERGE: return "MERGE";
    case PD_OP_ADD_LEARNER: return "ADD_LEARNER";
    case PD_OP_PROMOTE: return "PROMOTE";
    case PD_OP_REMOVE_REPLICA: return "REMOVE_REPLICA";
    case PD_OP_TRANSFER_LEADER: return "TRANSFER_LEADER";
    }
    return "UNKNOWN";
}

const char *pd_reason_name(pd_reason r)
{
    static const char *const names[] = {
        "size", "load",      "policy",      "repair",         "decommission", "constraint",
        "move", "rebalance", "leader-pref", "leader-balance", "merge",
    };
    if ((unsigned)r < sizeof(names) / sizeof(names[0])) return names[r];
    return "unknown";
}

size_t pd_op_format(const pd_op *op, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "%s range=%llu", pd_op_kind_name(op->kind),
                     (unsigned long long)op->range);
    size_t len = n > 0 ? (size_t)n : 0;
    if (op->range2) mstr_appendf(buf, cap, &len, " right=%llu", (unsigned long long)op->range2);
    if (op->node) mstr_appendf(buf, cap, &len, " node=%llu", (unsigned long long)op->node);
    if (op->from) mstr_appendf(buf, cap, &len, " from=%llu", (unsigned long long)op->from);
    if (op->kind == PD_OP_SPLIT) {
        mstr_appendf(buf, cap, &len, " key=");
        for (size_t i = 0; i < op->key.len; i++) {
            uint8_t b = op->key.p[i];
            if (b >= 0x21 && b < 0x7f && b != '\\')
                mstr_appendf(buf, cap, &len, "%c", b);
            else
                mstr_appendf(buf, cap, &len, "\\x%02x", b);
        }
    }
    mstr_appendf(buf, cap, &len, " reason=%s", pd_reason_name(op->reason));
    return len < cap ? len : (cap ? cap - 1 : 0);
}
