/* Online CREATE INDEX (sql/ddl_online.c): a hook between backfill batches
 * lets a second session write the table while the index is WRITE_ONLY —
 * its statements commit, the planner ignores the index, meridian_indexes
 * shows it write-only — and afterwards the index holds exactly the table's
 * rows. A duplicate found by the backfill, a cancel, a timeout and a DROP
 * INDEX during the backfill remove the index and all its entries; an abandoned backfill
 * (a gateway dying) leaves it visible, maintained and droppable; inside a
 * transaction CREATE INDEX stays one transactional step. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keycodec.h"
#include "tests/unit/sql/fixture.h"

typedef struct hook {
    sql_session *a, *b; /* a runs CREATE INDEX, b writes meanwhile */
    int calls;
    int (*fn)(struct hook *h);
} hook;

static int run_hook(void *arg)
{
    hook *h = arg;
    h->calls++;
    return h->fn ? h->fn(h) : 0;
}

static int setup2(void **state)
{
    setup(state);
    sql_ddl_set_backfill_batch(10);
    return 0;
}

static int teardown2(void **state)
{
    sql_ddl_set_backfill_hook(NULL, NULL);
    sql_ddl_set_backfill_batch(0);
    return teardown(state);
}

static int64_t one_int(sql_session *s, const char *sql)
{
    out o;
    return strtoll(q(s, sql, &o), NULL, 10);
}

/* Keys stored under table tid (rows and every index's entries). */
static size_t keys_of(fx *f, int64_t tid)
{
    sql_kv_txn *t;
    sql_kv_iter *it;
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    mkey_val v = mkey_int(tid, 0);
    const uint8_t *k, *val;
    size_t kl, vl, n = 0;
    assert_int_equal(mkey_encode_prefix(&v, 1, &lo), 0);
    assert_int_equal(mkey_encode_prefix(&v, 1, &hi), 0);
    assert_int_equal(mkey_prefix_end(&hi), 0);
    assert_int_equal(sql_kv_mem_ops.begin(f->kv, SQL_KV_READ_ONLY, &t, NULL), 0);
    assert_int_equal(sql_kv_mem_ops.scan(t, lo.data, lo.len, hi.data, hi.len, 0, 0, &it, NULL), 0);
    while (sql_kv_mem_ops.iter_next(it, &k, &kl, &val, &vl, NULL) == 1) n++;
    sql_kv_mem_ops.iter_close(it);
    sql_kv_mem_ops.rollback(t);
    mbuf_free(&lo);
    mbuf_free(&hi);
    return n;
}

/* Rows the KV returned for one statement (an index lookup reads one
 * entry, a full scan every row). */
static uint64_t rows_read(fx *f, sql_session *s, const char *sql)
{
    out o;
    sql_kv_mem_reset_stats(f->kv);
    q(s, sql, &o);
    return sql_kv_mem_get_stats(f->kv).rows;
}

/* The access path xBestIndex chose: 0 the table, k its k-th index (the
 * low byte of the plan number EXPLAIN QUERY PLAN shows, sql/vtab.c). */
static int plan_slot(sql_session *s, const char *sql)
{
    out o;
    char eqp[512];
    snprintf(eqp, sizeof(eqp), "EXPLAIN QUERY PLAN %s", sql);
    const char *p = strstr(q(s, eqp, &o), "VIRTUAL TABLE INDEX ");
    assert_non_null(p);
    return (int)(strtol(p + strlen("VIRTUAL TABLE INDEX "), NULL, 10) & 0xff);
}

static void fill(sql_session *s, int n)
{
    char sql[256];
    ok(s, "CREATE TABLE t(id INTEGER PRIMARY KEY, b INT, c TEXT)");
    snprintf(sql, sizeof(sql),
             "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
             "INSERT INTO t SELECT i, i * 10, 'c' || i FROM n",
             n);
    ok(s, sql);
}

static fx *g_fx;

/* While the index is WRITE_ONLY, b writes rows already backfilled and rows
 * not yet reached, and reads without the index. */
static int writer(hook *h)
{
    out o;
    if (h->calls != 3) return 0; /* two batches (ids 1..20) are in */
    q(h->b, "SELECT state FROM meridian_indexes WHERE name = 't_b'", &o);
    assert_string_equal(o.buf, "write-only;");
    q(h->b, "SELECT count(*) FROM sqlite_master WHERE name = 't_b' OR instr(sql, 't_b')", &o);
    assert_string_equal(o.buf, "0;"); /* not in the user connection's schema */
    assert_int_equal(rows_read(g_fx, h->b, "SELECT id FROM t WHERE b = 500"), 100); /* a scan */
    assert_int_equal(plan_slot(h->b, "SELECT id FROM t WHERE b = 500"), 0);         /* not t_b */
    ok(h->b, "INSERT INTO t VALUES(1000, 5, 'new'), (1001, 10000, 'new2')");
    ok(h->b, "UPDATE t SET b = b + 1 WHERE id IN (5, 95)");
    ok(h->b, "DELETE FROM t WHERE id IN (7, 97)");
    ok(h->b, "BEGIN; UPDATE t SET b = 7777 WHERE id = 15; UPDATE t SET b = 8888 WHERE id = 85; "
             "COMMIT");
    return 0;
}

static void test_writes_during_backfill(void **state)
{
    fx *f = *state;
    merr e = {0};
    out o, o2;
    sql_session *b;
    g_fx = f;
    fill(f->s, 100);
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &b, &e), 0);
    hook h = {f->s, b, 0, writer};
    sql_ddl_set_backfill_hook(run_hook, &h);
    ok(f->s, "CREATE INDEX t_b ON t(b)");
    assert_int_equal(h.calls, 11); /* 100 rows, 10 a batch: the 11th finds the end */
    q(f->s, "SELECT state, index_id FROM meridian_indexes WHERE name = 't_b'", &o);
    assert_string_equal(o.buf, "public|2;");
    q(b, "SELECT 1", &o); /* b reloads the catalog (a KV scan) before it measures */
    assert_int_equal(rows_read(f, b, "SELECT id FROM t WHERE b = 500"), 1); /* now used */
    assert_int_equal(plan_slot(b, "SELECT id FROM t WHERE b = 500"), 1);
    /* The index equals the table: an index-only scan (b and the key id are
     * in the entry) against a table scan, and no entry beyond the rows. */
    q(f->s, "SELECT b, id FROM t WHERE b > -1 ORDER BY b, id", &o);
    q(f->s, "SELECT b, id FROM t WHERE +b > -1 ORDER BY b, id", &o2);
    assert_string_equal(o.buf, o2.buf);
    assert_non_null(strstr(o.buf, "5|1000;"));
    assert_non_null(strstr(o.buf, "7777|15;"));
    assert_null(strstr(o.buf, "|97;"));
    assert_int_equal(one_int(f->s, "SELECT count(*) FROM t"), 100);
    assert_int_equal(keys_of(f, one_int(f->s, "SELECT table_id FROM meridian_tables")), 2 * 100);
    sql_session_close(b);
}

/* b inserts a duplicate of a row the backfill already did (refused: new
 * writes are checked) and of one it has not reached (found by it). */
static int dup_writer(hook *h)
{
    if (h->calls != 2) return 0;
    err(h->b, "INSERT INTO t VALUES(2000, 30, 'x')", MERR_INVALID, "UNIQUE constraint failed: t.b");
    ok(h->b, "INSERT INTO t VALUES(2001, 400, 'y')");
    return 0;
}

static void test_unique_duplicate(void **state)
{
    fx *f = *state;
    merr e = {0};
    sql_session *b;
    out o;
    fill(f->s, 50);
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &b, &e), 0);
    hook h = {f->s, b, 0, dup_writer};
    sql_ddl_set_backfill_hook(run_hook, &h);
    err(f->s, "CREATE UNIQUE INDEX u ON t(b)", MERR_EXISTS, "UNIQUE constraint failed: t.b");
    assert_true(h.calls >= 4);
    q(f->s, "SELECT count(*) FROM meridian_indexes", &o);
    assert_string_equal(o.buf, "0;");
    int64_t tid = one_int(f->s, "SELECT table_id FROM meridian_tables");
    assert_int_equal(one_int(f->s, "SELECT count(*) FROM t"), 51);
    assert_int_equal(keys_of(f, tid), 51); /* rows only: every entry went */
    /* ...and the name is free again once the duplicate is gone. */
    sql_ddl_set_backfill_hook(NULL, NULL);
    ok(f->s, "DELETE FROM t WHERE id = 2001");
    ok(f->s, "CREATE UNIQUE INDEX u ON t(b)");
    assert_int_equal(keys_of(f, tid), 2 * 50);
    sql_session_close(b);
}

static int canceler(hook *h)
{
    if (h->calls == 3) sql_session_cancel(h->a);
    return 0;
}

static int g_expired, g_unstopped;

static int expired(void *arg)
{
    (void)arg;
    return g_expired;
}

static void unstop(void *arg)
{
    (void)arg;
    g_unstopped++;
}

static int timer(hook *h)
{
    g_expired = h->calls >= 2; /* statement_timeout passes after one batch */
    return 0;
}

static int dropper(hook *h)
{
    if (h->calls == 2) ok(h->b, "DROP INDEX t_b");
    return 0;
}

static void test_cancel_and_drop_remove_it(void **state)
{
    fx *f = *state;
    merr e = {0};
    sql_session *b;
    out o;
    fill(f->s, 60);
    int64_t tid = one_int(f->s, "SELECT table_id FROM meridian_tables");
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &b, &e), 0);
    hook h = {f->s, b, 0, canceler};
    sql_ddl_set_backfill_hook(run_hook, &h);
    err(f->s, "CREATE INDEX t_b ON t(b)", MERR_CANCELED, "canceled");
    assert_int_equal(h.calls, 3);
    q(f->s, "SELECT count(*) FROM meridian_indexes", &o);
    assert_string_equal(o.buf, "0;");
    assert_int_equal(keys_of(f, tid), 60);
    /* A timeout: the removal runs past the deadline (which would stop the
     * catalog reload it needs) with the edge's KV deadline lifted. */
    h = (hook){f->s, b, 0, timer};
    sql_session_set_deadline(f->s, expired, NULL);
    sql_session_set_unstop(f->s, unstop, NULL);
    err(f->s, "CREATE INDEX t_b ON t(b)", MERR_TIMEOUT, "statement timeout");
    assert_int_equal(g_unstopped, 1);
    g_expired = 0;
    q(f->s, "SELECT count(*) FROM meridian_indexes", &o);
    assert_string_equal(o.buf, "0;");
    assert_int_equal(keys_of(f, tid), 60);
    h = (hook){f->s, b, 0, dropper};
    err(f->s, "CREATE INDEX t_b ON t(b)", MERR_INVALID, "dropped while it was built");
    q(f->s, "SELECT count(*) FROM meridian_indexes", &o);
    assert_string_equal(o.buf, "0;");
    assert_int_equal(keys_of(f, tid), 60);
    sql_session_close(b);
}

static int die(hook *h)
{
    return h->calls == 2; /* the gateway dies after one batch */
}

static void test_abandoned_index(void **state)
{
    fx *f = *state;
    out o;
    fill(f->s, 30);
    int64_t tid = one_int(f->s, "SELECT table_id FROM meridian_tables");
    hook h = {f->s, NULL, 0, die};
    sql_ddl_set_backfill_hook(run_hook, &h);
    err(f->s, "CREATE INDEX t_b ON t(b)", MERR_INTERNAL, "abandoned");
    sql_ddl_set_backfill_hook(NULL, NULL);
    q(f->s, "SELECT name, state FROM meridian_indexes", &o);
    assert_string_equal(o.buf, "t_b|write-only;");
    assert_int_equal(keys_of(f, tid), 30 + 10);
    ok(f->s, "INSERT INTO t VALUES(500, 1, 'kept')"); /* writers still keep it */
    assert_int_equal(keys_of(f, tid), 31 + 11);
    err(f->s, "CREATE INDEX t_b ON t(c)", MERR_EXISTS, "DROP INDEX t_b first");
    err(f->s, "CREATE INDEX IF NOT EXISTS t_b ON t(b)", MERR_EXISTS, "exists unfinished");
    ok(f->s, "DROP INDEX t_b");
    assert_int_equal(keys_of(f, tid), 31);
    ok(f->s, "CREATE INDEX t_b ON t(b)");
    assert_int_equal(keys_of(f, tid), 2 * 31);
}

/* In an explicit transaction, and on an empty table, CREATE INDEX is one
 * step: no batches, and it rolls back with the transaction. */
static void test_transactional_forms(void **state)
{
    fx *f = *state;
    out o;
    hook h = {f->s, NULL, 0, NULL};
    sql_ddl_set_backfill_hook(run_hook, &h);
    ok(f->s, "CREATE TABLE e(a INT)");
    ok(f->s, "CREATE INDEX e_a ON e(a)");
    fill(f->s, 30);
    ok(f->s, "BEGIN; CREATE INDEX t_b ON t(b); ROLLBACK");
    ok(f->s, "BEGIN; CREATE UNIQUE INDEX t_c ON t(c); COMMIT");
    assert_int_equal(h.calls, 0);
    q(f->s, "SELECT name, state FROM meridian_indexes ORDER BY name", &o);
    assert_string_equal(o.buf, "e_a|public;t_c|public;");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writes_during_backfill, setup2, teardown2),
        cmocka_unit_test_setup_teardown(test_unique_duplicate, setup2, teardown2),
        cmocka_unit_test_setup_teardown(test_cancel_and_drop_remove_it, setup2, teardown2),
        cmocka_unit_test_setup_teardown(test_abandoned_index, setup2, teardown2),
        cmocka_unit_test_setup_teardown(test_transactional_forms, setup2, teardown2),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
