/* TPC-C's random functions (client/tpcc_rand.c) and the transaction input
 * generator (tpcc_input_draw): bounds, the C_RUN delta rule, last names from
 * syllables, the customer permutation, ORIGINAL in 10% of the data, the mix
 * deck, and the remote / by-name / rollback shares. Seeded, so each run
 * checks the same numbers. */
#include "client/tpcc_int.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static void test_uniform_bounds(void **state)
{
    (void)state;
    tpcc_rng r;
    tpcc_rng_seed(&r, 1);
    int seen[11] = {0};
    for (int i = 0; i < 100000; i++) {
        int64_t v = tpcc_rand(&r, 5, 15);
        assert_true(v >= 5 && v <= 15);
        seen[v - 5]++;
    }
    for (int i = 0; i < 11; i++) assert_true(seen[i] > 8000 && seen[i] < 10200);
    for (int i = 0; i < 100000; i++) {
        double u = tpcc_rand_unit(&r);
        assert_true(u > 0 && u <= 1);
    }
}

/* NURand stays in [x, y] for each of the spec's three uses, reaches both
 * ends where the range is small enough to see them, and is skewed: its most
 * frequent value is far above the uniform share. */
static void test_nurand(void **state)
{
    (void)state;
    static const struct {
        int a;
        int64_t x, y;
    } cases[] = {{255, 0, 999}, {1023, 1, 3000}, {8191, 1, 100000}};
    tpcc_rng r;
    tpcc_rng_seed(&r, 2);
    for (size_t k = 0; k < 3; k++) {
        int64_t n = cases[k].y - cases[k].x + 1, lo = INT64_MAX, hi = INT64_MIN;
        int *count = calloc((size_t)n, sizeof *count), top = 0;
        assert_non_null(count);
        const int draws = 1000000;
        for (int i = 0; i < draws; i++) {
            int64_t v = tpcc_nurand(&r, cases[k].a, cases[k].x, cases[k].y, 123);
            assert_true(v >= cases[k].x && v <= cases[k].y);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            if (++count[v - cases[k].x] > top) top = count[v - cases[k].x];
        }
        if (n <= 3000) {
            assert_int_equal(lo, cases[k].x);
            assert_int_equal(hi, cases[k].y);
        }
        assert_true(top > 3 * (draws / n));
        free(count);
    }
}

/* 2.1.6.1: |C_RUN - C_LOAD| for C_LAST in [65, 119], neither 96 nor 112. */
static void test_c_run_rule(void **state)
{
    (void)state;
    tpcc_rng r;
    tpcc_rng_seed(&r, 3);
    tpcc_consts load = {0}, run = {0};
    load.c_last = 100;
    run.c_last = 196;
    assert_false(tpcc_consts_valid(&load, &run)); /* delta 96 */
    run.c_last = 212;
    assert_false(tpcc_consts_valid(&load, &run)); /* delta 112 */
    run.c_last = 164;
    assert_false(tpcc_consts_valid(&load, &run)); /* delta 64 */
    run.c_last = 165;
    assert_true(tpcc_consts_valid(&load, &run));
    run.c_last = 219;
    assert_true(tpcc_consts_valid(&load, &run));
    run.c_last = 220;
    assert_false(tpcc_consts_valid(&load, &run)); /* delta 120 */
    for (int c = 0; c <= 255; c++) {
        load.c_last = c;
        for (int i = 0; i < 20; i++) {
            tpcc_consts_run(&r, &load, &run);
            int d = abs(run.c_last - c);
            assert_true(d >= 65 && d <= 119 && d != 96 && d != 112);
            assert_true(run.c_id >= 0 && run.c_id <= 1023);
            assert_true(run.ol_i_id >= 0 && run.ol_i_id <= 8191);
        }
    }
    tpcc_consts_load(&r, &load);
    assert_true(load.c_last >= 0 && load.c_last <= 255);
}

static void test_last_names(void **state)
{
    (void)state;
    char b[16];
    tpcc_last_name(0, b);
    assert_string_equal(b, "BARBARBAR");
    tpcc_last_name(371, b); /* the spec's example */
    assert_string_equal(b, "PRICALLYOUGHT");
    tpcc_last_name(999, b);
    assert_string_equal(b, "EINGEINGEING");
    tpcc_last_name(40, b);
    assert_string_equal(b, "BARPRESBAR");
    size_t longest = 0;
    for (int n = 0; n < 1000; n++) {
        tpcc_last_name(n, b);
        if (strlen(b) > longest) longest = strlen(b);
    }
    assert_true(longest <= 15); /* fits C_LAST VARCHAR(16) */
}

static void test_permutation(void **state)
{
    (void)state;
    tpcc_rng r;
    tpcc_rng_seed(&r, 4);
    int p[TPCC_CUSTOMERS], seen[TPCC_CUSTOMERS + 1] = {0}, fixed = 0;
    tpcc_permutation(&r, p, TPCC_CUSTOMERS);
    for (int i = 0; i < TPCC_CUSTOMERS; i++) {
        assert_true(p[i] >= 1 && p[i] <= TPCC_CUSTOMERS);
        assert_int_equal(seen[p[i]]++, 0);
        fixed += p[i] == i + 1;
    }
    assert_true(fixed < 10); /* shuffled, not the identity */
}

static void test_strings(void **state)
{
    (void)state;
    tpcc_rng r;
    tpcc_rng_seed(&r, 5);
    char b[512];
    int orig = 0;
    for (int i = 0; i < 10000; i++) {
        tpcc_astring(&r, 8, 16, b);
        assert_true(strlen(b) >= 8 && strlen(b) <= 16);
        tpcc_nstring(&r, 16, 16, b);
        assert_int_equal(strlen(b), 16);
        assert_int_equal(strspn(b, "0123456789"), 16);
        tpcc_zip(&r, b);
        assert_int_equal(strlen(b), 9);
        assert_int_equal(strspn(b, "0123456789"), 9);
        assert_string_equal(b + 4, "11111");
        int o = tpcc_data_original(&r, b);
        assert_true(strlen(b) >= 26 && strlen(b) <= 50);
        assert_int_equal(o, strstr(b, "ORIGINAL") != NULL);
        orig += o;
    }
    assert_true(orig > 800 && orig < 1200); /* 10% */
}

static void test_deck(void **state)
{
    (void)state;
    tpcc_rng r;
    tpcc_rng_seed(&r, 6);
    tpcc_deck d;
    tpcc_deck_init(&d, &r);
    for (int round = 0; round < 5; round++) {
        int n[TPCC_NTYPES] = {0};
        for (int i = 0; i < 100; i++) n[tpcc_deck_draw(&d, &r)]++;
        assert_int_equal(n[TPCC_NEW_ORDER], 45);
        assert_int_equal(n[TPCC_PAYMENT], 43);
        assert_int_equal(n[TPCC_ORDER_STATUS], 4);
        assert_int_equal(n[TPCC_DELIVERY], 4);
        assert_int_equal(n[TPCC_STOCK_LEVEL], 4);
    }
}

static void test_inputs(void **state)
{
    (void)state;
    tpcc_terminal t = {.warehouses = 10, .w_id = 3, .d_id = 7};
    tpcc_rng_seed(&t.rng, 7);
    tpcc_consts load = {.c_last = 10};
    tpcc_consts_run(&t.rng, &load, &t.run);
    tpcc_input in;
    int remote = 0, by_name = 0, rbk = 0, remote_lines = 0, lines = 0;
    const int N = 20000;
    for (int i = 0; i < N; i++) {
        tpcc_input_draw(&t, TPCC_PAYMENT, &in);
        assert_int_equal(in.w_id, 3);
        remote += in.c_w_id != 3;
        by_name += in.c_last[0] != 0;
        assert_true(in.h_amount >= 1.0 && in.h_amount <= 5000.0);
        assert_true(in.c_id >= 1 && in.c_id <= TPCC_CUSTOMERS);
        tpcc_input_draw(&t, TPCC_NEW_ORDER, &in);
        assert_true(in.ol_cnt >= 5 && in.ol_cnt <= 15);
        for (int k = 0; k < in.ol_cnt; k++) {
            if (k) assert_true(in.i_ids[k - 1] <= in.i_ids[k]); /* lock order */
            assert_true(in.qty[k] >= 1 && in.qty[k] <= 10);
            remote_lines += in.supply_w[k] != 3;
            lines++;
        }
        if (in.rbk) {
            rbk++;
            assert_int_equal(in.i_ids[in.ol_cnt - 1], TPCC_ITEMS + 1);
        } else {
            assert_true(in.i_ids[in.ol_cnt - 1] <= TPCC_ITEMS);
        }
        tpcc_input_draw(&t, TPCC_STOCK_LEVEL, &in);
        assert_int_equal(in.d_id, 7);
        assert_true(in.threshold >= 10 && in.threshold <= 20);
        tpcc_input_draw(&t, TPCC_DELIVERY, &in);
        assert_true(in.carrier >= 1 && in.carrier <= 10);
    }
    assert_true(remote > N * 13 / 100 && remote < N * 17 / 100);   /* 15% */
    assert_true(by_name > N * 57 / 100 && by_name < N * 63 / 100); /* 60% */
    assert_true(rbk > N / 200 && rbk < N * 3 / 200);               /* 1% */
    assert_true(remote_lines > lines / 200 && remote_lines < lines * 3 / 200);
    /* One warehouse: nothing is remote. */
    t.warehouses = 1;
    t.w_id = 1;
    for (int i = 0; i < 2000; i++) {
        tpcc_input_draw(&t, TPCC_PAYMENT, &in);
        assert_int_equal(in.c_w_id, 1);
        tpcc_input_draw(&t, TPCC_NEW_ORDER, &in);
        for (int k = 0; k < in.ol_cnt; k++) assert_int_equal(in.supply_w[k], 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform_bounds), cmocka_unit_test(test_nurand),
        cmocka_unit_test(test_c_run_rule),     cmocka_unit_test(test_last_names),
        cmocka_unit_test(test_permutation),    cmocka_unit_test(test_strings),
        cmocka_unit_test(test_deck),           cmocka_unit_test(test_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
