/* Logging: line format, escaping, level filtering, file output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"

static void test_format(void **state)
{
    (void)state;
    char line[512];
    /* 2026-11-26T04:31:03.000042Z */
    long long us = 1795667463LL * 1000000 + 42;
    size_t n = mlog_format(line, sizeof(line), us, MLOG_WARN, "rpc", "peer \"down\"\nnow",
                           "peer=127.0.0.1:9 n=3");
    assert_int_equal(n, strlen(line));
    assert_string_equal(line, "ts=2026-11-26T04:31:03.000042Z lvl=warn mod=rpc "
                              "msg=\"peer \\\"down\\\"\\nnow\" peer=127.0.0.1:9 n=3\n");
}

static void test_format_truncates_safely(void **state)
{
    (void)state;
    char line[64];
    char big[300];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    size_t n = mlog_format(line, sizeof(line), 0, MLOG_INFO, "m", big, big);
    assert_true(n < sizeof(line));
    assert_int_equal(strlen(line), n);
}

static int evaluated;
static int side_effect(void)
{
    evaluated++;
    return 1;
}

static void test_levels_and_file(void **state)
{
    (void)state;
    mlog_level l;
    assert_int_equal(mlog_parse_level("DEBUG", &l), 0);
    assert_int_equal(l, MLOG_DEBUG);
    assert_int_equal(mlog_parse_level("loud", &l), MERR_INVALID);

    char path[] = "/tmp/meridian-logtest-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(mlog_open_file(path), 0);
    mlog_set_stderr(0);
    mlog_set_level(MLOG_WARN);
    evaluated = 0;
    MLOG_I("t", "hidden", "x=%d", side_effect()); /* below level: args not evaluated */
    assert_int_equal(evaluated, 0);
    MLOG_E("t", "shown", "x=%d", side_effect());
    assert_int_equal(evaluated, 1);
    mlog_close_file();
    mlog_set_stderr(1);
    mlog_set_level(MLOG_INFO);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char buf[512] = {0};
    size_t got = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    unlink(path);
    assert_true(got > 0);
    assert_null(strstr(buf, "hidden"));
    assert_non_null(strstr(buf, "lvl=error mod=t msg=\"shown\" x=1\n"));
}

/* A tool's quieting raises the level; once a serving process pinned its
 * level, quieting (its own transaction client's connections) leaves it. */
static void test_quiet_and_pin(void **state)
{
    (void)state;
    mlog_set_level(MLOG_INFO);
    mlog_quiet(MLOG_ERROR);
    assert_int_equal(mlog_min_level, MLOG_ERROR);
    mlog_quiet(MLOG_WARN); /* never lowers it */
    assert_int_equal(mlog_min_level, MLOG_ERROR);
    mlog_pin_level(MLOG_DEBUG);
    mlog_quiet(MLOG_ERROR);
    assert_int_equal(mlog_min_level, MLOG_DEBUG);
    mlog_set_level(MLOG_INFO); /* an explicit setting still applies */
    assert_int_equal(mlog_min_level, MLOG_INFO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_truncates_safely),
        cmocka_unit_test(test_levels_and_file),
        cmocka_unit_test(test_quiet_and_pin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
