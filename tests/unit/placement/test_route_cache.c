/* The routing cache (placement/route_cache.h): lookups, fresher descriptors
 * replacing older overlapping ones, stale ones ignored, invalidation, and a
 * randomized check against a model: a history of splits and merges over a
 * one-byte key space, descriptors delivered in random order (stale ones
 * too); the cache must never hold overlapping entries, every entry must be
 * the newest descriptor of its range that reached it, and once every current
 * descriptor arrived it must equal the current layout exactly. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "placement/route_cache.h"

#define K(s) (const uint8_t *)(s), strlen(s)

static void test_basic(void **state)
{
    (void)state;
    route_cache c;
    route_cache_init(&c);
    assert_null(route_cache_lookup(&c, K("a")));
    /* range 1 = everything, generation 1 */
    assert_int_equal(route_cache_update(&c, 1, 1, K(""), K(""), 1), 1);
    assert_int_equal(route_cache_lookup(&c, K("zz"))->range_id, 1);
    assert_true(route_cache_complete(&c));
    /* split at m: right side (2, gen 2) replaces 1 over [m, inf): the left
     * part is now a hole until 1's fresh descriptor arrives. */
    assert_int_equal(route_cache_update(&c, 2, 2, K("m"), K(""), 1), 1);
    assert_null(route_cache_lookup(&c, K("a")));
    assert_int_equal(route_cache_lookup(&c, K("m"))->range_id, 2);
    assert_false(route_cache_complete(&c));
    /* the old descriptor of 1 is stale now: it overlaps a newer one */
    assert_int_equal(route_cache_update(&c, 1, 1, K(""), K(""), 1), 0);
    assert_int_equal(route_cache_update(&c, 1, 2, K(""), K("m"), 3), 1);
    assert_int_equal(route_cache_lookup(&c, K("a"))->range_id, 1);
    assert_int_equal(route_cache_lookup(&c, K("a"))->leader, 3);
    assert_int_equal(route_cache_lookup(&c, K("l\xff"))->range_id, 1);
    assert_true(route_cache_complete(&c));
    route_cache_set_leader(&c, 2, 5);
    assert_int_equal(route_cache_lookup(&c, K("x"))->leader, 5);
    assert_int_equal(route_cache_seek(&c, K("m")), 1);
    /* a merge (gen 3) replaces both */
    assert_int_equal(route_cache_update(&c, 1, 3, K(""), K(""), 0), 1);
    assert_int_equal(c.n, 1);
    route_cache_invalidate(&c, K("q"), K("r"));
    assert_int_equal(c.n, 0);
    /* an empty span is refused */
    assert_int_equal(route_cache_update(&c, 4, 1, K("b"), K("b"), 0), 0);
    route_cache_free(&c);
}

/* ---- randomized: a model of splits and merges over keys 0..255 ---- */

typedef struct mdesc {
    uint64_t id, gen;
    int lo, hi; /* [lo, hi), hi 256 = unbounded */
} mdesc;

static void enc(int k, uint8_t *b, size_t *n)
{
    if (k == 0 || k == 256) {
        *n = 0;
    } else {
        b[0] = (uint8_t)k;
        *n = 1;
    }
}

static int feed(route_cache *c, const mdesc *d)
{
    uint8_t s[1], e[1];
    size_t sl, el;
    enc(d->lo, s, &sl);
    enc(d->hi, e, &el);
    return route_cache_update(c, d->id, d->gen, s, sl, e, el, 0);
}

static void check_disjoint(const route_cache *c)
{
    for (size_t i = 0; i + 1 < c->n; i++) {
        assert_true(c->v[i].end_len > 0);
        assert_true(route_keycmp(c->v[i].end, c->v[i].end_len, c->v[i + 1].start,
                                 c->v[i + 1].start_len) <= 0);
    }
}

static void test_random(void **state)
{
    (void)state;
    srand(4242);
    for (int round = 0; round < 200; round++) {
        mdesc cur[256], hist[4096];
        size_t ncur = 1, nhist = 0;
        uint64_t next_id = 2;
        cur[0] = (mdesc){1, 1, 0, 256};
        hist[nhist++] = cur[0];
        for (int step = 0; step < 40 && nhist < 4000; step++) {
            size_t i = (size_t)rand() % ncur;
            if (rand() % 3 && cur[i].hi - cur[i].lo >= 2) { /* split */
                int k = cur[i].lo + 1 + rand() % (cur[i].hi - cur[i].lo - 1);
                mdesc r = {next_id++, cur[i].gen + 1, k, cur[i].hi};
                cur[i].gen++;
                cur[i].hi = k;
                memmove(&cur[i + 2], &cur[i + 1], (ncur - i - 1) * sizeof(cur[0]));
                cur[i + 1] = r;
                ncur++;
                hist[nhist++] = cur[i];
                hist[nhist++] = r;
            } else if (i + 1 < ncur) { /* merge with the right neighbour */
                uint64_t g = cur[i].gen > cur[i + 1].gen ? cur[i].gen : cur[i + 1].gen;
                cur[i].gen = g + 1;
                cur[i].hi = cur[i + 1].hi;
                memmove(&cur[i + 1], &cur[i + 2], (ncur - i - 2) * sizeof(cur[0]));
                ncur--;
                hist[nhist++] = cur[i];
            }
        }
        route_cache c;
        route_cache_init(&c);
        /* Random deliveries from the whole history, then every current one. */
        for (size_t j = 0; j < nhist * 2; j++) {
            assert_true(feed(&c, &hist[(size_t)rand() % nhist]) >= 0);
            check_disjoint(&c);
        }
        for (size_t j = 0; j < ncur; j++) assert_true(feed(&c, &cur[j]) >= 0);
        check_disjoint(&c);
        assert_true(route_cache_complete(&c));
        assert_int_equal(c.n, ncur);
        for (int k = 1; k < 256; k++) {
            uint8_t b = (uint8_t)k;
            const route_entry *e = route_cache_lookup(&c, &b, 1);
            assert_non_null(e);
            size_t j = 0;
            while (!(cur[j].lo <= k && k < cur[j].hi)) j++;
            assert_int_equal(e->range_id, cur[j].id);
            assert_int_equal(e->generation, cur[j].gen);
        }
        route_cache_free(&c);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
