/* Node-level liveness heartbeats and the host's tick set (see host.h).
 *
 * Wire: method "node.live", one-way, payload [u8 version=1][u64 incarnation]
 * (big-endian). The sender's id comes from the rpc handshake, as for
 * "paxos.msg"; the incarnation (this process's start time) tells a restart
 * from a pause. Nothing else travels: the heartbeat proves only that the
 * node is up, which is all the core uses it for (it never extends a lease). */
#include "server/host.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "server/liveness.h"
#include "server/replica.h"
#include "server/replica_int.h"

#define MOD           "host"
#define LIVE_METHOD   "node.live"
#define LIVE_VERSION  1
#define LIVE_MSG_SIZE 9

typedef struct host_live {
    liveness tr;
    uint64_t incarnation;
    replica **awake; /* the tick set; NULL holes while a tick walks it */
    size_t nawake, cap;
    int walking;
    uint64_t sent, received, bad, deaths, restarts;
} host_live;

int host_node_live(host *h, uint64_t node)
{
    if (node == h->node_id) return 1;
    return h->live && liveness_is_live(&h->live->tr, node);
}

void host_wake(host *h, replica *r)
{
    host_live *lv = h->live;
    if (!lv || r->awake) return;
    if (lv->nawake == lv->cap) {
        size_t cap = lv->cap ? lv->cap * 2 : 64;
        replica **n = realloc(lv->awake, cap * sizeof(*n));
        if (!n) return; /* stays asleep until the next step retries; never crash */
        lv->awake = n;
        lv->cap = cap;
    }
    lv->awake[lv->nawake++] = r;
    r->awake = 1;
}

void host_sleep(host *h, replica *r)
{
    host_live *lv = h->live;
    if (!lv || !r->awake) return;
    r->awake = 0;
    for (size_t i = 0; i < lv->nawake; i++) {
        if (lv->awake[i] != r) continue;
        if (lv->walking) {
            lv->awake[i] = NULL; /* the walk compacts */
        } else {
            lv->awake[i] = lv->awake[--lv->nawake];
        }
        return;
    }
}

size_t host_awake_count(host *h)
{
    return h->live ? h->live->nawake : 0;
}

/* Every replica of a group that node belongs to ticks again: a quiet
 * follower of a dead (or restarted) leader must campaign. O(ranges), but
 * only when a node dies or restarts. */
static void wake_groups_of(host *h, uint64_t node)
{
    for (size_t i = 0; i < h->nreps; i++) {
        replica *r = h->reps[i];
        paxos_members c, l;
        paxos_get_members(replica_group(r), &c, &l);
        if (paxos_members_is_voter(&c, (paxos_node_id)node) ||
            paxos_members_is_voter(&l, (paxos_node_id)node))
            host_wake(h, r);
    }
}

static void on_live(void *arg, rpc_req *req)
{
    host *h = arg;
    host_live *lv = h->live;
    if (!lv || !req->oneway) {
        if (!req->oneway) rpc_reply(req, MERR_INVALID, "node.live is one-way", NULL, 0);
        return;
    }
    if (req->len != LIVE_MSG_SIZE || req->payload[0] != LIVE_VERSION || req->from == 0 ||
        req->from == h->node_id) {
        lv->bad++;
        return;
    }
    lv->received++;
    uint64_t inc = mbe64_get(req->payload + 1);
    int ev = liveness_heard(&lv->tr, req->from, inc);
    if (ev == LIVENESS_RESTARTED) {
        lv->restarts++;
        MLOG_I(MOD, "peer node restarted: its groups elect again", "node=%" PRIu64, req->from);
        wake_groups_of(h, req->from);
    }
}

static void send_heartbeats(host *h)
{
    host_live *lv = h->live;
    uint8_t msg[LIVE_MSG_SIZE];
    msg[0] = LIVE_VERSION;
    mbe64_put(msg + 1, lv->incarnation);
    for (size_t i = 0; i < h->npeers; i++) {
        uint64_t id = h->peers[i].id;
        if (id == h->node_id || h->node_id == 0) continue;
        /* Loss is fine: the next one follows in HOST_LIVENESS_TICKS. */
        if (rpc_node_oneway(h->rpc, id, LIVE_METHOD, msg, sizeof(msg)) == 0) lv->sent++;
    }
}

void host_liveness_tick(host *h)
{
    host_live *lv = h->live;
    if (!lv) return;
    if (h->ticks % HOST_LIVENESS_TICKS == 0) send_heartbeats(h);
    uint64_t dead[LIVENESS_MAX_PEERS];
    size_t nd = liveness_tick(&lv->tr, dead, LIVENESS_MAX_PEERS);
    for (size_t i = 0; i < nd; i++) {
        lv->deaths++;
        MLOG_I(MOD, "peer node silent: counted dead", "node=%" PRIu64, dead[i]);
        wake_groups_of(h, dead[i]);
    }
    int64_t now = mtime_mono_ns();
    lv->walking = 1;
    /* Replicas woken during the walk (a write's callback stepping another
     * one) are appended and ticked too: nawake is read on every round. */
    for (size_t i = 0; i < lv->nawake; i++) {
        replica *r = lv->awake[i];
        if (!r) continue;
        replica_feed_liveness(r);
        replica_tick(r);
        if (lv->awake[i] != r) continue; /* freed by a callback */
        replica_expire(r, now);
        if (lv->awake[i] != r) continue;
        replica_lease_poll(r, now);
        if (lv->awake[i] == r && replica_may_sleep(r)) {
            lv->awake[i] = NULL;
            r->awake = 0;
            replica_store_sleep(r);
        }
    }
    lv->walking = 0;
    size_t k = 0;
    for (size_t i = 0; i < lv->nawake; i++)
        if (lv->awake[i]) lv->awake[k++] = lv->awake[i];
    lv->nawake = k;
}

int host_liveness_open(host *h, merr *e)
{
    host_live *lv = calloc(1, sizeof(*lv));
    if (!lv) return merr_set(e, MERR_NOMEM, "out of memory");
    liveness_init(&lv->tr, HOST_LIVENESS_TIMEOUT, HOST_LIVENESS_GRACE);
    lv->incarnation = (uint64_t)mtime_real_ns();
    h->live = lv;
    /* Every replica starts awake: restored groups are not quiet. */
    for (size_t i = 0; i < h->nreps; i++) host_wake(h, h->reps[i]);
    return rpc_node_handle(h->rpc, LIVE_METHOD, on_live, h);
}

void host_liveness_close(host *h)
{
    if (!h->live) return;
    free(h->live->awake);
    free(h->live);
    h->live = NULL;
}

void host_liveness_metrics(host *h, mbuf *out)
{
    host_live *lv = h->live;
    if (!lv) return;
    size_t live = 0;
    for (size_t i = 0; i < lv->tr.n; i++)
        live += (size_t)liveness_is_live(&lv->tr, lv->tr.p[i].node);
    mbuf_printf(out,
                "# TYPE meridian_node_heartbeats_sent_total counter\n"
                "meridian_node_heartbeats_sent_total %" PRIu64 "\n"
                "# TYPE meridian_node_heartbeats_received_total counter\n"
                "meridian_node_heartbeats_received_total %" PRIu64 "\n"
                "# TYPE meridian_node_heartbeats_bad_total counter\n"
                "meridian_node_heartbeats_bad_total %" PRIu64 "\n"
                "# TYPE meridian_peer_deaths_total counter\n"
                "meridian_peer_deaths_total %" PRIu64 "\n"
                "# TYPE meridian_peer_restarts_total counter\n"
                "meridian_peer_restarts_total %" PRIu64 "\n"
                "# TYPE meridian_peers_live gauge\nmeridian_peers_live %zu\n"
                "# TYPE meridian_replicas_awake gauge\nmeridian_replicas_awake %zu\n",
                lv->sent, lv->received, lv->bad, lv->deaths, lv->restarts, live, lv->nawake);
}
