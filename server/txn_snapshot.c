/* Snapshot reads for read-only transactions (see txn_service.h): lock-free
 * reads at one timestamp; strong ones at the leaseholder, at a fresh HLC
 * timestamp when nothing is in flight there, else at one chosen by an empty
 * replicated write; stale ones and reads at a given ts at any
 * replica whose safe time has reached it (server/replica_close.c). */
#include <stdlib.h>
#include <string.h>

#include "proto/txn.pb-c.h"
#include "server/replica.h"
#include "server/txn_2pc.h"
#include "server/txn_table.h"
#include "storage/range.h"
#include "timesvc/hlc.h"
#include "txn/safetime.h"

/* ---- snapshot reads ---- */

/* A snapshot read without a timestamp (strong) reads at t >= TT.now().latest
 * at the leaseholder, so every commit acknowledged before it arrived (s <
 * true time, by commit-wait) is at or below t. Two ways to pick t:
 *  - settled (replica_settled_at): nothing is in flight here, so t is a fresh
 *    HLC timestamp. Taking it puts every later write of this node above t,
 *    the lease outlasts t (a successor's writes lie above its end), and every
 *    write chosen before this leader led is applied (paxos_lease_valid).
 *  - otherwise a barrier: an empty write; once it applied, every earlier
 *    write has too (log order) and later ones get larger timestamps.
 * Either way the answer waits until t has passed everywhere (commit-wait):
 * the read may see a write whose own commit-wait still runs, and a read
 * that starts after this one ends must not get a lower t and miss it.
 * Prepared 2PC transactions at or below t are refused in snapshot_reply. */
typedef struct barrier {
    txn_service *s;
    uint64_t range_id;
    tx_parked pk;
} barrier;

static void snapshot_reply(txn_service *s, replica *r, tx_parked *pk, uint64_t at)
{
    /* Safe time: a prepared, undecided transaction may still commit at or
     * below `at` (its s >= its prepare ts), and a write proposed at or
     * below `at` may not have applied yet: the read waits (the client
     * retries) until they have. */
    uint64_t p = tx2_min_prepared(r), w = tx2_min_pending(r);
    if (w && (!p || w < p)) p = w; /* a proposed write (e.g. a 2PC commit record) in flight */
    if (p && p <= at) {
        txs_fail(s, r, pk->req, pk->kind, MERR_BUSY,
                 "a prepared transaction is undecided at the read timestamp: retry", 0);
        return;
    }
    if (pk->kind == TX_GET) {
        Meridian__Txn__GetRequest *q = pk->q;
        txs_reply_get(s, r, pk->req, &q->key, at, 0, at);
    } else {
        Meridian__Txn__ScanRequest *q = pk->q;
        txs_reply_scan(s, r, pk->req, &pk->lo, &pk->hi, pk->to_end, q->reverse, txs_scan_limit(q),
                       pk->truncated, at, 0, at);
    }
}

static void on_barrier(void *arg, int code, const char *msg, uint64_t ts)
{
    barrier *b = arg;
    replica *r = host_find(b->s->h, b->range_id);
    if (code || !r)
        txs_fail(b->s, r, b->pk.req, b->pk.kind, code ? code : MERR_NOTFOUND, msg, 0);
    else
        snapshot_reply(b->s, r, &b->pk, ts);
    if (b->pk.q) protobuf_c_message_free_unpacked(b->pk.q, NULL);
    mbuf_free(&b->pk.lo);
    mbuf_free(&b->pk.hi);
    free(b);
}

/* Takes pk's contents (pk itself is the caller's). */
void txs_snapshot_read(txn_service *s, replica *r, tx_parked *pk, uint64_t read_ts)
{
    if (read_ts) {
        /* Against the latest bound, not this node's clock: the timestamp
         * may come from an earlier leaseholder whose clock ran a bit ahead.
         * Observing it keeps this node's later writes above it. */
        tt_interval tt;
        if (host_now(s->h, &tt, NULL) || hlc_physical_ns(read_ts) > tt.latest_ns ||
            hlc_update(&s->h->hlc, read_ts, tt.latest_ns, NULL, NULL))
            txs_fail(s, r, pk->req, pk->kind, MERR_INVALID, "read timestamp is in the future", 0);
        else
            snapshot_reply(s, r, pk, read_ts);
        return;
    }
    barrier *b = malloc(sizeof(*b));
    merr e = {0};
    int rc = b ? 0 : merr_set(&e, MERR_NOMEM, "out of memory");
    if (b) {
        b->s = s;
        b->range_id = replica_id(r);
        b->pk = *pk;
        tt_interval tt;
        hlc_ts t;
        if (host_now(s->h, &tt, NULL) == 0 && hlc_now(&s->h->hlc, tt.latest_ns, &t, NULL) == 0 &&
            replica_settled_at(r, t)) {
            memset(pk, 0, sizeof(*pk)); /* moved into b */
            s->strong_settled++;
            if (replica_wait_past(r, t, on_barrier, b) == 0) return;
            *pk = b->pk;
            s->strong_settled--;
        }
        s->strong_barrier++;
        rc = replica_write(r, NULL, 0, 0, on_barrier, b, &e);
        if (rc == 0) {
            memset(pk, 0, sizeof(*pk)); /* moved into b */
            return;
        }
        free(b);
    }
    txs_fail(s, r, pk->req, pk->kind, rc, e.msg, 0);
}

/* ---- reads with a mode, at any replica ---- */

static void mode_of(const tx_parked *pk, uint64_t *read_ts, int *mode, uint64_t *stal_us)
{
    if (pk->kind == TX_GET) {
        const Meridian__Txn__GetRequest *q = pk->q;
        *read_ts = q->read_ts, *mode = q->read_mode, *stal_us = q->staleness_us;
    } else {
        const Meridian__Txn__ScanRequest *q = pk->q;
        *read_ts = q->read_ts, *mode = q->read_mode, *stal_us = q->staleness_us;
    }
    if (*mode == MERIDIAN__TXN__READ_MODE__READ_STRONG && *read_ts)
        *mode = MERIDIAN__TXN__READ_MODE__READ_AT;
}

static void serve_at(txn_service *s, replica *r, tx_parked *pk, uint64_t at)
{
    if (pk->kind == TX_GET) {
        Meridian__Txn__GetRequest *q = pk->q;
        txs_reply_get(s, r, pk->req, &q->key, at, 0, at);
    } else {
        Meridian__Txn__ScanRequest *q = pk->q;
        txs_reply_scan(s, r, pk->req, &pk->lo, &pk->hi, pk->to_end, q->reverse, txs_scan_limit(q),
                       pk->truncated, at, 0, at);
    }
}

void txs_snapshot_dispatch(txn_service *s, replica *r, tx_parked *pk)
{
    uint64_t read_ts, stal_us;
    int mode;
    mode_of(pk, &read_ts, &mode, &stal_us);
    int lh = replica_is_leaseholder(r);
    if (!lh) {
        replica_lease_nudge(r); /* a quiet leader renews: maybe at once */
        lh = replica_is_leaseholder(r);
    }
    if (mode == MERIDIAN__TXN__READ_MODE__READ_STRONG) {
        if (lh)
            txs_snapshot_read(s, r, pk, 0);
        else
            txs_fail(s, r, pk->req, pk->kind, MERR_NOT_LEADER,
                     "a strong read is served by the leaseholder", 0);
        return;
    }
    static const txn_read_kind kinds[] = {
        [MERIDIAN__TXN__READ_MODE__READ_EXACT_STALENESS] = TXN_READ_EXACT_STALENESS,
        [MERIDIAN__TXN__READ_MODE__READ_BOUNDED_STALENESS] = TXN_READ_BOUNDED_STALENESS,
        [MERIDIAN__TXN__READ_MODE__READ_AT] = TXN_READ_AT,
    };
    if (mode < 1 || mode > MERIDIAN__TXN__READ_MODE__READ_AT || stal_us > HLC_PHYS_MAX_US) {
        txs_fail(s, r, pk->req, pk->kind, MERR_INVALID, "unknown read mode or staleness", 0);
        return;
    }
    tt_interval tt;
    merr e = {0};
    if (host_now(s->h, &tt, &e)) {
        txs_fail(s, r, pk->req, pk->kind, MERR_CLOCK, "clock cannot be trusted", 0);
        return;
    }
    txn_read_opts o = {.kind = kinds[mode], .staleness = hlc_make(stal_us, 0), .at = read_ts};
    txn_read_range rr = {.safe_time = replica_safe_time(r)};
    txn_ts ts = 0;
    bool wait = true;
    if (txn_read_ts(&o, hlc_make((uint64_t)tt.earliest_ns / 1000, HLC_LOGICAL_MAX),
                    hlc_make((uint64_t)tt.latest_ns / 1000, 0), &rr, 1, &ts, &wait, &e)) {
        txs_fail(s, r, pk->req, pk->kind, MERR_INVALID, e.msg, 0);
        return;
    }
    /* Past the retention window GC may have dropped versions (storage/
     * range.h): refused by policy, not only once a range's GC ran, so a read
     * that works today does not start failing when GC catches up. */
    if (mode != MERIDIAN__TXN__READ_MODE__READ_BOUNDED_STALENESS &&
        hlc_physical_ns(ts) + RANGE_GC_RETENTION_NS < tt.earliest_ns) {
        txs_fail(s, r, pk->req, pk->kind, MERR_INVALID,
                 "read timestamp is older than the version retention window (1h): old "
                 "versions may be garbage collected",
                 0);
        return;
    }
    if (!wait && ts) {
        serve_at(s, r, pk, ts); /* leader or follower: nothing at or below ts can change */
        if (!lh) s->follower_reads++;
        return;
    }
    if (lh) {
        /* The leaseholder knows its writes in flight: a bounded read gets a
         * fresh ts (newer than the bound asks), the others wait there. */
        txs_snapshot_read(s, r, pk,
                          mode == MERIDIAN__TXN__READ_MODE__READ_BOUNDED_STALENESS ? 0 : ts);
        return;
    }
    if (!replica_leader_hint(r)) /* no leaseholder known here: another node may serve it */
        txs_fail(s, r, pk->req, pk->kind, MERR_NOTFOUND,
                 "this replica's safe time is behind the read timestamp and it knows no "
                 "leaseholder: try another node",
                 0);
    else
        txs_fail(s, r, pk->req, pk->kind, MERR_NOT_LEADER,
                 "this replica's safe time is behind the read timestamp: ask the leaseholder", 0);
}
