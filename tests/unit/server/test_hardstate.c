/* The replica's hard-state blob (server/replica_int.h): round trips with and
 * without a snapshot, reads the pre-snapshot format, refuses damage. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common/buf.h"
#include "server/replica_int.h"

static paxos_members mk(uint32_t nv, uint32_t first, uint32_t nl)
{
    paxos_members m;
    memset(&m, 0, sizeof(m));
    m.nvoters = nv;
    for (uint32_t i = 0; i < nv; i++) m.voters[i] = first + i;
    m.nlearners = nl;
    for (uint32_t i = 0; i < nl; i++) m.learners[i] = 100 + i;
    return m;
}

static void test_round_trip(void **state)
{
    (void)state;
    paxos_ballot b = {7, 3}, b2;
    paxos_members gen = mk(3, 1, 0), snapm = mk(3, 2, 1), g2, s2;
    uint64_t slot = 99;
    mbuf out = MBUF_INIT;
    /* No snapshot: the old layout exactly, read back with slot 0. */
    assert_int_equal(replica_encode_hardstate(&b, &gen, 0, NULL, &out), 0);
    assert_int_equal(out.len, 12 + 2 + 4 * 3);
    assert_int_equal(replica_decode_hardstate(out.data, out.len, &b2, &g2, &slot, &s2), 0);
    assert_int_equal(slot, 0);
    assert_int_equal(b2.round, 7);
    assert_int_equal(b2.node, 3);
    assert_memory_equal(&g2, &gen, sizeof(gen));
    mbuf_free(&out);
    /* With a snapshot. */
    assert_int_equal(replica_encode_hardstate(&b, &gen, 12345, &snapm, &out), 0);
    assert_int_equal(replica_decode_hardstate(out.data, out.len, &b2, &g2, &slot, &s2), 0);
    assert_int_equal(slot, 12345);
    assert_memory_equal(&g2, &gen, sizeof(gen));
    assert_memory_equal(&s2, &snapm, sizeof(snapm));
    /* Every truncation is refused, never read past the end. */
    for (size_t n = 0; n < out.len; n++)
        if (n != 12 + 2 + 4 * 3)
            assert_int_not_equal(replica_decode_hardstate(out.data, n, &b2, &g2, &slot, &s2), 0);
    /* A voter count pointing past the end. */
    out.data[12] = 200;
    assert_int_equal(replica_decode_hardstate(out.data, out.len, &b2, &g2, &slot, &s2),
                     MERR_CORRUPT);
    mbuf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_round_trip)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
