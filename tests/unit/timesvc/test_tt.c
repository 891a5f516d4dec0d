/* The interval core: bounds contain true time, monotonicity between samples,
 * ε growth with age, stale and silent sources, skew, static source, limits. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "timesvc/tt.h"

#define MS (1000LL * 1000)
#define S  (1000LL * MS)

/* A fake node clock: tests move real and mono by hand. */
typedef struct fake_clock {
    int64_t real, mono;
} fake_clock;

static int64_t fake_real(void *ctx)
{
    return ((fake_clock *)ctx)->real;
}
static int64_t fake_mono(void *ctx)
{
    return ((fake_clock *)ctx)->mono;
}

static fake_clock fk;
static const tt_clock_ops fake_ops = {fake_real, fake_mono, &fk};

static void advance(int64_t ns)
{
    fk.real += ns;
    fk.mono += ns;
}

static tt_sample sample_at(int64_t ref, int64_t offset, int64_t disp, int64_t delay)
{
    tt_sample s;
    memset(&s, 0, sizeof(s));
    s.ref_real_ns = ref;
    s.offset_ns = offset;
    s.root_dispersion_ns = disp;
    s.root_delay_ns = delay;
    s.update_interval_ns = 250 * MS;
    s.synchronized = 1;
    s.stratum = 2;
    return s;
}

static void init_clock(tt_clock *c, tt_config *cfg)
{
    fk.real = 1795667463LL * S; /* 2026-11-26 */
    fk.mono = 1000 * S;
    merr e = {0};
    assert_int_equal(tt_clock_init(c, cfg, &fake_ops, &e), 0);
}

static void test_formula(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    tt_clock c;
    init_clock(&c, &cfg);
    /* The estimate is 100 ms old when read. */
    tt_sample s = sample_at(fk.real - 100 * MS, -30000, 20000, 10000);
    tt_clock_feed(&c, &s);
    tt_interval iv;
    merr e = {0};
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    /* 30 µs + 20 µs + 5 µs + 50 ppm × 100 ms (5 µs) */
    assert_int_equal(iv.epsilon_ns, 60000);
    assert_int_equal(iv.age_ns, 100 * MS);
    assert_int_equal(iv.now_ns, fk.real);
    assert_int_equal(iv.earliest_ns, fk.real - 60000);
    assert_int_equal(iv.latest_ns, fk.real + 60000);
    assert_int_equal(iv.status, TT_SYNCHRONIZED);
}

/* A clock whose error at the sample is within what chrony vouches for, and
 * that then drifts at any rate up to max_drift, is always inside the bound. */
static void test_bounds_contain_true_time(void **state)
{
    (void)state;
    static const int64_t errs[] = {-40000, -1000, 0, 777, 40000};
    static const double drifts[] = {-50e-6, -10e-6, 0, 3e-6, 50e-6};
    static const int64_t ages[] = {0, 1 * MS, 250 * MS, 1 * S, 17 * S, 600 * S};
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.max_uncertainty_ns = 10 * S;
    for (size_t i = 0; i < 5; i++) {
        for (size_t j = 0; j < 5; j++) {
            for (size_t k = 0; k < 6; k++) {
                tt_clock c;
                init_clock(&c, &cfg);
                int64_t true_time = fk.real - errs[i]; /* system clock = true + err */
                /* chrony: |offset| + disp + delay/2 >= |err| */
                tt_sample s = sample_at(fk.real, errs[i] / 2, 20000, 41000);
                tt_clock_feed(&c, &s);
                int64_t sys_elapsed = ages[k] + (int64_t)((double)ages[k] * drifts[j]);
                fk.real += sys_elapsed;
                fk.mono += sys_elapsed;
                true_time += ages[k];
                tt_interval iv;
                merr e = {0};
                assert_int_equal(tt_now(&c, &iv, &e), 0);
                assert_true(iv.earliest_ns <= true_time);
                assert_true(iv.latest_ns >= true_time);
            }
        }
    }
}

static void test_monotonic_between_samples(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    tt_clock c;
    init_clock(&c, &cfg);
    tt_sample s = sample_at(fk.real, 5000, 1000, 1000);
    tt_clock_feed(&c, &s);
    tt_interval prev, iv;
    merr e = {0};
    assert_int_equal(tt_now(&c, &prev, &e), 0);
    for (int i = 0; i < 1000; i++) {
        advance((i % 7) * 1000 + 1);
        assert_int_equal(tt_now(&c, &iv, &e), 0);
        /* ε may grow by the same nanosecond the clock moved */
        assert_true(iv.earliest_ns >= prev.earliest_ns);
        assert_true(iv.latest_ns > prev.latest_ns);
        assert_true(iv.epsilon_ns >= prev.epsilon_ns);
        prev = iv;
    }
}

static void test_epsilon_grows_with_age(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.max_drift_ppm = 100;
    tt_clock c;
    init_clock(&c, &cfg);
    tt_sample s = sample_at(fk.real, 0, 0, 0);
    tt_clock_feed(&c, &s);
    tt_interval a, b;
    merr e = {0};
    assert_int_equal(tt_now(&c, &a, &e), 0);
    advance(10 * S);
    assert_int_equal(tt_now(&c, &b, &e), 0);
    assert_int_equal(b.epsilon_ns - a.epsilon_ns, 1 * MS); /* 100 ppm × 10 s */
    /* A fresh sample resets the age. */
    s = sample_at(fk.real, 0, 0, 0);
    tt_clock_feed(&c, &s);
    assert_int_equal(tt_now(&c, &b, &e), 0);
    assert_int_equal(b.epsilon_ns, 0);
}

/* Age follows the monotonic clock, so stepping the wall clock back (or
 * forward) between samples cannot shrink ε. */
static void test_age_survives_wall_clock_step(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    tt_clock c;
    init_clock(&c, &cfg);
    tt_sample s = sample_at(fk.real, 0, 0, 0);
    tt_clock_feed(&c, &s);
    fk.mono += 20 * S;
    fk.real -= 3600 * S;
    tt_interval iv;
    merr e = {0};
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.age_ns, 20 * S);
    assert_int_equal(iv.epsilon_ns, 1 * MS);
}

static void test_stale_and_silent_source(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.max_uncertainty_ns = 1 * MS;
    tt_clock c;
    init_clock(&c, &cfg);
    tt_interval iv;
    merr e = {0};

    /* Nothing yet: cannot vouch. */
    assert_int_equal(tt_now(&c, &iv, &e), MERR_CLOCK);
    assert_int_equal(iv.status, TT_UNKNOWN);
    assert_non_null(strstr(e.msg, "cannot vouch"));
    tt_clock_feed_failure(&c, "chronyc: 506 Cannot talk to daemon");
    assert_int_equal(tt_now(&c, &iv, &e), MERR_CLOCK);
    assert_non_null(strstr(e.msg, "Cannot talk to daemon"));
    /* An unsynchronised report is no bound either. */
    tt_sample un = sample_at(0, 0, 0, 0);
    un.synchronized = 0;
    tt_clock_feed(&c, &un);
    assert_int_equal(tt_now(&c, &iv, &e), MERR_CLOCK);

    tt_sample s = sample_at(fk.real, 0, 100000, 0);
    tt_clock_feed(&c, &s);
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_SYNCHRONIZED);

    /* The daemon stops answering: the last sample keeps ageing. */
    advance(1 * S);
    tt_clock_feed_failure(&c, "chronyc: no answer");
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_FREE_RUNNING);
    assert_int_equal(iv.epsilon_ns, 100000 + 50000);
    /* 100 µs + 50 ppm × 18 s = 1 ms: still (just) vouched for ... */
    advance(17 * S);
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.epsilon_ns, 1 * MS);
    /* ... and past it the node stops serving. */
    advance(1 * MS);
    assert_int_equal(tt_now(&c, &iv, &e), MERR_CLOCK);
    assert_int_equal(iv.status, TT_UNKNOWN);
    assert_int_equal(iv.source_status, TT_FREE_RUNNING);
    assert_true(iv.epsilon_ns > 1 * MS);
    assert_non_null(strstr(e.msg, "exceeds the maximum"));
    assert_int_equal(tt_after(&c, 0, &e), MERR_CLOCK);
    assert_int_equal(tt_before(&c, INT64_MAX, &e), MERR_CLOCK);

    /* The daemon answers again. */
    s = sample_at(fk.real, 0, 100000, 0);
    tt_clock_feed(&c, &s);
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_SYNCHRONIZED);

    /* It answers but lost sync: keep ageing the last good sample. */
    advance(1 * S);
    tt_clock_feed(&c, &un);
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_FREE_RUNNING);
    assert_int_equal(iv.epsilon_ns, 150000);

    /* It answers, says synchronised, but its estimate is old (lost its
     * server without noticing yet): stale after stale_after + 3 intervals. */
    tt_sample old = sample_at(fk.real - 2750 * MS, 0, 0, 0);
    tt_clock_feed(&c, &old);
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_SYNCHRONIZED);
    advance(1);
    tt_clock_feed(&c, &old);
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_FREE_RUNNING);

    /* Answered once, then nothing for longer than stale_after. */
    s = sample_at(fk.real, 0, 0, 0);
    tt_clock_feed(&c, &s);
    advance(cfg.stale_after_ns);
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_SYNCHRONIZED);
    advance(1);
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_FREE_RUNNING);
}

static void test_skew(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.skew_ns = -7 * MS;
    tt_clock c;
    init_clock(&c, &cfg);
    tt_sample s = sample_at(fk.real, 1000, 0, 0);
    tt_clock_feed(&c, &s);
    tt_interval iv;
    merr e = {0};
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    /* The skewed node believes its reading: same ε, shifted interval. */
    assert_int_equal(iv.now_ns, fk.real - 7 * MS);
    assert_int_equal(iv.epsilon_ns, 1000);
    assert_int_equal(iv.latest_ns, fk.real - 7 * MS + 1000);
    assert_int_equal(tt_before(&c, fk.real - 5 * MS, &e), 1);
    assert_int_equal(tt_after(&c, fk.real - 8 * MS, &e), 1);
}

static void test_after_before(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    tt_clock c;
    init_clock(&c, &cfg);
    tt_sample s = sample_at(fk.real, 0, 2 * MS, 0);
    tt_clock_feed(&c, &s);
    merr e = {0};
    int64_t t = fk.real;
    /* Inside the interval: neither certainly after nor certainly before. */
    assert_int_equal(tt_after(&c, t, &e), 0);
    assert_int_equal(tt_before(&c, t, &e), 0);
    assert_int_equal(tt_before(&c, t + 2 * MS + 1, &e), 1);
    assert_int_equal(tt_before(&c, t + 2 * MS, &e), 0);
    assert_int_equal(tt_after(&c, t - 2 * MS - 1, &e), 1);
    assert_int_equal(tt_after(&c, t - 2 * MS, &e), 0);
    advance(2 * MS + 1);
    /* ε grew by 50 ppm × 2 ms = 100 ns */
    assert_int_equal(tt_after(&c, t, &e), 0);
    advance(200);
    assert_int_equal(tt_after(&c, t, &e), 1);
}

static void test_static_source(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.source = TT_SOURCE_STATIC;
    cfg.static_uncertainty_ns = 3 * MS;
    tt_clock c;
    init_clock(&c, &cfg);
    tt_interval iv;
    merr e = {0};
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.status, TT_STATIC);
    assert_int_equal(iv.epsilon_ns, 3 * MS);
    advance(3600 * S); /* a static bound does not age */
    assert_int_equal(tt_now(&c, &iv, &e), 0);
    assert_int_equal(iv.epsilon_ns, 3 * MS);

    cfg.max_uncertainty_ns = 2 * MS;
    init_clock(&c, &cfg);
    assert_int_equal(tt_now(&c, &iv, &e), MERR_CLOCK);
    assert_int_equal(iv.status, TT_UNKNOWN);
    assert_int_equal(iv.source_status, TT_STATIC);
}

static void test_config_check(void **state)
{
    (void)state;
    tt_config cfg;
    tt_clock c;
    merr e = {0};
    tt_config_default(&cfg);
    assert_int_equal(tt_config_check(&cfg, &e), 0);
    cfg.max_drift_ppm = -1;
    assert_int_equal(tt_clock_init(&c, &cfg, NULL, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "drift"));
    tt_config_default(&cfg);
    cfg.max_uncertainty_ns = 0;
    assert_int_equal(tt_config_check(&cfg, &e), MERR_INVALID);
    tt_config_default(&cfg);
    cfg.static_uncertainty_ns = -5;
    assert_int_equal(tt_config_check(&cfg, &e), MERR_INVALID);
    tt_config_default(&cfg);
    cfg.source = 9;
    assert_int_equal(tt_config_check(&cfg, &e), MERR_INVALID);
    tt_config_default(&cfg);
    cfg.skew_ns = INT64_MAX;
    assert_int_equal(tt_config_check(&cfg, &e), MERR_INVALID);
    assert_string_equal(tt_status_name(TT_FREE_RUNNING), "FREE_RUNNING");
    assert_string_equal(tt_status_name((tt_status)42), "UNKNOWN");
}

/* Absurd inputs (a sample from 1970, a reading far in the future) saturate
 * instead of overflowing, and are refused. */
static void test_absurd_inputs_saturate(void **state)
{
    (void)state;
    tt_config cfg;
    tt_config_default(&cfg);
    cfg.max_drift_ppm = 1e6;
    tt_clock c;
    init_clock(&c, &cfg);
    tt_sample s = sample_at(1, INT64_MIN + 1, INT64_MAX, INT64_MAX);
    tt_clock_feed(&c, &s);
    fk.mono = INT64_MAX;
    tt_interval iv;
    merr e = {0};
    assert_int_equal(tt_now(&c, &iv, &e), MERR_CLOCK);
    assert_true(iv.epsilon_ns > 0);
    assert_true(iv.earliest_ns < iv.now_ns && iv.latest_ns > iv.now_ns);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_formula),
        cmocka_unit_test(test_bounds_contain_true_time),
        cmocka_unit_test(test_monotonic_between_samples),
        cmocka_unit_test(test_epsilon_grows_with_age),
        cmocka_unit_test(test_age_survives_wall_clock_step),
        cmocka_unit_test(test_stale_and_silent_source),
        cmocka_unit_test(test_skew),
        cmocka_unit_test(test_after_before),
        cmocka_unit_test(test_static_source),
        cmocka_unit_test(test_config_check),
        cmocka_unit_test(test_absurd_inputs_saturate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
