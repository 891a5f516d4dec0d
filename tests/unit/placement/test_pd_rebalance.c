/* Rebalance and leader schedulers on synthetic clusters: a balanced cluster
 * stays put, a new node fills, nothing thrashes, the move budget holds,
 * bytes even out, leaders follow preferences and spread. */
#include "pd_fixture.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Six nodes in three zones (listed zone by zone: a a b b c c), 60 ranges
 * placed one per zone, leaders spread: the textbook balanced cluster. */
static void balanced(fx *f)
{
    fx_init(f);
    const char *zones[] = {"a", "a", "b", "b", "c", "c"};
    for (int i = 0; i < 6; i++) fx_node(f, "r1", zones[i]);
    fx_ranges(f, 60, 3, 2, 32 * FX_MIB);
}

static void test_balanced_cluster_stays_put(void **state)
{
    (void)state;
    fx f;
    balanced(&f);
    for (int i = 1; i <= 6; i++) {
        assert_int_equal(fx_replicas_on(&f, (pd_node_id)i), 30);
        assert_int_equal(fx_leaders_on(&f, (pd_node_id)i), 10);
    }
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 0);
    assert_int_equal(ops.n_unavailable, 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void assert_within(const fx *f, double pct)
{
    double sum = 0;
    int n = 0;
    for (size_t i = 0; i < f->c.n_nodes; i++, n++) sum += fx_replicas_on(f, f->c.nodes[i].id);
    double mean = sum / n;
    for (size_t i = 0; i < f->c.n_nodes; i++) {
        int c = fx_replicas_on(f, f->c.nodes[i].id);
        if (fabs(c - mean) > pct * mean)
            fail_msg("node %llu holds %d replicas, mean %.1f", (unsigned long long)f->c.nodes[i].id,
                     c, mean);
    }
}

static void test_new_nodes_fill_without_thrash(void **state)
{
    (void)state;
    fx f;
    balanced(&f);
    /* One per zone: every zone must hold one replica of every range, so a
     * zone's nodes share a third of all replicas whatever the scheduler does. */
    pd_node_id n7 = fx_node(&f, "r1", "a");
    pd_node_id n8 = fx_node(&f, "r1", "b");
    pd_node_id n9 = fx_node(&f, "r1", "c");
    fx_trace t = {0};
    int runs = fx_converge(&f, 200, &t);
    assert_true(runs > 0);
    assert_true(fx_replicas_on(&f, n7) > 0 && fx_replicas_on(&f, n8) > 0);
    assert_true(fx_replicas_on(&f, n9) > 0);
    assert_within(&f, 0.20);
    assert_int_equal(t.reversals, 0);
    assert_int_equal(t.pair_back, 0);
    assert_int_equal(t.leader_back, 0);
    /* Moves never cost zone diversity. */
    for (size_t i = 0; i < f.c.n_ranges; i++) {
        assert_int_equal(f.c.ranges[i].n_replicas, 3);
        assert_int_equal(fx_zones(&f, &f.c.ranges[i]), 3);
    }
    fx_trace_free(&t);
    fx_free(&f);
}

/* The real-process scenario on the model: three nodes hold every
 * range, two more join (in new zones, or all without locality). */
static void grow_three_to_five(bool localities)
{
    fx f;
    fx_init(&f);
    const char *zones[] = {"a", "b", "c", "d", "e"};
    for (int i = 0; i < 3; i++) fx_node(&f, "r1", localities ? zones[i] : "");
    fx_ranges(&f, 50, 3, 1, 32 * FX_MIB);
    for (int i = 3; i < 5; i++) fx_node(&f, "r1", localities ? zones[i] : "");
    fx_trace t = {0};
    fx_converge(&f, 300, &t);
    assert_within(&f, 0.20);
    assert_int_equal(t.reversals, 0);
    assert_int_equal(t.pair_back, 0);
    for (size_t i = 0; i < f.c.n_ranges; i++)
        assert_int_equal(fx_zones(&f, &f.c.ranges[i]), localities ? 3 : 1);
    fx_trace_free(&t);
    fx_free(&f);
}

static void test_three_nodes_grow_to_five(void **state)
{
    (void)state;
    grow_three_to_five(true);
    grow_three_to_five(false);
}

/* The brief's proof: apply what the scheduler proposed, finish the moves,
 * run it again: no move goes back the way an earlier one came. */
static void test_applied_moves_are_not_reversed(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    pd_policy p = {.replication_factor = 1};
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    pd_node_id a = fx_node(&f, "r1", "a"), b = fx_node(&f, "r1", "b"), c = fx_node(&f, "r1", "c");
    for (int i = 0; i < 30; i++) {
        pd_node_id on = i < 20 ? a : i < 27 ? b : c; /* 20 / 7 / 3 */
        fx_range(&f, i == 0 ? -1 : i, i == 29 ? -1 : i + 1, &on, 1, 32 * FX_MIB);
    }
    pd_ops first, ops;
    pd_ops_init(&first);
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_rebalance(&f.c, &f.s, &first), 0);
    assert_true(first.n > 0);
    fx_check_ops(&f, &first);
    for (size_t i = 0; i < first.n; i++) {
        assert_int_equal(first.v[i].kind, PD_OP_ADD_LEARNER);
        assert_int_equal(first.v[i].from, a); /* from the fullest */
    }
    fx_apply(&f, &first, NULL);
    /* Finish the moves (promote, transfer, remove), then ask again. */
    fx_trace t = {0};
    for (int round = 0; round < 50; round++) {
        pd_ops_reset(&ops);
        fx_schedule(&f, &ops);
        if (ops.n == 0) break;
        for (size_t i = 0; i < ops.n; i++)
            for (size_t j = 0; j < first.n; j++)
                if (ops.v[i].kind == PD_OP_ADD_LEARNER && ops.v[i].node == first.v[j].from &&
                    ops.v[i].from == first.v[j].node)
                    fail_msg("move reversed in round %d", round);
        fx_apply(&f, &ops, &t);
    }
    assert_int_equal(ops.n, 0);
    assert_int_equal(t.reversals, 0);
    assert_int_equal(t.pair_back, 0);
    assert_within(&f, 0.20);
    fx_trace_free(&t);
    pd_ops_free(&first);
    pd_ops_free(&ops);
    fx_free(&f);
}

/* A move that would turn the order of two nodes around is never proposed:
 * counts 12 / 11 / 7 with the emptiest node full leaves nothing to do. */
static void test_no_move_that_inverts_order(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    pd_policy p = {.replication_factor = 1};
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    pd_node_id n[3] = {fx_node(&f, "r1", "a"), fx_node(&f, "r1", "b"), fx_node(&f, "r1", "c")};
    int counts[3] = {12, 11, 7}, k = 0;
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < counts[i]; j++, k++)
            fx_range(&f, k == 0 ? -1 : k, k == 29 ? -1 : k + 1, &n[i], 1, 32 * FX_MIB);
    pd_ops ops;
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_rebalance(&f.c, &f.s, &ops), 0);
    assert_true(ops.n > 0 && ops.v[0].node == n[2]); /* the emptiest takes first */
    pd_ops_reset(&ops);
    pd_cluster_node(&f.c, n[2])->used_bytes = pd_cluster_node(&f.c, n[2])->capacity_bytes;
    assert_int_equal(pd_schedule_rebalance(&f.c, &f.s, &ops), 0);
    assert_int_equal(ops.n, 0); /* 12 → 11 would leave 11 / 12 */
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_move_budget(void **state)
{
    (void)state;
    fx f;
    balanced(&f);
    fx_node(&f, "r1", "a");
    fx_node(&f, "r1", "b");
    f.s.max_moves = 3;
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, -1), 3);
    /* Moves in flight and under way use the budget too. */
    fx_apply(&f, &ops, NULL); /* three ranges now carry a learner */
    pd_inflight fl = {.range = 60, .kind = PD_OP_ADD_LEARNER, .node = 7, .from = 1};
    assert_int_equal(pd_cluster_add_inflight(&f.c, &fl), 0);
    pd_ops_reset(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, -1), 0);
    assert_int_equal(fx_count(&ops, PD_OP_PROMOTE, -1), 3);
    pd_ops_free(&ops);
    fx_free(&f);
}

/* Rebalancing waits while any move is under way or a repair or constraint
 * move is waiting: those change the counts it would decide on. */
static void test_rebalance_waits_for_quiet_cluster(void **state)
{
    (void)state;
    fx f;
    balanced(&f);
    fx_node(&f, "r1", "a"); /* an empty node: rebalance has work */
    pd_ops ops;
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_rebalance(&f.c, &f.s, &ops), 0);
    assert_true(ops.n > 0);
    /* A learner still catching up somewhere: wait. */
    pd_range *r = &f.c.ranges[59];
    r->replicas[r->n_replicas++] = (pd_replica){.node = 7, .role = PD_LEARNER};
    pd_ops_reset(&ops);
    assert_int_equal(pd_schedule_rebalance(&f.c, &f.s, &ops), 0);
    assert_int_equal(ops.n, 0);
    r->n_replicas--;
    /* A range with two replicas in one zone and a better home: wait too. */
    /* Nodes 1..6 are zones a a b b c c; range 60 is on 6, 2, 4: put its
     * zone-b replica on node 5, next to node 6 in zone c. */
    assert_int_equal(r->replicas[2].node, 4);
    r->replicas[2].node = 5;
    pd_ops_reset(&ops);
    assert_int_equal(pd_schedule_rebalance(&f.c, &f.s, &ops), 0);
    assert_int_equal(ops.n, 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_bytes_even_out(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    pd_policy p = {.replication_factor = 1};
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    pd_node_id a = fx_node(&f, "r1", "a"), b = fx_node(&f, "r1", "b");
    pd_cluster_node(&f.c, a)->capacity_bytes = FX_GIB;
    pd_cluster_node(&f.c, b)->capacity_bytes = FX_GIB;
    /* Counts 6 / 5 are balanced; bytes 360 MiB / 100 MiB are not. */
    for (int i = 0; i < 11; i++)
        fx_range(&f, i == 0 ? -1 : i, i == 10 ? -1 : i + 1, i < 6 ? &a : &b, 1,
                 i < 6 ? 60 * FX_MIB : 20 * FX_MIB);
    fx_trace t = {0};
    fx_converge(&f, 50, &t);
    assert_int_equal(t.reversals, 0);
    assert_int_equal(t.pair_back, 0);
    uint64_t ba = 0, bb = 0;
    for (size_t i = 0; i < f.c.n_ranges; i++)
        *(f.c.ranges[i].replicas[0].node == a ? &ba : &bb) += f.c.ranges[i].size_bytes;
    assert_true(ba < 360 * FX_MIB && bb > 100 * FX_MIB);
    assert_true(ba >= bb); /* never overshot */
    assert_true(abs(fx_replicas_on(&f, a) - fx_replicas_on(&f, b)) <= 1);
    fx_trace_free(&t);
    fx_free(&f);
}

static pd_policy lead_policy(const char *lead)
{
    pd_policy p = {.replication_factor = 3, .survival = PD_SURVIVE_REGION};
    snprintf(p.lead_region, sizeof(p.lead_region), "%s", lead);
    return p;
}

/* Three regions, one node each; leaders start in us-east. */
static void three_regions(fx *f, int nranges)
{
    fx_init(f);
    pd_node_id e = fx_node(f, "us-east", "a"), w = fx_node(f, "us-west", "a"),
               eu = fx_node(f, "eu", "a");
    for (int i = 0; i < nranges; i++) {
        pd_node_id v[3] = {e, w, eu};
        fx_range(f, i == 0 ? -1 : i, i == nranges - 1 ? -1 : i + 1, v, 3, 32 * FX_MIB);
    }
}

static void test_leader_preference(void **state)
{
    (void)state;
    fx f;
    three_regions(&f, 6);
    pd_policy p = lead_policy("eu");
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    fx_trace t = {0};
    fx_converge(&f, 10, &t);
    for (size_t i = 0; i < f.c.n_ranges; i++) assert_int_equal(f.c.ranges[i].leader, 3);
    assert_int_equal(t.leader_back, 0);
    /* The preferred region's node fails: leases go elsewhere and stay
     * spread; it returns: they come back. */
    fx_kill(&f, 3);
    for (size_t i = 0; i < f.c.n_ranges; i++) {
        f.c.ranges[i].leader = 1; /* the groups elected us-east */
    }
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_TRANSFER_LEADER, PD_REASON_LEADER_PREF), 0);
    assert_int_equal(fx_count(&ops, PD_OP_ADD_LEARNER, -1), 0); /* no fourth region */
    pd_cluster_node(&f.c, 3)->last_heartbeat_ns = f.c.now_ns;
    pd_ops_reset(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_TRANSFER_LEADER, PD_REASON_LEADER_PREF), 6);
    pd_ops_free(&ops);
    fx_trace_free(&t);
    fx_free(&f);
}

/* The first range (system keys, the SQL catalog) is under no policy; its
 * lease follows the lead region of the policy that begins where it ends
 * (where user tables begin), as the user ranges' leases do. A range
 * further up that no policy covers keeps its lease where it is. */
static void test_first_range_follows_lead_region(void **state)
{
    (void)state;
    fx f;
    three_regions(&f, 6); /* [-inf, k1), [k1, k2), ... [k5, +inf) */
    pd_policy p = lead_policy("eu");
    char sb[16], eb[16];
    fx_key(&p.start, sb, 1);
    fx_key(&p.end, eb, 5);
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    fx_trace t = {0};
    fx_converge(&f, 10, &t);
    assert_int_equal(f.c.ranges[0].leader, 3); /* the first range: follows */
    for (size_t i = 1; i < 5; i++) assert_int_equal(f.c.ranges[i].leader, 3);
    /* Without a policy at its end, the first range has no preference: a
     * policy further up does not pull it. */
    fx g;
    three_regions(&g, 6);
    pd_policy q = lead_policy("eu");
    char sb2[16];
    fx_key(&q.start, sb2, 2);
    assert_int_equal(pd_cluster_add_policy(&g.c, &q), 0);
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&g, &ops);
    for (size_t i = 0; i < ops.n; i++)
        if (ops.v[i].reason == PD_REASON_LEADER_PREF)
            assert_int_not_equal(ops.v[i].range, g.c.ranges[0].id);
    assert_true(fx_count(&ops, PD_OP_TRANSFER_LEADER, PD_REASON_LEADER_PREF) > 0);
    pd_ops_free(&ops);
    /* No voter of the first range in the lead region: one moves there
     * first (as for a user range), then the lease. */
    fx h;
    fx_init(&h);
    pd_node_id e1 = fx_node(&h, "us-east", "a"), e2 = fx_node(&h, "us-east", "b"),
               w = fx_node(&h, "us-west", "a"), eu = fx_node(&h, "eu", "a");
    pd_node_id v0[3] = {e1, e2, w}, v1[3] = {e1, w, eu};
    fx_range(&h, -1, 1, v0, 3, 32 * FX_MIB);
    fx_range(&h, 1, -1, v1, 3, 32 * FX_MIB);
    pd_policy r = lead_policy("eu");
    char sb3[16];
    fx_key(&r.start, sb3, 1);
    assert_int_equal(pd_cluster_add_policy(&h.c, &r), 0);
    fx_converge(&h, 20, &t);
    assert_true(pd_range_has(&h.c.ranges[0], eu));
    assert_int_equal(h.c.ranges[0].leader, eu);
    assert_int_equal(h.c.ranges[1].leader, eu);
    /* The same when the first range has a policy of its own that names no
     * lead region (the node's: five voters for range 1). */
    fx k;
    three_regions(&k, 3);
    pd_policy own = {.replication_factor = 3};
    char ob[16];
    fx_key(&own.end, ob, 1);
    pd_policy user = lead_policy("eu");
    char ub[16];
    fx_key(&user.start, ub, 1);
    assert_int_equal(pd_cluster_add_policy(&k.c, &user), 0);
    assert_int_equal(pd_cluster_add_policy(&k.c, &own), 0);
    fx_converge(&k, 10, &t);
    for (size_t i = 0; i < k.c.n_ranges; i++) assert_int_equal(k.c.ranges[i].leader, 3);
    fx_free(&k);
    fx_trace_free(&t);
    fx_free(&f);
    fx_free(&g);
    fx_free(&h);
}

/* A lead region under zone survival draws a quorum of voters there (a
 * write's consensus stays in the region); under region survival one voter,
 * the others spread over the regions. */
static void test_lead_region_quorum(void **state)
{
    (void)state;
    for (int surv = 0; surv < 2; surv++) {
        fx f;
        fx_init(&f);
        pd_node_id e1 = fx_node(&f, "us-east", "a"), e2 = fx_node(&f, "us-east", "b"),
                   w = fx_node(&f, "us-west", "a"), eu = fx_node(&f, "eu", "a");
        (void)e2;
        pd_node_id v[3] = {w, eu, e1};
        fx_range(&f, -1, -1, v, 3, 32 * FX_MIB);
        pd_policy p = lead_policy("us-east");
        p.survival = surv ? PD_SURVIVE_REGION : PD_SURVIVE_ZONE;
        assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
        fx_trace t = {0};
        fx_converge(&f, 20, &t);
        const pd_range *r = &f.c.ranges[0];
        int east = 0;
        for (int i = 0; i < r->n_replicas; i++) {
            const pd_node *n = pd_cluster_node(&f.c, r->replicas[i].node);
            east += strcmp(n->region, "us-east") == 0;
        }
        assert_int_equal(east, surv ? 1 : 2);
        assert_int_equal(r->n_replicas, 3);
        assert_true(r->leader == e1 || r->leader == e2);
        fx_trace_free(&t);
        fx_free(&f);
    }
}

static void test_leaders_spread_evenly(void **state)
{
    (void)state;
    fx f;
    three_regions(&f, 30); /* all 30 leaders on node 1 */
    fx_trace t = {0};
    fx_converge(&f, 10, &t);
    for (pd_node_id n = 1; n <= 3; n++) {
        int l = fx_leaders_on(&f, n);
        assert_true(l >= 9 && l <= 11);
    }
    assert_int_equal(t.leader_back, 0);
    /* Balance never moves the first range's lease (the catalog's). */
    assert_int_equal(f.c.ranges[0].leader, 1);
    /* Never onto a suspect node. */
    pd_cluster_node(&f.c, 2)->last_heartbeat_ns = f.c.now_ns - f.s.suspect_timeout_ns;
    for (size_t i = 0; i < f.c.n_ranges; i++) f.c.ranges[i].leader = 1;
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_true(fx_count(&ops, PD_OP_TRANSFER_LEADER, -1) > 0);
    for (size_t i = 0; i < ops.n; i++) assert_int_equal(ops.v[i].node, 3);
    pd_ops_free(&ops);
    fx_trace_free(&t);
    fx_free(&f);
}

/* A voter whose node does not host its range (it skipped the split that
 * would have made it, pd_missing.h) is no home for a lease: a transfer
 * there would fail on every run and keep the range busy, so the repair
 * that creates the replica would never start. */
static void test_no_lease_to_unhosted_voter(void **state)
{
    (void)state;
    fx f;
    three_regions(&f, 4); /* all leaders on node 1 */
    for (size_t i = 1; i < f.c.n_ranges; i++)
        for (int k = 0; k < f.c.ranges[i].n_replicas; k++)
            if (f.c.ranges[i].replicas[k].node == 2) f.c.ranges[i].replicas[k].unhosted = true;
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    size_t to3 = 0;
    for (size_t i = 0; i < ops.n; i++) {
        if (ops.v[i].kind != PD_OP_TRANSFER_LEADER) continue;
        assert_int_not_equal(ops.v[i].node, 2);
        to3 += ops.v[i].node == 3;
    }
    assert_true(to3 > 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_balanced_cluster_stays_put),
        cmocka_unit_test(test_new_nodes_fill_without_thrash),
        cmocka_unit_test(test_three_nodes_grow_to_five),
        cmocka_unit_test(test_applied_moves_are_not_reversed),
        cmocka_unit_test(test_no_move_that_inverts_order),
        cmocka_unit_test(test_move_budget),
        cmocka_unit_test(test_rebalance_waits_for_quiet_cluster),
        cmocka_unit_test(test_bytes_even_out),
        cmocka_unit_test(test_leader_preference),
        cmocka_unit_test(test_first_range_follows_lead_region),
        cmocka_unit_test(test_lead_region_quorum),
        cmocka_unit_test(test_leaders_spread_evenly),
        cmocka_unit_test(test_no_lease_to_unhosted_voter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
