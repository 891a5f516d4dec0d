#!/usr/bin/env bash
# SQL statement limits on three real nodes (cluster_sql_test.c is the client
# side, through libmeridian): statement_timeout, meridian_interrupt of a
# running statement and of one waiting for a lock, and scans fetching rows
# in batches: the rpc messages clients sent the nodes during a count(*) of
# 5000 rows (meridian_rpc_messages_in_total from peer 0, the client
# endpoints, summed over the nodes) must be far fewer than the rows; and a
# write stuck without a quorum ends at its statement_timeout and frees the
# gateway's worker; once the quorum is back the same session serves again.
# The gateway is the leaseholder, so its session's requests are in-process
# calls (server/txn_client_local.c): the lock wait's cancel and the stuck
# write's timeout are theirs.
# Every process is stopped by PID (local-cluster.sh).
set -u
bin=$1; ct=$2; lc=$3
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-csql-XXXXXX)
cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0
wait_for() { # wait_for SECONDS CMD: a hang guard, not a timing claim
  local n=$(( $1 * 10 )); shift
  for _ in $(seq 1 "$n"); do eval "$1" && return 0; sleep 0.1; done; return 1
}
rpc_of() { awk -v i="$1" '$1==i {print $3}' "$dir/nodes"; }
from_clients() { # messages received from client endpoints, summed over the nodes
  local t=0 h v
  for h in $(awk '{print $4}' "$dir/nodes"); do
    v=$(curl -s --max-time 5 "http://$h/metrics" |
        awk 'index($0,"meridian_rpc_messages_in_total{") == 1 && index($0,"peer=\"0\"") {print $2}')
    t=$((t + ${v:-0}))
  done
  echo "$t"
}
run() {
  if "$ct" "$@"; then echo "ok: $1"; else echo "FAIL: cluster_sql_test $*"; fails=$((fails+1)); fi
}

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
lead=""
wait_for 30 'lead=$(bash "$lc" leader "$dir")' || { echo "FAIL: no leaseholder"; exit 1; }
# The leaseholder is the gateway of the statements.
host=$(rpc_of "$lead")

run timeout "$host"
run interrupt "$host"
# The lock wait is watched through another node: meridian_transactions
# asks every node (node.Transactions), not only the gateway.
other=$(awk -v l="$lead" '$1!=l {print $3; exit}' "$dir/nodes")
run lockwait "$host" "$other"

local_calls() { # the gateway's requests to its own ranges without a socket
  curl -s --max-time 5 "http://$(awk -v i="$lead" '$1==i {print $4}' "$dir/nodes")/metrics" |
    awk 'index($0,"meridian_sql_local_kv_calls_total ") == 1 {print $2}'
}
before=$(from_clients); lbefore=$(local_calls)
rows=$("$ct" scan "$host")
after=$(from_clients); lafter=$(local_calls)
msgs=$((after - before))
if [ "$rows" = 5000 ] && [ "$msgs" -gt 0 ] && [ "$msgs" -lt 100 ]; then
  echo "ok: scan of $rows rows took $msgs client messages"
else
  echo "FAIL: scan of '$rows' rows took $msgs client messages (want 5000 rows, < 100 messages)"
  fails=$((fails+1))
fi
# The gateway leads the table's range: its session read it in-process.
if [ "${lafter:-0}" -gt "${lbefore:-0}" ]; then
  echo "ok: the gateway's session read its own range without a socket ($lbefore -> $lafter calls)"
else
  echo "FAIL: the gateway's own range was not read in-process ($lbefore -> $lafter local calls)"
  fails=$((fails+1))
fi

# Last: the other two nodes go down, so writes have no quorum.
# The worker must let go of the write at its statement_timeout (2 s), well
# before the transaction client's own 30 s budget would end it: the 20 s
# limit tells which of the two deadlines fired, it is no speed claim.
others=$(awk -v l="$lead" '$1!=l {printf "%s ", $1}' "$dir/nodes")
for i in $others; do bash "$lc" kill "$dir" "$i" >/dev/null 2>&1; done
gw_http=$(awk -v i="$lead" '$1==i {print $4}' "$dir/nodes")
cat >"$dir/after_stuck.sh" <<EOF
set -u
. "$(dirname "$lc")/lib.sh"
idle() { [ "\$(metric $gw_http meridian_sql_jobs_running)" = 0 ]; }
wait_for 20 idle || { echo "the gateway's worker still holds the stuck write"; exit 1; }
for i in $others; do bash "$lc" restart "$dir" "\$i" >/dev/null 2>&1 || exit 1; done
EOF
run stuck "$host" "bash $dir/after_stuck.sh"

[ "$fails" -eq 0 ] || { echo "$fails failure(s)"; exit 1; }
echo "all passed"
