/* The acceptor (and learner) side of Multi-Paxos: pre-votes, prepare/promise,
 * accept/accepted, heartbeats, lease grants, learning the commit point and
 * receiving snapshots.
 *
 * Lease grants (docs/replication.md, "Leases"): when an acceptor vouches for a
 * leader L (an accept or a heartbeat from L in the ballot it promised) it records
 * grant_until = its own tt.latest + lease. Until its tt.earliest passes
 * grant_until it promises no ballot of another node. Since tt.latest >= true
 * time at the grant, the block lasts past true(receipt) + lease, which is past
 * L's expiry (L's tt.earliest when it sent + lease). */
#include "replication/paxos_internal.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

/* Would promising m's sender break a lease we granted to someone else? */
int paxos_lease_blocks(const paxos_group *g, const paxos_msg *m)
{
    if (g->grant_to == 0 || g->grant_to == m->from) return 0;
    if (g->now.earliest > g->grant_until) return 0;
    /* A leadership transfer: the leaseholder gave the lease of this epoch up. */
    if ((m->flags & PAXOS_F_TRANSFER) && m->aux == g->grant_to && g->grant_epoch <= m->lease_epoch)
        return 0;
    return 1;
}

static void grant(paxos_group *g, const paxos_msg *m)
{
    g->grant_to = m->from;
    g->grant_epoch = m->lease_epoch;
    g->grant_until = g->now.latest + g->cfg.lease_ns;
}

/* Highest k such that every slot in (chosen, k] holds a value accepted in b. */
static uint64_t match_in(paxos_group *g, paxos_ballot b)
{
    uint64_t k = g->chosen;
    for (uint64_t s = g->chosen + 1; s <= paxos_log_last(g); s++) {
        paxos_slot *ps = paxos_log_get(g, s);
        if (!ps || ps->e.type == PAXOS_ENTRY_EMPTY || paxos_ballot_cmp(ps->e.ballot, b) != 0) break;
        k = s;
    }
    return k;
}

/* Slots up to `commit` whose value we accepted in ballot b are chosen: the
 * leader of b proposed one value per slot and says a majority accepted it. */
void paxos_learn_commit(paxos_group *g, paxos_ballot b, uint64_t commit)
{
    while (g->chosen < commit) {
        paxos_slot *ps = paxos_log_get(g, g->chosen + 1);
        if (!ps || ps->e.type == PAXOS_ENTRY_EMPTY || paxos_ballot_cmp(ps->e.ballot, b) != 0) break;
        g->chosen++;
    }
}

static int reject(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    paxos_msg r = {0};
    r.ballot = g->promised;
    r.slot = m->slot;
    return paxos_emit_new(g, u, PAXOS_MSG_REJECT, m->from, &r);
}

/* Raises the promised ballot (to persist) and follows its owner if it leads. */
static void raise_promise(paxos_group *g, paxos_ballot b, paxos_update *u)
{
    if (paxos_ballot_cmp(b, g->promised) > 0) {
        g->promised = b;
        u->hs_changed = 1;
        u->promised = b;
        paxos_persist_begin(g, u);
    }
}

int paxos_on_prevote(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    /* Grant only if we would promise the ballot and have not heard from a
     * leader lately: a replica that comes back from a partition cannot depose
     * a leader the rest of the group still hears from. */
    int ok = paxos_ballot_cmp(m->ballot, g->promised) > 0 && !paxos_lease_blocks(g, m) &&
             g->role != PAXOS_LEADER && m->slot + 1 >= g->base &&
             (g->leader == 0 || g->elapsed >= g->cfg.election_ticks);
    paxos_msg r = {0};
    r.ballot = m->ballot;
    r.flags = ok ? 0 : PAXOS_F_REJECT;
    int rc = paxos_emit_new(g, u, PAXOS_MSG_PREVOTE_REPLY, m->from, &r);
    /* A quiet leader hears a voter campaign: it missed our QUIESCE (or
     * restarted) and, having forgotten us, would campaign in vain for as
     * long as the group stays idle. Heartbeats tell it who leads and what
     * is chosen; we go quiet again once every voter caught up. */
    if (!rc && g->role == PAXOS_LEADER && g->quiesced) rc = paxos_leader_renew(g, u);
    return rc;
}

int paxos_on_prepare(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    int self = m->from == g->cfg.self;
    if (paxos_ballot_cmp(m->ballot, g->promised) < 0) return self ? 0 : reject(g, m, u);
    if (paxos_lease_blocks(g, m) || m->slot < g->base) {
        /* Refused without a higher ballot, so the candidate just goes on: we
         * protect a lease, or its open slots are inside our snapshot and we
         * cannot report them (it may still win with others' promises; we do
         * not reset our election timer, so being more current, we campaign
         * ourselves if it cannot). Refusing a promise is always safe. */
        paxos_msg r = {0};
        r.ballot = m->ballot;
        r.flags = PAXOS_F_REJECT | (m->slot < g->base ? PAXOS_F_BEHIND : 0);
        return paxos_emit_new(g, u, PAXOS_MSG_REJECT, m->from, &r);
    }
    raise_promise(g, m->ballot, u);
    if (!self) {
        if (g->role != PAXOS_FOLLOWER) paxos_become_follower(g, m->ballot, 0);
        g->leader = 0;
        g->quiesced = 0;
        g->elapsed = 0;
    }
    /* No lease grant with a promise: a candidate may still lose, and a grant
     * to a loser would block the winner for a whole lease (dueling candidates
     * could then block each other forever). The leader's lease starts with the
     * first round of accepts or heartbeats. */
    paxos_msg r = {0};
    r.type = PAXOS_MSG_PROMISE;
    r.to = m->from;
    r.ballot = m->ballot;
    r.slot = m->slot;
    r.commit = g->chosen;
    r.lease_start = m->lease_start;
    r.lease_epoch = m->lease_epoch;
    {
        uint64_t last = paxos_log_last(g);
        uint32_t cnt = 0;
        for (uint64_t s = m->slot; s <= last; s++)
            if (paxos_log_get(g, s)->e.type != PAXOS_ENTRY_EMPTY) cnt++;
        if (cnt) {
            r.entries = calloc(cnt, sizeof(*r.entries));
            if (!r.entries) return MERR_NOMEM;
            for (uint64_t s = m->slot; s <= last; s++) {
                paxos_slot *ps = paxos_log_get(g, s);
                if (ps->e.type == PAXOS_ENTRY_EMPTY) continue;
                if (paxos_entry_copy(&r.entries[r.nentries], &ps->e)) {
                    paxos_msg_free(&r);
                    return MERR_NOMEM;
                }
                r.nentries++;
            }
        }
    }
    /* A promise is a vote: it must survive a crash before anyone sees it. */
    return paxos_emit(g, u, &r, 1);
}

/* Common to ACCEPT, HEARTBEAT and SNAPSHOT from a leader: refuse stale ballots,
 * otherwise adopt the ballot and its sender as our leader. Returns 1 to go on. */
static int from_leader(paxos_group *g, const paxos_msg *m, paxos_update *u, int *rc)
{
    *rc = 0;
    if (paxos_ballot_cmp(m->ballot, g->promised) < 0) {
        *rc = reject(g, m, u);
        return 0;
    }
    raise_promise(g, m->ballot, u);
    if (g->role != PAXOS_FOLLOWER || g->leader != m->from)
        paxos_become_follower(g, m->ballot, m->from);
    g->elapsed = 0;
    return 1;
}

int paxos_on_accept(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    int rc;
    if (!from_leader(g, m, u, &rc)) return rc;
    g->quiesced = 0;
    for (uint32_t i = 0; i < m->nentries; i++) {
        const paxos_entry *e = &m->entries[i];
        if (e->slot <= g->chosen || e->slot < g->base) continue; /* already chosen */
        if (e->type == PAXOS_ENTRY_EMPTY || e->slot > paxos_log_last(g) + 65536) continue;
        rc = paxos_log_set(g, e->slot, m->ballot, e->type, e->data, e->len);
        if (rc) return rc;
        rc = paxos_persist_slot(g, u, paxos_log_get(g, e->slot));
        if (rc) return rc;
    }
    grant(g, m);
    paxos_learn_commit(g, m->ballot, m->commit);
    paxos_msg r = {0};
    r.type = PAXOS_MSG_ACCEPTED;
    r.to = m->from;
    r.ballot = m->ballot;
    r.slot = match_in(g, m->ballot);
    r.commit = g->chosen;
    r.lease_start = m->lease_start;
    r.lease_epoch = m->lease_epoch;
    return paxos_emit(g, u, &r, 1);
}

int paxos_on_heartbeat(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    int rc;
    if (!from_leader(g, m, u, &rc)) return rc;
    g->quiesced = (m->flags & PAXOS_F_QUIESCE) != 0;
    grant(g, m);
    paxos_learn_commit(g, m->ballot, m->commit);
    paxos_msg r = {0};
    r.type = PAXOS_MSG_HEARTBEAT_REPLY;
    r.to = m->from;
    r.ballot = m->ballot;
    r.slot = match_in(g, m->ballot);
    r.commit = g->chosen;
    r.lease_start = m->lease_start;
    r.lease_epoch = m->lease_epoch;
    return paxos_emit(g, u, &r, 1);
}

static int snap_reply(paxos_group *g, const paxos_msg *m, uint64_t slot, uint64_t off,
                      uint32_t flags, paxos_update *u)
{
    paxos_msg r = {0};
    r.type = PAXOS_MSG_SNAPSHOT_REPLY;
    r.to = m->from;
    r.ballot = m->ballot;
    r.slot = slot;
    r.offset = off;
    r.flags = flags;
    r.commit = g->chosen;
    return paxos_emit(g, u, &r, 1);
}

int paxos_on_snapshot(paxos_group *g, const paxos_msg *m, paxos_update *u)
{
    int rc;
    if (!from_leader(g, m, u, &rc)) return rc;
    g->quiesced = 0;
    if (m->slot <= g->chosen) /* we have it all already */
        return snap_reply(g, m, g->chosen, m->total, PAXOS_F_LAST_CHUNK, u);
    if (g->rx_installing) return 0; /* the caller is installing; ack comes after */
    if (m->total > UINT32_MAX || m->members.nvoters == 0) return MERR_INVALID;
    if (m->offset == 0) {
        free(g->rx_data);
        g->rx_data = NULL;
        g->rx_slot = m->slot;
        g->rx_total = m->total;
        g->rx_len = 0;
        g->rx_members = m->members;
        g->rx_ballot = m->ballot;
        if (m->total) {
            g->rx_data = malloc(m->total);
            if (!g->rx_data) return MERR_NOMEM;
        }
    }
    if (m->slot != g->rx_slot || m->offset != g->rx_len || m->total != g->rx_total ||
        m->len > g->rx_total - g->rx_len)
        /* Out of order (a lost chunk, or we restarted): ask for the offset we
         * need, 0 if we hold nothing of this snapshot. */
        return snap_reply(g, m, m->slot, g->rx_slot == m->slot ? g->rx_len : 0, PAXOS_F_RESEND, u);
    if (m->len) memcpy(g->rx_data + g->rx_len, m->data, m->len);
    g->rx_len += m->len;
    if (g->rx_len < g->rx_total) return snap_reply(g, m, m->slot, g->rx_len, 0, u);
    /* Complete: the caller installs it, then steps SNAPSHOT_INSTALLED. */
    u->has_install = 1;
    free(u->install.data);
    u->install.slot = g->rx_slot;
    u->install.members = g->rx_members;
    u->install.len = (uint32_t)g->rx_total;
    u->install.data = NULL;
    if (g->rx_total) {
        u->install.data = malloc(g->rx_total);
        if (!u->install.data) return MERR_NOMEM;
        memcpy(u->install.data, g->rx_data, g->rx_total);
    }
    g->rx_installing = 1;
    return 0;
}

int paxos_snapshot_installed(paxos_group *g, uint64_t slot, paxos_update *u)
{
    if (g->rx_installing && slot == 0) {
        /* The caller could not install it (disk full...): forget the stream;
         * the leader sees no progress and starts it again later. */
        g->rx_installing = 0;
        free(g->rx_data);
        g->rx_data = NULL;
        g->rx_slot = g->rx_len = g->rx_total = 0;
        return 0;
    }
    if (!g->rx_installing || slot != g->rx_slot) return MERR_INVALID;
    g->rx_installing = 0;
    if (slot > paxos_log_last(g)) {
        paxos_log_truncate_back(g, g->base - 1);
        g->base = slot + 1;
    } else {
        paxos_log_truncate_front(g, slot);
    }
    free(g->snap_data);
    g->snap_data = g->rx_data; /* kept to serve others if we lead later */
    g->snap_len = (uint32_t)g->rx_total;
    g->rx_data = NULL;
    g->snap_slot = slot;
    g->snap_members = g->rx_members;
    if (g->chosen < slot) g->chosen = slot;
    if (g->applied < slot) g->applied = slot;
    u->truncate_upto = slot;
    paxos_persist_begin(g, u);
    paxos_msg r = {0};
    r.type = PAXOS_MSG_SNAPSHOT_REPLY;
    r.to = g->leader;
    r.ballot = g->rx_ballot;
    r.slot = slot;
    r.offset = g->rx_total;
    r.flags = PAXOS_F_LAST_CHUNK;
    r.commit = g->chosen;
    if (!g->leader) return 0;
    return paxos_emit(g, u, &r, 1);
}
