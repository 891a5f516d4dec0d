/* The proposer/leader side of Multi-Paxos: pre-vote and phase 1 for all open
 * slots at once, recovery of accepted values (no-ops for holes), phase 2
 * pipelined and batched, the commit point, heartbeats, check-quorum,
 * quiescence, leases, snapshot streaming and leadership transfer.
 *
 * Phase 1 quorum chain (membership safety): a candidate that knows the chosen
 * prefix up to c prepares every slot > c. The config governing slot c+1 is C0;
 * if the recovered value of some slot s is a CONFIG C1, slots > s are governed
 * by C1, and so on. The candidate wins only with promises from a majority of
 * every config in that chain, so it meets a majority of whichever config chose
 * the slots it is recovering. */
#include "replication/paxos_internal.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

paxos_peer *paxos_peer_find(paxos_group *g, paxos_node_id id)
{
    for (size_t i = 0; i < g->npeers; i++)
        if (g->peers[i].id == id) return &g->peers[i];
    return NULL;
}

static paxos_peer *peer_add(paxos_group *g, paxos_node_id id)
{
    paxos_peer *p = paxos_peer_find(g, id);
    if (p || g->npeers == sizeof(g->peers) / sizeof(g->peers[0])) return p;
    p = &g->peers[g->npeers++];
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->next = paxos_log_last(g) + 1;
    p->active = 1;
    return p;
}

static void add_members(paxos_group *g, const paxos_members *m)
{
    for (uint32_t i = 0; i < m->nvoters; i++) peer_add(g, m->voters[i]);
    for (uint32_t i = 0; i < m->nlearners; i++) peer_add(g, m->learners[i]);
}

/* Peers = everyone in the committed or the newest config (self included, so
 * the lease and commit counts treat us like any acceptor). */
void paxos_peers_sync(paxos_group *g)
{
    paxos_members c, l;
    paxos_get_members(g, &c, &l);
    add_members(g, &c);
    add_members(g, &l);
    size_t k = 0;
    for (size_t i = 0; i < g->npeers; i++) {
        paxos_node_id id = g->peers[i].id;
        if (paxos_members_is_voter(&c, id) || paxos_members_is_learner(&c, id) ||
            paxos_members_is_voter(&l, id) || paxos_members_is_learner(&l, id))
            g->peers[k++] = g->peers[i];
    }
    g->npeers = k;
}

/* ---- elections ---- */

static int send_prepare(paxos_group *g, paxos_node_id to, paxos_update *u)
{
    paxos_msg m = {0};
    m.type = PAXOS_MSG_PREPARE;
    m.to = to;
    m.ballot = g->ballot;
    m.slot = g->rec_base;
    m.commit = g->chosen;
    m.lease_start = g->now.earliest;
    m.lease_epoch = g->lease_epoch;
    if (g->xfer_from) {
        m.flags = PAXOS_F_TRANSFER;
        m.aux = g->xfer_from;
        m.lease_epoch = g->xfer_epoch;
    }
    return paxos_emit(g, u, &m, 0);
}

/* May this replica campaign? If it is a voter of the committed or of the
 * newest config in its log. The newest may be a stale, never-chosen value
 * from an old ballot that leaves us out while the committed one has us: a
 * voter must not silence itself on such an entry (phase 1 decides anyway). */
int paxos_may_campaign(const paxos_group *g)
{
    paxos_members c, l;
    paxos_get_members(g, &c, &l);
    return paxos_members_is_voter(&c, g->cfg.self) || paxos_members_is_voter(&l, g->cfg.self);
}

int paxos_campaign(paxos_group *g, int prevote, int transfer, paxos_update *u)
{
    paxos_members latest, committed;
    paxos_get_members(g, &committed, &latest);
    if (!paxos_may_campaign(g)) return 0;
    paxos_reset_timeout(g);
    g->leader = 0;
    g->quiesced = 0;
    g->transfer_to = 0;
    g->transfer_released = 0;
    uint64_t round = g->max_round > g->promised.round ? g->max_round : g->promised.round;
    g->ballot.round = round + 1;
    g->ballot.node = g->cfg.self;
    g->npeers = 0;
    paxos_peers_sync(g);
    for (size_t i = 0; i < g->nrec; i++) free(g->rec[i].data);
    g->nrec = 0;
    if (!transfer) g->xfer_from = 0;
    if (prevote && (latest.nvoters > 1 || committed.nvoters > 1)) {
        g->role = PAXOS_PRECANDIDATE;
        for (size_t i = 0; i < g->npeers; i++) {
            paxos_node_id id = g->peers[i].id;
            if (id == g->cfg.self ||
                (!paxos_members_is_voter(&latest, id) && !paxos_members_is_voter(&committed, id)))
                continue;
            paxos_msg m = {0};
            m.ballot = g->ballot;
            m.slot = g->chosen;
            int rc = paxos_emit_new(g, u, PAXOS_MSG_PREVOTE, id, &m);
            if (rc) return rc;
        }
        paxos_peer *me = paxos_peer_find(g, g->cfg.self);
        if (me) me->prevoted = 1;
        return 0;
    }
    g->role = PAXOS_CANDIDATE;
    g->rec_base = g->chosen + 1;
    g->promise_max = paxos_log_last(g);
    if (g->max_round < g->ballot.round) g->max_round = g->ballot.round;
    /* Self first: our own promise goes through the acceptor path and is held
     * until our promised ballot is durable, like anyone else's. */
    int rc = send_prepare(g, g->cfg.self, u);
    for (size_t i = 0; !rc && i < g->npeers; i++)
        if (g->peers[i].id != g->cfg.self) rc = send_prepare(g, g->peers[i].id, u);
    return rc;
}

int paxos_on_prevote_reply(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    if (g->role != PAXOS_PRECANDIDATE || paxos_ballot_cmp(m->ballot, g->ballot) != 0) return 0;
    if (m->flags & PAXOS_F_REJECT) return 0;
    paxos_peer *p = paxos_peer_find(g, m->from);
    if (!p) return 0;
    p->prevoted = 1;
    paxos_node_id ids[2 * PAXOS_MAX_NODES];
    size_t n = 0;
    for (size_t i = 0; i < g->npeers; i++)
        if (g->peers[i].prevoted) ids[n++] = g->peers[i].id;
    /* Pre-votes only spare a healthy leader from disruption; a majority of
     * either config will do (phase 1 then needs the whole chain). */
    paxos_members c, l;
    paxos_get_members(g, &c, &l);
    if (!paxos_quorum(&c, ids, n) && !paxos_quorum(&l, ids, n)) return 0;
    return paxos_campaign(g, 0, 0, u);
}

/* The value to re-propose at slot s: the highest-ballot accepted one seen. */
static paxos_entry *rec_at(paxos_group *g, uint64_t s)
{
    if (s < g->rec_base || s - g->rec_base >= g->nrec) return NULL;
    paxos_entry *e = &g->rec[s - g->rec_base];
    return e->type == PAXOS_ENTRY_EMPTY ? NULL : e;
}

static int rec_merge(paxos_group *g, const paxos_entry *e)
{
    if (e->slot < g->rec_base || e->type == PAXOS_ENTRY_EMPTY) return 0;
    size_t i = (size_t)(e->slot - g->rec_base);
    if (i >= 1u << 20) return MERR_INVALID;
    if (i >= g->nrec) {
        paxos_entry *nr = realloc(g->rec, (i + 1) * sizeof(*nr));
        if (!nr) return MERR_NOMEM;
        memset(nr + g->nrec, 0, (i + 1 - g->nrec) * sizeof(*nr));
        g->rec = nr;
        g->nrec = i + 1;
    }
    paxos_entry *cur = &g->rec[i];
    if (cur->type != PAXOS_ENTRY_EMPTY && paxos_ballot_cmp(cur->ballot, e->ballot) >= 0) return 0;
    free(cur->data);
    int rc = paxos_entry_copy(cur, e);
    if (rc) memset(cur, 0, sizeof(*cur));
    return rc;
}

/* Checks the quorum chain; sends prepares to voters newly found in it.
 * Returns 1 when won. */
static int chain_won(paxos_group *g, paxos_update *u, int *rc)
{
    paxos_node_id ids[2 * PAXOS_MAX_NODES];
    size_t n = 0;
    for (size_t i = 0; i < g->npeers; i++)
        if (g->peers[i].promised) ids[n++] = g->peers[i].id;
    paxos_members m;
    paxos_members_at(g, g->rec_base, &m);
    int won = paxos_quorum(&m, ids, n);
    for (uint64_t s = g->rec_base; s <= g->promise_max; s++) {
        paxos_entry *e = rec_at(g, s);
        if (!e || e->type != PAXOS_ENTRY_CONFIG || paxos_members_decode(e->data, e->len, &m))
            continue;
        for (uint32_t i = 0; i < m.nvoters; i++) {
            if (paxos_peer_find(g, m.voters[i])) continue;
            peer_add(g, m.voters[i]);
            *rc = send_prepare(g, m.voters[i], u);
            if (*rc) return 0;
        }
        won = won && paxos_quorum(&m, ids, n);
    }
    return won;
}

static int become_leader(paxos_group *g, paxos_update *u)
{
    if (paxos_ballot_cmp(g->promised, g->ballot) > 0) { /* we promised higher since */
        paxos_become_follower(g, g->promised, 0);
        return 0;
    }
    if (paxos_ballot_cmp(g->ballot, g->promised) > 0) {
        /* Our own promise may still be held (not yet durable) or refused (we
         * granted someone a lease): we won with others' promises. Our acceptor
         * is about to accept in our ballot, so it must also promise it — else
         * it could later promise a lower ballot and overwrite our values. */
        g->promised = g->ballot;
        u->hs_changed = 1;
        u->promised = g->ballot;
        paxos_persist_begin(g, u);
    }
    g->role = PAXOS_LEADER;
    g->leader = g->cfg.self;
    g->lease_epoch++;
    g->hb_elapsed = g->cq_elapsed = g->idle = 0;
    g->quiesced = 0;
    g->transfer_to = 0;
    g->transfer_released = 0;
    g->xfer_from = 0;
    uint64_t last = g->promise_max > paxos_log_last(g) ? g->promise_max : paxos_log_last(g);
    /* Re-propose every open slot in our ballot: the highest-ballot value any
     * promiser accepted, or a no-op for a hole. */
    for (uint64_t s = g->chosen + 1; s <= last; s++) {
        paxos_entry *e = rec_at(g, s);
        int rc = e ? paxos_log_set(g, s, g->ballot, e->type, e->data, e->len)
                   : paxos_log_set(g, s, g->ballot, PAXOS_ENTRY_NOOP, NULL, 0);
        if (!rc) rc = paxos_persist_slot(g, u, paxos_log_get(g, s));
        if (rc) return rc;
    }
    for (size_t i = 0; i < g->nrec; i++) free(g->rec[i].data);
    g->nrec = 0;
    g->start_slot = last;
    for (size_t i = 0; i < g->npeers; i++) {
        paxos_peer *p = &g->peers[i];
        p->match = 0;
        p->next = g->chosen + 1;
        p->sent_hb = 0;
        p->active = 1;
        p->ack_start = 0;
        p->snap_sending = 0;
    }
    paxos_peers_sync(g);
    /* Even if a recovered config leaves us out we drive the recovered slots to
     * chosen (someone must), and step down once that config is applied. */
    return paxos_send_accepts_all(g, u);
}

int paxos_on_promise(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    if (g->role != PAXOS_CANDIDATE || paxos_ballot_cmp(m->ballot, g->ballot) != 0) return 0;
    paxos_peer *p = paxos_peer_find(g, m->from);
    if (!p || p->promised) return 0;
    p->promised = 1;
    for (uint32_t i = 0; i < m->nentries; i++) {
        int rc = rec_merge(g, &m->entries[i]);
        if (rc) return rc;
        if (m->entries[i].slot > g->promise_max) g->promise_max = m->entries[i].slot;
    }
    int rc = 0;
    if (!chain_won(g, u, &rc)) return rc;
    return become_leader(g, u);
}

/* ---- phase 2 ---- */

/* Sends the snapshot chunk at p->snap_sent and moves snap_sent past it. */
static int send_chunk(paxos_group *g, paxos_peer *p, paxos_update *u)
{
    paxos_msg m = {0};
    m.type = PAXOS_MSG_SNAPSHOT;
    m.to = p->id;
    m.ballot = g->ballot;
    m.slot = g->snap_slot;
    m.commit = g->chosen;
    m.members = g->snap_members;
    m.offset = p->snap_sent;
    m.total = g->snap_len;
    uint64_t left = g->snap_len - p->snap_sent;
    m.len = (uint32_t)(left < g->cfg.snapshot_chunk ? left : g->cfg.snapshot_chunk);
    if (m.len) {
        m.data = malloc(m.len);
        if (!m.data) return MERR_NOMEM;
        memcpy(m.data, g->snap_data + p->snap_sent, m.len);
    }
    if (p->snap_sent + m.len == g->snap_len) m.flags = PAXOS_F_LAST_CHUNK;
    p->snap_sent += m.len;
    return paxos_emit(g, u, &m, 0);
}

/* Keeps up to snapshot_window chunks in flight past the acknowledged
 * offset: one chunk per round trip would take minutes for a large range
 * over a link between regions. The follower takes chunks in order only; a
 * gap makes it ask to resend from what it has (PAXOS_F_RESEND), and a stall
 * resends from the acknowledged offset (go-back-N). */
static int snap_fill(paxos_group *g, paxos_peer *p, paxos_update *u)
{
    uint64_t win = (uint64_t)g->cfg.snapshot_window * g->cfg.snapshot_chunk;
    if (g->snap_len == 0) return send_chunk(g, p, u); /* one empty (last) chunk */
    while (p->snap_sent < g->snap_len && p->snap_sent - p->snap_offset < win) {
        int rc = send_chunk(g, p, u);
        if (rc) return rc;
    }
    return 0;
}

int paxos_send_snapshot_chunk(paxos_group *g, paxos_peer *p, paxos_update *u)
{
    p->snap_sent = p->snap_offset;
    p->snap_back = 0;
    p->snap_stall = 0;
    return snap_fill(g, p, u);
}

int paxos_send_accepts(paxos_group *g, paxos_peer *p, paxos_update *u)
{
    uint64_t last = paxos_log_last(g);
    if (p->snap_sending) return 0;
    if (p->next < g->base) {
        p->snap_sending = 1;
        p->snap_offset = 0;
        return paxos_send_snapshot_chunk(g, p, u);
    }
    while (p->next <= last) {
        uint64_t hi = p->next + g->cfg.max_msg_entries - 1;
        if (hi > last) hi = last;
        paxos_msg m = {0};
        m.type = PAXOS_MSG_ACCEPT;
        m.to = p->id;
        m.ballot = g->ballot;
        m.commit = g->chosen;
        m.slot = p->next;
        m.lease_start = g->now.earliest;
        m.lease_epoch = g->lease_epoch;
        m.entries = calloc((size_t)(hi - p->next + 1), sizeof(*m.entries));
        if (!m.entries) return MERR_NOMEM;
        for (uint64_t s = p->next; s <= hi; s++) {
            paxos_slot *ps = paxos_log_get(g, s);
            int rc = paxos_entry_copy(&m.entries[m.nentries], &ps->e);
            if (rc) {
                paxos_msg_free(&m);
                return rc;
            }
            m.entries[m.nentries++].ballot = g->ballot;
        }
        p->next = hi + 1;
        int rc = paxos_emit(g, u, &m, 0);
        if (rc) return rc;
    }
    return 0;
}

/* Our own acceptor grants us the lease as we send (we are in the quorum). */
void paxos_self_grant(paxos_group *g)
{
    if (g->transfer_released) return; /* the target may need our promise */
    g->grant_to = g->cfg.self;
    g->grant_epoch = g->lease_epoch;
    g->grant_until = g->now.latest + g->cfg.lease_ns;
    paxos_peer *me = paxos_peer_find(g, g->cfg.self);
    if (me && !g->transfer_to) me->ack_start = g->now.earliest;
}

int paxos_send_accepts_all(paxos_group *g, paxos_update *u)
{
    paxos_self_grant(g);
    for (size_t i = 0; i < g->npeers; i++) {
        if (g->peers[i].id == g->cfg.self) continue;
        int rc = paxos_send_accepts(g, &g->peers[i], u);
        if (rc) return rc;
    }
    return 0;
}

/* Advances the chosen prefix: slot s is chosen when a majority of the config
 * governing s accepted it in our ballot. */
static void advance_commit(paxos_group *g)
{
    paxos_members m;
    paxos_members_at(g, g->chosen + 1, &m);
    while (g->chosen < paxos_log_last(g)) {
        uint64_t s = g->chosen + 1;
        paxos_node_id ids[2 * PAXOS_MAX_NODES];
        size_t n = 0;
        for (size_t i = 0; i < g->npeers; i++)
            if (g->peers[i].match >= s) ids[n++] = g->peers[i].id;
        if (!paxos_quorum(&m, ids, n)) break;
        g->chosen = s;
        paxos_slot *ps = paxos_log_get(g, s);
        if (ps->e.type == PAXOS_ENTRY_CONFIG) paxos_members_decode(ps->e.data, ps->e.len, &m);
    }
}

int paxos_leader_self_persisted(paxos_group *g, paxos_update *u)
{
    paxos_peer *me = paxos_peer_find(g, g->cfg.self);
    if (!me) return 0;
    uint64_t k = g->chosen > me->match ? g->chosen : me->match;
    while (k < paxos_log_last(g)) {
        paxos_slot *ps = paxos_log_get(g, k + 1);
        if (!ps || ps->pseq > g->persisted || paxos_ballot_cmp(ps->e.ballot, g->ballot) != 0) break;
        k++;
    }
    me->match = k;
    uint64_t before = g->chosen;
    advance_commit(g);
    if (g->chosen != before) return paxos_leader_flush(g, u);
    return 0;
}

int paxos_on_accepted(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    if (g->role != PAXOS_LEADER || paxos_ballot_cmp(m->ballot, g->ballot) != 0) return 0;
    paxos_peer *p = paxos_peer_find(g, m->from);
    if (!p) return 0;
    p->active = 1;
    if (m->lease_epoch == g->lease_epoch && m->lease_start > p->ack_start && !g->transfer_to)
        p->ack_start = m->lease_start;
    uint64_t match = m->slot > paxos_log_last(g) ? paxos_log_last(g) : m->slot;
    if (match < p->match && match < g->chosen) {
        /* It knows less than it told us: it restarted, its chosen prefix
         * back at its applied slot, and what lies above may carry an older
         * ballot than ours. Believe it, so the next heartbeat resends from
         * there (only from below our chosen prefix: a reply to an earlier
         * batch that arrives late must not undo its successor's count). */
        p->match = match;
        p->sent_hb = match;
    }
    if (match > p->match) p->match = match;
    if (p->next <= p->match) p->next = p->match + 1;
    if (p->snap_sending && m->slot >= g->snap_slot) p->snap_sending = 0;
    uint64_t before = g->chosen;
    advance_commit(g);
    if (g->transfer_to == p->id && p->match == paxos_log_last(g) && !g->transfer_released) {
        int rc = paxos_leader_transfer(g, p->id, u);
        if (rc != MERR_INVALID) return rc;
        g->transfer_to = 0; /* the target left the config meanwhile: give up */
    }
    if (g->chosen != before) return paxos_leader_flush(g, u);
    return 0;
}

int paxos_on_snapshot_reply(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    if (g->role != PAXOS_LEADER || paxos_ballot_cmp(m->ballot, g->ballot) != 0) return 0;
    paxos_peer *p = paxos_peer_find(g, m->from);
    if (!p) return 0;
    p->active = 1;
    if (m->flags & PAXOS_F_LAST_CHUNK) { /* installed (or had it) */
        p->snap_sending = 0;
        if (m->slot > p->match)
            p->match = m->slot > paxos_log_last(g) ? paxos_log_last(g) : m->slot;
        p->next = p->match + 1;
        return paxos_send_accepts(g, p, u);
    }
    if (!p->snap_sending || m->slot != g->snap_slot) return 0;
    if (m->offset > g->snap_len) return 0;
    p->snap_stall = 0;
    if (m->flags & PAXOS_F_RESEND) {
        /* A gap (or a restart): go back to what the follower has. Every
         * chunk in flight past the gap asks the same; once is enough. */
        if (p->snap_back == m->offset + 1) return 0;
        p->snap_back = m->offset + 1;
        p->snap_offset = m->offset;
        p->snap_sent = m->offset;
        return snap_fill(g, p, u);
    }
    if (m->offset > p->snap_offset) p->snap_offset = m->offset;
    if (p->snap_sent < p->snap_offset) p->snap_sent = p->snap_offset;
    if (p->snap_offset == g->snap_len) return 0; /* waiting for the install ack */
    return snap_fill(g, p, u);
}

/* Assigns slots to queued proposals while the window allows, then sends. */
int paxos_leader_flush(paxos_group *g, paxos_update *u)
{
    int rc0 = paxos_leader_config_ready(g, u);
    if (rc0) return rc0;
    while (g->nprops && paxos_log_last(g) - g->chosen < g->cfg.window && !g->cfg_op &&
           !paxos_config_pending(g, NULL)) {
        uint32_t k = 0;
        size_t bytes = 16;
        while (k < g->nprops && k < g->cfg.max_batch &&
               (k == 0 || bytes + g->props[k].len + 18 <= g->cfg.max_batch_bytes))
            bytes += g->props[k++].len + 18;
        uint8_t *v = malloc(bytes), *q = v;
        if (!v) return MERR_NOMEM;
        uint64_t cnt = k;
        do {
            *q++ = (uint8_t)((cnt & 0x7f) | (cnt > 0x7f ? 0x80 : 0));
            cnt >>= 7;
        } while (cnt);
        for (uint32_t i = 0; i < k; i++) {
            for (int b = 7; b >= 0; b--) *q++ = (uint8_t)(g->props[i].id >> (8 * b));
            uint64_t l = g->props[i].len;
            do {
                *q++ = (uint8_t)((l & 0x7f) | (l > 0x7f ? 0x80 : 0));
                l >>= 7;
            } while (l);
            if (g->props[i].len) memcpy(q, g->props[i].data, g->props[i].len);
            q += g->props[i].len;
            free(g->props[i].data);
        }
        memmove(g->props, g->props + k, (g->nprops - k) * sizeof(*g->props));
        g->nprops -= k;
        uint64_t s = paxos_log_last(g) + 1;
        int rc = paxos_log_set(g, s, g->ballot, PAXOS_ENTRY_DATA, v, (uint32_t)(q - v));
        free(v);
        if (!rc) rc = paxos_persist_slot(g, u, paxos_log_get(g, s));
        if (rc) return rc;
    }
    return paxos_send_accepts_all(g, u);
}

void paxos_leader_wake(paxos_group *g)
{
    g->idle = 0;
    g->quiesced = 0;
}

int paxos_leader_propose(paxos_group *g, const paxos_event *ev, paxos_update *u)
{
    if (g->role != PAXOS_LEADER) return MERR_NOT_LEADER;
    if (g->transfer_to) return MERR_BUSY;
    if (ev->len && !ev->data) return MERR_INVALID;
    if (g->nprops == g->capprops) {
        size_t nc = g->capprops ? g->capprops * 2 : 16;
        paxos_prop *np = realloc(g->props, nc * sizeof(*np));
        if (!np) return MERR_NOMEM;
        g->props = np;
        g->capprops = nc;
    }
    paxos_prop *p = &g->props[g->nprops];
    p->id = ev->id;
    p->len = ev->len;
    p->data = NULL;
    if (ev->len) {
        p->data = malloc(ev->len);
        if (!p->data) return MERR_NOMEM;
        memcpy(p->data, ev->data, ev->len);
    }
    g->nprops++;
    paxos_leader_wake(g);
    if (ev->hold) return 0;
    return paxos_leader_flush(g, u);
}

uint64_t paxos_get_peer_match(const paxos_group *g, paxos_node_id id)
{
    if (g->role != PAXOS_LEADER) return 0;
    for (size_t i = 0; i < g->npeers; i++)
        if (g->peers[i].id == id) return g->peers[i].match;
    return 0;
}
