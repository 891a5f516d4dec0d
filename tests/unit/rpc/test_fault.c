/* Fault decisions, spec parsing, the PRNG and the reconnect backoff schedule. */
#include "rpc/fault.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#define MS 1000000LL

static void test_backoff_schedule(void **state)
{
    (void)state;
    rpc_backoff b;
    rpc_backoff_init(&b, 100 * MS, 1000 * MS);
    /* jitter 0 gives the low end (half the base), jitter ~1 the high end. */
    int64_t lo[] = {50, 100, 200, 400, 500, 500, 500};
    for (size_t i = 0; i < sizeof(lo) / sizeof(lo[0]); i++)
        assert_int_equal(rpc_backoff_next(&b, 0.0), lo[i] * MS);
    rpc_backoff_reset(&b);
    assert_int_equal(rpc_backoff_next(&b, 0.5), 75 * MS);
    assert_int_equal(rpc_backoff_next(&b, 0.5), 150 * MS);
    int64_t hi = rpc_backoff_next(&b, 0.999999);
    assert_true(hi > 399 * MS && hi < 400 * MS);
    /* Out-of-range jitter is clamped; many attempts never overflow. */
    for (int i = 0; i < 200; i++) {
        int64_t d = rpc_backoff_next(&b, 7.0);
        assert_true(d >= 500 * MS && d < 1000 * MS);
    }
}

static void test_rng_deterministic(void **state)
{
    (void)state;
    rpc_rng a, b;
    rpc_rng_seed(&a, 42);
    rpc_rng_seed(&b, 42);
    for (int i = 0; i < 100; i++) assert_int_equal(rpc_rng_next(&a), rpc_rng_next(&b));
    rpc_rng_seed(&b, 43);
    assert_true(rpc_rng_next(&a) != rpc_rng_next(&b));
    for (int i = 0; i < 1000; i++) {
        double d = rpc_rng_double(&a);
        assert_true(d >= 0.0 && d < 1.0);
    }
}

static void test_parse_and_rules(void **state)
{
    (void)state;
    rpc_faults f;
    rpc_faults_init(&f, 1);
    merr e = {0};
    assert_false(rpc_faults_active(&f));
    assert_int_equal(
        rpc_faults_parse(&f,
                         "peer=2,drop=0.25,delay=5ms,jitter=1ms; peer=*,dup=1;"
                         "latency=us:eu:40ms;peer=3,partition=both;peer=4,reorder=1,hold=2ms",
                         &e),
        0);
    assert_true(rpc_faults_active(&f));
    const rpc_fault_rule *r = rpc_faults_rule(&f, 2);
    assert_non_null(r);
    assert_true(r->drop == 0.25);
    assert_int_equal(r->delay_ns, 5 * MS);
    assert_int_equal(r->jitter_ns, 1 * MS);
    assert_true(rpc_faults_rule(&f, 99)->dup == 1.0); /* wildcard */
    assert_true(rpc_faults_in_blocked(&f, 3));
    assert_false(rpc_faults_in_blocked(&f, 2));
    /* A later rule for the same peer replaces it. */
    assert_int_equal(rpc_faults_parse(&f, "peer=3,partition=out", &e), 0);
    assert_false(rpc_faults_in_blocked(&f, 3));
    assert_true(rpc_faults_rule(&f, 3)->block_out);

    const char *bad[] = {
        "peer=2,drop=1.5",    "peer=x",    "bogus=1", "drop", "latency=us:eu", "latency=a:b:?",
        "partition=sideways", "delay=-3ms"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        merr_clear(&e);
        assert_int_equal(rpc_faults_parse(&f, bad[i], &e), MERR_INVALID);
        assert_true(e.msg[0] != 0);
    }
    rpc_faults_clear(&f);
    assert_false(rpc_faults_active(&f));
    rpc_faults_free(&f);
}

static void test_verdicts(void **state)
{
    (void)state;
    rpc_faults f;
    rpc_faults_init(&f, 7);
    merr e = {0};
    assert_int_equal(rpc_faults_parse(&f,
                                      "peer=2,partition=out;peer=3,drop=1;peer=4,dup=1;"
                                      "peer=5,delay=3ms;peer=6,reorder=1,hold=9ms;"
                                      "latency=us:eu:40ms",
                                      &e),
                     0);
    rpc_fault_verdict v;
    rpc_faults_out(&f, 2, "", "", &v);
    assert_true(v.partitioned && v.copies == 0);
    rpc_faults_out(&f, 3, "", "", &v);
    assert_true(v.dropped && v.copies == 0 && !v.partitioned);
    rpc_faults_out(&f, 4, "", "", &v);
    assert_int_equal(v.copies, 2);
    rpc_faults_out(&f, 5, "us", "eu", &v);
    assert_int_equal(v.delay_ns, 43 * MS); /* rule delay + matrix */
    rpc_faults_out(&f, 6, "", "", &v);
    assert_true(v.reordered);
    assert_int_equal(v.delay_ns, 9 * MS);
    rpc_faults_out(&f, 9, "eu", "us", &v); /* matrix is symmetric from the spec */
    assert_int_equal(v.delay_ns, 40 * MS);
    assert_int_equal(v.copies, 1);
    rpc_faults_out(&f, 9, "eu", "eu", &v);
    assert_int_equal(v.delay_ns, 0);
    rpc_faults_free(&f);
}

static void test_drop_rate_and_replay(void **state)
{
    (void)state;
    rpc_faults a, b;
    rpc_faults_init(&a, 99);
    rpc_faults_init(&b, 99);
    merr e = {0};
    assert_int_equal(rpc_faults_parse(&a, "drop=0.3", &e), 0);
    assert_int_equal(rpc_faults_parse(&b, "drop=0.3", &e), 0);
    int dropped = 0;
    for (int i = 0; i < 10000; i++) {
        rpc_fault_verdict va, vb;
        rpc_faults_out(&a, 1, "", "", &va);
        rpc_faults_out(&b, 1, "", "", &vb);
        assert_int_equal(va.dropped, vb.dropped); /* same seed, same decisions */
        dropped += va.dropped;
    }
    assert_true(dropped > 2700 && dropped < 3300);
    rpc_faults_free(&a);
    rpc_faults_free(&b);
}

static void test_locality_region(void **state)
{
    (void)state;
    char r[RPC_REGION_MAX];
    rpc_locality_region("region=us-east,zone=a", r, sizeof(r));
    assert_string_equal(r, "us-east");
    rpc_locality_region("zone=b,region=eu", r, sizeof(r));
    assert_string_equal(r, "eu");
    rpc_locality_region("zone=b", r, sizeof(r));
    assert_string_equal(r, "");
    rpc_locality_region(NULL, r, sizeof(r));
    assert_string_equal(r, "");
    rpc_locality_region("region=averyveryverylongregionnamethatdoesnotfit", r, sizeof(r));
    assert_int_equal(strlen(r), RPC_REGION_MAX - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_schedule),     cmocka_unit_test(test_rng_deterministic),
        cmocka_unit_test(test_parse_and_rules),      cmocka_unit_test(test_verdicts),
        cmocka_unit_test(test_drop_rate_and_replay), cmocka_unit_test(test_locality_region),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
