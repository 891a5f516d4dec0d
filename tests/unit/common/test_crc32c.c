/* CRC-32C: known vectors, hardware == software, incremental == one-shot. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "common/crc32c.h"

static void test_vectors(void **state)
{
    (void)state;
    assert_int_equal(crc32c(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xE3069283u);
    assert_int_equal(crc32c(0, "", 0), 0);
    uint8_t zeros[32] = {0};
    assert_int_equal(crc32c(0, zeros, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
    uint8_t ones[32];
    memset(ones, 0xff, 32);
    assert_int_equal(crc32c(0, ones, 32), 0x62A8AB43u);
}

static void test_hw_matches_sw_and_incremental(void **state)
{
    (void)state;
    uint8_t buf[4099];
    unsigned s = 12345;
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)((s = s * 1103515245u + 12345u) >> 16);
    for (size_t off = 0; off < 9; off++) {
        for (size_t len = 0; len + off <= sizeof(buf); len += 97) {
            uint32_t a = crc32c(0, buf + off, len);
            assert_int_equal(a, crc32c_sw(0, buf + off, len));
            size_t cut = len / 3;
            uint32_t b = crc32c(crc32c(0, buf + off, cut), buf + off + cut, len - cut);
            assert_int_equal(a, b);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_hw_matches_sw_and_incremental),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
