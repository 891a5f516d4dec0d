/* The transaction client's route cache (server/txn_routes.h): keys find the
 * host of the span holding them; a new span replaces what it overlaps (a
 * split, a merge, a lease move); NOT_LEADER forgets; the least recently used
 * entry goes when full; bad input leaves the cache as it was. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "server/txn_routes.h"

#define K(s) (const uint8_t *)(s), strlen(s)

static const char *at(txn_routes *rt, const char *key)
{
    return txn_routes_for_key(rt, K(key));
}

static void test_key_finds_its_span(void **state)
{
    (void)state;
    txn_routes rt;
    txn_routes_init(&rt);
    assert_null(at(&rt, "m"));
    assert_int_equal(txn_routes_learn(&rt, 1, NULL, 0, K("g"), "h1:1"), 0);
    assert_int_equal(txn_routes_learn(&rt, 2, K("g"), K("p"), "h2:2"), 0);
    assert_int_equal(txn_routes_learn(&rt, 3, K("p"), NULL, 0, "h3:3"), 0);
    assert_string_equal(at(&rt, "a"), "h1:1");
    assert_string_equal(at(&rt, ""), "h1:1");  /* the empty start holds everything below */
    assert_string_equal(at(&rt, "g"), "h2:2"); /* start inclusive */
    assert_string_equal(at(&rt, "ozzz"), "h2:2");
    assert_string_equal(at(&rt, "p"), "h3:3");        /* end exclusive */
    assert_string_equal(at(&rt, "\xff\xff"), "h3:3"); /* an empty end: to the end */
    assert_string_equal(txn_routes_for_range(&rt, 2), "h2:2");
    assert_null(txn_routes_for_range(&rt, 4));
    txn_routes_free(&rt);
}

static void test_split_and_merge_replace_overlaps(void **state)
{
    (void)state;
    txn_routes rt;
    txn_routes_init(&rt);
    assert_int_equal(txn_routes_learn(&rt, 2, K("g"), K("p"), "h2:2"), 0);
    /* A split: range 5 = [k, p) now led by h3; what is left of 2 is unknown
     * until a reply teaches it, not the old wider span. */
    assert_int_equal(txn_routes_learn(&rt, 5, K("k"), K("p"), "h3:3"), 0);
    assert_string_equal(at(&rt, "m"), "h3:3");
    assert_null(at(&rt, "h"));
    assert_int_equal(txn_routes_learn(&rt, 2, K("g"), K("k"), "h2:2"), 0);
    assert_string_equal(at(&rt, "h"), "h2:2");
    assert_int_equal(rt.n, 2);
    /* A merge: range 2 = [g, p) again, replacing both. */
    assert_int_equal(txn_routes_learn(&rt, 2, K("g"), K("p"), "h1:1"), 0);
    assert_int_equal(rt.n, 1);
    assert_string_equal(at(&rt, "m"), "h1:1");
    assert_null(txn_routes_for_range(&rt, 5));
    /* A lease move of the same span: the new host. */
    assert_int_equal(txn_routes_learn(&rt, 2, K("g"), K("p"), "h2:2"), 0);
    assert_int_equal(rt.n, 1);
    assert_string_equal(at(&rt, "h"), "h2:2");
    /* Adjacent spans do not overlap. */
    assert_int_equal(txn_routes_learn(&rt, 7, K("p"), K("t"), "h3:3"), 0);
    assert_int_equal(txn_routes_learn(&rt, 8, K("a"), K("g"), "h3:3"), 0);
    assert_int_equal(rt.n, 3);
    txn_routes_free(&rt);
}

static void test_forget(void **state)
{
    (void)state;
    txn_routes rt;
    txn_routes_init(&rt);
    assert_int_equal(txn_routes_learn(&rt, 2, K("g"), K("p"), "h2:2"), 0);
    assert_int_equal(txn_routes_learn(&rt, 3, K("p"), NULL, 0, "h3:3"), 0);
    txn_routes_forget_key(&rt, K("z"));
    assert_null(at(&rt, "q"));
    assert_string_equal(at(&rt, "h"), "h2:2");
    txn_routes_forget_range(&rt, 2);
    assert_null(at(&rt, "h"));
    assert_int_equal(rt.n, 0);
    txn_routes_free(&rt);
}

static void test_least_recently_used_goes(void **state)
{
    (void)state;
    txn_routes rt;
    txn_routes_init(&rt);
    char k[16], e[16];
    for (int i = 0; i < TXN_ROUTES_MAX; i++) {
        snprintf(k, sizeof(k), "k%03d", i);
        snprintf(e, sizeof(e), "k%03d~", i);
        assert_int_equal(txn_routes_learn(&rt, (uint64_t)i + 1, K(k), K(e), "h:1"), 0);
    }
    assert_non_null(at(&rt, "k000")); /* used: k001 is now the oldest */
    assert_int_equal(txn_routes_learn(&rt, 999, K("z"), K("zz"), "h:2"), 0);
    assert_int_equal(rt.n, TXN_ROUTES_MAX);
    assert_non_null(at(&rt, "k000"));
    assert_null(at(&rt, "k001"));
    assert_string_equal(at(&rt, "z"), "h:2");
    txn_routes_free(&rt);
}

static void test_bad_input_changes_nothing(void **state)
{
    (void)state;
    txn_routes rt;
    txn_routes_init(&rt);
    assert_int_equal(txn_routes_learn(&rt, 2, K("g"), K("p"), "h2:2"), 0);
    assert_int_equal(txn_routes_learn(&rt, 3, K("h"), K("h"), "h3:3"), MERR_INVALID);
    assert_int_equal(txn_routes_learn(&rt, 3, K("q"), K("h"), "h3:3"), MERR_INVALID);
    assert_int_equal(txn_routes_learn(&rt, 3, K("h"), K("i"), ""), MERR_INVALID);
    char big[TXN_ROUTES_HOST + 8];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    assert_int_equal(txn_routes_learn(&rt, 3, K("h"), K("i"), big), MERR_INVALID);
    assert_int_equal(rt.n, 1);
    assert_string_equal(at(&rt, "h"), "h2:2");
    txn_routes_free(&rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_finds_its_span),
        cmocka_unit_test(test_split_and_merge_replace_overlaps),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_least_recently_used_goes),
        cmocka_unit_test(test_bad_input_changes_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
