/* The placement data model: settings checks, the liveness rule, snapshot
 * validation (bad input gets a clear error, never a crash), key helpers, op
 * formatting, and the model applier's effects and preconditions. */
#include "pd_fixture.h"

#include <stdlib.h>
#include <string.h>

static void test_settings(void **state)
{
    (void)state;
    pd_settings s;
    merr e = {0};
    pd_settings_default(&s);
    assert_int_equal(pd_settings_validate(&s, &e), 0);
    assert_true(s.range_max_bytes == 64 * FX_MIB && s.range_min_bytes == 16 * FX_MIB);
    assert_true(s.dead_timeout_ns == FX_S(30));
    pd_settings bad = s;
    bad.range_min_bytes = bad.range_max_bytes / 2 + 1; /* a merge would split again */
    assert_int_equal(pd_settings_validate(&bad, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "range.min_bytes"));
    bad = s;
    bad.merge_qps_fraction = 0.6;
    assert_int_equal(pd_settings_validate(&bad, &e), MERR_INVALID);
    bad = s;
    bad.suspect_timeout_ns = bad.dead_timeout_ns + 1;
    assert_int_equal(pd_settings_validate(&bad, &e), MERR_INVALID);
    bad = s;
    bad.max_moves = 0;
    assert_int_equal(pd_settings_validate(&bad, &e), MERR_INVALID);
    bad = s;
    bad.default_replication_factor = 2;
    assert_int_equal(pd_settings_validate(&bad, &e), MERR_INVALID);
}

static void test_liveness_rule(void **state)
{
    (void)state;
    pd_settings s;
    pd_settings_default(&s);
    pd_node n = {.id = 1, .last_heartbeat_ns = FX_S(100)};
    assert_int_equal(pd_node_liveness(&n, &s, FX_S(100)), PD_LIVE);
    assert_int_equal(pd_node_liveness(&n, &s, FX_S(99)), PD_LIVE); /* heartbeat "ahead" */
    assert_int_equal(pd_node_liveness(&n, &s, FX_S(105) - 1), PD_LIVE);
    assert_int_equal(pd_node_liveness(&n, &s, FX_S(105)), PD_SUSPECT);
    assert_int_equal(pd_node_liveness(&n, &s, FX_S(130) - 1), PD_SUSPECT);
    assert_int_equal(pd_node_liveness(&n, &s, FX_S(130)), PD_DEAD);
    n.decommissioning = true;
    assert_int_equal(pd_node_liveness(&n, &s, FX_S(100)), PD_DECOMMISSIONING);
    assert_int_equal(pd_node_liveness(&n, &s, FX_S(130)), PD_DEAD);
    assert_string_equal(pd_liveness_name(PD_SUSPECT), "suspect");
}

static void expect_invalid(fx *f, const char *what)
{
    pd_ops ops;
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule(&f->c, &f->s, &ops), MERR_INVALID);
    if (!strstr(ops.err.msg, what)) fail_msg("error '%s' lacks '%s'", ops.err.msg, what);
    assert_int_equal(ops.n, 0);
    pd_ops_free(&ops);
}

static void small(fx *f)
{
    fx_init(f);
    fx_node(f, "r1", "a");
    fx_node(f, "r1", "b");
    fx_node(f, "r1", "c");
    fx_ranges(f, 2, 3, 1, 32 * FX_MIB);
}

static void test_bad_snapshots_rejected(void **state)
{
    (void)state;
    fx f;
    small(&f);
    f.c.ranges[0].replicas[1].node = 99;
    expect_invalid(&f, "unknown node 99");
    fx_free(&f);

    small(&f);
    f.c.ranges[0].replicas[1].node = f.c.ranges[0].replicas[0].node;
    expect_invalid(&f, "two replicas on node");
    fx_free(&f);

    small(&f);
    f.c.ranges[0].leader = 0;
    f.c.ranges[0].replicas[0].role = PD_LEARNER;
    f.c.ranges[0].leader = f.c.ranges[0].replicas[0].node;
    expect_invalid(&f, "is not a voter");
    fx_free(&f);

    small(&f);
    pd_key_free(&f.c.ranges[0].end); /* ["", "") now overlaps the second */
    expect_invalid(&f, "overlaps");
    fx_free(&f);

    small(&f);
    f.c.nodes[2].id = 1;
    expect_invalid(&f, "duplicate node id");
    fx_free(&f);

    small(&f);
    f.c.ranges[1].id = 1;
    expect_invalid(&f, "duplicate range id");
    fx_free(&f);

    small(&f);
    f.c.ranges[0].n_replicas = 0;
    expect_invalid(&f, "0 replicas");
    fx_free(&f);

    small(&f);
    pd_policy p = {.replication_factor = 4};
    assert_int_equal(pd_cluster_add_policy(&f.c, &p), 0);
    expect_invalid(&f, "replication factor 4");
    fx_free(&f);

    small(&f);
    f.s.range_min_bytes = f.s.range_max_bytes;
    expect_invalid(&f, "range.min_bytes");
    fx_free(&f);

    /* Builders refuse what does not fit. */
    fx_init(&f);
    pd_node n = {.id = 1};
    memset(n.region, 'x', sizeof(n.region));
    assert_int_equal(pd_cluster_add_node(&f.c, &n), MERR_INVALID);
    pd_range r = {.id = 1, .n_replicas = PD_MAX_REPLICAS + 1};
    assert_int_equal(pd_cluster_add_range(&f.c, &r), MERR_INVALID);
    fx_free(&f);
}

static void test_empty_cluster(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    pd_ops ops;
    pd_ops_init(&ops);
    fx_schedule(&f, &ops);
    assert_int_equal(ops.n, 0);
    pd_ops_free(&ops);
    fx_free(&f);
}

static void test_keys_and_format(void **state)
{
    (void)state;
    pd_key a, b, empty = {0}, k;
    assert_int_equal(pd_key_set(&a, "b", 1), 0);
    assert_int_equal(pd_key_set(&b, "d", 1), 0);
    assert_int_equal(pd_key_set(&k, "c", 1), 0);
    assert_true(pd_key_inside(&k, &a, &b));
    assert_false(pd_key_inside(&a, &a, &b)); /* the start itself is no split point */
    assert_false(pd_key_inside(&b, &a, &b));
    assert_true(pd_key_inside(&b, &a, &empty)); /* open end */
    assert_false(pd_key_inside(&empty, &empty, &empty));
    pd_key ab;
    assert_int_equal(pd_key_set(&ab, "b\0", 2), 0);
    assert_true(pd_key_cmp(&a, &ab) < 0); /* a prefix sorts first */
    pd_op op = {.kind = PD_OP_SPLIT, .reason = PD_REASON_LOAD, .range = 7, .key = ab};
    char txt[64];
    pd_op_format(&op, txt, sizeof(txt));
    assert_string_equal(txt, "SPLIT range=7 key=b\\x00 reason=load");
    pd_op mv = {.kind = PD_OP_ADD_LEARNER, .reason = PD_REASON_REBALANCE, .range = 3, .node = 4};
    mv.from = 2;
    pd_op_format(&mv, txt, sizeof(txt));
    assert_string_equal(txt, "ADD_LEARNER range=3 node=4 from=2 reason=rebalance");
    assert_int_equal(pd_op_format(&mv, txt, 8), 7); /* truncates, terminated */
    assert_int_equal(strlen(txt), 7);
    pd_key_free(&a);
    pd_key_free(&b);
    pd_key_free(&k);
    pd_key_free(&ab);
}

static void expect_apply_fails(fx *f, pd_op op, const char *what)
{
    merr e = {0};
    assert_int_equal(pd_apply(&f->c, &f->s, &op, &e), MERR_INVALID);
    if (!strstr(e.msg, what)) fail_msg("error '%s' lacks '%s'", e.msg, what);
}

static void test_applier(void **state)
{
    (void)state;
    fx f;
    small(&f);
    fx_node(&f, "r1", "d");
    merr e = {0};
    pd_cluster copy;
    assert_int_equal(pd_cluster_copy(&copy, &f.c), 0);
    /* Move range 1 from node 3 to node 4. */
    pd_op add = {.kind = PD_OP_ADD_LEARNER, .range = 1, .node = 4, .from = 3};
    assert_int_equal(pd_apply(&f.c, &f.s, &add, &e), 0);
    const pd_range *r = pd_cluster_range(&f.c, 1);
    assert_int_equal(r->n_replicas, 4);
    assert_int_equal(r->replicas[3].role, PD_LEARNER);
    assert_int_equal(r->replicas[3].replaces, 3);
    assert_int_equal(pd_cluster_node(&f.c, 4)->replica_count, 1);
    expect_apply_fails(&f, add, "already");
    expect_apply_fails(&f, (pd_op){.kind = PD_OP_PROMOTE, .range = 1, .node = 2}, "not a learner");
    assert_int_equal(
        pd_apply(&f.c, &f.s, &(pd_op){.kind = PD_OP_PROMOTE, .range = 1, .node = 4}, &e), 0);
    expect_apply_fails(&f, (pd_op){.kind = PD_OP_REMOVE_REPLICA, .range = 1, .node = 1},
                       "transfer first");
    assert_int_equal(
        pd_apply(&f.c, &f.s, &(pd_op){.kind = PD_OP_REMOVE_REPLICA, .range = 1, .node = 3}, &e), 0);
    assert_int_equal(r->replicas[2].replaces, 0); /* intent fulfilled */
    assert_int_equal(pd_cluster_node(&f.c, 3)->replica_count, 1);
    expect_apply_fails(&f, (pd_op){.kind = PD_OP_TRANSFER_LEADER, .range = 1, .node = 3},
                       "not a voter");
    assert_int_equal(
        pd_apply(&f.c, &f.s, &(pd_op){.kind = PD_OP_TRANSFER_LEADER, .range = 1, .node = 4}, &e),
        0);
    assert_int_equal(r->leader, 4);
    assert_int_equal(pd_cluster_node(&f.c, 4)->leader_count, 1);
    /* Split, then merge back. */
    pd_key mid;
    assert_int_equal(pd_key_set(&mid, "k000015", 7), 0);
    pd_op split = {.kind = PD_OP_SPLIT, .range = 2, .key = mid};
    expect_apply_fails(&f, (pd_op){.kind = PD_OP_SPLIT, .range = 2}, "not inside");
    assert_int_equal(pd_apply(&f.c, &f.s, &split, &e), 0);
    assert_int_equal(f.c.n_ranges, 3);
    const pd_range *l = pd_cluster_range(&f.c, 2), *rr = pd_cluster_range(&f.c, 3);
    assert_true(pd_key_eq(&l->end, &mid) && pd_key_eq(&rr->start, &mid));
    assert_int_equal(l->size_bytes + rr->size_bytes, 32 * FX_MIB);
    assert_int_equal(pd_cluster_node(&f.c, 3)->replica_count, 2); /* the new range's */
    assert_int_equal(rr->last_split_merge_ns, f.c.now_ns);
    expect_apply_fails(&f, (pd_op){.kind = PD_OP_MERGE, .range = 1, .range2 = 3}, "not adjacent");
    assert_int_equal(
        pd_apply(&f.c, &f.s, &(pd_op){.kind = PD_OP_MERGE, .range = 2, .range2 = 3}, &e), 0);
    assert_int_equal(f.c.n_ranges, 2);
    assert_int_equal(pd_cluster_range(&f.c, 2)->end.len, 0);
    expect_apply_fails(&f, (pd_op){.kind = PD_OP_MERGE, .range = 1, .range2 = 2},
                       "replica sets differ");
    expect_apply_fails(&f, (pd_op){.kind = PD_OP_PROMOTE, .range = 42, .node = 1}, "not found");
    /* A dead leader's replica may go; the group elects another. */
    r = pd_cluster_range(&f.c, 1); /* the split may have moved the array */
    fx_kill(&f, 4);
    assert_int_equal(
        pd_apply(&f.c, &f.s, &(pd_op){.kind = PD_OP_REMOVE_REPLICA, .range = 1, .node = 4}, &e), 0);
    assert_true(r->leader == 1 || r->leader == 2);
    /* Never the last voter. */
    pd_node_id one = 1;
    pd_range_id solo = fx_range(&f, 100, 200, &one, 1, FX_MIB);
    expect_apply_fails(&f, (pd_op){.kind = PD_OP_REMOVE_REPLICA, .range = solo, .node = 1},
                       "last voter");
    /* The copy was untouched. */
    assert_int_equal(copy.n_ranges, 2);
    assert_int_equal(copy.ranges[0].n_replicas, 3);
    pd_cluster_free(&copy);
    pd_key_free(&mid);
    fx_free(&f);
}

/* A finished replica step is visible once the snapshot shows its effect,
 * and only then: the executor releases the range for the move's next step
 * on that, not on a fixed settle time (server/node_pd.c). */
static void test_inflight_visible(void **state)
{
    (void)state;
    fx f;
    small(&f);
    fx_node(&f, "r1", "d");
    merr e = {0};
    pd_inflight add = {.range = 1, .kind = PD_OP_ADD_LEARNER, .node = 4, .from = 3};
    pd_inflight pro = {.range = 1, .kind = PD_OP_PROMOTE, .node = 4};
    pd_inflight rem = {.range = 1, .kind = PD_OP_REMOVE_REPLICA, .node = 3};
    pd_inflight xfer = {.range = 1, .kind = PD_OP_TRANSFER_LEADER, .node = 4};
    assert_false(pd_inflight_visible(&f.c, &add));
    assert_int_equal(pd_apply(&f.c, &f.s,
                              &(pd_op){.kind = PD_OP_ADD_LEARNER, .range = 1, .node = 4, .from = 3},
                              &e),
                     0);
    assert_true(pd_inflight_visible(&f.c, &add));
    assert_false(pd_inflight_visible(&f.c, &pro)); /* still a learner */
    assert_int_equal(
        pd_apply(&f.c, &f.s, &(pd_op){.kind = PD_OP_PROMOTE, .range = 1, .node = 4}, &e), 0);
    assert_true(pd_inflight_visible(&f.c, &pro));
    assert_false(pd_inflight_visible(&f.c, &rem));
    assert_int_equal(
        pd_apply(&f.c, &f.s, &(pd_op){.kind = PD_OP_REMOVE_REPLICA, .range = 1, .node = 3}, &e), 0);
    assert_true(pd_inflight_visible(&f.c, &rem));
    assert_false(pd_inflight_visible(&f.c, &xfer));
    assert_int_equal(
        pd_apply(&f.c, &f.s, &(pd_op){.kind = PD_OP_TRANSFER_LEADER, .range = 1, .node = 4}, &e),
        0);
    assert_true(pd_inflight_visible(&f.c, &xfer));
    /* Splits and merges, and ranges the snapshot lacks, never are. */
    assert_false(pd_inflight_visible(&f.c, &(pd_inflight){.range = 1, .kind = PD_OP_SPLIT}));
    assert_false(
        pd_inflight_visible(&f.c, &(pd_inflight){.range = 1, .range2 = 2, .kind = PD_OP_MERGE}));
    assert_false(pd_inflight_visible(
        &f.c, &(pd_inflight){.range = 42, .kind = PD_OP_REMOVE_REPLICA, .node = 9}));
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_liveness_rule),
        cmocka_unit_test(test_bad_snapshots_rejected),
        cmocka_unit_test(test_empty_cluster),
        cmocka_unit_test(test_keys_and_format),
        cmocka_unit_test(test_applier),
        cmocka_unit_test(test_inflight_visible),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
