/* Voters whose node does not host their range (issue #9). A node that was
 * behind when a range split and then caught the parent up from a snapshot
 * skipped the SPLIT entry that would have created its replica of the new
 * range: the leader counts it a voter, the node never reports it, and the
 * range is one replica short for ever. The PD notices and has the leader
 * create the missing replica (server/node_moves.c), which then gets a
 * snapshot like any new one.
 *
 * The rule, pure (times are arguments): a (range, voter) pair is missing
 * when the range's leader counts the voter (pd_cluster) and the voter's node
 * sent a heartbeat that does not report the range. The table remembers when
 * this PD term first saw each pair missing; a pair is due for repair once
 * the node's latest heartbeat, received at least grace_ns after that, still
 * lacks the range: a node merely slow to apply the split has had grace_ns to
 * create the replica itself. A due pair starts a new grace period, so a
 * repair that did not take (the node refused: its parent replica is still
 * catching up) is asked again once per period, not on every PD run. The grace only spares needless
 * snapshots; the safety is the node's own (range.Create refuses while a replica there still covers
 * the span) and the leader's (it creates only current members). A node with no heartbeat this term
 * is left alone (it may be down). Learners are not in the rule: the ADD_LEARNER step recreates them
 * at once (node_moves_gc). */
#ifndef MERIDIAN_PLACEMENT_PD_MISSING_H
#define MERIDIAN_PLACEMENT_PD_MISSING_H

#include "placement/pd_feed.h"

#define PD_MISSING_GRACE_NS (5LL * 1000000000) /* several heartbeats */

typedef struct pd_missing {
    pd_range_id range;
    pd_node_id node;
    int64_t since_ns; /* when this PD term first saw it missing */
} pd_missing;

typedef struct pd_missing_table {
    pd_missing *v;
    size_t n;
} pd_missing_table;

void pd_missing_table_free(pd_missing_table *t);
/* Brings t up to date with c (at c->now_ns) and hbs: keeps exactly the pairs
 * missing now, with their first-seen time. *due (malloc'd, NULL when none;
 * the caller frees) gets the pairs due for repair and *ndue their count.
 * 0, or MERR_NOMEM (then t is unchanged and *due NULL). */
int pd_missing_scan(pd_missing_table *t, const pd_cluster *c, const pd_hb_table *hbs,
                    int64_t grace_ns, pd_missing **due, size_t *ndue);

#endif
