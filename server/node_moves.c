/* Replica moves on the nodes (docs/placement.md, "Moves"): the placement
 * driver's ADD_LEARNER / PROMOTE / REMOVE_REPLICA / TRANSFER_LEADER steps,
 * executed at the range's leader, and the cleanup of replicas a group no
 * longer counts as members.
 *
 * range.Move {range, op, node} at the leader runs one step:
 *   ADD_LEARNER  propose the learner; once the change is chosen, make sure
 *                the log starts past slot 1 (a forced snapshot: a range born
 *                from a split has data no log of its own holds), then ask
 *                the target to create its empty replica (range.Create). The
 *                leader finds it behind the log and streams the snapshot;
 *                the PD sees it caught up in the heartbeats.
 *   PROMOTE      propose learner → voter (the core refuses until caught up).
 *   REMOVE       propose the removal (never of the leader: the PD moves the
 *                lease first).
 *   TRANSFER     hand the lease to a voter.
 *   RECREATE     (PD only, issue #9) a voter's node lacks its replica: it
 *                caught the parent up from a snapshot past the split that
 *                should have created it. Like ADD_LEARNER once chosen
 *                (snapshot, then range.Create), but only for a node the
 *                leader counts a member now: never brings back a replica
 *                removed meanwhile.
 * One membership change at a time per range is the core's own rule (it
 * answers MERR_BUSY); the PD bounds moves cluster-wide (rebalance.max_moves).
 * A step that fails is simply scheduled again by a later PD run.
 *
 * Removed replicas: the PD compares every node's heartbeat with the range's
 * membership as its leader reports it and sends range.Destroy for replicas
 * that are no longer members (node_moves_gc), when the leader's report has
 * applied at least as far as the replica (so it cannot predate the
 * replica's addition), skipping ranges with an operation under way. The
 * node deletes the replica, its store and its log.
 *
 * Decommission (pd.Decommission, the list of draining nodes) is in
 * server/node_decom.c. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/mtime.h"
#include "placement/route_cache.h"
#include "proto/pd.pb-c.h"
#include "proto/range.pb-c.h"
#include "server/kv_service.h"
#include "server/node_moves.h"
#include "server/pbreply.h"
#include "server/range_desc.h"
#include "server/replica.h"

#define MOD          "moves"
#define MOVE_POLL_MS 20
#define MOVE_WAIT    (10 * MTIME_S)

typedef struct step step;

struct node_moves {
    node *n;
    int stopped, refs;
    step *steps; /* ADD_LEARNER steps being polled */
    uint64_t steps_done, steps_failed, created, destroyed;
};

static host *H(node_moves *m)
{
    return &m->n->host;
}

static void unref(node_moves *m)
{
    if (--m->refs == 0 && m->stopped) free(m);
}

/* ---- one step at the leader ---- */

struct step {
    node_moves *m;
    step *next;
    uint64_t range, node;
    int op, phase;
    int creating;      /* range.Create is out: its reply finishes the step */
    uint64_t min_slot; /* the target starts from a snapshot at least this new */
    int64_t deadline;
    uv_timer_t timer;
    int timer_on;
    node_moves_cb done;
    void *arg;
};

static void step_closed(uv_handle_t *hd)
{
    step *s = hd->data;
    node_moves *m = s->m;
    free(s);
    unref(m);
}

static void step_finish(step *s, int code, const char *msg)
{
    node_moves *m = s->m;
    if (code)
        m->steps_failed++;
    else
        m->steps_done++;
    node_moves_cb done = s->done;
    void *arg = s->arg;
    s->done = NULL;
    if (done) done(arg, code, msg);
    if (s->timer_on) {
        for (step **pp = &m->steps; *pp; pp = &(*pp)->next)
            if (*pp == s) {
                *pp = s->next;
                break;
            }
        uv_timer_stop(&s->timer);
        uv_close((uv_handle_t *)&s->timer, step_closed);
    } else {
        free(s);
        unref(m);
    }
}

static void on_created(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    step *s = arg;
    Meridian__Range__CreateResponse *r =
        code ? NULL : meridian__range__create_response__unpack(NULL, len, p);
    if (!code && !r) code = MERR_PROTOCOL, msg = "undecodable CreateResponse";
    if (r && r->error) code = MERR_UNAVAILABLE, msg = r->error->message;
    step_finish(s, code, msg);
    if (r) meridian__range__create_response__free_unpacked(r, NULL);
}

/* Asks the target to create its replica: the descriptor and the membership
 * as this leader knows them. */
static int send_create(step *s, replica *r)
{
    range_desc_pb dp;
    range_desc_fill(r, &dp);
    paxos_members committed, latest;
    paxos_get_members(replica_group(r), &committed, &latest);
    uint64_t v[PAXOS_MAX_NODES], l[PAXOS_MAX_NODES];
    for (uint32_t i = 0; i < latest.nvoters; i++) v[i] = latest.voters[i];
    for (uint32_t i = 0; i < latest.nlearners; i++) l[i] = latest.learners[i];
    Meridian__Range__CreateRequest q = MERIDIAN__RANGE__CREATE_REQUEST__INIT;
    q.desc = &dp.d;
    q.voters = v;
    q.n_voters = latest.nvoters;
    q.learners = l;
    q.n_learners = latest.nlearners;
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = pb_pack(&q.base, &buf, &len);
    int64_t deadline = mtime_real_ns() / 1000 + MOVE_WAIT / 1000;
    if (!rc)
        rc = rpc_node_call(s->m->n->rpc, s->node, "range.Create", buf, len, deadline, on_created, s,
                           NULL);
    free(buf);
    return rc;
}

static int is_member(const paxos_members *p, uint64_t target)
{
    return paxos_members_is_voter(p, (paxos_node_id)target) ||
           paxos_members_is_learner(p, (paxos_node_id)target);
}

/* ADD_LEARNER, polled: 0 proposed → 1 chosen → 2 snapshot → create. */
static void on_step_poll(uv_timer_t *t)
{
    step *s = t->data;
    node_moves *m = s->m;
    replica *r = m->stopped ? NULL : host_find(H(m), s->range);
    if (!r || !replica_is_leader(r)) {
        step_finish(s, MERR_NOT_LEADER, "the range's leader moved during the step");
        return;
    }
    if (mtime_mono_ns() > s->deadline) {
        step_finish(s, MERR_TIMEOUT, "the learner was not added in time");
        return;
    }
    paxos_members committed, latest;
    paxos_get_members(replica_group(r), &committed, &latest);
    if (s->op == NODE_MOVE_RECREATE && !is_member(&latest, s->node)) {
        step_finish(s, MERR_RANGE, "the node is no longer a member");
        return;
    }
    if (s->phase == 0) {
        if (!is_member(&latest, s->node)) {
            step_finish(s, MERR_RETRY, "the learner's membership change was lost");
            return;
        }
        if (!is_member(&committed, s->node)) return; /* not chosen yet */
        s->phase = 1;
        s->min_slot = paxos_get_chosen(replica_group(r)); /* the addition is at or below */
    }
    int rc = replica_ensure_snapshot(r, s->min_slot);
    if (rc == 1 || rc == MERR_RETRY) return; /* being taken */
    uv_timer_stop(&s->timer);
    if ((rc = send_create(s, r)) != 0)
        step_finish(s, rc, "cannot reach the target node");
    else
        s->creating = 1;
}

static int step_start(step *s, replica *r, merr *e)
{
    if (!replica_is_leader(r)) return merr_set(e, MERR_NOT_LEADER, "not the range's leader");
    paxos_members committed, latest;
    paxos_get_members(replica_group(r), &committed, &latest);
    switch (s->op) {
    case NODE_MOVE_ADD_LEARNER:
        if (s->node == H(s->m)->node_id)
            return merr_set(e, MERR_INVALID, "the leader already holds range %" PRIu64, s->range);
        if (!is_member(&latest, s->node)) {
            int rc = replica_change_members(r, PAXOS_ADD_LEARNER, s->node, e);
            if (rc) return rc;
        }
        return 1; /* polled */
    case NODE_MOVE_PROMOTE:
        if (paxos_members_is_voter(&latest, (paxos_node_id)s->node)) return 0;
        return replica_change_members(r, PAXOS_PROMOTE, s->node, e);
    case NODE_MOVE_REMOVE:
        if (s->node == H(s->m)->node_id)
            return merr_set(e, MERR_INVALID, "the leader does not remove itself: move the lease");
        if (!is_member(&latest, s->node)) return 0;
        return replica_change_members(r, PAXOS_REMOVE, s->node, e);
    case NODE_MOVE_TRANSFER: return replica_transfer(r, s->node, e);
    case NODE_MOVE_RECREATE:
        if (s->node == H(s->m)->node_id)
            return merr_set(e, MERR_INVALID, "the leader already holds range %" PRIu64, s->range);
        if (!is_member(&committed, s->node) || !is_member(&latest, s->node))
            return merr_set(e, MERR_RANGE, "node %" PRIu64 " is not a member of range %" PRIu64,
                            s->node, s->range);
        return 1; /* polled: snapshot, then range.Create */
    default: return merr_set(e, MERR_INVALID, "unknown move op %d", s->op);
    }
}

static int move_local(node_moves *m, uint64_t rid, int op, uint64_t target, node_moves_cb done,
                      void *arg, merr *e)
{
    replica *r = host_find(H(m), rid);
    if (!r) return merr_set(e, MERR_NOT_LEADER, "range %" PRIu64 " is not here", rid);
    step *s = calloc(1, sizeof(*s));
    if (!s) return merr_set(e, MERR_NOMEM, "out of memory");
    *s = (step){.m = m, .range = rid, .node = target, .op = op, .done = done, .arg = arg};
    s->deadline = mtime_mono_ns() + MOVE_WAIT;
    m->refs++;
    int rc = step_start(s, r, e);
    if (rc != 1) {
        s->done = NULL; /* the caller learns rc from the return value */
        if (rc)
            m->steps_failed++;
        else
            m->steps_done++;
        free(s);
        unref(m);
        return rc;
    }
    uv_timer_init(rpc_node_loop(m->n->rpc), &s->timer);
    s->timer.data = s;
    s->timer_on = 1;
    s->next = m->steps;
    m->steps = s;
    uv_timer_start(&s->timer, on_step_poll, MOVE_POLL_MS, MOVE_POLL_MS);
    return 1;
}

/* ---- range.Move ---- */

static void reply_move(rpc_req *req, node_moves *m, uint64_t rid, int code, const char *msg)
{
    Meridian__Range__MoveResponse resp = MERIDIAN__RANGE__MOVE_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    if (code) {
        kv_fill_error(H(m), m->stopped ? NULL : host_find(H(m), rid), &err, code, msg, NULL);
        resp.error = &err;
    }
    pb_reply(req, &resp.base);
}

typedef struct move_req {
    node_moves *m;
    rpc_req *req;
    uint64_t range;
} move_req;

static void on_move_done(void *arg, int code, const char *msg)
{
    move_req *q = arg;
    reply_move(q->req, q->m, q->range, code, msg);
    free(q);
}

static void on_move(void *arg, rpc_req *req)
{
    node_moves *m = arg;
    Meridian__Range__MoveRequest *q =
        meridian__range__move_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable MoveRequest", NULL, 0);
        return;
    }
    merr e = {0};
    move_req *c = calloc(1, sizeof(*c));
    int rc;
    if (!c) {
        rc = merr_set(&e, MERR_NOMEM, "out of memory");
    } else if (!q->range_id || !q->node_id) {
        rc = merr_set(&e, MERR_INVALID, "a move needs a range and a node");
    } else {
        *c = (move_req){m, req, q->range_id};
        rc = move_local(m, q->range_id, (int)q->op, q->node_id, on_move_done, c, &e);
    }
    if (rc != 1) {
        reply_move(req, m, q->range_id, rc, rc ? e.msg : NULL);
        free(c);
    }
    meridian__range__move_request__free_unpacked(q, NULL);
}

/* ---- from the PD ---- */

typedef struct remote_step {
    node_moves *m;
    node_moves_cb done;
    void *arg;
} remote_step;

static void on_move_reply(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    remote_step *s = arg;
    Meridian__Range__MoveResponse *r =
        code ? NULL : meridian__range__move_response__unpack(NULL, len, p);
    if (!code && !r) code = MERR_PROTOCOL, msg = "undecodable MoveResponse";
    if (r && r->error) code = MERR_UNAVAILABLE, msg = r->error->message;
    s->done(s->arg, code, msg);
    if (r) meridian__range__move_response__free_unpacked(r, NULL);
    node_moves *m = s->m;
    free(s);
    unref(m);
}

int node_moves_step(node *n, uint64_t leader, uint64_t rid, int op, uint64_t target,
                    node_moves_cb done, void *arg)
{
    node_moves *m = n->moves;
    if (!m || !leader) return MERR_UNAVAILABLE;
    merr e = {0};
    if (leader == H(m)->node_id) {
        int rc = move_local(m, rid, op, target, done, arg, &e);
        if (rc == 1) return 0;
        done(arg, rc, rc ? e.msg : NULL);
        return 0;
    }
    Meridian__Range__MoveRequest q = MERIDIAN__RANGE__MOVE_REQUEST__INIT;
    q.range_id = rid;
    q.op = (uint32_t)op;
    q.node_id = target;
    uint8_t *buf = NULL;
    size_t len = 0;
    remote_step *s = calloc(1, sizeof(*s));
    int rc = s ? pb_pack(&q.base, &buf, &len) : MERR_NOMEM;
    int64_t deadline = mtime_real_ns() / 1000 + 2 * MOVE_WAIT / 1000;
    if (!rc) {
        *s = (remote_step){m, done, arg};
        rc =
            rpc_node_call(n->rpc, leader, "range.Move", buf, len, deadline, on_move_reply, s, NULL);
    }
    free(buf);
    if (rc) {
        free(s);
        return rc;
    }
    m->refs++;
    return 0;
}

/* ---- range.Create at the target ---- */

static void reply_simple(rpc_req *req, node_moves *m, int create, int code, const char *msg)
{
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    if (code) kv_fill_error(H(m), NULL, &err, code, msg, NULL);
    if (create) {
        Meridian__Range__CreateResponse resp = MERIDIAN__RANGE__CREATE_RESPONSE__INIT;
        resp.error = code ? &err : NULL;
        pb_reply(req, &resp.base);
    } else {
        Meridian__Range__DestroyResponse resp = MERIDIAN__RANGE__DESTROY_RESPONSE__INIT;
        resp.error = code ? &err : NULL;
        pb_reply(req, &resp.base);
    }
}

static int create_replica(node_moves *m, const Meridian__Range__CreateRequest *q, merr *e)
{
    const Meridian__Meta__RangeDescriptor *d = q->desc;
    if (!d || !d->range_id || !q->n_voters || q->n_voters > PAXOS_MAX_NODES ||
        q->n_learners > PAXOS_MAX_NODES)
        return merr_set(e, MERR_INVALID, "a replica needs a range id and 1..%d voters",
                        PAXOS_MAX_NODES);
    if (!H(m)->node_id) return merr_set(e, MERR_UNAVAILABLE, "this node has not joined yet");
    /* Already here (a repeated request, or a replica left from before):
     * the leader catches it up from the log or a snapshot either way. */
    if (host_find(H(m), d->range_id)) return 0;
    /* A replica here still covering part of the span has not applied the
     * split that made this range (its log or a snapshot will, and a SPLIT
     * applied after we created the child would be refused): later. */
    for (size_t i = 0; i < H(m)->nreps; i++) {
        const uint8_t *s, *en;
        size_t sl, el;
        /* Not the empty copy of range 1 a node made when it joined and that
         * no leader ever fed: it would never catch up, and the node could
         * never host a range (docs/placement.md, "Moves"). */
        if (replica_placeholder(H(m)->reps[i])) continue;
        replica_span(H(m)->reps[i], &s, &sl, &en, &el);
        if ((!d->end_key.len || route_keycmp(s, sl, d->end_key.data, d->end_key.len) < 0) &&
            (!el || route_keycmp(d->start_key.data, d->start_key.len, en, el) < 0))
            return merr_set(e, MERR_BUSY,
                            "range %" PRIu64 " here still covers part of range %" PRIu64
                            "'s span: it catches up first",
                            replica_id(H(m)->reps[i]), d->range_id);
    }
    paxos_members g = {0};
    for (size_t i = 0; i < q->n_voters; i++) {
        if (!q->voters[i] || q->voters[i] > UINT32_MAX)
            return merr_set(e, MERR_INVALID, "bad voter id %" PRIu64, q->voters[i]);
        g.voters[g.nvoters++] = (paxos_node_id)q->voters[i];
    }
    for (size_t i = 0; i < q->n_learners; i++) {
        if (!q->learners[i] || q->learners[i] > UINT32_MAX)
            return merr_set(e, MERR_INVALID, "bad learner id %" PRIu64, q->learners[i]);
        g.learners[g.nlearners++] = (paxos_node_id)q->learners[i];
    }
    range_desc rd = {.range_id = d->range_id,
                     .generation = d->generation,
                     .start = d->start_key.data,
                     .start_len = d->start_key.len,
                     .end = d->end_key.data,
                     .end_len = d->end_key.len};
    replica *r = NULL;
    int rc = replica_create(H(m), &rd, &g, &r, e);
    if (rc) return rc;
    if ((rc = host_add(H(m), r))) {
        replica_free(r);
        return merr_set(e, rc, "out of memory");
    }
    m->created++;
    MLOG_I(MOD, "replica created for a move", "range=%" PRIu64, d->range_id);
    return 0;
}

static void on_create(void *arg, rpc_req *req)
{
    node_moves *m = arg;
    Meridian__Range__CreateRequest *q =
        meridian__range__create_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable CreateRequest", NULL, 0);
        return;
    }
    merr e = {0};
    int rc = create_replica(m, q, &e);
    reply_simple(req, m, 1, rc, rc ? e.msg : NULL);
    meridian__range__create_request__free_unpacked(q, NULL);
}

/* ---- range.Destroy ---- */

static int destroy_local(node_moves *m, uint64_t rid, merr *e)
{
    replica *r = host_find(H(m), rid);
    if (!r) return 0; /* gone already */
    int rc = replica_destroy(H(m), r, e);
    if (!rc) m->destroyed++;
    return rc;
}

static void on_destroy(void *arg, rpc_req *req)
{
    node_moves *m = arg;
    Meridian__Range__DestroyRequest *q =
        meridian__range__destroy_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable DestroyRequest", NULL, 0);
        return;
    }
    merr e = {0};
    int rc = q->range_id == NODE_GENESIS_RANGE
                 ? merr_set(&e, MERR_INVALID, "range 1 is never removed from a node")
                 : destroy_local(m, q->range_id, &e);
    reply_simple(req, m, 0, rc, rc ? e.msg : NULL);
    meridian__range__destroy_request__free_unpacked(q, NULL);
}

static void on_destroyed(void *arg, int code, const char *msg, const uint8_t *p, size_t len)
{
    node_moves *m = arg;
    (void)p, (void)len;
    if (code) MLOG_D(MOD, "range.Destroy failed: a later run asks again", "error=\"%s\"", msg);
    unref(m);
}

/* ---- cleanup, from the PD ---- */

static int busy(const pd_cluster *c, const pd_ops *ops, pd_range_id id)
{
    for (size_t i = 0; i < c->n_inflight; i++)
        if (c->inflight[i].range == id || c->inflight[i].range2 == id) return 1;
    for (size_t i = 0; i < ops->n; i++)
        if (ops->v[i].range == id || ops->v[i].range2 == id) return 1;
    return 0;
}

static const pd_hb_replica *reported(const pd_hb *hb, pd_range_id id)
{
    for (size_t k = 0; hb && k < hb->n_replicas; k++)
        if (hb->replicas[k].range == id) return &hb->replicas[k];
    return NULL;
}

typedef struct recreate_ctx {
    uint64_t range, node;
} recreate_ctx;

/* The next run looks again; a failure is said, or a learner that is never
 * created (seen once on a 4-node cluster) leaves no trace of why. */
static void on_recreated(void *arg, int code, const char *msg)
{
    recreate_ctx *c = arg;
    if (code && c)
        MLOG_W(MOD, "could not create a replica", "range=%" PRIu64 " node=%" PRIu64 " error=\"%s\"",
               c->range, c->node, msg ? msg : merr_str(code));
    free(c);
}

/* One step that (re)creates a replica of range rid on node; its outcome is
 * logged only when it fails. */
static void recreate(node *n, uint64_t leader, uint64_t rid, int op, uint64_t target)
{
    recreate_ctx *c = malloc(sizeof(*c)); /* NULL: a failure is not said */
    if (c) c->range = rid, c->node = target;
    int rc = node_moves_step(n, leader, rid, op, target, on_recreated, c);
    if (rc) on_recreated(c, rc, "the range's leader could not be asked"); /* done did not run */
}

/* A learner whose node does not host the range (its range.Create failed or
 * came too late) would never catch up and would hold the move forever:
 * the ADD_LEARNER step again finds it a member and only creates it. */
static void recreate_learners(node *n, const pd_hb_table *t, const pd_cluster *c, const pd_ops *ops)
{
    for (size_t i = 0; i < c->n_ranges; i++) {
        const pd_range *r = &c->ranges[i];
        if (!r->leader || busy(c, ops, r->id)) continue;
        for (int k = 0; k < r->n_replicas; k++) {
            const pd_hb *hb = pd_hb_table_get(t, r->replicas[k].node);
            if (r->replicas[k].role != PD_LEARNER || !hb || reported(hb, r->id)) continue;
            MLOG_I(MOD, "a learner's node does not host its range: creating it",
                   "range=%" PRIu64 " node=%" PRIu64, r->id, r->replicas[k].node);
            recreate(n, r->leader, r->id, NODE_MOVE_ADD_LEARNER, r->replicas[k].node);
        }
    }
}

void node_moves_repair(node *n, const pd_missing *due, size_t ndue, const pd_cluster *c,
                       const pd_ops *ops)
{
    if (!n->moves) return;
    for (size_t i = 0; i < ndue; i++) {
        const pd_range *r = pd_cluster_range(c, due[i].range);
        if (!r || !r->leader || busy(c, ops, r->id)) continue;
        MLOG_I(MOD, "a voter's node does not host its range: creating it",
               "range=%" PRIu64 " node=%" PRIu64, r->id, due[i].node);
        recreate(n, r->leader, r->id, NODE_MOVE_RECREATE, due[i].node);
    }
}

void node_moves_gc(node *n, const pd_hb_table *t, const pd_cluster *c, const pd_ops *ops)
{
    node_moves *m = n->moves;
    if (!m) return;
    recreate_learners(n, t, c, ops);
    for (size_t i = 0; i < t->n; i++) {
        const pd_hb *hb = &t->v[i];
        for (size_t k = 0; k < hb->n_replicas; k++) {
            const pd_hb_replica *hr = &hb->replicas[k];
            const pd_range *r = pd_cluster_range(c, hr->range);
            /* Range 1 stays on every node: its replica is how a node joins. */
            if (!r || r->id == NODE_GENESIS_RANGE || busy(c, ops, r->id) || !r->leader) continue;
            if (pd_range_has(r, hb->node) || hr->leaseholder) continue;
            if (r->generation < hr->generation) continue; /* the leader's report is older */
            /* Causality, not timing: the leader's report must have applied
             * at least what this replica has. A replica applied its own
             * addition (the snapshot it started from is past it), so a
             * leader report that predates the addition (a heartbeat late
             * under load) never removes it; a removed replica stopped below
             * the removal the leader applied. */
            const pd_hb_replica *lr = reported(pd_hb_table_get(t, r->leader), r->id);
            if (!lr || lr->applied < hr->applied) continue;
            MLOG_I(MOD, "removing a replica its range no longer counts",
                   "range=%" PRIu64 " node=%" PRIu64, r->id, hb->node);
            if (hb->node == H(m)->node_id) {
                merr e = {0};
                destroy_local(m, r->id, &e);
                continue;
            }
            Meridian__Range__DestroyRequest q = MERIDIAN__RANGE__DESTROY_REQUEST__INIT;
            q.range_id = r->id;
            uint8_t *buf = NULL;
            size_t len = 0;
            if (pb_pack(&q.base, &buf, &len)) continue;
            int64_t deadline = mtime_real_ns() / 1000 + MOVE_WAIT / 1000;
            if (rpc_node_call(n->rpc, hb->node, "range.Destroy", buf, len, deadline, on_destroyed,
                              m, NULL) == 0)
                m->refs++;
            free(buf);
        }
    }
}

/* ---- lifecycle ---- */

int node_moves_start(node *n, merr *e)
{
    node_moves *m = calloc(1, sizeof(*m));
    if (!m) return merr_set(e, MERR_NOMEM, "out of memory");
    m->n = n;
    m->refs = 1;
    rpc_node_handle(n->rpc, "range.Move", on_move, m);
    rpc_node_handle(n->rpc, "range.Create", on_create, m);
    rpc_node_handle(n->rpc, "range.Destroy", on_destroy, m);
    rpc_node_handle(n->rpc, "pd.Decommission", node_decom_rpc, n);
    n->moves = m;
    return 0;
}

static void on_stopped(void *arg, rpc_req *req)
{
    (void)arg;
    rpc_reply(req, MERR_UNAVAILABLE, "the node is stopping", NULL, 0);
}

void node_moves_stop(node *n)
{
    node_moves *m = n->moves;
    if (!m) return;
    n->moves = NULL;
    m->stopped = 1;
    /* Steps waiting for range.Create end with its reply (rpc fails it). */
    for (step **pp = &m->steps; *pp;) {
        if ((*pp)->creating) {
            pp = &(*pp)->next;
        } else {
            step *s = *pp;
            step_finish(s, MERR_CLOSED, "node stopping"); /* unlinks s */
        }
    }
    rpc_node_handle(n->rpc, "range.Move", on_stopped, NULL);
    rpc_node_handle(n->rpc, "range.Create", on_stopped, NULL);
    rpc_node_handle(n->rpc, "range.Destroy", on_stopped, NULL);
    unref(m);
}

void node_moves_metrics_render(node *n, mbuf *out)
{
    node_moves *m = n->moves;
    if (!m) return;
    mbuf_printf(out,
                "# TYPE meridian_move_steps_total counter\n"
                "meridian_move_steps_total{result=\"done\"} %" PRIu64 "\n"
                "meridian_move_steps_total{result=\"failed\"} %" PRIu64 "\n"
                "# TYPE meridian_move_replicas_created_total counter\n"
                "meridian_move_replicas_created_total %" PRIu64 "\n"
                "# TYPE meridian_move_replicas_removed_total counter\n"
                "meridian_move_replicas_removed_total %" PRIu64 "\n",
                m->steps_done, m->steps_failed, m->created, m->destroyed);
}
