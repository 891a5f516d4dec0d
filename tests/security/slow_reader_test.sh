#!/usr/bin/env bash
# A client that reads a large result not at all must not make the node
# buffer it: greedy_reader asks for ~96 MB with unlimited stream credit and
# is stopped (SIGSTOP) after its first batch. The node must park the
# statement once the connection holds --max-result-buffer (1 MiB here):
# its send-queue gauges stay near that, its RSS grows by far less than the
# result, and another client is served meanwhile. Let go (SIGCONT), the
# reader gets every row.
set -u
bin=$1; lc=$2; greedy=$3
export MERIDIAN_BIN=$bin
# Under ASan freed memory sits in quarantine and counts in RSS: keep it small.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
dir=$(mktemp -d /tmp/meridian-slowread-XXXXXX)
cleanup() {
  if [ -n "${gpid:-}" ]; then kill -CONT "$gpid" 2>/dev/null; kill "$gpid" 2>/dev/null; wait "$gpid" 2>/dev/null; fi
  bash "$lc" stop "$dir/c" >/dev/null 2>&1
  [ -n "${KEEP:-}" ] && cp -r "$dir" /tmp/keep-slowread
  rm -rf "$dir"
}
trap cleanup EXIT
fails=0; passes=0
check() { if eval "$2"; then passes=$((passes+1)); else echo "FAIL: $1"; fails=$((fails+1)); fi; }
wait_for() { for _ in $(seq 1 600); do eval "$1" && return 0; sleep 0.1; done; return 1; }

limit=$((1 << 20))
rows=6000; rowbytes=16000
export MERIDIAN_START_FLAGS="--insecure --clock-source static --static-uncertainty 1ms --max-result-buffer 1MiB"
bash "$lc" start "$dir/c" 1 >"$dir/start.out" 2>&1 || { cat "$dir/start.out"; exit 1; }
host=$(awk '$1==1 {print $3}' "$dir/c/nodes")
http=$(awk '$1==1 {print $4}' "$dir/c/nodes")
pid=$(awk '$1==1 {print $2}' "$dir/c/nodes")
sql() { timeout 120 "$bin" sql --host "$host" --format csv -e "$1" 2>&1; }
metric() { curl -s --max-time 5 "http://$http/metrics" | awk -v m="$1" '$1==m {print $2}'; }
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$pid/status"; }

sql "CREATE TABLE t(a INTEGER PRIMARY KEY, b TEXT); INSERT INTO t VALUES(1, 'one')" >/dev/null
rss0=$(rss_kb)
q="WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < $rows) SELECT x, randomblob($rowbytes) FROM c"
"$greedy" "$host" "$q" >"$dir/greedy.out" 2>&1 &
gpid=$!
check "the greedy reader gets its first batch" "wait_for 'grep -q first $dir/greedy.out'"
kill -STOP "$gpid"

# The node fills the socket and then its queue up to the limit, and parks
# the statement: a batch waits, and the stream was held back for the queue.
check "the statement is parked (a batch waits)" "wait_for '[ \"\$(metric meridian_sql_batches_waiting)\" = 1 ]'"
check "held back by the full connection queue, not by credit" \
  "[ \"\$(metric 'meridian_rpc_stream_queue_waits_total{node=\"1\"}')\" -ge 1 ]"
q_now=$(metric 'meridian_rpc_queue_bytes{node="1"}')
q_max=$(metric 'meridian_rpc_queue_bytes_max{node="1"}')
slack=$((512 << 10)) # one batch frame and the node's other traffic
check "queued bytes stay under the limit ($q_now now, $q_max at most, limit $limit)" \
  "[ ${q_now:-999999999} -le $((limit + slack)) ] && [ ${q_max:-999999999} -le $((limit + slack)) ]"
rss1=$(rss_kb)
result_kb=$((rows * rowbytes / 1024))
check "node RSS grew by $(( (rss1 - rss0) / 1024 )) MiB, far less than the $((result_kb / 1024)) MiB result" \
  "[ $((rss1 - rss0)) -lt $((result_kb * 2 / 5)) ]"

out=$(sql "SELECT b FROM t WHERE a = 1"); rc=$?
check "another client is served meanwhile: $out" "[ $rc = 0 ] && echo \"$out\" | tail -1 | grep -qx one"
q_max=$(metric 'meridian_rpc_queue_bytes_max{node="1"}')
check "still bounded after serving it ($q_max at most)" "[ ${q_max:-999999999} -le $((limit + slack)) ]"

kill -CONT "$gpid"
check "let go, the reader gets every row" "wait_for 'grep -q \"^done\" $dir/greedy.out' && grep -q \"^done rows=$rows code=0\" $dir/greedy.out"
wait "$gpid" 2>/dev/null; gpid=
check "the queue drains" "wait_for '[ \"\$(metric meridian_rpc_queue_bytes{node=\\\"1\\\"})\" -lt $slack ]'"
cat "$dir/greedy.out"
echo "rss before ${rss0} kB, stalled ${rss1} kB; queue max $q_max bytes (limit $limit)"
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
