/* The node liveness tracker (server/liveness.h): which peers are live given
 * heartbeat arrivals and ticks; deaths reported once; restarts held back. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "server/liveness.h"

static void ticks(liveness *l, int n, uint64_t *dead, size_t *ndead)
{
    *ndead = 0;
    for (int i = 0; i < n; i++) *ndead += liveness_tick(l, dead + *ndead, 8 - *ndead);
}

static void test_unknown_is_not_live(void **state)
{
    (void)state;
    liveness l;
    liveness_init(&l, 10, 30);
    assert_false(liveness_is_live(&l, 2));
    assert_int_equal(liveness_heard(&l, 0, 1), -1); /* node 0 is "nobody" */
    assert_int_equal(l.n, 0);
}

static void test_live_until_timeout(void **state)
{
    (void)state;
    liveness l;
    uint64_t dead[8];
    size_t nd;
    liveness_init(&l, 10, 30);
    assert_int_equal(liveness_heard(&l, 2, 100), LIVENESS_CAME_UP);
    assert_int_equal(liveness_heard(&l, 3, 200), LIVENESS_CAME_UP);
    assert_true(liveness_is_live(&l, 2));
    /* Heartbeats from 2 every 2 ticks keep it live; 3 falls silent. */
    for (int i = 0; i < 9; i++) {
        ticks(&l, 1, dead, &nd);
        assert_int_equal(nd, 0);
        if (i % 2) assert_int_equal(liveness_heard(&l, 2, 100), LIVENESS_SAME);
    }
    assert_true(liveness_is_live(&l, 3)); /* 9 ticks of silence: still live */
    ticks(&l, 1, dead, &nd);
    assert_int_equal(nd, 1); /* the 10th: dead, reported once */
    assert_int_equal(dead[0], 3);
    assert_false(liveness_is_live(&l, 3));
    assert_true(liveness_is_live(&l, 2));
    ticks(&l, 5, dead, &nd);
    assert_int_equal(nd, 0); /* not reported again */
    /* It comes back (same incarnation: a pause, not a restart). */
    assert_int_equal(liveness_heard(&l, 3, 200), LIVENESS_CAME_UP);
    assert_true(liveness_is_live(&l, 3));
    ticks(&l, 10, dead, &nd); /* both silent now */
    assert_int_equal(nd, 2);
}

static void test_restart_held_back(void **state)
{
    (void)state;
    liveness l;
    uint64_t dead[8];
    size_t nd;
    liveness_init(&l, 10, 30);
    liveness_heard(&l, 2, 100);
    ticks(&l, 3, dead, &nd);
    /* A new incarnation: its leaderships are gone; not live for the grace. */
    assert_int_equal(liveness_heard(&l, 2, 101), LIVENESS_RESTARTED);
    assert_false(liveness_is_live(&l, 2));
    for (int i = 0; i < 29; i++) {
        ticks(&l, 1, dead, &nd);
        assert_int_equal(nd, 0); /* heard all along: not dead */
        assert_int_equal(liveness_heard(&l, 2, 101), LIVENESS_SAME);
        assert_false(liveness_is_live(&l, 2));
    }
    ticks(&l, 1, dead, &nd);
    assert_int_equal(liveness_heard(&l, 2, 101), LIVENESS_SAME);
    assert_true(liveness_is_live(&l, 2));
    /* A restart after it was dead is still a restart. */
    ticks(&l, 12, dead, &nd);
    assert_int_equal(nd, 1);
    assert_int_equal(liveness_heard(&l, 2, 102), LIVENESS_RESTARTED);
    assert_false(liveness_is_live(&l, 2));
}

static void test_table_full(void **state)
{
    (void)state;
    liveness l;
    liveness_init(&l, 10, 30);
    for (uint64_t n = 1; n <= LIVENESS_MAX_PEERS; n++)
        assert_int_equal(liveness_heard(&l, n, 1), LIVENESS_CAME_UP);
    assert_int_equal(liveness_heard(&l, 1000, 1), -1);
    assert_false(liveness_is_live(&l, 1000));
    assert_true(liveness_is_live(&l, LIVENESS_MAX_PEERS));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_is_not_live),
        cmocka_unit_test(test_live_until_timeout),
        cmocka_unit_test(test_restart_held_back),
        cmocka_unit_test(test_table_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
