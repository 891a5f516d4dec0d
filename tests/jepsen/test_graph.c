/* Dependency graphs: components, typed shortest cycles, long cycles, the
 * fallback that reports every cyclic component, and deep graphs that would
 * overflow a recursive Tarjan. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/jepsen/jp_graph.h"

/* A history of n trivial ok calls, so reports can name lines. */
static jp_history calls_history(int n)
{
    jp_history h;
    merr e = {0};
    jp_history_init(&h);
    for (int i = 0; i < n; i++) {
        jp_op op = {.time = 2 * i,
                    .process = 0,
                    .type = JP_INVOKE,
                    .f = JP_F_INSERT,
                    .v1 = {.kind = JP_V_INT, .i = i}};
        assert_int_equal(jp_history_add(&h, &op, &e), 0);
        op.time++;
        op.type = JP_OK;
        assert_int_equal(jp_history_add(&h, &op, &e), 0);
    }
    assert_int_equal(jp_history_index(&h, &e), 0);
    return h;
}

static void test_components_and_cycles(void **state)
{
    (void)state;
    jp_graph g;
    jp_graph_init(&g, 6);
    /* 0 -ww-> 1 -rw-> 2 -wr-> 0, and 2 -rw-> 3 -rw-> 0; 4 -> 5 is acyclic. */
    assert_int_equal(jp_graph_add(&g, 0, 1, JP_E_WW, 1), 0);
    assert_int_equal(jp_graph_add(&g, 1, 2, JP_E_RW, 1), 0);
    assert_int_equal(jp_graph_add(&g, 2, 0, JP_E_WR, 2), 0);
    assert_int_equal(jp_graph_add(&g, 2, 3, JP_E_RW, 3), 0);
    assert_int_equal(jp_graph_add(&g, 3, 0, JP_E_RW, 3), 0);
    assert_int_equal(jp_graph_add(&g, 4, 5, JP_E_WW, 1), 0);
    assert_int_equal(jp_graph_add(&g, 4, 5, JP_E_WW, 1), 0); /* duplicate */
    assert_int_equal(jp_graph_add(&g, 3, 3, JP_E_WW, 1), 0); /* self-loop: ignored */
    assert_int_equal(jp_graph_build(&g), 0);
    assert_int_equal(g.ne, 6);
    assert_int_equal(g.comp[0], g.comp[1]);
    assert_int_equal(g.comp[0], g.comp[3]);
    assert_true(g.comp[4] != g.comp[5]);
    assert_true(g.comp[4] != g.comp[0]);
    size_t first = SIZE_MAX, path[8];
    for (size_t i = 0; i < g.ne; i++)
        if (g.e[i].from == 1 && g.e[i].to == 2) first = i;
    /* One rw: 1 -rw-> 2 -wr-> 0 -ww-> 1. */
    assert_int_equal(jp_graph_cycle(&g, first, JP_E_WW | JP_E_WR, 1, path, 8), 3);
    assert_int_equal(path[0], first);
    assert_int_equal(g.e[path[1]].kind, JP_E_WR);
    /* Two or more: 1 -rw-> 2 -rw-> 3 -rw-> 0 -ww-> 1. */
    assert_int_equal(jp_graph_cycle(&g, first, JP_E_ALL, 2, path, 8), 4);
    /* Not with ww alone, and not within a bound of 2 edges. */
    assert_int_equal(jp_graph_cycle(&g, first, JP_E_WW, 1, path, 8), 0);
    assert_int_equal(jp_graph_cycle(&g, first, JP_E_ALL, 0, path, 2), 0);
    jp_graph_free(&g);
}

static void test_long_cycle_and_fallback(void **state)
{
    (void)state;
    int n = 100;
    jp_history h = calls_history(n);
    jp_graph g;
    jp_graph_init(&g, n);
    for (int i = 0; i < n; i++) assert_int_equal(jp_graph_add(&g, i, (i + 1) % n, JP_E_WW, 7), 0);
    assert_int_equal(jp_graph_build(&g), 0);
    jp_report r;
    jp_report_init(&r);
    assert_int_equal(jp_graph_report_cycles(&g, &h, 256, &r), 0);
    assert_int_equal(r.count[JP_A_G0], 1);
    assert_non_null(memmem(r.text.data, r.text.len, "(100 edges in all)", 18));
    jp_report_free(&r);
    /* With no start tried, the fallback still reports the component. */
    jp_report_init(&r);
    assert_int_equal(jp_graph_report_cycles(&g, &h, 0, &r), 0);
    assert_int_equal(r.verdict, JP_INVALID);
    assert_int_equal(r.count[JP_A_G0], 1);
    jp_report_free(&r);
    jp_graph_free(&g);
    jp_history_free(&h);
}

static void test_deep_graph(void **state)
{
    (void)state;
    int n = 200000; /* a recursive Tarjan would need 200,000 frames */
    jp_graph g;
    jp_graph_init(&g, n);
    for (int i = 0; i + 1 < n; i++) assert_int_equal(jp_graph_add(&g, i, i + 1, JP_E_RT, 0), 0);
    assert_int_equal(jp_graph_build(&g), 0);
    assert_int_equal(g.ncomp, n);
    jp_graph_free(&g);
    jp_graph_init(&g, n);
    for (int i = 0; i < n; i++) assert_int_equal(jp_graph_add(&g, i, (i + 1) % n, JP_E_RT, 0), 0);
    assert_int_equal(jp_graph_build(&g), 0);
    assert_int_equal(g.ncomp, 1);
    jp_graph_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_components_and_cycles),
        cmocka_unit_test(test_long_cycle_and_fallback),
        cmocka_unit_test(test_deep_graph),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
