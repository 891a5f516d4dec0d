#!/usr/bin/env python3
"""Authorization matrix against a running secure node (authz_test.sh starts
it): users with table- and database-level grants (and one through a role)
log in with SCRAM passwords and run every statement of the list; whether
each is allowed is computed from the grants by the small model below, not
typed in, and the node must agree, with a "permission denied" (or a clear
refusal) whenever it refuses.

Usage: authz_matrix.py MERIDIAN_BIN HOST CERTS_DIR [USER,...]

With a list of users, only they run the statements (the sanitizer build
runs a cross-section: each run is a process, eight times dearer there); the
normal build runs every user.
"""
import os
import subprocess
import sys

BIN, HOST, CERTS = sys.argv[1:4]
PRIVS = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE")
PASSWORD = "Matrix-pw-4417"

# user -> {object: set of privileges}; object "*" is the database.
USERS = {
    "u_none": {},
    "u_sel_t": {"t": {"SELECT"}},
    "u_ins_t": {"t": {"INSERT"}},
    "u_upd_t": {"t": {"UPDATE"}},
    "u_selupd_t": {"t": {"SELECT", "UPDATE"}},
    "u_del_t": {"t": {"SELECT", "DELETE"}},
    "u_crt_t": {"t": {"CREATE"}},
    "u_all_t": {"t": set(PRIVS)},
    "u_sel_db": {"*": {"SELECT"}},
    "u_crt_db": {"*": {"CREATE"}},
    "u_wr_db": {"*": {"SELECT", "INSERT", "UPDATE", "DELETE"}},
    "u_admin": {"*": {"ADMIN"}},
    "u_view_only": {"v_t": {"SELECT"}},
    "u_role": {},  # only through role r_rw
}
ROLES = {"r_rw": {"t": {"SELECT", "INSERT"}, "v_t": {"SELECT"}}}
MEMBERS = {"u_role": ["r_rw"]}


def privs(user, table):
    """The model: own grants and the roles' grants, on the table or the
    database; ADMIN implies everything."""
    have = set()
    for who in [user] + MEMBERS.get(user, []):
        g = USERS.get(who, ROLES.get(who, {}))
        for obj in ("*", table):
            have |= g.get(obj, set())
    if "ADMIN" in have:
        have |= set(PRIVS) | {"ADMIN"}
    return have


def allowed(user, needs):
    """needs: list of (privilege, table) pairs; table None = the database
    (only database-level grants count); "never" / "always"."""
    if needs == "never":
        return False
    if needs == "always":
        return True
    return all(p in privs(user, t if t else "*") for p, t in needs)


S, I, U, D, C = PRIVS
# (name, sql, needs). {u} is the user (unique object names), {n} a unique number.
STATEMENTS = [
    ("select", "SELECT b FROM t WHERE a = 1", [(S, "t")]),
    ("select_cte", "WITH x AS (SELECT a FROM t) SELECT count(*) FROM x", [(S, "t")]),
    ("select_join", "SELECT count(*) FROM t, t2 WHERE t.a = t2.a", [(S, "t"), (S, "t2")]),
    ("insert", "INSERT INTO t(a, b) VALUES({n}, 'x')", [(I, "t")]),
    ("insert_select", "INSERT INTO t(a, b) SELECT {n}, b FROM t WHERE a = 1", [(I, "t"), (S, "t")]),
    ("update", "UPDATE t SET b = 'one' WHERE a = 1", [(U, "t"), (S, "t")]),
    ("delete", "DELETE FROM t WHERE a = -{n}", [(D, "t"), (S, "t")]),
    ("upsert", "INSERT INTO t(a, b) VALUES(1, 'one') ON CONFLICT(a) DO UPDATE SET b = excluded.b",
     [(I, "t"), (U, "t"), (S, "t")]),
    ("replace", "REPLACE INTO t(a, b) VALUES(1, 'one')", [(I, "t"), (D, "t")]),
    ("read_meridian_named", "SELECT b FROM meridian_secret", [(S, "meridian_secret")]),
    # A view needs SELECT on itself and on the tables under it.
    ("read_view", "SELECT * FROM v_t", [(S, "v_t"), (S, "t")]),
    ("system_view", "SELECT count(*) FROM meridian_tables", "always"),
    ("schema_table", "SELECT count(*) FROM sqlite_master", "always"),
    ("pragma_table_info", "PRAGMA table_info(t)", "always"),
    ("pragma_writable_schema", "PRAGMA writable_schema = ON", [("ADMIN", None)]),
    ("pragma_cache_size", "PRAGMA cache_size = 10", [("ADMIN", None)]),
    ("schema_write", "PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = 'x' WHERE name = 't'",
     "never"),
    ("dbpage_write", "INSERT INTO sqlite_dbpage VALUES(1, zeroblob(4096))", "never"),
    ("attach", "ATTACH ':memory:' AS x", "never"),
    ("load_extension", "SELECT load_extension('/nonexistent/meridian-x.so')", "never"),
    ("create_table", "CREATE TABLE n_{u}(a INTEGER PRIMARY KEY)", [(C, None)]),
    ("create_view", "CREATE VIEW v_{u} AS SELECT a FROM t2", [(C, None)]),
    ("ctas", "CREATE TABLE c_{u} AS SELECT b FROM t", [(C, None), (S, "t")]),
    # The statements after a CREATE TABLE ... AS must not run inside it,
    # past the classifier (a virtual table over t's id under a system name).
    ("ctas_tail", "CREATE TABLE e_{u} AS SELECT 1 AS x; CREATE VIRTUAL TABLE meridian_x USING "
     "meridian({tid}); INSERT INTO e_{u} SELECT a FROM meridian_x", "never"),
    ("create_index", "CREATE INDEX i_{u} ON t(b)", [(C, "t")]),
    ("alter_add_column", "ALTER TABLE t ADD COLUMN c_{u} INTEGER", [(C, "t")]),
    ("drop_table", "DROP TABLE d_{u}", [(C, "d_{u}")]),
    ("grant", "GRANT SELECT ON t TO dummy", [("ADMIN", None)]),
    ("revoke", "REVOKE SELECT ON t FROM dummy", [("ADMIN", None)]),
    ("create_user", "CREATE USER x_{u}", [("ADMIN", None)]),
    ("alter_user", "ALTER USER dummy WITH PASSWORD 'Other-pw-1'", [("ADMIN", None)]),
    ("show_grants_other", "SHOW GRANTS FOR dummy", [("ADMIN", None)]),
]

REFUSALS = ("permission denied", "not authorized", "not supported", "may not be modified",
            "no such table: sqlite_dbpage", "table sqlite_dbpage may not be modified")


def sql(user, text, password=None):
    args = [BIN, "sql", "--host", HOST, "--certs-dir", CERTS, "--format", "csv", "-e", text]
    env = dict(os.environ)
    if password:
        args[6:6] = ["--user", user, "--password"]
        env["MERIDIAN_PASSWORD"] = password
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120)
    return p.returncode, (p.stdout + p.stderr).strip()


def root(text):
    rc, out = sql("root", text)
    if rc != 0:
        sys.exit(f"setup failed: {text}: {out}")
    return out


def grant_sql(who, grants):
    for obj, ps in sorted(grants.items()):
        target = "DATABASE" if obj == "*" else f"TABLE {obj}"
        yield f"GRANT {', '.join(sorted(ps))} ON {target} TO {who}"


def setup():
    root("CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); INSERT INTO t VALUES(1, 'one');"
         "CREATE TABLE t2(a INTEGER PRIMARY KEY); INSERT INTO t2 VALUES(1);"
         "CREATE TABLE meridian_secret(a INTEGER PRIMARY KEY, b TEXT);"
         "INSERT INTO meridian_secret VALUES(1, 'hidden');"
         "CREATE VIEW v_t AS SELECT b FROM t; CREATE USER dummy")
    stmts = []
    for r, g in ROLES.items():
        stmts.append(f"CREATE ROLE {r}")
        stmts += grant_sql(r, g)
    for u, g in USERS.items():
        stmts.append(f"CREATE USER {u} WITH PASSWORD '{PASSWORD}'")
        stmts.append(f"CREATE TABLE d_{u}(a INTEGER PRIMARY KEY)")
        stmts += grant_sql(u, g)
        stmts += [f"GRANT {r} TO {u}" for r in MEMBERS.get(u, [])]
    root("; ".join(stmts))
    return root("SELECT table_id FROM meridian_tables WHERE name = 't'").split()[-1]


def main():
    tid = setup()
    fails = runs = 0
    n = 1000
    run_users = [u for u in USERS if len(sys.argv) < 5 or u in sys.argv[4].split(",")]
    if not run_users:
        sys.exit(f"no known user in {sys.argv[4]}")
    for u in run_users:
        for name, text, needs in STATEMENTS:
            n += 1
            text = text.format(u=u, n=n, tid=tid)
            if isinstance(needs, list):
                needs = [(p, t.format(u=u) if t else None) for p, t in needs]
            want = allowed(u, needs)
            rc, out = sql(u, text, PASSWORD)
            runs += 1
            refused_clearly = rc != 0 and any(r in out for r in REFUSALS)
            if want and rc != 0:
                fails += 1
                print(f"FAIL: {u} {name}: expected allowed, got: {out}")
            elif not want and not refused_clearly:
                fails += 1
                print(f"FAIL: {u} {name}: expected refused, got rc={rc}: {out}")
            elif not want and needs != "never" and "permission denied" not in out:
                fails += 1
                print(f"FAIL: {u} {name}: refused without 'permission denied': {out}")
    # Grants belong to a name: a renamed table's do not pass to the next
    # table that takes the old name.
    root("CREATE TABLE r1(a INTEGER PRIMARY KEY); GRANT SELECT ON r1 TO u_none;"
         "ALTER TABLE r1 RENAME TO r2; CREATE TABLE r1(a INTEGER PRIMARY KEY)")
    rc, out = sql("u_none", "SELECT count(*) FROM r1", PASSWORD)
    if rc == 0 or "permission denied" not in out:
        fails += 1
        print(f"FAIL: a grant on a renamed table's old name applies to a new r1: {out}")
    # SHOW USERS: everyone for an admin, only oneself otherwise.
    for u in run_users:
        rc, out = sql(u, "SHOW USERS", PASSWORD)
        names = {line.split(",")[0] for line in out.splitlines()[1:]}
        want = set(USERS) | set(ROLES) | {"root", "dummy"} if allowed(u, [("ADMIN", None)]) else {u}
        if rc != 0 or not want <= names or (want == {u} and names != want):
            fails += 1
            print(f"FAIL: {u} SHOW USERS: expected {sorted(want)}, got: {out}")
    # The CREATE TABLE ... AS before the refused part ran alone.
    for u in run_users:
        if allowed(u, [(C, None)]):
            got = root(f"SELECT count(*) FROM e_{u}").split()[-1]
            if got != "1":
                fails += 1
                print(f"FAIL: {u} ctas_tail: e_{u} holds {got} rows, not 1")
    # Refused statements changed nothing: row 1 is as it was, and t2 whole.
    check = root("SELECT b FROM t WHERE a = 1; SELECT count(*) FROM t2")
    if check.split() != ["b", "one", "count(*)", "1"]:
        fails += 1
        print(f"FAIL: refused statements left traces: {check}")
    print(f"{runs} statements x users checked ({len(run_users)} of {len(USERS)} users), "
          f"{fails} failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
