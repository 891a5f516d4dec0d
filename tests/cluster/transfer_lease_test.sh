#!/usr/bin/env bash
# `meridian debug transfer-lease` on three real nodes (server/node_lease.c):
# range 1's lease is moved to each other voter in turn while a writer runs,
# and to the node that already holds it (a no-op); a split-off range's lease
# is moved too. After each move the nodes themselves report the target as
# the leaseholder (polled: leases may move again by themselves, so each
# check is "it got there", never "it stays"). Every acknowledged write is
# read back at the end. Bad requests (a non-voter, an unknown range, a bad
# flag) get a clear error and change nothing. Every process is stopped by PID.
#   transfer_lease_test.sh MERIDIAN_BIN LOCAL_CLUSTER_SH
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-xfer-XXXXXX)
writer_pid=
cleanup() {
  [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null && wait "$writer_pid" 2>/dev/null
  bash "$lc" stop "$dir" >/dev/null 2>&1
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
id_of() { sed -n 's/^node_id=//p' "$dir/n$1/IDENTITY"; }
all() { awk '{print $3}' "$dir/nodes" | paste -sd, -; }
xfer() { "$bin" debug transfer-lease --insecure --host "$(all)" --timeout 60s "$@"; }
put() { "$bin" debug kv put "$1" "$2" --insecure --host "$(all)" --timeout 60s >/dev/null 2>&1 && echo "$1" >>"$dir/acked"; }
# lease_of RANGE: the node id the nodes report as RANGE's leaseholder
lease_of() {
  "$bin" debug ranges --insecure --host "$(rpc_of 1)" 2>/dev/null | awk -v r="$1" '$1==r {print $5}'
}

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
: >"$dir/acked"
writer() { local i=0; while [ ! -e "$dir/stop" ]; do i=$((i + 1)); put "$(printf 'w%05d' $i)" "v$i"; done; }
writer &
writer_pid=$!

for i in 2 3 1 3 3; do
  to=$(id_of "$i")
  check "range 1's lease moves to node $to" "xfer --range 1 --to $to >$dir/xfer.out 2>&1"
  check "the tool names node $to as the leaseholder" "grep -q 'range 1 leaseholder $to' $dir/xfer.out"
  check "the nodes report node $to as range 1's leaseholder" "wait_for 60 '[ \"\$(lease_of 1)\" = $to ]'"
done

check "split at m" "\"$bin\" debug split --key m --insecure --host \"$(all)\" --timeout 60s >$dir/split.out 2>&1"
r2=$(awk '/^right:/ {print $3}' "$dir/split.out")
check "the split names its new range ($r2)" "[ -n '$r2' ]"
to=$(id_of 2)
check "range $r2's lease moves to node $to" "xfer --range $r2 --to $to >/dev/null 2>&1"
check "the nodes report node $to as range $r2's leaseholder" "wait_for 60 '[ \"\$(lease_of $r2)\" = $to ]'"

# Bad requests.
xfer --range 1 --to 99 >/dev/null 2>"$dir/bad.err"
check "a non-voter is refused (status 1)" "[ $? = 1 ]"
check "... with a clear error" "grep -q 'not a voter' $dir/bad.err"
"$bin" debug transfer-lease --insecure --host "$(all)" --timeout 3s --range 4242 --to 1 >/dev/null 2>"$dir/bad.err"
check "an unknown range is refused (status 1)" "[ $? = 1 ]"
check "... with a clear error" "grep -q 'no replica of range 4242' $dir/bad.err"
"$bin" debug transfer-lease --insecure --host "$(all)" --range 0 --to 1 >/dev/null 2>"$dir/bad.err"
check "--range 0 is a usage error (status 2)" "[ $? = 2 ]"
"$bin" debug transfer-lease --insecure --host "$(all)" --range 1 >/dev/null 2>"$dir/bad.err"
check "a missing --to is a usage error (status 2)" "[ $? = 2 ]"

touch "$dir/stop"
wait "$writer_pid"
writer_pid=
n=$(wc -l <"$dir/acked")
check "the writer got writes acknowledged across the moves ($n)" "[ $n -gt 0 ]"
"$bin" debug kv scan --insecure --host "$(all)" --timeout 60s >"$dir/scan" 2>&1
lost=0
while read -r k; do grep -q "^$k" "$dir/scan" || lost=$((lost + 1)); done <"$dir/acked"
check "every acknowledged write is read back ($lost lost)" "[ $lost = 0 ]"

[ "$fails" = 0 ] && echo "transfer_lease_test: all checks passed" || echo "transfer_lease_test: $fails failed"
[ "$fails" = 0 ]
