/* Node configuration: defaults, locality parsing, every rejected value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>

#include "common/mtime.h"
#include "server/node_config.h"

static void test_locality(void **state)
{
    (void)state;
    node_locality l;
    merr e = {0};
    assert_int_equal(node_locality_parse("region=us-east1,zone=b", &l, &e), 0);
    assert_string_equal(l.region, "us-east1");
    assert_string_equal(l.zone, "b");
    assert_int_equal(node_locality_parse("zone=c,region=eu", &l, &e), 0);
    assert_string_equal(l.region, "eu");
    const char *bad[] = {"",
                         "region=a",
                         "zone=a",
                         "region=A,zone=b",
                         "region=a,zone=",
                         "region=a,zone=b,rack=1",
                         "region=a,region=b,zone=c",
                         "region a,zone=b",
                         "region=a;b,zone=c"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        merr_clear(&e);
        assert_int_equal(node_locality_parse(bad[i], &l, &e), MERR_INVALID);
        assert_non_null(strstr(e.msg, "locality"));
    }
}

static void test_validate(void **state)
{
    (void)state;
    node_config c;
    merr e = {0};
    node_config_init(&c);
    assert_int_equal(node_config_validate(&c, &e), MERR_INVALID); /* no store */
    assert_non_null(strstr(e.msg, "--store"));
    c.store = "/tmp/x";
    assert_int_equal(node_config_validate(&c, &e), MERR_INVALID); /* no listen */
    c.listen = "127.0.0.1:0";
    c.join = "127.0.0.1:26257,[::1]:26258";
    assert_int_equal(node_config_validate(&c, &e), 0);
    assert_int_equal(c.njoin, 2);
    assert_string_equal(c.loc.region, "local");
    assert_true(c.max_clock_uncertainty_ns == 500 * MTIME_MS);

    struct {
        const char **field;
        const char *value;
        const char *needle;
    } bad[] = {
        {&c.listen, "nowhere", "--listen"},       {&c.join, "127.0.0.1", "--join"},
        {&c.http_listen, "x:y", "--http-listen"}, {&c.advertise, "127.0.0.1:0", "--advertise"},
        {&c.locality, "zone=a", "--locality"},    {&c.clock_source, "sundial", "--clock-source"},
        {&c.log_level, "shouty", "--log-level"},  {&c.chrony_socket, "rel.sock", "--chrony-socket"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        node_config_init(&c);
        c.store = "/tmp/x";
        c.listen = "127.0.0.1:1";
        *bad[i].field = bad[i].value;
        merr_clear(&e);
        assert_int_equal(node_config_validate(&c, &e), MERR_INVALID);
        assert_non_null(strstr(e.msg, bad[i].needle));
    }
    node_config_init(&c);
    c.store = "/tmp/x";
    c.listen = "127.0.0.1:1";
    c.max_clock_uncertainty_ns = 0;
    assert_int_equal(node_config_validate(&c, &e), MERR_INVALID);
    /* One chronyd per emulated region: the port and socket are the node's. */
    node_config_init(&c);
    c.store = "/tmp/x";
    c.listen = "127.0.0.1:1";
    assert_int_equal(c.chrony_port, 323);
    c.chrony_port = 70000;
    assert_int_equal(node_config_validate(&c, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "--chrony-port"));
    c.chrony_port = 11125;
    c.chrony_socket = "/run/region-a/chronyd.sock";
    assert_int_equal(node_config_validate(&c, &e), 0);
    /* The result buffer per connection: 4 MiB unless given, never tiny. */
    assert_true(c.max_result_buffer == 4 << 20);
    c.max_result_buffer = 1024;
    assert_int_equal(node_config_validate(&c, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "--max-result-buffer"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locality),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
