#!/usr/bin/env bash
# A multi-region Meridian test deployment on one machine (docs/deploy.md).
#
#   multi-region.sh up DIR --nodes N --regions "us-east,us-west,eu-west"
#       [--latency "us-east:us-west:30ms,us-east:eu-west:40ms,..."]
#       [--mode netns|loopback|auto] [--subnet 10.X.Y] [--leader-region R]
#   multi-region.sh down DIR       stop everything `up` started, remove what it made
#   multi-region.sh status DIR     mode, time, one line per node
#   multi-region.sh sql DIR [ARGS] the SQL shell on the deployment's gateways
#
# Node I lives in region I (cycling through --regions) with
# --locality region=R,zone=R-a|b|c (the zone letter counts the region's nodes).
#
# netns mode (root, iproute2): one network namespace per node, each with a
# veth into one bridge that holds SUBNET.1/24 on the host side; node I listens
# on SUBNET.(10+I). The subnet is private and the bridge has no uplink, so
# this traffic never leaves the machine. loopback mode: every node on
# 127.0.0.1 with ports from the kernel.
#
# Latency: the one-way latency per region pair (both directions). tc netem on
# each node's veth where the kernel has sch_netem; else (and always in
# loopback mode) the rpc layer's latency matrix, set on every node with
# `meridian debug faults` (nodes run --testing-fault-admin). The rpc matrix
# delays node-to-node messages only, not clients.
#
# Time: one chrony master (deploy/chrony/master.conf.in) and one chronyd per
# region syncing from it (node.conf.in), all `chronyd -x` (the system clock is
# never touched). In netns mode a region's chronyd runs in the namespace of
# its first node; every node of the region reads it through its unix socket
# (--clock-source chrony --chrony-socket). Without chronyd (or root) in
# loopback mode the nodes fall back to --clock-source static and say so.
#
# Bookkeeping, so `down` undoes exactly what `up` did, also after a crash:
# DIR/resources lists every namespace and link, written *before* each is
# created; DIR/procs lists every process as "KIND NAME PID"; DIR/nodes is
# "I PID RPC HTTP STORE REGION NETNS" (the first five fields as
# local-cluster.sh). Names carry a prefix unique to DIR (DIR/config).
#
# Environment: MERIDIAN_BIN (default build/server/meridian), CHRONYD.
set -u
here=$(cd "$(dirname "$0")" && pwd)
bin=${MERIDIAN_BIN:-$here/../build/server/meridian}
CHRONYD=${CHRONYD:-$(command -v chronyd || echo /usr/sbin/chronyd)}

die() { echo "multi-region: $*" >&2; exit 1; }
usage() {
  echo "usage: $0 up DIR --nodes N --regions R1,R2,... [--latency R1:R2:DUR,...]" \
    "[--mode netns|loopback|auto] [--subnet 10.X.Y] [--leader-region R]" >&2
  echo "       $0 down|status DIR;  $0 sql DIR [meridian sql flags]" >&2
  exit 2
}
say() { echo "multi-region: $*" >&2; }
# shellcheck source=deploy/lib.sh
. "$here/lib.sh"
# shellcheck source=deploy/netns.sh
. "$here/netns.sh"

alive() { ! gone "$1"; }
# ours PID: the process still runs a command line that names DIR, so a
# recycled PID is never killed.
ours() { alive "$1" && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$dir"; }
cfg() { sed -n "s/^$1=//p" "$dir/config" 2>/dev/null; }
in_ns() { # in_ns NS CMD...: runs CMD in namespace NS ("" = here)
  local ns=$1; shift
  if [ -n "$ns" ]; then ip netns exec "$ns" "$@"; else "$@"; fi
}

free_udp_ports() { # free_udp_ports N: N free UDP ports on loopback
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

valid_duration() { [[ $1 =~ ^[0-9]+(us|ms|s)$ ]]; }
valid_label() { [[ $1 =~ ^[a-z0-9-]{1,20}$ ]]; }

# ---- time ----

chrony_conf() { # chrony_conf TEMPLATE DIRVAR OUT ADDR ALLOW MPORT MCMD NCMD
  sed -e "s|@DIR@|$2|g" -e "s|@MASTER_ADDR@|$4|g" -e "s|@MASTER_ALLOW@|$5|g" \
    -e "s|@MASTER_PORT@|$6|g" -e "s|@MASTER_CMDPORT@|$7|g" -e "s|@NODE_CMDPORT@|$8|g" \
    "$here/chrony/$1" >"$3"
}

start_chronyd() { # start_chronyd NAME NS CONFDIR: chronyd -x on CONFDIR/chronyd.conf
  local name=$1 ns=$2 d=$3 pid
  chmod 0700 "$d" # chronyd wants its socket folder private
  in_ns "$ns" "$CHRONYD" -x -u "$(id -un)" -f "$d/chronyd.conf" -l "$d/chronyd.log" ||
    die "chronyd $name failed to start (see $d/chronyd.log)"
  wait_for 10 test -s "$d/chronyd.pid" || die "chronyd $name wrote no pidfile"
  pid=$(cat "$d/chronyd.pid")
  echo "chronyd $name $pid" >>"$dir/procs"
}

synced() { # synced SOCKET: chronyd there tracks a source with a normal leap status
  local t
  t=$(chronyc -c -h "$1" tracking 2>/dev/null) || return 1
  [ "$(echo "$t" | cut -d, -f1)" != 00000000 ] && [ "$(echo "$t" | awk -F, '{print $NF}')" = Normal ]
}

start_time() { # start_time ADDR ALLOW: the master and one chronyd per region
  local maddr=$1 allow=$2 ports mport mcmd r ns
  ports=$(free_udp_ports $((2 + nregions)))
  # shellcheck disable=SC2086
  set -- $ports
  mport=$1 mcmd=$2; shift 2
  mkdir -p "$dir/chrony/master"
  chrony_conf master.conf.in "$dir/chrony" "$dir/chrony/master/chronyd.conf" \
    "$maddr" "$allow" "$mport" "$mcmd" 0
  start_chronyd master "" "$dir/chrony/master"
  for r in "${regions[@]}"; do
    ns=$(region_ns "$r")
    [ "$(region_count "$r")" -gt 0 ] || continue
    mkdir -p "$dir/chrony/$r/node"
    chrony_conf node.conf.in "$dir/chrony/$r" "$dir/chrony/$r/node/chronyd.conf" \
      "$maddr" "$allow" "$mport" "$mcmd" "$1"
    shift
    start_chronyd "$r" "$ns" "$dir/chrony/$r/node"
  done
  for r in "${regions[@]}"; do
    [ "$(region_count "$r")" -gt 0 ] || continue
    wait_for 30 synced "$dir/chrony/$r/node/chronyd.sock" ||
      die "the chronyd of region $r did not synchronise with the master (see $dir/chrony/$r/node/chronyd.log)"
  done
  echo "time=chrony" >>"$dir/config"
}

# ---- nodes ----

region_of() { echo "${regions[$(( ($1 - 1) % nregions ))]}"; }
region_count() { # nodes in region R
  local i c=0
  for i in $(seq 1 "$nodes"); do [ "$(region_of "$i")" = "$1" ] && c=$((c + 1)); done
  echo "$c"
}
zone_of() { # R-a, R-b, ...: the node's rank within its region
  local letters=abcdefghijklmnopqrstuvwxyz
  echo "$(region_of "$1")-${letters:$(( ($1 - 1) / nregions % 26 )):1}"
}
ns_of() { [ "$mode" = netns ] && netns_name "$prefix" "$1"; }
region_ns() { # the namespace of the region's first node ("" in loopback mode)
  local i
  [ "$mode" = netns ] || return 0
  for i in $(seq 1 "$nodes"); do
    [ "$(region_of "$i")" = "$1" ] && { ns_of "$i"; return 0; }
  done
}

start_node() { # start_node I JOIN
  local i=$1 join=$2 r ns listen http store pid rpc h clock
  r=$(region_of "$i"); ns=$(ns_of "$i"); store=$dir/n$i
  if [ "$mode" = netns ]; then
    listen=$subnet.$((10 + i)):26257; http=$subnet.$((10 + i)):8080
  else
    listen=127.0.0.1:0; http=127.0.0.1:0
  fi
  if [ "$(cfg time)" = chrony ]; then
    clock="--clock-source chrony --chrony-socket $dir/chrony/$r/node/chronyd.sock"
  else
    clock="--clock-source static --static-uncertainty 1ms"
  fi
  mkdir -p "$store"; rm -f "$store/listen-addrs"
  # Not through in_ns: a function would run in a forked subshell and $!
  # would name the subshell; `ip netns exec` execs the node in place.
  local pre=()
  [ -n "$ns" ] && pre=(ip netns exec "$ns")
  # shellcheck disable=SC2086
  "${pre[@]}" "$bin" start --store "$store" --listen "$listen" --http-listen "$http" \
    --locality "region=$r,zone=$(zone_of "$i")" ${join:+--join "$join"} \
    --insecure --testing-fault-admin $clock >>"$dir/n$i.out" 2>&1 &
  pid=$!
  echo "node n$i $pid" >>"$dir/procs"
  # Done when the node wrote its addresses, or exited (no point waiting).
  wait_for 30 eval "test -s $store/listen-addrs || gone $pid"
  test -s "$store/listen-addrs" ||
    die "node $i did not start: $(tail -n 3 "$dir/n$i.out" 2>/dev/null) (see $dir/n$i.out)"
  rpc=$(sed -n 's/^rpc=//p' "$store/listen-addrs"); h=$(sed -n 's/^http=//p' "$store/listen-addrs")
  echo "$i $pid $rpc $h $store $r ${ns:--}" >>"$dir/nodes"
}

# ---- network ----

netem_works() { # can this kernel delay packets? probed on the first veth
  tc qdisc add dev "${prefix}v1" root netem delay 1ms 2>/dev/null || return 1
  tc qdisc del dev "${prefix}v1" root 2>/dev/null
  return 0
}

make_network() {
  local i
  netns_bridge "$dir/resources" "$prefix" "$subnet" || die "cannot create bridge ${prefix}br"
  for i in $(seq 1 "$nodes"); do
    netns_node "$dir/resources" "$prefix" "$subnet" "$i" || die "cannot create namespace $(ns_of "$i")"
  done
}

# netem: on node I's namespace side, a prio qdisc with one netem band per
# remote region, chosen by destination address. Each side delays its own
# sends by the one-way latency, so a round trip pays it twice.
netem_latency() {
  local i j ns band r rr ms
  for i in $(seq 1 "$nodes"); do
    ns=$(ns_of "$i"); r=$(region_of "$i")
    in_ns "$ns" tc qdisc add dev eth0 root handle 1: prio bands 16 priomap 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 ||
      return 1
    band=1
    for j in $(seq 1 "$nodes"); do
      rr=$(region_of "$j"); ms=$(pair_latency "$r" "$rr")
      [ -n "$ms" ] || continue
      band=$((band + 1)); [ "$band" -le 16 ] || return 1
      in_ns "$ns" tc qdisc add dev eth0 parent "1:$band" handle "$((band * 10)):" netem delay "$ms" || return 1
      in_ns "$ns" tc filter add dev eth0 parent 1: protocol ip u32 \
        match ip dst "$subnet.$((10 + j))/32" flowid "1:$band" || return 1
    done
  done
}

pair_latency() { # pair_latency A B: the configured one-way latency, or nothing
  local p a b d
  for p in ${latency//,/ }; do
    IFS=: read -r a b d <<<"$p"
    if { [ "$a" = "$1" ] && [ "$b" = "$2" ]; } || { [ "$a" = "$2" ] && [ "$b" = "$1" ]; }; then
      echo "$d"; return 0
    fi
  done
}

rpc_latency() {
  local spec="" p h
  for p in ${latency//,/ }; do spec="${spec:+$spec;}latency=$p"; done
  for h in $(awk '{print $3}' "$dir/nodes"); do
    "$bin" debug faults --host "$h" --insecure --spec "$spec" >/dev/null ||
      die "cannot set the latency matrix on $h"
  done
}

# ---- commands ----

load_config() {
  [ -e "$dir/config" ] || die "$dir holds no deployment"
  mode=$(cfg mode); prefix=$(cfg prefix); subnet=$(cfg subnet); nodes=$(cfg nodes)
  IFS=, read -r -a regions <<<"$(cfg regions)"; nregions=${#regions[@]}
  latency=$(cfg latency)
}

cmd_up() {
  nodes=3 regions_s="" latency="" mode=auto subnet="" leader=""
  while [ $# -gt 0 ]; do
    [ $# -ge 2 ] || usage
    case $1 in
      --nodes) nodes=$2 ;;
      --regions) regions_s=$2 ;;
      --latency) latency=$2 ;;
      --mode) mode=$2 ;;
      --subnet) subnet=$2 ;;
      --leader-region) leader=$2 ;;
      *) usage ;;
    esac
    shift 2
  done
  [[ $nodes =~ ^[0-9]+$ ]] && [ "$nodes" -ge 1 ] && [ "$nodes" -le 200 ] || die "--nodes takes 1..200"
  [ -n "$regions_s" ] || die "--regions is required (e.g. us-east,us-west,eu-west)"
  IFS=, read -r -a regions <<<"$regions_s"; nregions=${#regions[@]}
  local r a b d p
  for r in "${regions[@]}"; do valid_label "$r" || die "bad region '$r': 1-20 characters of a-z, 0-9, -"; done
  [ "$(printf '%s\n' "${regions[@]}" | sort | uniq -d)" = "" ] || die "--regions names a region twice"
  for p in ${latency//,/ }; do
    IFS=: read -r a b d <<<"$p"
    [[ " ${regions[*]} " == *" $a "* ]] && [[ " ${regions[*]} " == *" $b "* ]] && [ "$a" != "$b" ] ||
      die "bad --latency pair '$p': want R1:R2:DURATION with two different regions of --regions"
    valid_duration "$d" || die "bad --latency duration '$d' in '$p': want e.g. 40ms, 500us, 1s"
  done
  case $mode in netns | loopback | auto) ;; *) die "--mode takes netns, loopback or auto" ;; esac
  [ -z "$subnet" ] || [[ $subnet =~ ^10\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
    die "--subnet takes the first three octets of a private 10.x.y.0/24, e.g. 10.77.3"
  if [ -n "$leader" ] && ! [[ " ${regions[*]} " == *" $leader "* ]]; then
    die "--leader-region $leader is not one of --regions"
  fi
  [ -x "$bin" ] || die "no binary at $bin (build first, or set MERIDIAN_BIN)"
  [ -e "$dir/config" ] && die "$dir already holds a deployment (run: $0 down $dir)"
  # down keeps the stores for a post-mortem; a new deployment on them would
  # find node 1's store already initialised.
  compgen -G "$dir/n[0-9]*/" >/dev/null &&
    die "$dir holds the stores and logs of an earlier deployment (down keeps them):" \
      "remove it (rm -rf $dir) or pick another DIR"
  mkdir -p "$dir" || die "cannot create $dir"
  dir=$(cd "$dir" && pwd)
  prefix=mr$(od -An -N2 -tx2 /dev/urandom | tr -d ' ')
  if [ "$mode" != loopback ]; then
    if [ "$(id -u)" = 0 ] && ip netns add "${prefix}probe" 2>/dev/null; then
      ip netns del "${prefix}probe"
      mode=netns
    elif [ "$mode" = netns ]; then
      die "netns mode needs root and network namespaces (ip netns add failed)"
    else
      mode=loopback
    fi
  fi
  if [ "$mode" = netns ] && [ -z "$subnet" ]; then
    local x
    for x in $(seq 0 254); do
      ip -4 addr show | grep -qF " 10.77.$x." || { subnet=10.77.$x; break; }
    done
    [ -n "$subnet" ] || die "no free 10.77.x.0/24 subnet"
  fi
  : >"$dir/resources"; : >"$dir/procs"; : >"$dir/nodes"
  {
    echo "mode=$mode"; echo "prefix=$prefix"; echo "subnet=$subnet"; echo "nodes=$nodes"
    echo "regions=$regions_s"; echo "latency=$latency"; echo "leader_region=$leader"
  } >"$dir/config"
  # From here on a failure undoes everything.
  trap 'say "up failed: cleaning up"; cmd_down >/dev/null 2>&1' EXIT
  say "mode $mode${subnet:+, subnet $subnet.0/24}, names prefixed $prefix"
  [ "$mode" = netns ] && make_network

  if [ "$(id -u)" = 0 ] && [ -x "$CHRONYD" ]; then
    if [ "$mode" = netns ]; then start_time "$subnet.1" "$subnet.0/24"; else start_time 127.0.0.1 127.0.0.1; fi
    say "time: chrony master + one chronyd per region, nodes use --clock-source chrony"
  elif [ "$mode" = loopback ]; then
    echo "time=static" >>"$dir/config"
    say "time: chronyd missing or not root: nodes use --clock-source static --static-uncertainty 1ms" \
      "(an assumed bound, not a measured one)"
  else
    die "netns mode needs chronyd ($CHRONYD) for the regions' clocks"
  fi

  start_node 1 ""
  local seed
  seed=$(awk '$1==1 {print $3}' "$dir/nodes")
  "$bin" init --host "$seed" --insecure >"$dir/init.out" 2>&1 || die "init failed: $(cat "$dir/init.out")"
  for i in $(seq 2 "$nodes"); do start_node "$i" "$seed"; done
  local want=$((nodes < 3 ? nodes : 3))
  wait_for 60 voters_ok "$dir/nodes" "$want" || die "range 1 did not reach $want voters"

  if [ -n "$latency" ]; then
    if [ "$mode" = netns ] && netem_works && netem_latency; then
      echo "latency_by=netem" >>"$dir/config"
      say "latency: tc netem on each namespace's eth0"
    else
      if [ "$mode" = netns ]; then
        say "latency: this kernel has no usable tc netem (sch_netem); using the rpc latency matrix"
        local i; for i in $(seq 1 "$nodes"); do in_ns "$(ns_of "$i")" tc qdisc del dev eth0 root 2>/dev/null; done
      fi
      rpc_latency
      echo "latency_by=rpc" >>"$dir/config"
      say "latency: rpc latency matrix (meridian debug faults) on every node"
    fi
  fi
  if [ -n "$leader" ]; then
    # A placement policy over every user key (0x01 up): the placement driver
    # moves each range's lease to a voter in the region while one is live.
    "$bin" debug policy set leader-region --lead-region "$leader" --host "$seed" --insecure \
      >"$dir/policy.out" 2>&1 || die "--leader-region: $(cat "$dir/policy.out")"
    say "--leader-region $leader: placement policy \"leader-region\" over all user keys" \
      "(leases move there; \`meridian debug policy list\`)"
  fi
  trap - EXIT
  echo "up" >"$dir/state"
  cmd_status
}

stop_pid() { # stop_pid PID: SIGTERM, SIGKILL after 10 s
  ours "$1" || return 0
  kill -TERM "$1" 2>/dev/null
  wait_for 10 eval "! ours $1" && return 0
  say "pid $1 did not stop within 10 s of SIGTERM: SIGKILL"
  kill -KILL "$1" 2>/dev/null
  wait_for 30 eval "! alive $1" || say "pid $1 survived SIGKILL for 30 s (stuck in the kernel?)"
}

cmd_down() {
  [ -e "$dir/config" ] || return 0
  prefix=$(cfg prefix)
  local kind name pid
  # Nodes first (they read the chronyds), then the chronyds, newest first.
  if [ -e "$dir/procs" ]; then
    for kind in node chronyd; do
      tac "$dir/procs" | while read -r k name pid; do
        [ "$k" = "$kind" ] && stop_pid "$pid"
      done
    done
  fi
  # Anything still inside our namespaces was started by us (a crash between
  # starting and recording it): netns_teardown stops it by PID too.
  netns_teardown "$dir/resources"
  rm -f "$dir/state" "$dir/config" "$dir/procs" "$dir/resources" "$dir/nodes"
  echo "down: $dir (logs and stores kept)"
}

cmd_status() {
  load_config
  echo "mode: $mode  time: $(cfg time)  latency: ${latency:-none}${latency:+ by $(cfg latency_by)}"
  [ -n "$(cfg leader_region)" ] && echo "leader region: $(cfg leader_region) (policy leader-region)"
  local k name pid st
  while read -r k name pid; do
    [ "$k" = chronyd ] || continue
    st=down; ours "$pid" && st=up
    echo "chronyd $name pid $pid $st"
  done <"$dir/procs"
  local i rpc h store r ns
  while read -r i pid rpc h store r ns; do
    st=down; ours "$pid" && st=up
    echo "node $i pid $pid $st rpc $rpc http $h region $r netns $ns"
  done <"$dir/nodes"
}

cmd_sql() {
  load_config
  local hosts
  hosts=$(awk '{print $3}' "$dir/nodes" | paste -sd,)
  exec "$bin" sql --host "$hosts" "$@"
}

cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || usage
shift 2
case $cmd in
  up) cmd_up "$@" ;;
  down) [ -d "$dir" ] && dir=$(cd "$dir" && pwd); cmd_down ;;
  status) dir=$(cd "$dir" && pwd) && cmd_status ;;
  sql) dir=$(cd "$dir" && pwd) && cmd_sql "$@" ;;
  *) usage ;;
esac
