/* The txn.* rpc methods at the range leaseholder (see txn_service.h): locking
 * reads, snapshot reads, commit through one replicated write, rollback. */
#include "server/txn_service.h"
#include "server/kv_rows.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "proto/txn.pb-c.h"
#include "server/pbreply.h"
#include "server/replica.h"
#include "server/txn_2pc.h"
#include "server/txn_table.h"
#include "timesvc/hlc.h"
#include "txn/txnrec.h"

#define MOD         "txn"
#define TX_SCAN_MAX 1000 /* rows per Scan reply */
#define TX_MUT_MAX  100000
#define TX_IDLE_NS  (10LL * MTIME_S)
#define TX_SWEEP_MS 200
/* The durable transaction record (txn_rec_key: a range-local key anchored
 * at the commit's anchor, so it lives in this range), written in the
 * commit's own batch, so a retried commit (also at a new leaseholder)
 * learns the outcome. Keys starting 0x00 are not reachable through txn.*. */

static const uint8_t first_user_key[] = {0x01};

uint64_t txs_now_ts(txn_service *s)
{
    tt_interval tt;
    hlc_ts ts = 0;
    if (host_now(s->h, &tt, NULL) || hlc_now(&s->h->hlc, tt.now_ns, &ts, NULL)) return 0;
    return ts;
}

/* ---- reads ---- */

/* What a read's reply says of the range that served it (the client's route
 * cache, server/txn_routes.h). The span is the replica's; it lives as long
 * as the reply, which is packed before anything can change it. */
static void served_by(replica *r, ProtobufCBinaryData *start, ProtobufCBinaryData *end,
                      protobuf_c_boolean *leaseholder)
{
    const uint8_t *s, *e;
    replica_span(r, &s, &start->len, &e, &end->len);
    start->data = (uint8_t *)s;
    end->data = (uint8_t *)e;
    *leaseholder = replica_is_leaseholder(r);
}

/* A read whose key left the replica's span while it waited (a split
 * narrowed the range): the transaction restarts and routes afresh, rather
 * than failing with "outside span". */
#define SPLIT_UNDER_READ "the range split while the read waited: retry the transaction"

void txs_reply_get(txn_service *s, replica *r, rpc_req *req, const ProtobufCBinaryData *key,
                   uint64_t at, uint64_t epoch, uint64_t read_ts)
{
    Meridian__Txn__GetResponse m = MERIDIAN__TXN__GET_RESPONSE__INIT;
    uint8_t *val = NULL;
    size_t vlen = 0;
    replica_note_read(r, key->data, key->len);
    int rc = range_get(replica_store(r), key->data, key->len, at, &val, &vlen, NULL);
    if (rc == MERR_RANGE) { /* the range split while the read waited for its lock */
        txs_fail(s, r, req, TX_GET, MERR_ABORTED, SPLIT_UNDER_READ, 1);
        return;
    }
    if (rc && rc != MERR_NOTFOUND) {
        txs_fail(s, r, req, TX_GET, rc, range_err(replica_store(r))->msg, 0);
        return;
    }
    m.found = rc == 0;
    m.value.data = val, m.value.len = vlen;
    m.lock_epoch = epoch;
    m.read_ts = read_ts;
    m.range_id = replica_id(r);
    served_by(r, &m.range_start, &m.range_end, &m.leaseholder);
    pb_reply(req, &m.base);
    free(val);
}

/* Reads [lo, hi) (or to the end) at `at`, at most limit rows, and answers.
 * `truncated`: the locked span stops before the request's bound, so the
 * reply says "more" from the span's edge even when it holds fewer rows. */
void txs_reply_scan(txn_service *s, replica *r, rpc_req *req, const mbuf *lo, const mbuf *hi,
                    int to_end, int reverse, size_t limit, int truncated, uint64_t at,
                    uint64_t epoch, uint64_t read_ts)
{
    Meridian__Txn__ScanResponse m = MERIDIAN__TXN__SCAN_RESPONSE__INIT;
    replica_note_read(r, lo->data, lo->len);
    kv_rows a = {0};
    uint8_t *resume = NULL;
    int rc = 0;
    if (to_end || mbytes_cmp(lo->data, lo->len, hi->data, hi->len) < 0) {
        rc = range_scan(replica_store(r), lo->data, lo->len, to_end ? NULL : hi->data,
                        to_end ? 0 : hi->len, at, limit + 1, reverse, kv_rows_add, &a, NULL);
        if (a.oom) rc = MERR_NOMEM;
    }
    if (rc) {
        kv_rows_free(&a);
        if (rc == MERR_RANGE)
            txs_fail(s, r, req, TX_SCAN, MERR_ABORTED, SPLIT_UNDER_READ, 1);
        else
            txs_fail(s, r, req, TX_SCAN, rc, range_err(replica_store(r))->msg, 0);
        return;
    }
    if (a.n > limit) {
        /* Forward: go on just after the last row; reverse: below it. */
        const ProtobufCBinaryData *k = &a.v[limit - 1]->key;
        resume = malloc(k->len + 1);
        if (!resume) {
            kv_rows_free(&a);
            txs_fail(s, r, req, TX_SCAN, MERR_NOMEM, "out of memory", 0);
            return;
        }
        memcpy(resume, k->data, k->len);
        resume[k->len] = 0x00;
        m.more = 1;
        m.resume.data = resume;
        m.resume.len = reverse ? k->len : k->len + 1;
        m.n_rows = limit;
    } else {
        m.n_rows = a.n;
        if (truncated) {
            m.more = 1;
            m.resume = reverse ? (ProtobufCBinaryData){lo->len, lo->data}
                               : (ProtobufCBinaryData){hi->len, hi->data};
        }
    }
    m.rows = a.v;
    m.lock_epoch = epoch;
    m.read_ts = read_ts;
    m.range_id = replica_id(r);
    served_by(r, &m.range_start, &m.range_end, &m.leaseholder);
    pb_reply(req, &m.base);
    free(resume);
    kv_rows_free(&a);
}

/* ---- transactions: entering, locking ---- */

/* Checks a request's transaction against the table and returns it (created
 * if new), or answers the request and returns NULL. */
static tx_txn *txn_enter(txn_service *s, tx_range *rg, rpc_req *req, tx_kind kind,
                         const Meridian__Txn__TxnMeta *meta)
{
    tx_txn *t = tx_txn_find(rg, meta->id);
    uint64_t epoch = txs_meta_epoch(meta, rg->range_id); /* locks elsewhere: 2PC at commit */
    if (epoch && epoch != rg->epoch) {
        txs_fail(s, rg->r, req, kind, MERR_ABORTED,
                 "the transaction's locks were taken under an earlier lease and are gone", 1);
        return NULL;
    }
    if (!t && epoch) {
        txs_fail(s, rg->r, req, kind, MERR_ABORTED,
                 "the transaction is unknown here: it timed out and lost its locks", 1);
        return NULL;
    }
    if (!t && !(t = tx_txn_add(rg, meta->id, meta->priority))) {
        txs_fail(s, rg->r, req, kind, MERR_BUSY, "too many open transactions", 0);
        return NULL;
    }
    if (t->prio != meta->priority) {
        txs_fail(s, rg->r, req, kind, MERR_INVALID, "the transaction's priority changed", 0);
        return NULL;
    }
    if (t->state != TX_ACTIVE) {
        int ab = t->state == TX_ABORTED;
        MLOG_D(MOD, "request for an ended transaction",
               "range=%" PRIu64 " txn=%" PRIu64 " state=%d kind=%d", rg->range_id, (uint64_t)t->id,
               (int)t->state, (int)kind);
        txs_fail(s, rg->r, req, kind, ab ? MERR_ABORTED : MERR_INVALID,
                 ab ? "the transaction was aborted (wounded or timed out)"
                    : "the transaction is already committing or committed",
                 ab);
        return NULL;
    }
    if (t->pk) {
        /* The client gave up on its previous request and sent this one. */
        txs_fail(s, rg->r, t->pk->req, t->pk->kind, MERR_UNAVAILABLE, "superseded by a retry", 0);
        tx_parked_free(t->pk);
        t->pk = NULL;
        if (txn_lock_cancel_waits(rg->lt, t->id, &rg->out) == 0) tx_queue_out(rg);
    }
    t->last_ns = mtime_mono_ns();
    return t;
}

int txs_lock_or_park(tx_range *rg, tx_txn *t, tx_parked *pk, txn_span span, txn_lock_mode mode)
{
    txn_lock_req lr = {.txn = t->id, .prio = t->prio, .span = span, .mode = mode};
    lr.tag = ++t->next_tag;
    merr e = {0};
    int rc = txn_lock_acquire(rg->lt, &lr, &rg->out, &e);
    if (rc == MERR_ABORTED) {
        t->pk = pk;
        rg->s->wounds++;
        tx_txn_abort(rg, t, "wounded by an older transaction");
        return -1;
    }
    if (rc) {
        txs_fail(rg->s, rg->r, pk->req, pk->kind, rc, e.msg[0] ? e.msg : merr_str(rc), 0);
        tx_parked_free(pk);
        return -1;
    }
    tx_queue_out(rg);
    if (rg->out.status == TXN_LOCK_WAITING) {
        rg->s->lock_waits++;
        pk->tag = lr.tag;
        t->pk = pk;
        return 0;
    }
    return 1;
}

static void finish_get(tx_range *rg, tx_parked *pk)
{
    Meridian__Txn__GetRequest *q = pk->q;
    txs_reply_get(rg->s, rg->r, pk->req, &q->key, RANGE_TS_MAX, rg->epoch, 0);
    tx_parked_free(pk);
}

size_t txs_scan_limit(const Meridian__Txn__ScanRequest *q)
{
    return q->limit && q->limit < TX_SCAN_MAX ? q->limit : TX_SCAN_MAX;
}

static void finish_scan(tx_range *rg, tx_parked *pk)
{
    Meridian__Txn__ScanRequest *q = pk->q;
    txs_reply_scan(rg->s, rg->r, pk->req, &pk->lo, &pk->hi, pk->to_end, q->reverse,
                   txs_scan_limit(q), pk->truncated, RANGE_TS_MAX, rg->epoch, 0);
    tx_parked_free(pk);
}

/* ---- commit ---- */

typedef struct commit_ctx {
    txn_service *s;
    uint64_t range_id, epoch;
    txn_id txn;
} commit_ctx;

static void reply_committed(rpc_req *req, uint64_t ts)
{
    Meridian__Txn__CommitResponse m = MERIDIAN__TXN__COMMIT_RESPONSE__INIT;
    m.commit_ts = ts;
    pb_reply(req, &m.base);
}

int txs_add_waiter(tx_txn *t, rpc_req *req)
{
    if (t->nwaiters == t->capwaiters) {
        size_t cap = t->capwaiters ? t->capwaiters * 2 : 2;
        rpc_req **w = realloc(t->waiters, cap * sizeof(*w));
        if (!w) return MERR_NOMEM;
        t->waiters = w;
        t->capwaiters = cap;
    }
    t->waiters[t->nwaiters++] = req;
    return 0;
}

static void on_committed(void *arg, int code, const char *msg, uint64_t ts)
{
    commit_ctx *c = arg;
    tx_range *rg = tx_range_find(c->s, c->range_id);
    tx_txn *t = rg && rg->epoch == c->epoch ? tx_txn_find(rg, c->txn) : NULL;
    free(c);
    if (!t || t->state != TX_COMMITTING) return; /* the table went: waiters were answered */
    for (size_t i = 0; i < t->nwaiters; i++) {
        if (code == 0)
            reply_committed(t->waiters[i], ts);
        else if (code == MERR_RETRY || code == MERR_NOT_LEADER)
            txs_fail(rg->s, rg->r, t->waiters[i], TX_COMMIT, MERR_ABORTED,
                     msg ? msg : "the commit was not applied", 1);
        else /* outcome unknown here: the retried commit reads the record */
            txs_fail(rg->s, rg->r, t->waiters[i], TX_COMMIT, MERR_UNAVAILABLE,
                     msg ? msg : "commit outcome unknown: retry the commit", 0);
    }
    t->nwaiters = 0;
    tx_txn_release(rg, t);
    t->last_ns = mtime_mono_ns();
    if (code == 0) {
        rg->s->commits++;
        t->state = TX_COMMITTED;
        t->commit_ts = ts;
    } else if (code == MERR_RETRY || code == MERR_NOT_LEADER) {
        MLOG_D(MOD, "single-range commit not applied",
               "range=%" PRIu64 " txn=%" PRIu64 " why=\"%s\"", rg->range_id, (uint64_t)t->id,
               msg ? msg : "");
        t->state = TX_ABORTED;
    } else {
        tx_txn_forget(rg, t);
    }
    tx_pump(rg);
}

/* Locks the writes one by one (parking while one waits), then proposes them
 * with the transaction record as one replicated write. */
static void commit_continue(tx_range *rg, tx_txn *t, tx_parked *pk)
{
    txn_service *s = rg->s;
    Meridian__Txn__CommitRequest *q = pk->q;
    for (; pk->step < q->n_mutations; pk->step++) {
        const ProtobufCBinaryData *k = &q->mutations[pk->step]->key;
        if (!replica_contains(rg->r, k->data, k->len)) continue; /* a participant locks it */
        int g = txs_lock_or_park(rg, t, pk, txn_span_point(k->data, k->len), TXN_LOCK_X);
        if (g <= 0) return;
    }
    int multi = tx2_is_multi(rg, q);
    if (q->n_mutations == 0 && !multi) { /* only reads: they were serializable under their locks */
        reply_committed(pk->req, txs_now_ts(s));
        s->commits++;
        tx_parked_free(pk);
        tx_txn_release(rg, t);
        t->state = TX_COMMITTED;
        t->last_ns = mtime_mono_ns();
        return;
    }
    /* Past this point the transaction cannot be wounded: it is committing.
     * A wound queued before its last grant still counts. */
    if (txn_lock_set_prepared(rg->lt, t->id) == MERR_ABORTED) {
        t->pk = pk;
        rg->s->wounds++;
        tx_txn_abort(rg, t, "wounded by an older transaction");
        return;
    }
    if (multi) {
        tx2_coord_start(rg, t, pk);
        return;
    }
    merr e = {0};
    int rc = MERR_NOMEM;
    mbuf rk = MBUF_INIT;
    const ProtobufCBinaryData *an = tx2_anchor(q);
    range_write *w = calloc(q->n_mutations + 1, sizeof(*w));
    commit_ctx *c = malloc(sizeof(*c));
    if (w && c && an && txn_rec_key(an->data, an->len, t->id, false, &rk) == 0 &&
        txs_add_waiter(t, pk->req) == 0) {
        for (size_t i = 0; i < q->n_mutations; i++) {
            const Meridian__Kv__Mutation *m = q->mutations[i];
            w[i] = (range_write){.key = m->key.data,
                                 .klen = m->key.len,
                                 .val = m->value.data,
                                 .vlen = m->value.len,
                                 .del = m->is_delete};
        }
        /* The record's value: the client's deadline, for its GC (txnrec.h). */
        txn_rec_value rv = {.deadline_us = q->deadline_us};
        uint8_t val[TXN_REC_VALUE_MAX];
        w[q->n_mutations] = (range_write){
            .key = rk.data, .klen = rk.len, .val = val, .vlen = txn_rec_value_encode(&rv, val)};
        *c = (commit_ctx){s, rg->range_id, rg->epoch, t->id};
        t->state = TX_COMMITTING;
        rc = replica_write(rg->r, w, q->n_mutations + 1, 0, on_committed, c, &e);
        rg->last_prop_ns = mtime_mono_ns();
        if (rc) {
            t->nwaiters--;
            t->state = TX_ACTIVE;
        }
    }
    if (rc) {
        free(c);
        txs_fail(s, rg->r, pk->req, TX_COMMIT, rc, e.msg[0] ? e.msg : merr_str(rc), 1);
        tx_txn_release(rg, t);
        t->state = TX_ABORTED;
        t->last_ns = mtime_mono_ns();
    }
    pk->req = NULL;
    tx_parked_free(pk);
    free(w);
    mbuf_free(&rk);
}

void txs_resume(tx_range *rg, tx_txn *t, tx_parked *pk)
{
    switch (pk->kind) {
    case TX_GET: finish_get(rg, pk); break;
    case TX_SCAN: finish_scan(rg, pk); break;
    case TX_COMMIT: commit_continue(rg, t, pk); break;
    case TX_PREPARE: tx2_prepare_continue(rg, t, pk); break;
    case TX_ROLLBACK: break; /* never parked */
    }
}

/* ---- handlers ---- */

static void on_get(void *arg, rpc_req *req)
{
    txn_service *s = arg;
    Meridian__Txn__GetRequest *q = meridian__txn__get_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable GetRequest", NULL, 0);
        return;
    }
    replica *r = NULL;
    const char *why = NULL;
    int rc = MERR_INVALID;
    if (!txs_user_key_ok(q->key.data, q->key.len))
        why = "keys are 1 to 65536 bytes and do not start with 0x00";
    else if (!q->snapshot && (!q->txn || !q->txn->id))
        why = "a transaction id is required";
    else
        rc = txs_route(s, q->key.data, q->key.len, q->snapshot && q->any_replica, &r, &why);
    if (rc) {
        if (rc != MERR_NOT_LEADER || !txs_park_for_lease(s, r, req, TX_GET, on_get))
            txs_fail(s, r, req, TX_GET, rc, why, 0);
        meridian__txn__get_request__free_unpacked(q, NULL);
        return;
    }
    tx_parked *pk = calloc(1, sizeof(*pk));
    if (!pk) {
        txs_fail(s, r, req, TX_GET, MERR_NOMEM, "out of memory", 0);
        meridian__txn__get_request__free_unpacked(q, NULL);
        return;
    }
    pk->req = req, pk->kind = TX_GET, pk->q = q;
    if (q->snapshot) {
        txs_snapshot_dispatch(s, r, pk);
        tx_parked_free(pk);
        return;
    }
    int gc = 0;
    const char *gwhy = NULL;
    tx_range *rg = tx_range_get(s, r, &gc, &gwhy);
    tx_txn *t = rg ? txn_enter(s, rg, req, TX_GET, q->txn) : NULL;
    if (!rg) txs_fail(s, r, req, TX_GET, gc, gwhy, 0);
    if (!t) {
        tx_parked_free(pk);
        return;
    }
    if (txs_lock_or_park(rg, t, pk, txn_span_point(q->key.data, q->key.len),
                         q->for_write ? TXN_LOCK_X : TXN_LOCK_S) == 1)
        finish_get(rg, pk);
    tx_pump(rg);
}

/* The span a locking scan locks: what an unlocked look says the reply will
 * cover (up to the limit's last row), or the whole request span. */
static int plan_scan(replica *r, const Meridian__Txn__ScanRequest *q, tx_parked *pk)
{
    size_t limit = txs_scan_limit(q);
    kv_rows a = {0};
    int rc = 0;
    if (pk->to_end || mbytes_cmp(pk->lo.data, pk->lo.len, pk->hi.data, pk->hi.len) < 0)
        rc = range_scan(replica_store(r), pk->lo.data, pk->lo.len, pk->to_end ? NULL : pk->hi.data,
                        pk->to_end ? 0 : pk->hi.len, RANGE_TS_MAX, limit + 1, q->reverse,
                        kv_rows_add, &a, NULL);
    if (a.oom) rc = MERR_NOMEM;
    if (!rc && a.n > limit) {
        const ProtobufCBinaryData *k = &a.v[limit - 1]->key;
        pk->truncated = 1;
        if (q->reverse) {
            mbuf_reset(&pk->lo);
            rc = mbuf_append(&pk->lo, k->data, k->len);
        } else {
            pk->to_end = 0;
            mbuf_reset(&pk->hi);
            rc = mbuf_append(&pk->hi, k->data, k->len);
            if (!rc) rc = mbuf_append_u8(&pk->hi, 0x00);
        }
    }
    kv_rows_free(&a);
    return rc;
}

static void on_scan(void *arg, rpc_req *req)
{
    txn_service *s = arg;
    Meridian__Txn__ScanRequest *q =
        meridian__txn__scan_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable ScanRequest", NULL, 0);
        return;
    }
    replica *r = NULL;
    const char *why = NULL;
    tx_parked *pk = calloc(1, sizeof(*pk));
    int rc = pk ? 0 : MERR_NOMEM;
    if (pk) {
        pk->req = req, pk->kind = TX_SCAN, pk->q = q;
        pk->to_end = q->to_end;
        /* Keys below 0x01 are the system's: user scans start above them. */
        int low = mbytes_cmp(q->start_key.data, q->start_key.len, first_user_key, 1) < 0;
        rc = low ? mbuf_append(&pk->lo, first_user_key, 1)
                 : mbuf_append(&pk->lo, q->start_key.data, q->start_key.len);
        if (!rc && !q->to_end) rc = mbuf_append(&pk->hi, q->end_key.data, q->end_key.len);
        if (rc) why = "out of memory";
    }
    if (!rc && (!q->txn || (!q->snapshot && !q->txn->id))) {
        rc = MERR_INVALID;
        why = "a transaction id is required";
    }
    if (!rc) rc = txs_route_scan(s, pk, q->reverse, q->snapshot && q->any_replica, &r, &why);
    if (rc) {
        if (rc != MERR_NOT_LEADER || !txs_park_for_lease(s, r, req, TX_SCAN, on_scan))
            txs_fail(s, r, req, TX_SCAN, rc, why, 0);
        if (pk)
            tx_parked_free(pk);
        else
            meridian__txn__scan_request__free_unpacked(q, NULL);
        return;
    }
    if (q->snapshot) {
        txs_snapshot_dispatch(s, r, pk);
        tx_parked_free(pk);
        return;
    }
    int gc = 0;
    const char *gwhy = NULL;
    tx_range *rg = tx_range_get(s, r, &gc, &gwhy);
    tx_txn *t = rg ? txn_enter(s, rg, req, TX_SCAN, q->txn) : NULL;
    if (!rg) txs_fail(s, r, req, TX_SCAN, gc, gwhy, 0);
    if (!t) {
        tx_parked_free(pk);
        return;
    }
    if ((rc = plan_scan(r, q, pk))) {
        txs_fail(s, r, req, TX_SCAN, rc, "scan failed", 0);
        tx_parked_free(pk);
        return;
    }
    txn_span sp = pk->to_end ? txn_span_to_end(pk->lo.data, pk->lo.len)
                             : txn_span_range(pk->lo.data, pk->lo.len, pk->hi.data, pk->hi.len);
    if (!pk->to_end && mbytes_cmp(pk->lo.data, pk->lo.len, pk->hi.data, pk->hi.len) >= 0)
        finish_scan(rg, pk); /* empty: nothing to lock, nothing to read */
    else if (txs_lock_or_park(rg, t, pk, sp, q->for_write ? TXN_LOCK_X : TXN_LOCK_S) == 1)
        finish_scan(rg, pk);
    tx_pump(rg);
}

static void on_commit(void *arg, rpc_req *req)
{
    txn_service *s = arg;
    Meridian__Txn__CommitRequest *q =
        meridian__txn__commit_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable CommitRequest", NULL, 0);
        return;
    }
    replica *r = NULL;
    const char *why = NULL;
    int rc = 0;
    /* The range: the one of the key the client names (its first key). */
    const ProtobufCBinaryData *anchor = tx2_anchor(q);
    if (!q->txn || !q->txn->id || !anchor || !txs_user_key_ok(anchor->data, anchor->len)) {
        rc = MERR_INVALID;
        why = "a commit needs a transaction id and a key";
    } else if (q->n_mutations > TX_MUT_MAX) {
        rc = MERR_INVALID;
        why = "too many writes in one transaction";
    } else {
        rc = txs_route(s, anchor->data, anchor->len, 0, &r, &why);
    }
    for (size_t i = 0; !rc && i < q->n_mutations; i++) {
        const Meridian__Kv__Mutation *m = q->mutations[i];
        if (!txs_user_key_ok(m->key.data, m->key.len) || m->value.len > RANGE_VALUE_MAX) {
            rc = MERR_INVALID;
            why = "bad key or value size (keys must not start with 0x00)";
        }
    }
    tx_range *rg = NULL;
    if (!rc) rg = tx_range_get(s, r, &rc, &why);
    if (rc) {
        if (rc != MERR_NOT_LEADER || !txs_park_for_lease(s, r, req, TX_COMMIT, on_commit))
            txs_fail(s, r, req, TX_COMMIT, rc, why, 0);
        meridian__txn__commit_request__free_unpacked(q, NULL);
        return;
    }
    tx_txn *t = tx_txn_find(rg, q->txn->id);
    if (t && t->state == TX_COMMITTED) {
        reply_committed(req, t->commit_ts);
    } else if (t && t->state == TX_COMMITTING) {
        if (txs_add_waiter(t, req)) txs_fail(s, r, req, TX_COMMIT, MERR_NOMEM, "out of memory", 0);
    } else if (tx2_deadline_refused(s, r, req, q->deadline_us) == 0) {
        /* Not past its deadline, so its record (if any) is still there; a
         * later copy is refused before any record is read (txn/txnrec.h). */
        uint64_t ts = 0;
        txn_outcome o =
            t ? TXN_OUTCOME_UNKNOWN : tx2_recorded(r, anchor->data, anchor->len, q->txn->id, &ts);
        if (o == TXN_OUTCOME_COMMITTED) {
            reply_committed(req, ts); /* a retry of a commit an earlier leaseholder applied */
        } else if (o == TXN_OUTCOME_ABORTED) {
            txs_fail(s, r, req, TX_COMMIT, MERR_ABORTED, "the transaction was aborted", 1);
        } else if ((t = txn_enter(s, rg, req, TX_COMMIT, q->txn))) {
            tx_parked *pk = calloc(1, sizeof(*pk));
            if (pk) {
                pk->req = req, pk->kind = TX_COMMIT, pk->q = q;
                q = NULL;
                commit_continue(rg, t, pk);
            } else {
                txs_fail(s, r, req, TX_COMMIT, MERR_NOMEM, "out of memory", 0);
            }
        }
    }
    if (q) meridian__txn__commit_request__free_unpacked(q, NULL);
    tx_pump(rg);
}

/* The lock table a txn.Rollback or txn.Check names (range_id, else key) in
 * *rg (NULL: none here), and 1; or 0 after answering: the locks live at the
 * lease owner, so anywhere else the reply says where (a rollback answered
 * "done" here left them to the idle timeout, which every DDL after a failed
 * statement then waited out on the schema key). */
static int locks_at(txn_service *s, rpc_req *req, const Meridian__Txn__RollbackRequest *q,
                    tx_range **rg)
{
    replica *r = !q->txn       ? NULL
                 : q->range_id ? host_find(s->h, q->range_id)
                 : q->key.len  ? host_find_key(s->h, q->key.data, q->key.len)
                               : NULL;
    *rg = r ? tx_range_find(s, replica_id(r)) : NULL;
    if (q->txn && !*rg && (!r || !replica_is_lease_owner(r))) {
        txs_fail(s, r, req, TX_ROLLBACK, r ? MERR_NOT_LEADER : MERR_NOTFOUND,
                 r ? "not the leaseholder: ask there" : "no replica of that range here", 0);
        return 0;
    }
    return 1;
}

static void on_rollback(void *arg, rpc_req *req)
{
    txn_service *s = arg;
    Meridian__Txn__RollbackRequest *q =
        meridian__txn__rollback_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable RollbackRequest", NULL, 0);
        return;
    }
    tx_range *rg;
    if (locks_at(s, req, q, &rg)) {
        tx_txn *t = rg ? tx_txn_find(rg, q->txn->id) : NULL;
        if (t && t->state == TX_ACTIVE) {
            tx_txn_abort(rg, t, "rolled back");
            tx_txn_forget(rg, t);
            tx_pump(rg);
        }
        Meridian__Txn__RollbackResponse m = MERIDIAN__TXN__ROLLBACK_RESPONSE__INIT;
        pb_reply(req, &m.base);
    }
    meridian__txn__rollback_request__free_unpacked(q, NULL);
}

/* txn.Check: whether the transaction can still commit as far as this
 * range's lock table knows; nothing changes. A transaction wounded in one
 * range goes on reading in others, where its reads may then see rows its
 * lost locks no longer protect (two New-Orders inserting the same order id:
 * a UNIQUE violation that is really a lost conflict). The SQL layer asks
 * before it reports a statement error inside a transaction, so such an
 * error is reported as the retryable abort it is. */
static void on_check(void *arg, rpc_req *req)
{
    txn_service *s = arg;
    Meridian__Txn__RollbackRequest *q =
        meridian__txn__rollback_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable RollbackRequest", NULL, 0);
        return;
    }
    tx_range *rg;
    if (locks_at(s, req, q, &rg)) {
        Meridian__Txn__RollbackResponse m = MERIDIAN__TXN__ROLLBACK_RESPONSE__INIT;
        if (q->txn) {
            uint64_t epoch = txs_meta_epoch(q->txn, q->range_id);
            tx_txn *t = rg ? tx_txn_find(rg, q->txn->id) : NULL;
            /* The same tests txn_enter makes before any request. */
            m.aborted = (epoch && (!rg || epoch != rg->epoch)) || (epoch && !t) ||
                        (t && t->state == TX_ABORTED);
        }
        pb_reply(req, &m.base);
    }
    meridian__txn__rollback_request__free_unpacked(q, NULL);
}

/* ---- lifecycle ---- */

static void on_timer(uv_timer_t *tm)
{
    tx_sweep(tm->data);
}

int txn_service_start(rpc_node *rpc, host *h, int64_t idle_ns, txn_service **out, merr *e)
{
    txn_service *s = calloc(1, sizeof(*s));
    if (!s) return merr_set(e, MERR_NOMEM, "out of memory");
    s->rpc = rpc;
    s->h = h;
    /* Tests shorten the idle timeout to see a late commit refused. */
    const char *env = getenv("MERIDIAN_TESTING_TXN_IDLE_MS");
    if (idle_ns <= 0 && env && atoll(env) > 0) idle_ns = atoll(env) * 1000000LL;
    s->idle_ns = idle_ns > 0 ? idle_ns : TX_IDLE_NS;
    uv_timer_init(rpc_node_loop(rpc), &s->timer);
    s->timer.data = s;
    uv_timer_start(&s->timer, on_timer, TX_SWEEP_MS, TX_SWEEP_MS);
    rpc_node_handle(rpc, "txn.Get", on_get, s);
    rpc_node_handle(rpc, "txn.Scan", on_scan, s);
    rpc_node_handle(rpc, "txn.Commit", on_commit, s);
    rpc_node_handle(rpc, "txn.Rollback", on_rollback, s);
    rpc_node_handle(rpc, "txn.Check", on_check, s);
    tx2_register(s);
    *out = s;
    return 0;
}

void txn_service_metrics_render(txn_service *s, mbuf *out)
{
    size_t open = 0, waiting = 0;
    for (tx_range *rg = s->ranges; rg; rg = rg->next) {
        txn_lock_stats st;
        txn_lock_get_stats(rg->lt, &st);
        open += st.txns;
        waiting += st.waiting;
    }
    mbuf_printf(out,
                "# HELP meridian_txn_commits_total Read-write transactions committed here.\n"
                "# TYPE meridian_txn_commits_total counter\n"
                "meridian_txn_commits_total %" PRIu64 "\n"
                "# HELP meridian_txn_aborts_total Transactions aborted here, by reason.\n"
                "# TYPE meridian_txn_aborts_total counter\n"
                "meridian_txn_aborts_total{reason=\"wounded\"} %" PRIu64 "\n"
                "meridian_txn_aborts_total{reason=\"idle\"} %" PRIu64 "\n"
                "# HELP meridian_txn_lock_tables_dropped_total Lock tables dropped (lost "
                "leadership).\n"
                "# TYPE meridian_txn_lock_tables_dropped_total counter\n"
                "meridian_txn_lock_tables_dropped_total %" PRIu64 "\n"
                "# HELP meridian_txn_lock_waits_total Lock requests that had to wait.\n"
                "# TYPE meridian_txn_lock_waits_total counter\n"
                "meridian_txn_lock_waits_total %" PRIu64 "\n"
                "# HELP meridian_txn_locking Transactions holding or waiting for locks here.\n"
                "# TYPE meridian_txn_locking gauge\n"
                "meridian_txn_locking %zu\n"
                "# HELP meridian_txn_lock_waiting Lock requests waiting now.\n"
                "# TYPE meridian_txn_lock_waiting gauge\n"
                "meridian_txn_lock_waiting %zu\n",
                s->commits, s->wounds, s->idle_aborts, s->tables_dropped, s->lock_waits, open,
                waiting);
    mbuf_printf(out,
                "# HELP meridian_txn_follower_reads_total Snapshot reads served here without "
                "the lease (safe time).\n"
                "# TYPE meridian_txn_follower_reads_total counter\n"
                "meridian_txn_follower_reads_total %" PRIu64 "\n"
                "# HELP meridian_txn_strong_reads_total Strong snapshot reads at this "
                "leaseholder, by how their timestamp was picked: settled (nothing in flight: "
                "the HLC) or barrier (an empty replicated write).\n"
                "# TYPE meridian_txn_strong_reads_total counter\n"
                "meridian_txn_strong_reads_total{path=\"settled\"} %" PRIu64 "\n"
                "meridian_txn_strong_reads_total{path=\"barrier\"} %" PRIu64 "\n"
                "# HELP meridian_txn_not_leader_total Transaction requests answered "
                "NOT_LEADER (sent on to the leaseholder).\n"
                "# TYPE meridian_txn_not_leader_total counter\n"
                "meridian_txn_not_leader_total %" PRIu64 "\n"
                "# HELP meridian_txn_lease_parked_total Transaction requests held here "
                "while a quiet range renewed its lapsed lease, then served.\n"
                "# TYPE meridian_txn_lease_parked_total counter\n"
                "meridian_txn_lease_parked_total %" PRIu64 "\n",
                s->follower_reads, s->strong_settled, s->strong_barrier, s->not_leader,
                s->lease_parked);
    size_t records = 0;
    for (tx_range *rg = s->ranges; rg; rg = rg->next) records += rg->gc_records;
    mbuf_printf(out,
                "# HELP meridian_txn_records Transaction records in the ranges this node leads, "
                "at their last full GC scan.\n"
                "# TYPE meridian_txn_records gauge\n"
                "meridian_txn_records %zu\n"
                "# HELP meridian_txn_records_collected_total Transaction records deleted by GC.\n"
                "# TYPE meridian_txn_records_collected_total counter\n"
                "meridian_txn_records_collected_total %" PRIu64 "\n"
                "# HELP meridian_txn_2pc_misdirected_total A coordinator's prepares and "
                "decisions answered by a node that does not lead the participant range.\n"
                "# TYPE meridian_txn_2pc_misdirected_total counter\n"
                "meridian_txn_2pc_misdirected_total %" PRIu64 "\n",
                records, s->records_collected, s->misdirected);
}

static void on_timer_closed(uv_handle_t *hd)
{
    free(hd->data);
}

static void on_stopped(void *arg, rpc_req *req)
{
    (void)arg;
    rpc_reply(req, MERR_UNAVAILABLE, "the node is stopping", NULL, 0);
}

void txn_service_stop(txn_service *s)
{
    if (!s) return;
    while (s->ranges) tx_range_drop(s->ranges, "the node is stopping");
    const char *methods[] = {"txn.Get",   "txn.Scan",    "txn.Commit", "txn.Rollback",
                             "txn.Check", "txn.Prepare", "txn.Decide", "txn.Status"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        rpc_node_handle(s->rpc, methods[i], on_stopped, NULL);
    uv_timer_stop(&s->timer);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}
