#!/usr/bin/env bash
# A node as a real process: it starts, serves /health /ready /metrics over
# loopback, refuses a second process on its store, rejects bad flags with exit
# status 2, and shuts down cleanly on SIGTERM and SIGINT. Secure by default:
# without --certs-dir or --insecure it refuses to start; a secure node (certs
# made with `meridian cert`) is initialised with the root client certificate
# and refuses another CA's client and an insecure one. Every process this
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
    --insecure >"$1.out" 2>&1 &
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
"$bin" start --store "$store" --listen 127.0.0.1:0 --insecure >"$dir/second.out" 2>&1
rc=$?
check "second node on one store exits 1" "[ $rc = 1 ]"
check "second node names the owner" "grep -q 'in use by another process (pid $PID)' $dir/second.out"
check "first node still serves" "[ \"\$(curl -s -o /dev/null -w '%{http_code}' http://$http/health)\" = 200 ]"

# Bad flags: exit 2 with a message, nothing started.
"$bin" start --store "$dir/bad" --listen nowhere --insecure >"$dir/bad.out" 2>&1
check "bad --listen exits 2" "[ $? = 2 ]"
check "bad --listen says which flag" "grep -q -- '--listen' $dir/bad.out"
"$bin" start --store "$dir/bad" --listen 127.0.0.1:0 --locality zone=a --insecure >"$dir/bad.out" 2>&1
check "bad --locality exits 2" "[ $? = 2 ]"
"$bin" start --listen 127.0.0.1:0 --insecure >"$dir/bad.out" 2>&1
check "missing --store exits 2" "[ $? = 2 ]"
# Secure by default: neither --certs-dir nor --insecure is a refusal that
# says how to make certificates; nothing starts, the store is not created.
"$bin" start --store "$dir/nosec" --listen 127.0.0.1:0 >"$dir/nosec.out" 2>&1
check "start without TLS or --insecure exits 2" "[ $? = 2 ]"
check "the refusal says how to create certificates" "grep -q 'meridian cert create-ca' $dir/nosec.out"
check "the refusal started nothing" "[ ! -e $dir/nosec ]"
"$bin" start --store "$dir/nosec" --listen 127.0.0.1:0 --insecure --certs-dir "$dir" >"$dir/nosec.out" 2>&1
check "--insecure with --certs-dir exits 2" "[ $? = 2 ]"
check "insecure start warns" "grep -q 'WARNING: running --insecure' $store.out"

# init: once per cluster. The node becomes node 1 and /ready turns 200.
rpc=$(sed -n 's/^rpc=//p' "$store/listen-addrs")
check "listen-addrs names the rpc port" "[ -n '$rpc' ]"
"$bin" init --host "$rpc" --insecure >"$dir/init.out" 2>&1
check "init exits 0" "[ $? = 0 ]"
check "init prints the cluster id" "grep -Eq 'cluster id [0-9a-f]{32}, node 1' $dir/init.out"
cid=$(grep -Eo '[0-9a-f]{32}' "$dir/init.out")
code=$(curl -s -o /dev/null -w '%{http_code}' "http://$http/ready")
check "/ready is 200 after init" "[ '$code' = 200 ]"
"$bin" init --host "$rpc" --insecure >"$dir/init2.out" 2>&1
check "a second init exits 1" "[ $? = 1 ]"
check "a second init says why" "grep -q 'already initialised (cluster $cid' $dir/init2.out"
check "the store records the identity" "grep -q 'cluster_id=$cid' $store/IDENTITY"
"$bin" init --host 127.0.0.1:1 --timeout 5s --insecure >"$dir/init3.out" 2>&1
check "init at a dead address exits 1" "[ $? = 1 ]"
check "init at a dead address says so" "grep -qi 'reach\|refused\|unavailable' $dir/init3.out"
"$bin" init --host nowhere --insecure >"$dir/init5.out" 2>&1
check "init with a bad address exits 1" "[ $? = 1 ]"
check "init with a bad address says so" "grep -q \"bad address 'nowhere'\" $dir/init5.out"
"$bin" init --insecure >"$dir/init4.out" 2>&1
check "init without --host exits 2" "[ $? = 2 ]"
"$bin" init --host "$rpc" >"$dir/init6.out" 2>&1
check "init without --certs-dir or --insecure exits 2" "[ $? = 2 ]"

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

# ---- secure mode ----
certs=$dir/certs; safe=$dir/safe
"$bin" cert create-ca --certs-dir "$certs" --ca-key "$safe/ca.key" >"$dir/cert.out" 2>&1
check "cert create-ca exits 0" "[ $? = 0 ]"
"$bin" cert create-node 127.0.0.1 localhost --certs-dir "$certs" --ca-key "$safe/ca.key" >>"$dir/cert.out" 2>&1
check "cert create-node exits 0" "[ $? = 0 ]"
"$bin" cert create-client root --certs-dir "$certs" --ca-key "$safe/ca.key" >>"$dir/cert.out" 2>&1
check "cert create-client exits 0" "[ $? = 0 ]"
check "keys are 0600" "[ \"\$(stat -c %a $certs/node.key $certs/client.root.key $safe/ca.key | sort -u)\" = 600 ]"
check "certificates are 0644" "[ \"\$(stat -c %a $certs/ca.crt $certs/node.crt $certs/client.root.crt | sort -u)\" = 644 ]"
cp "$certs/node.key" "$dir/node.key.before"
"$bin" cert create-node 127.0.0.1 --certs-dir "$certs" --ca-key "$safe/ca.key" >"$dir/cert2.out" 2>&1
check "cert refuses to overwrite" "[ $? = 1 ] && grep -q 'already exists' $dir/cert2.out"
check "the refused overwrite left the key alone" "cmp -s $certs/node.key $dir/node.key.before"
"$bin" cert list --certs-dir "$certs" >"$dir/list.out" 2>&1
check "cert list shows the CA" "grep -q '^ca.crt .*ca .*cn=Meridian CA' $dir/list.out"
check "cert list shows the node's hosts" "grep -q 'node.crt .*cn=node .*hosts=127.0.0.1,localhost' $dir/list.out"
check "cert list shows the client" "grep -q 'client.root.crt .*cn=root' $dir/list.out"
# Another CA with its own root client, for the refusal.
"$bin" cert create-ca --certs-dir "$dir/other" --ca-key "$dir/other/ca.key" >/dev/null 2>&1
"$bin" cert create-client root --certs-dir "$dir/other" --ca-key "$dir/other/ca.key" >/dev/null 2>&1

sstore=$dir/secure
"$bin" start --store "$sstore" --listen 127.0.0.1:0 --certs-dir "$certs" >"$sstore.out" 2>&1 &
SPID=$!
pids+=("$SPID")
wait_for "[ -s $sstore/listen-addrs ]" || cat "$sstore.out"
srpc=$(sed -n 's/^rpc=//p' "$sstore/listen-addrs")
"$bin" init --host "$srpc" --insecure >"$dir/sinit1.out" 2>&1
check "insecure init against a secure node exits 1" "[ $? = 1 ]"
check "insecure init is told the node requires TLS" "grep -q 'requires TLS' $dir/sinit1.out"
"$bin" init --host "$srpc" --certs-dir "$dir/other" >"$dir/sinit2.out" 2>&1
check "init with another CA's certificate exits 1" "[ $? = 1 ]"
check "init with another CA's certificate says why" "grep -q \"not signed by this cluster's CA\" $dir/sinit2.out"
check "the node logs the refusals" "grep -q 'requires TLS' $sstore/logs/meridian.log && grep -q 'TLS handshake failed' $sstore/logs/meridian.log"
check "refused tools did not initialise the node" "[ ! -e $sstore/IDENTITY ] || ! grep -q cluster_id $sstore/IDENTITY"
"$bin" init --host "$srpc" --certs-dir "$certs" >"$dir/sinit3.out" 2>&1
check "init with the root client certificate exits 0" "[ $? = 0 ]"
check "secure init prints the cluster id" "grep -Eq 'cluster id [0-9a-f]{32}, node 1' $dir/sinit3.out"
# Rotation: a new node certificate, SIGHUP, and tools still get through;
# a broken replacement is refused and the node keeps serving.
"$bin" cert create-node 127.0.0.1 localhost 127.0.0.2 --certs-dir "$certs" --ca-key "$safe/ca.key" --overwrite >/dev/null 2>&1
check "cert create-node --overwrite exits 0" "[ $? = 0 ]"
kill -HUP "$SPID"
wait_for "grep -q 'TLS certificates reloaded' $sstore/logs/meridian.log"
check "SIGHUP reloads the certificates" "grep -q 'TLS certificates reloaded' $sstore/logs/meridian.log"
"$bin" init --host "$srpc" --certs-dir "$certs" >"$dir/sinit4.out" 2>&1
check "after the reload tools still connect" "grep -q 'already initialised' $dir/sinit4.out"
cp "$certs/client.root.key" "$certs/node.key"
kill -HUP "$SPID"
wait_for "grep -q 'certificate reload failed' $sstore/logs/meridian.log"
check "a broken reload is logged" "grep -q 'certificate reload failed.*does not belong' $sstore/logs/meridian.log"
"$bin" init --host "$srpc" --certs-dir "$certs" >"$dir/sinit5.out" 2>&1
check "after a broken reload the node serves with the old pair" "grep -q 'already initialised' $dir/sinit5.out"
# A node whose certificates are missing refuses to start, naming the file.
"$bin" start --store "$dir/nocerts" --listen 127.0.0.1:0 --certs-dir "$dir/empty" >"$dir/nocerts.out" 2>&1
check "start with missing certificates exits 1" "[ $? = 1 ]"
check "start with missing certificates names the file" "grep -q 'empty/ca.crt' $dir/nocerts.out"
kill -TERM "$SPID"
wait "$SPID"
check "secure node exits 0 on SIGTERM" "[ $? = 0 ]"

echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
