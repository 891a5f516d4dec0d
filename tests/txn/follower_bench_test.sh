#!/usr/bin/env bash
# bench/follower-reads.sh in a tiny mode (2 s per phase, 20 keys): each of
# the three nodes runs in a CPU cgroup of its own, the cgroups are gone
# afterwards, the result line has both figures and the ratio, the plot is
# written. No speed is asserted. Skipped (77) without write access to a
# cgroup cpu hierarchy (the script then runs unrestricted and says so). The
# script stops every node it started by PID (deploy/local-cluster.sh).
set -u
bin=$1; script=$2
tmp=$(mktemp -d /tmp/meridian-frbench-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }

MERIDIAN_BIN=$bin timeout 300 bash "$script" --duration 2s --keys 20 --concurrency 2 --quota 0.2 \
  --svg "$tmp/plot.svg" >"$tmp/out" 2>&1; rc=$?
cat "$tmp/out"
if grep -q "UNRESTRICTED" "$tmp/out"; then
  echo "SKIP: no write access to a cgroup cpu hierarchy"
  exit 77
fi
num='[0-9]+(\.[0-9]+)?'
check "the script exits 0 ($rc)" "[ $rc = 0 ]"
in=$(grep -Ec '^node [123] \(pid [0-9]+\) in /sys/fs/cgroup/' "$tmp/out")
check "each node in its own cgroup ($in)" "[ $in = 3 ]"
for cg in $(sed -n 's/^node [123] (pid [0-9]*) in //p' "$tmp/out"); do
  check "$cg reported removed" "grep -qx 'cgroup removed: $cg' '$tmp/out'"
  check "$cg is gone" "[ ! -e '$cg' ]"
done
check "the result line: both figures and the ratio" \
  "grep -Eq '^result: bounded staleness .* 3 replicas $num reads/s, leaseholder alone $num reads/s, ratio $num""x\$' '$tmp/out'"
check "CPU per phase for each node" \
  "[ \$(grep -Ec '^(replicas|leaseholder) +n1 $num cores +$num% throttled +n2 .* n3 ' '$tmp/out') = 2 ]"
check "the plot" "grep -q '<svg' '$tmp/plot.svg' && grep -q 'leaseholder alone' '$tmp/plot.svg'"
# Bad input: a usage error, nothing started.
MERIDIAN_BIN=$bin bash "$script" --quota lots >"$tmp/bad" 2>&1; rc=$?
check "a bad --quota is refused ($rc)" "[ $rc = 2 ] && grep -q 'cores between' '$tmp/bad'"
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
