/* Lock table: the conflict matrix, span edge cases, upgrades, wound-wait
 * order, fairness, cancellation, limits and bad input. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "txn/lock.h"
#include "txn/lock_index.h"

#define P(k)    txn_span_point((k), strlen(k))
#define R(a, b) txn_span_range((a), strlen(a), (b), strlen(b))
#define E(a)    txn_span_to_end((a), strlen(a))
#define S       TXN_LOCK_S
#define X       TXN_LOCK_X

typedef struct fx {
    txn_lock_table *lt;
    txn_lock_out out;
    merr err;
} fx;

static int setup_cfg(void **state, size_t max_entries)
{
    fx *f = calloc(1, sizeof(*f));
    txn_lock_config cfg = {.max_entries = max_entries, .max_key_len = 100};
    if (txn_lock_table_new(&cfg, &f->lt)) return -1;
    txn_lock_out_init(&f->out);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_cfg(state, 0);
}

static int setup_small(void **state)
{
    return setup_cfg(state, 3);
}

static int teardown(void **state)
{
    fx *f = *state;
    assert_int_equal(txn_lock_check(f->lt), 0);
    txn_lock_table_free(f->lt);
    txn_lock_out_free(&f->out);
    free(f);
    return 0;
}

/* Priority = id * 10 unless given: lower id = older. */
static int acq_p(fx *f, txn_id id, txn_ts prio, txn_span sp, txn_lock_mode m)
{
    txn_lock_req r = {.txn = id, .prio = prio, .span = sp, .mode = m, .tag = id * 100 + m};
    int rc = txn_lock_acquire(f->lt, &r, &f->out, &f->err);
    if (rc) return rc;
    assert_int_equal(txn_lock_check(f->lt), 0);
    return f->out.status == TXN_LOCK_GRANTED ? 1 : 2;
}
#define GRANTED 1
#define WAITING 2
static int acq(fx *f, txn_id id, txn_span sp, txn_lock_mode m)
{
    return acq_p(f, id, id * 10, sp, m);
}

static void release(fx *f, txn_id id)
{
    assert_int_equal(txn_lock_release_all(f->lt, id, &f->out), 0);
    assert_int_equal(txn_lock_check(f->lt), 0);
}

static size_t entries(fx *f)
{
    txn_lock_stats st;
    txn_lock_get_stats(f->lt, &st);
    return st.entries;
}

static void test_shared_shared(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("a"), S), GRANTED);
    assert_int_equal(acq(f, 2, P("a"), S), GRANTED);
    assert_int_equal(f->out.n_wounded, 0);
    assert_int_equal(entries(f), 2);
}

static void test_younger_waits_for_older(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("a"), S), GRANTED);
    assert_int_equal(acq(f, 2, P("a"), X), WAITING);
    assert_true(f->out.waits_for == 1);
    assert_int_equal(f->out.n_wounded, 0); /* a younger requester never wounds */
    release(f, 1);
    assert_int_equal(f->out.n_granted, 1);
    assert_true(f->out.granted[0].txn == 2);
    assert_true(f->out.granted[0].tag == 2 * 100 + X);
    assert_int_equal(f->out.granted[0].mode, X);
    /* X held now blocks a younger S too. */
    assert_int_equal(acq(f, 3, P("a"), S), WAITING);
    assert_true(f->out.waits_for == 2);
}

static void test_older_wounds_younger(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 2, P("a"), X), GRANTED);
    assert_int_equal(acq(f, 3, P("a"), S), WAITING);
    assert_int_equal(acq(f, 1, P("a"), S), WAITING); /* X holder 2 is younger */
    assert_int_equal(f->out.n_wounded, 1);
    assert_true(f->out.wounded[0] == 2);
    assert_true(f->out.waits_for == 2);
    /* A wounded transaction is told so on its next request. */
    assert_int_equal(acq(f, 2, P("b"), S), MERR_ABORTED);
    txn_lock_txn_info ti;
    assert_int_equal(txn_lock_txn_get(f->lt, 2, &ti), 0);
    assert_true(ti.wounded);
    /* Wounded only once, even when asked again by another older txn. */
    assert_int_equal(acq_p(f, 0, 1, P("a"), S), WAITING);
    assert_int_equal(f->out.n_wounded, 0);
    /* The abort releases: both S waiters are granted together, oldest first. */
    release(f, 2);
    assert_int_equal(f->out.n_granted, 3);
    assert_true(f->out.granted[0].txn == 0);
    assert_true(f->out.granted[1].txn == 1);
    assert_true(f->out.granted[2].txn == 3);
}

static void test_exclusive_exclusive(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 5, P("a"), X), GRANTED);
    assert_int_equal(acq(f, 6, P("a"), X), WAITING);
    assert_int_equal(acq(f, 4, P("a"), X), WAITING);
    assert_int_equal(f->out.n_wounded, 1);
    assert_true(f->out.wounded[0] == 5);
    /* An older requester only wounds holders, never the younger waiter 6. */
    txn_lock_txn_info ti;
    assert_int_equal(txn_lock_txn_get(f->lt, 6, &ti), 0);
    assert_false(ti.wounded);
    release(f, 5);
    assert_int_equal(f->out.n_granted, 1);
    assert_true(f->out.granted[0].txn == 4);
    release(f, 4);
    assert_int_equal(f->out.n_granted, 1);
    assert_true(f->out.granted[0].txn == 6);
}

static void test_tie_broken_by_id(void **state)
{
    fx *f = *state;
    assert_int_equal(acq_p(f, 8, 50, P("a"), X), GRANTED);
    assert_int_equal(acq_p(f, 7, 50, P("a"), X), WAITING); /* same priority, lower id */
    assert_int_equal(f->out.n_wounded, 1);
    assert_true(f->out.wounded[0] == 8);
    assert_int_equal(acq_p(f, 9, 50, P("a"), X), WAITING);
    assert_int_equal(f->out.n_wounded, 0);
}

static void test_point_vs_range(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, R("b", "d"), X), GRANTED);
    assert_int_equal(acq(f, 2, P("b"), S), WAITING);     /* start is inside */
    assert_int_equal(acq(f, 3, P("c\xff"), S), WAITING); /* inside */
    assert_int_equal(acq(f, 4, P("d"), S), GRANTED);     /* end is outside */
    assert_int_equal(acq(f, 5, P("a\xff"), X), GRANTED); /* before */
    assert_int_equal(acq(f, 6, P("bzz"), S), WAITING);
    release(f, 1);
    assert_int_equal(f->out.n_granted, 3);
    /* A range over a held point waits. */
    assert_int_equal(acq(f, 7, R("a", "b"), S), WAITING); /* a\xff is X by 5 */
    assert_true(f->out.waits_for == 5);
    assert_int_equal(acq(f, 8, txn_span_range("d\0", 2, "z", 1), X), GRANTED); /* past d */
}

static void test_range_vs_range(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, R("a", "b"), X), GRANTED);
    assert_int_equal(acq(f, 2, R("b", "c"), X), GRANTED); /* adjacent: no overlap */
    assert_int_equal(acq(f, 3, R("0", "a"), X), GRANTED);
    assert_int_equal(acq(f, 4, R("a\x01", "a\x02"), S), WAITING); /* nested */
    assert_int_equal(acq(f, 5, R("0", "z"), S), WAITING);         /* covers all */
    assert_int_equal(acq(f, 6, R("bb", "bc"), S), WAITING);
    assert_true(f->out.waits_for == 2);
    assert_int_equal(acq(f, 7, R("c", "d"), S), GRANTED);
    /* Range locks in S mode are compatible with each other. */
    assert_int_equal(acq(f, 8, R("c", "e"), S), GRANTED);
}

static void test_to_end_and_empty_key(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, E("m"), X), GRANTED);
    assert_int_equal(acq(f, 2, P("\xff\xff\xff"), S), WAITING);
    assert_int_equal(acq(f, 3, R("a", "m"), X), GRANTED);
    assert_int_equal(acq(f, 4, E("z"), S), WAITING);
    /* The empty key is a key like any other, the smallest. */
    assert_int_equal(acq(f, 5, P(""), X), GRANTED);
    assert_int_equal(acq(f, 6, R("", "a"), S), WAITING);
    assert_true(f->out.waits_for == 5);
    assert_int_equal(acq(f, 7, E(""), S), WAITING);
}

static void test_prefix_boundaries(void **state)
{
    fx *f = *state;
    /* "a" < "a\0" < "a\0\0" < "a\1": a point's span is [k, k\0). */
    assert_int_equal(acq(f, 1, P("a"), X), GRANTED);
    assert_int_equal(acq(f, 2, txn_span_range("a\0", 2, "b", 1), X), GRANTED);
    assert_int_equal(acq(f, 3, txn_span_range("a", 1, "a\0", 2), S), WAITING);
    assert_true(f->out.waits_for == 1);
    assert_int_equal(acq(f, 4, txn_span_point("a\0", 2), S), WAITING);
    assert_true(f->out.waits_for == 2);
}

static void test_empty_and_bad_spans(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, R("a", "a"), X), GRANTED); /* locks nothing */
    assert_int_equal(entries(f), 0);
    assert_int_equal(acq(f, 2, P("a"), X), GRANTED);
    assert_int_equal(acq(f, 3, R("a", "a"), X), GRANTED); /* still nothing */
    assert_int_equal(acq(f, 4, R("b", "a"), S), MERR_INVALID);
    assert_non_null(strstr(f->err.msg, "after its end"));
    txn_span bad = {.kind = TXN_SPAN_POINT, .start = NULL, .start_len = 3};
    assert_int_equal(acq(f, 4, bad, S), MERR_INVALID);
    bad = (txn_span){.kind = 9, .start = (const uint8_t *)"a", .start_len = 1};
    assert_int_equal(acq(f, 4, bad, S), MERR_INVALID);
    assert_int_equal(acq(f, 4, P("q"), (txn_lock_mode)3), MERR_INVALID);
    char big[101];
    memset(big, 'k', sizeof(big));
    assert_int_equal(acq(f, 4, txn_span_point(big, sizeof(big)), S), MERR_TOOBIG);
    assert_int_equal(acq(f, 4, txn_span_range("a", 1, big, sizeof(big)), S), MERR_TOOBIG);
    /* Priority must not change within a transaction. */
    assert_int_equal(acq_p(f, 2, 999, P("z"), S), MERR_INVALID);
    assert_int_equal(entries(f), 1);
}

static void test_upgrade_in_place(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("a"), S), GRANTED);
    assert_int_equal(acq(f, 1, P("a"), S), GRANTED); /* again: nothing new */
    assert_int_equal(entries(f), 1);
    assert_int_equal(acq(f, 1, P("a"), X), GRANTED);
    assert_int_equal(entries(f), 1);
    assert_int_equal(acq(f, 1, P("a"), S), GRANTED); /* weaker: already held */
    assert_int_equal(entries(f), 1);
    assert_int_equal(acq(f, 2, P("a"), S), WAITING); /* it really is X now */
}

static void test_upgrade_wounds_younger_sharer(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("a"), S), GRANTED);
    assert_int_equal(acq(f, 2, P("a"), S), GRANTED);
    assert_int_equal(acq(f, 1, P("a"), X), WAITING);
    assert_int_equal(f->out.n_wounded, 1);
    assert_true(f->out.wounded[0] == 2);
    release(f, 2);
    assert_int_equal(f->out.n_granted, 1);
    assert_true(f->out.granted[0].txn == 1);
    assert_int_equal(f->out.granted[0].mode, X);
    /* The waiting X merged into the held S: one entry, exclusive. */
    assert_int_equal(entries(f), 1);
    txn_lock_txn_info ti;
    assert_int_equal(txn_lock_txn_get(f->lt, 1, &ti), 0);
    assert_int_equal(ti.granted, 1);
    assert_int_equal(ti.waiting, 0);
    assert_int_equal(acq(f, 3, P("a"), S), WAITING);
}

static void test_upgrade_waits_for_older_sharer(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("a"), S), GRANTED);
    assert_int_equal(acq(f, 2, P("a"), S), GRANTED);
    assert_int_equal(acq(f, 2, P("a"), X), WAITING);
    assert_true(f->out.waits_for == 1);
    assert_int_equal(f->out.n_wounded, 0);
    release(f, 1);
    assert_int_equal(f->out.n_granted, 1);
    assert_true(f->out.granted[0].txn == 2);
    assert_int_equal(entries(f), 1);
}

static void test_prepared_is_not_wounded(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 2, P("a"), X), GRANTED);
    assert_int_equal(txn_lock_set_prepared(f->lt, 2), 0);
    assert_int_equal(acq(f, 1, P("a"), X), WAITING);
    assert_int_equal(f->out.n_wounded, 0);
    assert_true(f->out.waits_for == 2);
    assert_int_equal(acq(f, 2, P("b"), X), MERR_INVALID); /* no new locks once prepared */
    /* A waiting transaction cannot prepare; unknown ones are not found. */
    assert_int_equal(txn_lock_set_prepared(f->lt, 1), MERR_INVALID);
    assert_int_equal(txn_lock_set_prepared(f->lt, 42), MERR_NOTFOUND);
    assert_int_equal(acq(f, 4, P("c"), X), GRANTED);
    assert_int_equal(acq(f, 3, P("c"), X), WAITING); /* wounds 4 */
    assert_int_equal(txn_lock_set_prepared(f->lt, 4), MERR_ABORTED);
    release(f, 2);
    assert_true(f->out.n_granted == 1 && f->out.granted[0].txn == 1);
}

/* What a new participant leader does for a prepared txn (REACQUIRE_LOCKS):
 * retake its shared locks too. They keep an older writer waiting, unwounded,
 * until the outcome: the txn's commit ts may end up above the writer's. */
static void test_prepared_read_lock_holds_off_writer(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 5, P("read"), S), GRANTED);
    assert_int_equal(acq(f, 5, P("write"), X), GRANTED);
    assert_int_equal(txn_lock_set_prepared(f->lt, 5), 0);
    assert_int_equal(acq(f, 1, P("read"), X), WAITING);
    assert_int_equal(f->out.n_wounded, 0);
    assert_true(f->out.waits_for == 5);
    release(f, 5);
    assert_true(f->out.n_granted == 1 && f->out.granted[0].txn == 1);
}

static void test_fair_no_barging(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("a"), S), GRANTED);
    assert_int_equal(acq(f, 2, P("a"), X), WAITING);
    /* 3 is compatible with the holder but queues behind the older writer. */
    assert_int_equal(acq(f, 3, P("a"), S), WAITING);
    assert_true(f->out.waits_for == 2);
    /* So is a range reader that overlaps it. */
    assert_int_equal(acq(f, 4, R("0", "b"), S), WAITING);
    release(f, 1);
    assert_int_equal(f->out.n_granted, 1);
    assert_true(f->out.granted[0].txn == 2);
    release(f, 2);
    assert_int_equal(f->out.n_granted, 2);
}

static void test_waiters_granted_by_age_not_arrival(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("a"), X), GRANTED);
    assert_int_equal(acq(f, 4, P("a"), X), WAITING);
    assert_int_equal(acq(f, 3, P("a"), X), WAITING);
    assert_int_equal(acq(f, 2, P("a"), X), WAITING);
    txn_id order[3];
    txn_id holder = 1;
    for (int i = 0; i < 3; i++) {
        release(f, holder);
        assert_int_equal(f->out.n_granted, 1);
        order[i] = holder = f->out.granted[0].txn;
    }
    assert_true(order[0] == 2 && order[1] == 3 && order[2] == 4);
    release(f, holder);
    assert_int_equal(f->out.n_granted, 0);
    assert_int_equal(entries(f), 0);
}

static void test_range_waiter_blocks_younger_inside(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("m"), X), GRANTED);
    assert_int_equal(acq(f, 2, R("a", "z"), X), WAITING);
    assert_int_equal(acq(f, 3, P("c"), S), WAITING); /* free key, but 2 is older */
    assert_true(f->out.waits_for == 2);
    assert_int_equal(acq(f, 3, P("zz"), S), GRANTED); /* outside: fine */
    release(f, 1);
    assert_int_equal(f->out.n_granted, 1);
    assert_true(f->out.granted[0].txn == 2);
    release(f, 2);
    assert_int_equal(f->out.n_granted, 1);
    assert_true(f->out.granted[0].txn == 3);
}

static void test_cancel_waits(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("a"), S), GRANTED);
    assert_int_equal(acq(f, 2, P("b"), X), GRANTED);
    assert_int_equal(acq(f, 2, P("a"), X), WAITING);
    assert_int_equal(acq(f, 3, P("a"), S), WAITING); /* behind 2 */
    assert_int_equal(txn_lock_cancel_waits(f->lt, 2, &f->out), 0);
    assert_int_equal(f->out.n_granted, 1);
    assert_true(f->out.granted[0].txn == 3);
    txn_lock_txn_info ti;
    assert_int_equal(txn_lock_txn_get(f->lt, 2, &ti), 0);
    assert_int_equal(ti.granted, 1); /* kept its lock on b */
    assert_int_equal(ti.waiting, 0);
    assert_int_equal(acq(f, 4, P("b"), S), WAITING);
    /* Cancelling with nothing waiting, or for a stranger, is a no-op. */
    assert_int_equal(txn_lock_cancel_waits(f->lt, 2, &f->out), 0);
    assert_int_equal(txn_lock_cancel_waits(f->lt, 77, &f->out), 0);
    assert_int_equal(f->out.n_granted, 0);
}

static void test_table_full_is_busy_and_unchanged(void **state)
{
    fx *f = *state; /* max 3 entries */
    assert_int_equal(acq(f, 2, P("a"), X), GRANTED);
    assert_int_equal(acq(f, 2, P("b"), X), GRANTED);
    assert_int_equal(acq(f, 3, P("c"), S), GRANTED);
    assert_int_equal(acq(f, 1, P("a"), X), MERR_BUSY); /* would wound 2 */
    assert_non_null(strstr(f->err.msg, "full"));
    assert_int_equal(f->out.n_wounded, 0);
    txn_lock_txn_info ti;
    assert_int_equal(txn_lock_txn_get(f->lt, 2, &ti), 0);
    assert_false(ti.wounded);
    assert_int_equal(txn_lock_txn_get(f->lt, 1, &ti), MERR_NOTFOUND);
    /* An upgrade in place needs no entry, so it still works. */
    assert_int_equal(acq(f, 3, P("c"), X), GRANTED);
    release(f, 2);
    assert_int_equal(acq(f, 1, P("a"), X), GRANTED);
}

static void test_release_frees_everything(void **state)
{
    fx *f = *state;
    char k[16];
    /* Youngest first, so the older ones that come later wound them. */
    for (int t = 20; t >= 1; t--)
        for (int i = 0; i < 50; i++) {
            snprintf(k, sizeof(k), "k%03d", (i * 7 + t) % 400);
            int rc = acq(f, (txn_id)t, P(k), (t + i) % 3 ? S : X);
            assert_true(rc == GRANTED || rc == WAITING || rc == MERR_ABORTED);
            snprintf(k, sizeof(k), "r%03d", i);
            rc = acq(f, (txn_id)t, R(k, "r999"), S);
            assert_true(rc == GRANTED || rc == WAITING || rc == MERR_ABORTED);
        }
    for (int t = 20; t >= 1; t--) release(f, (txn_id)t);
    txn_lock_stats st;
    txn_lock_get_stats(f->lt, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.objects, 0);
    assert_int_equal(st.txns, 0);
    assert_int_equal(st.waiting, 0);
    assert_true(st.wounds > 0);
    release(f, 12345); /* unknown: fine */
    assert_int_equal(f->out.n_granted, 0);
}

typedef struct seen {
    int holders, waiters, ranges;
} seen;

static void count_info(void *ctx, const txn_lock_info *info)
{
    seen *s = ctx;
    if (info->granted)
        s->holders++;
    else
        s->waiters++;
    if (info->span.kind != TXN_SPAN_POINT) s->ranges++;
}

static void test_visit(void **state)
{
    fx *f = *state;
    assert_int_equal(acq(f, 1, P("k"), S), GRANTED);
    assert_int_equal(acq(f, 2, R("a", "l"), S), GRANTED);
    assert_int_equal(acq(f, 3, E("j"), X), WAITING);
    assert_int_equal(acq(f, 4, P("x"), X), WAITING); /* behind 3's range */
    seen s = {0};
    txn_span k = P("k");
    assert_int_equal(txn_lock_visit(f->lt, &k, count_info, &s), 0);
    assert_int_equal(s.holders, 2);
    assert_int_equal(s.waiters, 1);
    assert_int_equal(s.ranges, 2);
    memset(&s, 0, sizeof(s));
    txn_span all = E("");
    assert_int_equal(txn_lock_visit(f->lt, &all, count_info, &s), 0);
    assert_int_equal(s.holders + s.waiters, 4);
    txn_span bad = R("z", "a");
    assert_int_equal(txn_lock_visit(f->lt, &bad, count_info, &s), MERR_INVALID);
    txn_lock_stats st;
    txn_lock_get_stats(f->lt, &st);
    assert_int_equal(st.waiting, 2);
    assert_int_equal(st.ranges, 2);
    assert_int_equal(st.txns, 4);
    assert_string_equal(txn_lock_mode_name(TXN_LOCK_X), "X");
}

/* The drain after a split/merge: waits exactly while a proposal made
 * before the table ended is still pending. */
static void test_drain_after_span_change(void **state)
{
    (void)state;
    assert_false(txn_drain_waits(0, 0)); /* nothing was in flight */
    assert_false(txn_drain_waits(0, 7)); /* only proposals made later */
    assert_true(txn_drain_waits(7, 5));  /* older ones still pending */
    assert_true(txn_drain_waits(7, 7));
    assert_false(txn_drain_waits(7, 8)); /* all up to 7 applied, 8 is newer */
    assert_false(txn_drain_waits(7, 0)); /* nothing pending at all */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_drain_after_span_change),
        cmocka_unit_test_setup_teardown(test_shared_shared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_younger_waits_for_older, setup, teardown),
        cmocka_unit_test_setup_teardown(test_older_wounds_younger, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exclusive_exclusive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tie_broken_by_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_point_vs_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_vs_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_to_end_and_empty_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefix_boundaries, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_bad_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_in_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_wounds_younger_sharer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upgrade_waits_for_older_sharer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepared_is_not_wounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepared_read_lock_holds_off_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fair_no_barging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_waiters_granted_by_age_not_arrival, setup, teardown),
        cmocka_unit_test_setup_teardown(test_range_waiter_blocks_younger_inside, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_table_full_is_busy_and_unchanged, setup_small,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_release_frees_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_visit, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
