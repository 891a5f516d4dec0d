/* The top-level scheduler: every scheduler in priority order into one list.
 * Each one skips ranges an earlier one claimed and shares the move budget,
 * so priority is simply order: repair first (durability), then splits (a
 * range that is too big or hot hurts now), constraints, rebalance, leaders,
 * and merges last (a merge only saves overhead). */
#include "placement/pd_sched.h"

int pd_schedule(const pd_cluster *c, const pd_settings *s, pd_ops *out)
{
    static int (*const order[])(const pd_cluster *, const pd_settings *, pd_ops *) = {
        pd_schedule_repair,    pd_schedule_split,   pd_schedule_constraints,
        pd_schedule_rebalance, pd_schedule_leaders, pd_schedule_merge,
    };
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        int rc = order[i](c, s, out);
        if (rc) return rc;
    }
    return 0;
}
