#!/usr/bin/env bash
# The key-value benchmark of docs/node.md ("Performance") in one command: a
# 3-node loopback cluster whose clocks come from a local chrony pair (a time
# master and a chronyd syncing from it, deploy/chrony/chrony-pair.sh: the
# uncertainty interval is chrony's, tens of microseconds on loopback, not a
# configured constant), then `meridian bench kv` at each concurrency against
# the range's leaseholder, durable puts of --value-size bytes.
#
#   bench/kv.sh [--duration 10s] [--concurrency "1 64"] [--value-size 100]
#               [--clock chrony|static] [--keep DIR]
#
# --clock static uses the local cluster's fixed 1 ms bound instead (commit-wait
# then costs ~2 ms per put). Prints each run's line and the figures the node
# issue sets as targets (mean at concurrency 1, ops/s and p99 at 64). Every
# process it starts (nodes, chronyds) is stopped by PID at the end, also on
# error or Ctrl-C. Binary: MERIDIAN_BIN (default build/server/meridian).
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
bin=${MERIDIAN_BIN:-$root/build/server/meridian}
duration=10s concs="1 64" vsize=100 clock=chrony keep=
while [ $# -gt 0 ]; do
  case "$1" in
  --duration) duration=${2:-}; shift 2 ;;
  --concurrency) concs=${2:-}; shift 2 ;;
  --value-size) vsize=${2:-}; shift 2 ;;
  --clock) clock=${2:-}; shift 2 ;;
  --keep) keep=${2:-}; shift 2 ;;
  *) sed -n '9,10p' "$0" | sed 's/^# *//' >&2; echo "kv.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$clock" in chrony | static) ;; *) echo "kv.sh: --clock chrony|static" >&2; exit 2 ;; esac
[ -x "$bin" ] || { echo "kv.sh: no binary at $bin (build first)" >&2; exit 2; }
dir=${keep:-$(mktemp -d /tmp/meridian-benchkv-XXXXXX)}
mkdir -p "$dir"
# shellcheck source=deploy/lib.sh
. "$root/deploy/lib.sh"
# shellcheck source=bench/clock.sh
. "$here/clock.sh"

cleanup() {
  bash "$root/deploy/local-cluster.sh" stop "$dir/cluster" >/dev/null 2>&1
  bench_clock_down "$dir"
  [ -n "$keep" ] || rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

bench_clock_up "$dir" "$bin" "$clock" || exit 2
export MERIDIAN_BIN=$bin
bash "$root/deploy/local-cluster.sh" start "$dir/cluster" 3 >"$dir/cluster.out" 2>&1 ||
  { cat "$dir/cluster.out" >&2; exit 2; }
leaseholder() { l=$(bash "$root/deploy/local-cluster.sh" leader "$dir/cluster"); }
l=
wait_for 30 leaseholder ||
  { echo "kv.sh: no leaseholder for range 1" >&2; exit 2; }
host=$(awk -v l="$l" '$1==l {print $3}' "$dir/cluster/nodes")
echo "cluster: 3 nodes, leaseholder node $l at $host; value size $vsize B; $duration per run"
"$bin" bench kv --insecure --host "$host" --concurrency 4 --duration 2s --value-size "$vsize" \
  >/dev/null 2>&1 # warm-up: connections, caches
for c in $concs; do
  line=$("$bin" bench kv --insecure --host "$host" --concurrency "$c" --duration "$duration" \
    --value-size "$vsize" 2>&1 | tail -n 1)
  echo "concurrency $c: $line"
done
echo "targets (docs/node.md): concurrency 1 mean <= 0.5 ms; concurrency 64 >= 19,200 ops/s with p99 < 15 ms"
