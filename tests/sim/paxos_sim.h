/* Shared state of the Paxos simulator (paxos_sim.c drives, paxos_sim_node.c
 * runs nodes and checks invariants). */
#ifndef MERIDIAN_TESTS_SIM_PAXOS_SIM_H
#define MERIDIAN_TESTS_SIM_PAXOS_SIM_H

#include "replication/paxos.h"
#include "sim/sim.h"

#include <stdint.h>

#define PS_MAX_NODES  7
#define PS_MAX_GROUPS 8
#define PS_TICK_NS    50000000LL /* 50 ms */

enum {
    PS_EV_TICK = 1,
    PS_EV_NET,
    PS_EV_SYNC,
    PS_EV_CRASH,
    PS_EV_RESTART,
    PS_EV_CLIENT,
    PS_EV_NEMESIS,
    PS_EV_SNAPSHOT,
};

/* The state machine of one replica: durable (SQLite stores the applied slot in
 * the same transaction as its effects), so it survives crashes. */
typedef struct ps_app {
    uint64_t applied;
    uint64_t hash; /* rolling hash of the applied sequence */
    uint64_t snap_slot;
    uint64_t snap_hash;
    paxos_members snap_members;
} ps_app;

typedef struct ps_node {
    int id; /* paxos node id (1..n) */
    int up;
    uint64_t inc; /* incarnation: events of a dead incarnation are ignored */
    sim_disk disk;
    sim_clock clock;
    paxos_group *g[PS_MAX_GROUPS];
    ps_app app[PS_MAX_GROUPS];
    uint64_t written[PS_MAX_GROUPS]; /* highest persist seq written, per group */
    int syncing;
    int64_t paused_until; /* a stalled process (GC, swap): events wait */
} ps_node;

/* What the whole cluster agreed on, per group (the oracle). */
typedef struct ps_global {
    uint64_t *ehash;  /* [slot] hash of the chosen value */
    uint64_t *prefix; /* [slot] rolling hash up to slot */
    uint64_t n;       /* slots known */
    paxos_members cfg;
    paxos_ballot max_promised; /* highest ballot any replica ever promised */
    uint64_t acked_slot;       /* highest slot holding a proposal acked to a client */
    uint64_t acked;
    int probe_done;      /* liveness phase: a probe proposal was chosen ... */
    uint64_t probe_slot; /* ... at this slot */
} ps_global;

/* Promises delivered per ballot, to check every new leader's phase-1 quorum. */
typedef struct ps_promises {
    paxos_ballot b;
    uint32_t mask; /* bit n: node n's promise arrived */
} ps_promises;

typedef struct ps_prop {
    uint64_t slot; /* where it was chosen, 0 if not (yet) */
    int group;
    int probe;   /* issued in the liveness phase */
    int dropped; /* the core said it will never be chosen */
} ps_prop;

typedef struct ps_sim {
    uint64_t seed;
    int nodes, groups;
    int64_t now;
    uint64_t step;
    sim_rng rng;
    sim_queue q;
    sim_net net;
    sim_trace tr;
    int64_t eps;
    int64_t lease_ns; /* per seed: short leases mean many lease handovers */
    int election_ticks;
    /* chance that a write is followed by a crash before its fsync */
    double crash_in_sync;
    /* per tick: the clock error jumps (still within ±eps) */
    double clock_jump;
    ps_node node[PS_MAX_NODES + 1];
    ps_global glob[PS_MAX_GROUPS];
    paxos_members genesis;
    ps_prop *props;
    uint64_t nprops, capprops;
    int failed;
    char why[256];
    int healing; /* liveness phase: no more faults */
    ps_promises prom[PS_MAX_GROUPS][64];
    unsigned promn[PS_MAX_GROUPS];
    /* stats */
    uint64_t elections, snapshots, installs, config_changes, transfers, crashes;
} ps_sim;

void ps_fail(ps_sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ps_node_start(ps_sim *s, int n, int fresh);
void ps_node_crash(ps_sim *s, int n);
void ps_node_free(ps_sim *s, int n);
/* Steps group gi on node n with ev and handles the whole update. */
int ps_step(ps_sim *s, int n, int gi, paxos_event *ev);
paxos_tt ps_tt(ps_sim *s, int n);
void ps_on_net(ps_sim *s, int to, int from, const uint8_t *p, size_t len);
void ps_on_sync(ps_sim *s, int n, uint64_t batch, const uint64_t *seqs);
void ps_check(ps_sim *s);
int ps_take_snapshot(ps_sim *s, int n, int gi);
int ps_leader_of(ps_sim *s, int gi);
void ps_crash_and_restart(ps_sim *s, int n);

#endif
