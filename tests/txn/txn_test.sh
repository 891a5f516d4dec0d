#!/usr/bin/env bash
# Single-range transactions on three real nodes (txn_test.c does the client
# side): the sql/kv.h contract through txn_client, wound-wait, the idle
# timeout, no lost updates under concurrent increments, a bank whose total
# never changes (audited by snapshot reads during the run), SQL over the
# cluster, and commits going on after the leaseholder is killed. The client
# is given a follower first, so it must follow NOT_LEADER hints, and after
# the kill a dead node first, so it must fail over. Every process is stopped
# by PID (local-cluster.sh).
set -u
bin=$1; tt=$2; lc=$3
export MERIDIAN_BIN=$bin
# Short enough that the idle check does not dominate the run.
export MERIDIAN_TESTING_TXN_IDLE_MS=3000
dir=$(mktemp -d /tmp/meridian-txn-XXXXXX)
cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0; passes=0
wait_for() { # wait_for SECONDS CMD: a hang guard, not a timing claim
  local n=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.1; done; return 1
}
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
msum() { # msum METRIC: the metric summed over the nodes
  local t=0 h v
  for h in $(awk '{print $4}' "$dir/nodes"); do
    v=$(curl -s --max-time 2 "http://$h/metrics" | awk -v m="$1" 'index($0,m)==1 {print $2; exit}')
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
run() {
  if "$tt" "$@"; then passes=$((passes+1)); else echo "FAIL: txn_test $*"; fails=$((fails+1)); fi
}

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
lead=""
wait_for 30 'lead=$(bash "$lc" leader "$dir")' || { echo "FAIL: no leaseholder"; exit 1; }
f1=$(( (lead % 3) + 1 )); f2=$(( (f1 % 3) + 1 ))
hosts="$(rpc_of $f1),$(rpc_of $lead),$(rpc_of $f2)"

run contract "$hosts"
w=$(msum 'meridian_txn_aborts_total{reason="wounded"}'); i=$(msum 'meridian_txn_aborts_total{reason="idle"}')
if [ "$w" -ge 1 ] && [ "$i" -ge 1 ]; then passes=$((passes+1))
else echo "FAIL: /metrics counts wounds ($w) and idle aborts ($i)"; fails=$((fails+1)); fi
run counter "$hosts" 4 25
run bank "$hosts" 4 25
run sql "$hosts"
run rawcommit "$hosts" "$dir/raw"

# A quiet range's lease lapses (its leader stops heartbeating); the first
# request after the quiet spell waits at the leader for the renewal and is
# served there, rather than answered NOT_LEADER for the client to back off
# and retry. The counter's key gets a range of its own, left alone until its
# lease is no longer valid. If the placement driver moves that range's lease
# meanwhile (leader balance), the premise is gone: that attempt is repeated.
metric_at() { curl -s --max-time 2 "http://$1/metrics" | awk -v m="$2" 'index($0,m" ")==1 {print $2; exit}'; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
quiet_leader() { # sets ql: the node leading range $rid with its lease lapsed
  local i
  for i in 1 2 3; do
    [ "$(metric_at "$(http_of $i)" "meridian_range_leaseholder{range=\"$rid\"}")" = 1 ] &&
      [ "$(metric_at "$(http_of $i)" "meridian_range_lease_valid{range=\"$rid\"}")" = 0 ] &&
      { ql=$i; return 0; }
  done
  return 1
}
quiet_verdict=""
if "$bin" debug split --key counter --insecure --host "$hosts" --timeout 60s >"$dir/split.out" 2>&1; then
  rid=$(sed -n 's/^right: range \([0-9]*\).*/\1/p' "$dir/split.out")
  for attempt in 1 2 3; do
    ql=""
    wait_for 120 quiet_leader || { quiet_verdict="range '$rid' never had a quiet leader with a lapsed lease"; break; }
    b0=$(metric_at "$(http_of "$ql")" "meridian_range_ballot_round{range=\"$rid\"}")
    nl0=$(msum meridian_txn_not_leader_total); pk0=$(msum meridian_txn_lease_parked_total)
    others=$(for i in 1 2 3; do [ "$i" != "$ql" ] && printf ',%s' "$(rpc_of $i)"; done)
    run counter "$(rpc_of "$ql")$others" 1 1
    nl1=$(msum meridian_txn_not_leader_total); pk1=$(msum meridian_txn_lease_parked_total)
    b1=$(metric_at "$(http_of "$ql")" "meridian_range_ballot_round{range=\"$rid\"}")
    still=$(metric_at "$(http_of "$ql")" "meridian_range_leaseholder{range=\"$rid\"}")
    if [ "$b1" != "$b0" ] || [ "$still" != 1 ]; then
      echo "note: range $rid's lease left node $ql during attempt $attempt; again"
      quiet_verdict="the lease kept moving"; continue
    fi
    if [ "$pk1" -gt "$pk0" ] && [ "$nl1" = "$nl0" ]; then quiet_verdict=ok
    else quiet_verdict="after a quiet spell: parked $pk0 -> $pk1, NOT_LEADER $nl0 -> $nl1"; fi
    break
  done
else
  quiet_verdict="split at counter: $(cat "$dir/split.out")"
fi
if [ "$quiet_verdict" = ok ]; then passes=$((passes+1))
else echo "FAIL: $quiet_verdict"; fails=$((fails+1)); fi

# The leaseholder dies: its locks go with it; a client whose first seed is
# the dead node fails over and goes on incrementing without lost updates.
bash "$lc" kill "$dir" "$lead"
run counter "$(rpc_of $lead),$(rpc_of $f1),$(rpc_of $f2)" 2 10
# The new leaseholder knows nothing of the old one's memory: the durable
# transaction record answers the retried commit.
run recommit "$(rpc_of $f1),$(rpc_of $f2)" "$dir/raw"

# The nodes stop cleanly, and (sanitizer builds) report nothing.
bash "$lc" stop "$dir" >/dev/null 2>&1
if grep -l "ERROR: AddressSanitizer\|runtime error:\|ERROR: LeakSanitizer" "$dir"/n*.out; then
  echo "FAIL: a node reported a sanitizer error"; fails=$((fails+1))
else
  passes=$((passes+1))
fi

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
