/* Node liveness from node-level heartbeats: a pure tracker (no clock, no I/O).
 *
 * Every node sends each peer one small heartbeat per interval, whatever the
 * number of ranges they share (server/host_liveness.c). The tracker turns the
 * arrivals and the host's ticks into verdicts:
 *
 *   unknown --heard--> LIVE --no heartbeat for timeout ticks--> DEAD
 *   DEAD --heard--> LIVE
 *   LIVE/DEAD --heard with a new incarnation--> RESTARTED (not live for
 *            `grace` ticks, then LIVE)
 *
 * A restarted node lost every leadership it held, so replicas that were
 * following it quietly must stop treating its heartbeats as their leader's
 * and run an election: the grace period gives them the time to. Liveness
 * only keeps quiet followers from campaigning and counts for a quiet
 * leader's check-quorum; it never extends a lease (replication/paxos_lease.c). */
#ifndef MERIDIAN_SERVER_LIVENESS_H
#define MERIDIAN_SERVER_LIVENESS_H

#include <stddef.h>
#include <stdint.h>

#define LIVENESS_MAX_PEERS 64

typedef struct liveness_peer {
    uint64_t node;
    uint64_t incarnation;
    uint64_t last_tick; /* tick of the newest heartbeat */
    uint64_t live_from; /* not live before this tick (after a restart) */
    int dead_reported;  /* liveness_tick reported it dead since it was last live */
} liveness_peer;

typedef struct liveness {
    uint64_t now; /* ticks so far */
    uint64_t timeout, grace;
    liveness_peer p[LIVENESS_MAX_PEERS];
    size_t n;
} liveness;

typedef enum liveness_event {
    LIVENESS_SAME = 0,     /* nothing changed */
    LIVENESS_CAME_UP = 1,  /* first heartbeat, or the first after it was dead */
    LIVENESS_RESTARTED = 2 /* a new incarnation: its old leaderships are gone */
} liveness_event;

/* timeout: ticks without a heartbeat before a node counts as dead; grace:
 * ticks a restarted node is held not live. */
void liveness_init(liveness *l, uint64_t timeout, uint64_t grace);
/* A heartbeat from node (incarnation: a number new at each start of it).
 * Returns a liveness_event, or -1 when node is 0 or the table is full. */
int liveness_heard(liveness *l, uint64_t node, uint64_t incarnation);
/* One tick passed. Writes the nodes that just became dead (each once per
 * death) to dead[] (up to cap) and returns how many. */
size_t liveness_tick(liveness *l, uint64_t *dead, size_t cap);
int liveness_is_live(const liveness *l, uint64_t node);

#endif
