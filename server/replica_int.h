/* Internals of a range replica shared by replica.c (the write and apply
 * path) and replica_snap.c (snapshots: taking, installing, restoring). */
#ifndef MERIDIAN_SERVER_REPLICA_INT_H
#define MERIDIAN_SERVER_REPLICA_INT_H

#include "server/replica.h"
#include "txn/safetime.h"

/* A write waiting to be chosen, applied and commit-waited. */
typedef struct pending_write {
    uint64_t id;
    uint64_t ts;
    int64_t deadline_ns;
    replica_write_cb cb;
    void *arg;
    int64_t t_prop, t_applied; /* put_stages.h (0 unless profiling) */
    int early;                 /* answer before the local apply (replica_write_early) */
    int orphan;                /* proposed under a lead since lost (replica.c, orphans) */
    int no_wait;               /* answered once applied, without commit-wait (2PC prepare/abort) */
    struct pending_write *next;
} pending_write;

struct replica {
    host *h;
    uint64_t range_id;
    paxos_group *g;
    range *store;
    paxos_members genesis;
    uint8_t *start, *end; /* span copy (end_len 0: unbounded) */
    size_t start_len, end_len;
    pending_write *pending; /* proposed, not yet applied; oldest first */
    pending_write *pending_tail;
    /* The lead this replica's pending writes were proposed under, and, once
     * it is lost, the last slot the old leader may have given them: past
     * it, an orphan still pending was not chosen (replica.c). */
    int led;
    paxos_ballot led_ballot;
    uint64_t orphans_upto;
    uint64_t next_prop;
    int early_next;                     /* replica_write_early() is proposing */
    int broken;                         /* applying failed: the replica stops until repaired */
    uint64_t snap_retry_at;             /* after a failed snapshot: not before this applied slot */
    uint64_t log_bytes;                 /* bytes of entries chosen since the last snapshot */
    uint64_t snap_len;                  /* size of the last snapshot taken or installed */
    struct snap_job *job;               /* a snapshot being read on a worker thread */
    struct lease_waiter *lease_waiters; /* parked until the lease is valid (replica_lease.c) */
    int awake;                          /* in the host's tick set (host_liveness.c) */
    /* A log write failed for lack of space (broken == REPLICA_PAUSED): the
     * replica rebuilds itself from its durable state at retry_at_ns
     * (replica_retry.c). inflight counts its batches in the log store. */
    int64_t retry_at_ns, retry_backoff_ns;
    uint32_t inflight;
    /* Completions the core must hear of that came while the clock could not
     * be trusted (replica_step drops events then): the highest persisted
     * sequence, and a snapshot install's outcome (late_install set; its
     * slot, 0 when it failed). Stepped before anything else once the clock
     * answers (replica.c step_late). */
    uint64_t late_persisted;
    int late_install;
    uint64_t late_install_slot;
    /* Merges (replica_merge.c): frozen is the slot at which this range froze
     * for a merge into its left neighbour (0: not frozen; every later write
     * is refused). stall holds chosen entries not applied yet because a
     * MERGE waits for the local right replica to reach its freeze. */
    uint64_t frozen;
    /* The range this one absorbed last (in memory: a restart forgets, and
     * a retried merge is then refused rather than answered; node_merge.c). */
    uint64_t absorbed;
    paxos_entry *stall;
    size_t nstall;
    /* Load for heartbeats (replica_load.c): counts, and the counts and
     * monotonic time of the last report; span_ns: when the span changed. */
    uint64_t nreads, nwrites, load_reads, load_writes;
    int64_t load_ns, span_ns;
    struct pd_loadkey *lk; /* request keys sampled this window: hot leaseholders only */
    /* Safe time for follower reads (replica_close.c): the closed ts applied
     * from the log and the in-doubt intents (rebuilt from the store when
     * doubt_clean is 0); the last applied write ts, which the leaseholder
     * keeps closing up to; its close in flight and when it was proposed. */
    txn_safe safe;
    int doubt_clean;
    uint64_t last_write_ts;
    int close_inflight;
    int64_t close_at_ns;
};

#define REPLICA_PAUSED 2 /* r->broken: paused after a full disk, retrying */

/* replica_retry.c: a log write of r failed with no space (its pending
 * writes were failed): pause r, retry later. */
void replica_pause_for_disk(replica *r, int status);

/* Hard state blob (the log store's per-group hard state):
 *   [promised.round u64][promised.node u32][genesis members]
 *   then, once the group has a snapshot: [snap_slot u64][members after it]
 * Members encode as paxos_members_encode (self-delimiting). */
int replica_encode_hardstate(const paxos_ballot *b, const paxos_members *genesis,
                             uint64_t snap_slot, const paxos_members *snap_members, mbuf *out);
int replica_decode_hardstate(const uint8_t *p, size_t n, paxos_ballot *b, paxos_members *genesis,
                             uint64_t *snap_slot, paxos_members *snap_members);

/* Steps the core with ev (fills ev->now) and handles the update. */
void replica_step(replica *r, paxos_event *ev);
void replica_range_path(host *h, uint64_t id, char *out, size_t cap);
int replica_set_span(replica *r);

/* replica_lease.c: reopens the store closed while the replica slept (a
 * failure stops the replica: r->broken). */
void replica_store_ensure(replica *r);
/* replica_lease.c: runs every parked lease waiter with code (replica_free). */
void replica_lease_fail_all(replica *r, int code);
uint64_t replica_composite(uint64_t slot, uint32_t idx);
pending_write *replica_take_pending(replica *r, uint64_t id);
/* Proposes pre-encoded command bytes (range_cmd.h); ts is the write's
 * timestamp (0 for split/merge). cb runs once, as for replica_write. */
int replica_propose(replica *r, const uint8_t *data, size_t len, uint64_t ts, int64_t deadline_ns,
                    replica_write_cb cb, void *arg, merr *e);
/* The same, but cb runs as soon as the command applied here, without
 * commit-wait: for records that reveal no commit (a 2PC prepare, an abort).
 * The one commit-wait of a 2PC commit is the coordinator's, on s. */
int replica_propose_unwaited(replica *r, const uint8_t *data, size_t len, uint64_t ts,
                             replica_write_cb cb, void *arg, merr *e);

/* replica_close.c */
#define REPLICA_CLOSE_EVERY_NS (100LL * 1000000) /* at most one close in flight, this often */
#define REPLICA_CLOSE_WAIT_NS  (5LL * 1000000000)
#define REPLICA_CLOSE_LAG_NS   0LL /* closes target tt.earliest - lag (MERIDIAN_CLOSED_LAG_MS) */
/* An applied batch (is_close: a CLOSE entry applied as an empty batch at its
 * closed ts) feeds the safe-time tracker. */
void replica_safe_applied(replica *r, const range_batch *b, int is_close);
/* Tick (awake replicas): the leaseholder proposes the next close when due. */
void replica_close_tick(replica *r);
/* 1 while this leaseholder has not closed past its last write (keeps it awake). */
int replica_close_due(replica *r);

/* replica_split.c */
struct range_cmd;
/* Completes proposal id (if it is ours) with code/msg; val goes where a
 * write's commit timestamp would (FREEZE: the freeze slot). */
void replica_finish_cmd(replica *r, uint64_t id, int code, const char *msg, uint64_t val);
/* Consumes a slot without effect (the applied counter still moves). */
int replica_apply_noop(replica *r, uint64_t slot);

/* replica.c: applies chosen entries in log order; REPLICA_STALLED (> 0)
 * when entry *done (not applied past its command) must wait. */
#define REPLICA_STALLED 1
int replica_apply_entries(replica *r, const paxos_entry *en, size_t n, size_t *done,
                          uint64_t *bad_slot);

/* replica_merge.c */
int replica_apply_freeze(replica *r, const struct range_cmd *c, uint64_t slot, uint64_t id);
int replica_apply_merge(replica *r, const struct range_cmd *c, uint64_t slot, uint64_t id);
/* Applies chosen entries, or queues them behind a stalled MERGE. */
int replica_apply_or_stall(replica *r, const paxos_entry *en, size_t n, uint64_t *bad_slot);
/* Drops the frozen local replicas that l now covers with a newer
 * generation: the right sides of merges l got from a snapshot (the MERGE
 * entries that would have dropped them were skipped). */
void replica_merge_cleanup_into(replica *l);
/* Retries the stalled entries (ticks). */
void replica_stall_retry(replica *r);
void replica_stall_free(replica *r);
/* Applies a split/merge command chosen at composite slot `slot` (proposal
 * id `id`) on this replica; idempotent on replay. Nonzero only when the
 * store failed (the replica then stops). */
int replica_apply_cmd(replica *r, const struct range_cmd *c, uint64_t slot, uint64_t id);

/* replica_snap.c */
/* Takes a snapshot when the log behind the applied point passed the host's
 * threshold (or the core hinted; hinted == 2: now, whatever the size rule
 * says, for a replica move); truncates the log through the core. */
void replica_maybe_snapshot(replica *r, int hinted);
/* Called by replica_free: a snapshot job in flight finishes without it. */
void replica_snap_detach(replica *r);
/* Installs a snapshot the core received, swapping the store, then steps
 * PAXOS_EV_SNAPSHOT_INSTALLED (slot 0 when it failed). */
void replica_install(replica *r, const paxos_install *in);
/* The whole store as one snapshot blob (concatenated range_snap chunks). */
int replica_snap_blob(range *store, mbuf *out, merr *e);

#endif
