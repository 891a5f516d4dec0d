/* Decommissioning nodes (docs/placement.md, "In the cluster"):
 * pd.Decommission marks a node by writing "\x00sys/decommission/" + id into
 * range 1 at its leaseholder, and answers with the replicas the range
 * leaders still report on the node (the PD's last view); the PD reads the
 * list every run (node_decom_list) and its schedulers drain those nodes. An
 * unknown node is refused; marking one twice only reports progress. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "proto/pd.pb-c.h"
#include "server/kv_service.h"
#include "server/node_moves.h"
#include "server/pbreply.h"
#include "server/replica.h"

#define MOD        "moves"
#define DECOM_WAIT (10 * MTIME_S)

static const uint8_t DECOM_PREFIX[] = "\x00sys/decommission/";
#define DECOM_PREFIX_LEN (sizeof(DECOM_PREFIX) - 1)

/* ---- decommissioning nodes in range 1 ---- */

size_t node_decom_list(replica *r1, pd_node_id **ids)
{
    return node_pd_scan_ids(r1, DECOM_PREFIX, DECOM_PREFIX_LEN, ids);
}

int node_decom_key(uint64_t node_id, uint8_t *out, size_t cap)
{
    int l = snprintf((char *)out, cap, "%csys/decommission/%020" PRIu64, 0, node_id);
    return l > 0 && (size_t)l < cap ? l : -1;
}

/* ---- pd.Decommission (range 1's leaseholder) ---- */

typedef struct decom_req {
    node *n;
    rpc_req *req;
    uint64_t node_id;
    uint8_t key[64];
} decom_req;

static void decom_reply(decom_req *c, int code, const char *msg)
{
    node *n = c->n;
    Meridian__Pd__DecommissionResponse resp = MERIDIAN__PD__DECOMMISSION_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    int known = 0;
    if (!code && node_pd_replicas_on(n, c->node_id, &resp.replicas, &known))
        code = MERR_UNAVAILABLE, msg = "the placement driver is starting: retry";
    resp.known = known;
    if (code) {
        kv_fill_error(&n->host, n->host_open ? host_find(&n->host, NODE_GENESIS_RANGE) : NULL, &err,
                      code, msg, NULL);
        resp.error = &err;
    }
    pb_reply(c->req, &resp.base);
    free(c);
}

static void on_decom_written(void *arg, int code, const char *msg, uint64_t ts)
{
    decom_req *c = arg;
    (void)ts;
    if (!code) MLOG_I(MOD, "node marked decommissioning", "node=%" PRIu64, c->node_id);
    decom_reply(c, code, msg);
}

static void decom_serve(decom_req *c)
{
    node *n = c->n;
    replica *r1 = n->host_open ? host_find(&n->host, NODE_GENESIS_RANGE) : NULL;
    if (!r1 || !replica_is_leaseholder(r1)) {
        decom_reply(c, MERR_NOT_LEADER, "not range 1's leaseholder");
        return;
    }
    uint32_t reps;
    int known = 0;
    if (node_pd_replicas_on(n, c->node_id, &reps, &known)) {
        decom_reply(c, MERR_UNAVAILABLE, "the placement driver is starting: retry");
        return;
    }
    if (!known) {
        decom_reply(c, MERR_INVALID, "no such node in the cluster");
        return;
    }
    int kl = node_decom_key(c->node_id, c->key, sizeof(c->key));
    uint8_t *val = NULL;
    size_t vlen = 0;
    if (range_get(replica_store(r1), c->key, (size_t)kl, RANGE_TS_MAX, &val, &vlen, NULL) == 0) {
        free(val); /* marked before: just report progress */
        decom_reply(c, 0, NULL);
        return;
    }
    range_write w = {.key = c->key, .klen = (size_t)kl, .val = (const uint8_t *)"1", .vlen = 1};
    merr e = {0};
    if (replica_write(r1, &w, 1, mtime_mono_ns() + DECOM_WAIT, on_decom_written, c, &e))
        decom_reply(c, e.code ? e.code : MERR_UNAVAILABLE, e.msg);
}

static void on_decom_lease(void *arg, int code)
{
    decom_req *c = arg;
    if (code)
        decom_reply(c, MERR_NOT_LEADER, "range 1's lease did not come back");
    else
        decom_serve(c);
}

void node_decom_rpc(void *arg, rpc_req *req)
{
    node *n = arg;
    Meridian__Pd__DecommissionRequest *q =
        meridian__pd__decommission_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable DecommissionRequest", NULL, 0);
        return;
    }
    decom_req *c = calloc(1, sizeof(*c));
    if (!c) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        meridian__pd__decommission_request__free_unpacked(q, NULL);
        return;
    }
    *c = (decom_req){.n = n, .req = req, .node_id = q->node_id};
    meridian__pd__decommission_request__free_unpacked(q, NULL);
    if (!c->node_id) {
        decom_reply(c, MERR_INVALID, "--node must name a node id (1 or more)");
        return;
    }
    /* A quiet range 1 lets its lease lapse: renew it before the write. */
    replica *r1 = n->host_open ? host_find(&n->host, NODE_GENESIS_RANGE) : NULL;
    if (r1 && replica_is_lease_owner(r1) && !replica_is_leaseholder(r1)) {
        int rc = replica_lease_wait(r1, 0, on_decom_lease, c);
        if (rc == 1) return;
    }
    decom_serve(c);
}
