/* The placement driver's heartbeats (node_pd.c has the overview): every node
 * sends its replicas' stats to range 1's leaseholder; the PD side decodes
 * them into its volatile table (placement/pd_feed.h). */
#include "server/node_pd_int.h"

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
    /* Longer names than the model holds are dropped: such a node is in no
     * region a policy can name. */
    if (strlen(q->region) < sizeof(hb->region) && strlen(q->zone) < sizeof(hb->zone)) {
        memcpy(hb->region, q->region, strlen(q->region) + 1);
        memcpy(hb->zone, q->zone, strlen(q->zone) + 1);
    }
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
        r->span_age_ns = (int64_t)s->span_age_ms * MTIME_MS;
        r->leaseholder = s->leaseholder;
        if (key_from(&r->start, &d->start_key) || key_from(&r->end, &d->end_key) ||
            key_from(&r->mid_key, &s->mid_key) || key_from(&r->load_key, &s->load_key))
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

void node_pd_become_leader(node_pd *p, int64_t now)
{
    if (p->leading) return;
    p->leading = 1;
    p->since_ns = now;
    pd_hb_table_free(&p->hbs);
    pd_hb_table_init(&p->hbs);
    pd_learner_table_free(&p->learners);
    pd_missing_table_free(&p->missing);
    /* A snapshot from an earlier term here is stale (nodes joined since):
     * nobody is answered from it. */
    if (p->have_last) pd_cluster_free(&p->last);
    p->have_last = 0;
    MLOG_I(MOD, "placement driver leading here", "node=%" PRIu64, H(p)->node_id);
}

/* 0 when taken; MERR_NOT_LEADER when this node is not the PD. */
static int hb_ingest(node_pd *p, const uint8_t *buf, size_t len, uint64_t *split_above,
                     double *split_qps)
{
    replica *r1 = node_pd_range1(p);
    if (!r1) return MERR_NOT_LEADER;
    Meridian__Pd__HeartbeatRequest *q = meridian__pd__heartbeat_request__unpack(NULL, len, buf);
    if (!q) return MERR_INVALID;
    int64_t now = mtime_mono_ns();
    node_pd_become_leader(p, now);
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
    *split_qps = p->settings.range_split_qps;
    return rc;
}

void node_pd_on_heartbeat(void *arg, rpc_req *req)
{
    node_pd *p = arg;
    Meridian__Pd__HeartbeatResponse resp = MERIDIAN__PD__HEARTBEAT_RESPONSE__INIT;
    Meridian__Kv__Error err = MERIDIAN__KV__ERROR__INIT;
    int rc = hb_ingest(p, req->payload, req->len, &resp.split_above_bytes, &resp.split_qps);
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
    uint8_t **loads = calloc(n ? n : 1, sizeof(*loads));
    uint64_t(*acks)[2][PAXOS_MAX_NODES] = calloc(n ? n : 1, sizeof(*acks));
    int rc = st && sp && dp && mids && loads && acks ? 0 : MERR_NOMEM;
    uint8_t lk[PD_LOADKEY_KEY_MAX];
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
        int64_t now = mtime_mono_ns();
        /* Leaseholders near split_qps sample their requests (the PD splits
         * only above it: the key is ready by the time a range gets there). */
        double sample_qps = st[i].leaseholder ? p->split_qps * PD_SAMPLE_FRACTION : 0;
        size_t lkl = 0;
        replica_load(r, now, sample_qps, &st[i].reads_per_s, &st[i].writes_per_s, lk, &lkl);
        if (lkl && (loads[i] = malloc(lkl))) {
            memcpy(loads[i], lk, lkl);
            st[i].load_key = (ProtobufCBinaryData){lkl, loads[i]};
        }
        st[i].span_age_ms = (uint64_t)(replica_span_age_ns(r, now) / MTIME_MS) + 1;
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
        q.region = p->n->cfg.loc.region;
        q.zone = p->n->cfg.loc.zone;
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
    for (size_t i = 0; loads && i < n; i++) free(loads[i]);
    free(mids);
    free(loads);
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
    if (r && !r->error) p->split_above = r->split_above_bytes, p->split_qps = r->split_qps;
    /* A node without range 1 learns where the PD is from the refusal. */
    if (code || !r)
        p->pd_hint = 0;
    else if (r->error)
        p->pd_hint = r->error->leader_hint;
    if (r) meridian__pd__heartbeat_response__free_unpacked(r, NULL);
    node_pd_unref(p);
}

void node_pd_send_heartbeat(node_pd *p)
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
        double qps = 0;
        if (hb_ingest(p, buf, len, &above, &qps) == 0) p->split_above = above, p->split_qps = qps;
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
