#!/usr/bin/env bash
# Three real nodes on loopback: writes replicate; kill -9 of the leaseholder
# under a write load; writes resume on a new leader; every acknowledged write
# is readable afterwards and nothing that was never attempted appears; the
# killed node catches up when it returns; every acknowledged write survives a
# restart of the whole cluster; garbage and oversized frames are refused while
# the node keeps serving. Every process is stopped by PID (local-cluster.sh).
set -u
bin=$1; lc=$2
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-cluster-XXXXXX)
cleanup() {
  bash "$lc" stop "$dir" >/dev/null 2>&1
  [ -n "${writer:-}" ] && kill -9 "$writer" 2>/dev/null
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

bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
check "3 voters in range 1" "[ \"\$(metric 1 'meridian_range_voters{range=\"1\"}')\" = 3 ]"

kv put greeting hello --host "$(rpc_of 1)" >/dev/null
for i in 1 2 3; do
  check "node $i reads a replicated write" "[ \"\$(kv get greeting --host $(rpc_of $i) | head -1)\" = hello ]"
done

# A write load over all three nodes; acknowledged keys are logged.
: >"$dir/acked"; : >"$dir/attempted"
(
  for i in $(seq 1 150); do
    k=$(printf 'w%04d' "$i"); n1=$(( (i % 3) + 1 )); n2=$(( (n1 % 3) + 1 )); n3=$(( (n2 % 3) + 1 ))
    echo "$k" >>"$dir/attempted"
    # Starts at a different node each time; a dead node is skipped for the next.
    if "$bin" debug kv put "$k" "v$i" --insecure --host "$(rpc_of $n1),$(rpc_of $n2),$(rpc_of $n3)" \
        --timeout 30s >/dev/null 2>&1; then
      echo "$k v$i" >>"$dir/acked"
    fi
  done
) &
writer=$!
wait_for 60 '[ $(wc -l <"$dir/acked") -ge 40 ]'
victim=""
wait_for 30 'victim=$(bash "$lc" leader "$dir")'
check "a leaseholder exists" "[ -n '$victim' ]"
before=$(wc -l <"$dir/acked")
bash "$lc" kill "$dir" "$victim"
wait "$writer"; writer=
after=$(wc -l <"$dir/acked")
check "writes continued after the leader was killed ($before -> $after acked)" "[ $after -gt $((before + 50)) ]"
survivor=$(( (victim % 3) + 1 ))
newleader=""
wait_for 30 'newleader=$(bash "$lc" leader "$dir")'
check "a new leaseholder was elected" "[ -n '$newleader' ] && [ '$newleader' != '$victim' ]"

# Every acknowledged write is readable; nothing unattempted appears.
kv scan --host "$(rpc_of $survivor)" >"$dir/scan" 2>&1
lost=0
while read -r k v; do grep -qx "$k=$v" "$dir/scan" || { lost=$((lost+1)); echo "lost: $k"; }; done <"$dir/acked"
check "no acknowledged write lost" "[ $lost = 0 ]"
phantom=$(grep '^w' "$dir/scan" | cut -d= -f1 | grep -vxFf "$dir/attempted" | wc -l)
check "no write appears that was never attempted" "[ $phantom = 0 ]"
dups=$(grep '^w' "$dir/scan" | cut -d= -f1 | sort | uniq -d | wc -l)
check "no key twice in a scan" "[ $dups = 0 ]"

# The killed node comes back and catches up to the leader's applied slot.
bash "$lc" restart "$dir" "$victim" >/dev/null
lead_slot=$(metric "$newleader" 'meridian_range_applied_slot{range="1"}')
check "the returning node catches up" "wait_for 60 '[ \"\$(metric $victim meridian_range_applied_slot{range=\\\"1\\\"})\" -ge $lead_slot ]'"
check "the returning node serves reads" "[ \"\$(kv get greeting --host $(rpc_of $victim) | head -1)\" = hello ]"

# Bad input on the rpc port: garbage, an oversized frame. The node keeps serving.
port=$(rpc_of 1 | cut -d: -f2)
head -c 65536 /dev/urandom >"$dir/garbage"
(exec 3<>/dev/tcp/127.0.0.1/"$port" && cat "$dir/garbage" >&3; exec 3>&-) 2>/dev/null
(exec 3<>/dev/tcp/127.0.0.1/"$port" && printf '\xff\xff\xff\xf0' >&3; sleep 0.2; exec 3>&-) 2>/dev/null
check "node serves after garbage and an oversized frame" "[ \"\$(kv get greeting --host $(rpc_of 1) | head -1)\" = hello ]"
"$bin" debug kv put "" x --insecure --host "$(rpc_of 1)" >/dev/null 2>&1
check "an empty key is refused" "[ $? = 2 ]"

# SIGTERM of the leaseholder: it hands its lease off and exits 0; writes go on.
lead=$(bash "$lc" leader "$dir")
lpid=$(awk -v i="$lead" '$1==i {print $2}' "$dir/nodes")
kill -TERM "$lpid"
check "a SIGTERMed leaseholder exits" "wait_for 30 '! kill -0 $lpid 2>/dev/null || [ \"\$(ps -o stat= -p $lpid)\" = Z ]'"
check "it drained (writes finished, lease handed off)" "grep -q 'msg=\"drained\"' $dir/n$lead/logs/meridian.log"
other=$(( (lead % 3) + 1 ))
kv put after-term yes --host "$(rpc_of $other)" --timeout 30s >/dev/null 2>&1
check "writes go on after a clean stop of the leaseholder" "[ $? = 0 ]"
bash "$lc" restart "$dir" "$lead" >/dev/null

# Fault injection over the network is refused unless a node opted in.
"$bin" debug faults --insecure --host "$(rpc_of 1)" --spec "peer=2,drop=1" >/dev/null 2>&1
check "rpc.faults refused without --testing-fault-admin" "[ $? = 1 ]"

# Restart every node: every acknowledged write is still there.
cp "$dir/nodes" "$dir/nodes.bak"
bash "$lc" stop "$dir" >/dev/null 2>&1
cp "$dir/nodes.bak" "$dir/nodes"
for i in 1 2 3; do bash "$lc" restart "$dir" "$i" >/dev/null || echo "restart $i failed"; done
wait_for 60 'bash "$lc" leader "$dir" >/dev/null'
kv scan --host "$(rpc_of 2)" --timeout 30s >"$dir/scan2" 2>&1
lost=0
while read -r k v; do grep -qx "$k=$v" "$dir/scan2" || lost=$((lost+1)); done <"$dir/acked"
check "every acknowledged write survives a full restart" "[ $lost = 0 ]"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
