/* Two-phase commit in the node: see txn_2pc.h. The decisions are the pure
 * machines' (txn/twopc.h); this file carries out their actions: Paxos
 * proposals of prepare/resolve/decision records, rpcs between range
 * leaders, replies, lock release. */
#include "server/txn_2pc_int.h"

#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "server/dir.h"
#include "server/pbreply.h"
#include "server/replica_int.h"
#include "timesvc/hlc.h"
#include "txn/twopc.h"
#include "txn/txnrec.h"

#define MOD "txn2pc"

/* ---- small helpers ---- */

/* Tests: MERIDIAN_TESTING_2PC_CRASH=PREFIX kills this node (as kill -9
 * would) at POINT if the file PREFIX+POINT exists, removing it first: a
 * cluster started with it crashes once per file the test creates. */
void tx2_crash_point(const char *point)
{
    const char *env = getenv("MERIDIAN_TESTING_2PC_CRASH");
    char path[512];
    if (!env || snprintf(path, sizeof(path), "%s%s", env, point) >= (int)sizeof(path) ||
        unlink(path))
        return;
    MLOG_W(MOD, "testing crash point", "point=%s", point);
    raise(SIGKILL);
}

static uint64_t self_node(txn_service *s)
{
    return s->h->node_id;
}

int tx2_clock_now(txn_service *s, txn_clock *clk)
{
    tt_interval tt;
    hlc_ts now;
    if (host_now(s->h, &tt, NULL) || hlc_now(&s->h->hlc, tt.latest_ns, &now, NULL))
        return MERR_CLOCK;
    /* hlc_now(latest) is >= latest and above every ts this node handed
     * out: it stands for both. Earliest rounds up within its microsecond:
     * the logical part of a ts carries no physical time. */
    clk->hlc_now = now;
    clk->last_assigned = 0;
    clk->tt_latest = hlc_make((uint64_t)tt.latest_ns / 1000, 0);
    clk->tt_earliest = hlc_make((uint64_t)tt.earliest_ns / 1000, HLC_LOGICAL_MAX);
    return 0;
}

uint64_t tx2_presumed_deadline(txn_service *s)
{
    tt_interval tt;
    if (host_now(s->h, &tt, NULL)) return 0; /* 0: kept for good */
    return txn_rec_presumed_deadline((uint64_t)tt.latest_ns / 1000);
}

void tx2_observe(txn_service *s, uint64_t ts)
{
    tt_interval tt;
    if (ts && host_now(s->h, &tt, NULL) == 0)
        (void)hlc_update(&s->h->hlc, ts, tt.latest_ns, NULL, NULL);
}

const ProtobufCBinaryData *tx2_anchor(const Meridian__Txn__CommitRequest *q)
{
    return q->key.len ? &q->key : q->n_mutations ? &q->mutations[0]->key : NULL;
}

static void id_bytes(uint64_t id, uint8_t out[8])
{
    for (int i = 0; i < 8; i++) out[i] = (uint8_t)(id >> (56 - 8 * i));
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v = v << 8 | p[i];
    return v;
}

int tx2_coord_encode(uint64_t rid, const uint8_t *key, size_t klen, mbuf *out)
{
    uint8_t b[8];
    id_bytes(rid, b);
    if (mbuf_append(out, b, 8) || mbuf_append(out, key, klen)) return MERR_NOMEM;
    return 0;
}

int tx2_coord_decode(const uint8_t *p, size_t n, uint64_t *rid, const uint8_t **key, size_t *klen)
{
    if (n < 9) return MERR_CORRUPT;
    *rid = be64(p);
    *key = p + 8;
    *klen = n - 8;
    return *rid ? 0 : MERR_CORRUPT;
}

int tx2_add_wait(struct tx2 *x, rpc_req *req)
{
    if (x->nwait == x->capwait) {
        size_t cap = x->capwait ? x->capwait * 2 : 2;
        rpc_req **w = realloc(x->wait, cap * sizeof(*w));
        if (!w) return MERR_NOMEM;
        x->wait = w;
        x->capwait = cap;
    }
    x->wait[x->nwait++] = req;
    return 0;
}

static void fail_kind(rpc_req *req, int kind_unavail, const char *msg)
{
    (void)kind_unavail;
    rpc_reply(req, MERR_UNAVAILABLE, msg, NULL, 0);
}

struct tx2 *tx2_new(int role)
{
    struct tx2 *x = calloc(1, sizeof(*x));
    if (x) {
        x->role = role;
        x->since_ns = mtime_mono_ns();
    }
    return x;
}

void tx2_free(tx_txn *t)
{
    struct tx2 *x = t->x2;
    if (!x) return;
    for (size_t i = 0; i < x->nwait; i++)
        fail_kind(x->wait[i], 0, "the transaction's range state went: retry");
    free(x->wait);
    free(x->muts);
    if (x->cq) meridian__txn__commit_request__free_unpacked(x->cq, NULL);
    if (x->pq) meridian__txn__prepare_request__free_unpacked(x->pq, NULL);
    mbuf_free(&x->coord_key);
    free(x);
    t->x2 = NULL;
}

void tx2_drop(tx_range *rg, tx_txn *t, const char *why)
{
    (void)rg;
    struct tx2 *x = t->x2;
    if (!x) return;
    for (size_t i = 0; i < x->nwait; i++) rpc_reply(x->wait[i], MERR_UNAVAILABLE, why, NULL, 0);
    x->nwait = 0;
}

int tx2_busy(const tx_txn *t)
{
    const struct tx2 *x = t->x2;
    if (!x) return 0;
    if (x->role == ROLE_PART) return x->p.st != TXN_PART_COMMITTED && x->p.st != TXN_PART_ABORTED;
    if (x->c.st != TXN_COORD_COMMITTED && x->c.st != TXN_COORD_ABORTED) return 1;
    for (size_t i = 0; i < x->nparts; i++)
        if (x->parts[i].dec != P_DONE) return 1;
    return 0;
}

/* ---- calls between range leaders ---- */

/* A call to this node's own handler, posted so that it runs from the loop
 * (never re-entrant), without a socket (rpc_node_call_local). */
typedef struct local_call {
    txn_service *s;
    const char *method; /* a literal */
    uint8_t *buf;
    size_t len;
    rpc_reply_fn cb;
    void *arg;
} local_call;

static void local_run(void *arg)
{
    local_call *lc = arg;
    if (rpc_node_call_local(lc->s->rpc, lc->method, lc->buf, lc->len, 0, "node", 1, lc->cb,
                            lc->arg))
        lc->cb(lc->arg, MERR_NOMEM, "out of memory", NULL, 0);
    free(lc->buf);
    free(lc);
}

/* A range this node holds no replica of, with no hint: the live peers are
 * asked in turn, one per call. A node without the range answers
 * RANGE_NOT_FOUND (the next sweep asks the next), one with it the leaseholder
 * or NOT_LEADER and its hint. On a cluster larger than a range's group the
 * coordinator's node often holds none of a participant's replicas (a 5-node
 * Jepsen run: every 2PC aborted for want of votes once range 1's lease
 * moved to such a node). */
static uint64_t any_peer(txn_service *s)
{
    host *h = s->h;
    for (size_t k = 0; k < h->npeers; k++) {
        const host_peer *p = &h->peers[s->route_turn++ % h->npeers];
        if (p->id && p->id != self_node(s) && host_node_live(h, p->id)) return p->id;
    }
    return 0;
}

static uint64_t *cached_leader(txn_service *s, uint64_t rid)
{
    size_t k = (size_t)(rid % TX_LEADER_CACHE);
    return s->leaders[k].range == rid ? &s->leaders[k].node : NULL;
}

void tx2_learn(txn_service *s, uint64_t rid, uint64_t to, int ok, uint64_t hint, int not_found)
{
    size_t k = (size_t)(rid % TX_LEADER_CACHE);
    if (!ok) s->misdirected++;
    if (ok || hint) {
        s->leaders[k].range = rid;
        s->leaders[k].node = ok ? to : hint;
    } else if (not_found && s->leaders[k].range == rid && s->leaders[k].node == to) {
        s->leaders[k].range = s->leaders[k].node = 0;
    }
}

/* Sends m to the leader of `range` (hint: a node to try first); cb runs
 * once unless this returns an error. */
int tx2_call_range(txn_service *s, uint64_t rid, uint64_t hint, const char *method,
                   const ProtobufCMessage *m, rpc_reply_fn cb, tx2_ctx *c)
{
    void *arg = c;
    replica *r = host_find(s->h, rid);
    uint64_t node = hint, *known = cached_leader(s, rid);
    if (!node && r) node = replica_is_leaseholder(r) ? self_node(s) : replica_leader_hint(r);
    if (!node && known) node = *known;
    if (!node && !r) node = any_peer(s);
    if (!node) return MERR_UNAVAILABLE;
    c->to = node;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = pb_pack(m, &buf, &len);
    if (rc) return rc;
    if (node == self_node(s)) {
        local_call *lc = calloc(1, sizeof(*lc));
        if (!lc) {
            free(buf);
            return MERR_NOMEM;
        }
        lc->s = s, lc->method = method, lc->buf = buf, lc->len = len, lc->cb = cb, lc->arg = arg;
        if ((rc = rpc_node_post(s->rpc, local_run, lc))) {
            free(buf);
            free(lc);
        }
        return rc;
    }
    int64_t dl = mtime_real_ns() / 1000 + TX2_CALL_NS / 1000;
    rc = rpc_node_call(s->rpc, node, method, buf, len, dl, cb, arg, NULL);
    free(buf);
    return rc;
}

/* The table and transaction a callback belongs to, if still there. */
tx_txn *tx2_ctx_txn(tx2_ctx *c, tx_range **rg_out)
{
    tx_range *rg = tx_range_find(c->s, c->range);
    if (!rg || rg->epoch != c->epoch || !tx_range_valid(rg)) return NULL;
    tx_txn *t = tx_txn_find(rg, c->txn);
    if (!t || !t->x2) return NULL;
    *rg_out = rg;
    return t;
}

tx2_ctx *tx2_ctx_new(tx_range *rg, tx_txn *t, size_t part, int what)
{
    tx2_ctx *c = malloc(sizeof(*c));
    if (c) *c = (tx2_ctx){rg->s, rg->range_id, rg->epoch, t->id, part, what, 0};
    return c;
}

/* ---- proposals ---- */

typedef struct prop_ctx {
    tx2_ctx c;
    txn_record rec;
} prop_ctx;

static void coord_run(tx_range *rg, tx_txn *t, const txn_out *out);

static void on_proposed(void *arg, int code, const char *msg, uint64_t ts);

int tx2_propose(tx_range *rg, tx_txn *t, const txn_record *rec, const range_batch *b)
{
    mbuf enc = MBUF_INIT;
    merr e = {0};
    prop_ctx *pc = malloc(sizeof(*pc));
    int rc = pc ? range_batch_encode(b, &enc) : MERR_NOMEM;
    if (!rc) {
        pc->c = (tx2_ctx){rg->s, rg->range_id, rg->epoch, t->id, 0, 0, 0};
        pc->rec = *rec;
        /* Only a commit record reveals a commit: a prepare or an abort is
         * answered once applied, so a 2PC commit waits once, on s. */
        if (rec->type == TXN_REC_COMMIT)
            rc = replica_propose(rg->r, enc.data, enc.len, b->ts, 0, on_proposed, pc, &e);
        else
            rc = replica_propose_unwaited(rg->r, enc.data, enc.len, b->ts, on_proposed, pc, &e);
        rg->last_prop_ns = mtime_mono_ns();
    }
    mbuf_free(&enc);
    if (rc) {
        free(pc);
        MLOG_W(MOD, "proposal failed", "range=%" PRIu64 " txn=%" PRIu64 " error=%s", rg->range_id,
               t->id, merr_str(rc));
    }
    return rc;
}

/* A record this leader proposed was chosen, applied and commit-waited (or
 * failed: the table then goes with the leadership; a successor finds the
 * records and intents in the store). */
static void on_proposed(void *arg, int code, const char *msg, uint64_t ts)
{
    prop_ctx *pc = arg;
    tx_range *rg = NULL;
    tx_txn *t = tx2_ctx_txn(&pc->c, &rg);
    (void)ts;
    if (!t) {
        free(pc);
        return;
    }
    struct tx2 *x = t->x2;
    if (code) {
        MLOG_W(MOD, "record not logged", "txn=%" PRIu64 " error=\"%s\"", t->id, msg ? msg : "");
        if (x->role == ROLE_COORD) {
            for (size_t i = 0; i < t->nwaiters; i++)
                txs_fail(rg->s, rg->r, t->waiters[i], TX_COMMIT, MERR_UNAVAILABLE,
                         "commit outcome unknown: retry the commit", 0);
            t->nwaiters = 0;
        }
        free(pc);
        return;
    }
    txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &pc->rec};
    txn_out out;
    merr e = {0};
    if (pc->rec.type == TXN_REC_COMMIT)
        tx2_crash_point(x->role == ROLE_COORD ? "coord-committed" : "part-committed");
    else if (pc->rec.type == TXN_REC_PREPARE)
        tx2_crash_point("part-prepared"); /* logged, no vote sent */
    if (x->role == ROLE_COORD) {
        if (txn_coord_step(&x->c, &ev, &out, &e) == 0) coord_run(rg, t, &out);
        /* The replica commit-waited on the record's ts before this call. */
        if (x->c.st == TXN_COORD_COMMIT_WAIT) {
            txn_event tn = {.type = TXN_EV_TT_NOW};
            if (tx2_clock_now(rg->s, &tn.clk) == 0 && txn_coord_step(&x->c, &tn, &out, &e) == 0)
                coord_run(rg, t, &out);
        }
    } else if (txn_part_step(&x->p, &ev, &out, &e) == 0) {
        tx2_part_run(rg, t, &out);
    }
    free(pc);
    tx_pump(rg);
}

/* ---- coordinator ---- */

static void send_prepare(tx_range *rg, tx_txn *t, size_t i);
static void send_decision(tx_range *rg, tx_txn *t, size_t i);

static void reply_client(tx_range *rg, tx_txn *t, txn_outcome o, uint64_t ts)
{
    for (size_t i = 0; i < t->nwaiters; i++) {
        if (o == TXN_OUTCOME_COMMITTED) {
            Meridian__Txn__CommitResponse m = MERIDIAN__TXN__COMMIT_RESPONSE__INIT;
            m.commit_ts = ts;
            pb_reply(t->waiters[i], &m.base);
        } else {
            txs_fail(rg->s, rg->r, t->waiters[i], TX_COMMIT, MERR_ABORTED,
                     "a participant voted no (wounded, timed out or lost its locks)", 1);
        }
    }
    t->nwaiters = 0;
}

static size_t part_index(struct tx2 *x, uint64_t rid)
{
    for (size_t i = 0; i < x->nparts; i++)
        if (x->parts[i].range == rid) return i;
    return x->nparts;
}

static void coord_run(tx_range *rg, tx_txn *t, const txn_out *out)
{
    struct tx2 *x = t->x2;
    for (size_t i = 0; i < out->n; i++) {
        const txn_action *a = &out->a[i];
        switch (a->type) {
        case TXN_ACT_PROPOSE: {
            int ab = out->rec.type == TXN_REC_ABORT;
            mbuf key = MBUF_INIT;
            size_t n = 0, cap = x->cq ? x->cq->n_mutations + 1 : 1;
            range_write *w = calloc(cap, sizeof(*w));
            /* Keyed by the anchor: the record lives in this range (txnrec.h). */
            if (!w || txn_rec_key(x->coord_key.data, x->coord_key.len, t->id, ab, &key)) {
                free(w);
                mbuf_free(&key);
                break;
            }
            if (!ab && x->cq) {
                for (size_t j = 0; j < x->cq->n_mutations; j++) {
                    const Meridian__Kv__Mutation *m = x->cq->mutations[j];
                    if (!replica_contains(rg->r, m->key.data, m->key.len)) continue;
                    w[n++] = (range_write){m->key.data, m->key.len, m->value.data, m->value.len,
                                           m->is_delete};
                }
            }
            /* The value: the client's deadline and whom to tell, for GC. */
            txn_rec_value rv = {.abort = ab, .n_parts = out->rec.n_parts};
            rv.deadline_us = x->cq ? x->cq->deadline_us : tx2_presumed_deadline(rg->s);
            memcpy(rv.parts, out->rec.parts, rv.n_parts * sizeof(rv.parts[0]));
            uint8_t val[TXN_REC_VALUE_MAX];
            size_t vl = txn_rec_value_encode(&rv, val);
            w[n++] = (range_write){key.data, key.len, val, vl, 0};
            txn_clock clk;
            uint64_t ts = out->rec.ts;
            if (ab && tx2_clock_now(rg->s, &clk) == 0) ts = clk.hlc_now;
            range_batch b = {.ts = ts, .writes = w, .nwrites = n};
            if (!ab) tx2_crash_point("coord-prepared"); /* every vote yes, nothing logged */
            (void)tx2_propose(rg, t, &out->rec, &b);
            free(w);
            mbuf_free(&key);
            break;
        }
        case TXN_ACT_SEND_DECISION: {
            size_t j = part_index(x, a->to);
            if (j < x->nparts) {
                x->outcome = a->outcome;
                x->s = a->ts;
                x->parts[j].dec = P_IDLE;
                send_decision(rg, t, j);
            }
            break;
        }
        case TXN_ACT_REPLY_CLIENT: reply_client(rg, t, a->outcome, a->ts); break;
        case TXN_ACT_RELEASE_LOCKS:
            tx_txn_release(rg, t);
            t->last_ns = mtime_mono_ns();
            if (x->c.st == TXN_COORD_COMMITTED) {
                t->state = TX_COMMITTED;
                t->commit_ts = x->c.s;
                if (x->cq) rg->s->commits++; /* not a GC resolver (txn_2pc_gc.c) */
            } else {
                t->state = TX_ABORTED;
            }
            break;
        case TXN_ACT_ASSIGNED_TS: tx2_observe(rg->s, a->ts); break;
        default: break; /* COMMIT_WAIT: the replica waits before answering the proposal */
        }
    }
}

/* The clock for a vote, which may decide s: the HLC's next value read at
 * tt earliest, so s = max(tt latest at the commit request, every prepare
 * ts, above every ts this node assigned) is not pushed up to tt latest at
 * the last vote. Its commit-wait then runs from the commit request, in
 * parallel with the prepares, as a single-range commit's does. "Above every
 * ts assigned" relies on every assigned ts (writes, snapshot read ts, and a
 * closed timestamp once wired) having gone through this node's HLC. */
static int clock_for_vote(txn_service *s, txn_clock *clk)
{
    tt_interval tt;
    hlc_ts now;
    if (host_now(s->h, &tt, NULL) || hlc_now(&s->h->hlc, tt.earliest_ns, &now, NULL))
        return MERR_CLOCK;
    clk->hlc_now = now;
    clk->last_assigned = 0;
    clk->tt_latest = hlc_make((uint64_t)tt.latest_ns / 1000, 0);
    clk->tt_earliest = hlc_make((uint64_t)tt.earliest_ns / 1000, HLC_LOGICAL_MAX);
    return 0;
}

void tx2_coord_run(tx_range *rg, tx_txn *t, const txn_out *out)
{
    coord_run(rg, t, out);
}

static void coord_step(tx_range *rg, tx_txn *t, txn_event *ev)
{
    txn_out out;
    merr e = {0};
    if (ev->type == TXN_EV_VOTE) {
        if (clock_for_vote(rg->s, &ev->clk)) return;
    } else if (ev->type != TXN_EV_CHOSEN && tx2_clock_now(rg->s, &ev->clk)) {
        return;
    }
    if (txn_coord_step(&t->x2->c, ev, &out, &e) == 0) coord_run(rg, t, &out);
}

static void on_vote(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    tx2_ctx *c = arg;
    tx_range *rg = NULL;
    tx_txn *t = tx2_ctx_txn(c, &rg);
    size_t i = c->part;
    uint64_t to = c->to;
    free(c);
    if (!t || i >= t->x2->nparts) return;
    struct tx2 *x = t->x2;
    tx2_part *pt = &x->parts[i];
    pt->prep = P_IDLE; /* unless answered below: the sweep sends it again */
    Meridian__Txn__PrepareResponse *m =
        code ? NULL : meridian__txn__prepare_response__unpack(NULL, len, p);
    if (!m) {
        MLOG_D(MOD, "prepare retried", "txn=%" PRIu64 " range=%" PRIu64 " why=\"%s\"", t->id,
               pt->range, msg ? msg : "undecodable");
        pt->node_hint = 0;
        return;
    }
    int vote = -1, retry = 0; /* vote: -1 ask again, 0 no, 1 yes */
    if (m->yes || m->aborted || m->error)
        tx2_learn(rg->s, pt->range, to, m->yes || m->aborted,
                  m->error && m->error->kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER
                      ? m->error->leader_hint
                      : 0,
                  m->error && m->error->kind == MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND);
    if (m->yes)
        vote = 1;
    else if (m->aborted)
        vote = 0;
    else if (m->error && m->error->kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER)
        pt->node_hint = m->error->leader_hint;
    else if (m->error && m->error->kind == MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND &&
             ++pt->asked < HOST_MAX_PEERS)
        retry = 1; /* asked a node without the range: the next one, now */
    else if (m->error && (m->error->kind == MERIDIAN__KV__ERROR_KIND__INVALID ||
                          m->error->kind == MERIDIAN__KV__ERROR_KIND__RANGE_MISMATCH))
        vote = 0;
    else
        pt->node_hint = 0;
    MLOG_D(MOD, "vote", "txn=%" PRIu64 " range=%" PRIu64 " vote=%d error=\"%s\"", t->id, pt->range,
           vote, m->error && m->error->message ? m->error->message : "");
    if (vote >= 0) {
        pt->prep = P_DONE;
        txn_event ev = {
            .type = TXN_EV_VOTE, .from = pt->range, .yes = vote == 1, .ts = m->prepare_ts};
        coord_step(rg, t, &ev);
        /* After the step: observing p first would move the HLC to tt latest
         * now and s with it (see clock_for_vote); s >= p holds anyway. */
        if (vote == 1) tx2_observe(rg->s, m->prepare_ts);
    } else if (pt->node_hint || retry) {
        send_prepare(rg, t, i);
    }
    meridian__txn__prepare_response__free_unpacked(m, NULL);
    tx_pump(rg);
}

static void send_prepare(tx_range *rg, tx_txn *t, size_t i)
{
    struct tx2 *x = t->x2;
    tx2_part *pt = &x->parts[i];
    if (x->c.st != TXN_COORD_COLLECTING || pt->prep != P_IDLE) return;
    Meridian__Txn__RangeLock lk = MERIDIAN__TXN__RANGE_LOCK__INIT, *lkp = &lk;
    Meridian__Txn__TxnMeta meta = MERIDIAN__TXN__TXN_META__INIT;
    meta.id = t->id;
    meta.priority = t->prio;
    if (pt->epoch) {
        lk.range_id = pt->range, lk.epoch = pt->epoch;
        meta.locks = &lkp, meta.n_locks = 1;
    }
    Meridian__Txn__PrepareRequest q = MERIDIAN__TXN__PREPARE_REQUEST__INIT;
    q.txn = &meta;
    q.range_id = pt->range;
    q.coord_range = rg->range_id;
    q.coord_key = (ProtobufCBinaryData){x->coord_key.len, x->coord_key.data};
    q.mutations = pt->muts;
    q.n_mutations = pt->nmuts;
    tx2_ctx *c = tx2_ctx_new(rg, t, i, 0);
    if (!c) return;
    pt->prep = P_INFLIGHT;
    if (tx2_call_range(rg->s, pt->range, pt->node_hint, "txn.Prepare", &q.base, on_vote, c)) {
        pt->prep = P_IDLE;
        pt->node_hint = 0;
        free(c);
    }
}

static void on_decided(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    tx2_ctx *c = arg;
    tx_range *rg = NULL;
    tx_txn *t = tx2_ctx_txn(c, &rg);
    size_t i = c->part;
    uint64_t to = c->to;
    free(c);
    (void)msg;
    if (!t || i >= t->x2->nparts) return;
    tx2_part *pt = &t->x2->parts[i];
    Meridian__Txn__DecideResponse *m =
        code ? NULL : meridian__txn__decide_response__unpack(NULL, len, p);
    if (m)
        tx2_learn(rg->s, pt->range, to, !m->error,
                  m->error && m->error->kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER
                      ? m->error->leader_hint
                      : 0,
                  m->error && m->error->kind == MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND);
    pt->dec = P_IDLE;
    pt->node_hint = 0;
    if (m && !m->error) pt->dec = P_DONE;
    if (m && m->error && m->error->kind == MERIDIAN__KV__ERROR_KIND__NOT_LEADER &&
        m->error->leader_hint) {
        pt->node_hint = m->error->leader_hint;
        send_decision(rg, t, i);
    } else if (m && m->error && m->error->kind == MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND &&
               ++pt->asked < HOST_MAX_PEERS) {
        send_decision(rg, t, i); /* asked a node without the range: the next one */
    }
    if (m) meridian__txn__decide_response__free_unpacked(m, NULL);
}

static void send_decision(tx_range *rg, tx_txn *t, size_t i)
{
    struct tx2 *x = t->x2;
    tx2_part *pt = &x->parts[i];
    if (pt->dec != P_IDLE || x->outcome == TXN_OUTCOME_UNKNOWN) return;
    Meridian__Txn__DecideRequest q = MERIDIAN__TXN__DECIDE_REQUEST__INIT;
    q.txn_id = t->id;
    q.range_id = pt->range;
    q.commit = x->outcome == TXN_OUTCOME_COMMITTED;
    q.commit_ts = q.commit ? x->s : 0;
    tx2_ctx *c = tx2_ctx_new(rg, t, i, 1);
    if (!c) return;
    pt->dec = P_INFLIGHT;
    if (tx2_call_range(rg->s, pt->range, pt->node_hint, "txn.Decide", &q.base, on_decided, c)) {
        pt->dec = P_IDLE;
        free(c);
    }
}

int tx2_is_multi(tx_range *rg, const Meridian__Txn__CommitRequest *q)
{
    for (size_t i = 0; i < q->n_mutations; i++)
        if (!replica_contains(rg->r, q->mutations[i]->key.data, q->mutations[i]->key.len)) return 1;
    for (size_t i = 0; q->txn && i < q->txn->n_locks; i++)
        if (q->txn->locks[i]->range_id != rg->range_id && q->txn->locks[i]->epoch) return 1;
    return 0;
}

static int add_part(struct tx2 *x, uint64_t rid, uint64_t epoch)
{
    size_t i = part_index(x, rid);
    if (i == x->nparts) {
        if (x->nparts == TXN_MAX_PARTS) return -1;
        x->parts[x->nparts++] = (tx2_part){.range = rid};
    }
    if (epoch) x->parts[i].epoch = epoch;
    return (int)i;
}

void tx2_coord_start(tx_range *rg, tx_txn *t, tx_parked *pk)
{
    txn_service *s = rg->s;
    Meridian__Txn__CommitRequest *q = pk->q;
    const char *why = NULL;
    int code = MERR_NOMEM;
    struct tx2 *x = tx2_new(ROLE_COORD);
    Meridian__Kv__Mutation **muts = x ? calloc(q->n_mutations + 1, sizeof(*muts)) : NULL;
    if (!muts) {
        why = "out of memory";
        goto fail;
    }
    /* Group the writes by range: each participant gets a slice of muts. */
    uint64_t *rid = calloc(q->n_mutations + 1, sizeof(*rid));
    if (!rid) {
        free(muts);
        why = "out of memory";
        goto fail;
    }
    for (size_t i = 0; i < q->n_mutations && !why; i++) {
        const ProtobufCBinaryData *k = &q->mutations[i]->key;
        if (replica_contains(rg->r, k->data, k->len)) continue;
        replica *r = host_find_key(s->h, k->data, k->len);
        uint64_t id = r ? replica_id(r) : 0, leader = 0;
        /* No replica of it here (a cluster larger than a range's group):
         * the directory says which range holds the key, and its leader. */
        if (!id) id = dir_range_of(s->h, k->data, k->len, &leader);
        int pi = id ? add_part(x, id, 0) : 0;
        if (!id) {
            code = MERR_UNAVAILABLE;
            why = "no replica on this node knows the range of a written key: retry the commit";
        } else if (pi < 0) {
            code = MERR_TOOBIG;
            why = "the transaction spans too many ranges";
        } else {
            rid[i] = id;
            if (leader && !x->parts[pi].node_hint) x->parts[pi].node_hint = leader;
        }
    }
    for (size_t i = 0; q->txn && i < q->txn->n_locks && !why; i++) {
        const Meridian__Txn__RangeLock *l = q->txn->locks[i];
        if (l->range_id != rg->range_id && l->epoch && add_part(x, l->range_id, l->epoch) < 0) {
            code = MERR_TOOBIG;
            why = "the transaction spans too many ranges";
        }
    }
    if (!why) {
        size_t off = 0;
        for (size_t j = 0; j < x->nparts; j++) {
            x->parts[j].muts = muts + off;
            for (size_t i = 0; i < q->n_mutations; i++)
                if (rid[i] == x->parts[j].range) muts[off++] = q->mutations[i];
            x->parts[j].nmuts = (size_t)(muts + off - x->parts[j].muts);
        }
    }
    free(rid);
    if (why) {
        free(muts);
        goto fail;
    }
    const ProtobufCBinaryData *an = tx2_anchor(q);
    if (!an || mbuf_append(&x->coord_key, an->data, an->len) || txs_add_waiter(t, pk->req)) {
        free(muts);
        mbuf_free(&x->coord_key);
        why = "out of memory";
        goto fail;
    }
    x->cq = q;
    pk->q = NULL;
    pk->req = NULL;
    tx_parked_free(pk);
    t->x2 = x;
    t->state = TX_COMMITTING;
    txn_coord_init(&x->c, t->id, rg->range_id, rg->epoch, true);
    uint64_t ids[TXN_MAX_PARTS];
    for (size_t j = 0; j < x->nparts; j++) ids[j] = x->parts[j].range;
    txn_event ev = {.type = TXN_EV_COMMIT, .parts = ids, .n_parts = x->nparts};
    ev.reads_epoch = txs_meta_epoch(q->txn, rg->range_id);
    coord_step(rg, t, &ev);
    x->muts = muts;
    for (size_t j = 0; j < x->nparts; j++) send_prepare(rg, t, j);
    return;
fail:
    free(x);
    /* The locks go with it: the client must retry it whole, not the commit
     * (unless it can never commit: too many ranges). */
    txs_fail(s, rg->r, pk->req, TX_COMMIT, code, why, code != MERR_TOOBIG);
    pk->req = NULL;
    tx_parked_free(pk);
    tx_txn_release(rg, t);
    t->state = TX_ABORTED;
    t->last_ns = mtime_mono_ns();
}

void tx2_coord_sweep(tx_range *rg, tx_txn *t, int64_t now_ns)
{
    struct tx2 *x = t->x2;
    if (x->c.st == TXN_COORD_COLLECTING && now_ns - x->since_ns > TX2_VOTE_NS) {
        txn_event ev = {.type = TXN_EV_TIMEOUT};
        coord_step(rg, t, &ev);
    } else if (x->c.st == TXN_COORD_COMMIT_WAIT) {
        txn_event ev = {.type = TXN_EV_TT_NOW};
        coord_step(rg, t, &ev);
    }
    for (size_t i = 0; i < x->nparts; i++) {
        send_prepare(rg, t, i);
        send_decision(rg, t, i);
    }
}

txn_outcome tx2_recorded(replica *r, const uint8_t *anchor, size_t alen, uint64_t txn, uint64_t *s)
{
    txn_outcome o = TXN_OUTCOME_UNKNOWN;
    mbuf key = MBUF_INIT;
    uint8_t *v = NULL;
    size_t vl = 0;
    uint64_t ts = 0;
    /* The commit record first: a commit chosen in an earlier slot wins. */
    for (int ab = 0; ab < 2 && o == TXN_OUTCOME_UNKNOWN; ab++) {
        mbuf_reset(&key);
        if (txn_rec_key(anchor, alen, txn, ab, &key) ||
            range_get(replica_store(r), key.data, key.len, RANGE_TS_MAX, &v, &vl, &ts))
            continue;
        free(v);
        if (!ab) *s = ts;
        o = ab ? TXN_OUTCOME_ABORTED : TXN_OUTCOME_COMMITTED;
    }
    mbuf_free(&key);
    return o;
}

void tx2_sweep(tx_range *rg, tx_txn *t, int64_t now_ns)
{
    if (!t->x2) return;
    if (t->x2->role == ROLE_COORD)
        tx2_coord_sweep(rg, t, now_ns);
    else
        tx2_part_sweep(rg, t, now_ns);
}

void tx2_register(txn_service *s)
{
    rpc_node_handle(s->rpc, "txn.Prepare", tx2_on_prepare, s);
    rpc_node_handle(s->rpc, "txn.Decide", tx2_on_decide, s);
    rpc_node_handle(s->rpc, "txn.Status", tx2_on_status, s);
}

uint64_t txs_meta_epoch(const Meridian__Txn__TxnMeta *meta, uint64_t range_id)
{
    if (!meta) return 0;
    for (size_t i = 0; i < meta->n_locks; i++)
        if (meta->locks[i]->range_id == range_id) return meta->locks[i]->epoch;
    if (meta->n_locks) return 0;
    /* An older client: one range, or none named yet. */
    return !meta->lock_range || meta->lock_range == range_id ? meta->lock_epoch : 0;
}

uint64_t tx2_min_pending(replica *r)
{
    uint64_t min = 0;
    for (const pending_write *p = r->pending; p; p = p->next)
        if (p->ts && (!min || p->ts < min)) min = p->ts;
    return min;
}
