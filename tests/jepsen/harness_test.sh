#!/usr/bin/env bash
# The Jepsen harness end to end on a real 3-node cluster (ctest
# jepsen_run_W_all): a short run of workload W under every fault class must
# be valid, must really have injected each class and completed operations,
# and must leave no process behind; and a run whose history has a planted
# anomaly (--testing-bug: one acknowledged write missing from a final read)
# must fail with exit status 1, so a broken pipeline cannot pass for a clean
# cluster.
#   harness_test.sh RUN_SCRIPT WORKLOAD
# JEPSEN_DURATION (default 20) and JEPSEN_SEED (default 7) change the run.
set -u
run=$1; w=$2
dur=${JEPSEN_DURATION:-20}; seed=${JEPSEN_SEED:-7}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
field() { awk -v k="$2" '$1==k {print $2}' "$1"; }
fault() { tr ' ' '\n' <"$1/summary" | awk -F= -v k="$2" '$1==k {print $2}'; }
ops() { awk -v f="$2" -v t="$3" '$1=="ops" && $2==f {for (i=3;i<=NF;i++) {split($i,a,"="); if (a[1]==t) print a[2]}}' "$1/summary"; }
leftover() { # processes of the run's cluster still alive
  local c
  c=$(sed -n 's/^cluster: //p' "$1/out.txt")
  [ -n "$c" ] && pgrep -f -- "$c" >/dev/null
}

bash "$run" --workload "$w" --nemesis all --duration "$dur" --seed "$seed" --out "$dir/all" \
  >"$dir/all.txt" 2>&1
st=$?
cp "$dir/all.txt" "$dir/all/out.txt" 2>/dev/null
cat "$dir/all.txt"
check "$w under all faults: valid (status $st)" "[ $st = 0 ]"
check "the verdict line says valid" "grep -q '^verdict $w: valid' '$dir/all/summary'"
check "a node was killed and restarted" "[ \"\$(fault $dir/all kill)\" -ge 1 ]"
check "a node was paused" "[ \"\$(fault $dir/all pause)\" -ge 1 ]"
parts=$(($(fault "$dir/all" isolate) + $(fault "$dir/all" isolate-leader) + $(fault "$dir/all" one-way) + $(fault "$dir/all" halves)))
check "a partition was made ($parts)" "[ $parts -ge 1 ]"
check "every fault tool call worked" "[ \"\$(fault $dir/all tool_errors)\" = 0 ]"
main=write; [ "$w" = set ] && main=insert
check "operations were acknowledged" "[ \"\$(ops $dir/all $main ok)\" -ge 10 ]"
[ "$w" = set ] && check "the final read succeeded" "[ \"\$(ops $dir/all members ok)\" -ge 1 ]"
check "the history names the faults" "grep -q '^# [0-9]* nemesis start' '$dir/all/history'"
check "no process of the cluster is left" "! leftover $dir/all"
check "no node logs kept for a valid run" "[ ! -d '$dir/all/logs' ]"

bash "$run" --workload "$w" --nemesis none --duration 2 --seed "$seed" --testing-bug \
  --out "$dir/bug" >"$dir/bug.txt" 2>&1
st=$?
cp "$dir/bug.txt" "$dir/bug/out.txt" 2>/dev/null
check "a planted anomaly fails the run with status 1 (got $st)" "[ $st = 1 ]"
check "... and says INVALID with the history" "grep -q '^INVALID: .*history in' '$dir/bug.txt'"
check "... and keeps the nodes' logs" "ls '$dir/bug/logs/'*.log >/dev/null 2>&1"
check "no process of that cluster is left" "! leftover $dir/bug"
[ "$st" = 1 ] || cat "$dir/bug.txt"
echo "$fails failed"
[ "$fails" = 0 ]
