#!/usr/bin/env bash
# Concurrent SQL sessions on three real nodes stay serializable
# (concurrency.c): read-modify-write counters lose no increment, and the
# write-skew pattern (two doctors on call) never lets both commit; an
# online CREATE INDEX lets writers commit while it backfills (the nodes'
# backfill waits for the gate file the test creates). Every process is
# stopped by PID (local-cluster.sh).
set -u
bin=$1; prog=$2; lc=$3; extra=${4:-}
export MERIDIAN_BIN=$bin
dir=$(mktemp -d /tmp/meridian-sqlconc-XXXXXX)
cleanup() { bash "$lc" stop "$dir" >/dev/null 2>&1; rm -rf "$dir"; }
trap cleanup EXIT
export MERIDIAN_TESTING_BACKFILL_GATE=$dir/gate
bash "$lc" start "$dir" 3 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
hosts=$(awk '{printf "%s%s", s, $3; s=","}' "$dir/nodes")
"$prog" "$bin" "$hosts" 6 10 10 $extra
