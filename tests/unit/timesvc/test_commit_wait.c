/* Commit-wait on a real libuv loop: tt_wait_after(t) completes only once
 * tt_now().earliest > t, for a range of ε; it can be cancelled; it reports
 * MERR_CLOCK (never success) when the clock stops being trustworthy. The
 * node's clock is a fake one that runs at loop (hrtime) speed from an
 * arbitrary epoch, with a fake chrony sample setting ε. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "timesvc/tt_uv.h"

#define MS (1000LL * 1000)
#define S  (1000LL * MS)

static uint64_t hr0;
static int64_t fake_real(void *ctx)
{
    (void)ctx;
    return 1795667463LL * S + (int64_t)(uv_hrtime() - hr0);
}
static int64_t fake_mono(void *ctx)
{
    (void)ctx;
    return (int64_t)(uv_hrtime() - hr0);
}
static const tt_clock_ops ops = {fake_real, fake_mono, NULL};

typedef struct wait_case {
    tt_clock clock;
    tt_waiter w;
    uv_timer_t guard;
    int fired, status, was_after;
    int64_t t;
    tt_interval at_fire;
} wait_case;

static void on_wait(tt_waiter *w, int status)
{
    wait_case *wc = w->data;
    wc->fired++;
    wc->status = status;
    merr e = {0};
    /* Check against the clock itself at the moment we are told. */
    wc->was_after = tt_after(&wc->clock, wc->t, &e);
    tt_now(&wc->clock, &wc->at_fire, &e);
    uv_timer_stop(&wc->guard);
}

static void on_guard(uv_timer_t *t)
{
    wait_case *wc = t->data;
    tt_wait_cancel(&wc->w); /* a hang: fail below instead of blocking ctest */
}

static void setup_case(uv_loop_t *loop, wait_case *wc, int64_t eps_ns, double drift_ppm,
                       int64_t max_unc)
{
    memset(wc, 0, sizeof(*wc));
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.max_drift_ppm = drift_ppm;
    cfg.max_uncertainty_ns = max_unc;
    merr e = {0};
    assert_int_equal(tt_clock_init(&wc->clock, &cfg, &ops, &e), 0);
    tt_sample s;
    memset(&s, 0, sizeof(s));
    s.ref_real_ns = fake_real(NULL);
    s.offset_ns = eps_ns / 2;
    s.root_dispersion_ns = eps_ns - eps_ns / 2;
    s.synchronized = 1;
    s.stratum = 2;
    tt_clock_feed(&wc->clock, &s);
    assert_int_equal(tt_waiter_init(loop, &wc->clock, &wc->w, &e), 0);
    wc->w.data = wc;
    uv_timer_init(loop, &wc->guard);
    wc->guard.data = wc;
    uv_timer_start(&wc->guard, on_guard, 10000, 0);
}

static void close_case(uv_loop_t *loop, wait_case *wc)
{
    tt_waiter_close(&wc->w, NULL);
    uv_close((uv_handle_t *)&wc->guard, NULL);
    uv_run(loop, UV_RUN_DEFAULT);
}

static void test_waits_until_after(void **state)
{
    (void)state;
    static const int64_t eps[] = {100 * 1000, 1 * MS, 4 * MS, 15 * MS, 40 * MS};
    uv_loop_t loop;
    uv_loop_init(&loop);
    hr0 = uv_hrtime();
    for (size_t i = 0; i < sizeof(eps) / sizeof(eps[0]); i++) {
        wait_case wc;
        setup_case(&loop, &wc, eps[i], 50, 1 * S);
        merr e = {0};
        tt_interval iv;
        assert_int_equal(tt_now(&wc.clock, &iv, &e), 0);
        /* A commit timestamp as a leader picks it: the latest bound. */
        wc.t = iv.latest_ns;
        assert_int_equal(tt_after(&wc.clock, wc.t, &e), 0);
        assert_int_equal(tt_wait_after(&wc.w, wc.t, on_wait, &e), 0);
        assert_int_equal(wc.fired, 0); /* never from inside the call */
        assert_int_equal(tt_wait_after(&wc.w, wc.t, on_wait, &e), MERR_BUSY);
        uv_run(&loop, UV_RUN_DEFAULT);
        assert_int_equal(wc.fired, 1);
        assert_int_equal(wc.status, 0);
        assert_int_equal(wc.was_after, 1);
        assert_true(wc.at_fire.earliest_ns > wc.t);
        /* And t really was 2ε ahead of the reading it came from. */
        assert_true(wc.at_fire.now_ns - iv.now_ns >= 2 * eps[i]);
        close_case(&loop, &wc);
    }
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* A timestamp already in the past completes on the next loop turn. */
static void test_past_timestamp(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    hr0 = uv_hrtime();
    wait_case wc;
    setup_case(&loop, &wc, 1 * MS, 50, 1 * S);
    merr e = {0};
    wc.t = fake_real(NULL) - 10 * S;
    assert_int_equal(tt_wait_after(&wc.w, wc.t, on_wait, &e), 0);
    assert_int_equal(wc.fired, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(wc.fired, 1);
    assert_int_equal(wc.status, 0);
    assert_int_equal(wc.w.rearms, 0);
    close_case(&loop, &wc);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void cancel_soon(uv_timer_t *t)
{
    wait_case *wc = t->data;
    tt_wait_cancel(&wc->w);
}

static void test_cancel(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    hr0 = uv_hrtime();
    wait_case wc;
    setup_case(&loop, &wc, 1 * MS, 50, 1 * S);
    merr e = {0};
    wc.t = fake_real(NULL) + 3600 * S;
    assert_int_equal(tt_wait_after(&wc.w, wc.t, on_wait, &e), 0);
    uv_timer_t c;
    uv_timer_init(&loop, &c);
    c.data = &wc;
    uv_timer_start(&c, cancel_soon, 5, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(wc.fired, 1);
    assert_int_equal(wc.status, MERR_CANCELED);
    assert_int_equal(wc.was_after, 0);
    tt_wait_cancel(&wc.w); /* idle: no second callback */
    assert_int_equal(wc.fired, 1);
    /* The waiter can be used again after a cancel. */
    wc.t = fake_real(NULL);
    assert_int_equal(tt_wait_after(&wc.w, wc.t, on_wait, &e), 0);
    uv_timer_start(&wc.guard, on_guard, 10000, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(wc.fired, 2);
    assert_int_equal(wc.status, 0);
    uv_close((uv_handle_t *)&c, NULL);
    close_case(&loop, &wc);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* The source goes silent and ε outgrows the maximum mid-wait: the waiter
 * reports MERR_CLOCK instead of ever claiming t has passed. A steep drift
 * (10%) makes ε pass 20 ms within ~200 ms. */
static void test_clock_lost_while_waiting(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    hr0 = uv_hrtime();
    wait_case wc;
    setup_case(&loop, &wc, 1 * MS, 100000, 20 * MS);
    merr e = {0};
    wc.t = fake_real(NULL) + 1 * S;
    assert_int_equal(tt_wait_after(&wc.w, wc.t, on_wait, &e), 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(wc.fired, 1);
    assert_int_equal(wc.status, MERR_CLOCK);
    assert_int_equal(wc.w.err.code, MERR_CLOCK);
    assert_non_null(strstr(wc.w.err.msg, "cannot vouch"));
    close_case(&loop, &wc);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Closing a waiter mid-wait cancels it and frees the loop. */
static void test_close_while_waiting(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    hr0 = uv_hrtime();
    wait_case wc;
    setup_case(&loop, &wc, 1 * MS, 50, 1 * S);
    merr e = {0};
    wc.t = fake_real(NULL) + 3600 * S;
    assert_int_equal(tt_wait_after(&wc.w, wc.t, on_wait, &e), 0);
    close_case(&loop, &wc);
    assert_int_equal(wc.fired, 1);
    assert_int_equal(wc.status, MERR_CANCELED);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_waits_until_after),
        cmocka_unit_test(test_past_timestamp),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_clock_lost_while_waiting),
        cmocka_unit_test(test_close_while_waiting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
