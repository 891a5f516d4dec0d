/* Garbage collection of transaction records at a coordinator range's
 * leaseholder (txn/txnrec.h has the rules and why they are safe).
 *
 * Once a second the sweep scans up to TX2_GC_BATCH records from where the
 * last scan stopped. A record goes, in one Paxos write of deletes (the
 * "ended" record), when its client's deadline certainly passed and its
 * outcome was delivered: every participant acknowledged txn.Decide (the
 * coordinator machine here is done), or it had none. A record this table
 * knows nothing of (a new leaseholder, or a transaction already forgotten)
 * gets a coordinator machine rebuilt from it, as a new leader would (replay
 * the record, become leader): it tells the participants again, and the
 * record goes at a later scan once they all answered. A participant with
 * nothing prepared answers at once, so this costs one rpc per participant. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/localkey.h"
#include "common/log.h"
#include "common/mtime.h"
#include "server/replica.h"
#include "server/txn_2pc_int.h"
#include "txn/txnrec.h"

#define MOD             "txn2pc"
#define TX2_GC_EVERY_NS (1LL * MTIME_S)
#define TX2_GC_BATCH    256

/* A local scan from the bottom of the local keys: range_scan clips it to
 * the ones anchored in the range (common/localkey.h). */
static const uint8_t LOCAL_LO[MLOCAL_PREFIX_LEN] = {0x00, 0x00};

typedef struct gc_rec {
    mbuf key, anchor;
    uint64_t txn, ts;
    bool abort;
    txn_rec_value v;
} gc_rec;

typedef struct gc_scan {
    gc_rec *v;
    size_t n;
    mbuf last; /* the last local key seen: the scan resumes after it */
    int oom;
} gc_scan;

static int on_rec(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  uint64_t ts)
{
    gc_scan *sc = arg;
    gc_rec *g = &sc->v[sc->n];
    mbuf_reset(&sc->last);
    if (mbuf_append(&sc->last, key, klen)) return sc->oom = 1;
    /* Other local keys, or a value that is not a record's: not ours. */
    if (txn_rec_key_parse(key, klen, &g->anchor, &g->txn, &g->abort) ||
        txn_rec_value_decode(val, vlen, &g->v))
        return 0;
    mbuf_reset(&g->key);
    if (mbuf_append(&g->key, key, klen)) return sc->oom = 1;
    g->ts = ts;
    sc->n++;
    return 0;
}

static void gc_scan_free(gc_scan *sc)
{
    for (size_t i = 0; sc->v && i < TX2_GC_BATCH; i++) {
        mbuf_free(&sc->v[i].key);
        mbuf_free(&sc->v[i].anchor);
    }
    free(sc->v);
    mbuf_free(&sc->last);
}

/* A coordinator machine for a record nobody here remembers: the decided
 * machine a new leader rebuilds by replaying the record. */
static void resolver_start(tx_range *rg, const gc_rec *g)
{
    tx_txn *t = tx_txn_add(rg, g->txn, 0);
    struct tx2 *x = t ? tx2_new(ROLE_COORD) : NULL;
    if (!x) {
        if (t) tx_txn_forget(rg, t);
        return;
    }
    if (mbuf_append(&x->coord_key, g->anchor.data, g->anchor.len)) {
        free(x);
        tx_txn_forget(rg, t);
        return;
    }
    t->x2 = x;
    t->state = g->v.abort ? TX_ABORTED : TX_COMMITTED;
    t->commit_ts = g->v.abort ? 0 : g->ts;
    x->nparts = g->v.n_parts;
    for (size_t i = 0; i < x->nparts; i++) x->parts[i] = (tx2_part){.range = g->v.parts[i]};
    txn_record rec = {.type = g->v.abort ? TXN_REC_ABORT : TXN_REC_COMMIT,
                      .txn = g->txn,
                      .ts = g->v.abort ? 0 : g->ts,
                      .coord = rg->range_id,
                      .n_parts = g->v.n_parts};
    memcpy(rec.parts, g->v.parts, rec.n_parts * sizeof(rec.parts[0]));
    txn_coord_init(&x->c, g->txn, rg->range_id, rg->epoch, false);
    txn_event ev = {.type = TXN_EV_CHOSEN, .rec = &rec};
    txn_out out;
    merr e = {0};
    if (txn_coord_step(&x->c, &ev, &out, &e)) {
        MLOG_W(MOD, "record not replayed", "txn=%" PRIu64 " error=\"%s\"", g->txn, e.msg);
        return; /* stays busy-free and undelivered: kept, looked at again */
    }
    txn_coord_become_leader(&x->c, rg->epoch, &out);
    tx2_coord_run(rg, t, &out); /* the sweep finishes commit-wait and tells */
    MLOG_D(MOD, "record outcome delivered again", "txn=%" PRIu64 " parts=%zu", g->txn, x->nparts);
}

/* The outcome of g reached everyone who may ask (or is on its way). */
static int delivered(tx_range *rg, const gc_rec *g)
{
    tx_txn *t = tx_txn_find(rg, g->txn);
    if (!t) {
        if (!g->v.n_parts) return 1;
        resolver_start(rg, g);
        return 0;
    }
    if (t->x2)
        return t->x2->role == ROLE_COORD && t->x2->outcome != TXN_OUTCOME_UNKNOWN && !tx2_busy(t);
    return t->state == TX_COMMITTED || t->state == TX_ABORTED; /* single-range */
}

typedef struct gc_ctx {
    txn_service *s;
    uint64_t range, epoch;
    size_t n;
} gc_ctx;

static void on_collected(void *arg, int code, const char *msg, uint64_t ts)
{
    gc_ctx *c = arg;
    (void)ts;
    tx_range *rg = tx_range_find(c->s, c->range);
    if (rg && rg->epoch == c->epoch) rg->gc_inflight = 0;
    if (code)
        MLOG_D(MOD, "records not collected", "range=%" PRIu64 " error=\"%s\"", c->range,
               msg ? msg : "");
    else
        c->s->records_collected += c->n;
    free(c);
}

static int on_any(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  uint64_t ts)
{
    txn_rec_value v;
    (void)key, (void)klen, (void)ts;
    if (txn_rec_value_decode(val, vlen, &v) == 0 && v.deadline_us) *(int *)arg = 1;
    return *(int *)arg; /* stop at the first one with a deadline */
}

int tx2_has_records(replica *r)
{
    int found = 0;
    (void)range_scan(replica_store(r), LOCAL_LO, sizeof(LOCAL_LO), NULL, 0, RANGE_TS_MAX, 16, 0,
                     on_any, &found, NULL);
    return found;
}

void tx2_gc(tx_range *rg, int64_t now_ns)
{
    /* The lease owner, not only a live leaseholder: a quiet range lets its
     * lease lapse, and records left in it would never go (the deletes'
     * write renews the lease, as any request does). */
    if (rg->gc_inflight || now_ns - rg->gc_last_ns < TX2_GC_EVERY_NS ||
        !replica_is_lease_owner(rg->r))
        return;
    rg->gc_last_ns = now_ns;
    tt_interval tt;
    if (host_now(rg->s->h, &tt, NULL)) return;
    uint64_t earliest_us = (uint64_t)tt.earliest_ns / 1000;
    gc_scan sc = {calloc(TX2_GC_BATCH, sizeof(gc_rec)), 0, MBUF_INIT, 0};
    range_write *w = calloc(TX2_GC_BATCH, sizeof(*w));
    gc_ctx *c = malloc(sizeof(*c));
    if (!sc.v || !w || !c) goto out;
    const uint8_t *from = rg->gc_cursor.len ? rg->gc_cursor.data : LOCAL_LO;
    size_t flen = rg->gc_cursor.len ? rg->gc_cursor.len : sizeof(LOCAL_LO), seen = 0;
    /* Every local key visited counts toward the batch, records or not. */
    if (range_scan(replica_store(rg->r), from, flen, NULL, 0, RANGE_TS_MAX, TX2_GC_BATCH, 0, on_rec,
                   &sc, &seen) ||
        sc.oom)
        goto out;
    size_t n = 0;
    for (size_t i = 0; i < sc.n; i++) {
        const gc_rec *g = &sc.v[i];
        /* Cheap test first: most records wait for their deadline. */
        if (txn_rec_collectable(&g->v, earliest_us, true) && delivered(rg, g))
            w[n++] = (range_write){.key = g->key.data, .klen = g->key.len, .del = 1};
    }
    /* Resume after the last key seen; a short scan ends a cycle. */
    rg->gc_seen += sc.n - n;
    mbuf_reset(&rg->gc_cursor);
    if (seen < TX2_GC_BATCH) {
        rg->gc_records = rg->gc_seen;
        rg->gc_seen = 0;
    } else if (mbuf_append(&rg->gc_cursor, sc.last.data, sc.last.len) ||
               mbuf_append_u8(&rg->gc_cursor, 0x00)) {
        mbuf_reset(&rg->gc_cursor); /* out of memory: start over next time */
    }
    if (n) {
        *c = (gc_ctx){rg->s, rg->range_id, rg->epoch, n};
        merr e = {0};
        if (replica_write(rg->r, w, n, 0, on_collected, c, &e) == 0) {
            rg->gc_inflight = 1;
            c = NULL;
        }
    }
out:
    free(c);
    free(w);
    gc_scan_free(&sc);
}

/* A commit request nobody here knows of: past its deadline its record may
 * have been collected, so it is refused rather than answered "aborted" or
 * run again (txn/txnrec.h); a deadline too far ahead is bad input. */
int tx2_deadline_refused(txn_service *s, replica *r, rpc_req *req, uint64_t deadline_us)
{
    tt_interval tt;
    if (host_now(s->h, &tt, NULL)) {
        txs_fail(s, r, req, TX_COMMIT, MERR_CLOCK, "clock cannot be trusted", 0);
        return MERR_CLOCK;
    }
    switch (txn_rec_deadline_check(deadline_us, (uint64_t)tt.latest_ns / 1000)) {
    case TXN_DEADLINE_PASSED:
        txs_fail(s, r, req, TX_COMMIT, MERR_TIMEOUT,
                 "the commit's deadline passed: its outcome is not known here", 0);
        return MERR_TIMEOUT;
    case TXN_DEADLINE_TOO_FAR:
        txs_fail(s, r, req, TX_COMMIT, MERR_INVALID,
                 "the commit's deadline is more than 10 minutes ahead", 0);
        return MERR_INVALID;
    default: return 0;
    }
}
