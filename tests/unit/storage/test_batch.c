/* The log encoding of batches: round trip (applying the decoded batch equals
 * applying the original), every bit flip and truncation rejected, and random
 * bytes with a valid checksum never crash the decoder. */
#include "th.h"

#include "common/buf.h"
#include "common/crc32c.h"

static th_dir dir;

static int setup(void **state)
{
    th_mkdir(&dir);
    return 0;
}

static int teardown(void **state)
{
    th_rmdir(&dir);
    return 0;
}

static range_write ws[3], iw[2];
static range_span sp[1];
static range_intent it[1];
static range_resolve rs[1];

static range_batch sample(void)
{
    ws[0] = th_w("a", "1");
    ws[1] = th_w("b", NULL);
    ws[2] = th_w("c", "");
    iw[0] = th_w("d", "4");
    iw[1] = th_w("e", NULL);
    sp[0] = (range_span){(const uint8_t *)"f", 1, (const uint8_t *)"", 0};
    it[0] = (range_intent){(const uint8_t *)"T", 1, 7, (const uint8_t *)"co", 2, iw, 2, sp, 1};
    rs[0] = (range_resolve){(const uint8_t *)"U", 1, 0};
    range_batch b = {9, ws, 3, it, 1, rs, 1};
    return b;
}

static void test_round_trip(void **state)
{
    range_batch b = sample();
    mbuf m = MBUF_INIT;
    assert_int_equal(range_batch_encode(&b, &m), 0);
    range_batch_decoded d;
    assert_int_equal(range_batch_decode(m.data, m.len, &d), 0);
    assert_int_equal(d.batch.ts, 9);
    assert_int_equal(d.batch.nwrites, 3);
    assert_int_equal(d.batch.writes[1].del, 1);
    assert_int_equal(d.batch.writes[2].vlen, 0);
    assert_int_equal(d.batch.nprepares, 1);
    assert_int_equal(d.batch.prepares[0].nwrites, 2);
    assert_memory_equal(d.batch.prepares[0].writes[0].val, "4", 1);
    assert_int_equal(d.batch.prepares[0].nspans, 1);
    assert_int_equal(d.batch.prepares[0].spans[0].elen, 0);
    assert_int_equal(d.batch.nresolves, 1);
    /* Re-encoding gives the same bytes. */
    mbuf m2 = MBUF_INIT;
    assert_int_equal(range_batch_encode(&d.batch, &m2), 0);
    assert_int_equal(m2.len, m.len);
    assert_memory_equal(m2.data, m.data, m.len);
    /* Applying it works like the original (minus the unknown resolve). */
    range *r = th_create(&dir, "b.db", 1, "", "");
    d.batch.nresolves = 0;
    assert_int_equal(range_apply(r, &d.batch, 1, NULL), 0);
    assert_string_equal(th_get(r, "a", 9), "1");
    assert_string_equal(th_get(r, "c", 9), "");
    assert_null(th_get(r, "b", 9));
    range_close(r);
    range_batch_decoded_free(&d);
    mbuf_free(&m2);
    /* Every single-bit flip and every truncation is refused. */
    for (size_t i = 0; i < m.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            m.data[i] ^= (uint8_t)(1 << bit);
            assert_int_equal(range_batch_decode(m.data, m.len, &d), MERR_CORRUPT);
            m.data[i] ^= (uint8_t)(1 << bit);
        }
        assert_int_equal(range_batch_decode(m.data, i, &d), MERR_CORRUPT);
    }
    mbuf_free(&m);
}

static void test_random_bytes_with_valid_crc(void **state)
{
    uint8_t buf[300];
    unsigned s = 99;
    range_batch b = sample();
    mbuf good = MBUF_INIT;
    assert_int_equal(range_batch_encode(&b, &good), 0);
    int ok = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = 4 + (size_t)(iter % 120);
        if (iter % 2 && good.len <= sizeof(buf)) {
            /* Mutate a valid encoding, then fix the crc: deep parser paths. */
            n = good.len;
            memcpy(buf, good.data, n);
            s = s * 1103515245u + 12345u;
            buf[(s >> 8) % (n - 4)] = (uint8_t)(s >> 20);
        } else {
            for (size_t i = 0; i < n; i++) buf[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 16);
            buf[0] = 1;
        }
        mbe32_put(buf + n - 4, crc32c(0, buf, n - 4));
        range_batch_decoded d;
        int rc = range_batch_decode(buf, n, &d);
        assert_true(rc == 0 || rc == MERR_CORRUPT);
        if (rc == 0) {
            ok++;
            /* Whatever decodes must re-encode to the same bytes. */
            mbuf m = MBUF_INIT;
            assert_int_equal(range_batch_encode(&d.batch, &m), 0);
            assert_int_equal(m.len, n);
            assert_memory_equal(m.data, buf, n);
            mbuf_free(&m);
            range_batch_decoded_free(&d);
        }
    }
    assert_true(ok > 0);
    mbuf_free(&good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_random_bytes_with_valid_crc),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
