/* Users, roles and privileges in the SQL layer: the statement parser (good
 * and bad forms), password redaction, verifiers in the catalog (never the
 * password), and authorization through SQLite's authorizer: SELECT/INSERT
 * per table, GRANT then REVOKE seen by a second session, DDL needing CREATE,
 * ownership, roles, dropped users, SHOW USERS/GRANTS. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/scram.h"
#include "sql/auth.h"
#include "sql/kv_mem.h"
#include "sql/session.h"
#include "tests/unit/sql/fixture.h"

static void parse_ok(const char *sql, sql_auth_kind kind, const char *name, const char *object,
                     unsigned privs)
{
    sql_auth_stmt a;
    merr e = {0};
    size_t end = 0;
    if (sql_auth_parse(sql, &a, &end, &e)) fail_msg("%s: %s", sql, e.msg);
    assert_int_equal(a.kind, kind);
    assert_string_equal(a.name, name);
    if (object) assert_string_equal(a.object, object);
    assert_int_equal(a.privs, privs);
    sql_auth_stmt_free(&a);
}

static void parse_bad(const char *sql, const char *msg)
{
    sql_auth_stmt a;
    merr e = {0};
    size_t end = 0;
    assert_int_not_equal(sql_auth_parse(sql, &a, &end, &e), 0);
    if (!strstr(e.msg, msg)) fail_msg("%s: \"%s\" lacks \"%s\"", sql, e.msg, msg);
}

static void test_parser(void **state)
{
    (void)state;
    sql_auth_stmt a;
    merr e = {0};
    size_t end = 0;
    parse_ok("GRANT SELECT ON TABLE t TO alice", SQL_AUTH_GRANT, "alice", "t", SQL_PRIV_SELECT);
    parse_ok("grant select, insert on t to alice;", SQL_AUTH_GRANT, "alice", "t",
             SQL_PRIV_SELECT | SQL_PRIV_INSERT);
    parse_ok("GRANT ALL ON DATABASE TO bob", SQL_AUTH_GRANT, "bob", "*", SQL_PRIV_ALL);
    parse_ok("GRANT ALL PRIVILEGES ON * TO bob", SQL_AUTH_GRANT, "bob", "*", SQL_PRIV_ALL);
    parse_ok("GRANT ADMIN ON * TO \"Carol\"", SQL_AUTH_GRANT, "Carol", "*", SQL_PRIV_ADMIN);
    parse_ok("REVOKE INSERT, DELETE ON TABLE t FROM alice", SQL_AUTH_REVOKE, "alice", "t",
             SQL_PRIV_INSERT | SQL_PRIV_DELETE);
    parse_ok("GRANT readers TO alice", SQL_AUTH_GRANT_ROLE, "alice", NULL, 0);
    parse_ok("REVOKE readers FROM alice", SQL_AUTH_REVOKE_ROLE, "alice", NULL, 0);
    parse_ok("SHOW GRANTS FOR alice", SQL_AUTH_SHOW_GRANTS, "alice", NULL, 0);
    parse_ok("SHOW GRANTS", SQL_AUTH_SHOW_GRANTS, "", NULL, 0);
    parse_ok("SHOW USERS", SQL_AUTH_SHOW_USERS, "", NULL, 0);
    parse_ok("DROP USER alice", SQL_AUTH_DROP_USER, "alice", NULL, 0);
    parse_ok("CREATE ROLE readers", SQL_AUTH_CREATE_ROLE, "readers", NULL, 0);
    parse_ok("DROP ROLE readers", SQL_AUTH_DROP_ROLE, "readers", NULL, 0);
    /* Passwords: quotes, NULL, WITH optional; the text consumed ends at ';'. */
    const char *sql = "CREATE USER alice WITH PASSWORD 'it''s'; SELECT 1";
    assert_int_equal(sql_auth_parse(sql, &a, &end, &e), 0);
    assert_int_equal(a.kind, SQL_AUTH_CREATE_USER);
    assert_true(a.set_password);
    assert_string_equal(a.password, "it's");
    assert_string_equal(sql + end, " SELECT 1");
    sql_auth_stmt_free(&a);
    assert_null(a.password);
    assert_int_equal(sql_auth_parse("ALTER USER alice PASSWORD NULL", &a, &end, &e), 0);
    assert_true(a.set_password);
    assert_null(a.password);
    assert_int_equal(sql_auth_parse("CREATE USER bob", &a, &end, &e), 0);
    assert_false(a.set_password);
    /* Bad forms. */
    parse_bad("GRANT SELECT TO alice", "expected ON");
    parse_bad("GRANT SELECT ON t alice", "expected TO");
    parse_bad("REVOKE SELECT ON t TO alice", "expected FROM");
    parse_bad("GRANT SELECT, FLY ON t TO alice", "expected a privilege");
    parse_bad("GRANT ADMIN ON TABLE t TO alice", "ADMIN is granted ON DATABASE");
    parse_bad("ALTER USER alice", "expected PASSWORD");
    parse_bad("CREATE USER alice WITH PASSWORD secret", "a password string");
    parse_bad("CREATE USER alice PASSWORD ''", "empty password");
    parse_bad("CREATE USER 'alice'", "expected user name");
    parse_bad("CREATE USER \"a,b\"", "invalid user name");
    parse_bad("DROP USER alice bob", "expected the end of the statement");
    parse_bad("GRANT", "expected role name");
    /* Classification and redaction. */
    assert_true(sql_auth_is("create user x"));
    assert_true(sql_auth_is("  GRANT x TO y"));
    assert_true(sql_auth_is("SHOW USERS"));
    assert_false(sql_auth_is("CREATE TABLE user(a)"));
    assert_false(sql_auth_is("SELECT * FROM users"));
    char *r = sql_auth_redact("ALTER USER a WITH PASSWORD 'hunter2'");
    assert_null(strstr(r, "hunter2"));
    assert_non_null(strstr(r, "'*******'"));
    free(r);
}

static void denied(sql_session *s, const char *sql, const char *msg)
{
    merr e = {0};
    int rc = sql_exec(s, sql, NULL, NULL, &e);
    if (!rc) fail_msg("%s: allowed, want \"%s\"", sql, msg);
    if (!strstr(merr_msg(&e), msg)) fail_msg("%s: \"%s\" lacks \"%s\"", sql, e.msg, msg);
}

typedef struct afx {
    sql_kv_mem *kv;
    sql_session *root, *alice;
} afx;

static int auth_setup(void **state)
{
    afx *f = calloc(1, sizeof(*f));
    merr e = {0};
    assert_int_equal(sql_kv_mem_open(&f->kv), 0);
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &f->root, &e), 0);
    assert_int_equal(sql_session_open(&sql_kv_mem_ops, f->kv, &f->alice, &e), 0);
    sql_session_set_user(f->root, "root", 1);
    sql_session_set_user(f->alice, "alice", 1);
    *state = f;
    return 0;
}

static int auth_teardown(void **state)
{
    afx *f = *state;
    sql_session_close(f->root);
    sql_session_close(f->alice);
    sql_kv_mem_close(f->kv);
    free(f);
    return 0;
}

static void test_select_insert_grant_revoke(void **state)
{
    afx *f = *state;
    out o;
    ok(f->root, "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT)");
    ok(f->root, "INSERT INTO t VALUES(1, 'one')");
    denied(f->alice, "SELECT * FROM t", "user alice does not exist");
    ok(f->root, "CREATE USER alice WITH PASSWORD 'pw1'");
    denied(f->alice, "SELECT * FROM t",
           "permission denied: user alice has no SELECT privilege on table t");
    ok(f->root, "GRANT SELECT ON TABLE t TO alice");
    assert_string_equal(q(f->alice, "SELECT b FROM t", &o), "one;");
    assert_string_equal(q(f->alice, "SELECT count(*) FROM t", &o), "1;");
    denied(f->alice, "INSERT INTO t VALUES(2, 'two')",
           "permission denied: user alice has no INSERT privilege on table t");
    denied(f->alice, "UPDATE t SET b = 'x'", "no UPDATE privilege on table t");
    denied(f->alice, "DELETE FROM t", "no DELETE privilege on table t");
    ok(f->root, "GRANT INSERT ON t TO alice");
    ok(f->alice, "INSERT INTO t VALUES(2, 'two')");
    ok(f->root, "REVOKE INSERT ON t FROM alice");
    denied(f->alice, "INSERT INTO t VALUES(3, 'three')", "no INSERT privilege on table t");
    assert_string_equal(q(f->alice, "SELECT a FROM t ORDER BY a", &o), "1;2;");
    /* A statement prepared before the revoke is checked again at its run. */
    sql_stmt *st = NULL;
    merr e = {0};
    assert_int_equal(sql_prepare(f->alice, "SELECT a FROM t", &st, NULL, &e), 0);
    ok(f->root, "REVOKE SELECT ON t FROM alice");
    assert_true(sql_step(st, &e) < 0);
    assert_non_null(strstr(e.msg, "no SELECT privilege"));
    sql_finalize(st, NULL);
    /* User statements need ADMIN. */
    denied(f->alice, "CREATE USER mallory", "has no ADMIN privilege");
    denied(f->alice, "GRANT SELECT ON t TO alice", "has no ADMIN privilege");
    ok(f->root, "DROP USER alice");
    denied(f->alice, "SELECT 1 FROM t", "user alice does not exist");
}

static void test_ddl_ownership_roles_show(void **state)
{
    afx *f = *state;
    out o;
    ok(f->root, "CREATE TABLE t(a INTEGER PRIMARY KEY)");
    ok(f->root, "CREATE USER alice");
    denied(f->alice, "CREATE TABLE mine(x)", "no CREATE privilege on the database");
    denied(f->alice, "DROP TABLE t", "no CREATE privilege on table t");
    ok(f->root, "GRANT CREATE ON DATABASE TO alice");
    ok(f->alice, "CREATE TABLE mine(x INTEGER PRIMARY KEY, y)");
    ok(f->alice, "INSERT INTO mine VALUES(1, 2)"); /* the creator owns it */
    ok(f->alice, "CREATE TABLE copy AS SELECT * FROM mine");
    assert_string_equal(q(f->alice, "SELECT y FROM copy", &o), "2;");
    ok(f->alice, "CREATE INDEX mine_y ON mine(y)");
    ok(f->alice, "DROP TABLE copy");
    /* Roles. */
    ok(f->root, "CREATE ROLE readers");
    ok(f->root, "GRANT SELECT ON t TO readers");
    denied(f->alice, "SELECT * FROM t", "no SELECT privilege on table t");
    ok(f->root, "GRANT readers TO alice");
    ok(f->alice, "SELECT * FROM t");
    ok(f->root, "REVOKE readers FROM alice");
    denied(f->alice, "SELECT * FROM t", "no SELECT privilege on table t");
    /* Bad references. */
    denied(f->root, "GRANT SELECT ON nosuch TO alice", "no such table: nosuch");
    denied(f->root, "GRANT SELECT ON t TO nobody", "user or role nobody does not exist");
    denied(f->root, "CREATE USER alice", "user alice already exists");
    denied(f->root, "DROP USER root", "root cannot be dropped");
    denied(f->root, "DROP ROLE alice", "role alice does not exist");
    denied(f->root, "GRANT nosuch TO alice", "role nosuch does not exist");
    /* SHOW. */
    assert_string_equal(q(f->root, "SHOW USERS", &o),
                        "root|user|no|;alice|user|no|;readers|role|no|;");
    assert_string_equal(q(f->root, "SHOW GRANTS FOR alice", &o),
                        "alice|DATABASE|CREATE;alice|TABLE mine|ALL;");
    assert_string_equal(q(f->alice, "SHOW GRANTS", &o),
                        "alice|DATABASE|CREATE;alice|TABLE mine|ALL;");
    denied(f->alice, "SHOW GRANTS FOR readers", "no ADMIN privilege");
}

static void test_verifier_not_password(void **state)
{
    afx *f = *state;
    char v[SCRAM_VERIFIER_MAX];
    int found = 0;
    merr e = {0};
    ok(f->root, "CREATE USER alice WITH PASSWORD 'Sup3rSecretPw'");
    assert_int_equal(sql_session_user_verifier(f->root, "ALICE", v, sizeof(v), &found, &e), 0);
    assert_true(found);
    scram_verifier sv;
    assert_int_equal(scram_verifier_decode(v, &sv), 0);
    assert_true(sv.iter >= 4096);
    assert_int_equal(sql_session_user_verifier(f->root, "nobody", v, sizeof(v), &found, &e), 0);
    assert_false(found);
    /* No key or value in the store holds the password. */
    assert_false(sql_kv_mem_contains(f->kv, "Sup3rSecretPw"));
    ok(f->root, "ALTER USER alice PASSWORD NULL");
    assert_int_equal(sql_session_user_verifier(f->root, "alice", v, sizeof(v), &found, &e), 0);
    assert_true(found);
    assert_string_equal(v, "");
}

static void test_unenforced(void **state)
{
    afx *f = *state;
    /* Insecure nodes check nothing: any claimed user may do anything. */
    sql_session_set_user(f->alice, "alice", 0);
    ok(f->alice, "CREATE TABLE t(a)");
    ok(f->alice, "CREATE USER bob");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parser),
        cmocka_unit_test_setup_teardown(test_select_insert_grant_revoke, auth_setup, auth_teardown),
        cmocka_unit_test_setup_teardown(test_ddl_ownership_roles_show, auth_setup, auth_teardown),
        cmocka_unit_test_setup_teardown(test_verifier_not_password, auth_setup, auth_teardown),
        cmocka_unit_test_setup_teardown(test_unenforced, auth_setup, auth_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
