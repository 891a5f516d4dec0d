/* The range log command codec (server/range_cmd.h): round trips, batches
 * (and so every log written before splits) read as batches, and strict
 * refusal of truncations, bit flips, trailing bytes and random garbage. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "server/range_cmd.h"
#include "storage/range.h"

static void test_split_round_trip(void **state)
{
    (void)state;
    uint32_t v[3] = {1, 2, 3};
    mbuf out = MBUF_INIT;
    assert_int_equal(range_cmd_encode_split((const uint8_t *)"k50", 3, 7, 4, v, 3, &out), 0);
    range_cmd c;
    assert_int_equal(range_cmd_decode(out.data, out.len, &c), 0);
    assert_int_equal(c.kind, RANGE_CMD_SPLIT);
    assert_int_equal(c.new_range_id, 7);
    assert_int_equal(c.expected_gen, 4);
    assert_int_equal(c.nvoters, 3);
    assert_memory_equal(c.voters, v, sizeof(v));
    assert_int_equal(c.klen, 3);
    assert_memory_equal(c.key, "k50", 3);
    /* Every truncation, every single-bit flip and a trailing byte is refused. */
    for (size_t n = 0; n < out.len; n++)
        assert_int_equal(range_cmd_decode(out.data, n, &c), MERR_CORRUPT);
    for (size_t i = 1; i < out.len; i++)
        for (int b = 0; b < 8; b++) {
            out.data[i] ^= (uint8_t)(1u << b);
            assert_int_equal(range_cmd_decode(out.data, out.len, &c), MERR_CORRUPT);
            out.data[i] ^= (uint8_t)(1u << b);
        }
    assert_int_equal(mbuf_append_u8(&out, 0), 0);
    assert_int_equal(range_cmd_decode(out.data, out.len, &c), MERR_CORRUPT);
    mbuf_free(&out);
    /* Bad arguments never make a command. */
    assert_int_equal(range_cmd_encode_split((const uint8_t *)"k", 0, 7, 4, v, 3, &out),
                     MERR_INVALID);
    assert_int_equal(range_cmd_encode_split((const uint8_t *)"k", 1, 0, 4, v, 3, &out),
                     MERR_INVALID);
    assert_int_equal(range_cmd_encode_split((const uint8_t *)"k", 1, 7, 4, v, 0, &out),
                     MERR_INVALID);
    assert_int_equal(out.len, 0);
    mbuf_free(&out);
}

static void test_merge_round_trip(void **state)
{
    (void)state;
    mbuf out = MBUF_INIT;
    assert_int_equal(range_cmd_encode_merge(9, 3, 5, 1234, &out), 0);
    range_cmd c;
    assert_int_equal(range_cmd_decode(out.data, out.len, &c), 0);
    assert_int_equal(c.kind, RANGE_CMD_MERGE);
    assert_int_equal(c.right_id, 9);
    assert_int_equal(c.left_gen, 3);
    assert_int_equal(c.right_gen, 5);
    assert_int_equal(c.right_applied, 1234);
    for (size_t n = 0; n < out.len; n++)
        assert_int_equal(range_cmd_decode(out.data, n, &c), MERR_CORRUPT);
    out.data[3] ^= 0x40;
    assert_int_equal(range_cmd_decode(out.data, out.len, &c), MERR_CORRUPT);
    mbuf_free(&out);
}

static void test_freeze_round_trip(void **state)
{
    (void)state;
    mbuf out = MBUF_INIT;
    assert_int_equal(range_cmd_encode_freeze(7, &out), 0);
    range_cmd c;
    assert_int_equal(range_cmd_decode(out.data, out.len, &c), 0);
    assert_int_equal(c.kind, RANGE_CMD_FREEZE);
    assert_int_equal(c.expected_gen, 7);
    for (size_t n = 0; n < out.len; n++)
        assert_int_equal(range_cmd_decode(out.data, n, &c), MERR_CORRUPT);
    out.data[2] ^= 0x01;
    assert_int_equal(range_cmd_decode(out.data, out.len, &c), MERR_CORRUPT);
    mbuf_free(&out);
}

static void test_close_round_trip(void **state)
{
    (void)state;
    mbuf out = MBUF_INIT;
    assert_int_equal(range_cmd_encode_close(0, &out), MERR_INVALID); /* 0 closes nothing */
    assert_int_equal(out.len, 0);
    assert_int_equal(range_cmd_encode_close(0x123456789abcULL, &out), 0);
    range_cmd c;
    assert_int_equal(range_cmd_decode(out.data, out.len, &c), 0);
    assert_int_equal(c.kind, RANGE_CMD_CLOSE);
    assert_int_equal(c.closed, 0x123456789abcULL);
    for (size_t n = 0; n < out.len; n++)
        assert_int_equal(range_cmd_decode(out.data, n, &c), MERR_CORRUPT);
    out.data[4] ^= 0x01;
    assert_int_equal(range_cmd_decode(out.data, out.len, &c), MERR_CORRUPT);
    mbuf_free(&out);
}

static void test_batch_is_batch(void **state)
{
    (void)state;
    /* A storage batch, as every log before splits holds. */
    range_write w = {
        .key = (const uint8_t *)"a", .klen = 1, .val = (const uint8_t *)"v", .vlen = 1};
    range_batch b = {.ts = 42, .writes = &w, .nwrites = 1};
    mbuf out = MBUF_INIT;
    assert_int_equal(range_batch_encode(&b, &out), 0);
    range_cmd c;
    assert_int_equal(range_cmd_decode(out.data, out.len, &c), 0);
    assert_int_equal(c.kind, RANGE_CMD_BATCH);
    mbuf_free(&out);
}

static void test_garbage(void **state)
{
    (void)state;
    srand(12345);
    uint8_t buf[64];
    range_cmd c;
    for (int it = 0; it < 20000; it++) {
        size_t n = (size_t)(rand() % (int)sizeof(buf));
        for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)rand();
        if (n && (it & 1)) buf[0] = (it & 2) ? RANGE_CMD_SPLIT : RANGE_CMD_MERGE;
        int rc = range_cmd_decode(buf, n, &c);
        /* Only a batch tag passes without a crc (the batch decoder checks it). */
        if (rc == 0)
            assert_int_equal(buf[0], RANGE_CMD_BATCH);
        else
            assert_int_equal(rc, MERR_CORRUPT);
    }
    assert_int_equal(range_cmd_decode(NULL, 0, &c), MERR_CORRUPT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_round_trip),  cmocka_unit_test(test_merge_round_trip),
        cmocka_unit_test(test_freeze_round_trip), cmocka_unit_test(test_close_round_trip),
        cmocka_unit_test(test_batch_is_batch),    cmocka_unit_test(test_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
