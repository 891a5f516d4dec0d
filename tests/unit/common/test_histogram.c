/* Latency histogram: quantiles within the documented relative error of the
 * exact order statistics, merge == recording everything in one, reset,
 * edge values and the summary line. Random tests print their seed; rerun one
 * with MHIST_SEED=<seed>. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/histogram.h"

static uint64_t g_seed, rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static double rnd01(void)
{
    return (double)(rnd() >> 11) / 9007199254740992.0;
}

static void seed_rng(const char *test)
{
    const char *s = getenv("MHIST_SEED");
    g_seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
    rng_state = g_seed;
    print_message("%s: seed=%llu\n", test, (unsigned long long)g_seed);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* A sample from one of several latency-like shapes, all within 1ns..1h. */
static uint64_t sample(int dist)
{
    switch (dist) {
    case 0: return 1 + rnd() % 1000; /* uniform, small: exact buckets */
    case 1: return 1000 + rnd() % 10000000;
    case 2: { /* log-uniform over 1ns .. 1h */
        double l = rnd01() * log(3.6e12);
        return (uint64_t)exp(l);
    }
    case 3: { /* exponential, mean 50us */
        double u = rnd01();
        return (uint64_t)(-log(1 - u) * 50000.0);
    }
    default: { /* bimodal: fast path and rare slow tail */
        if (rnd() % 100 == 0) return 100000000 + rnd() % 900000000;
        return 20000 + rnd() % 5000;
    }
    }
}

static void check_quantiles(const mhist *h, uint64_t *vals, size_t n)
{
    static const double qs[] = {0.0001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 0.9999};
    qsort(vals, n, sizeof(*vals), cmp_u64);
    assert_int_equal(mhist_count(h), n);
    assert_int_equal(mhist_min(h), vals[0]);
    assert_int_equal(mhist_max(h), vals[n - 1]);
    for (size_t k = 0; k < sizeof(qs) / sizeof(qs[0]); k++) {
        size_t rank = (size_t)ceil(qs[k] * (double)n);
        if (rank < 1) rank = 1;
        uint64_t exact = vals[rank - 1], got = mhist_quantile(h, qs[k]);
        double err = fabs((double)got - (double)exact);
        if (err > (double)exact * MHIST_REL_ERR)
            fail_msg("seed=%llu q=%g: got %llu, exact %llu (rel err %g > %g)",
                     (unsigned long long)g_seed, qs[k], (unsigned long long)got,
                     (unsigned long long)exact, err / (double)exact, MHIST_REL_ERR);
    }
    assert_int_equal(mhist_quantile(h, 0), vals[0]);
    assert_int_equal(mhist_quantile(h, 1), vals[n - 1]);
}

static void test_quantiles_random(void **state)
{
    (void)state;
    seed_rng("quantiles_random");
    const size_t n = 100000;
    uint64_t *vals = malloc(n * sizeof(*vals));
    mhist *h = malloc(sizeof(*h));
    assert_non_null(vals);
    assert_non_null(h);
    for (int dist = 0; dist < 5; dist++) {
        mhist_init(h);
        long double sum = 0;
        for (size_t i = 0; i < n; i++) {
            vals[i] = sample(dist);
            sum += vals[i];
            mhist_record(h, vals[i]);
        }
        assert_true(fabs(mhist_mean(h) - (double)(sum / n)) <= 1e-9 * (double)(sum / n));
        check_quantiles(h, vals, n);
    }
    free(vals);
    free(h);
}

static void test_merge_equals_single(void **state)
{
    (void)state;
    seed_rng("merge_equals_single");
    mhist *all = malloc(sizeof(*all)), *parts = malloc(4 * sizeof(*parts)),
          *merged = malloc(sizeof(*merged));
    assert_non_null(all);
    assert_non_null(parts);
    assert_non_null(merged);
    mhist_init(all);
    mhist_init(merged);
    for (int p = 0; p < 4; p++) mhist_init(&parts[p]);
    for (int i = 0; i < 50000; i++) {
        uint64_t v = sample((int)(rnd() % 5));
        mhist_record(all, v);
        mhist_record(&parts[rnd() % 4], v);
    }
    mhist_record_n(all, 777, 3);
    mhist_record_n(&parts[2], 777, 3);
    for (int p = 0; p < 4; p++) mhist_merge(merged, &parts[p]);
    mhist empty;
    mhist_init(&empty);
    mhist_merge(merged, &empty); /* merging nothing changes nothing */
    assert_memory_equal(all, merged, sizeof(*all));
    free(all);
    free(parts);
    free(merged);
}

static void test_edges_and_reset(void **state)
{
    (void)state;
    mhist h;
    mhist_init(&h);
    char line[256];
    assert_int_equal(mhist_quantile(&h, 0.5), 0);
    assert_int_equal(mhist_min(&h), 0);
    assert_int_equal(mhist_max(&h), 0);
    assert_true(mhist_mean(&h) == 0);
    mhist_summary(&h, line, sizeof(line));
    assert_non_null(strstr(line, "n=0 "));

    mhist_record(&h, 0);
    mhist_record(&h, 127);
    mhist_record(&h, 128);
    assert_int_equal(mhist_quantile(&h, 0.01), 0);
    assert_int_equal(mhist_quantile(&h, 0.5), 127); /* exact below 128 */
    assert_int_equal(mhist_quantile(&h, 1), 128);

    /* beyond the bucketed range: counted, max stays exact */
    uint64_t huge = 10ULL * 3600 * 1000000000ULL; /* 10 hours */
    mhist_record(&h, huge);
    mhist_record(&h, UINT64_MAX);
    assert_int_equal(mhist_count(&h), 5);
    assert_int_equal(mhist_max(&h), UINT64_MAX);
    assert_int_equal(mhist_quantile(&h, 0.99), UINT64_MAX);
    assert_int_equal(h.sum, UINT64_MAX); /* saturated, not wrapped */

    /* a single value is reported exactly at every quantile */
    mhist_reset(&h);
    assert_int_equal(mhist_count(&h), 0);
    mhist_record(&h, 123456789);
    for (double q = 0; q <= 1.0; q += 0.125) assert_int_equal(mhist_quantile(&h, q), 123456789);
    assert_int_equal(mhist_quantile(&h, NAN), 123456789);

    /* an hour is still within the relative error */
    mhist_reset(&h);
    uint64_t hour = 3600ULL * 1000000000ULL;
    mhist_record(&h, 1);
    mhist_record(&h, hour);
    mhist_record(&h, hour + 1);
    uint64_t p50 = mhist_quantile(&h, 0.5);
    assert_true(fabs((double)p50 - (double)hour) <= (double)hour * MHIST_REL_ERR);
}

static void test_summary_line(void **state)
{
    (void)state;
    mhist h;
    mhist_init(&h);
    for (uint64_t v = 1; v <= 1000; v++) mhist_record(&h, v * 1000); /* 1us .. 1ms */
    char line[256];
    int n = mhist_summary(&h, line, sizeof(line));
    assert_true(n > 0 && (size_t)n < sizeof(line));
    print_message("%s\n", line);
    assert_non_null(strstr(line, "n=1000 "));
    assert_non_null(strstr(line, "min=1us "));
    assert_non_null(strstr(line, "p50=50"));
    assert_non_null(strstr(line, "p999=99"));
    assert_non_null(strstr(line, "max=1ms"));
    char s[32];
    mhist_fmt_ns(999, s, sizeof(s));
    assert_string_equal(s, "999ns");
    mhist_fmt_ns(2500000000ULL, s, sizeof(s));
    assert_string_equal(s, "2.5s");
    /* a short buffer truncates safely and reports the length it needed */
    char tiny[8];
    assert_int_equal(mhist_summary(&h, tiny, sizeof(tiny)), n);
    assert_int_equal(strlen(tiny), sizeof(tiny) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantiles_random),
        cmocka_unit_test(test_merge_equals_single),
        cmocka_unit_test(test_edges_and_reset),
        cmocka_unit_test(test_summary_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
