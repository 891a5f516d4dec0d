/* The load-median sampler (placement/pd_loadkey.h): the median follows the
 * requests, not the keys; it lies strictly inside the span; a single hot key
 * (or a nearly single one) gives none; windows roll; the reservoir stays
 * bounded and uniform over a long window; a moving hot spot (sequential
 * inserts) gives none; long keys are kept truncated; only hot ranges hold a
 * sampler. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "placement/pd_loadkey.h"

/* A request stream: keys "k%03d" drawn by the caller; kept to measure the
 * true share of requests below a key. */
typedef struct stream {
    int *v;
    size_t n, cap;
} stream;

static void key_of(int i, char *out)
{
    snprintf(out, 8, "k%03d", i);
}

static void offer(pd_loadkey *s, stream *st, int i)
{
    char k[8];
    key_of(i, k);
    pd_loadkey_add(s, (const uint8_t *)k, strlen(k));
    if (!st) return;
    if (st->n == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 1024;
        st->v = realloc(st->v, st->cap * sizeof(*st->v));
        assert_non_null(st->v);
    }
    st->v[st->n++] = i;
}

/* The share of the stream's requests that a split at key m sends left. */
static double share_below(const stream *st, const uint8_t *m, size_t ml)
{
    size_t below = 0;
    char k[8];
    for (size_t i = 0; i < st->n; i++) {
        key_of(st->v[i], k);
        below += mbytes_cmp((const uint8_t *)k, strlen(k), m, ml) < 0;
    }
    return (double)below / (double)st->n;
}

static size_t median(const pd_loadkey *s, const char *start, const char *end, uint8_t *out)
{
    return pd_loadkey_median(s, (const uint8_t *)start, strlen(start), (const uint8_t *)end,
                             strlen(end), out);
}

static bool inside(const uint8_t *k, size_t kl, const char *start, const char *end)
{
    return mbytes_cmp(k, kl, (const uint8_t *)start, strlen(start)) > 0 &&
           (!*end || mbytes_cmp(k, kl, (const uint8_t *)end, strlen(end)) < 0);
}

static void test_uniform_load_halves(void **state)
{
    (void)state;
    pd_loadkey s;
    pd_loadkey_init(&s, 1);
    stream st = {0};
    for (int pass = 0; pass < 10; pass++)
        for (int i = 0; i < 100; i++) offer(&s, &st, i);
    uint8_t m[PD_LOADKEY_KEY_MAX];
    size_t ml = median(&s, "", "", m);
    assert_true(ml > 0);
    double b = share_below(&st, m, ml);
    assert_true(b >= 0.3 && b <= 0.7);
    free(st.v);
}

/* Zipf-like: key i with weight 1/(i+1). The median follows the requests
 * (about half below it), far left of the span's middle key. */
static void test_skewed_load_median_follows_requests(void **state)
{
    (void)state;
    pd_loadkey s;
    pd_loadkey_init(&s, 7);
    stream st = {0};
    for (int pass = 0; pass < 20; pass++)
        for (int i = 0; i < 100; i++)
            for (int r = 0; r < 100 / (i + 1); r++) offer(&s, &st, i);
    uint8_t m[PD_LOADKEY_KEY_MAX];
    size_t ml = median(&s, "k", "l", m);
    assert_true(ml > 0);
    double b = share_below(&st, m, ml);
    assert_true(b >= 0.3 && b <= 0.7);
    assert_true(mbytes_cmp(m, ml, (const uint8_t *)"k050", 4) < 0);
    free(st.v);
}

/* Never the span's start key even when it is half of the load, never
 * outside the span; samples outside it (a split happened) are ignored. */
static void test_median_strictly_inside_span(void **state)
{
    (void)state;
    pd_loadkey s;
    pd_loadkey_init(&s, 3);
    for (int r = 0; r < 200; r++) offer(&s, NULL, r % 2 ? 10 : 20); /* k010, k020 */
    uint8_t m[PD_LOADKEY_KEY_MAX];
    size_t ml = median(&s, "k010", "", m);
    assert_int_equal(ml, 4);
    assert_memory_equal(m, "k020", 4); /* the start key (half the load) is never it */
    /* Past the span's end: the same samples give none for [k010, k020). */
    assert_int_equal(median(&s, "k010", "k020", m), 0);

    pd_loadkey_roll(&s);
    for (int pass = 0; pass < 10; pass++)
        for (int i = 0; i < 100; i++) offer(&s, NULL, i);
    ml = median(&s, "k030", "k060", m);
    assert_true(ml > 0);
    assert_true(inside(m, ml, "k030", "k060"));
    assert_true(mbytes_cmp(m, ml, (const uint8_t *)"k035", 4) > 0 &&
                mbytes_cmp(m, ml, (const uint8_t *)"k055", 4) < 0);
}

/* A single hot key cannot be split: all its requests land on one side. */
static void test_single_hot_key_gives_none(void **state)
{
    (void)state;
    pd_loadkey s;
    pd_loadkey_init(&s, 5);
    uint8_t m[PD_LOADKEY_KEY_MAX];
    for (int r = 0; r < 1000; r++) offer(&s, NULL, 42);
    assert_int_equal(median(&s, "", "", m), 0);
    /* Nearly so (90 % on one key, the rest around it): no split takes a
     * quarter of the load off either side, so none either. */
    pd_loadkey_roll(&s);
    for (int r = 0; r < 1000; r++) offer(&s, NULL, r % 10 ? 42 : r % 100);
    assert_int_equal(median(&s, "", "", m), 0);
}

static void test_window_roll(void **state)
{
    (void)state;
    pd_loadkey s;
    pd_loadkey_init(&s, 9);
    uint8_t m[PD_LOADKEY_KEY_MAX];
    for (int r = 0; r < 500; r++) offer(&s, NULL, r % 20); /* k000..k019 */
    size_t ml = median(&s, "", "", m);
    assert_true(ml > 0 && inside(m, ml, "k000", "k020"));
    pd_loadkey_roll(&s);
    assert_int_equal(s.seen, 0);
    assert_int_equal(median(&s, "", "", m), 0);                 /* a new window knows nothing */
    for (int r = 0; r < 500; r++) offer(&s, NULL, 80 + r % 20); /* k080..k099 */
    ml = median(&s, "", "", m);
    assert_true(ml > 0 && inside(m, ml, "k080", "k100"));
}

static void test_too_few_samples_give_none(void **state)
{
    (void)state;
    pd_loadkey s;
    pd_loadkey_init(&s, 11);
    uint8_t m[PD_LOADKEY_KEY_MAX];
    /* Distinct keys in a stationary order (a permutation of 0..15). */
    for (int i = 0; i < PD_LOADKEY_MIN_SAMPLES - 1; i++) offer(&s, NULL, i * 5 % 16);
    assert_int_equal(median(&s, "", "", m), 0);
    offer(&s, NULL, (PD_LOADKEY_MIN_SAMPLES - 1) * 5 % 16);
    assert_true(median(&s, "", "", m) > 0);
}

static void add_s(pd_loadkey *s, int i)
{
    char k[16];
    snprintf(k, sizeof(k), "s%06d", i);
    pd_loadkey_add(s, (const uint8_t *)k, strlen(k));
}

/* A long window keeps PD_LOADKEY_SAMPLES requests drawn from all of it, not
 * its first ones; the median of a stationary load over 100000 keys (a
 * permutation) is near the middle. */
static void test_reservoir_bounded_and_uniform(void **state)
{
    (void)state;
    pd_loadkey s;
    pd_loadkey_init(&s, 13);
    for (int i = 0; i < 100000; i++) add_s(&s, (int)((i * 7919LL) % 100000));
    assert_int_equal(s.seen, 100000);
    assert_int_equal(s.n, PD_LOADKEY_SAMPLES);
    int late = 0;
    for (int i = 0; i < PD_LOADKEY_SAMPLES; i++) late += s.at[i] > 50000;
    assert_true(late >= PD_LOADKEY_SAMPLES / 4 && late <= 3 * PD_LOADKEY_SAMPLES / 4);
    uint8_t m[PD_LOADKEY_KEY_MAX];
    size_t ml = median(&s, "", "", m);
    assert_int_equal(ml, 7);
    int rank = atoi((const char *)m + 1);
    assert_true(rank > 30000 && rank < 70000);
}

/* Sequential inserts: the hot spot moves right through the window, so a
 * split at the median would leave the next window's load all on one side:
 * none. The same keys in a stationary order do split (above). */
static void test_moving_hot_spot_gives_none(void **state)
{
    (void)state;
    pd_loadkey s;
    pd_loadkey_init(&s, 19);
    uint8_t m[PD_LOADKEY_KEY_MAX];
    for (int i = 0; i < 100000; i++) add_s(&s, i);
    assert_int_equal(median(&s, "", "", m), 0);
    pd_loadkey_roll(&s); /* short windows too: every request is a sample */
    for (int i = 0; i < PD_LOADKEY_SAMPLES; i++) add_s(&s, i);
    assert_int_equal(median(&s, "", "", m), 0);
}

/* Keys longer than the cap are kept as prefixes: keys alike in their first
 * PD_LOADKEY_KEY_MAX bytes are one key (none); keys that differ earlier
 * still split, at a key no longer than the cap. */
static void test_long_keys_truncated(void **state)
{
    (void)state;
    pd_loadkey s;
    pd_loadkey_init(&s, 17);
    uint8_t k[PD_LOADKEY_KEY_MAX + 100], m[PD_LOADKEY_KEY_MAX];
    memset(k, 'p', sizeof(k));
    for (int r = 0; r < 200; r++) {
        k[sizeof(k) - 1] = (uint8_t)('a' + r % 26); /* differs past the cap only */
        pd_loadkey_add(&s, k, sizeof(k));
    }
    assert_int_equal(median(&s, "", "", m), 0);
    pd_loadkey_roll(&s);
    for (int r = 0; r < 200; r++) {
        k[0] = (uint8_t)('a' + r % 26);
        pd_loadkey_add(&s, k, sizeof(k));
    }
    size_t ml = median(&s, "", "", m);
    assert_true(ml > 0 && ml <= PD_LOADKEY_KEY_MAX);
    assert_true(m[0] > 'f' && m[0] < 'u');
}

/* Window by window: a cold range holds no sampler; the first hot window
 * allocates one (no key yet, nothing was sampled), the next reports the
 * median and rolls; a cold window (or not the leaseholder: sample_qps 0)
 * frees it. */
static void test_window_lifecycle(void **state)
{
    (void)state;
    pd_loadkey *s = NULL;
    uint8_t m[PD_LOADKEY_KEY_MAX];
    assert_int_equal(pd_loadkey_window(&s, 10, 50, 1, NULL, 0, NULL, 0, m), 0);
    assert_null(s);
    assert_int_equal(pd_loadkey_window(&s, 60, 50, 1, NULL, 0, NULL, 0, m), 0);
    assert_non_null(s);
    for (int r = 0; r < 300; r++) offer(s, NULL, r % 30);
    size_t ml = pd_loadkey_window(&s, 60, 50, 1, NULL, 0, NULL, 0, m);
    assert_true(ml > 0 && inside(m, ml, "k000", "k030"));
    assert_non_null(s);
    assert_int_equal(s->seen, 0); /* rolled */
    for (int r = 0; r < 300; r++) offer(s, NULL, r % 30);
    assert_int_equal(pd_loadkey_window(&s, 60, 0, 1, NULL, 0, NULL, 0, m), 0);
    assert_null(s); /* no longer the leaseholder */
    assert_int_equal(pd_loadkey_window(&s, 60, 50, 1, NULL, 0, NULL, 0, m), 0);
    for (int r = 0; r < 300; r++) offer(s, NULL, r % 30);
    assert_int_equal(pd_loadkey_window(&s, 20, 50, 1, NULL, 0, NULL, 0, m), 0);
    assert_null(s); /* cooled down: its samples are not reported */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_uniform_load_halves),
        cmocka_unit_test(test_skewed_load_median_follows_requests),
        cmocka_unit_test(test_median_strictly_inside_span),
        cmocka_unit_test(test_single_hot_key_gives_none),
        cmocka_unit_test(test_window_roll),
        cmocka_unit_test(test_too_few_samples_give_none),
        cmocka_unit_test(test_reservoir_bounded_and_uniform),
        cmocka_unit_test(test_moving_hot_spot_gives_none),
        cmocka_unit_test(test_long_keys_truncated),
        cmocka_unit_test(test_window_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
