#!/usr/bin/env bash
# `meridian demo` end to end: SQL on stdin runs against a real local cluster,
# and when the shell exits every node process and every file of the demo is
# gone (node PIDs as the demo printed them, checked after; the demo's TMPDIR
# is empty). SQL runs over the cluster's transactions; nodes started with
# --testing-sql-memory (through
# MERIDIAN_START_FLAGS) answer, with the flights dataset loaded and the
# three emulated regions of --global; on a terminal, Ctrl-C spares the
# nodes and .demo kill/restart work (demo_pty.py).
set -u
bin=$1
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
tmp=$(mktemp -d /tmp/meridian-demo-test-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
base="--insecure --clock-source static --static-uncertainty 1ms"

# Not a zombie (Z, ZN when niced) nor reaped between the two looks.
running() { kill -0 "$1" 2>/dev/null && case "$(ps -o stat= -p "$1")" in "" | Z*) false ;; esac; }

# demo NAME STDIN ARGS...: runs the demo with its own TMPDIR; leaves
# $tmp/NAME.{out,err,rc} and checks that nothing of it remains.
demo() {
  local name=$1 sql=$2; shift 2
  mkdir -p "$tmp/$name.tmp"
  printf '%s\n' "$sql" | TMPDIR="$tmp/$name.tmp" "$bin" demo "$@" \
    >"$tmp/$name.out" 2>"$tmp/$name.err"
  echo $? >"$tmp/$name.rc"
  local pids; pids=$(awk '$1=="node" {print $4}' "$tmp/$name.err")
  check "$name: the demo printed its node PIDs" "[ -n \"$pids\" ]"
  local p alive=""
  # The demo has stopped them by the time it exits; a loaded machine may still
  # be reaping (30 s hang guard).
  for p in $pids; do
    for _ in $(seq 1 300); do running "$p" || break; sleep 0.1; done
    running "$p" && alive="$alive $p"
  done
  check "$name: no node process is left (alive:$alive)" "[ -z \"$alive\" ]"
  check "$name: the demo directory is gone" "[ -z \"\$(ls -A '$tmp/$name.tmp')\" ]"
}

# Default: SQL over the cluster's transactions (the transaction client).
MERIDIAN_START_FLAGS="$base" demo cluster "CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT);
INSERT INTO kv VALUES (1, 'one'), (2, 'two');
SELECT v FROM kv WHERE k = 2;
SELECT 1 + 1;" --nodes 3 --format csv
check "cluster: exit status 0 ($(cat "$tmp/cluster.rc"))" "[ \"\$(cat $tmp/cluster.rc)\" = 0 ]"
check "cluster: the table answers" "grep -qx 'two' $tmp/cluster.out"
check "cluster: 1 + 1 = 2" "grep -qx '2' $tmp/cluster.out"

# With the test-only in-memory KV on every node: the dataset loads, the
# query answers, the regions are set.
MERIDIAN_START_FLAGS="$base --testing-sql-memory" demo memory \
  "SELECT a.region, count(*) FROM flight f JOIN airport a ON a.code = f.origin GROUP BY 1 ORDER BY 1;
CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);
INSERT INTO t VALUES (1, 'one'), (2, 'two');
SELECT b FROM t WHERE a = 2;
.schema t
.demo nodes" \
  --nodes 3 --global --dataset flights --format csv
check "memory: exit status 0 ($(cat "$tmp/memory.rc"))" "[ \"\$(cat $tmp/memory.rc)\" = 0 ]"
check "memory: the join answers" "grep -q '^europe-west,4$' $tmp/memory.out && grep -q '^us-east,3$' $tmp/memory.out"
check "memory: the new table answers" "grep -qx 'two' $tmp/memory.out"
check "memory: .schema shows the catalog's SQL" "grep -q 'CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT);' $tmp/memory.out"
check "memory: .demo nodes lists 3 running nodes" "[ \"\$(grep -c ' up ' $tmp/memory.out)\" = 3 ]"
check "memory: three regions" "grep -q 'us-east, us-west, europe-west' $tmp/memory.err"
check "memory: dataset loaded" "grep -q \"Loaded dataset 'flights'\" $tmp/memory.err"

# On a terminal: Ctrl-C cancels a statement and spares the nodes; .demo
# kill/restart; .quit leaves nothing (demo_pty.py checks all of it).
mkdir -p "$tmp/pty.tmp"
MERIDIAN_START_FLAGS="$base --testing-sql-memory" MERIDIAN_HISTORY="$tmp/history" \
  python3 "$(dirname "$0")/demo_pty.py" "$bin" "$tmp/pty.tmp" >"$tmp/pty.err" 2>&1
pty_rc=$?
check "pty: interactive demo ($(tail -1 "$tmp/pty.err"))" "[ $pty_rc = 0 ]"

# SIGTERM to the demo while its shell waits for input: it still stops every
# node and removes its directory. (fd 9 holds the FIFO open, so the shell
# reads on without end of input until the signal.)
mkdir -p "$tmp/term.tmp"; mkfifo "$tmp/fifo"; exec 9<>"$tmp/fifo"
MERIDIAN_START_FLAGS="$base --testing-sql-memory" TMPDIR="$tmp/term.tmp" "$bin" demo --nodes 1 <&9 \
  >"$tmp/term.out" 2>"$tmp/term.err" &
demo_pid=$!
for _ in $(seq 1 600); do grep -q '^  node 1' "$tmp/term.err" && break; sleep 0.1; done
kill -TERM "$demo_pid"
wait "$demo_pid"; term_rc=$?
exec 9>&-
term_node=$(awk '$1=="node" {print $4}' "$tmp/term.err")
check "SIGTERM: the demo exits 143 ($term_rc)" "[ $term_rc = 143 ]"
check "SIGTERM: node $term_node is gone" "[ -n '$term_node' ] && ! running '$term_node'"
check "SIGTERM: the demo directory is gone" "[ -z \"\$(ls -A '$tmp/term.tmp')\" ]"

# Bad arguments leave nothing either.
mkdir -p "$tmp/bad.tmp"
TMPDIR="$tmp/bad.tmp" "$bin" demo --dataset nosuch </dev/null >/dev/null 2>"$tmp/bad.err"
check "unknown dataset: usage error" "[ $? = 2 ] && grep -q \"no dataset 'nosuch'\" $tmp/bad.err"
check "unknown dataset: nothing created" "[ -z \"\$(ls -A $tmp/bad.tmp)\" ]"

echo "demo_test: $passes passed, $fails failed"
if [ "$fails" != 0 ]; then
  for f in "$tmp"/*.err; do echo "== $f"; tail -c 3000 "$f"; done
  exit 1
fi
