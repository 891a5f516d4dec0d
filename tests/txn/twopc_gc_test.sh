#!/usr/bin/env bash
# Transaction record GC on three real nodes (server/txn_2pc_gc.c):
#  - a burst of two-range transactions (commit deadline 2 s) leaves records
#    in the coordinator range; once the deadlines passed and the participants
#    acknowledged, every replica of it holds none (and the gauge says 0);
#  - a commit retried after its record was collected gets the same ts;
#  - an unknown commit past its deadline is refused, never aborted or run;
#  - after range 1's leaseholder is killed, the new one (which never saw
#    those transactions) delivers their outcomes again and collects them;
#  - records are range-local (txn/txnrec.h): after a split puts a
#    transaction's anchor in a new range, that range's leaseholder answers a
#    retried commit with the same ts from the record it took; after a merge,
#    the left range does (for a commit the right range coordinated).
# Every process the test starts is stopped by PID.
set -u
bin=$1; helper=$2; lc=$3
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-txngc-XXXXXX)
cleanup() { bash "$lc" stop "$dir" >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
command -v sqlite3 >/dev/null || { echo "SKIP: no sqlite3"; exit 0; }
. "$(dirname "$lc")/lib.sh"
bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
hosts=$(awk '{printf "%s%s", sep, $3; sep=","}' "$dir/nodes")
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }

# Live records (newest version not a tombstone) in range 1 of node $1: the
# burst's anchors are there, so are their range-local records (txnrec.h).
records() {
  sqlite3 "file:$dir/n$1/ranges/r1.db?mode=ro" \
    "SELECT count(*) FROM versions v WHERE key >= x'0000' AND key < x'0001'
       AND val IS NOT NULL AND ts = (SELECT max(ts) FROM versions WHERE key = v.key)" 2>/dev/null
}
sum_metric() {
  local i t=0 v
  for i in 1 2 3; do v=$(metric "$(http_of "$i")" "$1"); t=$((t + ${v:-0})); done
  echo "$t"
}
no_records_at() { [ "$(records "$1")" = 0 ]; }
no_records() {
  for i in 1 2 3; do [ "$(records "$i")" = 0 ] || return 1; done
  [ "$(sum_metric meridian_txn_records_collected_total)" -ge 21 ] &&
    [ "$(sum_metric 'meridian_txn_records ')" = 0 ]
}

out=$(timeout 300 "$helper" burst "$hosts" 20 2>&1); rc=$?; echo "$out"
check "a burst of 20 two-range transactions commits" "[ $rc = 0 ]"
out=$(timeout 300 "$helper" rawcommit "$hosts" "$dir/raw" 2>&1); rc=$?; echo "$out"
check "a retried two-range commit gets the same answer" "[ $rc = 0 ]"
check "the coordinator range holds their records ($(records 1))" "[ \"\$(records 1)\" -ge 1 ]"
check "every record is collected once deadlines passed and participants acknowledged" \
  "wait_for 120 no_records"
echo "records on n1..n3: $(records 1) $(records 2) $(records 3); collected: $(sum_metric meridian_txn_records_collected_total)"
out=$(timeout 120 "$helper" recommit "$hosts" "$dir/raw" 2>&1); rc=$?; echo "$out"
check "a commit retried after its record was collected gets the same ts" "[ $rc = 0 ]"
out=$(timeout 120 "$helper" late "$hosts" 2>&1); rc=$?; echo "$out"
check "a late unknown commit is refused, a far deadline is bad input" "[ $rc = 0 ]"

# A new leaseholder knows nothing of the records of the old one: it rebuilds
# their coordinator machines, tells the participants again and collects them.
lh_of_r1() {
  local i
  for i in 1 2 3; do
    [ "$(metric "$(http_of "$i")" 'meridian_range_leaseholder{range="1"}')" = 1 ] && echo "$i" && return 0
  done
  return 1
}
out=$(timeout 300 "$helper" burst "$hosts" 10 8000 2>&1); rc=$?; echo "$out"
check "a second burst (deadline 8 s) commits" "[ $rc = 0 ]"
lh=$(lh_of_r1); echo "range 1 leaseholder: node ${lh:-?}"
check "the records are there before the kill ($(records 1))" "[ \"\$(records 1)\" -ge 1 ]"
check "range 1's leaseholder is known" "[ -n '$lh' ]"
[ -n "$lh" ] && bash "$lc" kill "$dir" "$lh" >/dev/null 2>&1
survivors_clean() {
  local i
  for i in 1 2 3; do
    [ "$i" = "$lh" ] && continue
    [ "$(records "$i")" = 0 ] || return 1
  done
}
check "the new leaseholder collects the old one's records" "wait_for 180 survivors_clean"
[ -n "$lh" ] && bash "$lc" restart "$dir" "$lh" >/dev/null 2>&1
check "the restarted node's replica drops them too" "wait_for 180 no_records_at $lh"
surv=0
for i in 1 2 3; do
  [ "$i" = "$lh" ] && continue
  v=$(metric "$(http_of "$i")" meridian_txn_records_collected_total); surv=$((surv + ${v:-0}))
done
check "the survivors' GC collected the 10 records ($surv)" "[ $surv -ge 10 ]"

# Range-local records follow their anchor through a split and a merge. The
# commits' deadlines are 60 s ahead: their records are kept meanwhile.
out=$(timeout 120 "$helper" keep "$hosts" "$dir/k1" gc/a/k1 2>&1); rc=$?; echo "$out"
check "a commit anchored in range 1" "[ $rc = 0 ]"
out=$("$bin" debug split --host "$hosts" --insecure --key gc/a/ 2>&1); rc=$?; echo "$out"
check "split at gc/a/: the anchor moves to a new range" "[ $rc = 0 ]"
out=$(timeout 120 "$helper" again "$hosts" "$dir/k1" 2>&1); rc=$?; echo "$out"
check "after the split the new range answers the retried commit from its record" "[ $rc = 0 ]"
out=$(timeout 120 "$helper" keep "$hosts" "$dir/k2" gc/a/k2 2>&1); rc=$?; echo "$out"
check "a commit coordinated by the new range" "[ $rc = 0 ]"
merged() { "$bin" debug merge --host "$hosts" --insecure --key gc/ >"$dir/merge.out" 2>&1; }
check "merge the new range back into range 1" "wait_for 60 merged"
cat "$dir/merge.out"
out=$(timeout 120 "$helper" again "$hosts" "$dir/k2" 2>&1); rc=$?; echo "$out"
check "after the merge range 1 answers the retried commit from the record it took" "[ $rc = 0 ]"
out=$(timeout 120 "$helper" again "$hosts" "$dir/k1" 2>&1); rc=$?; echo "$out"
check "and the first one's too" "[ $rc = 0 ]"

echo "twopc_gc_test: $passes passed, $fails failed"
[ "$fails" = 0 ]
