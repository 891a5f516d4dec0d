#!/usr/bin/env bash
# Follower-read scaling with one "machine" per node (docs/transactions.md §8):
# a 3-node local cluster (deploy/local-cluster.sh) whose node processes each
# run in their own CPU cgroup with a quota, while the load generator (`meridian
# bench txn-reads`) runs unrestricted. On a small machine three nodes and the
# client share the cores, so the leaseholder alone already gets most of the
# CPU and spreading reads over the replicas cannot show; the quotas emulate
# three separate machines. The bench's phases: bounded-staleness snapshot
# reads with each client thread's first host its own replica ("replicas"),
# then every read sent to the range's leaseholder ("leaseholder"); the
# script prints both figures, the ratio, and per phase each node's CPU use and
# how often its quota throttled it (a node throttled in most periods is the
# bottleneck; if none is, the client is and the ratio means little).
#
#   bench/follower-reads.sh [--quota CORES] [--duration D] [--concurrency C]
#                           [--keys N] [--svg FILE]
#
# --quota: CPU per node, in cores (default 0.1; cgroup v1 cpu.cfs_quota_us or
# v2 cpu.max, whichever is mounted). Without write access to a cgroup
# hierarchy it says so and runs unrestricted. Load-based splitting is turned
# off (range.split_qps) so the read keys stay in one range with one
# leaseholder. The cgroups are removed and every node is stopped by PID at the
# end, also on error or Ctrl-C. MERIDIAN_BIN overrides the binary;
# MERIDIAN_CGROUP_ROOT=DIR looks for the hierarchy there instead of
# /sys/fs/cgroup (a directory without one: the unrestricted path).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
bin=${MERIDIAN_BIN:-$here/build/server/meridian}
lc=$here/deploy/local-cluster.sh
quota=0.1 duration=5s conc=16 keys=1000 svg=""
usage() {
  echo "usage: $0 [--quota CORES] [--duration D] [--concurrency C] [--keys N] [--svg FILE]" >&2
  exit 2
}
while [ $# -gt 0 ]; do
  case "$1" in
  --quota) quota=${2:-} ;;
  --duration) duration=${2:-} ;;
  --concurrency) conc=${2:-} ;;
  --keys) keys=${2:-} ;;
  --svg) svg=${2:-} ;;
  *) usage ;;
  esac
  [ $# -ge 2 ] || usage
  shift 2
done
# The quota in µs per 100 ms period: 0.01 to 8 cores.
period=100000
qus=$(awk -v q="$quota" 'BEGIN { if (q !~ /^[0-9.]+$/ || q < 0.01 || q > 8) exit 1; printf "%d", q * 100000 }') ||
  { echo "follower-reads: --quota wants cores between 0.01 and 8, got '$quota'" >&2; exit 2; }
[ -x "$bin" ] || { echo "follower-reads: no binary at $bin (build first, or set MERIDIAN_BIN)" >&2; exit 1; }

# shellcheck source=deploy/lib.sh
. "$here/deploy/lib.sh"

dir=$(mktemp -d /tmp/meridian-fr-XXXXXX)
cgroups=() # created here, removed at the end
bpid=""
cg_kind="" cg_root=""
cleanup() {
  [ -n "$bpid" ] && kill "$bpid" 2>/dev/null && wait "$bpid" 2>/dev/null
  MERIDIAN_BIN=$bin bash "$lc" stop "$dir" >/dev/null 2>&1
  local cg
  for cg in "${cgroups[@]}"; do
    # Empty once the nodes are gone; anything left (a straggler) goes back to the root first.
    if [ -d "$cg" ] && ! rmdir "$cg" 2>/dev/null; then
      while read -r p; do echo "$p" >"$cg_root/cgroup.procs"; done <"$cg/cgroup.procs" 2>/dev/null
      rmdir "$cg" 2>/dev/null || echo "follower-reads: could not remove $cg" >&2
    fi
    [ -d "$cg" ] || echo "cgroup removed: $cg"
  done
  rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Which hierarchy: cgroup v2 mounted at /sys/fs/cgroup (cpu.max), else the v1
# cpu controller (cpu.cfs_quota_us).
sys=${MERIDIAN_CGROUP_ROOT:-/sys/fs/cgroup}
if [ -f "$sys/cgroup.controllers" ]; then
  cg_kind=v2 cg_root=$sys
  # Children get the cpu controller only if the root hands it down.
  grep -qw cpu "$cg_root/cgroup.subtree_control" 2>/dev/null ||
    echo +cpu >"$cg_root/cgroup.subtree_control" 2>/dev/null
elif [ -f "$sys/cpu/cpu.cfs_quota_us" ]; then
  cg_kind=v1 cg_root=$sys/cpu
fi

make_cgroup() { # make_cgroup NAME: sets cg to its path; false without write access
  cg=$cg_root/$1
  [ -n "$cg_kind" ] && mkdir "$cg" 2>/dev/null || return 1
  cgroups+=("$cg")
  if [ "$cg_kind" = v2 ]; then
    echo "$qus $period" >"$cg/cpu.max" 2>/dev/null
  else
    echo "$period" >"$cg/cpu.cfs_period_us" 2>/dev/null &&
      echo "$qus" >"$cg/cpu.cfs_quota_us" 2>/dev/null
  fi
}

MERIDIAN_BIN=$bin bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 ||
  { cat "$dir/start.out"; exit 1; }
hosts=$(awk '{print $3}' "$dir/nodes" | paste -sd,)
first=$(awk 'NR==1 {print $3}' "$dir/nodes")

limited=1
declare -A cg_of
while read -r i pid _; do
  if ! make_cgroup "meridian-fr-$$-n$i" || ! echo "$pid" >"$cg/cgroup.procs" 2>/dev/null ||
    ! grep -qx "$pid" "$cg/cgroup.procs"; then
    limited=0
    break
  fi
  cg_of[$i]=$cg
  echo "node $i (pid $pid) in $cg"
done <"$dir/nodes"
if [ "$limited" = 1 ]; then
  echo "cgroup $cg_kind: quota $quota core per node ($qus µs per $period µs); the load generator is unrestricted"
else
  echo "follower-reads: no write access to a cgroup cpu hierarchy${cg_kind:+ ($cg_kind at $cg_root)}:" \
    "running UNRESTRICTED (every node shares every core; the ratio cannot show scaling)"
fi

# One range, one leaseholder: no load split of the bench's keys.
"$bin" debug settings set range.split_qps 1e12 --insecure --host "$first" --timeout 60s >/dev/null ||
  { echo "follower-reads: could not turn load splits off"; exit 1; }

ticks=$(getconf CLK_TCK)
cpu_of() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; } # user+sys ticks
throttled_of() { # periods throttled so far (cpu.stat)
  [ -n "${cg_of[$1]:-}" ] && awk '$1=="nr_throttled" {print $2}' "${cg_of[$1]}/cpu.stat" || echo 0
}
periods_of() {
  [ -n "${cg_of[$1]:-}" ] && awk '$1=="nr_periods" {print $2}' "${cg_of[$1]}/cpu.stat" || echo 0
}
declare -A snap
take() { # take NAME: each node's and the client's CPU ticks and throttle counters, and the time
  local i pid
  snap[$1,t]=$(date +%s%N)
  snap[$1,c]=$(cpu_of "$bpid")
  while read -r i pid _; do
    snap[$1,$i]=$(cpu_of "$pid") snap[$1,thr$i]=$(throttled_of "$i") snap[$1,per$i]=$(periods_of "$i")
  done <"$dir/nodes"
}
report() { # report LABEL FROM TO: CPU in cores over the interval, throttled % of periods
  local line i pid secs
  secs=$(awk -v a="${snap[$2,t]}" -v b="${snap[$3,t]}" 'BEGIN {print (b - a) / 1e9}')
  line=$(printf '%-12s' "$1")
  while read -r i pid _; do
    line+=$(awk -v a="${snap[$2,$i]}" -v b="${snap[$3,$i]}" -v s="$secs" -v hz="$ticks" \
      -v ta="${snap[$2,thr$i]}" -v tb="${snap[$3,thr$i]}" -v pa="${snap[$2,per$i]}" -v pb="${snap[$3,per$i]}" \
      -v i="$i" 'BEGIN { p = pb - pa; t = p > 0 ? 100 * (tb - ta) / p : 0
        printf "  n%s %.2f cores %3.0f%% throttled", i, (b - a) / hz / s, t }')
  done <"$dir/nodes"
  # The client's figure is lost once it has exited (its last phase).
  line+=$(awk -v a="${snap[$2,c]}" -v b="${snap[$3,c]}" -v s="$secs" -v hz="$ticks" \
    'BEGIN { if (b > 0) printf "  client %.2f cores", (b - a) / hz / s; else printf "  client n/a" }')
  echo "$line"
}

svgflag=()
[ -n "$svg" ] && svgflag=(--svg "$svg")
"$bin" bench txn-reads --insecure --host "$hosts" --concurrency "$conc" --duration "$duration" \
  --keys "$keys" "${svgflag[@]}" >"$dir/bench.out" 2>&1 &
bpid=$!
# Phase boundaries from the bench's output: the header comes once the keys are
# written and served by every host, each phase's line at its end (a 0.1 s poll).
printed=0
flush() { # prints the bench's new lines
  local n
  n=$(wc -l <"$dir/bench.out")
  [ "$n" -gt "$printed" ] && sed -n "$((printed + 1)),${n}p" "$dir/bench.out"
  printed=$n
}
until_mark() { # until_mark PATTERN: true once the bench printed it, false if it ended first
  flush
  grep -q "$1" "$dir/bench.out" && return 0
  gone "$bpid" && { flush; grep -q "$1" "$dir/bench.out"; return; }
  return 2
}
ok=1
for mark in "^bench txn-reads:" "^replicas " "^leaseholder "; do
  # A hang guard only (the keys' warm-up, then one phase each): polled every 0.1 s.
  for _ in $(seq 1 6000); do
    until_mark "$mark"
    r=$?
    [ "$r" = 2 ] || break
    sleep 0.1
  done
  [ "$r" = 0 ] || { ok=0; break; }
  case "$mark" in
  "^bench"*) take start ;;
  "^replicas"*) take mid ;;
  *) take end ;;
  esac
done
wait "$bpid"
brc=$?
bpid=""
flush
if [ "$ok" != 1 ] || [ "$brc" != 0 ]; then
  echo "follower-reads: the bench failed (exit $brc)"
  exit 1
fi

echo "CPU per phase (cores used; % of quota periods in which the quota throttled the node):"
report replicas start mid
report leaseholder mid end
rep=$(awk '/^replicas / {print $2}' "$dir/bench.out")
lead=$(awk '/^leaseholder / {print $2}' "$dir/bench.out")
ratio=$(awk -v a="$rep" -v b="$lead" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
mode="bounded staleness (10s)"
if [ "$limited" = 1 ]; then lim="quota $quota core per node"; else lim="UNRESTRICTED"; fi
echo "result: $mode snapshot reads, $lim, concurrency $conc, $duration per phase:" \
  "3 replicas $rep reads/s, leaseholder alone $lead reads/s, ratio ${ratio}x"
