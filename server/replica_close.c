/* Closed timestamps and safe time at every replica (Spanner §4.1.3; the pure
 * rules are txn/safetime.h; docs/transactions.md "Follower reads").
 *
 * The leaseholder proposes CLOSE(c) entries (range_cmd.h) through the range's
 * own Paxos log, with c = txn_closed_next(closed, tt.earliest - lag, the
 * least ts of its writes in flight). Every write proposed after it, by this
 * or any later leaseholder, gets ts >= tt.latest at that later time >
 * tt.earliest now >= c, so "no write below c follows in the log" holds
 * without trusting any one node's HLC; writes proposed before it come
 * earlier in the log and are applied first everywhere. The one exception is
 * a 2PC participant's resolve, whose commit ts s may lie below c: its
 * prepare record is in the log before, so the replica keeps the prepared
 * intent "in doubt" (safe time < its prepare ts <= s) until the resolve is
 * applied. Closes ride in the same Paxos slots as the writes around them
 * (proposals of one loop round share a slot) and stop once the closed ts
 * passed the last write: an idle range may go to sleep; a read above its
 * closed ts is sent to the leaseholder (which wakes it).
 *
 * The doubt set is rebuilt from the store's intents (the durable truth)
 * whenever a prepare or resolve applied, a snapshot was installed or the
 * span changed, so it never drifts from what the store holds. */
#include "server/replica.h"
#include "server/replica_int.h"
#include "server/range_cmd.h"

#include <inttypes.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/mtime.h"
#include "server/txn_2pc.h"
#include "timesvc/hlc.h"

#define MOD "replica"

static int64_t close_lag_ns(void)
{
    /* A test/operator knob: how far below tt.earliest closes are proposed. */
    static int64_t lag = -1;
    if (lag < 0) {
        const char *env = getenv("MERIDIAN_CLOSED_LAG_MS");
        lag = env && atoll(env) > 0 ? atoll(env) * MTIME_MS : REPLICA_CLOSE_LAG_NS;
    }
    return lag;
}

void replica_safe_applied(replica *r, const range_batch *b, int is_close)
{
    if (is_close) {
        txn_safe_close(&r->safe, b->ts);
        return;
    }
    if (b->ts > r->last_write_ts) r->last_write_ts = b->ts;
    if (b->nprepares || b->nresolves) r->doubt_clean = 0;
}

typedef struct doubt_ctx {
    txn_safe *s;
    uint64_t n;
    int rc;
} doubt_ctx;

static int add_doubt(void *arg, const range_intent *it)
{
    doubt_ctx *c = arg;
    /* Only the earliest prepare ts matters: a counter keeps entries apart. */
    int rc = txn_safe_prepared(c->s, ++c->n, it->prepare_ts);
    if (rc) c->rc = rc;
    return 0;
}

uint64_t replica_safe_time(replica *r)
{
    if (r->broken) return 0;
    if (!r->doubt_clean) {
        txn_ts closed = r->safe.closed;
        txn_safe_free(&r->safe);
        txn_safe_init(&r->safe);
        r->safe.closed = closed;
        doubt_ctx c = {&r->safe, 0, 0};
        range *st = replica_store(r);
        if (!st || range_list_intents(st, add_doubt, &c, NULL) || c.rc) {
            /* Unknown doubt: serve nothing until a rebuild succeeds. */
            txn_safe_free(&r->safe);
            txn_safe_init(&r->safe);
            r->safe.closed = closed;
            return 0;
        }
        r->doubt_clean = 1;
    }
    return txn_safe_time(&r->safe);
}

uint64_t replica_closed_ts(const replica *r)
{
    return r->safe.closed;
}

int replica_close_due(replica *r)
{
    return !r->broken && r->safe.closed < r->last_write_ts &&
           paxos_get_role(r->g) == PAXOS_LEADER && replica_is_leaseholder(r);
}

typedef struct close_ctx {
    host *h;
    uint64_t range_id;
} close_ctx;

static void on_closed(void *arg, int code, const char *msg, uint64_t ts)
{
    close_ctx *c = arg;
    (void)msg, (void)ts;
    replica *r = code == MERR_CLOSED ? NULL : host_find(c->h, c->range_id);
    if (r) r->close_inflight = 0;
    free(c);
}

void replica_close_tick(replica *r)
{
    int64_t now = mtime_mono_ns();
    if (r->close_inflight || now - r->close_at_ns < REPLICA_CLOSE_EVERY_NS) return;
    if (!replica_close_due(r)) return;
    tt_interval tt;
    if (host_now(r->h, &tt, NULL)) return;
    int64_t phys = tt.earliest_ns - close_lag_ns();
    if (phys <= 0) return;
    uint64_t pend = tx2_min_pending(r);
    txn_ts c = txn_closed_next(r->safe.closed, hlc_make((uint64_t)phys / 1000, 0), pend != 0, pend);
    if (c <= r->safe.closed) return; /* nothing new to promise yet */
    mbuf enc = MBUF_INIT;
    close_ctx *cc = malloc(sizeof(*cc));
    merr e = {0};
    int rc = cc ? range_cmd_encode_close(c, &enc) : MERR_NOMEM;
    if (!rc) {
        *cc = (close_ctx){r->h, r->range_id};
        r->close_inflight = 1;
        r->close_at_ns = now;
        rc = replica_propose(r, enc.data, enc.len, 0, now + REPLICA_CLOSE_WAIT_NS, on_closed, cc,
                             &e);
        if (rc) r->close_inflight = 0;
    }
    if (rc) {
        free(cc);
        MLOG_D(MOD, "close not proposed", "range=%" PRIu64 " error=%s", r->range_id, merr_str(rc));
    }
    mbuf_free(&enc);
}
