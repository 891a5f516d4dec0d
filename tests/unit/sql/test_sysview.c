/* The cluster system views over a fake sql_cluster_ops (test-only rows): the
 * columns each view shows, NULL for what the hook does not know, the
 * range-to-table mapping through the key codec, errors from the hook, and
 * the views refusing to run without a cluster, and other users' statements
 * hidden from non-admins. */
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

/* The fake cluster (test-only rows); k100/k101 are the key prefixes of
 * table ids 100 and 101, where the fake ranges split. */
typedef struct fake {
    int fail;
    mbuf k100, k101;
} fake;

static int f_nodes(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    fake *f = ctx;
    if (f->fail) return merr_set(e, MERR_UNAVAILABLE, "node 2 did not answer");
    sql_cluster_node a = {1, "127.0.0.1:1", "r1", "z1", "serving", 1, 2, 1, 12.5, "static", 1, 900};
    sql_cluster_node b = {2, "127.0.0.1:2", NULL, NULL, "unreachable", 0, 0, 0, 0, NULL, 0, 0};
    int rc = emit(sink, &a);
    return rc ? rc : emit(sink, &b);
}

static int f_ranges(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    fake *f = ctx;
    (void)e;
    /* r1: system keys only; r2: table 100; r3: table 101 onwards. */
    sql_cluster_range r[3] = {
        {1, NULL, f->k100.data, 0, f->k100.len, 1, "1,2,3", 1, 3, 60, 9},
        {2, f->k100.data, f->k101.data, f->k100.len, f->k101.len, 2, "1,2,3L", 0, 5, 100, 4},
        {3, f->k101.data, NULL, f->k101.len, 0, 2, "2", 2, 0, 0, 1},
    };
    for (int i = 0; i < 3; i++) {
        int rc = emit(sink, &r[i]);
        if (rc) return rc;
    }
    return 0;
}

static int f_whole(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    (void)ctx, (void)e;
    sql_cluster_range r = {1, NULL, NULL, 0, 0, 1, "1", 1, 0, 0, 0};
    return emit(sink, &r);
}

static int f_sessions(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    (void)ctx, (void)e;
    sql_cluster_session s = {7, 1, "root", "app", "running", "SELECT 1", 86400000 + 1500};
    return emit(sink, &s);
}

static int f_txns(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    (void)ctx, (void)e;
    sql_cluster_txn t = {0xabcdefULL, 1, 1, 4096, "active", 1, 250, 10};
    return emit(sink, &t);
}

static void test_cluster_views(void **state)
{
    (void)state;
    sql_kv_mem *kv;
    sql_session *s;
    merr e = {0};
    out o;
    fake f = {0, MBUF_INIT, MBUF_INIT};
    mkey_val v = mkey_int(100, 0);
    assert_int_equal(mkey_encode_prefix(&v, 1, &f.k100), 0);
    v = mkey_int(101, 0);
    assert_int_equal(mkey_encode_prefix(&v, 1, &f.k101), 0);
    sql_cluster_ops ops = {
        .nodes = f_nodes, .ranges = f_ranges, .sessions = f_sessions, .transactions = f_txns};
    assert_int_equal(sql_kv_mem_open(&kv), 0);
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, kv, &s, &e), 0);

    /* No hook: a clear error, not an empty view. */
    assert_int_equal(sql_exec(s, "SELECT * FROM meridian_nodes", NULL, NULL, &e), MERR_INVALID);
    assert_non_null(strstr(e.msg, "meridian_nodes is not available"));

    sql_session_set_cluster(s, &ops, &f);
    assert_int_equal(sql_exec(s, "CREATE TABLE t(a INTEGER PRIMARY KEY)", NULL, NULL, &e), 0);
    assert_int_equal(sql_exec(s, "CREATE TABLE u(a INTEGER PRIMARY KEY)", NULL, NULL, &e), 0);
    q(s, "SELECT * FROM meridian_nodes ORDER BY node_id", &o);
    assert_string_equal(o.buf, "1|127.0.0.1:1|r1|z1|serving|2|1|12.5|static|900;"
                               "2|127.0.0.1:2|NULL|NULL|unreachable|NULL|NULL|NULL|NULL|NULL;");
    q(s,
      "SELECT range_id, table_name, generation, replicas, leader_node, keys, bytes, applied "
      "FROM meridian_ranges ORDER BY range_id",
      &o);
    assert_string_equal(o.buf,
                        "1|NULL|1|1,2,3|1|3|60|9;2|t|2|1,2,3L|NULL|5|100|4;3|u|2|2|2|0|0|1;");
    /* Keys print as text with \xNN escapes; the open ends as -inf/+inf. */
    q(s, "SELECT start_key, end_key FROM meridian_ranges WHERE range_id IN (1, 3)", &o);
    assert_true(strncmp(o.buf, "-inf|", 5) == 0);
    assert_non_null(strstr(o.buf, "\\x"));
    assert_non_null(strstr(o.buf, "|+inf;"));
    q(s, "SELECT range_id FROM meridian_ranges WHERE table_name = 'u'", &o);
    assert_string_equal(o.buf, "3;");
    q(s, "SELECT * FROM meridian_sessions", &o);
    assert_string_equal(o.buf, "7|1|root|app|running|SELECT 1|1970-01-02T00:00:01.500Z;");
    q(s, "SELECT * FROM meridian_transactions", &o);
    assert_string_equal(o.buf, "0000000000abcdef|1|1|4096|active|1|250|10;");

    /* One range holding every table: a row per table. */
    ops.ranges = f_whole;
    q(s, "SELECT range_id, table_name FROM meridian_ranges ORDER BY table_name", &o);
    assert_string_equal(o.buf, "1|t;1|u;");

    /* The hook's error is the statement's; the session goes on. */
    f.fail = 1;
    assert_int_not_equal(sql_exec(s, "SELECT * FROM meridian_nodes", NULL, NULL, &e), 0);
    assert_non_null(strstr(e.msg, "node 2 did not answer"));
    ops.transactions = NULL;
    assert_int_not_equal(sql_exec(s, "SELECT * FROM meridian_transactions", NULL, NULL, &e), 0);
    assert_non_null(strstr(e.msg, "not available"));
    q(s, "SELECT count(*) FROM meridian_sessions", &o);
    assert_string_equal(o.buf, "1;");

    /* Statement text holds literals: a non-admin sees only its own. */
    assert_int_equal(sql_exec(s, "CREATE USER bob", NULL, NULL, &e), 0);
    sql_session_set_user(s, "bob", 1);
    q(s, "SELECT user, statement FROM meridian_sessions", &o);
    assert_string_equal(o.buf, "root|NULL;");
    sql_session_set_user(s, "root", 1);
    q(s, "SELECT user, statement FROM meridian_sessions", &o);
    assert_string_equal(o.buf, "root|SELECT 1;");

    sql_session_close(s);
    sql_kv_mem_close(kv);
    mbuf_free(&f.k100);
    mbuf_free(&f.k101);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cluster_views),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
