/* Multi-Paxos core: group lifecycle, paxos_step dispatch, the update (output)
 * buffer, durability gating of outgoing messages, ticks and apply.
 *
 * Durability gating: every step that changes state an acceptor has vouched for
 * (promised ballot, accepted entries, truncation) takes a persist sequence
 * number (paxos_persist_begin). A message whose meaning depends on durable
 * state (paxos_emit(..., durable=1)) is held while any sequence handed out is
 * not yet acknowledged, and is released by the PERSISTED event that covers it.
 * Messages to ourselves take the same path and are delivered in-process. */
#include "replication/paxos_internal.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

void paxos_config_default(paxos_config *cfg, uint64_t group, paxos_node_id self)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->group_id = group;
    cfg->self = self;
    cfg->heartbeat_ticks = 2;
    cfg->election_ticks = 10;
    cfg->lease_ns = 3000000000LL;
    cfg->window = 64;
    cfg->max_batch = 64;
    cfg->max_batch_bytes = 256 * 1024;
    cfg->max_msg_entries = 32;
    cfg->snapshot_chunk = 64 * 1024;
    cfg->snapshot_window = 16;
    cfg->quiesce_ticks = 20;
    cfg->seed = 1;
}

const char *paxos_role_name(paxos_role r)
{
    switch (r) {
    case PAXOS_FOLLOWER: return "follower";
    case PAXOS_PRECANDIDATE: return "precandidate";
    case PAXOS_CANDIDATE: return "candidate";
    case PAXOS_LEADER: return "leader";
    }
    return "?";
}

const char *paxos_msg_type_name(int t)
{
    static const char *names[] = {"none",     "prevote",    "prevote_reply", "prepare",  "promise",
                                  "accept",   "accepted",   "heartbeat",     "hb_reply", "reject",
                                  "snapshot", "snap_reply", "timeout_now"};
    return t >= 0 && t <= PAXOS_MSG_TYPE_MAX ? names[t] : "?";
}

void paxos_msg_free(paxos_msg *m)
{
    for (uint32_t i = 0; i < m->nentries; i++) free(m->entries[i].data);
    free(m->entries);
    free(m->data);
    memset(m, 0, sizeof(*m));
}

int paxos_msg_copy(paxos_msg *dst, const paxos_msg *src)
{
    *dst = *src;
    dst->entries = NULL;
    dst->data = NULL;
    dst->nentries = 0;
    if (src->nentries) {
        dst->entries = calloc(src->nentries, sizeof(*dst->entries));
        if (!dst->entries) goto err;
        for (uint32_t i = 0; i < src->nentries; i++) {
            if (paxos_entry_copy(&dst->entries[i], &src->entries[i])) goto err;
            dst->nentries++;
        }
    }
    if (src->len) {
        dst->data = malloc(src->len);
        if (!dst->data) goto err;
        memcpy(dst->data, src->data, src->len);
    }
    return 0;
err:
    paxos_msg_free(dst);
    return MERR_NOMEM;
}

void paxos_update_init(paxos_update *u)
{
    memset(u, 0, sizeof(*u));
}

void paxos_update_free(paxos_update *u)
{
    for (size_t i = 0; i < u->nmsgs; i++) paxos_msg_free(&u->msgs[i]);
    for (size_t i = 0; i < u->npersist; i++) free(u->persist[i].data);
    for (size_t i = 0; i < u->nchosen; i++) free(u->chosen[i].data);
    free(u->msgs);
    free(u->persist);
    free(u->chosen);
    free(u->install.data);
    free(u->dropped);
    paxos_update_init(u);
}

static uint64_t rng_next(paxos_group *g)
{
    /* splitmix64: the group's own deterministic stream. */
    uint64_t z = (g->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void paxos_reset_timeout(paxos_group *g)
{
    int base = g->cfg.election_ticks;
    g->elapsed = 0;
    g->timeout = base + (int)(rng_next(g) % (uint64_t)base);
}

int paxos_group_new(const paxos_config *cfg, const paxos_members *members, const paxos_restore *rs,
                    paxos_group **out)
{
    *out = NULL;
    if (!cfg || !members || cfg->self == 0 || cfg->election_ticks <= 0 ||
        cfg->heartbeat_ticks <= 0 || cfg->window == 0 || cfg->max_batch == 0 ||
        cfg->max_msg_entries == 0 || cfg->snapshot_chunk == 0 || cfg->snapshot_window == 0 ||
        members->nvoters == 0 || members->nvoters > PAXOS_MAX_NODES ||
        members->nlearners > PAXOS_MAX_NODES)
        return MERR_INVALID;
    paxos_group *g = calloc(1, sizeof(*g));
    if (!g) return MERR_NOMEM;
    g->cfg = *cfg;
    g->rng = cfg->seed ^ ((uint64_t)cfg->self << 32) ^ cfg->group_id;
    g->base = 1;
    g->snap_members = *members;
    paxos_reset_timeout(g);
    if (rs) {
        g->promised = rs->promised;
        g->max_round = rs->promised.round;
        if (rs->snap_slot) {
            g->snap_slot = rs->snap_slot;
            g->snap_members = rs->snap_members;
            g->base = rs->snap_slot + 1;
            if (rs->snap_len) {
                g->snap_data = malloc(rs->snap_len);
                if (!g->snap_data) goto nomem;
                memcpy(g->snap_data, rs->snap_data, rs->snap_len);
                g->snap_len = rs->snap_len;
            }
        }
        for (size_t i = 0; i < rs->nentries; i++) {
            const paxos_entry *e = &rs->entries[i];
            if (e->slot < g->base || e->type == PAXOS_ENTRY_EMPTY) continue;
            if (paxos_log_set(g, e->slot, e->ballot, e->type, e->data, e->len)) goto nomem;
            if (e->ballot.round > g->max_round) g->max_round = e->ballot.round;
        }
        g->chosen = g->applied = rs->applied > g->snap_slot ? rs->applied : g->snap_slot;
        if (g->chosen > paxos_log_last(g) && g->chosen >= g->base) {
            /* Applied entries must be in the log; a store that lost them is corrupt. */
            paxos_group_free(g);
            return MERR_CORRUPT;
        }
        /* We may have granted a lease we no longer remember: promise nobody
         * until one lease length has surely passed (set on the first event).
         * Not if we never promised a ballot: a grant rides on an accept or a
         * heartbeat in the promised ballot, and its reply waits until that
         * promise is durable, so no leader ever counted a grant of ours. A
         * group born of a split is restored so; blocking it would keep the
         * new range leaderless for a whole lease. */
        g->restarted = rs->promised.round != 0;
    }
    *out = g;
    return 0;
nomem:
    paxos_group_free(g);
    return MERR_NOMEM;
}

void paxos_group_free(paxos_group *g)
{
    if (!g) return;
    for (size_t i = 0; i < g->n; i++) free(g->log[i].e.data);
    free(g->log);
    free(g->cfgs);
    for (size_t i = 0; i < g->nheld; i++) paxos_msg_free(&g->held[i].m);
    free(g->held);
    for (size_t i = 0; i < g->nprops; i++) free(g->props[i].data);
    free(g->props);
    free(g->dropped);
    for (size_t i = 0; i < g->nrec; i++) free(g->rec[i].data);
    free(g->rec);
    free(g->snap_data);
    free(g->rx_data);
    free(g);
}

/* Starts (or joins) this step's persist batch. */
uint64_t paxos_persist_begin(paxos_group *g, paxos_update *u)
{
    if (u->persist_seq == 0 || u->persist_seq != g->pseq) u->persist_seq = ++g->pseq;
    return u->persist_seq;
}

int paxos_persist_slot(paxos_group *g, paxos_update *u, paxos_slot *s)
{
    s->pseq = paxos_persist_begin(g, u);
    return paxos_push_entry(&u->persist, &u->npersist, &u->cap_persist, &s->e);
}

static int push_msg(paxos_update *u, paxos_msg *m)
{
    if (u->nmsgs == u->cap_msgs) {
        size_t nc = u->cap_msgs ? u->cap_msgs * 2 : 8;
        paxos_msg *nm = realloc(u->msgs, nc * sizeof(*nm));
        if (!nm) return MERR_NOMEM;
        u->msgs = nm;
        u->cap_msgs = nc;
    }
    u->msgs[u->nmsgs++] = *m;
    memset(m, 0, sizeof(*m));
    return 0;
}

/* Sends m (taking ownership of its contents). durable: hold it until every
 * persist sequence handed out so far is acknowledged. */
int paxos_emit(paxos_group *g, paxos_update *u, const paxos_msg *cm, int durable)
{
    paxos_msg m = *cm;
    m.group = g->cfg.group_id;
    m.from = g->cfg.self;
    if (durable && g->pseq > g->persisted) {
        if (g->nheld == g->capheld) {
            size_t nc = g->capheld ? g->capheld * 2 : 8;
            paxos_held *nh = realloc(g->held, nc * sizeof(*nh));
            if (!nh) {
                paxos_msg_free(&m);
                return MERR_NOMEM;
            }
            g->held = nh;
            g->capheld = nc;
        }
        g->held[g->nheld].seq = g->pseq;
        g->held[g->nheld++].m = m;
        return 0;
    }
    if (m.to == g->cfg.self) {
        int rc = paxos_deliver_local(g, &m, u);
        paxos_msg_free(&m);
        return rc;
    }
    int rc = push_msg(u, &m);
    if (rc) paxos_msg_free(&m);
    return rc;
}

int paxos_emit_new(paxos_group *g, paxos_update *u, int type, paxos_node_id to, paxos_msg *m)
{
    m->type = (uint8_t)type;
    m->to = to;
    return paxos_emit(g, u, m, 0);
}

void paxos_become_follower(paxos_group *g, paxos_ballot b, paxos_node_id leader)
{
    if (g->role != PAXOS_FOLLOWER || g->leader != leader) paxos_reset_timeout(g);
    if (b.round > g->max_round) g->max_round = b.round;
    g->role = PAXOS_FOLLOWER;
    g->leader = leader;
    g->transfer_to = 0;
    g->transfer_released = 0;
    g->xfer_from = 0;
    g->cfg_op = 0; /* a queued membership change is dropped with the leadership */
    for (size_t i = 0; i < g->nprops; i++) {
        free(g->props[i].data);
        if (g->ndropped == g->capdropped) {
            size_t nc = g->capdropped ? g->capdropped * 2 : 16;
            uint64_t *nd = realloc(g->dropped, nc * sizeof(*nd));
            if (!nd) continue; /* the client times out instead */
            g->dropped = nd;
            g->capdropped = nc;
        }
        g->dropped[g->ndropped++] = g->props[i].id;
    }
    g->nprops = 0;
    for (size_t i = 0; i < g->nrec; i++) free(g->rec[i].data);
    g->nrec = 0;
}

/* Hands out chosen entries that are durable locally, in order. */
int paxos_advance_apply(paxos_group *g, paxos_update *u)
{
    while (g->applied < g->chosen) {
        paxos_slot *s = paxos_log_get(g, g->applied + 1);
        if (!s || s->e.type == PAXOS_ENTRY_EMPTY) return MERR_INTERNAL;
        if (s->pseq > g->persisted) break;
        int rc = paxos_push_entry(&u->chosen, &u->nchosen, &u->cap_chosen, &s->e);
        if (rc) return rc;
        g->applied++;
        if (s->e.type == PAXOS_ENTRY_CONFIG && g->role == PAXOS_LEADER) {
            paxos_members m;
            if (paxos_members_decode(s->e.data, s->e.len, &m) == 0 &&
                !paxos_members_is_voter(&m, g->cfg.self)) {
                /* A recovered change removed us: we no longer lead. */
                paxos_become_follower(g, g->ballot, 0);
                continue;
            }
            paxos_peers_sync(g);
        }
    }
    if (g->applied - g->snap_slot > 4096) u->want_snapshot = 1;
    return 0;
}

static int on_persisted(paxos_group *g, uint64_t seq, paxos_update *u)
{
    if (seq > g->pseq) return MERR_INVALID;
    if (seq <= g->persisted) return 0;
    g->persisted = seq;
    /* Release held messages in order; delivering one locally may hold more. */
    size_t keep = 0, n = g->nheld;
    paxos_held *rel = NULL;
    size_t nrel = 0;
    if (n) {
        rel = malloc(n * sizeof(*rel));
        if (!rel) return MERR_NOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        if (g->held[i].seq <= seq)
            rel[nrel++] = g->held[i];
        else
            g->held[keep++] = g->held[i];
    }
    g->nheld = keep;
    int rc = 0;
    for (size_t i = 0; i < nrel; i++) {
        if (!rc)
            rc = paxos_emit(g, u, &rel[i].m, 0);
        else
            paxos_msg_free(&rel[i].m);
    }
    free(rel);
    if (rc) return rc;
    if (g->role == PAXOS_LEADER) {
        rc = paxos_leader_self_persisted(g, u);
        if (rc) return rc;
    }
    return paxos_advance_apply(g, u);
}

int paxos_deliver_local(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    switch (m->type) {
    case PAXOS_MSG_PREPARE: return paxos_on_prepare(g, m, u);
    case PAXOS_MSG_PROMISE: return paxos_on_promise(g, m, u);
    case PAXOS_MSG_REJECT: return 0;
    default: return 0; /* the leader handles its own accepts without messages */
    }
}

static int on_reject(paxos_group *g, const paxos_msg *m)
{
    if (m->ballot.round > g->max_round) g->max_round = m->ballot.round;
    if (g->role != PAXOS_FOLLOWER && paxos_ballot_cmp(m->ballot, g->ballot) > 0)
        paxos_become_follower(g, m->ballot, 0);
    return 0;
}

static int on_message(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    if (m->group != g->cfg.group_id || m->to != g->cfg.self || m->from == 0 ||
        m->from == g->cfg.self || m->type == PAXOS_MSG_NONE || m->type > PAXOS_MSG_TYPE_MAX)
        return MERR_INVALID;
    if (m->ballot.round > g->max_round) g->max_round = m->ballot.round;
    switch (m->type) {
    case PAXOS_MSG_PREVOTE: return paxos_on_prevote(g, m, u);
    case PAXOS_MSG_PREVOTE_REPLY: return paxos_on_prevote_reply(g, m, u);
    case PAXOS_MSG_PREPARE: return paxos_on_prepare(g, m, u);
    case PAXOS_MSG_PROMISE: return paxos_on_promise(g, m, u);
    case PAXOS_MSG_ACCEPT: return paxos_on_accept(g, m, u);
    case PAXOS_MSG_HEARTBEAT: return paxos_on_heartbeat(g, m, u);
    case PAXOS_MSG_ACCEPTED:
    case PAXOS_MSG_HEARTBEAT_REPLY: return paxos_on_accepted(g, m, u);
    case PAXOS_MSG_REJECT: return on_reject(g, m);
    case PAXOS_MSG_SNAPSHOT: return paxos_on_snapshot(g, m, u);
    case PAXOS_MSG_SNAPSHOT_REPLY: return paxos_on_snapshot_reply(g, m, u);
    case PAXOS_MSG_TIMEOUT_NOW:
        /* Only from the leader we follow in the ballot we promised. */
        if (m->from != g->leader || paxos_ballot_cmp(m->ballot, g->promised) != 0) return 0;
        g->xfer_from = m->from;
        g->xfer_epoch = m->lease_epoch;
        return paxos_campaign(g, 0, 1, u);
    }
    return MERR_INVALID;
}

static int on_tick(paxos_group *g, paxos_update *u)
{
    if (g->role == PAXOS_LEADER) return paxos_leader_tick(g, u);
    g->elapsed++;
    if (g->elapsed >= g->timeout && paxos_may_campaign(g)) {
        g->xfer_from = 0;
        return paxos_campaign(g, 1, 0, u);
    }
    return 0;
}

static int on_snapshot_taken(paxos_group *g, const paxos_event *ev, paxos_update *u)
{
    if (ev->slot > g->applied || ev->slot < g->base || (ev->len && !ev->data))
        return ev->slot == g->snap_slot ? 0 : MERR_INVALID;
    uint8_t *copy = NULL;
    if (ev->len) {
        copy = malloc(ev->len);
        if (!copy) return MERR_NOMEM;
        memcpy(copy, ev->data, ev->len);
    }
    /* Peers mid-stream keep streaming the old snapshot? No: restart them. */
    for (size_t i = 0; i < g->npeers; i++) g->peers[i].snap_sending = 0;
    paxos_members_at(g, ev->slot + 1, &g->snap_members);
    free(g->snap_data);
    g->snap_data = copy;
    g->snap_len = ev->len;
    g->snap_slot = ev->slot;
    paxos_log_truncate_front(g, ev->slot);
    u->truncate_upto = ev->slot;
    paxos_persist_begin(g, u);
    return 0;
}

int paxos_step(paxos_group *g, const paxos_event *ev, paxos_update *u)
{
    if (!g || !ev || !u) return MERR_INVALID;
    g->now = ev->now;
    if (g->restarted) {
        g->restarted = 0;
        g->grant_to = UINT32_MAX; /* nobody: blocks every promise */
        g->grant_epoch = UINT64_MAX;
        g->grant_until = ev->now.latest + g->cfg.lease_ns;
    }
    int rc;
    switch (ev->type) {
    case PAXOS_EV_MESSAGE:
        if (!ev->msg) return MERR_INVALID;
        rc = on_message(g, ev->msg, u);
        break;
    case PAXOS_EV_TICK: rc = on_tick(g, u); break;
    case PAXOS_EV_PROPOSE: rc = paxos_leader_propose(g, ev, u); break;
    case PAXOS_EV_PERSISTED: rc = on_persisted(g, ev->seq, u); break;
    case PAXOS_EV_SNAPSHOT_TAKEN: rc = on_snapshot_taken(g, ev, u); break;
    case PAXOS_EV_SNAPSHOT_INSTALLED: rc = paxos_snapshot_installed(g, ev->slot, u); break;
    case PAXOS_EV_CONFIG: rc = paxos_leader_config(g, ev, u); break;
    case PAXOS_EV_TRANSFER: rc = paxos_leader_transfer(g, ev->node, u); break;
    case PAXOS_EV_LIVENESS:
        if (g->role == PAXOS_LEADER) {
            /* Node liveness stands in for replies only while we are quiet: an
             * active leader must hear from the group itself (a one-way cut can
             * leave node heartbeats flowing while our messages do not). */
            paxos_peer *p = g->quiesced ? paxos_peer_find(g, ev->node) : NULL;
            if (p) p->active = 1;
        } else if (g->quiesced && ev->node == g->leader && ev->node != 0) {
            g->elapsed = 0;
        }
        rc = 0;
        break;
    case PAXOS_EV_CAMPAIGN: rc = paxos_campaign(g, 0, 0, u); break;
    case PAXOS_EV_RENEW: rc = paxos_leader_renew(g, u); break;
    case PAXOS_EV_FLUSH: rc = g->role == PAXOS_LEADER ? paxos_leader_flush(g, u) : 0; break;
    default: return MERR_INVALID;
    }
    if (!rc) rc = paxos_advance_apply(g, u);
    if (g->ndropped) { /* hand the list over (appending to what u already has) */
        uint64_t *nd = realloc(u->dropped, (u->ndropped + g->ndropped) * sizeof(*nd));
        if (nd) {
            memcpy(nd + u->ndropped, g->dropped, g->ndropped * sizeof(*nd));
            u->dropped = nd;
            u->ndropped += g->ndropped;
            g->ndropped = 0;
        }
    }
    return rc;
}

paxos_role paxos_get_role(const paxos_group *g)
{
    return g->role;
}
paxos_node_id paxos_get_leader(const paxos_group *g)
{
    return g->leader;
}
paxos_ballot paxos_get_ballot(const paxos_group *g)
{
    return g->promised;
}
uint64_t paxos_get_chosen(const paxos_group *g)
{
    return g->chosen;
}
uint64_t paxos_get_applied(const paxos_group *g)
{
    return g->applied;
}
uint64_t paxos_get_last(const paxos_group *g)
{
    return paxos_log_last(g);
}
uint64_t paxos_get_first(const paxos_group *g)
{
    return g->base;
}
size_t paxos_get_queued(const paxos_group *g)
{
    return g->nprops;
}
int paxos_get_quiesced(const paxos_group *g)
{
    return g->quiesced;
}

void paxos_get_members(const paxos_group *g, paxos_members *committed, paxos_members *latest)
{
    if (committed) paxos_members_at(g, g->chosen + 1, committed);
    if (latest) paxos_members_at(g, paxos_log_last(g) + 1, latest);
}

void paxos_get_snapshot(const paxos_group *g, uint64_t *slot, paxos_members *members)
{
    if (slot) *slot = g->snap_slot;
    if (members) *members = g->snap_members;
}

void paxos_get_grant(const paxos_group *g, paxos_node_id *to, int64_t *until)
{
    *to = g->restarted ? UINT32_MAX : g->grant_to; /* blocked from the first event on */
    *until = g->restarted ? INT64_MAX : g->grant_until;
}
