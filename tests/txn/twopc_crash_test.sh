#!/usr/bin/env bash
# Two-phase commit across ranges with crashes in the middle (server/txn_2pc.c):
# three real nodes, a table split into four ranges, a multi-row UPDATE that
# touches every range. A node is killed (SIGKILL, from a crash point armed
# by a file: MERIDIAN_TESTING_2PC_CRASH) after every vote came in but before
# the coordinator logged its decision (presumed abort path), after the
# coordinator logged the commit but before anyone heard of it (participants
# ask: status query path), and after a participant logged its prepare but
# before it voted (a new leader rebuilds it from the stored intent). After
# each: the node restarts, and every row moved or none did; a client told
# "committed" sees the change; every range's three replicas end with the
# same versions and no undecided intent. The SQL catalog (every SQL
# transaction's first key: its anchor, coordinator and record) is split off
# range 1 first, so the coordinator killed is another range's leaseholder
# and its records are range-local there (txn/txnrec.h); a single-range
# write anchored there commits too. Processes are stopped by PID.
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-2pc-XXXXXX)
cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  # MERIDIAN_TEST_KEEP=1 keeps the stores and logs, as tests/lib/cluster.sh does.
  [ -n "${MERIDIAN_TEST_KEEP:-}" ] && { echo "kept $dir"; return; }
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3"; exit 0; }
. "$(dirname "$lc")/lib.sh"
. "$(dirname "$0")/twopc_lib.sh"
export MERIDIAN_TESTING_2PC_CRASH=$dir/crash-
export MERIDIAN_TESTING_TXN_QUERY_MS=300
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
hosts="$(rpc_of 1),$(rpc_of 2),$(rpc_of 3)"
sql_at() { timeout 90 "$bin" sql --host "$1" --format csv -e "$2" 2>&1; }
sql() { sql_at "$hosts" "$1"; }

check "create the table" "sql 'CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER)' >/dev/null"
check "insert 8 rows" "sql \"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 8)
  INSERT INTO acct SELECT i, 100 FROM c\" >/dev/null"
check "split into four ranges" "split_rows 8 3 5 7"
# 0x01: range 1 keeps the system keys, the catalog and rows 1-2 go right.
out=$("$bin" debug split --key 0x01 --insecure --host "$hosts" 2>&1); echo "$out"
cr=$(echo "$out" | awk '$1 == "right:" {print $3}')
check "split the catalog off range 1 (into range ${cr:-?})" "[ -n '$cr' ] && [ '$cr' != 1 ]"
check "a single-range write anchored outside range 1 commits" \
  "sql 'UPDATE acct SET bal = bal WHERE id <= 2' >/dev/null"
coord_lh() { # sets lead: the catalog range's leaseholder (the coordinator)
  local i
  for i in 1 2 3; do
    [ "$(metric "$(http_of "$i")" "meridian_range_leaseholder{range=\"$cr\"}")" = 1 ] && lead=$i && return 0
  done
  return 1
}

# The value every row has, once they agree (all or nothing), read through
# every node as the gateway.
agreed() {
  local i out
  for i in 1 2 3; do
    out=$(sql_at "$(rpc_of "$i")" "SELECT count(DISTINCT bal), min(bal) FROM acct" | tail -1)
    case $out in 1,*) echo "${out#1,}" ;; *) echo "node $i: $out" ;; esac
  done | sort -u
}
dead_node() { # sets dead: the first node status shows down
  dead=$(bash "$lc" status "$dir" | awk '$3 == "down" {print $1}' | head -1)
  [ -n "$dead" ]
}
all_up() { [ "$(bash "$lc" status "$dir" | grep -c ' up ')" = 3 ]; }
expect=100
for point in coord-prepared coord-committed part-prepared; do
  touch "$dir/crash-$point"
  # The gateway is a node that does not hold the catalog range's lease (the
  # coordinator's); polled, as the lease may be moving.
  lead=1; wait_for 30 coord_lh; gw=$(( lead % 3 + 1 ))
  out=$(sql_at "$(rpc_of "$gw"),$hosts" "UPDATE acct SET bal = bal + 1"); rc=$?
  check "$point: the crash point fired" "[ ! -e '$dir/crash-$point' ]"
  # The crash point killed a node: poll until status shows it (a hang guard).
  dead=""
  wait_for 30 dead_node
  [ -n "$dead" ] && bash "$lc" restart "$dir" "$dead" >/dev/null 2>&1
  wait_for 60 all_up
  got=""
  for _ in $(seq 1 60); do got=$(agreed); [ "$(echo "$got" | wc -l)" = 1 ] && case $got in [0-9]*) break ;; esac; sleep 1; done
  check "$point: every row moved or none did, the same through every gateway ($got)" \
    "[ '$got' = $expect ] || [ '$got' = $((expect + 1)) ]"
  [ "$rc" = 0 ] && check "$point: the client was told committed and sees it" "[ '$got' = $((expect + 1)) ]"
  [ "$point" = coord-committed ] && check "$point: a logged commit survives the crash" "[ '$got' = $((expect + 1)) ]"
  echo "$point: client rc=$rc ($out), rows now $got"
  case $got in [0-9]*) expect=$got ;; esac
done
check "a later multi-range write commits (no lock left behind)" "sql 'UPDATE acct SET bal = bal + 1' >/dev/null"
expect=$((expect + 1))
check "... and is seen ($expect)" "[ \"\$(agreed)\" = $expect ]"

check "every range's replicas agree and hold no undecided intent" "same_replicas_or_say 60"

echo "twopc_crash_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
