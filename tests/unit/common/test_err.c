/* Error codes: names, messages, wrapping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>

#include "common/err.h"

static void test_names_roundtrip(void **state)
{
    (void)state;
    for (int c = 0; c >= MERR_MIN_CODE; c--) {
        const char *n = merr_name(c);
        assert_string_not_equal(n, "UNKNOWN");
        int back = 1;
        assert_true(merr_from_name(n, &back));
        assert_int_equal(back, c);
        assert_string_not_equal(merr_str(c), "unknown error");
    }
    assert_string_equal(merr_name(-999), "UNKNOWN");
    int x;
    assert_false(merr_from_name("NO_SUCH", &x));
}

static void test_set_and_wrap(void **state)
{
    (void)state;
    merr e = {0};
    assert_string_equal(merr_msg(&e), "ok");
    int rc = merr_set(&e, MERR_IO, "write %s", "seg.log");
    assert_int_equal(rc, MERR_IO);
    assert_string_equal(merr_msg(&e), "write seg.log");
    assert_int_equal(merr_wrap(&e, "log store %d", 7), MERR_IO);
    assert_string_equal(merr_msg(&e), "log store 7: write seg.log");
    merr_clear(&e);
    assert_int_equal(e.code, 0);
    /* A code without a message reads as the code's default text. */
    e.code = MERR_NOT_LEADER;
    assert_string_equal(merr_msg(&e), "not the leader");
    /* NULL error objects are allowed at call sites that only want codes. */
    assert_int_equal(merr_set(NULL, MERR_BUSY, "x"), MERR_BUSY);
}

static void test_long_message_truncates(void **state)
{
    (void)state;
    merr e = {0};
    char big[2000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    merr_set(&e, MERR_INVALID, "%s", big);
    assert_int_equal(strlen(e.msg), MERR_MSG_MAX - 1);
    merr_wrap(&e, "ctx");
    assert_int_equal(strlen(e.msg), MERR_MSG_MAX - 1);
    assert_memory_equal(e.msg, "ctx: aaa", 8);
}

static void test_errno_mapping(void **state)
{
    (void)state;
    assert_int_equal(merr_from_errno(ENOSPC), MERR_NOSPACE);
    assert_int_equal(merr_from_errno(ENOMEM), MERR_NOMEM);
    assert_int_equal(merr_from_errno(ENOENT), MERR_NOTFOUND);
    assert_int_equal(merr_from_errno(EIO), MERR_IO);
    assert_int_equal(merr_from_errno(0), MERR_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_roundtrip),
        cmocka_unit_test(test_set_and_wrap),
        cmocka_unit_test(test_long_message_truncates),
        cmocka_unit_test(test_errno_mapping),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
