/* Internal consistency checks of one replica, for simulators and tests: every
 * rule here holds after every paxos_step, whatever the input. Cost: one pass
 * over the log window. */
#include "replication/paxos_internal.h"

#include "common/err.h"

#include <inttypes.h>
#include <stdio.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        if (cap) snprintf(why, cap, __VA_ARGS__);                                                  \
        return MERR_INTERNAL;                                                                      \
    } while (0)

int paxos_check(const paxos_group *g, char *why, size_t cap)
{
    uint64_t last = paxos_log_last(g);
    if (g->base != g->snap_slot + 1)
        FAIL("base %" PRIu64 " != snapshot %" PRIu64 " + 1", g->base, g->snap_slot);
    if (g->applied > g->chosen)
        FAIL("applied %" PRIu64 " > chosen %" PRIu64, g->applied, g->chosen);
    if (g->applied < g->snap_slot) FAIL("applied below the snapshot");
    if (g->chosen > last && g->chosen >= g->base)
        FAIL("chosen %" PRIu64 " past the log end %" PRIu64, g->chosen, last);
    if (g->persisted > g->pseq) FAIL("persisted a sequence never handed out");
    size_t ncfg = 0;
    for (uint64_t s = g->base; s <= last; s++) {
        const paxos_slot *ps = &g->log[s - g->base];
        if (ps->e.slot != s) FAIL("slot %" PRIu64 " holds slot %" PRIu64, s, ps->e.slot);
        if (s <= g->chosen && ps->e.type == PAXOS_ENTRY_EMPTY)
            FAIL("chosen slot %" PRIu64 " empty", s);
        if (ps->e.type != PAXOS_ENTRY_EMPTY && paxos_ballot_cmp(ps->e.ballot, g->promised) > 0)
            FAIL("slot %" PRIu64 " accepted in ballot %" PRIu64 ".%u above promised %" PRIu64 ".%u",
                 s, ps->e.ballot.round, ps->e.ballot.node, g->promised.round, g->promised.node);
        if (ps->pseq > g->pseq) FAIL("slot %" PRIu64 " written in a future sequence", s);
        if (s <= g->applied && ps->pseq > g->persisted)
            FAIL("applied slot %" PRIu64 " not durable", s);
        if (ps->e.type == PAXOS_ENTRY_CONFIG) {
            if (ncfg >= g->ncfgs || g->cfgs[ncfg] != s)
                FAIL("config index misses slot %" PRIu64, s);
            ncfg++;
        }
    }
    if (ncfg != g->ncfgs) FAIL("config index has stale slots");
    if (g->role == PAXOS_LEADER) {
        if (paxos_ballot_cmp(g->promised, g->ballot) != 0)
            FAIL("leader has not promised its own ballot");
        if (g->leader != g->cfg.self) FAIL("leader does not name itself");
        for (size_t i = 0; i < g->npeers; i++)
            if (g->peers[i].match > last) FAIL("peer %u matched past the log end", g->peers[i].id);
        uint64_t pending;
        if (paxos_config_pending(g, &pending) && pending != last) {
            /* Nothing above an unchosen change, except recovered slots. */
            if (pending < g->start_slot) return 0;
            FAIL("slot above the unchosen config at %" PRIu64, pending);
        }
    }
    return 0;
}
