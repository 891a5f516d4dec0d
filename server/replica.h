/* A range replica on this node: one Multi-Paxos group (replication/paxos.h)
 * whose chosen entries are applied to one SQLite range store (storage/).
 *
 * Log entries carry storage batches (range_batch_encode): one proposal = one
 * batch of writes at one timestamp. Paxos may put several proposals in one
 * slot, so the store's applied counter is (slot << 8 | index): every proposal
 * is applied exactly once, also across a crash in the middle of a slot.
 *
 * Durable layout in the node's log store, per group (= range id):
 *   hard state  [promised.round u64][promised.node u32][genesis members]
 *               then, once it has one: [snapshot slot u64][members after it]
 *   entry       ballot = round; value = [type u8][ballot.node u32][data]
 * The genesis membership (the voters the group was created with) is what
 * every replica of the group starts from; later changes are in the log.
 * Snapshots (server/replica_snap.c) truncate the log; docs/operations.md. */
#ifndef MERIDIAN_SERVER_REPLICA_H
#define MERIDIAN_SERVER_REPLICA_H

#include <stdint.h>

#include "common/err.h"
#include "replication/paxos.h"
#include "server/host.h"
#include "storage/range.h"

#define REPLICA_MAX_PER_SLOT 255 /* proposals per slot: the index's 8 bits */
#define REPLICA_WINDOW       8   /* Paxos slots in flight beyond the chosen prefix */

/* A write finished: code 0 and its commit timestamp (after commit-wait), or
 * an error (MERR_NOT_LEADER, MERR_RETRY: dropped before it got a slot and
 * certainly not applied; MERR_TIMEOUT: outcome unknown). */
typedef void (*replica_write_cb)(void *arg, int code, const char *msg, uint64_t commit_ts);

/* A new replica: creates its store (span from d) and records the genesis
 * membership durably before returning. */
int replica_create(host *h, const range_desc *d, const paxos_members *genesis, replica **out,
                   merr *e);
/* A replica found in the log store at start. */
int replica_restore(host *h, uint64_t range_id, replica **out, merr *e);
void replica_free(replica *r);

uint64_t replica_id(const replica *r);
range *replica_store(replica *r);
paxos_group *replica_group(replica *r);
/* 1 if key falls in this replica's span. */
int replica_contains(replica *r, const uint8_t *key, size_t klen);
/* 1 for the empty copy of range 1 a node creates when it joins, while it
 * is not a member of range 1 and has applied nothing: it holds no data and
 * will only catch up if range 1's leader adds this node. Its span (the
 * whole key space of the genesis descriptor) is not the range's, so it is
 * no home for a key and no obstacle to creating another range's replica
 * here; every other replica is none. */
int replica_placeholder(replica *r);
/* 1 while this replica holds a valid lease (may serve reads and writes). */
int replica_is_leaseholder(replica *r);
/* 1 when a strong read may be answered here at ts (a fresh HLC timestamp)
 * with no write of its own: the lease holds through ts, and nothing is in
 * flight, so no write can still land at or below it (every slot given out
 * is applied, no proposal waits for one, none of ours is pending). */
int replica_settled_at(replica *r, uint64_t ts);
/* Runs cb(arg, 0, NULL, ts) once ts has certainly passed on every clock
 * (commit-wait, with no write behind it), or cb(arg, MERR_CLOCK, ..) when
 * the clock cannot say; maybe before returning. 0, or MERR_NOMEM and cb
 * will not run. */
int replica_wait_past(replica *r, uint64_t ts, replica_write_cb cb, void *arg);
uint64_t replica_leader_hint(replica *r);

/* Events from the host. */
void replica_on_msg(replica *r, const paxos_msg *m);
void replica_tick(replica *r);
void replica_persisted(replica *r, uint64_t seq, int status);
/* Gives slots to the proposals held back this loop round (host.c calls it
 * before the loop blocks). */
void replica_flush(replica *r);
void replica_liveness(replica *r, uint64_t node);
/* Starts an election now (bootstrap of a one-voter group). */
void replica_campaign(replica *r);

/* Proposes a batch of writes at a fresh timestamp; cb runs once. deadline_ns
 * is monotonic (0: none): past it the caller gets MERR_TIMEOUT. */
int replica_write(replica *r, const range_write *w, size_t n, int64_t deadline_ns,
                  replica_write_cb cb, void *arg, merr *e);
/* replica_write() for a caller whose cb only answers a client: once the write
 * is chosen (durable on a majority) and commit-waited, cb runs and the answer
 * is sent *before* this replica applies it to its store, taking the SQLite
 * transaction off the client's latency. The apply still completes in the same
 * loop callback, so no request can read the store in between. */
int replica_write_early(replica *r, const range_write *w, size_t n, int64_t deadline_ns,
                        replica_write_cb cb, void *arg, merr *e);
/* Membership change through the log (leader only): PAXOS_ADD_LEARNER etc. */
int replica_change_members(replica *r, int op, uint64_t node, merr *e);
/* Clean shutdown: asks another voter to take over if this replica leads
 * (returns 1 when a transfer started). */
int replica_hand_off(replica *r);
/* Asks this leader to hand leadership (and the lease) to voter `to`, the
 * way replica_hand_off does: 0 when the transfer started or is under way
 * (the target is caught up first), MERR_NOT_LEADER, MERR_INVALID (not a
 * voter), MERR_BUSY (a transfer to another node is pending), MERR_CLOCK. */
int replica_transfer_lease(replica *r, uint64_t to);
/* 1 while writes are in flight or leadership has not moved yet. */
int replica_draining(replica *r);
/* Fails writes past their deadline (called on every tick). */
void replica_expire(replica *r, int64_t now_mono_ns);

/* Splits the range at key (leaseholder only): [key, end) becomes range
 * new_id, which the caller allocated (never reused). cb runs once the split
 * applied here (0), or with MERR_RANGE if the range changed first. Refused
 * while a membership change is in flight or 2PC intents are prepared
 * (MERR_BUSY), for keys not strictly inside the span (MERR_RANGE) and for
 * system keys (MERR_INVALID). server/replica_split.c. */
int replica_split(replica *r, const uint8_t *key, size_t klen, uint64_t new_id, int64_t deadline_ns,
                  replica_write_cb cb, void *arg, merr *e);
/* ---- merges (server/replica_merge.c) ---- */
/* Freezes this range (leaseholder) for a merge into its left neighbour: cb
 * gets 0 and, in place of a commit timestamp, the freeze slot (the first
 * one if it froze before), or MERR_BUSY while 2PC intents are prepared. */
int replica_freeze(replica *r, int64_t deadline_ns, replica_write_cb cb, void *arg, merr *e);
/* Proposes MERGE on the left range l (leaseholder): right_id, frozen at
 * freeze_slot with generation right_gen, is absorbed. cb runs once it
 * applied here (0) or was refused (MERR_RANGE). Needs the same voters on
 * both (MERR_BUSY otherwise). */
int replica_merge(replica *l, uint64_t right_id, uint64_t right_gen, uint64_t freeze_slot,
                  int64_t deadline_ns, replica_write_cb cb, void *arg, merr *e);
/* 0 if l and its neighbour rr have the same voters and no change in flight. */
int replica_merge_ready(replica *l, replica *rr, merr *e);
/* The local replica whose span starts where l's ends (NULL: none here). */
replica *replica_right_neighbour(replica *l);
/* The freeze slot (0: not frozen). A frozen range serves nothing. */
uint64_t replica_frozen(replica *r);
/* The range r absorbed in its last merge since this process started (0: none). */
uint64_t replica_absorbed(replica *r);
/* At start: drops right replicas whose merge committed before a crash. */
void replica_merge_cleanup(host *h);

/* ---- load (server/replica_load.c) ---- */
/* Counts a read served here of key (a scan: its start), sampled for the load
 * key; writes count themselves in replica_write (replica_note_write). */
void replica_note_read(replica *r, const uint8_t *key, size_t klen);
void replica_note_write(replica *r, const range_write *w, size_t n);
/* Reads and writes per second since the previous call (0 the first time),
 * and in key (room for PD_LOADKEY_KEY_MAX bytes) the load median of that
 * window (*klen 0: none, placement/pd_loadkey.h). A new window starts; its
 * requests are sampled while this one's reads + writes per second reached
 * sample_qps (> 0; the caller passes 0 unless it holds the lease). */
void replica_load(replica *r, int64_t now_ns, double sample_qps, double *reads_per_s,
                  double *writes_per_s, uint8_t *key, size_t *klen);
/* The same rates since the last replica_load, without starting a window
 * (debug ranges: looking must not change what the heartbeat reports). */
void replica_load_peek(replica *r, int64_t now_ns, double *reads_per_s, double *writes_per_s);
/* How long ago (monotonic) the span last changed here: split, merge, start. */
int64_t replica_span_age_ns(replica *r, int64_t now_ns);

/* The store's generation (grows with every split/merge) and span. */
uint64_t replica_generation(replica *r);
/* Ids of this replica's proposals not yet applied: the newest and the
 * oldest (0: none). Ids grow with each proposal. */
uint64_t replica_newest_pending(replica *r);
uint64_t replica_oldest_pending(replica *r);
void replica_span(replica *r, const uint8_t **start, size_t *slen, const uint8_t **end,
                  size_t *elen);

/* ---- follower reads (server/replica_close.c) ----
 * The greatest ts this replica (leader or follower) can serve a snapshot read
 * at without waiting: min(closed ts, just below the earliest in-doubt
 * prepare); 0 when unknown (a broken replica, an unreadable store). */
uint64_t replica_safe_time(replica *r);
uint64_t replica_closed_ts(const replica *r);

/* For the host's commit-wait queue. */
void replica_commit_waited(replica_wait *w, int status);

/* ---- lease on demand (server/replica_lease.c) ---- */
#define REPLICA_LEASE_WAIT_NS 2000000000LL /* longest a request waits for a renewal */
/* The lease is valid (code 0), or it never came back in time (MERR_NOT_LEADER,
 * MERR_CLOSED when the replica goes away). */
typedef void (*replica_lease_cb)(void *arg, int code);
/* Returns 0 when this replica holds a valid lease now; 1 when it leads but its
 * lease lapsed (a quiet group): it asks for grants and runs cb once, when the
 * lease is valid or by deadline_ns (monotonic; 0 or later than
 * REPLICA_LEASE_WAIT_NS from now: that); MERR_NOT_LEADER when it does not
 * lead (the client must go elsewhere). */
int replica_lease_wait(replica *r, int64_t deadline_ns, replica_lease_cb cb, void *arg);
/* Runs the waiters whose lease came (after every step) or whose time is up
 * (now_mono_ns != 0, on ticks). */
void replica_lease_poll(replica *r, int64_t now_mono_ns);
/* The lease is valid, or this is a quiet leader whose lease lapsed but would
 * be renewed on the next request (it leads and a majority of its voters'
 * nodes are live): for gauges and operators, "this replica is where the
 * range is served". Serving still needs replica_is_leaseholder. */
int replica_is_lease_owner(replica *r);
/* Starts a renewal if this quiet leader's lease lapsed (nobody waits for it). */
void replica_lease_nudge(replica *r);
/* 1 while this replica holds a valid lease; else nudges a quiet leader to renew
 * (the caller answers NOT_LEADER; the retry finds the lease) and says 0. */
int replica_lease_check(replica *r);
/* Feeds PAXOS_EV_LIVENESS for every live voter while the group is quiet. */
void replica_feed_liveness(replica *r);
/* A replica gone to sleep closes its SQLite handle (and page cache, and
 * its 2-3 file descriptors) when the node holds more than
 * REPLICA_OPEN_IDLE_MAX replicas; the next step or replica_store() reopens
 * it. So 10,000 idle ranges do not hold 10,000 SQLite connections. */
#define REPLICA_OPEN_IDLE_MAX 64
void replica_store_sleep(replica *r);
/* 1 when nothing needs ticks: the group is quiet and its voters' nodes are
 * live, and no write or lease waiter is pending. */
int replica_may_sleep(replica *r);
/* replica_retry.c (host tick): a replica paused after a failed log write (no
 * space) rebuilds itself from its durable state once its back-off passed;
 * if the disk is still full the next write pauses it again. */
void replica_retry_paused(host *h, int64_t now_mono_ns);

/* ---- replica moves (server/replica_move.c) ---- */
/* 1 while this replica leads its group (it proposes membership changes). */
int replica_is_leader(replica *r);
/* A new replica must start from a snapshot, never from the log's slot 1: a
 * range born from a split got its first data from its parent, in no log of
 * its own. 0 once the latest snapshot is at min_slot or later (a learner
 * added now starts from it, so it has applied its own addition), 1 while
 * one is being taken (ask again), MERR_RETRY while min_slot is not applied
 * yet. */
int replica_ensure_snapshot(replica *r, uint64_t min_slot);
/* Hands the lease to node, a voter (leader only). */
int replica_transfer(replica *r, uint64_t node, merr *e);
/* Takes r off its host and deletes its store and its log: for a replica its
 * group no longer counts as a member. MERR_BUSY while it leads or has log
 * writes in flight (r stays); on 0, r is freed. */
int replica_destroy(host *h, replica *r, merr *e);

#endif
