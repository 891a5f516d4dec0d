/* The key-value service (proto/kv.proto) on the node's rpc endpoint:
 * kv.Get, kv.Write and kv.Scan, served by the leaseholder of the range that
 * holds the key. Other replicas answer NOT_LEADER with the leader's id and
 * address so clients go there; errors travel inside the response (not as rpc
 * failures) so they can carry those hints. */
#include "server/kv_service.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/localkey.h"
#include "common/log.h"
#include "common/mtime.h"
#include "placement/route_cache.h"
#include "proto/kv.pb-c.h"
#include "server/kv_rows.h"
#include "server/pbreply.h"
#include "server/range_desc.h"
#include "server/replica.h"
#include "timesvc/hlc.h"

#define KV_SCAN_MAX 10000 /* rows per Scan reply; more continue at resume_key */

static Meridian__Kv__ErrorKind kind_of(int code)
{
    switch (code) {
    case MERR_NOT_LEADER: return MERIDIAN__KV__ERROR_KIND__NOT_LEADER;
    case MERR_RANGE: return MERIDIAN__KV__ERROR_KIND__RANGE_MISMATCH;
    case MERR_NOTFOUND: return MERIDIAN__KV__ERROR_KIND__RANGE_NOT_FOUND;
    case MERR_CLOCK: return MERIDIAN__KV__ERROR_KIND__CLOCK_UNCERTAIN;
    case MERR_INVALID:
    case MERR_TOOBIG: return MERIDIAN__KV__ERROR_KIND__INVALID;
    case MERR_RETRY:
    case MERR_TIMEOUT:
    case MERR_UNAVAILABLE:
    case MERR_BUSY: return MERIDIAN__KV__ERROR_KIND__UNAVAILABLE;
    default: return MERIDIAN__KV__ERROR_KIND__INTERNAL;
    }
}

void kv_fill_error(host *h, replica *r, Meridian__Kv__Error *err, int code, const char *msg,
                   range_desc_pb *dp)
{
    err->kind = kind_of(code);
    err->message = (char *)(msg ? msg : merr_str(code));
    if (code == MERR_NOT_LEADER) h->kv_not_leader++;
    if (code == MERR_RANGE && r && dp) {
        range_desc_fill(r, dp);
        err->descriptor = &dp->d;
    }
    if (code == MERR_NOT_LEADER && r) {
        err->leader_hint = replica_leader_hint(r);
        const char *a = err->leader_hint ? host_peer_addr(h, err->leader_hint) : NULL;
        err->leader_address = (char *)(a ? a : "");
    }
}

/* Finds the replica for a request: by range id, or by key when id is 0. */
static int route(host *h, const Meridian__Kv__RangeTarget *t, const ProtobufCBinaryData *key,
                 replica **out, const char **why)
{
    replica *r = NULL;
    if (t && t->range_id)
        r = host_find(h, t->range_id);
    else
        r = host_find_key(h, key->data, key->len);
    replica *by_key =
        !r && key && t && t->generation ? host_find_key(h, key->data, key->len) : NULL;
    if (by_key && replica_generation(by_key) > t->generation) {
        /* The range merged away here: answer with the newer range that
         * holds the key now, so the client's route refreshes. (An older
         * one is a replica behind a split: another node may serve it.) */
        *out = by_key;
        *why = "the range merged into another";
        return MERR_RANGE;
    }
    *out = r;
    if (!r) {
        *why = "no replica of that range on this node";
        return MERR_NOTFOUND;
    }
    /* A stale route (a split or merge since) is answered by any replica
     * with its descriptor, so the client refreshes without a detour. */
    if (key && !replica_contains(r, key->data, key->len)) {
        *why = "key outside the range";
        return MERR_RANGE;
    }
    if (t && t->generation && t->generation != replica_generation(r)) {
        *why = "the range's generation changed (split or merge)";
        return MERR_RANGE;
    }
    if (replica_frozen(r)) {
        *why = "the range is frozen for a merge: retry";
        return MERR_BUSY;
    }
    if (!replica_is_leaseholder(r)) {
        *why = "this replica does not hold the lease";
        return MERR_NOT_LEADER;
    }
    return 0;
}

/* A request parked until its range's lease is renewed. rpc lends the payload
 * only until the handler returns, so the parked request keeps a copy and is
 * handled again from it; `again` keeps it from parking twice. */
typedef void (*kv_handler)(host *h, rpc_req *req, const uint8_t *p, size_t n, int again);
typedef struct parked {
    host *h;
    rpc_req *req;
    kv_handler fn;
    size_t len;
    uint8_t data[];
} parked;

static void on_lease(void *arg, int code)
{
    parked *pk = arg;
    if (code == MERR_CLOSED) /* the replica is gone with the node */
        rpc_reply(pk->req, MERR_CLOSED, "node stopping", NULL, 0);
    else
        pk->fn(pk->h, pk->req, pk->data, pk->len, 1);
    free(pk);
}

/* route(), except that a leader whose lease lapsed while its group was quiet
 * parks the request and runs it again when the lease is back (returns 1),
 * instead of sending the client away with NOT_LEADER. */
/* Transaction records and other range-local keys (common/localkey.h) are
 * the node's own: a raw write could forge an outcome. */
#define LOCAL_KEY_REFUSED "range-local keys (0x00 0x00...) are internal to the node"

static int route_or_park(host *h, rpc_req *req, const uint8_t *p, size_t n, kv_handler fn,
                         int again, const Meridian__Kv__RangeTarget *t,
                         const ProtobufCBinaryData *key, replica **out, const char **why)
{
    if (key && mlocal_is(key->data, key->len)) {
        *out = NULL;
        *why = LOCAL_KEY_REFUSED;
        return MERR_INVALID;
    }
    int rc = route(h, t, key, out, why);
    if (rc != MERR_NOT_LEADER || again) return rc;
    parked *pk = malloc(sizeof(*pk) + n);
    if (!pk) return rc;
    *pk = (parked){.h = h, .req = req, .fn = fn, .len = n};
    memcpy(pk->data, p, n);
    if (replica_lease_wait(*out, rpc_req_deadline_mono(req), on_lease, pk) == 1) return 1;
    free(pk);
    return rc;
}

static uint64_t read_ts_now(host *h, int *rc)
{
    tt_interval tt;
    hlc_ts ts = 0;
    *rc = host_now(h, &tt, NULL);
    if (!*rc) *rc = hlc_now(&h->hlc, tt.now_ns, &ts, NULL);
    return ts;
}

static void do_get(host *h, rpc_req *req, const uint8_t *payload, size_t plen, int again)
{
    Meridian__Kv__GetRequest *q = meridian__kv__get_request__unpack(NULL, plen, payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable GetRequest", NULL, 0);
        return;
    }
    Meridian__Kv__GetResponse resp = MERIDIAN__KV__GET_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    replica *r;
    const char *why = NULL;
    uint8_t *val = NULL;
    int rc = route_or_park(h, req, payload, plen, do_get, again, q->target, &q->key, &r, &why);
    if (rc == 1) { /* parked: answered when the lease is back */
        meridian__kv__get_request__free_unpacked(q, NULL);
        return;
    }
    if (!rc) {
        replica_note_read(r, q->key.data, q->key.len);
        uint64_t now = read_ts_now(h, &rc);
        uint64_t at = q->read_ts ? q->read_ts : RANGE_TS_MAX;
        if (!rc && q->read_ts > now) {
            rc = MERR_INVALID;
            why = "read timestamp is in the future";
        }
        if (!rc) {
            size_t vlen = 0;
            uint64_t vts = 0;
            int grc = range_get(replica_store(r), q->key.data, q->key.len, at, &val, &vlen, &vts);
            if (grc == 0) {
                resp.found = 1;
                resp.value.data = val;
                resp.value.len = vlen;
                resp.version_ts = vts;
            } else if (grc != MERR_NOTFOUND) {
                rc = grc;
                why = range_err(replica_store(r))->msg;
            }
            resp.read_ts = q->read_ts ? q->read_ts : now;
        }
    }
    range_desc_pb dp;
    if (rc) {
        kv_fill_error(h, r, &err, rc, why, &dp);
        resp.error = &err;
    }
    pb_reply(req, &resp.base);
    free(val);
    meridian__kv__get_request__free_unpacked(q, NULL);
}

static void on_get(void *arg, rpc_req *req)
{
    do_get(arg, req, req->payload, req->len, 0);
}

typedef struct write_ctx {
    rpc_req *req;
    host *h;
} write_ctx;

static void on_written(void *arg, int code, const char *msg, uint64_t commit_ts)
{
    write_ctx *w = arg;
    Meridian__Kv__WriteResponse resp = MERIDIAN__KV__WRITE_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    if (code) {
        kv_fill_error(w->h, NULL, &err, code, msg, NULL);
        resp.error = &err;
    } else {
        resp.commit_ts = commit_ts;
    }
    pb_reply(w->req, &resp.base);
    free(w);
}

static void do_write(host *h, rpc_req *req, const uint8_t *payload, size_t plen, int again)
{
    Meridian__Kv__WriteRequest *q = meridian__kv__write_request__unpack(NULL, plen, payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable WriteRequest", NULL, 0);
        return;
    }
    Meridian__Kv__WriteResponse resp = MERIDIAN__KV__WRITE_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    merr e = {0};
    replica *r = NULL;
    const char *why = NULL;
    range_write *w = NULL;
    int rc = 0;
    if (q->n_mutations == 0 || q->n_mutations > 10000) {
        rc = MERR_INVALID;
        why = "a write needs 1 to 10000 mutations";
    } else if (q->mutations[0]->key.len == 0 || q->mutations[0]->key.len > RANGE_KEY_MAX) {
        rc = MERR_INVALID;
        why = "keys are 1 to 65536 bytes";
    } else {
        rc = route_or_park(h, req, payload, plen, do_write, again, q->target, &q->mutations[0]->key,
                           &r, &why);
        if (rc == 1) { /* parked: answered when the lease is back */
            meridian__kv__write_request__free_unpacked(q, NULL);
            return;
        }
    }
    if (!rc) {
        w = calloc(q->n_mutations, sizeof(*w));
        if (!w) rc = MERR_NOMEM;
        for (size_t i = 0; !rc && i < q->n_mutations; i++) {
            const Meridian__Kv__Mutation *m = q->mutations[i];
            if (m->key.len == 0 || m->key.len > RANGE_KEY_MAX || m->value.len > RANGE_VALUE_MAX) {
                rc = MERR_INVALID;
                why = "bad key or value size";
                break;
            }
            if (mlocal_is(m->key.data, m->key.len)) {
                rc = MERR_INVALID;
                why = LOCAL_KEY_REFUSED;
                break;
            }
            w[i] = (range_write){.key = m->key.data,
                                 .klen = m->key.len,
                                 .val = m->value.data,
                                 .vlen = m->value.len,
                                 .del = m->is_delete};
        }
    }
    if (!rc) {
        write_ctx *c = malloc(sizeof(*c));
        if (!c) {
            rc = MERR_NOMEM;
        } else {
            c->req = req;
            c->h = h;
            rc = replica_write_early(r, w, q->n_mutations, rpc_req_deadline_mono(req), on_written,
                                     c, &e);
            if (rc) {
                free(c);
                why = e.msg;
            }
        }
    }
    if (rc) {
        range_desc_pb dp;
        kv_fill_error(h, r, &err, rc, why, &dp);
        resp.error = &err;
        pb_reply(req, &resp.base);
    }
    free(w);
    meridian__kv__write_request__free_unpacked(q, NULL);
}

static void on_write(void *arg, rpc_req *req)
{
    do_write(arg, req, req->payload, req->len, 0);
}

static void do_scan(host *h, rpc_req *req, const uint8_t *payload, size_t plen, int again)
{
    Meridian__Kv__ScanRequest *q = meridian__kv__scan_request__unpack(NULL, plen, payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable ScanRequest", NULL, 0);
        return;
    }
    Meridian__Kv__ScanResponse resp = MERIDIAN__KV__SCAN_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    kv_rows acc = {0};
    replica *r = NULL;
    const char *why = NULL;
    range_desc_pb dp, sdp;
    int rc =
        route_or_park(h, req, payload, plen, do_scan, again, q->target, &q->start_key, &r, &why);
    if (rc == 1) { /* parked: answered when the lease is back */
        meridian__kv__scan_request__free_unpacked(q, NULL);
        return;
    }
    if (!rc) {
        replica_note_read(r, q->start_key.data, q->start_key.len);
        uint64_t now = read_ts_now(h, &rc);
        size_t limit = q->limit && q->limit < KV_SCAN_MAX ? q->limit : KV_SCAN_MAX;
        if (!rc && q->read_ts > now) {
            /* As kv.Get: a future timestamp could see writes not yet committed. */
            rc = MERR_INVALID;
            why = "read timestamp is in the future";
        }
        if (!rc) {
            uint64_t at = q->read_ts ? q->read_ts : RANGE_TS_MAX;
            /* One more than the limit tells whether the scan must go on. */
            rc = range_scan(replica_store(r), q->start_key.data, q->start_key.len, q->end_key.data,
                            q->end_key.len, at, limit + 1, q->reverse, kv_rows_add, &acc, NULL);
            if (acc.oom) rc = MERR_NOMEM;
            if (rc) why = range_err(replica_store(r))->msg;
            resp.read_ts = q->read_ts ? q->read_ts : now;
        }
        if (!rc && acc.n > limit) {
            resp.resume_key = acc.v[limit]->key;
            acc.n = limit + 1; /* keep the row alive for resume_key; not sent */
            resp.n_rows = limit;
        } else {
            resp.n_rows = acc.n;
            /* The range ends before the scan does: go on in the next one. */
            const uint8_t *st, *en;
            size_t sl, el;
            replica_span(r, &st, &sl, &en, &el);
            if (!rc && !q->reverse && el &&
                (!q->end_key.len || route_keycmp(q->end_key.data, q->end_key.len, en, el) > 0))
                resp.resume_key = (ProtobufCBinaryData){el, (uint8_t *)en};
        }
        resp.rows = acc.v;
        range_desc_fill(r, &sdp);
        resp.descriptor = &sdp.d;
    }
    if (rc) {
        kv_fill_error(h, r, &err, rc, why, &dp);
        resp.error = &err;
        resp.n_rows = 0;
    }
    pb_reply(req, &resp.base);
    kv_rows_free(&acc);
    meridian__kv__scan_request__free_unpacked(q, NULL);
}

static void on_scan(void *arg, rpc_req *req)
{
    do_scan(arg, req, req->payload, req->len, 0);
}

void kv_service_register(rpc_node *rpc, host *h)
{
    rpc_node_handle(rpc, "kv.Get", on_get, h);
    rpc_node_handle(rpc, "kv.Write", on_write, h);
    rpc_node_handle(rpc, "kv.Scan", on_scan, h);
}
