/* The placement driver in the cluster (docs/placement.md, "In the cluster").
 *
 * Every node, every HB_MS: one pd.Heartbeat to range 1's leaseholder with
 * the stats of all its replicas coalesced (descriptor, size, keys, applied,
 * leaseholder flag; the middle key of ranges above the split size the PD
 * last told it) and the store's capacity and use (statvfs).
 *
 * The PD runs on range 1's leaseholder. Heartbeats are volatile: they live in
 * this process only and are rebuilt from fresh ones after a PD failover, so
 * a new PD waits PD_WARMUP_MS before scheduling, and counts nodes it has not
 * heard from yet as heard when it took over (a full node.dead_timeout of
 * grace). Replicated state lives in range 1's system keys: the node registry
 * ("\x00sys/node/" + id, written at join), the settings ("\x00sys/setting/"
 * + name, text) and the range directory (node_ranges.c).
 *
 * Every PD_RUN_MS the PD reads the settings, builds a snapshot
 * (placement/pd_feed.h), runs pd_schedule and starts up to PD_MAX_INFLIGHT
 * operations at the ranges' leaseholders. A failed operation is simply
 * proposed again by a later run: the schedulers are idempotent. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "common/log.h"
#include "common/mtime.h"
#include "placement/pd_feed.h"
#include "placement/pd_sched.h"
#include "placement/pd_settings_text.h"
#include "proto/pd.pb-c.h"
#include "proto/range.pb-c.h"
#include "server/kv_service.h"
#include "server/node_int.h"
#include "server/node_moves.h"
#include "server/pbreply.h"
#include "server/range_desc.h"
#include "server/replica.h"

#define MOD             "pd"
#define HB_MS           1000
#define PD_RUN_MS       1000
#define PD_WARMUP_MS    (3 * HB_MS) /* a few heartbeats before a new PD decides */
#define PD_MAX_INFLIGHT 8
#define PD_OP_WAIT      (15 * MTIME_S)
#define PD_SETTLE_MS    (2 * HB_MS + 500)

static const uint8_t SETTING_PREFIX[] = "\x00sys/setting/";
#define SETTING_PREFIX_LEN (sizeof(SETTING_PREFIX) - 1)
static const uint8_t NODE_PREFIX[] = "\x00sys/node/";
#define NODE_PREFIX_LEN (sizeof(NODE_PREFIX) - 1)

/* An operation under way, or finished less than PD_SETTLE_MS ago: the
 * heartbeats behind the next snapshot may predate its effect, so its range
 * stays claimed until fresh ones arrive (no second split at a stale key). */
typedef struct pd_running {
    pd_inflight f;
    uint64_t seq;    /* 0: free slot */
    int64_t done_ns; /* 0: still running */
} pd_running;

struct node_pd {
    node *n;
    uv_timer_t timer;
    int timer_on, stopped, refs, hb_inflight;
    int64_t last_hb_ns;
    uint64_t split_above; /* as the PD last answered */
    uint64_t pd_hint;     /* nodes without range 1: where the PD was last */
    uint64_t probe;       /* ... and which peer to ask when unknown */
    /* PD leader state (volatile) */
    int leading;
    int64_t since_ns;
    pd_hb_table hbs;
    pd_learner_table learners; /* when this term first saw each learner */
    pd_running running[PD_MAX_INFLIGHT];
    uint64_t seq;
    pd_cluster last; /* the last run's snapshot, for operators */
    int have_last;
    pd_settings settings;
    /* counters */
    uint64_t heartbeats, runs, ops_started, ops_failed, ops_done, unavailable;
};

static host *H(node_pd *p)
{
    return &p->n->host;
}

static void unref(node_pd *p)
{
    if (--p->refs == 0 && p->stopped) {
        pd_hb_table_free(&p->hbs);
        pd_learner_table_free(&p->learners);
        if (p->have_last) pd_cluster_free(&p->last);
        free(p);
    }
}

/* Range 1's replica here if it is where range 1 is served (it holds the
 * lease, or leads a quiet group whose lease lapsed and would renew on the
 * next request): the PD runs there. Heartbeats are not Paxos writes, so a
 * cluster with no writes keeps range 1 quiet and its lease lapsed. */
static replica *range1_leaseholder(node_pd *p)
{
    replica *r1 = host_find(H(p), NODE_GENESIS_RANGE);
    return r1 && replica_is_lease_owner(r1) ? r1 : NULL;
}

/* ---- replicated state in range 1 ---- */

typedef struct scan_ctx {
    pd_settings *s;
    pd_node_id *ids;
    size_t n, cap;
} scan_ctx;

static int setting_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                       uint64_t ts)
{
    scan_ctx *c = arg;
    (void)ts;
    char name[64], value[PD_SETTING_VALUE_MAX];
    size_t nl = klen - SETTING_PREFIX_LEN;
    if (nl >= sizeof(name) || vlen >= sizeof(value)) return 0;
    memcpy(name, key + SETTING_PREFIX_LEN, nl);
    name[nl] = 0;
    memcpy(value, val, vlen);
    value[vlen] = 0;
    merr e = {0};
    /* One at a time: a stored pair (min, max) that is valid together may be
     * invalid midway; a second pass below settles those. */
    pd_setting_set(c->s, name, value, &e);
    return 0;
}

static void prefix_end(const uint8_t *prefix, size_t len, uint8_t *end)
{
    memcpy(end, prefix, len);
    end[len - 1]++; /* "/" + 1: just past every key under the prefix */
}

/* The settings as range 1 (this node's replica) holds them over the
 * defaults. Values were validated when set. */
static void load_settings(replica *r1, pd_settings *s)
{
    pd_settings_default(s);
    scan_ctx c = {.s = s};
    uint8_t end[SETTING_PREFIX_LEN];
    prefix_end(SETTING_PREFIX, SETTING_PREFIX_LEN, end);
    for (int pass = 0; pass < 2; pass++)
        range_scan(replica_store(r1), SETTING_PREFIX, SETTING_PREFIX_LEN, end, SETTING_PREFIX_LEN,
                   RANGE_TS_MAX, 0, 0, setting_row, &c, NULL);
}

static int node_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                    uint64_t ts)
{
    scan_ctx *c = arg;
    (void)val, (void)vlen, (void)ts;
    char digits[24];
    size_t dl = klen - NODE_PREFIX_LEN;
    if (dl == 0 || dl >= sizeof(digits)) return 0;
    memcpy(digits, key + NODE_PREFIX_LEN, dl);
    digits[dl] = 0;
    char *end;
    unsigned long long id = strtoull(digits, &end, 10);
    if (*end || !id) return 0;
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 16;
        pd_node_id *nv = realloc(c->ids, cap * sizeof(*nv));
        if (!nv) return 1;
        c->ids = nv;
        c->cap = cap;
    }
    c->ids[c->n++] = id;
    return 0;
}

/* ---- heartbeats: the PD side ---- */

static int key_from(pd_key *k, const ProtobufCBinaryData *b)
{
    return pd_key_set(k, b->data, b->len);
}

/* Decodes a heartbeat into hb (received now). */
static int hb_decode(const Meridian__Pd__HeartbeatRequest *q, int64_t now, pd_hb *hb)
{
    memset(hb, 0, sizeof(*hb));
    hb->node = q->node_id;
    hb->received_ns = now;
    hb->capacity_bytes = q->capacity_bytes;
    hb->used_bytes = q->used_bytes;
    hb->replicas = calloc(q->n_replicas ? q->n_replicas : 1, sizeof(*hb->replicas));
    if (!hb->replicas) return MERR_NOMEM;
    for (size_t i = 0; i < q->n_replicas; i++) {
        const Meridian__Pd__ReplicaStats *s = q->replicas[i];
        const Meridian__Meta__RangeDescriptor *d = s->desc;
        if (!d) continue;
        pd_hb_replica *r = &hb->replicas[hb->n_replicas++];
        r->range = d->range_id;
        r->generation = d->generation;
        r->size_bytes = s->size_bytes;
        r->keys = s->keys;
        r->applied = s->applied;
        r->reads_per_s = s->reads_per_s;
        r->writes_per_s = s->writes_per_s;
        r->leaseholder = s->leaseholder;
        if (key_from(&r->start, &d->start_key) || key_from(&r->end, &d->end_key) ||
            key_from(&r->mid_key, &s->mid_key))
            return MERR_NOMEM;
        for (size_t m = 0; m < d->n_replicas; m++) {
            if (d->replicas[m]->type == MERIDIAN__META__REPLICA_TYPE__LEARNER) {
                if (r->n_learners < PD_MAX_REPLICAS) {
                    uint64_t id = d->replicas[m]->node_id;
                    for (size_t k = 0; k < s->n_acked_nodes && k < s->n_acked_slots; k++)
                        if (s->acked_nodes[k] == id)
                            r->learner_acked[r->n_learners] = s->acked_slots[k];
                    r->learners[r->n_learners++] = id;
                }
            } else if (r->n_voters < PD_MAX_REPLICAS) {
                r->voters[r->n_voters++] = d->replicas[m]->node_id;
            }
        }
    }
    return 0;
}

static void become_leader(node_pd *p, int64_t now)
{
    if (p->leading) return;
    p->leading = 1;
    p->since_ns = now;
    pd_hb_table_free(&p->hbs);
    pd_hb_table_init(&p->hbs);
    pd_learner_table_free(&p->learners);
    /* A snapshot from an earlier term here is stale (nodes joined since):
     * nobody is answered from it. */
    if (p->have_last) pd_cluster_free(&p->last);
    p->have_last = 0;
    MLOG_I(MOD, "placement driver leading here", "node=%" PRIu64, H(p)->node_id);
}

/* 0 when taken; MERR_NOT_LEADER when this node is not the PD. */
static int hb_ingest(node_pd *p, const uint8_t *buf, size_t len, uint64_t *split_above)
{
    replica *r1 = range1_leaseholder(p);
    if (!r1) return MERR_NOT_LEADER;
    Meridian__Pd__HeartbeatRequest *q = meridian__pd__heartbeat_request__unpack(NULL, len, buf);
    if (!q) return MERR_INVALID;
    int64_t now = mtime_mono_ns();
    become_leader(p, now);
    pd_hb hb;
    int rc = hb_decode(q, now, &hb);
    if (!q->node_id) rc = MERR_INVALID;
    if (rc)
        pd_hb_free(&hb);
    else
        rc = pd_hb_table_put(&p->hbs, &hb);
    if (!rc) p->heartbeats++;
    meridian__pd__heartbeat_request__free_unpacked(q, NULL);
    *split_above = p->settings.range_max_bytes;
    return rc;
}

static void on_heartbeat(void *arg, rpc_req *req)
{
    node_pd *p = arg;
    Meridian__Pd__HeartbeatResponse resp = MERIDIAN__PD__HEARTBEAT_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    int rc = hb_ingest(p, req->payload, req->len, &resp.split_above_bytes);
    if (rc) {
        kv_fill_error(H(p), host_find(H(p), NODE_GENESIS_RANGE), &err, rc,
                      rc == MERR_INVALID ? "undecodable heartbeat" : NULL, NULL);
        resp.error = &err;
    }
    pb_reply(req, &resp.base);
}

/* ---- heartbeats: the node side ---- */

static int hb_build(node_pd *p, uint8_t **buf, size_t *len)
{
    host *h = H(p);
    size_t n = h->nreps;
    Meridian__Pd__ReplicaStats *st = calloc(n ? n : 1, sizeof(*st));
    Meridian__Pd__ReplicaStats **sp = calloc(n ? n : 1, sizeof(*sp));
    range_desc_pb *dp = calloc(n ? n : 1, sizeof(*dp));
    uint8_t **mids = calloc(n ? n : 1, sizeof(*mids));
    uint64_t(*acks)[2][PAXOS_MAX_NODES] = calloc(n ? n : 1, sizeof(*acks));
    int rc = st && sp && dp && mids && acks ? 0 : MERR_NOMEM;
    for (size_t i = 0; !rc && i < n; i++) {
        replica *r = h->reps[i];
        meridian__pd__replica_stats__init(&st[i]);
        range_meta m;
        memset(&m, 0, sizeof(m));
        range_get_meta(replica_store(r), &m);
        st[i].size_bytes = m.stats.live_bytes > 0 ? (uint64_t)m.stats.live_bytes : 0;
        st[i].keys = m.stats.live_keys > 0 ? (uint64_t)m.stats.live_keys : 0;
        /* The Paxos slot, not the store's counter: membership changes take
         * slots too, so a report that predates a learner's addition is
         * behind the learner's own (node_moves_gc relies on it). */
        paxos_group *g = replica_group(r);
        st[i].applied = paxos_get_applied(g);
        st[i].leaseholder = replica_is_lease_owner(r);
        if (st[i].leaseholder) {
            paxos_members cm, lm;
            paxos_get_members(g, &cm, &lm);
            for (uint32_t l = 0; l < lm.nlearners; l++) {
                acks[i][0][l] = lm.learners[l];
                acks[i][1][l] = paxos_get_peer_match(g, lm.learners[l]);
            }
            st[i].n_acked_nodes = st[i].n_acked_slots = lm.nlearners;
            st[i].acked_nodes = acks[i][0];
            st[i].acked_slots = acks[i][1];
        }
        if (st[i].leaseholder && p->split_above && st[i].size_bytes > p->split_above) {
            size_t kl = 0;
            /* System keys (0x00...) stay in range 1: never offered as a split. */
            if (range_split_key(replica_store(r), NULL, 0, &mids[i], &kl) == 0 && kl &&
                mids[i][0] != 0x00)
                st[i].mid_key = (ProtobufCBinaryData){kl, mids[i]};
        }
        range_desc_fill(r, &dp[i]); /* last: its keys point into the handle's meta */
        st[i].desc = &dp[i].d;
        sp[i] = &st[i];
    }
    if (!rc) {
        Meridian__Pd__HeartbeatRequest q = MERIDIAN__PD__HEARTBEAT_REQUEST__INIT;
        q.node_id = h->node_id;
        q.address = p->n->rpc_addr;
        struct statvfs vs;
        if (statvfs(p->n->store.path, &vs) == 0) {
            q.capacity_bytes = (uint64_t)vs.f_blocks * vs.f_frsize;
            q.used_bytes = (uint64_t)(vs.f_blocks - vs.f_bfree) * vs.f_frsize;
        }
        q.replicas = sp;
        q.n_replicas = n;
        rc = pb_pack(&q.base, buf, len);
    }
    for (size_t i = 0; mids && i < n; i++) free(mids[i]);
    free(mids);
    free(acks);
    free(dp);
    free(sp);
    free(st);
    return rc;
}

static void on_hb_reply(void *arg, int code, const char *msg, const uint8_t *buf, size_t len)
{
    node_pd *p = arg;
    (void)msg;
    p->hb_inflight = 0;
    Meridian__Pd__HeartbeatResponse *r =
        code ? NULL : meridian__pd__heartbeat_response__unpack(NULL, len, buf);
    if (r && !r->error) p->split_above = r->split_above_bytes;
    /* A node without range 1 learns where the PD is from the refusal. */
    if (code || !r)
        p->pd_hint = 0;
    else if (r->error)
        p->pd_hint = r->error->leader_hint;
    if (r) meridian__pd__heartbeat_response__free_unpacked(r, NULL);
    unref(p);
}

static void send_heartbeat(node_pd *p)
{
    host *h = H(p);
    replica *r1 = host_find(h, NODE_GENESIS_RANGE);
    uint64_t to = r1 ? replica_leader_hint(r1) : p->pd_hint;
    for (int i = 0; !to && i < 16; i++) { /* ask around: any node with range 1 knows */
        uint64_t id = p->probe++ % 16 + 1;
        if (id != h->node_id && host_peer_addr(h, id)) to = id;
    }
    if (!h->node_id || !to || p->hb_inflight) return;
    uint8_t *buf = NULL;
    size_t len = 0;
    if (hb_build(p, &buf, &len)) return;
    if (to == h->node_id) {
        uint64_t above = 0;
        if (hb_ingest(p, buf, len, &above) == 0) p->split_above = above;
    } else {
        int64_t deadline = mtime_real_ns() / 1000 + HB_MS * 1000;
        if (rpc_node_call(p->n->rpc, to, "pd.Heartbeat", buf, len, deadline, on_hb_reply, p,
                          NULL) == 0) {
            p->hb_inflight = 1;
            p->refs++;
        }
    }
    free(buf);
}

/* ---- operations ---- */

typedef struct op_ctx {
    node_pd *p;
    uint64_t seq;
    pd_op_kind kind;
    pd_range_id range;
} op_ctx;

static pd_running *running_slot(node_pd *p, uint64_t seq)
{
    for (int i = 0; i < PD_MAX_INFLIGHT; i++)
        if (p->running[i].seq == seq) return &p->running[i];
    return NULL;
}

static void op_done(void *arg, int code, const char *msg)
{
    op_ctx *o = arg;
    node_pd *p = o->p;
    pd_running *s = running_slot(p, o->seq);
    if (s) s->done_ns = mtime_mono_ns();
    if (code) {
        p->ops_failed++;
        MLOG_D(MOD, "operation failed: a later run retries it",
               "op=%s range=%" PRIu64 " error=\"%s\"", pd_op_kind_name(o->kind), o->range,
               msg ? msg : merr_str(code));
    } else {
        p->ops_done++;
    }
    free(o);
    unref(p);
}

static void on_split_reply(void *arg, int code, const char *msg, const uint8_t *buf, size_t len)
{
    Meridian__Range__SplitResponse *r =
        code ? NULL : meridian__range__split_response__unpack(NULL, len, buf);
    if (!code && !r) code = MERR_PROTOCOL, msg = "undecodable SplitResponse";
    if (r && r->error) code = MERR_UNAVAILABLE, msg = r->error->message;
    op_done(arg, code, msg);
    if (r) meridian__range__split_response__free_unpacked(r, NULL);
}

/* Starts op at the range's leaseholder; 0 when op_done will run. */
static int op_start(node_pd *p, const pd_op *op, pd_node_id leader, op_ctx *o)
{
    static const int move_ops[] = {[PD_OP_ADD_LEARNER] = NODE_MOVE_ADD_LEARNER,
                                   [PD_OP_PROMOTE] = NODE_MOVE_PROMOTE,
                                   [PD_OP_REMOVE_REPLICA] = NODE_MOVE_REMOVE,
                                   [PD_OP_TRANSFER_LEADER] = NODE_MOVE_TRANSFER};
    if (op->kind != PD_OP_SPLIT && op->kind != PD_OP_MERGE)
        return node_moves_step(p->n, leader, op->range, move_ops[op->kind], op->node, op_done, o);
    if (op->kind != PD_OP_SPLIT) return MERR_UNSUPPORTED;
    if (leader == H(p)->node_id) return node_ranges_split(p->n, op->key.p, op->key.len, op_done, o);
    Meridian__Range__SplitRequest q = MERIDIAN__RANGE__SPLIT_REQUEST__INIT;
    q.key = (ProtobufCBinaryData){op->key.len, op->key.p};
    uint8_t *buf = NULL;
    size_t len = 0;
    int rc = pb_pack(&q.base, &buf, &len);
    int64_t deadline = mtime_real_ns() / 1000 + PD_OP_WAIT / 1000;
    if (!rc)
        rc = rpc_node_call(p->n->rpc, leader, "range.Split", buf, len, deadline, on_split_reply, o,
                           NULL);
    free(buf);
    return rc;
}

static void run_ops(node_pd *p, const pd_cluster *c, const pd_ops *ops)
{
    for (size_t i = 0; i < ops->n; i++) {
        const pd_op *op = &ops->v[i];
        pd_running *slot = running_slot(p, 0);
        const pd_range *r = pd_cluster_range(c, op->range);
        if (!slot || !r) break;
        char desc[160];
        pd_op_format(op, desc, sizeof(desc));
        op_ctx *o = calloc(1, sizeof(*o));
        if (!o) break;
        *o = (op_ctx){.p = p, .seq = ++p->seq, .kind = op->kind, .range = op->range};
        *slot = (pd_running){.seq = o->seq,
                             .done_ns = 0,
                             .f = {.range = op->range,
                                   .range2 = op->range2,
                                   .kind = op->kind,
                                   .node = op->node,
                                   .from = op->from}};
        p->refs++;
        int rc = op_start(p, op, r->leader, o);
        if (rc) {
            *slot = (pd_running){0};
            p->refs--;
            free(o);
            p->ops_failed++;
            continue;
        }
        p->ops_started++;
        MLOG_I(MOD, "operation started", "op=\"%s\"", desc);
    }
}

/* ---- the PD loop ---- */

/* Range 1 (the PD's own state) gets 5 voters once 5 nodes are up, as a
 * policy over its span, so the schedulers add and move them like any
 * other replicas. Suspect nodes count as up: a missed heartbeat under load
 * must not flip the factor back and forth. */
static int range1_policy(node_pd *p, pd_cluster *c)
{
    const pd_range *r1 = pd_cluster_range(c, NODE_GENESIS_RANGE);
    size_t live = 0;
    for (size_t i = 0; i < c->n_nodes; i++) {
        pd_liveness l = pd_node_liveness(&c->nodes[i], &p->settings, c->now_ns);
        live += l == PD_LIVE || l == PD_SUSPECT;
    }
    if (!r1 || live < 5 || p->settings.default_replication_factor >= 5) return 0;
    pd_policy pol;
    memset(&pol, 0, sizeof(pol));
    pol.start = r1->start;
    pol.end = r1->end;
    pol.replication_factor = 5;
    return pd_cluster_add_policy(c, &pol);
}

static void pd_run(node_pd *p)
{
    replica *r1 = range1_leaseholder(p);
    int64_t now = mtime_mono_ns();
    if (!r1) {
        if (p->leading)
            MLOG_I(MOD, "placement driver no longer here", "node=%" PRIu64, H(p)->node_id);
        p->leading = 0;
        return;
    }
    become_leader(p, now);
    load_settings(r1, &p->settings);
    for (int i = 0; i < PD_MAX_INFLIGHT; i++)
        if (p->running[i].done_ns && now - p->running[i].done_ns >= PD_SETTLE_MS * MTIME_MS)
            p->running[i] = (pd_running){0};
    if (now - p->since_ns < PD_WARMUP_MS * MTIME_MS) return;
    scan_ctx reg = {0};
    uint8_t end[NODE_PREFIX_LEN];
    prefix_end(NODE_PREFIX, NODE_PREFIX_LEN, end);
    range_scan(replica_store(r1), NODE_PREFIX, NODE_PREFIX_LEN, end, NODE_PREFIX_LEN, RANGE_TS_MAX,
               0, 0, node_row, &reg, NULL);
    pd_cluster c;
    pd_cluster_init(&c);
    merr e = {0};
    pd_node_id *decom = NULL;
    size_t ndecom = node_decom_list(r1, &decom);
    int rc = pd_feed_build(&p->hbs, reg.ids, reg.n, decom, ndecom, p->since_ns, now, &c, &e);
    free(decom);
    if (!rc && pd_feed_stamp_learners(&p->learners, &c))
        rc = merr_set(&e, MERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < PD_MAX_INFLIGHT; i++)
        if (p->running[i].seq) rc = pd_cluster_add_inflight(&c, &p->running[i].f);
    if (!rc) rc = range1_policy(p, &c);
    pd_ops ops;
    pd_ops_init(&ops);
    /* Only the schedulers whose operations this executor runs (no merges
     * yet): a proposal it cannot carry out would claim its range. */
    if (!rc) rc = pd_schedule_repair(&c, &p->settings, &ops);
    if (!rc) rc = pd_schedule_split(&c, &p->settings, &ops);
    if (!rc) rc = pd_schedule_constraints(&c, &p->settings, &ops);
    if (!rc) rc = pd_schedule_rebalance(&c, &p->settings, &ops);
    if (!rc) rc = pd_schedule_leaders(&c, &p->settings, &ops);
    if (rc) {
        MLOG_W(MOD, "scheduling failed", "error=\"%s\"", ops.err.code ? ops.err.msg : e.msg);
    } else {
        p->runs++;
        run_ops(p, &c, &ops);
        node_moves_gc(p->n, &p->hbs, &c, &ops);
    }
    pd_ops_free(&ops);
    if (p->have_last) pd_cluster_free(&p->last);
    p->last = c; /* kept for operators (node_pd_status) */
    p->have_last = 1;
    free(reg.ids);
}

static void on_tick(uv_timer_t *t)
{
    node_pd *p = t->data;
    if (p->n->state != NODE_SERVING) return;
    int64_t now = mtime_mono_ns();
    if (now - p->last_hb_ns >= HB_MS * MTIME_MS) {
        p->last_hb_ns = now;
        send_heartbeat(p);
    }
    pd_run(p);
}

/* ---- pd.Settings ---- */

typedef struct set_ctx {
    node_pd *p;
    rpc_req *req;
    char name[64];
    char value[PD_SETTING_VALUE_MAX];
    uint8_t key[SETTING_PREFIX_LEN + 64];
    size_t klen;
} set_ctx;

static void settings_reply(node_pd *p, rpc_req *req, const pd_settings *s, const char *only,
                           int code, const char *msg)
{
    Meridian__Pd__SettingsResponse resp = MERIDIAN__PD__SETTINGS_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    Meridian__Pd__Setting st[32], *sp[32];
    char vals[32][PD_SETTING_VALUE_MAX];
    if (code) {
        kv_fill_error(H(p), host_find(H(p), NODE_GENESIS_RANGE), &err, code, msg, NULL);
        resp.error = &err;
    }
    for (size_t i = 0; !code && pd_setting_name(i) && i < 32; i++) {
        const char *name = pd_setting_name(i);
        if (only && strcmp(only, name) != 0) continue;
        meridian__pd__setting__init(&st[resp.n_settings]);
        pd_setting_get(s, name, vals[resp.n_settings], sizeof(vals[0]), NULL);
        st[resp.n_settings].name = (char *)name;
        st[resp.n_settings].value = vals[resp.n_settings];
        st[resp.n_settings].help = (char *)pd_setting_help(i);
        sp[resp.n_settings] = &st[resp.n_settings];
        resp.n_settings++;
    }
    resp.settings = sp;
    pb_reply(req, &resp.base);
}

static void on_setting_written(void *arg, int code, const char *msg, uint64_t ts)
{
    set_ctx *c = arg;
    (void)ts;
    node_pd *p = c->p;
    pd_settings s;
    replica *r1 = p->stopped ? NULL : host_find(H(p), NODE_GENESIS_RANGE);
    if (r1) load_settings(r1, &s);
    if (!code && !r1) code = MERR_CLOSED, msg = "node stopping";
    if (!code) {
        p->settings = s; /* live at once */
        MLOG_I(MOD, "setting changed", "name=%s value=%s", c->name, c->value);
    }
    settings_reply(p, c->req, &s, c->name, code, msg);
    free(c);
    unref(p);
}

static void settings_serve(node_pd *p, rpc_req *req);

typedef struct lease_ctx {
    node_pd *p;
    rpc_req *req;
} lease_ctx;

static void on_settings_lease(void *arg, int code)
{
    lease_ctx *l = arg;
    node_pd *p = l->p;
    if (code || p->stopped)
        settings_reply(p, l->req, NULL, NULL, MERR_NOT_LEADER, "range 1's lease did not come back");
    else
        settings_serve(p, l->req);
    free(l);
    unref(p);
}

/* A quiet range 1 lets its lease lapse: renew it before reading or writing
 * the settings, so they are never read from a replica that lost the lead. */
static void on_settings(void *arg, rpc_req *req)
{
    node_pd *p = arg;
    replica *r1 = range1_leaseholder(p);
    lease_ctx *l = r1 && !replica_is_leaseholder(r1) ? calloc(1, sizeof(*l)) : NULL;
    if (!l) {
        settings_serve(p, req);
        return;
    }
    *l = (lease_ctx){p, req};
    p->refs++;
    int rc = replica_lease_wait(r1, 0, on_settings_lease, l);
    if (rc == 1) return;
    p->refs--;
    free(l);
    if (rc == 0)
        settings_serve(p, req);
    else
        settings_reply(p, req, NULL, NULL, MERR_NOT_LEADER, "not range 1's leaseholder");
}

static void settings_serve(node_pd *p, rpc_req *req)
{
    Meridian__Pd__SettingsRequest *q =
        meridian__pd__settings_request__unpack(NULL, req->len, req->payload);
    if (!q) {
        rpc_reply(req, MERR_INVALID, "undecodable SettingsRequest", NULL, 0);
        return;
    }
    replica *r1 = host_find(H(p), NODE_GENESIS_RANGE);
    if (r1 && !replica_is_leaseholder(r1)) r1 = NULL;
    pd_settings s;
    merr e = {0};
    if (!r1) {
        /* Read and written at range 1's leaseholder only: a follower's copy
         * may lag, and the CLI follows the hint. */
        settings_reply(p, req, NULL, NULL, MERR_NOT_LEADER, "not range 1's leaseholder");
        goto out;
    }
    load_settings(r1, &s);
    int is_set = strcmp(q->op, "set") == 0;
    if (strcmp(q->op, "list") == 0) {
        settings_reply(p, req, &s, NULL, 0, NULL);
    } else if (!is_set && strcmp(q->op, "get") != 0) {
        settings_reply(p, req, &s, NULL, MERR_INVALID, "op must be list, get or set");
    } else if (!is_set) {
        char v[PD_SETTING_VALUE_MAX];
        if (pd_setting_get(&s, q->name, v, sizeof(v), &e))
            settings_reply(p, req, &s, NULL, e.code, e.msg);
        else
            settings_reply(p, req, &s, q->name, 0, NULL);
    } else if (pd_setting_set(&s, q->name, q->value, &e)) {
        settings_reply(p, req, &s, NULL, e.code, e.msg);
    } else {
        set_ctx *c = calloc(1, sizeof(*c));
        if (!c) {
            settings_reply(p, req, &s, NULL, MERR_NOMEM, "out of memory");
            goto out;
        }
        c->p = p;
        c->req = req;
        snprintf(c->name, sizeof(c->name), "%s", q->name);
        /* Stored in canonical form: what `get` shows is what was parsed. */
        pd_setting_get(&s, c->name, c->value, sizeof(c->value), NULL);
        memcpy(c->key, SETTING_PREFIX, SETTING_PREFIX_LEN);
        memcpy(c->key + SETTING_PREFIX_LEN, c->name, strlen(c->name));
        c->klen = SETTING_PREFIX_LEN + strlen(c->name);
        range_write w = {.key = c->key,
                         .klen = c->klen,
                         .val = (const uint8_t *)c->value,
                         .vlen = strlen(c->value)};
        p->refs++;
        if (replica_write(r1, &w, 1, mtime_mono_ns() + PD_OP_WAIT, on_setting_written, c, &e)) {
            p->refs--;
            free(c);
            settings_reply(p, req, &s, NULL, e.code, e.msg);
        }
    }
out:
    meridian__pd__settings_request__free_unpacked(q, NULL);
}

/* ---- for operators: pd.Nodes and the admin page ---- */

/* Replicas and leases on node id, as the range leaseholders report them. */
static void node_counts(const pd_cluster *c, pd_node_id id, uint32_t *reps, uint32_t *leads)
{
    *reps = *leads = 0;
    for (size_t r = 0; r < c->n_ranges; r++) {
        *reps += pd_range_has(&c->ranges[r], id);
        *leads += c->ranges[r].leader == id;
    }
}

int node_pd_replicas_on(node *n, uint64_t id, uint32_t *reps, int *known)
{
    node_pd *p = n->pd;
    if (!p || !p->leading || !p->have_last) return MERR_UNAVAILABLE;
    uint32_t leads;
    node_counts(&p->last, id, reps, &leads);
    *known = pd_cluster_node(&p->last, id) != NULL;
    return 0;
}

static void on_nodes(void *arg, rpc_req *req)
{
    node_pd *p = arg;
    Meridian__Pd__NodesResponse resp = MERIDIAN__PD__NODES_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    const pd_cluster *c = &p->last;
    size_t n = p->leading && p->have_last ? c->n_nodes : 0;
    Meridian__Pd__NodeInfo *ni = calloc(n ? n : 1, sizeof(*ni));
    Meridian__Pd__NodeInfo **np = calloc(n ? n : 1, sizeof(*np));
    if (!ni || !np) {
        kv_fill_error(H(p), NULL, &err, MERR_NOMEM, "out of memory", NULL);
        resp.error = &err;
    } else if (!p->leading || !p->have_last) {
        /* Not the PD (the hint says where it is), or one that is still
         * listening to heartbeats after taking over. */
        kv_fill_error(H(p), host_find(H(p), NODE_GENESIS_RANGE), &err,
                      p->leading ? MERR_UNAVAILABLE : MERR_NOT_LEADER,
                      p->leading ? "the placement driver is starting: retry"
                                 : "the placement driver runs on range 1's leaseholder",
                      NULL);
        resp.error = &err;
    }
    for (size_t i = 0; !resp.error && i < n; i++) {
        meridian__pd__node_info__init(&ni[i]);
        ni[i].node_id = c->nodes[i].id;
        ni[i].liveness =
            (char *)pd_liveness_name(pd_node_liveness(&c->nodes[i], &p->settings, c->now_ns));
        node_counts(c, c->nodes[i].id, &ni[i].replicas, &ni[i].leases);
        np[i] = &ni[i];
        resp.n_nodes++;
    }
    resp.nodes = np;
    pb_reply(req, &resp.base);
    free(ni);
    free(np);
}

/* ---- lifecycle ---- */

int node_pd_start(node *n, merr *e)
{
    node_pd *p = calloc(1, sizeof(*p));
    if (!p) return merr_set(e, MERR_NOMEM, "out of memory");
    p->n = n;
    p->refs = 1;
    pd_hb_table_init(&p->hbs);
    pd_settings_default(&p->settings);
    rpc_node_handle(n->rpc, "pd.Heartbeat", on_heartbeat, p);
    rpc_node_handle(n->rpc, "pd.Settings", on_settings, p);
    rpc_node_handle(n->rpc, "pd.Nodes", on_nodes, p);
    uv_timer_init(rpc_node_loop(n->rpc), &p->timer);
    p->timer.data = p;
    p->timer_on = 1;
    uv_timer_start(&p->timer, on_tick, PD_RUN_MS / 2, PD_RUN_MS);
    n->pd = p;
    return 0;
}

static void on_timer_closed(uv_handle_t *hd)
{
    unref(hd->data);
}

static void on_stopped(void *arg, rpc_req *req)
{
    (void)arg;
    rpc_reply(req, MERR_UNAVAILABLE, "the node is stopping", NULL, 0);
}

void node_pd_stop(node *n)
{
    node_pd *p = n->pd;
    if (!p) return;
    n->pd = NULL;
    p->stopped = 1;
    rpc_node_handle(n->rpc, "pd.Heartbeat", on_stopped, NULL);
    rpc_node_handle(n->rpc, "pd.Settings", on_stopped, NULL);
    rpc_node_handle(n->rpc, "pd.Nodes", on_stopped, NULL);
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_timer_closed); /* drops the first reference */
}

void node_pd_metrics_render(node *n, mbuf *out)
{
    node_pd *p = n->pd;
    if (!p) return;
    mbuf_printf(out,
                "# TYPE meridian_pd_leader gauge\n"
                "meridian_pd_leader %d\n"
                "# TYPE meridian_pd_heartbeats_total counter\n"
                "meridian_pd_heartbeats_total %" PRIu64 "\n"
                "# TYPE meridian_pd_runs_total counter\n"
                "meridian_pd_runs_total %" PRIu64 "\n"
                "# TYPE meridian_pd_ops_started_total counter\n"
                "meridian_pd_ops_started_total %" PRIu64 "\n"
                "# TYPE meridian_pd_ops_done_total counter\n"
                "meridian_pd_ops_done_total %" PRIu64 "\n"
                "# TYPE meridian_pd_ops_failed_total counter\n"
                "meridian_pd_ops_failed_total %" PRIu64 "\n",
                p->leading, p->heartbeats, p->runs, p->ops_started, p->ops_done, p->ops_failed);
}

void node_pd_page_render(node *n, mbuf *b)
{
    node_pd *p = n->pd;
    mbuf_printf(b, "<h2>Ranges per node</h2>");
    if (!p || !p->leading || !p->have_last) {
        replica *r1 = host_find(&n->host, NODE_GENESIS_RANGE);
        uint64_t at = r1 ? replica_leader_hint(r1) : p ? p->pd_hint : 0;
        mbuf_printf(b, "<p>The placement driver runs on range 1's leaseholder");
        if (at) mbuf_printf(b, " (node %" PRIu64 ")", at);
        mbuf_printf(b, ": its page shows the balance.</p>");
        return;
    }
    const pd_cluster *c = &p->last;
    uint32_t *reps = calloc(c->n_nodes ? c->n_nodes : 1, sizeof(*reps));
    uint32_t *leads = calloc(c->n_nodes ? c->n_nodes : 1, sizeof(*leads));
    uint32_t max = 1;
    for (size_t i = 0; reps && leads && i < c->n_nodes; i++) {
        node_counts(c, c->nodes[i].id, &reps[i], &leads[i]);
        if (reps[i] > max) max = reps[i];
    }
    mbuf_printf(b,
                "<p>%zu ranges, as the placement driver (this node) last saw them. Bars: "
                "replicas (grey), leases (green).</p><table><tr><th>node</th><th>liveness</th>"
                "<th>replicas</th><th>leases</th><th style=\"width:50%%\"></th></tr>",
                c->n_ranges);
    for (size_t i = 0; reps && leads && i < c->n_nodes; i++) {
        pd_liveness l = pd_node_liveness(&c->nodes[i], &p->settings, c->now_ns);
        mbuf_printf(b,
                    "<tr><td>%" PRIu64 "</td><td class=\"%s\">%s</td><td>%u</td><td>%u</td>"
                    "<td><div style=\"background:#bbb;height:8px;width:%u%%\"></div>"
                    "<div style=\"background:#4a4;height:8px;width:%u%%\"></div></td></tr>",
                    c->nodes[i].id, l == PD_LIVE ? "ok" : "bad", pd_liveness_name(l), reps[i],
                    leads[i], 100 * reps[i] / max, 100 * leads[i] / max);
    }
    mbuf_printf(b, "</table>");
    free(reps);
    free(leads);
}
