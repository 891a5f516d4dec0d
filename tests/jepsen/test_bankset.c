/* The bank and set checkers: hand-made histories with a broken total, a
 * negative balance, lost, unexpected and recovered inserts; valid ones with
 * concurrency and indeterminate ops; randomized simulated histories with and
 * without an injected anomaly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/jepsen/jp_check.h"
#include "tests/jepsen/jp_sim.h"
#include "tests/jepsen/test_seeds.h"

static jp_history parse(const char *text)
{
    jp_history h;
    merr e = {0};
    if (jp_history_parse(text, strlen(text), &h, &e)) {
        fprintf(stderr, "parse: %s\n", e.msg);
        fail();
    }
    return h;
}

static void check_text(const jp_report *r, const char *needle)
{
    if (!needle) return;
    if (!r->text.len || !memmem(r->text.data, r->text.len, needle, strlen(needle))) {
        fprintf(stderr, "wanted '%s' in:\n%.*s", needle, (int)r->text.len, (char *)r->text.data);
        fail();
    }
}

static void bank(const char *text, const jp_bank_opts *o, jp_verdict want, jp_anomaly a,
                 const char *needle)
{
    jp_history h = parse(text);
    jp_report r;
    jp_report_init(&r);
    merr e = {0};
    assert_int_equal(jp_check_bank(&h, o, &r, &e), 0);
    assert_int_equal(r.verdict, want);
    if (want == JP_INVALID) assert_true(jp_report_has(&r, a));
    check_text(&r, needle);
    jp_report_free(&r);
    jp_history_free(&h);
}

static const char *bank_ok = "1 0 invoke transfer 0 1 30\n"
                             "2 1 invoke balances\n"
                             "3 0 ok transfer 0 1 30\n"
                             "4 1 ok balances [0 70] [1 30] [2 0]\n"
                             "5 2 invoke transfer 1 2 5\n"
                             "6 2 info transfer 1 2 5\n"
                             "7 3 invoke transfer 2 0 50\n"
                             "8 3 fail transfer 2 0 50\n"
                             "9 1 invoke balances\n"
                             "10 1 ok balances [0 70] [1 25] [2 5]\n"
                             "11 4 invoke balances\n"
                             "12 4 info balances\n";

static void test_bank(void **state)
{
    (void)state;
    jp_bank_opts total = {.has_total = 1, .total = 100};
    bank(bank_ok, &total, JP_VALID, 0, "summary: 2 snapshot reads, total 100");
    bank(bank_ok, NULL, JP_VALID, 0, "(from the earliest read)");
    total.total = 99;
    bank(bank_ok, &total, JP_INVALID, JP_A_WRONG_TOTAL, "line 4: balances sum to 100, not 99");
    /* A read that sees money in flight. */
    bank("1 0 invoke transfer 0 1 30\n2 1 invoke balances\n3 0 ok transfer 0 1 30\n"
         "4 1 ok balances [0 70] [1 30]\n5 1 invoke balances\n6 1 ok balances [0 70] [1 0]\n",
         NULL, JP_INVALID, JP_A_WRONG_TOTAL, "line 6 (final read): balances sum to 70, not 100");
    const char *neg = "1 0 invoke balances\n2 0 ok balances [0 110] [1 -10]\n";
    bank(neg, NULL, JP_INVALID, JP_A_NEGATIVE, "line 2: account 1 has balance -10");
    jp_bank_opts negok = {.negative_ok = 1};
    bank(neg, &negok, JP_VALID, 0, NULL);
    bank("1 0 invoke balances\n2 0 ok balances [0 50] [0 50]\n", NULL, JP_INVALID, JP_A_DUPLICATE,
         "account 0 read twice");
    bank("1 0 invoke balances\n2 0 ok balances [0 50] [1 50] [2 0]\n"
         "3 0 invoke balances\n4 0 ok balances [0 50] [1 50]\n",
         NULL, JP_INVALID, JP_A_UNEXPECTED, "line 4: reads other accounts than the earliest read");
    bank("1 0 invoke transfer 0 1 3\n2 0 ok transfer 0 1 3\n", NULL, JP_UNKNOWN, 0,
         "no successful balances read");
    bank("1 0 invoke balances\n2 0 ok balances [0 9223372036854775807] [1 1]\n", &total, JP_INVALID,
         JP_A_WRONG_TOTAL, "overflow");
}

static void set(const char *text, jp_verdict want, unsigned classes, const char *needle)
{
    jp_history h = parse(text);
    jp_report r;
    jp_report_init(&r);
    merr e = {0};
    assert_int_equal(jp_check_set(&h, &r, &e), 0);
    unsigned got = 0;
    for (int a = 0; a < JP_A__COUNT; a++)
        if (r.count[a]) got |= 1u << a;
    if (r.verdict != want || got != classes) {
        fprintf(stderr, "history:\n%sgot %s %#x, wanted %s %#x\n%.*s", text,
                jp_verdict_name(r.verdict), got, jp_verdict_name(want), classes, (int)r.text.len,
                (char *)r.text.data);
        fail();
    }
    check_text(&r, needle);
    jp_report_free(&r);
    jp_history_free(&h);
}

static void test_set(void **state)
{
    (void)state;
    /* ok inserts, a failed one absent, an info one present (recovered), an
     * info one absent, one acknowledged while the final read ran. */
    set("1 0 invoke insert 1\n2 0 ok insert 1\n"
        "3 1 invoke insert 2\n4 1 fail insert 2\n"
        "5 2 invoke insert 3\n6 2 info insert 3\n"
        "7 3 invoke insert 4\n8 3 info insert 4\n"
        "9 4 invoke insert 5\n"
        "10 5 invoke members _\n11 4 ok insert 5\n12 5 ok members [1 3]\n",
        JP_VALID, (1u << JP_A_RECOVERED) | (1u << JP_A_INDETERMINATE),
        "summary: 2 acknowledged inserts, 0 lost, final read of 2");
    set("1 0 invoke insert 1\n2 0 ok insert 1\n3 0 invoke insert 2\n4 0 ok insert 2\n"
        "5 1 invoke members _\n6 1 ok members [2]\n",
        JP_INVALID, 1u << JP_A_LOST,
        "1: acknowledged (line 2) before the final read (line 6) began, but absent");
    /* Only the final read counts; an earlier read may be partial. */
    set("1 0 invoke insert 1\n2 1 invoke members _\n3 1 ok members []\n4 0 ok insert 1\n"
        "5 1 invoke members _\n6 1 ok members [1]\n",
        JP_VALID, 0, NULL);
    set("1 0 invoke insert 1\n2 0 fail insert 1\n3 1 invoke members _\n4 1 ok members [1 7]\n",
        JP_INVALID, 1u << JP_A_UNEXPECTED,
        "7 is in the final read (line 4) but was never inserted");
    set("1 0 invoke insert 1\n2 0 ok insert 1\n3 1 invoke members _\n4 1 ok members [1 1]\n",
        JP_INVALID, 1u << JP_A_DUPLICATE, NULL);
    set("1 0 invoke insert 1\n2 0 ok insert 1\n", JP_UNKNOWN, 0, "no successful members read");
}

static void test_randomized(void **state)
{
    (void)state;
    int nbank = 0, nset = 0;
    uint64_t first = 1, last = 60;
    jp_test_seeds(&first, &last);
    for (uint64_t seed = first; seed <= last; seed++) {
        jp_sim_opts o = {.seed = seed,
                         .processes = 2 + (int)(seed % 6),
                         .ops = 30 + (int)(seed % 5) * 40,
                         .keys = 2 + (int)(seed % 4),
                         .p_info = (seed % 3) * 0.1,
                         .p_fail = (seed % 2) * 0.1,
                         .total = 50 + (int64_t)seed};
        merr e = {0};
        for (int w = 0; w < 2; w++) {
            jp_history h;
            assert_int_equal(w ? jp_sim_set(&o, &h, &e) : jp_sim_bank(&o, &h, &e), 0);
            jp_bank_opts bo = {.has_total = 1, .total = o.total};
            for (int inject = 0; inject < 2; inject++) {
                if (inject) {
                    int rc = w ? jp_inject_lost_insert(&h, seed) : jp_inject_bank_skew(&h, seed);
                    if (rc) break;
                    if (w)
                        nset++;
                    else
                        nbank++;
                }
                jp_report r;
                jp_report_init(&r);
                assert_int_equal(w ? jp_check_set(&h, &r, &e) : jp_check_bank(&h, &bo, &r, &e), 0);
                jp_verdict want = inject ? JP_INVALID : JP_VALID;
                if (r.verdict != want) {
                    fprintf(stderr, "seed %llu (%s, inject %d): judged %s\n%.*s",
                            (unsigned long long)seed, w ? "set" : "bank", inject,
                            jp_verdict_name(r.verdict), (int)r.text.len, (char *)r.text.data);
                    jp_history_write(&h, stderr, &e);
                    fail();
                }
                jp_report_free(&r);
            }
            jp_history_free(&h);
        }
    }
    if (jp_test_default_seeds()) assert_true(nbank >= 50 && nset >= 50); /* they did happen */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bank),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_randomized),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
