/* Two-phase commit, the participant side (see txn_2pc.h): txn.Prepare,
 * txn.Decide, the status query of a prepared participant that heard
 * nothing, the rebuild of prepared transactions from stored intents under
 * a new leader, and the coordinator's answer to status queries
 * (txn.Status, presumed abort). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "server/pbreply.h"
#include "server/replica.h"
#include "server/txn_2pc_int.h"
#include "timesvc/hlc.h"
#include "txn/txnrec.h"

#define MOD "txn2pc"

static int64_t query_ns(void)
{
    /* Tests shorten how long a prepared participant waits before asking. */
    const char *env = getenv("MERIDIAN_TESTING_TXN_QUERY_MS");
    return env && atoll(env) > 0 ? atoll(env) * 1000000LL : 1000000000LL;
}

static void reply_vote(rpc_req *req, int yes, uint64_t ts)
{
    Meridian__Txn__PrepareResponse m = MERIDIAN__TXN__PREPARE_RESPONSE__INIT;
    m.yes = yes;
    m.prepare_ts = ts;
    m.aborted = !yes;
    pb_reply(req, &m.base);
}

static void reply_decided(rpc_req *req)
{
    Meridian__Txn__DecideResponse m = MERIDIAN__TXN__DECIDE_RESPONSE__INIT;
    pb_reply(req, &m.base);
}

static void answer_waits(struct tx2 *x, int vote, uint64_t ts)
{
    for (size_t i = 0; i < x->nwait; i++) {
        if (vote)
            reply_vote(x->wait[i], vote > 0, ts);
        else
            reply_decided(x->wait[i]);
    }
    x->nwait = 0;
}

/* The replica leading `range` here, or NULL: an answer sent, or req parked
 * until a lapsed lease is renewed (then fn runs on it again). */
static replica *leader_of(txn_service *s, rpc_req *req, tx_kind kind, uint64_t rid, txs_handler fn)
{
    replica *r = host_find(s->h, rid);
    if (!r) {
        txs_fail(s, NULL, req, kind, MERR_NOTFOUND, "no replica of that range on this node", 0);
        return NULL;
    }
    if (!replica_is_leaseholder(r)) {
        replica_lease_nudge(r);
        if (!replica_is_leaseholder(r)) {
            if (!txs_park_for_lease(s, r, req, kind, fn))
                txs_fail(s, r, req, kind, MERR_NOT_LEADER, "this replica does not hold the lease",
                         0);
            return NULL;
        }
    }
    return r;
}

/* ---- participant actions ---- */

typedef struct span_ctx {
    txn_id txn;
    range_span *v;
    size_t n, cap;
    int oom;
} span_ctx;

static void collect_span(void *arg, const txn_lock_info *in)
{
    span_ctx *c = arg;
    if (in->txn != c->txn || in->mode != TXN_LOCK_S || !in->granted) return;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 8;
        range_span *v = realloc(c->v, cap * sizeof(*v));
        if (!v) {
            c->oom = 1;
            return;
        }
        c->v = v;
        c->cap = cap;
    }
    /* Copies: a point becomes [k, k||0x00), a span to the end has no end. */
    const txn_span *sp = &in->span;
    size_t el = sp->kind == TXN_SPAN_RANGE   ? sp->end_len
                : sp->kind == TXN_SPAN_POINT ? sp->start_len + 1
                                             : 0;
    uint8_t *k = malloc(sp->start_len + 1), *en = malloc(el + 1);
    if (!k || !en) {
        free(k);
        free(en);
        c->oom = 1;
        return;
    }
    memcpy(k, sp->start, sp->start_len);
    if (sp->kind == TXN_SPAN_RANGE) memcpy(en, sp->end, el);
    if (sp->kind == TXN_SPAN_POINT) {
        memcpy(en, sp->start, sp->start_len);
        en[sp->start_len] = 0x00;
    }
    c->v[c->n++] = (range_span){k, sp->start_len, en, el};
}

static void spans_free(span_ctx *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free((void *)c->v[i].key);
        free((void *)c->v[i].end);
    }
    free(c->v);
}

static int propose_prepare(tx_range *rg, tx_txn *t, const txn_record *rec)
{
    struct tx2 *x = t->x2;
    const Meridian__Txn__PrepareRequest *q = x->pq;
    span_ctx sc = {.txn = t->id};
    txn_span all = txn_span_to_end("\x01", 1);
    txn_lock_visit(rg->lt, &all, collect_span, &sc);
    range_write *w = calloc(q->n_mutations + 1, sizeof(*w));
    int rc = (!w || sc.oom) ? MERR_NOMEM : 0;
    for (size_t i = 0; !rc && i < q->n_mutations; i++) {
        const Meridian__Kv__Mutation *m = q->mutations[i];
        w[i] = (range_write){m->key.data, m->key.len, m->value.data, m->value.len, m->is_delete};
    }
    uint8_t id[8];
    mbuf coord = MBUF_INIT;
    for (int i = 0; i < 8; i++) id[i] = (uint8_t)(t->id >> (56 - 8 * i));
    if (!rc) rc = tx2_coord_encode(x->coord_range, x->coord_key.data, x->coord_key.len, &coord);
    if (!rc) {
        range_intent it = {.txn = id,
                           .txn_len = 8,
                           .prepare_ts = rec->ts,
                           .coord = coord.data,
                           .coord_len = coord.len,
                           .writes = w,
                           .nwrites = q->n_mutations,
                           .spans = sc.v,
                           .nspans = sc.n};
        range_batch b = {.ts = rec->ts, .prepares = &it, .nprepares = 1};
        rc = tx2_propose(rg, t, rec, &b);
    }
    mbuf_free(&coord);
    free(w);
    spans_free(&sc);
    return rc;
}

static void on_queried(void *arg, int code, const char *msg, const uint8_t *p, size_t len);

static void send_query(tx_range *rg, tx_txn *t)
{
    struct tx2 *x = t->x2;
    if (x->query != P_IDLE || x->p.st != TXN_PART_PREPARED) return;
    Meridian__Txn__StatusRequest q = MERIDIAN__TXN__STATUS_REQUEST__INIT;
    q.txn_id = t->id;
    q.coord_range = x->coord_range;
    q.from_range = rg->range_id;
    q.prepare_ts = x->p.prepare_ts;
    q.coord_key = (ProtobufCBinaryData){x->coord_key.len, x->coord_key.data};
    /* Ask the range that holds the anchor now: the record moved with it
     * if the coordinator's range split or merged since the prepare. */
    uint64_t rid = x->coord_range, hint = x->coord_hint;
    replica *cr = host_find_key(rg->s->h, x->coord_key.data, x->coord_key.len);
    if (cr && replica_id(cr) != rid) rid = replica_id(cr), hint = 0;
    tx2_ctx *c = tx2_ctx_new(rg, t, 0, 2);
    if (!c) return;
    x->query = P_INFLIGHT;
    if (tx2_call_range(rg->s, rid, hint, "txn.Status", &q.base, on_queried, c)) {
        x->query = P_IDLE;
        x->coord_hint = 0;
        free(c);
    }
}

void tx2_part_run(tx_range *rg, tx_txn *t, const txn_out *out)
{
    struct tx2 *x = t->x2;
    for (size_t i = 0; i < out->n; i++) {
        const txn_action *a = &out->a[i];
        switch (a->type) {
        case TXN_ACT_PROPOSE:
            if (out->rec.type == TXN_REC_PREPARE) {
                if (propose_prepare(rg, t, &out->rec)) {
                    /* Nothing was logged: answer "no" and forget it. */
                    answer_waits(x, -1, 0);
                }
            } else {
                uint8_t id[8];
                for (int k = 0; k < 8; k++) id[k] = (uint8_t)(t->id >> (56 - 8 * k));
                range_resolve res = {id, 8, out->rec.type == TXN_REC_COMMIT ? out->rec.ts : 0};
                range_batch b = {.ts = res.commit_ts, .resolves = &res, .nresolves = 1};
                (void)tx2_propose(rg, t, &out->rec, &b);
            }
            break;
        case TXN_ACT_SEND_VOTE:
            /* The coordinator asked through txn.Prepare: the vote is its reply. */
            answer_waits(x, a->yes ? 1 : -1, a->ts);
            x->since_ns = mtime_mono_ns();
            break;
        case TXN_ACT_STATUS_QUERY: send_query(rg, t); break;
        case TXN_ACT_RELEASE_LOCKS:
            tx_txn_release(rg, t);
            t->last_ns = mtime_mono_ns();
            t->state = x->p.st == TXN_PART_COMMITTED ? TX_COMMITTED : TX_ABORTED;
            t->commit_ts = x->p.commit_ts;
            answer_waits(x, 0, 0);
            break;
        case TXN_ACT_MARK_PREPARED: (void)txn_lock_set_prepared(rg->lt, t->id); break;
        case TXN_ACT_ASSIGNED_TS: tx2_observe(rg->s, a->ts); break;
        default: break; /* APPLY: the store applies the resolve; REACQUIRE: tx2_rebuild */
        }
    }
}

static void part_step(tx_range *rg, tx_txn *t, txn_event *ev)
{
    txn_out out;
    merr e = {0};
    if (ev->type != TXN_EV_CHOSEN && tx2_clock_now(rg->s, &ev->clk)) return;
    int rc = txn_part_step(&t->x2->p, ev, &out, &e);
    if (rc == 0)
        tx2_part_run(rg, t, &out);
    else
        MLOG_D(MOD, "participant event refused", "txn=%" PRIu64 " event=%s error=\"%s\"", t->id,
               txn_event_name(ev->type), e.msg);
}

/* ---- txn.Prepare ---- */

void tx2_prepare_continue(tx_range *rg, tx_txn *t, tx_parked *pk)
{
    Meridian__Txn__PrepareRequest *q = pk->q;
    for (; pk->step < q->n_mutations; pk->step++) {
        const ProtobufCBinaryData *k = &q->mutations[pk->step]->key;
        int g = txs_lock_or_park(rg, t, pk, txn_span_point(k->data, k->len), TXN_LOCK_X);
        if (g <= 0) return;
    }
    struct tx2 *x = tx2_new(ROLE_PART);
    int rc = x ? txn_lock_set_prepared(rg->lt, t->id) : MERR_NOMEM;
    if (rc == MERR_ABORTED || rc == MERR_NOMEM || rc == MERR_INVALID || !x ||
        mbuf_append(&x->coord_key, q->coord_key.data, q->coord_key.len) ||
        tx2_add_wait(x, pk->req)) {
        if (x) mbuf_free(&x->coord_key);
        free(x);
        reply_vote(pk->req, 0, 0);
        pk->req = NULL;
        tx_parked_free(pk);
        rg->s->wounds += rc == MERR_ABORTED;
        tx_txn_abort(rg, t, "wounded before it could prepare");
        return;
    }
    x->pq = q;
    x->coord_range = q->coord_range;
    pk->q = NULL;
    pk->req = NULL;
    tx_parked_free(pk);
    t->x2 = x;
    t->state = TX_COMMITTING;
    txn_part_init(&x->p, t->id, rg->range_id, rg->epoch, true);
    txn_event ev = {.type = TXN_EV_PREPARE, .coord = q->coord_range};
    ev.reads_epoch = txs_meta_epoch(q->txn, rg->range_id);
    part_step(rg, t, &ev);
}

void tx2_on_prepare(void *arg, rpc_req *req)
{
    txn_service *s = arg;
    Meridian__Txn__PrepareRequest *q =
        meridian__txn__prepare_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable PrepareRequest", NULL, 0);
        return;
    }
    replica *r = NULL;
    if (!q->txn || !q->txn->id || !q->range_id || !q->coord_range || !q->coord_key.len) {
        txs_fail(s, NULL, req, TX_PREPARE, MERR_INVALID, "a prepare needs ids and keys", 0);
        goto out;
    }
    if (!(r = leader_of(s, req, TX_PREPARE, q->range_id, tx2_on_prepare))) goto out;
    for (size_t i = 0; i < q->n_mutations; i++)
        if (!replica_contains(r, q->mutations[i]->key.data, q->mutations[i]->key.len)) {
            txs_fail(s, r, req, TX_PREPARE, MERR_RANGE, "a write outside the range", 0);
            goto out;
        }
    int gc = 0;
    const char *gwhy = NULL;
    tx_range *rg = tx_range_get(s, r, &gc, &gwhy);
    if (!rg) {
        txs_fail(s, r, req, TX_PREPARE, gc, gwhy, 0);
        goto out;
    }
    tx_txn *t = tx_txn_find(rg, q->txn->id);
    uint64_t epoch = txs_meta_epoch(q->txn, rg->range_id);
    if (t && t->x2) { /* a retried prepare */
        struct tx2 *x = t->x2;
        if (x->p.st == TXN_PART_PREPARING) {
            if (tx2_add_wait(x, req)) txs_fail(s, r, req, TX_PREPARE, MERR_NOMEM, "oom", 0);
        } else {
            int yes = x->p.st == TXN_PART_PREPARED || x->p.st == TXN_PART_COMMITTING ||
                      x->p.st == TXN_PART_COMMITTED;
            reply_vote(req, yes, x->p.prepare_ts);
        }
        goto out;
    }
    if ((t && t->state != TX_ACTIVE) || (!t && epoch) || (t && epoch && epoch != rg->epoch)) {
        /* Its locks here are gone (timed out, wounded, another leader). */
        MLOG_D(MOD, "prepare refused: its locks here are gone",
               "txn=%" PRIu64 " range=%" PRIu64 " known=%d state=%d epoch=%" PRIu64
               " table_epoch=%" PRIu64,
               (uint64_t)q->txn->id, rg->range_id, t != NULL, t ? (int)t->state : -1, epoch,
               rg->epoch);
        reply_vote(req, 0, 0);
        goto out;
    }
    if (!t && !(t = tx_txn_add(rg, q->txn->id, q->txn->priority))) {
        txs_fail(s, r, req, TX_PREPARE, MERR_BUSY, "too many open transactions", 0);
        goto out;
    }
    if (t->pk || t->prio != q->txn->priority) {
        txs_fail(s, r, req, TX_PREPARE, MERR_UNAVAILABLE, "a request of the transaction is waiting",
                 0);
        goto out;
    }
    t->last_ns = mtime_mono_ns();
    tx_parked *pk = calloc(1, sizeof(*pk));
    if (!pk) {
        txs_fail(s, r, req, TX_PREPARE, MERR_NOMEM, "out of memory", 0);
        goto out;
    }
    pk->req = req, pk->kind = TX_PREPARE, pk->q = q;
    q = NULL;
    tx2_prepare_continue(rg, t, pk);
    tx_pump(rg);
out:
    if (q) meridian__txn__prepare_request__free_unpacked(q, NULL);
}

/* ---- txn.Decide and status queries ---- */

static void decide(tx_range *rg, tx_txn *t, txn_event_type type, int commit, uint64_t ts)
{
    struct tx2 *x = t->x2;
    if (x->p.st != TXN_PART_PREPARED) return;
    txn_event ev = {.type = type};
    ev.outcome = commit ? TXN_OUTCOME_COMMITTED : TXN_OUTCOME_ABORTED;
    ev.ts = ts;
    if (commit) tx2_observe(rg->s, ts);
    part_step(rg, t, &ev);
}

void tx2_on_decide(void *arg, rpc_req *req)
{
    txn_service *s = arg;
    Meridian__Txn__DecideRequest *q =
        meridian__txn__decide_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable DecideRequest", NULL, 0);
        return;
    }
    replica *r = leader_of(s, req, TX_PREPARE, q->range_id, tx2_on_decide);
    int gc = 0;
    const char *gwhy = NULL;
    tx_range *rg = r ? tx_range_get(s, r, &gc, &gwhy) : NULL;
    if (r && !rg) txs_fail(s, r, req, TX_PREPARE, gc, gwhy, 0);
    if (!rg) goto out;
    tx_txn *t = tx_txn_find(rg, q->txn_id);
    if (!t || !t->x2) tx2_rebuild(rg); /* an intent applied after the table was made */
    t = tx_txn_find(rg, q->txn_id);
    if (!t || !t->x2) {
        /* Nothing prepared here: resolved before, or never prepared. */
        if (t && t->state == TX_ACTIVE && !q->commit)
            tx_txn_abort(rg, t, "the coordinator aborted");
        reply_decided(req);
        goto out;
    }
    struct tx2 *x = t->x2;
    if (x->p.st == TXN_PART_PREPARING) {
        txs_fail(s, r, req, TX_PREPARE, MERR_UNAVAILABLE, "still preparing: send it again", 0);
    } else if (x->p.st == TXN_PART_COMMITTED || x->p.st == TXN_PART_ABORTED) {
        reply_decided(req);
    } else if (tx2_add_wait(x, req)) {
        txs_fail(s, r, req, TX_PREPARE, MERR_NOMEM, "out of memory", 0);
    } else {
        decide(rg, t, TXN_EV_DECISION, q->commit, q->commit_ts);
    }
    tx_pump(rg);
out:
    meridian__txn__decide_request__free_unpacked(q, NULL);
}

static void on_queried(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    tx2_ctx *c = arg;
    tx_range *rg = NULL;
    tx_txn *t = tx2_ctx_txn(c, &rg);
    free(c);
    (void)msg;
    if (!t) return;
    struct tx2 *x = t->x2;
    x->query = P_IDLE;
    x->since_ns = mtime_mono_ns();
    Meridian__Txn__StatusResponse *m =
        code ? NULL : meridian__txn__status_response__unpack(NULL, len, p);
    if (!m) return;
    if (m->error && m->error->kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER)
        x->coord_hint = m->error->leader_hint;
    else if (m->error)
        x->coord_hint = 0;
    if (!m->error && (m->outcome == TXN_OUTCOME_COMMITTED || m->outcome == TXN_OUTCOME_ABORTED))
        decide(rg, t, TXN_EV_STATUS_REPLY, m->outcome == TXN_OUTCOME_COMMITTED, m->commit_ts);
    meridian__txn__status_response__free_unpacked(m, NULL);
    tx_pump(rg);
}

void tx2_part_sweep(tx_range *rg, tx_txn *t, int64_t now_ns)
{
    struct tx2 *x = t->x2;
    if (x->p.st == TXN_PART_PREPARED && now_ns - x->since_ns > query_ns()) send_query(rg, t);
}

/* ---- coordinator: txn.Status ---- */

static void reply_status(rpc_req *req, txn_outcome o, uint64_t s)
{
    Meridian__Txn__StatusResponse m = MERIDIAN__TXN__STATUS_RESPONSE__INIT;
    m.outcome = o;
    m.commit_ts = o == TXN_OUTCOME_COMMITTED ? s : 0;
    pb_reply(req, &m.base);
}

typedef struct presume {
    txn_service *s;
    uint64_t range, txn;
    rpc_req *req;
    mbuf anchor;
} presume;

static void on_presumed(void *arg, int code, const char *msg, uint64_t ts)
{
    presume *pa = arg;
    replica *r = host_find(pa->s->h, pa->range);
    uint64_t s = 0;
    (void)ts, (void)msg;
    /* Read the records again: a commit chosen in an earlier slot wins. */
    txn_outcome o = code || !r ? TXN_OUTCOME_UNKNOWN
                               : tx2_recorded(r, pa->anchor.data, pa->anchor.len, pa->txn, &s);
    reply_status(pa->req, o, s);
    mbuf_free(&pa->anchor);
    free(pa);
}

void tx2_on_status(void *arg, rpc_req *req)
{
    txn_service *s = arg;
    Meridian__Txn__StatusRequest *q =
        meridian__txn__status_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable StatusRequest", NULL, 0);
        return;
    }
    /* By the anchor when given: its range holds the record (txnrec.h). */
    uint64_t rid = q->coord_range;
    replica *kr =
        q->coord_key.len ? host_find_key(s->h, q->coord_key.data, q->coord_key.len) : NULL;
    if (kr) rid = replica_id(kr);
    replica *r = leader_of(s, req, TX_PREPARE, rid, tx2_on_status);
    if (!r) goto out;
    tx_range *rg = tx_range_for(s, r);
    tx_txn *t = rg ? tx_txn_find(rg, q->txn_id) : NULL;
    if (t && t->x2 && t->x2->role == ROLE_COORD) {
        /* The machine decides and tells the participants itself. */
        const txn_coord *c = &t->x2->c;
        reply_status(req,
                     c->st == TXN_COORD_COMMITTED ? TXN_OUTCOME_COMMITTED
                     : c->st == TXN_COORD_ABORTED ? TXN_OUTCOME_ABORTED
                                                  : TXN_OUTCOME_UNKNOWN,
                     c->s);
        goto out;
    }
    if (t && t->state == TX_ACTIVE) tx_txn_abort(rg, t, "a participant asked: presumed abort");
    uint64_t ts = 0;
    txn_outcome o = tx2_recorded(r, q->coord_key.data, q->coord_key.len, q->txn_id, &ts);
    if (o != TXN_OUTCOME_UNKNOWN) {
        reply_status(req, o, ts);
        goto out;
    }
    /* Presumed abort: no commit request reached a leader that still knows
     * of it; log the abort before saying so (a later leader must agree).
     * An asker without the anchor (older node) cannot name the record. */
    txn_rec_value rv = {.abort = true, .deadline_us = tx2_presumed_deadline(s)};
    uint8_t val[TXN_REC_VALUE_MAX];
    mbuf key = MBUF_INIT;
    presume *pa = q->coord_key.len ? calloc(1, sizeof(*pa)) : NULL;
    merr e = {0};
    if (pa) *pa = (presume){s, rid, q->txn_id, req, MBUF_INIT};
    if (!pa || txn_rec_key(q->coord_key.data, q->coord_key.len, q->txn_id, true, &key) ||
        mbuf_append(&pa->anchor, q->coord_key.data, q->coord_key.len)) {
        if (pa) mbuf_free(&pa->anchor);
        free(pa);
        reply_status(req, TXN_OUTCOME_UNKNOWN, 0);
        mbuf_free(&key);
        goto out;
    }
    range_write w = {key.data, key.len, val, txn_rec_value_encode(&rv, val), 0};
    if (replica_write(r, &w, 1, 0, on_presumed, pa, &e)) {
        mbuf_free(&pa->anchor);
        free(pa);
        reply_status(req, TXN_OUTCOME_UNKNOWN, 0);
    }
    mbuf_free(&key);
out:
    meridian__txn__status_request__free_unpacked(q, NULL);
}

/* ---- rebuild from intents ---- */

typedef struct rebuild_ctx {
    tx_range *rg;
} rebuild_ctx;

static int rebuild_one(void *arg, const range_intent *it)
{
    rebuild_ctx *c = arg;
    tx_range *rg = c->rg;
    if (it->txn_len != 8) return 0;
    uint64_t id = 0;
    for (int i = 0; i < 8; i++) id = id << 8 | it->txn[i];
    tx_txn *t = tx_txn_find(rg, id);
    if (t && t->x2) return 0;
    if (t) tx_txn_abort(rg, t, "prepared under an earlier leader"), tx_txn_forget(rg, t);
    uint64_t coord_range;
    const uint8_t *ck;
    size_t ckl;
    if (tx2_coord_decode(it->coord, it->coord_len, &coord_range, &ck, &ckl)) return 0;
    struct tx2 *x = tx2_new(ROLE_PART);
    if (!x || !(t = tx_txn_add(rg, id, it->prepare_ts)) || mbuf_append(&x->coord_key, ck, ckl)) {
        if (x) mbuf_free(&x->coord_key);
        free(x);
        return 0;
    }
    t->x2 = x;
    t->state = TX_COMMITTING;
    x->coord_range = coord_range;
    /* REACQUIRE_LOCKS: nobody else holds locks in a fresh table, and the
     * prepared transactions' locks never conflicted with each other. */
    for (size_t i = 0; i < it->nwrites; i++) {
        txn_lock_req lr = {.txn = id, .prio = t->prio, .mode = TXN_LOCK_X, .tag = ++t->next_tag};
        lr.span = txn_span_point(it->writes[i].key, it->writes[i].klen);
        (void)txn_lock_acquire(rg->lt, &lr, &rg->out, NULL);
    }
    for (size_t i = 0; i < it->nspans; i++) {
        const range_span *sp = &it->spans[i];
        txn_lock_req lr = {.txn = id, .prio = t->prio, .mode = TXN_LOCK_S, .tag = ++t->next_tag};
        lr.span = sp->elen ? txn_span_range(sp->key, sp->klen, sp->end, sp->elen)
                           : txn_span_to_end(sp->key, sp->klen);
        (void)txn_lock_acquire(rg->lt, &lr, &rg->out, NULL);
    }
    txn_part_init(&x->p, id, rg->range_id, rg->epoch, false);
    txn_record rec = {
        .type = TXN_REC_PREPARE, .txn = id, .ts = it->prepare_ts, .coord = coord_range};
    txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &rec};
    txn_out out;
    merr e = {0};
    if (txn_part_step(&x->p, &ev, &out, &e) == 0) {
        txn_part_become_leader(&x->p, rg->epoch, &out);
        tx2_part_run(rg, t, &out);
    }
    x->since_ns = 0; /* ask the coordinator at the next sweep */
    MLOG_I(MOD, "prepared transaction rebuilt", "range=%" PRIu64 " txn=%" PRIu64, rg->range_id, id);
    return 0;
}

void tx2_rebuild(tx_range *rg)
{
    rebuild_ctx c = {rg};
    (void)range_list_intents(replica_store(rg->r), rebuild_one, &c, NULL);
}

typedef struct min_ctx {
    uint64_t min;
} min_ctx;

static int min_one(void *arg, const range_intent *it)
{
    min_ctx *c = arg;
    if (!c->min || it->prepare_ts < c->min) c->min = it->prepare_ts;
    return 0;
}

uint64_t tx2_min_prepared(replica *r)
{
    min_ctx c = {0};
    (void)range_list_intents(replica_store(r), min_one, &c, NULL);
    return c.min;
}
