# shellcheck shell=bash
# Sourced by the bench scripts: the clocks of a loopback benchmark cluster.
#
#   bench_clock_up DIR BIN chrony|static   sets MERIDIAN_START_FLAGS for
#                                          deploy/local-cluster.sh
#   bench_clock_down DIR                   stops what bench_clock_up started
#
# chrony: a local chrony pair (a time master and a chronyd syncing from it,
# deploy/chrony/chrony-pair.sh), so the uncertainty interval is chrony's,
# tens of microseconds on loopback, not a configured constant. static: the
# local cluster's fixed 1 ms bound (commit-wait then costs ~2 ms per write
# and per strong read). Needs deploy/lib.sh sourced (wait_for).
bench_clock_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

bench_clock_up() {
  local dir=$1 bin=$2 kind=$3 mp mc nc
  case "$kind" in
  static)
    echo "clock: static, epsilon 1 ms"
    export MERIDIAN_START_FLAGS="--insecure --clock-source static --static-uncertainty 1ms"
    return 0 ;;
  chrony) ;;
  *) echo "bench: --clock chrony|static" >&2; return 2 ;;
  esac
  # Three free UDP ports on loopback for the pair (a pair may already run here).
  read -r mp mc nc < <(python3 -c '
import socket
s = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(3)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
  mkdir -p "$dir"
  MASTER_PORT=$mp MASTER_CMDPORT=$mc NODE_CMDPORT=$nc \
    bash "$bench_clock_root/deploy/chrony/chrony-pair.sh" start "$dir/chrony" >"$dir/chrony.out" 2>&1 ||
    { cat "$dir/chrony.out" >&2; return 2; }
  bench_clock_port=$nc bench_clock_bin=$bin
  wait_for 30 bench_clock_synced || { echo "bench: the chrony pair did not synchronise" >&2; return 2; }
  # Right after it synchronises chronyd's error bound is still wide; it
  # settles within seconds (the hang guard only bounds the wait).
  wait_for 60 bench_clock_settled || echo "bench: chrony's bound is still above 0.2 ms: measuring anyway"
  echo "clock: chrony pair, epsilon $(bench_clock_eps_ms) ms"
  export MERIDIAN_START_FLAGS="--insecure --clock-source chrony --chrony-port $nc"
}

bench_clock_synced() {
  "$bench_clock_bin" clock --json --chrony-port "$bench_clock_port" 2>/dev/null |
    grep -q '"status":"SYNCHRONIZED"'
}
bench_clock_eps_ms() {
  "$bench_clock_bin" clock --json --chrony-port "$bench_clock_port" 2>/dev/null |
    sed -n 's/.*"epsilon_ms":\([0-9.]*\).*/\1/p'
}
bench_clock_settled() { awk -v e="$(bench_clock_eps_ms)" 'BEGIN {exit !(e != "" && e < 0.2)}'; }

bench_clock_down() {
  [ -d "$1/chrony" ] && bash "$bench_clock_root/deploy/chrony/chrony-pair.sh" stop "$1/chrony" >/dev/null 2>&1
  return 0
}
