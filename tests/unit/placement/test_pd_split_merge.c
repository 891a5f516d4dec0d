/* Split and merge schedulers: by size, by load, at policy boundaries; merges
 * of small cold neighbours after their replica sets are made equal; never
 * right after a split, never of a range being moved. */
#include "pd_fixture.h"

#include <string.h>

/* Three nodes in three zones, `n` ranges on all of them. */
static void cluster(fx *f, int n, uint64_t size)
{
    fx_init(f);
    fx_node(f, "r1", "a");
    fx_node(f, "r1", "b");
    fx_node(f, "r1", "c");
    fx_ranges(f, n, 3, 1, size);
}

static void set_key(pd_key *k, const char *s)
{
    pd_key_free(k);
    assert_int_equal(pd_key_set(k, s, strlen(s)), 0);
}

static void test_split_by_size_at_mid_key(void **state)
{
    (void)state;
    fx f;
    cluster(&f, 2, 32 * FX_MIB);
    pd_range *r = &f.c.ranges[0]; /* ["", k000010) */
    r->size_bytes = f.s.range_max_bytes + 1;
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 0); /* no middle key from storage yet: wait */
    set_key(&r->mid_key, "k000005");
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_SPLIT);
    assert_int_equal(ops.v[0].reason, PD_REASON_SIZE);
    assert_int_equal(ops.v[0].key.len, 7);
    assert_memory_equal(ops.v[0].key.p, "k000005", 7);
    /* A middle key outside the range is ignored, never proposed. */
    set_key(&r->mid_key, "k000010");
    pd_ops_reset(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_split_by_load_at_load_key(void **state)
{
    (void)state;
    fx f;
    cluster(&f, 2, 32 * FX_MIB);
    pd_range *r = &f.c.ranges[1]; /* [k000010, "") */
    r->reads_per_s = f.s.range_split_qps * 0.75;
    r->writes_per_s = f.s.range_split_qps * 0.5;
    set_key(&r->load_key, "k000042");
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].reason, PD_REASON_LOAD);
    assert_memory_equal(ops.v[0].key.p, "k000042", 7);
    fx_apply(&f, &ops, NULL);
    assert_int_equal(f.c.n_ranges, 3);
    assert_int_equal(fx_replicas_on(&f, 1), 3);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_no_split_while_moving(void **state)
{
    (void)state;
    fx f;
    cluster(&f, 1, 32 * FX_MIB);
    fx_node(&f, "r1", "d");
    pd_range *r = &f.c.ranges[0];
    r->size_bytes = 2 * f.s.range_max_bytes;
    set_key(&r->mid_key, "m");
    r->replicas[r->n_replicas++] = (pd_replica){.node = 4, .role = PD_LEARNER, .replaces = 3};
    pd_ops ops;
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_split(&f.c, &f.s, &ops), 0);
    assert_int_equal(ops.n, 0);
    /* Once the move is over, it splits. */
    r->n_replicas--;
    assert_int_equal(pd_schedule_split(&f.c, &f.s, &ops), 0);
    assert_int_equal(fx_count(&ops, PD_OP_SPLIT, PD_REASON_SIZE), 1);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_split_at_policy_boundary(void **state)
{
    (void)state;
    fx f;
    cluster(&f, 1, 32 * FX_MIB);
    pd_policy p = {.replication_factor = 3};
    set_key(&p.start, "m");
    set_key(&p.end, "t");
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    pd_key_free(&p.start);
    pd_key_free(&p.end);
    fx_trace t = {0};
    fx_converge(&f, 10, &t);
    assert_int_equal(f.c.n_ranges, 3); /* ["", m) [m, t) [t, "") */
    /* ... and the pieces never merge back across the boundary. */
    fx_advance(&f, f.s.merge_cooldown_ns);
    for (size_t i = 0; i < f.c.n_ranges; i++) f.c.ranges[i].size_bytes = FX_MIB;
    fx_converge(&f, 10, &t);
    assert_int_equal(f.c.n_ranges, 3);
    fx_trace_free(&t);
    fx_free(&f);
}

static void test_cold_neighbours_merge(void **state)
{
    (void)state;
    fx f;
    cluster(&f, 4, FX_MIB);
    f.c.ranges[2].size_bytes = 32 * FX_MIB; /* the third is not small */
    fx_trace t = {0};
    fx_converge(&f, 10, &t);
    /* 1+2 merged; 3 is big; 4 has no small left neighbour. */
    assert_int_equal(f.c.n_ranges, 3);
    const pd_range *r1 = pd_cluster_range(&f.c, 1);
    assert_int_equal(r1->size_bytes, 2 * FX_MIB);
    assert_memory_equal(r1->end.p, "k000020", 7);
    assert_int_equal(fx_replicas_on(&f, 1), 3);
    fx_trace_free(&t);
    fx_free(&f);
}

static void test_hot_or_policy_split_neighbours_do_not_merge(void **state)
{
    (void)state;
    fx f;
    cluster(&f, 2, FX_MIB);
    f.c.ranges[1].writes_per_s = f.s.range_split_qps * f.s.merge_qps_fraction;
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_unequal_replica_sets_align_then_merge(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    for (int i = 0; i < 4; i++) fx_node(&f, "r1", (const char *[]){"a", "b", "c", "c"}[i]);
    pd_node_id l[3] = {1, 2, 3}, r[3] = {1, 2, 4};
    fx_range(&f, -1, 10, l, 3, FX_MIB);
    fx_range(&f, 10, -1, r, 3, FX_MIB);
    pd_ops ops;
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_merge(&f.c, &f.s, &ops), 0);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_ADD_LEARNER);
    assert_int_equal(ops.v[0].reason, PD_REASON_MERGE);
    assert_int_equal(ops.v[0].range, 2);
    assert_int_equal(ops.v[0].node, 3);
    assert_int_equal(ops.v[0].from, 4);
    fx_converge(&f, 10, NULL);
    assert_int_equal(f.c.n_ranges, 1);
    assert_int_equal(fx_replicas_on(&f, 4), 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

/* A load split is never undone by a merge while the cool-down runs, even
 * when the load that caused it stops at once. */
static void test_no_merge_right_after_load_split(void **state)
{
    (void)state;
    fx f;
    cluster(&f, 1, 2 * FX_MIB);
    pd_range *r = &f.c.ranges[0];
    r->reads_per_s = 2 * f.s.range_split_qps;
    set_key(&r->load_key, "k000500");
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(fx_count(&ops, PD_OP_SPLIT, PD_REASON_LOAD), 1);
    fx_apply(&f, &ops, NULL);
    for (size_t i = 0; i < f.c.n_ranges; i++) f.c.ranges[i].reads_per_s = 0; /* load gone */
    fx_advance(&f, f.s.merge_cooldown_ns - 1);
    pd_ops_reset(&ops);
    assert_int_equal(pd_schedule_merge(&f.c, &f.s, &ops), 0);
    assert_int_equal(ops.n, 0);
    fx_advance(&f, 1);
    assert_int_equal(pd_schedule_merge(&f.c, &f.s, &ops), 0);
    assert_int_equal(fx_count(&ops, PD_OP_MERGE, -1), 1);
    pd_ops_free(&ops);
    fx_free(&f);
}

/* Split by size and merge never chase each other: two ranges just below
 * min merge into one far below max. */
static void test_split_merge_settle(void **state)
{
    (void)state;
    fx f;
    cluster(&f, 8, 16 * FX_MIB - 1); /* just below the default min */
    fx_trace t = {0};
    fx_converge(&f, 30, &t);
    size_t n = f.c.n_ranges;
    assert_true(n < 8);
    for (size_t i = 0; i < n; i++) assert_true(f.c.ranges[i].size_bytes < f.s.range_max_bytes);
    fx_advance(&f, 10 * f.s.merge_cooldown_ns);
    pd_ops ops;
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_split(&f.c, &f.s, &ops), 0);
    assert_int_equal(ops.n, 0);
    pd_ops_free(&ops);
    fx_trace_free(&t);
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_by_size_at_mid_key),
        cmocka_unit_test(test_split_by_load_at_load_key),
        cmocka_unit_test(test_no_split_while_moving),
        cmocka_unit_test(test_split_at_policy_boundary),
        cmocka_unit_test(test_cold_neighbours_merge),
        cmocka_unit_test(test_hot_or_policy_split_neighbours_do_not_merge),
        cmocka_unit_test(test_unequal_replica_sets_align_then_merge),
        cmocka_unit_test(test_no_merge_right_after_load_split),
        cmocka_unit_test(test_split_merge_settle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
