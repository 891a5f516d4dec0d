/* Cluster membership of a node: bootstrap (`meridian init`), joining through
 * seeds (`--join`), the address book that every node gossips once a second,
 * and growing range 1 to three voters as nodes join.
 *
 * Join protocol. A node without an identity calls "node.Join" on its seeds
 * once a second. A seed admits only while it holds range 1's lease, one
 * joiner at a time: it reads the node-id counter (a key of range 1), writes
 * counter+1 and the joiner's address through Paxos, and only then answers
 * with the cluster id, the new node id, its address book and range 1's
 * genesis voters. Node ids are therefore unique however many seeds and
 * leaders come and go: every allocation is a replicated write serialised by
 * the one lease. A seed that is not the leaseholder redirects the joiner to
 * the leader. The joiner records its identity durably and creates its empty
 * replica of range 1; the range-1 leader adds it as a learner and promotes it
 * once caught up, until range 1 has NODE_REPLICATION voters. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "proto/node.pb-c.h"
#include "server/node_int.h"
#include "server/pbreply.h"
#include "server/replica.h"

#define MOD              "cluster"
#define CLUSTER_TICK_MS  1000
#define SEED_HANDLE_BASE 1000000 /* local handles of seed addresses (rpc gateways) */

/* System keys of range 1 (below every user key: user keys never start 0x00). */
static const uint8_t KEY_NODE_COUNTER[] = "\x00sys/node-id-counter";
#define KEY_NODE_COUNTER_LEN (sizeof(KEY_NODE_COUNTER) - 1)

static replica *range1(node *n)
{
    return host_find(&n->host, NODE_GENESIS_RANGE);
}

/* ---- bootstrap ---- */

static int create_range1(node *n, const paxos_members *genesis, merr *e)
{
    if (range1(n)) return 0;
    range_desc d = {.range_id = NODE_GENESIS_RANGE, .generation = 1};
    replica *r;
    int rc = replica_create(&n->host, &d, genesis, &r, e);
    if (rc) return rc;
    if ((rc = host_add(&n->host, r))) {
        replica_free(r);
        return merr_set(e, rc, "out of memory");
    }
    return 0;
}

int node_bootstrap(node *n, char *cid, merr *e)
{
    int rc = store_new_cluster_id(cid, e);
    /* Range 1 first, identity last: a crash in between leaves a node that is
     * still uninitialised (init can be retried), never a cluster without its
     * first range. */
    paxos_members g = {.nvoters = 1, .voters = {1}};
    host_set_node_id(&n->host, 1);
    if (!rc) rc = create_range1(n, &g, e);
    if (!rc) rc = store_dir_set_identity(&n->store, cid, 1, e);
    if (rc) return rc;
    rpc_node_set_identity(n->rpc, 1, cid);
    host_set_peer(&n->host, 1, n->rpc_addr);
    replica_campaign(range1(n)); /* one voter: it elects itself at once */
    MLOG_I(MOD, "cluster initialised", "cluster=%s node_id=1", cid);
    return 0;
}

/* ---- admitting a joiner (seed side) ---- */

typedef struct admit {
    node *n;
    rpc_req *req;
    char *address;
    uint64_t node_id;
    uint8_t counter[8];
    uint8_t node_key[32];
    size_t node_key_len;
} admit;

static void admit_reply_error(node *n, rpc_req *req, int code, const char *msg)
{
    n->admitting = 0;
    rpc_reply(req, code, msg, NULL, 0);
}

static void on_admitted(void *arg, int code, const char *msg, uint64_t commit_ts)
{
    admit *a = arg;
    node *n = a->n;
    (void)commit_ts;
    if (code) {
        admit_reply_error(n, a->req, code, msg);
    } else {
        host_set_peer(&n->host, a->node_id, a->address);
        Meridian__Node__JoinResponse resp = MERIDIAN__NODE__JOIN_RESPONSE__INIT;
        resp.cluster_id = n->store.cluster_id;
        resp.node_id = a->node_id;
        Meridian__Node__Peer ps[HOST_MAX_PEERS], *pp[HOST_MAX_PEERS];
        for (size_t i = 0; i < n->host.npeers; i++) {
            meridian__node__peer__init(&ps[i]);
            ps[i].node_id = n->host.peers[i].id;
            ps[i].address = n->host.peers[i].addr;
            pp[i] = &ps[i];
        }
        resp.peers = pp;
        resp.n_peers = n->host.npeers;
        uint64_t g[1] = {1};
        resp.genesis_voters = g;
        resp.n_genesis_voters = 1;
        pb_reply(a->req, &resp.base);
        MLOG_I(MOD, "node admitted", "node_id=%" PRIu64 " address=%s", a->node_id, a->address);
        n->admitting = 0;
    }
    free(a->address);
    free(a);
}

static void on_join(void *arg, rpc_req *req)
{
    node *n = arg;
    Meridian__Node__JoinRequest *q =
        meridian__node__join_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable JoinRequest", NULL, 0);
        return;
    }
    struct sockaddr_storage ss;
    merr e = {0};
    replica *r = range1(n);
    if (maddr_parse(q->address, &ss, &e)) {
        rpc_reply(req, MERR_INVALID, e.msg, NULL, 0);
    } else if (!n->store.has_identity || !r) {
        rpc_reply(req, MERR_UNAVAILABLE, "this node is not part of an initialised cluster yet",
                  NULL, 0);
    } else if (!replica_is_leaseholder(r)) {
        replica_lease_nudge(r); /* a quiet leader: the joiner's retry finds the lease back */
        uint64_t leader = replica_leader_hint(r);
        const char *addr = leader ? host_peer_addr(&n->host, leader) : NULL;
        if (addr && leader != n->host.node_id) {
            Meridian__Node__JoinResponse resp = MERIDIAN__NODE__JOIN_RESPONSE__INIT;
            resp.redirect = (char *)addr;
            pb_reply(req, &resp.base);
        } else {
            rpc_reply(req, MERR_UNAVAILABLE, "range 1 has no leaseholder yet", NULL, 0);
        }
    } else if (n->admitting) {
        rpc_reply(req, MERR_BUSY, "admitting another node; retry", NULL, 0);
    } else {
        /* Allocate the id: counter + 1, written with the joiner's address. */
        uint8_t *val = NULL;
        size_t vlen = 0;
        uint64_t last = 1; /* node 1 is the bootstrap node */
        if (range_get(replica_store(r), KEY_NODE_COUNTER, KEY_NODE_COUNTER_LEN, RANGE_TS_MAX, &val,
                      &vlen, NULL) == 0 &&
            vlen == 8)
            last = mbe64_get(val);
        free(val);
        admit *a = calloc(1, sizeof(*a));
        if (a) a->address = strdup(q->address);
        if (!a || !a->address) {
            if (a) free(a);
            rpc_reply(req, MERR_NOMEM, "out of memory", NULL, 0);
        } else {
            a->n = n;
            a->req = req;
            a->node_id = last + 1;
            mbe64_put(a->counter, a->node_id);
            a->node_key_len = (size_t)snprintf((char *)a->node_key, sizeof(a->node_key),
                                               "%csys/node/%020" PRIu64, 0, a->node_id);
            range_write w[2] = {
                {.key = KEY_NODE_COUNTER,
                 .klen = KEY_NODE_COUNTER_LEN,
                 .val = a->counter,
                 .vlen = 8},
                {.key = a->node_key,
                 .klen = a->node_key_len,
                 .val = (const uint8_t *)a->address,
                 .vlen = strlen(a->address)},
            };
            n->admitting = 1;
            if (replica_write(r, w, 2, mtime_mono_ns() + 10 * MTIME_S, on_admitted, a, &e)) {
                free(a->address);
                free(a);
                admit_reply_error(n, req, e.code, e.msg);
            }
        }
    }
    meridian__node__join_request__free_unpacked(q, NULL);
}

/* ---- joining (joiner side) ---- */

static int adopt_identity(node *n, Meridian__Node__JoinResponse *r, merr *e)
{
    paxos_members g = {0};
    for (size_t i = 0; i < r->n_genesis_voters && i < PAXOS_MAX_NODES; i++)
        g.voters[g.nvoters++] = (paxos_node_id)r->genesis_voters[i];
    host_set_node_id(&n->host, r->node_id);
    int rc = create_range1(n, &g, e);
    if (!rc) rc = store_dir_set_identity(&n->store, r->cluster_id, r->node_id, e);
    if (rc) return rc;
    rpc_node_set_identity(n->rpc, r->node_id, r->cluster_id);
    for (size_t i = 0; i < r->n_peers; i++)
        host_set_peer(&n->host, r->peers[i]->node_id, r->peers[i]->address);
    host_set_peer(&n->host, r->node_id, n->rpc_addr);
    MLOG_I(MOD, "joined the cluster", "cluster=%s node_id=%" PRIu64, r->cluster_id, r->node_id);
    return 0;
}

static void on_join_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    node *n = arg;
    n->join_inflight = 0;
    if (n->state != NODE_SERVING || n->store.has_identity) return;
    if (code) {
        MLOG_D(MOD, "join attempt failed", "error=\"%s\"", msg ? msg : merr_str(code));
        return;
    }
    Meridian__Node__JoinResponse *r = meridian__node__join_response__unpack(NULL, len, p);
    if (!r) return;
    merr e = {0};
    if (r->redirect && r->redirect[0]) {
        snprintf(n->join_redirect, sizeof(n->join_redirect), "%s", r->redirect);
    } else if (adopt_identity(n, r, &e)) {
        MLOG_E(MOD, "cannot adopt the identity the cluster gave", "error=\"%s\"", e.msg);
    }
    meridian__node__join_response__free_unpacked(r, NULL);
}

static void try_join(node *n)
{
    if (n->join_inflight || !n->cfg.join) return;
    char seed[MADDR_STR_MAX];
    uint64_t handle;
    if (n->join_redirect[0]) {
        snprintf(seed, sizeof(seed), "%s", n->join_redirect);
        n->join_redirect[0] = 0;
        handle = SEED_HANDLE_BASE + 999;
    } else {
        /* The next seed of --join, round robin. */
        const char *p = n->cfg.join;
        unsigned k = n->join_seed++ % (unsigned)(n->cfg.njoin ? n->cfg.njoin : 1);
        for (unsigned i = 0; i < k && p; i++) {
            p = strchr(p, ',');
            if (p) p++;
        }
        if (!p) return;
        size_t l = strcspn(p, ",");
        if (l >= sizeof(seed)) return;
        memcpy(seed, p, l);
        seed[l] = 0;
        handle = SEED_HANDLE_BASE + k;
    }
    if (strcmp(seed, n->rpc_addr) == 0) return; /* ourselves */
    rpc_node_add_gateway(n->rpc, handle, seed);
    Meridian__Node__JoinRequest q = MERIDIAN__NODE__JOIN_REQUEST__INIT;
    q.address = n->rpc_addr;
    q.locality = (char *)n->cfg.locality;
    uint8_t *buf;
    size_t len;
    if (pb_pack(&q.base, &buf, &len)) return;
    int64_t deadline = mtime_real_ns() / 1000 + 5 * 1000000;
    if (rpc_node_call(n->rpc, handle, "node.Join", buf, len, deadline, on_join_reply, n, NULL) == 0)
        n->join_inflight = 1;
    free(buf);
}

/* ---- address book gossip ---- */

static void on_peers(void *arg, rpc_req *req)
{
    node *n = arg;
    Meridian__Node__PeersMessage *m =
        meridian__node__peers_message__unpack(NULL, req->len, req->payload);
    if (!m) return;
    if (n->store.has_identity)
        for (size_t i = 0; i < m->n_peers; i++)
            if (m->peers[i]->node_id != n->host.node_id)
                host_set_peer(&n->host, m->peers[i]->node_id, m->peers[i]->address);
    meridian__node__peers_message__free_unpacked(m, NULL);
}

static void gossip_peers(node *n)
{
    Meridian__Node__PeersMessage m = MERIDIAN__NODE__PEERS_MESSAGE__INIT;
    Meridian__Node__Peer ps[HOST_MAX_PEERS], *pp[HOST_MAX_PEERS];
    for (size_t i = 0; i < n->host.npeers; i++) {
        meridian__node__peer__init(&ps[i]);
        ps[i].node_id = n->host.peers[i].id;
        ps[i].address = n->host.peers[i].addr;
        pp[i] = &ps[i];
    }
    m.peers = pp;
    m.n_peers = n->host.npeers;
    uint8_t *buf;
    size_t len;
    if (pb_pack(&m.base, &buf, &len)) return;
    for (size_t i = 0; i < n->host.npeers; i++)
        if (n->host.peers[i].id != n->host.node_id)
            rpc_node_oneway(n->rpc, n->host.peers[i].id, "node.Peers", buf, len);
    free(buf);
}

/* ---- growing range 1 ---- */

static void grow_range1(node *n)
{
    replica *r = range1(n);
    if (!r || !replica_is_leaseholder(r)) return;
    paxos_members committed, latest;
    paxos_get_members(replica_group(r), &committed, &latest);
    if (committed.nvoters != latest.nvoters || committed.nlearners != latest.nlearners) return;
    merr e = {0};
    if (latest.nlearners) {
        /* Refused with MERR_RETRY until the learner has caught up. */
        if (replica_change_members(r, PAXOS_PROMOTE, latest.learners[0], &e) == 0)
            MLOG_I(MOD, "promoting a learner of range 1", "node=%u", latest.learners[0]);
        return;
    }
    if (latest.nvoters >= NODE_REPLICATION) return;
    for (size_t i = 0; i < n->host.npeers; i++) {
        uint64_t id = n->host.peers[i].id;
        if (id == n->host.node_id || paxos_members_is_voter(&latest, (paxos_node_id)id)) continue;
        if (!rpc_node_peer_is_up(n->rpc, id)) {
            /* Dial it: the next round sees it up (or not). */
            rpc_node_oneway(n->rpc, id, "node.Peers", NULL, 0);
            continue;
        }
        if (replica_change_members(r, PAXOS_ADD_LEARNER, id, &e) == 0)
            MLOG_I(MOD, "adding a learner to range 1", "node=%" PRIu64, id);
        return;
    }
}

static void on_cluster_tick(uv_timer_t *t)
{
    node *n = t->data;
    if (n->state != NODE_SERVING) return;
    if (!n->store.has_identity) {
        try_join(n);
        return;
    }
    gossip_peers(n);
    grow_range1(n);
}

int node_cluster_start(node *n, merr *e)
{
    (void)e;
    rpc_node_handle(n->rpc, "node.Join", on_join, n);
    rpc_node_handle(n->rpc, "node.Peers", on_peers, n);
    if (n->store.has_identity) host_set_peer(&n->host, n->store.node_id, n->rpc_addr);
    uv_timer_init(rpc_node_loop(n->rpc), &n->cluster_timer);
    n->cluster_timer.data = n;
    n->cluster_timer_on = 1;
    /* The first attempt right away, then once a second. */
    uv_timer_start(&n->cluster_timer, on_cluster_tick, 0, CLUSTER_TICK_MS);
    return 0;
}

void node_cluster_stop(node *n)
{
    if (!n->cluster_timer_on) return;
    n->cluster_timer_on = 0;
    uv_close((uv_handle_t *)&n->cluster_timer, NULL);
}
