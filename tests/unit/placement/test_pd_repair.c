/* Repair and constraint schedulers on synthetic clusters: dead and draining
 * nodes are replaced with zone diversity, lost quorums are reported, moves
 * resume from the descriptor, policies on regions and factors hold. */
#include "pd_fixture.h"
#include "placement/pd_feed.h"

#include <stdio.h>
#include <string.h>

/* n zones of `per` nodes each in one region, listed zone by zone. */
static void zones(fx *f, int n, int per)
{
    fx_init(f);
    for (int z = 0; z < n; z++)
        for (int i = 0; i < per; i++) {
            char name[16];
            snprintf(name, sizeof(name), "z%d", z);
            fx_node(f, "r1", name);
        }
}

static void assert_all_healthy(const fx *f, int rf, int want_zones)
{
    for (size_t i = 0; i < f->c.n_ranges; i++) {
        const pd_range *r = &f->c.ranges[i];
        assert_int_equal(r->n_replicas, rf);
        assert_int_equal(pd_range_voters(r), rf);
        for (int k = 0; k < r->n_replicas; k++) {
            const pd_node *n = pd_cluster_node(&f->c, r->replicas[k].node);
            assert_int_equal(pd_node_liveness(n, &f->s, f->c.now_ns), PD_LIVE);
        }
        assert_int_equal(fx_zones(f, r), want_zones);
    }
}

static void test_dead_node_replicas_recreated(void **state)
{
    (void)state;
    fx f;
    zones(&f, 3, 2);
    fx_ranges(&f, 30, 3, 2, 32 * FX_MIB);
    fx_kill(&f, 1);
    fx_trace t = {0};
    fx_converge(&f, 100, &t);
    assert_int_equal(fx_replicas_on(&f, 1), 0);
    assert_all_healthy(&f, 3, 3);
    /* The replacements went to node 2, node 1's zone-mate. */
    assert_int_equal(fx_replicas_on(&f, 2), 30);
    fx_trace_free(&t);
    fx_free(&f);
}

static void test_lost_quorum_is_reported_not_touched(void **state)
{
    (void)state;
    fx f;
    zones(&f, 3, 2);
    fx_ranges(&f, 6, 3, 2, 32 * FX_MIB); /* range 1 on nodes 1, 3, 5 */
    fx_kill(&f, 1);
    fx_kill(&f, 3);
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    int found = 0;
    for (size_t i = 0; i < ops.n_unavailable; i++) found += ops.unavailable[i] == 1;
    assert_int_equal(found, 1);
    for (size_t i = 0; i < ops.n; i++) assert_int_not_equal(ops.v[i].range, 1);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_nowhere_to_go_keeps_dead_replica(void **state)
{
    (void)state;
    fx f;
    zones(&f, 3, 1);
    fx_ranges(&f, 3, 3, 1, 32 * FX_MIB);
    fx_kill(&f, 2);
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    /* No fourth node: removing the dead replica would only make a quorum of
     * two out of two, so it stays until a node joins. */
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, -1), 0);
    assert_int_equal(fx_count(&ops, PD_OP_REMOVE_REPLICA, -1), 0);
    assert_int_equal(ops.n_unavailable, 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

/* A range mid-move: voters 1, 3, 5 and a learner on 2 replacing 1. */
static pd_range *mid_move(fx *f, bool caught_up)
{
    zones(f, 3, 2);
    pd_node_id v[3] = {1, 3, 5};
    fx_range(f, -1, -1, v, 3, 32 * FX_MIB);
    pd_range *r = &f->c.ranges[0];
    r->replicas[r->n_replicas++] =
        (pd_replica){.node = 2, .role = PD_LEARNER, .caught_up = caught_up, .replaces = 1};
    return r;
}

static void test_move_steps_follow_the_descriptor(void **state)
{
    (void)state;
    fx f;
    pd_range *r = mid_move(&f, false);
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 0); /* the learner is still catching up */
    r->replicas[3].caught_up = true;
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_PROMOTE);
    assert_int_equal(ops.v[0].node, 2);
    fx_apply(&f, &ops, NULL);
    /* Node 1 leads: the lease moves first, then node 1 goes — not node 3
     * or 5, which the scoring alone might pick. */
    pd_ops_reset(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_TRANSFER_LEADER);
    assert_int_not_equal(ops.v[0].node, 1);
    fx_apply(&f, &ops, NULL);
    pd_ops_reset(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_REMOVE_REPLICA);
    assert_int_equal(ops.v[0].node, 1);
    fx_apply(&f, &ops, NULL);
    pd_ops_reset(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_dead_learner_removed(void **state)
{
    (void)state;
    fx f;
    mid_move(&f, true);
    fx_kill(&f, 2);
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_REMOVE_REPLICA);
    assert_int_equal(ops.v[0].node, 2);
    pd_ops_free(&ops);
    fx_free(&f);
}

/* A learner that never catches up (its node lost the range) is removed
 * once move.learner_timeout has passed since this PD first saw it, so the
 * range is not held mid-move forever; the first-seen stamp survives runs
 * and is forgotten with the learner. */
static void test_stuck_learner_times_out(void **state)
{
    (void)state;
    fx f;
    mid_move(&f, false);
    pd_learner_table seen = {0};
    pd_ops ops;
    pd_ops_init(&ops);
    int64_t t0 = f.c.now_ns;
    assert_int_equal(pd_feed_stamp_learners(&seen, &f.c), 0);
    assert_int_equal(f.c.ranges[0].replicas[3].learner_since_ns, t0);
    fx_advance(&f, f.s.learner_timeout_ns - 1);
    f.c.ranges[0].replicas[3].learner_since_ns = 0; /* a fresh snapshot */
    assert_int_equal(pd_feed_stamp_learners(&seen, &f.c), 0);
    assert_int_equal(f.c.ranges[0].replicas[3].learner_since_ns, t0);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 0); /* still within the timeout: the move waits */
    fx_advance(&f, 1);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_REMOVE_REPLICA);
    assert_int_equal(ops.v[0].node, 2);
    fx_apply(&f, &ops, NULL);
    assert_int_equal(pd_feed_stamp_learners(&seen, &f.c), 0);
    assert_int_equal(seen.n, 0);
    pd_learner_table_free(&seen);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_inflight_op_blocks_range(void **state)
{
    (void)state;
    fx f;
    mid_move(&f, true);
    pd_inflight fl = {.range = 1, .kind = PD_OP_TRANSFER_LEADER, .node = 3};
    assert_int_equal(pd_cluster_add_inflight(&f.c, &fl), 0);
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_decommission_drains_node(void **state)
{
    (void)state;
    fx f;
    zones(&f, 3, 2);
    fx_ranges(&f, 24, 3, 2, 32 * FX_MIB);
    pd_cluster_node(&f.c, 4)->decommissioning = true;
    fx_trace t = {0};
    fx_converge(&f, 100, &t);
    assert_int_equal(fx_replicas_on(&f, 4), 0);
    assert_int_equal(fx_leaders_on(&f, 4), 0);
    for (size_t i = 0; i < f.c.n_ranges; i++) assert_int_equal(fx_zones(&f, &f.c.ranges[i]), 3);
    fx_trace_free(&t);
    fx_free(&f);
}

static void test_repair_goes_first_in_the_budget(void **state)
{
    (void)state;
    fx f;
    zones(&f, 3, 2);
    fx_ranges(&f, 30, 3, 2, 32 * FX_MIB);
    fx_node(&f, "r1", "z0"); /* an empty node that rebalance would fill */
    fx_kill(&f, 3);
    f.s.max_moves = 2;
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, PD_REASON_REPAIR), 2);
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, -1), 2);
    pd_ops_free(&ops);
    fx_free(&f);
}

/* With one move to spend, the range nearest to losing quorum gets it, not
 * the first in the directory. */
static void test_repair_most_endangered_first(void **state)
{
    (void)state;
    fx f;
    zones(&f, 6, 1);
    pd_node_id five[5] = {1, 2, 3, 4, 5}, three[3] = {1, 2, 3};
    fx_range(&f, -1, 10, five, 5, 32 * FX_MIB);
    fx_range(&f, 10, -1, three, 3, 32 * FX_MIB);
    pd_policy p = {.replication_factor = 5};
    char k[16];
    fx_key(&p.end, k, 10);
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    fx_kill(&f, 3); /* range 1: 4 of 5 left, one to spare; range 2: 2 of 3, none */
    f.s.max_moves = 1;
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, -1), 1);
    assert_int_equal(ops.v[0].range, 2);
    assert_int_equal(ops.v[0].from, 3);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_suspect_node_neither_replaced_nor_chosen(void **state)
{
    (void)state;
    fx f;
    zones(&f, 3, 2);
    fx_ranges(&f, 12, 3, 2, 32 * FX_MIB);
    pd_cluster_node(&f.c, 1)->last_heartbeat_ns = f.c.now_ns - f.s.suspect_timeout_ns;
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, -1), 0);
    /* A dead node's replicas do not go to its suspect zone-mate: durability
     * first, so they go to another zone, and diversity comes back later. */
    fx_kill(&f, 2);
    pd_ops_reset(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, PD_REASON_REPAIR), 6);
    for (size_t i = 0; i < ops.n; i++) assert_int_not_equal(ops.v[i].node, 1);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_zone_diversity_restored(void **state)
{
    (void)state;
    fx f;
    zones(&f, 3, 2);
    /* Two replicas in z0, none in z2. */
    pd_node_id v[3] = {1, 2, 3};
    fx_range(&f, -1, -1, v, 3, 32 * FX_MIB);
    assert_int_equal(fx_zones(&f, &f.c.ranges[0]), 2);
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, PD_REASON_CONSTRAINT), 1);
    assert_int_equal(ops.v[0].from, 2); /* 1 leads, so its zone-mate goes */
    assert_true(ops.v[0].node == 5 || ops.v[0].node == 6);
    fx_converge(&f, 10, NULL);
    assert_int_equal(fx_zones(&f, &f.c.ranges[0]), 3);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_too_few_zones_degrades_gracefully(void **state)
{
    (void)state;
    fx f;
    zones(&f, 2, 3); /* 2 zones for 3 replicas */
    fx_ranges(&f, 12, 3, 1, 32 * FX_MIB);
    fx_kill(&f, 1);
    fx_trace t = {0};
    fx_converge(&f, 60, &t);
    assert_all_healthy(&f, 3, 2);
    assert_int_equal(fx_replicas_on(&f, 1), 0);
    assert_int_equal(t.reversals, 0);
    fx_trace_free(&t);
    fx_free(&f);
}

static void test_replication_factor_five(void **state)
{
    (void)state;
    fx f;
    zones(&f, 5, 1);
    fx_ranges(&f, 4, 3, 1, 32 * FX_MIB);
    pd_policy p = {.replication_factor = 5};
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    fx_converge(&f, 30, NULL);
    assert_all_healthy(&f, 5, 5);
    /* And back down to 3 when the policy changes. */
    f.c.policies[0].replication_factor = 3;
    fx_converge(&f, 30, NULL);
    assert_all_healthy(&f, 3, 3);
    fx_free(&f);
}

static void test_region_policies(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    const char *regions[] = {"us", "us", "us", "eu", "eu", "eu", "ap", "ap", "ap"};
    for (int i = 0; i < 9; i++) {
        char zone[8];
        snprintf(zone, sizeof(zone), "z%d", i % 3);
        fx_node(&f, regions[i], zone);
    }
    pd_node_id us[3] = {1, 2, 3};
    fx_range(&f, -1, 10, us, 3, 32 * FX_MIB);
    fx_range(&f, 10, -1, us, 3, 32 * FX_MIB);
    /* Range 1: eu only. Range 2: survive a region. */
    char a[16], b[16];
    pd_policy eu = {.replication_factor = 3, .n_allowed = 1};
    fx_key(&eu.end, b, 10);
    snprintf(eu.allowed_regions[0], PD_NAME_MAX, "eu");
    pd_policy spread = {.replication_factor = 3, .survival = PD_SURVIVE_REGION};
    fx_key(&spread.start, a, 10);
    assert_int_equal(pd_cluster_add_policy(&f.c, &eu), 0);
    assert_int_equal(pd_cluster_add_policy(&f.c, &spread), 0);
    fx_trace t = {0};
    fx_converge(&f, 40, &t);
    const pd_range *r1 = pd_cluster_range(&f.c, 1), *r2 = pd_cluster_range(&f.c, 2);
    for (int k = 0; k < r1->n_replicas; k++)
        assert_string_equal(pd_cluster_node(&f.c, r1->replicas[k].node)->region, "eu");
    assert_int_equal(fx_zones(&f, r1), 3);
    assert_int_equal(fx_regions(&f, r2), 3);
    assert_int_equal(t.reversals, 0);
    fx_trace_free(&t);
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dead_node_replicas_recreated),
        cmocka_unit_test(test_lost_quorum_is_reported_not_touched),
        cmocka_unit_test(test_nowhere_to_go_keeps_dead_replica),
        cmocka_unit_test(test_move_steps_follow_the_descriptor),
        cmocka_unit_test(test_dead_learner_removed),
        cmocka_unit_test(test_stuck_learner_times_out),
        cmocka_unit_test(test_inflight_op_blocks_range),
        cmocka_unit_test(test_decommission_drains_node),
        cmocka_unit_test(test_repair_goes_first_in_the_budget),
        cmocka_unit_test(test_repair_most_endangered_first),
        cmocka_unit_test(test_suspect_node_neither_replaced_nor_chosen),
        cmocka_unit_test(test_zone_diversity_restored),
        cmocka_unit_test(test_too_few_zones_degrades_gracefully),
        cmocka_unit_test(test_replication_factor_five),
        cmocka_unit_test(test_region_policies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
