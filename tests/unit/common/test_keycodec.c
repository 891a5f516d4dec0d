/* Key codec: memcmp order of encodings == SQL order of tuples (checked against
 * a reference comparator and against SQLite's own ORDER BY / GROUP BY), exact
 * round trips, scan bounds, edge values, and rejection of malformed bytes.
 * Random tests print their seed; rerun one with MKEY_SEED=<seed>. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "common/keycodec.h"

/* ---- seeded randomness ------------------------------------------------- */

static uint64_t g_seed;
static uint64_t rng_state;

static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static unsigned rndn(unsigned n)
{
    return (unsigned)(rnd() % n);
}

static void seed_rng(const char *test)
{
    const char *s = getenv("MKEY_SEED");
    g_seed = s ? strtoull(s, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)clock();
    rng_state = g_seed;
    print_message("%s: seed=%llu (rerun with MKEY_SEED=%llu)\n", test, (unsigned long long)g_seed,
                  (unsigned long long)g_seed);
}

/* Fails with the seed in the message. */
#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_message("seed=%llu: ", (unsigned long long)g_seed);                              \
            print_message(__VA_ARGS__);                                                            \
            print_message("\n");                                                                   \
            fail_msg("check failed: %s", #cond);                                                   \
        }                                                                                          \
    } while (0)

/* ---- reference comparator: SQLite's BINARY-collation order -------------- */

static int class_of(const mkey_val *v)
{
    switch (v->type) {
    case MKEY_NULL: return 0;
    case MKEY_INT:
    case MKEY_REAL: return 1;
    case MKEY_TEXT: return 2;
    default: return 3;
    }
}

/* Exact int64 vs double comparison. */
static int cmp_int_real(int64_t i, double d)
{
    if (d < -9223372036854775808.0) return 1;
    if (d >= 9223372036854775808.0) return -1;
    double t = trunc(d);
    int64_t ti = (int64_t)t;
    if (i < ti) return -1;
    if (i > ti) return 1;
    return d > t ? -1 : d < t ? 1 : 0;
}

static int cmp_val(const mkey_val *a, const mkey_val *b)
{
    int ca = class_of(a), cb = class_of(b), r;
    if (ca != cb) return ca < cb ? -1 : 1;
    if (ca == 0) return 0;
    if (ca == 1) {
        if (a->type == MKEY_INT && b->type == MKEY_INT) return (a->i > b->i) - (a->i < b->i);
        if (a->type == MKEY_REAL && b->type == MKEY_REAL) return (a->d > b->d) - (a->d < b->d);
        if (a->type == MKEY_INT) return cmp_int_real(a->i, b->d);
        return -cmp_int_real(b->i, a->d);
    }
    size_t n = a->n < b->n ? a->n : b->n;
    r = n ? memcmp(a->p, b->p, n) : 0;
    if (r) return r < 0 ? -1 : 1;
    return (a->n > b->n) - (a->n < b->n);
}

/* Tuple order over the first m columns; a shorter tuple sorts first. */
static int cmp_tuple(const mkey_val *a, size_t na, const mkey_val *b, size_t nb)
{
    for (size_t c = 0; c < na && c < nb; c++) {
        int r = cmp_val(&a[c], &b[c]);
        if (r) return a[c].desc ? -r : r;
    }
    return (na > nb) - (na < nb);
}

/* Identical values: same type, same bits. */
static int same_val(const mkey_val *a, const mkey_val *b)
{
    if (a->type != b->type || a->desc != b->desc) return 0;
    switch (a->type) {
    case MKEY_NULL: return 1;
    case MKEY_INT: return a->i == b->i;
    case MKEY_REAL: return memcmp(&a->d, &b->d, sizeof(double)) == 0;
    default: return a->n == b->n && (!a->n || memcmp(a->p, b->p, a->n) == 0);
    }
}

/* ---- random tuples ------------------------------------------------------ */

#define MAXC 4

typedef struct tup {
    size_t n;
    mkey_val v[MAXC];
    uint8_t bytes[MAXC][8];
    mbuf key; /* full encoding */
    mbuf pre; /* prefix encoding (no trailer) */
} tup;

static const int64_t int_pool[] = {0,
                                   1,
                                   -1,
                                   2,
                                   3,
                                   127,
                                   128,
                                   -128,
                                   1LL << 31,
                                   1LL << 32,
                                   (1LL << 53) - 1,
                                   1LL << 53,
                                   (1LL << 53) + 1,
                                   (1LL << 53) + 2,
                                   -((1LL << 53) + 1),
                                   1LL << 62,
                                   INT64_MAX,
                                   INT64_MAX - 1,
                                   INT64_MIN,
                                   INT64_MIN + 1};

static double real_pool(unsigned k)
{
    switch (k) {
    case 0: return 0.0;
    case 1: return -0.0;
    case 2: return 1.0;
    case 3: return -1.0;
    case 4: return 0.5;
    case 5: return 2.5;
    case 6: return 9007199254740992.0; /* 2^53 */
    case 7: return 9007199254740994.0; /* 2^53 + 2 */
    case 8: return 9223372036854775808.0;
    case 9: return -9223372036854775808.0;
    case 10: return 1e300;
    case 11: return -1e300;
    case 12: return DBL_MIN;
    case 13: return 4.9406564584124654e-324;
    case 14: return -4.9406564584124654e-324;
    case 15: return DBL_MAX;
    case 16: return INFINITY;
    case 17: return -INFINITY;
    case 18: return 9223372036854774784.0; /* largest double below 2^63 */
    default: return 127.0;
    }
}

static mkey_val gen_val(uint8_t *store, int desc)
{
    static const uint8_t alpha[] = {0x00, 0x01, 'a', 'b', 0xFF, 0x7F};
    unsigned k = rndn(16);
    if (k == 0) return mkey_null(desc);
    if (k <= 4) return mkey_int(int_pool[rndn(sizeof(int_pool) / sizeof(int_pool[0]))], desc);
    if (k == 5) return mkey_int((int64_t)rnd(), desc);
    if (k == 6) return mkey_int((int64_t)rndn(2001) - 1000, desc);
    if (k <= 9) return mkey_real(real_pool(rndn(20)), desc);
    if (k == 10) {
        double d;
        do {
            uint64_t bits = rnd();
            memcpy(&d, &bits, sizeof(d));
        } while (isnan(d));
        return mkey_real(d, desc);
    }
    if (k == 11) { /* integral reals, often equal to the int pool */
        double d = rndn(2) ? (double)int_pool[rndn(sizeof(int_pool) / sizeof(int_pool[0]))]
                           : (double)((int64_t)rndn(2001) - 1000);
        return mkey_real(rndn(4) ? d : nextafter(d, rndn(2) ? INFINITY : -INFINITY), desc);
    }
    size_t n = rndn(7);
    for (size_t j = 0; j < n; j++) store[j] = alpha[rndn(sizeof(alpha))];
    return k <= 13 ? mkey_text(store, n, desc) : mkey_blob(store, n, desc);
}

static void gen_tuples(tup *t, size_t count, size_t ncols, const int *desc)
{
    for (size_t i = 0; i < count; i++) {
        t[i].n = ncols;
        for (size_t c = 0; c < ncols; c++) t[i].v[c] = gen_val(t[i].bytes[c], desc[c]);
        mbuf_init(&t[i].key);
        mbuf_init(&t[i].pre);
        assert_int_equal(mkey_encode(t[i].v, ncols, &t[i].key), 0);
        assert_int_equal(mkey_encode_prefix(t[i].v, ncols, &t[i].pre), 0);
    }
}

static void free_tuples(tup *t, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        mbuf_free(&t[i].key);
        mbuf_free(&t[i].pre);
    }
}

static int memcmp_buf(const mbuf *a, const mbuf *b)
{
    size_t n = a->len < b->len ? a->len : b->len;
    int r = n ? memcmp(a->data, b->data, n) : 0;
    if (r) return r < 0 ? -1 : 1;
    return (a->len > b->len) - (a->len < b->len);
}

static const tup *g_sort_base;
static int by_key(const void *x, const void *y)
{
    return memcmp_buf(&g_sort_base[*(const size_t *)x].key, &g_sort_base[*(const size_t *)y].key);
}

static void format_tuple(const tup *t, char *out, size_t len)
{
    mbuf b = MBUF_INIT;
    mkey_format(t->key.data, t->key.len, &b);
    snprintf(out, len, "%.*s", (int)b.len, b.data ? (const char *)b.data : "");
    mbuf_free(&b);
}

/* ---- order and round trip --------------------------------------------- */

#define NTUP 600

static void check_roundtrip(const tup *t)
{
    mkey_val out[MAXC];
    size_t n = 99;
    mbuf scratch = MBUF_INIT, again = MBUF_INIT;
    merr e = {0};
    char s[512];
    format_tuple(t, s, sizeof(s));
    int rc = mkey_decode(t->key.data, t->key.len, out, MAXC, &n, &scratch, &e);
    CHECK(rc == 0, "decode %s: %s", s, merr_msg(&e));
    CHECK(n == t->n, "decode %s: %zu columns", s, n);
    for (size_t c = 0; c < n; c++) CHECK(same_val(&out[c], &t->v[c]), "column %zu of %s", c, s);
    assert_int_equal(mkey_encode(out, n, &again), 0);
    CHECK(memcmp_buf(&again, &t->key) == 0, "re-encode of %s differs", s);
    mbuf_free(&scratch);
    mbuf_free(&again);
}

static void test_random_order_and_roundtrip(void **state)
{
    (void)state;
    seed_rng("random_order_and_roundtrip");
    tup *t = calloc(NTUP, sizeof(*t));
    size_t *idx = calloc(NTUP, sizeof(*idx));
    assert_non_null(t);
    assert_non_null(idx);
    for (int round = 0; round < 12; round++) {
        size_t ncols = 1 + rndn(MAXC);
        int desc[MAXC];
        for (size_t c = 0; c < MAXC; c++) desc[c] = (int)rndn(2);
        gen_tuples(t, NTUP, ncols, desc);
        for (size_t i = 0; i < NTUP; i++) {
            idx[i] = i;
            check_roundtrip(&t[i]);
        }
        g_sort_base = t;
        qsort(idx, NTUP, sizeof(*idx), by_key);
        char sa[512], sb[512];
        for (size_t i = 0; i + 1 < NTUP; i++) {
            const tup *a = &t[idx[i]], *b = &t[idx[i + 1]];
            int r = cmp_tuple(a->v, a->n, b->v, b->n);
            format_tuple(a, sa, sizeof(sa));
            format_tuple(b, sb, sizeof(sb));
            CHECK(r <= 0, "key order %s < %s but SQL order says >", sa, sb);
            /* SQL-equal tuples share their prefix encoding, unequal ones not */
            CHECK((r == 0) == (memcmp_buf(&a->pre, &b->pre) == 0), "prefix of %s vs %s", sa, sb);
        }
        for (int k = 0; k < 4000; k++) {
            const tup *a = &t[rndn(NTUP)], *b = &t[rndn(NTUP)];
            int r = cmp_tuple(a->v, a->n, b->v, b->n), m = memcmp_buf(&a->key, &b->key);
            format_tuple(a, sa, sizeof(sa));
            format_tuple(b, sb, sizeof(sb));
            CHECK(r == 0 || r == m, "%s vs %s: SQL %d, memcmp %d", sa, sb, r, m);
        }
        free_tuples(t, NTUP);
    }
    free(idx);
    free(t);
}

/* ---- SQLite as the oracle ---------------------------------------------- */

static void bind_val(sqlite3_stmt *st, int col, const mkey_val *v)
{
    int rc;
    switch (v->type) {
    case MKEY_NULL: rc = sqlite3_bind_null(st, col); break;
    case MKEY_INT: rc = sqlite3_bind_int64(st, col, v->i); break;
    case MKEY_REAL: rc = sqlite3_bind_double(st, col, v->d); break;
    case MKEY_TEXT:
        rc = sqlite3_bind_text(st, col, (const char *)v->p, (int)v->n, SQLITE_TRANSIENT);
        break;
    default: rc = sqlite3_bind_blob(st, col, v->p, (int)v->n, SQLITE_TRANSIENT); break;
    }
    assert_int_equal(rc, SQLITE_OK);
}

static void test_matches_sqlite(void **state)
{
    (void)state;
    seed_rng("matches_sqlite");
    sqlite3 *db;
    assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
    tup *t = calloc(NTUP, sizeof(*t));
    assert_non_null(t);
    for (int round = 0; round < 10; round++) {
        size_t ncols = 1 + rndn(MAXC);
        int desc[MAXC];
        for (size_t c = 0; c < MAXC; c++) desc[c] = (int)rndn(2);
        gen_tuples(t, NTUP, ncols, desc);
        /* columns without a declared type have no affinity: values stay as bound */
        assert_int_equal(sqlite3_exec(db,
                                      "DROP TABLE IF EXISTS t; CREATE TABLE t(k, c0, c1, c2, c3)",
                                      NULL, NULL, NULL),
                         SQLITE_OK);
        sqlite3_stmt *ins;
        assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?,?,?,?,?)", -1, &ins, NULL),
                         SQLITE_OK);
        for (size_t i = 0; i < NTUP; i++) {
            sqlite3_bind_int64(ins, 1, (sqlite3_int64)i);
            for (size_t c = 0; c < MAXC; c++) {
                if (c < ncols)
                    bind_val(ins, (int)c + 2, &t[i].v[c]);
                else
                    sqlite3_bind_null(ins, (int)c + 2);
            }
            assert_int_equal(sqlite3_step(ins), SQLITE_DONE);
            sqlite3_reset(ins);
        }
        sqlite3_finalize(ins);
        char order[128] = "", group[64] = "", sql[320];
        for (size_t c = 0; c < ncols; c++) {
            size_t ol = strlen(order), gl = strlen(group);
            snprintf(order + ol, sizeof(order) - ol, "%sc%zu %s", c ? ", " : "", c,
                     desc[c] ? "DESC" : "ASC");
            snprintf(group + gl, sizeof(group) - gl, "%sc%zu", c ? ", " : "", c);
        }
        /* Consecutive rows of SQLite's ORDER BY must be in key order (ties:
         * equal prefixes, since SQLite does not order SQL-equal rows). */
        snprintf(sql, sizeof(sql), "SELECT k FROM t ORDER BY %s", order);
        sqlite3_stmt *sel;
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &sel, NULL), SQLITE_OK);
        long prev = -1;
        size_t rows = 0;
        while (sqlite3_step(sel) == SQLITE_ROW) {
            long k = (long)sqlite3_column_int64(sel, 0);
            if (prev >= 0) {
                char sa[512], sb[512];
                format_tuple(&t[prev], sa, sizeof(sa));
                format_tuple(&t[k], sb, sizeof(sb));
                CHECK(memcmp_buf(&t[prev].pre, &t[k].pre) <= 0, "SQLite orders %s before %s", sa,
                      sb);
            }
            prev = k;
            rows++;
        }
        sqlite3_finalize(sel);
        assert_int_equal(rows, NTUP);
        /* SQLite's equality classes (GROUP BY) are our distinct prefixes. */
        snprintf(sql, sizeof(sql), "SELECT count(*) FROM (SELECT 1 FROM t GROUP BY %s)", group);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &sel, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_step(sel), SQLITE_ROW);
        long groups = (long)sqlite3_column_int64(sel, 0);
        sqlite3_finalize(sel);
        size_t *idx = calloc(NTUP, sizeof(*idx));
        assert_non_null(idx);
        for (size_t i = 0; i < NTUP; i++) idx[i] = i;
        g_sort_base = t;
        qsort(idx, NTUP, sizeof(*idx), by_key);
        long distinct = 1;
        for (size_t i = 1; i < NTUP; i++)
            distinct += memcmp_buf(&t[idx[i - 1]].pre, &t[idx[i]].pre) != 0;
        free(idx);
        CHECK(distinct == groups, "SQLite has %ld groups, keys %ld distinct prefixes", groups,
              distinct);
        free_tuples(t, NTUP);
    }
    free(t);
    sqlite3_close(db);
}

/* ---- edge values -------------------------------------------------------- */

static void enc1(mkey_val v, mbuf *out)
{
    mbuf_reset(out);
    assert_int_equal(mkey_encode(&v, 1, out), 0);
}

/* Each value must encode strictly below the next. */
static void check_ascending(const mkey_val *vals, size_t n)
{
    mbuf a = MBUF_INIT, b = MBUF_INIT;
    for (size_t k = 0; k + 1 < n; k++) {
        enc1(vals[k], &a);
        enc1(vals[k + 1], &b);
        if (memcmp_buf(&a, &b) >= 0) fail_msg("value %zu does not sort below value %zu", k, k + 1);
        tup t = {.n = 1, .v = {vals[k]}, .key = a};
        check_roundtrip(&t);
    }
    mbuf_free(&a);
    mbuf_free(&b);
}

static void test_edge_values(void **state)
{
    (void)state;
    const mkey_val asc[] = {
        mkey_null(0),
        mkey_real(-INFINITY, 0),
        mkey_real(-DBL_MAX, 0),
        mkey_real(-1.7e308, 0),
        mkey_real(-9223372036854777856.0, 0), /* next double below -2^63 */
        mkey_int(INT64_MIN, 0),
        mkey_int(INT64_MIN + 1, 0),
        mkey_int(-(1LL << 53) - 1, 0),
        mkey_real(-9007199254740992.0, 0),
        mkey_real(-1.5, 0),
        mkey_int(-1, 0),
        mkey_real(-0.5, 0),
        mkey_real(-DBL_MIN, 0),
        mkey_real(-4.9406564584124654e-324, 0),
        mkey_int(0, 0),
        mkey_real(4.9406564584124654e-324, 0),
        mkey_real(9.8813129168249309e-324, 0),
        mkey_real(DBL_MIN, 0),
        mkey_real(0.5, 0),
        mkey_int(1, 0),
        mkey_real(1.0000000000000002, 0),
        mkey_int(2, 0),
        mkey_real(2.5, 0),
        mkey_int(3, 0),
        mkey_int(0x7FFFFFFF, 0),
        mkey_int(0x80000000LL, 0),
        mkey_real(4294967296.5, 0),
        mkey_real(9007199254740992.0, 0),
        mkey_int((1LL << 53) + 1, 0),
        mkey_real(9007199254740994.0, 0),
        mkey_int(INT64_MAX - 1, 0),
        mkey_int(INT64_MAX, 0),
        mkey_real(9223372036854775808.0, 0),
        mkey_real(DBL_MAX, 0),
        mkey_real(INFINITY, 0),
        mkey_text("", 0, 0),
        mkey_text("\0", 1, 0),
        mkey_text("\0\0", 2, 0),
        mkey_text("\x01", 1, 0),
        mkey_text("a", 1, 0),
        mkey_text("a\0", 2, 0),
        mkey_text("a\0b", 3, 0),
        mkey_text("a\x01", 2, 0),
        mkey_text("ab", 2, 0),
        mkey_text("\xff", 1, 0),
        mkey_text("\xff\xff", 2, 0),
        mkey_blob("", 0, 0),
        mkey_blob("\0", 1, 0),
        mkey_blob("\xff", 1, 0),
    };
    size_t n = sizeof(asc) / sizeof(asc[0]);
    check_ascending(asc, n);
    /* descending: the same list reversed, every column desc */
    mkey_val desc[sizeof(asc) / sizeof(asc[0])];
    for (size_t k = 0; k < n; k++) {
        desc[k] = asc[n - 1 - k];
        desc[k].desc = 1;
    }
    check_ascending(desc, n);
}

static void test_int_real_ties(void **state)
{
    (void)state;
    mbuf a = MBUF_INIT, b = MBUF_INIT;
    /* (1.0, 'a') < (1, 'b'): the type must not decide before column 2 */
    mkey_val x[2] = {mkey_real(1.0, 0), mkey_text("a", 1, 0)};
    mkey_val y[2] = {mkey_int(1, 0), mkey_text("b", 1, 0)};
    assert_int_equal(mkey_encode(x, 2, &a), 0);
    assert_int_equal(mkey_encode(y, 2, &b), 0);
    assert_true(memcmp_buf(&a, &b) < 0);
    /* same for a descending first column and for zero / -0.0 */
    mbuf_reset(&a);
    mbuf_reset(&b);
    mkey_val p[2] = {mkey_real(-0.0, 1), mkey_int(7, 0)};
    mkey_val q[2] = {mkey_int(0, 1), mkey_int(8, 0)};
    assert_int_equal(mkey_encode(p, 2, &a), 0);
    assert_int_equal(mkey_encode(q, 2, &b), 0);
    assert_true(memcmp_buf(&a, &b) < 0);
    /* 1, 1.0, 0, 0.0, -0.0 all distinct and exact after a round trip */
    const mkey_val v[] = {mkey_int(1, 0),
                          mkey_real(1.0, 0),
                          mkey_int(0, 0),
                          mkey_real(0.0, 0),
                          mkey_real(-0.0, 0),
                          mkey_int(INT64_MIN, 0),
                          mkey_real(-9223372036854775808.0, 0)};
    for (size_t k = 0; k < sizeof(v) / sizeof(v[0]); k++) {
        enc1(v[k], &a);
        tup t = {.n = 1, .v = {v[k]}, .key = a};
        check_roundtrip(&t);
        for (size_t j = 0; j < k; j++) {
            enc1(v[j], &b);
            assert_true(memcmp_buf(&a, &b) != 0);
        }
    }
    mbuf_free(&a);
    mbuf_free(&b);
}

static void test_encode_errors(void **state)
{
    (void)state;
    mbuf b = MBUF_INIT;
    mkey_val v[MKEY_MAX_COLS + 1];
    for (size_t k = 0; k <= MKEY_MAX_COLS; k++) v[k] = mkey_int((int64_t)k, 0);
    assert_int_equal(mkey_encode(v, MKEY_MAX_COLS + 1, &b), MERR_TOOBIG);
    assert_int_equal(b.len, 0);
    assert_int_equal(mkey_encode(v, MKEY_MAX_COLS, &b), 0);
    mkey_val nan2[2] = {mkey_int(1, 0), mkey_real(NAN, 0)};
    size_t before = b.len;
    assert_int_equal(mkey_encode(nan2, 2, &b), MERR_INVALID);
    assert_int_equal(b.len, before); /* nothing half-written */
    mkey_val bad = mkey_int(1, 0);
    bad.type = 9;
    assert_int_equal(mkey_encode(&bad, 1, &b), MERR_INVALID);
    /* decode into too few slots */
    mkey_val out[2];
    size_t n;
    mbuf scratch = MBUF_INIT;
    merr e = {0};
    assert_int_equal(mkey_decode(b.data, before, out, 2, &n, &scratch, &e), MERR_TOOBIG);
    assert_int_equal(mkey_decode(b.data, before, out, 2, &n, NULL, &e), MERR_INVALID);
    assert_int_equal(mkey_decode(NULL, 3, out, 2, &n, &scratch, NULL), MERR_INVALID);
    mbuf_free(&scratch);
    mbuf_free(&b);
}

/* ---- scan bounds --------------------------------------------------------- */

static void test_bounds(void **state)
{
    (void)state;
    seed_rng("bounds");
    tup *t = calloc(NTUP, sizeof(*t));
    assert_non_null(t);
    for (int round = 0; round < 6; round++) {
        size_t ncols = 1 + rndn(MAXC);
        int desc[MAXC];
        for (size_t c = 0; c < MAXC; c++) desc[c] = (int)rndn(2);
        gen_tuples(t, NTUP, ncols, desc);
        for (int k = 0; k < 40; k++) {
            const tup *b = &t[rndn(NTUP)];
            size_t m = rndn((unsigned)ncols + 1); /* leading columns constrained */
            for (int kind = MKEY_GE; kind <= MKEY_LT; kind++) {
                mbuf bound = MBUF_INIT;
                assert_int_equal(mkey_bound(b->v, m, (enum mkey_bound_kind)kind, &bound), 0);
                for (size_t i = 0; i < NTUP; i++) {
                    int r = cmp_tuple(t[i].v, m, b->v, m);
                    int want = kind == MKEY_GE   ? r >= 0
                               : kind == MKEY_GT ? r > 0
                               : kind == MKEY_LE ? r <= 0
                                                 : r < 0;
                    int c = memcmp_buf(&t[i].key, &bound);
                    int got = kind <= MKEY_GT ? c >= 0 : c < 0;
                    char sa[512], sb[512];
                    format_tuple(&t[i], sa, sizeof(sa));
                    format_tuple(b, sb, sizeof(sb));
                    CHECK(want == got, "bound kind %d on %zu cols of %s; key %s", kind, m, sb, sa);
                }
                mbuf_free(&bound);
            }
        }
        free_tuples(t, NTUP);
    }
    free(t);
    /* prefix_end: past every extension, not past the next prefix */
    mbuf p = MBUF_INIT, k = MBUF_INIT, next = MBUF_INIT;
    mkey_val pv[1] = {mkey_int(5, 1)};
    assert_int_equal(mkey_encode_prefix(pv, 1, &p), 0);
    assert_int_equal(mkey_prefix_end(&p), 0);
    mkey_val kv[2] = {mkey_int(5, 1), mkey_null(1)};
    assert_int_equal(mkey_encode(kv, 2, &k), 0);
    assert_true(memcmp_buf(&k, &p) < 0);
    mkey_val nv[1] = {mkey_int(4, 1)};
    assert_int_equal(mkey_encode(nv, 1, &next), 0);
    assert_true(memcmp_buf(&p, &next) < 0);
    mbuf_free(&p);
    mbuf_free(&k);
    mbuf_free(&next);
}

/* ---- malformed input ------------------------------------------------------ */

static int decode_bytes(const void *p, size_t len)
{
    mkey_val out[MKEY_MAX_COLS];
    size_t n;
    mbuf scratch = MBUF_INIT;
    merr e = {0};
    int rc = mkey_decode(p, len, out, MKEY_MAX_COLS, &n, &scratch, &e);
    if (rc) assert_true(e.code == rc && e.msg[0]); /* a message says what is wrong */
    mbuf_free(&scratch);
    return rc;
}

#define BAD(lit) assert_int_equal(decode_bytes(lit, sizeof(lit) - 1), MERR_CORRUPT)

static void test_malformed(void **state)
{
    (void)state;
    assert_int_equal(decode_bytes("", 0), 0); /* the empty tuple */
    BAD("\x00");                              /* not a tag */
    BAD("\x7f");                              /* unknown tag */
    BAD("\xfe");                              /* a trailer tag, complemented */
    BAD("\xff");                              /* successor marker is not a key */
    BAD("\x05\xff");
    BAD("\x60"); /* text without terminator */
    BAD("\x60"
        "a\x00"); /* truncated terminator */
    BAD("\x60"
        "a\x00\x02"); /* bad escape */
    BAD("\x60"
        "a\x00\x01\x01");    /* trailer with no ambiguous column */
    BAD("\x2e");             /* number without fraction */
    BAD("\x2e\x01");         /* fraction that says more follows, then ends */
    BAD("\x2e\x81\x00");     /* trailing zero group: non-canonical */
    BAD("\x4d\x04\x40\x00"); /* huge tag, exponent 30: belongs in the tag */
    BAD("\x2c\x04\x32\x00"); /* tiny tag, exponent 0 */
    BAD("\x4d\x08\x33\x00"); /* exponent 1025 */
    BAD("\x4d\x08");         /* truncated exponent */
    /* 64 fraction bits after the top one: neither an int64 nor a double */
    BAD("\x4d\x04\x72\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02");
    /* e = 70 with 60 fraction bits: too big for int64, too precise for double */
    BAD("\x4d\x04\x74\xff\xff\xff\xff\xff\xff\xff\xff\x02");
    BAD("\x2b\x01");                                      /* empty trailer */
    BAD("\x2b\x01\x00");                                  /* trailer ends in the default variant */
    BAD("\x2b\x01\x03");                                  /* unknown variant */
    BAD("\x2b\x01\x01\x01");                              /* more variants than ambiguous columns */
    BAD("\x2e\x00\x01\x02");                              /* -0.0 variant on a nonzero number */
    BAD("\x2b\x01\x01\x05");                              /* a column after the trailer */
    assert_int_equal(decode_bytes("\x2b\x01\x02", 3), 0); /* -0.0 */
    assert_int_equal(decode_bytes("\x2e\x00\x01\x01", 4), 0); /* 2.0 */
    /* 2^62 + 1 needs 62 fraction bits: an int64 only */
    static const uint8_t big[] = {0x4d, 0x04, 0x70, 1, 1, 1, 1, 1, 1, 1, 1, 0x04};
    assert_int_equal(decode_bytes(big, sizeof(big)), 0);
    mbuf kb = MBUF_INIT;
    enc1(mkey_int((1LL << 62) + 1, 0), &kb);
    assert_int_equal(kb.len, sizeof(big));
    assert_memory_equal(kb.data, big, sizeof(big));
    mbuf_free(&kb);

    /* Every truncation and every single-byte change of random valid keys
     * either fails cleanly or decodes to something that re-encodes to the
     * very same bytes (the decoder only accepts canonical keys). */
    seed_rng("malformed");
    tup *t = calloc(200, sizeof(*t));
    assert_non_null(t);
    int desc[MAXC] = {0, 1, 0, 1};
    gen_tuples(t, 200, MAXC, desc);
    mbuf scratch = MBUF_INIT, again = MBUF_INIT, mut = MBUF_INIT;
    for (size_t i = 0; i < 200; i++) {
        const mbuf *k = &t[i].key;
        for (size_t cut = 0; cut <= k->len; cut++) {
            for (int flip = 0; flip < 3; flip++) {
                mbuf_reset(&mut);
                assert_int_equal(mbuf_append(&mut, k->data, cut), 0);
                if (flip && cut) mut.data[rndn((unsigned)cut)] ^= (uint8_t)(1u << rndn(8));
                mkey_val out[MKEY_MAX_COLS];
                size_t n;
                int rc = mkey_decode(mut.data, mut.len, out, MKEY_MAX_COLS, &n, &scratch, NULL);
                CHECK(rc == 0 || rc == MERR_CORRUPT, "rc %d", rc);
                if (rc) continue;
                mbuf_reset(&again);
                assert_int_equal(mkey_encode(out, n, &again), 0);
                CHECK(memcmp_buf(&again, &mut) == 0,
                      "key %zu cut %zu flip %d re-encodes differently", i, cut, flip);
            }
        }
    }
    mbuf_free(&scratch);
    mbuf_free(&again);
    mbuf_free(&mut);
    free_tuples(t, 200);
    free(t);
}

/* ---- pretty-printer ------------------------------------------------------- */

static void check_format(const mkey_val *v, size_t n, int bound, const char *want)
{
    mbuf k = MBUF_INIT, s = MBUF_INIT;
    if (bound)
        assert_int_equal(mkey_bound(v, n, MKEY_GT, &k), 0);
    else
        assert_int_equal(mkey_encode(v, n, &k), 0);
    assert_int_equal(mkey_format(k.data, k.len, &s), 0);
    assert_int_equal(mbuf_append_u8(&s, 0), 0);
    assert_string_equal((const char *)s.data, want);
    mbuf_free(&k);
    mbuf_free(&s);
}

static void test_format(void **state)
{
    (void)state;
    mkey_val v[] = {mkey_int(1, 0),
                    mkey_text("abc", 3, 0),
                    mkey_null(0),
                    mkey_blob("\0\xff", 2, 0),
                    mkey_real(2.5, 0),
                    mkey_real(1.0, 0),
                    mkey_real(-0.0, 1),
                    mkey_text("q\"\\\n", 4, 1),
                    mkey_real(-INFINITY, 0),
                    mkey_int(INT64_MIN, 0),
                    mkey_real(0.1, 0)};
    check_format(v, 11, 0,
                 "/1/\"abc\"/NULL/x'00ff'/2.5/1.0/~-0.0/~\"q\\\"\\\\\\x0a\"/-inf/"
                 "-9223372036854775808/0.1");
    check_format(v, 2, 1, "/1/\"abc\"/<end>");
    check_format(v, 0, 0, "/");
    mbuf s = MBUF_INIT;
    assert_int_equal(mkey_format((const uint8_t *)"\x2d\x00\x60"
                                                  "ab",
                                 5, &s),
                     MERR_CORRUPT);
    assert_int_equal(mbuf_append_u8(&s, 0), 0);
    assert_string_equal((const char *)s.data, "/1/<corrupt:606162>");
    mbuf_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_order_and_roundtrip),
        cmocka_unit_test(test_matches_sqlite),
        cmocka_unit_test(test_edge_values),
        cmocka_unit_test(test_int_real_ties),
        cmocka_unit_test(test_encode_errors),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
