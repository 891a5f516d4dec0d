/* Lease on demand and idleness of a range replica (replica.h).
 *
 * A quiet group's leader stops heartbeating, so its lease runs out (nothing
 * asks for grants, and node liveness must not stand in for them: the lease
 * argument needs each grant to follow a request carrying the leader's
 * tt.earliest). Instead of refusing the first request after a quiet spell
 * with NOT_LEADER, the leader parks it, steps PAXOS_EV_RENEW (one heartbeat
 * round asking for grants) and runs it when the lease is valid again —
 * usually one round trip later. */
#include "server/replica.h"
#include "server/replica_int.h"

#include <inttypes.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/mtime.h"

typedef struct lease_waiter {
    int64_t deadline_ns;
    replica_lease_cb cb;
    void *arg;
    struct lease_waiter *next;
} lease_waiter;

void replica_feed_liveness(replica *r)
{
    if (!paxos_get_quiesced(r->g)) return; /* the core ignores it then anyway */
    paxos_members c, l;
    paxos_get_members(r->g, &c, &l);
    for (uint32_t i = 0; i < c.nvoters; i++) {
        uint64_t n = c.voters[i];
        if (n == r->h->node_id || !host_node_live(r->h, n)) continue;
        paxos_event ev = {.type = PAXOS_EV_LIVENESS, .node = (paxos_node_id)n};
        replica_step(r, &ev);
    }
}

int replica_lease_wait(replica *r, int64_t deadline_ns, replica_lease_cb cb, void *arg)
{
    if (replica_is_leaseholder(r)) return 0;
    if (r->broken || paxos_get_role(r->g) != PAXOS_LEADER) return MERR_NOT_LEADER;
    lease_waiter *w = malloc(sizeof(*w));
    if (!w) return MERR_NOT_LEADER; /* the client retries; nothing is lost */
    int64_t cap = mtime_mono_ns() + REPLICA_LEASE_WAIT_NS;
    w->deadline_ns = deadline_ns && deadline_ns < cap ? deadline_ns : cap;
    w->cb = cb;
    w->arg = arg;
    w->next = NULL;
    int first = r->lease_waiters == NULL;
    lease_waiter **pp = &r->lease_waiters; /* FIFO: requests run in arrival order */
    while (*pp) pp = &(*pp)->next;
    *pp = w;
    host_wake(r->h, r);
    if (first) {
        /* While quiet the leader counted no replies for check-quorum: live
         * peers count, so waking does not make it step down before the
         * renewal's replies arrive. */
        replica_feed_liveness(r);
        paxos_event ev = {.type = PAXOS_EV_RENEW};
        replica_step(r, &ev);
    }
    return 1;
}

void replica_lease_poll(replica *r, int64_t now_mono_ns)
{
    if (!r->lease_waiters) return;
    int ok = replica_is_leaseholder(r);
    int leads = !r->broken && paxos_get_role(r->g) == PAXOS_LEADER;
    if (!ok && leads && !now_mono_ns) return;
    /* Callbacks may park new waiters or write through this replica: take
     * the list first, put the ones still waiting back in front of any new. */
    lease_waiter *list = r->lease_waiters, *keep = NULL, **kt = &keep;
    r->lease_waiters = NULL;
    while (list) {
        lease_waiter *w = list;
        list = w->next;
        w->next = NULL;
        if (ok || !leads || now_mono_ns > w->deadline_ns) {
            w->cb(w->arg, ok ? 0 : MERR_NOT_LEADER);
            free(w);
        } else {
            *kt = w;
            kt = &w->next;
        }
    }
    *kt = r->lease_waiters;
    r->lease_waiters = keep;
}

void replica_lease_fail_all(replica *r, int code)
{
    while (r->lease_waiters) {
        lease_waiter *w = r->lease_waiters;
        r->lease_waiters = w->next;
        w->cb(w->arg, code);
        free(w);
    }
}

int replica_may_sleep(replica *r)
{
    if (r->broken) return 1; /* a stopped replica steps no more */
    if (!paxos_get_quiesced(r->g) || r->pending || r->lease_waiters || r->job || r->nstall ||
        r->late_persisted || r->late_install)
        return 0;
    if (replica_close_due(r)) return 0; /* close past the last write first (replica_close.c) */
    paxos_members c, l;
    paxos_get_members(r->g, &c, &l);
    for (uint32_t i = 0; i < c.nvoters; i++)
        if (c.voters[i] != r->h->node_id && !host_node_live(r->h, c.voters[i])) return 0;
    return 1;
}

int replica_is_lease_owner(replica *r)
{
    if (replica_is_leaseholder(r)) return 1;
    if (r->broken || paxos_get_role(r->g) != PAXOS_LEADER || !paxos_get_quiesced(r->g)) return 0;
    paxos_members c, l;
    paxos_get_members(r->g, &c, &l);
    uint32_t live = 0;
    for (uint32_t i = 0; i < c.nvoters; i++) live += (uint32_t)host_node_live(r->h, c.voters[i]);
    return live > c.nvoters / 2;
}

static void nudged(void *arg, int code)
{
    (void)arg;
    (void)code;
}

void replica_lease_nudge(replica *r)
{
    replica_lease_wait(r, 0, nudged, NULL);
}

int replica_lease_check(replica *r)
{
    if (replica_is_leaseholder(r)) return 1;
    replica_lease_nudge(r);
    return replica_is_leaseholder(r);
}

void replica_store_sleep(replica *r)
{
    if (!r->store || r->job || r->h->nreps <= REPLICA_OPEN_IDLE_MAX) return;
    range_close(r->store);
    r->store = NULL;
}

void replica_store_ensure(replica *r)
{
    if (r->store || r->broken) return;
    char path[4200];
    replica_range_path(r->h, r->range_id, path, sizeof(path));
    range_opts o = {.no_create = 1};
    merr e = {0};
    if (range_open(path, &o, &r->store, &e)) {
        MLOG_E("replica", "cannot reopen an idle range's store: replica stops",
               "range=%" PRIu64 " error=\"%s\"", r->range_id, e.msg);
        r->store = NULL;
        r->broken = 1;
    }
}
