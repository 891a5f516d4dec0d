/* Failover across gateways: two session_server processes share one SQLite
 * file; the client's gateway is killed by PID (SIGKILL) while a statement
 * streams. The statement fails with a retryable MERIDIAN_UNAVAILABLE, the
 * next one runs on the other gateway, prepared statements follow. */
#include "tests/client/harness.h"

#include "include/meridian.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

static int64_t query_int(meridian *db, const char *sql)
{
    meridian_stmt *st = NULL;
    int rc = meridian_prepare(db, sql, -1, &st, NULL);
    if (rc) fprintf(stderr, "prepare: %s\n", meridian_errmsg(db));
    assert_int_equal(rc, MERIDIAN_OK);
    assert_int_equal(meridian_step(st), MERIDIAN_ROW);
    int64_t v = meridian_column_int64(st, 0);
    assert_int_equal(meridian_step(st), MERIDIAN_DONE);
    meridian_finalize(st);
    return v;
}

static void test_failover(void **state)
{
    (void)state;
    char dir[PATH_MAX], file[PATH_MAX + 16], a[64], b[64], ci[256];
    assert_int_equal(ch_tmpdir(dir, sizeof(dir)), 0);
    snprintf(file, sizeof(file), "%s/shared.db", dir);
    pid_t pa = ch_spawn_server(SESSION_SERVER_BIN, 11, file, a, sizeof(a));
    pid_t pb = ch_spawn_server(SESSION_SERVER_BIN, 12, file, b, sizeof(b));
    assert_true(pa > 0 && pb > 0);
    snprintf(ci, sizeof(ci), "hosts=%s,%s connect_timeout=5s", a, b);
    meridian *db = NULL;
    assert_int_equal(meridian_open(ci, &db), MERIDIAN_OK);
    assert_string_equal(meridian_host(db), a);
    assert_int_equal(meridian_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES (1), (2), (3)",
                                   NULL, NULL, NULL),
                     MERIDIAN_OK);
    meridian_stmt *prep = NULL, *big = NULL;
    assert_int_equal(meridian_prepare(db, "SELECT sum(x) FROM t WHERE x > ?", -1, &prep, NULL), 0);
    /* An endless stream keeps a statement in flight. */
    assert_int_equal(meridian_prepare(db,
                                      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                                      "FROM c) SELECT x FROM c",
                                      -1, &big, NULL),
                     MERIDIAN_OK);
    assert_int_equal(meridian_step(big), MERIDIAN_ROW);
    ch_kill(pa);
    int rc;
    long rows = 0;
    while ((rc = meridian_step(big)) == MERIDIAN_ROW) rows++; /* what was already buffered */
    assert_int_equal(rc, MERIDIAN_UNAVAILABLE);
    assert_int_equal(meridian_error_retryable(db), 1);
    assert_non_null(strstr(meridian_errmsg(db), a));
    assert_null(meridian_host(db));
    meridian_finalize(big);
    /* The next statement goes to the other gateway; the data is there. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 3);
    assert_string_equal(meridian_host(db), b);
    /* The statement prepared on the dead gateway is re-prepared. */
    assert_int_equal(meridian_bind_int64(prep, 1, 1), MERIDIAN_OK);
    assert_int_equal(meridian_step(prep), MERIDIAN_ROW);
    assert_int_equal(meridian_column_int64(prep, 0), 5);
    meridian_finalize(prep);
    meridian_close(db);

    /* Every gateway down: open says which ones it tried. */
    ch_kill(pb);
    assert_int_equal(meridian_open(ci, &db), MERIDIAN_UNAVAILABLE);
    assert_non_null(strstr(meridian_errmsg(db), a));
    assert_non_null(strstr(meridian_errmsg(db), b));
    meridian_close(db);
    ch_rmdir(dir);
}

/* A dead first seed does not stop open; an idle connection whose gateway
 * died moves on without failing the next statement. */
static void test_dead_seed_and_idle_failover(void **state)
{
    (void)state;
    char dir[PATH_MAX], file[PATH_MAX + 16], a[64], b[64], c[64], ci[256];
    assert_int_equal(ch_tmpdir(dir, sizeof(dir)), 0);
    snprintf(file, sizeof(file), "%s/shared.db", dir);
    pid_t pa = ch_spawn_server(SESSION_SERVER_BIN, 21, file, a, sizeof(a));
    pid_t pb = ch_spawn_server(SESSION_SERVER_BIN, 22, file, b, sizeof(b));
    pid_t pc = ch_spawn_server(SESSION_SERVER_BIN, 23, file, c, sizeof(c));
    assert_true(pa > 0 && pb > 0 && pc > 0);
    ch_kill(pa);
    snprintf(ci, sizeof(ci), "hosts=%s,%s,%s", a, b, c);
    meridian *db = NULL;
    assert_int_equal(meridian_open(ci, &db), MERIDIAN_OK);
    assert_string_equal(meridian_host(db), b);
    assert_int_equal(query_int(db, "SELECT 41 + 1"), 42);
    ch_kill(pb);
    /* Either the loss is noticed before the statement is sent (then it
     * moves on silently) or the statement fails retryably; never anything
     * else, and the one after that works on c. */
    meridian_stmt *st = NULL;
    int rc = meridian_prepare(db, "SELECT 43", -1, &st, NULL);
    if (rc) {
        assert_int_equal(rc, MERIDIAN_UNAVAILABLE);
        assert_int_equal(meridian_error_retryable(db), 1);
        assert_int_equal(meridian_prepare(db, "SELECT 43", -1, &st, NULL), MERIDIAN_OK);
    }
    assert_int_equal(meridian_step(st), MERIDIAN_ROW);
    assert_int_equal(meridian_column_int64(st, 0), 43);
    meridian_finalize(st);
    assert_string_equal(meridian_host(db), c);
    meridian_close(db);
    ch_kill(pc);
    ch_rmdir(dir);
}

typedef struct kill_arg {
    pid_t victim;
    int calls;
} kill_arg;

/* First attempt: the gateway dies under the transaction. */
static int insert_after_kill(meridian *db, void *arg)
{
    kill_arg *k = arg;
    if (k->calls++ == 0) ch_kill(k->victim);
    return meridian_exec(db, "INSERT INTO t VALUES (1)", NULL, NULL, NULL);
}

static void test_run_in_txn_across_failover(void **state)
{
    (void)state;
    char dir[PATH_MAX], file[PATH_MAX + 16], a[64], b[64], ci[256];
    assert_int_equal(ch_tmpdir(dir, sizeof(dir)), 0);
    snprintf(file, sizeof(file), "%s/shared.db", dir);
    pid_t pa = ch_spawn_server(SESSION_SERVER_BIN, 31, file, a, sizeof(a));
    pid_t pb = ch_spawn_server(SESSION_SERVER_BIN, 32, file, b, sizeof(b));
    assert_true(pa > 0 && pb > 0);
    snprintf(ci, sizeof(ci), "hosts=%s,%s", a, b);
    meridian *db = NULL;
    assert_int_equal(meridian_open(ci, &db), MERIDIAN_OK);
    assert_int_equal(meridian_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), MERIDIAN_OK);
    kill_arg k = {.victim = pa};
    /* The lost gateway is a retryable error: the helper retries on b. */
    assert_int_equal(meridian_run_in_txn(db, insert_after_kill, &k, 3), MERIDIAN_OK);
    assert_int_equal(k.calls, 2);
    assert_string_equal(meridian_host(db), b);
    assert_int_equal(query_int(db, "SELECT count(*) FROM t"), 1);
    meridian_close(db);
    ch_kill(pb);
    ch_rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_dead_seed_and_idle_failover),
        cmocka_unit_test(test_run_in_txn_across_failover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
