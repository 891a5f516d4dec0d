/* The Elle rw-register checker: hand-made histories per anomaly class,
 * valid ones, preconditions, and randomized simulated histories with and
 * without an injected aborted or stale read. */
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

#define BIT(a) (1u << (a))

static void expect_opts(const char *text, const jp_elle_opts *o, unsigned want, const char *needle)
{
    jp_history h;
    merr e = {0};
    if (jp_history_parse(text, strlen(text), &h, &e)) {
        fprintf(stderr, "parse: %s\n", e.msg);
        fail();
    }
    jp_report r;
    jp_report_init(&r);
    assert_int_equal(jp_check_rw_register(&h, o, &r, &e), 0);
    unsigned got = 0;
    for (int a = 0; a < JP_A__COUNT; a++)
        if (r.count[a]) got |= BIT(a);
    mbuf_append_u8(&r.text, 0);
    int ok = got == want && (want ? r.verdict == JP_INVALID : r.verdict == JP_VALID);
    if (!ok || (needle && !strstr((char *)r.text.data, needle))) {
        fprintf(stderr, "history:\n%sgot %#x (%s), wanted %#x\n%s", text, got,
                jp_verdict_name(r.verdict), want, (char *)r.text.data);
        fail();
    }
    jp_report_free(&r);
    jp_history_free(&h);
}

static void expect(const char *text, unsigned want, const char *needle)
{
    expect_opts(text, NULL, want, needle);
}

static void test_g0_g1c(void **state)
{
    (void)state;
    /* Each txn reads the other's write and then overwrites the key the other
     * read from: a ww cycle (G0), and with the wr edges, G1c. */
    expect("1 0 invoke txn [r 2 _] [w 2 1] [w 1 1]\n"
           "2 1 invoke txn [r 1 _] [w 1 2] [w 2 2]\n"
           "3 0 ok txn [r 2 2] [w 2 1] [w 1 1]\n"
           "4 1 ok txn [r 1 1] [w 1 2] [w 2 2]\n",
           BIT(JP_A_G0) | BIT(JP_A_G1C), "G0: T(line 3, p0) -ww[1]-> T(line 4, p1) -ww[2]->");
    expect("1 0 invoke txn [w 1 1] [r 2 _]\n2 1 invoke txn [w 2 1] [r 1 _]\n"
           "3 0 ok txn [w 1 1] [r 2 1]\n4 1 ok txn [w 2 1] [r 1 1]\n",
           BIT(JP_A_G1C), "-wr[");
}

static void test_g1a_g1b(void **state)
{
    (void)state;
    expect("1 0 invoke txn [w 1 1]\n2 0 fail txn [w 1 1]\n3 1 invoke txn [r 1 _]\n"
           "4 1 ok txn [r 1 1]\n",
           BIT(JP_A_G1A), "line 4 reads 1, written by the failed txn at line 1");
    /* An intermediate read also closes a cycle: the reader saw the state
     * before the writer's final write. */
    expect("1 0 invoke txn [w 1 1] [w 1 2]\n2 1 invoke txn [r 1 _]\n3 1 ok txn [r 1 1]\n"
           "4 0 ok txn [w 1 1] [w 1 2]\n",
           BIT(JP_A_G1B) | BIT(JP_A_GSINGLE), "line 3 reads 1, an intermediate write");
}

static void test_gsingle_g2(void **state)
{
    (void)state;
    /* Read skew. */
    expect("1 0 invoke txn [w 1 1] [w 2 1]\n2 1 invoke txn [r 1 _] [r 2 _]\n"
           "3 0 ok txn [w 1 1] [w 2 1]\n4 1 ok txn [r 1 nil] [r 2 1]\n",
           BIT(JP_A_GSINGLE), "T(line 4, p1) -rw[1]-> T(line 3, p0) -wr[2]-> T(line 4)");
    /* Write skew. */
    expect("1 0 invoke txn [r 1 _] [w 2 1]\n2 1 invoke txn [r 2 _] [w 1 1]\n"
           "3 0 ok txn [r 1 nil] [w 2 1]\n4 1 ok txn [r 2 nil] [w 1 1]\n",
           BIT(JP_A_G2), NULL);
    /* Lost update: with partial version orders it shows as two rw edges. */
    expect("1 0 invoke txn [w 1 1]\n2 0 ok txn [w 1 1]\n"
           "3 0 invoke txn [r 1 _] [w 1 2]\n4 1 invoke txn [r 1 _] [w 1 3]\n"
           "5 0 ok txn [r 1 1] [w 1 2]\n6 1 ok txn [r 1 1] [w 1 3]\n",
           BIT(JP_A_G2), NULL);
}

static void test_realtime_internal_garbage(void **state)
{
    (void)state;
    const char *stale = "1 0 invoke txn [w 1 1]\n2 0 ok txn [w 1 1]\n"
                        "3 1 invoke txn [r 1 _]\n4 1 ok txn [r 1 nil]\n";
    expect(stale, BIT(JP_A_REALTIME), "G-single-realtime");
    jp_elle_opts o = {.no_realtime = 1};
    expect_opts(stale, &o, 0, NULL);
    const char *ses = "1 0 invoke txn [w 1 1]\n2 0 ok txn [w 1 1]\n"
                      "3 0 invoke txn [r 1 _]\n4 0 ok txn [r 1 nil]\n";
    o.process_order = 1;
    expect_opts(ses, &o, BIT(JP_A_SESSION), "(G-single-session)");
    o.process_order = 0;
    expect("1 0 invoke txn [w 1 5] [r 1 _]\n2 0 ok txn [w 1 5] [r 1 nil]\n", BIT(JP_A_INTERNAL),
           "line 2 micro-op 2");
    expect("1 0 invoke txn [r 1 _] [r 1 _]\n2 0 ok txn [r 1 nil] [r 1 3]\n3 1 invoke txn [w 1 3]\n"
           "4 1 ok txn [w 1 3]\n",
           BIT(JP_A_INTERNAL), NULL);
    expect("1 0 invoke txn [r 1 _]\n2 0 ok txn [r 1 9]\n", BIT(JP_A_GARBAGE), "nobody wrote");
}

static void test_valid(void **state)
{
    (void)state;
    expect("", 0, NULL);
    expect("1 0 invoke txn [r 1 _] [w 1 1]\n2 0 ok txn [r 1 nil] [w 1 1]\n"
           "3 1 invoke txn [r 1 _] [w 1 2] [r 1 _]\n4 2 invoke txn [w 2 1]\n"
           "5 1 ok txn [r 1 1] [w 1 2] [r 1 2]\n6 2 info txn [w 2 1]\n"
           "7 3 invoke txn [w 2 2]\n8 3 fail txn [w 2 2]\n"
           "9 4 invoke txn [w 3 1]\n10 4 info txn [w 3 1]\n"
           "11 5 invoke txn [r 1 _] [r 2 _] [r 3 _]\n12 5 ok txn [r 1 2] [r 2 1] [r 3 nil]\n"
           "13 6 invoke txn [r 2 _]\n",
           0, NULL);
    /* A read concurrent with a write may miss it. */
    expect("1 0 invoke txn [w 1 1]\n2 1 invoke txn [r 1 _]\n3 1 ok txn [r 1 nil]\n"
           "4 0 ok txn [w 1 1]\n",
           0, NULL);
}

static void expect_error(const char *text, const char *want)
{
    jp_history h;
    merr e = {0};
    assert_int_equal(jp_history_parse(text, strlen(text), &h, &e), 0);
    jp_report r;
    jp_report_init(&r);
    assert_int_equal(jp_check_rw_register(&h, NULL, &r, &e), MERR_INVALID);
    if (!strstr(e.msg, want)) {
        fprintf(stderr, "error '%s', wanted '%s'\n", e.msg, want);
        fail();
    }
    jp_report_free(&r);
    jp_history_free(&h);
}

static void test_preconditions(void **state)
{
    (void)state;
    expect_error("1 0 invoke txn [w 1 1]\n2 0 ok txn [w 1 1]\n3 0 invoke txn [w 1 1]\n",
                 "lines 2 and 3 both write 1 to key 1");
    expect_error("1 0 invoke append 1 1\n", "line 1: rw-register histories have no [append]");
    expect_error("1 0 invoke txn [r 1 _]\n2 0 ok txn [r 1 [1]]\n",
                 "line 2: rw-register reads return one value");
}

static void randomized(int inject)
{
    int injected = 0;
    uint64_t first = 1, last = 80;
    jp_test_seeds(&first, &last);
    for (uint64_t seed = first; seed <= last; seed++) {
        jp_sim_opts o = {.seed = seed * 104729 + (uint64_t)inject,
                         .processes = 2 + (int)(seed % 6),
                         .ops = 30 + (int)(seed % 5) * 40,
                         .keys = 1 + (int)(seed % 4),
                         .p_info = (seed % 3) * 0.1,
                         .p_fail = (seed % 2) * 0.1};
        jp_history h;
        merr e = {0};
        assert_int_equal(jp_sim_rw_register(&o, &h, &e), 0);
        int done = 0;
        if (inject == 1) done = jp_inject_aborted_read(&h, seed) == 0;
        if (inject == 2) done = jp_inject_stale_nil_read(&h, seed) == 0;
        injected += done;
        if (inject && !done) {
            jp_history_free(&h);
            continue;
        }
        jp_report r;
        jp_report_init(&r);
        jp_elle_opts eo = {.process_order = (int)(seed % 2)}; /* implied by real time */
        assert_int_equal(jp_check_rw_register(&h, &eo, &r, &e), 0);
        if (r.verdict != (inject ? JP_INVALID : JP_VALID)) {
            fprintf(stderr, "seed %llu (inject %d): judged %s\n%.*s", (unsigned long long)o.seed,
                    inject, jp_verdict_name(r.verdict), (int)r.text.len, (char *)r.text.data);
            jp_history_write(&h, stderr, &e);
            fail();
        }
        jp_report_free(&r);
        jp_history_free(&h);
    }
    if (inject && jp_test_default_seeds()) assert_true(injected >= 60); /* they did happen */
}

static void test_randomized_valid(void **state)
{
    (void)state;
    randomized(0);
}

static void test_randomized_aborted_read(void **state)
{
    (void)state;
    randomized(1);
}

static void test_randomized_stale_read(void **state)
{
    (void)state;
    randomized(2);
}

/* ---- an oracle: strict serializability by brute force ---- */

#define OR_KEYS 4

typedef struct orreg {
    int64_t v;
    int has;
} orreg;

static int oracle(const jp_history *h, unsigned placed, const orreg *st)
{
    int done = 1;
    for (size_t i = 0; i < h->ncalls; i++)
        if (!(placed & (1u << i)) && h->calls[i].type == JP_OK) done = 0;
    if (done) return 1;
    for (size_t i = 0; i < h->ncalls; i++) {
        const jp_call *c = &h->calls[i];
        if ((placed & (1u << i)) || c->type == JP_FAIL) continue;
        int ready = 1;
        for (size_t j = 0; j < h->ncalls; j++)
            if (j != i && !(placed & (1u << j)) && h->calls[j].type == JP_OK &&
                h->calls[j].t_done < c->t_inv)
                ready = 0;
        if (!ready) continue;
        orreg ns[OR_KEYS];
        memcpy(ns, st, sizeof(ns));
        const jp_op *op = jp_call_op(h, c);
        int legal = 1;
        for (size_t k = 0; k < op->nmops && legal; k++) {
            const jp_mop *m = &op->mops[k];
            orreg *g = &ns[m->key];
            if (m->kind == JP_MOP_W)
                *g = (orreg){m->val.i, 1};
            else if (c->type == JP_OK && m->val.kind == JP_V_NIL)
                legal = !g->has;
            else if (c->type == JP_OK && m->val.kind == JP_V_INT)
                legal = g->has && g->v == m->val.i;
        }
        if (legal && oracle(h, placed | (1u << i), ns)) return 1;
    }
    return 0;
}

static void mutate(jp_history *h, uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t r = *x >> 16;
    if (!h->ncalls) return;
    jp_call *c = &h->calls[r % h->ncalls];
    if (c->type != JP_OK) return;
    jp_op *op = &h->ops[c->done];
    jp_mop *m = &op->mops[(r >> 8) % op->nmops];
    int isread = m->kind == JP_MOP_R;
    switch ((r >> 16) % 5) {
    case 0: /* an older value (values are handed out in increasing order) */
        if (isread && m->val.kind == JP_V_INT && m->val.i > 1) m->val.i--;
        break;
    case 1: /* nothing there */
        if (isread) m->val.kind = JP_V_NIL;
        break;
    case 2: op->type = JP_FAIL; break;
    case 3: op->time = h->ops[c->inv].time; break;
    default: break;
    }
    assert_int_equal(jp_history_index(h, NULL), 0);
}

static void test_against_brute_force(void **state)
{
    (void)state;
    int valid = 0, caught = 0, missed = 0;
    uint64_t first = 1, last = 3000;
    jp_test_seeds(&first, &last);
    for (uint64_t seed = first; seed <= last; seed++) {
        uint64_t x = seed * 0xbf58476d1ce4e5b9ULL;
        jp_sim_opts o = {.seed = seed,
                         .processes = 2 + (int)(seed % 3),
                         .ops = 3 + (int)(seed % 5),
                         .keys = 1 + (int)(seed % 3),
                         .p_info = 0.15,
                         .p_fail = 0.1};
        jp_history h;
        merr e = {0};
        assert_int_equal(jp_sim_rw_register(&o, &h, &e), 0);
        mutate(&h, &x);
        orreg st[OR_KEYS];
        memset(st, 0, sizeof(st));
        int ser = oracle(&h, 0, st);
        jp_report r;
        jp_report_init(&r);
        jp_elle_opts eo = {.process_order = (int)(seed % 2)}; /* implied by real time */
        int rc = jp_check_rw_register(&h, &eo, &r, &e);
        assert_int_equal(rc, 0);
        if (ser && r.verdict != JP_VALID) { /* a false alarm is never acceptable */
            fprintf(stderr, "seed %llu: strictly serializable, but judged %s\n%.*s",
                    (unsigned long long)seed, jp_verdict_name(r.verdict), (int)r.text.len,
                    (char *)r.text.data);
            jp_history_write(&h, stderr, &e);
            fail();
        }
        if (ser)
            valid++;
        else if (r.verdict == JP_INVALID)
            caught++;
        else
            missed++; /* partial version orders hide some anomalies */
        jp_report_free(&r);
        jp_history_free(&h);
    }
    fprintf(stderr, "brute force: %d valid, %d invalid caught, %d invalid missed\n", valid, caught,
            missed);
    if (jp_test_default_seeds()) assert_true(valid > 1000 && caught > 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_g0_g1c),
        cmocka_unit_test(test_g1a_g1b),
        cmocka_unit_test(test_gsingle_g2),
        cmocka_unit_test(test_realtime_internal_garbage),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_preconditions),
        cmocka_unit_test(test_randomized_valid),
        cmocka_unit_test(test_randomized_aborted_read),
        cmocka_unit_test(test_randomized_stale_read),
        cmocka_unit_test(test_against_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
