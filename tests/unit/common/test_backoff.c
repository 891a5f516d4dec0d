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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubling_and_cap),
        cmocka_unit_test(test_keys_independent_and_ok_clears),
        cmocka_unit_test(test_full_table_evicts_expired),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
