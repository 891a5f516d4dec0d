/* Range-local keys (common/localkey.h): round trips, the order property the
 * split and merge partitioning rely on (anchor >= x iff key >= bound(x)),
 * checked exhaustively over short anchors with 0x00/0xFF bytes, and span
 * membership by anchor. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/localkey.h"

static const uint8_t ALPHA[] = {0x00, 0x01, 0x02, 0xFE, 0xFF};
#define NALPHA 5

/* The i-th byte string over ALPHA of length <= 3 (i < 1 + 5 + 25 + 125). */
static size_t nth(size_t i, uint8_t out[3])
{
    size_t len = 0, base = 1;
    while (i >= base) {
        i -= base;
        base *= NALPHA;
        len++;
    }
    for (size_t j = len; j-- > 0;) {
        out[j] = ALPHA[i % NALPHA];
        i /= NALPHA;
    }
    return len;
}
#define NSTR 156

static int sign(int x)
{
    return (x > 0) - (x < 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    mbuf k = MBUF_INIT, a = MBUF_INIT;
    for (size_t i = 0; i < NSTR; i++) {
        uint8_t an[3];
        size_t al = nth(i, an);
        mbuf_reset(&k);
        assert_int_equal(mlocal_key(an, al, (const uint8_t *)"sfx\x00", 4, &k), 0);
        assert_true(mlocal_is(k.data, k.len));
        const uint8_t *s = NULL;
        size_t sl = 0;
        assert_int_equal(mlocal_decode(k.data, k.len, &a, &s, &sl), 0);
        assert_int_equal(a.len, al);
        if (al) assert_memory_equal(a.data, an, al);
        assert_int_equal(sl, 4);
        assert_memory_equal(s, "sfx\x00", 4);
    }
    /* Not local keys, or malformed ones. */
    assert_false(mlocal_is((const uint8_t *)"\x00txn/", 5));
    assert_false(mlocal_is((const uint8_t *)"\x00", 1));
    assert_false(mlocal_is((const uint8_t *)"\x01\x00", 2));
    assert_int_equal(mlocal_decode((const uint8_t *)"\x00sys", 4, &a, NULL, NULL), MERR_CORRUPT);
    assert_int_equal(mlocal_decode((const uint8_t *)"\x00\x00"
                                                    "ab",
                                   4, &a, NULL, NULL),
                     MERR_CORRUPT); /* no terminator */
    assert_int_equal(mlocal_decode((const uint8_t *)"\x00\x00"
                                                    "a\x00",
                                   4, &a, NULL, NULL),
                     MERR_CORRUPT); /* cut inside an escape */
    assert_int_equal(mlocal_decode((const uint8_t *)"\x00\x00"
                                                    "a\x00\x05",
                                   5, &a, NULL, NULL),
                     MERR_CORRUPT); /* neither escape nor terminator */
    mbuf_free(&k);
    mbuf_free(&a);
}

/* For every anchor a and bound x: key(a) >= bound(x) iff a >= x, and
 * mlocal_cmp_bound agrees with memcmp against the materialised bound. Keys
 * keep the anchors' order. Every local key sorts inside [prefix, end). */
static void test_order(void **state)
{
    (void)state;
    mbuf k = MBUF_INIT, k2 = MBUF_INIT, b = MBUF_INIT, end = MBUF_INIT;
    assert_int_equal(mlocal_end(&end), 0);
    for (size_t i = 0; i < NSTR; i++) {
        uint8_t an[3];
        size_t al = nth(i, an);
        mbuf_reset(&k);
        assert_int_equal(mlocal_key(an, al, (const uint8_t *)"\xFF", 1, &k), 0);
        assert_true(mbytes_cmp(k.data, k.len, end.data, end.len) < 0);
        for (size_t j = 0; j < NSTR; j++) {
            uint8_t x[3];
            size_t xl = nth(j, x);
            mbuf_reset(&b);
            assert_int_equal(mlocal_bound(x, xl, &b), 0);
            int want = mbytes_cmp(an, al, x, xl) >= 0;
            assert_int_equal(mbytes_cmp(k.data, k.len, b.data, b.len) >= 0, want);
            assert_int_equal(sign(mlocal_cmp_bound(k.data, k.len, x, xl)),
                             sign(mbytes_cmp(k.data, k.len, b.data, b.len)));
            mbuf_reset(&k2);
            assert_int_equal(mlocal_key(x, xl, (const uint8_t *)"\x00", 1, &k2), 0);
            if (mbytes_cmp(an, al, x, xl) != 0)
                assert_int_equal(sign(mbytes_cmp(k.data, k.len, k2.data, k2.len)),
                                 sign(mbytes_cmp(an, al, x, xl)));
        }
    }
    mbuf_free(&k);
    mbuf_free(&k2);
    mbuf_free(&b);
    mbuf_free(&end);
}

/* Split partitioning: a range [s, e) split at m gives [s, m) and [m, e);
 * every local key belongs to exactly the side that holds its anchor. */
static void test_span(void **state)
{
    (void)state;
    mbuf k = MBUF_INIT;
    const uint8_t s[] = {0x01}, m[] = {0x02, 0x00}, e[] = {0xFE};
    for (size_t i = 0; i < NSTR; i++) {
        uint8_t an[3];
        size_t al = nth(i, an);
        mbuf_reset(&k);
        assert_int_equal(mlocal_key(an, al, (const uint8_t *)"t", 1, &k), 0);
        int in_whole = mbytes_cmp(an, al, s, 1) >= 0 && mbytes_cmp(an, al, e, 1) < 0;
        int left = mlocal_in_span(k.data, k.len, s, 1, m, 2);
        int right = mlocal_in_span(k.data, k.len, m, 2, e, 1);
        assert_int_equal(mlocal_in_span(k.data, k.len, s, 1, e, 1), in_whole);
        assert_int_equal(left + right, in_whole);
        assert_int_equal(right, in_whole && mbytes_cmp(an, al, m, 2) >= 0);
        /* The first range starts at "" and the last has no end. */
        assert_true(mlocal_in_span(k.data, k.len, NULL, 0, NULL, 0));
        assert_int_equal(mlocal_in_span(k.data, k.len, m, 2, NULL, 0),
                         mbytes_cmp(an, al, m, 2) >= 0);
    }
    mbuf_free(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_span),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
