/* Record and descriptor codecs: exact round trips, and malformed input is
 * MERR_CORRUPT (never a crash or an out-of-bounds read — ASan checks). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "sql/record.h"
#include "sql/sql_int.h"

static void sample(sql_rec_field *f, size_t *n)
{
    static const uint8_t blob[] = {0, 1, 0, 255};
    size_t k = 0;
    f[k].col = 0, f[k++].v = mkey_null(0);
    f[k].col = 1, f[k++].v = mkey_int(INT64_MIN, 0);
    f[k].col = 2, f[k++].v = mkey_int(INT64_MAX, 0);
    f[k].col = 3, f[k++].v = mkey_int(-1, 0);
    f[k].col = 5, f[k++].v = mkey_real(-0.0, 0);
    f[k].col = 6, f[k++].v = mkey_real(DBL_MIN / 4, 0);
    f[k].col = 7, f[k++].v = mkey_text("", 0, 0);
    f[k].col = 9, f[k++].v = mkey_text("héllo", strlen("héllo"), 0);
    f[k].col = 40, f[k++].v = mkey_blob(blob, sizeof(blob), 0);
    f[k].col = 100000, f[k++].v = mkey_int(0, 0);
    *n = k;
}

static void test_round_trip(void **state)
{
    (void)state;
    sql_rec_field in[16], out[16];
    size_t n, m;
    mbuf b = MBUF_INIT;
    sample(in, &n);
    assert_int_equal(sql_rec_encode(in, n, &b), 0);
    assert_int_equal(sql_rec_decode(b.data, b.len, out, 16, &m, NULL), 0);
    assert_int_equal(m, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(out[i].col, in[i].col);
        assert_int_equal(out[i].v.type, in[i].v.type);
        switch (in[i].v.type) {
        case MKEY_INT: assert_true(out[i].v.i == in[i].v.i); break;
        case MKEY_REAL:
            assert_memory_equal(&out[i].v.d, &in[i].v.d, sizeof(double)); /* -0.0 kept */
            break;
        case MKEY_TEXT:
        case MKEY_BLOB:
            assert_int_equal(out[i].v.n, in[i].v.n);
            if (in[i].v.n) assert_memory_equal(out[i].v.p, in[i].v.p, in[i].v.n);
            break;
        }
    }
    /* A NULL costs one byte after the format byte. */
    mbuf_reset(&b);
    sql_rec_field one = {.col = 3, .v = mkey_null(0)};
    assert_int_equal(sql_rec_encode(&one, 1, &b), 0);
    assert_int_equal(b.len, 2);
    /* The empty record. */
    mbuf_reset(&b);
    assert_int_equal(sql_rec_encode(NULL, 0, &b), 0);
    assert_int_equal(sql_rec_decode(b.data, b.len, out, 16, &m, NULL), 0);
    assert_int_equal(m, 0);
    mbuf_free(&b);
}

static void test_encode_rejects(void **state)
{
    (void)state;
    mbuf b = MBUF_INIT;
    sql_rec_field f[2] = {{.col = 2, .v = mkey_int(1, 0)}, {.col = 2, .v = mkey_int(2, 0)}};
    assert_int_equal(sql_rec_encode(f, 2, &b), MERR_INVALID);
    assert_int_equal(b.len, 0);
    f[1].col = 3;
    f[1].v.type = 9;
    assert_int_equal(sql_rec_encode(f, 2, &b), MERR_INVALID);
    assert_int_equal(b.len, 0);
    mbuf_free(&b);
}

static void test_malformed(void **state)
{
    (void)state;
    sql_rec_field in[16], out[16];
    size_t n, m;
    mbuf b = MBUF_INIT;
    merr e = {0};
    sample(in, &n);
    assert_int_equal(sql_rec_encode(in, n, &b), 0);
    /* Every strict prefix either decodes to fewer fields (cut at a field
     * boundary) or is corrupt. Copies make ASan catch any over-read. */
    for (size_t len = 0; len < b.len; len++) {
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, b.data, len);
        int rc = sql_rec_decode(p, len, out, 16, &m, &e);
        assert_true(rc == 0 || rc == MERR_CORRUPT);
        if (rc == 0) assert_true(m < n);
        if (len == 0) assert_int_equal(rc, MERR_CORRUPT);
        free(p);
    }
    static const uint8_t bad_format[] = {2, 0x08};
    assert_int_equal(sql_rec_decode(bad_format, 2, out, 16, &m, &e), MERR_CORRUPT);
    static const uint8_t bad_type[] = {1, 0x0d}; /* col 1, type 5 */
    assert_int_equal(sql_rec_decode(bad_type, 2, out, 16, &m, &e), MERR_CORRUPT);
    static const uint8_t out_of_order[] = {1, 0x10, 0x08};
    assert_int_equal(sql_rec_decode(out_of_order, 3, out, 16, &m, &e), MERR_CORRUPT);
    static const uint8_t long_text[] = {1, 0x0b, 0x7f, 'a'};
    assert_int_equal(sql_rec_decode(long_text, 4, out, 16, &m, &e), MERR_CORRUPT);
    static const uint8_t huge_len[] = {1,    0x0b, 0xff, 0xff, 0xff, 0xff,
                                       0xff, 0xff, 0xff, 0xff, 0x7f};
    assert_int_equal(sql_rec_decode(huge_len, sizeof(huge_len), out, 16, &m, &e), MERR_CORRUPT);
    static const uint8_t bad_varint[] = {1,    0x80, 0x80, 0x80, 0x80, 0x80,
                                         0x80, 0x80, 0x80, 0x80, 0x80};
    assert_int_equal(sql_rec_decode(bad_varint, sizeof(bad_varint), out, 16, &m, &e), MERR_CORRUPT);
    assert_int_equal(sql_rec_decode(b.data, b.len, out, 3, &m, &e), MERR_TOOBIG);
    /* Random bytes: any outcome but a crash. */
    uint64_t x = 88172645463325252ULL;
    for (int iter = 0; iter < 20000; iter++) {
        uint8_t buf[24];
        size_t len = (size_t)(iter % 24);
        for (size_t i = 0; i < len; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            buf[i] = (uint8_t)x;
        }
        if (len) buf[0] = 1;
        int rc = sql_rec_decode(buf, len, out, 16, &m, &e);
        assert_true(rc == 0 || rc == MERR_CORRUPT || rc == MERR_TOOBIG);
    }
    mbuf_free(&b);
}

static void test_descriptor(void **state)
{
    (void)state;
    sql_desc_index ix[2] = {{7, "i1", "CREATE INDEX i1 ON t(a)", SQL_IDX_PUBLIC},
                            {2, "sqlite_autoindex_t_1", NULL, SQL_IDX_PUBLIC}};
    sql_desc d = {.kind = SQL_OBJ_TABLE,
                  .id = 123,
                  .next_index_id = 8,
                  .name = "t",
                  .sql = "CREATE TABLE t(a, b UNIQUE)",
                  .idx = ix,
                  .nidx = 2};
    sql_desc back;
    mbuf b = MBUF_INIT;
    merr e = {0};
    assert_int_equal(sql_desc_encode(&d, &b), 0);
    assert_int_equal(sql_desc_decode(b.data, b.len, &back, &e), 0);
    assert_int_equal(back.id, 123);
    assert_int_equal(back.next_index_id, 8);
    assert_string_equal(back.sql, d.sql);
    assert_int_equal(back.nidx, 2);
    assert_string_equal(back.idx[0].sql, ix[0].sql);
    assert_null(back.idx[1].sql);
    assert_int_equal(back.idx[1].id, 2);
    sql_desc_free(&back);
    for (size_t len = 0; len < b.len; len++) {
        uint8_t *p = malloc(len ? len : 1);
        memcpy(p, b.data, len);
        assert_int_equal(sql_desc_decode(p, len, &back, &e), MERR_CORRUPT);
        free(p);
    }
    mbuf_append_u8(&b, 0); /* trailing garbage */
    assert_int_equal(sql_desc_decode(b.data, b.len, &back, &e), MERR_CORRUPT);

    /* Index states: a trailer only when some index is not PUBLIC, so an
     * all-public descriptor is byte for byte what older nodes wrote. */
    size_t plain = b.len - 1;
    ix[0].state = SQL_IDX_WRITE_ONLY;
    mbuf_reset(&b);
    assert_int_equal(sql_desc_encode(&d, &b), 0);
    assert_int_equal(b.len, plain + 3); /* tag, one state per index */
    assert_int_equal(sql_desc_decode(b.data, b.len, &back, &e), 0);
    assert_int_equal(back.idx[0].state, SQL_IDX_WRITE_ONLY);
    assert_int_equal(back.idx[1].state, SQL_IDX_PUBLIC);
    sql_desc_free(&back);
    assert_int_equal(sql_desc_decode(b.data, b.len - 1, &back, &e), MERR_CORRUPT);
    b.data[b.len - 2] = 2; /* no such state */
    assert_int_equal(sql_desc_decode(b.data, b.len, &back, &e), MERR_CORRUPT);
    mbuf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_descriptor),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
