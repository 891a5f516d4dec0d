#!/usr/bin/env bash
# A 2PC whose coordinator's node holds no replica of a participant range
# (server/txn_2pc.c tx2_call_range): five real nodes, a table split into a
# range of its own that the placement driver brings down to three replicas,
# and range 1 (the SQL catalog: every SQL transaction's first key, so its
# coordinator; five replicas) led by a node outside the table's range.
# The coordinator has no replica and no hint for the table's range: it must
# find the leaseholder by asking the nodes. Before, it never sent the
# prepare and every such transaction aborted when its votes timed out (a
# 5-node Jepsen run: no multi-range commit succeeded once range 1's lease
# moved so); and the writes' ranges come from the directory (before, a
# write there failed "no replica on this node knows the range of a written
# key"). A gateway whose node holds no replica of the table's range asks the
# other nodes (before, its reads failed "no replica of that range on this
# node"). Reads, a transaction reading both ranges, autocommit UPDATEs and
# read-write transactions, through each node as the gateway.
# Processes are stopped by PID.
set -u
bin=$1; lc=$2
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3"; exit 0; }
# shellcheck source=tests/lib/cluster.sh
. "$(dirname "$0")/../lib/cluster.sh"
tc_init coordelse
bash "$lc" start "$dir" 5 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
hosts=$(up)
sql_at() { timeout 60 "$bin" sql --insecure --host "$1" --format csv -e "$2" 2>&1; }
sql() { sql_at "$hosts" "$1"; }
# shellcheck source=tests/txn/twopc_lib.sh
. "$(dirname "$0")/twopc_lib.sh"

check "create and fill the table" "sql 'CREATE TABLE t (k INTEGER PRIMARY KEY, v INTEGER)' >/dev/null &&
  sql \"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 10)
        INSERT INTO t SELECT i, 0 FROM c\" >/dev/null"
check "split the table's rows off range 1" "split_rows 10 1"

ranges_json() { "$bin" debug ranges --insecure --host "$(first_up)" --format json 2>/dev/null; }
# The table's range, once it has three voters, and a voter of range 1
# outside it (node ids, as `debug ranges` names them).
placed() {
  ranges_json >"$dir/ranges.json" || return 1
  read -r tr out < <(python3 - "$dir/ranges.json" <<'PY'
import json, sys
rs = json.load(open(sys.argv[1]))
one = [r for r in rs if r["range"] == 1][0]
rest = [r for r in rs if r["range"] != 1]
if len(rest) != 1: sys.exit(1)
reps = rest[0]["replicas"].split(",")
if len(reps) != 3 or any(x.endswith("L") for x in reps): sys.exit(1)
free = [x for x in one["replicas"].split(",") if x not in reps and not x.endswith("L")]
if not free: sys.exit(1)
print(rest[0]["range"], free[0])
PY
  ) && [ -n "${out:-}" ]
}
tr='' out=''
check "the table's range settles on three nodes" "wait_for 120 placed"
echo "table range ${tr:-?}, outside node ${out:-?}"
leaseholder_of_1() {
  ranges_json | python3 -c 'import json,sys; print([r for r in json.load(sys.stdin) if r["range"] == 1][0]["leaseholder"])' 2>/dev/null
}
lease_at() { [ "$(leaseholder_of_1)" = "$out" ]; }
moved() {
  "$bin" debug transfer-lease --range 1 --to "$out" --insecure --host "$hosts" >/dev/null 2>&1
  wait_for 5 lease_at
}
check "range 1's lease moves to node ${out:-?}" "[ -n '$out' ] && wait_for 60 moved"

mis_all() { # 2PC calls answered by a non-leaseholder, over all five nodes
  local i t=0 v
  for i in 1 2 3 4 5; do v=$(metric "$i" meridian_txn_2pc_misdirected_total); t=$((t + ${v:-0})); done
  echo "$t"
}
mis0=$(mis_all)
for i in 1 2 3 4 5; do
  gw=$(awk -v i="$i" '$1==i {print $3}' "$dir/nodes")
  o=$(sql_at "$gw" "SELECT v FROM t WHERE k = 5")
  check "gateway $i: a read of the table's range ($o)" "[ \"\$(echo \"\$o\" | tail -1)\" = 0 ]"
  o=$(sql_at "$gw" "BEGIN; SELECT v FROM t WHERE k = 5; SELECT count(*) FROM t; COMMIT;")
  check "gateway $i: a transaction reading both ranges commits ($o)" \
    "! echo \"\$o\" | grep -q ERROR"
done
for i in 1 2 3 4 5; do
  gw=$(awk -v i="$i" '$1==i {print $3}' "$dir/nodes")
  o=$(sql_at "$gw" "UPDATE t SET v = v + 1 WHERE k = 5")
  check "gateway $i: an autocommit UPDATE commits ($o)" "! echo \"\$o\" | grep -q ERROR"
  o=$(sql_at "$gw" "BEGIN; INSERT INTO t VALUES (10$i, $i); UPDATE t SET v = v + 1 WHERE k = 6; COMMIT;")
  check "gateway $i: a read-write transaction commits ($o)" "! echo \"\$o\" | grep -q ERROR"
done
check "every commit took effect" "[ \"\$(sql 'SELECT v FROM t WHERE k = 5' | tail -1)\" = 5 ] &&
  [ \"\$(sql 'SELECT v FROM t WHERE k = 6' | tail -1)\" = 5 ] &&
  [ \"\$(sql 'SELECT count(*) FROM t WHERE k > 100' | tail -1)\" = 5 ]"
# The coordinator learns where the table's range is led from its first
# answers and asks there after (before, each prepare and decision went round
# the peers: RANGE_NOT_FOUND and NOT_LEADER answers, a round trip each,
# across regions in a multi-region cluster; 7 in this test).
mis1=$(mis_all)
check "the coordinator's prepares and decisions found the leaseholder (misdirected: $((mis1 - mis0)))" \
  "[ $((mis1 - mis0)) -le 3 ]"
check "range 1's lease stayed at node ${out:-?} (so the case was tested)" "lease_at"

echo "coord_elsewhere_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
