/* Rebalance and leader schedulers: even out replica counts, then bytes per
 * capacity, between live nodes; honour preferred leader regions; spread
 * leaders evenly.
 *
 * No thrash (docs/placement.md): a count move from s to t needs
 * count(s) ≥ count(t) + 2, so Σ count² falls by at least 2; a bytes move
 * needs count(s) ≥ count(t) + 1 (Σ count² does not rise) and leaves
 * bytes/capacity of s at or above t's (Σ bytes²/capacity falls). Each move
 * strictly lowers the pair (Σ count², Σ bytes²/capacity) in lexicographic
 * order, so no sequence of moves can come back to an earlier state.
 * Leader transfers do the same with Σ leaders². */
#include "placement/pd_view.h"

#include <stdlib.h>
#include <string.h>

typedef struct node_key {
    double key;
    size_t ni;
} node_key;

static int key_desc(const void *a, const void *b)
{
    const node_key *x = a, *y = b;
    if (x->key != y->key) return x->key > y->key ? -1 : 1;
    return x->ni < y->ni ? -1 : x->ni > y->ni;
}

/* LIVE nodes (with a known capacity if `need_cap`), sorted by `key` falling. */
static size_t eligible(const pd_view *v, node_key *out, bool need_cap, bool by_bytes)
{
    size_t n = 0;
    for (size_t ni = 0; ni < v->c->n_nodes; ni++) {
        if (v->n[ni].live != PD_LIVE) continue;
        if (need_cap && !v->c->nodes[ni].capacity_bytes) continue;
        double k = by_bytes ? pd_view_fraction(v, ni) : (double)v->n[ni].replicas;
        out[n++] = (node_key){k, ni};
    }
    qsort(out, n, sizeof(*out), key_desc);
    return n;
}

/* Bytes/capacity of s and t after moving `b` bytes from s to t. */
static void after_move(const pd_view *v, size_t s, size_t t, double b, double *fs, double *ft)
{
    double cs = (double)v->c->nodes[s].capacity_bytes, ct = (double)v->c->nodes[t].capacity_bytes;
    *fs = cs ? ((double)v->n[s].dir_bytes - b) / cs : 0;
    *ft = ct ? ((double)v->n[t].dir_bytes + b) / ct : 0;
}

/* How good range r is to move from s to t (lower is better): ranges s does
 * not lead first (no lease transfer needed), then ones that even out bytes
 * without swapping the order of s and t, the largest such when s is the
 * fuller, the smallest otherwise. */
static void move_rank(const pd_view *v, size_t s, size_t t, const pd_range *r, double rank[3])
{
    double fs, ft, b = (double)r->size_bytes;
    after_move(v, s, t, b, &fs, &ft);
    bool s_fuller = pd_view_fraction(v, s) > pd_view_fraction(v, t);
    rank[0] = r->leader == v->c->nodes[s].id;
    rank[1] = s_fuller && fs < ft;
    rank[2] = s_fuller && !rank[1] ? -b : b;
}

/* A range with a replica on s that may move to t without making its
 * placement worse. by_bytes: the largest whose move keeps s at or above t in
 * bytes/capacity; by count: the best by move_rank. Returns an index or -1. */
static long pick_range(const pd_view *v, size_t s, size_t t, bool by_bytes)
{
    const pd_node *sn = &v->c->nodes[s], *tn = &v->c->nodes[t];
    long best = -1;
    double best_rank[3] = {0, 0, 0};
    for (size_t ri = 0; ri < v->c->n_ranges; ri++) {
        const pd_range *r = &v->c->ranges[ri];
        if (v->busy[ri] || v->merging[ri] || !pd_range_has(r, sn->id)) continue;
        if (!pd_view_range_settled(v, ri)) continue;
        if (!pd_view_target_ok(v, ri, t)) continue;
        pd_quality now = pd_view_quality(v, ri, 0, 0),
                   after = pd_view_quality(v, ri, sn->id, tn->id);
        if (pd_quality_cmp(&after, &now) < 0) continue;
        double rank[3];
        if (by_bytes) {
            double fs, ft;
            after_move(v, s, t, (double)r->size_bytes, &fs, &ft);
            if (r->size_bytes == 0 || fs < ft) continue;
            rank[0] = 0;
            rank[1] = 0;
            rank[2] = -(double)r->size_bytes;
        } else {
            move_rank(v, s, t, r, rank);
        }
        if (best >= 0) {
            int k = 0;
            while (k < 3 && rank[k] == best_rank[k]) k++;
            if (k == 3 || rank[k] > best_rank[k]) continue;
        }
        best = (long)ri;
        memcpy(best_rank, rank, sizeof(rank));
    }
    return best;
}

/* One move by replica count or by bytes; 1 if one was emitted. */
static int one_move(pd_view *v, node_key *nk, bool by_bytes)
{
    size_t n = eligible(v, nk, by_bytes, by_bytes);
    if (n < 2) return 0;
    double sum = 0, cap = 0;
    for (size_t i = 0; i < n; i++) {
        const pd_nstat *st = &v->n[nk[i].ni];
        sum += by_bytes ? (double)st->dir_bytes : (double)st->replicas;
        cap += by_bytes ? (double)v->c->nodes[nk[i].ni].capacity_bytes : 1.0;
    }
    double mean = sum / cap;
    double band = v->s->rebalance_threshold * mean;
    if (!by_bytes && band < 1.0) band = 1.0; /* counts: at least one replica apart */
    for (size_t a = 0; a < n; a++) {
        size_t s = nk[a].ni;
        for (size_t b = n; b-- > a + 1;) {
            size_t t = nk[b].ni;
            double ks = nk[a].key, kt = nk[b].key;
            if (!(ks > mean + band || kt < mean - band)) continue;
            int cs = v->n[s].replicas, ct = v->n[t].replicas;
            if (by_bytes ? cs < ct + 1 : cs < ct + 2) continue;
            long ri = pick_range(v, s, t, by_bytes);
            if (ri < 0) continue;
            pd_op op = {.kind = PD_OP_ADD_LEARNER, .reason = PD_REASON_REBALANCE};
            op.range = v->c->ranges[ri].id;
            op.node = v->c->nodes[t].id;
            op.from = v->c->nodes[s].id;
            int rc = pd_view_emit(v, &op);
            return rc ? rc : 1;
        }
    }
    return 0;
}

/* Whether any move is under way, or repair or constraint moves are waiting
 * for the budget. Rebalancing waits for a quiet cluster: other moves change
 * the counts it works from (a range whose first constraint move is under way
 * may want a second), and a rebalance move made before them could be undone
 * after. Waiting keeps the no-thrash argument exact: between two rebalance
 * rounds, only rebalance moves changed the counts. */
static bool higher_priority_pending(const pd_view *v)
{
    if (v->moves) return true;
    for (size_t i = 0; i < v->out->n; i++) {
        const pd_op *op = &v->out->v[i];
        if (op->kind == PD_OP_ADD_LEARNER &&
            (op->reason == PD_REASON_REPAIR || op->reason == PD_REASON_DECOMMISSION ||
             op->reason == PD_REASON_CONSTRAINT))
            return true;
    }
    for (size_t ri = 0; ri < v->c->n_ranges; ri++) {
        if (v->busy[ri]) continue;
        if (pd_repair_pending(v, ri)) return true;
        pd_node_id from;
        if (pd_view_range_settled(v, ri) && pd_constraint_move(v, ri, &from) >= 0) return true;
    }
    return false;
}

int pd_schedule_rebalance(const pd_cluster *c, const pd_settings *s, pd_ops *out)
{
    pd_view v;
    int rc = pd_view_build(&v, c, s, out);
    if (rc) return rc;
    if (higher_priority_pending(&v)) {
        pd_view_free(&v);
        return 0;
    }
    node_key *nk = malloc((c->n_nodes ? c->n_nodes : 1) * sizeof(*nk));
    if (!nk) rc = merr_set(&out->err, MERR_NOMEM, "placement: out of memory");
    /* Counts first; bytes only once counts are settled for this run. */
    for (int by_bytes = 0; by_bytes < 2 && !rc; by_bytes++) {
        while (pd_view_can_move(&v)) {
            int r = one_move(&v, nk, by_bytes);
            if (r <= 0) {
                rc = r;
                break;
            }
        }
    }
    free(nk);
    pd_view_free(&v);
    return rc;
}

static int transfer(pd_view *v, size_t ri, size_t ni, pd_reason why)
{
    pd_op op = {.kind = PD_OP_TRANSFER_LEADER, .reason = why, .range = v->c->ranges[ri].id};
    op.node = v->c->nodes[ni].id;
    return pd_view_emit(v, &op);
}

/* Leases off draining nodes and into the preferred region while a healthy
 * voter there exists. */
static int leaders_preferred(pd_view *v)
{
    int rc = 0;
    for (size_t ri = 0; ri < v->c->n_ranges && !rc; ri++) {
        const pd_range *r = &v->c->ranges[ri];
        long li = r->leader ? pd_view_node(v, r->leader) : -1;
        if (v->busy[ri] || li < 0) continue;
        pd_liveness l = v->n[li].live;
        const char *pref = pd_view_lead_region(v, ri);
        long t = pd_view_leader_target(v, ri, r->leader);
        if (t < 0) continue;
        if (l == PD_DECOMMISSIONING) {
            rc = transfer(v, ri, (size_t)t, PD_REASON_DECOMMISSION);
        } else if (l == PD_LIVE && pref && strcmp(v->c->nodes[li].region, pref) != 0 &&
                   strcmp(v->c->nodes[t].region, pref) == 0) {
            rc = transfer(v, ri, (size_t)t, PD_REASON_LEADER_PREF);
        }
    }
    return rc;
}

static int leaders_balance(pd_view *v)
{
    double sum = 0;
    size_t n = 0;
    for (size_t ni = 0; ni < v->c->n_nodes; ni++) {
        if (v->n[ni].live != PD_LIVE) continue;
        sum += v->n[ni].leaders;
        n++;
    }
    if (n < 2) return 0;
    double mean = sum / (double)n, band = v->s->rebalance_threshold * mean;
    if (band < 1.0) band = 1.0;
    int rc = 0;
    for (size_t ri = 0; ri < v->c->n_ranges && !rc; ri++) {
        const pd_range *r = &v->c->ranges[ri];
        long s = r->leader ? pd_view_node(v, r->leader) : -1;
        if (v->busy[ri] || s < 0 || v->n[s].live != PD_LIVE) continue;
        /* Not the first range: it holds the catalog's version, which every
         * transaction reads and locks, and most transactions' records, so a
         * lease move there drops the lock table under all of them at once.
         * Only preference and decommission move it (leaders_preferred). */
        if (r->start.len == 0) continue;
        const char *pref = pd_view_lead_region(v, ri);
        bool s_pref = pref && strcmp(v->c->nodes[s].region, pref) == 0;
        long best = -1;
        for (int i = 0; i < r->n_replicas; i++) {
            const pd_replica *p = &r->replicas[i];
            long t = pd_view_node(v, p->node);
            if (p->role != PD_VOTER || p->unhosted || t == s || v->n[t].live != PD_LIVE) continue;
            if (s_pref && strcmp(v->c->nodes[t].region, pref) != 0) continue;
            int ls = v->n[s].leaders, lt = v->n[t].leaders;
            if (lt > ls - 2 || !(ls > mean + band || lt < mean - band)) continue;
            if (best >= 0 && v->n[best].leaders <= lt) continue;
            best = t;
        }
        if (best >= 0) rc = transfer(v, ri, (size_t)best, PD_REASON_LEADER_BALANCE);
    }
    return rc;
}

int pd_schedule_leaders(const pd_cluster *c, const pd_settings *s, pd_ops *out)
{
    pd_view v;
    int rc = pd_view_build(&v, c, s, out);
    if (rc) return rc;
    rc = leaders_preferred(&v);
    if (!rc) rc = leaders_balance(&v);
    pd_view_free(&v);
    return rc;
}
