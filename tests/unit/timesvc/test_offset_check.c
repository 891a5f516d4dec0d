/* The clock offset check (timesvc/offset_check.h): NTP offset and error from
 * one probe, the per-peer bound, the majority rule, staleness, recovery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "timesvc/offset_check.h"

#define MS (1000LL * 1000)
#define S  (1000 * MS)
#define T0 (1700000000LL * S)

/* A probe to peer whose clock reads ours + off; rtt 2 ms; both ε 10 ms. */
static void probe(offset_check *c, uint64_t peer, int64_t off, int64_t mono)
{
    assert_int_equal(oc_record(c, peer, T0, T0 + 2 * MS, T0 + 1 * MS + off, 10 * MS, 10 * MS, mono),
                     0);
}

static void test_offset_and_bound(void **state)
{
    (void)state;
    offset_check c;
    oc_init(&c, 5 * S);
    probe(&c, 2, 7 * MS, 0);
    const oc_peer *p = oc_peer_get(&c, 2);
    assert_non_null(p);
    assert_int_equal(p->offset_ns, 7 * MS);
    assert_int_equal(p->rtt_ns, 2 * MS);
    assert_int_equal(p->allowed_ns, 21 * MS); /* 10 + 10 + rtt/2 */
    /* a peer behind by exactly the bound is in; 1 ns more is out */
    probe(&c, 2, -21 * MS, 0);
    assert_int_equal(oc_evaluate(&c, 0).beyond, 0);
    probe(&c, 2, -21 * MS - 1, 0);
    assert_int_equal(oc_evaluate(&c, 0).beyond, 1);
    assert_int_equal(oc_evaluate(&c, 0).worst_ns, 21 * MS + 1);
    /* unusable samples are refused */
    assert_int_equal(oc_record(&c, 3, T0, T0 - 1, T0, 0, 0, 0), -1);
    assert_null(oc_peer_get(&c, 3));
}

static void test_majority(void **state)
{
    (void)state;
    offset_check c;
    oc_init(&c, 5 * S);
    assert_false(oc_evaluate(&c, 0).violation); /* heard nobody: no verdict */
    /* 4 peers: 2 beyond is not a majority (the faulty ones may be them) */
    probe(&c, 2, 500 * MS, 0);
    probe(&c, 3, 500 * MS, 0);
    probe(&c, 4, 1 * MS, 0);
    probe(&c, 5, -1 * MS, 0);
    oc_verdict v = oc_evaluate(&c, 0);
    assert_int_equal(v.heard, 4);
    assert_int_equal(v.beyond, 2);
    assert_false(v.violation);
    probe(&c, 4, 500 * MS, 0);
    assert_true(oc_evaluate(&c, 0).violation);
    /* back in bounds: trusted again */
    probe(&c, 2, 0, 1 * S);
    probe(&c, 3, 0, 1 * S);
    assert_false(oc_evaluate(&c, 1 * S).violation);
}

static void test_stale_and_forget(void **state)
{
    (void)state;
    offset_check c;
    oc_init(&c, 5 * S);
    probe(&c, 2, 900 * MS, 0);
    probe(&c, 3, 900 * MS, 4 * S);
    assert_true(oc_evaluate(&c, 4 * S).violation);
    /* peer 2's sample ages out: one of one heard is still beyond */
    oc_verdict v = oc_evaluate(&c, 6 * S);
    assert_int_equal(v.heard, 1);
    assert_true(v.violation);
    /* nobody heard lately: no verdict either way */
    assert_false(oc_evaluate(&c, 10 * S).violation);
    oc_forget(&c, 2);
    assert_null(oc_peer_get(&c, 2));
    assert_non_null(oc_peer_get(&c, 3));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset_and_bound),
        cmocka_unit_test(test_majority),
        cmocka_unit_test(test_stale_and_forget),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
