/* The PD's edge-free parts: cluster settings by name (parse, format,
 * validate as a whole, unchanged on error) and heartbeats → snapshot
 * (leaseholder reports win, newer generations supersede stale overlapping
 * reports, learners caught up by the slot the leader saw them acknowledge, grace for unheard nodes
 * after a PD failover, the snapshot the split scheduler then acts on, by size
 * or by the reported load key). */
#include "pd_fixture.h"

#include <stdlib.h>
#include <string.h>

#include "placement/pd_feed.h"
#include "placement/pd_settings_text.h"

static void test_settings_by_name(void **state)
{
    (void)state;
    pd_settings s, before;
    merr e = {0};
    char v[PD_SETTING_VALUE_MAX];
    pd_settings_default(&s);
    size_t n = 0;
    while (pd_setting_name(n)) {
        assert_int_equal(pd_setting_get(&s, pd_setting_name(n), v, sizeof(v), &e), 0);
        assert_non_null(pd_setting_help(n));
        /* Every formatted value parses back to itself. */
        before = s;
        assert_int_equal(pd_setting_set(&s, pd_setting_name(n), v, &e), 0);
        assert_memory_equal(&s, &before, sizeof(s));
        n++;
    }
    assert_true(n >= 10);
    assert_int_equal(pd_setting_get(&s, "range.max_bytes", v, sizeof(v), &e), 0);
    assert_string_equal(v, "67108864");

    assert_int_equal(pd_setting_set(&s, "range.min_bytes", "1KiB", &e), 0);
    assert_int_equal(pd_setting_set(&s, "range.max_bytes", "4KiB", &e), 0);
    assert_true(s.range_max_bytes == 4096 && s.range_min_bytes == 1024);
    assert_int_equal(pd_setting_set(&s, "node.suspect_timeout", "1s", &e), 0);
    assert_int_equal(pd_setting_set(&s, "node.dead_timeout", "3s", &e), 0);
    assert_true(s.dead_timeout_ns == FX_S(3) && s.suspect_timeout_ns == FX_S(1));
    assert_int_equal(pd_setting_get(&s, "node.dead_timeout", v, sizeof(v), &e), 0);
    assert_string_equal(v, "3s");
    assert_int_equal(pd_setting_set(&s, "rebalance.max_moves", "3", &e), 0);
    assert_int_equal(s.max_moves, 3);
    assert_int_equal(pd_setting_set(&s, "range.replication_factor", "5", &e), 0);
    assert_int_equal(s.default_replication_factor, 5);

    /* Bad input: a clear error, nothing changed. */
    before = s;
    const char *bad[][2] = {
        {"range.max_bytes", "lots"},       {"range.max_bytes", "-1"},
        {"range.max_bytes", "1KiB"}, /* min (1 KiB) > max/2 */
        {"range.min_bytes", "3KiB"},       {"node.dead_timeout", "abc"},
        {"node.dead_timeout", "500ms"}, /* below suspect_timeout */
        {"range.split_qps", "0"},          {"range.split_qps", "1e"},
        {"range.replication_factor", "2"}, {"rebalance.max_moves", "0"},
        {"node.max_fullness", "1.5"},      {"no.such", "1"},
        {"range.max_bytes", ""},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        e = (merr){0};
        assert_int_equal(pd_setting_set(&s, bad[i][0], bad[i][1], &e), MERR_INVALID);
        assert_true(e.msg[0] != 0);
        assert_memory_equal(&s, &before, sizeof(s));
    }
    assert_non_null(strstr(e.msg, "range.max_bytes"));
    assert_int_equal(pd_setting_get(&s, "no.such", v, sizeof(v), &e), MERR_INVALID);
    assert_int_equal(pd_setting_set(&s, NULL, "1", &e), MERR_INVALID);
}

/* One replica report. */
static pd_hb_replica rep(pd_range_id id, uint64_t gen, const char *start, const char *end, bool lh,
                         uint64_t applied, uint64_t size)
{
    pd_hb_replica r;
    memset(&r, 0, sizeof(r));
    r.range = id;
    r.generation = gen;
    pd_key_set(&r.start, start, strlen(start));
    pd_key_set(&r.end, end, strlen(end));
    r.leaseholder = lh;
    r.applied = applied;
    r.size_bytes = size;
    r.voters[0] = 1, r.voters[1] = 2, r.voters[2] = 3;
    r.n_voters = 3;
    return r;
}

static void put(pd_hb_table *t, pd_node_id node, int64_t at, pd_hb_replica *rs, size_t n)
{
    pd_hb hb = {.node = node, .received_ns = at, .capacity_bytes = 1000, .used_bytes = 10};
    hb.replicas = calloc(n, sizeof(*rs));
    memcpy(hb.replicas, rs, n * sizeof(*rs));
    hb.n_replicas = n;
    assert_int_equal(pd_hb_table_put(t, &hb), 0);
}

static void test_feed_build(void **state)
{
    (void)state;
    pd_hb_table t;
    pd_hb_table_init(&t);
    int64_t T = FX_S(100);
    /* Node 1 leads range 1 [ , m) gen 2 and a stale range 1 [ , +inf) is
     * reported as led by node 2 at gen 1 (its lease lapsed mid-split); node
     * 2 leads range 2 [m, +inf) gen 2 with a learner on node 4. */
    pd_hb_replica n1[] = {rep(1, 2, "", "m", true, 50, 100), rep(2, 2, "m", "", false, 40, 90)};
    pd_hb_replica n2[] = {rep(1, 1, "", "", true, 30, 190), rep(2, 2, "m", "", true, 40, 90)};
    n2[1].learners[0] = 4;
    n2[1].learner_acked[0] = 39; /* the leader saw node 4 acknowledge slot 39 */
    n2[1].n_learners = 1;
    pd_key_set(&n2[1].mid_key, "t", 1);
    pd_hb_replica n4[] = {rep(2, 2, "m", "", false, 30, 0)};
    put(&t, 1, T, n1, 2);
    put(&t, 2, T, n2, 2);
    put(&t, 4, T, n4, 1);
    /* A second heartbeat of node 4 replaces the first: caught up now. */
    pd_hb_replica n4b[] = {rep(2, 2, "m", "", false, 39, 90)};
    put(&t, 4, T + FX_S(1), n4b, 1);
    assert_int_equal(t.n, 3);

    /* Registry: nodes 1-5; node 5 never heard from since the PD took over
     * at T - 2s (grace); node 3 heard long ago (dead once timeout passed). */
    pd_node_id reg[] = {1, 2, 3, 4, 5};
    pd_hb_replica n3[] = {rep(1, 1, "", "", false, 1, 0)};
    put(&t, 3, T - FX_S(60), n3, 1);
    pd_node_id decom[] = {2};
    pd_cluster c;
    pd_cluster_init(&c);
    merr e = {0};
    assert_int_equal(pd_feed_build(&t, reg, 5, decom, 1, T - FX_S(2), T + FX_S(1), &c, &e), 0);
    assert_int_equal(pd_cluster_validate(&c, &e), 0);
    assert_int_equal(c.n_nodes, 5);
    assert_int_equal(c.n_ranges, 2);
    pd_range *r1 = pd_cluster_range(&c, 1);
    assert_non_null(r1);
    assert_int_equal(r1->generation, 2); /* the stale gen-1 report lost */
    assert_int_equal(r1->leader, 1);
    assert_true(r1->end.len == 1 && r1->end.p[0] == 'm');
    pd_range *r2 = pd_cluster_range(&c, 2);
    assert_int_equal(r2->leader, 2);
    assert_int_equal(r2->n_replicas, 4);
    assert_int_equal(r2->replicas[3].node, 4);
    assert_int_equal(r2->replicas[3].role, PD_LEARNER);
    assert_true(r2->replicas[3].caught_up); /* 39 + slack >= 40 */
    assert_true(r2->mid_key.len == 1 && r2->mid_key.p[0] == 't');
    /* Node 3's heartbeat lists range 1 only: its voter of range 2 is not
     * hosted there (no lease target); nodes 1 and 2 report range 2. */
    assert_int_equal(r2->replicas[2].node, 3);
    assert_true(r2->replicas[2].unhosted);
    assert_false(r2->replicas[0].unhosted || r2->replicas[1].unhosted);
    assert_false(r1->replicas[2].unhosted);

    pd_settings s;
    pd_settings_default(&s);
    /* Node 3 heard 60 s before T but the PD only took over at T - 2 s:
     * it gets the full grace, so it is live now... */
    assert_int_equal(pd_node_liveness(pd_cluster_node(&c, 3), &s, c.now_ns), PD_LIVE);
    assert_int_equal(pd_node_liveness(pd_cluster_node(&c, 5), &s, c.now_ns), PD_LIVE);
    /* ...and dead one timeout after the takeover. */
    assert_int_equal(pd_node_liveness(pd_cluster_node(&c, 3), &s, T + FX_S(29)), PD_DEAD);
    assert_int_equal(pd_node_liveness(pd_cluster_node(&c, 1), &s, T + FX_S(29)), PD_SUSPECT);
    assert_int_equal(pd_node_liveness(pd_cluster_node(&c, 1), &s, T + FX_S(2)), PD_LIVE);
    assert_int_equal(pd_node_liveness(pd_cluster_node(&c, 2), &s, c.now_ns), PD_DECOMMISSIONING);
    assert_int_equal(pd_cluster_node(&c, 1)->leader_count, 1);
    assert_int_equal(pd_cluster_node(&c, 1)->replica_count, 2);
    assert_true(pd_cluster_node(&c, 4)->capacity_bytes == 1000);

    /* The split scheduler acts on the snapshot: range 2 is above max with a
     * reported middle key; range 1 has none (nothing reported). */
    s.range_max_bytes = 80;
    s.range_min_bytes = 40;
    pd_ops ops;
    pd_ops_init(&ops);
    /* The learner is a move under way; drop it so range 2 counts as settled. */
    r2->n_replicas = 3;
    assert_int_equal(pd_schedule_split(&c, &s, &ops), 0);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_SPLIT);
    assert_int_equal(ops.v[0].range, 2);
    assert_true(ops.v[0].key.len == 1 && ops.v[0].key.p[0] == 't');
    pd_ops_free(&ops);
    pd_cluster_free(&c);

    /* A learner far behind is not caught up; a range nobody leads is left
     * out. */
    pd_hb_replica n4c[] = {rep(2, 2, "m", "", false, 3, 0)};
    put(&t, 4, T + FX_S(2), n4c, 1);
    pd_hb_replica n2b[] = {rep(1, 1, "", "", false, 30, 190), rep(2, 2, "m", "", true, 40, 90)};
    n2b[1].learners[0] = 4;
    n2b[1].learner_acked[0] = 3;
    n2b[1].n_learners = 1;
    put(&t, 2, T + FX_S(2), n2b, 2);
    pd_cluster_init(&c);
    assert_int_equal(pd_feed_build(&t, NULL, 0, NULL, 0, T, T + FX_S(2), &c, &e), 0);
    assert_int_equal(c.n_nodes, 4); /* heard-of nodes only */
    r2 = pd_cluster_range(&c, 2);
    assert_false(r2->replicas[3].caught_up);
    pd_cluster_free(&c);

    /* Catch-up is what the leader's Paxos state saw the learner
     * acknowledge, never the learner's own report: node 4 reports it has
     * applied as far as the leader (a replica of an earlier incarnation, or a
     * report racing its addition) but the leader saw no acknowledgement, so
     * it is not caught up; node 5, not reporting the range at all, is caught
     * up on the leader's word. Slack is in Paxos slots: 40 - 16 is enough. */
    pd_hb_replica n2c[] = {rep(1, 1, "", "", false, 30, 190), rep(2, 2, "m", "", true, 40, 90)};
    n2c[1].learners[0] = 4;
    n2c[1].learners[1] = 5;
    n2c[1].learner_acked[1] = 40 - PD_FEED_CATCHUP_SLOTS;
    n2c[1].n_learners = 2;
    put(&t, 2, T + FX_S(3), n2c, 2);
    pd_hb_replica n4d[] = {rep(2, 2, "m", "", false, 40, 0)};
    put(&t, 4, T + FX_S(3), n4d, 1);
    pd_cluster_init(&c);
    assert_int_equal(pd_feed_build(&t, NULL, 0, NULL, 0, T, T + FX_S(3), &c, &e), 0);
    r2 = pd_cluster_range(&c, 2);
    assert_int_equal(r2->n_replicas, 5);
    assert_true(r2->replicas[3].node == 4 && !r2->replicas[3].caught_up);
    assert_true(r2->replicas[4].node == 5 && r2->replicas[4].caught_up);
    pd_cluster_free(&c);
    pd_hb_table_free(&t);
}

/* A range's span age becomes its last split/merge time: a fresh split is
 * not merged back within range.merge_cooldown, an old one is. */
static void test_feed_split_age(void **state)
{
    (void)state;
    pd_hb_table t;
    pd_hb_table_init(&t);
    int64_t T = FX_S(1000);
    pd_hb_replica n1[] = {rep(2, 3, "a", "m", true, 9, 10), rep(3, 3, "m", "", true, 9, 10)};
    n1[0].span_age_ns = FX_S(5);
    n1[1].span_age_ns = FX_S(5);
    put(&t, 1, T, n1, 2);
    pd_cluster c;
    pd_cluster_init(&c);
    merr e = {0};
    assert_int_equal(pd_feed_build(&t, NULL, 0, NULL, 0, 0, T + FX_S(1), &c, &e), 0);
    assert_int_equal(pd_cluster_range(&c, 2)->last_split_merge_ns, T - FX_S(5));
    pd_settings s;
    pd_settings_default(&s);
    s.merge_cooldown_ns = FX_S(60);
    pd_ops ops;
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_merge(&c, &s, &ops), 0);
    assert_int_equal(ops.n, 0); /* split 6 s ago: within the cool-down */
    pd_ops_free(&ops);
    pd_cluster_free(&c);
    /* Two minutes on (nodes 2 and 3 counted live from the PD's takeover). */
    pd_cluster_init(&c);
    assert_int_equal(pd_feed_build(&t, NULL, 0, NULL, 0, T + FX_S(119), T + FX_S(120), &c, &e), 0);
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_merge(&c, &s, &ops), 0);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_MERGE);
    assert_int_equal(ops.v[0].range, 2);
    assert_int_equal(ops.v[0].range2, 3);
    pd_ops_free(&ops);
    pd_cluster_free(&c);
    /* Hot ranges (reads/s from the heartbeats) stay apart. */
    pd_hb_replica hot[] = {rep(2, 3, "a", "m", true, 9, 10), rep(3, 3, "m", "", true, 9, 10)};
    hot[0].span_age_ns = hot[1].span_age_ns = FX_S(5);
    hot[0].reads_per_s = s.range_split_qps;
    put(&t, 1, T, hot, 2); /* the table took n1's keys over: fresh ones */
    pd_cluster_init(&c);
    assert_int_equal(pd_feed_build(&t, NULL, 0, NULL, 0, T + FX_S(119), T + FX_S(120), &c, &e), 0);
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_merge(&c, &s, &ops), 0);
    assert_int_equal(ops.n, 0);
    pd_ops_free(&ops);
    pd_cluster_free(&c);
    pd_hb_table_free(&t);
}

/* Two leaseholder reports of one range at one generation: a node that died
 * leading it (its last heartbeat stays in the table) and the new leader
 * that has since replaced it with a learner. The fresher report wins,
 * whichever node comes first in the table: else the schedulers would see
 * the old members, add the learner again and remove the new replica. */
static void test_feed_fresher_report_wins(void **state)
{
    (void)state;
    int64_t T = FX_S(100);
    for (int order = 0; order < 2; order++) {
        pd_hb_table t;
        pd_hb_table_init(&t);
        pd_hb_replica stale[] = {rep(7, 3, "a", "b", true, 10, 5)};
        pd_hb_replica fresh[] = {rep(7, 3, "a", "b", true, 12, 5)};
        fresh[0].voters[1] = 4; /* {1, 4, 3}: node 2 replaced by node 4 */
        fresh[0].learners[0] = 5;
        fresh[0].n_learners = 1;
        if (order == 0) {
            put(&t, 2, T, stale, 1);
            put(&t, 1, T + FX_S(5), fresh, 1);
        } else {
            put(&t, 1, T + FX_S(5), fresh, 1);
            put(&t, 2, T, stale, 1);
        }
        pd_cluster c;
        pd_cluster_init(&c);
        merr e = {0};
        assert_int_equal(pd_feed_build(&t, NULL, 0, NULL, 0, T, T + FX_S(6), &c, &e), 0);
        assert_int_equal(c.n_ranges, 1);
        pd_range *r = pd_cluster_range(&c, 7);
        assert_int_equal(r->leader, 1);
        assert_int_equal(r->n_replicas, 4);
        assert_true(pd_range_has(r, 4) && pd_range_has(r, 5) && !pd_range_has(r, 2));
        pd_cluster_free(&c);
        pd_hb_table_free(&t);
    }
}

/* A leaseholder's load key reaches the snapshot and the split scheduler
 * splits the hot range there (a follower's report of one is not used);
 * below range.split_qps the key splits nothing. The halves, reported fresh
 * and cold, are not merged back within the cool-down, only after it. */
static void test_feed_load_key_splits_not_merged_back(void **state)
{
    (void)state;
    pd_hb_table t;
    pd_hb_table_init(&t);
    int64_t T = FX_S(100);
    pd_settings s;
    pd_settings_default(&s);
    s.range_split_qps = 100;
    s.merge_cooldown_ns = FX_S(60);
    pd_hb_replica lh[] = {rep(1, 1, "", "", true, 10, 10)};
    lh[0].reads_per_s = 80;
    lh[0].writes_per_s = 40;
    pd_key_set(&lh[0].load_key, "h5", 2);
    pd_hb_replica fol[] = {rep(1, 1, "", "", false, 10, 10)};
    pd_key_set(&fol[0].load_key, "z", 1);
    put(&t, 1, T, lh, 1);
    put(&t, 2, T, fol, 1);
    pd_cluster c;
    pd_cluster_init(&c);
    merr e = {0};
    assert_int_equal(pd_feed_build(&t, NULL, 0, NULL, 0, T, T + FX_S(1), &c, &e), 0);
    pd_range *r = pd_cluster_range(&c, 1);
    assert_true(r->load_key.len == 2 && memcmp(r->load_key.p, "h5", 2) == 0);
    pd_ops ops;
    pd_ops_init(&ops);
    assert_int_equal(pd_schedule_split(&c, &s, &ops), 0);
    assert_int_equal(ops.n, 1);
    assert_int_equal(ops.v[0].kind, PD_OP_SPLIT);
    assert_int_equal(ops.v[0].reason, PD_REASON_LOAD);
    assert_true(ops.v[0].key.len == 2 && memcmp(ops.v[0].key.p, "h5", 2) == 0);
    pd_ops_reset(&ops);
    s.range_split_qps = 200; /* 120/s is not hot any more */
    assert_int_equal(pd_schedule_split(&c, &s, &ops), 0);
    assert_int_equal(ops.n, 0);
    pd_cluster_free(&c);

    pd_hb_replica after[] = {rep(1, 2, "", "h5", true, 12, 10), rep(2, 2, "h5", "", true, 12, 10)};
    after[0].span_age_ns = after[1].span_age_ns = FX_S(1);
    put(&t, 1, T + FX_S(2), after, 2);
    int64_t now = T + FX_S(3);
    pd_cluster_init(&c);
    assert_int_equal(pd_feed_build(&t, NULL, 0, NULL, 0, now - FX_S(1), now, &c, &e), 0);
    assert_int_equal(c.n_ranges, 2);
    assert_int_equal(pd_schedule_merge(&c, &s, &ops), 0);
    assert_int_equal(ops.n, 0); /* split 2 s ago: within the cool-down */
    pd_cluster_free(&c);
    now = T + FX_S(2) - FX_S(1) + s.merge_cooldown_ns;
    pd_cluster_init(&c);
    assert_int_equal(pd_feed_build(&t, NULL, 0, NULL, 0, now - FX_S(1), now, &c, &e), 0);
    assert_int_equal(pd_schedule_merge(&c, &s, &ops), 0);
    assert_int_equal(fx_count(&ops, PD_OP_MERGE, -1), 1);
    pd_ops_free(&ops);
    pd_cluster_free(&c);
    pd_hb_table_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_settings_by_name),
        cmocka_unit_test(test_feed_build),
        cmocka_unit_test(test_feed_split_age),
        cmocka_unit_test(test_feed_fresher_report_wins),
        cmocka_unit_test(test_feed_load_key_splits_not_merged_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
