/* txn_sim ranges: each range is an abstract replicated log (see txn_sim.h)
 * with a leader that runs the real lock table and the real 2PC machines;
 * its replicas (txn_sim_replica.c) apply the chosen records to MVCC versions
 * and track safe time with the real safetime module, serving snapshot reads
 * once safe.
 *
 * Invariants checked as records are chosen and applied (when enabled):
 *  - a committed txn's reads in a range are still the latest versions at
 *    its commit (its shared locks held), older than s; its writes land above
 *    every earlier version and above every committed reader of the key: so
 *    conflicting committed txns are ordered by timestamp;
 *  - one outcome and one s per txn across all ranges;
 *  - a replica applies a commit at s only while its safe time is below s,
 *    and a snapshot read at t sees every version with ts <= t that the range
 *    ever chose: a read at t never misses a commit with s <= t. */
#include "tests/sim/txn_sim.h"

#include "txn/txnrec.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

int ts_range_init(ts_sim *s, ts_range *r, int id)
{
    memset(r, 0, sizeof(*r));
    r->id = id;
    r->nrep = s->nodes >= 5 ? 3 : s->nodes;
    for (int i = 0; i < r->nrep; i++) {
        ts_replica *p = &r->rep[i];
        p->node = 1 + (id - 1 + i) % s->nodes;
        txn_safe_init(&p->safe);
    }
    r->epoch = 1;
    /* Accounts start with their balance at ts 1, everywhere. */
    for (int k = 0; k < s->naccts; k++) {
        if (ts_range_of(s, k) != id) continue;
        if (ts_vers_push(&r->canon[k], 1, s->initial)) return MERR_NOMEM;
        for (int i = 0; i < r->nrep; i++)
            if (ts_vers_push(&r->rep[i].keys[k], 1, s->initial)) return MERR_NOMEM;
    }
    return txn_lock_table_new(NULL, &r->lt);
}

static void free_leader(ts_range *r)
{
    for (size_t i = 0; i < r->capm; i++) free(r->m[i]);
    free(r->m);
    r->m = NULL;
    r->capm = 0;
    free(r->parked);
    r->parked = NULL;
    r->nparked = r->capparked = 0;
    txn_lock_table_free(r->lt);
    r->lt = NULL;
}

void ts_range_free(ts_range *r)
{
    free_leader(r);
    for (int i = 0; i < r->nrep; i++) {
        txn_safe_free(&r->rep[i].safe);
        for (int k = 0; k < TS_MAX_KEYS; k++) free(r->rep[i].keys[k].v);
        free(r->rep[i].parked);
    }
    for (int k = 0; k < TS_MAX_KEYS; k++) free(r->canon[k].v);
    free(r->log);
    free(r->pend);
    free(r->outcome);
    free(r->rec);
}

int ts_leader_node(const ts_sim *s, int range)
{
    return s->rg[range].rep[s->rg[range].leader_rep].node;
}

/* ---- the log ---- */

/* O_GONE: the range's record of the txn was collected (txn_sim_gc.c). */
enum { O_NONE = 0, O_PREPARED, O_COMMITTED, O_ABORTED, O_GONE };

/* Appends a chosen record: the oracle's checks and duplicate marking. */
static void log_append(ts_sim *s, ts_range *r, const ts_logrec *in)
{
    if (ts_grow((void **)&r->log, &r->caplog, r->nlog + 1, sizeof(ts_logrec))) {
        ts_fail(s, "out of memory");
        return;
    }
    ts_logrec *lr = &r->log[r->nlog++];
    *lr = *in;
    lr->dup = 0;
    if (lr->kind == R_CLOSE) return;
    const txn_record *rec = &lr->r;
    if (ts_grow((void **)&r->outcome, &r->capout, rec->txn + 1, 1)) {
        ts_fail(s, "out of memory");
        return;
    }
    if (lr->kind == R_GC) {
        r->outcome[rec->txn] = O_GONE;
        ts_gc_logged(s, r, lr);
        return;
    }
    uint8_t *o = &r->outcome[rec->txn];
    ts_txn *t = ts_txn_get(s, rec->txn);
    sim_trace_add(&s->tr, s->now, "r%d chosen %s txn %" PRIu64 " ts %" PRIu64, r->id,
                  rec->type == TXN_REC_PREPARE  ? "prepare"
                  : rec->type == TXN_REC_COMMIT ? "commit"
                                                : "abort",
                  rec->txn, rec->ts);
    if (rec->type == TXN_REC_PREPARE) {
        lr->dup = *o != O_NONE;
        if (!lr->dup) *o = O_PREPARED;
        return;
    }
    uint8_t want = rec->type == TXN_REC_COMMIT ? O_COMMITTED : O_ABORTED;
    if (*o == O_GONE) {
        /* A record logged after its predecessor was collected: a presumed
         * abort for a late question. Harmless unless someone acts on it,
         * which the checks at participants and clients catch; a commit is
         * never harmless (txn/txnrec.h: a late commit request is refused). */
        lr->dup = 1;
        if (want == O_COMMITTED && s->invariants)
            ts_fail(s, "txn %" PRIu64 " committed again at range %d after its record was collected",
                    rec->txn, r->id);
        return;
    }
    if (*o == O_COMMITTED || *o == O_ABORTED) {
        lr->dup = 1;
        if (*o != want)
            ts_fail(s, "range %d logged both commit and abort of txn %" PRIu64, r->id, rec->txn);
        return;
    }
    *o = want;
    ts_gc_logged(s, r, lr);
    if (!t) return;
    int committed = want == O_COMMITTED ? 1 : 2;
    if (committed == 1 && t->told == 2 && s->invariants)
        ts_fail(s, "txn %" PRIu64 " commits at range %d after its client was told it aborted",
                rec->txn, r->id);
    if (t->committed && (t->committed != committed || (committed == 1 && t->s != rec->ts)))
        ts_fail(s, "txn %" PRIu64 ": range %d disagrees on the outcome or s", rec->txn, r->id);
    t->committed = committed;
    if (committed != 1) return;
    t->s = rec->ts;
    txn_ts sc = rec->ts;
    for (int i = 0; i < t->nrd && s->invariants; i++) {
        int k = t->rd[i].slot;
        if (ts_range_of(s, k) != r->id) continue;
        /* What it read must be the newest version at or below s. */
        const ts_vers *v = &r->canon[k];
        size_t n = ts_vers_count(v, sc);
        txn_ts seen = n ? v->v[n - 1].ts : 0;
        if (t->rd[i].ver_ts != seen)
            ts_fail(s,
                    "txn %" PRIu64 " commits at %" PRIu64 " but read key %d at version %" PRIu64
                    ", the version at s is %" PRIu64,
                    rec->txn, sc, k, t->rd[i].ver_ts, seen);
    }
    for (int i = 0; i < t->nrd; i++) {
        int k = t->rd[i].slot;
        if (ts_range_of(s, k) == r->id && r->max_read_s[k] < sc) r->max_read_s[k] = sc;
    }
    for (int i = 0; i < t->nw; i++) {
        int k = t->w[i].slot;
        if (ts_range_of(s, k) != r->id) continue;
        /* A strong read took a ts here before this commit was chosen: it
         * must lie below s, or that read missed a write at or below its ts. */
        if (s->invariants && sc <= r->strong_max)
            ts_fail(s,
                    "txn %" PRIu64 " writes key %d at %" PRIu64
                    ", at or below a strong read's ts %" PRIu64 " taken before",
                    rec->txn, k, sc, r->strong_max);
        ts_vers *v = &r->canon[k];
        if (s->invariants && ((v->n && v->v[v->n - 1].ts >= sc) || r->max_read_s[k] > sc))
            ts_fail(s, "txn %" PRIu64 " writes key %d at %" PRIu64 " below an earlier access",
                    rec->txn, k, sc);
        ts_vers_push(v, sc, t->w[i].v);
    }
}

/* ---- leader: machines, locks, actions ---- */

static void reply_lock(ts_sim *s, ts_range *r, const ts_parked *q, int ok)
{
    ts_msg *m = calloc(1, sizeof(ts_msg) + TS_MAX_ITEMS * sizeof(int64_t));
    if (!m) return;
    m->type = M_LOCK_REPLY;
    m->range = r->id;
    m->client = q->client;
    m->seq = q->seq;
    m->txn = q->txn;
    m->slot = q->slot;
    m->outcome = ok ? TXN_OUTCOME_COMMITTED : TXN_OUTCOME_ABORTED;
    m->epoch = r->epoch;
    if (ok && q->want_read) {
        /* The leader's replica has applied everything chosen. */
        const ts_vers *v = &r->rep[r->leader_rep].keys[q->slot];
        m->ver_ts = v->n ? v->v[v->n - 1].ts : 0;
        m->nitems = (int)ts_vers_read(v, UINT64_MAX, m->items, TS_MAX_ITEMS);
        if (ts_is_bank(s, q->slot) && m->nitems) {
            m->items[0] = m->items[m->nitems - 1];
            m->nitems = 1;
        }
    }
    ts_send(s, ts_leader_node(s, r->id), 0, m);
    free(m);
}

static ts_mach *mach(ts_sim *s, ts_range *r, txn_id t, bool leader)
{
    if (ts_grow((void **)&r->m, &r->capm, t + 1, sizeof(ts_mach *))) return NULL;
    if (r->m[t]) return r->m[t];
    ts_mach *m = calloc(1, sizeof(*m));
    if (!m) return NULL;
    const ts_txn *tx = ts_txn_get(s, t);
    m->coord = tx && tx->coord == r->id;
    if (m->coord)
        txn_coord_init(&m->c, t, (uint64_t)r->id, r->epoch, leader);
    else
        txn_part_init(&m->p, t, (uint64_t)r->id, r->epoch, leader);
    m->last_activity = s->now;
    r->m[t] = m;
    return m;
}

static bool mach_final(const ts_mach *m)
{
    if (m->coord)
        return m->c.st == TXN_COORD_COMMITTED || m->c.st == TXN_COORD_ABORTED ||
               m->c.st == TXN_COORD_ABANDONED;
    return m->p.st == TXN_PART_COMMITTED || m->p.st == TXN_PART_ABORTED;
}

static bool mach_active(const ts_mach *m)
{
    return m->coord ? m->c.st == TXN_COORD_ACTIVE : m->p.st == TXN_PART_ACTIVE;
}

void ts_range_propose(ts_sim *s, ts_range *r, const ts_logrec *lr)
{
    if (ts_grow((void **)&r->pend, &r->cappend, r->npend + 1, sizeof(ts_logrec))) {
        ts_fail(s, "out of memory");
        return;
    }
    r->pend[r->npend++] = *lr;
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, TS_MS / 2, 6 * TS_MS), TS_EV_CHOOSE, 0,
                   (uint64_t)r->id, r->epoch, NULL);
}

static void send_range(ts_sim *s, ts_range *r, int to, ts_msg *m)
{
    m->range = to;
    m->from_range = r->id;
    ts_send(s, ts_leader_node(s, r->id), ts_leader_node(s, to), m);
}

static void handle_grants(ts_sim *s, ts_range *r, const txn_lock_out *o);

static void step(ts_sim *s, ts_range *r, txn_id t, const txn_event *ev);
static void release(ts_sim *s, ts_range *r, txn_id t);

/* Aborts txn t here because the lock table wounded it. */
static void wound(ts_sim *s, ts_range *r, txn_id t)
{
    s->wounds++;
    txn_event ev = {.type = TXN_EV_ABORT};
    ts_clk(s, ts_leader_node(s, r->id), &ev.clk, r->last_assigned);
    step(s, r, t, &ev);
    /* The table expects the wounded to let go at once, whatever the machine
     * said: a coordinator already ABORTING (a participant said no) would
     * otherwise hold its locks until its abort record is chosen. */
    txn_lock_txn_info info;
    if (txn_lock_txn_get(r->lt, t, &info) == 0) release(s, r, t);
}

static void release(ts_sim *s, ts_range *r, txn_id t)
{
    txn_lock_out o;
    txn_lock_out_init(&o);
    if (txn_lock_release_all(r->lt, t, &o)) ts_fail(s, "release_all failed");
    /* Its own parked requests will never be granted now. */
    size_t j = 0;
    for (size_t i = 0; i < r->nparked; i++) {
        if (r->parked[i].txn == t)
            reply_lock(s, r, &r->parked[i], 0);
        else
            r->parked[j++] = r->parked[i];
    }
    r->nparked = j;
    handle_grants(s, r, &o);
    txn_lock_out_free(&o);
}

static void lock_again(ts_sim *s, ts_range *r, txn_id t, txn_ts prio, int slot, txn_lock_mode mode)
{
    uint8_t key[2] = {(uint8_t)(slot >> 8), (uint8_t)slot};
    txn_lock_req q = {.txn = t, .prio = prio, .span = txn_span_point(key, 2), .mode = mode};
    txn_lock_out o;
    txn_lock_out_init(&o);
    merr e = {0};
    int rc = txn_lock_acquire(r->lt, &q, &o, &e);
    if (rc || o.status != TXN_LOCK_GRANTED || o.n_wounded)
        ts_fail(s, "range %d: new leader could not retake the locks of prepared txn %" PRIu64,
                r->id, t);
    txn_lock_out_free(&o);
}

/* A new leader retakes a prepared txn's locks: the shared locks on what it
 * read here as well as the exclusive ones on what it writes. Its commit ts
 * is not known yet and may end up above any ts this leader assigns, so a
 * write to a key it read must wait for its outcome like under the old
 * leader (the prepare record carries both sets; docs/transactions.md). */
static void reacquire(ts_sim *s, ts_range *r, txn_id t)
{
    const ts_txn *tx = ts_txn_get(s, t);
    if (!tx) return;
    for (int i = 0; i < tx->nrd && s->inject != TS_INJ_REACQUIRE_WRITES_ONLY; i++)
        if (ts_range_of(s, tx->rd[i].slot) == r->id)
            lock_again(s, r, t, tx->prio, tx->rd[i].slot, TXN_LOCK_S);
    for (int i = 0; i < tx->nw; i++)
        if (ts_range_of(s, tx->w[i].slot) == r->id)
            lock_again(s, r, t, tx->prio, tx->w[i].slot, TXN_LOCK_X);
}

static void do_actions(ts_sim *s, ts_range *r, txn_id t, const txn_out *out, bool quiet_aborts)
{
    for (size_t i = 0; i < out->n && !s->failed; i++) {
        const txn_action *a = &out->a[i];
        ts_msg m = {0};
        m.txn = t;
        switch (a->type) {
        case TXN_ACT_PROPOSE: {
            ts_logrec lr = {.kind = R_TXN, .r = out->rec};
            const ts_mach *k = t < r->capm ? r->m[t] : NULL;
            if (k && k->coord && out->rec.type != TXN_REC_PREPARE) {
                /* The record keeps the client's deadline, for its GC; a
                 * presumed abort (no commit request known) one no accepted
                 * deadline can pass (txn/txnrec.h). */
                txn_clock c;
                ts_clk(s, ts_leader_node(s, r->id), &c, r->last_assigned);
                lr.deadline_us =
                    k->deadline_us ? k->deadline_us : txn_rec_presumed_deadline(c.tt_latest / 1000);
            }
            ts_range_propose(s, r, &lr);
            break;
        }
        case TXN_ACT_SEND_VOTE:
            m.type = M_VOTE;
            m.yes = a->yes;
            m.ts = a->ts;
            send_range(s, r, (int)a->to, &m);
            break;
        case TXN_ACT_SEND_DECISION:
            if (quiet_aborts && a->outcome == TXN_OUTCOME_ABORTED) break;
            m.type = M_DECISION;
            m.outcome = a->outcome;
            m.ts = a->ts;
            send_range(s, r, (int)a->to, &m);
            break;
        case TXN_ACT_STATUS_QUERY:
            m.type = M_QUERY;
            m.ts = a->ts;
            send_range(s, r, (int)a->to, &m);
            break;
        case TXN_ACT_REPLY_CLIENT: {
            const ts_txn *tx = ts_txn_get(s, t);
            if (!tx) break;
            if (a->outcome == TXN_OUTCOME_COMMITTED && s->now <= (int64_t)a->ts && s->invariants)
                ts_fail(s, "txn %" PRIu64 " acknowledged at %" PRId64 " before s %" PRIu64, t,
                        s->now, a->ts);
            m.type = M_REPLY;
            m.range = r->id;
            m.client = tx->client;
            m.outcome = a->outcome;
            m.ts = a->ts;
            ts_send(s, ts_leader_node(s, r->id), 0, &m);
            break;
        }
        case TXN_ACT_COMMIT_WAIT: {
            /* Wake up about when the leader's clock will say tt_after(ts). */
            int64_t off = sim_clock_offset(&s->node[ts_leader_node(s, r->id)].clock, s->now);
            int64_t at = (int64_t)a->ts + s->eps - off + 1;
            if (s->inject == TS_INJ_SKIP_COMMIT_WAIT || at <= s->now) at = s->now + 1000;
            sim_queue_push(&s->q, at, TS_EV_TT, 0, (uint64_t)r->id, t, NULL);
            break;
        }
        case TXN_ACT_APPLY: break; /* replicas apply the chosen record itself */
        case TXN_ACT_RELEASE_LOCKS: release(s, r, t); break;
        case TXN_ACT_MARK_PREPARED: {
            int rc = txn_lock_set_prepared(r->lt, t);
            if (rc && rc != MERR_NOTFOUND)
                ts_fail(s, "range %d: mark prepared txn %" PRIu64 ": %s", r->id, t, merr_name(rc));
            break;
        }
        case TXN_ACT_REACQUIRE_LOCKS: reacquire(s, r, t); break;
        case TXN_ACT_ASSIGNED_TS:
            if (a->ts > r->last_assigned) r->last_assigned = a->ts;
            break;
        }
    }
}

static void step(ts_sim *s, ts_range *r, txn_id t, const txn_event *ev)
{
    ts_mach *m = mach(s, r, t, true);
    if (!m) {
        ts_fail(s, "out of memory");
        return;
    }
    txn_out out;
    merr e = {0};
    int rc = m->coord ? txn_coord_step(&m->c, ev, &out, &e) : txn_part_step(&m->p, ev, &out, &e);
    if (rc) {
        /* A client's abort of an attempt that already moved on is refused. */
        if (ev->type == TXN_EV_ABORT && rc == MERR_PROTOCOL) return;
        /* A late answer from a fresh coordinator after the record went, to a
         * participant that logged the outcome already: ignored (the node's
         * resolve is idempotent). An in-doubt one would take it: caught. */
        if (!m->coord && ev->type == TXN_EV_DECISION && rc == MERR_PROTOCOL &&
            (m->p.st == TXN_PART_COMMITTED || m->p.st == TXN_PART_ABORTED) &&
            ts_gc_stale_answer(s, t))
            return;
        ts_fail(s, "range %d txn %" PRIu64 " refused %s: %s", r->id, t, txn_event_name(ev->type),
                e.msg);
        return;
    }
    m->last_activity = s->now;
    do_actions(s, r, t, &out, false);
}

static void handle_grants(ts_sim *s, ts_range *r, const txn_lock_out *o)
{
    for (size_t i = 0; i < o->n_wounded; i++) wound(s, r, o->wounded[i]);
    for (size_t i = 0; i < o->n_granted; i++) {
        for (size_t j = 0; j < r->nparked; j++) {
            if (r->parked[j].tag != o->granted[i].tag) continue;
            ts_parked q = r->parked[j];
            r->parked[j] = r->parked[--r->nparked];
            reply_lock(s, r, &q, 1);
            break;
        }
    }
}

static void on_lock(ts_sim *s, ts_range *r, const ts_msg *msg)
{
    ts_mach *m = mach(s, r, msg->txn, true);
    if (!m) return;
    ts_parked q = {.tag = ++r->next_tag,
                   .txn = msg->txn,
                   .client = msg->client,
                   .seq = msg->seq,
                   .slot = msg->slot,
                   .want_read = msg->want_read};
    if (!mach_active(m)) {
        reply_lock(s, r, &q, 0);
        return;
    }
    m->last_activity = s->now;
    if (msg->mode == TXN_LOCK_S && s->inject == TS_INJ_NO_READ_LOCKS) {
        reply_lock(s, r, &q, 1);
        return;
    }
    uint8_t key[2] = {(uint8_t)(msg->slot >> 8), (uint8_t)msg->slot};
    txn_lock_req req = {.txn = msg->txn,
                        .prio = msg->prio,
                        .span = txn_span_point(key, 2),
                        .mode = (txn_lock_mode)msg->mode,
                        .tag = q.tag};
    txn_lock_out o;
    txn_lock_out_init(&o);
    merr e = {0};
    int rc = txn_lock_acquire(r->lt, &req, &o, &e);
    if (rc == MERR_ABORTED) {
        reply_lock(s, r, &q, 0);
    } else if (rc) {
        ts_fail(s, "range %d: lock: %s", r->id, e.msg);
    } else if (o.status == TXN_LOCK_GRANTED) {
        reply_lock(s, r, &q, 1);
    } else if (ts_grow((void **)&r->parked, &r->capparked, r->nparked + 1, sizeof(ts_parked))) {
        ts_fail(s, "out of memory");
    } else {
        r->parked[r->nparked++] = q;
    }
    handle_grants(s, r, &o);
    txn_lock_out_free(&o);
}

/* A strong read at the leader (server/txn_snapshot.c, the settled path):
 * with nothing in flight (no proposal pending, the whole log applied at the
 * leader's replica) and nothing in doubt at or below it, t is the leader's
 * HLC now, raised into last_assigned so every later write of the range lands
 * above it; the answer waits until t has passed on the leader's clock
 * (commit-wait). Otherwise the client is told to pick t itself, as the
 * node's barrier path would have (the safe-time reads stand for it). */
static void strong_read(ts_sim *s, ts_range *r, int node, const ts_msg *m)
{
    if (node != ts_leader_node(s, r->id)) return; /* NOT_LEADER: the client retries */
    ts_replica *p = &r->rep[r->leader_rep];
    txn_clock c;
    ts_clk(s, node, &c, r->last_assigned);
    txn_ts t = c.tt_latest > c.hlc_now ? c.tt_latest : c.hlc_now;
    if (t <= r->last_assigned) t = r->last_assigned + 1;
    const txn_doubt *d = txn_safe_first_doubt(&p->safe);
    if (r->npend || p->applied != r->nlog || (d && d->prepare_ts <= t)) {
        s->strong_busy++;
        ts_msg busy = {.type = M_SNAP_REPLY,
                       .range = r->id,
                       .client = m->client,
                       .seq = m->seq,
                       .slot = m->slot,
                       .outcome = TXN_OUTCOME_ABORTED};
        ts_send(s, node, 0, &busy);
        return;
    }
    if (s->inject != TS_INJ_STRONG_NO_BUMP) r->last_assigned = t;
    if (t > r->strong_max) r->strong_max = t;
    s->strong_settled++;
    ts_strong *w = malloc(sizeof(*w));
    if (!w) {
        ts_fail(s, "out of memory");
        return;
    }
    w->q = (ts_snapreq){.client = m->client, .seq = m->seq, .slot = m->slot, .t = t};
    w->rep = r->leader_rep;
    w->crashes = s->crashes;
    sim_trace_add(&s->tr, s->now, "r%d strong read at n%d: ts %" PRIu64, r->id, node, t);
    /* Until the leader's tt.earliest passes t, as TXN_ACT_COMMIT_WAIT. */
    int64_t at = (int64_t)t + s->eps - sim_clock_offset(&s->node[node].clock, s->now) + 1;
    if (at <= s->now) at = s->now + 1000;
    if (sim_queue_push(&s->q, at, TS_EV_STRONG, 0, (uint64_t)r->id, 0, w)) {
        free(w);
        ts_fail(s, "out of memory");
    }
}

void ts_range_strong_done(ts_sim *s, int range, ts_strong *w)
{
    ts_range *r = &s->rg[range];
    ts_replica *p = &r->rep[w->rep];
    /* A crash (of any node, to keep it simple) forgets the wait: the client retries. */
    if (w->crashes == s->crashes && s->node[p->node].up) ts_replica_serve(s, r, p, &w->q);
    free(w);
}

void ts_range_on_msg(ts_sim *s, int node, const ts_msg *m)
{
    if (m->range < 1 || m->range > s->ranges) return;
    ts_range *r = &s->rg[m->range];
    if (m->type == M_SNAP) {
        if (m->ts)
            ts_replica_on_snap(s, r, node, m);
        else
            strong_read(s, r, node, m);
        return;
    }
    if (node != ts_leader_node(s, m->range)) return; /* NOT_LEADER: the sender times out */
    txn_event ev = {0};
    ts_clk(s, node, &ev.clk, r->last_assigned);
    switch (m->type) {
    case M_LOCK: on_lock(s, r, m); return;
    case M_PREPARE:
        ev.type = TXN_EV_PREPARE;
        ev.coord = (uint64_t)m->coord;
        ev.reads_epoch = m->epoch;
        break;
    case M_ACK: ts_gc_on_ack(s, r, m); return;
    case M_COMMIT: {
        if (ts_gc_commit_refused(s, r, m)) return;
        ts_mach *k = mach(s, r, m->txn, true);
        if (k && k->coord && m->deadline_us) k->deadline_us = m->deadline_us;
        uint64_t parts[TS_MAX_RANGES];
        for (int i = 0; i < m->nparts; i++) parts[i] = (uint64_t)m->parts[i];
        ev.type = TXN_EV_COMMIT;
        ev.parts = parts;
        ev.n_parts = (size_t)m->nparts;
        ev.reads_epoch = m->epoch;
        step(s, r, m->txn, &ev);
        return;
    }
    case M_ABORT: ev.type = TXN_EV_ABORT; break;
    case M_VOTE:
        ev.type = TXN_EV_VOTE;
        ev.from = (uint64_t)m->from_range;
        ev.yes = m->yes;
        ev.ts = m->ts;
        break;
    case M_QUERY:
        ev.type = TXN_EV_STATUS_QUERY;
        ev.from = (uint64_t)m->from_range;
        ev.ts = m->ts;
        break;
    case M_DECISION:
        ev.type = TXN_EV_DECISION;
        ev.outcome = (txn_outcome)m->outcome;
        ev.ts = m->ts;
        break;
    default: return;
    }
    step(s, r, m->txn, &ev);
    if (m->type == M_DECISION) ts_gc_ack_decision(s, r, m);
}

void ts_range_choose(ts_sim *s, int range, uint64_t epoch)
{
    ts_range *r = &s->rg[range];
    if (epoch != r->epoch || !r->npend) return;
    int ln = ts_leader_node(s, range), reach = 0;
    for (int i = 0; i < r->nrep; i++) {
        int n = r->rep[i].node;
        reach += s->node[n].up && sim_net_up(&s->net, ln, n) && sim_net_up(&s->net, n, ln);
    }
    if (reach * 2 <= r->nrep) { /* no majority: try again later */
        sim_queue_push(&s->q, s->now + 5 * TS_MS, TS_EV_CHOOSE, 0, (uint64_t)range, epoch, NULL);
        return;
    }
    ts_logrec lr = r->pend[0];
    memmove(&r->pend[0], &r->pend[1], --r->npend * sizeof(ts_logrec));
    log_append(s, r, &lr);
    ts_replica_apply_upto(s, r, &r->rep[r->leader_rep], r->nlog);
    if (lr.kind != R_TXN || s->failed) return;
    txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &r->log[r->nlog - 1].r};
    ts_clk(s, ln, &ev.clk, r->last_assigned);
    step(s, r, lr.r.txn, &ev);
}

void ts_range_tt(ts_sim *s, int range, txn_id txn)
{
    ts_range *r = &s->rg[range];
    if (!r->m || txn >= r->capm || !r->m[txn] || !r->m[txn]->coord) return;
    txn_event ev = {.type = TXN_EV_TT_NOW};
    ts_clk(s, ts_leader_node(s, range), &ev.clk, r->last_assigned);
    if (s->inject == TS_INJ_SKIP_COMMIT_WAIT && ev.clk.tt_earliest <= r->m[txn]->c.s) {
        ev.clk.tt_earliest = r->m[txn]->c.s + 1; /* the injected bug: no waiting */
        if (ev.clk.tt_latest < ev.clk.tt_earliest) ev.clk.tt_latest = ev.clk.tt_earliest;
    }
    step(s, r, txn, &ev);
}

void ts_range_tick(ts_sim *s, int range)
{
    ts_range *r = &s->rg[range];
    int ln = ts_leader_node(s, range);
    txn_clock c;
    ts_clk(s, ln, &c, r->last_assigned);
    /* Close timestamps a little behind the clock, below every pending write. */
    bool have = false;
    txn_ts minp = 0;
    for (size_t i = 0; i < r->npend; i++) {
        const ts_logrec *p = &r->pend[i];
        if (p->kind != R_TXN || p->r.type == TXN_REC_ABORT) continue;
        if (!have || p->r.ts < minp) minp = p->r.ts;
        have = true;
    }
    txn_ts target = c.tt_earliest > (txn_ts)(5 * TS_MS) ? c.tt_earliest - 5 * TS_MS : 0;
    if (s->close_tt) target = c.tt_earliest; /* no lag: every later stamp is >= tt.latest */
    txn_ts cl = txn_closed_next(r->rep[r->leader_rep].safe.closed, target, have, minp);
    if (cl > r->rep[r->leader_rep].safe.closed) {
        ts_logrec lr = {.kind = R_CLOSE, .closed = cl};
        if (!s->close_tt && cl > r->last_assigned) r->last_assigned = cl;
        ts_range_propose(s, r, &lr);
    }
    /* Timers of the machines: a client gone quiet (ACTIVE), or a step that
     * may have been lost (prepared, collecting, logging...). */
    for (size_t t = 0; t < r->capm && !s->failed; t++) {
        ts_mach *m = r->m[t];
        if (!m || mach_final(m)) continue;
        int64_t idle = s->now - m->last_activity;
        if (idle < (mach_active(m) ? 3000 * TS_MS : 200 * TS_MS)) continue;
        txn_event ev = {.type = TXN_EV_TIMEOUT};
        ts_clk(s, ln, &ev.clk, r->last_assigned);
        step(s, r, (txn_id)t, &ev);
    }
    ts_gc_tick(s, r);
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, 20 * TS_MS, 60 * TS_MS), TS_EV_TICK, 0,
                   (uint64_t)range, 0, NULL);
}

/* A new leader: proposals in flight are chosen or lost; the new leader
 * applies the log, rebuilds every machine by replaying it as a follower,
 * then becomes leader with an empty lock table. */
void ts_range_failover(ts_sim *s, int range, int to_rep)
{
    ts_range *r = &s->rg[range];
    s->failovers++;
    for (size_t i = 0; i < r->npend; i++)
        if (sim_rng_chance(&s->rng, 0.5)) log_append(s, r, &r->pend[i]);
    r->npend = 0;
    /* Lock requests parked at the old leader die with it (clients time out). */
    free_leader(r);
    r->epoch++;
    r->leader_rep = to_rep;
    sim_trace_add(&s->tr, s->now, "r%d failover to n%d epoch %" PRIu64 " log %zu", range,
                  r->rep[to_rep].node, r->epoch, r->nlog);
    if (txn_lock_table_new(NULL, &r->lt)) {
        ts_fail(s, "out of memory");
        return;
    }
    ts_replica *p = &r->rep[to_rep];
    ts_replica_apply_upto(s, r, p, r->nlog);
    /* close_tt: the new leader knows only the writes (TrueTime keeps its
     * stamps above every close). */
    r->last_assigned = s->close_tt ? 0 : p->safe.closed;
    /* The lease: a successor's writes lie above the end of the old lease,
     * which outlasts every strong-read ts taken under it (replica_settled_at). */
    if (r->strong_max > r->last_assigned) r->last_assigned = r->strong_max;
    ts_gc_failover(r);
    for (size_t i = 0; i < r->nlog && !s->failed; i++) {
        const ts_logrec *lr = &r->log[i];
        if (lr->kind == R_GC && lr->r.txn < r->capm) { /* the record is gone */
            free(r->m[lr->r.txn]);
            r->m[lr->r.txn] = NULL;
        }
        if (lr->kind != R_TXN) continue;
        if (lr->r.ts > r->last_assigned) r->last_assigned = lr->r.ts;
        ts_mach *m = mach(s, r, lr->r.txn, false);
        if (!m) return;
        txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &lr->r};
        txn_out out;
        merr e = {0};
        int rc =
            m->coord ? txn_coord_step(&m->c, &ev, &out, &e) : txn_part_step(&m->p, &ev, &out, &e);
        if (rc) ts_fail(s, "range %d: replay of txn %" PRIu64 ": %s", range, lr->r.txn, e.msg);
    }
    for (size_t t = 0; t < r->capm && !s->failed; t++) {
        ts_mach *m = r->m[t];
        if (!m) continue;
        txn_out out;
        bool was_aborted = m->coord && m->c.st == TXN_COORD_ABORTED;
        if (m->coord)
            txn_coord_become_leader(&m->c, r->epoch, &out);
        else
            txn_part_become_leader(&m->p, r->epoch, &out);
        m->last_activity = s->now;
        /* An aborted coordinator re-announces the abort of every txn it ever
         * aborted; participants in doubt ask anyway, so the sim skips that. */
        do_actions(s, r, (txn_id)t, &out, was_aborted);
    }
}
