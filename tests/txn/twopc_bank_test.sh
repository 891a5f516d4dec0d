#!/usr/bin/env bash
# Bank transfers across four ranges on three real nodes with leaseholders
# killed (kill -9) in the middle of two-phase commits, plus commit-wait.
#  - commit-wait: with a 20 ms uncertainty bound, a two-range UPDATE takes
#    at least 2*eps end to end (a lower bound only), and a read started after
#    it returned sees it through every node;
#  - three writers move money between random accounts of 16 (four ranges)
#    in SQL transactions while a reader sums the balances with snapshot
#    reads; the leaseholders of ranges are killed and restarted in turn;
#  - every sum the reader saw equals the starting total, so does the final
#    one through every gateway; a write touching every row commits after the
#    cluster healed (no lock left behind); every range's replicas agree and
#    hold no undecided intent.
# Every process the test starts is stopped by PID.
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-bank-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  bash "$lc" stop "$dir" >/dev/null 2>&1; rm -rf "$dir"
}
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3"; exit 0; }
. "$(dirname "$lc")/lib.sh"
. "$(dirname "$0")/twopc_lib.sh"
export MERIDIAN_START_FLAGS="--insecure --clock-source static --static-uncertainty 20ms"
export MERIDIAN_TESTING_TXN_QUERY_MS=300
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
hosts="$(rpc_of 1),$(rpc_of 2),$(rpc_of 3)"
sql_at() { timeout 90 "$bin" sql --host "$1" --format csv -e "$2" 2>&1; }
sql() { sql_at "$hosts" "$1"; }
N=16; TOTAL=$((N * 100))

check "create the table" "sql 'CREATE TABLE acct (id INTEGER PRIMARY KEY, bal INTEGER)' >/dev/null"
check "insert $N accounts" "sql \"WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM c WHERE i < $N)
  INSERT INTO acct SELECT i, 100 FROM c\" >/dev/null"
check "split into four ranges" "split_rows $N 5 9 13"

# Commit-wait: s >= TT.now().latest at the coordinator, the reply waits for
# TT.now().earliest > s: at least 2*eps = 40 ms.
sql "UPDATE acct SET bal = bal WHERE id IN (1, $N)" >/dev/null # warm the leases
t0=$(date +%s%N)
out=$(sql "UPDATE acct SET bal = bal + 7 WHERE id IN (1, $N)"); rc=$?
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
check "a two-range commit succeeds ($out)" "[ $rc = 0 ]"
check "a two-range commit takes at least 2*eps = 40 ms end to end ($ms ms)" "[ $ms -ge 40 ]"
for i in 1 2 3; do
  got=$(sql_at "$(rpc_of "$i")" "SELECT bal FROM acct WHERE id IN (1, $N) ORDER BY id" | tr '\n' ' ')
  check "a read after the commit sees it through node $i ($got)" "[ '$got' = 'bal 107 107 ' ]"
done
sql "UPDATE acct SET bal = bal - 7 WHERE id IN (1, $N)" >/dev/null

# Writers and a snapshot reader.
writer() {
  local w=$1 a b
  while [ ! -e "$dir/stop" ]; do
    a=$(( RANDOM % N + 1 )); b=$(( RANDOM % N + 1 ))
    [ "$a" = "$b" ] && continue
    if timeout 60 "$bin" sql --host "$hosts" -e "BEGIN; UPDATE acct SET bal = bal - 1 WHERE id = $a;
        UPDATE acct SET bal = bal + 1 WHERE id = $b; COMMIT" >/dev/null 2>&1; then
      echo ok >>"$dir/commits.$w"
    else
      echo err >>"$dir/errors.$w"
    fi
  done
}
reader() {
  while [ ! -e "$dir/stop" ]; do
    timeout 60 "$bin" sql --host "$hosts" --format csv -e "SELECT sum(bal) FROM acct" 2>/dev/null |
      tail -1 >>"$dir/sums"
  done
}
for w in 1 2 3; do writer "$w" & pids+=($!); done
reader & pids+=($!)
commits() { cat "$dir"/commits.* 2>/dev/null | wc -l; }
more_commits() { [ "$(commits)" -ge $(( $1 + 5 )) ]; }
check "transfers commit" "wait_for 120 more_commits 0"

# Kill the leaseholder of each range in turn, mid-traffic.
for r in 2 3 4 1 2; do
  lh=""
  for i in 1 2 3; do
    [ "$(metric "$(http_of "$i")" "meridian_range_leaseholder{range=\"$r\"}")" = 1 ] && lh=$i
  done
  [ -z "$lh" ] && lh=$(( r % 3 + 1 ))
  c=$(commits)
  bash "$lc" kill "$dir" "$lh" >/dev/null 2>&1
  echo "killed node $lh (leaseholder of range $r) after $c commits"
  check "transfers go on with node $lh down" "wait_for 120 more_commits $c"
  bash "$lc" restart "$dir" "$lh" >/dev/null 2>&1
  c=$(commits)
  check "transfers go on after node $lh restarted" "wait_for 120 more_commits $c"
done
touch "$dir/stop"
for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
pids=()

echo "commits: $(commits), failed attempts: $(cat "$dir"/errors.* 2>/dev/null | wc -l), snapshot sums: $(wc -l <"$dir/sums")"
# A read that failed (a node went away under it) printed no number.
bad=$(grep -E '^[0-9]+$' "$dir/sums" | grep -cvx "$TOTAL")
grep -E '^[0-9]+$' "$dir/sums" | grep -vx "$TOTAL" | head -3
grep -Ev '^[0-9]+$' "$dir/sums" | sort | uniq -c | head -3
check "every snapshot read during the run saw the total $TOTAL ($bad did not)" "[ '$bad' = 0 ]"
check "the reader got many sums" "[ \$(grep -cx $TOTAL '$dir/sums') -ge 5 ]"
for i in 1 2 3; do
  got=$(sql_at "$(rpc_of "$i")" "SELECT sum(bal) FROM acct" | tail -1)
  check "the final total through node $i is $TOTAL ($got)" "[ '$got' = $TOTAL ]"
done
check "a write to every row commits after the cluster healed (no stuck lock)" \
  "sql 'UPDATE acct SET bal = bal + 1' >/dev/null"
check "... total now $((TOTAL + N))" "[ \"\$(sql 'SELECT sum(bal) FROM acct' | tail -1)\" = $((TOTAL + N)) ]"
check "every range's replicas agree and hold no undecided intent" "same_replicas_or_say 60"

echo "twopc_bank_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
