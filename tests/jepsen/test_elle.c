/* The Elle list-append checker: one hand-made history per anomaly class it
 * claims to find (and exactly that class), valid histories with concurrency,
 * failures and indeterminate txns, and randomized histories from a simulated
 * strictly serializable store, with and without an injected anomaly. */
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

/* Checks text and wants exactly the anomaly classes in `want` (a bitmask of
 * jp_anomaly); `needle`, if given, must appear in the explanation. */
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
    assert_int_equal(jp_check_list_append(&h, o, &r, &e), 0);
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

static void test_g0(void **state)
{
    (void)state;
    expect("1 0 invoke txn [append 1 1] [append 2 1]\n"
           "2 1 invoke txn [append 1 2] [append 2 2]\n"
           "3 2 invoke txn [r 1 nil] [r 2 nil]\n"
           "4 0 ok txn [append 1 1] [append 2 1]\n"
           "5 1 ok txn [append 1 2] [append 2 2]\n"
           "6 2 ok txn [r 1 [1 2]] [r 2 [2 1]]\n",
           BIT(JP_A_G0), "T(line 4, p0) -ww[1]-> T(line 5, p1) -ww[2]-> T(line 4)");
}

static void test_g1a(void **state)
{
    (void)state;
    expect("1 0 invoke txn [append 1 1]\n2 0 fail txn [append 1 1]\n"
           "3 1 invoke txn [r 1 nil]\n4 1 ok txn [r 1 [1]]\n",
           BIT(JP_A_G1A), "line 4 reads 1, appended by the failed txn at line 1");
}

static void test_g1b(void **state)
{
    (void)state;
    expect("1 0 invoke txn [append 1 1] [append 1 2]\n"
           "2 1 invoke txn [r 1 nil]\n3 1 ok txn [r 1 [1]]\n"
           "4 0 ok txn [append 1 1] [append 1 2]\n",
           BIT(JP_A_G1B), "line 3 reads 1, an intermediate append of the txn at line 4");
}

static void test_g1c(void **state)
{
    (void)state;
    expect("1 0 invoke txn [append 1 1] [r 2 nil]\n"
           "2 1 invoke txn [append 2 1] [r 1 nil]\n"
           "3 0 ok txn [append 1 1] [r 2 [1]]\n"
           "4 1 ok txn [append 2 1] [r 1 [1]]\n",
           BIT(JP_A_G1C), "-wr[");
}

static void test_gsingle(void **state)
{
    (void)state;
    /* Read skew: T2 sees T1's append to 2 but not its append to 1. */
    expect("1 0 invoke txn [append 1 1] [append 2 1]\n"
           "2 1 invoke txn [r 1 nil] [r 2 nil]\n"
           "3 2 invoke txn [r 1 nil]\n"
           "4 0 ok txn [append 1 1] [append 2 1]\n"
           "5 1 ok txn [r 1 []] [r 2 [1]]\n"
           "6 2 ok txn [r 1 [1]]\n",
           BIT(JP_A_GSINGLE), "T(line 5, p1) -rw[1]-> T(line 4, p0) -wr[2]-> T(line 5)");
}

static void test_g2(void **state)
{
    (void)state;
    /* Write skew: each reads what the other appends to, before it does. */
    expect("1 0 invoke txn [r 1 nil] [append 2 1]\n"
           "2 1 invoke txn [r 2 nil] [append 1 1]\n"
           "3 2 invoke txn [r 1 nil] [r 2 nil]\n"
           "4 0 ok txn [r 1 []] [append 2 1]\n"
           "5 1 ok txn [r 2 []] [append 1 1]\n"
           "6 2 ok txn [r 1 [1]] [r 2 [1]]\n",
           BIT(JP_A_G2), "-rw[1]->");
}

static void test_realtime(void **state)
{
    (void)state;
    /* Serializable (T2 before T1) but T1 had completed before T2 began. */
    const char *h = "1 0 invoke txn [append 1 1]\n2 0 ok txn [append 1 1]\n"
                    "3 1 invoke txn [r 1 nil]\n4 1 ok txn [r 1 []]\n"
                    "5 2 invoke txn [r 1 nil]\n6 2 ok txn [r 1 [1]]\n";
    expect(h, BIT(JP_A_REALTIME),
           "(G-single-realtime) T(line 2, p0) -rt-> T(line 4, p1) -rw[1]-> T(line 2)");
    jp_elle_opts o = {.no_realtime = 1};
    expect_opts(h, &o, 0, NULL);
    /* One process that does not see its own append: a session anomaly,
     * found with process order even without real time. */
    const char *ses = "1 0 invoke txn [append 1 1]\n2 0 ok txn [append 1 1]\n"
                      "3 0 invoke txn [r 1 nil]\n4 0 ok txn [r 1 []]\n"
                      "5 1 invoke txn [r 1 nil]\n6 1 ok txn [r 1 [1]]\n";
    expect_opts(ses, &o, 0, NULL);
    o.process_order = 1;
    expect_opts(ses, &o, BIT(JP_A_SESSION),
                "(G-single-session) T(line 2, p0) -po-> T(line 4, p0) -rw[1]-> T(line 2)");
    /* Nothing is ordered after an indeterminate txn of the process. */
    expect_opts("1 0 invoke txn [append 1 1]\n2 0 info txn [append 1 1]\n"
                "3 0 invoke txn [r 1 nil]\n4 0 ok txn [r 1 []]\n"
                "5 1 invoke txn [r 1 nil]\n6 1 ok txn [r 1 [1]]\n",
                &o, 0, NULL);
    /* The same through a chain of real-time edges (the frontier keeps only
     * the transitive reduction, the cycle must still be found). */
    expect("1 0 invoke txn [append 1 1]\n2 0 ok txn [append 1 1]\n"
           "3 3 invoke txn [append 5 1]\n4 3 ok txn [append 5 1]\n"
           "5 1 invoke txn [r 1 nil]\n6 1 ok txn [r 1 []]\n"
           "7 2 invoke txn [r 1 nil]\n8 2 ok txn [r 1 [1]]\n",
           BIT(JP_A_REALTIME), NULL);
}

/* Real-time cycles of each shape (the report names the shape, "(G0-realtime)"
 * etc.): each history is serializable and only real time makes it invalid. */
static void test_realtime_shapes(void **state)
{
    (void)state;
    jp_elle_opts o = {.no_realtime = 1};
    /* G0: the later append comes first in the list. */
    const char *g0 = "1 0 invoke txn [append 1 1]\n2 0 ok txn [append 1 1]\n"
                     "3 1 invoke txn [append 1 2]\n4 1 ok txn [append 1 2]\n"
                     "5 2 invoke txn [r 1 nil]\n6 2 ok txn [r 1 [2 1]]\n";
    expect(g0, BIT(JP_A_REALTIME), "(G0-realtime) ");
    expect_opts(g0, &o, 0, NULL);
    /* G1c: a read of an append that only begins after the read ended. */
    const char *g1c = "1 0 invoke txn [r 1 nil]\n2 0 ok txn [r 1 [1]]\n"
                      "3 1 invoke txn [append 1 1]\n4 1 ok txn [append 1 1]\n";
    expect(g1c, BIT(JP_A_REALTIME), "(G1c-realtime) ");
    expect_opts(g1c, &o, 0, NULL);
    /* G2: T1 -rw-> T2 -rw-> T3 -rt-> T1, each read concurrent with the
     * append it misses (no single stale read). */
    const char *g2 = "1 1 invoke txn [append 1 1] [r 2 nil]\n"
                     "2 2 invoke txn [append 2 1]\n3 2 ok txn [append 2 1]\n"
                     "4 0 invoke txn [r 1 nil]\n5 0 ok txn [r 1 []]\n"
                     "6 1 ok txn [append 1 1] [r 2 []]\n"
                     "7 3 invoke txn [r 1 nil] [r 2 nil]\n8 3 ok txn [r 1 [1]] [r 2 [1]]\n";
    expect(g2, BIT(JP_A_REALTIME), "(G2-realtime) ");
    expect_opts(g2, &o, 0, NULL);
}

static void test_lost_and_direct(void **state)
{
    (void)state;
    /* 1 was acknowledged, then a read that began later shows only 2. */
    expect("1 0 invoke txn [append 1 1]\n2 0 ok txn [append 1 1]\n"
           "3 0 invoke txn [append 1 2]\n4 0 ok txn [append 1 2]\n"
           "5 1 invoke txn [r 1 nil]\n6 1 ok txn [r 1 [2]]\n",
           BIT(JP_A_LOST),
           "1 appended by line 2 (acknowledged) is missing from the read at line 6");
    expect("1 0 invoke append 1 1\n2 1 invoke append 1 2\n3 0 ok append 1 1\n4 1 ok append 1 2\n"
           "5 2 invoke txn [r 1 nil]\n6 3 invoke txn [r 1 nil]\n"
           "7 2 ok txn [r 1 [1 2]]\n8 3 ok txn [r 1 [2 1]]\n",
           BIT(JP_A_INCOMPATIBLE), "is not a prefix of");
    /* A value read only by the incompatible read is not lost. */
    expect("1 0 invoke append 1 1\n2 0 ok append 1 1\n3 0 invoke append 1 2\n4 0 ok append 1 2\n"
           "5 0 invoke append 1 3\n6 0 ok append 1 3\n"
           "7 1 invoke txn [r 1 nil]\n8 1 ok txn [r 1 [1 2]]\n"
           "9 2 invoke txn [r 1 nil]\n10 2 ok txn [r 1 [3]]\n",
           BIT(JP_A_INCOMPATIBLE), "line 10 is not a prefix of the read at line 8");
    expect("1 0 invoke append 1 1\n2 0 ok append 1 1\n3 1 invoke txn [r 1 nil]\n"
           "4 1 ok txn [r 1 [1 1]]\n",
           BIT(JP_A_DUPLICATE), "line 4 reads 1 twice");
    expect("1 1 invoke txn [r 1 nil]\n2 1 ok txn [r 1 [9]]\n", BIT(JP_A_GARBAGE),
           "nobody appended");
    expect("1 0 invoke txn [append 1 5] [r 1 nil]\n2 0 ok txn [append 1 5] [r 1 []]\n",
           BIT(JP_A_INTERNAL), "line 2 micro-op 2");
    expect("1 0 invoke txn [r 1 nil] [r 1 nil]\n2 1 invoke append 1 3\n3 1 ok append 1 3\n"
           "4 0 ok txn [r 1 []] [r 1 [3]]\n",
           BIT(JP_A_INTERNAL) | BIT(JP_A_GSINGLE), NULL); /* a non-repeatable read is both */
}

static void test_valid_histories(void **state)
{
    (void)state;
    expect("", 0, NULL);
    /* Concurrent appends read in an order; own reads see own appends; a
     * failed append nobody read; an info append that was read (committed) and
     * one that was not; a pending txn at the end. */
    expect("1 0 invoke txn [append 1 1] [r 1 nil]\n"
           "2 1 invoke append 1 2\n"
           "3 2 invoke txn [append 2 1]\n"
           "4 3 invoke append 1 3\n"
           "5 0 ok txn [append 1 1] [r 1 [1]]\n"
           "6 1 ok append 1 2\n"
           "7 2 info txn [append 2 1]\n"
           "8 3 fail append 1 3\n"
           "9 4 invoke txn [append 3 1]\n"
           "10 4 info txn [append 3 1]\n"
           "11 5 invoke txn [r 1 nil] [r 2 nil] [r 3 nil] [append 1 4] [r 1 nil]\n"
           "12 5 ok txn [r 1 [1 2]] [r 2 [1]] [r 3 []] [append 1 4] [r 1 [1 2 4]]\n"
           "13 6 invoke txn [r 1 nil]\n",
           0, NULL);
    /* A read concurrent with an append may miss it. */
    expect("1 0 invoke append 1 1\n2 1 invoke txn [r 1 nil]\n3 1 ok txn [r 1 []]\n"
           "4 0 ok append 1 1\n5 1 invoke txn [r 1 nil]\n6 1 ok txn [r 1 [1]]\n",
           0, NULL);
}

static void test_preconditions(void **state)
{
    (void)state;
    const char *dup = "1 0 invoke append 1 1\n2 0 ok append 1 1\n"
                      "3 0 invoke append 1 1\n4 0 ok append 1 1\n";
    jp_history h;
    merr e = {0};
    assert_int_equal(jp_history_parse(dup, strlen(dup), &h, &e), 0);
    jp_report r;
    jp_report_init(&r);
    assert_int_equal(jp_check_list_append(&h, NULL, &r, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "lines 2 and 4 both append 1 to key 1"));
    jp_report_free(&r);
    jp_history_free(&h);
}

static void randomized(int inject)
{
    int injected = 0;
    uint64_t first = 1, last = 80;
    jp_test_seeds(&first, &last);
    for (uint64_t seed = first; seed <= last; seed++) {
        jp_sim_opts o = {.seed = seed * 7919 + (uint64_t)inject,
                         .processes = 2 + (int)(seed % 6),
                         .ops = 30 + (int)(seed % 5) * 40,
                         .keys = 1 + (int)(seed % 4),
                         .p_info = (seed % 3) * 0.1,
                         .p_fail = (seed % 2) * 0.1};
        jp_history h;
        merr e = {0};
        assert_int_equal(jp_sim_list_append(&o, &h, &e), 0);
        int done = 0;
        if (inject == 1) done = jp_inject_lost_append(&h, seed) == 0;
        if (inject == 2) done = jp_inject_stale_list_read(&h, seed) == 0;
        injected += done;
        if (inject && !done) {
            jp_history_free(&h);
            continue;
        }
        jp_report r;
        jp_report_init(&r);
        jp_elle_opts eo = {.process_order = (int)(seed % 2)}; /* implied by real time */
        assert_int_equal(jp_check_list_append(&h, &eo, &r, &e), 0);
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

static void test_randomized_lost_append(void **state)
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
#define OR_MAX  64

typedef struct orlist {
    int64_t v[OR_MAX];
    size_t n;
} orlist;

/* Can the calls not in `placed` be ordered, from lists `st`, respecting
 * real time, so that every ok read sees the lists? Info txns may be left
 * out; failed ones never happen. */
static int oracle(const jp_history *h, unsigned placed, const orlist *st)
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
        orlist ns[OR_KEYS];
        memcpy(ns, st, sizeof(ns));
        const jp_op *op = jp_call_op(h, c);
        int legal = 1;
        for (size_t k = 0; k < op->nmops && legal; k++) {
            const jp_mop *m = &op->mops[k];
            orlist *l = &ns[m->key];
            if (m->kind == JP_MOP_APPEND) {
                if (l->n < OR_MAX) l->v[l->n++] = m->val.i;
            } else if (c->type == JP_OK && m->val.kind != JP_V_NONE) {
                size_t n = m->val.kind == JP_V_LIST ? m->val.n : 0;
                legal = n == l->n && (n == 0 || !memcmp(m->val.items, l->v, n * 8));
            }
        }
        if (legal && oracle(h, placed | (1u << i), ns)) return 1;
    }
    return 0;
}

/* Mutates one thing in a simulated history, or nothing. */
static void mutate(jp_history *h, uint64_t *x)
{
    *x = *x * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t r = *x >> 16;
    if (!h->ncalls) return;
    jp_call *c = &h->calls[r % h->ncalls];
    if (c->type != JP_OK) return;
    jp_op *op = &h->ops[c->done];
    jp_mop *m = &op->mops[(r >> 8) % op->nmops];
    int isread = m->kind == JP_MOP_R && m->val.kind == JP_V_LIST;
    switch ((r >> 16) % 5) {
    case 0: /* truncate a read */
        if (isread && m->val.n) m->val.n--;
        break;
    case 1: /* swap the last two elements */
        if (isread && m->val.n >= 2) {
            int64_t t = m->val.items[m->val.n - 1];
            m->val.items[m->val.n - 1] = m->val.items[m->val.n - 2];
            m->val.items[m->val.n - 2] = t;
        }
        break;
    case 2: /* it failed after all */ op->type = JP_FAIL; break;
    case 3: /* it completed at once */ op->time = h->ops[c->inv].time; break;
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
        uint64_t x = seed * 0x9e3779b97f4a7c15ULL;
        jp_sim_opts o = {.seed = seed,
                         .processes = 2 + (int)(seed % 3),
                         .ops = 3 + (int)(seed % 5),
                         .keys = 1 + (int)(seed % 3),
                         .p_info = 0.15,
                         .p_fail = 0.1};
        jp_history h;
        merr e = {0};
        assert_int_equal(jp_sim_list_append(&o, &h, &e), 0);
        mutate(&h, &x);
        orlist st[OR_KEYS];
        memset(st, 0, sizeof(st));
        int ser = oracle(&h, 0, st);
        jp_report r;
        jp_report_init(&r);
        jp_elle_opts eo = {.process_order = (int)(seed % 2)}; /* implied by real time */
        assert_int_equal(jp_check_list_append(&h, &eo, &r, &e), 0);
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
            missed++; /* Elle cannot see everything (e.g. unread appends) */
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
        cmocka_unit_test(test_g0),
        cmocka_unit_test(test_g1a),
        cmocka_unit_test(test_g1b),
        cmocka_unit_test(test_g1c),
        cmocka_unit_test(test_gsingle),
        cmocka_unit_test(test_g2),
        cmocka_unit_test(test_realtime),
        cmocka_unit_test(test_realtime_shapes),
        cmocka_unit_test(test_lost_and_direct),
        cmocka_unit_test(test_valid_histories),
        cmocka_unit_test(test_preconditions),
        cmocka_unit_test(test_randomized_valid),
        cmocka_unit_test(test_randomized_lost_append),
        cmocka_unit_test(test_randomized_stale_read),
        cmocka_unit_test(test_against_brute_force),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
