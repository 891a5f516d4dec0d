#!/usr/bin/env bash
# A node as a real process: it starts, serves /health /ready /metrics over
# loopback, refuses a second process on its store, rejects bad flags with exit
# status 2, and shuts down cleanly on SIGTERM and SIGINT. Every process this
# test starts is stopped by PID.
set -u
bin=$1
dir=$(mktemp -d /tmp/meridian-node-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }

# wait_for COND: polls a condition with a hang guard of 30 s (not a timing claim).
wait_for() {
  for _ in $(seq 1 300); do eval "$1" && return 0; sleep 0.1; done
  echo "timed out waiting for: $1"; return 1
}

start_node() { # start_node STORE -> sets PID
  "$bin" start --store "$1" --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --log-level info \
    >"$1.out" 2>&1 &
  PID=$!
  pids+=("$PID")
}

store=$dir/n1
start_node "$store"
wait_for "[ -s $store/listen-addrs ]" || { cat "$store.out"; exit 1; }
http=$(sed -n 's/^http=//p' "$store/listen-addrs")
check "listen-addrs names the http port" "[ -n '$http' ]"
code=$(curl -s -o "$dir/health" -w '%{http_code}' "http://$http/health")
check "/health is 200 while serving" "[ '$code' = 200 ]"
check "/health body names the state" "grep -q serving $dir/health"
code=$(curl -s -o "$dir/ready" -w '%{http_code}' "http://$http/ready")
check "/ready is 503 before init" "[ '$code' = 503 ]"
check "/ready says why" "grep -q 'not initialised' $dir/ready"
curl -s "http://$http/metrics" >"$dir/metrics"
check "/metrics is Prometheus text" "grep -q '^# TYPE meridian_uptime_seconds gauge' $dir/metrics"
check "/metrics counts requests" "grep -q '^meridian_admin_http_requests_total [1-9]' $dir/metrics"
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$http/nope")
check "unknown path is 404" "[ '$code' = 404 ]"

# A second process on the same store is refused, naming the first's pid.
"$bin" start --store "$store" --listen 127.0.0.1:0 >"$dir/second.out" 2>&1
rc=$?
check "second node on one store exits 1" "[ $rc = 1 ]"
check "second node names the owner" "grep -q 'in use by another process (pid $PID)' $dir/second.out"
check "first node still serves" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://$http/health)\" = 200 ]"

# Bad flags: exit 2 with a message, nothing started.
"$bin" start --store "$dir/bad" --listen nowhere >"$dir/bad.out" 2>&1
check "bad --listen exits 2" "[ $? = 2 ]"
check "bad --listen says which flag" "grep -q -- '--listen' $dir/bad.out"
"$bin" start --store "$dir/bad" --listen 127.0.0.1:0 --locality zone=a >"$dir/bad.out" 2>&1
check "bad --locality exits 2" "[ $? = 2 ]"
"$bin" start --listen 127.0.0.1:0 >"$dir/bad.out" 2>&1
check "missing --store exits 2" "[ $? = 2 ]"

# init: once per cluster. The node becomes node 1 and /ready turns 200.
rpc=$(sed -n 's/^rpc=//p' "$store/listen-addrs")
check "listen-addrs names the rpc port" "[ -n '$rpc' ]"
"$bin" init --host "$rpc" >"$dir/init.out" 2>&1
check "init exits 0" "[ $? = 0 ]"
check "init prints the cluster id" "grep -Eq 'cluster id [0-9a-f]{32}, node 1' $dir/init.out"
cid=$(grep -Eo '[0-9a-f]{32}' "$dir/init.out")
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$http/ready")
check "/ready is 200 after init" "[ '$code' = 200 ]"
"$bin" init --host "$rpc" >"$dir/init2.out" 2>&1
check "a second init exits 1" "[ $? = 1 ]"
check "a second init says why" "grep -q 'already initialised (cluster $cid' $dir/init2.out"
check "the store records the identity" "grep -q 'cluster_id=$cid' $store/IDENTITY"
"$bin" init --host 127.0.0.1:1 --timeout 5s >"$dir/init3.out" 2>&1
check "init at a dead address exits 1" "[ $? = 1 ]"
check "init at a dead address says so" "grep -qi 'reach\|refused\|unavailable' $dir/init3.out"
"$bin" init --host nowhere >"$dir/init5.out" 2>&1
check "init with a bad address exits 1" "[ $? = 1 ]"
check "init with a bad address says so" "grep -q \"bad address 'nowhere'\" $dir/init5.out"
"$bin" init >"$dir/init4.out" 2>&1
check "init without --host exits 2" "[ $? = 2 ]"

# SIGTERM: clean shutdown, exit 0, the log says so, the lock is released.
kill -TERM "$PID"
wait "$PID"; rc=$?
check "SIGTERM exits 0" "[ $rc = 0 ]"
check "log records a clean shutdown" "grep -q 'shutdown complete' $store/logs/meridian.log"
check "listen-addrs removed at shutdown" "[ ! -e $store/listen-addrs ]"
start_node "$store"
wait_for "grep -q 'node started' $store.out" || cat "$store.out"
check "store reusable after a clean stop" "kill -0 $PID 2>/dev/null"
wait_for "[ -s $store/listen-addrs ]"
http=$(sed -n 's/^http=//p' "$store/listen-addrs")
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$http/ready")
check "still initialised after a restart" "[ '$code' = 200 ]"
curl -s "http://$http/metrics" >"$dir/metrics2"
check "restarted node is node 1" "grep -q '^meridian_node_id 1' $dir/metrics2"
kill -INT "$PID"
wait "$PID"; rc=$?
check "SIGINT exits 0" "[ $rc = 0 ]"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
