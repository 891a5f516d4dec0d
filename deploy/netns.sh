# shellcheck shell=bash
# Network namespaces for local test clusters (sourced by local-cluster.sh and
# multi-region.sh). Root and iproute2 only.
#
# One bridge PREFIXbr holds SUBNET.1/24 on the host side and has no uplink, so
# nothing reaches any other network. Node I gets namespace PREFIXnI with a
# veth (host end PREFIXvI in the bridge, namespace end eth0) holding
# SUBNET.(10+I). Every resource is recorded in the file RES ("link NAME" or
# "netns NAME") before it is made, so netns_teardown removes exactly what
# was made, also after a crash half-way, and is idempotent.

netns_name() { echo "${1}n$2"; } # netns_name PREFIX I
netns_addr() { echo "$1.$((10 + $2))"; } # netns_addr SUBNET I

# netns_bridge RES PREFIX SUBNET: the bridge (once).
netns_bridge() {
  local res=$1 prefix=$2 subnet=$3
  ip link show "${prefix}br" >/dev/null 2>&1 && return 0
  echo "link ${prefix}br" >>"$res"
  ip link add "${prefix}br" type bridge || { echo "netns: cannot create bridge ${prefix}br" >&2; return 1; }
  ip addr add "$subnet.1/24" dev "${prefix}br" && ip link set "${prefix}br" up ||
    { echo "netns: cannot configure ${prefix}br" >&2; return 1; }
}

# netns_node RES PREFIX SUBNET I: node I's namespace, wired into the bridge.
netns_node() {
  local res=$1 prefix=$2 subnet=$3 i=$4 ns
  ns=$(netns_name "$prefix" "$i")
  echo "netns $ns" >>"$res"
  ip netns add "$ns" || { echo "netns: cannot create namespace $ns" >&2; return 1; }
  ip netns exec "$ns" ip link set lo up
  echo "link ${prefix}v$i" >>"$res"
  ip link add "${prefix}v$i" type veth peer name eth0 netns "$ns" ||
    { echo "netns: cannot create veth ${prefix}v$i" >&2; return 1; }
  ip link set "${prefix}v$i" master "${prefix}br" up &&
    ip netns exec "$ns" ip addr add "$(netns_addr "$subnet" "$i")/24" dev eth0 &&
    ip netns exec "$ns" ip link set eth0 up &&
    ip netns exec "$ns" ip route add default via "$subnet.1" ||
    { echo "netns: cannot configure $ns" >&2; return 1; }
}

# netns_teardown RES: stops what still runs inside the recorded namespaces
# (SIGTERM, SIGKILL after 10 s; callers stop their processes by PID first,
# this catches one started but not recorded), then removes links and
# namespaces, newest first. A missing RES is fine.
netns_teardown() {
  local res=$1 kind name pid
  [ -e "$res" ] || return 0
  while read -r kind name; do
    [ "$kind" = netns ] || continue
    for pid in $(ip netns pids "$name" 2>/dev/null); do
      kill -TERM "$pid" 2>/dev/null
      wait_for 10 gone "$pid" || kill -KILL "$pid" 2>/dev/null
      wait_for 10 gone "$pid"
    done
  done <"$res"
  tac "$res" | while read -r kind name; do
    case $kind in
      link) ip link show "$name" >/dev/null 2>&1 && ip link del "$name" ;;
      netns) ip netns list | grep -qw "^$name" && ip netns del "$name" ;;
    esac
  done
  rm -f "$res"
}

# netns_free_subnet: a 10.X.Y prefix that no interface here uses (for
# clusters started side by side).
netns_free_subnet() {
  local x y
  for _ in $(seq 1 50); do
    x=$((100 + RANDOM % 100)); y=$((RANDOM % 250))
    ip -o addr show | grep -q " 10\.$x\.$y\." || { echo "10.$x.$y"; return 0; }
  done
  return 1
}
