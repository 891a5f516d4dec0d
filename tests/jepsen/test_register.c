/* The register linearizability checker: hand-made valid and invalid
 * histories (stale reads, impossible cas, indeterminate ops that must or
 * must not have happened), the search bound, and randomized histories from
 * a simulated linearizable register, with and without an injected stale
 * read. */
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

static jp_verdict check_opts(const char *text, const jp_register_opts *o, jp_report *r)
{
    jp_history h;
    merr e = {0};
    if (jp_history_parse(text, strlen(text), &h, &e)) {
        fprintf(stderr, "parse: %s\n", e.msg);
        fail();
    }
    jp_report_init(r);
    assert_int_equal(jp_check_register(&h, o, r, &e), 0);
    jp_history_free(&h);
    return r->verdict;
}

static void expect(const char *text, jp_verdict want, const char *needle)
{
    jp_report r;
    jp_verdict v = check_opts(text, NULL, &r);
    mbuf_append_u8(&r.text, 0);
    if (v != want || (needle && !strstr((char *)r.text.data, needle))) {
        fprintf(stderr, "history:\n%sverdict %s, wanted %s\n%s", text, jp_verdict_name(v),
                jp_verdict_name(want), (char *)r.text.data);
        fail();
    }
    if (want == JP_INVALID) assert_true(jp_report_has(&r, JP_A_NONLINEAR));
    jp_report_free(&r);
}

static void test_valid_sequential_and_concurrent(void **state)
{
    (void)state;
    expect("", JP_VALID, NULL);
    expect("1 0 invoke read 1 _\n2 0 ok read 1 nil\n"
           "3 0 invoke write 1 5\n4 0 ok write 1 5\n"
           "5 0 invoke read 1 _\n6 0 ok read 1 5\n"
           "7 0 invoke cas 1 5 6\n8 0 ok cas 1 5 6\n"
           "9 0 invoke read 1 _\n10 0 ok read 1 6\n",
           JP_VALID, NULL);
    /* A read concurrent with a write may see either value... */
    expect("1 0 invoke write 1 5\n2 1 invoke read 1 _\n3 1 ok read 1 5\n4 0 ok write 1 5\n"
           "5 2 invoke read 1 _\n6 2 ok read 1 5\n",
           JP_VALID, NULL);
    expect("1 0 invoke write 1 5\n2 1 invoke read 1 _\n3 1 ok read 1 nil\n4 0 ok write 1 5\n",
           JP_VALID, NULL);
    /* ...and two concurrent writes may land in either order. */
    expect("1 0 invoke write 1 1\n2 1 invoke write 1 2\n3 0 ok write 1 1\n4 1 ok write 1 2\n"
           "5 2 invoke read 1 _\n6 2 ok read 1 1\n7 2 invoke read 1 _\n8 2 ok read 1 1\n",
           JP_VALID, NULL);
    /* Keys are independent. */
    expect("1 0 invoke write 1 1\n2 0 ok write 1 1\n3 0 invoke read 2 _\n4 0 ok read 2 nil\n",
           JP_VALID, NULL);
    /* Equal stamps are concurrent, the permissive reading. */
    expect("1 0 invoke write 1 1\n5 0 ok write 1 1\n5 1 invoke read 1 _\n6 1 ok read 1 nil\n",
           JP_VALID, NULL);
}

static void test_stale_read(void **state)
{
    (void)state;
    /* The classic: the write completed before the read began, yet the read
     * sees the old value. */
    expect("1 0 invoke write 1 5\n2 0 ok write 1 5\n"
           "3 0 invoke write 1 6\n4 0 ok write 1 6\n"
           "5 1 invoke read 1 _\n6 1 ok read 1 5\n",
           JP_INVALID,
           "line 6 (process 1 read 5) cannot be linearized after 2 of 3 ops; "
           "register states reachable there: 6");
    expect("1 0 invoke write 1 5\n2 0 ok write 1 5\n3 1 invoke read 1 _\n4 1 ok read 1 nil\n",
           JP_INVALID, "states reachable there: 5");
    /* Two reads of one process that go back in time. */
    expect("1 0 invoke write 1 1\n2 1 invoke read 1 _\n3 1 ok read 1 1\n"
           "4 1 invoke read 1 _\n5 1 ok read 1 nil\n9 0 ok write 1 1\n",
           JP_INVALID, NULL);
    /* A value nobody wrote. */
    expect("1 0 invoke read 1 _\n2 0 ok read 1 7\n", JP_INVALID, NULL);
}

static void test_cas(void **state)
{
    (void)state;
    expect("1 0 invoke write 1 1\n2 0 ok write 1 1\n3 0 invoke cas 1 2 3\n4 0 ok cas 1 2 3\n",
           JP_INVALID, NULL);
    expect("1 0 invoke cas 1 nil 3\n2 0 ok cas 1 nil 3\n3 1 invoke cas 1 nil 4\n"
           "4 1 ok cas 1 nil 4\n",
           JP_INVALID, NULL);
    /* A failed cas did not happen, whatever it says. */
    expect("1 0 invoke write 1 1\n2 0 ok write 1 1\n3 0 invoke cas 1 1 3\n4 0 fail cas 1 1 3\n"
           "5 0 invoke read 1 _\n6 0 ok read 1 1\n",
           JP_VALID, NULL);
    /* Two concurrent cas from the same value: only one can succeed. */
    expect("1 0 invoke write 1 1\n2 0 ok write 1 1\n3 0 invoke cas 1 1 2\n4 1 invoke cas 1 1 3\n"
           "5 0 ok cas 1 1 2\n6 1 ok cas 1 1 3\n",
           JP_INVALID, NULL);
}

static void test_indeterminate(void **state)
{
    (void)state;
    /* An info write may take effect long after it was invoked... */
    expect("1 0 invoke write 1 5\n2 0 info write 1 5\n"
           "3 1 invoke read 1 _\n4 1 ok read 1 nil\n"
           "5 1 invoke read 1 _\n6 1 ok read 1 5\n",
           JP_VALID, NULL);
    /* ...or never. */
    expect("1 0 invoke write 1 5\n2 0 info write 1 5\n3 1 invoke read 1 _\n4 1 ok read 1 nil\n",
           JP_VALID, NULL);
    /* A pending invocation at the end is indeterminate too. */
    expect("1 0 invoke write 1 5\n3 1 invoke read 1 _\n4 1 ok read 1 5\n", JP_VALID, NULL);
    /* An info cas that must have happened to explain a read. */
    expect("1 0 invoke write 1 1\n2 0 ok write 1 1\n3 1 invoke cas 1 1 2\n4 1 info cas 1 1 2\n"
           "5 2 invoke read 1 _\n6 2 ok read 1 2\n",
           JP_VALID, NULL);
    /* But not before it was invoked. */
    expect("1 1 invoke read 1 _\n2 1 ok read 1 5\n3 0 invoke write 1 5\n4 0 info write 1 5\n",
           JP_INVALID, NULL);
    /* Nor twice: once 5 is overwritten by a completed write, it is gone. */
    expect("1 0 invoke write 1 5\n2 0 info write 1 5\n3 1 invoke read 1 _\n4 1 ok read 1 5\n"
           "5 1 invoke write 1 6\n6 1 ok write 1 6\n7 1 invoke read 1 _\n8 1 ok read 1 5\n",
           JP_INVALID, NULL);
    /* Info reads constrain nothing. */
    expect("1 0 invoke write 1 5\n2 0 ok write 1 5\n3 1 invoke read 1 _\n4 1 info read 1 _\n",
           JP_VALID, NULL);
}

static void test_bounds_give_unknown(void **state)
{
    (void)state;
    /* Many concurrent writes and no constraining reads would be easy; a
     * step bound of 3 still cannot finish. */
    const char *text = "1 0 invoke write 1 1\n2 1 invoke write 1 2\n3 2 invoke write 1 3\n"
                       "4 0 ok write 1 1\n5 1 ok write 1 2\n6 2 ok write 1 3\n"
                       "7 0 invoke read 1 _\n8 0 ok read 1 2\n";
    jp_report r;
    jp_register_opts o = {.max_steps = 3};
    assert_int_equal(check_opts(text, &o, &r), JP_UNKNOWN);
    jp_report_free(&r);
    o = (jp_register_opts){.max_ops_per_key = 2};
    assert_int_equal(check_opts(text, &o, &r), JP_UNKNOWN);
    jp_report_free(&r);
    assert_int_equal(check_opts(text, NULL, &r), JP_VALID);
    jp_report_free(&r);
    /* An invalid key wins over an unknown one. */
    o = (jp_register_opts){.max_ops_per_key = 3};
    assert_int_equal(check_opts("1 0 invoke read 2 _\n2 0 ok read 2 9\n"
                                "1 1 invoke write 1 1\n2 2 invoke write 1 2\n3 3 invoke write 1 3\n"
                                "4 4 invoke read 1 _\n5 4 ok read 1 nil\n",
                                &o, &r),
                     JP_INVALID);
    jp_report_free(&r);
}

static void test_randomized(void **state)
{
    (void)state;
    int injected = 0;
    uint64_t first = 1, last = 60;
    jp_test_seeds(&first, &last);
    for (uint64_t seed = first; seed <= last; seed++) {
        int big = seed % 6 == 5; /* some long, very concurrent, on one key */
        jp_sim_opts o = {.seed = seed,
                         .processes = big ? 12 : 2 + (int)(seed % 5),
                         .ops = big ? 500 : 40 + (int)(seed % 4) * 30,
                         .keys = big ? 1 : 1 + (int)(seed % 3),
                         .p_info = (seed % 3) * 0.1,
                         .p_fail = (seed % 2) * 0.1};
        jp_history h;
        merr e = {0};
        assert_int_equal(jp_sim_register(&o, &h, &e), 0);
        jp_report r;
        jp_report_init(&r);
        assert_int_equal(jp_check_register(&h, NULL, &r, &e), 0);
        if (r.verdict != JP_VALID) {
            fprintf(stderr, "seed %llu: simulated history judged %s\n%.*s",
                    (unsigned long long)seed, jp_verdict_name(r.verdict), (int)r.text.len,
                    (char *)r.text.data);
            jp_history_write(&h, stderr, &e);
            fail();
        }
        jp_report_free(&r);
        if (jp_inject_stale_read(&h, seed) == 0) {
            injected++;
            jp_report_init(&r);
            assert_int_equal(jp_check_register(&h, NULL, &r, &e), 0);
            if (r.verdict != JP_INVALID) {
                fprintf(stderr, "seed %llu: injected stale read judged %s\n%.*s",
                        (unsigned long long)seed, jp_verdict_name(r.verdict), (int)r.text.len,
                        (char *)r.text.data);
                jp_history_write(&h, stderr, &e);
                fail();
            }
            jp_report_free(&r);
        }
        jp_history_free(&h);
    }
    if (jp_test_default_seeds()) assert_true(injected >= 50); /* they did happen */
}

/* ---- an oracle: brute force over every order of small histories ---- */

typedef struct bop {
    int f;         /* 0 read, 1 write, 2 cas */
    int a, b;      /* read/write value or cas old (0 = nil); cas new */
    int type;      /* JP_OK, JP_FAIL, JP_INFO */
    int call, ret; /* ret only for ok */
} bop;

/* Can the ops not in `placed` be linearized from register value `v`? */
static int brute(const bop *o, int n, unsigned placed, int v)
{
    int all_ok = 1;
    for (int i = 0; i < n; i++)
        if (!(placed & (1u << i)) && o[i].type == JP_OK) all_ok = 0;
    if (all_ok) return 1; /* remaining info ops never happened */
    for (int i = 0; i < n; i++) {
        if (placed & (1u << i)) continue;
        int ready = 1; /* every unplaced ok op that returned before i's call blocks it */
        for (int j = 0; j < n; j++)
            if (j != i && !(placed & (1u << j)) && o[j].type == JP_OK && o[j].ret < o[i].call)
                ready = 0;
        if (!ready) continue;
        int nv = v;
        if (o[i].f == 0 && o[i].a != v) continue;
        if (o[i].f == 1) nv = o[i].a;
        if (o[i].f == 2) {
            if (o[i].a != v) continue;
            nv = o[i].b;
        }
        if (brute(o, n, placed | (1u << i), nv)) return 1;
    }
    return 0;
}

static void test_against_brute_force(void **state)
{
    (void)state;
    int valid = 0, invalid = 0;
    uint64_t first = 1, last = 20000;
    jp_test_seeds(&first, &last);
    for (uint64_t iter = first; iter <= last; iter++) {
        uint64_t x = iter * 0x9e3779b97f4a7c15ULL;
        bop o[9];
        int n = 2 + (int)(iter % 8), m = 0;
        char text[2048];
        size_t len = 0;
        for (int i = 0; i < n; i++) {
            x = x * 6364136223846793005ULL + 1442695040888963407ULL;
            uint64_t r = x >> 20;
            bop *b = &o[i];
            b->f = (int)(r % 3);
            b->a = (int)((r >> 2) % 4); /* small domains: values repeat */
            b->b = 1 + (int)((r >> 4) % 3);
            if (b->f == 1 && b->a == 0) b->a = 1; /* writes are never nil */
            int t = (int)((r >> 6) % 10);
            b->type = t < 7 ? JP_OK : t < 9 ? JP_INFO : JP_FAIL;
            if (b->f == 0 && b->type != JP_OK) b->type = JP_OK; /* info reads are noise */
            b->call = (int)((r >> 10) % 12);
            b->ret = b->call + (int)((r >> 14) % 8);
            char val[16], val2[16];
            snprintf(val, sizeof(val), b->a ? "%d" : "nil", b->a);
            snprintf(val2, sizeof(val2), "%d", b->b);
            const char *fn = b->f == 0 ? "read" : b->f == 1 ? "write" : "cas";
            len += (size_t)snprintf(text + len, sizeof(text) - len, "%d %d invoke %s 1 %s%s%s\n",
                                    b->call, i, fn, b->f == 0 ? "_" : val, b->f == 2 ? " " : "",
                                    b->f == 2 ? val2 : "");
            if (b->type == JP_INFO) continue;
            len += (size_t)snprintf(text + len, sizeof(text) - len, "%d %d %s %s 1 %s%s%s\n",
                                    b->ret, i, b->type == JP_OK ? "ok" : "fail", fn, val,
                                    b->f == 2 ? " " : "", b->f == 2 ? val2 : "");
        }
        /* The oracle drops failed ops, as the model says. */
        bop kept[9];
        for (int i = 0; i < n; i++)
            if (o[i].type != JP_FAIL) kept[m++] = o[i];
        int want = brute(kept, m, 0, 0);
        jp_report r;
        jp_verdict v = check_opts(text, NULL, &r);
        if (v != (want ? JP_VALID : JP_INVALID)) {
            fprintf(stderr, "seed %llu: checker says %s, brute force says %s\n%s%.*s",
                    (unsigned long long)iter, jp_verdict_name(v), want ? "valid" : "invalid", text,
                    (int)r.text.len, (char *)r.text.data);
            fail();
        }
        jp_report_free(&r);
        want ? valid++ : invalid++;
    }
    if (jp_test_default_seeds()) assert_true(valid > 300 && invalid > 300); /* both exercised */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_sequential_and_concurrent),
        cmocka_unit_test(test_stale_read),
        cmocka_unit_test(test_cas),
        cmocka_unit_test(test_indeterminate),
        cmocka_unit_test(test_bounds_give_unknown),
        cmocka_unit_test(test_randomized),
        cmocka_unit_test(test_against_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
