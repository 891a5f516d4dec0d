/* AS OF SYSTEM TIME (sql/asof.h): the expression forms and their errors,
 * finding the clause only where SQL has it (not in literals, comments,
 * quoted identifiers, parentheses or the next statement), and sessions over
 * the in-memory KV, whose timestamps are commit stamps: meridian_now(),
 * reads in the past, BEGIN / SET TRANSACTION AS OF, and the refusals. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sql/asof.h"
#include "sql/kv_mem.h"
#include "sql/session.h"
#include "tests/unit/sql/fixture.h"

static sql_kv_at parse_ok(const char *expr)
{
    sql_kv_at at;
    merr e = {0};
    if (sql_asof_parse(expr, strlen(expr), &at, &e)) fail_msg("%s: %s", expr, merr_msg(&e));
    return at;
}

static void parse_bad(const char *expr, const char *msg)
{
    sql_kv_at at;
    merr e = {0};
    int rc = sql_asof_parse(expr, strlen(expr), &at, &e);
    if (rc != MERR_INVALID) fail_msg("%s: got %d, want MERR_INVALID", expr, rc);
    if (!strstr(e.msg, msg)) fail_msg("%s: message \"%s\" lacks \"%s\"", expr, e.msg, msg);
}

/* libc's timegm as the oracle for the UTC forms. */
static uint64_t utc_us(int y, int mo, int d, int h, int mi, int s, int us)
{
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    return (uint64_t)timegm(&tm) * 1000000u + (uint64_t)us;
}

static void test_parse_forms(void **state)
{
    (void)state;
    static const struct {
        const char *expr;
        uint64_t ago;
    } iv[] = {{"'-10s'", 10000000},
              {"'-500ms'", 500000},
              {"'-1m30s'", 90000000},
              {"'-1.5s'", 1500000},
              {"'-0s'", 0},
              {"'0s'", 0},
              {"'-2h'", 7200000000ull},
              {"'-250us'", 250},
              {" '-10S' ", 10000000},
              {"'-1h1m1s1ms1us'", 3661001001ull}};
    for (size_t i = 0; i < sizeof(iv) / sizeof(iv[0]); i++) {
        sql_kv_at at = parse_ok(iv[i].expr);
        assert_int_equal(at.kind, SQL_KV_AT_AGO);
        assert_int_equal(at.ago_us, iv[i].ago);
    }
    sql_kv_at at = parse_ok("'2026-11-26 12:00:00.123456'");
    assert_int_equal(at.kind, SQL_KV_AT_UNIX);
    assert_int_equal(at.unix_us, utc_us(2026, 11, 26, 12, 0, 0, 123456));
    assert_int_equal(parse_ok("'2026-11-26T12:00:00Z'").unix_us, utc_us(2026, 11, 26, 12, 0, 0, 0));
    assert_int_equal(parse_ok("'2026-11-26 13:30:00+01:30'").unix_us,
                     utc_us(2026, 11, 26, 12, 0, 0, 0));
    assert_int_equal(parse_ok("'2024-02-29'").unix_us, utc_us(2024, 2, 29, 0, 0, 0, 0));
    assert_int_equal(parse_ok("'2026-01-01 00:00:00.5'").unix_us,
                     utc_us(2026, 1, 1, 0, 0, 0, 500000));
    at = parse_ok("7341234567890123456");
    assert_int_equal(at.kind, SQL_KV_AT_TS);
    assert_int_equal(at.ts, 7341234567890123456ull);
    assert_int_equal(parse_ok("'42'").ts, 42);
    assert_int_equal(parse_ok("follower_read_timestamp()").kind, SQL_KV_AT_FOLLOWER);
    assert_int_equal(parse_ok("FOLLOWER_READ_TIMESTAMP ( )").kind, SQL_KV_AT_FOLLOWER);

    parse_bad("'10s'", "in the future");
    parse_bad("'+5s'", "in the future");
    parse_bad("'-10x'", "bad expression");
    parse_bad("'-'", "bad expression");
    parse_bad("'-.s'", "bad expression");
    parse_bad("'yesterday'", "bad expression");
    parse_bad("''", "bad expression");
    parse_bad("'2026-02-29'", "not a valid UTC time");
    parse_bad("'2026-13-01'", "not a valid UTC time");
    parse_bad("'2026-11-26 24:00:00'", "not a valid UTC time");
    parse_bad("'2026-11-26 12:00:00.1234567'", "not a valid UTC time");
    parse_bad("'1969-12-31'", "not a valid UTC time");
    parse_bad("'2026-11-26 12:00 PST'", "not a valid UTC time");
    parse_bad("0", "bad expression");
    parse_bad("99999999999999999999", "bad expression");
    parse_bad("9300000000000000000", "bad expression"); /* > INT64_MAX */
    parse_bad("?", "bad expression");
    parse_bad(":ts", "bad expression");
    parse_bad("now()", "bad expression");
    parse_bad("follower_read_timestamp(1)", "bad expression");
    parse_bad("'-10000000h'", "bad expression");
}

/* sql with the clause found: the blanked copy must equal want. */
static void strip_is(const char *sql, const char *want)
{
    char *blanked = NULL;
    sql_kv_at at;
    merr e = {0};
    if (sql_asof_strip(sql, &blanked, &at, &e)) fail_msg("%s: %s", sql, merr_msg(&e));
    if (!want) {
        if (blanked) fail_msg("%s: found a clause: \"%s\"", sql, blanked);
        return;
    }
    if (!blanked) fail_msg("%s: no clause found", sql);
    assert_int_equal(strlen(blanked), strlen(sql)); /* offsets unchanged */
    assert_string_equal(blanked, want);
    free(blanked);
}

static void strip_bad(const char *sql, const char *msg)
{
    char *blanked = NULL;
    sql_kv_at at;
    merr e = {0};
    assert_int_equal(sql_asof_strip(sql, &blanked, &at, &e), MERR_INVALID);
    assert_null(blanked);
    if (!strstr(e.msg, msg)) fail_msg("%s: message \"%s\" lacks \"%s\"", sql, e.msg, msg);
}

static void test_strip(void **state)
{
    (void)state;
    strip_is("SELECT * FROM t AS OF SYSTEM TIME '-10s' WHERE a = 1",
             "SELECT * FROM t                          WHERE a = 1");
    strip_is("select a from t as of system time follower_read_timestamp ( ) ;",
             "select a from t                                               ;");
    strip_is("BEGIN AS OF SYSTEM TIME 12345", "BEGIN                        ");
    strip_is("SELECT 1 AS OF /* c */ SYSTEM TIME '-1s'",
             "SELECT 1                                ");
    /* Not the clause: literals, comments, quoted identifiers, a type name
     * inside parentheses, the next statement. */
    strip_is("SELECT 'x AS OF SYSTEM TIME ''-1s''' FROM t", NULL);
    strip_is("SELECT 1 -- AS OF SYSTEM TIME '-1s'", NULL);
    strip_is("/* AS OF SYSTEM TIME '-1s' */ SELECT 1", NULL);
    strip_is("SELECT a AS \"OF\" FROM t", NULL);
    strip_is("SELECT 1 AS \"of system time\"", NULL);
    strip_is("SELECT CAST(a AS OF SYSTEM TIME) FROM t", NULL);
    strip_is("SELECT 1; SELECT 2 AS OF SYSTEM TIME '-1s'", NULL);
    strip_is("SELECT a AS of FROM t", NULL);
    strip_bad("SELECT 1 AS OF SYSTEM TIME '-1s' AS OF SYSTEM TIME '-2s'", "twice");
    strip_bad("SELECT 1 AS OF SYSTEM TIME", "needs an expression");
    strip_bad("SELECT 1 AS OF SYSTEM TIME ;", "needs an expression");
    strip_bad("SELECT 1 AS OF SYSTEM TIME '5s'", "in the future");
    strip_bad("SELECT 1 AS OF SYSTEM TIME -5", "bad expression");
    strip_bad("SELECT * FROM (SELECT 1 AS OF SYSTEM TIME '-1s')", "applies to a whole statement");
}

/* ---- sessions over the in-memory KV ---- */

static int first_text(void *arg, sql_stmt *st)
{
    char *buf = arg;
    const unsigned char *t = sql_column_text(st, 0);
    size_t n = strlen(buf);
    snprintf(buf + n, 256 - n, "%s%s", n ? "," : "", t ? (const char *)t : "NULL");
    return 0;
}

/* The first column of every row, comma-separated. */
static const char *q1(sql_session *s, const char *sql, char *buf)
{
    merr e = {0};
    buf[0] = 0;
    if (sql_exec(s, sql, first_text, buf, &e)) fail_msg("%s: %s", sql, merr_msg(&e));
    return buf;
}

static void err_has(sql_session *s, const char *sql, const char *msg)
{
    merr e = {0};
    if (!sql_exec(s, sql, NULL, NULL, &e)) fail_msg("%s: succeeded", sql);
    if (!strstr(e.msg, msg)) fail_msg("%s: message \"%s\" lacks \"%s\"", sql, e.msg, msg);
}

static uint64_t now_ts(sql_session *s)
{
    char buf[256];
    return strtoull(q1(s, "SELECT meridian_now()", buf), NULL, 10);
}

static void test_session_reads_past(void **state)
{
    fx *f = *state;
    char buf[256], sql[256];
    ok(f->s, "CREATE TABLE other(a)");
    uint64_t t0 = now_ts(f->s); /* before t existed */
    ok(f->s, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)");
    ok(f->s, "INSERT INTO t VALUES (1, 'v1')");
    uint64_t t1 = now_ts(f->s);
    assert_true(t1 > t0);
    ok(f->s, "UPDATE t SET v = 'v2' WHERE k = 1");

    snprintf(sql, sizeof(sql), "SELECT v FROM t AS OF SYSTEM TIME %llu", (unsigned long long)t1);
    assert_string_equal(q1(f->s, sql, buf), "v1");
    snprintf(sql, sizeof(sql), "SELECT v FROM t AS OF SYSTEM TIME '%llu' WHERE k = 1",
             (unsigned long long)t1);
    assert_string_equal(q1(f->s, sql, buf), "v1");
    /* The clause belongs to its statement only: the tail reads now. */
    snprintf(sql, sizeof(sql), "SELECT v FROM t AS OF SYSTEM TIME %llu; SELECT v FROM t",
             (unsigned long long)t1);
    assert_string_equal(q1(f->s, sql, buf), "v1,v2");
    assert_string_equal(q1(f->s, "SELECT v FROM t AS OF SYSTEM TIME '-0s'", buf), "v2");
    assert_string_equal(
        q1(f->s, "SELECT v FROM t AS OF SYSTEM TIME follower_read_timestamp()", buf), "v2");
    /* meridian_now() in the past is that past. */
    snprintf(sql, sizeof(sql), "SELECT meridian_now() AS OF SYSTEM TIME %llu",
             (unsigned long long)t1);
    assert_int_equal(strtoull(q1(f->s, sql, buf), NULL, 10), t1);
    assert_string_equal(q1(f->s, "SELECT cluster_logical_timestamp() = meridian_now()", buf), "1");
    /* The catalog is the one of that time too. */
    snprintf(sql, sizeof(sql), "SELECT v FROM t AS OF SYSTEM TIME %llu", (unsigned long long)t0);
    err_has(f->s, sql, "no such table: t");
    assert_string_equal(q1(f->s, "SELECT v FROM t", buf), "v2");

    /* Writes, the future, and a store without a wall clock are refused. */
    snprintf(sql, sizeof(sql), "UPDATE t SET v = 'x' AS OF SYSTEM TIME %llu",
             (unsigned long long)t1);
    err_has(f->s, sql, "AS OF SYSTEM TIME");
    /* A subquery cannot have its own time. */
    err_has(f->s, "UPDATE t SET v = 'x' WHERE k IN (SELECT 1 AS OF SYSTEM TIME '-0s')",
            "applies to a whole statement");
    err_has(f->s, "DELETE FROM t AS OF SYSTEM TIME '-0s'",
            "AS OF SYSTEM TIME: this statement writes");
    err_has(f->s, "INSERT INTO t SELECT 2, 'x' AS OF SYSTEM TIME '-0s'", "this statement writes");
    err_has(f->s, "CREATE TABLE u(a) AS OF SYSTEM TIME '-0s'", "only SELECT, BEGIN");
    err_has(f->s, "COMMIT AS OF SYSTEM TIME '-0s'", "only SELECT, BEGIN");
    snprintf(sql, sizeof(sql), "SELECT v FROM t AS OF SYSTEM TIME %llu",
             (unsigned long long)now_ts(f->s) + 1000);
    err_has(f->s, sql, "in the future");
    err_has(f->s, "SELECT v FROM t AS OF SYSTEM TIME '-10s'", "no wall clock");
    err_has(f->s, "SELECT v FROM t AS OF SYSTEM TIME 'soon'", "bad expression");
    assert_string_equal(q1(f->s, "SELECT v FROM t", buf), "v2"); /* nothing was written */

    /* A table dropped since is still there in the past, rows and all. */
    ok(f->s, "DROP TABLE t");
    err_has(f->s, "SELECT v FROM t", "no such table: t");
    snprintf(sql, sizeof(sql), "SELECT v FROM t AS OF SYSTEM TIME %llu", (unsigned long long)t1);
    assert_string_equal(q1(f->s, sql, buf), "v1");
}

static void test_session_transactions(void **state)
{
    fx *f = *state;
    char buf[256], sql[256];
    ok(f->s, "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT)");
    ok(f->s, "INSERT INTO t VALUES (1, 'v1')");
    uint64_t t1 = now_ts(f->s);
    ok(f->s, "UPDATE t SET v = 'v2' WHERE k = 1");

    snprintf(sql, sizeof(sql), "BEGIN TRANSACTION AS OF SYSTEM TIME %llu", (unsigned long long)t1);
    ok(f->s, sql);
    assert_true(sql_session_in_txn(f->s));
    assert_string_equal(q1(f->s, "SELECT v FROM t", buf), "v1");
    assert_string_equal(q1(f->s, "SELECT count(*) FROM t WHERE v = 'v1'", buf), "1");
    assert_int_equal(now_ts(f->s), t1);
    err_has(f->s, "UPDATE t SET v = 'x'", "read-only AS OF SYSTEM TIME transaction");
    err_has(f->s, "INSERT INTO t VALUES (2, 'x')", "read-only AS OF SYSTEM TIME transaction");
    err_has(f->s, "CREATE TABLE u(a)", "read-only AS OF SYSTEM TIME transaction");
    err_has(f->s, "SELECT v FROM t AS OF SYSTEM TIME '-0s'", "inside an open transaction");
    assert_string_equal(q1(f->s, "SELECT v FROM t", buf), "v1"); /* still in it */
    ok(f->s, "COMMIT");
    assert_false(sql_session_in_txn(f->s));
    assert_string_equal(q1(f->s, "SELECT v FROM t", buf), "v2");

    /* A read-write transaction refuses the clause and keeps its writes. */
    ok(f->s, "BEGIN");
    ok(f->s, "INSERT INTO t VALUES (3, 'v3')");
    err_has(f->s, "SELECT v FROM t AS OF SYSTEM TIME '-0s'", "inside an open transaction");
    err_has(f->s, "SELECT meridian_now()", "read-write transaction");
    ok(f->s, "COMMIT");
    assert_string_equal(q1(f->s, "SELECT v FROM t ORDER BY k", buf), "v2,v3");

    /* SET TRANSACTION: first in a transaction only. */
    ok(f->s, "BEGIN");
    snprintf(sql, sizeof(sql), "SET TRANSACTION AS OF SYSTEM TIME %llu", (unsigned long long)t1);
    ok(f->s, sql);
    assert_string_equal(q1(f->s, "SELECT v FROM t ORDER BY k", buf), "v1");
    err_has(f->s, sql, "must come first");
    err_has(f->s, "DELETE FROM t", "read-only AS OF SYSTEM TIME transaction");
    ok(f->s, "ROLLBACK");
    err_has(f->s, sql, "outside a transaction");
    err_has(f->s, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "only SET TRANSACTION AS OF");
    ok(f->s, "BEGIN");
    ok(f->s, "SELECT 1");
    err_has(f->s, sql, "must come first");
    ok(f->s, "ROLLBACK");
    ok(f->s, "BEGIN");
    err_has(f->s, "SET TRANSACTION AS OF SYSTEM TIME 999999999", "in the future");
    assert_true(sql_session_in_txn(f->s)); /* the transaction goes on as begun */
    ok(f->s, "INSERT INTO t VALUES (4, 'v4')");
    ok(f->s, "COMMIT");
    assert_string_equal(q1(f->s, "SELECT v FROM t ORDER BY k", buf), "v2,v3,v4");

    sql_stmt *st = NULL;
    merr e = {0};
    assert_int_equal(
        sql_prepare(f->s, "SET TRANSACTION AS OF SYSTEM TIME '-0s'; SELECT 1", &st, NULL, &e), 0);
    assert_int_equal(sql_stmt_get_kind(st), SQL_STMT_SET_TXN);
    sql_finalize(st, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),
        cmocka_unit_test(test_strip),
        cmocka_unit_test_setup_teardown(test_session_reads_past, setup, teardown),
        cmocka_unit_test_setup_teardown(test_session_transactions, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
