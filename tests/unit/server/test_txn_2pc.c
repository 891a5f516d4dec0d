/* The 2PC record encodings of server/txn_2pc.h: the coordinator reference a
 * prepare record (storage intent) carries, and the decision record keys at
 * the coordinator. A prepare record with writes and read spans survives the
 * log encoding (range_batch_encode) with its coordinator intact. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "server/txn_2pc.h"
#include "storage/range.h"

static void test_coord_round_trip(void **state)
{
    (void)state;
    mbuf b = MBUF_INIT;
    assert_int_equal(tx2_coord_encode(0x0102030405060708ULL, (const uint8_t *)"\x01k", 2, &b), 0);
    uint64_t rid = 0;
    const uint8_t *k = NULL;
    size_t kl = 0;
    assert_int_equal(tx2_coord_decode(b.data, b.len, &rid, &k, &kl), 0);
    assert_true(rid == 0x0102030405060708ULL);
    assert_int_equal(kl, 2);
    assert_memory_equal(k, "\x01k", 2);
    /* Too short (no key), or range 0: refused. */
    for (size_t n = 0; n < 9; n++)
        assert_int_equal(tx2_coord_decode(b.data, n, &rid, &k, &kl), MERR_CORRUPT);
    memset(b.data, 0, 8);
    assert_int_equal(tx2_coord_decode(b.data, b.len, &rid, &k, &kl), MERR_CORRUPT);
    mbuf_free(&b);
}

/* The record's anchor: the key the commit names, else its first write. */
static void test_anchor(void **state)
{
    (void)state;
    Meridian__Kv__Mutation m = MERIDIAN__KV__MUTATION__INIT, *mp = &m;
    m.key = (ProtobufCBinaryData){2, (uint8_t *)"\x01w"};
    Meridian__Txn__CommitRequest q = MERIDIAN__TXN__COMMIT_REQUEST__INIT;
    assert_null(tx2_anchor(&q));
    q.mutations = &mp, q.n_mutations = 1;
    assert_memory_equal(tx2_anchor(&q)->data, "\x01w", 2);
    q.key = (ProtobufCBinaryData){2, (uint8_t *)"\x01k"};
    assert_memory_equal(tx2_anchor(&q)->data, "\x01k", 2);
}

static void test_prepare_record_in_the_log(void **state)
{
    (void)state;
    mbuf coord = MBUF_INIT, enc = MBUF_INIT;
    assert_int_equal(tx2_coord_encode(3, (const uint8_t *)"\x01a", 2, &coord), 0);
    range_write w[2] = {{(const uint8_t *)"\x01x", 2, (const uint8_t *)"v", 1, 0},
                        {(const uint8_t *)"\x01y", 2, NULL, 0, 1}};
    range_span sp[2] = {{(const uint8_t *)"\x01r", 2, (const uint8_t *)"\x01r\x00", 3},
                        {(const uint8_t *)"\x01s", 2, NULL, 0}};
    uint8_t id[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    range_intent it = {id, 8, 777, coord.data, coord.len, w, 2, sp, 2};
    range_batch bt = {.ts = 777, .prepares = &it, .nprepares = 1};
    assert_int_equal(range_batch_encode(&bt, &enc), 0);
    range_batch_decoded d;
    assert_int_equal(range_batch_decode(enc.data, enc.len, &d), 0);
    assert_int_equal(d.batch.nprepares, 1);
    const range_intent *g = &d.batch.prepares[0];
    assert_int_equal(g->prepare_ts, 777);
    assert_int_equal(g->nwrites, 2);
    assert_int_equal(g->nspans, 2);
    assert_int_equal(g->writes[1].del, 1);
    assert_int_equal(g->spans[0].elen, 3);
    assert_int_equal(g->spans[1].elen, 0);
    uint64_t rid;
    const uint8_t *k;
    size_t kl;
    assert_int_equal(tx2_coord_decode(g->coord, g->coord_len, &rid, &k, &kl), 0);
    assert_int_equal(rid, 3);
    assert_memory_equal(k, "\x01a", 2);
    range_batch_decoded_free(&d);
    mbuf_free(&coord);
    mbuf_free(&enc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_coord_round_trip),
        cmocka_unit_test(test_anchor),
        cmocka_unit_test(test_prepare_record_in_the_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
