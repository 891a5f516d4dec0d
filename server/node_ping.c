/* node.Ping / node.Echo (see node_ping.h). */
#include "server/node_ping.h"

#include <stdlib.h>

#include "common/err.h"
#include "common/mtime.h"
#include "proto/node.pb-c.h"
#include "server/pbreply.h"

#define PING_TIMEOUT_US (5 * 1000000LL)

typedef struct ping_ctx {
    rpc_req *req; /* the caller's node.Ping, answered when the echo returns */
    uint64_t target;
    int64_t start_ns;
} ping_ctx;

static void on_echo(void *arg, rpc_req *req)
{
    (void)arg;
    rpc_reply(req, 0, NULL, NULL, 0);
}

static void on_echo_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    ping_ctx *c = arg;
    int64_t rtt = mtime_mono_ns() - c->start_ns;
    (void)p, (void)len;
    if (code) {
        rpc_reply(c->req, code, msg ? msg : "echo failed", NULL, 0);
    } else {
        Meridian__Node__PingResponse resp = MERIDIAN__NODE__PING_RESPONSE__INIT;
        resp.target = c->target;
        resp.rtt_ns = rtt;
        pb_reply(c->req, &resp.base);
    }
    free(c);
}

static void on_ping(void *arg, rpc_req *req)
{
    rpc_node *rpc = arg;
    Meridian__Node__PingRequest *m =
        meridian__node__ping_request__unpack(NULL, req->len, req->payload);
    if (!m) {
        rpc_reply(req, MERR_INVALID, "undecodable PingRequest", NULL, 0);
        return;
    }
    uint64_t target = m->target;
    meridian__node__ping_request__free_unpacked(m, NULL);
    if (target == 0 || target == rpc_node_id(rpc)) {
        rpc_reply(req, MERR_INVALID, "ping: the target must be another node's id", NULL, 0);
        return;
    }
    ping_ctx *c = malloc(sizeof(*c));
    if (!c) {
        rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        return;
    }
    c->req = req;
    c->target = target;
    c->start_ns = mtime_mono_ns();
    int64_t deadline = mtime_real_ns() / 1000 + PING_TIMEOUT_US;
    int rc = rpc_node_call(rpc, target, "node.Echo", NULL, 0, deadline, on_echo_reply, c, NULL);
    if (rc) {
        free(c);
        rpc_reply(req, rc, "ping: cannot call the target (unknown node?)", NULL, 0);
    }
}

void node_ping_register(rpc_node *rpc)
{
    rpc_node_handle(rpc, "node.Echo", on_echo, NULL);
    rpc_node_handle(rpc, "node.Ping", on_ping, rpc);
}
