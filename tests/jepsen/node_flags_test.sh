#!/usr/bin/env bash
# The testing flags the Jepsen nemeses use, on real one-node clusters
# (ctest jepsen_node_flags):
#   --testing-clock-skew: a bad value stops the node with a clear message;
#     +30s / -30s shift the commit timestamps the node hands out by that much;
#   --testing-disk-faults: while STORE/TESTING_DISK_FULL exists writes fail
#     and the node keeps running; once it is gone and the node restarted,
#     every acknowledged write is there and writes work again.
#   node_flags_test.sh MERIDIAN_BIN LOCAL_CLUSTER_SH
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
base="--insecure --clock-source static --static-uncertainty 1ms"
top=$(mktemp -d /tmp/meridian-flags-XXXXXX)
cleanup() {
  for d in "$top"/c*; do [ -e "$d/nodes" ] && bash "$lc" stop "$d" >/dev/null 2>&1; done
  rm -rf "$top"
}
trap cleanup EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }

# ---- --testing-clock-skew ----
"$bin" start --store "$top/bad" --listen 127.0.0.1:0 --insecure --testing-clock-skew 2x \
  >"$top/bad.out" 2>&1
check "a malformed skew exits 2" "[ $? = 2 ]"
check "... saying which flag and what it wants" "grep -q -- '--testing-clock-skew .2x.: want a duration' '$top/bad.out'"
"$bin" start --store "$top/bad" --listen 127.0.0.1:0 --insecure --testing-clock-skew -2m \
  >"$top/bad.out" 2>&1
check "a skew beyond a minute exits 2" "[ $? = 2 ] && grep -q 'at most 1m' '$top/bad.out'"
check "no store was made for a refused start" "[ ! -e '$top/bad/IDENTITY' ]"

# commit_offset SKEW: seconds between a commit timestamp and this machine's clock.
commit_offset() {
  local d=$top/c$2
  MERIDIAN_START_FLAGS="$base --testing-clock-skew $1" bash "$lc" start "$d" 1 >"$d.start" 2>&1 ||
    { cat "$d.start" >&2; echo error; return; }
  local host ts now
  host=$(awk '$1==1 {print $3}' "$d/nodes")
  ts=$("$bin" debug kv put skew v --insecure --host "$host" | sed -n 's/^committed: //p')
  now=$(date -u +%s) # before the stop, whose length is the machine's load
  bash "$lc" stop "$d" >/dev/null 2>&1
  [ -n "$ts" ] || { echo error; return; }
  echo $(($(date -u -d "${ts%+*}" +%s) - now))
}
off=$(commit_offset 30s 1)
check "+30s: commits are stamped about 30 s ahead (got $off)" "[ '$off' != error ] && [ $off -ge 25 ] && [ $off -le 31 ]"
off=$(commit_offset -30s 2)
check "-30s: commits are stamped about 30 s behind (got $off)" "[ '$off' != error ] && [ $off -ge -31 ] && [ $off -le -25 ]"

# ---- --testing-disk-faults ----
d=$top/c3
MERIDIAN_START_FLAGS="$base --testing-disk-faults" bash "$lc" start "$d" 1 >"$d.start" 2>&1 ||
  { cat "$d.start"; exit 1; }
host=$(awk '$1==1 {print $3}' "$d/nodes")
pid=$(awk '$1==1 {print $2}' "$d/nodes")
store=$d/n1
kv() { "$bin" debug kv "$@" --insecure --host "$host" --timeout 5s; }
kv put before 1 >/dev/null
check "a write before the fault is acknowledged" "[ $? = 0 ]"
touch "$store/TESTING_DISK_FULL"
kv put during 2 >"$top/during.out" 2>&1
check "a write on a full disk fails" "[ $? != 0 ]"
check "the node logged the failed log write" "grep -q 'log store write failed' '$store/logs/meridian.log'"
check "the node did not crash" "kill -0 $pid && [ \"\$(ps -o stat= -p $pid)\" != Z ]"
rm -f "$store/TESTING_DISK_FULL"
kill -TERM "$pid"
for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
check "the node stops cleanly on SIGTERM" "! kill -0 $pid 2>/dev/null"
MERIDIAN_START_FLAGS="$base --testing-disk-faults" bash "$lc" restart "$d" 1 >"$top/restart.out" 2>&1
check "the node restarts once the disk has room" "[ $? = 0 ]"
host=$(awk '$1==1 {print $3}' "$d/nodes")
got=
for _ in $(seq 1 100); do got=$(kv get before 2>/dev/null | head -1) && [ -n "$got" ] && break; sleep 0.2; done
check "the write acknowledged before the fault is there (got '$got')" "[ '$got' = 1 ]"
kv put after 3 >/dev/null
check "writes work again" "[ $? = 0 ] && [ \"\$(kv get after | head -1)\" = 3 ]"
bash "$lc" stop "$d" >/dev/null 2>&1
# A sanitizer build's nodes report on stderr (n*.out).
check "no sanitizer report from any node" \
  "! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' '$top'/c*/n*.out"
echo "$fails failed"
[ "$fails" = 0 ]
