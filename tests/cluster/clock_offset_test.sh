#!/usr/bin/env bash
# The clock offset check (server/host_clock.c) on three real nodes: a node
# restarted with its clock 900 ms ahead while it believes a 1 ms bound sees
# both peers beyond ε_self + ε_peer + rtt/2, marks its clock untrustworthy
# (metric, a clear log line), holds no lease and refuses to use its clock
# (counted); the others stay in bounds and keep serving; restarted with a
# true clock it serves again. Also the restart wait on a one-node cluster.
#   clock_offset_test.sh MERIDIAN_BIN LOCAL_CLUSTER_SH
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-offset-XXXXXX)
cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  [ -e "$dir/one/nodes" ] && bash "$lc" stop "$dir/one" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
wait_for() { # wait_for SECONDS CMD: a hang guard, not a timing claim
  local n=$(($1 * 10)); shift
  for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.1; done
  return 1
}
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
metric() { curl -s --max-time 2 "http://$(http_of "$1")/metrics" | awk -v m="$2" 'index($0,m)==1 {print $2; exit}'; }
kv() { "$bin" debug kv "$@" --insecure --timeout 10s; }
base="--insecure --clock-source static --static-uncertainty 1ms"

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
wait_for 60 'L=$(bash "$lc" leader "$dir")' || { echo "FAIL: no leaseholder"; exit 1; }
S=$(awk -v l="$L" '$1!=l {print $1; exit}' "$dir/nodes")
G=$(awk -v l="$L" -v s="$S" '$1!=l && $1!=s {print $1; exit}' "$dir/nodes")
for i in 1 2 3; do
  check "node $i: clock in bounds" "wait_for 20 '[ \"\$(metric $i meridian_clock_offset_violation)\" = 0 ]'"
done

bash "$lc" kill "$dir" "$S" >/dev/null 2>&1
MERIDIAN_START_FLAGS="$base --testing-clock-skew 900ms" bash "$lc" restart "$dir" "$S" >"$dir/r1.out" 2>&1 ||
  { cat "$dir/r1.out"; exit 1; }
check "the skewed node $S flags its clock" \
  "wait_for 30 '[ \"\$(metric $S meridian_clock_offset_violation)\" = 1 ]'"
off=$(metric "$S" "meridian_clock_peer_offset_ns{peer=\"$L\"}")
check "... it measured a peer about 900 ms behind (got ${off:-none} ns)" \
  "[ -n '$off' ] && [ $off -lt -850000000 ] && [ $off -gt -950000000 ]"
check "... and said so in its log" \
  "grep -q 'clock offset to a majority of peers is beyond' '$dir/n$S/logs/meridian.log'"
check "the others stay in bounds" \
  "[ \"\$(metric $L meridian_clock_offset_violation)\" = 0 ] && [ \"\$(metric $G meridian_clock_offset_violation)\" = 0 ]"
check "the skewed node holds no lease" \
  "[ \"\$(metric $S 'meridian_range_leaseholder{range=\"1\"}')\" = 0 ]"
kv put k1 v1 --host "$(rpc_of "$L"),$(rpc_of "$G")" >/dev/null 2>&1
check "the cluster keeps serving writes" "[ $? = 0 ]"
kv get k1 --host "$(rpc_of "$S")" >/dev/null 2>&1 # asks the skewed node for its lease
check "the refusals are counted" "wait_for 10 '[ \"\$(metric $S meridian_clock_offset_refusals_total)\" -ge 1 ]'"

bash "$lc" kill "$dir" "$S" >/dev/null 2>&1
MERIDIAN_START_FLAGS=$base bash "$lc" restart "$dir" "$S" >"$dir/r2.out" 2>&1 || { cat "$dir/r2.out"; exit 1; }
check "with a true clock it is in bounds again" \
  "wait_for 30 '[ \"\$(metric $S meridian_clock_offset_violation)\" = 0 ]'"
check "... and serves reads" \
  "wait_for 30 '[ \"\$(kv get k1 --host $(rpc_of "$S") 2>/dev/null | head -1)\" = v1 ]'"
bash "$lc" stop "$dir" >/dev/null 2>&1

# The restart wait (docs/time.md): a one-node cluster restarted with its
# clock 3 s behind the timestamps it handed out waits until its clock passes
# them before it takes a lease; then writes work again.
one=$dir/one
MERIDIAN_START_FLAGS=$base bash "$lc" start "$one" 1 >"$dir/one.out" 2>&1 || { cat "$dir/one.out"; exit 1; }
h1=$(awk '$1==1 {print $3}' "$one/nodes")
kv put r 1 --host "$h1" >/dev/null
bash "$lc" kill "$one" 1 >/dev/null 2>&1
MERIDIAN_START_FLAGS="$base --testing-clock-skew -3s" bash "$lc" restart "$one" 1 >"$dir/one.out" 2>&1 ||
  { cat "$dir/one.out"; exit 1; }
h1=$(awk '$1==1 {print $3}' "$one/nodes")
check "a node restarted behind its last timestamps says it waits" \
  "grep -q 'taking no leases until it passes them' '$one/n1/logs/meridian.log'"
check "... and serves once its clock passed them" "wait_for 30 'kv put r 2 --host $h1 >/dev/null 2>&1'"
bash "$lc" stop "$one" >/dev/null 2>&1
check "no sanitizer report from any node" \
  "! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' '$dir'/n*.out '$one'/n*.out"
echo "$fails failed"
[ "$fails" = 0 ]
