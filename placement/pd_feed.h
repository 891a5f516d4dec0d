/* Heartbeats in, a scheduler snapshot out: the PD leader keeps the latest
 * heartbeat of every node (volatile: rebuilt from fresh heartbeats after a
 * PD failover) and turns them, with the registry's node ids, into the
 * pd_cluster that pd_schedule reads. Pure: times are arguments.
 *
 * Rules: a range's span, generation, members and leader come from the report
 * of a node that holds its lease (the leaseholder applies every membership
 * change and split first); of two leaseholder reports for overlapping spans
 * (one stale across a split) the higher generation wins, and of equal
 * generations the fresher heartbeat (a dead or deposed leader's last report
 * must not hide changes made since). A range nobody
 * leads is left out: no operation could run there this round. A learner is
 * caught up when the leaseholder's Paxos state has seen it acknowledge the
 * log or a snapshot (learner_acked > 0) up to within PD_FEED_CATCHUP_SLOTS
 * Paxos slots of the leaseholder's applied slot; the learner's own report
 * proves nothing (it may predate its addition, or be another node's stale
 * idea). A registry node never heard from since this PD took
 * over counts as heard at `since_ns`, so a new PD leader gives every node a
 * full node.dead_timeout before calling it dead. A range's last split or
 * merge is the winning report's received_ns minus its span age. */
#ifndef MERIDIAN_PLACEMENT_PD_FEED_H
#define MERIDIAN_PLACEMENT_PD_FEED_H

#include "placement/pd_model.h"

#define PD_FEED_CATCHUP_SLOTS 16

typedef struct pd_hb_replica {
    pd_range_id range;
    uint64_t generation;
    pd_key start, end;
    pd_node_id voters[PD_MAX_REPLICAS], learners[PD_MAX_REPLICAS];
    int n_voters, n_learners;
    /* leaseholder only: per learners[i], the slot it acknowledged (0: none) */
    uint64_t learner_acked[PD_MAX_REPLICAS];
    uint64_t size_bytes, keys, applied; /* applied: the Paxos applied slot */
    double reads_per_s, writes_per_s;
    bool leaseholder;
    pd_key mid_key;      /* len 0: not reported */
    pd_key load_key;     /* load median (pd_loadkey.h); len 0: not reported */
    int64_t span_age_ns; /* since the span last changed, at received_ns; 0: unknown */
} pd_hb_replica;

typedef struct pd_hb {
    pd_node_id node;
    int64_t received_ns;
    uint64_t capacity_bytes, used_bytes;
    char region[PD_NAME_MAX], zone[PD_NAME_MAX]; /* the node's locality ("": unknown) */
    pd_hb_replica *replicas;
    size_t n_replicas;
} pd_hb;

typedef struct pd_hb_table {
    pd_hb *v;
    size_t n, cap;
} pd_hb_table;

void pd_hb_free(pd_hb *hb);
void pd_hb_table_init(pd_hb_table *t);
void pd_hb_table_free(pd_hb_table *t);
/* Takes hb over (its replicas and keys), replacing that node's earlier
 * heartbeat. 0 or MERR_NOMEM (then hb is freed). */
int pd_hb_table_put(pd_hb_table *t, pd_hb *hb);
const pd_hb *pd_hb_table_get(const pd_hb_table *t, pd_node_id node);
/* Whether hb lists a replica of range id. */
int pd_hb_reports(const pd_hb *hb, pd_range_id id);

/* When this PD term first saw each learner (volatile, like the heartbeats). */
typedef struct pd_learner_seen {
    pd_range_id range;
    pd_node_id node;
    int64_t since_ns;
} pd_learner_seen;

typedef struct pd_learner_table {
    pd_learner_seen *v;
    size_t n;
} pd_learner_table;

void pd_learner_table_free(pd_learner_table *t);
/* Stamps every learner of c with the time t first saw it (c->now_ns for a
 * new one) and keeps in t only the learners c has. 0 or MERR_NOMEM (then t
 * and c are unchanged). */
int pd_feed_stamp_learners(pd_learner_table *t, pd_cluster *c);

/* Fills `out` (pd_cluster_init'ed, empty) with nodes = registry ∪ heard-of
 * nodes and ranges per the rules above; now_ns goes to out->now_ns. 0,
 * MERR_NOMEM or MERR_INVALID (e says why). */
int pd_feed_build(const pd_hb_table *t, const pd_node_id *registry, size_t n_registry,
                  const pd_node_id *decommissioning, size_t n_decommissioning, int64_t since_ns,
                  int64_t now_ns, pd_cluster *out, merr *e);

#endif
