/* txn_sim transaction-record GC, as the node does it (server/txn_2pc_gc.c)
 * with the same pure rules (txn/txnrec.h):
 *
 *  - a coordinator range's leader deletes a commit/abort record (an R_GC
 *    entry through the range's log) once txn_rec_collectable() says so: the
 *    client's commit deadline certainly passed and every participant
 *    acknowledged the outcome (M_ACK, sent once the participant logged it;
 *    the leader tells unacknowledged participants again every 200 ms, and a
 *    new leader has forgotten every acknowledgement);
 *  - a commit request for a transaction the leader has no commit in progress
 *    or outcome for is refused ("unknown") once txn_rec_deadline_check()
 *    says its deadline passed, before anything else is looked at;
 *  - records deleted are gone: the leader forgets the machine, a new leader
 *    replaying the log rebuilds nothing for them, and whatever asks later
 *    meets a fresh coordinator (presumed abort).
 *
 * What the oracle checks (txn_sim_range.c, txn_sim_client.c): a client still
 * waiting is only ever told its transaction's true outcome (and s); a
 * transaction whose client was told "aborted" never commits; an in-doubt
 * participant never logs an outcome other than the coordinator's; a
 * collected transaction is never committed again. A late contradicting
 * answer to a participant that already logged the outcome is ignored there
 * (the node resolves intents idempotently) and counted. Time: the sim's
 * timestamps are ns, the rules' µs. */
#include "tests/sim/txn_sim.h"

#include "txn/txnrec.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define TELL_EVERY (200 * TS_MS)

ts_rec *ts_rec_get(ts_sim *s, ts_range *r, txn_id t)
{
    (void)s;
    if (t >= r->caprec) {
        size_t nc = r->caprec ? r->caprec * 2 : 256;
        while (nc <= t) nc *= 2;
        ts_rec *n = realloc(r->rec, nc * sizeof(*n));
        if (!n) return NULL;
        memset(n + r->caprec, 0, (nc - r->caprec) * sizeof(*n));
        r->rec = n;
        r->caprec = nc;
    }
    return &r->rec[t];
}

static ts_mach *mach_of(ts_range *r, txn_id t)
{
    return r->m && t < r->capm ? r->m[t] : NULL;
}

void ts_gc_logged(ts_sim *s, ts_range *r, ts_logrec *lr)
{
    txn_id t = lr->r.txn;
    ts_rec *rec = ts_rec_get(s, r, t);
    if (!rec) {
        ts_fail(s, "out of memory");
        return;
    }
    if (lr->kind == R_GC) {
        rec->collected = 1;
        s->gc_collected++;
        sim_trace_add(&s->tr, s->now, "r%d record of txn %" PRIu64 " collected", r->id, t);
        ts_mach *m = mach_of(r, t);
        if (m) { /* forgotten: whatever asks later meets a fresh machine */
            free(m);
            r->m[t] = NULL;
        }
        return;
    }
    const ts_txn *tx = ts_txn_get(s, t);
    if (!tx || tx->coord != r->id || lr->r.type == TXN_REC_PREPARE || rec->logged) return;
    rec->logged = 1;
    rec->abort = lr->r.type == TXN_REC_ABORT;
    rec->deadline_us = lr->deadline_us;
    rec->s = lr->r.ts;
    rec->nparts = (int)lr->r.n_parts;
    for (int i = 0; i < rec->nparts; i++) rec->parts[i] = (int)lr->r.parts[i];
}

static bool coord_decided(const ts_mach *m)
{
    return m && m->coord && (m->c.st == TXN_COORD_COMMITTED || m->c.st == TXN_COORD_ABORTED);
}

static void tell(ts_sim *s, ts_range *r, txn_id t, ts_rec *rec)
{
    rec->told = s->now;
    int from = ts_leader_node(s, r->id);
    for (int i = 0; i < rec->nparts; i++) {
        int to = rec->parts[i];
        if (rec->acked[to] || to < 1 || to > s->ranges) continue;
        ts_msg m = {.type = M_DECISION,
                    .range = to,
                    .from_range = r->id,
                    .txn = t,
                    .outcome = rec->abort ? TXN_OUTCOME_ABORTED : TXN_OUTCOME_COMMITTED,
                    .ts = rec->abort ? 0 : rec->s};
        ts_send(s, from, ts_leader_node(s, to), &m);
    }
}

void ts_gc_tick(ts_sim *s, ts_range *r)
{
    if (!s->gc) return;
    txn_clock c;
    ts_clk(s, ts_leader_node(s, r->id), &c, r->last_assigned);
    uint64_t earliest_us = c.tt_earliest / 1000;
    if (s->inject == TS_INJ_GC_IGNORE_DEADLINE) earliest_us = UINT64_MAX / 2; /* the bug */
    for (size_t t = 1; t < r->caprec && !s->failed; t++) {
        ts_rec *rec = &r->rec[t];
        ts_mach *m = mach_of(r, (txn_id)t);
        /* Still deciding or commit-waiting: not done here yet. */
        if (!rec->logged || rec->collected || !coord_decided(m)) continue;
        bool delivered = true;
        for (int i = 0; i < rec->nparts; i++) delivered &= rec->acked[rec->parts[i]] != 0;
        if (!delivered && s->now - rec->told >= TELL_EVERY) tell(s, r, (txn_id)t, rec);
        if (s->inject == TS_INJ_GC_IGNORE_ACKS) delivered = true; /* the bug */
        txn_rec_value v = {
            .abort = rec->abort, .deadline_us = rec->deadline_us, .n_parts = (size_t)rec->nparts};
        if (rec->proposed || !txn_rec_collectable(&v, earliest_us, delivered)) continue;
        ts_logrec lr = {.kind = R_GC, .r = {.txn = (txn_id)t}};
        rec->proposed = 1;
        ts_range_propose(s, r, &lr);
    }
}

void ts_gc_failover(ts_range *r)
{
    for (size_t t = 0; t < r->caprec; t++) {
        r->rec[t].proposed = 0;
        r->rec[t].told = 0;
        memset(r->rec[t].acked, 0, sizeof(r->rec[t].acked));
    }
}

void ts_gc_on_ack(ts_sim *s, ts_range *r, const ts_msg *m)
{
    if (m->from_range < 1 || m->from_range > s->ranges || m->txn >= r->caprec) return;
    ts_rec *rec = &r->rec[m->txn];
    if (rec->logged) rec->acked[m->from_range] = 1;
}

void ts_gc_ack_decision(ts_sim *s, ts_range *r, const ts_msg *m)
{
    const ts_mach *p = mach_of(r, m->txn);
    if (!s->gc || !p || p->coord) return;
    if (p->p.st != TXN_PART_COMMITTED && p->p.st != TXN_PART_ABORTED) return; /* not logged yet */
    ts_msg a = {.type = M_ACK, .range = m->from_range, .from_range = r->id, .txn = m->txn};
    ts_send(s, ts_leader_node(s, r->id), ts_leader_node(s, m->from_range), &a);
}

int ts_gc_commit_refused(ts_sim *s, ts_range *r, const ts_msg *m)
{
    if (!s->gc || s->inject == TS_INJ_GC_NO_DEADLINE_CHECK) return 0;
    /* A commit in progress or committed here answers from memory (idempotent). */
    const ts_mach *k = mach_of(r, m->txn);
    if (k && k->coord && k->c.st != TXN_COORD_ACTIVE && k->c.st != TXN_COORD_ABORTING &&
        k->c.st != TXN_COORD_ABORTED && k->c.st != TXN_COORD_ABANDONED)
        return 0;
    txn_clock c;
    ts_clk(s, ts_leader_node(s, r->id), &c, r->last_assigned);
    if (txn_rec_deadline_check(m->deadline_us, c.tt_latest / 1000) == TXN_DEADLINE_OK) return 0;
    s->gc_refused++;
    sim_trace_add(&s->tr, s->now, "r%d refuses the late commit of txn %" PRIu64, r->id, m->txn);
    ts_msg a = {.type = M_REPLY,
                .range = r->id,
                .client = m->client,
                .txn = m->txn,
                .outcome = TXN_OUTCOME_UNKNOWN};
    ts_send(s, ts_leader_node(s, r->id), 0, &a);
    return 1;
}

int ts_gc_stale_answer(ts_sim *s, txn_id t)
{
    const ts_txn *tx = ts_txn_get(s, t);
    if (!s->gc || !tx || tx->coord < 1 || tx->coord > s->ranges) return 0;
    const ts_range *c = &s->rg[tx->coord];
    if (t >= c->caprec || !c->rec[t].collected) return 0;
    s->gc_stale++;
    return 1;
}
