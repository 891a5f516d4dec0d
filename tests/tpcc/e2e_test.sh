#!/usr/bin/env bash
# End-to-end test of `meridian tpcc`: init 1 warehouse, run ~15 s, check the
# consistency conditions, against a real database it starts and stops itself:
#
#   e2e_test.sh gateway MERIDIAN SESSION_SERVER
#       libmeridian's driver against the test gateway (session_server over a
#       SQLite file); also a short --wait run, whose pacing bounds the count.
#   e2e_test.sh pg MERIDIAN PG_SETUP
#       the libpq driver against bench/pg-setup.sh's primary with two
#       synchronous standbys; also proves `check` catches a broken database
#       (each of the four conditions, one corruption at a time).
set -euo pipefail
mode=$1 meridian=$2 helper=$3
dur=${TPCC_TEST_DURATION:-15s}
tmp=$(mktemp -d)
server_pid=
pg_dir=

cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  if [ -n "$pg_dir" ]; then bash "$helper" stop "$pg_dir" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

fail() { echo "FAIL: $*" >&2; exit 1; }

# A free loopback port with the next two free as well (primary + standbys).
free_ports() {
  python3 - <<'EOF'
import socket
for _ in range(100):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]
    if p > 65000: s.close(); continue
    try:
        others = [socket.socket() for _ in range(2)]
        for i, o in enumerate(others): o.bind(("127.0.0.1", p + 1 + i))
        print(p); break
    except OSError:
        pass
    finally:
        s.close()
        for o in others: o.close()
EOF
}

# Runs init / run / check with the connection flags in "$@"; checks what
# each printed.
workload() {
  "$meridian" tpcc init "$@" --warehouses 1 --concurrency 2 >"$tmp/init.out" 2>"$tmp/init.err" ||
    { cat "$tmp/init.err"; fail "init"; }
  cat "$tmp/init.out"
  grep -q "rows/s" "$tmp/init.err" || fail "init printed no progress with a load rate"
  grep -q "loaded 1 warehouse" "$tmp/init.out" || fail "init summary"

  "$meridian" tpcc check "$@" --warehouses 1 >"$tmp/check0.out" || { cat "$tmp/check0.out"; fail "check after init"; }

  "$meridian" tpcc run "$@" --warehouses 1 --concurrency 4 --duration "$dur" --seed 42 \
    --csv "$tmp/series.csv" --svg "$tmp/run.svg" >"$tmp/run.out" 2>"$tmp/run.err" || { cat "$tmp/run.out" "$tmp/run.err"; fail "run"; }
  cat "$tmp/run.out"
  grep -q "as fast as possible" "$tmp/run.out" || fail "run without --wait must say so"
  tpmc=$(sed -n 's/^tpmC: \([0-9.]*\).*/\1/p' "$tmp/run.out")
  [ -n "$tpmc" ] || fail "no tpmC line"
  awk -v t="$tpmc" 'BEGIN { exit !(t > 0) }' || fail "tpmC is $tpmc"
  for t in new-order payment order-status delivery stock-level; do
    n=$(awk -v t=$t '$1 == t && NF == 7 { print $2 }' "$tmp/run.out")
    [ "${n:-0}" -gt 0 ] || fail "no committed $t"
  done
  grep -q "errors: 0$" "$tmp/run.out" || fail "run had errors"
  # Live lines: one per second.
  [ "$(grep -c '^ *[0-9]*s  tpmC' "$tmp/run.out")" -ge 10 ] || fail "live lines missing"
  [ "$(wc -l <"$tmp/series.csv")" -ge 11 ] || fail "csv series"
  python3 -c 'import sys, xml.dom.minidom as m; d = m.parse(sys.argv[1]); assert len(d.getElementsByTagName("polyline")) == 4' \
    "$tmp/run.svg" || fail "svg picture"

  "$meridian" tpcc check "$@" --warehouses 1 >"$tmp/check.out" || { cat "$tmp/check.out"; fail "check after run"; }
  cat "$tmp/check.out"
  [ "$(grep -c ': ok$' "$tmp/check.out")" = 4 ] || fail "check output"
}

case $mode in
gateway)
  "$helper" --db "$tmp/tpcc.db" >"$tmp/server.out" &
  server_pid=$!
  for _ in $(seq 1 200); do
    grep -q '^port=' "$tmp/server.out" && break
    kill -0 "$server_pid" || fail "session_server died"
    sleep 0.05
  done
  port=$(sed -n 's/^port=//p' "$tmp/server.out")
  [ -n "$port" ] || fail "session_server printed no port"
  workload --host "127.0.0.1:$port"
  # --wait: every transaction is preceded by >= 2 s of keying time, so in
  # 3 s each of the 10 terminals can finish at most one.
  "$meridian" tpcc run --host "127.0.0.1:$port" --wait --duration 3s >"$tmp/wait.out" ||
    { cat "$tmp/wait.out"; fail "run --wait"; }
  cat "$tmp/wait.out"
  grep -q "with keying and think times" "$tmp/wait.out" || fail "--wait banner"
  grep -q "efficiency:" "$tmp/wait.out" || fail "--wait efficiency"
  grep -q "10 terminal(s)" "$tmp/wait.out" || fail "--wait: 10 terminals per warehouse"
  n=$(awk '$1 == "all" { print $2 }' "$tmp/wait.out")
  [ "$n" -le 10 ] || fail "--wait ran $n transactions in 3 s with 10 terminals"
  # SIGINT ends a long run early, with the report of what was measured.
  "$meridian" tpcc run --host "127.0.0.1:$port" --duration 10m >"$tmp/int.out" 2>&1 &
  run_pid=$!
  for _ in $(seq 1 600); do
    grep -q '^ *2s  tpmC' "$tmp/int.out" && break
    kill -0 "$run_pid" 2>/dev/null || break
    sleep 0.05
  done
  kill -INT "$run_pid"
  rc=0
  wait "$run_pid" || rc=$?
  cat "$tmp/int.out"
  [ "$rc" = 0 ] || fail "interrupted run exited $rc"
  secs=$(sed -n 's/.* terminal(s), \([0-9.]*\) s measured.*/\1/p' "$tmp/int.out")
  awk -v s="$secs" 'BEGIN { exit !(s >= 2 && s < 600) }' || fail "interrupted run measured '$secs' s"
  n=$(awk '$1 == "all" { print $2 }' "$tmp/int.out")
  [ "${n:-0}" -gt 0 ] || fail "interrupted run reported nothing"
  # Neither --host nor --pg-url: a usage error.
  set +e
  "$meridian" tpcc check >/dev/null 2>&1
  [ $? = 2 ] || fail "usage error exit status"
  set -e
  ;;
pg)
  port=$(free_ports)
  [ -n "$port" ] || fail "no free ports"
  pg_dir=$tmp/pg
  url=$(bash "$helper" start "$pg_dir" --port "$port" --standbys 2)
  [ "$(bash "$helper" start "$pg_dir" --port "$port" --standbys 2)" = "$url" ] || fail "start is not idempotent"
  pids=$(for d in primary s1 s2; do head -1 "$pg_dir/$d/postmaster.pid"; done)
  sync=$(psql "$url" -Atc "SELECT string_agg(application_name || ':' || sync_state, ',' ORDER BY application_name) FROM pg_stat_replication")
  [ "$sync" = "s1:quorum,s2:quorum" ] || fail "standbys: $sync"
  [ "$(psql "$url" -Atc 'SHOW synchronous_standby_names')" = "ANY 1 (s1, s2)" ] || fail "synchronous_standby_names"
  workload --pg-url "$url"
  # check must catch each broken condition.
  corrupt=(
    "UPDATE warehouse SET w_ytd = w_ytd + 1 WHERE w_id = 1"
    "UPDATE district SET d_next_o_id = d_next_o_id + 1 WHERE d_w_id = 1 AND d_id = 2"
    "DELETE FROM new_order WHERE no_w_id = 1 AND no_d_id = 3 AND no_o_id = (SELECT MIN(no_o_id) + 1 FROM new_order WHERE no_w_id = 1 AND no_d_id = 3)"
    "DELETE FROM order_line WHERE ol_w_id = 1 AND ol_d_id = 4 AND ol_o_id = 1 AND ol_number = 1"
  )
  for i in 0 1 2 3; do
    psql "$url" -qc "${corrupt[$i]}"
    set +e
    "$meridian" tpcc check --pg-url "$url" >"$tmp/bad.out"
    rc=$?
    set -e
    cat "$tmp/bad.out"
    [ $rc = 1 ] || fail "check exited $rc after breaking condition $((i + 1))"
    grep -q "condition $((i + 1)) (3.3.2.$((i + 1))): FAILED" "$tmp/bad.out" || fail "condition $((i + 1)) not caught"
  done
  bash "$helper" stop "$pg_dir"
  pg_dir=
  for p in $pids; do ! kill -0 "$p" 2>/dev/null || fail "postgres $p still runs after stop"; done
  [ ! -e "$tmp/pg" ] || fail "stop left $tmp/pg"
  bash "$helper" stop "$tmp/pg" || fail "stop twice"
  ;;
*) fail "mode $mode" ;;
esac
echo "PASS"
