/* Internal to placement/: the derived view every scheduler works from, and
 * the placement scoring they share (which node to add, which replica to drop).
 *
 * Counts are "planned": a replica that is being replaced (another replica's
 * `replaces` names it, or an in-flight or just-proposed ADD_LEARNER names it
 * as `from`) no longer counts on its node, and the new one counts on the
 * target. So a run sees moves under way as done, never proposes the same
 * relief twice, and its decisions are those of the finished state. */
#ifndef MERIDIAN_PLACEMENT_PD_VIEW_H
#define MERIDIAN_PLACEMENT_PD_VIEW_H

#include "placement/pd_model.h"
#include "placement/pd_sched.h"

typedef struct pd_nstat {
    pd_liveness live;
    int replicas;       /* planned replica count */
    int leaders;        /* leaders per the directory and proposed transfers */
    uint64_t dir_bytes; /* planned bytes: the sizes of the ranges it holds */
} pd_nstat;

typedef struct pd_view {
    const pd_cluster *c;
    const pd_settings *s;
    pd_ops *out;
    pd_nstat *n;            /* parallel to c->nodes */
    int *policy;            /* per range: index into c->policies, -1 = default */
    unsigned char *busy;    /* per range: an op in flight or proposed this run */
    unsigned char *moving;  /* per range: a move under way (counts against max_moves) */
    unsigned char *merging; /* per range: half of a pair the merge scheduler wants */
    uint32_t moves;         /* ranges with a move under way, this run's included */
    struct pd_id_idx *idx_nodes, *idx_ranges; /* private: lookup by id */
} pd_view;

/* Placement quality of a set of replicas under a policy, compared
 * lexicographically (higher is better). Dead and draining nodes do not count. */
typedef struct pd_quality {
    int allowed; /* replicas in allowed regions */
    int regions; /* distinct regions (only when the policy asks for it) */
    int zones;   /* distinct (region, zone) pairs */
    /* Replicas in the preferred leader region (only when the policy names
     * one), counted up to pd_view_lead_want. Last, so it never costs
     * diversity; it is what draws the replica of a factor-1 range (or one of
     * a set confined to fewer regions than replicas) to where its lease
     * should be, and, when only zones must survive, a quorum there. */
    int lead;
} pd_quality;

/* Validates the snapshot and settings, then derives the view. */
int pd_view_build(pd_view *v, const pd_cluster *c, const pd_settings *s, pd_ops *out);
void pd_view_free(pd_view *v);

long pd_view_node(const pd_view *v, pd_node_id id);   /* index or -1 */
long pd_view_range(const pd_view *v, pd_range_id id); /* index or -1 */
int pd_view_rf(const pd_view *v, size_t ri);
const pd_policy *pd_view_policy(const pd_view *v, size_t ri); /* NULL = default */
/* The region range ri's lease should be in, or NULL. The first range
 * (from the empty key: system keys and the SQL catalog) is under no user
 * policy (at most the node's own, which only asks five voters of it), but
 * every SQL transaction reads the catalog there and keeps its record there:
 * unless its own policy names a lead region, its lease follows the lead
 * region of the policy covering the keys just after it, where user tables
 * begin. */
const char *pd_view_lead_region(const pd_view *v, size_t ri);
/* How many of range ri's replicas belong in its lead region: none without
 * one; one when the policy asks regions to survive (the others spread over
 * regions); a quorum when only zones must (then a write's consensus stays
 * in the lead region, as with a database homed there: a region's loss can
 * take the range's quorum, which that goal accepts). */
int pd_view_lead_want(const pd_view *v, size_t ri);
bool pd_view_region_allowed(const pd_view *v, size_t ri, const pd_node *n);
pd_liveness pd_view_live(const pd_view *v, pd_node_id id);
/* No learner, voters == rf, every voter LIVE: a candidate for optional moves. */
bool pd_view_range_settled(const pd_view *v, size_t ri);
bool pd_view_can_move(const pd_view *v); /* moves < max_moves */

int pd_quality_cmp(const pd_quality *a, const pd_quality *b);
/* Quality of range ri's replica set with `drop` removed (0: none) and `add`
 * added (0: none). */
pd_quality pd_view_quality(const pd_view *v, size_t ri, pd_node_id drop, pd_node_id add);
/* Whether node index ni may receive a replica of range ri: LIVE, holds none
 * of it, an allowed region, not too full. */
bool pd_view_target_ok(const pd_view *v, size_t ri, size_t ni);
/* The best new home for a replica of range ri replacing `from` (0: none):
 * best quality, then fewest replicas, then lowest bytes/capacity, then lowest
 * id. Returns a node index or -1. */
long pd_view_best_target(const pd_view *v, size_t ri, pd_node_id from);
/* The voter to remove from an over-replicated range: the one named by a
 * `replaces` intent, else dead > draining > suspect > disallowed region >
 * whose removal leaves the best quality > most replicas > most bytes >
 * highest id. Returns a replica index or -1. */
int pd_view_removal(const pd_view *v, size_t ri);
/* The best voter of range ri other than `except` to lead: LIVE, in the lead
 * region if one is set and possible, fewest leaders, lowest id. -1: none. */
long pd_view_leader_target(const pd_view *v, size_t ri, pd_node_id except);
double pd_view_fraction(const pd_view *v, size_t ni); /* dir_bytes / capacity */

/* The constraint move range ri wants, if any (pd_repair.c): the target
 * node index (or -1) and the replica it replaces. */
long pd_constraint_move(const pd_view *v, size_t ri, pd_node_id *from);
/* Whether range ri needs a repair move that has not started and could. */
bool pd_repair_pending(const pd_view *v, size_t ri);

/* Appends an op, marks its ranges busy and updates the planned counts. */
int pd_view_emit(pd_view *v, const pd_op *op);

/* Whether ranges li and ri (li's end = ri's start) qualify for a merge:
 * same policy, both below range.min_bytes, both cold, neither split or
 * merged within the cool-down. Replica sets are not looked at. */
bool pd_view_mergeable(const pd_view *v, size_t li, size_t ri);

/* Ranges in start-key order (for merge): an array of indices to free. */
size_t *pd_view_ranges_by_start(const pd_view *v);

#endif
