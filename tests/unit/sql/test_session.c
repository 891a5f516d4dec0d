/* The session API: access paths chosen by xBestIndex (checked by counting KV
 * operations, not time), ORDER BY without a sort, errors for bad and
 * unsupported SQL, the catalog shared by sessions, transactions between
 * sessions (conflicts abort), corrupt data, and prepared statements. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/keycodec.h"
#include "sql/kv_mem.h"
#include "sql/session.h"
#include "tests/unit/sql/fixture.h"

static sql_session *g_session; /* for the cancel callback */

static void fill(sql_session *s)
{
    ok(s, "CREATE TABLE t(id INTEGER PRIMARY KEY, grp INT, name TEXT, v REAL)");
    ok(s, "CREATE INDEX t_grp ON t(grp)");
    ok(s, "CREATE TABLE c(a INT, b TEXT, x, PRIMARY KEY(a, b))");
    ok(s, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
          "INSERT INTO t SELECT i, i % 10, 'n' || i, i * 0.5 FROM n");
    ok(s, "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
          "INSERT INTO c SELECT i / 10, 'b' || (i % 10), i FROM n");
}

/* Rows the KV returned for one statement (rows scanned is what a plan
 * costs; gets are point reads). */
static sql_kv_mem_stats measure(fx *f, const char *sql, out *o)
{
    sql_kv_mem_reset_stats(f->kv);
    q(f->s, sql, o);
    return sql_kv_mem_get_stats(f->kv);
}

static void test_access_paths(void **state)
{
    fx *f = *state;
    out o;
    fill(f->s);
    sql_kv_mem_stats st = measure(f, "SELECT name FROM t WHERE id = 42", &o);
    assert_string_equal(o.buf, "n42;");
    assert_int_equal(st.rows, 1); /* a point lookup, not a scan */
    st = measure(f, "SELECT count(*) FROM t WHERE id >= 10 AND id < 20", &o);
    assert_string_equal(o.buf, "10;");
    assert_int_equal(st.rows, 10); /* a bounded range */
    st = measure(f, "SELECT count(*) FROM t WHERE id > 95", &o);
    assert_string_equal(o.buf, "5;");
    assert_int_equal(st.rows, 5);
    st = measure(f, "SELECT count(*) FROM t WHERE name = 'n7'", &o);
    assert_string_equal(o.buf, "1;");
    assert_int_equal(st.rows, 100); /* no index on name: a full scan */
    st = measure(f, "SELECT sum(v) FROM t WHERE grp = 3", &o);
    assert_string_equal(o.buf, "240.0;");
    assert_int_equal(st.rows, 10); /* ten index entries... */
    /* ...ten row fetches, and the schema version read twice (when the
     * statement is prepared, then in its transaction). */
    assert_int_equal(st.gets, 10 + 2);
    st = measure(f, "SELECT count(*), sum(id) FROM t WHERE grp = 3", &o);
    assert_string_equal(o.buf, "10|480;");
    assert_int_equal(st.rows, 10);
    assert_int_equal(st.gets, 2); /* the index covers grp and id: no row fetch */
    st = measure(f, "SELECT x FROM c WHERE a = 3 AND b = 'b4'", &o);
    assert_string_equal(o.buf, "34;");
    assert_int_equal(st.rows, 1);
    st = measure(f, "SELECT count(*) FROM c WHERE a = 3", &o);
    assert_string_equal(o.buf, "10;");
    assert_int_equal(st.rows, 10); /* a prefix of a composite key */
    st = measure(f, "SELECT count(*) FROM c WHERE a = 3 AND b > 'b6'", &o);
    assert_string_equal(o.buf, "3;");
    assert_int_equal(st.rows, 3);
    st = measure(f, "SELECT name FROM t WHERE id IN (5, 50, 500)", &o);
    assert_int_equal(st.rows, 2);
    /* A statement on its own that only reads runs read-only (a snapshot
     * read); one that writes does not. */
    assert_int_equal(st.ro_begins, st.begins);
    st = measure(f, "UPDATE t SET v = 0 WHERE id = 1", &o);
    assert_int_equal(st.begins - st.ro_begins, 1);
    assert_int_equal(st.commits, 1);
}

static void test_order_by_consumed(void **state)
{
    fx *f = *state;
    out o;
    fill(f->s);
    q(f->s, "EXPLAIN QUERY PLAN SELECT * FROM t ORDER BY id DESC", &o);
    assert_null(strstr(o.buf, "TEMP B-TREE"));
    q(f->s, "EXPLAIN QUERY PLAN SELECT * FROM c WHERE a = 2 ORDER BY b", &o);
    assert_null(strstr(o.buf, "TEMP B-TREE"));
    q(f->s, "EXPLAIN QUERY PLAN SELECT * FROM t ORDER BY name", &o);
    assert_non_null(strstr(o.buf, "TEMP B-TREE")); /* no index: SQLite sorts */
    q(f->s, "SELECT id FROM t ORDER BY id DESC LIMIT 3", &o);
    assert_string_equal(o.buf, "100;99;98;");
    sql_kv_mem_stats st = measure(f, "SELECT id FROM t LIMIT 3 OFFSET 2", &o);
    assert_string_equal(o.buf, "3;4;5;");
    assert_int_equal(st.rows, 5); /* LIMIT + OFFSET pushed into the scan */
    st = measure(f, "SELECT id FROM t ORDER BY id DESC LIMIT 2", &o);
    assert_string_equal(o.buf, "100;99;");
    assert_int_equal(st.rows, 2);
    st = measure(f, "SELECT id FROM t ORDER BY name LIMIT 2", &o);
    assert_string_equal(o.buf, "1;10;");
    assert_int_equal(st.rows, 100); /* SQLite sorts: it needs every row */
    st = measure(f, "SELECT id FROM t WHERE v > 49 LIMIT 2", &o);
    assert_string_equal(o.buf, "99;100;");
    assert_int_equal(st.rows, 100); /* filtered after the scan: no pushdown */
    st = measure(f, "SELECT x FROM c WHERE a = 9 ORDER BY b DESC LIMIT 2", &o);
    assert_string_equal(o.buf, "99;98;");
    assert_true(st.rows <= 10);
}

static void test_errors(void **state)
{
    fx *f = *state;
    ok(f->s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT UNIQUE, c CHECK (c > 0))");
    err(f->s, "SELEKT 1", MERR_INVALID, "syntax error");
    err(f->s, "SELECT * FROM missing", MERR_INVALID, "no such table: missing");
    err(f->s, "SELECT nope FROM t", MERR_INVALID, "no such column: nope");
    err(f->s, "INSERT INTO t VALUES(1, 'x', 1, 1)", MERR_INVALID, "3 columns but 4 values");
    err(f->s, "INSERT INTO t VALUES('abc', 'x', 1)", MERR_INVALID, "datatype mismatch");
    err(f->s, "INSERT INTO t VALUES(1, 'x', 0)", MERR_INVALID, "CHECK constraint failed");
    err(f->s, "ATTACH 'x.db' AS x", MERR_UNSUPPORTED, "ATTACH");
    err(f->s, "CREATE TEMP TABLE tt(a)", MERR_UNSUPPORTED, "temporary");
    err(f->s, "CREATE TRIGGER tr AFTER INSERT ON t BEGIN SELECT 1; END", MERR_UNSUPPORTED, NULL);
    err(f->s, "ALTER TABLE t DROP COLUMN c", MERR_UNSUPPORTED, "DROP COLUMN");
    err(f->s, "CREATE INDEX pi ON t(b) WHERE b > 'a'", MERR_UNSUPPORTED, "partial");
    err(f->s, "CREATE INDEX ei ON t(b || 'x')", MERR_UNSUPPORTED, "expressions");
    err(f->s, "CREATE TABLE n(a TEXT COLLATE NOCASE PRIMARY KEY)", MERR_UNSUPPORTED, "NOCASE");
    err(f->s, "INSERT INTO t VALUES(1, 'x', 1) ON CONFLICT(a) DO UPDATE SET b = 'y' RETURNING *",
        MERR_INVALID, "UPSERT");
    /* Keys have at most MKEY_MAX_COLS columns: a too-wide index is refused. */
    {
        char wide[4096] = "CREATE TABLE w(", idx[2048] = "CREATE INDEX wi ON w(";
        for (int i = 0; i < 40; i++) {
            char c[32];
            snprintf(c, sizeof(c), "%sc%d", i ? ", " : "", i);
            strcat(wide, c);
            strcat(idx, c);
        }
        strcat(wide, ", PRIMARY KEY(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, "
                     "c14, c15, c16, c17, c18, c19, c20, c21, c22, c23, c24, c25, c26, c27, c28))");
        strcat(idx, ")");
        ok(f->s, wide);
        err(f->s, idx, MERR_TOOBIG, "too many columns");
        ok(f->s, "SELECT count(*) FROM w");
    }
    /* The failed DDL left nothing behind. */
    out o;
    q(f->s, "SELECT count(*) FROM sqlite_schema WHERE name IN ('pi', 'ei', 'n', 'tt', 'wi')", &o);
    assert_string_equal(o.buf, "0;");
    ok(f->s, "INSERT INTO t VALUES(1, 'x', 1)");
    /* Garbage input of every kind gets an error, never a crash. */
    uint64_t x = 0x2545F4914F6CDD1DULL;
    static const char *frags[] = {"SELECT", "(",    ")",      "'",     "\"",     "t",
                                  "*",      "FROM", "WHERE",  "=",     "1",      ",",
                                  "--",     "/*",   "CREATE", "TABLE", "INSERT", "INTO",
                                  "VALUES", "DROP", "ALTER",  "BEGIN", "x'0",    ";"};
    for (int i = 0; i < 400; i++) {
        char sql[256] = "";
        for (int k = 0; k < 8; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            strcat(sql, frags[x % (sizeof(frags) / sizeof(frags[0]))]);
            strcat(sql, " ");
        }
        /* In a transaction rolled back after it: a fragment may well be a
         * valid DROP TABLE t (after an empty statement, say), which must
         * then be undone, the session's schema included. */
        merr e = {0};
        ok(f->s, "BEGIN");
        sql_exec(f->s, sql, NULL, NULL, &e);
        if (sql_session_in_txn(f->s)) sql_exec(f->s, "ROLLBACK", NULL, NULL, &e);
    }
    q(f->s, "SELECT * FROM t", &o);
    assert_string_equal(o.buf, "1|x|1;");
    /* DDL after empty statements is DDL: the catalog changes (another
     * session sees it), not only this session's SQLite. */
    ok(f->s, "CREATE TABLE z(a)");
    ok(f->s, ";; DROP TABLE z");
    sql_session *s2;
    merr e = {0};
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &s2, &e), 0);
    err(s2, "SELECT * FROM z", MERR_INVALID, "no such table");
    sql_session_close(s2);
}

static void test_sessions_share_catalog(void **state)
{
    fx *f = *state;
    sql_session *s2;
    merr e = {0};
    out o;
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &s2, &e), 0);
    ok(f->s, "CREATE TABLE a(k INTEGER PRIMARY KEY, v TEXT DEFAULT 'd')");
    ok(f->s, "INSERT INTO a(k) VALUES(1)");
    q(s2, "SELECT * FROM a", &o); /* s2 loads the new schema */
    assert_string_equal(o.buf, "1|d;");
    ok(s2, "ALTER TABLE a ADD COLUMN w INT DEFAULT 7");
    q(f->s, "SELECT * FROM a", &o);
    assert_string_equal(o.buf, "1|d|7;");
    /* Uncommitted DDL is invisible to the other session. */
    ok(s2, "BEGIN");
    ok(s2, "CREATE TABLE hidden(x)");
    err(f->s, "SELECT * FROM hidden", MERR_INVALID, "no such table");
    ok(s2, "COMMIT");
    q(f->s, "SELECT count(*) FROM hidden", &o);
    assert_string_equal(o.buf, "0;");
    /* A new session on the same KV sees everything. */
    sql_session_close(s2);
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &s2, &e), 0);
    q(s2, "SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name", &o);
    assert_string_equal(o.buf, "a;hidden;");
    sql_session_close(s2);
}

static void test_concurrent_transactions(void **state)
{
    fx *f = *state;
    sql_session *s2;
    merr e = {0};
    out o;
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &s2, &e), 0);
    ok(f->s, "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INT, oncall INT)");
    ok(f->s, "INSERT INTO acct VALUES(1, 100, 1), (2, 100, 1)");
    /* Lost update: both read-modify-write the same row; the later commit aborts. */
    ok(f->s, "BEGIN");
    ok(s2, "BEGIN");
    ok(f->s, "UPDATE acct SET bal = bal + 10 WHERE id = 1");
    ok(s2, "UPDATE acct SET bal = bal + 20 WHERE id = 1");
    ok(f->s, "COMMIT");
    err(s2, "COMMIT", MERR_ABORTED, "aborted");
    assert_int_equal(sql_session_in_txn(s2), 0);
    q(f->s, "SELECT bal FROM acct WHERE id = 1", &o);
    assert_string_equal(o.buf, "110;");
    /* Write skew (each takes the other off call after checking someone
     * stays on call): serializability makes one abort. */
    ok(f->s, "BEGIN");
    ok(s2, "BEGIN");
    q(f->s, "SELECT count(*) FROM acct WHERE oncall = 1", &o);
    assert_string_equal(o.buf, "2;");
    q(s2, "SELECT count(*) FROM acct WHERE oncall = 1", &o);
    ok(f->s, "UPDATE acct SET oncall = 0 WHERE id = 1");
    ok(s2, "UPDATE acct SET oncall = 0 WHERE id = 2");
    ok(f->s, "COMMIT");
    err(s2, "COMMIT", MERR_ABORTED, NULL);
    q(f->s, "SELECT count(*) FROM acct WHERE oncall = 1", &o);
    assert_string_equal(o.buf, "1;");
    /* Concurrent DDL invalidates a transaction that used the old schema. */
    ok(s2, "BEGIN");
    q(s2, "SELECT count(*) FROM acct", &o);
    ok(f->s, "CREATE INDEX acct_bal ON acct(bal)");
    ok(s2, "INSERT INTO acct VALUES(3, 5, 0)");
    err(s2, "COMMIT", MERR_ABORTED, NULL);
    q(f->s, "SELECT id FROM acct WHERE bal = 110", &o);
    assert_string_equal(o.buf, "1;");
    sql_session_close(s2);
}

static void test_corrupt_row(void **state)
{
    fx *f = *state;
    sql_kv_txn *t;
    mbuf k = MBUF_INIT;
    ok(f->s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)");
    ok(f->s, "INSERT INTO t VALUES(1, 'fine')");
    /* Table ids start at 100; the first table's rows are (100, 1, rowid). */
    mkey_val kv[3] = {mkey_int(100, 0), mkey_int(1, 0), mkey_int(2, 0)};
    assert_int_equal(mkey_encode(kv, 3, &k), 0);
    assert_int_equal(sql_kv_mem_ops.begin(f->kv, 0, &t, NULL), 0);
    assert_int_equal(sql_kv_mem_ops.put(t, k.data, k.len, (const uint8_t *)"\x01\x0b\x7f", 3, NULL),
                     0);
    assert_int_equal(sql_kv_mem_ops.commit(t, NULL), 0);
    err(f->s, "SELECT * FROM t", MERR_INVALID, "record");
    err(f->s, "SELECT * FROM t WHERE a = 2", MERR_INVALID, "record");
    out o;
    q(f->s, "SELECT b FROM t WHERE a = 1", &o);
    assert_string_equal(o.buf, "fine;");
    mbuf_free(&k);
}

static void test_prepared(void **state)
{
    fx *f = *state;
    sql_stmt *st;
    merr e = {0};
    const char *tail;
    ok(f->s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT, c BLOB)");
    assert_int_equal(
        sql_prepare(f->s, "INSERT INTO t VALUES(?1, ?2, ?3); SELECT 1", &st, &tail, &e), 0);
    assert_string_equal(tail, " SELECT 1");
    for (int i = 1; i <= 3; i++) {
        sqlite3_bind_int(sql_stmt_handle(st), 1, i);
        sqlite3_bind_text(sql_stmt_handle(st), 2, "x", -1, SQLITE_STATIC);
        sqlite3_bind_blob(sql_stmt_handle(st), 3, "\0\1", 2, SQLITE_STATIC);
        assert_int_equal(sql_step(st, &e), 0);
        assert_int_equal(sqlite3_reset(sql_stmt_handle(st)), SQLITE_OK);
        assert_int_equal(sql_finalize(st, &e), 0);
        if (i < 3)
            assert_int_equal(sql_prepare(f->s, "INSERT INTO t VALUES(?1, ?2, ?3)", &st, NULL, &e),
                             0);
    }
    assert_int_equal(
        sql_prepare(f->s, "SELECT a, b, c AS blobby FROM t WHERE a >= ?", &st, NULL, &e), 0);
    sqlite3_bind_int(sql_stmt_handle(st), 1, 2);
    assert_int_equal(sql_column_count(st), 3);
    assert_string_equal(sql_column_name(st, 2), "blobby");
    assert_int_equal(sql_step(st, &e), 1);
    assert_int_equal(sql_column_type(st, 0), SQLITE_INTEGER);
    assert_int_equal(sql_column_int64(st, 0), 2);
    assert_int_equal(sql_column_type(st, 2), SQLITE_BLOB);
    assert_int_equal(sql_column_bytes(st, 2), 2);
    assert_memory_equal(sql_column_blob(st, 2), "\0\1", 2);
    assert_int_equal(sql_finalize(st, &e), 0); /* finalized before the end: fine */
    assert_int_equal(sql_prepare(f->s, "  -- only a comment\n", &st, NULL, &e), 0);
    assert_null(st);
}

static void test_system_views(void **state)
{
    fx *f = *state;
    out o;
    ok(f->s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b UNIQUE, c)");
    ok(f->s, "CREATE INDEX tc ON t(c DESC, b)");
    ok(f->s, "CREATE VIEW v AS SELECT a FROM t");
    q(f->s, "SELECT name, table_id, type FROM meridian_tables ORDER BY name", &o);
    assert_string_equal(o.buf, "t|100|table;v|NULL|view;");
    q(f->s, "SELECT name, index_id, is_unique, columns FROM meridian_indexes ORDER BY index_id",
      &o);
    assert_string_equal(o.buf, "sqlite_autoindex_t_1|2|1|b;tc|3|0|c DESC, b;");
    /* Joinable and filterable like any table; DDL shows up at once. */
    ok(f->s, "BEGIN");
    ok(f->s, "DROP INDEX tc");
    q(f->s,
      "SELECT t.name, count(i.name) FROM meridian_tables t LEFT JOIN meridian_indexes i "
      "ON i.table_name = t.name WHERE t.type = 'table' GROUP BY t.name",
      &o);
    assert_string_equal(o.buf, "t|1;");
    ok(f->s, "ROLLBACK");
    q(f->s, "SELECT count(*) FROM meridian_indexes", &o);
    assert_string_equal(o.buf, "2;");
}

static int after_n(void *arg)
{
    int *left = arg;
    return --*left < 0;
}

static int cancel_at_second_row(void *arg, sql_stmt *st)
{
    int *rows = arg;
    (void)st;
    if (++*rows == 2) sql_session_cancel(g_session);
    return 0;
}

static void test_deadline_and_cancel(void **state)
{
    fx *f = *state;
    out o;
    int left = 3, rows = 0;
    merr e = {0};
    static const char *big = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c "
                             "WHERE i < 1000000) ";
    char sql[512];
    ok(f->s, "CREATE TABLE t(a INTEGER PRIMARY KEY)");
    ok(f->s, "INSERT INTO t VALUES(1), (2), (3)");
    /* The deadline passes after three checks: the statement stops and its
     * writes are undone, whether on its own or inside a transaction. */
    sql_session_set_deadline(f->s, after_n, &left);
    snprintf(sql, sizeof(sql), "%s INSERT INTO t SELECT i + 10 FROM c", big);
    err(f->s, sql, MERR_TIMEOUT, "statement timeout");
    left = 3;
    ok(f->s, "BEGIN");
    ok(f->s, "INSERT INTO t VALUES(4)");
    err(f->s, sql, MERR_TIMEOUT, NULL);
    ok(f->s, "COMMIT");
    sql_session_set_deadline(f->s, NULL, NULL);
    q(f->s, "SELECT count(*) FROM t", &o);
    assert_string_equal(o.buf, "4;");
    /* Cancellation stops a running statement. */
    g_session = f->s;
    assert_int_equal(sql_exec(f->s, "SELECT a FROM t ORDER BY a", cancel_at_second_row, &rows, &e),
                     MERR_CANCELED);
    assert_int_equal(rows, 2);
    q(f->s, "SELECT count(*) FROM t", &o); /* the session goes on */
    assert_string_equal(o.buf, "4;");
}

static void test_read_only_session(void **state)
{
    fx *f = *state;
    out o;
    ok(f->s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
    ok(f->s, "INSERT INTO t VALUES(1, 'x')");
    sql_session_set_read_only(f->s, 1);
    sql_kv_mem_reset_stats(f->kv);
    q(f->s, "SELECT * FROM t", &o);
    assert_string_equal(o.buf, "1|x;");
    err(f->s, "INSERT INTO t VALUES(2, 'y')", MERR_INVALID, "read-only");
    err(f->s, "CREATE TABLE u(x)", MERR_INVALID, "read-only");
    ok(f->s, "BEGIN");
    q(f->s, "SELECT count(*) FROM t", &o);
    err(f->s, "DELETE FROM t", MERR_INVALID, "read-only");
    ok(f->s, "COMMIT");
    sql_kv_mem_stats st = sql_kv_mem_get_stats(f->kv);
    assert_int_equal(st.ro_begins, st.begins);
    sql_session_set_read_only(f->s, 0);
    ok(f->s, "INSERT INTO t VALUES(2, 'y')");
    q(f->s, "SELECT count(*) FROM t", &o);
    assert_string_equal(o.buf, "2;");
}

/* A transaction that rolls back having changed nothing in the catalog
 * leaves the loaded catalog alone: the next statement costs what it did
 * before (the version read, its own rows), not a reload of every table. One
 * that ran DDL and rolled back reloads: its table is gone. */
static void test_rollback_keeps_catalog(void **state)
{
    fx *f = *state;
    out o;
    ok(f->s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
    ok(f->s, "CREATE TABLE t2(a INTEGER PRIMARY KEY, b)");
    ok(f->s, "INSERT INTO t VALUES(1, 'x')");
    q(f->s, "SELECT b FROM t WHERE a = 1", &o);
    sql_kv_mem_stats base = measure(f, "SELECT b FROM t WHERE a = 1", &o);
    assert_string_equal(o.buf, "x;");
    ok(f->s, "BEGIN");
    ok(f->s, "INSERT INTO t VALUES(2, 'y')");
    ok(f->s, "ROLLBACK");
    sql_kv_mem_stats after = measure(f, "SELECT b FROM t WHERE a = 1", &o);
    assert_string_equal(o.buf, "x;");
    assert_int_equal(after.scans, base.scans);
    assert_int_equal(after.gets, base.gets);
    assert_int_equal(after.rows, base.rows);
    ok(f->s, "BEGIN");
    ok(f->s, "CREATE TABLE u(x)");
    ok(f->s, "ROLLBACK");
    err(f->s, "SELECT * FROM u", MERR_INVALID, "no such table");
    after = measure(f, "SELECT b FROM t WHERE a = 1", &o);
    assert_string_equal(o.buf, "x;");
}

/* BEGIN, COMMIT and friends name no table: preparing them reads nothing
 * (no peek at the catalog's version); the transaction BEGIN opens reads
 * the version once. */
static void test_control_statements_read_once(void **state)
{
    fx *f = *state;
    out o;
    ok(f->s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
    q(f->s, "SELECT count(*) FROM t", &o);
    sql_kv_mem_stats st = measure(f, "BEGIN", &o);
    assert_int_equal(st.begins, 1);
    assert_int_equal(st.ro_begins, 0);
    assert_int_equal(st.gets, 1);
    st = measure(f, "COMMIT", &o);
    assert_int_equal(st.begins, 0);
    assert_int_equal(st.gets, 0);
    st = measure(f, "BEGIN READ ONLY", &o);
    assert_int_equal(st.begins, 1);
    assert_int_equal(st.ro_begins, 1);
    ok(f->s, "ROLLBACK");
    /* A statement that names a table still prepares against the catalog. */
    st = measure(f, "SELECT count(*) FROM t", &o);
    assert_true(st.begins >= 1);
}

/* BEGIN [TRANSACTION] READ ONLY: a read-only kv transaction (a snapshot,
 * no locks) whose writes are refused; READ WRITE and plain BEGIN are not. */
static void test_begin_read_only(void **state)
{
    fx *f = *state;
    out o;
    ok(f->s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
    ok(f->s, "INSERT INTO t VALUES(1, 'x')");
    sql_kv_mem_reset_stats(f->kv);
    ok(f->s, "BEGIN READ ONLY");
    q(f->s, "SELECT b FROM t WHERE a = 1", &o);
    assert_string_equal(o.buf, "x;");
    err(f->s, "INSERT INTO t VALUES(2, 'y')", MERR_INVALID, "READ ONLY transaction");
    err(f->s, "CREATE TABLE u(x)", MERR_INVALID, "READ ONLY transaction");
    q(f->s, "SELECT count(*) FROM t", &o); /* a refused write leaves the transaction usable */
    assert_string_equal(o.buf, "1;");
    ok(f->s, "COMMIT");
    sql_kv_mem_stats st = sql_kv_mem_get_stats(f->kv); /* (the peek of prepare begins one too) */
    assert_true(st.begins > 0);
    assert_int_equal(st.ro_begins, st.begins);
    ok(f->s, "BEGIN TRANSACTION READ ONLY");
    err(f->s, "DELETE FROM t", MERR_INVALID, "READ ONLY transaction");
    ok(f->s, "ROLLBACK");
    /* Read-only ends with its transaction; READ WRITE is an ordinary one. */
    ok(f->s, "BEGIN READ WRITE");
    ok(f->s, "INSERT INTO t VALUES(2, 'y')");
    ok(f->s, "COMMIT");
    ok(f->s, "BEGIN");
    ok(f->s, "INSERT INTO t VALUES(3, 'z')");
    ok(f->s, "COMMIT");
    q(f->s, "SELECT count(*) FROM t", &o);
    assert_string_equal(o.buf, "3;");
    err(f->s, "BEGIN READ SOMETIMES", MERR_INVALID, "READ ONLY or READ WRITE");
}

static int g_fail_commits; /* commits of writes that lose an injected conflict */

static int flaky_commit(sql_kv_txn *t, merr *e)
{
    if (g_fail_commits > 0) {
        g_fail_commits--;
        sql_kv_mem_ops.rollback(t);
        return merr_set(e, MERR_ABORTED, "transaction aborted: injected conflict");
    }
    return sql_kv_mem_ops.commit(t, e);
}

/* Reads of user rows (table ids from 100 on, after the catalog's) that
 * lose an injected conflict mid-statement. */
static int g_fail_reads;
static int user_key(const uint8_t *k, size_t n)
{
    uint8_t lo[16];
    mbuf b = MBUF_INIT;
    mkey_val v = mkey_int(100, 0);
    int rc = mkey_encode_prefix(&v, 1, &b);
    size_t m = b.len < sizeof(lo) ? b.len : sizeof(lo);
    if (!rc) memcpy(lo, b.data, m);
    mbuf_free(&b);
    return !rc && n >= m && memcmp(k, lo, m) >= 0;
}

static int flaky_get(sql_kv_txn *t, const uint8_t *k, size_t n, mbuf *v, merr *e)
{
    if (g_fail_reads > 0 && user_key(k, n)) {
        g_fail_reads--;
        return merr_set(e, MERR_ABORTED, "transaction aborted: injected lost locks");
    }
    return sql_kv_mem_ops.get(t, k, n, v, e);
}

static int flaky_scan(sql_kv_txn *t, const uint8_t *lo, size_t lolen, const uint8_t *hi,
                      size_t hilen, int reverse, size_t limit, sql_kv_iter **it, merr *e)
{
    if (g_fail_reads > 0 && user_key(lo, lolen)) {
        g_fail_reads--;
        return merr_set(e, MERR_ABORTED, "transaction aborted: injected lost locks");
    }
    return sql_kv_mem_ops.scan(t, lo, lolen, hi, hilen, reverse, limit, it, e);
}

/* A statement on its own whose read loses a conflict before it shows a row
 * reruns in a fresh transaction; inside BEGIN the abort is the client's. */
static void test_autocommit_read_retry(void **state)
{
    fx *f = *state;
    sql_kv_ops flaky = sql_kv_mem_ops;
    sql_session *s;
    merr e = {0};
    out o;
    flaky.get = flaky_get;
    flaky.scan = flaky_scan;
    assert_int_equal(sql_session_open(&flaky, f->kv, &s, &e), 0);
    ok(s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
    ok(s, "INSERT INTO t VALUES(1, 'x'), (2, 'y')");
    g_fail_reads = 2;
    ok(s, "UPDATE t SET b = b || '!' WHERE a >= 1");
    assert_int_equal(g_fail_reads, 0);
    assert_string_equal(q(s, "SELECT * FROM t ORDER BY a", &o), "1|x!;2|y!;");
    g_fail_reads = 10;
    err(s, "UPDATE t SET b = 'z'", MERR_ABORTED, "injected");
    g_fail_reads = 0;
    assert_string_equal(q(s, "SELECT * FROM t ORDER BY a", &o), "1|x!;2|y!;");
    ok(s, "BEGIN");
    g_fail_reads = 1;
    err(s, "UPDATE t SET b = 'w' WHERE a = 1", MERR_ABORTED, "injected");
    assert_int_equal(sql_session_in_txn(s), 0);
    g_fail_reads = 0;
    sql_session_close(s);
}

static void test_autocommit_retry(void **state)
{
    fx *f = *state;
    sql_kv_ops flaky = sql_kv_mem_ops;
    sql_session *s;
    merr e = {0};
    out o;
    flaky.commit = flaky_commit;
    assert_int_equal(sql_session_open(&flaky, f->kv, &s, &e), 0);
    ok(s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b)");
    /* Two lost conflicts: the statement reruns and lands once. */
    g_fail_commits = 2;
    ok(s, "INSERT INTO t(b) VALUES('x')");
    assert_int_equal(g_fail_commits, 0);
    q(s, "SELECT * FROM t", &o);
    assert_string_equal(o.buf, "1|x;");
    /* Past the retry budget (8 reruns, sql/session.c) the abort reaches
     * the client; nothing landed. */
    g_fail_commits = 20;
    err(s, "INSERT INTO t(b) VALUES('y')", MERR_ABORTED, "injected");
    assert_int_equal(g_fail_commits, 20 - 9);
    g_fail_commits = 0;
    q(s, "SELECT count(*) FROM t", &o);
    assert_string_equal(o.buf, "1;");
    /* OR FAIL keeps the rows before the failing one: a lost conflict when
     * they commit reruns the statement, which keeps them then. */
    ok(s, "CREATE TABLE cf(a INTEGER PRIMARY KEY, b CHECK (b >= 0))");
    g_fail_commits = 1;
    err(s, "INSERT OR FAIL INTO cf VALUES(1, 1), (2, -1)", MERR_INVALID, "CHECK constraint");
    assert_int_equal(g_fail_commits, 0);
    assert_string_equal(q(s, "SELECT a FROM cf", &o), "1;");
    /* DDL on its own too: the table lands once, with its catalog entry. */
    g_fail_commits = 2;
    ok(s, "CREATE TABLE t2(a INTEGER PRIMARY KEY)");
    assert_int_equal(g_fail_commits, 0);
    ok(s, "INSERT INTO t2 VALUES(1)");
    g_fail_commits = 1;
    ok(s, "DROP TABLE t2");
    err(s, "SELECT * FROM t2", MERR_INVALID, "no such table");
    /* Inside BEGIN nothing is retried: COMMIT reports the abort. */
    ok(s, "BEGIN");
    ok(s, "INSERT INTO t(b) VALUES('z')");
    g_fail_commits = 1;
    err(s, "COMMIT", MERR_ABORTED, NULL);
    q(s, "SELECT count(*) FROM t", &o);
    assert_string_equal(o.buf, "1;");
    sql_session_close(s);
}

static int g_dead_checks; /* alive() answers: this many "aborted" first */
static int g_alive_calls;

static int fake_alive(sql_kv_txn *t, merr *e)
{
    (void)t;
    g_alive_calls++;
    if (g_dead_checks > 0) {
        g_dead_checks--;
        return merr_set(e, MERR_ABORTED, "wounded elsewhere");
    }
    return 0;
}

/* A statement error inside a transaction the KV says can no longer commit
 * (sql/kv.h alive: wounded in another range, where its reads may then see
 * rows its lost locks no longer protect) is the lost conflict it is:
 * MERR_ABORTED, the transaction ends, and on its own the statement reruns.
 * While the transaction lives, the error stands as SQLite reports it. */
static void test_error_of_wounded_txn(void **state)
{
    fx *f = *state;
    sql_kv_ops ops = sql_kv_mem_ops;
    ops.alive = fake_alive;
    sql_session *s;
    merr e = {0};
    out o;
    assert_int_equal(sql_session_open(&ops, f->kv, &s, &e), 0);
    ok(s, "CREATE TABLE u(a INTEGER PRIMARY KEY, b UNIQUE)");
    ok(s, "INSERT INTO u VALUES(1, 'x')");
    /* Alive: the UNIQUE error is the statement's, the transaction goes on. */
    g_dead_checks = 0, g_alive_calls = 0;
    ok(s, "BEGIN");
    ok(s, "INSERT INTO u VALUES(2, 'y')");
    err(s, "INSERT INTO u VALUES(3, 'x')", MERR_INVALID, "UNIQUE constraint failed");
    assert_true(g_alive_calls >= 1);
    ok(s, "COMMIT");
    assert_string_equal(q(s, "SELECT a FROM u ORDER BY a", &o), "1;2;");
    /* Wounded: the same error becomes a retryable abort that names both,
     * and the transaction is over (its writes gone). */
    g_dead_checks = 1;
    ok(s, "BEGIN");
    ok(s, "INSERT INTO u VALUES(4, 'z')");
    err(s, "INSERT INTO u VALUES(5, 'x')", MERR_ABORTED, "wounded elsewhere");
    err(s, "COMMIT", MERR_INVALID, NULL); /* no transaction is open any more */
    assert_string_equal(q(s, "SELECT a FROM u ORDER BY a", &o), "1;2;");
    /* On its own: rerun, and this time the transaction lives, so the
     * constraint error is what the client gets. */
    g_dead_checks = 1, g_alive_calls = 0;
    err(s, "INSERT INTO u VALUES(6, 'x')", MERR_INVALID, "UNIQUE constraint failed");
    assert_int_equal(g_dead_checks, 0);
    assert_int_equal(g_alive_calls, 2);
    sql_session_close(s);
}

/* Reads counted by table id (the key's first element) and by whether
 * lock_for_write was on. */
static int g_fw_on;
static int g_reads[2][256]; /* [for write][table id % 256] */

static void count_read(const uint8_t *key, size_t klen)
{
    mkey_val v[16];
    size_t n = 0;
    mbuf sc = MBUF_INIT;
    merr e = {0};
    if (mkey_decode(key, klen, v, 16, &n, &sc, &e) == 0 && n >= 1 && v[0].type == MKEY_INT)
        g_reads[g_fw_on ? 1 : 0][(uint64_t)v[0].i % 256]++;
    mbuf_free(&sc);
}

static int counting_get(sql_kv_txn *t, const uint8_t *key, size_t klen, mbuf *val, merr *e)
{
    count_read(key, klen);
    return sql_kv_mem_ops.get(t, key, klen, val, e);
}

static int counting_scan(sql_kv_txn *t, const uint8_t *lo, size_t lolen, const uint8_t *hi,
                         size_t hilen, int reverse, size_t limit, sql_kv_iter **it, merr *e)
{
    count_read(lo, lolen);
    return sql_kv_mem_ops.scan(t, lo, lolen, hi, hilen, reverse, limit, it, e);
}

static void note_for_write(sql_kv_txn *t, int on)
{
    (void)t;
    g_fw_on = on;
}

/* Which reads lock for writing (sql/kv.h lock_for_write): those of the
 * table a statement writes (the rows an UPDATE or DELETE finds, an INSERT's
 * rowid and conflict checks), never those of other tables it only reads,
 * nor any read of a plain SELECT. Tables 100 (t) and 101 (u). */
static void test_reads_for_write(void **state)
{
    fx *f = *state;
    sql_kv_ops ops = sql_kv_mem_ops;
    ops.get = counting_get;
    ops.scan = counting_scan;
    ops.lock_for_write = note_for_write;
    sql_session *s;
    merr e = {0};
    out o;
    assert_int_equal(sql_session_open(&ops, f->kv, &s, &e), 0);
    ok(s, "CREATE TABLE t(id INTEGER PRIMARY KEY, v INT)");
    ok(s, "CREATE TABLE u(k INTEGER PRIMARY KEY, x INT)");
    ok(s, "INSERT INTO u VALUES(1, 10)");
    memset(g_reads, 0, sizeof(g_reads));
    ok(s, "INSERT INTO t(v) VALUES(1), (2)");
    assert_true(g_reads[1][100] > 0); /* the next rowid, the conflict check */
    assert_int_equal(g_reads[0][100], 0);
    memset(g_reads, 0, sizeof(g_reads));
    q(s, "SELECT v FROM t WHERE id = 1", &o);
    assert_true(g_reads[0][100] > 0);
    assert_int_equal(g_reads[1][100], 0);
    memset(g_reads, 0, sizeof(g_reads));
    ok(s, "UPDATE t SET v = v + (SELECT x FROM u WHERE k = 1) WHERE id = 1");
    assert_true(g_reads[1][100] > 0);
    assert_int_equal(g_reads[0][100], 0);
    assert_true(g_reads[0][101] > 0); /* u is only read */
    assert_int_equal(g_reads[1][101], 0);
    memset(g_reads, 0, sizeof(g_reads));
    ok(s, "DELETE FROM t WHERE v = 2");
    assert_true(g_reads[1][100] > 0);
    assert_int_equal(g_reads[0][100], 0);
    assert_int_equal(g_fw_on, 0); /* never left on */
    assert_string_equal(q(s, "SELECT id, v FROM t", &o), "1|11;");
    sql_session_close(s);
}

/* CREATE TABLE ... AS SELECT keeps its own copy of the query: the caller's
 * text may be gone (a server frees the request) by the time it runs, and
 * the statements after it in the same text are not part of it. */
static void test_ctas_text(void **state)
{
    fx *f = *state;
    out o;
    fill(f->s);
    const char *text = "CREATE TABLE c2 AS SELECT id, name FROM t WHERE id <= 3; SELECT 42";
    char *copy = strdup(text);
    sql_stmt *st = NULL;
    const char *tail = NULL;
    merr e = {0};
    assert_int_equal(sql_prepare(f->s, copy, &st, &tail, &e), 0);
    assert_string_equal(tail, " SELECT 42");
    memset(copy, ' ', strlen(copy)); /* the caller reuses its buffer */
    free(copy);
    if (sql_step(st, &e) != 0) fail_msg("CTAS: %s", merr_msg(&e));
    assert_int_equal(sql_finalize(st, &e), 0);
    assert_string_equal(q(f->s, "SELECT * FROM c2 ORDER BY id", &o), "1|n1;2|n2;3|n3;");
}

/* INSERT OR ROLLBACK ends the transaction on a constraint failure with a
 * constraint error, not an abort to retry (running it again fails the
 * same way); COMMIT then has no transaction, as in SQLite. */
static void test_or_rollback_not_retryable(void **state)
{
    fx *f = *state;
    out o;
    ok(f->s, "CREATE TABLE u(k INTEGER PRIMARY KEY, v UNIQUE)");
    ok(f->s, "BEGIN");
    ok(f->s, "INSERT INTO u VALUES(1, 'a')");
    err(f->s, "INSERT OR ROLLBACK INTO u VALUES(2, 'b'), (3, 'a')", MERR_INVALID,
        "UNIQUE constraint failed");
    assert_int_equal(sql_session_in_txn(f->s), 0);
    err(f->s, "COMMIT", MERR_INVALID, "no transaction is active");
    assert_string_equal(q(f->s, "SELECT count(*) FROM u", &o), "0;");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_access_paths, setup, teardown),
        cmocka_unit_test_setup_teardown(test_order_by_consumed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sessions_share_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_transactions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prepared, setup, teardown),
        cmocka_unit_test_setup_teardown(test_system_views, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deadline_and_cancel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autocommit_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_begin_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_keeps_catalog, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_statements_read_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_only_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ctas_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_autocommit_read_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_or_rollback_not_retryable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_of_wounded_txn, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_for_write, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
