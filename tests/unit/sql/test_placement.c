/* Placement policies from SQL (sql/placement.h) over a fake cluster hook
 * that keeps the policies in memory: ALTER TABLE ... SET PLACEMENT puts one
 * policy over exactly the table's key span with the options given, SHOW
 * PLACEMENT and meridian_placement list it with the table's name, RESET
 * removes it (and is a no-op without one); bad statements, unknown tables,
 * a transaction, a non-admin and the cluster's own refusal all fail clearly
 * and change nothing; other ALTER TABLE forms are not intercepted; DROP
 * TABLE removes the table's policy when (and only if) the drop commits. */
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

typedef struct fake {
    int have;
    char name[64], regions[64], lead[64], survive[16];
    uint8_t start[16], end[16];
    size_t start_len, end_len;
    int64_t replicas;
    int sets, rms;
} fake;

static int f_policies(void *ctx, sql_cluster_emit_fn emit, void *sink, merr *e)
{
    fake *f = ctx;
    (void)e;
    if (!f->have) return 0;
    sql_cluster_policy p = {f->name,     f->start,   f->end,  f->start_len, f->end_len,
                            f->replicas, f->regions, f->lead, f->survive};
    return emit(sink, &p);
}

static int f_set(void *ctx, const sql_cluster_policy *p, char *warn, size_t cap, merr *e)
{
    fake *f = ctx;
    (void)warn, (void)cap;
    /* The cluster checks policies; one refusal stands for all of them. */
    if (p->replicas != 1 && p->replicas != 3 && p->replicas != 5)
        return merr_set(e, MERR_INVALID, "replicas must be 1, 3 or 5 (not %lld)",
                        (long long)p->replicas);
    assert_true(p->start_len <= sizeof(f->start) && p->end_len <= sizeof(f->end));
    f->have = 1;
    f->sets++;
    snprintf(f->name, sizeof(f->name), "%s", p->name);
    snprintf(f->regions, sizeof(f->regions), "%s", p->regions);
    snprintf(f->lead, sizeof(f->lead), "%s", p->lead_region);
    snprintf(f->survive, sizeof(f->survive), "%s", p->survive);
    memcpy(f->start, p->start, p->start_len);
    memcpy(f->end, p->end, p->end_len);
    f->start_len = p->start_len;
    f->end_len = p->end_len;
    f->replicas = p->replicas;
    return 0;
}

static int f_rm(void *ctx, const char *name, merr *e)
{
    fake *f = ctx;
    if (!f->have || strcmp(name, f->name) != 0)
        return merr_set(e, MERR_INVALID, "no policy named \"%s\"", name);
    f->have = 0;
    f->rms++;
    return 0;
}

static void test_placement_statements(void **state)
{
    (void)state;
    sql_kv_mem *kv;
    sql_session *s;
    merr e = {0};
    out o;
    fake f = {0};
    sql_cluster_ops ops = {.policies = f_policies, .policy_set = f_set, .policy_rm = f_rm};
    assert_int_equal(sql_kv_mem_open(&kv), 0);
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, kv, &s, &e), 0);
    q(s, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)", &o);
    q(s, "CREATE TABLE u(a INTEGER PRIMARY KEY)", &o);
    err(s, "ALTER TABLE t SET PLACEMENT (replicas = 5)", 0, "not available");

    sql_session_set_cluster(s, &ops, &f);
    q(s, "ALTER TABLE t SET PLACEMENT (lead_region = 'us', regions = 'us,eu', replicas = 5);", &o);
    assert_int_equal(f.sets, 1);
    assert_string_equal(f.name, "table.100");
    assert_int_equal(f.replicas, 5);
    assert_string_equal(f.regions, "us,eu");
    assert_string_equal(f.lead, "us");
    assert_string_equal(f.survive, "zone");
    /* Exactly table 100's keys: [prefix, prefix end). */
    mbuf lo = MBUF_INIT, hi = MBUF_INIT;
    mkey_val v = mkey_int(100, 0);
    assert_int_equal(mkey_encode_prefix(&v, 1, &lo), 0);
    assert_int_equal(mkey_encode_prefix(&v, 1, &hi), 0);
    assert_int_equal(mkey_prefix_end(&hi), 0);
    assert_true(f.start_len == lo.len && memcmp(f.start, lo.data, lo.len) == 0);
    assert_true(f.end_len == hi.len && memcmp(f.end, hi.data, hi.len) == 0);
    mbuf_free(&lo);
    mbuf_free(&hi);

    q(s, "SHOW PLACEMENT", &o);
    assert_non_null(strstr(o.buf, "table.100|t|"));
    assert_non_null(strstr(o.buf, "|5|us,eu|us|zone;"));
    q(s, "SHOW PLACEMENT FOR TABLE t", &o);
    assert_non_null(strstr(o.buf, "table.100|t|"));
    q(s, "SHOW PLACEMENT FOR TABLE u", &o);
    assert_string_equal(o.buf, "");
    q(s, "SELECT name, replicas FROM meridian_placement WHERE table_name = 't'", &o);
    assert_string_equal(o.buf, "table.100|5;");

    /* Replaced as a whole; the defaults for what is not said. */
    q(s, "alter table \"t\" set placement (survive = region)", &o);
    assert_int_equal(f.replicas, 3);
    assert_string_equal(f.survive, "region");
    assert_string_equal(f.regions, "");

    /* Refusals change nothing. */
    int sets = f.sets;
    err(s, "ALTER TABLE nope SET PLACEMENT (replicas = 3)", 0, "no such table: nope");
    err(s, "ALTER TABLE t SET PLACEMENT (colour = 'red')", 0, "replicas, regions");
    err(s, "ALTER TABLE t SET PLACEMENT replicas = 3", 0, "'('");
    err(s, "ALTER TABLE t SET PLACEMENT (replicas = 'x')", 0, "a number");
    err(s, "ALTER TABLE t SET PLACEMENT (replicas 3)", 0, "'='");
    err(s, "ALTER TABLE t SET PLACEMENT (replicas = 3", 0, "',' or ')'");
    err(s, "ALTER TABLE t SET PLACEMENT (replicas = 3) junk", 0, "end of the statement");
    err(s, "ALTER TABLE t SET PLACEMENT (replicas = 2)", 0, "1, 3 or 5");
    err(s, "SHOW PLACEMENT FOR t", 0, "TABLE");
    q(s, "BEGIN", &o);
    err(s, "ALTER TABLE t SET PLACEMENT (replicas = 3)", 0, "inside a transaction");
    q(s, "ROLLBACK", &o);
    q(s, "CREATE USER bob", &o);
    sql_session_set_user(s, "bob", 1);
    err(s, "ALTER TABLE t RESET PLACEMENT", 0, "needs ADMIN");
    sql_session_set_user(s, "root", 1);
    assert_int_equal(f.sets, sets);
    assert_int_equal(f.have, 1);

    /* Not intercepted: other ALTER TABLE forms. */
    q(s, "ALTER TABLE t ADD COLUMN c INTEGER", &o);
    q(s, "INSERT INTO t VALUES (1, 'x', 2)", &o);
    q(s, "SELECT c FROM t", &o);
    assert_string_equal(o.buf, "2;");

    /* Several statements in one string. */
    q(s, "ALTER TABLE t RESET PLACEMENT; SELECT count(*) FROM meridian_placement", &o);
    assert_string_equal(o.buf, "0;");
    assert_int_equal(f.rms, 1);
    q(s, "ALTER TABLE t RESET PLACEMENT", &o); /* nothing to remove: fine */

    /* DROP TABLE takes the table's policy along, once the drop commits. */
    q(s, "ALTER TABLE t SET PLACEMENT (replicas = 5)", &o);
    q(s, "BEGIN; DROP TABLE t; ROLLBACK", &o);
    q(s, "BEGIN; SAVEPOINT a; DROP TABLE t; ROLLBACK TO a; COMMIT", &o);
    assert_int_equal(f.have, 1);
    q(s, "DROP TABLE t", &o);
    assert_int_equal(f.have, 0);
    assert_int_equal(f.rms, 2);
    q(s, "DROP TABLE u", &o); /* no policy: nothing to remove, no error */

    sql_session_close(s);
    sql_kv_mem_close(kv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_placement_statements),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
