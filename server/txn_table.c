/* Per-range transaction state at the leaseholder (see txn_table.h): lock
 * tables bound to a Paxos ballot, the transaction map, the wound/grant queue,
 * and the sweep that ends idle transactions and tables whose lease is gone. */
#include "server/txn_table.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "proto/txn.pb-c.h"
#include "server/txn_2pc.h"

#define MOD             "txn"
#define TX_KEEP_NS      (60LL * MTIME_S) /* finished transactions remembered (retried commits) */
#define TX_MAX_TXNS     100000           /* known transactions per range */
#define TX_KEEPALIVE_NS (400LL * MTIME_MS)

static size_t bucket(txn_id id)
{
    return (size_t)((id * 0x9e3779b97f4a7c15ULL) >> 56) % TX_BUCKETS;
}

static int ballot_eq(paxos_ballot a, paxos_ballot b)
{
    return a.round == b.round && a.node == b.node;
}

/* A lease may lapse while the group is quiet and be renewed under the same
 * ballot: no other leader can have existed in between (it would need a
 * higher ballot promised by a quorum, and that quorum would have refused the
 * renewal), so the locks are still good. A new ballot, or losing the leader
 * role, means another leader may have written: the table goes. Serving
 * still needs a valid lease (route() in txn_service.c). */
int tx_range_valid(tx_range *rg)
{
    /* A range merged away is no longer in the host (its replica is freed). */
    if (host_find(rg->s->h, rg->range_id) != rg->r) return 0;
    paxos_group *g = replica_group(rg->r);
    /* After a split or merge the locks cover a span the range no longer
     * (or not only) has: the table ends, its transactions abort and retry
     * on the new routes. */
    return paxos_get_role(g) == PAXOS_LEADER && ballot_eq(rg->ballot, paxos_get_ballot(g)) &&
           rg->generation == replica_generation(rg->r);
}

tx_range *tx_range_find(txn_service *s, uint64_t range_id)
{
    for (tx_range *rg = s->ranges; rg; rg = rg->next)
        if (rg->range_id == range_id) return rg;
    return NULL;
}

int tx_range_draining(tx_range *rg)
{
    /* A lost ballot needs no wait: the log orders the old leader's
     * proposals before anything the next leader proposes. */
    if (host_find(rg->s->h, rg->range_id) != rg->r) return 0;
    paxos_group *g = replica_group(rg->r);
    if (paxos_get_role(g) != PAXOS_LEADER || !ballot_eq(rg->ballot, paxos_get_ballot(g))) return 0;
    if (!rg->drain_set) {
        rg->drain_set = 1;
        rg->drain_upto = replica_newest_pending(rg->r);
    }
    uint64_t oldest = replica_oldest_pending(rg->r);
    return txn_drain_waits(rg->drain_upto, oldest);
}

tx_range *tx_range_get(txn_service *s, replica *r, int *code, const char **why)
{
    tx_range *rg = tx_range_find(s, replica_id(r));
    if (rg && !tx_range_valid(rg)) {
        if (tx_range_draining(rg)) {
            *code = MERR_BUSY;
            *why = "the range split or merged: writes from before are still applying; retry";
            return NULL;
        }
        tx_range_drop(rg, "the lease moved: the transaction's locks are gone");
        rg = NULL;
    }
    if (rg) return rg;
    *code = MERR_NOMEM;
    *why = "out of memory";
    rg = calloc(1, sizeof(*rg));
    if (!rg) return NULL;
    if (txn_lock_table_new(NULL, &rg->lt)) {
        free(rg);
        return NULL;
    }
    txn_lock_out_init(&rg->out);
    rg->s = s;
    rg->r = r;
    rg->range_id = replica_id(r);
    rg->ballot = paxos_get_ballot(replica_group(r));
    rg->generation = replica_generation(r);
    /* A timestamp names the table: unique on this node (the HLC never
     * repeats, also across restarts) and, leases being disjoint, larger
     * than any earlier leaseholder's. */
    tt_interval tt;
    hlc_ts ts = 0;
    if (host_now(s->h, &tt, NULL) || hlc_now(&s->h->hlc, tt.latest_ns, &ts, NULL))
        ts = (uint64_t)mtime_real_ns();
    rg->epoch = ts ^ ((uint64_t)s->h->node_id << 56);
    rg->next = s->ranges;
    s->ranges = rg;
    MLOG_I(MOD, "lock table created", "range=%" PRIu64 " epoch=%" PRIu64, rg->range_id, rg->epoch);
    tx2_rebuild(rg); /* prepared transactions keep their locks across leaders */
    *code = 0;
    return rg;
}

tx_range *tx_range_for(txn_service *s, replica *r)
{
    int code;
    const char *why;
    return tx_range_get(s, r, &code, &why);
}

void tx_parked_free(tx_parked *pk)
{
    if (!pk) return;
    if (pk->q) protobuf_c_message_free_unpacked(pk->q, NULL);
    mbuf_free(&pk->lo);
    mbuf_free(&pk->hi);
    free(pk);
}

static void txn_free(tx_txn *t)
{
    tx2_free(t);
    tx_parked_free(t->pk);
    free(t->waiters);
    free(t);
}

void tx_range_drop(tx_range *rg, const char *why)
{
    txn_service *s = rg->s;
    for (tx_range **pp = &s->ranges; *pp; pp = &(*pp)->next)
        if (*pp == rg) {
            *pp = rg->next;
            break;
        }
    MLOG_I(MOD, "lock table dropped", "range=%" PRIu64 " reason=\"%s\"", rg->range_id, why);
    s->tables_dropped++;
    for (size_t i = 0; i < TX_BUCKETS; i++) {
        while (rg->b[i]) {
            tx_txn *t = rg->b[i];
            rg->b[i] = t->next;
            if (t->pk) txs_fail(s, rg->r, t->pk->req, t->pk->kind, MERR_ABORTED, why, 1);
            tx2_drop(rg, t, why);
            /* A commit in flight: its outcome is in the log (the durable
             * transaction record); the retried commit finds it there. */
            for (size_t w = 0; w < t->nwaiters; w++)
                txs_fail(s, rg->r, t->waiters[w], TX_COMMIT, MERR_UNAVAILABLE,
                         "the lease moved while committing: retry the commit", 0);
            txn_free(t);
        }
    }
    txn_lock_table_free(rg->lt);
    txn_lock_out_free(&rg->out);
    free(rg->q);
    mbuf_free(&rg->gc_cursor);
    free(rg);
}

tx_txn *tx_txn_find(tx_range *rg, txn_id id)
{
    for (tx_txn *t = rg->b[bucket(id)]; t; t = t->next)
        if (t->id == id) return t;
    return NULL;
}

tx_txn *tx_txn_add(tx_range *rg, txn_id id, txn_ts prio)
{
    txn_lock_stats st;
    txn_lock_get_stats(rg->lt, &st);
    if (st.txns > TX_MAX_TXNS) return NULL;
    tx_txn *t = calloc(1, sizeof(*t));
    if (!t) return NULL;
    t->id = id;
    t->prio = prio;
    t->state = TX_ACTIVE;
    t->last_ns = mtime_mono_ns();
    size_t b = bucket(id);
    t->next = rg->b[b];
    rg->b[b] = t;
    return t;
}

void tx_txn_forget(tx_range *rg, tx_txn *t)
{
    for (tx_txn **pp = &rg->b[bucket(t->id)]; *pp; pp = &(*pp)->next)
        if (*pp == t) {
            *pp = t->next;
            break;
        }
    txn_free(t);
}

static int enqueue(tx_range *rg, int wound, txn_id txn, uint64_t tag)
{
    if (rg->nq == rg->capq) {
        size_t cap = rg->capq ? rg->capq * 2 : 32;
        tx_work *q = realloc(rg->q, cap * sizeof(*q));
        if (!q) return MERR_NOMEM;
        rg->q = q;
        rg->capq = cap;
    }
    rg->q[rg->nq++] = (tx_work){wound, txn, tag};
    return 0;
}

void tx_queue_out(tx_range *rg)
{
    /* Out of memory here would strand a grant: nothing sensible is left to
     * do, and the idle sweep will end the transactions concerned. */
    for (size_t i = 0; i < rg->out.n_wounded; i++)
        if (enqueue(rg, 1, rg->out.wounded[i], 0))
            MLOG_E(MOD, "wound lost: out of memory", "txn=%" PRIu64, rg->out.wounded[i]);
    for (size_t i = 0; i < rg->out.n_granted; i++)
        if (enqueue(rg, 0, rg->out.granted[i].txn, rg->out.granted[i].tag))
            MLOG_E(MOD, "grant lost: out of memory", "txn=%" PRIu64, rg->out.granted[i].txn);
}

void tx_txn_release(tx_range *rg, tx_txn *t)
{
    if (txn_lock_release_all(rg->lt, t->id, &rg->out) == 0) tx_queue_out(rg);
}

void tx_txn_abort(tx_range *rg, tx_txn *t, const char *why)
{
    MLOG_D(MOD, "transaction aborted here", "range=%" PRIu64 " txn=%" PRIu64 " why=\"%s\"",
           rg->range_id, (uint64_t)t->id, why);
    if (t->pk) {
        txs_fail(rg->s, rg->r, t->pk->req, t->pk->kind, MERR_ABORTED, why, 1);
        tx_parked_free(t->pk);
        t->pk = NULL;
    }
    tx_txn_release(rg, t);
    t->state = TX_ABORTED;
    t->last_ns = mtime_mono_ns();
}

void tx_pump(tx_range *rg)
{
    if (rg->pumping) return; /* the outer call drains what this one queued */
    rg->pumping = 1;
    for (size_t i = 0; i < rg->nq; i++) {
        tx_work w = rg->q[i];
        tx_txn *t = tx_txn_find(rg, w.txn);
        if (!t) continue;
        if (w.wound) {
            if (t->state == TX_ACTIVE) {
                rg->s->wounds++;
                tx_txn_abort(rg, t, "wounded by an older transaction");
            }
        } else if (t->pk && t->pk->tag == w.tag) {
            tx_parked *pk = t->pk;
            t->pk = NULL;
            txs_resume(rg, t, pk);
        }
    }
    rg->nq = 0;
    rg->pumping = 0;
}

static void on_keepalive(void *arg, int code, const char *msg, uint64_t ts)
{
    (void)arg, (void)code, (void)msg, (void)ts;
}

void tx_sweep(txn_service *s)
{
    int64_t now = mtime_mono_ns();
    /* A leaseholder that has no lock table yet (nobody asked it anything)
     * but holds prepared intents takes them over: it must ask their
     * coordinators, or they would block snapshot reads forever. Likewise
     * one holding transaction records, so that they get collected. */
    for (size_t i = 0; i < s->h->nreps; i++) {
        replica *r = s->h->reps[i];
        if (!tx_range_find(s, replica_id(r)) && replica_is_lease_owner(r) &&
            (tx2_min_prepared(r) || tx2_has_records(r)))
            (void)tx_range_for(s, r);
    }
    for (tx_range *rg = s->ranges, *next; rg; rg = next) {
        next = rg->next;
        if (!tx_range_valid(rg)) {
            if (tx_range_draining(rg)) continue; /* dropped once its writes applied */
            if (host_find(s->h, rg->range_id) != rg->r) {
                tx_range_drop(rg, "the range merged into its neighbour: the locks are gone");
                continue;
            }
            paxos_group *g = replica_group(rg->r);
            paxos_ballot b = paxos_get_ballot(g);
            MLOG_I(MOD, "leadership changed",
                   "range=%" PRIu64 " role=%s ballot=%" PRIu64 ".%u table_ballot=%" PRIu64 ".%u",
                   rg->range_id, paxos_role_name(paxos_get_role(g)), b.round, (unsigned)b.node,
                   rg->ballot.round, (unsigned)rg->ballot.node);
            tx_range_drop(rg, "this node lost leadership or the range split: the transaction's "
                              "locks are gone");
            continue;
        }
        size_t open = 0;
        for (size_t i = 0; i < TX_BUCKETS; i++) {
            for (tx_txn *t = rg->b[i], *tn; t; t = tn) {
                tn = t->next;
                if (t->x2) tx2_sweep(rg, t, now); /* resends, timeouts, status queries */
                if (t->state == TX_ACTIVE && !t->pk && now - t->last_ns > s->idle_ns) {
                    MLOG_I(MOD, "idle transaction aborted", "range=%" PRIu64 " txn=%" PRIu64,
                           rg->range_id, t->id);
                    s->idle_aborts++;
                    tx_txn_abort(rg, t, "the transaction was idle too long: its locks are gone");
                } else if ((t->state == TX_COMMITTED || t->state == TX_ABORTED) &&
                           now - t->last_ns > TX_KEEP_NS && !tx2_busy(t)) {
                    tx_txn_forget(rg, t);
                } else if (t->state == TX_ACTIVE || t->state == TX_COMMITTING) {
                    open++;
                }
            }
        }
        tx2_gc(rg, now); /* transaction records whose outcome nobody can ask for again */
        /* A leader with no proposals goes quiet and lets its lease (and,
         * failing check-quorum, its leadership) lapse, which would abort
         * every open transaction: while some hold locks, an empty write now
         * and then keeps the lease. */
        if (open && now - rg->last_prop_ns > TX_KEEPALIVE_NS && replica_is_leaseholder(rg->r)) {
            rg->last_prop_ns = now;
            replica_write(rg->r, NULL, 0, 0, on_keepalive, NULL, NULL);
        }
        tx_pump(rg);
    }
}
