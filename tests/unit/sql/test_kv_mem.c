/* The in-memory KV (the reference for sql/kv.h's contract): snapshots,
 * read-your-own-writes, scans merged with buffered writes, savepoints, and
 * serializable commits (conflicting transactions abort). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>

#include "sql/kv_mem.h"

static const sql_kv_ops *ops = &sql_kv_mem_ops;

static void put(sql_kv_txn *t, const char *k, const char *v)
{
    assert_int_equal(
        ops->put(t, (const uint8_t *)k, strlen(k), (const uint8_t *)v, strlen(v), NULL), 0);
}

static void del(sql_kv_txn *t, const char *k)
{
    assert_int_equal(ops->del(t, (const uint8_t *)k, strlen(k), NULL), 0);
}

/* The value of k as a C string in buf, or NULL if absent. */
static const char *get(sql_kv_txn *t, const char *k, char *buf)
{
    mbuf v = MBUF_INIT;
    int rc = ops->get(t, (const uint8_t *)k, strlen(k), &v, NULL);
    if (rc == MERR_NOTFOUND) {
        mbuf_free(&v);
        return NULL;
    }
    assert_int_equal(rc, 0);
    memcpy(buf, v.data, v.len);
    buf[v.len] = 0;
    mbuf_free(&v);
    return buf;
}

/* Scans [lo, hi) and renders "k=v,k=v". */
static const char *scan(sql_kv_txn *t, const char *lo, const char *hi, int rev, size_t limit,
                        char *out)
{
    sql_kv_iter *it;
    const uint8_t *k, *v;
    size_t kl, vl;
    out[0] = 0;
    assert_int_equal(ops->scan(t, (const uint8_t *)lo, strlen(lo), (const uint8_t *)hi,
                               hi ? strlen(hi) : 0, rev, limit, &it, NULL),
                     0);
    while (ops->iter_next(it, &k, &kl, &v, &vl, NULL) == 1) {
        if (out[0]) strcat(out, ",");
        strncat(out, (const char *)k, kl);
        strcat(out, "=");
        strncat(out, (const char *)v, vl);
    }
    ops->iter_close(it);
    return out;
}

static void test_snapshot_and_own_writes(void **state)
{
    (void)state;
    sql_kv_mem *m;
    sql_kv_txn *a, *b, *c;
    char buf[256];
    assert_int_equal(sql_kv_mem_open(&m), 0);
    assert_int_equal(ops->begin(m, 0, &a, NULL), 0);
    put(a, "k1", "v1");
    put(a, "k2", "v2");
    assert_string_equal(get(a, "k1", buf), "v1");
    assert_int_equal(ops->begin(m, 0, &b, NULL), 0);
    assert_null(get(b, "k1", buf)); /* uncommitted writes are invisible */
    assert_int_equal(ops->commit(a, NULL), 0);
    assert_null(get(b, "k1", buf)); /* b's snapshot predates a's commit */
    ops->rollback(b);
    assert_int_equal(ops->begin(m, 0, &c, NULL), 0);
    assert_string_equal(get(c, "k2", buf), "v2");
    del(c, "k2");
    assert_null(get(c, "k2", buf));
    put(c, "k0", "v0");
    put(c, "k1", "v1b");
    assert_string_equal(scan(c, "k", NULL, 0, 0, buf), "k0=v0,k1=v1b");
    assert_string_equal(scan(c, "k", NULL, 1, 0, buf), "k1=v1b,k0=v0");
    assert_string_equal(scan(c, "k", NULL, 1, 1, buf), "k1=v1b");
    assert_string_equal(scan(c, "k0", "k1", 0, 0, buf), "k0=v0");
    ops->rollback(c);
    assert_int_equal(sql_kv_mem_live_keys(m), 2);
    sql_kv_mem_close(m);
}

static void test_savepoints(void **state)
{
    (void)state;
    sql_kv_mem *m;
    sql_kv_txn *t;
    uint64_t m1, m2;
    char buf[256];
    assert_int_equal(sql_kv_mem_open(&m), 0);
    assert_int_equal(ops->begin(m, 0, &t, NULL), 0);
    put(t, "a", "1");
    assert_int_equal(ops->savepoint(t, &m1, NULL), 0);
    put(t, "b", "2");
    assert_int_equal(ops->savepoint(t, &m2, NULL), 0);
    del(t, "a");
    assert_string_equal(scan(t, "", NULL, 0, 0, buf), "b=2");
    assert_int_equal(ops->rollback_to(t, m2, NULL), 0);
    assert_string_equal(scan(t, "", NULL, 0, 0, buf), "a=1,b=2");
    assert_int_equal(ops->rollback_to(t, m1, NULL), 0);
    assert_string_equal(scan(t, "", NULL, 0, 0, buf), "a=1");
    assert_int_equal(ops->rollback_to(t, m2, NULL), MERR_INVALID); /* mark past the end */
    assert_int_equal(ops->commit(t, NULL), 0);
    assert_int_equal(sql_kv_mem_live_keys(m), 1);
    sql_kv_mem_close(m);
}

static void test_conflicts(void **state)
{
    (void)state;
    sql_kv_mem *m;
    sql_kv_txn *a, *b, *setup;
    char buf[256];
    merr e = {0};
    assert_int_equal(sql_kv_mem_open(&m), 0);
    assert_int_equal(ops->begin(m, 0, &setup, NULL), 0);
    put(setup, "x", "1");
    put(setup, "y", "1");
    assert_int_equal(ops->commit(setup, NULL), 0);
    /* Lost update: both read x, both write it; the second commit aborts. */
    assert_int_equal(ops->begin(m, 0, &a, NULL), 0);
    assert_int_equal(ops->begin(m, 0, &b, NULL), 0);
    get(a, "x", buf);
    get(b, "x", buf);
    put(a, "x", "2");
    put(b, "x", "3");
    assert_int_equal(ops->commit(a, NULL), 0);
    assert_int_equal(ops->commit(b, &e), MERR_ABORTED);
    assert_non_null(strstr(e.msg, "aborted"));
    /* Write skew: a reads x writes y, b reads y writes x: one must abort. */
    assert_int_equal(ops->begin(m, 0, &a, NULL), 0);
    assert_int_equal(ops->begin(m, 0, &b, NULL), 0);
    get(a, "x", buf);
    get(b, "y", buf);
    put(a, "y", "0");
    put(b, "x", "0");
    assert_int_equal(ops->commit(a, NULL), 0);
    assert_int_equal(ops->commit(b, NULL), MERR_ABORTED);
    /* Phantom: a scans a range, b inserts into it. */
    assert_int_equal(ops->begin(m, 0, &a, NULL), 0);
    assert_int_equal(ops->begin(m, 0, &b, NULL), 0);
    scan(a, "p", "q", 0, 0, buf);
    put(a, "z", "1");
    put(b, "pp", "1");
    assert_int_equal(ops->commit(b, NULL), 0);
    assert_int_equal(ops->commit(a, NULL), MERR_ABORTED);
    /* Disjoint transactions both commit; read-only ones always do. */
    assert_int_equal(ops->begin(m, 0, &a, NULL), 0);
    assert_int_equal(ops->begin(m, 0, &b, NULL), 0);
    get(a, "x", buf);
    put(a, "a1", "1");
    get(b, "y", buf);
    put(b, "b1", "1");
    assert_int_equal(ops->commit(a, NULL), 0);
    assert_int_equal(ops->commit(b, NULL), 0);
    assert_int_equal(ops->begin(m, 0, &a, NULL), 0);
    get(a, "a1", buf);
    assert_int_equal(ops->begin(m, 0, &b, NULL), 0);
    put(b, "a1", "2");
    assert_int_equal(ops->commit(b, NULL), 0);
    assert_int_equal(ops->commit(a, NULL), 0);
    /* A read-only transaction cannot write and never aborts. */
    assert_int_equal(ops->begin(m, SQL_KV_READ_ONLY, &a, NULL), 0);
    get(a, "x", buf);
    assert_int_equal(ops->put(a, (const uint8_t *)"x", 1, (const uint8_t *)"9", 1, &e),
                     MERR_INVALID);
    assert_int_equal(ops->del(a, (const uint8_t *)"x", 1, NULL), MERR_INVALID);
    assert_int_equal(ops->begin(m, 0, &b, NULL), 0);
    put(b, "x", "7");
    assert_int_equal(ops->commit(b, NULL), 0);
    assert_string_equal(get(a, "x", buf), "2"); /* still its snapshot */
    assert_int_equal(ops->commit(a, NULL), 0);
    sql_kv_mem_stats st = sql_kv_mem_get_stats(m);
    assert_int_equal(st.aborts, 3);
    assert_int_equal(st.ro_begins, 1);
    sql_kv_mem_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_and_own_writes),
        cmocka_unit_test(test_savepoints),
        cmocka_unit_test(test_conflicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
