/* The replica's side of replica moves (server/node_moves.c drives them):
 * leadership checks, a snapshot forced before a learner joins, lease
 * transfer to a chosen voter, and deleting a replica whose group dropped it. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "server/replica_int.h"

#define MOD "replica"

int replica_is_leader(replica *r)
{
    return !r->broken && paxos_get_role(r->g) == PAXOS_LEADER;
}

int replica_ensure_snapshot(replica *r, uint64_t min_slot)
{
    uint64_t snap = 0;
    paxos_get_snapshot(r->g, &snap, NULL);
    if (snap > 0 && snap >= min_slot) return 0; /* the log starts past it */
    uint64_t applied = paxos_get_applied(r->g);
    if (applied == 0 || applied < min_slot) return MERR_RETRY;
    replica_maybe_snapshot(r, 2); /* forced; a no-op while a snapshot job runs */
    return 1;
}

int replica_transfer(replica *r, uint64_t node, merr *e)
{
    if (!replica_is_leader(r)) return merr_set(e, MERR_NOT_LEADER, "not the range's leader");
    paxos_members committed, latest;
    paxos_get_members(r->g, &committed, &latest);
    if (!paxos_members_is_voter(&committed, (paxos_node_id)node))
        return merr_set(e, MERR_INVALID, "node %" PRIu64 " is not a voter of range %" PRIu64, node,
                        r->range_id);
    if (node == r->h->node_id) return 0; /* already here */
    paxos_event ev = {.type = PAXOS_EV_TRANSFER, .node = (paxos_node_id)node};
    replica_step(r, &ev);
    return 0;
}

int replica_destroy(host *h, replica *r, merr *e)
{
    if (replica_is_leader(r))
        return merr_set(e, MERR_BUSY, "range %" PRIu64 " leads here: not removed", r->range_id);
    /* A batch still in the log store would land in a later replica of the
     * same range (completions are matched by range id). */
    if (r->inflight || r->pending)
        return merr_set(e, MERR_BUSY, "range %" PRIu64 " has writes in flight", r->range_id);
    uint64_t id = r->range_id;
    size_t i = 0;
    while (i < h->nreps && h->reps[i] != r) i++;
    if (i == h->nreps) return merr_set(e, MERR_INVALID, "range %" PRIu64 " not hosted", id);
    memmove(&h->reps[i], &h->reps[i + 1], (h->nreps - i - 1) * sizeof(*h->reps));
    h->nreps--;
    replica_free(r); /* closes the store, fails waiters, leaves the tick set */
    char path[4200];
    replica_range_path(h, id, path, sizeof(path));
    int rc = range_destroy(path, e);
    logstore_batch *b = logstore_batch_new(host_batch_id(h));
    merr le = {0};
    int lrc = b ? logstore_batch_drop(b, id) : MERR_NOMEM;
    if (!lrc)
        lrc = logstore_write(h->ls, b, &le);
    else if (b)
        logstore_batch_free(b);
    if (!rc && lrc) rc = merr_set(e, lrc, "drop the log of range %" PRIu64 ": %s", id, le.msg);
    MLOG_I(MOD, "replica removed", "range=%" PRIu64 " error=\"%s\"", id,
           rc ? merr_str(rc) : "none");
    return rc;
}
