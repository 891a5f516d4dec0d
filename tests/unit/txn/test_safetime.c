/* Safe time: closed timestamp, in-doubt transactions holding it back, the
 * leader's next closed ts, and the choice of read timestamps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "txn/safetime.h"

static void test_closed_only_moves_up(void **state)
{
    (void)state;
    txn_safe s;
    txn_safe_init(&s);
    assert_true(txn_safe_time(&s) == 0);
    txn_safe_close(&s, 100);
    txn_safe_close(&s, 90); /* stale: ignored */
    assert_true(txn_safe_time(&s) == 100);
    assert_true(txn_safe_can_serve(&s, 100));
    assert_false(txn_safe_can_serve(&s, 101));
    assert_null(txn_safe_first_doubt(&s));
    txn_safe_free(&s);
}

static void test_in_doubt_holds_safe_time_back(void **state)
{
    (void)state;
    txn_safe s;
    txn_safe_init(&s);
    txn_safe_close(&s, 1000);
    assert_int_equal(txn_safe_prepared(&s, 7, 500), 0);
    assert_true(txn_safe_time(&s) == 499); /* just below the prepare ts */
    assert_int_equal(txn_safe_prepared(&s, 8, 300), 0);
    assert_int_equal(txn_safe_prepared(&s, 9, 800), 0);
    assert_true(txn_safe_time(&s) == 299);
    assert_true(txn_safe_first_doubt(&s)->txn == 8);
    assert_int_equal(txn_safe_prepared(&s, 8, 300), 0); /* repeat: fine */
    assert_int_equal(txn_safe_prepared(&s, 8, 301), MERR_EXISTS);
    /* Deciding the earliest lets safe time move to the next one. */
    assert_int_equal(txn_safe_decided(&s, 8, 300), 0);
    assert_true(txn_safe_time(&s) == 499);
    assert_int_equal(txn_safe_decided(&s, 8, 300), MERR_NOTFOUND);
    assert_int_equal(txn_safe_decided(&s, 9, 800), 0);
    assert_true(txn_safe_time(&s) == 499);
    assert_int_equal(txn_safe_decided(&s, 7, 500), 0);
    assert_true(txn_safe_time(&s) == 1000);
    /* The closed ts still bounds it when the in-doubt txn is above it. */
    assert_int_equal(txn_safe_prepared(&s, 10, 5000), 0);
    assert_true(txn_safe_time(&s) == 1000);
    /* A prepare at 0 leaves nothing servable (no underflow). */
    assert_int_equal(txn_safe_prepared(&s, 11, 0), 0);
    assert_true(txn_safe_time(&s) == 0);
    txn_safe_free(&s);
}

static void test_many_in_doubt_sorted(void **state)
{
    (void)state;
    txn_safe s;
    txn_safe_init(&s);
    txn_safe_close(&s, UINT64_MAX);
    /* Insert in a scrambled order, with ties on the ts. */
    for (uint64_t i = 0; i < 500; i++)
        assert_int_equal(txn_safe_prepared(&s, i, 1000 + (i * 7919) % 97), 0);
    for (size_t i = 1; i < s.n; i++) {
        const txn_doubt *a = &s.doubt[i - 1], *b = &s.doubt[i];
        assert_true(a->prepare_ts < b->prepare_ts ||
                    (a->prepare_ts == b->prepare_ts && a->txn < b->txn));
    }
    assert_true(txn_safe_time(&s) == 999);
    for (uint64_t i = 0; i < 500; i++)
        assert_int_equal(txn_safe_decided(&s, i, 1000 + (i * 7919) % 97), 0);
    assert_int_equal(s.n, 0);
    assert_true(txn_safe_time(&s) == UINT64_MAX);
    txn_safe_free(&s);
}

static void test_closed_next(void **state)
{
    (void)state;
    assert_true(txn_closed_next(100, 200, false, 0) == 200);
    assert_true(txn_closed_next(100, 50, false, 0) == 100);   /* never back */
    assert_true(txn_closed_next(100, 200, true, 150) == 149); /* below pending writes */
    assert_true(txn_closed_next(100, 200, true, 90) == 100);
    assert_true(txn_closed_next(0, 200, true, 0) == 0);
}

static void test_read_ts_strong(void **state)
{
    (void)state;
    txn_read_opts o = {.kind = TXN_READ_STRONG};
    txn_read_range r[2] = {{.safe_time = 900, .last_write = 800}, {.safe_time = 1200}};
    txn_ts ts;
    bool wait;
    merr e = {0};
    /* Two ranges: tt_now().latest, which one range cannot serve yet. */
    assert_int_equal(txn_read_ts(&o, 950, 1000, r, 2, &ts, &wait, &e), 0);
    assert_true(ts == 1000);
    assert_true(wait);
    /* One range with nothing in doubt: its last write, served at once. */
    assert_int_equal(txn_read_ts(&o, 950, 1000, r, 1, &ts, &wait, &e), 0);
    assert_true(ts == 800);
    assert_false(wait);
    r[0].in_doubt = true;
    assert_int_equal(txn_read_ts(&o, 950, 1000, r, 1, &ts, &wait, &e), 0);
    assert_true(ts == 1000);
    assert_true(wait);
}

static void test_read_ts_staleness(void **state)
{
    (void)state;
    txn_read_range r[2] = {{.safe_time = 900}, {.safe_time = 700}};
    txn_ts ts;
    bool wait;
    merr e = {0};
    txn_read_opts o = {.kind = TXN_READ_EXACT_STALENESS, .staleness = 250};
    assert_int_equal(txn_read_ts(&o, 950, 1000, r, 2, &ts, &wait, &e), 0);
    assert_true(ts == 750);
    assert_true(wait); /* range 2 is only safe up to 700 */
    o.staleness = 5000;
    assert_int_equal(txn_read_ts(&o, 950, 1000, r, 2, &ts, &wait, &e), 0);
    assert_true(ts == 0); /* saturates */

    /* Bounded: the newest ts every range can serve now, within the bound. */
    o = (txn_read_opts){.kind = TXN_READ_BOUNDED_STALENESS, .staleness = 500};
    assert_int_equal(txn_read_ts(&o, 950, 1000, r, 2, &ts, &wait, &e), 0);
    assert_true(ts == 700);
    assert_false(wait);
    /* When the replicas lag beyond the bound, the bound wins and it waits. */
    o.staleness = 100;
    assert_int_equal(txn_read_ts(&o, 950, 1000, r, 2, &ts, &wait, &e), 0);
    assert_true(ts == 900);
    assert_true(wait);
    /* Replicas ahead of the clock: never above tt_now().latest. */
    txn_read_range fast = {.safe_time = 5000};
    assert_int_equal(txn_read_ts(&o, 950, 1000, &fast, 1, &ts, &wait, &e), 0);
    assert_true(ts == 1000);
    assert_false(wait);

    o = (txn_read_opts){.kind = TXN_READ_AT, .at = 650};
    assert_int_equal(txn_read_ts(&o, 950, 1000, r, 2, &ts, &wait, &e), 0);
    assert_true(ts == 650);
    assert_false(wait);
}

static void test_read_ts_bad_input(void **state)
{
    (void)state;
    txn_read_range r = {.safe_time = 1};
    txn_ts ts = 12345;
    bool wait;
    merr e = {0};
    txn_read_opts o = {.kind = (txn_read_kind)9};
    assert_int_equal(txn_read_ts(&o, 1, 2, &r, 1, &ts, &wait, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "read kind"));
    o.kind = TXN_READ_STRONG;
    assert_int_equal(txn_read_ts(&o, 1, 2, &r, 0, &ts, &wait, &e), MERR_INVALID);
    assert_int_equal(txn_read_ts(&o, 1, 2, NULL, 1, &ts, &wait, &e), MERR_INVALID);
    assert_int_equal(txn_read_ts(&o, 3, 2, &r, 1, &ts, &wait, &e), MERR_INVALID);
    assert_true(ts == 12345); /* untouched on error */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_only_moves_up),
        cmocka_unit_test(test_in_doubt_holds_safe_time_back),
        cmocka_unit_test(test_many_in_doubt_sorted),
        cmocka_unit_test(test_closed_next),
        cmocka_unit_test(test_read_ts_strong),
        cmocka_unit_test(test_read_ts_staleness),
        cmocka_unit_test(test_read_ts_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
