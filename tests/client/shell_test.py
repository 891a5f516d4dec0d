#!/usr/bin/env python3
"""The `meridian sql` shell end to end against a session_server process:
non-interactive (-e, stdin) output formats, dot-commands, errors and exit
codes; and through a pseudo-terminal the prompt, multi-line statements,
transaction state in the prompt and Ctrl-C cancelling a running statement.
With LOCAL_CLUSTER_SH, also against a real 3-node cluster: .nodes and
.ranges from the cluster views, and Ctrl-C cancelling a statement there.

usage: shell_test.py MERIDIAN_BIN SESSION_SERVER_BIN [LOCAL_CLUSTER_SH]
Every process started here is killed by PID; waits are on output, with a
hang guard."""
import csv
import os
import pty
import select
import signal
import subprocess
import sys
import tempfile
import time

MERIDIAN, SERVER = sys.argv[1], sys.argv[2]
CLUSTER_SH = sys.argv[3] if len(sys.argv) > 3 else None
TIMEOUT = 30
failures = []


def check(cond, what, detail=""):
    if not cond:
        failures.append(what)
        print("FAIL:", what, detail)


def start_server():
    p = subprocess.Popen([SERVER, "--node-id", "3"], stdout=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    if not line.startswith("port="):
        p.kill()
        raise SystemExit("session_server did not start")
    return p, "127.0.0.1:" + line.strip().split("=")[1]


def sql(addr, *args, stdin=None):
    env = dict(os.environ, MERIDIAN_HISTORY=os.devnull)
    return subprocess.run([MERIDIAN, "sql", "--host", addr, *args], input=stdin,
                          capture_output=True, text=True, timeout=TIMEOUT, env=env)


SETUP = ("CREATE TABLE t(a INTEGER, b TEXT, c BLOB); "
         "INSERT INTO t VALUES (1, 'x', NULL), (2, 'y,\"z\"', x'00ff'); ")


def test_formats(addr):
    r = sql(addr, "-e", SETUP + "SELECT a, b, c FROM t ORDER BY a;", "--format", "csv")
    check(r.returncode == 0, "csv exit", r.stderr)
    check(r.stdout == 'a,b,c\n1,x,\n2,"y,""z""",\\x00ff\n', "csv output", repr(r.stdout))
    r = sql(addr, "-e", SETUP + "SELECT a, b FROM t ORDER BY a;", "--format=tsv")
    check(r.stdout == 'a\tb\n1\tx\n2\ty,"z"\n', "tsv output", repr(r.stdout))
    r = sql(addr, "-e", SETUP + "SELECT a, b, c, 1.5 AS f FROM t ORDER BY a;", "--format", "json")
    check(r.stdout == '[\n {"a": 1, "b": "x", "c": null, "f": 1.5},\n'
          ' {"a": 2, "b": "y,\\"z\\"", "c": "\\\\x00ff", "f": 1.5}\n]\n',
          "json output", repr(r.stdout))
    r = sql(addr, "-e", SETUP + "SELECT a, b FROM t ORDER BY a;")
    check(r.stdout == "OK\nOK, 2 rows affected\n a | b\n---+-------\n 1 | x\n 2 | y,\"z\"\n(2 rows)\n",
          "table output", repr(r.stdout))
    r = sql(addr, "-e", "SELECT 1 AS one, NULL AS n", "--format", "line")
    check(r.stdout == "one = 1\nn = NULL\n", "line output", repr(r.stdout))
    r = sql(addr, "-e", "SELECT 1", "--format", "xml")
    check(r.returncode == 2 and "unknown format" in r.stderr, "bad format", r.stderr)


def test_stdin_and_errors(addr):
    # Several statements over several lines, one session (temp table).
    r = sql(addr, "--format", "csv", stdin="CREATE TEMP TABLE s(x);\nINSERT INTO s\n VALUES (7);\n"
            ";; -- nothing\nSELECT x\n FROM s;\nSELECT 8")
    check(r.returncode == 0 and r.stdout == "x\n7\n8\n8\n", "stdin statements", repr(r.stdout))
    # An error: stderr with the position, exit status 1, later statements not run.
    r = sql(addr, "--format", "csv", "-e",
            "SELECT 1; CREATE TEMP TABLE q(a); SELECT a,\n  nope FROM q; SELECT 2;")
    check(r.returncode == 1, "error exit status", str(r.returncode))
    check(r.stdout == "1\n1\n", "output before the error", repr(r.stdout))
    check("ERROR: no such column: nope" in r.stderr, "error message", r.stderr)
    check("LINE 2:   nope FROM q; SELECT 2;\n          ^" in r.stderr, "error position", repr(r.stderr))
    r = sql(addr, "--format", "csv", stdin="SELECT 1;\nSELEC 2;\nSELECT 3;\n")
    check(r.returncode == 1 and "syntax error" in r.stderr and "3" not in r.stdout,
          "stdin stops at the first error", repr((r.stdout, r.stderr)))
    r = sql("127.0.0.1:1", "-e", "SELECT 1", "--connect-timeout", "2s")
    check(r.returncode == 1 and "cannot reach any host" in r.stderr, "no server", r.stderr)
    r = sql(addr, "--bogus")
    check(r.returncode == 2, "unknown flag exit status", r.stderr)
    r = sql(addr, "--read-only", "-e", "CREATE TABLE z(x)")
    check(r.returncode == 1 and "readonly" in r.stderr, "read-only session", r.stderr)


def test_dot_commands(addr):
    with tempfile.TemporaryDirectory() as d:
        f = os.path.join(d, "script.sql")
        with open(f, "w") as fh:
            fh.write("CREATE TABLE r(x INT);\nINSERT INTO r VALUES (5);\n")
        script = (f".mode csv\n.read {f}\nSELECT x FROM r;\n.tables\n.schema r\n.timer off\n"
                  ".mode\n.help\n.quit\nSELECT 'not reached';\n")
        r = sql(addr, stdin=script)
        check(r.returncode == 0, ".read/.mode/.tables exit", r.stderr)
        check(r.stdout.startswith("x\n5\nname\nr\nschema\nCREATE TABLE r(x INT);\ncsv\n"),
              "dot-command output", repr(r.stdout))
        check(".schema [TABLE]" in r.stdout and "not reached" not in r.stdout, ".help/.quit",
              r.stdout)
        for cmd in (".ranges", ".nodes"):
            r = sql(addr, stdin=cmd + "\n")
            check(r.returncode == 1 and "needs a Meridian cluster" in r.stderr, cmd, r.stderr)
        r = sql(addr, stdin=".frobnicate\n")
        check(r.returncode == 1 and "unknown command" in r.stderr, "unknown dot-command", r.stderr)
        r = sql(addr, stdin=".read /nonexistent/file.sql\n")
        check(r.returncode == 1 and "cannot open" in r.stderr, ".read missing file", r.stderr)


class Pty:
    def __init__(self, addr):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:
            os.environ["MERIDIAN_HISTORY"] = os.devnull
            os.environ["TERM"] = "dumb"
            os.execv(MERIDIAN, [MERIDIAN, "sql", "--host", addr])
        self.buf = b""

    def expect(self, text):
        """Reads until text shows up; returns everything up to and including it."""
        want = text.encode()
        end = time.monotonic() + TIMEOUT
        while want not in self.buf:
            left = end - time.monotonic()
            if left <= 0:
                raise TimeoutError("waiting for %r; got %r" % (text, self.buf[-800:]))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    chunk = os.read(self.fd, 4096)
                except OSError:
                    chunk = b""
                if not chunk:
                    raise EOFError("shell exited; got %r" % self.buf[-800:])
                self.buf += chunk
        i = self.buf.index(want) + len(want)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out.decode(errors="replace")

    def send(self, s):
        os.write(self.fd, s.encode())

    def close(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(self.pid, 0)
        os.close(self.fd)


def test_interactive(addr):
    p = Pty(addr)
    try:
        prompt = "root@%s> " % addr
        p.expect(prompt)
        p.send("SELECT 40 +\n")
        p.expect("-> ")  # continuation prompt
        p.send("2 AS answer;\n")
        out = p.expect(prompt)
        check(" answer" in out and " 42" in out and "(1 row)" in out and "Time:" in out,
              "interactive multi-line result", repr(out))
        # Ctrl-C at the prompt drops the statement being typed.
        p.send("SELECT 'half' ||\n")
        p.expect("-> ")
        p.send("\x03")
        out = p.expect(prompt)
        check("^C" in out, "Ctrl-C at the prompt", repr(out))
        p.send("SELECT 'whole' AS w;\n")
        out = p.expect(prompt)
        check(" whole" in out and "half" not in out, "statement after Ctrl-C at the prompt",
              repr(out))
        p.send("BEGIN;\n")
        p.expect("root@%s OPEN> " % addr)
        p.send("SELECT meridian_test_abort(1);\n")
        out = p.expect("root@%s ERROR> " % addr)
        check("retry" in out, "failed transaction prompt", repr(out))
        p.send("ROLLBACK;\n")
        p.expect(prompt)
        p.send("SELEC 1;\n")
        out = p.expect(prompt)
        check("syntax error" in out, "interactive error keeps the shell", repr(out))
        # Ctrl-C cancels the running statement, not the shell. 'started' is
        # printed by the first statement, so the long one is under way.
        p.send(".mode csv\n")
        p.expect(prompt)
        p.send("SELECT 'started' AS s; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1"
               " FROM c WHERE x < 1000000000) SELECT count(*) FROM c;\n")
        p.expect("started\r\n")
        p.send("\x03")
        out = p.expect(prompt)
        check("interrupted" in out, "Ctrl-C cancels the statement", repr(out))
        p.send("SELECT 6 * 7 AS v;\n")
        out = p.expect(prompt)
        check("v\r\n42" in out, "shell alive after Ctrl-C", repr(out))
        p.send(".quit\n")
        _, status = os.waitpid(p.pid, 0)
        p.pid = None
        check(os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, ".quit exit status",
              str(status))
    finally:
        if p.pid:
            p.close()
        else:
            os.close(p.fd)


def cluster_nodes(d):
    """[(index, rpc address)] from local-cluster.sh's nodes file."""
    with open(os.path.join(d, "nodes")) as f:
        return [(int(l.split()[0]), l.split()[2]) for l in f if l.strip()]


def test_cluster(d):
    nodes = cluster_nodes(d)
    addr = nodes[0][1]
    r = sql(addr, "--format", "csv", stdin=".nodes\n")
    check(r.returncode == 0, ".nodes exit", r.stderr)
    rows = list(csv.reader(r.stdout.splitlines()))
    check(rows[0][:5] == ["node_id", "address", "region", "zone", "state"], ".nodes header",
          repr(rows[:1]))
    check(sorted(x[1] for x in rows[1:]) == sorted(a for _, a in nodes)
          and all(x[4] == "serving" for x in rows[1:]), ".nodes rows", r.stdout)
    # Replica counts: range 1 has a replica on each of the three nodes, one lease.
    check(sum(int(x[5]) for x in rows[1:]) == 3 and sum(int(x[6]) for x in rows[1:]) == 1,
          ".nodes replica and lease counts", r.stdout)
    # local-cluster.sh runs the nodes on the static clock source.
    check(rows[0][8:] == ["clock_source", "clock_epsilon_us"]
          and all(x[8] == "static" and int(x[9]) > 0 for x in rows[1:]), ".nodes clock", r.stdout)
    r = sql(addr, "--format", "csv", "-e",
            "CREATE TABLE shell_k(a INTEGER PRIMARY KEY, b TEXT); "
            "INSERT INTO shell_k VALUES (1, 'x'), (2, 'y');")
    check(r.returncode == 0, "cluster table", r.stderr)
    r = sql(addr, "--format", "csv", stdin=".ranges shell_k\n")
    rows = list(csv.reader(r.stdout.splitlines()))
    check(r.returncode == 0 and len(rows) == 2 and rows[1][:4] == ["1", "shell_k", "-inf", "+inf"],
          ".ranges TABLE", repr((r.stdout, r.stderr)))
    check(len(rows) == 2 and rows[1][4] == "1,2,3" and rows[1][5] in ("1", "2", "3"),
          ".ranges replicas and leader", r.stdout)
    r = sql(addr, stdin=".ranges no_such_table\n")
    check(r.returncode == 1 and "no such table: no_such_table" in r.stderr, ".ranges bad table",
          r.stderr)
    # The session asking sees itself running its statement.
    r = sql(addr, "--format", "csv", "-e",
            "SELECT user, state, statement FROM meridian_sessions WHERE state = 'running';")
    check(list(csv.reader(r.stdout.splitlines())) == [
        ["user", "state", "statement"],
        ["root", "running",
         "SELECT user, state, statement FROM meridian_sessions WHERE state = 'running';"]],
        "meridian_sessions", repr(r.stdout))
    # Ctrl-C cancels a statement running on the cluster; the shell goes on.
    p = Pty(addr)
    try:
        prompt = "root@%s> " % addr
        p.expect(prompt)
        p.send(".mode csv\n")
        p.expect(prompt)
        p.send("SELECT 'started' AS s; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1"
               " FROM c WHERE x < 1000000000) SELECT count(*) FROM c;\n")
        p.expect("started\r\n")
        p.send("\x03")
        out = p.expect(prompt)
        check("interrupted" in out, "cluster: Ctrl-C cancels the statement", repr(out))
        p.send("SELECT count(*) AS n FROM shell_k;\n")
        out = p.expect(prompt)
        check("n\r\n2" in out, "cluster: shell alive after Ctrl-C", repr(out))
    finally:
        p.close()


def run_cluster_tests():
    d = tempfile.mkdtemp(prefix="shell_test.")
    try:
        r = subprocess.run(["bash", CLUSTER_SH, "start", d, "3"], capture_output=True, text=True,
                           timeout=120, env=dict(os.environ, MERIDIAN_BIN=MERIDIAN))
        if r.returncode != 0:
            failures.append("cluster start")
            print("FAIL: cluster start", r.stdout, r.stderr)
            return
        try:
            test_cluster(d)
        except Exception as e:
            failures.append("test_cluster")
            print("FAIL: test_cluster", repr(e))
    finally:
        subprocess.run(["bash", CLUSTER_SH, "stop", d], capture_output=True, timeout=60)
        subprocess.run(["rm", "-rf", d])


def main():
    if CLUSTER_SH:
        run_cluster_tests()
    server, addr = start_server()
    try:
        for t in (test_formats, test_stdin_and_errors, test_dot_commands, test_interactive):
            try:
                t(addr)
            except Exception as e:  # report and go on with the next test
                failures.append(t.__name__)
                print("FAIL:", t.__name__, repr(e))
    finally:
        server.kill()
        server.wait()
    if failures:
        print("%d failure(s): %s" % (len(failures), ", ".join(failures)))
        sys.exit(1)
    print("ok")


if __name__ == "__main__":
    main()
