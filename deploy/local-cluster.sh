#!/usr/bin/env bash
# A local Meridian cluster on loopback, for development, demos and tests.
#
#   local-cluster.sh start DIR [N]     start N nodes (default 3), init, wait for range 1 to have
#                                       min(N,3) voters; prints the nodes
#   local-cluster.sh add DIR [N]       start N more nodes (default 1) that join the running
#                                       cluster; returns once each has its node id
#   local-cluster.sh stop DIR          SIGTERM every node by PID (SIGKILL after 10 s)
#   local-cluster.sh kill DIR I        kill -9 node I (returns once it is gone)
#   local-cluster.sh restart DIR I     start node I again on its old ports
#   local-cluster.sh status DIR        one line per node: i pid state rpc http
#   local-cluster.sh leader DIR        the index of the node holding range 1's lease
#
# DIR/nodes has one line per node: "I PID RPC HTTP STORE". Every process this
# script starts is recorded there and stopped by PID. MERIDIAN_BIN overrides
# the binary; MERIDIAN_START_FLAGS adds flags to every `meridian start`;
# MERIDIAN_REGIONS="us-east us-west ..." puts node I in the I-th region
# (cycling; default: every node in region "local"); MERIDIAN_METRICS_TOKEN is
# sent to a secure cluster's /metrics, over HTTPS when MERIDIAN_HTTP_CA names
# the cluster's ca.crt.
#
# MERIDIAN_NETNS="PREFIX SUBNET" at `start` (root, iproute2; deploy/netns.sh)
# puts node I in network namespace PREFIXnI at SUBNET.(10+I), behind a bridge
# that holds SUBNET.1 on this side: faults below the process (packet filters
# in a namespace) then cut real TCP connections. DIR/netns remembers it for
# the other commands; `stop` removes the namespaces.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${MERIDIAN_BIN:-$here/../build/server/meridian}
# Local clusters run insecure (loopback only); a secure one passes --certs-dir here.
flags=${MERIDIAN_START_FLAGS:---insecure --clock-source static --static-uncertainty 1ms}
tool_flags=${MERIDIAN_TOOL_FLAGS:---insecure}

# A start or add that fails stops the nodes it started (by PID) before it
# exits: nothing of a failed start is left running.
started_pids=""
die() {
  echo "local-cluster: $*" >&2
  local p
  for p in $started_pids; do kill -TERM "$p" 2>/dev/null; done
  for p in $started_pids; do wait_for 10 gone "$p" || kill -KILL "$p" 2>/dev/null; done
  if [ -n "${starting:-}" ]; then # a failed start leaves no cluster behind
    netns_teardown "$dir/netns.res"
    rm -f "$dir/nodes"
  fi
  exit 1
}
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"
# shellcheck source=deploy/netns.sh
. "$here/netns.sh"

addr_of() { sed -n "s/^$2=//p" "$1/listen-addrs" 2>/dev/null; }
field() { awk -v i="$2" '$1==i {print $'"$3"'}' "$1/nodes"; }

region_of() { # region_of I: from MERIDIAN_REGIONS, cycling
  # shellcheck disable=SC2206
  local r=(${MERIDIAN_REGIONS:-local})
  echo "${r[$(( ($1 - 1) % ${#r[@]} ))]}"
}

# netns_of DIR I: node I's namespace ("" outside netns mode).
netns_of() { [ -s "$1/netns" ] && netns_name "$(cut -d' ' -f1 "$1/netns")" "$2"; }
# listen_of DIR I: where node I listens (rpc; http on the next port).
listen_of() {
  if [ -s "$1/netns" ]; then
    echo "$(netns_addr "$(cut -d' ' -f2 "$1/netns")" "$2"):26257"
  else
    echo 127.0.0.1:0
  fi
}
http_of() { local l; l=$(listen_of "$1" "$2"); [ "$l" = 127.0.0.1:0 ] && echo "$l" || echo "${l%:*}:8080"; }
# netns_up DIR FIRST LAST: namespaces for nodes FIRST..LAST (netns mode only).
netns_up() {
  [ -s "$1/netns" ] || return 0
  local prefix subnet i
  read -r prefix subnet <"$1/netns"
  netns_bridge "$1/netns.res" "$prefix" "$subnet" || die "cannot create the bridge"
  for i in $(seq "$2" "$3"); do
    netns_node "$1/netns.res" "$prefix" "$subnet" "$i" || die "cannot create node $i's namespace"
  done
}

start_node() { # start_node DIR I LISTEN HTTP [JOIN]
  local dir=$1 i=$2 listen=$3 http=$4 join=${5:-}
  local store=$dir/n$i ns pre=()
  mkdir -p "$store"
  rm -f "$store/listen-addrs"
  # `ip netns exec` execs the node in place, so $! is still the node's PID.
  ns=$(netns_of "$dir" "$i")
  [ -n "$ns" ] && pre=(ip netns exec "$ns")
  # shellcheck disable=SC2086
  "${pre[@]}" "$bin" start --store "$store" --listen "$listen" --http-listen "$http" \
    --locality "region=$(region_of "$i"),zone=z$i" ${join:+--join "$join"} $flags \
    >>"$dir/n$i.out" 2>&1 &
  local pid=$!
  started_pids="$started_pids $pid"
  wait_for 30 test -s "$store/listen-addrs" || die "node $i did not start (see $dir/n$i.out)"
  local rpc h
  rpc=$(addr_of "$store" rpc); h=$(addr_of "$store" http)
  grep -v "^$i " "$dir/nodes" 2>/dev/null >"$dir/nodes.tmp" || true
  echo "$i $pid $rpc $h $store" >>"$dir/nodes.tmp"
  sort -n "$dir/nodes.tmp" >"$dir/nodes"; rm -f "$dir/nodes.tmp"
}

leader() {
  local dir=$1 i h
  while read -r i _ _ h _; do
    [ "$(metric "$h" 'meridian_range_leaseholder{range="1"}')" = 1 ] && { echo "$i"; return 0; }
  done <"$dir/nodes"
  return 1
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || die "usage: $0 start|add|stop|kill|restart|status|leader DIR [ARG]"
case "$cmd" in
start)
  n=${3:-3}
  [ -x "$bin" ] || die "no binary at $bin (build first, or set MERIDIAN_BIN)"
  [ -e "$dir/nodes" ] && die "$dir already holds a cluster (stop it, or pick another DIR)"
  mkdir -p "$dir"; : >"$dir/nodes"
  starting=1
  if [ -n "${MERIDIAN_NETNS:-}" ]; then
    echo "$MERIDIAN_NETNS" >"$dir/netns"
    netns_up "$dir" 1 "$n"
  fi
  start_node "$dir" 1 "$(listen_of "$dir" 1)" "$(http_of "$dir" 1)"
  seed=$(field "$dir" 1 3)
  # shellcheck disable=SC2086
  "$bin" init --host "$seed" $tool_flags >"$dir/init.out" 2>&1 || die "init failed: $(cat "$dir/init.out")"
  for i in $(seq 2 "$n"); do start_node "$dir" "$i" "$(listen_of "$dir" "$i")" "$(http_of "$dir" "$i")" "$seed"; done
  want=$((n < 3 ? n : 3))
  wait_for 60 voters_ok "$dir/nodes" "$want" || die "range 1 did not reach $want voters"
  cat "$dir/nodes"
  ;;
add)
  [ -e "$dir/nodes" ] || die "no cluster in $dir (start one first)"
  for _ in $(seq 1 "${3:-1}"); do
    i=$(( $(awk 'END {print $1}' "$dir/nodes") + 1 ))
    # Every node ever started is a seed: joining works while any one is up.
    seeds=$(awk '{printf "%s%s", s, $3; s=","}' "$dir/nodes")
    netns_up "$dir" "$i" "$i"
    start_node "$dir" "$i" "$(listen_of "$dir" "$i")" "$(http_of "$dir" "$i")" "$seeds"
    h=$(field "$dir" "$i" 4)
    joined() { v=$(metric "$h" meridian_node_id); [ -n "$v" ] && [ "$v" != 0 ]; }
    wait_for 60 joined || die "node $i did not join (see $dir/n$i.out)"
    grep "^$i " "$dir/nodes"
  done
  ;;
stop)
  [ -e "$dir/nodes" ] || { netns_teardown "$dir/netns.res"; exit 0; }
  while read -r i pid _; do kill -TERM "$pid" 2>/dev/null; done <"$dir/nodes"
  while read -r i pid _ _ store; do
    gone "$pid" && continue
    wait_for 10 gone "$pid" && continue
    echo "local-cluster: node $i (pid $pid) did not stop within 10 s of SIGTERM: SIGKILL" >&2
    [ -n "${MERIDIAN_KEEP_SLOW_LOGS:-}" ] && cp "$store/logs/meridian.log" "$MERIDIAN_KEEP_SLOW_LOGS/slow-$pid.log"
    kill -KILL "$pid" 2>/dev/null
    # A loaded machine (sanitizer builds, parallel tests) can take a while to reap.
    wait_for 30 gone "$pid"
  done <"$dir/nodes"
  netns_teardown "$dir/netns.res"
  rm -f "$dir/nodes"
  ;;
kill)
  pid=$(field "$dir" "$3" 2); [ -n "$pid" ] || die "no node $3"
  kill -KILL "$pid"
  wait_for 10 gone "$pid" || die "node $3 (pid $pid) survived SIGKILL"
  ;;
restart)
  i=$3; pid=$(field "$dir" "$i" 2); [ -n "$pid" ] || die "no node $i"
  gone "$pid" || die "node $i is running"
  start_node "$dir" "$i" "$(field "$dir" "$i" 3)" "$(field "$dir" "$i" 4)"
  ;;
status)
  while read -r i pid rpc h _; do
    st=up; gone "$pid" && st=down # a zombie too (ps shows ZN under nice)
    echo "$i $pid $st $rpc $h"
  done <"$dir/nodes"
  ;;
leader) leader "$dir" ;;
*) die "unknown command $cmd" ;;
esac
