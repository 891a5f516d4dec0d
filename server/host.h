/* The replica host: everything a node needs to run its range replicas.
 *
 * It owns the node's log store (one for all groups, group commit on its own
 * I/O thread), the TrueTime clock and HLC, a tick timer that drives every
 * Paxos group, the "paxos.msg" transport over rpc, and the node address book
 * that tells rpc where peers listen. Replicas (server/replica.h) plug into it.
 *
 * Threading: everything here runs on the rpc loop thread except
 * host_open/host_close (called through rpc_node_run_sync) and the log store's
 * notifier, which only queues completions and wakes the loop (uv_async). */
#ifndef MERIDIAN_SERVER_HOST_H
#define MERIDIAN_SERVER_HOST_H

#include <stdint.h>
#include <uv.h>

#include "common/err.h"
#include "replication/logstore.h"
#include "replication/paxos.h"
#include "rpc/rpc.h"
#include "timesvc/hlc.h"
#include "timesvc/hlc_uv.h"
#include "timesvc/tt_uv.h"
#include "timesvc/tt.h"

#define HOST_SNAPSHOT_EVERY 4096 /* as the Paxos core's want_snapshot hint */
#define HOST_TICK_MS        50   /* Paxos tick: heartbeats every 2, elections after 10-20 */

typedef struct replica replica;
typedef struct host host;

/* The address book: where every known node listens. Persisted in
 * DIR/peers so a restarted node can reach the others at once. */
#define HOST_MAX_PEERS 64
typedef struct host_peer {
    uint64_t id;
    char addr[64];
} host_peer;

typedef struct host_config {
    const char *store_dir;   /* the node's store directory */
    uint64_t node_id;        /* 0 before the node has joined a cluster */
    tt_config clock;         /* source, bounds, skew */
    tt_chrony_config chrony; /* where chronyd answers, for the chrony source */
    int testing_disk_faults; /* log writes fail (ENOSPC) while STORE/TESTING_DISK_FULL exists */
} host_config;

struct host {
    rpc_node *rpc;
    uv_loop_t *loop;
    uint64_t node_id;
    char ranges_dir[4096];
    logstore *ls;
    tt_clock clock;
    hlc hlc;
    hlc_keeper keeper;
    tt_chrony chrony;
    int chrony_on;
    tt_kernel kernel;
    int kernel_on;
    int hlc_keeper_on;
    uv_timer_t tick;
    uv_async_t ls_async;
    int closing;
    /* log store completions, queued by the I/O thread */
    struct host_done *done_head, *done_tail;
    void *done_mu; /* pthread_mutex_t*, kept opaque here */
    /* batches in flight: id -> (range, persist seq) */
    struct host_inflight *inflight;
    uint64_t next_batch_id;
    char disk_full_path[4096]; /* --testing-disk-faults: the flag file, or "" */
    logstore_io disk_io;
    host_peer peers[HOST_MAX_PEERS];
    size_t npeers;
    char peers_path[4200];
    replica **reps;
    size_t nreps, capreps;
    /* Some replica may be paused for a full disk (replica_retry.c): the tick
     * walks the replicas only then, not every tick on a 10k-range node. */
    int paused_hint;
    uint64_t ticks;
    /* counters for /metrics */
    uint64_t msgs_in, msgs_out, msgs_bad, persists, applied_entries;
    uint64_t snaps_taken, snaps_installed;
    /* A replica snapshots (and truncates its log) once snap_every slots were
     * applied since its last snapshot AND the log written since is at least
     * a quarter of the last snapshot's size (so snapshot work stays within 4x
     * the log bytes written). MERIDIAN_TESTING_SNAPSHOT_EVERY=N (tests) sets
     * snap_every and drops the size rule. */
    uint64_t snap_every;
    int snap_size_rule;
    struct host_live *live; /* node liveness and the tick set (host_liveness.c) */
    uint64_t kv_not_leader; /* kv answers NOT_LEADER (clients then retry elsewhere) */
    struct host_clock *clk; /* restart wait and peer offset check (host_clock.c) */
    /* Ranges with proposals held this loop round, flushed before the loop
     * blocks (host_flush_later). */
    uv_prepare_t flush_prep;
    uint64_t *flush_ids;
    size_t nflush, capflush;
    /* Election messages for groups not hosted yet (parked.h), or NULL. */
    struct parked_tab *parked;
};

/* Opens the log store and ranges under cfg->store_dir, restarts every replica
 * found there, and starts ticking. Loop thread. */
int host_open(host *h, rpc_node *rpc, const host_config *cfg, merr *e);
/* Stops ticking, closes replicas and the log store. Loop thread; the handles
 * finish closing as the loop runs on. */
void host_close(host *h);
/* Sets the node id once the node joined a cluster (only from 0). */
void host_set_node_id(host *h, uint64_t node_id);

int host_set_peer(host *h, uint64_t id, const char *addr);
const char *host_peer_addr(host *h, uint64_t id);
/* The other nodes' addresses, comma-separated, into csv (cut at cap);
 * callable from any thread. Returns the length written. */
size_t host_peer_addrs(host *h, char *csv, size_t cap);

replica *host_find(host *h, uint64_t range_id);
/* The replica whose span holds key (NULL if none here). */
replica *host_find_key(host *h, const uint8_t *key, size_t klen);
int host_add(host *h, replica *r);
/* Takes r out of the host (a range merged away); the caller frees it. */
void host_remove(host *h, replica *r);

/* The current TrueTime interval (MERR_CLOCK when it cannot be vouched for). */
int host_now(host *h, tt_interval *tt, merr *e);
/* Internal, for replica.c: submit a log store batch for (r, seq). */
int host_persist(host *h, replica *r, logstore_batch *b, uint64_t id, uint64_t seq);
/* Queues w until tt_after(t_ns); then replica_commit_waited(w, status). */
typedef struct replica_wait replica_wait;
int host_commit_wait(host *h, int64_t t_ns, replica_wait *w);
uint64_t host_batch_id(host *h);
/* Calls replica_flush(range) once this loop round's callbacks are done.
 * MERR_NOMEM: flush now instead. */
int host_flush_later(host *h, uint64_t range_id);
/* Appends Prometheus text: Paxos, log store, clock and per-range gauges. */
void host_metrics_render(host *h, mbuf *out);
/* Sends one Paxos message to its destination node. */
void host_send(host *h, const paxos_msg *m);
/* Sends the answers queued so far now (rpc_node_flush), before slower work. */
void host_flush_replies(host *h);

/* ---- node liveness and the tick set (server/host_liveness.c) ----
 * Every HOST_LIVENESS_TICKS ticks the node sends each peer in its address
 * book one "node.live" message (cost O(peers), not O(ranges)). Only awake
 * replicas are ticked: one goes to sleep when quiet with every voter's node
 * live (ticking it would change nothing: the core resets a quiet follower's
 * election timer on LIVENESS from its leader, and a quiet leader counts
 * LIVENESS for check-quorum), and wakes when it steps, or when a node of its
 * group dies or restarts. */
#define HOST_LIVENESS_TICKS   2  /* heartbeat every 2 ticks (100 ms) */
#define HOST_LIVENESS_TIMEOUT 10 /* ticks without one: dead (the election timeout) */
#define HOST_LIVENESS_GRACE   30 /* ticks a restarted node counts as not live */
int host_liveness_open(host *h, merr *e);
void host_liveness_close(host *h);
/* One tick: heartbeats out, deaths noticed, awake replicas ticked. */
void host_liveness_tick(host *h);
/* 1 if node (or this node itself) counts as live. */
int host_node_live(host *h, uint64_t node);
/* Puts r in / takes it out of the tick set (replica.c). */
void host_wake(host *h, replica *r);
void host_sleep(host *h, replica *r);
size_t host_awake_count(host *h);
void host_liveness_metrics(host *h, mbuf *out);
/* host_clock.c: when this node must not use its clock although the source
 * vouches for it — until the wall clock passed the previous run's HLC mark,
 * and while its offset to a majority of peers is beyond the bounds
 * (timesvc/offset_check.h). host_now() fails with MERR_CLOCK then. */
int host_clock_start(host *h, merr *e);
void host_clock_stop(host *h);
int host_clock_gate(host *h, const tt_interval *tt, merr *e);
void host_clock_metrics(host *h, mbuf *out);

#endif
