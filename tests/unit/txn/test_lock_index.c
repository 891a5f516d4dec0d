/* The lock table's indexes: span order and overlap, the augmented AVL
 * interval tree against a brute-force scan, and the hash map. Seeded; the
 * seed is printed on failure. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "txn/lock_index.h"

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static lt_span mk(const char *s, const char *e)
{
    lt_span sp = {.s = (const uint8_t *)s, .slen = strlen(s)};
    if (e) {
        sp.e = (const uint8_t *)e;
        sp.elen = strlen(e);
    } else {
        sp.inf = true;
    }
    return sp;
}

static void test_span_overlap(void **state)
{
    (void)state;
    lt_span ab = mk("a", "b"), bc = mk("b", "c"), ac = mk("a", "c"), binf = mk("b", NULL);
    assert_false(lt_span_overlap(&ab, &bc)); /* adjacent */
    assert_false(lt_span_overlap(&bc, &ab));
    assert_true(lt_span_overlap(&ab, &ac));
    assert_true(lt_span_overlap(&bc, &binf));
    assert_false(lt_span_overlap(&ab, &binf));
    lt_span ainf = mk("a", NULL);
    assert_true(lt_span_overlap(&ainf, &binf));
    assert_true(lt_span_cmp(&ab, &ac) < 0);
    assert_true(lt_span_cmp(&binf, &bc) > 0); /* +infinity ends last */
    assert_true(lt_key_cmp((const uint8_t *)"a", 1, (const uint8_t *)"ab", 2) < 0);
    assert_true(lt_key_cmp((const uint8_t *)"", 0, (const uint8_t *)"", 0) == 0);
    assert_true(lt_key_cmp((const uint8_t *)"\xff", 1, (const uint8_t *)"\x01", 1) > 0);
}

#define NKEYS 200

typedef struct node {
    lt_obj o;
    char s[8], e[8];
    int in;
} node;

/* Marks each reported node; a node reported twice is an error. */
static int collect(void *ctx, lt_obj *o)
{
    node *n = (node *)o; /* o is the first member */
    int *dups = ctx;
    if (n->in & 2) (*dups)++;
    n->in |= 2;
    return 0;
}

static void one_seed(uint64_t seed)
{
    rng_state = seed;
    node *nodes = calloc(NKEYS, sizeof(*nodes));
    lt_tree t = {0};
    for (int round = 0; round < 4000; round++) {
        node *n = &nodes[rnd() % NKEYS];
        if (n->in) {
            lt_tree_remove(&t, &n->o);
            n->in = 0;
        } else {
            /* Spans over a tiny alphabet so that overlaps and ties are common;
             * the node's index makes each span unique. */
            int i = (int)(n - nodes);
            char a = (char)('a' + rnd() % 8), b = (char)(a + rnd() % 4);
            snprintf(n->s, sizeof(n->s), "%c%03d", a, i);
            snprintf(n->e, sizeof(n->e), "%c", b + 1);
            memset(&n->o, 0, sizeof(n->o));
            n->o.sp = mk(n->s, rnd() % 8 ? n->e : NULL);
            lt_tree_insert(&t, &n->o);
            n->in = 1;
            assert_ptr_equal(lt_tree_find(&t, &n->o.sp), &n->o);
        }
        if (lt_tree_check(&t))
            fail_msg("tree invariant broken, seed %llu", (unsigned long long)seed);
        char qs[4] = {(char)('a' + rnd() % 9), 0}, qe[4] = {(char)('a' + rnd() % 10), 0};
        lt_span q = mk(qs, rnd() % 6 ? qe : NULL);
        int dups = 0;
        lt_tree_overlaps(&t, &q, collect, &dups);
        assert_int_equal(dups, 0);
        for (int k = 0; k < NKEYS; k++) {
            int want = (nodes[k].in & 1) && lt_span_overlap(&nodes[k].o.sp, &q);
            int got = (nodes[k].in & 2) != 0;
            if (want != got)
                fail_msg("overlap query wrong for node %d, seed %llu", k, (unsigned long long)seed);
            nodes[k].in &= 1;
        }
    }
    free(nodes);
}

static void test_tree_against_brute_force(void **state)
{
    (void)state;
    for (uint64_t seed = 1; seed <= 5; seed++) one_seed(seed);
}

typedef struct hn {
    lt_hnode h;
    uint64_t key;
} hn;

static void test_hmap(void **state)
{
    (void)state;
    lt_hmap m;
    assert_int_equal(lt_hmap_init(&m, 3), 0);
    assert_int_equal(m.nb, 16);
    enum { N = 1000 };
    hn *v = calloc(N, sizeof(*v));
    for (int i = 0; i < N; i++) {
        v[i].key = (uint64_t)i * 7919;
        v[i].h.h = lt_hash_u64(v[i].key);
        assert_int_equal(lt_hmap_reserve(&m), 0);
        lt_hmap_put(&m, &v[i].h);
    }
    assert_int_equal(m.n, N);
    assert_true(m.nb >= N);
    for (int i = 0; i < N; i += 2) lt_hmap_del(&m, &v[i].h);
    for (int i = 0; i < N; i++) {
        int found = 0;
        for (lt_hnode *c = lt_hmap_chain(&m, v[i].h.h); c; c = c->next)
            if (((hn *)c)->key == v[i].key) found = 1;
        assert_int_equal(found, i % 2);
    }
    assert_true(lt_hash_bytes("abc", 3) != lt_hash_bytes("abd", 3));
    assert_true(lt_hash_bytes("", 0) != lt_hash_bytes("\0", 1));
    lt_hmap_free(&m);
    free(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_span_overlap),
        cmocka_unit_test(test_tree_against_brute_force),
        cmocka_unit_test(test_hmap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
