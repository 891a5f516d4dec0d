/* The placement driver's data model: a cluster snapshot (nodes, range
 * descriptors, placement policies, in-flight operations, the time "now"),
 * the cluster settings, and the operations the schedulers propose.
 *
 * Everything here is plain data. The schedulers (pd_sched.h) are pure
 * functions of a snapshot: no I/O, no clock reads (the snapshot carries
 * now_ns), no randomness. The PD's Paxos state machine fills a snapshot from
 * its registry and directory; tests fill one by hand.
 *
 * Keys are byte strings compared with memcmp (DESIGN.md §6). A range covers
 * [start, end); an empty start is the lowest key and an empty end means "to
 * the end of the key space". A cluster owns the bytes of every key in it: the
 * pd_cluster_add_* functions copy what they are given. */
#ifndef MERIDIAN_PLACEMENT_PD_MODEL_H
#define MERIDIAN_PLACEMENT_PD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

#define PD_NAME_MAX     32 /* region and zone names, with the NUL */
#define PD_MAX_REPLICAS 8  /* 5 voters + a learner + slack for a move */
#define PD_MAX_REGIONS  8  /* allowed regions per policy */

typedef uint64_t pd_node_id;  /* 0 = none */
typedef uint64_t pd_range_id; /* 0 = none */

typedef struct pd_key {
    uint8_t *p;
    size_t len;
} pd_key;

/* Liveness as the schedulers see it (pd_node_liveness derives it). */
typedef enum pd_liveness {
    PD_LIVE = 0,
    PD_SUSPECT,         /* missed heartbeats: take nothing new, remove nothing yet */
    PD_DEAD,            /* silent for node.dead_timeout: replicas get replaced */
    PD_DECOMMISSIONING, /* alive but draining: replicas and leases move off */
} pd_liveness;

typedef struct pd_node {
    pd_node_id id;
    char region[PD_NAME_MAX];
    char zone[PD_NAME_MAX];
    bool decommissioning;    /* set by `meridian node decommission` */
    uint64_t capacity_bytes; /* 0 = unknown: no fullness limit, no byte balancing */
    uint64_t used_bytes;     /* as reported: used for the fullness limit only */
    uint32_t replica_count;  /* as reported; the schedulers count from the directory */
    uint32_t leader_count;   /* as reported; idem */
    double reads_per_s, writes_per_s;
    int64_t last_heartbeat_ns; /* PD receipt time of the last heartbeat */
} pd_node;

typedef enum pd_role { PD_VOTER = 0, PD_LEARNER } pd_role;

typedef struct pd_replica {
    pd_node_id node;
    pd_role role;
    /* Learners: the leader reports the learner has the log up to the commit
     * index, so promoting it cannot stall the group. */
    bool caught_up;
    /* The replica this one was added to replace (0: none). Kept in the range
     * descriptor from ADD_LEARNER until the old replica is removed, so a move
     * resumes correctly after a PD failover: the intent is replicated state,
     * never scheduler memory. */
    pd_node_id replaces;
    /* Learners: when this PD term first saw it (0: unknown, never times out).
     * Volatile, stamped by pd_feed_stamp_learners. */
    int64_t learner_since_ns;
    /* Voters: the node's heartbeat does not list the range (pd_missing.h:
     * it skipped the split that would have made it). No home for the lease
     * until it hosts the range. Volatile, set by pd_feed_build. */
    bool unhosted;
} pd_replica;

typedef struct pd_range {
    pd_range_id id;
    pd_key start, end;
    uint64_t generation;
    pd_replica replicas[PD_MAX_REPLICAS];
    int n_replicas;
    pd_node_id leader; /* 0 = unknown (election in progress) */
    uint64_t size_bytes, keys;
    double reads_per_s, writes_per_s;
    pd_key mid_key;              /* storage's middle key (by bytes); len 0 = unknown */
    pd_key load_key;             /* load-median key (by requests); len 0 = unknown */
    int64_t last_split_merge_ns; /* 0 = never */
} pd_range;

typedef enum pd_survival {
    PD_SURVIVE_ZONE = 0, /* replicas in distinct zones */
    PD_SURVIVE_REGION,   /* replicas in distinct regions first, then zones */
} pd_survival;

/* A placement policy for the ranges whose start key lies in [start, end).
 * Policy spans never overlap; a range straddling a policy boundary is split
 * there. Ranges outside every policy use the default (settings). */
typedef struct pd_policy {
    pd_key start, end;
    int replication_factor; /* 1, 3 or 5 */
    char allowed_regions[PD_MAX_REGIONS][PD_NAME_MAX];
    int n_allowed;                 /* 0 = any region */
    char lead_region[PD_NAME_MAX]; /* "" = no preference */
    pd_survival survival;
} pd_policy;

typedef enum pd_op_kind {
    PD_OP_SPLIT = 0,
    PD_OP_MERGE,
    PD_OP_ADD_LEARNER,
    PD_OP_PROMOTE,
    PD_OP_REMOVE_REPLICA,
    PD_OP_TRANSFER_LEADER,
} pd_op_kind;

typedef enum pd_reason {
    PD_REASON_SIZE = 0,     /* split: range above range.max_bytes */
    PD_REASON_LOAD,         /* split: range above range.split_qps */
    PD_REASON_POLICY,       /* split: a policy boundary inside the range */
    PD_REASON_REPAIR,       /* replace a dead replica, restore the factor */
    PD_REASON_DECOMMISSION, /* drain a decommissioning node */
    PD_REASON_CONSTRAINT,   /* better diversity or an allowed region */
    PD_REASON_MOVE,         /* the next step of a move already under way */
    PD_REASON_REBALANCE,    /* replica counts or bytes out of balance */
    PD_REASON_LEADER_PREF,  /* preferred leader region */
    PD_REASON_LEADER_BALANCE,
    PD_REASON_MERGE, /* merge, or make replica sets equal before one */
} pd_reason;

/* An operation the PD is executing now. The range gets no other operation
 * until it finishes. */
typedef struct pd_inflight {
    pd_range_id range;
    pd_range_id range2; /* MERGE: the right-hand range */
    pd_op_kind kind;
    pd_node_id node; /* ADD_LEARNER: the target */
    pd_node_id from; /* ADD_LEARNER: the replica it replaces (0: none) */
} pd_inflight;

typedef struct pd_cluster {
    int64_t now_ns;
    pd_node *nodes;
    size_t n_nodes, cap_nodes;
    pd_range *ranges;
    size_t n_ranges, cap_ranges;
    pd_policy *policies;
    size_t n_policies, cap_policies;
    pd_inflight *inflight;
    size_t n_inflight, cap_inflight;
} pd_cluster;

typedef struct pd_settings {
    uint64_t range_max_bytes;       /* range.max_bytes: split above (64 MiB) */
    uint64_t range_min_bytes;       /* range.min_bytes: merge below (16 MiB) */
    double range_split_qps;         /* range.split_qps: reads+writes/s to split (2500) */
    double merge_qps_fraction;      /* cold = qps below this × split_qps (0.25) */
    int64_t merge_cooldown_ns;      /* no merge this soon after a split/merge (10 min) */
    int64_t dead_timeout_ns;        /* node.dead_timeout (30 s) */
    int64_t suspect_timeout_ns;     /* node.suspect_timeout (5 s: missed heartbeats) */
    double rebalance_threshold;     /* ± fraction of the mean (0.10) */
    uint32_t max_moves;             /* moves under way cluster-wide (8) */
    double max_fullness;            /* never place on a node fuller than this (0.95) */
    int default_replication_factor; /* outside every policy (3) */
    int64_t learner_timeout_ns;     /* move.learner_timeout (5 min): a learner not caught
                                       up this long is removed, so its move ends */
} pd_settings;

typedef struct pd_op {
    pd_op_kind kind;
    pd_reason reason;
    pd_range_id range;
    pd_range_id range2; /* MERGE: the right-hand neighbour */
    pd_node_id node;    /* target of ADD_LEARNER/PROMOTE/REMOVE/TRANSFER */
    pd_node_id from;    /* ADD_LEARNER: the replica it will replace (0: none) */
    pd_key key;         /* SPLIT: the first key of the new right-hand range */
} pd_op;

/* The schedulers' output. `unavailable` lists ranges that lost quorum: they
 * are reported for an operator, never touched blindly. */
typedef struct pd_ops {
    pd_op *v;
    size_t n, cap;
    pd_range_id *unavailable;
    size_t n_unavailable, cap_unavailable;
    merr err; /* why a scheduler returned an error */
} pd_ops;

/* Settings: defaults, and the checks that keep split and merge from undoing
 * each other (range.min_bytes ≤ max/2, merge_qps_fraction ≤ 0.5: two merged
 * ranges are then below both split thresholds). */
void pd_settings_default(pd_settings *s);
int pd_settings_validate(const pd_settings *s, merr *e);

/* Liveness rule: silent ≥ dead_timeout → DEAD; else decommissioning →
 * DECOMMISSIONING; else silent ≥ suspect_timeout → SUSPECT; else LIVE. A
 * heartbeat stamped after now counts as just received. */
pd_liveness pd_node_liveness(const pd_node *n, const pd_settings *s, int64_t now_ns);
const char *pd_liveness_name(pd_liveness l);

/* Keys. */
int pd_key_set(pd_key *k, const void *p, size_t len); /* copies; 0 or MERR_NOMEM */
void pd_key_free(pd_key *k);
int pd_key_cmp(const pd_key *a, const pd_key *b); /* memcmp order, shorter first */
bool pd_key_eq(const pd_key *a, const pd_key *b);
/* Whether k lies strictly inside (start, end) — a valid split point. */
bool pd_key_inside(const pd_key *k, const pd_key *start, const pd_key *end);

/* Cluster building. The add functions deep-copy keys and return 0,
 * MERR_NOMEM or MERR_INVALID (a name too long, too many replicas...). */
void pd_cluster_init(pd_cluster *c);
void pd_cluster_free(pd_cluster *c);
int pd_cluster_copy(pd_cluster *dst, const pd_cluster *src); /* dst uninitialised */
int pd_cluster_add_node(pd_cluster *c, const pd_node *n);
int pd_cluster_add_range(pd_cluster *c, const pd_range *r);
int pd_cluster_add_policy(pd_cluster *c, const pd_policy *p);
int pd_cluster_add_inflight(pd_cluster *c, const pd_inflight *f);
/* True when c's view of f's range already shows the finished replica step f
 * (ADD_LEARNER: the node is a member; PROMOTE: a voter; REMOVE_REPLICA: not
 * a member; TRANSFER_LEADER: the leader), so the next step may be planned
 * from it at once. Splits and merges never are: their effect is a new
 * span, which the executor lets fresh heartbeats bring. */
bool pd_inflight_visible(const pd_cluster *c, const pd_inflight *f);
pd_node *pd_cluster_node(const pd_cluster *c, pd_node_id id);    /* NULL if absent */
pd_range *pd_cluster_range(const pd_cluster *c, pd_range_id id); /* NULL if absent */
void pd_range_free(pd_range *r);
int pd_range_voters(const pd_range *r);
bool pd_range_has(const pd_range *r, pd_node_id id);
bool pd_range_has_learner(const pd_range *r);
/* A whole-snapshot check, run by every scheduler before it decides anything:
 * unique ids, known nodes, no node twice in a range, a leader that is a
 * voter, spans that are well-formed and do not overlap, sane policies. */
int pd_cluster_validate(const pd_cluster *c, merr *e);

/* Operations. */
void pd_ops_init(pd_ops *o);
void pd_ops_free(pd_ops *o);
void pd_ops_reset(pd_ops *o);
int pd_ops_push(pd_ops *o, const pd_op *op); /* copies op->key */
int pd_ops_push_unavailable(pd_ops *o, pd_range_id id);
const char *pd_op_kind_name(pd_op_kind k);
const char *pd_reason_name(pd_reason r);
/* "ADD_LEARNER range=7 node=4 from=2 reason=rebalance", for logs and tests. */
size_t pd_op_format(const pd_op *op, char *buf, size_t cap);

#endif
