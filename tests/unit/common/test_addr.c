/* Address parsing: IPv4, IPv6, localhost, lists, and every malformed form. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common/addr.h"

static void roundtrip(const char *in, const char *want)
{
    struct sockaddr_storage ss;
    merr e = {0};
    assert_int_equal(maddr_parse(in, &ss, &e), 0);
    char buf[MADDR_STR_MAX];
    maddr_format((struct sockaddr *)&ss, buf, sizeof(buf));
    assert_string_equal(buf, want);
}

static void test_good(void **state)
{
    (void)state;
    roundtrip("127.0.0.1:26257", "127.0.0.1:26257");
    roundtrip("[::1]:9", "[::1]:9");
    roundtrip("localhost:80", "127.0.0.1:80");
    roundtrip("[fe80::1]:65535", "[fe80::1]:65535");
    struct sockaddr_storage ss;
    merr e = {0};
    assert_int_equal(maddr_parse_listen("127.0.0.1:0", &ss, &e), 0);     /* listeners may pick */
    assert_int_equal(maddr_parse("127.0.0.1:0", &ss, &e), MERR_INVALID); /* peers may not */
}

static void test_bad(void **state)
{
    (void)state;
    const char *bad[] = {
        "",          "127.0.0.1", "127.0.0.1:", "127.0.0.1:0",    "1.2.3.4:65536", "1.2.3.4:12x",
        "::1:80",    "[::1]80",   "[::1:80",    "example.com:80", ":80",           "[]:80",
        "1.2.3.4:-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct sockaddr_storage ss;
        merr e = {0};
        assert_int_equal(maddr_parse(bad[i], &ss, &e), MERR_INVALID);
        assert_true(strlen(e.msg) > 0);
    }
}

static void test_list(void **state)
{
    (void)state;
    struct sockaddr_storage ss[4];
    merr e = {0};
    assert_int_equal(maddr_parse_list("127.0.0.1:1,[::1]:2,localhost:3", ss, 4, &e), 3);
    char buf[MADDR_STR_MAX];
    maddr_format((struct sockaddr *)&ss[1], buf, sizeof(buf));
    assert_string_equal(buf, "[::1]:2");
    assert_true(maddr_parse_list("127.0.0.1:1,,127.0.0.1:2", ss, 4, &e) < 0);
    assert_true(maddr_parse_list("127.0.0.1:1,127.0.0.1:2", ss, 1, &e) < 0);
    assert_true(maddr_parse_list("", ss, 4, &e) < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good),
        cmocka_unit_test(test_bad),
        cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
