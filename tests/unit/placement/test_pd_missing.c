/* The PD's rule for voters whose node does not host their range (issue #9,
 * placement/pd_missing.h): a pair becomes due only once the node's own
 * heartbeat, received a grace period after the PD first saw it missing,
 * still lacks the range, and then once per grace period; a node that reports it, a silent node, a
 * learner and a replica no longer a member are never due. */
#include "pd_fixture.h"

#include <stdlib.h>
#include <string.h>

#include "placement/pd_missing.h"

#define GRACE FX_S(5)

/* A heartbeat from node at `at` reporting the given ranges (0-terminated). */
static void hb(pd_hb_table *t, pd_node_id node, int64_t at, const pd_range_id *ranges)
{
    pd_hb h = {.node = node, .received_ns = at};
    size_t n = 0;
    while (ranges[n]) n++;
    h.replicas = calloc(n ? n : 1, sizeof(*h.replicas));
    assert_non_null(h.replicas);
    for (size_t i = 0; i < n; i++) h.replicas[i].range = ranges[i];
    h.n_replicas = n;
    assert_int_equal(pd_hb_table_put(t, &h), 0);
}

/* Scans and returns how many pairs are due; *only (if one) gets it. */
static size_t scan(pd_missing_table *mt, const fx *f, const pd_hb_table *t, pd_missing *only)
{
    pd_missing *due = NULL;
    size_t n = 99;
    assert_int_equal(pd_missing_scan(mt, &f->c, t, GRACE, &due, &n), 0);
    assert_true(n ? due != NULL : due == NULL);
    if (n == 1 && only) *only = due[0];
    free(due);
    return n;
}

static void test_missing_voter_after_grace(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    pd_node_id v[3];
    for (int i = 0; i < 3; i++) v[i] = fx_node(&f, "r", i == 0 ? "a" : i == 1 ? "b" : "c");
    pd_range_id left = fx_range(&f, -1, 10, v, 3, 100);
    pd_range_id right = fx_range(&f, 10, -1, v, 3, 100); /* split off; node 3 lacks it */
    pd_hb_table t;
    pd_hb_table_init(&t);
    pd_missing_table mt = {0};
    int64_t t0 = f.c.now_ns;
    const pd_range_id both[] = {left, right, 0}, only_left[] = {left, 0};
    hb(&t, v[0], t0, both);
    hb(&t, v[1], t0, both);
    hb(&t, v[2], t0, only_left);
    /* Seen missing now: not due, it may still apply the split itself. */
    assert_int_equal(scan(&mt, &f, &t, NULL), 0);
    assert_int_equal(mt.n, 1);
    assert_true(mt.v[0].range == right && mt.v[0].node == v[2] && mt.v[0].since_ns == t0);
    /* Within the grace: still not due, the first-seen time stays. */
    fx_advance(&f, FX_S(3));
    hb(&t, v[2], f.c.now_ns, only_left);
    assert_int_equal(scan(&mt, &f, &t, NULL), 0);
    assert_true(mt.n == 1 && mt.v[0].since_ns == t0);
    /* Time passes but the node is silent (down?): its last heartbeat is
     * from within the grace, so it proves nothing. */
    fx_advance(&f, FX_S(10));
    assert_int_equal(scan(&mt, &f, &t, NULL), 0);
    /* A heartbeat past the grace that still lacks the range: due. */
    hb(&t, v[2], f.c.now_ns, only_left);
    pd_missing m = {0};
    assert_int_equal(scan(&mt, &f, &t, &m), 1);
    assert_true(m.range == right && m.node == v[2] && m.since_ns == t0);
    /* Handed out once per grace period: not again at the next heartbeat
     * (the repair may be under way), again one grace period later. */
    fx_advance(&f, FX_S(1));
    hb(&t, v[2], f.c.now_ns, only_left);
    assert_int_equal(scan(&mt, &f, &t, NULL), 0);
    fx_advance(&f, GRACE);
    hb(&t, v[2], f.c.now_ns, only_left);
    assert_int_equal(scan(&mt, &f, &t, &m), 1);
    assert_true(m.range == right && m.node == v[2]);
    /* Repaired: the node reports it, the pair is forgotten. */
    fx_advance(&f, FX_S(1));
    hb(&t, v[2], f.c.now_ns, both);
    assert_int_equal(scan(&mt, &f, &t, NULL), 0);
    assert_int_equal(mt.n, 0);
    pd_missing_table_free(&mt);
    pd_hb_table_free(&t);
    fx_free(&f);
}

static void test_missing_never_due(void **state)
{
    (void)state;
    fx f;
    fx_init(&f);
    pd_node_id v[4];
    for (int i = 0; i < 4; i++) v[i] = fx_node(&f, "r", i % 2 ? "a" : "b");
    pd_range_id r = fx_range(&f, -1, -1, v, 3, 100);
    /* Node 4 is a learner of r that does not host it (the ADD_LEARNER step
     * handles learners); node 3 never sent a heartbeat this term. */
    pd_range *pr = pd_cluster_range(&f.c, r);
    pr->replicas[pr->n_replicas++] = (pd_replica){.node = v[3], .role = PD_LEARNER};
    pd_hb_table t;
    pd_hb_table_init(&t);
    pd_missing_table mt = {0};
    const pd_range_id has[] = {r, 0}, none[] = {0};
    hb(&t, v[0], f.c.now_ns, has);
    hb(&t, v[1], f.c.now_ns, has);
    hb(&t, v[3], f.c.now_ns, none);
    assert_int_equal(scan(&mt, &f, &t, NULL), 0);
    fx_advance(&f, FX_S(60));
    hb(&t, v[3], f.c.now_ns, none);
    assert_int_equal(scan(&mt, &f, &t, NULL), 0);
    assert_int_equal(mt.n, 0);
    /* Node 2 is missing r for a while, then is removed from r: forgotten, and
     * if it were added back the grace would start over. */
    hb(&t, v[1], f.c.now_ns, none);
    assert_int_equal(scan(&mt, &f, &t, NULL), 0);
    assert_int_equal(mt.n, 1);
    pr->replicas[1] = pr->replicas[--pr->n_replicas];
    fx_advance(&f, FX_S(60));
    hb(&t, v[1], f.c.now_ns, none);
    assert_int_equal(scan(&mt, &f, &t, NULL), 0);
    assert_int_equal(mt.n, 0);
    pd_missing_table_free(&mt);
    pd_hb_table_free(&t);
    fx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_voter_after_grace),
        cmocka_unit_test(test_missing_never_due),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
