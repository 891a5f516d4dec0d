/* txn_sim clients: the bank and list-append workloads, run as Spanner
 * clients do (read-write transactions with locks at the range leaders and
 * 2PC at commit, retried with their first priority when wounded; read-only
 * snapshot reads at tt_now().latest from any replica), and the Jepsen
 * histories they record. One op in the history is one logical operation:
 * its retries are inside it. A commit request carries a deadline (the end of
 * the client's wait, by its clock) and is resent unchanged until an answer
 * comes, as server/txn_client.c does; an op that times out after its commit
 * was sent, or whose commit is refused as past its deadline, is
 * indeterminate (info) and its process retires, as in Jepsen. */
#include "tests/sim/txn_sim.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#define LOCK_TIMEOUT   (400 * TS_MS)
#define COMMIT_TIMEOUT (1500 * TS_MS)
#define COMMIT_RESEND  (300 * TS_MS)
/* Late copies of commit requests (with record GC only). */
#define LATE_COPY_CHANCE 0.1
#define LATE_COPY_MAX    (4000 * TS_MS)
#define SNAP_RETRY       (300 * TS_MS)
#define SNAP_TIMEOUT     (1500 * TS_MS)

ts_txn *ts_txn_get(ts_sim *s, txn_id id)
{
    return id && id < s->ntxns ? &s->txns[id] : NULL;
}

static txn_id new_txn(ts_sim *s)
{
    if (s->ntxns == 0) s->ntxns = 1; /* id 0 is nobody */
    if (s->ntxns >= s->captxns) {
        size_t nc = s->captxns ? s->captxns * 2 : 256;
        ts_txn *nt = realloc(s->txns, nc * sizeof(*nt));
        if (!nt) return 0;
        s->txns = nt;
        s->captxns = nc;
    }
    memset(&s->txns[s->ntxns], 0, sizeof(ts_txn));
    return (txn_id)s->ntxns++;
}

void ts_client_init(ts_sim *s, ts_client *c, int id, int bank)
{
    memset(c, 0, sizeof(*c));
    c->id = id;
    c->bank = bank;
    c->process = id;
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, TS_MS, 20 * TS_MS), TS_EV_CLIENT, id, 0,
                   0, NULL);
}

static void clear_reads(ts_client *c)
{
    for (int k = 0; k < TS_MAX_KEYS; k++) {
        free(c->readl[k]);
        c->readl[k] = NULL;
        c->nreadl[k] = 0;
        c->has_read[k] = 0;
    }
}

void ts_client_free(ts_client *c)
{
    clear_reads(c);
    for (size_t i = 0; i < c->op.nmops; i++) jp_val_free(&c->op.mops[i].val);
    free(c->op.mops);
    jp_val_free(&c->op.v1);
    memset(&c->op, 0, sizeof(c->op));
}

static void record(ts_sim *s, ts_client *c, const jp_op *op)
{
    merr e = {0};
    if (jp_history_add(c->bank ? &s->hbank : &s->hlist, op, &e)) ts_fail(s, "history: %s", e.msg);
}

static void arm(ts_sim *s, ts_client *c, int64_t after)
{
    sim_queue_push(&s->q, s->now + after, TS_EV_CTIMEOUT, c->id, c->seq, 0, NULL);
}

static int64_t client_tt_latest(ts_sim *s)
{
    int64_t e, l;
    sim_clock_tt(&s->node[0].clock, s->now, &e, &l);
    return l;
}

/* Completes the op: ok with the reads filled in, fail, or info. */
static void complete(ts_sim *s, ts_client *c, jp_type type)
{
    jp_op done = c->op;
    done.type = type;
    done.time = s->now;
    done.line = 0;
    jp_mop mops[3 * TS_MAX_OPKEYS];
    jp_val bal = {0};
    if (c->op.f == JP_F_TXN) {
        memcpy(mops, c->op.mops, c->op.nmops * sizeof(jp_mop));
        for (size_t i = 0; i < c->op.nmops && type == JP_OK; i++) {
            jp_mop *m = &mops[i];
            if (m->kind != JP_MOP_R) continue;
            m->val = (jp_val){.kind = JP_V_LIST, .items = c->readl[m->key], .n = c->nreadl[m->key]};
        }
        done.mops = mops;
    } else if (c->op.f == JP_F_BALANCES && type == JP_OK) {
        bal.kind = JP_V_LIST;
        bal.items = calloc((size_t)2 * (size_t)s->naccts + 1, sizeof(int64_t));
        if (!bal.items) {
            ts_fail(s, "out of memory");
            return;
        }
        for (int a = 0; a < s->naccts; a++) {
            bal.items[bal.n++] = a;
            bal.items[bal.n++] = c->readv[a];
        }
        done.v1 = bal;
    }
    record(s, c, &done);
    free(bal.items);
    sim_trace_add(&s->tr, s->now, "client %d %s %s after %d attempts", c->id, jp_type_name(type),
                  jp_fn_name(c->op.f), c->attempts);
    if (type == JP_INFO) {
        s->infos++;
        c->process += s->nclients; /* an indeterminate process is retired */
    }
    ts_client_free(c);
    c->st = C_IDLE;
    c->ops_done++;
    c->seq++; /* stale replies and timers are ignored from now on */
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, TS_MS, 30 * TS_MS), TS_EV_CLIENT, c->id,
                   0, 0, NULL);
}

/* ---- snapshot reads ---- */

/* Asks a random replica of each key's range (followers included) for the
 * keys not read yet; a retry asks again, maybe elsewhere, at the same t. */
static void send_snaps(ts_sim *s, ts_client *c)
{
    for (int i = 0; i < c->nsnap; i++) {
        if (c->has_read[c->snap_slots[i]]) continue;
        int slot = c->snap_slots[i], ri = ts_range_of(s, slot);
        const ts_range *r = &s->rg[ri];
        int node = r->rep[sim_rng_below(&s->rng, (uint64_t)r->nrep)].node;
        ts_msg m = {.type = M_SNAP,
                    .range = ri,
                    .client = c->id,
                    .seq = c->seq,
                    .slot = slot,
                    .ts = c->snap_t};
        ts_send(s, 0, node, &m);
    }
    arm(s, c, SNAP_RETRY);
}

/* The client picks t: strong, every acknowledged commit is below it. */
static void own_ts(ts_sim *s, ts_client *c)
{
    c->snap_t = (txn_ts)client_tt_latest(s);
    send_snaps(s, c);
}

/* Half the snapshots let the leader of the first key's range pick t, as the
 * node does (server/txn_snapshot.c); its answer brings t for the others. */
static void start_snap(ts_sim *s, ts_client *c)
{
    c->st = C_SNAP;
    c->seq++;
    c->snap_pending = c->nsnap;
    c->snap_start = s->now;
    clear_reads(c);
    s->snaps++;
    if (c->nsnap && sim_rng_chance(&s->rng, 0.5)) {
        c->snap_t = 0;
        int slot = c->snap_slots[0], ri = ts_range_of(s, slot);
        ts_msg m = {.type = M_SNAP, .range = ri, .client = c->id, .seq = c->seq, .slot = slot};
        ts_send(s, 0, ts_leader_node(s, ri), &m);
        arm(s, c, SNAP_RETRY);
        return;
    }
    own_ts(s, c);
}

/* ---- read-write transactions ---- */

static void send_step(ts_sim *s, ts_client *c)
{
    const ts_step *st = &c->steps[c->cur];
    int ri = ts_range_of(s, st->slot);
    const ts_txn *t = ts_txn_get(s, c->txn);
    ts_msg m = {.type = M_LOCK,
                .range = ri,
                .client = c->id,
                .seq = ++c->seq,
                .txn = c->txn,
                .prio = c->prio,
                .slot = st->slot,
                .mode = st->mode,
                .want_read = st->read,
                .coord_here = t && t->coord == ri};
    ts_send(s, 0, ts_leader_node(s, ri), &m);
    arm(s, c, LOCK_TIMEOUT);
}

static void start_attempt(ts_sim *s, ts_client *c)
{
    txn_id id = new_txn(s);
    ts_txn *t = ts_txn_get(s, id);
    if (!t) {
        ts_fail(s, "out of memory");
        return;
    }
    c->attempts++;
    if (c->attempts == 1) c->prio = (txn_ts)client_tt_latest(s); /* kept across retries */
    c->txn = id;
    t->client = c->id;
    t->prio = c->prio;
    t->coord = ts_range_of(s, c->steps[0].slot);
    memset(c->epoch, 0, sizeof(c->epoch));
    clear_reads(c);
    c->cur = 0;
    c->st = C_LOCKING;
    send_step(s, c);
}

/* This attempt is over (aborted or given up before its commit was sent). */
static void abort_attempt(ts_sim *s, ts_client *c, int retry)
{
    for (int ri = 1; ri <= s->ranges; ri++) {
        if (!c->epoch[ri] && !(c->cur < c->nsteps && ts_range_of(s, c->steps[c->cur].slot) == ri))
            continue;
        ts_msg m = {.type = M_ABORT, .range = ri, .client = c->id, .txn = c->txn};
        ts_send(s, 0, ts_leader_node(s, ri), &m);
    }
    s->aborts++;
    c->seq++;
    if (!retry || c->attempts >= TS_MAX_RETRIES) {
        complete(s, c, JP_FAIL);
        return;
    }
    s->retries++;
    c->st = C_BACKOFF;
    sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, TS_MS, 20 * TS_MS), TS_EV_CLIENT, c->id,
                   0, 0, NULL);
}

/* Sends (or resends) the commit request to the coordinator range's leader
 * and arms the next resend, or the end of the wait. */
static void send_commit(ts_sim *s, ts_client *c)
{
    const ts_txn *t = ts_txn_get(s, c->txn);
    ts_msg cm = {.type = M_COMMIT, .range = t->coord, .client = c->id, .txn = c->txn};
    cm.epoch = c->epoch[t->coord];
    cm.deadline_us = t->deadline_us;
    for (int ri = 1; ri <= s->ranges; ri++)
        if (c->epoch[ri] && ri != t->coord) cm.parts[cm.nparts++] = ri;
    ts_send(s, 0, ts_leader_node(s, t->coord), &cm);
    if (s->gc && s->now == c->commit_start && sim_rng_chance(&s->rng, LATE_COPY_CHANCE)) {
        /* A copy the network holds past the deadline, maybe past the GC of
         * the record: it must be refused, never answered or run again. */
        ts_msg *cp = malloc(sizeof(*cp));
        if (cp) {
            *cp = cm;
            if (sim_queue_push(&s->q,
                               s->now + COMMIT_TIMEOUT + sim_rng_range(&s->rng, 0, LATE_COPY_MAX),
                               TS_EV_NET, ts_leader_node(s, t->coord), 0, 0, cp))
                free(cp);
        }
    }
    /* --no-gc: one request and one wait, the simulator as it was before GC
     * (seeds pinned then replay the same runs). */
    int64_t left = c->commit_start + COMMIT_TIMEOUT - s->now;
    arm(s, c, s->gc && left > COMMIT_RESEND ? COMMIT_RESEND : left);
}

static void commit(ts_sim *s, ts_client *c)
{
    ts_txn *t = ts_txn_get(s, c->txn);
    t->nw = 0;
    if (c->bank) {
        int from = (int)c->op.key, to = (int)c->op.key2;
        int64_t amt = c->op.v1.i;
        if (c->readv[from] < amt) { /* no overdrafts: this transfer fails */
            abort_attempt(s, c, 0);
            return;
        }
        t->w[t->nw++] = (ts_write){.slot = from, .v = c->readv[from] - amt};
        t->w[t->nw++] = (ts_write){.slot = to, .v = c->readv[to] + amt};
    } else {
        for (size_t i = 0; i < c->op.nmops; i++)
            if (c->op.mops[i].kind == JP_MOP_APPEND)
                t->w[t->nw++] =
                    (ts_write){.slot = (int)c->op.mops[i].key, .v = c->op.mops[i].val.i};
    }
    t->deadline_us = (uint64_t)(client_tt_latest(s) + COMMIT_TIMEOUT) / 1000;
    for (int ri = 1; ri <= s->ranges; ri++) {
        if (!c->epoch[ri] || ri == t->coord) continue;
        ts_msg pm = {.type = M_PREPARE,
                     .range = ri,
                     .client = c->id,
                     .txn = c->txn,
                     .coord = t->coord,
                     .epoch = c->epoch[ri]};
        ts_send(s, 0, ts_leader_node(s, ri), &pm);
    }
    c->st = C_COMMITTING;
    c->seq++;
    c->commit_start = s->now;
    send_commit(s, c);
}

static void on_lock_reply(ts_sim *s, ts_client *c, const ts_msg *m)
{
    if (c->st != C_LOCKING || m->seq != c->seq || m->txn != c->txn) return;
    if (m->outcome != TXN_OUTCOME_COMMITTED) { /* wounded, or locks gone */
        abort_attempt(s, c, 1);
        return;
    }
    if (!c->epoch[m->range]) c->epoch[m->range] = m->epoch;
    const ts_step *st = &c->steps[c->cur];
    if (st->read && !c->has_read[st->slot]) {
        ts_txn *t = ts_txn_get(s, c->txn);
        c->has_read[st->slot] = 1;
        if (c->bank) {
            c->readv[st->slot] = m->nitems ? m->items[0] : 0;
        } else {
            c->readl[st->slot] = malloc(((size_t)m->nitems + 1) * sizeof(int64_t));
            if (!c->readl[st->slot]) {
                ts_fail(s, "out of memory");
                return;
            }
            memcpy(c->readl[st->slot], m->items, (size_t)m->nitems * sizeof(int64_t));
            c->nreadl[st->slot] = (size_t)m->nitems;
        }
        t->rd[t->nrd++] = (ts_read){.slot = st->slot, .ver_ts = m->ver_ts};
    }
    if (++c->cur < c->nsteps)
        send_step(s, c);
    else
        commit(s, c);
}

/* ---- op generation ---- */

static int add_mop(jp_op *op, jp_mop_kind k, int64_t key, int64_t v)
{
    jp_mop *nm = realloc(op->mops, (op->nmops + 1) * sizeof(jp_mop));
    if (!nm) return MERR_NOMEM;
    op->mops = nm;
    op->mops[op->nmops++] = (jp_mop){
        .kind = k, .key = key, .val = {.kind = k == JP_MOP_R ? JP_V_NONE : JP_V_INT, .i = v}};
    return 0;
}

static void start_op(ts_sim *s, ts_client *c)
{
    memset(&c->op, 0, sizeof(c->op));
    c->op.process = c->process;
    c->op.type = JP_INVOKE;
    c->op.time = s->now;
    c->attempts = 0;
    c->nsteps = 0;
    c->nsnap = 0;
    c->op_start = s->now;
    int rw = sim_rng_chance(&s->rng, 0.7);
    if (c->bank) {
        if (rw) {
            int from = (int)sim_rng_below(&s->rng, (uint64_t)s->naccts);
            int to = (from + 1 + (int)sim_rng_below(&s->rng, (uint64_t)s->naccts - 1)) % s->naccts;
            c->op.f = JP_F_TRANSFER;
            c->op.key = from;
            c->op.key2 = to;
            c->op.v1 = (jp_val){.kind = JP_V_INT, .i = sim_rng_range(&s->rng, 1, 5)};
            c->steps[c->nsteps++] = (ts_step){from, TXN_LOCK_S, 1};
            c->steps[c->nsteps++] = (ts_step){to, TXN_LOCK_S, 1};
            c->steps[c->nsteps++] = (ts_step){from, TXN_LOCK_X, 0};
            c->steps[c->nsteps++] = (ts_step){to, TXN_LOCK_X, 0};
        } else {
            c->op.f = JP_F_BALANCES;
            c->op.v1.kind = JP_V_LIST;
            for (int a = 0; a < s->naccts; a++) c->snap_slots[c->nsnap++] = a;
        }
    } else {
        int n = (int)sim_rng_range(&s->rng, 1, TS_MAX_OPKEYS), keys[TS_MAX_OPKEYS], nk = 0;
        while (nk < n) {
            int k = s->naccts + (int)sim_rng_below(&s->rng, (uint64_t)s->nlists), dup = 0;
            for (int i = 0; i < nk; i++) dup |= keys[i] == k;
            if (!dup) keys[nk++] = k;
        }
        c->op.f = JP_F_TXN;
        int rc = 0;
        for (int i = 0; i < nk; i++) {
            int what = rw ? (int)sim_rng_below(&s->rng, 3) : 0; /* 0 read, 1 append, 2 both */
            if (what != 1) {
                rc |= add_mop(&c->op, JP_MOP_R, keys[i], 0);
                if (rw)
                    c->steps[c->nsteps++] = (ts_step){keys[i], TXN_LOCK_S, 1};
                else
                    c->snap_slots[c->nsnap++] = keys[i];
            }
            if (what != 0) rc |= add_mop(&c->op, JP_MOP_APPEND, keys[i], ++s->next_val);
        }
        for (int i = 0; i < nk && rw; i++)
            for (size_t j = 0; j < c->op.nmops; j++)
                if (c->op.mops[j].kind == JP_MOP_APPEND && c->op.mops[j].key == keys[i])
                    c->steps[c->nsteps++] = (ts_step){keys[i], TXN_LOCK_X, 0};
        if (rc) {
            ts_fail(s, "out of memory");
            return;
        }
    }
    record(s, c, &c->op);
    if (c->nsteps)
        start_attempt(s, c);
    else
        start_snap(s, c);
}

void ts_client_on_event(ts_sim *s, ts_client *c)
{
    if (c->st == C_IDLE && !s->calm)
        start_op(s, c);
    else if (c->st == C_BACKOFF)
        start_attempt(s, c);
}

void ts_client_on_timeout(ts_sim *s, ts_client *c, uint64_t seq)
{
    if (seq != c->seq) return;
    switch (c->st) {
    case C_LOCKING: abort_attempt(s, c, 1); break;
    case C_COMMITTING:
        if (s->now - c->commit_start < COMMIT_TIMEOUT)
            send_commit(s, c); /* same txn, same deadline: idempotent */
        else
            complete(s, c, JP_INFO);
        break;
    case C_SNAP:
        if (s->now - c->snap_start >= SNAP_TIMEOUT)
            complete(s, c, JP_FAIL);
        else if (!c->snap_t) /* the leader did not answer: pick t here */
            own_ts(s, c);
        else
            send_snaps(s, c);
        break;
    default: break;
    }
}

void ts_client_on_msg(ts_sim *s, ts_client *c, const ts_msg *m)
{
    switch (m->type) {
    case M_LOCK_REPLY: on_lock_reply(s, c, m); return;
    case M_REPLY: {
        if (c->st != C_COMMITTING || m->txn != c->txn) return;
        ts_txn *t = ts_txn_get(s, m->txn);
        /* What a waiting client hears must be the truth (also after its
         * transaction record was collected: txn_sim_gc.c). */
        if (t && s->invariants && m->outcome == TXN_OUTCOME_COMMITTED &&
            (t->committed != 1 || t->s != m->ts))
            ts_fail(s, "client %d told txn %" PRIu64 " committed at %" PRIu64 ", but it %s", c->id,
                    m->txn, m->ts,
                    t->committed == 1 ? "committed at another ts" : "did not commit");
        if (t && s->invariants && m->outcome == TXN_OUTCOME_ABORTED && t->committed == 1)
            ts_fail(s, "client %d told txn %" PRIu64 " aborted, but it committed at %" PRIu64,
                    c->id, m->txn, t->s);
        if (t && m->outcome != TXN_OUTCOME_UNKNOWN)
            t->told = m->outcome == TXN_OUTCOME_COMMITTED ? 1 : 2;
        if (m->outcome == TXN_OUTCOME_UNKNOWN) { /* refused: past its deadline */
            complete(s, c, JP_INFO);
            return;
        }
        if (m->outcome == TXN_OUTCOME_COMMITTED) {
            s->commits++;
            complete(s, c, JP_OK);
        } else {
            s->aborts++;
            c->seq++;
            if (c->attempts >= TS_MAX_RETRIES) {
                complete(s, c, JP_FAIL);
                return;
            }
            s->retries++;
            c->st = C_BACKOFF;
            sim_queue_push(&s->q, s->now + sim_rng_range(&s->rng, TS_MS, 20 * TS_MS), TS_EV_CLIENT,
                           c->id, 0, 0, NULL);
        }
        return;
    }
    case M_SNAP_REPLY: {
        if (c->st != C_SNAP || m->seq != c->seq || c->has_read[m->slot]) return;
        int from_leader = !c->snap_t;
        if (from_leader) { /* the leader's strong read: its t is the snapshot's */
            if (m->outcome == TXN_OUTCOME_ABORTED) {
                own_ts(s, c); /* not settled there: pick t here */
                return;
            }
            c->snap_t = m->ts;
        } else if (m->ts != c->snap_t || m->outcome == TXN_OUTCOME_ABORTED) {
            return; /* a late answer of the leader, at a t not taken */
        }
        c->has_read[m->slot] = 1;
        if (c->bank) {
            c->readv[m->slot] = m->nitems ? m->items[0] : 0;
        } else {
            c->readl[m->slot] = malloc(((size_t)m->nitems + 1) * sizeof(int64_t));
            if (!c->readl[m->slot]) {
                ts_fail(s, "out of memory");
                return;
            }
            memcpy(c->readl[m->slot], m->items, (size_t)m->nitems * sizeof(int64_t));
            c->nreadl[m->slot] = (size_t)m->nitems;
        }
        if (--c->snap_pending == 0) {
            s->snaps_ok++;
            complete(s, c, JP_OK);
        } else if (from_leader) {
            send_snaps(s, c);
        }
        return;
    }
    default: return;
    }
}

int ts_final_read(ts_sim *s)
{
    ts_client *c = &s->cl[0]; /* a bank client, idle after the calm phase */
    if (c->st != C_IDLE) return -1;
    c->process = (int64_t)s->nclients * 1000000; /* a fresh process */
    memset(&c->op, 0, sizeof(c->op));
    c->op.process = c->process;
    c->op.type = JP_INVOKE;
    c->op.time = s->now;
    c->op.f = JP_F_BALANCES;
    c->op.v1.kind = JP_V_LIST;
    c->nsteps = 0;
    c->attempts = 0;
    c->nsnap = 0;
    for (int a = 0; a < s->naccts; a++) c->snap_slots[c->nsnap++] = a;
    record(s, c, &c->op);
    start_snap(s, c);
    return 0;
}
