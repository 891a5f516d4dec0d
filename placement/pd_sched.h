/* The placement driver's schedulers: pure functions from a cluster snapshot
 * and the settings to a list of operations (docs/placement.md).
 *
 * Each scheduler appends to `out` and returns 0, or MERR_INVALID (a bad
 * snapshot or settings; out->err says why) or MERR_NOMEM. They honour what is
 * already in `out`: a range that got an op from an earlier scheduler (or has
 * one in flight) gets no second op, and moves already proposed count against
 * settings.max_moves. Running them in sequence into one list is therefore
 * exactly what pd_schedule does, in priority order:
 *
 *   repair > split > constraints > rebalance > leaders > merge
 *
 * A move of a replica is three ops over three runs, one step per run:
 * ADD_LEARNER(node, from) → (learner caught up) PROMOTE → REMOVE_REPLICA(from).
 * The descriptor remembers `from` in the new replica's `replaces` field, so
 * the steps resume after a PD failover.
 *
 * No thrash: every replica move strictly improves a potential that no other
 * move makes worse (diversity, then Σ count², then Σ bytes²/capacity), so a
 * run never undoes what an earlier one did and the loop
 * schedule → apply → schedule reaches zero ops. */
#ifndef MERIDIAN_PLACEMENT_PD_SCHED_H
#define MERIDIAN_PLACEMENT_PD_SCHED_H

#include "placement/pd_model.h"

/* Finish moves under way (promote caught-up learners, remove the replaced
 * replica), replace replicas on dead or decommissioning nodes, restore the
 * replication factor. Ranges without a quorum of non-dead voters go to
 * out->unavailable instead. */
int pd_schedule_repair(const pd_cluster *c, const pd_settings *s, pd_ops *out);
/* Split at policy boundaries, above range.max_bytes (at mid_key), above
 * range.split_qps (at load_key). Never a range that is being moved. */
int pd_schedule_split(const pd_cluster *c, const pd_settings *s, pd_ops *out);
/* Replace a replica when that strictly improves the range's placement
 * quality (allowed regions, then distinct regions if asked, then zones). */
int pd_schedule_constraints(const pd_cluster *c, const pd_settings *s, pd_ops *out);
/* Even out replica counts, then bytes per capacity, between live nodes. */
int pd_schedule_rebalance(const pd_cluster *c, const pd_settings *s, pd_ops *out);
/* Preferred leader regions, leases off draining nodes, then even leader
 * counts. */
int pd_schedule_leaders(const pd_cluster *c, const pd_settings *s, pd_ops *out);
/* Merge small cold neighbours with the same policy once their replica sets
 * are equal; make them equal first. Never within the cool-down of a split. */
int pd_schedule_merge(const pd_cluster *c, const pd_settings *s, pd_ops *out);
/* All of the above in priority order. */
int pd_schedule(const pd_cluster *c, const pd_settings *s, pd_ops *out);

/* The model applier: simulates the effect of one op on a snapshot (tests and
 * the simulator iterate schedule → apply until quiescent). A learner is added
 * caught up; a split halves size and load (mid and load keys become unknown);
 * a merge sums them; both stamp last_split_merge_ns = now. Node counts and
 * used bytes follow. An op that does not apply returns MERR_INVALID with a
 * reason in `e` and changes nothing. */
int pd_apply(pd_cluster *c, const pd_settings *s, const pd_op *op, merr *e);

#endif
