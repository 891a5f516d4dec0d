/* Parked election messages (server/parked.h): kept until their group is
 * hosted, in arrival order; dropped after their time to live or, when the
 * table is full, oldest first. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "server/parked.h"

static uint64_t hosted; /* the one group "hosted" */

static int has(void *arg, uint64_t group)
{
    (void)arg;
    return group == hosted;
}

static void test_kept_until_hosted(void **state)
{
    (void)state;
    parked_tab t = {0};
    parked_msg out[PARKED_MAX];
    assert_int_equal(parked_add(&t, 1, 7, (const uint8_t *)"a", 1, 100), 0);
    assert_int_equal(parked_add(&t, 2, 8, (const uint8_t *)"b", 1, 110), 0);
    assert_int_equal(parked_add(&t, 3, 7, (const uint8_t *)"c", 1, 120), 0);
    hosted = 9;
    assert_int_equal(parked_take(&t, has, NULL, 200, out, PARKED_MAX), 0);
    assert_int_equal(t.n, 3);
    hosted = 7;
    assert_int_equal(parked_take(&t, has, NULL, 200, out, PARKED_MAX), 2);
    assert_int_equal(out[0].from, 1); /* arrival order */
    assert_int_equal(out[1].from, 3);
    assert_memory_equal(out[1].data, "c", 1);
    free(out[0].data);
    free(out[1].data);
    assert_int_equal(t.n, 1);
    assert_int_equal(t.v[0].group, 8);
    /* Past its time to live a message goes, hosted or not. */
    hosted = 8;
    assert_int_equal(parked_take(&t, has, NULL, 110 + PARKED_TTL_NS + 1, out, PARKED_MAX), 0);
    assert_int_equal(t.n, 0);
    assert_int_equal(t.expired, 1);
    assert_int_equal(t.replayed, 2);
    parked_free(&t);
}

static void test_bounded_oldest_first(void **state)
{
    (void)state;
    parked_tab t = {0};
    for (int i = 0; i < PARKED_MAX + 5; i++)
        assert_int_equal(parked_add(&t, (uint64_t)i, 1, (const uint8_t *)"x", 1, i), 0);
    assert_int_equal(t.n, PARKED_MAX);
    assert_int_equal(t.v[0].from, 5); /* the five oldest went */
    parked_msg out[4];
    hosted = 1;
    /* cap: only as many as fit are taken; the rest stay for the next call */
    assert_int_equal(parked_take(&t, has, NULL, 100, out, 4), 4);
    assert_int_equal(out[0].from, 5);
    for (int i = 0; i < 4; i++) free(out[i].data);
    assert_int_equal(t.n, PARKED_MAX - 4);
    parked_free(&t);
    assert_int_equal(t.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kept_until_hosted),
        cmocka_unit_test(test_bounded_oldest_first),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
