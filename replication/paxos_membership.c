/* Membership changes through the log: add a learner, promote it, remove a node.
 *
 * The rule (docs/replication.md, "Membership"): a CONFIG value at slot s governs
 * the slots after s and takes effect for the leader when it is chosen; the
 * leader puts at most one change in flight, proposes it only once every lower
 * slot is chosen, and proposes nothing above it until it is chosen. Each change moves one voter at
 * most, so any majority of the old voters meets any majority of the new ones; phase 1 additionally
 * walks the chain of configs it recovers (paxos_leader.c), so a candidate that knows only an old
 * config still meets the quorum that chose the newer ones. */
#include "replication/paxos_internal.h"

#include "common/err.h"

#include <stdlib.h>
#include <string.h>

static void drop(paxos_node_id *ids, uint32_t *n, paxos_node_id id)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < *n; i++)
        if (ids[i] != id) ids[k++] = ids[i];
    *n = k;
}

/* Applies op to the config governing the next slot; 0 or a MERR code. */
static int apply_op(paxos_group *g, int op, paxos_node_id node, paxos_members *m)
{
    paxos_members_at(g, paxos_log_last(g) + 1, m);
    int voter = paxos_members_is_voter(m, node);
    int learner = paxos_members_is_learner(m, node);
    switch (op) {
    case PAXOS_ADD_LEARNER:
        if (voter || learner) return MERR_EXISTS;
        if (m->nlearners >= PAXOS_MAX_NODES || g->npeers >= 2 * PAXOS_MAX_NODES) return MERR_TOOBIG;
        m->learners[m->nlearners++] = node;
        return 0;
    case PAXOS_PROMOTE: {
        if (!learner) return MERR_INVALID;
        if (m->nvoters >= PAXOS_MAX_NODES) return MERR_TOOBIG;
        /* A voter that is far behind would stall the quorum: catch up first. */
        paxos_peer *p = paxos_peer_find(g, node);
        if (!p || p->snap_sending || p->match < g->chosen) return MERR_RETRY;
        drop(m->learners, &m->nlearners, node);
        m->voters[m->nvoters++] = node;
        return 0;
    }
    case PAXOS_REMOVE:
        if (node == g->cfg.self) return MERR_INVALID; /* transfer leadership first */
        if (!voter && !learner) return MERR_NOTFOUND;
        if (voter && m->nvoters == 1) return MERR_INVALID;
        drop(m->voters, &m->nvoters, node);
        drop(m->learners, &m->nlearners, node);
        return 0;
    }
    return MERR_INVALID;
}

static int append_config(paxos_group *g, const paxos_members *m, paxos_update *u)
{
    uint8_t *v;
    uint32_t len;
    int rc = paxos_members_encode(m, &v, &len);
    if (rc) return rc;
    uint64_t s = paxos_log_last(g) + 1;
    rc = paxos_log_set(g, s, g->ballot, PAXOS_ENTRY_CONFIG, v, len);
    free(v);
    if (!rc) rc = paxos_persist_slot(g, u, paxos_log_get(g, s));
    if (rc) return rc;
    paxos_leader_wake(g);
    paxos_peers_sync(g); /* new members start receiving the log now */
    return paxos_send_accepts_all(g, u);
}

/* A change is proposed only when every slot below it is chosen: then the
 * config it is computed from is the one that governs its slot, whatever a
 * later leader recovers. (Proposed over unchosen slots, a change could be
 * computed from a config that a competing, recovered change replaced — two
 * voters changed at once; the simulator found exactly that.) Until then the
 * change waits here and no new slot is assigned. */
int paxos_leader_config_ready(paxos_group *g, paxos_update *u)
{
    if (!g->cfg_op || g->chosen != paxos_log_last(g)) return 0;
    int op = g->cfg_op;
    paxos_node_id node = g->cfg_node;
    g->cfg_op = 0;
    g->cfg_node = 0;
    paxos_members m;
    if (apply_op(g, op, node, &m)) return 0; /* no longer applicable: dropped */
    return append_config(g, &m, u);
}

int paxos_leader_config(paxos_group *g, const paxos_event *ev, paxos_update *u)
{
    if (g->role != PAXOS_LEADER) return MERR_NOT_LEADER;
    if (ev->node == 0) return MERR_INVALID;
    if (g->transfer_to || g->cfg_op || paxos_config_pending(g, NULL)) return MERR_BUSY;
    paxos_members m;
    int rc = apply_op(g, ev->op, ev->node, &m);
    if (rc) return rc;
    g->cfg_op = ev->op;
    g->cfg_node = ev->node;
    paxos_leader_wake(g);
    return paxos_leader_config_ready(g, u);
}
