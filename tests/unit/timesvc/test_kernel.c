/* The kernel source: adjtimex answers turned into samples (synchronised,
 * unsynchronised, nanosecond mode, errors), and a real adjtimex read through
 * the libuv poller agreeing with what the kernel itself says. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include <sys/timex.h>

#include "timesvc/tt_uv.h"

static void test_sample_from_timex(void **state)
{
    (void)state;
    struct timex tx;
    memset(&tx, 0, sizeof(tx));
    tx.time.tv_sec = 1795667463;
    tx.time.tv_usec = 250000;
    tx.maxerror = 1234; /* µs */
    tx.status = 0;
    tt_sample s;
    merr e = {0};
    assert_int_equal(tt_kernel_sample(&tx, TIME_OK, &s, &e), 0);
    assert_int_equal(s.synchronized, 1);
    assert_int_equal(s.ref_real_ns, 1795667463250000000LL);
    assert_int_equal(s.root_dispersion_ns, 1234000);
    assert_int_equal(s.offset_ns, 0);

    tx.status = STA_NANO;
    tx.time.tv_usec = 250000123; /* nanoseconds in nano mode */
    assert_int_equal(tt_kernel_sample(&tx, TIME_OK, &s, &e), 0);
    assert_int_equal(s.ref_real_ns, 1795667463250000123LL);

    tx.status = STA_UNSYNC;
    assert_int_equal(tt_kernel_sample(&tx, TIME_OK, &s, &e), 0);
    assert_int_equal(s.synchronized, 0);
    tx.status = 0;
    assert_int_equal(tt_kernel_sample(&tx, TIME_ERROR, &s, &e), 0);
    assert_int_equal(s.synchronized, 0);
    assert_int_equal(tt_kernel_sample(&tx, -1, &s, &e), MERR_UNAVAILABLE);
    tx.maxerror = -5;
    assert_int_equal(tt_kernel_sample(&tx, TIME_OK, &s, &e), MERR_PROTOCOL);
}

/* Through the clock: ε = maxerror + drift × age. */
static int64_t fixed_real(void *ctx)
{
    (void)ctx;
    return 1795667463250000000LL + 2000000000LL; /* 2 s after the reading */
}
static int64_t fixed_mono(void *ctx)
{
    (void)ctx;
    return 5000000000LL;
}

static void test_kernel_bound(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.source = TT_SOURCE_KERNEL;
    tt_clock_ops ops = {fixed_real, fixed_mono, NULL};
    tt_clock c;
    merr e = {0};
    assert_int_equal(tt_clock_init(&c, &cfg, &ops, &e), 0);
    struct timex tx;
    memset(&tx, 0, sizeof(tx));
    tx.time.tv_sec = 1795667463;
    tx.time.tv_usec = 250000;
    tx.maxerror = 1234;
    tt_sample s;
    assert_int_equal(tt_kernel_sample(&tx, TIME_OK, &s, &e), 0);
    tt_clock_feed(&c, &s);
    tt_interval iv;
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_SYNCHRONIZED);
    assert_int_equal(iv.epsilon_ns, 1234000 + 100000); /* + 50 ppm × 2 s */
    assert_string_equal(tt_source_name(TT_SOURCE_KERNEL), "kernel");
}

static void on_closed(tt_kernel *k)
{
    *(int *)k->data = 1;
}

/* The real kernel, whatever its state on this machine. */
static void test_real_adjtimex(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.source = TT_SOURCE_KERNEL;
    tt_clock c;
    merr e = {0};
    assert_int_equal(tt_clock_init(&c, &cfg, NULL, &e), 0);
    tt_kernel k;
    assert_int_equal(tt_kernel_start(&k, &loop, &c, 1000000000LL, &e), 0);
    assert_int_equal(k.reads, 1); /* the first read is immediate */

    struct timex tx;
    memset(&tx, 0, sizeof(tx));
    int st = adjtimex(&tx);
    tt_interval iv;
    int rc = tt_now(&c, &iv, &e);
    if (st == TIME_ERROR || (tx.status & STA_UNSYNC)) {
        /* e.g. chronyd -x or no daemon: the kernel cannot vouch, nor can we */
        assert_int_equal(rc, MERR_CLOCK);
        assert_non_null(strstr(e.msg, "kernel clock not synchronised"));
    } else if (tx.maxerror * 1000LL <= cfg.max_uncertainty_ns) {
        assert_int_equal(rc, 0);
        assert_int_equal(iv.status, TT_SYNCHRONIZED);
        assert_true(iv.epsilon_ns >= (tx.maxerror - 1) * 1000LL);
    }
    int closed = 0;
    k.data = &closed;
    tt_kernel_stop(&k, on_closed);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(&loop), 0);
    assert_int_equal(tt_kernel_start(&k, &loop, &c, 0, &e), MERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sample_from_timex),
        cmocka_unit_test(test_kernel_bound),
        cmocka_unit_test(test_real_adjtimex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
