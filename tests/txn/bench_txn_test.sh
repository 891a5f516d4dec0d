#!/usr/bin/env bash
# Smoke test of `meridian bench txn` on a real one-node cluster: both phases
# (1-range, 2-range over the split the bench makes) complete with commits,
# the output is well-formed (a line per phase with txn/s and p50/p99, the
# ratio line), a second run over the existing split works too, a third with
# the anchor (coordinator, transaction record) on the right of the split
# commits in both phases (its range-local record lives there, txn/txnrec.h;
# it used to hang in the 2-range phase), and bad flags get a usage error. No speed is asserted. Every process is stopped by PID.
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-benchtxn-XXXXXX)
cleanup() { bash "$lc" stop "$dir" >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
bash "$lc" start "$dir" 1 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
host=$(awk '$1==1 {print $3}' "$dir/nodes")

num='[0-9]+(\.[0-9]+)?'
dur='[0-9.]+(ns|us|µs|ms|s)'
for run in 1 2 3; do
  extra=; [ $run = 3 ] && extra=--anchor-right
  timeout 300 "$bin" bench txn --host "$host" --insecure --concurrency 2 --duration 1s $extra \
    >"$dir/out.$run" 2>&1; rc=$?
  cat "$dir/out.$run"
  check "run $run exits 0 ($rc)" "[ $rc = 0 ]"
  for ph in 1-range 2-range; do
    check "run $run: phase $ph reports commits, txn/s and p50/p99" \
      "grep -Eq '^$ph +$num""s +$num txn/s +ok=[1-9][0-9]* +aborted=[0-9]+ +err=[0-9]+ +txn p50=$dur +p99=$dur +commit p50=$dur +p99=$dur\$' '$dir/out.$run'"
  done
  check "run $run: ratio line" \
    "grep -Eq '^ratio 2-range/1-range: commit p50 $num p99 $num, txn p50 $num p99 $num\$' '$dir/out.$run'"
done
# The bench's keys straddle its split: two ranges now.
check "the split exists" "\"$bin\" debug ranges --insecure --host '$host' 2>/dev/null | grep -q benchtxn/m"

"$bin" bench txn --host "$host" --insecure --concurrency 0 >"$dir/bad" 2>&1; rc=$?
check "--concurrency 0 is a usage error ($rc)" "[ $rc = 2 ] && grep -q concurrency '$dir/bad'"
"$bin" bench txn --insecure >"$dir/bad" 2>&1; rc=$?
check "no --host is a usage error ($rc)" "[ $rc = 2 ]"

echo "bench_txn_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
