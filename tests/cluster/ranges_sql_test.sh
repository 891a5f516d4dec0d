#!/usr/bin/env bash
# SQL scans across range boundaries on three real nodes: a table of 200 rows
# is split into four ranges at row keys (found with `debug kv scan --hex`);
# counts, sums, ordered, reverse-ordered and bounded SELECTs must then return
# what sqlite3 returns for the same statements on the same rows (sqlite3 is
# the oracle, DESIGN.md §9). A read-write transaction whose locks span
# ranges commits through 2PC (server/txn_2pc.c). The SQL catalog is then
# split into a range of its own (at 0x01, below it, and 0x3390, table 100's
# first key): SQL writes and DDL still work, their transaction records
# living with the catalog key they start at (range-local, txn/txnrec.h).
# Every process is stopped by PID (local-cluster.sh).
set -u
bin=$1; lc=$2
# shellcheck source=tests/lib/cluster.sh
. "$(dirname "$0")/../lib/cluster.sh"
tc_init rsql
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3 (the oracle)"; exit 0; }
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
hosts="$(rpc_of 1),$(rpc_of 2),$(rpc_of 3)"
sql() { "$bin" sql --host "$hosts" --format csv -e "$1"; }
oracle() { sqlite3 -csv -header "$dir/oracle.db" "$1"; }

schema="CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER)"
load="WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < 200)
      INSERT INTO t SELECT i * 3, 'v' || i, (i * 37) % 101 FROM c"
check "create the table" "sql '$schema' >/dev/null"
check "insert 200 rows" "sql \"$load\" >/dev/null"
oracle "$schema"; oracle "$load"

# Split at the 50th, 100th and 150th row key.
"$bin" debug kv scan --hex --insecure --host "$hosts" | grep -av '^(' | tail -200 | cut -d= -f1 >"$dir/keys"
check "the scan lists the 200 row keys" "[ \$(wc -l <'$dir/keys') = 200 ]"
for i in 50 100 150; do
  k=$(sed -n "${i}p" "$dir/keys")
  check "split at row key $i ($k)" "'$bin' debug split --key $k --insecure --host '$hosts' >'$dir/split_$i'"
done
# (--host takes a list: the first address that answers; nothing listens on port 9)
n=$("$bin" debug ranges --host "127.0.0.1:9,$hosts" --insecure --format json |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')
check "four ranges now ($n)" "[ '$n' = 4 ]"

for q in "SELECT count(*), sum(id), sum(n) FROM t" \
         "SELECT id, v, n FROM t ORDER BY id" \
         "SELECT id FROM t ORDER BY id DESC" \
         "SELECT count(*), min(id), max(id) FROM t WHERE id BETWEEN 100 AND 500" \
         "SELECT n, count(*) FROM t GROUP BY n ORDER BY n" \
         "SELECT id FROM t WHERE id > 290 ORDER BY id DESC LIMIT 30"; do
  sql "$q" >"$dir/got" 2>&1
  oracle "$q" >"$dir/want"
  check "same answer as sqlite3 across four ranges: $q" "cmp -s '$dir/got' '$dir/want'"
done

# A read-write transaction reading and writing across ranges commits (2PC).
"$bin" sql --host "$hosts" --format csv -e "BEGIN; SELECT count(*) FROM t; COMMIT" >"$dir/rw" 2>&1
check "a read-write transaction over several ranges reads them all" "grep -qx 200 '$dir/rw'"
upd="UPDATE t SET n = n + 1 WHERE id % 30 = 0"
check "an UPDATE over four ranges commits" "sql '$upd' >/dev/null"
oracle "$upd"
for q in "SELECT count(*), sum(n) FROM t" "SELECT id, n FROM t ORDER BY id"; do
  sql "$q" >"$dir/got" 2>&1; oracle "$q" >"$dir/want"
  check "after the multi-range UPDATE, same as sqlite3: $q" "cmp -s '$dir/got' '$dir/want'"
done

# A statement that fails (a constraint) rolls back at once, its read locks
# too, whichever node is the gateway: before, a rollback sent to a node that
# is not the range's leaseholder was answered "done" and dropped, the locks
# (the schema key's in range 1 among them) stayed until the idle timeout and
# the next DDL waited it out. So no transaction may end by that timeout.
idle_aborts() { sum_metric 'meridian_txn_aborts_total{reason="idle"}'; }
# On failure, what each node logged of the transactions it aborted as idle.
idle_story() { local l id; for l in "$dir"/n*/logs/meridian.log; do
  grep -h "idle transaction aborted" "$l" 2>/dev/null | while read -r line; do
    echo "  ${l#"$dir"/}: $line"
    id=$(sed -n 's/.*txn=\([0-9]*\).*/\1/p' <<<"$line")
    [ -n "$id" ] && grep -h "txn=$id\b" "$dir"/n*/logs/meridian.log | head -20 | sed 's/^/    /'
  done; done; }
# Row 360 (the 120th) lies in a range of its own; range 1 (the schema key)
# gets its lease moved off that range's leaseholder, so a rollback has two
# leaseholders to reach.
lease_of() { "$bin" debug ranges --host "$(rpc_of 1)" --insecure --format json | python3 -c '
import json, sys
print([r for r in json.load(sys.stdin) if r["range"] == int(sys.argv[1])][0]["leaseholder"])' "$1"; }
# (the split at the 100th row key made the range of rows 100..149)
row_range=$(awk '$1 == "right:" {print $3}' "$dir/split_100")
check "row 360 is not in range 1 (range ${row_range:-?})" "[ -n '$row_range' ] && [ '$row_range' != 1 ]"
sql "SELECT count(*) FROM t WHERE id = 360" >/dev/null # (wakes the range's lease)
check "range $row_range has a leaseholder" "wait_for 30 '[ \"\$(lease_of $row_range 2>/dev/null || echo 0)\" -gt 0 ] 2>/dev/null'"
to=$(( $(lease_of "$row_range") % 3 + 1 ))
check "range 1's lease moves to node $to" \
  "'$bin' debug transfer-lease --range 1 --to $to --host '$hosts' --insecure >/dev/null"
before=$(idle_aborts)
for i in 1 2 3; do
  "$bin" sql --host "$(rpc_of "$i")" -e "INSERT INTO t VALUES(360, 'dup', 0)" >/dev/null 2>&1
  check "a duplicate key is refused through node $i" "[ $? != 0 ]"
  check "DDL right after it, through node $i" "sql 'CREATE TABLE after_fail_$i(a INTEGER PRIMARY KEY)' >/dev/null"
done
check "no transaction was left to the idle timeout ($before -> $(idle_aborts))" "[ \"\$(idle_aborts)\" = '$before' ]" ||
  idle_story

# The gateway routes each request by the range it names (server/
# txn_routes.h): range 1 (row 3) and the row range are led by different
# nodes now, and a transaction alternating 20 point reads between them is
# sent on (NOT_LEADER) at most a few times while the cache learns, where it
# was once at nearly every switch.
q="BEGIN"; for _ in $(seq 1 10); do q="$q; SELECT n FROM t WHERE id = 3; SELECT n FROM t WHERE id = 360"; done
redirects() { sum_metric meridian_txn_not_leader_total; }
nl_before=$(redirects)
check "20 alternating reads in one transaction" "sql '$q; COMMIT' >/dev/null"
nl_after=$(redirects)
check "... sent on at most 5 times ($nl_before -> $nl_after)" "[ $((nl_after - nl_before)) -le 5 ]"

# The catalog (every SQL transaction's first key: its coordinator) in a
# range of its own, neither range 1 nor a user table's.
for k in 0x01 0x3390; do
  check "split at the catalog boundary $k" "'$bin' debug split --key $k --insecure --host '$hosts' >'$dir/split_$k'"
done
cat_range=$(awk '$1 == "right:" {print $3}' "$dir/split_0x01")
check "the catalog left range 1 (range ${cat_range:-?})" "[ -n '$cat_range' ] && [ '$cat_range' != 1 ]"
# Every node still logs at info after its gateway's transaction client opened
# connections to the other leaseholders (the routed reads above): a tool's
# connection once quieted the whole process, and a node's log then stopped.
for i in 1 2 3; do
  check "node $i logged the split (its log is not quieted)" \
    "wait_for 30 'grep -q \"range split.*new_range=$cat_range\\b\" \"$dir/n$i/logs/meridian.log\"'"
done
for s in "INSERT INTO t VALUES (601, 'new', 7)" "UPDATE t SET n = n + 2 WHERE id % 60 = 0" \
         "DELETE FROM t WHERE id = 3"; do
  check "after the catalog split: $s" "sql \"$s\" >/dev/null"
  oracle "$s"
done
check "DDL after the catalog split" "sql 'CREATE TABLE after_split(a INTEGER PRIMARY KEY)' >/dev/null"
check "... and a write to the new table" "sql 'INSERT INTO after_split VALUES (1)' >/dev/null"
q="SELECT count(*), sum(id), sum(n) FROM t"
sql "$q" >"$dir/got" 2>&1; oracle "$q" >"$dir/want"
check "after the catalog split, same as sqlite3: $q" "cmp -s '$dir/got' '$dir/want'"

echo "ranges_sql_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
