#!/usr/bin/env bash
# SQL scans across range boundaries on three real nodes: a table of 200 rows
# is split into four ranges at row keys (found with `debug kv scan --hex`);
# counts, sums, ordered, reverse-ordered and bounded SELECTs must then return
# what sqlite3 returns for the same statements on the same rows (sqlite3 is
# the oracle, DESIGN.md §9). A read-write transaction whose locks span
# ranges commits through 2PC (server/txn_2pc.c).
# Every process is stopped by PID (local-cluster.sh).
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-rsql-XXXXXX)
cleanup() { bash "$lc" stop "$dir" >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
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
  check "split at row key $i ($k)" "'$bin' debug split --key $k --insecure --host '$hosts' >/dev/null"
done
n=$("$bin" debug ranges --host "$(rpc_of 1)" --insecure --format json |
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

echo "ranges_sql_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
