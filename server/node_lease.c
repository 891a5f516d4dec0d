/* range.TransferLease {range_id, to_node} (proto/lease.proto): moves a
 * range's leadership, and with it the lease, to another voter on request,
 * through the same Paxos hand-off a clean shutdown uses (PAXOS_EV_TRANSFER:
 * the target is caught up, the leader releases its lease, TIMEOUT_NOW).
 *
 * Stateless, so nothing is kept across calls: each call says where things
 * stand and the caller asks again until the target holds the lease.
 *   - this node is the target and owns the lease: done (no error);
 *   - this node leads and is not the target: the transfer starts (or goes
 *     on), UNAVAILABLE "started";
 *   - this node does not lead: NOT_LEADER with the leader hint;
 *   - this node is the target, leads, but its lease is still being
 *     granted: UNAVAILABLE.
 * A target that never takes over (down, cut off) makes the leader resume
 * after an election timeout (paxos_leader_tick); the next call tries again.
 * For `meridian debug transfer-lease` and the Jepsen leader-transfer nemesis. */
#include <inttypes.h>
#include <stdio.h>

#include "proto/lease.pb-c.h"
#include "server/kv_service.h"
#include "server/node_int.h"
#include "server/pbreply.h"
#include "server/replica.h"

static void on_transfer(void *arg, rpc_req *req)
{
    node *n = arg;
    Meridian__Lease__TransferRequest *q =
        meridian__lease__transfer_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable TransferRequest", NULL, 0);
        return;
    }
    Meridian__Lease__TransferResponse resp = MERIDIAN__LEASE__TRANSFER_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    char msg[160];
    int code = 0;
    replica *r = NULL;
    if (n->state != NODE_SERVING || !n->host_open) {
        code = MERR_UNAVAILABLE;
        snprintf(msg, sizeof(msg), "the node is not serving");
    } else if (!q->to_node || q->to_node > UINT32_MAX) {
        code = MERR_INVALID;
        snprintf(msg, sizeof(msg), "to_node %" PRIu64 " is not a node id", q->to_node);
    } else if (!(r = host_find(&n->host, q->range_id))) {
        code = MERR_NOTFOUND;
        snprintf(msg, sizeof(msg), "no replica of range %" PRIu64 " on this node", q->range_id);
    } else if (q->to_node == n->host.node_id) {
        if (replica_is_lease_owner(r)) {
            resp.leaseholder = q->to_node;
        } else if (replica_leader_hint(r) == n->host.node_id) {
            replica_lease_nudge(r); /* leads: the lease is on its way */
            code = MERR_UNAVAILABLE;
            snprintf(msg, sizeof(msg), "node %" PRIu64 " leads range %" PRIu64 ", lease pending",
                     q->to_node, q->range_id);
        } else {
            code = MERR_NOT_LEADER;
            snprintf(msg, sizeof(msg), "node %" PRIu64 " does not lead range %" PRIu64, q->to_node,
                     q->range_id);
        }
    } else {
        int rc = replica_transfer_lease(r, q->to_node);
        code = rc == 0 || rc == MERR_BUSY ? MERR_UNAVAILABLE : rc;
        if (rc == 0)
            snprintf(msg, sizeof(msg), "transfer of range %" PRIu64 " to node %" PRIu64 " started",
                     q->range_id, q->to_node);
        else if (rc == MERR_INVALID)
            snprintf(msg, sizeof(msg), "node %" PRIu64 " is not a voter of range %" PRIu64,
                     q->to_node, q->range_id);
        else if (rc == MERR_BUSY)
            snprintf(msg, sizeof(msg), "another transfer of range %" PRIu64 " is pending",
                     q->range_id);
        else if (rc == MERR_NOT_LEADER)
            snprintf(msg, sizeof(msg), "this node does not lead range %" PRIu64, q->range_id);
        else
            snprintf(msg, sizeof(msg), "transfer refused: %s", merr_str(rc));
    }
    if (code) {
        kv_fill_error(&n->host, r, &err, code, msg, NULL);
        resp.error = &err;
    }
    pb_reply(req, &resp.base);
    meridian__lease__transfer_request__free_unpacked(q, NULL);
}

void node_lease_register(node *n)
{
    rpc_node_handle(n->rpc, "range.TransferLease", on_transfer, n);
}
