/* Command-line parsing: flags, values, errors, dispatch. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/cli.h"
#include "common/err.h"

static void test_durations(void **state)
{
    (void)state;
    int64_t ns;
    assert_int_equal(cli_parse_duration("500ms", &ns), 0);
    assert_true(ns == 500000000LL);
    assert_int_equal(cli_parse_duration("1m30s", &ns), 0);
    assert_true(ns == 90000000000LL);
    assert_int_equal(cli_parse_duration("250us", &ns), 0);
    assert_true(ns == 250000);
    assert_int_equal(cli_parse_duration("1.5s", &ns), 0);
    assert_true(ns == 1500000000LL);
    assert_int_equal(cli_parse_duration("7ns", &ns), 0);
    assert_true(ns == 7);
    assert_int_equal(cli_parse_duration("2h", &ns), 0);
    assert_true(ns == 7200000000000LL);
    assert_int_equal(cli_parse_duration("5", &ns), MERR_INVALID); /* unit required */
    assert_int_equal(cli_parse_duration("", &ns), MERR_INVALID);
    assert_int_equal(cli_parse_duration("-3s", &ns), MERR_INVALID);
    assert_int_equal(cli_parse_duration("3 s", &ns), MERR_INVALID);
    assert_int_equal(cli_parse_duration("3x", &ns), MERR_INVALID);
    assert_int_equal(cli_parse_duration("99999999999h", &ns), MERR_INVALID);
}

static void test_sizes(void **state)
{
    (void)state;
    int64_t b;
    assert_int_equal(cli_parse_size("4096", &b), 0);
    assert_true(b == 4096);
    assert_int_equal(cli_parse_size("64MiB", &b), 0);
    assert_true(b == 64LL << 20);
    assert_int_equal(cli_parse_size("1GB", &b), 0);
    assert_true(b == 1000000000LL);
    assert_int_equal(cli_parse_size("2KiB", &b), 0);
    assert_true(b == 2048);
    assert_int_equal(cli_parse_size("12XB", &b), MERR_INVALID);
    assert_int_equal(cli_parse_size("", &b), MERR_INVALID);
    assert_int_equal(cli_parse_size("-1", &b), MERR_INVALID);
}

static void test_flags_and_positionals(void **state)
{
    (void)state;
    const char *store = NULL;
    int64_t n = 3, dur = 0, sz = 0;
    int verbose = 0;
    const cli_flag flags[] = {
        {"store", CLI_STR, &store, "DIR", "data dir"},
        {"n", CLI_INT, &n, NULL, "count"},
        {"duration", CLI_DURATION, &dur, NULL, "how long"},
        {"size", CLI_SIZE, &sz, NULL, "how big"},
        {"verbose", CLI_BOOL, &verbose, NULL, "chatty"},
        {0},
    };
    char *argv[] = {"cmd",       "a",          "--store", "/tmp/x",      "--n=17", "b",
                    "--verbose", "--duration", "2s",      "--size=1KiB", "--",     "--not-a-flag"};
    int argc = (int)(sizeof(argv) / sizeof(argv[0]));
    int npos = -1, done = -1;
    assert_int_equal(cli_parse("cmd", NULL, flags, argc, argv, &npos, &done), 0);
    assert_int_equal(done, 0);
    assert_string_equal(store, "/tmp/x");
    assert_true(n == 17);
    assert_true(verbose == 1);
    assert_true(dur == 2000000000LL);
    assert_true(sz == 1024);
    assert_int_equal(npos, 3);
    assert_string_equal(argv[1], "a");
    assert_string_equal(argv[2], "b");
    assert_string_equal(argv[3], "--not-a-flag");
}

static int parse_one(const cli_flag *flags, char *a1, char *a2)
{
    char *argv[] = {"cmd", a1, a2, NULL};
    int argc = a2 ? 3 : 2;
    int npos, done;
    int rc = cli_parse("cmd", NULL, flags, argc, argv, &npos, &done);
    assert_int_equal(done, 1);
    return rc;
}

static void test_flag_errors(void **state)
{
    (void)state;
    int64_t n = 0, dur = 0;
    int b = 0;
    const cli_flag flags[] = {
        {"n", CLI_INT, &n, NULL, "count"},
        {"timeout", CLI_DURATION, &dur, NULL, "t"},
        {"yes", CLI_BOOL, &b, NULL, "y"},
        {0},
    };
    assert_int_equal(parse_one(flags, "--nope", NULL), CLI_EXIT_USAGE);
    assert_int_equal(parse_one(flags, "-x", NULL), CLI_EXIT_USAGE);
    assert_int_equal(parse_one(flags, "--n", NULL), CLI_EXIT_USAGE);       /* missing value */
    assert_int_equal(parse_one(flags, "--n", "12abc"), CLI_EXIT_USAGE);    /* bad int */
    assert_int_equal(parse_one(flags, "--timeout", "10"), CLI_EXIT_USAGE); /* no unit */
    assert_int_equal(parse_one(flags, "--yes=1", NULL), CLI_EXIT_USAGE);   /* bool with value */
    assert_int_equal(parse_one(flags, "--help", NULL), 0);                 /* help: exit 0 */
}

static int ran_leaf;
static int leaf(int argc, char **argv)
{
    ran_leaf = argc;
    assert_string_equal(argv[0], "prog outer leaf");
    return 7;
}

static void test_dispatch(void **state)
{
    (void)state;
    static const cli_cmd subs[] = {{"leaf", "a leaf", leaf, NULL}, {0}};
    static const cli_cmd top[] = {{"outer", "nested", NULL, subs}, {0}};
    char *ok[] = {"prog", "outer", "leaf", "x"};
    assert_int_equal(cli_dispatch("prog", NULL, top, 4, ok), 7);
    assert_int_equal(ran_leaf, 2);
    char *unknown[] = {"prog", "nope"};
    assert_int_equal(cli_dispatch("prog", NULL, top, 2, unknown), CLI_EXIT_USAGE);
    char *unknown_sub[] = {"prog", "outer", "nope"};
    assert_int_equal(cli_dispatch("prog", NULL, top, 3, unknown_sub), CLI_EXIT_USAGE);
    char *none[] = {"prog"};
    assert_int_equal(cli_dispatch("prog", NULL, top, 1, none), CLI_EXIT_USAGE);
    char *help[] = {"prog", "--help"};
    assert_int_equal(cli_dispatch("prog", NULL, top, 2, help), 0);
}

static void test_format_duration(void **state)
{
    (void)state;
    char b[32];
    cli_format_duration(1250000, b, sizeof(b));
    assert_string_equal(b, "1.25ms");
    cli_format_duration(999, b, sizeof(b));
    assert_string_equal(b, "999ns");
    cli_format_duration(3000000000LL, b, sizeof(b));
    assert_string_equal(b, "3s");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_flags_and_positionals),
        cmocka_unit_test(test_flag_errors),
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_format_duration),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
