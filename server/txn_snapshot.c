/* Snapshot reads for read-only transactions (see txn_service.h): lock-free
 * reads at one timestamp, chosen by an empty replicated write. */
#include <stdlib.h>
#include <string.h>

#include "proto/txn.pb-c.h"
#include "server/replica.h"
#include "server/txn_2pc.h"
#include "server/txn_table.h"
#include "timesvc/hlc.h"

/* ---- snapshot reads ---- */

/* A snapshot read without a timestamp first proposes an empty write: once it
 * is applied every earlier write is too, and every later one gets a larger
 * timestamp, so reads at its timestamp never change (and, after its
 * commit-wait, see every commit acknowledged before). */
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
        rc = replica_write(r, NULL, 0, 0, on_barrier, b, &e);
        if (rc == 0) {
            memset(pk, 0, sizeof(*pk)); /* moved into b */
            return;
        }
        free(b);
    }
    txs_fail(s, r, pk->req, pk->kind, rc, e.msg, 0);
}
