#!/usr/bin/env bash
# Node-level liveness and lease on demand, on three real nodes on loopback:
# after an idle spell of more than 3 lease lengths the first write succeeds at
# the same leaseholder without any NOT_LEADER answer and without an election
# (range 1's ballot round is unchanged); node heartbeats flow; kill -9 of the
# leaseholder's node while the group is quiet elects a new leader and writes
# resume. Every process is stopped by PID (local-cluster.sh).
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-liveness-XXXXXX)
cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
wait_for() { # wait_for SECONDS CMD: a hang guard, not a timing claim
  local n=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.1; done; return 1
}
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
http_of() { awk -v i="$1" '$1==i {print $4}' "$dir/nodes"; }
metric() { curl -s --max-time 2 "http://$(http_of "$1")/metrics" | awk -v m="$2" 'index($0,m)==1 {print $2; exit}'; }
kv() { "$bin" debug kv "$@" --insecure; }
sum_metric() { local s=0 v; for i in 1 2 3; do v=$(metric "$i" "$1"); s=$((s + ${v:-0})); done; echo $s; }
round() { metric "$1" 'meridian_range_ballot_round{range="1"}'; }
quiet_all() { # range 1 quiet: no replica of it is ticking on any node
  for i in 1 2 3; do [ "$(metric "$i" meridian_replicas_awake)" = 0 ] || return 1; done
}

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
lead=""
wait_for 30 'lead=$(bash "$lc" leader "$dir")'
check "a leaseholder exists" "[ -n '$lead' ]"
kv put k1 v1 --host "$(rpc_of "$lead")" >/dev/null
check "a first write at the leaseholder" "[ $? = 0 ]"
sql() { "$bin" sql --host "$(rpc_of "$lead")" --format csv -e "$1" 2>&1; }
sql "CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)" >"$dir/sql0"
check "a table is created" "[ $? = 0 ]"
r0=$(round "$lead")
check "node heartbeats flow" "wait_for 10 '[ \"\$(metric $lead meridian_node_heartbeats_received_total)\" -gt 5 ]'"
check "every node sees both peers live" "wait_for 10 '[ \$(sum_metric meridian_peers_live) = 6 ]'"
check "the group goes quiet on every node" "wait_for 30 quiet_all"

# Idle for more than 3 lease lengths (3 s each): the lease lapses while quiet.
nl0=$(sum_metric meridian_kv_not_leader_total)
sleep 10
check "the quiet leader's lease lapsed (nothing renews it while idle)" \
  "[ \"\$(metric $lead 'meridian_range_lease_valid{range=\"1\"}')\" = 0 ] && [ \"\$(bash $lc leader $dir)\" = '$lead' ]"
kv put k2 v2 --host "$(rpc_of "$lead")" --timeout 10s >/dev/null
check "the first write after idling succeeds" "[ $? = 0 ]"
nl1=$(sum_metric meridian_kv_not_leader_total)
check "no NOT_LEADER answered ($nl0 -> $nl1)" "[ $nl0 = $nl1 ]"
check "the same node still leads (no election while idle: round $r0)" \
  "[ \"\$(round $lead)\" = '$r0' ] && [ \"\$(bash $lc leader $dir)\" = '$lead' ]"
kv get k2 --host "$(rpc_of "$lead")" >"$dir/get" 2>&1
check "the write is readable" "[ \"\$(head -1 $dir/get)\" = v2 ]"
# A strong read after idling is served the same way.
wait_for 30 quiet_all
sleep 4
kv get k1 --host "$(rpc_of "$lead")" >"$dir/get" 2>&1
check "a strong read after idling is served by the leaseholder" "[ \"\$(head -1 $dir/get)\" = v1 ]"
wait_for 30 quiet_all
sleep 4
kv scan --host "$(rpc_of "$lead")" >"$dir/scan" 2>&1
check "a scan after idling is served by the leaseholder" "grep -qx 'k1=v1' $dir/scan"
check "still no NOT_LEADER" "[ \$(sum_metric meridian_kv_not_leader_total) = $nl1 ]"

# SQL transactions (the txn service, not kv) after idling: a quiet leader
# renews on their first request instead of answering NOT_LEADER forever.
wait_for 30 quiet_all
sleep 4
check "a SQL insert after idling commits" "sql \"INSERT INTO t VALUES (1, 'x')\" >$dir/sql1"
check "and reads back" "[ \"\$(sql 'SELECT b FROM t' | tail -1)\" = x ]"
check "the same node still leads after the SQL (round $r0)" "[ \"\$(round $lead)\" = '$r0' ]"

# kill -9 the leaseholder's node while the group is quiet: the followers see
# its heartbeats stop, campaign, and writes resume at a new leader.
wait_for 30 quiet_all
bash "$lc" kill "$dir" "$lead"
a=$(( (lead % 3) + 1 )); b=$(( (a % 3) + 1 ))
newlead=""
check "a new leader is elected" "wait_for 30 'newlead=\$(bash $lc leader $dir) && [ \"\$newlead\" != $lead ]'"
kv put k3 v3 --host "$(rpc_of $a),$(rpc_of $b)" --timeout 30s >/dev/null 2>&1
check "writes resume after the quiet leader died" "[ $? = 0 ]"
check "the survivors counted the dead node" \
  "[ \"\$(metric $a meridian_peer_deaths_total)\" -ge 1 ] && [ \"\$(metric $b meridian_peer_deaths_total)\" -ge 1 ]"

# It returns (a new incarnation): it rejoins as a follower and catches up.
bash "$lc" restart "$dir" "$lead" >/dev/null
check "the restarted node catches up" \
  "wait_for 60 '[ \"\$(kv get k3 --host $(rpc_of "$lead") --timeout 5s 2>/dev/null | head -1)\" = v3 ] || [ \"\$(metric $lead meridian_range_applied_slot{range=\\\"1\\\"})\" -ge \"\$(metric \$newlead meridian_range_applied_slot{range=\\\"1\\\"})\" ]'"
kv put k4 v4 --host "$(rpc_of $a),$(rpc_of $b),$(rpc_of "$lead")" --timeout 30s >/dev/null 2>&1
check "writes go on with all three back" "[ $? = 0 ]"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
