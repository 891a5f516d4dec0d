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
 * + name, text), the placement policies ("\x00sys/policy/" + name, text)
 * and the range directory (node_ranges.c).
 *
 * Every PD_RUN_MS the PD reads the settings, builds a snapshot
 * (placement/pd_feed.h), runs pd_schedule and starts up to PD_MAX_INFLIGHT
 * operations at the ranges' leaseholders. A failed operation is simply
 * proposed again by a later run: the schedulers are idempotent.
 *
 * Heartbeats live in node_pd_hb.c, pd.Settings in node_pd_settings.c,
 * pd.Policy in node_pd_policy.c,
 * their shared state in node_pd_int.h. */
#include "server/node_pd_int.h"

void node_pd_unref(node_pd *p)
{
    if (--p->refs == 0 && p->stopped) {
        pd_hb_table_free(&p->hbs);
        pd_learner_table_free(&p->learners);
        pd_missing_table_free(&p->missing);
        if (p->have_last) pd_cluster_free(&p->last);
        free(p);
    }
}

/* Range 1's replica here if it is where range 1 is served (it holds the
 * lease, or leads a quiet group whose lease lapsed and would renew on the
 * next request): the PD runs there. Heartbeats are not Paxos writes, so a
 * cluster with no writes keeps range 1 quiet and its lease lapsed. */
replica *node_pd_range1(node_pd *p)
{
    replica *r1 = host_find(H(p), NODE_GENESIS_RANGE);
    return r1 && replica_is_lease_owner(r1) ? r1 : NULL;
}

/* ---- the node registry in range 1 ---- */

/* Rows "<prefix><decimal node id>" (the registry, decommissions). */
typedef struct id_scan {
    size_t plen;
    pd_node_id *ids;
    size_t n, cap;
} id_scan;

static int id_row(void *arg, const uint8_t *key, size_t klen, const uint8_t *val, size_t vlen,
                  uint64_t ts)
{
    id_scan *c = arg;
    (void)val, (void)vlen, (void)ts;
    char digits[24];
    size_t dl = klen - c->plen;
    if (dl == 0 || dl >= sizeof(digits)) return 0;
    memcpy(digits, key + c->plen, dl);
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

size_t node_pd_scan_ids(replica *r1, const uint8_t *prefix, size_t plen, pd_node_id **ids)
{
    id_scan c = {.plen = plen};
    uint8_t end[64];
    if (plen > sizeof(end)) return *ids = NULL, 0;
    prefix_end(prefix, plen, end);
    range_scan(replica_store(r1), prefix, plen, end, plen, RANGE_TS_MAX, 0, 0, id_row, &c, NULL);
    *ids = c.ids;
    return c.n;
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
    if (s) {
        s->done_ns = mtime_mono_ns();
        s->ok = code == 0;
    }
    if (code) {
        p->ops_failed++;
        MLOG_D(MOD, "operation failed: a later run retries it",
               "op=%s range=%" PRIu64 " error=\"%s\"", pd_op_kind_name(o->kind), o->range,
               msg ? msg : merr_str(code));
    } else {
        p->ops_done++;
    }
    free(o);
    node_pd_unref(p);
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

/* A merge runs at the left range's leaseholder (server/node_merge.c). */
static int merge_start(node_pd *p, const pd_op *op, const pd_range *l, op_ctx *o)
{
    return node_merge_at(p->n, l->leader, op->range, l->start.p, l->start.len, op_done, o);
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
        int rc = op->kind == PD_OP_MERGE ? merge_start(p, op, r, o) : op_start(p, op, r->leader, o);
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
 * must not flip the factor back and forth. User policies (added first)
 * start at 0x01 or above; range 1's ends where the first of them starts,
 * so the two never overlap and range 1 is split there. */
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
    for (size_t i = 0; i < c->n_policies; i++) {
        const pd_key *s = &c->policies[i].start;
        if (pd_key_cmp(s, &pol.start) > 0 && (!pol.end.len || pd_key_cmp(s, &pol.end) < 0))
            pol.end = *s;
    }
    return pd_cluster_add_policy(c, &pol);
}

static void pd_run(node_pd *p)
{
    replica *r1 = node_pd_range1(p);
    int64_t now = mtime_mono_ns();
    if (!r1) {
        if (p->leading)
            MLOG_I(MOD, "placement driver no longer here", "node=%" PRIu64, H(p)->node_id);
        p->leading = 0;
        return;
    }
    node_pd_become_leader(p, now);
    node_pd_load_settings(r1, &p->settings);
    for (int i = 0; i < PD_MAX_INFLIGHT; i++)
        if (p->running[i].done_ns && now - p->running[i].done_ns >= PD_SETTLE_MS * MTIME_MS)
            p->running[i] = (pd_running){0};
    if (now - p->since_ns < PD_WARMUP_MS * MTIME_MS) return;
    pd_node_id *reg = NULL;
    size_t nreg = node_pd_scan_ids(r1, NODE_PREFIX, NODE_PREFIX_LEN, &reg);
    pd_cluster c;
    pd_cluster_init(&c);
    merr e = {0};
    pd_node_id *decom = NULL;
    size_t ndecom = node_decom_list(r1, &decom);
    int rc = pd_feed_build(&p->hbs, reg, nreg, decom, ndecom, p->since_ns, now, &c, &e);
    free(decom);
    if (!rc && pd_feed_stamp_learners(&p->learners, &c))
        rc = merr_set(&e, MERR_NOMEM, "out of memory");
    for (int i = 0; !rc && i < PD_MAX_INFLIGHT; i++) {
        pd_running *s = &p->running[i];
        if (s->seq && s->done_ns && s->ok && pd_inflight_visible(&c, &s->f)) *s = (pd_running){0};
        if (s->seq) rc = pd_cluster_add_inflight(&c, &s->f);
    }
    if (!rc && node_pd_add_policies(p, r1, &c)) rc = merr_set(&e, MERR_NOMEM, "out of memory");
    if (!rc) rc = range1_policy(p, &c);
    pd_ops ops;
    pd_ops_init(&ops);
    /* Only the schedulers whose operations this executor runs (no merges
     * yet): a proposal it cannot carry out would claim its range. */
    if (!rc) rc = pd_schedule_repair(&c, &p->settings, &ops);
    if (!rc) rc = pd_schedule_split(&c, &p->settings, &ops);
    if (!rc) rc = pd_schedule_merge(&c, &p->settings, &ops);
    if (!rc) rc = pd_schedule_constraints(&c, &p->settings, &ops);
    if (!rc) rc = pd_schedule_rebalance(&c, &p->settings, &ops);
    if (!rc) rc = pd_schedule_leaders(&c, &p->settings, &ops);
    if (rc) {
        MLOG_W(MOD, "scheduling failed", "error=\"%s\"", ops.err.code ? ops.err.msg : e.msg);
    } else {
        p->runs++;
        run_ops(p, &c, &ops);
        node_moves_gc(p->n, &p->hbs, &c, &ops);
        pd_missing *due = NULL;
        size_t ndue = 0;
        if (pd_missing_scan(&p->missing, &c, &p->hbs, PD_MISSING_GRACE_NS, &due, &ndue) == 0)
            node_moves_repair(p->n, due, ndue, &c, &ops);
        free(due);
    }
    pd_ops_free(&ops);
    if (p->have_last) pd_cluster_free(&p->last);
    p->last = c; /* kept for operators (node_pd_status) */
    p->have_last = 1;
    free(reg);
}

static void on_tick(uv_timer_t *t)
{
    node_pd *p = t->data;
    if (p->n->state != NODE_SERVING) return;
    int64_t now = mtime_mono_ns();
    if (now - p->last_hb_ns >= HB_MS * MTIME_MS) {
        p->last_hb_ns = now;
        node_pd_send_heartbeat(p);
    }
    pd_run(p);
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
    rpc_node_handle(n->rpc, "pd.Heartbeat", node_pd_on_heartbeat, p);
    rpc_node_handle(n->rpc, "pd.Settings", node_pd_on_settings, p);
    rpc_node_handle(n->rpc, "pd.Nodes", on_nodes, p);
    rpc_node_handle(n->rpc, "pd.Policy", node_pd_on_policy, p);
    uv_timer_init(rpc_node_loop(n->rpc), &p->timer);
    p->timer.data = p;
    p->timer_on = 1;
    uv_timer_start(&p->timer, on_tick, PD_RUN_MS / 2, PD_RUN_MS);
    n->pd = p;
    return 0;
}

static void on_timer_closed(uv_handle_t *hd)
{
    node_pd_unref(hd->data);
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
    rpc_node_handle(n->rpc, "pd.Policy", on_stopped, NULL);
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
