/* The session protocol over Meridian's SQL executor (server/session_exec_sql.c)
 * end to end: libmeridian -> rpc over 127.0.0.1 -> session service -> the
 * executor -> sql/session over sql/kv_mem (behind the serializing wrapper,
 * as a node would share one KV between session threads). DDL, DML, joins,
 * parameters and re-run prepared statements, errors with codes and offsets,
 * transactions shared between sessions, lost conflicts flagged retryable, a
 * failed transaction held FAILED until ROLLBACK, cancel, read-only sessions,
 * and the refusal of a node without a KV. */
#include "include/meridian.h"
#include "rpc/rpc.h"
#include "server/session_exec_sql.h"
#include "server/session_service.h"
#include "sql/kv_lock.h"
#include "sql/kv_mem.h"
#include "tests/client/harness.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* A KV in front of the locked kv_mem that can fail the next scans with a
 * lost conflict, as the cluster's transaction client does when a
 * transaction is wounded: a read-time abort kv_mem itself never produces. */
static atomic_int fail_scans;
static sql_kv_lock *lock;
static sql_kv_ops fault_ops;

static int fault_scan(sql_kv_txn *t, const uint8_t *lo, size_t lolen, const uint8_t *hi,
                      size_t hilen, int reverse, size_t limit, sql_kv_iter **out, merr *e)
{
    if (atomic_load(&fail_scans) > 0) {
        atomic_fetch_sub(&fail_scans, 1);
        return merr_set(e, MERR_ABORTED, "transaction wounded by an older one (injected)");
    }
    return sql_kv_lock_ops.scan(t, lo, lolen, hi, hilen, reverse, limit, out, e);
}

typedef struct gw {
    rpc_node *node;
    session_service *svc;
    session_executor ex;
    session_exec_sql_config cfg;
    char addr[64];
} gw;

static gw g, refusing, per_session;

/* Per-session KV contexts (as the transaction client needs: one thread at a
 * time): counted, all over the same locked store. */
static atomic_int kv_opens, kv_closes;
static int count_open(void *kv_ctx, void **session_kv, merr *e)
{
    (void)e;
    atomic_fetch_add(&kv_opens, 1);
    *session_kv = kv_ctx;
    return 0;
}
static void count_close(void *session_kv)
{
    (void)session_kv;
    atomic_fetch_add(&kv_closes, 1);
}
static sql_kv_mem *mem;

static int gw_start(gw *s, uint64_t id, const sql_kv_ops *ops, void *ctx)
{
    rpc_config rc;
    rpc_config_defaults(&rc);
    rc.node_id = id;
    rc.cluster_id = "";
    rc.listen_addr = "127.0.0.1:0";
    merr e = {0};
    if (rpc_node_start(&rc, &s->node, &e)) return -1;
    s->cfg.ops = ops;
    s->cfg.kv_ctx = ctx;
    snprintf(s->cfg.refusal, sizeof(s->cfg.refusal), "SQL needs the transaction client (test)");
    session_exec_sql(&s->ex, &s->cfg);
    session_service_config sc;
    session_service_config_defaults(&sc);
    if (session_service_register(s->node, &s->ex, &sc, &s->svc, &e)) return -1;
    snprintf(s->addr, sizeof(s->addr), "127.0.0.1:%d", rpc_node_port(s->node));
    return 0;
}

static void gw_stop(gw *s)
{
    if (s->svc) session_service_free(s->svc);
    if (s->node) rpc_node_stop(s->node);
}

static int setup(void **state)
{
    (void)state;
    merr e = {0};
    if (sql_kv_mem_open(&mem) || sql_kv_lock_open(&sql_kv_mem_ops, mem, &lock, &e)) return -1;
    fault_ops = sql_kv_lock_ops;
    fault_ops.scan = fault_scan;
    if (gw_start(&g, 1, &fault_ops, lock)) return -1;
    per_session.cfg.kv_open = count_open;
    per_session.cfg.kv_close = count_close;
    if (gw_start(&per_session, 3, &sql_kv_lock_ops, lock)) return -1;
    return gw_start(&refusing, 2, NULL, NULL);
}

static int teardown(void **state)
{
    (void)state;
    gw_stop(&g);
    gw_stop(&refusing);
    gw_stop(&per_session);
    sql_kv_lock_close(lock);
    sql_kv_mem_close(mem);
    return 0;
}

static meridian *open_db(const char *extra)
{
    char ci[512];
    ch_conninfo(ci, sizeof(ci), g.addr, extra);
    meridian *db = NULL;
    int rc = meridian_open(ci, &db);
    if (rc) fprintf(stderr, "open: %s\n", meridian_errmsg(db));
    assert_int_equal(rc, MERIDIAN_OK);
    return db;
}

static void exec_ok(meridian *db, const char *sql)
{
    char *err = NULL;
    int rc = meridian_exec(db, sql, NULL, NULL, &err);
    if (rc) fprintf(stderr, "exec %s: %s\n", sql, err);
    assert_int_equal(rc, MERIDIAN_OK);
}

static int64_t query_int(meridian *db, const char *sql)
{
    meridian_stmt *st = NULL;
    assert_int_equal(meridian_prepare(db, sql, -1, &st, NULL), MERIDIAN_OK);
    assert_int_equal(meridian_step(st), MERIDIAN_ROW);
    int64_t v = meridian_column_int64(st, 0);
    assert_int_equal(meridian_step(st), MERIDIAN_DONE);
    meridian_finalize(st);
    return v;
}

static void test_ddl_dml_join(void **state)
{
    (void)state;
    meridian *db = open_db(NULL);
    exec_ok(db, "CREATE TABLE city(id INTEGER PRIMARY KEY, name TEXT NOT NULL, region TEXT)");
    exec_ok(db, "CREATE TABLE trip(id INTEGER PRIMARY KEY, city INTEGER, km REAL)");
    exec_ok(db, "CREATE INDEX trip_city ON trip(city)");
    exec_ok(db, "INSERT INTO city VALUES (1, 'Oslo', 'eu'), (2, 'Lima', 'sa'), (3, 'Pune', 'as')");
    assert_int_equal(meridian_changes(db), 3);
    /* One prepared INSERT run three times with new bindings (reset between). */
    meridian_stmt *ins = NULL;
    assert_int_equal(
        meridian_prepare(db, "INSERT INTO trip(city, km) VALUES (?, ?)", -1, &ins, NULL),
        MERIDIAN_OK);
    assert_int_equal(meridian_bind_parameter_count(ins), 2);
    const int cities[] = {1, 1, 3};
    const double kms[] = {12.5, 7.25, 3.0};
    for (int i = 0; i < 3; i++) {
        meridian_bind_int64(ins, 1, cities[i]);
        meridian_bind_double(ins, 2, kms[i]);
        assert_int_equal(meridian_step(ins), MERIDIAN_DONE);
        assert_int_equal(meridian_changes(db), 1);
    }
    meridian_finalize(ins);
    exec_ok(db, "UPDATE city SET region = 'EU' WHERE region = 'eu'");
    assert_int_equal(meridian_changes(db), 1);
    /* A join with aggregates, run twice through one prepared statement. */
    meridian_stmt *st = NULL;
    assert_int_equal(meridian_prepare(db,
                                      "SELECT c.name, c.region, count(t.id) AS n, sum(t.km) AS km "
                                      "FROM city c LEFT JOIN trip t ON t.city = c.id "
                                      "WHERE c.id >= ? GROUP BY c.id ORDER BY c.name",
                                      -1, &st, NULL),
                     MERIDIAN_OK);
    for (int run = 0; run < 2; run++) {
        meridian_bind_int64(st, 1, 1);
        assert_int_equal(meridian_column_count(st), 4);
        assert_string_equal(meridian_column_name(st, 2), "n");
        assert_int_equal(meridian_step(st), MERIDIAN_ROW);
        assert_string_equal((const char *)meridian_column_text(st, 0), "Lima");
        assert_int_equal(meridian_column_int64(st, 2), 0);
        assert_int_equal(meridian_column_type(st, 3), MERIDIAN_NULL);
        assert_int_equal(meridian_step(st), MERIDIAN_ROW);
        assert_string_equal((const char *)meridian_column_text(st, 0), "Oslo");
        assert_string_equal((const char *)meridian_column_text(st, 1), "EU");
        assert_int_equal(meridian_column_int64(st, 2), 2);
        assert_true(meridian_column_double(st, 3) == 19.75);
        assert_int_equal(meridian_step(st), MERIDIAN_ROW);
        assert_string_equal((const char *)meridian_column_text(st, 0), "Pune");
        assert_int_equal(meridian_step(st), MERIDIAN_DONE);
        assert_int_equal(meridian_reset(st), MERIDIAN_OK);
    }
    meridian_finalize(st);
    /* Declared types reach the client; the catalog is in the KV. */
    assert_int_equal(meridian_prepare(db, "SELECT name FROM city", -1, &st, NULL), MERIDIAN_OK);
    assert_string_equal(meridian_column_decltype(st, 0), "TEXT");
    meridian_finalize(st);
    assert_int_equal(query_int(db, "SELECT count(*) FROM meridian_tables"), 2);
    exec_ok(db, "DELETE FROM trip WHERE km < 5");
    assert_int_equal(meridian_changes(db), 1);
    exec_ok(db, "CREATE TABLE scratch(x)");
    assert_int_equal(meridian_changes(db), 0); /* DDL changes no rows */
    exec_ok(db, "DROP TABLE scratch");
    meridian_close(db);
    /* Another session (another worker thread) sees the committed data. */
    db = open_db(NULL);
    assert_int_equal(query_int(db, "SELECT count(*) FROM trip"), 2);
    meridian_close(db);
}

static void test_errors(void **state)
{
    (void)state;
    meridian *db = open_db(NULL);
    exec_ok(db, "CREATE TABLE IF NOT EXISTS e1(a INTEGER PRIMARY KEY, b TEXT UNIQUE)");
    meridian_stmt *st = (meridian_stmt *)&st;
    const char *sql = "  SELECT a,\n  nope FROM e1";
    assert_int_equal(meridian_prepare(db, sql, -1, &st, NULL), MERIDIAN_ERROR);
    assert_null(st);
    assert_string_equal(meridian_errmsg(db), "no such column: nope");
    assert_int_equal(meridian_error_offset(db), 14);
    assert_int_equal(meridian_error_retryable(db), 0);
    assert_int_equal(meridian_prepare(db, "SELECT * FROM nosuch", -1, &st, NULL), MERIDIAN_ERROR);
    assert_string_equal(meridian_errmsg(db), "no such table: nosuch");
    assert_int_equal(meridian_prepare(db, "SELEC 1", -1, &st, NULL), MERIDIAN_ERROR);
    assert_non_null(strstr(meridian_errmsg(db), "syntax error"));
    assert_int_equal(meridian_error_offset(db), 0);
    exec_ok(db, "INSERT INTO e1 VALUES (1, 'x')");
    assert_int_equal(meridian_exec(db, "INSERT INTO e1 VALUES (2, 'x')", NULL, NULL, NULL),
                     MERIDIAN_CONSTRAINT);
    assert_non_null(strstr(meridian_errmsg(db), "UNIQUE constraint failed"));
    assert_int_equal(meridian_error_retryable(db), 0);
    assert_int_equal(meridian_exec(db, "CREATE TRIGGER tr AFTER INSERT ON e1 BEGIN SELECT 1; END",
                                   NULL, NULL, NULL),
                     MERIDIAN_ERROR);
    /* The session goes on; nothing of the failed statements stayed. */
    assert_int_equal(query_int(db, "SELECT count(*) FROM e1"), 1);
    meridian_close(db);
}

static void test_transactions(void **state)
{
    (void)state;
    meridian *a = open_db(NULL), *b = open_db(NULL);
    exec_ok(a, "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER)");
    exec_ok(a, "INSERT INTO acct VALUES (1, 100), (2, 50)");
    exec_ok(a, "BEGIN");
    assert_int_equal(meridian_txn_state(a), MERIDIAN_TXN_OPEN);
    exec_ok(a, "UPDATE acct SET bal = bal - 10 WHERE id = 1");
    assert_int_equal(query_int(a, "SELECT bal FROM acct WHERE id = 1"), 90);
    assert_int_equal(query_int(b, "SELECT bal FROM acct WHERE id = 1"), 100); /* not yet */
    exec_ok(a, "ROLLBACK");
    assert_int_equal(meridian_txn_state(a), MERIDIAN_TXN_IDLE);
    assert_int_equal(query_int(a, "SELECT bal FROM acct WHERE id = 1"), 100);
    /* Lost update: a reads, b commits a write to what a read, a's commit
     * loses and says retry; the transaction is over. */
    exec_ok(a, "BEGIN");
    assert_int_equal(query_int(a, "SELECT bal FROM acct WHERE id = 2"), 50);
    exec_ok(b, "UPDATE acct SET bal = 60 WHERE id = 2");
    exec_ok(a, "UPDATE acct SET bal = 51 WHERE id = 2");
    assert_int_equal(meridian_exec(a, "COMMIT", NULL, NULL, NULL), MERIDIAN_ABORT);
    assert_int_equal(meridian_error_retryable(a), 1);
    assert_int_equal(meridian_txn_state(a), MERIDIAN_TXN_IDLE);
    assert_int_equal(query_int(b, "SELECT bal FROM acct WHERE id = 2"), 60);
    /* A read that loses a conflict inside BEGIN fails the transaction:
     * later statements are refused until ROLLBACK, none runs alone. */
    exec_ok(a, "BEGIN; INSERT INTO acct VALUES (3, 1)");
    atomic_store(&fail_scans, 1);
    assert_int_equal(meridian_exec(a, "SELECT sum(bal) FROM acct", NULL, NULL, NULL),
                     MERIDIAN_ABORT);
    assert_int_equal(meridian_error_retryable(a), 1);
    assert_non_null(strstr(meridian_errmsg(a), "wounded"));
    assert_int_equal(meridian_txn_state(a), MERIDIAN_TXN_FAILED);
    assert_int_equal(meridian_exec(a, "INSERT INTO acct VALUES (4, 1)", NULL, NULL, NULL),
                     MERIDIAN_ABORT);
    assert_non_null(strstr(meridian_errmsg(a), "ROLLBACK"));
    exec_ok(a, "ROLLBACK");
    assert_int_equal(meridian_txn_state(a), MERIDIAN_TXN_IDLE);
    assert_int_equal(query_int(b, "SELECT count(*) FROM acct"), 2);
    meridian_close(a);
    meridian_close(b);
}

typedef struct longq {
    meridian *db;
    int rc;
    char msg[256];
} longq;

static void *run_long(void *arg)
{
    longq *q = arg;
    meridian_stmt *st = NULL;
    /* Counting to 1e9 takes minutes: only an interrupt ends it in time. */
    q->rc = meridian_prepare(q->db,
                             "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
                             "WHERE x < 1000000000) SELECT count(*) FROM c",
                             -1, &st, NULL);
    if (!q->rc) q->rc = meridian_step(st);
    snprintf(q->msg, sizeof(q->msg), "%s", meridian_errmsg(q->db));
    meridian_finalize(st);
    return NULL;
}

static uint64_t execs_before;
static int exec_started(void *arg)
{
    session_service_stats ss;
    session_service_stats_get(arg, &ss);
    return ss.execs > execs_before;
}

static void test_cancel(void **state)
{
    (void)state;
    meridian *db = open_db(NULL);
    session_service_stats ss;
    session_service_stats_get(g.svc, &ss);
    execs_before = ss.execs;
    longq q = {.db = db};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, run_long, &q), 0);
    assert_true(ch_wait(exec_started, g.svc));
    meridian_interrupt(db);
    pthread_join(th, NULL);
    assert_int_equal(q.rc, MERIDIAN_INTERRUPT);
    assert_string_equal(q.msg, "interrupted");
    assert_int_equal(query_int(db, "SELECT 2"), 2); /* the session goes on */
    meridian_close(db);
}

static void test_read_only(void **state)
{
    (void)state;
    meridian *db = open_db("read_only=on");
    assert_int_equal(meridian_exec(db, "CREATE TABLE ro(x)", NULL, NULL, NULL), MERIDIAN_READONLY);
    assert_int_equal(meridian_set_option(db, "read_only", "off"), MERIDIAN_OK);
    exec_ok(db, "CREATE TABLE ro(x); INSERT INTO ro VALUES (1)");
    assert_int_equal(meridian_set_option(db, "read_only", "on"), MERIDIAN_OK);
    assert_int_equal(meridian_exec(db, "INSERT INTO ro VALUES (2)", NULL, NULL, NULL),
                     MERIDIAN_READONLY);
    assert_int_equal(query_int(db, "SELECT count(*) FROM ro"), 1);
    meridian_close(db);
}

static int one_closed(void *arg)
{
    (void)arg;
    return atomic_load(&kv_closes) == 1;
}

static void test_per_session_kv(void **state)
{
    (void)state;
    char ci[512];
    ch_conninfo(ci, sizeof(ci), per_session.addr, NULL);
    meridian *db = NULL;
    assert_int_equal(meridian_open(ci, &db), MERIDIAN_OK);
    assert_int_equal(atomic_load(&kv_opens), 0); /* made at the first statement */
    exec_ok(db, "CREATE TABLE ps(x); INSERT INTO ps VALUES (7)");
    assert_int_equal(query_int(db, "SELECT x FROM ps"), 7);
    assert_int_equal(atomic_load(&kv_opens), 1);
    meridian_close(db);
    assert_true(ch_wait(one_closed, NULL));
}

static void test_refused_without_kv(void **state)
{
    (void)state;
    char ci[512];
    ch_conninfo(ci, sizeof(ci), refusing.addr, NULL);
    meridian *db = NULL;
    assert_int_not_equal(meridian_open(ci, &db), MERIDIAN_OK);
    assert_non_null(strstr(meridian_errmsg(db), "SQL needs the transaction client"));
    meridian_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ddl_dml_join),   cmocka_unit_test(test_errors),
        cmocka_unit_test(test_transactions),   cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_read_only),      cmocka_unit_test(test_refused_without_kv),
        cmocka_unit_test(test_per_session_kv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
