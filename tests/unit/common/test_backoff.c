/* Failed-attempt backoff: doubling waits, the cap, per-key independence,
 * success clearing, refusal counting, eviction when the table is full. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/backoff.h"

static mbackoff b;

static void test_doubling_and_cap(void **state)
{
    (void)state;
    mbackoff_init(&b, 100, 1000);
    assert_int_equal(mbackoff_check(&b, "alice@1.2.3.4", 0), 0);
    assert_int_equal(mbackoff_fail(&b, "alice@1.2.3.4", 0), 100);
    assert_int_equal(mbackoff_check(&b, "alice@1.2.3.4", 50), 50);
    assert_int_equal(mbackoff_check(&b, "alice@1.2.3.4", 100), 0);
    assert_int_equal(mbackoff_fail(&b, "alice@1.2.3.4", 100), 200);
    assert_int_equal(mbackoff_fail(&b, "alice@1.2.3.4", 300), 400);
    assert_int_equal(mbackoff_fail(&b, "alice@1.2.3.4", 700), 800);
    assert_int_equal(mbackoff_fail(&b, "alice@1.2.3.4", 1500), 1000);
    assert_int_equal(mbackoff_fail(&b, "alice@1.2.3.4", 2500), 1000);
    assert_int_equal(mbackoff_failures(&b, "alice@1.2.3.4"), 6);
    assert_int_equal(b.failures_total, 6);
    assert_int_equal(b.refused_total, 1);
}

static void test_keys_independent_and_ok_clears(void **state)
{
    (void)state;
    mbackoff_init(&b, 100, 1000);
    mbackoff_fail(&b, "alice@a", 0);
    assert_int_equal(mbackoff_check(&b, "bob@a", 1), 0);
    assert_int_equal(mbackoff_check(&b, "alice@b", 1), 0);
    assert_true(mbackoff_check(&b, "alice@a", 1) > 0);
    mbackoff_ok(&b, "alice@a");
    assert_int_equal(mbackoff_check(&b, "alice@a", 1), 0);
    assert_int_equal(mbackoff_failures(&b, "alice@a"), 0);
    assert_int_equal(mbackoff_fail(&b, "alice@a", 2), 100); /* starts over */
}

static void test_full_table_evicts_expired(void **state)
{
    (void)state;
    mbackoff_init(&b, 100, 1000);
    char k[32];
    for (int i = 0; i < MBACKOFF_SLOTS; i++) {
        snprintf(k, sizeof(k), "u%d", i);
        mbackoff_fail(&b, k, i); /* u0's wait ends first */
    }
    mbackoff_fail(&b, "new", 10000);
    assert_int_equal(mbackoff_failures(&b, "new"), 1);
    assert_int_equal(mbackoff_failures(&b, "u0"), 0);
    assert_int_equal(mbackoff_failures(&b, "u1"), 1);
}

/* Retry delays double from base to max and are jittered into [d/2, d):
 * different seeds spread, none falls outside its window. */
static void test_retry_delay_window(void **state)
{
    (void)state;
    int64_t want[] = {10, 20, 40, 80, 100, 100};
    for (int a = 0; a < 6; a++) {
        int distinct = 0;
        int64_t prev = -1;
        for (uint64_t seed = 1; seed < 200; seed++) {
            int64_t d = mbackoff_retry_ns(a, 10, 100, seed);
            assert_true(d >= want[a] / 2 && d < want[a]);
            if (d != prev) distinct++;
            prev = d;
        }
        assert_true(distinct > 1);
    }
    assert_int_equal(mbackoff_retry_ns(-3, 10, 100, 0), mbackoff_retry_ns(0, 10, 100, 0));
    assert_int_equal(mbackoff_retry_ns(1000, 1, 1, 7), 1); /* too small to jitter */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubling_and_cap),
        cmocka_unit_test(test_keys_independent_and_ok_clears),
        cmocka_unit_test(test_full_table_evicts_expired),
        cmocka_unit_test(test_retry_delay_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
