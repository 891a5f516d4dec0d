/* Routing of txn.* requests at a node (txn_table.h): the replica that holds a
 * key or starts a scan, whether it may serve now (lease, merge freeze), and
 * the error replies with the leaseholder hint clients follow. */
#include "server/txn_service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto/txn.pb-c.h"
#include "server/pbreply.h"
#include "server/replica.h"
#include "server/txn_table.h"

/* ---- errors ---- */

static Meridian__Kv__ErrorKind kind_of(int code)
{
    switch (code) {
    case MERR_NOT_LEADER: return MERIDIAN__KV__ERROR_KIND__NOT_LEADER;
    case MERR_RANGE: return MERIDIAN__KV__ERROR_KIND__RANGE_MISMATCH;
    case MERR_NOTFOUND: return MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND;
    case MERR_CLOCK: return MERIDIAN__KV__ERROR_KIND__CLOCK_UNCERTAIN;
    case MERR_INVALID:
    case MERR_UNSUPPORTED:
    case MERR_TOOBIG: return MERIDIAN__KV__ERROR_KIND__INVALID;
    case MERR_ABORTED:
    case MERR_RETRY:
    case MERR_TIMEOUT:
    case MERR_UNAVAILABLE:
    case MERR_BUSY: return MERIDIAN__KV__ERROR_KIND__UNAVAILABLE;
    default: return MERIDIAN__KV__ERROR_KIND__INTERNAL;
    }
}

void txs_fail(txn_service *s, replica *r, rpc_req *req, tx_kind kind, int code, const char *msg,
              int aborted)
{
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    err.kind = kind_of(code);
    err.message = (char *)(msg ? msg : merr_str(code));
    if (code == MERR_NOT_LEADER) s->not_leader++;
    if (code == MERR_NOT_LEADER && r) {
        err.leader_hint = replica_leader_hint(r);
        const char *a = err.leader_hint ? host_peer_addr(s->h, err.leader_hint) : NULL;
        err.leader_address = (char *)(a ? a : "");
    }
    switch (kind) {
    case TX_GET: {
        Meridian__Txn__GetResponse m = MERIDIAN__TXN__GET_RESPONSE__INIT;
        m.error = &err, m.aborted = aborted;
        pb_reply(req, &m.base);
        break;
    }
    case TX_SCAN: {
        Meridian__Txn__ScanResponse m = MERIDIAN__TXN__SCAN_RESPONSE__INIT;
        m.error = &err, m.aborted = aborted;
        pb_reply(req, &m.base);
        break;
    }
    case TX_COMMIT: {
        Meridian__Txn__CommitResponse m = MERIDIAN__TXN__COMMIT_RESPONSE__INIT;
        m.error = &err, m.aborted = aborted;
        pb_reply(req, &m.base);
        break;
    }
    case TX_PREPARE: {
        Meridian__Txn__PrepareResponse m = MERIDIAN__TXN__PREPARE_RESPONSE__INIT;
        m.error = &err, m.aborted = aborted;
        pb_reply(req, &m.base);
        break;
    }
    case TX_ROLLBACK: {
        Meridian__Txn__RollbackResponse m = MERIDIAN__TXN__ROLLBACK_RESPONSE__INIT;
        m.error = &err, m.aborted = aborted;
        pb_reply(req, &m.base);
        break;
    }
    }
}

int txs_user_key_ok(const uint8_t *k, size_t n)
{
    return n > 0 && n <= RANGE_KEY_MAX && k[0] != 0x00;
}

/* Whether r may serve now: not frozen for a merge; the lease here unless
 * any replica will do (a quiet leader renews on the spot, so the client's
 * retry finds the lease). */
static int serve_check(replica *r, int any, const char **why)
{
    if (replica_frozen(r)) {
        *why = "the range is frozen for a merge: retry";
        return MERR_BUSY;
    }
    if (any || replica_is_leaseholder(r)) return 0;
    replica_lease_nudge(r);
    if (replica_is_leaseholder(r)) return 0;
    *why = "this replica does not hold the lease";
    return MERR_NOT_LEADER;
}

/* Finds the leaseholder replica holding key (any: any replica, for reads
 * that followers may serve); 0 or an error code with why. */
int txs_route(txn_service *s, const uint8_t *k, size_t n, int any, replica **out, const char **why)
{
    replica *r = host_find_key(s->h, k, n);
    *out = r;
    if (!r) {
        *why = "no replica of that range on this node";
        return MERR_NOTFOUND;
    }
    return serve_check(r, any, why);
}

/* A request parked for its range's lease (txs_park_for_lease). rpc lends
 * the payload and the method name only until the handler returns: kept
 * here, lent again to the handler's second run. */
typedef struct lease_park {
    txn_service *s;
    rpc_req *req;
    txs_handler fn;
    tx_kind kind;
    char method[32];
    size_t len;
    uint8_t data[];
} lease_park;

static void lease_back(void *arg, int code)
{
    lease_park *p = arg;
    rpc_req *req = p->req;
    if (code == 0) {
        /* The handler may answer, and so release req, before it returns:
         * req is not touched after it. */
        req->payload = p->data, req->len = p->len, req->method = p->method;
        p->fn(p->s, req);
    } else if (code == MERR_CLOSED) { /* the replica is gone with the node */
        rpc_reply(req, MERR_CLOSED, "node stopping", NULL, 0);
    } else {
        txs_fail(p->s, NULL, req, p->kind, MERR_NOT_LEADER,
                 "this replica's lease was not renewed in time", 0);
    }
    free(p);
}

int txs_park_for_lease(txn_service *s, replica *r, rpc_req *req, tx_kind kind, txs_handler fn)
{
    if (!r || req->canceled) return 0;
    lease_park *p = malloc(sizeof(*p) + (req->len ? req->len : 1));
    if (!p) return 0; /* the client retries; nothing is lost */
    *p = (lease_park){.s = s, .req = req, .fn = fn, .kind = kind, .len = req->len};
    snprintf(p->method, sizeof(p->method), "%s", req->method ? req->method : "");
    if (req->len) memcpy(p->data, req->payload, req->len);
    if (replica_lease_wait(r, rpc_req_deadline_mono(req), lease_back, p) == 1) {
        s->lease_parked++;
        return 1;
    }
    free(p);
    return 0;
}

/* The replica a scan starts in: the range of lo going forward, the range
 * just below hi (or the last one) going backward. The scan is clipped to
 * that range's span and then says "more" from its edge, so a client scans
 * across range boundaries by following resume keys. */
int txs_route_scan(txn_service *s, tx_parked *pk, int reverse, int any, replica **out,
                   const char **why)
{
    host *h = s->h;
    replica *r = NULL;
    if (!reverse) {
        r = host_find_key(h, pk->lo.data, pk->lo.len);
    } else {
        for (size_t i = 0; i < h->nreps && !r; i++) {
            const uint8_t *st, *en;
            size_t sl, el;
            replica_span(h->reps[i], &st, &sl, &en, &el);
            if (replica_placeholder(h->reps[i])) continue;
            int below_end = pk->to_end
                                ? el == 0
                                : (el == 0 || mbytes_cmp(pk->hi.data, pk->hi.len, en, el) <= 0);
            int above_start = pk->to_end || mbytes_cmp(st, sl, pk->hi.data, pk->hi.len) < 0;
            if (below_end && above_start) r = h->reps[i];
        }
    }
    *out = r;
    if (!r) {
        *why = "no replica of that range on this node";
        return MERR_NOTFOUND;
    }
    int rc = serve_check(r, any, why);
    if (rc) return rc;
    const uint8_t *st, *en;
    size_t sl, el;
    replica_span(r, &st, &sl, &en, &el);
    if (!reverse && el && (pk->to_end || mbytes_cmp(pk->hi.data, pk->hi.len, en, el) > 0)) {
        mbuf_reset(&pk->hi);
        rc = mbuf_append(&pk->hi, en, el);
        pk->to_end = 0;
        pk->truncated = 1;
    } else if (reverse && mbytes_cmp(pk->lo.data, pk->lo.len, st, sl) < 0) {
        mbuf_reset(&pk->lo);
        rc = mbuf_append(&pk->lo, st, sl);
        pk->truncated = 1;
    }
    if (rc) *why = "out of memory";
    return rc;
}
