/* txn_sim replicas (see txn_sim.h): each applies the chosen records of its
 * range's log to MVCC versions, tracks safe time with the real safetime
 * module and serves snapshot reads once safe, parking the others. Also the
 * small helpers the range code shares (growing arrays, version lists).
 *
 * Invariants (when enabled): a replica applies a commit at s only while its
 * safe time is below s, and a snapshot read at t sees every version with
 * ts <= t that the range ever chose. */
#include "tests/sim/txn_sim.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int ts_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * size);
    if (!np) return MERR_NOMEM;
    memset((char *)np + *cap * size, 0, (nc - *cap) * size);
    *p = np;
    *cap = nc;
    return 0;
}

int ts_vers_push(ts_vers *v, txn_ts ts, int64_t x)
{
    if (ts_grow((void **)&v->v, &v->cap, v->n + 1, sizeof(ts_ver))) return MERR_NOMEM;
    v->v[v->n++] = (ts_ver){.ts = ts, .v = x};
    return 0;
}

size_t ts_vers_count(const ts_vers *v, txn_ts t)
{
    size_t n = 0;
    while (n < v->n && v->v[n].ts <= t) n++;
    return n;
}

size_t ts_vers_read(const ts_vers *v, txn_ts t, int64_t *items, size_t max)
{
    size_t n = ts_vers_count(v, t);
    if (n > max) n = max;
    for (size_t i = 0; i < n; i++) items[i] = v->v[i].v;
    return n;
}

int ts_is_bank(const ts_sim *s, int slot)
{
    return slot < s->naccts;
}

/* ---- replicas ---- */

static txn_ts safe_time(const ts_sim *s, const ts_replica *p)
{
    /* The injected bug: in-doubt transactions no longer hold safe time back. */
    if (s->inject == TS_INJ_EARLY_SAFE_TIME) return p->safe.closed;
    return txn_safe_time(&p->safe);
}

void ts_replica_serve(ts_sim *s, ts_range *r, ts_replica *p, const ts_snapreq *q)
{
    size_t cn = ts_vers_count(&r->canon[q->slot], q->t),
           pn = ts_vers_count(&p->keys[q->slot], q->t);
    if (s->invariants && cn != pn)
        ts_fail(s, "range %d node %d: read of key %d at %" PRIu64 " sees %zu versions, %zu chosen",
                r->id, p->node, q->slot, q->t, pn, cn);
    ts_msg *m = calloc(1, sizeof(ts_msg) + TS_MAX_ITEMS * sizeof(int64_t));
    if (!m) return;
    s->follower_reads += p != &r->rep[r->leader_rep];
    m->type = M_SNAP_REPLY;
    m->range = r->id;
    m->client = q->client;
    m->seq = q->seq;
    m->slot = q->slot;
    m->ts = q->t;
    m->nitems = (int)ts_vers_read(&p->keys[q->slot], q->t, m->items, TS_MAX_ITEMS);
    if (ts_is_bank(s, q->slot) && m->nitems) { /* a balance: the newest version */
        m->items[0] = m->items[m->nitems - 1];
        m->nitems = 1;
    }
    ts_send(s, p->node, 0, m);
    free(m);
}

static void retry_parked_snaps(ts_sim *s, ts_range *r, ts_replica *p)
{
    txn_ts st = safe_time(s, p);
    size_t j = 0;
    for (size_t i = 0; i < p->nparked; i++) {
        if (p->parked[i].t <= st)
            ts_replica_serve(s, r, p, &p->parked[i]);
        else
            p->parked[j++] = p->parked[i];
    }
    p->nparked = j;
}

static void decided(ts_replica *p, txn_id t)
{
    for (size_t i = 0; i < p->safe.n; i++)
        if (p->safe.doubt[i].txn == t) {
            txn_safe_decided(&p->safe, t, p->safe.doubt[i].prepare_ts);
            return;
        }
}

static void apply_one(ts_sim *s, ts_range *r, ts_replica *p, const ts_logrec *lr)
{
    if (lr->kind == R_CLOSE) {
        txn_safe_close(&p->safe, lr->closed);
        return;
    }
    if (lr->kind == R_GC || lr->dup) return; /* replicas keep no records here */
    const txn_record *rec = &lr->r;
    if (rec->type == TXN_REC_PREPARE) {
        if (txn_safe_prepared(&p->safe, rec->txn, rec->ts))
            ts_fail(s, "range %d: txn %" PRIu64 " prepared twice", r->id, rec->txn);
        return;
    }
    if (rec->type == TXN_REC_COMMIT) {
        txn_ts st = safe_time(s, p);
        if (s->invariants && st >= rec->ts)
            ts_fail(s,
                    "range %d node %d: commit of txn %" PRIu64 " at %" PRIu64
                    " applied after safe time reached %" PRIu64,
                    r->id, p->node, rec->txn, rec->ts, st);
        const ts_txn *t = ts_txn_get(s, rec->txn);
        for (int i = 0; t && i < t->nw; i++) {
            if (ts_range_of(s, t->w[i].slot) != r->id) continue;
            ts_vers *v = &p->keys[t->w[i].slot];
            if (v->n && v->v[v->n - 1].ts >= rec->ts)
                ts_fail(s, "range %d node %d: key %d written at %" PRIu64 " after %" PRIu64, r->id,
                        p->node, t->w[i].slot, rec->ts, v->v[v->n - 1].ts);
            ts_vers_push(v, rec->ts, t->w[i].v);
        }
    }
    decided(p, rec->txn);
}

void ts_replica_apply_upto(ts_sim *s, ts_range *r, ts_replica *p, size_t n)
{
    while (p->applied < n && !s->failed) apply_one(s, r, p, &r->log[p->applied++]);
    retry_parked_snaps(s, r, p);
}

void ts_range_repl(ts_sim *s, int range)
{
    ts_range *r = &s->rg[range];
    int ln = ts_leader_node(s, range);
    for (int i = 0; i < r->nrep; i++) {
        ts_replica *p = &r->rep[i];
        if (i == r->leader_rep || !s->node[p->node].up || !sim_net_up(&s->net, ln, p->node))
            continue;
        size_t n = p->applied + 1 + sim_rng_below(&s->rng, 8);
        ts_replica_apply_upto(s, r, p, n < r->nlog ? n : r->nlog);
    }
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, TS_MS / 2, 8 * TS_MS), TS_EV_REPL, 0,
                   (uint64_t)range, 0, NULL);
}

void ts_replica_on_snap(ts_sim *s, ts_range *r, int node, const ts_msg *m)
{
    for (int i = 0; i < r->nrep; i++) {
        ts_replica *p = &r->rep[i];
        if (p->node != node) continue;
        ts_snapreq q = {.client = m->client, .seq = m->seq, .slot = m->slot, .t = m->ts};
        if (m->ts <= safe_time(s, p)) {
            ts_replica_serve(s, r, p, &q);
        } else if (!ts_grow((void **)&p->parked, &p->capparked, p->nparked + 1, sizeof(q))) {
            p->parked[p->nparked++] = q;
        }
        return;
    }
}
