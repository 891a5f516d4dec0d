/* The read cache of a read-write transaction (server/txn_rcache.h): a read
 * wholly inside a span read before under a strong enough lock is answered
 * from it (rows, absent keys), anything else is a miss; reverse pages are
 * kept ascending; the ring and the byte cap bound it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "server/txn_rcache.h"

#define K(s) (const uint8_t *)(s), strlen(s)

static tc_rrow row(const char *k, const char *v)
{
    return (tc_rrow){(const uint8_t *)k, (const uint8_t *)v, strlen(k), strlen(v)};
}

/* get as a string: "=v" present, "-" absent, "?" unknown */
static const char *get(tc_rcache *c, const char *k, int x, char *buf)
{
    const uint8_t *v;
    size_t vl;
    int h = tc_rcache_get(c, K(k), x, &v, &vl);
    if (h < 0) return "?";
    if (h == 0) return "-";
    snprintf(buf, 64, "=%.*s", (int)vl, (const char *)v);
    return buf;
}

static void test_span_answers_inside_only(void **state)
{
    (void)state;
    tc_rcache c;
    char b[64];
    tc_rcache_init(&c);
    tc_rrow rows[] = {row("b", "1"), row("d", "2")};
    tc_rcache_put(&c, K("a"), K("f"), 0, rows, 2, 0);
    assert_string_equal(get(&c, "b", 0, b), "=1");
    assert_string_equal(get(&c, "c", 0, b), "-"); /* locked and absent */
    assert_string_equal(get(&c, "a", 0, b), "-"); /* lo is inside */
    assert_string_equal(get(&c, "f", 0, b), "?"); /* hi is not */
    assert_string_equal(get(&c, "0", 0, b), "?");
    size_t a, e;
    const tc_rspan *s = tc_rcache_span(&c, K("b"), K("e"), 0, &a, &e);
    assert_non_null(s);
    assert_int_equal(a, 0);
    assert_int_equal(e, 2);
    s = tc_rcache_span(&c, K("c"), K("d"), 0, &a, &e);
    assert_non_null(s);
    assert_int_equal(a, e);                                     /* inside, no rows */
    assert_null(tc_rcache_span(&c, K("c"), K("g"), 0, &a, &e)); /* sticks out */
    assert_null(tc_rcache_span(&c, K("0"), K("b"), 0, &a, &e));
    tc_rcache_free(&c);
}

static void test_shared_lock_does_not_answer_a_read_for_writing(void **state)
{
    (void)state;
    tc_rcache c;
    char b[64];
    size_t a, e;
    tc_rcache_init(&c);
    tc_rcache_put_key(&c, K("k"), 0, 1, (const uint8_t *)"v", 1);
    assert_string_equal(get(&c, "k", 0, b), "=v");
    assert_string_equal(get(&c, "k", 1, b), "?"); /* X needs the leaseholder */
    assert_string_equal(get(&c, "k\x01", 0, b), "?");
    assert_null(tc_rcache_span(&c, K("k"), K("k\x01"), 1, &a, &e));
    /* After the read for writing: both. */
    tc_rcache_put_key(&c, K("k"), 1, 1, (const uint8_t *)"v", 1);
    assert_string_equal(get(&c, "k", 1, b), "=v");
    assert_non_null(tc_rcache_span(&c, K("k"), (const uint8_t *)"k\x00", 2, 1, &a, &e));
    assert_int_equal(e - a, 1);
    tc_rcache_put_key(&c, K("gone"), 1, 0, NULL, 0);
    assert_string_equal(get(&c, "gone", 0, b), "-");
    tc_rcache_free(&c);
}

static void test_reverse_page_is_kept_ascending(void **state)
{
    (void)state;
    tc_rcache c;
    size_t a, e;
    tc_rcache_init(&c);
    tc_rrow rows[] = {row("c", "3"), row("b", "2"), row("a", "1")};
    tc_rcache_put(&c, K("a"), K("d"), 1, rows, 3, 1);
    const tc_rspan *s = tc_rcache_span(&c, K("a"), K("d"), 1, &a, &e);
    assert_non_null(s);
    assert_int_equal(e - a, 3);
    assert_memory_equal(s->rows[0].key, "a", 1);
    assert_memory_equal(s->rows[2].key, "c", 1);
    s = tc_rcache_span(&c, K("b"), K("c"), 1, &a, &e);
    assert_int_equal(a, 1);
    assert_int_equal(e, 2);
    tc_rcache_free(&c);
}

static void test_bounds(void **state)
{
    (void)state;
    tc_rcache c;
    char b[64], k[32];
    tc_rcache_init(&c);
    /* An empty or inverted span, or one of too many rows, is not kept. */
    tc_rcache_put(&c, K("b"), K("a"), 0, NULL, 0, 0);
    tc_rcache_put(&c, K("a"), K("a"), 0, NULL, 0, 0);
    assert_int_equal(c.n, 0);
    static tc_rrow many[TC_RCACHE_SPAN_ROWS + 1];
    static char keys[TC_RCACHE_SPAN_ROWS + 1][8];
    for (int i = 0; i <= TC_RCACHE_SPAN_ROWS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "r%05d", i);
        many[i] = row(keys[i], "");
    }
    tc_rcache_put(&c, K("r"), K("s"), 0, many, TC_RCACHE_SPAN_ROWS + 1, 0);
    assert_int_equal(c.n, 0);
    assert_string_equal(get(&c, "r00001", 0, b), "?");
    /* The ring: the oldest span goes. */
    for (int i = 0; i < TC_RCACHE_SPANS + 1; i++) {
        snprintf(k, sizeof(k), "k%05d", i);
        tc_rcache_put_key(&c, K(k), 0, 1, (const uint8_t *)"v", 1);
    }
    assert_int_equal(c.n, TC_RCACHE_SPANS);
    assert_string_equal(get(&c, "k00000", 0, b), "?");
    assert_string_equal(get(&c, "k00001", 0, b), "=v");
    /* The byte cap: a big span pushes old ones out until it fits. */
    static char big[TC_RCACHE_BYTES / 2];
    memset(big, 'x', sizeof(big) - 1);
    tc_rrow r1 = {(const uint8_t *)"b1", (const uint8_t *)big, 2, sizeof(big) - 1};
    tc_rrow r2 = {(const uint8_t *)"b2", (const uint8_t *)big, 2, sizeof(big) - 1};
    tc_rcache_put(&c, K("b1"), K("b1\x01"), 0, &r1, 1, 0);
    tc_rcache_put(&c, K("b2"), K("b2\x01"), 0, &r2, 1, 0);
    assert_true(c.bytes <= TC_RCACHE_BYTES);
    assert_string_equal(get(&c, "b1", 0, b), "?"); /* pushed out by b2 */
    assert_int_equal(tc_rcache_get(&c, K("b2"), 0, &(const uint8_t *){0}, &(size_t){0}), 1);
    tc_rcache_free(&c);
    assert_int_equal(c.bytes, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_span_answers_inside_only),
        cmocka_unit_test(test_shared_lock_does_not_answer_a_read_for_writing),
        cmocka_unit_test(test_reverse_page_is_kept_ascending),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
