#!/usr/bin/env bash
# A lease handed off while the old leaseholder's last write is still in its
# commit-wait (docs/jepsen.md finding 2, register seed 305). The old
# leaseholder runs 400 ms ahead with a 490 ms bound (true time stays inside
# its interval), so it stamps a write up to ~890 ms ahead of true time; the
# next leaseholder runs a true clock with a 1 ms bound. A write acknowledged
# by the new leaseholder after the hand-off must be what a strong read
# returns: the new leaseholder stamps above every timestamp it applied.
# Before the fix it stamped below, and the read returned the older value.
#   lease_handoff_ts_test.sh MERIDIAN_BIN LOCAL_CLUSTER_SH
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-handoff-XXXXXX)
bg=
cleanup() {
  [ -n "$bg" ] && kill -9 "$bg" 2>/dev/null
  bash "$lc" stop "$dir" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fails=$((fails + 1)); fi; }
wait_for() { # wait_for SECONDS CMD: a hang guard, not a timing claim
  local n=$(($1 * 20)); shift
  for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.05; done
  return 1
}
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
pid_of() { awk -v i="$1" '$1==i {print $2}' "$dir/nodes"; }
kv() { "$bin" debug kv "$@" --insecure --timeout 20s; }
skewed="--insecure --clock-source static --static-uncertainty 490ms --testing-clock-skew 400ms"
true_clock="--insecure --clock-source static --static-uncertainty 1ms"

MERIDIAN_START_FLAGS=$skewed bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 ||
  { cat "$dir/start.out"; exit 1; }
wait_for 60 'L=$(bash "$lc" leader "$dir")' || { echo "FAIL: no leaseholder"; exit 1; }
others=$(awk -v l="$L" '$1!=l {print $1}' "$dir/nodes")
# The followers come back with true clocks; the leaseholder keeps its skew.
# One at a time, each back in the group before the next goes: the leaseholder
# keeps a majority throughout, so its lease never lapses and no follower gets
# to campaign (a slow sanitizer build otherwise saw the lease move).
applied() { curl -s --max-time 2 "http://$1/metrics" | awk 'index($0, "meridian_range_applied_slot{range=\"1\"}")==1 {print $2}'; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
caught_up() { # caught_up I: node I applied range 1 as far as the leaseholder
  local a b
  a=$(applied "$(http_of "$1")"); b=$(applied "$(http_of "$L")")
  [ -n "$a" ] && [ "$a" = "$b" ]
}
n=0
for i in $others; do
  bash "$lc" kill "$dir" "$i" >/dev/null 2>&1
  MERIDIAN_START_FLAGS=$true_clock bash "$lc" restart "$dir" "$i" >>"$dir/restart.out" 2>&1 ||
    { cat "$dir/restart.out"; exit 1; }
  n=$((n + 1))
  kv put "k$n" back --host "$(rpc_of "$L")" >/dev/null 2>&1
  wait_for 60 "caught_up $i" || true
done
hosts=$(for i in $others; do printf '%s,' "$(rpc_of "$i")"; done)
hosts=${hosts%,}
kv put k before --host "$(rpc_of "$L")" >/dev/null
# The lease can be between renewals for a moment (followers just restarted): poll.
check "the skewed node $L still holds the lease" "wait_for 60 '[ \"\$(bash $lc leader $dir)\" = $L ]'"
for i in $others; do
  check "node $i caught up" "wait_for 30 '[ \"\$(kv get k --host $(rpc_of "$i") 2>/dev/null | head -1)\" = before ]'"
done

# Write "a" at the skewed leaseholder; once it is applied (visible there, its
# commit-wait still running) stop that node: it hands its lease on.
kv put k a --host "$(rpc_of "$L")" >"$dir/a.out" 2>&1 &
bg=$!
check "write a is applied at the leaseholder" \
  "wait_for 30 '[ \"\$(kv get k --host $(rpc_of "$L") 2>/dev/null | head -1)\" = a ]'"
kill -TERM "$(pid_of "$L")"
kv put k b --host "$hosts" >"$dir/b.out" 2>&1
check "write b is acknowledged by the new leaseholder" "[ $? = 0 ]"
got=$(kv get k --host "$hosts" 2>&1 | head -1)
check "a strong read right after returns b (got '$got')" "[ '$got' = b ]"
wait "$bg" 2>/dev/null; bg=
tsa=$(sed -n 's/^committed: //p' "$dir/a.out"); tsb=$(sed -n 's/^committed: //p' "$dir/b.out")
echo "a committed: ${tsa:-unknown}  b committed: $tsb"
bash "$lc" stop "$dir" >/dev/null 2>&1
check "no sanitizer report from any node" \
  "! grep -q -E 'AddressSanitizer|LeakSanitizer|runtime error:' '$dir'/n*.out"
echo "$fails failed"
[ "$fails" = 0 ]
