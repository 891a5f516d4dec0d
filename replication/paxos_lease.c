/* Leader timekeeping: heartbeats, resends after a stall, check-quorum,
 * quiescence, leadership transfer and the leader lease.
 *
 * The lease argument (docs/replication.md has it in full). Every request a
 * leader L sends that asks for a grant carries lease_start = L's tt.earliest at
 * sending, so true(send) >= lease_start. An acceptor A granting it (at true time
 * r >= true(send)) blocks promises to other nodes while its tt.earliest <=
 * A.latest(r) + lease, i.e. at least until true time r + lease. L counts the
 * grant by the echoed lease_start and considers its lease valid while its own
 * tt.latest < (majority-th newest echoed lease_start) + lease, i.e. only at true
 * times < start + lease <= r + lease for each A of that majority. Any rival
 * leader needs promises from a majority, which shares an acceptor with L's
 * majority, and that acceptor promises only after L's lease ended in true time.
 * So two leases never overlap, whatever each node's clock error within its ε. */
#include "replication/paxos_internal.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

/* The true-time end of the lease under config m: the majority-th newest grant. */
static int64_t lease_end_under(const paxos_group *g, const paxos_members *m)
{
    int64_t st[PAXOS_MAX_NODES];
    uint32_t n = 0;
    for (uint32_t i = 0; i < m->nvoters; i++) {
        st[i] = 0;
        for (size_t j = 0; j < g->npeers; j++)
            if (g->peers[j].id == m->voters[i]) st[i] = g->peers[j].ack_start;
        n++;
    }
    /* sort descending (n <= 9) */
    for (uint32_t i = 1; i < n; i++)
        for (uint32_t j = i; j > 0 && st[j] > st[j - 1]; j--) {
            int64_t t = st[j];
            st[j] = st[j - 1];
            st[j - 1] = t;
        }
    int64_t k = st[n / 2]; /* majority n/2+1 => index n/2 */
    if (k <= 0) return INT64_MIN;
    return k + g->cfg.lease_ns;
}

int paxos_lease_valid(const paxos_group *g, paxos_tt now)
{
    if (g->role != PAXOS_LEADER || g->transfer_to) return 0;
    /* Reads must see every write chosen before we led. */
    if (g->applied < g->start_slot) return 0;
    paxos_members c, l;
    paxos_get_members(g, &c, &l);
    int64_t e1 = lease_end_under(g, &c), e2 = lease_end_under(g, &l);
    int64_t end = e1 < e2 ? e1 : e2;
    return end != INT64_MIN && now.latest < end;
}

static int send_heartbeats(paxos_group *g, uint32_t flags, paxos_update *u)
{
    paxos_self_grant(g);
    for (size_t i = 0; i < g->npeers; i++) {
        paxos_peer *p = &g->peers[i];
        if (p->id == g->cfg.self) continue;
        paxos_msg m = {0};
        m.ballot = g->ballot;
        m.commit = g->chosen;
        m.flags = flags;
        m.lease_start = g->now.earliest;
        m.lease_epoch = g->lease_epoch;
        int rc = paxos_emit_new(g, u, PAXOS_MSG_HEARTBEAT, p->id, &m);
        if (rc) return rc;
    }
    return 0;
}

/* A follower that made no progress since the last heartbeat missed something:
 * resend from its match (or the stalled snapshot chunk). */
static int resend_stalled(paxos_group *g, paxos_update *u)
{
    for (size_t i = 0; i < g->npeers; i++) {
        paxos_peer *p = &g->peers[i];
        if (p->id == g->cfg.self) continue;
        if (p->snap_sending) {
            if (++p->snap_stall >= 2) {
                int rc = paxos_send_snapshot_chunk(g, p, u);
                if (rc) return rc;
            }
            continue;
        }
        if (p->match < paxos_log_last(g) && p->match == p->sent_hb) {
            p->next = p->match + 1;
            int rc = paxos_send_accepts(g, p, u);
            if (rc) return rc;
        }
        p->sent_hb = p->match;
    }
    return 0;
}

static int check_quorum(paxos_group *g)
{
    paxos_node_id ids[2 * PAXOS_MAX_NODES];
    size_t n = 0;
    for (size_t i = 0; i < g->npeers; i++) {
        if (g->peers[i].active || g->peers[i].id == g->cfg.self) ids[n++] = g->peers[i].id;
        g->peers[i].active = 0;
    }
    paxos_members c, l;
    paxos_get_members(g, &c, &l);
    return paxos_quorum(&c, ids, n) && paxos_quorum(&l, ids, n);
}

static int can_quiesce(paxos_group *g)
{
    if (!g->cfg.quiesce_ticks || g->nprops || g->transfer_to) return 0;
    if (g->chosen != paxos_log_last(g)) return 0;
    for (size_t i = 0; i < g->npeers; i++)
        if (g->peers[i].match != paxos_log_last(g) || g->peers[i].snap_sending) return 0;
    return 1;
}

int paxos_leader_tick(paxos_group *g, paxos_update *u)
{
    int rc = 0;
    if (g->transfer_to && ++g->transfer_elapsed >= g->cfg.election_ticks) {
        /* The target never took over: resume, under a fresh lease epoch so
         * grants made before the release never count again. */
        g->transfer_to = 0;
        g->transfer_released = 0;
        g->lease_epoch++;
    }
    if (++g->cq_elapsed >= g->cfg.election_ticks) {
        g->cq_elapsed = 0;
        if (!check_quorum(g)) {
            /* We cannot reach a majority: stop acting as leader (our lease
             * lapses by itself) so clients go find the real one. */
            paxos_become_follower(g, g->ballot, 0);
            return 0;
        }
    }
    if (g->quiesced || g->transfer_released) return 0; /* released: grant nothing */
    if (can_quiesce(g)) {
        if (++g->idle >= g->cfg.quiesce_ticks) {
            g->quiesced = 1;
            return send_heartbeats(g, PAXOS_F_QUIESCE, u);
        }
    } else {
        g->idle = 0;
    }
    if (++g->hb_elapsed >= g->cfg.heartbeat_ticks) {
        g->hb_elapsed = 0;
        rc = send_heartbeats(g, 0, u);
        if (!rc) rc = resend_stalled(g, u);
    }
    return rc;
}

int paxos_leader_transfer(paxos_group *g, paxos_node_id to, paxos_update *u)
{
    if (g->role != PAXOS_LEADER) return MERR_NOT_LEADER;
    if (to == g->cfg.self) return 0;
    paxos_members l;
    paxos_members_at(g, paxos_log_last(g) + 1, &l);
    paxos_peer *p = paxos_peer_find(g, to);
    if (!p || !paxos_members_is_voter(&l, to)) return MERR_INVALID;
    if (g->transfer_to && g->transfer_to != to) return MERR_BUSY;
    if (g->transfer_released) return 0;
    if (!g->transfer_to) {
        g->transfer_to = to;
        g->transfer_elapsed = 0;
        paxos_leader_wake(g);
    }
    if (p->match < paxos_log_last(g)) {
        p->next = p->match + 1;
        return paxos_send_accepts(g, p, u); /* catch it up first */
    }
    /* Give the lease up before telling the target: from now on we never count
     * a grant of this epoch, so acceptors may promise the target at once. */
    uint64_t released = g->lease_epoch++;
    g->transfer_released = 1;
    for (size_t i = 0; i < g->npeers; i++) g->peers[i].ack_start = 0;
    paxos_msg m = {0};
    m.ballot = g->ballot;
    m.lease_epoch = released;
    return paxos_emit_new(g, u, PAXOS_MSG_TIMEOUT_NOW, to, &m);
}

/* Lease on demand: a quiet leader's lease lapses (nothing asks for grants);
 * when a write or a strong read needs it, one heartbeat round asks again.
 * The grants it earns are ordinary ones (lease_start = our tt.earliest now),
 * so the lease argument above holds unchanged; node liveness never extends
 * a lease by itself. */
int paxos_leader_renew(paxos_group *g, paxos_update *u)
{
    if (g->role != PAXOS_LEADER) return MERR_NOT_LEADER;
    if (g->transfer_to) return MERR_BUSY;
    paxos_leader_wake(g);
    g->hb_elapsed = 0;
    return send_heartbeats(g, 0, u);
}
