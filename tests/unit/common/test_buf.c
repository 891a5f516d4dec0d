/* Byte buffers and bounds-checked readers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

static void test_append_and_read_back(void **state)
{
    (void)state;
    mbuf b = MBUF_INIT;
    assert_int_equal(mbuf_append_u8(&b, 0xab), 0);
    assert_int_equal(mbuf_append_u16be(&b, 0x1234), 0);
    assert_int_equal(mbuf_append_u32be(&b, 0xdeadbeef), 0);
    assert_int_equal(mbuf_append_u64be(&b, 0x0102030405060708ULL), 0);
    assert_int_equal(mbuf_append_varint(&b, 300), 0);
    assert_int_equal(mbuf_append_varint(&b, UINT64_MAX), 0);
    assert_int_equal(mbuf_printf(&b, "k=%d", 42), 0);
    mreader r;
    mreader_init(&r, b.data, b.len);
    uint8_t u8;
    uint16_t u16;
    uint32_t u32;
    uint64_t u64;
    assert_int_equal(mreader_u8(&r, &u8), 0);
    assert_int_equal(u8, 0xab);
    assert_int_equal(mreader_u16be(&r, &u16), 0);
    assert_int_equal(u16, 0x1234);
    assert_int_equal(mreader_u32be(&r, &u32), 0);
    assert_int_equal(u32, 0xdeadbeef);
    assert_int_equal(mreader_u64be(&r, &u64), 0);
    assert_true(u64 == 0x0102030405060708ULL);
    assert_int_equal(mreader_varint(&r, &u64), 0);
    assert_int_equal(u64, 300);
    assert_int_equal(mreader_varint(&r, &u64), 0);
    assert_true(u64 == UINT64_MAX);
    const uint8_t *p;
    assert_int_equal(mreader_bytes(&r, 4, &p), 0);
    assert_memory_equal(p, "k=42", 4);
    assert_int_equal(mreader_left(&r), 0);
    /* Reading past the end fails and does not move. */
    assert_int_equal(mreader_u8(&r, &u8), MERR_CORRUPT);
    assert_int_equal(mreader_u64be(&r, &u64), MERR_CORRUPT);
    mbuf_free(&b);
}

static void test_growth_and_consume(void **state)
{
    (void)state;
    mbuf b = MBUF_INIT;
    for (int i = 0; i < 10000; i++) assert_int_equal(mbuf_append_u32be(&b, (uint32_t)i), 0);
    assert_int_equal(b.len, 40000);
    mbuf_consume(&b, 4 * 9999);
    assert_int_equal(b.len, 4);
    assert_int_equal(mbe32_get(b.data), 9999);
    size_t n;
    uint8_t *d = mbuf_detach(&b, &n);
    assert_int_equal(n, 4);
    assert_null(b.data);
    free(d);
    /* A reservation that would overflow size_t fails cleanly. */
    assert_int_equal(mbuf_append_u8(&b, 1), 0);
    assert_int_equal(mbuf_reserve(&b, SIZE_MAX), MERR_NOMEM);
    mbuf_free(&b);
}

static void test_varint_rejects_malformed(void **state)
{
    (void)state;
    mreader r;
    uint64_t v;
    /* Truncated: continuation bit set on the last byte. */
    const uint8_t trunc[] = {0x80, 0x80};
    mreader_init(&r, trunc, sizeof(trunc));
    assert_int_equal(mreader_varint(&r, &v), MERR_CORRUPT);
    /* Too long: eleven continuation bytes. */
    uint8_t longv[11];
    memset(longv, 0xff, sizeof(longv));
    mreader_init(&r, longv, sizeof(longv));
    assert_int_equal(mreader_varint(&r, &v), MERR_CORRUPT);
    /* Overflows 64 bits in the tenth byte. */
    uint8_t over[10];
    memset(over, 0xff, 9);
    over[9] = 0x02;
    mreader_init(&r, over, sizeof(over));
    assert_int_equal(mreader_varint(&r, &v), MERR_CORRUPT);
    /* Not the shortest form: 2 as {0x82, 0x00} (found by fuzz_range_cmd). */
    const uint8_t padded[] = {0x82, 0x00};
    mreader_init(&r, padded, sizeof(padded));
    assert_int_equal(mreader_varint(&r, &v), MERR_CORRUPT);
    const uint8_t zero[] = {0x00}; /* zero itself is one 0x00 byte */
    mreader_init(&r, zero, sizeof(zero));
    assert_int_equal(mreader_varint(&r, &v), 0);
    assert_int_equal(v, 0);
}

/* Key order: bytes compare unsigned, and a prefix sorts first. */
static void test_bytes_cmp(void **state)
{
    (void)state;
    const uint8_t a[] = {0x01, 0x02}, b[] = {0x01, 0x03}, hi[] = {0xff};
    assert_true(mbytes_cmp(a, 2, b, 2) < 0);
    assert_true(mbytes_cmp(b, 2, a, 2) > 0);
    assert_int_equal(mbytes_cmp(a, 2, a, 2), 0);
    assert_true(mbytes_cmp(a, 1, a, 2) < 0); /* prefix first */
    assert_true(mbytes_cmp(a, 2, a, 1) > 0);
    assert_true(mbytes_cmp(a, 2, hi, 1) < 0); /* unsigned: 0xff is the greatest */
    assert_int_equal(mbytes_cmp(NULL, 0, NULL, 0), 0);
    assert_true(mbytes_cmp(NULL, 0, a, 1) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_and_read_back),
        cmocka_unit_test(test_growth_and_consume),
        cmocka_unit_test(test_varint_rejects_malformed),
        cmocka_unit_test(test_bytes_cmp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
