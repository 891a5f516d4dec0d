#!/usr/bin/env bash
# Meridian vs PostgreSQL on TPC-C, one after the other on this machine (the
# figures in docs/tpcc.md "Results"): a 3-node local Meridian cluster
# (deploy/local-cluster.sh) and PostgreSQL with two synchronous standbys
# (bench/pg-setup.sh), each loaded once with `tpcc init` and then run at each
# concurrency level without --wait (a throughput benchmark, not a TPC-C
# result), then `tpcc check`. Everything started here is stopped by PID.
#
#   bench/tpcc-compare.sh OUT [meridian|pg|both]
#
# OUT gets per run: <system>-c<C>.out (the report), .csv, .svg.
# Environment: MERIDIAN_BIN (default build/server/meridian), TPCC_DURATION
# (60s), TPCC_LEVELS ("1 4 8"), TPCC_WAREHOUSES (1), PG_PORT (55432),
# TPCC_CLOCK (static: the local cluster's fixed 1 ms uncertainty bound, so
# commit-wait and strong reads wait ~2 ms; chrony: a local chrony pair's
# measured bound, tens of microseconds on loopback; bench/clock.sh).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: $0 OUT [meridian|pg|both]}
which=${2:-both}
bin=${MERIDIAN_BIN:-$here/build/server/meridian}
dur=${TPCC_DURATION:-60s}
levels=${TPCC_LEVELS:-1 4 8}
wh=${TPCC_WAREHOUSES:-1}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
# shellcheck source=deploy/lib.sh
. "$here/deploy/lib.sh"
# shellcheck source=bench/clock.sh
. "$here/bench/clock.sh"
cleanup() {
  MERIDIAN_BIN=$bin bash "$here/deploy/local-cluster.sh" stop "$work/mc" >/dev/null 2>&1
  bash "$here/bench/pg-setup.sh" stop "$work/pg" >/dev/null 2>&1
  bench_clock_down "$work"
  rm -rf "$work"
}
trap cleanup EXIT

series() { # series NAME CONNECTION-FLAGS...
  local name=$1; shift
  echo "== $name: init ($wh warehouse)" >&2
  "$bin" tpcc init "$@" --warehouses "$wh" --concurrency 4 >"$out/$name-init.out" 2>&1 ||
    { echo "$name: init failed:"; tail -5 "$out/$name-init.out"; return 1; }
  for c in $levels; do
    echo "== $name: run, $c terminals, $dur" >&2
    "$bin" tpcc run "$@" --warehouses "$wh" --concurrency "$c" --duration "$dur" --quiet \
      --csv "$out/$name-c$c.csv" --svg "$out/$name-c$c.svg" >"$out/$name-c$c.out" 2>&1 ||
      echo "$name: run at $c terminals exited $? (see $out/$name-c$c.out)"
  done
  "$bin" tpcc check "$@" --warehouses "$wh" >"$out/$name-check.out" 2>&1 ||
    echo "$name: check failed (see $out/$name-check.out)"
}

if [ "$which" != pg ]; then
  bench_clock_up "$work" "$bin" "${TPCC_CLOCK:-static}" >"$out/meridian-clock.out" || exit 2
  MERIDIAN_BIN=$bin bash "$here/deploy/local-cluster.sh" start "$work/mc" 3 >"$out/meridian-cluster.out" 2>&1 ||
    { cat "$out/meridian-cluster.out"; exit 1; }
  hosts=$(awk '{print $3}' "$work/mc/nodes" | paste -sd,)
  series meridian --host "$hosts"
  MERIDIAN_BIN=$bin bash "$here/deploy/local-cluster.sh" stop "$work/mc"
fi
if [ "$which" != meridian ]; then
  url=$(bash "$here/bench/pg-setup.sh" start "$work/pg" --port "${PG_PORT:-55432}" | tail -1) ||
    { echo "pg-setup failed"; exit 1; }
  series pg --pg-url "$url"
fi
