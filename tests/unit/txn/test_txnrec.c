/* Transaction record values and GC rules (txn/txnrec.h): encodings round
 * trip, older and malformed values, the commit-deadline verdicts, and that a
 * record is collectable only once both its deadline certainly passed and the
 * outcome was delivered, so a copy of the commit arriving after the record
 * went is always refused. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/localkey.h"
#include "txn/txnrec.h"

static void test_roundtrip(void **state)
{
    (void)state;
    txn_rec_value v = {.abort = false, .deadline_us = 0x0102030405060708ULL, .n_parts = 3};
    v.parts[0] = 2, v.parts[1] = 3, v.parts[2] = UINT64_MAX;
    uint8_t buf[TXN_REC_VALUE_MAX];
    size_t n = txn_rec_value_encode(&v, buf);
    assert_int_equal(n, 10 + 24);
    assert_int_equal(buf[0], 0x01);
    txn_rec_value d;
    assert_int_equal(txn_rec_value_decode(buf, n, &d), 0);
    assert_false(d.abort);
    assert_true(d.deadline_us == v.deadline_us);
    assert_int_equal(d.n_parts, 3);
    assert_true(d.parts[2] == UINT64_MAX);
    v.abort = true;
    v.n_parts = TXN_MAX_PARTS;
    n = txn_rec_value_encode(&v, buf);
    assert_int_equal(n, TXN_REC_VALUE_MAX);
    assert_int_equal(txn_rec_value_decode(buf, n, &d), 0);
    assert_true(d.abort);
    assert_int_equal(d.n_parts, TXN_MAX_PARTS);
}

static void test_older_and_bad(void **state)
{
    (void)state;
    txn_rec_value d;
    /* Records written before GC existed: kept for good (deadline 0). */
    assert_int_equal(txn_rec_value_decode(NULL, 0, &d), 0);
    assert_false(d.abort);
    assert_true(d.deadline_us == 0);
    const uint8_t ab[] = {0x02};
    assert_int_equal(txn_rec_value_decode(ab, 1, &d), 0);
    assert_true(d.abort);
    assert_false(txn_rec_collectable(&d, UINT64_MAX / 2, true));
    /* Bad bytes: refused, never read as a deadline. */
    const uint8_t one[] = {0x01}, kind[] = {0x07, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    assert_int_equal(txn_rec_value_decode(one, 1, &d), MERR_CORRUPT);
    assert_int_equal(txn_rec_value_decode(kind, sizeof(kind), &d), MERR_CORRUPT);
    uint8_t buf[TXN_REC_VALUE_MAX];
    txn_rec_value v = {.deadline_us = 5, .n_parts = 2};
    size_t n = txn_rec_value_encode(&v, buf);
    assert_int_equal(txn_rec_value_decode(buf, n - 1, &d), MERR_CORRUPT); /* short */
    buf[9] = TXN_MAX_PARTS + 1;
    assert_int_equal(txn_rec_value_decode(buf, n, &d), MERR_CORRUPT);
    assert_true(d.deadline_us == 0);
}

static void test_deadline(void **state)
{
    (void)state;
    const uint64_t now = 1800000000ULL * 1000000;
    assert_int_equal(txn_rec_deadline_check(0, now), TXN_DEADLINE_OK);
    assert_int_equal(txn_rec_deadline_check(now, now), TXN_DEADLINE_OK);
    assert_int_equal(txn_rec_deadline_check(now + 30000000, now), TXN_DEADLINE_OK);
    assert_int_equal(txn_rec_deadline_check(now - 1, now), TXN_DEADLINE_PASSED);
    assert_int_equal(txn_rec_deadline_check(now + TXN_REC_DEADLINE_MAX_US, now), TXN_DEADLINE_OK);
    assert_int_equal(txn_rec_deadline_check(now + TXN_REC_DEADLINE_MAX_US + 1, now),
                     TXN_DEADLINE_TOO_FAR);
}

/* Collected at earliest e means every later check (latest >= true time >
 * e) refuses the commit: for any deadline, collectable(e) implies
 * deadline_check(D, l) == PASSED for every l >= e. */
static void test_collect_implies_refused(void **state)
{
    (void)state;
    const uint64_t base = 1800000000ULL * 1000000;
    for (uint64_t dl = base; dl < base + 4 * TXN_REC_MARGIN_US; dl += TXN_REC_MARGIN_US / 3) {
        txn_rec_value v = {.deadline_us = dl};
        for (uint64_t e = base; e < base + 8 * TXN_REC_MARGIN_US; e += TXN_REC_MARGIN_US / 7) {
            if (!txn_rec_collectable(&v, e, true)) continue;
            assert_true(e > dl);
            for (uint64_t l = e; l < e + 3 * TXN_REC_MARGIN_US; l += TXN_REC_MARGIN_US / 2)
                assert_int_equal(txn_rec_deadline_check(dl, l), TXN_DEADLINE_PASSED);
        }
    }
    txn_rec_value v = {.deadline_us = base};
    assert_false(txn_rec_collectable(&v, base + 10 * TXN_REC_MARGIN_US, false)); /* undelivered */
    assert_false(txn_rec_collectable(&v, base, true));
    assert_true(txn_rec_collectable(&v, base + TXN_REC_MARGIN_US + 1, true));
}

/* A presumed abort (client deadline unknown) outlives every deadline a
 * coordinator could have accepted before it. */
static void test_presumed(void **state)
{
    (void)state;
    const uint64_t t = 1800000000ULL * 1000000;
    uint64_t accepted = t + TXN_REC_DEADLINE_MAX_US; /* the largest, at or before t */
    txn_rec_value v = {.abort = true, .deadline_us = txn_rec_presumed_deadline(t)};
    assert_true(v.deadline_us > accepted);
    for (uint64_t e = t; e < t + 2 * TXN_REC_DEADLINE_MAX_US; e += 1000000)
        if (txn_rec_collectable(&v, e, true))
            assert_int_equal(txn_rec_deadline_check(accepted, e), TXN_DEADLINE_PASSED);
}

/* Record keys are range-local keys anchored at the anchor: they parse back,
 * the abort key is a key of its own, and other keys are refused. */
static void test_keys(void **state)
{
    (void)state;
    mbuf c = MBUF_INIT, a = MBUF_INIT, an = MBUF_INIT;
    const uint8_t anchor[] = {0x2B, 0x00, 0x61}; /* a 0x00 inside: escaped */
    assert_int_equal(txn_rec_key(anchor, 3, 0xAABBCCDDEEFF0011ULL, false, &c), 0);
    assert_int_equal(txn_rec_key(anchor, 3, 0xAABBCCDDEEFF0011ULL, true, &a), 0);
    assert_true(mlocal_is(c.data, c.len));
    assert_memory_equal(c.data, "\x00\x00\x2B\x00\xFF\x61\x00\x01txn/", 12);
    assert_memory_equal(c.data + 12, "\xAA\xBB\xCC\xDD\xEE\xFF\x00\x11", 8);
    assert_int_equal(a.len, c.len + 1);
    assert_memory_equal(a.data, c.data, c.len);
    uint64_t id = 0;
    bool ab = true;
    assert_int_equal(txn_rec_key_parse(c.data, c.len, &an, &id, &ab), 0);
    assert_int_equal(id, 0xAABBCCDDEEFF0011ULL);
    assert_false(ab);
    assert_int_equal(an.len, 3);
    assert_memory_equal(an.data, anchor, 3);
    assert_int_equal(txn_rec_key_parse(a.data, a.len, &an, &id, &ab), 0);
    assert_true(ab);
    /* Not records: the old system key, a truncated id, another suffix. */
    assert_int_equal(txn_rec_key_parse((const uint8_t *)"\x00txn/12345678", 13, &an, &id, &ab),
                     MERR_CORRUPT);
    assert_int_equal(txn_rec_key_parse(c.data, c.len - 1, &an, &id, &ab), MERR_CORRUPT);
    a.data[a.len - 1] = 0x03;
    assert_int_equal(txn_rec_key_parse(a.data, a.len, &an, &id, &ab), MERR_CORRUPT);
    c.data[8] = 'x';
    assert_int_equal(txn_rec_key_parse(c.data, c.len, &an, &id, &ab), MERR_CORRUPT);
    mbuf_free(&c);
    mbuf_free(&a);
    mbuf_free(&an);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip), cmocka_unit_test(test_older_and_bad),
        cmocka_unit_test(test_deadline),  cmocka_unit_test(test_collect_implies_refused),
        cmocka_unit_test(test_presumed),  cmocka_unit_test(test_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
