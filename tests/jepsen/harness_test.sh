#!/usr/bin/env bash
# The Jepsen harness end to end on a real 3-node cluster (ctest
# jepsen_run_W_N): a short run of workload W under nemesis N (default all:
# every process and network fault class) must be valid, must really have
# injected each class and completed operations, and must leave no process
# behind. clock-skew must have skewed a node; disk-full must have made log
# writes fail without crashing the node; split and leader-transfer must have
# split ranges and moved leases; merge (and split,merge) must have merged
# ranges. With `all`, a run whose history has
# a planted anomaly (--testing-bug: a wrong final read) must then fail with
# exit status 1, so a broken pipeline cannot pass for a clean cluster.
#   harness_test.sh RUN_SCRIPT WORKLOAD [NEMESIS]
# JEPSEN_DURATION (default 20) and JEPSEN_SEED (default 7) change the run;
# JEPSEN_SPLIT=N pre-splits the SQL workloads' table (--split N).
set -u
run=$1; w=$2; nem=${3:-all}
dur=${JEPSEN_DURATION:-20}; seed=${JEPSEN_SEED:-7}
presplit=(); [ -n "${JEPSEN_SPLIT:-}" ] && presplit=(--split "$JEPSEN_SPLIT")
dir=$(mktemp -d)
fails=0
# A failed test keeps its runs (histories, node logs, sanitizer reports).
trap 'if [ "$fails" = 0 ]; then rm -rf "$dir"; else echo "kept for inspection: $dir"; fi' EXIT
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
field() { awk -v k="$2" '$1==k {print $2}' "$1"; }
fault() { tr ' ' '\n' <"$1/summary" | awk -F= -v k="$2" '$1==k {print $2}'; }
ops() { awk -v f="$2" -v t="$3" '$1=="ops" && $2==f {for (i=3;i<=NF;i++) {split($i,a,"="); if (a[1]==t) print a[2]}}' "$1/summary"; }
leftover() { # processes of the run's cluster still alive
  local c
  c=$(sed -n 's/^cluster: //p' "$1/out.txt")
  [ -n "$c" ] && pgrep -f -- "$c" >/dev/null
}

bash "$run" --workload "$w" --nemesis "$nem" --duration "$dur" --seed "$seed" --out "$dir/all" \
  "${presplit[@]}" >"$dir/all.txt" 2>&1
st=$?
cp "$dir/all.txt" "$dir/all/out.txt" 2>/dev/null
cat "$dir/all.txt"
check "$w under $nem: valid (status $st)" "[ $st = 0 ]"
check "the verdict line says valid" "grep -q '^verdict $w: valid' '$dir/all/summary'"
case "$nem" in
all)
  check "a node was killed and restarted" "[ \"\$(fault $dir/all kill)\" -ge 1 ]"
  check "a node was paused" "[ \"\$(fault $dir/all pause)\" -ge 1 ]"
  parts=$(($(fault "$dir/all" isolate) + $(fault "$dir/all" isolate-leader) + $(fault "$dir/all" one-way) + $(fault "$dir/all" halves)))
  check "a partition was made ($parts)" "[ $parts -ge 1 ]"
  ;;
clock-skew)
  check "a node ran with a skewed clock" "[ \"\$(fault $dir/all clock-skew)\" -ge 1 ]"
  check "the history says by how much" "grep -q 'nemesis start clock-skew node .*--testing-clock-skew' '$dir/all/history'"
  ;;
clock-skew-big)
  check "a node ran with a clock off beyond its bound" "[ \"\$(fault $dir/all clock-skew-big)\" -ge 1 ]"
  check "... and refused service (clock refusals counted)" "[ \"\$(fault $dir/all clock_refusals)\" -ge 1 ]"
  ;;
disk-full)
  check "a node's disk was full" "[ \"\$(fault $dir/all disk-full)\" -ge 1 ]"
  check "its log writes failed" "[ \"\$(fault $dir/all disk_failures)\" -ge 1 ]"
  check "it did not crash" "[ \"\$(fault $dir/all disk_crashes)\" = 0 ]"
  ;;
split)
  check "ranges were split during the run" "[ \"\$(fault $dir/all splits)\" -ge 1 ]"
  check "the history names the split keys" "grep -q 'nemesis split at 0x' '$dir/all/history'"
  ;;
netns-partition)
  # Where the machine allows (root, ip, iptables, namespaces) the cluster
  # runs in namespaces and the cuts are iptables rules; elsewhere the run
  # must say why it skipped them and go on.
  if grep -q '^netns_partition skipped: ' "$dir/all/summary"; then
    check "netns-partition says why it was skipped" "grep -q '^netns_partition skipped: ..' '$dir/all/summary'"
    check "... in the history too" "grep -q 'nemesis netns-partition skipped: ' '$dir/all/history'"
  else
    check "the cluster ran in network namespaces" "grep -q '^network namespaces: ' '$dir/all.txt'"
    check "namespace cuts were made" "[ \"\$(fault $dir/all netns-partition)\" -ge 1 ]"
    check "the history names the cuts" "grep -q 'nemesis start netns-partition .*iptables rules' '$dir/all/history'"
    nsp=$(sed -n 's/^network namespaces: \(jp[0-9]*\)n1\.\..*/\1/p' "$dir/all.txt")
    check "no namespace is left" "[ -n '$nsp' ] && ! ip netns list | grep -q '^${nsp}n'"
  fi
  ;;
merge | split,merge)
  [ "$nem" = merge ] || check "ranges were split during the run" "[ \"\$(fault $dir/all splits)\" -ge 1 ]"
  [ -n "${JEPSEN_SPLIT:-}" ] && check "the table was pre-split" "grep -qx 'split $JEPSEN_SPLIT' '$dir/all/summary'"
  check "ranges were merged during the run" "[ \"\$(fault $dir/all merges)\" -ge 1 ]"
  check "the history names the merges" "grep -q 'nemesis merge at 0x[0-9a-f]*: range [0-9]* absorbed' '$dir/all/history'"
  ;;
leader-transfer)
  check "leases were moved during the run" "[ \"\$(fault $dir/all transfers)\" -ge 1 ]"
  check "the history names the moves" "grep -q 'nemesis leader-transfer: range [0-9]* lease' '$dir/all/history'"
  ;;
esac
check "every fault tool call worked" "[ \"\$(fault $dir/all tool_errors)\" = 0 ]"
case "$w" in set) main=insert ;; bank) main=transfer ;; list-append) main=txn ;; *) main=write ;; esac
check "operations were acknowledged" "[ \"\$(ops $dir/all $main ok)\" -ge 10 ]"
[ "$w" = set ] && check "the final read succeeded" "[ \"\$(ops $dir/all members ok)\" -ge 1 ]"
[ "$w" = bank ] && check "snapshot reads succeeded" "[ \"\$(ops $dir/all balances ok)\" -ge 2 ]"
grep -q '^netns_partition skipped: ' "$dir/all/summary" ||
  check "the history names the faults" "grep -q '^# [0-9]* nemesis start' '$dir/all/history'"
check "no process of the cluster is left" "! leftover $dir/all"
check "no node logs kept for a valid run" "[ ! -d '$dir/all/logs' ]"
if [ "$nem" != all ]; then
  echo "$fails failed"
  [ "$fails" = 0 ]
  exit
fi

# The SQL workloads also ask for a pre-split table here: without `meridian
# debug split` the run must say it stays single-range, and go on.
split=(); case "$w" in bank | list-append) split=(--split 2) ;; esac
bash "$run" --workload "$w" --nemesis none --duration 2 --seed "$seed" --testing-bug \
  "${split[@]}" --out "$dir/bug" >"$dir/bug.txt" 2>&1
st=$?
cp "$dir/bug.txt" "$dir/bug/out.txt" 2>/dev/null
check "a planted anomaly fails the run with status 1 (got $st)" "[ $st = 1 ]"
check "... and says INVALID with the history" "grep -q '^INVALID: .*history in' '$dir/bug.txt'"
check "... and keeps the nodes' logs" "ls '$dir/bug/logs/'*.log >/dev/null 2>&1"
check "no process of that cluster is left" "! leftover $dir/bug"
if [ ${#split[@]} -gt 0 ]; then
  if "${MERIDIAN_BIN:-meridian}" debug split --help >/dev/null 2>&1; then
    check "--split 2 split the table" "grep -qx 'split 2' '$dir/bug/summary'"
  else
    check "--split without debug split: single-range, said so" \
      "grep -qx 'split unsupported' '$dir/bug/summary' && grep -q 'single-range' '$dir/bug/jp_run.log'"
  fi
fi
[ "$st" = 1 ] || cat "$dir/bug.txt"
echo "$fails failed"
[ "$fails" = 0 ]
